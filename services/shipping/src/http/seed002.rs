//! Seed 002's shipping API, with the shapes its clients expect:
//!
//! - `POST /shipping {order_id}` -> 201 `{id, order_id, status: "pending", created_at,
//!   updated_at}` (200 with the same row when the order already has a shipment);
//! - `PUT /shipping/{id} {status}` with `shipped` or `delivered` -> 200, the row;
//! - `GET /shipping/{id}` -> the row.
//!
//! The rules are the canonical API's: a customer gets 403 for opening or moving and
//! sees only their own; an illegal move is a 409; an unknown status a 400 that lists
//! the allowed ones.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sales_contracts::api::ErrorResponse;
use sales_platform::identity::Caller;
use sales_platform::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AppState, CreateShipment, ensure_may_manage, move_shipment, open_shipment, visible_shipment,
};
use crate::error::ShippingError;
use crate::shipments::{Dispatch, Shipment};
use crate::status::ShipmentStatus;

/// Seed 002's shipping row.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed002Shipping {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = 42)]
    order_id: i64,
    status: ShipmentStatus,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Shipment> for Seed002Shipping {
    fn from(s: Shipment) -> Self {
        Seed002Shipping {
            id: s.id,
            order_id: s.order_id,
            status: s.status,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Seed 002: open the shipment of an order (`pending`). Idempotent per order.
#[utoipa::path(post, path = "/shipping", tag = "seed 002", request_body = CreateShipment,
    responses((status = 201, description = "Opened", body = Seed002Shipping),
               (status = 200, description = "The order already has this shipment", body = Seed002Shipping),
               (status = 400, body = ErrorResponse),
               (status = 403, description = "Customers may not open shipments", body = ErrorResponse)))]
pub async fn create_shipping(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateShipment>,
) -> Result<(StatusCode, Json<Seed002Shipping>), ShippingError> {
    ensure_may_manage(&caller, "open shipments")?;
    let (status, shipment) = open_shipment(&state, body.order_id).await?;
    Ok((status, Json(shipment.into())))
}

/// Seed 002: one shipment. Another customer's is a 404.
#[utoipa::path(get, path = "/shipping/{id}", tag = "seed 002",
    params(("id" = i64, Path, description = "The shipment's id")),
    responses((status = 200, body = Seed002Shipping), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
pub async fn get_shipping(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Seed002Shipping>, ShippingError> {
    Ok(Json(visible_shipment(&state, &caller, id).await?.into()))
}

/// The status to move to, and (when shipping) who carries it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShipping {
    /// `shipped` or `delivered`.
    #[schema(example = "shipped")]
    status: String,
    /// Only when shipping; at most 100 characters.
    carrier: Option<String>,
    /// Only when shipping; at most 100 characters.
    tracking_number: Option<String>,
}

/// Seed 002: move a shipment to `shipped` (from `pending`) or `delivered` (from
/// `shipped`). Any other move is a 409; an unknown status a 400.
#[utoipa::path(put, path = "/shipping/{id}", tag = "seed 002",
    params(("id" = i64, Path, description = "The shipment's id")),
    request_body = UpdateShipping,
    responses((status = 200, body = Seed002Shipping),
               (status = 400, description = "Unknown status; `details.allowed` lists the known ones", body = ErrorResponse),
               (status = 403, description = "Customers may not move shipments", body = ErrorResponse),
               (status = 404, body = ErrorResponse),
               (status = 409, description = "Not the next status", body = ErrorResponse)))]
pub async fn update_shipping(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<UpdateShipping>,
) -> Result<Json<Seed002Shipping>, ShippingError> {
    ensure_may_manage(&caller, "move shipments")?;
    // `pending` is a status, but never one to move to: asking for it is a 409 below.
    let to = ShipmentStatus::parse(&body.status).ok_or(ShippingError::UnknownStatus {
        field: "status",
        got: body.status,
        allowed: &ShipmentStatus::TARGETS,
    })?;
    let dispatch = Dispatch::new(body.carrier, body.tracking_number)?;
    Ok(Json(move_shipment(&state, id, to, dispatch).await?.into()))
}
