//! Merging Compose documents: several `-f` files, and a service onto the one it `extends`.
//!
//! Compose merges the untyped documents, before validation, the way compose-go's
//! `override` package does (`merge.go` for the rules, `uncity.go` for the
//! sequences whose entries are unique). A later file's mapping merges into the
//! earlier one key by key, recursively, new keys going after the earlier ones;
//! a scalar in the later file wins; a sequence is appended, except that an entry
//! strictly identical to one already present is dropped. Exceptions, by path:
//! `command`, `entrypoint` and `healthcheck.test` are replaced whole. Some
//! sequences hold entries that are unique by a key, and a later entry with the
//! same key replaces the earlier one where it stood: `ports` by host IP,
//! published port, target and protocol (short `"8080:80"` and long forms alike),
//! `volumes` and `devices` by container path, `secrets` and `configs` by target
//! (their default target derived from the source), `env_file` by path,
//! `volumes_from` by source, `tmpfs` by mount point, and `expose`, `dns`,
//! `dns_search`, `dns_opt`, `cap_add`, `cap_drop`, `security_opt`, `links`,
//! `profiles`, `label_file`, `build.tags`, `build.platforms` and a service
//! network's `aliases` and `link_local_ips` by their text; `dns`, `dns_search`,
//! `env_file`, `label_file` and `tmpfs` may also be a single string. The
//! `KEY=VALUE` attributes (`environment`, `labels`, `annotations`, `sysctls`,
//! `build.args`, `build.labels`, `build.additional_contexts`, `deploy.labels`,
//! and the `labels` of networks, volumes, secrets and configs) merge by key
//! whether written as a list or a mapping; a later null is a value (`KEY` with
//! no `=`). `extra_hosts` keeps every distinct host and address pair of both
//! files, because a host may resolve to several addresses. `depends_on`,
//! `networks` and `models` given as a list in one file and a mapping in the
//! other become a mapping (a listed dependency is `service_started` and
//! required). `build: ./dir` is `build: {context: ./dir}`. `logging` merges only
//! when both files name the same driver (or one names none), otherwise the later
//! one replaces it. Each `ulimits` entry merges when both are mappings and is
//! replaced otherwise. `networks.*.ipam.config` entries merge by `subnet`.
//! Elsewhere a later null leaves the earlier value in place. Two tags steer the
//! merge: a later `!reset` value removes the key (whatever the value written
//! after the tag), and an `!override` value replaces the earlier one without
//! merging. Tags only concern the files before theirs: a document is cleaned
//! of them ([`strip_tags`]) before serving as a base, so a `!reset` in the first
//! file, or one whose key nothing earlier set, simply disappears; so does a
//! `!reset` entry of a sequence (it removes no earlier entry).
//!
//! Every node keeps the span of the file it came from: a value that wins keeps
//! its own, a merged mapping or sequence keeps the earlier one's, and entries
//! made by a conversion (`KEY=VALUE` to a mapping entry, a listed dependency
//! to its mapping) take the span of the text they were made from.
//!
//! Where stack differs from compose-go, on purpose:
//! - compose-go reports an error when a mapping meets a sequence or an
//!   attribute holds an entry it cannot read; here the later value wins whole
//!   and validation reports it afterwards, at its own position.
//! - compose-go turns merged `KEY=VALUE` attributes into a sorted list and a
//!   list-form `depends_on`, `networks` or `models` into a mapping even when
//!   both files used a list; here the form is kept when both files agree and a
//!   mapping is used when they differ. The meaning is the same.
//! - compose-go identifies a short port string by its text until a later
//!   pass expands it; here short and long ports share one identity from the
//!   start. A port range keeps its text as identity (it is not expanded).
//! - compose-go also removes duplicates from the unique sequences of a lone
//!   file after loading it; here they are made unique when a merge meets them.
//! - `tmpfs` entries are unique by mount point (compose-go cuts at `=`), a
//!   relative secret `target` is under `/run/secrets`, `extra_hosts` compares
//!   host and address (`db:1.2.3.4` is `db=1.2.3.4`), `volumes_from`,
//!   `security_opt`, `label_file` and the `labels` of secrets and configs get
//!   the treatment above (compose-go appends them), and `build.platforms` is
//!   unique where compose-go names a `build.platform` that does not exist.
//! - `networks.*.ipam.config` keeps the earlier entries whose subnet the later
//!   file does not mention (compose-go drops them).

use std::collections::HashMap;

use super::diagnostic::Span;
use super::yaml::{Entry, Kind, Map, Node, Scalar, ScalarType, Tag};

/// Merges `over` (a later file) onto `base` (an earlier one), both whole Compose documents
/// (top-level mappings). Returns the merged document.
pub fn merge_documents(base: Node, over: Node) -> Node {
    merge_root(base, over, Vec::new())
}

/// Merges one service definition onto another (also used by `extends`, where the extending service is `over`).
pub fn merge_service(base: Node, over: Node) -> Node {
    // compose-go merges an extended service as if it stood at `services.x`, so
    // the per-attribute rules apply unchanged; `*` never names a real key here.
    merge_root(base, over, vec!["services".to_string(), "*".to_string()])
}

/// Removes every `!reset`-tagged value left in a document and clears `!override` tags (call after the last merge; a `!reset` in the first file simply removes the key).
pub fn strip_tags(doc: &mut Node) {
    if doc.tag == Some(Tag::Reset) {
        *doc = Node::null(doc.span.clone());
    } else {
        strip(doc);
    }
}

fn merge_root(mut base: Node, over: Node, mut path: Vec<String>) -> Node {
    // The base's own tags concerned the files before it, which are merged in
    // already (or there were none): it enters the merge clean.
    strip_tags(&mut base);
    let span = over.span.clone();
    merge(base, over, &mut path).unwrap_or_else(|| Node::null(span))
}

/// Clears tags below and at `node` and drops the `!reset` entries under it.
fn strip(node: &mut Node) {
    node.tag = None;
    match &mut node.kind {
        Kind::Map(map) => {
            map.retain(|_, entry| entry.value.tag != Some(Tag::Reset));
            for entry in map.values_mut() {
                strip(&mut entry.value);
            }
        }
        Kind::Seq(items) => {
            items.retain(|item| item.tag != Some(Tag::Reset));
            items.iter_mut().for_each(strip);
        }
        Kind::Scalar(_) => {}
    }
}

/// A later file's value as it enters the merged document: nothing when it is
/// `!reset`, otherwise cleaned of its tags.
fn take(mut node: Node) -> Option<Node> {
    if node.tag == Some(Tag::Reset) {
        return None;
    }
    strip(&mut node);
    Some(node)
}

/// Like [`take`], for a value whose caller already knows it is not `!reset`.
fn cleaned(mut node: Node) -> Node {
    strip(&mut node);
    node
}

/// How the values found at one path merge.
#[derive(Clone, Copy)]
enum Rule {
    /// Mappings merge by key, sequences append, anything else: the later wins.
    Default,
    /// The later value replaces the earlier one (`command`, ...).
    Replace,
    /// `KEY=VALUE` list or mapping, merged by key.
    KeyValue,
    /// `host:ip` / `host=ip` list or `host: ip` mapping: the union of both.
    ExtraHosts,
    /// A sequence whose entries are unique by an identity; `one_string` when a
    /// single string may stand for a one-entry list.
    Unique { by: Identity, one_string: bool },
    /// `build`: a string is the `context`.
    Build,
    /// `depends_on`: list or mapping of services.
    DependsOn,
    /// `networks` and `models` of a service: list or mapping of names.
    Names,
    /// `logging`: a change of driver replaces the options.
    Logging,
    /// One `ulimits` entry: a number or a `soft`/`hard` mapping.
    Ulimit,
    /// `networks.*.ipam.config`: entries identified by their subnet.
    IpamConfig,
}

/// What makes two entries of a unique sequence the same entry.
#[derive(Clone, Copy)]
enum Identity {
    /// The entry's text.
    Exact,
    /// Host IP, published port, target port and protocol.
    Port,
    /// The path in the container.
    Volume,
    /// The device path in the container.
    Device,
    /// The target, by default `/run/secrets/<source>`.
    Secret,
    /// The target, by default `/<source>`.
    Config,
    /// The file's path.
    EnvFile,
    /// The service or container, without `:ro`/`:rw`.
    VolumesFrom,
    /// The mount point, before the options.
    Tmpfs,
}

fn unique(by: Identity, one_string: bool) -> Rule {
    Rule::Unique { by, one_string }
}

/// The rule for a path from the document's root (`services`, name, attribute, ...).
fn rule(path: &[String]) -> Rule {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["services", _, "command" | "entrypoint"] | ["services", _, "healthcheck", "test"] => {
            Rule::Replace
        }
        [
            "services",
            _,
            "environment" | "labels" | "annotations" | "sysctls",
        ]
        | [
            "services",
            _,
            "build",
            "args" | "labels" | "additional_contexts",
        ]
        | ["services", _, "deploy", "labels"]
        | ["networks" | "volumes" | "secrets" | "configs", _, "labels"] => Rule::KeyValue,
        ["services", _, "extra_hosts"] | ["services", _, "build", "extra_hosts"] => {
            Rule::ExtraHosts
        }
        ["services", _, "build"] => Rule::Build,
        ["services", _, "depends_on"] => Rule::DependsOn,
        ["services", _, "networks" | "models"] => Rule::Names,
        ["services", _, "logging"] => Rule::Logging,
        ["services", _, "ulimits", _] => Rule::Ulimit,
        ["networks", _, "ipam", "config"] => Rule::IpamConfig,
        ["services", _, "ports"] => unique(Identity::Port, false),
        ["services", _, "volumes"] => unique(Identity::Volume, false),
        ["services", _, "devices"] => unique(Identity::Device, false),
        ["services", _, "secrets"] => unique(Identity::Secret, false),
        ["services", _, "configs"] => unique(Identity::Config, false),
        ["services", _, "env_file"] => unique(Identity::EnvFile, true),
        ["services", _, "volumes_from"] => unique(Identity::VolumesFrom, false),
        ["services", _, "tmpfs"] => unique(Identity::Tmpfs, true),
        ["services", _, "dns" | "dns_search" | "label_file"] => unique(Identity::Exact, true),
        [
            "services",
            _,
            "expose" | "dns_opt" | "cap_add" | "cap_drop" | "security_opt" | "links" | "profiles",
        ]
        | ["services", _, "networks", _, "aliases" | "link_local_ips"]
        | ["services", _, "build", "tags" | "platforms"] => unique(Identity::Exact, false),
        _ => Rule::Default,
    }
}

/// Merges `over` onto `base` at `path`; `None` when `over` is `!reset`.
fn merge(base: Node, over: Node, path: &mut Vec<String>) -> Option<Node> {
    match over.tag {
        Some(Tag::Reset) => return None,
        Some(Tag::Override) => return take(over),
        None => {}
    }
    let merged = match rule(path) {
        Rule::Replace => cleaned(over),
        // compose-go decides these two before looking for a null.
        Rule::Ulimit if base.as_map().is_some() && over.as_map().is_some() => {
            merge_default(base, over, path)
        }
        Rule::Ulimit => cleaned(over),
        _ if over.is_null() => base,
        _ if base.is_null() => cleaned(over),
        Rule::Default => merge_default(base, over, path),
        Rule::KeyValue => merge_key_values(base, over),
        Rule::ExtraHosts => merge_extra_hosts(base, over),
        Rule::Unique { by, one_string } => merge_unique(base, over, by, one_string),
        Rule::Build => merge_build(base, over, path),
        Rule::DependsOn => merge_names(base, over, path, started),
        Rule::Names => merge_names(base, over, path, no_value),
        Rule::Logging => merge_logging(base, over, path),
        Rule::IpamConfig => merge_ipam_config(base, over, path),
    };
    Some(merged)
}

/// Mappings merge by key, sequences append what they lack, otherwise `over` wins.
fn merge_default(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    match (base.kind, over.kind) {
        (Kind::Map(b), Kind::Map(o)) => Node::map(merge_maps(b, o, path), base.span),
        (Kind::Seq(b), Kind::Seq(o)) => Node::new(Kind::Seq(append(b, o)), base.span),
        (_, kind) => cleaned(Node::new(kind, over.span)),
    }
}

fn merge_maps(mut base: Map, over: Map, path: &mut Vec<String>) -> Map {
    for (key, entry) in over {
        if entry.value.tag == Some(Tag::Reset) {
            base.shift_remove(&key);
            continue;
        }
        let Some(index) = base.get_index_of(&key) else {
            if let Some(value) = take(entry.value) {
                base.insert(
                    key,
                    Entry {
                        key_span: entry.key_span,
                        value,
                    },
                );
            }
            continue;
        };
        // The earlier value is moved out for the merge and the result put back
        // in its place, so the key keeps its position (and its first span).
        let Some((_, slot)) = base.get_index_mut(index) else {
            continue;
        };
        let earlier = std::mem::replace(&mut slot.value, Node::null(Span::default()));
        path.push(key);
        let merged = merge(earlier, entry.value, path);
        path.pop();
        match merged {
            Some(value) => {
                if let Some((_, slot)) = base.get_index_mut(index) {
                    slot.value = value;
                }
            }
            None => {
                base.shift_remove_index(index);
            }
        }
    }
    base
}

/// Appends the later entries, skipping those identical to one already there
/// (compose-go does so that merging the same file twice changes nothing).
fn append(mut base: Vec<Node>, over: Vec<Node>) -> Vec<Node> {
    for item in over.into_iter().filter_map(take) {
        if !base.contains(&item) {
            base.push(item);
        }
    }
    base
}

/// Keeps one entry per identity, the last one, where the first one stood.
/// Entries without an identity (unreadable ones) are only deduplicated when
/// strictly identical.
fn unique_by(
    items: impl IntoIterator<Item = Node>,
    key: impl Fn(&Node) -> Option<String>,
) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in items {
        match key(&item) {
            Some(key) => match seen.get(&key) {
                Some(&index) => {
                    if let Some(slot) = out.get_mut(index) {
                        *slot = item;
                    }
                }
                None => {
                    seen.insert(key, out.len());
                    out.push(item);
                }
            },
            None => {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
        }
    }
    out
}

/// The entries of a sequence (or of a lone string where one may stand for a
/// list); the node back when it is neither.
fn entries(node: Node, one_string: bool) -> Result<Vec<Node>, Node> {
    match node.kind {
        Kind::Seq(items) => Ok(items),
        Kind::Scalar(_) if one_string && !node.is_null() => Ok(vec![node]),
        _ => Err(node),
    }
}

fn merge_unique(base: Node, over: Node, by: Identity, one_string: bool) -> Node {
    let over_span = over.span.clone();
    let over = match entries(over, one_string) {
        Ok(items) => items.into_iter().filter_map(take).collect::<Vec<_>>(),
        Err(over) => return cleaned(over),
    };
    let span = base.span.clone();
    match entries(base, one_string) {
        Ok(base) => Node::new(
            Kind::Seq(unique_by(base.into_iter().chain(over), |n| identity(by, n))),
            span,
        ),
        Err(_) => Node::new(Kind::Seq(over), over_span),
    }
}

fn identity(by: Identity, item: &Node) -> Option<String> {
    let text = |key: &str| item.get(key).and_then(Node::as_str).map(str::to_string);
    let is_map = item.as_map().is_some();
    match by {
        Identity::Exact => item.as_str().map(str::to_string),
        Identity::Port => port_identity(item),
        Identity::Volume | Identity::Device if is_map => text("target"),
        Identity::Volume => item.as_str().map(volume_target),
        Identity::Device => item.as_str().map(|spec| {
            let mut parts = spec.split(':');
            let first = parts.next().unwrap_or_default();
            parts.next().unwrap_or(first).to_string()
        }),
        Identity::Secret => mount_identity(item, "/run/secrets"),
        Identity::Config => mount_identity(item, ""),
        Identity::EnvFile if is_map => text("path"),
        Identity::EnvFile => item.as_str().map(str::to_string),
        Identity::VolumesFrom => item.as_str().map(|s| {
            s.strip_suffix(":ro")
                .or_else(|| s.strip_suffix(":rw"))
                .unwrap_or(s)
                .to_string()
        }),
        Identity::Tmpfs => item
            .as_str()
            .map(|s| s.split(':').next().unwrap_or_default().to_string()),
    }
}

/// `host_ip:published:target/protocol`, with Docker's defaults filled in so
/// that `"8080:80"` and `{target: 80, published: 8080}` are the same port.
fn port_identity(item: &Node) -> Option<String> {
    let (host, published, target, protocol) = match &item.kind {
        Kind::Map(_) => {
            let text = |key: &str| item.get(key).and_then(Node::as_str).unwrap_or_default();
            (
                text("host_ip"),
                text("published"),
                item.get("target")?.as_str()?,
                text("protocol"),
            )
        }
        Kind::Scalar(_) => {
            let spec = item.as_str()?.trim();
            let (rest, protocol) = spec.rsplit_once('/').unwrap_or((spec, ""));
            let (host, published, target) = split_port(rest);
            (host, published, target, protocol)
        }
        Kind::Seq(_) => return None,
    };
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let protocol = if protocol.is_empty() {
        "tcp".to_string()
    } else {
        protocol.to_ascii_lowercase()
    };
    Some(format!("{host}:{published}:{target}/{protocol}"))
}

/// `[host_ip:][published:]target`, the host possibly an IPv6 address, bracketed or not.
fn split_port(spec: &str) -> (&str, &str, &str) {
    if let Some((host, tail)) = spec
        .strip_prefix('[')
        .and_then(|after| after.split_once(']'))
    {
        let tail = tail.strip_prefix(':').unwrap_or(tail);
        let (published, target) = tail.rsplit_once(':').unwrap_or(("", tail));
        return (host, published, target);
    }
    let mut parts = spec.rsplitn(3, ':');
    let target = parts.next().unwrap_or_default();
    let published = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    (host, published, target)
}

/// The container path of a short volume `[source:]target[:mode]`. Like
/// compose-go, a single letter before a colon is a Windows drive (`C:\data`).
fn volume_target(spec: &str) -> String {
    let mut fields: Vec<String> = Vec::new();
    let mut segments = spec.split(':').peekable();
    while let Some(segment) = segments.next() {
        let drive = segment.len() == 1 && segment.chars().all(|c| c.is_ascii_alphabetic());
        match segments.peek() {
            Some(next) if drive => {
                fields.push(format!("{segment}:{next}"));
                segments.next();
            }
            _ => fields.push(segment.to_string()),
        }
    }
    match fields.as_slice() {
        [only] => only.clone(),
        [_, target, ..] => target.clone(),
        [] => String::new(),
    }
}

/// A secret's or config's path in the container: `target`, by default
/// `<dir>/<source>`; a relative secret target is under `/run/secrets` too.
fn mount_identity(item: &Node, dir: &str) -> Option<String> {
    if item.as_map().is_none() {
        return item.as_str().map(|source| format!("{dir}/{source}"));
    }
    if let Some(target) = item.get("target").and_then(Node::as_str) {
        if dir.is_empty() || target.starts_with('/') {
            return Some(target.to_string());
        }
        return Some(format!("{dir}/{target}"));
    }
    let source = item.get("source").and_then(Node::as_str)?;
    Some(format!("{dir}/{source}"))
}

/// A string made from part of another scalar, keeping whether that one came
/// from interpolation.
fn derived(text: impl Into<String>, from: &Scalar, span: &Span) -> Node {
    let template = matches!(from.ty, ScalarType::Str { template: true });
    Node::new(
        Kind::Scalar(Scalar {
            text: text.into(),
            ty: ScalarType::Str { template },
        }),
        span.clone(),
    )
}

/// The key of a `KEY=VALUE` entry.
fn kv_key(item: &Node) -> Option<String> {
    let text = item.as_str()?;
    Some(
        text.split_once('=')
            .map_or(text, |(key, _)| key)
            .to_string(),
    )
}

/// `[KEY=VALUE, KEY]` as `{KEY: VALUE, KEY: null}`; the list back when an
/// entry is not a string. A repeated key keeps its first place and last value.
fn kv_list_to_map(items: Vec<Node>) -> Result<Map, Vec<Node>> {
    let readable = |item: &Node| item.tag == Some(Tag::Reset) || item.as_str().is_some();
    if !items.iter().all(readable) {
        return Err(items);
    }
    let mut map = Map::new();
    for item in items.into_iter().filter_map(take) {
        let Kind::Scalar(scalar) = &item.kind else {
            continue;
        };
        let (key, value) = match scalar.text.split_once('=') {
            Some((key, value)) => (key.to_string(), derived(value, scalar, &item.span)),
            None => (scalar.text.clone(), Node::null(item.span.clone())),
        };
        map.insert(
            key,
            Entry {
                key_span: item.span,
                value,
            },
        );
    }
    Ok(map)
}

/// Later keys replace earlier ones whole (a null included); `!reset` removes.
fn override_keys(mut base: Map, over: Map) -> Map {
    for (key, entry) in over {
        if entry.value.tag == Some(Tag::Reset) {
            base.shift_remove(&key);
        } else {
            base.insert(
                key,
                Entry {
                    key_span: entry.key_span,
                    value: cleaned(entry.value),
                },
            );
        }
    }
    base
}

fn merge_key_values(base: Node, over: Node) -> Node {
    match (base.kind, over.kind) {
        (Kind::Seq(b), Kind::Seq(o)) => Node::new(
            Kind::Seq(unique_by(
                b.into_iter().chain(o.into_iter().filter_map(take)),
                kv_key,
            )),
            base.span,
        ),
        (Kind::Map(b), Kind::Map(o)) => Node::map(override_keys(b, o), base.span),
        (Kind::Map(b), Kind::Seq(o)) => match kv_list_to_map(o) {
            Ok(o) => Node::map(override_keys(b, o), base.span),
            Err(o) => cleaned(Node::new(Kind::Seq(o), over.span)),
        },
        (Kind::Seq(b), Kind::Map(o)) => match kv_list_to_map(b) {
            Ok(b) => Node::map(override_keys(b, o), base.span),
            Err(_) => cleaned(Node::map(o, over.span)),
        },
        (_, kind) => cleaned(Node::new(kind, over.span)),
    }
}

/// `extra_hosts` as a list of `host=ip` / `host:ip` strings; a mapping entry
/// becomes one string per address. The node back when it is unreadable.
fn host_entries(node: Node) -> Result<Vec<Node>, Node> {
    let readable = |value: &Node| match &value.kind {
        Kind::Scalar(_) => true,
        Kind::Seq(items) => items.iter().all(|item| item.as_str().is_some()),
        Kind::Map(_) => value.tag == Some(Tag::Reset),
    };
    match node.kind {
        Kind::Seq(items) => Ok(items.into_iter().filter_map(take).collect()),
        Kind::Scalar(_) if !node.is_null() => Ok(vec![node]),
        Kind::Map(map) if map.values().all(|entry| readable(&entry.value)) => {
            let mut out = Vec::new();
            for (host, entry) in map {
                let Some(value) = take(entry.value) else {
                    continue;
                };
                match &value.kind {
                    Kind::Scalar(scalar) if value.is_null() => {
                        out.push(derived(host.as_str(), scalar, &entry.key_span));
                    }
                    Kind::Scalar(scalar) => {
                        out.push(derived(
                            format!("{host}={}", scalar.text),
                            scalar,
                            &value.span,
                        ));
                    }
                    Kind::Seq(items) => {
                        for item in items {
                            if let Kind::Scalar(scalar) = &item.kind {
                                out.push(derived(
                                    format!("{host}={}", scalar.text),
                                    scalar,
                                    &item.span,
                                ));
                            }
                        }
                    }
                    Kind::Map(_) => {}
                }
            }
            Ok(out)
        }
        kind => Err(Node::new(kind, node.span)),
    }
}

/// `host=ip`, or `host:ip` (the host never holds a colon, an IPv6 address may).
fn host_identity(item: &Node) -> Option<(String, String)> {
    let text = item.as_str()?;
    let (host, address) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .unwrap_or((text, ""));
    let address = address.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), address.to_string()))
}

fn same_host(a: &Node, b: &Node) -> bool {
    match (host_identity(a), host_identity(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

fn merge_extra_hosts(base: Node, over: Node) -> Node {
    let over_span = over.span.clone();
    let over = match host_entries(over) {
        Ok(items) => items,
        Err(over) => return cleaned(over),
    };
    let span = base.span.clone();
    let mut out = match host_entries(base) {
        Ok(items) => items,
        Err(_) => return Node::new(Kind::Seq(over), over_span),
    };
    for item in over {
        if !out.iter().any(|earlier| same_host(earlier, &item)) {
            out.push(item);
        }
    }
    Node::new(Kind::Seq(out), span)
}

fn merge_build(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    let string = |n: &Node| n.as_str().is_some();
    let map = |n: &Node| n.as_map().is_some();
    // Only a string meeting a mapping needs the string read as `{context: ...}`.
    if (string(&base) && map(&over)) || (map(&base) && string(&over)) {
        return merge_default(context_map(base), context_map(over), path);
    }
    merge_default(base, over, path)
}

fn context_map(node: Node) -> Node {
    if node.as_map().is_some() {
        return node;
    }
    let span = node.span.clone();
    let mut map = Map::new();
    map.insert(
        "context".to_string(),
        Entry {
            key_span: span.clone(),
            value: node,
        },
    );
    Node::map(map, span)
}

/// What a listed dependency means: `{condition: service_started, required: true}`.
fn started(item: &Node) -> Node {
    let span = &item.span;
    let mut map = Map::new();
    map.insert(
        "condition".to_string(),
        Entry {
            key_span: span.clone(),
            value: Node::string("service_started", span.clone()),
        },
    );
    let yes = Scalar {
        text: "true".to_string(),
        ty: ScalarType::Bool,
    };
    map.insert(
        "required".to_string(),
        Entry {
            key_span: span.clone(),
            value: Node::new(Kind::Scalar(yes), span.clone()),
        },
    );
    Node::map(map, span.clone())
}

/// What a listed network or model means: no options.
fn no_value(item: &Node) -> Node {
    Node::null(item.span.clone())
}

/// A list of names as a mapping from each name to `value(entry)`; the node
/// back when it is neither a mapping nor a list of names.
fn names_to_map(node: Node, value: fn(&Node) -> Node) -> Result<Node, Node> {
    let readable = |item: &Node| item.tag == Some(Tag::Reset) || item.as_str().is_some();
    match node.kind {
        Kind::Map(_) => Ok(node),
        Kind::Seq(items) if items.iter().all(readable) => {
            let mut map = Map::new();
            for item in items.into_iter().filter_map(take) {
                let Some(name) = item.as_str() else {
                    continue;
                };
                map.insert(
                    name.to_string(),
                    Entry {
                        key_span: item.span.clone(),
                        value: value(&item),
                    },
                );
            }
            Ok(Node::map(map, node.span))
        }
        kind => Err(Node::new(kind, node.span)),
    }
}

/// `depends_on`, `networks`, `models`: lists append, mappings merge, and a
/// list meeting a mapping is read as one first.
fn merge_names(base: Node, over: Node, path: &mut Vec<String>, value: fn(&Node) -> Node) -> Node {
    let seq = |n: &Node| n.as_seq().is_some();
    let map = |n: &Node| n.as_map().is_some();
    if seq(&base) && seq(&over) {
        return merge_unique(base, over, Identity::Exact, false);
    }
    if !((seq(&base) && map(&over)) || (map(&base) && seq(&over))) {
        return merge_default(base, over, path);
    }
    let over = match names_to_map(over, value) {
        Ok(over) => over,
        Err(over) => return cleaned(over),
    };
    match names_to_map(base, value) {
        Ok(base) => merge_default(base, over, path),
        Err(_) => cleaned(over),
    }
}

fn merge_logging(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    let driver = |n: &Node| {
        n.get("driver")
            .filter(|d| d.tag != Some(Tag::Reset))
            .and_then(Node::as_scalar)
            .map(|s| s.text.clone())
    };
    if let (Some(earlier), Some(later)) = (driver(&base), driver(&over))
        && earlier != later
    {
        // Another driver's options mean nothing to this one.
        return cleaned(over);
    }
    merge_default(base, over, path)
}

fn subnet(item: &Node) -> Option<&str> {
    item.get("subnet").and_then(Node::as_str)
}

fn merge_ipam_config(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    match (base.kind, over.kind) {
        (Kind::Seq(mut out), Kind::Seq(items)) => {
            for item in items.into_iter().filter_map(take) {
                let same = subnet(&item)
                    .and_then(|s| out.iter().position(|earlier| subnet(earlier) == Some(s)));
                match same.and_then(|index| out.get_mut(index)) {
                    Some(slot) => {
                        let earlier = std::mem::replace(slot, Node::null(Span::default()));
                        path.push("*".to_string());
                        *slot = merge_default(earlier, item, path);
                        path.pop();
                    }
                    None => {
                        if !out.contains(&item) {
                            out.push(item);
                        }
                    }
                }
            }
            Node::new(Kind::Seq(out), base.span)
        }
        (b, o) => merge_default(Node::new(b, base.span), Node::new(o, over.span), path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::diagnostic::Source;
    use crate::spec::yaml::parse;
    use serde_json::{Value, json};

    fn load_as(name: &str, text: &str) -> Node {
        // An empty file may parse as no document at all: it is a null one.
        let docs = parse(&Source::new(name, text)).expect("parses");
        docs.into_iter()
            .next()
            .unwrap_or_else(|| Node::null(Span::default()))
    }

    fn load(text: &str) -> Node {
        load_as("t.yaml", text)
    }

    /// Merges the files in order, as `-f a -f b -f c` does, and strips the tags.
    fn merged(files: &[&str]) -> Node {
        let mut files = files.iter().map(|text| load(text));
        let first = files.next().expect("one file at least");
        let mut doc = files.fold(first, merge_documents);
        strip_tags(&mut doc);
        doc
    }

    fn service(files: &[&str], name: &str) -> Value {
        merged(files)
            .get("services")
            .and_then(|s| s.get(name))
            .map(Node::to_json)
            .unwrap_or(Value::Null)
    }

    fn no_tags(node: &Node) -> bool {
        node.tag.is_none()
            && match &node.kind {
                Kind::Map(m) => m.values().all(|e| no_tags(&e.value)),
                Kind::Seq(s) => s.iter().all(no_tags),
                Kind::Scalar(_) => true,
            }
    }

    #[test]
    fn mappings_merge_recursively_keeping_base_order_then_new_keys() {
        let doc = merged(&[
            "services:\n  web:\n    image: a\n    restart: always\n  db:\n    image: pg\nx-meta: {a: 1, b: {c: 2}}\n",
            "x-meta: {b: {d: 3}, e: 4}\nservices:\n  cache:\n    image: redis\n  web:\n    user: me\n    image: b\n",
        ]);
        assert_eq!(
            doc.to_json(),
            json!({
                "services": {
                    "web": {"image": "b", "restart": "always", "user": "me"},
                    "db": {"image": "pg"},
                    "cache": {"image": "redis"},
                },
                "x-meta": {"a": 1, "b": {"c": 2, "d": 3}, "e": 4},
            })
        );
        let keys: Vec<&str> = doc
            .get("services")
            .unwrap()
            .as_map()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["web", "db", "cache"]);
    }

    #[test]
    fn scalars_later_wins_and_a_later_null_keeps_the_earlier_value() {
        let web = service(
            &[
                "services:\n  web:\n    image: a\n    scale: 1\n    user: root\n",
                "services:\n  web:\n    image: b\n    user: null\n",
                "services:\n  web:\n    scale: 2\n",
            ],
            "web",
        );
        assert_eq!(web, json!({"image": "b", "scale": 2, "user": "root"}));
        // An empty later file changes nothing; an empty first file takes the later one.
        let base = "services:\n  web:\n    image: a\n";
        assert_eq!(merged(&[base, ""]).to_json(), load(base).to_json());
        assert_eq!(merged(&["", base]).to_json(), load(base).to_json());
    }

    #[test]
    fn sequences_append_and_skip_identical_entries() {
        let web = service(
            &[
                "services:\n  web:\n    group_add: [audio, video]\n    build:\n      cache_from: [a]\n",
                "services:\n  web:\n    group_add: [video, wheel]\n    build:\n      cache_from: [b, a]\n",
            ],
            "web",
        );
        assert_eq!(web["group_add"], json!(["audio", "video", "wheel"]));
        assert_eq!(web["build"]["cache_from"], json!(["a", "b"]));
    }

    #[test]
    fn command_entrypoint_and_healthcheck_test_are_replaced() {
        let web = service(
            &[
                "services:\n  web:\n    command: [echo, foo]\n    entrypoint: [/bin/sh, -c]\n    healthcheck:\n      test: [CMD, a]\n      interval: 5s\n",
                "services:\n  web:\n    command: [echo, bar]\n    entrypoint: /init\n    healthcheck:\n      test: [CMD, b]\n      retries: 3\n",
            ],
            "web",
        );
        assert_eq!(web["command"], json!(["echo", "bar"]));
        assert_eq!(web["entrypoint"], json!("/init"));
        assert_eq!(
            web["healthcheck"],
            json!({"test": ["CMD", "b"], "interval": "5s", "retries": 3})
        );
        // Here a null replaces too: it is how an override returns to the image's command.
        let web = service(
            &[
                "services:\n  web:\n    command: run\n",
                "services:\n  web:\n    command: null\n",
            ],
            "web",
        );
        assert_eq!(web["command"], Value::Null);
    }

    #[test]
    fn ports_are_unique_by_host_published_target_and_protocol() {
        let web = service(
            &[
                "services:\n  web:\n    ports:\n      - \"8080:80\"\n      - \"127.0.0.1:9000:9000/tcp\"\n      - 3000\n      - \"[::1]:5000:5000\"\n",
                "services:\n  web:\n    ports:\n      - {target: 80, published: 8080, name: http}\n      - \"9000:9000\"\n      - \"8080:80/udp\"\n      - {target: 3000, protocol: TCP}\n      - {target: 5000, published: \"5000\", host_ip: \"::1\"}\n      - \"0.0.0.0:8080:80\"\n",
            ],
            "web",
        );
        assert_eq!(
            web["ports"],
            json!([
                "0.0.0.0:8080:80",
                "127.0.0.1:9000:9000/tcp",
                {"target": 3000, "protocol": "TCP"},
                {"target": 5000, "published": "5000", "host_ip": "::1"},
                "9000:9000",
                "8080:80/udp",
            ])
        );
    }

    #[test]
    fn volumes_are_unique_by_container_path() {
        let web = service(
            &[
                "services:\n  web:\n    volumes:\n      - ./a:/data:ro\n      - type: volume\n        source: cache\n        target: /cache\n      - /anonymous\n      - C:\\src:/src\n",
                "services:\n  web:\n    volumes:\n      - type: bind\n        source: ./b\n        target: /data\n      - ./c:/cache\n      - logs:/logs\n      - D:\\other:/src:rw\n",
            ],
            "web",
        );
        assert_eq!(
            web["volumes"],
            json!([
                {"type": "bind", "source": "./b", "target": "/data"},
                "./c:/cache",
                "/anonymous",
                "D:\\other:/src:rw",
                "logs:/logs",
            ])
        );
    }

    #[test]
    fn secrets_and_configs_are_unique_by_target() {
        let web = service(
            &[
                "services:\n  web:\n    secrets:\n      - token\n      - {source: cert, target: /etc/cert}\n    configs:\n      - app\n      - {source: nginx, target: /etc/nginx.conf}\n",
                "services:\n  web:\n    secrets:\n      - {source: token2, target: token}\n      - {source: cert2, target: /etc/cert}\n      - other\n    configs:\n      - {source: app2, target: /app}\n      - nginx\n",
            ],
            "web",
        );
        assert_eq!(
            web["secrets"],
            json!([
                {"source": "token2", "target": "token"},
                {"source": "cert2", "target": "/etc/cert"},
                "other",
            ])
        );
        assert_eq!(
            web["configs"],
            json!([
                {"source": "app2", "target": "/app"},
                {"source": "nginx", "target": "/etc/nginx.conf"},
                "nginx",
            ])
        );
    }

    #[test]
    fn service_networks_merge_as_list_map_or_both() {
        let lists = service(
            &[
                "services:\n  web:\n    networks: [front, back]\n",
                "services:\n  web:\n    networks: [back, admin]\n",
            ],
            "web",
        );
        assert_eq!(lists["networks"], json!(["front", "back", "admin"]));

        let mixed = service(
            &[
                "services:\n  web:\n    networks: [front, back]\n",
                "services:\n  web:\n    networks:\n      front:\n        aliases: [www]\n      admin:\n",
            ],
            "web",
        );
        assert_eq!(
            mixed["networks"],
            json!({"front": {"aliases": ["www"]}, "back": null, "admin": null})
        );

        let maps = service(
            &[
                "services:\n  web:\n    networks:\n      front:\n        aliases: [a1, a2]\n        link_local_ips: [169.254.0.1]\n",
                "services:\n  web:\n    networks:\n      front:\n        aliases: [a3, a1]\n        link_local_ips: [169.254.0.2]\n        priority: 10\n",
            ],
            "web",
        );
        assert_eq!(
            maps["networks"],
            json!({"front": {
                "aliases": ["a1", "a2", "a3"],
                "link_local_ips": ["169.254.0.1", "169.254.0.2"],
                "priority": 10,
            }})
        );
        // A later null network keeps the earlier options.
        let kept = service(
            &[
                "services:\n  web:\n    networks:\n      front:\n        aliases: [a]\n",
                "services:\n  web:\n    networks: [front]\n",
            ],
            "web",
        );
        assert_eq!(kept["networks"], json!({"front": {"aliases": ["a"]}}));
    }

    #[test]
    fn expose_is_unique_by_text_numbers_and_strings_alike() {
        let web = service(
            &[
                "services:\n  web:\n    expose: [80, \"443\"]\n",
                "services:\n  web:\n    expose: [\"80\", 8080]\n",
            ],
            "web",
        );
        assert_eq!(web["expose"], json!(["80", "443", 8080]));
    }

    #[test]
    fn dns_dns_search_and_dns_opt_accept_a_string_and_stay_unique() {
        let web = service(
            &[
                "services:\n  web:\n    dns: 8.8.8.8\n    dns_search: example.com\n    dns_opt: [use-vc]\n",
                "services:\n  web:\n    dns: [1.1.1.1, 8.8.8.8]\n    dns_search: corp.example\n    dns_opt: [use-vc, \"ndots:2\"]\n",
            ],
            "web",
        );
        assert_eq!(web["dns"], json!(["8.8.8.8", "1.1.1.1"]));
        assert_eq!(web["dns_search"], json!(["example.com", "corp.example"]));
        assert_eq!(web["dns_opt"], json!(["use-vc", "ndots:2"]));
    }

    #[test]
    fn extra_hosts_keep_every_distinct_pair_from_lists_and_maps() {
        let web = service(
            &[
                "services:\n  web:\n    extra_hosts:\n      - example.com=1.2.3.4\n      - \"db:10.0.0.2\"\n",
                "services:\n  web:\n    extra_hosts:\n      db: 10.0.0.2\n      example.com: [1.2.3.4, 5.6.7.8]\n      myhostv6: \"::1\"\n",
            ],
            "web",
        );
        assert_eq!(
            web["extra_hosts"],
            json!([
                "example.com=1.2.3.4",
                "db:10.0.0.2",
                "example.com=5.6.7.8",
                "myhostv6=::1",
            ])
        );
        let maps = service(
            &[
                "services:\n  web:\n    extra_hosts: {a: 1.1.1.1}\n",
                "services:\n  web:\n    extra_hosts: {b: 2.2.2.2, a: 1.1.1.1}\n",
            ],
            "web",
        );
        assert_eq!(maps["extra_hosts"], json!(["a=1.1.1.1", "b=2.2.2.2"]));
    }

    #[test]
    fn env_file_is_unique_by_path_and_may_be_a_string() {
        let web = service(
            &[
                "services:\n  web:\n    env_file: common.env\n",
                "services:\n  web:\n    env_file:\n      - {path: common.env, required: false}\n      - web.env\n",
            ],
            "web",
        );
        assert_eq!(
            web["env_file"],
            json!([{"path": "common.env", "required": false}, "web.env"])
        );
    }

    #[test]
    fn volumes_from_is_unique_by_source() {
        let web = service(
            &[
                "services:\n  web:\n    volumes_from: [db, \"cache:ro\"]\n",
                "services:\n  web:\n    volumes_from: [\"db:ro\", \"container:x\", cache]\n",
            ],
            "web",
        );
        assert_eq!(
            web["volumes_from"],
            json!(["db:ro", "cache", "container:x"])
        );
    }

    #[test]
    fn devices_are_unique_by_container_path() {
        let web = service(
            &[
                "services:\n  web:\n    devices: [\"/dev/sda:/dev/xvda:rwm\", /dev/fuse]\n",
                "services:\n  web:\n    devices:\n      - /dev/sdb:/dev/xvda\n      - {source: /dev/sdc, target: /dev/xvdc}\n      - /dev/fuse\n",
            ],
            "web",
        );
        assert_eq!(
            web["devices"],
            json!(["/dev/sdb:/dev/xvda", "/dev/fuse", {"source": "/dev/sdc", "target": "/dev/xvdc"}])
        );
    }

    #[test]
    fn capabilities_security_opt_links_and_profiles_are_unique() {
        let web = service(
            &[
                "services:\n  web:\n    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    security_opt: [\"label=user:USER\"]\n    links: [db]\n    profiles: [dev]\n",
                "services:\n  web:\n    cap_add: [NET_ADMIN, SYS_PTRACE]\n    cap_drop: [ALL]\n    security_opt: [\"label=role:ROLE\", \"label=user:USER\"]\n    links: [\"db:database\", db]\n    profiles: [dev, debug]\n",
            ],
            "web",
        );
        assert_eq!(web["cap_add"], json!(["NET_ADMIN", "SYS_PTRACE"]));
        assert_eq!(web["cap_drop"], json!(["ALL"]));
        assert_eq!(
            web["security_opt"],
            json!(["label=user:USER", "label=role:ROLE"])
        );
        assert_eq!(web["links"], json!(["db", "db:database"]));
        assert_eq!(web["profiles"], json!(["dev", "debug"]));
    }

    #[test]
    fn key_value_attributes_merge_by_key_in_any_form() {
        let web = service(
            &[
                "services:\n  web:\n    environment:\n      FOO: bar\n      KEEP: me\n    labels: [a=1, b=2]\n    annotations: [x=1]\n    sysctls: {net.core.somaxconn: 1024}\n",
                "services:\n  web:\n    environment: [FOO=baz, NEW=1, PASS]\n    labels: {b: \"3\", c: \"4\"}\n    annotations: [y=2, x=3]\n    sysctls: [net.core.somaxconn=2048, net.ipv4.tcp_syncookies=0]\n",
            ],
            "web",
        );
        assert_eq!(
            web["environment"],
            json!({"FOO": "baz", "KEEP": "me", "NEW": "1", "PASS": null})
        );
        assert_eq!(web["labels"], json!({"a": "1", "b": "3", "c": "4"}));
        assert_eq!(web["annotations"], json!(["x=3", "y=2"]));
        assert_eq!(
            web["sysctls"],
            json!({"net.core.somaxconn": "2048", "net.ipv4.tcp_syncookies": "0"})
        );
    }

    #[test]
    fn key_value_lists_keep_the_last_entry_for_a_key() {
        // compose-go's own regression cases: a repeated key is the final word.
        let web = service(
            &[
                "services:\n  web:\n    environment: [MODE=release]\n    labels: [MODE=debug, MODE=release]\n",
                "services:\n  web:\n    environment: [MODE=debug, MODE=release]\n    labels: [MODE=debug]\n",
            ],
            "web",
        );
        assert_eq!(web["environment"], json!(["MODE=release"]));
        assert_eq!(web["labels"], json!(["MODE=debug"]));
        // A later null in a mapping is a value: the variable is taken from the shell.
        let web = service(
            &[
                "services:\n  web:\n    environment: {FOO: bar}\n",
                "services:\n  web:\n    environment: {FOO: null, EMPTY: \"\"}\n",
            ],
            "web",
        );
        assert_eq!(web["environment"], json!({"FOO": null, "EMPTY": ""}));
    }

    #[test]
    fn top_level_labels_and_deploy_labels_merge_by_key() {
        let doc = merged(&[
            "networks:\n  front:\n    labels: [a=1]\nvolumes:\n  data:\n    labels: {a: \"1\"}\nservices:\n  web:\n    deploy:\n      labels: [x=1]\n",
            "networks:\n  front:\n    labels: {a: \"2\"}\nvolumes:\n  data:\n    labels: [b=2]\nservices:\n  web:\n    deploy:\n      labels: [x=2]\n",
        ])
        .to_json();
        assert_eq!(doc["networks"]["front"]["labels"], json!({"a": "2"}));
        assert_eq!(
            doc["volumes"]["data"]["labels"],
            json!({"a": "1", "b": "2"})
        );
        assert_eq!(doc["services"]["web"]["deploy"]["labels"], json!(["x=2"]));
    }

    #[test]
    fn depends_on_list_and_map_merge() {
        let lists = service(
            &[
                "services:\n  web:\n    depends_on: [db]\n",
                "services:\n  web:\n    depends_on: [cache, db]\n",
            ],
            "web",
        );
        assert_eq!(lists["depends_on"], json!(["db", "cache"]));

        let mixed = service(
            &[
                "services:\n  web:\n    depends_on: [db, cache]\n",
                "services:\n  web:\n    depends_on:\n      db:\n        condition: service_healthy\n      auth:\n        condition: service_completed_successfully\n        required: false\n",
            ],
            "web",
        );
        assert_eq!(
            mixed["depends_on"],
            json!({
                "db": {"condition": "service_healthy", "required": true},
                "cache": {"condition": "service_started", "required": true},
                "auth": {"condition": "service_completed_successfully", "required": false},
            })
        );
        // As in compose-go, a later listed dependency means `service_started`.
        let listed = service(
            &[
                "services:\n  web:\n    depends_on:\n      db: {condition: service_healthy, restart: true}\n",
                "services:\n  web:\n    depends_on: [db]\n",
            ],
            "web",
        );
        assert_eq!(
            listed["depends_on"],
            json!({"db": {"condition": "service_started", "restart": true, "required": true}})
        );
    }

    #[test]
    fn build_args_merge_by_key_and_a_build_string_is_its_context() {
        let web = service(
            &[
                "services:\n  web:\n    build: ./app\n",
                "services:\n  web:\n    build:\n      dockerfile: Dockerfile.dev\n      args: [A=1]\n",
                "services:\n  web:\n    build:\n      args: {A: 2, B: 3}\n      tags: [\"web:dev\"]\n      platforms: [linux/amd64]\n",
                "services:\n  web:\n    build:\n      tags: [\"web:dev\", \"web:latest\"]\n      platforms: [linux/arm64, linux/amd64]\n      additional_contexts: [base=../base]\n",
            ],
            "web",
        );
        assert_eq!(
            web["build"],
            json!({
                "context": "./app",
                "dockerfile": "Dockerfile.dev",
                "args": {"A": 2, "B": 3},
                "tags": ["web:dev", "web:latest"],
                "platforms": ["linux/amd64", "linux/arm64"],
                "additional_contexts": ["base=../base"],
            })
        );
        let strings = service(
            &[
                "services:\n  web:\n    build: ./a\n",
                "services:\n  web:\n    build: ./b\n",
            ],
            "web",
        );
        assert_eq!(strings["build"], json!("./b"));
        let over_string = service(
            &[
                "services:\n  web:\n    build: {context: ./a, target: dev}\n",
                "services:\n  web:\n    build: ./b\n",
            ],
            "web",
        );
        assert_eq!(
            over_string["build"],
            json!({"context": "./b", "target": "dev"})
        );
    }

    #[test]
    fn logging_options_merge_only_under_the_same_driver() {
        let base = "services:\n  web:\n    logging:\n      driver: local\n      options:\n        max-size: 10m\n";
        let same = service(
            &[
                base,
                "services:\n  web:\n    logging:\n      driver: local\n      options:\n        max-file: \"3\"\n",
            ],
            "web",
        );
        assert_eq!(
            same["logging"],
            json!({"driver": "local", "options": {"max-size": "10m", "max-file": "3"}})
        );
        let implicit = service(
            &[
                base,
                "services:\n  web:\n    logging:\n      options:\n        max-file: \"3\"\n",
            ],
            "web",
        );
        assert_eq!(
            implicit["logging"],
            json!({"driver": "local", "options": {"max-size": "10m", "max-file": "3"}})
        );
        let other = service(
            &[
                base,
                "services:\n  web:\n    logging:\n      driver: syslog\n      options:\n        syslog-address: \"tcp://127.0.0.1:123\"\n",
            ],
            "web",
        );
        assert_eq!(
            other["logging"],
            json!({"driver": "syslog", "options": {"syslog-address": "tcp://127.0.0.1:123"}})
        );
    }

    #[test]
    fn ulimits_merge_when_both_are_mappings_else_the_later_wins() {
        let web = service(
            &[
                "services:\n  web:\n    ulimits:\n      nofile: {soft: 20000, hard: 40000}\n      nproc: 65535\n      locks: {soft: 1, hard: 2}\n      core: 0\n",
                "services:\n  web:\n    ulimits:\n      nofile: {soft: 10000}\n      nproc: {soft: 100}\n      locks: 5\n",
            ],
            "web",
        );
        assert_eq!(
            web["ulimits"],
            json!({
                "nofile": {"soft": 10000, "hard": 40000},
                "nproc": {"soft": 100},
                "locks": 5,
                "core": 0,
            })
        );
    }

    #[test]
    fn tmpfs_is_unique_by_mount_point_and_may_be_a_string() {
        let web = service(
            &[
                "services:\n  web:\n    tmpfs: /run\n",
                "services:\n  web:\n    tmpfs: [\"/run:size=64m\", /tmp]\n",
            ],
            "web",
        );
        assert_eq!(web["tmpfs"], json!(["/run:size=64m", "/tmp"]));
        let strings = service(
            &[
                "services:\n  web:\n    tmpfs: /foo\n",
                "services:\n  web:\n    tmpfs: /bar\n",
            ],
            "web",
        );
        assert_eq!(strings["tmpfs"], json!(["/foo", "/bar"]));
    }

    #[test]
    fn ipam_config_entries_merge_by_subnet() {
        let doc = merged(&[
            "networks:\n  n:\n    ipam:\n      driver: default\n      config:\n        - subnet: 10.0.0.0/24\n          gateway: 10.0.0.1\n        - subnet: 10.1.0.0/24\n",
            "networks:\n  n:\n    ipam:\n      config:\n        - subnet: 10.0.0.0/24\n          ip_range: 10.0.0.128/25\n        - subnet: 10.2.0.0/24\n",
        ])
        .to_json();
        assert_eq!(
            doc["networks"]["n"]["ipam"],
            json!({"driver": "default", "config": [
                {"subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "ip_range": "10.0.0.128/25"},
                {"subnet": "10.1.0.0/24"},
                {"subnet": "10.2.0.0/24"},
            ]})
        );
    }

    #[test]
    fn reset_removes_keys_at_every_depth() {
        let doc = merged(&[
            "services:\n  web:\n    image: a\n    ports: [\"8080:80\"]\n    environment:\n      FOO: BAR\n      KEEP: me\n    build:\n      context: .\n      args: [A=1, B=2]\n    deploy:\n      resources:\n        limits: {cpus: \"1\", memory: 1g}\n  db:\n    image: pg\nnetworks:\n  front: {}\n",
            "services:\n  web:\n    ports: !reset []\n    environment:\n      FOO: !reset null\n    build:\n      args:\n        B: !reset\n    deploy:\n      resources:\n        limits:\n          cpus: !reset \"\"\n    hostname: !reset web\n  db: !reset\nnetworks: !reset {}\n",
        ]);
        assert_eq!(
            doc.to_json(),
            json!({"services": {"web": {
                "image": "a",
                "environment": {"KEEP": "me"},
                "build": {"context": ".", "args": {"A": "1"}},
                "deploy": {"resources": {"limits": {"memory": "1g"}}},
            }}})
        );
    }

    #[test]
    fn reset_in_a_list_converted_for_merging_still_applies() {
        // compose-go's regression for docker/compose#11816.
        let web = service(
            &[
                "services:\n  foo:\n    environment:\n      FOO: BAR\n      KEEP: ME\n    labels:\n      com.example.foo: bar\n",
                "services:\n  foo:\n    environment:\n      - ANOTHER=BAR\n      - PASSTHROUGH\n    labels:\n      com.example.extra: bar\n",
                "services:\n  foo:\n    environment:\n      FOO: !reset\n      ANOTHER: !reset\n      PASSTHROUGH: !reset\n    labels:\n      com.example.foo: !reset\n",
            ],
            "foo",
        );
        assert_eq!(web["environment"], json!({"KEEP": "ME"}));
        assert_eq!(web["labels"], json!({"com.example.extra": "bar"}));
    }

    #[test]
    fn reset_in_the_first_file_or_a_sequence_entry_just_disappears() {
        let mut doc = load(
            "services:\n  web:\n    image: a\n    command: !reset run\n    ports: [\"80:80\", !reset \"81:81\"]\n",
        );
        strip_tags(&mut doc);
        assert_eq!(
            doc.to_json(),
            json!({"services": {"web": {"image": "a", "ports": ["80:80"]}}})
        );
        let web = service(
            &[
                "services:\n  web:\n    command: !reset run\n    ports: [\"80:80\"]\n",
                "services:\n  web:\n    command: [serve]\n    ports: [!reset \"80:80\", \"81:81\"]\n    user: !reset me\n",
            ],
            "web",
        );
        assert_eq!(
            web,
            json!({"command": ["serve"], "ports": ["80:80", "81:81"]})
        );
    }

    #[test]
    fn override_replaces_without_merging_at_every_depth() {
        let doc = merged(&[
            "services:\n  web:\n    image: a\n    ports: [\"8080:80\"]\n    environment: {A: \"1\", B: \"2\"}\n    logging:\n      driver: local\n      options: {max-size: 10m, max-file: \"3\"}\n  db:\n    image: pg\n    volumes: [data:/var/lib/pg]\n",
            "services:\n  web:\n    ports: !override [\"8443:443\"]\n    environment: !override {C: \"3\"}\n    logging:\n      options: !override {max-size: 1m}\n  db: !override\n    image: mysql\n  new: !override\n    image: x\n    user: !reset root\n",
        ]);
        assert_eq!(
            doc.to_json(),
            json!({"services": {
                "web": {
                    "image": "a",
                    "ports": ["8443:443"],
                    "environment": {"C": "3"},
                    "logging": {"driver": "local", "options": {"max-size": "1m"}},
                },
                "db": {"image": "mysql"},
                "new": {"image": "x"},
            }})
        );
        assert!(no_tags(&doc));
    }

    #[test]
    fn a_third_file_merges_normally_onto_an_overridden_value() {
        let web = service(
            &[
                "services:\n  web:\n    ports: [\"1:1\"]\n",
                "services:\n  web:\n    ports: !override [\"2:2\"]\n",
                "services:\n  web:\n    ports: [\"3:3\"]\n",
            ],
            "web",
        );
        assert_eq!(web["ports"], json!(["2:2", "3:3"]));
    }

    #[test]
    fn merging_leaves_no_tags_behind() {
        let doc = merge_documents(
            load("services:\n  web:\n    image: !override a\n    user: !reset x\n"),
            load(
                "services:\n  web:\n    environment: !override {A: !reset}\n    labels: [!reset a=1]\n  db: {image: !override pg}\n",
            ),
        );
        assert!(no_tags(&doc));
        assert_eq!(
            doc.to_json(),
            json!({"services": {
                "web": {"image": "a", "environment": {}, "labels": []},
                "db": {"image": "pg"},
            }})
        );
    }

    #[test]
    fn a_later_mismatched_kind_wins_whole() {
        let web = service(
            &[
                "services:\n  web:\n    ports: [\"80:80\"]\n    environment: {A: \"1\"}\n    healthcheck: {test: [CMD, x]}\n",
                "services:\n  web:\n    ports: {oops: 1}\n    environment: [{not: a string}]\n    healthcheck: disabled\n",
            ],
            "web",
        );
        assert_eq!(web["ports"], json!({"oops": 1}));
        assert_eq!(web["environment"], json!([{"not": "a string"}]));
        assert_eq!(web["healthcheck"], json!("disabled"));
    }

    #[test]
    fn winning_values_keep_their_own_spans() {
        let base = load_as(
            "base.yaml",
            "services:\n  web:\n    image: a\n    user: root\n    ports: [\"8080:80\"]\n    environment: [A=1]\n",
        );
        let over = load_as(
            "over.yaml",
            "services:\n  web:\n    image: b\n    ports:\n      - target: 80\n        published: 8080\n    environment: {B: \"2\"}\n",
        );
        let doc = merge_documents(base, over);
        let web = doc.get("services").and_then(|s| s.get("web")).unwrap();
        let file = |n: &Node| n.span.path().unwrap().display().to_string();

        let image = web.get("image").unwrap();
        assert_eq!((file(image).as_str(), image.span.line), ("over.yaml", 3));
        let user = web.get("user").unwrap();
        assert_eq!((file(user).as_str(), user.span.line), ("base.yaml", 4));

        let ports = web.get("ports").unwrap();
        assert_eq!(file(ports), "base.yaml");
        let port = &ports.as_seq().unwrap()[0];
        assert_eq!((file(port).as_str(), port.span.line), ("over.yaml", 5));

        // `A=1` became a mapping entry: it points at the list item it came from.
        let env = web.get("environment").unwrap().as_map().unwrap();
        let a = env.get("A").unwrap();
        assert_eq!(
            (file(&a.value).as_str(), a.value.span.line),
            ("base.yaml", 6)
        );
        assert_eq!(a.key_span.line, 6);
        let b = env.get("B").unwrap();
        assert_eq!(
            (file(&b.value).as_str(), b.value.span.line),
            ("over.yaml", 7)
        );
        assert_eq!(b.key_span.col, 19);
    }

    #[test]
    fn merge_service_applies_the_service_rules_for_extends() {
        let base = load(
            "image: base\ncommand: [run, base]\nenvironment: [A=1, B=2]\nports: [\"80:80\"]\nbuild: .\nuser: !reset nobody\n",
        );
        let over = load(
            "command: serve\nenvironment: {B: \"3\"}\nports: [\"0.0.0.0:80:80\", \"443:443\"]\nbuild:\n  target: prod\nhostname: !reset x\n",
        );
        assert_eq!(
            merge_service(base, over).to_json(),
            json!({
                "image": "base",
                "command": "serve",
                "environment": {"A": "1", "B": "3"},
                "ports": ["0.0.0.0:80:80", "443:443"],
                "build": {"context": ".", "target": "prod"},
            })
        );
    }

    #[test]
    fn port_and_volume_identities() {
        let id = |text: &str| port_identity(&load(text));
        assert_eq!(id("80").as_deref(), Some("0.0.0.0::80/tcp"));
        assert_eq!(
            id("\"8080:80/UDP\"").as_deref(),
            Some("0.0.0.0:8080:80/udp")
        );
        assert_eq!(
            id("\"127.0.0.1::80\"").as_deref(),
            Some("127.0.0.1::80/tcp")
        );
        assert_eq!(id("\"[::1]:53:53/udp\"").as_deref(), Some("::1:53:53/udp"));
        assert_eq!(id("\"::1:53:53\"").as_deref(), Some("::1:53:53/tcp"));
        assert_eq!(id("{published: 80}"), None);
        assert_eq!(volume_target("/data"), "/data");
        assert_eq!(volume_target("data:/data:ro"), "/data");
        assert_eq!(volume_target("C:\\src:/src"), "/src");
        assert_eq!(volume_target("c:\\data:d:\\data:ro"), "d:\\data");
    }

    /// Reads a file of the shared corpus; `None` (said loudly) when the corpus is absent.
    fn corpus(path: &str) -> Option<Node> {
        let full = crate::spec::test_corpus()?.join(path).display().to_string();
        match std::fs::read_to_string(&full) {
            Ok(text) => Some(load_as(&full, &text)),
            Err(e) => {
                eprintln!(
                    "SKIPPED: corpus file {full} is missing ({e}); this test checked nothing"
                );
                None
            }
        }
    }

    fn corpus_service(path: &str, name: &str) -> Option<Node> {
        corpus(path)?.get("services")?.get(name).cloned()
    }

    #[test]
    fn fixture_compose_go_extends_reset() {
        // compose-go/loader/testdata/extends/reset.yaml: `base` extends `init`
        // and resets its command.
        let (Some(init), Some(mut base)) = (
            corpus_service("compose-go/loader/testdata/extends/reset.yaml", "init"),
            corpus_service("compose-go/loader/testdata/extends/reset.yaml", "base"),
        ) else {
            return;
        };
        if let Some(map) = base.as_map_mut() {
            map.shift_remove("extends");
        }
        assert_eq!(
            merge_service(init, base).to_json(),
            json!({"image": "alpine:latest"})
        );
    }

    #[test]
    fn fixture_compose_go_extends_ports_and_ulimits() {
        let (Some(test), Some(with_port), Some(ulimits)) = (
            corpus_service("compose-go/loader/testdata/extends/ports.yaml", "test"),
            corpus_service("compose-go/loader/testdata/extends/base.yaml", "with-port"),
            corpus_service(
                "compose-go/loader/testdata/extends/base.yaml",
                "withUlimits",
            ),
        ) else {
            return;
        };
        assert_eq!(
            merge_service(test.clone(), with_port).to_json(),
            json!({"image": "test", "ports": ["8080:8080", "8000:8000"]})
        );
        let over =
            load("ulimits:\n  nofile:\n    soft: 10000\n  nproc: {soft: 1000, hard: 2000}\n");
        assert_eq!(
            merge_service(ulimits, over).to_json()["ulimits"],
            json!({"nproc": {"soft": 1000, "hard": 2000}, "nofile": {"soft": 10000, "hard": 40000}})
        );
    }

    #[test]
    fn fixture_compose_go_cli_override_file() {
        let (Some(base), Some(over)) = (
            corpus("compose-go/cli/testdata/simple/compose.yaml"),
            corpus("compose-go/cli/testdata/simple/compose-with-overrides.yaml"),
        ) else {
            return;
        };
        let doc = merge_documents(base, over);
        assert_eq!(
            doc.to_json(),
            json!({"services": {"simple": {"image": "haproxy"}}})
        );
        let image = doc
            .get("services")
            .and_then(|s| s.get("simple"))
            .and_then(|s| s.get("image"))
            .unwrap();
        assert!(
            image
                .span
                .path()
                .unwrap()
                .ends_with("compose-with-overrides.yaml")
        );
    }

    #[test]
    fn fixture_docker_compose_publish_override() {
        let (Some(base), Some(over)) = (
            corpus("docker-compose/pkg/e2e/fixtures/publish/oci/compose.yaml"),
            corpus("docker-compose/pkg/e2e/fixtures/publish/oci/compose-override.yaml"),
        ) else {
            return;
        };
        assert_eq!(
            merge_documents(base, over).to_json(),
            json!({"services": {"app": {
                "extends": {"file": "extends.yaml", "service": "test"},
                "env_file": "test.env",
            }}})
        );
    }

    #[test]
    fn merging_a_file_twice_changes_nothing() {
        let base = "services:\n  web:\n    dns: [8.8.8.8]\n    env_file: [common.env]\n    extra_hosts: [\"host1:127.0.0.1\"]\n    ports: [\"80:80\"]\n    environment: [A=1]\n";
        let over = "services:\n  web:\n    dns: [9.9.9.9]\n    env_file: [common.env, test.env]\n    extra_hosts: [\"host1:127.0.0.1\", \"host2:127.0.0.2\"]\n    ports: [\"80:80\", \"443:443\"]\n    environment: [A=2]\n    group_add: [x]\n";
        let once = merged(&[base, over]);
        let twice = merged(&[base, over, over]);
        assert_eq!(once.to_json(), twice.to_json());
    }
}
