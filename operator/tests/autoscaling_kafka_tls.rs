//! The scaler reads Kafka's consumer-group lag over TLS, trusting what the services
//! trust (issue 15), on the in-memory API server and a real Kafka-protocol broker of
//! the test's own (tansu) behind a TLS front it advertises
//! (`sales_testkit::tls_front`):
//!
//! - an external Kafka on `SSL` whose CA is `tls.externalCA`: the scaler reads the CA
//!   from that Secret, reads the lag over TLS and scales;
//! - the Secret holding another CA: the brokers are not trusted, the read fails and
//!   nothing is scaled; a Secret without a certificate, or gone: said as such, and
//!   nothing scaled either.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::Api;
use sales_operator::autoscaling::scaler::Scaler;
use sales_operator::crd::{
    CaSecretRef, ExternalKafka, KafkaSecurityProtocol, KafkaSpec, MessagingKind, SalesSystem,
    SalesSystemStatus, TlsMode,
};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::reconcile;
use sales_testkit::TestKafka;
use sales_testkit::private_kafka::PrivateKafka;
use sales_testkit::test_ca::TestCa;
use sales_testkit::tls_front::TlsFront;

const NS: &str = "sales";
const NAME: &str = "shop-kafka-tls";

/// The autoscaling example on the test's Kafka at `bootstrap` over `SSL`, its CA in
/// Secret `kafka-ca` (`tls.externalCA`), inventory scaled on 100 messages a replica.
fn system(bootstrap: &str, prefix: &str) -> SalesSystem {
    let mut system = common::stored_autoscaling_example(Some(NAME), "uid-kafka-tls");
    system.spec.messaging.kind = MessagingKind::Kafka;
    system.spec.messaging.kafka = Some(KafkaSpec {
        external: Some(ExternalKafka {
            bootstrap_servers: bootstrap.into(),
            security_protocol: KafkaSecurityProtocol::Ssl,
            credentials_secret: None,
        }),
        topic_prefix: prefix.into(),
        partitions: 3,
        ..KafkaSpec::default()
    });
    system.spec.tls.mode = TlsMode::OperatorCa;
    system.spec.tls.external_ca = Some(CaSecretRef {
        secret_name: "kafka-ca".into(),
        key: "ca.crt".into(),
    });
    let autoscaling = &mut system.spec.autoscaling;
    autoscaling.inventory.enabled = true;
    autoscaling.inventory.min_replicas = 1;
    autoscaling.inventory.max_replicas = 10;
    autoscaling.inventory.target_messages_per_replica = 100;
    autoscaling.notification.enabled = false;
    autoscaling.shipping.enabled = false;
    system
}

async fn status(client: &Client) -> SalesSystemStatus {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .unwrap()
        .status
        .unwrap()
}

async fn tick(client: &Client, scaler: &Scaler) -> (String, String, i64) {
    let system = Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .unwrap();
    scaler
        .scale(&system, Timestamp::now())
        .await
        .expect("a tick");
    let inventory = status(client).await.consumers["inventory"].clone();
    (inventory.reason, inventory.message, inventory.depth)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scaler_reads_the_lag_over_tls_verified_with_the_external_ca() {
    let ca = TestCa::new("their Kafka CA");
    let front = TlsFront::bind(&ca).await;
    let advertised = format!("localhost:{}", front.port);
    let broker = Arc::new(PrivateKafka::start_advertising(&advertised));
    let upstream: u16 = broker
        .bootstrap
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let _front = front.forward_to(upstream);
    let trusted = ca.trust_file();
    let kafka = TestKafka::over_tls(broker, &advertised, trusted.path.clone());
    kafka.create_topics(3).await;
    let messages: Vec<(String, Vec<u8>)> = (0..250)
        .map(|i| (format!("order-{i}"), format!("{{\"n\": {i}}}").into_bytes()))
        .collect();
    kafka.publish_many("update-stock", &messages).await;

    let system = system(&advertised, &kafka.prefix);
    let client = common::fake_api_with(&system, &[("kafka-ca", "ca.crt", &ca.pem())]).await;
    reconcile(Arc::new(system), common::context(&client))
        .await
        .expect("reconcile succeeds");
    let scaler = Scaler::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );

    // 250 behind on update-stock: ceil(250 / 100) = 3 replicas (3 partitions).
    let (reason, message, depth) = tick(&client, &scaler).await;
    assert_eq!((reason.as_str(), depth), ("ScaledUp", 250), "{message}");
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(3)
    );

    // Another CA: the brokers' certificate is not trusted; nothing scaled.
    common::set_secret_value(
        &client,
        NS,
        "kafka-ca",
        "ca.crt",
        &TestCa::new("another CA").pem(),
    )
    .await;
    let (reason, message, _) = tick(&client, &scaler).await;
    assert_eq!(reason, "KafkaUnreachable", "{message}");
    assert!(message.contains(&advertised), "{message}");
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(3)
    );

    // A key without a certificate in it: said as such.
    common::set_secret_value(&client, NS, "kafka-ca", "ca.crt", "not a certificate").await;
    let (reason, message, _) = tick(&client, &scaler).await;
    assert_eq!(reason, "BrokerCaInvalid", "{message}");
    assert!(message.contains("kafka-ca"), "{message}");

    // No CA Secret at all: said as such, and still nothing scaled.
    Api::<Secret>::namespaced(client.clone(), NS)
        .delete("kafka-ca", &Default::default())
        .await
        .unwrap();
    let (reason, message, _) = tick(&client, &scaler).await;
    assert_eq!(reason, "BrokerCaMissing", "{message}");
    assert!(message.contains("kafka-ca"), "{message}");
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(3)
    );
    kafka.delete().await;
}
