//! The shipping service: one shipment per paid order, `pending -> shipped ->
//! delivered`.
//!
//! - [`status`]: the state machine;
//! - [`shipments`]: opening, reading and moving shipments (moves announce
//!   `shipment-shipped` / `shipment-delivered` through the outbox);
//! - [`consumers`]: `paid-order` opens the order's shipment;
//! - [`http`]: the canonical API under `/api/v1/shipments` and seed 002's `/shipping`.

#![forbid(unsafe_code)]

pub mod consumers;
pub mod error;
pub mod http;
pub mod metrics;
pub mod shipments;
pub mod status;

use std::sync::Arc;

use clap::Parser;
use sales_contracts::topology::subscriptions_of;
use sales_platform::config::{BrokerArgs, DatabaseArgs, HttpArgs, IdentityArgs, TelemetryArgs};
use sales_platform::service::{RunningService, ServiceBuilder};

pub const SERVICE: &str = "shipping";

#[derive(Parser, Clone, Debug)]
#[command(name = "shipping-service", about = "Shipments of paid orders", version)]
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

/// Start the service: bind its ports, then migrate, consume and relay events in the
/// background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    service.identity(&config.identity, http::access::POLICY)?;
    let pool = service.database(&config.database, sqlx::migrate!())?;
    service.broker(&config.broker)?;
    service.outbox_relay()?;
    let metrics = metrics::ShippingMetrics::new(service.metrics());
    let consumer = Arc::new(consumers::ShippingConsumer {
        metrics: metrics.clone(),
    });
    for subscription in subscriptions_of(SERVICE) {
        service.consumer(subscription, consumer.clone())?;
    }
    let state = http::AppState { pool, metrics };
    let (router, openapi) = http::router(state).split_for_parts();
    service.serve(router, openapi).await
}
