//! Credentials the operator generates: created once, never regenerated.
//!
//! These Secrets are not server-side applied like the other children (an apply would
//! put new random values in). The reconciler reads each one; if it is absent it creates
//! it, and if a key is missing (say the admin account was switched on later) it adds
//! only that key. A value that exists is never replaced: a database initialised with a
//! password keeps being reached with it. Values derived from others (a URL from its
//! password, `service-clients` from the client secrets) are made from what the Secret
//! ends up holding.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use serde_json::json;

use super::env::{
    ADMIN_PASSWORD_KEY, GATEWAY_SIGNING_KEYS_KEY, SERVICE_CLIENTS_KEY, TOKEN_SIGNING_KEYS_KEY,
    client_secret_key,
};
use super::infrastructure::{AMQP_PORT, POSTGRES_PORT, REDIS_PORT};
use super::names::{Component, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER, Names};
use super::services::meta;
use crate::catalogue::AppService;
use crate::crd::{DatabaseChoice, SalesSystemSpec};

/// The user the managed databases and broker are given.
pub const USERNAME: &str = "sales";

/// The key of the managed broker's Secret holding the Erlang cookie its nodes share.
pub const ERLANG_COOKIE_KEY: &str = "erlang-cookie";

/// Key of the managed Kafka's Secret: the KRaft cluster id.
pub const KAFKA_CLUSTER_ID_KEY: &str = "cluster-id";
/// Key of the managed Kafka's Secret: the client listener's JAAS configuration.
pub const KAFKA_JAAS_KEY: &str = "jaas";

/// Key of a managed database's, broker's or Redis's Secret: the URL over TLS, with
/// `spec.tls` on (made from the password, like `url`, but always kept up to date).
pub const TLS_URL_KEY: &str = "tls-url";

/// What one generated Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// `username`, `password`, `url` of a managed PostgreSQL; with `tls`, also
    /// `tls-url` (made from the password: `sslmode=verify-full` against the CA).
    Database {
        host: String,
        database: String,
        tls: bool,
    },
    /// `username`, `password`, `url` of the managed RabbitMQ; with `tls`, also
    /// `tls-url` (`amqps://`, port 5671).
    Broker { host: String, tls: bool },
    /// `username`, `password`, `cluster-id` (the KRaft cluster's id, formatted into
    /// every node's storage once) and `jaas` (the brokers' SASL/PLAIN user list, made
    /// from the other two) of the managed Kafka.
    Kafka,
    /// `password`, `url` of the managed Redis; with `tls`, also `tls-url`
    /// (`rediss://`).
    Cache { host: String, tls: bool },
    /// `admin-password`.
    Admin,
    /// `username` and `password` of the services' user on a RabbitmqCluster
    /// (`rabbitmq.cluster`), which the topology operator's `User` imports
    /// ([`super::rabbitmq_topology`]).
    RabbitmqUser { username: String },
    /// `username` (the role), `password` and `uri` (the service's URL) of a service's
    /// role in the shared CloudNativePG Cluster: a `kubernetes.io/basic-auth` Secret,
    /// as the role's `passwordSecret` must be ([`super::cloudnative_pg_shared`]).
    CloudNativePgRole {
        role: String,
        host: String,
        database: String,
    },
    /// The identity plane: `token-signing-keys` (the customer service's Ed25519 key,
    /// PKCS#8 PEM), `gateway-signing-keys` (the gateway's), `client-secret-<service>`
    /// for every service but the customer, and `service-clients`, those secrets as the
    /// customer service reads them (`gateway=<secret>,inventory=<secret>,...`).
    Identity,
}

/// On the credentials of what keeps data (the databases, RabbitMQ, Kafka): the
/// garbage collector cannot delete them before the deletion policy has been applied.
/// A foreground deletion has the collector delete a SalesSystem's dependents while
/// its own finalizer has not run yet; without this, `deletionPolicy: Retain` would
/// find the passwords of the volumes it keeps gone. The cleanup takes it off: with
/// `Retain` (the Secret is kept, or made again from its values if the collector had
/// already asked for its deletion), with `Delete` (the Secret goes). A reconcile of a
/// live system takes it off a Secret someone deletes by hand, which then goes and is
/// generated anew.
pub const CREDENTIALS_FINALIZER: &str = "sales-system.io/credentials";

/// Credentials of a component that keeps data in a volume, or the operator's CA that
/// signs those components' certificates (by the Secret's labels): `Retain` keeps them
/// with the volumes.
pub fn guards_data(labels: &BTreeMap<String, String>) -> bool {
    labels.get(LABEL_COMPONENT).is_some_and(|c| {
        c.ends_with("-db") || c == "rabbitmq" || c == "kafka" || c == super::tls::CA_COMPONENT
    })
}

/// The merge patch that makes an existing generated Secret the system's again: the
/// controller owner reference of `owner` (in place of one to an earlier SalesSystem of
/// the same name, kept by `Retain`), and [`CREDENTIALS_FINALIZER`] on credentials
/// that guard data. `None` when it has both already, or when it is not the
/// operator's to take (no labels of this system, or another controller owns it).
/// The patch carries the Secret's `resourceVersion`: a change in between is a 409,
/// and the next reconcile looks again.
pub fn adoption(
    secret: &Secret,
    names: &Names,
    owner: &OwnerReference,
) -> Option<serde_json::Value> {
    let labels = secret.labels();
    let ours = labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER)
        && labels.get(LABEL_INSTANCE) == Some(&names.instance);
    if !ours {
        return None;
    }
    let refs = secret.owner_references();
    let another_controller = refs
        .iter()
        .any(|r| r.controller == Some(true) && r.kind != owner.kind && r.uid != owner.uid);
    if another_controller {
        return None;
    }
    let owned = refs.iter().any(|r| r.uid == owner.uid);
    let mut finalizers = secret.finalizers().to_vec();
    let wants_finalizer = guards_data(labels);
    let has_finalizer = finalizers.iter().any(|f| f == CREDENTIALS_FINALIZER);
    if owned && (has_finalizer || !wants_finalizer) {
        return None;
    }
    // Earlier SalesSystems' references go: their objects are gone (or going).
    let mut kept: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| r.kind != owner.kind || r.api_version != owner.api_version)
        .cloned()
        .collect();
    kept.push(owner.clone());
    if wants_finalizer && !has_finalizer {
        finalizers.push(CREDENTIALS_FINALIZER.to_owned());
    }
    let mut metadata = json!({
        "resourceVersion": secret.resource_version(),
        "ownerReferences": kept,
    });
    if wants_finalizer {
        metadata["finalizers"] = json!(finalizers);
    }
    Some(json!({ "metadata": metadata }))
}

/// Where new values come from.
pub struct Sources<'a> {
    /// `len` random letters and digits.
    pub random: &'a mut dyn FnMut(usize) -> String,
    /// A new Ed25519 private key, PKCS#8 PEM.
    pub signing_key: &'a mut dyn FnMut() -> anyhow::Result<String>,
}

impl Sources<'_> {
    /// The operator's own: the OS-seeded generator and a fresh Ed25519 key.
    pub fn system<R>(f: impl FnOnce(&mut Sources<'_>) -> R) -> R {
        let mut random = random_alphanumeric;
        let mut signing_key = sales_platform::identity::keys::generate_pem;
        f(&mut Sources {
            random: &mut random,
            signing_key: &mut signing_key,
        })
    }
}

/// A Secret to create if absent, and complete if a key is missing.
#[derive(Clone, Debug)]
pub struct GeneratedSecret {
    pub name: String,
    pub component: Option<Component>,
    pub credentials: Credentials,
}

/// Length of a generated client secret (the customer service wants at least 16).
pub const CLIENT_SECRET_LENGTH: usize = 48;

impl Credentials {
    /// These credentials open what keeps data in a volume (kept by `Retain`).
    pub fn guards_data(&self) -> bool {
        matches!(
            self,
            Credentials::Database { .. }
                | Credentials::CloudNativePgRole { .. }
                | Credentials::Broker { .. }
                | Credentials::Kafka
                | Credentials::RabbitmqUser { .. }
        )
    }

    /// Every key this Secret must hold: `existing` values kept, missing ones generated
    /// from `sources`. A URL is made from the password it ends up with, and
    /// `service-clients` from the client secrets it ends up with (always: it is theirs
    /// to follow, never a value of its own).
    pub fn complete(
        &self,
        existing: &BTreeMap<String, String>,
        sources: &mut Sources<'_>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let mut values = existing.clone();
        let random = &mut *sources.random;
        let mut ensure = |values: &mut BTreeMap<String, String>, key: &str, len: usize| {
            values
                .entry(key.to_owned())
                .or_insert_with(|| random(len))
                .clone()
        };
        match self {
            Credentials::Database {
                host,
                database,
                tls,
            } => {
                values
                    .entry("username".into())
                    .or_insert_with(|| USERNAME.into());
                let password = ensure(&mut values, "password", 32);
                let user = values.get("username").cloned().unwrap_or_default();
                values.entry("url".into()).or_insert_with(|| {
                    format!("postgres://{user}:{password}@{host}:{POSTGRES_PORT}/{database}")
                });
                if *tls {
                    values.insert(
                        TLS_URL_KEY.into(),
                        format!(
                            "postgres://{user}:{password}@{host}:{POSTGRES_PORT}/{database}\
                             ?sslmode=verify-full&sslrootcert={}",
                            super::tls::CA_FILE
                        ),
                    );
                }
            }
            Credentials::Broker { host, tls } => {
                values
                    .entry("username".into())
                    .or_insert_with(|| USERNAME.into());
                let password = ensure(&mut values, "password", 32);
                // Shared by the nodes of a cluster (3 or more); added to the Secret of
                // an existing single node too, which does not read it.
                ensure(&mut values, ERLANG_COOKIE_KEY, 48);
                let user = values.get("username").cloned().unwrap_or_default();
                values
                    .entry("url".into())
                    .or_insert_with(|| format!("amqp://{user}:{password}@{host}:{AMQP_PORT}/%2f"));
                if *tls {
                    let port = super::tls::AMQPS_PORT;
                    values.insert(
                        TLS_URL_KEY.into(),
                        format!("amqps://{user}:{password}@{host}:{port}/%2f"),
                    );
                }
            }
            Credentials::Kafka => {
                values
                    .entry("username".into())
                    .or_insert_with(|| USERNAME.into());
                let password = ensure(&mut values, "password", 32);
                let user = values.get("username").cloned().unwrap_or_default();
                // A cluster id is a UUID in base64url, 22 characters whose last carries
                // only two bits: 21 random ones and an `A` (all zero bits).
                if !values.contains_key(KAFKA_CLUSTER_ID_KEY) {
                    let id = format!("{}A", random(21));
                    values.insert(KAFKA_CLUSTER_ID_KEY.to_owned(), id);
                }
                // A quoted JAAS value takes `\\` and `\"` escapes (a password edited by
                // hand may hold either).
                let quoted = password.replace('\\', "\\\\").replace('"', "\\\"");
                values.insert(
                    KAFKA_JAAS_KEY.to_owned(),
                    format!(
                        "org.apache.kafka.common.security.plain.PlainLoginModule required \
                         user_{user}=\"{quoted}\";"
                    ),
                );
            }
            Credentials::Cache { host, tls } => {
                let password = ensure(&mut values, "password", 32);
                values
                    .entry("url".into())
                    .or_insert_with(|| format!("redis://:{password}@{host}:{REDIS_PORT}"));
                if *tls {
                    values.insert(
                        TLS_URL_KEY.into(),
                        format!("rediss://:{password}@{host}:{REDIS_PORT}"),
                    );
                }
            }
            Credentials::RabbitmqUser { username } => {
                values
                    .entry("username".into())
                    .or_insert_with(|| username.clone());
                ensure(&mut values, "password", 32);
            }
            Credentials::Admin => {
                ensure(&mut values, ADMIN_PASSWORD_KEY, 24);
            }
            Credentials::CloudNativePgRole {
                role,
                host,
                database,
            } => {
                let password = ensure(&mut values, "password", 32);
                super::cloudnative_pg_shared::role_values(
                    &mut values,
                    role,
                    &password,
                    host,
                    database,
                );
            }
            Credentials::Identity => {
                let mut clients = Vec::new();
                for service in AppService::service_clients() {
                    let secret = ensure(
                        &mut values,
                        &client_secret_key(service),
                        CLIENT_SECRET_LENGTH,
                    );
                    clients.push(format!("{}={secret}", service.name()));
                }
                clients.sort();
                values.insert(SERVICE_CLIENTS_KEY.to_owned(), clients.join(","));
                for key in [TOKEN_SIGNING_KEYS_KEY, GATEWAY_SIGNING_KEYS_KEY] {
                    if !values.contains_key(key) {
                        values.insert(key.to_owned(), (sources.signing_key)()?);
                    }
                }
            }
        }
        Ok(values)
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
        let mut labels = match self.component {
            Some(c) => names.labels(c),
            None => names.system_labels(),
        };
        let mut type_ = "Opaque";
        if let Credentials::CloudNativePgRole { .. } = self.credentials {
            labels.extend(super::cloudnative_pg_shared::role_secret_labels());
            type_ = super::cloudnative_pg_shared::BASIC_AUTH;
        }
        let mut metadata = meta(names, self.name.clone(), labels, owner);
        if self.credentials.guards_data() {
            metadata.finalizers = Some(vec![CREDENTIALS_FINALIZER.to_owned()]);
        }
        Secret {
            metadata,
            type_: Some(type_.into()),
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
                    tls: spec.tls.enabled(),
                },
            });
        }
    }
    secrets.extend(super::cloudnative_pg_shared::generated(names, spec));
    if spec.managed_kafka().is_some() {
        secrets.push(GeneratedSecret {
            name: names.kafka_secret(),
            component: Some(Component::Kafka),
            credentials: Credentials::Kafka,
        });
    }
    if spec.managed_rabbitmq().is_some() {
        secrets.push(GeneratedSecret {
            name: names.broker_secret(),
            component: Some(Component::Broker),
            credentials: Credentials::Broker {
                host: names.of(Component::Broker),
                tls: spec.tls.enabled(),
            },
        });
    }
    secrets.extend(super::rabbitmq_topology::generated_secret(names, spec));
    if spec.redis.managed().is_some() {
        secrets.push(GeneratedSecret {
            name: names.cache_secret(),
            component: Some(Component::Cache),
            credentials: Credentials::Cache {
                host: names.of(Component::Cache),
                tls: spec.tls.enabled(),
            },
        });
    }
    if spec.auth.identity_secret.is_none() {
        secrets.push(GeneratedSecret {
            name: names.identity_secret(),
            component: None,
            credentials: Credentials::Identity,
        });
    }
    if spec.auth.admin.enabled && spec.auth.admin.password_secret.is_none() {
        secrets.push(GeneratedSecret {
            name: names.auth_secret(),
            component: None,
            credentials: Credentials::Admin,
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
mod tests;
