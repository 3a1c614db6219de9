//! Events between services, over RabbitMQ or Kafka. The services see one seam:
//!
//! - [`Messaging`]: the connection, chosen by `MESSAGING_KIND` (see
//!   [`crate::config::BrokerArgs`]); the outbox relay publishes through it
//!   ([`Messaging::publish_events`], each event acknowledged by the broker);
//! - [`MessageHandler`]: what a service does with one event; [`handling`] runs it in a
//!   transaction with the inbox and says whether to acknowledge, retry or park it;
//! - [`dead_letters`]: the parked messages, listed, peeked and replayed the same way
//!   on both;
//! - trace context in message headers (W3C `traceparent`), on both.
//!
//! [`rabbitmq`] and [`kafka`] implement it. No service knows which one runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sales_contracts::topology::{Subscription, Topology};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::metrics::Metrics;

pub mod dead_letters;
pub mod handling;
pub mod kafka;
pub mod rabbitmq;

pub use handling::{HandlerError, MessageHandler};

/// Header carrying how many times a message has been attempted and failed.
pub const ATTEMPT_HEADER: &str = "x-attempt";
/// Header saying why a message was parked as a dead letter.
pub const DEATH_REASON_HEADER: &str = "x-death-reason";
/// Header naming the queue or topic a dead letter came from.
pub const ORIGIN_HEADER: &str = "x-origin";
/// The headers a retry or a parking writes: a replayed message starts without them.
pub(crate) const PARKING_HEADERS: [&str; 3] = [ATTEMPT_HEADER, DEATH_REASON_HEADER, ORIGIN_HEADER];

/// The connection to the message broker; cheap to clone.
#[derive(Clone)]
pub enum Messaging {
    RabbitMq(rabbitmq::Broker),
    Kafka(kafka::KafkaBus),
}

/// One event for the broker: published to its type's exchange route (RabbitMQ) or
/// topic (Kafka), keyed by what it is about so one order's events stay in order.
pub struct OutgoingEvent<'a> {
    pub message_type: &'a str,
    /// The business key: the order id for order events (the envelope's
    /// `correlation_id`). Kafka's message key; RabbitMQ has one queue, in order.
    pub key: &'a str,
    pub body: &'a [u8],
    pub message_id: String,
    /// Text headers: W3C trace context.
    pub headers: BTreeMap<String, String>,
}

/// Why an event was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0} is not connected")]
    NotConnected(&'static str),
    /// The broker answered that it will not take this event (a negative confirm, a
    /// record too large): trying the same again will not help.
    #[error("{broker} refused the message: {reason}")]
    Refused {
        broker: &'static str,
        reason: String,
    },
    #[error("{broker} did not confirm within {timeout:?}")]
    Timeout {
        broker: &'static str,
        timeout: Duration,
    },
    #[error("{broker}: {reason}")]
    Failed {
        broker: &'static str,
        reason: String,
    },
}

impl Messaging {
    /// `rabbitmq` or `kafka`: the `messaging.system` of traces.
    pub fn system(&self) -> &'static str {
        match self {
            Messaging::RabbitMq(_) => "rabbitmq",
            Messaging::Kafka(_) => "kafka",
        }
    }

    /// The broker's name for people: `RabbitMQ` or `Kafka`.
    pub fn name(&self) -> &'static str {
        match self {
            Messaging::RabbitMq(_) => "RabbitMQ",
            Messaging::Kafka(_) => "Kafka",
        }
    }

    /// The names of queues, topics and groups, with this system's prefix.
    pub fn topology(&self) -> &Topology {
        match self {
            Messaging::RabbitMq(b) => b.topology(),
            Messaging::Kafka(k) => k.topology(),
        }
    }

    pub fn is_connected(&self) -> bool {
        match self {
            Messaging::RabbitMq(b) => b.is_connected(),
            Messaging::Kafka(k) => k.is_connected(),
        }
    }

    /// Wait until connected (topology declared), or until `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        match self {
            Messaging::RabbitMq(b) => b.wait_connected(timeout).await.is_ok(),
            Messaging::Kafka(k) => k.wait_connected(timeout).await,
        }
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        match self {
            Messaging::RabbitMq(b) => b.metrics(),
            Messaging::Kafka(k) => k.metrics(),
        }
    }

    /// Publish `events` in order and wait for the broker to acknowledge them. Returns
    /// how many from the start were acknowledged before the first failure.
    pub async fn publish_events(
        &self,
        events: &[OutgoingEvent<'_>],
    ) -> (usize, Option<PublishError>) {
        match self {
            Messaging::RabbitMq(b) => b.publish_events(events).await,
            Messaging::Kafka(k) => k.publish_events(events).await,
        }
    }

    /// The acknowledgements of a batch did not come in time: start afresh (RabbitMQ
    /// opens a new channel; Kafka's producer keeps retrying on its own).
    pub async fn after_publish_timeout(&self) {
        if let Messaging::RabbitMq(b) = self {
            b.forget_publish_channel().await;
        }
    }

    /// Consume `subscription` with `handler` until `shutdown`.
    pub(crate) async fn run_consumer<H: MessageHandler>(
        self,
        pool: PgPool,
        prefetch: u16,
        subscription: Subscription,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) {
        match self {
            Messaging::RabbitMq(b) => {
                rabbitmq::consumer::run(b, pool, prefetch, subscription, handler, shutdown).await
            }
            Messaging::Kafka(k) => {
                kafka::consumer::run(k, pool, subscription, handler, shutdown).await
            }
        }
    }

    pub(crate) async fn dead_letter_count(&self, sub: Subscription) -> Result<u64, ApiError> {
        match self {
            Messaging::RabbitMq(b) => rabbitmq::dead_letters::count(b, sub).await,
            Messaging::Kafka(k) => kafka::dead_letters::count(k, sub).await,
        }
    }

    pub(crate) async fn peek_dead_letters(
        &self,
        sub: Subscription,
        limit: u32,
    ) -> Result<Vec<dead_letters::ParkedMessage>, ApiError> {
        match self {
            Messaging::RabbitMq(b) => rabbitmq::dead_letters::peek(b, sub, limit).await,
            Messaging::Kafka(k) => kafka::dead_letters::peek(k, sub, limit).await,
        }
    }

    pub(crate) async fn replay_dead_letters(
        &self,
        sub: Subscription,
        limit: u32,
    ) -> Result<(u32, u64), ApiError> {
        match self {
            Messaging::RabbitMq(b) => rabbitmq::dead_letters::replay(b, sub, limit).await,
            Messaging::Kafka(k) => kafka::dead_letters::replay(k, sub, limit).await,
        }
    }
}
