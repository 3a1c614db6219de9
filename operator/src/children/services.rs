//! One service of the system: its ConfigMap (plain settings), Deployment, Service and
//! PodDisruptionBudget.
//!
//! Rolling updates add a new pod before removing an old one (`maxUnavailable: 0`), and a
//! new pod is ready only once it has migrated its database (each service migrates at
//! start-up under a PostgreSQL advisory lock and answers `/ready` with 503 until done):
//! a new version takes traffic only after its migrations ran.
//!
//! A service whose consumers are autoscaled (`autoscaling.<service>.enabled`) runs as
//! two Deployments from the same image and ConfigMap: `<name>-<service>`
//! (`SERVICE_ROLE=api`, `services.<service>.replicas`, behind the Service) and
//! `<name>-<service>-consumer` (`SERVICE_ROLE=consumer`). The consumer Deployment is
//! applied without `spec.replicas`: the scaler (`crate::autoscaling`) owns that one
//! field under its own field manager, so the two never fight over it. Its pods get
//! no Service for traffic; a headless Service with only the admin port lets the
//! ServiceMonitor scrape them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar,
    HTTPGetAction, Lifecycle, LifecycleHandler, LocalObjectReference, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, SleepAction,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env;
use super::names::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_CREDENTIALS_HASH, ANNOTATION_IDENTITY_HASH, Component,
    LABEL_METRICS, LABEL_SERVICE, Names,
};
use crate::catalogue::{
    ADMIN_PORT, AppService, CONSUMER_TERMINATION_GRACE_SECONDS, DRAIN_SECONDS, HTTP_PORT,
    TERMINATION_GRACE_SECONDS,
};
use crate::crd::{GatewayServiceType, SalesSystemSpec};

/// The user id of the service images (distroless `nonroot`, see the Dockerfile).
pub const SERVICE_UID: i64 = 65532;

pub fn meta(
    names: &Names,
    name: String,
    labels: BTreeMap<String, String>,
    owner: &Option<OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels),
        owner_references: owner.clone().map(|o| vec![o]),
        ..Default::default()
    }
}

/// Requests and limits, or the defaults given.
pub fn resources_or(
    given: &Option<ResourceRequirements>,
    cpu: &str,
    memory: &str,
    memory_limit: &str,
) -> ResourceRequirements {
    given.clone().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.into())),
            ("memory".to_owned(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity(memory_limit.into()),
        )])),
        ..Default::default()
    })
}

/// Non-root, seccomp `RuntimeDefault`, files owned by `uid`'s group.
pub fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Read-only root filesystem, no privilege escalation, every capability dropped.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

pub fn service_port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn http_probe(port: &str, path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// FNV-1a, stable across builds: the config hash that rolls pods on a change.
pub fn stable_hash(data: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in data {
        for byte in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// A digest of the identity Secret's values `service` reads (its signing keys, its
/// client secret), for the pod template: a new key rolls the pods that read it, and
/// only those. SHA-256 truncated to 64 bits, like a chart's `checksum/secret`: the
/// values cannot be read back from it (generated ones are long and random). `None`
/// without the Secret's values (`render`) or when it lacks every key.
pub fn identity_hash(
    service: AppService,
    identity: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let keys: Vec<String> = env::identity_variables(service)
        .into_iter()
        .map(|(_, key)| key)
        .collect();
    values_hash(identity?, &keys)
}

/// A digest of `values`' `keys` (those present), as [`identity_hash`] makes it; `None`
/// when none is present.
pub fn values_hash(values: &BTreeMap<String, String>, keys: &[String]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut any = false;
    for key in keys {
        if let Some(value) = values.get(key) {
            any = true;
            hasher.update(key.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
    }
    any.then(|| {
        hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

pub fn config_map(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
    owner: &Option<OwnerReference>,
) -> ConfigMap {
    let component = Component::Service(service);
    ConfigMap {
        metadata: meta(names, names.of(component), names.labels(component), owner),
        data: Some(env::plain_settings(names, spec, service)),
        ..Default::default()
    }
}

/// What one Deployment of a service runs (`SERVICE_ROLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// API and consumers in one Deployment (no autoscaling; `SERVICE_ROLE` unset).
    All,
    /// The API of an autoscaled service: no queue consumers.
    Api,
    /// The consumers of an autoscaled service, scaled on queue depth.
    Consumer,
}

impl Role {
    /// The Deployments `service` runs as under `spec`.
    pub fn of(spec: &SalesSystemSpec, service: AppService) -> &'static [Role] {
        if spec.autoscaling.enabled(service) {
            &[Role::Api, Role::Consumer]
        } else {
            &[Role::All]
        }
    }

    /// The component whose labels the Deployment's pods carry.
    pub fn component(self, service: AppService) -> Component {
        match self {
            Role::All | Role::Api => Component::Service(service),
            Role::Consumer => Component::Consumer(service),
        }
    }

    fn variable(self) -> Option<&'static str> {
        match self {
            Role::All => None,
            Role::Api => Some("api"),
            Role::Consumer => Some("consumer"),
        }
    }
}

/// The service's Deployment (`Role::All`), or one of its two when autoscaled. With
/// the identity Secret's values, its pods carry their digest ([`identity_hash`]);
/// with the Kafka account's (or a RabbitmqCluster's services account), a service that
/// uses the broker carries theirs.
pub fn deployment(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
    role: Role,
    owner: &Option<OwnerReference>,
    known: super::KnownSecrets<'_>,
) -> Deployment {
    let component = role.component(service);
    let name = names.of(component);
    let config_name = names.of(Component::Service(service));
    let settings = spec.services.get(service);
    let mut annotations = BTreeMap::from([(
        ANNOTATION_CONFIG_HASH.to_owned(),
        stable_hash(&env::plain_settings(names, spec, service)),
    )]);
    if let Some(hash) = identity_hash(service, known.identity) {
        annotations.insert(ANNOTATION_IDENTITY_HASH.to_owned(), hash);
    }
    let kafka_keys = spec
        .kafka()
        .and_then(|kafka| env::kafka_credentials(names, &kafka))
        .map(|(_, user, password)| vec![user, password]);
    if let (true, Some(keys), Some(account)) =
        (service.uses_broker(), kafka_keys, known.kafka_account)
        && let Some(hash) = values_hash(account, &keys)
    {
        annotations.insert(ANNOTATION_CREDENTIALS_HASH.to_owned(), hash);
    }
    // On a RabbitmqCluster: the services' own account (a new password rolls them).
    if let (true, Some(account)) = (service.uses_broker(), known.rabbitmq_services_user)
        && let Some(hash) = values_hash(account, &["username".into(), "password".into()])
    {
        annotations.insert(ANNOTATION_CREDENTIALS_HASH.to_owned(), hash);
    }
    let mut variables = env::secret_env(names, spec, service);
    if let Some(value) = role.variable() {
        variables.push(EnvVar {
            name: "SERVICE_ROLE".into(),
            value: Some(value.into()),
            ..Default::default()
        });
    }
    // Consumer pods take no API traffic: they are probed on the admin port, which
    // answers `/health` and `/ready` too.
    // API pods sleep in preStop while the endpoints drop them (DRAIN_SECONDS).
    let (ports, probe_port, grace, lifecycle) = match role {
        Role::Consumer => (
            vec![port("admin", ADMIN_PORT)],
            "admin",
            CONSUMER_TERMINATION_GRACE_SECONDS,
            None,
        ),
        Role::All | Role::Api => (
            vec![port("http", HTTP_PORT), port("admin", ADMIN_PORT)],
            "http",
            TERMINATION_GRACE_SECONDS,
            Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction {
                        seconds: DRAIN_SECONDS,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        ),
    };
    let pull_secrets: Vec<LocalObjectReference> = spec
        .image
        .pull_secrets
        .iter()
        .map(|s| LocalObjectReference { name: s.clone() })
        .collect();
    let container = Container {
        name: service.name().into(),
        image: Some(
            spec.services
                .get(service)
                .image
                .clone()
                .unwrap_or_else(|| spec.image.of(service)),
        ),
        image_pull_policy: Some(spec.image.pull_policy.as_str().into()),
        ports: Some(ports),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config_name,
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        env: Some(variables),
        resources: Some(resources_or(&settings.resources, "50m", "64Mi", "256Mi")),
        liveness_probe: Some(http_probe(probe_port, "/health", 10, 3)),
        readiness_probe: Some(http_probe(probe_port, "/ready", 5, 2)),
        lifecycle,
        security_context: Some(container_security()),
        ..Default::default()
    };
    Deployment {
        metadata: meta(names, name.clone(), names.labels(component), owner),
        spec: Some(DeploymentSpec {
            // The scaler's field: left out of this apply for consumer Deployments.
            replicas: (role != Role::Consumer).then_some(settings.replicas),
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(names.selector(component)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(component)),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(grace),
                    security_context: Some(pod_security(SERVICE_UID)),
                    image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
                    ..super::placement::pod_spec(spec, names, component)
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn service(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
    owner: &Option<OwnerReference>,
) -> Service {
    let component = Component::Service(service);
    let mut labels = names.labels(component);
    labels.insert(LABEL_METRICS.into(), "true".into());
    labels.insert(LABEL_SERVICE.into(), service.name().into());
    let mut http = service_port("http", HTTP_PORT);
    let mut type_ = GatewayServiceType::ClusterIP;
    if service == AppService::Gateway {
        type_ = spec.gateway.service_type;
        if type_ == GatewayServiceType::NodePort {
            http.node_port = spec.gateway.node_port;
        }
    }
    Service {
        metadata: meta(names, names.of(component), labels, owner),
        spec: Some(ServiceSpec {
            type_: Some(type_.as_str().into()),
            selector: Some(names.selector(component)),
            ports: Some(vec![http, service_port("admin", ADMIN_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The consumer pods of an autoscaled service are reached by nobody but Prometheus:
/// a headless Service with only the admin port, for the ServiceMonitor.
pub fn consumer_metrics_service(
    names: &Names,
    service: AppService,
    owner: &Option<OwnerReference>,
) -> Service {
    let component = Component::Consumer(service);
    let mut labels = names.labels(component);
    labels.insert(LABEL_METRICS.into(), "true".into());
    labels.insert(LABEL_SERVICE.into(), service.name().into());
    Service {
        metadata: meta(names, names.of(component), labels, owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("None".into()),
            selector: Some(names.selector(component)),
            ports: Some(vec![service_port("admin", ADMIN_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// At most one pod of a component is evicted at a time (node drains, upgrades).
pub fn disruption_budget(
    names: &Names,
    component: Component,
    owner: &Option<OwnerReference>,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(names, names.of(component), names.labels(component), owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector(component)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
