//! What the everyday commands share: which project they act on, its
//! containers by service, and the project's lock.
//!
//! A command names a project the way `down` does: through the stack file
//! (found as `up` finds it), or with `-p NAME` alone when there is no file,
//! in which case the containers' labels stand in for the file. The
//! containers come from the runtime (what is live), each with its service,
//! replica and whether `stack run` made it; commands that act on several
//! services order them by their dependencies (`depends_on` is recorded as
//! a label), so `start` brings dependencies first and `stop` last.
//!
//! Changing a container's user-visible state (`stop`, `kill`, `start`, a
//! one-off's record) happens under the project's lock, which the watcher
//! takes for each round: a command waits for the round in progress, and
//! the watcher skips rounds while the command holds it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::Failure;
use super::args::Global;
use crate::host::{HostOptions, LinuxHost};
use crate::planner::backend::{Runtime as _, Status};
use crate::planner::desired::labels;
use crate::runtime::container::State;
use crate::spec::env::Environment;
use crate::spec::{self, Stack};
use crate::state::{ProjectLock, StateError, Store};

/// The project a command acts on.
pub struct Scope {
    pub project: String,
    /// The stack file, when there is one.
    pub stack: Option<Stack>,
    pub env: Environment,
}

/// Finds the project: from the stack file, or from `-p NAME` alone.
pub fn scope(global: &Global) -> Result<Scope, Failure> {
    let opts = super::load_options(global, &[])?;
    match spec::load(&opts) {
        Ok(p) => Ok(Scope {
            project: p.stack.name.clone(),
            stack: Some(p.stack),
            env: p.env,
        }),
        Err(diags) if no_file(&diags) && global.project_name.is_some() => {
            let name = global.project_name.clone().unwrap_or_default();
            Ok(Scope {
                project: spec::load::normalize_project_name(&name),
                stack: None,
                env: Environment::default(),
            })
        }
        Err(diags) => Err(diags.into()),
    }
}

/// Whether loading failed only because there is no stack file.
fn no_file(diags: &spec::Diagnostics) -> bool {
    diags.0.len() == 1 && diags.0[0].message.starts_with("no stack file found")
}

/// One container of the project, as it is now.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub service: String,
    pub replica: u32,
    /// Made by `stack run`.
    pub one_off: bool,
    /// Status with health, as the planner sees it.
    pub status: Status,
    /// The runtime's record: times, pid, exit, paused.
    pub state: Option<State>,
    pub labels: BTreeMap<String, String>,
}

impl Container {
    pub fn paused(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| s.status == crate::runtime::container::Status::Paused)
    }
}

/// A tokio runtime for one command.
pub fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    super::up::tokio()
}

/// Opens the host side of the project (no DNS serving: the watcher's job).
pub async fn open_host(global: &Global, scope: &Scope) -> Result<LinuxHost, Failure> {
    Ok(LinuxHost::open(
        &global.root,
        &scope.project,
        scope.stack.as_ref().map(|s| (s, &scope.env)),
        HostOptions::default(),
    )
    .await
    .map_err(anyhow::Error::from)?)
}

/// The project's containers of `services` (one-offs too) and the runtime
/// that runs them, for commands that then read each container's cgroup or
/// /proc directly (`stats`, `top`) and need no async host after that.
pub fn with_runtime(
    global: &Global,
    services: &[String],
) -> Result<(Vec<Container>, crate::runtime::container::Runtime), Failure> {
    let scope = scope(global)?;
    let rt = tokio()?;
    rt.block_on(async {
        let host = open_host(global, &scope).await?;
        let list = containers(&host, &scope, services, true).await;
        let runtime = host.runtime().clone();
        host.close().await;
        Ok((list?, runtime))
    })
}

/// The project's containers of `services` (all when empty), dependencies
/// first, then by replica. One-off containers only with `one_off`.
/// Naming a service the project does not have is an error.
pub async fn containers(
    host: &LinuxHost,
    scope: &Scope,
    services: &[String],
    one_off: bool,
) -> Result<Vec<Container>, Failure> {
    let live = host
        .list(&scope.project)
        .await
        .map_err(anyhow::Error::from)?;
    let known: BTreeSet<String> = match &scope.stack {
        Some(s) => s.services.keys().cloned().collect(),
        None => live
            .iter()
            .filter_map(|c| c.labels.get(labels::SERVICE).cloned())
            .collect(),
    };
    for s in services {
        if !known.contains(s) {
            return Err(anyhow!(
                "no such service: `{s}`; `stack config --services` lists the services"
            )
            .into());
        }
    }
    let record = Store::new(host.runtime().root())
        .read(&scope.project)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in live {
        let Some(service) = c.labels.get(labels::SERVICE).cloned() else {
            continue;
        };
        if !services.is_empty() && !services.contains(&service) {
            continue;
        }
        let is_one_off = c.labels.get(labels::ONE_OFF).is_some_and(|v| v == "true")
            || record.containers.get(&c.name).is_some_and(|r| r.one_off);
        if is_one_off && !one_off {
            continue;
        }
        if let Some(d) = c.labels.get(labels::DEPENDS_ON) {
            deps.entry(service.clone())
                .or_default()
                .extend(d.split(',').map(str::to_string));
        }
        out.push(Container {
            state: host.runtime().state(&c.name).ok(),
            replica: c
                .labels
                .get(labels::REPLICA)
                .and_then(|r| r.parse().ok())
                .unwrap_or(1),
            name: c.name,
            service,
            one_off: is_one_off,
            status: c.status,
            labels: c.labels,
        });
    }
    if let Some(stack) = &scope.stack {
        for (name, s) in &stack.services {
            let d = deps.entry(name.clone()).or_default();
            d.extend(s.dependencies().into_iter().map(|(d, _)| d.to_string()));
        }
    }
    let rank = dependency_rank(&deps);
    out.sort_by(|a, b| {
        let ra = rank.get(&a.service).copied().unwrap_or(0);
        let rb = rank.get(&b.service).copied().unwrap_or(0);
        (ra, &a.service, a.one_off, a.replica, &a.name)
            .cmp(&(rb, &b.service, b.one_off, b.replica, &b.name))
    });
    Ok(out)
}

/// Each service's depth in the dependency graph (0: depends on nothing);
/// a cycle, which the loader already refuses, just stops the count.
fn dependency_rank(deps: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, usize> {
    fn depth(
        s: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        memo: &mut BTreeMap<String, usize>,
        seen: &mut BTreeSet<String>,
    ) -> usize {
        if let Some(d) = memo.get(s) {
            return *d;
        }
        if !seen.insert(s.to_string()) {
            return 0;
        }
        let d = deps
            .get(s)
            .map(|ds| {
                ds.iter()
                    .map(|x| depth(x, deps, memo, seen) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        memo.insert(s.to_string(), d);
        d
    }
    let mut memo = BTreeMap::new();
    for s in deps.keys() {
        depth(s, deps, &mut memo, &mut BTreeSet::new());
    }
    memo
}

/// Runs `f` on the project's host under the project's lock (waiting for a
/// watcher round to end), then closes the host, whatever `f` returned.
pub fn with_locked_host<T>(
    global: &Global,
    f: impl AsyncFnOnce(&LinuxHost, &Scope, &ProjectLock) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let scope = scope(global)?;
    let rt = tokio()?;
    rt.block_on(async {
        let host = open_host(global, &scope).await?;
        let result = async {
            let lock = lock(&global.root, &scope.project)?;
            f(&host, &scope, &lock).await
        }
        .await;
        host.close().await;
        result
    })
}

/// Takes the project's lock, waiting (up to a minute) for a watcher round
/// or another command to finish with it.
pub fn lock(root: &std::path::Path, project: &str) -> Result<ProjectLock, Failure> {
    let store = Store::new(root);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match store.lock(project) {
            Ok(l) => return Ok(l),
            Err(StateError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(anyhow::Error::from(e).into()),
        }
    }
}

/// Records (or clears) that the user stopped these containers, so that
/// the watcher leaves them (or takes care of them again).
pub fn mark_stopped(lock: &ProjectLock, names: &[String], stopped: bool) -> Result<(), Failure> {
    let mut record = lock.read().map_err(anyhow::Error::from)?;
    let mut changed = false;
    for n in names {
        if let Some(c) = record.containers.get_mut(n)
            && c.stopped_by_user != stopped
        {
            c.stopped_by_user = stopped;
            changed = true;
        }
    }
    if changed {
        lock.write(&record).map_err(anyhow::Error::from)?;
    }
    Ok(())
}

/// The container of replica `index` of `service`.
pub fn replica<'a>(
    list: &'a [Container],
    service: &str,
    index: u32,
) -> Result<&'a Container, Failure> {
    list.iter()
        .find(|c| c.service == service && c.replica == index && !c.one_off)
        .ok_or_else(|| {
            anyhow!(
                "service `{service}` has no container number {index}; `stack ps -a` lists them, `stack up` creates them"
            )
            .into()
        })
}

/// The project's watcher, stopped for a while and started again as it was.
///
/// Published ports on 127.0.0.1 are served by a proxy in the process that
/// published them, and the watcher serves those of every container: a
/// command that starts containers stops the watcher first (so the ports
/// are free and nothing races with it), and restarts it afterwards with
/// the same command line, working directory and environment; the new
/// watcher serves every running container's ports again.
pub struct SuspendedWatcher {
    root: std::path::PathBuf,
    project: String,
    argv: Vec<std::ffi::OsString>,
    cwd: Option<std::path::PathBuf>,
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

fn watcher_lock(root: &std::path::Path, project: &str) -> std::path::PathBuf {
    root.join("run")
        .join("watch")
        .join(format!("{project}.lock"))
}

fn lock_held(path: &std::path::Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| f.try_lock_shared().is_err())
}

/// Stops the project's watcher, if one runs, remembering how to restart it.
pub fn suspend_watcher(
    root: &std::path::Path,
    project: &str,
) -> Result<Option<SuspendedWatcher>, Failure> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = watcher_lock(root, project);
    if !lock_held(&path) {
        return Ok(None);
    }
    let pid: Option<u32> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    let Some(pid) = pid else {
        return Ok(None);
    };
    let split = |bytes: Vec<u8>| -> Vec<std::ffi::OsString> {
        bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
            .collect()
    };
    let argv = split(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default());
    let env = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
        .into_iter()
        .filter_map(|kv| {
            let b = kv.as_bytes();
            let eq = b.iter().position(|c| *c == b'=')?;
            Some((
                std::ffi::OsStr::from_bytes(&b[..eq]).to_os_string(),
                std::ffi::OsStr::from_bytes(&b[eq + 1..]).to_os_string(),
            ))
        })
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    super::up::stop_watcher(root, project)?;
    if argv.is_empty() {
        return Ok(None);
    }
    Ok(Some(SuspendedWatcher {
        root: root.to_path_buf(),
        project: project.to_string(),
        argv,
        cwd,
        env,
    }))
}

impl SuspendedWatcher {
    /// Starts the watcher again and waits until it holds its lock.
    pub fn resume(self) -> Result<(), Failure> {
        let dir = self.root.join("run").join("watch");
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", self.project)))?;
        let mut cmd = std::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).env_clear().envs(self.env);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        // Its own process group, as `up -d` starts it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow!("cannot restart the project's watcher: {e}"))?;
        let lock = watcher_lock(&self.root, &self.project);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !lock_held(&lock) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(anyhow!(
                    "the project's watcher exited at once ({status}); `stack up -d` starts it again"
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}
