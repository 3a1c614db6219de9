//! An in-memory Kubernetes API server behind a `tower_test` mock, answering the way a
//! real one does where the operator's correctness depends on it (kube-fake-client
//! does not: it answers an unknown kind with a JSON `Status`, deletes objects that
//! still have finalizers, and collects dependents whatever their finalizers):
//!
//! - a kind that is not served (a CRD not installed) answers every request with the
//!   API server's plain-text `404 page not found`, and its group's discovery document
//!   is missing; installing it later serves both;
//! - create answers `409 AlreadyExists`, a get `404 NotFound` (JSON `Status`);
//! - server-side apply creates or updates (a merge of the applied fields: one field
//!   manager that forces, as the operator applies); merge patches honour
//!   `metadata.resourceVersion` (409 when stale); JSON patches (`test`, `add`,
//!   `remove`, `replace`) as the finalizer helper sends them; the status subresource;
//! - a Secret's `stringData` is folded into `data` (base64) as the server does;
//! - an `events.k8s.io/v1` Event's `note`, `reason` and `regarding` cannot change on
//!   update (422), as the API server validates them;
//! - delete of an object with finalizers only sets `deletionTimestamp`; the object
//!   goes when its last finalizer is removed;
//! - garbage collection by owner uid: an object whose owners are all gone (or being
//!   deleted in the foreground) is deleted, honouring its own finalizers; a
//!   foreground deletion waits for its dependents. It runs at once after every write
//!   (the worst case for anything racing it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// (group, version, plural, kind, has a status subresource)
const BUILT_IN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "configmaps", "ConfigMap", false),
    ("", "v1", "secrets", "Secret", false),
    ("", "v1", "services", "Service", true),
    (
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    ),
    ("apps", "v1", "deployments", "Deployment", true),
    ("apps", "v1", "statefulsets", "StatefulSet", true),
    ("batch", "v1", "cronjobs", "CronJob", true),
    (
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        false,
    ),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", true),
    (
        "sales-system.io",
        "v1alpha1",
        "salessystems",
        "SalesSystem",
        true,
    ),
    ("events.k8s.io", "v1", "events", "Event", false),
];

/// Kinds a cluster has only when their CRDs are installed.
pub const SERVICE_MONITORS: (&str, &str, &str, &str, bool) = (
    "monitoring.coreos.com",
    "v1",
    "servicemonitors",
    "ServiceMonitor",
    false,
);
pub const KAFKA_TOPICS: (&str, &str, &str, &str, bool) =
    ("kafka.strimzi.io", "v1", "kafkatopics", "KafkaTopic", true);
pub const RABBITMQ_CLUSTERS: (&str, &str, &str, &str, bool) = (
    "rabbitmq.com",
    "v1beta1",
    "rabbitmqclusters",
    "RabbitmqCluster",
    true,
);

/// RabbitMQ's Messaging Topology Operator's kinds the system uses.
pub const RABBITMQ_TOPOLOGY: [(&str, &str, &str, &str, bool); 3] = [
    ("rabbitmq.com", "v1beta1", "vhosts", "Vhost", true),
    ("rabbitmq.com", "v1beta1", "users", "User", true),
    ("rabbitmq.com", "v1beta1", "permissions", "Permission", true),
];

type Kind = (&'static str, &'static str, &'static str, &'static str, bool);

#[derive(Default)]
struct State {
    served: Vec<Kind>,
    /// By collection (`group/version/namespace/plural`), then name.
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    version: u64,
    /// `METHOD path` of every request.
    requests: Vec<String>,
    /// Answers forced for `METHOD path` (the first match wins, used once each).
    forced: Vec<(String, u16, Value)>,
}

/// The served API; clone it to look inside from a test.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

impl Target {
    fn collection(&self) -> String {
        collection(&self.kind, self.namespace.as_deref().unwrap_or(""))
    }
}

fn collection(kind: &Kind, namespace: &str) -> String {
    format!("{}/{}/{namespace}/{}", kind.0, kind.1, kind.2)
}

impl FakeApi {
    /// A server with the built-in kinds (and the SalesSystem CRD) only.
    pub fn new() -> FakeApi {
        FakeApi {
            state: Arc::new(Mutex::new(State {
                served: BUILT_IN.to_vec(),
                ..State::default()
            })),
        }
    }

    /// A client of this server (the server runs as a task of the current runtime).
    pub fn client(&self) -> Client {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(self.clone().serve(handle));
        Client::new(service, "default")
    }

    /// Install a CRD: its kind is served from now on.
    pub fn install(&self, kind: Kind) {
        let mut state = self.state.lock().unwrap();
        if !state.served.contains(&kind) {
            state.served.push(kind);
        }
    }

    /// The next `method path` request is answered with `code` and `body` instead.
    pub fn force_once(&self, method: &str, path: &str, code: u16, body: Value) {
        self.state
            .lock()
            .unwrap()
            .forced
            .push((format!("{method} {path}"), code, body));
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every stored object of `plural` in `namespace`.
    pub fn objects(&self, plural: &str, namespace: &str) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .iter()
            .filter(|(key, _)| key.ends_with(&format!("/{namespace}/{plural}")))
            .flat_map(|(_, objects)| objects.values().cloned())
            .collect()
    }

    /// Store `object` as the server would on create (uid, resourceVersion...).
    pub fn seed(&self, plural: &str, object: Value) -> Value {
        let mut state = self.state.lock().unwrap();
        let kind = *state
            .served
            .iter()
            .find(|k| k.2 == plural)
            .expect("a served kind");
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let target = Target {
            kind,
            namespace: Some(namespace),
            name: None,
            status: false,
        };
        create(&mut state, &target, object, false)
            .expect("seeded")
            .1
    }

    async fn serve(self, mut handle: Handle) {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let content_type = parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let response = self.answer(
                parts.method.as_str(),
                parts.uri.path(),
                parts.uri.query().unwrap_or_default(),
                &content_type,
                body,
            );
            send.send_response(response);
        }
    }

    fn answer(
        &self,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> Response<Body> {
        let mut state = self.state.lock().unwrap();
        state.requests.push(format!("{method} {path}"));
        let key = format!("{method} {path}");
        if let Some(at) = state.forced.iter().position(|(k, _, _)| *k == key) {
            let (_, code, body) = state.forced.remove(at);
            return json_response(code, &body);
        }
        // Discovery of one group version.
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if method == "GET" && parts.len() == 3 && parts[0] == "apis" {
            let resources: Vec<Value> = state
                .served
                .iter()
                .filter(|k| k.0 == parts[1] && k.1 == parts[2])
                .map(|k| {
                    json!({"name": k.2, "singularName": "", "namespaced": true, "kind": k.3,
                           "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
                })
                .collect();
            if resources.is_empty() {
                return page_not_found();
            }
            return json_response(
                200,
                &json!({"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": format!("{}/{}", parts[1], parts[2]),
                        "resources": resources}),
            );
        }
        let Some(target) = parse(&state.served, &parts) else {
            return page_not_found();
        };
        let result = match (method, target.name.is_some()) {
            ("GET", true) => get(&state, &target),
            ("GET", false) => Ok(list(&state, &target, query)),
            ("POST", false) => create(&mut state, &target, body, true),
            ("PATCH", true) => patch(&mut state, &target, content_type, body),
            ("DELETE", true) => delete(&mut state, &target, query, &body),
            _ => Err((405, status(405, "MethodNotAllowed", "method not allowed"))),
        };
        collect_garbage(&mut state);
        match result {
            Ok((code, object)) => json_response(code, &object),
            Err((code, object)) => json_response(code, &object),
        }
    }
}

type Answer = Result<(u16, Value), (u16, Value)>;

fn parse(served: &[Kind], parts: &[&str]) -> Option<Target> {
    let (group, version, rest) = match parts {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
        _ => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(*name), false),
        [plural, name, "status"] => (*plural, Some(*name), true),
        _ => return None,
    };
    let kind = *served
        .iter()
        .find(|k| k.0 == group && k.1 == version && k.2 == plural)?;
    Some(Target {
        kind,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        status,
    })
}

fn page_not_found() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(b"404 page not found\n".to_vec()))
        .unwrap()
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn resource_name(kind: &Kind) -> String {
    if kind.0.is_empty() {
        kind.2.to_owned()
    } else {
        format!("{}.{}", kind.2, kind.0)
    }
}

fn not_found(target: &Target, name: &str) -> (u16, Value) {
    let mut body = status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", resource_name(&target.kind)),
    );
    body["details"] = json!({"name": name, "group": target.kind.0, "kind": target.kind.2});
    (404, body)
}

fn get(state: &State, target: &Target) -> Answer {
    let name = target.name.clone().unwrap_or_default();
    state
        .objects
        .get(&target.collection())
        .and_then(|c| c.get(&name))
        .cloned()
        .map(|o| (200, o))
        .ok_or_else(|| not_found(target, &name))
}

fn matches(labels: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k.trim_end_matches('=')].as_str() == Some(v.trim_start_matches('='))
        } else if let Some(k) = term.strip_prefix('!') {
            labels.get(k).is_none()
        } else {
            labels.get(term).is_some()
        }
    })
}

fn decode(value: &str) -> String {
    let mut out = Vec::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 3 <= bytes.len()
            && let Ok(b) = u8::from_str_radix(&value[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
}

fn list(state: &State, target: &Target, query: &str) -> (u16, Value) {
    let selector = query_param(query, "labelSelector").unwrap_or_default();
    let suffix = format!("/{}", target.kind.2);
    let prefix = format!("{}/{}/", target.kind.0, target.kind.1);
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|(key, _)| match &target.namespace {
            Some(_) => **key == target.collection(),
            None => key.starts_with(&prefix) && key.ends_with(&suffix),
        })
        .flat_map(|(_, objects)| objects.values())
        .filter(|o| matches(&o["metadata"]["labels"], &selector))
        .cloned()
        .collect();
    let api_version = if target.kind.0.is_empty() {
        target.kind.1.to_owned()
    } else {
        format!("{}/{}", target.kind.0, target.kind.1)
    };
    (
        200,
        json!({"kind": format!("{}List", target.kind.3), "apiVersion": api_version,
               "metadata": {"resourceVersion": state.version.to_string()}, "items": items}),
    )
}

fn next_version(state: &mut State) -> String {
    state.version += 1;
    state.version.to_string()
}

/// A Secret's `stringData`, folded into `data` as the API server does.
fn fold_string_data(kind: &Kind, object: &mut Value) {
    if kind.3 != "Secret" {
        return;
    }
    if let Some(Value::Object(strings)) =
        object.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (key, value) in strings {
            let bytes = value.as_str().unwrap_or_default().as_bytes().to_vec();
            object["data"][key] = serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap();
        }
    }
}

fn create(state: &mut State, target: &Target, mut object: Value, strict: bool) -> Answer {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Err((422, status(422, "Invalid", "metadata.name: Required value")));
    }
    let key = target.collection();
    if state
        .objects
        .get(&key)
        .is_some_and(|c| c.contains_key(&name))
        && strict
    {
        let mut body = status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", resource_name(&target.kind)),
        );
        body["details"] = json!({"name": name, "group": target.kind.0, "kind": target.kind.2});
        return Err((409, body));
    }
    let version = next_version(state);
    let meta = &mut object["metadata"];
    meta["uid"] = json!(format!("uid-{version}"));
    meta["resourceVersion"] = json!(version);
    meta["generation"] = json!(1);
    meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    if let Some(ns) = &target.namespace {
        meta["namespace"] = json!(ns);
    }
    if let Some(m) = meta.as_object_mut() {
        m.remove("deletionTimestamp");
    }
    object["apiVersion"] = json!(if target.kind.0.is_empty() {
        target.kind.1.to_owned()
    } else {
        format!("{}/{}", target.kind.0, target.kind.1)
    });
    object["kind"] = json!(target.kind.3);
    fold_string_data(&target.kind, &mut object);
    state
        .objects
        .entry(key)
        .or_default()
        .insert(name, object.clone());
    Ok((201, object))
}

/// RFC 7386; with `keep_null` the nulls are stored (server-side apply never sends
/// them).
fn merge(base: &mut Value, patch: &Value) {
    match (base.as_object_mut(), patch.as_object()) {
        (Some(base), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(key);
                } else {
                    merge(base.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *base = patch.clone(),
    }
}

fn pointer_parts(path: &str) -> Vec<String> {
    path.split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn json_patch(object: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().into_iter().flatten() {
        let path = op["path"].as_str().unwrap_or_default();
        let mut parts = pointer_parts(path);
        let last = parts.pop().unwrap_or_default();
        let parent_path: String = parts.iter().map(|p| format!("/{p}")).collect();
        match op["op"].as_str().unwrap_or_default() {
            "test" => {
                let found = object.pointer(path).cloned().unwrap_or(Value::Null);
                if found != op["value"] {
                    return Err(format!("test of {path} failed"));
                }
            }
            kind @ ("add" | "replace" | "remove") => {
                let parent = object
                    .pointer_mut(&parent_path)
                    .ok_or_else(|| format!("no {parent_path}"))?;
                match parent {
                    Value::Object(map) => {
                        if kind == "remove" {
                            map.remove(&last).ok_or_else(|| format!("no {path}"))?;
                        } else {
                            map.insert(last, op["value"].clone());
                        }
                    }
                    Value::Array(items) => {
                        let at = if last == "-" {
                            items.len()
                        } else {
                            last.parse::<usize>().map_err(|e| e.to_string())?
                        };
                        match kind {
                            "remove" if at < items.len() => {
                                items.remove(at);
                            }
                            "replace" if at < items.len() => items[at] = op["value"].clone(),
                            "add" if at <= items.len() => items.insert(at, op["value"].clone()),
                            _ => return Err(format!("no {path}")),
                        }
                    }
                    _ => return Err(format!("no {parent_path}")),
                }
            }
            other => return Err(format!("unsupported op {other}")),
        }
    }
    Ok(())
}

fn patch(state: &mut State, target: &Target, content_type: &str, body: Value) -> Answer {
    let name = target.name.clone().unwrap_or_default();
    let existing = state
        .objects
        .get(&target.collection())
        .and_then(|c| c.get(&name))
        .cloned();
    let Some(existing) = existing else {
        if content_type.contains("apply-patch") && !target.status {
            let mut object = body;
            object["metadata"]["name"] = json!(name);
            return create(state, target, object, true);
        }
        return Err(not_found(target, &name));
    };
    let mut updated = existing.clone();
    if content_type.contains("json-patch") {
        if let Err(message) = json_patch(&mut updated, &body) {
            return Err((422, status(422, "Invalid", &message)));
        }
    } else {
        let wanted = body["metadata"]["resourceVersion"].as_str();
        if let Some(wanted) = wanted
            && Some(wanted) != existing["metadata"]["resourceVersion"].as_str()
        {
            return Err((
                409,
                status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been \
                         modified; please apply your changes to the latest version and try again",
                        resource_name(&target.kind)
                    ),
                ),
            ));
        }
        let mut body = body;
        if content_type.contains("apply-patch") {
            // Apply leaves out what the manager does not set: nothing to delete.
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
        }
        if target.status {
            merge(&mut updated["status"], &body["status"]);
        } else {
            merge(&mut updated, &body);
        }
    }
    fold_string_data(&target.kind, &mut updated);
    // What the server owns or keeps.
    for field in ["uid", "creationTimestamp", "namespace", "name"] {
        updated["metadata"][field] = existing["metadata"][field].clone();
    }
    if existing["metadata"]["deletionTimestamp"] != updated["metadata"]["deletionTimestamp"] {
        updated["metadata"]["deletionTimestamp"] =
            existing["metadata"]["deletionTimestamp"].clone();
    }
    if target.kind.4 && !target.status {
        updated["status"] = existing["status"].clone();
        if updated["status"].is_null()
            && let Some(m) = updated.as_object_mut()
        {
            m.remove("status");
        }
    }
    if target.kind.3 == "Event" {
        for field in ["note", "reason", "regarding", "action", "type"] {
            if updated[field] != existing[field] {
                return Err((
                    422,
                    status(
                        422,
                        "Invalid",
                        &format!(
                            "Event.events.k8s.io \"{name}\" is invalid: {field}: Invalid value: \
                             {}: field is immutable",
                            updated[field]
                        ),
                    ),
                ));
            }
        }
    }
    if updated == existing {
        return Ok((200, existing));
    }
    if !target.status && updated["spec"] != existing["spec"] {
        let generation = existing["metadata"]["generation"].as_i64().unwrap_or(1);
        updated["metadata"]["generation"] = json!(generation + 1);
    }
    updated["metadata"]["resourceVersion"] = json!(next_version(state));
    let terminating = !updated["metadata"]["deletionTimestamp"].is_null();
    let finalizers_left = updated["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let collection = state.objects.entry(target.collection()).or_default();
    if terminating && !finalizers_left {
        collection.remove(&name);
    } else {
        collection.insert(name, updated.clone());
    }
    Ok((200, updated))
}

/// Mark `object` deleted: gone at once without finalizers, else terminating.
fn remove_or_terminate(
    state: &mut State,
    key: &str,
    name: &str,
    foreground: bool,
) -> Option<Value> {
    let version = next_version(state);
    let collection = state.objects.get_mut(key)?;
    let object = collection.get_mut(name)?;
    if foreground {
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.contains(&json!("foregroundDeletion")) {
            let mut finalizers = finalizers;
            finalizers.push(json!("foregroundDeletion"));
            object["metadata"]["finalizers"] = json!(finalizers);
        }
    }
    let has_finalizers = object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if object["metadata"]["deletionTimestamp"].is_null() {
            object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
            object["metadata"]["resourceVersion"] = json!(version);
        }
        Some(object.clone())
    } else {
        collection.remove(name)
    }
}

fn delete(state: &mut State, target: &Target, query: &str, body: &Value) -> Answer {
    let name = target.name.clone().unwrap_or_default();
    let policy = query_param(query, "propagationPolicy")
        .or_else(|| body["propagationPolicy"].as_str().map(str::to_owned))
        .unwrap_or_default();
    match remove_or_terminate(state, &target.collection(), &name, policy == "Foreground") {
        Some(object) => Ok((200, object)),
        None => Err(not_found(target, &name)),
    }
}

/// The garbage collector, to a fixed point.
fn collect_garbage(state: &mut State) {
    loop {
        let all: Vec<(String, String, Value)> = state
            .objects
            .iter()
            .flat_map(|(key, c)| c.iter().map(|(n, o)| (key.clone(), n.clone(), o.clone())))
            .collect();
        let by_uid: BTreeMap<String, &Value> = all
            .iter()
            .filter_map(|(_, _, o)| Some((o["metadata"]["uid"].as_str()?.to_owned(), o)))
            .collect();
        let foreground = |o: &Value| {
            !o["metadata"]["deletionTimestamp"].is_null()
                && o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.contains(&json!("foregroundDeletion")))
        };
        let mut doomed = Vec::new();
        let mut owners_with_dependents = BTreeSet::new();
        for (key, name, object) in &all {
            let refs = object["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for r in &refs {
                owners_with_dependents.insert(r["uid"].as_str().unwrap_or_default().to_owned());
            }
            if refs.is_empty() || !object["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            let alive = refs.iter().any(|r| {
                by_uid
                    .get(r["uid"].as_str().unwrap_or_default())
                    .is_some_and(|owner| !foreground(owner))
            });
            if !alive {
                doomed.push((key.clone(), name.clone()));
            }
        }
        let mut released = Vec::new();
        for (key, name, object) in &all {
            let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
            if foreground(object) && !owners_with_dependents.contains(uid) {
                released.push((key.clone(), name.clone()));
            }
        }
        if doomed.is_empty() && released.is_empty() {
            return;
        }
        for (key, name) in doomed {
            remove_or_terminate(state, &key, &name, false);
        }
        for (key, name) in released {
            if let Some(object) = state.objects.get_mut(&key).and_then(|c| c.get_mut(&name)) {
                let left: Vec<Value> = object["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| f != "foregroundDeletion")
                    .collect();
                if left.is_empty() {
                    if let Some(c) = state.objects.get_mut(&key) {
                        c.remove(&name);
                    }
                } else {
                    object["metadata"]["finalizers"] = json!(left);
                }
            }
        }
    }
}
