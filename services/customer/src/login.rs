//! Logging in: email and password for a token. A wrong email and a wrong password
//! get the same answer, in about the same time (see [`verify_password`]).

use secrecy::SecretString;

use crate::error::{CustomerError, Result};
use crate::passwords::verify_password;
use crate::profiles::parse_role;
use crate::registration::validate_email;
use crate::tokens::TokenSubject;
use crate::{CustomerContext, SignedIn};

#[derive(sqlx::FromRow)]
struct Credentials {
    id: i64,
    email: String,
    name: String,
    password_hash: String,
    role: String,
}

/// Check the password of the account with this email (any case); sign in.
#[tracing::instrument(skip_all)]
pub async fn log_in(
    ctx: &CustomerContext,
    email: &str,
    password: SecretString,
) -> Result<SignedIn> {
    let email = validate_email(email)?;
    let account = sqlx::query_as::<_, Credentials>(
        "select id, email, name, password_hash, role from customers
         where lower(email) = lower($1) and password_hash is not null",
    )
    .bind(&email)
    .fetch_optional(&ctx.pool)
    .await?;

    let stored_hash = account.as_ref().map(|a| a.password_hash.clone());
    let matches = verify_password(password, stored_hash).await?;
    let account = match account {
        Some(account) if matches => account,
        _ => {
            ctx.metrics.login(false);
            return Err(CustomerError::InvalidCredentials);
        }
    };
    ctx.metrics.login(true);
    tracing::info!(customer_id = account.id, "customer logged in");
    ctx.sign_in(&TokenSubject {
        customer_id: account.id,
        name: account.name,
        email: account.email,
        role: parse_role(&account.role),
    })
}
