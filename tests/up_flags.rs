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
    assert!(ps.contains("created"), "{ps}");
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
