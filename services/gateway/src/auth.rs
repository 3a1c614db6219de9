//! Verifying the customer's JWT: HS256 with the shared `JWT_SECRET`, an `exp` in the
//! future and `iss` = [`ISSUER`]. The claims are [`Claims`], as the customer service
//! issues them.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sales_contracts::api::auth::{Claims, ISSUER, Role};
use secrecy::{ExposeSecret, SecretString};

/// The shortest secret accepted: 256 bits, as HS256 needs (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Who the verified token says is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub customer_id: i64,
    pub role: Role,
}

/// Why a token was refused. Every one of them is a 401 `invalid_token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token was not issued by {ISSUER}")]
    WrongIssuer,
    #[error("the Authorization header must be `Bearer <token>` with a valid JWT")]
    Malformed,
}

impl TokenError {
    /// The `reason` label of `gateway_auth_failures_total`.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Expired => "expired",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::Malformed => "malformed",
        }
    }
}

/// Checks tokens.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(secret: &SecretString) -> anyhow::Result<Verifier> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            anyhow::bail!(
                "JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (it has {})",
                bytes.len()
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        Ok(Verifier {
            key: DecodingKey::from_secret(bytes),
            validation,
        })
    }

    /// The caller of a request: `Ok(None)` without an `Authorization` header.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Option<Identity>, TokenError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(TokenError::Malformed);
        }
        let value = value.to_str().map_err(|_| TokenError::Malformed)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Malformed);
        }
        self.verify(token.trim()).map(Some)
    }

    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                _ => TokenError::Malformed,
            },
        )?;
        let customer_id = data
            .claims
            .sub
            .parse::<i64>()
            .map_err(|_| TokenError::Malformed)?;
        Ok(Identity {
            customer_id,
            role: data.claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header, encode};

    const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

    fn verifier() -> Verifier {
        Verifier::new(&SecretString::from(SECRET)).unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims(sub: &str, role: Role) -> Claims {
        Claims {
            sub: sub.into(),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            role,
            iat: now(),
            exp: now() + 600,
            iss: ISSUER.into(),
        }
    }

    fn sign(claims: &Claims, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Verifier::new(&SecretString::from("too-short")).is_err());
    }

    #[test]
    fn a_valid_token_names_the_customer() {
        let token = sign(&claims("42", Role::Admin), SECRET);
        assert_eq!(
            verifier().identify(&bearer(&token)),
            Ok(Some(Identity {
                customer_id: 42,
                role: Role::Admin
            }))
        );
        assert_eq!(verifier().identify(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn bad_tokens() {
        let v = verifier();
        let forged = sign(
            &claims("1", Role::Admin),
            "another-secret-that-is-long-enough-000",
        );
        assert_eq!(v.verify(&forged), Err(TokenError::BadSignature));
        let mut expired = claims("1", Role::Customer);
        expired.exp = now() - 3600;
        assert_eq!(v.verify(&sign(&expired, SECRET)), Err(TokenError::Expired));
        let mut foreign = claims("1", Role::Customer);
        foreign.iss = "someone-else".into();
        assert_eq!(
            v.verify(&sign(&foreign, SECRET)),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            v.verify(&sign(&claims("alice", Role::Customer), SECRET)),
            Err(TokenError::Malformed)
        );
        assert_eq!(v.verify("not.a.jwt"), Err(TokenError::Malformed));
        let none_alg = format!(
            "{}.{}.",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
            sign(&claims("1", Role::Admin), SECRET)
                .split('.')
                .nth(1)
                .unwrap()
        );
        assert!(v.verify(&none_alg).is_err());
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        assert_eq!(v.identify(&basic), Err(TokenError::Malformed));
        let mut empty = HeaderMap::new();
        empty.insert(AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(v.identify(&empty), Err(TokenError::Malformed));
    }
}
