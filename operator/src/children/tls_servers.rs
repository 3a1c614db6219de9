//! The built-in servers under `spec.tls`: each mounts its Secret
//! (`<system>-<component>-tls`) read-only at [`SERVER_DIR`] and serves TLS only.
//!
//! - PostgreSQL: `ssl=on` with the mounted certificate and key, TLS 1.2 or later,
//!   and the `pg_hba.conf` of the ConfigMap `<system>-tls`: `hostssl` only from other
//!   hosts (a plaintext connection finds no entry and is refused), the pod's own
//!   socket and loopback as the image has them (the probes' `pg_isready`). The key is
//!   mounted root-owned with mode 0440, its group the pod's `fsGroup` (the postgres
//!   user's): what PostgreSQL accepts of a root-owned key.
//! - RabbitMQ: `listeners.tcp = none` and `listeners.ssl.default = 5671` (the
//!   `rabbitmq-tls.conf` of the same ConfigMap, in `conf.d`); the Service offers
//!   `amqps` instead of `amqp`. The management API (the operator's scaler) answers
//!   over HTTPS on 15671 only (`management.ssl`); the Erlang distribution between
//!   nodes stays as it is.
//! - Kafka (managed): the services' listener (`CLIENT`, 9092) becomes SASL_SSL, with a
//!   PEM key store that an init container writes (key and chain in one file, as
//!   Kafka reads it) into a memory volume (no trust store: no client presents a
//!   certificate, and no node connects to another over TLS); the listeners between
//!   the nodes (replication, the KRaft quorum) stay plaintext,
//!   admitted from the Kafka pods only (so TLS can be turned on in a live cluster
//!   one node at a time: a node that restarted still reaches the others' quorum).
//! - Redis: `--tls-port 6379 --port 0` with the mounted files, no client
//!   certificates; the probes open a TCP connection, which needs no TLS.
//!
//! Each pod carries a digest of its certificate ([`ANNOTATION_TLS_HASH`]): a renewed
//! one rolls it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, PodTemplateSpec,
    ResourceRequirements, SecretVolumeSource, Service, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::KnownSecrets;
use super::infrastructure::{AMQP_PORT, RABBITMQ_MANAGEMENT_PORT, RABBITMQ_MANAGEMENT_TLS_PORT};
use super::names::{Component, Names};
use super::services::{meta, port, service_port, values_hash};
use super::tls::{
    AMQPS_PORT, ANNOTATION_TLS_HASH, CA_CERT_KEY, CERT_KEY, KEY_KEY, SERVER_DIR, server_secret,
};
use crate::catalogue::AppService;
use crate::crd::{DatabaseChoice, SalesSystemSpec};

/// The ConfigMap key of PostgreSQL's `pg_hba.conf`.
pub const PG_HBA_KEY: &str = "pg_hba.conf";
/// The ConfigMap key of RabbitMQ's TLS listener configuration.
pub const RABBITMQ_KEY: &str = "rabbitmq-tls.conf";
/// Where RabbitMQ reads it.
pub const RABBITMQ_CONFIG_PATH: &str = "/etc/rabbitmq/conf.d/30-tls.conf";
/// Where PostgreSQL reads its `pg_hba.conf`.
pub const PG_HBA_PATH: &str = "/etc/sales-system/postgres/pg_hba.conf";
/// The volume of the server's Secret, and of the ConfigMap.
const SERVER_VOLUME: &str = "server-tls";
const CONFIG_VOLUME: &str = "tls-config";

/// `pg_hba.conf`: TLS only from other hosts, the pod itself as in the image.
pub const PG_HBA: &str = "\
# Written by sales-operator (spec.tls): only TLS connections from other hosts.
local   all all              trust
host    all all 127.0.0.1/32 trust
host    all all ::1/128      trust
hostssl all all all          scram-sha-256
";

/// PostgreSQL's settings under TLS, as `-c` arguments of `postgres`.
pub fn postgres_settings() -> Vec<(&'static str, String)> {
    vec![
        ("ssl", "on".into()),
        ("ssl_cert_file", format!("{SERVER_DIR}/{CERT_KEY}")),
        ("ssl_key_file", format!("{SERVER_DIR}/{KEY_KEY}")),
        ("ssl_min_protocol_version", "TLSv1.2".into()),
        ("hba_file", PG_HBA_PATH.into()),
    ]
}

/// RabbitMQ's TLS listeners, no plaintext ones: AMQP on 5671, the management API
/// on 15671.
pub fn rabbitmq_config() -> String {
    rabbitmq_tls_config(
        SERVER_DIR,
        &AMQPS_PORT.to_string(),
        RABBITMQ_MANAGEMENT_TLS_PORT,
    )
}

/// [`rabbitmq_config`] with the certificate files in `dir`, AMQPS on `amqps_listener`
/// (a port, or `address:port`) and HTTPS management on `management_port` (tests run
/// it on a private node). With `management.ssl` set and no `management.tcp`, the
/// management plugin opens no HTTP listener.
pub fn rabbitmq_tls_config(dir: &str, amqps_listener: &str, management_port: i32) -> String {
    format!(
        "# Written by sales-operator (spec.tls): AMQP and management over TLS only.\n\
         listeners.tcp = none\n\
         listeners.ssl.default = {amqps_listener}\n\
         ssl_options.cacertfile = {dir}/{CA_CERT_KEY}\n\
         ssl_options.certfile = {dir}/{CERT_KEY}\n\
         ssl_options.keyfile = {dir}/{KEY_KEY}\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false\n\
         ssl_options.versions.1 = tlsv1.3\n\
         ssl_options.versions.2 = tlsv1.2\n\
         management.ssl.port = {management_port}\n\
         management.ssl.cacertfile = {dir}/{CA_CERT_KEY}\n\
         management.ssl.certfile = {dir}/{CERT_KEY}\n\
         management.ssl.keyfile = {dir}/{KEY_KEY}\n\
         management.ssl.versions.1 = tlsv1.3\n\
         management.ssl.versions.2 = tlsv1.2\n"
    )
}

fn has_managed_database(spec: &SalesSystemSpec) -> bool {
    AppService::with_database()
        .any(|s| matches!(spec.postgres.choice(s), Some(DatabaseChoice::Managed(_))))
}

/// The ConfigMap `<system>-tls`, when TLS is on and a built-in PostgreSQL or
/// RabbitMQ runs.
pub fn config_map(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Option<ConfigMap> {
    let postgres = has_managed_database(spec);
    let rabbitmq = spec.managed_rabbitmq().is_some();
    if !spec.tls.enabled() || !(postgres || rabbitmq) {
        return None;
    }
    let mut data = BTreeMap::new();
    if postgres {
        data.insert(PG_HBA_KEY.to_owned(), PG_HBA.to_owned());
    }
    if rabbitmq {
        data.insert(RABBITMQ_KEY.to_owned(), rabbitmq_config());
    }
    Some(ConfigMap {
        metadata: meta(
            names,
            format!("{}-tls", names.instance),
            names.system_labels(),
            owner,
        ),
        data: Some(data),
        ..Default::default()
    })
}

/// Mount `component`'s server Secret (and, given a key, the ConfigMap's file at
/// `config`) into the pod's first container, and annotate the pod with the
/// certificate's digest.
fn mount(
    template: &mut PodTemplateSpec,
    names: &Names,
    component: Component,
    config: Option<(&str, &str)>,
    known: KnownSecrets<'_>,
) {
    let secret = server_secret(names, component);
    let digest = known
        .tls
        .and_then(|all| all.get(&secret))
        .and_then(|values| values_hash(values, &[CERT_KEY.into(), CA_CERT_KEY.into()]));
    if let Some(digest) = digest {
        let metadata = template.metadata.get_or_insert_with(Default::default);
        metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_TLS_HASH.to_owned(), digest);
    }
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    volumes.push(Volume {
        name: SERVER_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    if config.is_some() {
        volumes.push(Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: format!("{}-tls", names.instance),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let Some(container) = pod.containers.first_mut() else {
        return;
    };
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    mounts.push(VolumeMount {
        name: SERVER_VOLUME.into(),
        mount_path: SERVER_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    });
    if let Some((key, path)) = config {
        mounts.push(VolumeMount {
            name: CONFIG_VOLUME.into(),
            mount_path: path.into(),
            sub_path: Some(key.into()),
            read_only: Some(true),
            ..Default::default()
        });
    }
}

/// A built-in PostgreSQL under TLS.
pub fn postgres(
    sts: &mut StatefulSet,
    names: &Names,
    service: AppService,
    known: KnownSecrets<'_>,
) {
    let Some(spec) = sts.spec.as_mut() else {
        return;
    };
    let component = Component::Database(service);
    mount(
        &mut spec.template,
        names,
        component,
        Some((PG_HBA_KEY, PG_HBA_PATH)),
        known,
    );
    if let Some(container) = spec
        .template
        .spec
        .as_mut()
        .and_then(|pod| pod.containers.first_mut())
    {
        let mut args = vec!["postgres".to_owned()];
        for (name, value) in postgres_settings() {
            args.push("-c".into());
            args.push(format!("{name}={value}"));
        }
        container.args = Some(args);
    }
}

/// The built-in RabbitMQ under TLS: its pods, and the Service (`amqps` for `amqp`).
pub fn rabbitmq(
    sts: &mut StatefulSet,
    service: &mut Service,
    names: &Names,
    known: KnownSecrets<'_>,
) {
    if let Some(spec) = sts.spec.as_mut() {
        mount(
            &mut spec.template,
            names,
            Component::Broker,
            Some((RABBITMQ_KEY, RABBITMQ_CONFIG_PATH)),
            known,
        );
        if let Some(container) = spec
            .template
            .spec
            .as_mut()
            .and_then(|pod| pod.containers.first_mut())
            && let Some(ports) = container.ports.as_mut()
        {
            for p in ports.iter_mut() {
                match p.container_port {
                    AMQP_PORT => *p = port("amqps", AMQPS_PORT),
                    RABBITMQ_MANAGEMENT_PORT => {
                        *p = port("management", RABBITMQ_MANAGEMENT_TLS_PORT)
                    }
                    _ => {}
                }
            }
        }
    }
    tls_broker_service(service);
}

/// A Service of the broker's pods under TLS: `amqps` in place of `amqp`, management
/// on 15671.
pub fn tls_broker_service(service: &mut Service) {
    if let Some(ports) = service.spec.as_mut().and_then(|s| s.ports.as_mut()) {
        for p in ports.iter_mut() {
            match p.port {
                AMQP_PORT => *p = service_port("amqps", AMQPS_PORT),
                RABBITMQ_MANAGEMENT_PORT => {
                    *p = service_port("management", RABBITMQ_MANAGEMENT_TLS_PORT)
                }
                _ => {}
            }
        }
    }
}

/// The built-in Redis under TLS.
pub fn redis(deploy: &mut Deployment, names: &Names, known: KnownSecrets<'_>) {
    let Some(spec) = deploy.spec.as_mut() else {
        return;
    };
    mount(&mut spec.template, names, Component::Cache, None, known);
    if let Some(container) = spec
        .template
        .spec
        .as_mut()
        .and_then(|pod| pod.containers.first_mut())
    {
        let args = container.args.get_or_insert_with(Vec::new);
        for (flag, value) in [
            ("--tls-port", "6379".to_owned()),
            ("--port", "0".to_owned()),
            ("--tls-cert-file", format!("{SERVER_DIR}/{CERT_KEY}")),
            ("--tls-key-file", format!("{SERVER_DIR}/{KEY_KEY}")),
            ("--tls-ca-cert-file", format!("{SERVER_DIR}/{CA_CERT_KEY}")),
            ("--tls-auth-clients", "no".to_owned()),
        ] {
            args.push(flag.into());
            args.push(value);
        }
    }
}

/// Where the managed Kafka's key store (key and certificate chain, PEM) is written.
const KAFKA_KEYSTORE_DIR: &str = "/etc/sales-system/kafka-keystore";
const KAFKA_KEYSTORE_VOLUME: &str = "kafka-keystore";

/// The managed Kafka's settings under TLS: the services' listener over SASL_SSL.
/// (The listener names carry no `SSL`: the `apache/kafka` image takes an advertised
/// `SSL://` listener for one that needs a JKS key store of its own making.)
fn kafka_settings() -> Vec<(&'static str, String)> {
    vec![
        (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CLIENT:SASL_SSL,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT".to_owned(),
        ),
        ("KAFKA_SSL_KEYSTORE_TYPE", "PEM".to_owned()),
        (
            "KAFKA_SSL_KEYSTORE_LOCATION",
            format!("{KAFKA_KEYSTORE_DIR}/server.pem"),
        ),
    ]
}

/// The managed Kafka under TLS: the server Secret mounted, the key store written
/// from it before Kafka starts, the settings of [`kafka_settings`].
pub fn kafka(sts: &mut StatefulSet, names: &Names, known: KnownSecrets<'_>) {
    let Some(spec) = sts.spec.as_mut() else {
        return;
    };
    mount(&mut spec.template, names, Component::Kafka, None, known);
    let Some(pod) = spec.template.spec.as_mut() else {
        return;
    };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: KAFKA_KEYSTORE_VOLUME.into(),
        // In memory: it holds the private key.
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Mi".into())),
        }),
        ..Default::default()
    });
    let keystore = VolumeMount {
        name: KAFKA_KEYSTORE_VOLUME.into(),
        mount_path: KAFKA_KEYSTORE_DIR.into(),
        ..Default::default()
    };
    let Some(container) = pod.containers.first_mut() else {
        return;
    };
    let env = container.env.get_or_insert_with(Vec::new);
    for (name, value) in kafka_settings() {
        match env.iter_mut().find(|e| e.name == name) {
            Some(existing) => existing.value = Some(value),
            None => env.push(EnvVar {
                name: name.into(),
                value: Some(value),
                ..Default::default()
            }),
        }
    }
    let mut server_files = container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name == SERVER_VOLUME)
        .cloned()
        .collect::<Vec<_>>();
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            read_only: Some(true),
            ..keystore.clone()
        });
    let small = BTreeMap::from([
        ("cpu".to_owned(), Quantity("10m".into())),
        ("memory".to_owned(), Quantity("16Mi".into())),
    ]);
    server_files.push(keystore);
    let init = Container {
        name: "kafka-keystore".into(),
        image: container.image.clone(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            format!(
                "umask 077 && cat {SERVER_DIR}/{KEY_KEY} {SERVER_DIR}/{CERT_KEY} > {KAFKA_KEYSTORE_DIR}/server.pem"
            ),
        ]),
        volume_mounts: Some(server_files),
        security_context: container.security_context.clone(),
        resources: Some(ResourceRequirements {
            requests: Some(small.clone()),
            limits: Some(small),
            ..Default::default()
        }),
        ..Default::default()
    };
    pod.init_containers.get_or_insert_with(Vec::new).push(init);
}
