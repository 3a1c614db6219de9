//! The shared CloudNativePG Cluster (`postgres.cloudNativePG.shared`) on the fake API
//! server: without CloudNativePG, with one older than 1.25 (no `Database` kind), and
//! with it: the Cluster, a `Database` per service, the `ScheduledBackup` and the
//! roles' Secrets created; `DatabasesReady` following the Cluster and each Database's
//! `status.applied`; and `Retain` against `Delete`. What `render` prints:
//! `cloudnative_pg_shared.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fake_api;

use std::sync::Arc;

use fake_api::FakeApi;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use sales_operator::crd::{DeletionPolicy, FINALIZER, SalesSystem};
use sales_operator::reconcile::reconcile;
use serde_json::{Value, json};

const EXAMPLE: &str = "examples/salessystem-cloudnative-pg-shared.yaml";
const NS: &str = "sales";
const NAME: &str = "shop-shared";
const SERVICES: [&str; 7] = [
    "product",
    "order",
    "customer",
    "payment",
    "inventory",
    "shipping",
    "notification",
];

type Kind = (&'static str, &'static str, &'static str, &'static str, bool);
const CLUSTERS: Kind = ("postgresql.cnpg.io", "v1", "clusters", "Cluster", true);
const SCHEDULED_BACKUPS: Kind = (
    "postgresql.cnpg.io",
    "v1",
    "scheduledbackups",
    "ScheduledBackup",
    true,
);
const DATABASES: Kind = ("postgresql.cnpg.io", "v1", "databases", "Database", true);

async fn reconciled(client: &Client) -> SalesSystem {
    let api = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let system = api.get(NAME).await.unwrap();
    reconcile(Arc::new(system), common::context(client))
        .await
        .expect("the reconcile succeeds");
    api.get(NAME).await.unwrap()
}

fn seed_example(api: &FakeApi, policy: DeletionPolicy) -> Client {
    let text = std::fs::read_to_string(common::workspace().join(EXAMPLE)).unwrap();
    let mut system = sales_operator::render::parse(&text).unwrap();
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    system.spec.deletion_policy = policy;
    api.seed("salessystems", serde_json::to_value(&system).unwrap());
    api.client()
}

async fn set_status(client: &Client, kind: &str, plural: &str, name: &str, status: Value) {
    let gvk = GroupVersionKind::gvk("postgresql.cnpg.io", "v1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

/// Without CloudNativePG, and with one older than 1.25 (no Database kind), the status
/// says what to install; with it, the Cluster, the Databases and the backup are
/// created, and the databases are ready once the Cluster is and each Database is
/// applied.
#[tokio::test]
async fn the_reconcile_creates_them_and_waits_for_cnpg_to_apply_each_database() {
    let api = FakeApi::new();
    let client = seed_example(&api, DeletionPolicy::Retain);
    let shop = reconciled(&client).await;
    let (status, reason, message) = common::condition(&shop, "ProvidersAvailable");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CloudNativePGNotInstalled")
    );
    assert!(message.contains("Cluster and Database"), "{message}");
    // The roles' Secrets come first: the pods find them.
    for service in SERVICES {
        let secret = api
            .objects("secrets", NS)
            .into_iter()
            .find(|s| s["metadata"]["name"] == format!("shop-shared-pg-{service}"))
            .unwrap_or_else(|| panic!("the {service} role's Secret"));
        assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    }

    // CloudNativePG before 1.25: the Cluster, but no Database kind.
    api.install(CLUSTERS);
    api.install(SCHEDULED_BACKUPS);
    let shop = reconciled(&client).await;
    assert_eq!(api.objects("clusters", NS).len(), 1);
    assert_eq!(
        common::condition(&shop, "ProvidersAvailable").1,
        "CloudNativePGNotInstalled"
    );

    api.install(DATABASES);
    let shop = reconciled(&client).await;
    assert_eq!(common::condition(&shop, "ProvidersAvailable").0, "True");
    assert_eq!(api.objects("databases", NS).len(), 7);
    assert_eq!(api.objects("scheduledbackups", NS).len(), 1);
    let (ready, _, message) = common::condition(&shop, "DatabasesReady");
    assert_eq!(ready, "False");
    assert!(
        message.contains("shop-shared-pg: 0/3 instances ready"),
        "{message}"
    );

    set_status(
        &client,
        "Cluster",
        "clusters",
        "shop-shared-pg",
        json!({"instances": 3, "readyInstances": 3}),
    )
    .await;
    set_status(
        &client,
        "Database",
        "databases",
        "shop-shared-pg-order",
        json!({"applied": false, "message": "role \"order\" does not exist"}),
    )
    .await;
    let (ready, _, message) = common::condition(&reconciled(&client).await, "DatabasesReady");
    assert_eq!(ready, "False");
    assert!(
        message.contains("order (CloudNativePG Database shop-shared-pg-order not applied: role \"order\" does not exist)"),
        "{message}"
    );
    assert!(
        message.contains("product (CloudNativePG Database shop-shared-pg-product not applied yet)"),
        "{message}"
    );
    for service in SERVICES {
        set_status(
            &client,
            "Database",
            "databases",
            &format!("shop-shared-pg-{service}"),
            json!({"applied": true, "message": ""}),
        )
        .await;
    }
    let (ready, _, message) = common::condition(&reconciled(&client).await, "DatabasesReady");
    assert_eq!(ready, "True", "{message}");
    assert!(message.contains("7 managed databases ready"), "{message}");
}

/// Delete the SalesSystem, then run the cleanup its watch event would.
async fn delete_and_clean_up(client: &Client, params: &DeleteParams) {
    let systems = Api::<SalesSystem>::namespaced(client.clone(), NS);
    systems.delete(NAME, params).await.unwrap();
    let terminating = systems.get(NAME).await.unwrap();
    reconcile(Arc::new(terminating), common::context(client))
        .await
        .expect("cleanup");
    assert!(systems.get_opt(NAME).await.unwrap().is_none());
}

fn installed_api() -> FakeApi {
    let api = FakeApi::new();
    for kind in [CLUSTERS, SCHEDULED_BACKUPS, DATABASES] {
        api.install(kind);
    }
    api
}

fn role_secrets(api: &FakeApi) -> Vec<Value> {
    api.objects("secrets", NS)
        .into_iter()
        .filter(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("shop-shared-pg-")
        })
        .collect()
}

/// `Retain` keeps the shared Cluster (never owned by the SalesSystem, so a foreground
/// deletion, whose garbage collection may come before the operator's cleanup, cannot
/// take it) and the roles' passwords; the Databases keep their PostgreSQL databases
/// when their objects go (`retain`).
/// `Delete` lets CloudNativePG drop the databases with their objects, and takes the
/// Cluster and the passwords away.
#[tokio::test]
async fn retain_keeps_the_cluster_and_passwords_delete_takes_them() {
    let api = installed_api();
    let client = seed_example(&api, DeletionPolicy::Retain);
    reconciled(&client).await;
    let databases = api.objects("databases", NS);
    assert!(
        databases
            .iter()
            .all(|d| d["spec"]["databaseReclaimPolicy"] == "retain")
    );
    assert!(
        databases
            .iter()
            .all(|d| d["metadata"]["ownerReferences"][0]["kind"] == "SalesSystem")
    );
    assert_eq!(role_secrets(&api).len(), 7);
    delete_and_clean_up(&client, &DeleteParams::foreground()).await;
    let clusters = api.objects("clusters", NS);
    assert_eq!(clusters.len(), 1, "the shared Cluster is kept");
    assert!(
        clusters[0]["metadata"]["ownerReferences"].is_null(),
        "{:?}",
        clusters[0]["metadata"]
    );
    let kept = role_secrets(&api);
    assert_eq!(kept.len(), 7, "the roles' passwords are kept");
    assert!(
        kept.iter()
            .all(|s| s["metadata"]["ownerReferences"].is_null())
    );

    let api = installed_api();
    let client = seed_example(&api, DeletionPolicy::Delete);
    reconciled(&client).await;
    let databases = api.objects("databases", NS);
    assert_eq!(databases.len(), 7);
    assert!(
        databases
            .iter()
            .all(|d| d["spec"]["databaseReclaimPolicy"] == "delete")
    );
    delete_and_clean_up(&client, &DeleteParams::background()).await;
    assert!(api.objects("clusters", NS).is_empty());
    assert!(api.objects("databases", NS).is_empty());
    assert!(role_secrets(&api).is_empty());
}
