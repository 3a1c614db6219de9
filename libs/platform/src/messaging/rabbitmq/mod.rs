//! The RabbitMQ transport. One connection per service process, kept up by a supervisor task that
//! reconnects with back-off after the broker restarts or the network drops, and a
//! publisher that waits for the broker's confirm of every message.
//!
//! On every (re)connect the whole topology of [`sales_contracts::topology`] is
//! declared (idempotently), by every service: a queue exists, and keeps messages, from
//! the moment any service has started, whether or not its consumer runs yet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sales_contracts::topology::{QueueType, RETRY_DELAYS, SUBSCRIPTIONS, Topology};
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::messaging::{OutgoingEvent, PublishError};
use crate::metrics::Metrics;

pub(crate) mod consumer;
pub(crate) mod dead_letters;
mod endpoint;

pub use endpoint::AmqpEndpoint;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("RabbitMQ is not connected")]
    NotConnected,
    #[error("RabbitMQ refused the message (negative confirm)")]
    Nacked,
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(std::time::Duration),
}

/// A handle on the broker connection; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    topology: Topology,
    connection: watch::Receiver<Option<Arc<Connection>>>,
    publish_channel: Mutex<Option<Channel>>,
    metrics: Metrics,
}

impl Broker {
    /// Start the supervisor that connects, declares the topology and reconnects.
    /// Returns at once; use [`Broker::wait_connected`] to wait for the first connection.
    pub fn start(
        service: &str,
        endpoint: AmqpEndpoint,
        topology: Topology,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Broker {
        let (tx, rx) = watch::channel(None);
        let broker = Broker {
            inner: Arc::new(Inner {
                topology: topology.clone(),
                connection: rx,
                publish_channel: Mutex::new(None),
                metrics: metrics.clone(),
            }),
        };
        // Shown in RabbitMQ's management UI: which service, where, which namespace.
        let mut name = format!(
            "{service}@{}",
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        if !topology.prefix().is_empty() {
            name = format!("{name}/{}", topology.prefix().trim_end_matches('.'));
        }
        let inner = broker.inner.clone();
        tokio::spawn(supervise(
            name, endpoint, topology, metrics, tx, inner, shutdown,
        ));
        broker
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// The live connection, if there is one.
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.inner
            .connection
            .borrow()
            .clone()
            .filter(|c| c.status().connected())
    }

    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

    /// Wait until connected (topology declared), or until `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Arc<Connection>, BrokerError> {
        let mut rx = self.inner.connection.clone();
        let wait = async {
            loop {
                if let Some(conn) = rx.borrow_and_update().clone()
                    && conn.status().connected()
                {
                    return Ok(conn);
                }
                if rx.changed().await.is_err() {
                    return Err(BrokerError::NotConnected);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(BrokerError::NotConnected))
    }

    /// Publish `body` and wait for the broker's confirm. `exchange` "" with a queue
    /// name as `routing_key` sends straight to that queue.
    pub async fn publish(&self, message: OutgoingMessage<'_>) -> Result<(), BrokerError> {
        let channel = self.publish_channel().await?;
        let result = async {
            let confirm = channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    BasicPublishOptions::default(),
                    message.body,
                    message.properties(),
                )
                .await?
                .await?;
            if confirm.is_nack() {
                Err(BrokerError::Nacked)
            } else {
                Ok(())
            }
        }
        .await;
        if matches!(result, Err(BrokerError::Amqp(_))) {
            self.forget_publish_channel().await;
        }
        result
    }

    /// Drop the publishing channel (dead, or with confirms that never came); the next
    /// publish opens a fresh one.
    pub async fn forget_publish_channel(&self) {
        *self.inner.publish_channel.lock().await = None;
    }

    /// Publish several messages, then wait for all confirms (pipelined). Returns how
    /// many from the start of `messages` were confirmed before the first failure.
    pub async fn publish_batch(
        &self,
        messages: &[OutgoingMessage<'_>],
    ) -> (usize, Option<BrokerError>) {
        let channel = match self.publish_channel().await {
            Ok(c) => c,
            Err(e) => return (0, Some(e)),
        };
        let mut confirms = Vec::with_capacity(messages.len());
        let mut failure = None;
        for message in messages {
            match channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    BasicPublishOptions::default(),
                    message.body,
                    message.properties(),
                )
                .await
            {
                Ok(confirm) => confirms.push(confirm),
                Err(e) => {
                    failure = Some(BrokerError::Amqp(e));
                    break;
                }
            }
        }
        let mut confirmed = 0;
        for confirm in confirms {
            match confirm.await {
                Ok(c) if c.is_ack() => confirmed += 1,
                Ok(_) => {
                    failure.get_or_insert(BrokerError::Nacked);
                    break;
                }
                Err(e) => {
                    failure.get_or_insert(BrokerError::Amqp(e));
                    break;
                }
            }
        }
        if matches!(failure, Some(BrokerError::Amqp(_))) {
            *self.inner.publish_channel.lock().await = None;
        }
        (confirmed, failure)
    }

    async fn publish_channel(&self) -> Result<Channel, BrokerError> {
        let mut slot = self.inner.publish_channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let conn = self.connection().ok_or(BrokerError::NotConnected)?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// [`crate::messaging::Messaging::publish_events`]: to the exchange, routed by type.
    pub(crate) async fn publish_events(
        &self,
        events: &[OutgoingEvent<'_>],
    ) -> (usize, Option<PublishError>) {
        if !self.is_connected() {
            return (0, Some(PublishError::NotConnected("RabbitMQ")));
        }
        let exchange = self.topology().exchange();
        let messages: Vec<OutgoingMessage<'_>> = events
            .iter()
            .map(|event| OutgoingMessage {
                exchange: &exchange,
                routing_key: event.message_type,
                body: event.body,
                message_id: Some(event.message_id.clone()),
                message_type: Some(event.message_type.to_owned()),
                headers: event
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), AmqpHeader::Text(v.clone())))
                    .collect(),
            })
            .collect();
        let (confirmed, failure) = self.publish_batch(&messages).await;
        let failure = failure.map(|err| match err {
            BrokerError::NotConnected => PublishError::NotConnected("RabbitMQ"),
            BrokerError::Nacked => PublishError::Refused {
                broker: "RabbitMQ",
                reason: "negative confirm".into(),
            },
            BrokerError::Timeout(timeout) => PublishError::Timeout {
                broker: "RabbitMQ",
                timeout,
            },
            BrokerError::Amqp(e) => PublishError::Failed {
                broker: "RabbitMQ",
                reason: e.to_string(),
            },
        });
        (confirmed, failure)
    }
}

/// A message to publish: persistent, JSON, with its id, type and headers.
pub struct OutgoingMessage<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    pub headers: BTreeMap<String, AmqpHeader>,
}

/// A header value we put on messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmqpHeader {
    Text(String),
    Int(i64),
}

impl OutgoingMessage<'_> {
    fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (k, v) in &self.headers {
            let Ok(key) = ShortString::try_new(k.clone()) else {
                continue;
            };
            let value = match v {
                AmqpHeader::Text(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
                AmqpHeader::Int(i) => AMQPValue::LongLongInt(*i),
            };
            headers.insert(key, value);
        }
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers)
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
        if let Some(id) = self
            .message_id
            .as_ref()
            .and_then(|s| ShortString::try_new(s.clone()).ok())
        {
            props = props.with_message_id(id);
        }
        if let Some(t) = self
            .message_type
            .as_ref()
            .and_then(|s| ShortString::try_new(s.clone()).ok())
        {
            props = props.with_type(t);
        }
        props
    }
}

/// Headers of a received message as strings/integers (others are skipped).
pub fn read_headers(props: &BasicProperties) -> HashMap<String, AmqpHeader> {
    let mut out = HashMap::new();
    if let Some(table) = props.headers() {
        for (k, v) in table {
            let value = match v {
                AMQPValue::LongString(s) => {
                    AmqpHeader::Text(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                AMQPValue::ShortString(s) => AmqpHeader::Text(s.as_str().to_owned()),
                AMQPValue::LongLongInt(i) => AmqpHeader::Int(*i),
                AMQPValue::LongInt(i) => AmqpHeader::Int(i64::from(*i)),
                AMQPValue::LongUInt(i) => AmqpHeader::Int(i64::from(*i)),
                AMQPValue::ShortInt(i) => AmqpHeader::Int(i64::from(*i)),
                AMQPValue::ShortUInt(i) => AmqpHeader::Int(i64::from(*i)),
                _ => continue,
            };
            out.insert(k.as_str().to_owned(), value);
        }
    }
    out
}

/// Just the text headers, e.g. to read W3C trace context.
pub fn text_headers(headers: &HashMap<String, AmqpHeader>) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(k, v)| match v {
            AmqpHeader::Text(s) => Some((k.clone(), s.clone())),
            AmqpHeader::Int(_) => None,
        })
        .collect()
}

async fn supervise(
    name: String,
    endpoint: AmqpEndpoint,
    topology: Topology,
    metrics: Metrics,
    tx: watch::Sender<Option<Arc<Connection>>>,
    inner: Arc<Inner>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let props = ConnectionProperties::default().with_connection_name(name.clone().into());
        let attempt = async {
            let conn = endpoint.connect(props).await?;
            declare_topology(&conn, &topology).await?;
            Ok::<_, anyhow::Error>(conn)
        };
        let conn = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = attempt => r,
        };
        match conn {
            Ok(conn) => {
                delay = Duration::from_millis(200);
                let conn = Arc::new(conn);
                let mut events = conn.events_listener();
                metrics.broker_connected.set(1);
                metrics.broker_connections.inc();
                tracing::info!(connection = %name, "connected to RabbitMQ");
                tx.send_replace(Some(conn.clone()));
                let lost = async {
                    loop {
                        match events.next().await {
                            Some(lapin::Event::Error(e)) => break e.to_string(),
                            Some(_) => {
                                if !conn.status().connected() {
                                    break "connection closed".to_owned();
                                }
                            }
                            None => break "connection closed".to_owned(),
                        }
                    }
                };
                // Also poll the status: not every way of losing a connection emits an event.
                let polled = async {
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if !conn.status().connected() {
                            break "connection closed".to_owned();
                        }
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        tx.send_replace(None);
                        metrics.broker_connected.set(0);
                        // Consumers close their channels first; give them the grace they
                        // need. The publisher's channel goes before the connection: closed
                        // after it, lapin reports the connection in error.
                        let publisher = inner.publish_channel.lock().await.take();
                        if let Some(channel) = publisher {
                            let _ = channel.close(200, "service shutting down".into()).await;
                        }
                        let _ = conn.close(200, "service shutting down".into()).await;
                        return;
                    }
                    reason = lost => tracing::warn!(%reason, "lost the RabbitMQ connection; reconnecting"),
                    reason = polled => tracing::warn!(%reason, "lost the RabbitMQ connection; reconnecting"),
                }
                tx.send_replace(None);
                metrics.broker_connected.set(0);
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), retry_in = ?delay, "cannot connect to RabbitMQ");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    tx.send_replace(None);
    metrics.broker_connected.set(0);
}

/// What a queue is for, which decides where its dead letters go.
#[derive(Clone, Copy)]
enum QueueRole<'a> {
    /// A subscription's queue; on a quorum queue, a message delivered more often than
    /// the delivery limit is parked in `dead_letters`.
    Subscription { dead_letters: &'a str },
    /// A retry queue: expired, a message goes `back_to` its queue.
    Retry { back_to: &'a str },
    /// Where failed messages are parked.
    DeadLetters,
}

/// The arguments of a queue of `topology` in `role` (a retry queue's TTL aside).
///
/// Classic queues carry only their retry queues' dead-lettering, as they always did
/// (a queue declared again with other arguments is refused). Quorum queues say their
/// type, and dead-letter at least once: RabbitMQ's default for them is at most once,
/// which drops a message when the target is unavailable, and at least once needs
/// `reject-publish` overflow.
fn queue_arguments(topology: &Topology, role: QueueRole<'_>) -> FieldTable {
    let mut args = FieldTable::default();
    let quorum = topology.queue_type() == QueueType::Quorum;
    if quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(QueueType::Quorum.as_str().into()),
        );
    }
    let dead_letter_to = match role {
        QueueRole::Retry { back_to } => back_to,
        QueueRole::Subscription { dead_letters } if quorum => dead_letters,
        QueueRole::Subscription { .. } | QueueRole::DeadLetters => return args,
    };
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dead_letter_to.into()),
    );
    if quorum {
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    args
}

/// Declare the exchange and every queue with its retry and dead-letter queues.
///
/// The declarations go out back to back (`nowait`: about 80 of them, which one
/// round trip each made 20 ms on a warm broker and 200 ms on a fresh one), then a
/// last synchronous declaration of the exchange. The broker handles a channel's
/// methods in order and closes the channel on the first one it refuses (a queue
/// that exists with other arguments, say), so the last answer comes only if every
/// declaration before it was taken; otherwise it fails with the broker's reason.
pub async fn declare_topology(conn: &Connection, topology: &Topology) -> Result<(), lapin::Error> {
    let channel = conn.create_channel().await?;
    let exchange = topology.exchange();
    let exchange_options = |nowait| ExchangeDeclareOptions {
        durable: true,
        nowait,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            exchange_options(true),
            FieldTable::default(),
        )
        .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        nowait: true,
        ..Default::default()
    };
    for sub in SUBSCRIPTIONS {
        let queue = topology.queue(*sub);
        let dead_letters = topology.dead_letter_queue(*sub);
        channel
            .queue_declare(
                queue.as_str().into(),
                durable,
                queue_arguments(
                    topology,
                    QueueRole::Subscription {
                        dead_letters: &dead_letters,
                    },
                ),
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                sub.message_type.as_str().into(),
                QueueBindOptions { nowait: true },
                FieldTable::default(),
            )
            .await?;
        for (tier, delay) in RETRY_DELAYS.iter().enumerate() {
            // Expired, a message goes back to its queue for the next attempt.
            let mut args = queue_arguments(topology, QueueRole::Retry { back_to: &queue });
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            channel
                .queue_declare(
                    topology.retry_queue(*sub, tier).as_str().into(),
                    durable,
                    args,
                )
                .await?;
        }
        channel
            .queue_declare(
                dead_letters.as_str().into(),
                durable,
                queue_arguments(topology, QueueRole::DeadLetters),
            )
            .await?;
    }
    // Answered only once every declaration above was taken.
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            exchange_options(false),
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, "topology declared".into()).await;
    Ok(())
}
