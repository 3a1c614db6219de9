#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::crd::{ManagedBroker, TlsMode};

fn days(n: u64) -> Duration {
    Duration::from_secs(n * DAY)
}

/// Whether `cert_pem` is signed by the first certificate of `ca_pem`.
fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    let (_, cert) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    let (_, ca) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
    let cert = cert.parse_x509().unwrap();
    let ca = ca.parse_x509().unwrap();
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

#[test]
fn a_server_certificate_names_every_dns_name_and_chains_to_the_ca() {
    let now = SystemTime::now();
    let ca = new_ca("shop", now).unwrap();
    let dns = dns_names("shop-order-db", "sales");
    let server = issue(&ca, &dns, now).unwrap();
    assert_eq!(
        subject_alt_names(&server[CERT_KEY]).unwrap(),
        [
            "shop-order-db",
            "shop-order-db.sales",
            "shop-order-db.sales.svc",
            "shop-order-db.sales.svc.cluster.local"
        ]
    );
    assert!(signed_by(&server[CERT_KEY], &ca[CA_CERT_KEY]));
    assert_eq!(server[CA_CERT_KEY], ca[CA_CERT_KEY]);
    // Another CA did not sign it.
    let other = new_ca("shop", now).unwrap();
    assert!(!signed_by(&server[CERT_KEY], &other[CA_CERT_KEY]));
    // One year for the server, ten for the CA.
    let server_end = not_after(&server[CERT_KEY]).unwrap();
    let ca_end = not_after(&ca[CA_CERT_KEY]).unwrap();
    assert!(server_end > now + days(364) && server_end < now + days(366));
    assert!(ca_end > now + days(3649) && ca_end < now + days(3651));
    let (_, block) = x509_parser::pem::parse_x509_pem(server[CERT_KEY].as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    assert!(!cert.is_ca());
    assert!(server[KEY_KEY].starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn the_ca_is_kept_until_thirty_days_before_its_end_then_renewed_beside_the_old() {
    let made = SystemTime::now() - days(3000);
    let ca = new_ca("shop", made).unwrap();
    // Valid for 650 more days: kept.
    assert_eq!(
        ca_to_write(Some(&ca), "shop", SystemTime::now()).unwrap(),
        None
    );
    // 20 days before its end: a new CA, the old one still trusted beside it.
    let later = made + CA_VALIDITY - days(20);
    let renewed = ca_to_write(Some(&ca), "shop", later).unwrap().unwrap();
    assert_ne!(renewed[CA_KEY_KEY], ca[CA_KEY_KEY]);
    assert!(renewed[CA_CERT_KEY].ends_with(ca[CA_CERT_KEY].as_str()));
    assert!(not_after(&renewed[CA_CERT_KEY]).unwrap() > later + days(3000));
    // A server certificate of the new CA chains to its first certificate.
    let server = issue(&renewed, &dns_names("shop-redis", "sales"), later).unwrap();
    assert!(signed_by(&server[CERT_KEY], &renewed[CA_CERT_KEY]));
    // Missing or unreadable: made.
    assert!(ca_to_write(None, "shop", later).unwrap().is_some());
    let mut broken = ca.clone();
    broken.insert(CA_CERT_KEY.into(), "not a certificate".into());
    assert!(ca_to_write(Some(&broken), "shop", later).unwrap().is_some());
}

#[test]
fn a_server_certificate_is_kept_until_renewal_or_a_change_of_names_or_ca() {
    let now = SystemTime::now();
    let ca = new_ca("shop", now - days(400)).unwrap();
    let dns = dns_names("shop-redis", "sales");
    let first = issue(&ca, &dns, now - days(100)).unwrap();
    // 265 days left: kept.
    assert_eq!(server_to_write(Some(&first), &ca, &dns, now).unwrap(), None);
    // 20 days left: renewed, by the same CA.
    let late = now + days(245);
    let renewed = server_to_write(Some(&first), &ca, &dns, late)
        .unwrap()
        .unwrap();
    assert_ne!(renewed[CERT_KEY], first[CERT_KEY]);
    assert!(not_after(&renewed[CERT_KEY]).unwrap() > late + days(360));
    assert!(signed_by(&renewed[CERT_KEY], &ca[CA_CERT_KEY]));
    // Other names: reissued with them.
    let more = dns_names("shop-rabbitmq", "sales");
    let reissued = server_to_write(Some(&first), &ca, &more, now)
        .unwrap()
        .unwrap();
    assert_eq!(subject_alt_names(&reissued[CERT_KEY]).unwrap(), more);
    // A new CA: reissued by it.
    let new_ca = new_ca("shop", now).unwrap();
    let moved = server_to_write(Some(&first), &new_ca, &dns, now)
        .unwrap()
        .unwrap();
    assert!(signed_by(&moved[CERT_KEY], &new_ca[CA_CERT_KEY]));
    // None yet, or a key missing: issued.
    assert!(server_to_write(None, &ca, &dns, now).unwrap().is_some());
    let mut keyless = first.clone();
    keyless.remove(KEY_KEY);
    assert!(
        server_to_write(Some(&keyless), &ca, &dns, now)
            .unwrap()
            .is_some()
    );
}

#[test]
fn every_built_in_server_gets_a_certificate_with_its_nodes_names() {
    let names = Names::new("shop", "sales");
    let mut spec = SalesSystemSpec::default();
    assert!(servers(&names, &spec).is_empty(), "TLS is off by default");
    spec.tls.mode = TlsMode::OperatorCa;
    spec.rabbitmq.managed = Some(ManagedBroker {
        replicas: 3,
        ..Default::default()
    });
    let servers = servers(&names, &spec);
    assert_eq!(servers.len(), 7 + 1 + 1);
    let broker = servers
        .iter()
        .find(|s| s.component == Component::Broker)
        .unwrap();
    assert_eq!(broker.secret, "shop-rabbitmq-tls");
    for name in [
        "shop-rabbitmq",
        "shop-rabbitmq.sales.svc",
        "shop-rabbitmq-0.shop-rabbitmq-nodes.sales",
        "shop-rabbitmq-2.shop-rabbitmq-nodes.sales.svc.cluster.local",
    ] {
        assert!(
            broker.dns_names.iter().any(|n| n == name),
            "{name} in {:?}",
            broker.dns_names
        );
    }
    let order = servers
        .iter()
        .find(|s| s.component == Component::Database(AppService::Order))
        .unwrap();
    assert_eq!(order.secret, "shop-order-db-tls");
    assert_eq!(order.dns_names, dns_names("shop-order-db", "sales"));
}
