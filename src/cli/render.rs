//! Canonical output of a normalized stack: YAML or JSON, keys sorted.
//!
//! The same stack must always print the same bytes, and what `stack config`
//! prints must load again to the same stack. So keys are sorted at every
//! level, strings are quoted whenever a YAML reader could take them for
//! something else (`"true"`, `"1.10"`, `"null"`, `": "`), and every `$` is
//! written `$$` so that loading the output does not interpolate it a second
//! time, as docker compose does.

use serde_json::Value;

/// The whole stack as `stack config` prints it, limited to `services` when given.
pub fn stack(
    stack: &crate::spec::Stack,
    services: Option<&std::collections::BTreeSet<String>>,
    format: super::args::Format,
) -> String {
    // A Stack holds only strings, numbers, booleans and maps with string keys.
    let mut value = serde_json::to_value(stack).unwrap_or(Value::Null);
    if let (Some(keep), Some(Value::Object(all))) = (services, value.get_mut("services")) {
        all.retain(|name, _| keep.contains(name));
    }
    escape_dollars(&mut value);
    match format {
        super::args::Format::Yaml => yaml(&value),
        super::args::Format::Json => json(&value),
    }
}

/// `$` to `$$` in every string value (not in keys, which are not interpolated).
pub fn escape_dollars(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Block-style YAML with sorted keys.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => block_map(value, 0, &mut out),
        Value::Array(a) if !a.is_empty() => block_seq(value, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

/// Pretty JSON with sorted keys.
pub fn json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn block_map(value: &Value, indent: usize, out: &mut String) {
    let Value::Object(map) = value else { return };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let v = &map[key];
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar(key));
        out.push(':');
        child(v, indent, out);
    }
}

fn block_seq(value: &Value, indent: usize, out: &mut String) {
    let Value::Array(items) = value else { return };
    for v in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match v {
            // A mapping item starts on the dash's line: `- key: value`.
            Value::Object(m) if !m.is_empty() => {
                let mut first = true;
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for key in keys {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    out.push_str(&scalar(key));
                    out.push(':');
                    child(&m[key], indent + 2, out);
                }
            }
            _ => child(v, indent, out),
        }
    }
}

/// Writes what follows `key:` or `-`: an inline value, or a nested block.
fn child(v: &Value, indent: usize, out: &mut String) {
    if is_block(v) {
        out.push('\n');
        match v {
            Value::Object(_) => block_map(v, indent + 2, out),
            _ => block_seq(v, indent + 2, out),
        }
    } else {
        out.push(' ');
        out.push_str(&inline(v));
        out.push('\n');
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a YAML scalar: plain when a reader gets the same string
/// back, double-quoted (JSON escapes are valid YAML) otherwise.
pub fn scalar(s: &str) -> String {
    if needs_quotes(s) {
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
    } else {
        s.to_string()
    }
}

fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return true;
    }
    if crate::spec::yaml::resolve_plain(s)
        != (crate::spec::yaml::ScalarType::Str { template: false })
    {
        return true;
    }
    // YAML 1.1 readers take these for booleans.
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "on" | "off") {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "?:,[]{}#&*!|>'\"%@`".contains(first) || s == "<<" {
        return true;
    }
    if first == '-' && (s == "-" || s.starts_with("- ") || s.starts_with("---")) {
        return true;
    }
    s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars().any(char::is_control)
        || s.contains('\u{feff}')
        || s.contains(['{', '}', '[', ']', ','])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_is_sorted_and_block_style() {
        let v = json!({"b": {"z": 1, "a": [1, {"w": "x", "k": true}]}, "a": [], "c": {}});
        assert_eq!(
            yaml(&v),
            "a: []\nb:\n  a:\n    - 1\n    - k: true\n      w: x\n  z: 1\nc: {}\n"
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_reload_as_strings() {
        for s in [
            "true", "1.10", "null", "", " x", "a: b", "yes", "- x", "#c", "*a", "x\ny", "80",
            "{x}", "-", "a,b",
        ] {
            let quoted = scalar(s);
            assert!(quoted.starts_with('"'), "{s:?} -> {quoted}");
            let src = crate::spec::diagnostic::Source::new("t", format!("k: {quoted}\n"));
            let doc = crate::spec::yaml::parse(&src).unwrap().remove(0);
            assert_eq!(doc.get("k").unwrap().to_json(), json!(s));
        }
        for s in ["busybox:latest", "/var/lib", "-c", "echo", "8080:80", "a=b"] {
            assert_eq!(scalar(s), s);
        }
    }

    #[test]
    fn dollars_are_escaped_in_values_only() {
        let mut v = json!({"$k": "a$b", "l": ["$$"]});
        escape_dollars(&mut v);
        assert_eq!(v, json!({"$k": "a$$b", "l": ["$$$$"]}));
    }
}
