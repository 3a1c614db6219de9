//! Everything that can go wrong in the inventory, and the HTTP answer for each.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sales_contracts::api::stock::{ReservationStatus, Shortage};
use sales_platform::ApiError;

pub type Result<T, E = InventoryError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{0}")]
    Validation(String),
    #[error("unknown item(s): {}", .0.join(", "))]
    UnknownItems(Vec<String>),
    #[error("not enough stock for {}", describe_shortages(.0))]
    InsufficientStock(Vec<Shortage>),
    #[error("reservation {0} not found")]
    ReservationNotFound(i64),
    #[error("no reservation for order {0}")]
    NoReservationForOrder(i64),
    #[error("reservation {reservation_id} is {} and cannot be {action}", .status.as_str())]
    InvalidTransition {
        reservation_id: i64,
        status: ReservationStatus,
        action: &'static str,
    },
    #[error("{sku} has {reserved} units reserved; on hand cannot go below that")]
    OnHandBelowReserved { sku: String, reserved: i32 },
    #[error("{sku} is already linked to product {existing}")]
    ProductMismatch { sku: String, existing: i64 },
    #[error("product {product_id} already has another SKU")]
    ProductLinked { product_id: i64 },
    #[error(
        "quantity {quantity} is too large for {sku}: with its {reserved} units reserved, on hand \
         would exceed {}, the most an item can count; the quantity can be at most {}",
        crate::stock::MAX_COUNT,
        crate::stock::MAX_COUNT - .reserved
    )]
    TooManyUnits {
        sku: String,
        quantity: i32,
        reserved: i32,
    },
    /// Seed 004's callers act on seed 004's items; a catalogue product's stock is an
    /// administrator's to count.
    #[error(
        "{0} is the stock of a catalogue product: only an administrator changes or reserves it here (PUT /api/v1/inventory/items/{0})"
    )]
    CatalogueItem(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn describe_shortages(shortages: &[Shortage]) -> String {
    shortages
        .iter()
        .map(|s| {
            format!(
                "{} (requested {}, available {})",
                s.sku, s.requested, s.available
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<InventoryError> for ApiError {
    fn from(err: InventoryError) -> Self {
        let message = err.to_string();
        match err {
            InventoryError::Validation(_) => ApiError::validation(message),
            InventoryError::UnknownItems(skus) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_item", message)
                    .with_details(serde_json::json!({ "unknown_skus": skus }))
            }
            InventoryError::InsufficientStock(shortages) => {
                ApiError::conflict("insufficient_stock", message)
                    .with_details(serde_json::json!({ "shortages": shortages }))
            }
            InventoryError::ReservationNotFound(_) | InventoryError::NoReservationForOrder(_) => {
                ApiError::not_found(message)
            }
            InventoryError::InvalidTransition { status, .. } => {
                ApiError::conflict("invalid_transition", message)
                    .with_details(serde_json::json!({ "status": status }))
            }
            InventoryError::OnHandBelowReserved { .. } => {
                ApiError::conflict("stock_reserved", message)
            }
            InventoryError::ProductMismatch { .. } | InventoryError::ProductLinked { .. } => {
                ApiError::conflict("product_mismatch", message)
            }
            // Not a bad request: the units reserved now leave no room for that many.
            InventoryError::TooManyUnits { .. } => ApiError::conflict("too_many_units", message),
            InventoryError::CatalogueItem(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "catalogue_item", message)
            }
            InventoryError::Database(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for InventoryError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
