//! Who the NetworkPolicies let in, read the way Kubernetes reads them: every URL a
//! service is configured with (its peers, the identity provider, the gateway's public
//! keys) is reachable from each of its pods; the admin ports (`/metrics`, dead letters)
//! only from the operator's pods and the metrics scraper, never from the system's own
//! pods; the managed broker's management API (queue depth) only from the operator's
//! pods, of the operator's own namespace when the operator knows it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use sales_operator::catalogue::{ADMIN_PORT, HTTP_PORT};
use serde_json::{Value, json};

const NAMESPACE: &str = "sales";

fn children(example: &str, operator_namespace: Option<&str>) -> Vec<Value> {
    let yaml = std::fs::read_to_string(common::workspace().join("examples").join(example)).unwrap();
    children_of(&yaml, operator_namespace)
}

fn children_of(yaml: &str, operator_namespace: Option<&str>) -> Vec<Value> {
    let system = sales_operator::render::parse(yaml).unwrap();
    assert_eq!(system.metadata.namespace.as_deref(), Some(NAMESPACE));
    sales_operator::children::desired_for(&system, operator_namespace)
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect()
}

fn of_kind<'a>(children: &'a [Value], kind: &str) -> Vec<&'a Value> {
    children.iter().filter(|c| c["kind"] == kind).collect()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// A label selector (`matchLabels`, `matchExpressions`) against a set of labels.
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let value = labels.get(key).map(String::as_str);
            match e["operator"].as_str().unwrap() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown operator {other}"),
            }
        });
    by_labels && by_expressions
}

/// A pod, as a policy's peers see it.
struct Pod {
    namespace: String,
    labels: BTreeMap<String, String>,
}

impl Pod {
    fn of_the_system(labels: BTreeMap<String, String>) -> Pod {
        Pod {
            namespace: NAMESPACE.into(),
            labels,
        }
    }
}

/// Whether `peer` (a NetworkPolicyPeer of a policy in the system's namespace) is `pod`.
fn peer_admits(peer: &Value, pod: &Pod) -> bool {
    let namespace_ok = match peer.get("namespaceSelector") {
        None | Some(Value::Null) => pod.namespace == NAMESPACE,
        Some(selector) => selects(
            selector,
            &BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                pod.namespace.clone(),
            )]),
        ),
    };
    let pod_ok = match peer.get("podSelector") {
        None | Some(Value::Null) => true,
        Some(selector) => selects(selector, &pod.labels),
    };
    assert!(peer.get("ipBlock").is_none(), "no ipBlock peers: {peer}");
    namespace_ok && pod_ok
}

/// The policy selecting the pods labelled `labels` (exactly one).
fn policy_of<'a>(children: &'a [Value], labels: &BTreeMap<String, String>) -> &'a Value {
    let policies: Vec<&Value> = of_kind(children, "NetworkPolicy")
        .into_iter()
        .filter(|p| selects(&p["spec"]["podSelector"], labels))
        .collect();
    assert_eq!(policies.len(), 1, "one policy per pod: {labels:?}");
    policies[0]
}

/// The ingress rules of `policy` that open `port`.
fn rules_for(policy: &Value, port: i32) -> Vec<&Value> {
    policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == port)
        })
        .collect()
}

/// Whether `policy` lets `pod` in on `port`.
fn admits(policy: &Value, port: i32, pod: &Pod) -> bool {
    rules_for(policy, port)
        .into_iter()
        .any(|rule| match rule.get("from") {
            None | Some(Value::Null) => true,
            Some(from) => from.as_array().unwrap().iter().any(|p| peer_admits(p, pod)),
        })
}

/// Every pod template of the system (Deployments and StatefulSets), by workload name.
fn system_pods(children: &[Value]) -> Vec<(String, BTreeMap<String, String>)> {
    children
        .iter()
        .filter(|c| c["kind"] == "Deployment" || c["kind"] == "StatefulSet")
        .map(|c| {
            (
                c["metadata"]["name"].as_str().unwrap().to_owned(),
                labels(&c["spec"]["template"]["metadata"]["labels"]),
            )
        })
        .collect()
}

#[test]
fn every_url_a_service_is_given_is_admitted_by_its_targets_policy() {
    for example in ["salessystem.yaml", "salessystem-autoscaling.yaml"] {
        let children = children(example, Some("sales-operator"));
        let config_maps: BTreeMap<String, &Value> = of_kind(&children, "ConfigMap")
            .into_iter()
            .map(|c| (c["metadata"]["name"].as_str().unwrap().to_owned(), c))
            .collect();
        let services: BTreeMap<String, &Value> = of_kind(&children, "Service")
            .into_iter()
            .map(|s| (s["metadata"]["name"].as_str().unwrap().to_owned(), s))
            .collect();
        let mut checked = 0;
        for deployment in of_kind(&children, "Deployment") {
            let pod = &deployment["spec"]["template"];
            let container = &pod["spec"]["containers"][0];
            let Some(config) = container["envFrom"][0]["configMapRef"]["name"].as_str() else {
                continue; // Redis
            };
            let from = Pod::of_the_system(labels(&pod["metadata"]["labels"]));
            for (variable, value) in config_maps[config]["data"].as_object().unwrap() {
                let Some(rest) = value.as_str().and_then(|v| v.strip_prefix("http://")) else {
                    continue;
                };
                let host_port = rest.split('/').next().unwrap();
                let (host, port) = host_port.split_once(':').unwrap();
                if host.contains('.') {
                    continue; // outside the namespace (the OTLP collector)
                }
                let Some(target) = services.get(host) else {
                    panic!("{example}: {variable}={value:?} names no Service of the system")
                };
                assert_eq!(port, HTTP_PORT.to_string());
                let policy = policy_of(&children, &labels(&target["spec"]["selector"]));
                assert!(
                    admits(policy, HTTP_PORT, &from),
                    "{example}: {} reads {variable}={value}, but {}'s policy refuses it",
                    deployment["metadata"]["name"],
                    policy["metadata"]["name"]
                );
                checked += 1;
            }
        }
        // Identity: 6 IDENTITY_URL, 7 GATEWAY_JWKS_URL; the gateway's 7 upstreams; 4 peers.
        assert!(checked >= 24, "{example}: only {checked} URLs checked");
    }
}

#[test]
fn the_identity_provider_and_the_gateway_admit_every_services_pods() {
    let children = children("salessystem-autoscaling.yaml", Some("sales-operator"));
    let customer = policy_of(
        &children,
        &BTreeMap::from([
            ("app.kubernetes.io/instance".into(), "shop-scaled".into()),
            ("sales-system.io/component".into(), "customer".into()),
        ]),
    );
    let gateway = policy_of(
        &children,
        &BTreeMap::from([
            ("app.kubernetes.io/instance".into(), "shop-scaled".into()),
            ("sales-system.io/component".into(), "gateway".into()),
        ]),
    );
    for (name, labels) in system_pods(&children) {
        let pod = Pod::of_the_system(labels);
        let is_service =
            !name.ends_with("-db") && !name.ends_with("rabbitmq") && !name.ends_with("redis");
        assert_eq!(
            admits(customer, HTTP_PORT, &pod),
            is_service && name != "shop-scaled-customer",
            "customer's API port and {name}"
        );
        // The gateway is the public entry: anyone.
        assert!(
            admits(gateway, HTTP_PORT, &pod),
            "gateway's API port and {name}"
        );
    }
    // A pod of another namespace reaches the gateway, not the customer service.
    let stranger = Pod {
        namespace: "elsewhere".into(),
        labels: BTreeMap::new(),
    };
    assert!(admits(gateway, HTTP_PORT, &stranger));
    assert!(!admits(customer, HTTP_PORT, &stranger));
}

#[test]
fn admin_ports_admit_only_the_operator_and_the_metrics_scraper() {
    let operator = |namespace: &str| Pod {
        namespace: namespace.into(),
        labels: BTreeMap::from([("app.kubernetes.io/name".into(), "sales-operator".into())]),
    };
    let prometheus = |namespace: &str| Pod {
        namespace: namespace.into(),
        labels: BTreeMap::from([("app.kubernetes.io/name".into(), "prometheus".into())]),
    };
    // metricsNamespace: monitoring; autoscaling's has none (Prometheus beside it).
    for (example, scraper_namespace) in [
        ("salessystem.yaml", "monitoring"),
        ("salessystem-autoscaling.yaml", NAMESPACE),
    ] {
        let children = children(example, Some("sales-operator"));
        let pods = system_pods(&children);
        let mut policies_with_admin = 0;
        for policy in of_kind(&children, "NetworkPolicy") {
            if rules_for(policy, ADMIN_PORT).is_empty() {
                continue;
            }
            policies_with_admin += 1;
            let name = &policy["metadata"]["name"];
            assert!(
                admits(policy, ADMIN_PORT, &operator("sales-operator")),
                "{name}"
            );
            assert!(!admits(policy, ADMIN_PORT, &operator("default")), "{name}");
            assert!(
                admits(policy, ADMIN_PORT, &prometheus(scraper_namespace)),
                "{example}: {name}"
            );
            assert!(
                !admits(policy, ADMIN_PORT, &prometheus("default")),
                "{name}"
            );
            for (pod_name, labels) in &pods {
                assert!(
                    !admits(policy, ADMIN_PORT, &Pod::of_the_system(labels.clone())),
                    "{example}: {pod_name} reaches {name}'s admin port"
                );
            }
        }
        let services_and_consumers = of_kind(&children, "Deployment")
            .iter()
            .filter(|d| !d["metadata"]["name"].as_str().unwrap().ends_with("redis"))
            .count();
        assert_eq!(policies_with_admin, services_and_consumers, "{example}");
    }
    // Where the operator runs is unknown (render): its pods of any namespace.
    let children = children("salessystem.yaml", None);
    let policy = of_kind(&children, "NetworkPolicy")[0];
    assert!(admits(policy, ADMIN_PORT, &operator("default")));
    assert!(!admits(policy, ADMIN_PORT, &prometheus("default")));
}

#[test]
fn redis_admits_the_services_that_use_it_the_customer_service_among_them() {
    let children = children("salessystem.yaml", None);
    let redis = policy_of(
        &children,
        &BTreeMap::from([
            ("app.kubernetes.io/instance".into(), "shop".into()),
            ("sales-system.io/component".into(), "redis".into()),
        ]),
    );
    let admitted: Vec<String> = system_pods(&children)
        .into_iter()
        .filter(|(_, labels)| admits(redis, 6379, &Pod::of_the_system(labels.clone())))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        admitted,
        [
            "shop-product",
            "shop-order",
            "shop-customer",
            "shop-gateway"
        ]
    );
}

fn management_peers_on(children: &[Value], port: i32) -> Vec<Value> {
    let mut peers = Vec::new();
    for policy in of_kind(children, "NetworkPolicy") {
        for rule in rules_for(policy, port) {
            peers.extend(rule["from"].as_array().cloned().unwrap_or_default());
        }
    }
    peers
}

fn management_peers(operator_namespace: Option<&str>) -> Vec<Value> {
    let children = children("salessystem-autoscaling.yaml", operator_namespace);
    management_peers_on(&children, 15672)
}

/// Under `spec.tls` the management API answers on 15671 only: the operator is let in
/// there, and nobody on 15672.
#[test]
fn under_tls_the_operator_reaches_the_management_api_on_15671() {
    let path = common::workspace().join("examples/salessystem-autoscaling.yaml");
    let yaml = std::fs::read_to_string(path).unwrap();
    let yaml = yaml.replacen("spec:\n", "spec:\n  tls:\n    mode: operatorCA\n", 1);
    let children = children_of(&yaml, Some("sales-operator"));
    let peers = management_peers_on(&children, 15671);
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(
        peers[0]["podSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "sales-operator"}})
    );
    assert!(management_peers_on(&children, 15672).is_empty());
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

/// The managed Kafka: its client port from the services that use the broker and from
/// the operator's pods (it reads the groups' lag); replication and quorum ports only
/// from the Kafka nodes themselves. Nothing else, from any pod of the system.
#[test]
fn the_managed_kafka_is_reached_only_by_its_users_and_its_own_nodes() {
    let children = children("salessystem-kafka.yaml", Some("sales-operator"));
    let kafka_pods = system_pods(&children)
        .into_iter()
        .find(|(name, _)| name == "shop-kafka-kafka")
        .expect("the Kafka StatefulSet")
        .1;
    let policy = policy_of(&children, &kafka_pods);
    let kafka = Pod::of_the_system(kafka_pods.clone());
    for port in [9092, 9091, 9093] {
        assert!(admits(policy, port, &kafka), "node to node on {port}");
    }
    for (name, labels) in system_pods(&children) {
        if name == "shop-kafka-kafka" {
            continue;
        }
        let pod = Pod::of_the_system(labels);
        let component = name.trim_start_matches("shop-kafka-");
        let service = component.trim_end_matches("-consumer");
        let user = ["product", "order", "inventory", "shipping", "notification"].contains(&service);
        assert_eq!(
            admits(policy, 9092, &pod),
            user,
            "{name} on the client port"
        );
        for port in [9091, 9093] {
            assert!(!admits(policy, port, &pod), "{name} on {port}");
        }
    }
    let operator = Pod {
        namespace: "sales-operator".into(),
        labels: BTreeMap::from([(
            "app.kubernetes.io/name".to_owned(),
            "sales-operator".to_owned(),
        )]),
    };
    assert!(
        admits(policy, 9092, &operator),
        "the operator reads the lag"
    );
    assert!(!admits(policy, 9093, &operator));
    let stranger = Pod {
        namespace: "elsewhere".into(),
        labels: BTreeMap::new(),
    };
    assert!(!admits(policy, 9092, &stranger));
    // No RabbitMQ on Kafka.
    assert!(
        system_pods(&children)
            .iter()
            .all(|(name, _)| !name.contains("rabbitmq"))
    );
}
