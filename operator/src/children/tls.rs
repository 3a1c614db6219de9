//! `spec.tls`: the certificates of the built-in servers and what the pods mount
//! (docs/operator/tls.md).
//!
//! - `operatorCA`: the operator's CA, `<system>-tls-ca` (`ca.crt`, `ca.key`; ECDSA
//!   P-256, 10 years), and per built-in server (each PostgreSQL, RabbitMQ, Kafka, Redis, a
//!   created `RabbitmqCluster`) a `kubernetes.io/tls` Secret `<system>-<component>-tls`
//!   (`tls.crt`, `tls.key`, `ca.crt`; 1 year) whose SANs are every DNS name clients
//!   use. They are made once and read back at every reconcile ([`ca_to_write`],
//!   [`server_to_write`]): a certificate is renewed only within 30 days of its end,
//!   when its names change, or when the CA changed. A renewed CA keeps the old one in
//!   `ca.crt` beside it while the old one is valid, so that clients that have not
//!   rolled yet still trust the servers.
//! - `certManager`: the same server Secrets, written by cert-manager from the
//!   `Certificate`s of [`super::cert_manager`].
//!
//! The servers' pods mount their Secret at [`SERVER_DIR`]; the services' pods mount
//! the CAs they verify with at [`CLIENT_DIR`] (`ca.crt` for the built-in servers).
//! Both carry a digest of what they mount ([`ANNOTATION_TLS_HASH`]), so a renewed
//! certificate rolls them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::names::{Component, Names};
use crate::catalogue::AppService;
use crate::crd::{DatabaseChoice, SalesSystemSpec, TlsMode};

/// A Secret's values, by key.
pub type Values = BTreeMap<String, String>;

/// Where a server's pod mounts its Secret (`tls.crt`, `tls.key`, `ca.crt`).
pub const SERVER_DIR: &str = "/etc/sales-system/server-tls";
/// Where a service's pod mounts the CAs it verifies its servers with.
pub const CLIENT_DIR: &str = "/etc/sales-system/tls";
/// The CA of the built-in servers, in a service's pod.
pub const CA_FILE: &str = "/etc/sales-system/tls/ca.crt";
/// CloudNativePG's CA (`<cluster>-ca`), in a service's pod.
pub const CLOUDNATIVE_PG_CA_FILE: &str = "/etc/sales-system/tls/postgres-ca.crt";
/// Strimzi's cluster CA (`<cluster>-cluster-ca-cert`), in a service's pod.
pub const STRIMZI_CA_FILE: &str = "/etc/sales-system/tls/kafka-ca.crt";
/// `tls.externalCA`, in a service's pod.
pub const EXTERNAL_CA_FILE: &str = "/etc/sales-system/tls/external-ca.crt";
/// The volume of either.
pub const VOLUME: &str = "tls";
/// AMQP over TLS.
pub const AMQPS_PORT: i32 = 5671;
/// Pod template annotation: a digest of the certificates the pod mounts.
pub const ANNOTATION_TLS_HASH: &str = "sales-system.io/tls-hash";

pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";

const DAY: u64 = 24 * 60 * 60;
/// How long the operator's CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * DAY);
/// How long a server certificate is valid.
pub const SERVER_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// A certificate is renewed once it ends within this.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * DAY);
/// Certificates start this much before they are made (clocks a little behind).
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// The operator CA's Secret.
pub fn ca_secret(names: &Names) -> String {
    format!("{}-tls-ca", names.instance)
}

/// The `sales-system.io/component` of the operator CA's Secret: `Retain` keeps it
/// with the volumes ([`super::secrets::guards_data`]), so a SalesSystem of the same
/// name signs with the same CA and clients that trust it go on trusting.
pub const CA_COMPONENT: &str = "tls-ca";

/// The labels of the operator CA's Secret.
pub fn ca_labels(names: &Names) -> Values {
    let mut labels = names.system_labels();
    labels.insert(
        super::names::LABEL_COMPONENT.to_owned(),
        CA_COMPONENT.to_owned(),
    );
    labels
}

/// The server Secret of `component` (`<system>-<component>-tls`).
pub fn server_secret(names: &Names, component: Component) -> String {
    format!("{}-tls", names.of(component))
}

/// The names a Service `service` of `namespace` is reached by.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// One server that gets a certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub component: Component,
    /// Its Secret.
    pub secret: String,
    /// The certificate's SANs.
    pub dns_names: Vec<String>,
}

/// The servers that get a certificate under `spec` (none with TLS off): each
/// built-in PostgreSQL, the built-in RabbitMQ (every node's name too), the managed
/// Kafka (every node's name too), Redis, and a `RabbitmqCluster` the operator
/// creates (its nodes `<cluster>-server-<i>`).
pub fn servers(names: &Names, spec: &SalesSystemSpec) -> Vec<Server> {
    if !spec.tls.enabled() {
        return Vec::new();
    }
    let server = |component: Component, extra: Vec<String>| {
        let mut dns = dns_names(&names.of(component), &names.namespace);
        dns.extend(extra);
        Server {
            component,
            secret: server_secret(names, component),
            dns_names: dns,
        }
    };
    let mut out = Vec::new();
    for service in AppService::with_database() {
        if let Some(DatabaseChoice::Managed(_)) = spec.postgres.choice(service) {
            out.push(server(Component::Database(service), Vec::new()));
        }
    }
    if let Some(broker) = spec.managed_rabbitmq() {
        let mut nodes = Vec::new();
        if super::rabbitmq_nodes::clustered(&broker) {
            let sts = names.of(Component::Broker);
            for index in 0..broker.replicas {
                let pod = format!("{sts}-{index}.{}", names.broker_nodes());
                nodes.extend(dns_names(&pod, &names.namespace).into_iter().skip(1));
            }
        }
        out.push(server(Component::Broker, nodes));
    }
    if let Some(create) = spec.rabbitmq_cluster().and_then(|p| p.create.as_ref()) {
        let cluster = names.of(Component::Broker);
        let mut nodes = Vec::new();
        for index in 0..create.replicas {
            let pod = format!("{cluster}-server-{index}.{cluster}-nodes");
            nodes.extend(dns_names(&pod, &names.namespace).into_iter().skip(1));
        }
        out.push(server(Component::Broker, nodes));
    }
    if let Some(kafka) = spec.managed_kafka() {
        // Clients reach every node at the name it advertises.
        let sts = names.of(Component::Kafka);
        let mut nodes = Vec::new();
        for index in 0..kafka.replicas.max(1) {
            let pod = format!("{sts}-{index}.{}", names.kafka_nodes());
            nodes.extend(dns_names(&pod, &names.namespace).into_iter().skip(1));
        }
        out.push(server(Component::Kafka, nodes));
    }
    if spec.redis.managed().is_some() {
        out.push(server(Component::Cache, Vec::new()));
    }
    out
}

/// The Secret of a Strimzi Kafka's cluster CA the services verify its listener with
/// (under TLS, on Strimzi), which the reconcile reads for the pods' digest.
pub fn strimzi_ca_read(spec: &SalesSystemSpec) -> Option<String> {
    match spec.kafka()?.choice() {
        crate::crd::KafkaChoice::Strimzi(strimzi) if spec.tls.enabled() => {
            Some(strimzi.cluster_ca().0)
        }
        _ => None,
    }
}

/// Whether the operator makes the certificates (`operatorCA`).
pub fn operator_issues(spec: &SalesSystemSpec) -> bool {
    spec.tls.mode == TlsMode::OperatorCa
}

/// A new CA for `instance`, valid from `now` for [`CA_VALIDITY`].
pub fn new_ca(instance: &str, now: SystemTime) -> anyhow::Result<Values> {
    let key = KeyPair::generate().context("generating the CA's key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{instance} sales-system CA"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "sales-operator");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_VALIDITY).into();
    let cert = params.self_signed(&key).context("signing the CA")?;
    Ok(BTreeMap::from([
        (CA_CERT_KEY.to_owned(), cert.pem()),
        (CA_KEY_KEY.to_owned(), key.serialize_pem()),
    ]))
}

/// A server certificate for `dns_names`, signed by `ca` (its `ca.crt`, whose first
/// certificate is the signing one, and `ca.key`), valid from `now` for
/// [`SERVER_VALIDITY`] (never past the CA's end).
pub fn issue(ca: &Values, dns_names: &[String], now: SystemTime) -> anyhow::Result<Values> {
    let ca_pem = ca.get(CA_CERT_KEY).context("the CA Secret has no ca.crt")?;
    let ca_key = ca.get(CA_KEY_KEY).context("the CA Secret has no ca.key")?;
    let signing = first_pem(ca_pem).context("the CA's ca.crt holds no certificate")?;
    let ca_key = KeyPair::from_pem(ca_key).context("reading the CA's key")?;
    let ca_end = not_after(&signing)?;
    let issuer = Issuer::from_ca_cert_pem(&signing, ca_key).context("reading the CA")?;
    let key = KeyPair::generate().context("generating a server key")?;
    let mut params =
        CertificateParams::new(dns_names.to_vec()).context("the servers' DNS names")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = dns_names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.clone());
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + SERVER_VALIDITY).min(ca_end).into();
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing a server certificate")?;
    Ok(BTreeMap::from([
        (CERT_KEY.to_owned(), cert.pem()),
        (KEY_KEY.to_owned(), key.serialize_pem()),
        (CA_CERT_KEY.to_owned(), ca_pem.clone()),
    ]))
}

/// What to write in the CA Secret given what it holds (`None`: keep it). A missing
/// or unreadable CA, or one within [`RENEW_BEFORE`] of its end, is replaced; the old
/// certificate stays in `ca.crt` after the new one while it is still valid.
pub fn ca_to_write(
    existing: Option<&Values>,
    instance: &str,
    now: SystemTime,
) -> anyhow::Result<Option<Values>> {
    let current = existing.and_then(|values| {
        let pem = first_pem(values.get(CA_CERT_KEY)?)?;
        values.get(CA_KEY_KEY)?;
        let end = not_after(&pem).ok()?;
        Some((pem, end))
    });
    match current {
        Some((_, end)) if end > now + RENEW_BEFORE => Ok(None),
        Some((old, end)) => {
            let mut new = new_ca(instance, now)?;
            if end > now
                && let Some(bundle) = new.get_mut(CA_CERT_KEY)
            {
                bundle.push_str(&old);
            }
            Ok(Some(new))
        }
        None => new_ca(instance, now).map(Some),
    }
}

/// What to write in a server's Secret given what it holds (`None`: keep it): a new
/// certificate when there is none (or it cannot be read), when it ends within
/// [`RENEW_BEFORE`], when its SANs are not `dns_names`, or when its `ca.crt` is not
/// the CA's (the CA was renewed).
pub fn server_to_write(
    existing: Option<&Values>,
    ca: &Values,
    dns_names: &[String],
    now: SystemTime,
) -> anyhow::Result<Option<Values>> {
    let fine = existing.is_some_and(|values| {
        values.contains_key(KEY_KEY)
            && values.get(CA_CERT_KEY) == ca.get(CA_CERT_KEY)
            && values.get(CERT_KEY).is_some_and(|pem| {
                not_after(pem).is_ok_and(|end| end > now + RENEW_BEFORE)
                    && subject_alt_names(pem).is_ok_and(|sans| sans == dns_names)
            })
    });
    if fine {
        return Ok(None);
    }
    issue(ca, dns_names, now).map(Some)
}

/// The first PEM block of `bundle`.
fn first_pem(bundle: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = bundle.find("-----BEGIN CERTIFICATE-----")?;
    let end = bundle[start..].find(END)? + start + END.len();
    Some(format!("{}\n", &bundle[start..end]))
}

/// Parse the first certificate of `pem` and give it to `f`.
fn with_certificate<T>(
    pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).context("not a PEM certificate")?;
    let cert = block.parse_x509().context("not an X.509 certificate")?;
    f(&cert)
}

/// When the first certificate of `pem` ends.
pub fn not_after(pem: &str) -> anyhow::Result<SystemTime> {
    with_certificate(pem, |cert| {
        let seconds = cert.validity().not_after.timestamp();
        let seconds = u64::try_from(seconds).context("a certificate that ended before 1970")?;
        Ok(UNIX_EPOCH + Duration::from_secs(seconds))
    })
}

/// The DNS names of the first certificate of `pem`, in order.
pub fn subject_alt_names(pem: &str) -> anyhow::Result<Vec<String>> {
    with_certificate(pem, |cert| {
        let names = cert
            .subject_alternative_name()
            .context("unreadable subjectAltName")?
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(names)
    })
}

#[cfg(test)]
mod tests;
