//! Restart latency: `cargo bench --bench restart` (as root, with Debian's
//! busybox-static).
//!
//! The time from a container's death (SIGKILL of its process) to its
//! replacement running, restarted by the project's watcher (`restart:
//! always`). A stack of 20 services on one bridge network is brought up
//! with `stack up -d`; each run kills one service's process and polls its
//! `state.json` until a new process is recorded running. Each service is
//! killed once, so every restart is a first restart (immediate; later ones
//! back off by design). Prints the median and the 90th percentile; the goal
//! is 50 ms.
//!
//! Without root or /bin/busybox it says why and exits 0.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/support/rootfs.rs"]
mod rootfs;
use rootfs::busybox_rootfs;

const STACK: &str = env!("CARGO_BIN_EXE_stack");
const RUNS: usize = 20;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stack(root: &Path, dir: &Path, args: &[&str]) {
    let o = Command::new(STACK)
        .arg("--root")
        .arg(root)
        .arg("-f")
        .arg(dir.join("compose.yaml"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stack {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The running process of a container, from its state record.
fn running_pid(root: &Path, container: &str) -> Option<i64> {
    let path = root.join("containers").join(container).join("state.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    (v["status"] == "running").then(|| v["pid"].as_i64())?
}

/// Takes the stack down when the benchmark ends, even on a panic.
struct Down<'a>(&'a Path, &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::new(STACK)
            .arg("--root")
            .arg(self.0)
            .arg("-f")
            .arg(self.1.join("compose.yaml"))
            .args(["down", "-v"])
            .output();
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/bin/busybox").exists() {
        println!(
            "restart: SKIPPED: needs root and /bin/busybox (Debian's busybox-static), to run real containers"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = dir.join("root");
    let project = format!("rbench{}", std::process::id());
    let rootfs = busybox_rootfs(dir);
    let o = Command::new(STACK)
        .arg("--root")
        .arg(&root)
        .args(["image", "import"])
        .arg(&rootfs)
        .args(["localhost/busybox:latest", "-c", r#"CMD ["sh"]"#])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut yaml = format!("name: {project}\nservices:\n");
    for i in 0..RUNS {
        yaml.push_str(&format!(
            "  s{i}:\n    image: localhost/busybox:latest\n    restart: always\n    stop_grace_period: 1s\n    command: [\"sleep\", \"3600\"]\n"
        ));
    }
    std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
    let _down = Down(&root, dir);
    stack(&root, dir, &["up", "-d"]);

    let mut times = Vec::new();
    for i in 0..RUNS {
        let c = format!("{project}-s{i}-1");
        let deadline = Instant::now() + Duration::from_secs(10);
        let old = loop {
            if let Some(pid) = running_pid(&root, &c) {
                break pid;
            }
            assert!(Instant::now() < deadline, "{c} never ran");
            std::thread::sleep(Duration::from_millis(5));
        };
        // Let the watcher settle between runs.
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        // SAFETY: kill has no memory effects; the pid is the container's
        // process, which this benchmark started.
        unsafe { libc::kill(old as i32, libc::SIGKILL) };
        loop {
            if running_pid(&root, &c).is_some_and(|p| p != old) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{c} was not restarted"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(t0.elapsed());
    }
    times.sort();
    let median = times[RUNS / 2];
    let p90 = times[RUNS * 9 / 10];
    println!(
        "restart: death (SIGKILL) → replacement running, {RUNS} runs: median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms (goal: 50 ms)",
        ms(median),
        ms(p90),
        ms(times[0]),
        ms(times[RUNS - 1])
    );
}
