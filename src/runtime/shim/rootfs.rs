//! The container's root filesystem, built inside its new mount namespace.
//!
//! Order matters, and every step runs in the container's first process
//! before it executes anything from the image:
//!
//! 1. make every mount private, so nothing below propagates to the host;
//! 2. mount overlayfs: the image's layers read-only below, the container's
//!    own `upper/` on top, so writes land in `upper/` and never in a layer
//!    shared with other containers;
//! 3. mount the spec's mounts (/proc, a tmpfs /dev with the standard device
//!    nodes, /dev/pts, /dev/shm, /dev/mqueue, read-only /sys, /etc/hosts,
//!    /etc/hostname, /etc/resolv.conf, tmpfs and bind mounts);
//! 4. write the sysctls, then mask and write-protect paths of /proc and /sys;
//! 5. `pivot_root` into it and detach the old root, so the host's
//!    filesystem is no longer reachable at all.
//!
//! **Hostile images.** The image's files are not trusted: `/etc/hosts` may
//! be a symlink to `/etc/shadow` *of the host*, `/proc` a symlink to some
//! host directory. Every path inside the root is therefore resolved by the
//! kernel with `openat2(RESOLVE_IN_ROOT)`, which treats the root filesystem
//! as `/` even for absolute symlinks and `..`, and mounts go onto the
//! resulting file descriptor (`/proc/self/fd/N`), never onto a path string
//! that could be swapped in between. /proc and /sys must be real
//! directories (as runc requires since CVE-2019-19921).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::Mount;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::runtime::container::build::ContainerConfig;
use crate::runtime::sys::{Linux, Syscalls};

/// An error while building the root filesystem, already phrased for the user.
pub type SetupError = String;

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> SetupError {
    format!("{what}: {e}")
}

/// Mount flags and filesystem data from OCI mount options.
pub fn parse_options(options: &[String]) -> (MsFlags, bool, String) {
    let mut flags = MsFlags::empty();
    let mut read_only = false;
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => read_only = true,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, read_only, data.join(","))
}

/// The propagation a mount's options ask for (`rslave`, ...), as flags.
pub fn propagation(options: &[String]) -> Option<MsFlags> {
    options.iter().rev().find_map(|o| {
        Some(match o.as_str() {
            "private" => MsFlags::MS_PRIVATE,
            "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            "shared" => MsFlags::MS_SHARED,
            "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
            "slave" => MsFlags::MS_SLAVE,
            "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
            _ => return None,
        })
    })
}

/// Escapes a path for overlayfs's option string, where `:` separates
/// layers and `,` options.
fn overlay_escape(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// The overlayfs option string.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> String {
    // overlayfs lists the top layer first.
    let lower: Vec<String> = layers.iter().rev().map(|l| overlay_escape(l)).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        overlay_escape(upper),
        overlay_escape(work)
    )
}

fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` inside `root` (an O_PATH file descriptor), creating it as a
/// directory (or an empty file when `file`) when missing, every component
/// resolved with the root as `/`.
pub fn ensure_in_root(root: &OwnedFd, path: &str, file: bool) -> Result<OwnedFd, SetupError> {
    ensure_depth(root, path, file, 0)
}

fn ensure_depth(root: &OwnedFd, path: &str, file: bool, depth: u32) -> Result<OwnedFd, SetupError> {
    let rel = path.trim_start_matches('/');
    let open = |p: &str, extra: OFlags| {
        rustix::fs::openat2(
            root,
            if p.is_empty() { "." } else { p },
            OFlags::PATH | OFlags::CLOEXEC | extra,
            Mode::empty(),
            IN_ROOT,
        )
    };
    match open(rel, OFlags::empty()) {
        Ok(fd) => return Ok(fd),
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => {
            return Err(err(
                format!("cannot resolve {path} in the root filesystem"),
                e,
            ));
        }
    }
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let dirs = if file {
        comps.len().saturating_sub(1)
    } else {
        comps.len()
    };
    let mut prefix = String::new();
    for comp in &comps[..dirs] {
        let parent = open(&prefix, OFlags::DIRECTORY)
            .map_err(|e| err(format!("cannot open /{prefix} in the root filesystem"), e))?;
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(comp);
        match rustix::fs::mkdirat(&parent, *comp, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(format!("cannot create /{prefix}"), e)),
        }
    }
    if file {
        // Created through the root-confined resolver: a dangling symlink is
        // followed inside the root, never to the host.
        let create = || {
            rustix::fs::openat2(
                root,
                rel,
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
                Mode::from_raw_mode(0o644),
                IN_ROOT,
            )
        };
        match create() {
            Ok(_) => {}
            // The last component is a symlink to a place whose directory
            // does not exist (yet): make that directory, inside the root,
            // and create the file there.
            Err(rustix::io::Errno::NOENT) if depth < 8 => {
                let (parent_rel, name) = rel.rsplit_once('/').unwrap_or(("", rel));
                let parent = open(parent_rel, OFlags::DIRECTORY)
                    .map_err(|e| err(format!("cannot open the directory of {path}"), e))?;
                let target = rustix::fs::readlinkat(&parent, name, Vec::new())
                    .map_err(|e| err(format!("cannot create {path} in the root filesystem"), e))?;
                let target = target.to_string_lossy().into_owned();
                let absolute = if target.starts_with('/') {
                    target
                } else {
                    format!("/{parent_rel}/{target}")
                };
                if let Some((dir, _)) = absolute.rsplit_once('/') {
                    ensure_depth(root, dir, false, depth + 1)?;
                }
                create()
                    .map_err(|e| err(format!("cannot create {path} in the root filesystem"), e))?;
            }
            Err(e) => {
                return Err(err(
                    format!("cannot create {path} in the root filesystem"),
                    e,
                ));
            }
        }
    }
    open(rel, OFlags::empty()).map_err(|e| err(format!("cannot open {path} after creating it"), e))
}

/// Opens an existing path inside the root, or `None` when it does not exist.
fn open_in_root(root: &OwnedFd, path: &str) -> Result<Option<OwnedFd>, SetupError> {
    match rustix::fs::openat2(
        root,
        path.trim_start_matches('/'),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(err(format!("cannot resolve {path}"), e)),
    }
}

/// Builds the root filesystem and pivots into it. Runs in the container's
/// first process, in its new mount namespace.
///
/// `nodev` mounts the image's files without device semantics: used when
/// the host cannot enforce device rules (cgroup v2 without a device
/// program), so a device node shipped in an image opens nothing.
pub fn setup(config: &ContainerConfig, dir: &Path, nodev: bool) -> Result<(), SetupError> {
    let sys = Linux;
    let spec = &config.spec;
    // A bind that should receive the host's later mounts (`rslave`,
    // `rshared`) must stay tied to the host's mounts: the namespace becomes
    // their slave instead (nothing still propagates back to the host), and
    // every mount below gets its own propagation when it is made.
    let receives = spec.mounts().iter().flatten().any(|m| {
        propagation(m.options().as_deref().unwrap_or_default())
            .is_some_and(|f| f.intersects(MsFlags::MS_SLAVE | MsFlags::MS_SHARED))
    });
    let ns_propagation = if receives {
        MsFlags::MS_SLAVE
    } else {
        MsFlags::MS_PRIVATE
    };
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | ns_propagation,
        None,
    )
    .map_err(|e| err("cannot make the mount namespace private", e))?;

    let rootfs = dir.join("rootfs");
    let data = overlay_options(&config.layers, &dir.join("upper"), &dir.join("work"));
    sys.mount(
        Some(Path::new("overlay")),
        &rootfs,
        Some("overlay"),
        if nodev {
            MsFlags::MS_NODEV
        } else {
            MsFlags::empty()
        },
        Some(&data),
    )
    .map_err(|e| {
        err(
            format!(
                "cannot mount the image layers (overlayfs) on {}; check that every layer directory exists",
                rootfs.display()
            ),
            e,
        )
    })?;
    let root = rustix::fs::open(
        &rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("cannot open the root filesystem", e))?;

    for m in spec.mounts().iter().flatten() {
        mount_one(&sys, &root, m, receives)?;
    }

    if let Some(linux) = spec.linux() {
        for d in linux.devices().iter().flatten() {
            make_device(&root, d)?;
        }
        for (key, value) in linux.sysctl().iter().flatten() {
            let path = format!("proc/sys/{}", key.replace('.', "/"));
            let fd = rustix::fs::openat2(
                &root,
                &path,
                OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::empty(),
                IN_ROOT,
            )
            .map_err(|e| err(format!("cannot open sysctl {key}"), e))?;
            rustix::io::write(&fd, value.as_bytes())
                .map_err(|e| err(format!("cannot set sysctl {key}={value}"), e))?;
        }
        for path in linux.masked_paths().iter().flatten() {
            let Some(fd) = open_in_root(&root, path)? else {
                continue;
            };
            let is_dir = rustix::fs::fstat(&fd)
                .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
                .unwrap_or(false);
            let result = if is_dir {
                sys.mount(
                    Some(Path::new("tmpfs")),
                    &fd_path(&fd),
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some("size=0"),
                )
            } else {
                sys.mount(
                    Some(Path::new("/dev/null")),
                    &fd_path(&fd),
                    None,
                    MsFlags::MS_BIND,
                    None,
                )
            };
            result.map_err(|e| err(format!("cannot mask {path}"), e))?;
        }
        for path in linux.readonly_paths().iter().flatten() {
            let Some(fd) = open_in_root(&root, path)? else {
                continue;
            };
            let target = fd_path(&fd);
            sys.mount(
                Some(&target),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .and_then(|_| {
                // The remount must name the new mount: reopen the path so
                // the descriptor points at the bind mount, not below it.
                let fd = open_in_root(&root, path)
                    .ok()
                    .flatten()
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
                sys.mount(
                    None,
                    &fd_path(&fd),
                    None,
                    MsFlags::MS_BIND
                        | MsFlags::MS_REMOUNT
                        | MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    None,
                )
            })
            .map_err(|e| err(format!("cannot make {path} read-only"), e))?;
        }
    }

    // pivot_root(".", "."): the old root ends up stacked under the new one
    // and is detached right away, so no path leads back to the host.
    rustix::process::fchdir(&root).map_err(|e| err("cannot enter the root filesystem", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| err("pivot_root failed", e))?;
    sys.umount(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(|e| err("cannot detach the host's root", e))?;
    rustix::process::chdir("/").map_err(|e| err("cannot enter /", e))?;
    drop(root);

    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let keep = if nodev {
            MsFlags::MS_NODEV
        } else {
            MsFlags::empty()
        };
        sys.mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
            None,
        )
        .map_err(|e| err("cannot make the root filesystem read-only", e))?;
    }
    Ok(())
}

/// `receives`: the namespace was made a slave of the host's mounts, so a
/// bind must be given its own propagation (in a private namespace a bind
/// is private already, and the remount is saved).
fn mount_one(sys: &Linux, root: &OwnedFd, m: &Mount, receives: bool) -> Result<(), SetupError> {
    let dest = m.destination().to_string_lossy().into_owned();
    let typ = m.typ().as_deref().unwrap_or("bind");
    let options: Vec<String> = m.options().clone().unwrap_or_default();
    let (mut flags, read_only, data) = parse_options(&options);
    let is_bind = typ == "bind" || flags.contains(MsFlags::MS_BIND);
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));

    if matches!(typ, "proc" | "sysfs") {
        // These must be real directories: a symlink could point the mount
        // anywhere, and a /proc mounted elsewhere defeats masking.
        match rustix::fs::openat2(
            root,
            dest.trim_start_matches('/'),
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd).map_err(|e| err(&dest, e))?;
                if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
                    return Err(format!(
                        "the image's {dest} is not a directory (a symbolic link or a file); refusing to mount {typ} there"
                    ));
                }
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(format!(
                    "the image's {dest} cannot be used as a mount point ({e}); it must be a real directory, not a symbolic link"
                ));
            }
        }
    }

    // Anything but a directory (a file, a device node) is bound onto a file.
    let file = is_bind && source.exists() && !source.is_dir();
    let target_fd = ensure_in_root(root, &dest, file)?;
    let target = fd_path(&target_fd);
    if is_bind {
        flags |= MsFlags::MS_BIND;
        sys.mount(Some(&source), &target, None, flags, None)
            .map_err(|e| err(format!("cannot bind {} to {dest}", source.display()), e))?;
        if read_only {
            let fd = ensure_in_root(root, &dest, file)?;
            sys.mount(
                None,
                &fd_path(&fd),
                None,
                flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None,
            )
            .map_err(|e| err(format!("cannot make {dest} read-only"), e))?;
        }
        // Binds are rprivate unless they ask otherwise; the remount must
        // name the new mount, so the path is opened again.
        let wanted = propagation(&options).unwrap_or(MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        if receives || !wanted.contains(MsFlags::MS_PRIVATE) {
            let fd = ensure_in_root(root, &dest, file)?;
            sys.mount(None, &fd_path(&fd), None, wanted, None)
                .map_err(|e| err(format!("cannot set the propagation of {dest}"), e))?;
        }
    } else {
        if read_only {
            flags |= MsFlags::MS_RDONLY;
        }
        let data = (!data.is_empty()).then_some(data.as_str());
        sys.mount(Some(&source), &target, Some(typ), flags, data)
            .map_err(|e| err(format!("cannot mount {typ} on {dest}"), e))?;
    }
    if dest == "/dev" && typ == "tmpfs" {
        let dev = ensure_in_root(root, "/dev", false)?;
        // Reopen as a real directory descriptor for the *at calls below.
        let dev = rustix::fs::openat(
            &dev,
            ".",
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(|e| err("cannot open /dev", e))?;
        populate_dev(&dev)?;
    }
    Ok(())
}

/// One `linux.devices` node (privileged containers get the host's), made
/// inside the root; a node that is there already (the standard ones) is
/// left as it is.
fn make_device(root: &OwnedFd, d: &oci_spec::runtime::LinuxDevice) -> Result<(), SetupError> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let path = d.path().to_string_lossy().into_owned();
    let (parent, name) = match path.rsplit_once('/') {
        Some((p, n)) if !n.is_empty() => (if p.is_empty() { "/" } else { p }, n),
        _ => return Err(format!("the device path {path} has no file name")),
    };
    let kind = match d.typ() {
        T::C | T::U => rustix::fs::FileType::CharacterDevice,
        T::B => rustix::fs::FileType::BlockDevice,
        T::P => rustix::fs::FileType::Fifo,
        T::A => return Err(format!("the device {path} has no type")),
    };
    let dir = ensure_in_root(root, parent, false)?;
    // A real directory descriptor for the *at calls.
    let dir = rustix::fs::openat(
        &dir,
        ".",
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
    .map_err(|e| err(format!("cannot open {parent}"), e))?;
    let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
    let dev = rustix::fs::makedev(d.major() as u32, d.minor() as u32);
    match rustix::fs::mknodat(&dir, name, kind, Mode::from_raw_mode(mode), dev) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => return Ok(()),
        Err(e) => return Err(err(format!("cannot create {path}"), e)),
    }
    // mknod applies the umask: set the mode exactly, then the owner.
    let _ = rustix::fs::chmodat(
        &dir,
        name,
        Mode::from_raw_mode(mode),
        rustix::fs::AtFlags::empty(),
    );
    rustix::fs::chownat(
        &dir,
        name,
        Some(rustix::fs::Uid::from_raw(d.uid().unwrap_or(0))),
        Some(rustix::fs::Gid::from_raw(d.gid().unwrap_or(0))),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(format!("cannot set the owner of {path}"), e))
}

/// The standard device nodes and links of a container's /dev.
fn populate_dev(dev: &impl AsFd) -> Result<(), SetupError> {
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        rustix::fs::mknodat(
            dev,
            name,
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(major, minor),
        )
        .map_err(|e| err(format!("cannot create /dev/{name}"), e))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        rustix::fs::symlinkat(target, dev, name)
            .map_err(|e| err(format!("cannot create /dev/{name}"), e))?;
    }
    Ok(())
}

/// Writes the hostname and domain name.
pub fn set_names(hostname: Option<&str>, domainname: Option<&str>) -> Result<(), SetupError> {
    if let Some(h) = hostname {
        nix::unistd::sethostname(h).map_err(|e| err(format!("cannot set hostname {h}"), e))?;
    }
    if let Some(d) = domainname {
        let c = CString::new(d).map_err(|e| err("bad domain name", e))?;
        // SAFETY: the pointer and length describe a valid C string we own.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(err(
                format!("cannot set domain name {d}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = ["nosuid", "noexec", "mode=755", "size=65536k", "ro"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, ro, data) = parse_options(&o);
        assert!(flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC));
        assert!(ro);
        assert_eq!(data, "mode=755,size=65536k");
    }

    #[test]
    fn propagation_comes_from_the_last_propagation_option() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(propagation(&o(&["rbind", "ro"])), None);
        assert_eq!(
            propagation(&o(&["rbind", "rslave"])),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(
            propagation(&o(&["rprivate", "shared"])),
            Some(MsFlags::MS_SHARED)
        );
    }

    #[test]
    fn overlay_lists_the_top_layer_first_and_escapes() {
        let s = overlay_options(
            &["/l/base".into(), "/l/a:b".into()],
            Path::new("/c/upper"),
            Path::new("/c/work"),
        );
        assert_eq!(
            s,
            "lowerdir=/l/a\\:b:/l/base,upperdir=/c/upper,workdir=/c/work"
        );
    }
}
