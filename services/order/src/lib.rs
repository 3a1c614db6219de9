//! The order service.
//!
//! - [`create_order`]: placing an order (where an order is created);
//! - [`claims`]: each order claimed before any side effect: idempotency keys per
//!   customer, bounded unpaid orders and reserved units;
//! - [`pay_order`], [`cancel_order`], [`unpaid_timeout`]: what happens to it next;
//! - [`payment_reconciler`]: charges whose outcome the order never recorded, settled;
//! - [`order_status`]: the state machine;
//! - [`orders`]: how orders are stored;
//! - [`shipment_events`]: shipped and delivered, from the shipping service;
//! - [`product_client`], [`inventory_client`], [`payment_client`]: calls to other services;
//! - [`http`]: the canonical API and the seeds' order routes.

#![forbid(unsafe_code)]

pub mod cancel_order;
pub mod claims;
pub mod create_order;
pub mod error;
pub mod expired_claims;
pub mod http;
pub mod inventory_client;
pub mod metrics;
pub mod order_status;
pub mod orders;
pub mod pay_order;
pub mod payment_client;
pub mod payment_reconciler;
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
    /// How long a charge at the payment service may take: longer than the payment
    /// service waits for its provider (10 s), so a slow provider's answer still
    /// reaches the order.
    #[arg(long, env = "PAYMENT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub payment_timeout: Duration,
    /// An order not paid within this time is cancelled and its stock restored.
    #[arg(long, env = "UNPAID_ORDER_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub unpaid_order_timeout: Duration,
    /// How often orders past their payment time, and expired order claims, are
    /// looked for.
    #[arg(long, env = "UNPAID_ORDER_SWEEP_EVERY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub unpaid_order_sweep_every: Duration,
    /// Most unpaid (`PENDING`) orders one customer may have at once, orders being
    /// placed included; callers without an account are bounded per client address.
    /// Administrators are not bounded.
    #[arg(long, env = "MAX_UNPAID_ORDERS_PER_CUSTOMER", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_unpaid_orders_per_customer: u32,
    /// Most units one customer (or client address) may hold in unpaid orders at once.
    #[arg(long, env = "MAX_RESERVED_UNITS_PER_CUSTOMER", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_reserved_units_per_customer: u32,
    /// A request with an idempotency key that has not finished after this long is
    /// taken to have crashed: the next request with the key takes its claim over.
    #[arg(long, env = "IDEMPOTENCY_CLAIM_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub idempotency_claim_ttl: Duration,
    /// A charge whose outcome the order has not recorded this long after it started
    /// is settled by asking the payment service (a crash, a lost answer).
    #[arg(long, env = "PAYMENT_RECONCILE_AFTER", default_value = "1m", value_parser = humantime::parse_duration)]
    pub payment_reconcile_after: Duration,
    /// How often unsettled charges are looked for.
    #[arg(long, env = "PAYMENT_RECONCILE_EVERY", default_value = "10s", value_parser = humantime::parse_duration)]
    pub payment_reconcile_every: Duration,
    /// How long a request waits for an earlier one with the same idempotency key to
    /// finish before answering 409 (retry later). Shorter than the gateway's
    /// `UPSTREAM_TIMEOUT` (5 s), so that a client behind it gets the 409, not a 504.
    #[arg(long, env = "IDEMPOTENCY_WAIT", default_value = "4s", value_parser = humantime::parse_duration)]
    pub idempotency_wait: Duration,
}

/// What the order handlers share.
#[derive(Clone)]
pub struct OrderContext {
    pub pool: PgPool,
    pub products: ServiceClient,
    pub inventory: ServiceClient,
    pub payments: ServiceClient,
    pub unpaid_timeout: Duration,
    /// How long after a charge started "no payment" means it never arrived.
    pub payment_reconcile_after: Duration,
    /// Bounds per customer, and how idempotency claims behave.
    pub limits: claims::Limits,
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
    service.broker(&config.broker)?;
    service.outbox_relay()?;
    let ctx = OrderContext {
        pool,
        products: ServiceClient::new("product", &config.product_url, config.upstream_timeout)?
            .with_credentials(identity.tokens.clone()),
        inventory: ServiceClient::new("inventory", &config.inventory_url, config.upstream_timeout)?
            .with_credentials(identity.tokens.clone()),
        payments: ServiceClient::new("payment", &config.payment_url, config.payment_timeout)?
            .with_credentials(identity.tokens),
        unpaid_timeout: config.unpaid_order_timeout,
        payment_reconcile_after: config.payment_reconcile_after,
        limits: claims::Limits {
            max_unpaid_orders: i64::from(config.max_unpaid_orders_per_customer),
            max_reserved_units: i64::from(config.max_reserved_units_per_customer),
            claim_ttl: config.idempotency_claim_ttl,
            wait: config.idempotency_wait,
        },
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
    service.worker(
        "expired-claims",
        expired_claims::run(
            ctx.clone(),
            config.unpaid_order_sweep_every,
            service.shutdown_token(),
        ),
    );
    service.worker(
        "payment-reconciler",
        payment_reconciler::run(
            ctx.clone(),
            config.payment_reconcile_every,
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
