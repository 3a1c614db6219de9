//! The inventory service: stock per item and reservations that never oversell.
//!
//! - [`reservations`]: reserve, commit, release, expire — where stock is reserved;
//! - [`order_reservations`]: what an order's messages do to its reservation, in any order;
//! - [`stock`]: stock levels and counts;
//! - [`consumers`]: `product-created`, `update-stock`, `paid-order`, `restore-canceled-item`;
//! - [`http`]: the API.

#![forbid(unsafe_code)]

pub mod consumers;
pub mod error;
pub mod http;
pub mod order_reservations;
pub mod reservations;
pub mod stock;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sales_contracts::topology::subscriptions_of;
use sales_platform::config::{BrokerArgs, DatabaseArgs, HttpArgs, IdentityArgs, TelemetryArgs};
use sales_platform::service::{RunningService, ServiceBuilder};

pub const SERVICE: &str = "inventory";

#[derive(Parser, Clone, Debug)]
#[command(name = "inventory-service", about = "Stock and reservations", version)]
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
    /// How long stock reserved without a `hold_until` (the order service sends its
    /// order's pay-by time) stays reserved if no order claims it.
    #[arg(long, env = "RESERVATION_HOLD", default_value = "15m", value_parser = humantime::parse_duration)]
    pub reservation_hold: Duration,
    /// How long after its order's pay-by time (`hold_until`) the inventory releases an
    /// order's reservation by itself. The order service cancels unpaid orders at
    /// pay-by and gives their stock back with `restore-canceled-item`; this is the
    /// backstop for an order that was never stored, and outlasts a broker outage that
    /// holds back a paid order's `paid-order` (which would otherwise find its
    /// reservation released and its units taken).
    #[arg(long, env = "RESERVATION_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub reservation_grace: Duration,
    /// How often expired reservations are looked for.
    #[arg(long, env = "RESERVATION_SWEEP_EVERY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub reservation_sweep_every: Duration,
}

/// Start the service: bind its ports, then migrate, consume and sweep in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    service.identity(&config.identity, http::access::POLICY)?;
    let pool = service.database(&config.database, sqlx::migrate!())?;
    service.broker(&config.broker)?;
    let consumer = Arc::new(consumers::InventoryConsumer);
    for subscription in subscriptions_of(SERVICE) {
        service.consumer(subscription, consumer.clone())?;
    }
    service.worker(
        "reservation-expiry",
        reservations::run_expiry(
            pool.clone(),
            config.reservation_sweep_every,
            service.shutdown_token(),
        ),
    );
    let state = http::AppState {
        pool,
        reservation_hold: config.reservation_hold,
        reservation_grace: config.reservation_grace,
    };
    let (router, openapi) = http::router(state).split_for_parts();
    service.serve(router, openapi).await
}
