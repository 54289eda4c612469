//! The watch loop for real (root): restart policies, the flap limit,
//! health-driven restarts, drift repair and adoption, as a user sees them
//! through `stack events`, the restart record and the containers' pids.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// The project's events, as JSON.
fn events(p: &Project) -> Vec<Value> {
    p.ok(&["events", "--json", "--no-follow"])
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The events of `container` with `action`.
fn of(p: &Project, container: &str, action: &str) -> Vec<Value> {
    events(p)
        .into_iter()
        .filter(|e| e["container"] == container && e["action"] == action)
        .collect()
}

/// Waits (up to `limit`) for the first event of `container` with `action`.
fn first(p: &Project, what: &str, container: &str, action: &str, limit: Duration) -> Value {
    eventually(what, limit, || of(p, container, action).into_iter().next())
}

/// Checks that event `e`'s detail mentions `words`.
fn says(e: &Value, words: &str) {
    assert!(
        e["detail"].as_str().is_some_and(|d| d.contains(words)),
        "{e}"
    );
}

/// The restart record's entry for `container`.
fn restarts(p: &Project, container: &str) -> Value {
    let path = p
        .root
        .join("run/watch")
        .join(format!("{}.restarts.json", p.name));
    let v: Value = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    v["containers"][container].clone()
}

fn kill(pid: i64, signal: i32) {
    // SAFETY: kill has no memory effects; the pid is a process this test started.
    unsafe { libc::kill(pid as i32, signal) };
}

/// The runtime's state of a container.
fn state(p: &Project, container: &str) -> Value {
    let o = std::process::Command::new(e2e::STACK)
        .arg("--root")
        .arg(&p.root)
        .args(["runtime", "state", container])
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

#[test]
fn a_killed_container_is_restarted_and_the_restart_is_an_event() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "wkill",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
"#,
    );
    p.ok(&["up", "-d"]);
    let app = p.container("app", 1);
    let before = eventually("app's pid", LIMIT, || p.pid(&app));
    kill(before, libc::SIGKILL);
    let after = eventually("app restarted", LIMIT, || {
        p.pid(&app).filter(|p| *p != before)
    });
    assert_ne!(before, after);
    let die = first(&p, "the death in events", &app, "die", LIMIT);
    assert_eq!(die["exit_code"], 137, "{die}");
    let restart = first(&p, "the restart in events", &app, "restart", LIMIT);
    says(&restart, "killed");
    let r = restarts(&p, &app);
    assert_eq!(r["count"], 1, "{r}");
    assert_eq!(r["gave_up"], false, "{r}");
    // `events SERVICE` filters, and the human form names the action.
    let text = p.ok(&["events", "--no-follow", "app"]);
    assert!(text.contains(&format!("restart {app}")), "{text}");
}

#[test]
fn on_failure_restarts_failures_at_most_n_times_and_leaves_success_alone() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "wfail",
        r#"name: {project}
services:
  failing:
    image: localhost/busybox:latest
    restart: on-failure:2
    stop_grace_period: 1s
    command: ["sh", "-c", "exit 1"]
  done:
    image: localhost/busybox:latest
    restart: on-failure
    stop_grace_period: 1s
    command: ["true"]
"#,
    );
    p.ok(&["up", "-d"]);
    let failing = p.container("failing", 1);
    let done = p.container("done", 1);
    // Restarted twice, then left: the decision is an event of its own,
    // written in the same round as the death that led to it.
    let kept = first(&p, "failing left stopped", &failing, "no-restart", LIMIT);
    says(&kept, "after 2 restarts");
    assert_eq!(of(&p, &failing, "restart").len(), 2, "{:?}", events(&p));
    assert_eq!(restarts(&p, &failing)["count"], 2);
    assert_eq!(state(&p, &failing)["status"], "exited");
    // Exit 0 under on-failure: never restarted.
    let kept = first(&p, "done left stopped", &done, "no-restart", LIMIT);
    says(&kept, "code 0");
    assert!(of(&p, &done, "restart").is_empty());
    assert_eq!(state(&p, &done)["status"], "exited");
}

#[test]
fn a_crash_looping_container_hits_the_flap_limit() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "wflap",
        r#"name: {project}
services:
  loop:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["false"]
"#,
    );
    p.ok(&["up", "-d"]);
    let c = p.container("loop", 1);
    let flap = first(
        &p,
        "the flap limit",
        &c,
        "flap-limit",
        Duration::from_secs(60),
    );
    says(&flap, "not restarted any more");
    assert_eq!(restarts(&p, &c)["gave_up"], true);
    let count = of(&p, &c, "restart").len();
    assert!(count >= 5, "restarted {count} times first");
    assert_eq!(restarts(&p, &c)["count"], count as u64);
}

#[test]
fn a_killed_watcher_leaves_containers_running_and_up_adopts_them() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "wadopt",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
  peer:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    depends_on: [app]
"#,
    );
    p.ok(&["up", "-d"]);
    let app = p.container("app", 1);
    let peer = p.container("peer", 1);
    let pids = (
        eventually("app's pid", LIMIT, || p.pid(&app)),
        eventually("peer's pid", LIMIT, || p.pid(&peer)),
    );
    // `up -d` returns once the watcher holds its lock, before its first
    // round: the kill must come after that round, or the watcher never
    // adopted anything (on a loaded machine the kill can win the race).
    eventually("the first watcher's adoption", LIMIT, || {
        of(&p, &app, "adopt").into_iter().next()
    });
    let lock = p.root.join("run/watch").join(format!("{}.lock", p.name));
    let watcher: i64 = std::fs::read_to_string(&lock)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(watcher, libc::SIGKILL);
    eventually("the watcher gone", LIMIT, || {
        (!std::path::Path::new(&format!("/proc/{watcher}")).exists()
            || std::fs::read_to_string(format!("/proc/{watcher}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });
    assert_eq!(p.pid(&app), Some(pids.0), "app runs without its watcher");
    let out = p.run(&["up", "-d"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (p.pid(&app), p.pid(&peer)),
        (Some(pids.0), Some(pids.1)),
        "adopted, not restarted"
    );
    let adopt = eventually("the adoption in events", LIMIT, || {
        of(&p, &app, "adopt").into_iter().nth(1)
    });
    says(&adopt, "kept");
    // The new watcher restarts what dies.
    kill(pids.0, libc::SIGKILL);
    eventually("app restarted by the new watcher", LIMIT, || {
        p.pid(&app).filter(|p| *p != pids.0)
    });
}

/// The interface whose alias is exactly `alias` (`ip -o link` lines end
/// with `alias ALIAS`).
fn link_with_alias(alias: &str) -> Option<String> {
    let o = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
        let l = l.trim_end().trim_end_matches('\\').trim_end();
        if !l.ends_with(&format!("alias {alias}")) {
            return None;
        }
        let name = l.split_whitespace().nth(1)?;
        Some(name.trim_end_matches(':').split('@').next()?.to_string())
    })
}

fn ip_link_del(name: &str) {
    let o = std::process::Command::new("ip")
        .args(["link", "del", name])
        .output()
        .unwrap();
    assert!(o.status.success(), "ip link del {name}: {o:?}");
}

const WEB_CLIENT: &str = r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "echo hello-web > /srv/index.html; exec httpd -f -p 8080 -h /srv"]
  client:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
"#;

/// Whether `client` gets web's page by name.
fn client_reaches_web(p: &Project) -> Option<()> {
    let o = p.exec(
        &p.container("client", 1),
        &["wget", "-q", "-O", "-", "http://web:8080/"],
    );
    (o.status.success() && String::from_utf8_lossy(&o.stdout).contains("hello-web")).then_some(())
}

#[test]
fn a_deleted_veth_is_made_again_and_the_container_answers() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("wveth", WEB_CLIENT);
    p.ok(&["up", "-d"]);
    let web = p.container("web", 1);
    eventually("web reachable", LIMIT, || client_reaches_web(&p));
    let pid = p.pid(&web).unwrap();
    let alias = format!("stack:{}:default:{web}", p.name);
    let veth = link_with_alias(&alias).expect("web's veth");
    ip_link_del(&veth);
    eventually("web's veth again", LIMIT, || link_with_alias(&alias));
    eventually("web reachable again", LIMIT, || client_reaches_web(&p));
    assert_eq!(p.pid(&web), Some(pid), "repaired without a restart");
    let repair = first(&p, "the repair in events", &web, "drift-repair", LIMIT);
    says(&repair, "attached again");
}

#[test]
fn a_deleted_bridge_is_made_again_and_containers_reattached() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("wbridge", WEB_CLIENT);
    p.ok(&["up", "-d"]);
    eventually("web reachable", LIMIT, || client_reaches_web(&p));
    let alias = format!("stack:{}:default", p.name);
    let bridge = link_with_alias(&alias).expect("the project's bridge");
    ip_link_del(&bridge);
    eventually("the bridge again", LIMIT, || link_with_alias(&alias));
    eventually("web reachable again", LIMIT, || client_reaches_web(&p));
    let repairs = events(&p)
        .into_iter()
        .filter(|e| e["action"] == "drift-repair")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>();
    assert!(
        repairs
            .iter()
            .any(|d| d.contains("was removed; created again")),
        "{repairs:?}"
    );
}

#[test]
fn an_unhealthy_container_is_restarted_with_its_restart_true_dependents() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "whealth",
        r#"name: {project}
services:
  db:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 1s
      retries: 2
  app:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    depends_on:
      db: {condition: service_healthy, restart: true}
"#,
    );
    p.ok(&["up", "-d"]);
    let db = p.container("db", 1);
    let app = p.container("app", 1);
    let pids = (
        eventually("db's pid", LIMIT, || p.pid(&db)),
        eventually("app's pid", LIMIT, || p.pid(&app)),
    );
    eventually("db healthy", LIMIT, || {
        of(&p, &db, "health_status")
            .into_iter()
            .find(|e| e["detail"] == "healthy")
    });
    // The check starts failing.
    let o = p.exec(&db, &["rm", "/tmp/ok"]);
    assert!(o.status.success(), "{o:?}");
    let restart = first(&p, "db restarted", &db, "restart", LIMIT);
    says(&restart, "unhealthy");
    assert!(
        of(&p, &db, "health_status")
            .iter()
            .any(|e| e["detail"] == "unhealthy")
    );
    let dependent = first(&p, "app restarted", &app, "restart", LIMIT);
    says(&dependent, "dependency");
    let new_db = eventually("db running again", LIMIT, || {
        p.pid(&db).filter(|x| *x != pids.0)
    });
    let new_app = eventually("app running again", LIMIT, || {
        p.pid(&app).filter(|x| *x != pids.1)
    });
    assert_ne!((new_db, new_app), pids);
}

#[test]
fn with_watch_file_the_watcher_applies_a_changed_stack_file() {
    if !e2e::can_run() {
        return;
    }
    let yaml = r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    environment: {COLOUR: blue}
    command: ["sleep", "3600"]
"#;
    let p = Project::new("wfile", yaml);
    p.ok(&["up", "-d", "--watch-file"]);
    let app = p.container("app", 1);
    let before = eventually("app's pid", LIMIT, || p.pid(&app));
    p.rewrite(&yaml.replace("blue", "green"));
    let reload = eventually("the reload in events", LIMIT, || {
        events(&p).into_iter().find(|e| e["action"] == "reload")
    });
    says(&reload, "changed");
    eventually("app recreated with the new environment", LIMIT, || {
        let pid = p.pid(&app).filter(|x| *x != before)?;
        let o = p.exec(&app, &["sh", "-c", "echo $COLOUR"]);
        (String::from_utf8_lossy(&o.stdout).trim() == "green").then_some(pid)
    });
}

#[test]
fn a_container_deleted_or_stopped_by_hand_comes_back_with_the_reason_in_events() {
    if !e2e::can_run() {
        return;
    }
    // The client's policy is `no`, so that the removal's kill does not
    // race with a restart: what brings it back is that it is missing.
    let p = Project::new(
        "wdrift",
        &WEB_CLIENT.replace(
            "  client:\n    image: localhost/busybox:latest\n    restart: always",
            "  client:\n    image: localhost/busybox:latest\n    restart: \"no\"",
        ),
    );
    assert!(
        std::fs::read_to_string(&p.file)
            .unwrap()
            .contains("restart: \"no\"")
    );
    p.ok(&["up", "-d"]);
    let client = p.container("client", 1);
    let web = p.container("web", 1);
    eventually("web reachable", LIMIT, || client_reaches_web(&p));
    // Deleted with the runtime, behind stack's back.
    let o = std::process::Command::new(e2e::STACK)
        .arg("--root")
        .arg(&p.root)
        .args(["runtime", "rm", "--force", &client])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let repair = first(
        &p,
        "the deleted container made again",
        &client,
        "drift-repair",
        LIMIT,
    );
    says(&repair, "deleted");
    eventually("client runs again", LIMIT, || p.pid(&client));
    eventually("web reachable again", LIMIT, || client_reaches_web(&p));
    // Stopped by hand with the runtime (not with `stack stop`): restarted,
    // and the death says how (httpd, as pid 1, ignores SIGTERM: killed).
    let before = p.pid(&web).unwrap();
    let o = std::process::Command::new(e2e::STACK)
        .arg("--root")
        .arg(&p.root)
        .args(["runtime", "stop", &web])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let die = first(&p, "web's death", &web, "die", LIMIT);
    assert!(die["exit_code"].as_i64().is_some(), "{die}");
    let restart = first(&p, "web restarted", &web, "restart", LIMIT);
    says(&restart, "restart: always");
    eventually("web runs again", LIMIT, || {
        p.pid(&web).filter(|x| *x != before)
    });
}
