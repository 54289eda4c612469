//! Links, addresses and routes through rtnetlink, in the host's network
//! namespace or in a container's.
//!
//! rtnetlink talks to the kernel over a netlink socket, and a netlink socket
//! belongs to the network namespace of the thread that created it, for its
//! whole life. So acting inside a container means creating the socket from a
//! thread that has entered the container's namespace with `setns`. `setns`
//! changes only the calling thread; doing it on a tokio worker would move
//! every task later scheduled there into the container. [`Netlink::in_netns`]
//! therefore spawns a short-lived OS thread that enters the namespace,
//! opens the socket (registered with the caller's tokio runtime) and exits;
//! the socket keeps pointing into the namespace and is driven by an ordinary
//! tokio task.
//!
//! An endpoint is made with as few round trips as the kernel allows: one
//! request creates the veth pair with the host end already on the bridge,
//! up, labelled, and the container end already inside the namespace, named
//! `eth0`, with its MAC and MTU, up. Four more requests inside the namespace
//! bring up `lo`, find `eth0`, add the address and the default route.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use ipnetwork::Ipv4Network;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::NetworkError;

/// The kernel's errno for a netlink failure, if it was one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// "No such device".
pub const ENODEV: i32 = 19;
/// "File exists".
pub const EEXIST: i32 = 17;

/// A netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

/// What a new endpoint looks like.
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    pub host_name: &'a str,
    pub bridge_index: u32,
    /// The project's link group (see [`Netlink::delete_group`]).
    pub group: u32,
    /// The name inside the container.
    pub ifname: &'a str,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub address: Ipv4Network,
    /// `None` for internal networks: no way out.
    pub gateway: Option<Ipv4Addr>,
}

impl Netlink {
    /// A connection in the calling thread's namespace (the host's); needs a
    /// tokio runtime.
    pub fn host() -> Result<Netlink, NetworkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetworkError::NetlinkSocket)?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// A connection inside the namespace at `path` (`/proc/<pid>/ns/net` or
    /// a bind-mounted namespace file).
    pub async fn in_netns(path: &Path) -> Result<Netlink, NetworkError> {
        let file = File::open(path).map_err(|source| NetworkError::Netns {
            path: path.to_path_buf(),
            source,
        })?;
        Self::in_netns_file(file, path).await
    }

    async fn in_netns_file(file: File, path: &Path) -> Result<Netlink, NetworkError> {
        let rt = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let p = path.to_path_buf();
        std::thread::Builder::new()
            .name("stack-netns".into())
            .spawn(move || {
                let result = (|| {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |e| NetworkError::Netns {
                            path: p.clone(),
                            source: std::io::Error::from(e),
                        },
                    )?;
                    // Registers the socket with the caller's runtime; this
                    // thread exits right after and never runs tasks.
                    let _guard = rt.enter();
                    let (conn, handle, _) =
                        rtnetlink::new_connection().map_err(NetworkError::NetlinkSocket)?;
                    rt.spawn(conn);
                    Ok(Netlink { handle })
                })();
                let _ = tx.send(result);
            })
            .map_err(|e| NetworkError::Task(format!("cannot start a thread: {e}")))?;
        rx.await
            .map_err(|_| NetworkError::Task("the namespace thread died".into()))?
    }

    /// The index of the link called `name`, if there is one.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetworkError> {
        Ok(self.link_controller(name).await?.map(|(index, _)| index))
    }

    /// The index of the link called `name` and the index of the bridge it
    /// is plugged into, if it exists.
    pub async fn link_controller(
        &self,
        name: &str,
    ) -> Result<Option<(u32, Option<u32>)>, NetworkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => {
                let controller = msg.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Controller(i) => Some(*i),
                    _ => None,
                });
                Ok(Some((msg.header.index, controller)))
            }
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(NetworkError::netlink(format!("look up link {name}"))(e)),
        }
    }

    /// Every link's name and alias (`ip link` with aliases).
    pub async fn links(&self) -> Result<Vec<(u32, String, Option<String>)>, NetworkError> {
        let msgs: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(NetworkError::netlink("list links"))?;
        Ok(msgs
            .into_iter()
            .map(|m| {
                let mut name = String::new();
                let mut alias = None;
                for a in m.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = n,
                        LinkAttribute::IfAlias(s) => alias = Some(s),
                        _ => {}
                    }
                }
                (m.header.index, name, alias)
            })
            .collect())
    }

    /// Creates the bridge (or finds it), sets its gateway address and
    /// brings it up. Idempotent.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        alias: &str,
        mtu: u32,
        gateway: Ipv4Network,
        group: u32,
    ) -> Result<u32, NetworkError> {
        let mac = super::names::bridge_mac(name).to_vec();
        let msg = LinkBridge::new(name)
            .mtu(mtu)
            .address(mac.clone())
            .link_group(group)
            .up()
            .build();
        match self.handle.link().add(msg).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(NetworkError::netlink(format!("create bridge {name}"))(e)),
        }
        let index = self.link_index(name).await?.ok_or_else(|| NetworkError::Task(format!(
            "bridge {name} vanished right after it was created; is another program deleting links?"
        )))?;
        self.handle
            .address()
            .add(index, IpAddr::V4(gateway.ip()), gateway.prefix())
            .replace()
            .execute()
            .await
            .map_err(NetworkError::netlink(format!(
                "add address {gateway} to {name}"
            )))?;
        // The kernel ignores an alias in a creation request, and `up()` at
        // creation does not cover an existing, downed bridge.
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .alias(alias)
                    .address(mac)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(NetworkError::netlink(format!(
                "label and bring up bridge {name}"
            )))?;
        Ok(index)
    }

    /// Sets link `name`'s alias, the label `ip link` shows.
    pub async fn set_alias(&self, name: &str, alias: &str) -> Result<(), NetworkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_name(name).alias(alias).build())
            .execute()
            .await
            .map_err(NetworkError::netlink(format!("label link {name}")))
    }

    /// Deletes link `index`; a link already gone is fine.
    pub async fn delete_link(&self, index: u32) -> Result<(), NetworkError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(NetworkError::netlink(format!("delete link {index}"))(e)),
        }
    }

    /// Deletes every link of link group `group` in one request. The kernel
    /// then unregisters them as one batch, paying its slow synchronization
    /// (some 17 ms per veth, 35 ms per bridge when done one by one) once.
    pub async fn delete_group(&self, group: u32) -> Result<(), NetworkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        match self.handle.link().del_with_message(msg).execute().await {
            Ok(()) => Ok(()),
            // No link in the group.
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(NetworkError::netlink(format!("delete link group {group}"))(
                e,
            )),
        }
    }

    /// Deletes the link called `name`, if it exists.
    pub async fn delete_link_named(&self, name: &str) -> Result<(), NetworkError> {
        match self.link_index(name).await? {
            Some(i) => self.delete_link(i).await,
            None => Ok(()),
        }
    }

    /// The first IPv4 address of link `index`, with its prefix.
    pub async fn ipv4_address(&self, index: u32) -> Result<Option<Ipv4Network>, NetworkError> {
        let addrs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(NetworkError::netlink(format!(
                "list addresses of link {index}"
            )))?;
        Ok(addrs.iter().find_map(|a| {
            a.attributes.iter().find_map(|attr| match attr {
                AddressAttribute::Address(IpAddr::V4(ip)) => {
                    Ipv4Network::new(*ip, a.header.prefix_len).ok()
                }
                _ => None,
            })
        }))
    }

    /// Every IPv4 network the host routes or has an address in, except the
    /// default route: what a new subnet must not overlap.
    pub async fn routed_networks(&self) -> Result<Vec<Ipv4Network>, NetworkError> {
        let mut out = Vec::new();
        let routes: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(NetworkError::netlink("list routes"))?;
        for r in routes {
            let len = r.header.destination_prefix_length;
            if len == 0 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a
                    && let Ok(n) = Ipv4Network::new(*ip, len)
                {
                    out.push(super::ipam::normalize(n));
                }
            }
        }
        let addrs: Vec<_> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(NetworkError::netlink("list addresses"))?;
        for a in addrs {
            for attr in &a.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = attr
                    && let Ok(n) = Ipv4Network::new(*ip, a.header.prefix_len)
                {
                    out.push(super::ipam::normalize(n));
                }
            }
        }
        Ok(out)
    }

    /// Creates a veth pair whose host end is a port of the bridge and whose
    /// other end is created directly inside the namespace `netns` (so its
    /// final name, `eth0`, never clashes with the host's).
    pub async fn create_veth(&self, spec: &VethSpec<'_>, netns: &File) -> Result<(), NetworkError> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.ifname.to_string())
            .mtu(spec.mtu)
            .address(spec.mac.to_vec())
            .setns_by_fd(netns.as_raw_fd())
            // Not up yet: a veth end cannot open before its peer exists
            // (ENOTCONN); it is brought up inside the namespace.
            .build();
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host_name.to_string())
            .mtu(spec.mtu)
            .link_group(spec.group)
            .controller(spec.bridge_index)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(NetworkError::netlink(format!(
                "create veth {} (container end {})",
                spec.host_name, spec.ifname
            )))
    }

    /// Inside the container: `lo` up, the address on the endpoint, the
    /// default route through the gateway. Run on a handle from
    /// [`Netlink::in_netns`].
    pub async fn configure_endpoint(&self, spec: &VethSpec<'_>) -> Result<(), NetworkError> {
        // ifindex 1 is always the namespace's loopback: it is registered first.
        let lo = self
            .handle
            .link()
            .set(LinkUnspec::new_with_index(1).up().build())
            .execute();
        let index = self.link_index(spec.ifname);
        let (lo, index) = futures::join!(lo, index);
        lo.map_err(NetworkError::netlink("bring up lo in the container"))?;
        let index = index?.ok_or_else(|| {
            NetworkError::Task(format!(
                "{} did not arrive in the container's namespace",
                spec.ifname
            ))
        })?;
        let addr = self
            .handle
            .address()
            .add(index, IpAddr::V4(spec.address.ip()), spec.address.prefix())
            .replace()
            .execute();
        let up = self
            .handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute();
        // The kernel handles one socket's requests in the order they were
        // sent, and `join!` sends them in argument order: the route request
        // arrives after the address and the link are up, in the same round
        // trip.
        let route = async {
            match spec.gateway {
                Some(gw) => self.add_default_route(gw, index).await,
                None => Ok(()),
            }
        };
        let (addr, up, route) = futures::join!(addr, up, route);
        addr.map_err(NetworkError::netlink(format!(
            "add address {} to {} in the container",
            spec.address, spec.ifname
        )))?;
        up.map_err(NetworkError::netlink(format!(
            "bring up {} in the container",
            spec.ifname
        )))?;
        match (route, spec.gateway) {
            (Ok(()), _) | (_, None) => Ok(()),
            // Should the kernel ever take the route first, now it cannot fail
            // for want of a reachable gateway.
            (Err(_), Some(gw)) => self.add_default_route(gw, index).await,
        }
    }

    async fn add_default_route(&self, gw: Ipv4Addr, index: u32) -> Result<(), NetworkError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        match self.handle.route().add(route).execute().await {
            Ok(()) => Ok(()),
            // A second network's gateway: the first one keeps the default route.
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(NetworkError::netlink(format!(
                "add the default route via {gw} in the container"
            ))(e)),
        }
    }
}

/// Opens a network namespace file.
pub fn open_netns(path: &Path) -> Result<File, NetworkError> {
    File::open(path).map_err(|source| NetworkError::Netns {
        path: path.to_path_buf(),
        source,
    })
}

/// A locally administered unicast MAC derived from the address, as docker
/// did: `02:42:` and the four octets.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_derive_from_addresses() {
        let m = mac_for(Ipv4Addr::new(172, 20, 0, 2));
        assert_eq!(format_mac(m), "02:42:ac:14:00:02");
        assert_eq!(parse_mac("02:42:AC:14:00:02"), Some(m));
        assert_eq!(parse_mac("02:42:ac:14:00"), None);
        assert_eq!(parse_mac("02:42:ac:14:00:zz"), None);
    }
}
