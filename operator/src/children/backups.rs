//! Backups of the managed PostgreSQL (`postgres.managed.backup`): per database with
//! `backup`, a `batch/v1` CronJob that dumps it (`pg_dump --format=custom`, the
//! database's own image, so the client matches the server) as
//! `<service>/<UTC time>.dump`, and keeps the newest `retention` dumps:
//!
//! - `volume`: on a PersistentVolumeClaim per service (`<name>-<service>-backup`).
//!   One per service, not one shared: a ReadWriteOnce claim attaches to one node at a
//!   time, and the CronJobs of several services may run at once on different nodes;
//!   one full volume stops one service's backups, not all of them. The claim has no
//!   owner reference: like the database volumes, it goes only with `deletionPolicy:
//!   Delete` (never when backups are switched off, nor by garbage collection);
//! - `s3`: an init container dumps into an `emptyDir`, then the AWS CLI uploads the
//!   dump and deletes the old ones it lists.
//!
//! The scripts are the constants and functions below, and the pods run them with
//! `sh -c`: `operator/tests/backups.rs` runs the very same scripts, as the objects
//! carry them, against a real PostgreSQL (and an S3 server). The restore is
//! [`restore`] (`sales-operator restore-job`, docs/operator/backups.md).

pub mod restore;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, ResourceRequirements, Volume,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::env::from_secret;
use super::infrastructure::{INFRA_UID, POSTGRES_PORT, mount, resources, scratch, value};
use super::names::{Component, Names};
use super::services::{container_security, meta, pod_security};
use super::{Child, placement};
use crate::catalogue::AppService;
use crate::crd::{
    BackupSpec, BackupTarget, BackupVolume, DatabaseChoice, S3Target, SalesSystemSpec,
};

/// Where the dumps are, in the backup and restore pods: the volume, or the `emptyDir`
/// shared with the S3 client.
pub const BACKUP_DIR: &str = "/backup";
/// A dump's file name: its UTC time, which sorts as it runs.
pub const DUMP_NAME_PATTERN: &str = r"^[0-9]{8}T[0-9]{6}Z\.dump$";

/// Dump the database the libpq variables (`PGHOST`, `PGDATABASE`...) name into
/// `$BACKUP_DIR/$BACKUP_SERVICE/<UTC time>.dump`: written under a temporary name,
/// checked readable, synced, then renamed, so a dump under its final name is always
/// whole; then delete the dumps beyond the newest `$BACKUP_RETENTION`.
pub const DUMP_SCRIPT: &str = r#"set -eu
dir="$BACKUP_DIR/$BACKUP_SERVICE"
mkdir -p "$dir"
# What a killed run left behind is never a dump.
rm -f "$dir"/.*.partial
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dump="$dir/$stamp.dump"
partial="$dir/.$stamp.dump.partial"
if [ -e "$dump" ]; then
  echo "backup: $dump exists already" >&2
  exit 1
fi
trap 'rm -f "$partial"' EXIT
pg_dump --format=custom --no-password --file="$partial"
pg_restore --list "$partial" > /dev/null
sync "$partial"
mv "$partial" "$dump"
sync "$dir"
echo "backup: wrote $dump ($(wc -c < "$dump") bytes)"
ls -1 "$dir" | grep -E '^[0-9]{8}T[0-9]{6}Z[.]dump$' | sort -r | tail -n +"$((BACKUP_RETENTION + 1))" |
  while read -r old; do
    rm -f "$dir/$old"
    echo "backup: removed $old (keeping the newest $BACKUP_RETENTION)"
  done
"#;

/// The AWS CLI's settings (path-style addressing when asked), its `--endpoint-url`
/// as the positional parameters, and the service's key prefix as `$prefix`.
const S3_SETUP: &str = r#"set -eu
if [ "$S3_FORCE_PATH_STYLE" = true ]; then style=path; else style=auto; fi
printf '[default]\ns3 =\n    addressing_style = %s\n' "$style" > "$AWS_CONFIG_FILE"
set -- --endpoint-url "$S3_ENDPOINT"
prefix="${S3_PREFIX:+$S3_PREFIX/}$BACKUP_SERVICE/"
"#;

/// Upload the dump of this run (an S3 object appears whole or not at all), then
/// delete the dumps beyond the newest `$BACKUP_RETENTION` under the service's prefix.
pub fn upload_script() -> String {
    format!(
        r#"{S3_SETUP}for dump in "$BACKUP_DIR/$BACKUP_SERVICE"/*.dump; do
  if [ ! -f "$dump" ]; then
    echo "backup: no dump in $BACKUP_DIR/$BACKUP_SERVICE" >&2
    exit 1
  fi
  aws "$@" s3 cp --no-progress "$dump" "s3://$S3_BUCKET/$prefix${{dump##*/}}"
  echo "backup: uploaded s3://$S3_BUCKET/$prefix${{dump##*/}}"
done
old=$(aws "$@" s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix "$prefix" \
  --query "reverse(sort_by(Contents[?ends_with(Key, '.dump')] || \`[]\`, &Key))[$BACKUP_RETENTION:].Key" \
  --output text)
for key in $old; do
  if [ "$key" = None ]; then continue; fi
  aws "$@" s3 rm "s3://$S3_BUCKET/$key"
  echo "backup: removed s3://$S3_BUCKET/$key (keeping the newest $BACKUP_RETENTION)"
done
"#
    )
}

/// The backup of `service`'s database, if it is managed and backed up.
pub fn settings(spec: &SalesSystemSpec, service: AppService) -> Option<BackupSpec> {
    match spec.postgres.choice(service)? {
        DatabaseChoice::Managed(managed) => {
            managed.backup.filter(|b| b.target().is_some()).map(|b| *b)
        }
        // CloudNativePG backs its clusters up itself (`backup`, `scheduledBackup`).
        DatabaseChoice::External(_) | DatabaseChoice::CloudNativePg(_) => None,
    }
}

/// The backup pods of `service`'s database, when it is backed up.
pub fn component(spec: &SalesSystemSpec, service: AppService) -> Option<Component> {
    settings(spec, service).map(|_| Component::Backup(service))
}

/// The backup pods of every backed-up database.
pub fn components(spec: &SalesSystemSpec) -> Vec<Component> {
    AppService::with_database()
        .filter_map(|s| component(spec, s))
        .collect()
}

/// The Secrets (and keys) the backups read: the S3 access keys.
pub fn referenced_secrets(spec: &SalesSystemSpec) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for service in AppService::with_database() {
        if let Some(BackupTarget::S3(s3)) =
            settings(spec, service).as_ref().and_then(|b| b.target())
        {
            let c = &s3.credentials;
            refs.push((c.secret_name.clone(), c.access_key_id_key.clone()));
            refs.push((c.secret_name.clone(), c.secret_access_key_key.clone()));
        }
    }
    refs
}

/// Every backup child, in apply order: per backed-up database, its claim (`volume`)
/// and its CronJob.
pub fn children(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let mut out = Vec::new();
    for service in AppService::with_database() {
        let (Some(backup), Some(DatabaseChoice::Managed(db))) =
            (settings(spec, service), spec.postgres.choice(service))
        else {
            continue;
        };
        if let Some(BackupTarget::Volume(volume)) = backup.target() {
            out.push(Child::typed(&claim(names, service, volume))?);
        }
        if let Some(cron_job) = cron_job(names, spec, service, &db.image, &backup, owner) {
            out.push(Child::typed(&cron_job)?);
        }
    }
    Ok(out)
}

/// The claim of `service`'s dumps. No owner reference: see the module's comment.
pub fn claim(names: &Names, service: AppService, volume: &BackupVolume) -> PersistentVolumeClaim {
    let component = Component::Backup(service);
    PersistentVolumeClaim {
        metadata: meta(names, names.of(component), names.labels(component), &None),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: volume.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    volume.size.clone(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The variables the PostgreSQL client tools connect with: the database's Service,
/// and the generated credentials the database was made with.
pub fn database_env(names: &Names, service: AppService) -> Vec<EnvVar> {
    let secret = names.database_secret(service);
    vec![
        value("PGHOST", &names.of(Component::Database(service))),
        value("PGPORT", &POSTGRES_PORT.to_string()),
        value("PGDATABASE", service.database().unwrap_or_default()),
        from_secret("PGUSER", &secret, "username"),
        from_secret("PGPASSWORD", &secret, "password"),
        value("PGCONNECT_TIMEOUT", "10"),
    ]
}

/// The variables of the AWS CLI: where the bucket is, and the access key.
pub fn s3_env(s3: &S3Target) -> Vec<EnvVar> {
    let c = &s3.credentials;
    vec![
        value("S3_ENDPOINT", &s3.endpoint),
        value("S3_BUCKET", &s3.bucket),
        value("S3_PREFIX", s3.prefix.as_deref().unwrap_or_default()),
        value("S3_FORCE_PATH_STYLE", &s3.force_path_style.to_string()),
        value(
            "AWS_DEFAULT_REGION",
            s3.region.as_deref().unwrap_or("us-east-1"),
        ),
        from_secret("AWS_ACCESS_KEY_ID", &c.secret_name, &c.access_key_id_key),
        from_secret(
            "AWS_SECRET_ACCESS_KEY",
            &c.secret_name,
            &c.secret_access_key_key,
        ),
        value("HOME", "/tmp"),
        value("AWS_CONFIG_FILE", "/tmp/aws-config"),
        value("AWS_EC2_METADATA_DISABLED", "true"),
        value("AWS_PAGER", ""),
    ]
}

/// One container of a backup or restore pod: `sh -c <script>`.
pub(super) fn script_container(
    name: &str,
    image: &str,
    script: &str,
    env: Vec<EnvVar>,
    given: &Option<ResourceRequirements>,
    read_only_dumps: bool,
) -> Container {
    let mut dumps = mount("backup", BACKUP_DIR);
    dumps.read_only = read_only_dumps.then_some(true);
    Container {
        name: name.into(),
        image: Some(image.into()),
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        env: Some(env),
        resources: Some(resources(given, "50m", "64Mi", "512Mi")),
        volume_mounts: Some(vec![dumps, mount("tmp", "/tmp")]),
        security_context: Some(container_security()),
        ..Default::default()
    }
}

/// The pod of a backup or restore: restricted like the database's, placed like it,
/// with the dumps at [`BACKUP_DIR`] (the claim, or an `emptyDir`) and `/tmp`.
pub(super) fn pod(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
    target: &BackupTarget<'_>,
    containers: (Option<Container>, Container),
    restart_policy: &str,
) -> PodTemplateSpec {
    let component = Component::Backup(service);
    let dumps = match target {
        BackupTarget::Volume(_) => Volume {
            name: "backup".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names.of(component),
                ..Default::default()
            }),
            ..Default::default()
        },
        BackupTarget::S3(_) => scratch("backup"),
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names.labels(component)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            init_containers: containers.0.map(|c| vec![c]),
            containers: vec![containers.1],
            volumes: Some(vec![dumps, scratch("tmp")]),
            restart_policy: Some(restart_policy.into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(pod_security(INFRA_UID)),
            ..placement::pod_spec(spec, names, component)
        }),
    }
}

/// The CronJob that dumps `service`'s database with `image` (the database's); `None`
/// without a target.
pub fn cron_job(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
    image: &str,
    backup: &BackupSpec,
    owner: &Option<OwnerReference>,
) -> Option<CronJob> {
    let target = backup.target()?;
    let component = Component::Backup(service);
    let mut env = database_env(names, service);
    env.extend([
        value("BACKUP_DIR", BACKUP_DIR),
        value("BACKUP_SERVICE", service.name()),
        value("BACKUP_RETENTION", &backup.retention.to_string()),
    ]);
    let dump = |name| {
        script_container(
            name,
            image,
            DUMP_SCRIPT,
            env.clone(),
            &backup.resources,
            false,
        )
    };
    let containers = match &target {
        BackupTarget::Volume(_) => (None, dump("backup")),
        BackupTarget::S3(s3) => {
            let mut upload_env = s3_env(s3);
            upload_env.extend([
                value("BACKUP_DIR", BACKUP_DIR),
                value("BACKUP_SERVICE", service.name()),
                value("BACKUP_RETENTION", &backup.retention.to_string()),
            ]);
            let upload = script_container(
                "upload",
                &s3.image,
                &upload_script(),
                upload_env,
                &backup.resources,
                true,
            );
            (Some(dump("dump")), upload)
        }
    };
    Some(CronJob {
        metadata: meta(names, names.of(component), names.labels(component), owner),
        spec: CronJobSpec {
            schedule: backup.schedule.clone(),
            time_zone: Some("Etc/UTC".into()),
            suspend: Some(backup.suspend),
            // Never two dumps of one database at once; a run missed by more than an
            // hour (the controller manager down) is skipped, not made up for late.
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(3600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels(component)),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(3),
                    // A stuck dump would block every later one (Forbid).
                    active_deadline_seconds: Some(6 * 3600),
                    template: pod(names, spec, service, &target, containers, "OnFailure"),
                    ..Default::default()
                }),
            },
        },
        ..Default::default()
    })
}
