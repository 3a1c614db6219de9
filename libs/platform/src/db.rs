//! PostgreSQL: the pool, and migrations at start-up.
//!
//! Migrations come in two sets sharing sqlx's `_sqlx_migrations` table: the
//! platform's own (outbox and inbox, versions below 1000) and the service's
//! (timestamp versions). Each set ignores the other's rows. sqlx holds a PostgreSQL
//! advisory lock while migrating, so replicas that start together migrate once.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseArgs;

/// A pool that connects lazily: the service starts (and reports not ready) while
/// the database is away, and recovers by itself when it comes back. TLS settings
/// that cannot work (see [`crate::tls`]) fail here, at start.
pub fn pool(args: &DatabaseArgs, service: &str) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = args
        .database_url
        .expose_secret()
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    crate::tls::check_database_url(args.database_url.expose_secret())?;
    let options = options.application_name(service);
    Ok(PgPoolOptions::new()
        .max_connections(args.database_max_connections)
        .acquire_timeout(args.database_acquire_timeout)
        .connect_lazy_with(options))
}

/// Apply the platform's and the service's migrations, retrying while the database
/// is unreachable. Returns an error only for a migration that fails on a reachable
/// database, or when shut down while waiting.
pub async fn migrate(
    pool: &PgPool,
    mut service_migrations: Migrator,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut platform_migrations = sqlx::migrate!("./migrations");
    platform_migrations.set_ignore_missing(true);
    service_migrations.set_ignore_missing(true);
    let mut delay = Duration::from_millis(200);
    loop {
        match run_migrations(pool, &platform_migrations, &service_migrations).await {
            Ok(()) => return Ok(()),
            Err(MigrationFailure::Unreachable(err)) => {
                tracing::warn!(error = %err, retry_in = ?delay, "database unreachable; migrations wait");
            }
            Err(MigrationFailure::Failed(err)) => return Err(err),
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down before the database was reachable"),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

enum MigrationFailure {
    Unreachable(String),
    Failed(anyhow::Error),
}

async fn run_migrations(
    pool: &PgPool,
    platform: &Migrator,
    service: &Migrator,
) -> Result<(), MigrationFailure> {
    // Fail fast (and retry) while the database is away.
    ping(pool).await.map_err(MigrationFailure::Unreachable)?;
    for (name, migrator) in [("platform", platform), ("service", service)] {
        migrator.run(pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(
                e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed),
            ) => MigrationFailure::Unreachable(e.to_string()),
            e => MigrationFailure::Failed(anyhow::anyhow!("{name} migrations failed: {e}")),
        })?;
    }
    Ok(())
}

/// Is the database answering? Used by `/ready`.
pub async fn ping(pool: &PgPool) -> Result<(), String> {
    match tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("select 1").fetch_one(pool),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("database: {e}")),
        Err(_) => Err("database: no answer within 2 s".into()),
    }
}
