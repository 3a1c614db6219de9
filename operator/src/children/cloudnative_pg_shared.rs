//! The shared layout of CloudNativePG (`postgres.cloudNativePG.shared: true`): one
//! CNPG `Cluster`, `<system>-pg`, holds the databases of every service on the top
//! level, each its own database owned by its own role, so that no service reads or
//! changes another's tables (nor shares its migrations' history) although they share
//! the instances:
//!
//! - the Cluster declares one role per service in `spec.managed.roles` (`order`...,
//!   allowed to log in), whose password CloudNativePG takes from the Secret
//!   `<system>-pg-<service>` ([`role_secret`]), a `kubernetes.io/basic-auth` Secret the
//!   operator generates once and never replaces, like every database password
//!   ([`super::secrets`]); labelled `cnpg.io/reload` so that a password changed by hand
//!   is applied to the role at once;
//! - one CloudNativePG `Database` object per service (also `<system>-pg-<service>`)
//!   creates its database (`orders`...) owned by that role; `databaseReclaimPolicy`
//!   is `retain`, or `delete` with `deletionPolicy: Delete`;
//! - with `scheduledBackup`, one `ScheduledBackup` of the Cluster;
//! - the role's Secret also holds `uri`, the service's URL on the Cluster's read-write
//!   Service, which the service reads as `DATABASE_URL` as on any CloudNativePG cluster.
//!
//! The Cluster and the Databases are owned by the SalesSystem; `deletionPolicy:
//! Retain` releases the Cluster as it does every CloudNativePG Cluster
//! (`crate::reconcile`), and the Databases' `retain` policy keeps the databases in it
//! when the objects go. The Database objects are never pruned: a service cannot leave
//! the shared Cluster (the CRD refuses that change), and with `delete` pruning one
//! would drop a database.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::Child;
use super::cloudnative_pg::{self, database_resource, instances_spec, scheduled_backup};
use super::env::{DEFAULT_DATABASE_POOL, KEPT_CONNECTIONS, MIN_DATABASE_POOL, most_pods};
use super::infrastructure::POSTGRES_PORT;
use super::names::{Component, LABEL_COMPONENT, LABEL_NAME, Names};
use super::secrets::{Credentials, GeneratedSecret};
use super::services::meta;
use crate::catalogue::AppService;
use crate::crd::{CloudNativePgDatabase, DeletionPolicy, SalesSystemSpec};

/// The `sales-system.io/component` label of the shared Cluster and its backup.
pub const COMPONENT: &str = "pg";
/// The label CloudNativePG watches password Secrets by: a change is applied at once.
pub const RELOAD_LABEL: &str = "cnpg.io/reload";
/// The Secret type CloudNativePG wants for a role's `passwordSecret`.
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
/// PostgreSQL's `max_connections` when `postgresql.parameters` does not set it (the
/// default CloudNativePG leaves).
pub const DEFAULT_MAX_CONNECTIONS: i32 = 100;

/// Everything but RFC 3986's unreserved characters is escaped in a URL's user info.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The shared Cluster: `<system>-pg`.
pub fn cluster_name(names: &Names) -> String {
    format!("{}-pg", names.instance)
}

/// The Secret of `service`'s role (and the name of its `Database` object):
/// `<system>-pg-<service>`.
pub fn role_secret(names: &Names, service: AppService) -> String {
    format!("{}-pg-{}", names.instance, service.name())
}

/// The shared Cluster's settings, when the top level asks for one.
fn settings(spec: &SalesSystemSpec) -> Option<CloudNativePgDatabase> {
    let clusters = spec.postgres.cloud_native_pg.clone()?;
    clusters.shared.then(|| clusters.into())
}

/// The services whose database is in the shared Cluster (those on the top level's
/// `cloudNativePG: {shared: true}` without an override of their own).
pub fn services(spec: &SalesSystemSpec) -> Vec<AppService> {
    cloudnative_pg::services(spec)
        .into_iter()
        .filter(|(_, cnpg)| cnpg.shared)
        .map(|(service, _)| service)
        .collect()
}

/// The shared Cluster, its `ScheduledBackup` and a `Database` per service; nothing
/// when no service is in it.
pub fn children(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let services = services(spec);
    let Some(cnpg) = settings(spec).filter(|_| !services.is_empty()) else {
        return Ok(Vec::new());
    };
    let name = cluster_name(names);
    let labels = cluster_labels(names);
    let mut spec_value = instances_spec(&cnpg);
    spec_value["managed"] =
        json!({"roles": services.iter().map(|s| role(names, *s)).collect::<Vec<_>>()});
    let placement = spec.placement.clone().unwrap_or_default();
    cloudnative_pg::place(&placement, &mut spec_value, &name)?;
    let resource = cloudnative_pg::cluster_resource();
    let cluster = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": meta(names, name.clone(), labels.clone(), &cloudnative_pg::cluster_owner(spec, owner)),
        "spec": spec_value,
    });
    let mut out = vec![Child {
        resource,
        object: serde_json::from_value(cluster)?,
    }];
    if let Some(scheduled) = &cnpg.scheduled_backup {
        out.push(scheduled_backup(
            names,
            &name,
            &scheduled.schedule,
            labels,
            owner,
        )?);
    }
    let reclaim = match spec.deletion_policy {
        DeletionPolicy::Delete => "delete",
        DeletionPolicy::Retain => "retain",
    };
    for service in services {
        let Some(database) = service.database() else {
            continue;
        };
        let resource = database_resource();
        let object = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": meta(
                names,
                role_secret(names, service),
                names.labels(Component::Database(service)),
                owner,
            ),
            "spec": {
                "cluster": {"name": name},
                "name": database,
                "owner": service.name(),
                "ensure": "present",
                "databaseReclaimPolicy": reclaim,
            },
        });
        out.push(Child {
            resource,
            object: serde_json::from_value(object)?,
        });
    }
    Ok(out)
}

/// The labels of the shared Cluster (and its ScheduledBackup): the system's, with
/// `app.kubernetes.io/name: postgres` and component `pg`.
fn cluster_labels(names: &Names) -> BTreeMap<String, String> {
    let mut labels = names.system_labels();
    labels.insert(LABEL_NAME.into(), "postgres".into());
    labels.insert(LABEL_COMPONENT.into(), COMPONENT.into());
    labels
}

/// `service`'s entry of the Cluster's `managed.roles`: a role of the service's name
/// that logs in with the password of its Secret.
fn role(names: &Names, service: AppService) -> Value {
    json!({
        "name": service.name(),
        "ensure": "present",
        "login": true,
        "passwordSecret": {"name": role_secret(names, service)},
    })
}

/// The Secrets of the roles of the services in the shared Cluster.
pub fn generated(names: &Names, spec: &SalesSystemSpec) -> Vec<GeneratedSecret> {
    let host = format!("{}-rw.{}.svc", cluster_name(names), names.namespace);
    services(spec)
        .into_iter()
        .filter_map(|service| {
            Some(GeneratedSecret {
                name: role_secret(names, service),
                component: Some(Component::Database(service)),
                credentials: Credentials::CloudNativePgRole {
                    role: service.name().into(),
                    host: host.clone(),
                    database: service.database()?.into(),
                },
            })
        })
        .collect()
}

/// A role's Secret completed around its `password` (generated, or kept): `username`
/// is the role's name (CloudNativePG wants them equal), `uri` the URL made from both,
/// percent-encoded, always brought up to date with the password.
pub fn role_values(
    values: &mut BTreeMap<String, String>,
    role: &str,
    password: &str,
    host: &str,
    database: &str,
) {
    values.insert("username".into(), role.into());
    values.insert(
        cloudnative_pg::URI_KEY.into(),
        format!(
            "postgres://{}:{}@{host}:{POSTGRES_PORT}/{database}",
            utf8_percent_encode(role, USERINFO),
            utf8_percent_encode(password, USERINFO),
        ),
    );
}

/// Labels a role's Secret carries besides the system's.
pub fn role_secret_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(RELOAD_LABEL.to_owned(), "true".to_owned())])
}

/// Each pod's pool on the shared Cluster: its `max_connections` (the parameter
/// given, else 100) less [`KEPT_CONNECTIONS`], shared by the most pods every service
/// in it may run at once (as on a managed database, between [`MIN_DATABASE_POOL`]
/// and [`DEFAULT_DATABASE_POOL`]): seven services' pools of 10 would take 140
/// connections in a rollout.
pub fn database_pool(spec: &SalesSystemSpec) -> i32 {
    let max_connections = settings(spec)
        .and_then(|cnpg| cnpg.postgresql)
        .and_then(|p| p.parameters.get("max_connections")?.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let pods: i32 = services(spec).into_iter().map(|s| most_pods(spec, s)).sum();
    ((max_connections - KEPT_CONNECTIONS) / pods.max(1))
        .clamp(MIN_DATABASE_POOL, DEFAULT_DATABASE_POOL)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crd::{CloudNativePgClusters, CloudNativePgPostgresql, DatabaseOverride};

    fn shared_spec() -> SalesSystemSpec {
        let mut spec = SalesSystemSpec::default();
        spec.postgres.cloud_native_pg = Some(CloudNativePgClusters {
            shared: true,
            ..Default::default()
        });
        spec
    }

    #[test]
    fn one_cluster_with_a_role_and_a_database_per_service() {
        let mut spec = shared_spec();
        // Payment keeps a Cluster of its own.
        spec.postgres.services.payment = Some(DatabaseOverride {
            cloud_native_pg: Some(CloudNativePgDatabase::default()),
            ..Default::default()
        });
        let names = Names::new("shop", "sales");
        let children = cloudnative_pg::children(&names, &spec, &None).unwrap();
        let kinds: Vec<(&str, String)> = children.iter().map(|c| (c.kind(), c.name())).collect();
        assert!(kinds.contains(&("Cluster", "shop-pg".into())), "{kinds:?}");
        assert!(kinds.contains(&("Cluster", "shop-payment-pg".into())));
        assert_eq!(kinds.iter().filter(|(k, _)| *k == "Cluster").count(), 2);
        assert_eq!(kinds.iter().filter(|(k, _)| *k == "Database").count(), 6);
        let shared = children.iter().find(|c| c.name() == "shop-pg").unwrap();
        let roles = shared.object.data["spec"]["managed"]["roles"]
            .as_array()
            .unwrap();
        assert_eq!(roles.len(), 6);
        assert_eq!(
            roles[1],
            json!({"name": "order", "ensure": "present", "login": true,
                   "passwordSecret": {"name": "shop-pg-order"}})
        );
        assert!(shared.object.data["spec"].get("bootstrap").is_none());
        let orders = children
            .iter()
            .find(|c| c.kind() == "Database" && c.name() == "shop-pg-order")
            .unwrap();
        assert_eq!(
            orders.object.data["spec"],
            json!({"cluster": {"name": "shop-pg"}, "name": "orders", "owner": "order",
                   "ensure": "present", "databaseReclaimPolicy": "retain"})
        );
        let generated: Vec<String> = generated(&names, &spec)
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(generated.len(), 6);
        assert!(!generated.contains(&"shop-pg-payment".to_owned()));
    }

    #[test]
    fn delete_drops_the_databases_with_the_objects() {
        let mut spec = shared_spec();
        spec.deletion_policy = DeletionPolicy::Delete;
        let names = Names::new("shop", "sales");
        let children = children(&names, &spec, &None).unwrap();
        assert!(
            children
                .iter()
                .filter(|c| c.kind() == "Database")
                .all(|c| c.object.data["spec"]["databaseReclaimPolicy"] == "delete")
        );
    }

    #[test]
    fn the_uri_escapes_what_a_password_edited_by_hand_may_hold() {
        let mut values = BTreeMap::new();
        role_values(
            &mut values,
            "order",
            "p@ss:w/rd?",
            "shop-pg-rw.sales.svc",
            "orders",
        );
        assert_eq!(values["username"], "order");
        assert_eq!(
            values["uri"],
            "postgres://order:p%40ss%3Aw%2Frd%3F@shop-pg-rw.sales.svc:5432/orders"
        );
    }

    #[test]
    fn the_pools_share_the_clusters_connections() {
        let mut spec = shared_spec();
        // 7 services, 2 pods each at most (one more in a rollout): 90 / 14 = 6.
        assert_eq!(database_pool(&spec), 6);
        if let Some(c) = spec.postgres.cloud_native_pg.as_mut() {
            c.postgresql = Some(CloudNativePgPostgresql {
                parameters: BTreeMap::from([("max_connections".into(), "400".into())]),
            });
        }
        assert_eq!(database_pool(&spec), DEFAULT_DATABASE_POOL);
    }
}
