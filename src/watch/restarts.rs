//! The restart record: how often the watcher restarted each container.
//!
//! The watcher keeps, per container, how many times it restarted it, when
//! it last did, and whether it gave up (the flap limit), in
//! `<root>/run/watch/<project>.restarts.json`, rewritten atomically after
//! every change. It is what `stack ps` shows beside each container, and
//! what a user reads to learn that a crash-looping container is no longer
//! restarted. A new watcher (`stack up -d`) starts the record afresh, as
//! docker resets a container's restart count when it is started by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One container's restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRestarts {
    /// Restarts by the watcher since it started.
    pub count: u64,
    /// When it last restarted it (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<u64>,
    /// Why it last restarted it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// It kept failing right after each start and is no longer restarted
    /// (the flap limit); `stack up -d` tries again.
    #[serde(default)]
    pub gave_up: bool,
    /// It exited and waits for its backoff to end before the watcher
    /// starts it again (`stack ps` says "Restarting").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
}

/// Every container's restarts, by container name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarts {
    pub containers: BTreeMap<String, ContainerRestarts>,
}

/// Where the record of `project` is.
pub fn path(root: &Path, project: &str) -> PathBuf {
    root.join("run")
        .join("watch")
        .join(format!("{project}.restarts.json"))
}

/// The record of `project` (empty when there is none or it is damaged:
/// it only informs).
pub fn read(root: &Path, project: &str) -> Restarts {
    std::fs::read(path(root, project))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Replaces the record of `project`.
pub fn write(root: &Path, project: &str, restarts: &Restarts) -> std::io::Result<()> {
    let path = path(root, project);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Plain data with string keys: serializing cannot fail.
    let bytes = serde_json::to_vec_pretty(restarts).unwrap_or_default();
    crate::state::replace_file(&path, &bytes)
}

/// Removes the record of `project` (after `down`).
pub fn forget(root: &Path, project: &str) {
    let _ = std::fs::remove_file(path(root, project));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_reads_empty_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), "p"), Restarts::default());
        let mut r = Restarts::default();
        r.containers.insert(
            "p-web-1".into(),
            ContainerRestarts {
                count: 3,
                last_restart: Some(42),
                reason: "exited with code 1".into(),
                gave_up: true,
                waiting: false,
            },
        );
        write(dir.path(), "p", &r).unwrap();
        assert_eq!(read(dir.path(), "p"), r);
        forget(dir.path(), "p");
        assert_eq!(read(dir.path(), "p"), Restarts::default());
    }
}
