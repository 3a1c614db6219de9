//! What happens to one message, whichever broker brought it: the handler runs inside a
//! database transaction together with an inbox row, and the transport is told what to
//! do next (a [`Verdict`]): acknowledge it, send it to a retry tier, or park it as a
//! dead letter.
//!
//! - A redelivered message finds its inbox row: done, with no second effect.
//! - A handler failure that may pass ([`HandlerError::Transient`]) goes to the next
//!   retry tier (1 s, 10 s, 60 s), then is parked. Unless the database is away: then the
//!   failure is not the message's. It is held and tried again, with back-off, for as
//!   long as the outage lasts, and its retries are not used up.
//! - A message that can never succeed (not an envelope, an unknown type or version, a
//!   wrong payload: [`HandlerError::Rejected`]) is parked at once, with the reason.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sales_contracts::Envelope;
use sales_contracts::events::DecodeError;
use sales_contracts::topology::{RETRY_DELAYS, Subscription, Topology};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use opentelemetry_semantic_conventions::attribute::{
    MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME, MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME, MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM,
};

use crate::metrics::Metrics;
use crate::telemetry;

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
/// commit together with the inbox row, and the message is acknowledged after the commit.
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

/// What became of a message, counted in `messages_consumed_total{queue, outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Processed,
    Duplicate,
    Retried,
    DeadLettered,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 4] = [
        Outcome::Processed,
        Outcome::Duplicate,
        Outcome::Retried,
        Outcome::DeadLettered,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// What the transport does with a message once it was tried.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Handled, or handled before: acknowledge it.
    Done(Outcome),
    /// Failed in a way that may pass: send it to retry tier `tier` (0-based), marked
    /// with `attempt`, the number of attempts made so far.
    Retry { tier: usize, attempt: usize },
    /// Park it, with why and after how many attempts (`None`: none made).
    DeadLetter {
        reason: String,
        attempts: Option<usize>,
    },
}

impl Verdict {
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Verdict::Done(outcome) => *outcome,
            Verdict::Retry { .. } => Outcome::Retried,
            Verdict::DeadLetter { .. } => Outcome::DeadLettered,
        }
    }
}

/// What a consumer span says of where its messages come from (OpenTelemetry's
/// messaging conventions).
pub(crate) struct ConsumerTrace {
    /// `messaging.system`: `rabbitmq` or `kafka`.
    pub(crate) system: &'static str,
    /// `messaging.destination.name`: the queue (RabbitMQ) or the event topic (Kafka),
    /// with the prefix.
    pub(crate) destination: String,
    /// `messaging.consumer.group.name` (Kafka).
    pub(crate) group: Option<String>,
}

/// One subscription's handling: the handler, the inbox, the metrics.
pub(crate) struct Handling<H> {
    pool: PgPool,
    metrics: Metrics,
    /// The subscription's name without prefix (`inventory.update-stock`): the metric
    /// label and the inbox's consumer key, the same on every transport.
    pub(crate) label: String,
    handler: Arc<H>,
    trace: ConsumerTrace,
}

impl<H: MessageHandler> Handling<H> {
    pub(crate) fn new(
        pool: PgPool,
        metrics: Metrics,
        subscription: Subscription,
        handler: Arc<H>,
        trace: ConsumerTrace,
    ) -> Self {
        let label = Topology::default().queue(subscription);
        // Every outcome exists from the start, at 0, so rates and alerts see the first one.
        for outcome in Outcome::ALL {
            metrics
                .messages_consumed
                .with_label_values(&[label.as_str(), outcome.label()]);
        }
        Handling {
            pool,
            metrics,
            label,
            handler,
            trace,
        }
    }

    pub(crate) fn set_active(&self, active: bool) {
        self.metrics
            .consumers_active
            .with_label_values(&[self.label.as_str()])
            .set(i64::from(active));
    }

    /// Try `body` (attempted `attempts` times before), in the trace its headers carry,
    /// then let `settle` act on the verdict (`None`: shut down while the database was
    /// away; the message must go back to the broker untouched). `settle` answers what
    /// became of the message, or `None` if it is left for the broker to redeliver.
    pub(crate) async fn process<S, F>(
        &self,
        body: &[u8],
        attempts: usize,
        trace_headers: &HashMap<String, String>,
        shutdown: &CancellationToken,
        settle: S,
    ) where
        S: FnOnce(Option<Verdict>) -> F,
        F: Future<Output = Option<Outcome>>,
    {
        let started = Instant::now();
        // OpenTelemetry's consumer span, `process {destination}`: the child of the
        // producer's span, whose context the message carries.
        let span = tracing::info_span!(
            "consume",
            otel.kind = "consumer",
            otel.name = format!("process {}", self.trace.destination),
            { MESSAGING_SYSTEM } = self.trace.system,
            { MESSAGING_DESTINATION_NAME } = %self.trace.destination,
            { MESSAGING_CONSUMER_GROUP_NAME } = self.trace.group.as_deref(),
            { MESSAGING_OPERATION_TYPE } = "process",
            { MESSAGING_OPERATION_NAME } = "process",
            { MESSAGING_MESSAGE_ID } = tracing::field::Empty,
            "sales.subscription" = %self.label,
            message_type = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
        );
        telemetry::continue_trace(&span, trace_headers);
        let outcome = async {
            let verdict = self
                .apply_once_the_database_answers(body, shutdown)
                .await
                .map(|result| verdict(result, attempts));
            let outcome = settle(verdict).await;
            // The one INFO line of a message; its steps log at DEBUG.
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            match outcome {
                Some(outcome) => tracing::info!(
                    subscription = %self.label,
                    outcome = outcome.label(),
                    elapsed_ms,
                    "message handled"
                ),
                None => tracing::info!(
                    subscription = %self.label,
                    elapsed_ms,
                    "message left for redelivery"
                ),
            }
            outcome
        }
        .instrument(span)
        .await;
        let label = self.label.as_str();
        self.metrics
            .message_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        if let Some(outcome) = outcome {
            self.metrics
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
            let Err(outage) = crate::db::ping(&self.pool).await else {
                return Some(result);
            };
            if !warned {
                tracing::warn!(consumer = %self.label, %outage, "the database does not answer; holding the message until it does");
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
        span.record(
            MESSAGING_MESSAGE_ID,
            tracing::field::display(envelope.message_id),
        );
        span.record("correlation_id", envelope.correlation_id.as_str());
        let lag = (chrono::Utc::now() - envelope.occurred_at).num_milliseconds() as f64 / 1000.0;
        self.metrics
            .message_lag
            .with_label_values(&[self.label.as_str()])
            .observe(lag.max(0.0));

        let mut tx = self.pool.begin().await?;
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
            tracing::debug!("already handled; dropping the redelivery");
            return Ok(Outcome::Duplicate);
        }
        self.handler.handle(&mut tx, &envelope).await?;
        tx.commit().await?;
        self.handler.after_commit(&envelope).await;
        Ok(Outcome::Processed)
    }
}

/// Where a message goes after `result`, given the attempts made before this one.
fn verdict(result: Result<Outcome, HandlerError>, attempts: usize) -> Verdict {
    match result {
        Ok(outcome) => Verdict::Done(outcome),
        Err(HandlerError::Rejected(reason)) => {
            tracing::error!(%reason, "message rejected; parking it as a dead letter");
            Verdict::DeadLetter {
                reason,
                attempts: None,
            }
        }
        Err(HandlerError::Transient(err)) if attempts < RETRY_DELAYS.len() => {
            tracing::warn!(
                error = format!("{err:#}"),
                attempt = attempts + 1,
                "handler failed; will retry"
            );
            Verdict::Retry {
                tier: attempts,
                attempt: attempts + 1,
            }
        }
        Err(HandlerError::Transient(err)) => {
            let reason = format!("failed {} times, last: {err:#}", attempts + 1);
            tracing::error!(%reason, "giving up; parking the message as a dead letter");
            Verdict::DeadLetter {
                reason,
                attempts: Some(attempts + 1),
            }
        }
    }
}
