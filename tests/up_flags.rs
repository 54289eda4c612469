//! `up`'s flags and failures, `logs` and `rollback`, for real (root): a
//! failed update names the service and leaves the previous revision
//! answering; `rollback` brings an older environment back; `--wait` fails
//! on a service that never gets healthy; `--no-start` creates without starting;
//! `--exit-code-from` passes a one-shot's code on; `logs` merges and
//! filters; `down --rmi all` removes the image.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually, fetch, free_port};

fn web(port: u16, greeting: &str, program: &str) -> String {
    format!(
        r#"name: {{project}}
services:
  web:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    environment:
      GREETING: {greeting}
    command: ["{program}", "-c", "echo $$GREETING > /tmp/index.html; echo serving $$GREETING; exec httpd -f -p 8080 -h /tmp"]
    ports: ["127.0.0.1:{port}:8080"]
"#
    )
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_failed_update_names_the_service_and_the_old_container_keeps_answering() {
    if !e2e::can_run() {
        return;
    }
    let port = free_port();
    let p = Project::new("upfail", &web(port, "first", "sh"));
    p.ok(&["up", "-d"]);
    eventually("the first page", Duration::from_secs(10), || {
        fetch(port, "/").filter(|t| t.contains("first"))
    });

    // The new command cannot run: up fails, names web, and restores.
    p.rewrite(&web(port, "second", "/no/such/binary"));
    let o = p.run(&["up", "-d"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("service `web`"), "{err}");
    assert!(err.contains("/no/such/binary"), "{err}");
    assert!(err.contains("previous revision"), "{err}");
    let page = eventually("the old page again", Duration::from_secs(10), || {
        fetch(port, "/")
    });
    assert!(page.contains("first"), "{page}");

    // A good update, then rollback: the older environment is back.
    p.rewrite(&web(port, "third", "sh"));
    p.ok(&["up", "-d"]);
    eventually("the third page", Duration::from_secs(10), || {
        fetch(port, "/").filter(|t| t.contains("third"))
    });
    let dry = p.ok(&["rollback", "--dry-run"]);
    assert!(dry.contains("GREETING: third → first"), "{dry}");
    p.ok(&["rollback"]);
    eventually("the rolled back page", Duration::from_secs(10), || {
        fetch(port, "/").filter(|t| t.contains("first"))
    });
    // The watcher keeps the rolled back stack, not the file.
    assert!(p.ok(&["ps"]).contains(&p.container("web", 1)));

    // logs: every start of web, prefixed; --no-log-prefix; --tail.
    let logs = p.ok(&["logs", "--no-color"]);
    assert!(
        logs.contains("web-1  | serving first") || logs.contains("web-1 | serving first"),
        "{logs}"
    );
    let bare = p.ok(&["logs", "--no-log-prefix", "--tail", "1", "web"]);
    assert_eq!(bare.trim(), "serving first", "{bare}");
    let stamped = p.ok(&["logs", "-t", "--since", "1h", "web"]);
    assert!(stamped.contains("Z serving first"), "{stamped}");
    let none = p.ok(&["logs", "--until", "2000-01-01T00:00:00Z"]);
    assert!(none.is_empty(), "{none}");

    p.ok(&["down", "-t", "0"]);
    assert_eq!(p.leftovers(), Vec::<String>::new());
}

#[test]
fn wait_fails_on_a_service_that_never_gets_healthy_and_names_it() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "upwait",
        r#"name: {project}
services:
  ok:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "60"]
  once:
    image: localhost/busybox:latest
    command: ["true"]
  broken:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "echo never healthy; exec sleep 60"]
    healthcheck:
      test: ["CMD", "false"]
      interval: 300ms
      retries: 2
"#,
    );
    let o = p.run(&["up", "--wait", "--wait-timeout", "20"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("service `broken`"), "{err}");
    assert!(err.contains("unhealthy"), "{err}");
    assert!(err.contains("never healthy"), "{err}");
    // The one-shot that exited 0 and the long runner are fine.
    p.ok(&["up", "--wait", "ok", "once"]);
    p.ok(&["down", "-t", "0"]);
    assert_eq!(p.leftovers(), Vec::<String>::new());
}

#[test]
fn no_start_creates_and_exit_code_from_passes_the_code_on() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "upexit",
        r#"name: {project}
services:
  server:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "60"]
  job:
    image: localhost/busybox:latest
    command: ["sh", "-c", "echo job ran; exit 3"]
    depends_on: [server]
"#,
    );
    p.ok(&["up", "--no-start"]);
    let ps = p.ok(&["ps", "-a"]);
    assert!(ps.contains("Created"), "{ps}");
    assert!(p.pid(&p.container("server", 1)).is_none());

    let o = p.run(&["up", "--exit-code-from", "job", "--no-color"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("job-1") && out.contains("| job ran"), "{out}");
    // Everything was stopped.
    assert!(p.pid(&p.container("server", 1)).is_none());

    // down --rmi all: the image goes with the project.
    p.ok(&["down", "-t", "0", "--rmi", "all"]);
    let images = std::process::Command::new(e2e::STACK)
        .arg("--root")
        .arg(&p.root)
        .args(["image", "ls", "-q"])
        .output()
        .unwrap();
    assert!(
        images.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&images.stdout)
    );
    assert_eq!(p.leftovers(), Vec::<String>::new());
}

/// A child `stack` whose standard output is collected as it comes.
struct Streaming {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Streaming {
    fn start(p: &Project, args: &[&str]) -> Streaming {
        use std::io::Read;
        let mut child = p
            .command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Streaming {
            child,
            out,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Ctrl-C, then the exit status once it has ended.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        status
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn foreground_up_streams_prefixed_logs_and_ctrl_c_stops_the_stack() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "upfg",
        r#"name: {project}
services:
  talker:
    image: localhost/busybox:latest
    init: true
    stop_grace_period: 1s
    # After hushed has spoken: had hushed been attached, its line came first.
    command: ["sh", "-c", "sleep 0.5; echo talker says hi; exec sleep 3600"]
    depends_on: [hushed]
  quiet:
    image: localhost/busybox:latest
    init: true
    stop_grace_period: 1s
    command: ["sh", "-c", "echo quiet says hi; exec sleep 3600"]
    depends_on: [talker]
  hushed:
    image: localhost/busybox:latest
    init: true
    stop_grace_period: 1s
    attach: false
    command: ["sh", "-c", "echo hushed says hi; exec sleep 3600"]
"#,
    );
    let mut up = Streaming::start(&p, &["up", "--no-attach", "quiet", "--no-color"]);
    eventually("the talker's line", Duration::from_secs(20), || {
        up.text()
            .contains("talker-1  | talker says hi")
            .then_some(())
    });
    let status = up.interrupt();
    assert!(status.success(), "{status}");
    assert!(!up.text().contains("quiet says hi"), "{}", up.text());
    assert!(!up.text().contains("hushed says hi"), "{}", up.text());
    // All stopped, not removed.
    for s in ["talker", "quiet", "hushed"] {
        assert!(p.pid(&p.container(s, 1)).is_none(), "{s} still runs");
    }
    assert!(p.ok(&["ps", "-a"]).contains(&p.container("quiet", 1)));
    p.ok(&["down", "-t", "0"]);
}

#[test]
fn logs_follow_a_container_through_its_restarts() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "upfollow",
        r#"name: {project}
services:
  blink:
    image: localhost/busybox:latest
    restart: always
    command: ["sh", "-c", "echo run at $$(date +%s%N); sleep 0.3; exit 1"]
"#,
    );
    p.ok(&["up", "-d"]);
    let mut logs = Streaming::start(&p, &["logs", "-f", "--no-color"]);
    // Two runs seen by one `logs -f`: the restarted container's lines too.
    eventually(
        "two runs in the followed logs",
        Duration::from_secs(30),
        || (logs.text().matches("blink-1  | run at").count() >= 2).then_some(()),
    );
    let status = logs.interrupt();
    assert!(status.success(), "{status}");
    p.ok(&["down", "-t", "0"]);
    assert_eq!(p.leftovers(), Vec::<String>::new());
}
