//! `pid:`, `ipc:` and `uts:` through `stack up` (root, real): `host`
//! shares the host's namespace of that kind (its processes, its shared
//! memory, its name, which the container must not change); without them a
//! container has its own.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn host_namespaces_are_shared_and_own_ones_are_not() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "hostns",
        r#"name: {project}
services:
  shared:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    pid: host
    ipc: host
    uts: host
    hostname: not-applied
    command: ["sleep", "3600"]
  own:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    ipc: shareable
    command: ["sleep", "3600"]
"#,
    );
    let host_name = nix::unistd::gethostname().unwrap();
    p.ok(&["up", "-d"]);
    let (shared, own) = (p.container("shared", 1), p.container("own", 1));
    let long = Duration::from_secs(20);
    eventually("shared running", long, || p.pid(&shared));
    eventually("own running", long, || p.pid(&own));
    let ns =
        |c: &str, kind: &str| stdout(&p.exec(c, &["readlink", &format!("/proc/self/ns/{kind}")]));
    for kind in ["pid", "ipc", "uts"] {
        assert_eq!(ns(&shared, kind), host_ns(kind), "{kind}");
        assert_ne!(ns(&own, kind), host_ns(kind), "{kind}");
    }
    // The host's processes are visible: this test's own, for one.
    let me = format!("/proc/{}", std::process::id());
    assert!(p.exec(&shared, &["test", "-d", &me]).status.success());
    assert!(!p.exec(&own, &["test", "-d", &me]).status.success());
    // Its name is the host's, and the host's is unchanged.
    assert_eq!(
        stdout(&p.exec(&shared, &["hostname"])),
        host_name.to_string_lossy()
    );
    assert_eq!(nix::unistd::gethostname().unwrap(), host_name);
    // The host's shared memory: a file the container makes is the host's.
    let file = format!("/dev/shm/{}-probe", p.name);
    let _ = std::fs::remove_file(&file);
    stdout(&p.exec(&shared, &["touch", &file]));
    let seen = std::path::Path::new(&file).exists();
    let _ = std::fs::remove_file(&file);
    assert!(seen, "{file} not in the host's /dev/shm");
    p.ok(&["down"]);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn pid_and_ipc_join_another_services_container() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "joinns",
        r#"name: {project}
services:
  db:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3601"]
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    pid: service:db
    ipc: service:db
    command: ["sleep", "3602"]
  byname:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    pid: "container:{project}-db-1"
    command: ["sleep", "3603"]
"#,
    );
    p.ok(&["up", "-d"]);
    let (db, app, byname) = (
        p.container("db", 1),
        p.container("app", 1),
        p.container("byname", 1),
    );
    let long = Duration::from_secs(20);
    for c in [&db, &app, &byname] {
        eventually(&format!("{c} running"), long, || p.pid(c));
    }
    let ns =
        |c: &str, kind: &str| stdout(&p.exec(c, &["readlink", &format!("/proc/self/ns/{kind}")]));
    assert_eq!(ns(&app, "pid"), ns(&db, "pid"));
    assert_eq!(ns(&app, "ipc"), ns(&db, "ipc"));
    assert_eq!(ns(&byname, "pid"), ns(&db, "pid"));
    assert_ne!(ns(&byname, "ipc"), ns(&db, "ipc"));
    assert_ne!(ns(&db, "pid"), host_ns("pid"));
    // One process tree: db sees app's command, app sees db's.
    let cmdlines =
        |c: &str| stdout(&p.exec(c, &["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]));
    assert!(cmdlines(&db).contains("sleep 3602"), "{}", cmdlines(&db));
    assert!(cmdlines(&app).contains("sleep 3601"), "{}", cmdlines(&app));
    // /dev/shm stays each container's own (a warning at `up` says so).
    stdout(&p.exec(&db, &["touch", "/dev/shm/from-db"]));
    assert!(
        !p.exec(&app, &["test", "-e", "/dev/shm/from-db"])
            .status
            .success()
    );
    p.ok(&["down"]);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}
