//! What the watcher does, as `stack ps` shows it (root, real): a
//! crash-looping container reads "Restarting" while it backs off, then
//! says its restarts stopped past the flap limit, with docker's
//! `RestartCount`; an OOM-killed container is an `oom` event before its
//! `die`, and `OOMKilled` in `ps --format json`.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};
use serde_json::Value;

/// `stack ps -a --format json`, the row of `container`.
fn row(p: &Project, container: &str) -> Option<Value> {
    let out = p.ok(&["ps", "-a", "--format", "json"]);
    let rows: Value = serde_json::from_str(&out).ok()?;
    rows.as_array()?
        .iter()
        .find(|r| r["Name"] == container)
        .cloned()
}

/// The project's events, as JSON.
fn events(p: &Project) -> Vec<Value> {
    p.ok(&["events", "--json", "--no-follow"])
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn ps_shows_restarting_then_the_flap_limit_and_the_restart_count() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "psflap",
        r#"name: {project}
services:
  loop:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "exit 1"]
"#,
    );
    p.ok(&["up", "-d"]);
    let c = p.container("loop", 1);
    // Backoff waits grow from 100 ms: one of them is seen.
    let restarting = eventually("ps to say Restarting", Duration::from_secs(60), || {
        row(&p, &c).filter(|r| r["State"] == "restarting")
    });
    assert!(
        restarting["Status"]
            .as_str()
            .unwrap()
            .starts_with("Restarting (1) "),
        "{restarting}"
    );
    // Restarting containers are listed without -a, as docker lists them
    // (unless the wait ended in between: then it runs or gave up).
    let flapping = eventually("ps to show the flap limit", Duration::from_secs(90), || {
        row(&p, &c).filter(|r| r["Flapping"] == true)
    });
    let status = flapping["Status"].as_str().unwrap();
    assert!(status.starts_with("Exited (1) "), "{status}");
    assert!(status.ends_with("(flapping: restarts stopped)"), "{status}");
    assert_eq!(flapping["State"], "exited");
    assert!(flapping["RestartCount"].as_u64().unwrap() > 0, "{flapping}");
    let table = p.ok(&["ps", "-a"]);
    assert!(
        table.contains("(flapping: restarts stopped)"),
        "the table says it too:\n{table}"
    );
    // Not running any more, not restarting: `ps` without -a leaves it out.
    assert!(!p.ok(&["ps"]).contains(&c));
}

#[test]
fn an_oom_kill_is_an_event_before_the_death_and_shows_in_ps() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "psoom",
        r#"name: {project}
services:
  hog:
    image: localhost/busybox:latest
    mem_limit: 8m
    stop_grace_period: 1s
    command: ["sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=256M count=1"]
"#,
    );
    p.ok(&["up", "-d"]);
    let c = p.container("hog", 1);
    // Only once the watcher has seen it running is its end a death.
    eventually("the watcher to see it", Duration::from_secs(30), || {
        events(&p)
            .into_iter()
            .find(|e| e["container"] == c && e["action"] == "adopt")
    });
    e2e::ok(p.exec(&c, &["touch", "/go"]), "touch /go");
    let r = eventually("the OOM kill in ps", Duration::from_secs(30), || {
        row(&p, &c).filter(|r| r["State"] == "exited")
    });
    assert_eq!(r["OOMKilled"], true, "{r}");
    assert_eq!(r["ExitCode"], 137, "{r}");
    assert!(
        r["Status"].as_str().unwrap().starts_with("Exited (137) "),
        "{r}"
    );
    let actions = eventually("the oom and die events", Duration::from_secs(30), || {
        let actions: Vec<String> = events(&p)
            .into_iter()
            .filter(|e| e["container"] == c)
            .map(|e| e["action"].as_str().unwrap_or_default().to_string())
            .collect();
        actions.iter().any(|a| a == "die").then_some(actions)
    });
    let oom = actions.iter().position(|a| a == "oom");
    let die = actions.iter().position(|a| a == "die");
    assert!(
        oom.is_some() && oom < die,
        "oom comes before die: {actions:?}"
    );
}
