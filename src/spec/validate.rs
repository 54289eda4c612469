//! The rules no schema can express: references between parts of a project.
//!
//! The schema checks each value on its own. These checks look across the
//! project: a service that depends on, links to, shares the namespace or
//! volumes of a service that does not exist (or is switched off by a
//! profile); dependency cycles, named in full; networks, volumes, secrets
//! and configs used but never defined; a fixed `container_name` on a service
//! with several replicas; the same host port published twice. Positions come
//! from the merged document, found by key path.

use std::collections::{BTreeMap, BTreeSet};

use super::diagnostic::{Diagnostic, Diagnostics, Span, did_you_mean};
use super::model::{MountType, Service, Stack};
use super::yaml::Node;

pub fn check(stack: &Stack, doc: &Node) -> Result<(), Diagnostics> {
    let mut diags = Diagnostics::default();
    for (name, service) in &stack.services {
        references(stack, doc, name, service, &mut diags);
        resources(stack, doc, name, service, &mut diags);
    }
    cycles(stack, doc, &mut diags);
    ports(stack, doc, &mut diags);
    diags.into_result(())
}

/// The span of the deepest node found along `path` (keys of mappings):
/// the key's own position for the last step.
pub fn locate(doc: &Node, path: &[&str]) -> Span {
    let mut node = doc;
    let mut span = doc.span.clone();
    for key in path {
        let Some(entry) = node.as_map().and_then(|m| m.get(*key)) else {
            break;
        };
        span = entry.key_span.clone();
        node = &entry.value;
    }
    span
}

fn err(doc: &Node, path: &[&str], message: String) -> Diagnostic {
    Diagnostic::new(message)
        .at(&locate(doc, path))
        .path(path.join("."))
}

fn references(stack: &Stack, doc: &Node, name: &str, s: &Service, diags: &mut Diagnostics) {
    // A `provider` service is run by a plugin, not from an image.
    if s.image.is_none() && s.build.is_none() && !s.extra.contains_key("provider") {
        diags.push(
            err(
                doc,
                &["services", name],
                format!("service `{name}` has neither an image nor a build context"),
            )
            .hint("add `image: NAME`, or `build: DIR` with a Dockerfile"),
        );
    }
    for (target, why) in s.dependencies() {
        if stack.services.contains_key(target) {
            continue;
        }
        let optional = why == "depends_on" && s.depends_on.get(target).is_some_and(|d| !d.required);
        if optional {
            continue;
        }
        let path = ["services", name, why];
        let d = if let Some(off) = stack.disabled.get(target) {
            err(
                doc,
                &path,
                format!(
                    "service `{name}` needs `{target}` ({why}), which is switched off by its profiles"
                ),
            )
            .hint(format!(
                "enable it with --profile {}, or name `{target}` on the command line",
                off.profiles.join(" --profile ")
            ))
        } else {
            let d = err(
                doc,
                &path,
                format!("service `{name}` needs `{target}` ({why}), which is not defined"),
            );
            match did_you_mean(target, stack.services.keys().map(String::as_str)) {
                Some(near) => d.hint(format!("did you mean `{near}`?")),
                None => d.hint("define that service, or remove the reference"),
            }
        };
        diags.push(d);
    }
    if let Some(mode) = &s.network_mode
        && !s.networks.is_empty()
    {
        diags.push(
            err(
                doc,
                &["services", name, "network_mode"],
                format!("service `{name}` sets both `network_mode: {mode}` and `networks`"),
            )
            .hint("keep one: a service shares another namespace or joins networks, not both"),
        );
    }
}

fn resources(stack: &Stack, doc: &Node, name: &str, s: &Service, diags: &mut Diagnostics) {
    for net in s.networks.keys() {
        if !stack.networks.contains_key(net) {
            let d = err(
                doc,
                &["services", name, "networks", net],
                format!("service `{name}` uses network `{net}`, which is not defined"),
            );
            diags.push(undefined_hint(d, net, "networks", stack.networks.keys()));
        }
    }
    for m in &s.volumes {
        if m.kind != MountType::Volume {
            continue;
        }
        if let Some(vol) = &m.source
            && !stack.volumes.contains_key(vol)
        {
            let d = err(
                doc,
                &["services", name, "volumes"],
                format!("service `{name}` mounts volume `{vol}`, which is not defined"),
            );
            let d = match did_you_mean(vol, stack.volumes.keys().map(String::as_str)) {
                Some(near) => d.hint(format!("did you mean `{near}`?")),
                None => d.hint(format!(
                    "add it under the top-level `volumes:` (`{vol}: {{}}`), or write `./{vol}` for a directory of the project"
                )),
            };
            diags.push(d);
        }
    }
    for (kind, refs, defined) in [
        ("secret", &s.secrets, &stack.secrets),
        ("config", &s.configs, &stack.configs),
    ] {
        for r in refs {
            if !defined.contains_key(&r.source) {
                let key = format!("{kind}s");
                let d = err(
                    doc,
                    &["services", name, &key],
                    format!(
                        "service `{name}` uses {kind} `{}`, which is not defined",
                        r.source
                    ),
                );
                diags.push(undefined_hint(d, &r.source, &key, defined.keys()));
            }
        }
    }
    if s.container_name.is_some() && s.replicas() > 1 {
        diags.push(
            err(
                doc,
                &["services", name, "container_name"],
                format!(
                    "service `{name}` has a fixed container_name but {} replicas",
                    s.replicas()
                ),
            )
            .hint("container names must be unique: remove container_name or use one replica"),
        );
    }
    if let (Some(scale), Some(replicas)) = (s.scale, s.deploy.as_ref().and_then(|d| d.replicas))
        && scale != replicas
    {
        diags.push(
            err(
                doc,
                &["services", name, "scale"],
                format!("service `{name}` sets scale {scale} but deploy.replicas {replicas}"),
            )
            .hint("keep one of them"),
        );
    }
}

fn undefined_hint<'a>(
    d: Diagnostic,
    name: &str,
    section: &str,
    defined: impl Iterator<Item = &'a String>,
) -> Diagnostic {
    match did_you_mean(name, defined.map(String::as_str)) {
        Some(near) => d.hint(format!("did you mean `{near}`?")),
        None => d.hint(format!("add `{name}` under the top-level `{section}:`")),
    }
}

/// Depth-first search for cycles in the service dependency graph; each
/// cycle is reported once, naming every service in it.
fn cycles(stack: &Stack, doc: &Node, diags: &mut Diagnostics) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit<'a>(
        stack: &'a Stack,
        name: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        found: &mut Vec<Vec<&'a str>>,
    ) {
        marks.insert(name, Mark::Open);
        path.push(name);
        if let Some(s) = stack.services.get(name) {
            for (dep, _) in s.dependencies() {
                let Some((dep, _)) = stack.services.get_key_value(dep) else {
                    continue;
                };
                match marks.get(dep.as_str()).copied().unwrap_or(Mark::New) {
                    Mark::New => visit(stack, dep, marks, path, found),
                    Mark::Open => {
                        let start = path.iter().position(|n| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<&str> = path[start..].to_vec();
                        cycle.push(dep);
                        found.push(cycle);
                    }
                    Mark::Done => {}
                }
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for name in stack.services.keys() {
        if marks.get(name.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            visit(stack, name, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    for cycle in found {
        let first = cycle[0];
        let message = if cycle.len() == 2 {
            format!("service `{first}` depends on itself")
        } else {
            format!("dependency cycle between services: {}", cycle.join(" → "))
        };
        diags.push(
            err(doc, &["services", first], message)
                .hint("remove one of these dependencies (depends_on, links, network_mode: service:, volumes_from)"),
        );
    }
}

/// Who publishes a host port: (host address, `None` for all; service).
type Publishers<'a> = Vec<(Option<String>, &'a str)>;

/// A host port (per address and protocol) may be published once.
fn ports(stack: &Stack, doc: &Node, diags: &mut Diagnostics) {
    let mut seen: BTreeMap<(String, u16), Publishers> = BTreeMap::new();
    let mut reported = BTreeSet::new();
    for (name, s) in &stack.services {
        for p in &s.ports {
            let Some((lo, hi)) = p.published_range() else {
                continue;
            };
            if lo != hi {
                // A range lets the host pick a free port: no fixed clash.
                continue;
            }
            let ip = p.host_ip.clone().filter(|ip| ip != "0.0.0.0" && ip != "::");
            let key = (p.protocol.clone(), lo);
            let users = seen.entry(key).or_default();
            let clash = users
                .iter()
                .find(|(other_ip, _)| other_ip.is_none() || ip.is_none() || *other_ip == ip)
                .map(|(_, svc)| *svc);
            let clash = clash.or((s.replicas() > 1).then_some(name.as_str()));
            if let Some(other) = clash
                && reported.insert((name.clone(), lo, p.protocol.clone()))
            {
                let message = if other == name {
                    format!(
                        "service `{name}` publishes host port {lo}/{} for each of its {} replicas",
                        p.protocol,
                        s.replicas()
                    )
                } else {
                    format!(
                        "host port {lo}/{} is published by both `{other}` and `{name}`",
                        p.protocol
                    )
                };
                diags.push(
                    err(doc, &["services", name, "ports"], message)
                        .hint("publish a different host port, a range (`8000-8010:80`), or let the host choose (`\"80\"`)"),
                );
            }
            users.push((ip, name.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::diagnostic::{Diagnostics, Source};
    use crate::spec::env::Environment;
    use crate::spec::{normalize, yaml};

    fn check(text: &str) -> Result<(), Diagnostics> {
        let src = Source::new("/p/compose.yaml", text);
        let doc = yaml::parse(&src).unwrap().remove(0);
        let stack = normalize::normalize(&doc, "p", &Environment::default()).unwrap();
        super::check(&stack, &doc)
    }

    fn messages(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_references_suggest_a_name() {
        let m = messages("services:\n  web: {image: x, depends_on: [dbb]}\n  db: {image: x}\n");
        assert!(
            m.contains("needs `dbb` (depends_on), which is not defined"),
            "{m}"
        );
        assert!(m.contains("did you mean `db`?"), "{m}");
        assert!(m.contains("compose.yaml:2:"), "{m}");
        let m = messages("services:\n  web: {image: x, network_mode: 'service:nope'}\n");
        assert!(m.contains("`nope` (network_mode)"), "{m}");
        let m =
            messages("services:\n  web: {image: x, volumes_from: [nope], links: ['gone:alias']}\n");
        assert!(
            m.contains("`nope` (volumes_from)") && m.contains("`gone` (links)"),
            "{m}"
        );
        assert!(check("services:\n  web: {image: x, depends_on: {db: {condition: service_started, required: false}}}\n").is_ok());
    }

    #[test]
    fn cycles_name_every_service() {
        let m = messages(
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n  c: {image: x, depends_on: [a]}\n",
        );
        assert!(m.contains("a → b → c → a"), "{m}");
        let m = messages("services:\n  a: {image: x, depends_on: [a]}\n");
        assert!(m.contains("depends on itself"), "{m}");
    }

    #[test]
    fn undefined_resources() {
        let m = messages(
            "services:\n  web:\n    image: x\n    networks: [front]\n    volumes: ['data:/d']\n    secrets: [pw]\n    configs: [cf]\n",
        );
        for needle in [
            "network `front`",
            "volume `data`",
            "secret `pw`",
            "config `cf`",
        ] {
            assert!(m.contains(needle), "{needle} in {m}");
        }
        assert!(m.contains("4 errors"), "{m}");
    }

    #[test]
    fn container_name_with_replicas_and_port_clashes() {
        let m = messages("services:\n  web: {image: x, container_name: w, scale: 2}\n");
        assert!(m.contains("fixed container_name but 2 replicas"), "{m}");
        let m = messages(
            "services:\n  a: {image: x, ports: ['8080:80']}\n  b: {image: x, ports: ['8080:81']}\n",
        );
        assert!(
            m.contains("host port 8080/tcp is published by both `a` and `b`"),
            "{m}"
        );
        assert!(check("services:\n  a: {image: x, ports: ['127.0.0.1:8080:80']}\n  b: {image: x, ports: ['127.0.0.2:8080:80', '8080:80/udp']}\n").is_ok());
        let m = messages("services:\n  a: {image: x, ports: ['8080:80'], deploy: {replicas: 3}}\n");
        assert!(m.contains("for each of its 3 replicas"), "{m}");
    }

    #[test]
    fn network_mode_and_networks_are_exclusive() {
        let m = messages("services:\n  a: {image: x, network_mode: host, networks: [default]}\n");
        assert!(
            m.contains("both `network_mode: host` and `networks`"),
            "{m}"
        );
    }
}
