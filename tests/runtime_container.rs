//! The container runtime, for real: root, a busybox image, the machine's
//! kernel. Each test has its own state root, container ids and cgroups,
//! and removes what it created even when it fails.

#[path = "support/runtime.rs"]
mod support;

use std::time::Duration;

use stack::runtime::container::{BindMount, NetworkMode, Status};
use stack::runtime::shim::exec::ExecRequest;
use stack::spec::model::Bytes;
use support::{TestRuntime, can_run, status_fields};

const DOCKER_CAPS: &str = "00000000a80425fb";

#[test]
fn the_process_is_pid_1_with_its_own_hostname_mounts_and_dockers_privileges() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let (exit, out) = t.run(
        "basics",
        &[
            "sh",
            "-c",
            "echo pid=$$; hostname; cat /proc/self/status; echo MOUNTS; cat /proc/mounts",
        ],
        |s, _| s.hostname = Some("box-one".into()),
    );
    assert_eq!(exit.code, 0, "{out:?}");
    assert_eq!(out[0], "pid=1");
    assert_eq!(out[1], "box-one");
    let status = status_fields(&out);
    assert_eq!(status["CapEff"], DOCKER_CAPS);
    assert_eq!(status["CapPrm"], DOCKER_CAPS);
    assert_eq!(status["CapBnd"], DOCKER_CAPS);
    assert_eq!(status["CapInh"], "0000000000000000");
    assert_eq!(status["CapAmb"], "0000000000000000");
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["Seccomp"], "2");
    // Only the container's own mounts: the root, the standard ones, the
    // files stack provides and the masks over /proc and /sys.
    let allowed = [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
    ];
    let mut points = Vec::new();
    let start = out.iter().position(|l| l == "MOUNTS").unwrap() + 1;
    for line in &out[start..] {
        let point = line.split(' ').nth(1).unwrap();
        assert!(
            allowed.contains(&point) || point.starts_with("/proc/") || point.starts_with("/sys/"),
            "a host mount is visible in the container: {line}"
        );
        points.push(point.to_string());
    }
    assert!(points.contains(&"/".to_string()) && points.contains(&"/proc/keys".to_string()));
}

#[test]
fn writes_land_in_the_upper_directory_not_in_the_layer() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("upper");
    let config = t.config(
        &id,
        &["sh", "-c", "echo data > /new.txt; echo x >> /etc/passwd"],
        |_, _| {},
    );
    t.rt.run(&id, &config).unwrap();
    assert_eq!(t.rt.wait(&id).unwrap().code, 0);
    let upper = t.rt.dir(&id).join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("new.txt")).unwrap(),
        "data\n"
    );
    assert!(
        std::fs::read_to_string(upper.join("etc/passwd"))
            .unwrap()
            .ends_with("x\n")
    );
    assert!(!t.rootfs.join("new.txt").exists());
    assert!(
        !std::fs::read_to_string(t.rootfs.join("etc/passwd"))
            .unwrap()
            .contains("\nx\n")
    );
}

#[test]
fn allocating_past_mem_limit_is_recorded_as_an_oom_kill() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    // dd allocates its whole block: 256 MiB against a 16 MiB limit (32 MiB with swap).
    let (exit, out) = t.run(
        "oom",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
        |s, _| s.mem_limit = Some(Bytes(16 << 20)),
    );
    assert_eq!(exit.signal, Some(libc::SIGKILL), "{out:?}");
    assert_eq!(exit.code, 137);
    assert!(exit.oom_killed);
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    // Bounded: at most 30 forks, each a sleeping child.
    let (exit, out) = t.run(
        "forkbomb",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 30 ]; do sleep 60 & i=$((i+1)); echo $i; done; echo escaped",
        ],
        |s, _| s.pids_limit = Some(8),
    );
    let spawned: Vec<u32> = out.iter().filter_map(|l| l.parse().ok()).collect();
    assert!(spawned.iter().all(|n| *n < 8), "{out:?}");
    assert!(out.iter().any(|l| l.contains("can't fork")), "{out:?}");
    assert!(!out.iter().any(|l| l == "escaped"));
    assert_ne!(exit.code, 0);
}

#[test]
fn masked_paths_read_empty_and_readonly_paths_refuse_writes() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let (_, out) = t.run(
        "masked",
        &[
            "sh",
            "-c",
            "for f in /proc/kcore /proc/keys /proc/timer_list; do [ -e $f ] && echo $f $(cat $f | wc -c); done; \
             for d in /proc/acpi /proc/scsi /sys/firmware; do [ -e $d ] && echo $d $(ls $d | wc -l); done; \
             (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo writable || echo readonly",
        ],
        |_, _| {},
    );
    assert!(out.len() >= 4, "{out:?}");
    for line in &out[..out.len() - 1] {
        assert!(line.ends_with(" 0"), "not empty: {line} ({out:?})");
    }
    assert_eq!(out.last().unwrap(), "readonly");
}

#[test]
fn a_syscall_outside_the_profile_fails_with_eperm() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    support::install_probe(&t.rootfs, t.dir.path());
    let (_, out) = t.run("seccomp", &["/bin/probe"], |_, _| {});
    assert_eq!(out, ["keyctl: EPERM"]);
    // The filter, not something else, refused it.
    let (_, out) = t.run("unconfined", &["/bin/probe"], |s, _| {
        s.security_opt = vec!["seccomp=unconfined".into()]
    });
    assert_ne!(out, ["keyctl: EPERM"]);
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("stubborn");
    // As pid 1 without a handler, sleep never sees SIGTERM.
    let config = t.config(&id, &["sleep", "1000"], |_, _| {});
    t.rt.run(&id, &config).unwrap();
    let exit = t.rt.stop(&id, Some(Duration::from_millis(200))).unwrap();
    assert_eq!(exit.signal, Some(libc::SIGKILL));
    assert_eq!(t.rt.state(&id).unwrap().status, Status::Exited);
}

#[test]
fn init_true_forwards_the_stop_signal_and_reaps() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("init");
    let config = t.config(
        &id,
        &["sh", "-c", "sleep 1000 & echo started; wait"],
        |s, _| {
            s.init = Some(true);
            s.stop_signal = Some("SIGTERM".into());
        },
    );
    t.rt.run(&id, &config).unwrap();
    t.until("the command to start", || {
        t.output(&id).contains(&"started".to_string())
    });
    let exit = t.rt.stop(&id, Some(Duration::from_secs(20))).unwrap();
    // The shell (not pid 1) died of SIGTERM; the init reported it.
    assert_eq!(exit.code, 128 + libc::SIGTERM);
    assert_eq!(exit.signal, None);
}

#[test]
fn exec_sees_the_containers_files_and_pids_and_returns_its_code() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("exec");
    let config = t.config(&id, &["sleep", "1000"], |s, _| {
        s.hostname = Some("exec-box".into())
    });
    t.rt.run(&id, &config).unwrap();
    t.wait_running(&id);
    let req = ExecRequest {
        args: vec![
            "sh".into(),
            "-c".into(),
            "cat /etc/hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; echo $FOO; id -u; exit 7"
                .into(),
        ],
        env: vec!["FOO=bar".into()],
        user: Some("nobody".into()),
        workdir: None,
        tty: false,
    };
    let out = t.rt.exec(&id, &req).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines, ["exec-box", "sleep 1000 ", "bar", "65534"]);
    // -t: a terminal, relayed; the exit code still passes through.
    let req = ExecRequest {
        args: vec![
            "sh".into(),
            "-c".into(),
            "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; tty; exit 3".into(),
        ],
        tty: true,
        ..ExecRequest::default()
    };
    let out = t.rt.exec(&id, &req).unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    // A terminal of the container's own devpts (`tty` names it).
    assert_eq!(lines[0], "on-a-tty");
    assert!(lines[1].starts_with("/dev/pts/"), "{lines:?}");
    t.rt.remove(&id, true).unwrap();
}

#[test]
fn the_container_survives_the_death_of_the_process_that_started_it() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("survivor");
    let mut starter = std::process::Command::new(env!("CARGO_BIN_EXE_stack"))
        .arg("--root")
        .arg(t.rt.root())
        .args([
            "runtime",
            "run",
            "--project",
            &t.project,
            "--id",
            &id,
            "--rootfs",
        ])
        .arg(&t.rootfs)
        .args([
            "--",
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 5",
        ])
        .spawn()
        .unwrap();
    t.wait_running(&id);
    // SIGKILL our own child, the stack process waiting in the foreground.
    starter.kill().unwrap();
    starter.wait().unwrap();
    let state = t.rt.state(&id).unwrap();
    assert_eq!(state.status, Status::Running);
    let touch = ExecRequest {
        args: vec!["touch".into(), "/tmp/go".into()],
        ..ExecRequest::default()
    };
    assert!(t.rt.exec(&id, &touch).unwrap().status.success());
    let exit = t.rt.wait(&id).unwrap();
    assert_eq!(exit.code, 5);
    let state = t.rt.state(&id).unwrap();
    assert_eq!(
        (state.status, state.exit.unwrap().code),
        (Status::Exited, 5)
    );
}

#[test]
fn removal_leaves_no_mount_cgroup_process_or_file() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("removal");
    let config = t.config(&id, &["sleep", "1000"], |s, _| {
        s.mem_limit = Some(Bytes(64 << 20))
    });
    let created = t.rt.run(&id, &config).unwrap();
    t.wait_running(&id);
    let state = t.rt.state(&id).unwrap();
    let dir = t.rt.dir(&id);
    let cgroup_dirs: Vec<_> = ["memory", "pids", "cpu", "freezer"]
        .iter()
        .map(|c| std::path::PathBuf::from(format!("/sys/fs/cgroup/{c}/stack/{}/{id}", t.project)))
        .filter(|p| {
            p.parent()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .exists()
        })
        .collect();
    assert!(
        cgroup_dirs.iter().any(|d| d.exists()),
        "no cgroup was created"
    );
    assert!(
        t.rt.remove(&id, false).is_err(),
        "a running container needs force"
    );
    t.rt.remove(&id, true).unwrap();
    assert!(!dir.exists());
    for d in &cgroup_dirs {
        assert!(!d.exists(), "{} remains", d.display());
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&dir.display().to_string()));
    for pid in [Some(created.pid), state.shim_pid].into_iter().flatten() {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().unwrap().trim_start().starts_with('Z'))
            .unwrap_or(true);
        assert!(gone, "process {pid} is still alive");
    }
}

#[test]
fn a_hostile_image_cannot_redirect_writes_to_the_host() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    // /etc/hosts points at a file of the host, by absolute path.
    let host_file = t.dir.path().join("host-hosts");
    std::fs::write(&host_file, "HOST CONTENT\n").unwrap();
    std::fs::remove_file(t.rootfs.join("etc/hosts")).unwrap();
    std::os::unix::fs::symlink(&host_file, t.rootfs.join("etc/hosts")).unwrap();
    // The link resolves inside the image, where stack creates the missing
    // directories of its target.
    let (exit, out) = t.run("hostile-hosts", &["cat", "/etc/hosts"], |_, _| {});
    assert_eq!(exit.code, 0, "{out:?}");
    assert_eq!(out, ["127.0.0.1\tlocalhost"]);
    assert_eq!(
        std::fs::read_to_string(&host_file).unwrap(),
        "HOST CONTENT\n"
    );
    let inside = host_file.strip_prefix("/").unwrap();
    assert!(
        !t.rootfs.join(inside).exists(),
        "the shared layer was written"
    );

    // /proc is a symlink to a host directory: refused, nothing mounted there.
    let t = TestRuntime::new();
    let host_dir = t.dir.path().join("host-dir");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::remove_dir(t.rootfs.join("proc")).unwrap();
    std::os::unix::fs::symlink(&host_dir, t.rootfs.join("proc")).unwrap();
    let id = t.id("hostile-proc");
    let config = t.config(&id, &["true"], |_, _| {});
    let err = t.rt.create(&id, &config).unwrap_err().to_string();
    assert!(err.contains("/proc"), "{err}");
    assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 0);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&host_dir.display().to_string()));
    assert!(
        !t.rt.dir(&id).exists(),
        "a failed create leaves nothing behind"
    );
}

#[test]
fn users_resolve_in_the_image_and_lose_capabilities() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let (_, out) = t.run(
        "user",
        &["sh", "-c", "id; grep CapEff /proc/self/status; echo $HOME"],
        |s, _| s.user = Some("nobody".into()),
    );
    assert_eq!(out[0], "uid=65534(nobody) gid=65534(nogroup)");
    assert_eq!(out[1], "CapEff:\t0000000000000000");
    assert_eq!(out[2], "/nonexistent");
}

#[test]
fn network_modes_none_host_and_joining_another_container() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let interfaces = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|s| s.trim().to_string())
            .collect()
    };
    let (_, out) = t.run("net-none", &["cat", "/proc/net/dev"], |_, _| {});
    assert_eq!(interfaces(&out), ["lo"]);
    let host: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let (_, out) = t.run("net-host", &["cat", "/proc/net/dev"], |_, c| {
        c.network = NetworkMode::Host
    });
    let mut a = interfaces(&out);
    let mut b = interfaces(&host);
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // The create/start pause: the namespace exists before the command runs.
    let first = t.id("net-owner");
    let config = t.config(&first, &["sleep", "1000"], |_, c| {
        c.network = NetworkMode::New
    });
    let created = t.rt.create(&first, &config).unwrap();
    assert_eq!(t.rt.state(&first).unwrap().status, Status::Created);
    let ns = std::fs::read_link(format!("/proc/{}/ns/net", created.pid)).unwrap();
    assert_ne!(ns, std::fs::read_link("/proc/self/ns/net").unwrap());
    t.rt.start(&first).unwrap();
    let (_, out) = t.run("net-join", &["readlink", "/proc/self/ns/net"], |_, c| {
        c.network = NetworkMode::Join(format!("/proc/{}/ns/net", created.pid).into())
    });
    assert_eq!(out, [ns.display().to_string()]);
}

#[test]
fn read_only_root_bind_mounts_pause_and_stats() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let shared = t.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("in.txt"), "from host\n").unwrap();
    let id = t.id("ro");
    let config = t.config(
        &id,
        &["sh", "-c", "touch /x 2>/dev/null && echo rw || echo ro; cat /data/in.txt; echo out > /data/out.txt; sleep 1000"],
        |s, c| {
            s.read_only = true;
            s.working_dir = Some("/".into());
            c.binds.push(BindMount { source: shared.clone(), target: "/data".into(), read_only: false, propagation: None });
        },
    );
    t.rt.run(&id, &config).unwrap();
    t.until("the output", || t.output(&id).len() >= 2);
    assert_eq!(t.output(&id), ["ro", "from host"]);
    t.until("the bind mount write", || shared.join("out.txt").exists());
    t.rt.pause(&id).unwrap();
    assert_eq!(t.rt.state(&id).unwrap().status, Status::Paused);
    t.rt.resume(&id).unwrap();
    assert_eq!(t.rt.state(&id).unwrap().status, Status::Running);
    let usage = t.rt.stats(&id).unwrap();
    assert!(usage.pids >= 1 && usage.memory > 0, "{usage:?}");
}

#[test]
fn a_missing_command_is_reported_at_start() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("missing");
    let config = t.config(&id, &["/no/such/program"], |_, _| {});
    t.rt.create(&id, &config).unwrap();
    let err = t.rt.start(&id).unwrap_err().to_string();
    assert!(
        err.contains("/no/such/program") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn devices_stay_out_of_reach_and_no_host_descriptor_leaks_in() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    // An open descriptor of the caller that is not close-on-exec.
    let leaked = std::fs::File::open(t.dir.path()).unwrap();
    // SAFETY: clearing FD_CLOEXEC on our own descriptor.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&leaked), libc::F_SETFD, 0) };
    let (_, out) = t.run(
        "devices",
        &[
            "sh",
            "-c",
            "mknod /tmp/disk b 8 0 && (head -c 1 /tmp/disk >/dev/null 2>&1 && echo disk-readable || echo disk-denied); \
             echo x > /dev/null && echo null-ok; ls /proc/self/fd | tr '\\n' ' '; echo; readlink /proc/1/cwd",
        ],
        |_, _| {},
    );
    assert_eq!(out[0], "disk-denied", "{out:?}");
    assert_eq!(out[1], "null-ok");
    // ls itself has 0, 1, 2 and the directory it reads.
    assert_eq!(out[2].split_whitespace().count(), 4, "{out:?}");
    assert_eq!(out[3], "/");
    drop(leaked);
}

#[test]
fn namespaced_sysctls_are_applied() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let (_, out) = t.run(
        "sysctl",
        &[
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/kernel/shmmni",
        ],
        |s, _| {
            s.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
            s.sysctls.insert("kernel.shmmni".into(), "1234".into());
        },
    );
    assert_eq!(out, ["1", "1234"]);
}

#[test]
fn tty_gives_the_command_a_terminal_and_logs_its_output() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let (exit, out) = t.run(
        "tty",
        &[
            "sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; echo TERM=$TERM; tty",
        ],
        |s, _| s.tty = true,
    );
    assert_eq!(exit.code, 0, "{out:?}");
    let out: Vec<&str> = out.iter().map(|l| l.trim_end_matches('\r')).collect();
    // The container's own devpts: `tty` names it (not "not a tty").
    assert_eq!(out, ["is-a-tty", "TERM=xterm", "/dev/pts/0"]);
}

#[test]
fn stdin_open_keeps_standard_input_open() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("stdin");
    // `read` returns at end-of-file; with stdin kept open it waits.
    let config = t.config(
        &id,
        &["sh", "-c", "echo waiting; read line; echo eof"],
        |s, _| s.stdin_open = true,
    );
    t.rt.run(&id, &config).unwrap();
    t.until("the command to start", || !t.output(&id).is_empty());
    let exit = t.rt.stop(&id, Some(Duration::from_millis(100))).unwrap();
    assert_eq!(t.output(&id), ["waiting"]);
    assert_eq!(exit.signal, Some(libc::SIGKILL));
}

#[test]
fn the_container_sees_its_own_cgroup_limits() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "));
    let file = if v2 {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let (_, out) = t.run(
        "cgroupns",
        &["sh", "-c", &format!("cat {file}; cat /proc/self/cgroup")],
        |s, _| s.mem_limit = Some(Bytes(64 << 20)),
    );
    assert_eq!(out[0], "67108864", "{out:?}");
    // Inside its cgroup namespace, the container is at the root.
    for line in &out[1..] {
        assert!(line.ends_with(":/"), "{out:?}");
    }
}

#[test]
fn devices_listed_in_the_service_are_usable() {
    if !can_run() {
        return;
    }
    // A device outside Docker's default rules, harmless to open.
    let host = "/dev/loop-control";
    if !std::path::Path::new(host).exists() {
        eprintln!("skipped: no {host} on this host");
        return;
    }
    let t = TestRuntime::new();
    let script = "(exec 3< /dev/ctl) 2>/dev/null && echo readable || echo unreadable; \
                  (exec 4> /dev/ctl) 2>/dev/null && echo writable || echo read-only";
    let (_, out) = t.run("device", &["sh", "-c", script], |s, _| {
        s.extra.insert(
            "devices".into(),
            serde_json::json!([format!("{host}:/dev/ctl:r")]),
        );
    });
    assert_eq!(out, ["readable", "read-only"]);
}

#[test]
fn starting_again_keeps_the_written_files_and_the_log_and_removal_still_leaves_nothing() {
    if !can_run() {
        return;
    }
    let t = TestRuntime::new();
    let id = t.id("again");
    let config = t.config(
        &id,
        &[
            "sh",
            "-c",
            "n=$(cat /state.txt 2>/dev/null || echo 0); echo run-$n; echo $((n + 1)) > /state.txt; exit 3",
        ],
        |s, _| s.mem_limit = Some(Bytes(64 << 20)),
    );
    t.rt.run(&id, &config).unwrap();
    assert_eq!(t.rt.wait(&id).unwrap().code, 3);
    let first = t.rt.state(&id).unwrap();
    let mut follower = t.rt.follow_logs(&id, true).unwrap();
    assert!(
        t.rt.start_again(&id).is_ok(),
        "an exited container starts again"
    );
    assert_eq!(t.rt.state(&id).unwrap().status, Status::Created);
    t.rt.start(&id).unwrap();
    assert_eq!(t.rt.wait(&id).unwrap().code, 3);
    assert_eq!(t.output(&id), ["run-0", "run-1"]);
    let followed: Vec<String> = follower
        .poll()
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(
        followed,
        ["run-0", "run-1"],
        "the log was truncated or replaced"
    );
    let dir = t.rt.dir(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("upper/state.txt")).unwrap(),
        "2\n"
    );
    let second = t.rt.state(&id).unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert!(second.started_at.unwrap() >= first.finished_at.unwrap());
    assert_eq!(second.exit.unwrap().code, 3);

    // A third run, and a running container cannot be started again.
    t.rt.start_again(&id).unwrap();
    assert!(matches!(
        t.rt.start_again(&id),
        Err(stack::runtime::container::ContainerError::StillRunning(_))
    ));
    t.rt.start(&id).unwrap();
    assert_eq!(t.rt.wait(&id).unwrap().code, 3);
    assert_eq!(t.output(&id), ["run-0", "run-1", "run-2"]);

    let cgroup_dirs: Vec<_> = ["memory", "pids", "cpu", "freezer", ""]
        .iter()
        .map(|c| std::path::PathBuf::from(format!("/sys/fs/cgroup/{c}/stack/{}/{id}", t.project)))
        .filter(|p| p.exists())
        .collect();
    assert!(!cgroup_dirs.is_empty(), "the last run has no cgroup");
    let last = t.rt.state(&id).unwrap();
    t.rt.remove(&id, false).unwrap();
    assert!(!dir.exists());
    assert!(
        !t.rt.list().unwrap().contains(&id),
        "the state root still lists it"
    );
    for d in &cgroup_dirs {
        assert!(!d.exists(), "{} remains", d.display());
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&dir.display().to_string()));
    for pid in [last.pid, last.shim_pid].into_iter().flatten() {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().unwrap().trim_start().starts_with('Z'))
            .unwrap_or(true);
        assert!(gone, "process {pid} is still alive");
    }
}
