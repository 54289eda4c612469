//! Bridge networks: what lets containers find and reach each other, and the
//! outside world reach the ports they publish.
//!
//! A Compose network becomes, on this host:
//!
//! - a **Linux bridge** (a virtual switch) named `stk-` plus a hash of the
//!   project and network, because interface names are limited to 15 bytes
//!   ([`names`]). The bridge holds the network's *gateway* address, so the
//!   host itself is a member of every network: it routes for containers,
//!   answers their DNS queries and forwards their published ports.
//! - a **subnet**, from `ipam.config` or from a default pool that avoids
//!   every route already on the host ([`ipam`]).
//! - one **veth pair** per container endpoint: a virtual cable whose host end
//!   is plugged into the bridge and whose other end is moved into the
//!   container's network namespace and renamed `eth0` (`eth1` and on for more
//!   networks), with its address, MAC, MTU and a default route through the
//!   gateway ([`netlink`]). Everything goes through rtnetlink, in-process;
//!   acting inside a namespace uses a netlink socket opened by a short-lived
//!   thread that entered it, because `setns` changes only the calling thread
//!   and must never happen on a tokio worker.
//! - a **DNS server** on the gateway address ([`dns`]) that answers service
//!   names, container names, host names and aliases of the endpoints the
//!   asking container shares a network with, and forwards everything else to
//!   the host's resolvers. Containers get an `/etc/resolv.conf` pointing at it
//!   and an `/etc/hosts` with their own names ([`hosts`]).
//! - **nftables rules** in a table of stack's own per project ([`nft`]):
//!   DNAT for published ports, masquerade for traffic leaving a non-internal
//!   network, and the forward rules that isolate networks from each other
//!   (and accept our bridges' traffic when someone set FORWARD's policy to
//!   DROP). Connections to `127.0.0.1` cannot be DNATed into a bridge without
//!   loosening `route_localnet`, so a small userland proxy serves them
//!   ([`proxy`]); its listening socket also reserves the host port, which is
//!   how a taken port is found before anything changes.
//!
//! [`Networks`] ties these together behind the API the planner wraps: create
//! and remove networks, attach and detach endpoints, reserve host ports
//! before anything starts, publish and unpublish them, render a container's
//! `/etc/hosts` and `resolv.conf`, and `down`. Every
//! object it creates is recorded under `<root>/network/<project>.json` and
//! labelled on the host (the bridge's and veth's interface alias reads
//! `stack:<project>:...`, the nftables table is `stack-<project>`), so
//! [`Networks::down`] removes everything even after a crash lost the
//! in-memory state. Everything of a project is also in one *link group*, so
//! `down` deletes all its bridges and veths in one kernel batch instead of
//! paying the kernel's slow per-link teardown once per link.
//!
//! Limits, for now: IPv4 only (`enable_ipv6` and IPv6 `host_ip` are
//! refused); tcp and udp ports (not sctp); the bridge driver only; the DNS
//! server of an external network is its owner's, so names of this project's
//! containers on someone else's network are not served there; a host DNS
//! server listening on `0.0.0.0:53` keeps ours from binding the gateways.

pub mod dns;
pub mod hosts;
pub mod ipam;
mod manager;
pub mod names;
pub mod netlink;
pub mod nft;
pub mod proxy;
mod record;

pub use manager::{
    AttachRequest, EndpointInfo, NetworkInfo, Networks, Options, PublishedPort, dns_settings,
    interface_order,
};
pub use record::{EndpointRecord, NetworkRecord, NetworksRecord, PortRecord};

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("`{value}` is not a valid {what} for network `{network}`: {why}")]
    BadConfig {
        network: String,
        what: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "no free subnet is left in the default pools (172.17.0.0/16-172.31.0.0/16, 192.168.0.0/16 in /20s) that avoids the host's routes; give network `{network}` an `ipam.config.subnet`, or remove unused networks"
    )]
    PoolExhausted { network: String },
    #[error(
        "subnet {subnet} of network `{network}` overlaps {other}, which is already routed on this host; choose another `ipam.config.subnet`"
    )]
    SubnetOverlap {
        network: String,
        subnet: String,
        other: String,
    },
    #[error(
        "network `{network}` has no free address left in {range}; widen `ip_range` or the subnet"
    )]
    AddressesExhausted { network: String, range: String },
    #[error(
        "address {ip} asked for on network `{network}` is {why}; choose another `ipv4_address`"
    )]
    AddressUnavailable {
        network: String,
        ip: Ipv4Addr,
        why: String,
    },
    #[error("network `{0}` is not known to this project; create it before attaching to it")]
    UnknownNetwork(String),
    #[error(
        "external network `{network}` does not exist on this host (no bridge `{bridge}`); create it first or drop `external: true`"
    )]
    MissingExternal { network: String, bridge: String },
    #[error(
        "network driver `{driver}` of network `{network}` is not supported; stack supports `bridge` only"
    )]
    UnsupportedDriver { network: String, driver: String },
    #[error(
        "container `{container}` has no endpoint on any network; attach it before publishing ports"
    )]
    NoEndpoint { container: String },
    #[error(
        "host port {host_ip}:{port}/{protocol} is already in use by another program; free it or publish a different port"
    )]
    PortTaken {
        host_ip: String,
        port: String,
        protocol: String,
    },
    #[error("port `{value}` cannot be published: {why}")]
    BadPort { value: String, why: String },
    #[error("`network_mode: {value}` is not understood; {why}")]
    BadMode { value: String, why: String },
    #[error("the network namespace {} cannot be opened: {source}; is the container still running?", path.display())]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink request to {action} failed: {source}")]
    Netlink {
        action: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("cannot open a netlink socket: {0}; stack needs root (CAP_NET_ADMIN) for networks")]
    NetlinkSocket(#[source] std::io::Error),
    #[error(
        "nftables refused stack's rules ({0}); is the `nft` binary (Debian package nftables) installed?"
    )]
    Nftables(String),
    #[error(
        "the DNS server for network `{network}` cannot listen on {addr}: {source}; if another DNS server on this host listens on all addresses (0.0.0.0:53), make it bind only to its own (dnsmasq: `bind-interfaces`)"
    )]
    DnsBind {
        network: String,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the network record {} is damaged ({source}); move it away and run `down` again", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("a background network task failed: {0}")]
    Task(String),
}

impl NetworkError {
    /// The kernel's errno, when a netlink request failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetworkError::Netlink { source, .. } => netlink::errno(source),
            _ => None,
        }
    }

    pub(crate) fn netlink(action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let action = action.into();
        move |source| NetworkError::Netlink { action, source }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> NetworkError {
        let path = path.into();
        move |source| NetworkError::Io {
            action,
            path,
            source,
        }
    }
}

/// A service's `network_mode`: which network namespace its containers get.
///
/// Only `Bridge` involves [`Networks`]; the others tell the runtime whose
/// namespace to join (the host's, a fresh empty one, or another
/// container's), and stack attaches no endpoint and serves no DNS for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// The service's `networks:` (the default network when none are named).
    Bridge,
    /// The host's own namespace: no isolation, ports are not published.
    Host,
    /// A namespace with only `lo`.
    None,
    /// The namespace of a container of service `NAME` (its first replica).
    Service(String),
    /// The namespace of the container named `NAME`.
    Container(String),
}

impl NetworkMode {
    /// Reads `network_mode` (`None` when absent).
    pub fn parse(mode: Option<&str>) -> Result<NetworkMode, NetworkError> {
        let bad = |why: &str| NetworkError::BadMode {
            value: mode.unwrap_or_default().to_string(),
            why: why.to_string(),
        };
        Ok(match mode {
            None | Some("bridge") | Some("default") => NetworkMode::Bridge,
            Some("host") => NetworkMode::Host,
            Some("none") => NetworkMode::None,
            Some(m) => match m.split_once(':') {
                Some(("service", s)) if !s.is_empty() => NetworkMode::Service(s.to_string()),
                Some(("container", c)) if !c.is_empty() => NetworkMode::Container(c.to_string()),
                _ => {
                    return Err(bad(
                        "write `bridge`, `host`, `none`, `service:NAME` or `container:NAME`",
                    ));
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_parse() {
        assert_eq!(NetworkMode::parse(None).unwrap(), NetworkMode::Bridge);
        assert_eq!(NetworkMode::parse(Some("host")).unwrap(), NetworkMode::Host);
        assert_eq!(NetworkMode::parse(Some("none")).unwrap(), NetworkMode::None);
        assert_eq!(
            NetworkMode::parse(Some("service:db")).unwrap(),
            NetworkMode::Service("db".into())
        );
        assert_eq!(
            NetworkMode::parse(Some("container:abc")).unwrap(),
            NetworkMode::Container("abc".into())
        );
        let e = NetworkMode::parse(Some("service:"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("service:NAME"), "{e}");
    }
}
