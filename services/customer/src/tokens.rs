//! Customer tokens: HS256 JWTs carrying [`Claims`], signed with the shared
//! `JWT_SECRET`. The customer service signs them at registration and login; the API
//! gateway verifies them with the same rules (see [`TokenKeys::verify`]):
//!
//! - algorithm HS256 only (a token naming any other algorithm is refused);
//! - key: the UTF-8 bytes of `JWT_SECRET`, at least [`MIN_SECRET_BYTES`] long;
//! - `exp`, `iss` and `sub` required; `iss` must be [`ISSUER`]; `exp` checked with
//!   [`LEEWAY_SECONDS`] of clock-skew tolerance;
//! - the payload must deserialize as [`Claims`] exactly (`sub`, `name`, `email`,
//!   `role`, `iat`, `exp`, `iss`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sales_contracts::api::auth::{Claims, ISSUER, Role};
use secrecy::{ExposeSecret, SecretString};

/// The shortest `JWT_SECRET` accepted: 256 bits, the size of HS256's output.
pub const MIN_SECRET_BYTES: usize = 32;

/// Tolerance for clocks that disagree when checking `exp`.
pub const LEEWAY_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long (it has {0}); \
         generate one with e.g. `openssl rand -base64 48`"
    )]
    SecretTooShort(usize),
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("could not sign the token: {0}")]
    Signing(String),
}

/// The keys for signing and verifying, made once from the secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys([REDACTED])")
    }
}

impl TokenKeys {
    /// Keys from `JWT_SECRET`; refuses a secret shorter than [`MIN_SECRET_BYTES`].
    pub fn from_secret(secret: &SecretString) -> Result<TokenKeys, TokenError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(TokenError::SecretTooShort(bytes.len()));
        }
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation: validation(),
        })
    }

    /// Sign `claims` (HS256).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Check the signature, algorithm, issuer and expiry of `token`; its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

/// The validation rules every verifier of customer tokens applies.
pub fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v.set_issuer(&[ISSUER]);
    v.leeway = LEEWAY_SECONDS;
    v
}

/// Who a token is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSubject {
    pub customer_id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
}

/// The claims of a token for `subject` issued at `issued_at`, valid for `ttl`.
pub fn claims_for(subject: &TokenSubject, issued_at: DateTime<Utc>, ttl: Duration) -> Claims {
    let iat = issued_at.timestamp();
    let ttl_seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    Claims {
        sub: subject.customer_id.to_string(),
        name: subject.name.clone(),
        email: subject.email.clone(),
        role: subject.role,
        iat,
        exp: iat.saturating_add(ttl_seconds),
        iss: ISSUER.to_owned(),
    }
}

/// A signed token and when it stops being accepted.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Sign a token for `subject`, valid for `ttl` from now.
pub fn issue(
    keys: &TokenKeys,
    subject: &TokenSubject,
    ttl: Duration,
) -> Result<IssuedToken, TokenError> {
    let claims = claims_for(subject, Utc::now(), ttl);
    let token = keys.sign(&claims)?;
    let expires_at = DateTime::from_timestamp(claims.exp, 0)
        .ok_or_else(|| TokenError::Signing(format!("expiry {} is out of range", claims.exp)))?;
    Ok(IssuedToken { token, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::from_secret(&SecretString::from(secret)).unwrap()
    }

    fn alice() -> TokenSubject {
        TokenSubject {
            customer_id: 42,
            name: "Alice".into(),
            email: "alice@example.com".into(),
            role: Role::Customer,
        }
    }

    #[test]
    fn round_trip_keeps_every_claim() {
        let k = keys(SECRET);
        let issued = issue(&k, &alice(), Duration::from_secs(3600)).unwrap();
        let claims = k.verify(&issued.token).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.name, "Alice");
        assert_eq!(claims.email, "alice@example.com");
        assert_eq!(claims.role, Role::Customer);
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.exp, issued.expires_at.timestamp());
        assert!((Utc::now().timestamp() - claims.iat).abs() <= 5);
    }

    #[test]
    fn expired_token_is_refused() {
        let k = keys(SECRET);
        let claims = claims_for(
            &alice(),
            Utc::now() - chrono::Duration::hours(2),
            Duration::from_secs(3600),
        );
        let token = k.sign(&claims).unwrap();
        assert!(matches!(k.verify(&token), Err(TokenError::Expired)));
    }

    #[test]
    fn token_signed_with_another_secret_is_refused() {
        let token = keys(SECRET)
            .sign(&claims_for(&alice(), Utc::now(), Duration::from_secs(60)))
            .unwrap();
        let other = keys("another-secret-that-is-also-long-enough!!");
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn tampered_token_is_refused() {
        let k = keys(SECRET);
        let token = k
            .sign(&claims_for(&alice(), Utc::now(), Duration::from_secs(60)))
            .unwrap();
        // Promote ourselves to admin in the payload, keeping the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = claims_for(&alice(), Utc::now(), Duration::from_secs(60));
        claims.role = Role::Admin;
        let forged_payload = base64_url(&serde_json::to_vec(&claims).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(matches!(k.verify(&forged), Err(TokenError::Invalid(_))));
        // A flipped character in the signature.
        let mut sig = parts[2].to_owned();
        let last = if sig.ends_with('A') { 'B' } else { 'A' };
        sig.pop();
        sig.push(last);
        let flipped = format!("{}.{}.{}", parts[0], parts[1], sig);
        assert!(matches!(k.verify(&flipped), Err(TokenError::Invalid(_))));
        assert!(matches!(
            k.verify("not-a-token"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn wrong_issuer_and_other_algorithms_are_refused() {
        let k = keys(SECRET);
        let mut claims = claims_for(&alice(), Utc::now(), Duration::from_secs(60));
        claims.iss = "someone-else".into();
        assert!(matches!(
            k.verify(&k.sign(&claims).unwrap()),
            Err(TokenError::Invalid(_))
        ));

        let claims = claims_for(&alice(), Utc::now(), Duration::from_secs(60));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(k.verify(&hs512), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn short_secret_is_refused() {
        let err = TokenKeys::from_secret(&SecretString::from("too-short")).unwrap_err();
        assert!(matches!(err, TokenError::SecretTooShort(9)));
        assert!(err.to_string().contains("at least 32 bytes"));
        assert!(TokenKeys::from_secret(&SecretString::from("x".repeat(32))).is_ok());
    }

    /// Base64url without padding, as JWTs use it.
    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
