//! The project's event log: what the watcher saw and did, one JSON line each.
//!
//! A container died with a code, was restarted and why, turned unhealthy,
//! was repaired after drift, hit the flap limit: each is an [`Event`]
//! appended as one line of JSON to `<root>/events/<project>.jsonl`. Lines
//! are appended with a single `write` on a file opened for appending, so
//! concurrent writers (the watcher, `up`, `down`) never interleave within
//! a line, and a reader that follows the file (`stack events`) sees whole
//! lines. The log is bounded: past [`MAX_BYTES`] the file is renamed to
//! `<project>.jsonl.1` (replacing the older one) and a new one begins, so
//! at most twice that is kept. It lives outside `projects/<project>/` so
//! that it outlives `down`, which is when a user may want to read why.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StateError;

/// Past this size the log is rotated.
pub const MAX_BYTES: u64 = 1 << 20;

/// One thing that happened to a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    pub project: String,
    /// The service, when the event is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The container (or network), when the event is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `start`, `die`, `restart`, `health_status`, `oom`, `drift-repair`,
    /// `flap-limit`, `create`, `stop`, `remove`, `watcher-start`, ...
    pub action: String,
    /// The exit code, for `die`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why, or the new state (`healthy`, `unhealthy`), in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Event {
    /// An event of `project` happening now.
    pub fn now(project: &str, action: &str) -> Event {
        Event {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            project: project.to_string(),
            service: None,
            container: None,
            action: action.to_string(),
            exit_code: None,
            detail: String::new(),
        }
    }

    pub fn container(mut self, service: &str, container: &str) -> Event {
        self.service = Some(service.to_string()).filter(|s| !s.is_empty());
        self.container = Some(container.to_string());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = detail.into();
        self
    }

    pub fn exit_code(mut self, code: i64) -> Event {
        self.exit_code = Some(code);
        self
    }

    /// One line for people: `TIME SERVICE CONTAINER ACTION DETAIL`.
    pub fn human(&self) -> String {
        let mut line = format!("{} {}", crate::time::rfc3339_millis(self.time), self.action);
        if let Some(c) = &self.container {
            line.push(' ');
            line.push_str(c);
        }
        if let Some(code) = self.exit_code {
            line.push_str(&format!(" (exit code {code})"));
        }
        if !self.detail.is_empty() {
            line.push_str(": ");
            line.push_str(&self.detail);
        }
        line
    }
}

/// The event log of one project.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    pub fn new(root: &Path, project: &str) -> EventLog {
        EventLog {
            path: root.join("events").join(format!("{project}.jsonl")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self) -> PathBuf {
        self.path.with_extension("jsonl.1")
    }

    /// Appends `event` (rotating the log when it is full).
    pub fn append(&self, event: &Event) -> Result<(), StateError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(StateError::io("create", dir))?;
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= MAX_BYTES) {
            std::fs::rename(&self.path, self.rotated())
                .map_err(StateError::io("rotate", &self.path))?;
        }
        // Plain data with string keys: serializing cannot fail.
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(StateError::io("open", &self.path))?;
        f.write_all(&line)
            .map_err(StateError::io("append to", &self.path))
    }

    /// Every event kept, oldest first (damaged lines skipped).
    pub fn read(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for path in [self.rotated(), self.path.clone()] {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.extend(parse_lines(&text));
        }
        out
    }
}

/// The whole lines of `text` that are events.
pub fn parse_lines(text: &str) -> impl Iterator<Item = Event> + '_ {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_append_read_back_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path(), "p");
        let e = Event::now("p", "die")
            .container("web", "p-web-1")
            .exit_code(137);
        log.append(&e).unwrap();
        log.append(&Event::now("p", "restart").detail("exited"))
            .unwrap();
        let back = log.read();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], e);
        assert!(back[0].human().contains("die p-web-1 (exit code 137)"));
        // Past the bound, the file starts again and the old one is kept once.
        let big = Event::now("p", "x").detail("y".repeat(MAX_BYTES as usize));
        log.append(&big).unwrap();
        log.append(&Event::now("p", "after")).unwrap();
        assert!(log.rotated().exists());
        let actions: Vec<String> = log.read().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["die", "restart", "x", "after"]);
        assert!(std::fs::metadata(log.path()).unwrap().len() < 1000);
    }
}
