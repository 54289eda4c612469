//! Helpers for the network tests: network namespaces standing in for
//! containers, busybox applets run inside them, and guards that clean up
//! even when a test fails.
//!
//! Every name is unique per process and call, so tests run in parallel, and
//! every guard undoes what it made in `Drop`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stack::network::{AttachRequest, Networks, Options};
use stack::spec::model::{Ipam, IpamConfig, Network};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The runtime every test's networks live on. Tests are plain threads that
/// block on it: they run blocking commands (`ip netns exec ... busybox`)
/// freely, while the DNS servers and proxies run on the runtime's own
/// workers, never starved by a test that waits.
static RT: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// `future.wait()`: runs a future to completion on the tests' runtime.
pub trait Wait: std::future::Future + Sized {
    fn wait(self) -> Self::Output {
        RT.block_on(self)
    }
}

impl<F: std::future::Future> Wait for F {}

/// The tests need root (CAP_NET_ADMIN) and the tools; without them they say
/// so and pass vacuously, loudly, except on CI where they must run.
pub fn can_run() -> bool {
    let root = nix_uid() == 0;
    let tools = ["ip", "nft", "busybox"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !(root && tools) {
        assert!(
            std::env::var_os("CI").is_none(),
            "network tests need root and ip, nft, busybox on CI"
        );
        eprintln!("SKIPPED: network tests need root and the ip, nft and busybox commands");
        return false;
    }
    true
}

fn nix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// A name unique to this process and call: `<tag><pid><n>`, short enough
/// for project names and namespace names.
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network namespace standing in for a container, with its own
/// `/etc/netns/<name>/` files (which `ip netns exec` mounts over `/etc`).
pub struct Netns {
    pub name: String,
    pub path: PathBuf,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        let o = run("ip", &["netns", "add", &name]);
        assert!(o.status.success(), "ip netns add {name}: {o:?}");
        std::fs::create_dir_all(format!("/etc/netns/{name}")).unwrap();
        let ns = Netns {
            path: PathBuf::from(format!("/run/netns/{name}")),
            name,
        };
        // Until a test writes the project's files, resolve nothing: without
        // these, `ip netns exec` would show the host's resolv.conf, and a
        // lookup would leave the machine.
        ns.write_etc("resolv.conf", "nameserver 127.0.0.1\n");
        ns.write_etc("hosts", "127.0.0.1\tlocalhost\n");
        ns
    }

    /// Writes `/etc/<file>` as the namespace's processes see it.
    pub fn write_etc(&self, file: &str, content: &str) {
        std::fs::write(format!("/etc/netns/{}/{file}", self.name), content).unwrap();
    }

    /// Runs `busybox <args>` inside the namespace.
    pub fn busybox(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name, "busybox"];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `busybox wget -q -O - <url>` inside the namespace, under a 4 s
    /// `timeout` (Debian 12's static busybox wget crashes on its own `-T`).
    pub fn wget(&self, url: &str) -> Output {
        run(
            "ip",
            &[
                "netns", "exec", &self.name, "timeout", "4", "busybox", "wget", "-q", "-O", "-",
                url,
            ],
        )
    }

    /// Starts `busybox <args>` inside the namespace in the background.
    pub fn spawn(&self, args: &[&str], stdout: Stdio) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "busybox"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ChildGuard(child)
    }

    /// An attach request for this namespace as container `container`.
    pub fn attach_req(&self, container: &str, network: &str, names: &[&str]) -> AttachRequest {
        AttachRequest {
            container: container.to_string(),
            network: network.to_string(),
            netns: self.path.clone(),
            ifname: "eth0".to_string(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ..AttachRequest::default()
        }
    }

    /// Serves HTTP (busybox httpd) on port 80 with `body` as the index.
    pub fn serve_http(&self, body: &str) -> (ChildGuard, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), body).unwrap();
        let www = dir.path().to_str().unwrap().to_string();
        let child = self.spawn(&["httpd", "-f", "-p", "80", "-h", &www], Stdio::null());
        (child, dir)
    }

    /// Runs a UDP echo server on `port` inside the namespace (replying
    /// `<sender address>:<datagram>`), from a thread
    /// that entered it (setns is per thread); it stops after `count`
    /// datagrams or 20 s of silence.
    pub fn udp_echo(&self, port: u16, count: usize) -> std::thread::JoinHandle<()> {
        let ns = std::fs::File::open(&self.path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            for _ in 0..count {
                let Ok((n, from)) = s.recv_from(&mut buf) else {
                    return;
                };
                // The source tells which path the datagram took: the
                // gateway for the userland proxy, the client for kernel DNAT.
                let mut reply = format!("{}:", from.ip()).into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.send_to(&reply, from);
            }
        });
        rx.recv().unwrap();
        h
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// Kills its process when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fake upstream resolver on loopback that answers every query with
/// NXDOMAIN and counts them, so no test query ever leaves the machine.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub count: std::sync::Arc<AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeUpstream {
    pub fn start() -> FakeUpstream {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let addr = s.local_addr().unwrap();
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, st) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = s.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                c.fetch_add(1, Ordering::Relaxed);
                let mut reply = buf[..n].to_vec();
                reply[2] = 0x81; // QR, RD
                reply[3] = 0x83; // RA, NXDOMAIN
                let _ = s.send_to(&reply, from);
            }
        });
        FakeUpstream { addr, count, stop }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A project's networks with a fresh state root; its `Drop` removes
/// whatever a failed test left (links of its group, its nftables table).
pub struct Project {
    pub name: String,
    pub nets: Networks,
    pub upstream: FakeUpstream,
    _root: tempfile::TempDir,
}

impl Project {
    pub fn new(tag: &str) -> Project {
        let name = unique(tag);
        let root = tempfile::tempdir().unwrap();
        let upstream = FakeUpstream::start();
        let options = Options {
            upstreams: Some(vec![upstream.addr]),
            host_resolv: Some(Default::default()),
            ..Options::default()
        };
        let nets = Networks::open(&name, root.path(), options).wait().unwrap();
        Project {
            name,
            nets,
            upstream,
            _root: root,
        }
    }

    /// Closes the project's `Networks` (as an exiting watcher does) and
    /// opens the record again, serving DNS or not (a new watcher, or a
    /// one-shot command such as `down`).
    pub fn reopen(&mut self, serve_dns: bool) {
        let options = Options {
            serve_dns,
            upstreams: Some(vec![self.upstream.addr]),
            host_resolv: Some(Default::default()),
            ..Options::default()
        };
        let quiet = Options {
            serve_dns: false,
            ..options.clone()
        };
        let placeholder = Networks::open(&self.name, self._root.path(), quiet)
            .wait()
            .unwrap();
        std::mem::replace(&mut self.nets, placeholder)
            .close()
            .wait();
        let fresh = Networks::open(&self.name, self._root.path(), options)
            .wait()
            .unwrap();
        std::mem::replace(&mut self.nets, fresh).close().wait();
    }

    pub fn root(&self) -> &Path {
        self._root.path()
    }

    /// Writes the container's resolv.conf and hosts into its namespace.
    pub fn write_dns_files(&self, ns: &Netns, container: &str) {
        let resolv = self.nets.resolv_conf(container, &Default::default()).wait();
        ns.write_etc("resolv.conf", &resolv);
        let hosts = self
            .nets
            .hosts_file(container, container, None, &BTreeMap::new())
            .wait();
        ns.write_etc("hosts", &hosts);
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let group = stack::network::names::link_group(&self.name).to_string();
        let _ = run("ip", &["link", "del", "group", &group]);
        let _ = run(
            "nft",
            &[
                "delete",
                "table",
                "ip",
                &stack::network::names::table_name(&self.name),
            ],
        );
    }
}

/// A bridge network spec with the given subnet (or the default pool).
pub fn network(project: &str, key: &str, subnet: Option<&str>, internal: bool) -> Network {
    Network {
        name: format!("{project}_{key}"),
        internal,
        ipam: subnet.map(|s| Ipam {
            config: vec![IpamConfig {
                subnet: Some(s.to_string()),
                ..IpamConfig::default()
            }],
            ..Ipam::default()
        }),
        ..Network::default()
    }
}

/// Retries `f` until it returns `Some`, for servers that take a moment to
/// start; not a timing assertion, just patience (up to ~10 s).
pub fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..100 {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// `GET /` over HTTP/1.0, the body or `None`.
pub fn http_get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

/// The addresses busybox nslookup printed for the answer.
pub fn nslookup_addresses(out: &str) -> Vec<Ipv4Addr> {
    // The server's own address comes first, before the `Name:` line.
    let answer = out.split_once("Name:").map(|(_, a)| a).unwrap_or("");
    answer
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .filter_map(|a| a.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The host's own IPv4 address: the first one on the interface of its
/// default route (or any global one that is not a stack bridge).
pub fn host_address() -> Option<Ipv4Addr> {
    let route = stdout(&run("ip", &["-4", "-o", "route", "show", "default"]));
    let dev = route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .map(String::from);
    let mut args = vec!["-4", "-o", "addr", "show", "scope", "global"];
    if let Some(d) = &dev {
        args.extend(["dev", d.as_str()]);
    }
    let addrs = stdout(&run("ip", &args));
    addrs.lines().filter(|l| !l.contains("stk-")).find_map(|l| {
        let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
        cidr.split('/').next()?.parse().ok()
    })
}

/// What `ip link` and `nft list ruleset` still show of a project.
pub fn leftovers(project: &str, bridges: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let links = stdout(&run("ip", &["-o", "link", "show"]));
    for b in bridges {
        if links.contains(&format!(": {b}:")) || links.contains(&format!(": {b}@")) {
            left.push(format!("link {b}"));
        }
    }
    if links.contains(&format!("stack:{project}:")) {
        left.push("a link labelled for the project".into());
    }
    let rules = stdout(&run("nft", &["list", "ruleset"]));
    if rules.contains(&stack::network::names::table_name(project)) {
        left.push("the nftables table".into());
    }
    if rules.contains(&format!("stack:{project}\"")) {
        left.push("a rule in the host's FORWARD chain".into());
    }
    left
}

/// Runs `f` on a thread that entered `ns` (setns is per thread, and the
/// processes it starts inherit the namespace): nftables rules made there
/// are that namespace's, never the host's.
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(&ns.path).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// `nft -f -` with `script`.
pub fn nft_script(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft -f: {script}");
}
