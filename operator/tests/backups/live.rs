//! The scripts as the objects carry them (command and environment taken from the
//! rendered CronJob and from `sales-operator restore-job`'s Job), run with `sh` on
//! this machine against a real PostgreSQL, a directory standing in for the claim.
//! Only the values that name this machine's servers and directories are replaced;
//! every variable name is the pod's. The helpers serve `s3.rs` too.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use super::{children, common, of_kind, on_volume, pod_of, restore_job, system_with};

/// The PostgreSQL of `SALES_POSTGRES_URL`, and the databases made on it (dropped at the
/// end, whatever happens).
pub(crate) struct Postgres {
    pub(crate) host: String,
    pub(crate) port: String,
    user: String,
    password: String,
    made: Vec<String>,
}

impl Postgres {
    pub(crate) fn new() -> Postgres {
        let url = reqwest::Url::parse(&sales_testkit::postgres_admin_url()).unwrap();
        Postgres {
            host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
            port: url.port().unwrap_or(5432).to_string(),
            user: url.username().to_owned(),
            password: url.password().unwrap_or_default().to_owned(),
            made: Vec::new(),
        }
    }

    pub(crate) fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h", &self.host, "-p", &self.port, "-U", &self.user, "-d", database,
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A fresh, empty database with a name of its own.
    pub(crate) fn fresh(&mut self, tag: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("backup_{tag}_{}_{nanos}", std::process::id());
        self.psql("postgres", &format!("create database {name}"));
        self.made.push(name.clone());
        name
    }

    /// What the restore must give back: every row of every table, and the view.
    pub(crate) fn snapshot(&self, database: &str) -> String {
        self.psql(
            database,
            "select (select string_agg(c::text, ' | ' order by c.id) from customers c) \
             || ' / ' || (select string_agg(o::text, ' | ' order by o.id) from orders o) \
             || ' / ' || (select count(*) from big_orders)",
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        for name in &self.made {
            let _ = Command::new("psql")
                .args([
                    "-X", "-q", "-h", &self.host, "-p", &self.port, "-U", &self.user,
                ])
                .args([
                    "-d",
                    "postgres",
                    "-c",
                    &format!("drop database if exists {name} with (force)"),
                ])
                .env("PGPASSWORD", &self.password)
                .output();
        }
    }
}

pub(crate) const SCHEMA: &str = "
create table customers (id serial primary key, name text not null, email text unique);
create table orders (
  id bigserial primary key, customer_id int references customers (id),
  total numeric(10, 2) not null, placed_at timestamptz not null default now(), note text
);
create index on orders (customer_id);
create view big_orders as select * from orders where total > 100;
insert into customers (name, email)
  values ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com'), ('Linus', null);
insert into orders (customer_id, total, note)
  values (1, 12.50, 'first'), (1, 250.00, 'big'), (2, 99.99, e'quote '' and\nnewline');
";

/// Run one container of a rendered pod here: its `command`, with only its own
/// variables — `local` replaces the values that name servers and directories,
/// `secrets` gives the `(Secret, key)` values — and `PATH`.
pub(crate) fn run(
    container: &Value,
    local: &BTreeMap<&str, String>,
    secrets: &BTreeMap<(&str, &str), String>,
    path: &str,
) -> Output {
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut env = BTreeMap::new();
    for var in container["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        let value = if let Some(local) = local.get(name) {
            local.clone()
        } else if let Some(value) = var["value"].as_str() {
            value.to_owned()
        } else {
            let key = &var["valueFrom"]["secretKeyRef"];
            let secret = (key["name"].as_str().unwrap(), key["key"].as_str().unwrap());
            secrets
                .get(&secret)
                .unwrap_or_else(|| panic!("no value for {secret:?}"))
                .clone()
        };
        env.insert(name.to_owned(), value);
    }
    Command::new(command[0])
        .args(&command[1..])
        .env_clear()
        .envs(&env)
        .env("PATH", path)
        .output()
        .expect("the script runs")
}

pub(crate) fn run_ok(
    container: &Value,
    local: &BTreeMap<&str, String>,
    secrets: &BTreeMap<(&str, &str), String>,
    path: &str,
) -> String {
    let output = run(container, local, secrets, path);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} failed:\n{stdout}{}",
        container["name"],
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The dump's name from the backup's `backup: wrote DIR/NAME (N bytes)`.
pub(crate) fn written(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("backup: wrote "))
        .unwrap();
    let path = line
        .trim_start_matches("backup: wrote ")
        .split(' ')
        .next()
        .unwrap();
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn find<'a>(children: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(children, kind)
        .into_iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap()
}

pub(crate) fn system_path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

pub(crate) fn database_secrets(pg: &Postgres) -> BTreeMap<(&'static str, &'static str), String> {
    BTreeMap::from([
        (("shop-order-db", "username"), pg.user.clone()),
        (("shop-order-db", "password"), pg.password.clone()),
    ])
}

/// A new dump name needs a new second.
pub(crate) fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

#[test]
fn a_volume_backup_keeps_the_newest_dumps_and_restores_a_real_database() {
    let mut pg = Postgres::new();
    let source = pg.fresh("source");
    pg.psql(&source, SCHEMA);
    let system = system_with(on_volume()); // retention 2
    let all = children(&system);
    let cron_job = find(&all, "CronJob", "shop-order-backup");
    let pod = pod_of(cron_job);
    assert!(pod["initContainers"].is_null());
    let backup = &pod["containers"][0];
    let claim = common::scratch_dir("backup-claim");
    let secrets = database_secrets(&pg);
    let mut local = BTreeMap::from([
        ("PGHOST", pg.host.clone()),
        ("PGPORT", pg.port.clone()),
        ("PGDATABASE", source.clone()),
        ("BACKUP_DIR", claim.display().to_string()),
    ]);
    let (mut dumps, mut snapshots) = (Vec::new(), BTreeMap::new());
    for run in 0..4 {
        pg.psql(
            &source,
            &format!(
                "insert into orders (customer_id, total, note) values (3, {}, 'run {run}')",
                100 + run
            ),
        );
        next_second();
        let name = written(&run_ok(backup, &local, &secrets, &system_path()));
        snapshots.insert(name.clone(), pg.snapshot(&source));
        dumps.push(name);
    }
    let mut kept: Vec<String> = std::fs::read_dir(claim.join("order"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, dumps[2..], "the newest 2 dumps, and nothing else");

    // The documented restore: `sales-operator restore-job`, its container run as is.
    let job = restore_job(&system, "order", "latest");
    let restore_pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        restore_pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "the restore reads the backups' claim"
    );
    let copy = pg.fresh("copy");
    local.insert("PGDATABASE", copy.clone());
    let out = run_ok(
        &restore_pod["containers"][0],
        &local,
        &secrets,
        &system_path(),
    );
    assert!(out.contains(&format!("restored {}", dumps[3])), "{out}");
    assert_eq!(
        pg.snapshot(&copy),
        snapshots[&dumps[3]],
        "the newest dump, into a new database"
    );

    // Damage the source, then restore the older kept dump over it (`--clean`).
    pg.psql(
        &source,
        "drop view big_orders; delete from orders where id > 2; \
                      update customers set name = 'lost'; create table unrelated (id int)",
    );
    local.insert("PGDATABASE", source.clone());
    let job = restore_job(&system, "order", &dumps[2]);
    run_ok(
        &job["spec"]["template"]["spec"]["containers"][0],
        &local,
        &secrets,
        &system_path(),
    );
    assert_eq!(
        pg.snapshot(&source),
        snapshots[&dumps[2]],
        "the older dump, over the damaged database"
    );
    assert_eq!(
        pg.psql(&source, "select count(*) from unrelated"),
        "0",
        "what the dump lacks stays"
    );

    // `list` lists; a dump that is not there changes nothing.
    let job = restore_job(&system, "order", "list");
    let out = run_ok(
        &job["spec"]["template"]["spec"]["containers"][0],
        &local,
        &secrets,
        &system_path(),
    );
    assert!(
        out.contains(&dumps[2]) && out.contains(&dumps[3]) && !out.contains(&dumps[0]),
        "{out}"
    );
    let job = restore_job(&system, "order", "20000101T000000Z.dump");
    let failed = run(
        &job["spec"]["template"]["spec"]["containers"][0],
        &local,
        &secrets,
        &system_path(),
    );
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("no dump 20000101T000000Z.dump"));
    assert_eq!(pg.snapshot(&source), snapshots[&dumps[2]]);
}
