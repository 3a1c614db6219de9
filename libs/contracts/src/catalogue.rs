//! The event catalogue, generated from the contracts: every message type, who
//! produces it, who consumes it from which queue, and what its payload looks like.
//! `docs/events.md` is this module's output; a test keeps it current
//! (`UPDATE_DOCS=1 cargo test -p sales-contracts` rewrites it).

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use crate::events::*;
use crate::money::{Currency, Money};
use crate::topology::{RETRY_DELAYS, SUBSCRIPTIONS, Topology};

impl MessageType {
    /// The service that publishes this message.
    pub fn producer(self) -> &'static str {
        match self {
            MessageType::CreateOrder
            | MessageType::UpdateStock
            | MessageType::PaidOrder
            | MessageType::CancelOrder
            | MessageType::RestoreCanceledItem
            | MessageType::OrderFailed => "order",
            MessageType::ProductCreated => "product",
            MessageType::ShipmentShipped | MessageType::ShipmentDelivered => "shipping",
        }
    }

    /// When it is published, and what consumers do with it.
    pub fn meaning(self) -> &'static str {
        match self {
            MessageType::CreateOrder => {
                "An order was placed (status `PENDING`, seed 000's \"unpaid\"): its stock is reserved and it waits for payment until `pay_by`. The notification service tells the customer."
            }
            MessageType::UpdateStock => {
                "Published with `create-order`. The inventory holds the order's reservation until the order is paid or cancelled (it no longer expires). A producer that reserved nothing beforehand (as seed 000's did) gets the stock taken here, if there is enough."
            }
            MessageType::PaidOrder => {
                "The order was paid (`CONFIRMED`). The inventory turns the reservation into a sale, the shipping service opens a shipment, the notification service tells the customer."
            }
            MessageType::CancelOrder => {
                "The order was cancelled, by the customer or because it was not paid in time (`reason`). The notification service tells the customer; the stock goes back through `restore-canceled-item`."
            }
            MessageType::RestoreCanceledItem => {
                "The items of an order that will not happen (cancelled, or its payment declined) go back to stock. The inventory releases the reservation (or restocks, if it was already sold)."
            }
            MessageType::ProductCreated => {
                "A product joined the catalogue. The inventory opens its stock item with the opening stock."
            }
            MessageType::OrderFailed => {
                "The order's payment was declined (`FAILED`). The notification service tells the customer; the stock goes back through `restore-canceled-item`."
            }
            MessageType::ShipmentShipped => {
                "The order's shipment left the warehouse. The order becomes `SHIPPED`; the notification service tells the customer."
            }
            MessageType::ShipmentDelivered => {
                "The order's shipment arrived. The order becomes `DELIVERED` (`SHIPPED` first if that news has not arrived yet); the notification service tells the customer."
            }
        }
    }

    /// A typical payload.
    pub fn example(self) -> Value {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .single()
            .unwrap_or_default();
        let usd = |amount| Money::new(amount, Currency::USD);
        let value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
        match self {
            MessageType::CreateOrder => value(serde_json::to_value(CreateOrder {
                order_id: 42,
                customer_id: Some(7),
                status: "PENDING".into(),
                items: vec![OrderLine {
                    product_id: 1,
                    sku: "ESPRESSO-1KG".into(),
                    quantity: 2,
                    unit_price: usd(2490),
                    line_total: Some(usd(4980)),
                }],
                total: usd(4980),
                created_at: at,
                pay_by: at + chrono::Duration::minutes(30),
            })),
            MessageType::UpdateStock => value(serde_json::to_value(UpdateStock {
                order_id: 42,
                user_id: Some(7),
                items: vec![StockLine {
                    product_id: 1,
                    sku: "ESPRESSO-1KG".into(),
                    quantity: 2,
                }],
            })),
            MessageType::PaidOrder => value(serde_json::to_value(PaidOrder {
                order_id: 42,
                customer_id: Some(7),
                status: "CONFIRMED".into(),
                total: usd(4980),
                paid_at: at,
            })),
            MessageType::CancelOrder => value(serde_json::to_value(CancelOrder {
                order_id: 42,
                customer_id: Some(7),
                reason: CancelReason::UnpaidTimeout,
                cancelled_at: at,
            })),
            MessageType::RestoreCanceledItem => value(serde_json::to_value(RestoreCanceledItem {
                items: vec![CanceledItem {
                    order_id: 42,
                    product_id: 1,
                    sku: "ESPRESSO-1KG".into(),
                    quantity: 2,
                }],
            })),
            MessageType::ProductCreated => value(serde_json::to_value(ProductCreated {
                product_id: 1,
                sku: "ESPRESSO-1KG".into(),
                name: "Espresso beans, 1 kg".into(),
                price: usd(2490),
                initial_stock: 50,
            })),
            MessageType::OrderFailed => value(serde_json::to_value(OrderFailed {
                order_id: 42,
                customer_id: Some(7),
                reason: "amount at or above the 1000.00 limit".into(),
                failed_at: at,
            })),
            MessageType::ShipmentShipped => value(serde_json::to_value(ShipmentShipped {
                shipment_id: 3,
                order_id: 42,
                customer_id: Some(7),
                shipped_at: at,
            })),
            MessageType::ShipmentDelivered => value(serde_json::to_value(ShipmentDelivered {
                shipment_id: 3,
                order_id: 42,
                customer_id: Some(7),
                delivered_at: at,
            })),
        }
    }
}

/// The catalogue as Markdown (`docs/events.md`).
pub fn render_markdown() -> String {
    let topology = Topology::default();
    let mut out = String::new();
    out.push_str("<!-- Generated from libs/contracts (catalogue.rs); `UPDATE_DOCS=1 cargo test -p sales-contracts` rewrites it. -->\n");
    out.push_str("# Event catalogue\n\n");
    let retries = RETRY_DELAYS
        .iter()
        .map(|d| format!("{} s", d.as_secs()))
        .collect::<Vec<_>>()
        .join(", ");
    out.push_str(&format!(
        "The events travel over RabbitMQ (the default) or Kafka (`MESSAGING_KIND=kafka`; \
         [messaging.md](messaging.md) compares them). On both, producers publish from a \
         transactional outbox and wait for the broker's acknowledgement (at least once), \
         consumers apply each message once (an inbox keyed by message id) and acknowledge it \
         after committing. A failed message is retried after {retries} and then parked as a \
         dead letter, which the service's admin port lists and replays \
         (`GET /admin/dead-letters`, `POST /admin/dead-letters/{{queue}}/replay`).\n\n\
         - **RabbitMQ**: every message goes to one durable topic exchange, `{}`, with its type \
         as the routing key. Each consuming service has one durable queue per message type, \
         `<service>.<type>`, with retry queues `<queue>.retry-1..3` and a dead-letter queue \
         `<queue>.dead`. Messages are persistent JSON. `AMQP_PREFIX` prefixes every name.\n\
         - **Kafka**: each type has its topic, `{}`, and the record key is the envelope's \
         `correlation_id` (the order id for order messages), so one order's messages stay in \
         order in one partition. Each subscription is a consumer group named like its queue, \
         `<service>.<type>`, reading the type's topic and its retry topics \
         `<group>.retry-1..3`; dead letters go to `<group>.dlt`. `KAFKA_TOPIC_PREFIX` \
         prefixes every topic and group.\n\n",
        topology.exchange(),
        topology.event_topic("<type>"),
    ));
    out.push_str("## The envelope\n\n");
    out.push_str(
        "| field | meaning |\n|---|---|\n\
         | `message_id` | unique per message (UUID v7); consumers drop redeliveries by it |\n\
         | `type` | the message type, also the routing key |\n\
         | `version` | schema version of `data`; a consumer parks messages newer than it reads |\n\
         | `occurred_at` | when it happened (RFC 3339, UTC) |\n\
         | `correlation_id` | what it is about: the order id for order messages |\n\
         | `producer` | the service that published it (seed 001's `owner`) |\n\
         | `data` | the payload below |\n\n\
         AMQP properties: `message_id`, `type`, `content_type: application/json`, persistent \
         delivery. Kafka records: key `correlation_id`, header `message_id`. On both, headers \
         carry the W3C trace context (`traceparent`, `tracestate`), so one trace follows a \
         request through every message it causes. Seed 001's Kafka envelope \
         `{key, owner, data}` maps to `correlation_id` (its key), `producer`, `data`, with its \
         message type in `type`.\n\n",
    );
    out.push_str(
        "## Messages\n\n| type | Kafka topic | producer | consumers (queue; on Kafka, consumer group) |\n|---|---|---|---|\n",
    );
    for t in MessageType::ALL {
        let consumers: Vec<String> = SUBSCRIPTIONS
            .iter()
            .filter(|s| s.message_type == *t)
            .map(|s| format!("{} (`{}`)", s.service, topology.queue(*s)))
            .collect();
        out.push_str(&format!(
            "| [`{}`](#{}) | `{}` | {} | {} |\n",
            t.as_str(),
            t.as_str(),
            topology.event_topic(t.as_str()),
            t.producer(),
            if consumers.is_empty() {
                "-".to_owned()
            } else {
                consumers.join(", ")
            }
        ));
    }
    for t in MessageType::ALL {
        out.push_str(&format!("\n### {}\n\n{}\n\n", t.as_str(), t.meaning()));
        let envelope = json!({
            "message_id": "0193a6f2-8c1e-7d40-9a51-3f1c2b7e9d10",
            "type": t.as_str(),
            "version": 1,
            "occurred_at": "2026-11-22T10:00:00Z",
            "correlation_id": "42",
            "producer": t.producer(),
            "data": t.example(),
        });
        out.push_str("```json\n");
        out.push_str(&serde_json::to_string_pretty(&envelope).unwrap_or_default());
        out.push_str("\n```\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_a_valid_payload() {
        for t in MessageType::ALL {
            let envelope = crate::Envelope {
                message_id: uuid::Uuid::nil(),
                message_type: *t,
                version: 1,
                occurred_at: Utc::now(),
                correlation_id: "42".into(),
                producer: t.producer().into(),
                data: t.example(),
            };
            let ok = match t {
                MessageType::CreateOrder => envelope.decode::<CreateOrder>().is_ok(),
                MessageType::UpdateStock => envelope.decode::<UpdateStock>().is_ok(),
                MessageType::PaidOrder => envelope.decode::<PaidOrder>().is_ok(),
                MessageType::CancelOrder => envelope.decode::<CancelOrder>().is_ok(),
                MessageType::RestoreCanceledItem => {
                    envelope.decode::<RestoreCanceledItem>().is_ok()
                }
                MessageType::ProductCreated => envelope.decode::<ProductCreated>().is_ok(),
                MessageType::OrderFailed => envelope.decode::<OrderFailed>().is_ok(),
                MessageType::ShipmentShipped => envelope.decode::<ShipmentShipped>().is_ok(),
                MessageType::ShipmentDelivered => envelope.decode::<ShipmentDelivered>().is_ok(),
            };
            assert!(ok, "the example of {t} does not decode");
        }
    }

    #[test]
    fn docs_events_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
        let generated = render_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/events.md is out of date: run `UPDATE_DOCS=1 cargo test -p sales-contracts`"
        );
    }
}
