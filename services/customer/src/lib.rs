//! The customer service: accounts, profiles, and the system's identity provider.
//!
//! - [`registration`]: opening an account (email, argon2id-hashed password, name);
//! - [`login`]: email and password for a token; [`login_throttle`]: guessing limits;
//! - [`tokens`]: the access and service tokens it signs (EdDSA), [`oauth`]: its JWKS,
//!   token and introspection endpoints, [`service_clients`]: which service may ask
//!   for what;
//! - [`revocation`]: token versions (logout, password change);
//! - [`passwords`]: argon2id hashing on the blocking pool, a bounded number at once;
//! - [`admin_account`]: the one admin, from `ADMIN_EMAIL` / `ADMIN_PASSWORD`;
//! - [`profiles`]: name, address, contact (seed 002);
//! - [`http`]: the canonical API under `/api/v1/customers`, seed 000's and seed
//!   002's routes, and the access table.

#![forbid(unsafe_code)]

pub mod admin_account;
pub mod error;
pub mod http;
pub mod login;
pub mod login_throttle;
pub mod metrics;
pub mod oauth;
pub mod passwords;
pub mod profiles;
pub mod registration;
pub mod revocation;
pub mod service_clients;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sales_platform::config::{DatabaseArgs, HttpArgs, TelemetryArgs};
use sales_platform::identity::key_set::KeySet;
use sales_platform::identity::keys::SigningKeys;
use sales_platform::identity::token_versions::TokenVersions;
use sales_platform::identity::{GATEWAY_ISSUER, IDENTITY_ISSUER, TokenVerifier, service_audience};
use sales_platform::service::{RunningService, ServiceBuilder};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::login_throttle::ThrottleConfig;
use crate::metrics::CustomerMetrics;
use crate::passwords::Hasher;
use crate::service_clients::ClientSecrets;
use crate::tokens::{IssuedToken, Issuer, TokenSubject};

pub const SERVICE: &str = "customer";

#[derive(Parser, Clone, Debug)]
#[command(
    name = "customer-service",
    about = "Customer accounts and profiles; the identity provider",
    version
)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Ed25519 private keys (PKCS#8 PEM blocks, one after the other) that sign
    /// tokens: the first signs, all are published (rotation: docs/security.md).
    #[arg(long, env = "TOKEN_SIGNING_KEYS", hide_env_values = true)]
    pub token_signing_keys: SecretString,
    /// The services that may ask for a service token: `order=<secret>,product=<secret>,...`.
    #[arg(long, env = "SERVICE_CLIENTS", hide_env_values = true)]
    pub service_clients: SecretString,
    /// The gateway's public keys, which sign the token of every request it forwards.
    #[arg(long, env = "GATEWAY_JWKS_URL")]
    pub gateway_jwks_url: String,
    /// Redis, where new token versions are published for the gateways (revocation).
    /// Unset: the gateway asks this service about every customer it has no answer for.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,
    /// With `rediss://`: a PEM file of the CA certificate(s) that signed Redis's
    /// certificate, trusted instead of the system's roots (docs/security.md).
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<std::path::PathBuf>,
    /// Prefix of the token version keys in Redis (the gateway's `REVOCATION_PREFIX`).
    #[arg(long, env = "REVOCATION_PREFIX", default_value = "token-version:")]
    pub revocation_prefix: String,
    /// How long a customer's access token is valid.
    #[arg(long, env = "TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,
    /// How long a service token is valid.
    #[arg(long, env = "SERVICE_TOKEN_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub service_token_ttl: Duration,
    /// Email of the admin account, made at start-up (with `ADMIN_PASSWORD`).
    /// Unset: there is no admin.
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of the admin account (with `ADMIN_EMAIL`); at least 8 characters.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,
    #[command(flatten)]
    pub throttle: ThrottleArgs,
}

/// Limits on password guessing and on password hashing.
#[derive(clap::Args, Clone, Debug)]
pub struct ThrottleArgs {
    /// Failed logins of one account per window; then 429 until the window ends.
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..))]
    pub login_failures_per_account: i32,
    /// Failed logins from one client address per window.
    #[arg(long, env = "LOGIN_FAILURES_PER_ADDRESS", default_value_t = 30, value_parser = clap::value_parser!(i32).range(1..))]
    pub login_failures_per_address: i32,
    /// Registrations from one client address per window.
    #[arg(long, env = "REGISTRATIONS_PER_ADDRESS", default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..))]
    pub registrations_per_address: i32,
    /// The window, from an account's or address's first failure.
    #[arg(long, env = "LOGIN_FAILURE_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    pub login_failure_window: Duration,
    /// Password hashes computed at once (0: one per CPU).
    #[arg(long, env = "HASHING_CONCURRENCY", default_value_t = 0)]
    pub hashing_concurrency: usize,
    /// How long a login waits for its turn to hash before getting 503.
    #[arg(long, env = "HASHING_WAIT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub hashing_wait: Duration,
}

impl ThrottleArgs {
    pub fn config(&self) -> ThrottleConfig {
        ThrottleConfig {
            failures_per_account: self.login_failures_per_account,
            failures_per_address: self.login_failures_per_address,
            registrations_per_address: self.registrations_per_address,
            window: self.login_failure_window,
        }
    }

    pub fn hasher(&self) -> Hasher {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let concurrency = if self.hashing_concurrency == 0 {
            cpus
        } else {
            self.hashing_concurrency
        };
        Hasher::new(concurrency, self.hashing_wait)
    }
}

/// What the request handlers share.
#[derive(Clone)]
pub struct CustomerContext {
    pub pool: PgPool,
    pub issuer: Arc<Issuer>,
    pub clients: Arc<ClientSecrets>,
    pub token_versions: Option<Arc<TokenVersions>>,
    pub hasher: Hasher,
    pub throttle: ThrottleConfig,
    pub metrics: CustomerMetrics,
}

/// A customer who just registered, logged in or changed their password, with their token.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub customer_id: i64,
    pub token: IssuedToken,
}

impl CustomerContext {
    /// Sign an access token for `subject`.
    pub fn sign_in(&self, subject: &TokenSubject) -> error::Result<SignedIn> {
        let token = self.issuer.access_token(subject)?;
        Ok(SignedIn {
            customer_id: subject.customer_id,
            token,
        })
    }
}

/// Check the configuration, bind the ports, then migrate and set up the admin
/// account in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    if config.token_ttl < Duration::from_secs(1) {
        anyhow::bail!("TOKEN_TTL must be at least 1s");
    }
    if config.service_token_ttl < Duration::from_secs(10) {
        anyhow::bail!("SERVICE_TOKEN_TTL must be at least 10s");
    }
    let keys = SigningKeys::from_pem(config.token_signing_keys.expose_secret())
        .map_err(|e| anyhow::anyhow!("TOKEN_SIGNING_KEYS: {e}"))?;
    let issuer = Arc::new(Issuer::new(
        keys,
        config.token_ttl,
        config.service_token_ttl,
    )?);
    let clients = Arc::new(ClientSecrets::parse(&config.service_clients)?);
    let token_versions = match &config.redis_url {
        Some(url) if !url.expose_secret().trim().is_empty() => Some(Arc::new(TokenVersions::new(
            url.expose_secret(),
            config.redis_tls_ca_file.as_deref(),
            &config.revocation_prefix,
        )?)),
        _ if config.redis_tls_ca_file.is_some() => {
            anyhow::bail!("REDIS_TLS_CA_FILE is set but REDIS_URL is not")
        }
        _ => None,
    };
    let admin = admin_account::from_config(config.admin_email, config.admin_password)?;

    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    let pool = service.database(&config.database, sqlx::migrate!())?;
    let metrics = CustomerMetrics::new(service.metrics());
    let hasher = config.throttle.hasher();
    let throttle = config.throttle.config();
    service.worker("password-warm-up", passwords::warm_up());
    service.worker(
        "login-failures-pruning",
        login_throttle::run_pruning(pool.clone(), throttle, service.shutdown_token()),
    );
    service.startup_step(
        "admin-account",
        admin_account::run(
            pool.clone(),
            admin,
            hasher.clone(),
            token_versions.clone(),
            service.shutdown_token(),
        ),
    );
    let verifier = TokenVerifier::new(
        service_audience(SERVICE),
        vec![
            (
                GATEWAY_ISSUER.to_owned(),
                KeySet::remote(&config.gateway_jwks_url)?,
            ),
            (IDENTITY_ISSUER.to_owned(), issuer.key_set()?),
        ],
    );
    service.protect(http::access::POLICY, verifier);
    let ctx = CustomerContext {
        pool,
        issuer,
        clients,
        token_versions,
        hasher,
        throttle,
        metrics,
    };
    service.open_routes(oauth::router(ctx.clone()), oauth::PATHS);
    let (router, mut openapi) = http::router(ctx).split_for_parts();
    openapi.merge(<oauth::OAuthDoc as utoipa::OpenApi>::openapi());
    service.serve(router, openapi).await
}
