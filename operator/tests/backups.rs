//! Backups of the managed PostgreSQL (`postgres.managed.backup`): the CronJobs,
//! claims and restore Jobs pass `kubernetes-validate --strict` and run restricted;
//! the CRD refuses a backup without exactly one target or with a bad schedule; the
//! NetworkPolicies let the backup pods reach their database and nothing reach them.
//! In `backups/live.rs`, the scripts the objects carry dump, prune and restore a real
//! PostgreSQL, on a directory standing in for the volume and through a real S3 server.
//! Needs the Python tools (`cargo xtask test`) and PostgreSQL at `SALES_POSTGRES_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "backups/live.rs"]
mod live;
#[path = "backups/s3.rs"]
mod s3;
#[path = "backups/schema.rs"]
mod schema;

use std::process::Command;

use sales_operator::crd::SalesSystem;
use serde_json::{Value, json};

/// A SalesSystem `shop` in `sales` whose managed databases have `backup`.
fn system_with(backup: Value) -> Value {
    json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": "sales"},
        "spec": {"postgres": {"managed": {"image": "postgres:16", "backup": backup}}},
    })
}

fn on_volume() -> Value {
    json!({"schedule": "0 3 * * *", "retention": 2, "volume": {"size": "5Gi"}})
}

fn on_s3() -> Value {
    json!({"schedule": "@daily", "retention": 2, "s3": {
        "endpoint": "http://minio.storage:9000", "bucket": "sales-backups",
        "prefix": "shop/prod", "forcePathStyle": true,
        "credentials": {"secretName": "backup-s3"},
    }})
}

fn parse(system: &Value) -> SalesSystem {
    sales_operator::render::parse(&serde_json::to_string(system).unwrap()).unwrap()
}

/// Every child of `system`, as JSON.
fn children(system: &Value) -> Vec<Value> {
    sales_operator::children::desired(&parse(system))
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect()
}

fn of_kind<'a>(children: &'a [Value], kind: &str) -> Vec<&'a Value> {
    children.iter().filter(|c| c["kind"] == kind).collect()
}

fn names(values: &[&Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `sales-operator restore-job` for `system` (written to a file), parsed.
fn restore_job(system: &Value, service: &str, dump: &str) -> Value {
    let dir = common::scratch_dir(&format!("restore-job-{service}-{dump}"));
    let file = dir.join("system.yaml");
    std::fs::write(&file, serde_json::to_string(system).unwrap()).unwrap();
    let file = file.display().to_string();
    let yaml = common::operator(&[
        "restore-job",
        "-f",
        &file,
        "--service",
        service,
        "--dump",
        dump,
    ]);
    serde_yaml_ng::from_str(&yaml).unwrap()
}

#[test]
fn backups_are_made_only_for_managed_databases_that_ask() {
    let none = children(&json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": "sales"}, "spec": {},
    }));
    assert!(of_kind(&none, "CronJob").is_empty());
    assert!(of_kind(&none, "PersistentVolumeClaim").is_empty());

    let all = children(&system_with(on_volume()));
    let expected: Vec<String> = [
        "product",
        "order",
        "customer",
        "payment",
        "inventory",
        "shipping",
        "notification",
    ]
    .iter()
    .map(|s| format!("shop-{s}-backup"))
    .collect();
    assert_eq!(names(&of_kind(&all, "CronJob")), expected);
    assert_eq!(names(&of_kind(&all, "PersistentVolumeClaim")), expected);
    for claim in of_kind(&all, "PersistentVolumeClaim") {
        assert!(claim["metadata"]["ownerReferences"].is_null());
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
    }
    // After the databases, before the services.
    let position = |kind: &str| all.iter().position(|c| c["kind"] == kind).unwrap();
    assert!(position("StatefulSet") < position("CronJob"));
    assert!(position("CronJob") < position("Deployment"));

    // A service's own `managed` has its own backup (here none); external: none.
    let mut system = system_with(on_s3());
    system["spec"]["postgres"]["services"] = json!({
        "order": {"managed": {}},
        "payment": {"external": {"secretName": "payments-db"}},
    });
    let some = children(&system);
    assert_eq!(of_kind(&some, "CronJob").len(), 5);
    assert!(of_kind(&some, "PersistentVolumeClaim").is_empty());
    let names = names(&of_kind(&some, "CronJob"));
    assert!(!names.contains(&"shop-order-backup".to_owned()));
    assert!(!names.contains(&"shop-payment-backup".to_owned()));
}

/// The pod template of a CronJob or Job.
fn pod_of(object: &Value) -> &Value {
    match object["kind"].as_str() {
        Some("CronJob") => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &object["spec"]["template"]["spec"],
    }
}

fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod[k].as_array().into_iter().flatten())
        .collect()
}

#[test]
fn backup_and_restore_pods_run_restricted_with_the_databases_image() {
    for backup in [on_volume(), on_s3()] {
        let system = system_with(backup);
        let all = children(&system);
        let mut objects: Vec<Value> = of_kind(&all, "CronJob").into_iter().cloned().collect();
        objects.push(restore_job(&system, "order", "latest"));
        for object in &objects {
            let pod = pod_of(object);
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{object}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            assert_eq!(pod["automountServiceAccountToken"], false);
            for volume in pod["volumes"].as_array().unwrap() {
                assert!(
                    volume.get("emptyDir").is_some()
                        || volume.get("persistentVolumeClaim").is_some(),
                    "{volume}"
                );
            }
            for container in containers(pod) {
                let security = &container["securityContext"];
                assert_eq!(security["runAsNonRoot"], true);
                assert_eq!(security["allowPrivilegeEscalation"], false);
                assert_eq!(security["readOnlyRootFilesystem"], true);
                assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
                assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
                assert_eq!(container["command"][0], "sh");
                let image = container["image"].as_str().unwrap();
                let postgres =
                    ["dump", "backup", "restore"].contains(&container["name"].as_str().unwrap());
                assert_eq!(postgres, image == "postgres:16", "{container}");
            }
        }
        for cron_job in of_kind(&all, "CronJob") {
            let spec = &cron_job["spec"];
            assert_eq!(spec["concurrencyPolicy"], "Forbid");
            assert_eq!(spec["timeZone"], "Etc/UTC");
            assert!(spec["startingDeadlineSeconds"].as_i64().unwrap() > 0);
            assert!(spec["successfulJobsHistoryLimit"].as_i64().unwrap() >= 1);
            assert!(spec["failedJobsHistoryLimit"].as_i64().unwrap() >= 1);
            assert!(
                spec["jobTemplate"]["spec"]["backoffLimit"]
                    .as_i64()
                    .unwrap()
                    >= 1
            );
            assert_eq!(pod_of(cron_job)["restartPolicy"], "OnFailure");
        }
    }
}

/// Whether `selector` (`matchLabels` only) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn backup_pods_reach_their_database_and_nothing_reaches_them() {
    let system = system_with(on_s3());
    let all = children(&system);
    let policies = of_kind(&all, "NetworkPolicy");
    let restore = restore_job(&system, "order", "latest");
    let order_backup = &pod_of(&restore)["containers"][0];
    assert_eq!(order_backup["name"], "restore");
    let cron_job = of_kind(&all, "CronJob")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "shop-order-backup")
        .unwrap();
    for (service, labels) in [
        (
            "order",
            restore["spec"]["template"]["metadata"]["labels"].clone(),
        ),
        (
            "order",
            cron_job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].clone(),
        ),
    ] {
        let mine: Vec<&&Value> = policies
            .iter()
            .filter(|p| selects(&p["spec"]["podSelector"], &labels))
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "one policy selects the backup pods: {labels}"
        );
        assert_eq!(
            mine[0]["spec"]["ingress"],
            json!([]),
            "nothing reaches them"
        );
        let database = policies
            .iter()
            .find(|p| p["metadata"]["name"] == format!("shop-{service}-db"))
            .unwrap();
        let admitted = database["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|rule| {
                rule["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["port"] == 5432)
                    && rule["from"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|peer| selects(&peer["podSelector"], &labels))
            });
        assert!(admitted, "the {service} database admits its backup pods");
        // ...and only its own.
        let other = policies
            .iter()
            .find(|p| p["metadata"]["name"] == "shop-product-db")
            .unwrap();
        let rules = other["spec"]["ingress"].as_array().unwrap();
        assert!(!rules.iter().any(|r| {
            r["from"]
                .as_array()
                .unwrap()
                .iter()
                .any(|peer| selects(&peer["podSelector"], &labels))
        }));
    }
}

#[test]
fn the_restore_job_refuses_what_it_cannot_restore() {
    let dir = common::scratch_dir("restore-refused");
    let file = dir.join("system.yaml");
    std::fs::write(
        &file,
        serde_json::to_string(&system_with(on_volume())).unwrap(),
    )
    .unwrap();
    for (args, message) in [
        (vec!["--service", "gateway"], "the services with a database"),
        (
            vec!["--service", "order", "--dump", "order/x.dump"],
            "a dump's name",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
            .args(["restore-job", "-f", &file.display().to_string()])
            .args(&args)
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{args:?}"
        );
    }
    let system = parse(&json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": "sales"}, "spec": {},
    }));
    let error = sales_operator::children::backups::restore::render(
        &system,
        "order",
        &"latest".parse().unwrap(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("has no `backup`"), "{error}");
}

/// The page the procedure is documented on runs the same restore as the Job.
#[test]
fn the_docs_show_the_restore_the_job_runs() {
    let docs =
        std::fs::read_to_string(common::workspace().join("docs/operator/backups.md")).unwrap();
    let script = sales_operator::children::backups::restore::RESTORE_SCRIPT;
    let restore = script
        .lines()
        .find(|l| l.starts_with("pg_restore --clean"))
        .unwrap();
    assert!(
        docs.contains(restore),
        "docs/operator/backups.md shows `{restore}`"
    );
    assert!(docs.contains("sales-operator restore-job -f"));
    let readme =
        std::fs::read_to_string(common::workspace().join("docs/operator/README.md")).unwrap();
    assert!(
        readme.contains("backups.md"),
        "docs/operator/README.md links the page"
    );
}
