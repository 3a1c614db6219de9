//! The customer service: accounts, tokens and profiles.
//!
//! - [`registration`]: opening an account (email, argon2id-hashed password, name);
//! - [`login`]: email and password for a token;
//! - [`tokens`]: the HS256 JWTs the API gateway verifies (sign, verify, claims);
//! - [`passwords`]: argon2id hashing on the blocking pool;
//! - [`admin_account`]: the one admin, from `ADMIN_EMAIL` / `ADMIN_PASSWORD`;
//! - [`profiles`]: name, address, contact (seed 002);
//! - [`http`]: the canonical API under `/api/v1/customers`, and seed 000's and
//!   seed 002's routes.

#![forbid(unsafe_code)]

pub mod admin_account;
pub mod error;
pub mod http;
pub mod login;
pub mod metrics;
pub mod passwords;
pub mod profiles;
pub mod registration;
pub mod tokens;

use std::time::Duration;

use clap::Parser;
use sales_platform::config::{DatabaseArgs, HttpArgs, TelemetryArgs};
use sales_platform::service::{RunningService, ServiceBuilder};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::metrics::CustomerMetrics;
use crate::tokens::{IssuedToken, TokenKeys, TokenSubject};

pub const SERVICE: &str = "customer";

#[derive(Parser, Clone, Debug)]
#[command(
    name = "customer-service",
    about = "Customer accounts, tokens and profiles",
    version
)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Secret that signs customer tokens (HS256); at least 32 bytes. The API gateway
    /// verifies tokens with the same secret.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: SecretString,
    /// How long a token is valid after registration or login.
    #[arg(long, env = "TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,
    /// Email of the admin account, made at start-up (with `ADMIN_PASSWORD`).
    /// Unset: there is no admin.
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of the admin account (with `ADMIN_EMAIL`); at least 8 characters.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,
}

/// What the request handlers share.
#[derive(Clone)]
pub struct CustomerContext {
    pub pool: PgPool,
    pub keys: TokenKeys,
    pub token_ttl: Duration,
    pub metrics: CustomerMetrics,
}

/// A customer who just registered or logged in, with their token.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub customer_id: i64,
    pub token: IssuedToken,
}

impl CustomerContext {
    /// Sign a token for `subject`.
    pub fn sign_in(&self, subject: &TokenSubject) -> error::Result<SignedIn> {
        let token = tokens::issue(&self.keys, subject, self.token_ttl)?;
        Ok(SignedIn {
            customer_id: subject.customer_id,
            token,
        })
    }
}

/// Check the configuration, bind the ports, then migrate and set up the admin
/// account in the background.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let keys = TokenKeys::from_secret(&config.jwt_secret)?;
    if config.token_ttl < Duration::from_secs(1) {
        anyhow::bail!("TOKEN_TTL must be at least 1s");
    }
    let admin = admin_account::from_config(config.admin_email, config.admin_password)?;

    let mut service = ServiceBuilder::new(SERVICE, &config.http);
    let pool = service.database(&config.database, sqlx::migrate!())?;
    let metrics = CustomerMetrics::new(service.metrics());
    service.worker("password-warm-up", passwords::warm_up());
    service.startup_step(
        "admin-account",
        admin_account::run(pool.clone(), admin, service.shutdown_token()),
    );
    let ctx = CustomerContext {
        pool,
        keys,
        token_ttl: config.token_ttl,
        metrics,
    };
    let (router, openapi) = http::router(ctx).split_for_parts();
    service.serve(router, openapi).await
}
