//! `spec.messaging`: which broker carries the events. RabbitMQ (the default) is
//! configured under `spec.rabbitmq`; Kafka under `spec.messaging.kafka`, as a KRaft
//! cluster the operator runs, a Strimzi `Kafka` of the namespace, or brokers run
//! elsewhere (`docs/messaging.md` helps choose).

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Placement, SECRET_KEY_PATTERN, SECRET_NAME_PATTERN, StorageSpec};

/// `host:port[,host:port...]`.
const BOOTSTRAP_PATTERN: &str = r"^[A-Za-z0-9.-]+:[0-9]{1,5}(,[A-Za-z0-9.-]+:[0-9]{1,5})*$";

/// Which broker carries the events, and how.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.kind == 'kafka' || !has(self.kafka)").message("messaging.kafka is only read with messaging.kind: kafka")
)]
pub struct MessagingSpec {
    /// `rabbitmq` (the default; see `spec.rabbitmq`) or `kafka` (see `kafka`).
    #[serde(default)]
    pub kind: MessagingKind,
    /// Kafka's brokers, topics and credentials (with `kind: kafka`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSpec>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessagingKind {
    #[default]
    Rabbitmq,
    Kafka,
}

impl MessagingKind {
    /// The services' `MESSAGING_KIND`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessagingKind::Rabbitmq => "rabbitmq",
            MessagingKind::Kafka => "kafka",
        }
    }
}

/// Kafka: run by the operator (`managed`, the default), a Strimzi cluster (`strimzi`),
/// or `external` brokers; and the layout of the topics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.managed), has(self.strimzi), has(self.external)].filter(x, x).size() <= 1").message("messaging.kafka: give at most one of managed, strimzi or external"),
    validation = Rule::new("!has(self.managed) || !has(self.managed.replicas) || self.managed.replicas == 1 || self.managed.replicas >= 3").message("messaging.kafka.managed.replicas: 1, or 3 or more (a quorum of two nodes survives no loss)"),
    validation = Rule::new("!has(self.replicationFactor) || has(self.strimzi) || has(self.external) || self.replicationFactor <= (has(self.managed) && has(self.managed.replicas) ? self.managed.replicas : 1)").message("messaging.kafka.replicationFactor cannot exceed managed.replicas (1 unless given)"),
    validation = Rule::new("!has(self.replicationFactor) || !has(self.managed) || !has(self.managed.replicas) || self.managed.replicas < 3 || self.replicationFactor >= 3").message("messaging.kafka.replicationFactor: at least 3 on 3 or more managed nodes (they require 2 copies in sync for every write)"),
    validation = Rule::new("!has(oldSelf.managed) || !has(self.managed) || (has(self.managed.replicas) ? self.managed.replicas : 1) == (has(oldSelf.managed.replicas) ? oldSelf.managed.replicas : 1)").message("messaging.kafka.managed.replicas cannot change: the KRaft quorum is fixed when the cluster is made (docs/operator/README.md#kafka)"),
    validation = Rule::new("!has(self.strimzi) || !has(self.strimzi.authentication) || self.strimzi.authentication == 'none' || (has(self.topicPrefix) && size(self.topicPrefix) > 0)").message("messaging.kafka.strimzi.authentication: scram-sha-512 needs a topicPrefix (the KafkaUser's ACLs grant the topics and groups under it)"),
    validation = Rule::new("!has(self.replicationFactor) || !has(self.strimzi) || !has(self.strimzi.create) || self.replicationFactor <= (has(self.strimzi.create.replicas) ? self.strimzi.create.replicas : 3)").message("messaging.kafka.replicationFactor cannot exceed strimzi.create.replicas (3 unless given)"),
    validation = Rule::new("!has(self.replicationFactor) || !has(self.strimzi) || !has(self.strimzi.create) || (has(self.strimzi.create.replicas) ? self.strimzi.create.replicas : 3) < 3 || self.replicationFactor >= 3").message("messaging.kafka.replicationFactor: at least 3 on 3 or more created Strimzi nodes (they require 2 copies in sync for every write)")
)]
pub struct KafkaSpec {
    /// A KRaft cluster of Apache Kafka's official image (brokers and controllers in
    /// the same pods), with a volume per node and a generated SASL/PLAIN account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedKafka>,
    /// A Strimzi `Kafka` in this namespace, existing or created by the operator
    /// (`create`): the operator creates a `KafkaTopic` for every topic, and the
    /// services create none themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strimzi: Option<StrimziKafka>,
    /// Brokers run elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalKafka>,
    /// Prefix of every topic and consumer group (`KAFKA_TOPIC_PREFIX`), so systems can
    /// share a cluster.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]*$"), length(max = 64))]
    pub topic_prefix: String,
    /// Partitions of every topic: the most consumer pods of one service that can work
    /// at once (autoscaling never runs more).
    #[serde(default = "three")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: i32,
    /// Copies of every partition. Unset: the managed cluster's node count up to 3, or
    /// the brokers' `default.replication.factor` on Strimzi and external clusters (on
    /// a Kafka made with `strimzi.create`: its node count up to 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub replication_factor: Option<i32>,
}

fn three() -> i32 {
    3
}

impl Default for KafkaSpec {
    fn default() -> Self {
        KafkaSpec {
            managed: None,
            strimzi: None,
            external: None,
            topic_prefix: String::new(),
            partitions: three(),
            replication_factor: None,
        }
    }
}

/// Where the Kafka brokers are, after defaults.
#[derive(Clone, Debug, PartialEq)]
pub enum KafkaChoice {
    Managed(ManagedKafka),
    Strimzi(StrimziKafka),
    External(ExternalKafka),
}

impl KafkaSpec {
    pub fn choice(&self) -> KafkaChoice {
        match (&self.external, &self.strimzi, &self.managed) {
            (Some(e), _, _) => KafkaChoice::External(e.clone()),
            (None, Some(s), _) => KafkaChoice::Strimzi(s.clone()),
            (None, None, m) => KafkaChoice::Managed(m.clone().unwrap_or_default()),
        }
    }

    /// The replication factor the topics are created with; `None`: the brokers'
    /// default.
    pub fn replication(&self) -> Option<i32> {
        match (self.replication_factor, self.choice()) {
            (Some(r), _) => Some(r),
            (None, KafkaChoice::Managed(m)) => Some(m.replicas.min(3)),
            (None, _) => None,
        }
    }
}

/// A KRaft cluster the operator runs: a StatefulSet of `replicas` combined
/// broker-controller nodes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ManagedKafka {
    /// Apache Kafka's official image (`apache/kafka`, 4.x).
    #[schemars(length(min = 1))]
    pub image: String,
    /// Nodes: 1, or 3 (or 5) to survive the loss of one (or two). Fixed once the
    /// cluster exists (its controller quorum is static).
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    pub storage: StorageSpec,
    /// Unset: requests 250m CPU and 1Gi, limit 2Gi of memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where the nodes' pods are scheduled: each field given replaces
    /// `spec.placement`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Box<Placement>>,
}

impl Default for ManagedKafka {
    fn default() -> Self {
        ManagedKafka {
            image: "apache/kafka:4.1.1".into(),
            replicas: 1,
            storage: StorageSpec::default(),
            resources: None,
            placement: None,
        }
    }
}

/// A Strimzi-managed Kafka in the SalesSystem's namespace, reached on an internal
/// listener (with TLS under `spec.tls`, verified against Strimzi's cluster CA),
/// without authentication or with SCRAM-SHA-512 as a `KafkaUser` the operator
/// creates (Strimzi offers no SASL/PLAIN). It exists already, or the operator creates it (`create`) with a
/// `KafkaNodePool` of dual-role nodes (docs/operator/providers.md#strimzi).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.create) || !has(self.bootstrapServers)").message("messaging.kafka.strimzi.bootstrapServers is for an existing Kafka: the one the operator creates is reached at <clusterName>-kafka-bootstrap"),
    validation = Rule::new("!has(self.create) || size(self.clusterName) <= 27").message("messaging.kafka.strimzi.clusterName: at most 27 characters with create (Strimzi names the pods <clusterName>-<clusterName>-dual-<n>, and a host name has at most 63)"),
    validation = Rule::new("!has(self.create) || !has(self.create.replicas) || self.create.replicas == 1 || self.create.replicas >= 3").message("messaging.kafka.strimzi.create.replicas: 1, or 3 or more (a quorum of two controllers survives no loss)"),
    validation = Rule::new("has(self.create) == has(oldSelf.create)").message("messaging.kafka.strimzi.create cannot be added or removed: the events stay on the Kafka they were written to, and the operator never takes over (or lets go of) a Kafka (docs/operator/providers.md#strimzi)"),
    validation = Rule::new("!has(self.create) || self.clusterName == oldSelf.clusterName").message("messaging.kafka.strimzi.clusterName cannot change with create: a new name would make a new, empty Kafka (docs/operator/providers.md#strimzi)"),
    validation = Rule::new("!has(self.create) || !has(oldSelf.create) || (has(self.create.replicas) ? self.create.replicas : 3) == (has(oldSelf.create.replicas) ? oldSelf.create.replicas : 3)").message("messaging.kafka.strimzi.create.replicas cannot change: Strimzi does not scale KRaft controllers, and every node is one (docs/operator/providers.md#strimzi)")
)]
pub struct StrimziKafka {
    /// The `Kafka` resource's name: an existing one of this namespace, or, with
    /// `create`, the one the operator creates (its `KafkaTopic`s carry
    /// `strimzi.io/cluster: <it>`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub cluster_name: String,
    /// The listener's bootstrap address (an existing `Kafka` only). Unset:
    /// `<clusterName>-kafka-bootstrap.<namespace>.svc:9092` (an internal listener
    /// without TLS or authentication, as Strimzi's examples name `plain`), or
    /// `...:9094` with `authentication: scram-sha-512` (an internal listener without
    /// TLS and with `authentication: {type: scram-sha-512}`, which the `Kafka` must
    /// have). Under `spec.tls` the listener has `tls: true` (its certificate from
    /// Strimzi's cluster CA): `...:9093` (as Strimzi's examples name `tls`), or
    /// `...:9095` with SCRAM-SHA-512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BOOTSTRAP_PATTERN), length(max = 1024))]
    pub bootstrap_servers: Option<String>,
    /// `none` (the default): the listener takes anyone. `scram-sha-512`: the operator
    /// creates a `KafkaUser` `<name>-services` whose ACLs grant the topics and
    /// consumer groups under `topicPrefix` (the `Kafka` needs `authorization: {type:
    /// simple}`); Strimzi writes its password to the Secret of that name, and the
    /// services log in with SCRAM-SHA-512 (SASL_PLAINTEXT, or SASL_SSL under
    /// `spec.tls`).
    #[serde(default)]
    pub authentication: StrimziAuthentication,
    /// The operator creates the `Kafka` `clusterName` (KRaft, `kafka.strimzi.io/v1`)
    /// and its `KafkaNodePool` `<clusterName>-dual`, with the listener
    /// `authentication` asks for. Owned by the SalesSystem with `deletionPolicy:
    /// Delete` (its volumes go with it); with `Retain` it stays, volumes and all.
    /// Cannot be added to or removed from an existing system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateStrimziKafka>,
}

/// Port of the listener the services use without `bootstrapServers`, by
/// authentication and TLS.
pub const STRIMZI_PLAIN_PORT: u16 = 9092;
pub const STRIMZI_TLS_PORT: u16 = 9093;
pub const STRIMZI_SCRAM_PORT: u16 = 9094;
pub const STRIMZI_SCRAM_TLS_PORT: u16 = 9095;

impl StrimziKafka {
    /// The port of the services' listener, by authentication and TLS (`spec.tls`).
    pub fn port(&self, tls: bool) -> u16 {
        match (self.authentication, tls) {
            (StrimziAuthentication::None, false) => STRIMZI_PLAIN_PORT,
            (StrimziAuthentication::None, true) => STRIMZI_TLS_PORT,
            (StrimziAuthentication::ScramSha512, false) => STRIMZI_SCRAM_PORT,
            (StrimziAuthentication::ScramSha512, true) => STRIMZI_SCRAM_TLS_PORT,
        }
    }

    /// The bootstrap address, fully qualified (the operator reads the lag from its own
    /// namespace).
    pub fn bootstrap(&self, namespace: &str, tls: bool) -> String {
        self.bootstrap_servers.clone().unwrap_or_else(|| {
            format!(
                "{}-kafka-bootstrap.{namespace}.svc:{}",
                self.cluster_name,
                self.port(tls)
            )
        })
    }

    /// The Secret and key of the CA that signs the listener's certificate under
    /// `spec.tls`: Strimzi's cluster CA.
    pub fn cluster_ca(&self) -> (String, String) {
        (
            format!("{}-cluster-ca-cert", self.cluster_name),
            "ca.crt".to_owned(),
        )
    }
}

/// The `Kafka` the operator creates on Strimzi: one `KafkaNodePool` of nodes that are
/// KRaft controllers and brokers both, each with one volume (the log and the KRaft
/// metadata).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateStrimziKafka {
    /// Nodes: 1, or 3 (or 5) to survive the loss of one (or two). Fixed once the
    /// Kafka exists (Strimzi does not scale KRaft controllers).
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Each node's volume (a persistent claim of the node pool's `jbod`).
    pub storage: StorageSpec,
    /// Apache Kafka's version, e.g. `4.1.1`. Unset: the default of the Strimzi
    /// release installed (a Strimzi upgrade then upgrades Kafka too).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+$"), length(max = 32))]
    pub version: Option<String>,
    /// The KRaft metadata version, e.g. `4.1-IV1`. Unset: Strimzi's default for the
    /// Kafka version.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+(-IV[0-9]+)?$"), length(max = 32))]
    pub metadata_version: Option<String>,
    /// Each node's CPU and memory (the node pool's `resources`). Unset: none
    /// requested, as Strimzi leaves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for CreateStrimziKafka {
    fn default() -> Self {
        CreateStrimziKafka {
            replicas: 3,
            storage: StorageSpec::default(),
            version: None,
            metadata_version: None,
            resources: None,
        }
    }
}

/// How the services log in to a Strimzi cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum StrimziAuthentication {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

/// Kafka brokers run elsewhere.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.securityProtocol.startsWith('SASL_') == has(self.credentialsSecret)").message("messaging.kafka.external: SASL_PLAINTEXT and SASL_SSL need credentialsSecret, PLAINTEXT and SSL take none")
)]
pub struct ExternalKafka {
    /// `host:port[,host:port...]`.
    #[schemars(regex(pattern = BOOTSTRAP_PATTERN), length(min = 1, max = 1024))]
    pub bootstrap_servers: String,
    /// `PLAINTEXT`, `SSL` (TLS), `SASL_PLAINTEXT` or `SASL_SSL` (SASL/PLAIN, over
    /// TLS with the latter). With TLS the brokers are verified against
    /// `tls.externalCA` when given, else the public roots.
    #[serde(default)]
    pub security_protocol: KafkaSecurityProtocol,
    /// The SASL/PLAIN user and password (with `SASL_PLAINTEXT` or `SASL_SSL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<KafkaCredentials>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum KafkaSecurityProtocol {
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl KafkaSecurityProtocol {
    /// The services' `KAFKA_SECURITY_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaSecurityProtocol::Plaintext => "plaintext",
            KafkaSecurityProtocol::Ssl => "ssl",
            KafkaSecurityProtocol::SaslPlaintext => "sasl_plaintext",
            KafkaSecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether the connections are TLS.
    pub fn tls(self) -> bool {
        matches!(
            self,
            KafkaSecurityProtocol::Ssl | KafkaSecurityProtocol::SaslSsl
        )
    }

    /// Whether the services log in with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            KafkaSecurityProtocol::SaslPlaintext | KafkaSecurityProtocol::SaslSsl
        )
    }
}

/// A Secret of this namespace with a SASL user and password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaCredentials {
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
    #[serde(default = "username")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub username_key: String,
    #[serde(default = "password")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub password_key: String,
}

fn username() -> String {
    "username".into()
}
fn password() -> String {
    "password".into()
}
