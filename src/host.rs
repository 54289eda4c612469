//! The Linux host: the planner's traits over the real modules.
//!
//! The planner asks through narrow traits ([`crate::planner::backend`]);
//! [`LinuxHost`] answers them with the image store, the bridge networks,
//! the volume store and the container runtime of this machine. It is the
//! only place that knows how those pieces fit together for one container:
//!
//! ```text
//! create_container(spec)
//!   image store  ─► the image's unpacked layers and run defaults
//!   volumes      ─► named volumes (created, copied up once), bind sources,
//!                   secrets and configs written as files, tmpfs
//!   network      ─► host ports reserved (a taken port fails before anything starts)
//!   runtime      ─► shim started, namespaces made, the process waits
//!   network      ─► veths into /proc/<pid>/ns/net, DNS names, ports published,
//!                   /etc/hosts and /etc/resolv.conf written in place
//! start(name)    ─► the process runs (an exited container is made again
//!                   from its recorded configuration first: a restart)
//! ```
//!
//! What a restart needs beyond the runtime's own `config.json` (endpoints,
//! ports, names, the health check) is kept beside it in the container's
//! directory as `host.json`, so any stack process (the watcher, a later
//! `up`) can restart a container without the stack file.
//!
//! Health: a container with a health check is probed by the watcher's
//! upkeep when a probe is due ([`crate::watch::health`]: interval, start
//! period and start interval, retries), in the background, and whenever
//! its status is asked for (`status`, which the executor's `wait` calls
//! for health gates); each result is kept in `health.json`, and `list`
//! reports the last one.

mod hooks;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::network::{self, AttachRequest, NetworkError, NetworkMode as NetMode};
use crate::planner::backend::{
    BackendError, Clock, ContainerSpec, ImageInfo, Images, LiveContainer, LiveObject, NetworkSpec,
    Networks, Runtime, Status, SystemClock, VolumeSpec, Volumes,
};
use crate::planner::desired::labels;
use crate::runtime::container::{
    self, BindMount, BuildContext, ContainerError, ImageConfig as RunImageConfig, NetworkMode,
};
use crate::runtime::image::{ImageRef, ImageStore, PullOptions};
use crate::runtime::shim::exec::ExecRequest;
use crate::spec::env::Environment;
use crate::spec::model::{FileObject, MountType, Port, ServiceNetwork};
use crate::spec::{Service, Stack};
use crate::volumes::{self, VolumeStore};
use crate::watch::health::{self, Health, Verdict};

/// Why the host could not do something (turned into the planner's
/// [`BackendError`] with the words kept).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
    #[error(transparent)]
    Image(#[from] crate::runtime::image::ImageError),
    #[error("service `{service}`: {why}")]
    Service { service: String, why: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a background task of stack failed: {0}")]
    Task(String),
}

impl From<HostError> for BackendError {
    fn from(e: HostError) -> BackendError {
        BackendError::failed(e.to_string())
    }
}

/// How a [`LinuxHost`] is opened.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Serve the project's DNS (the watcher does; `up`, `down`, `plan` don't).
    pub serve_dns: bool,
    /// Registries to speak plain HTTP to.
    pub insecure_registries: Vec<String>,
    /// The `stack` binary shims run as (default: this executable).
    pub shim_binary: Option<PathBuf>,
}

/// What the stack file gives beyond the services: secrets, configs and the
/// environment they may come from.
#[derive(Debug, Clone, Default)]
struct StackContext {
    project_dir: PathBuf,
    secrets: BTreeMap<String, FileObject>,
    configs: BTreeMap<String, FileObject>,
    env: Environment,
    external_networks: Vec<String>,
}

/// One endpoint to (re)attach.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Endpoint {
    network: String,
    ifname: String,
    names: Vec<String>,
    ipv4_address: Option<std::net::Ipv4Addr>,
    mac_address: Option<String>,
    dns: Vec<IpAddr>,
}

/// A published port, as the stack file gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PortSpec {
    host_ip: Option<String>,
    published: Option<String>,
    target: u16,
    protocol: String,
}

impl PortSpec {
    fn port(&self) -> Port {
        Port {
            name: None,
            mode: "ingress".into(),
            host_ip: self.host_ip.clone(),
            target: self.target,
            published: self.published.clone(),
            protocol: self.protocol.clone(),
            app_protocol: None,
        }
    }
}

/// A container's health check, ready to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    args: Vec<String>,
    timeout_ms: u64,
    #[serde(default)]
    interval_ms: u64,
    retries: u64,
    #[serde(default)]
    start_period_ms: u64,
    #[serde(default)]
    start_interval_ms: u64,
}

impl Probe {
    fn timing(&self) -> health::Timing {
        health::Timing {
            interval_ms: self.interval_ms,
            timeout_ms: self.timeout_ms,
            retries: self.retries,
            start_period_ms: self.start_period_ms,
            start_interval_ms: self.start_interval_ms,
        }
    }
}

/// `host.json`: what restarting a container needs beyond `config.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HostRecord {
    service: String,
    image_digest: Option<String>,
    /// Attached in this order (`eth0`, `eth1`, ...).
    endpoints: Vec<Endpoint>,
    ports: Vec<PortSpec>,
    hostname: String,
    domainname: Option<String>,
    extra_hosts: BTreeMap<String, Vec<String>>,
    dns: Vec<IpAddr>,
    dns_search: Vec<String>,
    dns_opt: Vec<String>,
    probe: Option<Probe>,
    /// Secrets and configs written for it (removed with it).
    files_dir: Option<PathBuf>,
    /// Anonymous volumes (removed with it).
    anonymous: Vec<String>,
    /// The container whose network namespace it joined
    /// (`network_mode: service:x` / `container:x`): its /etc/hosts and
    /// /etc/resolv.conf are that container's.
    #[serde(default)]
    network_of: Option<String>,
    /// `network_mode: host`: the host's /etc/hosts and /etc/resolv.conf.
    #[serde(default)]
    host_network: bool,
    /// Its volumes and bind mounts, which `volumes_from` of another
    /// container repeats.
    #[serde(default)]
    volume_mounts: Vec<BindMount>,
    /// The containers whose pid and IPC namespaces it joined (`pid:`,
    /// `ipc:` `service:x` / `container:x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipc_of: Option<String>,
    /// Lifecycle hooks ([`hooks`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    post_start: Vec<hooks::Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pre_stop: Vec<hooks::Hook>,
}

/// The planner's host on this machine, for one project.
pub struct LinuxHost {
    root: PathBuf,
    project: String,
    runtime: container::Runtime,
    networks: network::Networks,
    volumes: VolumeStore,
    stack: StackContext,
    options: HostOptions,
    /// Containers whose probe runs now (the watcher's upkeep starts each
    /// probe in the background and not twice).
    probing: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl std::fmt::Debug for LinuxHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxHost")
            .field("root", &self.root)
            .field("project", &self.project)
            .finish()
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HostError + 'a {
    move |source| HostError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Runs blocking work (the runtime's calls, file copies) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HostError> + Send + 'static,
) -> Result<T, HostError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HostError::Task(e.to_string()))?
}

impl LinuxHost {
    /// Opens the project's host side under `root`. `stack` (with the
    /// environment it was loaded with) supplies secrets and configs; without
    /// it (`down -p NAME`) containers can still be observed, stopped,
    /// removed and restarted. Needs a tokio runtime.
    pub async fn open(
        root: &Path,
        project: &str,
        stack: Option<(&Stack, &Environment)>,
        options: HostOptions,
    ) -> Result<LinuxHost, HostError> {
        let net_options = network::Options {
            serve_dns: options.serve_dns,
            // The default, /run/stack: subnets are the whole host's, so
            // every state root on it must choose them under one lock.
            ..network::Options::default()
        };
        let networks = network::Networks::open(project, root, net_options).await?;
        let mut runtime = container::Runtime::new(root)?;
        if let Some(shim) = &options.shim_binary {
            runtime = runtime.with_shim_binary(shim);
        }
        let stack = match stack {
            Some((s, env)) => StackContext {
                project_dir: s.project_dir.clone(),
                secrets: s.secrets.clone(),
                configs: s.configs.clone(),
                env: env.clone(),
                external_networks: s
                    .networks
                    .values()
                    .filter(|n| n.external)
                    .map(|n| n.name.clone())
                    .collect(),
            },
            None => StackContext::default(),
        };
        Ok(LinuxHost {
            root: root.to_path_buf(),
            project: project.to_string(),
            runtime,
            networks,
            volumes: VolumeStore::new(root),
            stack,
            options,
            probing: Default::default(),
        })
    }

    /// The project's networks (for `ps`: published ports).
    pub fn networks(&self) -> &network::Networks {
        &self.networks
    }

    /// The container runtime.
    pub fn runtime(&self) -> &container::Runtime {
        &self.runtime
    }

    /// Stops serving DNS and ports; everything else stays.
    pub async fn close(self) {
        self.networks.close().await;
    }

    /// Serves the published ports of every running container again (a
    /// watcher that starts holds the userland proxies for 127.0.0.1).
    pub async fn republish(&self) -> Result<(), HostError> {
        for c in Runtime::list(self, &self.project)
            .await
            .map_err(|e| HostError::Task(e.to_string()))?
        {
            if !c.status.is_running() {
                continue;
            }
            let Ok(rec) = self.host_record(&c.name) else {
                continue;
            };
            if !rec.ports.is_empty() && !rec.endpoints.is_empty() {
                // The host ports it has (a random one stays what it was).
                let bound = self.networks.ports(&c.name).await;
                let ports: Vec<Port> = if bound.is_empty() {
                    rec.ports.iter().map(PortSpec::port).collect()
                } else {
                    bound
                        .iter()
                        .map(|p| Port {
                            name: None,
                            mode: "ingress".into(),
                            host_ip: p.host_ip.map(|ip| ip.to_string()),
                            target: p.target,
                            published: Some(p.host_port.to_string()),
                            protocol: p.protocol.clone(),
                            app_protocol: None,
                        })
                        .collect()
                };
                self.networks.publish(&c.name, &ports).await?;
            }
        }
        Ok(())
    }

    /// The watcher's upkeep after each round: health probes that are due
    /// start in the background (`wake` is notified when one changes a
    /// container's health, so the watcher acts on it at once), and
    /// /etc/hosts files are brought up to date.
    pub async fn upkeep(&self, wake: Option<std::sync::Arc<tokio::sync::Notify>>) {
        let runtime = self.runtime.clone();
        let project = self.project.clone();
        let due = blocking(move || {
            let mut due = Vec::new();
            let now = container::state::now_ms();
            for id in runtime.list()? {
                let ours = runtime.config(&id).is_ok_and(|c| {
                    c.labels.get(labels::PROJECT).map(String::as_str) == Some(project.as_str())
                });
                let Some(probe) = read_host_record(&runtime, &id).ok().and_then(|r| r.probe) else {
                    continue;
                };
                let Ok(state) = runtime.state(&id) else {
                    continue;
                };
                if !ours || state.status != container::Status::Running {
                    continue;
                }
                let started = state.started_at.unwrap_or(0);
                if probe
                    .timing()
                    .due(&read_health(&runtime, &id), started, now)
                {
                    due.push(id);
                }
            }
            Ok(due)
        })
        .await
        .unwrap_or_default();
        for id in due {
            {
                // A plain set: a poisoned lock's data is still whole.
                let mut probing = self.probing.lock().unwrap_or_else(|e| e.into_inner());
                if !probing.insert(id.clone()) {
                    continue;
                }
            }
            let runtime = self.runtime.clone();
            let probing = self.probing.clone();
            let wake = wake.clone();
            tokio::task::spawn_blocking(move || {
                let before = status_of(&runtime, &id, false, None).ok().flatten();
                let after = status_of(&runtime, &id, true, None).ok().flatten();
                probing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                if before != after
                    && let Some(w) = wake
                {
                    w.notify_one();
                }
            });
        }
        self.refresh_hosts().await;
    }

    /// Rewrites each running container's /etc/hosts in place when its peers
    /// changed, so names resolve through the file even while no watcher
    /// serves DNS.
    pub async fn refresh_hosts(&self) {
        let Ok(ids) = self.runtime.list() else {
            return;
        };
        // Containers sharing another's namespace copy its files after
        // every file of this round is written.
        let mut sharing = Vec::new();
        for id in ids {
            let Ok(rec) = self.host_record(&id) else {
                continue;
            };
            if rec.endpoints.is_empty() {
                sharing.push((id, rec));
                continue;
            }
            let text = self
                .networks
                .hosts_file(
                    &id,
                    &rec.hostname,
                    rec.domainname.as_deref(),
                    &rec.extra_hosts,
                )
                .await;
            let path = self.runtime.dir(&id).join("hosts");
            if std::fs::read_to_string(&path).is_ok_and(|old| old != text) {
                // In place (same inode): the file is bind-mounted into the container.
                let _ = std::fs::write(&path, text);
            }
        }
        for (id, rec) in sharing {
            let _ = self.share_name_files(&id, &rec);
        }
    }

    /// The host names of the networks whose link to `id` is broken.
    async fn broken_networks(&self, id: &str) -> Vec<String> {
        let broken = self.networks.broken_endpoints(id).await;
        if broken.is_empty() {
            return broken;
        }
        let known = self.networks.networks().await;
        broken
            .iter()
            .filter_map(|k| known.iter().find(|n| &n.key == k).map(|n| n.name.clone()))
            .collect()
    }

    fn host_record(&self, id: &str) -> Result<HostRecord, HostError> {
        read_host_record(&self.runtime, id)
    }

    fn save_host_record(&self, id: &str, rec: &HostRecord) -> Result<(), HostError> {
        let path = self.runtime.dir(id).join("host.json");
        // Plain data with string keys: serializing cannot fail.
        let bytes = serde_json::to_vec_pretty(rec).unwrap_or_default();
        container::state::replace_file(&path, &bytes)?;
        Ok(())
    }

    fn files_dir(&self, id: &str) -> PathBuf {
        self.root.join("run").join("files").join(id)
    }

    /// The named volumes, binds, tmpfs and secret/config files of `service`.
    fn mounts(
        &self,
        spec: &ContainerSpec,
        service: &mut Service,
        layers: &[PathBuf],
        rec: &mut HostRecord,
    ) -> Result<Vec<BindMount>, HostError> {
        let mut binds = Vec::new();
        let fail = |why: String| HostError::Service {
            service: spec.service.clone(),
            why,
        };
        for (i, m) in service.volumes.clone().into_iter().enumerate() {
            match m.kind {
                MountType::Bind => {
                    let source = m
                        .source
                        .clone()
                        .ok_or_else(|| fail(format!("bind mount on {} has no source", m.target)))?;
                    let create = m
                        .bind
                        .as_ref()
                        .and_then(|b| b.create_host_path)
                        .unwrap_or(true);
                    volumes::prepare_bind_source(Path::new(&source), create)?;
                    binds.push(BindMount {
                        source: PathBuf::from(source),
                        target: m.target.clone(),
                        read_only: m.read_only,
                        propagation: m.bind.as_ref().and_then(|b| b.propagation.clone()),
                    });
                }
                MountType::Volume => {
                    let (name, anonymous) = match &m.source {
                        Some(key) => match spec.volumes.get(key) {
                            Some(name) => (name.clone(), false),
                            None => (key.clone(), false),
                        },
                        None => (format!("{}-anon-{i}", spec.name), true),
                    };
                    let mut info = match self.volumes.get(&name)? {
                        Some(info) => info,
                        None if anonymous => {
                            rec.anonymous.push(name.clone());
                            self.volumes.create(&volumes::VolumeSpec {
                                name: name.clone(),
                                anonymous: true,
                                ..volumes::VolumeSpec::default()
                            })?
                        }
                        None => {
                            return Err(fail(format!(
                                "volume `{name}` does not exist; declare it under the top-level `volumes:` key"
                            )));
                        }
                    };
                    let data = self.volumes.activate(&info)?;
                    let nocopy = m.volume.as_ref().is_some_and(|v| v.nocopy);
                    if !nocopy && !info.populated {
                        // Copy-up: the image's content at the mount path, from
                        // the topmost layer that has it.
                        let rel = m.target.trim_start_matches('/');
                        let from = layers
                            .iter()
                            .rev()
                            .map(|l| l.join(rel))
                            .find(|p| p.is_dir())
                            .unwrap_or_else(|| PathBuf::from("/nonexistent"));
                        self.volumes.populate(&mut info, &from)?;
                    }
                    let source = match m.volume.as_ref().and_then(|v| v.subpath.as_deref()) {
                        Some(sub) => data.join(sub),
                        None => data,
                    };
                    binds.push(BindMount {
                        source,
                        target: m.target.clone(),
                        read_only: m.read_only,
                        propagation: None,
                    });
                }
                MountType::Tmpfs => {
                    let mut opts = Vec::new();
                    if let Some(t) = &m.tmpfs {
                        if let Some(size) = t.size {
                            opts.push(format!("size={}", size.0));
                        }
                        if let Some(mode) = t.mode {
                            opts.push(format!("mode={:o}", mode.0));
                        }
                    }
                    service.tmpfs.insert(m.target.clone(), opts.join(","));
                }
                MountType::Image => {
                    return Err(fail(format!(
                        "image mounts (on {}) are not supported yet; use a volume",
                        m.target
                    )));
                }
            }
        }
        rec.volume_mounts = binds.clone();
        binds.extend(self.volumes_from(&spec.service, &service.volumes_from)?);
        // Secrets and configs: files under <root>/run/files/<container>/,
        // bind-mounted read-only.
        let refs = service
            .secrets
            .iter()
            .map(|r| (r, true))
            .chain(service.configs.iter().map(|r| (r, false)));
        for (r, secret) in refs {
            let objects = if secret {
                &self.stack.secrets
            } else {
                &self.stack.configs
            };
            let object = objects.get(&r.source).ok_or_else(|| {
                fail(format!(
                    "{} `{}` is not defined at the top level (or stack was run without the stack file)",
                    if secret { "secret" } else { "config" },
                    r.source
                ))
            })?;
            let dir = self.files_dir(&spec.name);
            let sub = dir.join(if secret { "secrets" } else { "configs" });
            std::fs::create_dir_all(&sub).map_err(io("create", &sub))?;
            rec.files_dir = Some(dir);
            let file = sub.join(&r.source);
            let id = |s: &Option<String>| s.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
            let mode = r.mode.map(|m| m.0).unwrap_or(0o444);
            let object = resolve_file(object, &self.stack.project_dir);
            volumes::write_file_object(
                &object,
                &self.stack.env,
                &file,
                id(&r.uid),
                id(&r.gid),
                mode,
            )?;
            let target = match (&r.target, secret) {
                (Some(t), _) if t.starts_with('/') => t.clone(),
                (Some(t), true) => format!("/run/secrets/{t}"),
                (Some(t), false) => format!("/{t}"),
                (None, true) => format!("/run/secrets/{}", r.source),
                (None, false) => format!("/{}", r.source),
            };
            binds.push(BindMount {
                source: file,
                target,
                read_only: true,
                propagation: None,
            });
        }
        Ok(binds)
    }

    /// The volumes and bind mounts `volumes_from` names: `service`,
    /// `container:name`, each optionally `:ro` or `:rw` (else as the
    /// source mounts them).
    fn volumes_from(&self, service: &str, from: &[String]) -> Result<Vec<BindMount>, HostError> {
        let mut binds = Vec::new();
        for entry in from {
            let (source, mode) = match entry.rsplit_once(':') {
                Some((s, m)) if m == "ro" || m == "rw" => (s, Some(m == "ro")),
                _ => (entry.as_str(), None),
            };
            let id = match source.strip_prefix("container:") {
                Some(name) => name.to_string(),
                None => self.container_of(source)?,
            };
            let rec = self.host_record(&id).map_err(|_| HostError::Service {
                service: service.to_string(),
                why: format!(
                    "volumes_from `{entry}`: container `{id}` does not exist; create it first (list containers with `stack ps -a`)"
                ),
            })?;
            for mut m in rec.volume_mounts {
                if let Some(read_only) = mode {
                    m.read_only = read_only;
                }
                binds.push(m);
            }
        }
        Ok(binds)
    }

    /// The container of this project's `service` (its first replica):
    /// found by its labels, as `container_name:` may have renamed it.
    fn container_of(&self, service: &str) -> Result<String, HostError> {
        let mut found: Vec<(u32, String)> = Vec::new();
        for id in self.runtime.list()? {
            let Ok(config) = self.runtime.config(&id) else {
                continue;
            };
            let label = |k: &str| config.labels.get(k).map(String::as_str);
            if label(labels::PROJECT) == Some(self.project.as_str())
                && label(labels::SERVICE) == Some(service)
            {
                let replica = label(labels::REPLICA)
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(u32::MAX);
                found.push((replica, id));
            }
        }
        found.sort();
        found
            .into_iter()
            .next()
            .map(|(_, id)| id)
            .ok_or_else(|| HostError::Service {
                service: service.to_string(),
                why: format!(
                    "service `{service}` has no container yet; it must be created before the services that use its network or volumes"
                ),
            })
    }

    /// Attaches `id` (whose process is `pid`) to its networks, publishes its
    /// ports and writes its /etc/hosts and resolv.conf.
    async fn wire(&self, id: &str, pid: i32, rec: &HostRecord) -> Result<(), HostError> {
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        for e in &rec.endpoints {
            let req = AttachRequest {
                container: id.to_string(),
                network: e.network.clone(),
                netns: netns.clone(),
                ifname: e.ifname.clone(),
                ipv4_address: e.ipv4_address,
                mac_address: e.mac_address.clone(),
                names: e.names.clone(),
                dns: e.dns.clone(),
            };
            self.networks.attach(&req).await?;
        }
        if rec.endpoints.is_empty() {
            return self.share_name_files(id, rec);
        }
        if !rec.ports.is_empty() {
            let ports: Vec<Port> = rec.ports.iter().map(PortSpec::port).collect();
            self.networks.publish(id, &ports).await?;
        }
        let dir = self.runtime.dir(id);
        let hosts = self
            .networks
            .hosts_file(
                id,
                &rec.hostname,
                rec.domainname.as_deref(),
                &rec.extra_hosts,
            )
            .await;
        let settings = network::hosts::DnsSettings {
            dns: rec.dns.clone(),
            dns_search: rec.dns_search.clone(),
            dns_opt: rec.dns_opt.clone(),
        };
        let resolv = self.networks.resolv_conf(id, &settings).await;
        for (name, text) in [("hosts", hosts), ("resolv.conf", resolv)] {
            let path = dir.join(name);
            // In place: the file is already bind-mounted into the container.
            std::fs::write(&path, text).map_err(io("write", &path))?;
        }
        Ok(())
    }

    /// A container without networks of its own takes the name files of the
    /// namespace it lives in: the joined container's, or the host's (as
    /// docker does); `network_mode: none` keeps loopback only.
    fn share_name_files(&self, id: &str, rec: &HostRecord) -> Result<(), HostError> {
        let from = match (&rec.network_of, rec.host_network) {
            (Some(other), _) => self.runtime.dir(other),
            (None, true) => PathBuf::from("/etc"),
            (None, false) => return Ok(()),
        };
        let dir = self.runtime.dir(id);
        for name in ["hosts", "resolv.conf"] {
            let Ok(text) = std::fs::read(from.join(name)) else {
                continue;
            };
            let path = dir.join(name);
            if std::fs::read(&path).is_ok_and(|old| old == text) {
                continue;
            }
            // In place: the file is already bind-mounted into the container.
            std::fs::write(&path, text).map_err(io("write", &path))?;
        }
        Ok(())
    }

    /// Takes `id` off its networks (names, ports, veths).
    async fn unwire(&self, id: &str) -> Result<(), HostError> {
        self.networks.unpublish(id).await?;
        for e in self.networks.endpoints(id).await {
            self.networks.detach(id, &e.network).await?;
        }
        Ok(())
    }

    async fn create_inner(&self, spec: &ContainerSpec) -> Result<String, HostError> {
        let id = spec.name.clone();
        let mut service = (*spec.definition).clone();
        let reference = spec.image_digest.clone().unwrap_or(spec.image.clone());
        let root = self.root.clone();
        let image = blocking(move || Ok(ImageStore::open(&root)?.get(&reference)?)).await?;
        crate::timing::mark(|| format!("{id}: image read"));
        let mut rec = HostRecord {
            service: spec.service.clone(),
            image_digest: Some(image.id.clone()),
            hostname: service
                .hostname
                .clone()
                .unwrap_or_else(|| default_hostname(&id)),
            domainname: service.domainname.clone(),
            extra_hosts: service.extra_hosts.clone(),
            ..HostRecord::default()
        };
        // The runtime's own default is shorter; replicas need distinct names.
        service.hostname = Some(rec.hostname.clone());
        let dns = network::dns_settings(&service)?;
        rec.dns = dns.dns;
        rec.dns_search = dns.dns_search;
        rec.dns_opt = dns.dns_opt;
        rec.probe = probe(&service, &image.config);
        for (key, slot) in [
            ("post_start", &mut rec.post_start),
            ("pre_stop", &mut rec.pre_stop),
        ] {
            let (list, warnings) =
                hooks::parse(&service, key).map_err(|why| HostError::Service {
                    service: spec.service.clone(),
                    why,
                })?;
            for w in warnings {
                eprintln!("warning: service `{}`: {w}", spec.service);
            }
            *slot = list;
        }
        let binds = self.mounts(spec, &mut service, &image.layers, &mut rec)?;

        let mode = NetMode::parse(service.network_mode.as_deref())?;
        let network = match &mode {
            NetMode::Bridge => NetworkMode::New,
            NetMode::Host => {
                rec.host_network = true;
                NetworkMode::Host
            }
            NetMode::None => NetworkMode::None,
            NetMode::Service(s) => {
                let other = self.container_of(s)?;
                let netns = self.netns_of(&other)?;
                rec.network_of = Some(other);
                NetworkMode::Join(netns)
            }
            NetMode::Container(c) => {
                let netns = self.netns_of(c)?;
                rec.network_of = Some(c.clone());
                NetworkMode::Join(netns)
            }
        };
        if mode == NetMode::Bridge {
            // Networks by host name → key; `eth0`, `eth1`, ... by priority.
            let known = self.networks.networks().await;
            let by_key: BTreeMap<String, ServiceNetwork> = spec
                .networks
                .iter()
                .filter_map(|(name, att)| {
                    let info = known.iter().find(|n| &n.name == name)?;
                    Some((info.key.clone(), att.clone()))
                })
                .collect();
            for (key, ifname) in network::interface_order(&by_key) {
                let req = AttachRequest::for_service(&service, &key, &id, PathBuf::new(), &ifname)?;
                rec.endpoints.push(Endpoint {
                    network: key,
                    ifname,
                    names: req.names,
                    ipv4_address: req.ipv4_address,
                    mac_address: req.mac_address,
                    dns: req.dns,
                });
            }
            rec.ports = service
                .ports
                .iter()
                .map(|p| PortSpec {
                    host_ip: p.host_ip.clone(),
                    published: p.published.clone(),
                    target: p.target,
                    protocol: p.protocol.clone(),
                })
                .collect();
            // Reserved by `prepare` already, normally: kept, not bound
            // again (closing a socket while another thread forks a shim
            // can leave it open in the child for a moment).
            if !rec.ports.is_empty() && !self.networks.is_reserved(&id).await {
                // A taken host port fails here, before this container exists.
                self.networks.reserve_ports(&id, &service.ports).await?;
            }
        }

        // `pid:`/`ipc:` `service:x` or `container:x`: that container's.
        let mut joins = container::build::Joins::default();
        for (kind, slot, of) in [
            ("pid", &mut joins.pid, &mut rec.pid_of),
            ("ipc", &mut joins.ipc, &mut rec.ipc_of),
        ] {
            let Some(value) = service.extra.get(kind).and_then(|v| v.as_str()) else {
                continue;
            };
            let other = match (
                value.strip_prefix("service:"),
                value.strip_prefix("container:"),
            ) {
                (Some(s), _) => self.container_of(s)?,
                (_, Some(c)) => c.to_string(),
                _ => continue,
            };
            *slot = Some(self.first_pid(&other)?);
            *of = Some(other);
        }

        let image_config = RunImageConfig::from(&image.config);
        let ctx = BuildContext {
            id: id.clone(),
            project: self.project.clone(),
            layers: image.layers.clone(),
            network,
            hosts: "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into(),
            resolv_conf: String::new(),
            binds,
            project_dir: self.stack.project_dir.clone(),
            joins,
        };
        let mut config =
            container::build::container_config(&service, &image_config, &ctx, &self.root)?;
        // stack's labels, for observe; the service's own beside them.
        config.labels.extend(spec.labels.clone());
        if spec.labels.get(labels::AUTO_REMOVE).map(String::as_str) == Some("true") {
            // `run --rm -d`: removed when it exits, watcher or not.
            config.on_exit = [
                self.runtime.shim_binary().as_os_str(),
                "--root".as_ref(),
                self.root.as_os_str(),
                "-p".as_ref(),
                self.project.as_ref(),
                "auto-remove".as_ref(),
                id.as_ref(),
            ]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        }
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        let runtime = self.runtime.clone();
        let created = {
            let id = id.clone();
            blocking(move || Ok(runtime.create(&id, &config)?)).await?
        };
        crate::timing::mark(|| format!("{id}: created"));
        let result = async {
            self.save_host_record(&id, &rec)?;
            self.wire(&id, created.pid, &rec).await
        }
        .await;
        if let Err(e) = result {
            let _ = self.remove_inner(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Whether `id` is in the network namespace `other` runs in now; also
    /// when that cannot be told (`other` not running: its start comes
    /// first, and the next round compares again).
    fn shares_netns(&self, id: &str, other: &str) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let inode = |c: &str| {
            let path = self.netns_of(c).ok()?;
            std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
        };
        match (inode(id), inode(other)) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => true,
        }
    }

    /// The host pid of `id`'s first process, while it is created or running.
    fn first_pid(&self, id: &str) -> Result<i32, HostError> {
        let s = self.runtime.state(id)?;
        match s.pid {
            Some(pid)
                if matches!(
                    s.status,
                    container::Status::Running | container::Status::Created
                ) =>
            {
                Ok(pid)
            }
            _ => Err(ContainerError::NotRunning(id.to_string()).into()),
        }
    }

    fn netns_of(&self, id: &str) -> Result<PathBuf, HostError> {
        // A created container's process already lives in its namespace.
        let pid = self.first_pid(id)?;
        Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    /// Starts the container ([`Self::start_process`]), then, if it was
    /// not running already, runs its `post_start` hooks.
    async fn start_inner(&self, id: &str) -> Result<(), HostError> {
        let rec = self.host_record(id)?;
        if !self.start_process(id, &rec).await? || rec.post_start.is_empty() {
            return Ok(());
        }
        let runtime = self.runtime.clone();
        let owned = id.to_string();
        blocking(move || {
            hooks::run(&runtime, &owned, "post_start", &rec.post_start).map_err(|why| {
                HostError::Service {
                    service: rec.service.clone(),
                    why,
                }
            })
        })
        .await
    }

    /// Starts a created container, or makes an exited one again from its
    /// recorded configuration and starts that (a restart). `false`: it ran
    /// already.
    async fn start_process(&self, id: &str, rec: &HostRecord) -> Result<bool, HostError> {
        use oci_spec::runtime::LinuxNamespaceType as T;
        let state = self.runtime.state(id)?;
        match state.status {
            container::Status::Running | container::Status::Paused => return Ok(false),
            container::Status::Created => {
                let runtime = self.runtime.clone();
                let id = id.to_string();
                blocking(move || Ok(runtime.start(&id)?)).await?;
                return Ok(true);
            }
            _ => {}
        }
        let joined = [
            (T::Network, &rec.network_of, "net"),
            (T::Pid, &rec.pid_of, "pid"),
            (T::Ipc, &rec.ipc_of, "ipc"),
        ];
        if joined.iter().any(|(_, of, _)| of.is_some()) {
            // The joined containers may have been made again since: their
            // namespaces now, never a pid that may belong to someone else.
            let mut config = self.runtime.config(id)?;
            for (typ, of, kind) in joined {
                if let Some(other) = of {
                    let pid = self.first_pid(other)?;
                    let path = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
                    container::build::rejoin(&mut config, typ, path);
                }
            }
            self.runtime.replace_config(id, &config)?;
        }
        let runtime = self.runtime.clone();
        self.unwire(id).await?;
        crate::timing::mark(|| format!("{id}: unwired"));
        // Started again, not recreated: the container keeps its writable
        // layer and its log across restarts, as with Docker.
        let created = {
            let id = id.to_string();
            blocking(move || Ok(runtime.start_again(&id)?)).await?
        };
        crate::timing::mark(|| format!("{id}: created again"));
        let _ = std::fs::remove_file(self.runtime.dir(id).join("health.json"));
        self.wire(id, created.pid, rec).await?;
        crate::timing::mark(|| format!("{id}: wired"));
        let runtime = self.runtime.clone();
        let id = id.to_string();
        blocking(move || Ok(runtime.start(&id)?)).await?;
        Ok(true)
    }

    async fn remove_inner(&self, id: &str) -> Result<(), HostError> {
        let rec = self.host_record(id).ok();
        self.unwire(id).await?;
        let runtime = self.runtime.clone();
        let owned = id.to_string();
        blocking(move || match runtime.remove(&owned, true) {
            Ok(()) | Err(ContainerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        })
        .await?;
        let files = self.files_dir(id);
        if files.exists() {
            std::fs::remove_dir_all(&files).map_err(io("remove", &files))?;
        }
        for name in rec.map(|r| r.anonymous).unwrap_or_default() {
            self.volumes.remove(&name, &[])?;
        }
        Ok(())
    }
}

/// The status, health included: runs the probe once when the container
/// has one and is running.
fn status_of(
    runtime: &container::Runtime,
    id: &str,
    probe_now: bool,
    config: Option<&container::ContainerConfig>,
) -> Result<Option<Status>, HostError> {
    let state = match config.map_or_else(|| runtime.state(id), |c| runtime.state_with_config(id, c))
    {
        Ok(s) => s,
        Err(ContainerError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(match state.status {
        container::Status::Creating | container::Status::Created => Status::Created,
        container::Status::Running | container::Status::Paused => {
            let Some(probe) = read_host_record(runtime, id).ok().and_then(|r| r.probe) else {
                return Ok(Some(Status::Running));
            };
            let timing = probe.timing();
            let mut health = read_health(runtime, id);
            // A frozen container cannot run its probe (the probe would
            // freeze too, and the watcher with it).
            if probe_now && state.status != container::Status::Paused {
                let ok = run_probe(runtime, id, &probe);
                // Restarted while the probe ran: its result is about a
                // container that is gone, and must not count for the new one.
                let now = runtime.state(id).ok();
                if now.is_none_or(|s| s.started_at != state.started_at) {
                    return Ok(Some(Status::Starting));
                }
                let started = state.started_at.unwrap_or(0);
                health = timing.record(&health, ok, started, container::state::now_ms());
                let bytes = serde_json::to_vec(&health).unwrap_or_default();
                let _ =
                    container::state::replace_file(&runtime.dir(id).join("health.json"), &bytes);
            }
            match timing.verdict(&health) {
                Verdict::Unhealthy => Status::Unhealthy,
                Verdict::Healthy => Status::Healthy,
                Verdict::Starting => Status::Starting,
            }
        }
        container::Status::Exited => Status::Exited {
            code: state.exit.map(|e| i64::from(e.code)).unwrap_or(-1),
        },
        container::Status::Dead => Status::Exited { code: -1 },
    }))
}

/// One run of the health check, killed after its timeout.
fn run_probe(runtime: &container::Runtime, id: &str, probe: &Probe) -> bool {
    let req = ExecRequest {
        args: probe.args.clone(),
        env: Vec::new(),
        user: None,
        workdir: None,
        tty: false,
    };
    let Ok(mut cmd) = runtime.exec_command(id, &req) else {
        return false;
    };
    let Ok(mut child) = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = std::time::Instant::now() + Duration::from_millis(probe.timeout_ms);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The container's health as its probes left it (`health.json`).
fn read_health(runtime: &container::Runtime, id: &str) -> Health {
    std::fs::read(runtime.dir(id).join("health.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn read_host_record(runtime: &container::Runtime, id: &str) -> Result<HostRecord, HostError> {
    let path = runtime.dir(id).join("host.json");
    let text = std::fs::read(&path).map_err(io("read", &path))?;
    serde_json::from_slice(&text).map_err(|e| HostError::Task(e.to_string()))
}

/// A container's hostname when the service gives none: its name, which
/// (unlike docker's 12 characters of a random id) is unique per replica,
/// cut to the 63 bytes a host name may have.
fn default_hostname(id: &str) -> String {
    id.chars().take(63).collect()
}

/// A file object whose relative `file:` resolves against the project.
fn resolve_file(object: &FileObject, project_dir: &Path) -> FileObject {
    let mut o = object.clone();
    if let Some(f) = &o.file
        && Path::new(f).is_relative()
    {
        o.file = Some(project_dir.join(f));
    }
    o
}

/// The service's health check (else the image's), ready to run.
fn probe(service: &Service, image: &crate::runtime::image::ImageConfig) -> Option<Probe> {
    let nanos = |n: u64| (n > 0).then(|| Duration::from_nanos(n));
    let own = service.healthcheck.as_ref();
    if own.is_some_and(|h| h.disable) {
        return None;
    }
    let from_image = image.healthcheck.as_ref();
    // The service's fields win one by one over the image's (as in docker).
    let test = match own.filter(|h| !h.test.is_empty()) {
        Some(h) => h.test.clone(),
        None => from_image?.test.clone(),
    };
    let pick = |own: Option<Duration>, image: Option<u64>| own.or_else(|| image.and_then(nanos));
    let timeout = pick(
        own.and_then(|h| h.timeout.map(|d| d.0)),
        from_image.map(|h| h.timeout),
    );
    let interval = pick(
        own.and_then(|h| h.interval.map(|d| d.0)),
        from_image.map(|h| h.interval),
    );
    let start_period = pick(
        own.and_then(|h| h.start_period.map(|d| d.0)),
        from_image.map(|h| h.start_period),
    );
    let start_interval = pick(
        own.and_then(|h| h.start_interval.map(|d| d.0)),
        from_image.map(|h| h.start_interval),
    );
    let retries = own
        .and_then(|h| h.retries)
        .or_else(|| from_image.map(|h| h.retries).filter(|r| *r > 0));
    let args = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
        Some("NONE") | None => return None,
        Some(_) => vec!["/bin/sh".into(), "-c".into(), test.join(" ")],
    };
    let ms = |d: Option<Duration>, default: u64| d.map_or(default, |d| d.as_millis() as u64);
    Some(Probe {
        args,
        timeout_ms: ms(timeout, health::DEFAULT_TIMEOUT_MS),
        interval_ms: ms(interval, health::DEFAULT_INTERVAL_MS),
        retries: retries.unwrap_or(health::DEFAULT_RETRIES),
        start_period_ms: ms(start_period, 0),
        start_interval_ms: ms(start_interval, 0),
    })
}

impl Images for LinuxHost {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        // Observing must not create the store (`plan` on a fresh root).
        if !self.root.join("images").exists() {
            return Ok(None);
        }
        let root = self.root.clone();
        let reference = reference.to_string();
        let found = blocking(move || Ok(ImageStore::open(&root)?.resolve(&reference)?)).await?;
        Ok(found.map(|i| ImageInfo {
            reference: i.tags.first().cloned().unwrap_or_default(),
            digest: Some(i.id),
            pulled_at: i.pulled_at,
        }))
    }

    async fn pull(&self, reference: &str) -> Result<ImageInfo, BackendError> {
        let store = ImageStore::open(&self.root).map_err(HostError::from)?;
        let parsed = ImageRef::parse(reference).map_err(HostError::from)?;
        let options = PullOptions {
            insecure_registries: self.options.insecure_registries.clone(),
            ..PullOptions::default()
        };
        // The pull's future is not `Send` for every lifetime the executor
        // needs: it runs on a thread of its own with a runtime of its own.
        let image = blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| HostError::Task(e.to_string()))?;
            Ok(rt.block_on(store.pull(&parsed, &options, &|_| {}))?)
        })
        .await?;
        Ok(ImageInfo {
            reference: reference.to_string(),
            digest: Some(image.id),
            pulled_at: image.pulled_at,
        })
    }
}

impl Networks for LinuxHost {
    async fn inspect_network(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        if self.stack.external_networks.iter().any(|n| n == name) {
            return Ok(Some(LiveObject {
                name: name.to_string(),
                labels: BTreeMap::new(),
            }));
        }
        let Some(n) = self
            .networks
            .networks()
            .await
            .into_iter()
            .find(|n| n.name == name)
        else {
            return Ok(None);
        };
        // A recorded network whose bridge was removed is missing: the plan
        // creates it again (drift).
        if !self.networks.bridge_present(&n.key).await {
            return Ok(None);
        }
        Ok(Some(LiveObject {
            name: n.name,
            labels: BTreeMap::new(),
        }))
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), BackendError> {
        let mut definition = spec.definition.clone();
        definition.labels.extend(spec.labels.clone());
        self.networks
            .create_network(&spec.key, &definition)
            .await
            .map_err(HostError::from)?;
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<(), BackendError> {
        let key = self
            .networks
            .networks()
            .await
            .into_iter()
            .find(|n| n.name == name)
            .map(|n| n.key);
        if let Some(key) = key {
            self.networks
                .remove_network(&key)
                .await
                .map_err(HostError::from)?;
        }
        Ok(())
    }

    async fn connect(
        &self,
        network: &str,
        container: &str,
        attachment: &ServiceNetwork,
    ) -> Result<(), BackendError> {
        let mut rec = self.host_record(container)?;
        let key = self
            .networks
            .networks()
            .await
            .into_iter()
            .find(|n| n.name == network)
            .map(|n| n.key)
            .ok_or_else(|| BackendError::NotFound {
                kind: "network",
                name: network.to_string(),
            })?;
        if !rec.endpoints.iter().any(|e| e.network == key) {
            let mut names = vec![rec.service.clone(), container.to_string()];
            names.extend(attachment.aliases.iter().cloned());
            rec.endpoints.push(Endpoint {
                network: key,
                ifname: format!("eth{}", rec.endpoints.len()),
                names,
                ipv4_address: attachment
                    .ipv4_address
                    .as_deref()
                    .and_then(|a| a.parse().ok()),
                mac_address: attachment.mac_address.clone(),
                dns: rec.dns.clone(),
            });
            self.save_host_record(container, &rec)?;
        }
        // A running container is attached now; a stopped one on its start.
        if let Ok(s) = self.runtime.state(container)
            && let Some(pid) = s.pid.filter(|_| s.status == container::Status::Running)
        {
            self.wire(container, pid, &rec).await?;
        }
        Ok(())
    }

    async fn disconnect(&self, network: &str, container: &str) -> Result<(), BackendError> {
        let Some(key) = self
            .networks
            .networks()
            .await
            .into_iter()
            .find(|n| n.name == network)
            .map(|n| n.key)
        else {
            return Ok(());
        };
        self.networks
            .detach(container, &key)
            .await
            .map_err(HostError::from)?;
        if let Ok(mut rec) = self.host_record(container) {
            rec.endpoints.retain(|e| e.network != key);
            self.save_host_record(container, &rec)?;
        }
        Ok(())
    }
}

impl Volumes for LinuxHost {
    async fn inspect_volume(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        // External volumes too: one that does not exist is the planner's
        // clear error, not a failed mount later.
        Ok(self
            .volumes
            .get(name)
            .map_err(HostError::from)?
            .map(|v| LiveObject {
                name: v.name,
                labels: v.labels,
            }))
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), BackendError> {
        let mut labels = spec.definition.labels.clone();
        labels.extend(spec.labels.clone());
        self.volumes
            .create(&volumes::VolumeSpec {
                name: spec.name.clone(),
                driver: spec.definition.driver.clone(),
                driver_opts: spec.definition.driver_opts.clone(),
                labels,
                anonymous: false,
            })
            .map_err(HostError::from)?;
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), BackendError> {
        match self.volumes.remove(name, &[]) {
            Ok(()) | Err(volumes::VolumeError::NotFound(_)) => Ok(()),
            Err(e) => Err(HostError::from(e).into()),
        }
    }
}

impl Runtime for LinuxHost {
    async fn prepare(&self, containers: &[&ContainerSpec]) -> Result<(), BackendError> {
        // Every host port the plan's new containers publish is bound now
        // and held (each container's `create` takes its own over), so a
        // taken one fails before anything starts. A container made again
        // is left out: its old self still holds its ports (that one is
        // checked when it is made).
        for spec in containers {
            let bridged = NetMode::parse(spec.definition.network_mode.as_deref())
                .is_ok_and(|m| m == NetMode::Bridge);
            let exists = self.runtime.state(&spec.name).is_ok();
            if bridged && !exists && !spec.definition.ports.is_empty() {
                self.networks
                    .reserve_ports(&spec.name, &spec.definition.ports)
                    .await
                    .map_err(|e| HostError::Service {
                        service: spec.service.clone(),
                        why: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    async fn list(&self, project: &str) -> Result<Vec<LiveContainer>, BackendError> {
        let ids = self.runtime.list().map_err(HostError::from)?;
        let mut out = Vec::new();
        for id in ids {
            let Ok(config) = self.runtime.config(&id) else {
                continue;
            };
            if config.labels.get(labels::PROJECT).map(String::as_str) != Some(project) {
                continue;
            }
            let Some(status) = status_of(&self.runtime, &id, false, Some(&config))? else {
                continue;
            };
            let rec = self.host_record(&id).ok();
            let stray_namespace = match rec.as_ref().and_then(|r| r.network_of.as_ref()) {
                Some(other) if status.is_running() && !self.shares_netns(&id, other) => {
                    Some(other.clone())
                }
                _ => None,
            };
            let image = rec.and_then(|r| r.image_digest);
            // Links only exist while it runs.
            let detached = if status.is_running() {
                self.broken_networks(&id).await
            } else {
                Vec::new()
            };
            // Only an exit can be an OOM kill: its record says so.
            let oom_killed = matches!(status, Status::Exited { .. })
                && self
                    .runtime
                    .state(&id)
                    .is_ok_and(|s| s.exit.is_some_and(|e| e.oom_killed));
            out.push(LiveContainer {
                name: id.clone(),
                id,
                status,
                labels: config.labels,
                image,
                detached,
                oom_killed,
                stray_namespace,
            });
        }
        Ok(out)
    }

    async fn status(&self, name: &str) -> Result<Option<Status>, BackendError> {
        // The probe blocks for a moment: off the async workers.
        let runtime = self.runtime.clone();
        let name = name.to_string();
        Ok(blocking(move || status_of(&runtime, &name, true, None)).await?)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, BackendError> {
        Ok(self.create_inner(spec).await?)
    }

    async fn start(&self, name: &str) -> Result<(), BackendError> {
        Ok(self.start_inner(name).await?)
    }

    async fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), BackendError> {
        let runtime = self.runtime.clone();
        let id = name.to_string();
        let pre_stop = self
            .host_record(name)
            .map(|r| r.pre_stop)
            .unwrap_or_default();
        blocking(move || {
            // Only a running container has anything to prepare for a stop.
            let running = runtime
                .state(&id)
                .is_ok_and(|s| s.status == container::Status::Running);
            if running
                && !pre_stop.is_empty()
                && let Err(why) = hooks::run(&runtime, &id, "pre_stop", &pre_stop)
            {
                eprintln!("warning: {id}: {why}; stopping it anyway");
            }
            // A frozen process cannot act on the stop signal, nor die of SIGKILL.
            if runtime
                .state(&id)
                .is_ok_and(|s| s.status == container::Status::Paused)
            {
                runtime.resume(&id)?;
            }
            match runtime.stop(&id, timeout) {
                Ok(_) | Err(ContainerError::NotRunning(_)) | Err(ContainerError::NotFound(_)) => {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        Ok(())
    }

    async fn remove_container(&self, name: &str) -> Result<(), BackendError> {
        Ok(self.remove_inner(name).await?)
    }
}

impl Clock for LinuxHost {
    fn now(&self) -> Duration {
        SystemClock.now()
    }

    async fn sleep(&self, duration: Duration) {
        SystemClock.sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::Healthcheck;

    #[test]
    fn probes_come_from_the_service_then_the_image() {
        let mut service = Service {
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "nc -w 1 127.0.0.1 6379".into()],
                retries: Some(5),
                ..Healthcheck::default()
            }),
            ..Service::default()
        };
        let image = crate::runtime::image::ImageConfig {
            healthcheck: Some(crate::runtime::image::config::HealthConfig {
                test: vec!["CMD".into(), "true".into()],
                interval: 2_000_000_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = probe(&service, &image).unwrap();
        assert_eq!(p.args, ["/bin/sh", "-c", "nc -w 1 127.0.0.1 6379"]);
        // Fields the service leaves out come from the image (as in docker).
        assert_eq!((p.retries, p.timeout_ms, p.interval_ms), (5, 30_000, 2_000));
        // Without a test of its own, the image's.
        service.healthcheck = None;
        let p = probe(&service, &image).unwrap();
        assert_eq!(p.args, ["true"]);
        assert_eq!((p.retries, p.interval_ms), (3, 2_000));
        // Disabled, or NONE: no probe.
        service.healthcheck = Some(Healthcheck {
            disable: true,
            ..Healthcheck::default()
        });
        assert!(probe(&service, &image).is_none());
        service.healthcheck = Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        });
        assert!(probe(&service, &image).is_none());
    }

    #[test]
    fn relative_secret_files_resolve_against_the_project() {
        let o = FileObject {
            name: "pw".into(),
            file: Some(PathBuf::from("secrets/pw.txt")),
            ..FileObject::default()
        };
        let r = resolve_file(&o, Path::new("/srv/app"));
        assert_eq!(r.file, Some(PathBuf::from("/srv/app/secrets/pw.txt")));
        let abs = FileObject {
            file: Some(PathBuf::from("/etc/pw")),
            ..o
        };
        assert_eq!(resolve_file(&abs, Path::new("/srv/app")).file, abs.file);
    }

    #[test]
    fn recorded_ports_become_ports_again() {
        let spec = PortSpec {
            host_ip: Some("127.0.0.1".into()),
            published: Some("8080".into()),
            target: 80,
            protocol: "tcp".into(),
        };
        let p = spec.port();
        assert_eq!(
            (p.host_ip.as_deref(), p.published.as_deref(), p.target),
            (Some("127.0.0.1"), Some("8080"), 80)
        );
        let rec = HostRecord {
            ports: vec![spec],
            ..HostRecord::default()
        };
        let back: HostRecord = serde_json::from_slice(&serde_json::to_vec(&rec).unwrap()).unwrap();
        assert_eq!(back.ports[0].target, 80);
    }
}
