//! With `s3`: the CronJob's dump and upload containers, then the restore Job's
//! download and restore containers, run as the objects carry them against moto's S3
//! server (path-style, a prefix) and the AWS CLI v1 from the tools venv, whose `s3` and `s3api`
//! commands and JMESPath queries are the image's v2's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::live::{
    Postgres, SCHEMA, database_secrets, find, next_second, run_ok, system_path, written,
};
use super::{children, common, on_s3, pod_of, restore_job, system_with};

/// The venv with moto's S3 server and the AWS CLI (`cargo xtask infra up` installs
/// them with the other tools, xtask/src/tools.rs).
fn s3_tools_venv() -> PathBuf {
    common::tools_venv()
}

/// moto's S3 server on a free port, stopped when dropped.
struct S3Server {
    process: Child,
    url: String,
}

impl S3Server {
    fn start(venv: &Path) -> S3Server {
        let port = sales_testkit::free_port();
        let process = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server listens"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        S3Server {
            process,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The AWS CLI against this server, as the test (not the pods) uses it.
    fn aws(&self, venv: &Path, args: &[&str]) -> String {
        let output = Command::new(venv.join("bin/aws"))
            .args(["--endpoint-url", &self.url])
            .args(args)
            .envs([
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn an_s3_backup_keeps_the_newest_dumps_and_restores_through_a_real_s3_server() {
    let venv = s3_tools_venv();
    let s3 = S3Server::start(&venv);
    s3.aws(
        &venv,
        &["s3api", "create-bucket", "--bucket", "sales-backups"],
    );
    let mut pg = Postgres::new();
    let source = pg.fresh("s3source");
    pg.psql(&source, SCHEMA);
    let system = system_with(on_s3()); // retention 2, prefix shop/prod, path style
    let all = children(&system);
    let pod = pod_of(find(&all, "CronJob", "shop-order-backup"));
    let (dump, upload) = (&pod["initContainers"][0], &pod["containers"][0]);
    let mut secrets = database_secrets(&pg);
    secrets.insert(("backup-s3", "access-key-id"), "testing".into());
    secrets.insert(("backup-s3", "secret-access-key"), "testing".into());
    let path = format!("{}:{}", venv.join("bin").display(), system_path());
    let scratch = |name: &str| common::scratch_dir(name).display().to_string();
    let (host, port) = (pg.host.clone(), pg.port.clone());
    let local = |database: &str, pod: &str| {
        BTreeMap::from([
            ("PGHOST", host.clone()),
            ("PGPORT", port.clone()),
            ("PGDATABASE", database.to_owned()),
            ("BACKUP_DIR", scratch(&format!("{pod}-backup"))),
            ("HOME", scratch(&format!("{pod}-tmp"))),
            (
                "AWS_CONFIG_FILE",
                format!("{}/aws-config", scratch(&format!("{pod}-config"))),
            ),
            ("S3_ENDPOINT", s3.url.clone()),
        ])
    };
    let (mut dumps, mut snapshots) = (Vec::new(), BTreeMap::new());
    for run in 0..3 {
        pg.psql(
            &source,
            &format!(
                "insert into orders (customer_id, total, note) values (3, {}, 'run {run}')",
                100 + run
            ),
        );
        next_second();
        // One pod: the init container dumps into the emptyDir, then the upload.
        let env = local(&source, &format!("s3-run-{run}"));
        let name = written(&run_ok(dump, &env, &secrets, &path));
        let out = run_ok(upload, &env, &secrets, &path);
        assert!(
            out.contains(&format!(
                "uploaded s3://sales-backups/shop/prod/order/{name}"
            )),
            "{out}"
        );
        snapshots.insert(name.clone(), pg.snapshot(&source));
        dumps.push(name);
    }
    let listed = s3.aws(
        &venv,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            "sales-backups",
            "--query",
            "Contents[].Key",
            "--output",
            "text",
        ],
    );
    let mut keys: Vec<&str> = listed.split_whitespace().collect();
    keys.sort();
    let expected: Vec<String> = dumps[1..]
        .iter()
        .map(|d| format!("shop/prod/order/{d}"))
        .collect();
    assert_eq!(keys, expected, "the newest 2 dumps, and nothing else");

    // The documented restore: the Job downloads the newest, then restores it.
    let job = restore_job(&system, "order", "latest");
    let restore_pod = &job["spec"]["template"]["spec"];
    let copy = pg.fresh("s3copy");
    let env = local(&copy, "s3-restore");
    run_ok(&restore_pod["initContainers"][0], &env, &secrets, &path);
    let out = run_ok(&restore_pod["containers"][0], &env, &secrets, &path);
    assert!(out.contains(&format!("restored {}", dumps[2])), "{out}");
    assert_eq!(pg.snapshot(&copy), snapshots[&dumps[2]]);

    // A named dump, over the damaged source.
    pg.psql(&source, "drop view big_orders; truncate orders, customers");
    let job = restore_job(&system, "order", &dumps[1]);
    let restore_pod = &job["spec"]["template"]["spec"];
    let env = local(&source, "s3-restore-named");
    run_ok(&restore_pod["initContainers"][0], &env, &secrets, &path);
    run_ok(&restore_pod["containers"][0], &env, &secrets, &path);
    assert_eq!(pg.snapshot(&source), snapshots[&dumps[1]]);
}
