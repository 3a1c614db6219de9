//! The system's own vhost, user and permissions on a `RabbitmqCluster`
//! (`rabbitmq.cluster`), through RabbitMQ's Messaging Topology Operator:
//!
//! - the Vhost, User and Permission validate against the topology operator's own CRDs
//!   (`testdata/schemas/`), with the deletion policy's ownership and `deletionPolicy`;
//! - on the in-memory API server: without the topology operator's CRDs the status says
//!   so and the services get no account (fail closed); once installed, the URL Secret
//!   names the generated user and the system's vhost, and `BrokerReady` waits for the
//!   objects' `Ready`; `Retain` keeps the vhost, user and password, `Delete` takes them;
//!   a password changed in the generated account reaches the URL and rolls the pods.
//!
//! That such a user is enough for the services and the scaler is checked against the
//! real RabbitMQ in `rabbitmq_topology_broker.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fake_api;

use std::collections::BTreeMap;
use std::sync::Arc;

use fake_api::{FakeApi, RABBITMQ_CLUSTERS, RABBITMQ_TOPOLOGY};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use sales_operator::children::{self, rabbitmq_topology};
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};

const NS: &str = "sales";

/// A SalesSystem `shop` on a RabbitmqCluster the operator creates.
fn system(deletion_policy: &str, extra: Value) -> Value {
    let mut spec = json!({
        "deletionPolicy": deletion_policy,
        "rabbitmq": {"cluster": {"create": {"replicas": 3}}},
        "observability": {"serviceMonitor": {"enabled": false}},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            if key == "rabbitmq" {
                for (k, v) in value.as_object().unwrap() {
                    spec["rabbitmq"][k] = v.clone();
                }
            } else {
                spec.insert(key.clone(), value.clone());
            }
        }
    }
    json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": NS},
        "spec": spec,
    })
}

fn parsed(system: &Value) -> SalesSystem {
    sales_operator::render::parse(&system.to_string()).expect("an admitted SalesSystem")
}

fn topology_children(system: &SalesSystem) -> BTreeMap<String, Value> {
    children::desired(system)
        .unwrap()
        .into_iter()
        .filter(|c| rabbitmq_topology::is_topology_kind(c.kind()))
        .map(|c| {
            (
                c.kind().to_owned(),
                serde_json::to_value(&c.object).unwrap(),
            )
        })
        .collect()
}

fn crd(kind: &str) -> std::path::PathBuf {
    let plural = format!("{}s", kind.to_lowercase());
    common::workspace().join(format!("testdata/schemas/rabbitmq.com_{plural}.yaml"))
}

/// Every object validates against its CRD (structural schema, enums, required).
fn assert_valid(objects: &BTreeMap<String, Value>, label: &str) {
    let dir = common::scratch_dir(&format!("rabbitmq-topology-{label}"));
    for (kind, object) in objects {
        let file = dir.join(format!("{kind}.yaml"));
        std::fs::write(
            &file,
            sales_operator::yaml::documents(std::slice::from_ref(object)),
        )
        .unwrap();
        let results = common::validate_custom_resources(None, &crd(kind), &[file]);
        assert_eq!(results.len(), 1, "{label}: one {kind}");
        assert!(results[0].1.is_empty(), "{label} {kind}: {results:?}");
    }
}

fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_vhost_user_and_permission_are_valid_for_the_topology_operator() {
    // `Delete`, no prefix, nothing autoscaled; a uid, so the objects can be owned.
    let mut plain = parsed(&system("Delete", json!({})));
    plain.metadata.uid = Some("uid-1".into());
    let objects = topology_children(&plain);
    assert_eq!(
        objects.keys().collect::<Vec<_>>(),
        ["Permission", "User", "Vhost"]
    );
    assert_valid(&objects, "delete");
    let vhost = &objects["Vhost"];
    assert_eq!(vhost["metadata"]["name"], "shop");
    assert_eq!(
        vhost["spec"],
        json!({"name": "sales.shop", "rabbitmqClusterReference": {"name": "shop-rabbitmq"},
               "deletionPolicy": "delete", "defaultQueueType": "quorum"})
    );
    let user = &objects["User"];
    assert_eq!(user["metadata"]["name"], "shop-services");
    assert_eq!(
        user["spec"],
        json!({"rabbitmqClusterReference": {"name": "shop-rabbitmq"},
               "importCredentialsSecret": {"name": "shop-rabbitmq-user"}, "tags": []})
    );
    let permission = &objects["Permission"];
    assert_eq!(
        permission["spec"],
        json!({"rabbitmqClusterReference": {"name": "shop-rabbitmq"}, "vhost": "sales.shop",
               "userReference": {"name": "shop-services"},
               "permissions": {"configure": ".*", "write": ".*", "read": ".*"}})
    );
    assert_eq!(owner_uids(vhost), ["uid-1"]);
    assert_eq!(owner_uids(user), ["uid-1"]);
    assert!(
        owner_uids(permission).is_empty(),
        "the topology operator makes the User its controller"
    );

    // `Retain`, a prefix, classic queues, a service autoscaled; an existing cluster.
    let mut kept = parsed(&system(
        "Retain",
        json!({
            "rabbitmq": {"cluster": {"name": "shared"}, "prefix": "v2.", "queueType": "classic"},
            "autoscaling": {"inventory": {"enabled": true}},
        }),
    ));
    kept.metadata.uid = Some("uid-2".into());
    let objects = topology_children(&kept);
    assert_valid(&objects, "retain");
    let vhost = &objects["Vhost"];
    assert_eq!(vhost["spec"]["deletionPolicy"], "retain");
    assert!(vhost["spec"]["defaultQueueType"].is_null(), "{vhost}");
    assert_eq!(vhost["spec"]["rabbitmqClusterReference"]["name"], "shared");
    assert_eq!(objects["User"]["spec"]["tags"], json!(["management"]));
    assert_eq!(
        objects["Permission"]["spec"]["permissions"],
        json!({"configure": "^v2\\.", "write": "^(v2\\..*|amq\\.default)$", "read": "^v2\\."})
    );
    assert!(objects.values().all(|o| owner_uids(o).is_empty()));

    // The rendered system: the generated account, and no URL Secret (render cannot
    // know whether the topology operator is installed).
    let rendered = sales_operator::render::render(&plain).unwrap();
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    let account = documents
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "shop-rabbitmq-user")
        .expect("the generated account");
    assert_eq!(account["stringData"]["username"], "sales.shop-services");
    assert_eq!(
        account["stringData"]["password"].as_str().unwrap().len(),
        32
    );
    assert_eq!(
        account["metadata"]["finalizers"],
        json!(["sales-system.io/credentials"])
    );
    assert!(
        !documents
            .iter()
            .any(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "shop-rabbitmq")
    );
}

// ---------------------------------------------------------------------------------------
// On the in-memory API server
// ---------------------------------------------------------------------------------------

fn seed(api: &FakeApi, system: Value) -> Value {
    let mut system = system;
    system["metadata"]["finalizers"] = json!([FINALIZER]);
    let admitted = serde_json::to_value(parsed(&system)).unwrap();
    api.seed("salessystems", admitted)
}

async fn get(client: &Client) -> SalesSystem {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get("shop")
        .await
        .unwrap()
}

async fn reconciled(ctx: &Arc<Context>, client: &Client) -> SalesSystem {
    reconcile(Arc::new(get(client).await), ctx.clone())
        .await
        .expect("reconcile");
    get(client).await
}

fn condition(system: &SalesSystem, kind: &str) -> Condition {
    system
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind))
        .cloned()
        .unwrap_or_else(|| panic!("no {kind}: {:#?}", system.status))
}

async fn secret_values(client: &Client, name: &str) -> Option<BTreeMap<String, String>> {
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()?;
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect(),
    )
}

fn api_of(client: &Client, resource: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NS, resource)
}

async fn set_status(client: &Client, resource: &ApiResource, name: &str, status: Value) {
    api_of(client, resource)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
}

fn topology_objects() -> [(ApiResource, &'static str); 3] {
    [
        (rabbitmq_topology::vhost_resource(), "shop"),
        (rabbitmq_topology::user_resource(), "shop-services"),
        (rabbitmq_topology::permission_resource(), "shop-services"),
    ]
}

#[tokio::test]
async fn without_the_topology_operator_the_services_get_no_account_and_the_status_says_why() {
    let api = FakeApi::new();
    api.install(RABBITMQ_CLUSTERS);
    seed(&api, system("Delete", json!({})));
    let client = api.client();
    let ctx = common::context(&client);

    let shop = reconciled(&ctx, &client).await;
    let providers = condition(&shop, "ProvidersAvailable");
    assert_eq!(
        (providers.status.as_str(), providers.reason.as_str()),
        ("False", "RabbitMQTopologyOperatorNotInstalled"),
        "{providers:?}"
    );
    for kind in ["Vhost", "User", "Permission"] {
        assert!(
            providers
                .message
                .contains(&format!("rabbitmq.com/v1beta1 {kind}")),
            "{}",
            providers.message
        );
    }
    assert_eq!(condition(&shop, "Degraded").status, "False");
    // Fail closed: the account is generated, but no URL reaches the services.
    let account = secret_values(&client, "shop-rabbitmq-user").await.unwrap();
    assert_eq!(account["username"], "sales.shop-services");
    assert!(secret_values(&client, "shop-rabbitmq").await.is_none());

    // The cluster available: the broker still is not ready, and says why.
    set_status(
        &client,
        &children::rabbitmq_cluster::rabbitmq_cluster_resource(),
        "shop-rabbitmq",
        json!({"conditions": [{"type": "ClusterAvailable", "status": "True"}]}),
    )
    .await;
    let shop = reconciled(&ctx, &client).await;
    let broker = condition(&shop, "BrokerReady");
    assert_eq!(
        (broker.status.as_str(), broker.reason.as_str()),
        ("False", "RabbitMQTopologyOperatorNotInstalled"),
        "{broker:?}"
    );

    // Installed: the objects are applied, and the URL names the account and vhost.
    for kind in RABBITMQ_TOPOLOGY {
        api.install(kind);
    }
    let shop = reconciled(&ctx, &client).await;
    assert_eq!(condition(&shop, "ProvidersAvailable").status, "True");
    for (resource, name) in topology_objects() {
        assert!(
            api_of(&client, &resource)
                .get_opt(name)
                .await
                .unwrap()
                .is_some(),
            "{} {name}",
            resource.kind
        );
    }
    let url = secret_values(&client, "shop-rabbitmq").await.unwrap()["url"].clone();
    assert_eq!(
        url,
        format!(
            "amqp://sales.shop-services:{}@shop-rabbitmq.sales.svc:5672/sales.shop",
            account["password"]
        )
    );
    let broker = condition(&shop, "BrokerReady");
    assert_eq!(
        (broker.status.as_str(), broker.reason.as_str()),
        ("False", "Starting")
    );
    assert!(
        broker.message.contains("Vhost shop not declared yet"),
        "{}",
        broker.message
    );

    // The topology operator fails on the user; then every object is ready.
    let (vhost, user, permission) = {
        let [v, u, p] = topology_objects();
        (v, u, p)
    };
    set_status(
        &client,
        &user.0,
        user.1,
        json!({"conditions": [{"type": "Ready", "status": "False",
            "reason": "FailedCreateOrUpdate", "message": "the management API refused"}]}),
    )
    .await;
    let shop = reconciled(&ctx, &client).await;
    let broker = condition(&shop, "BrokerReady");
    assert_eq!(broker.reason, "RabbitMQTopologyNotReady", "{broker:?}");
    assert!(
        broker
            .message
            .contains("User shop-services is not ready: the management API refused"),
        "{}",
        broker.message
    );
    for (resource, name) in [vhost, user, permission] {
        set_status(
            &client,
            &resource,
            name,
            json!({"conditions": [{"type": "Ready", "status": "True",
                "reason": "SuccessfulCreateOrUpdate"}]}),
        )
        .await;
    }
    let shop = reconciled(&ctx, &client).await;
    let broker = condition(&shop, "BrokerReady");
    assert_eq!(broker.status, "True", "{broker:?}");
}

/// Delete the SalesSystem, then run the reconcile its watch event would (the
/// finalizer's cleanup); the server collects what it owned.
async fn delete_and_clean_up(client: &Client) {
    let systems = Api::<SalesSystem>::namespaced(client.clone(), NS);
    systems
        .delete("shop", &DeleteParams::background())
        .await
        .unwrap();
    reconcile(Arc::new(get(client).await), common::context(client))
        .await
        .expect("cleanup");
    assert!(systems.get_opt("shop").await.unwrap().is_none());
}

async fn topology_left(client: &Client) -> Vec<String> {
    let mut left = Vec::new();
    for (resource, name) in topology_objects() {
        if api_of(client, &resource)
            .get_opt(name)
            .await
            .unwrap()
            .is_some()
        {
            left.push(resource.kind);
        }
    }
    left
}

#[tokio::test]
async fn retain_keeps_the_vhost_user_and_password_and_delete_takes_them() {
    let api = FakeApi::new();
    api.install(RABBITMQ_CLUSTERS);
    for kind in RABBITMQ_TOPOLOGY {
        api.install(kind);
    }
    seed(&api, system("Retain", json!({})));
    let client = api.client();
    reconciled(&common::context(&client), &client).await;
    let password = secret_values(&client, "shop-rabbitmq-user").await.unwrap()["password"].clone();
    let vhost = api_of(&client, &rabbitmq_topology::vhost_resource())
        .get("shop")
        .await
        .unwrap();
    assert_eq!(vhost.data["spec"]["deletionPolicy"], "retain");
    assert!(vhost.metadata.owner_references.is_none());

    delete_and_clean_up(&client).await;
    assert_eq!(
        topology_left(&client).await,
        ["Vhost", "User", "Permission"]
    );
    let kept = secret_values(&client, "shop-rabbitmq-user").await;
    assert_eq!(
        kept.map(|v| v["password"].clone()),
        Some(password.clone()),
        "the password the kept user has"
    );

    // The same system again, with `Delete`: it takes the objects back, and the
    // user keeps its password; deleted, it takes them with it.
    let second = seed(&api, system("Delete", json!({})));
    let uid = second["metadata"]["uid"].as_str().unwrap().to_owned();
    reconciled(&common::context(&client), &client).await;
    for (resource, name) in &topology_objects()[..2] {
        let object = api_of(&client, resource).get(name).await.unwrap();
        let owners: Vec<String> = object
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect();
        assert_eq!(
            owners,
            std::slice::from_ref(&uid),
            "{} {name}",
            resource.kind
        );
    }
    assert_eq!(
        api_of(&client, &rabbitmq_topology::vhost_resource())
            .get("shop")
            .await
            .unwrap()
            .data["spec"]["deletionPolicy"],
        "delete"
    );
    let again = secret_values(&client, "shop-rabbitmq-user").await.unwrap();
    assert_eq!(again["password"], password);
    delete_and_clean_up(&client).await;
    let left = topology_left(&client).await;
    assert!(
        !left.contains(&"Vhost".to_owned()) && !left.contains(&"User".to_owned()),
        "{left:?}"
    );
    assert!(secret_values(&client, "shop-rabbitmq-user").await.is_none());
}

async fn credentials_hash(client: &Client, deployment: &str) -> Option<String> {
    let deployment = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), NS)
        .get(deployment)
        .await
        .unwrap();
    deployment
        .spec?
        .template
        .metadata?
        .annotations?
        .remove("sales-system.io/credentials-hash")
}

/// A password changed by hand in the generated account is the one the URL carries
/// next (the topology operator sets it on the user), and the services' pods roll.
#[tokio::test]
async fn a_new_password_reaches_the_url_and_rolls_the_services() {
    let api = FakeApi::new();
    api.install(RABBITMQ_CLUSTERS);
    for kind in RABBITMQ_TOPOLOGY {
        api.install(kind);
    }
    seed(&api, system("Delete", json!({})));
    let client = api.client();
    reconciled(&common::context(&client), &client).await;
    let before = credentials_hash(&client, "shop-inventory").await;
    assert!(before.is_some(), "the pods carry the account's digest");

    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            "shop-rabbitmq-user",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "rotated/by:hand"}})),
        )
        .await
        .unwrap();
    reconciled(&common::context(&client), &client).await;
    let url = secret_values(&client, "shop-rabbitmq").await.unwrap()["url"].clone();
    assert_eq!(
        url,
        "amqp://sales.shop-services:rotated%2Fby%3Ahand@shop-rabbitmq.sales.svc:5672/sales.shop"
    );
    let after = credentials_hash(&client, "shop-inventory").await;
    assert!(
        after.is_some() && after != before,
        "{before:?} -> {after:?}"
    );
}
