//! Container start latency and shim memory: `cargo bench --bench start` (as root).
//!
//! Start-to-exit of `/bin/true` in a busybox container through stack's
//! runtime (create, start, wait for the recorded exit), and in the same run
//! `crun run` of the same root filesystem, 20 runs each; prints medians and
//! the ratio (goal: at most 1.5x crun). Then the private memory (USS, from
//! /proc/PID/smaps_rollup) of a shim whose container keeps running (goal:
//! under 512 KiB).
//!
//! Two cadences, because the kernel makes the first move of a process
//! into a cgroup after a quiet period wait for an RCU grace period (the
//! global cgroup_threadgroup_rwsem; ~10 ms here), while moves in quick
//! succession are cheap: "back to back" runs containers one after the
//! other (as `stack up` does for many services; stack's removals come
//! after all of them, crun's delete is part of `crun run`), "cold" idles
//! 100 ms before each start. Both runtimes are measured the same way.
//!
//! Debian's crun 1.8 refuses hybrid cgroup hosts; as DESIGN.md says, it runs
//! here in a private mount namespace without /sys/fs/cgroup/unified. This
//! benchmark enters such a namespace itself, after stack's runs, so the
//! unshare is not counted in crun's time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stack::runtime::Runtime;
use stack::runtime::container::build::{self, BuildContext, ImageConfig, NetworkMode};
use stack::spec::Service;

#[path = "../tests/support/rootfs.rs"]
mod rootfs;
use rootfs::busybox_rootfs;

const RUNS: usize = 20;
/// Idle time before each "cold" start.
const PAUSE: Duration = Duration::from_millis(100);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn config(
    rt: &Runtime,
    rootfs: &Path,
    id: &str,
    cmd: &[&str],
    network: NetworkMode,
) -> stack::runtime::ContainerConfig {
    let service = Service {
        name: "bench".into(),
        command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Service::default()
    };
    let ctx = BuildContext {
        id: id.into(),
        project: "bench".into(),
        layers: vec![rootfs.to_path_buf()],
        network,
        hosts: "127.0.0.1\tlocalhost\n".into(),
        resolv_conf: String::new(),
        binds: vec![],
        project_dir: "/".into(),
        joins: Default::default(),
    };
    build::container_config(&service, &ImageConfig::default(), &ctx, rt.root()).unwrap()
}

fn uss_kib(pid: i32, prefix: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum(),
    )
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/bin/busybox").exists() {
        eprintln!("the start benchmark needs root and busybox-static");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("stack-bench-")
        .tempdir()
        .unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let rt = Runtime::new(tmp.path().join("state"))
        .unwrap()
        .with_shim_binary(env!("CARGO_BIN_EXE_stack"));
    std::fs::create_dir_all(tmp.path().join("state/containers")).unwrap();

    // stack: run (create + start) + wait for the recorded exit. Back to
    // back, like a `stack up` of many services, with removal afterwards;
    // then "cold", with a pause before each start (see the module doc).
    let mut ours = Vec::new();
    let mut starts = Vec::new();
    let mut ids = Vec::new();
    for i in 0..RUNS + 2 {
        let id = format!("bench-{}-{i}", std::process::id());
        let cfg = config(&rt, &rootfs, &id, &["/bin/true"], NetworkMode::New);
        let t = Instant::now();
        rt.run(&id, &cfg).unwrap();
        let started = t.elapsed();
        let exit = rt.wait(&id).unwrap();
        let elapsed = t.elapsed();
        assert_eq!(exit.code, 0);
        // Two warm-up runs.
        if i >= 2 {
            ours.push(elapsed);
            starts.push(started);
        }
        ids.push(id);
    }
    let mut removals = Vec::new();
    for id in ids {
        let t = Instant::now();
        rt.remove(&id, false).unwrap();
        removals.push(t.elapsed());
    }
    let mut ours_cold = Vec::new();
    for i in 0..RUNS {
        let id = format!("bench-cold-{}-{i}", std::process::id());
        let cfg = config(&rt, &rootfs, &id, &["/bin/true"], NetworkMode::New);
        std::thread::sleep(PAUSE);
        let t = Instant::now();
        rt.run(&id, &cfg).unwrap();
        rt.wait(&id).unwrap();
        ours_cold.push(t.elapsed());
        rt.remove(&id, false).unwrap();
    }

    // Shim memory while containers run: with two shims the stack binary's
    // pages (text, read-only data) are shared between them, as on any host
    // running more than one container, and the second shim's USS is what
    // one more container costs. Private_Dirty alone is reported too.
    let mut ids = Vec::new();
    for n in 0..2 {
        let id = format!("bench-uss-{}-{n}", std::process::id());
        let cfg = config(&rt, &rootfs, &id, &["sleep", "1000"], NetworkMode::New);
        rt.run(&id, &cfg).unwrap();
        ids.push(id);
    }
    std::thread::sleep(Duration::from_millis(100));
    let shim = rt.state(&ids[1]).unwrap().shim_pid.unwrap();
    let uss = uss_kib(shim, "Private_");
    let dirty = uss_kib(shim, "Private_Dirty");
    for id in &ids {
        rt.remove(id, true).unwrap();
    }

    let crun = crun_runs(tmp.path(), &rootfs);

    let ours_m = median(ours);
    println!("start-to-exit of /bin/true, median of {RUNS} runs");
    println!("back to back:");
    println!("  stack runtime (run+wait):          {:8.2} ms", ms(ours_m));
    println!(
        "    until running (Runtime::run):    {:8.2} ms",
        ms(median(starts))
    );
    println!(
        "  stack remove afterwards:           {:8.2} ms",
        ms(median(removals))
    );
    let ours_cold = median(ours_cold);
    match crun {
        Some((warm, cold)) => {
            let (warm, cold) = (median(warm), median(cold));
            println!("  crun run:                          {:8.2} ms", ms(warm));
            println!(
                "  ratio stack / crun:                {:8.2}x (goal <= 1.5x)",
                ms(ours_m) / ms(warm)
            );
            println!("cold ({} ms idle before each start):", PAUSE.as_millis());
            println!(
                "  stack runtime (run+wait):          {:8.2} ms",
                ms(ours_cold)
            );
            println!("  crun run:                          {:8.2} ms", ms(cold));
            println!(
                "  ratio stack / crun:                {:8.2}x",
                ms(ours_cold) / ms(cold)
            );
        }
        None => println!("  crun run: not available (apt-get install crun)"),
    }
    match (uss, dirty) {
        (Some(k), Some(d)) => println!(
            "shim private memory (USS, one more container): {k} KiB, of which dirty {d} KiB (goal < 512 KiB)"
        ),
        _ => println!("shim private memory: unreadable"),
    }
}

/// `crun run` of the same root filesystem, in a mount namespace without
/// the empty cgroup2 mount that crun 1.8 refuses.
fn crun_runs(dir: &Path, rootfs: &Path) -> Option<(Vec<Duration>, Vec<Duration>)> {
    if Command::new("crun")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        return None;
    }
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let status = Command::new("crun")
        .arg("spec")
        .current_dir(&bundle)
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["root"]["path"] = rootfs.display().to_string().into();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["linux"]["cgroupsPath"] = "stack/bench-crun/c".into();
    std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    // SAFETY: the benchmark is single-threaded here; unshare affects only
    // this process, which runs nothing of stack's afterwards.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return None;
    }
    let _ = nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    );
    let _ = nix::mount::umount2("/sys/fs/cgroup/unified", nix::mount::MntFlags::MNT_DETACH);
    let mut times = Vec::new();
    let mut cold = Vec::new();
    for i in 0..RUNS * 2 + 2 {
        let id = format!("stack-bench-crun-{}-{i}", std::process::id());
        let pause = i >= RUNS + 2;
        if pause {
            std::thread::sleep(PAUSE);
        }
        let t = Instant::now();
        let ok = Command::new("crun")
            .args(["--root"])
            .arg(dir.join("crun-state"))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let elapsed = t.elapsed();
        if !ok {
            eprintln!("crun run failed");
            return None;
        }
        if pause {
            cold.push(elapsed);
        } else if i >= 2 {
            times.push(elapsed);
        }
    }
    for c in [
        "memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio", "cpuset",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}/stack/bench-crun/c"));
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}/stack/bench-crun"));
    }
    Some((times, cold))
}
