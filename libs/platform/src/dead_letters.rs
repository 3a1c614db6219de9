//! The dead-letter queues of a service, on its admin port:
//!
//! - `GET  /admin/dead-letters`: each of the service's queues with how many messages
//!   are parked in its dead-letter queue;
//! - `GET  /admin/dead-letters/{queue}?limit=20`: the parked messages (envelope, why
//!   they were parked, attempts), left where they are;
//! - `POST /admin/dead-letters/{queue}/replay?limit=100`: send parked messages back to
//!   their queue for another round of attempts (after fixing what made them fail).
//!
//! `{queue}` is the queue's name without prefix, e.g. `inventory.update-stock`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sales_contracts::topology::{Subscription, Topology};
use serde::{Deserialize, Serialize};

use crate::broker::{
    ATTEMPT_HEADER, AmqpHeader, Broker, DEATH_REASON_HEADER, ORIGIN_QUEUE_HEADER, OutgoingMessage,
    read_headers,
};
use crate::error::{ApiError, Json, Path, Query};

#[derive(Clone)]
struct DeadLetters {
    broker: Broker,
    subscriptions: Vec<Subscription>,
}

/// The admin routes for the dead-letter queues of `subscriptions`.
pub fn router(broker: Broker, subscriptions: Vec<Subscription>) -> Router {
    Router::new()
        .route("/admin/dead-letters", get(summary))
        .route("/admin/dead-letters/{queue}", get(peek))
        .route("/admin/dead-letters/{queue}/replay", post(replay))
        .with_state(DeadLetters {
            broker,
            subscriptions,
        })
}

#[derive(Debug, Serialize)]
pub struct QueueSummary {
    pub queue: String,
    pub dead_letters: u32,
}

#[derive(Debug, Serialize)]
pub struct ParkedMessage {
    /// Why it was parked.
    pub reason: Option<String>,
    /// Attempts made before it was parked.
    pub attempts: Option<i64>,
    /// The message body: the envelope as JSON, or the raw text if it is not JSON.
    pub body: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub struct Limit {
    limit: Option<u32>,
}

impl DeadLetters {
    fn subscription(&self, label: &str) -> Result<Subscription, ApiError> {
        let plain = Topology::default();
        self.subscriptions
            .iter()
            .copied()
            .find(|s| plain.queue(*s) == label)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "this service consumes no queue named {label:?}; GET /admin/dead-letters lists them"
                ))
            })
    }

    async fn channel(&self) -> Result<lapin::Channel, ApiError> {
        let conn = self
            .broker
            .connection()
            .ok_or_else(|| ApiError::unavailable("not connected to RabbitMQ"))?;
        conn.create_channel().await.map_err(ApiError::internal)
    }
}

async fn count(channel: &lapin::Channel, queue: &str) -> Result<u32, ApiError> {
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(q.message_count())
}

async fn summary(State(dl): State<DeadLetters>) -> Result<Json<Vec<QueueSummary>>, ApiError> {
    let channel = dl.channel().await?;
    let plain = Topology::default();
    let mut out = Vec::new();
    for s in &dl.subscriptions {
        out.push(QueueSummary {
            queue: plain.queue(*s),
            dead_letters: count(&channel, &dl.broker.topology().dead_letter_queue(*s)).await?,
        });
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(out))
}

async fn peek(
    State(dl): State<DeadLetters>,
    Path(label): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<ParkedMessage>>, ApiError> {
    let sub = dl.subscription(&label)?;
    let limit = limit.limit.unwrap_or(20).clamp(1, 500);
    let channel = dl.channel().await?;
    let queue = dl.broker.topology().dead_letter_queue(sub);
    let mut out = Vec::new();
    for _ in 0..limit {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(ApiError::internal)?
        else {
            break;
        };
        let headers = read_headers(&message.delivery.properties);
        out.push(ParkedMessage {
            reason: match headers.get(DEATH_REASON_HEADER) {
                Some(AmqpHeader::Text(t)) => Some(t.clone()),
                _ => None,
            },
            attempts: match headers.get(ATTEMPT_HEADER) {
                Some(AmqpHeader::Int(n)) => Some(*n),
                _ => None,
            },
            body: serde_json::from_slice(&message.delivery.data).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&message.delivery.data).into())
            }),
        });
    }
    // Closing the channel hands every message we took back to the queue, in order.
    let _ = channel.close(200, "peeked".into()).await;
    Ok(Json(out))
}

#[derive(Debug, Serialize)]
pub struct Replayed {
    pub queue: String,
    pub replayed: u32,
    pub still_parked: u32,
}

async fn replay(
    State(dl): State<DeadLetters>,
    Path(label): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let sub = dl.subscription(&label)?;
    let limit = limit.limit.unwrap_or(100).clamp(1, 10_000);
    let channel = dl.channel().await?;
    let topology = dl.broker.topology();
    let dead = topology.dead_letter_queue(sub);
    let target = topology.queue(sub);
    // Only what is parked now: a message that fails again is parked again behind
    // these and must not be replayed in a loop.
    let parked_now = count(&channel, &dead).await?;
    let mut replayed = 0;
    for _ in 0..limit.min(parked_now) {
        let Some(message) = channel
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(ApiError::internal)?
        else {
            break;
        };
        let mut headers: BTreeMap<String, AmqpHeader> = read_headers(&message.delivery.properties)
            .into_iter()
            .collect();
        for h in [ATTEMPT_HEADER, DEATH_REASON_HEADER, ORIGIN_QUEUE_HEADER] {
            headers.remove(h);
        }
        let props = &message.delivery.properties;
        let sent = dl
            .broker
            .publish(OutgoingMessage {
                exchange: "",
                routing_key: &target,
                body: &message.delivery.data,
                message_id: props.message_id().as_ref().map(|s| s.to_string()),
                message_type: props.kind().as_ref().map(|s| s.to_string()),
                headers,
            })
            .await;
        match sent {
            Ok(()) => {
                message
                    .delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(ApiError::internal)?;
                replayed += 1;
            }
            Err(err) => {
                let _ = message
                    .delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
                return Err(ApiError::unavailable(format!(
                    "replayed {replayed}, then could not publish: {err}"
                )));
            }
        }
    }
    let still_parked = count(&channel, &dead).await?;
    let _ = channel.close(200, "replayed".into()).await;
    tracing::info!(queue = %label, replayed, still_parked, "dead letters replayed");
    Ok((
        StatusCode::OK,
        Json(Replayed {
            queue: label,
            replayed,
            still_parked,
        }),
    ))
}
