//! `stack up` and `stack down` for real (root): a two-service busybox stack
//! on a fresh state root, reached through its published port, by name
//! through the project's DNS, with a named volume that outlives `down`, a
//! killed container restarted by the watcher, and nothing left after
//! `down -v`.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually, fetch, free_port};

#[test]
fn a_stack_comes_up_answers_heals_and_goes_down_leaving_nothing() {
    if !e2e::can_run() {
        return;
    }
    let port = free_port();
    let p = Project::new(
        "updown",
        &format!(
            r#"name: {{project}}
services:
  web:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "echo hello-from-web > /srv/index.html; httpd -f -p 8080 -h /srv"]
    ports: ["127.0.0.1:{port}:8080"]
    volumes: [data:/data]
    tmpfs: [/scratch]
    secrets: [token]
    configs: [{{source: greeting, target: /etc/greeting}}]
  client:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    depends_on: [web]
volumes:
  data: {{}}
secrets:
  token:
    file: ./token.txt
configs:
  greeting:
    content: hello-config
"#
        ),
    );
    p.write("token.txt", "s3cret");
    let (root, project) = (p.root.clone(), p.name.clone());

    p.ok(&["up", "-d"]);
    let ps = p.ok(&["ps"]);
    assert!(ps.contains(&format!("{project}-web-1")), "{ps}");
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");

    // The published port answers on 127.0.0.1.
    let page = eventually(
        "the page on the published port",
        Duration::from_secs(10),
        || fetch(port, "/"),
    );
    assert!(page.contains("hello-from-web"), "{page}");

    // The client reaches web by its service name, through the project's DNS.
    let client = format!("{project}-client-1");
    let web = format!("{project}-web-1");
    let answer = eventually("web resolved by DNS", Duration::from_secs(10), || {
        let o = p.exec(&client, &["nslookup", "web"]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        (o.status.success() && text.contains("Address")).then_some(text)
    });
    assert!(answer.contains("Name:"), "{answer}");
    let got = eventually("the page by service name", Duration::from_secs(10), || {
        let o = p.exec(&client, &["wget", "-q", "-O", "-", "http://web:8080/"]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    assert!(got.contains("hello-from-web"), "{got}");

    // Secrets and configs are files, mounted read-only; tmpfs is a tmpfs.
    let o = p.exec(&web, &["cat", "/run/secrets/token", "/etc/greeting"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "s3crethello-config",
        "{o:?}"
    );
    let o = p.exec(&web, &["sh", "-c", "echo x > /run/secrets/token"]);
    assert!(!o.status.success(), "a secret is read-only");
    let o = p.exec(&web, &["grep", " /scratch tmpfs ", "/proc/mounts"]);
    assert!(o.status.success(), "{o:?}");

    // A named volume's data survives down and up.
    let o = p.exec(&web, &["sh", "-c", "echo kept > /data/keep"]);
    assert!(o.status.success(), "{o:?}");
    p.ok(&["down"]);
    p.ok(&["up", "-d"]);
    let o = p.exec(&web, &["cat", "/data/keep"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "kept", "{o:?}");

    // Killed: the watcher starts it again (and applies no new revision).
    let revisions = || {
        std::fs::read_dir(root.join("projects").join(&project).join("revisions"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let kept = revisions();
    let before = eventually("web's pid", Duration::from_secs(5), || p.pid(&web));
    // SAFETY: kill has no memory effects; the pid is the container's init, which we started.
    unsafe { libc::kill(before as i32, libc::SIGKILL) };
    let after = eventually(
        "web restarted by the watcher",
        Duration::from_secs(15),
        || p.pid(&web).filter(|p| *p != before),
    );
    assert_ne!(before, after);
    assert_eq!(revisions(), kept, "a restart is not a new revision");
    eventually(
        "the page after the restart",
        Duration::from_secs(10),
        || fetch(port, "/"),
    );

    // down -v: nothing of the project is left.
    p.ok(&["down", "-v"]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left on the host: {left:?}");
    // The state root holds only the image store, the project's revision
    // history (kept on purpose: `rollback` and the next revision number
    // need it) and its lock files.
    let mut left = Vec::new();
    collect_files(&root, &root.join("images"), &mut left);
    let project_dir = root.join("projects").join(&project);
    left.retain(|p| {
        !(p.starts_with(project_dir.join("revisions"))
            || *p == project_dir.join("lock")
            || *p == project_dir.join("network.lock")
            // The event log outlives `down`: it says what happened.
            || p.starts_with(root.join("events")))
    });
    assert!(left.is_empty(), "files left in the state root: {left:?}");
    assert!(
        !root
            .join("volumes")
            .join(format!("{project}_data"))
            .exists(),
        "the named volume is gone after down -v"
    );
    drop(p);
}

fn collect_files(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}
