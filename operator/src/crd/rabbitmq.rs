//! `spec.rabbitmq`'s choices beside the broker's own fields (in `crd.rs`): the type
//! of the services' queues, and a RabbitMQ run by RabbitMQ's cluster operator
//! (`rabbitmq.com/v1beta1 RabbitmqCluster`). docs/operator/providers.md compares them.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StorageSpec;

/// The type of every queue the services declare (`AMQP_QUEUE_TYPE`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// On one node: lost with it (a single-node broker has nothing else).
    Classic,
    /// Replicated over the broker's nodes (Raft): kept while a majority runs.
    Quorum,
}

impl QueueType {
    /// The services' `AMQP_QUEUE_TYPE`, as the services read it.
    pub fn as_str(self) -> &'static str {
        sales_contracts::topology::QueueType::from(self).as_str()
    }
}

impl From<QueueType> for sales_contracts::topology::QueueType {
    fn from(queue_type: QueueType) -> Self {
        match queue_type {
            QueueType::Classic => Self::Classic,
            QueueType::Quorum => Self::Quorum,
        }
    }
}

/// A RabbitMQ run by RabbitMQ's cluster operator: one it creates for this system
/// (`create`) or one that exists in this namespace (`name`). The services sign in as
/// a user of their own (`<namespace>.<system>-services`, password generated in the
/// Secret `<system>-rabbitmq-user`) on a vhost of their own (`<namespace>.<system>`),
/// which the operator declares through RabbitMQ's Messaging Topology Operator
/// (`Vhost`, `User`, `Permission`): both operators must be installed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.create) != has(self.name)").message("rabbitmq.cluster: give exactly one of create or name")
)]
pub struct RabbitmqClusterProvider {
    /// The operator creates a `RabbitmqCluster` named `<system>-rabbitmq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateRabbitmqCluster>,
    /// The name of an existing `RabbitmqCluster` of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 52),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Option<String>,
}

/// The `RabbitmqCluster` the operator creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateRabbitmqCluster {
    /// Nodes: 1, or an odd number from 3 (a quorum queue needs a majority of them).
    /// Fixed once the cluster exists.
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Unset: the cluster operator's default image.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Each node's volume (`spec.persistence`).
    pub storage: StorageSpec,
    /// Unset: the cluster operator's defaults (2Gi of memory, 1 CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for CreateRabbitmqCluster {
    fn default() -> Self {
        CreateRabbitmqCluster {
            replicas: 3,
            image: None,
            storage: StorageSpec::default(),
            resources: None,
        }
    }
}
