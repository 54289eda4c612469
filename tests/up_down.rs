//! `stack up` and `stack down` for real (root): a two-service busybox stack
//! on a fresh state root, reached through its published port, by name
//! through the project's DNS, with a named volume that outlives `down`, a
//! killed container restarted by the watcher, and nothing left after
//! `down -v`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const STACK: &str = env!("CARGO_BIN_EXE_stack");

fn skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let busybox = Path::new("/bin/busybox").exists();
    if !root || !busybox {
        eprintln!(
            "SKIPPED: needs root and /bin/busybox (Debian's busybox-static); `.ci/run` installs it"
        );
        return true;
    }
    false
}

/// Runs `stack --root ROOT -f FILE ARGS...`.
fn stack(root: &Path, file: &Path, args: &[&str]) -> Output {
    Command::new(STACK)
        .arg("--root")
        .arg(root)
        .arg("-f")
        .arg(file)
        .args(args)
        .output()
        .expect("stack runs")
}

fn ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what} failed: {}\nstdout: {out}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Takes the stack down and the directory away, even when the test fails.
struct Guard {
    root: PathBuf,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = stack(&self.root, &self.file, &["down", "-v"]);
    }
}

fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "srv"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    for f in ["hosts", "resolv.conf", "hostname"] {
        std::fs::write(rootfs.join("etc").join(f), "").unwrap();
    }
    rootfs
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET / on 127.0.0.1:port, raw HTTP.
fn fetch(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.contains("200 OK").then_some(text)
}

fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exec(root: &Path, container: &str, cmd: &[&str]) -> Output {
    Command::new(STACK)
        .arg("--root")
        .arg(root)
        .args(["runtime", "exec", container, "--"])
        .args(cmd)
        .output()
        .unwrap()
}

fn container_pid(root: &Path, container: &str) -> Option<i64> {
    let o = Command::new(STACK)
        .arg("--root")
        .arg(root)
        .args(["runtime", "state", container])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    (v["status"] == "running").then(|| v["pid"].as_i64())?
}

#[test]
fn a_stack_comes_up_answers_heals_and_goes_down_leaving_nothing() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let project = format!("updown{}", std::process::id());
    let port = free_port();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "echo hello-from-web > /srv/index.html; httpd -f -p 8080 -h /srv"]
    ports: ["127.0.0.1:{port}:8080"]
    volumes: [data:/data]
    tmpfs: [/scratch]
    secrets: [token]
    configs: [{{source: greeting, target: /etc/greeting}}]
  client:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    depends_on: [web]
volumes:
  data: {{}}
secrets:
  token:
    file: ./token.txt
configs:
  greeting:
    content: hello-config
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("token.txt"), "s3cret").unwrap();
    let guard = Guard {
        root: root.clone(),
        file: file.clone(),
        _dir: dir,
    };
    let rootfs = busybox_rootfs(guard._dir.path());
    ok(
        Command::new(STACK)
            .arg("--root")
            .arg(&root)
            .args(["image", "import"])
            .arg(&rootfs)
            .args(["localhost/busybox:latest", "-c", r#"CMD ["sh"]"#])
            .output()
            .unwrap(),
        "image import",
    );

    ok(stack(&root, &file, &["up", "-d"]), "up -d");
    let ps = ok(stack(&root, &file, &["ps"]), "ps");
    assert!(ps.contains(&format!("{project}-web-1")), "{ps}");
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");

    // The published port answers on 127.0.0.1.
    let page = eventually(
        "the page on the published port",
        Duration::from_secs(10),
        || fetch(port),
    );
    assert!(page.contains("hello-from-web"), "{page}");

    // The client reaches web by its service name, through the project's DNS.
    let client = format!("{project}-client-1");
    let web = format!("{project}-web-1");
    let answer = eventually("web resolved by DNS", Duration::from_secs(10), || {
        let o = exec(&root, &client, &["nslookup", "web"]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        (o.status.success() && text.contains("Address")).then_some(text)
    });
    assert!(answer.contains("Name:"), "{answer}");
    let got = eventually("the page by service name", Duration::from_secs(10), || {
        let o = exec(
            &root,
            &client,
            &["wget", "-q", "-O", "-", "http://web:8080/"],
        );
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    assert!(got.contains("hello-from-web"), "{got}");

    // Secrets and configs are files, mounted read-only; tmpfs is a tmpfs.
    let o = exec(&root, &web, &["cat", "/run/secrets/token", "/etc/greeting"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "s3crethello-config",
        "{o:?}"
    );
    let o = exec(&root, &web, &["sh", "-c", "echo x > /run/secrets/token"]);
    assert!(!o.status.success(), "a secret is read-only");
    let o = exec(&root, &web, &["grep", " /scratch tmpfs ", "/proc/mounts"]);
    assert!(o.status.success(), "{o:?}");

    // A named volume's data survives down and up.
    let o = exec(&root, &web, &["sh", "-c", "echo kept > /data/keep"]);
    assert!(o.status.success(), "{o:?}");
    ok(stack(&root, &file, &["down"]), "down");
    ok(stack(&root, &file, &["up", "-d"]), "up -d again");
    let o = exec(&root, &web, &["cat", "/data/keep"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "kept", "{o:?}");

    // Killed: the watcher starts it again (and applies no new revision).
    let revisions = || {
        std::fs::read_dir(root.join("projects").join(&project).join("revisions"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let kept = revisions();
    let before = eventually("web's pid", Duration::from_secs(5), || {
        container_pid(&root, &web)
    });
    // SAFETY: kill has no memory effects; the pid is the container's init, which we started.
    unsafe { libc::kill(before as i32, libc::SIGKILL) };
    let after = eventually(
        "web restarted by the watcher",
        Duration::from_secs(15),
        || container_pid(&root, &web).filter(|p| *p != before),
    );
    assert_ne!(before, after);
    assert_eq!(revisions(), kept, "a restart is not a new revision");
    eventually(
        "the page after the restart",
        Duration::from_secs(10),
        || fetch(port),
    );

    // down -v: nothing of the project is left.
    ok(stack(&root, &file, &["down", "-v"]), "down -v");
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(&format!("stack:{project}:")),
        "links left: {links}"
    );
    let nft = Command::new("nft").args(["list", "tables"]).output();
    if let Ok(nft) = nft {
        let tables = String::from_utf8_lossy(&nft.stdout);
        assert!(!tables.contains(&format!("stack-{project}")), "{tables}");
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "mounts left: {mounts}"
    );
    for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = controller.path().join("stack").join(&project);
        assert!(!p.exists(), "cgroup left: {}", p.display());
    }
    // The state root holds only the image store, the project's revision
    // history (kept on purpose: `rollback` and the next revision number
    // need it) with its lock file, and the host-wide IPAM lock.
    let mut left = Vec::new();
    collect_files(&root, &root.join("images"), &mut left);
    let project_dir = root.join("projects").join(&project);
    left.retain(|p| {
        !(p.starts_with(project_dir.join("revisions"))
            || *p == project_dir.join("lock")
            || *p == root.join("run").join("ipam.lock"))
    });
    assert!(left.is_empty(), "files left in the state root: {left:?}");
    assert!(
        !root
            .join("volumes")
            .join(format!("{project}_data"))
            .exists(),
        "the named volume is gone after down -v"
    );
    let watchers = Command::new("pgrep")
        .args(["-f", &format!("{} .*watch", root.display())])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&watchers.stdout).trim().is_empty(),
        "a watcher is still running"
    );
    drop(guard);
}

fn collect_files(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}
