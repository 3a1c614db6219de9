//! PostgreSQL on one shared CloudNativePG Cluster (`postgres.cloudNativePG.shared`):
//! what `render` prints (one Cluster whose `managed.roles` hold a role per service, a
//! `Database` per service and one `ScheduledBackup`, valid by CloudNativePG's own
//! CRDs; a `kubernetes.io/basic-auth` Secret per role with the service's `uri`, which
//! its Deployment reads), why it is needed (two services on one existing cluster share
//! its `app` database and user), and the refusal to switch layouts on update. The
//! reconcile on the fake API server: `cloudnative_pg_shared_reconcile.rs`. Needs the
//! Python tools (`SALES_TOOLS_VENV`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const EXAMPLE: &str = "examples/salessystem-cloudnative-pg-shared.yaml";
const PER_SERVICE_EXAMPLE: &str = "examples/salessystem-cloudnative-pg.yaml";
const CLUSTER_CRD: &str = "testdata/schemas/postgresql.cnpg.io_clusters.yaml";
const DATABASE_CRD: &str = "testdata/schemas/postgresql.cnpg.io_databases.yaml";
const SCHEDULED_BACKUP_CRD: &str = "testdata/schemas/postgresql.cnpg.io_scheduledbackups.yaml";
const PROVIDER_MESSAGE: &str = "changing a database's provider would leave its data behind";
const SERVICES: [(&str, &str); 7] = [
    ("product", "products"),
    ("order", "orders"),
    ("customer", "customers"),
    ("payment", "payments"),
    ("inventory", "inventory"),
    ("shipping", "shipping"),
    ("notification", "notifications"),
];

fn example_value(file: &str) -> Value {
    let text = std::fs::read_to_string(common::workspace().join(file)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(value).unwrap()).unwrap();
    path
}

/// Render `file`: every object, as JSON values.
fn render(file: &Path) -> Vec<Value> {
    let yaml = common::operator(&["render", "-f", &file.display().to_string()]);
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name}"))
}

/// The env var `name` of a service's Deployment.
fn env_var(objects: &[Value], deployment: &str, name: &str) -> Value {
    let d = named(objects, "Deployment", deployment);
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The errors of each object of `crd`'s kind in `objects`, by CloudNativePG's CRD.
fn validate_by(crd: &str, objects: Vec<&Value>, dir: &Path, file: &str) -> Vec<Vec<String>> {
    let path = dir.join(file);
    let owned: Vec<Value> = objects.into_iter().cloned().collect();
    std::fs::write(&path, sales_operator::yaml::documents(&owned)).unwrap();
    common::validate_custom_resources(None, &common::workspace().join(crd), &[path])
        .into_iter()
        .map(|(_, errors)| errors)
        .collect()
}

#[test]
fn render_makes_one_cluster_with_a_role_and_a_database_per_service_valid_by_cnpg() {
    let objects = render(&common::workspace().join(EXAMPLE));
    let clusters = of_kind(&objects, "Cluster");
    assert_eq!(clusters.len(), 1, "one Cluster for every service");
    let cluster = clusters[0];
    assert_eq!(cluster["metadata"]["name"], "shop-shared-pg");
    assert_eq!(cluster["spec"]["instances"], 3);
    assert!(
        cluster["spec"]["bootstrap"].is_null(),
        "CloudNativePG's own app database"
    );
    let roles = cluster["spec"]["managed"]["roles"].as_array().unwrap();
    let role_names: Vec<&str> = roles.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(role_names, SERVICES.map(|(s, _)| s));
    for role in roles {
        let service = role["name"].as_str().unwrap();
        assert_eq!(role["login"], true);
        assert_eq!(role["ensure"], "present");
        assert_eq!(
            role["passwordSecret"]["name"],
            format!("shop-shared-pg-{service}")
        );
    }
    let databases = of_kind(&objects, "Database");
    assert_eq!(databases.len(), 7);
    for (service, database) in SERVICES {
        let object = named(&objects, "Database", &format!("shop-shared-pg-{service}"));
        assert_eq!(
            object["spec"],
            json!({"cluster": {"name": "shop-shared-pg"}, "name": database, "owner": service,
                   "ensure": "present", "databaseReclaimPolicy": "retain"})
        );
        // Each role's Secret: what CloudNativePG wants, and the service's URL.
        let secret = named(&objects, "Secret", &format!("shop-shared-pg-{service}"));
        assert_eq!(secret["type"], "kubernetes.io/basic-auth");
        assert_eq!(secret["metadata"]["labels"]["cnpg.io/reload"], "true");
        let data = &secret["stringData"];
        assert_eq!(data["username"], service);
        let password = data["password"].as_str().unwrap();
        assert_eq!(password.len(), 32);
        assert_eq!(
            data["uri"],
            format!("postgres://{service}:{password}@shop-shared-pg-rw.sales.svc:5432/{database}")
        );
        let url = env_var(&objects, &format!("shop-shared-{service}"), "DATABASE_URL");
        assert_eq!(
            url["valueFrom"]["secretKeyRef"],
            json!({"name": format!("shop-shared-pg-{service}"), "key": "uri", "optional": false})
        );
    }
    let backups = of_kind(&objects, "ScheduledBackup");
    assert_eq!(backups.len(), 1, "one backup of the shared Cluster");
    assert_eq!(backups[0]["spec"]["cluster"]["name"], "shop-shared-pg");
    // No per-service Cluster, no CloudNativePG app Secret read, no built-in database.
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"] == "shop-shared-order-pg")
    );
    assert!(
        of_kind(&objects, "StatefulSet")
            .iter()
            .all(|s| s["metadata"]["name"] == "shop-shared-rabbitmq")
    );

    // CloudNativePG's own CRDs accept them; the rest passes kubernetes-validate.
    let dir = common::scratch_dir("cloudnative-pg-shared");
    for (crd, kind, count) in [
        (CLUSTER_CRD, "Cluster", 1),
        (DATABASE_CRD, "Database", 7),
        (SCHEDULED_BACKUP_CRD, "ScheduledBackup", 1),
    ] {
        let results = validate_by(crd, of_kind(&objects, kind), &dir, &format!("{kind}.yaml"));
        assert_eq!(results.len(), count, "{kind}");
        assert!(results.iter().all(Vec::is_empty), "{kind}: {results:?}");
    }
    let builtin: Vec<Value> = objects
        .iter()
        .filter(|o| {
            let api = o["apiVersion"].as_str().unwrap_or_default();
            !api.contains('.') || api.ends_with(".k8s.io/v1")
        })
        .cloned()
        .collect();
    let path = dir.join("builtin.yaml");
    std::fs::write(&path, sales_operator::yaml::documents(&builtin)).unwrap();
    common::validate_strict(&path);
}

/// Under TLS the services check the shared Cluster's certificate against its CA, as
/// on any CloudNativePG Cluster.
#[test]
fn under_tls_the_url_verifies_the_shared_clusters_certificate() {
    let mut v = example_value(EXAMPLE);
    v["spec"]["tls"] = json!({"mode": "operatorCA"});
    let file = write(
        &common::scratch_dir("cloudnative-pg-shared-tls"),
        "tls.yaml",
        &v,
    );
    let objects = render(&file);
    let uri = env_var(&objects, "shop-shared-order", "CLOUDNATIVE_PG_URI");
    assert_eq!(
        uri["valueFrom"]["secretKeyRef"]["name"],
        "shop-shared-pg-order"
    );
    let url = env_var(&objects, "shop-shared-order", "DATABASE_URL");
    assert!(
        url["value"]
            .as_str()
            .unwrap()
            .starts_with("$(CLOUDNATIVE_PG_URI)?sslmode=verify-full"),
        "{url}"
    );
    let yaml = serde_json::to_string(named(&objects, "Deployment", "shop-shared-order")).unwrap();
    assert!(
        yaml.contains("shop-shared-pg-ca"),
        "the shared Cluster's CA is mounted"
    );
}

/// Why the shared layout exists: services pointed at one existing Cluster all read
/// its application user's Secret, so they share its one `app` database and user (and
/// sqlx's migration table, where order's and payment's first migrations have the same
/// version).
#[test]
fn two_services_on_one_existing_cluster_share_its_app_database() {
    let mut v = example_value(PER_SERVICE_EXAMPLE);
    v["spec"]["postgres"] = json!({"services": {
        "order": {"cloudNativePG": {"clusterName": "main"}},
        "payment": {"cloudNativePG": {"clusterName": "main"}},
    }});
    let file = write(
        &common::scratch_dir("cloudnative-pg-one-app"),
        "one-app.yaml",
        &v,
    );
    let objects = render(&file);
    let of = |d: &str| env_var(&objects, d, "DATABASE_URL")["valueFrom"]["secretKeyRef"].clone();
    assert_eq!(of("shop-cnpg-order"), of("shop-cnpg-payment"));
    assert_eq!(of("shop-cnpg-order")["name"], "main-app");
}

#[test]
fn switching_layouts_is_refused_on_update() {
    let dir = common::scratch_dir("cloudnative-pg-shared-switch");
    let shared = example_value(EXAMPLE);
    let per_service = example_value(PER_SERVICE_EXAMPLE);
    let variant = |base: &Value, file: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        edit(&mut v);
        write(&dir, file, &v)
    };
    let shared_old = write(&dir, "shared-old.yaml", &shared);
    let refused = [
        variant(&shared, "unshared.yaml", &|v| {
            v["spec"]["postgres"]["cloudNativePG"]["shared"] = false.into();
        }),
        variant(&shared, "own-cluster.yaml", &|v| {
            v["spec"]["postgres"]["services"] = json!({"payment": {"cloudNativePG": {}}});
        }),
        variant(&shared, "existing-cluster.yaml", &|v| {
            v["spec"]["postgres"]["services"] =
                json!({"payment": {"cloudNativePG": {"clusterName": "payments-db"}}});
        }),
    ];
    let grown = variant(&shared, "grown.yaml", &|v| {
        v["spec"]["postgres"]["cloudNativePG"]["instances"] = 5.into();
    });
    let crd = common::workspace().join("operator/crd/salessystem.yaml");
    let files: Vec<PathBuf> = refused.iter().cloned().chain([grown.clone()]).collect();
    let results = common::validate_custom_resources(Some(&shared_old), &crd, &files);
    assert_eq!(results.len(), 4);
    for (file, errors) in &results[..3] {
        assert!(
            errors.iter().any(|e| e.contains(PROVIDER_MESSAGE)),
            "{file}: {errors:?}"
        );
    }
    assert!(results[3].1.is_empty(), "{:?}", results[3]);
    // From a Cluster per service to the shared one: refused too.
    let per_service_old = write(&dir, "per-service-old.yaml", &per_service);
    let to_shared = variant(&per_service, "to-shared.yaml", &|v| {
        v["spec"]["postgres"]["cloudNativePG"]["shared"] = true.into();
    });
    let results = common::validate_custom_resources(
        Some(&per_service_old),
        &crd,
        std::slice::from_ref(&to_shared),
    );
    assert!(
        results[0].1.iter().any(|e| e.contains(PROVIDER_MESSAGE)),
        "{results:?}"
    );

    // `render` admits as the API server does.
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    for (file, old) in [
        (&refused[0], &shared_old),
        (&refused[1], &shared_old),
        (&to_shared, &per_service_old),
    ] {
        let err =
            sales_operator::render::parse_update(&read(file), &read(old)).expect_err("refused");
        assert!(format!("{err:#}").contains(PROVIDER_MESSAGE), "{err:#}");
    }
    sales_operator::render::parse_update(&read(&grown), &read(&shared_old))
        .expect("more instances");
}

#[test]
fn shared_is_a_top_level_choice_only() {
    let mut v = example_value(PER_SERVICE_EXAMPLE);
    v["spec"]["postgres"]["services"]["payment"] = json!({"cloudNativePG": {"shared": true}});
    let err =
        sales_operator::render::parse(&serde_json::to_string(&v).unwrap()).expect_err("refused");
    assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
}
