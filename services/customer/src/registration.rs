//! Registering an account: email (unique whatever its case), password (hashed with
//! argon2id, never stored), name, and optionally address and contact.
//!
//! Registration must not tell anyone which emails have accounts: the password is
//! hashed whether or not the email is taken (the same time either way), and the
//! canonical route answers both the same ([`Registered`] tells the caller which, for
//! seed 000's route, whose clients expect its 409). Registrations count against the
//! client's address ([`crate::login_throttle`]).

use std::net::IpAddr;

use sales_contracts::api::auth::Role;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{CustomerError, Result};
use crate::login_throttle::{self, Subjects};
use crate::profiles::ProfileDetails;
use crate::tokens::TokenSubject;
use crate::{CustomerContext, SignedIn};

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Long enough for any passphrase, short enough that hashing stays cheap to refuse.
pub const MAX_PASSWORD_CHARS: usize = 256;
pub const MAX_EMAIL_CHARS: usize = 254;

/// An account to open.
#[derive(Debug)]
pub struct NewAccount {
    pub email: String,
    pub password: SecretString,
    pub details: ProfileDetails,
}

/// What a registration came to.
#[derive(Debug)]
pub enum Registered {
    /// The account was opened; the customer is signed in.
    Opened(SignedIn),
    /// An account has this email already; nothing changed.
    EmailTaken,
}

/// Open an account and sign the customer in. `address` is the client's, as the
/// gateway vouches for it.
#[tracing::instrument(skip_all)]
pub async fn register(
    ctx: &CustomerContext,
    account: NewAccount,
    address: Option<IpAddr>,
) -> Result<Registered> {
    let email = validate_email(&account.email)?;
    validate_password(&account.password)?;
    let subjects = Subjects::registration(&ctx.throttle, address);
    // Counted before hashing (concurrent registrations cannot all pass one check);
    // one refused because hashing is busy gives its place back.
    login_throttle::take(&ctx.pool, &ctx.throttle, &subjects).await?;

    // Hashed before looking: a taken email costs the same time as a new one.
    let hash = match ctx.hasher.hash(account.password).await {
        Ok(hash) => hash,
        Err(err) => {
            login_throttle::give_back(&ctx.pool, &ctx.throttle, &subjects).await?;
            return Err(err.into());
        }
    };
    let details = account.details;
    let customer_id: Option<i64> = sqlx::query_scalar(
        "insert into customers (email, password_hash, name, address, contact, role)
         values ($1, $2, $3, $4, $5, 'customer')
         on conflict ((lower(email))) do nothing
         returning id",
    )
    .bind(&email)
    .bind(&hash)
    .bind(&details.name)
    .bind(&details.address)
    .bind(&details.contact)
    .fetch_optional(&ctx.pool)
    .await?;
    let Some(customer_id) = customer_id else {
        tracing::debug!("a registration named an email that has an account");
        return Ok(Registered::EmailTaken);
    };
    ctx.metrics.registrations.inc();
    tracing::debug!(customer_id, "customer registered");

    Ok(Registered::Opened(ctx.sign_in(&TokenSubject {
        customer_id,
        name: details.name,
        email,
        role: Role::Customer,
        token_version: 1,
    })?))
}

/// The email, trimmed, if it looks like one: `local@domain.tld`, no spaces.
pub fn validate_email(raw: &str) -> Result<String> {
    let email = raw.trim();
    let invalid = |why: &str| CustomerError::Validation(format!("email is invalid: {why}"));
    if email.is_empty() {
        return Err(CustomerError::Validation("email must not be empty".into()));
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid("longer than 254 characters"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains spaces"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(invalid("it has no @"));
    };
    if local.is_empty() || local.contains('@') || local.len() > 64 {
        return Err(invalid(
            "the part before @ must be 1 to 64 characters, without @",
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(invalid("misplaced dot before @"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid("the domain needs a dot, e.g. example.com"));
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !labels.iter().all(label_ok) {
        return Err(invalid("the domain is not a valid host name"));
    }
    if labels.last().is_some_and(|tld| tld.chars().count() < 2) {
        return Err(invalid("the domain's last part is too short"));
    }
    Ok(email.to_owned())
}

/// A new password: 8 to 256 characters.
pub fn validate_password(password: &SecretString) -> Result<()> {
    let chars = password.expose_secret().chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(CustomerError::Validation(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(CustomerError::Validation(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            validate_email(" Ada@Example.com ").unwrap(),
            "Ada@Example.com"
        );
        assert!(validate_email("a.b+tag@mail.example.co.uk").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@exa_mple.com",
            "ada@-example.com",
            "ada@example.c",
            ".ada@example.com",
            "ada@example..com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn passwords() {
        assert!(validate_password(&SecretString::from("1234567")).is_err());
        assert!(validate_password(&SecretString::from("12345678")).is_ok());
        assert!(validate_password(&SecretString::from("éééééééé")).is_ok());
        assert!(validate_password(&SecretString::from("x".repeat(257))).is_err());
    }
}
