//! The planner: desired state, observed state, the plan between them, and
//! the executor that carries it out.
//!
//! Every command is one pipeline (DESIGN.md): [`observe`] what exists (the
//! state record merged with what the host reports through the traits in
//! [`backend`]), derive [`Desired`] state from the stack, [`plan_up`] (or
//! [`plan_down`]) the operations between them, each with its reason and
//! the operations it waits for, and [`execute`] them, in parallel where the
//! waits allow. [`apply::up`] and [`apply::down`] run the whole pipeline
//! under the project's lock and keep the revision history; `stack plan`
//! stops before the executor and prints. The
//! planner is pure: only the executor acts, and only through the traits,
//! so all of it runs in tests against [`fake::FakeHost`] without root.
//!
//! The configuration hash ([`hash::config_hash`]) is the heart of it: a
//! container is recreated exactly when its hash (or its image digest)
//! changed, and `stack config --hash` prints the same hash.

pub mod apply;
pub mod backend;
pub mod desired;
pub mod diff;
pub mod execute;
pub mod fake;
pub mod graph;
pub mod hash;
pub mod observe;
pub mod plan;
pub mod pull_policy;
pub mod restart;

pub use backend::{
    BackendError, Clock, ContainerSpec, Host, ImageInfo, Images, LiveContainer, LiveObject,
    NetworkSpec, Networks, Runtime, Status, SystemClock, VolumeSpec, Volumes,
};
pub use desired::{Desired, DesiredService};
pub use diff::Change;
pub use execute::{ExecError, ExecOptions, Outcome, Progress, Recorder, execute};
pub use graph::Graph;
pub use observe::{Observed, ObservedContainer, ObservedObject, Supervision, observe};
pub use plan::{Action, DownOptions, Op, Plan, Summary, Target, UpOptions, plan_down, plan_up};

use backend::BackendError as HostError;

/// Why no plan could be made. Nothing has been changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "services depend on each other in a cycle: {}; no order can start them, so remove one of these depends_on, links, network_mode: service: or volumes_from entries",
        services.join(" → ")
    )]
    Cycle { services: Vec<String> },
    #[error(
        "no such service: `{name}` (given to {flag}); `stack config --services` lists the services"
    )]
    UnknownService { name: String, flag: &'static str },
    #[error("{0} and {1} cannot be used together; choose one")]
    Conflict(&'static str, &'static str),
    #[error(
        "service `{service}` sets container_name, so it cannot run {replicas} replicas (each container needs its own name); remove container_name or scale to 1"
    )]
    ContainerNameScaled { service: String, replicas: u32 },
    #[error("external {kind} `{name}` does not exist: {create}")]
    ExternalMissing {
        kind: &'static str,
        name: String,
        create: String,
    },
    #[error(
        "a {kind} named `{name}` exists but stack did not create it for project `{project}`; declare it `external: true` to use it, or remove it, or give the stack's {kind} another `name:`"
    )]
    NotOwned {
        kind: &'static str,
        name: String,
        project: String,
    },
    #[error(
        "volume `{key}` ({name}) exists but its definition changed{changes}; stack never removes or recreates a volume on its own, because that loses its data. Restore the old definition, give the volume a new `name:`, or remove it yourself (`stack down --volumes`, data lost) and run again"
    )]
    VolumeDiverged {
        key: String,
        name: String,
        changes: String,
    },
    #[error("image `{reference}` is not available: {why}")]
    ImageUnavailable { reference: String, why: String },
    #[error("cannot observe {what}: {source}")]
    Observe {
        what: String,
        #[source]
        source: HostError,
    },
}
