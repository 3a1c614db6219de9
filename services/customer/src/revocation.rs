//! Revoking a customer's tokens: raise their token version. Every access token names
//! the version it was issued under (`ver`); the gateway refuses one whose version is
//! not the current one. The new version is published to Redis for every gateway
//! replica ([`TokenVersions`]); the gateway asks us (introspection) when Redis has
//! no answer, so a lost publication delays nothing but is reported: the caller gets
//! 503 and may try again.

use sales_platform::identity::token_versions::TokenVersions;
use sqlx::PgConnection;

use crate::error::{CustomerError, Result};

/// Raise the version of `customer_id` in `conn`'s transaction; the new version.
pub async fn raise_version(conn: &mut PgConnection, customer_id: i64) -> Result<i64> {
    sqlx::query_scalar(
        "update customers set token_version = token_version + 1, updated_at = now()
         where id = $1 returning token_version",
    )
    .bind(customer_id)
    .fetch_optional(conn)
    .await?
    .ok_or(CustomerError::NotFound(customer_id))
}

/// The current version of `customer_id` and its role, if the account exists.
pub async fn current(conn: &mut PgConnection, customer_id: i64) -> Result<Option<(i64, String)>> {
    Ok(sqlx::query_as(
        "select token_version, role from customers where id = $1 and email is not null",
    )
    .bind(customer_id)
    .fetch_optional(conn)
    .await?)
}

/// Tell the gateways (after the raise committed).
pub async fn publish(
    versions: Option<&TokenVersions>,
    customer_id: i64,
    version: i64,
) -> Result<()> {
    let Some(versions) = versions else {
        return Ok(());
    };
    if let Err(err) = versions.set(customer_id, version).await {
        tracing::error!(customer_id, error = %err, "cannot publish a revocation to Redis");
        return Err(CustomerError::RevocationNotPublished);
    }
    Ok(())
}
