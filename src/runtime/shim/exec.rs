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
use std::os::fd::{AsFd, AsRawFd};
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
    /// `-t`: run the command on a pseudo-terminal, relayed to the helper's
    /// standard streams (the caller's terminal is switched to raw mode
    /// meanwhile, and its window size follows).
    #[serde(default)]
    pub tty: bool,
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
        ("cgroup", nix::sched::CloneFlags::CLONE_NEWCGROUP),
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
    // Never more than the container's first process may have: its
    // bounding set also reflects what the shim took away for this host.
    let bounding = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .unwrap_or(0);
    if let Some(path) = linux.cgroups_path() {
        let cg = Cgroup::new(
            Hierarchy::detect().map_err(|e| e.to_string())?,
            &path.to_string_lossy(),
            &limits,
        )
        .map_err(|e| e.to_string())?;
        // Still single-threaded here: the fast way in.
        cg.join_self(&Linux).map_err(|e| e.to_string())?;
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
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(|e| e.to_string())?;
    let pty = if req.tty {
        let size = window_size(0);
        Some(
            nix::pty::openpty(size.as_ref(), None)
                .map_err(|e| format!("cannot allocate a terminal: {e}"))?,
        )
    } else {
        None
    };

    // SAFETY: this helper is single-threaded (dispatched first in main).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            if let Some(pty) = &pty {
                let _ = nix::unistd::setsid();
                // SAFETY: making our own terminal slave the controlling
                // terminal and standard streams of this new session.
                unsafe {
                    libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCSCTTY, 0);
                    for target in 0..3 {
                        libc::dup2(pty.slave.as_raw_fd(), target);
                    }
                }
            }
            let e = child(&config, &proc_, &req, &seccomp, bounding);
            eprintln!("stack exec: {e}");
            // SAFETY: leave the forked child without running destructors.
            unsafe { libc::_exit(if e.contains("not found") { 127 } else { 126 }) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => match pty {
            None => loop {
                let Ok(sig) = mask.wait() else { continue };
                if sig == Signal::SIGWINCH {
                    continue;
                }
                if sig != Signal::SIGCHLD {
                    let _ = nix::sys::signal::kill(child, sig);
                    continue;
                }
                if let Some(code) = reap(child) {
                    return Ok(code);
                }
            },
            Some(pty) => {
                drop(pty.slave);
                relay(child, &pty.master, &mask)
            }
        },
        Err(e) => Err(format!("cannot fork: {e}")),
    }
}

/// The exit code of `child` once it has exited.
fn reap(child: nix::unistd::Pid) -> Option<u8> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code as u8),
        Ok(WaitStatus::Signaled(_, s, _)) => Some(128u8.wrapping_add(s as u8)),
        _ => None,
    }
}

pub fn window_size(fd: i32) -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

/// Restores the caller's terminal settings when dropped.
pub struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// Copies between the caller's streams and the terminal until the command
/// exits; forwards signals and window size changes.
fn relay(
    child: nix::unistd::Pid,
    master: &std::os::fd::OwnedFd,
    mask: &nix::sys::signal::SigSet,
) -> Result<u8, String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::signal::Signal;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let signals = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("cannot create a signalfd: {e}"))?;
    let _raw = RawMode::enter();
    let stdin = std::io::stdin();
    let mut stdin_open = true;
    let mut exit = None;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // After the exit, only drain what the terminal still holds.
        let timeout = if exit.is_some() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(exit.unwrap_or(1)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll failed: {e}")),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[1] {
            match nix::unistd::read(master, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), &buf[..n]);
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                }
                // EIO: every copy of the slave is closed.
                _ => {
                    if let Some(code) = exit {
                        return Ok(code);
                    }
                }
            }
        }
        if ready.get(2) == Some(&true) {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(master, &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {
                        if let Some(code) = reap(child) {
                            exit = Some(code);
                        }
                    }
                    Ok(Signal::SIGWINCH) => {
                        if let Some(ws) = window_size(0) {
                            // SAFETY: TIOCSWINSZ reads the struct we own.
                            unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                        }
                    }
                    Ok(sig) => {
                        let _ = nix::sys::signal::kill(child, sig);
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

fn child(
    config: &ContainerConfig,
    proc_: &oci_spec::runtime::Process,
    req: &ExecRequest,
    seccomp: &[seccompiler::BpfProgram],
    bounding: u64,
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
    for cap in 0..64 {
        if bounding & (1 << cap) == 0 {
            caps = caps.without(cap);
        }
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
