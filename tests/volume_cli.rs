//! `stack volume` end to end against a temporary state root.

use std::path::Path;
use std::process::{Command, Output};

use stack::state::{ContainerRecord, ObjectRecord, Store};
use stack::volumes::{VolumeSpec, VolumeStore};

fn stack(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stack"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("stack runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn ls_inspect_rm_and_prune_respect_volumes_in_use() {
    let root = tempfile::tempdir().unwrap();
    let volumes = VolumeStore::new(root.path());
    for (name, anonymous) in [("p_data", false), ("p_cache", false), ("a1b2c3", true)] {
        volumes
            .create(&VolumeSpec {
                name: name.into(),
                anonymous,
                ..VolumeSpec::default()
            })
            .unwrap();
    }
    // Project `p` has a container and uses p_data.
    let lock = Store::new(root.path()).lock("p").unwrap();
    let mut record = lock.read().unwrap();
    record.volumes.insert(
        "data".into(),
        ObjectRecord {
            name: "p_data".into(),
            ..ObjectRecord::default()
        },
    );
    record.containers.insert(
        "p-db-1".into(),
        ContainerRecord {
            name: "p-db-1".into(),
            ..ContainerRecord::default()
        },
    );
    lock.write(&record).unwrap();
    drop(lock);

    let out = stack(root.path(), &["volume", "ls", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a1b2c3\np_cache\np_data\n"
    );
    let out = stack(root.path(), &["volume", "inspect", "p_data"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json[0]["mountpoint"]
            .as_str()
            .unwrap()
            .ends_with("volumes/p_data/_data")
    );

    let out = stack(root.path(), &["volume", "rm", "p_data"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("in use by p-db-1"), "{}", text(&out));
    assert!(root.path().join("volumes/p_data/_data").is_dir());

    // Without --force and without a terminal, prune refuses and removes nothing.
    let out = stack(root.path(), &["volume", "prune"]);
    assert!(!out.status.success());
    assert!(root.path().join("volumes/a1b2c3").exists());
    let out = stack(root.path(), &["volume", "prune", "--force"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a1b2c3\n");
    let out = stack(root.path(), &["volume", "prune", "-a", "--force"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "p_cache\n");
    assert!(root.path().join("volumes/p_data").exists());
    let out = stack(root.path(), &["volume", "rm", "nope"]);
    assert!(text(&out).contains("does not exist"));
}
