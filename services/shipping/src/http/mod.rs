//! The shipping service's HTTP API: the canonical shipments API under
//! `/api/v1/shipments` and seed 002's `/shipping` ([`seed002`]).
//!
//! Who may call what is [`access::POLICY`]: a customer reads only their own
//! shipments (another customer's is a 404); opening and moving shipments is for
//! admins; a customer gets 403. Seed 002's routes also let an anonymous caller act
//! on shipments placed without an account ([`seed002`]).

pub mod access;
mod body;
pub mod seed002;

use axum::extract::State;
use axum::http::StatusCode;
use sales_contracts::api::ErrorResponse;
use sales_platform::identity::{Caller, OwnerScope};
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use body::OptionalJson;

use crate::error::ShippingError;
use crate::metrics::ShippingMetrics;
use crate::shipments::{self, Dispatch, Shipment, ShipmentFilter};
use crate::status::ShipmentStatus;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: ShippingMetrics,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shipping service",
        description = "One shipment per paid order: pending -> shipped -> delivered.\n\n\
            A `paid-order` event opens the order's shipment; shipping and delivering it \
            publish `shipment-shipped` and `shipment-delivered`. Opening and moving \
            shipments needs an admin; a customer sees only their own shipments."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

pub fn router(state: AppState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_shipments, create_shipment))
        .routes(routes!(get_shipment))
        .routes(routes!(ship))
        .routes(routes!(deliver))
        .routes(routes!(seed002::create_shipping))
        .routes(routes!(seed002::get_shipping, seed002::update_shipping))
        .with_state(state)
}

/// Whose shipments `caller` may open and move on the canonical routes: admins
/// everyone's; anyone else none (403).
pub fn managed_scope(caller: &Caller, action: &'static str) -> Result<OwnerScope, ShippingError> {
    if caller.is_admin() {
        Ok(OwnerScope::All)
    } else {
        Err(ShippingError::Forbidden(action))
    }
}

/// The shipment `id`, as `caller` may see it: another customer's is a 404.
pub async fn visible_shipment(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<Shipment, ShippingError> {
    let mut conn = state.pool.acquire().await?;
    let shipment = shipments::get(&mut conn, id).await?;
    if !caller.may_see(shipment.customer_id) {
        return Err(ShippingError::NotFound(id));
    }
    Ok(shipment)
}

/// Open the shipment of `order_id`; `201` when new, `200` when the order had one.
/// An order whose shipment is outside `scope` (a customer's, for an anonymous
/// caller) is a 403, and nothing of its shipment is shown.
pub async fn open_shipment(
    state: &AppState,
    order_id: i64,
    scope: OwnerScope,
) -> Result<(StatusCode, Shipment), ShippingError> {
    let (shipment, opened) = shipments::open_in_pool(&state.pool, order_id).await?;
    if !shipments::in_scope(scope, shipment.customer_id) {
        return Err(ShippingError::Forbidden(
            "open the shipment of a customer's order",
        ));
    }
    if opened {
        state.metrics.status_entered(ShipmentStatus::Pending);
        tracing::debug!(order_id, shipment_id = shipment.id, "shipment opened");
        Ok((StatusCode::CREATED, shipment))
    } else {
        Ok((StatusCode::OK, shipment))
    }
}

/// Move shipment `id` to `to`, counting the status it entered. A shipment outside
/// `scope` is a 404, as if it did not exist.
pub async fn move_shipment(
    state: &AppState,
    id: i64,
    to: ShipmentStatus,
    dispatch: Dispatch,
    scope: OwnerScope,
) -> Result<Shipment, ShippingError> {
    let shipment = shipments::advance(&state.pool, id, to, dispatch, scope).await?;
    state.metrics.status_entered(shipment.status);
    Ok(shipment)
}

/// A shipment to open for an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShipment {
    #[schema(example = 42, minimum = 1)]
    pub order_id: i64,
}

/// Open the shipment of an order by hand (a `paid-order` event does it by itself).
/// Idempotent per order: the order's existing shipment comes back with 200.
#[utoipa::path(post, path = "/api/v1/shipments", tag = "shipments",
    request_body = CreateShipment,
    responses((status = 201, description = "Opened", body = Shipment),
               (status = 200, description = "The order already has this shipment", body = Shipment),
               (status = 400, body = ErrorResponse),
               (status = 403, description = "Customers may not open shipments", body = ErrorResponse)))]
async fn create_shipment(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateShipment>,
) -> Result<(StatusCode, Json<Shipment>), ShippingError> {
    let scope = managed_scope(&caller, "open shipments")?;
    let (status, shipment) = open_shipment(&state, body.order_id, scope).await?;
    Ok((status, Json(shipment)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShipmentQuery {
    /// Only the shipment of this order.
    #[serde(default, deserialize_with = "sales_platform::listing::whole_number")]
    order_id: Option<i64>,
    /// Only shipments in this status: `pending`, `shipped` or `delivered`.
    #[param(value_type = Option<ShipmentStatus>)]
    status: Option<String>,
}

/// List shipments, newest first. A customer sees only their own.
#[utoipa::path(get, path = "/api/v1/shipments", tag = "shipments", params(ShipmentQuery, Page),
    responses((status = 200, body = [Shipment]), (status = 400, body = ErrorResponse)))]
async fn list_shipments(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ShipmentQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Shipment>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let status = query
        .status
        .map(|s| {
            ShipmentStatus::parse(&s).ok_or(ShippingError::UnknownStatus {
                field: "status",
                got: s,
                allowed: &ShipmentStatus::ALL,
            })
        })
        .transpose()?;
    let filter = ShipmentFilter {
        owner: caller.owner_scope(),
        order_id: query.order_id,
        status,
    };
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        shipments::list(&mut conn, &filter, limit, offset).await?,
    ))
}

/// One shipment. Another customer's is a 404.
#[utoipa::path(get, path = "/api/v1/shipments/{id}", tag = "shipments",
    params(("id" = i64, Path, description = "The shipment's id")),
    responses((status = 200, body = Shipment), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
async fn get_shipment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Shipment>, ShippingError> {
    Ok(Json(visible_shipment(&state, &caller, id).await?))
}

/// Who carries the shipment; both optional, and so is the whole body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    /// 1 to 100 characters, not only spaces, no control characters.
    #[schema(
        example = "DHL",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub carrier: Option<String>,
    /// 1 to 100 characters, not only spaces, no control characters.
    #[schema(
        example = "JD014600003SE",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub tracking_number: Option<String>,
}

/// The schema of a carrier or tracking number ([`ShipRequest`]'s), `null`able.
pub fn label_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some("1 to 100 characters, not only spaces, no control characters."))
        .min_length(Some(1))
        .max_length(Some(crate::shipments::MAX_LABEL_CHARS))
        .pattern(Some(r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"))
        .build()
}

/// Ship a `pending` shipment: it becomes `shipped` and `shipment-shipped` is published.
#[utoipa::path(post, path = "/api/v1/shipments/{id}/ship", tag = "shipments",
    params(("id" = i64, Path, description = "The shipment's id")),
    request_body(content = ShipRequest, description = "Optional: the carrier and tracking number"),
    responses((status = 200, body = Shipment), (status = 400, body = ErrorResponse),
               (status = 403, description = "Customers may not move shipments", body = ErrorResponse),
               (status = 404, body = ErrorResponse),
               (status = 409, description = "Not `pending`, or (`order_not_paid`) its order's paid-order has not come", body = ErrorResponse)))]
async fn ship(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ShipRequest>,
) -> Result<Json<Shipment>, ShippingError> {
    let scope = managed_scope(&caller, "ship shipments")?;
    let body = body.unwrap_or_default();
    let dispatch = Dispatch::new(body.carrier, body.tracking_number)?;
    Ok(Json(
        move_shipment(&state, id, ShipmentStatus::Shipped, dispatch, scope).await?,
    ))
}

/// Nothing to say when delivering; the body, if any, must be `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverRequest {}

/// Deliver a `shipped` shipment: it becomes `delivered` (final) and
/// `shipment-delivered` is published.
#[utoipa::path(post, path = "/api/v1/shipments/{id}/deliver", tag = "shipments",
    params(("id" = i64, Path, description = "The shipment's id")),
    responses((status = 200, body = Shipment), (status = 400, body = ErrorResponse),
               (status = 403, description = "Customers may not move shipments", body = ErrorResponse),
               (status = 404, body = ErrorResponse),
               (status = 409, description = "Not `shipped`", body = ErrorResponse)))]
async fn deliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(_body): OptionalJson<DeliverRequest>,
) -> Result<Json<Shipment>, ShippingError> {
    let scope = managed_scope(&caller, "deliver shipments")?;
    Ok(Json(
        move_shipment(
            &state,
            id,
            ShipmentStatus::Delivered,
            Dispatch::default(),
            scope,
        )
        .await?,
    ))
}
