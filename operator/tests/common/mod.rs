//! Helpers shared by the operator's integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (`operator/..`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The example SalesSystems in `examples/`, sorted.
pub fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "expected the example and its variants");
    files
}

/// The Python virtualenv with kubernetes-validate, jsonschema, cel-python, kmock.
pub fn tools_venv() -> PathBuf {
    let venv = std::env::var_os("SALES_TOOLS_VENV").unwrap_or_else(|| {
        panic!(
            "SALES_TOOLS_VENV is not set: this test needs the Python Kubernetes tools; \
             run it through `cargo xtask test` (or `cargo xtask infra up` and export the \
             variable it prints)"
        )
    });
    PathBuf::from(venv)
}

pub fn python() -> PathBuf {
    tools_venv().join("bin/python")
}

/// A script in `operator/tests/tools/`.
pub fn tool_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(name)
}

/// A fresh scratch directory under the target dir.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("sales-operator")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Run the operator binary and return its stdout.
pub fn operator(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(args)
        .output()
        .expect("run sales-operator");
    assert!(
        output.status.success(),
        "sales-operator {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// An Event recorder as the operator's (controller `sales-operator`, instance `test`).
pub fn recorder(client: &kube::Client) -> sales_operator::events::Recorder {
    sales_operator::events::Recorder::new(
        client.clone(),
        sales_operator::events::Reporter {
            controller: sales_operator::children::names::MANAGER.into(),
            instance: Some("test".into()),
        },
    )
}

/// Run `validate_custom_resources.py` (the CRD's structural schema and its CEL rules,
/// as the API server applies them) on every object of `crd`'s kind in `files`, as
/// updates of the objects in `old` when given: `(file, errors)` per object.
pub fn validate_custom_resources(
    old: Option<&Path>,
    crd: &Path,
    files: &[PathBuf],
) -> Vec<(String, Vec<String>)> {
    let mut command = Command::new(python());
    command.arg(tool_script("validate_custom_resources.py"));
    if let Some(old) = old {
        command.arg("--old").arg(old);
    }
    let output = command
        .arg(crd)
        .args(files)
        .output()
        .expect("run validate_custom_resources.py");
    assert!(
        output.status.success(),
        "validate_custom_resources.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let errors = v["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(String::from))
                .collect();
            (v["file"].as_str().unwrap_or_default().to_owned(), errors)
        })
        .collect()
}

/// A reconcile context on `client` whose discovery of optional kinds is asked again at
/// every reconcile (a CRD installed in between is seen at once).
pub fn context(client: &kube::Client) -> std::sync::Arc<sales_operator::reconcile::Context> {
    let mut ctx = sales_operator::reconcile::Context::new(
        client.clone(),
        recorder(client),
        std::sync::Arc::new(sales_operator::metrics::Metrics::new()),
    );
    ctx.kinds = std::sync::Arc::new(sales_operator::optional_kinds::OptionalKinds::new(
        client.clone(),
        std::time::Duration::ZERO,
    ));
    std::sync::Arc::new(ctx)
}

/// A condition of `system`'s status: its status, reason and message.
pub fn condition(
    system: &sales_operator::crd::SalesSystem,
    kind: &str,
) -> (String, String, String) {
    let c = system
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .unwrap_or_else(|| panic!("condition {kind}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// `examples/salessystem-autoscaling.yaml` as a cluster would hold it: in namespace
/// `sales`, named `name` (`None`: the example's), with `uid`, generation 1 and the
/// operator's finalizer.
pub fn stored_autoscaling_example(
    name: Option<&str>,
    uid: &str,
) -> sales_operator::crd::SalesSystem {
    let path = workspace().join("examples/salessystem-autoscaling.yaml");
    let mut system = sales_operator::render::parse(&std::fs::read_to_string(path).unwrap())
        .expect("a SalesSystem");
    if let Some(name) = name {
        system.metadata.name = Some(name.into());
    }
    system.metadata.namespace = Some("sales".into());
    system.metadata.uid = Some(uid.into());
    system.metadata.generation = Some(1);
    system.metadata.finalizers = Some(vec![sales_operator::crd::FINALIZER.into()]);
    system
}

/// The Kubernetes version the rendered objects are validated for.
pub const K8S_VERSION: &str = "1.33.0";

/// `kubernetes-validate --strict` over the objects in `file`: panics with its report
/// when any is invalid, else returns the report (a ` passed ` per object).
pub fn validate_strict(file: &Path) -> String {
    let output = Command::new(tools_venv().join("bin/kubernetes-validate"))
        .args(["--strict", "-k", K8S_VERSION])
        .arg(file)
        .output()
        .expect("run kubernetes-validate");
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}:\n{report}", file.display());
    report
}

/// The object of `kind` named `name` among `objects` (rendered children as JSON).
pub fn find<'a>(objects: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The replicas of system `system`'s inventory consumer Deployment in `namespace`.
pub async fn inventory_consumer_replicas(
    client: &kube::Client,
    namespace: &str,
    system: &str,
) -> Option<i32> {
    let deployment: k8s_openapi::api::apps::v1::Deployment =
        kube::Api::namespaced(client.clone(), namespace)
            .get(&format!("{system}-inventory-consumer"))
            .await
            .unwrap();
    deployment.spec.and_then(|s| s.replicas)
}

/// An in-memory API server holding `system` and, in its namespace, a Secret per
/// `(name, key, value)` of `secrets`.
pub async fn fake_api_with(
    system: &sales_operator::crd::SalesSystem,
    secrets: &[(&str, &str, &str)],
) -> kube::Client {
    let namespace = system.metadata.namespace.clone().unwrap_or_default();
    let mut objects = vec![serde_json::to_value(system).unwrap()];
    objects.extend(secrets.iter().map(|(name, key, value)| {
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": name, "namespace": namespace},
                           "stringData": {*key: value}})
    }));
    kube_fake_client::ClientBuilder::new()
        .with_resource::<sales_operator::crd::SalesSystem>()
        .with_status_subresource::<sales_operator::crd::SalesSystem>()
        .with_runtime_objects(objects)
        .build()
        .await
        .expect("fake API server")
}

/// Set `key` of Secret `name` in `namespace` to `value`.
pub async fn set_secret_value(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
    value: &str,
) {
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "data": {key: k8s_openapi::ByteString(value.as_bytes().to_vec())}
            })),
        )
        .await
        .unwrap();
}
