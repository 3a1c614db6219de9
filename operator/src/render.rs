//! `sales-operator render -f salessystem.yaml`: every object the operator would create
//! for a SalesSystem, as multi-document YAML, without a cluster (what `helm template`
//! is to a chart). Generated Secrets are shown with fresh random values (and signing
//! keys), as the first reconcile would create them; owner references are left out, the
//! object having no uid yet, and so is the pods' identity digest, which the reconcile
//! adds from the identity Secret it finds.

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::children::{self, secrets};
use crate::crd::SalesSystem;

/// The SalesSystem in `yaml` (the first document of that kind).
pub fn parse(yaml: &str) -> Result<SalesSystem> {
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(document).context("not YAML")?;
        if value.get("kind").and_then(|k| k.as_str()) == Some("SalesSystem") {
            return serde_json::from_value(value).context("not a valid SalesSystem");
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
