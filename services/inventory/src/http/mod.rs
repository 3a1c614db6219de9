//! The inventory's HTTP API: canonical under `/api/v1/inventory`, seed 004's stock
//! API under `/api/v1/stock` ([`seed004`]) and seed 002's `/inventory/stock` ([`seed002`]).

pub mod access;
pub mod seed002;
pub mod seed004;

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use sales_contracts::api::ErrorResponse;
use sales_contracts::api::stock::{Reservation, ReserveStock, StockLevel};
use sales_platform::listing::{Page, parse_id_list};
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::InventoryError;
use crate::reservations::ReleasedBy;
use crate::{reservations, stock};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// How long a reservation no order has claimed stays pending.
    pub reservation_hold: Duration,
    /// Added to an order's `hold_until` (`RESERVATION_GRACE`).
    pub reservation_grace: Duration,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inventory service",
        description = "Stock per item (SKU) and reservations that never oversell."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

pub fn router(state: AppState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_items))
        .routes(routes!(get_item, set_item))
        .routes(routes!(reserve))
        .routes(routes!(get_reservation))
        .routes(routes!(release))
        .routes(routes!(commit))
        .routes(routes!(seed004::upsert_item))
        .routes(routes!(seed004::list_items))
        .routes(routes!(seed004::get_item))
        .routes(routes!(seed004::reserve))
        .routes(routes!(seed004::release))
        .routes(routes!(seed002::take_out))
        .routes(routes!(seed002::get_stock))
        .with_state(state)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemFilter {
    /// Only the items of these products: comma-separated ids, e.g. `1,2,3` (at most 500).
    #[param(schema_with = sales_platform::listing::id_list_schema)]
    product_ids: Option<String>,
}

/// List stock levels, by SKU.
#[utoipa::path(get, path = "/api/v1/inventory/items", tag = "stock", params(ItemFilter, Page),
    responses((status = 200, body = [StockLevel]), (status = 400, body = ErrorResponse)))]
async fn list_items(
    State(state): State<AppState>,
    Query(filter): Query<ItemFilter>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<StockLevel>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let ids = filter
        .product_ids
        .as_deref()
        .map(|raw| parse_id_list(raw, "product_ids"))
        .transpose()?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        stock::list_stock(&mut conn, ids.as_deref(), limit, offset).await?,
    ))
}

/// Stock level of one item.
#[utoipa::path(get, path = "/api/v1/inventory/items/{sku}", tag = "stock",
    params(("sku" = String, Path, description = "The item's SKU", min_length = 1, max_length = 64,
        pattern = r"^[^/\\;%\u0000-\u001f\u007f-\u009f]*[^/\\;%\u0000-\u001f\u007f-\u009f\s.][^/\\;%\u0000-\u001f\u007f-\u009f]*$")),
    responses((status = 200, body = StockLevel), (status = 404, body = ErrorResponse)))]
async fn get_item(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Json<StockLevel>, InventoryError> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(stock::get_stock(&mut conn, &sku).await?))
}

/// A stock count: how many units of the item are in the warehouse.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    /// Units on hand, including reserved ones. Cannot be below what is reserved.
    #[schema(example = 25, minimum = 0)]
    on_hand: i32,
    /// Link the item to a catalogue product.
    product_id: Option<i64>,
}

/// Set the units on hand of an item, creating the item if it is new.
#[utoipa::path(put, path = "/api/v1/inventory/items/{sku}", tag = "stock",
    params(("sku" = String, Path, description = "The item's SKU", min_length = 1, max_length = 64,
        pattern = r"^[^/\\;%\u0000-\u001f\u007f-\u009f]*[^/\\;%\u0000-\u001f\u007f-\u009f\s.][^/\\;%\u0000-\u001f\u007f-\u009f]*$")),
    request_body = SetStock,
    responses((status = 200, description = "Updated", body = StockLevel),
               (status = 201, description = "Created", body = StockLevel),
               (status = 400, body = ErrorResponse),
               (status = 409, description = "`stock_reserved`: below what is reserved; \
                 `product_mismatch`: the item or the product is linked to another", body = ErrorResponse)))]
async fn set_item(
    State(state): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<SetStock>,
) -> Result<(StatusCode, Json<StockLevel>), InventoryError> {
    let mut tx = state.pool.begin().await?;
    let (level, created) = stock::set_on_hand(&mut tx, &sku, body.on_hand, body.product_id).await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(level)))
}

/// Reserve stock, all items or none. With an `order_id`, reserving again returns
/// the first reservation (200) so callers can retry safely.
#[utoipa::path(post, path = "/api/v1/inventory/reservations", tag = "reservations",
    request_body = ReserveStock,
    responses((status = 201, description = "Reserved", body = Reservation),
               (status = 200, description = "Already reserved for this order", body = Reservation),
               (status = 400, body = ErrorResponse),
               (status = 404, description = "Unknown SKU", body = ErrorResponse),
               (status = 409, description = "Not enough stock; `details.shortages` says where", body = ErrorResponse)))]
async fn reserve(
    State(state): State<AppState>,
    Json(body): Json<ReserveStock>,
) -> Result<(StatusCode, Json<Reservation>), InventoryError> {
    let hold = match body.hold_until {
        // An order's own deadline: its unpaid timeout gives the stock back; the
        // inventory's clock is only the backstop, `RESERVATION_GRACE` later.
        Some(until) if body.order_id.is_some() => {
            reservations::hold_until(until) + state.reservation_grace
        }
        Some(until) => reservations::hold_until(until),
        None => state.reservation_hold,
    };
    let (reservation, created) = reservations::reserve_stock(
        &state.pool,
        reservations::Origin::Canonical,
        body.order_id,
        &body.items,
        hold,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reservation)))
}

/// One reservation.
#[utoipa::path(get, path = "/api/v1/inventory/reservations/{id}", tag = "reservations",
    params(("id" = i64, Path)),
    responses((status = 200, body = Reservation), (status = 404, body = ErrorResponse)))]
async fn get_reservation(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Reservation>, InventoryError> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(reservations::get_reservation(&mut conn, id).await?))
}

/// Give a pending or held reservation back to stock.
#[utoipa::path(post, path = "/api/v1/inventory/reservations/{id}/release", tag = "reservations",
    params(("id" = i64, Path)),
    responses((status = 200, body = Reservation), (status = 404, body = ErrorResponse),
               (status = 409, description = "Already released or committed", body = ErrorResponse)))]
async fn release(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Reservation>, InventoryError> {
    let mut tx = state.pool.begin().await?;
    let r = reservations::release_reservation(&mut tx, id, ReleasedBy::Caller).await?;
    tx.commit().await?;
    Ok(Json(r))
}

/// Turn a reservation into a sale: the units leave the warehouse.
#[utoipa::path(post, path = "/api/v1/inventory/reservations/{id}/commit", tag = "reservations",
    params(("id" = i64, Path)),
    responses((status = 200, body = Reservation), (status = 404, body = ErrorResponse),
               (status = 409, description = "Already released", body = ErrorResponse)))]
async fn commit(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Reservation>, InventoryError> {
    let mut tx = state.pool.begin().await?;
    let r = reservations::commit_reservation(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(r))
}
