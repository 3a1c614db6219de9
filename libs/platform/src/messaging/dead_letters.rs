//! The dead letters of a service, on its admin port, the same on every transport:
//!
//! - `GET  /admin/dead-letters`: each of the service's subscriptions with how many
//!   messages are parked for it;
//! - `GET  /admin/dead-letters/{queue}?limit=20`: the parked messages (envelope, why
//!   they were parked, attempts), left where they are;
//! - `POST /admin/dead-letters/{queue}/replay?limit=100`: send parked messages back
//!   for another round of attempts (after fixing what made them fail).
//!
//! `{queue}` is the subscription's name without prefix, e.g. `inventory.update-stock`.
//! On RabbitMQ the messages are parked in its `.dead` queue, on Kafka in its `.dlt`
//! topic.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sales_contracts::topology::{Subscription, Topology};
use serde::{Deserialize, Serialize};

use super::Messaging;
use crate::error::{ApiError, Json, Path, Query};

#[derive(Clone)]
struct DeadLetters {
    messaging: Messaging,
    subscriptions: Vec<Subscription>,
}

/// The admin routes for the dead letters of `subscriptions`.
pub fn router(messaging: Messaging, subscriptions: Vec<Subscription>) -> Router {
    Router::new()
        .route("/admin/dead-letters", get(summary))
        .route("/admin/dead-letters/{queue}", get(peek))
        .route("/admin/dead-letters/{queue}/replay", post(replay))
        .with_state(DeadLetters {
            messaging,
            subscriptions,
        })
}

#[derive(Debug, Serialize)]
pub struct QueueSummary {
    pub queue: String,
    pub dead_letters: u64,
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

/// A parked body as JSON if it is JSON, else as text.
pub(crate) fn parked_body(data: &[u8]) -> serde_json::Value {
    serde_json::from_slice(data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(data).into()))
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
}

async fn summary(State(dl): State<DeadLetters>) -> Result<Json<Vec<QueueSummary>>, ApiError> {
    let plain = Topology::default();
    let mut out = Vec::new();
    for s in &dl.subscriptions {
        out.push(QueueSummary {
            queue: plain.queue(*s),
            dead_letters: dl.messaging.dead_letter_count(*s).await?,
        });
    }
    Ok(Json(out))
}

async fn peek(
    State(dl): State<DeadLetters>,
    Path(label): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<ParkedMessage>>, ApiError> {
    let sub = dl.subscription(&label)?;
    let limit = limit.limit.unwrap_or(20).clamp(1, 500);
    Ok(Json(dl.messaging.peek_dead_letters(sub, limit).await?))
}

#[derive(Debug, Serialize)]
pub struct Replayed {
    pub queue: String,
    pub replayed: u32,
    pub still_parked: u64,
}

async fn replay(
    State(dl): State<DeadLetters>,
    Path(label): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let sub = dl.subscription(&label)?;
    let limit = limit.limit.unwrap_or(100).clamp(1, 10_000);
    let (replayed, still_parked) = dl.messaging.replay_dead_letters(sub, limit).await?;
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
