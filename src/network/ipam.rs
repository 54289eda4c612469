//! IP address management: which subnet a network gets, and which address
//! each endpoint gets inside it. Pure functions over plain data; the caller
//! supplies what is already in use on the host.
//!
//! A subnet must not overlap anything the host already routes (its LAN, a
//! VPN, docker's `docker0`, another stack network): packets for the overlap
//! would go to the wrong place. Without `ipam.config.subnet`, stack walks the
//! same default pools docker uses (`172.17.0.0/16` to `172.31.0.0/16`, then
//! `192.168.0.0/16` in `/20`s) and takes the first that overlaps no route.
//!
//! Inside a subnet: the first host address is the gateway unless `gateway`
//! says otherwise; `aux_addresses` are reserved for devices outside stack;
//! dynamic addresses come from `ip_range` (the whole subnet by default),
//! lowest free first; a service's `ipv4_address` may be anywhere in the
//! subnet that is not taken.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::NetworkError;
use crate::spec::model::IpamConfig;

/// docker's default address pools, in the order they are tried.
pub fn default_pools() -> Vec<Ipv4Network> {
    let mut pools = Vec::new();
    for second in 17..=31u8 {
        // Prefix 16 is always valid for an IPv4 network.
        if let Ok(n) = Ipv4Network::new(Ipv4Addr::new(172, second, 0, 0), 16) {
            pools.push(n);
        }
    }
    for third in (0..=255u8).step_by(16) {
        if let Ok(n) = Ipv4Network::new(Ipv4Addr::new(192, 168, third, 0), 20) {
            pools.push(n);
        }
    }
    pools
}

/// Whether two networks share any address.
pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// The normalized form of a network (host bits cleared).
pub fn normalize(n: Ipv4Network) -> Ipv4Network {
    // The prefix came from a valid network, so it stays valid.
    Ipv4Network::new(n.network(), n.prefix()).unwrap_or(n)
}

/// The first default pool that overlaps none of `taken`.
pub fn choose_subnet(network: &str, taken: &[Ipv4Network]) -> Result<Ipv4Network, NetworkError> {
    default_pools()
        .into_iter()
        .find(|pool| !taken.iter().any(|t| overlaps(*pool, *t)))
        .ok_or_else(|| NetworkError::PoolExhausted {
            network: network.to_string(),
        })
}

/// A network's addressing, decided once when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPlan {
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    /// Where dynamic addresses come from.
    pub range: Ipv4Network,
    /// `aux_addresses`: host name to address, never handed out.
    pub aux: BTreeMap<String, Ipv4Addr>,
}

fn bad(network: &str, what: &'static str, value: &str, why: impl Into<String>) -> NetworkError {
    NetworkError::BadConfig {
        network: network.to_string(),
        what,
        value: value.to_string(),
        why: why.into(),
    }
}

fn parse_net(network: &str, what: &'static str, value: &str) -> Result<Ipv4Network, NetworkError> {
    let n: Ipv4Network = value.parse().map_err(|e| {
        bad(
            network,
            what,
            value,
            format!("{e}; write an IPv4 CIDR such as 172.28.0.0/16"),
        )
    })?;
    Ok(normalize(n))
}

fn parse_ip(network: &str, what: &'static str, value: &str) -> Result<Ipv4Addr, NetworkError> {
    value
        .parse()
        .map_err(|_| bad(network, what, value, "it is not an IPv4 address"))
}

/// Decides a network's subnet, gateway, range and reserved addresses from
/// its first IPv4 `ipam.config` entry (or the default pools), given the
/// networks already routed on the host.
pub fn plan(
    network: &str,
    config: Option<&IpamConfig>,
    taken: &[Ipv4Network],
) -> Result<SubnetPlan, NetworkError> {
    let subnet = match config.and_then(|c| c.subnet.as_deref()) {
        Some(s) => {
            let subnet = parse_net(network, "subnet", s)?;
            if let Some(other) = taken.iter().find(|t| overlaps(subnet, **t)) {
                return Err(NetworkError::SubnetOverlap {
                    network: network.to_string(),
                    subnet: subnet.to_string(),
                    other: other.to_string(),
                });
            }
            subnet
        }
        None => choose_subnet(network, taken)?,
    };
    if subnet.prefix() > 30 {
        return Err(bad(
            network,
            "subnet",
            &subnet.to_string(),
            "it leaves no room for a gateway and containers; use /30 or wider",
        ));
    }
    let usable =
        |ip: Ipv4Addr| subnet.contains(ip) && ip != subnet.network() && ip != subnet.broadcast();
    let gateway = match config.and_then(|c| c.gateway.as_deref()) {
        Some(g) => {
            let ip = parse_ip(network, "gateway", g)?;
            if !usable(ip) {
                return Err(bad(
                    network,
                    "gateway",
                    g,
                    format!("it is not a host address of {subnet}"),
                ));
            }
            ip
        }
        None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
    };
    let range = match config.and_then(|c| c.ip_range.as_deref()) {
        Some(r) => {
            let range = parse_net(network, "ip_range", r)?;
            if !subnet.contains(range.network()) || range.prefix() < subnet.prefix() {
                return Err(bad(
                    network,
                    "ip_range",
                    r,
                    format!("it is not inside the subnet {subnet}"),
                ));
            }
            range
        }
        None => subnet,
    };
    let mut aux = BTreeMap::new();
    for (name, a) in config.map(|c| &c.aux_addresses).into_iter().flatten() {
        let ip = parse_ip(network, "aux_addresses entry", a)?;
        if !usable(ip) {
            return Err(bad(
                network,
                "aux_addresses entry",
                a,
                format!("it is not a host address of {subnet}"),
            ));
        }
        aux.insert(name.clone(), ip);
    }
    Ok(SubnetPlan {
        subnet,
        gateway,
        range,
        aux,
    })
}

impl SubnetPlan {
    fn reserved(&self, ip: Ipv4Addr) -> Option<&'static str> {
        if ip == self.subnet.network() {
            Some("the subnet's network address")
        } else if ip == self.subnet.broadcast() {
            Some("the subnet's broadcast address")
        } else if ip == self.gateway {
            Some("the gateway")
        } else if self.aux.values().any(|a| *a == ip) {
            Some("reserved by aux_addresses")
        } else {
            None
        }
    }

    /// An address for a new endpoint: `requested` if it is free, else the
    /// lowest free address of the range.
    pub fn allocate(
        &self,
        network: &str,
        used: &BTreeSet<Ipv4Addr>,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, NetworkError> {
        let unavailable = |ip, why: &str| NetworkError::AddressUnavailable {
            network: network.to_string(),
            ip,
            why: why.to_string(),
        };
        if let Some(ip) = requested {
            if !self.subnet.contains(ip) {
                return Err(unavailable(
                    ip,
                    &format!("outside the subnet {}", self.subnet),
                ));
            }
            if let Some(why) = self.reserved(ip) {
                return Err(unavailable(ip, why));
            }
            if used.contains(&ip) {
                return Err(unavailable(ip, "already used by another container"));
            }
            return Ok(ip);
        }
        let first = u32::from(self.range.network());
        let last = u32::from(self.range.broadcast());
        (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| self.reserved(*ip).is_none() && !used.contains(ip))
            .ok_or_else(|| NetworkError::AddressesExhausted {
                network: network.to_string(),
                range: self.range.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    fn cfg(subnet: &str) -> IpamConfig {
        IpamConfig {
            subnet: Some(subnet.to_string()),
            ..IpamConfig::default()
        }
    }

    #[test]
    fn default_pool_starts_at_docker_s_first() {
        let p = plan("n", None, &[]).unwrap();
        assert_eq!(p.subnet, net("172.17.0.0/16"));
        assert_eq!(p.gateway, Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(p.range, p.subnet);
    }

    #[test]
    fn default_pool_avoids_every_route() {
        // docker0, a LAN route inside 172.18/16, a host route inside 172.19/16.
        let taken = [
            net("172.17.0.0/16"),
            net("172.18.5.0/24"),
            net("172.19.0.7/32"),
            net("10.0.0.0/8"),
        ];
        assert_eq!(choose_subnet("n", &taken).unwrap(), net("172.20.0.0/16"));
        // A route covering all of 172.16/12 pushes allocation into 192.168.
        let wide = [net("172.16.0.0/12"), net("192.168.0.0/24")];
        assert_eq!(choose_subnet("n", &wide).unwrap(), net("192.168.16.0/20"));
    }

    #[test]
    fn default_pool_exhaustion_is_an_error() {
        let all = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        assert!(matches!(
            choose_subnet("n", &all),
            Err(NetworkError::PoolExhausted { .. })
        ));
    }

    #[test]
    fn default_route_does_not_count_as_overlap_when_excluded_by_caller() {
        // The caller leaves 0.0.0.0/0 out; with it, nothing would fit.
        assert!(overlaps(net("0.0.0.0/0"), net("172.17.0.0/16")));
    }

    #[test]
    fn given_subnet_must_not_overlap_routes() {
        let err = plan("n", Some(&cfg("10.1.0.0/16")), &[net("10.1.2.0/24")]).unwrap_err();
        assert!(err.to_string().contains("overlaps 10.1.2.0/24"), "{err}");
        let ok = plan("n", Some(&cfg("10.1.0.0/16")), &[net("10.2.0.0/16")]).unwrap();
        assert_eq!(ok.gateway, Ipv4Addr::new(10, 1, 0, 1));
    }

    #[test]
    fn host_bits_are_cleared() {
        let p = plan("n", Some(&cfg("10.9.3.7/24")), &[]).unwrap();
        assert_eq!(p.subnet, net("10.9.3.0/24"));
    }

    #[test]
    fn gateway_ip_range_and_aux_addresses_are_honoured() {
        let mut c = cfg("10.5.0.0/24");
        c.gateway = Some("10.5.0.254".into());
        c.ip_range = Some("10.5.0.128/25".into());
        c.aux_addresses
            .insert("printer".into(), "10.5.0.129".into());
        let p = plan("n", Some(&c), &[]).unwrap();
        assert_eq!(p.gateway, Ipv4Addr::new(10, 5, 0, 254));
        let mut used = BTreeSet::new();
        // 10.5.0.128 is the range's first address but a valid host of the subnet.
        let a = p.allocate("n", &used, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 5, 0, 128));
        used.insert(a);
        // .129 is aux, so the next is .130.
        assert_eq!(
            p.allocate("n", &used, None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 130)
        );
        // A static address outside ip_range but inside the subnet is fine.
        assert_eq!(
            p.allocate("n", &used, Some(Ipv4Addr::new(10, 5, 0, 9)))
                .unwrap(),
            Ipv4Addr::new(10, 5, 0, 9)
        );
    }

    #[test]
    fn ipv4_address_is_honoured_or_refused_with_a_reason() {
        let p = plan("n", Some(&cfg("10.6.0.0/24")), &[]).unwrap();
        let mut used = BTreeSet::new();
        let want = Ipv4Addr::new(10, 6, 0, 42);
        assert_eq!(p.allocate("n", &used, Some(want)).unwrap(), want);
        used.insert(want);
        let taken = p.allocate("n", &used, Some(want)).unwrap_err().to_string();
        assert!(taken.contains("already used"), "{taken}");
        let gw = p
            .allocate("n", &used, Some(p.gateway))
            .unwrap_err()
            .to_string();
        assert!(gw.contains("gateway"), "{gw}");
        let outside = p
            .allocate("n", &used, Some(Ipv4Addr::new(10, 7, 0, 1)))
            .unwrap_err()
            .to_string();
        assert!(outside.contains("outside the subnet"), "{outside}");
        let bcast = p
            .allocate("n", &used, Some(Ipv4Addr::new(10, 6, 0, 255)))
            .unwrap_err()
            .to_string();
        assert!(bcast.contains("broadcast"), "{bcast}");
    }

    #[test]
    fn dynamic_allocation_skips_gateway_and_used_and_runs_out() {
        let p = plan("n", Some(&cfg("10.8.0.0/30")), &[]).unwrap();
        // /30: .0 network, .1 gateway, .2 host, .3 broadcast.
        let mut used = BTreeSet::new();
        let a = p.allocate("n", &used, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 8, 0, 2));
        used.insert(a);
        assert!(matches!(
            p.allocate("n", &used, None),
            Err(NetworkError::AddressesExhausted { .. })
        ));
    }

    #[test]
    fn bad_config_says_what_is_wrong() {
        let mut c = cfg("10.5.0.0/24");
        c.gateway = Some("10.6.0.1".into());
        let e = plan("n", Some(&c), &[]).unwrap_err().to_string();
        assert!(e.contains("not a host address of 10.5.0.0/24"), "{e}");
        let mut c = cfg("10.5.0.0/24");
        c.ip_range = Some("10.5.1.0/25".into());
        let e = plan("n", Some(&c), &[]).unwrap_err().to_string();
        assert!(e.contains("not inside the subnet"), "{e}");
        let e = plan("n", Some(&cfg("nonsense")), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("IPv4 CIDR"), "{e}");
        let e = plan("n", Some(&cfg("10.0.0.0/31")), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/30 or wider"), "{e}");
    }
}
