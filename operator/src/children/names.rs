//! Names and labels of everything the operator creates for one SalesSystem.
//!
//! Every child is named `<system>-<component>` and carries the `app.kubernetes.io/*`
//! labels plus `sales-system.io/component`, which pods are selected by.

use std::collections::BTreeMap;

use crate::catalogue::AppService;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "sales-system.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// On the Services whose admin port the ServiceMonitor scrapes.
pub const LABEL_METRICS: &str = "sales-system.io/metrics";
/// On the same Services: the service's name (`order`), which the ServiceMonitor makes
/// the target's `service` label, the one the dashboards and alerts group by.
pub const LABEL_SERVICE: &str = "sales-system.io/service";
/// Pod template annotation: a hash of the service's ConfigMap, so a change rolls pods.
pub const ANNOTATION_CONFIG_HASH: &str = "sales-system.io/config-hash";
/// Pod template annotation: a SHA-256 digest (truncated) of the identity Secret's keys
/// the service reads, so a new signing key or client secret rolls its pods.
pub const ANNOTATION_IDENTITY_HASH: &str = "sales-system.io/identity-hash";
/// Pod template annotation: a digest (truncated SHA-256) of the Kafka account the pods
/// log in with (the brokers: the user list), or of their account on a RabbitmqCluster,
/// so a new password rolls them.
pub const ANNOTATION_CREDENTIALS_HASH: &str = "sales-system.io/credentials-hash";
/// The field manager of every server-side apply, and the `managed-by` label.
pub const MANAGER: &str = "sales-operator";

/// A part of the system that gets its own pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// A service's pods; with autoscaling, the ones that serve its API.
    Service(AppService),
    /// The consumer pods of an autoscaled service (`SERVICE_ROLE=consumer`).
    Consumer(AppService),
    Database(AppService),
    /// The pods that dump (and restore) a managed database (`backup`).
    Backup(AppService),
    /// The managed RabbitMQ.
    Broker,
    /// The managed Kafka cluster's nodes.
    Kafka,
    Cache,
}

impl Component {
    /// The `sales-system.io/component` label value and the name suffix.
    pub fn key(self) -> String {
        match self {
            Component::Service(s) => s.name().to_owned(),
            Component::Consumer(s) => format!("{}-consumer", s.name()),
            Component::Database(s) => format!("{}-db", s.name()),
            Component::Backup(s) => format!("{}-backup", s.name()),
            Component::Broker => "rabbitmq".into(),
            Component::Kafka => "kafka".into(),
            Component::Cache => "redis".into(),
        }
    }

    /// `app.kubernetes.io/name`: what software runs.
    fn software(self) -> String {
        match self {
            Component::Service(s) | Component::Consumer(s) => s.image_name(),
            Component::Database(_) | Component::Backup(_) => "postgres".into(),
            Component::Broker => "rabbitmq".into(),
            Component::Kafka => "kafka".into(),
            Component::Cache => "redis".into(),
        }
    }
}

/// Names of one system's children.
#[derive(Clone, Debug)]
pub struct Names {
    pub instance: String,
    pub namespace: String,
}

impl Names {
    pub fn new(instance: &str, namespace: &str) -> Self {
        Names {
            instance: instance.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// Deployment/StatefulSet, Service, ConfigMap, PDB and NetworkPolicy of a component.
    pub fn of(&self, component: Component) -> String {
        format!("{}-{}", self.instance, component.key())
    }

    /// The generated Secret of a managed database (`username`, `password`, `url`).
    pub fn database_secret(&self, service: AppService) -> String {
        self.of(Component::Database(service))
    }

    /// The generated Secret of the managed broker.
    pub fn broker_secret(&self) -> String {
        self.of(Component::Broker)
    }

    /// The generated Secret of the managed Kafka (`username`, `password`, `jaas`,
    /// `cluster-id`).
    pub fn kafka_secret(&self) -> String {
        self.of(Component::Kafka)
    }

    /// The headless Service that gives each node of a managed RabbitMQ of 3 or more
    /// nodes its DNS name (the peers of `classic_config`).
    pub fn broker_nodes(&self) -> String {
        format!("{}-nodes", self.of(Component::Broker))
    }

    /// The headless Service that gives each managed Kafka node its DNS name.
    pub fn kafka_nodes(&self) -> String {
        format!("{}-nodes", self.of(Component::Kafka))
    }

    /// A `KafkaTopic` (Strimzi) of this system for `topic`: a DNS name made of it
    /// (lower case, anything else a `-`, no two separators in a row) and a digest of
    /// the exact name, so no two topics of any two systems share an object.
    pub fn kafka_topic(&self, topic: &str) -> String {
        use sha2::Digest;
        let mut readable = String::new();
        let mut after_separator = true;
        for c in topic.chars() {
            let c = match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '.') => c,
                _ => '-',
            };
            let separator = c == '.' || c == '-';
            if !(separator && after_separator) {
                readable.push(c);
            }
            after_separator = separator;
        }
        let digest = sha2::Sha256::digest(topic.as_bytes());
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        // 253 characters at most: the instance (30), two dashes and the digest (8).
        let room = 253 - self.instance.len() - 10;
        let readable: String = readable.chars().take(room).collect();
        format!(
            "{}-{}-{hex}",
            self.instance,
            readable.trim_end_matches(['.', '-'])
        )
    }

    /// The generated Secret of the managed Redis.
    pub fn cache_secret(&self) -> String {
        self.of(Component::Cache)
    }

    /// The generated Secret with the admin's password (`admin-password`).
    pub fn auth_secret(&self) -> String {
        format!("{}-auth", self.instance)
    }

    /// The generated identity Secret: both issuers' signing keys and every service's
    /// client secret (`children::secrets::Credentials::Identity`).
    pub fn identity_secret(&self) -> String {
        format!("{}-identity", self.instance)
    }

    pub fn ingress(&self) -> String {
        self.of(Component::Service(AppService::Gateway))
    }

    pub fn service_monitor(&self) -> String {
        self.instance.clone()
    }

    /// A service's base URL inside the namespace.
    pub fn service_url(&self, service: AppService) -> String {
        format!(
            "http://{}:{}",
            self.of(Component::Service(service)),
            crate::catalogue::HTTP_PORT
        )
    }

    /// Pods of `component` are selected by these.
    pub fn selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_COMPONENT.to_owned(), component.key()),
        ])
    }

    /// Every label of a child of `component`.
    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.insert(LABEL_NAME.into(), component.software());
        labels.insert(LABEL_PART_OF.into(), "sales-system".into());
        labels.insert(LABEL_MANAGED_BY.into(), MANAGER.into());
        labels
    }

    /// Labels of children that belong to the system as a whole.
    pub fn system_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_PART_OF.to_owned(), "sales-system".into()),
            (LABEL_MANAGED_BY.to_owned(), MANAGER.into()),
        ])
    }

    /// Selects every child of this system.
    pub fn list_selector(&self) -> String {
        format!(
            "{LABEL_INSTANCE}={},{LABEL_MANAGED_BY}={MANAGER}",
            self.instance
        )
    }
}
