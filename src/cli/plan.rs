//! `stack plan`: what `up` would do, and why, without doing it.
//!
//! It runs the pipeline up to the plan: load the stack, read the project's
//! record (without locking, so it works while a watcher holds the lock),
//! observe, plan, and print each operation in run order with its reason
//! and field-level changes, then a summary line. `--format json` prints
//! the plan for machines; `--detailed-exitcode` exits 0 when nothing would
//! change, 2 when something would, and 1 on any error.
//!
//! **The state-record bridge.** Until stack's runtime and network code
//! can report what is live (later issues), the host that `plan` observes,
//! [`RecordedHost`], answers from the state record: every recorded
//! container counts as running, every recorded network as present,
//! external networks and volumes as present, and an image as in the local
//! store when a recorded container was created from it. Named volumes are
//! the exception: they are observed for real, in the volume store under
//! the state root. Its acting methods refuse. When the Linux
//! implementations land, `plan` observes through them and this bridge goes.
//!
//! Field-level diffs need the revision a container was created at, which
//! only the project's lock can read today; `plan` takes the lock for that
//! read only when it is free, and otherwise explains changes by hash.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::Failure;
use super::args::{Global, PlanArgs, PlanFormat};
use crate::planner::backend::{
    BackendError, Clock, ContainerSpec, ImageInfo, Images, LiveContainer, LiveObject, NetworkSpec,
    Networks, Runtime, Status, SystemClock, VolumeSpec, Volumes,
};
use crate::planner::desired::labels;
use crate::planner::plan::{Action, Plan, UpOptions, plan_up};
use crate::planner::{Observed, observe};
use crate::spec::model::ServiceNetwork;
use crate::spec::{self, Stack};
use crate::state::{ProjectRecord, Store};
use crate::volumes::VolumeStore;

/// Exit code for "something would change" under `--detailed-exitcode`.
pub const EXIT_CHANGES: u8 = 2;

/// Runs `stack plan` and returns the process's exit code.
pub fn main(global: &Global, args: &PlanArgs) -> ExitCode {
    let result = run(global, args);
    finish(result, args.detailed_exitcode)
}

/// The exit code for a plan command: `--detailed-exitcode` makes every error 1.
pub fn finish(result: Result<bool, Failure>, detailed: bool) -> ExitCode {
    match result {
        Ok(true) if detailed => ExitCode::from(EXIT_CHANGES),
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => {
            let code = super::report(failure);
            ExitCode::from(if detailed { super::EXIT_FAILURE } else { code })
        }
    }
}

/// Prints the plan; `Ok(true)` when it would change something.
fn run(global: &Global, args: &PlanArgs) -> Result<bool, Failure> {
    let opts = super::load_options(global, &args.services)?;
    let project = spec::load(&opts)?;
    let stack = &project.stack;
    let up = UpOptions {
        services: args.services.clone(),
        scale: args.scale.iter().cloned().collect(),
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        no_deps: args.no_deps,
        always_recreate_deps: args.always_recreate_deps,
        remove_orphans: args.remove_orphans,
    };
    let store = Store::new(&global.root);
    let observed = observe_project(&store, &stack.name, Some(stack))?;
    let plan = plan_up(stack, &observed, &up).map_err(anyhow::Error::from)?;
    print!("{}", render(&plan, args.format, &observed, "up"));
    Ok(!plan.is_empty())
}

/// Observes a project through the state-record bridge.
pub fn observe_project(
    store: &Store,
    project: &str,
    stack: Option<&Stack>,
) -> Result<Observed, Failure> {
    let record = store
        .read(project)
        .with_context(|| format!("cannot read the state of project `{project}`"))?;
    let history = match &record {
        Some(record) => history(store, record),
        None => BTreeMap::new(),
    };
    let host = RecordedHost::new(record.clone().unwrap_or_default(), stack, store.root());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("cannot start the async runtime")?;
    let observed = runtime
        .block_on(observe(&host, project, stack, record.as_ref(), history))
        .map_err(anyhow::Error::from)?;
    Ok(observed)
}

/// The applied stacks the record's containers were created from.
fn history(store: &Store, record: &ProjectRecord) -> BTreeMap<u64, Value> {
    let mut wanted: BTreeSet<u64> = record.containers.values().map(|c| c.revision).collect();
    wanted.insert(record.revision);
    wanted.remove(&0);
    let mut out = BTreeMap::new();
    // Revisions can only be read under the lock today. Take it only when
    // free, and only for this read; when another stack process holds it,
    // the plan explains changes by hash instead of field by field.
    let Ok(lock) = store.lock(&record.project) else {
        return out;
    };
    // The latest revision too: the plan applies the one after it.
    if let Some(&latest) = lock
        .revisions()
        .ok()
        .and_then(|r| r.last().copied())
        .as_ref()
    {
        wanted.insert(latest);
    }
    for n in wanted {
        if let Ok(Some(r)) = lock.revision(n) {
            out.insert(n, r.stack);
        }
    }
    out
}

/// The plan for humans (in run order, with reasons and changes) or as JSON.
pub fn render(plan: &Plan, format: PlanFormat, observed: &Observed, command: &str) -> String {
    if format == PlanFormat::Json {
        // A plan has only string keys and plain values: serializing cannot fail.
        let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("changes".into(), Value::Bool(!plan.is_empty()));
            map.insert("command".into(), Value::String(command.into()));
        }
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        return text;
    }
    let mut out = String::new();
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "No changes: project {} already matches {}.",
            plan.project,
            if command == "down" {
                "an empty stack"
            } else {
                "the stack file"
            }
        );
    } else {
        let revision = if plan.revision != observed.revision {
            format!(" (revision {} → {})", observed.revision, plan.revision)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "`stack {command}` would do this in project {}{revision}, in this order:\n",
            plan.project
        );
        let targets: Vec<String> = plan
            .ops
            .iter()
            .map(|op| {
                let mut t = op.text();
                if let Some(w) = op.wait {
                    let _ = write!(t, " until {}", w.until);
                }
                t
            })
            .collect();
        let width = targets.iter().map(|t| t.chars().count()).max().unwrap_or(0);
        let number_width = plan.ops.len().to_string().len();
        for (op, target) in plan.ops.iter().zip(&targets) {
            let mark = match op.action {
                Action::Pull | Action::Create | Action::Connect => '+',
                Action::Recreate => '~',
                Action::Remove | Action::Disconnect => '-',
                Action::Start => '>',
                Action::Stop => '<',
                Action::Wait => '.',
            };
            let after = if op.after.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = op.after.iter().map(|a| format!("#{}", a + 1)).collect();
                format!("  [after {}]", ids.join(" "))
            };
            let _ = writeln!(
                out,
                "{:>nw$}  {mark} {target:<width$}  {}{after}",
                format!("#{}", op.id + 1),
                op.reason,
                nw = number_width + 1,
            );
            for change in &op.changes {
                let _ = writeln!(out, "{:>nw$}      {change}", "", nw = number_width + 1);
            }
        }
        out.push('\n');
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "Plan: {}.", plan.summary);
    out
}

/// The host as the state record describes it: see the module doc.
pub struct RecordedHost {
    record: ProjectRecord,
    volumes: VolumeStore,
    external_networks: BTreeSet<String>,
    external_volumes: BTreeSet<String>,
}

impl RecordedHost {
    pub fn new(record: ProjectRecord, stack: Option<&Stack>, root: &Path) -> RecordedHost {
        let (mut external_networks, mut external_volumes) = (BTreeSet::new(), BTreeSet::new());
        if let Some(stack) = stack {
            external_networks = stack
                .networks
                .values()
                .filter(|n| n.external)
                .map(|n| n.name.clone())
                .collect();
            external_volumes = stack
                .volumes
                .values()
                .filter(|v| v.external)
                .map(|v| v.name.clone())
                .collect();
        }
        RecordedHost {
            record,
            volumes: VolumeStore::new(root),
            external_networks,
            external_volumes,
        }
    }

    fn refuse(what: &str) -> BackendError {
        BackendError::Unsupported {
            what: what.to_string(),
        }
    }
}

fn digest_of(image: &str) -> Option<String> {
    image.starts_with("sha256:").then(|| image.to_string())
}

impl Images for RecordedHost {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        let used = self
            .record
            .containers
            .values()
            .find(|c| c.labels.get(labels::IMAGE).map(String::as_str) == Some(reference));
        Ok(used.map(|c| ImageInfo {
            reference: reference.to_string(),
            digest: digest_of(&c.image),
        }))
    }

    async fn pull(&self, _: &str) -> Result<ImageInfo, BackendError> {
        Err(RecordedHost::refuse("pulling an image"))
    }
}

impl Networks for RecordedHost {
    async fn inspect_network(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        if self.external_networks.contains(name) {
            return Ok(Some(LiveObject {
                name: name.to_string(),
                labels: BTreeMap::new(),
            }));
        }
        Ok(self
            .record
            .networks
            .values()
            .find(|n| n.name == name)
            .map(|n| LiveObject {
                name: n.name.clone(),
                labels: n.labels.clone(),
            }))
    }

    async fn create_network(&self, _: &NetworkSpec) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("creating a network"))
    }

    async fn remove_network(&self, _: &str) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("removing a network"))
    }

    async fn connect(&self, _: &str, _: &str, _: &ServiceNetwork) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("connecting a container"))
    }

    async fn disconnect(&self, _: &str, _: &str) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("disconnecting a container"))
    }
}

impl Volumes for RecordedHost {
    async fn inspect_volume(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        if self.external_volumes.contains(name) {
            return Ok(Some(LiveObject {
                name: name.to_string(),
                labels: BTreeMap::new(),
            }));
        }
        match self.volumes.get(name) {
            Ok(found) => Ok(found.map(|v| LiveObject {
                name: v.name,
                labels: v.labels,
            })),
            Err(e) => Err(BackendError::failed(e.to_string())),
        }
    }

    async fn create_volume(&self, _: &VolumeSpec) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("creating a volume"))
    }

    async fn remove_volume(&self, _: &str) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("removing a volume"))
    }
}

impl Runtime for RecordedHost {
    async fn list(&self, _: &str) -> Result<Vec<LiveContainer>, BackendError> {
        Ok(self
            .record
            .containers
            .values()
            .map(|c| LiveContainer {
                name: c.name.clone(),
                id: c.id.clone(),
                status: Status::Running,
                labels: c.labels.clone(),
                image: digest_of(&c.image),
            })
            .collect())
    }

    async fn status(&self, name: &str) -> Result<Option<Status>, BackendError> {
        Ok(self
            .record
            .containers
            .contains_key(name)
            .then_some(Status::Running))
    }

    async fn create_container(&self, _: &ContainerSpec) -> Result<String, BackendError> {
        Err(RecordedHost::refuse("creating a container"))
    }

    async fn start(&self, _: &str) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("starting a container"))
    }

    async fn stop(&self, _: &str, _: Option<Duration>) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("stopping a container"))
    }

    async fn remove_container(&self, _: &str) -> Result<(), BackendError> {
        Err(RecordedHost::refuse("removing a container"))
    }
}

impl Clock for RecordedHost {
    fn now(&self) -> Duration {
        SystemClock.now()
    }

    async fn sleep(&self, duration: Duration) {
        SystemClock.sleep(duration).await;
    }
}
