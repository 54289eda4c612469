//! The stacks in examples/stacks/ for real (root): each comes up with
//! `up --wait` on the local busybox image (`IMAGE`), answers on its
//! published port (`WEB_PORT`, free for the test), and leaves nothing after
//! `down -v`. The three-tier example is also updated in place: `up` again
//! changes nothing, and a changed environment recreates that service and
//! restarts its `restart: true` dependents, leaving the rest alone.

use std::path::Path;
use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{IMAGE, Project, eventually, fetch, free_port};

/// The example in `dir` copied into a fresh project (its `name:` replaced
/// by the project's, so that tests do not clash).
fn project_of(dir: &Path, prefix: &str) -> Project {
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let renamed: String = text
        .lines()
        .map(|l| {
            if l.starts_with("name:") {
                "name: {project}".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let tag = format!(
        "{prefix}{}",
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    let p = Project::new(&tag, &renamed);
    copy_tree(dir, p.dir());
    p
}

/// Copies every file but compose.yaml, modes kept (CGI scripts are executable).
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() != "compose.yaml" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn examples() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stacks");
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("compose.yaml").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_example_comes_up_answers_and_goes_down_leaving_nothing() {
    if !e2e::can_run() {
        return;
    }
    let dirs = examples();
    assert!(dirs.len() >= 2, "the examples are missing: {dirs:?}");
    for dir in dirs {
        let p = project_of(&dir, "ex");
        let port = free_port().to_string();
        let env = [("IMAGE", IMAGE), ("WEB_PORT", port.as_str())];
        p.ok_env(&["up", "--wait"], &env);
        let page = eventually(
            &format!("{} answers on its published port", dir.display()),
            Duration::from_secs(10),
            || fetch(port.parse().unwrap(), "/"),
        );
        assert!(page.contains("<h1>"), "{}: {page}", dir.display());
        p.ok_env(&["down", "-v"], &env);
        assert_eq!(p.leftovers(), Vec::<String>::new(), "{}", dir.display());
    }
}

/// Whatever port answers to `GET /`, for failure messages.
fn raw(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return "no connection".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// The visit number on the page.
fn visits(page: &str) -> u64 {
    let at = page.find("visit number ").unwrap() + "visit number ".len();
    page[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn three_tiers_answer_stay_put_and_recreate_only_what_changed() {
    if !e2e::can_run() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stacks/threetier");
    let p = project_of(&dir, "upd");
    let port = free_port().to_string();
    let env = [("IMAGE", IMAGE), ("WEB_PORT", port.as_str())];
    let port: u16 = port.parse().unwrap();
    p.ok_env(&["up", "--wait"], &env);

    // web → api → store by service names; the store counts in its volume.
    let first = eventually(
        &format!("the page (last answer: {:?})", raw(port)),
        Duration::from_secs(10),
        || fetch(port, "/").filter(|t| t.contains("visit number")),
    );
    assert!(
        first.contains("hello from the api: visit number"),
        "{first}"
    );

    // Again: nothing to do.
    let same = p.run_env(&["plan", "--detailed-exitcode"], &env);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let pids = |name: &str| p.pid(&p.container(name, 1)).unwrap();
    let (web, api, store) = (pids("web"), pids("api"), pids("store"));
    p.ok_env(&["up", "--wait"], &env);
    assert_eq!(
        (pids("web"), pids("api"), pids("store")),
        (web, api, store),
        "an unchanged `up` touched a container"
    );

    // The api's environment changes: api recreated, web (restart: true) restarted, store kept.
    let changed = [
        ("IMAGE", IMAGE),
        ("WEB_PORT", env[1].1),
        ("GREETING", "changed greeting"),
    ];
    p.ok_env(&["up", "--wait"], &changed);
    assert_ne!(pids("api"), api, "api was not recreated");
    assert_ne!(pids("web"), web, "web was not restarted after api");
    assert_eq!(pids("store"), store, "store was touched");
    let page = eventually("the new greeting", Duration::from_secs(10), || {
        fetch(port, "/").filter(|t| t.contains("changed greeting"))
    });
    // The count lives in the store's volume: it went on.
    assert!(visits(&page) > visits(&first), "{first}\n{page}");

    p.ok_env(&["down", "-v"], &changed);
    assert_eq!(p.leftovers(), Vec::<String>::new());
}
