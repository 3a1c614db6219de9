//! Stage 1 of the reconcile: what the spec references. The user's Secrets are read
//! first; only when every referenced one (and key) exists are the generated
//! credentials ensured ([`super::credentials`]). The values of both are what the
//! children are built with.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::{Context, Error, credentials, on};
use crate::children::names::Names;
use crate::children::{KnownSecrets, env, rabbitmq_topology};
use crate::crd::SalesSystem;

/// A Secret's values, by key.
pub(super) type Values = BTreeMap<String, String>;

/// What resolving the references found.
pub(super) enum Resolved {
    /// Every referenced Secret exists; the generated ones are ensured.
    All(References),
    /// The user's Secrets (or keys) that the spec names but that do not exist, as
    /// `secret/key`: nothing is applied until they do.
    Missing(Vec<String>),
}

/// The values of the Secrets the children are built with, by Secret name.
pub(super) struct References {
    /// The user's Secrets the spec references.
    pub user: BTreeMap<String, Values>,
    /// The generated credentials.
    pub generated: BTreeMap<String, Values>,
    /// The TLS Secrets of `spec.tls` (the CA's key left out).
    pub tls: BTreeMap<String, Values>,
    /// With `rabbitmq.cluster`: whether the cluster may serve the Messaging Topology
    /// Operator's kinds, without which the services' account does not exist on the
    /// broker (and is not handed to them).
    pub rabbitmq_topology_served: bool,
}

impl References {
    /// The Secret `name`, the user's before a generated one.
    fn get(&self, name: &str) -> Option<&Values> {
        self.user.get(name).or_else(|| self.generated.get(name))
    }

    /// The Secrets whose values the pods' digest includes.
    pub fn known(&self, system: &SalesSystem, names: &Names) -> KnownSecrets<'_> {
        let identity = self.get(&env::identity_secret_name(names, &system.spec));
        // The Kafka account the services log in with (the brokers' user list with it).
        let kafka_account = system
            .spec
            .kafka()
            .and_then(|kafka| env::kafka_credentials(names, &kafka))
            .and_then(|(secret, _, _)| self.get(&secret));
        let rabbitmq_services_user = system
            .spec
            .rabbitmq_cluster()
            .filter(|_| self.rabbitmq_topology_served)
            .and_then(|_| self.get(&rabbitmq_topology::credentials_secret(names)));
        KnownSecrets {
            identity,
            kafka_account,
            rabbitmq_services_user,
            tls: Some(&self.tls),
        }
    }
}

/// Read the user's Secrets; when none is missing, ensure the generated ones.
pub(super) async fn resolve(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
) -> Result<Resolved, Error> {
    let (missing, user) = read_references(ctx, system, names).await?;
    if !missing.is_empty() {
        return Ok(Resolved::Missing(missing));
    }
    let generated = credentials::ensure_generated_secrets(ctx, system, names).await?;
    let tls = super::tls::ensure(ctx, system, names).await?;
    let rabbitmq_topology_served = match system.spec.rabbitmq_cluster() {
        Some(_) => super::rabbitmq_cluster::topology_served(ctx).await,
        None => false,
    };
    Ok(Resolved::All(References {
        user,
        generated,
        tls,
        rabbitmq_topology_served,
    }))
}

/// The user's Secrets (or keys) that the spec names but that do not exist, and the
/// values of those that do, by Secret name.
async fn read_references(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
) -> Result<(Vec<String>, BTreeMap<String, Values>), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, key) in env::referenced_secrets(&system.spec) {
        wanted.entry(name).or_default().push(key);
    }
    let mut missing = Vec::new();
    let mut read = BTreeMap::new();
    for (name, keys) in wanted {
        let values = api
            .get_opt(&name)
            .await
            .map_err(on(format!("Secret {name}")))?
            .map(|s| secret_values(&s))
            .unwrap_or_default();
        for key in keys {
            if !values.contains_key(&key) {
                missing.push(format!("{name}/{key}"));
            }
        }
        read.insert(name, values);
    }
    Ok((missing, read))
}

/// A Secret's values, `data` decoded and `stringData` over it.
pub(super) fn secret_values(secret: &Secret) -> Values {
    let mut values: Values = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    values.extend(secret.string_data.clone().unwrap_or_default());
    values
}
