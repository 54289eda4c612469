//! [`Networks`]: one project's networks, endpoints, DNS and published ports.
//!
//! This is the API the planner's `Networks` trait wraps. Calls are
//! idempotent where that makes sense (creating a network that exists
//! returns it; attaching an endpoint that exists returns it; removing what is
//! gone succeeds), every change is recorded before the call returns, and
//! [`Networks::down`] removes all of a project's host objects, found both
//! from the record and from their labels.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;
use tokio::sync::Mutex;

use super::NetworkError;
use super::dns::{DnsServer, Registry};
use super::hosts::{self, DnsSettings, HostsFile, ResolvConf};
use super::ipam::{self, SubnetPlan};
use super::names;
use super::netlink::{self, Netlink, VethSpec};
use super::nft::{self, NetRules, PortRule, ProjectRules, Proto};
use super::proxy::{self, BoundPort, Proxy};
use super::record::{self, EndpointRecord, NetworkRecord, NetworksRecord, PortRecord};
use crate::spec::model::{Network, Port, Service, ServiceNetwork};

/// The MTU docker gives bridges unless `com.docker.network.driver.mtu` says otherwise.
pub const DEFAULT_MTU: u32 = 1500;
const MTU_OPT: &str = "com.docker.network.driver.mtu";
const BRIDGE_NAME_OPT: &str = "com.docker.network.bridge.name";

/// How a [`Networks`] behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Serve DNS on each network's gateway (the watcher does; a one-shot
    /// `down` does not).
    pub serve_dns: bool,
    /// The port of the DNS servers (53; tests may move it).
    pub dns_port: u16,
    /// Where names that are not the project's are forwarded; `None`: the
    /// host's resolvers from `/etc/resolv.conf`.
    pub upstreams: Option<Vec<SocketAddr>>,
    /// The host's resolver settings containers inherit `search` and
    /// `options` from; `None`: read `/etc/resolv.conf`.
    pub host_resolv: Option<ResolvConf>,
    /// Where the lock serializing subnet choice between stack processes
    /// lives: host-wide (not under a state root), because two state roots
    /// on one host share its routes.
    pub lock_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            serve_dns: true,
            dns_port: 53,
            upstreams: None,
            host_resolv: None,
            lock_dir: PathBuf::from("/run/stack"),
        }
    }
}

/// A network as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Its key in the stack file.
    pub key: String,
    /// Its name on the host.
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    pub external: bool,
}

/// What to attach: one container to one network.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// The container's name, unique in the project (`<project>-<service>-<n>`).
    pub container: String,
    /// The network's key in the stack file.
    pub network: String,
    /// The container's network namespace (`/proc/<pid>/ns/net` or a
    /// bind-mounted namespace file).
    pub netns: PathBuf,
    /// The interface inside the container: `eth0`, `eth1`, ... (see
    /// [`interface_order`]).
    pub ifname: String,
    pub ipv4_address: Option<Ipv4Addr>,
    pub mac_address: Option<String>,
    /// DNS names on this network: service name, container name, host name,
    /// aliases.
    pub names: Vec<String>,
    /// The service's `dns:` servers, used as this container's upstreams.
    pub dns: Vec<IpAddr>,
}

impl AttachRequest {
    /// The request for container `container` (a replica of `service`) on
    /// the network with key `key`, from the stack file: its DNS names (the
    /// service's name, the container's, its `hostname`, the network's
    /// `aliases`), `ipv4_address`, `mac_address` (the network's, else the
    /// service's) and `dns` upstreams.
    pub fn for_service(
        service: &Service,
        key: &str,
        container: &str,
        netns: PathBuf,
        ifname: &str,
    ) -> Result<AttachRequest, NetworkError> {
        let sn = service.networks.get(key).cloned().unwrap_or_default();
        let mut names = vec![service.name.clone(), container.to_string()];
        names.extend(service.hostname.iter().cloned());
        names.extend(sn.aliases.iter().cloned());
        names.retain(|n| !n.is_empty());
        names.dedup();
        let ipv4_address = match &sn.ipv4_address {
            Some(a) => Some(a.parse().map_err(|_| NetworkError::BadConfig {
                network: key.to_string(),
                what: "ipv4_address",
                value: a.clone(),
                why: "it is not an IPv4 address".into(),
            })?),
            None => None,
        };
        Ok(AttachRequest {
            container: container.to_string(),
            network: key.to_string(),
            netns,
            ifname: ifname.to_string(),
            ipv4_address,
            mac_address: sn.mac_address.or_else(|| service.mac_address.clone()),
            names,
            dns: dns_settings(service)?.dns,
        })
    }
}

/// A service's `dns`, `dns_search` and `dns_opt`, checked.
pub fn dns_settings(service: &Service) -> Result<DnsSettings, NetworkError> {
    let dns = service
        .dns
        .iter()
        .map(|d| {
            d.parse().map_err(|_| NetworkError::BadConfig {
                network: service.name.clone(),
                what: "dns server",
                value: d.clone(),
                why: "`dns` takes IP addresses".into(),
            })
        })
        .collect::<Result<Vec<IpAddr>, _>>()?;
    Ok(DnsSettings {
        dns,
        dns_search: service.dns_search.clone(),
        dns_opt: service.dns_opt.clone(),
    })
}

/// An endpoint as attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub container: String,
    pub network: String,
    pub ifname: String,
    pub host_ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The gateway, also the DNS server.
    pub gateway: Ipv4Addr,
    pub mac: String,
}

/// A published port as bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub container: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `None`: all of the host's addresses.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub target: u16,
}

impl From<&PortRecord> for PublishedPort {
    fn from(p: &PortRecord) -> PublishedPort {
        PublishedPort {
            container: p.container.clone(),
            protocol: p.protocol.clone(),
            host_ip: p.host_ip,
            host_port: p.host_port,
            target: p.target,
        }
    }
}

/// Interface names for a service's networks: by `priority` (highest
/// first), then by key, as docker compose orders them: `eth0`, `eth1`, ...
/// An explicit `interface_name` is kept.
pub fn interface_order(networks: &BTreeMap<String, ServiceNetwork>) -> Vec<(String, String)> {
    let mut keys: Vec<(&String, &ServiceNetwork)> = networks.iter().collect();
    keys.sort_by(|a, b| {
        let pa = a.1.priority.unwrap_or(0);
        let pb = b.1.priority.unwrap_or(0);
        pb.cmp(&pa).then_with(|| a.0.cmp(b.0))
    });
    keys.into_iter()
        .enumerate()
        .map(|(i, (k, n))| {
            let ifname = n
                .interface_name
                .clone()
                .unwrap_or_else(|| format!("eth{i}"));
            (k.clone(), ifname)
        })
        .collect()
}

struct State {
    record: NetworksRecord,
    /// Bridge name to interface index, saving a lookup per attach.
    bridge_index: BTreeMap<String, u32>,
    dns: BTreeMap<String, DnsServer>,
    /// By container.
    proxies: BTreeMap<String, Vec<Proxy>>,
    /// Host ports bound ahead of a container's start, with their targets.
    reserved: BTreeMap<String, Vec<(BoundPort, u16)>>,
}

/// One project's networks on this host.
pub struct Networks {
    project: String,
    root: PathBuf,
    group: u32,
    host: Netlink,
    registry: Registry,
    options: Options,
    state: Mutex<State>,
    /// Set when this process removed the project's nftables rules and added
    /// none since: `down` then need not run `nft` again (two more runs of
    /// the binary, ~15 ms).
    rules_removed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networks")
            .field("project", &self.project)
            .field("root", &self.root)
            .finish()
    }
}

fn plan_of(n: &NetworkRecord) -> Result<SubnetPlan, NetworkError> {
    let bad = |what: &'static str, value: &str| NetworkError::BadConfig {
        network: n.name.clone(),
        what,
        value: value.to_string(),
        why: "the network record is damaged; run `down` and `up` again".into(),
    };
    Ok(SubnetPlan {
        subnet: n.subnet.parse().map_err(|_| bad("subnet", &n.subnet))?,
        gateway: n.gateway,
        range: n
            .ip_range
            .parse()
            .map_err(|_| bad("ip_range", &n.ip_range))?,
        aux: n.aux_addresses.clone(),
    })
}

fn endpoint_key(container: &str, network: &str) -> String {
    format!("{container}/{network}")
}

/// Holds the host-wide lock on subnet choice while alive (closing the file
/// releases it, also when the process dies).
struct IpamLock {
    _file: File,
}

async fn ipam_lock(dir: &Path) -> Result<IpamLock, NetworkError> {
    std::fs::create_dir_all(dir).map_err(NetworkError::io("create", dir))?;
    let path = dir.join("ipam.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(NetworkError::io("open", &path))?;
    // Blocking wait, off the async workers; held only while one subnet is chosen.
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| NetworkError::Task(e.to_string()))?
        .map_err(NetworkError::io("lock", &path))?;
    Ok(IpamLock { _file: file })
}

fn enable_ip_forward() -> Result<(), NetworkError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let now = std::fs::read_to_string(path).map_err(NetworkError::io("read", path))?;
    if now.trim() != "1" {
        // Routing for containers needs it, as docker and podman set it.
        std::fs::write(path, "1").map_err(NetworkError::io("write", path))?;
    }
    Ok(())
}

impl Networks {
    /// Opens the project's networks: loads the record, and with
    /// `options.serve_dns` starts DNS for the networks it already has (a
    /// restarted watcher). Needs a tokio runtime.
    pub async fn open(
        project: &str,
        root: &Path,
        options: Options,
    ) -> Result<Networks, NetworkError> {
        let record = record::load(root, project)?;
        let host = Netlink::host()?;
        let registry = Registry::new();
        for (key, n) in &record.networks {
            if let Ok(subnet) = n.subnet.parse() {
                registry.set_network(key, subnet);
            }
        }
        for e in record.endpoints.values() {
            registry.add_endpoint(&e.network, &e.container, e.ip, &e.names);
        }
        let me = Networks {
            project: project.to_string(),
            root: root.to_path_buf(),
            group: names::link_group(project),
            host,
            registry,
            options,
            rules_removed: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State {
                record,
                bridge_index: BTreeMap::new(),
                dns: BTreeMap::new(),
                proxies: BTreeMap::new(),
                reserved: BTreeMap::new(),
            }),
        };
        if me.options.serve_dns {
            let mut st = me.state.lock().await;
            let nets: Vec<(String, NetworkRecord)> = st
                .record
                .networks
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (key, n) in nets {
                me.ensure_dns(&mut st, &key, &n).await?;
            }
        }
        Ok(me)
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// The names registry the DNS servers answer from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn upstreams(&self) -> Vec<SocketAddr> {
        self.options
            .upstreams
            .clone()
            .unwrap_or_else(super::dns::host_upstreams)
    }

    /// The watcher's check, each round, that its DNS serves what the
    /// project's network record holds, repairing what it does not: the
    /// endpoints another stack process attached meanwhile (`stack run -d`
    /// does so while the watcher runs) or detached, and a network's DNS
    /// server that is not running. One read of the record, and nothing
    /// more when it matches. Returns the repairs as `(container or
    /// network, what was done)`.
    pub async fn resync_dns(&self) -> Vec<(String, String)> {
        let mut repairs = Vec::new();
        if !self.options.serve_dns {
            return repairs;
        }
        let Ok(disk) = record::load(&self.root, &self.project) else {
            return repairs;
        };
        let mut st = self.state.lock().await;
        if disk.endpoints != st.record.endpoints {
            for (key, e) in &st.record.endpoints {
                if !disk.endpoints.contains_key(key) {
                    self.registry.remove_endpoint(&e.network, &e.container);
                }
            }
            st.record.endpoints = disk.endpoints;
        }
        for e in st.record.endpoints.values() {
            if !self.registry.has_endpoint(&e.network, &e.container, e.ip) {
                self.registry
                    .add_endpoint(&e.network, &e.container, e.ip, &e.names);
                repairs.push((
                    e.container.clone(),
                    format!(
                        "its DNS records on network `{}` ({} at {}) were missing from the project's DNS server; served again",
                        e.network,
                        e.names.join(", "),
                        e.ip
                    ),
                ));
            }
        }
        let nets: Vec<(String, NetworkRecord)> = st
            .record
            .networks
            .iter()
            .filter(|(k, n)| !n.external && !st.dns.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, n) in nets {
            let what = match self.ensure_dns(&mut st, &key, &n).await {
                Ok(()) => {
                    format!("the DNS server of network `{key}` was not running; started again")
                }
                Err(e) => format!(
                    "the DNS server of network `{key}` is not running and cannot start: {e}"
                ),
            };
            repairs.push((n.name.clone(), what));
        }
        repairs
    }

    async fn ensure_dns(
        &self,
        st: &mut State,
        key: &str,
        n: &NetworkRecord,
    ) -> Result<(), NetworkError> {
        // An external network's owner serves its DNS.
        if !self.options.serve_dns || n.external || st.dns.contains_key(key) {
            return Ok(());
        }
        let addr = SocketAddr::new(IpAddr::V4(n.gateway), self.options.dns_port);
        let server = DnsServer::start(key, addr, self.registry.clone(), self.upstreams()).await?;
        st.dns.insert(key.to_string(), server);
        Ok(())
    }

    fn info(key: &str, n: &NetworkRecord) -> Result<NetworkInfo, NetworkError> {
        Ok(NetworkInfo {
            key: key.to_string(),
            name: n.name.clone(),
            bridge: n.bridge.clone(),
            subnet: plan_of(n)?.subnet,
            gateway: n.gateway,
            internal: n.internal,
            external: n.external,
        })
    }

    /// The project's rules as nftables must hold them.
    fn rules(&self, rec: &NetworksRecord) -> ProjectRules {
        ProjectRules {
            project: self.project.clone(),
            networks: rec
                .networks
                .values()
                .filter(|n| !n.external)
                .filter_map(|n| {
                    Some(NetRules {
                        bridge: n.bridge.clone(),
                        subnet: n.subnet.parse().ok()?,
                        internal: n.internal,
                    })
                })
                .collect(),
            ports: rec
                .ports
                .iter()
                .filter(|p| p.host_ip.is_none_or(|ip| !ip.is_loopback()))
                .map(|p| PortRule {
                    protocol: if p.protocol == "udp" {
                        Proto::Udp
                    } else {
                        Proto::Tcp
                    },
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    dest: p.dest,
                    dest_port: p.target,
                })
                .collect(),
        }
    }

    async fn sync_rules(&self, rec: &NetworksRecord) -> Result<(), NetworkError> {
        let rules = self.rules(rec);
        let empty = rules.networks.is_empty() && rules.ports.is_empty();
        let project = self.project.clone();
        use std::sync::atomic::Ordering;
        self.rules_removed.store(false, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            if empty {
                nft::remove(&project)
            } else {
                nft::apply(&rules)
            }
        })
        .await
        .map_err(|e| NetworkError::Task(e.to_string()))??;
        self.rules_removed.store(empty, Ordering::SeqCst);
        Ok(())
    }

    fn save(&self, rec: &NetworksRecord) -> Result<(), NetworkError> {
        record::save(&self.root, rec)
    }

    /// Takes the record's lock and reads the record again, so that what
    /// another stack process saved meanwhile (an endpoint `run -d`
    /// attached while the watcher runs) is built on, not overwritten by
    /// this process's older copy. Held until the change is saved; the DNS
    /// registry catches up in [`Networks::resync_dns`].
    async fn fresh(&self, st: &mut State) -> Result<record::RecordLock, NetworkError> {
        let (root, project) = (self.root.clone(), self.project.clone());
        let (lock, disk) = tokio::task::spawn_blocking(move || {
            let lock = record::lock(&root, &project)?;
            Ok::<_, NetworkError>((lock, record::load(&root, &project)?))
        })
        .await
        .map_err(|e| NetworkError::Task(e.to_string()))??;
        st.record = disk;
        Ok(lock)
    }

    /// Creates network `key` (its spec from the stack file) or returns it
    /// when it exists. External networks are looked up, never created.
    pub async fn create_network(
        &self,
        key: &str,
        spec: &Network,
    ) -> Result<NetworkInfo, NetworkError> {
        let mut st = self.state.lock().await;
        let _record_lock = self.fresh(&mut st).await?;
        if let Some(n) = st.record.networks.get(key).cloned() {
            if !n.external {
                let plan = plan_of(&n)?;
                let gw = Ipv4Network::new(n.gateway, plan.subnet.prefix()).unwrap_or(plan.subnet);
                let alias = names::bridge_alias(&self.project, key);
                let index = self
                    .host
                    .ensure_bridge(&n.bridge, &alias, n.mtu, gw, self.group)
                    .await?;
                // A bridge made again (it was removed) has a new index.
                st.bridge_index.insert(n.bridge.clone(), index);
            }
            self.ensure_dns(&mut st, key, &n).await?;
            return Self::info(key, &n);
        }
        if spec.enable_ipv6 == Some(true) {
            return Err(NetworkError::BadConfig {
                network: spec.name.clone(),
                what: "enable_ipv6",
                value: "true".into(),
                why: "stack's networks are IPv4 only for now; remove `enable_ipv6`".into(),
            });
        }
        if let Some(d) = spec.driver.as_deref()
            && d != "bridge"
        {
            return Err(NetworkError::UnsupportedDriver {
                network: spec.name.clone(),
                driver: d.to_string(),
            });
        }
        let n = if spec.external {
            self.find_external(spec).await?
        } else {
            self.make_bridge(key, spec).await?
        };
        st.record.networks.insert(key.to_string(), n.clone());
        self.save(&st.record)?;
        let plan = plan_of(&n)?;
        self.registry.set_network(key, plan.subnet);
        if !n.external {
            let rec = st.record.clone();
            self.sync_rules(&rec).await?;
        }
        self.ensure_dns(&mut st, key, &n).await?;
        Self::info(key, &n)
    }

    async fn find_external(&self, spec: &Network) -> Result<NetworkRecord, NetworkError> {
        // A network another stack project made, or a bridge made by hand
        // under exactly that name.
        let derived = names::bridge_name(&spec.name);
        let mut found = None;
        for candidate in [derived.as_str(), spec.name.as_str()] {
            if names::valid_ifname(candidate)
                && let Some(i) = self.host.link_index(candidate).await?
            {
                found = Some((candidate.to_string(), i));
                break;
            }
        }
        let Some((bridge, _)) = found else {
            return Err(NetworkError::MissingExternal {
                network: spec.name.clone(),
                bridge: derived,
            });
        };
        let (gateway, subnet) =
            self.bridge_address(&bridge)
                .await?
                .ok_or_else(|| NetworkError::BadConfig {
                    network: spec.name.clone(),
                    what: "external bridge",
                    value: bridge.clone(),
                    why: "it has no IPv4 address to serve as the gateway; give it one".into(),
                })?;
        Ok(NetworkRecord {
            name: spec.name.clone(),
            bridge,
            subnet: subnet.to_string(),
            gateway,
            ip_range: subnet.to_string(),
            aux_addresses: BTreeMap::new(),
            internal: spec.internal,
            external: true,
            mtu: DEFAULT_MTU,
            labels: spec.labels.clone(),
            driver_opts: spec.driver_opts.clone(),
        })
    }

    /// The first IPv4 address on `bridge`, with its network.
    async fn bridge_address(
        &self,
        bridge: &str,
    ) -> Result<Option<(Ipv4Addr, Ipv4Network)>, NetworkError> {
        let Some(index) = self.host.link_index(bridge).await? else {
            return Ok(None);
        };
        Ok(self
            .host
            .ipv4_address(index)
            .await?
            .map(|n| (n.ip(), ipam::normalize(n))))
    }

    async fn make_bridge(&self, key: &str, spec: &Network) -> Result<NetworkRecord, NetworkError> {
        let bridge = match spec.driver_opts.get(BRIDGE_NAME_OPT) {
            Some(b) if names::valid_ifname(b) => b.clone(),
            Some(b) => {
                return Err(NetworkError::BadConfig {
                    network: spec.name.clone(),
                    what: BRIDGE_NAME_OPT,
                    value: b.clone(),
                    why: "interface names are 1 to 15 characters without `/`, `:` or spaces".into(),
                });
            }
            None => names::bridge_name(&spec.name),
        };
        let mtu = match spec.driver_opts.get(MTU_OPT) {
            Some(m) => m.parse().map_err(|_| NetworkError::BadConfig {
                network: spec.name.clone(),
                what: MTU_OPT,
                value: m.clone(),
                why: "it is not a whole number of bytes".into(),
            })?,
            None => DEFAULT_MTU,
        };
        let config = spec.ipam.as_ref().and_then(|i| {
            i.config
                .iter()
                .find(|c| c.subnet.as_deref().is_none_or(|s| !s.contains(':')))
        });
        // Choosing a subnet and routing it must be one step for every stack
        // process on the host, or two could pick the same free subnet.
        let _lock = ipam_lock(&self.options.lock_dir).await?;
        let own = self.bridge_address(&bridge).await?.map(|(_, n)| n);
        let taken: Vec<Ipv4Network> = self
            .host
            .routed_networks()
            .await?
            .into_iter()
            .filter(|n| Some(*n) != own)
            .collect();
        let plan = ipam::plan(&spec.name, config, &taken)?;
        let gw = Ipv4Network::new(plan.gateway, plan.subnet.prefix()).unwrap_or(plan.subnet);
        let alias = names::bridge_alias(&self.project, key);
        self.host
            .ensure_bridge(&bridge, &alias, mtu, gw, self.group)
            .await?;
        if !spec.internal {
            enable_ip_forward()?;
        }
        Ok(NetworkRecord {
            name: spec.name.clone(),
            bridge,
            subnet: plan.subnet.to_string(),
            gateway: plan.gateway,
            ip_range: plan.range.to_string(),
            aux_addresses: plan.aux,
            internal: spec.internal,
            external: false,
            mtu,
            labels: spec.labels.clone(),
            driver_opts: spec.driver_opts.clone(),
        })
    }

    /// Removes network `key`: its DNS server, its endpoints' veths that
    /// are still there, its bridge and rules. An external network is only
    /// forgotten.
    pub async fn remove_network(&self, key: &str) -> Result<(), NetworkError> {
        let mut st = self.state.lock().await;
        let _record_lock = self.fresh(&mut st).await?;
        if let Some(s) = st.dns.remove(key) {
            s.stop().await;
        }
        let Some(n) = st.record.networks.get(key).cloned() else {
            return Ok(());
        };
        let gone: Vec<String> = st
            .record
            .endpoints
            .iter()
            .filter(|(_, e)| e.network == key)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(e) = st.record.endpoints.remove(&k) {
                self.host.delete_link_named(&e.host_ifname).await?;
                st.record
                    .ports
                    .retain(|p| !(p.container == e.container && p.dest == e.ip));
            }
        }
        crate::timing::mark(|| format!("network {key}: DNS stopped, endpoints gone"));
        // The kernel's deletion of a bridge and a run of `nft` each take
        // milliseconds and do not depend on each other (rules name the
        // bridge, not its link): both at once.
        let mut without = st.record.clone();
        without.networks.remove(key);
        let delete = async {
            match n.external {
                true => Ok(()),
                false => self.host.delete_link_named(&n.bridge).await,
            }
        };
        let (deleted, synced) = futures::join!(delete, self.sync_rules(&without));
        if let Err(e) = deleted {
            // The network stays: so do its rules.
            let rec = st.record.clone();
            let _ = self.sync_rules(&rec).await;
            return Err(e);
        }
        crate::timing::mark(|| format!("network {key}: bridge deleted, rules synced"));
        self.registry.remove_network(key);
        st.bridge_index.remove(&n.bridge);
        st.record = without;
        self.save(&st.record)?;
        synced
    }

    /// Attaches a container to a network: a veth pair with one end on the
    /// bridge and the other in the container as `req.ifname`, its address,
    /// MAC, MTU and default route, and its names in DNS. Attaching an
    /// endpoint that exists returns it.
    pub async fn attach(&self, req: &AttachRequest) -> Result<EndpointInfo, NetworkError> {
        let mut st = self.state.lock().await;
        let _record_lock = self.fresh(&mut st).await?;
        let n = st
            .record
            .networks
            .get(&req.network)
            .cloned()
            .ok_or_else(|| NetworkError::UnknownNetwork(req.network.clone()))?;
        let plan = plan_of(&n)?;
        let key = endpoint_key(&req.container, &req.network);
        if let Some(e) = st.record.endpoints.get(&key).cloned() {
            // Whole when its veth exists and is plugged into the bridge
            // (the bridge may have been removed and made again).
            let bridge = self.host.link_index(&n.bridge).await?;
            let whole = match self.host.link_controller(&e.host_ifname).await? {
                Some((_, controller)) => bridge.is_some() && controller == bridge,
                None => false,
            };
            if e.netns == req.netns && whole {
                self.registry
                    .add_endpoint(&req.network, &req.container, e.ip, &req.names);
                self.registry.set_upstreams(&req.container, &req.dns);
                return Ok(Self::endpoint_info(&e, &plan));
            }
            // A stale endpoint (the container was recreated): replace it.
            self.host.delete_link_named(&e.host_ifname).await?;
            st.record.endpoints.remove(&key);
        }
        if !names::valid_ifname(&req.ifname) {
            return Err(NetworkError::BadConfig {
                network: n.name.clone(),
                what: "interface name",
                value: req.ifname.clone(),
                why: "interface names are 1 to 15 characters without `/`, `:` or spaces".into(),
            });
        }
        let used: BTreeSet<Ipv4Addr> = st
            .record
            .endpoints
            .values()
            .filter(|e| e.network == req.network)
            .map(|e| e.ip)
            .collect();
        let ip = plan.allocate(&n.name, &used, req.ipv4_address)?;
        let mac = match &req.mac_address {
            Some(m) => netlink::parse_mac(m).ok_or_else(|| NetworkError::BadConfig {
                network: n.name.clone(),
                what: "mac_address",
                value: m.clone(),
                why: "write six hexadecimal byte pairs such as 02:42:ac:11:00:02".into(),
            })?,
            None => netlink::mac_for(ip),
        };
        let (host_ifname, _) = names::veth_names(&n.bridge, &req.container);
        let alias = names::veth_alias(&self.project, &req.network, &req.container);
        let bridge_index = match st.bridge_index.get(&n.bridge) {
            Some(i) => *i,
            None => {
                let i = self.host.link_index(&n.bridge).await?.ok_or_else(|| {
                    NetworkError::MissingExternal {
                        network: n.name.clone(),
                        bridge: n.bridge.clone(),
                    }
                })?;
                st.bridge_index.insert(n.bridge.clone(), i);
                i
            }
        };
        let spec = VethSpec {
            host_name: &host_ifname,
            bridge_index,
            group: self.group,
            ifname: &req.ifname,
            mac,
            mtu: n.mtu,
            address: Ipv4Network::new(ip, plan.subnet.prefix()).unwrap_or(plan.subnet),
            gateway: (!n.internal).then_some(n.gateway),
        };
        let netns = netlink::open_netns(&req.netns)?;
        // The namespace's socket is opened while the veth is created.
        let (created, inside) = futures::join!(
            self.host.create_veth(&spec, &netns),
            Netlink::in_netns(&req.netns)
        );
        if let Err(e) = created {
            match e.errno() {
                // A host end left by a crash: replace it.
                Some(netlink::EEXIST) => {
                    self.host.delete_link_named(&host_ifname).await?;
                    self.host.create_veth(&spec, &netns).await?;
                }
                // The bridge was recreated behind our back: look it up again.
                Some(netlink::ENODEV) => {
                    st.bridge_index.remove(&n.bridge);
                    return Err(e);
                }
                _ => return Err(e),
            }
        }
        let e = EndpointRecord {
            container: req.container.clone(),
            network: req.network.clone(),
            host_ifname: host_ifname.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns.clone(),
            ip,
            mac: netlink::format_mac(mac),
            names: req.names.clone(),
        };
        st.record.endpoints.insert(key.clone(), e.clone());
        // The record is written while the namespace is configured.
        let (root, rec) = (self.root.clone(), st.record.clone());
        let saving = tokio::task::spawn_blocking(move || record::save(&root, &rec));
        let configured = match inside {
            Ok(inside) => {
                let (inner, label) = futures::join!(
                    inside.configure_endpoint(&spec),
                    self.host.set_alias(&host_ifname, &alias)
                );
                inner.and(label)
            }
            Err(e) => Err(e),
        };
        let saved = saving
            .await
            .map_err(|e| NetworkError::Task(e.to_string()))
            .and_then(|r| r);
        if let Err(e) = configured.and(saved) {
            let _ = self.host.delete_link_named(&host_ifname).await;
            st.record.endpoints.remove(&key);
            let _ = self.save(&st.record);
            return Err(e);
        }
        self.registry
            .add_endpoint(&req.network, &req.container, ip, &req.names);
        self.registry.set_upstreams(&req.container, &req.dns);
        Ok(Self::endpoint_info(&e, &plan))
    }

    fn endpoint_info(e: &EndpointRecord, plan: &SubnetPlan) -> EndpointInfo {
        EndpointInfo {
            container: e.container.clone(),
            network: e.network.clone(),
            ifname: e.ifname.clone(),
            host_ifname: e.host_ifname.clone(),
            ip: e.ip,
            prefix: plan.subnet.prefix(),
            gateway: plan.gateway,
            mac: e.mac.clone(),
        }
    }

    /// Detaches `container` from `network`: its names leave DNS at once,
    /// its ports to that address are unpublished, and its veth is deleted
    /// if the container still runs (when its namespace is gone the kernel
    /// has already removed the veth, and nothing slow happens).
    pub async fn detach(&self, container: &str, network: &str) -> Result<(), NetworkError> {
        self.registry.remove_endpoint(network, container);
        let mut st = self.state.lock().await;
        let _record_lock = self.fresh(&mut st).await?;
        let Some(e) = st
            .record
            .endpoints
            .remove(&endpoint_key(container, network))
        else {
            return Ok(());
        };
        let before = st.record.ports.len();
        st.record
            .ports
            .retain(|p| !(p.container == container && p.dest == e.ip));
        if st.record.ports.len() != before {
            st.proxies.remove(container);
            let rec = st.record.clone();
            self.sync_rules(&rec).await?;
        }
        self.host.delete_link_named(&e.host_ifname).await?;
        self.save(&st.record)
    }

    /// Whether the bridge of network `key` exists (`false` also for a
    /// network the project does not have). An external network counts as
    /// present: it is not ours to watch.
    pub async fn bridge_present(&self, key: &str) -> bool {
        let bridge = {
            let st = self.state.lock().await;
            match st.record.networks.get(key) {
                Some(n) if n.external => return true,
                Some(n) => n.bridge.clone(),
                None => return false,
            }
        };
        // A failed lookup is not evidence of absence.
        !matches!(self.host.link_index(&bridge).await, Ok(None))
    }

    /// The networks (keys) where `container`'s endpoint is broken: the
    /// host end of its veth is gone (deleted by hand, or with the
    /// container's namespace), or it is no longer plugged into the
    /// network's bridge (the bridge was removed, or made again).
    pub async fn broken_endpoints(&self, container: &str) -> Vec<String> {
        let endpoints: Vec<(String, String, String)> = {
            let st = self.state.lock().await;
            st.record
                .endpoints
                .values()
                .filter(|e| e.container == container)
                .filter_map(|e| {
                    let n = st.record.networks.get(&e.network)?;
                    Some((e.network.clone(), e.host_ifname.clone(), n.bridge.clone()))
                })
                .collect()
        };
        let mut broken = Vec::new();
        for (key, veth, bridge) in endpoints {
            let Ok(link) = self.host.link_controller(&veth).await else {
                continue;
            };
            let plugged = match (link, self.host.link_index(&bridge).await) {
                (Some((_, Some(controller))), Ok(Some(b))) => controller == b,
                (Some(_), Err(_)) => true,
                _ => false,
            };
            if !plugged {
                broken.push(key);
            }
        }
        broken
    }

    /// The container's endpoints, primary (lowest interface) first.
    pub async fn endpoints(&self, container: &str) -> Vec<EndpointInfo> {
        let st = self.state.lock().await;
        let mut out: Vec<EndpointInfo> = st
            .record
            .endpoints
            .values()
            .filter(|e| e.container == container)
            .filter_map(|e| {
                let n = st.record.networks.get(&e.network)?;
                Some(Self::endpoint_info(e, &plan_of(n).ok()?))
            })
            .collect();
        out.sort_by(|a, b| (a.ifname.len(), &a.ifname).cmp(&(b.ifname.len(), &b.ifname)));
        out
    }

    /// Binds `container`'s host ports now, before it exists, and holds them
    /// until [`Networks::publish`] forwards them (or [`Networks::unpublish`]
    /// lets them go). The planner reserves every service's ports before it
    /// starts anything, so a taken port is an error before anything starts.
    /// All or nothing: on error no port is held. Returns the ports, random
    /// ones resolved.
    pub async fn reserve_ports(
        &self,
        container: &str,
        ports: &[Port],
    ) -> Result<Vec<PublishedPort>, NetworkError> {
        let mut st = self.state.lock().await;
        // An earlier reservation for the container is replaced.
        st.reserved.remove(container);
        let bound = bind_all(ports)?;
        let shown = bound
            .iter()
            .map(|(b, target)| PublishedPort {
                container: container.to_string(),
                protocol: b.protocol.as_str().to_string(),
                host_ip: match b.addr.ip() {
                    IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
                    _ => None,
                },
                host_port: b.addr.port(),
                target: *target,
            })
            .collect();
        st.reserved.insert(container.to_string(), bound);
        Ok(shown)
    }

    /// Whether host ports are reserved for `container` (and not yet published).
    pub async fn is_reserved(&self, container: &str) -> bool {
        self.state.lock().await.reserved.contains_key(container)
    }

    /// Publishes `ports` of `container` (its primary endpoint): the ports
    /// reserved for it by [`Networks::reserve_ports`] if there are any, else
    /// `ports`, bound now. Every host port is bound before any rule is
    /// written: if one is taken, the call fails and nothing has changed.
    /// Returns the bound ports, random ones resolved. Publishing again for
    /// the same container replaces its earlier ports.
    pub async fn publish(
        &self,
        container: &str,
        ports: &[Port],
    ) -> Result<Vec<PublishedPort>, NetworkError> {
        let primary = self
            .endpoints(container)
            .await
            .into_iter()
            .next()
            .ok_or_else(|| NetworkError::NoEndpoint {
                container: container.to_string(),
            })?;
        let mut st = self.state.lock().await;
        let _record_lock = self.fresh(&mut st).await?;
        // Release the container's earlier ports so they can be bound again.
        let earlier: Vec<PortRecord> = st
            .record
            .ports
            .iter()
            .filter(|p| p.container == container)
            .cloned()
            .collect();
        st.proxies.remove(container);
        let bound = match st.reserved.remove(container) {
            Some(r) => r,
            None => match bind_all(ports) {
                Ok(b) => b,
                Err(e) => {
                    // Take the earlier ports back, as they were.
                    if !earlier.is_empty() {
                        let mut again = Vec::new();
                        for p in &earlier {
                            let addr = SocketAddr::new(
                                IpAddr::V4(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                                p.host_port,
                            );
                            let proto = if p.protocol == "udp" {
                                Proto::Udp
                            } else {
                                Proto::Tcp
                            };
                            if let Ok(b) = proxy::bind(proto, addr)
                                && let Ok(px) =
                                    b.start(SocketAddr::new(IpAddr::V4(p.dest), p.target))
                            {
                                again.push(px);
                            }
                        }
                        st.proxies.insert(container.to_string(), again);
                    }
                    return Err(e);
                }
            },
        };
        let mut records = Vec::new();
        let mut proxies = Vec::new();
        for (b, target_port) in bound {
            let host_ip = match b.addr.ip() {
                IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
                _ => None,
            };
            records.push(PortRecord {
                container: container.to_string(),
                protocol: b.protocol.as_str().to_string(),
                host_ip,
                host_port: b.addr.port(),
                target: target_port,
                dest: primary.ip,
            });
            let target = SocketAddr::new(IpAddr::V4(primary.ip), target_port);
            proxies
                .push(b.start(target).map_err(|e| {
                    NetworkError::Task(format!("cannot start the port proxy: {e}"))
                })?);
        }
        st.record.ports.retain(|p| p.container != container);
        st.record.ports.extend(records.iter().cloned());
        let rec = st.record.clone();
        if let Err(e) = self.sync_rules(&rec).await {
            st.record.ports.retain(|p| p.container != container);
            return Err(e);
        }
        self.save(&st.record)?;
        st.proxies.insert(container.to_string(), proxies);
        Ok(records.iter().map(PublishedPort::from).collect())
    }

    /// Withdraws every port `container` published.
    pub async fn unpublish(&self, container: &str) -> Result<(), NetworkError> {
        let mut st = self.state.lock().await;
        let _record_lock = self.fresh(&mut st).await?;
        st.proxies.remove(container);
        st.reserved.remove(container);
        let before = st.record.ports.len();
        st.record.ports.retain(|p| p.container != container);
        if before == st.record.ports.len() {
            return Ok(());
        }
        let rec = st.record.clone();
        self.sync_rules(&rec).await?;
        self.save(&st.record)
    }

    /// The ports `container` published (`stack port`).
    pub async fn ports(&self, container: &str) -> Vec<PublishedPort> {
        let st = self.state.lock().await;
        st.record
            .ports
            .iter()
            .filter(|p| p.container == container)
            .map(PublishedPort::from)
            .collect()
    }

    /// The container's `/etc/hosts`: its names on its addresses, its peers,
    /// `extra_hosts`.
    pub async fn hosts_file(
        &self,
        container: &str,
        hostname: &str,
        domainname: Option<&str>,
        extra_hosts: &BTreeMap<String, Vec<String>>,
    ) -> String {
        let eps = self.endpoints(container).await;
        hosts::render_hosts(&HostsFile {
            own_addresses: eps.iter().map(|e| e.ip).collect(),
            own_names: hosts::own_names(hostname, domainname),
            peers: self.registry.peers(container),
            extra_hosts: extra_hosts.clone(),
            host_gateway: eps.first().map(|e| e.gateway),
        })
    }

    /// The container's `/etc/resolv.conf`: its primary network's DNS
    /// server (when this project serves one there) with `dns_search` and
    /// `dns_opt`, else `dns` or the host's servers.
    pub async fn resolv_conf(&self, container: &str, settings: &DnsSettings) -> String {
        let host = self.options.host_resolv.clone().unwrap_or_else(|| {
            hosts::parse_resolv(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        });
        let stack_dns = self.endpoints(container).await.first().map(|e| e.gateway);
        hosts::render_resolv(&hosts::container_resolv(&host, stack_dns, settings))
    }

    /// The networks the project has.
    pub async fn networks(&self) -> Vec<NetworkInfo> {
        let st = self.state.lock().await;
        st.record
            .networks
            .iter()
            .filter_map(|(k, n)| Self::info(k, n).ok())
            .collect()
    }

    /// Stops serving (DNS servers, port proxies) and leaves everything else
    /// in place: what a watcher does when it exits. The next
    /// [`Networks::open`] with `serve_dns` serves the recorded names again;
    /// meanwhile containers keep their addresses and `/etc/hosts`.
    pub async fn close(self) {
        let mut st = self.state.lock().await;
        st.proxies.clear();
        st.reserved.clear();
        for (_, s) in std::mem::take(&mut st.dns) {
            s.stop().await;
        }
    }

    /// Removes everything of the project: proxies, DNS servers, every
    /// bridge and veth (from the record and by their labels, in one kernel
    /// batch), its nftables rules and its record. External networks stay.
    pub async fn down(&self) -> Result<(), NetworkError> {
        let mut st = self.state.lock().await;
        let _record_lock = self.fresh(&mut st).await?;
        st.proxies.clear();
        st.reserved.clear();
        for (_, s) in std::mem::take(&mut st.dns) {
            s.stop().await;
        }
        // Everything stack created for the project carries its link group.
        self.host.delete_group(self.group).await?;
        // And its label, should a link have missed the group.
        let prefix = names::project_alias_prefix(&self.project);
        for (index, _, alias) in self.host.links().await? {
            if alias.is_some_and(|a| a.starts_with(&prefix)) {
                self.host.delete_link(index).await?;
            }
        }
        // Rules are only written under the state lock, which is held: a
        // removal this process did is still true.
        if !self.rules_removed.load(std::sync::atomic::Ordering::SeqCst) {
            let project = self.project.clone();
            tokio::task::spawn_blocking(move || nft::remove(&project))
                .await
                .map_err(|e| NetworkError::Task(e.to_string()))??;
            self.rules_removed
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        for key in st.record.networks.keys() {
            self.registry.remove_network(key);
        }
        st.bridge_index.clear();
        st.record = NetworksRecord {
            project: self.project.clone(),
            ..NetworksRecord::default()
        };
        self.save(&st.record)
    }
}

/// Binds every port's host side, or none: on an error the ones already
/// bound are released as the vector drops.
fn bind_all(ports: &[Port]) -> Result<Vec<(BoundPort, u16)>, NetworkError> {
    ports
        .iter()
        .map(|p| bind_port(p).map(|b| (b, p.target)))
        .collect()
}

/// Binds a published port's host side: the first free port of its range,
/// or a random one.
fn bind_port(port: &Port) -> Result<BoundPort, NetworkError> {
    let spelled = || {
        format!(
            "{}{}:{}/{}",
            port.host_ip
                .as_deref()
                .map(|h| format!("{h}:"))
                .unwrap_or_default(),
            port.published.as_deref().unwrap_or(""),
            port.target,
            port.protocol
        )
    };
    let bad = |why: &str| NetworkError::BadPort {
        value: spelled(),
        why: why.to_string(),
    };
    let protocol = match port.protocol.as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(bad(&format!(
                "protocol `{other}` is not supported; use tcp or udp"
            )));
        }
    };
    let host_ip = match port.host_ip.as_deref() {
        None | Some("") | Some("0.0.0.0") => Ipv4Addr::UNSPECIFIED,
        Some(h) => match h.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ip,
            Ok(IpAddr::V6(_)) => return Err(bad("IPv6 host addresses are not supported yet")),
            Err(_) => return Err(bad(&format!("`{h}` is not an IP address"))),
        },
    };
    let (first, last) = match &port.published {
        None => (0, 0),
        Some(_) => port
            .published_range()
            .ok_or_else(|| bad("the published port is not a number or range"))?,
    };
    let mut last_err = None;
    for p in first..=last {
        match proxy::bind(protocol, SocketAddr::new(IpAddr::V4(host_ip), p)) {
            Ok(b) => return Ok(b),
            Err(e) => last_err = Some(e),
        }
    }
    let shown = if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    };
    match last_err {
        Some(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NetworkError::PortTaken {
            host_ip: host_ip.to_string(),
            port: shown,
            protocol: protocol.as_str().to_string(),
        }),
        Some(e) => Err(bad(&e.to_string())),
        None => Err(bad("the published range is empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_requests_come_from_the_service() {
        let mut service = Service {
            name: "web".into(),
            hostname: Some("www".into()),
            mac_address: Some("02:00:00:00:00:01".into()),
            dns: vec!["9.9.9.9".into()],
            ..Service::default()
        };
        service.networks.insert(
            "front".into(),
            ServiceNetwork {
                aliases: vec!["site".into()],
                ipv4_address: Some("10.1.0.9".into()),
                ..ServiceNetwork::default()
            },
        );
        let r = AttachRequest::for_service(
            &service,
            "front",
            "p-web-1",
            "/proc/1/ns/net".into(),
            "eth0",
        )
        .unwrap();
        assert_eq!(r.names, vec!["web", "p-web-1", "www", "site"]);
        assert_eq!(r.ipv4_address, Some(Ipv4Addr::new(10, 1, 0, 9)));
        assert_eq!(r.mac_address.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(r.dns, vec!["9.9.9.9".parse::<IpAddr>().unwrap()]);
        service.dns = vec!["not-an-ip".into()];
        let e = AttachRequest::for_service(&service, "front", "p-web-1", "/x".into(), "eth0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dns` takes IP addresses"), "{e}");
    }

    #[test]
    fn interfaces_follow_priority_then_name() {
        let mut nets = BTreeMap::new();
        nets.insert("a".to_string(), ServiceNetwork::default());
        nets.insert(
            "b".to_string(),
            ServiceNetwork {
                priority: Some(10),
                ..ServiceNetwork::default()
            },
        );
        nets.insert("c".to_string(), ServiceNetwork::default());
        let order = interface_order(&nets);
        assert_eq!(
            order,
            vec![
                ("b".to_string(), "eth0".to_string()),
                ("a".to_string(), "eth1".to_string()),
                ("c".to_string(), "eth2".to_string()),
            ]
        );
    }

    #[test]
    fn a_port_taken_by_another_program_is_reported_as_such() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let p = Port {
            name: None,
            mode: "ingress".into(),
            host_ip: Some("127.0.0.1".into()),
            target: 80,
            published: Some(port.to_string()),
            protocol: "tcp".into(),
            app_protocol: None,
        };
        let err = bind_port(&p).unwrap_err();
        assert!(matches!(err, NetworkError::PortTaken { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}/tcp")),
            "{err}"
        );
        // A range skips the taken port.
        let ranged = Port {
            published: Some(format!("{port}-{}", port.saturating_add(1))),
            ..p.clone()
        };
        if port < u16::MAX {
            assert_eq!(bind_port(&ranged).unwrap().addr.port(), port + 1);
        }
        // sctp is refused with a reason.
        let sctp = Port {
            protocol: "sctp".into(),
            ..p
        };
        assert!(
            bind_port(&sctp)
                .unwrap_err()
                .to_string()
                .contains("tcp or udp")
        );
    }
}
