//! An in-memory host for tests: [`FakeHost`] implements every host trait
//! over plain maps and records each action it is asked to do.
//!
//! It behaves like a strict host: creating what exists, removing a running
//! container, or removing a network that still has containers attached
//! fails, so a plan in the wrong order fails its test. Tests can make any
//! action fail ([`FakeHost::fail_on`]), take time ([`FakeHost::delay`]),
//! or leave a container healthy, unhealthy or exited when it starts
//! ([`FakeHost::on_start`]). Its clock is virtual: `sleep` advances it at
//! once, so waiting for a health check costs no time. [`Sandbox`] runs the
//! whole pipeline (observe, plan, execute, keep the revision) against it,
//! the way `stack up` will against the real host.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::PlanError;
use super::backend::{
    BackendError, Clock, ContainerSpec, ImageInfo, Images, LiveContainer, LiveObject, NetworkSpec,
    Networks, Runtime, Status, VolumeSpec, Volumes,
};
use super::desired::labels;
use super::execute::{ExecError, ExecOptions, Outcome, Recorder, execute};
use super::hash::revision_document;
use super::observe::observe;
use super::plan::{DownOptions, Plan, UpOptions, plan_down, plan_up};
use crate::spec::Stack;
use crate::spec::model::ServiceNetwork;
use crate::state::{ProjectRecord, StateError};

/// A container in the fake runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContainer {
    pub id: String,
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    pub image: Option<String>,
    /// Host names of the networks it is attached to.
    pub networks: BTreeSet<String>,
    /// Host names of networks whose link to it broke (a test's drift).
    pub detached: BTreeSet<String>,
    /// The container whose network namespace it lost (a test's drift;
    /// a start clears it, as a real start joins the namespace again).
    pub stray_namespace: Option<String>,
    /// What it was created from.
    pub spec: ContainerSpec,
}

/// Everything the fake host holds.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// The local image store: reference to digest.
    pub images: BTreeMap<String, String>,
    /// What a pull finds: reference to digest (absent: the pull fails,
    /// unless `open_registry`).
    pub registry: BTreeMap<String, String>,
    /// Every reference can be pulled (its digest derived from its name).
    pub open_registry: bool,
    pub networks: BTreeMap<String, LiveObject>,
    pub volumes: BTreeMap<String, LiveObject>,
    pub containers: BTreeMap<String, FakeContainer>,
}

/// One action, with when it began and ended on a shared counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `"<action> <object>"`, e.g. `"start p-web-1"`, `"create_network p_default"`.
    pub what: String,
    pub began: u64,
    pub ended: u64,
}

/// An in-memory host.
#[derive(Debug, Default)]
pub struct FakeHost {
    world: Mutex<World>,
    calls: Mutex<Vec<Call>>,
    tick: AtomicU64,
    failures: Mutex<BTreeMap<String, String>>,
    delays: Mutex<BTreeMap<String, Duration>>,
    on_start: Mutex<BTreeMap<String, Status>>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    clock: AtomicU64,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Test support: a panicking test poisons nothing we need to distrust.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeHost {
    pub fn new() -> FakeHost {
        FakeHost::default()
    }

    /// Puts an image in the local store.
    pub fn add_image(&self, reference: &str, digest: &str) {
        lock(&self.world)
            .images
            .insert(reference.into(), digest.into());
    }

    /// Makes an image pullable.
    pub fn publish(&self, reference: &str, digest: &str) {
        lock(&self.world)
            .registry
            .insert(reference.into(), digest.into());
    }

    /// Makes the action `what` (as in [`Call::what`]) fail with `message`.
    pub fn fail_on(&self, what: &str, message: &str) {
        lock(&self.failures).insert(what.into(), message.into());
    }

    /// Makes the action `what` take `duration` (real time).
    pub fn delay(&self, what: &str, duration: Duration) {
        lock(&self.delays).insert(what.into(), duration);
    }

    /// The status container `name` has after it starts (default: running).
    pub fn on_start(&self, name: &str, status: Status) {
        lock(&self.on_start).insert(name.into(), status);
    }

    /// Sets a container's status, as if its process or health check changed.
    pub fn set_status(&self, name: &str, status: Status) {
        if let Some(c) = lock(&self.world).containers.get_mut(name) {
            c.status = status;
        }
    }

    /// A copy of everything the host holds.
    pub fn world(&self) -> World {
        lock(&self.world).clone()
    }

    /// Changes the world directly (for a test's starting point).
    pub fn edit(&self, f: impl FnOnce(&mut World)) {
        f(&mut lock(&self.world));
    }

    /// Every action so far, in the order they began.
    pub fn calls(&self) -> Vec<Call> {
        let mut calls = lock(&self.calls).clone();
        calls.sort_by_key(|c| c.began);
        calls
    }

    /// The actions' names, in the order they began.
    pub fn call_names(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.what).collect()
    }

    /// Forgets the actions so far.
    pub fn clear_calls(&self) {
        lock(&self.calls).clear();
    }

    /// The most actions that were in progress at once.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Runs `body` as the action `what`: logged, maybe delayed, maybe failed.
    async fn act<T>(
        &self,
        what: String,
        body: impl FnOnce(&mut World) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let began = self.tick.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = lock(&self.delays).get(&what).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        } else {
            // Let other operations interleave, as a real host would.
            tokio::task::yield_now().await;
        }
        let failure = lock(&self.failures).get(&what).cloned();
        let result = match failure {
            Some(message) => Err(BackendError::failed(message)),
            None => body(&mut lock(&self.world)),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let ended = self.tick.fetch_add(1, Ordering::SeqCst);
        lock(&self.calls).push(Call { what, began, ended });
        result
    }
}

fn not_found(kind: &'static str, name: &str) -> BackendError {
    BackendError::NotFound {
        kind,
        name: name.to_string(),
    }
}

impl Images for FakeHost {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        Ok(lock(&self.world).images.get(reference).map(|d| ImageInfo {
            reference: reference.to_string(),
            digest: Some(d.clone()),
            pulled_at: None,
        }))
    }

    async fn pull(&self, reference: &str) -> Result<ImageInfo, BackendError> {
        let r = reference.to_string();
        self.act(format!("pull {reference}"), move |w| {
            let digest = match w.registry.get(&r) {
                Some(d) => d.clone(),
                None if w.open_registry => super::hash::digest(&Value::String(r.clone())),
                None => {
                    return Err(BackendError::failed(format!(
                        "{r}: not found in the registry"
                    )));
                }
            };
            w.images.insert(r.clone(), digest.clone());
            Ok(ImageInfo {
                reference: r,
                digest: Some(digest),
                pulled_at: None,
            })
        })
        .await
    }
}

impl Networks for FakeHost {
    async fn inspect_network(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        Ok(lock(&self.world).networks.get(name).cloned())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), BackendError> {
        let spec = spec.clone();
        self.act(format!("create_network {}", spec.name), move |w| {
            if w.networks.contains_key(&spec.name) {
                return Err(BackendError::failed(format!(
                    "network {} already exists",
                    spec.name
                )));
            }
            // The file's labels and stack's own, as a real host would set them.
            let mut labels = spec.definition.labels.clone();
            labels.extend(spec.labels.clone());
            w.networks.insert(
                spec.name.clone(),
                LiveObject {
                    name: spec.name.clone(),
                    labels,
                },
            );
            Ok(())
        })
        .await
    }

    async fn remove_network(&self, name: &str) -> Result<(), BackendError> {
        let n = name.to_string();
        self.act(format!("remove_network {name}"), move |w| {
            let users: Vec<&String> = w
                .containers
                .iter()
                .filter(|(_, c)| c.networks.contains(&n))
                .map(|(name, _)| name)
                .collect();
            if !users.is_empty() {
                return Err(BackendError::failed(format!(
                    "network {n} has containers attached: {users:?}"
                )));
            }
            w.networks
                .remove(&n)
                .map(|_| ())
                .ok_or_else(|| not_found("network", &n))
        })
        .await
    }

    async fn connect(
        &self,
        network: &str,
        container: &str,
        _attachment: &ServiceNetwork,
    ) -> Result<(), BackendError> {
        let (n, c) = (network.to_string(), container.to_string());
        self.act(format!("connect {network} {container}"), move |w| {
            if !w.networks.contains_key(&n) {
                return Err(not_found("network", &n));
            }
            let c = w
                .containers
                .get_mut(&c)
                .ok_or_else(|| not_found("container", &c))?;
            c.detached.remove(&n);
            c.networks.insert(n);
            Ok(())
        })
        .await
    }

    async fn disconnect(&self, network: &str, container: &str) -> Result<(), BackendError> {
        let (n, c) = (network.to_string(), container.to_string());
        self.act(format!("disconnect {network} {container}"), move |w| {
            let c = w
                .containers
                .get_mut(&c)
                .ok_or_else(|| not_found("container", &c))?;
            c.networks.remove(&n);
            Ok(())
        })
        .await
    }
}

impl Volumes for FakeHost {
    async fn inspect_volume(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        Ok(lock(&self.world).volumes.get(name).cloned())
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), BackendError> {
        let spec = spec.clone();
        self.act(format!("create_volume {}", spec.name), move |w| {
            if w.volumes.contains_key(&spec.name) {
                return Err(BackendError::failed(format!(
                    "volume {} already exists",
                    spec.name
                )));
            }
            let mut labels = spec.definition.labels.clone();
            labels.extend(spec.labels.clone());
            w.volumes.insert(
                spec.name.clone(),
                LiveObject {
                    name: spec.name.clone(),
                    labels,
                },
            );
            Ok(())
        })
        .await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), BackendError> {
        let n = name.to_string();
        self.act(format!("remove_volume {name}"), move |w| {
            w.volumes
                .remove(&n)
                .map(|_| ())
                .ok_or_else(|| not_found("volume", &n))
        })
        .await
    }
}

impl Runtime for FakeHost {
    async fn list(&self, project: &str) -> Result<Vec<LiveContainer>, BackendError> {
        Ok(lock(&self.world)
            .containers
            .iter()
            .filter(|(_, c)| c.labels.get(labels::PROJECT).map(String::as_str) == Some(project))
            .map(|(name, c)| LiveContainer {
                name: name.clone(),
                id: c.id.clone(),
                status: c.status,
                labels: c.labels.clone(),
                image: c.image.clone(),
                detached: c.detached.iter().cloned().collect(),
                oom_killed: false,
                stray_namespace: c.stray_namespace.clone(),
            })
            .collect())
    }

    async fn status(&self, name: &str) -> Result<Option<Status>, BackendError> {
        Ok(lock(&self.world).containers.get(name).map(|c| c.status))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, BackendError> {
        let spec = spec.clone();
        let id = format!("c{}", self.next_id.fetch_add(1, Ordering::SeqCst) + 1);
        self.act(format!("create_container {}", spec.name), move |w| {
            if w.containers.contains_key(&spec.name) {
                return Err(BackendError::failed(format!(
                    "container {} already exists",
                    spec.name
                )));
            }
            for net in spec.networks.keys() {
                if !w.networks.contains_key(net) {
                    return Err(not_found("network", net));
                }
            }
            for vol in spec.volumes.values() {
                if !w.volumes.contains_key(vol) {
                    return Err(not_found("volume", vol));
                }
            }
            let image = match &spec.image_digest {
                Some(d) => Some(d.clone()),
                None => Some(
                    w.images
                        .get(&spec.image)
                        .cloned()
                        .ok_or_else(|| not_found("image", &spec.image))?,
                ),
            };
            w.containers.insert(
                spec.name.clone(),
                FakeContainer {
                    id: id.clone(),
                    status: Status::Created,
                    labels: spec.labels.clone(),
                    image,
                    networks: spec.networks.keys().cloned().collect(),
                    detached: BTreeSet::new(),
                    stray_namespace: None,
                    spec,
                },
            );
            Ok(id)
        })
        .await
    }

    async fn start(&self, name: &str) -> Result<(), BackendError> {
        let n = name.to_string();
        let after = lock(&self.on_start)
            .get(name)
            .copied()
            .unwrap_or(Status::Running);
        self.act(format!("start {name}"), move |w| {
            let c = w
                .containers
                .get_mut(&n)
                .ok_or_else(|| not_found("container", &n))?;
            c.status = after;
            c.stray_namespace = None;
            Ok(())
        })
        .await
    }

    async fn stop(&self, name: &str, _timeout: Option<Duration>) -> Result<(), BackendError> {
        let n = name.to_string();
        self.act(format!("stop {name}"), move |w| {
            let c = w
                .containers
                .get_mut(&n)
                .ok_or_else(|| not_found("container", &n))?;
            if c.status.is_running() {
                c.status = Status::Exited { code: 0 };
            }
            Ok(())
        })
        .await
    }

    async fn remove_container(&self, name: &str) -> Result<(), BackendError> {
        let n = name.to_string();
        self.act(format!("remove_container {name}"), move |w| {
            let c = w
                .containers
                .get(&n)
                .ok_or_else(|| not_found("container", &n))?;
            if c.status.is_running() {
                return Err(BackendError::failed(format!(
                    "container {n} is running; stop it first"
                )));
            }
            w.containers.remove(&n);
            Ok(())
        })
        .await
    }
}

impl Clock for FakeHost {
    fn now(&self) -> Duration {
        Duration::from_millis(self.clock.load(Ordering::SeqCst))
    }

    async fn sleep(&self, duration: Duration) {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.clock.fetch_add(ms, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
}

/// Keeps saved records in memory, and can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    saved: Mutex<Vec<ProjectRecord>>,
    fail: Mutex<bool>,
}

impl MemoryRecorder {
    /// The record as saved last.
    pub fn last(&self) -> Option<ProjectRecord> {
        lock(&self.saved).last().cloned()
    }

    /// How many times the record was saved.
    pub fn saves(&self) -> usize {
        lock(&self.saved).len()
    }

    /// Makes every later save fail.
    pub fn fail(&self) {
        *lock(&self.fail) = true;
    }
}

impl Recorder for MemoryRecorder {
    fn save(&self, record: &ProjectRecord) -> Result<(), StateError> {
        if *lock(&self.fail) {
            return Err(StateError::Io {
                action: "write",
                path: "state.json".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        lock(&self.saved).push(record.clone());
        Ok(())
    }
}

/// Why a sandboxed run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// The whole pipeline against a [`FakeHost`], with the record and the
/// revision history kept in memory, as `stack up` keeps them on disk.
#[derive(Debug, Default)]
pub struct Sandbox {
    pub host: FakeHost,
    pub record: ProjectRecord,
    pub history: BTreeMap<u64, Value>,
    pub recorder: MemoryRecorder,
    pub exec: Option<ExecOptions>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::default()
    }

    /// Observes and plans `up` without executing.
    pub async fn plan(&self, stack: &Stack, opts: &UpOptions) -> Result<Plan, SandboxError> {
        let observed = observe(
            &self.host,
            &stack.name,
            Some(stack),
            Some(&self.record),
            self.history.clone(),
        )
        .await?;
        Ok(plan_up(stack, &observed, opts)?)
    }

    /// Plans `down` without executing.
    pub async fn plan_down(
        &self,
        stack: Option<&Stack>,
        project: &str,
        opts: &DownOptions,
    ) -> Result<Plan, SandboxError> {
        let observed = observe(
            &self.host,
            project,
            stack,
            Some(&self.record),
            self.history.clone(),
        )
        .await?;
        Ok(plan_down(stack, &observed, opts)?)
    }

    /// Runs `up`: observe, plan, execute, keep the revision.
    pub async fn up(
        &mut self,
        stack: &Stack,
        opts: &UpOptions,
    ) -> Result<(Plan, Outcome), SandboxError> {
        let plan = self.plan(stack, opts).await?;
        let outcome = self.run(&plan).await?;
        if !plan.is_empty() {
            self.history.insert(plan.revision, revision_document(stack));
        }
        Ok((plan, outcome))
    }

    /// Runs a plan and keeps the record it leaves, also when it fails.
    pub async fn run(&mut self, plan: &Plan) -> Result<Outcome, SandboxError> {
        if self.record.project.is_empty() {
            self.record.project = plan.project.clone();
        }
        let opts = self.exec.unwrap_or_default();
        match execute(
            plan,
            &self.host,
            self.record.clone(),
            &self.recorder,
            &(),
            &opts,
        )
        .await
        {
            Ok(outcome) => {
                self.record = outcome.record.clone();
                Ok(outcome)
            }
            Err(e) => {
                self.record = e.record().clone();
                Err(e.into())
            }
        }
    }
}
