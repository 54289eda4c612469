//! `stack run --rm -d` (root, real): the one-off runs detached and is
//! removed once it exits, with or without a watcher (its shim starts the
//! removal, as docker's daemon does).

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

const LONG: Duration = Duration::from_secs(30);

/// Whether the runtime still has a container called `name`.
fn exists(p: &Project, name: &str) -> bool {
    p.root.join("containers").join(name).exists()
}

/// Waits for `name` to be removed, then checks it is gone from `ps -a` and
/// the project's record, and that a `remove` event says so.
fn removed_with_an_event(p: &Project, name: &str) {
    eventually("the one-off to be removed", LONG, || {
        (!exists(p, name)).then_some(())
    });
    assert!(!p.ok(&["ps", "-a"]).contains(name));
    let record = std::fs::read_to_string(p.root.join("projects").join(&p.name).join("state.json"))
        .unwrap_or_default();
    assert!(!record.contains(name), "{record}");
    let events = p.ok(&["events", "--json", "--no-follow"]);
    assert!(
        events
            .lines()
            .any(|l| l.contains(name) && l.contains("\"remove\"")),
        "{events}"
    );
}

const STACK: &str = r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
  tool:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done"]
"#;

#[test]
fn the_watcher_removes_a_detached_rm_one_off_once_it_exits() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("rmd", STACK);
    p.ok(&["up", "-d"]);
    let name = p.ok(&["run", "--rm", "-d", "tool"]).trim().to_string();
    assert!(name.contains("-tool-run-"), "{name}");
    // It runs, and stays while it runs.
    eventually("the one-off to run", LONG, || p.pid(&name));
    assert!(p.ok(&["ps", "-a"]).contains(&name));
    e2e::ok(p.exec(&name, &["touch", "/go"]), "touch /go");
    removed_with_an_event(&p, &name);
    // A one-off without --rm is kept.
    let kept = p.ok(&["run", "-d", "tool"]).trim().to_string();
    eventually("the kept one-off to run", LONG, || p.pid(&kept));
    e2e::ok(p.exec(&kept, &["touch", "/go"]), "touch /go");
    eventually("the kept one-off to exit", LONG, || {
        p.ok(&["ps", "-a"])
            .lines()
            .any(|l| l.contains(&kept) && l.contains("Exited (0)"))
            .then_some(())
    });
    assert!(exists(&p, &kept));
}

#[test]
fn without_a_watcher_its_shim_removes_it_once_it_exits() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("rmdnw", STACK);
    // No `up`: nothing watches the project.
    let o = p.run(&["run", "--rm", "-d", "--no-deps", "tool"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let name = String::from_utf8_lossy(&o.stdout).trim().to_string();
    eventually("the one-off to run", LONG, || p.pid(&name));
    assert!(exists(&p, &name));
    e2e::ok(p.exec(&name, &["touch", "/go"]), "touch /go");
    removed_with_an_event(&p, &name);
    // Its network endpoint went with it: no link is named after it.
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&format!(":{name}")), "{links}");
}
