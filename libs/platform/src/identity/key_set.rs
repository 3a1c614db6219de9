//! The public keys an issuer's tokens are checked with: fetched from its JWKS URL and
//! cached, or given directly (the issuer's own keys).
//!
//! A fetched set is refreshed every [`REFRESH_EVERY`], and at once when a token names
//! a key the cache does not have (the issuer rotated), but never more often than
//! every [`MIN_REFETCH`]: tokens with made-up key ids cannot make us hammer the
//! issuer. If a refresh fails the keys already known stay in use; with none known,
//! every token of that issuer is refused (fail closed) until a fetch succeeds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use tokio::sync::Mutex;

use super::keys::{Jwks, thumbprint};

/// How long fetched keys are used before they are fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The shortest time between two fetches.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Cache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

enum Source {
    Fixed(HashMap<String, DecodingKey>),
    Remote {
        url: String,
        http: reqwest::Client,
        cache: Mutex<Cache>,
    },
}

/// One issuer's public keys.
pub struct KeySet {
    source: Source,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Fixed(keys) => write!(f, "KeySet(fixed, {} keys)", keys.len()),
            Source::Remote { url, .. } => write!(f, "KeySet({url})"),
        }
    }
}

impl KeySet {
    /// Keys known in advance: an issuer checking its own tokens.
    pub fn fixed(jwks: &Jwks) -> anyhow::Result<KeySet> {
        Ok(KeySet {
            source: Source::Fixed(decode_all(jwks)?),
        })
    }

    /// Keys fetched from `url` (an issuer's `/.well-known/jwks.json`).
    pub fn remote(url: &str) -> anyhow::Result<KeySet> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("the JWKS URL {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("the JWKS URL {url:?} is not http(s)");
        }
        let http = super::http_client()?;
        Ok(KeySet {
            source: Source::Remote {
                url: url.to_owned(),
                http,
                cache: Mutex::new(Cache::default()),
            },
        })
    }

    /// The key named `kid`, fetching the set again if it is stale or lacks it.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let (url, http, cache) = match &self.source {
            Source::Fixed(keys) => return keys.get(kid).cloned(),
            Source::Remote { url, http, cache } => (url, http, cache),
        };
        let mut cache = cache.lock().await;
        let now = Instant::now();
        let stale = cache
            .fetched_at
            .is_none_or(|at| now.duration_since(at) >= REFRESH_EVERY);
        let known = cache.keys.contains_key(kid);
        let may_fetch = cache
            .attempted_at
            .is_none_or(|at| now.duration_since(at) >= MIN_REFETCH);
        if (stale || !known) && may_fetch {
            cache.attempted_at = Some(now);
            match fetch(http, url).await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(err) => {
                    tracing::warn!(%url, error = %err, "cannot fetch the issuer's public keys; keeping the ones known");
                }
            }
        }
        cache.keys.get(kid).cloned()
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<HashMap<String, DecodingKey>> {
    let response = http.get(url).send().await?;
    if !response.status().is_success() {
        anyhow::bail!("{url} answered {}", response.status());
    }
    let jwks: Jwks = response.json().await?;
    decode_all(&jwks)
}

/// Ed25519 keys of `jwks` by id. Other key types are skipped; a key whose id is not
/// its thumbprint is refused.
fn decode_all(jwks: &Jwks) -> anyhow::Result<HashMap<String, DecodingKey>> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            continue;
        }
        if jwk.kid != thumbprint(&jwk.x) {
            anyhow::bail!("key {:?} is not named by its thumbprint", jwk.kid);
        }
        // An Ed25519 public key is 32 bytes (the verifier would not check).
        if URL_SAFE_NO_PAD.decode(&jwk.x).map(|x| x.len()).ok() != Some(32) {
            anyhow::bail!("key {:?} is not a 32-byte Ed25519 key", jwk.kid);
        }
        let key = DecodingKey::from_ed_components(&jwk.x)
            .map_err(|e| anyhow::anyhow!("key {:?}: {e}", jwk.kid))?;
        keys.insert(jwk.kid.clone(), key);
    }
    Ok(keys)
}
