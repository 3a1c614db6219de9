//! The broker topology, in one place: one durable topic exchange, and one durable
//! queue per consuming service and message type, each with its retry queues and its
//! dead-letter queue.
//!
//! ```text
//! sales.events (topic) --create-order--> notification.create-order
//!                      --update-stock--> inventory.update-stock
//!                      ...
//! inventory.update-stock.retry-1 (TTL 1 s)   --expires--> inventory.update-stock
//! inventory.update-stock.retry-2 (TTL 10 s)  --expires--> inventory.update-stock
//! inventory.update-stock.retry-3 (TTL 60 s)  --expires--> inventory.update-stock
//! inventory.update-stock.dead   (parked until listed and replayed)
//! ```
//!
//! On Kafka the same names serve: one topic per event type, and per subscription a
//! consumer group named like its queue, with retry topics and a dead-letter topic.
//!
//! ```text
//! sales.update-stock (topic, key = order id) --> group inventory.update-stock
//! inventory.update-stock.retry-1 / -2 / -3 (topics; due 1 s, 10 s, 60 s after they arrive)
//! inventory.update-stock.dlt    (parked until listed and replayed)
//! ```
//!
//! Every name can carry a prefix (`AMQP_PREFIX`, `KAFKA_TOPIC_PREFIX`) so several
//! systems, or tests, can share one broker without seeing each other's messages.
//!
//! On RabbitMQ the queues are classic (one node's) or quorum (`AMQP_QUEUE_TYPE`:
//! replicated over a cluster's nodes, so they survive a node).

use std::time::Duration;

use crate::events::MessageType;

/// The exchange every event is published to, with its type as the routing key.
pub const EXCHANGE: &str = "sales.events";

/// How long a failed message waits before its next attempt. After the last one it
/// is parked in the dead-letter queue.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// A service's subscription to one message type; it owns one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub service: &'static str,
    pub message_type: MessageType,
}

const fn sub(service: &'static str, message_type: MessageType) -> Subscription {
    Subscription {
        service,
        message_type,
    }
}

/// Every queue in the system: who consumes what.
pub const SUBSCRIPTIONS: &[Subscription] = &[
    sub("inventory", MessageType::ProductCreated),
    sub("inventory", MessageType::UpdateStock),
    sub("inventory", MessageType::PaidOrder),
    sub("inventory", MessageType::RestoreCanceledItem),
    sub("notification", MessageType::CreateOrder),
    sub("notification", MessageType::PaidOrder),
    sub("notification", MessageType::CancelOrder),
    sub("notification", MessageType::OrderFailed),
    sub("notification", MessageType::ShipmentShipped),
    sub("notification", MessageType::ShipmentDelivered),
    sub("shipping", MessageType::PaidOrder),
    sub("order", MessageType::ShipmentShipped),
    sub("order", MessageType::ShipmentDelivered),
];

/// The subscriptions of one service.
pub fn subscriptions_of(service: &str) -> impl Iterator<Item = Subscription> + '_ {
    SUBSCRIPTIONS
        .iter()
        .copied()
        .filter(move |s| s.service == service)
}

/// How RabbitMQ keeps the queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    /// On one node: the node's loss stops the queues until it is back.
    #[default]
    Classic,
    /// Replicated over the cluster's nodes (Raft): a majority keeps them going.
    Quorum,
}

impl QueueType {
    /// The value of `x-queue-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            other => Err(format!(
                "unknown queue type {other:?}: expected classic or quorum"
            )),
        }
    }
}

/// Names of the exchange and queues under an optional prefix, and the queues' type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    queue_type: QueueType,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Topology {
            prefix: prefix.into(),
            queue_type: QueueType::Classic,
        }
    }

    /// The same names, with queues of `queue_type`.
    pub fn with_queue_type(self, queue_type: QueueType) -> Self {
        Topology { queue_type, ..self }
    }

    pub fn queue_type(&self) -> QueueType {
        self.queue_type
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn exchange(&self) -> String {
        format!("{}{EXCHANGE}", self.prefix)
    }

    /// The queue a subscription consumes from: `inventory.update-stock`.
    pub fn queue(&self, subscription: Subscription) -> String {
        format!(
            "{}{}.{}",
            self.prefix,
            subscription.service,
            subscription.message_type.as_str()
        )
    }

    /// Retry queue `tier` (0-based) of a queue: `inventory.update-stock.retry-1`.
    pub fn retry_queue(&self, subscription: Subscription, tier: usize) -> String {
        format!("{}.retry-{}", self.queue(subscription), tier + 1)
    }

    /// Where messages that failed every attempt, or could not be read, are parked.
    pub fn dead_letter_queue(&self, subscription: Subscription) -> String {
        format!("{}.dead", self.queue(subscription))
    }

    /// Kafka: the topic of one event type, `sales.update-stock`; `message_type` is
    /// the routing key form ([`MessageType::as_str`]).
    pub fn event_topic(&self, message_type: &str) -> String {
        format!("{}sales.{message_type}", self.prefix)
    }

    /// Kafka: the consumer group of a subscription, named like its queue.
    pub fn consumer_group(&self, subscription: Subscription) -> String {
        self.queue(subscription)
    }

    /// Kafka: the dead-letter topic of a subscription, `inventory.update-stock.dlt`.
    pub fn dead_letter_topic(&self, subscription: Subscription) -> String {
        format!("{}.dlt", self.queue(subscription))
    }

    /// Kafka: every topic of the system: one per event type, and each subscription's
    /// retry and dead-letter topics.
    pub fn kafka_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = MessageType::ALL
            .iter()
            .map(|t| self.event_topic(t.as_str()))
            .collect();
        for sub in SUBSCRIPTIONS {
            topics.extend((0..RETRY_DELAYS.len()).map(|tier| self.retry_queue(*sub, tier)));
            topics.push(self.dead_letter_topic(*sub));
        }
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = Topology::new("t1.");
        let s = sub("inventory", MessageType::UpdateStock);
        assert_eq!(t.exchange(), "t1.sales.events");
        assert_eq!(t.queue(s), "t1.inventory.update-stock");
        assert_eq!(t.retry_queue(s, 0), "t1.inventory.update-stock.retry-1");
        assert_eq!(t.dead_letter_queue(s), "t1.inventory.update-stock.dead");
        assert_eq!(t.event_topic("update-stock"), "t1.sales.update-stock");
        assert_eq!(t.consumer_group(s), "t1.inventory.update-stock");
        assert_eq!(t.dead_letter_topic(s), "t1.inventory.update-stock.dlt");
        let topics = t.kafka_topics();
        assert_eq!(
            topics.len(),
            MessageType::ALL.len() + SUBSCRIPTIONS.len() * (RETRY_DELAYS.len() + 1)
        );
        assert!(topics.contains(&"t1.inventory.update-stock.retry-3".to_owned()));
    }

    #[test]
    fn queue_types_read_as_rabbitmq_spells_them() {
        assert_eq!("quorum".parse(), Ok(QueueType::Quorum));
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert!("Quorum".parse::<QueueType>().is_err());
        let t = Topology::new("p.").with_queue_type(QueueType::Quorum);
        assert_eq!((t.prefix(), t.queue_type().as_str()), ("p.", "quorum"));
        assert_eq!(Topology::new("p.").queue_type(), QueueType::Classic);
    }

    #[test]
    fn every_subscription_is_unique() {
        let t = Topology::default();
        let mut names: Vec<String> = SUBSCRIPTIONS.iter().map(|s| t.queue(*s)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SUBSCRIPTIONS.len());
    }
}
