//! stack's packet filtering and NAT, as an nftables table per project.
//!
//! nftables tables are namespaces for rules: several can hook the same
//! point in the kernel, each with its own chains, and deleting a table
//! deletes all of it. So each project gets `table ip stack-<project>` and
//! nothing else of the host's firewall is edited, with one exception below.
//! The table is always rewritten whole in one nft transaction (`add table;
//! delete table; add table ...`), so the kernel switches from the old rules
//! to the new ones atomically and a rule can never be left behind.
//!
//! Chains (priorities as docker and netavark use them):
//!
//! - `prerouting` and `output` (nat, dstnat): packets to a local address
//!   jump to `ports`, where each published port is a DNAT to the
//!   container's address. `output` skips `127.0.0.0/8`: DNAT from loopback
//!   into a bridge needs `route_localnet`, which weakens the host, so the
//!   userland proxy serves loopback instead.
//! - `postrouting` (nat, srcnat): masquerade what leaves a non-internal
//!   network for elsewhere (outbound NAT), and hairpin traffic (a container
//!   reaching a published port of a neighbour through the host's address).
//! - `forward` (filter): traffic within a bridge is accepted; traffic
//!   between two stack bridges is dropped (networks are isolated); an
//!   internal network's traffic may not leave its bridge at all.
//!
//! The exception: an accept in our table does not override a DROP verdict
//! or policy elsewhere, so when the iptables-nft `filter FORWARD` chain has
//! policy DROP (as dockerd leaves it), containers could not talk. Then
//! stack inserts accept rules for its own bridges there, commented
//! `stack:<project>`, and removes exactly those rules again (by handle)
//! when the project's networks go.
//!
//! Rule generation is pure ([`ProjectRules::to_json`]) and unit-tested; the
//! JSON is checked against the `nftables` crate's schema types before it is
//! handed to the `nft` binary.

use std::net::Ipv4Addr;
use std::process::Command;

use ipnetwork::Ipv4Network;
use serde_json::{Value, json};

use super::NetworkError;
use super::names::{BRIDGE_PREFIX, table_name};

/// A network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRules {
    pub bridge: String,
    pub subnet: Ipv4Network,
    pub internal: bool,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: host side to container side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub protocol: Proto,
    /// `None`: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub dest: Ipv4Addr,
    pub dest_port: u16,
}

/// Everything the project's table must say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectRules {
    pub project: String,
    pub networks: Vec<NetRules>,
    pub ports: Vec<PortRule>,
}

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}
fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}
fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}
fn prefix(n: Ipv4Network) -> Value {
    json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix()}})
}

/// The comment that marks rules stack puts into chains it does not own.
pub fn foreign_comment(project: &str) -> String {
    format!("stack:{project}")
}

impl ProjectRules {
    pub fn table(&self) -> String {
        table_name(&self.project)
    }

    fn chain(&self, name: &str, kind: &str, hook: &str, prio: i32) -> Value {
        json!({"add": {"chain": {
            "family": "ip", "table": self.table(), "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"
        }}})
    }

    fn rule(&self, chain: &str, expr: Vec<Value>) -> Value {
        json!({"add": {"rule": {"family": "ip", "table": self.table(), "chain": chain, "expr": expr}}})
    }

    /// The nft JSON batch that replaces the project's table atomically.
    pub fn to_json(&self) -> Value {
        let table = json!({"table": {"family": "ip", "name": self.table()}});
        let mut cmds = vec![
            // Adding first makes the delete valid when the table is new.
            json!({"add": table.clone()}),
            json!({"delete": table.clone()}),
            json!({"add": table}),
            self.chain("prerouting", "nat", "prerouting", -100),
            self.chain("output", "nat", "output", -100),
            self.chain("postrouting", "nat", "postrouting", 100),
            self.chain("forward", "filter", "forward", 0),
            json!({"add": {"chain": {"family": "ip", "table": self.table(), "name": "ports"}}}),
        ];
        let local = m(
            "==",
            json!({"fib": {"result": "type", "flags": ["daddr"]}}),
            json!("local"),
        );
        let jump = json!({"jump": {"target": "ports"}});
        cmds.push(self.rule("prerouting", vec![local.clone(), jump.clone()]));
        cmds.push(self.rule(
            "output",
            vec![
                m(
                    "!=",
                    payload("ip", "daddr"),
                    json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
                ),
                local,
                jump,
            ],
        ));
        for p in &self.ports {
            let mut expr = Vec::new();
            if let Some(ip) = p.host_ip {
                expr.push(m("==", payload("ip", "daddr"), json!(ip.to_string())));
            }
            expr.push(m(
                "==",
                payload(p.protocol.as_str(), "dport"),
                json!(p.host_port),
            ));
            expr.push(json!({"dnat": {"addr": p.dest.to_string(), "port": p.dest_port}}));
            cmds.push(self.rule("ports", expr));
        }
        for n in &self.networks {
            let br = json!(n.bridge);
            // Hairpin: a container reaching a neighbour through a published
            // port must see replies come back from the host, not directly.
            cmds.push(self.rule(
                "postrouting",
                vec![
                    m("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                    m("==", payload("ip", "saddr"), prefix(n.subnet)),
                    m("==", meta("oifname"), br.clone()),
                    json!({"masquerade": null}),
                ],
            ));
            if !n.internal {
                cmds.push(self.rule(
                    "postrouting",
                    vec![
                        m("==", payload("ip", "saddr"), prefix(n.subnet)),
                        m("!=", meta("oifname"), br.clone()),
                        json!({"masquerade": null}),
                    ],
                ));
            }
            cmds.push(self.rule(
                "forward",
                vec![
                    m("==", meta("iifname"), br.clone()),
                    m("==", meta("oifname"), br.clone()),
                    json!({"accept": null}),
                ],
            ));
            if n.internal {
                cmds.push(self.rule(
                    "forward",
                    vec![m("==", meta("iifname"), br.clone()), json!({"drop": null})],
                ));
                cmds.push(self.rule(
                    "forward",
                    vec![m("==", meta("oifname"), br.clone()), json!({"drop": null})],
                ));
            } else {
                cmds.push(self.rule(
                    "forward",
                    vec![
                        m("==", meta("iifname"), br.clone()),
                        m("==", meta("oifname"), json!(format!("{BRIDGE_PREFIX}*"))),
                        json!({"drop": null}),
                    ],
                ));
                // Bridges named by `com.docker.network.bridge.name` escape
                // the wildcard: isolate them from the project's others by name.
                for other in &self.networks {
                    let custom = !other.bridge.starts_with(BRIDGE_PREFIX)
                        || !n.bridge.starts_with(BRIDGE_PREFIX);
                    if other.bridge != n.bridge && custom {
                        cmds.push(self.rule(
                            "forward",
                            vec![
                                m("==", meta("iifname"), br.clone()),
                                m("==", meta("oifname"), json!(other.bridge)),
                                json!({"drop": null}),
                            ],
                        ));
                    }
                }
            }
        }
        json!({"nftables": cmds})
    }

    /// Accept rules for `chain` (the host's `ip filter FORWARD`) so our
    /// bridges work when its policy is DROP.
    pub fn forward_accept_json(&self, table: &str, chain: &str) -> Value {
        let comment = foreign_comment(&self.project);
        let mut cmds = Vec::new();
        for n in &self.networks {
            let br = json!(n.bridge);
            let mut rules = vec![vec![
                m("==", meta("iifname"), br.clone()),
                m("==", meta("oifname"), br.clone()),
                json!({"accept": null}),
            ]];
            if !n.internal {
                rules.push(vec![
                    m("==", meta("iifname"), br.clone()),
                    json!({"accept": null}),
                ]);
                rules.push(vec![
                    m("==", meta("oifname"), br.clone()),
                    m(
                        "in",
                        json!({"ct": {"key": "state"}}),
                        json!(["established", "related"]),
                    ),
                    json!({"accept": null}),
                ]);
                // Published ports: new connections DNATed into the bridge.
                rules.push(vec![
                    m("==", meta("oifname"), br.clone()),
                    m("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                    json!({"accept": null}),
                ]);
            }
            for expr in rules {
                cmds.push(json!({"insert": {"rule": {
                    "family": "ip", "table": table, "chain": chain,
                    "expr": expr, "comment": comment
                }}}));
            }
        }
        json!({"nftables": cmds})
    }
}

/// Checks `batch` against the nftables crate's schema and runs it.
fn run_batch(batch: &Value) -> Result<(), NetworkError> {
    let typed: nftables::schema::Nftables = serde_json::from_value(batch.clone())
        .map_err(|e| NetworkError::Nftables(format!("stack built an invalid batch: {e}")))?;
    nftables::helper::apply_ruleset(&typed).map_err(|e| NetworkError::Nftables(e.to_string()))
}

fn nft_json(args: &[&str]) -> Result<Value, NetworkError> {
    let out = Command::new("nft")
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| NetworkError::Nftables(format!("cannot run nft: {e}")))?;
    if !out.status.success() {
        return Err(NetworkError::Nftables(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| NetworkError::Nftables(format!("nft printed unreadable JSON: {e}")))
}

/// The host's iptables-nft `ip filter FORWARD` chain, when its policy is
/// DROP (the case that needs our accept rules).
pub fn forward_chain_with_drop_policy() -> Result<Option<(String, String)>, NetworkError> {
    let v = nft_json(&["list", "chains", "ip"])?;
    let chains = v["nftables"].as_array().cloned().unwrap_or_default();
    Ok(chains.iter().find_map(|o| {
        let c = &o["chain"];
        (c["hook"] == "forward" && c["policy"] == "drop" && c["table"] == "filter").then(|| {
            (
                c["table"].as_str().unwrap_or("filter").to_string(),
                c["name"].as_str().unwrap_or("FORWARD").to_string(),
            )
        })
    }))
}

/// Deletes the rules stack inserted for `project` into `table`/`chain`.
fn remove_foreign_rules(project: &str, table: &str, chain: &str) -> Result<(), NetworkError> {
    let v = nft_json(&["-a", "list", "chain", "ip", table, chain])?;
    let comment = foreign_comment(project);
    let deletes: Vec<Value> = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["rule"]["comment"] == comment.as_str())
        .filter_map(|o| o["rule"]["handle"].as_u64())
        .map(|h| {
            json!({"delete": {"rule": {"family": "ip", "table": table, "chain": chain, "handle": h}}})
        })
        .collect();
    if deletes.is_empty() {
        return Ok(());
    }
    let batch = json!({"nftables": deletes});
    let text = batch.to_string();
    nftables::helper::apply_ruleset_raw(&text, None::<&str>, std::iter::empty::<&str>())
        .map(|_| ())
        .map_err(|e| NetworkError::Nftables(e.to_string()))
}

/// Makes the kernel's rules for the project what `rules` says (blocking:
/// runs `nft`).
pub fn apply(rules: &ProjectRules) -> Result<(), NetworkError> {
    run_batch(&rules.to_json())?;
    if let Some((table, chain)) = forward_chain_with_drop_policy()? {
        remove_foreign_rules(&rules.project, &table, &chain)?;
        if !rules.networks.is_empty() {
            run_batch(&rules.forward_accept_json(&table, &chain))?;
        }
    }
    Ok(())
}

/// Removes the project's table and any rules it put elsewhere (blocking).
/// Removing what is not there is not an error.
pub fn remove(project: &str) -> Result<(), NetworkError> {
    let table = json!({"table": {"family": "ip", "name": table_name(project)}});
    run_batch(&json!({"nftables": [{"add": table.clone()}, {"delete": table}]}))?;
    // The host's FORWARD chain may not exist at all; then there is nothing to clean.
    if let Ok(Some((table, chain))) = forward_chain_with_drop_policy() {
        remove_foreign_rules(project, &table, &chain)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProjectRules {
        ProjectRules {
            project: "demo".into(),
            networks: vec![
                NetRules {
                    bridge: "stk-aaaaaaaaaa".into(),
                    subnet: "172.20.0.0/16".parse().unwrap(),
                    internal: false,
                },
                NetRules {
                    bridge: "stk-bbbbbbbbbb".into(),
                    subnet: "172.21.0.0/16".parse().unwrap(),
                    internal: true,
                },
            ],
            ports: vec![
                PortRule {
                    protocol: Proto::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    dest: Ipv4Addr::new(172, 20, 0, 2),
                    dest_port: 80,
                },
                PortRule {
                    protocol: Proto::Udp,
                    host_ip: Some(Ipv4Addr::new(192, 0, 2, 2)),
                    host_port: 5353,
                    dest: Ipv4Addr::new(172, 20, 0, 3),
                    dest_port: 53,
                },
            ],
        }
    }

    fn rules_of(v: &Value, chain: &str) -> Vec<Value> {
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.get("add").or_else(|| c.get("insert")))
            .filter_map(|a| a.get("rule"))
            .filter(|r| r["chain"] == chain)
            .map(|r| r["expr"].clone())
            .collect()
    }

    #[test]
    fn batch_matches_the_nftables_schema() {
        let v = sample().to_json();
        let typed: nftables::schema::Nftables = serde_json::from_value(v.clone()).unwrap();
        assert!(typed.objects.len() > 8);
        let f = sample().forward_accept_json("filter", "FORWARD");
        let _: nftables::schema::Nftables = serde_json::from_value(f).unwrap();
    }

    #[test]
    fn table_is_replaced_atomically_and_named_after_the_project() {
        let v = sample().to_json();
        let cmds = v["nftables"].as_array().unwrap();
        assert_eq!(cmds[0]["add"]["table"]["name"], "stack-demo");
        assert_eq!(cmds[1]["delete"]["table"]["name"], "stack-demo");
        assert_eq!(cmds[2]["add"]["table"]["name"], "stack-demo");
    }

    #[test]
    fn published_ports_become_dnat_rules() {
        let v = sample().to_json();
        let ports = rules_of(&v, "ports");
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0][0]["match"]["left"]["payload"]["protocol"], "tcp");
        assert_eq!(ports[0][0]["match"]["right"], 8080);
        assert_eq!(ports[0][1]["dnat"]["addr"], "172.20.0.2");
        assert_eq!(ports[0][1]["dnat"]["port"], 80);
        // A host_ip restricts the destination address.
        assert_eq!(ports[1][0]["match"]["right"], "192.0.2.2");
        assert_eq!(ports[1][1]["match"]["left"]["payload"]["protocol"], "udp");
        // Loopback is left to the userland proxy.
        let output = rules_of(&v, "output");
        assert_eq!(output[0][0]["match"]["op"], "!=");
        assert_eq!(
            output[0][0]["match"]["right"]["prefix"]["addr"],
            "127.0.0.0"
        );
    }

    #[test]
    fn only_non_internal_networks_get_outbound_nat() {
        let v = sample().to_json();
        let post = rules_of(&v, "postrouting");
        let outbound: Vec<_> = post
            .iter()
            .filter(|r| r[1]["match"]["op"] == "!=")
            .collect();
        assert_eq!(outbound.len(), 1);
        assert_eq!(
            outbound[0][0]["match"]["right"]["prefix"]["addr"],
            "172.20.0.0"
        );
    }

    #[test]
    fn networks_are_isolated_and_internal_ones_closed() {
        let v = sample().to_json();
        let fwd = rules_of(&v, "forward");
        // Same-bridge accept, cross-bridge drop for the normal network.
        assert!(
            fwd.iter()
                .any(|r| r[0]["match"]["right"] == "stk-aaaaaaaaaa"
                    && r[1]["match"]["right"] == "stk-aaaaaaaaaa"
                    && r[2].get("accept").is_some())
        );
        assert!(
            fwd.iter()
                .any(|r| r[0]["match"]["right"] == "stk-aaaaaaaaaa"
                    && r[1]["match"]["right"] == "stk-*"
                    && r[2].get("drop").is_some())
        );
        // The internal network drops everything leaving or entering it.
        assert!(fwd.iter().any(|r| r.as_array().unwrap().len() == 2
            && r[0]["match"]["left"]["meta"]["key"] == "iifname"
            && r[0]["match"]["right"] == "stk-bbbbbbbbbb"
            && r[1].get("drop").is_some()));
    }

    #[test]
    fn custom_bridge_names_are_isolated_by_name() {
        let mut r = sample();
        r.networks[1].bridge = "br-custom".into();
        r.networks[1].internal = false;
        let fwd = rules_of(&r.to_json(), "forward");
        for (from, to) in [
            ("stk-aaaaaaaaaa", "br-custom"),
            ("br-custom", "stk-aaaaaaaaaa"),
        ] {
            assert!(
                fwd.iter().any(|x| x[0]["match"]["right"] == from
                    && x[1]["match"]["right"] == to
                    && x[2].get("drop").is_some()),
                "{from} -> {to} not dropped"
            );
        }
    }

    #[test]
    fn forward_accept_rules_are_commented_for_removal() {
        let f = sample().forward_accept_json("filter", "FORWARD");
        let cmds = f["nftables"].as_array().unwrap();
        assert!(!cmds.is_empty());
        for c in cmds {
            assert_eq!(c["insert"]["rule"]["comment"], "stack:demo");
            assert_eq!(c["insert"]["rule"]["chain"], "FORWARD");
        }
        // The internal network only gets its intra-bridge accept.
        let internal = cmds
            .iter()
            .filter(|c| c.to_string().contains("stk-bbbbbbbbbb"))
            .count();
        assert_eq!(internal, 1);
    }
}
