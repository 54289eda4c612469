//! Lifecycle hooks through `stack up` (root, real): `post_start` runs in
//! the container after every start, as the user it names; `pre_stop` runs
//! before `stop` (not when the container ends by itself); a failing
//! `post_start` hook fails `up` with the hook's words.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

#[test]
fn post_start_and_pre_stop_run_in_the_container() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "hooks",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    user: "1000"
    command: ["sleep", "3600"]
    volumes: ["./log:/log"]
    post_start:
      - command: sh -c 'echo "post_start $(id -u) $$GREETING" >> /log/hooks'
        user: root
        environment: {GREETING: hello}
    pre_stop:
      - command: ["sh", "-c", "echo pre_stop >> /log/hooks"]
        user: root
"#,
    );
    let log = p.dir().join("log");
    std::fs::create_dir_all(&log).unwrap();
    let hooks = || std::fs::read_to_string(log.join("hooks")).unwrap_or_default();
    p.ok(&["up", "-d"]);
    let c = p.container("app", 1);
    eventually("app running", Duration::from_secs(20), || p.pid(&c));
    assert_eq!(hooks(), "post_start 0 hello\n");
    // `start` of a running container starts nothing: no hook either.
    p.ok(&["start", "app"]);
    assert_eq!(hooks(), "post_start 0 hello\n");
    p.ok(&["stop", "app"]);
    assert_eq!(hooks(), "post_start 0 hello\npre_stop\n");
    // Started again: post_start again.
    p.ok(&["start", "app"]);
    eventually("app running again", Duration::from_secs(20), || p.pid(&c));
    assert_eq!(
        hooks(),
        "post_start 0 hello\npre_stop\npost_start 0 hello\n"
    );
    p.ok(&["down"]);
    assert!(
        hooks().ends_with("post_start 0 hello\npre_stop\n"),
        "{}",
        hooks()
    );
}

#[test]
fn a_failing_post_start_hook_fails_up_with_its_words() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "hooksbad",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    post_start:
      - command: sh -c 'echo no-such-thing >&2; exit 3'
"#,
    );
    let err = p.fails(1, &["up", "-d"]);
    assert!(err.contains("post_start hook `sh -c echo no-such-thing >&2; exit 3` exited with code 3: no-such-thing"), "{err}");
}
