//! `start`, `stop`, `restart`, `kill`, `pause`, `unpause` and `rm`: the
//! user acting on existing containers, by service.
//!
//! These do not plan: they act on the containers that exist, as docker
//! compose's do (`start` never creates one; `up` does). What they must get
//! right is the watcher: a container the user stopped or killed is not
//! drift. Each of these commands takes the project's lock (waiting for a
//! watcher round to finish), records the user's intent on the container's
//! entry (`stopped_by_user`, which the watcher's plans honour), and only
//! then acts, so no round can see the container stopped without the mark.
//! `start`, `restart` and `up` clear the mark.
//!
//! Order: `start` follows the dependencies (a service after those it
//! depends on), `stop` goes the other way.

use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::Failure;
use super::args::{Global, KillArgs, RmArgs, ServicesArgs, StopArgs};
use super::containers::{self, Container, Scope};
use crate::host::LinuxHost;
use crate::planner::backend::Runtime as _;
use crate::runtime::container::build::parse_signal;

/// How long stopping `c` may take: `-t`, else its service's
/// `stop_grace_period`, else the runtime's default.
fn grace(scope: &Scope, c: &Container, timeout: Option<u64>) -> Option<Duration> {
    timeout.map(Duration::from_secs).or_else(|| {
        scope
            .stack
            .as_ref()?
            .services
            .get(&c.service)?
            .stop_grace_period
            .map(|d| d.0)
    })
}

/// Runs `f` with the host and the selected containers, under the lock.
fn with_containers<T>(
    global: &Global,
    services: &[String],
    one_off: bool,
    f: impl AsyncFnOnce(
        &LinuxHost,
        &Scope,
        Vec<Container>,
        &crate::state::ProjectLock,
    ) -> Result<T, Failure>,
) -> Result<T, Failure> {
    containers::with_locked_host(global, async |host, scope, lock| {
        let list = containers::containers(host, scope, services, one_off).await?;
        f(host, scope, list, lock).await
    })
}

fn names(list: &[Container]) -> Vec<String> {
    list.iter().map(|c| c.name.clone()).collect()
}

/// Stops `list` in reverse dependency order, containers of one service together.
async fn stop_all(
    host: &LinuxHost,
    scope: &Scope,
    list: &[Container],
    timeout: Option<u64>,
) -> Result<(), Failure> {
    let mut groups: Vec<Vec<&Container>> = Vec::new();
    for c in list.iter().rev() {
        match groups.last_mut() {
            Some(g) if g[0].service == c.service => g.push(c),
            _ => groups.push(vec![c]),
        }
    }
    for group in groups {
        let stops = group.iter().map(|c| async move {
            let was_running = c.status.is_running();
            host.stop(&c.name, grace(scope, c, timeout))
                .await
                .map_err(|e| anyhow!("cannot stop {}: {e}", c.name))?;
            if was_running {
                eprintln!("Container {}  Stopped", c.name);
            }
            Ok::<(), anyhow::Error>(())
        });
        for r in futures::future::join_all(stops).await {
            r?;
        }
    }
    Ok(())
}

/// Starts `list` in dependency order.
async fn start_all(host: &LinuxHost, list: &[Container]) -> Result<(), Failure> {
    for c in list {
        if c.status.is_running() {
            continue;
        }
        host.start(&c.name)
            .await
            .map_err(|e| anyhow!("cannot start {}: {e}", c.name))?;
        eprintln!("Container {}  Started", c.name);
    }
    Ok(())
}

/// Runs `f` with the project's watcher stopped, and starts it again after.
fn without_watcher<T>(
    global: &Global,
    f: impl FnOnce() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let scope = containers::scope(global)?;
    let watcher = containers::suspend_watcher(&global.root, &scope.project)?;
    let result = f();
    if let Some(w) = watcher {
        w.resume()?;
    }
    result
}

/// `stack start`.
pub fn start(global: &Global, args: &ServicesArgs) -> Result<(), Failure> {
    without_watcher(global, || start_inner(global, args))
}

fn start_inner(global: &Global, args: &ServicesArgs) -> Result<(), Failure> {
    with_containers(
        global,
        &args.services,
        false,
        async |host, _, list, lock| {
            for s in &args.services {
                if !list.iter().any(|c| &c.service == s) {
                    return Err(anyhow!(
                        "service `{s}` has no container to start; `stack up {s}` creates it"
                    )
                    .into());
                }
            }
            containers::mark_stopped(lock, &names(&list), false)?;
            start_all(host, &list).await
        },
    )
}

/// `stack stop`.
pub fn stop(global: &Global, args: &StopArgs) -> Result<(), Failure> {
    with_containers(
        global,
        &args.services,
        false,
        async |host, scope, list, lock| {
            containers::mark_stopped(lock, &names(&list), true)?;
            stop_all(host, scope, &list, args.timeout).await
        },
    )
}

/// `stack restart`: stop, then start again (no recreate).
pub fn restart(global: &Global, args: &StopArgs) -> Result<(), Failure> {
    without_watcher(global, || restart_inner(global, args))
}

fn restart_inner(global: &Global, args: &StopArgs) -> Result<(), Failure> {
    with_containers(
        global,
        &args.services,
        false,
        async |host, scope, list, lock| {
            containers::mark_stopped(lock, &names(&list), false)?;
            stop_all(host, scope, &list, args.timeout).await?;
            let list = containers::containers(host, scope, &args.services, false).await?;
            start_all(host, &list).await
        },
    )
}

/// `stack kill`.
pub fn kill(global: &Global, args: &KillArgs) -> Result<(), Failure> {
    let signal = parse_signal(&args.signal).map_err(anyhow::Error::from)?;
    with_containers(
        global,
        &args.services,
        false,
        async |host, _, list, lock| {
            let running: Vec<Container> =
                list.into_iter().filter(|c| c.status.is_running()).collect();
            if running.is_empty() {
                eprintln!("no running container to kill");
                return Ok(());
            }
            // Marked first: a round must not see it dead and unmarked.
            containers::mark_stopped(lock, &names(&running), true)?;
            for c in &running {
                host.runtime()
                    .kill(&c.name, signal)
                    .map_err(|e| anyhow!("cannot kill {}: {e}", c.name))?;
                if c.paused() && matches!(signal, libc::SIGKILL | libc::SIGTERM) {
                    // A frozen process only acts on its signals once thawed.
                    let _ = host.runtime().resume(&c.name);
                }
                eprintln!("Container {}  Killed", c.name);
            }
            // A signal that does not end the process (SIGHUP to a daemon that
            // reloads) leaves a running container the watcher must keep watching.
            let deadline = Instant::now() + Duration::from_millis(500);
            let mut alive: Vec<String> = names(&running);
            while !alive.is_empty() && Instant::now() < deadline {
                alive.retain(|n| {
                    host.runtime().state(n).is_ok_and(|s| {
                        matches!(
                            s.status,
                            crate::runtime::container::Status::Running
                                | crate::runtime::container::Status::Paused
                        )
                    })
                });
                std::thread::sleep(Duration::from_millis(20));
            }
            containers::mark_stopped(lock, &alive, false)
        },
    )
}

/// `stack pause` (`freeze`) and `stack unpause`.
pub fn pause(global: &Global, args: &ServicesArgs, freeze: bool) -> Result<(), Failure> {
    with_containers(global, &args.services, false, async |host, _, list, _| {
        for c in list.iter().filter(|c| c.status.is_running()) {
            if freeze == c.paused() {
                continue;
            }
            let r = if freeze {
                host.runtime().pause(&c.name)
            } else {
                host.runtime().resume(&c.name)
            };
            r.map_err(|e| {
                anyhow!(
                    "cannot {} {}: {e}",
                    if freeze { "pause" } else { "unpause" },
                    c.name
                )
            })?;
            eprintln!(
                "Container {}  {}",
                c.name,
                if freeze { "Paused" } else { "Unpaused" }
            );
        }
        Ok(())
    })
}

/// `stack rm`: stopped containers only, unless `-s` stops them first.
pub fn rm(global: &Global, args: &RmArgs) -> Result<(), Failure> {
    with_containers(
        global,
        &args.services,
        true,
        async |host, scope, list, lock| {
            let list: Vec<Container> = if args.stop {
                containers::mark_stopped(lock, &names(&list), true)?;
                stop_all(host, scope, &list, None).await?;
                list
            } else {
                list.into_iter()
                    .filter(|c| !c.status.is_running())
                    .collect()
            };
            if list.is_empty() {
                eprintln!("No stopped containers");
                return Ok(());
            }
            for c in &list {
                host.remove_container(&c.name)
                    .await
                    .map_err(|e| anyhow!("cannot remove {}: {e}", c.name))?;
                let mut record = lock.read().map_err(anyhow::Error::from)?;
                record.containers.remove(&c.name);
                if !c.one_off {
                    // Not drift: the watcher leaves it removed; `up` makes it again.
                    record.removed_by_user.insert(c.name.clone());
                }
                lock.write(&record).map_err(anyhow::Error::from)?;
                eprintln!("Container {}  Removed", c.name);
            }
            Ok(())
        },
    )
}
