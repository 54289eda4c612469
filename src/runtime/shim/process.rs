//! The last steps before the container's program runs, shared by the
//! container's first process and by `exec`: resource limits, the user, the
//! capability sets, no_new_privs, seccomp, closing inherited descriptors and
//! `execve`.
//!
//! The order is dictated by the kernel: the bounding set can only be
//! reduced while CAP_SETPCAP is still effective; changing uid away from 0
//! clears the permitted set unless `PR_SET_KEEPCAPS` is on; `capset` then
//! trims permitted/effective/inheritable to the container's set. seccomp
//! goes last when no_new_privs is on (so the filter need not allow the
//! setup calls); without no_new_privs, installing a filter needs
//! CAP_SYS_ADMIN, so it goes before the capabilities are dropped.

use std::ffi::CString;
use std::os::fd::RawFd;

use oci_spec::runtime::{PosixRlimitType, Process};
use seccompiler::BpfProgram;

use crate::runtime::container::build::ContainerConfig;
use crate::runtime::container::user;
use crate::runtime::security;

/// A failure, already phrased for the user.
pub type ProcessError = String;

fn os_err(what: &str) -> ProcessError {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// The resolved identity of the process.
#[derive(Debug, Clone)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolves the user: the spec's numeric ids, or `name` read from the
/// container's /etc/passwd and /etc/group (the caller has already entered
/// the container's root).
pub fn resolve_identity(
    process: &Process,
    name: Option<&str>,
    group_add: &[String],
) -> Result<Identity, ProcessError> {
    let u = process.user();
    match name {
        None => Ok(Identity {
            uid: u.uid(),
            gid: u.gid(),
            groups: u.additional_gids().clone().unwrap_or_default(),
            home: String::new(),
        }),
        Some(spec) => {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
            let r = user::resolve(spec, group_add, &passwd, &group).map_err(|e| e.to_string())?;
            Ok(Identity {
                uid: r.uid,
                gid: r.gid,
                groups: r.additional_gids,
                home: r.home,
            })
        }
    }
}

fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    Some(match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    })
}

/// Applies rlimits and the OOM score adjustment.
pub fn apply_limits(process: &Process) -> Result<(), ProcessError> {
    for r in process.rlimits().iter().flatten() {
        let Some(res) = rlimit_resource(r.typ()) else {
            continue;
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(os_err(&format!("cannot set {:?}", r.typ())));
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        // Without CAP_SYS_RESOURCE a negative value is refused; that only
        // makes the container easier to kill, so it is not fatal.
        let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
    }
    Ok(())
}

/// The capability masks of the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapSets {
    pub fn from_process(process: &Process) -> CapSets {
        let mask = |set: Option<&std::collections::HashSet<oci_spec::runtime::Capability>>| {
            set.map(|s| {
                let names: Vec<String> = s.iter().map(|c| c.to_string()).collect();
                security::cap_mask(names.iter().map(String::as_str))
            })
            .unwrap_or(0)
        };
        match process.capabilities() {
            None => CapSets::default(),
            Some(c) => CapSets {
                bounding: mask(c.bounding().as_ref()),
                effective: mask(c.effective().as_ref()),
                permitted: mask(c.permitted().as_ref()),
                inheritable: mask(c.inheritable().as_ref()),
                ambient: mask(c.ambient().as_ref()),
            },
        }
    }
}

impl CapSets {
    /// The same sets without one capability.
    pub fn without(self, cap: u32) -> CapSets {
        let m = !(1u64 << cap);
        CapSets {
            bounding: self.bounding & m,
            effective: self.effective & m,
            permitted: self.permitted & m,
            inheritable: self.inheritable & m,
            ambient: self.ambient & m,
        }
    }

    /// The sets for a container in `cgroup` with `limits`: CAP_MKNOD goes
    /// when device rules are wanted but cannot be enforced (see
    /// [`crate::runtime::cgroup::Cgroup::enforces_devices`]).
    pub fn for_cgroup(
        self,
        cgroup: &crate::runtime::cgroup::Cgroup,
        limits: &crate::runtime::cgroup::Limits,
    ) -> CapSets {
        let wanted = limits.devices.as_ref().is_some_and(|d| !d.is_empty());
        if wanted && !cgroup.enforces_devices() {
            self.without(27) // CAP_MKNOD
        } else {
            self
        }
    }
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capset(eff: u64, perm: u64, inh: u64) -> Result<(), ProcessError> {
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: eff as u32,
            permitted: perm as u32,
            inheritable: inh as u32,
        },
        CapData {
            effective: (eff >> 32) as u32,
            permitted: (perm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    // SAFETY: header and the two data words have the layout capset(2)
    // expects for version 3 and outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(os_err("cannot set capabilities"));
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> Result<(), ProcessError> {
    // SAFETY: these prctl options take plain integers.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } != 0 {
        return Err(os_err(&format!("prctl({option})")));
    }
    Ok(())
}

fn install_seccomp(programs: &[BpfProgram]) -> Result<(), ProcessError> {
    for p in programs {
        seccompiler::apply_filter(p)
            .map_err(|e| format!("cannot install the seccomp filter: {e}"))?;
    }
    Ok(())
}

/// Switches to `id` with exactly `caps`, then no_new_privs and seccomp.
pub fn drop_privileges(
    id: &Identity,
    caps: CapSets,
    no_new_privs: bool,
    seccomp: &[BpfProgram],
) -> Result<(), ProcessError> {
    if !no_new_privs {
        install_seccomp(seccomp)?;
    }
    for cap in 0..=last_cap() {
        if caps.bounding & (1 << cap) == 0 {
            // EINVAL: the kernel does not know this capability; fine.
            let _ = prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong);
        }
    }
    prctl(libc::PR_SET_KEEPCAPS, 1)?;
    let groups: Vec<libc::gid_t> = id.groups.clone();
    // SAFETY: the pointer and length describe our vector.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
        return Err(os_err("cannot set supplementary groups"));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresgid(id.gid, id.gid, id.gid) } != 0 {
        return Err(os_err(&format!("cannot switch to group {}", id.gid)));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresuid(id.uid, id.uid, id.uid) } != 0 {
        return Err(os_err(&format!("cannot switch to user {}", id.uid)));
    }
    prctl(libc::PR_SET_KEEPCAPS, 0)?;
    capset(caps.effective, caps.permitted, caps.inheritable)?;
    for cap in 0..=last_cap() {
        if caps.ambient & (1 << cap) != 0 {
            // SAFETY: plain integer arguments.
            unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
        }
    }
    if no_new_privs {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
        install_seccomp(seccomp)?;
    }
    Ok(())
}

/// Restores what the shim changed for itself and must not leak into the
/// container: the signal mask and SIGPIPE (Rust ignores it, and an ignored
/// signal stays ignored across execve), and the umask.
pub fn reset_signals() {
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
    for sig in [libc::SIGPIPE, libc::SIGCHLD, libc::SIGTERM, libc::SIGINT] {
        // SAFETY: resetting a disposition to the default is always valid.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Marks every descriptor from 3 up close-on-exec, so nothing the shim or
/// the caller had open reaches the container (the CVE-2024-21626 class).
pub fn close_inherited_fds(keep: &[RawFd]) {
    let mut start: u32 = 3;
    let mut keep: Vec<u32> = keep.iter().map(|k| *k as u32).filter(|k| *k >= 3).collect();
    keep.sort_unstable();
    keep.push(u32::MAX);
    for k in keep {
        if k > start {
            // SAFETY: close_range only changes flags on our descriptors.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    start,
                    k.saturating_sub(1),
                    libc::CLOSE_RANGE_CLOEXEC,
                )
            };
        }
        start = k.saturating_add(1);
    }
}

/// Finds `program` in `PATH` from `env` (inside the container's root).
pub fn find_program(program: &str, env: &[String]) -> String {
    if program.contains('/') {
        return program.to_string();
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{dir}/{program}");
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return candidate;
            }
        }
    }
    program.to_string()
}

/// Replaces the process with the container's program. Returns only on failure.
pub fn exec(args: &[String], env: &[String]) -> ProcessError {
    let Some(first) = args.first() else {
        return "the container has no command to run".into();
    };
    let program = find_program(first, env);
    let to_c = |v: &[String]| -> Option<Vec<CString>> {
        v.iter().map(|s| CString::new(s.as_bytes()).ok()).collect()
    };
    let (Some(argv), Some(envp), Ok(path)) = (to_c(args), to_c(env), CString::new(program.clone()))
    else {
        return "an argument or environment variable contains a NUL byte".into();
    };
    // execve returns only on failure: its success type is uninhabited.
    let Err(e) = nix::unistd::execve(&path, &argv, &envp);
    let hint = match e {
        nix::errno::Errno::ENOENT => " (not found in the container; check the command and PATH)",
        nix::errno::Errno::EACCES => " (not executable, or on a noexec mount)",
        _ => "",
    };
    format!("cannot execute {program}: {e}{hint}")
}

/// The environment with HOME filled in from the user's entry when unset.
pub fn with_home(env: &[String], id: &Identity) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = if id.home.is_empty() {
            if id.uid == 0 { "/root" } else { "/" }.to_string()
        } else {
            id.home.clone()
        };
        env.push(format!("HOME={home}"));
    }
    env
}

/// The compiled seccomp filter of the container, or none.
pub fn seccomp_programs(config: &ContainerConfig) -> Result<Vec<BpfProgram>, ProcessError> {
    match config
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => security::compile(s).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    }
}
