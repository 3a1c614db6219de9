//! `spec.postgres.cloudNativePG` (and `spec.postgres.services.<name>.cloudNativePG`):
//! a service's PostgreSQL run by CloudNativePG (docs/operator/providers.md). Either the
//! operator creates one CNPG `Cluster` per service, `<system>-<service>-pg` (with
//! `instances`, `storage`...), or `clusterName` names one that exists; the service
//! reads its URL from the Secret CloudNativePG generates for the application user,
//! `<cluster>-app`, key `uri`. Or (`shared: true` at the top level) the operator creates
//! one Cluster, `<system>-pg`, with a database and a role per service; each service
//! reads its URL from the Secret the operator generates for its role,
//! `<system>-pg-<service>`, key `uri`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::SECRET_NAME_PATTERN;

/// CloudNativePG's own default is one instance; a created cluster has three unless
/// `instances` says otherwise: a primary and two standbys, so that a failover (or a
/// node drained for maintenance) still leaves a standby to fail over to.
pub const DEFAULT_INSTANCES: i32 = 3;

/// The size of a created cluster's volumes when `storage.size` is not given (that
/// of the built-in databases).
pub const DEFAULT_STORAGE_SIZE: &str = "1Gi";

/// A CloudNativePG cron schedule: six fields (seconds first) or a descriptor.
const CNPG_SCHEDULE_PATTERN: &str =
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every \S+|\S+( \S+){5})$";

/// The provider of `spec.postgres` (`$x`: `self` or `oldSelf`) at the top level; on
/// CloudNativePG with the layout (`cnpg-shared`: the one shared Cluster; `cnpg/`: a
/// Cluster per service, which no cluster name can be taken for).
macro_rules! top {
    ($x:literal) => {
        concat!(
            "(has(",
            $x,
            ".external) ? 'external' : has(",
            $x,
            ".cloudNativePG) ? ((has(",
            $x,
            ".cloudNativePG.shared) && ",
            $x,
            ".cloudNativePG.shared) ? 'cnpg-shared' : 'cnpg/') : 'managed')"
        )
    };
}

/// The provider of service `$s`'s database: its override's, else the top level's; on
/// CloudNativePG with the referenced cluster's name.
macro_rules! effective {
    ($x:literal, $s:literal) => {
        concat!(
            "(has(",
            $x,
            ".services) && has(",
            $x,
            ".services.",
            $s,
            ") ? (has(",
            $x,
            ".services.",
            $s,
            ".external) ? 'external' : has(",
            $x,
            ".services.",
            $s,
            ".cloudNativePG) ? 'cnpg/' + (has(",
            $x,
            ".services.",
            $s,
            ".cloudNativePG.clusterName) ? ",
            $x,
            ".services.",
            $s,
            ".cloudNativePG.clusterName : '') : 'managed') : ",
            top!($x),
            ")"
        )
    };
}

macro_rules! same {
    ($s:literal) => {
        concat!(effective!("self", $s), " == ", effective!("oldSelf", $s))
    };
}

/// PostgreSQL on CloudNativePG: a `Cluster` the operator creates (leave `clusterName`
/// out), or one that exists (`clusterName`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.clusterName) || !(has(self.instances) || has(self.storage) || has(self.imageName) || has(self.resources) || has(self.postgresql) || has(self.backup) || has(self.scheduledBackup))").message("cloudNativePG: clusterName refers to a Cluster that exists; instances, storage, imageName, resources, postgresql, backup and scheduledBackup are for one the operator creates"),
    validation = Rule::new("!has(self.secretName) || has(self.clusterName)").message("cloudNativePG.secretName goes with clusterName (a created cluster's Secret is <cluster>-app)"),
    validation = Rule::new("!has(self.scheduledBackup) || has(self.backup)").message("cloudNativePG.scheduledBackup needs backup (where CloudNativePG writes the base backups)")
)]
pub struct CloudNativePgDatabase {
    /// An existing CloudNativePG `Cluster` of this namespace that holds the service's
    /// database: the operator creates nothing, the service reads `uri` from the
    /// Secret `secretName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50), regex(pattern = SECRET_NAME_PATTERN))]
    pub cluster_name: Option<String>,
    /// With `clusterName`: the Secret with the application user's `uri`; unset:
    /// `<clusterName>-app` (the one CloudNativePG generates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: Option<String>,
    /// PostgreSQL instances of a created cluster (one primary, the rest standbys);
    /// unset: 3. 1 runs no standby (no failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub instances: Option<i32>,
    /// The volume of each instance; unset: 1Gi of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<CloudNativePgStorage>,
    /// The PostgreSQL operand image (CloudNativePG's `imageName`); unset: the one
    /// CloudNativePG defaults to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image_name: Option<String>,
    /// Each instance's resources (CloudNativePG's `resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// PostgreSQL configuration, passed to the Cluster as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<CloudNativePgPostgresql>,
    /// CloudNativePG's `backup` block (`barmanObjectStore`, `retentionPolicy`...), passed
    /// to the Cluster as is; CloudNativePG validates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_object")]
    pub backup: Option<serde_json::Value>,
    /// A `ScheduledBackup` of the cluster (needs `backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_backup: Option<CloudNativePgScheduledBackup>,
    /// Not a field of the override: set from the top level's `shared`, the service's
    /// database is in the system's one shared Cluster, `<system>-pg`. Not in the
    /// schema (so the API server and `render` refuse it in an override); serialized
    /// only when set, which an override never is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(skip)]
    pub shared: bool,
}

impl CloudNativePgDatabase {
    /// The cluster the operator creates (`None`: it references one).
    pub fn creates(&self) -> bool {
        self.cluster_name.is_none()
    }
}

/// `postgres.cloudNativePG`: a CloudNativePG `Cluster` per service, or with `shared` one
/// for all of them, which the operator creates (a service's override may give the
/// service a Cluster of its own, or name an existing one, instead).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.scheduledBackup) || has(self.backup)").message("cloudNativePG.scheduledBackup needs backup (where CloudNativePG writes the base backups)")
)]
pub struct CloudNativePgClusters {
    /// One Cluster, `<system>-pg`, for every service on this top level, instead of one
    /// per service: each service has its own database (`orders`, `payments`...) owned
    /// by its own role (`order`, `payment`...), which the operator declares in the
    /// Cluster's `managed.roles` and in a CloudNativePG `Database` object per service
    /// (CloudNativePG 1.25 or later); the service reads its URL from the Secret
    /// `<system>-pg-<service>`. The settings below are the shared Cluster's. Fixed once
    /// the SalesSystem exists: switching layouts would leave the data behind.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// PostgreSQL instances of each cluster (one primary, the rest standbys); unset:
    /// 3. 1 runs no standby (no failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub instances: Option<i32>,
    /// The volume of each instance; unset: 1Gi of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<CloudNativePgStorage>,
    /// The PostgreSQL operand image (CloudNativePG's `imageName`); unset: the one
    /// CloudNativePG defaults to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image_name: Option<String>,
    /// Each instance's resources (CloudNativePG's `resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// PostgreSQL configuration, passed to each Cluster as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<CloudNativePgPostgresql>,
    /// CloudNativePG's `backup` block (`barmanObjectStore`, `retentionPolicy`...), passed
    /// to each Cluster as is; CloudNativePG validates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_object")]
    pub backup: Option<serde_json::Value>,
    /// A `ScheduledBackup` of each cluster (needs `backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_backup: Option<CloudNativePgScheduledBackup>,
}

impl From<CloudNativePgClusters> for CloudNativePgDatabase {
    fn from(c: CloudNativePgClusters) -> Self {
        CloudNativePgDatabase {
            cluster_name: None,
            secret_name: None,
            instances: c.instances,
            storage: c.storage,
            image_name: c.image_name,
            resources: c.resources,
            postgresql: c.postgresql,
            backup: c.backup,
            scheduled_backup: c.scheduled_backup,
            shared: c.shared,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgStorage {
    /// The size of each instance's volume, e.g. `10Gi`; unset: 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// The StorageClass; unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgPostgresql {
    /// `postgresql.conf` parameters, e.g. `max_connections: "200"` (CloudNativePG
    /// refuses the ones it manages itself).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgScheduledBackup {
    /// When, in CloudNativePG's cron format: six fields, seconds first (`0 0 2 * * *`:
    /// every day at 02:00), or a descriptor such as `@daily`.
    #[schemars(regex(pattern = CNPG_SCHEDULE_PATTERN))]
    pub schedule: String,
}

/// An object whose fields are not checked here (CloudNativePG's own schema does).
fn free_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The transition rule on `spec.postgres`: no service's database changes provider
/// (nor, on CloudNativePG, cluster) on an update, whether the top level or a
/// service's override says it.
pub const PROVIDER_RULE: &str = concat!(
    same!("product"),
    " && ",
    same!("order"),
    " && ",
    same!("customer"),
    " && ",
    same!("payment"),
    " && ",
    same!("inventory"),
    " && ",
    same!("shipping"),
    " && ",
    same!("notification")
);

/// What [`PROVIDER_RULE`] refuses, in words.
pub const PROVIDER_MESSAGE: &str = "changing a database's provider would leave its data behind; move the data first, see docs/operator/providers.md";
