//! The plan: the operations that take observed state to desired state, and why.
//!
//! Planning is a pure function of the stack, what was observed, and the
//! flags. First it *decides*, service by service in dependency order, what
//! each container needs: nothing, a start, a create, a recreate (its hash
//! or its image changed, a flag forces it, or a hard dependency was
//! recreated), a restart (`depends_on.restart` after its dependency was
//! recreated), or a removal (scaled down, or an orphan). Then it *emits*
//! operations, each with its reason, its field-level changes and the ids
//! of the operations it waits for, always after those (so the list is
//! already in an order that can run). Images, networks and volumes come
//! before the containers that use them; a container's start waits for its
//! dependencies' conditions (started; healthy and completed successfully
//! through a `wait` operation). `down` is the same idea towards the empty
//! stack: containers removed dependents first, then networks, and volumes
//! only when asked.
//!
//! What the planner refuses to do on its own: remove or recreate a volume
//! (a diverged volume is an error that says how to proceed), remove
//! orphans without `--remove-orphans` (it warns), or touch objects that
//! exist under stack's names but were not created by stack.

use super::pull_policy::{PullDecision, PullPolicy, decide};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::PlanError;
use super::backend::{ContainerSpec, NetworkSpec, Status, VolumeSpec};
use super::desired::{Desired, DesiredService, labels};
use super::diff::{Change, changes, short_digest};
use super::graph::{DepKind, Edge, Graph};
use super::hash::{DIGESTS_KEY, hash_input, hash_input_of_json};
use super::observe::{Observed, ObservedContainer};
use super::restart::RestartPolicy;
use crate::spec::Stack;
use crate::spec::model::{Condition, ServiceNetwork};

/// The flags of `up` (and `plan`) that shape a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// Only these services (and, unless `no_deps`, what they depend on); all when empty.
    pub services: Vec<String>,
    /// `--scale svc=n`, overriding `scale` and `deploy.replicas`.
    pub scale: BTreeMap<String, u32>,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub no_deps: bool,
    pub always_recreate_deps: bool,
    pub remove_orphans: bool,
    /// Leave containers the user stopped (`stack stop`, `kill`) stopped:
    /// the watcher's rounds set it, so that a stop is not drift; `up`
    /// does not, and starts them.
    pub keep_user_stopped: bool,
    /// Services whose image, networks and volumes are made ready but whose
    /// containers are left as they are (`stack run`'s service).
    pub prepare_only: BTreeSet<String>,
    /// `up --no-start`: create what is missing or diverged, start nothing.
    pub no_start: bool,
    /// `up --pull`: this policy for every image instead of the services' own.
    pub pull: Option<PullPolicy>,
}

/// The flags of `down`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownOptions {
    pub remove_orphans: bool,
    /// Also remove the project's named volumes (`down --volumes`).
    pub volumes: bool,
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Pull,
    Create,
    Recreate,
    Start,
    Stop,
    Remove,
    Connect,
    Disconnect,
    Wait,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Pull => "pull",
            Action::Create => "create",
            Action::Recreate => "recreate",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Remove => "remove",
            Action::Connect => "connect",
            Action::Disconnect => "disconnect",
            Action::Wait => "wait",
        })
    }
}

/// What an operation acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Image {
        reference: String,
    },
    Network {
        key: String,
        name: String,
    },
    Volume {
        key: String,
        name: String,
    },
    Container {
        name: String,
        service: String,
        replica: u32,
    },
    /// A container's attachment to a network (host name).
    Attachment {
        network: String,
        container: String,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Image { reference } => write!(f, "image {reference}"),
            Target::Network { name, .. } => write!(f, "network {name}"),
            Target::Volume { name, .. } => write!(f, "volume {name}"),
            Target::Container { name, .. } => write!(f, "container {name}"),
            Target::Attachment { network, container } => {
                write!(f, "container {container} on network {network}")
            }
        }
    }
}

/// What a `wait` operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WaitFor {
    pub until: Until,
    /// `false` (`depends_on.required: false`): failing is only a warning.
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    Healthy,
    CompletedSuccessfully,
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Until::Healthy => "healthy",
            Until::CompletedSuccessfully => "completed successfully",
        })
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    /// Its index in [`Plan::ops`].
    pub id: usize,
    pub action: Action,
    pub target: Target,
    /// Why, in words ("new service", "orphan", "environment changed").
    pub reason: String,
    /// Field-level differences behind a recreate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Operations that must finish first (always lower ids).
    pub after: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitFor>,
}

impl Op {
    /// What it does, in words: "recreate container p-web-1",
    /// "disconnect container p-a-1 from network p_front".
    pub fn text(&self) -> String {
        match (self.action, &self.target) {
            (Action::Connect, Target::Attachment { network, container }) => {
                format!("connect container {container} to network {network}")
            }
            (Action::Disconnect, Target::Attachment { network, container }) => {
                format!("disconnect container {container} from network {network}")
            }
            (action, target) => format!("{action} {target}"),
        }
    }
}

/// Operation counts, for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub recreate: usize,
    pub remove: usize,
    pub start: usize,
    pub stop: usize,
    pub pull: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to recreate, {} to remove",
            self.create, self.recreate, self.remove
        )?;
        let mut extra = Vec::new();
        for (n, what) in [
            (self.pull, "to pull"),
            (self.start, "to start"),
            (self.stop, "to stop"),
        ] {
            if n > 0 {
                extra.push(format!("{n} {what}"));
            }
        }
        if !extra.is_empty() {
            write!(f, " ({})", extra.join(", "))?;
        }
        Ok(())
    }
}

/// What the executor needs beyond the operations themselves.
#[derive(Debug, Clone, Default)]
pub struct Specs {
    /// Containers to create, by name.
    pub containers: BTreeMap<String, ContainerSpec>,
    /// Networks to create, by key.
    pub networks: BTreeMap<String, NetworkSpec>,
    /// Volumes to create, by key.
    pub volumes: BTreeMap<String, VolumeSpec>,
    /// (container, network host name) to the attachment to restore.
    pub attachments: BTreeMap<(String, String), ServiceNetwork>,
    /// How long stopping each container may take before it is killed.
    pub stop_timeouts: BTreeMap<String, Duration>,
}

/// A plan: operations in an order that can run, and what they need.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub project: String,
    /// The revision that applying the plan records.
    pub revision: u64,
    pub ops: Vec<Op>,
    /// Things the user should know that need no operation (orphans kept, ...).
    pub warnings: Vec<String>,
    pub summary: Summary,
    #[serde(skip)]
    pub specs: Specs,
    /// Record entries of objects that are gone, dropped before the first operation.
    #[serde(skip)]
    pub stale: super::observe::Stale,
    /// Live containers the record missed, recorded before the first operation.
    #[serde(skip)]
    pub adopt: Vec<crate::state::ContainerRecord>,
}

impl Plan {
    /// Whether applying the plan would change anything on the host.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The plan that brings `observed` to what `stack` describes.
pub fn plan_up(stack: &Stack, observed: &Observed, opts: &UpOptions) -> Result<Plan, PlanError> {
    if opts.force_recreate && opts.no_recreate {
        return Err(PlanError::Conflict("--force-recreate", "--no-recreate"));
    }
    if opts.always_recreate_deps && opts.no_recreate {
        return Err(PlanError::Conflict(
            "--always-recreate-deps",
            "--no-recreate",
        ));
    }
    for name in &opts.services {
        if !stack.services.contains_key(name) {
            return Err(PlanError::UnknownService {
                name: name.clone(),
                flag: "SERVICE",
            });
        }
    }
    let graph = Graph::new(stack)?;
    let desired = Desired::new(stack, &opts.scale)?;
    let plan = Planner::new(stack, observed, opts, &graph, &desired).run()?;
    Ok(if opts.no_start {
        without_starts(plan)
    } else {
        plan
    })
}

/// `up --no-start`: the plan without its starts and the waits that gate
/// them. An operation that waited for a dropped one waits for what that
/// one waited for, so the order of what is left is kept.
fn without_starts(mut plan: Plan) -> Plan {
    let dropped: Vec<bool> = plan
        .ops
        .iter()
        .map(|op| matches!(op.action, Action::Start | Action::Wait))
        .collect();
    // What each op waits for, with dropped ops replaced by their own waits
    // (ids only grow, so one pass in order resolves chains).
    let mut resolved: Vec<BTreeSet<usize>> = Vec::with_capacity(plan.ops.len());
    for op in &plan.ops {
        let mut set = BTreeSet::new();
        for &a in &op.after {
            if dropped[a] {
                set.extend(resolved[a].iter().copied());
            } else {
                set.insert(a);
            }
        }
        resolved.push(set);
    }
    let mut new_id = vec![usize::MAX; plan.ops.len()];
    let mut next = 0;
    for (id, d) in dropped.iter().enumerate() {
        if !d {
            new_id[id] = next;
            next += 1;
        }
    }
    let ops = std::mem::take(&mut plan.ops);
    plan.ops = ops
        .into_iter()
        .zip(resolved)
        .filter(|(op, _)| !dropped[op.id])
        .map(|(mut op, after)| {
            op.id = new_id[op.id];
            op.after = after.into_iter().map(|a| new_id[a]).collect();
            op
        })
        .collect();
    plan.summary.start = 0;
    plan
}

/// How a service's existing containers may be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Recreate when the configuration or image differs.
    Diverged,
    /// Recreate whatever differs or not.
    Force,
    /// Never recreate.
    Never,
}

/// What one container slot of a selected service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    Keep,
    Start(String),
    Create(String),
    Recreate(String, Vec<Change>),
    Restart(String),
}

#[derive(Debug, Clone)]
struct Slot {
    name: String,
    replica: u32,
    need: Need,
    /// Running before the plan (for reattachments after a network recreate).
    was_running: bool,
}

/// The decisions for one service.
#[derive(Debug, Default)]
struct Decision {
    slots: Vec<Slot>,
    /// Containers that go, with why.
    removals: Vec<(String, String)>,
    warnings: Vec<String>,
}

struct Planner<'a> {
    stack: &'a Stack,
    observed: &'a Observed,
    opts: &'a UpOptions,
    graph: &'a Graph,
    desired: &'a Desired<'a>,
    named: BTreeSet<String>,
    selected: BTreeSet<String>,
    ops: Vec<Op>,
    warnings: Vec<String>,
    specs: Specs,
    /// Observed containers by service, replicas in order (built once: a
    /// scan per service would make planning quadratic).
    by_service: BTreeMap<&'a str, Vec<&'a ObservedContainer>>,
}

impl<'a> Planner<'a> {
    fn new(
        stack: &'a Stack,
        observed: &'a Observed,
        opts: &'a UpOptions,
        graph: &'a Graph,
        desired: &'a Desired<'a>,
    ) -> Planner<'a> {
        let named: BTreeSet<String> = if opts.services.is_empty() {
            stack.services.keys().cloned().collect()
        } else {
            opts.services.iter().cloned().collect()
        };
        let mut selected = if opts.no_deps || opts.services.is_empty() {
            named.clone()
        } else {
            graph.with_dependencies(&named)
        };
        selected.extend(opts.prepare_only.iter().cloned());
        Planner {
            stack,
            observed,
            opts,
            graph,
            desired,
            named,
            selected,
            ops: Vec::new(),
            warnings: Vec::new(),
            specs: Specs::default(),
            by_service: {
                let mut map: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
                for c in observed.containers.values().filter(|c| !c.record.one_off) {
                    map.entry(c.service()).or_default().push(c);
                }
                for list in map.values_mut() {
                    list.sort_by_key(|c| c.record.replica);
                }
                map
            },
        }
    }

    fn push(
        &mut self,
        action: Action,
        target: Target,
        reason: impl Into<String>,
        after: impl IntoIterator<Item = usize>,
    ) -> usize {
        let id = self.ops.len();
        let mut after: Vec<usize> = after.into_iter().collect();
        after.sort_unstable();
        after.dedup();
        self.ops.push(Op {
            id,
            action,
            target,
            reason: reason.into(),
            changes: Vec::new(),
            after,
            wait: None,
        });
        id
    }

    /// The service's existing containers (not one-offs), by replica number.
    fn containers_of(&self, service: &str) -> Vec<&'a ObservedContainer> {
        self.by_service.get(service).cloned().unwrap_or_default()
    }

    fn run(mut self) -> Result<Plan, PlanError> {
        let observed = self.observed;
        let stack = self.stack;

        // Decide, dependencies first, so that a dependent sees its dependencies' fate.
        let mut slots: BTreeMap<String, Vec<Slot>> = BTreeMap::new();
        let mut removals: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut updated: BTreeSet<String> = BTreeSet::new();
        let mut recreated: BTreeSet<String> = BTreeSet::new();
        let order: Vec<String> = self.graph.order().map(str::to_string).collect();
        for service in &order {
            let Decision {
                slots: s,
                removals: r,
                warnings,
            } = self.decide(service, &updated, &recreated);
            self.warnings.extend(warnings);
            if s.iter()
                .any(|s| matches!(s.need, Need::Recreate(..) | Need::Restart(_)))
            {
                updated.insert(service.clone());
            }
            if s.iter().any(|s| matches!(s.need, Need::Recreate(..))) {
                recreated.insert(service.clone());
            }
            slots.insert(service.clone(), s);
            removals.insert(service.clone(), r);
        }

        // Orphans: containers of services the file no longer names.
        let mut orphan_ops = Vec::new();
        let mut orphans = Vec::new();
        for c in observed.containers.values() {
            let service = c.service();
            // `stack run --rm -d`: nobody waits on it, so its end is ours to clean.
            if c.record.one_off
                && matches!(c.status, Status::Exited { .. })
                && c.record
                    .labels
                    .get(labels::AUTO_REMOVE)
                    .is_some_and(|v| v == "true")
            {
                orphan_ops.push(self.push(
                    Action::Remove,
                    container_target(&c.record),
                    "a one-off container of `stack run --rm -d` exited".to_string(),
                    [],
                ));
                continue;
            }
            if stack.services.contains_key(service) && !c.record.one_off {
                continue;
            }
            if stack.disabled.contains_key(service) {
                continue;
            }
            if self.opts.remove_orphans {
                let reason = if c.record.one_off {
                    "orphan: a one-off container".to_string()
                } else {
                    format!("orphan: service `{service}` is no longer in the stack file")
                };
                orphan_ops.push(self.push(Action::Remove, container_target(&c.record), reason, []));
            } else if !c.record.one_off {
                orphans.push(c.name().to_string());
            }
        }
        if !orphans.is_empty() {
            self.warnings.push(format!(
                "found orphan containers ({}) for this project: their services are not in the stack file; \
                 if you removed or renamed those services, run with --remove-orphans to remove them",
                orphans.join(", ")
            ));
        }

        // Dependents restarted because a dependency is recreated: stopped first, dependents first.
        let mut cascade_stop: BTreeMap<String, usize> = BTreeMap::new();
        for service in order.iter().rev() {
            for slot in slots.get(service).into_iter().flatten() {
                if let Need::Restart(reason) = &slot.need {
                    let after: Vec<usize> = self
                        .graph
                        .dependents(service)
                        .into_iter()
                        .flat_map(|(d, _)| slots.get(d).into_iter().flatten())
                        .filter_map(|s| cascade_stop.get(&s.name).copied())
                        .collect();
                    let target = self.slot_target(service, slot);
                    let id = self.push(Action::Stop, target, reason.clone(), after);
                    cascade_stop.insert(slot.name.clone(), id);
                    // Stopped with the service's own grace period, not the default 10 s.
                    if let Some(ds) = self.desired.services.get(service) {
                        self.note_stop_timeout(ds, &slot.name);
                    }
                }
            }
        }

        // Networks whose definition changed: detach their containers first.
        let used_networks: BTreeSet<String> = self
            .selected
            .iter()
            .filter_map(|s| self.desired.services.get(s))
            .flat_map(|s| s.network_keys.iter().cloned())
            .collect();
        let mut network_ops: BTreeMap<String, usize> = BTreeMap::new();
        let mut detach: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut detached: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Stop and disconnect operations by container.
        let mut detach_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut diverged_networks: Vec<(String, Vec<Change>)> = Vec::new();
        for key in &used_networks {
            let Some(spec) = self.desired.networks.get(key) else {
                continue;
            };
            let found = observed.networks.get(key);
            if spec.definition.external {
                if found.is_none() {
                    return Err(PlanError::ExternalMissing {
                        kind: "network",
                        name: spec.name.clone(),
                        create: format!(
                            "stack cannot create it; create network `{}` first, or drop `external: true`",
                            spec.name
                        ),
                    });
                }
                continue;
            }
            let Some(found) = found else { continue };
            if !found.owned {
                return Err(PlanError::NotOwned {
                    kind: "network",
                    name: spec.name.clone(),
                    project: observed.project.clone(),
                });
            }
            if found.config_hash != spec.config_hash {
                let old = self.previous(observed.revision, "networks", key);
                let new = serde_json::to_value(&spec.definition).unwrap_or(Value::Null);
                let ch = match &old {
                    Some(old) => changes(old, &new),
                    None => Vec::new(),
                };
                diverged_networks.push((key.clone(), ch));
                // Every container attached to it, of any service.
                for (service, ds) in &self.desired.services {
                    if !ds.network_keys.contains(key) {
                        continue;
                    }
                    for c in self.containers_of(service) {
                        let mut ids = Vec::new();
                        let stop = c.status.is_running().then(|| {
                            self.push(
                                Action::Stop,
                                container_target(&c.record),
                                format!("network `{}` is recreated", spec.name),
                                cascade_stop.get(c.name()).copied(),
                            )
                        });
                        ids.extend(stop);
                        let d = self.push(
                            Action::Disconnect,
                            Target::Attachment {
                                network: spec.name.clone(),
                                container: c.name().to_string(),
                            },
                            format!("network `{}` is recreated", spec.name),
                            stop,
                        );
                        ids.push(d);
                        detach_of
                            .entry(c.name().to_string())
                            .or_default()
                            .extend(ids.iter().copied());
                        detach.entry(key.clone()).or_default().extend(ids);
                        detached
                            .entry(c.name().to_string())
                            .or_default()
                            .push(key.clone());
                    }
                }
            }
        }

        // Containers that will be created or recreated, to know which images they need.
        let mut needs_image: BTreeSet<String> = self
            .opts
            .prepare_only
            .iter()
            .filter_map(|s| self.desired.services.get(s))
            .map(|ds| ds.image.clone())
            .collect();
        for (service, list) in &slots {
            if list
                .iter()
                .any(|s| matches!(s.need, Need::Create(_) | Need::Recreate(..)))
                && let Some(ds) = self.desired.services.get(service)
            {
                needs_image.insert(ds.image.clone());
            }
        }
        let mut pull_ops: BTreeMap<String, usize> = BTreeMap::new();
        for (reference, image) in &self.desired.images {
            if !image.services.iter().any(|s| self.selected.contains(s)) {
                continue;
            }
            let local = observed.images.get(reference);
            let present = local.is_some();
            let wanted = needs_image.contains(reference);
            let policy = self.opts.pull.unwrap_or(image.pull_policy);
            let decision = decide(
                policy,
                present,
                local.and_then(|i| i.pulled_at),
                observed.now.unwrap_or(std::time::UNIX_EPOCH),
            );
            let reason = match (policy, decision) {
                (PullPolicy::Always, _) if self.opts.pull.is_some() => Some("--pull always"),
                (PullPolicy::Always, _) => Some("pull_policy: always"),
                (PullPolicy::Every(_), PullDecision::Pull) if present => {
                    Some("pull_policy: the last pull is older than its refresh period")
                }
                _ if present || !wanted => None,
                (PullPolicy::Never, _) => {
                    return Err(PlanError::ImageUnavailable {
                        reference: reference.clone(),
                        why: "its service has `pull_policy: never` and it is not in the local image store; load it first".into(),
                    });
                }
                (PullPolicy::Build, _) => {
                    return Err(PlanError::ImageUnavailable {
                        reference: reference.clone(),
                        why: "its service has `pull_policy: build`, and stack cannot build images yet; build and load it first".into(),
                    });
                }
                _ if image.build
                    && image
                        .services
                        .iter()
                        .all(|s| stack.services.get(s).is_some_and(|s| s.image.is_none())) =>
                {
                    return Err(PlanError::ImageUnavailable {
                        reference: reference.clone(),
                        why: "its service has `build:` and no `image:`, and stack cannot build images yet; build it elsewhere and name it in `image:`".into(),
                    });
                }
                _ => Some("not in the local image store"),
            };
            if let Some(reason) = reason {
                let id = self.push(
                    Action::Pull,
                    Target::Image {
                        reference: reference.clone(),
                    },
                    reason,
                    [],
                );
                pull_ops.insert(reference.clone(), id);
            }
        }

        // Networks: create the missing, recreate the diverged.
        for key in &used_networks {
            let Some(spec) = self.desired.networks.get(key).cloned() else {
                continue;
            };
            if spec.definition.external {
                continue;
            }
            let target = Target::Network {
                key: key.clone(),
                name: spec.name.clone(),
            };
            if !observed.networks.contains_key(key) {
                let id = self.push(Action::Create, target, "new network", []);
                network_ops.insert(key.clone(), id);
                self.specs.networks.insert(key.clone(), spec);
            } else if let Some((_, ch)) = diverged_networks.iter().find(|(k, _)| k == key) {
                let after: Vec<usize> = detach
                    .get(key)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .chain(orphan_ops.iter().copied())
                    .collect();
                let reason = if ch.is_empty() {
                    "definition changed".to_string()
                } else {
                    "definition changed; its containers are detached and reattached".to_string()
                };
                let id = self.push(Action::Recreate, target, reason, after);
                self.ops[id].changes = ch.clone();
                network_ops.insert(key.clone(), id);
                self.specs.networks.insert(key.clone(), spec);
            }
        }

        // Volumes: create the missing; a diverged one is the user's call.
        let used_volumes: BTreeSet<String> = self
            .selected
            .iter()
            .filter_map(|s| self.desired.services.get(s))
            .flat_map(|s| s.volume_keys.iter().cloned())
            .collect();
        let mut volume_ops: BTreeMap<String, usize> = BTreeMap::new();
        for key in &used_volumes {
            let Some(spec) = self.desired.volumes.get(key).cloned() else {
                continue;
            };
            let found = observed.volumes.get(key);
            if spec.definition.external {
                if found.is_none() {
                    return Err(PlanError::ExternalMissing {
                        kind: "volume",
                        name: spec.name.clone(),
                        create: format!(
                            "stack cannot create it; create volume `{}` first, or drop `external: true`",
                            spec.name
                        ),
                    });
                }
                continue;
            }
            match found {
                None => {
                    let target = Target::Volume {
                        key: key.clone(),
                        name: spec.name.clone(),
                    };
                    let id = self.push(Action::Create, target, "new volume", []);
                    volume_ops.insert(key.clone(), id);
                    self.specs.volumes.insert(key.clone(), spec);
                }
                Some(found) if !found.owned => {
                    // Data the user already has: use it, as docker compose does, but say so.
                    self.warnings.push(format!(
                        "volume `{}` already exists and was not created by stack for this project; it is used as it is (declare it `external: true` to make that explicit)",
                        spec.name
                    ));
                }
                Some(found) if found.config_hash != spec.config_hash => {
                    let old = self.previous(observed.revision, "volumes", key);
                    let new = serde_json::to_value(&spec.definition).unwrap_or(Value::Null);
                    let ch: Vec<String> = match &old {
                        Some(old) => changes(old, &new).iter().map(ToString::to_string).collect(),
                        None => Vec::new(),
                    };
                    return Err(PlanError::VolumeDiverged {
                        key: key.clone(),
                        name: spec.name.clone(),
                        changes: if ch.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", ch.join("; "))
                        },
                    });
                }
                Some(_) => {}
            }
        }

        // Containers, dependencies first.
        let mut start_ops: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut create_ops: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut wait_ops: BTreeMap<(String, Until), usize> = BTreeMap::new();
        let mut container_start: BTreeMap<String, usize> = BTreeMap::new();
        let revision = observed.latest_revision + 1;
        for service in &order {
            let Some(ds) = self.desired.services.get(service) else {
                continue;
            };
            for (name, reason) in removals.remove(service).unwrap_or_default() {
                // Removals are chosen among the observed containers: the key exists.
                let c = &observed.containers[&name];
                // A container leaving a recreated network is detached first.
                let after = detach_of.get(&name).cloned().unwrap_or_default();
                self.push(Action::Remove, container_target(&c.record), reason, after);
                self.note_stop_timeout(ds, &name);
            }
            let list = slots.remove(service).unwrap_or_default();
            // Containers of unselected services only come back after a network recreate.
            for slot in &list {
                let target = self.slot_target(service, slot);
                let mut ready: Vec<usize> = Vec::new();
                let mut start_reason: Option<String> = None;
                match &slot.need {
                    Need::Create(reason) | Need::Recreate(reason, _) => {
                        let mut after: Vec<usize> = Vec::new();
                        after.extend(pull_ops.get(&ds.image));
                        after.extend(ds.network_keys.iter().filter_map(|k| network_ops.get(k)));
                        after.extend(ds.volume_keys.iter().filter_map(|k| volume_ops.get(k)));
                        // Its mounts or network namespace come from the
                        // dependency's container: that must exist first.
                        for (dep, edge) in self.graph.dependencies(service) {
                            if matches!(edge.kind, DepKind::VolumesFrom | DepKind::NetworkMode) {
                                after.extend(create_ops.get(dep).into_iter().flatten());
                            }
                        }
                        let recreate = matches!(slot.need, Need::Recreate(..));
                        if recreate {
                            // Restarted dependents stop before this container goes away.
                            for (dep, _) in self.graph.dependents(service) {
                                for c in self.containers_of(dep) {
                                    after.extend(cascade_stop.get(c.name()));
                                }
                            }
                            after.extend(cascade_stop.get(&slot.name));
                        }
                        // Its old self left the diverged networks already.
                        if let Some(keys) = detached.get(&slot.name) {
                            for key in keys {
                                after.extend(detach.get(key).into_iter().flatten());
                            }
                        }
                        let action = if recreate {
                            Action::Recreate
                        } else {
                            Action::Create
                        };
                        let id = self.push(action, target.clone(), reason.clone(), after);
                        if let Need::Recreate(_, ch) = &slot.need {
                            self.ops[id].changes = ch.clone();
                        }
                        create_ops.entry(service.clone()).or_default().push(id);
                        ready.push(id);
                        let digest = observed
                            .images
                            .get(&ds.image)
                            .and_then(|i| i.digest.clone());
                        let spec = self.desired.container(ds, slot.replica, revision, digest);
                        self.specs.containers.insert(slot.name.clone(), spec);
                        self.note_stop_timeout(ds, &slot.name);
                        start_reason = Some(if recreate { "recreated" } else { "created" }.into());
                    }
                    Need::Start(reason) => start_reason = Some(reason.clone()),
                    Need::Restart(reason) => {
                        ready.extend(cascade_stop.get(&slot.name));
                        start_reason = Some(if !reason.contains("(depends_on.") {
                            format!("restart: {reason}")
                        } else if reason.contains(" is restarted ") {
                            "restart after its dependency is restarted".into()
                        } else {
                            "restart after its dependency is recreated".into()
                        });
                    }
                    Need::Keep => {}
                }
                // Reattach to recreated networks (a recreated container attaches on create).
                if let Some(keys) = detached.get(&slot.name)
                    && !matches!(slot.need, Need::Create(_) | Need::Recreate(..))
                {
                    for key in keys {
                        let Some(spec) = self.desired.networks.get(key) else {
                            continue;
                        };
                        let net_name = spec.name.clone();
                        let attachment =
                            ds.definition.networks.get(key).cloned().unwrap_or_default();
                        let id = self.push(
                            Action::Connect,
                            Target::Attachment {
                                network: net_name.clone(),
                                container: slot.name.clone(),
                            },
                            format!("reattach to the recreated network `{net_name}`"),
                            network_ops.get(key).copied(),
                        );
                        self.specs
                            .attachments
                            .insert((slot.name.clone(), net_name), attachment);
                        ready.push(id);
                    }
                    if slot.was_running && start_reason.is_none() {
                        start_reason = Some("restart after its network is recreated".into());
                    }
                    self.note_stop_timeout(ds, &slot.name);
                }
                // Drift: a running container whose veth or bridge went away
                // is attached again (connecting replaces a broken endpoint).
                if matches!(slot.need, Need::Keep)
                    && !detached.contains_key(&slot.name)
                    && let Some(c) = observed.containers.get(&slot.name)
                {
                    for net_name in &c.detached {
                        let Some((key, _)) = self
                            .desired
                            .networks
                            .iter()
                            .find(|(_, n)| &n.name == net_name)
                        else {
                            continue;
                        };
                        let attachment =
                            ds.definition.networks.get(key).cloned().unwrap_or_default();
                        let attach_target = Target::Attachment {
                            network: net_name.clone(),
                            container: slot.name.clone(),
                        };
                        let why = format!(
                            "its link to network `{net_name}` is gone (veth or bridge removed)"
                        );
                        self.push(
                            Action::Connect,
                            attach_target,
                            format!("reattach: {why}"),
                            network_ops.get(key).copied(),
                        );
                        self.specs
                            .attachments
                            .insert((slot.name.clone(), net_name.clone()), attachment);
                    }
                }
                let Some(start_reason) = start_reason else {
                    continue;
                };
                // Wait for what this service depends on.
                for (dep, edge) in self.graph.dependencies(service) {
                    if !self.selected.contains(dep) && self.opts.no_deps {
                        continue;
                    }
                    if self
                        .desired
                        .services
                        .get(dep)
                        .is_none_or(|d| d.replicas == 0)
                    {
                        continue;
                    }
                    match wait_until(&edge) {
                        None => ready.extend(start_ops.get(dep).into_iter().flatten()),
                        Some(until) => {
                            let dep_containers = self.dependency_containers(dep);
                            for (name, target) in dep_containers {
                                let key = (name.clone(), until);
                                let id = match wait_ops.get(&key) {
                                    Some(&id) => {
                                        if edge.required
                                            && let Some(w) = self.ops[id].wait.as_mut()
                                        {
                                            w.required = true;
                                        }
                                        id
                                    }
                                    None => {
                                        let id = self.push(
                                            Action::Wait,
                                            target,
                                            format!(
                                                "{service} waits for it ({})",
                                                condition_name(edge.condition)
                                            ),
                                            container_start.get(&name).copied(),
                                        );
                                        self.ops[id].wait = Some(WaitFor {
                                            until,
                                            required: edge.required,
                                        });
                                        wait_ops.insert(key, id);
                                        id
                                    }
                                };
                                ready.push(id);
                            }
                        }
                    }
                }
                let id = self.push(Action::Start, target, start_reason, ready);
                start_ops.entry(service.clone()).or_default().push(id);
                container_start.insert(slot.name.clone(), id);
            }
        }

        let mut stale = observed.stale.clone();
        stale.containers.sort();
        let adopt = observed
            .containers
            .values()
            .filter(|c| !c.recorded)
            .map(|c| c.record.clone())
            .collect();
        // Only a plan that changes what exists applies a new revision:
        // starting, stopping or waiting for containers as they are (the
        // watcher restarting one that died) keeps the applied one, so a
        // crash-looping container does not grow the revision history.
        let changes = self.ops.iter().any(|op| {
            matches!(
                op.action,
                Action::Create
                    | Action::Recreate
                    | Action::Remove
                    | Action::Connect
                    | Action::Disconnect
            )
        });
        let revision = if changes || observed.revision == 0 {
            revision
        } else {
            observed.revision
        };
        Ok(finish(Plan {
            project: observed.project.clone(),
            revision,
            ops: self.ops,
            warnings: self.warnings,
            summary: Summary::default(),
            specs: self.specs,
            stale,
            adopt,
        }))
    }

    /// The containers of a dependency that will exist once the plan ran.
    fn dependency_containers(&self, service: &str) -> Vec<(String, Target)> {
        let Some(ds) = self.desired.services.get(service) else {
            return Vec::new();
        };
        let existing = self.containers_of(service);
        let mut out: Vec<(String, Target)> = existing
            .iter()
            .take(ds.replicas as usize)
            .map(|c| (c.name().to_string(), container_target(&c.record)))
            .collect();
        let mut used: BTreeSet<u32> = existing
            .iter()
            .take(ds.replicas as usize)
            .map(|c| c.record.replica)
            .collect();
        let mut n = 1;
        while out.len() < ds.replicas as usize {
            if used.insert(n) {
                let name = self.desired.container_name(ds, n);
                out.push((
                    name.clone(),
                    Target::Container {
                        name,
                        service: service.to_string(),
                        replica: n,
                    },
                ));
            }
            n += 1;
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn note_stop_timeout(&mut self, ds: &DesiredService<'_>, name: &str) {
        if let Some(d) = ds.definition.stop_grace_period {
            self.specs.stop_timeouts.insert(name.to_string(), d.0);
        }
    }

    fn slot_target(&self, service: &str, slot: &Slot) -> Target {
        Target::Container {
            name: slot.name.clone(),
            service: service.to_string(),
            replica: slot.replica,
        }
    }

    /// The previous definition of `section.key` (networks, volumes) from the history.
    fn previous(&self, revision: u64, section: &str, key: &str) -> Option<Value> {
        self.observed
            .history
            .get(&revision)?
            .get(section)?
            .get(key)
            .cloned()
    }

    /// What each container of `service` needs, and which containers go.
    fn decide(
        &self,
        service: &str,
        updated: &BTreeSet<String>,
        recreated: &BTreeSet<String>,
    ) -> Decision {
        let Some(ds) = self.desired.services.get(service) else {
            return Decision::default();
        };
        let existing = self.containers_of(service);
        if !self.selected.contains(service) || self.opts.prepare_only.contains(service) {
            // Untouched, but known, so that a recreated network reattaches them.
            let slots = existing
                .iter()
                .map(|c| Slot {
                    name: c.name().to_string(),
                    replica: c.record.replica,
                    need: Need::Keep,
                    was_running: c.status.is_running(),
                })
                .collect();
            return Decision {
                slots,
                ..Decision::default()
            };
        }
        let strategy = match (self.named.contains(service), self.opts) {
            (_, o) if o.no_recreate => Strategy::Never,
            (true, o) if o.force_recreate => Strategy::Force,
            (false, o) if o.always_recreate_deps => Strategy::Force,
            _ => Strategy::Diverged,
        };
        let digest = self
            .observed
            .images
            .get(&ds.image)
            .and_then(|i| i.digest.clone());
        // Why each existing container differs from the file, if it does.
        let diverged: Vec<Option<(String, Vec<Change>)>> = existing
            .iter()
            .map(|c| self.divergence(ds, c, digest.as_deref()))
            .collect();
        // Keep the up-to-date ones first, then the lowest numbers; the rest go.
        let mut ranked: Vec<usize> = (0..existing.len()).collect();
        ranked.sort_by_key(|&i| (diverged[i].is_some(), existing[i].record.replica));
        let want = ds.replicas as usize;
        let mut removals = Vec::new();
        for &i in ranked.iter().skip(want) {
            let reason = if want == 0 {
                format!("service `{service}` is scaled to 0")
            } else {
                format!(
                    "scale {} → {}{}",
                    existing.len(),
                    want,
                    if diverged[i].is_some() {
                        " (out of date, so removed first)"
                    } else {
                        ""
                    }
                )
            };
            removals.push((existing[i].name().to_string(), reason));
        }
        let mut kept: Vec<usize> = ranked.iter().take(want).copied().collect();
        kept.sort_by_key(|&i| existing[i].record.replica);
        let mut slots = Vec::new();
        let mut warnings = Vec::new();
        for i in kept {
            let c = existing[i];
            let hard = self.graph.dependencies(service).into_iter().find(|(d, e)| {
                matches!(e.kind, DepKind::NetworkMode | DepKind::VolumesFrom)
                    && recreated.contains(*d)
            });
            let need = match (strategy, &diverged[i], hard) {
                (Strategy::Force, _, _) => Need::Recreate(
                    if self.named.contains(service) {
                        "--force-recreate".into()
                    } else {
                        "--always-recreate-deps".into()
                    },
                    diverged[i].clone().map(|d| d.1).unwrap_or_default(),
                ),
                (Strategy::Diverged, Some((reason, ch)), _) => {
                    Need::Recreate(reason.clone(), ch.clone())
                }
                (Strategy::Diverged | Strategy::Never, _, Some((dep, edge))) => Need::Recreate(
                    match edge.kind {
                        DepKind::NetworkMode => format!(
                            "`{dep}` is recreated and this container shares its network (network_mode: service:{dep})"
                        ),
                        _ => format!(
                            "`{dep}` is recreated and this container mounts its volumes (volumes_from)"
                        ),
                    },
                    Vec::new(),
                ),
                (_, _, None) => self.keep_need(service, c, updated, recreated),
            };
            if let (Strategy::Never, Some((reason, _))) = (strategy, &diverged[i]) {
                // The user asked for it, but should know what stays out of date.
                warnings.push(format!(
                    "{} is kept as it is because of --no-recreate, although it differs from the file ({reason})",
                    c.name()
                ));
            }
            slots.push(Slot {
                name: c.name().to_string(),
                replica: c.record.replica,
                need,
                was_running: c.status.is_running(),
            });
        }
        // New replicas take the lowest free numbers.
        let mut used: BTreeSet<u32> = slots.iter().map(|s| s.replica).collect();
        let mut n = 1;
        // Replicas the user removed stay away under the watcher, holding their number.
        let mut held = 0;
        while slots.len() + held < want {
            if used.insert(n) {
                if self.opts.keep_user_stopped
                    && self
                        .observed
                        .removed_by_user
                        .contains(&self.desired.container_name(ds, n))
                {
                    held += 1;
                    n += 1;
                    continue;
                }
                let reason = if existing.is_empty() {
                    "new service".to_string()
                } else {
                    format!("scale {} → {}", existing.len(), want)
                };
                slots.push(Slot {
                    name: self.desired.container_name(ds, n),
                    replica: n,
                    need: Need::Create(reason),
                    was_running: false,
                });
            }
            n += 1;
        }
        Decision {
            slots,
            removals,
            warnings,
        }
    }

    /// An existing, up-to-date container: start it, restart it, or leave it.
    fn keep_need(
        &self,
        service: &str,
        c: &ObservedContainer,
        updated: &BTreeSet<String>,
        recreated: &BTreeSet<String>,
    ) -> Need {
        if c.status.is_running() {
            if let Some(other) = &c.stray_namespace {
                return Need::Restart(format!(
                    "`{other}`, whose network it shares, was started again: it joins its new namespace"
                ));
            }
            let cause = self
                .graph
                .dependencies(service)
                .into_iter()
                .find(|(d, e)| e.restart && updated.contains(*d));
            return match cause {
                Some((dep, _)) => Need::Restart(format!(
                    "`{dep}` is {} (depends_on.{dep}.restart: true)",
                    if recreated.contains(dep) {
                        "recreated"
                    } else {
                        "restarted"
                    }
                )),
                None => self.unhealthy_need(service, c),
            };
        }
        if self.opts.keep_user_stopped && c.record.stopped_by_user {
            return Need::Keep;
        }
        if let Some(need) = self.supervised_need(service, c) {
            return need;
        }
        let one_shot = self
            .desired
            .services
            .get(service)
            .is_some_and(|d| d.one_shot);
        match c.status {
            Status::Exited { code: 0 } if one_shot => Need::Keep,
            Status::Exited { code } => Need::Start(format!("exited with code {code}")),
            _ => Need::Start("created but not started".into()),
        }
    }

    /// Under the watcher, an exited container follows its restart policy
    /// (`None`: `up` plans, and starts what should run).
    fn supervised_need(&self, service: &str, c: &ObservedContainer) -> Option<Need> {
        let sup = self.observed.supervision.as_ref()?;
        let Status::Exited { code } = c.status else {
            return None;
        };
        let policy = RestartPolicy::of(self.stack.services.get(service)?);
        let restarts = sup.restarts.get(c.name()).copied().unwrap_or(0);
        if sup.hold.contains(c.name()) || !policy.restarts(code, restarts) {
            return Some(Need::Keep);
        }
        Some(Need::Start(format!(
            "exited with code {code} (restart: {})",
            policy.describe()
        )))
    }

    /// Under the watcher, an unhealthy container is restarted when its
    /// policy says so.
    fn unhealthy_need(&self, service: &str, c: &ObservedContainer) -> Need {
        let Some(sup) = self.observed.supervision.as_ref() else {
            return Need::Keep;
        };
        let Some(definition) = self.stack.services.get(service) else {
            return Need::Keep;
        };
        let policy = RestartPolicy::of(definition);
        let restarts = sup.restarts.get(c.name()).copied().unwrap_or(0);
        if c.status == Status::Unhealthy
            && !sup.hold.contains(c.name())
            && policy.restarts_unhealthy(restarts)
        {
            return Need::Restart(format!("unhealthy (restart: {})", policy.describe()));
        }
        Need::Keep
    }

    /// Why `c` no longer matches the file (`None`: it does).
    fn divergence(
        &self,
        ds: &DesiredService<'_>,
        c: &ObservedContainer,
        digest: Option<&str>,
    ) -> Option<(String, Vec<Change>)> {
        if c.record.config_hash != ds.config_hash {
            let new = self
                .stack
                .services
                .get(&ds.name)
                .map(|s| hash_input(self.stack, s));
            let old = self
                .observed
                .history
                .get(&c.record.revision)
                .and_then(|doc| {
                    let service = doc.get("services")?.get(&ds.name)?.clone();
                    let digests = doc.get(DIGESTS_KEY).cloned().unwrap_or(Value::Null);
                    Some(hash_input_of_json(service, &digests))
                });
            let ch = match (old, new) {
                (Some(old), Some(new)) => changes(&old, &new),
                _ => Vec::new(),
            };
            if ch.is_empty() {
                return Some((
                    "configuration changed".into(),
                    vec![Change {
                        field: "configuration hash".into(),
                        old: Some(short_digest(&c.record.config_hash)),
                        new: Some(short_digest(&ds.config_hash)),
                    }],
                ));
            }
            let fields: BTreeSet<&str> = ch
                .iter()
                .map(|c| c.field.split(' ').next().unwrap_or(&c.field))
                .collect();
            let fields: Vec<&str> = fields.into_iter().collect();
            return Some((format!("{} changed", fields.join(", ")), ch));
        }
        let old = c.record.image.as_str();
        if let Some(new) = digest
            && old.starts_with("sha256:")
            && old != new
        {
            return Some((
                format!(
                    "image changed: {}@{} → {}",
                    ds.image,
                    short_digest(old),
                    short_digest(new)
                ),
                vec![Change {
                    field: "image digest".into(),
                    old: Some(short_digest(old)),
                    new: Some(short_digest(new)),
                }],
            ));
        }
        None
    }
}

/// What a dependent waits for, beyond the dependency's start.
fn wait_until(edge: &Edge) -> Option<Until> {
    match edge.condition {
        Condition::ServiceStarted => None,
        Condition::ServiceHealthy => Some(Until::Healthy),
        Condition::ServiceCompletedSuccessfully => Some(Until::CompletedSuccessfully),
    }
}

fn condition_name(c: Condition) -> &'static str {
    match c {
        Condition::ServiceStarted => "service_started",
        Condition::ServiceHealthy => "service_healthy",
        Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
    }
}

fn container_target(c: &crate::state::ContainerRecord) -> Target {
    Target::Container {
        name: c.name.clone(),
        service: c.service.clone(),
        replica: c.replica,
    }
}

/// Fills in the summary.
fn finish(mut plan: Plan) -> Plan {
    let mut s = Summary::default();
    for op in &plan.ops {
        match op.action {
            Action::Create => s.create += 1,
            Action::Recreate => s.recreate += 1,
            Action::Remove => s.remove += 1,
            Action::Start => s.start += 1,
            Action::Stop => s.stop += 1,
            Action::Pull => s.pull += 1,
            Action::Connect | Action::Disconnect | Action::Wait => {}
        }
    }
    plan.summary = s;
    plan
}

/// The plan that removes the project: containers (dependents first), then
/// its networks, and its volumes only with `volumes`. `stack` (when the
/// file is at hand) tells orphans apart; without it, every container goes.
pub fn plan_down(
    stack: Option<&Stack>,
    observed: &Observed,
    opts: &DownOptions,
) -> Result<Plan, PlanError> {
    let mut warnings = Vec::new();
    let mut orphans = Vec::new();
    let containers: Vec<&ObservedContainer> = observed
        .containers
        .values()
        .filter(|c| {
            let orphan = stack.is_some_and(|s| {
                !s.services.contains_key(c.service()) && !s.disabled.contains_key(c.service())
            });
            if orphan && !opts.remove_orphans {
                orphans.push(c.name().to_string());
                return false;
            }
            true
        })
        .collect();
    if !orphans.is_empty() {
        warnings.push(format!(
            "found orphan containers ({}) for this project; they stay: run with --remove-orphans to remove them too",
            orphans.join(", ")
        ));
    }
    // Order from the labels each container carries, so no file is needed.
    let services: BTreeSet<String> = containers.iter().map(|c| c.service().to_string()).collect();
    let edges: Vec<(String, String, Edge)> = containers
        .iter()
        .flat_map(|c| {
            let deps = c
                .record
                .labels
                .get(labels::DEPENDS_ON)
                .cloned()
                .unwrap_or_default();
            let service = c.service().to_string();
            deps.split(',')
                .filter(|d| !d.is_empty())
                .map(|d| {
                    (
                        service.clone(),
                        d.to_string(),
                        Edge {
                            kind: DepKind::DependsOn,
                            condition: Condition::ServiceStarted,
                            required: true,
                            restart: false,
                        },
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let graph = Graph::from_edges(services, edges)?;
    let mut ops: Vec<Op> = Vec::new();
    // Running containers stop dependents first; each is removed as soon as
    // it has stopped, so removals (the slow part: unmounts, links, cgroups)
    // overlap instead of following the dependency chain.
    let mut stopped: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut removals: Vec<usize> = Vec::new();
    let mut specs = Specs::default();
    for service in graph.order().rev() {
        let after: Vec<usize> = graph
            .dependents(service)
            .into_iter()
            .flat_map(|(d, _)| stopped.get(d).cloned().unwrap_or_default())
            .collect();
        let mut mine: Vec<&&ObservedContainer> = containers
            .iter()
            .filter(|c| c.service() == service)
            .collect();
        mine.sort_by_key(|c| c.record.replica);
        for c in mine {
            let mut remove_after = Vec::new();
            if c.status.is_running() {
                let id = ops.len();
                ops.push(Op {
                    id,
                    action: Action::Stop,
                    target: container_target(&c.record),
                    reason: "stopped with the project, dependents first".into(),
                    changes: Vec::new(),
                    after: after.clone(),
                    wait: None,
                });
                stopped.entry(service.to_string()).or_default().push(id);
                remove_after.push(id);
            }
            let id = ops.len();
            ops.push(Op {
                id,
                action: Action::Remove,
                target: container_target(&c.record),
                reason: "removed with the project".into(),
                changes: Vec::new(),
                after: remove_after,
                wait: None,
            });
            removals.push(id);
            if let Some(d) = stack
                .and_then(|s| s.services.get(service))
                .and_then(|s| s.stop_grace_period)
            {
                specs.stop_timeouts.insert(c.name().to_string(), d.0);
            }
        }
    }
    let all_containers = removals;
    for (key, n) in &observed.networks {
        if n.external || !n.owned {
            continue;
        }
        let id = ops.len();
        ops.push(Op {
            id,
            action: Action::Remove,
            target: Target::Network {
                key: key.clone(),
                name: n.name.clone(),
            },
            reason: "removed with the project".into(),
            changes: Vec::new(),
            after: all_containers.clone(),
            wait: None,
        });
    }
    let mut kept_volumes = Vec::new();
    for (key, v) in &observed.volumes {
        if v.external || !v.owned {
            continue;
        }
        if !opts.volumes {
            kept_volumes.push(v.name.clone());
            continue;
        }
        let id = ops.len();
        ops.push(Op {
            id,
            action: Action::Remove,
            target: Target::Volume {
                key: key.clone(),
                name: v.name.clone(),
            },
            reason: "down --volumes: its data is deleted".into(),
            changes: Vec::new(),
            after: all_containers.clone(),
            wait: None,
        });
    }
    if !kept_volumes.is_empty() {
        warnings.push(format!(
            "volumes {} are kept with their data; `stack down --volumes` removes them",
            kept_volumes.join(", ")
        ));
    }
    Ok(finish(Plan {
        project: observed.project.clone(),
        revision: observed.revision,
        ops,
        warnings,
        summary: Summary::default(),
        specs,
        stale: observed.stale.clone(),
        adopt: Vec::new(),
    }))
}
