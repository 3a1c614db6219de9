//! The API gateway: the one public entry of the system (seed 002's, on port 8080).
//!
//! - [`canonical_path`]: the one path policy, routing and upstream all see;
//! - [`routes`]: which service answers which path (the routing table);
//! - [`access`]: who may call what (the access policy table);
//! - [`auth`]: verifying the customer's access token, revocation included;
//! - [`upstream_credentials`]: the token the gateway gives each forwarded request;
//! - [`client_address`]: the client's address, behind trusted proxies only;
//! - [`rate_limit`]: per-client limits with counters in Redis (locally without it);
//! - [`breaker`]: the circuit breaker, a pure state machine;
//! - [`proxy`]: forwarding with timeouts, retries and the breaker;
//! - [`docs`]: Swagger UI over every service's OpenAPI document;
//! - [`http`]: the gate every request passes, and the router.
//!
//! The gateway has no database and no broker; `/health`, `/ready`, `/metrics` and the
//! request-id, trace and metrics layers come from the platform.

#![forbid(unsafe_code)]

pub mod access;
pub mod auth;
pub mod breaker;
pub mod canonical_path;
pub mod client_address;
pub mod docs;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod rate_limit;
pub mod routes;
pub mod upstream_credentials;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{ArgAction, Args, Parser};
use sales_platform::config::{HttpArgs, TelemetryArgs};
use sales_platform::service::{RunningService, ServiceBuilder};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use sales_platform::identity::keys::SigningKeys;
use sales_platform::identity::service_credentials::ServiceTokens;
use sales_platform::identity::token_versions::TokenVersions;

use crate::auth::Authenticator;
use crate::breaker::BreakerConfig;
use crate::client_address::TrustedProxies;
use crate::metrics::GatewayMetrics;
use crate::proxy::{ProxyConfig, Upstreams};
use crate::rate_limit::{RateLimitConfig, RateLimiter};
use crate::routes::Upstream;
use crate::upstream_credentials::UpstreamCredentials;

pub const SERVICE: &str = "gateway";

#[derive(Parser, Clone, Debug)]
#[command(
    name = "gateway-service",
    about = "The API gateway: canonical paths, tokens, access, rate limits, timeouts, retries, circuit breakers",
    version
)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub upstreams: UpstreamArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub rate_limit: RateLimitArgs,
    #[command(flatten)]
    pub fault_tolerance: FaultToleranceArgs,
}

/// Where the services are.
#[derive(Args, Clone, Debug)]
pub struct UpstreamArgs {
    /// Base URL of the product service (catalogue).
    #[arg(long, env = "PRODUCT_SERVICE_URL")]
    pub product_url: String,
    /// Base URL of the order service.
    #[arg(long, env = "ORDER_SERVICE_URL")]
    pub order_url: String,
    /// Base URL of the customer service (register, login, profiles).
    #[arg(long, env = "CUSTOMER_SERVICE_URL")]
    pub customer_url: String,
    /// Base URL of the payment service.
    #[arg(long, env = "PAYMENT_SERVICE_URL")]
    pub payment_url: String,
    /// Base URL of the inventory service.
    #[arg(long, env = "INVENTORY_SERVICE_URL")]
    pub inventory_url: String,
    /// Base URL of the shipping service.
    #[arg(long, env = "SHIPPING_SERVICE_URL")]
    pub shipping_url: String,
    /// Base URL of the notification service.
    #[arg(long, env = "NOTIFICATION_SERVICE_URL")]
    pub notification_url: String,
    /// How long fetching a service's OpenAPI document for `/docs` may take.
    #[arg(long, env = "OPENAPI_FETCH_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub openapi_fetch_timeout: Duration,
}

impl UpstreamArgs {
    pub fn urls(&self) -> HashMap<Upstream, String> {
        HashMap::from([
            (Upstream::Product, self.product_url.clone()),
            (Upstream::Order, self.order_url.clone()),
            (Upstream::Customer, self.customer_url.clone()),
            (Upstream::Payment, self.payment_url.clone()),
            (Upstream::Inventory, self.inventory_url.clone()),
            (Upstream::Shipping, self.shipping_url.clone()),
            (Upstream::Notification, self.notification_url.clone()),
        ])
    }
}

/// Tokens and the access policy.
#[derive(Args, Clone, Debug)]
pub struct AuthArgs {
    /// Ed25519 private keys (PKCS#8 PEM blocks, one after the other) that sign the
    /// token of every forwarded request: the first signs, all are published at
    /// `/.well-known/jwks.json` (rotation: docs/security.md).
    #[arg(long, env = "GATEWAY_SIGNING_KEYS", hide_env_values = true)]
    pub gateway_signing_keys: SecretString,
    /// How long the token of a forwarded request is valid.
    #[arg(long, env = "GATEWAY_TOKEN_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub gateway_token_ttl: Duration,
    /// The gateway's OAuth client secret at the customer service (client id
    /// `gateway`), for introspecting tokens Redis has no answer for.
    #[arg(long, env = "SERVICE_CLIENT_SECRET", hide_env_values = true)]
    pub service_client_secret: SecretString,
    /// Prefix of the customers' token versions in Redis (the customer service's
    /// `REVOCATION_PREFIX`).
    #[arg(long, env = "REVOCATION_PREFIX", default_value = "token-version:")]
    pub revocation_prefix: String,
    /// Open the seeds' own unauthenticated routes (seed 002's `/products`, `/orders`,
    /// `/customers`, `/payments`, `/inventory`, `/shipping`; seed 003's; seed 004's)
    /// to callers without a token. On in the local run, off in production.
    #[arg(long, env = "SEED_COMPAT_OPEN", default_value_t = false, action = ArgAction::Set)]
    pub seed_compat_open: bool,
}

/// Rate limits (seed 002: 100 requests per 15 minutes per client).
#[derive(Args, Clone, Debug)]
pub struct RateLimitArgs {
    /// Redis holding the counters, shared by every gateway replica.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: SecretString,
    /// With `rediss://`: a PEM file of the CA certificate(s) that signed Redis's
    /// certificate, trusted instead of the system's roots (docs/security.md).
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<std::path::PathBuf>,
    /// Requests per client and window; 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_REQUESTS", default_value_t = 100)]
    pub rate_limit_requests: u64,
    /// The window requests are counted in (fixed, aligned on the clock).
    #[arg(long, env = "RATE_LIMIT_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    pub rate_limit_window: Duration,
    /// Prefix of the counters' keys in Redis.
    #[arg(long, env = "RATE_LIMIT_PREFIX", default_value = "ratelimit:")]
    pub rate_limit_prefix: String,
    /// Longest wait for Redis on a request; past it this replica counts alone.
    #[arg(long, env = "RATE_LIMIT_REDIS_TIMEOUT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub rate_limit_redis_timeout: Duration,
    /// The proxies in front of the gateway whose `X-Forwarded-For` is believed:
    /// addresses or CIDR blocks, comma-separated (`10.0.0.0/8`). Empty: none, the
    /// peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
}

/// Timeouts, retries and circuit breakers per upstream (seed 002's numbers).
#[derive(Args, Clone, Debug)]
pub struct FaultToleranceArgs {
    /// Time limit of one call to an upstream; past it, 504.
    #[arg(long, env = "UPSTREAM_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// Retries of an idempotent request after a connection failure or a 502/503/504.
    #[arg(long, env = "UPSTREAM_RETRIES", default_value_t = 3)]
    pub upstream_retries: u32,
    /// The n-th retry waits n times this.
    #[arg(long, env = "RETRY_BACKOFF", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,
    /// The rolling window the breaker counts failures in.
    #[arg(long, env = "BREAKER_WINDOW", default_value = "10s", value_parser = humantime::parse_duration)]
    pub breaker_window: Duration,
    /// Buckets the window is made of.
    #[arg(long, env = "BREAKER_BUCKETS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub breaker_buckets: u32,
    /// Failure percentage in the window that opens the breaker.
    #[arg(long, env = "BREAKER_ERROR_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub breaker_error_percent: u8,
    /// Requests the window must hold before the breaker may open.
    #[arg(long, env = "BREAKER_MIN_REQUESTS", default_value_t = 10)]
    pub breaker_min_requests: u32,
    /// How long an open breaker refuses requests before letting one trial through.
    #[arg(long, env = "BREAKER_OPEN_FOR", default_value = "10s", value_parser = humantime::parse_duration)]
    pub breaker_open_for: Duration,
}

impl FaultToleranceArgs {
    pub fn proxy_config(&self) -> ProxyConfig {
        ProxyConfig {
            timeout: self.upstream_timeout,
            retries: self.upstream_retries,
            backoff: self.retry_backoff,
            breaker: BreakerConfig {
                window: self.breaker_window,
                buckets: self.breaker_buckets,
                error_percent: self.breaker_error_percent,
                min_requests: self.breaker_min_requests,
                open_for: self.breaker_open_for,
            },
        }
    }
}

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub authenticator: Authenticator,
    pub credentials: UpstreamCredentials,
    pub limiter: RateLimiter,
    pub upstreams: Upstreams,
    pub metrics: GatewayMetrics,
    pub seed_compat_open: bool,
    pub trusted_proxies: TrustedProxies,
    pub max_body_bytes: usize,
    pub docs_timeout: Duration,
    pub swagger: Arc<utoipa_swagger_ui::Config<'static>>,
    /// Whether the missing peer address was reported already.
    pub warned_no_peer: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Keep `gateway_breaker_state` current between requests, once a second.
async fn refresh_breaker_gauges(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => state.upstreams.refresh_breaker_gauges(),
        }
    }
}

/// Start the gateway: bind its ports and serve.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    service.edge();
    let metrics = GatewayMetrics::new(service.metrics())?;
    let keys = SigningKeys::from_pem(config.auth.gateway_signing_keys.expose_secret())
        .map_err(|e| anyhow::anyhow!("GATEWAY_SIGNING_KEYS: {e}"))?;
    if config.auth.gateway_token_ttl < Duration::from_secs(5) {
        anyhow::bail!("GATEWAY_TOKEN_TTL must be at least 5s");
    }
    let credentials = UpstreamCredentials::new(
        keys,
        config.auth.gateway_token_ttl,
        config.auth.seed_compat_open,
    );
    let introspection = Arc::new(ServiceTokens::new(
        SERVICE,
        config.auth.service_client_secret.clone(),
        &config.upstreams.customer_url,
    )?);
    let versions = Arc::new(TokenVersions::new(
        config.rate_limit.redis_url.expose_secret(),
        config.rate_limit.redis_tls_ca_file.as_deref(),
        &config.auth.revocation_prefix,
    )?);
    let authenticator =
        Authenticator::new(&config.upstreams.customer_url, versions, introspection)?;
    let trusted_proxies = TrustedProxies::parse(&config.rate_limit.trusted_proxies)?;
    let limiter = RateLimiter::new(
        config.rate_limit.redis_url.expose_secret(),
        config.rate_limit.redis_tls_ca_file.as_deref(),
        RateLimitConfig {
            requests: config.rate_limit.rate_limit_requests,
            window: config.rate_limit.rate_limit_window,
            prefix: config.rate_limit.rate_limit_prefix.clone(),
            redis_timeout: config.rate_limit.rate_limit_redis_timeout,
        },
        metrics.clone(),
    )?;
    let upstreams = Upstreams::new(
        config.upstreams.urls(),
        config.fault_tolerance.proxy_config(),
        metrics.clone(),
    )?;
    let state = AppState(Arc::new(Inner {
        authenticator,
        credentials,
        limiter,
        upstreams,
        metrics,
        seed_compat_open: config.auth.seed_compat_open,
        trusted_proxies,
        max_body_bytes: config.http.max_body_bytes,
        docs_timeout: config.upstreams.openapi_fetch_timeout,
        swagger: docs::swagger_config(),
        warned_no_peer: AtomicBool::new(false),
    }));
    service.worker(
        "breaker-gauges",
        refresh_breaker_gauges(state.clone(), service.shutdown_token()),
    );
    if config.auth.seed_compat_open {
        tracing::warn!(
            "SEED_COMPAT_OPEN: the seeds' own routes are open without a token (local runs only)"
        );
    }
    service
        .serve(http::router(state), docs::ApiDoc::openapi())
        .await
}
