//! Desired state: what the host should hold for a stack.
//!
//! From a normalized [`Stack`] (and `--scale svc=n`), the planner derives
//! the objects that should exist: each network and volume the services use,
//! each image they run, and for every service its replicas, each a
//! container named `<project>-<service>-<n>`. Every object carries stack's
//! labels (project, service, replica, configuration hash, revision) and a
//! configuration hash; comparing those hashes with what the state store
//! recorded is how the planner knows what changed. Nothing here looks at
//! the host: desired state is a pure function of the file and the flags.

use super::pull_policy::PullPolicy;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::PlanError;
use super::backend::{ContainerSpec, NetworkSpec, VolumeSpec};
use super::hash::{config_hash_with, file_digests, network_hash, volume_hash};
use crate::spec::model::{MountType, ServiceNetwork};
use crate::spec::{Service, Stack};

/// The labels stack puts on everything it creates.
pub mod labels {
    pub const PROJECT: &str = "stack.project";
    pub const SERVICE: &str = "stack.service";
    pub const REPLICA: &str = "stack.replica";
    pub const CONFIG_HASH: &str = "stack.config-hash";
    pub const REVISION: &str = "stack.revision";
    /// The image reference the container was created from.
    pub const IMAGE: &str = "stack.image";
    /// Comma-separated services this one depends on, so that `down` can
    /// order removals without the stack file.
    pub const DEPENDS_ON: &str = "stack.depends-on";
    /// `true` on containers of `stack run`: never a replica of the service.
    pub const ONE_OFF: &str = "stack.one-off";
    /// `true` on containers of `stack run --rm -d`: removed once exited
    /// (by the watcher, or the next `up`).
    pub const AUTO_REMOVE: &str = "stack.auto-remove";
    pub const NETWORK: &str = "stack.network";
    pub const VOLUME: &str = "stack.volume";
}

/// What the host should hold for a stack.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    pub project: String,
    /// By key in the stack file; only those some service uses.
    pub networks: BTreeMap<String, NetworkSpec>,
    /// By key in the stack file; only those some service mounts.
    pub volumes: BTreeMap<String, VolumeSpec>,
    /// Image references, each with the services that run it.
    pub images: BTreeMap<String, DesiredImage>,
    pub services: BTreeMap<String, DesiredService<'a>>,
}

/// An image some services run, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredImage {
    pub reference: String,
    pub services: BTreeSet<String>,
    /// The strictest `pull_policy` among them (see [`PullPolicy::merge`]).
    pub pull_policy: PullPolicy,
    /// Some service has `build:` (and stack cannot build yet).
    pub build: bool,
}

/// One service: its replicas and what each of its containers looks like.
#[derive(Debug, Clone)]
pub struct DesiredService<'a> {
    pub name: String,
    pub replicas: u32,
    pub config_hash: String,
    pub image: String,
    /// The normalized service, borrowed from the stack (cloned only into
    /// the specs of containers that are created).
    pub definition: &'a Service,
    /// Network keys in the stack file this service attaches to.
    pub network_keys: Vec<String>,
    /// Volume keys in the stack file this service mounts.
    pub volume_keys: Vec<String>,
    /// A service meant to run to completion: its restart policy does not
    /// bring it back (`no`, `on-failure`, or none). An exited, unchanged
    /// container of such a service is left alone.
    pub one_shot: bool,
}

impl<'a> Desired<'a> {
    /// Desired state for `stack`, with `scale` overriding replica counts.
    pub fn new(stack: &'a Stack, scale: &BTreeMap<String, u32>) -> Result<Desired<'a>, PlanError> {
        for name in scale.keys() {
            if !stack.services.contains_key(name) {
                return Err(PlanError::UnknownService {
                    name: name.clone(),
                    flag: "--scale",
                });
            }
        }
        let project = stack.name.clone();
        let mut services = BTreeMap::new();
        let mut images: BTreeMap<String, DesiredImage> = BTreeMap::new();
        let mut network_keys_used = BTreeSet::new();
        let digests = file_digests(stack);
        let mut volume_keys_used = BTreeSet::new();
        for (name, service) in &stack.services {
            let replicas = scale
                .get(name)
                .copied()
                .unwrap_or_else(|| service.replicas());
            if service.container_name.is_some() && replicas > 1 {
                return Err(PlanError::ContainerNameScaled {
                    service: name.clone(),
                    replicas,
                });
            }
            let image = service
                .image
                .clone()
                .unwrap_or_else(|| format!("{project}-{name}"));
            let entry = images.entry(image.clone()).or_insert_with(|| DesiredImage {
                reference: image.clone(),
                services: BTreeSet::new(),
                pull_policy: PullPolicy::Missing,
                build: false,
            });
            entry.services.insert(name.clone());
            entry.build |= service.build.is_some();
            // The schema's pattern admits only valid policies; the one way
            // to fail is `refresh` without `pull_refresh_after`, which
            // behaves as the default, `missing`.
            let refresh_after = service
                .extra
                .get("pull_refresh_after")
                .and_then(|v| v.as_str());
            let policy = PullPolicy::parse(service.pull_policy.as_deref(), refresh_after)
                .unwrap_or(PullPolicy::Missing);
            entry.pull_policy = entry.pull_policy.merge(policy);
            let network_keys: Vec<String> = if service.network_mode.is_some() {
                Vec::new()
            } else {
                service.networks.keys().cloned().collect()
            };
            let volume_keys: Vec<String> = service
                .volumes
                .iter()
                .filter(|m| m.kind == MountType::Volume)
                .filter_map(|m| m.source.clone())
                .filter(|s| stack.volumes.contains_key(s))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            network_keys_used.extend(network_keys.iter().cloned());
            volume_keys_used.extend(volume_keys.iter().cloned());
            let hash = config_hash_with(&digests, service);
            let restart = service
                .restart
                .as_deref()
                .or_else(|| {
                    service
                        .deploy
                        .as_ref()
                        .and_then(|d| d.restart_policy.as_ref())
                        .and_then(|p| p.condition.as_deref())
                        .map(|c| if c == "any" { "always" } else { c })
                })
                .unwrap_or("no");
            services.insert(
                name.clone(),
                DesiredService {
                    name: name.clone(),
                    replicas,
                    config_hash: hash,
                    image,
                    definition: service,
                    network_keys,
                    volume_keys,
                    one_shot: !matches!(restart, "always" | "unless-stopped"),
                },
            );
        }
        let networks = stack
            .networks
            .iter()
            .filter(|(key, _)| network_keys_used.contains(*key))
            .map(|(key, def)| {
                let hash = network_hash(def);
                let labels = object_labels(&project, labels::NETWORK, key, &hash);
                let spec = NetworkSpec {
                    key: key.clone(),
                    name: def.name.clone(),
                    config_hash: hash,
                    labels,
                    definition: def.clone(),
                };
                (key.clone(), spec)
            })
            .collect();
        let volumes = stack
            .volumes
            .iter()
            .filter(|(key, _)| volume_keys_used.contains(*key))
            .map(|(key, def)| {
                let hash = volume_hash(def);
                let labels = object_labels(&project, labels::VOLUME, key, &hash);
                let spec = VolumeSpec {
                    key: key.clone(),
                    name: def.name.clone(),
                    config_hash: hash,
                    labels,
                    definition: def.clone(),
                };
                (key.clone(), spec)
            })
            .collect();
        Ok(Desired {
            project,
            networks,
            volumes,
            images,
            services,
        })
    }

    /// Every desired container of a fresh project, replicas numbered from 1.
    pub fn containers(&self, revision: u64) -> Vec<ContainerSpec> {
        self.services
            .values()
            .flat_map(|s| (1..=s.replicas).map(move |n| self.container(s, n, revision, None)))
            .collect()
    }

    /// The container for replica `n` of `service`.
    pub fn container(
        &self,
        service: &DesiredService<'_>,
        replica: u32,
        revision: u64,
        image_digest: Option<String>,
    ) -> ContainerSpec {
        // Built here, not per service up front: most plans create few containers.
        let mut labels = BTreeMap::from([
            (labels::PROJECT.to_string(), self.project.clone()),
            (labels::SERVICE.to_string(), service.name.clone()),
            (labels::REPLICA.to_string(), replica.to_string()),
            (labels::CONFIG_HASH.to_string(), service.config_hash.clone()),
            (labels::REVISION.to_string(), revision.to_string()),
            (labels::IMAGE.to_string(), service.image.clone()),
        ]);
        let deps: BTreeSet<&str> = service
            .definition
            .dependencies()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        if !deps.is_empty() {
            let deps: Vec<&str> = deps.into_iter().collect();
            labels.insert(labels::DEPENDS_ON.into(), deps.join(","));
        }
        let networks: BTreeMap<String, ServiceNetwork> = service
            .network_keys
            .iter()
            .filter_map(|key| {
                let net = self.networks.get(key)?;
                let attachment = service.definition.networks.get(key)?;
                Some((net.name.clone(), attachment.clone()))
            })
            .collect();
        let volumes = service
            .volume_keys
            .iter()
            .filter_map(|key| Some((key.clone(), self.volumes.get(key)?.name.clone())))
            .collect();
        ContainerSpec {
            name: self.container_name(service, replica),
            project: self.project.clone(),
            service: service.name.clone(),
            replica,
            image: service.image.clone(),
            image_digest,
            config_hash: service.config_hash.clone(),
            labels,
            definition: Arc::new(service.definition.clone()),
            networks,
            volumes,
            stop_timeout: service.definition.stop_grace_period.map(|d| d.0),
        }
    }

    /// `<project>-<service>-<n>`, or the service's `container_name`.
    pub fn container_name(&self, service: &DesiredService<'_>, replica: u32) -> String {
        match &service.definition.container_name {
            Some(name) => name.clone(),
            None => container_name(&self.project, &service.name, replica),
        }
    }
}

/// `<project>-<service>-<n>`, docker compose's naming.
pub fn container_name(project: &str, service: &str, replica: u32) -> String {
    format!("{project}-{service}-{replica}")
}

fn object_labels(
    project: &str,
    kind_label: &str,
    key: &str,
    hash: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::PROJECT.to_string(), project.to_string()),
        (kind_label.to_string(), key.to_string()),
        (labels::CONFIG_HASH.to_string(), hash.to_string()),
    ])
}
