//! Published ports for real: a namespace stands in for the container, the
//! test connects from the host to 127.0.0.1 (userland proxy) and to the
//! host's own address (kernel DNAT). Each test uses its own ports.

#[path = "support/network.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use stack::network::NetworkError;
use stack::spec::model::Port;
use support::*;

fn port(published: Option<&str>, target: u16, protocol: &str) -> Port {
    Port {
        name: None,
        mode: "ingress".into(),
        host_ip: None,
        target,
        published: published.map(String::from),
        protocol: protocol.into(),
        app_protocol: None,
    }
}

fn udp_roundtrip(to: SocketAddr, msg: &str) -> Option<String> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.send_to(msg.as_bytes(), to).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn published_tcp_and_udp_ports_answer_on_loopback_and_the_host_address() {
    if !can_run() {
        return;
    }
    let p = Project::new("pp");
    p.nets
        .create_network(
            "web",
            &network(&p.name, "web", Some("10.213.6.0/24"), false),
        )
        .wait()
        .unwrap();
    let ns = Netns::new("pub");
    p.nets
        .attach(&ns.attach_req("p-web-1", "web", &["web"]))
        .wait()
        .unwrap();
    let (_httpd, _www) = ns.serve_http("published\n");
    let echo = ns.udp_echo(9053, 2);
    let published = p
        .nets
        .publish(
            "p-web-1",
            &[
                port(Some("38181"), 80, "tcp"),
                port(Some("38182"), 9053, "udp"),
            ],
        )
        .wait()
        .unwrap();
    assert_eq!(published.len(), 2);
    assert_eq!((published[0].host_port, published[0].target), (38181, 80));
    assert_eq!(published[1].protocol, "udp");

    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 38181));
    assert_eq!(eventually(|| http_get(lo)).as_deref(), Some("published\n"));
    let host = host_address().expect("the host has an IPv4 address");
    let on_host = SocketAddr::new(IpAddr::V4(host), 38181);
    assert_eq!(
        eventually(|| http_get(on_host)).as_deref(),
        Some("published\n")
    );

    // Through loopback the userland proxy forwards (the container sees the
    // gateway); through the host's address the kernel DNATs (the container
    // sees the client's own address).
    let udp_lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 38182));
    assert_eq!(
        eventually(|| udp_roundtrip(udp_lo, "one")).as_deref(),
        Some("10.213.6.1:one")
    );
    let udp_host = SocketAddr::new(IpAddr::V4(host), 38182);
    assert_eq!(
        eventually(|| udp_roundtrip(udp_host, "two")),
        Some(format!("{host}:two"))
    );
    let _ = echo.join();

    // Hairpin: a neighbour on the same network reaches the published port
    // through the host's address.
    let neighbour = Netns::new("nbr");
    p.nets
        .attach(&neighbour.attach_req("p-client-1", "web", &["client"]))
        .wait()
        .unwrap();
    let url = format!("http://{host}:38181/");
    let body = eventually(|| {
        let o = neighbour.wget(&url);
        o.status.success().then(|| stdout(&o))
    });
    assert_eq!(body.as_deref(), Some("published\n"));

    // Unpublished, the port is free again and nothing answers.
    p.nets.unpublish("p-web-1").wait().unwrap();
    assert!(std::net::TcpListener::bind(("0.0.0.0", 38181)).is_ok());
    p.nets.down().wait().unwrap();
    assert_eq!(leftovers(&p.name, &[]), Vec::<String>::new());
}

#[test]
fn a_random_host_port_is_reported() {
    if !can_run() {
        return;
    }
    let p = Project::new("pr");
    p.nets
        .create_network(
            "web",
            &network(&p.name, "web", Some("10.213.7.0/24"), false),
        )
        .wait()
        .unwrap();
    let ns = Netns::new("rnd");
    p.nets
        .attach(&ns.attach_req("p-web-1", "web", &["web"]))
        .wait()
        .unwrap();
    let (_httpd, _www) = ns.serve_http("random\n");
    let published = p
        .nets
        .publish("p-web-1", &[port(None, 80, "tcp")])
        .wait()
        .unwrap();
    let chosen = published[0].host_port;
    assert_ne!(chosen, 0);
    // `stack port` reads the same.
    assert_eq!(p.nets.ports("p-web-1").wait(), published);
    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, chosen));
    assert_eq!(eventually(|| http_get(lo)).as_deref(), Some("random\n"));
    p.nets.down().wait().unwrap();
}

#[test]
fn a_taken_host_port_fails_before_anything_changes() {
    if !can_run() {
        return;
    }
    let p = Project::new("pt");
    p.nets
        .create_network(
            "web",
            &network(&p.name, "web", Some("10.213.8.0/24"), false),
        )
        .wait()
        .unwrap();
    let ns = Netns::new("tkn");
    p.nets
        .attach(&ns.attach_req("p-web-1", "web", &["web"]))
        .wait()
        .unwrap();
    let table = format!("stack-{}", p.name);
    let rules_before = stdout(&run("nft", &["list", "table", "ip", &table]));

    let _other_program = std::net::TcpListener::bind("0.0.0.0:38191").unwrap();
    let err = p
        .nets
        .publish(
            "p-web-1",
            &[
                port(Some("38190"), 80, "tcp"),
                port(Some("38191"), 80, "tcp"),
            ],
        )
        .wait()
        .unwrap_err();
    assert!(matches!(err, NetworkError::PortTaken { .. }), "{err}");
    assert!(err.to_string().contains("0.0.0.0:38191/tcp"), "{err}");
    assert!(
        err.to_string()
            .contains("free it or publish a different port")
    );
    // Nothing changed: no rule, no held port, nothing recorded.
    assert_eq!(
        stdout(&run("nft", &["list", "table", "ip", &table])),
        rules_before
    );
    assert!(std::net::TcpListener::bind(("0.0.0.0", 38190)).is_ok());
    assert!(p.nets.ports("p-web-1").wait().is_empty());
    p.nets.down().wait().unwrap();
}

#[test]
fn under_a_drop_forward_policy_our_bridges_get_accept_rules_that_remove_cleanly() {
    use stack::network::nft::{self, NetRules, PortRule, ProjectRules, Proto};
    if !can_run() {
        return;
    }
    // A namespace of its own holds the firewall, so the host's is untouched.
    let ns = Netns::new("fw");
    let (forward, table, again, after_forward, after_tables) = in_netns(&ns, || {
        nft_script(
            "table ip filter {\n chain FORWARD {\n type filter hook forward priority 0; policy drop;\n }\n}\n",
        );
        let rules = ProjectRules {
            project: "fwtest".into(),
            networks: vec![NetRules {
                bridge: "stk-fwtest0001".into(),
                subnet: "10.213.11.0/24".parse().unwrap(),
                internal: false,
            }],
            ports: vec![PortRule {
                protocol: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                dest: Ipv4Addr::new(10, 213, 11, 2),
                dest_port: 80,
            }],
        };
        nft::apply(&rules).unwrap();
        let forward = stdout(&run("nft", &["list", "chain", "ip", "filter", "FORWARD"]));
        let table = stdout(&run("nft", &["list", "table", "ip", "stack-fwtest"]));
        // Applying again replaces, never duplicates.
        nft::apply(&rules).unwrap();
        let again = stdout(&run("nft", &["list", "chain", "ip", "filter", "FORWARD"]));
        nft::remove("fwtest").unwrap();
        (
            forward,
            table,
            again,
            stdout(&run("nft", &["list", "chain", "ip", "filter", "FORWARD"])),
            stdout(&run("nft", &["list", "tables"])),
        )
    });
    assert!(forward.contains("policy drop"), "{forward}");
    assert!(
        forward.contains("iifname \"stk-fwtest0001\" accept comment \"stack:fwtest\""),
        "{forward}"
    );
    assert!(
        forward.contains("ct state established,related accept"),
        "{forward}"
    );
    assert_eq!(forward, again);
    assert!(
        table.contains("tcp dport 8080 dnat to 10.213.11.2:80"),
        "{table}"
    );
    assert!(
        table.contains("ip saddr 10.213.11.0/24 oifname != \"stk-fwtest0001\" masquerade"),
        "{table}"
    );
    assert!(
        table.contains("iifname \"stk-fwtest0001\" oifname \"stk-*\" drop"),
        "{table}"
    );
    assert!(
        table.contains("ip daddr != 127.0.0.0/8 fib daddr type local jump ports"),
        "{table}"
    );
    // Removal takes exactly what stack added, and leaves the chain.
    assert!(!after_forward.contains("stack:fwtest"), "{after_forward}");
    assert!(after_forward.contains("policy drop"));
    assert!(!after_tables.contains("stack-fwtest"), "{after_tables}");
}

#[test]
fn ports_reserved_before_the_container_starts_are_held_then_forwarded() {
    if !can_run() {
        return;
    }
    let p = Project::new("pv");
    p.nets
        .create_network(
            "web",
            &network(&p.name, "web", Some("10.213.15.0/24"), false),
        )
        .wait()
        .unwrap();
    // Before the container exists: one random port, reserved.
    let reserved = p
        .nets
        .reserve_ports("p-web-1", &[port(None, 80, "tcp")])
        .wait()
        .unwrap();
    let chosen = reserved[0].host_port;
    assert!(std::net::TcpListener::bind(("0.0.0.0", chosen)).is_err());
    // A reservation that cannot be complete holds nothing.
    let _other_program = std::net::TcpListener::bind("0.0.0.0:38201").unwrap();
    let err = p
        .nets
        .reserve_ports(
            "p-api-1",
            &[
                port(Some("38200"), 80, "tcp"),
                port(Some("38201"), 80, "tcp"),
            ],
        )
        .wait()
        .unwrap_err();
    assert!(matches!(err, NetworkError::PortTaken { .. }), "{err}");
    assert!(std::net::TcpListener::bind(("0.0.0.0", 38200)).is_ok());
    // The container starts; publishing forwards the reserved port.
    let ns = Netns::new("rsv");
    p.nets
        .attach(&ns.attach_req("p-web-1", "web", &["web"]))
        .wait()
        .unwrap();
    let (_httpd, _www) = ns.serve_http("reserved\n");
    let published = p.nets.publish("p-web-1", &[]).wait().unwrap();
    assert_eq!(published, reserved);
    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, chosen));
    assert_eq!(eventually(|| http_get(lo)).as_deref(), Some("reserved\n"));
    p.nets.down().wait().unwrap();
    assert!(std::net::TcpListener::bind(("0.0.0.0", chosen)).is_ok());
}

/// An "outside" host: a namespace joined to the host by a veth pair of the
/// test's own, with a /30 between them. Dropping it removes both ends.
struct Outside {
    ns: Netns,
    addr: Ipv4Addr,
    host_side: Ipv4Addr,
}

impl Outside {
    fn new(third_octet: u8) -> Outside {
        let ns = Netns::new("out");
        let host_if = unique("sto");
        let (host_side, addr) = (
            Ipv4Addr::new(10, 213, third_octet, 1),
            Ipv4Addr::new(10, 213, third_octet, 2),
        );
        for args in [
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
            ],
            vec!["addr", "add", &format!("{host_side}/30"), "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec![
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                "eth0",
            ],
            vec!["-n", &ns.name, "link", "set", "eth0", "up"],
        ] {
            let o = run("ip", &args);
            assert!(o.status.success(), "ip {args:?}: {o:?}");
        }
        Outside {
            ns,
            addr,
            host_side,
        }
    }
}

#[test]
fn outbound_traffic_is_masqueraded_and_an_internal_network_has_no_way_out() {
    if !can_run() {
        return;
    }
    let p = Project::new("po");
    let outside = Outside::new(16);
    p.nets
        .create_network(
            "web",
            &network(&p.name, "web", Some("10.213.17.0/24"), false),
        )
        .wait()
        .unwrap();
    p.nets
        .create_network(
            "priv",
            &network(&p.name, "priv", Some("10.213.18.0/24"), true),
        )
        .wait()
        .unwrap();
    let c = Netns::new("oc");
    let i = Netns::new("oi");
    p.nets
        .attach(&c.attach_req("p-c-1", "web", &["c"]))
        .wait()
        .unwrap();
    p.nets
        .attach(&i.attach_req("p-i-1", "priv", &["i"]))
        .wait()
        .unwrap();
    let echo = outside.ns.udp_echo(9100, 1);
    // The outside sees the host's address, not the container's. The client
    // is a thread inside the container's namespace.
    let target = SocketAddr::from((outside.addr, 9100));
    let reply = in_netns(&c, move || eventually(|| udp_roundtrip(target, "hi")));
    assert_eq!(reply, Some(format!("{}:hi", outside.host_side)));
    let _ = echo.join();
    // The internal network's container has no route there at all.
    let o = i.busybox(&["ip", "route", "get", &outside.addr.to_string()]);
    assert!(!o.status.success(), "{}", stdout(&o));
    p.nets.down().wait().unwrap();
}
