//! `stack events`: what the project's watcher saw and did.
//!
//! Reads the project's event log ([`crate::state::events`]), prints the
//! events kept (optionally since a time, of some services), then follows
//! the file for new ones until Ctrl-C, as `docker compose events` does.
//! `--until` or `--no-follow` print and exit instead.

use std::io::{Read as _, Seek as _, Write as _};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::Failure;
use super::args::{EventsArgs, Global};
use crate::spec;
use crate::state::events::{Event, EventLog, parse_lines};

/// Runs `stack events`.
pub fn run(global: &Global, args: &EventsArgs) -> Result<(), Failure> {
    let project = match &global.project_name {
        Some(p) if global.files.is_empty() => spec::load::normalize_project_name(p),
        _ => {
            let opts = super::load_options(global, &[])?;
            spec::load(&opts)?.stack.name
        }
    };
    let now = SystemTime::now();
    let time = |t: &str| {
        crate::time::parse_since(t, now)
            .map(crate::time::millis)
            .map_err(anyhow::Error::from)
    };
    let since = args.since.as_deref().map(time).transpose()?;
    let until = args.until.as_deref().map(time).transpose()?;
    let wanted = |e: &Event| {
        since.is_none_or(|s| e.time >= s)
            && until.is_none_or(|u| e.time <= u)
            && (args.services.is_empty()
                || e.service
                    .as_ref()
                    .is_some_and(|s| args.services.contains(s)))
    };
    let print = |e: &Event| -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if args.json {
            // Plain data with string keys: serializing cannot fail.
            writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default())?;
        } else {
            writeln!(out, "{}", e.human())?;
        }
        out.flush()
    };
    let log = EventLog::new(&global.root, &project);
    // Where following starts: the end of what is read now.
    let mut offset = std::fs::metadata(log.path()).map(|m| m.len()).unwrap_or(0);
    for e in log.read().iter().filter(|e| wanted(e)) {
        print(e).context("cannot write the events")?;
    }
    if until.is_some() || args.no_follow {
        return Ok(());
    }
    // Follow: poll the file (cheap, and survives rotation) until Ctrl-C,
    // which ends the process.
    let mut pending = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(mut f) = std::fs::File::open(log.path()) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < offset {
            // Rotated: the new file starts from its beginning.
            offset = 0;
            pending.clear();
        }
        if len == offset {
            continue;
        }
        f.seek(std::io::SeekFrom::Start(offset))
            .context("cannot read the events")?;
        let mut text = String::new();
        f.read_to_string(&mut text)
            .context("cannot read the events")?;
        offset += text.len() as u64;
        pending.push_str(&text);
        // Only whole lines; the rest waits for its end.
        let cut = pending.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let whole: String = pending.drain(..cut).collect();
        for e in parse_lines(&whole).filter(|e| wanted(e)) {
            print(&e).context("cannot write the events")?;
        }
    }
}
