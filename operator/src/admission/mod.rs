//! The API server's admission of a SalesSystem, done offline: what `kubectl apply`
//! (`--validate=strict`, its default) would refuse, refused here with the API server's
//! own words, against the CRD's own `openAPIV3Schema` (taken from the generated CRD,
//! [`SalesSystem::crd`], never a second copy of the rules).
//!
//! In the API server's order:
//! 1. decoding: the kind and version must be the CRD's; with strict field validation an
//!    unknown field (one the schema would prune) fails the request on its own
//!    ([`Refusal::StrictDecoding`]); `status` is dropped (a subresource);
//! 2. structural defaulting: `null`s of non-nullable fields without a default are
//!    dropped, then every `default` applied ([`schema::default`]);
//! 3. validation, every problem collected ([`Refusal::Invalid`]): `metadata` (name and
//!    namespace), the schema ([`schema::validate`]: type, enum, ranges, lengths,
//!    patterns, items, required, nullable, int-or-string) and, unless one of those
//!    problems leaves the object without the shape the rules were written for, every
//!    `x-kubernetes-validations` CEL rule ([`cel::validate`], with `kube-cel`), the
//!    transition rules (`oldSelf`) only on an update.
//!
//! Success returns the object as the API server would store it (defaults applied).

mod cel;
mod errors;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

pub use errors::{ErrorType, FieldError};

use crate::crd::SalesSystem;

/// Why the API server would refuse the object: the body of its answer, as `kubectl`
/// prints it.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// Not a kind and version the CRD serves.
    NoMatch { kind: String, api_version: String },
    /// Fields the schema does not know (`kubectl apply --validate=strict`); paths
    /// such as `spec.gateway.nodeport`.
    StrictDecoding {
        kind: String,
        version: String,
        unknown_fields: Vec<String>,
    },
    /// `The SalesSystem "shop" is invalid`, with every problem.
    Invalid {
        kind: String,
        name: String,
        errors: Vec<FieldError>,
    },
    /// The CRD itself could not be read (a bug of this crate, not of the object).
    Internal(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoMatch { kind, api_version } => {
                write!(f, "no matches for kind {kind:?} in version {api_version:?}")
            }
            Refusal::StrictDecoding {
                kind,
                version,
                unknown_fields,
            } => {
                let unknown: Vec<String> = unknown_fields
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                write!(
                    f,
                    "{kind} in version {version:?} cannot be handled as a {kind}: \
                     strict decoding error: {}",
                    unknown.join(", ")
                )
            }
            // kubectl's `MultilineError`: one problem on the line, several as a list.
            Refusal::Invalid { kind, name, errors } => {
                write!(f, "The {kind} {name:?} is invalid: ")?;
                match errors.as_slice() {
                    [one] => write!(f, "{one}"),
                    all => all.iter().try_for_each(|e| write!(f, "\n* {e}")),
                }
            }
            Refusal::Internal(message) => write!(f, "Internal error occurred: {message}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// A SalesSystem admitted as the API server would: created (`old` unset) or updated
/// from `old`. `Ok` is the object as stored, defaults applied.
pub fn admit(object: &Value, old: Option<&Value>) -> Result<Value, Refusal> {
    // The CRD is generated once (it takes a while in a debug build).
    static SALES_SYSTEM: OnceLock<Result<Admission, Refusal>> = OnceLock::new();
    match SALES_SYSTEM.get_or_init(Admission::sales_system) {
        Ok(admission) => admission.admit(object, old),
        Err(refusal) => Err(refusal.clone()),
    }
}

/// One served version of a CRD, and what validates its objects.
pub struct Admission {
    group: String,
    version: String,
    kind: String,
    schema: Value,
}

/// The fields of `metadata` (ObjectMeta); the CRD's schema does not list them.
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

impl Admission {
    /// The SalesSystem's, from the CRD `sales-operator crdgen` prints.
    pub fn sales_system() -> Result<Self, Refusal> {
        let crd = SalesSystem::crd();
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .ok_or_else(|| Refusal::Internal("the CRD has no storage version".into()))?;
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .ok_or_else(|| Refusal::Internal("the CRD has no openAPIV3Schema".into()))?;
        Ok(Admission {
            group: crd.spec.group.clone(),
            version: version.name.clone(),
            kind: crd.spec.names.kind.clone(),
            schema: serde_json::to_value(schema).map_err(|e| Refusal::Internal(e.to_string()))?,
        })
    }

    /// [`admit`] with this CRD.
    pub fn admit(&self, object: &Value, old: Option<&Value>) -> Result<Value, Refusal> {
        let api_version = format!("{}/{}", self.group, self.version);
        let str_at = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
        if str_at("apiVersion") != api_version || str_at("kind") != self.kind {
            return Err(Refusal::NoMatch {
                kind: str_at("kind").to_owned(),
                api_version: str_at("apiVersion").to_owned(),
            });
        }
        let mut object = object.clone();
        let mut unknown_fields = self.decode(&mut object);
        if !unknown_fields.is_empty() {
            unknown_fields.sort();
            return Err(Refusal::StrictDecoding {
                kind: self.kind.clone(),
                version: self.version.clone(),
                unknown_fields,
            });
        }
        // The stored object: its unknown fields were pruned when it was written.
        let old = old.map(|old| {
            let mut old = old.clone();
            self.decode(&mut old);
            old
        });

        let mut errors = metadata_errors(object.get("metadata"));
        schema::validate(&self.schema, &object, "", &mut errors);
        if errors.iter().any(|e| e.kind.blocks_rules()) {
            errors.push(FieldError::rules_not_checked());
        } else {
            cel::validate(&self.schema, &object, old.as_ref(), &mut errors);
        }
        if errors.is_empty() {
            return Ok(object);
        }
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(Refusal::Invalid {
            kind: self.kind.clone(),
            name: name.to_owned(),
            errors,
        })
    }

    /// Decoding and defaulting: the paths of the unknown fields (removed), `status`
    /// dropped, `null`s pruned and the defaults applied.
    fn decode(&self, object: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
            if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                meta.retain(|k, _| {
                    let known = OBJECT_META_FIELDS.contains(&k.as_str());
                    if !known {
                        unknown.push(format!("metadata.{k}"));
                    }
                    known
                });
            }
        }
        schema::prune_unknown(&self.schema, object, "", true, &mut unknown);
        schema::prune_nulls(&self.schema, object);
        schema::default(&self.schema, object);
        unknown
    }
}

/// The API server's checks of `metadata` (`ValidateObjectMeta`): a name that is a DNS
/// subdomain (a name is what `kubectl apply` needs), a namespace that is a DNS label.
fn metadata_errors(meta: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let text = |key: &str| meta.and_then(|m| m.get(key));
    match text("name") {
        None | Some(Value::Null) => errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(Value::String(name)) if name.is_empty() => errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(Value::String(name)) => {
            for message in dns1123_subdomain(name) {
                errors.push(FieldError::invalid("metadata.name", name.as_str(), message));
            }
        }
        Some(other) => errors.push(FieldError::type_invalid("metadata.name", other, "string")),
    }
    match text("namespace") {
        None | Some(Value::Null) => {} // kubectl sets the context's namespace
        Some(Value::String(namespace)) => {
            for message in dns1123_label(namespace) {
                let field = "metadata.namespace";
                errors.push(FieldError::invalid(field, namespace.as_str(), message));
            }
        }
        Some(other) => errors.push(FieldError::type_invalid(
            "metadata.namespace",
            other,
            "string",
        )),
    }
    errors
}

const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

fn full_match(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^{pattern}$")).is_ok_and(|re| re.is_match(value))
}

fn dns1123_subdomain_pattern() -> String {
    format!("{DNS1123_LABEL}(\\.{DNS1123_LABEL})*")
}

/// `IsDNS1123Subdomain`'s messages.
fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    let pattern = dns1123_subdomain_pattern();
    if !full_match(&pattern, value) {
        errors.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character \
             (e.g. 'example.com', regex used for validation is '{pattern}')"
        ));
    }
    errors
}

/// `IsDNS1123Label`'s messages (a namespace's name).
fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !full_match(DNS1123_LABEL, value) {
        errors.push(if full_match(&dns1123_subdomain_pattern(), value) {
            "must not contain dots".to_owned()
        } else {
            format!(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
                 or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  \
                 or '123-abc', regex used for validation is '{DNS1123_LABEL}')"
            )
        });
    }
    errors
}
