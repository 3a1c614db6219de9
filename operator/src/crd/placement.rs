//! `placement`: where the pods of a SalesSystem are scheduled. `spec.placement` is
//! the default of every pod; each tier may give its own (`services.<name>`,
//! `postgres.managed`, `postgres.services.<name>.managed`, `rabbitmq.managed`,
//! `redis.managed`, `messaging.kafka.managed`), which replaces the default field by
//! field. The merge, the default spread and how the fields reach the pods are in
//! `children::placement`; `docs/operator/high-availability.md` explains them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration, TopologySpreadConstraint};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where pods are scheduled, as the same fields of a Pod say it. At the top level
/// (`spec.placement`) it applies to every pod of the system; on a tier it replaces
/// the top-level value of each field it gives (even an empty one: `tolerations: []`
/// tolerates nothing), and the fields it leaves out fall back to the top level (for a
/// service's own database: to `postgres.managed.placement`, then to the top level).
/// With neither `affinity` nor `topologySpreadConstraints` given for it, a component
/// that runs more than one pod (a service with 2+ replicas or autoscaled consumers,
/// a Kafka of 3+ nodes) is spread over nodes and zones as far as the cluster allows
/// (`whenUnsatisfiable: ScheduleAnyway`), which never leaves a pod pending.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Labels a node must carry for the pods to run on it (the Pod's `nodeSelector`),
    /// e.g. `node-pool: data` for a dedicated pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the pods tolerate (the Pod's `tolerations`), e.g. `{key: dedicated,
    /// operator: Equal, value: data, effect: NoSchedule}` to run on a tainted pool.
    /// A toleration only allows a node; `nodeSelector` or `affinity` makes the pods go
    /// there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "tolerations_schema")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node affinity and pod (anti-)affinity (the Pod's `affinity`). When given, the
    /// operator's default spread is left out: say the whole placement you want.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "affinity_schema")]
    pub affinity: Option<Affinity>,
    /// How the pods spread over nodes, zones or any node label (the Pod's
    /// `topologySpreadConstraints`). When given (even `[]`), it replaces the default
    /// spread. A constraint without `labelSelector` counts the pods of the same
    /// component (a top-level constraint thus spreads each component's own pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "spread_schema")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

impl Placement {
    /// `self` over `base`: each field `self` gives replaces `base`'s.
    pub fn over(&self, base: &Placement) -> Placement {
        Placement {
            node_selector: self
                .node_selector
                .clone()
                .or_else(|| base.node_selector.clone()),
            tolerations: self
                .tolerations
                .clone()
                .or_else(|| base.tolerations.clone()),
            affinity: self.affinity.clone().or_else(|| base.affinity.clone()),
            topology_spread_constraints: self
                .topology_spread_constraints
                .clone()
                .or_else(|| base.topology_spread_constraints.clone()),
        }
    }
}

// Kubernetes' own types keep their whole schema (the API server checks them when the
// SalesSystem is written) but not their descriptions, documented upstream: with them,
// the placement of every tier made the CRD some 1.4 MB, near etcd's limit per object.

fn tolerations_schema(generator: &mut SchemaGenerator) -> Schema {
    upstream::<Option<Vec<Toleration>>>(generator)
}

fn affinity_schema(generator: &mut SchemaGenerator) -> Schema {
    upstream::<Option<Affinity>>(generator)
}

fn spread_schema(generator: &mut SchemaGenerator) -> Schema {
    upstream::<Option<Vec<TopologySpreadConstraint>>>(generator)
}

fn upstream<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = Value::from(generator.subschema_for::<T>());
    without_descriptions(&mut schema);
    Schema::try_from(schema).unwrap_or_default()
}

/// Removes the `description` of `schema` and of every schema inside it.
fn without_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            object.remove("description");
            for (keyword, value) in object.iter_mut() {
                match (keyword.as_str(), value) {
                    // A map of names to schemas: a property named `description` stays.
                    ("properties", Value::Object(properties)) => {
                        properties.values_mut().for_each(without_descriptions)
                    }
                    (_, value) => without_descriptions(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_descriptions),
        _ => {}
    }
}
