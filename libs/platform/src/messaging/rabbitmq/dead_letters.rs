//! RabbitMQ's side of the dead-letter endpoints ([`crate::messaging::dead_letters`]):
//! a subscription's parked messages are in its `.dead` queue. Peeking takes them
//! without an ack and hands them back by closing the channel; replaying publishes each
//! to the subscription's queue (confirmed) before acking it in the dead-letter queue.

use std::collections::BTreeMap;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sales_contracts::topology::Subscription;

use super::{AmqpHeader, Broker, OutgoingMessage, read_headers};
use crate::error::ApiError;
use crate::messaging::dead_letters::{ParkedMessage, parked_body};
use crate::messaging::{ATTEMPT_HEADER, DEATH_REASON_HEADER, PARKING_HEADERS};

async fn channel(broker: &Broker) -> Result<lapin::Channel, ApiError> {
    let conn = broker
        .connection()
        .ok_or_else(|| ApiError::unavailable("not connected to RabbitMQ"))?;
    conn.create_channel().await.map_err(ApiError::internal)
}

async fn queue_length(channel: &lapin::Channel, queue: &str) -> Result<u32, ApiError> {
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

/// How many messages of `sub` are parked.
pub(crate) async fn count(broker: &Broker, sub: Subscription) -> Result<u64, ApiError> {
    let channel = channel(broker).await?;
    let n = queue_length(&channel, &broker.topology().dead_letter_queue(sub)).await;
    let _ = channel.close(200, "counted".into()).await;
    n.map(u64::from)
}

/// Up to `limit` parked messages of `sub`, left where they are.
pub(crate) async fn peek(
    broker: &Broker,
    sub: Subscription,
    limit: u32,
) -> Result<Vec<ParkedMessage>, ApiError> {
    let channel = channel(broker).await?;
    let queue = broker.topology().dead_letter_queue(sub);
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
            body: parked_body(&message.delivery.data),
        });
    }
    // Closing the channel hands every message we took back to the queue, in order.
    let _ = channel.close(200, "peeked".into()).await;
    Ok(out)
}

/// Send up to `limit` of the messages parked now back to `sub`'s queue. Returns how
/// many went back and how many are still parked.
pub(crate) async fn replay(
    broker: &Broker,
    sub: Subscription,
    limit: u32,
) -> Result<(u32, u64), ApiError> {
    let channel = channel(broker).await?;
    let topology = broker.topology();
    let dead = topology.dead_letter_queue(sub);
    let target = topology.queue(sub);
    // Only what is parked now: a message that fails again is parked again behind
    // these and must not be replayed in a loop.
    let parked_now = queue_length(&channel, &dead).await?;
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
        for h in PARKING_HEADERS {
            headers.remove(h);
        }
        let props = &message.delivery.properties;
        let sent = broker
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
    let still_parked = queue_length(&channel, &dead).await?;
    let _ = channel.close(200, "replayed".into()).await;
    Ok((replayed, u64::from(still_parked)))
}
