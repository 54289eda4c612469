//! Helpers for end-to-end tests that drive the `stack` binary as a user
//! would (root, real): a project in its own temporary directory and state
//! root, with the busybox test image imported as `localhost/busybox:latest`,
//! taken down with `down -v` when the test ends, even when it fails.
//!
//! Every project gets a unique name (its tag and the test process's pid),
//! so tests can run in parallel on one kernel; ports come from
//! [`free_port`].

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const STACK: &str = env!("CARGO_BIN_EXE_stack");

/// The test image every project gets.
pub const IMAGE: &str = "localhost/busybox:latest";

/// Whether end-to-end tests can run: root and Debian's busybox-static.
/// On CI their absence is a failure, not a skip.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let busybox = Path::new("/bin/busybox").exists();
    if !root || !busybox {
        assert!(
            std::env::var_os("CI").is_none(),
            "end-to-end tests must run on CI: run as root with busybox-static installed"
        );
        eprintln!(
            "SKIPPED: needs root and /bin/busybox (Debian's busybox-static); `.ci/run` installs it"
        );
        return false;
    }
    true
}

include!("rootfs.rs");

/// One project under test: a directory holding `compose.yaml` (and any
/// file the test adds), a state root inside it, and the test image.
pub struct Project {
    /// The project's name (`<tag><pid>`), also its `name:` in the file.
    pub name: String,
    pub root: PathBuf,
    pub file: PathBuf,
    dir: tempfile::TempDir,
    /// Where `compose.yaml` is: the temporary directory itself, or a
    /// subdirectory named after the project ([`Project::from_dir`]).
    project_dir: PathBuf,
}

impl Project {
    /// A project named `<tag><pid>` whose file is `yaml` with every
    /// `{project}` replaced by that name (the file should say
    /// `name: {project}`). The test image is imported into its state root.
    pub fn new(tag: &str, yaml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{tag}{}", std::process::id());
        let root = dir.path().join("root");
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml.replace("{project}", &name)).unwrap();
        let project_dir = dir.path().to_path_buf();
        let p = Project {
            name,
            root,
            file,
            dir,
            project_dir,
        };
        p.import_busybox();
        p
    }

    /// A project made from a directory of files (a conformance case):
    /// every file of `source` copied into a directory named `<tag><pid>`
    /// (so the project takes that name, as compose names a project after
    /// its directory), each passed through `rewrite` (to give it free
    /// ports). The test image is imported into its state root.
    pub fn from_dir(tag: &str, source: &Path, rewrite: impl Fn(&str) -> String) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{tag}{}", std::process::id());
        let project_dir = dir.path().join(&name);
        std::fs::create_dir_all(&project_dir).unwrap();
        for entry in std::fs::read_dir(source).unwrap().flatten() {
            if entry.path().is_file() {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                std::fs::write(project_dir.join(entry.file_name()), rewrite(&text)).unwrap();
            }
        }
        let p = Project {
            root: dir.path().join("root"),
            file: project_dir.join("compose.yaml"),
            name,
            dir,
            project_dir,
        };
        p.import_busybox();
        p
    }

    /// Imports a root filesystem into the project's state root as `tag`
    /// with `CMD cmd` (JSON, e.g. `["sh"]`).
    pub fn import(&self, rootfs: &Path, tag: &str, cmd: &str) {
        ok(
            Command::new(STACK)
                .arg("--root")
                .arg(&self.root)
                .args(["image", "import"])
                .arg(rootfs)
                .args([tag, "-c", &format!("CMD {cmd}")])
                .output()
                .unwrap(),
            "image import",
        );
    }

    fn import_busybox(&self) {
        let rootfs = busybox_rootfs(self.dir.path());
        self.import(&rootfs, IMAGE, r#"["sh"]"#);
    }

    /// The project's directory (where `compose.yaml` is).
    pub fn dir(&self) -> &Path {
        &self.project_dir
    }

    /// A scratch directory of the test, outside the project's directory.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file next to `compose.yaml`.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.project_dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    /// Replaces the stack file (with `{project}` substituted).
    pub fn rewrite(&self, yaml: &str) {
        std::fs::write(&self.file, yaml.replace("{project}", &self.name)).unwrap();
    }

    /// `stack --root ROOT -f FILE`, ready for more arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new(STACK);
        c.arg("--root").arg(&self.root).arg("-f").arg(&self.file);
        c
    }

    /// Runs `stack ... ARGS` and returns its output, whatever the status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("stack runs")
    }

    /// Runs `stack ... ARGS` with `input` as its standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("stack runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// The runtime's record of a container (`stack runtime state`), if it exists.
    pub fn state(&self, container: &str) -> Option<serde_json::Value> {
        let o = Command::new(STACK)
            .arg("--root")
            .arg(&self.root)
            .args(["runtime", "state", container])
            .output()
            .ok()?;
        serde_json::from_slice(&o.stdout).ok()
    }

    /// Runs `stack ... ARGS`, asserts success and returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.run(args), &args.join(" "))
    }

    /// Runs `stack ... ARGS`, asserts it failed with exit code `code` (1:
    /// the operation failed, 3: the stack file is wrong) and returns its
    /// standard error, the message the user reads.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(code), "{}: {o:?}", args.join(" "));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Runs `stack ... ARGS` with these environment variables set.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("stack runs")
    }

    /// [`Project::run_env`], asserting success; returns standard output.
    pub fn ok_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        ok(self.run_env(args, env), &args.join(" "))
    }

    /// The container `<project>-<service>-<n>`.
    pub fn container(&self, service: &str, n: u32) -> String {
        format!("{}-{service}-{n}", self.name)
    }

    /// Runs CMD in a container through the runtime (not `stack exec`).
    pub fn exec(&self, container: &str, cmd: &[&str]) -> Output {
        Command::new(STACK)
            .arg("--root")
            .arg(&self.root)
            .args(["runtime", "exec", container, "--"])
            .args(cmd)
            .output()
            .unwrap()
    }

    /// The host pid of a running container's process.
    pub fn pid(&self, container: &str) -> Option<i64> {
        let o = Command::new(STACK)
            .arg("--root")
            .arg(&self.root)
            .args(["runtime", "state", container])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        (v["status"] == "running").then(|| v["pid"].as_i64())?
    }

    /// What of the project is left on the host: links, nftables tables,
    /// mounts under the state root, cgroups, watcher processes. Empty
    /// after a complete `down`.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
        for l in String::from_utf8_lossy(&links.stdout).lines() {
            if l.contains(&format!("stack:{}:", self.name)) {
                left.push(format!("link: {l}"));
            }
        }
        if let Ok(nft) = Command::new("nft").args(["list", "tables"]).output() {
            for l in String::from_utf8_lossy(&nft.stdout).lines() {
                if l.trim_end().ends_with(&format!("stack-{}", self.name)) {
                    left.push(format!("nft: {l}"));
                }
            }
        }
        let root = self.root.to_string_lossy().into_owned();
        for l in std::fs::read_to_string("/proc/mounts").unwrap().lines() {
            if l.contains(&root) {
                left.push(format!("mount: {l}"));
            }
        }
        for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = controller.path().join("stack").join(&self.name);
            if p.exists() {
                left.push(format!("cgroup: {}", p.display()));
            }
        }
        let watchers = Command::new("pgrep")
            .args(["-f", &format!("{root} .*watch")])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&watchers.stdout).lines() {
            left.push(format!("watcher process: {pid}"));
        }
        left
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "-t", "0"]);
        let _ = self.run(&["down", "-v"]);
    }
}

/// Asserts that a command succeeded and returns its standard output.
pub fn ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what} failed: {}\nstdout: {out}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A static UDP echo server (port 10001) for test images, compiled once
/// per test process from `tests/support/udp_echo.rs` (busybox's `nc` has
/// no UDP mode).
pub fn udp_echo_binary() -> &'static Path {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("stack-udp-echo-{}", std::process::id()));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/udp_echo.rs");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        ok(
            Command::new(rustc)
                .args([
                    "-O",
                    "-C",
                    "target-feature=+crt-static",
                    "-C",
                    "strip=symbols",
                ])
                .arg(&source)
                .arg("-o")
                .arg(&out)
                .output()
                .expect("rustc runs"),
            "compiling the UDP echo helper",
        );
        out
    })
}

/// A UDP port free on 127.0.0.1 right now (never one handed out before
/// in this test process).
pub fn free_udp_port() -> u16 {
    unique_port(|| {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// The kernel may give a port that was just released to the next caller:
/// tests running in parallel would then publish the same port.
fn unique_port(mut pick: impl FnMut() -> u16) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = pick();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Sends `msg` to `to` over UDP until the same bytes come back.
pub fn udp_echoed(to: std::net::SocketAddr, msg: &str, limit: Duration) -> String {
    let socket =
        std::net::UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    eventually(&format!("a UDP echo from {to}"), limit, || {
        socket.send_to(msg.as_bytes(), to).ok()?;
        let mut buf = [0u8; 512];
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// A TCP port free on 127.0.0.1 right now (never one handed out before
/// in this test process).
pub fn free_port() -> u16 {
    unique_port(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    })
}

/// GET `path` on 127.0.0.1:port, raw HTTP; the response when it is 200.
pub fn fetch(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.contains("200 OK").then_some(text)
}

/// Polls `f` every 100 ms until it gives a value; fails the test after `limit`.
pub fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
