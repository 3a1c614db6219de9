//! The RabbitMQ consumer loop: takes messages from one queue, has each tried (see
//! [`crate::messaging::handling`]), and only then acks. A retry or a dead letter is a
//! confirmed copy in the queue's retry or dead-letter queue, then an ack; if the copy
//! cannot be made, the original is nacked back to its queue, so nothing is lost.
//!
//! - The consumer reconnects by itself when the broker or the channel goes away.
//! - On shutdown it cancels its consumer tag, finishes and acks what it already holds,
//!   and closes its channel; whatever it did not finish is redelivered elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use sales_contracts::topology::{RETRY_DELAYS, Subscription};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{AmqpHeader, Broker, BrokerError, OutgoingMessage, read_headers, text_headers};
use crate::messaging::handling::{ConsumerTrace, Handling, MessageHandler, Outcome, Verdict};
use crate::messaging::{ATTEMPT_HEADER, DEATH_REASON_HEADER, ORIGIN_HEADER};

/// The longest an ack, a nack or a forward may wait for the broker: a connection
/// that dies under it may never answer, and the consumer must get back to its loop
/// (and reconnect) instead of waiting for ever.
const BROKER_OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Consume `subscription`'s queue until `shutdown`.
pub(crate) async fn run<H: MessageHandler>(
    broker: Broker,
    pool: PgPool,
    prefetch: u16,
    subscription: Subscription,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    let topology = broker.topology();
    let consumer = QueueConsumer {
        queue: topology.queue(subscription),
        retry_queues: (0..RETRY_DELAYS.len())
            .map(|tier| topology.retry_queue(subscription, tier))
            .collect(),
        dead_letter_queue: topology.dead_letter_queue(subscription),
        handling: Handling::new(
            pool,
            broker.metrics().clone(),
            subscription,
            handler,
            ConsumerTrace {
                system: "rabbitmq",
                destination: topology.queue(subscription),
                group: None,
            },
        ),
        broker,
        prefetch,
    };
    consumer.run(shutdown).await;
}

struct QueueConsumer<H> {
    broker: Broker,
    prefetch: u16,
    /// Queue name on the broker (with any prefix).
    queue: String,
    retry_queues: Vec<String>,
    dead_letter_queue: String,
    handling: Handling<H>,
}

impl<H: MessageHandler> QueueConsumer<H> {
    async fn run(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let conn = tokio::select! {
                _ = shutdown.cancelled() => break,
                c = self.broker.wait_connected(Duration::from_secs(5)) => c,
            };
            let Ok(conn) = conn else { continue };
            self.handling.set_active(true);
            match self.consume(&conn, &shutdown).await {
                Ok(()) => {}
                Err(err) => {
                    tracing::warn!(queue = %self.queue, error = %err, "consumer lost its channel; resuming")
                }
            }
            self.handling.set_active(false);
            if !shutdown.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.handling.set_active(false);
    }

    async fn consume(
        &self,
        conn: &lapin::Connection,
        shutdown: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        let channel = conn.create_channel().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("{}-{}", self.handling.label, uuid::Uuid::new_v4().simple());
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
        let headers = read_headers(&delivery.properties);
        let attempts = match headers.get(ATTEMPT_HEADER) {
            Some(AmqpHeader::Int(n)) => usize::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        self.handling
            .process(
                &delivery.data,
                attempts,
                &text_headers(&headers),
                shutdown,
                |verdict| self.settle(&delivery, &headers, verdict),
            )
            .await;
    }

    /// Ack, retry or dead-letter. Returns `None` when the message was left to be
    /// redelivered by the broker (nothing could be settled).
    async fn settle(
        &self,
        delivery: &Delivery,
        headers: &HashMap<String, AmqpHeader>,
        verdict: Option<Verdict>,
    ) -> Option<Outcome> {
        let Some(verdict) = verdict else {
            // Shut down during an outage: back to the queue, for the next consumer.
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            let _ = tokio::time::timeout(BROKER_OP_TIMEOUT, delivery.nack(requeue)).await;
            return None;
        };
        match &verdict {
            Verdict::Done(_) => {}
            Verdict::Retry { tier, attempt } => {
                let queue = self.retry_queues.get(*tier)?;
                self.forward(delivery, headers, queue, Some(*attempt), None)
                    .await?;
            }
            Verdict::DeadLetter { reason, attempts } => {
                self.forward(
                    delivery,
                    headers,
                    &self.dead_letter_queue,
                    *attempts,
                    Some(reason),
                )
                .await?;
            }
        }
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
        Some(verdict.outcome())
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
            out.insert(ORIGIN_HEADER.into(), AmqpHeader::Text(self.queue.clone()));
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
        let published = tokio::time::timeout(BROKER_OP_TIMEOUT, self.broker.publish(message))
            .await
            .unwrap_or(Err(BrokerError::Timeout(BROKER_OP_TIMEOUT)));
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
