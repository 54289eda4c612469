//! Bridge networks for real: namespaces stand in for containers, busybox
//! applets inside them act as clients and servers. Traffic stays between
//! the namespaces these tests create, their bridges and loopback; names
//! that are not the project's go to a fake resolver on loopback.

#[path = "support/network.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;

use support::*;

#[test]
fn two_endpoints_reach_each_other_by_name_and_alias() {
    if !can_run() {
        return;
    }
    let p = Project::new("nb");
    let spec = network(&p.name, "front", Some("10.213.1.0/24"), false);
    let info = p.nets.create_network("front", &spec).wait().unwrap();
    assert_eq!(info.gateway, Ipv4Addr::new(10, 213, 1, 1));
    let web = Netns::new("web");
    let api = Netns::new("api");
    let web_ep = p
        .nets
        .attach(&web.attach_req("p-web-1", "front", &["web", "p-web-1"]))
        .wait()
        .unwrap();
    let api_ep = p
        .nets
        .attach(&api.attach_req("p-api-1", "front", &["api", "p-api-1", "backend"]))
        .wait()
        .unwrap();
    assert_ne!(web_ep.ip, api_ep.ip);
    p.write_dns_files(&web, "p-web-1");
    p.write_dns_files(&api, "p-api-1");

    // The endpoint looks like a container's: eth0 with address, MAC, route.
    let addr = stdout(&web.busybox(&["ip", "addr", "show", "eth0"]));
    assert!(addr.contains(&format!("inet {}/24", web_ep.ip)), "{addr}");
    assert!(addr.contains(&web_ep.mac), "{addr}");
    let routes = stdout(&web.busybox(&["ip", "route"]));
    assert!(routes.contains("default via 10.213.1.1"), "{routes}");

    // DNS by service name and by alias, through the server on the gateway.
    let out = stdout(&web.busybox(&["nslookup", "api"]));
    assert_eq!(nslookup_addresses(&out), vec![api_ep.ip], "{out}");
    let out = stdout(&web.busybox(&["nslookup", "backend"]));
    assert_eq!(nslookup_addresses(&out), vec![api_ep.ip], "{out}");

    // Reverse lookups name the container.
    let out = stdout(&web.busybox(&["nslookup", &api_ep.ip.to_string()]));
    assert!(out.contains("name = p-api-1"), "{out}");

    // HTTP by name (busybox wget resolves through resolv.conf).
    let (_httpd, _www) = api.serve_http("hello from api\n");
    let body = eventually(|| {
        let o = web.wget("http://api/");
        o.status.success().then(|| stdout(&o))
    });
    assert_eq!(body.as_deref(), Some("hello from api\n"));

    // Raw TCP by alias with nc, the other way round.
    let mut listener = web.spawn(&["nc", "-l", "-p", "7000"], Stdio::piped());
    let sent = eventually(|| {
        let o = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "echo ping-by-alias | ip netns exec {} busybox nc -w 2 p-web-1 7000",
                    api.name
                ),
            ])
            .output()
            .unwrap();
        o.status.success().then_some(())
    });
    assert!(sent.is_some(), "nc could not connect to p-web-1:7000");
    let mut got = String::new();
    use std::io::Read;
    listener
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "ping-by-alias\n");

    // /etc/hosts carries the peer too, for when the DNS server restarts.
    let hosts = p
        .nets
        .hosts_file("p-web-1", "web", None, &Default::default())
        .wait();
    assert!(
        hosts.contains(&format!("{}\tapi backend p-api-1", api_ep.ip)),
        "{hosts}"
    );

    // Names follow endpoints: detached, api is no longer the project's name
    // and goes to the (fake) upstream, which says NXDOMAIN.
    let before = p.upstream.count.load(std::sync::atomic::Ordering::Relaxed);
    p.nets.detach("p-api-1", "front").wait().unwrap();
    let out = web.busybox(&["nslookup", "api"]);
    assert!(nslookup_addresses(&stdout(&out)).is_empty(), "{out:?}");
    let after = p.upstream.count.load(std::sync::atomic::Ordering::Relaxed);
    assert!(after > before, "not forwarded: {out:?}");
    // The gateway stays reachable when a port leaves the bridge (its MAC
    // is fixed, so neighbours' ARP entries stay right).
    let out = stdout(&web.busybox(&["nslookup", "p-web-1"]));
    assert_eq!(nslookup_addresses(&out), vec![web_ep.ip], "{out}");

    p.nets.down().wait().unwrap();
    assert_eq!(
        leftovers(&p.name, std::slice::from_ref(&info.bridge)),
        Vec::<String>::new()
    );
}

#[test]
fn three_replicas_answer_through_one_name_in_rotating_order() {
    if !can_run() {
        return;
    }
    let p = Project::new("nr");
    let spec = network(&p.name, "default", Some("10.213.2.0/24"), false);
    p.nets.create_network("default", &spec).wait().unwrap();
    let client = Netns::new("cli");
    p.nets
        .attach(&client.attach_req("p-client-1", "default", &["client"]))
        .wait()
        .unwrap();
    p.write_dns_files(&client, "p-client-1");
    let mut replicas = Vec::new();
    let mut ips = Vec::new();
    for i in 1..=3 {
        let ns = Netns::new("db");
        let name = format!("p-db-{i}");
        let ep = p
            .nets
            .attach(&ns.attach_req(&name, "default", &["db", &name]))
            .wait()
            .unwrap();
        ips.push(ep.ip);
        replicas.push(ns);
    }
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let out = stdout(&client.busybox(&["nslookup", "-type=a", "db"]));
        let mut got = nslookup_addresses(&out);
        firsts.insert(got[0]);
        got.sort();
        assert_eq!(got, ips, "{out}");
    }
    assert!(firsts.len() > 1, "the order never rotated: {firsts:?}");
    // Every replica answers on its own, through the name of its replica.
    let servers: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(i, ns)| ns.serve_http(&format!("replica {}\n", i + 1)))
        .collect();
    for i in 1..=3 {
        let url = format!("http://p-db-{i}/");
        let body = eventually(|| {
            let o = client.wget(&url);
            o.status.success().then(|| stdout(&o))
        });
        assert_eq!(body, Some(format!("replica {i}\n")));
    }
    drop(servers);
    p.nets.down().wait().unwrap();
}

#[test]
fn separate_networks_can_neither_resolve_nor_reach_each_other() {
    if !can_run() {
        return;
    }
    let p = Project::new("ni");
    let a = p
        .nets
        .create_network("a", &network(&p.name, "a", Some("10.213.3.0/24"), false))
        .wait()
        .unwrap();
    let b = p
        .nets
        .create_network("b", &network(&p.name, "b", Some("10.213.4.0/24"), false))
        .wait()
        .unwrap();
    let on_a = Netns::new("na");
    let on_b = Netns::new("nb");
    p.nets
        .attach(&on_a.attach_req("p-front-1", "a", &["front"]))
        .wait()
        .unwrap();
    let b_ep = p
        .nets
        .attach(&on_b.attach_req("p-back-1", "b", &["back"]))
        .wait()
        .unwrap();
    p.write_dns_files(&on_a, "p-front-1");
    p.write_dns_files(&on_b, "p-back-1");
    let (_httpd, _www) = on_b.serve_http("secret\n");

    // The host is on both networks: back's server is up (positive control).
    let target = SocketAddr::new(IpAddr::V4(b_ep.ip), 80);
    assert_eq!(eventually(|| http_get(target)).as_deref(), Some("secret\n"));
    // back itself resolves on b.
    let out = stdout(&on_b.busybox(&["nslookup", "back"]));
    assert_eq!(nslookup_addresses(&out), vec![b_ep.ip]);

    // front (only on a) does not resolve back: a's server does not know it
    // and the query goes to the upstream, which says NXDOMAIN.
    let out = stdout(&on_a.busybox(&["nslookup", "back"]));
    assert!(nslookup_addresses(&out).is_empty(), "{out}");
    // Nor does b's server answer front, which is not on b.
    let gw_b = b.gateway.to_string();
    let out = stdout(&on_a.busybox(&["nslookup", "back", &gw_b]));
    assert!(nslookup_addresses(&out).is_empty(), "{out}");
    // And back's address is unreachable from a.
    let url = format!("http://{}/", b_ep.ip);
    let o = on_a.wget(&url);
    // Dropped packets: the connection hangs until `timeout` kills it (124),
    // as opposed to a crash or a refusal.
    assert_eq!(o.status.code(), Some(124), "front reached back? {o:?}");
    assert!(stdout(&o).is_empty());

    p.nets.down().wait().unwrap();
    assert_eq!(
        leftovers(&p.name, &[a.bridge.clone(), b.bridge.clone()]),
        Vec::<String>::new()
    );
}

#[test]
fn an_internal_network_has_no_default_route() {
    if !can_run() {
        return;
    }
    let p = Project::new("nn");
    let info = p
        .nets
        .create_network(
            "private",
            &network(&p.name, "private", Some("10.213.5.0/24"), true),
        )
        .wait()
        .unwrap();
    assert!(info.internal);
    let one = Netns::new("i1");
    let two = Netns::new("i2");
    p.nets
        .attach(&one.attach_req("p-one-1", "private", &["one"]))
        .wait()
        .unwrap();
    let two_ep = p
        .nets
        .attach(&two.attach_req("p-two-1", "private", &["two"]))
        .wait()
        .unwrap();
    let routes = stdout(&one.busybox(&["ip", "route"]));
    assert!(!routes.contains("default"), "{routes}");
    assert!(routes.contains("10.213.5.0/24"), "{routes}");
    // Inside the network, neighbours still talk and resolve.
    p.write_dns_files(&one, "p-one-1");
    let out = stdout(&one.busybox(&["nslookup", "two"]));
    assert_eq!(nslookup_addresses(&out), vec![two_ep.ip]);
    let (_httpd, _www) = two.serve_http("inside\n");
    let body = eventually(|| {
        let o = one.wget("http://two/");
        o.status.success().then(|| stdout(&o))
    });
    assert_eq!(body.as_deref(), Some("inside\n"));
    p.nets.down().wait().unwrap();
}

#[test]
fn default_pool_subnet_avoids_host_routes_and_everything_is_removed_by_down() {
    if !can_run() {
        return;
    }
    let p = Project::new("nd");
    let info = p
        .nets
        .create_network("default", &network(&p.name, "default", None, false))
        .wait()
        .unwrap();
    // Idempotent: the same network again.
    let again = p
        .nets
        .create_network("default", &network(&p.name, "default", None, false))
        .wait()
        .unwrap();
    assert_eq!(info, again);
    // The subnet overlaps nothing else the host routes.
    let routes = stdout(&run("ip", &["-4", "-o", "route", "show"]));
    let others: Vec<&str> = routes
        .lines()
        .filter(|l| !l.contains(&info.bridge) && !l.starts_with("default"))
        .collect();
    for l in &others {
        let dest: ipnetwork::Ipv4Network = match l.split_whitespace().next().unwrap().parse() {
            Ok(n) => n,
            Err(_) => continue,
        };
        assert!(
            !stack::network::ipam::overlaps(dest, info.subnet),
            "{} overlaps {l}",
            info.subnet
        );
    }
    let ns = Netns::new("dp");
    let ep = p
        .nets
        .attach(&ns.attach_req("p-app-1", "default", &["app"]))
        .wait()
        .unwrap();
    assert!(info.subnet.contains(ep.ip));
    // The label is visible on the host.
    let link = stdout(&run("ip", &["-d", "link", "show", &ep.host_ifname]));
    assert!(
        link.contains(&format!("stack:{}:default:p-app-1", p.name)),
        "{link}"
    );
    let ruleset = stdout(&run(
        "nft",
        &["list", "table", "ip", &format!("stack-{}", p.name)],
    ));
    assert!(ruleset.contains("masquerade"), "{ruleset}");

    // down while the "container" still runs: veth and bridge go in one batch.
    p.nets.down().wait().unwrap();
    // And again, with nothing left to remove.
    p.nets.down().wait().unwrap();
    assert_eq!(
        leftovers(&p.name, std::slice::from_ref(&info.bridge)),
        Vec::<String>::new()
    );
    let left = stdout(&run("ip", &["-o", "link", "show"]));
    assert!(!left.contains(&ep.host_ifname), "{left}");
    // The namespace itself is the test's to remove; the guard does, and
    // after it nothing of the test remains in `ip netns` either.
    let name = ns.name.clone();
    drop(ns);
    assert!(!stdout(&run("ip", &["netns", "list"])).contains(&name));
    assert!(
        !p.root()
            .join("network")
            .join(format!("{}.json", p.name))
            .exists()
    );
}

#[test]
fn a_container_on_two_networks_gets_eth1_and_resolves_on_both() {
    if !can_run() {
        return;
    }
    let p = Project::new("nm");
    let a = p
        .nets
        .create_network("a", &network(&p.name, "a", Some("10.213.9.0/24"), false))
        .wait()
        .unwrap();
    p.nets
        .create_network("b", &network(&p.name, "b", Some("10.213.10.0/24"), false))
        .wait()
        .unwrap();
    let both = Netns::new("bo");
    let x = Netns::new("x");
    let y = Netns::new("y");
    let both_a = p
        .nets
        .attach(&both.attach_req("p-both-1", "a", &["both"]))
        .wait()
        .unwrap();
    let mut on_b = both.attach_req("p-both-1", "b", &["both"]);
    on_b.ifname = "eth1".into();
    let both_b = p.nets.attach(&on_b).wait().unwrap();
    let x_ep = p
        .nets
        .attach(&x.attach_req("p-x-1", "a", &["x"]))
        .wait()
        .unwrap();
    let y_ep = p
        .nets
        .attach(&y.attach_req("p-y-1", "b", &["y"]))
        .wait()
        .unwrap();
    for (ns, c) in [(&both, "p-both-1"), (&x, "p-x-1"), (&y, "p-y-1")] {
        p.write_dns_files(ns, c);
    }

    let addrs = stdout(&both.busybox(&["ip", "-4", "addr"]));
    assert!(addrs.contains(&format!("inet {}/24", both_a.ip)), "{addrs}");
    assert!(addrs.contains(&format!("inet {}/24", both_b.ip)), "{addrs}");
    // One default route: through the first network's gateway.
    let routes = stdout(&both.busybox(&["ip", "route"]));
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    assert!(
        routes.contains(&format!("default via {}", a.gateway)),
        "{routes}"
    );
    // Its resolver (a's server) answers for both of its networks.
    let out = stdout(&both.busybox(&["nslookup", "y"]));
    assert_eq!(nslookup_addresses(&out), vec![y_ep.ip], "{out}");
    let out = stdout(&both.busybox(&["nslookup", "x"]));
    assert_eq!(nslookup_addresses(&out), vec![x_ep.ip], "{out}");
    // y sees `both` at its address on b, the network they share.
    let out = stdout(&y.busybox(&["nslookup", "both"]));
    assert_eq!(nslookup_addresses(&out), vec![both_b.ip], "{out}");
    // And traffic flows over eth1.
    let (_httpd, _www) = y.serve_http("over eth1\n");
    let body = eventually(|| {
        let o = both.wget("http://y/");
        o.status.success().then(|| stdout(&o))
    });
    assert_eq!(body.as_deref(), Some("over eth1\n"));
    p.nets.down().wait().unwrap();
}

#[test]
fn a_restarted_watcher_serves_the_recorded_names_and_another_process_can_bring_it_down() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("nw");
    let info = p
        .nets
        .create_network(
            "default",
            &network(&p.name, "default", Some("10.213.12.0/24"), false),
        )
        .wait()
        .unwrap();
    let one = Netns::new("w1");
    let two = Netns::new("w2");
    p.nets
        .attach(&one.attach_req("p-one-1", "default", &["one"]))
        .wait()
        .unwrap();
    let two_ep = p
        .nets
        .attach(&two.attach_req("p-two-1", "default", &["two"]))
        .wait()
        .unwrap();
    p.write_dns_files(&one, "p-one-1");
    // The watcher exits: nothing answers, but the network stays.
    p.reopen(false);
    let out = stdout(&one.busybox(&["nslookup", "two"]));
    assert!(nslookup_addresses(&out).is_empty(), "{out}");
    // A new watcher opens the same record and serves the names again.
    p.reopen(true);
    let out = stdout(&one.busybox(&["nslookup", "two"]));
    assert_eq!(nslookup_addresses(&out), vec![two_ep.ip], "{out}");
    // A one-shot `down` (no DNS of its own) removes everything.
    p.reopen(false);
    p.nets.down().wait().unwrap();
    assert_eq!(
        leftovers(&p.name, std::slice::from_ref(&info.bridge)),
        Vec::<String>::new()
    );
}

#[test]
fn an_external_network_is_used_but_never_created_or_removed() {
    if !can_run() {
        return;
    }
    let owner = Project::new("xo");
    let user = Project::new("xu");
    let shared_name = unique("shared");
    let mut spec = network(&owner.name, "shared", Some("10.213.19.0/24"), false);
    spec.name = shared_name.clone();
    let made = owner.nets.create_network("shared", &spec).wait().unwrap();

    // The user project refers to it as external, under its host name.
    let external = stack::spec::model::Network {
        name: shared_name.clone(),
        external: true,
        ..Default::default()
    };
    let found = user
        .nets
        .create_network("shared", &external)
        .wait()
        .unwrap();
    assert!(found.external);
    assert_eq!(
        (found.bridge.as_str(), found.subnet),
        (made.bridge.as_str(), made.subnet)
    );
    let ns = Netns::new("xu");
    let ep = user
        .nets
        .attach(&ns.attach_req("xu-app-1", "shared", &["app"]))
        .wait()
        .unwrap();
    assert!(made.subnet.contains(ep.ip));
    // The user's down removes its endpoint, not the owner's bridge.
    user.nets.down().wait().unwrap();
    let links = stdout(&run("ip", &["-o", "link", "show"]));
    assert!(links.contains(&format!(": {}:", made.bridge)), "{links}");
    assert!(!links.contains(&ep.host_ifname), "{links}");
    // A missing external network is an error that says what to do.
    let missing = stack::spec::model::Network {
        name: unique("nothere"),
        external: true,
        ..Default::default()
    };
    let err = user
        .nets
        .create_network("gone", &missing)
        .wait()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("create it first or drop `external: true`"),
        "{err}"
    );
    // So are what stack does not support yet.
    let v6 = stack::spec::model::Network {
        name: unique("v6"),
        enable_ipv6: Some(true),
        ..Default::default()
    };
    let err = user
        .nets
        .create_network("v6", &v6)
        .wait()
        .unwrap_err()
        .to_string();
    assert!(err.contains("IPv4 only"), "{err}");
    let overlay = stack::spec::model::Network {
        name: unique("ov"),
        driver: Some("overlay".into()),
        ..Default::default()
    };
    let err = user
        .nets
        .create_network("ov", &overlay)
        .wait()
        .unwrap_err()
        .to_string();
    assert!(err.contains("supports `bridge` only"), "{err}");
    owner.nets.down().wait().unwrap();
    assert_eq!(
        leftovers(&owner.name, std::slice::from_ref(&made.bridge)),
        Vec::<String>::new()
    );
}
