//! Who may read the managed broker's management API (queue depth): the operator's
//! pods, of the operator's own namespace when the operator knows it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};

fn management_peers(operator_namespace: Option<&str>) -> Vec<Value> {
    let yaml =
        std::fs::read_to_string(common::workspace().join("examples/salessystem-autoscaling.yaml"))
            .unwrap();
    let system = sales_operator::render::parse(&yaml).unwrap();
    let children = sales_operator::children::desired_for(&system, operator_namespace).unwrap();
    let mut peers = Vec::new();
    for child in children.iter().filter(|c| c.kind() == "NetworkPolicy") {
        let policy = serde_json::to_value(&child.object).unwrap();
        for rule in policy["spec"]["ingress"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if rule["ports"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["port"] == 15672))
            {
                peers.extend(rule["from"].as_array().cloned().unwrap_or_default());
            }
        }
    }
    peers
}

#[test]
fn the_management_api_admits_only_the_operators_namespace_when_known() {
    let peers = management_peers(Some("sales-operator"));
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(
        peers[0]["namespaceSelector"],
        json!({"matchLabels": {"kubernetes.io/metadata.name": "sales-operator"}})
    );
    assert_eq!(
        peers[0]["podSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "sales-operator"}})
    );
    // Without a cluster (render), where the operator runs is unknown: any namespace.
    let peers = management_peers(None);
    assert_eq!(peers[0]["namespaceSelector"], json!({}));
}
