//! The shim: one small process per container that owns it for its lifetime.
//!
//! A tokio program must never `fork` without `exec` (other threads may hold
//! locks that the child would inherit forever), and namespaces are entered
//! per thread. So every container gets its own process: `stack` re-executed
//! as the hidden subcommand `__shim`, dispatched at the very top of `main`
//! while the process is still single-threaded. The shim daemonizes (forks
//! once more and `setsid`s), so it survives the death of every other stack
//! process, and the container with it.
//!
//! ## Lifecycle and protocol
//!
//! Everything lives in the container's directory `<root>/containers/<id>/`:
//! `config.json` (the [`ContainerConfig`]: the OCI spec plus layers, log and
//! stop settings), `upper/` and `work/` (overlayfs), `rootfs/` (mount
//! point, only ever mounted inside the container's mount namespace),
//! `hosts`, `hostname`, `resolv.conf`, `container.log*`, `state.json`, and
//! the control socket `shim.sock`.
//!
//! 1. **create**: the caller writes the directory and runs
//!    `stack __shim <root> <id> [--start]` with a pipe as its standard
//!    output. The shim creates the cgroup, clones the container's first process into new
//!    pid, mount, uts, ipc and (unless `network_mode: host` or joining
//!    another container's) network namespaces, moves it into the cgroup,
//!    and lets it build the root filesystem. The process then *waits*. The
//!    shim records `created` in `state.json`, starts listening on
//!    `shim.sock`, writes `created <pid>\n` (or `error <message>\n`) to the
//!    pipe and closes it. With `--start` it goes on to step 3 by itself and
//!    writes `running <pid>\n` instead (`Runtime::run`: no network hook).
//! 2. **network hook**: between create and start the caller attaches the
//!    network to `/proc/<pid>/ns/net` (the container's namespace is
//!    already there, nothing runs in it yet). Also the moment to write
//!    /etc/hosts entries: `<dir>/hosts` (and `resolv.conf`) are bind-mounted
//!    into the container by inode, so they must be rewritten in place
//!    (truncate and write), never replaced by renaming a new file over them.
//! 3. **start**: the caller connects to `shim.sock` and sends a one-line
//!    request; the shim answers one line:
//!
//! | request | answer | effect |
//! |---|---|---|
//! | `start` | `ok` or `error <why>` | the process drops privileges and executes the command; `ok` once `execve` succeeded |
//! | `kill <signo>` | `ok` | sends the signal to the container's first process |
//! | `stop <signo> <grace-ms>` | `exited <code> <signal> <oom>` | sends the signal, then SIGKILL after the grace period; answers when the container has exited |
//! | `wait` | `exited <code> <signal> <oom>` | answers when the container has exited |
//! | `attach` | `ok`, then frames | the connection becomes the attach channel (below) |
//!
//! `<signal>` is 0 when the process exited by itself, `<oom>` is 0 or 1.
//!
//! **Attach.** After `attach`, the connection carries frames both ways
//! ([`attach`] has the format): the container's output as it is read
//! (stdout and stderr apart, or the terminal's one stream), then its exit;
//! from the client, input for the container's stdin (the pipe kept open by
//! `stdin_open`, or the terminal's master with `tty: true`), its end, and
//! window sizes for the terminal. Attaching before `start` loses no
//! output: that is how `stack run` runs a container in the foreground.
//! Several clients may attach; a client that disconnects leaves the
//! container's input open.
//! Pause/resume, stats and removal do not need the shim (they are cgroup
//! and file operations), and neither does `exec`, which is its own helper
//! process (`stack __exec`, see [`exec`]).
//!
//! 4. **exit**: the shim reaps the process, drains its output into the log,
//!    records code, signal, OOM kill and time in `state.json` atomically,
//!    answers every waiting request and exits. A killed first process takes
//!    the whole pid namespace with it.
//!
//! The shim writes the container's stdout and stderr to `container.log`
//! ([`crate::runtime::container::logs`]); its own diagnostics go to
//! `shim.log`.

pub mod attach;
pub mod exec;
mod init;
mod memory;
pub mod process;
pub mod rootfs;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::runtime::cgroup::{Cgroup, Hierarchy, Limits};
use crate::runtime::container::build::ContainerConfig;
use crate::runtime::container::logs::{LineSplitter, LogWriter, Stream};
use crate::runtime::container::state::{Exit, State, Status, now_ms, process_start_time};
use crate::runtime::sys::Linux;

/// The hidden subcommands.
pub const SHIM_COMMAND: &str = "__shim";
pub const EXEC_COMMAND: &str = "__exec";

/// Runs a hidden runtime subcommand when the process was started as one.
/// Call first thing in `main`, before any thread exists.
pub fn dispatch() -> Option<u8> {
    let mut args = std::env::args_os();
    let _ = args.next();
    let cmd = args.next()?;
    let rest: Vec<OsString> = args.collect();
    if cmd == SHIM_COMMAND {
        Some(shim_main(&rest))
    } else if cmd == EXEC_COMMAND {
        Some(exec::exec_main(&rest))
    } else {
        None
    }
}

/// What the shim sends on a request line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start,
    Kill(i32),
    Stop {
        signal: i32,
        grace: Duration,
    },
    Wait,
    /// Switch the connection to the attach channel ([`attach`]).
    Attach,
}

impl Request {
    pub fn parse(line: &str) -> Option<Request> {
        let mut w = line.split_whitespace();
        Some(match w.next()? {
            "start" => Request::Start,
            "kill" => Request::Kill(w.next()?.parse().ok()?),
            "stop" => Request::Stop {
                signal: w.next()?.parse().ok()?,
                grace: Duration::from_millis(w.next()?.parse().ok()?),
            },
            "wait" => Request::Wait,
            "attach" => Request::Attach,
            _ => return None,
        })
    }

    pub fn to_line(&self) -> String {
        match self {
            Request::Start => "start\n".into(),
            Request::Kill(s) => format!("kill {s}\n"),
            Request::Stop { signal, grace } => format!("stop {signal} {}\n", grace.as_millis()),
            Request::Wait => "wait\n".into(),
            Request::Attach => "attach\n".into(),
        }
    }
}

/// `exited <code> <signal> <oom>`.
pub fn exit_line(e: &Exit) -> String {
    format!(
        "exited {} {} {}\n",
        e.code,
        e.signal.unwrap_or(0),
        u8::from(e.oom_killed)
    )
}

/// Parses [`exit_line`]'s output.
pub fn parse_exit_line(line: &str) -> Option<Exit> {
    let mut w = line.split_whitespace();
    if w.next()? != "exited" {
        return None;
    }
    let code = w.next()?.parse().ok()?;
    let signal: i32 = w.next()?.parse().ok()?;
    let oom: u8 = w.next()?.parse().ok()?;
    Some(Exit {
        code,
        signal: (signal != 0).then_some(signal),
        oom_killed: oom == 1,
    })
}

fn shim_main(args: &[OsString]) -> u8 {
    let (Some(root), Some(id)) = (args.first(), args.get(1)) else {
        eprintln!("usage: stack __shim ROOT ID (internal: started by stack itself)");
        return 2;
    };
    let dir = PathBuf::from(root)
        .join("containers")
        .join(id.to_string_lossy().as_ref());
    // Daemonize: the caller waits for this first process, the second one
    // carries on in its own session, adopted by init (or a subreaper).
    // SAFETY: the process is single-threaded here (dispatched before
    // anything else in main), so fork is safe.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            report(&format!("error cannot fork the shim: {e}\n"));
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    // `--start`: start right after create, saving the caller a round trip.
    let autostart = args.get(2).is_some_and(|a| a == "--start");
    match Shim::setup(&dir, &id.to_string_lossy()) {
        Ok(mut shim) => {
            let pid = shim.pid.as_raw();
            if autostart {
                let answer = shim.start();
                match answer.strip_prefix("error ") {
                    None => report(&format!("running {pid}\n")),
                    Some(why) => report(&format!("error {why}")),
                }
            } else {
                report(&format!("created {pid}\n"));
            }
            close_ready_pipe();
            // What setup allocated is gone: give the memory back, the shim lives long.
            memory::release_after_setup();
            shim.serve();
            shim.run_on_exit();
            0
        }
        Err(e) => {
            eprintln!("shim: {e}");
            let mut state = State::load(&dir.join("state.json"))
                .unwrap_or_else(|_| State::new(&id.to_string_lossy()));
            state.status = Status::Exited;
            state.error = Some(e.clone());
            state.finished_at = Some(now_ms());
            let _ = state.save(&dir.join("state.json"));
            report(&format!("error {}\n", e.replace('\n', " ")));
            1
        }
    }
}

/// Writes to the caller's ready pipe (standard output).
fn report(line: &str) {
    let _ = std::io::stdout().write_all(line.as_bytes());
    let _ = std::io::stdout().flush();
}

/// Detaches standard output (the ready pipe) so the caller sees EOF.
fn close_ready_pipe() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 replaces our own standard output.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Waiting for the exit to answer.
    waiting: bool,
    /// On the attach channel: frames both ways.
    attached: bool,
    /// Frames not yet written to an attached client.
    out: Vec<u8>,
}

impl Conn {
    fn new(stream: UnixStream, waiting: bool) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            waiting,
            attached: false,
            out: Vec::new(),
        }
    }

    /// Writes what it can of the pending frames without blocking.
    fn flush(&mut self) -> std::io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

struct Output {
    fd: Option<OwnedFd>,
    stream: Stream,
    lines: LineSplitter,
}

struct Shim {
    dir: PathBuf,
    state: State,
    cgroup: Cgroup,
    pid: Pid,
    sync: Option<OwnedFd>,
    signals: SignalFd,
    listener: UnixListener,
    conns: Vec<Conn>,
    outputs: Vec<Output>,
    log: LogWriter,
    kill_at: Option<Instant>,
    exit: Option<Exit>,
    /// Where attached clients' input goes (`stdin_open`): the write end of
    /// the stdin pipe, or the terminal's master.
    stdin: Option<OwnedFd>,
    /// Input not yet written to it.
    stdin_pending: Vec<u8>,
    /// Close it once the pending input is written (the client's end of input).
    stdin_closing: bool,
    /// The terminal's master (`tty: true`), for window sizes.
    tty: Option<OwnedFd>,
    /// Started once the exit is recorded (see [`ContainerConfig::on_exit`]).
    on_exit: Vec<String>,
}

/// One message from the container's first process, with the descriptor it
/// may carry (the terminal's master with `ready`). An empty message: it
/// went away.
fn recv_with_fd(sync: &OwnedFd) -> (String, Option<OwnedFd>) {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd as _;
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let Ok(msg) = recvmsg::<()>(
        sync.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    ) else {
        return (String::new(), None);
    };
    let mut fd = None;
    for c in msg.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: SCM_RIGHTS installed `raw` in our table just now;
                // nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                fd.get_or_insert(owned);
            }
        }
    }
    let n = msg.bytes;
    (String::from_utf8_lossy(&buf[..n]).into_owned(), fd)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))
}

impl Shim {
    fn setup(dir: &Path, id: &str) -> Result<Shim, String> {
        let config_path = dir.join("config.json");
        let text = std::fs::read(&config_path)
            .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
        let config: ContainerConfig = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "{} is not a container configuration: {e}",
                config_path.display()
            )
        })?;
        let state_path = dir.join("state.json");
        let mut state = State::new(id);
        // A container started again (`Runtime::start_again`) keeps the
        // time it was created; everything else describes the new run.
        if let Ok(last) = State::load(&state_path) {
            state.created_at = last.created_at;
        }
        state.shim_pid = Some(std::process::id() as i32);
        state.shim_start = process_start_time(std::process::id() as i32);
        state.save(&state_path).map_err(|e| e.to_string())?;

        let linux = config.spec.linux().clone().unwrap_or_default();
        let limits = linux
            .resources()
            .as_ref()
            .map(Limits::from_oci)
            .unwrap_or_default();
        let cg_path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("stack/default/{id}"));
        let cgroup = Cgroup::new(
            Hierarchy::detect().map_err(|e| e.to_string())?,
            &cg_path,
            &limits,
        )
        .map_err(|e| e.to_string())?;
        let devices_enforced = cgroup.create(&Linux, &limits).map_err(|e| e.to_string())?;

        let seccomp = process::seccomp_programs(&config)?;
        let all = process::CapSets {
            bounding: u64::MAX,
            ..process::CapSets::default()
        };
        let drop_mknod = all.for_cgroup(&cgroup, &limits).bounding != u64::MAX || !devices_enforced;

        // Namespaces: new ones by flag, joined ones by descriptor. A kind
        // the spec leaves out is the host's (`pid: host`, ...); the mount
        // namespace is always the container's own.
        let mut flags = libc::CLONE_NEWNS;
        let mut join_net = None;
        // Another container's pid or IPC namespace: the shim enters it
        // around the clone (for pid, only its children's), so the child is
        // born there, and comes back right after.
        let mut joins: Vec<(std::fs::File, nix::sched::CloneFlags, &str)> = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            use oci_spec::runtime::LinuxNamespaceType as T;
            let (flag, kind) = match ns.typ() {
                T::Pid => (nix::sched::CloneFlags::CLONE_NEWPID, "pid"),
                T::Ipc => (nix::sched::CloneFlags::CLONE_NEWIPC, "ipc"),
                T::Uts => (nix::sched::CloneFlags::CLONE_NEWUTS, "uts"),
                _ => (nix::sched::CloneFlags::empty(), ""),
            };
            match (ns.path(), kind) {
                (_, "") => {}
                (Some(p), "pid" | "ipc") => joins.push((
                    std::fs::File::open(p).map_err(|e| {
                        format!(
                            "cannot open the {kind} namespace {}: {e}; is that container running?",
                            p.display()
                        )
                    })?,
                    flag,
                    kind,
                )),
                _ => flags |= flag.bits(),
            }
            if ns.typ() == T::Network {
                match ns.path() {
                    Some(p) => join_net = Some(std::fs::File::open(p).map_err(|e| {
                        format!(
                            "cannot open the network namespace {}: {e}; is that container running?",
                            p.display()
                        )
                    })?),
                    None => flags |= libc::CLONE_NEWNET,
                }
            }
        }

        // Output: two pipes, or with `tty: true` one pseudo-terminal whose
        // slave side is all three standard streams (its master is read
        // into the log as stdout, as Docker does). The terminal comes from
        // the container's own devpts, so inside it is /dev/pts/0 (`tty`
        // names it): the child opens it once its /dev is mounted and sends
        // the master over with `ready`.
        let terminal = config
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        type Pipes = (
            Option<OwnedFd>,
            Option<OwnedFd>,
            Option<OwnedFd>,
            Option<OwnedFd>,
        );
        let (out_r, out_w, err_r, err_w): Pipes = if terminal {
            (None, None, None, None)
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            (Some(out_r), Some(out_w), Some(err_r), Some(err_w))
        };
        let (sync_parent, sync_child) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("cannot create a socket pair: {e}"))?;
        let devnull =
            std::fs::File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
        // `stdin_open` without a terminal: a pipe the shim keeps open, so a
        // command reading stdin waits instead of seeing end-of-file, and
        // which attached clients write to.
        let (stdin_r, stdin_w) = if config.stdin_open && !terminal {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };

        // Signals arrive through a descriptor in the event loop.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
            .map_err(|e| format!("cannot block SIGCHLD: {e}"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| format!("cannot create a signalfd: {e}"))?;

        let mut own = Vec::new();
        for (file, flag, kind) in &joins {
            let mine = std::fs::File::open(format!("/proc/self/ns/{kind}"))
                .map_err(|e| format!("cannot open the shim's own {kind} namespace: {e}"))?;
            nix::sched::setns(file.as_fd(), *flag)
                .map_err(|e| format!("cannot join the {kind} namespace: {e}"))?;
            own.push((mine, *flag));
        }
        // SAFETY: the shim is single-threaded, so the child may run
        // arbitrary code. clone with a null stack behaves like fork, with
        // the namespace flags applied to the child.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        let clone_error = std::io::Error::last_os_error();
        if pid != 0 {
            // Back in the shim's own namespaces (the child, if any, stays).
            for (mine, flag) in &own {
                nix::sched::setns(mine.as_fd(), *flag)
                    .map_err(|e| format!("cannot return to the shim's own namespace: {e}"))?;
            }
        }
        if pid < 0 {
            return Err(format!(
                "cannot create the container's namespaces: {clone_error}"
            ));
        }
        if pid == 0 {
            drop(sync_parent);
            init::run(init::Init {
                config: &config,
                dir,
                sync: sync_child,
                stdin: match &stdin_r {
                    Some(r) => r.as_fd(),
                    None => devnull.as_fd(),
                },
                terminal,
                stdout: out_w.as_ref().map_or(devnull.as_fd(), |f| f.as_fd()),
                stderr: err_w.as_ref().map_or(devnull.as_fd(), |f| f.as_fd()),
                join_net: join_net.as_ref().map(|f| f.as_fd()),
                seccomp: &seccomp,
                drop_mknod,
                cgroup_mounts: cgroup.container_mounts(),
                join_cgroup: cgroup.self_join_files().unwrap_or_default(),
            });
        }
        let pid = Pid::from_raw(pid as i32);
        drop((sync_child, out_w, err_w, devnull, stdin_r));

        let fail = |msg: String| {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            let _ = cgroup.remove(&Linux);
            msg
        };
        // (On cgroup v1 the child has joined by itself, which is much faster.)
        if cgroup.self_join_files().is_none()
            && let Err(e) = cgroup.add_process(&Linux, pid.as_raw())
        {
            return Err(fail(e.to_string()));
        }
        // Tell the child it is in its cgroup, then wait for "ready". A
        // failed write means the child already gave up: its message (or
        // EOF) is read below.
        let _ = nix::unistd::write(&sync_parent, b"cgroup");
        let (msg, master) = recv_with_fd(&sync_parent);
        if msg != "ready" {
            let why = msg.strip_prefix("error ").unwrap_or(if msg.is_empty() {
                "the container process exited during setup"
            } else {
                &msg
            });
            return Err(fail(why.to_string()));
        }
        let out_r = match (out_r, master) {
            (Some(pipe), _) => pipe,
            (None, Some(master)) => master,
            (None, None) => {
                return Err(fail(
                    "the container's terminal did not reach the shim".to_string(),
                ));
            }
        };
        let tty = if terminal {
            Some(
                out_r
                    .try_clone()
                    .map_err(|e| fail(format!("cannot duplicate the terminal: {e}")))?,
            )
        } else {
            None
        };
        let stdin = match (&tty, stdin_w) {
            (Some(master), _) if config.stdin_open => master.try_clone().ok(),
            (_, w) => w,
        };
        if let Some(fd) = &stdin {
            // Never block the shim on a container that does not read.
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }

        let sock_path = dir.join("shim.sock");
        let _ = std::fs::remove_file(&sock_path);
        // Bound by a relative name from inside the directory: a socket
        // path is limited to 108 bytes, a state root is not.
        std::env::set_current_dir(dir)
            .map_err(|e| fail(format!("cannot enter {}: {e}", dir.display())))?;
        let listener = UnixListener::bind("shim.sock")
            .map_err(|e| fail(format!("cannot listen on {}: {e}", sock_path.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(e.to_string()))?;
        let log = LogWriter::open(&dir.join("container.log"), config.log)
            .map_err(|e| fail(format!("cannot open the log file: {e}")))?;

        state.status = Status::Created;
        state.pid = Some(pid.as_raw());
        state.pid_start = process_start_time(pid.as_raw());
        state.save(&state_path).map_err(|e| fail(e.to_string()))?;
        Ok(Shim {
            dir: dir.to_path_buf(),
            state,
            cgroup,
            pid,
            sync: Some(sync_parent),
            signals,
            listener,
            conns: Vec::new(),
            outputs: [(Some(out_r), Stream::Stdout), (err_r, Stream::Stderr)]
                .into_iter()
                .filter_map(|(fd, stream)| {
                    fd.map(|fd| Output {
                        fd: Some(fd),
                        stream,
                        lines: LineSplitter::default(),
                    })
                })
                .collect(),
            log,
            kill_at: None,
            exit: None,
            stdin,
            stdin_pending: Vec::new(),
            stdin_closing: false,
            tty,
            on_exit: config.on_exit.clone(),
        })
    }

    fn save(&mut self) {
        self.state.log_dropped = self.log.dropped;
        if let Err(e) = self.state.save(&self.dir.join("state.json")) {
            eprintln!("shim: {e}");
        }
    }

    /// The event loop: output, requests, signals, the stop deadline.
    fn serve(&mut self) {
        // After the exit, output still buffered in the pipes is drained,
        // but not forever (a process that escaped the namespace could hold
        // the pipe open).
        let mut drain_until: Option<Instant> = None;
        loop {
            if let Some(exit) = self.exit {
                let drained = self.outputs.iter().all(|o| o.fd.is_none());
                if drained || drain_until.is_some_and(|t| Instant::now() >= t) {
                    self.finish(exit);
                    return;
                }
                drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
            }
            let timeout = [self.kill_at, drain_until]
                .into_iter()
                .flatten()
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .map(|d| {
                    PollTimeout::try_from(d.as_millis().min(60_000) as i32)
                        .unwrap_or(PollTimeout::MAX)
                })
                .unwrap_or(PollTimeout::NONE);

            let mut fds = vec![
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            // An attached client far behind holds the container's output back.
            let behind = self.conns.iter().any(|c| c.out.len() > attach::MAX_PENDING);
            let mut output_fds = 0;
            for o in &self.outputs {
                if let Some(fd) = &o.fd
                    && !behind
                {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    output_fds += 1;
                }
            }
            for c in &self.conns {
                let mut flags = PollFlags::POLLIN;
                if !c.out.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.stream.as_fd(), flags));
            }
            let stdin_polled = !self.stdin_pending.is_empty();
            if let Some(fd) = self.stdin.as_ref().filter(|_| stdin_polled) {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
            }
            let revents = match poll(&mut fds, timeout) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                    .collect::<Vec<PollFlags>>(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("shim: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            drop(fds);
            let ready: Vec<bool> = revents.iter().map(|r| !r.is_empty()).collect();
            let mut i = 2;
            let mut out_ready = Vec::new();
            if output_fds > 0 {
                for (idx, o) in self.outputs.iter().enumerate() {
                    if o.fd.is_some() {
                        if ready[i] {
                            out_ready.push(idx);
                        }
                        i += 1;
                    }
                }
            }
            let conns = self.conns.len();
            let conn_ready: Vec<usize> = (0..conns)
                .filter(|c| revents[i + c].intersects(!PollFlags::POLLOUT))
                .collect();
            let conn_writable: Vec<usize> = (0..conns)
                .filter(|c| revents[i + c].contains(PollFlags::POLLOUT))
                .collect();
            if stdin_polled && ready.get(i + conns) == Some(&true) {
                self.write_stdin();
            }
            let mut gone = Vec::new();
            for c in conn_writable {
                if self.conns[c].flush().is_err() {
                    gone.push(c);
                }
            }
            gone.sort_unstable();
            for c in gone.into_iter().rev() {
                self.conns.swap_remove(c);
            }
            let conn_ready: Vec<usize> = conn_ready
                .into_iter()
                .filter(|c| *c < self.conns.len())
                .collect();

            for idx in out_ready {
                self.read_output(idx);
            }
            if ready[0] {
                while let Ok(Some(_)) = self.signals.read_signal() {}
                self.reap();
            }
            if ready[1] {
                while let Ok((stream, _)) = self.listener.accept() {
                    let _ = stream.set_nonblocking(true);
                    self.conns.push(Conn::new(stream, false));
                }
            }
            for c in conn_ready.into_iter().rev() {
                self.read_request(c);
            }
            if self.kill_at.is_some_and(|t| Instant::now() >= t) && self.exit.is_none() {
                let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
                self.kill_at = None;
            }
        }
    }

    fn read_output(&mut self, idx: usize) {
        let mut buf = [0u8; 16 * 1024];
        let o = &mut self.outputs[idx];
        let Some(fd) = &o.fd else { return };
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EBADF) => {
                let log = &mut self.log;
                let stream = o.stream;
                o.lines.finish(|p, l| log.write(stream, p, l));
                o.fd = None;
            }
            Ok(n) => {
                let log = &mut self.log;
                let stream = o.stream;
                o.lines.feed(&buf[..n], |p, l| log.write(stream, p, l));
                let kind = match stream {
                    Stream::Stdout => attach::STDOUT,
                    Stream::Stderr => attach::STDERR,
                };
                let frame = attach::frame(kind, &buf[..n]);
                for c in self.conns.iter_mut().filter(|c| c.attached) {
                    c.out.extend_from_slice(&frame);
                    let _ = c.flush();
                }
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => o.fd = None,
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == self.pid => {
                    self.record_exit(code, None);
                }
                Ok(WaitStatus::Signaled(p, sig, _)) if p == self.pid => {
                    self.record_exit(128 + sig as i32, Some(sig as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn record_exit(&mut self, code: i32, signal: Option<i32>) {
        let oom = signal == Some(libc::SIGKILL) && self.cgroup.oom_kills(&Linux) > 0;
        self.exit = Some(Exit {
            code,
            signal,
            oom_killed: oom,
        });
        self.kill_at = None;
        self.sync = None;
    }

    fn finish(&mut self, exit: Exit) {
        for o in &mut self.outputs {
            let log = &mut self.log;
            let stream = o.stream;
            o.lines.finish(|p, l| log.write(stream, p, l));
        }
        self.state.status = Status::Exited;
        self.state.exit = Some(exit);
        self.state.finished_at = Some(now_ms());
        self.save();
        let _ = std::fs::remove_file(self.dir.join("shim.sock"));
        // Connections that arrived while the exit was processed get the
        // answer too, whatever they asked: the container is gone.
        while let Ok((stream, _)) = self.listener.accept() {
            self.conns.push(Conn::new(stream, true));
        }
        let line = exit_line(&exit);
        for c in &mut self.conns {
            if c.attached {
                // The rest of the output, then the exit.
                let _ = c.stream.set_nonblocking(false);
                let _ = c.stream.write_all(&c.out);
                let _ = c
                    .stream
                    .write_all(&attach::frame(attach::EXIT, line.as_bytes()));
            } else if c.waiting {
                let _ = c.stream.set_nonblocking(false);
                let _ = c.stream.write_all(line.as_bytes());
            }
        }
    }

    /// Starts the exit command, if any, and leaves it: it outlives the
    /// shim (a removal waits for the shim to be gone).
    fn run_on_exit(&self) {
        let Some((program, args)) = self.on_exit.split_first() else {
            return;
        };
        // Single-threaded here: std's fork-then-exec is safe. Standard
        // error stays the shim's log, where a failure is told.
        let started = std::process::Command::new(program)
            .args(args)
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn();
        if let Err(e) = started {
            eprintln!("shim: cannot run {program}: {e}");
        }
    }

    fn read_request(&mut self, idx: usize) {
        if self.conns[idx].attached {
            self.read_frames(idx);
            return;
        }
        let mut buf = [0u8; 256];
        let n = match self.conns[idx].stream.read(&mut buf) {
            Ok(0) => {
                self.conns.swap_remove(idx);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                self.conns.swap_remove(idx);
                return;
            }
        };
        self.conns[idx].buf.extend_from_slice(&buf[..n]);
        let Some(nl) = self.conns[idx].buf.iter().position(|b| *b == b'\n') else {
            if self.conns[idx].buf.len() > 1024 {
                self.conns.swap_remove(idx);
            }
            return;
        };
        let line = String::from_utf8_lossy(&self.conns[idx].buf[..nl]).into_owned();
        self.conns[idx].buf.clear();
        let answer = match Request::parse(&line) {
            None => Some(format!("error unknown request `{line}`\n")),
            Some(Request::Start) => Some(self.start()),
            Some(Request::Kill(sig)) => Some(match self.signal(sig) {
                Ok(()) => "ok\n".into(),
                Err(e) => format!("error {e}\n"),
            }),
            Some(Request::Stop { signal, grace }) => {
                if self.exit.is_none() {
                    let sig = if self.state.status == Status::Created {
                        libc::SIGKILL
                    } else {
                        signal
                    };
                    let _ = self.signal(sig);
                    self.kill_at = Some(Instant::now() + grace);
                }
                self.conns[idx].waiting = true;
                None
            }
            Some(Request::Wait) => {
                self.conns[idx].waiting = true;
                None
            }
            Some(Request::Attach) => {
                self.conns[idx].attached = true;
                Some("ok\n".into())
            }
        };
        if let Some(a) = answer {
            let c = &mut self.conns[idx];
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.write_all(a.as_bytes());
            let _ = c.stream.set_nonblocking(true);
        }
    }

    /// Input and window sizes from an attached client.
    fn read_frames(&mut self, idx: usize) {
        let mut buf = [0u8; 16 * 1024];
        match self.conns[idx].stream.read(&mut buf) {
            Ok(0) => {
                // Detached; the container's input stays as it is.
                self.conns.swap_remove(idx);
                return;
            }
            Ok(n) => self.conns[idx].buf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                self.conns.swap_remove(idx);
                return;
            }
        }
        while let Some((kind, payload)) = attach::take_frame(&mut self.conns[idx].buf) {
            match kind {
                attach::STDIN if self.stdin.is_some() => {
                    self.stdin_pending.extend_from_slice(&payload);
                }
                attach::CLOSE_STDIN => self.stdin_closing = true,
                attach::RESIZE => {
                    if let (Some(tty), Some((rows, cols))) =
                        (&self.tty, attach::parse_resize(&payload))
                    {
                        let ws = nix::pty::Winsize {
                            ws_row: rows,
                            ws_col: cols,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: TIOCSWINSZ reads the struct we own.
                        unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                }
                _ => {}
            }
        }
        self.write_stdin();
    }

    /// Writes pending input without blocking; closes a pipe at end of input.
    fn write_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            match nix::unistd::write(fd, &self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    // The reader is gone: nothing more can be delivered.
                    self.stdin_pending.clear();
                    self.stdin = None;
                    return;
                }
            }
        }
        // A terminal has no end of input to give; a pipe does.
        if self.stdin_closing && self.tty.is_none() {
            self.stdin = None;
        }
    }

    fn signal(&self, sig: i32) -> Result<(), String> {
        if self.exit.is_some() {
            return Err("the container is not running".into());
        }
        let sig = Signal::try_from(sig).map_err(|e| format!("bad signal {sig}: {e}"))?;
        nix::sys::signal::kill(self.pid, sig).map_err(|e| e.to_string())
    }

    fn start(&mut self) -> String {
        if self.state.status != Status::Created {
            return "error the container was already started\n".into();
        }
        let Some(sync) = self.sync.take() else {
            return "error the container process is gone\n".into();
        };
        if nix::unistd::write(&sync, b"go").is_err() {
            return "error the container process is gone\n".into();
        }
        // The child's end of the socket is close-on-exec: EOF means the
        // command is running; a message means execve failed.
        let mut buf = vec![0u8; 4096];
        let n = nix::unistd::read(&sync, &mut buf).unwrap_or(0);
        if n > 0 {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let why = msg.strip_prefix("error ").unwrap_or(&msg).to_string();
            self.state.error = Some(why.clone());
            self.save();
            return format!("error {why}\n");
        }
        self.state.status = Status::Running;
        self.state.started_at = Some(now_ms());
        self.save();
        "ok\n".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Start,
            Request::Kill(15),
            Request::Stop {
                signal: 2,
                grace: Duration::from_millis(1500),
            },
            Request::Wait,
            Request::Attach,
        ] {
            assert_eq!(Request::parse(&r.to_line()), Some(r));
        }
        assert_eq!(Request::parse("dance"), None);
        assert_eq!(Request::parse("kill x"), None);
    }

    #[test]
    fn exit_lines_round_trip() {
        let e = Exit {
            code: 137,
            signal: Some(9),
            oom_killed: true,
        };
        assert_eq!(parse_exit_line(&exit_line(&e)), Some(e));
        let e = Exit {
            code: 3,
            signal: None,
            oom_killed: false,
        };
        assert_eq!(parse_exit_line(&exit_line(&e)), Some(e));
    }
}
