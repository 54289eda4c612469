//! `stack up` in the foreground: the logs, the end on Ctrl-C or on a
//! container's exit, and stopping the stack in order.
//!
//! While the stack runs, a thread streams the attached services' logs
//! (shared rendering in [`super::logs`]). The stack ends when the user
//! presses Ctrl-C, or, with `--abort-on-container-exit`, when any container
//! exits. It is then stopped like `down` would order it but without
//! removing anything: **dependents first**, level by level (services that
//! nothing running depends on, then what they depended on), each level in
//! parallel, each container given its `stop_grace_period` (or `-t`)
//! between SIGTERM and SIGKILL. A second Ctrl-C kills whatever still runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::logs::{self, Filter, Printer, Query, Style};
use crate::host::LinuxHost;
use crate::planner::backend::{Runtime as _, Status};
use crate::planner::desired::labels;
use crate::planner::graph::Graph;
use crate::runtime::container;
use crate::spec::Stack;

/// Streams the project's logs to standard output until `done` is set.
pub fn log_thread(
    rt: container::Runtime,
    project: String,
    filter: Filter,
    style: Style,
    since: SystemTime,
    done: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let query = Query {
            filter,
            since: Some(since),
            until: None,
            tail: None,
            follow: true,
        };
        let mut printer = Printer::new(style);
        let mut out = std::io::stdout().lock();
        let _ = logs::stream(&rt, &project, &query, &mut printer, &done, &mut out);
    })
}

/// Services in the order they stop: each inner list only after the ones
/// before it, and in parallel within itself. Dependents come first.
pub fn stop_levels(graph: &Graph) -> Vec<Vec<String>> {
    // Depth from the top: a service nothing depends on is level 0; a
    // dependency is one level deeper than its deepest dependent.
    let mut level: BTreeMap<String, usize> = BTreeMap::new();
    let order: Vec<&str> = graph.order().collect();
    for s in order.iter().rev() {
        let l = graph
            .dependents(s)
            .iter()
            .filter_map(|(d, _)| level.get(*d).map(|l| l + 1))
            .max()
            .unwrap_or(0);
        level.insert((*s).to_string(), l);
    }
    let depth = level.values().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for (s, l) in level {
        out[l].push(s);
    }
    out
}

/// Stops the project's running containers, dependents first; a second
/// signal (`signals` reaching 2) kills what still runs.
pub async fn stop_in_order(
    host: &LinuxHost,
    stack: &Stack,
    timeout: Option<Duration>,
    signals: &'static std::sync::atomic::AtomicUsize,
) {
    let project = stack.name.clone();
    let Ok(live) = host.list(&project).await else {
        return;
    };
    let levels = match Graph::new(stack) {
        Ok(g) => stop_levels(&g),
        Err(_) => vec![stack.services.keys().cloned().collect()],
    };
    // Killer: on the second Ctrl-C, SIGKILL every container of the project.
    let finished = Arc::new(AtomicBool::new(false));
    let killer = {
        let finished = finished.clone();
        let rt = host.runtime().clone();
        let names: Vec<String> = live.iter().map(|c| c.name.clone()).collect();
        std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                if signals.load(Ordering::Relaxed) >= 2 {
                    eprintln!("killing the containers");
                    for n in &names {
                        // Straight to the process: its shim is busy with the
                        // graceful stop and would answer a kill request late.
                        match rt.state(n).ok().and_then(|s| s.pid) {
                            Some(pid) => {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(pid),
                                    nix::sys::signal::Signal::SIGKILL,
                                );
                            }
                            None => {
                                let _ = rt.kill(n, libc::SIGKILL);
                            }
                        }
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    for level in levels {
        let stops = live
            .iter()
            .filter(|c| c.status.is_running())
            .filter(|c| {
                c.labels
                    .get(labels::SERVICE)
                    .is_some_and(|s| level.contains(s))
            })
            .map(|c| {
                let grace = timeout.or_else(|| {
                    c.labels
                        .get(labels::SERVICE)
                        .and_then(|s| stack.services.get(s))
                        .and_then(|s| s.stop_grace_period.map(|d| d.0))
                });
                async move {
                    eprintln!("  stopping {}", c.name);
                    let _ = host.stop(&c.name, grace).await;
                }
            });
        futures::future::join_all(stops).await;
    }
    // Containers of services the file no longer has.
    for c in &live {
        let known = c
            .labels
            .get(labels::SERVICE)
            .is_some_and(|s| stack.services.contains_key(s));
        if !known && c.status.is_running() {
            let _ = host.stop(&c.name, timeout).await;
        }
    }
    finished.store(true, Ordering::Relaxed);
    let _ = killer.join();
}

/// With `--abort-on-container-exit`: waits until a container of the
/// watched services exits (or `stop` is set by Ctrl-C), keeping health
/// probes and /etc/hosts current meanwhile. Returns the container that
/// exited and its code.
pub async fn until_exit(
    host: &LinuxHost,
    project: &str,
    watched: &Filter,
    stop: &AtomicBool,
) -> Option<(String, i64)> {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(list) = host.list(project).await {
            for c in list {
                let source = logs::Source {
                    name: c.name.clone(),
                    service: c.labels.get(labels::SERVICE).cloned().unwrap_or_default(),
                    replica: c
                        .labels
                        .get(labels::REPLICA)
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(1),
                };
                if !watched.admits(&source) {
                    continue;
                }
                if let Status::Exited { code } = c.status {
                    return Some((c.name, code));
                }
            }
        }
        host.upkeep(None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// An exit code as a process exit status (negative: killed, 1).
pub fn exit_status(code: i64) -> u8 {
    u8::try_from(code).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::graph::{DepKind, Edge};
    use crate::spec::model::Condition;

    #[test]
    fn dependents_stop_first_and_siblings_together() {
        // web -> api -> db, worker -> db
        let edge = Edge {
            kind: DepKind::DependsOn,
            condition: Condition::ServiceStarted,
            required: true,
            restart: false,
        };
        let e = |a: &str, b: &str| (a.to_string(), b.to_string(), edge);
        let g = Graph::from_edges(
            ["web", "api", "db", "worker"].map(String::from),
            [e("web", "api"), e("api", "db"), e("worker", "db")],
        )
        .unwrap();
        let levels = stop_levels(&g);
        assert_eq!(levels[0], ["web", "worker"]);
        assert_eq!(levels[1], ["api"]);
        assert_eq!(levels[2], ["db"]);
    }
}
