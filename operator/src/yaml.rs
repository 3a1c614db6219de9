//! YAML output that every Kubernetes tool reads the same way.
//!
//! `serde_yaml_ng` writes YAML 1.2, where `no`, `on` or `y` are plain strings; kubectl
//! and Helm (go-yaml, YAML 1.1) read those as booleans, so a Redis argument `no` would
//! arrive as `false`. This emitter writes a string unquoted only when it is a word no
//! YAML version reads as anything else, and quotes everything else JSON-style (a JSON
//! string is a valid YAML double-quoted scalar).

use serde_json::Value;

/// `value` as a YAML document (block style, two-space indent).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// Several documents, each introduced by `---`.
pub fn documents(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| format!("---\n{}", to_string(v)))
        .collect()
}

fn is_plain(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if is_plain(s) => s.clone(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn is_nested(value: &Value) -> bool {
    match value {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn key(k: &str) -> String {
    if is_plain(k) {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (k, v)) in map.iter().enumerate() {
        // The first entry of a list item continues the item's `- ` line.
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&key(k));
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_map(out, m, indent + 2);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_list(out, a, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Value::Object(m) if is_nested(item) => write_map(out, m, indent + 2),
            Value::Array(a) if is_nested(item) => {
                out.push('\n');
                write_list(out, a, indent + 2);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_1_1_booleans_and_numbers_stay_strings() {
        let v = json!({"args": ["--appendonly", "no", "on", "Y", "1Gi", "20:30", ""], "n": 3, "b": true});
        let text = to_string(&v);
        assert!(text.contains("- \"no\"\n"), "{text}");
        assert!(text.contains("- \"on\"\n"));
        assert!(text.contains("- \"Y\"\n"));
        assert!(text.contains("- \"20:30\"\n"));
        assert!(text.contains("- --appendonly\n") || text.contains("- \"--appendonly\"\n"));
        let back: Value = serde_yaml_ng::from_str(&text).unwrap_or_default();
        assert_eq!(back, v);
    }

    #[test]
    fn nesting_round_trips() {
        let v = json!({
            "a": {"b": [{"c": 1, "d": [1, 2], "e": {}}, [], {"f": "g h"}], "x": []},
            "multi": "line one\nline two",
            "weird key": null,
            "list": [["x"], {"only": "one"}]
        });
        let back: Value = serde_yaml_ng::from_str(&to_string(&v)).unwrap_or_default();
        assert_eq!(back, v);
    }
}
