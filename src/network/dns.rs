//! Service discovery: a DNS server per network, on its gateway address.
//!
//! Compose promises that a container finds its peers by service name,
//! container name, host name and network alias, on each network it shares
//! with them and on no other. stack keeps these names in a [`Registry`]
//! (updated as endpoints are attached and detached, so names follow
//! containers without restarting anyone) and serves them with a hickory
//! server bound to `<gateway>:53` of each network, UDP and TCP.
//!
//! Scope is decided per query, from who asks: the source address identifies
//! the asking container's endpoint on that network, and the answer comes
//! from every network that container is on (its address on the network it
//! shares with the target). A query from an address outside the network's
//! subnet is refused, so one network's server tells nothing to another's
//! containers. A name with several endpoints (replicas) answers with all of
//! their addresses, rotated by one on every query so clients that take the
//! first spread their load.
//!
//! Names that are not the project's are forwarded, query bytes as they
//! came, to upstream resolvers: the container's `dns:` servers if it has
//! any, else the host's from `/etc/resolv.conf` (read when the server
//! starts), and the answer is relayed. Our answers carry a short TTL, since
//! the records change as containers come and go.
//!
//! The sockets are bound with `SO_REUSEPORT`, so a second server of the
//! same network (the next watcher, or `up` bridging the replacement of the
//! watcher) binds while the first still serves, and the kernel hands each
//! query to one of them: replacing the server never leaves a moment when
//! nothing answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, PTR};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ipnetwork::Ipv4Network;

use super::NetworkError;

/// TTL of the project's own records, in seconds.
pub const TTL: u32 = 5;
/// How long an upstream resolver may take before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct NetEntry {
    subnet: Option<Ipv4Network>,
    /// By container name.
    endpoints: BTreeMap<String, DnsEndpoint>,
}

#[derive(Debug, Clone)]
struct DnsEndpoint {
    ip: Ipv4Addr,
    /// Lower-cased.
    names: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    networks: BTreeMap<String, NetEntry>,
    /// A container's own upstream resolvers (`dns:`).
    upstreams: BTreeMap<String, Vec<SocketAddr>>,
}

/// Who is on which network under which names; shared by all DNS servers of
/// a project and cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<RwLock<Inner>>,
    rotation: Arc<AtomicUsize>,
    /// Bumped on every change, for whoever keeps `/etc/hosts` files current.
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            inner: Arc::default(),
            rotation: Arc::default(),
            generation: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

/// Write access to the registry that announces the change once the lock is
/// released, so a woken watcher always reads the new state.
struct Changing<'a> {
    guard: Option<std::sync::RwLockWriteGuard<'a, Inner>>,
    generation: &'a tokio::sync::watch::Sender<u64>,
}

impl std::ops::Deref for Changing<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        // Some until drop.
        self.guard.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Changing<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.generation.send_modify(|g| *g += 1);
    }
}

/// What a DNS server should do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name is the project's: these addresses (possibly none for the
    /// asked record type).
    Records(Vec<Ipv4Addr>),
    /// A reverse lookup of one of the project's addresses: its names.
    Names(Vec<String>),
    /// Not the project's: ask these resolvers (the asker's own, or empty
    /// for the server's defaults).
    Forward(Vec<SocketAddr>),
    /// The asker is not on this network.
    Refused,
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    fn write(&self) -> Changing<'_> {
        Changing {
            // A panic while holding the lock leaves plain maps behind, still usable.
            guard: Some(self.inner.write().unwrap_or_else(|p| p.into_inner())),
            generation: &self.generation,
        }
    }

    /// A receiver that wakes whenever names change: the watcher rewrites
    /// containers' `/etc/hosts` (see [`Registry::peers`]) when it does.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Declares a network and its subnet.
    pub fn set_network(&self, network: &str, subnet: Ipv4Network) {
        self.write()
            .networks
            .entry(network.to_string())
            .or_default()
            .subnet = Some(subnet);
    }

    /// Forgets a network and its endpoints.
    pub fn remove_network(&self, network: &str) {
        self.write().networks.remove(network);
    }

    /// Adds (or replaces) `container`'s endpoint on `network`.
    pub fn add_endpoint(&self, network: &str, container: &str, ip: Ipv4Addr, names: &[String]) {
        let mut names: Vec<String> = names.iter().map(|n| normalize(n)).collect();
        names.sort();
        names.dedup();
        self.write()
            .networks
            .entry(network.to_string())
            .or_default()
            .endpoints
            .insert(container.to_string(), DnsEndpoint { ip, names });
    }

    /// Whether `container` is served on `network` at `ip`.
    pub fn has_endpoint(&self, network: &str, container: &str, ip: Ipv4Addr) -> bool {
        self.read()
            .networks
            .get(network)
            .and_then(|n| n.endpoints.get(container))
            .is_some_and(|e| e.ip == ip)
    }

    /// Removes `container`'s endpoint on `network`.
    pub fn remove_endpoint(&self, network: &str, container: &str) {
        let mut inner = self.write();
        if let Some(n) = inner.networks.get_mut(network) {
            n.endpoints.remove(container);
        }
        let still_attached = inner
            .networks
            .values()
            .any(|n| n.endpoints.contains_key(container));
        if !still_attached {
            inner.upstreams.remove(container);
        }
    }

    /// Sets the resolvers `container`'s other queries go to (`dns:`).
    pub fn set_upstreams(&self, container: &str, servers: &[IpAddr]) {
        let servers: Vec<SocketAddr> = servers.iter().map(|ip| SocketAddr::new(*ip, 53)).collect();
        let mut inner = self.write();
        if servers.is_empty() {
            inner.upstreams.remove(container);
        } else {
            inner.upstreams.insert(container.to_string(), servers);
        }
    }

    /// The answer to `name` asked from `src` on `network`'s server.
    pub fn answer(&self, network: &str, src: IpAddr, name: &str) -> Answer {
        let name = normalize(name);
        if let Some(ip) = reverse_name(&name) {
            return self.reverse(network, src, ip);
        }
        let inner = self.read();
        let Some((net, asker, scope)) = scope(&inner, network, src) else {
            return Answer::Refused;
        };
        // One address per container: the one on the first shared network,
        // with this server's network first.
        let mut found: BTreeMap<&str, Ipv4Addr> = BTreeMap::new();
        for n in std::iter::once(net).chain(scope.iter().copied()) {
            for (container, e) in &n.endpoints {
                if e.names.contains(&name) {
                    found.entry(container.as_str()).or_insert(e.ip);
                }
            }
        }
        if found.is_empty() {
            return Answer::Forward(upstreams_of(&inner, asker));
        }
        let mut ips: Vec<Ipv4Addr> = found
            .into_values()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let turn = self.rotation.fetch_add(1, Ordering::Relaxed);
        let len = ips.len();
        ips.rotate_left(turn % len);
        Answer::Records(ips)
    }

    /// The names of the endpoint with address `ip`, if the asker shares a
    /// network with it: the container's name first, as docker answers PTR.
    fn reverse(&self, network: &str, src: IpAddr, ip: Ipv4Addr) -> Answer {
        let inner = self.read();
        let Some((_, asker, scope)) = scope(&inner, network, src) else {
            return Answer::Refused;
        };
        for n in scope {
            if let Some((container, _)) = n.endpoints.iter().find(|(_, e)| e.ip == ip) {
                return Answer::Names(vec![container.clone()]);
            }
        }
        Answer::Forward(upstreams_of(&inner, asker))
    }

    /// The names of `container`'s peers on all its networks, for its
    /// `/etc/hosts`: address and names, itself excluded.
    pub fn peers(&self, container: &str) -> Vec<(Ipv4Addr, Vec<String>)> {
        let inner = self.read();
        let mut out: BTreeMap<Ipv4Addr, BTreeSet<String>> = BTreeMap::new();
        for n in inner.networks.values() {
            if !n.endpoints.contains_key(container) {
                continue;
            }
            for (c, e) in &n.endpoints {
                if c != container {
                    out.entry(e.ip).or_default().extend(e.names.iter().cloned());
                }
            }
        }
        out.into_iter()
            .map(|(ip, names)| (ip, names.into_iter().collect()))
            .collect()
    }
}

/// The networks a query from `src` on `network`'s server may see: the
/// server's network entry, the asking container (if `src` is one of its
/// endpoints) and every network that container is on. `None`: the asker is
/// not on this network at all.
fn scope<'a>(
    inner: &'a Inner,
    network: &str,
    src: IpAddr,
) -> Option<(&'a NetEntry, Option<String>, Vec<&'a NetEntry>)> {
    let net = inner.networks.get(network)?;
    let IpAddr::V4(src) = src else {
        return None;
    };
    if let Some(subnet) = net.subnet
        && !subnet.contains(src)
    {
        return None;
    }
    let asker = net
        .endpoints
        .iter()
        .find(|(_, e)| e.ip == src)
        .map(|(c, _)| c.clone());
    let scope = match &asker {
        Some(c) => inner
            .networks
            .values()
            .filter(|n| n.endpoints.contains_key(c))
            .collect(),
        None => vec![net],
    };
    Some((net, asker, scope))
}

fn upstreams_of(inner: &Inner, asker: Option<String>) -> Vec<SocketAddr> {
    asker
        .and_then(|c| inner.upstreams.get(&c).cloned())
        .unwrap_or_default()
}

/// The address a reverse-lookup name (`4.3.2.1.in-addr.arpa`) asks about.
fn reverse_name(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut octets: Vec<u8> = rest
        .split('.')
        .map(|o| o.parse().ok())
        .collect::<Option<_>>()?;
    if octets.len() != 4 {
        return None;
    }
    octets.reverse();
    Some(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
}

/// One network's DNS server. Stops when dropped or with [`DnsServer::stop`].
pub struct DnsServer {
    server: Option<hickory_server::Server<Handler>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

pub struct Handler {
    network: String,
    registry: Registry,
    upstreams: Vec<SocketAddr>,
}

impl DnsServer {
    /// Serves `network`'s names on `addr` (UDP and TCP). `upstreams` are
    /// the resolvers for names that are not the project's.
    pub async fn start(
        network: &str,
        addr: SocketAddr,
        registry: Registry,
        upstreams: Vec<SocketAddr>,
    ) -> Result<DnsServer, NetworkError> {
        let bind_err = |source| NetworkError::DnsBind {
            network: network.to_string(),
            addr,
            source,
        };
        let udp = shared_socket(addr, nix::sys::socket::SockType::Datagram)
            .and_then(|fd| tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd)))
            .map_err(bind_err)?;
        let tcp = shared_socket(addr, nix::sys::socket::SockType::Stream)
            .and_then(|fd| {
                nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(1024)?)?;
                tokio::net::TcpListener::from_std(std::net::TcpListener::from(fd))
            })
            .map_err(bind_err)?;
        let mut server = hickory_server::Server::new(Handler {
            network: network.to_string(),
            registry,
            upstreams,
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        Ok(DnsServer {
            server: Some(server),
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and releases the sockets.
    pub async fn stop(mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.shutdown_gracefully().await;
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(s) = &self.server {
            s.shutdown_token().cancel();
        }
    }
}

/// A non-blocking socket bound to `addr` that other processes may bind
/// too (`SO_REUSEPORT`; see the module doc).
fn shared_socket(
    addr: SocketAddr,
    kind: nix::sys::socket::SockType,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockaddrIn, bind, setsockopt, socket, sockopt,
    };
    use std::os::fd::AsRawFd as _;
    let SocketAddr::V4(v4) = addr else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "DNS is served on IPv4 gateways only",
        ));
    };
    let fd = socket(
        AddressFamily::Inet,
        kind,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?;
    Ok(fd)
}

/// The host's resolvers, from `/etc/resolv.conf`.
pub fn host_upstreams() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    super::hosts::parse_resolv(&text)
        .nameservers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Sends `query` to each upstream in turn; the first answer wins.
async fn forward(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let local: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = tokio::net::UdpSocket::bind(local).await else {
            continue;
        };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let fail = |mut metadata: Metadata, code| {
            metadata.response_code = code;
            metadata
        };
        let Ok(info) = request.request_info() else {
            let m = fail(metadata, ResponseCode::FormErr);
            return send(&mut response_handle, builder.build_no_records(m), request).await;
        };
        let qname = info.query.name().to_string();
        let qtype = info.query.query_type();
        match self.registry.answer(&self.network, info.src.ip(), &qname) {
            Answer::Refused => {
                let m = fail(metadata, ResponseCode::Refused);
                send(&mut response_handle, builder.build_no_records(m), request).await
            }
            Answer::Records(ips) => {
                metadata.authoritative = true;
                let name = info.query.original().name().clone();
                let records: Vec<Record> = if qtype == RecordType::A || qtype == RecordType::ANY {
                    ips.iter()
                        .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(*ip))))
                        .collect()
                } else {
                    // The name exists, just not with this type: NOERROR, no data.
                    Vec::new()
                };
                let response = builder.build(metadata, records.iter(), [], [], []);
                send(&mut response_handle, response, request).await
            }
            Answer::Names(names) => {
                metadata.authoritative = true;
                let name = info.query.original().name().clone();
                let records: Vec<Record> = if qtype == RecordType::PTR || qtype == RecordType::ANY {
                    names
                        .iter()
                        .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
                        .map(|n| Record::from_rdata(name.clone(), TTL, RData::PTR(PTR(n))))
                        .collect()
                } else {
                    Vec::new()
                };
                let response = builder.build(metadata, records.iter(), [], [], []);
                send(&mut response_handle, response, request).await
            }
            Answer::Forward(own) => {
                let upstreams = if own.is_empty() {
                    &self.upstreams
                } else {
                    &own
                };
                let reply = forward(request.as_slice(), upstreams)
                    .await
                    .and_then(|bytes| Message::from_vec(&bytes).ok());
                match reply {
                    Some(reply) => {
                        metadata.response_code = reply.metadata.response_code;
                        metadata.authoritative = reply.metadata.authoritative;
                        metadata.truncation = reply.metadata.truncation;
                        let response = builder.build(
                            metadata,
                            reply.answers.iter(),
                            reply.authorities.iter(),
                            [],
                            reply.additionals.iter(),
                        );
                        send(&mut response_handle, response, request).await
                    }
                    None => {
                        let m = fail(metadata, ResponseCode::ServFail);
                        send(&mut response_handle, builder.build_no_records(m), request).await
                    }
                }
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Request,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(_) => {
            // The client went away; report a failure for the server's bookkeeping.
            let mut m = Metadata::response_from_request(&request.metadata);
            m.response_code = ResponseCode::ServFail;
            hickory_server::proto::op::Header {
                metadata: m,
                counts: Default::default(),
            }
            .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registry {
        let r = Registry::new();
        r.set_network("front", "10.1.0.0/24".parse().unwrap());
        r.set_network("back", "10.2.0.0/24".parse().unwrap());
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        r.add_endpoint(
            "front",
            "p-web-1",
            ip("10.1.0.2"),
            &["web".into(), "p-web-1".into()],
        );
        r.add_endpoint(
            "front",
            "p-api-1",
            ip("10.1.0.3"),
            &["api".into(), "API-alias".into()],
        );
        r.add_endpoint("back", "p-api-1", ip("10.2.0.3"), &["api".into()]);
        r.add_endpoint("back", "p-db-1", ip("10.2.0.4"), &["db".into()]);
        r.add_endpoint("back", "p-db-2", ip("10.2.0.5"), &["db".into()]);
        r
    }

    fn src(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_resolve_case_insensitively_with_or_without_the_dot() {
        let r = reg();
        assert_eq!(
            r.answer("front", src("10.1.0.2"), "api-alias."),
            Answer::Records(vec!["10.1.0.3".parse().unwrap()])
        );
        assert_eq!(
            r.answer("front", src("10.1.0.2"), "P-WEB-1"),
            Answer::Records(vec!["10.1.0.2".parse().unwrap()])
        );
    }

    #[test]
    fn other_networks_names_are_not_visible() {
        let r = reg();
        // web is only on front: db is not its business, so it is forwarded.
        assert_eq!(
            r.answer("front", src("10.1.0.2"), "db"),
            Answer::Forward(vec![])
        );
        // A client outside the subnet is refused outright.
        assert_eq!(r.answer("front", src("10.2.0.4"), "web"), Answer::Refused);
    }

    #[test]
    fn a_container_on_two_networks_sees_both_with_the_shared_address() {
        let r = reg();
        // api asks front's server for db (on back): it is on back too.
        match r.answer("front", src("10.1.0.3"), "db") {
            Answer::Records(ips) => assert_eq!(ips.len(), 2),
            other => panic!("{other:?}"),
        }
        // db asks for api: the address on back, the network they share.
        assert_eq!(
            r.answer("back", src("10.2.0.4"), "api"),
            Answer::Records(vec!["10.2.0.3".parse().unwrap()])
        );
    }

    #[test]
    fn replicas_rotate() {
        let r = reg();
        let first = |a| match a {
            Answer::Records(ips) => ips[0],
            other => panic!("{other:?}"),
        };
        let seen: BTreeSet<Ipv4Addr> = (0..4)
            .map(|_| first(r.answer("back", src("10.2.0.3"), "db")))
            .collect();
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn records_follow_endpoints_and_upstreams_are_per_container() {
        let r = reg();
        r.remove_endpoint("front", "p-api-1");
        assert_eq!(
            r.answer("front", src("10.1.0.2"), "api"),
            Answer::Forward(vec![])
        );
        r.set_upstreams("p-web-1", &["9.9.9.9".parse().unwrap()]);
        assert_eq!(
            r.answer("front", src("10.1.0.2"), "example.org"),
            Answer::Forward(vec!["9.9.9.9:53".parse().unwrap()])
        );
        r.remove_network("back");
        assert_eq!(r.answer("back", src("10.2.0.4"), "db"), Answer::Refused);
    }

    #[test]
    fn reverse_lookups_name_containers_the_asker_can_see() {
        let r = reg();
        assert_eq!(
            r.answer("front", src("10.1.0.2"), "3.0.1.10.in-addr.arpa."),
            Answer::Names(vec!["p-api-1".into()])
        );
        // db is on back only; web (front only) does not learn its name.
        assert_eq!(
            r.answer("front", src("10.1.0.2"), "4.0.2.10.in-addr.arpa"),
            Answer::Forward(vec![])
        );
        assert_eq!(reverse_name("1.2.3.in-addr.arpa"), None);
        assert_eq!(reverse_name("x.2.3.4.in-addr.arpa"), None);
    }

    #[test]
    fn changes_are_announced() {
        let r = reg();
        let mut rx = r.changes();
        let seen = *rx.borrow_and_update();
        r.remove_endpoint("back", "p-db-2");
        assert!(rx.has_changed().unwrap());
        assert!(*rx.borrow_and_update() > seen);
    }

    #[test]
    fn peers_for_etc_hosts_cover_every_shared_network() {
        let r = reg();
        let peers = r.peers("p-api-1");
        let ips: Vec<String> = peers.iter().map(|(ip, _)| ip.to_string()).collect();
        assert_eq!(ips, vec!["10.1.0.2", "10.2.0.4", "10.2.0.5"]);
        assert!(peers[0].1.contains(&"web".to_string()));
    }
}
