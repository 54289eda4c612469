//! What `up`, `down` and `rollback` print while the executor works.
//!
//! The executor reports every operation's state changes through
//! [`Progress`]. On a terminal, [`Live`] keeps **one line per resource**
//! (image, network, volume, container) and redraws them in place as their
//! state moves (Pulling, Creating, Created, Starting, Started, Waiting,
//! Healthy, Stopping, Removing, Removed, Error), like compose's display;
//! elsewhere (a log file, a pipe, CI) [`Plain`] prints one line per
//! finished operation, which reads well in a file. What a line says is a
//! pure function of the operation and its state ([`word`], [`render`]),
//! tested below; only [`Live`] writes escape sequences.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::planner::execute::{OpState, Progress};
use crate::planner::plan::{Action, Op, Target};

/// The word for an operation's state: "Creating" while it runs, "Created"
/// when done.
pub fn word(action: Action, until_healthy: bool, state: &OpState) -> &'static str {
    let running = matches!(state, OpState::Running);
    match state {
        OpState::Failed(_) => return "Error",
        OpState::Warning(_) => return "Warning",
        _ => {}
    }
    match (action, running) {
        (Action::Pull, true) => "Pulling",
        (Action::Pull, false) => "Pulled",
        (Action::Create, true) => "Creating",
        (Action::Create, false) => "Created",
        (Action::Recreate, true) => "Recreating",
        (Action::Recreate, false) => "Recreated",
        (Action::Start, true) => "Starting",
        (Action::Start, false) => "Started",
        (Action::Stop, true) => "Stopping",
        (Action::Stop, false) => "Stopped",
        (Action::Remove, true) => "Removing",
        (Action::Remove, false) => "Removed",
        (Action::Connect, true) => "Connecting",
        (Action::Connect, false) => "Connected",
        (Action::Disconnect, true) => "Disconnecting",
        (Action::Disconnect, false) => "Disconnected",
        (Action::Wait, true) => "Waiting",
        (Action::Wait, false) if until_healthy => "Healthy",
        (Action::Wait, false) => "Exited",
    }
}

/// The resource an operation acts on: its kind as compose prints it, and
/// its name. Attachments show on their container's line.
pub fn resource(target: &Target) -> (&'static str, String) {
    match target {
        Target::Image { reference } => ("Image", reference.clone()),
        Target::Network { name, .. } => ("Network", name.clone()),
        Target::Volume { name, .. } => ("Volume", name.clone()),
        Target::Container { name, .. } => ("Container", name.clone()),
        Target::Attachment { container, .. } => ("Container", container.clone()),
    }
}

/// One resource's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: &'static str,
    pub name: String,
    pub word: &'static str,
    /// Still working on it.
    pub busy: bool,
    pub failed: bool,
    pub elapsed: Duration,
}

/// The lines for `rows`, names and words aligned in columns.
pub fn render(rows: &[Row]) -> Vec<String> {
    let name_w = rows
        .iter()
        .map(|r| r.kind.len() + 1 + r.name.chars().count())
        .max()
        .unwrap_or(0);
    let word_w = rows.iter().map(|r| r.word.len()).max().unwrap_or(0);
    rows.iter()
        .map(|r| {
            let icon = if r.failed {
                '✘'
            } else if r.busy {
                '⠿'
            } else {
                '✔'
            };
            let what = format!("{} {}", r.kind, r.name);
            format!(
                " {icon} {what:<name_w$}  {:>word_w$}  {:.1}s",
                r.word,
                r.elapsed.as_secs_f64()
            )
        })
        .collect()
}

/// Whether to show pulls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub quiet_pull: bool,
}

fn until_healthy(op: &Op) -> bool {
    op.wait
        .is_none_or(|w| w.until == crate::planner::plan::Until::Healthy)
}

/// One plain line per finished operation (not a terminal).
#[derive(Debug, Default)]
pub struct Plain {
    pub settings: Settings,
}

impl Progress for Plain {
    fn update(&self, op: &Op, state: &OpState) {
        if self.settings.quiet_pull && op.action == Action::Pull {
            return;
        }
        if op.action == Action::Wait && *state == OpState::Running {
            eprintln!("  waiting: {}", op.text());
        }
        match state {
            OpState::Running => {}
            OpState::Done => eprintln!("  done: {}", op.text()),
            OpState::Warning(w) => eprintln!("  warning: {}: {w}", op.text()),
            OpState::Failed(e) => eprintln!("  FAILED: {}: {e}", op.text()),
        }
    }
}

#[derive(Debug)]
struct Entry {
    row: Row,
    started: Instant,
}

/// Lines redrawn in place on a terminal.
#[derive(Debug)]
pub struct Live {
    settings: Settings,
    state: Mutex<(Vec<Entry>, usize)>,
}

impl Live {
    pub fn new(settings: Settings) -> Live {
        Live {
            settings,
            state: Mutex::new((Vec::new(), 0)),
        }
    }
}

impl Progress for Live {
    fn update(&self, op: &Op, state: &OpState) {
        if self.settings.quiet_pull && op.action == Action::Pull {
            return;
        }
        let (kind, name) = resource(&op.target);
        let word = word(op.action, until_healthy(op), state);
        // A poisoned lock still holds rows that are whole: plain data.
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (entries, drawn) = &mut *guard;
        let now = Instant::now();
        match entries
            .iter_mut()
            .find(|e| e.row.kind == kind && e.row.name == name)
        {
            Some(e) => {
                if e.row.failed {
                    return;
                }
                // The time shown runs from the resource's first operation.
                e.row.word = word;
                e.row.busy = *state == OpState::Running;
                e.row.failed = matches!(state, OpState::Failed(_));
                e.row.elapsed = now - e.started;
            }
            None => entries.push(Entry {
                row: Row {
                    kind,
                    name,
                    word,
                    busy: *state == OpState::Running,
                    failed: matches!(state, OpState::Failed(_)),
                    elapsed: Duration::ZERO,
                },
                started: now,
            }),
        }
        let rows: Vec<Row> = entries.iter().map(|e| e.row.clone()).collect();
        let mut err = std::io::stderr().lock();
        let mut text = String::new();
        if *drawn > 0 {
            text.push_str(&format!("\x1b[{drawn}A"));
        }
        for line in render(&rows) {
            text.push_str("\r\x1b[2K");
            text.push_str(&line);
            text.push('\n');
        }
        *drawn = rows.len();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

/// The display for this process: live lines on a terminal, plain otherwise.
pub fn pick(settings: Settings) -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb") {
        Box::new(Live::new(settings))
    } else {
        Box::new(Plain { settings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_compose() {
        assert_eq!(word(Action::Create, true, &OpState::Running), "Creating");
        assert_eq!(word(Action::Create, true, &OpState::Done), "Created");
        assert_eq!(word(Action::Start, true, &OpState::Done), "Started");
        assert_eq!(word(Action::Wait, true, &OpState::Running), "Waiting");
        assert_eq!(word(Action::Wait, true, &OpState::Done), "Healthy");
        assert_eq!(word(Action::Wait, false, &OpState::Done), "Exited");
        assert_eq!(word(Action::Pull, true, &OpState::Running), "Pulling");
        assert_eq!(word(Action::Remove, true, &OpState::Done), "Removed");
        assert_eq!(word(Action::Stop, true, &OpState::Running), "Stopping");
        assert_eq!(
            word(Action::Start, true, &OpState::Failed("x".into())),
            "Error"
        );
    }

    #[test]
    fn attachments_show_on_their_container() {
        let t = Target::Attachment {
            network: "n".into(),
            container: "p-web-1".into(),
        };
        assert_eq!(resource(&t), ("Container", "p-web-1".to_string()));
    }

    #[test]
    fn rows_are_aligned() {
        let rows = [
            Row {
                kind: "Network",
                name: "p_default".into(),
                word: "Created",
                busy: false,
                failed: false,
                elapsed: Duration::from_millis(100),
            },
            Row {
                kind: "Container",
                name: "p-web-1".into(),
                word: "Starting",
                busy: true,
                failed: false,
                elapsed: Duration::from_millis(1250),
            },
            Row {
                kind: "Container",
                name: "p-db-1".into(),
                word: "Error",
                busy: false,
                failed: true,
                elapsed: Duration::ZERO,
            },
        ];
        assert_eq!(
            render(&rows),
            [
                " ✔ Network p_default   Created  0.1s",
                " ⠿ Container p-web-1  Starting  1.2s",
                " ✘ Container p-db-1      Error  0.0s",
            ]
        );
    }
}
