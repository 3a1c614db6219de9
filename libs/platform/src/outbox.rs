//! The transactional outbox: an event is written to the `outbox` table in the same
//! transaction as the change it announces, and the relay publishes it to the broker,
//! deleting the row only after the broker confirms. If the broker or the service dies
//! between commit and publish, the event waits in the table and goes out later: at
//! least once, never lost. Consumers drop the duplicates (see [`crate::consumer`]).
//!
//! Several replicas can relay at once: each batch is claimed with
//! `for update skip locked`. Events of one batch go out in commit order.
//!
//! A batch that the broker does not confirm within [`PUBLISH_TIMEOUT`] counts as not
//! published (a blocked or frozen broker cannot hold the relay, or its row locks,
//! for ever). An event the broker refuses (a negative confirm) [`PARK_AFTER`] times
//! is parked: the events behind it go on, `outbox_parked_messages` counts it (alert
//! `SalesOutboxEventParked`), and it is tried again every [`RETRY_PARKED_AFTER`]. A
//! broker that is down or slow never parks anything: only a refusal counts.

use std::collections::HashMap;
use std::time::Duration;

use sales_contracts::{Envelope, Event};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use opentelemetry_semantic_conventions::attribute::{
    MESSAGING_BATCH_MESSAGE_COUNT, MESSAGING_DESTINATION_NAME, MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME, MESSAGING_OPERATION_TYPE, MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
    MESSAGING_SYSTEM,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::messaging::{Messaging, OutgoingEvent, PublishError};
use crate::telemetry;

const NOTIFY_CHANNEL: &str = "outbox";
const BATCH: i64 = 200;
/// Relays wake on `NOTIFY`; this is the fallback if a notification is missed.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How often the relay reads the outbox's backlog for its gauges.
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// How long the broker has to confirm a batch.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Refusals of one event after which it is parked.
pub const PARK_AFTER: i32 = 5;
/// How long a parked event waits before it is tried again.
pub const RETRY_PARKED_AFTER: Duration = Duration::from_secs(300);

/// Write `event` to the outbox. Call it inside the transaction that makes the change
/// the event announces: it is published after that transaction commits.
pub async fn enqueue<E: Event>(
    tx: &mut PgConnection,
    producer: &str,
    event: E,
) -> Result<Envelope, sqlx::Error> {
    let envelope = Envelope::new(producer, event).into_json();
    enqueue_envelope(tx, &envelope).await?;
    Ok(envelope)
}

/// Write an already built envelope to the outbox (inside the caller's transaction).
#[tracing::instrument(name = "db outbox insert", skip_all, fields(otel.kind = "client", db.system = "postgresql", message_type = %envelope.message_type))]
pub async fn enqueue_envelope(
    tx: &mut PgConnection,
    envelope: &Envelope,
) -> Result<(), sqlx::Error> {
    let trace_headers = telemetry::current_trace_headers();
    // One round trip: the row, and the wake-up the relays get when it commits.
    sqlx::query(
        "with queued as (
             insert into outbox (message_id, message_type, envelope, trace_headers)
             values ($1, $2, $3, $4) returning 1)
         select pg_notify($5, '') from queued",
    )
    .bind(envelope.message_id)
    .bind(envelope.message_type.as_str())
    .bind(sqlx::types::Json(envelope))
    .bind(sqlx::types::Json(&trace_headers))
    .bind(NOTIFY_CHANNEL)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct PendingEvent {
    id: i64,
    message_id: uuid::Uuid,
    message_type: String,
    envelope: sqlx::types::Json<serde_json::Value>,
    trace_headers: sqlx::types::Json<HashMap<String, String>>,
}

/// Publishes outbox events until `shutdown`; run one per service process.
///
/// A pass runs when a commit's `NOTIFY` arrives (or every [`POLL_EVERY`]); the
/// notifications already received are taken together first, since one pass publishes
/// every event they announce. The backlog gauges are read at most every
/// [`METRICS_EVERY`], not on every pass.
pub async fn run_relay(pool: PgPool, broker: Messaging, shutdown: CancellationToken) {
    let mut listener: Option<PgListener> = None;
    let mut backoff = Duration::from_millis(100);
    let mut metrics_read: Option<std::time::Instant> = None;
    while !shutdown.is_cancelled() {
        if let Some(l) = listener.as_mut() {
            while l.next_buffered().is_some() {}
        }
        let outcome = relay_pending(&pool, &broker).await;
        if outcome.is_err() || metrics_read.is_none_or(|at| at.elapsed() >= METRICS_EVERY) {
            update_backlog_metrics(&pool, &broker).await;
            metrics_read = Some(std::time::Instant::now());
        }
        if let Err(err) = outcome {
            broker.metrics().outbox_publish_failures.inc();
            tracing::warn!(error = %err, retry_in = ?backoff, "outbox relay could not publish");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(100);
        if listener.is_none() {
            listener = listen(&pool).await;
        }
        let woken = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.map(|_| ()),
                None => {
                    tokio::time::sleep(POLL_EVERY).await;
                    Ok(())
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = woken => if r.is_err() { listener = None },
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
    // Last pass so events committed during shutdown go out if the broker is there.
    if let Err(err) = relay_pending(&pool, &broker).await {
        tracing::info!(error = %err, "outbox events left for the next start");
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(NOTIFY_CHANNEL).await.ok()?;
    Some(listener)
}

/// Publish every pending event, batch by batch. Returns how many were published.
pub async fn relay_pending(pool: &PgPool, broker: &Messaging) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let published = relay_batch(pool, broker).await?;
        total += published;
        if published < BATCH as usize {
            return Ok(total);
        }
    }
}

async fn relay_batch(pool: &PgPool, broker: &Messaging) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let batch: Vec<PendingEvent> = sqlx::query_as(
        "select id, message_id, message_type, envelope, trace_headers
         from outbox
         where parked_at is null or parked_at < now() - make_interval(secs => $2)
         order by id limit $1 for update skip locked",
    )
    .bind(BATCH)
    .bind(RETRY_PARKED_AFTER.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    if batch.is_empty() {
        return Ok(0);
    }
    if !broker.is_connected() {
        anyhow::bail!("{} is not connected", broker.name());
    }
    let bodies: Vec<Vec<u8>> = batch
        .iter()
        .map(|e| serde_json::to_vec(&e.envelope.0))
        .collect::<Result<_, _>>()?;
    // One producer span per event (OpenTelemetry's `publish {destination}`), in the
    // trace of the change that wrote it; its context (not the stored one) goes on the
    // message, so the consumers' spans are children of the publish.
    let exchange = broker.topology().exchange();
    let spans: Vec<tracing::Span> = batch
        .iter()
        .map(|event| {
            let (destination, routing_key) = match broker {
                Messaging::RabbitMq(_) => (exchange.clone(), Some(event.message_type.as_str())),
                Messaging::Kafka(_) => (broker.topology().event_topic(&event.message_type), None),
            };
            let span = tracing::info_span!(
                parent: None,
                "publish",
                otel.kind = "producer",
                otel.name = format!("publish {destination}"),
                { MESSAGING_SYSTEM } = broker.system(),
                { MESSAGING_DESTINATION_NAME } = %destination,
                { MESSAGING_OPERATION_TYPE } = "send",
                { MESSAGING_OPERATION_NAME } = "publish",
                { MESSAGING_MESSAGE_ID } = %event.message_id,
                { MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY } = routing_key,
            );
            telemetry::continue_trace(&span, &event.trace_headers.0);
            span
        })
        .collect();
    let events: Vec<OutgoingEvent<'_>> = batch
        .iter()
        .zip(&bodies)
        .zip(&spans)
        .map(|((event, body), span)| OutgoingEvent {
            message_type: &event.message_type,
            key: event
                .envelope
                .0
                .get("correlation_id")
                .and_then(|k| k.as_str())
                .unwrap_or_default(),
            body,
            message_id: event.message_id.to_string(),
            headers: telemetry::trace_headers_of(span).into_iter().collect(),
        })
        .collect();
    // The batch is no request's: a trace of its own, linked to each event's publish.
    let span = tracing::info_span!(
        parent: None,
        "outbox.relay",
        otel.name = "outbox relay",
        { MESSAGING_SYSTEM } = broker.system(),
        { MESSAGING_BATCH_MESSAGE_COUNT } = batch.len(),
    );
    for event_span in &spans {
        let context = event_span.context();
        let linked = opentelemetry::trace::TraceContextExt::span(&context)
            .span_context()
            .clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
    let (confirmed, failure) =
        match tokio::time::timeout(PUBLISH_TIMEOUT, broker.publish_events(&events))
            .instrument(span)
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => {
                // Which of them the broker took is unknown: all go again (consumers
                // drop duplicates), afresh.
                broker.after_publish_timeout().await;
                (
                    0,
                    Some(PublishError::Timeout {
                        broker: broker.name(),
                        timeout: PUBLISH_TIMEOUT,
                    }),
                )
            }
        };
    drop(spans);
    let published: Vec<i64> = batch[..confirmed].iter().map(|e| e.id).collect();
    sqlx::query("delete from outbox where id = any($1)")
        .bind(&published)
        .execute(&mut *tx)
        .await?;
    if let Some(err) = &failure {
        let failed: Vec<i64> = batch[confirmed..].iter().map(|e| e.id).collect();
        sqlx::query(
            "update outbox set attempts = attempts + 1, last_error = $2, updated_at = now()
             where id = any($1)",
        )
        .bind(&failed)
        .bind(err.to_string())
        .execute(&mut *tx)
        .await?;
        if matches!(err, PublishError::Refused { .. }) {
            park_if_refused_too_often(&mut tx, &batch[confirmed]).await?;
        }
    }
    tx.commit().await?;
    for event in &batch[..confirmed] {
        broker
            .metrics()
            .messages_published
            .with_label_values(&[event.message_type.as_str()])
            .inc();
    }
    match failure {
        Some(err) => Err(err.into()),
        None => Ok(confirmed),
    }
}

/// The broker refused `event`: count it, and park it at the [`PARK_AFTER`]th time.
async fn park_if_refused_too_often(
    tx: &mut PgConnection,
    event: &PendingEvent,
) -> Result<(), sqlx::Error> {
    let parked: bool = sqlx::query_scalar(
        "update outbox set refusals = refusals + 1,
             parked_at = case when refusals + 1 >= $2 then now() end
         where id = $1 returning parked_at is not null",
    )
    .bind(event.id)
    .bind(PARK_AFTER)
    .fetch_one(&mut *tx)
    .await?;
    if parked {
        tracing::error!(
            message_id = %event.message_id,
            message_type = %event.message_type,
            "the broker refused this outbox event {PARK_AFTER} times or more: parked, the \
             events behind it go on; it is tried again every {RETRY_PARKED_AFTER:?}"
        );
    }
    Ok(())
}

async fn update_backlog_metrics(pool: &PgPool, broker: &Messaging) {
    let row: Result<(i64, Option<f64>, i64), _> = sqlx::query_as(
        "select count(*) filter (where parked_at is null),
                extract(epoch from now() - min(created_at) filter (where parked_at is null))::float8,
                count(*) filter (where parked_at is not null)
         from outbox",
    )
    .fetch_one(pool)
    .await;
    if let Ok((count, oldest, parked)) = row {
        broker.metrics().outbox_parked.set(parked);
        broker.metrics().outbox_pending.set(count);
        broker
            .metrics()
            .outbox_oldest_pending_seconds
            .set(oldest.unwrap_or(0.0));
    }
}
