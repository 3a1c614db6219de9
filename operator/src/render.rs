//! `sales-operator render -f salessystem.yaml`: every object the operator would create
//! for a SalesSystem, as multi-document YAML, without a cluster (what `helm template`
//! is to a chart). Generated Secrets are shown with fresh random values (and signing
//! keys), as the first reconcile would create them; owner references are left out, the
//! object having no uid yet, and so is the pods' identity digest, which the reconcile
//! adds from the identity Secret it finds.
//!
//! The SalesSystem is first admitted as the API server would ([`crate::admission`]):
//! what `kubectl apply` would refuse, render refuses, with the same messages; and it
//! renders the object as the API server would store it, defaults applied.

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::admission;
use crate::children::{self, secrets};
use crate::crd::SalesSystem;

/// The SalesSystem in `yaml` (the first document of that kind), admitted as a new
/// object: refused, with the API server's words for every problem, where `kubectl
/// apply` would be refused.
pub fn parse(yaml: &str) -> Result<SalesSystem> {
    admitted(&document(yaml)?, None)
}

/// [`parse`], as an update of the SalesSystem in `old_yaml`: the transition rules
/// (`oldSelf`, e.g. the managed Kafka's fixed node count) are checked too.
pub fn parse_update(yaml: &str, old_yaml: &str) -> Result<SalesSystem> {
    let (new, old) = (document(yaml)?, document(old_yaml)?);
    let identity = |v: &Value| {
        (
            v.pointer("/metadata/name").cloned(),
            v.pointer("/metadata/namespace").cloned(),
        )
    };
    if identity(&new) != identity(&old) {
        bail!(
            "the old SalesSystem is another object (its name or namespace differs): nothing to update"
        );
    }
    admitted(&new, Some(&old))
}

fn admitted(object: &Value, old: Option<&Value>) -> Result<SalesSystem> {
    let stored = admission::admit(object, old)?;
    serde_json::from_value(stored).context("not a valid SalesSystem")
}

/// The first document of kind SalesSystem.
fn document(yaml: &str) -> Result<Value> {
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(document).context("not YAML")?;
        if value.get("kind").and_then(|k| k.as_str()) == Some("SalesSystem") {
            return Ok(value);
        }
    }
    bail!("no SalesSystem in the file")
}

/// Every object for `system`, as multi-document YAML.
pub fn render(system: &SalesSystem) -> Result<String> {
    let names = children::names_of(system);
    let owner = children::owner_of(system);
    let mut docs = Vec::new();
    for generated in secrets::generated(&names, &system.spec) {
        let values = secrets::Sources::system(|sources| {
            generated.credentials.complete(&Default::default(), sources)
        })?;
        docs.push(serde_json::to_value(
            generated.to_secret(&names, &owner, values),
        )?);
    }
    for child in children::desired(system)? {
        docs.push(serde_json::to_value(&child.object)?);
    }
    Ok(crate::yaml::documents(&docs))
}
