//! `exec`: run another command inside a running container.
//!
//! `stack __exec <root> <id> <request-json>` is a helper process (never a
//! thread of a tokio program: entering namespaces is per thread, and a pid
//! namespace only applies to children). It joins the container's cgroup,
//! makes itself non-dumpable (so the container cannot open the stack binary
//! through `/proc/<pid>/exe` while it runs, the CVE-2019-5736 class), enters
//! the ipc, uts, net, pid and mount namespaces of the container's first
//! process, and forks: the child is inside the pid namespace, takes the
//! container's user, capabilities, no_new_privs, seccomp filter,
//! environment and working directory (or the overrides of the request), and
//! executes the command. The helper forwards signals and exits with the
//! command's exit code (128 + signal when killed). Its standard streams are
//! the caller's, so `-i` works by passing stdin; health probes use the same
//! path.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::process;
use crate::runtime::cgroup::{Cgroup, Hierarchy, Limits};
use crate::runtime::container::build::ContainerConfig;
use crate::runtime::container::state::{State, Status, same_process};
use crate::runtime::sys::Linux;

/// What to run (the Rust side of `stack exec`'s flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub args: Vec<String>,
    /// Added to (and overriding) the container's environment (`-e`).
    pub env: Vec<String>,
    /// `-u`: a user as in Compose's `user:`; default: the container's.
    pub user: Option<String>,
    /// `-w`: default: the container's working directory.
    pub workdir: Option<String>,
}

/// The exit code for "the exec itself failed" (as Docker: 126 cannot run, 127 not found).
const EXEC_FAILED: u8 = 126;

pub fn exec_main(args: &[OsString]) -> u8 {
    let (Some(root), Some(id), Some(req)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: stack __exec ROOT ID REQUEST-JSON (internal: started by stack itself)");
        return 2;
    };
    match run(
        PathBuf::from(root)
            .join("containers")
            .join(id.to_string_lossy().as_ref()),
        &req.to_string_lossy(),
    ) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stack exec: {e}");
            EXEC_FAILED
        }
    }
}

fn run(dir: PathBuf, request: &str) -> Result<u8, String> {
    let req: ExecRequest =
        serde_json::from_str(request).map_err(|e| format!("bad exec request: {e}"))?;
    let text = std::fs::read(dir.join("config.json"))
        .map_err(|e| format!("no such container ({}): {e}", dir.display()))?;
    let config: ContainerConfig =
        serde_json::from_slice(&text).map_err(|e| format!("bad container configuration: {e}"))?;
    let state = State::load(&dir.join("state.json")).map_err(|e| e.to_string())?;
    if state.status != Status::Running || !same_process(state.pid, state.pid_start) {
        return Err("the container is not running; start it first".into());
    }
    let pid = state.pid.unwrap_or_default();
    let proc_ = config
        .spec
        .process()
        .clone()
        .ok_or("the configuration has no process")?;
    let seccomp = process::seccomp_programs(&config)?;

    // Open every namespace before entering any: after the mount namespace
    // the host's /proc is gone.
    let mut namespaces = Vec::new();
    for (name, flag) in [
        ("ipc", nix::sched::CloneFlags::CLONE_NEWIPC),
        ("uts", nix::sched::CloneFlags::CLONE_NEWUTS),
        ("net", nix::sched::CloneFlags::CLONE_NEWNET),
        ("pid", nix::sched::CloneFlags::CLONE_NEWPID),
        ("mnt", nix::sched::CloneFlags::CLONE_NEWNS),
    ] {
        let f = std::fs::File::open(format!("/proc/{pid}/ns/{name}"))
            .map_err(|e| format!("cannot open the container's {name} namespace: {e}"))?;
        namespaces.push((f, flag));
    }
    // Re-check: the pid could have been reused between the check and the opens.
    if !same_process(state.pid, state.pid_start) {
        return Err("the container exited".into());
    }
    let linux = config.spec.linux().clone().unwrap_or_default();
    let limits = linux
        .resources()
        .as_ref()
        .map(Limits::from_oci)
        .unwrap_or_default();
    let mut drop_mknod = false;
    if let Some(path) = linux.cgroups_path() {
        let cg = Cgroup::new(
            Hierarchy::detect().map_err(|e| e.to_string())?,
            &path.to_string_lossy(),
            &limits,
        )
        .map_err(|e| e.to_string())?;
        cg.add_process(&Linux, std::process::id() as i32)
            .map_err(|e| e.to_string())?;
        let all = process::CapSets {
            bounding: u64::MAX,
            ..process::CapSets::default()
        };
        drop_mknod = all.for_cgroup(&cg, &limits).bounding != u64::MAX;
    }
    // SAFETY: plain integer prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    for (f, flag) in &namespaces {
        nix::sched::setns(f.as_fd(), *flag)
            .map_err(|e| format!("cannot enter the container's namespace: {e}"))?;
    }
    drop(namespaces);

    // Signals to forward must be blocked before the fork so none is lost.
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        mask.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(|e| e.to_string())?;

    // SAFETY: this helper is single-threaded (dispatched first in main).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let e = child(&config, &proc_, &req, &seccomp, drop_mknod);
            eprintln!("stack exec: {e}");
            // SAFETY: leave the forked child without running destructors.
            unsafe { libc::_exit(if e.contains("not found") { 127 } else { 126 }) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => loop {
            let Ok(sig) = mask.wait() else { continue };
            if sig != Signal::SIGCHLD {
                let _ = nix::sys::signal::kill(child, sig);
                continue;
            }
            use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128u8.wrapping_add(s as u8)),
                _ => {}
            }
        },
        Err(e) => Err(format!("cannot fork: {e}")),
    }
}

fn child(
    config: &ContainerConfig,
    proc_: &oci_spec::runtime::Process,
    req: &ExecRequest,
    seccomp: &[seccompiler::BpfProgram],
    drop_mknod: bool,
) -> String {
    let user = req.user.as_deref().or(config.user.as_deref());
    let identity = match process::resolve_identity(proc_, user, &config.group_add) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let cwd = req
        .workdir
        .clone()
        .unwrap_or_else(|| proc_.cwd().to_string_lossy().into_owned());
    if let Err(e) = std::env::set_current_dir(&cwd) {
        return format!("cannot enter the working directory {cwd}: {e}");
    }
    if let Err(e) = process::apply_limits(proc_) {
        return e;
    }
    let mut env: Vec<String> = proc_.env().clone().unwrap_or_default();
    for kv in &req.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    let env = process::with_home(&env, &identity);
    process::reset_signals();
    let mut caps = process::CapSets::from_process(proc_);
    if drop_mknod {
        caps = caps.without(27);
    }
    if let Err(e) = process::drop_privileges(
        &identity,
        caps,
        proc_.no_new_privileges().unwrap_or(true),
        seccomp,
    ) {
        return e;
    }
    process::close_inherited_fds(&[]);
    process::exec(&req.args, &env)
}
