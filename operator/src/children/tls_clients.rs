//! The services under `spec.tls`: which URLs they take, which CA files they verify
//! with, and the read-only volume at [`CLIENT_DIR`] that holds those (a projected
//! volume of `ca.crt` keys only, never a CA's key):
//!
//! - `ca.crt`: the CA of the built-in servers and of a created `RabbitmqCluster` (the
//!   operator's `<system>-tls-ca`, or with cert-manager the `ca.crt` cert-manager
//!   writes in the server Secret of the first one the service uses: one issuer signs
//!   them all);
//! - `postgres-ca.crt`: the CA of the service's CloudNativePG cluster (`<cluster>-ca`);
//! - `kafka-ca.crt`: the cluster CA of a Strimzi `Kafka` (`<cluster>-cluster-ca-cert`);
//! - `external-ca.crt`: `tls.externalCA`, for external servers (Kafka too, over
//!   `SSL` or `SASL_SSL`) and an existing `RabbitmqCluster`.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    KeyToPath, ProjectedVolumeSource, SecretProjection, Volume, VolumeMount, VolumeProjection,
};

use super::KnownSecrets;
use super::env::managed_dependencies;
use super::names::{Component, Names};
use super::services::values_hash;
use super::tls::{
    ANNOTATION_TLS_HASH, CA_CERT_KEY, CA_FILE, CLIENT_DIR, CLOUDNATIVE_PG_CA_FILE,
    EXTERNAL_CA_FILE, STRIMZI_CA_FILE, VOLUME, ca_secret, server_secret,
};
use crate::catalogue::AppService;
use crate::crd::{DatabaseChoice, KafkaChoice, SalesSystemSpec, TlsMode};

/// The built-in servers (the managed Kafka among them, and a created
/// `RabbitmqCluster`) `service` talks to.
pub fn servers_used(spec: &SalesSystemSpec, service: AppService) -> Vec<Component> {
    let mut used = managed_dependencies(spec, service);
    let created_cluster = spec.rabbitmq_cluster().is_some_and(|p| p.create.is_some());
    if service.uses_broker() && created_cluster {
        used.push(Component::Broker);
    }
    used
}

/// Whether `service`'s broker is one whose CA is `tls.externalCA` (external, or an
/// existing `RabbitmqCluster`).
fn external_broker(spec: &SalesSystemSpec, service: AppService) -> bool {
    service.uses_broker() && broker_signed_elsewhere(spec)
}

/// Whether the RabbitMQ is one whose certificate the system did not issue (external,
/// or an existing `RabbitmqCluster`).
fn broker_signed_elsewhere(spec: &SalesSystemSpec) -> bool {
    let existing_cluster = spec.rabbitmq_cluster().is_some_and(|p| p.create.is_none());
    let external = spec.rabbitmq().is_some_and(|r| r.external.is_some());
    existing_cluster || external
}

/// Where the CA the broker is verified with lives, with TLS on: (Secret, key). The
/// built-in broker and a created `RabbitmqCluster` are signed by the system's issuer
/// (the operator's `<system>-tls-ca`, or with cert-manager the `ca.crt` it writes in
/// the broker's server Secret); an external broker or an existing `RabbitmqCluster`
/// by `tls.externalCA` (`None` without it: public roots). The operator's scaler reads
/// the management API with the same trust as the services' AMQP connections.
pub fn broker_ca(names: &Names, spec: &SalesSystemSpec) -> Option<(String, String)> {
    if !spec.tls.enabled() || spec.kafka().is_some() {
        return None;
    }
    if broker_signed_elsewhere(spec) {
        return spec
            .tls
            .external_ca
            .as_ref()
            .map(|ca| (ca.secret_name.clone(), ca.key.clone()));
    }
    let secret = match spec.tls.mode {
        TlsMode::CertManager => server_secret(names, Component::Broker),
        _ => ca_secret(names),
    };
    Some((secret, CA_CERT_KEY.to_owned()))
}

/// Where the CA Kafka's brokers are verified with lives, when the services speak
/// TLS to them and it is not the public roots: (Secret, key). The managed Kafka is
/// signed by the system's issuer (as [`broker_ca`]), a Strimzi `Kafka`'s listener by
/// Strimzi's cluster CA, external brokers by `tls.externalCA`. The scaler reads the
/// consumer groups' lag with the same trust.
pub fn kafka_ca(names: &Names, spec: &SalesSystemSpec) -> Option<(String, String)> {
    let kafka = spec.kafka()?;
    if !spec.tls.enabled() {
        return None;
    }
    match kafka.choice() {
        KafkaChoice::Managed(_) => Some(match spec.tls.mode {
            TlsMode::CertManager => (
                server_secret(names, Component::Kafka),
                CA_CERT_KEY.to_owned(),
            ),
            _ => (ca_secret(names), CA_CERT_KEY.to_owned()),
        }),
        KafkaChoice::Strimzi(strimzi) => Some(strimzi.cluster_ca()),
        KafkaChoice::External(external) if external.security_protocol.tls() => spec
            .tls
            .external_ca
            .as_ref()
            .map(|ca| (ca.secret_name.clone(), ca.key.clone())),
        KafkaChoice::External(_) => None,
    }
}

/// Whether `service` reaches external Kafka brokers over TLS.
fn external_kafka_tls(spec: &SalesSystemSpec, service: AppService) -> bool {
    service.uses_broker()
        && spec.kafka().is_some_and(
            |kafka| matches!(kafka.choice(), KafkaChoice::External(e) if e.security_protocol.tls()),
        )
}

/// `KAFKA_SSL_CA_LOCATION` of `service` (with TLS on and Kafka as its broker): the
/// file its brokers' CA is mounted at.
fn kafka_ca_file(spec: &SalesSystemSpec, service: AppService) -> Option<&'static str> {
    let kafka = spec.kafka().filter(|_| service.uses_broker())?;
    match kafka.choice() {
        KafkaChoice::Managed(_) => Some(CA_FILE),
        KafkaChoice::Strimzi(_) => Some(STRIMZI_CA_FILE),
        KafkaChoice::External(_) => (external_kafka_tls(spec, service)
            && spec.tls.external_ca.is_some())
        .then_some(EXTERNAL_CA_FILE),
    }
}

/// `AMQP_TLS_CA_FILE`, `KAFKA_SSL_CA_LOCATION` and `REDIS_TLS_CA_FILE` of `service`,
/// with TLS on.
pub fn settings(spec: &SalesSystemSpec, service: AppService) -> Vec<(&'static str, String)> {
    if !spec.tls.enabled() {
        return Vec::new();
    }
    let external = spec.tls.external_ca.is_some();
    let mut out = Vec::new();
    if let Some(file) = kafka_ca_file(spec, service) {
        out.push(("KAFKA_SSL_CA_LOCATION", file.to_owned()));
    }
    if service.uses_broker() && spec.rabbitmq().is_some() {
        if servers_used(spec, service).contains(&Component::Broker) {
            out.push(("AMQP_TLS_CA_FILE", CA_FILE.to_owned()));
        } else if external && external_broker(spec, service) {
            out.push(("AMQP_TLS_CA_FILE", EXTERNAL_CA_FILE.to_owned()));
        }
    }
    if service.uses_redis() {
        if spec.redis.managed().is_some() {
            out.push(("REDIS_TLS_CA_FILE", CA_FILE.to_owned()));
        } else if external {
            out.push(("REDIS_TLS_CA_FILE", EXTERNAL_CA_FILE.to_owned()));
        }
    }
    out
}

/// The CloudNativePG CA's Secret of `service`'s database, when on CloudNativePG.
fn cloudnative_pg_ca(names: &Names, spec: &SalesSystemSpec, service: AppService) -> Option<String> {
    match spec.postgres.choice(service)? {
        DatabaseChoice::CloudNativePg(cnpg) => Some(format!(
            "{}-ca",
            super::cloudnative_pg::cluster_name(names, service, &cnpg)
        )),
        _ => None,
    }
}

/// `DATABASE_URL` of a service on CloudNativePG under TLS, made of the variable
/// `from` (CloudNativePG's `uri`): verify-full against the cluster's CA.
pub fn cloudnative_pg_url(from: &str) -> String {
    format!("$({from})?sslmode=verify-full&sslrootcert={CLOUDNATIVE_PG_CA_FILE}")
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

fn source(secret: String, key: &str, path: &str) -> VolumeProjection {
    VolumeProjection {
        secret: Some(SecretProjection {
            name: secret,
            items: Some(vec![KeyToPath {
                key: key.to_owned(),
                path: file_name(path),
                ..Default::default()
            }]),
            optional: Some(false),
        }),
        ..Default::default()
    }
}

/// Mount the CAs `service` verifies its servers with into its Deployment, and
/// annotate its pods with their digest (as far as the reconcile read them).
pub fn mount(
    deploy: &mut Deployment,
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
    known: KnownSecrets<'_>,
) {
    if !spec.tls.enabled() {
        return;
    }
    let mut sources = Vec::new();
    let mut digests = Vec::new();
    if let Some(first) = servers_used(spec, service).first() {
        let secret = match spec.tls.mode {
            TlsMode::CertManager => server_secret(names, *first),
            _ => ca_secret(names),
        };
        if let Some(values) = known.tls.and_then(|all| all.get(&secret))
            && let Some(digest) = values_hash(values, &[CA_CERT_KEY.into()])
        {
            digests.push(digest);
        }
        sources.push(source(secret, CA_CERT_KEY, CA_FILE));
    }
    if let Some(secret) = cloudnative_pg_ca(names, spec, service) {
        sources.push(source(secret, CA_CERT_KEY, CLOUDNATIVE_PG_CA_FILE));
    }
    if let Some(KafkaChoice::Strimzi(strimzi)) = spec.kafka().map(|k| k.choice())
        && service.uses_broker()
    {
        let (secret, key) = strimzi.cluster_ca();
        if let Some(values) = known.tls.and_then(|all| all.get(&secret))
            && let Some(digest) = values_hash(values, std::slice::from_ref(&key))
        {
            digests.push(digest);
        }
        sources.push(source(secret, &key, STRIMZI_CA_FILE));
    }
    let uses_external = service.uses_redis() && spec.redis.external.is_some()
        || external_broker(spec, service)
        || external_kafka_tls(spec, service);
    if let Some(external) = &spec.tls.external_ca
        && uses_external
    {
        sources.push(source(
            external.secret_name.clone(),
            &external.key,
            EXTERNAL_CA_FILE,
        ));
    }
    if sources.is_empty() {
        return;
    }
    let Some(template) = deploy.spec.as_mut().map(|s| &mut s.template) else {
        return;
    };
    if !digests.is_empty() {
        template
            .metadata
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANNOTATION_TLS_HASH.to_owned(), digests.join(""));
    }
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(0o444),
        }),
        ..Default::default()
    });
    for container in &mut pod.containers {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: VOLUME.into(),
                mount_path: CLIENT_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tls: &str, rabbitmq: &str) -> SalesSystemSpec {
        let text = format!(
            "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\n\
             metadata: {{name: shop, namespace: sales}}\n\
             spec:\n  tls: {tls}\n  rabbitmq: {rabbitmq}\n"
        );
        crate::render::parse(&text)
            .map(|s| s.spec)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_broker_is_verified_with_the_ca_that_signed_it() {
        let names = Names::new("shop", "sales");
        let ca = |tls: &str, rabbitmq: &str| broker_ca(&names, &spec(tls, rabbitmq));
        let external_ca = "{mode: operatorCA, externalCA: {secretName: their-ca}}";
        assert_eq!(ca("{mode: 'off'}", "{}"), None);
        assert_eq!(
            ca("{mode: operatorCA}", "{}"),
            Some(("shop-tls-ca".into(), "ca.crt".into()))
        );
        assert_eq!(
            ca(
                "{mode: certManager, issuerRef: {name: ca}}",
                "{cluster: {create: {}}}"
            ),
            Some(("shop-rabbitmq-tls".into(), "ca.crt".into()))
        );
        assert_eq!(
            ca(external_ca, "{cluster: {name: theirs}}"),
            Some(("their-ca".into(), "ca.crt".into()))
        );
        assert_eq!(
            ca(external_ca, "{external: {secretName: broker}}"),
            Some(("their-ca".into(), "ca.crt".into()))
        );
        // An external broker without `externalCA`: the public roots.
        assert_eq!(
            ca("{mode: operatorCA}", "{external: {secretName: b}}"),
            None
        );
    }

    fn on_kafka(tls: &str, kafka: &str) -> SalesSystemSpec {
        let text = format!(
            "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\n\
             metadata: {{name: shop, namespace: sales}}\n\
             spec:\n  tls: {tls}\n  messaging: {{kind: kafka, kafka: {kafka}}}\n"
        );
        crate::render::parse(&text)
            .map(|s| s.spec)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn kafka_is_verified_with_the_ca_that_signed_its_listener() {
        let names = Names::new("shop", "sales");
        let ca = |tls: &str, kafka: &str| kafka_ca(&names, &on_kafka(tls, kafka));
        let pair = |secret: &str, key: &str| Some((secret.to_owned(), key.to_owned()));
        let managed = "{managed: {}}";
        assert_eq!(ca("{mode: 'off'}", managed), None);
        assert_eq!(
            ca("{mode: operatorCA}", managed),
            pair("shop-tls-ca", "ca.crt")
        );
        assert_eq!(
            ca("{mode: certManager, issuerRef: {name: ca}}", managed),
            pair("shop-kafka-tls", "ca.crt")
        );
        let strimzi = "{strimzi: {clusterName: events}}";
        assert_eq!(
            ca("{mode: operatorCA}", strimzi),
            pair("events-cluster-ca-cert", "ca.crt")
        );
        assert_eq!(ca("{mode: 'off'}", strimzi), None);
        let with_ca = "{mode: operatorCA, externalCA: {secretName: theirs, key: root.pem}}";
        let external = |protocol: &str| {
            format!("{{external: {{bootstrapServers: 'k:9093', securityProtocol: {protocol}}}}}")
        };
        assert_eq!(ca(with_ca, &external("SSL")), pair("theirs", "root.pem"));
        // Plaintext: no CA; TLS without externalCA: the public roots.
        assert_eq!(ca(with_ca, &external("PLAINTEXT")), None);
        assert_eq!(ca("{mode: operatorCA}", &external("SSL")), None);
    }
}
