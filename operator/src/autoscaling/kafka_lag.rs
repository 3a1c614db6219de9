//! Reading consumer-group lag from Kafka, the Kafka counterpart of [`super::broker`].
//!
//! For each group of an autoscaled service (one per subscription, named like its
//! RabbitMQ queue) and the topics asked about (the scaler asks for the event topic:
//! retries wait on purpose until due, as RabbitMQ's retry queues, which are not read
//! either): the end offsets (high watermarks) and the group's committed offsets,
//! summed over the partitions. A partition the group never committed counts from its
//! earliest offset, as the services' consumers start there (`auto.offset.reset =
//! earliest`).
//!
//! [`loads`] makes of two readings what the decision reads from RabbitMQ: lag as the
//! ready messages (Kafka has no unacknowledged ones: an offset is committed once the
//! inbox transaction is), the end offsets' growth per second as the publish rate and
//! the committed offsets' as the ack rate.
//!
//! The operator never joins a group: it only asks the group's coordinator for the
//! committed offsets (`OffsetFetch`), so reading the lag causes no rebalance.
//!
//! A lag the brokers do not tell is never read as 0: a topic listed with an error
//! (its partitions unknown, e.g. no leader yet) or a partition whose committed offset
//! comes back with an error (e.g. the coordinator still loading) makes the reading a
//! [`COUNTS_UNREPORTED`] error, and the scaler holds the replicas. (A topic that does
//! not exist has nothing in it, and a partition the group never committed counts from
//! its start: both are known.)

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::broker::{COUNTS_UNREPORTED, ReadError};
use super::decide::QueueLoad;

/// How long one request to the brokers may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one service's reading may take in all: past it, the read fails (the
/// scaler keeps the replicas) instead of holding up the other services and systems.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Where the brokers are and how the operator logs in.
#[derive(Clone)]
pub struct KafkaReader {
    config: ClientConfig,
    bootstrap: String,
}

impl std::fmt::Debug for KafkaReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaReader")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

/// One group's offsets on one topic, summed over its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffsets {
    pub group: String,
    pub topic: String,
    pub partitions: u32,
    /// Sum of the partitions' end offsets.
    pub end: i64,
    /// Sum of the group's committed offsets (a partition without one: its start).
    pub committed: i64,
}

impl GroupOffsets {
    /// Messages of the topic the group has not finished.
    pub fn lag(&self) -> u64 {
        u64::try_from(self.end.saturating_sub(self.committed)).unwrap_or(0)
    }
}

impl KafkaReader {
    /// A reader of the brokers at `bootstrap`, logging in with `login` (SASL mechanism,
    /// user, password) when given; over `ssl` or `sasl_ssl`, verifying the brokers
    /// against `ca_pem` (PEM certificates) when given, else the system's roots.
    pub fn new(
        bootstrap: &str,
        protocol: &str,
        login: Option<(&str, String, String)>,
        ca_pem: Option<&str>,
    ) -> Result<Self, ReadError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("security.protocol", protocol)
            .set("client.id", "sales-operator")
            .set("enable.auto.commit", "false")
            .set("socket.timeout.ms", "5000")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
        if let Some(pem) = ca_pem {
            config.set("ssl.ca.pem", pem);
        }
        if let Some((mechanism, user, password)) = login {
            config
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", user)
                .set("sasl.password", password);
        }
        Ok(KafkaReader {
            config,
            bootstrap: bootstrap.to_owned(),
        })
    }

    /// The offsets of every `(group, topics)`, read at once on a blocking thread.
    pub async fn read(
        &self,
        groups: Vec<(String, Vec<String>)>,
    ) -> Result<Vec<GroupOffsets>, ReadError> {
        let reader = self.clone();
        tokio::task::spawn_blocking(move || reader.read_blocking(&groups))
            .await
            .map_err(|e| ReadError::new("KafkaUnreachable", format!("the read stopped: {e}")))?
    }

    fn unreachable(&self, what: &str, err: impl std::fmt::Display) -> ReadError {
        ReadError::new(
            "KafkaUnreachable",
            format!("cannot {what} at {}: {err}", self.bootstrap),
        )
    }

    fn client(&self, group: &str) -> Result<BaseConsumer, ReadError> {
        self.config
            .clone()
            .set("group.id", group)
            .create()
            .map_err(|e| ReadError::new("KafkaSettingsInvalid", e.to_string()))
    }

    /// Fails once [`READ_DEADLINE`] has passed since `started`.
    fn in_time(&self, started: std::time::Instant) -> Result<(), ReadError> {
        if started.elapsed() > READ_DEADLINE {
            return Err(ReadError::new(
                "KafkaUnreachable",
                format!(
                    "reading the lag at {} took longer than {} s",
                    self.bootstrap,
                    READ_DEADLINE.as_secs()
                ),
            ));
        }
        Ok(())
    }

    fn read_blocking(
        &self,
        groups: &[(String, Vec<String>)],
    ) -> Result<Vec<GroupOffsets>, ReadError> {
        let started = std::time::Instant::now();
        let client = self.client("sales-operator")?;
        let metadata = client
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| self.unreachable("read the topics", e))?;
        let partitions: HashMap<&str, u32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name(), u32::try_from(t.partitions().len()).unwrap_or(0)))
            .collect();
        // A topic asked about that the brokers list with an error: its partitions, so
        // its lag, are unknown (a topic that does not exist is simply not listed).
        let unlisted: Vec<String> = metadata
            .topics()
            .iter()
            .filter_map(|t| Some((t.name(), t.error()?)))
            .filter(|(name, _)| {
                groups
                    .iter()
                    .any(|(_, topics)| topics.iter().any(|t| t == name))
            })
            .filter(|(_, err)| *err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            .map(|(name, err)| format!("{name} ({err:?})"))
            .collect();
        if !unlisted.is_empty() {
            return Err(ReadError::new(
                COUNTS_UNREPORTED,
                format!(
                    "Kafka at {} does not tell the partitions of {}: the lag is unknown, not 0",
                    self.bootstrap,
                    unlisted.join(", ")
                ),
            ));
        }
        // (start, end) of every partition of every topic asked about.
        let mut marks: HashMap<(String, i32), (i64, i64)> = HashMap::new();
        let mut missing = Vec::new();
        for topic in groups.iter().flat_map(|(_, topics)| topics) {
            let Some(&count) = partitions.get(topic.as_str()).filter(|n| **n > 0) else {
                missing.push(topic.clone());
                continue;
            };
            for partition in 0..i32::try_from(count).unwrap_or(0) {
                if marks.contains_key(&(topic.clone(), partition)) {
                    continue;
                }
                self.in_time(started)?;
                let mark = client
                    .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                    .map_err(|e| self.unreachable(&format!("read the end of {topic}"), e))?;
                marks.insert((topic.clone(), partition), mark);
            }
        }
        let asked = groups.iter().map(|(_, t)| t.len()).sum::<usize>();
        if asked > 0 && missing.len() == asked {
            return Err(ReadError::new(
                "QueuesMissing",
                format!(
                    "Kafka at {} has none of the topics {} (not created yet, or a wrong prefix)",
                    self.bootstrap,
                    missing.join(", ")
                ),
            ));
        }
        let mut out = Vec::new();
        for (group, topics) in groups {
            let mut list = TopicPartitionList::new();
            for topic in topics {
                for partition in 0..partitions.get(topic.as_str()).copied().unwrap_or(0) {
                    list.add_partition(topic, i32::try_from(partition).unwrap_or(0));
                }
            }
            let committed = if list.count() == 0 {
                list
            } else {
                self.in_time(started)?;
                self.client(group)?
                    .committed_offsets(list, REQUEST_TIMEOUT)
                    .map_err(|e| self.unreachable(&format!("read group {group}'s offsets"), e))?
            };
            for topic in topics {
                let count = partitions.get(topic.as_str()).copied().unwrap_or(0);
                let mut offsets = GroupOffsets {
                    group: group.clone(),
                    topic: topic.clone(),
                    partitions: count,
                    end: 0,
                    committed: 0,
                };
                for partition in 0..i32::try_from(count).unwrap_or(0) {
                    let (start, end) = marks
                        .get(&(topic.clone(), partition))
                        .copied()
                        .unwrap_or((0, 0));
                    let found = committed
                        .find_partition(topic, partition)
                        .map(|p| (p.offset(), p.error().err().map(|e| e.to_string())));
                    let done = committed_offset(found, start, end).map_err(|why| {
                        ReadError::new(
                            COUNTS_UNREPORTED,
                            format!(
                                "Kafka at {} did not give group {group}'s committed offset of \
                                 {topic} partition {partition} ({why}): the lag is unknown, not 0",
                                self.bootstrap
                            ),
                        )
                    })?;
                    offsets.end += end;
                    offsets.committed += done;
                }
                out.push(offsets);
            }
        }
        Ok(out)
    }
}

/// Where group's consumers stand in a partition whose offsets run from `start` to
/// `end`, from the answer to `OffsetFetch` for it (`found`: the offset and the
/// partition's error, if any): the committed offset, or `start` when the group never
/// committed one (the consumers begin at the earliest offset). An error, or no answer
/// for the partition, is unknown: `Err` with why.
fn committed_offset(
    found: Option<(Offset, Option<String>)>,
    start: i64,
    end: i64,
) -> Result<i64, String> {
    match found {
        None => Err("no answer for the partition".into()),
        Some((_, Some(err))) => Err(err),
        Some((Offset::Offset(n), None)) => Ok(n.clamp(start, end)),
        Some((_, None)) => Ok(start),
    }
}

/// What the decision reads, from this reading and the one before (`previous`, taken
/// at `then`): lag, and the end and committed offsets' growth per second. Without an
/// earlier reading of a topic, its rates are 0.
pub fn loads(
    now_read: &[GroupOffsets],
    previous: Option<(Timestamp, &[GroupOffsets])>,
    now: Timestamp,
) -> Vec<QueueLoad> {
    now_read
        .iter()
        .map(|o| {
            let before = previous.and_then(|(then, read)| {
                let seconds = now.duration_since(then).as_secs_f64();
                let same = read
                    .iter()
                    .find(|p| p.group == o.group && p.topic == o.topic)?;
                (seconds > 0.0).then_some((same, seconds))
            });
            let rate = |now: i64, then: i64, seconds: f64| {
                (now.saturating_sub(then).max(0) as f64) / seconds
            };
            let (publish_rate, ack_rate) = match before {
                Some((p, seconds)) => (
                    rate(o.end, p.end, seconds),
                    rate(o.committed, p.committed, seconds),
                ),
                None => (0.0, 0.0),
            };
            QueueLoad {
                name: o.topic.clone(),
                ready: o.lag(),
                unacknowledged: 0,
                publish_rate,
                ack_rate,
                consumer_group: Some(o.group.clone()),
                partitions: Some(o.partitions),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn offsets(topic: &str, end: i64, committed: i64) -> GroupOffsets {
        GroupOffsets {
            group: "inventory.paid-order".into(),
            topic: topic.into(),
            partitions: 3,
            end,
            committed,
        }
    }

    /// The reader logs in as the services do: SASL/PLAIN for the managed and external
    /// clusters, SCRAM-SHA-512 for a Strimzi user; both are settings this librdkafka
    /// takes (a mechanism it lacks is refused when the client is made).
    #[test]
    fn the_reader_logs_in_with_plain_or_scram() {
        for mechanism in ["PLAIN", "SCRAM-SHA-512"] {
            let reader = KafkaReader::new(
                "127.0.0.1:1",
                "sasl_plaintext",
                Some((mechanism, "shop-services".into(), "pw".into())),
                None,
            )
            .unwrap();
            assert!(reader.client("g").is_ok(), "{mechanism}");
            assert_eq!(reader.config.get("sasl.mechanism"), Some(mechanism));
        }
        let unknown = KafkaReader::new(
            "127.0.0.1:1",
            "sasl_plaintext",
            Some(("SCRAM-SHA-1024", "u".into(), "p".into())),
            None,
        )
        .unwrap();
        assert!(unknown.client("g").is_err());
    }

    #[test]
    fn lag_and_rates_come_from_two_readings() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:00:15Z".parse().unwrap();
        let first = [offsets("sales.paid-order", 100, 40)];
        let only = loads(&first, None, t0);
        assert_eq!(only[0].ready, 60);
        assert_eq!((only[0].publish_rate, only[0].ack_rate), (0.0, 0.0));
        let second = [offsets("sales.paid-order", 400, 100)];
        let both = loads(&second, Some((t0, &first)), t1);
        assert_eq!(both[0].depth(), 300);
        assert_eq!((both[0].publish_rate, both[0].ack_rate), (20.0, 4.0));
        assert!(both[0].is_growing());
        assert_eq!(both[0].partitions, Some(3));
        assert_eq!(
            both[0].consumer_group.as_deref(),
            Some("inventory.paid-order")
        );
    }

    #[test]
    fn a_committed_offset_not_given_is_unknown_not_the_end() {
        // Committed 40 of 10..100; never committed: from the start.
        assert_eq!(
            committed_offset(Some((Offset::Offset(40), None)), 10, 100),
            Ok(40)
        );
        assert_eq!(
            committed_offset(Some((Offset::Invalid, None)), 10, 100),
            Ok(10)
        );
        // The coordinator answered with an error for the partition, or not at all.
        let loading = Some((
            Offset::Invalid,
            Some("Broker: Coordinator load in progress".to_owned()),
        ));
        assert!(committed_offset(loading, 10, 100).is_err());
        assert!(committed_offset(None, 10, 100).is_err());
    }

    #[test]
    fn a_topic_recreated_smaller_reads_as_no_traffic_not_negative() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let first = [offsets("sales.paid-order", 1000, 1000)];
        let second = [offsets("sales.paid-order", 10, 0)];
        let l = loads(&second, Some((t0, &first)), t1);
        assert_eq!(
            (l[0].ready, l[0].publish_rate, l[0].ack_rate),
            (10, 0.0, 0.0)
        );
        // Committed beyond the end (never happens, but) is no negative lag.
        assert_eq!(offsets("t", 5, 9).lag(), 0);
    }
}
