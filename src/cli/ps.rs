//! `stack ps`: the project's containers, as docker compose lists them.
//!
//! Each row is one container: its name, image, service, a status in
//! compose's words ("Up 3 minutes (healthy)", "Exited (1) 5 seconds ago",
//! "Created", "Up 2 hours (Paused)") and its published ports. Uptime comes
//! from the runtime's record of when the process started (and ended).
//! Stopped containers and the one-off containers of `stack run` show only
//! with `-a` (or when `--status` asks for them). `--format json` prints one
//! array of objects with compose's field names.
//!
//! What the project's watcher does shows too: it keeps a restart record
//! ([`crate::watch::restarts`]), so an exited container waiting out its
//! backoff reads "Restarting (1) 2 seconds ago", one past the flap limit
//! says its restarts stopped, and JSON has docker's `RestartCount`. An OOM
//! kill comes from the runtime's exit record (`OOMKilled`).

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Failure;
use super::args::{Global, ListFormat, PsArgs, PsStatus};
use super::containers::{self, Container};
use crate::planner::backend::Status;
use crate::planner::desired::labels;
use crate::runtime::container::Status as RunStatus;
use crate::watch::restarts::{ContainerRestarts, Restarts};

/// Runs `stack ps`.
pub fn run(global: &Global, args: &PsArgs) -> Result<(), Failure> {
    let scope = containers::scope(global)?;
    let rt = containers::tokio()?;
    let rows = rt.block_on(async {
        let host = containers::open_host(global, &scope).await?;
        let list = containers::containers(&host, &scope, &args.services, args.all).await;
        let mut rows = Vec::new();
        for c in list.unwrap_or_default() {
            let ports = host.networks().ports(&c.name).await;
            rows.push((c, ports));
        }
        host.close().await;
        Ok::<_, Failure>(rows)
    })?;
    let restarts = crate::watch::restarts::read(&global.root, &scope.project);
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(c, _)| {
            let state = state_of(c, &restarts);
            if args.status.is_empty() {
                args.all || c.status.is_running() || state == PsStatus::Restarting
            } else {
                args.status.contains(&state)
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.list_services {
        let mut seen = std::collections::BTreeSet::new();
        for (c, _) in &rows {
            if seen.insert(c.service.clone()) {
                writeln!(out, "{}", c.service)?;
            }
        }
        return Ok(());
    }
    if args.quiet {
        for (c, _) in &rows {
            writeln!(out, "{}", c.name)?;
        }
        return Ok(());
    }
    let now = now_ms();
    if args.format == ListFormat::Json {
        let items: Vec<Value> = rows
            .iter()
            .map(|(c, ports)| json_row(c, ports, &scope.project, &restarts, now))
            .collect();
        writeln!(out, "{}", Value::Array(items))?;
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(c, ports)| {
            vec![
                c.name.clone(),
                image_of(c),
                c.service.clone(),
                status_text(c, &restarts, now),
                ports.iter().map(port_text).collect::<Vec<_>>().join(", "),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        render_table(&["NAME", "IMAGE", "SERVICE", "STATUS", "PORTS"], &table)
    )?;
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart, trailing spaces trimmed.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            s.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut text = line(header.to_vec());
    for r in rows {
        text.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    text
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The image reference the container was created from.
pub fn image_of(c: &Container) -> String {
    c.labels.get(labels::IMAGE).cloned().unwrap_or_default()
}

/// The watcher's restart record of `c`.
fn restarts_of<'a>(c: &Container, restarts: &'a Restarts) -> Option<&'a ContainerRestarts> {
    restarts.containers.get(&c.name)
}

/// The container's state in compose's words (`--status`, JSON `State`).
fn state_of(c: &Container, restarts: &Restarts) -> PsStatus {
    let waiting = restarts_of(c, restarts).is_some_and(|r| r.waiting && !r.gave_up);
    match c.state.as_ref().map(|s| s.status) {
        Some(RunStatus::Exited) if waiting => PsStatus::Restarting,
        Some(RunStatus::Paused) => PsStatus::Paused,
        Some(RunStatus::Dead) => PsStatus::Dead,
        Some(RunStatus::Created | RunStatus::Creating) => PsStatus::Created,
        Some(RunStatus::Exited) => PsStatus::Exited,
        Some(RunStatus::Running) => PsStatus::Running,
        None => match c.status {
            Status::Created => PsStatus::Created,
            Status::Exited { .. } if waiting => PsStatus::Restarting,
            Status::Exited { .. } => PsStatus::Exited,
            _ => PsStatus::Running,
        },
    }
}

fn state_name(s: PsStatus) -> &'static str {
    match s {
        PsStatus::Created => "created",
        PsStatus::Running => "running",
        PsStatus::Paused => "paused",
        PsStatus::Restarting => "restarting",
        PsStatus::Removing => "removing",
        PsStatus::Exited => "exited",
        PsStatus::Dead => "dead",
    }
}

fn health_of(c: &Container) -> &'static str {
    match c.status {
        Status::Healthy => "healthy",
        Status::Unhealthy => "unhealthy",
        Status::Starting => "starting",
        _ => "",
    }
}

/// The code of its last exit, from the same runtime record as the rest of
/// the row (the planner's status was read a moment earlier, and a
/// container that exited in between would show a stale code).
fn exit_code(c: &Container) -> i64 {
    match (c.state.as_ref().and_then(|s| s.exit), c.status) {
        (Some(e), _) => i64::from(e.code),
        (None, Status::Exited { code }) => code,
        _ => 0,
    }
}

/// Whether its last exit was an OOM kill.
fn oom_killed(c: &Container) -> bool {
    c.state
        .as_ref()
        .and_then(|s| s.exit)
        .is_some_and(|e| e.oom_killed)
}

/// "Up 3 minutes (healthy)", "Exited (1) 5 seconds ago", "Created",
/// "Restarting (1) 2 seconds ago", "Exited (1) 3 seconds ago (flapping:
/// restarts stopped)".
pub fn status_text(c: &Container, restarts: &Restarts, now: u64) -> String {
    let since = |t: Option<u64>| human_duration(now.saturating_sub(t.unwrap_or(now)) / 1000);
    let state = c.state.as_ref();
    match state_of(c, restarts) {
        PsStatus::Created => "Created".into(),
        PsStatus::Dead => "Dead".into(),
        PsStatus::Restarting => format!(
            "Restarting ({}) {} ago",
            exit_code(c),
            since(state.and_then(|s| s.finished_at))
        ),
        PsStatus::Exited => {
            let mut text = format!(
                "Exited ({}) {} ago",
                exit_code(c),
                since(state.and_then(|s| s.finished_at))
            );
            if oom_killed(c) {
                text.push_str(" (OOM killed)");
            }
            if restarts_of(c, restarts).is_some_and(|r| r.gave_up) {
                text.push_str(" (flapping: restarts stopped)");
            }
            text
        }
        s => {
            let mut text = format!("Up {}", since(state.and_then(|s| s.started_at)));
            if s == PsStatus::Paused {
                text.push_str(" (Paused)");
            } else {
                match c.status {
                    Status::Healthy => text.push_str(" (healthy)"),
                    Status::Unhealthy => text.push_str(" (unhealthy)"),
                    Status::Starting => text.push_str(" (health: starting)"),
                    _ => {}
                }
            }
            text
        }
    }
}

/// docker's human durations: "Less than a second", "5 seconds",
/// "About a minute", "3 minutes", "About an hour", "5 hours", "2 days", ...
pub fn human_duration(seconds: u64) -> String {
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86400);
    match seconds {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if d < 14 => format!("{d} days"),
        _ if d < 60 => format!("{} weeks", d / 7),
        _ if d < 365 * 2 => format!("{} months", d / 30),
        _ => format!("{} years", d / 365),
    }
}

fn port_text(p: &crate::network::PublishedPort) -> String {
    format!(
        "{}:{}->{}/{}",
        p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string()),
        p.host_port,
        p.target,
        p.protocol
    )
}

fn json_row(
    c: &Container,
    ports: &[crate::network::PublishedPort],
    project: &str,
    restarts: &Restarts,
    now: u64,
) -> Value {
    let record = restarts_of(c, restarts);
    let state = c.state.as_ref();
    let created = state.map_or(0, |s| s.created_at);
    let publishers: Vec<Value> = ports
        .iter()
        .map(|p| {
            json!({
                "URL": p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string()),
                "TargetPort": p.target,
                "PublishedPort": p.host_port,
                "Protocol": p.protocol,
            })
        })
        .collect();
    json!({
        "ID": state.map(|s| s.id.clone()).unwrap_or_else(|| c.name.clone()),
        "Name": c.name,
        "Names": c.name,
        "Project": project,
        "Service": c.service,
        "Image": image_of(c),
        "State": state_name(state_of(c, restarts)),
        "Health": health_of(c),
        "ExitCode": exit_code(c),
        "OOMKilled": oom_killed(c),
        "RestartCount": record.map_or(0, |r| r.count),
        "Flapping": record.is_some_and(|r| r.gave_up),
        "Status": status_text(c, restarts, now),
        "Publishers": publishers,
        "Ports": ports.iter().map(port_text).collect::<Vec<_>>().join(", "),
        "CreatedAt": crate::time::rfc3339(created),
        "RunningFor": format!("{} ago", human_duration(now.saturating_sub(created) / 1000)),
        "Labels": c.labels,
        "OneOff": c.one_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(180), "3 minutes");
        assert_eq!(human_duration(3700), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn the_watchers_restarts_show_in_the_status() {
        let c = Container {
            name: "p-web-1".into(),
            service: "web".into(),
            replica: 1,
            one_off: false,
            status: Status::Exited { code: 1 },
            state: None,
            labels: Default::default(),
        };
        let mut r = Restarts::default();
        assert!(status_text(&c, &r, 0).starts_with("Exited (1) "));
        let entry = r.containers.entry(c.name.clone()).or_default();
        entry.count = 3;
        entry.waiting = true;
        assert!(status_text(&c, &r, 0).starts_with("Restarting (1) "));
        assert_eq!(state_name(state_of(&c, &r)), "restarting");
        let entry = r.containers.entry(c.name.clone()).or_default();
        entry.waiting = false;
        entry.gave_up = true;
        let text = status_text(&c, &r, 0);
        assert!(text.ends_with("(flapping: restarts stopped)"), "{text}");
        assert_eq!(json_row(&c, &[], "p", &r, 0)["RestartCount"], 3);
    }

    #[test]
    fn tables_pad_columns() {
        let t = render_table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }
}
