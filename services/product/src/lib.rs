//! The product service: the catalogue.
//!
//! - [`catalogue`]: adding and reading products (a new product is announced with
//!   `product-created` so the inventory opens its stock);
//! - [`http`]: the canonical API and seed 000's `GET /products`.

#![forbid(unsafe_code)]

pub mod catalogue;
pub mod error;
pub mod http;
pub mod inventory_client;

use std::time::Duration;

use clap::Parser;
use sales_contracts::Currency;
use sales_platform::client::ServiceClient;
use sales_platform::config::{
    BrokerArgs, CacheArgs, DatabaseArgs, HttpArgs, IdentityArgs, TelemetryArgs,
};
use sales_platform::service::{RunningService, ServiceBuilder};

pub const SERVICE: &str = "product";

#[derive(Parser, Clone, Debug)]
#[command(name = "product-service", about = "The product catalogue", version)]
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
    /// Currency of prices given as plain numbers (seed 002's `POST /products`).
    #[arg(long, env = "DEFAULT_CURRENCY", default_value = "USD")]
    pub default_currency: Currency,
    /// Base URL of the inventory service (for the stock shown by `GET /products`).
    #[arg(long, env = "INVENTORY_SERVICE_URL")]
    pub inventory_url: String,
    /// How long a call to another service may take.
    #[arg(long, env = "UPSTREAM_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
}

/// Start the service: bind its ports, then migrate and relay events in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    let identity = service.identity(&config.identity, http::access::POLICY)?;
    let pool = service.database(&config.database, sqlx::migrate!())?;
    service.broker(&config.broker)?;
    service.outbox_relay()?;
    let state = http::AppState {
        pool,
        inventory: ServiceClient::new("inventory", &config.inventory_url, config.upstream_timeout)?
            .with_credentials(identity.tokens),
        cache: config.cache.cache(service.metrics())?,
        default_currency: config.default_currency,
    };
    let (router, openapi) = http::router(state).split_for_parts();
    service.serve(router, openapi).await
}
