//! Restarts keep a container's files and log, for real (root): the watcher
//! restarting a dead `restart: always` container and `stack restart` both
//! start the same container again, so what the process wrote outside its
//! volumes is still there and `stack logs` shows every run, in order. Only
//! removal (`down`, `rm`) loses them, as with Docker.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

/// The `run-N` lines of `logs SERVICE`, in the order shown.
fn runs(p: &Project, service: &str) -> Vec<String> {
    p.ok(&["logs", "--no-color", "--no-log-prefix", service])
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("run-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn restarted_containers_keep_their_files_and_every_runs_log() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "rskeep",
        r#"name: {project}
services:
  counter:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "n=$$(cat /n 2>/dev/null || echo 0); echo run-$$n; expr $$n + 1 > /n; sleep 1; exit 3"]
  keeper:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "n=$$(cat /n 2>/dev/null || echo 0); echo run-$$n; expr $$n + 1 > /n; exec sleep 3600"]
"#,
    );
    p.ok(&["up", "-d"]);

    // The watcher restarts the counter each time it exits; every run reads
    // the count the previous one left in the container's own filesystem.
    let seen = eventually(
        "three runs of the counter in its logs",
        Duration::from_secs(60),
        || {
            let r = runs(&p, "counter");
            (r.len() >= 3).then_some(r)
        },
    );
    assert_eq!(seen[..3], ["run-0", "run-1", "run-2"], "{seen:?}");

    // `stack restart` of a running container: its files and log stay too.
    let keeper = p.container("keeper", 1);
    let wrote = p.exec(&keeper, &["sh", "-c", "echo kept > /written-before"]);
    assert!(wrote.status.success(), "{wrote:?}");
    p.ok(&["restart", "keeper"]);
    let read = p.exec(&keeper, &["cat", "/written-before", "/n"]);
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        "kept\n2\n",
        "{read:?}"
    );
    assert_eq!(runs(&p, "keeper"), ["run-0", "run-1"]);

    // Removal is what loses them: a new container starts from the image.
    p.ok(&["down", "-t", "0"]);
    p.ok(&["up", "-d", "keeper"]);
    let fresh = eventually("the new keeper to run", Duration::from_secs(30), || {
        let r = runs(&p, "keeper");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(fresh, ["run-0"]);
    p.ok(&["down", "-t", "0"]);
    assert_eq!(p.leftovers(), Vec::<String>::new());
}
