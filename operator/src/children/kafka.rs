//! The Kafka cluster the operator runs (`messaging.kafka.managed`): a KRaft cluster of
//! Apache Kafka's official image, every node both broker and controller.
//!
//! - StatefulSet `<name>-kafka`, pods started in parallel (a node cannot become ready
//!   before a quorum of controllers is up), node id = the pod's index;
//! - headless Service `<name>-kafka-nodes`, which gives each node the DNS name it
//!   advertises (`<name>-kafka-0.<name>-kafka-nodes.<namespace>.svc`), published
//!   before the pods are ready for the same reason;
//! - Service `<name>-kafka`, the services' bootstrap address.
//!
//! Listeners: `CLIENT` (9092, SASL/PLAIN, the account of the generated Secret
//! `<name>-kafka`), `BROKER` (9091) and `CONTROLLER` (9093) between the nodes only
//! (the NetworkPolicies let nothing else reach them). Every setting is given in
//! `KAFKA_*` variables, which the image writes to `server.properties` (any such
//! variable replaces all the image's defaults). The storage is formatted with the
//! Secret's `cluster-id` at the first start of each node.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Probe, ResourceRequirements, Service, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::{KAFKA_CLIENT_PORT, from_secret};
use super::infrastructure::{
    DATA_VOLUME, from_field, mount, resources, scratch, service, stateful_set, value,
};
use super::names::{ANNOTATION_CREDENTIALS_HASH, Component, Names};
use super::secrets::{KAFKA_CLUSTER_ID_KEY, KAFKA_JAAS_KEY};
use super::services::{container_security, port, values_hash};
use crate::crd::ManagedKafka;

/// The user of `apache/kafka` (`appuser`).
pub const KAFKA_UID: i64 = 1000;
/// Between the nodes: replication.
pub const KAFKA_BROKER_PORT: i32 = 9091;
/// Between the nodes: the KRaft quorum.
pub const KAFKA_CONTROLLER_PORT: i32 = 9093;

fn tcp_probe(port: &str, period: i32, failures: i32, delay: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        initial_delay_seconds: Some(delay),
        ..Default::default()
    }
}

/// Bytes of a memory quantity (`2Gi`, `1536Mi`, `2G`, `1073741824`), rounded up;
/// `None` for what is not one.
fn memory_bytes(quantity: &str) -> Option<u64> {
    u64::try_from(crate::quantity::quantity_millis(quantity)?.div_ceil(1000)).ok()
}

/// The JVM heap: half the memory limit (the rest is page cache's and the JVM's own),
/// at least 256 MiB; `None` (the image's 1 GiB) without a limit.
fn heap_options(resources: &ResourceRequirements) -> Option<String> {
    let limit = resources.limits.as_ref()?.get("memory")?;
    let mib = (memory_bytes(&limit.0)? / 2 / (1 << 20)).max(256);
    Some(format!("-Xms{mib}m -Xmx{mib}m"))
}

/// The `KAFKA_*` settings of every node.
fn environment(names: &Names, settings: &ManagedKafka) -> Vec<EnvVar> {
    let nodes = settings.replicas.max(1);
    let domain = format!("{}.{}.svc", names.kafka_nodes(), names.namespace);
    let statefulset = names.of(Component::Kafka);
    let voters: Vec<String> = (0..nodes)
        .map(|i| format!("{i}@{statefulset}-{i}.{domain}:{KAFKA_CONTROLLER_PORT}"))
        .collect();
    let replication = nodes.min(3).to_string();
    let min_in_sync = if nodes >= 3 { "2" } else { "1" };
    let secret = names.kafka_secret();
    let mut env = vec![
        from_field("POD_NAME", "metadata.name"),
        from_field(
            "KAFKA_NODE_ID",
            "metadata.labels['apps.kubernetes.io/pod-index']",
        ),
        from_secret("CLUSTER_ID", &secret, KAFKA_CLUSTER_ID_KEY),
        from_secret(
            "KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG",
            &secret,
            KAFKA_JAAS_KEY,
        ),
    ];
    let plain = [
        ("KAFKA_PROCESS_ROLES", "broker,controller".to_owned()),
        (
            "KAFKA_LISTENERS",
            format!(
                "CLIENT://:{KAFKA_CLIENT_PORT},BROKER://:{KAFKA_BROKER_PORT},CONTROLLER://:{KAFKA_CONTROLLER_PORT}"
            ),
        ),
        (
            "KAFKA_ADVERTISED_LISTENERS",
            format!(
                "CLIENT://$(POD_NAME).{domain}:{KAFKA_CLIENT_PORT},BROKER://$(POD_NAME).{domain}:{KAFKA_BROKER_PORT}"
            ),
        ),
        (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CLIENT:SASL_PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT".to_owned(),
        ),
        (
            "KAFKA_LISTENER_NAME_CLIENT_SASL_ENABLED_MECHANISMS",
            "PLAIN".to_owned(),
        ),
        ("KAFKA_INTER_BROKER_LISTENER_NAME", "BROKER".to_owned()),
        ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER".to_owned()),
        ("KAFKA_CONTROLLER_QUORUM_VOTERS", voters.join(",")),
        (
            "KAFKA_LOG_DIRS",
            "/var/lib/kafka/data/kafka-logs".to_owned(),
        ),
        ("KAFKA_DEFAULT_REPLICATION_FACTOR", replication.clone()),
        ("KAFKA_MIN_INSYNC_REPLICAS", min_in_sync.to_owned()),
        (
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            replication.clone(),
        ),
        (
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            replication.clone(),
        ),
        (
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
            min_in_sync.to_owned(),
        ),
        (
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
            replication,
        ),
        (
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
            min_in_sync.to_owned(),
        ),
        // The services create their topics; nothing else should appear by accident.
        ("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false".to_owned()),
        ("LOG_DIR", "/opt/kafka/logs".to_owned()),
    ];
    env.extend(plain.iter().map(|(k, v)| value(k, v)));
    if let Some(heap) = heap_options(&kafka_resources(settings)) {
        env.push(value("KAFKA_HEAP_OPTS", &heap));
    }
    env
}

fn kafka_resources(settings: &ManagedKafka) -> ResourceRequirements {
    resources(&settings.resources, "250m", "1Gi", "2Gi")
}

/// The managed Kafka: StatefulSet, the headless Service of its nodes and the
/// bootstrap Service.
pub fn kafka(
    names: &Names,
    settings: &ManagedKafka,
    owner: &Option<OwnerReference>,
    account: Option<&BTreeMap<String, String>>,
) -> (StatefulSet, Service, Service) {
    let component = Component::Kafka;
    let container = Container {
        name: "kafka".into(),
        image: Some(settings.image.clone()),
        ports: Some(vec![
            port("client", KAFKA_CLIENT_PORT),
            port("broker", KAFKA_BROKER_PORT),
            port("controller", KAFKA_CONTROLLER_PORT),
        ]),
        env: Some(environment(names, settings)),
        resources: Some(kafka_resources(settings)),
        // The client port opens once the node has caught up with the cluster's
        // metadata: an open port is a ready broker.
        readiness_probe: Some(tcp_probe("client", 10, 3, 10)),
        liveness_probe: Some(tcp_probe("controller", 30, 6, 60)),
        volume_mounts: Some(vec![
            mount(DATA_VOLUME, "/var/lib/kafka/data"),
            mount("config", "/opt/kafka/config"),
            mount("logs", "/opt/kafka/logs"),
            mount("tmp", "/tmp"),
        ]),
        security_context: Some(container_security()),
        ..Default::default()
    };
    let mut sts = stateful_set(
        names,
        component,
        container,
        vec![scratch("config"), scratch("logs"), scratch("tmp")],
        &settings.storage,
        owner,
        KAFKA_UID,
    );
    if let Some(spec) = sts.spec.as_mut() {
        // A new password (the user list) restarts the nodes, one at a time.
        if let Some(hash) = account.and_then(|a| values_hash(a, &[KAFKA_JAAS_KEY.to_owned()]))
            && let Some(meta) = spec.template.metadata.as_mut()
        {
            meta.annotations = Some(BTreeMap::from([(
                ANNOTATION_CREDENTIALS_HASH.to_owned(),
                hash,
            )]));
        }
        spec.replicas = Some(settings.replicas.max(1));
        spec.service_name = Some(names.kafka_nodes());
        spec.pod_management_policy = Some("Parallel".into());
    }
    let bootstrap = service(names, component, &[("client", KAFKA_CLIENT_PORT)], owner);
    let mut nodes = service(
        names,
        component,
        &[
            ("client", KAFKA_CLIENT_PORT),
            ("broker", KAFKA_BROKER_PORT),
            ("controller", KAFKA_CONTROLLER_PORT),
        ],
        owner,
    );
    nodes.metadata.name = Some(names.kafka_nodes());
    if let Some(spec) = nodes.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
        spec.type_ = Some("ClusterIP".into());
        spec.publish_not_ready_addresses = Some(true);
    }
    (sts, nodes, bootstrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_is_half_the_memory_limit() {
        assert_eq!(memory_bytes("2Gi"), Some(2 << 30));
        assert_eq!(memory_bytes("1536Mi"), Some(1536 << 20));
        assert_eq!(memory_bytes("2G"), Some(2_000_000_000));
        assert_eq!(memory_bytes("lots"), None);
        let limit = |q: &str| ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.into()),
            )])),
            ..Default::default()
        };
        assert_eq!(
            heap_options(&limit("2Gi")).as_deref(),
            Some("-Xms1024m -Xmx1024m")
        );
        assert_eq!(
            heap_options(&limit("4Gi")).as_deref(),
            Some("-Xms2048m -Xmx2048m")
        );
        assert_eq!(
            heap_options(&limit("300Mi")).as_deref(),
            Some("-Xms256m -Xmx256m")
        );
        assert_eq!(heap_options(&ResourceRequirements::default()), None);
    }
}
