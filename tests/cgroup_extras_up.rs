//! The v1 cgroup knobs of a service through `stack up` (root, real):
//! `mem_swappiness`, `oom_kill_disable` and `device_cgroup_rules` reach the
//! container's cgroup, and a malformed rule is refused before anything runs.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

#[test]
fn swappiness_oom_killer_and_device_rules_reach_the_cgroup() {
    if !e2e::can_run() || !std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        // These knobs exist on cgroup v1 only (our machines' layout).
        return;
    }
    let p = Project::new(
        "cgknobs",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    mem_swappiness: 7
    oom_kill_disable: true
    device_cgroup_rules: ["c 10:229 rwm", "b 7:* r"]
"#,
    );
    p.ok(&["up", "-d"]);
    let c = p.container("app", 1);
    eventually("app running", Duration::from_secs(20), || p.pid(&c));
    let file = |controller: &str, name: &str| {
        std::fs::read_to_string(
            std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join("stack")
                .join(&p.name)
                .join(&c)
                .join(name),
        )
        .unwrap()
    };
    assert_eq!(file("memory", "memory.swappiness").trim(), "7");
    assert!(
        file("memory", "memory.oom_control").contains("oom_kill_disable 1"),
        "{}",
        file("memory", "memory.oom_control")
    );
    let list = file("devices", "devices.list");
    assert!(list.lines().any(|l| l == "c 10:229 rwm"), "{list}");
    assert!(list.lines().any(|l| l == "b 7:* r"), "{list}");
}

#[test]
fn a_malformed_device_rule_is_refused() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "cgknobsbad",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    command: ["true"]
    device_cgroup_rules: ["x 1:3 rwm"]
"#,
    );
    let err = p.fails(1, &["up", "-d"]);
    assert!(err.contains("device_cgroup_rules: `x 1:3 rwm`"), "{err}");
    assert!(p.ok(&["ps", "-a", "-q"]).trim().is_empty());
}
