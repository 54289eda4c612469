//! `stack logs`, and the log lines a foreground `stack up` streams.
//!
//! Each container's runtime writes its output to a log of records (time,
//! stream, partial flag, text; see [`crate::runtime::container::logs`]).
//! Showing a project's logs means reading those of several containers and
//! **merging them by time**, so that a request and its answer in two
//! services appear in the order they happened. Each line gets compose's
//! prefix, `web-1  | `, padded to the longest name and coloured per service
//! (one colour from a fixed palette per service, in order of appearance).
//! Records a container wrote in pieces (a line longer than the runtime's
//! buffer is split into partial records) are joined back first.
//!
//! Following (`-f`, and `up` in the foreground) polls: every
//! [`POLL`] each container's log is read from where it stopped, and
//! every [`RELIST`] the project's containers are listed again, so new
//! containers (a scaled-up service, a restart that made its container
//! again) join the stream.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};

use super::Failure;
use super::args::{Global, LogsArgs};
use crate::planner::desired::labels;
use crate::runtime::container::{self, logs as records};
use crate::spec;

/// How often a followed log is read again.
pub const POLL: Duration = Duration::from_millis(50);
/// How often the project's containers are listed again while following.
pub const RELIST: Duration = Duration::from_millis(500);

/// Compose's palette order: one colour per service, in order of appearance.
const PALETTE: [&str; 12] = [
    "36", "33", "32", "35", "34", "31", "96", "93", "92", "95", "94", "91",
];

/// How lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
    pub prefix: bool,
    pub timestamps: bool,
}

/// A container whose logs are shown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub name: String,
    pub service: String,
    pub replica: u32,
}

impl Source {
    /// The prefix compose prints: `service-replica`.
    pub fn label(&self) -> String {
        format!("{}-{}", self.service, self.replica)
    }
}

/// Which containers of the project are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// Never these services.
    pub exclude: Vec<String>,
    /// Only this replica number.
    pub index: Option<u32>,
}

impl Filter {
    pub fn admits(&self, s: &Source) -> bool {
        (self.services.is_empty() || self.services.contains(&s.service))
            && !self.exclude.contains(&s.service)
            && self.index.is_none_or(|i| i == s.replica)
    }
}

/// The project's containers that `filter` admits, by name.
pub fn sources(rt: &container::Runtime, project: &str, filter: &Filter) -> Vec<Source> {
    let mut out = Vec::new();
    for id in rt.list().unwrap_or_default() {
        let Ok(config) = rt.config(&id) else {
            continue;
        };
        if config.labels.get(labels::PROJECT).map(String::as_str) != Some(project) {
            continue;
        }
        let source = Source {
            service: config
                .labels
                .get(labels::SERVICE)
                .cloned()
                .unwrap_or_else(|| id.clone()),
            replica: config
                .labels
                .get(labels::REPLICA)
                .and_then(|r| r.parse().ok())
                .unwrap_or(1),
            name: id,
        };
        if filter.admits(&source) {
            out.push(source);
        }
    }
    out.sort();
    out
}

/// Formats lines: prefix width and colours remembered across calls.
#[derive(Debug, Clone)]
pub struct Printer {
    style: Style,
    width: usize,
    colors: BTreeMap<String, &'static str>,
}

impl Printer {
    pub fn new(style: Style) -> Printer {
        Printer {
            style,
            width: 0,
            colors: BTreeMap::new(),
        }
    }

    /// Makes room for `source`'s prefix and gives its service a colour.
    pub fn add(&mut self, source: &Source) {
        self.width = self.width.max(source.label().chars().count());
        let next = PALETTE[self.colors.len() % PALETTE.len()];
        self.colors.entry(source.service.clone()).or_insert(next);
    }

    /// One line as printed (without the newline).
    pub fn line(&mut self, source: &Source, entry: &records::LogEntry) -> String {
        self.add(source);
        let mut out = String::new();
        if self.style.prefix {
            // Compose pads one beyond the longest name: `web-1  | `.
            let label = format!("{:<w$} | ", source.label(), w = self.width + 1);
            match (self.style.color, self.colors.get(&source.service)) {
                (true, Some(c)) => out.push_str(&format!("\x1b[{c}m{label}\x1b[0m")),
                _ => out.push_str(&label),
            }
        }
        if self.style.timestamps {
            out.push_str(&crate::time::rfc3339_nanos(
                UNIX_EPOCH + Duration::from_nanos(entry.time_nanos.min(u64::MAX as u128) as u64),
            ));
            out.push(' ');
        }
        out.push_str(&entry.text);
        out
    }
}

/// Joins partial records into whole lines.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: Option<records::LogEntry>,
}

impl Joiner {
    /// The whole line once `entry` completes one.
    pub fn feed(&mut self, entry: records::LogEntry) -> Option<records::LogEntry> {
        let whole = match self.pending.take() {
            Some(mut p) => {
                p.text.push_str(&entry.text);
                p.partial = entry.partial;
                p
            }
            None => entry,
        };
        if whole.partial {
            self.pending = Some(whole);
            None
        } else {
            Some(whole)
        }
    }
}

/// Whole lines of one batch of records.
pub fn join(entries: Vec<records::LogEntry>) -> Vec<records::LogEntry> {
    let mut j = Joiner::default();
    let mut out: Vec<records::LogEntry> = entries.into_iter().filter_map(|e| j.feed(e)).collect();
    out.extend(j.pending.take());
    out
}

/// The lines of several containers in time order (stable: a container's
/// own lines keep their order when their times are equal).
pub fn merge(batches: Vec<(usize, Vec<records::LogEntry>)>) -> Vec<(usize, records::LogEntry)> {
    let mut all: Vec<(usize, records::LogEntry)> = batches
        .into_iter()
        .flat_map(|(i, es)| es.into_iter().map(move |e| (i, e)))
        .collect();
    all.sort_by_key(|(_, e)| e.time_nanos);
    all
}

/// The last `n` (all when `None`).
pub fn tail<T>(mut v: Vec<T>, n: Option<usize>) -> Vec<T> {
    if let Some(n) = n
        && v.len() > n
    {
        v.drain(..v.len() - n);
    }
    v
}

/// `--tail`: a number or `all`.
pub fn parse_tail(text: &str) -> Result<Option<usize>, String> {
    if text == "all" || text == "-1" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("--tail `{text}` is not a number of lines nor `all`"))
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filter: Filter,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub tail: Option<usize>,
    pub follow: bool,
}

/// Prints the project's logs to `out`; with `follow`, until `stop` is set.
pub fn stream(
    rt: &container::Runtime,
    project: &str,
    query: &Query,
    printer: &mut Printer,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let until = query.until.map(nanos);
    let admit = |e: &records::LogEntry| until.is_none_or(|u| e.time_nanos < u);
    let mut known: Vec<Source> = sources(rt, project, &query.filter);
    for s in &known {
        printer.add(s);
    }
    // Followers first, so that nothing written while the history is read
    // is lost; what they return again is skipped by time.
    let mut followers: Vec<(records::Follower, Joiner, u128)> = Vec::new();
    let mut batches = Vec::new();
    for (i, s) in known.iter().enumerate() {
        let follower = query
            .follow
            .then(|| rt.follow_logs(&s.name, false).ok())
            .flatten();
        let history = rt.logs(&s.name, query.since).unwrap_or_default();
        let lines: Vec<_> = join(history).into_iter().filter(admit).collect();
        let last = lines.last().map(|e| e.time_nanos).unwrap_or(0);
        batches.push((i, tail(lines, query.tail)));
        if let Some(f) = follower {
            followers.push((f, Joiner::default(), last));
        }
    }
    for (i, e) in merge(batches) {
        writeln!(out, "{}", printer.line(&known[i], &e))?;
    }
    out.flush()?;
    if !query.follow {
        return Ok(());
    }
    let mut listed = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        if listed.elapsed() >= RELIST {
            listed = Instant::now();
            for s in sources(rt, project, &query.filter) {
                if known.contains(&s) {
                    continue;
                }
                if let Ok(f) = rt.follow_logs(&s.name, true) {
                    printer.add(&s);
                    known.push(s);
                    followers.push((f, Joiner::default(), 0));
                }
            }
        }
        let since = query.since.map(nanos).unwrap_or(0);
        let mut batches = Vec::new();
        for (i, (f, joiner, last)) in followers.iter_mut().enumerate() {
            let Ok(new) = f.poll() else { continue };
            let lines: Vec<_> = new
                .into_iter()
                .filter_map(|e| joiner.feed(e))
                .filter(|e| e.time_nanos > *last && e.time_nanos >= since)
                .filter(admit)
                .collect();
            if !lines.is_empty() {
                batches.push((i, lines));
            }
        }
        for (i, e) in merge(batches) {
            writeln!(out, "{}", printer.line(&known[i], &e))?;
        }
        out.flush()?;
    }
    Ok(())
}

/// Whether colours suit standard output (a terminal, and no `NO_COLOR`).
pub fn colors_wanted(no_color: bool) -> bool {
    use std::io::IsTerminal as _;
    !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// The project the command acts on: `-p NAME` alone, or the file's.
pub fn project_name(global: &Global) -> Result<String, Failure> {
    Ok(match &global.project_name {
        Some(p) if global.files.is_empty() => spec::load::normalize_project_name(p),
        _ => {
            let opts = super::load_options(global, &[])?;
            spec::load(&opts)?.stack.name
        }
    })
}

/// Runs `stack logs`.
pub fn main(global: &Global, args: &LogsArgs) -> ExitCode {
    match run(global, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => ExitCode::from(super::report(f)),
    }
}

fn run(global: &Global, args: &LogsArgs) -> Result<(), Failure> {
    let project = project_name(global)?;
    let now = SystemTime::now();
    let time = |t: &Option<String>| -> Result<Option<SystemTime>, Failure> {
        t.as_deref()
            .map(|t| crate::time::parse_since(t, now))
            .transpose()
            .map_err(|e| Failure::Other(e.into()))
    };
    let query = Query {
        filter: Filter {
            services: args.services.clone(),
            exclude: Vec::new(),
            index: args.index,
        },
        since: time(&args.since)?,
        until: time(&args.until)?,
        tail: parse_tail(&args.tail).map_err(|e| anyhow!(e))?,
        follow: args.follow,
    };
    let rt = container::Runtime::new(&global.root)
        .with_context(|| format!("cannot open the runtime under {}", global.root.display()))?;
    if args.follow {
        super::up::catch_signals()?;
    }
    let mut printer = Printer::new(Style {
        color: colors_wanted(args.no_color),
        prefix: !args.no_log_prefix,
        timestamps: args.timestamps,
    });
    let mut out = std::io::stdout().lock();
    match stream(
        &rt,
        &project,
        &query,
        &mut printer,
        &super::up::STOP,
        &mut out,
    ) {
        Ok(()) => Ok(()),
        // A closed pipe (`stack logs | head`) is how the reader says "enough".
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow!("cannot write the logs: {e}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use records::{LogEntry, Stream};

    fn entry(t: u128, text: &str, partial: bool) -> LogEntry {
        LogEntry {
            time_nanos: t,
            stream: Stream::Stdout,
            partial,
            text: text.into(),
        }
    }

    fn src(service: &str, replica: u32) -> Source {
        Source {
            name: format!("p-{service}-{replica}"),
            service: service.into(),
            replica,
        }
    }

    #[test]
    fn lines_merge_in_time_order_and_keep_their_own_order() {
        let merged = merge(vec![
            (0, vec![entry(1, "a1", false), entry(5, "a2", false)]),
            (1, vec![entry(3, "b1", false), entry(5, "b2", false)]),
        ]);
        let texts: Vec<_> = merged.iter().map(|(_, e)| e.text.as_str()).collect();
        assert_eq!(texts, ["a1", "b1", "a2", "b2"]);
    }

    #[test]
    fn partial_records_are_joined() {
        let lines = join(vec![
            entry(1, "hel", true),
            entry(2, "lo", false),
            entry(3, "x", false),
        ]);
        let texts: Vec<_> = lines.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["hello", "x"]);
        assert_eq!(lines[0].time_nanos, 1);
    }

    #[test]
    fn tail_and_its_flag() {
        assert_eq!(tail(vec![1, 2, 3], Some(2)), [2, 3]);
        assert_eq!(tail(vec![1, 2, 3], None), [1, 2, 3]);
        assert_eq!(parse_tail("all"), Ok(None));
        assert_eq!(parse_tail("5"), Ok(Some(5)));
        assert!(parse_tail("five").is_err());
    }

    #[test]
    fn prefixes_are_padded_and_coloured_per_service() {
        let mut p = Printer::new(Style {
            color: false,
            prefix: true,
            timestamps: false,
        });
        p.add(&src("web", 1));
        p.add(&src("database", 1));
        assert_eq!(
            p.line(&src("web", 1), &entry(0, "hi", false)),
            "web-1       | hi"
        );
        let mut c = Printer::new(Style {
            color: true,
            prefix: true,
            timestamps: true,
        });
        let a = c.line(&src("a", 1), &entry(1_000_000_000, "x", false));
        let b = c.line(&src("b", 1), &entry(0, "y", false));
        assert_eq!(a, "\x1b[36ma-1  | \x1b[0m1970-01-01T00:00:01.000000000Z x");
        assert!(b.starts_with("\x1b[33mb-1  | "), "{b}");
        let mut bare = Printer::new(Style::default());
        assert_eq!(bare.line(&src("a", 1), &entry(0, "z", false)), "z");
    }

    #[test]
    fn filters_by_service_exclusion_and_index() {
        let f = Filter {
            services: vec!["web".into()],
            exclude: vec![],
            index: Some(2),
        };
        assert!(f.admits(&src("web", 2)));
        assert!(!f.admits(&src("web", 1)));
        assert!(!f.admits(&src("db", 2)));
        let g = Filter {
            exclude: vec!["db".into()],
            ..Filter::default()
        };
        assert!(!g.admits(&src("db", 1)));
        assert!(g.admits(&src("web", 1)));
    }
}
