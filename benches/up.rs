//! `stack up -d` and `stack down` of whole stacks: `cargo bench --bench up` (as root).
//!
//! Stacks of 1, 10, 30 and 100 busybox services on one network, each
//! depending on the one before (a chain, so starts are ordered), each
//! running `sleep` under `init: true` so that SIGTERM ends it at once.
//! Times the `stack up -d` command until it returns (every container
//! running, the watcher started), then `stack down` until it returns
//! (nothing of the project left); prints medians. Goals from issue 7:
//! 30 services up in under 300 ms and down in under 300 ms.
//!
//! Where `docker compose` or `podman-compose` is installed, the same stacks
//! run under it for the ratio; otherwise the benchmark says so. Without
//! root or Debian's busybox-static it prints why and exits 0.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/support/rootfs.rs"]
mod rootfs;
use rootfs::busybox_rootfs;

const STACK: &str = env!("CARGO_BIN_EXE_stack");
const SIZES: [usize; 4] = [1, 10, 30, 100];

fn runs(n: usize) -> usize {
    if n >= 100 { 3 } else { 7 }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// N services in a depends_on chain, on the default network.
fn stack_file(project: &str, image: &str, n: usize) -> String {
    let mut text = format!("name: {project}\nservices:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  s{i}:\n    image: {image}\n    init: true\n    command: [\"sleep\", \"3600\"]\n"
        ));
        if i > 0 {
            text.push_str(&format!("    depends_on: [s{}]\n", i - 1));
        }
    }
    text
}

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("the command runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Medians of `up -d` and `down` of each size under stack.
fn bench_stack(dir: &Path) -> Vec<(usize, Duration, Duration)> {
    let root = dir.join("root");
    let rootfs = busybox_rootfs(dir);
    run(Command::new(STACK)
        .arg("--root")
        .arg(&root)
        .args(["image", "import"])
        .arg(&rootfs)
        .args(["localhost/busybox:latest", "-c", r#"CMD ["sh"]"#]));
    let mut out = Vec::new();
    for n in SIZES {
        let project = format!("benchup{n}x{}", std::process::id());
        let file = dir.join(format!("stack-{n}.yaml"));
        std::fs::write(&file, stack_file(&project, "localhost/busybox:latest", n)).unwrap();
        let stack = |args: &[&str]| {
            let mut c = Command::new(STACK);
            c.arg("--root").arg(&root).arg("-f").arg(&file).args(args);
            c
        };
        let (mut ups, mut downs) = (Vec::new(), Vec::new());
        for _ in 0..runs(n) {
            ups.push(run(&mut stack(&["up", "-d"])));
            downs.push(run(&mut stack(&["down"])));
        }
        out.push((n, median(ups), median(downs)));
        eprintln!(
            "  stack, {n} services: up {:.0} ms, down {:.0} ms",
            ms(out.last().unwrap().1),
            ms(out.last().unwrap().2)
        );
    }
    out
}

/// The other tool, if this machine has one: its command line prefix.
fn other_tool() -> Option<Vec<String>> {
    let works = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&["docker", "compose", "version"]) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    if works(&["podman-compose", "version"]) {
        return Some(vec!["podman-compose".into()]);
    }
    None
}

/// The other tool's engine imports the same busybox root filesystem, so
/// nothing is pulled from a registry off this machine.
fn import_for_other(tool: &[String], dir: &Path) {
    let engine = if tool[0] == "docker" {
        "docker"
    } else {
        "podman"
    };
    let tar = dir.join("busybox-other.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(busybox_rootfs(dir))
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(Command::new(engine)
        .arg("import")
        .arg(&tar)
        .arg("localhost/busybox:latest"));
}

fn bench_other(tool: &[String], dir: &Path) -> Vec<(usize, Duration, Duration)> {
    import_for_other(tool, dir);
    let mut out = Vec::new();
    for n in SIZES {
        let project = format!("benchcmp{n}x{}", std::process::id());
        let file = dir.join(format!("other-{n}.yaml"));
        let text = stack_file(&project, "localhost/busybox:latest", n).replace(
            "    init: true\n",
            "    init: true\n    pull_policy: never\n",
        );
        std::fs::write(&file, text).unwrap();
        let cmd = |args: &[&str]| {
            let mut c = Command::new(&tool[0]);
            c.args(&tool[1..]).arg("-f").arg(&file).args(args);
            c
        };
        let (mut ups, mut downs) = (Vec::new(), Vec::new());
        for _ in 0..runs(n) {
            ups.push(run(&mut cmd(&["up", "-d"])));
            downs.push(run(&mut cmd(&["down"])));
        }
        out.push((n, median(ups), median(downs)));
    }
    out
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/bin/busybox").exists() {
        println!("up benchmark skipped: it needs root and /bin/busybox (Debian's busybox-static)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = bench_stack(dir.path());
    let tool = other_tool();
    let theirs = match &tool {
        Some(t) => match std::panic::catch_unwind(|| bench_other(t, dir.path())) {
            Ok(v) => Some(v),
            Err(_) => {
                println!("{} failed; no ratio", t.join(" "));
                None
            }
        },
        None => None,
    };
    println!("stack up -d / down of a depends_on chain of busybox services (medians):");
    println!(
        "{:>9}  {:>10}  {:>10}  vs other tool (up, down)",
        "services", "up", "down"
    );
    for (i, (n, up, down)) in ours.iter().enumerate() {
        let cmp = match (&theirs, &tool) {
            (Some(t), Some(name)) => {
                let (_, tu, td) = t[i];
                format!(
                    "{}: {:.0} / {:.0} ms ({:.1}x, {:.1}x faster)",
                    name.join(" "),
                    ms(tu),
                    ms(td),
                    tu.as_secs_f64() / up.as_secs_f64(),
                    td.as_secs_f64() / down.as_secs_f64()
                )
            }
            _ => "docker compose / podman-compose: not available".into(),
        };
        println!("{n:>9}  {:>7.0} ms  {:>7.0} ms  {cmp}", ms(*up), ms(*down));
    }
    compare_with_previous(&ours);
    if let Some((_, up, down)) = ours.iter().find(|(n, _, _)| *n == 30) {
        println!(
            "goal for 30 services: up < 300 ms ({}), down < 300 ms ({})",
            if ms(*up) < 300.0 { "met" } else { "not met" },
            if ms(*down) < 300.0 { "met" } else { "not met" }
        );
    }
}

/// Prints this run's figures against the last run's on this machine (kept
/// in cargo's scratch directory for benchmarks), then keeps this run's.
fn compare_with_previous(ours: &[(usize, Duration, Duration)]) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-up-last.json");
    let previous: Option<Vec<(usize, f64, f64)>> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match &previous {
        Some(prev) => {
            println!("against the previous run on this machine (up, down):");
            for (n, up, down) in ours {
                if let Some((_, pu, pd)) = prev.iter().find(|(m, _, _)| m == n) {
                    println!(
                        "{n:>9}  {pu:>7.0} ms  {pd:>7.0} ms  then; now {:.2}x, {:.2}x of it",
                        ms(*up) / pu,
                        ms(*down) / pd
                    );
                }
            }
        }
        None => println!("no previous run on this machine to compare with"),
    }
    let now: Vec<(usize, f64, f64)> = ours.iter().map(|(n, u, d)| (*n, ms(*u), ms(*d))).collect();
    let _ = std::fs::write(&path, serde_json::to_vec(&now).unwrap_or_default());
}
