//! `stack plan` and `stack down --dry-run` end to end: the built binary,
//! real files, a real state root, real exit codes, and (as root) a real
//! earlier `up`: plans observe the live host.
//!
//! Each test has its own project name, so tests can run in parallel and
//! never meet another project on the host; a guard takes a project down
//! whatever the test's outcome.

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/images.rs"]
mod images;

use stack::state::Store;

/// The stack, for project `name`: images `busybox` and `redis` are both
/// the static busybox, imported by [`applied`].
fn yaml(name: &str) -> String {
    format!(
        "
name: {name}
services:
  web:
    image: busybox
    command: [sleep, '3600']
    stop_grace_period: 1s
    environment: {{FOO: '1'}}
    depends_on: [db]
  db:
    image: redis
    command: [sleep, '3600']
    stop_grace_period: 1s
  old:
    image: busybox
    command: [sleep, '3600']
    stop_grace_period: 1s
"
    )
}

/// A project name unique to this test run.
fn name(tag: &str) -> String {
    format!("plan{}{tag}", std::process::id())
}

fn root_user() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/bin/busybox").exists() {
        eprintln!("SKIPPED: needs root and /bin/busybox (busybox-static) to run a real `up`");
        return false;
    }
    true
}

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

/// Takes the project down when the test ends, whatever its outcome.
struct Down<'a>(&'a Path, String);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = stack(self.0, &["-p", &self.1, "down", "-v", "--remove-orphans"]);
    }
}

/// Writes `yaml` as the project's file and brings it up for real.
fn applied<'a>(dir: &'a Path, yaml: &str, project: &str) -> Down<'a> {
    let guard = Down(dir, project.to_string());
    std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
    let rootfs = images::busybox_rootfs(dir);
    for image in ["busybox:latest", "redis:latest"] {
        let out = stack(
            dir,
            &[
                "image",
                "import",
                rootfs.to_str().unwrap(),
                image,
                "-c",
                "CMD [\"sh\"]",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = stack(dir, &["up", "-d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    guard
}

#[test]
fn a_fresh_project_plans_everything_and_exits_2_with_detailed_exitcode() {
    if !root_user() {
        return;
    }
    let n = name("afppeae2");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), yaml(&n)).unwrap();
    let out = stack(dir.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&"+ create container demo-web-1".replace("demo", &n)),
        "{text}"
    );
    assert!(text.contains("new service"), "{text}");
    // In run order: db starts before web.
    let db = text
        .find(&"> start container demo-db-1".replace("demo", &n))
        .unwrap();
    let web = text
        .find(&"> start container demo-web-1".replace("demo", &n))
        .unwrap();
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
    if !root_user() {
        return;
    }
    let n = name("aupe0ass");
    let dir = tempfile::tempdir().unwrap();
    let _down = applied(dir.path(), &yaml(&n), &n);
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
        text.starts_with(
            &"No changes: project demo already matches the stack file.".replace("demo", &n)
        ),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to create, 0 to recreate, 0 to remove."),
        "{text}"
    );
}

#[test]
fn a_changed_environment_shows_the_field_and_an_orphan_is_listed() {
    if !root_user() {
        return;
    }
    let n = name("acestfaa");
    let dir = tempfile::tempdir().unwrap();
    let _down = applied(dir.path(), &yaml(&n), &n);
    let changed = yaml(&n).replace("FOO: '1'", "FOO: '2'").replace(
        "  old:\n    image: busybox\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n",
        "",
    );
    std::fs::write(dir.path().join("compose.yaml"), changed).unwrap();
    let out = stack(
        dir.path(),
        &["plan", "--detailed-exitcode", "--remove-orphans"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("(revision 1 → 2)"), "{text}");
    assert!(
        text.contains(&"~ recreate container demo-web-1".replace("demo", &n)),
        "{text}"
    );
    assert!(text.contains("environment changed"), "{text}");
    assert!(text.contains("      environment FOO: 1 → 2\n"), "{text}");
    assert!(
        text.contains(&"- remove container demo-old-1".replace("demo", &n))
            && text.contains("orphan"),
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
        text.contains(&"warning: found orphan containers (demo-old-1)".replace("demo", &n)),
        "{text}"
    );
}

#[test]
fn json_output_is_the_plan_for_machines() {
    if !root_user() {
        return;
    }
    let n = name("joitpfm");
    let dir = tempfile::tempdir().unwrap();
    let _down = applied(dir.path(), &yaml(&n), &n);
    std::fs::write(
        dir.path().join("compose.yaml"),
        yaml(&n).replace("FOO: '1'", "FOO: '2'"),
    )
    .unwrap();
    let out = stack(dir.path(), &["plan", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["changes"], true);
    assert_eq!(plan["project"], n.as_str());
    assert_eq!(plan["summary"]["recreate"], 1);
    let op = &plan["ops"][0];
    assert_eq!(op["action"], "recreate");
    assert_eq!(op["target"]["kind"], "container");
    assert_eq!(op["target"]["name"], format!("{n}-web-1").as_str());
    assert_eq!(op["changes"][0]["field"], "environment FOO");
    assert_eq!(op["changes"][0]["old"], "1");
    assert_eq!(op["changes"][0]["new"], "2");
    assert_eq!(plan["ops"][1]["after"][0], 0);
}

#[test]
fn errors_exit_1_under_detailed_exitcode() {
    if !root_user() {
        return;
    }
    let n = name("ee1ude");
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
    std::fs::write(dir.path().join("compose.yaml"), yaml(&n)).unwrap();
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
    if !root_user() {
        return;
    }
    let n = name("sassrtp");
    let dir = tempfile::tempdir().unwrap();
    let _down = applied(dir.path(), &yaml(&n), &n);
    let out = stack(dir.path(), &["plan", "--scale", "web=3", "web"]);
    let text = stdout(&out);
    assert!(
        text.contains(&"+ create container demo-web-3".replace("demo", &n)),
        "{text}"
    );
    assert!(text.contains("scale 1 → 3"), "{text}");
    assert!(!text.contains(&"demo-old".replace("demo", &n)), "{text}");
}

#[test]
fn down_dry_run_lists_removals_dependents_first() {
    if !root_user() {
        return;
    }
    let n = name("ddrlrdf");
    let dir = tempfile::tempdir().unwrap();
    let _down = applied(dir.path(), &yaml(&n), &n);
    let out = stack(dir.path(), &["down", "--dry-run", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    let web = text
        .find(&"- remove container demo-web-1".replace("demo", &n))
        .unwrap();
    let db = text
        .find(&"- remove container demo-db-1".replace("demo", &n))
        .unwrap();
    let net = text
        .find(&"- remove network demo_default".replace("demo", &n))
        .unwrap();
    assert!(web < db && db < net, "{text}");
    assert!(
        text.contains("Plan: 0 to create, 0 to recreate, 4 to remove (3 to stop)."),
        "{text}"
    );
    // Without the file, from the record alone.
    std::fs::remove_file(dir.path().join("compose.yaml")).unwrap();
    let out = stack(
        dir.path(),
        &["-p", &"demo".replace("demo", &n), "down", "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("4 to remove"), "{}", stdout(&out));
}

#[test]
fn down_removes_the_project_and_its_record() {
    if !root_user() {
        return;
    }
    let n = name("down");
    let dir = tempfile::tempdir().unwrap();
    let _down = applied(dir.path(), &yaml(&n), &n);
    let ps = stdout(&stack(dir.path(), &["ps", "-q"]));
    assert_eq!(ps.lines().count(), 3, "{ps}");
    let out = stack(dir.path(), &["down"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("4 to remove"), "{}", stderr(&out));
    // Nothing is left, and the record is forgotten.
    assert_eq!(stdout(&stack(dir.path(), &["ps", "-a", "-q"])), "");
    assert!(
        Store::new(dir.path().join("root"))
            .read(&n)
            .unwrap()
            .is_none()
    );
    let plan = stdout(&stack(dir.path(), &["down", "--dry-run"]));
    assert!(plan.contains("No changes"), "{plan}");
}

#[test]
fn named_volumes_are_observed_in_the_volume_store() {
    if !root_user() {
        return;
    }
    let n = name("nvaoitvs");
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        &"name: demo\nservices:\n  db: {image: redis, volumes: [data:/d]}\nvolumes:\n  data: {}\n"
            .replace("demo", &n);
    std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    let text = stdout(&stack(dir.path(), &["plan"]));
    assert!(
        text.contains(&"+ create volume demo_data".replace("demo", &n)),
        "{text}"
    );
    // The volume exists (created by hand): it is used, with a warning.
    let store = stack::volumes::VolumeStore::new(&dir.path().join("root"));
    store
        .create(&stack::volumes::VolumeSpec {
            name: format!("{n}_data"),
            ..Default::default()
        })
        .unwrap();
    let text = stdout(&stack(dir.path(), &["plan"]));
    assert!(!text.contains("create volume"), "{text}");
    assert!(
        text.contains(&"warning: volume `demo_data` already exists".replace("demo", &n)),
        "{text}"
    );
}

#[test]
fn config_hash_prints_the_hash_the_planner_records() {
    if !root_user() {
        return;
    }
    let n = name("chpthtpr");
    let dir = tempfile::tempdir().unwrap();
    let _down = applied(dir.path(), &yaml(&n), &n);
    let record = Store::new(dir.path().join("root"))
        .read(&"demo".replace("demo", &n))
        .unwrap()
        .unwrap();
    let out = stack(dir.path(), &["config", "--hash", "web"]);
    assert_eq!(
        stdout(&out),
        format!(
            "web {}\n",
            record.containers[&"demo-web-1".replace("demo", &n)].config_hash
        )
    );
}
