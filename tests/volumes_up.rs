//! Volumes through `stack up` (root, real): `volumes_from` (a service,
//! `:ro`, `container:NAME`), external volumes (must exist, never removed),
//! anonymous volumes (gone with their container), read-only binds,
//! `bind.create_host_path: false`, copy-up of the image's files into a new
//! named volume (and `nocopy`), and a secret's owner and mode.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn running(p: &Project, service: &str) -> String {
    let name = p.container(service, 1);
    eventually(&format!("{name} running"), Duration::from_secs(10), || {
        p.pid(&name)
    });
    name
}

const STACK: &str = r#"name: {project}
services:
  data:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes:
      - shared:/shared
      - ./host:/host
      - /anon
      - ./readonly:/readonly:ro
      - {type: volume, source: copied, target: /etc}
      - {type: volume, source: empty, target: /bin-copy, volume: {nocopy: true}}
    secrets:
      - {source: token, uid: "1000", gid: "1001", mode: 0400}
  writer:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes_from: [data]
  reader:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes_from: ["data:ro"]
volumes:
  shared: {}
  copied: {}
  empty: {}
secrets:
  token:
    file: ./token.txt
"#;

#[test]
fn volumes_through_up() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("volup", STACK);
    p.write("host/hello", "from-host");
    p.write("readonly/file", "fixed");
    p.write("token.txt", "s3cret");
    p.ok(&["up", "-d"]);
    let data = running(&p, "data");
    let writer = running(&p, "writer");
    let reader = running(&p, "reader");

    // volumes_from: the same volumes and binds; `:ro` makes them read-only.
    let o = p.exec(
        &writer,
        &["sh", "-c", "echo w > /shared/w && cat /host/hello"],
    );
    assert_eq!(stdout(&o), "from-host", "{o:?}");
    assert_eq!(stdout(&p.exec(&data, &["cat", "/shared/w"])), "w\n");
    let o = p.exec(&reader, &["cat", "/shared/w"]);
    assert_eq!(stdout(&o), "w\n", "{o:?}");
    let o = p.exec(&reader, &["sh", "-c", "echo r > /shared/r"]);
    assert!(!o.status.success(), "volumes_from :ro is read-only: {o:?}");

    // A read-only bind mount refuses writes.
    let o = p.exec(&data, &["sh", "-c", "echo x > /readonly/file"]);
    assert!(!o.status.success(), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(p.dir().join("readonly/file")).unwrap(),
        "fixed"
    );

    // A new named volume holds the image's files; nocopy leaves it empty.
    let o = p.exec(&data, &["cat", "/etc/passwd"]);
    assert!(stdout(&o).starts_with("root:x:0:0"), "{o:?}");
    let o = p.exec(&data, &["ls", "-A", "/bin-copy"]);
    assert_eq!(stdout(&o), "", "{o:?}");

    // The secret has the owner and mode asked for.
    let o = p.exec(&data, &["stat", "-c", "%u %g %a", "/run/secrets/token"]);
    assert_eq!(stdout(&o).trim(), "1000 1001 400", "{o:?}");

    // The anonymous volume exists while its container does, and `down`
    // (without -v) removes it with the container; named volumes stay.
    let volumes = || {
        let mut v: Vec<String> = std::fs::read_dir(p.root.join("volumes"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = volumes();
    assert_eq!(before.len(), 4, "{before:?}");
    p.ok(&["down"]);
    let after = volumes();
    assert_eq!(after.len(), 3, "the anonymous volume is gone: {after:?}");
    assert!(after.iter().all(|v| v.starts_with(&format!("{}_", p.name))));

    p.ok(&["down", "-v"]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left on the host: {left:?}");
}

#[test]
fn volumes_from_a_container_by_name() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "volfrom",
        r#"name: {project}
services:
  data:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "echo seed > /shared/seed; sleep 3600"]
    volumes: [shared:/shared]
volumes:
  shared: {}
"#,
    );
    p.ok(&["up", "-d"]);
    let data = running(&p, "data");
    eventually("the seed file", Duration::from_secs(10), || {
        p.exec(&data, &["test", "-f", "/shared/seed"])
            .status
            .success()
            .then_some(())
    });
    // Added once the container exists, as `container:` names one.
    let text = std::fs::read_to_string(&p.file).unwrap();
    let text = text.replace(
        "volumes:\n  shared: {}",
        &format!(
            "  user:\n    image: localhost/busybox:latest\n    stop_grace_period: 1s\n    command: [\"sleep\", \"3600\"]\n    volumes_from: [\"container:{data}\"]\nvolumes:\n  shared: {{}}"
        ),
    );
    std::fs::write(&p.file, text).unwrap();
    p.ok(&["up", "-d"]);
    let user = running(&p, "user");
    assert_eq!(stdout(&p.exec(&user, &["cat", "/shared/seed"])), "seed\n");
    p.ok(&["down", "-v"]);
}

#[test]
fn external_volumes_must_exist_and_are_never_removed() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "volext",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes: [outside:/outside]
volumes:
  outside:
    external: true
    name: {project}-outside
"#,
    );
    let volume = format!("{}-outside", p.name);
    // Missing: a clear error naming it, before anything starts.
    let err = p.fails(1, &["up", "-d"]);
    assert!(
        err.contains(&format!("external volume `{volume}` does not exist")),
        "{err}"
    );
    assert!(p.ok(&["ps", "-a", "-q"]).trim().is_empty());

    // Made by a stack that owns it (and keeps it after its `down`)...
    let maker = p.dir().join("maker.yaml");
    std::fs::write(
        &maker,
        format!(
            "name: {}-maker\nservices:\n  m:\n    image: localhost/busybox:latest\n    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"echo kept > /v/kept; sleep 3600\"]\n    volumes: [v:/v]\nvolumes:\n  v:\n    name: {volume}\n",
            p.name
        ),
    )
    .unwrap();
    let maker_cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(e2e::STACK);
        c.arg("--root")
            .arg(&p.root)
            .arg("-f")
            .arg(&maker)
            .args(args);
        e2e::ok(c.output().unwrap(), &args.join(" "))
    };
    maker_cmd(&["up", "-d"]);
    let m = format!("{}-maker-m-1", p.name);
    eventually("the maker wrote", Duration::from_secs(10), || {
        p.exec(&m, &["test", "-f", "/v/kept"])
            .status
            .success()
            .then_some(())
    });
    maker_cmd(&["down"]);

    // ... it is used, and `down -v` leaves it.
    p.ok(&["up", "-d"]);
    let app = running(&p, "app");
    assert_eq!(stdout(&p.exec(&app, &["cat", "/outside/kept"])), "kept\n");
    p.ok(&["down", "-v"]);
    assert!(
        p.root.join("volumes").join(&volume).exists(),
        "an external volume survives down -v"
    );
    maker_cmd(&["down", "-v"]);
    assert!(!p.root.join("volumes").join(&volume).exists());
}

#[test]
fn a_missing_bind_source_with_create_host_path_false_is_a_clear_error() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "volbind",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes:
      - type: bind
        source: ./missing
        target: /m
        bind: {create_host_path: false}
"#,
    );
    let err = p.fails(1, &["up", "-d"]);
    assert!(err.contains("missing"), "{err}");
    assert!(!p.dir().join("missing").exists(), "nothing was created");
    p.ok(&["down", "-v"]);
}

/// A tmpfs this test mounts (shared, so mounts below it propagate), and
/// unmounts again whatever happens.
struct SharedMount(std::path::PathBuf);

impl SharedMount {
    fn new(dir: &std::path::Path) -> SharedMount {
        use nix::mount::{MsFlags, mount};
        std::fs::create_dir_all(dir).unwrap();
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let m = SharedMount(dir.to_path_buf());
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        m
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn an_rslave_bind_receives_the_hosts_later_mounts_and_a_default_one_does_not() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "bindprop",
        r#"name: {project}
services:
  follows:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes:
      - type: bind
        source: ./shared
        target: /data
        bind: {propagation: rslave}
  private:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes: ["./shared:/data"]
"#,
    );
    let shared = p.dir().join("shared");
    let _mount = SharedMount::new(&shared);
    p.ok(&["up", "-d"]);
    let (follows, private) = (running(&p, "follows"), running(&p, "private"));
    // A mount the host makes after the containers started.
    let sub = shared.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let _sub = SharedMount::new(&sub);
    std::fs::write(sub.join("f"), "from-the-host").unwrap();
    let o = p.exec(&follows, &["cat", "/data/sub/f"]);
    assert_eq!(stdout(&o), "from-the-host", "{o:?}");
    // rprivate, docker's default: the directory, not what was mounted on it.
    assert!(
        p.exec(&private, &["test", "-d", "/data/sub"])
            .status
            .success()
    );
    assert!(
        !p.exec(&private, &["test", "-e", "/data/sub/f"])
            .status
            .success()
    );
    // Nothing of the containers' mounts came back to the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(
        mounts.matches(&*shared.to_string_lossy()).count(),
        2,
        "{mounts}"
    );
    p.ok(&["down"]);
}

#[test]
fn an_unknown_bind_propagation_is_refused_with_its_place() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "bindpropbad",
        r#"name: {project}
services:
  a:
    image: localhost/busybox:latest
    volumes:
      - type: bind
        source: .
        target: /data
        bind: {propagation: sideways}
"#,
    );
    let err = p.fails(3, &["up", "-d"]);
    assert!(err.contains("unknown bind propagation `sideways`"), "{err}");
    assert!(err.contains("rslave"), "{err}");
    // Its place: the line of `propagation:` in the file.
    assert!(err.contains("compose.yaml:9:"), "{err}");
    assert!(
        !p.root.join("containers").exists()
            || std::fs::read_dir(p.root.join("containers"))
                .unwrap()
                .next()
                .is_none()
    );
}
