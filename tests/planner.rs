//! The planner against the in-memory host: each situation of issue 3 (and
//! those docker compose's own convergence tests cover) as a test of its own.
//! Every test runs the real pipeline: load a Compose file, observe the fake
//! host, plan, and (mostly) execute, then checks the plan's operations,
//! reasons and diffs, and what the host and the state record hold after.

use std::collections::BTreeMap;
use std::time::Duration;

use stack::planner::execute::describe;
use stack::planner::fake::{Sandbox, SandboxError};
use stack::planner::plan::{Action, DownOptions, Plan, UpOptions};
use stack::planner::{PlanError, Status};

#[path = "support/planner.rs"]
mod support;

use support::{A, load, load_in};

const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A sandbox whose registry has busybox, alpine and redis.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    for image in ["busybox", "busybox:1", "busybox:2", "alpine", "redis"] {
        sb.host.publish(image, A);
    }
    sb
}

fn ops(plan: &Plan) -> Vec<String> {
    plan.ops.iter().map(describe).collect()
}

fn reasons(plan: &Plan, action: Action) -> Vec<String> {
    plan.ops
        .iter()
        .filter(|o| o.action == action)
        .map(|o| format!("{}: {}", o.target, o.reason))
        .collect()
}

fn changes(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .flat_map(|o| o.changes.iter().map(|c| c.to_string()))
        .collect()
}

fn up() -> UpOptions {
    UpOptions::default()
}

/// Each operation's waits come earlier in the list: the plan can run in order.
fn assert_runnable(plan: &Plan) {
    for op in &plan.ops {
        for &a in &op.after {
            assert!(a < op.id, "{} waits for a later op {a}", describe(op));
        }
    }
}

/// The record names exactly the containers, networks and volumes on the host.
fn assert_record_matches_host(sb: &Sandbox) {
    let world = sb.host.world();
    let recorded: Vec<&String> = sb.record.containers.keys().collect();
    let live: Vec<&String> = world.containers.keys().collect();
    assert_eq!(recorded, live, "containers");
    let recorded: Vec<&String> = sb.record.networks.values().map(|n| &n.name).collect();
    let live: Vec<&String> = world.networks.keys().collect();
    assert_eq!(recorded, live, "networks");
    let recorded: Vec<&String> = sb.record.volumes.values().map(|n| &n.name).collect();
    let live: Vec<&String> = world.volumes.keys().collect();
    assert_eq!(recorded, live, "volumes");
}

const WEB_DB: &str = "
services:
  web:
    image: busybox
    environment: {FOO: '1'}
    depends_on: [db]
    volumes: [data:/data]
  db:
    image: redis
volumes:
  data: {}
";

#[tokio::test]
async fn fresh_up_creates_everything_dependencies_first() {
    let stack = load(WEB_DB);
    let mut sb = sandbox();
    let (plan, _) = sb.up(&stack, &up()).await.unwrap();
    assert_runnable(&plan);
    assert_eq!(
        ops(&plan),
        [
            "pull image busybox",
            "pull image redis",
            "create network p_default",
            "create volume p_data",
            "create container p-db-1",
            "start container p-db-1",
            "create container p-web-1",
            "start container p-web-1",
        ]
    );
    assert_eq!(
        reasons(&plan, Action::Create)[3],
        "container p-web-1: new service"
    );
    assert_eq!(
        plan.summary.to_string(),
        "4 to create, 0 to recreate, 0 to remove (2 to pull, 2 to start)"
    );
    // web starts only after db started.
    let start_web = plan
        .ops
        .iter()
        .find(|o| describe(o) == "start container p-web-1")
        .unwrap();
    let start_db = plan
        .ops
        .iter()
        .find(|o| describe(o) == "start container p-db-1")
        .unwrap();
    assert!(start_web.after.contains(&start_db.id));
    let world = sb.host.world();
    assert_eq!(world.containers["p-web-1"].status, Status::Running);
    assert_eq!(world.containers["p-web-1"].labels["stack.service"], "web");
    assert_eq!(world.containers["p-web-1"].labels["stack.replica"], "1");
    assert_eq!(world.containers["p-web-1"].labels["stack.revision"], "1");
    assert_eq!(sb.record.revision, 1);
    assert_eq!(sb.record.containers["p-web-1"].image, A);
    assert_record_matches_host(&sb);
}

#[tokio::test]
async fn unchanged_up_is_a_no_op() {
    let stack = load(WEB_DB);
    let mut sb = sandbox();
    sb.up(&stack, &up()).await.unwrap();
    sb.host.clear_calls();
    let (plan, _) = sb.up(&stack, &up()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert_eq!(
        plan.summary.to_string(),
        "0 to create, 0 to recreate, 0 to remove"
    );
    assert!(sb.host.call_names().is_empty());
    assert_eq!(sb.record.revision, 1, "a no-op applies no new revision");
}

#[tokio::test]
async fn config_hash_matches_stack_config_hash() {
    let stack = load(WEB_DB);
    let mut sb = sandbox();
    sb.up(&stack, &up()).await.unwrap();
    let expected = stack::planner::hash::config_hash(&stack, &stack.services["web"]);
    assert_eq!(sb.record.containers["p-web-1"].config_hash, expected);
    assert_eq!(
        sb.host.world().containers["p-web-1"].labels["stack.config-hash"],
        expected
    );
}

#[tokio::test]
async fn changed_image_reference_recreates_only_that_service() {
    let mut sb = sandbox();
    sb.up(
        &load("services:\n  a: {image: 'busybox:1'}\n  b: {image: alpine}\n"),
        &up(),
    )
    .await
    .unwrap();
    let (plan, _) = sb
        .up(
            &load("services:\n  a: {image: 'busybox:2'}\n  b: {image: alpine}\n"),
            &up(),
        )
        .await
        .unwrap();
    assert_eq!(
        ops(&plan),
        [
            "pull image busybox:2",
            "recreate container p-a-1",
            "start container p-a-1"
        ]
    );
    assert_eq!(changes(&plan), ["image: busybox:1 → busybox:2"]);
    assert_eq!(
        reasons(&plan, Action::Recreate),
        ["container p-a-1: image changed"]
    );
    assert_eq!(sb.record.containers["p-a-1"].revision, 2);
    assert_eq!(sb.record.containers["p-b-1"].revision, 1);
}

#[tokio::test]
async fn new_image_digest_under_the_same_reference_recreates() {
    let stack = load("services:\n  a: {image: busybox}\n");
    let mut sb = sandbox();
    sb.up(&stack, &up()).await.unwrap();
    // `busybox` now names another image in the local store (a pull elsewhere).
    sb.host.add_image("busybox", B);
    let (plan, _) = sb.up(&stack, &up()).await.unwrap();
    assert_eq!(
        ops(&plan),
        ["recreate container p-a-1", "start container p-a-1"]
    );
    assert_eq!(
        reasons(&plan, Action::Recreate),
        ["container p-a-1: image changed: busybox@sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb…"]
    );
    assert_eq!(
        sb.host.world().containers["p-a-1"].image.as_deref(),
        Some(B)
    );
}

#[tokio::test]
async fn changed_environment_recreates_with_a_field_diff() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    let (plan, _) = sb
        .up(&load(&WEB_DB.replace("FOO: '1'", "FOO: '2'")), &up())
        .await
        .unwrap();
    assert_eq!(
        ops(&plan),
        ["recreate container p-web-1", "start container p-web-1"]
    );
    assert_eq!(changes(&plan), ["environment FOO: 1 → 2"]);
    assert_eq!(
        reasons(&plan, Action::Recreate),
        ["container p-web-1: environment changed"]
    );
    assert_eq!(
        sb.host.world().containers["p-web-1"]
            .spec
            .definition
            .environment["FOO"]
            .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn changed_config_file_content_recreates_its_users() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "
services:
  web: {image: busybox, configs: [conf]}
  other: {image: busybox}
configs:
  conf: {file: ./app.conf}
";
    std::fs::write(dir.path().join("app.conf"), "a=1\n").unwrap();
    let mut sb = sandbox();
    sb.up(&load_in(dir.path(), yaml), &up()).await.unwrap();
    std::fs::write(dir.path().join("app.conf"), "a=2\n").unwrap();
    let (plan, _) = sb.up(&load_in(dir.path(), yaml), &up()).await.unwrap();
    assert_eq!(
        ops(&plan),
        ["recreate container p-web-1", "start container p-web-1"]
    );
    let diff = changes(&plan);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert!(
        diff[0].starts_with("configs conf content: sha256:"),
        "{diff:?}"
    );
}

#[tokio::test]
async fn scale_up_adds_replicas_and_scale_down_removes_the_highest() {
    let mut sb = sandbox();
    sb.up(&load("services:\n  w: {image: busybox, scale: 2}\n"), &up())
        .await
        .unwrap();
    let (plan, _) = sb
        .up(&load("services:\n  w: {image: busybox, scale: 4}\n"), &up())
        .await
        .unwrap();
    assert_eq!(
        ops(&plan),
        [
            "create container p-w-3",
            "start container p-w-3",
            "create container p-w-4",
            "start container p-w-4",
        ]
    );
    assert_eq!(
        reasons(&plan, Action::Create)[0],
        "container p-w-3: scale 2 → 4"
    );
    let (plan, _) = sb
        .up(
            &load("services:\n  w: {image: busybox, scale: 4}\n"),
            &UpOptions {
                scale: BTreeMap::from([("w".to_string(), 1)]),
                ..up()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ops(&plan),
        [
            "remove container p-w-2",
            "remove container p-w-3",
            "remove container p-w-4"
        ]
    );
    assert_eq!(
        reasons(&plan, Action::Remove)[0],
        "container p-w-2: scale 4 → 1"
    );
    let names: Vec<String> = sb.host.world().containers.into_keys().collect();
    assert_eq!(names, ["p-w-1"]);
}

#[tokio::test]
async fn scale_down_removes_out_of_date_replicas_first() {
    let mut sb = sandbox();
    sb.up(&load("services:\n  w: {image: busybox, scale: 3}\n"), &up())
        .await
        .unwrap();
    // Replica 1 was created from another configuration.
    sb.host.edit(|w| {
        w.containers
            .get_mut("p-w-1")
            .unwrap()
            .labels
            .insert("stack.config-hash".into(), "sha256:old".into());
    });
    sb.record.containers.get_mut("p-w-1").unwrap().config_hash = "sha256:old".into();
    let (plan, _) = sb
        .up(&load("services:\n  w: {image: busybox, scale: 2}\n"), &up())
        .await
        .unwrap();
    assert_eq!(ops(&plan), ["remove container p-w-1"]);
    assert!(reasons(&plan, Action::Remove)[0].contains("out of date"));
    let names: Vec<String> = sb.host.world().containers.into_keys().collect();
    assert_eq!(names, ["p-w-2", "p-w-3"]);
}

const TWO: &str = "services:\n  a: {image: busybox}\n  old: {image: busybox}\n";
const ONE: &str = "services:\n  a: {image: busybox}\n";

#[tokio::test]
async fn orphans_are_kept_with_a_warning() {
    let mut sb = sandbox();
    sb.up(&load(TWO), &up()).await.unwrap();
    let (plan, _) = sb.up(&load(ONE), &up()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("p-old-1"), "{}", plan.warnings[0]);
    assert!(plan.warnings[0].contains("--remove-orphans"));
    assert!(sb.host.world().containers.contains_key("p-old-1"));
}

#[tokio::test]
async fn orphans_are_removed_with_remove_orphans() {
    let mut sb = sandbox();
    sb.up(&load(TWO), &up()).await.unwrap();
    let opts = UpOptions {
        remove_orphans: true,
        ..up()
    };
    let (plan, _) = sb.up(&load(ONE), &opts).await.unwrap();
    assert_eq!(ops(&plan), ["remove container p-old-1"]);
    assert_eq!(
        reasons(&plan, Action::Remove),
        ["container p-old-1: orphan: service `old` is no longer in the stack file"]
    );
    assert!(plan.warnings.is_empty());
    assert!(!sb.host.world().containers.contains_key("p-old-1"));
    assert_record_matches_host(&sb);
}

#[tokio::test]
async fn services_disabled_by_a_profile_are_not_orphans() {
    let mut sb = sandbox();
    sb.up(&load(TWO), &up()).await.unwrap();
    let (plan, _) = sb
        .up(
            &load("services:\n  a: {image: busybox}\n  old: {image: busybox, profiles: [x]}\n"),
            &UpOptions {
                remove_orphans: true,
                ..up()
            },
        )
        .await
        .unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert!(plan.warnings.is_empty());
}

const NET: &str = "
services:
  a: {image: busybox, networks: [front]}
  b: {image: busybox, networks: [front, back]}
  c: {image: busybox, networks: [back]}
networks:
  front: {labels: {tier: one}}
  back: {}
";

#[tokio::test]
async fn diverged_network_is_recreated_and_its_containers_reattached() {
    let mut sb = sandbox();
    sb.up(&load(NET), &up()).await.unwrap();
    let (plan, _) = sb
        .up(&load(&NET.replace("tier: one", "tier: two")), &up())
        .await
        .unwrap();
    assert_runnable(&plan);
    assert_eq!(
        ops(&plan),
        [
            "stop container p-a-1",
            "disconnect container p-a-1 from network p_front",
            "stop container p-b-1",
            "disconnect container p-b-1 from network p_front",
            "recreate network p_front",
            "connect container p-a-1 to network p_front",
            "start container p-a-1",
            "connect container p-b-1 to network p_front",
            "start container p-b-1",
        ]
    );
    assert_eq!(changes(&plan), ["labels tier: one → two"]);
    let world = sb.host.world();
    assert_eq!(world.networks["p_front"].labels["tier"], "two");
    assert!(world.containers["p-a-1"].networks.contains("p_front"));
    assert!(world.containers["p-b-1"].networks.contains("p_back"));
    assert_eq!(world.containers["p-b-1"].status, Status::Running);
    assert_eq!(world.containers["p-c-1"].status, Status::Running);
    assert_record_matches_host(&sb);
    // And then it is converged.
    let (again, _) = sb
        .up(&load(&NET.replace("tier: one", "tier: two")), &up())
        .await
        .unwrap();
    assert!(again.is_empty(), "{:?}", ops(&again));
}

#[tokio::test]
async fn matching_network_is_reused_and_a_missing_one_created() {
    let mut sb = sandbox();
    sb.up(&load(NET), &up()).await.unwrap();
    sb.host.edit(|w| {
        // Someone removed `back` and its attachments by hand.
        w.networks.remove("p_back");
        for c in w.containers.values_mut() {
            c.networks.remove("p_back");
        }
    });
    let (plan, _) = sb.up(&load(NET), &up()).await.unwrap();
    assert_eq!(ops(&plan), ["create network p_back"]);
}

#[tokio::test]
async fn external_network_must_exist_and_is_never_created() {
    let yaml = "services:\n  a: {image: busybox, networks: [ext]}\nnetworks:\n  ext: {external: true, name: shared}\n";
    let mut sb = sandbox();
    let err = sb.up(&load(yaml), &up()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("external network `shared` does not exist"),
        "{text}"
    );
    sb.host.edit(|w| {
        w.networks.insert("shared".into(), Default::default());
    });
    let (plan, _) = sb.up(&load(yaml), &up()).await.unwrap();
    assert!(
        !ops(&plan).iter().any(|o| o.contains("network")),
        "{:?}",
        ops(&plan)
    );
}

#[tokio::test]
async fn a_network_stack_did_not_create_is_not_taken_over() {
    let mut sb = sandbox();
    sb.host.edit(|w| {
        w.networks.insert("p_default".into(), Default::default());
    });
    let err = sb.up(&load(ONE), &up()).await.unwrap_err();
    assert!(
        matches!(err, SandboxError::Plan(PlanError::NotOwned { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("external: true"));
}

const VOL: &str = "services:\n  a: {image: busybox, volumes: [data:/d]}\nvolumes:\n  data: {driver_opts: {size: 1g}}\n";

#[tokio::test]
async fn diverged_volume_is_an_error_that_says_how_to_proceed() {
    let mut sb = sandbox();
    sb.up(&load(VOL), &up()).await.unwrap();
    sb.host.clear_calls();
    let err = sb
        .up(&load(&VOL.replace("1g", "2g")), &up())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, SandboxError::Plan(PlanError::VolumeDiverged { .. })),
        "{text}"
    );
    assert!(text.contains("volume `data` (p_data)"), "{text}");
    assert!(text.contains("driver_opts size: 1g → 2g"), "{text}");
    assert!(text.contains("stack down --volumes"), "{text}");
    assert!(sb.host.call_names().is_empty(), "nothing was done");
    assert!(sb.host.world().volumes.contains_key("p_data"));
}

#[tokio::test]
async fn matching_volume_is_kept_and_a_missing_one_created() {
    let mut sb = sandbox();
    let (plan, _) = sb.up(&load(VOL), &up()).await.unwrap();
    assert!(ops(&plan).contains(&"create volume p_data".to_string()));
    let (plan, _) = sb.up(&load(VOL), &up()).await.unwrap();
    assert!(plan.is_empty());
}

const CASCADE: &str = "
services:
  db: {image: redis, environment: {V: '1'}}
  web:
    image: busybox
    depends_on:
      db: {condition: service_started, restart: true}
  plain:
    image: busybox
    depends_on: [db]
";

#[tokio::test]
async fn restart_true_restarts_dependents_after_their_dependency_is_recreated() {
    let mut sb = sandbox();
    sb.up(&load(CASCADE), &up()).await.unwrap();
    sb.host.clear_calls();
    let (plan, _) = sb
        .up(&load(&CASCADE.replace("V: '1'", "V: '2'")), &up())
        .await
        .unwrap();
    assert_runnable(&plan);
    assert_eq!(
        ops(&plan),
        [
            "stop container p-web-1",
            "recreate container p-db-1",
            "start container p-db-1",
            "start container p-web-1",
        ]
    );
    assert_eq!(
        reasons(&plan, Action::Stop),
        ["container p-web-1: `db` is recreated (depends_on.db.restart: true)"]
    );
    let calls = sb.host.call_names();
    let pos = |s: &str| calls.iter().position(|c| c == s).unwrap();
    assert!(pos("stop p-web-1") < pos("stop p-db-1"));
    assert!(pos("start p-db-1") < pos("start p-web-1"));
    // `plain` depends on db without restart: true and is left alone.
    assert!(!calls.iter().any(|c| c.ends_with("p-plain-1")), "{calls:?}");
}

const ONESHOT: &str = "
services:
  migrate: {image: busybox, command: ['true']}
  app:
    image: busybox
    depends_on:
      migrate: {condition: service_completed_successfully}
";

#[tokio::test]
async fn completed_one_shot_is_left_alone() {
    let mut sb = sandbox();
    sb.host.on_start("p-migrate-1", Status::Exited { code: 0 });
    let (plan, _) = sb.up(&load(ONESHOT), &up()).await.unwrap();
    assert!(ops(&plan).contains(&"wait container p-migrate-1".to_string()));
    let (plan, _) = sb.up(&load(ONESHOT), &up()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    // A one-shot that failed runs again.
    sb.host
        .set_status("p-migrate-1", Status::Exited { code: 3 });
    let plan = sb.plan(&load(ONESHOT), &up()).await.unwrap();
    assert_eq!(
        reasons(&plan, Action::Start),
        ["container p-migrate-1: exited with code 3"]
    );
}

#[tokio::test]
async fn a_stopped_long_running_service_is_started() {
    let yaml = "services:\n  a: {image: busybox, restart: always}\n";
    let mut sb = sandbox();
    sb.up(&load(yaml), &up()).await.unwrap();
    sb.host.set_status("p-a-1", Status::Exited { code: 0 });
    let (plan, _) = sb.up(&load(yaml), &up()).await.unwrap();
    assert_eq!(ops(&plan), ["start container p-a-1"]);
}

#[tokio::test]
async fn force_recreate_recreates_unchanged_containers() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    let opts = UpOptions {
        force_recreate: true,
        ..up()
    };
    let (plan, _) = sb.up(&load(WEB_DB), &opts).await.unwrap();
    assert_eq!(
        reasons(&plan, Action::Recreate),
        [
            "container p-db-1: --force-recreate",
            "container p-web-1: --force-recreate"
        ]
    );
}

#[tokio::test]
async fn no_recreate_keeps_diverged_containers_and_says_so() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    let opts = UpOptions {
        no_recreate: true,
        ..up()
    };
    let (plan, _) = sb
        .up(&load(&WEB_DB.replace("FOO: '1'", "FOO: '2'")), &opts)
        .await
        .unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert!(
        plan.warnings[0].contains("--no-recreate"),
        "{:?}",
        plan.warnings
    );
}

#[tokio::test]
async fn force_and_no_recreate_conflict() {
    let sb = sandbox();
    let opts = UpOptions {
        force_recreate: true,
        no_recreate: true,
        ..up()
    };
    let err = sb.plan(&load(ONE), &opts).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("--force-recreate and --no-recreate cannot be used together")
    );
}

#[tokio::test]
async fn naming_a_service_brings_its_dependencies() {
    let mut sb = sandbox();
    let stack = load(
        "services:\n  web: {image: busybox, depends_on: [db]}\n  db: {image: redis}\n  other: {image: alpine}\n",
    );
    let opts = UpOptions {
        services: vec!["web".into()],
        ..up()
    };
    let (plan, _) = sb.up(&stack, &opts).await.unwrap();
    let list = ops(&plan);
    assert!(
        list.contains(&"create container p-db-1".to_string()),
        "{list:?}"
    );
    assert!(!list.iter().any(|o| o.contains("other")), "{list:?}");
}

#[tokio::test]
async fn no_deps_touches_only_the_named_service() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    let changed = load(
        &WEB_DB
            .replace("FOO: '1'", "FOO: '2'")
            .replace("image: redis", "image: redis\n    environment: {X: y}"),
    );
    let opts = UpOptions {
        services: vec!["web".into()],
        no_deps: true,
        ..up()
    };
    let (plan, _) = sb.up(&changed, &opts).await.unwrap();
    assert_eq!(
        ops(&plan),
        ["recreate container p-web-1", "start container p-web-1"]
    );
    // Without --no-deps, db's change is applied too.
    let opts = UpOptions {
        services: vec!["web".into()],
        ..up()
    };
    let plan = sb.plan(&changed, &opts).await.unwrap();
    assert!(ops(&plan).contains(&"recreate container p-db-1".to_string()));
}

#[tokio::test]
async fn always_recreate_deps_recreates_the_dependencies_of_named_services() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    let opts = UpOptions {
        services: vec!["web".into()],
        always_recreate_deps: true,
        ..up()
    };
    let (plan, _) = sb.up(&load(WEB_DB), &opts).await.unwrap();
    assert_eq!(
        reasons(&plan, Action::Recreate),
        ["container p-db-1: --always-recreate-deps"]
    );
}

#[tokio::test]
async fn healthy_condition_waits_before_starting_the_dependent() {
    let yaml = "
services:
  db:
    image: redis
    healthcheck: {test: [CMD, 'true']}
  web:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
";
    let mut sb = sandbox();
    sb.host.on_start("p-db-1", Status::Starting);
    let stack = load(yaml);
    let plan = sb.plan(&stack, &up()).await.unwrap();
    let wait = plan.ops.iter().find(|o| o.action == Action::Wait).unwrap();
    assert_eq!(describe(wait), "wait container p-db-1");
    assert_eq!(wait.reason, "web waits for it (service_healthy)");
    let start_web = plan
        .ops
        .iter()
        .find(|o| describe(o) == "start container p-web-1")
        .unwrap();
    assert!(start_web.after.contains(&wait.id));
    // Unhealthy: the wait fails and web is never started.
    sb.host.on_start("p-db-1", Status::Unhealthy);
    let err = sb.run(&plan).await.unwrap_err();
    assert!(err.to_string().contains("p-db-1 is unhealthy"), "{err}");
    assert_eq!(
        sb.host.world().containers["p-web-1"].status,
        Status::Created
    );
}

#[tokio::test]
async fn an_optional_dependency_that_fails_is_a_warning() {
    let yaml = "
services:
  db: {image: redis, healthcheck: {test: [CMD, 'true']}}
  web:
    image: busybox
    depends_on:
      db: {condition: service_healthy, required: false}
";
    let mut sb = sandbox();
    sb.host.on_start("p-db-1", Status::Unhealthy);
    let (_, outcome) = sb.up(&load(yaml), &up()).await.unwrap();
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert_eq!(
        sb.host.world().containers["p-web-1"].status,
        Status::Running
    );
}

#[tokio::test]
async fn a_container_removed_by_hand_is_recreated_and_the_record_repaired() {
    let mut sb = sandbox();
    sb.up(&load(ONE), &up()).await.unwrap();
    sb.host.edit(|w| {
        w.containers.remove("p-a-1");
    });
    let plan = sb.plan(&load(ONE), &up()).await.unwrap();
    assert_eq!(plan.stale.containers, ["p-a-1"]);
    assert_eq!(
        ops(&plan),
        ["create container p-a-1", "start container p-a-1"]
    );
    sb.run(&plan).await.unwrap();
    assert_record_matches_host(&sb);
}

#[tokio::test]
async fn a_live_container_missing_from_the_record_is_adopted() {
    let mut sb = sandbox();
    sb.up(&load(ONE), &up()).await.unwrap();
    // A crash between creating the container and recording it.
    sb.record.containers.clear();
    let plan = sb.plan(&load(ONE), &up()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert_eq!(plan.adopt.len(), 1);
    sb.run(&plan).await.unwrap();
    assert!(sb.record.containers.contains_key("p-a-1"));
}

#[tokio::test]
async fn a_dependency_cycle_names_every_service() {
    let mut stack = load(
        "services:\n  a: {image: busybox, depends_on: [b]}\n  b: {image: busybox}\n  c: {image: busybox}\n",
    );
    // The loader rejects cycles; build one by hand to see the planner refuse it too.
    let dep = stack.services["a"].depends_on["b"].clone();
    stack
        .services
        .get_mut("b")
        .unwrap()
        .depends_on
        .insert("a".into(), dep);
    let err = sandbox().plan(&stack, &up()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("a → b → a"), "{text}");
    let SandboxError::Plan(PlanError::Cycle { services }) = err else {
        panic!("{text}")
    };
    assert_eq!(services, ["a", "b", "a"], "c is not in the cycle");
}

#[tokio::test]
async fn container_name_cannot_be_scaled() {
    let stack = load("services:\n  a: {image: busybox, container_name: fixed}\n");
    let opts = UpOptions {
        scale: BTreeMap::from([("a".to_string(), 2)]),
        ..up()
    };
    let err = sandbox().plan(&stack, &opts).await.unwrap_err();
    assert!(err.to_string().contains("container_name"), "{err}");
}

#[tokio::test]
async fn pull_policy_never_with_a_missing_image_is_an_error() {
    let stack = load("services:\n  a: {image: nothere, pull_policy: never}\n");
    let err = sandbox().plan(&stack, &up()).await.unwrap_err();
    assert!(err.to_string().contains("pull_policy: never"), "{err}");
}

#[tokio::test]
async fn down_removes_dependents_first_then_networks_and_keeps_volumes() {
    let mut sb = sandbox();
    let stack = load(WEB_DB);
    sb.up(&stack, &up()).await.unwrap();
    let plan = sb
        .plan_down(Some(&stack), "p", &DownOptions::default())
        .await
        .unwrap();
    assert_runnable(&plan);
    assert_eq!(
        ops(&plan),
        [
            "stop container p-web-1",
            "remove container p-web-1",
            "stop container p-db-1",
            "remove container p-db-1",
            "remove network p_default",
        ]
    );
    // db stops after web; each is removed once it has stopped.
    assert_eq!(plan.ops[2].after, [0]);
    assert_eq!(plan.ops[1].after, [0]);
    assert_eq!(plan.ops[3].after, [2]);
    assert!(plan.warnings[0].contains("p_data"), "{:?}", plan.warnings);
    sb.run(&plan).await.unwrap();
    let world = sb.host.world();
    assert!(world.containers.is_empty());
    assert!(world.networks.is_empty());
    assert!(world.volumes.contains_key("p_data"));
    assert_record_matches_host(&sb);
}

#[tokio::test]
async fn down_without_the_file_uses_the_labels_and_volumes_go_when_asked() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    let opts = DownOptions {
        volumes: true,
        ..DownOptions::default()
    };
    let plan = sb.plan_down(None, "p", &opts).await.unwrap();
    assert_eq!(
        ops(&plan),
        [
            "stop container p-web-1",
            "remove container p-web-1",
            "stop container p-db-1",
            "remove container p-db-1",
            "remove network p_default",
            "remove volume p_data",
        ]
    );
    sb.run(&plan).await.unwrap();
    assert!(sb.host.world().volumes.is_empty());
    // Down again: nothing left.
    let plan = sb.plan_down(None, "p", &opts).await.unwrap();
    assert!(plan.is_empty());
}

// The executor.

#[tokio::test]
async fn an_operation_never_starts_before_what_it_waits_for() {
    let yaml = "
services:
  a: {image: busybox}
  b: {image: busybox, depends_on: [a]}
  c: {image: busybox, depends_on: [b]}
";
    let mut sb = sandbox();
    sb.host.delay("start p-a-1", Duration::from_millis(20));
    sb.host
        .delay("create_container p-c-1", Duration::from_millis(5));
    let (plan, _) = sb.up(&load(yaml), &up()).await.unwrap();
    let calls = sb.host.calls();
    let call = |what: &str| calls.iter().find(|c| c.what == what).unwrap().clone();
    // Check every op's waits against the host's log.
    let first_call = |op: &stack::planner::Op| -> Option<String> {
        let verb = match (op.action, &op.target) {
            (Action::Pull, stack::planner::Target::Image { reference }) => {
                format!("pull {reference}")
            }
            (Action::Create, stack::planner::Target::Container { name, .. }) => {
                format!("create_container {name}")
            }
            (Action::Create, stack::planner::Target::Network { name, .. }) => {
                format!("create_network {name}")
            }
            (Action::Start, stack::planner::Target::Container { name, .. }) => {
                format!("start {name}")
            }
            _ => return None,
        };
        Some(verb)
    };
    for op in &plan.ops {
        let Some(mine) = first_call(op) else { continue };
        for &a in &op.after {
            let Some(theirs) = first_call(&plan.ops[a]) else {
                continue;
            };
            assert!(
                call(&theirs).ended < call(&mine).began,
                "{mine} began before {theirs} ended"
            );
        }
    }
    assert!(call("start p-a-1").ended < call("start p-b-1").began);
    assert!(call("start p-b-1").ended < call("start p-c-1").began);
}

#[tokio::test]
async fn independent_operations_overlap() {
    let yaml = "services:\n  a: {image: busybox}\n  b: {image: busybox}\n  c: {image: busybox}\n";
    let mut sb = sandbox();
    for s in ["a", "b", "c"] {
        sb.host.delay(
            &format!("create_container p-{s}-1"),
            Duration::from_millis(30),
        );
    }
    sb.up(&load(yaml), &up()).await.unwrap();
    let calls = sb.host.calls();
    let call = |what: &str| calls.iter().find(|c| c.what == what).unwrap().clone();
    let (a, b) = (
        call("create_container p-a-1"),
        call("create_container p-b-1"),
    );
    assert!(a.began < b.ended && b.began < a.ended, "{a:?} {b:?}");
    assert!(sb.host.max_in_flight() >= 3);
}

#[tokio::test]
async fn parallelism_is_bounded() {
    let mut yaml = String::from("services:\n");
    for i in 0..8 {
        yaml.push_str(&format!("  s{i}: {{image: busybox}}\n"));
    }
    let mut sb = sandbox();
    for i in 0..8 {
        sb.host.delay(
            &format!("create_container p-s{i}-1"),
            Duration::from_millis(10),
        );
    }
    sb.exec = Some(stack::planner::ExecOptions {
        parallelism: 3,
        ..Default::default()
    });
    sb.up(&load(&yaml), &up()).await.unwrap();
    assert_eq!(sb.host.max_in_flight(), 3);
    assert_eq!(sb.host.world().containers.len(), 8);
}

#[tokio::test]
async fn the_first_failure_stops_new_work_and_leaves_an_accurate_record() {
    let yaml = "
services:
  a: {image: busybox}
  b: {image: busybox, depends_on: [a]}
  slow: {image: busybox}
";
    let mut sb = sandbox();
    sb.host.fail_on("start p-a-1", "no space left on device");
    sb.host
        .delay("create_container p-slow-1", Duration::from_millis(30));
    let err = sb.up(&load(yaml), &up()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("start container p-a-1 failed: no space left on device"),
        "{text}"
    );
    assert!(text.contains("run again"), "{text}");
    let names = sb.host.call_names();
    // b depends on a: created alongside it, never started. slow was being
    // created when a failed: that finished, but slow was not started.
    assert!(!names.contains(&"start p-b-1".to_string()), "{names:?}");
    assert!(
        names.contains(&"create_container p-slow-1".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"start p-slow-1".to_string()), "{names:?}");
    assert_record_matches_host(&sb);
    assert_eq!(sb.record.revision, 0, "a failed run records no revision");
    // The next plan picks up from what exists: only the starts are left.
    let next = sb.plan(&load(yaml), &up()).await.unwrap();
    assert_eq!(
        ops(&next),
        [
            "start container p-a-1",
            "start container p-b-1",
            "start container p-slow-1",
        ]
    );
}

#[tokio::test]
async fn a_failed_recreate_leaves_the_record_accurate() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    sb.host
        .fail_on("create_container p-web-1", "image is corrupt");
    let err = sb
        .up(&load(&WEB_DB.replace("FOO: '1'", "FOO: '2'")), &up())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("image is corrupt"));
    // The old container was removed, the new one never created: the record agrees.
    assert!(!sb.record.containers.contains_key("p-web-1"));
    assert_record_matches_host(&sb);
}

#[tokio::test]
async fn a_record_that_cannot_be_saved_fails_the_run() {
    let mut sb = sandbox();
    sb.recorder.fail();
    let err = sb.up(&load(ONE), &up()).await.unwrap_err();
    assert!(
        err.to_string().contains("could not save the state record"),
        "{err}"
    );
    // Nothing was created after the first unsaved change.
    assert!(sb.host.world().containers.is_empty());
}

#[tokio::test]
async fn a_volume_stack_did_not_create_is_used_with_a_warning() {
    let mut sb = sandbox();
    sb.host.edit(|w| {
        w.volumes.insert("p_data".into(), Default::default());
    });
    let (plan, _) = sb.up(&load(VOL), &up()).await.unwrap();
    assert!(
        !ops(&plan).iter().any(|o| o.contains("volume")),
        "{:?}",
        ops(&plan)
    );
    assert!(
        plan.warnings[0].contains("volume `p_data` already exists"),
        "{:?}",
        plan.warnings
    );
    assert!(sb.host.world().containers.contains_key("p-a-1"));
}

#[tokio::test]
async fn the_record_is_saved_in_batches_and_exact_at_the_end() {
    let mut yaml = String::from("services:\n");
    for i in 0..10 {
        yaml.push_str(&format!("  s{i}: {{image: busybox}}\n"));
    }
    let mut sb = sandbox();
    sb.up(&load(&yaml), &up()).await.unwrap();
    // 11 changes (a network, 10 containers); the fake clock stands still,
    // so only the first change and the end are saved.
    assert_eq!(sb.recorder.saves(), 2);
    assert_eq!(sb.recorder.last().unwrap(), sb.record);
    assert_eq!(sb.record.containers.len(), 10);
    assert_record_matches_host(&sb);
}

#[tokio::test]
async fn an_up_that_changes_nothing_does_not_save_the_record() {
    let mut sb = sandbox();
    let stack = load("services:\n  a: {image: busybox}\n");
    sb.up(&stack, &up()).await.unwrap();
    let saves = sb.recorder.saves();
    // The watcher's resync: nothing to do, so the file is not rewritten.
    let (plan, _) = sb.up(&stack, &up()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert_eq!(sb.recorder.saves(), saves);
}

#[tokio::test]
async fn scaling_down_while_its_network_is_recreated_detaches_first() {
    let yaml =
        "services:\n  w: {image: busybox, scale: 2}\nnetworks:\n  default: {labels: {v: '1'}}\n";
    let mut sb = sandbox();
    sb.up(&load(yaml), &up()).await.unwrap();
    let changed = yaml
        .replace("scale: 2", "scale: 1")
        .replace("v: '1'", "v: '2'");
    let (plan, _) = sb.up(&load(&changed), &up()).await.unwrap();
    assert_runnable(&plan);
    let remove = plan
        .ops
        .iter()
        .find(|o| o.action == Action::Remove)
        .unwrap();
    let disconnect = plan
        .ops
        .iter()
        .find(|o| describe(o) == "disconnect container p-w-2 from network p_default")
        .unwrap();
    assert!(remove.after.contains(&disconnect.id));
    let names: Vec<String> = sb.host.world().containers.into_keys().collect();
    assert_eq!(names, ["p-w-1"]);
    assert_record_matches_host(&sb);
}

#[tokio::test]
async fn revisions_go_on_after_the_record_is_forgotten() {
    let mut sb = sandbox();
    sb.up(&load(ONE), &up()).await.unwrap();
    sb.up(&load(TWO), &up()).await.unwrap();
    let down = sb
        .plan_down(None, "p", &DownOptions::default())
        .await
        .unwrap();
    sb.run(&down).await.unwrap();
    // `down` forgets the record; the revision history stays.
    sb.record = Default::default();
    let (plan, _) = sb.up(&load(ONE), &up()).await.unwrap();
    assert_eq!(plan.revision, 3);
    assert_eq!(
        sb.host.world().containers["p-a-1"].labels["stack.revision"],
        "3"
    );
}

#[tokio::test]
async fn a_dependency_scaled_to_zero_is_not_waited_for() {
    let yaml = "
services:
  db: {image: redis, scale: 0, healthcheck: {test: [CMD, 'true']}}
  web:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
";
    let mut sb = sandbox();
    let (plan, _) = sb.up(&load(yaml), &up()).await.unwrap();
    assert!(
        !plan.ops.iter().any(|o| o.action == Action::Wait),
        "{:?}",
        ops(&plan)
    );
    assert!(
        !ops(&plan).iter().any(|o| o.contains("p-db-1")),
        "{:?}",
        ops(&plan)
    );
    assert_eq!(
        sb.host.world().containers["p-web-1"].status,
        Status::Running
    );
}

/// `daily`, `weekly` and `every_<d>` pull again once the last pull is older
/// than the period, and not before; `missing` never refreshes a present image.
#[tokio::test]
async fn refresh_policies_pull_again_only_when_the_last_pull_is_old() {
    let mut sb = sandbox();
    for image in ["img-a", "img-b", "img-c"] {
        sb.host.publish(image, A);
    }
    let stack = load(
        "services:\n  a: {image: img-a, pull_policy: daily}\n  b: {image: img-b, pull_policy: every_2h}\n  c: {image: img-c}\n",
    );
    sb.up(&stack, &up()).await.unwrap();
    let mut observed = stack::planner::observe::observe(
        &sb.host,
        &stack.name,
        Some(&stack),
        Some(&sb.record),
        sb.history.clone(),
    )
    .await
    .unwrap();
    let now = std::time::SystemTime::now();
    let hours = |h: u64| Some(now - Duration::from_secs(h * 3600));
    let pulls = |observed: &stack::planner::observe::Observed| {
        let plan = stack::planner::plan::plan_up(&stack, observed, &up()).unwrap();
        reasons(&plan, Action::Pull)
    };
    observed.now = Some(now);
    for (image, age) in [("img-a", 3), ("img-b", 3), ("img-c", 1000)] {
        observed.images.get_mut(image).unwrap().pulled_at = hours(age);
    }
    let reasons_now = pulls(&observed);
    assert_eq!(reasons_now.len(), 1, "{reasons_now:?}");
    assert!(
        reasons_now[0].contains("older than its refresh period"),
        "{reasons_now:?}"
    );
    observed.images.get_mut("img-a").unwrap().pulled_at = hours(25);
    assert_eq!(pulls(&observed).len(), 2);
    // An image loaded from a file (never pulled) is not refreshed.
    for image in ["img-a", "img-b"] {
        observed.images.get_mut(image).unwrap().pulled_at = None;
    }
    assert!(pulls(&observed).is_empty());
}

#[tokio::test]
async fn no_start_creates_everything_and_starts_nothing() {
    let mut sb = sandbox();
    let opts = UpOptions {
        no_start: true,
        ..up()
    };
    let (plan, _) = sb.up(&load(WEB_DB), &opts).await.unwrap();
    assert_runnable(&plan);
    assert_eq!(
        ops(&plan),
        [
            "pull image busybox",
            "pull image redis",
            "create network p_default",
            "create volume p_data",
            "create container p-db-1",
            "create container p-web-1",
        ]
    );
    assert_eq!(plan.summary.start, 0);
    let world = sb.host.world();
    assert!(
        world
            .containers
            .values()
            .all(|c| c.status == Status::Created),
        "{:?}",
        world.containers
    );
    // A later `up` starts them, in order.
    let (plan, _) = sb.up(&load(WEB_DB), &up()).await.unwrap();
    assert_eq!(
        ops(&plan),
        ["start container p-db-1", "start container p-web-1"]
    );
}

#[tokio::test]
async fn the_pull_flag_overrides_the_services_policy() {
    let mut sb = sandbox();
    sb.up(&load(WEB_DB), &up()).await.unwrap();
    let always = UpOptions {
        pull: Some(stack::planner::pull_policy::PullPolicy::Always),
        ..up()
    };
    let plan = sb.plan(&load(WEB_DB), &always).await.unwrap();
    assert_eq!(
        reasons(&plan, Action::Pull),
        ["image busybox: --pull always", "image redis: --pull always"]
    );
    // `never` with the images present: nothing to pull, nothing to do.
    let never = UpOptions {
        pull: Some(stack::planner::pull_policy::PullPolicy::Never),
        ..up()
    };
    assert!(sb.plan(&load(WEB_DB), &never).await.unwrap().is_empty());
}

#[test]
fn container_references_to_this_stacks_containers_order_like_service_ones() {
    let stack = load(
        "name: p\nservices:\n  side: {image: busybox, network_mode: 'container:p-web-1'}\n  \
         data: {image: busybox, volumes_from: ['container:keeper:ro']}\n  \
         web: {image: busybox}\n  keep: {image: busybox, container_name: keeper}\n  \
         other: {image: busybox, network_mode: 'container:elsewhere'}\n",
    );
    let g = stack::planner::graph::Graph::new(&stack).unwrap();
    let order: Vec<&str> = g.order().collect();
    let at = |s: &str| order.iter().position(|o| *o == s).unwrap();
    assert!(at("web") < at("side"), "{order:?}");
    assert!(at("keep") < at("data"), "{order:?}");
    let deps = |s: &str| -> Vec<String> {
        g.dependencies(s)
            .into_iter()
            .map(|(d, _)| d.to_string())
            .collect()
    };
    assert_eq!(deps("side"), ["web"]);
    assert_eq!(deps("data"), ["keep"]);
    // A container outside the stack orders nothing.
    assert!(deps("other").is_empty());
}

#[test]
fn joining_a_services_pid_or_ipc_namespace_orders_after_it() {
    let stack = load(
        "name: p\nservices:\n  a: {image: busybox, pid: 'service:b'}\n  \
         b: {image: busybox, ipc: 'service:c'}\n  c: {image: busybox, ipc: host}\n",
    );
    let g = stack::planner::graph::Graph::new(&stack).unwrap();
    let order: Vec<&str> = g.order().collect();
    assert_eq!(order, ["c", "b", "a"]);
}
