//! Restart policies and drift as the watcher plans them, against the
//! in-memory host: the planner gets the watcher's restart history
//! ([`Supervision`]) and decides per policy, restarts unhealthy containers
//! and their `restart: true` dependents, and reattaches broken links.

use stack::planner::fake::Sandbox;
use stack::planner::observe;
use stack::planner::plan::{Action, Plan, UpOptions, plan_up};
use stack::planner::{Status, Supervision};
use stack::spec::Stack;

#[path = "support/planner.rs"]
mod support;

use support::{A, load};

async fn sandbox_up(stack: &Stack) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.host.publish("busybox", A);
    sb.up(stack, &UpOptions::default()).await.unwrap();
    sb
}

/// The plan the watcher would make, with `sup` as its history (`None`: `up`'s).
async fn plan(sb: &Sandbox, stack: &Stack, sup: Option<Supervision>) -> Plan {
    let mut observed = observe(
        &sb.host,
        &stack.name,
        Some(stack),
        Some(&sb.record),
        sb.history.clone(),
    )
    .await
    .unwrap();
    observed.supervision = sup;
    plan_up(stack, &observed, &UpOptions::default()).unwrap()
}

fn texts(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .map(|o| format!("{} {}: {}", o.action, o.target, o.reason))
        .collect()
}

fn restarts(name: &str, n: u64) -> Supervision {
    let mut s = Supervision::default();
    s.restarts.insert(name.into(), n);
    s
}

const POLICIES: &str = r#"
name: p
services:
  never:
    image: busybox
  always:
    image: busybox
    restart: always
  twice:
    image: busybox
    restart: on-failure:2
  swarm:
    image: busybox
    deploy:
      restart_policy: {condition: on-failure, max_attempts: 1}
"#;

#[tokio::test]
async fn exited_containers_follow_their_restart_policy_under_the_watcher() {
    let stack = load(POLICIES);
    let sb = sandbox_up(&stack).await;
    for c in ["p-never-1", "p-always-1", "p-twice-1", "p-swarm-1"] {
        sb.host.set_status(c, Status::Exited { code: 1 });
    }
    let p = plan(&sb, &stack, Some(Supervision::default())).await;
    assert_eq!(
        texts(&p),
        [
            "start container p-always-1: exited with code 1 (restart: always)",
            "start container p-swarm-1: exited with code 1 (restart: on-failure:1)",
            "start container p-twice-1: exited with code 1 (restart: on-failure:2)",
        ]
    );
    // Attempts used up: left stopped.
    let mut sup = restarts("p-twice-1", 2);
    sup.restarts.insert("p-swarm-1".into(), 1);
    let p = plan(&sb, &stack, Some(sup)).await;
    assert_eq!(
        texts(&p),
        ["start container p-always-1: exited with code 1 (restart: always)"]
    );
    // A success is not a failure.
    sb.host.set_status("p-twice-1", Status::Exited { code: 0 });
    let p = plan(&sb, &stack, Some(Supervision::default())).await;
    assert!(
        texts(&p).iter().all(|t| !t.contains("p-twice-1")),
        "{:?}",
        texts(&p)
    );
    // Held back (backoff, flap limit): not started whatever the policy.
    let mut sup = Supervision::default();
    sup.hold.insert("p-always-1".into());
    let p = plan(&sb, &stack, Some(sup)).await;
    assert!(
        texts(&p).iter().all(|t| !t.contains("p-always-1")),
        "{:?}",
        texts(&p)
    );
    // `up` itself starts every stopped container, as docker compose does.
    let p = plan(&sb, &stack, None).await;
    assert!(
        texts(&p)
            .iter()
            .any(|t| t.starts_with("start container p-never-1")),
        "{:?}",
        texts(&p)
    );
}

const HEALTH: &str = r#"
name: p
services:
  db:
    image: busybox
    restart: always
    stop_grace_period: 2s
    healthcheck: {test: ["CMD", "true"]}
  web:
    image: busybox
    restart: always
    stop_grace_period: 1s
    depends_on:
      db: {condition: service_started, restart: true}
  other:
    image: busybox
    restart: always
    depends_on: [db]
"#;

#[tokio::test]
async fn an_unhealthy_container_and_its_restart_true_dependents_are_restarted() {
    let stack = load(HEALTH);
    let sb = sandbox_up(&stack).await;
    sb.host.set_status("p-db-1", Status::Unhealthy);
    let p = plan(&sb, &stack, Some(Supervision::default())).await;
    let t = texts(&p);
    assert!(
        t.contains(&"stop container p-db-1: unhealthy (restart: always)".to_string()),
        "{t:?}"
    );
    assert!(
        t.contains(&"start container p-db-1: restart: unhealthy (restart: always)".to_string()),
        "{t:?}"
    );
    assert!(
        t.contains(
            &"stop container p-web-1: `db` is restarted (depends_on.db.restart: true)".to_string()
        ),
        "{t:?}"
    );
    assert!(
        t.contains(
            &"start container p-web-1: restart after its dependency is restarted".to_string()
        ),
        "{t:?}"
    );
    assert!(t.iter().all(|x| !x.contains("p-other-1")), "{t:?}");
    // Each stops with its own grace period, not the default.
    assert_eq!(
        p.specs.stop_timeouts.get("p-db-1"),
        Some(&std::time::Duration::from_secs(2))
    );
    assert_eq!(
        p.specs.stop_timeouts.get("p-web-1"),
        Some(&std::time::Duration::from_secs(1))
    );
    // Stopped dependents first, started after.
    let pos = |s: &str| t.iter().position(|x| x.starts_with(s)).unwrap();
    assert!(pos("stop container p-web-1") < pos("start container p-web-1"));
    assert!(pos("start container p-db-1") < pos("start container p-web-1"));
    // `up` leaves an unhealthy container alone; so does the opt-out label.
    assert!(plan(&sb, &stack, None).await.ops.is_empty());
    let opted = load(&HEALTH.replacen(
        "healthcheck:",
        "labels: {stack.restart-on-unhealthy: \"false\"}\n    healthcheck:",
        1,
    ));
    let sb = sandbox_up(&opted).await;
    sb.host.set_status("p-db-1", Status::Unhealthy);
    assert!(
        plan(&sb, &opted, Some(Supervision::default()))
            .await
            .ops
            .is_empty()
    );
}

#[tokio::test]
async fn a_running_container_with_a_broken_link_is_attached_again() {
    let stack = load(
        r#"
name: p
services:
  web:
    image: busybox
    restart: always
"#,
    );
    let sb = sandbox_up(&stack).await;
    sb.host.set_status("p-web-1", Status::Running);
    sb.host.edit(|w| {
        if let Some(c) = w.containers.get_mut("p-web-1") {
            c.detached.insert("p_default".into());
        }
    });
    let p = plan(&sb, &stack, Some(Supervision::default())).await;
    assert_eq!(
        texts(&p),
        [
            "connect container p-web-1 on network p_default: reattach: its link to network `p_default` is gone (veth or bridge removed)"
        ]
    );
    assert!(p.ops.iter().all(|o| o.action != Action::Start));
}

#[tokio::test]
async fn a_container_left_in_the_old_namespace_of_the_one_it_shares_is_restarted() {
    let stack = load(
        r#"
name: p
services:
  net:
    image: busybox
    restart: always
  app:
    image: busybox
    network_mode: service:net
"#,
    );
    let mut sb = sandbox_up(&stack).await;
    sb.host.set_status("p-net-1", Status::Running);
    sb.host.set_status("p-app-1", Status::Running);
    // `net` was started again (new namespace); `app` still is in the old one.
    sb.host.edit(|w| {
        if let Some(c) = w.containers.get_mut("p-app-1") {
            c.stray_namespace = Some("p-net-1".into());
        }
    });
    let p = plan(&sb, &stack, Some(Supervision::default())).await;
    let t = texts(&p);
    assert!(
        t.iter().any(|o| o.starts_with("stop container p-app-1:")
            && o.contains("`p-net-1`, whose network it shares, was started again")),
        "{t:?}"
    );
    assert!(
        t.iter().any(|o| o.starts_with("start container p-app-1:")),
        "{t:?}"
    );
    assert!(!t.iter().any(|o| o.contains("p-net-1:")), "{t:?}");
    // Restarted, it is in the namespace again: nothing more to do.
    sb.run(&p).await.unwrap();
    assert!(
        plan(&sb, &stack, Some(Supervision::default()))
            .await
            .ops
            .is_empty()
    );
}
