//! A container the user stopped is not drift: the watcher's rounds
//! (`keep_user_stopped`) leave it stopped, `up` starts it and clears the
//! mark; and `stack run`'s service (`prepare_only`) gets its image,
//! networks and volumes without its own containers being touched. All
//! against the in-memory host.

use std::collections::BTreeSet;

use stack::planner::Status;
use stack::planner::execute::describe;
use stack::planner::fake::Sandbox;
use stack::planner::plan::{Plan, UpOptions};
use stack::spec::Stack;

#[path = "support/planner.rs"]
mod support;

use support::{A, load};

fn ops(plan: &Plan) -> Vec<String> {
    plan.ops.iter().map(describe).collect()
}

const STACK: &str = "
services:
  web:
    image: busybox
    restart: always
  db:
    image: busybox
    restart: always
";

fn watcher() -> UpOptions {
    UpOptions {
        keep_user_stopped: true,
        ..UpOptions::default()
    }
}

/// As `stack stop NAME` leaves it: marked in the record, then exited
/// with `code`.
fn user_stopped(sb: &mut Sandbox, name: &str, code: i64) {
    sb.record.containers.get_mut(name).unwrap().stopped_by_user = true;
    sb.host.set_status(name, Status::Exited { code });
}

async fn running_stack() -> (Sandbox, Stack) {
    let stack = load(STACK);
    let mut sb = Sandbox::new();
    sb.host.publish("busybox", A);
    sb.up(&stack, &UpOptions::default()).await.unwrap();
    (sb, stack)
}

#[tokio::test]
async fn the_watcher_leaves_a_container_the_user_stopped() {
    let (mut sb, stack) = running_stack().await;
    // `stack stop web`: marked in the record, then stopped.
    user_stopped(&mut sb, "p-web-1", 143);
    let (plan, _) = sb.up(&stack, &watcher()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert_eq!(
        sb.host.world().containers["p-web-1"].status,
        Status::Exited { code: 143 }
    );
    // A container that died on its own is still restarted.
    sb.host.set_status("p-db-1", Status::Exited { code: 1 });
    let (plan, _) = sb.up(&stack, &watcher()).await.unwrap();
    assert_eq!(ops(&plan), ["start container p-db-1"]);
}

#[tokio::test]
async fn up_starts_what_the_user_stopped_and_clears_the_mark() {
    let (mut sb, stack) = running_stack().await;
    user_stopped(&mut sb, "p-web-1", 137);
    let (plan, _) = sb.up(&stack, &UpOptions::default()).await.unwrap();
    assert_eq!(ops(&plan), ["start container p-web-1"]);
    assert!(!sb.record.containers["p-web-1"].stopped_by_user);
    assert!(sb.host.world().containers["p-web-1"].status.is_running());
    // From now on the watcher restarts it again when it dies.
    sb.host.set_status("p-web-1", Status::Exited { code: 137 });
    let (plan, _) = sb.up(&stack, &watcher()).await.unwrap();
    assert_eq!(ops(&plan), ["start container p-web-1"]);
}

#[tokio::test]
async fn a_recreated_container_forgets_the_mark() {
    let (mut sb, _) = running_stack().await;
    user_stopped(&mut sb, "p-web-1", 143);
    let changed = load(&STACK.replace(
        "restart: always\n  db",
        "restart: always\n    environment: {A: '1'}\n  db",
    ));
    let (plan, _) = sb.up(&changed, &UpOptions::default()).await.unwrap();
    assert!(ops(&plan).contains(&"recreate container p-web-1".to_string()));
    assert!(!sb.record.containers["p-web-1"].stopped_by_user);
}

#[tokio::test]
async fn run_prepares_the_service_without_touching_its_containers() {
    let stack = load(
        "
services:
  job:
    image: busybox
    volumes: [data:/data]
    depends_on: [db]
  db:
    image: busybox
volumes:
  data: {}
",
    );
    let mut sb = Sandbox::new();
    sb.host.publish("busybox", A);
    // `stack run job`: the dependencies, and job's image, network and volume.
    let opts = UpOptions {
        services: vec!["job".into()],
        prepare_only: BTreeSet::from(["job".to_string()]),
        ..UpOptions::default()
    };
    let (plan, _) = sb.up(&stack, &opts).await.unwrap();
    assert_eq!(
        ops(&plan),
        [
            "pull image busybox",
            "create network p_default",
            "create volume p_data",
            "create container p-db-1",
            "start container p-db-1",
        ]
    );
    // With job's container up and stopped, run leaves it so.
    sb.up(&stack, &UpOptions::default()).await.unwrap();
    sb.host.set_status("p-job-1", Status::Exited { code: 0 });
    let (plan, _) = sb.up(&stack, &opts).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
}

#[tokio::test]
async fn a_one_off_container_is_never_a_replica_nor_restarted() {
    let (mut sb, stack) = running_stack().await;
    // Created by `stack run` (labelled one-off), not yet recorded.
    sb.host.edit(|w| {
        let mut c = w.containers["p-web-1"].clone();
        c.status = Status::Exited { code: 3 };
        c.labels.insert("stack.one-off".into(), "true".into());
        c.labels.insert("stack.replica".into(), "2".into());
        w.containers.insert("p-web-run-1a2b3c".into(), c);
    });
    let (plan, _) = sb.up(&stack, &watcher()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert!(sb.record.containers["p-web-run-1a2b3c"].one_off);
}

#[tokio::test]
async fn a_container_the_user_removed_stays_away_until_up() {
    let (mut sb, stack) = running_stack().await;
    // `stack rm -s web`: gone from the host and the record, remembered.
    sb.host.edit(|w| {
        w.containers.remove("p-web-1");
    });
    sb.record.containers.remove("p-web-1");
    sb.record.removed_by_user.insert("p-web-1".into());
    let (plan, _) = sb.up(&stack, &watcher()).await.unwrap();
    assert!(plan.is_empty(), "{:?}", ops(&plan));
    assert!(!sb.host.world().containers.contains_key("p-web-1"));
    // Scaled up under the watcher, the removed number is not reused.
    let scaled = UpOptions {
        scale: [("web".to_string(), 2)].into(),
        ..watcher()
    };
    let (plan, _) = sb.up(&stack, &scaled).await.unwrap();
    assert_eq!(
        ops(&plan),
        ["create container p-web-2", "start container p-web-2"]
    );
    // `up` makes it again and forgets it.
    let up = UpOptions {
        scale: [("web".to_string(), 2)].into(),
        ..UpOptions::default()
    };
    let (plan, _) = sb.up(&stack, &up).await.unwrap();
    assert_eq!(
        ops(&plan),
        ["create container p-web-1", "start container p-web-1"]
    );
    assert!(sb.record.removed_by_user.is_empty());
    assert!(sb.host.world().containers["p-web-1"].status.is_running());
}
