//! Where the pods of every tier run, and what a node drain may take: the top-level
//! `placement` and each tier's override reach exactly the pods they are for, merged
//! field by field; components of several pods are spread softly when nothing is
//! given; every tier has a PodDisruptionBudget selecting exactly its pods. The
//! example (`examples/salessystem-placement.yaml`): `placement_example.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};

fn system(spec: Value) -> sales_operator::crd::SalesSystem {
    serde_json::from_value(json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": "sales"},
        "spec": spec,
    }))
    .unwrap()
}

fn children(spec: Value) -> Vec<Value> {
    sales_operator::children::desired(&system(spec))
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect()
}

/// Deployments and StatefulSets by name.
fn workloads(children: &[Value]) -> BTreeMap<String, &Value> {
    children
        .iter()
        .filter(|c| c["kind"] == "Deployment" || c["kind"] == "StatefulSet")
        .map(|c| (c["metadata"]["name"].as_str().unwrap().to_owned(), c))
        .collect()
}

fn pod<'a>(children: &'a [Value], name: &str) -> &'a Value {
    let workload = workloads(children)
        .remove(name)
        .unwrap_or_else(|| panic!("no workload {name}"));
    &workload["spec"]["template"]["spec"]
}

/// The four placement fields of a pod spec (absent ones as `null`).
fn placement_of(pod: &Value) -> Value {
    json!({
        "nodeSelector": pod["nodeSelector"],
        "tolerations": pod["tolerations"],
        "affinity": pod["affinity"],
        "topologySpreadConstraints": pod["topologySpreadConstraints"],
    })
}

fn placed(node_selector: &Value, tolerations: &Value, affinity: &Value, spread: &Value) -> Value {
    json!({
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        "affinity": affinity,
        "topologySpreadConstraints": spread,
    })
}

fn own(component: &str) -> Value {
    json!({"matchLabels": {
        "app.kubernetes.io/instance": "shop",
        "sales-system.io/component": component,
    }})
}

fn toleration(pool: &str) -> Value {
    json!({"key": "dedicated", "operator": "Equal", "value": pool, "effect": "NoSchedule"})
}

fn zone_spread(hard: bool) -> Value {
    json!({
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": if hard { "DoNotSchedule" } else { "ScheduleAnyway" },
    })
}

fn with_selector(mut constraint: Value, component: &str) -> Value {
    constraint["labelSelector"] = own(component);
    constraint
}

fn zone_affinity(zone: &str) -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]},
        ]}],
    }}})
}

#[test]
fn each_tier_gets_its_placement_over_the_top_level_field_by_field() {
    let children = children(json!({
        "placement": {
            "nodeSelector": {"node-pool": "general"},
            "tolerations": [toleration("general")],
            "topologySpreadConstraints": [zone_spread(false)],
        },
        "services": {"order": {"placement": {"nodeSelector": {"node-pool": "orders"}}}},
        "postgres": {
            "managed": {"placement": {
                "nodeSelector": {"node-pool": "data"},
                "tolerations": [toleration("data")],
            }},
            "services": {"payment": {"managed": {"placement": {"affinity": zone_affinity("b")}}}},
        },
        "rabbitmq": {"managed": {"placement": {"tolerations": []}}},
        "redis": {"managed": {"placement": {"topologySpreadConstraints": []}}},
    }));
    let (general, data) = (
        json!({"node-pool": "general"}),
        json!({"node-pool": "data"}),
    );
    let (on_general, on_data) = (json!([toleration("general")]), json!([toleration("data")]));
    let spread = |component: &str| json!([with_selector(zone_spread(false), component)]);
    let null = Value::Null;
    for (name, expected) in [
        // A service without its own placement: the top level, the spread counting its pods.
        (
            "shop-product",
            placed(&general, &on_general, &null, &spread("product")),
        ),
        // A service's nodeSelector replaces the top level's; the rest falls back.
        (
            "shop-order",
            placed(
                &json!({"node-pool": "orders"}),
                &on_general,
                &null,
                &spread("order"),
            ),
        ),
        // Every database: postgres.managed's fields, the spread from the top level.
        (
            "shop-product-db",
            placed(&data, &on_data, &null, &spread("product-db")),
        ),
        // A service's own database: its affinity over postgres.managed's over the top.
        (
            "shop-payment-db",
            placed(&data, &on_data, &zone_affinity("b"), &spread("payment-db")),
        ),
        // An empty list given replaces the top level's with none.
        (
            "shop-rabbitmq",
            placed(&general, &null, &null, &spread("rabbitmq")),
        ),
        ("shop-redis", placed(&general, &on_general, &null, &null)),
    ] {
        assert_eq!(placement_of(pod(&children, name)), expected, "{name}");
    }
}

#[test]
fn the_managed_kafka_gets_its_placement_over_the_top_level() {
    let children = children(json!({
        "placement": {"tolerations": [toleration("general")]},
        "messaging": {"kind": "kafka", "kafka": {"managed": {"placement": {
            "nodeSelector": {"node-pool": "kafka"},
            "affinity": zone_affinity("a"),
        }}}},
    }));
    assert_eq!(
        placement_of(pod(&children, "shop-kafka")),
        placed(
            &json!({"node-pool": "kafka"}),
            &json!([toleration("general")]),
            &zone_affinity("a"),
            &Value::Null
        ),
    );
}

/// The soft spread: over nodes (a constraint) and zones (a preferred anti-affinity),
/// both counting the component's own pods.
fn default_spread(component: &str) -> Value {
    let zones = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {
            "topologyKey": "topology.kubernetes.io/zone",
            "labelSelector": own(component),
        },
    }]}});
    let nodes = json!([{
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": own(component),
    }]);
    placed(&Value::Null, &Value::Null, &zones, &nodes)
}

fn nothing() -> Value {
    placed(&Value::Null, &Value::Null, &Value::Null, &Value::Null)
}

#[test]
fn components_of_several_pods_are_spread_softly_by_default() {
    let children = children(json!({
        "services": {"order": {"replicas": 3}, "payment": {"replicas": 2}},
        "autoscaling": {"inventory": {"enabled": true, "maxReplicas": 4}},
        "messaging": {"kind": "kafka", "kafka": {"managed": {"replicas": 3}, "replicationFactor": 3}},
    }));
    for (name, component) in [
        ("shop-order", "order"),
        ("shop-payment", "payment"),
        ("shop-inventory-consumer", "inventory-consumer"),
        ("shop-kafka", "kafka"),
    ] {
        let pod = pod(&children, name);
        assert_eq!(placement_of(pod), default_spread(component), "{name}");
    }
    // One pod (the inventory API: replicas 1), and the single-pod data tier: none.
    for name in [
        "shop-product",
        "shop-inventory",
        "shop-product-db",
        "shop-redis",
    ] {
        assert_eq!(placement_of(pod(&children, name)), nothing(), "{name}");
    }
    let single = children_of_single_kafka();
    assert_eq!(placement_of(pod(&single, "shop-kafka")), nothing());
}

fn children_of_single_kafka() -> Vec<Value> {
    children(json!({"messaging": {"kind": "kafka", "kafka": {"managed": {"replicas": 1}}}}))
}

#[test]
fn a_given_affinity_or_spread_replaces_the_default() {
    let children = children(json!({
        "services": {
            "order": {"replicas": 3, "placement": {"affinity": zone_affinity("a")}},
            "product": {"replicas": 3, "placement": {"topologySpreadConstraints": [zone_spread(true)]}},
            "customer": {"replicas": 3, "placement": {"topologySpreadConstraints": []}},
            "payment": {"replicas": 3, "placement": {"nodeSelector": {"node-pool": "pay"}}},
        },
    }));
    let null = &Value::Null;
    let affinity = placed(null, null, &zone_affinity("a"), null);
    assert_eq!(placement_of(pod(&children, "shop-order")), affinity);
    let spread = json!([with_selector(zone_spread(true), "product")]);
    let spread = placed(null, null, null, &spread);
    assert_eq!(placement_of(pod(&children, "shop-product")), spread);
    // `[]` given: no spread at all.
    assert_eq!(placement_of(pod(&children, "shop-customer")), nothing());
    // A nodeSelector alone keeps the default spread.
    let mut expected = default_spread("payment");
    expected["nodeSelector"] = json!({"node-pool": "pay"});
    assert_eq!(placement_of(pod(&children, "shop-payment")), expected);
}

/// Whether a selector (`matchLabels` only: the operator's) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    assert!(selector.get("matchExpressions").is_none(), "{selector}");
    let wanted = selector["matchLabels"].as_object().unwrap();
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_labels(workload: &Value) -> &Value {
    &workload["spec"]["template"]["metadata"]["labels"]
}

/// Every Deployment and StatefulSet has exactly one budget of maxUnavailable 1, and
/// each budget selects the pods of exactly one workload.
fn assert_one_budget_per_workload(children: &[Value], tiers: &[&str]) {
    let budgets: Vec<&Value> = children
        .iter()
        .filter(|c| c["kind"] == "PodDisruptionBudget")
        .collect();
    let workloads = workloads(children);
    for (name, workload) in &workloads {
        let labels = pod_labels(workload);
        let mine: Vec<&&Value> = budgets
            .iter()
            .filter(|b| selects(&b["spec"]["selector"], labels))
            .collect();
        assert_eq!(mine.len(), 1, "{name}: budgets {mine:?}");
        assert_eq!(mine[0]["spec"]["maxUnavailable"], 1, "{name}");
        assert_eq!(mine[0]["spec"]["selector"], workload["spec"]["selector"]);
        assert_eq!(mine[0]["metadata"]["name"], name.as_str());
    }
    for budget in &budgets {
        let selected = workloads
            .values()
            .filter(|w| selects(&budget["spec"]["selector"], pod_labels(w)))
            .count();
        assert_eq!(selected, 1, "{}", budget["metadata"]["name"]);
    }
    assert_eq!(budgets.len(), workloads.len());
    for tier in tiers {
        assert!(
            budgets.iter().any(|b| b["metadata"]["name"] == *tier),
            "no budget for {tier}"
        );
    }
}

#[test]
fn every_tier_has_a_budget_selecting_exactly_its_pods() {
    let rabbitmq = children(json!({"autoscaling": {"order": {"enabled": true}}}));
    assert_one_budget_per_workload(
        &rabbitmq,
        &[
            "shop-order",
            "shop-order-consumer",
            "shop-order-db",
            "shop-customer-db",
            "shop-rabbitmq",
            "shop-redis",
        ],
    );
    let kafka = children(json!({
        "messaging": {"kind": "kafka", "kafka": {"managed": {"replicas": 3}}},
        "postgres": {"services": {"shipping": {"external": {"secretName": "dbs"}}}},
    }));
    assert_one_budget_per_workload(&kafka, &["shop-kafka", "shop-product-db", "shop-redis"]);
    assert!(
        !kafka
            .iter()
            .any(|c| c["metadata"]["name"] == "shop-shipping-db"),
        "an external database has no StatefulSet nor budget"
    );
    // External broker, databases and Redis: the services' budgets only.
    let external = children(json!({
        "rabbitmq": {"external": {"secretName": "infra", "key": "amqp"}},
        "postgres": {"external": {"secretName": "infra"}},
        "redis": {"external": {"secretName": "infra", "key": "redis"}},
    }));
    assert_one_budget_per_workload(&external, &["shop-gateway"]);
    let budgets = external
        .iter()
        .filter(|c| c["kind"] == "PodDisruptionBudget")
        .count();
    assert_eq!(budgets, 8);
}
