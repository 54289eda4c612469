//! The configuration hash of a service's containers.
//!
//! A container is recreated exactly when its hash changes, so the hash must
//! cover everything that shapes the running container and nothing else.
//! In: the normalized service (image, command, entrypoint, environment with
//! env files folded in, user, working dir, mounts, networks with addresses
//! and aliases, ports, limits, capabilities, labels, ...) and the content
//! digests of the secrets and configs it uses. Out: `depends_on`, the number
//! of replicas (`scale`, `deploy.replicas`), `profiles`, update and rollback
//! policies, and `x-` extensions, which change how stack manages the
//! containers but not what runs in them. Key order cannot matter: every
//! map in the model is sorted, and JSON values are hashed with sorted keys.
//!
//! The image is hashed by its reference; its digest is compared on its
//! own by the planner (`stack config --hash` cannot know digests, and must
//! print the same hash). Networks and volumes have hashes of their own
//! definitions, and [`revision_document`] is the form in which an applied
//! stack is kept, so that a later plan can explain a change field by field.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::spec::model::{Deploy, FileObject, FileRef, Network, Volume};
use crate::spec::{Service, Stack};

/// The top-level key under which a revision document keeps the content
/// digests of secrets and configs (see [`revision_document`]).
pub const DIGESTS_KEY: &str = "x-stack-digests";

/// `sha256:<hex>` of the service's container configuration.
pub fn config_hash(stack: &Stack, service: &Service) -> String {
    config_hash_with(&file_digests(stack), service)
}

/// [`config_hash`] with the stack's file digests ([`file_digests`]) computed
/// once, for hashing many services.
///
/// It hashes the same content as [`hash_input`], but serializes the
/// stripped service straight into the hash instead of building a JSON
/// value first: planning hashes every service, so this is the floor of a
/// plan's cost. The bytes are deterministic because the service's fields
/// serialize in declaration order and all its maps are sorted.
pub fn config_hash_with(digests: &Value, service: &Service) -> String {
    let mut s = service.clone();
    s.depends_on.clear();
    s.scale = None;
    s.profiles.clear();
    s.extra.retain(|k, _| !k.starts_with("x-"));
    if let Some(deploy) = &mut s.deploy {
        deploy.replicas = None;
        deploy.extra.remove("update_config");
        deploy.extra.remove("rollback_config");
        if *deploy == Deploy::default() {
            s.deploy = None;
        }
    }
    let mut out = HashWriter(Sha256::new());
    // Writing into a hasher cannot fail; neither can serializing a service
    // (string keys, plain values).
    let _ = serde_json::to_writer(&mut out, &s);
    for (refs, kind) in [(&s.secrets, "secrets"), (&s.configs, "configs")] {
        out.0.update(b"|");
        for r in refs {
            let d = digests[kind].get(&r.source).unwrap_or(&Value::Null);
            let _ = serde_json::to_writer(&mut out, &(&r.source, d));
        }
    }
    format!("sha256:{:x}", out.0.finalize())
}

/// What [`config_hash`] hashes: the service as JSON without the keys that
/// do not shape the container, plus the digests of its secrets and configs.
/// The planner diffs two of these to explain a change field by field.
pub fn hash_input(stack: &Stack, service: &Service) -> Value {
    hash_input_with(&file_digests(stack), service)
}

fn hash_input_with(digests: &Value, service: &Service) -> Value {
    // A service has string keys and plain values only: this cannot fail.
    let mut value = serde_json::to_value(service).unwrap_or(Value::Null);
    with_digests(&mut value, service, digests);
    value
}

/// The same transformation for a service read back from a revision
/// document (JSON, not a typed [`Service`]): the previous side of a diff.
pub fn hash_input_of_json(mut service: Value, revision_digests: &Value) -> Value {
    strip(&mut service);
    if let Value::Object(map) = &mut service {
        for (key, kind) in [("secret_digests", "secrets"), ("config_digests", "configs")] {
            let refs: Vec<String> = map
                .get(kind)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|r| r.get("source").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let known = revision_digests.get(kind);
            let entries: Map<String, Value> = refs
                .into_iter()
                .map(|name| {
                    let d = known.and_then(|k| k.get(&name)).cloned();
                    (name, d.unwrap_or(Value::Null))
                })
                .collect();
            map.insert(key.into(), Value::Object(entries));
        }
    }
    service
}

/// Content digests of the stack's secrets and configs, by kind and name.
pub fn file_digests(stack: &Stack) -> Value {
    let table = |defs: &BTreeMap<String, FileObject>| -> Value {
        defs.iter()
            .map(|(name, d)| {
                let v = d.digest.clone().map_or(Value::Null, Value::String);
                (name.clone(), v)
            })
            .collect::<Map<String, Value>>()
            .into()
    };
    serde_json::json!({ "secrets": table(&stack.secrets), "configs": table(&stack.configs) })
}

fn with_digests(value: &mut Value, service: &Service, digests: &Value) {
    strip(value);
    if let Value::Object(map) = value {
        // What a secret or config holds is part of the container.
        let pick = |refs: &[FileRef], kind: &str| -> Value {
            refs.iter()
                .map(|r| {
                    let d = digests[kind].get(&r.source).cloned();
                    (r.source.clone(), d.unwrap_or(Value::Null))
                })
                .collect::<Map<String, Value>>()
                .into()
        };
        map.insert("secret_digests".into(), pick(&service.secrets, "secrets"));
        map.insert("config_digests".into(), pick(&service.configs, "configs"));
    }
}

/// Removes what changes how stack manages a container but not what runs in it.
fn strip(value: &mut Value) {
    if let Value::Object(map) = value {
        for key in ["depends_on", "scale", "profiles"] {
            map.remove(key);
        }
        map.retain(|k, _| !k.starts_with("x-"));
        if let Some(Value::Object(deploy)) = map.get_mut("deploy") {
            for key in ["replicas", "update_config", "rollback_config"] {
                deploy.remove(key);
            }
            if deploy.is_empty() {
                map.remove("deploy");
            }
        }
    }
}

/// `sha256:<hex>` of a network's definition: a changed driver, option,
/// address pool or label means the network must be recreated.
pub fn network_hash(network: &Network) -> String {
    digest(&serde_json::to_value(network).unwrap_or(Value::Null))
}

/// `sha256:<hex>` of a volume's definition (driver, options, labels, name).
pub fn volume_hash(volume: &Volume) -> String {
    digest(&serde_json::to_value(volume).unwrap_or(Value::Null))
}

/// The stack as it is kept in the revision history: the normalized stack
/// as JSON plus, under [`DIGESTS_KEY`] (an `x-` key, so the document is
/// still a valid Compose file), the content digests of its secrets and
/// configs, which the JSON form leaves out but a later plan needs to say
/// that a config file's content changed.
pub fn revision_document(stack: &Stack) -> Value {
    let mut doc = serde_json::to_value(stack).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut doc {
        map.insert(DIGESTS_KEY.into(), file_digests(stack));
    }
    doc
}

/// `sha256:<hex>` of any JSON value, keys sorted.
pub fn digest(value: &Value) -> String {
    let mut hasher = HashWriter(Sha256::new());
    canonical(value, &mut hasher);
    format!("sha256:{:x}", hasher.0.finalize())
}

/// Feeds canonical JSON straight into the hash, without building the text.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// JSON with object keys sorted at every level, whatever the map type.
fn canonical(value: &Value, out: &mut HashWriter) {
    // Writing into a hasher cannot fail, and serde_json cannot fail on a
    // string or a number: the results are ignored for that reason.
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // Already sorted unless serde_json keeps insertion order.
            if !keys.is_sorted() {
                keys.sort();
            }
            out.0.update(b"{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.0.update(b",");
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.0.update(b":");
                canonical(&map[k], out);
            }
            out.0.update(b"}");
        }
        Value::Array(items) => {
            out.0.update(b"[");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.0.update(b",");
                }
                canonical(v, out);
            }
            out.0.update(b"]");
        }
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::diagnostic::Source;
    use crate::spec::env::Environment;
    use crate::spec::{normalize, yaml};

    fn hash_of(text: &str, service: &str) -> String {
        let src = Source::new("/p/compose.yaml", text);
        let doc = yaml::parse(&src).unwrap().remove(0);
        let stack = normalize::normalize(&doc, "p", &Environment::default()).unwrap();
        config_hash(&stack, &stack.services[service])
    }

    #[test]
    fn hash_ignores_order_scale_dependencies_and_profiles() {
        let a = hash_of(
            "services:\n  web: {image: x, environment: {A: '1', B: '2'}}\n",
            "web",
        );
        let b = hash_of(
            "services:\n  web:\n    environment: [B=2, A=1]\n    image: x\n    scale: 3\n    depends_on: [db]\n    profiles: [p]\n    x-note: hi\n  db: {image: y}\n",
            "web",
        );
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:"));
    }

    #[test]
    fn replicas_alone_do_not_count_but_other_deploy_keys_do() {
        let base = hash_of("services:\n  web: {image: x}\n", "web");
        let replicas = hash_of(
            "services:\n  web: {image: x, deploy: {replicas: 3, update_config: {parallelism: 2}}}\n",
            "web",
        );
        assert_eq!(base, replicas);
        let limits = hash_of(
            "services:\n  web: {image: x, deploy: {resources: {limits: {memory: 1g}}}}\n",
            "web",
        );
        assert_ne!(base, limits);
    }

    #[test]
    fn secret_content_counts() {
        let dir = std::env::temp_dir().join(format!("stack-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.txt");
        let yaml = format!(
            "services:\n  web: {{image: x, secrets: [s]}}\nsecrets:\n  s: {{file: {}}}\n",
            path.display()
        );
        std::fs::write(&path, "one").unwrap();
        let a = hash_of(&yaml, "web");
        std::fs::write(&path, "two").unwrap();
        let b = hash_of(&yaml, "web");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn hash_changes_with_what_runs() {
        let base = hash_of("services:\n  web: {image: x}\n", "web");
        for changed in [
            "services:\n  web: {image: y}\n",
            "services:\n  web: {image: x, command: [sh]}\n",
            "services:\n  web: {image: x, environment: [A=1]}\n",
            "services:\n  web: {image: x, ports: ['80']}\n",
            "services:\n  web: {image: x, mem_limit: 1g}\n",
            "services:\n  web: {image: x, networks: {default: {aliases: [w]}}}\n",
        ] {
            assert_ne!(base, hash_of(changed, "web"), "{changed}");
        }
    }
}
