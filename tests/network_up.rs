//! Networks through `stack up` (root, real): three replicas answer through
//! one name in rotating order; a container on another network can neither
//! resolve nor reach them; an internal network has no default route;
//! published TCP and UDP ports answer on 127.0.0.1 and on the host's own
//! address; a host port already taken fails before anything starts; a
//! changed network is made again and its containers reattached.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, busybox_rootfs, eventually, free_port, free_udp_port};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The addresses an `nslookup` answer gives for the name (the server's
/// own address, printed first, left out).
fn addresses(out: &str) -> Vec<Ipv4Addr> {
    out.lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// An IPv4 address of this host that is not loopback and not ours (the
/// default route's device).
fn host_address() -> Option<Ipv4Addr> {
    let route = Command::new("ip")
        .args(["-4", "-o", "route", "show", "default"])
        .output()
        .ok()?;
    let route = stdout(&route);
    let dev = route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)?
        .to_string();
    let addrs = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global", "dev", &dev])
        .output()
        .ok()?;
    stdout(&addrs).lines().find_map(|l| {
        let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
        cidr.split('/').next()?.parse().ok()
    })
}

fn fetch_from(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.contains("200 OK").then_some(text)
}

const STACK: &str = r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    deploy: {replicas: 3}
    command: ["sh", "-c", "hostname > /srv/index.html; httpd -f -p 80 -h /srv"]
    networks: [front]
  client:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    networks: [front]
  stranger:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    networks: [other]
  inside:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    networks: [back]
  public:
    image: localhost/echo:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "echo published > /srv/index.html; udp-echo & exec httpd -f -p 8080 -h /srv"]
    ports: ["{tcp}:8080", "{udp}:10001/udp"]
    networks: [front]
networks:
  front: {}
  other: {}
  back: {internal: true}
"#;

#[test]
fn discovery_isolation_internal_networks_and_published_ports() {
    if !e2e::can_run() {
        return;
    }
    let (tcp, udp) = (free_port(), free_udp_port());
    let p = Project::new(
        "netup",
        &STACK
            .replace("{tcp}", &tcp.to_string())
            .replace("{udp}", &udp.to_string()),
    );
    let echo = busybox_rootfs(&p.scratch().join("echo"));
    std::fs::copy(e2e::udp_echo_binary(), echo.join("bin/udp-echo")).unwrap();
    p.import(&echo, "localhost/echo:latest", r#"["sh"]"#);
    p.ok(&["up", "-d"]);
    let running = |s: &str, n: u32| {
        let name = p.container(s, n);
        eventually(&format!("{name} running"), Duration::from_secs(10), || {
            p.pid(&name)
        });
        name
    };
    for n in 1..=3 {
        running("web", n);
    }
    let client = running("client", 1);

    // Three replicas behind one name, in rotating order.
    let mut firsts = BTreeSet::new();
    let mut all = Vec::new();
    for _ in 0..6 {
        let got = eventually("web resolved", Duration::from_secs(10), || {
            let o = p.exec(&client, &["nslookup", "-type=a", "web"]);
            let a = addresses(&stdout(&o));
            (a.len() == 3).then_some(a)
        });
        firsts.insert(got[0]);
        let mut sorted = got.clone();
        sorted.sort();
        all = sorted;
    }
    assert!(firsts.len() > 1, "the order never rotated: {firsts:?}");
    // Each replica answers, through the name of its container.
    for n in 1..=3 {
        let name = p.container("web", n);
        let url = format!("http://{name}/");
        let o = eventually(&format!("{name} answers"), Duration::from_secs(10), || {
            let o = p.exec(&client, &["wget", "-q", "-O", "-", url.as_str()]);
            o.status.success().then_some(o)
        });
        assert_eq!(stdout(&o).trim(), name);
    }

    // Another network: web's name does not resolve and its address does
    // not answer.
    let stranger = running("stranger", 1);
    let o = p.exec(&stranger, &["nslookup", "-type=a", "web"]);
    assert!(addresses(&stdout(&o)).is_empty(), "{o:?}");
    let url = format!("http://{}/", all[0]);
    let o = p.exec(
        &stranger,
        &["timeout", "3", "wget", "-q", "-O", "-", url.as_str()],
    );
    assert!(!o.status.success(), "reached {url} from another network");
    // The same address answers from web's own network (the check above
    // means something).
    let o = p.exec(&client, &["wget", "-q", "-O", "-", url.as_str()]);
    assert!(o.status.success(), "{o:?}");

    // An internal network has no default route.
    let inside = running("inside", 1);
    let routes = stdout(&p.exec(&inside, &["ip", "route"]));
    assert!(
        !routes.is_empty() && !routes.contains("default"),
        "{routes}"
    );

    // Published ports: TCP and UDP, on 127.0.0.1 and on the host's address.
    running("public", 1);
    let page = eventually(
        "the published TCP port on 127.0.0.1",
        Duration::from_secs(10),
        || fetch_from(([127, 0, 0, 1], tcp).into()),
    );
    assert!(page.contains("published"), "{page}");
    let echoed = e2e::udp_echoed(([127, 0, 0, 1], udp).into(), "lo", Duration::from_secs(10));
    assert_eq!(echoed, "lo");
    if let Some(host) = host_address() {
        let page = eventually(
            "the published TCP port on the host's address",
            Duration::from_secs(10),
            || fetch_from((host, tcp).into()),
        );
        assert!(page.contains("published"), "{page}");
        let echoed = e2e::udp_echoed((host, udp).into(), "host", Duration::from_secs(10));
        assert_eq!(echoed, "host");
    } else {
        eprintln!(
            "no non-loopback address with a default route: the host-address checks did not run"
        );
    }

    p.ok(&["down", "-v"]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left on the host: {left:?}");
}

#[test]
fn a_taken_host_port_fails_before_anything_starts() {
    if !e2e::can_run() {
        return;
    }
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let p = Project::new(
        "nettaken",
        &format!(
            r#"name: {{project}}
services:
  first:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
  web:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["httpd", "-f", "-p", "80"]
    ports: ["{port}:80"]
    depends_on: [first]
"#
        ),
    );
    let err = p.fails(1, &["up", "-d"]);
    assert!(err.contains(&port.to_string()), "{err}");
    // The ports are checked before the plan runs: no container was made.
    let ps = p.ok(&["ps", "-a", "-q"]);
    assert!(ps.trim().is_empty(), "{ps}");
    drop(taken);
    p.ok(&["down", "-v"]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left on the host: {left:?}");
}

/// The interface index of the bridge of a project's network (by its alias).
fn bridge_index(project: &str, network: &str) -> Option<String> {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let alias = format!("alias stack:{project}:{network}");
    stdout(&out)
        .lines()
        .find(|l| l.trim_end().ends_with(&alias))
        .and_then(|l| l.split(':').next())
        .map(str::to_string)
}

#[test]
fn a_changed_network_is_made_again_and_its_containers_reattached() {
    if !e2e::can_run() {
        return;
    }
    let stack = |version: &str| {
        format!(
            r#"name: {{project}}
services:
  web:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    networks: [front]
    command: ["sh", "-c", "echo hi-front > /srv/index.html; exec httpd -f -p 8080 -h /srv"]
  client:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    networks: [front]
    command: ["sleep", "3600"]
networks:
  front:
    labels: {{version: "{version}"}}
"#
        )
    };
    let p = Project::new("netre", &stack("1"));
    p.ok(&["up", "-d"]);
    let (web, client) = (p.container("web", 1), p.container("client", 1));
    let long = Duration::from_secs(20);
    let pids = (
        eventually("web running", long, || p.pid(&web)),
        eventually("client running", long, || p.pid(&client)),
    );
    let fetch = || {
        let o = p.exec(&client, &["wget", "-q", "-O", "-", "http://web:8080/"]);
        (o.status.success() && stdout(&o).trim() == "hi-front").then_some(())
    };
    eventually("client reaches web by name", long, fetch);
    let before = bridge_index(&p.name, "front").expect("the bridge exists");
    assert!(p.exec(&client, &["touch", "/kept"]).status.success());

    p.rewrite(&stack("2").replace("{project}", &p.name));
    let plan = p.ok(&["plan"]);
    assert!(plan.contains("network"), "{plan}");
    p.ok(&["up", "-d"]);
    let after = bridge_index(&p.name, "front").expect("the bridge exists again");
    assert_ne!(before, after, "the bridge was not made again");
    // The same containers (their writable layers kept), restarted on the
    // new bridge, reach each other by name.
    let again = (
        eventually("web running again", long, || p.pid(&web)),
        eventually("client running again", long, || p.pid(&client)),
    );
    assert!(again.0 != pids.0 && again.1 != pids.1, "{pids:?} {again:?}");
    assert!(
        p.exec(&web, &["test", "-f", "/srv/index.html"])
            .status
            .success()
    );
    assert!(p.exec(&client, &["test", "-f", "/kept"]).status.success());
    eventually("client reaches web by name again", long, fetch);
    // Nothing changed since: nothing to do.
    let o = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}
