//! Request and response bodies that one service sends to another over HTTP. Each
//! service's own OpenAPI document describes them for users; these types keep the
//! caller and the callee compiled against the same shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::money::Money;

/// The body of every 4xx and 5xx answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `validation_failed`, `not_found`, `insufficient_stock`...
    #[schema(example = "validation_failed")]
    pub code: String,
    /// For people: says what is wrong and, where it can, how to fix it.
    #[schema(example = "quantity must be at least 1")]
    pub message: String,
    /// Structured detail where the code has some (e.g. which items lack stock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Catalogue types (product service).
pub mod catalogue {
    use super::*;

    /// A product in the catalogue.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct Product {
        #[schema(example = 1)]
        pub id: i64,
        #[schema(example = "SKU-ABC")]
        pub sku: String,
        #[schema(example = "Espresso beans 1 kg")]
        pub name: String,
        pub description: String,
        pub price: Money,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// Stock and reservation types (inventory service).
pub mod stock {
    use super::*;

    /// A SKU, as the inventory names its items and the catalogue its products: 1 to
    /// 64 characters, not only spaces and dots, without control characters, `/`, `\`,
    /// `;` or `%` (so that it fits in a path).
    pub const SKU_PATTERN: &str = r"^[^/\\;%\u0000-\u001f\u007f-\u009f]*[^/\\;%\u0000-\u001f\u007f-\u009f\s.][^/\\;%\u0000-\u001f\u007f-\u009f]*$";

    /// The longest SKU, in characters.
    pub const MAX_SKU_CHARS: usize = 64;

    /// The OpenAPI schema of a SKU field (`#[schema(schema_with = sku_schema)]`).
    pub fn sku_schema() -> utoipa::openapi::schema::Object {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A SKU: 1 to 64 characters, not only spaces and dots, without control \
                 characters, `/`, `\\`, `;` or `%`",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_SKU_CHARS))
            .pattern(Some(SKU_PATTERN))
            .examples([serde_json::json!("SKU-ABC")])
            .build()
    }

    /// Stock of one item. `available = on_hand - reserved`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct StockLevel {
        #[schema(example = "SKU-ABC")]
        pub sku: String,
        pub product_id: Option<i64>,
        /// Units in the warehouse, including reserved ones.
        pub on_hand: i32,
        /// Units held by reservations that are not yet sold or released.
        pub reserved: i32,
        /// Units that can still be reserved.
        pub available: i32,
        pub updated_at: DateTime<Utc>,
    }

    /// One item to reserve.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct ReservationLine {
        #[schema(schema_with = sku_schema)]
        pub sku: String,
        #[schema(example = 2, minimum = 1)]
        pub quantity: i32,
    }

    /// Reserve stock for an order: all items or none.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct ReserveStock {
        /// The order the stock is for. Reserving twice for one order returns the
        /// first reservation, so callers may retry. Without one, the reservation
        /// belongs to nobody and expires unless committed or released.
        #[serde(default)]
        pub order_id: Option<i64>,
        /// At least one; the quantities of one SKU add up to at most 2147483647.
        #[schema(min_items = 1)]
        pub items: Vec<ReservationLine>,
        /// Until when the reservation is kept if no order claims it (`update-stock`).
        /// The order service sends its order's pay-by time: the order decides its
        /// timeout (and gives the stock back), and the inventory releases a
        /// reservation for an order by itself only `RESERVATION_GRACE` (1 hour) later,
        /// a backstop that outlasts a broker outage holding back the order's
        /// `paid-order`. At most 24 hours ahead (a later time counts as 24 hours).
        /// Without it, the inventory's `RESERVATION_HOLD`.
        #[serde(default)]
        pub hold_until: Option<DateTime<Utc>>,
    }

    /// Where a reservation is in its life.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum ReservationStatus {
        /// Made, but no order has claimed it yet; expires at `expires_at`.
        Pending,
        /// Claimed by a placed order (`update-stock`); held until paid or cancelled.
        Held,
        /// The order was paid: the units left the warehouse.
        Committed,
        /// Given back to stock (cancelled, declined, or expired).
        Released,
    }

    impl ReservationStatus {
        pub fn as_str(self) -> &'static str {
            match self {
                ReservationStatus::Pending => "pending",
                ReservationStatus::Held => "held",
                ReservationStatus::Committed => "committed",
                ReservationStatus::Released => "released",
            }
        }

        pub fn parse(s: &str) -> Option<Self> {
            [
                ReservationStatus::Pending,
                ReservationStatus::Held,
                ReservationStatus::Committed,
                ReservationStatus::Released,
            ]
            .into_iter()
            .find(|r| r.as_str() == s)
        }
    }

    /// A reservation of stock.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct Reservation {
        pub reservation_id: i64,
        pub order_id: Option<i64>,
        pub status: ReservationStatus,
        pub items: Vec<ReservationLine>,
        /// A pending reservation is released by itself at this time.
        pub expires_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    /// One item that could not be reserved, in the `details` of a 409.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct Shortage {
        pub sku: String,
        pub requested: i32,
        pub available: i32,
    }
}

/// Authentication (customer service issues tokens, the gateway verifies them).
pub mod auth {
    use super::*;

    /// Who may do what: customers act on their own orders; admins manage the
    /// catalogue, stock, payments and shipments.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        Customer,
        Admin,
    }

    impl Role {
        pub fn as_str(self) -> &'static str {
            match self {
                Role::Customer => "customer",
                Role::Admin => "admin",
            }
        }
    }

    /// The issuer every token names.
    pub const ISSUER: &str = "sales-system";

    /// The claims of a customer's JWT (HS256, signed with the shared `JWT_SECRET`).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Claims {
        /// The customer id, as a string (RFC 7519).
        pub sub: String,
        pub name: String,
        pub email: String,
        pub role: Role,
        /// Issued at, seconds since the epoch.
        pub iat: i64,
        /// Expires at, seconds since the epoch.
        pub exp: i64,
        pub iss: String,
    }
}

/// Payments (payment service), as the order service calls them.
pub mod payments {
    use super::*;

    /// Where a payment stands.
    ///
    /// `pending` (created, seed 002) -> `authorized` or `declined` -> `confirmed`
    /// (captured) -> `refunded`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum PaymentStatus {
        Pending,
        Authorized,
        Declined,
        Confirmed,
        Refunded,
    }

    /// Charge an order: authorize and capture in one step. One payment per order:
    /// charging an order again returns its payment, so callers may retry.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct ChargeOrder {
        #[schema(minimum = 1)]
        pub order_id: i64,
        #[schema(schema_with = crate::money::request_schemas::positive_money)]
        pub amount: Money,
        /// The customer who placed the order, if any: they may read the payment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 1)]
        pub customer_id: Option<i64>,
    }

    /// A payment.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    pub struct Payment {
        pub payment_id: i64,
        pub order_id: i64,
        /// The customer whose order it pays, when known; only they (and admins) see it.
        #[serde(default)]
        pub customer_id: Option<i64>,
        pub amount: Money,
        pub status: PaymentStatus,
        /// Why it was declined, when it was.
        pub decline_reason: Option<String>,
        /// The call to the payment provider made for it and not yet answered
        /// (`authorize`, `charge`, `capture` or `refund`): its outcome is being
        /// decided, and the payment service makes the call again until it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(example = json!(null))]
        pub provider_call_in_flight: Option<String>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}
