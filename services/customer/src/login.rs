//! Logging in: email and password for an access token. A wrong email and a wrong
//! password get the same answer, in about the same time (see
//! [`crate::passwords::verify_password`]). Failures are throttled per account and per
//! client address ([`crate::login_throttle`]) before any password is checked.

use std::net::IpAddr;

use secrecy::SecretString;

use crate::error::{CustomerError, Result};
use crate::login_throttle::{self, Subjects};
use crate::profiles::parse_role;
use crate::registration::{validate_email, validate_password};
use crate::revocation;
use crate::tokens::TokenSubject;
use crate::{CustomerContext, SignedIn};

#[derive(sqlx::FromRow)]
struct Credentials {
    id: i64,
    email: String,
    name: String,
    password_hash: String,
    role: String,
    token_version: i64,
}

/// Check the password of the account with this email (any case); sign in.
/// `address` is the client's, as the gateway vouches for it.
#[tracing::instrument(skip_all)]
pub async fn log_in(
    ctx: &CustomerContext,
    email: &str,
    password: SecretString,
    address: Option<IpAddr>,
) -> Result<SignedIn> {
    let email = validate_email(email)?;
    let subjects = Subjects::login(&ctx.throttle, &email, address);
    login_throttle::take(&ctx.pool, &ctx.throttle, &subjects)
        .await
        .inspect_err(|_| ctx.metrics.login_throttled())?;
    let checked = async {
        let account = sqlx::query_as::<_, Credentials>(
            "select id, email, name, password_hash, role, token_version from customers
             where lower(email) = lower($1) and password_hash is not null",
        )
        .bind(&email)
        .fetch_optional(&ctx.pool)
        .await?;
        let stored_hash = account.as_ref().map(|a| a.password_hash.clone());
        let matches = ctx.hasher.verify(password, stored_hash).await?;
        Ok::<_, CustomerError>(account.filter(|_| matches))
    }
    .await;
    let account = match checked {
        Ok(Some(account)) => account,
        // A wrong email or password keeps its place in the count.
        Ok(None) => {
            ctx.metrics.login(false);
            return Err(CustomerError::InvalidCredentials);
        }
        // Not checked (hashing busy, database trouble): not a guess.
        Err(err) => {
            login_throttle::give_back(&ctx.pool, &ctx.throttle, &subjects).await?;
            return Err(err);
        }
    };
    login_throttle::give_back(&ctx.pool, &ctx.throttle, &subjects).await?;
    login_throttle::clear_account(&ctx.pool, &email).await?;
    ctx.metrics.login(true);
    tracing::debug!(customer_id = account.id, "customer logged in");
    ctx.sign_in(&TokenSubject {
        customer_id: account.id,
        name: account.name,
        email: account.email,
        role: parse_role(&account.role),
        token_version: account.token_version,
    })
}

/// Log out everywhere: raise the token version, so every token issued so far stops
/// working.
#[tracing::instrument(skip(ctx))]
pub async fn log_out(ctx: &CustomerContext, customer_id: i64) -> Result<()> {
    let mut tx = ctx.pool.begin().await?;
    let version = revocation::raise_version(&mut tx, customer_id).await?;
    tx.commit().await?;
    revocation::publish(ctx.token_versions.as_deref(), customer_id, version).await?;
    tracing::debug!(customer_id, "customer logged out everywhere");
    Ok(())
}

/// Change the password of `customer_id`, given the current one: every earlier token
/// stops working, and the customer gets a new one. A wrong current password counts
/// as a failed login of the account.
#[tracing::instrument(skip_all, fields(customer_id))]
pub async fn change_password(
    ctx: &CustomerContext,
    customer_id: i64,
    current: SecretString,
    new: SecretString,
    address: Option<IpAddr>,
) -> Result<SignedIn> {
    validate_password(&new)?;
    let account = sqlx::query_as::<_, Credentials>(
        "select id, email, name, password_hash, role, token_version from customers
         where id = $1 and password_hash is not null",
    )
    .bind(customer_id)
    .fetch_optional(&ctx.pool)
    .await?
    .ok_or(CustomerError::NotFound(customer_id))?;
    let subjects = Subjects::login(&ctx.throttle, &account.email, address);
    login_throttle::take(&ctx.pool, &ctx.throttle, &subjects).await?;
    let verified = ctx
        .hasher
        .verify(current, Some(account.password_hash.clone()))
        .await;
    match verified {
        // A wrong current password keeps its place in the count.
        Ok(false) => return Err(CustomerError::InvalidCredentials),
        Ok(true) => login_throttle::give_back(&ctx.pool, &ctx.throttle, &subjects).await?,
        Err(err) => {
            login_throttle::give_back(&ctx.pool, &ctx.throttle, &subjects).await?;
            return Err(err.into());
        }
    }
    let hash = ctx.hasher.hash(new).await?;
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("update customers set password_hash = $2, updated_at = now() where id = $1")
        .bind(customer_id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    let version = revocation::raise_version(&mut tx, customer_id).await?;
    tx.commit().await?;
    revocation::publish(ctx.token_versions.as_deref(), customer_id, version).await?;
    tracing::debug!(customer_id, "password changed; earlier tokens revoked");
    ctx.sign_in(&TokenSubject {
        customer_id,
        name: account.name,
        email: account.email,
        role: parse_role(&account.role),
        token_version: version,
    })
}
