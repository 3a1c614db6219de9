//! PostgreSQL on CloudNativePG (`postgres.cloudNativePG`, or a service's override):
//! for each service whose database the operator creates there, a CNPG `Cluster`
//! `<system>-<service>-pg` bootstrapped with the service's database and an owner of
//! the service's name, and with `scheduledBackup` a `ScheduledBackup` of it. A service
//! whose override names an existing cluster (`clusterName`) gets nothing here.
//!
//! Either way the service reads `DATABASE_URL` from the Secret CloudNativePG keeps
//! for the application user (`<cluster>-app`, key `uri`; see [`database_secret`]).
//! The shared layout (`shared: true`, one Cluster for every service) is
//! [`super::cloudnative_pg_shared`]'s.
//!
//! The Cluster holds the data, as the built-in databases' volumes do: it is owned by
//! the SalesSystem only with `deletionPolicy: Delete` ([`cluster_owner`]). With
//! `Retain` it never is, so no garbage collection can take it, not even a foreground
//! deletion's, which deletes the dependents before the operator's cleanup runs; the
//! cleanup still takes off a reference an earlier `Delete` left (`crate::reconcile`),
//! and pruning never deletes a Cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::Child;
use super::cloudnative_pg_shared;
use super::names::{Component, Names};
use super::services::meta;
use crate::catalogue::AppService;
use crate::crd::{
    CloudNativePgDatabase, DEFAULT_INSTANCES, DEFAULT_STORAGE_SIZE, DatabaseChoice, DeletionPolicy,
    Placement, SalesSystemSpec,
};

/// CloudNativePG's API group.
pub const GROUP: &str = "postgresql.cnpg.io";
/// The key of the application user's Secret that holds the connection URI.
pub const URI_KEY: &str = "uri";

/// CloudNativePG's `Cluster` kind (`postgresql.cnpg.io/v1`).
pub fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Cluster"), "clusters")
}

/// CloudNativePG's `ScheduledBackup` kind (`postgresql.cnpg.io/v1`).
pub fn scheduled_backup_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", "ScheduledBackup"),
        "scheduledbackups",
    )
}

/// CloudNativePG's `Database` kind (`postgresql.cnpg.io/v1`, CloudNativePG 1.25 or
/// later): one per service in the shared Cluster.
pub fn database_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Database"), "databases")
}

/// Whether `kind` is one of CloudNativePG's the operator creates.
pub fn is_cnpg_kind(kind: &str) -> bool {
    kind == cluster_resource().kind
        || kind == scheduled_backup_resource().kind
        || kind == database_resource().kind
}

/// The CNPG Cluster of `service`: the one named, the shared one (`<system>-pg`), or
/// `<system>-<service>-pg`.
pub fn cluster_name(names: &Names, service: AppService, cnpg: &CloudNativePgDatabase) -> String {
    if cnpg.shared {
        return cloudnative_pg_shared::cluster_name(names);
    }
    cnpg.cluster_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-pg", names.instance, service.name()))
}

/// The Secret and key of the service's URL: `secretName`, else `<cluster>-app`, or
/// in the shared Cluster the Secret of the service's role; key `uri`.
pub fn database_secret(
    names: &Names,
    service: AppService,
    cnpg: &CloudNativePgDatabase,
) -> (String, String) {
    if cnpg.shared {
        let secret = cloudnative_pg_shared::role_secret(names, service);
        return (secret, URI_KEY.to_owned());
    }
    let secret = cnpg
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-app", cluster_name(names, service, cnpg)));
    (secret, URI_KEY.to_owned())
}

/// The Secret and key of a referenced cluster's URL (none for a created cluster,
/// whose Secret CloudNativePG makes while it bootstraps: the pods wait for it).
pub fn referenced_secret(cnpg: &CloudNativePgDatabase) -> Option<(String, String)> {
    let cluster = cnpg.cluster_name.as_ref()?;
    let secret = cnpg
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{cluster}-app"));
    Some((secret, URI_KEY.to_owned()))
}

/// The services on CloudNativePG, with their settings.
pub fn services(spec: &SalesSystemSpec) -> Vec<(AppService, CloudNativePgDatabase)> {
    AppService::with_database()
        .filter_map(|service| match spec.postgres.choice(service) {
            Some(DatabaseChoice::CloudNativePg(cnpg)) => Some((service, cnpg)),
            _ => None,
        })
        .collect()
}

/// The Clusters the operator creates, by name, with their services.
pub fn created_clusters(names: &Names, spec: &SalesSystemSpec) -> Vec<(AppService, String)> {
    services(spec)
        .into_iter()
        .filter(|(_, cnpg)| cnpg.creates())
        .map(|(service, cnpg)| (service, cluster_name(names, service, &cnpg)))
        .collect()
}

/// Every Cluster, ScheduledBackup (and in the shared layout Database) the spec asks
/// the operator to create.
pub fn children(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let mut out = Vec::new();
    for (service, cnpg) in services(spec) {
        let Some(database) = service.database() else {
            continue;
        };
        if !cnpg.creates() || cnpg.shared {
            continue;
        }
        let name = cluster_name(names, service, &cnpg);
        let labels = names.labels(Component::Database(service));
        let resource = cluster_resource();
        let object = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": meta(names, name.clone(), labels.clone(), &cluster_owner(spec, owner)),
            "spec": cluster_spec(spec, service, database, &cnpg, &name)?,
        });
        out.push(Child {
            resource,
            object: serde_json::from_value(object)?,
        });
        if let Some(scheduled) = &cnpg.scheduled_backup {
            out.push(scheduled_backup(
                names,
                &name,
                &scheduled.schedule,
                labels,
                owner,
            )?);
        }
    }
    out.extend(cloudnative_pg_shared::children(names, spec, owner)?);
    Ok(out)
}

/// The owner of a Cluster the operator creates: the SalesSystem with `deletionPolicy:
/// Delete` (CloudNativePG deletes the volumes with the Cluster), none with `Retain`.
pub(super) fn cluster_owner(
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Option<OwnerReference> {
    match spec.deletion_policy {
        DeletionPolicy::Delete => owner.clone(),
        DeletionPolicy::Retain => None,
    }
}

/// The `ScheduledBackup` of the Cluster `cluster` (named after it), on `schedule`.
pub(super) fn scheduled_backup(
    names: &Names,
    cluster: &str,
    schedule: &str,
    labels: BTreeMap<String, String>,
    owner: &Option<OwnerReference>,
) -> Result<Child, serde_json::Error> {
    let resource = scheduled_backup_resource();
    let object = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": meta(names, cluster.to_owned(), labels, owner),
        "spec": {
            "schedule": schedule,
            "cluster": {"name": cluster},
            // The Backup objects go with their ScheduledBackup (the backups
            // themselves stay in the object store, under its retention).
            "backupOwnerReference": "self",
        },
    });
    Ok(Child {
        resource,
        object: serde_json::from_value(object)?,
    })
}

/// A created Cluster's spec: the settings given, CloudNativePG's defaults for the
/// rest, and `initdb` making the service's database, owned by a user of its name.
fn cluster_spec(
    system: &SalesSystemSpec,
    service: AppService,
    database: &str,
    cnpg: &CloudNativePgDatabase,
    name: &str,
) -> Result<Value, serde_json::Error> {
    let mut spec = instances_spec(cnpg);
    spec["bootstrap"] = json!({"initdb": {"database": database, "owner": service.name()}});
    let placement = super::placement::given(system, Component::Database(service));
    place(&placement, &mut spec, name)?;
    Ok(spec)
}

/// Set the placement of a created Cluster's instances (CloudNativePG labels them
/// with their cluster and role).
pub(super) fn place(
    placement: &Placement,
    spec: &mut Value,
    cluster: &str,
) -> Result<(), serde_json::Error> {
    let pods = BTreeMap::from([
        ("cnpg.io/cluster".to_owned(), cluster.to_owned()),
        ("cnpg.io/podRole".to_owned(), "instance".to_owned()),
    ]);
    super::provider_placement::cloudnative_pg(placement, spec, &pods)
}

/// The part of a created Cluster's spec the settings make: instances, volumes,
/// image, resources, `postgresql.conf` parameters and `backup`.
pub(super) fn instances_spec(cnpg: &CloudNativePgDatabase) -> Value {
    let storage = cnpg.storage.clone().unwrap_or_default();
    let mut volume = json!({
        "size": storage.size.map(|q| q.0).unwrap_or_else(|| DEFAULT_STORAGE_SIZE.into()),
    });
    if let Some(class) = storage.storage_class {
        volume["storageClass"] = class.into();
    }
    let mut spec = json!({
        "instances": cnpg.instances.unwrap_or(DEFAULT_INSTANCES),
        "storage": volume,
    });
    if let Some(image) = &cnpg.image_name {
        spec["imageName"] = image.clone().into();
    }
    if let Some(resources) = &cnpg.resources
        && let Ok(value) = serde_json::to_value(resources)
    {
        spec["resources"] = value;
    }
    if let Some(postgresql) = &cnpg.postgresql
        && !postgresql.parameters.is_empty()
    {
        spec["postgresql"] = json!({"parameters": postgresql.parameters});
    }
    if let Some(backup) = &cnpg.backup {
        spec["backup"] = backup.clone();
    }
    spec
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crd::{CloudNativePgClusters, CloudNativePgScheduledBackup, SalesSystemSpec};

    #[test]
    fn a_created_cluster_per_service_and_its_secret() {
        let mut spec = SalesSystemSpec::default();
        spec.postgres.cloud_native_pg = Some(CloudNativePgClusters {
            backup: Some(json!({"barmanObjectStore": {"destinationPath": "s3://b/"}})),
            scheduled_backup: Some(CloudNativePgScheduledBackup {
                schedule: "0 0 2 * * *".into(),
            }),
            ..Default::default()
        });
        let names = Names::new("shop", "sales");
        let children = children(&names, &spec, &None).unwrap();
        assert_eq!(
            children.len(),
            14,
            "a Cluster and a ScheduledBackup per service"
        );
        let order = children
            .iter()
            .find(|c| c.kind() == "Cluster" && c.name() == "shop-order-pg")
            .unwrap();
        let spec_value = &order.object.data["spec"];
        assert_eq!(spec_value["instances"], 3);
        assert_eq!(spec_value["bootstrap"]["initdb"]["database"], "orders");
        assert_eq!(spec_value["bootstrap"]["initdb"]["owner"], "order");
        let cnpg = spec.postgres.cloud_native_pg.clone().unwrap().into();
        assert_eq!(
            database_secret(&names, AppService::Order, &cnpg),
            ("shop-order-pg-app".into(), "uri".into())
        );
    }
}
