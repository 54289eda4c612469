//! The state store: stack's on-disk record of what it created.
//!
//! `observe` rebuilds the world from this record plus what is live, so the
//! record must never lie, even after a crash: every write goes to a
//! temporary file that is flushed to disk and then renamed over the old one
//! (and the directory flushed), so a reader sees the old record or the new
//! one, never half of either. One stack process at a time may change a
//! project: [`Store::lock`] takes an exclusive lock on the project's lock
//! file and writes its pid there, so a second command can say who holds it.
//! Every applied stack is kept as a numbered revision, for `plan` to explain
//! field-level changes and for rollback.
//!
//! Layout under the state root: `projects/<project>/state.json`,
//! `projects/<project>/lock`, `projects/<project>/revisions/<n>.json`.

mod atomic;
pub mod events;
mod records;
mod store;

pub use atomic::{replace_file, write_atomic};
pub use records::{ContainerRecord, ObjectRecord, ProjectRecord, RevisionRecord};
pub use store::{ProjectLock, Store};

use std::path::PathBuf;

/// Why the state store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "project `{project}` is locked by another stack process{}; wait for it to finish or stop it",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { project: String, pid: Option<u32> },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {} is damaged ({source}); move it away to start the project's record afresh", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{0}` is not a valid project name for the state store")]
    BadName(String),
}

impl StateError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.into();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    }
}
