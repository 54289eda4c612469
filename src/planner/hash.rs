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
//! containers but not what runs in them. Key order cannot matter: the
//! service is hashed as canonical JSON with sorted keys.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::spec::{Service, Stack};

/// `sha256:<hex>` of the service's container configuration.
pub fn config_hash(stack: &Stack, service: &Service) -> String {
    let mut value = serde_json::to_value(service).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for key in ["depends_on", "scale", "profiles"] {
            map.remove(key);
        }
        map.retain(|k, _| !k.starts_with("x-"));
        if let Some(Value::Object(deploy)) = map.get_mut("deploy") {
            for key in ["replicas", "update_config", "rollback_config"] {
                deploy.remove(key);
            }
        }
        // What a secret or config holds is part of the container.
        let digests =
            |refs: &[crate::spec::model::FileRef],
             defs: &std::collections::BTreeMap<String, crate::spec::model::FileObject>|
             -> Value {
                refs.iter()
                    .map(|r| {
                        let digest = defs.get(&r.source).and_then(|d| d.digest.clone());
                        (r.source.clone(), digest.map_or(Value::Null, Value::String))
                    })
                    .collect::<serde_json::Map<String, Value>>()
                    .into()
            };
        map.insert(
            "secret_digests".into(),
            digests(&service.secrets, &stack.secrets),
        );
        map.insert(
            "config_digests".into(),
            digests(&service.configs, &stack.configs),
        );
    }
    let mut text = String::new();
    canonical(&value, &mut text);
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

/// JSON with object keys sorted at every level, whatever the map type.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
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
