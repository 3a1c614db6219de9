//! `spec.placement` on the pods other operators run for the system: a created
//! Strimzi node pool's, a created `RabbitmqCluster`'s and a created CloudNativePG
//! `Cluster`'s. Only what the spec gives is passed on, in the field each operator
//! offers for it; no default spread is added, since each of them spreads its pods
//! its own way (CloudNativePG a preferred anti-affinity between instances, RabbitMQ's
//! cluster operator a zone spread constraint, which the given constraints are merged
//! into by `topologyKey`; Strimzi whatever the user sets):
//!
//! | placement | Strimzi `KafkaNodePool` | `RabbitmqCluster` | CloudNativePG `Cluster` |
//! |---|---|---|---|
//! | `nodeSelector` | a required node affinity term | a required node affinity term | `affinity.nodeSelector` |
//! | `tolerations` | `template.pod.tolerations` | `tolerations` | `affinity.tolerations` |
//! | `affinity` | `template.pod.affinity` | `affinity` | `affinity.nodeAffinity`, `additionalPodAffinity`, `additionalPodAntiAffinity` |
//! | `topologySpreadConstraints` | `template.pod.topologySpreadConstraints` | `override.statefulSet.spec.template.spec.topologySpreadConstraints` | `topologySpreadConstraints` |
//!
//! Strimzi's pod template and the RabbitmqCluster have no `nodeSelector`: it becomes
//! a `requiredDuringScheduling` node affinity, added to every term given (a node must
//! match the selector and one term, as with a Pod's own `nodeSelector`). A spread
//! constraint without `labelSelector` counts the provider's pods by the labels its
//! operator gives them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use crate::crd::Placement;

/// The constraints given, those without a `labelSelector` counting `pods`.
fn spread(
    placement: &Placement,
    pods: &BTreeMap<String, String>,
) -> Option<Vec<TopologySpreadConstraint>> {
    let constraints = placement.topology_spread_constraints.clone()?;
    let constraints: Vec<_> = constraints
        .into_iter()
        .map(|mut c| {
            c.label_selector = c.label_selector.or_else(|| {
                Some(LabelSelector {
                    match_labels: Some(pods.clone()),
                    ..Default::default()
                })
            });
            c
        })
        .collect();
    (!constraints.is_empty()).then_some(constraints)
}

/// The affinity given, with `nodeSelector` added as a required node affinity: its
/// labels in every term (or in one term of their own when none is given).
fn affinity_with_node_selector(placement: &Placement) -> Option<Affinity> {
    let mut affinity = placement.affinity.clone().unwrap_or_default();
    if let Some(selector) = placement.node_selector.as_ref().filter(|s| !s.is_empty()) {
        let wanted: Vec<NodeSelectorRequirement> = selector
            .iter()
            .map(|(key, value)| NodeSelectorRequirement {
                key: key.clone(),
                operator: "In".into(),
                values: Some(vec![value.clone()]),
            })
            .collect();
        let node = affinity
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        let required = node
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            });
        if required.node_selector_terms.is_empty() {
            required
                .node_selector_terms
                .push(NodeSelectorTerm::default());
        }
        for term in &mut required.node_selector_terms {
            term.match_expressions
                .get_or_insert_with(Vec::new)
                .extend(wanted.iter().cloned());
        }
    }
    (affinity != Affinity::default()).then_some(affinity)
}

fn set<T: serde::Serialize>(
    target: &mut Value,
    key: &str,
    value: Option<T>,
) -> Result<(), serde_json::Error> {
    if let Some(value) = value {
        target[key] = serde_json::to_value(value)?;
    }
    Ok(())
}

/// A `KafkaNodePool`'s `template` (its pods' placement), or `None` when nothing is
/// given; `pods` are the labels Strimzi gives the pool's pods.
pub fn strimzi_node_pool(
    placement: &Placement,
    pods: &BTreeMap<String, String>,
) -> Result<Option<Value>, serde_json::Error> {
    let mut pod = json!({});
    set(&mut pod, "affinity", affinity_with_node_selector(placement))?;
    set(
        &mut pod,
        "tolerations",
        placement.tolerations.clone().filter(|t| !t.is_empty()),
    )?;
    set(
        &mut pod,
        "topologySpreadConstraints",
        spread(placement, pods),
    )?;
    Ok((pod != json!({})).then(|| json!({"pod": pod})))
}

/// Set a `RabbitmqCluster`'s placement fields in its `spec`; `pods` are the labels
/// the cluster operator gives its pods.
pub fn rabbitmq_cluster(
    placement: &Placement,
    spec: &mut Value,
    pods: &BTreeMap<String, String>,
) -> Result<(), serde_json::Error> {
    set(spec, "affinity", affinity_with_node_selector(placement))?;
    set(
        spec,
        "tolerations",
        placement.tolerations.clone().filter(|t| !t.is_empty()),
    )?;
    if let Some(constraints) = spread(placement, pods) {
        // The override's pod spec requires `containers`; an empty list changes none.
        spec["override"] = json!({"statefulSet": {"spec": {"template": {"spec": {
            "containers": [],
            "topologySpreadConstraints": serde_json::to_value(constraints)?,
        }}}}});
    }
    Ok(())
}

/// Set a CloudNativePG `Cluster`'s placement fields in its `spec`; `pods` are the
/// labels CloudNativePG gives its instances.
pub fn cloudnative_pg(
    placement: &Placement,
    spec: &mut Value,
    pods: &BTreeMap<String, String>,
) -> Result<(), serde_json::Error> {
    let mut affinity = json!({});
    set(
        &mut affinity,
        "nodeSelector",
        placement.node_selector.clone().filter(|s| !s.is_empty()),
    )?;
    set(
        &mut affinity,
        "tolerations",
        placement.tolerations.clone().filter(|t| !t.is_empty()),
    )?;
    if let Some(given) = &placement.affinity {
        set(&mut affinity, "nodeAffinity", given.node_affinity.clone())?;
        set(
            &mut affinity,
            "additionalPodAffinity",
            given.pod_affinity.clone(),
        )?;
        set(
            &mut affinity,
            "additionalPodAntiAffinity",
            given.pod_anti_affinity.clone(),
        )?;
    }
    if affinity != json!({}) {
        spec["affinity"] = affinity;
    }
    set(spec, "topologySpreadConstraints", spread(placement, pods))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn placement(value: Value) -> Placement {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_node_selector_joins_every_required_term() {
        let given = placement(json!({
            "nodeSelector": {"pool": "data"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                ]}}},
        }));
        let affinity = serde_json::to_value(affinity_with_node_selector(&given)).unwrap();
        let terms = &affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
        for term in terms.as_array().unwrap() {
            assert_eq!(
                term["matchExpressions"][1],
                json!({"key": "pool", "operator": "In", "values": ["data"]})
            );
        }
        let alone = placement(json!({"nodeSelector": {"pool": "data"}}));
        let affinity = serde_json::to_value(affinity_with_node_selector(&alone)).unwrap();
        assert_eq!(
            affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
            json!([{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["data"]}]}])
        );
        assert_eq!(affinity_with_node_selector(&Placement::default()), None);
    }

    #[test]
    fn nothing_given_sets_nothing() {
        let pods = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        assert_eq!(
            strimzi_node_pool(&Placement::default(), &pods).unwrap(),
            None
        );
        let mut spec = json!({"replicas": 3});
        rabbitmq_cluster(&Placement::default(), &mut spec, &pods).unwrap();
        cloudnative_pg(&Placement::default(), &mut spec, &pods).unwrap();
        assert_eq!(spec, json!({"replicas": 3}));
    }
}
