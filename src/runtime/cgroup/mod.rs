//! Control groups: the kernel's resource limits and accounting, v1 and v2.
//!
//! A cgroup is a directory in a special filesystem; a process joins it by
//! writing its pid into the directory's `cgroup.procs`, and limits are the
//! contents of control files beside it (`memory.limit_in_bytes`, `pids.max`).
//! There are two generations:
//!
//! - **v1**: one hierarchy per controller, each mounted on its own
//!   (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/pids`, ...), so a container
//!   has one directory per controller, all with the same relative path.
//! - **v2**: one unified hierarchy (`/sys/fs/cgroup` is `cgroup2`); a
//!   controller is available in a child only when the parent lists it in
//!   `cgroup.subtree_control`, and processes may live only in leaves.
//!
//! Which one a host uses is detected at run time from `/proc/self/mountinfo`:
//! a `cgroup2` filesystem at `/sys/fs/cgroup` means v2; otherwise the v1
//! controller mounts are used. A hybrid host (v1 controllers plus an empty
//! `cgroup2` at `/sys/fs/cgroup/unified`, as on our CI machines) is v1.
//!
//! stack's cgroups live at `stack/<project>/<container>` below each
//! hierarchy's root and nowhere else: nothing here writes outside a `stack/`
//! directory, except reading the root's `cgroup.controllers` on v2.
//!
//! The limits are pure functions of the OCI resources ([`v1_settings`],
//! [`v2_settings`]) so the unit conversions (shares to weight, swap
//! accounting) are tested without root; all file operations go through
//! [`crate::runtime::sys::Syscalls`].

pub mod devices;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::runtime::sys::Syscalls;

/// What went wrong with a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "cannot {action} the cgroup file {path}: {source}; check that stack runs as root and that the cgroup filesystem is mounted read-write"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "no cgroup filesystem found in /proc/self/mountinfo; mount cgroup2 on /sys/fs/cgroup (or the v1 controllers below it)"
    )]
    NotMounted,
    #[error(
        "the cgroup path `{0}` must be relative and stay below `stack/`; it is built by stack, so this is a bug"
    )]
    BadPath(String),
    #[error(
        "the cgroup {path} still has processes after they were killed; wait a moment and remove the container again"
    )]
    Busy { path: PathBuf },
}

impl CgroupError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
        move |source| CgroupError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The controllers stack uses on v1, in the order they are created.
/// `cpuset` is added only when the container asks for a cpuset, because a
/// v1 cpuset cgroup needs `cpuset.cpus` and `cpuset.mems` copied down from
/// its parent before any process can join it.
const V1_CONTROLLERS: &[&str] = &[
    "memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio",
];

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Controller name to its mount point.
    V1(BTreeMap<String, PathBuf>),
    /// The mount point of the unified hierarchy.
    V2(PathBuf),
}

impl Hierarchy {
    /// The layout of this host, read once per process: cgroup file systems
    /// are mounted at boot, and reading and parsing mountinfo for every
    /// container's state (observe of a stack, each watcher round) showed.
    pub fn cached() -> Result<Hierarchy, CgroupError> {
        static CACHE: std::sync::OnceLock<Hierarchy> = std::sync::OnceLock::new();
        if let Some(h) = CACHE.get() {
            return Ok(h.clone());
        }
        let h = Hierarchy::detect()?;
        Ok(CACHE.get_or_init(|| h).clone())
    }

    /// Detects the layout of this host.
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(CgroupError::io("read", Path::new("/proc/self/mountinfo")))?;
        Hierarchy::from_mountinfo(&text).ok_or(CgroupError::NotMounted)
    }

    /// Parses `/proc/self/mountinfo` (see proc(5): fields, then ` - `, then
    /// filesystem type, source and super options).
    pub fn from_mountinfo(text: &str) -> Option<Hierarchy> {
        let mut v1 = BTreeMap::new();
        let mut v2 = None;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split(' ').nth(4).unwrap_or_default();
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let options = right.nth(1).unwrap_or_default();
            match fstype {
                "cgroup2" if mount_point == "/sys/fs/cgroup" => {
                    v2 = Some(PathBuf::from(mount_point));
                }
                "cgroup" => {
                    for opt in options.split(',') {
                        if matches!(
                            opt,
                            "memory"
                                | "pids"
                                | "cpu"
                                | "cpuacct"
                                | "cpuset"
                                | "freezer"
                                | "devices"
                                | "blkio"
                        ) {
                            v1.entry(opt.to_string())
                                .or_insert_with(|| PathBuf::from(mount_point));
                        }
                    }
                }
                _ => {}
            }
        }
        match v2 {
            Some(root) => Some(Hierarchy::V2(root)),
            None if !v1.is_empty() => Some(Hierarchy::V1(v1)),
            None => None,
        }
    }
}

/// The limits of one container, already in kernel units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes; `None`: unlimited.
    pub memory: Option<i64>,
    /// Memory plus swap, bytes (Docker's `memswap_limit`); -1: unlimited swap.
    pub memory_swap: Option<i64>,
    /// Soft limit, bytes.
    pub memory_reservation: Option<i64>,
    /// Relative CPU weight, Docker's 2..=262144 scale.
    pub cpu_shares: Option<u64>,
    /// Microseconds per period; -1 or `None`: unlimited.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks; `None` or a value <= 0: unlimited.
    pub pids: Option<i64>,
    /// Device access rules in order, as (allow, `type major:minor access`);
    /// `None`: no restriction (privileged containers).
    pub devices: Option<Vec<(bool, String)>>,
    /// 0..=100 (`mem_swappiness`), v1 only.
    pub swappiness: Option<u64>,
    /// No OOM kills: the container waits for memory instead
    /// (`oom_kill_disable`), v1 only.
    pub oom_kill_disable: bool,
    /// Relative block I/O weight, 10..=1000 (`blkio_config.weight`).
    pub block_weight: Option<u16>,
    /// Block I/O limits per device (`blkio_config.device_read_bps`, ...).
    pub block_throttles: Vec<Throttle>,
}

/// One device's block I/O limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub kind: ThrottleKind,
    pub major: i64,
    pub minor: i64,
    /// Bytes or operations per second.
    pub rate: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    ReadBps,
    WriteBps,
    ReadIops,
    WriteIops,
}

impl ThrottleKind {
    fn v1_file(self) -> &'static str {
        match self {
            ThrottleKind::ReadBps => "blkio.throttle.read_bps_device",
            ThrottleKind::WriteBps => "blkio.throttle.write_bps_device",
            ThrottleKind::ReadIops => "blkio.throttle.read_iops_device",
            ThrottleKind::WriteIops => "blkio.throttle.write_iops_device",
        }
    }

    fn v2_key(self) -> &'static str {
        match self {
            ThrottleKind::ReadBps => "rbps",
            ThrottleKind::WriteBps => "wbps",
            ThrottleKind::ReadIops => "riops",
            ThrottleKind::WriteIops => "wiops",
        }
    }
}

impl Limits {
    /// Reads the OCI `linux.resources`.
    pub fn from_oci(res: &LinuxResources) -> Limits {
        let mut l = Limits::default();
        if let Some(m) = res.memory() {
            l.memory = m.limit();
            l.memory_swap = m.swap();
            l.memory_reservation = m.reservation();
            l.swappiness = m.swappiness();
            l.oom_kill_disable = m.disable_oom_killer().unwrap_or(false);
        }
        if let Some(c) = res.cpu() {
            l.cpu_shares = c.shares();
            l.cpu_quota = c.quota();
            l.cpu_period = c.period();
            l.cpuset_cpus = c.cpus().clone();
            l.cpuset_mems = c.mems().clone();
        }
        if let Some(p) = res.pids() {
            l.pids = Some(p.limit());
        }
        if let Some(b) = res.block_io() {
            l.block_weight = b.weight();
            let lists = [
                (ThrottleKind::ReadBps, b.throttle_read_bps_device()),
                (ThrottleKind::WriteBps, b.throttle_write_bps_device()),
                (ThrottleKind::ReadIops, b.throttle_read_iops_device()),
                (ThrottleKind::WriteIops, b.throttle_write_iops_device()),
            ];
            for (kind, list) in lists {
                for d in list.iter().flatten() {
                    l.block_throttles.push(Throttle {
                        kind,
                        major: d.major(),
                        minor: d.minor(),
                        rate: d.rate(),
                    });
                }
            }
        }
        if let Some(devices) = res.devices() {
            let rule = |d: &oci_spec::runtime::LinuxDeviceCgroup| {
                use oci_spec::runtime::LinuxDeviceType as T;
                let typ = match d.typ().unwrap_or(T::A) {
                    T::A => "a",
                    T::B => "b",
                    T::C | T::U => "c",
                    T::P => "p",
                };
                let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
                let access = d.access().clone().unwrap_or_else(|| "rwm".into());
                format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
            };
            l.devices = Some(devices.iter().map(|d| (d.allow(), rule(d))).collect());
        }
        l
    }
}

/// One v1 control file to write: (controller, file, value), in order.
pub fn v1_settings(l: &Limits) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = l.memory {
        out.push(("memory", "memory.limit_in_bytes", m.to_string()));
        // The kernel checks memsw >= limit at every write, so memsw comes
        // after the limit. Docker's default swap is as much again as memory.
        let swap = l.memory_swap.unwrap_or(m.saturating_mul(2));
        out.push(("memory", "memory.memsw.limit_in_bytes", swap.to_string()));
    } else if let Some(s) = l.memory_swap.filter(|s| *s > 0) {
        out.push(("memory", "memory.memsw.limit_in_bytes", s.to_string()));
    }
    if let Some(r) = l.memory_reservation {
        out.push(("memory", "memory.soft_limit_in_bytes", r.to_string()));
    }
    if let Some(s) = l.swappiness {
        out.push(("memory", "memory.swappiness", s.to_string()));
    }
    if l.oom_kill_disable {
        out.push(("memory", "memory.oom_control", "1".to_string()));
    }
    if let Some(s) = l.cpu_shares {
        out.push(("cpu", "cpu.shares", s.to_string()));
    }
    // The period first: a quota is checked against the current period.
    if let Some(p) = l.cpu_period {
        out.push(("cpu", "cpu.cfs_period_us", p.to_string()));
    }
    if let Some(q) = l.cpu_quota {
        out.push(("cpu", "cpu.cfs_quota_us", q.to_string()));
    }
    if let Some(c) = &l.cpuset_cpus {
        out.push(("cpuset", "cpuset.cpus", c.clone()));
    }
    if let Some(m) = &l.cpuset_mems {
        out.push(("cpuset", "cpuset.mems", m.clone()));
    }
    out.push(("pids", "pids.max", pids_value(l.pids)));
    if let Some(w) = l.block_weight {
        out.push(("blkio", "blkio.weight", w.to_string()));
    }
    for t in &l.block_throttles {
        out.push((
            "blkio",
            t.kind.v1_file(),
            format!("{}:{} {}", t.major, t.minor, t.rate),
        ));
    }
    for (allow, rule) in l.devices.iter().flatten() {
        let file = if *allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        out.push(("devices", file, rule.clone()));
    }
    out
}

/// (allow, type, major, minor, access); `None` numbers mean any.
pub type DeviceRule = (bool, char, Option<i64>, Option<i64>, &'static str);

/// Docker's default device rules: nothing but the standard nodes may be
/// read or written (creating nodes is allowed, using them is not), so
/// CAP_MKNOD cannot open the host's disks.
pub const DEFAULT_DEVICE_RULES: &[DeviceRule] = &[
    (false, 'a', None, None, "rwm"),
    (true, 'c', None, None, "m"),
    (true, 'b', None, None, "m"),
    (true, 'c', Some(1), Some(3), "rwm"),
    (true, 'c', Some(1), Some(5), "rwm"),
    (true, 'c', Some(1), Some(7), "rwm"),
    (true, 'c', Some(1), Some(8), "rwm"),
    (true, 'c', Some(1), Some(9), "rwm"),
    (true, 'c', Some(5), Some(0), "rwm"),
    (true, 'c', Some(5), Some(1), "rwm"),
    (true, 'c', Some(5), Some(2), "rwm"),
    (true, 'c', Some(136), None, "rwm"),
    (true, 'c', Some(10), Some(200), "rwm"),
];

/// One v2 control file to write: (file, value), in order.
pub fn v2_settings(l: &Limits) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = l.memory {
        out.push(("memory.max", m.to_string()));
        // v2 accounts swap on its own: memory.swap.max is swap only,
        // Docker's memswap is memory plus swap.
        match l.memory_swap {
            Some(-1) => out.push(("memory.swap.max", "max".to_string())),
            Some(s) => out.push(("memory.swap.max", (s - m).max(0).to_string())),
            None => out.push(("memory.swap.max", m.to_string())),
        }
    }
    if let Some(r) = l.memory_reservation {
        out.push(("memory.low", r.to_string()));
    }
    if let Some(s) = l.cpu_shares {
        out.push(("cpu.weight", shares_to_weight(s).to_string()));
    }
    if l.cpu_quota.is_some() || l.cpu_period.is_some() {
        let period = l.cpu_period.unwrap_or(100_000);
        let quota = match l.cpu_quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        out.push(("cpu.max", format!("{quota} {period}")));
    }
    if let Some(c) = &l.cpuset_cpus {
        out.push(("cpuset.cpus", c.clone()));
    }
    if let Some(m) = &l.cpuset_mems {
        out.push(("cpuset.mems", m.clone()));
    }
    out.push(("pids.max", pids_value(l.pids)));
    if let Some(w) = l.block_weight {
        out.push(("io.weight", format!("default {w}")));
    }
    // One line per device: io.max takes every limit of a device at once.
    let mut devices: Vec<(i64, i64)> = l
        .block_throttles
        .iter()
        .map(|t| (t.major, t.minor))
        .collect();
    devices.sort();
    devices.dedup();
    for (major, minor) in devices {
        let limits: Vec<String> = l
            .block_throttles
            .iter()
            .filter(|t| (t.major, t.minor) == (major, minor))
            .map(|t| format!("{}={}", t.kind.v2_key(), t.rate))
            .collect();
        out.push(("io.max", format!("{major}:{minor} {}", limits.join(" "))));
    }
    out
}

/// Whether this host's cgroups can limit a container's block I/O per
/// device: v1's blkio controller, or v2's delegated io controller.
pub fn block_throttle_supported(h: &Hierarchy) -> bool {
    match h {
        Hierarchy::V1(m) => m.contains_key("blkio"),
        Hierarchy::V2(_) => block_weight_supported(h),
    }
}

/// Whether this host's cgroups can weigh a container's block I/O: v1's
/// `blkio.weight` exists only under the CFQ scheduler, v2's `io.weight`
/// only where the io controller is delegated.
pub fn block_weight_supported(h: &Hierarchy) -> bool {
    match h {
        Hierarchy::V1(m) => m
            .get("blkio")
            .is_some_and(|p| p.join("blkio.weight").exists()),
        Hierarchy::V2(root) => std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "io")),
    }
}

fn pids_value(p: Option<i64>) -> String {
    match p {
        Some(n) if n > 0 => n.to_string(),
        _ => "max".to_string(),
    }
}

/// Docker's cpu shares (2..=262144, default 1024) to cgroup v2's cpu.weight
/// (1..=10000, default 100), the linear map runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// What a container used, for `stack stats` and `stack ps`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Bytes in use, page cache that can be dropped excluded.
    pub memory: u64,
    pub memory_limit: Option<u64>,
    /// CPU time consumed, nanoseconds.
    pub cpu_nanos: u64,
    pub pids: u64,
    /// Bytes read from and written to block devices (`stats`' BLOCK I/O).
    pub block_read: u64,
    pub block_write: u64,
}

/// Bytes read and written, summed over devices: v1's
/// `blkio.throttle.io_service_bytes_recursive` (`8:0 Read 4096` lines) or
/// v2's `io.stat` (`8:0 rbytes=4096 wbytes=0 ...`).
pub fn block_bytes(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next().is_none_or(|d| !d.contains(':')) {
            continue;
        }
        let rest: Vec<&str> = fields.collect();
        match rest.as_slice() {
            ["Read", n] => read += n.parse::<u64>().unwrap_or(0),
            ["Write", n] => write += n.parse::<u64>().unwrap_or(0),
            kv => {
                for f in kv {
                    match f.split_once('=') {
                        Some(("rbytes", n)) => read += n.parse::<u64>().unwrap_or(0),
                        Some(("wbytes", n)) => write += n.parse::<u64>().unwrap_or(0),
                        _ => {}
                    }
                }
            }
        }
    }
    (read, write)
}

/// A container's cgroup: the same relative path in every hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    hierarchy: Hierarchy,
    /// E.g. `stack/web/0123abcd`.
    path: String,
    cpuset: bool,
}

impl Cgroup {
    /// `path` is relative to each hierarchy's root and must start with `stack/`.
    pub fn new(hierarchy: Hierarchy, path: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let trimmed = path.trim_matches('/');
        let ok = trimmed.starts_with("stack/")
            && !trimmed
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..");
        if !ok {
            return Err(CgroupError::BadPath(path.to_string()));
        }
        Ok(Cgroup {
            hierarchy,
            path: trimmed.to_string(),
            cpuset: limits.cpuset_cpus.is_some() || limits.cpuset_mems.is_some(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The cgroup filesystems to mount inside the container, as (directory
    /// under /sys/fs/cgroup, filesystem type, options): the container's
    /// cgroup namespace makes each show only the container's own subtree,
    /// so programs that size themselves from their limits (JVMs, Go's
    /// GOMAXPROCS libraries) find them where they look.
    pub fn container_mounts(&self) -> Vec<(String, &'static str, String)> {
        match &self.hierarchy {
            Hierarchy::V2(_) => vec![(String::new(), "cgroup2", String::new())],
            Hierarchy::V1(mounts) => {
                let mut by_mount: BTreeMap<&PathBuf, Vec<&str>> = BTreeMap::new();
                for (controller, mount) in mounts {
                    by_mount.entry(mount).or_default().push(controller);
                }
                by_mount
                    .into_iter()
                    .filter_map(|(mount, controllers)| {
                        let name = mount.file_name()?.to_string_lossy().into_owned();
                        Some((name, "cgroup", controllers.join(",")))
                    })
                    .collect()
            }
        }
    }

    /// Whether device rules can be enforced here at all: v1 needs the
    /// devices controller mounted, v2 a BPF program ([`devices`]; whether
    /// loading it worked is what [`Cgroup::create`] returns). Where they
    /// cannot, the shim takes CAP_MKNOD away and mounts the image's files
    /// `nodev`, so no device node can be made and none shipped in an image
    /// opens anything (the nodes stack creates in /dev are the harmless
    /// ones).
    pub fn enforces_devices(&self) -> bool {
        match &self.hierarchy {
            Hierarchy::V1(m) => m.contains_key("devices"),
            Hierarchy::V2(_) => true,
        }
    }

    /// Every directory of this cgroup (one per v1 controller, or one).
    /// The files through which a container's first process moves itself
    /// into the cgroup (v1's per-thread `tasks`); `None` where the shim
    /// must move it (v2).
    ///
    /// Moving another process (`cgroup.procs`) takes the kernel's global
    /// threadgroup lock for writing, which waits for an RCU grace period
    /// (10-15 ms here) unless another move happened just before; a
    /// single-threaded process moving itself by writing `0` to `tasks`
    /// does not take that lock (tens of microseconds).
    pub fn self_join_files(&self) -> Option<Vec<PathBuf>> {
        match &self.hierarchy {
            Hierarchy::V2(_) => None,
            Hierarchy::V1(_) => Some(self.dirs().iter().map(|d| d.join("tasks")).collect()),
        }
    }

    /// Moves the calling process, which must be single-threaded, into the
    /// cgroup: by itself where that is fast (see [`Self::self_join_files`]).
    pub fn join_self(&self, sys: &dyn Syscalls) -> Result<(), CgroupError> {
        match self.self_join_files() {
            Some(files) => {
                for path in files {
                    sys.write_file(&path, "0")
                        .map_err(CgroupError::io("write", &path))?;
                }
                Ok(())
            }
            None => self.add_process(sys, std::process::id() as i32),
        }
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.hierarchy {
            Hierarchy::V2(root) => vec![root.join(&self.path)],
            Hierarchy::V1(mounts) => self
                .v1_controllers()
                .filter_map(|c| mounts.get(c))
                .map(|m| m.join(&self.path))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }

    fn v1_controllers(&self) -> impl Iterator<Item = &'static str> {
        V1_CONTROLLERS
            .iter()
            .copied()
            .chain(self.cpuset.then_some("cpuset"))
    }

    /// Creates the directories and writes the limits. Returns whether the
    /// device rules (if any) are enforced: on v2 that takes loading a BPF
    /// program, which a kernel without BPF support refuses.
    pub fn create(&self, sys: &dyn Syscalls, limits: &Limits) -> Result<bool, CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(mounts) => {
                for c in self.v1_controllers() {
                    let Some(mount) = mounts.get(c) else { continue };
                    if c == "cpuset" {
                        self.create_v1_cpuset(sys, mount)?;
                    } else {
                        let dir = mount.join(&self.path);
                        sys.create_dir_all(&dir)
                            .map_err(CgroupError::io("create", &dir))?;
                    }
                }
                for (controller, file, value) in v1_settings(limits) {
                    let Some(mount) = mounts.get(controller) else {
                        continue;
                    };
                    let path = mount.join(&self.path).join(file);
                    // Swap accounting is a boot option: without it the memsw
                    // files do not exist and only the memory limit applies.
                    if file.starts_with("memory.memsw") && !sys.exists(&path) {
                        continue;
                    }
                    // Without the CFQ scheduler there is no weight to set
                    // (the build warned).
                    if file == "blkio.weight" && !sys.exists(&path) {
                        continue;
                    }
                    sys.write_file(&path, &value)
                        .map_err(CgroupError::io("write", &path))?;
                }
            }
            Hierarchy::V2(root) => {
                let available = sys
                    .read_file(&root.join("cgroup.controllers"))
                    .unwrap_or_default();
                let wanted: Vec<&str> = ["cpu", "cpuset", "memory", "pids", "io"]
                    .into_iter()
                    .filter(|c| available.split_whitespace().any(|a| a == *c))
                    .collect();
                let enable = wanted
                    .iter()
                    .map(|c| format!("+{c}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                // Enable the controllers on each of our own ancestors (never
                // on the root, which belongs to the host).
                let parts: Vec<&str> = self.path.split('/').collect();
                for i in 1..=parts.len() {
                    let dir = root.join(parts[..i].join("/"));
                    sys.create_dir_all(&dir)
                        .map_err(CgroupError::io("create", &dir))?;
                    if i < parts.len() && !enable.is_empty() {
                        let file = dir.join("cgroup.subtree_control");
                        sys.write_file(&file, &enable)
                            .map_err(CgroupError::io("write", &file))?;
                    }
                }
                let dir = root.join(&self.path);
                for (file, value) in v2_settings(limits) {
                    let path = dir.join(file);
                    if !sys.exists(&path) && file != "pids.max" {
                        // A controller the host does not delegate (e.g. no
                        // swap accounting): the limit cannot apply.
                        continue;
                    }
                    sys.write_file(&path, &value)
                        .map_err(CgroupError::io("write", &path))?;
                }
                let rules: Vec<devices::Rule> = limits
                    .devices
                    .iter()
                    .flatten()
                    .filter_map(|(allow, text)| devices::Rule::parse(*allow, text))
                    .collect();
                if !rules.is_empty() {
                    return Ok(sys.attach_device_filter(&dir, &rules).is_ok());
                }
            }
        }
        Ok(true)
    }

    /// A v1 cpuset directory needs cpus and mems before a task can join, and
    /// a new directory starts with both empty: copy them down level by level.
    fn create_v1_cpuset(&self, sys: &dyn Syscalls, mount: &Path) -> Result<(), CgroupError> {
        let mut dir = mount.to_path_buf();
        for part in self.path.split('/') {
            let parent = dir.clone();
            dir.push(part);
            sys.create_dir_all(&dir)
                .map_err(CgroupError::io("create", &dir))?;
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let current = sys.read_file(&dir.join(file)).unwrap_or_default();
                if current.trim().is_empty() {
                    let value = sys.read_file(&parent.join(file)).unwrap_or_default();
                    let path = dir.join(file);
                    sys.write_file(&path, value.trim())
                        .map_err(CgroupError::io("write", &path))?;
                }
            }
        }
        Ok(())
    }

    /// Moves a process into the cgroup.
    pub fn add_process(&self, sys: &dyn Syscalls, pid: i32) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            let path = dir.join("cgroup.procs");
            sys.write_file(&path, &pid.to_string())
                .map_err(CgroupError::io("write", &path))?;
        }
        Ok(())
    }

    /// The pids of every process in the cgroup.
    pub fn pids(&self, sys: &dyn Syscalls) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs()
            .iter()
            .filter_map(|d| sys.read_file(&d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Freezes (pause) or thaws (unpause) every process in the cgroup.
    pub fn freeze(&self, sys: &dyn Syscalls, frozen: bool) -> Result<(), CgroupError> {
        let (path, value) = match &self.hierarchy {
            Hierarchy::V2(root) => (
                root.join(&self.path).join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
            ),
            Hierarchy::V1(mounts) => {
                let Some(m) = mounts.get("freezer") else {
                    return Err(CgroupError::Io {
                        action: "find",
                        path: PathBuf::from("/sys/fs/cgroup/freezer"),
                        source: io::Error::from(io::ErrorKind::NotFound),
                    });
                };
                (
                    m.join(&self.path).join("freezer.state"),
                    if frozen { "FROZEN" } else { "THAWED" },
                )
            }
        };
        sys.write_file(&path, value)
            .map_err(CgroupError::io("write", &path))
    }

    /// How many times the kernel's OOM killer killed a process here.
    pub fn oom_kills(&self, sys: &dyn Syscalls) -> u64 {
        let (path, key) = match &self.hierarchy {
            Hierarchy::V2(root) => (root.join(&self.path).join("memory.events"), "oom_kill"),
            Hierarchy::V1(m) => match m.get("memory") {
                Some(m) => (m.join(&self.path).join("memory.oom_control"), "oom_kill"),
                None => return 0,
            },
        };
        keyed_value(&sys.read_file(&path).unwrap_or_default(), key).unwrap_or(0)
    }

    /// Current usage.
    pub fn usage(&self, sys: &dyn Syscalls) -> Usage {
        let read = |p: PathBuf| sys.read_file(&p).unwrap_or_default();
        let num = |s: String| s.trim().parse::<u64>().ok();
        match &self.hierarchy {
            Hierarchy::V2(root) => {
                let d = root.join(&self.path);
                let stat = read(d.join("memory.stat"));
                let inactive = keyed_value(&stat, "inactive_file").unwrap_or(0);
                let (block_read, block_write) = block_bytes(&read(d.join("io.stat")));
                Usage {
                    block_read,
                    block_write,
                    memory: num(read(d.join("memory.current")))
                        .unwrap_or(0)
                        .saturating_sub(inactive),
                    memory_limit: num(read(d.join("memory.max"))),
                    cpu_nanos: keyed_value(&read(d.join("cpu.stat")), "usage_usec")
                        .unwrap_or(0)
                        .saturating_mul(1000),
                    pids: num(read(d.join("pids.current"))).unwrap_or(0),
                }
            }
            Hierarchy::V1(m) => {
                let at = |c: &str, f: &str| {
                    m.get(c)
                        .map(|m| read(m.join(&self.path).join(f)))
                        .unwrap_or_default()
                };
                let inactive =
                    keyed_value(&at("memory", "memory.stat"), "total_inactive_file").unwrap_or(0);
                // v1 reports "no limit" as a huge page-rounded number.
                let limit = num(at("memory", "memory.limit_in_bytes")).filter(|l| *l < (1 << 62));
                let (block_read, block_write) =
                    block_bytes(&at("blkio", "blkio.throttle.io_service_bytes_recursive"));
                Usage {
                    block_read,
                    block_write,
                    memory: num(at("memory", "memory.usage_in_bytes"))
                        .unwrap_or(0)
                        .saturating_sub(inactive),
                    memory_limit: limit,
                    cpu_nanos: num(at("cpuacct", "cpuacct.usage")).unwrap_or(0),
                    pids: num(at("pids", "pids.current")).unwrap_or(0),
                }
            }
        }
    }

    /// Removes the container's directories, then the project's parent when
    /// it became empty. `stack/` itself stays. Kills what is left inside
    /// first: only processes of this container can be in its cgroup.
    pub fn remove(&self, sys: &dyn Syscalls) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            if !sys.exists(&dir) && !dir.exists() {
                continue;
            }
            let mut tries = 0;
            loop {
                for pid in self.pids(sys) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                match sys.remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    // Killed processes leave the cgroup a moment after the
                    // signal; a frozen cgroup must thaw before they can die.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        if tries == 0 {
                            let _ = self.freeze(sys, false);
                        }
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        return Err(CgroupError::Busy { path: dir });
                    }
                    Err(e) => return Err(CgroupError::io("remove", &dir)(e)),
                }
            }
            // The project's directory, when this was its last container.
            if let Some(parent) = dir.parent()
                && parent.file_name().is_some_and(|n| n != "stack")
                && parent
                    .parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "stack")
            {
                let _ = sys.remove_dir(parent);
            }
        }
        Ok(())
    }
}

/// The number after `key` in a `key value` per line file.
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::sys::{Call, Recording};

    const HYBRID: &str = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
30 25 0:27 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
";

    fn v1() -> Hierarchy {
        Hierarchy::from_mountinfo(HYBRID).unwrap()
    }

    #[test]
    fn a_hybrid_host_is_v1_with_co_mounted_controllers() {
        let Hierarchy::V1(m) = v1() else {
            panic!("expected v1")
        };
        assert_eq!(m["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert!(!m.contains_key("cpuset"));
    }

    #[test]
    fn a_unified_mount_at_the_root_is_v2() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            Hierarchy::from_mountinfo(text),
            Some(Hierarchy::V2(PathBuf::from("/sys/fs/cgroup")))
        );
        assert_eq!(Hierarchy::from_mountinfo(""), None);
    }

    #[test]
    fn v1_memory_limit_precedes_swap_and_swap_defaults_to_twice_memory() {
        let l = Limits {
            memory: Some(64 << 20),
            pids: Some(100),
            ..Limits::default()
        };
        let s = v1_settings(&l);
        assert_eq!(
            s,
            [
                ("memory", "memory.limit_in_bytes", "67108864".to_string()),
                (
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    "134217728".to_string()
                ),
                ("pids", "pids.max", "100".to_string()),
            ]
        );
    }

    #[test]
    fn v2_converts_shares_quota_and_swap() {
        let l = Limits {
            memory: Some(100),
            memory_swap: Some(300),
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            pids: None,
            ..Limits::default()
        };
        assert_eq!(
            v2_settings(&l),
            [
                ("memory.max", "100".to_string()),
                ("memory.swap.max", "200".to_string()),
                ("cpu.weight", "39".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("pids.max", "max".to_string()),
            ]
        );
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn creating_on_v1_makes_one_directory_per_controller_and_writes_limits() {
        let sys = Recording::new().with_file(
            "/sys/fs/cgroup/memory/stack/p/c/memory.memsw.limit_in_bytes",
            "",
        );
        let l = Limits {
            memory: Some(1 << 20),
            cpu_period: Some(100_000),
            cpu_quota: Some(50_000),
            pids: Some(10),
            ..Limits::default()
        };
        let cg = Cgroup::new(v1(), "stack/p/c", &l).unwrap();
        cg.create(&sys, &l).unwrap();
        let calls = sys.calls();
        assert!(calls.contains(&Call::CreateDirAll(
            "/sys/fs/cgroup/memory/stack/p/c".into()
        )));
        assert!(calls.contains(&Call::CreateDirAll(
            "/sys/fs/cgroup/cpu,cpuacct/stack/p/c".into()
        )));
        assert_eq!(
            sys.writes(),
            [
                (
                    "/sys/fs/cgroup/memory/stack/p/c/memory.limit_in_bytes".into(),
                    "1048576".to_string()
                ),
                (
                    "/sys/fs/cgroup/memory/stack/p/c/memory.memsw.limit_in_bytes".into(),
                    "2097152".to_string()
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/stack/p/c/cpu.cfs_period_us".into(),
                    "100000".to_string()
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/stack/p/c/cpu.cfs_quota_us".into(),
                    "50000".to_string()
                ),
                (
                    "/sys/fs/cgroup/pids/stack/p/c/pids.max".into(),
                    "10".to_string()
                ),
            ]
        );
        // cpu and cpuacct share a mount: joined once.
        cg.add_process(&sys, 42).unwrap();
        let joins = sys
            .writes()
            .into_iter()
            .filter(|(p, _)| p.ends_with("cgroup.procs"))
            .count();
        assert_eq!(joins, 4);
    }

    #[test]
    fn creating_on_v2_enables_controllers_on_our_ancestors_only() {
        let root = PathBuf::from("/sys/fs/cgroup");
        let sys = Recording::new()
            .with_file(
                root.join("cgroup.controllers"),
                "cpu memory pids io hugetlb",
            )
            .with_file(root.join("stack/p/c/memory.max"), "max");
        let l = Limits {
            memory: Some(4096),
            ..Limits::default()
        };
        let cg = Cgroup::new(Hierarchy::V2(root.clone()), "stack/p/c", &l).unwrap();
        cg.create(&sys, &l).unwrap();
        assert_eq!(
            sys.writes(),
            [
                (
                    root.join("stack/cgroup.subtree_control"),
                    "+cpu +memory +pids +io".to_string()
                ),
                (
                    root.join("stack/p/cgroup.subtree_control"),
                    "+cpu +memory +pids +io".to_string()
                ),
                (root.join("stack/p/c/memory.max"), "4096".to_string()),
                (root.join("stack/p/c/pids.max"), "max".to_string()),
            ]
        );
    }

    #[test]
    fn block_io_counters_and_limits_in_both_hierarchies() {
        let v1 = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\n254:0 Read 100\nTotal 4708\n";
        assert_eq!(block_bytes(v1), (4196, 512));
        let v2 =
            "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n254:0 rbytes=100 wbytes=0\n";
        assert_eq!(block_bytes(v2), (4196, 512));
        let t = |kind, rate| Throttle {
            kind,
            major: 254,
            minor: 0,
            rate,
        };
        let l = Limits {
            block_throttles: vec![
                t(ThrottleKind::ReadBps, 1 << 20),
                t(ThrottleKind::WriteIops, 100),
            ],
            ..Limits::default()
        };
        let v1: Vec<_> = v1_settings(&l)
            .into_iter()
            .filter(|(c, _, _)| *c == "blkio")
            .collect();
        assert_eq!(
            v1,
            [
                (
                    "blkio",
                    "blkio.throttle.read_bps_device",
                    "254:0 1048576".to_string()
                ),
                (
                    "blkio",
                    "blkio.throttle.write_iops_device",
                    "254:0 100".to_string()
                ),
            ]
        );
        let v2: Vec<_> = v2_settings(&l)
            .into_iter()
            .filter(|(f, _)| f.starts_with("io."))
            .collect();
        assert_eq!(v2, [("io.max", "254:0 rbps=1048576 wiops=100".to_string())]);
    }

    #[test]
    fn paths_outside_stack_are_refused() {
        for bad in ["user.slice/x", "stack/../x", "stack", "stack//x"] {
            assert!(Cgroup::new(v1(), bad, &Limits::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn usage_and_oom_kills_are_read_from_v1_files() {
        let sys = Recording::new()
            .with_file(
                "/sys/fs/cgroup/memory/stack/p/c/memory.usage_in_bytes",
                "1000\n",
            )
            .with_file(
                "/sys/fs/cgroup/memory/stack/p/c/memory.stat",
                "cache 1\ntotal_inactive_file 100\n",
            )
            .with_file(
                "/sys/fs/cgroup/memory/stack/p/c/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            )
            .with_file("/sys/fs/cgroup/pids/stack/p/c/pids.current", "3\n")
            .with_file(
                "/sys/fs/cgroup/cpu,cpuacct/stack/p/c/cpuacct.usage",
                "777\n",
            );
        let cg = Cgroup::new(v1(), "stack/p/c", &Limits::default()).unwrap();
        let u = cg.usage(&sys);
        assert_eq!((u.memory, u.pids, u.cpu_nanos), (900, 3, 777));
        assert_eq!(cg.oom_kills(&sys), 2);
    }
}
