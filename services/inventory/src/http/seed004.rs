//! Seed 004's stock API, with its shapes. Its `quantity` is what can still be
//! reserved (our `available`); its reservations belong to no order and, unlike
//! seed 004's, are released by themselves after `RESERVATION_HOLD` unless committed.
//!
//! - `POST /api/v1/stock/items {item_sku, quantity}` -> 201 `{item_sku, quantity}`
//! - `GET /api/v1/stock/` -> `[{item_sku, quantity}]`; `GET /api/v1/stock/{sku}`
//! - `POST /api/v1/stock/reserve {item_sku, quantity}` ->
//!   `{reservation_id, item_sku, quantity, remaining_quantity}`; 400 when short, 404 unknown
//! - `POST /api/v1/stock/release {reservation_id}` ->
//!   `{released: true, reservation_id, item_sku}`; 404 unknown, 400 if already released.
//!   Only the reservations seed 004's `reserve` made: the seed let anyone release
//!   those, and there were no others. An order's reservation, or one made through
//!   the canonical API, is 404 (as if it did not exist) unless an administrator asks.

use axum::extract::State;
use axum::http::StatusCode;
use sales_contracts::api::ErrorResponse;
use sales_contracts::api::stock::{ReservationLine, ReservationStatus};
use sales_platform::identity::Caller;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use crate::error::InventoryError;
use crate::reservations::{Origin, ReleasedBy};
use crate::{reservations, stock};

/// A stock item: `quantity` is what can still be reserved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StockItem {
    /// 1 to 64 characters, not only spaces and dots, without control characters,
    /// `/`, `\`, `;` or `%`.
    #[schema(schema_with = sales_contracts::api::stock::sku_schema)]
    item_sku: String,
    /// Not negative; with what is reserved, at most 2147483647 on hand.
    #[schema(example = 10, minimum = 0)]
    quantity: i32,
}

/// Units of one item to reserve.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReserveItem {
    #[schema(schema_with = sales_contracts::api::stock::sku_schema)]
    item_sku: String,
    #[schema(example = 2, minimum = 1)]
    quantity: i32,
}

/// Seed 004 answers "not enough" (and "too many") with 400 where the canonical API
/// says 409.
fn seed004_error(err: InventoryError) -> ApiError {
    match err {
        InventoryError::InsufficientStock(_) | InventoryError::TooManyUnits { .. } => {
            let mut e = ApiError::from(err);
            e.status = StatusCode::BAD_REQUEST;
            e
        }
        InventoryError::InvalidTransition {
            status: ReservationStatus::Released,
            reservation_id,
            ..
        } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "already_released",
            format!("reservation {reservation_id} is already released"),
        ),
        other => other.into(),
    }
}

/// Seed 004: add or update a stock item.
#[utoipa::path(post, path = "/api/v1/stock/items", tag = "seed 004",
    operation_id = "seed004_upsert_item",
    request_body = StockItem,
    responses((status = 201, body = StockItem), (status = 400, body = ErrorResponse),
               (status = 403, description = "`catalogue_item`: a catalogue product's stock (administrators only)", body = ErrorResponse)))]
pub async fn upsert_item(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<StockItem>,
) -> Result<(StatusCode, Json<StockItem>), ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !caller.is_admin() {
        stock::refuse_catalogue_item(&mut conn, &body.item_sku).await?;
    }
    let level = stock::set_available(&mut conn, &body.item_sku, body.quantity)
        .await
        .map_err(seed004_error)?;
    Ok((
        StatusCode::CREATED,
        Json(StockItem {
            item_sku: level.sku,
            quantity: level.available,
        }),
    ))
}

/// Seed 004: every stock item.
#[utoipa::path(get, path = "/api/v1/stock/", tag = "seed 004",
    operation_id = "seed004_list_items",
    params(Page),
    responses((status = 200, body = [StockItem])))]
pub async fn list_items(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<StockItem>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let mut conn = state.pool.acquire().await?;
    let levels = stock::list_stock(&mut conn, None, limit, offset)
        .await
        .map_err(seed004_error)?;
    Ok(Json(
        levels
            .into_iter()
            .map(|l| StockItem {
                item_sku: l.sku,
                quantity: l.available,
            })
            .collect(),
    ))
}

/// Seed 004: one stock item.
#[utoipa::path(get, path = "/api/v1/stock/{sku}", tag = "seed 004",
    operation_id = "seed004_get_item",
    params(("sku" = String, Path, min_length = 1, max_length = 64, pattern = r"^[^/\\;%\u0000-\u001f\u007f-\u009f]*[^/\\;%\u0000-\u001f\u007f-\u009f\s.][^/\\;%\u0000-\u001f\u007f-\u009f]*$")),
    responses((status = 200, body = StockItem), (status = 404, body = ErrorResponse)))]
pub async fn get_item(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Json<StockItem>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let level = stock::get_stock(&mut conn, &sku)
        .await
        .map_err(seed004_error)?;
    Ok(Json(StockItem {
        item_sku: level.sku,
        quantity: level.available,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Seed004Reservation {
    reservation_id: i64,
    item_sku: String,
    quantity: i32,
    remaining_quantity: i32,
}

/// Seed 004: reserve units of one item.
#[utoipa::path(post, path = "/api/v1/stock/reserve", tag = "seed 004",
    operation_id = "seed004_reserve",
    request_body = ReserveItem,
    responses((status = 200, body = Seed004Reservation),
               (status = 400, description = "Not enough stock, or bad input", body = ErrorResponse),
               (status = 403, description = "`catalogue_item`: a catalogue product's stock (administrators only)", body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
pub async fn reserve(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ReserveItem>,
) -> Result<Json<Seed004Reservation>, ApiError> {
    if !caller.is_admin() {
        stock::refuse_catalogue_item(&mut *state.pool.acquire().await?, &body.item_sku).await?;
    }
    let line = ReservationLine {
        sku: body.item_sku.clone(),
        quantity: body.quantity,
    };
    let (reservation, _) = reservations::reserve_stock(
        &state.pool,
        Origin::Seed004,
        None,
        &[line],
        state.reservation_hold,
    )
    .await
    .map_err(seed004_error)?;
    let mut conn = state.pool.acquire().await?;
    let level = stock::get_stock(&mut conn, &body.item_sku)
        .await
        .map_err(seed004_error)?;
    Ok(Json(Seed004Reservation {
        reservation_id: reservation.reservation_id,
        item_sku: level.sku,
        quantity: body.quantity,
        remaining_quantity: level.available,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Release {
    reservation_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Released {
    released: bool,
    reservation_id: i64,
    item_sku: String,
}

/// Seed 004: release a reservation that seed 004's `reserve` made. Others (an
/// order's, one made through the canonical API) are not found, except by an
/// administrator.
#[utoipa::path(post, path = "/api/v1/stock/release", tag = "seed 004",
    operation_id = "seed004_release",
    request_body = Release,
    responses((status = 200, body = Released),
               (status = 400, description = "Already released", body = ErrorResponse),
               (status = 404, description = "No such reservation of seed 004", body = ErrorResponse),
               (status = 409, description = "`invalid_transition`: (administrators) the reservation was committed", body = ErrorResponse)))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Release>,
) -> Result<Json<Released>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let released = if caller.is_admin() {
        reservations::release_reservation(&mut tx, body.reservation_id, ReleasedBy::Caller).await
    } else {
        reservations::release_seed004_reservation(&mut tx, body.reservation_id).await
    };
    let r = released.map_err(seed004_error)?;
    tx.commit().await?;
    Ok(Json(Released {
        released: true,
        reservation_id: r.reservation_id,
        item_sku: r.items.first().map(|l| l.sku.clone()).unwrap_or_default(),
    }))
}
