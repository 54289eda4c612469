//! `stack exec` and `stack run` against real stacks (root): exec sees the
//! container's files, user, environment and working directory and passes
//! the exit code through; run makes a one-off container with the
//! service's configuration, takes piped stdin, returns the exit code,
//! leaves nothing with `--rm`, is hidden from `ps` without `-a`, is never
//! restarted by the watcher and goes with `down`; its dependencies come up
//! first; the service's ports are not published unless asked.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually, fetch, free_port};

const LONG: Duration = Duration::from_secs(20);

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `stack ARGS sh -c SCRIPT` (`exec` or `run` and their flags in `args`).
fn sh(p: &Project, args: &[&str], script: &str) -> std::process::Output {
    p.run(&[args, &["sh", "-c", script]].concat())
}

/// Runs `stack ARGS sh -c SCRIPT` with a script that exits 8 on `trap`,
/// sends `signal` to the `stack` process once the script is ready, and
/// returns stack's exit code: the script's, if the signal reached it.
fn signalled(p: &Project, args: &[&str], signal: i32, trap: &str) -> Option<i32> {
    let mut child = p
        .command()
        .args(args)
        .args(["sh", "-c"])
        .arg(format!(
            "trap 'exit 8' {trap}; echo ready; while :; do sleep 0.1; done"
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: kill(2) on the `stack` process this test started.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait().unwrap().code()
}

/// Container directories under the state root whose name contains `part`.
fn containers_named(p: &Project, part: &str) -> Vec<String> {
    std::fs::read_dir(p.root.join("containers"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(part))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn exec_runs_inside_the_container_and_returns_its_code() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "runexec",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    environment: {GREETING: hello-env}
    working_dir: /srv
    command: ["sh", "-c", "echo from-the-container > /srv/made; exec sleep 3600"]
"#,
    );
    p.ok(&["up", "-d"]);
    let app = p.container("app", 1);
    eventually("app runs", LONG, || p.pid(&app));

    // Its files, environment and working directory.
    let out = eventually("exec sees the file the command made", LONG, || {
        let o = sh(&p, &["exec", "-T", "app"], "cat made; echo $GREETING; pwd");
        o.status.success().then(|| text(&o).0)
    });
    assert_eq!(out, "from-the-container\nhello-env\n/srv\n");
    // The exit code, passed through.
    let o = sh(&p, &["exec", "-T", "app"], "echo out; echo err >&2; exit 5");
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(text(&o), ("out\n".into(), "err\n".into()));
    // -u, -e, -w.
    let o = sh(
        &p,
        &[
            "exec", "-T", "-u", "nobody", "-e", "X=1", "-w", "/tmp", "app",
        ],
        "id -u; echo $X; pwd",
    );
    assert_eq!(text(&o).0, "65534\n1\n/tmp\n");
    // A command that does not exist: 127, as docker says.
    assert_eq!(
        p.run(&["exec", "-T", "app", "no-such-command"])
            .status
            .code(),
        Some(127)
    );
    // Piped standard input reaches it.
    let o = p.run_with_stdin(&["exec", "-T", "app", "cat"], b"piped-in\n");
    assert_eq!(text(&o).0, "piped-in\n");
    // Inside its pid namespace: the container's command is pid 1.
    let o = p.run(&["exec", "-T", "app", "cat", "/proc/1/cmdline"]);
    assert!(text(&o).0.starts_with("sleep"), "{:?}", text(&o));
    // A signal sent to `stack exec` reaches the command.
    assert_eq!(
        signalled(&p, &["exec", "-T", "app"], libc::SIGTERM, "TERM"),
        Some(8)
    );

    // -d: in the background.
    p.ok(&[
        "exec",
        "-d",
        "app",
        "sh",
        "-c",
        "sleep 0.2; touch /srv/detached",
    ]);
    eventually("the detached command ran", LONG, || {
        p.run(&["exec", "-T", "app", "test", "-f", "/srv/detached"])
            .status
            .success()
            .then_some(())
    });
    // Unknown service, missing replica, stopped container: exit 1 and why.
    let o = p.run(&["exec", "-T", "nope", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("no such service"), "{:?}", text(&o));
    assert_eq!(
        p.run(&["exec", "-T", "--index", "2", "app", "true"])
            .status
            .code(),
        Some(1)
    );
    p.ok(&["stop", "app"]);
    let o = p.run(&["exec", "-T", "app", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("not running"), "{:?}", text(&o));
}

#[test]
fn run_makes_one_off_containers() {
    if !e2e::can_run() {
        return;
    }
    let port = free_port();
    let p = Project::new(
        "runoneoff",
        &format!(
            r#"name: {{project}}
services:
  web:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    environment: {{FROM_FILE: yes-from-file}}
    command: ["sh", "-c", "echo web > /srv/index.html; exec httpd -f -p 8080 -h /srv"]
    ports: ["127.0.0.1:{port}:8080"]
  db:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
  tool:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    depends_on: [db]
    command: ["echo", "the-default-command"]
"#
        ),
    );

    // --no-deps: only the one-off (its network is made all the same).
    let o = p.run(&["run", "--rm", "-T", "--no-deps", "tool", "true"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(!p.ok(&["ps", "-a"]).contains(&p.container("db", 1)));

    // Before any `up`: run brings the dependency up, not the service itself.
    let o = p.run(&["run", "--rm", "-T", "tool"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert_eq!(text(&o).0, "the-default-command\n");
    let ps = p.ok(&["ps", "-a"]);
    assert!(ps.contains(&p.container("db", 1)), "{ps}");
    assert!(!ps.contains(&p.container("tool", 1)), "{ps}");
    assert!(
        containers_named(&p, "-run-").is_empty(),
        "--rm left {:?}",
        containers_named(&p, "-run-")
    );

    p.ok(&["up", "-d"]);
    eventually("web answers", LONG, || fetch(port, "/"));

    // Piped stdin, the service's environment, the exit code.
    let o = p.run_with_stdin(&["run", "--rm", "-T", "web", "cat"], b"hi\n");
    assert_eq!(text(&o), ("hi\n".into(), String::new()), "{:?}", o.status);
    assert_eq!(o.status.code(), Some(0));
    let o = sh(
        &p,
        &["run", "--rm", "-T", "web"],
        "echo $FROM_FILE; echo to-err >&2; exit 7",
    );
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(text(&o), ("yes-from-file\n".into(), "to-err\n".into()));
    let o = p.run(&[
        "run",
        "--rm",
        "-T",
        "-e",
        "X=over",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--entrypoint",
        "sh -c",
        "web",
        "echo $X $(pwd) $(id -u)",
    ]);
    assert_eq!(text(&o).0, "over /tmp 65534\n", "{:?}", text(&o));
    // -v: a bind mount of the project's directory.
    std::fs::create_dir_all(p.dir().join("data")).unwrap();
    let o = sh(
        &p,
        &["run", "--rm", "-T", "-v", "./data:/data", "web"],
        "echo written > /data/out",
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert_eq!(
        std::fs::read_to_string(p.dir().join("data/out")).unwrap(),
        "written\n"
    );

    // Ctrl-C (SIGINT to `stack run`) reaches the container's process.
    let trapped = format!("{}-trap", p.name);
    let args = ["run", "--rm", "-T", "--name", &trapped, "web"];
    assert_eq!(signalled(&p, &args, libc::SIGINT, "INT"), Some(8));
    assert!(p.state(&trapped).is_none(), "--rm left {trapped}");

    // The service's fixed port is not published (web-1 holds it): runs fine.
    let o = p.run(&["run", "--rm", "-T", "web", "true"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(containers_named(&p, "-run-").is_empty());

    // Without --rm: kept, hidden from ps without -a, never restarted.
    let o = p.run(&[
        "run",
        "-T",
        "--name",
        &format!("{}-kept", p.name),
        "web",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let kept = format!("{}-kept", p.name);
    assert!(!p.ok(&["ps"]).contains(&kept));
    let entry: serde_json::Value =
        serde_json::from_str(&p.ok(&["ps", "-a", "--format", "json"])).unwrap();
    let row = entry
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == kept.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["State"], "exited");
    assert_eq!(row["ExitCode"], 3);
    assert_eq!(row["Service"], "web");
    let finished = p.state(&kept).unwrap()["finished_at"].clone();
    // Several of the watcher's resyncs (0.5 s): still the same exit.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(p.state(&kept).unwrap()["finished_at"], finished);
    // The watcher did not take it for a replica of web either.
    assert_eq!(p.ok(&["ps", "-q", "web"]).trim(), p.container("web", 1));

    // -d with -p: running in the background on another port, answering.
    let other = free_port();
    let name = p.ok(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{other}:8081"),
        "web",
        "sh",
        "-c",
        "echo one-off > /srv/index.html; exec httpd -f -p 8081 -h /srv",
    ]);
    let name = name.trim().to_string();
    assert!(name.starts_with(&format!("{}-web-run-", p.name)), "{name}");
    let page = eventually("the one-off answers on its port", LONG, || {
        fetch(other, "/")
    });
    assert!(page.contains("one-off"));
    assert!(fetch(port, "/").is_some(), "web-1 still answers");
    assert!(p.ok(&["ps", "-a"]).contains(&name));

    // With a terminal (util-linux's `script` gives us one): the container
    // gets one too, the exit code still comes through.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok()
    {
        let line = format!(
            "{} --root {} -f {} run --rm web sh -c 'test -t 0 && test -t 1 && echo tty-yes; tty; exit 4'",
            e2e::STACK,
            p.root.display(),
            p.file.display()
        );
        let o = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(4), "{:?}", text(&o));
        assert!(text(&o).0.contains("tty-yes"), "{:?}", text(&o));
        // The container's own terminal, which `tty` can name.
        assert!(text(&o).0.contains("/dev/pts/0"), "{:?}", text(&o));
    }

    // down removes the one-offs too.
    p.ok(&["down"]);
    assert!(
        containers_named(&p, &p.name).is_empty(),
        "{:?}",
        containers_named(&p, &p.name)
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
