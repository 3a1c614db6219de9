//! The Kafka consumer of one subscription: a member of the subscription's consumer
//! group, reading its event topic and its three retry topics.
//!
//! - A message's offset is stored only once it is settled: its effect committed with
//!   the inbox row, or its copy acknowledged in a retry or the dead-letter topic. Stored
//!   offsets are committed every second, on a rebalance and on shutdown; a crash
//!   before that replays a few messages, which the inbox drops.
//! - A message that cannot be settled (its copy not acknowledged) is read again: the
//!   consumer seeks back to it. Nothing is skipped, and the partition goes on once
//!   the broker takes the copy.
//! - A retry topic's message is due its tier's delay after it arrived. Until then its
//!   partition is paused (only that one), and resumed when it is due.
//! - Rebalancing is cooperative (`cooperative-sticky`): members joining or leaving
//!   move only the partitions that must move.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use sales_contracts::topology::{RETRY_DELAYS, Subscription};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::KafkaBus;
use crate::messaging::handling::{ConsumerTrace, Handling, MessageHandler, Outcome, Verdict};
use crate::messaging::{ATTEMPT_HEADER, DEATH_REASON_HEADER, ORIGIN_HEADER, PARKING_HEADERS};
use crate::metrics::Metrics;

/// Counts rebalances and reads the consumer lag from librdkafka's statistics.
struct GroupContext {
    metrics: Metrics,
    group: String,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            let lag: i64 = stats
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                .map(|p| p.consumer_lag)
                .sum();
            self.metrics
                .kafka_consumer_lag
                .with_label_values(&[self.group.as_str(), topic.as_str()])
                .set(lag);
        }
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (kind, partitions) = match rebalance {
            Rebalance::Assign(tpl) => ("assign", describe(tpl)),
            Rebalance::Revoke(tpl) => ("revoke", describe(tpl)),
            Rebalance::Error(e) => ("error", e.to_string()),
        };
        tracing::info!(group = %self.group, kind, %partitions, "consumer group rebalanced");
        self.metrics
            .kafka_rebalances
            .with_label_values(&[self.group.as_str(), kind])
            .inc();
    }
}

/// `topic[0,1]` for a list of partitions.
fn describe(partitions: &TopicPartitionList) -> String {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for element in partitions.elements() {
        by_topic
            .entry(element.topic().to_owned())
            .or_default()
            .push(element.partition());
    }
    by_topic
        .iter()
        .map(|(topic, ps)| format!("{topic}{ps:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Consume `subscription` until `shutdown`.
pub(crate) async fn run<H: MessageHandler>(
    bus: KafkaBus,
    pool: PgPool,
    subscription: Subscription,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    let topology = bus.topology();
    let member = Member {
        group: topology.consumer_group(subscription),
        topic: topology.event_topic(subscription.message_type.as_str()),
        retry_topics: (0..RETRY_DELAYS.len())
            .map(|tier| topology.retry_queue(subscription, tier))
            .collect(),
        dead_letter_topic: topology.dead_letter_topic(subscription),
        handling: Handling::new(
            pool,
            bus.metrics().clone(),
            subscription,
            handler,
            ConsumerTrace {
                system: "kafka",
                destination: topology.event_topic(subscription.message_type.as_str()),
                group: Some(topology.consumer_group(subscription)),
            },
        ),
        bus,
    };
    // The topics must exist before the group subscribes to them.
    while !shutdown.is_cancelled() && !member.bus.wait_connected(Duration::from_secs(5)).await {}
    if shutdown.is_cancelled() {
        return;
    }
    match member.consumer() {
        Ok(consumer) => member.consume(consumer, &shutdown).await,
        Err(err) => {
            tracing::error!(group = %member.group, error = %err, "cannot start the Kafka consumer")
        }
    }
}

struct Member<H> {
    bus: KafkaBus,
    group: String,
    topic: String,
    retry_topics: Vec<String>,
    dead_letter_topic: String,
    handling: Handling<H>,
}

type GroupConsumer = StreamConsumer<GroupContext>;

impl<H: MessageHandler> Member<H> {
    fn consumer(&self) -> anyhow::Result<GroupConsumer> {
        let consumer: GroupConsumer = self
            .bus
            .client_config()
            .set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "10000")
            .set("statistics.interval.ms", "5000")
            .create_with_context(GroupContext {
                metrics: self.bus.metrics().clone(),
                group: self.handling.label.clone(),
            })?;
        let mut topics: Vec<&str> = vec![self.topic.as_str()];
        topics.extend(self.retry_topics.iter().map(String::as_str));
        consumer.subscribe(&topics)?;
        Ok(consumer)
    }

    async fn consume(&self, consumer: GroupConsumer, shutdown: &CancellationToken) {
        tracing::info!(group = %self.group, topic = %self.topic, "consuming");
        self.handling.set_active(true);
        // Retry partitions paused until their head message is due.
        let mut paused: HashMap<(String, i32), Instant> = HashMap::new();
        loop {
            let next_due = paused.values().min().copied();
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(next_due) => {
                    resume_due(&consumer, &mut paused);
                    continue;
                }
                message = consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    self.process(&consumer, &message, &mut paused, shutdown)
                        .await
                }
                Err(err) => {
                    // librdkafka reconnects by itself; this is only news.
                    tracing::warn!(group = %self.group, error = %err, "Kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        self.handling.set_active(false);
        // Leave the group: the revoke commits the stored offsets. Off the runtime,
        // since closing waits for the group coordinator's answer.
        let _ = tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        })
        .await;
        tracing::info!(group = %self.group, "consumer stopped");
    }

    async fn process(
        &self,
        consumer: &GroupConsumer,
        message: &BorrowedMessage<'_>,
        paused: &mut HashMap<(String, i32), Instant>,
        shutdown: &CancellationToken,
    ) {
        if let Some(tier) = self.retry_topics.iter().position(|t| t == message.topic()) {
            let delay = RETRY_DELAYS[tier].as_millis() as i64;
            let arrived = message.timestamp().to_millis().unwrap_or(0);
            // At most the tier's delay, whatever the producer's clock said.
            let due_in = (arrived + delay - now_millis()).min(delay);
            if due_in > 0 && hold_until_due(consumer, message) {
                paused.insert(
                    (message.topic().to_owned(), message.partition()),
                    Instant::now() + Duration::from_millis(due_in.unsigned_abs()),
                );
                return;
            }
        }
        let headers = text_headers(message);
        let attempts = headers
            .get(ATTEMPT_HEADER)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let body = message.payload().unwrap_or_default();
        self.handling
            .process(body, attempts, &headers, shutdown, |verdict| {
                self.settle(consumer, message, verdict)
            })
            .await;
    }

    /// Store the offset once the message is settled; seek back to it if not.
    async fn settle(
        &self,
        consumer: &GroupConsumer,
        message: &BorrowedMessage<'_>,
        verdict: Option<Verdict>,
    ) -> Option<Outcome> {
        // Shut down while the database was away: not settled; the group's next owner
        // of the partition reads it again.
        let verdict = verdict?;
        let forwarded = match &verdict {
            Verdict::Done(_) => Ok(()),
            Verdict::Retry { tier, attempt } => {
                let topic = self.retry_topics.get(*tier)?;
                self.forward(message, topic, Some(*attempt), None).await
            }
            Verdict::DeadLetter { reason, attempts } => {
                self.forward(message, &self.dead_letter_topic, *attempts, Some(reason))
                    .await
            }
        };
        if let Err(err) = forwarded {
            tracing::warn!(group = %self.group, error = %err, "could not forward the message; reading it again");
            let _ = consumer.seek(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset()),
                Duration::ZERO,
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            return None;
        }
        if let Err(err) =
            consumer.store_offset(message.topic(), message.partition(), message.offset())
        {
            // The partition moved to another member meanwhile: it reads the message
            // again, and the inbox drops it.
            tracing::info!(group = %self.group, error = %err, "offset not stored (partition reassigned)");
        }
        Some(verdict.outcome())
    }

    /// Copy the message to `topic` (retry or dead-letter) and wait for the broker.
    async fn forward(
        &self,
        message: &BorrowedMessage<'_>,
        topic: &str,
        attempt: Option<usize>,
        death_reason: Option<&str>,
    ) -> Result<(), crate::messaging::PublishError> {
        let mut headers = OwnedHeaders::new();
        for (key, value) in text_headers(message) {
            if PARKING_HEADERS.contains(&key.as_str()) {
                continue;
            }
            headers = headers.insert(Header {
                key: &key,
                value: Some(value.as_str()),
            });
        }
        if let Some(n) = attempt {
            headers = headers.insert(Header {
                key: ATTEMPT_HEADER,
                value: Some(n.to_string().as_str()),
            });
        }
        if let Some(reason) = death_reason {
            headers = headers
                .insert(Header {
                    key: DEATH_REASON_HEADER,
                    value: Some(truncated(reason, MAX_REASON_BYTES)),
                })
                .insert(Header {
                    key: ORIGIN_HEADER,
                    value: Some(message.topic()),
                });
        }
        self.bus
            .send(topic, message.key(), message.payload(), headers)
            .await
    }
}

/// A message's headers that are text (W3C trace context, attempts).
pub(crate) fn text_headers<M: Message>(message: &M) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                out.insert(header.key.to_owned(), value.to_owned());
            }
        }
    }
    out
}

/// Pause the message's partition and seek back to the message, so it is read again
/// when the partition resumes. `false` if the seek failed: then the message must be
/// handled now (resuming after a failed seek would skip it).
fn hold_until_due(consumer: &GroupConsumer, message: &BorrowedMessage<'_>) -> bool {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(message.topic(), message.partition());
    if consumer.pause(&tpl).is_err() {
        return false;
    }
    let sought = consumer.seek(
        message.topic(),
        message.partition(),
        Offset::Offset(message.offset()),
        Duration::ZERO,
    );
    if sought.is_err() {
        let _ = consumer.resume(&tpl);
        return false;
    }
    true
}

/// Dead-letter reasons are cut to this many bytes, so the copy is never refused for
/// its size when the original was taken.
const MAX_REASON_BYTES: usize = 1024;

fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}

fn resume_due(consumer: &GroupConsumer, paused: &mut HashMap<(String, i32), Instant>) {
    let now = Instant::now();
    paused.retain(|(topic, partition), due| {
        if *due > now {
            return true;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, *partition);
        let _ = consumer.resume(&tpl);
        false
    });
}
