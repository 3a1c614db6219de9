//! Password hashing: argon2id with the crate's default parameters (OWASP's minimum:
//! 19 MiB, 2 passes, 1 lane) and a random salt per hash, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). Hashing takes tens of milliseconds
//! of CPU on purpose, so it runs on the blocking pool, never on the async workers.
//! Passwords are [`SecretString`]s: they never print, and are wiped from memory
//! when dropped.
//!
//! [`Hasher`] bounds how many hashes run at once (`HASHING_CONCURRENCY`, by default
//! one per CPU): a flood of logins or registrations waits its turn for at most
//! `HASHING_WAIT`, then gets 503 with `Retry-After` instead of taking every core.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("could not hash the password: {0}")]
    Hashing(String),
    #[error("the password hashing task failed: {0}")]
    Task(String),
    #[error("too many password checks at once; try again in a moment")]
    Busy,
}

/// Password hashing with a bound on how many run at once.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl Hasher {
    /// At most `concurrency` hashes at once; a caller waits at most `wait` for a turn.
    pub fn new(concurrency: usize, wait: Duration) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    /// [`hash_password`], in turn.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let _turn = self.turn().await?;
        hash_password(password).await
    }

    /// [`verify_password`], in turn.
    pub async fn verify(
        &self,
        password: SecretString,
        stored_hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let _turn = self.turn().await?;
        verify_password(password, stored_hash).await
    }

    async fn turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PasswordError> {
        match tokio::time::timeout(self.wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(PasswordError::Busy),
        }
    }
}

/// The PHC string of `password`, hashed with a fresh random salt.
pub async fn hash_password(password: SecretString) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))?
}

/// Does `password` match the stored hash? With no stored hash (unknown email), a
/// password is still checked against a dummy hash, so that the answer takes as long
/// as for a known email and timing does not tell which emails have accounts.
pub async fn verify_password(
    password: SecretString,
    stored_hash: Option<String>,
) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || match stored_hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            let _ = verify_now(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .map_err(|e| PasswordError::Task(e.to_string()))
}

/// Compute the dummy hash now (on the blocking pool) rather than on the first login
/// for an unknown email.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| LazyLock::force(&DUMMY_HASH)).await;
}

/// A hash of a random password no one knows.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random = format!("{:032x}", rand::random::<u128>());
    hash_now(&SecretString::from(random)).unwrap_or_default()
});

fn hash_now(password: &SecretString) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

fn verify_now(password: &SecretString, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok(),
        Err(err) => {
            tracing::error!(error = %err, "a stored password hash cannot be parsed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_hasher_refuses_after_its_wait() {
        let hasher = Hasher::new(1, Duration::from_millis(50));
        let held = hasher.turn().await.unwrap();
        let refused = hasher.verify(SecretString::from("x"), None).await;
        assert!(matches!(refused, Err(PasswordError::Busy)));
        drop(held);
        assert!(!hasher.verify(SecretString::from("x"), None).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_a_random_salt() {
        let a = hash_password(SecretString::from("correct horse"))
            .await
            .unwrap();
        let b = hash_password(SecretString::from("correct horse"))
            .await
            .unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(
            verify_password(SecretString::from("correct horse"), Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(SecretString::from("wrong horse"), Some(a))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(SecretString::from("correct horse"), None)
                .await
                .unwrap()
        );
        assert!(
            !verify_password(SecretString::from("x"), Some("not a hash".into()))
                .await
                .unwrap()
        );
    }
}
