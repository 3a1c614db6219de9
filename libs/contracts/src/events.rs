//! The messages the services exchange over RabbitMQ.
//!
//! Every message travels in an [`Envelope`]; its `type` is the routing key on the one
//! topic exchange ([`crate::topology::EXCHANGE`]). The seed system's message names
//! (`create-order`, `update-stock`, `paid-order`, `cancel-order`,
//! `restore-canceled-item`) are kept as they were. The event catalogue in
//! `docs/events.md` documents each one for users.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

/// Every message type on the exchange. The string form is the routing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageType {
    /// An order was placed and is waiting for payment (status `unpaid`).
    #[serde(rename = "create-order")]
    CreateOrder,
    /// Stock for a placed order must stay held for it (seed 000's stock update).
    #[serde(rename = "update-stock")]
    UpdateStock,
    /// An order was paid.
    #[serde(rename = "paid-order")]
    PaidOrder,
    /// An order was cancelled, by its customer or because it was not paid in time.
    #[serde(rename = "cancel-order")]
    CancelOrder,
    /// The items of cancelled orders go back to stock.
    #[serde(rename = "restore-canceled-item")]
    RestoreCanceledItem,
    /// A product was added to the catalogue, with its opening stock.
    #[serde(rename = "product-created")]
    ProductCreated,
    /// The payment for an order was declined; the order failed and its stock went back.
    #[serde(rename = "order-failed")]
    OrderFailed,
    /// A shipment left the warehouse.
    #[serde(rename = "shipment-shipped")]
    ShipmentShipped,
    /// A shipment arrived.
    #[serde(rename = "shipment-delivered")]
    ShipmentDelivered,
}

impl MessageType {
    pub const ALL: &'static [MessageType] = &[
        MessageType::CreateOrder,
        MessageType::UpdateStock,
        MessageType::PaidOrder,
        MessageType::CancelOrder,
        MessageType::RestoreCanceledItem,
        MessageType::ProductCreated,
        MessageType::OrderFailed,
        MessageType::ShipmentShipped,
        MessageType::ShipmentDelivered,
    ];

    /// The name on the wire: the envelope's `type` and the routing key.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::CreateOrder => "create-order",
            MessageType::UpdateStock => "update-stock",
            MessageType::PaidOrder => "paid-order",
            MessageType::CancelOrder => "cancel-order",
            MessageType::RestoreCanceledItem => "restore-canceled-item",
            MessageType::ProductCreated => "product-created",
            MessageType::OrderFailed => "order-failed",
            MessageType::ShipmentShipped => "shipment-shipped",
            MessageType::ShipmentDelivered => "shipment-delivered",
        }
    }

    pub fn parse(s: &str) -> Option<MessageType> {
        MessageType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload that travels as a message of one [`MessageType`].
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    const TYPE: MessageType;
    /// Bumped when the payload changes incompatibly.
    const VERSION: u16 = 1;
    /// What the message is about, for tracing and logs: the order id for order events.
    fn correlation_id(&self) -> String;
}

/// The wrapper every message travels in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P = serde_json::Value> {
    /// Unique per message; consumers use it to drop redeliveries.
    pub message_id: Uuid,
    #[serde(rename = "type")]
    pub message_type: MessageType,
    /// Schema version of `data`.
    pub version: u16,
    pub occurred_at: DateTime<Utc>,
    /// The business key the message is about (the order id for order events).
    pub correlation_id: String,
    /// The service that produced the message (seed 001's `owner`).
    pub producer: String,
    pub data: P,
}

impl<P: Event> Envelope<P> {
    pub fn new(producer: &str, data: P) -> Self {
        Envelope {
            message_id: Uuid::now_v7(),
            message_type: P::TYPE,
            version: P::VERSION,
            occurred_at: Utc::now(),
            correlation_id: data.correlation_id(),
            producer: producer.to_owned(),
            data,
        }
    }

    pub fn into_json(self) -> Envelope {
        Envelope {
            message_id: self.message_id,
            message_type: self.message_type,
            version: self.version,
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id,
            producer: self.producer,
            data: serde_json::to_value(&self.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Why a message could not be read as the payload its type promises.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a JSON envelope: {0}")]
    NotAnEnvelope(serde_json::Error),
    #[error("expected a {expected} message, got {got}")]
    WrongType {
        expected: MessageType,
        got: MessageType,
    },
    #[error("{message_type} version {got} is newer than the {supported} this consumer reads")]
    UnsupportedVersion {
        message_type: MessageType,
        got: u16,
        supported: u16,
    },
    #[error("{message_type} payload is invalid: {source}")]
    InvalidPayload {
        message_type: MessageType,
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Read a raw message body as an envelope of any type.
    pub fn from_slice(body: &[u8]) -> Result<Envelope, DecodeError> {
        serde_json::from_slice(body).map_err(DecodeError::NotAnEnvelope)
    }

    /// Read the payload as `P`, checking type and version.
    pub fn decode<P: Event>(&self) -> Result<P, DecodeError> {
        if self.message_type != P::TYPE {
            return Err(DecodeError::WrongType {
                expected: P::TYPE,
                got: self.message_type,
            });
        }
        if self.version > P::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                message_type: P::TYPE,
                got: self.version,
                supported: P::VERSION,
            });
        }
        P::deserialize(&self.data).map_err(|source| DecodeError::InvalidPayload {
            message_type: P::TYPE,
            source,
        })
    }
}

/// One line of an order as the events carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: i64,
    pub sku: String,
    pub quantity: i32,
    /// The price of one unit. Where the line's total was stated by the client and does
    /// not split evenly (seed 004: 3 units for 200.00), the total over the quantity,
    /// rounded to the nearest minor unit; `line_total` is exact.
    pub unit_price: Money,
    /// What the line costs; the order's `total` is the sum of these. Absent in
    /// messages from before line totals (then `unit_price` x `quantity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_total: Option<Money>,
}

/// `create-order`: an order was placed; it is `unpaid` until paid or cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrder {
    pub order_id: i64,
    pub customer_id: Option<i64>,
    pub status: String,
    pub items: Vec<OrderLine>,
    pub total: Money,
    pub created_at: DateTime<Utc>,
    /// When the order is cancelled if it has not been paid.
    pub pay_by: DateTime<Utc>,
}

impl Event for CreateOrder {
    const TYPE: MessageType = MessageType::CreateOrder;
    fn correlation_id(&self) -> String {
        self.order_id.to_string()
    }
}

/// A quantity of one product, as `update-stock` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub product_id: i64,
    pub sku: String,
    pub quantity: i32,
}

/// `update-stock`: the stock reserved for an order is now held by a placed order
/// (seed 000: `{order_id, user_id, items}`). Inventory stops the reservation's
/// short expiry; the stock stays out of `available` until paid or cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStock {
    pub order_id: i64,
    pub user_id: Option<i64>,
    pub items: Vec<StockLine>,
}

impl Event for UpdateStock {
    const TYPE: MessageType = MessageType::UpdateStock;
    fn correlation_id(&self) -> String {
        self.order_id.to_string()
    }
}

/// `paid-order`: the order was paid (seed 000: `{order_id, status: "paid"}`).
/// Inventory turns the order's reservation into a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidOrder {
    pub order_id: i64,
    pub customer_id: Option<i64>,
    pub status: String,
    pub total: Money,
    pub paid_at: DateTime<Utc>,
}

impl Event for PaidOrder {
    const TYPE: MessageType = MessageType::PaidOrder;
    fn correlation_id(&self) -> String {
        self.order_id.to_string()
    }
}

/// Why an order was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelReason {
    /// The customer cancelled it.
    Customer,
    /// It was not paid in time.
    UnpaidTimeout,
}

/// `cancel-order`: the order is cancelled (seed 000: `{order_id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    pub order_id: i64,
    pub customer_id: Option<i64>,
    pub reason: CancelReason,
    pub cancelled_at: DateTime<Utc>,
}

impl Event for CancelOrder {
    const TYPE: MessageType = MessageType::CancelOrder;
    fn correlation_id(&self) -> String {
        self.order_id.to_string()
    }
}

/// One item going back to stock, as `restore-canceled-item` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanceledItem {
    pub order_id: i64,
    pub product_id: i64,
    pub sku: String,
    pub quantity: i32,
}

/// `restore-canceled-item`: the items of cancelled orders go back to stock
/// (seed 000: `{items: [{order_id, product_id, quantity}]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreCanceledItem {
    pub items: Vec<CanceledItem>,
}

impl Event for RestoreCanceledItem {
    const TYPE: MessageType = MessageType::RestoreCanceledItem;
    fn correlation_id(&self) -> String {
        let mut ids: Vec<String> = self.items.iter().map(|i| i.order_id.to_string()).collect();
        ids.dedup();
        ids.join(",")
    }
}

/// `product-created`: a product joined the catalogue with its opening stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCreated {
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    pub price: Money,
    pub initial_stock: i32,
}

impl Event for ProductCreated {
    const TYPE: MessageType = MessageType::ProductCreated;
    fn correlation_id(&self) -> String {
        self.product_id.to_string()
    }
}

/// `order-failed`: the order's payment was declined. The order is `FAILED`; its stock
/// goes back through `restore-canceled-item`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFailed {
    pub order_id: i64,
    pub customer_id: Option<i64>,
    /// Why the payment was declined, for the customer.
    pub reason: String,
    pub failed_at: DateTime<Utc>,
}

impl Event for OrderFailed {
    const TYPE: MessageType = MessageType::OrderFailed;
    fn correlation_id(&self) -> String {
        self.order_id.to_string()
    }
}

/// `shipment-shipped`: the order's shipment left the warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentShipped {
    pub shipment_id: i64,
    pub order_id: i64,
    pub customer_id: Option<i64>,
    pub shipped_at: DateTime<Utc>,
}

impl Event for ShipmentShipped {
    const TYPE: MessageType = MessageType::ShipmentShipped;
    fn correlation_id(&self) -> String {
        self.order_id.to_string()
    }
}

/// `shipment-delivered`: the order's shipment arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentDelivered {
    pub shipment_id: i64,
    pub order_id: i64,
    pub customer_id: Option<i64>,
    pub delivered_at: DateTime<Utc>,
}

impl Event for ShipmentDelivered {
    const TYPE: MessageType = MessageType::ShipmentDelivered;
    fn correlation_id(&self) -> String {
        self.order_id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn every_type_round_trips_through_its_name() {
        for t in MessageType::ALL {
            assert_eq!(MessageType::parse(t.as_str()), Some(*t));
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
    }

    #[test]
    fn envelope_round_trip_and_checks() {
        let paid = PaidOrder {
            order_id: 7,
            customer_id: None,
            status: "paid".into(),
            total: Money::new(100, Currency::USD),
            paid_at: Utc::now(),
        };
        let env = Envelope::new("order", paid.clone()).into_json();
        assert_eq!(env.correlation_id, "7");
        let bytes = serde_json::to_vec(&env).unwrap();
        let back = Envelope::from_slice(&bytes).unwrap();
        assert_eq!(back.decode::<PaidOrder>().unwrap(), paid);
        assert!(matches!(
            back.decode::<CancelOrder>(),
            Err(DecodeError::WrongType { .. })
        ));

        let mut newer = back.clone();
        newer.version = 2;
        assert!(matches!(
            newer.decode::<PaidOrder>(),
            Err(DecodeError::UnsupportedVersion { .. })
        ));

        let mut broken = back;
        broken.data = serde_json::json!({"order_id": "seven"});
        assert!(matches!(
            broken.decode::<PaidOrder>(),
            Err(DecodeError::InvalidPayload { .. })
        ));
        assert!(Envelope::from_slice(b"not json").is_err());
    }
}
