//! Checking a token: signature (EdDSA only, with the key its `kid` names, from the
//! key set of the issuer it names), `iss`, `aud`, `exp`, `nbf` (with
//! [`LEEWAY_SECONDS`] of clock skew) and the presence of `iat`, `sub` and `jti`.
//! Anything else (`alg: none`, HS256 with a public key as secret, a key id no issuer
//! has, an issuer we do not trust) is refused.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::LEEWAY_SECONDS;
use super::claims::TokenClaims;
use super::key_set::KeySet;

/// Why a token was refused. Each is a 401 `invalid_token`; the reason goes to the
/// logs and metrics, and to the client as the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT with the claims this system issues")]
    Malformed,
    #[error("the token must be signed with EdDSA")]
    WrongAlgorithm,
    #[error("the token was not issued by an issuer this service trusts")]
    UnknownIssuer,
    #[error("the token's signing key is not one of its issuer's keys")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this service")]
    WrongAudience,
    #[error("the token has been revoked (logged out or password changed)")]
    Revoked,
}

impl TokenError {
    /// A short label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::WrongAlgorithm => "wrong_algorithm",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Revoked => "revoked",
        }
    }
}

/// Checks tokens from a fixed list of issuers, for one audience.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    issuers: Arc<Vec<(String, KeySet)>>,
    audience: String,
}

#[derive(Deserialize)]
struct Issuer {
    iss: String,
}

impl TokenVerifier {
    /// Accept tokens for `audience` from each `(issuer, keys)`.
    pub fn new(audience: impl Into<String>, issuers: Vec<(String, KeySet)>) -> TokenVerifier {
        TokenVerifier {
            issuers: Arc::new(issuers),
            audience: audience.into(),
        }
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The verified claims of `token`.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        // The issuer the token claims picks the key set; the signature check below
        // then holds it to that issuer.
        let claimed: Issuer = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| TokenError::Malformed)?;
        let (issuer, keys) = self
            .issuers
            .iter()
            .find(|(name, _)| *name == claimed.iss)
            .ok_or(TokenError::UnknownIssuer)?;
        let key = keys.key(&kid).await.ok_or(TokenError::UnknownKey)?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::UnknownIssuer,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        if claims.iat > super::now_seconds() + LEEWAY_SECONDS as i64 {
            return Err(TokenError::NotYetValid);
        }
        if claims.jti.is_empty() || claims.sub.is_empty() || claims.kind().is_none() {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::identity::claims::OnBehalfOf;
    use crate::identity::keys::{SigningKeys, generate_pem};
    use crate::identity::{GATEWAY_ISSUER, IDENTITY_ISSUER, service_audience};

    struct Fixture {
        gateway: SigningKeys,
        identity: SigningKeys,
        verifier: TokenVerifier,
    }

    fn fixture() -> Fixture {
        let gateway = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        let identity = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        let verifier = TokenVerifier::new(
            service_audience("order"),
            vec![
                (
                    GATEWAY_ISSUER.into(),
                    KeySet::fixed(&gateway.jwks()).unwrap(),
                ),
                (
                    IDENTITY_ISSUER.into(),
                    KeySet::fixed(&identity.jwks()).unwrap(),
                ),
            ],
        );
        Fixture {
            gateway,
            identity,
            verifier,
        }
    }

    fn for_order(on_behalf_of: OnBehalfOf) -> TokenClaims {
        TokenClaims::gateway(
            service_audience("order"),
            on_behalf_of,
            false,
            None,
            Duration::from_secs(60),
        )
    }

    fn verify(f: &Fixture, token: &str) -> Result<TokenClaims, TokenError> {
        futures::executor::block_on(f.verifier.verify(token))
    }

    #[test]
    fn tokens_of_both_issuers_verify() {
        let f = fixture();
        let token = f.gateway.sign(&for_order(OnBehalfOf::Customer(7))).unwrap();
        let claims = verify(&f, &token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role.as_str()),
            ("7", "customer")
        );
        let service = TokenClaims::service(
            "order",
            &["stock:reserve"],
            vec![service_audience("inventory"), service_audience("order")],
            Duration::from_secs(600),
        );
        let claims = verify(&f, &f.identity.sign(&service).unwrap()).unwrap();
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["stock:reserve"]);
    }

    #[test]
    fn every_way_of_getting_it_wrong_is_refused() {
        let f = fixture();
        let good = for_order(OnBehalfOf::Admin(1));

        // Another service's token.
        let mut other = good.clone();
        other.aud = super::super::claims::Audience::One(service_audience("payment"));
        assert_eq!(
            verify(&f, &f.gateway.sign(&other).unwrap()),
            Err(TokenError::WrongAudience)
        );
        // A customer's access token (audience: the API) at a service.
        let access = TokenClaims::customer_access(1, true, 1, "A", "a@x", Duration::from_secs(60));
        assert_eq!(
            verify(&f, &f.identity.sign(&access).unwrap()),
            Err(TokenError::WrongAudience)
        );
        // Expired, and not yet valid, beyond the leeway.
        let mut expired = good.clone();
        expired.exp -= 3600;
        expired.iat -= 3600;
        expired.nbf -= 3600;
        assert_eq!(
            verify(&f, &f.gateway.sign(&expired).unwrap()),
            Err(TokenError::Expired)
        );
        let mut early = good.clone();
        early.nbf += 3600;
        assert_eq!(
            verify(&f, &f.gateway.sign(&early).unwrap()),
            Err(TokenError::NotYetValid)
        );
        // A gateway token signed by the identity provider's key: the kid is not the
        // gateway's.
        assert_eq!(
            verify(&f, &f.identity.sign(&good).unwrap()),
            Err(TokenError::UnknownKey)
        );
        // An issuer nobody trusts.
        let mut foreign = good.clone();
        foreign.iss = "someone-else".into();
        assert_eq!(
            verify(&f, &f.gateway.sign(&foreign).unwrap()),
            Err(TokenError::UnknownIssuer)
        );
        // A key nobody knows.
        let stranger = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        assert_eq!(
            verify(&f, &stranger.sign(&good).unwrap()),
            Err(TokenError::UnknownKey)
        );

        let token = f.gateway.sign(&good).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        // Promoted in the payload, signature kept.
        let mut promoted = good.clone();
        promoted.sub = "2".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&promoted).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(&f, &tampered), Err(TokenError::BadSignature));
        // alg: none, no signature.
        let none = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            f.gateway.active_kid()
        ));
        assert!(verify(&f, &format!("{none}.{}.", parts[1])).is_err());
        // HS256 keyed with the public key (algorithm confusion).
        let x = &f.gateway.jwks().keys[0].x;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(f.gateway.active_kid().to_owned());
        let confused =
            jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(x.as_bytes())).unwrap();
        assert_eq!(verify(&f, &confused), Err(TokenError::WrongAlgorithm));
        // Not a JWT at all.
        for junk in [
            "",
            "a.b.c",
            "not-a-token",
            &format!("{}.{}", parts[0], parts[1]),
        ] {
            assert!(verify(&f, junk).is_err(), "{junk}");
        }
        // Without a jti.
        let mut no_id = good;
        no_id.jti.clear();
        assert_eq!(
            verify(&f, &f.gateway.sign(&no_id).unwrap()),
            Err(TokenError::Malformed)
        );
    }
}
