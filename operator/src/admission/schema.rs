//! The structural part of admission, as the API server does it with a CRD's
//! `openAPIV3Schema` (a JSON value here): pruning unknown fields
//! (`structuralpruning`), dropping non-nullable `null`s and applying defaults
//! (`structuraldefaulting`), and the OpenAPI validation (`kube-openapi`'s validator,
//! its errors turned into `field.Error`s as `apiextensions-apiserver` does).

use serde_json::{Map, Value};

use super::errors::{ErrorType, FieldError, go_float, go_quote, json_type};

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// `additionalProperties` when it is a schema (a map's values).
fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|i| i.is_object())
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// The schema of a child of an object: its property's, or the map's values'.
fn child<'s>(schema: &'s Value, key: &str) -> Option<&'s Value> {
    properties(schema)
        .and_then(|p| p.get(key))
        .or_else(|| additional(schema))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Remove the fields the schema does not know, and push their paths (`a.b[0].c`). At
/// the root, `apiVersion`, `kind` and `metadata` are the API server's own.
pub fn prune_unknown(
    schema: &Value,
    value: &mut Value,
    path: &str,
    root: bool,
    out: &mut Vec<String>,
) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    match value {
        Value::Object(map) => map.retain(|key, v| {
            if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                return true;
            }
            match child(schema, key) {
                Some(s) => {
                    prune_unknown(s, v, &join(path, key), false, out);
                    true
                }
                None if preserve => true,
                None => {
                    out.push(join(path, key));
                    false
                }
            }
        }),
        Value::Array(list) => {
            if let Some(item) = items(schema) {
                for (i, v) in list.iter_mut().enumerate() {
                    prune_unknown(item, v, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

/// Drop the `null`s of non-nullable fields that have no default (which is applied
/// instead), and read a whole number given as `3.0` for an integer as `3`, as the API
/// server stores it.
pub fn prune_nulls(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => map.retain(|key, v| match child(schema, key) {
            Some(s) if v.is_null() => flag(s, "nullable") || s.get("default").is_some(),
            Some(s) => {
                prune_nulls(s, v);
                true
            }
            None => true,
        }),
        Value::Array(list) => {
            if let Some(item) = items(schema) {
                list.iter_mut().for_each(|v| prune_nulls(item, v));
            }
        }
        Value::Number(n) if schema.get("type").and_then(Value::as_str) == Some("integer") => {
            let whole = |f: &f64| n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15;
            if let Some(f) = n.as_f64().filter(whole) {
                *value = Value::from(f as i64);
            }
        }
        _ => {}
    }
}

/// Structural defaulting: a missing field, or a `null` one that is not nullable, takes
/// its default; defaults apply inside the defaults too.
pub fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, prop) in properties(schema).into_iter().flatten() {
                let Some(default) = prop.get("default") else {
                    continue;
                };
                let absent = map
                    .get(key)
                    .is_none_or(|v| v.is_null() && !flag(prop, "nullable"));
                if absent {
                    map.insert(key.clone(), default.clone());
                }
            }
            for (key, v) in map.iter_mut() {
                if let Some(s) = child(schema, key) {
                    default(s, v);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(schema) {
                list.iter_mut().for_each(|v| default(item, v));
            }
        }
        _ => {}
    }
}

/// The OpenAPI validation of `value` at `path`, every problem pushed in the
/// validator's order: type, string (length, then pattern), numbers, items, enum, then
/// an object's fields and its required ones.
pub fn validate(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let types: Vec<&str> = if flag(schema, "x-kubernetes-int-or-string") {
        vec!["integer", "string"]
    } else {
        schema
            .get("type")
            .and_then(Value::as_str)
            .into_iter()
            .collect()
    };
    if value.is_null() {
        if !types.is_empty() && !flag(schema, "nullable") {
            out.push(FieldError::type_invalid(path, value, &types.join(",")));
        }
        check_enum(schema, value, path, out);
        return;
    }
    let actual = json_type(value);
    let whole_float = value.as_f64().is_some_and(|f| f.fract() == 0.0);
    let fits = types.is_empty()
        || types.contains(&actual)
        || (actual == "number" && whole_float && types.contains(&"integer"))
        || (actual == "integer" && types.contains(&"number"));
    if !fits {
        out.push(FieldError::type_invalid(path, value, &types.join(",")));
    }
    match value {
        Value::String(s) => check_string(schema, s, path, out),
        Value::Number(n) => check_number(schema, n, path, out),
        Value::Array(list) => {
            if let Some(item) = items(schema) {
                for (i, v) in list.iter().enumerate() {
                    validate(item, v, &format!("{path}[{i}]"), out);
                }
            }
            let len = list.len() as u64;
            if let Some(min) = bound(schema, "minItems").filter(|min| len < *min) {
                let detail = format!("{path} in body should have at least {min} items");
                out.push(FieldError::invalid(path, len, detail));
            }
            if let Some(max) = bound(schema, "maxItems").filter(|max| len > *max) {
                let detail = format!("must have at most {max} items");
                out.push(FieldError::new(
                    ErrorType::TooMany,
                    path,
                    Some(len.into()),
                    detail,
                ));
            }
        }
        _ => {}
    }
    check_enum(schema, value, path, out);
    if let Value::Object(map) = value {
        let props = properties(schema);
        if let Some(extra) = additional(schema) {
            for (key, v) in map
                .iter()
                .filter(|(k, _)| props.is_none_or(|p| !p.contains_key(*k)))
            {
                validate(extra, v, &join(path, key), out);
            }
        }
        for (key, prop) in props.into_iter().flatten() {
            if let Some(v) = map.get(key) {
                validate(prop, v, &join(path, key), out);
            }
        }
        let required = schema.get("required").and_then(Value::as_array);
        for key in required.into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                out.push(FieldError::required(&join(path, key), ""));
            }
        }
    }
}

fn bound(schema: &Value, name: &str) -> Option<u64> {
    schema.get(name).and_then(Value::as_u64)
}

/// `maxLength` (in characters), else `minLength`, else `pattern`: the first that
/// fails.
fn check_string(schema: &Value, s: &str, path: &str, out: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = bound(schema, "maxLength").filter(|max| len > *max) {
        let detail = format!("may not be more than {max} bytes");
        out.push(FieldError::new(ErrorType::TooLong, path, None, detail));
    } else if let Some(min) = bound(schema, "minLength").filter(|min| len < *min) {
        let detail = format!("{path} in body should be at least {min} chars long");
        out.push(FieldError::invalid(path, s, detail));
    } else if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let detail = match regex::Regex::new(&go_regex(pattern)) {
            Ok(re) if re.is_match(s) => return,
            Ok(_) => format!("{path} in body should match '{pattern}'"),
            Err(e) => {
                format!("{path} in body should match '{pattern}, but pattern is invalid: {e}'")
            }
        };
        out.push(FieldError::invalid(path, s, detail));
    }
}

/// An integer's range (its `format`, `int64` if none), then `minimum`, then `maximum`
/// (either exclusive).
fn check_number(schema: &Value, n: &serde_json::Number, path: &str, out: &mut Vec<FieldError>) {
    let Some(x) = n.as_f64() else { return };
    if schema.get("type").and_then(Value::as_str) == Some("integer") {
        let format = schema.get("format").and_then(Value::as_str);
        let whole = x.fract() == 0.0;
        let fits = match format {
            Some("int32") => whole && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&x),
            _ => n.as_i64().is_some() || (n.is_f64() && whole && x.abs() < 2f64.powi(63)),
        };
        if !fits {
            let format = match format {
                Some(f @ ("int32" | "int64")) => format!("with format {f}"),
                _ => "(default format)".to_owned(),
            };
            let detail = format!("Checked value must be of type integer {format} in {path}");
            out.push(FieldError::invalid("", "", detail));
        }
    }
    let integral = !n.is_f64();
    let show = |limit: f64| {
        if integral {
            format!("{}", limit as i64)
        } else {
            go_float(limit)
        }
    };
    let exclusive = |name: &str| flag(schema, name);
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let (under, words) = if exclusive("exclusiveMinimum") {
            (x <= min, "greater than")
        } else {
            (x < min, "greater than or equal to")
        };
        if under {
            let detail = format!("{path} in body should be {words} {}", show(min));
            out.push(FieldError::invalid(path, n.clone(), detail));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let (over, words) = if exclusive("exclusiveMaximum") {
            (x >= max, "less than")
        } else {
            (x > max, "less than or equal to")
        };
        if over {
            let detail = format!("{path} in body should be {words} {}", show(max));
            out.push(FieldError::invalid(path, n.clone(), detail));
        }
    }
}

/// `Unsupported value: "x": supported values: "a", "b"`.
fn check_enum(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.is_empty() || allowed.contains(value) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|v| match v {
            Value::String(s) => go_quote(s),
            other => go_quote(&other.to_string()),
        })
        .collect();
    let detail = format!("supported values: {}", supported.join(", "));
    out.push(FieldError::new(
        ErrorType::NotSupported,
        path,
        Some(value.clone()),
        detail,
    ));
}

/// A pattern with Go's meaning of the Perl classes: `\s`, `\d` and `\w` (and their
/// negations outside brackets) are ASCII-only in Go's regexp, Unicode-aware in Rust's.
pub fn go_regex(pattern: &str) -> String {
    const ASCII: [(char, &str); 3] = [('s', "\\t\\n\\x0C\\r "), ('d', "0-9"), ('w', "0-9A-Za-z_")];
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let class = ASCII
                    .iter()
                    .find(|(k, _)| *k == next.to_ascii_lowercase())
                    .map(|(_, set)| *set);
                match (class, next.is_ascii_lowercase(), in_class) {
                    (Some(set), true, true) => out.push_str(set),
                    (Some(set), true, false) => out.push_str(&format!("[{set}]")),
                    (Some(set), false, false) => out.push_str(&format!("[^{set}]")),
                    _ => {
                        out.push(c);
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.extend(chars.next());
                }
                if chars.peek() == Some(&']') {
                    out.extend(chars.next());
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class inside brackets: copied to its `:]`.
                out.push(c);
                while let Some(p) = chars.next() {
                    out.push(p);
                    if p == ':' && chars.peek() == Some(&']') {
                        out.extend(chars.next());
                        break;
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}
