//! `spec.postgres.managed.backup` (and `spec.postgres.services.<name>.managed.backup`):
//! scheduled `pg_dump`s of a managed database, kept on a volume or in an
//! S3-compatible bucket. The CronJobs are built in `children/backups.rs`; how to
//! restore is `docs/operator/backups.md`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SECRET_KEY_PATTERN, SECRET_NAME_PATTERN};

/// A cron schedule as a CronJob reads it: five fields, or one of the `@` macros.
const SCHEDULE_RULE: &str = r"self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*?/,-]+( +[0-9A-Za-z*?/,-]+){4})$')";

/// Scheduled dumps of one service's database (`pg_dump --format=custom`), named
/// `<service>/<UTC time>.dump` (`order/20250131T030000Z.dump`), the newest
/// `retention` kept. Exactly one target: `volume` or `s3`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.volume) != has(self.s3)").message("postgres backup: give exactly one target, volume or s3")
)]
pub struct BackupSpec {
    /// When to dump, as a CronJob schedule in UTC: five fields (`minute hour
    /// day-of-month month day-of-week`, e.g. `0 3 * * *`) or `@hourly`, `@daily`,
    /// `@weekly`, `@monthly`.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(
        validation = Rule::new(SCHEDULE_RULE).message("postgres backup schedule: five cron fields (minute hour day-of-month month day-of-week, e.g. '0 3 * * *') or @hourly, @daily, @weekly, @monthly, @yearly")
    )]
    pub schedule: String,
    /// How many dumps of each database to keep: after each new dump, older ones
    /// beyond this are deleted.
    #[serde(default = "default_retention")]
    #[schemars(range(min = 1, max = 1000))]
    pub retention: i32,
    /// Stop scheduling dumps (the CronJob's `suspend`), e.g. while restoring.
    #[serde(default)]
    pub suspend: bool,
    /// A PersistentVolumeClaim per service, `<name>-<service>-backup`, made by the
    /// operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<BackupVolume>,
    /// An S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Target>,
    /// CPU and memory of the backup containers. Unset: requests 50m CPU and 64Mi,
    /// limit 512Mi of memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_retention() -> i32 {
    7
}

/// The volume the dumps of one service are kept on. Like the database volumes, it is
/// not deleted with the SalesSystem unless `deletionPolicy` is `Delete`, nor when
/// backups are switched off.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("postgres backup volume: storageClassName cannot change once the claim exists")
)]
pub struct BackupVolume {
    /// Size of the claim. Can grow (with a StorageClass that has
    /// `allowVolumeExpansion: true`), never shrink.
    #[serde(default = "default_backup_size")]
    #[schemars(extend("nullable" = false))]
    pub size: Quantity,
    /// StorageClass of the claim; unset uses the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

fn default_backup_size() -> Quantity {
    Quantity("2Gi".into())
}

impl Default for BackupVolume {
    fn default() -> Self {
        BackupVolume {
            size: default_backup_size(),
            storage_class_name: None,
        }
    }
}

/// An S3-compatible bucket (AWS S3, MinIO, Ceph RGW...). Dumps are uploaded with the
/// AWS CLI to `s3://<bucket>/<prefix>/<service>/<UTC time>.dump`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Target {
    /// The S3 API's URL, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://minio.storage:9000`.
    #[schemars(length(max = 512), regex(pattern = r"^https?://[^\s/@]+(/[^\s]*)?$"))]
    pub endpoint: String,
    /// The bucket (it must exist).
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// A key prefix, e.g. `backups/shop`; unset: the dumps are at the bucket's top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    )]
    pub prefix: Option<String>,
    /// The region requests are signed for; unset: `us-east-1`, which S3-compatible
    /// stores accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,
    /// Address buckets as `<endpoint>/<bucket>` instead of `<bucket>.<endpoint>`:
    /// what most S3-compatible stores (MinIO) need.
    #[serde(default)]
    pub force_path_style: bool,
    /// The Secret (in this namespace) with the access key.
    pub credentials: S3Credentials,
    /// The image with `sh` and the AWS CLI (v2 or v1), which uploads and prunes.
    /// 2.22: later versions send checksums some S3-compatible stores refuse.
    #[serde(default = "default_s3_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
}

fn default_s3_image() -> String {
    "amazon/aws-cli:2.22.35".into()
}

/// The keys of the access key in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
    /// The key holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub access_key_id_key: String,
    /// The key holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "access-key-id".into()
}

fn default_secret_access_key_key() -> String {
    "secret-access-key".into()
}

/// Where the dumps go, after validation.
#[derive(Clone, Debug, PartialEq)]
pub enum BackupTarget<'a> {
    Volume(&'a BackupVolume),
    S3(&'a S3Target),
}

impl BackupSpec {
    /// The target; `None` without one (which the CRD refuses). `s3` wins when both
    /// are given (refused too).
    pub fn target(&self) -> Option<BackupTarget<'_>> {
        match (&self.s3, &self.volume) {
            (Some(s3), _) => Some(BackupTarget::S3(s3)),
            (None, Some(volume)) => Some(BackupTarget::Volume(volume)),
            (None, None) => None,
        }
    }
}
