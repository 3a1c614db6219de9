//! `sales-operator restore-job -f SYSTEM.yaml --service order --dump NAME`: a Job that
//! restores one dump of a service's database, printed for `kubectl apply` (the
//! procedure around it: docs/operator/backups.md). Not a child: the operator never
//! makes one, and never deletes one (it goes `ttlSecondsAfterFinished` after it ends).
//!
//! Its pods carry the backup pods' labels, so the database's NetworkPolicy lets them
//! in; they run the database's image (its `pg_restore`) with its generated
//! credentials, and read the dumps where the backups write them: the claim (read
//! only), or the bucket, from which an init container downloads the one dump.

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::EnvVar;

use super::{BACKUP_DIR, database_env, pod, s3_env, script_container};
use crate::catalogue::AppService;
use crate::children::infrastructure::value;
use crate::children::names::{Component, Names};
use crate::children::services::meta;
use crate::crd::{BackupTarget, DatabaseChoice, SalesSystem, SalesSystemSpec};

/// Restore `$RESTORE_DUMP` (a dump's name, `latest`, or `list` to only list them) from
/// `$BACKUP_DIR/$BACKUP_SERVICE` into the database the libpq variables name. In one
/// transaction: every object of the dump is dropped (if it exists) and made again
/// from the dump, or, on any error, nothing changes. Objects the dump does not have
/// are left alone. Owners and grants are not restored: everything belongs to the
/// user restoring, the service's own.
pub const RESTORE_SCRIPT: &str = r#"set -eu
dir="$BACKUP_DIR/$BACKUP_SERVICE"
name=""
echo "restore: dumps in $dir:"
for dump in $(ls -1 "$dir" 2>/dev/null | grep -E '^[0-9]{8}T[0-9]{6}Z[.]dump$' | sort); do
  echo "  $dump"
  name="$dump"
done
case "$RESTORE_DUMP" in
  list) exit 0 ;;
  latest) ;;
  *) name="$RESTORE_DUMP" ;;
esac
if [ -z "$name" ] || [ ! -f "$dir/$name" ]; then
  echo "restore: no dump ${name:-at all} in $dir" >&2
  exit 1
fi
pg_restore --list "$dir/$name" > /dev/null
pg_restore --clean --if-exists --single-transaction --no-owner --no-privileges --exit-on-error --no-password --dbname="$PGDATABASE" "$dir/$name"
echo "restore: restored $name into database $PGDATABASE"
"#;

/// List the service's dumps in the bucket, and download `$RESTORE_DUMP` (or the
/// newest, with `latest`; none with `list`) to `$BACKUP_DIR/$BACKUP_SERVICE`.
pub fn download_script() -> String {
    format!(
        r#"{}keys=$(aws "$@" s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix "$prefix" \
  --query "sort_by(Contents[?ends_with(Key, '.dump')] || \`[]\`, &Key)[].Key" --output text)
name=""
echo "restore: dumps in s3://$S3_BUCKET/$prefix:"
for key in $keys; do
  if [ "$key" = None ]; then continue; fi
  echo "  ${{key##*/}}"
  name="${{key##*/}}"
done
case "$RESTORE_DUMP" in
  list) exit 0 ;;
  latest) ;;
  *) name="$RESTORE_DUMP" ;;
esac
if [ -z "$name" ]; then
  echo "restore: no dump in s3://$S3_BUCKET/$prefix" >&2
  exit 1
fi
mkdir -p "$BACKUP_DIR/$BACKUP_SERVICE"
aws "$@" s3 cp --no-progress "s3://$S3_BUCKET/$prefix$name" "$BACKUP_DIR/$BACKUP_SERVICE/$name"
"#,
        super::S3_SETUP
    )
}

/// Which dump to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dump {
    /// The newest.
    Latest,
    /// None: only list them (in the Job's log).
    List,
    /// One by name, `20250131T030000Z.dump`.
    Named(String),
}

impl std::str::FromStr for Dump {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "latest" => Dump::Latest,
            "list" => Dump::List,
            name if is_dump_name(name) => Dump::Named(name.to_owned()),
            other => bail!(
                "--dump {other:?}: give `latest`, `list`, or a dump's name as the backups \
                 write them, e.g. 20250131T030000Z.dump (without the service's directory)"
            ),
        })
    }
}

impl Dump {
    fn as_str(&self) -> &str {
        match self {
            Dump::Latest => "latest",
            Dump::List => "list",
            Dump::Named(name) => name,
        }
    }
}

/// `YYYYMMDDTHHMMSSZ.dump` ([`super::DUMP_NAME_PATTERN`]).
fn is_dump_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 21
        && name.ends_with("Z.dump")
        && b[8] == b'T'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// The Job restoring `dump` into `service`'s managed, backed-up database.
pub fn restore_job(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
    dump: &Dump,
) -> Result<Job> {
    let Some(DatabaseChoice::Managed(db)) = spec.postgres.choice(service) else {
        bail!(
            "the {} service has no managed database: restore an external database with \
             your own tools",
            service.name()
        );
    };
    let Some(backup) = super::settings(spec, service) else {
        bail!(
            "the {} service's database has no `backup`: there are no dumps to restore",
            service.name()
        );
    };
    let target = backup
        .target()
        .context("the backup has neither `volume` nor `s3`")?;
    let mut env = database_env(names, service);
    let dumps: [EnvVar; 3] = [
        value("BACKUP_DIR", BACKUP_DIR),
        value("BACKUP_SERVICE", service.name()),
        value("RESTORE_DUMP", dump.as_str()),
    ];
    env.extend(dumps.clone());
    let on_volume = matches!(target, BackupTarget::Volume(_));
    let restore = script_container(
        "restore",
        &db.image,
        RESTORE_SCRIPT,
        env,
        &backup.resources,
        on_volume,
    );
    let download = match &target {
        BackupTarget::Volume(_) => None,
        BackupTarget::S3(s3) => {
            let mut env = s3_env(s3);
            env.extend(dumps);
            Some(script_container(
                "download",
                &s3.image,
                &download_script(),
                env,
                &backup.resources,
                false,
            ))
        }
    };
    let component = Component::Backup(service);
    Ok(Job {
        metadata: meta(
            names,
            format!("{}-{}-restore", names.instance, service.name()),
            names.labels(component),
            &None,
        ),
        spec: Some(JobSpec {
            // A failed restore changed nothing (one transaction): look, then retry.
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(86400),
            template: pod(names, spec, service, &target, (download, restore), "Never"),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `sales-operator restore-job`: the Job for `system`, as YAML.
pub fn render(system: &SalesSystem, service: &str, dump: &Dump) -> Result<String> {
    let Some(service) = AppService::ALL
        .into_iter()
        .find(|s| s.name() == service && s.database().is_some())
    else {
        let known: Vec<&str> = AppService::with_database().map(AppService::name).collect();
        bail!(
            "--service {service:?}: one of {} (the services with a database)",
            known.join(", ")
        );
    };
    let names = crate::children::names_of(system);
    let job = restore_job(&names, &system.spec, service, dump)?;
    let mut value = serde_json::to_value(&job)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), "batch/v1".into());
        map.insert("kind".into(), "Job".into());
    }
    Ok(crate::yaml::documents(&[value]))
}
