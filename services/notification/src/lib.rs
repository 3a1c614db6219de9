//! The notification service (seed 000's message service): records a notification
//! for every order status change it hears of, and lists them.

#![forbid(unsafe_code)]

pub mod notifications;

use std::sync::Arc;

use axum::extract::State;
use clap::Parser;
use sales_contracts::api::ErrorResponse;
use sales_contracts::topology::subscriptions_of;
use sales_platform::config::{BrokerArgs, DatabaseArgs, HttpArgs, IdentityArgs, TelemetryArgs};
use sales_platform::identity::Caller;
use sales_platform::identity::access::{Access, RouteRule, rule};
use sales_platform::listing::Page;
use sales_platform::service::{RunningService, ServiceBuilder};
use sales_platform::{ApiError, Json, Query};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::notifications::Notification;

pub const SERVICE: &str = "notification";

#[derive(Parser, Clone, Debug)]
#[command(name = "notification-service", about = "Order notifications", version)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Notification service",
        description = "A notification for every order status change (seed 000's message service)."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

/// Who may call each route (see `sales_platform::identity::access`): customers read
/// their own notifications, admins everyone's.
pub const POLICY: &[RouteRule] = &[rule("GET", "/api/v1/notifications", Access::SignedIn)];

pub fn router(pool: PgPool) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_notifications))
        .with_state(pool)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only those about this order.
    #[serde(default, deserialize_with = "sales_platform::listing::whole_number")]
    order_id: Option<i64>,
    /// Only those for this customer (a customer always sees only their own).
    #[serde(default, deserialize_with = "sales_platform::listing::whole_number")]
    customer_id: Option<i64>,
}

/// Notifications, the latest change first (by when it happened).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    params(NotificationQuery, Page),
    responses((status = 200, body = [Notification]), (status = 400, body = ErrorResponse)))]
async fn list_notifications(
    State(pool): State<PgPool>,
    caller: Caller,
    Query(query): Query<NotificationQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    // A customer sees only their own; an admin everyone's, or one customer's.
    let customer = caller
        .customer_id()
        .filter(|_| !caller.is_admin())
        .or(query.customer_id);
    let mut conn = pool.acquire().await?;
    Ok(Json(
        notifications::list(&mut conn, query.order_id, customer, limit, offset).await?,
    ))
}

/// Start the service: bind its ports, then migrate and consume in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    service.identity(&config.identity, POLICY)?;
    let pool = service.database(&config.database, sqlx::migrate!())?;
    service.broker(&config.broker)?;
    let consumer = Arc::new(notifications::NotificationConsumer);
    for subscription in subscriptions_of(SERVICE) {
        service.consumer(subscription, consumer.clone())?;
    }
    let (router, openapi) = router(pool).split_for_parts();
    service.serve(router, openapi).await
}
