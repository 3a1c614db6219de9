//! Consumer-lag autoscaling end to end, against the in-memory API server
//! (`kube-fake-client`) and, for the lag, a real Kafka-protocol broker (the test's
//! own tansu under `cargo xtask test`, see `sales_testkit::TestKafka`):
//!
//! - the lag the operator reads, group by group and topic by topic, is what was
//!   published minus what the group committed;
//! - the replicas follow the formula on that lag, capped at the topics' partitions;
//! - the rates come from two readings (the scaler's clock input);
//! - once the group has caught up, the replicas come down only after the
//!   stabilization window, as on RabbitMQ;
//! - reading the lag never joins a group (no rebalance of the consumers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::Api;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sales_contracts::topology::subscriptions_of;
use sales_operator::autoscaling::scaler::Scaler;
use sales_operator::crd::{
    ExternalKafka, KafkaSecurityProtocol, KafkaSpec, MessagingKind, SalesSystem,
};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::{Context, reconcile};
use sales_testkit::TestKafka;

const NS: &str = "sales";
const NAME: &str = "shop-lag";

/// The autoscaling example on external Kafka (the test's broker at `bootstrap`, topics under `prefix`), inventory
/// scaled 1..10 on 100 messages per replica with a 5 minute window, 3 partitions.
fn on_kafka(bootstrap: &str, prefix: &str) -> SalesSystem {
    let mut system = common::stored_autoscaling_example(Some(NAME), "uid-lag");
    system.spec.messaging.kind = MessagingKind::Kafka;
    system.spec.messaging.kafka = Some(KafkaSpec {
        external: Some(ExternalKafka {
            bootstrap_servers: bootstrap.into(),
            security_protocol: KafkaSecurityProtocol::Plaintext,
            credentials_secret: None,
        }),
        topic_prefix: prefix.into(),
        partitions: 3,
        ..KafkaSpec::default()
    });
    let inventory = &mut system.spec.autoscaling.inventory;
    inventory.enabled = true;
    inventory.min_replicas = 1;
    inventory.max_replicas = 10;
    inventory.target_messages_per_replica = 100;
    inventory.scale_down_stabilization = "5m".into();
    system.spec.autoscaling.notification.enabled = false;
    system.spec.autoscaling.shipping.enabled = false;
    system
}

async fn reconcile_once(client: &Client) {
    let ctx = Context::new(
        client.clone(),
        common::recorder(client),
        Arc::new(Metrics::new()),
    );
    reconcile(Arc::new(get(client).await), Arc::new(ctx))
        .await
        .expect("reconcile");
}

async fn get(client: &Client) -> SalesSystem {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .unwrap()
}

/// Commit `offsets` (per partition of `topic`) for `group`, without joining it.
fn commit(kafka: &TestKafka, group: &str, topic: &str, offsets: &[i64]) {
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets.iter().enumerate() {
        list.add_partition_offset(topic, partition as i32, Offset::Offset(*offset))
            .unwrap();
    }
    consumer.commit(&list, CommitMode::Sync).unwrap();
}

/// The end offset of every partition of `topic`.
fn ends(kafka: &TestKafka, topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = kafka.client().set("group.id", "ends").create().unwrap();
    (0..3)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .unwrap()
                .1
        })
        .collect()
}

fn messages(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("order-{i}"), format!("{{\"n\": {i}}}").into_bytes()))
        .collect()
}

#[tokio::test]
async fn the_lag_read_drives_the_replicas_capped_at_the_partitions() {
    let kafka = TestKafka::new();
    kafka.create_topics(3).await;
    let topology = kafka.topology();
    let subs: Vec<_> = subscriptions_of("inventory").collect();
    let (stock, paid) = (subs[1], subs[2]);
    let stock_topic = topology.event_topic(stock.message_type.as_str());
    let paid_topic = topology.event_topic(paid.message_type.as_str());
    kafka.publish_many("update-stock", &messages(350)).await;
    kafka.publish_many("paid-order", &messages(60)).await;
    // The update-stock group has finished 20 of them: 330 + 60 to go.
    let stock_ends = ends(&kafka, &stock_topic);
    assert_eq!(stock_ends.iter().sum::<i64>(), 350);
    let mut done = stock_ends.clone();
    let mut left = 20;
    for d in done.iter_mut() {
        let take = left.min(*d);
        *d = take;
        left -= take;
    }
    commit(&kafka, &topology.consumer_group(stock), &stock_topic, &done);

    let system = on_kafka(&kafka.bootstrap, &kafka.prefix);
    let client = common::fake_api_with(&system, &[]).await;
    reconcile_once(&client).await;
    let metrics = Arc::new(Metrics::new());
    let scaler = Scaler::new(client.clone(), common::recorder(&client), metrics.clone());
    let t0 = Timestamp::now();
    scaler.scale(&get(&client).await, t0).await.unwrap();

    let status = get(&client).await.status.unwrap().consumers["inventory"].clone();
    let lag: BTreeMap<(String, String), (i64, Option<i32>)> = status
        .queues
        .iter()
        .map(|q| {
            (
                (q.consumer_group.clone().unwrap(), q.name.clone()),
                (q.ready, q.partitions),
            )
        })
        .collect();
    // Every group of the service, on its event topic (retries wait on purpose).
    assert_eq!(lag.len(), subs.len(), "{lag:?}");
    assert_eq!(
        lag[&(topology.consumer_group(stock), stock_topic.clone())],
        (330, Some(3))
    );
    assert_eq!(
        lag[&(topology.consumer_group(paid), paid_topic.clone())],
        (60, Some(3))
    );
    assert!(status.queues.iter().all(|q| q.unacknowledged == 0));
    assert_eq!(status.depth, 390);
    // ceil(390 / 100) = 4, but 3 partitions keep only 3 consumers busy.
    assert_eq!(
        (status.replicas, status.recommended, status.reason.as_str()),
        (3, Some(3), "ScaledUp"),
        "{}",
        status.message
    );
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(3)
    );
    assert!(
        status.message.contains("the topics have 3 partitions"),
        "the cap is reported: {}",
        status.message
    );

    // 15 s later: 150 more published, the group committed 150 more.
    kafka.publish_many("update-stock", &messages(150)).await;
    let stock_ends = ends(&kafka, &stock_topic);
    let mut more = 150;
    for (d, end) in done.iter_mut().zip(&stock_ends) {
        let take = more.min(end - *d);
        *d += take;
        more -= take;
    }
    commit(&kafka, &topology.consumer_group(stock), &stock_topic, &done);
    scaler
        .scale(&get(&client).await, t0 + SignedDuration::from_secs(15))
        .await
        .unwrap();
    let status = get(&client).await.status.unwrap().consumers["inventory"].clone();
    let stock_status = status
        .queues
        .iter()
        .find(|q| q.name == stock_topic)
        .unwrap();
    assert_eq!(stock_status.ready, 330);
    assert_eq!(
        (
            stock_status.publish_rate.as_str(),
            stock_status.ack_rate.as_str()
        ),
        ("10.00", "10.00")
    );

    // Caught up everywhere: 3 stay for the window, then 1.
    commit(
        &kafka,
        &topology.consumer_group(stock),
        &stock_topic,
        &ends(&kafka, &stock_topic),
    );
    commit(
        &kafka,
        &topology.consumer_group(paid),
        &paid_topic,
        &ends(&kafka, &paid_topic),
    );
    for seconds in [30, 200, 314] {
        scaler
            .scale(&get(&client).await, t0 + SignedDuration::from_secs(seconds))
            .await
            .unwrap();
        let status = get(&client).await.status.unwrap().consumers["inventory"].clone();
        assert_eq!(status.depth, 0);
        assert_eq!(
            (status.replicas, status.reason.as_str()),
            (3, "Stabilizing"),
            "{seconds} s: {}",
            status.message
        );
    }
    scaler
        .scale(&get(&client).await, t0 + SignedDuration::from_secs(316))
        .await
        .unwrap();
    let status = get(&client).await.status.unwrap().consumers["inventory"].clone();
    assert_eq!((status.replicas, status.reason.as_str()), (1, "ScaledDown"));
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        Some(1)
    );
    let exported = metrics.render();
    assert!(
        exported.contains(&format!(
            r#"sales_operator_queue_depth{{namespace="sales",queue="{stock_topic}",service="inventory",system="shop-lag"}} 0"#
        )),
        "{exported}"
    );
    kafka.delete().await;
}

#[tokio::test]
async fn an_unreachable_kafka_scales_nothing_and_says_so() {
    // Nothing listens on port 1.
    let system = on_kafka("127.0.0.1:1", "t-none.");
    let client = common::fake_api_with(&system, &[]).await;
    reconcile_once(&client).await;
    let before = common::inventory_consumer_replicas(&client, NS, NAME).await;
    let scaler = Scaler::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );
    scaler
        .scale(&get(&client).await, Timestamp::now())
        .await
        .unwrap();
    let status = get(&client).await.status.unwrap();
    let inventory = &status.consumers["inventory"];
    assert_eq!(
        inventory.reason, "KafkaUnreachable",
        "{}",
        inventory.message
    );
    assert!(
        inventory.message.contains("127.0.0.1:1"),
        "{}",
        inventory.message
    );
    assert_eq!(
        common::inventory_consumer_replicas(&client, NS, NAME).await,
        before
    );
}
