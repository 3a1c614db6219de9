//! The Kafka transport (librdkafka through `rdkafka`).
//!
//! - Topics: one per event type (`sales.paid-order`), and per subscription three retry
//!   topics and a dead-letter topic ([`sales_contracts::topology`]). Every service
//!   creates the whole set at start (existing ones are left alone), with the partitions
//!   and replication factor of `KAFKA_TOPIC_PARTITIONS` / `KAFKA_REPLICATION_FACTOR`.
//! - Producer: idempotent, `acks=all`; the message key is the envelope's
//!   `correlation_id` (the order id for order events), so one order's events keep
//!   their order in one partition. An event counts as published once the broker has
//!   acknowledged it.
//! - Consumers: [`consumer`], a group per subscription.
//! - Dead letters: [`dead_letters`].

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sales_contracts::topology::Topology;
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaArgs;
use crate::messaging::{OutgoingEvent, PublishError};
use crate::metrics::Metrics;

pub(crate) mod consumer;
pub(crate) mod dead_letters;

const KAFKA: &str = "Kafka";
/// How long the producer keeps trying one record before it reports a failure.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long event and retry topics keep a message: shorter than the inbox keeps its
/// rows ([`crate::inbox::INBOX_RETENTION`]), so a group that starts over from the
/// earliest offset finds every message it handled before in its inbox. Dead-letter
/// topics keep theirs until replayed (`retention.ms=-1`).
pub const EVENT_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);
static EVENT_RETENTION_MS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| EVENT_RETENTION.as_millis().to_string());
/// How often the connection is checked (a metadata request).
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A handle on the Kafka producer and settings; cheap to clone.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: ClientConfig,
    topology: Topology,
    partitions: i32,
    replication: i32,
    /// Create the topics (`KAFKA_CREATE_TOPICS`), or only check they exist.
    create_topics: bool,
    /// The producer's settings: the shared ones and the batch size.
    producer_config: ClientConfig,
    /// Replaced when librdkafka reports a fatal error (an idempotent producer that
    /// lost its sequence cannot send again).
    producer: RwLock<FutureProducer>,
    /// One dead-letter replay at a time in this process.
    pub(crate) replaying: tokio::sync::Mutex<()>,
    connected: watch::Receiver<bool>,
    metrics: Metrics,
}

impl KafkaBus {
    /// Create the producer and start the supervisor that creates the topics and
    /// watches the connection. Returns at once; fails only on settings that cannot work.
    pub fn start(
        service: &str,
        args: &KafkaArgs,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> anyhow::Result<KafkaBus> {
        let client = client_config(service, args)?;
        let mut producer_config = client.clone();
        if let Some(n) = args.kafka_batch_messages {
            producer_config.set("batch.num.messages", n.to_string());
        }
        let producer = create_producer(&producer_config)?;
        let (tx, rx) = watch::channel(false);
        let bus = KafkaBus {
            inner: Arc::new(Inner {
                client,
                topology: Topology::new(args.kafka_topic_prefix.clone()),
                partitions: args.kafka_topic_partitions,
                replication: args.kafka_replication_factor,
                create_topics: args.kafka_create_topics,
                producer_config,
                producer: RwLock::new(producer),
                replaying: tokio::sync::Mutex::new(()),
                connected: rx,
                metrics,
            }),
        };
        tokio::spawn(supervise(bus.clone(), tx, shutdown));
        Ok(bus)
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Wait until the brokers answered and the topics exist, or until `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.connected.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The settings every client of this service shares (brokers, credentials).
    pub(crate) fn client_config(&self) -> ClientConfig {
        self.inner.client.clone()
    }

    /// [`crate::messaging::Messaging::publish_events`]: each to its type's topic,
    /// keyed, all handed to the producer at once, then every acknowledgement awaited.
    pub(crate) async fn publish_events(
        &self,
        events: &[OutgoingEvent<'_>],
    ) -> (usize, Option<PublishError>) {
        let producer = self.producer();
        let mut deliveries = Vec::with_capacity(events.len());
        // The producer refused to queue an event: those before it may still go out.
        let mut refused_at = None;
        for event in events {
            let topic = self.inner.topology.event_topic(event.message_type);
            let headers = event.headers.iter().fold(
                OwnedHeaders::new().insert(Header {
                    key: "message_id",
                    value: Some(event.message_id.as_str()),
                }),
                |h, (k, v)| {
                    h.insert(Header {
                        key: k,
                        value: Some(v.as_str()),
                    })
                },
            );
            let record = FutureRecord::to(&topic)
                .key(event.key)
                .payload(event.body)
                .headers(headers);
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((err, _)) => {
                    refused_at = Some(publish_error(&err));
                    break;
                }
            }
        }
        // Acknowledged counts the events from the start, in order, up to the first
        // that was not: the outbox blames that one, and only that one.
        let mut acknowledged = 0;
        let mut failure = None;
        let mut stuck = None;
        for delivery in deliveries {
            let result = match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((err, _))) => {
                    let refused = publish_error(&err);
                    if needs_new_producer(&err) {
                        stuck.get_or_insert(err);
                    }
                    Err(refused)
                }
                Err(_) => Err(PublishError::Failed {
                    broker: KAFKA,
                    reason: "the producer dropped the record".into(),
                }),
            };
            match result {
                Ok(()) if failure.is_none() => acknowledged += 1,
                Ok(()) => {}
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        if let Some(err) = stuck {
            self.replace_stuck_producer(&err);
        }
        (acknowledged, failure.or(refused_at))
    }

    /// Send one record and wait for its acknowledgement (retry and dead-letter copies).
    pub(crate) async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), PublishError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        match self.producer().send(record, DELIVERY_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err((err, _)) => {
                if needs_new_producer(&err) {
                    self.replace_stuck_producer(&err);
                }
                Err(publish_error(&err))
            }
        }
    }

    /// Create every topic of the system that does not exist yet, or, when something
    /// else owns them, check that they all exist.
    async fn prepare_topics(&self) -> Result<(), String> {
        if self.inner.create_topics {
            self.create_topics().await?;
        }
        // A created topic reaches the cluster's metadata a moment later: connected
        // only once every one is there.
        self.check_topics().await
    }

    /// Every topic of the system is in the cluster's metadata.
    async fn check_topics(&self) -> Result<(), String> {
        let producer = self.producer();
        let wanted = self.inner.topology.kafka_topics();
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(None, Duration::from_secs(10))
                .map_err(|e| format!("cannot read the cluster's topics: {e}"))?;
            let present: std::collections::HashSet<&str> = metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.name())
                .collect();
            // A list of every topic can miss some while others are created or deleted
            // (seen on tansu): what it lacks is asked about by name.
            let missing: Vec<&str> = wanted
                .iter()
                .map(String::as_str)
                .filter(|t| !present.contains(t))
                .filter(|t| {
                    producer
                        .client()
                        .fetch_metadata(Some(t), Duration::from_secs(5))
                        .map_or(true, |m| {
                            !m.topics().iter().any(|found| {
                                found.name() == *t
                                    && found.error().is_none()
                                    && !found.partitions().is_empty()
                            })
                        })
                })
                .collect();
            match missing.len() {
                0 => Ok(()),
                n => Err(format!(
                    "{n} topics are not in the cluster's metadata yet (with \
                     KAFKA_CREATE_TOPICS=false: whoever owns them has not created them): {}",
                    missing
                        .iter()
                        .take(5)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        })
        .await
        .map_err(|e| format!("the topic check stopped: {e}"))?
    }

    /// Create every topic of the system that does not exist yet.
    async fn create_topics(&self) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = self
            .inner
            .client
            .create()
            .map_err(|e| format!("cannot create the Kafka admin client: {e}"))?;
        let names = self.inner.topology.kafka_topics();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| {
                let topic = NewTopic::new(
                    name,
                    self.inner.partitions,
                    TopicReplication::Fixed(self.inner.replication),
                );
                if name.ends_with(".dlt") {
                    topic.set("retention.ms", "-1")
                } else {
                    topic.set("retention.ms", &EVENT_RETENTION_MS)
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(&topics, &options)
            .await
            .map_err(|e| format!("cannot create the topics: {e}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(format!("cannot create topic {topic}: {code}")),
            }
        }
        Ok(())
    }

    fn producer(&self) -> FutureProducer {
        match self.inner.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A fresh producer in place of one that hit a fatal error.
    fn replace_fatal_producer(&self) {
        let Some((code, reason)) = self.producer().client().fatal_error() else {
            return;
        };
        tracing::error!(%code, %reason, "the Kafka producer hit a fatal error; starting a new one");
        self.replace_producer();
    }

    /// A fresh producer (a new producer id) in place of one the brokers will not take
    /// records from again ([`needs_new_producer`]). What it had not sent is sent again
    /// from the outbox; a copy the brokers did take is dropped by the consumers' inbox.
    fn replace_stuck_producer(&self, err: &KafkaError) {
        tracing::warn!(error = %err, "the brokers refuse this Kafka producer; starting a new one");
        self.replace_producer();
    }

    fn replace_producer(&self) {
        match create_producer(&self.inner.producer_config) {
            Ok(fresh) => match self.inner.producer.write() {
                Ok(mut p) => *p = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            },
            Err(err) => tracing::error!(error = %err, "cannot start a new Kafka producer"),
        }
    }

    /// Whether the brokers answer a metadata request.
    async fn answers(&self) -> bool {
        let producer = self.producer();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

fn create_producer(client: &ClientConfig) -> anyhow::Result<FutureProducer> {
    client
        .clone()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the Kafka producer: {e}"))
}

/// The settings shared by the producer, the consumers and the admin client.
fn client_config(service: &str, args: &KafkaArgs) -> anyhow::Result<ClientConfig> {
    let servers = args
        .kafka_bootstrap_servers
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("MESSAGING_KIND=kafka needs KAFKA_BOOTSTRAP_SERVERS (host:port,...)")
        })?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", servers)
        .set(
            "client.id",
            format!(
                "{service}@{}",
                hostname::get()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        )
        .set("security.protocol", &args.kafka_security_protocol)
        // Topics are made whole at start (or by their owner), never by a metadata
        // request or a record on the way.
        .set("allow.auto.create.topics", "false")
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    match (
        &args.kafka_sasl_mechanism,
        &args.kafka_sasl_username,
        &args.kafka_sasl_password,
    ) {
        (None, None, None) => {}
        (Some(mechanism), Some(user), Some(password)) => {
            config
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", user)
                .set("sasl.password", password.expose_secret());
        }
        _ => anyhow::bail!(
            "Kafka SASL needs all of KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        ),
    }
    if let Some(path) = &args.kafka_ssl_ca_location {
        let protocol = args.kafka_security_protocol.to_ascii_lowercase();
        if !matches!(protocol.as_str(), "ssl" | "sasl_ssl") {
            anyhow::bail!(
                "KAFKA_SSL_CA_LOCATION is set but KAFKA_SECURITY_PROTOCOL={protocol} is not TLS; \
                 use ssl or sasl_ssl"
            );
        }
        crate::tls::read_ca_bundle("KAFKA_SSL_CA_LOCATION", path)?;
        config.set("ssl.ca.location", path.to_string_lossy());
    }
    // Unknown or misspelt settings fail here, at start, not at the first message.
    config
        .create::<rdkafka::consumer::BaseConsumer>()
        .map_err(|e| anyhow::anyhow!("Kafka settings: {e}"))?;
    Ok(config)
}

/// Errors after which a producer never sends again though librdkafka does not call
/// them fatal: the brokers fenced its producer id or lost its sequence (seen after
/// the broker froze past the delivery timeout: every record was then refused with
/// `ProducerFenced`, for good).
fn needs_new_producer(err: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        err.rdkafka_error_code(),
        Some(
            C::ProducerFenced
                | C::InvalidProducerEpoch
                | C::OutOfOrderSequenceNumber
                | C::UnknownProducerId
                | C::InvalidProducerIdMapping
        )
    )
}

/// A producer error as the outbox sees it: the broker refusing this record (it will
/// be parked after some refusals) or a failure that may pass.
fn publish_error(err: &KafkaError) -> PublishError {
    use RDKafkaErrorCode as C;
    match err.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessage
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::TopicAuthorizationFailed,
        ) => PublishError::Refused {
            broker: KAFKA,
            reason: err.to_string(),
        },
        _ => PublishError::Failed {
            broker: KAFKA,
            reason: err.to_string(),
        },
    }
}

/// Create the topics (again after every reconnect: a broker may have been replaced),
/// then check the brokers answer, every [`CHECK_EVERY`].
async fn supervise(bus: KafkaBus, connected: watch::Sender<bool>, shutdown: CancellationToken) {
    let metrics = bus.inner.metrics.clone();
    let mut delay = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        if !*connected.borrow() {
            match bus.prepare_topics().await {
                Ok(()) => {
                    delay = Duration::from_millis(200);
                    tracing::info!("connected to Kafka; topics in place");
                    metrics.broker_connections.inc();
                    metrics.broker_connected.set(1);
                    connected.send_replace(true);
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?delay, "cannot reach Kafka");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        bus.replace_fatal_producer();
        if !bus.answers().await {
            tracing::warn!("lost Kafka; reconnecting");
            metrics.broker_connected.set(0);
            connected.send_replace(false);
        }
    }
    // What the producer still holds goes out now if the brokers are there.
    let producer = bus.producer();
    let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    metrics.broker_connected.set(0);
    connected.send_replace(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(protocol: &str) -> KafkaArgs {
        KafkaArgs {
            kafka_bootstrap_servers: Some("127.0.0.1:1".into()),
            kafka_security_protocol: protocol.into(),
            ..KafkaArgs::default()
        }
    }

    #[test]
    fn settings_that_cannot_work_are_refused_at_start_with_the_reason() {
        assert!(client_config("t", &args("plaintext")).is_ok());
        let mut plain = args("sasl_plaintext");
        plain.kafka_sasl_mechanism = Some("PLAIN".into());
        plain.kafka_sasl_username = Some("svc".into());
        plain.kafka_sasl_password = Some(secrecy::SecretString::from("pw".to_owned()));
        assert!(client_config("t", &plain).is_ok());
        // librdkafka is built with OpenSSL: TLS to the brokers is a setting like any.
        assert!(client_config("t", &args("ssl")).is_ok());
        // A protocol librdkafka does not know is refused now, not at the first message.
        let Err(unknown) = client_config("t", &args("tls")) else {
            panic!("an unknown security.protocol accepted");
        };
        assert!(
            unknown.to_string().contains("security.protocol"),
            "{unknown}"
        );
        let mut missing = args("plaintext");
        missing.kafka_bootstrap_servers = None;
        let Err(none) = client_config("t", &missing) else {
            panic!("no bootstrap servers accepted");
        };
        assert!(
            none.to_string().contains("KAFKA_BOOTSTRAP_SERVERS"),
            "{none}"
        );
        let mut half = args("sasl_plaintext");
        half.kafka_sasl_username = Some("svc".into());
        let Err(sasl) = client_config("t", &half) else {
            panic!("a SASL user without mechanism or password accepted");
        };
        assert!(sasl.to_string().contains("KAFKA_SASL_MECHANISM"), "{sasl}");
    }

    /// KAFKA_SSL_CA_LOCATION is librdkafka's `ssl.ca.location`, with TLS only.
    #[test]
    fn a_kafka_ca_file_needs_tls_and_a_certificate() {
        let ca = rcgen::generate_simple_self_signed(vec!["kafka-ca".to_owned()]).unwrap();
        let dir = std::env::temp_dir().join(format!("sales-kafka-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ca.crt");
        std::fs::write(&file, ca.cert.pem()).unwrap();
        let mut tls = args("ssl");
        tls.kafka_ssl_ca_location = Some(file.clone());
        let config = client_config("t", &tls).unwrap();
        assert_eq!(config.get("ssl.ca.location"), file.to_str());
        let mut plain = args("plaintext");
        plain.kafka_ssl_ca_location = Some(file);
        let err = client_config("t", &plain).unwrap_err().to_string();
        assert!(err.starts_with("KAFKA_SSL_CA_LOCATION is set but"), "{err}");
        let mut missing = args("sasl_ssl");
        missing.kafka_ssl_ca_location = Some(dir.join("none.crt"));
        let err = client_config("t", &missing).unwrap_err().to_string();
        assert!(
            err.starts_with("KAFKA_SSL_CA_LOCATION: cannot read"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// KAFKA_SASL_MECHANISM is passed to librdkafka as it is (no list of our own), so
    /// SCRAM-SHA-512 (Strimzi's KafkaUsers) reaches it, over plain TCP or TLS.
    #[test]
    fn scram_sha_512_is_accepted_by_this_librdkafka() {
        // librdkafka has SCRAM only when built with OpenSSL (rdkafka's `ssl` feature);
        // without, it refuses at start.
        let mut scram = args("sasl_plaintext");
        scram.kafka_sasl_mechanism = Some("SCRAM-SHA-512".into());
        scram.kafka_sasl_username = Some("shop-services".into());
        scram.kafka_sasl_password = Some(secrecy::SecretString::from("pw".to_owned()));
        if let Err(refused) = client_config("t", &scram) {
            panic!("SCRAM-SHA-512 refused: {refused}");
        }
        let mut tls = args("sasl_ssl");
        tls.kafka_sasl_mechanism = Some("SCRAM-SHA-512".into());
        tls.kafka_sasl_username = Some("shop-services".into());
        tls.kafka_sasl_password = Some(secrecy::SecretString::from("pw".to_owned()));
        if let Err(refused) = client_config("t", &tls) {
            panic!("SASL over TLS refused: {refused}");
        }
    }
}
