//! The everyday commands against real stacks (root): `ps` (columns, JSON,
//! `--status`, exit codes), `port`, `ls`, `images`, `top`, `stats`,
//! `version`, `systemd`; and the lifecycle ones under a running watcher:
//! `stop` is not drift (the watcher leaves the container stopped), `start`
//! brings it back, `kill -s`, `pause` freezes (the cgroup freezer says
//! FROZEN) and `unpause` thaws, `rm`.

use std::path::PathBuf;
use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually, fetch};

const LONG: Duration = Duration::from_secs(20);

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `ps --format json` object of `container`.
fn ps_entry(p: &Project, container: &str) -> Option<serde_json::Value> {
    let all = json(&p.ok(&["ps", "-a", "--format", "json"]));
    all.as_array()?
        .iter()
        .find(|c| c["Name"] == container)
        .cloned()
}

#[test]
fn ps_port_ls_images_top_stats_show_a_real_stack() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "cmdps",
        r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "echo hello-ps > /srv/index.html; exec httpd -f -p 8080 -h /srv"]
    ports: ["127.0.0.1::8080"]
    healthcheck: {test: ["CMD", "test", "-f", "/srv/index.html"], interval: 1s}
  job:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "exit 3"]
"#,
    );
    p.ok(&["up", "-d"]);
    let web = p.container("web", 1);
    let job = p.container("job", 1);

    // port: the randomly assigned host port, which answers.
    let addr = p.ok(&["port", "web", "8080"]);
    let (ip, port) = addr.trim().rsplit_once(':').unwrap();
    assert_eq!(ip, "127.0.0.1");
    let port: u16 = port.parse().unwrap();
    let page = eventually("web answers on its random port", LONG, || fetch(port, "/"));
    assert!(page.contains("hello-ps"), "{page}");
    assert_eq!(p.run(&["port", "web", "9999"]).status.code(), Some(1));
    assert_eq!(
        p.run(&["port", "--protocol", "udp", "web", "8080"])
            .status
            .code(),
        Some(1)
    );

    // ps: the table, running only by default.
    let table = p.ok(&["ps"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "IMAGE", "SERVICE", "STATUS", "PORTS"]);
    let row = table.lines().find(|l| l.starts_with(&web)).unwrap();
    assert!(row.contains("localhost/busybox:latest  web"), "{row}");
    assert!(row.contains(" Up "), "{row}");
    assert!(
        row.contains(&format!("127.0.0.1:{port}->8080/tcp")),
        "{row}"
    );
    // job exits 3: listed with -a and --status exited, with its code.
    let exited = eventually("job shows as exited with code 3", LONG, || {
        let out = p.ok(&["ps", "--status", "exited"]);
        out.lines()
            .find(|l| l.starts_with(&job) && l.contains("Exited (3)"))
            .map(str::to_string)
    });
    assert!(exited.contains(" ago"), "{exited}");
    let entry = eventually("job's JSON says exited", LONG, || {
        ps_entry(&p, &job).filter(|e| e["State"] == "exited")
    });
    assert_eq!(entry["ExitCode"], 3);
    assert_eq!(entry["Service"], "job");
    let running = p.ok(&["ps", "--status", "running", "-q"]);
    assert!(running.lines().any(|l| l == web), "{running}");
    assert!(p.ok(&["ps", "--services"]).lines().any(|l| l == "web"));

    // Health, from the watcher's probes.
    let entry = eventually("web is healthy", LONG, || {
        ps_entry(&p, &web).filter(|e| e["Health"] == "healthy")
    });
    assert!(
        entry["Status"].as_str().unwrap().ends_with(" (healthy)"),
        "{entry}"
    );

    // ps --format json: one array with compose's fields.
    let entry = ps_entry(&p, &web).unwrap();
    assert_eq!(entry["State"], "running");
    assert_eq!(entry["Service"], "web");
    assert_eq!(entry["Image"], "localhost/busybox:latest");
    assert_eq!(entry["ExitCode"], 0);
    assert_eq!(entry["Publishers"][0]["PublishedPort"], port);
    assert_eq!(entry["Publishers"][0]["TargetPort"], 8080);
    assert!(entry["Status"].as_str().unwrap().starts_with("Up "));
    assert!(entry["CreatedAt"].as_str().unwrap().ends_with('Z'));
    assert!(entry["RunningFor"].as_str().unwrap().ends_with(" ago"));

    // ls: the project, its status and its file.
    let ls = p.ok(&["ls"]);
    let line = ls.lines().find(|l| l.starts_with(&p.name)).unwrap();
    assert!(line.contains("running(1)"), "{line}");
    assert!(line.contains(&p.file.display().to_string()), "{line}");
    let all = json(&p.ok(&["ls", "-a", "--format", "json"]));
    let me = all
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["Name"] == p.name.as_str())
        .unwrap();
    assert!(me["Status"].as_str().unwrap().contains("running(1)"));
    assert_eq!(p.ok(&["ls", "-q"]).trim(), p.name);

    // images: busybox, for both containers.
    let images = p.ok(&["images"]);
    let row = images.lines().find(|l| l.starts_with(&web)).unwrap();
    assert!(row.contains("localhost/busybox"), "{row}");
    assert!(row.contains("latest"), "{row}");
    let ids = p.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), 1, "{ids}");
    assert!(ids.starts_with("sha256:"), "{ids}");

    // top: the container's own process, with its host pid.
    let pid = p.pid(&web).unwrap();
    let top = p.ok(&["top", "web"]);
    assert!(top.starts_with(&format!("{web}\nUID")), "{top}");
    let row = top
        .lines()
        .find(|l| l.contains("httpd -f -p 8080"))
        .unwrap_or_else(|| panic!("{top}"));
    assert!(row.starts_with("root "), "{row}");
    assert!(
        row.split_whitespace().nth(1) == Some(&pid.to_string()),
        "{row}"
    );

    // stats: a memory figure for the running container.
    let stats = p.ok(&["stats", "--no-stream"]);
    let row = stats.lines().find(|l| l.starts_with(&web)).unwrap();
    assert!(row.contains("iB / "), "{row}");
    // One process: httpd. (Its health probe, every second, briefly adds
    // its own: a sample taken during one counts it, so take another.)
    let sample = eventually("stats to count web's one process", LONG, || {
        let s = json(&p.ok(&["stats", "--no-stream", "--format", "json", "web"]));
        (s[0]["PIDs"] == "1").then_some(s)
    });
    assert!(sample[0]["MemBytes"].as_u64().unwrap() > 0, "{sample}");
    // Traffic: the page fetched above went through its eth0.
    let net = sample[0]["NetIO"].as_str().unwrap();
    assert!(net.contains(" / ") && !net.starts_with("0B"), "{net}");

    // version.
    let v = p.ok(&["version", "--short"]);
    assert_eq!(v.trim(), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        json(&p.ok(&["version", "--format", "json"]))["version"],
        env!("CARGO_PKG_VERSION")
    );
}

/// The freezer state of a container's cgroup: v1's `freezer.state`, or
/// on a cgroup v2 host what `cgroup.events` says, in v1's words.
fn freezer_state(project: &str, container: &str) -> Option<String> {
    let v1 = PathBuf::from("/sys/fs/cgroup/freezer/stack")
        .join(project)
        .join(container)
        .join("freezer.state");
    if let Ok(s) = std::fs::read_to_string(v1) {
        return Some(s.trim().to_string());
    }
    let v2 = PathBuf::from("/sys/fs/cgroup/stack")
        .join(project)
        .join(container)
        .join("cgroup.events");
    let events = std::fs::read_to_string(v2).ok()?;
    Some(
        if events.lines().any(|l| l == "frozen 1") {
            "FROZEN"
        } else {
            "THAWED"
        }
        .into(),
    )
}

/// The host port web's 8080 is published on (`stack port`).
fn host_port(p: &Project, service: &str) -> u16 {
    p.ok(&["port", service, "8080"])
        .trim()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

#[test]
fn what_the_user_stops_stays_stopped_under_the_watcher() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "cmdlife",
        r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "echo hello-life > /srv/index.html; exec httpd -f -p 8080 -h /srv"]
    ports: ["127.0.0.1::8080"]
  worker:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done"]
"#,
    );
    p.ok(&["up", "-d"]);
    let web = p.container("web", 1);
    let worker = p.container("worker", 1);
    eventually("web runs", LONG, || p.pid(&web));

    // stop: stays stopped for several of the watcher's resyncs (0.5 s).
    p.ok(&["stop", "web"]);
    let stopped = p.state(&web).unwrap();
    assert_eq!(stopped["status"], "exited");
    std::thread::sleep(Duration::from_millis(1600));
    let later = p.state(&web).unwrap();
    assert_eq!(later["status"], "exited", "the watcher restarted {web}");
    assert_eq!(later["finished_at"], stopped["finished_at"]);
    let row = ps_entry(&p, &web).unwrap();
    assert_eq!(row["State"], "exited");

    // The watcher is alive meanwhile: a container killed behind its back
    // (not by `stack kill`) is drift, and comes back.
    let pid = p.pid(&worker).unwrap();
    // SAFETY: kill(2) on the container's process, which this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    eventually("the watcher restarts worker", LONG, || {
        p.pid(&worker).filter(|&new| new != pid)
    });

    // start: running again, answering.
    p.ok(&["start", "web"]);
    let port = host_port(&p, "web");
    let page = eventually("web answers after start", LONG, || fetch(port, "/"));
    assert!(page.contains("hello-life"));
    // Started by the user, it is the watcher's again: killed behind its
    // back, it is restarted.
    let pid = p.pid(&web).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    eventually("the watcher restarts web", LONG, || {
        p.pid(&web).filter(|&new| new != pid)
    });

    // kill -s: the process gets the signal (its trap exits 42), and the
    // watcher leaves it.
    p.ok(&["kill", "-s", "SIGTERM", "worker"]);
    let entry = eventually("worker exits 42", LONG, || {
        ps_entry(&p, &worker).filter(|e| e["State"] == "exited")
    });
    assert_eq!(entry["ExitCode"], 42);
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(ps_entry(&p, &worker).unwrap()["State"], "exited");

    // pause: frozen in the freezer cgroup, shown as paused; unpause thaws.
    p.ok(&["pause", "web"]);
    assert_eq!(freezer_state(&p.name, &web).as_deref(), Some("FROZEN"));
    let entry = ps_entry(&p, &web).unwrap();
    assert_eq!(entry["State"], "paused");
    assert!(entry["Status"].as_str().unwrap().ends_with("(Paused)"));
    let paused = p.ok(&["ps", "--status", "paused", "-q"]);
    assert_eq!(paused.trim(), web);
    // exec refuses a paused container.
    assert_eq!(p.run(&["exec", "-T", "web", "true"]).status.code(), Some(1));
    p.ok(&["unpause", "web"]);
    assert_eq!(freezer_state(&p.name, &web).as_deref(), Some("THAWED"));
    // (Restarted by the watcher above, it has a new random port.)
    let port = host_port(&p, "web");
    eventually("web answers after unpause", LONG, || fetch(port, "/"));

    // restart: a new process, running.
    let before = p.pid(&web).unwrap();
    p.ok(&["restart", "-t", "1", "web"]);
    let after = p.pid(&web).unwrap();
    assert_ne!(before, after);

    // rm: a running container is not removed without -s.
    let o = p.run(&["rm", "-f", "web"]);
    assert!(o.status.success());
    assert!(p.state(&web).is_some());
    // A stopped one is (worker, killed above).
    p.ok(&["rm", "-f", "worker"]);
    assert!(p.state(&worker).is_none(), "worker was not removed");
    // Removed by the user, it is not drift either: the watcher leaves it.
    std::thread::sleep(Duration::from_millis(1600));
    assert!(p.state(&worker).is_none(), "the watcher made worker again");
    assert!(ps_entry(&p, &worker).is_none());
    // A pause that is never undone does not keep `down` from working.
    p.ok(&["pause", "web"]);
    p.ok(&["down"]);
    assert!(p.state(&web).is_none());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn systemd_prints_a_unit_that_brings_the_project_up_and_down() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "cmdunit",
        "name: {project}\nservices:\n  web:\n    image: localhost/busybox:latest\n",
    );
    let unit = p.ok(&["systemd"]);
    let exe = std::fs::canonicalize(e2e::STACK).unwrap();
    let start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(start.starts_with(&exe.display().to_string()), "{start}");
    for part in [
        format!("--root {}", p.root.display()),
        format!("-p {}", p.name),
        format!("-f {}", p.file.display()),
    ] {
        assert!(start.contains(&part), "{part} not in {start}");
    }
    assert!(start.ends_with(" up -d"), "{start}");
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStop="))
        .unwrap();
    assert!(stop.ends_with(" down"), "{stop}");
    assert!(!stop.contains("down -v"), "{stop}");
    assert!(unit.contains("Type=forking"));
    assert!(unit.contains(&format!(
        "PIDFile={}/run/watch/{}.lock",
        p.root.display(),
        p.name
    )));
    assert!(unit.contains("WantedBy=multi-user.target"));
    let user = p.ok(&["systemd", "--user"]);
    assert!(user.contains("WantedBy=default.target"));

    // Where systemd is installed, it accepts the unit.
    if let Ok(o) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        && o.status.success()
    {
        let path = p.dir().join(format!("stack-{}.service", p.name));
        std::fs::write(&path, &unit).unwrap();
        let o = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "systemd-analyze verify: {err}");
        assert!(
            !err.contains(&format!("stack-{}.service:", p.name)),
            "{err}"
        );
    }
}
