//! Host-side names for what stack creates: bridges, veth ends, the nftables
//! table, interface aliases.
//!
//! Linux limits interface names to 15 bytes (IFNAMSIZ minus the NUL), far
//! shorter than `<project>_<network>`. So names are derived: a fixed prefix
//! plus a hash of what the object belongs to. The same inputs always give the
//! same name, which makes creation idempotent and lets `down` find objects
//! again from the record; the human-readable owner is kept in the interface
//! alias (`ip link` shows it as `alias stack:<project>:<network>`).

use sha2::{Digest, Sha256};

/// Every bridge stack creates starts with this; nftables rules match
/// `stk-*` to mean "any stack network".
pub const BRIDGE_PREFIX: &str = "stk-";
/// Host ends of veth pairs. Deliberately not `stk-`, so that bridge
/// wildcards never match a veth.
pub const VETH_PREFIX: &str = "stv";
/// Linux's limit on interface names, without the terminating NUL.
pub const IFNAME_MAX: usize = 15;

fn hex_hash(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(len);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// The bridge of the network whose host name is `network` (e.g.
/// `demo_default`, or the `name:` it was given): `stk-` and 10 hex digits,
/// 14 bytes. Host names of networks are unique on a host, as in docker, so
/// another project can find the bridge of an `external` network from its
/// name alone.
pub fn bridge_name(network: &str) -> String {
    format!("{BRIDGE_PREFIX}{}", hex_hash(&[network], 10))
}

/// The bridge's own MAC address: fixed, derived from its name. A bridge
/// without one takes the lowest MAC of its ports and changes it when that
/// port leaves, and then every container's ARP entry for the gateway points
/// nowhere until it expires (tens of seconds without DNS or a way out).
/// Locally administered and unicast (`02:...`).
pub fn bridge_mac(bridge: &str) -> [u8; 6] {
    let h = hex_hash(&["mac", bridge], 10);
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (i, b) in mac.iter_mut().enumerate().skip(1) {
        *b = u8::from_str_radix(&h[(i - 1) * 2..i * 2], 16).unwrap_or(0);
    }
    mac
}

/// The link group of everything a project creates: deleting the group
/// deletes all its bridges and veths in one kernel batch. Never 0, the
/// group every other link is in, and below 2^31 so that iproute2 (which
/// reads groups as signed numbers) can name it: `ip link show group N`.
pub fn link_group(project: &str) -> u32 {
    let h = hex_hash(&["group", project], 8);
    (u32::from_str_radix(&h, 16).unwrap_or(1) & 0x7fff_ffff).max(1)
}

/// The host end of the veth pair of `container` on `bridge`: `stv` and 11 hex
/// digits. The container end is created under the same name with `stp`
/// (so both fit in the host namespace for an instant) and renamed once
/// inside the container.
pub fn veth_names(bridge: &str, container: &str) -> (String, String) {
    let h = hex_hash(&[bridge, container], 11);
    (format!("{VETH_PREFIX}{h}"), format!("stp{h}"))
}

/// The nftables table holding a project's rules.
pub fn table_name(project: &str) -> String {
    format!("stack-{project}")
}

/// The interface alias that labels a bridge on the host.
pub fn bridge_alias(project: &str, network: &str) -> String {
    format!("stack:{project}:{network}")
}

/// The interface alias that labels a veth's host end.
pub fn veth_alias(project: &str, network: &str, container: &str) -> String {
    format!("stack:{project}:{network}:{container}")
}

/// The alias prefix shared by everything of a project.
pub fn project_alias_prefix(project: &str) -> String {
    format!("stack:{project}:")
}

/// Whether `name` can be an interface name: 1-15 bytes, no `/`, `:`,
/// whitespace, and not `.` or `..`.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_and_are_stable() {
        let a = bridge_name("demo_default");
        assert_eq!(a, bridge_name("demo_default"));
        assert!(a.starts_with("stk-"));
        assert_eq!(a.len(), 14);
        assert!(valid_ifname(&a));
        let long = bridge_name(&"n".repeat(400));
        assert!(long.len() <= IFNAME_MAX);
    }

    #[test]
    fn bridge_names_differ_by_network() {
        let names = [
            bridge_name("a_default"),
            bridge_name("b_default"),
            bridge_name("a_front"),
            bridge_name("shared"),
        ];
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn veth_names_fit_and_never_look_like_bridges() {
        let (host, peer) = veth_names("stk-0123456789", "demo-web-1");
        assert!(valid_ifname(&host) && valid_ifname(&peer));
        assert_eq!(host.len(), 14);
        assert!(!host.starts_with(BRIDGE_PREFIX));
        assert_eq!(host[3..], peer[3..]);
        assert_ne!(host, veth_names("stk-0123456789", "demo-web-2").0);
    }

    #[test]
    fn bridge_macs_are_stable_local_unicast() {
        let m = bridge_mac("stk-0123456789");
        assert_eq!(m, bridge_mac("stk-0123456789"));
        assert_eq!(m[0], 0x02);
        assert_ne!(m, bridge_mac("stk-0123456780"));
    }

    #[test]
    fn link_groups_are_stable_and_never_the_default() {
        assert_eq!(link_group("demo"), link_group("demo"));
        assert_ne!(link_group("demo"), link_group("demo2"));
        assert_ne!(link_group("demo"), 0);
        assert!(link_group("demo") < 1 << 31);
    }

    #[test]
    fn ifname_validation() {
        assert!(valid_ifname("eth0"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("a234567890123456"));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname("a b"));
        assert!(!valid_ifname(".."));
    }
}
