//! The pipeline under a real project lock and state root, against the
//! in-memory host: records and revisions end up on disk as `up` and
//! `down` will leave them.

use stack::planner::apply;
use stack::planner::fake::FakeHost;
use stack::planner::plan::{DownOptions, UpOptions};
use stack::planner::{ExecOptions, Status};
use stack::spec::{self, Stack};
use stack::state::Store;

fn load(dir: &std::path::Path, yaml: &str) -> Stack {
    std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
    let opts = spec::Options {
        working_dir: dir.to_path_buf(),
        ..spec::Options::default()
    };
    spec::load(&opts).unwrap().stack
}

const V1: &str = "name: app\nservices:\n  web: {image: busybox, environment: {A: '1'}, volumes: [data:/d]}\nvolumes:\n  data: {}\n";

#[tokio::test]
async fn up_records_and_keeps_revisions_then_down_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("root"));
    let host = FakeHost::new();
    host.publish("busybox", "sha256:abc");
    let exec = ExecOptions::default();
    let lock = store.lock("app").unwrap();

    let (plan, _) = apply::up(
        &host,
        &lock,
        &load(dir.path(), V1),
        &UpOptions::default(),
        &(),
        &exec,
    )
    .await
    .unwrap();
    assert_eq!(plan.revision, 1);
    assert_eq!(lock.revisions().unwrap(), [1]);
    let record = store.read("app").unwrap().unwrap();
    assert_eq!(record.revision, 1);
    assert_eq!(record.containers["app-web-1"].image, "sha256:abc");

    // Unchanged: no new revision.
    let (plan, _) = apply::up(
        &host,
        &lock,
        &load(dir.path(), V1),
        &UpOptions::default(),
        &(),
        &exec,
    )
    .await
    .unwrap();
    assert!(plan.is_empty());
    assert_eq!(lock.revisions().unwrap(), [1]);

    // Changed: the diff is explained from revision 1 on disk.
    let v2 = V1.replace("A: '1'", "A: '2'");
    let (plan, _) = apply::up(
        &host,
        &lock,
        &load(dir.path(), &v2),
        &UpOptions::default(),
        &(),
        &exec,
    )
    .await
    .unwrap();
    assert_eq!(plan.ops[0].changes[0].to_string(), "environment A: 1 → 2");
    assert_eq!(lock.revisions().unwrap(), [1, 2]);
    assert_eq!(
        store.read("app").unwrap().unwrap().containers["app-web-1"].revision,
        2
    );
    assert_eq!(host.world().containers["app-web-1"].status, Status::Running);

    // Down keeps the volume, so the record stays; down -v forgets it.
    apply::down(&host, &lock, None, &DownOptions::default(), &(), &exec)
        .await
        .unwrap();
    let record = store.read("app").unwrap().unwrap();
    assert!(record.containers.is_empty() && record.networks.is_empty());
    assert_eq!(record.volumes.len(), 1);
    let opts = DownOptions {
        volumes: true,
        ..DownOptions::default()
    };
    apply::down(&host, &lock, None, &opts, &(), &exec)
        .await
        .unwrap();
    assert_eq!(store.read("app").unwrap(), None);
    assert!(host.world().volumes.is_empty());

    // Up again: the revision numbers go on.
    let (plan, _) = apply::up(
        &host,
        &lock,
        &load(dir.path(), V1),
        &UpOptions::default(),
        &(),
        &exec,
    )
    .await
    .unwrap();
    assert_eq!(plan.revision, 3);
    assert_eq!(lock.revisions().unwrap(), [1, 2, 3]);
}
