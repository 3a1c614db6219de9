//! The payment service: one payment per order, authorized by a simulated authorizer
//! and moved through a state machine from `pending` to `refunded`.
//!
//! - [`payments`]: storage and every operation (open, charge, authorize, confirm, refund);
//! - [`payment_status`]: the state machine;
//! - [`provider`]: the payment provider's interface (idempotency key per call);
//! - [`provider_calls`]: each call written down before it is made, its answer
//!   recorded after, and the reconciler that settles calls whose answer was lost;
//! - [`simulated_provider`] and [`authorizer`]: the simulated provider (declines at
//!   or above `DECLINE_AT`);
//! - [`metrics`]: `payments_total{status}`, `payment_amount_minor_units_total{currency,status}`,
//!   `payment_provider_calls_total{operation,outcome}`, `payment_provider_calls_in_doubt`;
//! - [`http`]: the canonical API, seed 002's and seed 004's routes.
//!
//! The service publishes no events and consumes none, so it needs no broker: the
//! order service asks it for an order's payment when it settles an order
//! (`services/order/src/payment_reconciler.rs`).

#![forbid(unsafe_code)]

pub mod authorizer;
pub mod error;
pub mod http;
pub mod metrics;
pub mod payment_status;
pub mod payments;
pub mod provider;
pub mod provider_calls;
pub mod simulated_provider;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sales_contracts::Currency;
use sales_platform::config::{DatabaseArgs, HttpArgs, IdentityArgs, TelemetryArgs};
use sales_platform::service::{RunningService, ServiceBuilder};

use crate::authorizer::{Authorizer, DeclineLimit};
use crate::provider::PaymentProvider;
use crate::simulated_provider::SimulatedProvider;

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
    /// How often provider calls whose answer was lost are made again.
    #[arg(long, env = "PROVIDER_RECONCILE_EVERY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub provider_reconcile_every: Duration,
    /// A provider call unanswered this long is made again (with the same key).
    #[arg(long, env = "PROVIDER_CALL_IN_DOUBT_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub provider_call_in_doubt_after: Duration,
}

/// Start the service with the simulated provider: bind its ports, then migrate and
/// reconcile in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let authorizer = Authorizer::new(config.decline_at);
    build_with_provider(config, move |books| {
        Arc::new(SimulatedProvider { books, authorizer })
    })
    .await
}

/// Start the service with the provider `provider` makes (given the service's
/// database pool, where the simulated provider keeps its books).
pub async fn build_with_provider(
    config: Config,
    provider: impl FnOnce(sqlx::PgPool) -> Arc<dyn PaymentProvider>,
) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    service.identity(&config.identity, http::access::POLICY)?;
    let pool = service.database(&config.database, sqlx::migrate!())?;
    let payments = payments::Payments {
        provider: provider(pool.clone()),
        pool,
        metrics: metrics::PaymentMetrics::new(service.metrics()),
    };
    service.worker(
        "provider-reconciler",
        provider_calls::run(
            payments.clone(),
            config.provider_reconcile_every,
            config.provider_call_in_doubt_after,
            service.shutdown_token(),
        ),
    );
    let state = http::AppState {
        payments,
        default_currency: config.default_currency,
    };
    let (router, openapi) = http::router(state).split_for_parts();
    service.serve(router, openapi).await
}
