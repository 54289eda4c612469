//! The executor: carries out a plan through the host traits.
//!
//! An operation starts as soon as every operation it waits for has
//! finished, so independent work overlaps (pulls with network creation,
//! unrelated services with each other) while a container still starts only
//! after its dependencies are up. When more are ready than may run, the
//! ones with the longest chain of operations behind them go first (the
//! critical path: the next stop of a dependency chain before removals). At most `parallelism` operations act on
//! the host at once; `wait` operations (a dependency becoming healthy or
//! completing) only poll, so they do not count against the bound. Every
//! state change is reported to a [`Progress`] sink, which the CLI renders.
//!
//! Failure: on the first failed operation no new operation starts; the
//! ones already running finish, and the error says which operation failed,
//! why, and what was done. Every change on the host is applied to the
//! state record as it happens; the record is saved at least every
//! `save_interval` while work goes on and always when the run ends, so
//! whatever the outcome, the saved record lists exactly what exists, and
//! running again picks up from there. (Were the process killed between two
//! saves, `observe` repairs the difference: live containers missing from
//! the record are adopted through their labels, entries for objects that
//! are gone are dropped.)
//!
//! All operations run as futures on the calling task, polled together
//! (a small hand-rolled "unordered set" over `poll_fn`), so the executor
//! needs no `'static` bounds or spawned tasks; host implementations must
//! not block inside their futures (the Linux ones move blocking syscalls to
//! `spawn_blocking` or a dedicated thread).

use std::collections::{BTreeMap, BTreeSet};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use super::backend::{BackendError, Host, Status};
use super::plan::{Action, Op, Plan, Target, Until};
use crate::state::{ContainerRecord, ObjectRecord, ProjectLock, ProjectRecord, StateError};

/// How the executor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// At most this many operations act on the host at once (at least 1).
    pub parallelism: usize,
    /// How long a `wait` waits for a dependency to become healthy or complete.
    pub wait_timeout: Duration,
    /// How often a `wait` asks for the dependency's status.
    pub poll_interval: Duration,
    /// Changes to the record are saved at most this often while operations
    /// run (and always when the run ends, whatever its outcome).
    pub save_interval: Duration,
    /// How long stopping a container may take before it is killed, for
    /// every container (`-t`); `None`: each service's `stop_grace_period`.
    pub stop_timeout: Option<Duration>,
}

impl Default for ExecOptions {
    fn default() -> ExecOptions {
        ExecOptions {
            parallelism: 8,
            wait_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(250),
            save_interval: Duration::from_millis(100),
            stop_timeout: None,
        }
    }
}

/// What happened to an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpState {
    Running,
    Done,
    /// Done, with something the user should know (an optional dependency failed).
    Warning(String),
    Failed(String),
}

/// Where the executor reports each operation's state changes.
pub trait Progress: Send + Sync {
    fn update(&self, op: &Op, state: &OpState);
}

/// Reports nothing.
impl Progress for () {
    fn update(&self, _: &Op, _: &OpState) {}
}

/// Where the executor saves the state record after each change.
pub trait Recorder: Send + Sync {
    fn save(&self, record: &ProjectRecord) -> Result<(), StateError>;
}

impl Recorder for ProjectLock {
    fn save(&self, record: &ProjectRecord) -> Result<(), StateError> {
        self.write(record)
    }
}

/// What a successful run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The record as saved last.
    pub record: ProjectRecord,
    /// Ids of the operations that finished, in the order they did.
    pub done: Vec<usize>,
    pub warnings: Vec<String>,
}

/// Why a plan was not carried out to the end.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "{op} failed: {cause}. {} of {total} operations had finished and no new ones were started; the state record lists exactly what exists, so fix the cause and run again",
        done.len()
    )]
    Failed {
        op: String,
        cause: String,
        /// Ids of the operations that finished.
        done: Vec<usize>,
        total: usize,
        /// The record as saved last: what exists.
        record: Box<ProjectRecord>,
    },
}

impl ExecError {
    /// The record as saved last.
    pub fn record(&self) -> &ProjectRecord {
        match self {
            ExecError::Failed { record, .. } => record,
        }
    }

    /// Ids of the operations that finished.
    pub fn done(&self) -> &[usize] {
        match self {
            ExecError::Failed { done, .. } => done,
        }
    }
}

/// The record and whether it holds changes not saved yet.
struct Recording {
    record: ProjectRecord,
    dirty: bool,
    /// When it was last saved (clock time); `None`: not yet in this run.
    saved_at: Option<Duration>,
}

/// Shared by the operations of one run.
struct Ctx<'a, H> {
    plan: &'a Plan,
    host: &'a H,
    recorder: &'a dyn Recorder,
    opts: ExecOptions,
    record: Mutex<Recording>,
    /// Digests of the images pulled in this run, by reference.
    pulled: Mutex<BTreeMap<String, String>>,
}

type OpFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>>;

/// Carries out `plan` on `host`, starting from `record` (the project's
/// record as read under its lock), saving it through `recorder`.
pub async fn execute<H: Host>(
    plan: &Plan,
    host: &H,
    record: ProjectRecord,
    recorder: &dyn Recorder,
    progress: &dyn Progress,
    opts: &ExecOptions,
) -> Result<Outcome, ExecError> {
    let opts = ExecOptions {
        parallelism: opts.parallelism.max(1),
        ..*opts
    };
    let ctx = Ctx {
        plan,
        host,
        recorder,
        opts,
        record: Mutex::new(Recording {
            record,
            dirty: false,
            saved_at: None,
        }),
        pulled: Mutex::new(BTreeMap::new()),
    };
    let total = plan.ops.len();
    let fail = |op: String, cause: String, done: Vec<usize>, ctx: &Ctx<'_, H>| ExecError::Failed {
        op,
        cause,
        done,
        total,
        record: Box::new(ctx.snapshot()),
    };

    // First make the record true to what was observed.
    if !plan.stale.containers.is_empty()
        || !plan.stale.networks.is_empty()
        || !plan.stale.volumes.is_empty()
        || !plan.adopt.is_empty()
    {
        let stale = &plan.stale;
        ctx.update(|r| {
            for name in &stale.containers {
                r.containers.remove(name);
            }
            for key in &stale.networks {
                r.networks.remove(key);
            }
            for key in &stale.volumes {
                r.volumes.remove(key);
            }
            for c in &plan.adopt {
                r.containers.insert(c.name.clone(), c.clone());
            }
        })
        .map_err(|cause| fail("updating the state record".into(), cause, Vec::new(), &ctx))?;
    }

    let mut pending: Vec<usize> = plan.ops.iter().map(|op| op.after.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); total];
    for op in &plan.ops {
        for &before in &op.after {
            if let Some(list) = dependents.get_mut(before) {
                list.push(op.id);
            }
        }
    }
    // Of the operations ready to run, those with the longest chain of
    // operations waiting behind them go first: with the parallelism bound
    // full of slow removals (or creations), the next stop (or start) of a
    // dependency chain would otherwise wait for a free slot while the
    // whole chain waits for it. Operations come after those they wait for,
    // so one pass from the end computes each chain's length.
    let mut chain = vec![0usize; total];
    for id in (0..total).rev() {
        chain[id] = 1 + dependents[id]
            .iter()
            .filter(|&&d| d > id)
            .map(|&d| chain[d])
            .max()
            .unwrap_or(0);
    }
    let key = |id: usize| (std::cmp::Reverse(chain[id]), id);
    let mut ready: BTreeSet<(std::cmp::Reverse<usize>, usize)> =
        (0..total).filter(|&i| pending[i] == 0).map(key).collect();
    let mut running: Vec<(usize, OpFuture<'_>)> = Vec::new();
    let mut acting = 0usize;
    let mut done = Vec::new();
    let mut warnings = Vec::new();
    let mut failure: Option<(usize, String)> = None;
    loop {
        if failure.is_none() {
            let startable: Vec<(std::cmp::Reverse<usize>, usize)> = ready
                .iter()
                .copied()
                .filter(|&(_, id)| {
                    let waits = plan.ops[id].action == Action::Wait;
                    if waits {
                        return true;
                    }
                    if acting < opts.parallelism {
                        acting += 1;
                        return true;
                    }
                    false
                })
                .collect();
            for (chain, id) in startable {
                ready.remove(&(chain, id));
                let op = &plan.ops[id];
                progress.update(op, &OpState::Running);
                crate::timing::mark(|| format!("begin {}", op.text()));
                running.push((id, Box::pin(ctx.run(op))));
            }
        }
        if running.is_empty() {
            break;
        }
        let (index, id, result) = poll_fn(|cx| {
            for (index, (id, fut)) in running.iter_mut().enumerate() {
                if let Poll::Ready(result) = fut.as_mut().poll(cx) {
                    return Poll::Ready((index, *id, result));
                }
            }
            Poll::Pending
        })
        .await;
        drop(running.swap_remove(index));
        let op = &plan.ops[id];
        crate::timing::mark(|| format!("end {}", op.text()));
        if op.action != Action::Wait {
            acting -= 1;
        }
        match result {
            Ok(warning) => {
                match warning {
                    Some(w) => {
                        progress.update(op, &OpState::Warning(w.clone()));
                        warnings.push(w);
                    }
                    None => progress.update(op, &OpState::Done),
                }
                done.push(id);
                for &next in &dependents[id] {
                    pending[next] -= 1;
                    if pending[next] == 0 {
                        ready.insert(key(next));
                    }
                }
            }
            Err(cause) => {
                progress.update(op, &OpState::Failed(cause.clone()));
                failure.get_or_insert((id, cause));
            }
        }
    }
    if let Some((id, cause)) = failure {
        let op = &plan.ops[id];
        let cause = match ctx.flush(true) {
            Ok(()) => cause,
            Err(e) => format!("{cause} (and then {e})"),
        };
        return Err(fail(describe(op), cause, done, &ctx));
    }
    // A round that changed nothing (the watcher's, most of the time)
    // leaves the record as it is on disk: no rewrite every resync.
    let revision = plan.revision;
    let behind = ctx.recording().record.revision < revision;
    let recorded = if behind {
        ctx.update(|r| r.revision = revision)
    } else {
        Ok(())
    };
    recorded
        .and_then(|()| ctx.flush(true))
        .map_err(|cause| fail("recording the revision".into(), cause, done.clone(), &ctx))?;
    Ok(Outcome {
        record: ctx.snapshot(),
        done,
        warnings,
    })
}

/// "recreate container app-web-1", for messages.
pub fn describe(op: &Op) -> String {
    op.text()
}

impl<H: Host> Ctx<'_, H> {
    fn recording(&self) -> std::sync::MutexGuard<'_, Recording> {
        // A panic elsewhere cannot leave the record half-changed: every
        // change is a plain map insert or remove, so a poisoned lock's data
        // is still consistent.
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn snapshot(&self) -> ProjectRecord {
        self.recording().record.clone()
    }

    /// Changes the record, and saves it when the last save is old enough.
    ///
    /// Saving after every single change would rewrite the whole record
    /// once per container (quadratic for large stacks). Deferring is safe:
    /// a crash before the save leaves a live object missing from the record
    /// (adopted through its labels by the next `observe`) or a record entry
    /// for a removed one (dropped as stale), and every run ends with a save.
    fn update(&self, change: impl FnOnce(&mut ProjectRecord)) -> Result<(), String> {
        change(&mut self.recording().record);
        self.recording().dirty = true;
        self.flush(false)
    }

    /// Saves the record if it changed: now (`force`), or if the last save
    /// is older than the save interval.
    fn flush(&self, force: bool) -> Result<(), String> {
        let now = self.host.now();
        let mut r = self.recording();
        let due = match r.saved_at {
            None => true,
            Some(at) => now.saturating_sub(at) >= self.opts.save_interval,
        };
        if !r.dirty || !(force || due) {
            return Ok(());
        }
        self.recorder
            .save(&r.record)
            .map_err(|e| format!("could not save the state record: {e}"))?;
        r.dirty = false;
        r.saved_at = Some(now);
        Ok(())
    }

    fn stop_timeout(&self, name: &str) -> Option<Duration> {
        self.opts
            .stop_timeout
            .or_else(|| self.plan.specs.stop_timeouts.get(name).copied())
    }

    /// Runs one operation: `Ok(Some(warning))` when it finished with a warning.
    async fn run(&self, op: &Op) -> Result<Option<String>, String> {
        let host = self.host;
        let text = |e: BackendError| e.to_string();
        match (&op.action, &op.target) {
            (Action::Pull, Target::Image { reference }) => {
                let info = host.pull(reference).await.map_err(text)?;
                if let Some(d) = info.digest {
                    self.pulled
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(reference.clone(), d);
                }
            }
            (Action::Create | Action::Recreate, Target::Network { key, name }) => {
                let spec = self
                    .plan
                    .specs
                    .networks
                    .get(key)
                    .ok_or_else(|| missing_spec("network", key))?;
                if op.action == Action::Recreate {
                    host.remove_network(name).await.map_err(text)?;
                    self.update(|r| {
                        r.networks.remove(key);
                    })?;
                }
                host.create_network(spec).await.map_err(text)?;
                self.update(|r| {
                    r.networks.insert(
                        key.clone(),
                        object_record(&spec.name, &spec.config_hash, &spec.labels),
                    );
                })?;
            }
            (Action::Remove, Target::Network { key, name }) => {
                host.remove_network(name).await.map_err(text)?;
                self.update(|r| {
                    r.networks.remove(key);
                })?;
            }
            (Action::Create, Target::Volume { key, .. }) => {
                let spec = self
                    .plan
                    .specs
                    .volumes
                    .get(key)
                    .ok_or_else(|| missing_spec("volume", key))?;
                host.create_volume(spec).await.map_err(text)?;
                self.update(|r| {
                    r.volumes.insert(
                        key.clone(),
                        object_record(&spec.name, &spec.config_hash, &spec.labels),
                    );
                })?;
            }
            (Action::Remove, Target::Volume { key, name }) => {
                host.remove_volume(name).await.map_err(text)?;
                self.update(|r| {
                    r.volumes.remove(key);
                })?;
            }
            (Action::Create | Action::Recreate, Target::Container { name, .. }) => {
                let spec = self
                    .plan
                    .specs
                    .containers
                    .get(name)
                    .ok_or_else(|| missing_spec("container", name))?;
                if op.action == Action::Recreate {
                    host.stop(name, self.stop_timeout(name))
                        .await
                        .map_err(text)?;
                    host.remove_container(name).await.map_err(text)?;
                    self.update(|r| {
                        r.containers.remove(name);
                    })?;
                }
                let mut spec = spec.clone();
                if spec.image_digest.is_none() {
                    spec.image_digest = self
                        .pulled
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(&spec.image)
                        .cloned();
                }
                let id = host.create_container(&spec).await.map_err(text)?;
                let revision = self.plan.revision;
                self.update(|r| {
                    r.removed_by_user.remove(&spec.name);
                    r.containers.insert(
                        spec.name.clone(),
                        ContainerRecord {
                            name: spec.name.clone(),
                            id,
                            service: spec.service.clone(),
                            replica: spec.replica,
                            config_hash: spec.config_hash.clone(),
                            image: spec.image_digest.clone().unwrap_or(spec.image.clone()),
                            revision,
                            one_off: false,
                            stopped_by_user: false,
                            labels: spec.labels.clone(),
                        },
                    );
                })?;
            }
            (Action::Start, Target::Container { name, .. }) => {
                host.start(name).await.map_err(text)?;
                // Started on purpose: no longer the user's stopped container.
                if self
                    .snapshot()
                    .containers
                    .get(name)
                    .is_some_and(|c| c.stopped_by_user)
                {
                    self.update(|r| {
                        if let Some(c) = r.containers.get_mut(name) {
                            c.stopped_by_user = false;
                        }
                    })?;
                }
            }
            (Action::Stop, Target::Container { name, .. }) => {
                host.stop(name, self.stop_timeout(name))
                    .await
                    .map_err(text)?;
            }
            (Action::Remove, Target::Container { name, .. }) => {
                host.stop(name, self.stop_timeout(name))
                    .await
                    .map_err(text)?;
                host.remove_container(name).await.map_err(text)?;
                self.update(|r| {
                    r.containers.remove(name);
                })?;
            }
            (Action::Disconnect, Target::Attachment { network, container }) => {
                host.disconnect(network, container).await.map_err(text)?;
            }
            (Action::Connect, Target::Attachment { network, container }) => {
                let attachment = self
                    .plan
                    .specs
                    .attachments
                    .get(&(container.clone(), network.clone()))
                    .cloned()
                    .unwrap_or_default();
                host.connect(network, container, &attachment)
                    .await
                    .map_err(text)?;
            }
            (Action::Wait, Target::Container { name, .. }) => {
                let Some(wait) = op.wait else {
                    return Ok(None);
                };
                return match self.wait(name, wait.until).await {
                    Ok(()) => Ok(None),
                    Err(e) if !wait.required => Ok(Some(format!(
                        "{name} did not become {}: {e}; continuing because the dependency is not required",
                        wait.until
                    ))),
                    Err(e) => Err(e),
                };
            }
            (action, target) => {
                return Err(format!(
                    "the executor cannot {action} a {target}; this is a bug in stack's planner, please report it"
                ));
            }
        }
        Ok(None)
    }

    /// Polls until `name` is healthy or has completed successfully.
    async fn wait(&self, name: &str, until: Until) -> Result<(), String> {
        let start = self.host.now();
        loop {
            let status = self.host.status(name).await.map_err(|e| e.to_string())?;
            match (until, status) {
                (_, None) => return Err(format!("{name} does not exist")),
                (Until::Healthy, Some(Status::Healthy)) => return Ok(()),
                (Until::Healthy, Some(Status::Unhealthy)) => {
                    return Err(format!("{name} is unhealthy; `stack logs` shows why"));
                }
                (Until::Healthy, Some(Status::Running)) => {
                    return Err(format!(
                        "{name} has no health check, so it can never become healthy; give its service a healthcheck or depend on it with condition: service_started"
                    ));
                }
                (Until::Healthy, Some(Status::Exited { code })) => {
                    return Err(format!(
                        "{name} exited with code {code} instead of becoming healthy"
                    ));
                }
                (Until::CompletedSuccessfully, Some(Status::Exited { code: 0 })) => return Ok(()),
                (Until::CompletedSuccessfully, Some(Status::Exited { code })) => {
                    return Err(format!("{name} exited with code {code}"));
                }
                _ => {}
            }
            if self.host.now().saturating_sub(start) >= self.opts.wait_timeout {
                return Err(format!(
                    "{name} did not become {until} within {}s",
                    self.opts.wait_timeout.as_secs()
                ));
            }
            self.host.sleep(self.opts.poll_interval).await;
        }
    }
}

fn object_record(name: &str, hash: &str, labels: &BTreeMap<String, String>) -> ObjectRecord {
    ObjectRecord {
        name: name.to_string(),
        config_hash: hash.to_string(),
        external: false,
        labels: labels.clone(),
    }
}

fn missing_spec(kind: &str, name: &str) -> String {
    format!(
        "the plan has no definition for {kind} `{name}`; this is a bug in stack's planner, please report it"
    )
}
