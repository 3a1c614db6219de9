//! Queue-depth autoscaling of the consumers (`docs/operator/autoscaling.md`).
//!
//! - [`decide`]: **where the replica count is picked**, a pure function of the policy,
//!   the queues as read, the running replicas, the recent recommendations and the
//!   time it is given;
//! - [`broker`]: reading each queue's ready and unacknowledged messages and its publish
//!   and ack rates from RabbitMQ's management API;
//! - [`kafka_lag`]: the same numbers on Kafka, from each consumer group's lag;
//! - [`scaler`]: the loop that, every tick, reads the queues of every autoscaled
//!   consumer, decides, writes `spec.replicas` of the consumer Deployment (its own
//!   field manager), the status, Events and metrics;
//! - [`deletion_cost`]: before a scale-down, the consumer pods' deletion costs (the
//!   messages each holds), so idle pods are removed first;
//! - [`simulate`]: replays a load profile through [`decide::decide`]: the replicas and
//!   depth over time (`sales-operator simulate`; `cargo xtask autoscaling-chart` draws
//!   them).

pub mod broker;
pub mod decide;
pub mod deletion_cost;
pub mod kafka_lag;
pub mod scaler;
pub mod simulate;
pub mod source;
