//! The services that may ask for a service token, and what each token allows.
//!
//! Rights follow the calls each service makes, and nothing more: the order service
//! reserves stock and charges payments; the product service reads stock; every
//! service may introspect administrators' tokens (for its operations endpoints).
//! The table is code, reviewed with the calls it allows; the secrets are
//! configuration (`SERVICE_CLIENTS`: `order=<secret>,product=<secret>,...`).

use std::collections::HashMap;

use sales_platform::identity::service_audience;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One client's rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRights {
    /// The client id: the service's name.
    pub id: &'static str,
    /// The scopes its token carries.
    pub scopes: &'static [&'static str],
    /// The services its token is for.
    pub calls: &'static [&'static str],
}

impl ClientRights {
    /// The token's `aud`: the services it calls.
    pub fn audiences(&self) -> Vec<String> {
        self.calls.iter().map(|s| service_audience(s)).collect()
    }
}

/// Every client. `stock:reserve`: reservations (create, read, release, commit);
/// `payments:charge`: charge an order and refund it.
pub const CLIENTS: &[ClientRights] = &[
    ClientRights {
        id: "order",
        scopes: &["stock:reserve", "payments:charge"],
        calls: &["product", "inventory", "payment"],
    },
    ClientRights {
        id: "product",
        scopes: &[],
        calls: &["inventory"],
    },
    ClientRights {
        id: "gateway",
        scopes: &[],
        calls: &[],
    },
    ClientRights {
        id: "inventory",
        scopes: &[],
        calls: &[],
    },
    ClientRights {
        id: "payment",
        scopes: &[],
        calls: &[],
    },
    ClientRights {
        id: "shipping",
        scopes: &[],
        calls: &[],
    },
    ClientRights {
        id: "notification",
        scopes: &[],
        calls: &[],
    },
];

pub fn rights_of(id: &str) -> Option<&'static ClientRights> {
    CLIENTS.iter().find(|c| c.id == id)
}

/// The shortest client secret accepted.
pub const MIN_SECRET_CHARS: usize = 16;

/// The configured clients' secrets, kept as SHA-256 digests (the secrets are random
/// and long, so a fast hash suffices) and compared in constant time.
#[derive(Clone, Default)]
pub struct ClientSecrets {
    digests: HashMap<&'static str, [u8; 32]>,
}

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.digests.keys().collect();
        ids.sort();
        f.debug_struct("ClientSecrets")
            .field("clients", &ids)
            .finish()
    }
}

impl ClientSecrets {
    /// Parse `SERVICE_CLIENTS`: `id=secret` pairs separated by commas or new lines.
    pub fn parse(config: &SecretString) -> anyhow::Result<ClientSecrets> {
        let mut digests = HashMap::new();
        for pair in config
            .expose_secret()
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let Some((id, secret)) = pair.split_once('=') else {
                anyhow::bail!("SERVICE_CLIENTS: an entry is not `id=secret`");
            };
            let id = id.trim();
            let Some(rights) = rights_of(id) else {
                anyhow::bail!(
                    "SERVICE_CLIENTS: {id:?} is not a service of this system ({})",
                    CLIENTS.iter().map(|c| c.id).collect::<Vec<_>>().join(", ")
                );
            };
            if secret.trim().chars().count() < MIN_SECRET_CHARS {
                anyhow::bail!(
                    "SERVICE_CLIENTS: the secret of {id} must be at least {MIN_SECRET_CHARS} characters"
                );
            }
            if digests.insert(rights.id, digest(secret.trim())).is_some() {
                anyhow::bail!("SERVICE_CLIENTS: {id} is given twice");
            }
        }
        Ok(ClientSecrets { digests })
    }

    /// The client's rights, if `secret` is its secret.
    pub fn authenticate(&self, id: &str, secret: &str) -> Option<&'static ClientRights> {
        let rights = rights_of(id)?;
        let expected = self.digests.get(rights.id)?;
        bool::from(expected.ct_eq(&digest(secret))).then_some(rights)
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_authenticate_their_client_only() {
        let secrets = ClientSecrets::parse(&SecretString::from(
            "order=0123456789abcdefXYZ, product=fedcba9876543210xyz",
        ))
        .unwrap();
        assert_eq!(
            secrets
                .authenticate("order", "0123456789abcdefXYZ")
                .map(|c| c.id),
            Some("order")
        );
        assert!(
            secrets
                .authenticate("order", "fedcba9876543210xyz")
                .is_none()
        );
        assert!(
            secrets
                .authenticate("payment", "0123456789abcdefXYZ")
                .is_none()
        );
        assert!(
            secrets
                .authenticate("nobody", "0123456789abcdefXYZ")
                .is_none()
        );
        assert!(secrets.authenticate("order", "").is_none());
    }

    #[test]
    fn bad_configuration_is_refused() {
        for bad in [
            "order",
            "order=short",
            "stranger=0123456789abcdefXYZ",
            "order=0123456789abcdefXYZ,order=0123456789abcdefXYZ",
        ] {
            assert!(
                ClientSecrets::parse(&SecretString::from(bad)).is_err(),
                "{bad}"
            );
        }
        let err = format!(
            "{:?}",
            ClientSecrets::parse(&SecretString::from("order=0123456789abcdefXYZ")).unwrap()
        );
        assert!(!err.contains("0123456789"), "{err}");
    }

    #[test]
    fn audiences_are_the_services_called() {
        assert_eq!(
            rights_of("order").unwrap().audiences(),
            [
                "sales-system/product",
                "sales-system/inventory",
                "sales-system/payment"
            ]
        );
    }
}
