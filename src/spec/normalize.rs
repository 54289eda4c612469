//! The merged, schema-checked document to the typed [`Stack`].
//!
//! By now the document is known to have the right shape (the schema said
//! so), so this module is about meaning: every short form becomes its long
//! form, relative paths are resolved against the directory their own file
//! resolves from (each node's span knows its file), `env_file`s are read and
//! folded into `environment`, variables named without a value are taken from
//! the environment, durations and byte sizes are parsed, and the defaults
//! docker compose fills in are filled in. Problems are collected, not
//! returned at the first one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::dotenv;
use super::env::Environment;
use super::model::*;
use super::syntax::{
    parse_bytes, parse_duration, parse_port, parse_volume, resolve_path, shell_split,
};
use super::yaml::{Kind, Node, ScalarType};

/// Mount propagation modes a bind mount may ask for (`bind.propagation`).
const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Service keys this module turns into typed fields; every other key is kept verbatim.
const SERVICE_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "working_dir",
    "user",
    "group_add",
    "hostname",
    "domainname",
    "container_name",
    "ports",
    "expose",
    "volumes",
    "volumes_from",
    "tmpfs",
    "networks",
    "network_mode",
    "links",
    "depends_on",
    "healthcheck",
    "deploy",
    "scale",
    "restart",
    "ulimits",
    "secrets",
    "configs",
    "labels",
    "label_file",
    "annotations",
    "extra_hosts",
    "sysctls",
    "cap_add",
    "cap_drop",
    "security_opt",
    "privileged",
    "read_only",
    "init",
    "tty",
    "stdin_open",
    "shm_size",
    "mem_limit",
    "memswap_limit",
    "mem_reservation",
    "cpus",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpuset",
    "pids_limit",
    "oom_score_adj",
    "stop_signal",
    "stop_grace_period",
    "dns",
    "dns_search",
    "dns_opt",
    "mac_address",
    "pull_policy",
    "platform",
    "profiles",
    "extends",
];

pub struct Normalizer<'a> {
    project: &'a str,
    env: &'a Environment,
    home: Option<PathBuf>,
    diags: Diagnostics,
}

/// Normalizes a whole document (services not yet filtered by profile).
pub fn normalize(doc: &Node, project: &str, env: &Environment) -> Result<Stack, Diagnostics> {
    let mut n = Normalizer {
        project,
        env,
        home: env.get("HOME").map(PathBuf::from),
        diags: Diagnostics::default(),
    };
    let stack = n.stack(doc);
    n.diags.into_result(stack)
}

impl Normalizer<'_> {
    fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.diags.push(
            Diagnostic::new(message)
                .at(&node.span)
                .path(path.to_string()),
        );
    }

    fn stack(&mut self, doc: &Node) -> Stack {
        let mut stack = Stack {
            name: self.project.to_string(),
            ..Stack::default()
        };
        let Some(map) = doc.as_map() else {
            return stack;
        };
        for (key, entry) in map {
            let node = &entry.value;
            match key.as_str() {
                "services" => {
                    for (name, e) in node.as_map().into_iter().flatten() {
                        let service = self.service(name, &e.value);
                        stack.services.insert(name.clone(), service);
                    }
                }
                "networks" => {
                    for (name, e) in node.as_map().into_iter().flatten() {
                        let network = self.network(name, &e.value);
                        stack.networks.insert(name.clone(), network);
                    }
                }
                "volumes" => {
                    for (name, e) in node.as_map().into_iter().flatten() {
                        let volume = self.volume(name, &e.value);
                        stack.volumes.insert(name.clone(), volume);
                    }
                }
                "secrets" | "configs" => {
                    for (name, e) in node.as_map().into_iter().flatten() {
                        let path = format!("{key}.{name}");
                        let object = self.file_object(name, &e.value, &path);
                        if key == "secrets" {
                            stack.secrets.insert(name.clone(), object);
                        } else {
                            stack.configs.insert(name.clone(), object);
                        }
                    }
                }
                // Consumed by the loader before normalization; the project name is decided there.
                "name" | "version" | "include" => {}
                _ => {
                    stack.extra.insert(key.clone(), node.to_json());
                }
            }
        }
        // Compose's implicit network: every service that names no network
        // (and shares no other namespace) is on `default`.
        let uses_default = stack
            .services
            .values()
            .any(|s| s.networks.contains_key("default"));
        if uses_default && !stack.networks.contains_key("default") {
            stack.networks.insert(
                "default".into(),
                Network {
                    name: format!("{}_default", self.project),
                    ..Network::default()
                },
            );
        }
        stack
    }

    fn service(&mut self, name: &str, node: &Node) -> Service {
        let mut s = Service {
            name: name.to_string(),
            ..Service::default()
        };
        let Some(map) = node.as_map() else {
            return s;
        };
        let at = |key: &str| format!("services.{name}.{key}");
        let mut env_files: Option<&Node> = None;
        for (key, entry) in map {
            let v = &entry.value;
            let path = at(key);
            match key.as_str() {
                "image" => s.image = text(v),
                "build" => s.build = Some(self.build(v)),
                "command" => s.command = self.command(v, &path),
                "entrypoint" => s.entrypoint = self.command(v, &path),
                "environment" => s.environment.extend(self.environment(v)),
                "env_file" => env_files = Some(v),
                "working_dir" => s.working_dir = text(v),
                "user" => s.user = text(v),
                "group_add" => s.group_add = strings(v),
                "hostname" => s.hostname = text(v),
                "domainname" => s.domainname = text(v),
                "container_name" => s.container_name = text(v),
                "ports" => s.ports = self.ports(v, &path),
                "expose" => s.expose = strings(v),
                "volumes" => s.volumes = self.mounts(v, &path),
                "volumes_from" => s.volumes_from = strings(v),
                "tmpfs" => {
                    for t in strings(v) {
                        let (target, opts) = t.split_once(':').unwrap_or((&t, ""));
                        s.tmpfs.insert(target.to_string(), opts.to_string());
                    }
                }
                "networks" => s.networks = self.service_networks(v, &path),
                "network_mode" => s.network_mode = text(v),
                "links" => s.links = strings(v),
                "depends_on" => s.depends_on = self.depends_on(v),
                "healthcheck" => s.healthcheck = Some(self.healthcheck(v, &path)),
                "deploy" => s.deploy = Some(self.deploy(v, &path)),
                "scale" => s.scale = self.uint(v, &path),
                "restart" => s.restart = text(v),
                "ulimits" => s.ulimits = self.ulimits(v, &path),
                "secrets" => s.secrets = self.file_refs(v),
                "configs" => s.configs = self.file_refs(v),
                "labels" => s.labels.extend(string_map(v)),
                "label_file" => {
                    for file in strings(v) {
                        let vars = self.read_env_file(v, &file, true, false, &path);
                        s.labels
                            .extend(vars.into_iter().map(|(k, v)| (k, v.unwrap_or_default())));
                    }
                }
                "annotations" => s.annotations = string_map(v),
                "extra_hosts" => s.extra_hosts = extra_hosts(v),
                "sysctls" => s.sysctls = string_map(v),
                "cap_add" => s.cap_add = strings(v),
                "cap_drop" => s.cap_drop = strings(v),
                "security_opt" => s.security_opt = strings(v),
                "privileged" => s.privileged = self.flag(v, &path).unwrap_or(false),
                "read_only" => s.read_only = self.flag(v, &path).unwrap_or(false),
                "init" => s.init = self.flag(v, &path),
                "tty" => s.tty = self.flag(v, &path).unwrap_or(false),
                "stdin_open" => s.stdin_open = self.flag(v, &path).unwrap_or(false),
                "shm_size" => s.shm_size = self.bytes(v, &path),
                "mem_limit" => s.mem_limit = self.bytes(v, &path),
                "memswap_limit" => s.memswap_limit = self.bytes(v, &path),
                "mem_reservation" => s.mem_reservation = self.bytes(v, &path),
                "cpus" => s.cpus = self.float(v, &path),
                "cpu_shares" => s.cpu_shares = self.int(v, &path),
                "cpu_quota" => s.cpu_quota = self.int(v, &path),
                "cpu_period" => s.cpu_period = self.int(v, &path),
                "cpuset" => s.cpuset = text(v),
                "pids_limit" => s.pids_limit = self.int(v, &path),
                "oom_score_adj" => s.oom_score_adj = self.int(v, &path),
                "stop_signal" => s.stop_signal = text(v),
                "stop_grace_period" => s.stop_grace_period = self.duration(v, &path),
                "dns" => s.dns = strings(v),
                "dns_search" => s.dns_search = strings(v),
                "dns_opt" => s.dns_opt = strings(v),
                "mac_address" => s.mac_address = text(v),
                "pull_policy" => s.pull_policy = text(v),
                "platform" => s.platform = text(v),
                "profiles" => s.profiles = strings(v),
                // Resolved by the loader before this point.
                "extends" => {}
                _ => {
                    debug_assert!(!SERVICE_KEYS.contains(&key.as_str()));
                    s.extra.insert(key.clone(), v.to_json());
                }
            }
        }
        // env_file first, then `environment` on top: the file's own keys win.
        if let Some(files) = env_files {
            let explicit = std::mem::take(&mut s.environment);
            for (file, required, raw) in env_file_entries(files) {
                let vars = self.read_env_file(files, &file, required, raw, &at("env_file"));
                s.environment.extend(vars);
            }
            s.environment.extend(explicit);
        }
        if s.networks.is_empty() && s.network_mode.is_none() {
            s.networks
                .insert("default".into(), ServiceNetwork::default());
        }
        s
    }

    fn build(&mut self, v: &Node) -> Value {
        let base = v.span.base_dir().unwrap_or(Path::new(".")).to_path_buf();
        let resolve = |ctx: &str| -> Value {
            if ctx.contains("://") || ctx.starts_with("git@") {
                Value::String(ctx.to_string())
            } else {
                Value::String(
                    resolve_path(ctx, &base, self.home.as_deref())
                        .display()
                        .to_string(),
                )
            }
        };
        match &v.kind {
            Kind::Scalar(s) => serde_json::json!({ "context": resolve(&s.text) }),
            _ => {
                let mut json = v.to_json();
                if let Some(obj) = json.as_object_mut() {
                    let context = obj
                        .get("context")
                        .and_then(Value::as_str)
                        .unwrap_or(".")
                        .to_string();
                    obj.insert("context".into(), resolve(&context));
                }
                json
            }
        }
    }

    fn command(&mut self, v: &Node, path: &str) -> Option<Vec<String>> {
        match &v.kind {
            Kind::Scalar(s) if s.ty == ScalarType::Null => None,
            Kind::Scalar(s) => match shell_split(&s.text) {
                Ok(words) => Some(words),
                Err(e) => {
                    self.error(v, path, e);
                    None
                }
            },
            _ => Some(strings(v)),
        }
    }

    /// `environment` as a list or a map; a name without a value comes from the environment.
    fn environment(&mut self, v: &Node) -> BTreeMap<String, Option<String>> {
        key_values(v)
            .into_iter()
            .map(|(k, val)| {
                let val = val.or_else(|| self.env.get(&k).map(str::to_string));
                (k, val)
            })
            .collect()
    }

    fn read_env_file(
        &mut self,
        node: &Node,
        file: &str,
        required: bool,
        raw: bool,
        path: &str,
    ) -> BTreeMap<String, Option<String>> {
        let base = node.span.base_dir().unwrap_or(Path::new("."));
        let resolved = resolve_path(file, base, self.home.as_deref());
        let text = match std::fs::read_to_string(&resolved) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return BTreeMap::new();
            }
            Err(e) => {
                self.diags.push(
                    Diagnostic::new(format!("cannot read env file {}: {e}", resolved.display()))
                        .at(&node.span)
                        .path(path.to_string())
                        .hint("create the file, fix the path, or mark it `required: false`"),
                );
                return BTreeMap::new();
            }
        };
        let env = self.env;
        let lookup = |name: &str| env.get(name).map(str::to_string);
        let parsed = if raw {
            dotenv::parse_raw_with_lookup(&text, &lookup)
        } else {
            dotenv::parse(&text, &lookup)
        };
        match parsed {
            Ok(vars) => vars.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            Err(e) => {
                self.diags.push(
                    Diagnostic::new(format!("invalid env file {}: {e}", resolved.display()))
                        .at(&node.span)
                        .path(path.to_string()),
                );
                BTreeMap::new()
            }
        }
    }

    fn ports(&mut self, v: &Node, path: &str) -> Vec<Port> {
        let mut ports = Vec::new();
        for (i, item) in v.as_seq().unwrap_or_default().iter().enumerate() {
            let path = format!("{path}[{i}]");
            match &item.kind {
                Kind::Scalar(s) => match parse_port(&s.text) {
                    Ok(p) => ports.extend(p),
                    Err(e) => self.error(item, &path, e),
                },
                Kind::Map(_) => {
                    let target = match item.get("target").and_then(|t| t.as_str()) {
                        Some(t) => match t.parse::<u16>() {
                            Ok(t) if t > 0 => t,
                            _ => {
                                self.error(
                                    item,
                                    &path,
                                    format!("`{t}` is not a container port (1-65535)"),
                                );
                                continue;
                            }
                        },
                        None => {
                            self.error(item, &path, "a port in long form needs a `target`");
                            continue;
                        }
                    };
                    let published = item.get("published").and_then(text);
                    if let Some(p) = &published {
                        let valid = p
                            .split_once('-')
                            .map_or(p.parse::<u16>().is_ok(), |(a, b)| {
                                a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok()
                            });
                        if !valid {
                            self.error(
                                item,
                                &path,
                                format!("`{p}` is not a published port or range"),
                            );
                        }
                    }
                    ports.push(Port {
                        name: item.get("name").and_then(text),
                        mode: item
                            .get("mode")
                            .and_then(text)
                            .unwrap_or_else(|| "ingress".into()),
                        host_ip: item.get("host_ip").and_then(text),
                        target,
                        published,
                        protocol: item
                            .get("protocol")
                            .and_then(text)
                            .unwrap_or_else(|| "tcp".into()),
                        app_protocol: item.get("app_protocol").and_then(text),
                    });
                }
                Kind::Seq(_) => self.error(item, &path, "a port is a string or a mapping"),
            }
        }
        ports
    }

    fn mounts(&mut self, v: &Node, path: &str) -> Vec<Mount> {
        let mut mounts = Vec::new();
        for (i, item) in v.as_seq().unwrap_or_default().iter().enumerate() {
            let path = format!("{path}[{i}]");
            let base = item.span.base_dir().unwrap_or(Path::new(".")).to_path_buf();
            match &item.kind {
                Kind::Scalar(s) => match parse_volume(&s.text, &base, self.home.as_deref()) {
                    Ok(m) => mounts.push(m),
                    Err(e) => self.error(item, &path, e),
                },
                Kind::Map(_) => {
                    if let Some(m) = self.long_mount(item, &base, &path) {
                        mounts.push(m);
                    }
                }
                Kind::Seq(_) => self.error(item, &path, "a volume is a string or a mapping"),
            }
        }
        mounts
    }

    fn long_mount(&mut self, item: &Node, base: &Path, path: &str) -> Option<Mount> {
        let kind = match item.get("type").and_then(|t| t.as_str()) {
            Some("bind") => MountType::Bind,
            Some("volume") | None => MountType::Volume,
            Some("tmpfs") => MountType::Tmpfs,
            Some("image") => MountType::Image,
            Some(other) => {
                let hint = if other == "npipe" {
                    "named pipes exist only on Windows"
                } else {
                    "use bind, volume, tmpfs or image"
                };
                self.error(
                    item,
                    path,
                    format!("volume type `{other}` is not supported: {hint}"),
                );
                return None;
            }
        };
        let Some(target) = item.get("target").and_then(text) else {
            self.error(
                item,
                path,
                "a volume in long form needs a `target` (the path in the container)",
            );
            return None;
        };
        let mut source = item.get("source").and_then(text);
        if kind == MountType::Bind {
            match &source {
                Some(s) => {
                    source = Some(
                        resolve_path(s, base, self.home.as_deref())
                            .display()
                            .to_string(),
                    )
                }
                None => {
                    self.error(
                        item,
                        path,
                        "a bind mount needs a `source` (the path on the host)",
                    );
                    return None;
                }
            }
        }
        let opt_str = |n: Option<&Node>, k: &str| n.and_then(|n| n.get(k)).and_then(text);
        let bind = item.get("bind").map(|b| BindOptions {
            propagation: opt_str(Some(b), "propagation"),
            create_host_path: b.get("create_host_path").map(boolean),
            selinux: opt_str(Some(b), "selinux"),
        });
        if let Some(p) = bind.as_ref().and_then(|b| b.propagation.as_deref())
            && !PROPAGATIONS.contains(&p)
        {
            let at = item
                .get("bind")
                .and_then(|b| b.get("propagation"))
                .unwrap_or(item);
            self.error(
                at,
                &format!("{path}.bind.propagation"),
                format!(
                    "unknown bind propagation `{p}`; use one of {}",
                    PROPAGATIONS.join(", ")
                ),
            );
        }
        let volume = item.get("volume").map(|b| VolumeOptions {
            nocopy: b.get("nocopy").is_some_and(boolean),
            subpath: opt_str(Some(b), "subpath"),
        });
        let tmpfs = item.get("tmpfs").map(|t| TmpfsOptions {
            size: t
                .get("size")
                .and_then(|n| self.bytes(n, &format!("{path}.tmpfs.size"))),
            mode: t
                .get("mode")
                .and_then(|m| self.file_mode(m, &format!("{path}.tmpfs.mode"))),
        });
        Some(Mount {
            kind,
            source,
            target: super::syntax::clean(Path::new(&target))
                .display()
                .to_string(),
            read_only: item.get("read_only").is_some_and(boolean),
            bind,
            volume,
            tmpfs,
            consistency: item.get("consistency").and_then(text),
        })
    }

    fn service_networks(&mut self, v: &Node, path: &str) -> BTreeMap<String, ServiceNetwork> {
        match &v.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(text)
                .map(|n| (n, ServiceNetwork::default()))
                .collect(),
            Kind::Map(map) => map
                .iter()
                .map(|(name, e)| {
                    let n = &e.value;
                    let path = format!("{path}.{name}");
                    let net = ServiceNetwork {
                        aliases: n.get("aliases").map(strings).unwrap_or_default(),
                        ipv4_address: n.get("ipv4_address").and_then(text),
                        ipv6_address: n.get("ipv6_address").and_then(text),
                        mac_address: n.get("mac_address").and_then(text),
                        priority: n.get("priority").and_then(|p| self.int(p, &path)),
                        gw_priority: n.get("gw_priority").and_then(|p| self.int(p, &path)),
                        interface_name: n.get("interface_name").and_then(text),
                        link_local_ips: n.get("link_local_ips").map(strings).unwrap_or_default(),
                        driver_opts: n.get("driver_opts").map(string_map).unwrap_or_default(),
                    };
                    (name.clone(), net)
                })
                .collect(),
            Kind::Scalar(_) => BTreeMap::new(),
        }
    }

    fn depends_on(&mut self, v: &Node) -> BTreeMap<String, Dependency> {
        match &v.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(text)
                .map(|n| {
                    let dep = Dependency {
                        condition: Condition::ServiceStarted,
                        required: true,
                        restart: false,
                    };
                    (n, dep)
                })
                .collect(),
            Kind::Map(map) => map
                .iter()
                .map(|(name, e)| {
                    let n = &e.value;
                    let condition = match n.get("condition").and_then(|c| c.as_str()) {
                        Some("service_healthy") => Condition::ServiceHealthy,
                        Some("service_completed_successfully") => {
                            Condition::ServiceCompletedSuccessfully
                        }
                        _ => Condition::ServiceStarted,
                    };
                    let dep = Dependency {
                        condition,
                        required: n.get("required").is_none_or(boolean),
                        restart: n.get("restart").is_some_and(boolean),
                    };
                    (name.clone(), dep)
                })
                .collect(),
            Kind::Scalar(_) => BTreeMap::new(),
        }
    }

    fn healthcheck(&mut self, v: &Node, path: &str) -> Healthcheck {
        let mut h = Healthcheck::default();
        if let Some(test) = v.get("test") {
            h.test = match &test.kind {
                Kind::Scalar(s) if s.text == "NONE" => vec!["NONE".into()],
                Kind::Scalar(s) => vec!["CMD-SHELL".into(), s.text.clone()],
                _ => strings(test),
            };
            if h.test.first().is_some_and(|t| t == "NONE") {
                h.disable = true;
            }
        }
        let d = |n: &mut Self, key: &str| {
            v.get(key)
                .and_then(|x| n.duration(x, &format!("{path}.{key}")))
        };
        h.interval = d(self, "interval");
        h.timeout = d(self, "timeout");
        h.start_period = d(self, "start_period");
        h.start_interval = d(self, "start_interval");
        h.retries = v
            .get("retries")
            .and_then(|r| self.uint(r, &format!("{path}.retries")))
            .map(u64::from);
        h.disable |= v.get("disable").is_some_and(boolean);
        h
    }

    fn deploy(&mut self, v: &Node, path: &str) -> Deploy {
        let mut d = Deploy::default();
        for (key, e) in v.as_map().into_iter().flatten() {
            let n = &e.value;
            let path = format!("{path}.{key}");
            match key.as_str() {
                "replicas" => d.replicas = self.uint(n, &path),
                "resources" => {
                    d.resources = Some(Resources {
                        limits: n
                            .get("limits")
                            .map(|l| self.resource(l, &format!("{path}.limits"))),
                        reservations: n
                            .get("reservations")
                            .map(|l| self.resource(l, &format!("{path}.reservations"))),
                    })
                }
                "restart_policy" => {
                    let dur = |s: &mut Self, k: &str| {
                        n.get(k).and_then(|x| s.duration(x, &format!("{path}.{k}")))
                    };
                    d.restart_policy = Some(RestartPolicy {
                        condition: n.get("condition").and_then(text),
                        delay: dur(self, "delay"),
                        max_attempts: n
                            .get("max_attempts")
                            .and_then(|m| self.uint(m, &format!("{path}.max_attempts")))
                            .map(u64::from),
                        window: dur(self, "window"),
                    });
                }
                _ => {
                    d.extra.insert(key.clone(), n.to_json());
                }
            }
        }
        d
    }

    fn resource(&mut self, v: &Node, path: &str) -> Resource {
        let mut r = Resource::default();
        for (key, e) in v.as_map().into_iter().flatten() {
            let n = &e.value;
            let path = format!("{path}.{key}");
            match key.as_str() {
                "cpus" => r.cpus = self.float(n, &path),
                "memory" => r.memory = self.bytes(n, &path),
                "pids" => r.pids = self.int(n, &path),
                _ => {
                    r.extra.insert(key.clone(), n.to_json());
                }
            }
        }
        r
    }

    fn ulimits(&mut self, v: &Node, path: &str) -> BTreeMap<String, Ulimit> {
        let mut out = BTreeMap::new();
        for (name, e) in v.as_map().into_iter().flatten() {
            let n = &e.value;
            let path = format!("{path}.{name}");
            let limit = match &n.kind {
                Kind::Map(_) => {
                    let soft = n.get("soft").and_then(|x| self.int(x, &path));
                    let hard = n.get("hard").and_then(|x| self.int(x, &path));
                    match (soft, hard) {
                        (Some(soft), Some(hard)) => Ulimit { soft, hard },
                        _ => {
                            self.error(n, &path, "a ulimit mapping needs both `soft` and `hard`");
                            continue;
                        }
                    }
                }
                _ => match self.int(n, &path) {
                    Some(x) => Ulimit { soft: x, hard: x },
                    None => continue,
                },
            };
            if limit.soft > limit.hard && limit.hard >= 0 {
                self.error(
                    n,
                    &path,
                    format!(
                        "the soft limit {} is above the hard limit {}",
                        limit.soft, limit.hard
                    ),
                );
            }
            out.insert(name.clone(), limit);
        }
        out
    }

    /// A permission mode: `0440` and `0o440` are octal (as in docker
    /// compose, although YAML 1.2 alone would read `0440` as decimal), other
    /// numbers decimal.
    fn file_mode(&mut self, m: &Node, path: &str) -> Option<FileMode> {
        let text = m.as_str()?;
        let parsed = match text.strip_prefix("0o").or_else(|| text.strip_prefix('0')) {
            Some("") => Some(0),
            Some(octal) => u32::from_str_radix(octal, 8).ok(),
            None => text.parse().ok(),
        };
        match parsed {
            Some(mode) if mode <= 0o7777 => Some(FileMode(mode)),
            _ => {
                self.error(
                    m,
                    path,
                    format!("`{text}` is not a file mode (write it in octal, e.g. `0440`)"),
                );
                None
            }
        }
    }

    fn file_refs(&mut self, v: &Node) -> Vec<FileRef> {
        let items: Vec<&Node> = v.as_seq().unwrap_or_default().iter().collect();
        items
            .into_iter()
            .filter_map(|item| match &item.kind {
                Kind::Scalar(s) => Some(FileRef {
                    source: s.text.clone(),
                    target: None,
                    uid: None,
                    gid: None,
                    mode: None,
                }),
                Kind::Map(_) => Some(FileRef {
                    source: item.get("source").and_then(text)?,
                    target: item.get("target").and_then(text),
                    uid: item.get("uid").and_then(text),
                    gid: item.get("gid").and_then(text),
                    mode: item.get("mode").and_then(|m| self.file_mode(m, "mode")),
                }),
                Kind::Seq(_) => None,
            })
            .collect()
    }

    fn network(&mut self, key: &str, v: &Node) -> Network {
        let mut net = Network::default();
        let mut name = None;
        for (k, e) in v.as_map().into_iter().flatten() {
            let n = &e.value;
            match k.as_str() {
                "name" => name = text(n),
                "driver" => net.driver = text(n),
                "driver_opts" => net.driver_opts = string_map(n),
                "external" => net.external = external(n, &mut name),
                "internal" => net.internal = boolean(n),
                "enable_ipv6" => net.enable_ipv6 = Some(boolean(n)),
                "attachable" => net.attachable = boolean(n),
                "labels" => net.labels = string_map(n),
                "ipam" => {
                    net.ipam = Some(Ipam {
                        driver: n.get("driver").and_then(text),
                        options: n.get("options").map(string_map).unwrap_or_default(),
                        config: n
                            .get("config")
                            .and_then(|c| c.as_seq())
                            .unwrap_or_default()
                            .iter()
                            .map(|c| IpamConfig {
                                subnet: c.get("subnet").and_then(text),
                                ip_range: c.get("ip_range").and_then(text),
                                gateway: c.get("gateway").and_then(text),
                                aux_addresses: c
                                    .get("aux_addresses")
                                    .map(string_map)
                                    .unwrap_or_default(),
                            })
                            .collect(),
                    })
                }
                _ => {
                    net.extra.insert(k.clone(), n.to_json());
                }
            }
        }
        net.name = self.host_name(name, net.external, key);
        net
    }

    fn volume(&mut self, key: &str, v: &Node) -> Volume {
        let mut vol = Volume::default();
        let mut name = None;
        for (k, e) in v.as_map().into_iter().flatten() {
            let n = &e.value;
            match k.as_str() {
                "name" => name = text(n),
                "driver" => vol.driver = text(n),
                "driver_opts" => vol.driver_opts = string_map(n),
                "external" => vol.external = external(n, &mut name),
                "labels" => vol.labels = string_map(n),
                _ => {
                    vol.extra.insert(k.clone(), n.to_json());
                }
            }
        }
        vol.name = self.host_name(name, vol.external, key);
        vol
    }

    fn file_object(&mut self, key: &str, v: &Node, path: &str) -> FileObject {
        let mut obj = FileObject::default();
        let mut name = None;
        for (k, e) in v.as_map().into_iter().flatten() {
            let n = &e.value;
            match k.as_str() {
                "name" => name = text(n),
                "file" => {
                    let base = n.span.base_dir().unwrap_or(Path::new("."));
                    let file = text(n).unwrap_or_default();
                    obj.file = Some(resolve_path(&file, base, self.home.as_deref()));
                }
                "environment" => obj.environment = text(n),
                "content" => obj.content = text(n),
                "external" => obj.external = external(n, &mut name),
                "labels" => obj.labels = string_map(n),
                _ => {
                    obj.extra.insert(k.clone(), n.to_json());
                }
            }
        }
        let sources = [
            obj.file.is_some(),
            obj.environment.is_some(),
            obj.content.is_some(),
            obj.external,
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources > 1 {
            self.error(v, path, format!("`{path}` names more than one source; keep one of file, environment, content or external"));
        }
        obj.name = self.host_name(name, obj.external, key);
        let content: Option<Vec<u8>> = if let Some(file) = &obj.file {
            std::fs::read(file).ok()
        } else if let Some(var) = &obj.environment {
            self.env.get(var).map(|s| s.as_bytes().to_vec())
        } else {
            obj.content.as_ref().map(|c| c.as_bytes().to_vec())
        };
        obj.digest = content.map(|c| format!("sha256:{:x}", Sha256::digest(c)));
        obj
    }

    /// The name on the host: as given, else the key for external objects
    /// (they exist already), else `<project>_<key>`.
    fn host_name(&self, name: Option<String>, external: bool, key: &str) -> String {
        name.unwrap_or_else(|| {
            if external {
                key.to_string()
            } else {
                format!("{}_{key}", self.project)
            }
        })
    }

    fn bytes(&mut self, v: &Node, path: &str) -> Option<Bytes> {
        let text = v.as_str()?;
        match parse_bytes(text) {
            Ok(b) => Some(b),
            Err(e) => {
                self.error(v, path, e);
                None
            }
        }
    }

    fn duration(&mut self, v: &Node, path: &str) -> Option<Duration> {
        let text = v.as_str()?;
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(v, path, e);
                None
            }
        }
    }

    /// A boolean; a string that is not `true` or `false` (an interpolated
    /// `yes`, say) is an error rather than a silent `false`.
    fn flag(&mut self, v: &Node, path: &str) -> Option<bool> {
        let text = v.as_str()?;
        match super::yaml::parse_bool(text) {
            Some(b) => Some(b),
            None => {
                self.error(
                    v,
                    path,
                    format!("`{text}` is not a boolean (write `true` or `false`)"),
                );
                None
            }
        }
    }

    fn int(&mut self, v: &Node, path: &str) -> Option<i64> {
        let text = v.as_str()?;
        match text
            .parse::<i64>()
            .ok()
            .or_else(|| super::yaml::parse_int(text))
        {
            Some(i) => Some(i),
            None => {
                self.error(v, path, format!("`{text}` is not an integer"));
                None
            }
        }
    }

    fn uint(&mut self, v: &Node, path: &str) -> Option<u32> {
        let i = self.int(v, path)?;
        match u32::try_from(i) {
            Ok(u) => Some(u),
            Err(_) => {
                self.error(
                    v,
                    path,
                    format!("`{i}` must be a whole number from 0 to 4294967295"),
                );
                None
            }
        }
    }

    fn float(&mut self, v: &Node, path: &str) -> Option<f64> {
        let text = v.as_str()?;
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() && f >= 0.0 => Some(f),
            _ => {
                self.error(
                    v,
                    path,
                    format!("`{text}` is not a number of CPUs (e.g. `0.5`)"),
                );
                None
            }
        }
    }
}

/// `external: true`, or the legacy `external: {name: x}`.
fn external(n: &Node, name: &mut Option<String>) -> bool {
    match n.get("name").and_then(text) {
        Some(legacy) => {
            *name = Some(legacy);
            true
        }
        None => boolean(n),
    }
}

/// `env_file` entries as (path, required, raw format).
fn env_file_entries(v: &Node) -> Vec<(String, bool, bool)> {
    let one = |n: &Node| -> Option<(String, bool, bool)> {
        match &n.kind {
            Kind::Scalar(_) => Some((text(n)?, true, false)),
            Kind::Map(_) => Some((
                n.get("path").and_then(text)?,
                n.get("required").is_none_or(boolean),
                n.get("format").and_then(|f| f.as_str()) == Some("raw"),
            )),
            Kind::Seq(_) => None,
        }
    };
    match &v.kind {
        Kind::Seq(items) => items.iter().filter_map(one).collect(),
        _ => one(v).into_iter().collect(),
    }
}

/// A scalar's text (`None` for null).
pub fn text(n: &Node) -> Option<String> {
    n.as_str().map(str::to_string)
}

pub fn boolean(n: &Node) -> bool {
    n.as_str()
        .and_then(super::yaml::parse_bool)
        .unwrap_or(false)
}

/// A sequence of scalars (or one scalar) as strings.
pub fn strings(n: &Node) -> Vec<String> {
    match &n.kind {
        Kind::Seq(items) => items.iter().filter_map(text).collect(),
        Kind::Scalar(_) => text(n).into_iter().collect(),
        Kind::Map(_) => Vec::new(),
    }
}

/// A `KEY=VALUE` list or a mapping; `KEY` alone (or a null value) has no value.
pub fn key_values(n: &Node) -> Vec<(String, Option<String>)> {
    match &n.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(text)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (item, None),
            })
            .collect(),
        Kind::Map(map) => map
            .iter()
            .map(|(k, e)| (k.clone(), text(&e.value)))
            .collect(),
        Kind::Scalar(_) => Vec::new(),
    }
}

fn string_map(n: &Node) -> BTreeMap<String, String> {
    key_values(n)
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

/// `extra_hosts` as `host:ip` / `host=ip` entries or a map of host to address(es).
fn extra_hosts(n: &Node) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match &n.kind {
        Kind::Seq(items) => {
            for item in items.iter().filter_map(text) {
                // `=` is unambiguous with IPv6; `:` splits at the first colon.
                let pair = item.split_once('=').or_else(|| item.split_once(':'));
                if let Some((host, ip)) = pair {
                    let ip = ip.trim_start_matches('[').trim_end_matches(']');
                    out.entry(host.to_string())
                        .or_default()
                        .push(ip.to_string());
                }
            }
        }
        Kind::Map(map) => {
            for (host, e) in map {
                out.entry(host.clone())
                    .or_default()
                    .extend(strings(&e.value));
            }
        }
        Kind::Scalar(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::diagnostic::Source;

    fn load(text: &str) -> Result<Stack, Diagnostics> {
        let src = Source::with_base("/p/compose.yaml", text, "/p");
        let doc = crate::spec::yaml::parse(&src).unwrap().remove(0);
        let env = Environment::from_pairs([("HOME", "/home/u"), ("FROM_SHELL", "s")]);
        normalize(&doc, "proj", &env)
    }

    #[test]
    fn short_forms_become_long_forms() {
        let s = load(
            "services:\n  web:\n    image: nginx\n    command: nginx -g 'daemon off;'\n    ports: ['8080:80']\n    volumes: ['./html:/usr/share/nginx/html:ro', 'data:/data']\n    environment: [A=1, FROM_SHELL, MISSING]\n    depends_on: [db]\n    healthcheck:\n      test: curl -f localhost\n      interval: 1m30s\n    mem_limit: 512m\n  db:\n    image: postgres\n    networks: [back]\nnetworks:\n  back: {}\nvolumes:\n  data: {}\n",
        )
        .unwrap();
        let web = &s.services["web"];
        assert_eq!(
            web.command.as_deref().unwrap(),
            ["nginx", "-g", "daemon off;"]
        );
        assert_eq!(web.ports[0].published.as_deref(), Some("8080"));
        assert_eq!(web.volumes[0].kind, MountType::Bind);
        assert_eq!(web.volumes[0].source.as_deref(), Some("/p/html"));
        assert!(web.volumes[0].read_only);
        assert_eq!(web.volumes[1].kind, MountType::Volume);
        assert_eq!(web.environment["A"].as_deref(), Some("1"));
        assert_eq!(web.environment["FROM_SHELL"].as_deref(), Some("s"));
        assert_eq!(web.environment["MISSING"], None);
        assert_eq!(web.depends_on["db"].condition, Condition::ServiceStarted);
        let hc = web.healthcheck.as_ref().unwrap();
        assert_eq!(hc.test, ["CMD-SHELL", "curl -f localhost"]);
        assert_eq!(hc.interval.unwrap().to_string(), "1m30s");
        assert_eq!(web.mem_limit, Some(Bytes(512 << 20)));
        assert!(web.networks.contains_key("default"));
        assert_eq!(s.networks["default"].name, "proj_default");
        assert_eq!(s.networks["back"].name, "proj_back");
        assert_eq!(s.volumes["data"].name, "proj_data");
        assert!(!s.services["db"].networks.contains_key("default"));
    }

    #[test]
    fn bad_values_are_reported_together_with_places() {
        let err = load(
            "services:\n  web:\n    image: x\n    ports: ['80:http']\n    stop_grace_period: 10 parsecs\n    mem_limit: lots\n",
        )
        .unwrap_err();
        assert_eq!(err.len(), 3, "{err}");
        assert_eq!(err.0[0].span.line, 4);
        assert_eq!(err.0[0].path, "services.web.ports[0]");
        assert!(err.0[1].message.contains("duration"));
        assert!(err.0[2].message.contains("size in bytes"));
    }

    #[test]
    fn env_files_fold_into_environment_and_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.env"), "A=from_file\nB=from_file\n").unwrap();
        let text = "services:\n  web:\n    image: x\n    env_file:\n      - a.env\n      - path: missing.env\n        required: false\n    environment:\n      B: explicit\n";
        let src = Source::new(dir.path().join("compose.yaml"), text);
        let doc = crate::spec::yaml::parse(&src).unwrap().remove(0);
        let s = normalize(&doc, "p", &Environment::default()).unwrap();
        let env = &s.services["web"].environment;
        assert_eq!(env["A"].as_deref(), Some("from_file"));
        assert_eq!(env["B"].as_deref(), Some("explicit"));

        let text = "services:\n  web:\n    image: x\n    env_file: nope.env\n";
        let src = Source::new(dir.path().join("compose.yaml"), text);
        let doc = crate::spec::yaml::parse(&src).unwrap().remove(0);
        let err = normalize(&doc, "p", &Environment::default()).unwrap_err();
        assert!(err.0[0].message.contains("nope.env"), "{err}");
    }

    #[test]
    fn secrets_read_their_digest_and_services_use_long_form() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw.txt"), "hunter2").unwrap();
        let text = "services:\n  web:\n    image: x\n    secrets: [pw, {source: pw, target: /run/x, mode: 0440}]\nsecrets:\n  pw:\n    file: ./pw.txt\n";
        let src = Source::new(dir.path().join("compose.yaml"), text);
        let doc = crate::spec::yaml::parse(&src).unwrap().remove(0);
        let s = normalize(&doc, "p", &Environment::default()).unwrap();
        assert!(
            s.secrets["pw"]
                .digest
                .as_deref()
                .unwrap()
                .starts_with("sha256:")
        );
        assert_eq!(s.secrets["pw"].name, "p_pw");
        assert_eq!(s.services["web"].secrets[1].mode, Some(FileMode(0o440)));
    }
}
