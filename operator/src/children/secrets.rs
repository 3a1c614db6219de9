//! Credentials the operator generates: created once, never regenerated.
//!
//! These Secrets are not server-side applied like the other children (an apply would
//! put new random values in). The reconciler reads each one; if it is absent it creates
//! it, and if a key is missing (say the admin account was switched on later) it adds
//! only that key. A value that exists is never replaced: a database initialised with a
//! password keeps being reached with it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::env::{ADMIN_PASSWORD_KEY, JWT_SECRET_KEY};
use super::infrastructure::{AMQP_PORT, POSTGRES_PORT, REDIS_PORT};
use super::names::{Component, Names};
use super::services::meta;
use crate::catalogue::AppService;
use crate::crd::{DatabaseChoice, SalesSystemSpec};

/// The user the managed databases and broker are given.
pub const USERNAME: &str = "sales";

/// What one generated Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// `username`, `password`, `url` of a managed PostgreSQL.
    Database { host: String, database: String },
    /// `username`, `password`, `url` of the managed RabbitMQ.
    Broker { host: String },
    /// `password`, `url` of the managed Redis.
    Cache { host: String },
    /// `jwt-secret` and/or `admin-password`.
    Auth {
        jwt_secret: bool,
        admin_password: bool,
    },
}

/// A Secret to create if absent, and complete if a key is missing.
#[derive(Clone, Debug)]
pub struct GeneratedSecret {
    pub name: String,
    pub component: Option<Component>,
    pub credentials: Credentials,
}

impl Credentials {
    /// Every key this Secret must hold: `existing` values kept, missing ones generated
    /// with `random(length)`. A URL is made from the password it ends up with.
    pub fn complete(
        &self,
        existing: &BTreeMap<String, String>,
        random: &mut dyn FnMut(usize) -> String,
    ) -> BTreeMap<String, String> {
        let mut values = existing.clone();
        let mut ensure = |values: &mut BTreeMap<String, String>, key: &str, len: usize| {
            values
                .entry(key.to_owned())
                .or_insert_with(|| random(len))
                .clone()
        };
        match self {
            Credentials::Database { host, database } => {
                values
                    .entry("username".into())
                    .or_insert_with(|| USERNAME.into());
                let password = ensure(&mut values, "password", 32);
                let user = values.get("username").cloned().unwrap_or_default();
                values.entry("url".into()).or_insert_with(|| {
                    format!("postgres://{user}:{password}@{host}:{POSTGRES_PORT}/{database}")
                });
            }
            Credentials::Broker { host } => {
                values
                    .entry("username".into())
                    .or_insert_with(|| USERNAME.into());
                let password = ensure(&mut values, "password", 32);
                let user = values.get("username").cloned().unwrap_or_default();
                values
                    .entry("url".into())
                    .or_insert_with(|| format!("amqp://{user}:{password}@{host}:{AMQP_PORT}/%2f"));
            }
            Credentials::Cache { host } => {
                let password = ensure(&mut values, "password", 32);
                values
                    .entry("url".into())
                    .or_insert_with(|| format!("redis://:{password}@{host}:{REDIS_PORT}"));
            }
            Credentials::Auth {
                jwt_secret,
                admin_password,
            } => {
                if *jwt_secret {
                    ensure(&mut values, JWT_SECRET_KEY, 48);
                }
                if *admin_password {
                    ensure(&mut values, ADMIN_PASSWORD_KEY, 24);
                }
            }
        }
        values
    }
}

impl GeneratedSecret {
    /// The Secret to create when none exists.
    pub fn to_secret(
        &self,
        names: &Names,
        owner: &Option<OwnerReference>,
        values: BTreeMap<String, String>,
    ) -> Secret {
        let labels = match self.component {
            Some(c) => names.labels(c),
            None => names.system_labels(),
        };
        Secret {
            metadata: meta(names, self.name.clone(), labels, owner),
            type_: Some("Opaque".into()),
            string_data: Some(values),
            ..Default::default()
        }
    }
}

/// Every Secret the operator generates for `spec`.
pub fn generated(names: &Names, spec: &SalesSystemSpec) -> Vec<GeneratedSecret> {
    let mut secrets = Vec::new();
    for service in AppService::with_database() {
        if let (Some(DatabaseChoice::Managed(_)), Some(database)) =
            (spec.postgres.choice(service), service.database())
        {
            let component = Component::Database(service);
            secrets.push(GeneratedSecret {
                name: names.database_secret(service),
                component: Some(component),
                credentials: Credentials::Database {
                    host: names.of(component),
                    database: database.into(),
                },
            });
        }
    }
    if spec.rabbitmq.managed().is_some() {
        secrets.push(GeneratedSecret {
            name: names.broker_secret(),
            component: Some(Component::Broker),
            credentials: Credentials::Broker {
                host: names.of(Component::Broker),
            },
        });
    }
    if spec.redis.managed().is_some() {
        secrets.push(GeneratedSecret {
            name: names.cache_secret(),
            component: Some(Component::Cache),
            credentials: Credentials::Cache {
                host: names.of(Component::Cache),
            },
        });
    }
    let jwt_secret = spec.auth.jwt_secret.is_none();
    let admin_password = spec.auth.admin.enabled && spec.auth.admin.password_secret.is_none();
    if jwt_secret || admin_password {
        secrets.push(GeneratedSecret {
            name: names.auth_secret(),
            component: None,
            credentials: Credentials::Auth {
                jwt_secret,
                admin_password,
            },
        });
    }
    secrets
}

/// Random letters and digits (safe in URLs), from the OS-seeded thread generator.
pub fn random_alphanumeric(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut(usize) -> String {
        let mut n = 0;
        move |len| {
            n += 1;
            format!("r{n}-{len}")
        }
    }

    #[test]
    fn a_database_secret_is_made_whole_once() {
        let c = Credentials::Database {
            host: "s-order-db".into(),
            database: "orders".into(),
        };
        let made = c.complete(&BTreeMap::new(), &mut counter());
        assert_eq!(made["password"], "r1-32");
        assert_eq!(made["url"], "postgres://sales:r1-32@s-order-db:5432/orders");
        // Nothing is regenerated when the Secret exists.
        let again = c.complete(&made, &mut counter());
        assert_eq!(again, made);
    }

    #[test]
    fn a_missing_url_is_made_from_the_existing_password() {
        let c = Credentials::Broker {
            host: "s-rabbitmq".into(),
        };
        let existing = BTreeMap::from([
            ("username".to_owned(), "sales".to_owned()),
            ("password".to_owned(), "kept".to_owned()),
        ]);
        let made = c.complete(&existing, &mut counter());
        assert_eq!(made["password"], "kept");
        assert_eq!(made["url"], "amqp://sales:kept@s-rabbitmq:5672/%2f");
    }

    #[test]
    fn auth_keys_are_added_one_by_one() {
        let only_jwt = Credentials::Auth {
            jwt_secret: true,
            admin_password: false,
        };
        let first = only_jwt.complete(&BTreeMap::new(), &mut counter());
        assert_eq!(first.keys().collect::<Vec<_>>(), ["jwt-secret"]);
        let both = Credentials::Auth {
            jwt_secret: true,
            admin_password: true,
        };
        let second = both.complete(&first, &mut counter());
        assert_eq!(second["jwt-secret"], first["jwt-secret"]);
        assert_eq!(second["admin-password"], "r1-24");
    }

    #[test]
    fn random_values_are_long_and_url_safe() {
        let v = random_alphanumeric(32);
        assert_eq!(v.len(), 32);
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(v, random_alphanumeric(32));
    }
}
