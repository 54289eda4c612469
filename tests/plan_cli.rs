//! `stack plan` and `stack down --dry-run` end to end: the built binary,
//! real files, a real state root, real exit codes.
//!
//! A project's earlier `up` is simulated by running the pipeline against
//! the in-memory host and saving what it recorded (the record and the
//! revision history) in the temporary state root, as `up` will.

use std::path::Path;
use std::process::{Command, Output};

use stack::planner::fake::Sandbox;
use stack::planner::hash::{digest, revision_document};
use stack::planner::plan::UpOptions;
use stack::spec;
use stack::state::Store;

const STACK: &str = "
name: demo
services:
  web:
    image: busybox
    environment: {FOO: '1'}
    depends_on: [db]
  db:
    image: redis
  old:
    image: busybox
";

fn stack(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stack"))
        .args(args)
        .arg("--root")
        .arg(dir.join("root"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("stack runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `yaml` as the project's file and records an `up` of it in the state root.
fn applied(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
    let opts = spec::Options {
        working_dir: dir.to_path_buf(),
        ..spec::Options::default()
    };
    let loaded = spec::load(&opts).unwrap().stack;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut sb = Sandbox::new();
    sb.host.publish(
        "busybox",
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
    );
    sb.host.publish(
        "redis",
        "sha256:2222222222222222222222222222222222222222222222222222222222222222",
    );
    runtime
        .block_on(sb.up(&loaded, &UpOptions::default()))
        .unwrap();
    let lock = Store::new(dir.join("root")).lock("demo").unwrap();
    lock.write(&sb.record).unwrap();
    let doc = revision_document(&loaded);
    assert_eq!(lock.push_revision(&doc, &digest(&doc)).unwrap(), 1);
}

#[test]
fn a_fresh_project_plans_everything_and_exits_2_with_detailed_exitcode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), STACK).unwrap();
    let out = stack(dir.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("+ create container demo-web-1"), "{text}");
    assert!(text.contains("new service"), "{text}");
    // In run order: db starts before web.
    let db = text.find("> start container demo-db-1").unwrap();
    let web = text.find("> start container demo-web-1").unwrap();
    assert!(db < web, "{text}");
    assert!(
        text.ends_with("Plan: 4 to create, 0 to recreate, 0 to remove (2 to pull, 3 to start).\n"),
        "{text}"
    );
    let out = stack(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    // Planning changed nothing on disk.
    assert!(!dir.path().join("root").exists());
}

#[test]
fn an_unchanged_project_exits_0_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    applied(dir.path(), STACK);
    let out = stack(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("No changes: project demo already matches the stack file."),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to create, 0 to recreate, 0 to remove."),
        "{text}"
    );
}

#[test]
fn a_changed_environment_shows_the_field_and_an_orphan_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    applied(dir.path(), STACK);
    let changed = STACK
        .replace("FOO: '1'", "FOO: '2'")
        .replace("  old:\n    image: busybox\n", "");
    std::fs::write(dir.path().join("compose.yaml"), changed).unwrap();
    let out = stack(
        dir.path(),
        &["plan", "--detailed-exitcode", "--remove-orphans"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("(revision 1 → 2)"), "{text}");
    assert!(text.contains("~ recreate container demo-web-1"), "{text}");
    assert!(text.contains("environment changed"), "{text}");
    assert!(text.contains("      environment FOO: 1 → 2\n"), "{text}");
    assert!(
        text.contains("- remove container demo-old-1") && text.contains("orphan"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to create, 1 to recreate, 1 to remove (1 to start)."),
        "{text}"
    );
    // Without --remove-orphans the orphan is a warning.
    let out = stack(dir.path(), &["plan"]);
    let text = stdout(&out);
    assert!(
        text.contains("warning: found orphan containers (demo-old-1)"),
        "{text}"
    );
}

#[test]
fn json_output_is_the_plan_for_machines() {
    let dir = tempfile::tempdir().unwrap();
    applied(dir.path(), STACK);
    std::fs::write(
        dir.path().join("compose.yaml"),
        STACK.replace("FOO: '1'", "FOO: '2'"),
    )
    .unwrap();
    let out = stack(dir.path(), &["plan", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["changes"], true);
    assert_eq!(plan["project"], "demo");
    assert_eq!(plan["summary"]["recreate"], 1);
    let op = &plan["ops"][0];
    assert_eq!(op["action"], "recreate");
    assert_eq!(op["target"]["kind"], "container");
    assert_eq!(op["target"]["name"], "demo-web-1");
    assert_eq!(op["changes"][0]["field"], "environment FOO");
    assert_eq!(op["changes"][0]["old"], "1");
    assert_eq!(op["changes"][0]["new"], "2");
    assert_eq!(plan["ops"][1]["after"][0], 0);
}

#[test]
fn errors_exit_1_under_detailed_exitcode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  web: {imag: x}\n",
    )
    .unwrap();
    // An invalid file: 3 normally, 1 with --detailed-exitcode (2 would mean "changes").
    assert_eq!(stack(dir.path(), &["plan"]).status.code(), Some(3));
    let out = stack(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("imag"), "{}", stderr(&out));
    // A wrong command line likewise.
    let out = stack(dir.path(), &["plan", "--detailed-exitcode", "--bogus"]);
    assert_eq!(out.status.code(), Some(1));
    // A planning error (unknown service) is 1 either way, with a message.
    std::fs::write(dir.path().join("compose.yaml"), STACK).unwrap();
    let out = stack(dir.path(), &["plan", "--scale", "nope=2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no such service: `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn scale_and_service_selection_reach_the_planner() {
    let dir = tempfile::tempdir().unwrap();
    applied(dir.path(), STACK);
    let out = stack(dir.path(), &["plan", "--scale", "web=3", "web"]);
    let text = stdout(&out);
    assert!(text.contains("+ create container demo-web-3"), "{text}");
    assert!(text.contains("scale 1 → 3"), "{text}");
    assert!(!text.contains("demo-old"), "{text}");
}

#[test]
fn down_dry_run_lists_removals_dependents_first() {
    let dir = tempfile::tempdir().unwrap();
    applied(dir.path(), STACK);
    let out = stack(dir.path(), &["down", "--dry-run", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    let web = text.find("- remove container demo-web-1").unwrap();
    let db = text.find("- remove container demo-db-1").unwrap();
    let net = text.find("- remove network demo_default").unwrap();
    assert!(web < db && db < net, "{text}");
    assert!(
        text.contains("Plan: 0 to create, 0 to recreate, 4 to remove."),
        "{text}"
    );
    // Without the file, from the record alone.
    std::fs::remove_file(dir.path().join("compose.yaml")).unwrap();
    let out = stack(dir.path(), &["-p", "demo", "down", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("4 to remove"), "{}", stdout(&out));
}

#[test]
fn down_without_dry_run_says_it_needs_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    applied(dir.path(), STACK);
    let out = stack(dir.path(), &["down"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("needs stack's container runtime"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--dry-run"));
    // Nothing was removed from the record.
    let record = Store::new(dir.path().join("root"))
        .read("demo")
        .unwrap()
        .unwrap();
    assert_eq!(record.containers.len(), 3);
}

#[test]
fn named_volumes_are_observed_in_the_volume_store() {
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        "name: demo\nservices:\n  db: {image: redis, volumes: [data:/d]}\nvolumes:\n  data: {}\n";
    std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    let text = stdout(&stack(dir.path(), &["plan"]));
    assert!(text.contains("+ create volume demo_data"), "{text}");
    // The volume exists (created by hand): it is used, with a warning.
    let store = stack::volumes::VolumeStore::new(&dir.path().join("root"));
    store
        .create(&stack::volumes::VolumeSpec {
            name: "demo_data".into(),
            ..Default::default()
        })
        .unwrap();
    let text = stdout(&stack(dir.path(), &["plan"]));
    assert!(!text.contains("create volume"), "{text}");
    assert!(
        text.contains("warning: volume `demo_data` already exists"),
        "{text}"
    );
}

#[test]
fn config_hash_prints_the_hash_the_planner_records() {
    let dir = tempfile::tempdir().unwrap();
    applied(dir.path(), STACK);
    let record = Store::new(dir.path().join("root"))
        .read("demo")
        .unwrap()
        .unwrap();
    let out = stack(dir.path(), &["config", "--hash", "web"]);
    assert_eq!(
        stdout(&out),
        format!("web {}\n", record.containers["demo-web-1"].config_hash)
    );
}
