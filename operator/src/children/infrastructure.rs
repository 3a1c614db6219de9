//! What the services run on when the operator manages it: one PostgreSQL StatefulSet
//! per service database, a RabbitMQ StatefulSet, and Redis. Each has a Service of the
//! same name; the StatefulSets keep their data in volumes from `volumeClaimTemplates`.
//!
//! PostgreSQL and RabbitMQ have startup probes: their liveness probes only start once
//! they have started, so crash recovery at start (PostgreSQL replaying WAL, RabbitMQ
//! recovering its message store) is never cut short by a restart.
//!
//! Credentials come from the generated Secrets (see [`super::secrets`]); the images are
//! the official ones, run as their own non-root user (uid 999) with a read-only root
//! filesystem and writable `emptyDir`s where they need scratch space.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Service, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::from_secret;
use super::names::{Component, Names};
use super::services::{container_security, meta, pod_security, port, resources_or, service_port};
use crate::catalogue::AppService;
use crate::crd::{ManagedBroker, ManagedDatabase, ManagedRedis, StorageSpec};

/// The user of the official postgres, rabbitmq and redis (Debian) images.
pub const INFRA_UID: i64 = 999;
pub const POSTGRES_PORT: i32 = 5432;
pub const AMQP_PORT: i32 = 5672;
pub const RABBITMQ_MANAGEMENT_PORT: i32 = 15672;
/// RabbitMQ's management API over HTTPS, the only management listener under `spec.tls`.
pub const RABBITMQ_MANAGEMENT_TLS_PORT: i32 = 15671;

/// The management API's port and scheme of the managed broker or a RabbitmqCluster.
pub fn rabbitmq_management(tls: bool) -> (&'static str, i32) {
    match tls {
        true => ("https", RABBITMQ_MANAGEMENT_TLS_PORT),
        false => ("http", RABBITMQ_MANAGEMENT_PORT),
    }
}
pub const REDIS_PORT: i32 = 6379;
/// The name of the data volume claim template: PVCs are `data-<statefulset>-0`.
pub const DATA_VOLUME: &str = "data";

pub(super) fn scratch(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

pub(super) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn exec_probe(script: &str, period: i32, timeout: i32, failures: i32, delay: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        initial_delay_seconds: Some(delay),
        ..Default::default()
    }
}

pub(super) fn value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// A variable read from the pod's own fields (`metadata.name`...).
pub(super) fn from_field(variable: &str, path: &str) -> EnvVar {
    EnvVar {
        name: variable.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn claim(names: &Names, component: Component, storage: &StorageSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(names.labels(component)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    storage.size.clone(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A single-replica StatefulSet around one container with a data volume.
pub(super) fn stateful_set(
    names: &Names,
    component: Component,
    container: Container,
    scratch_volumes: Vec<Volume>,
    storage: &StorageSpec,
    owner: &Option<OwnerReference>,
    uid: i64,
) -> StatefulSet {
    let name = names.of(component);
    StatefulSet {
        metadata: meta(names, name.clone(), names.labels(component), owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(names.selector(component)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(component)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(scratch_volumes),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(60),
                    security_context: Some(pod_security(uid)),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![claim(names, component, storage)]),
            // The operator's finalizer applies the deletion policy to the claims.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Service in front of one component's pods.
pub(super) fn service(
    names: &Names,
    component: Component,
    ports: &[(&str, i32)],
    owner: &Option<OwnerReference>,
) -> Service {
    Service {
        metadata: meta(names, names.of(component), names.labels(component), owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names.selector(component)),
            ports: Some(ports.iter().map(|(n, p)| service_port(n, *p)).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn resources(
    given: &Option<ResourceRequirements>,
    cpu: &str,
    mem: &str,
    limit: &str,
) -> ResourceRequirements {
    resources_or(given, cpu, mem, limit)
}

/// The PostgreSQL of `owner_service`: StatefulSet and Service.
pub fn postgres(
    names: &Names,
    owner_service: AppService,
    database: &str,
    settings: &ManagedDatabase,
    owner: &Option<OwnerReference>,
) -> (StatefulSet, Service) {
    let component = Component::Database(owner_service);
    let secret = names.database_secret(owner_service);
    let ready = "pg_isready -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"";
    // Alive: the postmaster answers, if only to say it rejects connections (exit 1:
    // starting, or recovering after a backend crash, which restarts no container).
    // Exit 2 (no answer) or 3 (not even tried) is dead.
    let alive =
        "pg_isready -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"; s=$?; [ \"$s\" -le 1 ]";
    let container = Container {
        name: "postgres".into(),
        image: Some(settings.image.clone()),
        ports: Some(vec![port("postgres", POSTGRES_PORT)]),
        env: Some(vec![
            from_secret("POSTGRES_USER", &secret, "username"),
            from_secret("POSTGRES_PASSWORD", &secret, "password"),
            value("POSTGRES_DB", database),
            value("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ]),
        resources: Some(resources(&settings.resources, "100m", "128Mi", "512Mi")),
        // Until the first time it accepts connections: an hour (360 x 10 s, as
        // CloudNativePG's `startDelay`), for the WAL replay of crash recovery. The
        // liveness probe only runs after it, and never fails a recovering server.
        startup_probe: Some(exec_probe(ready, 10, 5, 360, 0)),
        readiness_probe: Some(exec_probe(ready, 5, 5, 3, 0)),
        liveness_probe: Some(exec_probe(alive, 10, 5, 6, 0)),
        volume_mounts: Some(vec![
            mount(DATA_VOLUME, "/var/lib/postgresql/data"),
            mount("run", "/var/run/postgresql"),
            mount("tmp", "/tmp"),
        ]),
        security_context: Some(container_security()),
        ..Default::default()
    };
    (
        stateful_set(
            names,
            component,
            container,
            vec![scratch("run"), scratch("tmp")],
            &settings.storage,
            owner,
            INFRA_UID,
        ),
        service(names, component, &[("postgres", POSTGRES_PORT)], owner),
    )
}

/// The RabbitMQ broker: StatefulSet and Service.
pub fn rabbitmq(
    names: &Names,
    settings: &ManagedBroker,
    owner: &Option<OwnerReference>,
) -> (StatefulSet, Service) {
    let component = Component::Broker;
    let secret = names.broker_secret();
    let container = Container {
        name: "rabbitmq".into(),
        image: Some(settings.image.clone()),
        ports: Some(vec![
            port("amqp", AMQP_PORT),
            port("management", RABBITMQ_MANAGEMENT_PORT),
        ]),
        env: Some(vec![
            from_secret("RABBITMQ_DEFAULT_USER", &secret, "username"),
            from_secret("RABBITMQ_DEFAULT_PASS", &secret, "password"),
        ]),
        resources: Some(resources(&settings.resources, "100m", "256Mi", "1Gi")),
        // Ten minutes (60 x 10 s) to boot: recovering the message store and queue
        // indexes of a large backlog, or waiting for the schema store, takes minutes.
        // The liveness probe (3 minutes of failures) only runs after it.
        startup_probe: Some(exec_probe("rabbitmq-diagnostics -q ping", 10, 10, 60, 0)),
        readiness_probe: Some(exec_probe("rabbitmq-diagnostics -q ping", 10, 10, 3, 0)),
        liveness_probe: Some(exec_probe("rabbitmq-diagnostics -q ping", 30, 15, 6, 0)),
        volume_mounts: Some(vec![
            mount(DATA_VOLUME, "/var/lib/rabbitmq"),
            mount("tmp", "/tmp"),
            mount("logs", "/var/log/rabbitmq"),
        ]),
        security_context: Some(container_security()),
        ..Default::default()
    };
    (
        stateful_set(
            names,
            component,
            container,
            vec![scratch("tmp"), scratch("logs")],
            &settings.storage,
            owner,
            INFRA_UID,
        ),
        service(
            names,
            component,
            &[
                ("amqp", AMQP_PORT),
                ("management", RABBITMQ_MANAGEMENT_PORT),
            ],
            owner,
        ),
    )
}

/// Redis without persistence (it holds caches, rate-limit counters and copies of token
/// versions, which the customer service's database decides), with a generated
/// password: Deployment and Service.
pub fn redis(
    names: &Names,
    settings: &ManagedRedis,
    owner: &Option<OwnerReference>,
) -> (Deployment, Service) {
    let component = Component::Cache;
    let tcp = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("redis".into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    let container = Container {
        name: "redis".into(),
        image: Some(settings.image.clone()),
        args: Some(
            [
                "--requirepass",
                "$(REDIS_PASSWORD)",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![port("redis", REDIS_PORT)]),
        env: Some(vec![from_secret(
            "REDIS_PASSWORD",
            &names.cache_secret(),
            "password",
        )]),
        resources: Some(resources(&settings.resources, "50m", "64Mi", "256Mi")),
        readiness_probe: Some(tcp.clone()),
        liveness_probe: Some(tcp),
        volume_mounts: Some(vec![mount("data", "/data")]),
        security_context: Some(container_security()),
        ..Default::default()
    };
    let deployment = Deployment {
        metadata: meta(names, names.of(component), names.labels(component), owner),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(names.selector(component)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(component)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![scratch("data")]),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(INFRA_UID)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    (
        deployment,
        service(names, component, &[("redis", REDIS_PORT)], owner),
    )
}
