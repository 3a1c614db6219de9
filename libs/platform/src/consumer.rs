//! The consumer loop: takes messages from one queue, runs the handler inside a
//! database transaction together with an inbox row, commits, and only then acks.
//!
//! - A redelivered message finds its inbox row and is acked with no second effect.
//! - A handler failure that may pass ([`HandlerError::Transient`]) sends the message to
//!   the queue's retry queues (1 s, 10 s, 60 s), then parks it in the dead-letter queue.
//!   Unless the database is away: then the failure is not the message's. The consumer
//!   holds it and tries again, with back-off, for as long as the outage lasts, and its
//!   retries are not used up.
//! - A message that can never succeed (not an envelope, wrong payload:
//!   [`HandlerError::Rejected`]) goes straight to the dead-letter queue. Neither blocks
//!   the queue nor stops the consumer.
//! - The consumer reconnects by itself when the broker or the channel goes away.
//! - On shutdown it cancels its consumer tag, finishes and acks what it already holds,
//!   and closes its channel; whatever it did not finish is redelivered elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use sales_contracts::Envelope;
use sales_contracts::events::DecodeError;
use sales_contracts::topology::{RETRY_DELAYS, Subscription, Topology};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::{
    ATTEMPT_HEADER, AmqpHeader, Broker, DEATH_REASON_HEADER, ORIGIN_QUEUE_HEADER, OutgoingMessage,
    read_headers, text_headers,
};
use crate::metrics::Metrics;
use crate::telemetry::{self, MapExtractor};

/// Why a handler did not apply a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The message can never be applied (malformed, contradicts the data): it is
    /// parked in the dead-letter queue at once.
    #[error("rejected: {0}")]
    Rejected(String),
    /// It may apply later (database busy, a row not there yet): retried with back-off.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        HandlerError::Transient(err.into())
    }
}

impl From<DecodeError> for HandlerError {
    fn from(err: DecodeError) -> Self {
        HandlerError::Rejected(err.to_string())
    }
}

/// What a service does with one message. The handler's writes go through `tx`; they
/// commit together with the inbox row, and the message is acked after the commit.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Runs after the handler's transaction committed (to invalidate a cache, say).
    /// It cannot undo the effect, so it has no error to return.
    fn after_commit(&self, envelope: &Envelope) -> impl Future<Output = ()> + Send {
        let _ = envelope;
        async {}
    }
}

/// Everything a consumer needs besides its handler.
#[derive(Clone)]
pub struct ConsumerContext {
    pub pool: PgPool,
    pub broker: Broker,
    pub metrics: Metrics,
    pub prefetch: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Processed,
    Duplicate,
    Retried,
    DeadLettered,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Consume `subscription`'s queue until `shutdown`.
pub async fn run_consumer<H: MessageHandler>(
    ctx: ConsumerContext,
    subscription: Subscription,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    let consumer = QueueConsumer {
        queue: ctx.broker.topology().queue(subscription),
        label: Topology::default().queue(subscription),
        retry_queues: (0..RETRY_DELAYS.len())
            .map(|tier| ctx.broker.topology().retry_queue(subscription, tier))
            .collect(),
        dead_letter_queue: ctx.broker.topology().dead_letter_queue(subscription),
        ctx,
        handler,
    };
    consumer.run(shutdown).await;
}

struct QueueConsumer<H> {
    ctx: ConsumerContext,
    /// Queue name on the broker (with any prefix).
    queue: String,
    /// Queue name without prefix: the metric label and the inbox's consumer key.
    label: String,
    retry_queues: Vec<String>,
    dead_letter_queue: String,
    handler: Arc<H>,
}

/// The longest an ack, a nack or a forward may wait for the broker: a connection
/// that dies under it may never answer, and the consumer must get back to its loop
/// (and reconnect) instead of waiting for ever.
const BROKER_OP_TIMEOUT: Duration = Duration::from_secs(10);

impl<H: MessageHandler> QueueConsumer<H> {
    async fn run(&self, shutdown: CancellationToken) {
        let active = self
            .ctx
            .metrics
            .consumers_active
            .with_label_values(&[self.label.as_str()]);
        // Every outcome exists from the start, at 0, so rates and alerts see the first one.
        for outcome in [
            Outcome::Processed,
            Outcome::Duplicate,
            Outcome::Retried,
            Outcome::DeadLettered,
        ] {
            self.ctx
                .metrics
                .messages_consumed
                .with_label_values(&[self.label.as_str(), outcome.label()]);
        }
        while !shutdown.is_cancelled() {
            let conn = tokio::select! {
                _ = shutdown.cancelled() => break,
                c = self.ctx.broker.wait_connected(Duration::from_secs(5)) => c,
            };
            let Ok(conn) = conn else { continue };
            active.set(1);
            match self.consume(&conn, &shutdown).await {
                Ok(()) => {}
                Err(err) => {
                    tracing::warn!(queue = %self.queue, error = %err, "consumer lost its channel; resuming")
                }
            }
            active.set(0);
            if !shutdown.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        active.set(0);
    }

    async fn consume(
        &self,
        conn: &lapin::Connection,
        shutdown: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        let channel = conn.create_channel().await?;
        channel
            .basic_qos(self.ctx.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("{}-{}", self.label, uuid::Uuid::new_v4().simple());
        let mut deliveries = channel
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %self.queue, "consuming");
        let mut cancelling = false;
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !cancelling => {
                    // Stop new deliveries; what was already delivered still comes
                    // through the stream and is finished below.
                    cancelling = true;
                    tracing::info!(queue = %self.queue, "stopping: finishing messages in hand");
                    if channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await.is_err() {
                        break;
                    }
                    continue;
                }
                next = deliveries.next() => next,
            };
            match next {
                Some(Ok(delivery)) => self.process(delivery, shutdown).await,
                Some(Err(err)) => return Err(err),
                None => break,
            }
        }
        let _ = channel.close(200, "consumer stopped".into()).await;
        Ok(())
    }

    async fn process(&self, delivery: Delivery, shutdown: &CancellationToken) {
        let started = Instant::now();
        let headers = read_headers(&delivery.properties);
        let span = tracing::info_span!(
            "consume",
            otel.kind = "consumer",
            otel.name = format!("{} process", self.label),
            messaging.destination = %self.label,
            message_type = tracing::field::Empty,
            message_id = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        telemetry::continue_trace(&span, &MapExtractor(&text_headers(&headers)));
        let outcome = async {
            match self
                .apply_once_the_database_answers(&delivery.data, shutdown)
                .await
            {
                Some(result) => self.settle(&delivery, &headers, result).await,
                None => {
                    // Shut down during an outage: back to the queue, for the next consumer.
                    let requeue = BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    };
                    let _ = tokio::time::timeout(BROKER_OP_TIMEOUT, delivery.nack(requeue)).await;
                    None
                }
            }
        }
        .instrument(span)
        .await;
        let label = self.label.as_str();
        self.ctx
            .metrics
            .message_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        if let Some(outcome) = outcome {
            self.ctx
                .metrics
                .messages_consumed
                .with_label_values(&[label, outcome.label()])
                .inc();
        }
    }

    /// [`Self::apply`]; while it fails because the database does not answer, hold the
    /// message and try again (every 0.5 s, doubling to 30 s) for as long as it takes.
    /// `None`: shut down while waiting.
    async fn apply_once_the_database_answers(
        &self,
        body: &[u8],
        shutdown: &CancellationToken,
    ) -> Option<Result<Outcome, HandlerError>> {
        let mut wait = Duration::from_millis(500);
        let mut warned = false;
        loop {
            let result = self.apply(body).await;
            if !matches!(result, Err(HandlerError::Transient(_))) {
                return Some(result);
            }
            let Err(outage) = crate::db::ping(&self.ctx.pool).await else {
                return Some(result);
            };
            if !warned {
                tracing::warn!(queue = %self.queue, %outage, "the database does not answer; holding the message until it does");
                warned = true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// Run the handler in a transaction with the inbox row.
    async fn apply(&self, body: &[u8]) -> Result<Outcome, HandlerError> {
        let envelope = Envelope::from_slice(body)?;
        let span = tracing::Span::current();
        span.record("message_type", envelope.message_type.as_str());
        span.record("message_id", tracing::field::display(envelope.message_id));
        span.record("correlation_id", envelope.correlation_id.as_str());
        let lag = (chrono::Utc::now() - envelope.occurred_at).num_milliseconds() as f64 / 1000.0;
        self.ctx
            .metrics
            .message_lag
            .with_label_values(&[self.label.as_str()])
            .observe(lag.max(0.0));

        let mut tx = self.ctx.pool.begin().await?;
        let inbox_span = tracing::info_span!(
            "db inbox insert",
            otel.kind = "client",
            db.system = "postgresql"
        );
        let first_time = sqlx::query(
            "insert into inbox (consumer, message_id, message_type) values ($1, $2, $3)
             on conflict do nothing",
        )
        .bind(&self.label)
        .bind(envelope.message_id)
        .bind(envelope.message_type.as_str())
        .execute(&mut *tx)
        .instrument(inbox_span)
        .await?
        .rows_affected()
            == 1;
        if !first_time {
            tracing::info!("already handled; dropping the redelivery");
            return Ok(Outcome::Duplicate);
        }
        self.handler.handle(&mut tx, &envelope).await?;
        tx.commit().await?;
        self.handler.after_commit(&envelope).await;
        Ok(Outcome::Processed)
    }

    /// Ack, retry or dead-letter. Returns `None` when the message was left to be
    /// redelivered by the broker (nothing could be settled).
    async fn settle(
        &self,
        delivery: &Delivery,
        headers: &HashMap<String, AmqpHeader>,
        result: Result<Outcome, HandlerError>,
    ) -> Option<Outcome> {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(HandlerError::Rejected(reason)) => {
                tracing::error!(%reason, "message rejected; parking it in the dead-letter queue");
                self.forward(
                    delivery,
                    headers,
                    &self.dead_letter_queue,
                    None,
                    Some(&reason),
                )
                .await?;
                Outcome::DeadLettered
            }
            Err(HandlerError::Transient(err)) => {
                let attempt = match headers.get(ATTEMPT_HEADER) {
                    Some(AmqpHeader::Int(n)) => usize::try_from(*n).unwrap_or(0),
                    _ => 0,
                };
                if let Some(retry_queue) = self.retry_queues.get(attempt) {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        attempt = attempt + 1,
                        "handler failed; will retry"
                    );
                    self.forward(delivery, headers, retry_queue, Some(attempt + 1), None)
                        .await?;
                    Outcome::Retried
                } else {
                    let reason = format!("failed {} times, last: {err:#}", attempt + 1);
                    tracing::error!(%reason, "giving up; parking the message in the dead-letter queue");
                    self.forward(
                        delivery,
                        headers,
                        &self.dead_letter_queue,
                        Some(attempt + 1),
                        Some(&reason),
                    )
                    .await?;
                    Outcome::DeadLettered
                }
            }
        };
        match tokio::time::timeout(BROKER_OP_TIMEOUT, delivery.ack(BasicAckOptions::default()))
            .await
        {
            Ok(Ok(_)) => {}
            // The effect is committed; the redelivery will find the inbox row.
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "ack failed; the message will come back and be dropped as a duplicate")
            }
            // A connection that died under the ack may never answer it (found by
            // `cargo xtask chaos`: a consumer hung here for good after a RabbitMQ kill).
            Err(_) => tracing::warn!(
                "ack unanswered; the message will come back and be dropped as a duplicate"
            ),
        }
        Some(outcome)
    }

    /// Send a copy of the message to `queue` (retry or dead-letter) with a confirm.
    /// On failure the original is nacked with requeue, so nothing is lost.
    async fn forward(
        &self,
        delivery: &Delivery,
        headers: &HashMap<String, AmqpHeader>,
        queue: &str,
        attempt: Option<usize>,
        death_reason: Option<&str>,
    ) -> Option<()> {
        let mut out: BTreeMap<String, AmqpHeader> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(n) = attempt {
            out.insert(ATTEMPT_HEADER.into(), AmqpHeader::Int(n as i64));
        }
        if let Some(reason) = death_reason {
            out.insert(
                DEATH_REASON_HEADER.into(),
                AmqpHeader::Text(reason.to_owned()),
            );
            out.insert(
                ORIGIN_QUEUE_HEADER.into(),
                AmqpHeader::Text(self.queue.clone()),
            );
        }
        let message = OutgoingMessage {
            exchange: "",
            routing_key: queue,
            body: &delivery.data,
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string()),
            message_type: delivery.properties.kind().as_ref().map(|s| s.to_string()),
            headers: out,
        };
        let published = tokio::time::timeout(BROKER_OP_TIMEOUT, self.ctx.broker.publish(message))
            .await
            .unwrap_or(Err(crate::broker::BrokerError::Timeout(BROKER_OP_TIMEOUT)));
        match published {
            Ok(()) => Some(()),
            Err(err) => {
                tracing::warn!(error = %err, queue, "could not forward the message; returning it to its queue");
                let nack = delivery.nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                });
                let _ = tokio::time::timeout(BROKER_OP_TIMEOUT, nack).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                None
            }
        }
    }
}
