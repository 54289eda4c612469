//! `network_mode` through `stack up` (root, real): `service:NAME` and
//! `container:NAME` share the target's network namespace and its name
//! files, and follow the target when it is made again; `host` is the
//! host's namespace; `none` has loopback only.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

/// The network namespace (`net:[inode]`) a container's processes are in,
/// read from inside (the host may not read a container's /proc/PID/ns).
fn netns(p: &Project, container: &str) -> String {
    let o = p.exec(container, &["readlink", "/proc/self/ns/net"]);
    assert!(o.status.success(), "{o:?}");
    stdout(&o).trim().to_string()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const STACK: &str = r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    environment: [VERSION=1]
    command: ["sh", "-c", "echo hi-from-web > /srv/index.html; httpd -f -p 8080 -h /srv"]
  peer:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
  side:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    network_mode: "service:web"
    command: ["sleep", "3600"]
  hostnet:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    network_mode: host
    command: ["sleep", "3600"]
  nonet:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    network_mode: none
    command: ["sleep", "3600"]
"#;

/// Joins a container that exists already (added once web runs).
const BYNAME: &str = r#"  byname:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    network_mode: "container:{project}-web-1"
    command: ["sleep", "3600"]
"#;

#[test]
fn network_modes_through_up() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("netmode", STACK);
    p.ok(&["up", "-d"]);
    let pid = |s: &str| {
        eventually(&format!("{s} running"), Duration::from_secs(10), || {
            p.pid(&p.container(s, 1))
        })
    };
    let ns = |s: &str| netns(&p, &p.container(s, 1));
    let host_ns = std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let (web, side) = (pid("web"), pid("side"));

    // service: and container: share web's namespace: its loopback serves
    // web's page, and its name files are web's.
    assert_eq!(ns("side"), ns("web"));
    let side_name = p.container("side", 1);
    let page = eventually(
        "web's page on side's loopback",
        Duration::from_secs(10),
        || {
            let o = p.exec(
                &side_name,
                &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
            );
            o.status.success().then(|| stdout(&o))
        },
    );
    assert!(page.contains("hi-from-web"), "{page}");
    let web_name = p.container("web", 1);
    for file in ["/etc/hosts", "/etc/resolv.conf"] {
        // The watcher keeps web's current as peers come; side's follows.
        let a = eventually(&format!("the same {file}"), Duration::from_secs(10), || {
            let a = stdout(&p.exec(&web_name, &["cat", file]));
            let b = stdout(&p.exec(&side_name, &["cat", file]));
            (a == b).then_some(a)
        });
        assert!(!a.is_empty(), "{file}");
    }
    // And so is web's DNS: side resolves the project's other services.
    let answer = eventually("peer resolved from side", Duration::from_secs(10), || {
        let o = p.exec(&side_name, &["nslookup", "peer"]);
        (o.status.success() && stdout(&o).contains("Address")).then(|| stdout(&o))
    });
    assert!(answer.contains("Name:"), "{answer}");

    // host: the host's namespace and its resolv.conf.
    pid("hostnet");
    assert_eq!(ns("hostnet"), host_ns);
    let resolv = stdout(&p.exec(&p.container("hostnet", 1), &["cat", "/etc/resolv.conf"]));
    assert_eq!(
        resolv,
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    );

    // none: a namespace of its own with loopback only.
    pid("nonet");
    assert_ne!(ns("nonet"), host_ns);
    let links = stdout(&p.exec(&p.container("nonet", 1), &["ip", "-o", "link"]));
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo:"), "{links}");

    // web changes: it is made again, and side with it, in web's new namespace.
    let text = std::fs::read_to_string(&p.file)
        .unwrap()
        .replace("VERSION=1", "VERSION=2");
    std::fs::write(&p.file, text).unwrap();
    p.ok(&["up", "-d"]);
    let web2 = pid("web");
    let side2 = pid("side");
    assert_ne!(web2, web, "web was made again");
    assert_ne!(side2, side, "side was made again with it");
    assert_eq!(ns("side"), ns("web"));

    // container:NAME joins a container that exists.
    let text = std::fs::read_to_string(&p.file).unwrap();
    std::fs::write(
        &p.file,
        format!("{text}{}", BYNAME.replace("{project}", &p.name)),
    )
    .unwrap();
    p.ok(&["up", "-d"]);
    pid("byname");
    assert_eq!(ns("byname"), ns("web"));
    assert_eq!(pid("web"), web2, "web was kept");

    p.ok(&["down", "-v"]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left on the host: {left:?}");
}

#[test]
fn a_sharer_follows_its_target_restarted_by_the_watcher() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "netfollow",
        r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    restart: always
    stop_grace_period: 1s
    command: ["sh", "-c", "echo hi > /srv/index.html; httpd -f -p 8080 -h /srv"]
  side:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    network_mode: "service:web"
    command: ["sleep", "3600"]
"#,
    );
    p.ok(&["up", "-d"]);
    let (web, side) = (p.container("web", 1), p.container("side", 1));
    let long = Duration::from_secs(20);
    let web_pid = eventually("web running", long, || p.pid(&web));
    let side_pid = eventually("side running", long, || p.pid(&side));
    assert_eq!(netns(&p, &side), netns(&p, &web));
    // web dies; the watcher starts it again, in a new namespace.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(web_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("web running again", long, || {
        p.pid(&web).filter(|&pid| pid != web_pid)
    });
    // side is restarted into web's new namespace: web's loopback answers it.
    eventually("side in web's new namespace", long, || {
        let new = p.pid(&side).filter(|&pid| pid != side_pid)?;
        (netns(&p, &side) == netns(&p, &web)).then_some(new)
    });
    let o = p.exec(&side, &["wget", "-qO-", "http://127.0.0.1:8080/"]);
    assert_eq!(stdout(&o).trim(), "hi", "{o:?}");
    let events = p.ok(&["events", "--json", "--no-follow"]);
    assert!(
        events
            .lines()
            .any(|l| l.contains(&side) && l.contains("whose network it shares")),
        "{events}"
    );
}
