//! The scaler reads a broker under `spec.tls` over HTTPS, trusting what the services
//! trust, against a real RabbitMQ node of the test's own (management plugin on):
//!
//! - the node runs the `rabbitmq.conf` lines the operator writes for the built-in
//!   broker ([`tls_servers::rabbitmq_tls_config`]): it opens AMQP and management over
//!   TLS only (its own `/api/overview` lists no plaintext listener), and a reader that
//!   trusts the system's CA gets the queue depths while one trusting another CA, or
//!   the public roots, is refused;
//! - end to end on the in-memory API server, an external broker whose CA is
//!   `tls.externalCA`: the scaler reads the CA from that Secret, reads the depth and
//!   scales; with the Secret holding another CA, or gone, it scales nothing and says
//!   why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::Api;
use sales_contracts::topology::{Topology, subscriptions_of};
use sales_operator::autoscaling::broker::Management;
use sales_operator::autoscaling::scaler::Scaler;
use sales_operator::children::tls_servers;
use sales_operator::crd::{CaSecretRef, ExternalBroker, SalesSystem, TlsMode};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::reconcile;
use sales_testkit::private_servers::PrivateRabbitMq;
use sales_testkit::test_ca::TestCa;
use serde_json::json;

const NS: &str = "sales";
const NAME: &str = "shop-scaled";
const PREFIX: &str = "t-tls.";

/// A node configured as the operator configures the built-in broker under TLS (the
/// certificate files under the names the operator mounts them by), and statistics
/// every second so the test need not wait 5 s for counts.
fn node_with_the_operators_config(ca: &TestCa) -> PrivateRabbitMq {
    PrivateRabbitMq::start_configured(ca, &|dir: &Path, amqp: u16, management: u16| {
        std::fs::copy(dir.join("server.crt"), dir.join("tls.crt")).unwrap();
        std::fs::copy(dir.join("server.key"), dir.join("tls.key")).unwrap();
        let dir = dir.display().to_string();
        let config = tls_servers::rabbitmq_tls_config(
            &dir,
            &format!("127.0.0.1:{amqp}"),
            i32::from(management),
        );
        format!("{config}collect_statistics_interval = 1000\n")
    })
}

fn management_base(node: &PrivateRabbitMq) -> String {
    format!("https://localhost:{}", node.management_port.unwrap())
}

/// A client for the test's own calls to the node's management API.
fn trusting(ca: &TestCa) -> reqwest::Client {
    let certs = reqwest::Certificate::from_pem_bundle(ca.pem().as_bytes()).unwrap();
    sales_testkit::http_client_builder()
        .tls_certs_only(certs)
        .build()
        .unwrap()
}

/// Declare `queue` and put `count` messages on it, through the management API.
async fn fill(http: &reqwest::Client, base: &str, queue: &str, count: usize) {
    let put = http
        .put(format!("{base}/api/queues/%2F/{queue}"))
        .basic_auth("guest", Some("guest"))
        .json(&json!({"durable": true}))
        .send()
        .await
        .unwrap();
    assert!(
        put.status().is_success(),
        "declare {queue}: {}",
        put.status()
    );
    for n in 0..count {
        let published = http
            .post(format!("{base}/api/exchanges/%2F/amq.default/publish"))
            .basic_auth("guest", Some("guest"))
            .json(&json!({"properties": {}, "routing_key": queue,
                          "payload": format!("{{\"n\": {n}}}"), "payload_encoding": "string"}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = published.json().await.unwrap();
        assert_eq!(body["routed"], json!(true), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operators_broker_config_serves_management_over_https_only_and_the_scaler_reads_it() {
    let ca = TestCa::new("sales-system test CA");
    let node = node_with_the_operators_config(&ca);
    let base = management_base(&node);
    let http = trusting(&ca);

    // The node's own account of its listeners: TLS ones only.
    let overview: serde_json::Value = http
        .get(format!("{base}/api/overview"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut protocols: Vec<String> = overview["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["protocol"].as_str().unwrap().to_owned())
        .filter(|p| p != "clustering")
        .collect();
    protocols.sort();
    assert_eq!(protocols, ["amqp/ssl", "https"], "{overview}");

    let queue = "t-tls.inventory.update-stock";
    fill(&http, &base, queue, 7).await;

    let amqp = node.url("localhost");
    let names = [queue.to_owned()];
    let reader = Management::new(&amqp, Some(&base))
        .unwrap()
        .trusting(ca.pem().as_bytes(), "the test's CA")
        .unwrap();
    let scalers_own = sales_testkit::http_client();
    sales_testkit::eventually("the depth over HTTPS", Duration::from_secs(30), || async {
        let read = reader.queues(&scalers_own, &names).await.ok()?;
        (read[0].ready == 7).then_some(())
    })
    .await;

    // Another CA, and the public roots, are refused: the certificate is the check.
    let stranger = TestCa::new("another CA");
    let misled = Management::new(&amqp, Some(&base))
        .unwrap()
        .trusting(stranger.pem().as_bytes(), "another CA")
        .unwrap();
    let refused = misled.queues(&scalers_own, &names).await.unwrap_err();
    assert_eq!(refused.reason, "BrokerUnreachable", "{refused:?}");
    assert!(
        refused.message.contains("certificate") || refused.message.contains("UnknownIssuer"),
        "{refused:?}"
    );
    let untrusting = Management::new(&amqp, Some(&base)).unwrap();
    let refused = untrusting.queues(&scalers_own, &names).await.unwrap_err();
    assert_eq!(refused.reason, "BrokerUnreachable", "{refused:?}");

    // Plain HTTP on the management port gets no answer a reader could take.
    let plain = Management::new(&amqp, Some(&base.replace("https://", "http://"))).unwrap();
    assert!(plain.queues(&scalers_own, &names).await.is_err());

    // Not a CA at all.
    let invalid = Management::new(&amqp, Some(&base))
        .unwrap()
        .trusting(b"not a certificate", "Secret x, key ca.crt,");
    assert_eq!(invalid.unwrap_err().reason, "BrokerCaInvalid");
}

/// The autoscaling example on the node as an external broker under TLS, its CA in
/// Secret `broker-ca` (`tls.externalCA`), inventory scaled on 2 messages a replica.
fn system(management: &str) -> SalesSystem {
    let mut system = common::stored_autoscaling_example(None, "uid-scaled");
    system.spec.rabbitmq.managed = None;
    system.spec.rabbitmq.external = Some(ExternalBroker {
        secret_name: "broker".into(),
        key: "url".into(),
        management_url: Some(management.into()),
    });
    system.spec.rabbitmq.prefix = PREFIX.into();
    system.spec.tls.mode = TlsMode::OperatorCa;
    system.spec.tls.external_ca = Some(CaSecretRef {
        secret_name: "broker-ca".into(),
        key: "ca.crt".into(),
    });
    let autoscaling = &mut system.spec.autoscaling;
    autoscaling.inventory.min_replicas = 1;
    autoscaling.inventory.max_replicas = 10;
    autoscaling.inventory.target_messages_per_replica = 2;
    autoscaling.notification.enabled = false;
    autoscaling.shipping.enabled = false;
    system
}

async fn get(client: &Client) -> SalesSystem {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scaler_verifies_an_external_broker_with_the_external_ca() {
    let ca = TestCa::new("sales-system test CA");
    let node = node_with_the_operators_config(&ca);
    let base = management_base(&node);
    let topology = Topology::new(PREFIX);
    let queues: Vec<String> = subscriptions_of("inventory")
        .map(|s| topology.queue(s))
        .collect();
    fill(&trusting(&ca), &base, &queues[0], 9).await;

    let system = system(&base);
    let client = common::fake_api_with(
        &system,
        &[
            ("broker", "url", &node.url("localhost")),
            ("broker-ca", "ca.crt", &ca.pem()),
        ],
    )
    .await;
    let ctx = common::context(&client);
    reconcile(Arc::new(get(&client).await), ctx.clone())
        .await
        .expect("reconcile succeeds");
    let scaler = Scaler::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );

    // ceil(9 / 2) = 5 replicas, once the statistics show the 9 messages.
    sales_testkit::eventually(
        "the scaler read the depth over HTTPS",
        Duration::from_secs(30),
        || async {
            scaler
                .scale(&get(&client).await, Timestamp::now())
                .await
                .ok()?;
            let status = get(&client).await.status?;
            (status.consumers.get("inventory")?.depth == 9).then_some(())
        },
    )
    .await;
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(5)
    );
    let (scaled, reason, message) = common::condition(&get(&client).await, "ConsumersScaled");
    assert_eq!(scaled, "True", "{reason}: {message}");

    // The CA Secret now holds another CA: the reading fails, nothing is scaled.
    let stranger = TestCa::new("another CA");
    common::set_secret_value(&client, NS, "broker-ca", "ca.crt", &stranger.pem()).await;
    scaler
        .scale(&get(&client).await, Timestamp::now())
        .await
        .expect("a tick");
    let status = get(&client).await.status.unwrap();
    let inventory = &status.consumers["inventory"];
    assert_eq!(
        inventory.reason, "BrokerUnreachable",
        "{}",
        inventory.message
    );
    assert!(
        inventory.message.contains(&base),
        "the message names the API: {}",
        inventory.message
    );
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(5)
    );

    // No CA Secret at all: said as such, and still nothing scaled.
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NS)
        .delete("broker-ca", &Default::default())
        .await
        .unwrap();
    scaler
        .scale(&get(&client).await, Timestamp::now())
        .await
        .expect("a tick");
    let status = get(&client).await.status.unwrap();
    let inventory = &status.consumers["inventory"];
    assert_eq!(inventory.reason, "BrokerCaMissing", "{}", inventory.message);
    assert!(
        inventory.message.contains("broker-ca"),
        "{}",
        inventory.message
    );
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(5)
    );
}
