//! The CRD's `x-kubernetes-validations` rules, walked as the API server walks them
//! (`apiextensions-apiserver`'s CEL validator) and evaluated with `kube-cel` (the
//! Kubernetes CEL libraries): at every node that has a value (`null`s are skipped),
//! `self` the node; `oldSelf` on an update where the old object has a value at the same
//! place (correlated through fields and map keys, never list positions: this schema has
//! no `x-kubernetes-list-type: map`), the transition rules skipped otherwise. A failed
//! rule reads `<path>: Invalid value: "<type>": <message>`, `<nil>` for the root.

use kube_cel::{ErrorKind, ValidationError, Validator};
use serde_json::Value;

use super::errors::{ErrorType, FieldError};

const RULES: &str = "x-kubernetes-validations";

/// Every rule of `schema` on `object` (defaults applied), `old` on an update.
pub fn validate(schema: &Value, object: &Value, old: Option<&Value>, out: &mut Vec<FieldError>) {
    let validator = Validator::new();
    let object = without_null_fields(schema, object);
    let old = old.map(|old| without_null_fields(schema, old));
    walk(&validator, schema, &object, old.as_ref(), "", out);
}

/// The value as the rules see it: a field of an object (not a map's key) that is
/// `null` is absent (`has()` is false), as in the API server's CEL values.
fn without_null_fields(schema: &Value, value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let fields = map.iter().filter_map(|(key, v)| {
                let child = match (properties, additional) {
                    (Some(props), _) => props.get(key),
                    (None, extra) => extra,
                };
                match child {
                    Some(_) if v.is_null() && properties.is_some() => None,
                    Some(child) => Some((key.clone(), without_null_fields(child, v))),
                    None => Some((key.clone(), v.clone())),
                }
            });
            Value::Object(fields.collect())
        }
        Value::Array(list) => match schema.get("items").filter(|i| i.is_object()) {
            Some(item) => Value::Array(list.iter().map(|v| without_null_fields(item, v)).collect()),
            None => value.clone(),
        },
        other => other.clone(),
    }
}

fn walk(
    validator: &Validator,
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    out: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    let old = old.filter(|o| !o.is_null());
    if schema
        .get(RULES)
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        // kube-cel walks the whole subtree: hand it this node's rules only, the walk
        // (and its treatment of nulls and lists) is this one's.
        let mut node = schema.clone();
        strip_rules_below(&mut node);
        if let Err(errors) = validator.validate(&node, value, old) {
            let type_name = schema
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.extend(errors.iter().map(|e| field_error(path, type_name, e)));
        }
    }
    match value {
        Value::Object(map) => {
            // The schema's order (the API server's is a Go map's: none).
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, prop) in properties.into_iter().flatten() {
                if let Some(v) = map.get(key) {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(
                        validator,
                        prop,
                        v,
                        old.and_then(|o| o.get(key)),
                        &child,
                        out,
                    );
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let is_property = |k: &String| properties.is_some_and(|p| p.contains_key(k));
                for (key, v) in map.iter().filter(|(k, _)| !is_property(k)) {
                    let old_v = old.and_then(|o| o.get(key));
                    walk(validator, extra, v, old_v, &format!("{path}[{key}]"), out);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in list.iter().enumerate() {
                    walk(validator, item, v, None, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Remove the rules of every schema below this one.
fn strip_rules_below(schema: &mut Value) {
    fn strip(schema: &mut Value) {
        if let Some(map) = schema.as_object_mut() {
            map.remove(RULES);
        }
        strip_rules_below(schema);
    }
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        props.values_mut().for_each(strip);
    }
    for key in ["additionalProperties", "items"] {
        if let Some(child) = map.get_mut(key) {
            strip(child);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get_mut(key) {
            branches.iter_mut().for_each(strip);
        }
    }
}

/// A failed rule as the API server reports it (`fieldErrorForReason`).
fn field_error(path: &str, type_name: &str, error: &ValidationError) -> FieldError {
    let field = match error.field_path.trim_start_matches('.') {
        "" => path.to_owned(),
        rel if path.is_empty() => rel.to_owned(),
        rel if rel.starts_with('[') => format!("{path}{rel}"),
        rel => format!("{path}.{rel}"),
    };
    let detail = match error.kind {
        ErrorKind::ValidationFailure => error.message.clone(),
        _ => format!("{} (rule {:?})", error.message, error.rule),
    };
    let kind = match error.reason.as_deref() {
        Some("FieldValueForbidden") => ErrorType::Forbidden,
        Some("FieldValueRequired") => ErrorType::Required,
        Some("FieldValueDuplicate") => ErrorType::Duplicate,
        _ => ErrorType::Invalid,
    };
    let value = Some(Value::from(type_name));
    match kind {
        ErrorType::Duplicate => FieldError::new(kind, &field, value, String::new()),
        _ => FieldError::new(kind, &field, value, detail),
    }
}
