//! `state.json`: what the shim knows about its container, on disk.
//!
//! The shim is the only writer once the container exists (create writes
//! the first record); every write is atomic (write-temp, fsync, rename), so
//! a reader never sees half a record and the last exit survives the shim.
//! Readers verify liveness themselves: a pid alone can be reused, so each
//! pid is stored with its start time (field 22 of `/proc/<pid>/stat`) and
//! only a process with both matching counts as the same one.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::ContainerError;

/// Lifecycle of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The shim is setting up.
    Creating,
    /// Namespaces and root filesystem are ready; the process waits for `start`.
    Created,
    Running,
    /// Running but frozen (derived from the cgroup when read).
    Paused,
    Exited,
    /// The shim died without recording an exit (derived when read).
    Dead,
}

/// How the container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code, or 128 + the signal number when killed (as shells and
    /// Docker report it).
    pub code: i32,
    pub signal: Option<i32>,
    /// Killed by the kernel's OOM killer for exceeding its memory limit.
    pub oom_killed: bool,
}

/// The record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub status: Status,
    /// The container's first process, as the host sees it.
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    pub shim_pid: Option<i32>,
    pub shim_start: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub exit: Option<Exit>,
    /// Why the container failed to start, when it did.
    pub error: Option<String>,
    /// Log records lost because the log file could not be written.
    #[serde(default)]
    pub log_dropped: u64,
}

impl State {
    pub fn new(id: &str) -> State {
        State {
            id: id.to_string(),
            status: Status::Creating,
            pid: None,
            pid_start: None,
            shim_pid: None,
            shim_start: None,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
            exit: None,
            error: None,
            log_dropped: 0,
        }
    }

    pub fn load(path: &Path) -> Result<State, ContainerError> {
        let text = std::fs::read(path).map_err(ContainerError::io("read", path))?;
        serde_json::from_slice(&text).map_err(ContainerError::json)
    }

    pub fn save(&self, path: &Path) -> Result<(), ContainerError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(ContainerError::json)?;
        replace_file(path, &bytes)
    }
}

/// Replaces `path` atomically (write a temporary file, rename it over), so
/// a reader sees the old or the new content, never half of either.
///
/// Unlike the project state store this does not fsync: a container's
/// record describes processes, and processes do not survive a host crash,
/// so after one every record is stale whatever the disk kept (`state`
/// reports such containers dead). Skipping the flushes saves several
/// milliseconds per container start.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), ContainerError> {
    crate::state::replace_file(path, bytes).map_err(ContainerError::io("replace", path))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The start time of `pid` in clock ticks since boot, `None` if it is gone.
/// A zombie counts as gone: it has exited and only waits to be reaped
/// (shims are reparented to pid 1, and not every pid 1 reaps promptly).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count
    // fields from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start`.
pub fn same_process(pid: Option<i32>, start: Option<u64>) -> bool {
    match (pid, start) {
        (Some(p), Some(s)) => process_start_time(p) == Some(s),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable_and_identifies_us() {
        let me = std::process::id() as i32;
        let start = process_start_time(me);
        assert!(start.is_some());
        assert!(same_process(Some(me), start));
        assert!(!same_process(Some(me), start.map(|s| s + 1)));
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut s = State::new("c1");
        s.exit = Some(Exit {
            code: 137,
            signal: Some(9),
            oom_killed: true,
        });
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), s);
    }
}
