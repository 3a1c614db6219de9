//! The payment service: one payment per order, authorized by a simulated authorizer
//! and moved through a state machine from `pending` to `refunded`.
//!
//! - [`payments`]: storage and every operation (open, charge, authorize, confirm, refund);
//! - [`payment_status`]: the state machine;
//! - [`authorizer`]: the simulated authorizer (declines at or above `DECLINE_AT`);
//! - [`metrics`]: `payments_total{status}`, `payment_amount_minor_units_total{currency,status}`;
//! - [`http`]: the canonical API, seed 002's and seed 004's routes.
//!
//! The service publishes no events and consumes none, so it needs no broker.

#![forbid(unsafe_code)]

pub mod authorizer;
pub mod error;
pub mod http;
pub mod metrics;
pub mod payment_status;
pub mod payments;

use clap::Parser;
use sales_contracts::Currency;
use sales_platform::config::{DatabaseArgs, HttpArgs, IdentityArgs, TelemetryArgs};
use sales_platform::service::{RunningService, ServiceBuilder};

use crate::authorizer::{Authorizer, DeclineLimit};

pub const SERVICE: &str = "payment";

#[derive(Parser, Clone, Debug)]
#[command(name = "payment-service", about = "Payments, one per order", version)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The simulated authorizer declines amounts at or above this, in major units of
    /// the payment's currency (1000 is 1000.00 USD, 1000 JPY).
    #[arg(long, env = "DECLINE_AT", default_value = "1000")]
    pub decline_at: DeclineLimit,
    /// The currency of amounts that name none (seed 002's `POST /payments`).
    #[arg(long, env = "DEFAULT_CURRENCY", default_value = "USD")]
    pub default_currency: Currency,
}

/// Start the service: bind its ports, then migrate in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    service.identity(&config.identity, http::access::POLICY)?;
    let pool = service.database(&config.database, sqlx::migrate!())?;
    let state = http::AppState {
        payments: payments::Payments {
            pool,
            authorizer: Authorizer::new(config.decline_at),
            metrics: metrics::PaymentMetrics::new(service.metrics()),
        },
        default_currency: config.default_currency,
    };
    let (router, openapi) = http::router(state).split_for_parts();
    service.serve(router, openapi).await
}
