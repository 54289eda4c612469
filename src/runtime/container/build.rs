//! From a Compose service and its image to the shim's input.
//!
//! The OCI runtime spec (`config.json`, oci-spec's [`Spec`]) is the contract
//! between the planner's container definition and the shim: everything the
//! shim needs to know about the process, its namespaces, mounts, limits and
//! security is decided here, in pure code, and written once. A few things
//! OCI has no field for travel beside it in [`ContainerConfig`] (the image
//! layers, log rotation, the stop signal, names to resolve in the image's
//! /etc/passwd).
//!
//! Compose's rules implemented here:
//! - **command and entrypoint**: an `entrypoint` in the file replaces the
//!   image's *and* discards the image's `Cmd`; `command` replaces `Cmd`. The
//!   process runs `entrypoint + command` (see [`combine_command`]).
//! - **environment**: the image's, then the file's (the loader already
//!   folded `env_file` in); a variable listed without a value and unset in
//!   the shell is left out; `PATH` and `HOSTNAME` get Docker's defaults.
//! - **ulimits** are clamped to the caller's hard limits, because without
//!   CAP_SYS_RESOURCE a hard limit can only be lowered ([`clamp_rlimits`]).
//! - **pids_limit** defaults to 2048 when nothing sets it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ContainerError;
use crate::runtime::security;
use crate::spec::Service;

/// The default limit on processes in a container.
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;
/// Docker's default stop grace period.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the runtime needs from an image's configuration (the OCI image
/// config's `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_signal: Option<String>,
}

impl From<&crate::runtime::image::config::ImageConfig> for ImageConfig {
    /// The run defaults of an image in the store.
    fn from(c: &crate::runtime::image::config::ImageConfig) -> ImageConfig {
        ImageConfig {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: c.env.clone().unwrap_or_default(),
            user: c.user.clone(),
            working_dir: c.working_dir.clone(),
            stop_signal: c.stop_signal.clone(),
        }
    }
}

/// How the container gets its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new, empty namespace; the caller attaches interfaces between
    /// `create` and `start` (bridge networks).
    New,
    /// A new namespace left with loopback only (`network_mode: none`).
    None,
    /// The host's namespace (`network_mode: host`).
    Host,
    /// Join an existing namespace: `/proc/<pid>/ns/net` of another
    /// container, or a bind-mounted namespace file
    /// (`network_mode: container:x` / `service:x`).
    Join(PathBuf),
}

/// A mount the caller resolved (volumes and bind mounts are the volumes
/// module's job; the runtime only mounts them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    /// `bind.propagation` (`rslave`, ...); `None`: rprivate, as docker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
}

/// Everything about the container that does not come from the service.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The container id: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 bytes.
    pub id: String,
    pub project: String,
    /// Unpacked image layers, lowest first.
    pub layers: Vec<PathBuf>,
    pub network: NetworkMode,
    /// Content of the container's /etc/hosts and /etc/resolv.conf (the
    /// network module keeps them current afterwards).
    pub hosts: String,
    pub resolv_conf: String,
    pub binds: Vec<BindMount>,
    /// Where relative paths in the service (seccomp profiles) resolve.
    pub project_dir: PathBuf,
    /// Namespaces shared with another container (`pid:`, `ipc:`).
    pub joins: Joins,
}

/// The pid and IPC namespaces of another container to join (`pid:` or
/// `ipc:` set to `service:x` or `container:x`): the host pid of its first
/// process, whose `/proc/<pid>/ns/*` are joined. For IPC that shares System
/// V IPC objects and POSIX message queues; /dev/shm, a tmpfs mounted inside
/// the other container's mount namespace, cannot be bound from outside it,
/// so each keeps its own (a warning says so).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Joins {
    pub pid: Option<i32>,
    pub ipc: Option<i32>,
}

/// Points a configuration's namespace of type `typ` at `path` (joined):
/// a restart of a container that shares another's network, pid or IPC
/// namespace, after that container was started again.
pub fn rejoin(
    config: &mut ContainerConfig,
    typ: oci_spec::runtime::LinuxNamespaceType,
    path: PathBuf,
) {
    let namespaces = config
        .spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut());
    for ns in namespaces.into_iter().flatten() {
        if ns.typ() == typ {
            ns.set_path(Some(path.clone()));
        }
    }
}

/// Log rotation (`logging.options` `max-size`, `max-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Bytes per file; `None`: one file that grows.
    pub max_size: Option<u64>,
    /// Files kept, the live one included.
    pub max_file: u32,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            max_size: None,
            max_file: 1,
        }
    }
}

/// The shim's whole input, stored as `config.json` in the container's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub spec: Spec,
    /// Lowest first.
    pub layers: Vec<PathBuf>,
    pub log: LogOptions,
    pub stop_signal: i32,
    /// `user:` as a name to resolve in the container's /etc/passwd when it
    /// is not numeric (the OCI spec has numeric ids only).
    pub user: Option<String>,
    pub group_add: Vec<String>,
    pub init: bool,
    /// Keep the command's standard input open (`stdin_open`).
    #[serde(default)]
    pub stdin_open: bool,
    /// What was adjusted to fit this host, for the caller to show the user
    /// (e.g. a ulimit lowered to the hard limit stack itself has).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname_file: String,
    pub labels: BTreeMap<String, String>,
    /// A command the shim starts once the container exited and its exit
    /// is recorded, as docker's daemon auto-removes `run --rm -d`
    /// containers: argv, empty for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_exit: Vec<String>,
}

/// `entrypoint + command` by Compose's rules.
pub fn combine_command(service: &Service, image: &ImageConfig) -> Vec<String> {
    let (entry, cmd) = match &service.entrypoint {
        // An entrypoint in the file resets the image's Cmd too.
        Some(e) => (e.clone(), service.command.clone().unwrap_or_default()),
        None => (
            image.entrypoint.clone().unwrap_or_default(),
            service
                .command
                .clone()
                .or_else(|| image.cmd.clone())
                .unwrap_or_default(),
        ),
    };
    entry.into_iter().chain(cmd).collect()
}

/// The environment: the image's, then the service's, with defaults.
pub fn environment(service: &Service, image: &ImageConfig, hostname: &str) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |k: &str, v: String, env: &mut BTreeMap<String, String>| {
        if env.insert(k.to_string(), v).is_none() {
            order.push(k.to_string());
        }
    };
    set("PATH", DEFAULT_PATH.to_string(), &mut env);
    set("HOSTNAME", hostname.to_string(), &mut env);
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v.to_string(), &mut env);
    }
    for (k, v) in &service.environment {
        if let Some(v) = v {
            set(k, v.clone(), &mut env);
        }
    }
    if service.tty && !env.contains_key("TERM") {
        set("TERM", "xterm".into(), &mut env);
    }
    order
        .into_iter()
        .map(|k| format!("{k}={}", env[&k]))
        .collect()
}

/// A signal given as `SIGTERM`, `TERM` or `15`.
pub fn parse_signal(s: &str) -> Result<i32, ContainerError> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| ContainerError::BadSignal(s.to_string()))
}

/// Compose ulimit names to OCI rlimit types.
fn rlimit_type(name: &str) -> Option<(&'static str, libc::__rlimit_resource_t)> {
    Some(match name {
        "core" => ("RLIMIT_CORE", libc::RLIMIT_CORE),
        "cpu" => ("RLIMIT_CPU", libc::RLIMIT_CPU),
        "data" => ("RLIMIT_DATA", libc::RLIMIT_DATA),
        "fsize" => ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        "locks" => ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        "memlock" => ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        "msgqueue" => ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        "nice" => ("RLIMIT_NICE", libc::RLIMIT_NICE),
        "nofile" => ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        "nproc" => ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        "rss" => ("RLIMIT_RSS", libc::RLIMIT_RSS),
        "rtprio" => ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        "rttime" => ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
        "sigpending" => ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        "stack" => ("RLIMIT_STACK", libc::RLIMIT_STACK),
        "as" => ("RLIMIT_AS", libc::RLIMIT_AS),
        _ => return None,
    })
}

/// One rlimit after clamping, and whether it was lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub kind: &'static str,
    pub soft: u64,
    pub hard: u64,
    pub clamped: bool,
}

/// Compose `ulimits` clamped to `hard_limit(resource)` (the caller's hard
/// limits: without CAP_SYS_RESOURCE they cannot be raised). Negative
/// values mean unlimited.
pub fn clamp_rlimits(
    ulimits: &BTreeMap<String, crate::spec::model::Ulimit>,
    hard_limit: impl Fn(libc::__rlimit_resource_t) -> u64,
) -> Result<Vec<Rlimit>, ContainerError> {
    let mut out = Vec::new();
    for (name, u) in ulimits {
        let (kind, resource) =
            rlimit_type(name).ok_or_else(|| ContainerError::BadUlimit(name.clone()))?;
        let as_u64 = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        let max = hard_limit(resource);
        let (soft, hard) = (as_u64(u.soft), as_u64(u.hard));
        let clamped = hard > max || soft > max;
        out.push(Rlimit {
            kind,
            soft: soft.min(max),
            hard: hard.min(max),
            clamped,
        });
    }
    Ok(out)
}

/// This process's hard limit for `resource`.
pub fn own_hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    if unsafe { libc::getrlimit(resource, &mut r) } == 0 {
        r.rlim_max
    } else {
        u64::MAX
    }
}

/// Whether this process has capability `cap` in its effective set.
fn own_capability(cap: u32) -> bool {
    own_capabilities() & (1 << cap) != 0
}

/// stack's own effective capabilities, as a mask (none when unreadable).
fn own_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .unwrap_or(0)
}

/// Sysctls a container may set: those namespaced by the kernel (IPC and,
/// with its own network namespace, network).
pub fn check_sysctl(name: &str, own_network: bool, own_ipc: bool) -> Result<(), ContainerError> {
    let ipc = matches!(
        name,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || name.starts_with("fs.mqueue.");
    let net = name.starts_with("net.");
    if (ipc && own_ipc) || (net && own_network) {
        Ok(())
    } else {
        Err(ContainerError::BadSysctl(name.to_string()))
    }
}

/// `pid:`, `ipc:` or `uts:` set to `host`: the container shares the
/// host's namespace of that kind (docker's `--pid host` and so on).
/// `service:x`/`container:x` join another container's (the caller resolves
/// it into [`BuildContext::joins`]); anything else keeps the container's
/// own (`private`, `shareable`).
pub fn host_namespace(service: &Service, kind: &str) -> bool {
    service.extra.get(kind).and_then(|v| v.as_str()) == Some("host")
}

/// Service keys of the Compose spec that stack keeps (`stack config`
/// prints them) but does not act on: each one a warning when a container
/// of the service is made, rather than a silent difference from docker.
fn unapplied_keys(service: &Service) -> Vec<String> {
    // Acted on elsewhere (hooks by the host), or meaning nothing to `up`.
    const SILENT: [&str; 13] = [
        // `up`'s log streaming honours it.
        "attach",
        "post_start",
        "pre_stop",
        // `stack` has no `watch` command: its sync rules are not for `up`.
        "develop",
        "devices",
        "logging",
        "pid",
        "ipc",
        "uts",
        "blkio_config",
        "device_cgroup_rules",
        "mem_swappiness",
        "oom_kill_disable",
    ];
    service
        .extra
        .keys()
        .filter(|k| !SILENT.contains(&k.as_str()) && !k.starts_with("x-"))
        .map(|k| {
            format!(
                "service `{}`: `{k}` is not applied by stack; the container runs without it",
                service.name
            )
        })
        .collect()
}

/// What of `uts:` stack does not apply (pid and IPC joins are
/// [`BuildContext::joins`]; compose's `uts:` knows only `host`).
fn namespace_warnings(service: &Service) -> Vec<String> {
    let uts = service.extra.get("uts").and_then(|v| v.as_str());
    match uts {
        Some(v) if v.starts_with("service:") || v.starts_with("container:") => vec![format!(
            "service `{}`: `uts: {v}` (sharing another container's UTS namespace) is not supported by stack; the container gets its own",
            service.name
        )],
        _ => Vec::new(),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Builds the shim's input for one container of `service`.
pub fn container_config(
    service: &Service,
    image: &ImageConfig,
    ctx: &BuildContext,
    root: &Path,
) -> Result<ContainerConfig, ContainerError> {
    if !valid_id(&ctx.id) || !valid_id(&ctx.project) {
        return Err(ContainerError::BadId(format!("{}/{}", ctx.project, ctx.id)));
    }
    let dir = root.join("containers").join(&ctx.id);
    let args = combine_command(service, image);
    if args.is_empty() {
        return Err(ContainerError::NoCommand(service.name.clone()));
    }
    let host_uts = host_namespace(service, "uts");
    let host_ipc = host_namespace(service, "ipc");
    // In the host's UTS namespace the name is the host's: setting it would
    // rename the host.
    let hostname = if host_uts {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        service
            .hostname
            .clone()
            .unwrap_or_else(|| ctx.id.chars().take(12).collect())
    };
    let env = environment(service, image, &hostname);
    let cwd = service
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(ContainerError::RelativeWorkingDir(cwd));
    }

    // User: numeric ids go into the spec; names are resolved in the
    // container's own /etc/passwd by the shim.
    let user_spec = service.user.clone().or_else(|| image.user.clone());
    let (uid, gid, named_user) = match user_spec.as_deref() {
        None | Some("") => (0, 0, None),
        Some(u) => {
            let (a, b) = u.split_once(':').unwrap_or((u, ""));
            match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(uid), Ok(gid)) if service.group_add.is_empty() => (uid, gid, None),
                _ => (0, 0, Some(u.to_string())),
            }
        }
    };
    let named_user = named_user.or_else(|| {
        // group_add needs the in-container resolution too.
        (!service.group_add.is_empty()).then(|| user_spec.clone().unwrap_or("0".into()))
    });

    let sec = security::parse_security_opts(&service.security_opt, &ctx.project_dir)?;
    let caps = security::capability_set(&service.cap_add, &service.cap_drop, service.privileged)?;
    let seccomp = match (&sec.seccomp, service.privileged) {
        (Some(None), _) | (None, true) => None,
        (None, false) => Some(security::resolve_profile(security::DEFAULT_PROFILE, &caps)?),
        (Some(Some(json)), _) => Some(security::resolve_profile(json, &caps)?),
    };
    let rlimits = clamp_rlimits(&service.ulimits, own_hard_limit)?;
    let mut warnings: Vec<String> = rlimits
        .iter()
        .filter(|r| r.clamped)
        .map(|r| {
            format!(
                "service `{}`: {} lowered to {} (soft) / {} (hard), the most stack itself may grant without CAP_SYS_RESOURCE",
                service.name, r.kind, r.soft, r.hard
            )
        })
        .collect();
    if service.oom_score_adj.is_some_and(|o| o < 0) && !own_capability(24) {
        warnings.push(format!(
            "service `{}`: oom_score_adj below 0 needs CAP_SYS_RESOURCE, which stack does not have here; the container keeps stack's own score",
            service.name
        ));
    }

    let own_network = matches!(ctx.network, NetworkMode::New | NetworkMode::None);
    for name in service.sysctls.keys() {
        check_sysctl(name, own_network, !host_ipc)?;
    }

    // Resources.
    let limits = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let reservations = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.as_ref());
    let memory = service
        .mem_limit
        .or_else(|| limits.and_then(|l| l.memory))
        .map(|b| b.0);
    let reservation = service
        .mem_reservation
        .or_else(|| reservations.and_then(|l| l.memory))
        .map(|b| b.0);
    let cpus = service.cpus.or_else(|| limits.and_then(|l| l.cpus));
    let period = service.cpu_period.or(cpus.map(|_| 100_000));
    let quota = service
        .cpu_quota
        .or_else(|| cpus.map(|c| (c * period.unwrap_or(100_000) as f64).round() as i64));
    let pids = service
        .pids_limit
        .or_else(|| limits.and_then(|l| l.pids))
        .unwrap_or(DEFAULT_PIDS_LIMIT);
    let mut memory_json = json!({});
    if let Some(m) = memory {
        memory_json["limit"] = m.into();
    }
    if let Some(s) = service.memswap_limit {
        memory_json["swap"] = s.0.into();
    }
    if let Some(r) = reservation {
        memory_json["reservation"] = r.into();
    }
    // v1's memory knobs: v2 has neither, so there they are a warning.
    let v1 = matches!(
        crate::runtime::cgroup::Hierarchy::cached(),
        Ok(crate::runtime::cgroup::Hierarchy::V1(_))
    );
    let swappiness = service.extra.get("mem_swappiness").and_then(|v| v.as_u64());
    let no_oom_kill = service
        .extra
        .get("oom_kill_disable")
        .and_then(|v| v.as_bool())
        == Some(true);
    for (key, asked) in [
        ("mem_swappiness", swappiness.is_some()),
        ("oom_kill_disable", no_oom_kill),
    ] {
        if asked && !v1 {
            warnings.push(format!(
                "service `{}`: {key} exists only with cgroup v1; not applied on this host",
                service.name
            ));
        }
    }
    if v1 {
        if let Some(s) = swappiness {
            memory_json["swappiness"] = s.min(100).into();
        }
        if no_oom_kill {
            memory_json["disableOOMKiller"] = true.into();
        }
    }
    let mut cpu_json = json!({});
    if let Some(s) = service.cpu_shares {
        cpu_json["shares"] = s.into();
    }
    if let Some(q) = quota {
        cpu_json["quota"] = q.into();
    }
    if let Some(p) = period {
        cpu_json["period"] = p.into();
    }
    if let Some(c) = &service.cpuset {
        cpu_json["cpus"] = c.clone().into();
    }

    // Mounts, in the order they are made.
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        if host_ipc {
            // The host's shared memory, as its IPC namespace is shared.
            json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                   "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]})
        } else {
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                   "options": ["nosuid", "noexec", "nodev", "mode=1777",
                               format!("size={}", service.shm_size.map(|b| b.0).unwrap_or(64 << 20))]})
        },
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev",
                           if service.privileged { "rw" } else { "ro" }]}),
    ];
    for (file, target) in [
        ("hosts", "/etc/hosts"),
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        mounts.push(json!({"destination": target, "type": "bind",
            "source": dir.join(file), "options": ["rbind", "rprivate"]}));
    }
    for (target, opts) in &service.tmpfs {
        let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
        options.extend(opts.split(',').filter(|o| !o.is_empty()).map(String::from));
        mounts.push(
            json!({"destination": target, "type": "tmpfs", "source": "tmpfs",
            "options": options}),
        );
    }
    for b in &ctx.binds {
        mounts.push(
            json!({"destination": b.target, "type": "bind", "source": b.source,
            "options": ["rbind", if b.read_only { "ro" } else { "rw" },
                        b.propagation.as_deref().unwrap_or("rprivate")]}),
        );
    }

    let mut devices: Vec<serde_json::Value> = if service.privileged {
        Vec::new()
    } else {
        crate::runtime::cgroup::DEFAULT_DEVICE_RULES
            .iter()
            .map(|(allow, typ, major, minor, access)| {
                json!({"allow": allow, "type": typ.to_string(), "major": major,
                       "minor": minor, "access": access})
            })
            .collect()
    };

    // `devices:` entries: the node bound in, and allowed in the cgroup.
    let mut device_mounts = Vec::new();
    if let Some(value) = service.extra.get("devices") {
        for (host, target, perms) in parse_devices(value)? {
            let (kind, major, minor) = device_numbers(&host)?;
            devices.push(json!({"allow": true, "type": kind, "major": major,
                                "minor": minor, "access": perms}));
            device_mounts.push(json!({"destination": target, "type": "bind",
                                      "source": host, "options": ["bind"]}));
        }
    }
    mounts.extend(device_mounts);
    // `device_cgroup_rules`: more devices allowed, by number (`c 1:3 mr`).
    if let Some(rules) = service.extra.get("device_cgroup_rules") {
        for rule in rules.as_array().into_iter().flatten() {
            let text = rule.as_str().unwrap_or_default();
            let (typ, major, minor, access) = parse_device_rule(text)
                .ok_or_else(|| ContainerError::BadDeviceRule(text.into()))?;
            devices.push(json!({"allow": true, "type": typ, "major": major,
                                "minor": minor, "access": access}));
        }
    }

    let mut namespaces: Vec<serde_json::Value> = Vec::new();
    for (kind, joined) in [
        ("pid", ctx.joins.pid),
        ("ipc", ctx.joins.ipc),
        ("uts", None),
    ] {
        match joined {
            Some(pid) => {
                namespaces.push(json!({"type": kind, "path": format!("/proc/{pid}/ns/{kind}")}))
            }
            None if host_namespace(service, kind) => {}
            None => namespaces.push(json!({ "type": kind })),
        }
    }
    namespaces.push(json!({"type": "mount"}));
    warnings.extend(namespace_warnings(service));
    if ctx.joins.ipc.is_some() {
        warnings.push(format!(
            "service `{}`: its IPC namespace (System V IPC, message queues) is shared, but not /dev/shm, which stays its own",
            service.name
        ));
    }
    warnings.extend(unapplied_keys(service));
    match &ctx.network {
        NetworkMode::New | NetworkMode::None => namespaces.push(json!({"type": "network"})),
        NetworkMode::Join(path) => namespaces.push(json!({"type": "network", "path": path})),
        NetworkMode::Host => {}
    }

    // A capability stack itself lacks cannot be granted (the kernel refuses
    // the whole set): `privileged` and `ALL` mean every one stack has, as
    // they mean the host's with docker; one named in cap_add is a warning.
    let own = own_capabilities();
    let lacking: Vec<&String> = caps
        .iter()
        // Without any (not root): nothing can start; leave the set as asked.
        .filter(|c| own != 0 && security::cap_number(c).is_some_and(|n| own & (1 << n) == 0))
        .collect();
    for c in &lacking {
        let short = c.trim_start_matches("CAP_");
        if service
            .cap_add
            .iter()
            .any(|a| a.trim_start_matches("CAP_").eq_ignore_ascii_case(short))
        {
            warnings.push(format!(
                "service `{}`: {c} is left out: stack itself does not have it here",
                service.name
            ));
        }
    }
    let cap_list: Vec<&String> = caps.iter().filter(|c| !lacking.contains(c)).collect();
    let mut process = json!({
        "terminal": service.tty,
        "user": {"uid": uid, "gid": gid},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": cap_list, "effective": cap_list, "permitted": cap_list,
        },
        "noNewPrivileges": sec.no_new_privileges,
        "rlimits": rlimits.iter().map(|r| json!({"type": r.kind, "soft": r.soft, "hard": r.hard}))
            .collect::<Vec<_>>(),
    });
    if let Some(o) = service.oom_score_adj {
        process["oomScoreAdj"] = o.into();
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": format!("stack/{}/{}", ctx.project, ctx.id),
        "resources": {"memory": memory_json, "cpu": cpu_json, "pids": {"limit": pids},
                      "devices": devices, "blockIO": block_io(service, &mut warnings)?},
        "sysctl": service.sysctls,
    });
    if service.privileged {
        // As docker: every device node of the host, made in the container's /dev.
        linux["devices"] = json!(host_devices(Path::new("/dev")));
    } else {
        linux["maskedPaths"] = json!(security::MASKED_PATHS);
        linux["readonlyPaths"] = json!(security::READONLY_PATHS);
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = serde_json::to_value(s).map_err(ContainerError::json)?;
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": process,
        "root": {"path": dir.join("rootfs"), "readonly": service.read_only},
        "mounts": mounts,
        "linux": linux,
        "annotations": {"io.stack.project": ctx.project, "io.stack.service": service.name},
    });
    if !host_uts {
        spec["hostname"] = hostname.clone().into();
        if let Some(d) = &service.domainname {
            spec["domainname"] = d.clone().into();
        }
    }
    let spec: Spec = serde_json::from_value(spec).map_err(ContainerError::json)?;

    let stop_signal = match service.stop_signal.as_ref().or(image.stop_signal.as_ref()) {
        Some(s) => parse_signal(s)?,
        None => libc::SIGTERM,
    };
    Ok(ContainerConfig {
        spec,
        layers: ctx.layers.clone(),
        log: log_options(service)?,
        stop_signal,
        user: named_user,
        group_add: service.group_add.clone(),
        init: service.init.unwrap_or(false),
        stdin_open: service.stdin_open,
        warnings,
        hosts: ctx.hosts.clone(),
        resolv_conf: ctx.resolv_conf.clone(),
        hostname_file: format!("{hostname}\n"),
        labels: service.labels.clone(),
        on_exit: Vec::new(),
    })
}

/// `devices:` as (host path, container path, permissions), from the short
/// form `HOST[:CONTAINER[:PERMISSIONS]]` or the long one
/// `{source, target, permissions}`.
pub fn parse_devices(
    value: &serde_json::Value,
) -> Result<Vec<(String, String, String)>, ContainerError> {
    let bad = |v: &serde_json::Value| ContainerError::BadDevice(v.to_string());
    let mut out = Vec::new();
    for entry in value.as_array().ok_or_else(|| bad(value))? {
        let (host, target, perms) = match entry {
            serde_json::Value::String(s) => {
                let mut parts = s.splitn(3, ':');
                let host = parts.next().unwrap_or_default().to_string();
                let target = parts.next().map(str::to_string);
                let perms = parts.next().map(str::to_string);
                (host, target, perms)
            }
            serde_json::Value::Object(o) => (
                o.get("source")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
                o.get("target").and_then(|v| v.as_str()).map(str::to_string),
                o.get("permissions")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            ),
            other => return Err(bad(other)),
        };
        let perms = perms.unwrap_or_else(|| "rwm".into());
        if !host.starts_with('/') || !perms.chars().all(|c| "rwm".contains(c)) {
            return Err(bad(entry));
        }
        let target = target.unwrap_or_else(|| host.clone());
        out.push((host, target, perms));
    }
    Ok(out)
}

/// The type (`c` or `b`), major and minor of a host device node.
/// The device nodes under `dev` (the host's /dev), as OCI `linux.devices`
/// entries for a privileged container. The container's own /dev/pts,
/// /dev/shm and /dev/mqueue stay its own; symbolic links are skipped.
fn host_devices(dev: &Path) -> Vec<serde_json::Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut todo = vec![dev.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                let own = ["pts", "shm", "mqueue"].map(|d| dev.join(d));
                if !own.contains(&path) {
                    todo.push(path);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            let rdev = meta.rdev();
            out.push(json!({
                "path": path, "type": kind,
                "major": rustix::fs::major(rdev), "minor": rustix::fs::minor(rdev),
                "fileMode": meta.mode() & 0o7777, "uid": meta.uid(), "gid": meta.gid(),
            }));
        }
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

/// `blkio_config` as the OCI spec's `blockIO`: the weight, and per-device
/// limits with each device path turned into its numbers. What this host's
/// cgroups cannot do is a warning, not a silent difference.
fn block_io(
    service: &Service,
    warnings: &mut Vec<String>,
) -> Result<serde_json::Value, ContainerError> {
    let Some(config) = service.extra.get("blkio_config") else {
        return Ok(json!({}));
    };
    let hierarchy = crate::runtime::cgroup::Hierarchy::cached().ok();
    let mut out = json!({});
    if let Some(w) = config.get("weight").and_then(|w| w.as_u64()) {
        if hierarchy
            .as_ref()
            .is_some_and(crate::runtime::cgroup::block_weight_supported)
        {
            out["weight"] = w.into();
        } else {
            warnings.push(format!(
                "service `{}`: blkio_config.weight needs the CFQ I/O scheduler (cgroup v1) or a delegated io controller (v2), which this host lacks; not applied",
                service.name
            ));
        }
    }
    if config.get("weight_device").is_some() {
        warnings.push(format!(
            "service `{}`: blkio_config.weight_device is not applied by stack",
            service.name
        ));
    }
    let throttles = [
        ("device_read_bps", "throttleReadBpsDevice", true),
        ("device_write_bps", "throttleWriteBpsDevice", true),
        ("device_read_iops", "throttleReadIOPSDevice", false),
        ("device_write_iops", "throttleWriteIOPSDevice", false),
    ];
    let mut any = false;
    for (key, oci, bytes) in throttles {
        let Some(list) = config.get(key) else {
            continue;
        };
        let bad = || ContainerError::BadBlkio {
            key,
            value: list.to_string(),
        };
        let mut entries = Vec::new();
        for entry in list.as_array().ok_or_else(bad)? {
            let path = entry.get("path").and_then(|p| p.as_str()).ok_or_else(bad)?;
            let rate = match entry.get("rate") {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) if bytes => parse_size(s),
                Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(bad)?;
            let (kind, major, minor) = device_numbers(path).map_err(|_| bad())?;
            if kind != "b" {
                return Err(bad());
            }
            entries.push(json!({"major": major, "minor": minor, "rate": rate}));
        }
        any |= !entries.is_empty();
        out[oci] = entries.into();
    }
    if any
        && !hierarchy
            .as_ref()
            .is_some_and(crate::runtime::cgroup::block_throttle_supported)
    {
        warnings.push(format!(
            "service `{}`: blkio_config device limits need the blkio (v1) or io (v2) cgroup controller, which this host lacks; not applied",
            service.name
        ));
    }
    Ok(out)
}

/// One `device_cgroup_rules` entry: `TYPE MAJOR:MINOR ACCESS`, with `*`
/// for any number, TYPE one of a, b, c and ACCESS letters of rwm.
fn parse_device_rule(text: &str) -> Option<(String, Option<i64>, Option<i64>, String)> {
    let mut parts = text.split_whitespace();
    let typ = parts.next().filter(|t| matches!(*t, "a" | "b" | "c"))?;
    let (major, minor) = parts.next()?.split_once(':')?;
    let access = parts
        .next()
        .filter(|a| !a.is_empty() && a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')))?;
    if parts.next().is_some() {
        return None;
    }
    let number = |n: &str| -> Option<Option<i64>> {
        if n == "*" {
            Some(None)
        } else {
            n.parse().ok().map(Some)
        }
    };
    Some((typ.into(), number(major)?, number(minor)?, access.into()))
}

fn device_numbers(path: &str) -> Result<(&'static str, u32, u32), ContainerError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|_| ContainerError::BadDevice(path.into()))?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(ContainerError::BadDevice(path.into()));
    };
    let rdev = meta.rdev();
    Ok((kind, rustix::fs::major(rdev), rustix::fs::minor(rdev)))
}

/// `logging.options.max-size` (`10m`, `1g`, bytes) and `max-file`.
fn log_options(service: &Service) -> Result<LogOptions, ContainerError> {
    let opts = service
        .extra
        .get("logging")
        .and_then(|l| l.get("options"))
        .cloned()
        .unwrap_or_default();
    let text = |k: &str| {
        opts.get(k).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let mut out = LogOptions::default();
    if let Some(s) = text("max-size") {
        out.max_size = Some(parse_size(&s).ok_or_else(|| ContainerError::BadLogOption {
            key: "max-size",
            value: s.clone(),
        })?);
    }
    if let Some(s) = text("max-file") {
        out.max_file =
            s.parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ContainerError::BadLogOption {
                    key: "max-file",
                    value: s,
                })?;
    }
    Ok(out)
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// The set of capabilities a built spec grants (for tests and `inspect`).
pub fn granted_caps(spec: &Spec) -> BTreeSet<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| {
            b.iter()
                .map(|c| format!("CAP_{}", c.to_string().trim_start_matches("CAP_")))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::{Bytes, Ulimit};

    fn svc() -> Service {
        Service {
            name: "web".into(),
            ..Service::default()
        }
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into(), "--port=80".into()]),
            env: vec!["PATH=/opt/bin".into(), "LANG=C".into()],
            ..ImageConfig::default()
        }
    }

    fn ctx() -> BuildContext {
        BuildContext {
            id: "abc123def4567890".into(),
            project: "demo".into(),
            layers: vec!["/l/1".into()],
            network: NetworkMode::New,
            hosts: String::new(),
            resolv_conf: String::new(),
            binds: vec![],
            project_dir: "/".into(),
            joins: Joins::default(),
        }
    }

    #[test]
    fn command_replaces_cmd_and_entrypoint_resets_both() {
        let mut s = svc();
        assert_eq!(
            combine_command(&s, &image()),
            ["/entry", "serve", "--port=80"]
        );
        s.command = Some(vec!["x".into()]);
        assert_eq!(combine_command(&s, &image()), ["/entry", "x"]);
        s.command = None;
        s.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
        assert_eq!(combine_command(&s, &image()), ["/bin/sh", "-c"]);
        s.entrypoint = Some(vec![]);
        s.command = Some(vec!["true".into()]);
        assert_eq!(combine_command(&s, &image()), ["true"]);
    }

    #[test]
    fn environment_layers_image_then_file_and_drops_unset() {
        let mut s = svc();
        s.environment.insert("LANG".into(), Some("de_DE".into()));
        s.environment.insert("UNSET".into(), None);
        let env = environment(&s, &image(), "h");
        assert_eq!(env, ["PATH=/opt/bin", "HOSTNAME=h", "LANG=de_DE"]);
    }

    #[test]
    fn rlimits_are_clamped_to_the_callers_hard_limits() {
        let mut u = BTreeMap::new();
        u.insert(
            "nofile".into(),
            Ulimit {
                soft: 1024,
                hard: 1_000_000,
            },
        );
        u.insert("core".into(), Ulimit { soft: -1, hard: -1 });
        let r = clamp_rlimits(&u, |res| {
            if res == libc::RLIMIT_NOFILE {
                20_000
            } else {
                u64::MAX
            }
        })
        .unwrap();
        assert_eq!(
            r[0],
            Rlimit {
                kind: "RLIMIT_CORE",
                soft: u64::MAX,
                hard: u64::MAX,
                clamped: false
            }
        );
        assert_eq!(
            r[1],
            Rlimit {
                kind: "RLIMIT_NOFILE",
                soft: 1024,
                hard: 20_000,
                clamped: true
            }
        );
        u.insert("bogus".into(), Ulimit { soft: 1, hard: 1 });
        assert!(clamp_rlimits(&u, |_| 1).is_err());
    }

    #[test]
    fn signals_parse_in_every_spelling() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        assert!(check_sysctl("net.ipv4.ip_forward", true, true).is_ok());
        assert!(check_sysctl("net.ipv4.ip_forward", false, true).is_err());
        assert!(check_sysctl("kernel.shmmax", false, true).is_ok());
        // The host's IPC namespace is the host's to tune.
        assert!(check_sysctl("kernel.shmmax", true, false).is_err());
        assert!(check_sysctl("kernel.panic", true, true).is_err());
    }

    #[test]
    fn a_service_becomes_a_spec_with_dockers_defaults() {
        let mut s = svc();
        s.mem_limit = Some(Bytes(64 << 20));
        s.cpus = Some(0.5);
        s.user = Some("app".into());
        s.stop_signal = Some("SIGINT".into());
        s.read_only = true;
        s.ulimits.insert(
            "nofile".into(),
            Ulimit {
                soft: 1,
                hard: i64::MAX,
            },
        );
        let c = container_config(&s, &image(), &ctx(), Path::new("/r")).unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("RLIMIT_NOFILE lowered")),
            "{:?}",
            c.warnings
        );
        let spec = &c.spec;
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap()[0], "/entry");
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.stop_signal, libc::SIGINT);
        assert_eq!(spec.hostname().as_deref(), Some("abc123def456"));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("stack/demo/abc123def4567890"))
        );
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(res.pids().as_ref().unwrap().limit(), DEFAULT_PIDS_LIMIT);
        assert!(linux.seccomp().is_some());
        assert_eq!(
            linux.masked_paths().as_ref().unwrap().len(),
            security::MASKED_PATHS.len()
        );
        let caps = granted_caps(spec);
        assert_eq!(caps.len(), security::DEFAULT_CAPS.len());
        let ns: Vec<String> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| format!("{:?}", n.typ()))
            .collect();
        assert_eq!(ns.len(), 5);
    }

    #[test]
    fn host_pid_ipc_and_uts_namespaces_and_unapplied_keys() {
        let mut s = svc();
        s.command = Some(vec!["x".into()]);
        for kind in ["pid", "ipc", "uts"] {
            s.extra.insert(kind.into(), "host".into());
        }
        s.hostname = Some("mine".into());
        let cfg = container_config(&s, &image(), &ctx(), Path::new("/r")).unwrap();
        let linux = cfg.spec.linux().as_ref().unwrap();
        let ns: Vec<String> = linux
            .namespaces()
            .iter()
            .flatten()
            .map(|n| format!("{:?}", n.typ()))
            .collect();
        assert_eq!(ns, ["Mount", "Network"]);
        // The host's name is not the container's to set.
        assert_eq!(cfg.spec.hostname(), &None);
        let shm = cfg
            .spec
            .mounts()
            .iter()
            .flatten()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .unwrap();
        assert_eq!(shm.source().as_deref(), Some(Path::new("/dev/shm")));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // IPC sysctls belong to the host's namespace now.
        s.sysctls.insert("kernel.shmmax".into(), "1".into());
        assert!(container_config(&s, &image(), &ctx(), Path::new("/r")).is_err());

        // Joining another container's, and keys stack keeps but does not
        // apply, are warnings; extensions are not.
        let mut s = svc();
        s.command = Some(vec!["x".into()]);
        s.extra.insert("uts".into(), "service:db".into());
        s.extra
            .insert("cgroup_parent".into(), serde_json::json!("mine"));
        s.extra.insert("x-mine".into(), "1".into());
        let cfg = container_config(&s, &image(), &ctx(), Path::new("/r")).unwrap();
        let linux = cfg.spec.linux().as_ref().unwrap();
        assert_eq!(linux.namespaces().as_ref().unwrap().len(), 5);
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("`uts: service:db`"));
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("`cgroup_parent` is not applied"))
        );
    }

    #[test]
    fn device_rules_parse_as_docker_writes_them() {
        assert_eq!(
            parse_device_rule("c 1:3 mr"),
            Some(("c".into(), Some(1), Some(3), "mr".into()))
        );
        assert_eq!(
            parse_device_rule("a *:* rwm"),
            Some(("a".into(), None, None, "rwm".into()))
        );
        for bad in [
            "x 1:3 r",
            "c 1 r",
            "c 1:3 rx",
            "c 1:3",
            "c a:3 r",
            "c 1:3 r extra",
        ] {
            assert_eq!(parse_device_rule(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_network_privileged_and_unconfined() {
        let mut s = svc();
        s.privileged = true;
        let mut c = ctx();
        c.network = NetworkMode::Host;
        let cfg = container_config(&s, &image(), &c, Path::new("/r")).unwrap();
        let linux = cfg.spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none() && linux.masked_paths().is_none());
        assert_eq!(linux.namespaces().as_ref().unwrap().len(), 4);
        // Every capability stack itself has (all of them when it has them all).
        let own = own_capabilities();
        let expected = (0..security::CAPABILITIES.len())
            .filter(|n| own == 0 || own & (1 << n) != 0)
            .count();
        assert_eq!(granted_caps(&cfg.spec).len(), expected);
        let mut s = svc();
        s.security_opt = vec![
            "seccomp=unconfined".into(),
            "no-new-privileges:false".into(),
        ];
        let cfg = container_config(&s, &image(), &ctx(), Path::new("/r")).unwrap();
        assert!(cfg.spec.linux().as_ref().unwrap().seccomp().is_none());
        assert_eq!(
            cfg.spec.process().as_ref().unwrap().no_new_privileges(),
            Some(false)
        );
    }

    #[test]
    fn bad_inputs_are_refused_with_reasons() {
        let mut s = svc();
        s.entrypoint = Some(vec![]);
        let mut i = image();
        i.entrypoint = None;
        assert!(matches!(
            container_config(&s, &i, &ctx(), Path::new("/r")),
            Err(ContainerError::NoCommand(_))
        ));
        let mut c = ctx();
        c.id = "../x".into();
        assert!(container_config(&svc(), &image(), &c, Path::new("/r")).is_err());
    }

    #[test]
    fn devices_parse_in_both_forms() {
        let v = serde_json::json!(["/dev/null:/dev/mynull:r", {"source": "/dev/zero", "target": "/dev/z"}, "/dev/full"]);
        assert_eq!(
            parse_devices(&v).unwrap(),
            [
                (
                    "/dev/null".to_string(),
                    "/dev/mynull".to_string(),
                    "r".to_string()
                ),
                ("/dev/zero".into(), "/dev/z".into(), "rwm".into()),
                ("/dev/full".into(), "/dev/full".into(), "rwm".into()),
            ]
        );
        assert!(parse_devices(&serde_json::json!(["relative"])).is_err());
        assert!(parse_devices(&serde_json::json!(["/dev/null:/x:rx"])).is_err());
        assert_eq!(device_numbers("/dev/null").unwrap(), ("c", 1, 3));
        assert!(device_numbers("/etc/passwd").is_err());
    }

    #[test]
    fn an_image_store_config_converts() {
        let stored = crate::runtime::image::config::ImageConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["A=1".into()]),
            stop_signal: Some("SIGQUIT".into()),
            ..Default::default()
        };
        let c = ImageConfig::from(&stored);
        assert_eq!(c.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(c.env, ["A=1"]);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    }

    #[test]
    fn log_sizes_parse() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1x"), None);
    }
}
