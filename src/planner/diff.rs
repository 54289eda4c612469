//! Field-level differences between two configurations, for humans.
//!
//! A hash says *that* a container must be recreated; a user wants to know
//! *why*. The previous configuration of a service is in the revision
//! history (the stack applied when the container was created), the new one
//! in the file; both are compared as the JSON the hash is computed over, so
//! every difference shown is one that changed the hash. Each difference is
//! a [`Change`]: a field path, the old value and the new one, printed as
//! `environment FOO: 1 → 2` or `image: busybox:1.36 → busybox:1.37`.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The top-level key and, after a space, the path below it
    /// (`environment FOO`, `deploy resources.limits.memory`).
    pub field: String,
    /// `None`: the field was not set.
    pub old: Option<String>,
    pub new: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        write!(
            f,
            "{}: {} → {}",
            self.field,
            show(&self.old),
            show(&self.new)
        )
    }
}

/// Every field that differs between `old` and `new`, in key order.
pub fn changes(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(&mut Vec::new(), Some(old), Some(new), &mut out);
    out
}

/// The other side of a map that appeared or went.
static EMPTY: std::sync::LazyLock<serde_json::Map<String, Value>> =
    std::sync::LazyLock::new(serde_json::Map::new);

fn walk<'a>(
    path: &mut Vec<&'a str>,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    out: &mut Vec<Change>,
) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => walk_maps(path, a, b, out),
        // A map that appeared or went: show its entries one by one.
        (Some(Value::Object(a)), None | Some(Value::Null)) => {
            walk_maps(path, a, &EMPTY, out);
        }
        (None | Some(Value::Null), Some(Value::Object(b))) => {
            walk_maps(path, &EMPTY, b, out);
        }
        (Some(a), Some(b)) if a == b => {}
        (None, None) => {}
        _ => {
            let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
            if absent(old) && absent(new) {
                return;
            }
            out.push(Change {
                field: field_name(path),
                old: old.and_then(show),
                new: new.and_then(show),
            });
        }
    }
}

fn walk_maps<'a>(
    path: &mut Vec<&'a str>,
    a: &'a serde_json::Map<String, Value>,
    b: &'a serde_json::Map<String, Value>,
    out: &mut Vec<Change>,
) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        path.push(key);
        walk(path, a.get(key), b.get(key), out);
        path.pop();
    }
}

fn field_name(path: &[&str]) -> String {
    match path {
        [] => "(everything)".into(),
        ["secret_digests", rest @ ..] => format!("secrets {} content", rest.join(".")),
        ["config_digests", rest @ ..] => format!("configs {} content", rest.join(".")),
        [top] => (*top).to_string(),
        [top, rest @ ..] => format!("{top} {}", rest.join(".")),
    }
}

/// A value as a short text: strings bare, digests shortened, the rest as compact JSON.
fn show(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(short_digest(s)),
        other => Some(other.to_string()),
    }
}

/// `sha256:` and the first 12 hex digits, as docker prints image ids.
pub fn short_digest(s: &str) -> String {
    match s.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}…", &hex[..12]),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_fields_are_named_by_path() {
        let old = json!({"image": "a", "environment": {"FOO": "1", "GONE": "x"}, "deploy": {"resources": {"limits": {"memory": 1}}}});
        let new = json!({"image": "b", "environment": {"FOO": "2", "NEW": "y"}, "deploy": {"resources": {"limits": {"memory": 2}}}, "labels": {"a": "1"}});
        let text: Vec<String> = changes(&old, &new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            text,
            [
                "deploy resources.limits.memory: 1 → 2",
                "environment FOO: 1 → 2",
                "environment GONE: x → (unset)",
                "environment NEW: (unset) → y",
                "image: a → b",
                "labels a: (unset) → 1",
            ]
        );
    }

    #[test]
    fn lists_compare_whole_and_digests_are_shortened() {
        let old = json!({"command": ["sh", "-c", "a"], "config_digests": {"conf": "sha256:0123456789abcdef0123"}});
        let new =
            json!({"command": ["sh"], "config_digests": {"conf": "sha256:fedcba9876543210fedc"}});
        let text: Vec<String> = changes(&old, &new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            text,
            [
                r#"command: ["sh","-c","a"] → ["sh"]"#,
                "configs conf content: sha256:0123456789ab… → sha256:fedcba987654…",
            ]
        );
    }

    #[test]
    fn equal_values_have_no_changes() {
        let v = json!({"a": {"b": [1, 2]}, "c": null});
        assert!(changes(&v, &v).is_empty());
        assert!(changes(&json!({"c": null}), &json!({})).is_empty());
    }
}
