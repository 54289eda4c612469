//! stack's own container runtime: no dockerd, containerd or runc underneath.
//!
//! A container is a process tree with its own view of the system, made of
//! kernel features:
//!
//! - **namespaces** give it its own pids (it is pid 1), mounts, hostname,
//!   IPC objects and network;
//! - an **overlay root filesystem** stacks the image's read-only layers
//!   under a private writable directory;
//! - **cgroups** ([`cgroup`]) limit and account its memory, CPU and pids;
//! - **capabilities, seccomp, no_new_privs and masked paths**
//!   ([`security`]) take away what root inside it must not do.
//!
//! Each container is owned by a **shim** ([`shim`]): `stack` re-executed as
//! a single-threaded helper that creates all of the above, holds the
//! container's output, reaps it and records its exit, and outlives every
//! other stack process. [`container::Runtime`] is the API the rest of stack
//! calls: create (with a pause for the network to be attached), start,
//! stop, kill, pause, resume, exec, logs, stats, state, remove.
//! [`container::build`] turns a Compose service into the shim's input, an
//! OCI runtime spec. [`image`] keeps images on disk, pulls them from
//! registries, loads them from archives and unpacks their layers safely,
//! ready to be the lower layers of a container's overlayfs.
//!
//! Images ([`image`]) are kept on disk, pulled from registries, loaded from
//! archives and unpacked safely, ready to be the lower layers of a
//! container's overlayfs.
//!
//! All side effects on files and mounts that carry logic go through
//! [`sys::Syscalls`], so the logic is unit-tested against a recording fake;
//! the real thing is tested as root in `tests/runtime_*.rs`.

pub mod cgroup;
pub mod container;
pub mod image;
pub mod security;
pub mod shim;
pub mod sys;

pub use container::{ContainerConfig, ContainerError, Runtime};
