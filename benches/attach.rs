//! Attaching one container to a bridge network: stack in-process (veth,
//! addresses, routes, DNS record, one netlink socket opened inside the
//! namespace) against the same with `ip` commands, in the same run.
//! Namespaces are made (unmeasured) with `ip netns add`, standing in for
//! the container runtime's. Needs root. Goal: under 3 ms per attach.
//!
//! `cargo bench --bench attach` (RUNS=n to change the number of runs).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use stack::network::{AttachRequest, Networks, Options};
use stack::spec::model::{Ipam, IpamConfig, Network};

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Ns(String);
impl Ns {
    fn new(name: String) -> Ns {
        sh(&["ip", "netns", "add", &name]);
        Ns(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }
}
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn main() {
    if std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(true)
    {
        eprintln!("the attach benchmark needs root; skipped");
        return;
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let project = format!("bench{}", std::process::id());
    let root = tempfile::tempdir().unwrap();
    let spec = Network {
        name: format!("{project}_default"),
        ipam: Some(Ipam {
            config: vec![IpamConfig {
                subnet: Some("10.214.0.0/16".into()),
                ..IpamConfig::default()
            }],
            ..Ipam::default()
        }),
        ..Network::default()
    };
    let options = Options {
        // The DNS record is part of the attach; serving it is not.
        serve_dns: false,
        upstreams: Some(vec![]),
        ..Options::default()
    };
    let (nets, info) = rt.block_on(async {
        let nets = Networks::open(&project, root.path(), options)
            .await
            .unwrap();
        let info = nets.create_network("default", &spec).await.unwrap();
        (nets, info)
    });

    // Warm-up, then stack and ip alternating, so that both see the same
    // load from whatever else runs on the machine.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut namespaces = Vec::new();
    let gw = info.gateway.to_string();
    for i in 0..runs + 3 {
        let ns = Ns::new(format!("{project}s{i}"));
        let container = format!("{project}-web-{i}");
        let req = AttachRequest {
            container: container.clone(),
            network: "default".into(),
            netns: ns.path(),
            ifname: "eth0".into(),
            names: vec!["web".into(), container],
            ..AttachRequest::default()
        };
        let t = Instant::now();
        rt.block_on(nets.attach(&req)).unwrap();
        let stack_took = t.elapsed();
        namespaces.push(ns);

        // The same with ip commands, on the same bridge, addresses from another range.
        let ns = Ns::new(format!("{project}i{i}"));
        let host = format!("stbench{i}");
        let ip = format!("10.214.200.{}/16", i + 2);
        let t = Instant::now();
        sh(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns.0,
        ]);
        sh(&["ip", "link", "set", &host, "master", &info.bridge, "up"]);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &ns.0, "addr", "add", &ip, "dev", "eth0"]);
        sh(&["ip", "-n", &ns.0, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &ns.0, "route", "add", "default", "via", &gw]);
        let ip_took = t.elapsed();
        namespaces.push(ns);
        if i >= 3 {
            ours.push(stack_took);
            theirs.push(ip_took);
        }
    }

    let (a_min, b_min) = (*ours.iter().min().unwrap(), *theirs.iter().min().unwrap());
    let a = median(ours);
    let b = median(theirs);
    println!("attach one endpoint (veth, address, route, DNS record), median of {runs} runs:");
    println!("  stack in-process: {:>8.3} ms", a.as_secs_f64() * 1e3);
    println!("  ip commands:      {:>8.3} ms", b.as_secs_f64() * 1e3);
    println!(
        "  ratio stack/ip:   {:>8.3}   (goal: stack under 3 ms)",
        a.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  fastest run: stack {:.3} ms, ip {:.3} ms (the median suffers most from a busy machine)",
        a_min.as_secs_f64() * 1e3,
        b_min.as_secs_f64() * 1e3
    );

    // Teardown of everything, in one batch (namespaces first, as the
    // runtime's containers would exit).
    let n = namespaces.len();
    drop(namespaces);
    let t = Instant::now();
    rt.block_on(nets.down()).unwrap();
    println!(
        "  down after {n} endpoints (bridge and leftover veths, one batch): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}
