//! `stack events`: what the project's watcher saw and did.
//!
//! Reads the project's event log ([`crate::state::events`]), prints the
//! events kept (optionally since a time, of some services), then follows
//! the file for new ones until Ctrl-C, as `docker compose events` does.
//! `--until` or `--no-follow` print and exit instead.

use std::io::{Read as _, Seek as _, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};

use super::Failure;
use super::args::{EventsArgs, Global};
use crate::spec;
use crate::state::events::{Event, EventLog, parse_lines};

/// A time given on the command line, as milliseconds since the epoch.
fn parse_time(text: &str, now_ms: u64) -> anyhow::Result<u64> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(secs * 1000);
    }
    let unit = |s: &str| -> Option<u64> {
        let (n, mult) = if let Some(n) = s.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1000)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60_000)
        } else if let Some(n) = s.strip_suffix('h') {
            (n, 3_600_000)
        } else if let Some(n) = s.strip_suffix('d') {
            (n, 86_400_000)
        } else {
            return None;
        };
        n.parse::<u64>().ok().map(|n| n * mult)
    };
    if let Some(ago) = unit(t) {
        return Ok(now_ms.saturating_sub(ago));
    }
    rfc3339(t).ok_or_else(|| {
        anyhow!("`{t}` is not a time: give RFC 3339 (2026-11-25T21:00:00Z), Unix seconds, or a duration ago such as 10m")
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only) as milliseconds since the epoch.
fn rfc3339(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z').or_else(|| t.strip_suffix("+00:00"))?;
    let (date, time) = t.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let ms: u64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs `stack events`.
pub fn run(global: &Global, args: &EventsArgs) -> Result<(), Failure> {
    let project = match &global.project_name {
        Some(p) if global.files.is_empty() => spec::load::normalize_project_name(p),
        _ => {
            let opts = super::load_options(global, &[])?;
            spec::load(&opts)?.stack.name
        }
    };
    let now = now_ms();
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        let now = 1_764_107_481_000;
        assert_eq!(parse_time("1764107481", now).unwrap(), now);
        assert_eq!(parse_time("10m", now).unwrap(), now - 600_000);
        assert_eq!(parse_time("2025-11-25T21:51:21Z", now).unwrap(), now);
        assert_eq!(
            parse_time("2025-11-25T21:51:21.5Z", now).unwrap(),
            now + 500
        );
        assert_eq!(
            crate::state::events::format_time(parse_time("2000-02-29T00:00:00Z", 0).unwrap()),
            "2000-02-29T00:00:00.000Z"
        );
        assert!(parse_time("yesterday", now).is_err());
    }
}
