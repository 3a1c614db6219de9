//! The two transports a test can run on: RabbitMQ (a private prefix on the shared
//! broker, [`TestBroker`]) and Kafka (private topics, on a broker of the test's own
//! or a shared one, [`TestKafka`]), behind one [`TestTransport`], so one test body
//! checks both.

use std::sync::Arc;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sales_contracts::topology::Topology;
use sales_platform::config::{BrokerArgs, KafkaArgs, MessagingKind};

use crate::private_kafka::PrivateKafka;
use crate::{TestBroker, short_id};

/// `host:port` of the shared Kafka-protocol broker: `SALES_KAFKA_BOOTSTRAP`, or the
/// standard local port.
pub fn kafka_bootstrap() -> String {
    std::env::var("SALES_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A test's own set of topics and groups. Where they live:
/// - `SALES_KAFKA_BOOTSTRAP` set: on that shared broker (a real Kafka cluster, or the
///   tansu of `cargo xtask infra up`);
/// - otherwise, `SALES_TANSU_BIN` set (`cargo xtask test` sets it): on a tansu of the
///   test's own, started here and killed when the last handle is dropped. One tansu
///   serving 16 tests at once stalled (requests unanswered for over 10 s), so the
///   tests do not share one;
/// - neither: on the shared broker at 127.0.0.1:9092.
#[derive(Clone)]
pub struct TestKafka {
    pub prefix: String,
    /// `host:port` of the broker the topics are on.
    pub bootstrap: String,
    own_broker: Option<Arc<PrivateKafka>>,
    /// Reached over TLS, trusting this CA file (see [`TestKafka::over_tls`]).
    tls_ca: Option<std::path::PathBuf>,
}

impl TestKafka {
    pub fn new() -> TestKafka {
        let shared = std::env::var_os("SALES_KAFKA_BOOTSTRAP").is_some();
        let own_broker = match std::env::var("SALES_TANSU_BIN") {
            Ok(binary) if !shared => Some(Arc::new(PrivateKafka::start_binary(&binary, None))),
            _ => None,
        };
        TestKafka {
            prefix: format!("t{}.", short_id()),
            bootstrap: own_broker
                .as_ref()
                .map_or_else(kafka_bootstrap, |b| b.bootstrap.clone()),
            own_broker,
            tls_ca: None,
        }
    }

    /// Topics on `broker`, a broker of the test's own (one it freezes, say).
    pub fn on(broker: Arc<PrivateKafka>) -> TestKafka {
        TestKafka {
            prefix: format!("t{}.", short_id()),
            bootstrap: broker.bootstrap.clone(),
            own_broker: Some(broker),
            tls_ca: None,
        }
    }

    /// Topics on `broker`, reached over TLS at `front` (a
    /// [`crate::tls_front::TlsFront`] the broker advertises) trusting `ca_file`.
    pub fn over_tls(
        broker: Arc<PrivateKafka>,
        front: &str,
        ca_file: std::path::PathBuf,
    ) -> TestKafka {
        TestKafka {
            bootstrap: front.to_owned(),
            tls_ca: Some(ca_file),
            ..TestKafka::on(broker)
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(self.prefix.clone())
    }

    pub fn kafka_args(&self) -> KafkaArgs {
        KafkaArgs {
            kafka_bootstrap_servers: Some(self.bootstrap.clone()),
            kafka_topic_prefix: self.prefix.clone(),
            kafka_topic_partitions: 3,
            kafka_replication_factor: 1,
            kafka_security_protocol: "plaintext".into(),
            // tansu cannot fetch from inside a batch (docs/messaging.md).
            kafka_batch_messages: Some(1),
            ..KafkaArgs::default()
        }
    }

    pub fn args(&self) -> BrokerArgs {
        BrokerArgs {
            messaging_kind: MessagingKind::Kafka,
            amqp_url: None,
            amqp_tls_ca_file: None,
            amqp_prefix: String::new(),
            amqp_prefetch: 16,
            amqp_queue_type: Default::default(),
            kafka: self.kafka_args(),
        }
    }

    /// A client config for this test's broker.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        if let Some(ca) = &self.tls_ca {
            config
                .set("security.protocol", "ssl")
                .set("ssl.ca.location", ca.to_string_lossy());
        }
        config
    }

    /// A producer that sends one record per batch, as the services do against tansu.
    fn producer(&self) -> FutureProducer {
        self.client()
            .set("enable.idempotence", "true")
            .set("batch.num.messages", "1")
            .create()
            .unwrap_or_else(|e| panic!("cannot create a Kafka producer: {e}"))
    }

    /// Publish `body` as is to the event topic of `message_type`, keyed by `key`, and
    /// wait for the broker's acknowledgement.
    pub async fn publish_raw(&self, message_type: &str, key: &str, body: &[u8]) {
        self.publish_many(message_type, &[(key.to_owned(), body.to_vec())])
            .await;
    }

    /// Publish every `(key, body)` to the event topic of `message_type` with one
    /// producer, and wait until the broker acknowledged them all.
    pub async fn publish_many(&self, message_type: &str, messages: &[(String, Vec<u8>)]) {
        let producer = self.producer();
        let topic = self.topology().event_topic(message_type);
        let deliveries: Vec<_> = messages
            .iter()
            .map(|(key, body)| {
                producer
                    .send_result(FutureRecord::to(&topic).key(key).payload(body))
                    .unwrap_or_else(|(e, _)| panic!("Kafka did not queue a record: {e}"))
            })
            .collect();
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => panic!("Kafka did not take a record for {topic}: {e}"),
                Err(_) => panic!("the producer dropped a record for {topic}"),
            }
        }
    }

    /// Create every topic of this namespace with `partitions` partitions, as a
    /// service would at start.
    pub async fn create_topics(&self, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self
            .client()
            .create()
            .unwrap_or_else(|e| panic!("cannot create a Kafka admin client: {e}"));
        let topics = self.topology().kafka_topics();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
            .collect();
        for result in admin
            .create_topics(&new, &AdminOptions::new())
            .await
            .unwrap_or_else(|e| panic!("cannot create the topics: {e}"))
        {
            if let Err((topic, code)) = result {
                panic!("cannot create topic {topic}: {code}");
            }
        }
    }

    /// Delete this namespace's topics (a broker of the test's own goes with its last
    /// handle). Best effort.
    pub async fn delete(self) {
        if self.own_broker.is_none() {
            delete_kafka_topics(&self.bootstrap, &self.prefix).await;
        }
    }
}

/// Delete every topic of the system under `prefix` on the brokers at `bootstrap`.
/// Best effort.
pub async fn delete_kafka_topics(bootstrap: &str, prefix: &str) {
    let Ok(admin) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let topics = Topology::new(prefix).kafka_topics();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
}

impl Default for TestKafka {
    fn default() -> Self {
        Self::new()
    }
}

/// A test's broker, either kind.
pub enum TestTransport {
    RabbitMq(TestBroker),
    Kafka(TestKafka),
}

impl TestTransport {
    pub fn rabbitmq() -> Self {
        TestTransport::RabbitMq(TestBroker::new())
    }

    /// RabbitMQ with quorum queues (`AMQP_QUEUE_TYPE=quorum`).
    pub fn rabbitmq_quorum() -> Self {
        TestTransport::RabbitMq(TestBroker::quorum())
    }

    pub fn kafka() -> Self {
        TestTransport::Kafka(TestKafka::new())
    }

    pub fn args(&self) -> BrokerArgs {
        match self {
            TestTransport::RabbitMq(b) => b.args(),
            TestTransport::Kafka(k) => k.args(),
        }
    }

    pub fn topology(&self) -> Topology {
        match self {
            TestTransport::RabbitMq(b) => b.topology(),
            TestTransport::Kafka(k) => k.topology(),
        }
    }

    /// Publish `body` as is as a message of `message_type` about `key`.
    pub async fn publish_raw(&self, message_type: &str, key: &str, body: &[u8]) {
        match self {
            TestTransport::RabbitMq(b) => b.publish_raw(message_type, body).await,
            TestTransport::Kafka(k) => k.publish_raw(message_type, key, body).await,
        }
    }

    /// Publish every `(key, body)` as a message of `message_type`, each acknowledged.
    pub async fn publish_many(&self, message_type: &str, messages: &[(String, Vec<u8>)]) {
        match self {
            TestTransport::RabbitMq(b) => {
                let bodies: Vec<&[u8]> = messages.iter().map(|(_, b)| b.as_slice()).collect();
                b.publish_many(message_type, &bodies).await
            }
            TestTransport::Kafka(k) => k.publish_many(message_type, messages).await,
        }
    }

    pub async fn delete(self) {
        match self {
            TestTransport::RabbitMq(b) => b.delete().await,
            TestTransport::Kafka(k) => k.delete().await,
        }
    }
}
