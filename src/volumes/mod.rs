//! Volumes: where a container's data lives when it must outlive the container.
//!
//! A *named volume* is a directory stack owns, `<root>/volumes/<name>/_data`,
//! with its labels and driver options beside it in `meta.json`. It is created
//! on first use, filled once with what the image has at the mount path (as
//! docker does, unless `nocopy`), shared by every service that mounts it,
//! kept by `down` and removed only when the user asks (`down -v`,
//! `stack volume rm`). The local driver's options are honoured: `type: tmpfs`
//! or `o: bind` with a `device` make `_data` a mount of that instead of a
//! plain directory. A *bind mount* is a host path the user named; stack only
//! creates it when missing (unless `bind.create_host_path: false`). *Secrets*
//! and *configs* are files written from a file, an environment variable or
//! inline content, with the owner and mode the service asks for, which the
//! runtime then mounts read-only.
//!
//! This module prepares the host side; the runtime mounts the results into
//! the container.

mod copy;
mod files;
mod store;

pub use copy::copy_tree;
pub use files::{prepare_bind_source, write_file_object};
pub use store::{VolumeInfo, VolumeSpec, VolumeStore};

use std::path::PathBuf;

/// Why a volume operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "volume `{name}` already exists with different {what}; stack never recreates a volume on its own: remove it with `stack volume rm {name}` (its data is lost) or give the volume another name"
    )]
    Diverged { name: String, what: String },
    #[error("volume `{0}` does not exist")]
    NotFound(String),
    #[error(
        "volume `{name}` is in use by {users}; stop those containers first (or `stack down` their project)"
    )]
    InUse { name: String, users: String },
    #[error(
        "`{0}` is not a valid volume name (letters, digits, `_`, `.` and `-`, starting with a letter or digit)"
    )]
    BadName(String),
    #[error("the bind mount source {} does not exist and `create_host_path` is false; create it or allow stack to", .0.display())]
    MissingBindSource(PathBuf),
    #[error("the local volume driver option {0}")]
    BadOption(String),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl VolumeError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> VolumeError {
        let path = path.into();
        move |source| VolumeError::Io {
            action,
            path,
            source,
        }
    }
}

impl From<crate::state::StateError> for VolumeError {
    fn from(e: crate::state::StateError) -> VolumeError {
        match e {
            crate::state::StateError::Io {
                action,
                path,
                source,
            } => VolumeError::Io {
                action,
                path,
                source,
            },
            other => VolumeError::Io {
                action: "record",
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}
