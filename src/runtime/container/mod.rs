//! Containers: the API the rest of stack uses, on top of the shim.
//!
//! [`Runtime`] is blocking and cheap: each call reads files, talks to a
//! shim over its socket, or starts a helper process. The planner's async
//! `Runtime` trait wraps it with `spawn_blocking`. A container is named by
//! an id unique on the host (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64
//! bytes); its directory is `<root>/containers/<id>/`.
//!
//! ```text
//! build::container_config(service, image, ctx) ─► ContainerConfig
//! Runtime::create(id, config)  ─► shim running, process waiting  (pid for the network hook)
//! Runtime::start(id)           ─► command running
//! Runtime::start_again(id)     ─► an exited container created again, its files and log kept
//! Runtime::stop / kill / pause / resume / exec / stats / logs / state / wait
//! Runtime::remove(id, force)   ─► nothing left: no process, cgroup, mount or file
//! ```

pub mod build;
pub mod logs;
mod placement;
pub mod state;
pub mod user;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

pub use build::{BindMount, BuildContext, ContainerConfig, ImageConfig, LogOptions, NetworkMode};
pub use state::{Exit, State, Status};

use crate::runtime::cgroup::{Cgroup, CgroupError, Hierarchy, Limits, Usage};
use crate::runtime::security::SecurityError;
use crate::runtime::shim::{self, Request, exec::ExecRequest};
use crate::runtime::sys::Linux;

/// What went wrong with a container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no container `{0}`; list containers with `stack ps -a`")]
    NotFound(String),
    #[error("a container `{0}` already exists; remove it first or choose another name")]
    Exists(String),
    #[error("the container `{0}` is not running")]
    NotRunning(String),
    #[error("the container `{0}` is running; stop it first or remove it with force")]
    StillRunning(String),
    #[error(
        "`{0}` is not a valid container id: use letters, digits, `_`, `.` and `-`, at most 64 characters, starting with a letter or digit"
    )]
    BadId(String),
    #[error(
        "service `{0}` has no command: set `command` or `entrypoint`, or use an image that has one"
    )]
    NoCommand(String),
    #[error("the working directory `{0}` must be an absolute path")]
    RelativeWorkingDir(String),
    #[error("unknown {what} `{name}` in the image's /etc/{}; use a numeric id or add the {what} to the image", if what == "user" { "passwd" } else { "group" })]
    UnknownUser { what: String, name: String },
    #[error("unknown signal `{0}`; use a name such as SIGTERM or a number")]
    BadSignal(String),
    #[error("unknown ulimit `{0}`; use nofile, nproc, core, memlock, stack, ...")]
    BadUlimit(String),
    #[error(
        "the sysctl `{0}` is not namespaced (or needs the container's own network); only IPC sysctls (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) and, with its own network, net.* are allowed"
    )]
    BadSysctl(String),
    #[error(
        "the device `{0}` cannot be given to the container: use HOST_PATH[:CONTAINER_PATH[:rwm]] with HOST_PATH an existing device node"
    )]
    BadDevice(String),
    #[error(
        "blkio_config.{key}: `{value}` is not usable: each entry needs `path` (a block device on this host) and `rate` (bytes per second, units b/k/m/g allowed, for *_bps; a number for *_iops)"
    )]
    BadBlkio { key: &'static str, value: String },
    #[error(
        "device_cgroup_rules: `{0}` is not a rule; write TYPE MAJOR:MINOR ACCESS, e.g. `c 1:3 mr` (TYPE a, b or c; `*` for any number; ACCESS of r, w, m)"
    )]
    BadDeviceRule(String),
    #[error(
        "logging option {key}=`{value}` is not valid; use sizes like 10m and a file count of at least 1"
    )]
    BadLogOption { key: &'static str, value: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed runtime data: {0}; this is a bug in stack")]
    Json(String),
    #[error("the container could not be created: {0}")]
    Create(String),
    #[error("the container could not be started: {0}")]
    Start(String),
    #[error("the shim of container `{id}` did not answer ({why}); it may have died: check {log}")]
    Shim {
        id: String,
        why: String,
        log: PathBuf,
    },
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

impl ContainerError {
    pub(crate) fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> ContainerError + 'a {
        move |source| ContainerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn json(e: serde_json::Error) -> ContainerError {
        ContainerError::Json(e.to_string())
    }
}

/// Connects to a Unix socket; a path longer than the 108 bytes a socket
/// address holds goes through the directory's descriptor instead.
fn connect(path: &Path) -> std::io::Result<UnixStream> {
    if path.as_os_str().len() < 100 {
        return UnixStream::connect(path);
    }
    let dir = std::fs::File::open(path.parent().unwrap_or(Path::new("/")))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let short = format!(
        "/proc/self/fd/{}/{name}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    );
    UnixStream::connect(short)
}

/// Waits (at most `limit`) for the process `pid` that started at `start`
/// to exit, with a pidfd: no polling, and no confusion with a process that
/// reused the pid (the start time is checked after the pidfd is open).
fn wait_for_exit(pid: Option<i32>, start: Option<u64>, limit: Duration) {
    let Some(raw) = pid.and_then(rustix::process::Pid::from_raw) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    if !state::same_process(pid, start) {
        return;
    }
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&fd),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
}

/// The runtime over a state root.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    shim_binary: PathBuf,
}

/// The answer of [`Runtime::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// The container's first process as the host sees it: attach the
    /// network to `/proc/<pid>/ns/net` before [`Runtime::start`].
    pub pid: i32,
}

impl Runtime {
    /// A runtime keeping containers under `<root>/containers`, whose shims
    /// are this executable.
    pub fn new(root: impl Into<PathBuf>) -> Result<Runtime, ContainerError> {
        let exe = std::env::current_exe()
            .map_err(ContainerError::io("find", Path::new("/proc/self/exe")))?;
        Ok(Runtime {
            root: root.into(),
            shim_binary: exe,
        })
    }

    /// Uses `path` (a `stack` binary) as the shim; for tests and benchmarks,
    /// whose own executable is not `stack`.
    pub fn with_shim_binary(mut self, path: impl Into<PathBuf>) -> Runtime {
        self.shim_binary = path.into();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `stack` executable the shims are (and commands they start).
    pub fn shim_binary(&self) -> &Path {
        &self.shim_binary
    }

    /// The container's directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Every container id under the root.
    pub fn list(&self) -> Result<Vec<String>, ContainerError> {
        let dir = self.root.join("containers");
        let mut ids = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    if e.path().join("config.json").exists() {
                        ids.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ContainerError::io("list", &dir)(e)),
        }
        ids.sort();
        Ok(ids)
    }

    /// The container's configuration (labels included, for `observe`).
    pub fn config(&self, id: &str) -> Result<ContainerConfig, ContainerError> {
        let path = self.dir(id).join("config.json");
        let text = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContainerError::NotFound(id.to_string())
            } else {
                ContainerError::io("read", &path)(e)
            }
        })?;
        serde_json::from_slice(&text).map_err(ContainerError::json)
    }

    /// Writes the container's directory and starts its shim; returns once
    /// the process waits for [`Runtime::start`] (attach the network to
    /// `/proc/<pid>/ns/net` in between).
    pub fn create(&self, id: &str, config: &ContainerConfig) -> Result<Created, ContainerError> {
        self.create_or_run(id, config, false)
    }

    /// `create` then `start`, in one exchange with the shim (no network
    /// hook: for `network_mode` none, host or joining another container).
    pub fn run(&self, id: &str, config: &ContainerConfig) -> Result<Created, ContainerError> {
        self.create_or_run(id, config, true)
    }

    fn create_or_run(
        &self,
        id: &str,
        config: &ContainerConfig,
        start: bool,
    ) -> Result<Created, ContainerError> {
        if id.is_empty() || id.len() > 64 || id.contains('/') || id.starts_with('.') {
            return Err(ContainerError::BadId(id.to_string()));
        }
        let containers = self.root.join("containers");
        std::fs::create_dir_all(&containers).map_err(ContainerError::io("create", &containers))?;
        placement::spread_subdirectories(&containers);
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ContainerError::Exists(id.to_string()));
            }
            Err(e) => return Err(ContainerError::io("create", &dir)(e)),
        }
        let result = self.create_in(id, &dir, config, start);
        if let Err(e) = &result
            && !matches!(e, ContainerError::Start(_))
        {
            let _ = self.cleanup(id, config);
        }
        result
    }

    fn create_in(
        &self,
        id: &str,
        dir: &Path,
        config: &ContainerConfig,
        start: bool,
    ) -> Result<Created, ContainerError> {
        for sub in ["upper", "work", "rootfs"] {
            let p = dir.join(sub);
            std::fs::create_dir(&p).map_err(ContainerError::io("create", &p))?;
        }
        for (name, content) in [
            ("hosts", &config.hosts),
            ("resolv.conf", &config.resolv_conf),
            ("hostname", &config.hostname_file),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, content).map_err(ContainerError::io("write", &p))?;
        }
        let bytes = serde_json::to_vec(config).map_err(ContainerError::json)?;
        state::replace_file(&dir.join("config.json"), &bytes)?;
        self.spawn_shim(id, dir, start)
    }

    /// Replaces the configuration of a container that is not running, for
    /// its next [`Runtime::start_again`] (a namespace it joins that was
    /// made again meanwhile).
    pub fn replace_config(&self, id: &str, config: &ContainerConfig) -> Result<(), ContainerError> {
        let s = self.state(id)?;
        if matches!(
            s.status,
            Status::Running | Status::Paused | Status::Creating
        ) {
            return Err(ContainerError::StillRunning(id.to_string()));
        }
        let bytes = serde_json::to_vec(config).map_err(ContainerError::json)?;
        state::replace_file(&self.dir(id).join("config.json"), &bytes)
    }

    /// Creates an exited container again, as `docker start` and restart
    /// policies do: what the last run left behind (its cgroup, the shim's
    /// socket, overlayfs' scratch directory) goes, what belongs to the
    /// container stays: the writable layer `upper/` (files the process
    /// wrote outside volumes), `container.log` and its rotated files
    /// (`logs` shows every run, in order), `config.json` and the
    /// hosts/resolv.conf/hostname files. A new shim then sets the container
    /// up as [`Runtime::create`] does: attach the network to
    /// `/proc/<pid>/ns/net`, then [`Runtime::start`]. Only
    /// [`Runtime::remove`] loses the container's files.
    pub fn start_again(&self, id: &str) -> Result<Created, ContainerError> {
        let config = self.config(id)?;
        let s = self.state(id)?;
        if matches!(
            s.status,
            Status::Created | Status::Running | Status::Paused | Status::Creating
        ) {
            return Err(ContainerError::StillRunning(id.to_string()));
        }
        // A shim that died without recording the exit may have left its
        // process behind; the cgroup's removal below kills the rest.
        if state::same_process(s.pid, s.pid_start)
            && let Some(pid) = s.pid
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            wait_for_exit(s.pid, s.pid_start, Duration::from_secs(2));
        }
        // The shim exits right after recording the exit: wait for it so
        // that it no longer writes into the directory.
        wait_for_exit(s.shim_pid, s.shim_start, Duration::from_secs(2));
        self.end_run(id, &config)?;
        let result = self.spawn_shim(id, &self.dir(id), false);
        if result.is_err() {
            // The container stays, exited (the shim recorded why): only
            // what the failed run may have made goes.
            let _ = self.end_run(id, &config);
        }
        result
    }

    /// Tears down what one run of the container leaves outside its files:
    /// its cgroup (counters such as OOM kills must start from zero, and a
    /// leftover process dies with it), the shim's socket, and overlayfs'
    /// work directory, which must be empty when the layers are mounted
    /// again. The root filesystem was mounted in the container's own mount
    /// namespace only, so it went away with the container's last process.
    fn end_run(&self, id: &str, config: &ContainerConfig) -> Result<(), ContainerError> {
        if let Ok(cg) = self.cgroup(config)
            && !cg.path().is_empty()
        {
            cg.remove(&Linux)?;
        }
        let dir = self.dir(id);
        let sock = dir.join("shim.sock");
        match std::fs::remove_file(&sock) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ContainerError::io("remove", &sock)(e)),
        }
        let work = dir.join("work");
        match std::fs::remove_dir_all(&work) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ContainerError::io("clear", &work)(e)),
        }
        std::fs::create_dir(&work).map_err(ContainerError::io("create", &work))
    }

    /// Runs a shim over the container's directory (already written) and
    /// waits for its first word: `created <pid>`, or with `start`,
    /// `running <pid>`.
    fn spawn_shim(&self, id: &str, dir: &Path, start: bool) -> Result<Created, ContainerError> {
        let log_path = dir.join("shim.log");
        let shim_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(ContainerError::io("create", &log_path))?;
        // std's Command forks and immediately execs, which is safe from a
        // multi-threaded process.
        let mut cmd = Command::new(&self.shim_binary);
        cmd.arg(shim::SHIM_COMMAND).arg(&self.root).arg(id);
        if start {
            cmd.arg("--start");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .current_dir("/")
            .spawn()
            .map_err(ContainerError::io("run", &self.shim_binary))?;
        let mut out = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            let _ = pipe.read_to_string(&mut out);
        }
        let _ = child.wait();
        let line = out.lines().next().unwrap_or_default();
        let expected = if start { "running " } else { "created " };
        if let Some(pid) = line
            .strip_prefix(expected)
            .and_then(|p| p.trim().parse().ok())
        {
            return Ok(Created { pid });
        }
        let why = line.strip_prefix("error ").unwrap_or(line).to_string();
        if start && !why.is_empty() && self.state(id).is_ok_and(|s| s.pid.is_some()) {
            // Created, but the command could not be executed: like
            // `start`, this leaves the container for inspection.
            return Err(ContainerError::Start(why));
        }
        Err(ContainerError::Create(if why.is_empty() {
            format!("the shim exited without a word; see {}", log_path.display())
        } else {
            why
        }))
    }

    /// A shim that did not answer, pointing at its log.
    fn shim_err(&self, id: &str, why: String) -> ContainerError {
        ContainerError::Shim {
            id: id.to_string(),
            why,
            log: self.dir(id).join("shim.log"),
        }
    }

    /// Connects to the container's shim and sends `req`; the answer is
    /// for the caller to read from the stream.
    fn send(&self, id: &str, req: &Request) -> Result<UnixStream, ContainerError> {
        let dir = self.dir(id);
        if !dir.join("config.json").exists() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        let mut s = connect(&dir.join("shim.sock")).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ContainerError::NotRunning(id.to_string())
            }
            _ => self.shim_err(id, e.to_string()),
        })?;
        s.write_all(req.to_line().as_bytes())
            .map_err(|e| self.shim_err(id, e.to_string()))?;
        Ok(s)
    }

    fn request(&self, id: &str, req: &Request) -> Result<String, ContainerError> {
        let s = self.send(id, req)?;
        let shim_err = |why: String| self.shim_err(id, why);
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .map_err(|e| shim_err(e.to_string()))?;
        if line.is_empty() {
            return Err(shim_err("the connection closed".into()));
        }
        Ok(line.trim_end().to_string())
    }

    /// Opens the attach channel to the container's standard streams
    /// (see [`crate::runtime::shim::attach`]): frames follow on the stream.
    pub fn attach(&self, id: &str) -> Result<UnixStream, ContainerError> {
        let mut s = self.send(id, &Request::Attach)?;
        let shim_err = |why: String| self.shim_err(id, why);
        // Byte by byte: what follows the answer line is the first frame.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.last() != Some(&b'\n') {
            match s.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                Ok(_) => return Err(shim_err("the connection closed".into())),
                Err(e) => return Err(shim_err(e.to_string())),
            }
        }
        if line != b"ok\n" {
            return Err(shim_err(format!(
                "unexpected answer `{}`",
                String::from_utf8_lossy(&line).trim()
            )));
        }
        Ok(s)
    }

    /// Starts the command of a created container.
    pub fn start(&self, id: &str) -> Result<(), ContainerError> {
        let answer = self.request(id, &Request::Start)?;
        match answer.strip_prefix("error ") {
            None => Ok(()),
            Some(why) => Err(ContainerError::Start(why.to_string())),
        }
    }

    /// Sends a signal to the container's first process.
    pub fn kill(&self, id: &str, signal: i32) -> Result<(), ContainerError> {
        let answer = self.request(id, &Request::Kill(signal))?;
        match answer.strip_prefix("error ") {
            None => Ok(()),
            Some(_) => Err(ContainerError::NotRunning(id.to_string())),
        }
    }

    /// Sends the stop signal, SIGKILL after `grace` (default: 10 s), and
    /// returns how the container ended.
    pub fn stop(&self, id: &str, grace: Option<Duration>) -> Result<Exit, ContainerError> {
        let config = self.config(id)?;
        let req = Request::Stop {
            signal: config.stop_signal,
            grace: grace.unwrap_or(build::DEFAULT_STOP_GRACE),
        };
        match self.request(id, &req) {
            Ok(line) => self.exit_from(id, &line),
            Err(e) => self.recorded_exit(id).map_err(|_| e),
        }
    }

    /// Blocks until the container exits.
    pub fn wait(&self, id: &str) -> Result<Exit, ContainerError> {
        match self.request(id, &Request::Wait) {
            Ok(line) => self.exit_from(id, &line),
            // The shim exits right after recording the exit: a request
            // racing with that finds the record instead.
            Err(e) => self.recorded_exit(id).map_err(|_| e),
        }
    }

    fn exit_from(&self, id: &str, line: &str) -> Result<Exit, ContainerError> {
        shim::parse_exit_line(line).ok_or_else(|| ContainerError::Shim {
            id: id.to_string(),
            why: format!("unexpected answer `{line}`"),
            log: self.dir(id).join("shim.log"),
        })
    }

    fn recorded_exit(&self, id: &str) -> Result<Exit, ContainerError> {
        let s = self.state(id)?;
        s.exit
            .ok_or_else(|| ContainerError::NotRunning(id.to_string()))
    }

    /// The container's state, liveness checked.
    pub fn state(&self, id: &str) -> Result<State, ContainerError> {
        self.state_of(id, None)
    }

    /// [`Runtime::state`] for a caller that has read the container's
    /// configuration already (spares parsing it again).
    pub fn state_with_config(
        &self,
        id: &str,
        config: &ContainerConfig,
    ) -> Result<State, ContainerError> {
        self.state_of(id, Some(config))
    }

    fn state_of(
        &self,
        id: &str,
        config: Option<&ContainerConfig>,
    ) -> Result<State, ContainerError> {
        let path = self.dir(id).join("state.json");
        if !path.exists() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        let mut s = State::load(&path)?;
        if matches!(
            s.status,
            Status::Created | Status::Running | Status::Creating
        ) && !state::same_process(s.shim_pid, s.shim_start)
        {
            // The shim died without recording an exit.
            if !state::same_process(s.pid, s.pid_start) {
                s.status = Status::Dead;
            }
        }
        if s.status == Status::Running && self.frozen(id, config).unwrap_or(false) {
            s.status = Status::Paused;
        }
        Ok(s)
    }

    fn cgroup(&self, config: &ContainerConfig) -> Result<Cgroup, ContainerError> {
        let linux = config.spec.linux().clone().unwrap_or_default();
        let limits = linux
            .resources()
            .as_ref()
            .map(Limits::from_oci)
            .unwrap_or_default();
        let path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Cgroup::new(Hierarchy::cached()?, &path, &limits)?)
    }

    fn frozen(&self, id: &str, config: Option<&ContainerConfig>) -> Result<bool, ContainerError> {
        let cg = match config {
            Some(c) => self.cgroup(c)?,
            None => self.cgroup(&self.config(id)?)?,
        };
        Ok(cg.dirs().iter().any(|d| {
            std::fs::read_to_string(d.join("freezer.state"))
                .map(|s| s.trim() == "FROZEN")
                .or_else(|_| {
                    std::fs::read_to_string(d.join("cgroup.freeze")).map(|s| s.trim() == "1")
                })
                .unwrap_or(false)
        }))
    }

    /// Freezes every process of the container, and returns once they all
    /// are: the kernel passes through FREEZING, and (as runc does) the
    /// request is repeated until it settles.
    pub fn pause(&self, id: &str) -> Result<(), ContainerError> {
        let cg = self.cgroup(&self.config(id)?)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            cg.freeze(&Linux, true)?;
            if self.frozen(id, None)? {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = cg.freeze(&Linux, false);
                return Err(ContainerError::Cgroup(CgroupError::Io {
                    action: "freeze",
                    path: cg.dirs().first().cloned().unwrap_or_default(),
                    source: std::io::Error::other(
                        "its processes did not all stop within 5 seconds; it was thawed again, try once more",
                    ),
                }));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), ContainerError> {
        Ok(self.cgroup(&self.config(id)?)?.freeze(&Linux, false)?)
    }

    /// The host pids of every process in the container (its cgroup's).
    pub fn processes(&self, id: &str) -> Result<Vec<i32>, ContainerError> {
        Ok(self.cgroup(&self.config(id)?)?.pids(&Linux))
    }

    /// Memory, CPU and pids usage.
    pub fn stats(&self, id: &str) -> Result<Usage, ContainerError> {
        Ok(self.cgroup(&self.config(id)?)?.usage(&Linux))
    }

    /// The container's log records, oldest first.
    pub fn logs(
        &self,
        id: &str,
        since: Option<SystemTime>,
    ) -> Result<Vec<logs::LogEntry>, ContainerError> {
        let path = self.dir(id).join("container.log");
        if !self.dir(id).exists() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        logs::read_logs(&path, since).map_err(ContainerError::io("read", &path))
    }

    /// Follows the container's log (`logs -f`), from its current end or
    /// from the start of the live file.
    pub fn follow_logs(
        &self,
        id: &str,
        from_start: bool,
    ) -> Result<logs::Follower, ContainerError> {
        if !self.dir(id).exists() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        let path = self.dir(id).join("container.log");
        Ok(if from_start {
            logs::Follower::from_start(&path)
        } else {
            logs::Follower::from_end(&path)
        })
    }

    /// A command that runs `req` in the container when spawned; its standard
    /// streams are the command's, and its exit status is the one of `req`.
    pub fn exec_command(&self, id: &str, req: &ExecRequest) -> Result<Command, ContainerError> {
        let s = self.state(id)?;
        if s.status != Status::Running {
            return Err(ContainerError::NotRunning(id.to_string()));
        }
        let json = serde_json::to_string(req).map_err(ContainerError::json)?;
        let mut cmd = Command::new(&self.shim_binary);
        cmd.arg(shim::EXEC_COMMAND)
            .arg(&self.root)
            .arg(id)
            .arg(json);
        Ok(cmd)
    }

    /// Runs `req` in the container and returns its exit code, output captured.
    pub fn exec(
        &self,
        id: &str,
        req: &ExecRequest,
    ) -> Result<std::process::Output, ContainerError> {
        self.exec_command(id, req)?
            .stdin(Stdio::null())
            .output()
            .map_err(ContainerError::io("run", &self.shim_binary))
    }

    /// Removes the container: with `force`, kills it first. Afterwards no
    /// process, cgroup, mount or file of it remains.
    pub fn remove(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let config = self.config(id)?;
        let s = self.state(id)?;
        let alive = matches!(
            s.status,
            Status::Created | Status::Running | Status::Paused | Status::Creating
        ) || state::same_process(s.pid, s.pid_start);
        if alive {
            if !force {
                return Err(ContainerError::StillRunning(id.to_string()));
            }
            if s.status == Status::Paused {
                let _ = self.resume(id);
            }
            match self.request(
                id,
                &Request::Stop {
                    signal: libc::SIGKILL,
                    grace: Duration::ZERO,
                },
            ) {
                Ok(_) | Err(ContainerError::NotRunning(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // The shim exits right after answering; wait for it so that it no
        // longer writes into the directory.
        wait_for_exit(s.shim_pid, s.shim_start, Duration::from_secs(2));
        self.cleanup(id, &config)
    }

    fn cleanup(&self, id: &str, config: &ContainerConfig) -> Result<(), ContainerError> {
        if let Ok(cg) = self.cgroup(config)
            && !cg.path().is_empty()
        {
            cg.remove(&Linux)?;
        }
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ContainerError::io("remove", &dir)(e)),
        }
    }
}
