//! The Compose specification's conformance cases, run for real (root):
//! each folder of `conformance-tests/tests/` in the shared corpus is
//! copied to a temporary directory (only its host ports changed to free
//! ones, so tests don't clash), brought up with `stack up -d`, checked the
//! way the official suite checks it, and brought down leaving nothing.
//!
//! The cases use the images `composespec/conformance-tests-server` and
//! `-client`. No registry is reachable here, so each test imports
//! stand-ins of its own under those names, made of busybox:
//!
//! - the server answers HTTP on 8080 (busybox `nc -ll -e` running a shell
//!   handler per connection): `GET /ping` → `{"response":"PONG FROM TARGET"}`,
//!   `GET /ping?address=HOST:PORT/PATH` → the body of `http://HOST:PORT/PATH`
//!   or `{"response":"Could not reach address: ..."}`,
//!   `GET /volumefile?filename=F` → `{"response":"<content of /volumes/F>"}`,
//!   `GET /scalechecker?value=V` records V, `GET /scalechecker` lists
//!   what was recorded; and echoes UDP on 10001 (a static helper compiled
//!   from `tests/support/udp_echo.rs`, busybox's `nc` having no UDP);
//! - the client tells the server its hostname through `/scalechecker`
//!   (retrying until the server answers) and exits.

use std::path::Path;
use std::time::Duration;

#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, busybox_rootfs, eventually, free_port, free_udp_port};

const SERVER: &str = "composespec/conformance-tests-server:latest";
const CLIENT: &str = "composespec/conformance-tests-client:latest";

/// The server's HTTP side: one request on standard input, the answer on
/// standard output.
const SERVE: &str = r#"#!/bin/sh
read -r method target proto
# Skip the headers (up to the empty line, "\r" included).
while read -r line; do [ "${#line}" -le 1 ] && break; done
path=${target%%\?*}
query=
case $target in *\?*) query=${target#*\?} ;; esac
param() { echo "$query" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1; }
answer() { printf 'HTTP/1.0 %s\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n' "$1"; }
case $path in
/ping)
    address=$(param address)
    if [ -z "$address" ]; then
        answer "200 OK"; printf '{"response":"PONG FROM TARGET"}\n'
    elif body=$(wget -q -O - "http://$address" 2>/dev/null); then
        answer "200 OK"; printf '%s\n' "$body"
    else
        answer "400 Bad Request"; printf '{"response":"Could not reach address: %s"}\n' "$address"
    fi ;;
/volumefile)
    if content=$(cat "/volumes/$(param filename)"); then
        answer "200 OK"; printf '{"response":"%s"}\n' "$content"
    else
        answer "404 Not Found"; printf '{"response":"no such file"}\n'
    fi ;;
/scalechecker)
    value=$(param value)
    mkdir -p /tmp/scale
    if [ -n "$value" ]; then
        touch "/tmp/scale/$value"; answer "200 OK"; printf '{"response":"OK"}\n'
    else
        answer "200 OK"; printf '{"response":"%s"}\n' "$(ls /tmp/scale | tr '\n' ' ')"
    fi ;;
*)
    answer "404 Not Found"; printf '{"response":"not found"}\n' ;;
esac
"#;

const SERVER_CMD: &str = r#"["sh", "-c", "udp-echo & exec nc -ll -p 8080 -e /bin/serve"]"#;
const CLIENT_CMD: &str = r#"["sh", "-c", "sleep 1; until wget -q -O /dev/null \"http://server:8080/scalechecker?value=$(hostname)\"; do sleep 1; done"]"#;

/// Copies a conformance case, gives it free ports, and imports the
/// stand-in images. Returns the project and its HTTP and UDP host ports.
fn case(name: &str) -> Option<(Project, u16, u16)> {
    if !e2e::can_run() {
        return None;
    }
    let source = corpus::corpus()?.join("conformance-tests/tests").join(name);
    assert!(source.is_dir(), "{} is missing", source.display());
    let (http, udp) = (free_port(), free_udp_port());
    let p = Project::from_dir(&name.replace('_', ""), &source, |text| {
        text.replace("8080:8080", &format!("{http}:8080"))
            .replace("published: 10001", &format!("published: {udp}"))
    });
    let server = busybox_rootfs(&p.scratch().join("server"));
    std::fs::create_dir_all(server.join("volumes")).unwrap();
    std::fs::write(server.join("bin/serve"), SERVE).unwrap();
    std::fs::copy(e2e::udp_echo_binary(), server.join("bin/udp-echo")).unwrap();
    for f in ["bin/serve", "bin/udp-echo"] {
        chmod_x(&server.join(f));
    }
    p.import(&server, SERVER, SERVER_CMD);
    let client = busybox_rootfs(&p.scratch().join("client"));
    p.import(&client, CLIENT, CLIENT_CMD);
    Some((p, http, udp))
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// GET `path` on 127.0.0.1:port: the status line and the body, whatever
/// the status (the server answers 400 when it cannot reach an address).
fn get(port: u16, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    // Long enough for the server's own lookup of a name that does not exist.
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// The body of a 200 answer, waiting for the server to come up.
fn body(port: u16, path: &str) -> String {
    eventually(&format!("GET {path}"), Duration::from_secs(20), || {
        get(port, path).and_then(|(status, body)| status.contains("200").then_some(body))
    })
}

/// Takes the project down and checks that nothing of it is left.
fn down(p: &Project) {
    p.ok(&["down", "-v"]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left on the host: {left:?}");
}

#[test]
fn simple_lifecycle() {
    let Some((p, _, _)) = case("simple_lifecycle") else {
        return;
    };
    p.ok(&["up", "-d"]);
    let test1 = p.container("test1", 1);
    let ps = p.ok(&["ps"]);
    assert!(ps.contains(&test1), "{ps}");
    eventually("test1 running", Duration::from_secs(10), || p.pid(&test1));
    down(&p);
    let ps = p.ok(&["ps", "-a"]);
    assert!(!ps.contains(&test1), "{ps}");
}

#[test]
fn simple_network() {
    let Some((p, http, _)) = case("simple_network") else {
        return;
    };
    p.ok(&["up", "-d"]);
    body(http, "/ping");
    assert_eq!(
        body(http, "/ping?address=target:8080/ping"),
        "{\"response\":\"PONG FROM TARGET\"}\n"
    );
    // The official suite's failing variant: a name nobody has.
    let (status, text) = get(http, "/ping?address=notatarget:8080/ping").expect("an answer");
    assert!(status.contains("400"), "{status}");
    assert_eq!(
        text,
        "{\"response\":\"Could not reach address: notatarget:8080/ping\"}\n"
    );
    down(&p);
}

#[test]
fn different_networks() {
    let Some((p, http, _)) = case("different_networks") else {
        return;
    };
    p.ok(&["up", "-d"]);
    body(http, "/ping");
    // target runs, on a network entry is not on.
    eventually("target running", Duration::from_secs(10), || {
        p.pid(&p.container("target", 1))
    });
    let (status, text) = get(http, "/ping?address=target:8080/ping").expect("an answer");
    assert!(status.contains("400"), "{status}");
    assert_eq!(
        text,
        "{\"response\":\"Could not reach address: target:8080/ping\"}\n"
    );
    down(&p);
}

#[test]
fn simple_volume() {
    let Some((p, http, _)) = case("simple_volume") else {
        return;
    };
    p.ok(&["up", "-d"]);
    assert_eq!(
        body(http, "/volumefile?filename=test_volume.txt"),
        "{\"response\":\"MYVOLUME\"}\n"
    );
    down(&p);
}

#[test]
fn simple_secretfile() {
    let Some((p, http, _)) = case("simple_secretfile") else {
        return;
    };
    p.ok(&["up", "-d"]);
    assert_eq!(
        body(http, "/volumefile?filename=test_secret.txt"),
        "{\"response\":\"MYSECRET\"}\n"
    );
    down(&p);
}

#[test]
fn simple_configfile() {
    let Some((p, http, _)) = case("simple_configfile") else {
        return;
    };
    p.ok(&["up", "-d"]);
    assert_eq!(
        body(http, "/volumefile?filename=test_config.txt"),
        "{\"response\":\"MYCONFIG\"}\n"
    );
    down(&p);
}

#[test]
fn udp_port() {
    let Some((p, http, udp)) = case("udp_port") else {
        return;
    };
    p.ok(&["up", "-d"]);
    body(http, "/ping");
    let echoed = e2e::udp_echoed(
        ([127, 0, 0, 1], udp).into(),
        "hello-udp",
        Duration::from_secs(10),
    );
    assert_eq!(echoed, "hello-udp");
    down(&p);
}

#[test]
fn scaling() {
    let Some((p, http, _)) = case("scaling") else {
        return;
    };
    p.ok(&["up", "-d"]);
    let ps = p.ok(&["ps", "-a"]);
    for n in 1..=3 {
        assert!(ps.contains(&p.container("client", n)), "{ps}");
    }
    assert!(!ps.contains(&p.container("client", 4)), "{ps}");
    // Every replica reached the server by its service name.
    let seen = eventually(
        "three clients reached the server",
        Duration::from_secs(30),
        || {
            let text = body(http, "/scalechecker");
            let names = text
                .trim()
                .trim_start_matches("{\"response\":\"")
                .trim_end_matches("\"}")
                .to_string();
            (names.split_whitespace().count() >= 3).then_some(names)
        },
    );
    for n in 1..=3 {
        assert!(seen.contains(&p.container("client", n)), "{seen}");
    }
    down(&p);
}
