//! Kafka's side of the dead-letter endpoints ([`crate::messaging::dead_letters`]).
//!
//! A subscription's parked messages are in its `.dlt` topic. What is still parked is
//! what lies past the offsets of the topic's own consumer group,
//! `<subscription>.dead-letters`: peeking reads from there without committing;
//! replaying copies each message to the subscription's first retry topic (it comes
//! back after 1 s, with all its attempts), and commits past it once the broker has
//! the copy. The dead-letter topic keeps everything for its retention, so a replayed
//! message can still be read with any Kafka tool.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::{Message, Offset, TopicPartitionList};
use sales_contracts::topology::Subscription;

use super::KafkaBus;
use super::consumer::text_headers;
use crate::error::ApiError;
use crate::messaging::dead_letters::{ParkedMessage, parked_body};
use crate::messaging::{ATTEMPT_HEADER, DEATH_REASON_HEADER, PARKING_HEADERS};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the parked messages of one dead-letter topic start and end, per partition.
struct Parked {
    topic: String,
    consumer: BaseConsumer,
    /// (partition, first parked offset, end offset).
    ranges: Vec<(i32, i64, i64)>,
}

impl Parked {
    fn count(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(_, from, to)| (to - from).max(0) as u64)
            .sum()
    }

    /// Read up to `limit` parked messages, partition by partition, from the start.
    fn read(&self, limit: u32) -> Result<Vec<OwnedMessage>, String> {
        let mut assignment = TopicPartitionList::new();
        for (partition, from, to) in &self.ranges {
            if to > from {
                assignment
                    .add_partition_offset(&self.topic, *partition, Offset::Offset(*from))
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut out = Vec::new();
        if assignment.count() == 0 {
            return Ok(out);
        }
        self.consumer
            .assign(&assignment)
            .map_err(|e| e.to_string())?;
        let wanted = self.count().min(u64::from(limit));
        let deadline = std::time::Instant::now() + TIMEOUT;
        while (out.len() as u64) < wanted && std::time::Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    let end = self
                        .ranges
                        .iter()
                        .find(|(p, _, _)| *p == message.partition())
                        .map_or(0, |(_, _, to)| *to);
                    // Only what was parked when we looked: later ones wait for next time.
                    if message.offset() < end {
                        out.push(message.detach());
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => {}
            }
        }
        Ok(out)
    }

    /// Mark everything up to and including `message` as no longer parked.
    fn commit_past(&self, message: &OwnedMessage) -> Result<(), String> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &self.topic,
            message.partition(),
            Offset::Offset(message.offset() + 1),
        )
        .map_err(|e| e.to_string())?;
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| e.to_string())
    }
}

/// Look up the parked range of `sub`'s dead-letter topic (blocking: call it off the runtime).
fn look_up(bus: &KafkaBus, sub: Subscription) -> Result<Parked, String> {
    let topic = bus.topology().dead_letter_topic(sub);
    let group = format!("{}.dead-letters", bus.topology().consumer_group(sub));
    let consumer: BaseConsumer = bus
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), TIMEOUT)
        .map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("the dead-letter topic {topic} does not exist yet"));
    }
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(&topic, *p);
    }
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .map_err(|e| e.to_string())?;
    let mut ranges = Vec::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, p, TIMEOUT)
            .map_err(|e| e.to_string())?;
        let from = match committed.find_partition(&topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        ranges.push((p, from, high));
    }
    Ok(Parked {
        topic,
        consumer,
        ranges,
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::unavailable(format!("Kafka: {e}")))
}

/// How many messages of `sub` are parked.
pub(crate) async fn count(bus: &KafkaBus, sub: Subscription) -> Result<u64, ApiError> {
    let bus = bus.clone();
    blocking(move || look_up(&bus, sub).map(|p| p.count())).await
}

/// Up to `limit` parked messages of `sub`, left where they are.
pub(crate) async fn peek(
    bus: &KafkaBus,
    sub: Subscription,
    limit: u32,
) -> Result<Vec<ParkedMessage>, ApiError> {
    let bus = bus.clone();
    let messages = blocking(move || look_up(&bus, sub)?.read(limit)).await?;
    Ok(messages.iter().map(describe).collect())
}

fn describe(message: &OwnedMessage) -> ParkedMessage {
    let headers = text_headers(message);
    ParkedMessage {
        reason: headers.get(DEATH_REASON_HEADER).cloned(),
        attempts: headers.get(ATTEMPT_HEADER).and_then(|n| n.parse().ok()),
        body: parked_body(message.payload().unwrap_or_default()),
    }
}

/// Send up to `limit` of the messages parked now back to `sub`'s consumers (through
/// its first retry topic). Returns how many went back and how many are still parked.
pub(crate) async fn replay(
    bus: &KafkaBus,
    sub: Subscription,
    limit: u32,
) -> Result<(u32, u64), ApiError> {
    let _one_at_a_time = bus.inner.replaying.lock().await;
    let reader = bus.clone();
    let (parked, messages) = blocking(move || {
        let parked = look_up(&reader, sub)?;
        let messages = parked.read(limit)?;
        Ok((parked, messages))
    })
    .await?;
    let target = bus.topology().retry_queue(sub, 0);
    let parked = std::sync::Arc::new(parked);
    let mut replayed = 0;
    for message in messages {
        let mut headers = OwnedHeaders::new();
        for (key, value) in text_headers(&message) {
            if !PARKING_HEADERS.contains(&key.as_str()) {
                headers = headers.insert(Header {
                    key: &key,
                    value: Some(value.as_str()),
                });
            }
        }
        if let Err(err) = bus
            .send(&target, message.key(), message.payload(), headers)
            .await
        {
            // The consumer closes (and leaves its group) off the runtime.
            let _ = tokio::task::spawn_blocking(move || drop(parked)).await;
            return Err(ApiError::unavailable(format!(
                "replayed {replayed}, then could not publish: {err}"
            )));
        }
        let committer = parked.clone();
        blocking(move || committer.commit_past(&message)).await?;
        replayed += 1;
    }
    let bus = bus.clone();
    let still = blocking(move || {
        drop(parked);
        look_up(&bus, sub).map(|p| p.count())
    })
    .await?;
    Ok((replayed, still))
}
