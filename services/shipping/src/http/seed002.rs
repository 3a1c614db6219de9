//! Seed 002's shipping API, with the shapes its clients expect:
//!
//! - `POST /shipping {order_id}` -> 201 `{id, order_id, status: "pending", created_at,
//!   updated_at}` (200 with the same row when the order already has a shipment);
//! - `PUT /shipping/{id} {status}` with `shipped` or `delivered` -> 200, the row;
//! - `GET /shipping/{id}` -> the row.
//!
//! An illegal move is a 409; an unknown status a 400 that lists the allowed ones.
//!
//! # Who may do what
//!
//! Seed 002 had no accounts: anyone could open, read and move any shipment. Here
//! these routes act with exactly the rights seed 002 gave such a caller over what
//! was made without an account, and never more:
//!
//! | caller | open (`POST`) | read (`GET`) | move (`PUT`) |
//! |---|---|---|---|
//! | admin | any order | any shipment | any shipment |
//! | signed-in customer | 403 | their own; any other is a 404 | 403 |
//! | anonymous, seeds' routes open | an order without a shipment, or whose shipment has no customer; a customer's order is a 403 | only shipments without a customer; any other is a 404 | only shipments without a customer; any other is a 404 |
//! | anonymous, seeds' routes closed | 401 | 401 | 401 |
//!
//! Services have no rights here (403). "Without a customer" is the shipment's
//! `customer_id` being null: the order was placed without an account, or its
//! `paid-order` has not said whose it is yet. Once a `paid-order` records the
//! customer, the shipment is out of an anonymous caller's reach. The owner of a move
//! is checked on the locked row ([`crate::shipments::advance`]), and a refused move
//! is the same 404 as an unknown id whatever the status, so an anonymous caller
//! learns nothing about a customer's shipment. Refusing to open a customer's order
//! (403) cannot hide that the order has a customer's shipment, but shows nothing of
//! it.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sales_contracts::api::ErrorResponse;
use sales_platform::identity::caller::Principal;
use sales_platform::identity::{Caller, OwnerScope};
use sales_platform::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, CreateShipment, move_shipment, open_shipment, visible_shipment};
use crate::error::ShippingError;
use crate::shipments::{Dispatch, Shipment};
use crate::status::ShipmentStatus;

/// Whose shipments `caller` may open and move on these routes (see the module
/// docs): admins everyone's, an anonymous caller while the seeds' routes are open
/// those without a customer, anyone else none (403).
pub fn seed_managed_scope(
    caller: &Caller,
    action: &'static str,
) -> Result<OwnerScope, ShippingError> {
    match caller.principal {
        Principal::Admin(_) => Ok(OwnerScope::All),
        // The access layer lets an anonymous caller in only while the seeds' routes
        // are open; checked again here so these rights never outlive that.
        Principal::Anonymous if caller.seed_compat => Ok(OwnerScope::Owner(None)),
        _ => Err(ShippingError::Forbidden(action)),
    }
}

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
/// Admins, and anonymous callers for orders without a customer's shipment.
#[utoipa::path(post, path = "/shipping", tag = "seed 002", request_body = CreateShipment,
    responses((status = 201, description = "Opened", body = Seed002Shipping),
               (status = 200, description = "The order already has this shipment", body = Seed002Shipping),
               (status = 400, body = ErrorResponse),
               (status = 403, description = "Customers may not open shipments; anonymous callers not a customer's", body = ErrorResponse)))]
pub async fn create_shipping(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateShipment>,
) -> Result<(StatusCode, Json<Seed002Shipping>), ShippingError> {
    let scope = seed_managed_scope(&caller, "open shipments")?;
    let (status, shipment) = open_shipment(&state, body.order_id, scope).await?;
    Ok((status, Json(shipment.into())))
}

/// Seed 002: one shipment. Another customer's is a 404 (for an anonymous caller,
/// any customer's).
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateShipping {
    /// `shipped` or `delivered`.
    status: String,
    /// Only when shipping; at most 100 characters.
    carrier: Option<String>,
    /// Only when shipping; at most 100 characters.
    tracking_number: Option<String>,
}

/// `{"status": "shipped"}` with the carrier and tracking number if known, or
/// `{"status": "delivered"}` with neither: one of two shapes.
impl utoipa::PartialSchema for UpdateShipping {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let status = |value: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([value]))
        };
        let nothing = || ObjectBuilder::new().schema_type(Type::Null);
        let shipped = ObjectBuilder::new()
            .property("status", status("shipped"))
            .required("status")
            .property("carrier", super::label_schema())
            .property("tracking_number", super::label_schema())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .examples([serde_json::json!({"status": "shipped", "carrier": "DHL"})]);
        let delivered = ObjectBuilder::new()
            .property("status", status("delivered"))
            .required("status")
            .property("carrier", nothing())
            .property("tracking_number", nothing())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new()
            .item(shipped)
            .item(delivered)
            .description(Some(
                "The status to move to: `shipped` (with the carrier and tracking number, \
                 if known: 1 to 100 characters each) or `delivered` (with neither).",
            ))
            .into()
    }
}

impl ToSchema for UpdateShipping {}

/// Seed 002: move a shipment to `shipped` (from `pending`) or `delivered` (from
/// `shipped`). Any other move is a 409; an unknown status a 400. Admins, and
/// anonymous callers for shipments without a customer (any other is a 404).
#[utoipa::path(put, path = "/shipping/{id}", tag = "seed 002",
    params(("id" = i64, Path, description = "The shipment's id")),
    request_body = UpdateShipping,
    responses((status = 200, body = Seed002Shipping),
               (status = 400, description = "Unknown status; `details.allowed` lists the known ones", body = ErrorResponse),
               (status = 403, description = "Customers may not move shipments", body = ErrorResponse),
               (status = 404, description = "Unknown, or not the caller's to move", body = ErrorResponse),
               (status = 409, description = "Not the next status, or (`order_not_paid`) shipping an order whose paid-order has not come", body = ErrorResponse)))]
pub async fn update_shipping(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<UpdateShipping>,
) -> Result<Json<Seed002Shipping>, ShippingError> {
    let scope = seed_managed_scope(&caller, "move shipments")?;
    // `pending` is a status, but never one to move to: asking for it is a 409 below.
    let to = ShipmentStatus::parse(&body.status).ok_or(ShippingError::UnknownStatus {
        field: "status",
        got: body.status,
        allowed: &ShipmentStatus::TARGETS,
    })?;
    let dispatch = Dispatch::new(body.carrier, body.tracking_number)?;
    Ok(Json(
        move_shipment(&state, id, to, dispatch, scope).await?.into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(principal: Principal, seed_compat: bool) -> Caller {
        Caller {
            principal,
            seed_compat,
            client_ip: None,
        }
    }

    #[test]
    fn who_may_open_and_move_here() {
        let scope = |principal, open| seed_managed_scope(&caller(principal, open), "move").ok();
        for open in [false, true] {
            assert_eq!(scope(Principal::Admin(1), open), Some(OwnerScope::All));
            assert_eq!(scope(Principal::Customer(7), open), None);
            let order = Principal::Service {
                name: "order".into(),
                scopes: vec!["payments:charge".into()],
            };
            assert_eq!(scope(order, open), None);
        }
        assert_eq!(
            scope(Principal::Anonymous, true),
            Some(OwnerScope::Owner(None))
        );
        // Never once the seeds' routes close, whatever let the request through.
        assert_eq!(scope(Principal::Anonymous, false), None);
    }
}
