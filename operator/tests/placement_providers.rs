//! `spec.placement` reaches the pods other operators run for the system: a created
//! Strimzi node pool, a created `RabbitmqCluster` and created CloudNativePG Clusters
//! (one per service, and the shared one), each in the field its operator offers
//! (`children/provider_placement.rs`), and each object valid by that operator's CRD.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{Value, json};

const PLACEMENT: &str = r#"
  placement:
    nodeSelector: {pool: data}
    tolerations:
      - {key: dedicated, operator: Equal, value: data, effect: NoSchedule}
    affinity:
      podAntiAffinity:
        preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 50
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {matchLabels: {tier: data}}
    topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule}
"#;

fn children(spec: &str) -> Vec<Value> {
    let text = format!(
        "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\n\
         metadata: {{name: shop, namespace: sales}}\nspec:{spec}{PLACEMENT}"
    );
    let system = sales_operator::render::parse(&text).unwrap();
    sales_operator::children::desired(&system)
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect()
}

fn one<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name}"))
}

/// The errors of `object` by the CRD in `testdata/schemas/<crd>.yaml`.
fn errors_by(crd: &str, object: &Value, file: &str) -> Vec<String> {
    let dir = common::scratch_dir("placement-providers");
    let path = dir.join(file);
    std::fs::write(
        &path,
        sales_operator::yaml::documents(std::slice::from_ref(object)),
    )
    .unwrap();
    let crd = common::workspace().join(format!("testdata/schemas/{crd}.yaml"));
    let results = common::validate_custom_resources(None, &crd, &[path]);
    assert_eq!(results.len(), 1, "{file} was checked");
    results.into_iter().next().unwrap().1
}

fn required_node_terms(affinity: &Value) -> &Value {
    &affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
}

fn toleration() -> Value {
    json!([{"key": "dedicated", "operator": "Equal", "value": "data", "effect": "NoSchedule"}])
}

fn spread(labels: Value) -> Value {
    json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": labels}}])
}

fn anti_affinity() -> Value {
    json!({"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"tier": "data"}}}}]})
}

#[test]
fn a_created_strimzi_node_pool_and_cloudnative_pg_clusters_are_placed() {
    let objects = children(
        r#"
  messaging:
    kind: kafka
    kafka:
      strimzi:
        clusterName: events
        create: {replicas: 3}
  postgres:
    cloudNativePG: {instances: 2}
"#,
    );
    let pool = one(&objects, "KafkaNodePool", "events-dual");
    let pod = &pool["spec"]["template"]["pod"];
    assert_eq!(
        required_node_terms(&pod["affinity"]),
        &json!([{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["data"]}]}])
    );
    assert_eq!(pod["affinity"]["podAntiAffinity"], anti_affinity());
    assert_eq!(pod["tolerations"], toleration());
    assert_eq!(
        pod["topologySpreadConstraints"],
        spread(json!({"strimzi.io/cluster": "events", "strimzi.io/pool-name": "events-dual"}))
    );
    let errors = errors_by("kafka.strimzi.io_kafkanodepools", pool, "pool.yaml");
    assert!(errors.is_empty(), "{errors:?}");

    let cluster = objects
        .iter()
        .find(|o| {
            o["kind"] == "Cluster" && o["metadata"]["name"].as_str().unwrap().contains("order")
        })
        .expect("the order service's Cluster");
    let name = cluster["metadata"]["name"].as_str().unwrap();
    let affinity = &cluster["spec"]["affinity"];
    assert_eq!(affinity["nodeSelector"], json!({"pool": "data"}));
    assert_eq!(affinity["tolerations"], toleration());
    assert_eq!(affinity["additionalPodAntiAffinity"], anti_affinity());
    assert!(
        affinity["enablePodAntiAffinity"].is_null(),
        "CloudNativePG's own kept"
    );
    assert_eq!(
        cluster["spec"]["topologySpreadConstraints"],
        spread(json!({"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}))
    );
    let errors = errors_by("postgresql.cnpg.io_clusters", cluster, "cluster.yaml");
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_created_rabbitmq_cluster_and_the_shared_cloudnative_pg_cluster_are_placed() {
    let objects = children(
        r#"
  rabbitmq:
    cluster: {create: {replicas: 3}}
  postgres:
    cloudNativePG: {shared: true}
"#,
    );
    let broker = one(&objects, "RabbitmqCluster", "shop-rabbitmq");
    let spec = &broker["spec"];
    assert_eq!(
        required_node_terms(&spec["affinity"]),
        &json!([{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["data"]}]}])
    );
    assert_eq!(spec["tolerations"], toleration());
    assert_eq!(
        spec["override"]["statefulSet"]["spec"]["template"]["spec"],
        json!({"containers": [],
               "topologySpreadConstraints": spread(json!({"app.kubernetes.io/name": "shop-rabbitmq"}))})
    );
    let errors = errors_by("rabbitmq.com_rabbitmqclusters", broker, "broker.yaml");
    assert!(errors.is_empty(), "{errors:?}");

    let shared = objects
        .iter()
        .find(|o| o["kind"] == "Cluster")
        .expect("the shared Cluster");
    let name = shared["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        shared["spec"]["affinity"]["nodeSelector"],
        json!({"pool": "data"})
    );
    assert_eq!(
        shared["spec"]["topologySpreadConstraints"],
        spread(json!({"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}))
    );
    let errors = errors_by("postgresql.cnpg.io_clusters", shared, "shared.yaml");
    assert!(errors.is_empty(), "{errors:?}");
}
