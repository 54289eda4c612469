//! Observed state: what exists now, rebuilt from the record and the host.
//!
//! The state store remembers what stack created (with the configuration
//! hash each object was created from); the host knows what is actually
//! there and what it is doing (running, exited with a code, healthy). The
//! planner needs both: the record alone goes stale when someone removes a
//! container by hand or the machine reboots, and the host alone cannot say
//! which configuration an object came from once its labels are gone.
//! [`observe`] asks the host about every object the record or the stack
//! names and merges the answers: a recorded object that is gone is noted
//! as stale (the executor drops it from the record), a live container
//! carrying the project's labels but missing from the record (a crash
//! between create and record) is adopted. Containers of the project whose
//! service the stack no longer names are orphans; the planner decides what
//! to do with them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::PlanError;
use super::backend::{BackendError, Host, ImageInfo, Status};
use super::desired::labels;
use crate::spec::Stack;
use crate::state::{ContainerRecord, ProjectRecord};

/// What exists for a project, and what it is doing.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub project: String,
    /// The last applied revision (0: none).
    pub revision: u64,
    /// The highest revision in the history given to [`observe`] (at least
    /// `revision`). A plan applies `latest_revision + 1`, the number the
    /// state store's `push_revision` gives next, provided the history
    /// includes the store's latest revision (after `down`, the record
    /// starts again but the history goes on).
    pub latest_revision: u64,
    /// Applied stacks by revision (revision documents, see
    /// [`super::hash::revision_document`]): the "old" side of field-level
    /// diffs. May be partial or empty; diffs then fall back to the hash.
    pub history: BTreeMap<u64, Value>,
    /// Networks that exist, by key in the stack file (or in the record).
    pub networks: BTreeMap<String, ObservedObject>,
    /// Volumes that exist, by key.
    pub volumes: BTreeMap<String, ObservedObject>,
    /// Images in the local store, by reference.
    pub images: BTreeMap<String, ImageInfo>,
    /// The wall-clock time of the observation, for `pull_policy: daily` and
    /// the like (`None`: every image counts as freshly pulled).
    pub now: Option<std::time::SystemTime>,
    /// Containers that exist, by name.
    pub containers: BTreeMap<String, ObservedContainer>,
    /// Record entries whose object is gone; the executor drops them.
    pub stale: Stale,
    /// Containers the user removed (`stack rm`), by name.
    pub removed_by_user: std::collections::BTreeSet<String>,
    /// The watcher's restart history, when the watcher plans (`None`: `up`
    /// plans, and starts whatever should run, whatever its restart policy).
    pub supervision: Option<Supervision>,
}

/// What the watcher knows of past restarts, for restart policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Supervision {
    /// Restarts so far, by container.
    pub restarts: BTreeMap<String, u64>,
    /// Containers not to start now: backing off, or past the flap limit.
    pub hold: std::collections::BTreeSet<String>,
}

/// Record entries for objects that no longer exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stale {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// A network or volume that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedObject {
    pub key: String,
    /// Its name on the host.
    pub name: String,
    /// The hash it was created from ("" when unknown).
    pub config_hash: String,
    pub external: bool,
    /// Created by stack for this project (recorded, or labelled so).
    pub owned: bool,
}

/// A container that exists.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    pub record: ContainerRecord,
    pub status: Status,
    /// Whether the state record knew it (`false`: adopted from its labels).
    pub recorded: bool,
    /// Networks (host names) whose link to it is broken: drift to repair.
    pub detached: Vec<String>,
    /// Its last exit was an OOM kill.
    pub oom_killed: bool,
    /// See [`LiveContainer::stray_namespace`](super::backend::LiveContainer).
    pub stray_namespace: Option<String>,
}

impl ObservedContainer {
    pub fn name(&self) -> &str {
        &self.record.name
    }
    pub fn service(&self) -> &str {
        &self.record.service
    }
}

/// Observes `project` on `host`: every network, volume and image the stack
/// or the record names, and every container labelled with the project.
pub async fn observe<H: Host>(
    host: &H,
    project: &str,
    stack: Option<&Stack>,
    record: Option<&ProjectRecord>,
    history: BTreeMap<u64, Value>,
) -> Result<Observed, PlanError> {
    let empty = ProjectRecord::default();
    let record = record.unwrap_or(&empty);
    let fail = |what: String| move |source: BackendError| PlanError::Observe { what, source };
    let mut observed = Observed {
        project: project.to_string(),
        revision: record.revision,
        latest_revision: history
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(record.revision),
        history,
        now: Some(std::time::SystemTime::now()),
        removed_by_user: record.removed_by_user.clone(),
        ..Observed::default()
    };

    // Networks and volumes: those the stack defines, then those only recorded.
    let mut networks: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let mut volumes: BTreeMap<String, (String, bool)> = BTreeMap::new();
    if let Some(stack) = stack {
        for (key, n) in &stack.networks {
            networks.insert(key.clone(), (n.name.clone(), n.external));
        }
        for (key, v) in &stack.volumes {
            volumes.insert(key.clone(), (v.name.clone(), v.external));
        }
    }
    for (key, r) in &record.networks {
        networks
            .entry(key.clone())
            .or_insert((r.name.clone(), r.external));
    }
    for (key, r) in &record.volumes {
        volumes
            .entry(key.clone())
            .or_insert((r.name.clone(), r.external));
    }
    for (key, (name, external)) in networks {
        let live = host
            .inspect_network(&name)
            .await
            .map_err(fail(format!("network `{name}`")))?;
        let recorded = record.networks.get(&key).filter(|r| r.name == name);
        match live {
            Some(live) => {
                let object = merge_object(project, &key, &name, external, &live.labels, recorded);
                observed.networks.insert(key, object);
            }
            None if recorded.is_some() => observed.stale.networks.push(key),
            None => {}
        }
    }
    for (key, (name, external)) in volumes {
        let live = host
            .inspect_volume(&name)
            .await
            .map_err(fail(format!("volume `{name}`")))?;
        let recorded = record.volumes.get(&key).filter(|r| r.name == name);
        match live {
            Some(live) => {
                let object = merge_object(project, &key, &name, external, &live.labels, recorded);
                observed.volumes.insert(key, object);
            }
            None if recorded.is_some() => observed.stale.volumes.push(key),
            None => {}
        }
    }

    // Images the stack's services run.
    if let Some(stack) = stack {
        let mut references: Vec<String> = stack
            .services
            .iter()
            .map(|(name, s)| {
                s.image
                    .clone()
                    .unwrap_or_else(|| format!("{}-{name}", stack.name))
            })
            .collect();
        references.sort();
        references.dedup();
        for reference in references {
            let found = host
                .inspect_image(&reference)
                .await
                .map_err(fail(format!("image `{reference}`")))?;
            if let Some(info) = found {
                observed.images.insert(reference, info);
            }
        }
    }

    // Containers: what the runtime lists, completed from the record.
    let live = host
        .list(project)
        .await
        .map_err(fail(format!("the containers of project `{project}`")))?;
    for c in live {
        let known = record.containers.get(&c.name);
        let label = |k: &str| c.labels.get(k).cloned();
        let Some(service) = label(labels::SERVICE).or_else(|| known.map(|r| r.service.clone()))
        else {
            // Neither labelled nor recorded: not stack's to manage.
            continue;
        };
        let replica = label(labels::REPLICA)
            .and_then(|r| r.parse().ok())
            .or(known.map(|r| r.replica))
            .unwrap_or(1);
        let config_hash = label(labels::CONFIG_HASH)
            .or_else(|| known.map(|r| r.config_hash.clone()))
            .unwrap_or_default();
        let revision = label(labels::REVISION)
            .and_then(|r| r.parse().ok())
            .or(known.map(|r| r.revision))
            .unwrap_or(0);
        let image = c
            .image
            .clone()
            .or_else(|| known.map(|r| r.image.clone()))
            .or_else(|| label(labels::IMAGE))
            .unwrap_or_default();
        let record = ContainerRecord {
            name: c.name.clone(),
            id: c.id.clone(),
            service,
            replica,
            config_hash,
            image,
            revision,
            one_off: known.is_some_and(|r| r.one_off)
                || label(labels::ONE_OFF).is_some_and(|v| v == "true"),
            stopped_by_user: known.is_some_and(|r| r.stopped_by_user),
            labels: c.labels.clone(),
        };
        observed.containers.insert(
            c.name.clone(),
            ObservedContainer {
                record,
                status: c.status,
                recorded: known.is_some(),
                detached: c.detached.clone(),
                oom_killed: c.oom_killed,
                stray_namespace: c.stray_namespace.clone(),
            },
        );
    }
    observed.stale.containers = record
        .containers
        .keys()
        .filter(|name| !observed.containers.contains_key(*name))
        .cloned()
        .collect();
    Ok(observed)
}

fn merge_object(
    project: &str,
    key: &str,
    name: &str,
    external: bool,
    live_labels: &BTreeMap<String, String>,
    recorded: Option<&crate::state::ObjectRecord>,
) -> ObservedObject {
    let labelled = live_labels.get(labels::PROJECT).map(String::as_str) == Some(project);
    let config_hash = live_labels
        .get(labels::CONFIG_HASH)
        .cloned()
        .or_else(|| recorded.map(|r| r.config_hash.clone()))
        .unwrap_or_default();
    ObservedObject {
        key: key.to_string(),
        name: name.to_string(),
        config_hash,
        external: external || recorded.is_some_and(|r| r.external),
        owned: labelled || recorded.is_some_and(|r| !r.external),
    }
}
