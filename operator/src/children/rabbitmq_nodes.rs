//! A managed RabbitMQ of 3 or more nodes (`rabbitmq.managed.replicas`), on the
//! official image (`rabbitmq:4.1-management`):
//!
//! - the StatefulSet starts its pods in parallel (a node waits for its peers at its
//!   first boot), each named `rabbit@<pod>.<name>-rabbitmq-nodes.<namespace>`
//!   (`RABBITMQ_USE_LONGNAME`), as RabbitMQ's cluster operator names them;
//! - the headless Service `<name>-rabbitmq-nodes` gives each pod that DNS name,
//!   published before the pods are ready;
//! - peer discovery is `classic_config`: the ConfigMap `<name>-rabbitmq` lists every
//!   node (mounted as `/etc/rabbitmq/conf.d/20-cluster.conf`, beside the image's own
//!   `10-defaults.conf`), so no RBAC is needed; a partition pauses the minority;
//! - the nodes share the Erlang cookie of the generated Secret `<name>-rabbitmq`
//!   (key `erlang-cookie`), copied by an init container to
//!   `/var/lib/rabbitmq/.erlang.cookie` with mode 600, as Erlang requires.
//!
//! The services declare quorum queues by default then (`rabbitmq.queueType`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, KeyToPath, SecretVolumeSource, Service, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::infrastructure::{
    AMQP_PORT, DATA_VOLUME, RABBITMQ_MANAGEMENT_PORT, from_field, mount, service, value,
};
use super::names::{Component, Names};
use super::secrets::ERLANG_COOKIE_KEY;
use super::services::{container_security, meta};
use crate::crd::ManagedBroker;

/// Erlang's port mapper daemon.
pub const EPMD_PORT: i32 = 4369;
/// Erlang distribution between the nodes (AMQP port + 20000).
pub const DIST_PORT: i32 = 25672;
/// The CLI tools' distribution ports (`rabbitmqctl` on a node reaching its peers).
pub const CLI_PORTS: (i32, i32) = (35672, 35682);
/// Where the cluster's configuration is mounted in the image.
pub const CONFIG_PATH: &str = "/etc/rabbitmq/conf.d/20-cluster.conf";
/// The key of the ConfigMap holding it.
pub const CONFIG_KEY: &str = "cluster.conf";

/// Whether `settings` make a cluster (3 or more nodes) rather than one node.
pub fn clustered(settings: &ManagedBroker) -> bool {
    settings.replicas >= 3
}

/// The Erlang node name of pod `index`.
pub fn node_name(names: &Names, index: i32) -> String {
    format!(
        "rabbit@{}-{index}.{}.{}",
        names.of(Component::Broker),
        names.broker_nodes(),
        names.namespace
    )
}

/// The `rabbitmq.conf` fragment that forms the cluster.
pub fn cluster_config(names: &Names, replicas: i32) -> String {
    let mut text = String::from(
        "# Written by sales-operator: the nodes of this cluster.\n\
         cluster_formation.peer_discovery_backend = classic_config\n",
    );
    for index in 0..replicas {
        text.push_str(&format!(
            "cluster_formation.classic_config.nodes.{} = {}\n",
            index + 1,
            node_name(names, index)
        ));
    }
    text.push_str("cluster_partition_handling = pause_minority\n");
    text
}

/// Make the single-node StatefulSet of [`super::infrastructure::rabbitmq`] a cluster of
/// `settings.replicas` nodes; the headless Service of the nodes and the ConfigMap of
/// the configuration it mounts.
pub fn cluster(
    names: &Names,
    settings: &ManagedBroker,
    owner: &Option<OwnerReference>,
    sts: &mut StatefulSet,
) -> (Service, ConfigMap) {
    let component = Component::Broker;
    let config = ConfigMap {
        metadata: meta(names, names.of(component), names.labels(component), owner),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            cluster_config(names, settings.replicas),
        )])),
        ..Default::default()
    };
    let mut nodes = service(
        names,
        component,
        &[
            ("epmd", EPMD_PORT),
            ("amqp", AMQP_PORT),
            ("dist", DIST_PORT),
            ("management", RABBITMQ_MANAGEMENT_PORT),
        ],
        owner,
    );
    nodes.metadata.name = Some(names.broker_nodes());
    if let Some(spec) = nodes.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
        spec.publish_not_ready_addresses = Some(true);
    }
    let Some(spec) = sts.spec.as_mut() else {
        return (nodes, config);
    };
    spec.replicas = Some(settings.replicas);
    spec.service_name = Some(names.broker_nodes());
    spec.pod_management_policy = Some("Parallel".into());
    let Some(pod) = spec.template.spec.as_mut() else {
        return (nodes, config);
    };
    let image = pod.containers.first().and_then(|c| c.image.clone());
    pod.volumes.get_or_insert_with(Vec::new).extend([
        Volume {
            name: "cluster-config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.of(component),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "erlang-cookie".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.broker_secret()),
                items: Some(vec![KeyToPath {
                    key: ERLANG_COOKIE_KEY.into(),
                    path: ".erlang.cookie".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]);
    pod.init_containers = Some(vec![Container {
        name: "erlang-cookie".into(),
        image,
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "cp /tmp/erlang-cookie-secret/.erlang.cookie /var/lib/rabbitmq/.erlang.cookie \
             && chmod 600 /var/lib/rabbitmq/.erlang.cookie"
                .into(),
        ]),
        volume_mounts: Some(vec![
            mount(DATA_VOLUME, "/var/lib/rabbitmq"),
            mount("erlang-cookie", "/tmp/erlang-cookie-secret"),
        ]),
        security_context: Some(container_security()),
        ..Default::default()
    }]);
    for container in pod.containers.iter_mut().filter(|c| c.name == "rabbitmq") {
        container.env.get_or_insert_with(Vec::new).extend([
            from_field("MY_POD_NAME", "metadata.name"),
            value("RABBITMQ_USE_LONGNAME", "true"),
            value(
                "RABBITMQ_NODENAME",
                &format!(
                    "rabbit@$(MY_POD_NAME).{}.{}",
                    names.broker_nodes(),
                    names.namespace
                ),
            ),
        ]);
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: "cluster-config".into(),
                mount_path: CONFIG_PATH.into(),
                sub_path: Some(CONFIG_KEY.into()),
                read_only: Some(true),
                ..Default::default()
            });
        let ports = container.ports.get_or_insert_with(Vec::new);
        ports.push(super::services::port("epmd", EPMD_PORT));
        ports.push(super::services::port("dist", DIST_PORT));
    }
    (nodes, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_lists_every_node_by_its_long_name() {
        let names = Names::new("shop", "sales");
        assert_eq!(
            cluster_config(&names, 3),
            "# Written by sales-operator: the nodes of this cluster.\n\
             cluster_formation.peer_discovery_backend = classic_config\n\
             cluster_formation.classic_config.nodes.1 = rabbit@shop-rabbitmq-0.shop-rabbitmq-nodes.sales\n\
             cluster_formation.classic_config.nodes.2 = rabbit@shop-rabbitmq-1.shop-rabbitmq-nodes.sales\n\
             cluster_formation.classic_config.nodes.3 = rabbit@shop-rabbitmq-2.shop-rabbitmq-nodes.sales\n\
             cluster_partition_handling = pause_minority\n"
        );
    }
}
