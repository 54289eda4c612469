//! The planner's window on the host: one narrow trait per kind of side effect.
//!
//! The planner never touches the system. What it needs to know (does this
//! network exist, is this container running or healthy, which digest does
//! this image have) and what it needs done (pull, create, start, stop,
//! remove) goes through the traits here: [`Images`], [`Networks`],
//! [`Volumes`], [`Runtime`] and [`Clock`]. The Linux implementations (the
//! runtime, network and volume issues) fill them in for real; tests use the
//! in-memory [`super::fake::FakeHost`]. Each trait has an *observe* half,
//! which `observe` calls, and an *act* half, which only the executor calls.
//!
//! The methods are async because the real implementations are (netlink,
//! registry pulls, waiting for a shim) and the executor overlaps them. They
//! return `impl Future + Send` rather than using `async fn` so that the
//! executor can run them on tokio's worker threads. A type that implements
//! all five is a [`Host`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::spec::Service;
use crate::spec::model::{Network, ServiceNetwork, Volume};

/// Why the host could not do what was asked. Implementations put the
/// operating system's own words in `message`; the executor adds which
/// operation it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: &'static str, name: String },
    #[error("{message}")]
    Failed { message: String },
    #[error(
        "{what} needs stack's container runtime, which is not built yet (it lands with a later issue); `stack plan` shows what would be done"
    )]
    Unsupported { what: String },
}

impl BackendError {
    pub fn failed(message: impl Into<String>) -> BackendError {
        BackendError::Failed {
            message: message.into(),
        }
    }
}

/// What a container is doing, as the runtime and the health probes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Created and never started.
    Created,
    /// Running, with no health check.
    Running,
    /// Running; its health check has not passed yet.
    Starting,
    /// Running and its health check passes.
    Healthy,
    /// Running and its health check fails.
    Unhealthy,
    /// Its main process ended with this code.
    Exited { code: i64 },
}

impl Status {
    /// Whether the main process is alive.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            Status::Running | Status::Starting | Status::Healthy | Status::Unhealthy
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Created => f.write_str("created"),
            Status::Running => f.write_str("running"),
            Status::Starting => f.write_str("starting"),
            Status::Healthy => f.write_str("healthy"),
            Status::Unhealthy => f.write_str("unhealthy"),
            Status::Exited { code } => write!(f, "exited with code {code}"),
        }
    }
}

/// A container the runtime knows, with the labels stack gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveContainer {
    pub name: String,
    pub id: String,
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    /// The digest of the image it runs, when the runtime knows it.
    pub image: Option<String>,
    /// Networks (host names) it should be on but whose link is broken: its
    /// veth was deleted, or its bridge removed (drift to repair).
    pub detached: Vec<String>,
    /// It exited because the kernel's OOM killer killed its process.
    pub oom_killed: bool,
    /// It shares the network namespace of this container (`network_mode:
    /// service:` or `container:`), which now runs in another one (it was
    /// started again): drift, repaired by restarting it into the new one.
    pub stray_namespace: Option<String>,
}

/// A network or volume that exists on the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveObject {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// An image in the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub reference: String,
    /// `sha256:...`; `None` when the store cannot tell (the state-record bridge).
    pub digest: Option<String>,
    /// When the store last pulled it; `None` when loaded or imported.
    pub pulled_at: Option<std::time::SystemTime>,
}

/// Everything needed to create a network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// Its key in the stack file.
    pub key: String,
    /// Its name on the host.
    pub name: String,
    pub config_hash: String,
    pub labels: BTreeMap<String, String>,
    pub definition: Network,
}

/// Everything needed to create a volume.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSpec {
    pub key: String,
    pub name: String,
    pub config_hash: String,
    pub labels: BTreeMap<String, String>,
    pub definition: Volume,
}

/// Everything needed to create one container (one replica of a service).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// `<project>-<service>-<n>`, or the service's `container_name`.
    pub name: String,
    pub project: String,
    pub service: String,
    pub replica: u32,
    /// The image reference from the file.
    pub image: String,
    /// Its digest, once pulled or found in the local store.
    pub image_digest: Option<String>,
    pub config_hash: String,
    /// stack's own labels (project, service, replica, hash, revision, ...).
    pub labels: BTreeMap<String, String>,
    /// The normalized service: what to run.
    pub definition: Arc<Service>,
    /// Host network name to the service's attachment (aliases, addresses).
    pub networks: BTreeMap<String, ServiceNetwork>,
    /// Volume key in the stack file to its name on the host.
    pub volumes: BTreeMap<String, String>,
    /// How long `stop` waits before killing (the service's `stop_grace_period`).
    pub stop_timeout: Option<Duration>,
}

/// The local image store and registry pulls.
pub trait Images: Send + Sync {
    /// The local image for `reference`, if there is one.
    fn inspect_image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, BackendError>> + Send;
    /// Pulls `reference` and returns what the store now holds.
    fn pull(&self, reference: &str)
    -> impl Future<Output = Result<ImageInfo, BackendError>> + Send;
}

/// Container networks.
pub trait Networks: Send + Sync {
    fn inspect_network(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LiveObject>, BackendError>> + Send;
    fn create_network(
        &self,
        spec: &NetworkSpec,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    fn remove_network(&self, name: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Attaches a container (by name) to a network (by host name).
    fn connect(
        &self,
        network: &str,
        container: &str,
        attachment: &ServiceNetwork,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    fn disconnect(
        &self,
        network: &str,
        container: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Named volumes.
pub trait Volumes: Send + Sync {
    fn inspect_volume(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<LiveObject>, BackendError>> + Send;
    fn create_volume(
        &self,
        spec: &VolumeSpec,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Containers.
pub trait Runtime: Send + Sync {
    /// Called once before a plan runs, with every container it will make:
    /// the host refuses here what would otherwise fail midway (a host port
    /// that is taken), so that nothing has started. Default: nothing to check.
    fn prepare(
        &self,
        containers: &[&ContainerSpec],
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = containers;
        async { Ok(()) }
    }
    /// Every container labelled with the project, running or not.
    fn list(
        &self,
        project: &str,
    ) -> impl Future<Output = Result<Vec<LiveContainer>, BackendError>> + Send;
    /// The container's status; `None` when it does not exist.
    fn status(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Status>, BackendError>> + Send;
    /// Creates (does not start) a container and returns its id.
    fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;
    fn start(&self, name: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Stops a container; stopping one that is not running succeeds.
    fn stop(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Removes a stopped container.
    fn remove_container(&self, name: &str)
    -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Time, so that waiting for a health check can be tested without waiting.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed origin (monotonic).
    fn now(&self) -> Duration;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Everything the planner and the executor need from the host.
pub trait Host: Images + Networks + Volumes + Runtime + Clock + 'static {}

impl<T: Images + Networks + Volumes + Runtime + Clock + 'static> Host for T {}

/// The real clock (tokio's timer).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    fn origin() -> std::time::Instant {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(std::time::Instant::now)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemClock::origin().elapsed()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
