//! The order service.
//!
//! - [`create_order`]: placing an order (where an order is created);
//! - [`pay_order`], [`cancel_order`], [`unpaid_timeout`]: what happens to it next;
//! - [`order_status`]: the state machine;
//! - [`orders`]: how orders are stored;
//! - [`shipment_events`]: shipped and delivered, from the shipping service;
//! - [`product_client`], [`inventory_client`], [`payment_client`]: calls to other services;
//! - [`http`]: the canonical API and seed 000's routes.

#![forbid(unsafe_code)]

pub mod cancel_order;
pub mod create_order;
pub mod error;
pub mod http;
pub mod inventory_client;
pub mod metrics;
pub mod order_status;
pub mod orders;
pub mod pay_order;
pub mod payment_client;
pub mod product_client;
pub mod shipment_events;
pub mod unpaid_timeout;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sales_contracts::topology::subscriptions_of;
use sales_platform::cache::Cache;
use sales_platform::client::ServiceClient;
use sales_platform::config::{
    BrokerArgs, CacheArgs, DatabaseArgs, HttpArgs, IdentityArgs, TelemetryArgs,
};
use sales_platform::service::{RunningService, ServiceBuilder};
use sqlx::PgPool;

pub const SERVICE: &str = "order";

#[derive(Parser, Clone, Debug)]
#[command(name = "order-service", about = "Orders and their life cycle", version)]
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
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Base URL of the product service (the catalogue).
    #[arg(long, env = "PRODUCT_SERVICE_URL")]
    pub product_url: String,
    /// Base URL of the inventory service.
    #[arg(long, env = "INVENTORY_SERVICE_URL")]
    pub inventory_url: String,
    /// Base URL of the payment service.
    #[arg(long, env = "PAYMENT_SERVICE_URL")]
    pub payment_url: String,
    /// How long a call to another service may take.
    #[arg(long, env = "UPSTREAM_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// An order not paid within this time is cancelled and its stock restored.
    #[arg(long, env = "UNPAID_ORDER_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub unpaid_order_timeout: Duration,
    /// How often orders past their payment time are looked for.
    #[arg(long, env = "UNPAID_ORDER_SWEEP_EVERY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub unpaid_order_sweep_every: Duration,
}

/// What the order handlers share.
#[derive(Clone)]
pub struct OrderContext {
    pub pool: PgPool,
    pub products: ServiceClient,
    pub inventory: ServiceClient,
    pub payments: ServiceClient,
    pub unpaid_timeout: Duration,
    pub metrics: metrics::OrderMetrics,
    /// `orders:product:{id}` entries (seed 003's orders of a product).
    pub cache: Cache,
}

impl OrderContext {
    /// Drop the cached order lists of the order's products. Call after the change
    /// commits, before answering.
    pub async fn invalidate_order_caches(&self, order: &orders::Order) {
        for product_id in order.product_ids() {
            for key in [
                format!("orders:product:{product_id}"),
                format!("orders:product:{product_id}:anonymous"),
            ] {
                self.cache.invalidate(&key).await;
            }
        }
    }
}

/// Start the service: bind its ports, then migrate, relay events and time out
/// unpaid orders in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    let identity = service.identity(&config.identity, http::access::POLICY)?;
    let pool = service.database(&config.database, sqlx::migrate!())?;
    service.broker(&config.broker);
    service.outbox_relay()?;
    let ctx = OrderContext {
        pool,
        products: ServiceClient::new("product", &config.product_url, config.upstream_timeout)?
            .with_credentials(identity.tokens.clone()),
        inventory: ServiceClient::new("inventory", &config.inventory_url, config.upstream_timeout)?
            .with_credentials(identity.tokens.clone()),
        payments: ServiceClient::new("payment", &config.payment_url, config.upstream_timeout)?
            .with_credentials(identity.tokens),
        unpaid_timeout: config.unpaid_order_timeout,
        metrics: metrics::OrderMetrics::new(service.metrics()),
        cache: config.cache.cache(service.metrics())?,
    };
    service.worker(
        "unpaid-timeout",
        unpaid_timeout::run(
            ctx.clone(),
            config.unpaid_order_sweep_every,
            service.shutdown_token(),
        ),
    );
    let shipments = Arc::new(shipment_events::ShipmentConsumer { ctx: ctx.clone() });
    for subscription in subscriptions_of(SERVICE) {
        service.consumer(subscription, shipments.clone())?;
    }
    let (router, openapi) = http::router(ctx).split_for_parts();
    service.serve(router, openapi).await
}
