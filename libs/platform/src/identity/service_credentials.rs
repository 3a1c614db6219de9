//! A service's own identity toward the identity provider (the customer service):
//!
//! - [`ServiceTokens`]: its service token, from the OAuth 2.0 client credentials grant
//!   (RFC 6749 §4.4: client id = the service's name, client secret from
//!   `SERVICE_CLIENT_SECRET`), cached until shortly before it expires. Calls to other
//!   services carry it ([`crate::client::ServiceClient`]).
//! - [`ServiceTokens::introspect`]: whether a customer's access token is still active
//!   (RFC 7662), for what only signature and expiry cannot tell: revocation.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{INTROSPECTION_PATH, TOKEN_PATH};

/// A token is renewed when this share of its lifetime has passed.
const RENEW_AT: f64 = 0.75;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    #[error("the identity provider refused this service's credentials ({0})")]
    Refused(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// What introspection says about a token (RFC 7662 §2.2; the fields we use).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub ver: Option<i64>,
}

struct Cached {
    token: String,
    renew_at: Instant,
}

/// This service's credentials and its cached service token.
pub struct ServiceTokens {
    client_id: String,
    client_secret: SecretString,
    identity_url: String,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("client_id", &self.client_id)
            .field("identity_url", &self.identity_url)
            .finish_non_exhaustive()
    }
}

impl ServiceTokens {
    pub fn new(
        client_id: &str,
        client_secret: SecretString,
        identity_url: &str,
    ) -> anyhow::Result<ServiceTokens> {
        if client_secret.expose_secret().len() < 16 {
            anyhow::bail!("SERVICE_CLIENT_SECRET must be at least 16 characters");
        }
        let http = super::http_client()?;
        Ok(ServiceTokens {
            client_id: client_id.to_owned(),
            client_secret,
            identity_url: identity_url.trim_end_matches('/').to_owned(),
            http,
            cached: Mutex::new(None),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A valid service token: the cached one, or a new one.
    pub async fn token(&self) -> Result<String, CredentialError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let fetched = self.fetch().await?;
        let lifetime = Duration::from_secs(fetched.expires_in).mul_f64(RENEW_AT);
        *cached = Some(Cached {
            token: fetched.access_token.clone(),
            renew_at: Instant::now() + lifetime,
        });
        Ok(fetched.access_token)
    }

    /// Forget the cached token (a peer refused it: keys rotated, say).
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<TokenResponse, CredentialError> {
        self.post_form(TOKEN_PATH, &[("grant_type", "client_credentials")], "token")
            .await
    }

    /// Ask the identity provider whether `token` is active.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, CredentialError> {
        self.post_form(INTROSPECTION_PATH, &[("token", token)], "introspection")
            .await
    }

    /// POST `form` to the identity provider's `path` as this client; its JSON answer.
    async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
        what: &str,
    ) -> Result<T, CredentialError> {
        let response = self
            .http
            .post(format!("{}{path}", self.identity_url))
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(form)
            .send()
            .await
            .map_err(|e| CredentialError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_client_error() {
            return Err(CredentialError::Refused(status.to_string()));
        }
        if !status.is_success() {
            return Err(CredentialError::Unavailable(format!("answered {status}")));
        }
        response
            .json()
            .await
            .map_err(|e| CredentialError::Unavailable(format!("unreadable {what} answer: {e}")))
    }
}
