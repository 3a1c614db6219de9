//! Storage changes of the built-in PostgreSQL and RabbitMQ StatefulSets, against an
//! in-memory API server (`kube-fake-client`) behind the rules a real API server adds
//! for exactly what these tests change:
//!
//! - a StatefulSet's `spec.volumeClaimTemplates` are immutable: an update or apply
//!   that changes (or drops) them is refused with 422 and the message the API server
//!   gives (`ValidateStatefulSetUpdate`);
//! - a PersistentVolumeClaim's spec is immutable except `resources.requests` of a
//!   bound claim (422); growing one needs a StorageClass with `allowVolumeExpansion:
//!   true` (403 from the `PersistentVolumeClaimResize` admission plugin); a request
//!   may not go below `status.capacity` (422).
//!
//! The volume controller and the kubelet are played by the tests: they create the
//! claims a StatefulSet asks for, bound, and grow `status.capacity` when asked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use sales_operator::catalogue::AppService;
use sales_operator::children::names::MANAGER;
use sales_operator::children::{self, infrastructure};
use sales_operator::crd::{FINALIZER, ManagedBroker, ManagedDatabase, SalesSystem};
use sales_operator::events::{Recorder, Reporter};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};

const NS: &str = "sales";
const NAME: &str = "store";
/// The condition the storage step writes.
const STORAGE_READY: &str = "StorageReady";

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

// --- the API server ---------------------------------------------------------------

fn status_response(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": reason, "code": code.as_u16(), "message": message});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).expect("JSON")))
        .expect("a response")
}

/// Bytes of a quantity as the tests write them (`512Mi`, `1Gi`, `3Gi`).
fn bytes(quantity: &str) -> u64 {
    let (number, unit) = quantity.split_at(
        quantity
            .find(|c: char| c.is_alphabetic())
            .unwrap_or(quantity.len()),
    );
    let n: u64 = number.parse().expect("a whole number");
    n * match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        other => panic!("unit {other} is not used by these tests"),
    }
}

/// The templates as the API server compares them: without the defaulted status.
fn templates(value: Option<&Value>) -> Vec<PersistentVolumeClaim> {
    let mut claims: Vec<PersistentVolumeClaim> = value
        .cloned()
        .map(|v| serde_json::from_value(v).expect("claim templates"))
        .unwrap_or_default();
    for claim in &mut claims {
        claim.status = None;
    }
    claims
}

/// A JSON merge patch (RFC 7386), as the in-memory server applies every patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (_, _) if patch.is_object() => {
            *target = json!({});
            merge(target, patch);
        }
        _ => *target = patch.clone(),
    }
}

/// What a real API server refuses of this PATCH, or `None` to let the in-memory one
/// carry it out.
async fn refusal(
    fake: &Client,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Option<Response<Body>> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let patch: Value = serde_json::from_slice(body).ok()?;
    match parts.as_slice() {
        ["apis", "apps", "v1", "namespaces", ns, "statefulsets", name] => {
            let live = Api::<StatefulSet>::namespaced(fake.clone(), ns)
                .get_opt(name)
                .await
                .ok()??;
            let live_templates = serde_json::to_value(
                live.spec
                    .as_ref()
                    .and_then(|s| s.volume_claim_templates.clone()),
            )
            .ok();
            let applied = patch.pointer("/spec/volumeClaimTemplates");
            // Server-side apply drops what its only manager no longer applies; a merge
            // patch leaves what it does not name.
            let changes = if content_type.contains("apply-patch") || applied.is_some() {
                templates(applied) != templates(live_templates.as_ref())
            } else {
                false
            };
            changes.then(|| {
                status_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!(
                        "StatefulSet.apps \"{name}\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
                    ),
                )
            })
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "persistentvolumeclaims",
            name,
        ] => {
            let live = Api::<PersistentVolumeClaim>::namespaced(fake.clone(), ns)
                .get_opt(name)
                .await
                .ok()??;
            let mut after = serde_json::to_value(&live).ok()?;
            merge(&mut after, &patch);
            let before_spec = serde_json::to_value(&live.spec).ok()?;
            let mut after_spec = after.get("spec").cloned().unwrap_or(Value::Null);
            let storage = |spec: &Value| {
                spec.pointer("/resources/requests/storage")
                    .and_then(Value::as_str)
                    .map(bytes)
            };
            let (old, new) = (storage(&before_spec), storage(&after_spec));
            let invalid = |detail: &str| {
                Some(status_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("PersistentVolumeClaim \"{name}\" is invalid: {detail}"),
                ))
            };
            if let Some(requests) = after_spec.pointer_mut("/resources/requests") {
                *requests = before_spec
                    .pointer("/resources/requests")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            let bound = live.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let immutable = "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";
            if after_spec != before_spec || (old != new && !bound) {
                return invalid(immutable);
            }
            let capacity = live
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map(|q| bytes(&q.0));
            match (old, new) {
                (Some(old), Some(new)) if new > old => {
                    let class = live
                        .spec
                        .as_ref()
                        .and_then(|s| s.storage_class_name.clone());
                    let expandable = match class {
                        Some(class) => {
                            Api::<k8s_openapi::api::storage::v1::StorageClass>::all(fake.clone())
                                .get_opt(&class)
                                .await
                                .ok()
                                .flatten()
                                .and_then(|c| c.allow_volume_expansion)
                                == Some(true)
                        }
                        None => false,
                    };
                    (!expandable).then(|| {
                        status_response(
                            StatusCode::FORBIDDEN,
                            "Forbidden",
                            format!("persistentvolumeclaims \"{name}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"),
                        )
                    })
                }
                (Some(_), Some(new)) if capacity.is_some_and(|c| new < c) => invalid(
                    "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity",
                ),
                _ => None,
            }
        }
        _ => None,
    }
}

async fn serve(mut handle: Handle, fake: Client, patches: Arc<std::sync::Mutex<Vec<String>>>) {
    while let Some((request, send)) = handle.next_request().await {
        let (parts, body) = request.into_parts();
        let body = body
            .collect_bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let path = parts.uri.path().to_owned();
        if parts.method == Method::PATCH
            && path.contains("/persistentvolumeclaims/")
            && !path.ends_with("/status")
        {
            patches.lock().map(|mut p| p.push(path.clone())).ok();
        }
        let refused = if parts.method == Method::PATCH && !path.ends_with("/status") {
            refusal(&fake, &path, &content_type, &body).await
        } else {
            None
        };
        let response = match refused {
            Some(response) => response,
            None => match fake
                .send(Request::from_parts(parts, Body::from(body)))
                .await
            {
                Ok(response) => response,
                Err(e) => status_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    e.to_string(),
                ),
            },
        };
        send.send_response(response);
    }
}

struct Cluster {
    client: Client,
    /// Paths of every PATCH of a claim's spec, refused or not.
    claim_patches: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn cluster(objects: Vec<Value>) -> Cluster {
    let fake = ClientBuilder::new()
        .with_resource::<SalesSystem>()
        .with_status_subresource::<SalesSystem>()
        .with_runtime_objects(objects)
        .build()
        .await
        .expect("fake API server");
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let claim_patches = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(serve(handle, fake, claim_patches.clone()));
    Cluster {
        client: Client::new(service, "default"),
        claim_patches,
    }
}

fn storage_class(name: &str, expandable: bool) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name}, "provisioner": "example.com/csi",
        "allowVolumeExpansion": expandable})
}

// --- the system --------------------------------------------------------------------

/// Managed RabbitMQ and PostgreSQL (the order database overridden), external Redis;
/// no policies, Ingress or ServiceMonitor.
fn system_json(database_size: Value) -> Value {
    json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": NAME, "namespace": NS, "uid": "uid-store", "generation": 1,
            "finalizers": [FINALIZER]},
        "spec": {
            "rabbitmq": {"managed": {"storage": {"size": "1Gi", "storageClassName": "standard"}}},
            "postgres": {
                "managed": {"storage": {"size": "1Gi", "storageClassName": "standard"}},
                "services": {"order": {"managed": {"storage": {"size": database_size,
                    "storageClassName": "standard"}}}}
            },
            "redis": {"external": {"secretName": "store-redis"}},
            "auth": {"admin": {"enabled": false}},
            "networkPolicies": {"enabled": false},
        }
    })
}

fn redis_secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "store-redis", "namespace": NS},
        "stringData": {"url": "redis://redis.example.com:6379"}})
}

fn context(client: &Client) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: Some("test".into()),
        },
    );
    let mut ctx = Context::new(client.clone(), recorder, Arc::new(Metrics::new()));
    ctx.random = |len| "a".repeat(len);
    Arc::new(ctx)
}

async fn get(client: &Client) -> SalesSystem {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .expect("the SalesSystem reads")
}

async fn reconcile_once(client: &Client) -> Action {
    let system = get(client).await;
    tokio::time::timeout(
        Duration::from_secs(20),
        reconcile(Arc::new(system), context(client)),
    )
    .await
    .expect("the reconcile finishes")
    .expect("the reconcile succeeds")
}

/// The StatefulSet controller and the volume binder: the claim of every StatefulSet,
/// bound, with its template's size as capacity.
async fn bind_claims(client: &Client) {
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS);
    let sets = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    assert!(!sets.is_empty(), "the StatefulSets exist");
    for set in sets {
        let spec = set.spec.clone().expect("spec");
        for template in spec.volume_claim_templates.unwrap_or_default() {
            let name = format!("{}-{}-0", template.name_any(), set.name_any());
            let mut claim = template.clone();
            claim.metadata.name = Some(name.clone());
            claim.metadata.namespace = Some(NS.into());
            claims
                .create(&PostParams::default(), &claim)
                .await
                .expect("claim");
            let size = template
                .spec
                .and_then(|s| s.resources)
                .and_then(|r| r.requests)
                .and_then(|r| r.get("storage").cloned())
                .expect("a size");
            claims
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Bound",
                        "capacity": {"storage": size.0}}})),
                )
                .await
                .expect("bound");
        }
    }
}

async fn claim(client: &Client, name: &str) -> PersistentVolumeClaim {
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .expect("the claim")
}

fn requested(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_default()
}

async fn template_size(client: &Client, set: &str) -> String {
    let set = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get(set)
        .await
        .expect("the StatefulSet");
    set.spec
        .and_then(|s| s.volume_claim_templates)
        .and_then(|t| t.into_iter().next())
        .and_then(|t| t.spec)
        .and_then(|s| s.resources)
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned())
        .map(|q| q.0)
        .unwrap_or_default()
}

async fn condition(client: &Client, kind: &str) -> Option<Condition> {
    get(client)
        .await
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == kind))
}

/// The user edits the spec (a new generation).
async fn edit(client: &Client, change: impl FnOnce(&mut SalesSystem)) {
    let mut system = get(client).await;
    change(&mut system);
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .replace(NAME, &PostParams::default(), &system)
        .await
        .expect("spec updated");
}

fn set_order_size(system: &mut SalesSystem, size: &str) {
    let order = system
        .spec
        .postgres
        .services
        .order
        .as_mut()
        .and_then(|o| o.managed.as_mut())
        .expect("the order override");
    order.storage.size = k8s_openapi::apimachinery::pkg::api::resource::Quantity(size.into());
}

async fn warnings(client: &Client, reason: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// A system created, its claims bound, at rest.
async fn running(expandable: bool) -> Cluster {
    let cluster = cluster(vec![
        system_json(json!("1Gi")),
        redis_secret(),
        storage_class("standard", expandable),
    ])
    .await;
    reconcile_once(&cluster.client).await;
    bind_claims(&cluster.client).await;
    reconcile_once(&cluster.client).await;
    cluster
}

// --- the fakes behave like the API server ----------------------------------------

#[tokio::test]
async fn the_fake_refuses_what_the_api_server_refuses() {
    let cluster = running(false).await;
    let sets = Api::<StatefulSet>::namespaced(cluster.client.clone(), NS);
    let err = sets
        .patch(
            "store-order-db",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"resources": {"requests": {"storage": "2Gi"}}}}]}}),
            ),
        )
        .await
        .expect_err("templates are immutable");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err}"
    );
    let claims = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS);
    let grow = Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}));
    let err = claims
        .patch("data-store-order-db-0", &PatchParams::default(), &grow)
        .await
        .expect_err("a class without allowVolumeExpansion");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    let err = claims
        .patch(
            "data-store-order-db-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "512Mi"}}}})),
        )
        .await
        .expect_err("below the capacity");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err}"
    );
}

// --- volume expansion --------------------------------------------------------------

/// The bug: a larger size was applied to the StatefulSet's volumeClaimTemplates, which
/// the API server refuses on every apply (422), and the system stayed Degraded.
#[tokio::test]
async fn a_larger_size_grows_the_claims_and_keeps_the_template() {
    let cluster = running(true).await;
    let client = &cluster.client;
    assert_eq!(template_size(client, "store-order-db").await, "1Gi");
    edit(client, |s| {
        set_order_size(s, "3Gi");
        s.spec.services.order.replicas = 2;
    })
    .await;

    let action = reconcile_once(client).await;
    assert!(
        action == Action::requeue(Duration::from_secs(30))
            || action == Action::requeue(Duration::from_secs(300)),
        "{action:?}"
    );
    // The template is what the StatefulSet was made with; the claim is grown.
    assert_eq!(template_size(client, "store-order-db").await, "1Gi");
    assert_eq!(
        requested(&claim(client, "data-store-order-db-0").await),
        "3Gi"
    );
    // The other claims are left alone.
    assert_eq!(
        requested(&claim(client, "data-store-product-db-0").await),
        "1Gi"
    );
    // The rest of the spec applied.
    let order = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("store-order")
        .await
        .expect("order");
    assert_eq!(order.spec.and_then(|s| s.replicas), Some(2));
    let status = get(client).await.status.expect("status");
    assert_eq!(status.observed_generation, Some(2));
    let degraded = condition(client, "Degraded").await.expect("Degraded");
    assert_eq!(degraded.status, "False", "{}", degraded.message);
    let storage = condition(client, STORAGE_READY)
        .await
        .expect("StorageReady");
    assert_eq!(
        (storage.status.as_str(), storage.reason.as_str()),
        ("False", "Resizing"),
        "{}",
        storage.message
    );
    assert!(
        storage.message.contains("data-store-order-db-0") && storage.message.contains("3Gi"),
        "{}",
        storage.message
    );

    // The resizer and the kubelet finish: the claim has the size asked for.
    let patched = cluster.claim_patches.lock().map(|p| p.len()).unwrap_or(0);
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .patch_status(
            "data-store-order-db-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"capacity": {"storage": "3Gi"}}})),
        )
        .await
        .expect("resized");
    reconcile_once(client).await;
    let storage = condition(client, STORAGE_READY)
        .await
        .expect("StorageReady");
    assert_eq!(
        (storage.status.as_str(), storage.reason.as_str()),
        ("True", "AsRequested"),
        "{}",
        storage.message
    );
    assert_eq!(
        cluster.claim_patches.lock().map(|p| p.len()).unwrap_or(0),
        patched,
        "nothing more to patch"
    );
    assert_eq!(template_size(client, "store-order-db").await, "1Gi");
}

#[tokio::test]
async fn a_claim_the_storage_class_cannot_grow_is_reported_not_retried_hot() {
    let cluster = running(false).await;
    let client = &cluster.client;
    edit(client, |s| set_order_size(s, "2Gi")).await;
    let action = reconcile_once(client).await;
    assert!(action != Action::requeue(Duration::ZERO));
    assert_eq!(
        requested(&claim(client, "data-store-order-db-0").await),
        "1Gi"
    );
    let storage = condition(client, STORAGE_READY)
        .await
        .expect("StorageReady");
    assert_eq!(
        (storage.status.as_str(), storage.reason.as_str()),
        ("False", "ResizeRefused")
    );
    assert!(
        storage.message.contains("data-store-order-db-0")
            && storage.message.contains("allowVolumeExpansion"),
        "{}",
        storage.message
    );
    assert!(
        !storage.message.contains("ErrorResponse") && !storage.message.contains("Status {"),
        "a sentence, not client debug output: {}",
        storage.message
    );
    // The rest is reconciled: no failure, and the StatefulSet applied.
    let degraded = condition(client, "Degraded").await.expect("Degraded");
    assert_eq!(degraded.status, "False", "{}", degraded.message);
    assert_eq!(warnings(client, "ResizeRefused").await.len(), 1);

    // Another reconcile of the same generation: one Event for the refusal, still.
    reconcile_once(client).await;
    assert_eq!(warnings(client, "ResizeRefused").await.len(), 1);
}

// --- safe changes ------------------------------------------------------------------

#[tokio::test]
async fn shrinking_is_refused_and_the_rest_is_reconciled() {
    let cluster = running(true).await;
    let client = &cluster.client;
    edit(client, |s| {
        set_order_size(s, "512Mi");
        s.spec.services.order.replicas = 3;
    })
    .await;
    let action = reconcile_once(client).await;
    assert!(action != Action::requeue(Duration::ZERO));
    assert!(
        cluster
            .claim_patches
            .lock()
            .map(|p| p.is_empty())
            .unwrap_or(false),
        "no claim is touched"
    );
    assert_eq!(
        requested(&claim(client, "data-store-order-db-0").await),
        "1Gi"
    );
    assert_eq!(template_size(client, "store-order-db").await, "1Gi");
    let order = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("store-order")
        .await
        .expect("order");
    assert_eq!(
        order.spec.and_then(|s| s.replicas),
        Some(3),
        "the rest applied"
    );

    let storage = condition(client, STORAGE_READY)
        .await
        .expect("StorageReady");
    assert_eq!(
        (storage.status.as_str(), storage.reason.as_str()),
        ("False", "ShrinkRefused")
    );
    assert!(
        storage.message.contains("store-order-db")
            && storage.message.contains("512Mi")
            && storage.message.contains("1Gi"),
        "{}",
        storage.message
    );
    assert_eq!(storage.observed_generation, Some(2));
    let degraded = condition(client, "Degraded").await.expect("Degraded");
    assert_eq!(degraded.status, "False", "{}", degraded.message);
    let events = warnings(client, "ShrinkRefused").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("512Mi"), "{}", events[0]);

    reconcile_once(client).await;
    assert_eq!(
        warnings(client, "ShrinkRefused").await.len(),
        1,
        "said once"
    );

    // Back to the size it has: the refusal is over.
    edit(client, |s| set_order_size(s, "1Gi")).await;
    reconcile_once(client).await;
    let storage = condition(client, STORAGE_READY)
        .await
        .expect("StorageReady");
    assert_eq!(storage.status, "True", "{}", storage.message);
}

#[tokio::test]
async fn another_storage_class_is_refused() {
    let cluster = running(true).await;
    let client = &cluster.client;
    edit(client, |s| {
        let order = s
            .spec
            .postgres
            .services
            .order
            .as_mut()
            .and_then(|o| o.managed.as_mut())
            .expect("override");
        order.storage.storage_class_name = Some("fast".into());
    })
    .await;
    reconcile_once(client).await;
    assert!(
        cluster
            .claim_patches
            .lock()
            .map(|p| p.is_empty())
            .unwrap_or(false)
    );
    let storage = condition(client, STORAGE_READY)
        .await
        .expect("StorageReady");
    assert_eq!(
        (storage.status.as_str(), storage.reason.as_str()),
        ("False", "StorageClassChangeRefused")
    );
    assert!(
        storage.message.contains("fast") && storage.message.contains("standard"),
        "{}",
        storage.message
    );
    assert_eq!(warnings(client, "StorageClassChangeRefused").await.len(), 1);
}

// --- `storage.size: null` ------------------------------------------------------------

/// The bug: `size: null` (kept by the API server, the field was nullable) failed to
/// deserialize, so the SalesSystem could not be read at all.
#[tokio::test]
async fn a_null_size_reads_as_the_default() {
    let cluster = cluster(vec![system_json(Value::Null), redis_secret()]).await;
    let system = get(&cluster.client).await;
    let order = system
        .spec
        .postgres
        .services
        .order
        .as_ref()
        .and_then(|o| o.managed.as_ref())
        .expect("override");
    assert_eq!(order.storage.size.0, "1Gi");
    reconcile_once(&cluster.client).await;
    assert_eq!(
        template_size(&cluster.client, "store-order-db").await,
        "1Gi"
    );

    for text in [
        "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {name: s}\nspec:\n  rabbitmq:\n    managed:\n      storage: {size: null}\n",
        "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {name: s}\nspec:\n  postgres:\n    managed:\n      storage: null\n",
    ] {
        let system = sales_operator::render::parse(text).expect("parses");
        assert_eq!(
            system.spec.managed_rabbitmq().map(|b| b.storage.size.0),
            Some("1Gi".to_owned())
        );
        let database = system.spec.postgres.managed.clone().unwrap_or_default();
        assert_eq!(database.storage.size.0, "1Gi");
    }
    assert_eq!(
        serde_json::from_value::<ManagedBroker>(json!({"storage": {"size": null}}))
            .expect("a broker")
            .storage
            .size
            .0,
        "1Gi"
    );
    assert_eq!(
        serde_json::from_value::<ManagedDatabase>(json!({"storage": null}))
            .expect("a database")
            .storage
            .size
            .0,
        "1Gi"
    );
}

/// A real API server keeps `null` in a nullable field (and skips its default): the
/// CRD says the size is not nullable, so a `null` is pruned and `1Gi` defaulted.
#[test]
fn the_crd_lets_the_api_server_default_a_null_size() {
    let crd = serde_json::to_value(sales_operator::crd::crd()).expect("CRD");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for storage in [
        &spec["rabbitmq"]["properties"]["managed"]["properties"]["storage"],
        &spec["postgres"]["properties"]["managed"]["properties"]["storage"],
    ] {
        let size = &storage["properties"]["size"];
        assert_eq!(size["default"], "1Gi", "{storage}");
        assert_ne!(size["nullable"], true, "{size}");
    }
}

// --- probes ------------------------------------------------------------------------

fn probes_of(container: &Container) -> [(&'static str, &k8s_openapi::api::core::v1::Probe); 3] {
    [
        (
            "startup",
            container.startup_probe.as_ref().expect("a startup probe"),
        ),
        (
            "liveness",
            container.liveness_probe.as_ref().expect("a liveness probe"),
        ),
        (
            "readiness",
            container
                .readiness_probe
                .as_ref()
                .expect("a readiness probe"),
        ),
    ]
}

/// Seconds a probe allows before it gives up.
fn budget(probe: &k8s_openapi::api::core::v1::Probe) -> i32 {
    probe.initial_delay_seconds.unwrap_or(0)
        + probe.period_seconds.unwrap_or(10) * probe.failure_threshold.unwrap_or(3)
}

fn script(probe: &k8s_openapi::api::core::v1::Probe) -> String {
    probe
        .exec
        .as_ref()
        .and_then(|e| e.command.as_ref())
        .and_then(|c| c.last().cloned())
        .expect("an exec probe")
}

/// Runs a probe's script with `pg_isready` answering `code`.
fn run_with_pg_isready(probe: &k8s_openapi::api::core::v1::Probe, code: i32) -> bool {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("sales-operator-probes")
        .join(format!("{}-{code}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let fake = dir.join("pg_isready");
    std::fs::write(&fake, format!("#!/bin/sh\nexit {code}\n")).expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("sh")
        .args(["-c", &script(probe)])
        .env("PATH", path)
        .env("POSTGRES_USER", "sales")
        .env("POSTGRES_DB", "orders")
        .status()
        .expect("sh runs")
        .success()
}

#[test]
fn postgres_has_an_hour_to_recover_and_is_never_killed_while_recovering() {
    let names = children::names_of(&SalesSystem::new(NAME, Default::default()));
    let (set, _) = infrastructure::postgres(
        &names,
        AppService::Order,
        "orders",
        &ManagedDatabase::default(),
        &None,
    );
    let container = &set
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    let [(_, startup), (_, liveness), (_, readiness)] = probes_of(container);
    // Crash recovery (WAL replay) after a restart may take long: an hour, as
    // CloudNativePG's startDelay, before the kubelet gives up.
    assert!(budget(startup) >= 3600, "{startup:?}");
    assert_eq!(
        liveness.initial_delay_seconds.unwrap_or(0),
        0,
        "the startup probe waits"
    );
    // Ready: accepting connections. Alive: the postmaster answers, even "rejecting
    // connections" while it recovers after a backend crash (no container restart).
    for (code, ready, alive) in [
        (0, true, true),
        (1, false, true),
        (2, false, false),
        (3, false, false),
    ] {
        assert_eq!(
            run_with_pg_isready(readiness, code),
            ready,
            "readiness, pg_isready {code}"
        );
        assert_eq!(
            run_with_pg_isready(startup, code),
            ready,
            "startup, pg_isready {code}"
        );
        assert_eq!(
            run_with_pg_isready(liveness, code),
            alive,
            "liveness, pg_isready {code}"
        );
    }
}

#[test]
fn rabbitmq_has_a_startup_probe_before_its_liveness_probe() {
    let names = children::names_of(&SalesSystem::new(NAME, Default::default()));
    let (set, _) = infrastructure::rabbitmq(&names, &ManagedBroker::default(), &None);
    let container = &set
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    let [(_, startup), (_, liveness), _] = probes_of(container);
    assert!(budget(startup) >= 600, "{startup:?}");
    assert_eq!(liveness.initial_delay_seconds.unwrap_or(0), 0);
    assert!(script(startup).contains("rabbitmq-diagnostics"));
}

/// Every managed StatefulSet the spec builds has the storage the spec asks for, so a
/// new system gets the size at once (the template is only kept on a live one).
#[test]
fn a_new_statefulset_gets_the_size_asked_for() {
    let system: SalesSystem = serde_json::from_value(system_json(json!("7Gi"))).expect("system");
    let sizes: BTreeMap<String, String> = children::desired(&system)
        .expect("children")
        .into_iter()
        .filter(|c| c.kind() == "StatefulSet")
        .map(|c| {
            let size = c.object.data["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (c.name(), size)
        })
        .collect();
    assert_eq!(sizes["store-order-db"], "7Gi");
    assert_eq!(sizes["store-product-db"], "1Gi");
    assert_eq!(sizes["store-rabbitmq"], "1Gi");
}
