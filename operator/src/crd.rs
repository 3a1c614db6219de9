//! The `SalesSystem` resource (`sales-system.io/v1alpha1`): everything a user says
//! about one running system. The CRD (`operator/crd/salessystem.yaml`, printed by
//! `sales-operator crdgen`) is generated from these types: their doc comments are the
//! field descriptions, `#[schemars(...)]` the ranges and patterns, `#[x_kube(validation
//! = ...)]` the CEL rules that span fields, and `#[serde(default ...)]` the defaults.
//!
//! Every default is also applied when a field is missing on read, so the operator
//! behaves the same whether or not the API server filled the defaults in.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalogue::AppService;

mod backup;
mod cloudnative_pg;
mod messaging;
mod placement;
mod rabbitmq;
mod tls;
pub use backup::*;
pub use cloudnative_pg::*;
pub use messaging::*;
pub use placement::*;
pub use rabbitmq::*;
pub use tls::*;

/// The API group of the resource.
pub const GROUP: &str = "sales-system.io";
/// Set to `"true"` on a SalesSystem to stop the operator from changing anything.
pub const PAUSED_ANNOTATION: &str = "sales-system.io/paused";
/// The finalizer that runs the deletion policy.
pub const FINALIZER: &str = "sales-system.io/cleanup";

/// A duration as the services read it: `30s`, `5m`, `1h30m`.
const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";
/// A DNS name (RFC 1123 subdomain).
const HOSTNAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// An IPv4 or IPv6 address, or a CIDR block (what the gateway's `TRUSTED_PROXIES`
/// parses), in the RE2 syntax CEL's `matches` uses. IPv6 addresses with an IPv4 tail
/// are accepted in their common forms (`::ffff:192.0.2.1`).
const TRUSTED_PROXIES_RULE: &str = concat!(
    "self.all(p, p.matches('^",
    // IPv4, optional /0-32
    "(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(/(3[0-2]|[12]?[0-9]))?",
    "|",
    // IPv6, optional /0-128
    "(",
    "([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}",
    "|([0-9a-fA-F]{1,4}:){1,7}:",
    "|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}",
    "|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}",
    "|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}",
    "|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}",
    "|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}",
    "|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}",
    "|:((:[0-9a-fA-F]{1,4}){1,7}|:)",
    "|::(ffff(:0{1,4})?:)?((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    "|([0-9a-fA-F]{1,4}:){1,4}:((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    ")(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?",
    ")$'))"
);
/// A Secret's name.
const SECRET_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A key in a Secret.
const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// One sales system: its services, their broker, databases and cache, how the gateway
/// is reached, and how it is observed. The operator creates and keeps everything else.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sales-system.io",
    version = "v1alpha1",
    kind = "SalesSystem",
    plural = "salessystems",
    singular = "salessystem",
    shortname = "sales",
    category = "sales-system",
    namespaced,
    status = "SalesSystemStatus",
    derive = "Default",
    doc = "A whole sales system: services, RabbitMQ, one PostgreSQL per service, Redis, exposure, observability.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Services",
        type_ = "string",
        description = "services with every replica ready, of all",
        json_path = ".status.readyServices"
    ),
    printcolumn(name = "Gateway", type_ = "string", json_path = ".status.gatewayUrl"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 30").message("a SalesSystem's name is at most 30 characters (children append up to 22)"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("a SalesSystem's name must be a DNS label that starts with a letter (it names Services)"),
)]
#[serde(rename_all = "camelCase")]
pub struct SalesSystemSpec {
    /// Where the service images come from.
    #[serde(default)]
    pub image: ImageSpec,
    /// Replicas and resources of each service.
    #[serde(default)]
    pub services: ServicesSpec,
    /// Which broker carries the events: RabbitMQ (the default, configured under
    /// `rabbitmq`) or Kafka (configured here).
    #[serde(default)]
    pub messaging: MessagingSpec,
    /// The RabbitMQ broker: run by the operator (`managed`, the default), by RabbitMQ's
    /// cluster operator (`cluster`), or `external`. Read only with `messaging.kind:
    /// rabbitmq`.
    #[serde(default)]
    pub rabbitmq: BrokerSpec,
    /// PostgreSQL: one database per service (the gateway has none).
    #[serde(default)]
    pub postgres: DatabasesSpec,
    /// Redis: the caches of product and order, the gateway's rate-limit counters, and
    /// customers' token versions (revocation), which the customer service publishes.
    #[serde(default)]
    pub redis: RedisSpec,
    /// How the API gateway, the system's one public entry, is reached.
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// Open the seed documents' own unauthenticated routes (`/products`, `/orders`...)
    /// to callers without a token (`SEED_COMPAT_OPEN`). Off in production.
    #[serde(default)]
    pub seed_compat_open: bool,
    /// The keys that sign tokens, the services' client secrets, and the admin account.
    #[serde(default)]
    pub auth: AuthSpec,
    /// An order not paid within this time is cancelled and its stock restored
    /// (`UNPAID_ORDER_TIMEOUT`).
    #[serde(default = "default_unpaid_order_timeout")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub unpaid_order_timeout: String,
    /// Traces, metrics and logs.
    #[serde(default)]
    pub observability: ObservabilitySpec,
    /// Scaling of the queue consumers on queue depth. A service with autoscaling enabled
    /// runs as two Deployments: `<name>-<service>` serves the API
    /// (`services.<service>.replicas`), `<name>-<service>-consumer` consumes its queues
    /// with the replicas the operator chooses.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    /// NetworkPolicies that let each database be reached only by its service, the
    /// broker and Redis only by the services that use them, each service only by its
    /// callers (the customer service, which issues tokens, by every service), only the
    /// gateway from outside, and the admin ports only by the operator and Prometheus.
    #[serde(default)]
    pub network_policies: NetworkPoliciesSpec,
    /// What happens to the volumes of the managed databases and broker when this
    /// SalesSystem is deleted: `Retain` (the default) keeps them and their credentials,
    /// `Delete` removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Where every pod of the system is scheduled (node selector, tolerations,
    /// affinity, topology spread), unless its tier's own `placement` replaces a field
    /// (docs/operator/high-availability.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// TLS between the services and their databases, broker and cache
    /// (docs/operator/tls.md). Off by default.
    #[serde(default)]
    pub tls: TlsSpec,
}

impl SalesSystemSpec {
    /// The Kafka settings, with `messaging.kind: kafka`.
    pub fn kafka(&self) -> Option<KafkaSpec> {
        match self.messaging.kind {
            MessagingKind::Kafka => Some(self.messaging.kafka.clone().unwrap_or_default()),
            MessagingKind::Rabbitmq => None,
        }
    }

    /// The RabbitMQ settings, with `messaging.kind: rabbitmq`.
    pub fn rabbitmq(&self) -> Option<&BrokerSpec> {
        match self.messaging.kind {
            MessagingKind::Rabbitmq => Some(&self.rabbitmq),
            MessagingKind::Kafka => None,
        }
    }

    /// The RabbitMQ the operator runs, if it runs one.
    pub fn managed_rabbitmq(&self) -> Option<ManagedBroker> {
        self.rabbitmq().and_then(BrokerSpec::managed)
    }

    /// The `RabbitmqCluster` (cluster operator) the services use, if they use one.
    pub fn rabbitmq_cluster(&self) -> Option<&RabbitmqClusterProvider> {
        self.rabbitmq().and_then(BrokerSpec::cluster)
    }

    /// The Kafka cluster the operator runs, if it runs one.
    pub fn managed_kafka(&self) -> Option<ManagedKafka> {
        match self.kafka()?.choice() {
            KafkaChoice::Managed(m) => Some(m),
            _ => None,
        }
    }
}

fn default_unpaid_order_timeout() -> String {
    "30m".into()
}

impl Default for SalesSystemSpec {
    /// The spec of `spec: {}`: every default.
    fn default() -> Self {
        SalesSystemSpec {
            image: ImageSpec::default(),
            services: ServicesSpec::default(),
            messaging: MessagingSpec::default(),
            rabbitmq: BrokerSpec::default(),
            postgres: DatabasesSpec::default(),
            redis: RedisSpec::default(),
            gateway: GatewaySpec::default(),
            seed_compat_open: false,
            auth: AuthSpec::default(),
            unpaid_order_timeout: default_unpaid_order_timeout(),
            observability: ObservabilitySpec::default(),
            autoscaling: AutoscalingSpec::default(),
            network_policies: NetworkPoliciesSpec::default(),
            deletion_policy: DeletionPolicy::default(),
            placement: None,
            tls: TlsSpec::default(),
        }
    }
}

/// Images: the image of service `order` is `{repository}/order-service:{tag}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageSpec {
    /// Registry and path prefix, e.g. `ghcr.io/sales-system`.
    #[schemars(
        length(min = 1),
        regex(pattern = r"^[a-z0-9]([-a-z0-9._:/]*[a-z0-9])?$")
    )]
    pub repository: String,
    /// Tag shared by every service image.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"))]
    pub tag: String,
    /// When the kubelet pulls the image.
    pub pull_policy: PullPolicy,
    /// Secrets (in this namespace) with the credentials of a private registry.
    pub pull_secrets: Vec<String>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            repository: "ghcr.io/sales-system".into(),
            tag: env!("CARGO_PKG_VERSION").into(),
            pull_policy: PullPolicy::IfNotPresent,
            pull_secrets: Vec::new(),
        }
    }
}

impl ImageSpec {
    /// The image of one service.
    pub fn of(&self, service: AppService) -> String {
        format!(
            "{}/{}:{}",
            self.repository.trim_end_matches('/'),
            service.image_name(),
            self.tag
        )
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Each service's replicas and resources.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicesSpec {
    pub product: ServiceSpec,
    pub order: ServiceSpec,
    pub customer: ServiceSpec,
    pub payment: ServiceSpec,
    pub inventory: ServiceSpec,
    pub shipping: ServiceSpec,
    pub notification: ServiceSpec,
    pub gateway: ServiceSpec,
}

impl ServicesSpec {
    pub fn get(&self, service: AppService) -> &ServiceSpec {
        match service {
            AppService::Product => &self.product,
            AppService::Order => &self.order,
            AppService::Customer => &self.customer,
            AppService::Payment => &self.payment,
            AppService::Inventory => &self.inventory,
            AppService::Shipping => &self.shipping,
            AppService::Notification => &self.notification,
            AppService::Gateway => &self.gateway,
        }
    }
}

/// One service's Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// Pods of the service (autoscaled: of its API Deployment). 0 stops it. Default 1:
    /// on the benchmark's 2 cores, 2 and 3 order and inventory pods took no more
    /// orders than 1 (one-call at 32 clients: 103, 103 and 110 orders/s, ±15 %), and
    /// each more order pod cost 6 statements per order. Add pods for availability or
    /// more cores (docs/benchmarks.md, "Scale-out").
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Connections of each pod's PostgreSQL pool (`DATABASE_MAX_CONNECTIONS`; not the
    /// gateway). Unset: 10, or on a managed database what keeps the service's pods at
    /// their most (replicas, consumers at maxReplicas, one more per rollout) within 90
    /// of its 100 connections, at least 5: an order pod at 32 clients took as many
    /// orders with 5 as with 10, and fewer with 20 (docs/benchmarks.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 1000))]
    pub database_pool: Option<i32>,
    /// CPU and memory. Unset: requests 50m CPU and 64Mi, limit 256Mi of memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The whole image reference of this service (`registry/name:tag` or
    /// `name@sha256:...`), instead of `{image.repository}/{service}-service:{image.tag}`:
    /// what skaffold sets for each image it builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 512),
        regex(pattern = r"^[a-z0-9][-a-zA-Z0-9._:/]*(@sha256:[a-f0-9]{64})?$")
    )]
    pub image: Option<String>,
    /// Where this service's pods (API and consumers) are scheduled: each field given
    /// replaces `spec.placement`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Box<Placement>>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            replicas: 1,
            database_pool: None,
            resources: None,
            image: None,
            placement: None,
        }
    }
}

/// A key of a Secret in the SalesSystem's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
    /// The key in the Secret.
    #[serde(default = "default_url_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

fn default_url_key() -> String {
    "url".into()
}

/// A key of a Secret in the SalesSystem's namespace, the key named.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValueRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
    /// The key in the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

/// A volume of a managed StatefulSet. A larger size grows the existing volumes (their
/// StorageClass needs `allowVolumeExpansion: true`); a smaller size or another class
/// is refused, and the `StorageReady` condition says why.
#[derive(Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct StorageSpec {
    /// Size of the PersistentVolumeClaim, e.g. `1Gi`. Can grow, never shrink.
    // Not nullable: the API server prunes a `null` and applies the default, instead of
    // keeping the `null` (kube marks optional int-or-string fields nullable).
    #[schemars(extend("nullable" = false))]
    pub size: Quantity,
    /// StorageClass of the claim; unset uses the cluster's default class.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: Quantity("1Gi".into()),
            storage_class_name: None,
        }
    }
}

/// `null`, or a `null` or missing field, reads as the default.
impl<'de> Deserialize<'de> for StorageSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Given {
            #[serde(default)]
            size: Option<Quantity>,
            #[serde(default)]
            storage_class_name: Option<String>,
        }
        let given = Option::<Given>::deserialize(deserializer)?;
        let default = StorageSpec::default();
        Ok(match given {
            None => default,
            Some(given) => StorageSpec {
                size: given.size.unwrap_or(default.size),
                storage_class_name: given.storage_class_name,
            },
        })
    }
}

/// RabbitMQ: managed by the operator, or external. Neither given means managed with
/// the defaults.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.managed) && has(self.external))").message("rabbitmq: give either managed or external, not both"),
    validation = Rule::new("[has(self.managed), has(self.cluster), has(self.external)].filter(x, x).size() <= 1").message("rabbitmq: give at most one of managed, cluster or external"),
    validation = Rule::new("!has(self.managed) || !has(self.managed.replicas) || self.managed.replicas == 1 || (self.managed.replicas >= 3 && self.managed.replicas % 2 == 1)").message("rabbitmq.managed.replicas: 1, or an odd number from 3 (a quorum queue needs a majority of the nodes)"),
    validation = Rule::new("!has(self.cluster) || !has(self.cluster.create) || !has(self.cluster.create.replicas) || self.cluster.create.replicas == 1 || (self.cluster.create.replicas >= 3 && self.cluster.create.replicas % 2 == 1)").message("rabbitmq.cluster.create.replicas: 1, or an odd number from 3 (a quorum queue needs a majority of the nodes)"),
    validation = Rule::new("!has(self.queueType) || self.queueType != 'classic' || has(self.external) || !((has(self.cluster) && has(self.cluster.create) && (!has(self.cluster.create.replicas) || self.cluster.create.replicas >= 3)) || (!has(self.cluster) && has(self.managed) && has(self.managed.replicas) && self.managed.replicas >= 3))").message("rabbitmq.queueType classic on a RabbitMQ of 3 or more nodes: a classic queue lives on one node, and while that node is away the services cannot declare their queues and stop; use quorum, the default there (docs/operator/providers.md#rabbitmq)"),
    validation = Rule::new("(has(self.external) ? 'external' : has(self.cluster) ? 'cluster' : 'managed') == (has(oldSelf.external) ? 'external' : has(oldSelf.cluster) ? 'cluster' : 'managed')").message("rabbitmq: the broker's provider (managed, cluster or external) cannot change: the queues and their messages stay on the old broker (docs/operator/providers.md#rabbitmq)"),
    validation = Rule::new("!has(oldSelf.managed) || !has(self.managed) || (has(self.managed.replicas) ? self.managed.replicas : 1) == (has(oldSelf.managed.replicas) ? oldSelf.managed.replicas : 1)").message("rabbitmq.managed.replicas cannot change: the nodes of a classic_config cluster are fixed when it is made (docs/operator/providers.md#rabbitmq)"),
    validation = Rule::new("!has(oldSelf.cluster) || !has(self.cluster) || !has(oldSelf.cluster.create) || !has(self.cluster.create) || (has(self.cluster.create.replicas) ? self.cluster.create.replicas : 3) == (has(oldSelf.cluster.create.replicas) ? oldSelf.cluster.create.replicas : 3)").message("rabbitmq.cluster.create.replicas cannot change: the cluster operator does not shrink a cluster, and quorum queues keep their members (docs/operator/providers.md#rabbitmq)"),
    validation = Rule::new("(has(self.prefix) ? self.prefix : '') != (has(oldSelf.prefix) ? oldSelf.prefix : '') || (has(self.queueType) ? self.queueType : (has(self.cluster) || (!has(self.external) && has(self.managed) && has(self.managed.replicas) && self.managed.replicas >= 3)) ? 'quorum' : 'classic') == (has(oldSelf.queueType) ? oldSelf.queueType : (has(oldSelf.cluster) || (!has(oldSelf.external) && has(oldSelf.managed) && has(oldSelf.managed.replicas) && oldSelf.managed.replicas >= 3)) ? 'quorum' : 'classic')").message("rabbitmq.queueType cannot change on its own: existing queues keep their type; give a new rabbitmq.prefix with it, so the services declare new queues (drain the old ones first)")
)]
pub struct BrokerSpec {
    /// A RabbitMQ StatefulSet of 1 node (the default) or 3 or more, each with a
    /// volume, credentials generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedBroker>,
    /// A RabbitMQ run by RabbitMQ's cluster operator: one it creates for this system,
    /// or an existing `RabbitmqCluster` of the namespace. The services get a vhost
    /// (`<namespace>.<system>`) and a user of their own, declared through RabbitMQ's
    /// Messaging Topology Operator, which must be installed too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<RabbitmqClusterProvider>,
    /// A broker run elsewhere: its `amqp://` URL (with credentials and vhost) in a Secret,
    /// and where its management API answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalBroker>,
    /// Prefix of the exchange and every queue name (`AMQP_PREFIX`), so systems can
    /// share a broker.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]*$"), length(max = 64))]
    pub prefix: String,
    /// The type of the services' queues (`AMQP_QUEUE_TYPE`). Unset: `quorum` on a
    /// managed broker of 3 or more nodes and with `cluster`, else `classic`. `classic`
    /// is refused on a managed or created broker of 3 or more nodes (a classic queue
    /// lives on one node: while it is away the services stop). Existing queues keep
    /// their type: it changes only with a new `prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_type: Option<QueueType>,
}

impl BrokerSpec {
    /// The managed broker's settings, or `None` when the broker is external or run by
    /// the cluster operator.
    pub fn managed(&self) -> Option<ManagedBroker> {
        match (&self.managed, &self.cluster, &self.external) {
            (_, Some(_), _) | (_, _, Some(_)) => None,
            (Some(m), None, None) => Some(m.clone()),
            (None, None, None) => Some(ManagedBroker::default()),
        }
    }

    /// The `RabbitmqCluster` the services use, when `cluster` is given (and not
    /// `external`).
    pub fn cluster(&self) -> Option<&RabbitmqClusterProvider> {
        match &self.external {
            Some(_) => None,
            None => self.cluster.as_ref(),
        }
    }

    /// The type of the services' queues, after the default.
    pub fn queue_type(&self) -> QueueType {
        if let Some(given) = self.queue_type {
            return given;
        }
        let replicated =
            self.cluster().is_some() || self.managed().is_some_and(|m| m.replicas >= 3);
        if replicated {
            QueueType::Quorum
        } else {
            QueueType::Classic
        }
    }
}

/// A RabbitMQ run elsewhere.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalBroker {
    /// The Secret holding the broker's `amqp://` or `amqps://` URL (credentials and
    /// vhost included).
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
    /// The key in the Secret.
    #[serde(default = "default_url_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
    /// The broker's management API, read for queue-depth autoscaling, e.g.
    /// `https://rabbitmq.example.com:15671`. No credentials here: the operator signs in
    /// with the AMQP URL's user (it needs the `monitoring` or `management` tag). Unset:
    /// the AMQP URL's host on port 15672 (`http`), or 15671 (`https`) for `amqps://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/@]+(/[^\s]*)?$"))]
    pub management_url: Option<String>,
}

impl ExternalBroker {
    /// The Secret key holding the AMQP URL.
    pub fn url_ref(&self) -> SecretKeyRef {
        SecretKeyRef {
            secret_name: self.secret_name.clone(),
            key: self.key.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ManagedBroker {
    /// The RabbitMQ image (4.x; the `-management` variants are fine).
    #[schemars(length(min = 1))]
    pub image: String,
    /// Nodes: 1, or an odd number from 3 (3 survives the loss of one, 5 of two),
    /// clustered by `classic_config` peer discovery. Fixed once the broker exists.
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Each node's volume.
    pub storage: StorageSpec,
    /// Unset: requests 100m CPU and 256Mi, limit 1Gi of memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where the broker's pods are scheduled: each field given replaces
    /// `spec.placement`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Box<Placement>>,
}

impl Default for ManagedBroker {
    fn default() -> Self {
        ManagedBroker {
            image: "rabbitmq:4.1-management".into(),
            replicas: 1,
            storage: StorageSpec::default(),
            resources: None,
            placement: None,
        }
    }
}

/// PostgreSQL for every service that has a database. The top-level `managed`,
/// `external` or `cloudNativePG` applies to every service unless `services.<name>`
/// says otherwise; none given means managed with the defaults. A service's database
/// never changes provider on an update (docs/operator/providers.md).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.managed) && has(self.external))").message("postgres: give either managed or external, not both"),
    validation = Rule::new("!has(self.cloudNativePG) || !(has(self.managed) || has(self.external))").message("postgres: give at most one of managed, external or cloudNativePG"),
    validation = Rule::new(PROVIDER_RULE).message(PROVIDER_MESSAGE)
)]
pub struct DatabasesSpec {
    /// One PostgreSQL StatefulSet per service, each with its own volume and generated
    /// credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// Databases run elsewhere: one Secret holding every service's `postgres://` URL,
    /// under the service's name as key (`product`, `order`, `customer`, `payment`,
    /// `inventory`, `shipping`, `notification`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabases>,
    /// A CloudNativePG `Cluster` per service, or with `shared` one for every service,
    /// which the operator creates (docs/operator/providers.md).
    #[serde(
        rename = "cloudNativePG",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_native_pg: Option<CloudNativePgClusters>,
    /// Per-service choices that override the top level.
    #[serde(default)]
    pub services: DatabaseOverrides,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabases {
    /// The Secret with one key per service.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ManagedDatabase {
    /// The PostgreSQL image (official image layout, 14 or later).
    #[schemars(length(min = 1))]
    pub image: String,
    pub storage: StorageSpec,
    /// Unset: requests 100m CPU and 128Mi, limit 512Mi of memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where the database's pod is scheduled: each field given replaces
    /// `spec.placement`'s (in `postgres.services.<name>.managed`: replaces
    /// `postgres.managed.placement`'s, then `spec.placement`'s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Box<Placement>>,
    /// Scheduled dumps of the database (`docs/operator/backups.md`); unset: none. In
    /// `postgres.services.<name>.managed`, the service's own (the top level's is not
    /// inherited).
    #[serde(skip_serializing_if = "Option::is_none")]
    // Boxed: it would make every `DatabaseChoice` as large as a backup's settings.
    pub backup: Option<Box<BackupSpec>>,
}

impl Default for ManagedDatabase {
    fn default() -> Self {
        ManagedDatabase {
            image: "postgres:17".into(),
            storage: StorageSpec::default(),
            resources: None,
            placement: None,
            backup: None,
        }
    }
}

/// One service's database, overriding the top-level choice.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.managed) ? 1 : 0) + (has(self.external) ? 1 : 0) + (has(self.cloudNativePG) ? 1 : 0) == 1").message("a service's database override gives exactly one of managed, external or cloudNativePG")
)]
pub struct DatabaseOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// The service's `postgres://` URL in a Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<SecretKeyRef>,
    /// The service's database on CloudNativePG: a Cluster the operator creates, or
    /// one that exists (`clusterName`).
    #[serde(
        rename = "cloudNativePG",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_native_pg: Option<CloudNativePgDatabase>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<DatabaseOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<DatabaseOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<DatabaseOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<DatabaseOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<DatabaseOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping: Option<DatabaseOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<DatabaseOverride>,
}

/// Where one service's database is, after overrides.
#[derive(Clone, Debug, PartialEq)]
pub enum DatabaseChoice {
    Managed(ManagedDatabase),
    External(SecretKeyRef),
    CloudNativePg(CloudNativePgDatabase),
}

impl DatabasesSpec {
    /// The database of `service`, or `None` for the gateway.
    pub fn choice(&self, service: AppService) -> Option<DatabaseChoice> {
        service.database()?;
        let o = &self.services;
        let over = match service {
            AppService::Product => &o.product,
            AppService::Order => &o.order,
            AppService::Customer => &o.customer,
            AppService::Payment => &o.payment,
            AppService::Inventory => &o.inventory,
            AppService::Shipping => &o.shipping,
            AppService::Notification => &o.notification,
            AppService::Gateway => return None,
        };
        if let Some(over) = over {
            if let Some(external) = &over.external {
                return Some(DatabaseChoice::External(external.clone()));
            }
            if let Some(managed) = &over.managed {
                return Some(DatabaseChoice::Managed(managed.clone()));
            }
            if let Some(cnpg) = &over.cloud_native_pg {
                return Some(DatabaseChoice::CloudNativePg(cnpg.clone()));
            }
        }
        if let Some(cnpg) = &self.cloud_native_pg {
            return Some(DatabaseChoice::CloudNativePg(cnpg.clone().into()));
        }
        Some(match (&self.external, &self.managed) {
            (Some(external), _) => DatabaseChoice::External(SecretKeyRef {
                secret_name: external.secret_name.clone(),
                key: service.name().into(),
            }),
            (None, managed) => DatabaseChoice::Managed(managed.clone().unwrap_or_default()),
        })
    }
}

/// Redis: managed by the operator (a single pod without persistence: it only holds
/// caches, rate-limit counters and copies of token versions), or external.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.managed) && has(self.external))").message("redis: give either managed or external, not both")
)]
pub struct RedisSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedRedis>,
    /// Redis run elsewhere: its `redis://` URL in a Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<SecretKeyRef>,
}

impl RedisSpec {
    pub fn managed(&self) -> Option<ManagedRedis> {
        match (&self.managed, &self.external) {
            (_, Some(_)) => None,
            (Some(m), None) => Some(m.clone()),
            (None, None) => Some(ManagedRedis::default()),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ManagedRedis {
    #[schemars(length(min = 1))]
    pub image: String,
    /// Unset: requests 50m CPU and 64Mi, limit 256Mi of memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where the Redis pod is scheduled: each field given replaces
    /// `spec.placement`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Box<Placement>>,
}

impl Default for ManagedRedis {
    fn default() -> Self {
        ManagedRedis {
            image: "redis:7.4".into(),
            resources: None,
            placement: None,
        }
    }
}

/// The gateway's Service and optional Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.nodePort) || self.serviceType == 'NodePort'").message("gateway.nodePort needs serviceType NodePort")
)]
pub struct GatewaySpec {
    /// Type of the gateway's Service.
    #[serde(default)]
    pub service_type: GatewayServiceType,
    /// A fixed node port (with `serviceType: NodePort`); unset lets Kubernetes choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
    /// An Ingress in front of the gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// The proxies in front of the gateway (the ingress controller's pods, a load
    /// balancer) whose `X-Forwarded-For` it believes: IPv4 or IPv6 addresses or CIDR
    /// blocks, e.g. `10.0.0.0/8` (`TRUSTED_PROXIES`). Empty (the default): none, the
    /// connection's peer is the client, whatever the request says. The client address
    /// is what rate limits and login throttling count by: trust only what you run.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(min = 2, max = 64)))]
    #[x_kube(
        validation = Rule::new(TRUSTED_PROXIES_RULE).message("gateway.trustedProxies: each entry is an IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.0/8 or 2001:db8::/32")
    )]
    pub trusted_proxies: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum GatewayServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl GatewayServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayServiceType::ClusterIP => "ClusterIP",
            GatewayServiceType::NodePort => "NodePort",
            GatewayServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The host name the gateway answers on.
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_PATTERN))]
    pub host: String,
    /// IngressClass; unset uses the cluster's default class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// A TLS Secret (`tls.crt`, `tls.key`) for the host; unset serves plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SECRET_NAME_PATTERN))]
    pub tls_secret_name: Option<String>,
    /// Annotations for the ingress controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Token signing and the admin account. Whatever is not taken from a Secret of yours is
/// generated once (the identity into `<name>-identity`, the admin's password into
/// `<name>-auth`) and never regenerated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthSpec {
    /// Your own identity Secret instead of the generated `<name>-identity`; the
    /// operator only reads it. Keys: `token-signing-keys` and
    /// `gateway-signing-keys` (Ed25519 PKCS#8 PEM blocks: the first signs, all are
    /// published), `client-secret-<service>` for product, order, payment, inventory,
    /// shipping, notification and gateway (16+ characters), and `service-clients`
    /// (`gateway=<secret>,...`: all of those).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_secret: Option<IdentitySecretRef>,
    /// The admin account the customer service makes at start-up.
    pub admin: AdminSpec,
}

/// A Secret in the SalesSystem's namespace, with the keys documented where it is used.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct AdminSpec {
    /// Make the admin account. Off: there is no admin.
    pub enabled: bool,
    /// The admin's email (`ADMIN_EMAIL`).
    #[schemars(
        length(min = 3, max = 254),
        regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    )]
    pub email: String,
    /// The admin's password (at least 8 characters); unset: generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretValueRef>,
}

impl Default for AdminSpec {
    fn default() -> Self {
        AdminSpec {
            enabled: true,
            email: "admin@example.com".into(),
            password_secret: None,
        }
    }
}

/// Traces, metrics and logs of the services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ObservabilitySpec {
    /// OTLP/HTTP collector the services send traces to, e.g.
    /// `http://otel-collector.monitoring:4318`; unset: traces are not exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub otlp_endpoint: Option<String>,
    /// A Prometheus Operator ServiceMonitor for every service's `/metrics`.
    pub service_monitor: ServiceMonitorSpec,
    /// Log format of the services.
    pub log_format: LogFormat,
    /// Log filter (`RUST_LOG`), e.g. `info,sqlx=warn`.
    #[schemars(length(min = 1), regex(pattern = r"^[A-Za-z0-9_:=,.\[\]{}-]+$"))]
    pub log_level: String,
}

impl Default for ObservabilitySpec {
    fn default() -> Self {
        ObservabilitySpec {
            otlp_endpoint: None,
            service_monitor: ServiceMonitorSpec::default(),
            log_format: LogFormat::Json,
            log_level: "info".into(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceMonitorSpec {
    /// Create the ServiceMonitor (needs the Prometheus Operator's CRDs).
    pub enabled: bool,
    /// Scrape interval.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: String,
    /// Labels your Prometheus selects ServiceMonitors by, e.g. `release: prometheus`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        ServiceMonitorSpec {
            enabled: false,
            interval: "30s".into(),
            labels: BTreeMap::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

/// Autoscaling of each queue consumer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct AutoscalingSpec {
    pub order: ConsumerAutoscaling,
    pub inventory: ConsumerAutoscaling,
    pub shipping: ConsumerAutoscaling,
    pub notification: ConsumerAutoscaling,
}

impl AutoscalingSpec {
    /// The settings of a consuming service; `None` for the others.
    pub fn get(&self, service: AppService) -> Option<&ConsumerAutoscaling> {
        match service {
            AppService::Order => Some(&self.order),
            AppService::Inventory => Some(&self.inventory),
            AppService::Shipping => Some(&self.shipping),
            AppService::Notification => Some(&self.notification),
            _ => None,
        }
    }

    /// Whether `service`'s consumers are scaled on queue depth (and so run in a
    /// Deployment of their own).
    pub fn enabled(&self, service: AppService) -> bool {
        service.is_consumer() && self.get(service).is_some_and(|a| a.enabled)
    }

    /// The services whose consumers are scaled, in [`AppService::ALL`] order.
    pub fn scaled_services(&self) -> impl Iterator<Item = AppService> + '_ {
        AppService::ALL.into_iter().filter(|s| self.enabled(*s))
    }
}

/// desired = clamp(ceil((ready + unacknowledged messages over the service's queues) /
/// targetMessagesPerReplica), minReplicas, maxReplicas); up at once, down only after
/// `scaleDownStabilization`, never while the backlog grows, and never below what keeps
/// up with the publish rate (`docs/operator/autoscaling.md`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling: minReplicas must not exceed maxReplicas"),
    validation = Rule::new("!self.scaleToZero || self.minReplicas == 0").message("autoscaling: scaleToZero needs minReplicas 0"),
    validation = Rule::new("self.scaleToZero || self.minReplicas >= 1").message("autoscaling: minReplicas 0 needs scaleToZero")
)]
pub struct ConsumerAutoscaling {
    /// Scale this consumer on queue depth (otherwise one Deployment of
    /// `services.<name>.replicas` pods serves the API and consumes).
    #[serde(default)]
    pub enabled: bool,
    /// Fewest consumer pods (0 only with `scaleToZero`).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub min_replicas: i32,
    /// Most consumer pods. 5: with one API pod, 8 pods at most during a rollout,
    /// whose default pools of 10 fit in a managed database (80 of its 90 connections).
    #[serde(default = "five")]
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Ready plus unacknowledged messages (summed over the service's queues) one
    /// replica is expected to keep up with. 100: 0.3 to 1 s of a replica's work (it
    /// takes a queue's messages one at a time, 3 to 10 ms each on the benchmark).
    #[serde(default = "hundred")]
    #[schemars(range(min = 1, max = 1000000))]
    pub target_messages_per_replica: i32,
    /// How long fewer replicas must have been enough before replicas are removed.
    #[serde(default = "five_minutes")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub scale_down_stabilization: String,
    /// Allow 0 replicas while the queues are empty and nothing is published to them
    /// (needs `minReplicas: 0`).
    #[serde(default)]
    pub scale_to_zero: bool,
}

fn one() -> i32 {
    1
}
fn five() -> i32 {
    5
}
fn hundred() -> i32 {
    100
}
fn five_minutes() -> String {
    "5m".into()
}

impl Default for ConsumerAutoscaling {
    fn default() -> Self {
        ConsumerAutoscaling {
            enabled: false,
            min_replicas: one(),
            max_replicas: five(),
            target_messages_per_replica: hundred(),
            scale_down_stabilization: five_minutes(),
            scale_to_zero: false,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkPoliciesSpec {
    pub enabled: bool,
    /// The namespace Prometheus scrapes from: its pods may reach every admin port
    /// (`/metrics`, dead letters), as the operator's may. Unset: the pods of this
    /// namespace that the operator does not run (never the services themselves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_namespace: Option<String>,
}

impl Default for NetworkPoliciesSpec {
    fn default() -> Self {
        NetworkPoliciesSpec {
            enabled: true,
            metrics_namespace: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// What the operator saw at its last reconcile.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SalesSystemStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Progressing`, `Ready`, `Degraded` or `Paused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready, BrokerReady, DatabasesReady, ServicesReady, Degraded, and ConsumersScaled
    /// while a consumer is autoscaled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Replicas of each service (the API Deployment of an autoscaled one).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceReplicas>,
    /// Each autoscaled consumer: its queues as last read and the replicas chosen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumers: BTreeMap<String, ConsumerStatus>,
    /// "ready/all" services, for `kubectl get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_services: Option<String>,
    /// Where the gateway answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReplicas {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
}

/// One autoscaled consumer, as the scaler last saw and set it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    /// Replicas of the consumer Deployment, as the operator set them.
    pub replicas: i32,
    /// What the formula asks for now, before stabilization: clamp(ceil(depth /
    /// targetMessagesPerReplica), minReplicas, maxReplicas). Unset while the queues
    /// cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended: Option<i32>,
    /// Ready plus unacknowledged messages over the service's queues, as last read.
    #[serde(default)]
    pub depth: i64,
    /// Why the replicas are what they are: `ScaledUp`, `ScaledDown`, `Steady`,
    /// `Stabilizing`, `BacklogGrowing`, or why the queues could not be read
    /// (`BrokerUnreachable`...: the replicas are kept).
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// When the queues were last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_time: Option<Time>,
    /// When the operator last changed the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Each queue of the service, as last read.
    #[serde(default)]
    pub queues: Vec<QueueStatus>,
}

/// One queue, as the broker's management API reported it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// The queue's name on the broker (with the prefix).
    pub name: String,
    /// Messages waiting to be delivered.
    pub ready: i64,
    /// Messages delivered to a consumer and not acknowledged yet.
    pub unacknowledged: i64,
    /// Messages published to the queue per second (decimal).
    pub publish_rate: String,
    /// Messages acknowledged per second (decimal).
    pub ack_rate: String,
    /// Kafka: the consumer group this is the lag of; the queue's `name` is the topic,
    /// `ready` the group's lag on it, `unacknowledged` always 0, and the rates the
    /// growth per second of the end and committed offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Kafka: the topic's partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
}

impl SalesSystem {
    /// `sales-system.io/paused: "true"`.
    pub fn is_paused(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSED_ANNOTATION))
            .is_some_and(|v| v == "true")
    }
}

/// The CRD, with the long descriptions of Kubernetes' own types shortened.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = SalesSystem::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            shorten_descriptions(schema);
        }
    }
    crd
}

/// Quantities and resource claims carry pages of upstream prose; one line is enough.
fn shorten_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(description) = &schema.description {
        if description.starts_with("Quantity is a fixed-point") {
            schema.description = Some("A quantity, e.g. `500m`, `1Gi`.".into());
        } else if description.len() > 400 {
            let first = description.split("\n\n").next().unwrap_or(description);
            let sentence = first.split(". ").next().unwrap_or(first);
            schema.description = Some(format!("{}.", sentence.trim_end_matches('.')));
        }
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        shorten_descriptions(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        shorten_descriptions(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        shorten_descriptions(extra);
    }
}

/// The CRD as YAML, exactly as committed in `operator/crd/salessystem.yaml`.
pub fn crd_yaml() -> Result<String, serde_json::Error> {
    let crd = serde_json::to_value(crd())?;
    Ok(format!(
        "# Generated by `sales-operator crdgen` from operator/src/crd.rs; do not edit.\n{}",
        crate::yaml::to_string(&crd)
    ))
}
