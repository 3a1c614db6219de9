//! PostgreSQL on CloudNativePG (`postgres.cloudNativePG`): what `render` prints (one
//! Cluster and ScheduledBackup per service, valid by CloudNativePG's own CRDs; no
//! built-in database objects; `DATABASE_URL` from `<cluster>-app`/`uri`), a
//! referenced cluster (nothing created), the refusal to switch a database's provider
//! on update (the CRD's rule, in Python and in `render::parse_update`), and the
//! reconcile without and then with CloudNativePG installed. Needs the Python tools
//! (`SALES_TOOLS_VENV`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fake_api;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fake_api::FakeApi;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::Api;
use sales_operator::children::names::MANAGER;
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};

const EXAMPLE: &str = "examples/salessystem-cloudnative-pg.yaml";
const CLUSTER_CRD: &str = "testdata/schemas/postgresql.cnpg.io_clusters.yaml";
const SCHEDULED_BACKUP_CRD: &str = "testdata/schemas/postgresql.cnpg.io_scheduledbackups.yaml";
const PROVIDER_MESSAGE: &str = "changing a database's provider would leave its data behind; move the data first, see docs/operator/providers.md";
const NS: &str = "sales";

const CLUSTERS: (&str, &str, &str, &str, bool) =
    ("postgresql.cnpg.io", "v1", "clusters", "Cluster", true);
const SCHEDULED_BACKUPS: (&str, &str, &str, &str, bool) = (
    "postgresql.cnpg.io",
    "v1",
    "scheduledbackups",
    "ScheduledBackup",
    true,
);

fn example_value() -> Value {
    let text = std::fs::read_to_string(common::workspace().join(EXAMPLE)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Render `file`: every object, as JSON values.
fn render(file: &Path) -> Vec<Value> {
    let yaml = common::operator(&["render", "-f", &file.display().to_string()]);
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

/// validate_custom_resources.py: the errors of each object of the CRD's kind.
fn validate(old: Option<&Path>, crd: &Path, files: &[PathBuf]) -> Vec<Vec<String>> {
    common::validate_custom_resources(old, crd, files)
        .into_iter()
        .map(|(_, errors)| errors)
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The `DATABASE_URL` Secret and key of a service's Deployment.
fn database_url(objects: &[Value], deployment: &str) -> (String, String) {
    let d = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == deployment)
        .unwrap_or_else(|| panic!("Deployment {deployment}"));
    let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let var = env.iter().find(|e| e["name"] == "DATABASE_URL").unwrap();
    let r = &var["valueFrom"]["secretKeyRef"];
    (
        r["name"].as_str().unwrap().into(),
        r["key"].as_str().unwrap().into(),
    )
}

#[test]
fn render_makes_a_cluster_and_scheduled_backup_per_service_valid_by_cnpg() {
    let objects = render(&common::workspace().join(EXAMPLE));
    let clusters = of_kind(&objects, "Cluster");
    let backups = of_kind(&objects, "ScheduledBackup");
    // Six services on created clusters; payment names its own.
    assert_eq!(clusters.len(), 6, "{clusters:#?}");
    assert_eq!(backups.len(), 6);
    let order = clusters
        .iter()
        .find(|c| c["metadata"]["name"] == "shop-cnpg-order-pg")
        .expect("the order service's Cluster");
    assert_eq!(order["apiVersion"], "postgresql.cnpg.io/v1");
    assert_eq!(order["spec"]["instances"], 3);
    assert_eq!(order["spec"]["storage"]["size"], "5Gi");
    assert_eq!(
        order["spec"]["bootstrap"]["initdb"],
        json!({"database": "orders", "owner": "order"})
    );
    assert_eq!(
        order["spec"]["postgresql"]["parameters"]["max_connections"],
        "200"
    );
    assert!(order["spec"]["backup"]["barmanObjectStore"].is_object());
    assert!(
        !clusters
            .iter()
            .any(|c| c["metadata"]["name"] == "shop-cnpg-payment-pg")
    );
    let order_backup = backups
        .iter()
        .find(|b| b["metadata"]["name"] == "shop-cnpg-order-pg")
        .unwrap();
    assert_eq!(
        order_backup["spec"]["cluster"]["name"],
        "shop-cnpg-order-pg"
    );
    assert_eq!(order_backup["spec"]["backupOwnerReference"], "self");
    assert_eq!(order_backup["spec"]["schedule"], "0 0 2 * * *");

    // No built-in database: no StatefulSet but RabbitMQ's, no database Secret or PDB.
    let stateful: Vec<_> = of_kind(&objects, "StatefulSet")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stateful, ["shop-cnpg-rabbitmq"], "{stateful:?}");
    for kind in ["Secret", "PodDisruptionBudget", "NetworkPolicy", "Service"] {
        assert!(
            !of_kind(&objects, kind)
                .iter()
                .any(|o| o["metadata"]["name"] == "shop-cnpg-order-db"),
            "no built-in database {kind}"
        );
    }
    assert_eq!(
        database_url(&objects, "shop-cnpg-order"),
        ("shop-cnpg-order-pg-app".into(), "uri".into())
    );
    assert_eq!(
        database_url(&objects, "shop-cnpg-payment"),
        ("payments-db-app".into(), "uri".into())
    );

    // CloudNativePG's own CRDs accept them; the rest passes kubernetes-validate.
    let dir = common::scratch_dir("cloudnative-pg");
    let write = |name: &str, values: Vec<&Value>| {
        let path = dir.join(name);
        let owned: Vec<Value> = values.into_iter().cloned().collect();
        std::fs::write(&path, sales_operator::yaml::documents(&owned)).unwrap();
        path
    };
    let clusters_file = write("clusters.yaml", clusters);
    let backups_file = write("scheduledbackups.yaml", backups);
    for (crd, file, count) in [
        (CLUSTER_CRD, clusters_file, 6),
        (SCHEDULED_BACKUP_CRD, backups_file, 6),
    ] {
        let results = validate(None, &common::workspace().join(crd), &[file]);
        assert_eq!(results.len(), count);
        assert!(results.iter().all(Vec::is_empty), "{results:?}");
    }
    let builtin = write(
        "builtin.yaml",
        objects
            .iter()
            .filter(|o| {
                !o["apiVersion"].as_str().unwrap_or_default().contains('.')
                    || o["apiVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .ends_with(".k8s.io/v1")
            })
            .collect(),
    );
    common::validate_strict(&builtin);
}

#[test]
fn a_referenced_cluster_gets_nothing_created() {
    let mut v = example_value();
    v["spec"]["postgres"] = json!({"services": {
        "order": {"cloudNativePG": {"clusterName": "orders", "secretName": "orders-app-user"}},
    }});
    let dir = common::scratch_dir("cloudnative-pg-reference");
    let file = dir.join("reference.yaml");
    std::fs::write(&file, serde_json::to_string(&v).unwrap()).unwrap();
    let objects = render(&file);
    assert!(of_kind(&objects, "Cluster").is_empty());
    assert!(of_kind(&objects, "ScheduledBackup").is_empty());
    assert_eq!(
        database_url(&objects, "shop-cnpg-order"),
        ("orders-app-user".into(), "uri".into())
    );
    // The other services keep their built-in databases.
    assert!(
        of_kind(&objects, "StatefulSet")
            .iter()
            .any(|s| s["metadata"]["name"] == "shop-cnpg-product-db")
    );
}

#[test]
fn switching_a_database_provider_is_refused_on_update() {
    let base = example_value();
    let dir = common::scratch_dir("cloudnative-pg-switch");
    let old = dir.join("old.yaml");
    std::fs::write(&old, serde_json::to_string(&base).unwrap()).unwrap();
    let variant = |file: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        edit(&mut v);
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        path
    };
    let to_managed = variant("top-managed.yaml", &|v| {
        let pg = v["spec"]["postgres"].as_object_mut().unwrap();
        pg.remove("cloudNativePG");
    });
    let override_external = variant("payment-external.yaml", &|v| {
        v["spec"]["postgres"]["services"]["payment"] =
            json!({"external": {"secretName": "pay", "key": "url"}});
    });
    let other_cluster = variant("payment-other-cluster.yaml", &|v| {
        v["spec"]["postgres"]["services"]["payment"]["cloudNativePG"]["clusterName"] =
            "elsewhere".into();
    });
    let dropped_override = variant("payment-dropped.yaml", &|v| {
        v["spec"]["postgres"]["services"] = json!({});
    });
    let resized = variant("bigger.yaml", &|v| {
        v["spec"]["postgres"]["cloudNativePG"]["instances"] = 5.into();
    });
    let refused = [
        to_managed.clone(),
        override_external.clone(),
        other_cluster,
        dropped_override,
    ];
    let files: Vec<PathBuf> = refused.iter().cloned().chain([resized.clone()]).collect();
    let crd = common::workspace().join("operator/crd/salessystem.yaml");
    let results = validate(Some(&old), &crd, &files);
    assert_eq!(results.len(), 5);
    for (file, errors) in files.iter().zip(&results).take(4) {
        assert!(
            errors.iter().any(|e| e.contains(PROVIDER_MESSAGE)),
            "{file:?}: {errors:?}"
        );
    }
    assert!(results[4].is_empty(), "{:?}", results[4]);
    // Created that way (no old object): fine.
    let created = validate(None, &crd, &[to_managed.clone(), override_external.clone()]);
    assert!(created.iter().all(Vec::is_empty), "{created:?}");

    // `render` admits as the API server does, with the same message.
    let old_yaml = std::fs::read_to_string(&old).unwrap();
    for file in [&to_managed, &override_external] {
        let err = sales_operator::render::parse_update(
            &std::fs::read_to_string(file).unwrap(),
            &old_yaml,
        )
        .expect_err("refused");
        assert!(format!("{err:#}").contains(PROVIDER_MESSAGE), "{err:#}");
    }
    sales_operator::render::parse_update(&std::fs::read_to_string(&resized).unwrap(), &old_yaml)
        .expect("a bigger cluster is fine");
}

#[test]
fn a_reference_at_the_top_level_and_mixed_fields_are_refused() {
    // Each service needs a database of its own: a cluster is named per service only.
    let mut v = example_value();
    v["spec"]["postgres"]["cloudNativePG"]["clusterName"] = "shared".into();
    let err =
        sales_operator::render::parse(&serde_json::to_string(&v).unwrap()).expect_err("refused");
    assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    let mut v = example_value();
    v["spec"]["postgres"]["services"]["payment"]["cloudNativePG"]["instances"] = 1.into();
    let err =
        sales_operator::render::parse(&serde_json::to_string(&v).unwrap()).expect_err("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("clusterName refers to a Cluster that exists"),
        "{text}"
    );
}

async fn reconciled(ctx: &Arc<Context>, client: &Client) -> SalesSystem {
    let api = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let system = api.get("shop-cnpg").await.unwrap();
    reconcile(Arc::new(system), ctx.clone())
        .await
        .expect("the reconcile succeeds");
    api.get("shop-cnpg").await.unwrap()
}

fn events(api: &FakeApi, reason: &str) -> usize {
    api.objects("events", NS)
        .into_iter()
        .map(|e| serde_json::from_value::<Event>(e).unwrap())
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count()
}

/// Without CloudNativePG every other child is applied and `ProvidersAvailable` says
/// what to install (one Event); once its CRDs are served, the Clusters are applied,
/// and the databases are ready when the Clusters say so.
#[tokio::test]
async fn without_cloudnative_pg_the_rest_is_applied_and_the_status_says_so() {
    let api = FakeApi::new();
    let text = std::fs::read_to_string(common::workspace().join(EXAMPLE)).unwrap();
    let mut system = sales_operator::render::parse(&text).unwrap();
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    api.seed("salessystems", serde_json::to_value(&system).unwrap());
    api.seed(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "payments-db-app", "namespace": NS},
               "stringData": {"uri": "postgresql://payment@payments-db-rw:5432/payments"}}),
    );
    let client = api.client();
    let ctx = common::context(&client);

    let shop = reconciled(&ctx, &client).await;
    let (status, reason, message) = common::condition(&shop, "ProvidersAvailable");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CloudNativePGNotInstalled")
    );
    assert!(
        message.contains("install the CloudNativePG operator"),
        "{message}"
    );
    assert_eq!(common::condition(&shop, "Degraded").0, "False");
    assert_eq!(
        api.objects("deployments", NS).len(),
        9,
        "8 services and Redis"
    );
    assert_eq!(events(&api, "CloudNativePGNotInstalled"), 1);
    reconciled(&ctx, &client).await;
    assert_eq!(events(&api, "CloudNativePGNotInstalled"), 1, "said once");

    api.install(CLUSTERS);
    api.install(SCHEDULED_BACKUPS);
    let shop = reconciled(&ctx, &client).await;
    assert_eq!(api.objects("clusters", NS).len(), 6);
    assert_eq!(api.objects("scheduledbackups", NS).len(), 6);
    assert_eq!(common::condition(&shop, "ProvidersAvailable").0, "True");
    let (ready, _, message) = common::condition(&shop, "DatabasesReady");
    assert_eq!(ready, "False");
    assert!(message.contains("0/3 instances ready"), "{message}");
    assert!(message.contains("payments-db not found"), "{message}");
    assert_eq!(events(&api, "ProvidersAvailable"), 1);
    // `Retain` (the default): no owner reference, so no garbage collection (not a
    // foreground deletion's either) can take a Cluster and its volumes.
    let owners = api.objects("clusters", NS)[0]["metadata"]["ownerReferences"].clone();
    assert!(owners.is_null(), "{owners}");
    assert_eq!(
        api.objects("clusters", NS)[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        MANAGER
    );
}
