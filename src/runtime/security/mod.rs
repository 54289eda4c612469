//! What a container may do: capabilities, seccomp, no_new_privs, masked paths.
//!
//! Root inside a container is still root on the host kernel, so Docker (and
//! stack) take most of its power away:
//!
//! - **Capabilities** split root's power into ~40 pieces. A container keeps
//!   Docker's default 14 ([`DEFAULT_CAPS`]); `cap_add`/`cap_drop` (with
//!   `ALL`) adjust the set, `privileged` keeps everything. The set is the
//!   *bounding* set too, so nothing the container executes can regain more.
//! - **no_new_privs** stops setuid binaries and file capabilities from
//!   raising privileges at `execve`; on unless `no-new-privileges:false`.
//! - **seccomp** filters system calls with a BPF program in the kernel.
//!   Profiles are in Docker's JSON format: a default action and rules,
//!   some of them conditional on the container's capabilities or the
//!   architecture (`includes`/`excludes`). [`resolve_profile`] evaluates
//!   those conditions for one container and produces the OCI
//!   `linux.seccomp` section; the shim compiles that to BPF with the pure
//!   Rust `seccompiler` ([`compile`]), so no libseccomp C library is needed.
//!   `seccompiler` gives a filter one "match" and one "mismatch" action, so a
//!   profile with several actions becomes a stack of filters; the kernel
//!   runs them all and keeps the strictest answer (for two errnos, the one
//!   of the filter installed last), which is exactly the profile's meaning.
//! - **Masked and read-only paths** hide host information that /proc and
//!   /sys expose even inside namespaces ([`MASKED_PATHS`],
//!   [`READONLY_PATHS`]).

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::Deserialize;

#[cfg(target_arch = "aarch64")]
mod syscalls_aarch64;
// Elsewhere the aarch64 table is still compiled and checked by the tests.
#[cfg(all(test, not(target_arch = "aarch64")))]
#[path = "syscalls_aarch64.rs"]
mod syscalls_aarch64;
#[cfg(target_arch = "x86_64")]
mod syscalls_x86_64;

/// This machine's syscall table and the filter architecture it goes with.
#[cfg(target_arch = "x86_64")]
const TABLE: Option<(&[(&str, i64)], TargetArch)> =
    Some((syscalls_x86_64::SYSCALLS, TargetArch::x86_64));
#[cfg(target_arch = "aarch64")]
const TABLE: Option<(&[(&str, i64)], TargetArch)> =
    Some((syscalls_aarch64::SYSCALLS, TargetArch::aarch64));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const TABLE: Option<(&[(&str, i64)], TargetArch)> = None;

/// What went wrong with a security setting.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("unknown capability `{0}`; use a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL")]
    UnknownCapability(String),
    #[error(
        "the seccomp profile is not valid Docker seccomp JSON: {0}; check it against Docker's default profile"
    )]
    Profile(String),
    #[error(
        "the seccomp profile cannot be compiled: {0}; simplify the profile or use security_opt seccomp=unconfined"
    )]
    Compile(String),
    #[error(
        "seccomp filters can only be compiled for x86_64 and aarch64 on this build; use security_opt seccomp=unconfined"
    )]
    UnsupportedArch,
    #[error(
        "unknown security_opt `{0}`; stack understands no-new-privileges[:true|false], seccomp=unconfined|FILE, label=..., apparmor=..."
    )]
    UnknownOption(String),
}

/// Capability names, by number (linux/capability.h).
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Paths Docker hides: a directory gets an empty read-only tmpfs over it, a
/// file gets /dev/null bound over it.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The number of a capability given as `NET_ADMIN` or `CAP_NET_ADMIN`.
pub fn cap_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .map(|n| n as u32)
}

/// The capability set (as `CAP_*` names) from Docker's defaults, `cap_add`
/// and `cap_drop` (Docker's order: drop applies to the defaults, add wins,
/// `ALL` in either means all known capabilities).
pub fn capability_set(
    cap_add: &[String],
    cap_drop: &[String],
    privileged: bool,
) -> Result<BTreeSet<String>, SecurityError> {
    let all = || CAPABILITIES.iter().map(|c| c.to_string()).collect();
    let norm = |n: &String| -> Result<String, SecurityError> {
        if n.eq_ignore_ascii_case("ALL") {
            return Ok("ALL".into());
        }
        let num = cap_number(n).ok_or_else(|| SecurityError::UnknownCapability(n.clone()))?;
        Ok(CAPABILITIES[num as usize].to_string())
    };
    let add: Vec<String> = cap_add.iter().map(norm).collect::<Result<_, _>>()?;
    let drop: Vec<String> = cap_drop.iter().map(norm).collect::<Result<_, _>>()?;
    let mut set: BTreeSet<String> = if privileged {
        all()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if drop.iter().any(|d| d == "ALL") {
        set.clear();
    } else {
        for d in &drop {
            set.remove(d);
        }
    }
    if add.iter().any(|a| a == "ALL") {
        set = all();
    } else {
        set.extend(add);
    }
    Ok(set.into_iter().map(|c| format!("CAP_{c}")).collect())
}

/// A bit mask of capabilities given as `CAP_*` names (unknown names skipped:
/// they were validated when the spec was built).
pub fn cap_mask<'a>(names: impl IntoIterator<Item = &'a str>) -> u64 {
    names
        .into_iter()
        .filter_map(cap_number)
        .fold(0u64, |m, n| m | (1u64 << n))
}

/// How the container's seccomp and no_new_privs are configured by `security_opt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    /// `None`: the default profile; `Some(None)`: unconfined; `Some(Some(json))`: a file's profile.
    pub seccomp: Option<Option<String>>,
}

/// Reads `security_opt` entries. `seccomp=FILE` is read relative to `base`.
pub fn parse_security_opts(
    opts: &[String],
    base: &std::path::Path,
) -> Result<SecurityOpts, SecurityError> {
    let mut out = SecurityOpts {
        no_new_privileges: true,
        seccomp: None,
    };
    for opt in opts {
        let (key, value) = opt
            .split_once(['=', ':'])
            .map(|(k, v)| (k, Some(v)))
            .unwrap_or((opt.as_str(), None));
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
            ("seccomp", Some("unconfined")) => out.seccomp = Some(None),
            ("seccomp", Some(file)) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    SecurityError::Profile(format!("cannot read {}: {e}", path.display()))
                })?;
                out.seccomp = Some(Some(text));
            }
            // SELinux and AppArmor are not enforced by stack (Debian's
            // default kernels here have neither active); accepted so that
            // files written for Docker load.
            ("label" | "apparmor", Some(_)) => {}
            _ => return Err(SecurityError::UnknownOption(opt.clone())),
        }
    }
    Ok(out)
}

/// The default profile, in Docker's format.
pub const DEFAULT_PROFILE: &str = include_str!("default-seccomp.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default)]
    names: Vec<String>,
    /// Old profiles name one syscall per entry.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

/// Docker's architecture name for this machine.
fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Evaluates a Docker-format profile for a container with `caps` (as
/// `CAP_*` names): keeps the rules whose `includes` hold and whose
/// `excludes` do not, and returns the OCI `linux.seccomp` section.
pub fn resolve_profile(json: &str, caps: &BTreeSet<String>) -> Result<LinuxSeccomp, SecurityError> {
    let profile: DockerProfile =
        serde_json::from_str(json).map_err(|e| SecurityError::Profile(e.to_string()))?;
    let arch = docker_arch();
    let holds = |f: &Filter, all: bool| {
        let cap_ok = |c: &String| caps.contains(c);
        let arch_ok = |a: &String| a == arch;
        if all {
            f.caps.iter().all(cap_ok) && (f.arches.is_empty() || f.arches.iter().any(arch_ok))
        } else {
            (!f.caps.is_empty() && f.caps.iter().any(cap_ok))
                || (!f.arches.is_empty() && f.arches.iter().any(arch_ok))
        }
    };
    let mut syscalls = Vec::new();
    for s in profile.syscalls {
        if !holds(&s.includes, true) || holds(&s.excludes, false) {
            continue;
        }
        let mut names = s.names;
        names.extend(s.name);
        let mut entry = serde_json::json!({ "names": names, "action": s.action });
        if let Some(e) = s.errno_ret {
            entry["errnoRet"] = e.into();
        }
        if let Some(args) = s.args.filter(|a| !a.is_empty()) {
            entry["args"] = args.into();
        }
        syscalls.push(entry);
    }
    let mut oci = serde_json::json!({
        "defaultAction": profile.default_action,
        "syscalls": syscalls,
    });
    if let Some(e) = profile.default_errno_ret {
        oci["defaultErrnoRet"] = e.into();
    }
    serde_json::from_value(oci).map_err(|e| SecurityError::Profile(e.to_string()))
}

/// The syscall number of `name` on this machine.
pub fn syscall_number(name: &str) -> Option<i64> {
    TABLE?.0.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction, SecurityError> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(0)),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SecurityError::Compile(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which stack does not have".into(),
            ));
        }
    })
}

/// Syscall number to its alternative rules; `None`: unconditional.
type RulesBySyscall = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// Compiles the OCI seccomp section into BPF programs, to be installed in
/// order (see the module doc for why there can be several). Syscall names
/// this architecture does not have are skipped, as libseccomp does.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Vec<BpfProgram>, SecurityError> {
    let Some((_, arch)) = TABLE else {
        return Err(SecurityError::UnsupportedArch);
    };
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    // Action -> syscall -> alternative rules (an empty list: unconditional).
    let mut groups: Vec<(SeccompAction, RulesBySyscall)> = Vec::new();
    for s in seccomp.syscalls().iter().flatten() {
        let act = action(s.action(), s.errno_ret())?;
        if act == default {
            continue;
        }
        let mut conditions = Vec::new();
        for a in s.args().iter().flatten() {
            let (op, value) = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, a.value()),
                LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, a.value()),
                LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, a.value()),
                LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, a.value()),
                LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, a.value()),
                LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, a.value()),
                // Docker: (arg & value) == valueTwo.
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    SeccompCmpOp::MaskedEq(a.value()),
                    a.value_two().unwrap_or(0),
                ),
            };
            let index = u8::try_from(a.index()).map_err(|_| {
                SecurityError::Compile(format!("argument index {} is out of range", a.index()))
            })?;
            conditions.push(
                SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
                    .map_err(|e| SecurityError::Compile(e.to_string()))?,
            );
        }
        let idx = match groups.iter().position(|(a, _)| *a == act) {
            Some(i) => i,
            None => {
                groups.push((act.clone(), BTreeMap::new()));
                groups.len() - 1
            }
        };
        let rules = &mut groups[idx].1;
        for name in s.names() {
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            let slot = rules.entry(nr).or_insert_with(|| Some(Vec::new()));
            match slot {
                // Already unconditional: stays so.
                None => {}
                Some(list) if conditions.is_empty() => {
                    let _ = list;
                    *slot = None;
                }
                Some(list) => list.push(
                    SeccompRule::new(conditions.clone())
                        .map_err(|e| SecurityError::Compile(e.to_string()))?,
                ),
            }
        }
    }
    // The allow-list goes first: later filters' errnos win ties.
    groups.sort_by_key(|(a, _)| *a != SeccompAction::Allow);
    let mut programs = Vec::new();
    for (act, rules) in groups {
        let mismatch = if act == SeccompAction::Allow {
            default.clone()
        } else {
            SeccompAction::Allow
        };
        let rules = rules
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(rules, mismatch, act, arch)
            .map_err(|e| SecurityError::Compile(e.to_string()))?;
        programs
            .push(BpfProgram::try_from(filter).map_err(|e| SecurityError::Compile(e.to_string()))?);
    }
    if programs.is_empty() && default != SeccompAction::Allow {
        // Nothing allowed at all: one filter that denies everything.
        let filter = SeccompFilter::new(BTreeMap::new(), default, SeccompAction::Allow, arch)
            .map_err(|e| SecurityError::Compile(e.to_string()))?;
        programs
            .push(BpfProgram::try_from(filter).map_err(|e| SecurityError::Compile(e.to_string()))?);
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_caps() -> BTreeSet<String> {
        capability_set(&[], &[], false).unwrap()
    }

    #[test]
    fn the_default_set_is_dockers_mask() {
        let caps = default_caps();
        assert_eq!(cap_mask(caps.iter().map(String::as_str)), 0xa80425fb);
    }

    #[test]
    fn cap_add_and_drop_follow_docker() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let caps = capability_set(&s(&["net_admin"]), &s(&["CAP_CHOWN", "MKNOD"]), false).unwrap();
        assert!(caps.contains("CAP_NET_ADMIN"));
        assert!(!caps.contains("CAP_CHOWN") && !caps.contains("CAP_MKNOD"));
        let caps = capability_set(&s(&["KILL"]), &s(&["ALL"]), false).unwrap();
        assert_eq!(caps.into_iter().collect::<Vec<_>>(), ["CAP_KILL"]);
        let caps = capability_set(&[], &[], true).unwrap();
        assert_eq!(caps.len(), CAPABILITIES.len());
        assert!(matches!(
            capability_set(&s(&["FLY"]), &[], false),
            Err(SecurityError::UnknownCapability(_))
        ));
    }

    #[test]
    fn security_opts_parse_dockers_spellings() {
        let base = std::path::Path::new("/");
        let o = |v: &[&str]| {
            parse_security_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), base)
        };
        assert!(o(&[]).unwrap().no_new_privileges);
        assert!(!o(&["no-new-privileges:false"]).unwrap().no_new_privileges);
        assert!(!o(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert_eq!(o(&["seccomp=unconfined"]).unwrap().seccomp, Some(None));
        assert!(o(&["seccomp=/does/not/exist.json"]).is_err());
        assert!(o(&["bogus"]).is_err());
    }

    #[test]
    fn the_default_profile_depends_on_capabilities() {
        let names = |s: &LinuxSeccomp| -> BTreeSet<String> {
            s.syscalls()
                .iter()
                .flatten()
                .filter(|c| c.action() == LinuxSeccompAction::ScmpActAllow)
                .flat_map(|c| c.names().clone())
                .collect()
        };
        let plain = resolve_profile(DEFAULT_PROFILE, &default_caps()).unwrap();
        let allowed = names(&plain);
        assert!(allowed.contains("read") && allowed.contains("chroot"));
        assert!(!allowed.contains("keyctl") && !allowed.contains("mount"));
        assert!(allowed.contains("arch_prctl"));
        let mut admin = default_caps();
        admin.insert("CAP_SYS_ADMIN".into());
        let allowed = names(&resolve_profile(DEFAULT_PROFILE, &admin).unwrap());
        assert!(allowed.contains("mount") && allowed.contains("clone3"));
        assert_eq!(plain.default_errno_ret(), Some(1));
    }

    #[test]
    fn dockers_old_single_name_format_and_args_parse() {
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"name":"keyctl","action":"SCMP_ACT_ERRNO","args":[]},
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
             "args":[{"index":0,"value":8,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]}"#;
        let s = resolve_profile(json, &default_caps()).unwrap();
        let calls = s.syscalls().clone().unwrap();
        assert_eq!(calls[0].names(), &["keyctl".to_string()]);
        assert_eq!(calls[1].errno_ret(), Some(22));
        assert_eq!(calls[1].args().as_ref().unwrap()[0].value(), 8);
        assert!(resolve_profile("{", &default_caps()).is_err());
    }

    #[test]
    fn the_aarch64_table_has_the_generic_numbers() {
        let nr = |name: &str| {
            super::syscalls_aarch64::SYSCALLS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, nr)| *nr)
        };
        assert_eq!(
            (nr("openat"), nr("keyctl"), nr("mmap"), nr("clone3")),
            (Some(56), Some(219), Some(222), Some(435))
        );
        // arm64 has no legacy calls (open, fork) in its table.
        assert_eq!((nr("open"), nr("fork")), (None, None));
        let numbers: std::collections::BTreeSet<i64> = super::syscalls_aarch64::SYSCALLS
            .iter()
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(
            numbers.len(),
            super::syscalls_aarch64::SYSCALLS.len(),
            "no number twice"
        );
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_default_profile_compiles_to_two_filters() {
        let s = resolve_profile(DEFAULT_PROFILE, &default_caps()).unwrap();
        let programs = compile(&s).unwrap();
        // Allow-list (EPERM otherwise) then clone3's ENOSYS.
        assert_eq!(programs.len(), 2);
        assert!(programs[0].len() > 300);
        assert_eq!(syscall_number("keyctl"), Some(250));
        assert_eq!(syscall_number("no_such_call"), None);
    }
}
