//! The admin account, from configuration only. With `ADMIN_EMAIL` and
//! `ADMIN_PASSWORD` set, that account is made at start-up (or, if it exists, given
//! that password and the admin role). Configuration is the only source of the admin
//! role: at every start-up any other account holding it becomes a customer again,
//! so with neither variable set there is no admin. There is no default password.

use std::sync::Arc;
use std::time::Duration;

use sales_platform::identity::token_versions::TokenVersions;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::error::{CustomerError, Result};
use crate::passwords::Hasher;
use crate::registration::{validate_email, validate_password};
use crate::revocation;

/// The name an admin account gets when it is made.
pub const ADMIN_NAME: &str = "Administrator";

/// The admin's credentials, checked.
#[derive(Clone, Debug)]
pub struct AdminAccount {
    pub email: String,
    pub password: SecretString,
}

/// The admin from `ADMIN_EMAIL` and `ADMIN_PASSWORD`: both or neither.
pub fn from_config(
    email: Option<String>,
    password: Option<SecretString>,
) -> anyhow::Result<Option<AdminAccount>> {
    match (email, password) {
        (None, None) => Ok(None),
        (Some(email), Some(password)) => {
            let email = validate_email(&email).map_err(|e| anyhow::anyhow!("ADMIN_EMAIL: {e}"))?;
            validate_password(&password).map_err(|e| anyhow::anyhow!("ADMIN_PASSWORD: {e}"))?;
            Ok(Some(AdminAccount { email, password }))
        }
        (Some(_), None) => {
            anyhow::bail!("ADMIN_EMAIL is set but ADMIN_PASSWORD is not: set both, or neither")
        }
        (None, Some(_)) => {
            anyhow::bail!("ADMIN_PASSWORD is set but ADMIN_EMAIL is not: set both, or neither")
        }
    }
}

/// Make the database agree with the configuration: the configured admin exists
/// with that password, and no one else is an admin. An account whose role or
/// password changes here gets a new token version: its earlier tokens stop working
/// (a demoted admin's tokens said `admin`).
pub async fn apply(
    pool: &PgPool,
    admin: Option<&AdminAccount>,
    hasher: &Hasher,
    versions: Option<&TokenVersions>,
) -> Result<()> {
    // The admin's password is hashed again only if it changed (hashes are salted).
    let existing: Option<(i64, Option<String>, String)> = match admin {
        Some(a) => {
            sqlx::query_as(
                "select id, password_hash, role from customers where lower(email) = lower($1)",
            )
            .bind(&a.email)
            .fetch_optional(pool)
            .await?
        }
        None => None,
    };
    let unchanged = match (admin, &existing) {
        (Some(a), Some((_, hash @ Some(_), role))) if role == "admin" => {
            hasher.verify(a.password.clone(), hash.clone()).await?
        }
        _ => false,
    };
    let hash = match admin {
        Some(a) if !unchanged => Some(hasher.hash(a.password.clone()).await?),
        _ => None,
    };
    let mut tx = pool.begin().await?;
    let demoted: Vec<(i64, i64)> = sqlx::query_as(
        "update customers set role = 'customer', token_version = token_version + 1, updated_at = now()
         where role = 'admin' and ($1::text is null or lower(email) <> lower($1))
         returning id, token_version",
    )
    .bind(admin.map(|a| a.email.as_str()))
    .fetch_all(&mut *tx)
    .await?;
    if !demoted.is_empty() {
        tracing::warn!(
            demoted = demoted.len(),
            "accounts that were admins are customers again: ADMIN_EMAIL names another account or is unset"
        );
    }
    let mut changed = demoted;
    if let (Some(admin), Some(hash)) = (admin, hash) {
        let (admin_id, version): (i64, i64) = sqlx::query_as(
            "insert into customers (email, password_hash, name, role)
             values ($1, $2, $3, 'admin')
             on conflict ((lower(email))) do update
                 set password_hash = excluded.password_hash, role = 'admin',
                     token_version = customers.token_version + 1, updated_at = now()
             returning id, token_version",
        )
        .bind(&admin.email)
        .bind(&hash)
        .bind(ADMIN_NAME)
        .fetch_one(&mut *tx)
        .await?;
        tracing::info!(customer_id = admin_id, "admin account set up");
        changed.push((admin_id, version));
    }
    tx.commit().await.map_err(CustomerError::from)?;
    for (customer_id, version) in changed {
        // Best effort: the gateway asks us when Redis has no answer, and these were
        // raised before any token of theirs could be checked against the new ones.
        let _ = revocation::publish(versions, customer_id, version).await;
    }
    Ok(())
}

/// [`apply`] at start-up (after migrations), retrying until it succeeds or the
/// service stops.
pub async fn run(
    pool: PgPool,
    admin: Option<AdminAccount>,
    hasher: Hasher,
    versions: Option<Arc<TokenVersions>>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        match apply(&pool, admin.as_ref(), &hasher, versions.as_deref()).await {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(error = %err, ?delay, "cannot set up the admin account; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_or_neither() {
        assert!(from_config(None, None).unwrap().is_none());
        let admin = from_config(
            Some(" Admin@Example.com ".into()),
            Some(SecretString::from("long enough")),
        )
        .unwrap()
        .unwrap();
        assert_eq!(admin.email, "Admin@Example.com");
        let err = from_config(Some("admin@example.com".into()), None).unwrap_err();
        assert!(err.to_string().contains("ADMIN_PASSWORD is not"), "{err}");
        assert!(from_config(None, Some(SecretString::from("long enough"))).is_err());
        let err = from_config(
            Some("admin@example.com".into()),
            Some(SecretString::from("short")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 8"), "{err}");
        assert!(from_config(Some("nope".into()), Some(SecretString::from("long enough"))).is_err());
    }
}
