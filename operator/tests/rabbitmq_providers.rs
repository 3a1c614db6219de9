//! The broker's choices: the built-in RabbitMQ of 3 nodes (classic_config peer
//! discovery, a shared Erlang cookie, quorum queues), a `RabbitmqCluster` of RabbitMQ's
//! cluster operator (its vhost, user and permissions: `rabbitmq_topology.rs`), and the
//! updates the CRD refuses (queue type, provider, nodes), by the Python validator and
//! by `render::parse_update` alike.
//!
//! No real 3-node RabbitMQ runs here (one RabbitMQ binary, 3.10): the generated
//! `rabbitmq.conf` fragment is checked to the byte instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

const RABBITMQ_CLUSTER_CRD: &str = "testdata/schemas/rabbitmq.com_rabbitmqclusters.yaml";

fn crd_path() -> PathBuf {
    common::workspace().join("operator/crd/salessystem.yaml")
}

/// validate_custom_resources.py: the errors of each object, as updates of `old`.
fn validate(old: Option<&Path>, crd: &Path, files: &[PathBuf]) -> Vec<Vec<String>> {
    common::validate_custom_resources(old, crd, files)
        .into_iter()
        .map(|(_, errors)| errors)
        .collect()
}

fn render(path: &Path) -> Vec<Value> {
    let yaml = common::operator(&["render", "-f", &path.display().to_string()]);
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

fn env_of(container: &Value, name: &str) -> Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn ha_example() -> PathBuf {
    common::workspace().join("examples/salessystem-rabbitmq-ha.yaml")
}

#[test]
fn the_three_node_broker_renders_a_valid_cluster() {
    let objects = render(&ha_example());
    let sts = common::find(&objects, "StatefulSet", "shop-rabbitmq");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(sts["spec"]["serviceName"], "shop-rabbitmq-nodes");
    let nodes = common::find(&objects, "Service", "shop-rabbitmq-nodes");
    assert_eq!(nodes["spec"]["clusterIP"], "None");
    assert_eq!(nodes["spec"]["publishNotReadyAddresses"], true);

    // The peer list names exactly the three pods, by the names they take.
    let config = common::find(&objects, "ConfigMap", "shop-rabbitmq");
    let text = config["data"]["cluster.conf"].as_str().unwrap();
    let peers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("cluster_formation.classic_config.nodes."))
        .map(|l| l.split(" = ").nth(1).unwrap())
        .collect();
    assert_eq!(
        peers,
        [
            "rabbit@shop-rabbitmq-0.shop-rabbitmq-nodes.sales",
            "rabbit@shop-rabbitmq-1.shop-rabbitmq-nodes.sales",
            "rabbit@shop-rabbitmq-2.shop-rabbitmq-nodes.sales",
        ]
    );
    assert!(text.contains("cluster_formation.peer_discovery_backend = classic_config\n"));
    let pod = &sts["spec"]["template"]["spec"];
    let broker = &pod["containers"][0];
    assert_eq!(env_of(broker, "RABBITMQ_USE_LONGNAME")["value"], "true");
    assert_eq!(
        env_of(broker, "RABBITMQ_NODENAME")["value"],
        "rabbit@$(MY_POD_NAME).shop-rabbitmq-nodes.sales"
    );
    let mount = broker["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "cluster-config")
        .unwrap();
    assert_eq!(mount["mountPath"], "/etc/rabbitmq/conf.d/20-cluster.conf");
    assert_eq!(mount["subPath"], "cluster.conf");

    // The Erlang cookie comes from the generated Secret, copied with mode 600.
    let cookie = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "erlang-cookie")
        .unwrap();
    assert_eq!(cookie["secret"]["secretName"], "shop-rabbitmq");
    assert_eq!(cookie["secret"]["items"][0]["key"], "erlang-cookie");
    let init = &pod["initContainers"][0];
    assert!(init["command"][2].as_str().unwrap().contains("chmod 600"));
    let generated = common::find(&objects, "Secret", "shop-rabbitmq");
    assert!(
        generated["stringData"]["erlang-cookie"]
            .as_str()
            .is_some_and(|c| c.len() >= 32),
        "{generated}"
    );

    // One node away at a time; the nodes reach each other, only each other.
    let pdb = common::find(&objects, "PodDisruptionBudget", "shop-rabbitmq");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let policy = common::find(&objects, "NetworkPolicy", "shop-rabbitmq");
    let inter = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == 25672)
        })
        .expect("a rule for the distribution port");
    assert_eq!(inter["from"].as_array().unwrap().len(), 1);
    assert_eq!(
        inter["from"][0]["podSelector"]["matchLabels"]["sales-system.io/component"],
        "rabbitmq"
    );
    let ports: Vec<&Value> = inter["ports"].as_array().unwrap().iter().collect();
    assert!(ports.iter().any(|p| p["port"] == 4369));
    assert!(
        ports
            .iter()
            .any(|p| p["port"] == 35672 && p["endPort"] == 35682)
    );

    // Every service that uses the broker declares quorum queues.
    for object in objects.iter().filter(|o| o["kind"] == "ConfigMap") {
        if let Some(prefix) = object["data"].get("AMQP_PREFIX") {
            assert_eq!(object["data"]["AMQP_QUEUE_TYPE"], "quorum", "{prefix}");
        }
    }
}

#[test]
fn a_single_node_broker_keeps_classic_queues_and_no_cluster_objects() {
    let objects = render(&common::workspace().join("examples/salessystem.yaml"));
    assert!(
        objects
            .iter()
            .all(|o| o["metadata"]["name"] != "shop-rabbitmq-nodes")
    );
    let sts = objects
        .iter()
        .find(|o| {
            o["kind"] == "StatefulSet"
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-rabbitmq")
        })
        .unwrap();
    assert_eq!(sts["spec"]["replicas"], 1);
    assert!(sts["spec"]["podManagementPolicy"].is_null());
    let queue_types: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .filter_map(|o| o["data"].get("AMQP_QUEUE_TYPE"))
        .collect();
    assert!(!queue_types.is_empty());
    assert!(queue_types.iter().all(|t| *t == "classic"));
}

const CLUSTER_CREATE: &str = "\
apiVersion: sales-system.io/v1alpha1
kind: SalesSystem
metadata: {name: shop, namespace: sales}
spec:
  deletionPolicy: Delete
  rabbitmq:
    cluster:
      create:
        replicas: 3
        image: rabbitmq:4.1-management
        storage: {size: 5Gi, storageClassName: fast}
        resources:
          requests: {cpu: 500m, memory: 1Gi}
          limits: {memory: 2Gi}
";

#[test]
fn a_created_rabbitmq_cluster_is_valid_for_the_cluster_operator() {
    let dir = common::scratch_dir("rabbitmq-cluster");
    let input = dir.join("cluster.yaml");
    std::fs::write(&input, CLUSTER_CREATE).unwrap();
    assert!(validate(None, &crd_path(), std::slice::from_ref(&input))[0].is_empty());
    let objects = render(&input);
    let cluster = common::find(&objects, "RabbitmqCluster", "shop-rabbitmq");
    assert_eq!(cluster["apiVersion"], "rabbitmq.com/v1beta1");
    assert_eq!(cluster["spec"]["replicas"], 3);
    assert_eq!(cluster["spec"]["persistence"]["storage"], "5Gi");
    assert_eq!(cluster["spec"]["persistence"]["storageClassName"], "fast");
    let file = dir.join("rabbitmqcluster.yaml");
    std::fs::write(&file, serde_json::to_string(cluster).unwrap()).unwrap();
    let results = validate(
        None,
        &common::workspace().join(RABBITMQ_CLUSTER_CRD),
        &[file],
    );
    assert_eq!(results.len(), 1);
    assert!(results[0].is_empty(), "{results:?}");
    // No built-in broker; the services use quorum queues.
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "shop-rabbitmq")
    );
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "shop-rabbitmq"),
        "no URL Secret before the reconcile knows the topology operator is there"
    );
    // The services' own account, for the topology operator's User (rabbitmq_topology.rs).
    let account = common::find(&objects, "Secret", "shop-rabbitmq-user");
    assert_eq!(account["stringData"]["username"], "sales.shop-services");
    for object in objects.iter().filter(|o| o["kind"] == "ConfigMap") {
        if object["data"].get("AMQP_PREFIX").is_some() {
            assert_eq!(object["data"]["AMQP_QUEUE_TYPE"], "quorum");
        }
    }
}

/// Each refused update, refused by the Python validator and by `parse_update`, with
/// the same message. On this 3-node broker classic queues are refused even with a
/// new prefix (a classic queue's node away stops the services).
#[test]
fn queue_type_provider_and_node_count_changes_are_refused() {
    let base: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(ha_example()).unwrap()).unwrap();
    let dir = common::scratch_dir("rabbitmq-updates");
    let old = dir.join("old.yaml");
    std::fs::write(&old, serde_json::to_string(&base).unwrap()).unwrap();
    let variant = |file: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        edit(&mut v);
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        path
    };
    let cases: Vec<(PathBuf, Option<&str>)> = vec![
        (
            variant("classic.yaml", &|v| {
                v["spec"]["rabbitmq"]["queueType"] = "classic".into();
            }),
            Some("rabbitmq.queueType cannot change on its own"),
        ),
        (
            variant("classic-new-prefix.yaml", &|v| {
                v["spec"]["rabbitmq"]["queueType"] = "classic".into();
                v["spec"]["rabbitmq"]["prefix"] = "v2".into();
            }),
            Some("rabbitmq.queueType classic on a RabbitMQ of 3 or more nodes"),
        ),
        (
            variant("quorum-given.yaml", &|v| {
                v["spec"]["rabbitmq"]["queueType"] = "quorum".into();
            }),
            None,
        ),
        (
            variant("five.yaml", &|v| {
                v["spec"]["rabbitmq"]["managed"]["replicas"] = 5.into();
            }),
            Some("rabbitmq.managed.replicas cannot change"),
        ),
        (
            variant("cluster.yaml", &|v| {
                v["spec"]["rabbitmq"] = serde_json::json!({"cluster": {"name": "shared"}});
            }),
            Some("the broker's provider (managed, cluster or external) cannot change"),
        ),
    ];
    let files: Vec<PathBuf> = cases.iter().map(|(f, _)| f.clone()).collect();
    let results = validate(Some(&old), &crd_path(), &files);
    assert_eq!(results.len(), cases.len());
    let old_yaml = std::fs::read_to_string(&old).unwrap();
    for ((file, expected), errors) in cases.iter().zip(&results) {
        let parsed = sales_operator::render::parse_update(
            &std::fs::read_to_string(file).unwrap(),
            &old_yaml,
        );
        match expected {
            None => {
                assert!(errors.is_empty(), "{}: {errors:?}", file.display());
                assert!(parsed.is_ok(), "{}: {parsed:?}", file.display());
            }
            Some(message) => {
                assert!(
                    errors.iter().any(|e| e.contains(message)),
                    "{}: {errors:?}",
                    file.display()
                );
                let refused = format!("{:#}", parsed.expect_err("refused"));
                assert!(refused.contains(message), "{}: {refused}", file.display());
            }
        }
    }
}

#[test]
fn two_nodes_or_two_providers_are_refused() {
    let dir = common::scratch_dir("rabbitmq-invalid");
    let two = dir.join("two.yaml");
    std::fs::write(
        &two,
        "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {name: shop}\n\
         spec: {rabbitmq: {managed: {replicas: 2}}}\n",
    )
    .unwrap();
    let both = dir.join("both.yaml");
    std::fs::write(
        &both,
        "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {name: shop}\n\
         spec: {rabbitmq: {managed: {}, cluster: {name: x}}}\n",
    )
    .unwrap();
    let results = validate(None, &crd_path(), &[two.clone(), both.clone()]);
    assert!(
        results[0]
            .iter()
            .any(|e| e.contains("an odd number from 3")),
        "{results:?}"
    );
    assert!(
        results[1]
            .iter()
            .any(|e| e.contains("at most one of managed, cluster or external"))
    );
    for file in [two, both] {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            sales_operator::render::parse(&text).is_err(),
            "{}",
            file.display()
        );
    }
}
