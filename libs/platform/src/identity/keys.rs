//! Signing keys and their public halves.
//!
//! An issuer is configured with one or more Ed25519 private keys as PKCS#8 PEM blocks
//! (`-----BEGIN PRIVATE KEY-----`), in one string. The **first** key signs; every key
//! is published in the issuer's JWKS document, so tokens signed with any of them
//! verify. That is what makes rotation safe (docs/security.md, "Rotating keys"):
//! add the new key second, let verifiers see it, move it first, and drop the old one
//! once its last tokens have expired.
//!
//! A key's id (`kid`) is its RFC 7638 JWK thumbprint, so it is the same wherever the
//! key is loaded.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// A public key as a JWK (RFC 8037: `kty` OKP, `crv` Ed25519).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A JWKS document: `{"keys": [...]}` (RFC 7517 §5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

/// The RFC 7638 thumbprint of an Ed25519 public key given as base64url `x`.
pub fn thumbprint(x: &str) -> String {
    // Members in lexicographic order, no whitespace (RFC 7638 §3.2).
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// One private key, ready to sign.
struct Key {
    kid: String,
    x: String,
    encoding: EncodingKey,
}

/// An issuer's private keys: the first signs, all are published.
pub struct SigningKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("SigningKeys")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Parse every PEM block of `pem` (at least one). Errors name the block, never
    /// show key material.
    pub fn from_pem(pem: &str) -> anyhow::Result<SigningKeys> {
        let mut keys = Vec::new();
        let mut rest = pem;
        while let Some(start) = rest.find(PEM_BEGIN) {
            let after = &rest[start..];
            let Some(end) = after.find(PEM_END) else {
                anyhow::bail!("signing key {}: no {PEM_END} line", keys.len() + 1);
            };
            let block = &after[..end + PEM_END.len()];
            let signing = SigningKey::from_pkcs8_pem(block).map_err(|_| {
                anyhow::anyhow!(
                    "signing key {} is not an Ed25519 private key in PKCS#8 PEM \
                     (make one with `openssl genpkey -algorithm ed25519`)",
                    keys.len() + 1
                )
            })?;
            keys.push(Key::new(&signing)?);
            rest = &after[end + PEM_END.len()..];
        }
        if keys.is_empty() {
            anyhow::bail!(
                "no signing key: expected one or more `{PEM_BEGIN}` blocks \
                 (Ed25519, PKCS#8; `openssl genpkey -algorithm ed25519`)"
            );
        }
        let mut kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        kids.sort_unstable();
        kids.dedup();
        if kids.len() != keys.len() {
            anyhow::bail!("the same signing key is given twice");
        }
        Ok(SigningKeys { keys })
    }

    /// The id of the key that signs.
    pub fn active_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Sign `claims` with the active key (EdDSA, `kid` in the header).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        let key = &self.keys[0];
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
    }

    /// Every public key, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .map(|k| PublicJwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: k.x.clone(),
                    kid: k.kid.clone(),
                    alg: Some("EdDSA".into()),
                    use_: Some("sig".into()),
                })
                .collect(),
        }
    }
}

impl Key {
    fn new(signing: &SigningKey) -> anyhow::Result<Key> {
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("cannot encode a signing key: {e}"))?;
        Ok(Key {
            kid: thumbprint(&x),
            x,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }
}

/// A new random Ed25519 private key as PKCS#8 PEM (for `cargo xtask up`, the
/// operator's generated Secrets and tests).
pub fn generate_pem() -> anyhow::Result<String> {
    let signing = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("cannot encode a new signing key: {e}"))?;
    Ok(pem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_publish_their_thumbprints() {
        let first = generate_pem().unwrap();
        let second = generate_pem().unwrap();
        let keys = SigningKeys::from_pem(&format!("{first}\n{second}")).unwrap();
        let jwks = keys.jwks();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(keys.active_kid(), jwks.keys[0].kid);
        for jwk in &jwks.keys {
            assert_eq!(jwk.kid, thumbprint(&jwk.x));
            assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap().len(), 32);
        }
        // The same key loads with the same id.
        let again = SigningKeys::from_pem(&first).unwrap();
        assert_eq!(again.active_kid(), keys.active_kid());
    }

    #[test]
    fn rfc_8037_thumbprint() {
        // RFC 8037 appendix A.3.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn bad_key_material_is_refused_without_showing_it() {
        assert!(SigningKeys::from_pem("").is_err());
        let err = SigningKeys::from_pem(&format!("{PEM_BEGIN}\nbm90IGEga2V5\n{PEM_END}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("signing key 1") && !err.contains("bm90"),
            "{err}"
        );
        let one = generate_pem().unwrap();
        assert!(SigningKeys::from_pem(&format!("{one}{one}")).is_err());
    }
}
