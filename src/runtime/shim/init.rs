//! The container's first process, from the clone to `execve`.
//!
//! It starts as a copy of the shim inside the new namespaces and talks to
//! the shim over a close-on-exec socket pair: it builds the root
//! filesystem, waits for `cgroup` (the shim has moved it into its cgroup,
//! so everything the image runs is accounted), sends `ready`, waits for `go`
//! (the network is attached in between), drops its privileges and executes
//! the command. An error at any step is sent as `error <message>` and the
//! process exits; a successful `execve` closes the socket, which is how the
//! shim learns the command runs.
//!
//! With `init: true`, the process stays behind as a minimal init (pid 1)
//! after forking the command: it reaps every orphan the kernel hands it and
//! forwards the usual termination signals to the command, then exits with
//! the command's status. It keeps no_new_privs, the capabilities and
//! seccomp of the container, and is not dumpable, so nothing in the
//! container can reach the stack binary through /proc/1/exe (CVE-2019-5736).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use seccompiler::BpfProgram;

use super::process;
use super::rootfs;
use crate::runtime::container::build::ContainerConfig;

pub struct Init<'a> {
    pub config: &'a ContainerConfig,
    pub dir: &'a Path,
    pub sync: OwnedFd,
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    /// The standard streams are a terminal: make it the controlling one.
    pub terminal: bool,
    pub join_net: Option<BorrowedFd<'a>>,
    pub seccomp: &'a [BpfProgram],
    /// Take CAP_MKNOD away (device rules that cannot be enforced).
    pub drop_mknod: bool,
    /// The cgroup filesystems to mount under /sys/fs/cgroup.
    pub cgroup_mounts: Vec<(String, &'static str, String)>,
    /// Where to write `0` to join the cgroup ourselves, first thing (see
    /// [`crate::runtime::cgroup::Cgroup::self_join_files`]); empty: the
    /// shim moves us.
    pub join_cgroup: Vec<std::path::PathBuf>,
}

/// Runs in the cloned child; never returns.
pub fn run(init: Init<'_>) -> ! {
    let code = match setup_and_exec(&init) {
        Ok(code) => code,
        Err(e) => {
            let _ = nix::unistd::write(&init.sync, format!("error {e}").as_bytes());
            127
        }
    };
    // SAFETY: _exit skips Rust destructors and atexit handlers, which belong
    // to the shim's copy of this address space.
    unsafe { libc::_exit(code) }
}

fn recv(sync: &OwnedFd) -> String {
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(sync, &mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn setup_and_exec(init: &Init<'_>) -> Result<i32, String> {
    // Into the cgroup before anything else, while the host's cgroup
    // filesystems are still in view.
    for tasks in &init.join_cgroup {
        std::fs::write(tasks, "0")
            .map_err(|e| format!("cannot join the cgroup ({}): {e}", tasks.display()))?;
    }
    let config = init.config;
    let spec = &config.spec;
    let proc_ = spec
        .process()
        .as_ref()
        .ok_or("the configuration has no process")?;
    // Keep the host's stack binary out of reach while this process still runs it.
    // SAFETY: plain integer prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    nix::unistd::setsid().map_err(|e| format!("setsid failed: {e}"))?;
    for (fd, target) in [(init.stdin, 0), (init.stdout, 1), (init.stderr, 2)] {
        // SAFETY: dup2 onto our own standard descriptors.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(format!(
                "cannot set up standard streams: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Some(net) = init.join_net {
        nix::sched::setns(net, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("cannot join the network namespace: {e}"))?;
    }
    // SAFETY: umask only changes this process's mask.
    unsafe { libc::umask(0) };
    rootfs::setup(config, init.dir, init.drop_mknod)?;
    let master = if init.terminal {
        Some(open_terminal()?)
    } else {
        None
    };
    rootfs::set_names(spec.hostname().as_deref(), spec.domainname().as_deref())?;
    process::apply_limits(proc_)?;
    let identity = process::resolve_identity(proc_, config.user.as_deref(), &config.group_add)?;
    let cwd = proc_.cwd().to_string_lossy().into_owned();
    if let Err(e) = std::fs::create_dir_all(&cwd) {
        // A read-only root may already have it; only a missing one is fatal.
        if !Path::new(&cwd).is_dir() {
            return Err(format!("cannot create the working directory {cwd}: {e}"));
        }
    }
    std::env::set_current_dir(&cwd)
        .map_err(|e| format!("cannot enter the working directory {cwd}: {e}"))?;
    // SAFETY: umask only changes this process's mask.
    unsafe { libc::umask(0o022) };
    let env = process::with_home(proc_.env().as_deref().unwrap_or_default(), &identity);
    let args = proc_.args().clone().unwrap_or_default();

    // On cgroup v2 the shim moved us into the cgroup meanwhile (a slow
    // write: it waits for an RCU grace period in the kernel, so it runs in
    // parallel with the setup above). Nothing of the image has run yet.
    if recv(&init.sync) != "cgroup" {
        return Err("the shim went away".into());
    }
    // A cgroup namespace rooted at the container's cgroup, then its view
    // of the cgroup filesystems, read-only.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| format!("cannot create the cgroup namespace: {e}"))?;
    mount_cgroups(&init.cgroup_mounts)?;
    send_ready(&init.sync, master)?;
    if recv(&init.sync) != "go" {
        return Err("the shim went away before start".into());
    }
    process::reset_signals();
    let mut caps = process::CapSets::from_process(proc_);
    if init.drop_mknod {
        caps = caps.without(27);
    }
    process::drop_privileges(
        &identity,
        caps,
        proc_.no_new_privileges().unwrap_or(true),
        init.seccomp,
    )?;
    if config.init {
        return tiny_init(init, &args, &env);
    }
    process::close_inherited_fds(&[init.sync.as_raw_fd()]);
    Err(process::exec(&args, &env))
}

/// A pseudo-terminal of the container's own devpts (mounted by
/// [`rootfs::setup`] with `newinstance`; we are in the new root): its slave
/// becomes our standard streams and controlling terminal, and the master
/// is returned for the shim.
fn open_terminal() -> Result<OwnedFd, String> {
    use nix::fcntl::{OFlag, open};
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("cannot {what}: {e}");
    let master = open(
        "/dev/pts/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fail("open the container's /dev/pts/ptmx", &e))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which is valid.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(fail(
            "unlock the terminal",
            &std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: TIOCGPTPEER opens the master's slave and returns a new
    // descriptor (or -1); it takes the open flags as its argument.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if slave < 0 {
        return Err(fail(
            "open the terminal's slave",
            &std::io::Error::last_os_error(),
        ));
    }
    for target in 0..3 {
        // SAFETY: dup2 of a descriptor we own onto our standard streams.
        if unsafe { libc::dup2(slave, target) } < 0 {
            return Err(fail(
                "set up the terminal",
                &std::io::Error::last_os_error(),
            ));
        }
    }
    // SAFETY: closing our own duplicate; 0, 1 and 2 keep the slave open.
    unsafe { libc::close(slave) };
    // SAFETY: TIOCSCTTY on our standard input, the terminal slave, in the
    // session we lead (setsid above).
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(fail(
            "attach the terminal",
            &std::io::Error::last_os_error(),
        ));
    }
    Ok(master)
}

/// Tells the shim the container is set up, handing over the terminal's
/// master when there is one.
fn send_ready(sync: &OwnedFd, master: Option<OwnedFd>) -> Result<(), String> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [std::io::IoSlice::new(b"ready")];
    let fds = master.as_ref().map(|m| [m.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> = fds
        .as_ref()
        .map(|f| ControlMessage::ScmRights(f))
        .into_iter()
        .collect();
    sendmsg::<()>(sync.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None)
        .map_err(|e| format!("the shim went away: {e}"))?;
    // The shim has its copy; ours must not reach the command.
    drop(master);
    Ok(())
}

/// Mounts the container's cgroups on /sys/fs/cgroup (we are already in the
/// new root; /sys is the container's own sysfs, mounted by us).
fn mount_cgroups(mounts: &[(String, &'static str, String)]) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    let base = Path::new("/sys/fs/cgroup");
    if mounts.is_empty() || !base.is_dir() {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let fail =
        |what: &str, e: nix::errno::Errno| format!("cannot mount {what} in the container: {e}");
    if let [(name, "cgroup2", _)] = mounts
        && name.is_empty()
    {
        return mount(
            Some("cgroup2"),
            base,
            Some("cgroup2"),
            flags | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| fail("cgroup2", e));
    }
    mount(
        Some("tmpfs"),
        base,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=64k"),
    )
    .map_err(|e| fail("/sys/fs/cgroup", e))?;
    for (name, fstype, options) in mounts {
        let dir = base.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        mount(
            Some("cgroup"),
            &dir,
            Some(*fstype),
            flags | MsFlags::MS_RDONLY,
            Some(options.as_str()),
        )
        .map_err(|e| fail(name, e))?;
    }
    mount(
        None::<&str>,
        base,
        None::<&str>,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        Some("mode=755,size=64k"),
    )
    .map_err(|e| fail("/sys/fs/cgroup read-only", e))
}

/// Signals the minimal init passes on to the command.
const FORWARDED: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

extern "C" fn ignore(_: libc::c_int) {}

fn tiny_init(init: &Init<'_>, args: &[String], env: &[String]) -> Result<i32, String> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    // A pid 1 only receives signals it has a handler for: install real
    // (empty) handlers, block them, and read them synchronously.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        // SAFETY: installing an async-signal-safe no-op handler.
        unsafe { libc::signal(s, ignore as *const () as libc::sighandler_t) };
        if let Ok(sig) = Signal::try_from(s) {
            mask.add(sig);
        }
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| format!("cannot block signals: {e}"))?;
    // SAFETY: single-threaded (the container's first process), so fork is safe.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            process::reset_signals();
            process::close_inherited_fds(&[init.sync.as_raw_fd()]);
            let e = process::exec(args, env);
            let _ = nix::unistd::write(&init.sync, format!("error {e}").as_bytes());
            // SAFETY: leaving the forked child without running destructors.
            unsafe { libc::_exit(127) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => return Err(format!("cannot fork the command: {e}")),
    };
    // The shim learns of a failed exec from the child; this copy of the
    // socket must not keep it open.
    // SAFETY: closing our own descriptor of the sync socket.
    unsafe { libc::close(init.sync.as_raw_fd()) };
    loop {
        let sig = match mask.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig == Signal::SIGCHLD {
            loop {
                use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == child => return Ok(code),
                    Ok(WaitStatus::Signaled(p, s, _)) if p == child => {
                        return Ok(128 + s as i32);
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        } else {
            let _ = nix::sys::signal::kill(child, sig);
        }
    }
}
