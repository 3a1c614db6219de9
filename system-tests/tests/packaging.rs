//! The packaging of the system, checked with the real tools (the Python venv of
//! `cargo xtask infra up`, `SALES_TOOLS_VENV`):
//!
//! - both Helm charts (`charts/sales-operator`, `charts/sales-system`) pass `helm lint`
//!   in strict mode (the Helm v4 SDK, `helm_python`), with their default values and
//!   with every file of their `ci/` directory (`all-on-values.yaml` turns every option
//!   on);
//! - every object they render, for each of those values files, passes
//!   `kubernetes-validate --strict -k 1.33.0`; the ServiceMonitor and PrometheusRule
//!   pass the Prometheus Operator's CRD schemas (`testdata/schemas/`), the
//!   SalesSystem passes the chart's own CRD (schema, defaults and CEL rules) and
//!   `sales-operator render`;
//! - the chart's CRD is `sales-operator crdgen`'s output; its dashboards and alert
//!   groups are `observability/`'s; the default SalesSystem becomes exactly what
//!   `spec: {}` becomes, and the charts' values reach every field of the CRD's spec;
//! - the operator's RBAC, probes, leader election and security context are what
//!   `docs/operator/README.md` asks for; every value is documented (`# --`) and listed
//!   in the chart's README;
//! - `skaffold.yaml` passes the skaffold v4beta14 schema (with each profile applied),
//!   builds each workspace binary once from the Dockerfile, and the images it builds
//!   are exactly those the charts then run (skaffold's `setValueTemplates` evaluated
//!   as skaffold does, for pushed images under several default repos);
//! - the Dockerfile passes `hadolint --failure-threshold warning`.
//!
//! Run: `eval "$(cargo xtask infra up 2>/dev/null)"; cargo build --bins;
//! SALES_BINARIES_BUILT=1 cargo nextest run -p system-tests --test packaging`.
//! Nothing is downloaded: the tools and schemas are local.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use system_tests::run_tool;

// ------------------------------------------------------------------ tools

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The Python virtualenv with helm_python, kubernetes-validate, hadolint, jsonschema.
fn venv() -> PathBuf {
    let venv = std::env::var_os("SALES_TOOLS_VENV").unwrap_or_else(|| {
        panic!(
            "SALES_TOOLS_VENV is not set: these tests run the Kubernetes tools of the Python \
             venv (helm_python, kubernetes-validate, hadolint, jsonschema). Run them through \
             `cargo xtask test`, or `eval \"$(cargo xtask infra up 2>/dev/null)\"` first"
        )
    });
    PathBuf::from(venv)
}

/// A program of the venv.
fn venv_tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: SALES_TOOLS_VENV ({}) is not the venv of `cargo xtask infra up` \
         (xtask/src/tools.rs); run that again",
        path.display(),
        venv().display()
    );
    path
}

/// Run `snippet` after the shared helpers ([`PY_LIB`]) in the venv's Python, with the
/// workspace as `WS` and `args` as `ARGS`; it prints one JSON value, returned here.
fn python(snippet: &str, args: &[&str]) -> Value {
    let script = format!("{PY_LIB}\n{snippet}");
    let out = Command::new(venv_tool("python"))
        .arg("-c")
        .arg(&script)
        .arg(workspace())
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("run the venv's python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python check failed ({}):\n{}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The built `sales-operator` binary (built here unless `SALES_BINARIES_BUILT` says
/// `cargo build --bins` just ran).
fn sales_operator() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("SALES_BINARIES_BUILT").is_some() {
            return;
        }
        let mut cmd = sales_testkit::cargo_command();
        cmd.args([
            "build",
            "--quiet",
            "--package",
            "sales-operator",
            "--bin",
            "sales-operator",
        ]);
        if system_tests::bin_dir().ends_with("release") {
            cmd.arg("--release");
        }
        run_tool(&mut cmd);
    });
    let bin = system_tests::bin_dir().join("sales-operator");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --bins` first",
        bin.display()
    );
    bin
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(what: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!(
            "sales-packaging-{what}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The workspace's version (`[workspace.package] version`), without a TOML parser.
fn workspace_version() -> String {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let section = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("a [workspace.package] section");
    section
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("a workspace version")
}

// ------------------------------------------------------------------ shared Python

/// Helpers every Python snippet gets: rendering charts, splitting and strictly
/// loading YAML (a duplicate key is an error), CRD schemas as JSON Schema, defaults.
const PY_LIB: &str = r##"
import copy, glob, json, os, re, sys, tempfile
import yaml

WS = sys.argv[1]
ARGS = sys.argv[2:]
CHARTS = {
    "sales-operator": {"release": "sales-operator", "namespace": "sales-operator"},
    "sales-system": {"release": "shop", "namespace": "sales"},
}
SCHEMAS = os.path.normpath(os.path.join(WS, "testdata", "schemas"))


class StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def emit(value):
    print(json.dumps(value))


def chart_dir(chart):
    return os.path.join(WS, "charts", chart)


def values_files(chart):
    """None (the defaults) and every ci/*.yaml of the chart."""
    return [None] + sorted(glob.glob(os.path.join(chart_dir(chart), "ci", "*.yaml")))


def label(values_file):
    return "default values" if values_file is None else os.path.relpath(values_file, WS)


def load_values(values_file):
    if values_file is None:
        return {}
    with open(values_file) as f:
        return yaml.safe_load(f) or {}


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def render(chart, values=None):
    """{template path: text} as `helm template` renders it (schema checked)."""
    import helm_python as helm
    with helm.Chart.load(chart_dir(chart)) as ch:
        return ch.render(values or {}, name=CHARTS[chart]["release"],
                         namespace=CHARTS[chart]["namespace"])


def objects(rendered):
    """[(template, object)] of every non-empty YAML document rendered."""
    out = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        try:
            docs = list(yaml.load_all(text, Loader=StrictLoader))
        except yaml.YAMLError as e:
            raise SystemExit(f"{template} is not valid YAML: {e}\n{text}")
        for doc in docs:
            if doc:
                out.append((template, doc))
    return out


def rendered_objects(chart, values_file=None, extra=None):
    values = deep_merge(load_values(values_file), extra or {})
    return objects(render(chart, values))


def of_kind(objs, kind):
    return [o for _, o in objs if o.get("kind") == kind]


def load_yaml(path):
    with open(path) as f:
        return yaml.load(f, Loader=StrictLoader)


def crd_schema(crd_path, version=None):
    crd = load_yaml(crd_path)
    for v in crd["spec"]["versions"]:
        if version is None or v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise SystemExit(f"{crd_path} has no version {version}")


# Defaulting, schema and CEL checks are the operator tests' (one copy).
sys.path.insert(0, os.path.join(WS, "operator", "tests", "tools"))
from crd_validation import apply_defaults, cel_errors, schema_errors, to_json_schema  # noqa: E402,F401
"##;

// ------------------------------------------------------------------ helm lint

#[test]
fn helm_lint_strict_passes_for_both_charts_with_every_values_file() {
    let result = python(
        r##"
import helm_python as helm
report = []
for chart in CHARTS:
    for vf in values_files(chart):
        r = helm.lint(chart_dir(chart), load_values(vf), strict=True)
        report.append({
            "chart": chart, "values": label(vf), "errors": r.get("errors") or [],
            # 1 = info (`icon is recommended`), 2 = warning, 3 = error
            "findings": [m for m in r.get("messages") or [] if m.get("severity", 0) >= 2],
        })
emit(report)
"##,
        &[],
    );
    let runs = result.as_array().unwrap();
    assert!(runs.len() >= 5, "both charts, defaults and ci/: {result}");
    for run in runs {
        assert!(
            run["errors"].as_array().unwrap().is_empty()
                && run["findings"].as_array().unwrap().is_empty(),
            "helm lint --strict of {} with {}: {:#}",
            run["chart"],
            run["values"],
            run
        );
    }
}

// ------------------------------------------------------------------ kubernetes-validate

#[test]
fn every_rendered_object_passes_kubernetes_validate_strict() {
    let scratch = ScratchDir::new("validate");
    let written = python(
        r##"
out_dir = ARGS[0]
files, kinds = [], {}
for chart in CHARTS:
    for vf in values_files(chart):
        tag = "defaults" if vf is None else os.path.splitext(os.path.basename(vf))[0]
        for i, (template, obj) in enumerate(rendered_objects(chart, vf)):
            name = f"{chart}--{tag}--{i:02d}--{obj['kind']}--{os.path.basename(template)}"
            path = os.path.join(out_dir, name)
            with open(path, "w") as f:
                yaml.safe_dump(obj, f, sort_keys=False)
            files.append(path)
            kinds.setdefault(chart, set()).add(obj["kind"])
emit({"files": files, "kinds": {c: sorted(k) for c, k in kinds.items()}})
"##,
        &[scratch.path().to_str().unwrap()],
    );
    let files = strings(&written["files"]);
    // Every kind the charts make, so a template that silently renders nothing shows.
    let operator_kinds: BTreeSet<String> = strings(&written["kinds"]["sales-operator"])
        .into_iter()
        .collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "Pod",
    ] {
        assert!(
            operator_kinds.contains(kind),
            "the operator chart renders no {kind}: {operator_kinds:?}"
        );
    }
    let system_kinds = strings(&written["kinds"]["sales-system"]);
    assert_eq!(system_kinds, ["Pod", "SalesSystem"], "{system_kinds:?}");

    // Built-in kinds must pass; custom kinds only warn here ("Couldn't find schema")
    // and are checked against their CRDs below. A built-in kind with a wrong
    // apiVersion would only warn too: only the custom kinds may.
    let out = Command::new(venv_tool("kubernetes-validate"))
        .args(["--strict", "-k", "1.33.0"])
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let failures: Vec<&str> = output
        .lines()
        .filter(|l| !l.starts_with("INFO") && !l.contains("Couldn't find schema"))
        .collect();
    assert!(
        out.status.success() && failures.is_empty(),
        "kubernetes-validate --strict -k 1.33.0 refuses rendered objects ({}):\n{}",
        out.status,
        failures.join("\n")
    );
    const CUSTOM: [&str; 3] = ["SalesSystem", "ServiceMonitor", "PrometheusRule"];
    for file in &files {
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        let kind = name.split("--").nth(3).unwrap_or_default();
        let line = output
            .lines()
            .find(|l| l.contains(&*name))
            .unwrap_or_else(|| panic!("kubernetes-validate did not report on {name}:\n{output}"));
        if CUSTOM.contains(&kind) {
            assert!(
                line.contains("Couldn't find schema") || line.contains("passed"),
                "{name}: {line}"
            );
        } else {
            assert!(
                line.starts_with("INFO") && line.contains(" passed "),
                "{name} is not validated as a built-in kind of Kubernetes 1.33: {line}"
            );
        }
    }
}

// ------------------------------------------------------------------ CRD schemas

#[test]
fn rendered_service_monitor_and_prometheus_rule_pass_the_prometheus_operator_crds() {
    let result = python(
        r##"
checked = []
crds = {
    "ServiceMonitor": os.path.join(SCHEMAS, "monitoring.coreos.com_servicemonitors.yaml"),
    "PrometheusRule": os.path.join(SCHEMAS, "monitoring.coreos.com_prometheusrules.yaml"),
}
for kind, path in crds.items():
    if not os.path.isfile(path):
        raise SystemExit(f"{path} is missing (the Prometheus Operator's CRDs, testdata/schemas/)")
for vf in values_files("sales-operator"):
    objs = rendered_objects("sales-operator", vf)
    for kind, path in crds.items():
        for obj in of_kind(objs, kind):
            api_version = obj["apiVersion"].split("/")[-1]
            errors = schema_errors(crd_schema(path, api_version), obj)
            checked.append({"kind": kind, "values": label(vf), "errors": errors})
emit(checked)
"##,
        &[],
    );
    let checked = result.as_array().unwrap();
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(
            checked.iter().any(|c| c["kind"] == kind),
            "no {kind} rendered with ci/all-on-values.yaml: {result}"
        );
    }
    for c in checked {
        assert!(
            c["errors"].as_array().unwrap().is_empty(),
            "the {} rendered with {} fails the Prometheus Operator's CRD: {:#}",
            c["kind"],
            c["values"],
            c["errors"]
        );
    }
}

#[test]
fn rendered_salessystems_pass_the_charts_crd_schema_and_rules_and_the_operator_renders_them() {
    let scratch = ScratchDir::new("salessystems");
    let result = python(
        r##"
out_dir = ARGS[0]
crd = os.path.join(chart_dir("sales-operator"), "crds", "salessystem.yaml")
schema = crd_schema(crd, "v1alpha1")
checked = []
for vf in values_files("sales-system"):
    systems = of_kind(rendered_objects("sales-system", vf), "SalesSystem")
    if len(systems) != 1:
        raise SystemExit(f"{label(vf)}: {len(systems)} SalesSystems rendered, not 1")
    obj = copy.deepcopy(systems[0])
    apply_defaults(schema, obj)
    errors = schema_errors(schema, obj)
    if not errors:
        errors = cel_errors(schema, obj)
    path = os.path.join(out_dir, os.path.basename(vf or "defaults.yaml"))
    with open(path, "w") as f:
        yaml.safe_dump(systems[0], f, sort_keys=False)
    checked.append({"values": label(vf), "errors": errors, "file": path})
emit(checked)
"##,
        &[scratch.path().to_str().unwrap()],
    );
    let checked = result.as_array().unwrap();
    assert!(checked.len() >= 3, "defaults and ci/*.yaml: {result}");
    for c in checked {
        assert!(
            c["errors"].as_array().unwrap().is_empty(),
            "the SalesSystem rendered with {} fails the CRD: {:#}",
            c["values"],
            c["errors"]
        );
        // The operator reads it and renders its children.
        let children = run_tool(
            Command::new(sales_operator())
                .args(["render", "-f"])
                .arg(c["file"].as_str().unwrap()),
        );
        assert!(
            children.contains("kind: Deployment"),
            "sales-operator render of the SalesSystem from {} made no Deployment",
            c["values"]
        );
    }
}

#[test]
fn the_default_salessystem_becomes_exactly_what_an_empty_spec_becomes() {
    let scratch = ScratchDir::new("defaults");
    let files = python(
        r##"
out_dir = ARGS[0]
system = of_kind(rendered_objects("sales-system"), "SalesSystem")[0]
empty = {"apiVersion": system["apiVersion"], "kind": "SalesSystem",
         "metadata": {"name": system["metadata"]["name"],
                      "namespace": system["metadata"]["namespace"]},
         "spec": {}}
paths = []
for name, obj in (("chart.yaml", system), ("empty.yaml", empty)):
    paths.append(os.path.join(out_dir, name))
    with open(paths[-1], "w") as f:
        yaml.safe_dump(obj, f, sort_keys=False)
emit(paths)
"##,
        &[scratch.path().to_str().unwrap()],
    );
    let files = strings(&files);
    for (file, name) in files.iter().zip(["chart", "empty"]) {
        let children = run_tool(Command::new(sales_operator()).args(["render", "-f", file]));
        std::fs::write(
            scratch.path().join(format!("{name}-children.yaml")),
            children,
        )
        .unwrap();
    }
    // Generated passwords differ from one render to the next: compare without them.
    let diff = python(
        r##"
def load(name):
    docs = [d for d in yaml.safe_load_all(open(os.path.join(ARGS[0], name))) if d]
    for d in docs:
        if d.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if field in d:
                    d[field] = {k: "<generated>" for k in d[field]}
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}
chart, empty = load("chart-children.yaml"), load("empty-children.yaml")
emit({
    "only_chart": sorted(set(chart) - set(empty)),
    "only_empty": sorted(set(empty) - set(chart)),
    "different": sorted(k for k in set(chart) & set(empty) if chart[k] != empty[k]),
    "count": len(chart),
})
"##,
        &[scratch.path().to_str().unwrap()],
    );
    assert!(
        diff["count"].as_u64().unwrap() > 30,
        "the operator rendered too little: {diff}"
    );
    for key in ["only_chart", "only_empty", "different"] {
        assert!(
            diff[key].as_array().unwrap().is_empty(),
            "the chart's default values do not give the CRD's defaults: {key}: {:#}",
            diff[key]
        );
    }
}

#[test]
fn the_charts_values_reach_every_field_of_the_crd_spec() {
    let result = python(
        r##"
crd = os.path.join(chart_dir("sales-operator"), "crds", "salessystem.yaml")
spec_schema = crd_schema(crd, "v1alpha1")["properties"]["spec"]
# Kubernetes' own types are passed through whole: ResourceRequirements, and the
# Pod's scheduling fields of `placement`.
OPAQUE = {"resources", "affinity", "tolerations", "topologySpreadConstraints"}

def groups(schema):
    """Sibling properties of one schema (the 7 database overrides, the 8 services...)
    share their sub-fields: `{a|b}` names them in paths below."""
    by_schema = {}
    for name, prop in (schema.get("properties") or {}).items():
        by_schema.setdefault(json.dumps(prop, sort_keys=True), []).append(name)
    out = {}
    for names in by_schema.values():
        for n in names:
            out[n] = "{" + "|".join(sorted(names)) + "}" if len(names) > 1 else n
    return out

def schema_paths(schema, path, out):
    out.add(path)
    if path.rsplit(".", 1)[-1] in OPAQUE:
        return
    named = groups(schema)
    for name, prop in (schema.get("properties") or {}).items():
        out.add(f"{path}.{name}")
        schema_paths(prop, f"{path}.{named[name]}", out)
    if isinstance(schema.get("additionalProperties"), dict):
        schema_paths(schema["additionalProperties"], f"{path}.*", out)
    if isinstance(schema.get("items"), dict):
        schema_paths(schema["items"], f"{path}[]", out)

def value_paths(schema, value, path, out, unknown):
    out.add(path)
    # Opaque too: a block passed to another operator as is (CloudNativePG's `backup`).
    if path.rsplit(".", 1)[-1] in OPAQUE or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        named = groups(schema)
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                out.add(f"{path}.{k}")
                value_paths(props[k], v, f"{path}.{named[k]}", out, unknown)
            elif isinstance(extra, dict):
                value_paths(extra, v, f"{path}.*", out, unknown)
            else:
                unknown.add(f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            value_paths(schema["items"], v, f"{path}[]", out, unknown)

wanted, reached, unknown = set(), set(), set()
schema_paths(spec_schema, "spec", wanted)
for vf in values_files("sales-system"):
    for system in of_kind(rendered_objects("sales-system", vf), "SalesSystem"):
        value_paths(spec_schema, system["spec"], "spec", reached, unknown)
emit({"missing": sorted(wanted - reached), "unknown": sorted(unknown), "fields": len(wanted)})
"##,
        &[],
    );
    assert!(
        result["fields"].as_u64().unwrap() > 50,
        "the CRD's spec has too few fields: {result}"
    );
    assert!(
        result["unknown"].as_array().unwrap().is_empty(),
        "the chart renders fields the CRD does not have: {:#}",
        result["unknown"]
    );
    assert!(
        result["missing"].as_array().unwrap().is_empty(),
        "no values of charts/sales-system (defaults or ci/*.yaml) reach these fields of \
         the SalesSystem CRD; add values for them: {:#}",
        result["missing"]
    );
}

#[test]
fn by_default_the_seeds_routes_are_closed_and_no_proxy_is_trusted() {
    let result = python(
        r##"
crd = os.path.join(chart_dir("sales-operator"), "crds", "salessystem.yaml")
props = crd_schema(crd, "v1alpha1")["properties"]["spec"]["properties"]
system = of_kind(rendered_objects("sales-system"), "SalesSystem")[0]
emit({
    "crd_seed": props["seedCompatOpen"].get("default"),
    "crd_proxies": props["gateway"]["properties"]["trustedProxies"].get("default"),
    "chart_seed": system["spec"].get("seedCompatOpen"),
    "chart_proxies": system["spec"]["gateway"].get("trustedProxies", []),
})
"##,
        &[],
    );
    assert_eq!(
        result,
        json!({"crd_seed": false, "crd_proxies": [], "chart_seed": false, "chart_proxies": []}),
        "the CRD and the chart's defaults open the seeds' routes or trust a proxy"
    );
}

// ------------------------------------------------------------------ copies of the sources

#[test]
fn the_charts_crd_is_what_sales_operator_crdgen_prints() {
    let crdgen = run_tool(Command::new(sales_operator()).arg("crdgen"));
    let chart_crd =
        std::fs::read_to_string(workspace().join("charts/sales-operator/crds/salessystem.yaml"))
            .unwrap();
    let committed =
        std::fs::read_to_string(workspace().join("operator/crd/salessystem.yaml")).unwrap();
    assert!(
        chart_crd == committed,
        "charts/sales-operator/crds/salessystem.yaml differs from operator/crd/salessystem.yaml: \
         the chart ships a byte-for-byte copy (cp operator/crd/salessystem.yaml \
         charts/sales-operator/crds/)"
    );
    assert!(
        chart_crd == crdgen,
        "the CRD of operator/crd/ and charts/sales-operator/crds/ is not `sales-operator \
         crdgen`'s output: the operator's types changed. Regenerate both: \
         `target/debug/sales-operator crdgen > operator/crd/salessystem.yaml && cp \
         operator/crd/salessystem.yaml charts/sales-operator/crds/` (then check that \
         charts/sales-system has values for any new spec field)"
    );
}

#[test]
fn the_charts_dashboards_and_alert_rules_are_the_observability_files() {
    let result = python(
        r##"
obs = os.path.join(WS, "observability")
def json_files(d):
    return {os.path.basename(p): open(p, "rb").read() for p in glob.glob(os.path.join(d, "*.json"))}
originals = json_files(os.path.join(obs, "dashboards"))
copies = json_files(os.path.join(chart_dir("sales-operator"), "dashboards"))
problems = []
if not originals:
    problems.append("observability/dashboards/ has no dashboards")
if sorted(originals) != sorted(copies):
    problems.append(f"dashboards: chart has {sorted(copies)}, observability/ has {sorted(originals)}")
problems += [f"dashboards/{n} differs from observability/dashboards/{n}: copy it again"
             for n in originals if n in copies and copies[n] != originals[n]]
rules_src = os.path.join(obs, "rules", "sales-system.rules.yaml")
rules_copy = os.path.join(chart_dir("sales-operator"), "rules", "sales-system.rules.yaml")
if open(rules_src, "rb").read() != open(rules_copy, "rb").read():
    problems.append("rules/sales-system.rules.yaml differs from observability/rules/: copy it again")
groups = load_yaml(rules_src)["groups"]

import helm_python as helm
with helm.Chart.load(chart_dir("sales-operator")) as ch:
    defaults = ch.merge_values({})["dashboards"]
if (defaults["label"], defaults["labelValue"]) != ("grafana_dashboard", "1"):
    problems.append(f"the dashboards' default label is {defaults['label']}={defaults['labelValue']!r}, not grafana_dashboard=\"1\"")
for vf in values_files("sales-operator"):
    with helm.Chart.load(chart_dir("sales-operator")) as ch:
        dashboards = ch.merge_values(load_values(vf))["dashboards"]
    objs = rendered_objects("sales-operator", vf, {"dashboards": {"enabled": True}})
    label_key, label_value = dashboards["label"], dashboards["labelValue"]
    rendered = {}
    for cm in of_kind(objs, "ConfigMap"):
        labels = cm["metadata"].get("labels") or {}
        if labels.get(label_key) == label_value:
            for name, text in cm.get("data", {}).items():
                rendered[name] = text
    if sorted(rendered) != sorted(originals):
        problems.append(f"{label(vf)}: dashboard ConfigMaps labelled {label_key}={label_value!r} hold {sorted(rendered)}")
    for name, text in rendered.items():
        if name in originals and text.encode() != originals[name]:
            problems.append(f"{label(vf)}: the ConfigMap's {name} is not the file")
    objs = rendered_objects("sales-operator", vf, {"prometheusRule": {"enabled": True}})
    rules = of_kind(objs, "PrometheusRule")
    if len(rules) != 1:
        problems.append(f"{label(vf)}: {len(rules)} PrometheusRules")
    elif rules[0]["spec"]["groups"] != groups:
        problems.append(f"{label(vf)}: the PrometheusRule's groups are not observability/rules/'s")
emit({"problems": problems, "dashboards": sorted(originals),
      "alerts": sum(len(g["rules"]) for g in groups)})
"##,
        &[],
    );
    assert!(
        result["problems"].as_array().unwrap().is_empty(),
        "{:#}",
        result["problems"]
    );
    assert!(strings(&result["dashboards"]).len() >= 5, "{result}");
    assert!(result["alerts"].as_u64().unwrap() >= 10, "{result}");
}

// ------------------------------------------------------------------ the operator's needs

#[test]
fn the_operator_gets_exactly_the_rbac_its_docs_list() {
    let result = python(
        r##"
def rules_of(objs, kind):
    found = of_kind(objs, kind)
    return [r for o in found for r in o["rules"]]

def normal(rules):
    """{(group, resource, resourceName or ''): verbs}"""
    out = {}
    for r in rules:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for name in r.get("resourceNames") or [""]:
                    out.setdefault(f"{g}|{res}|{name}", set()).update(r["verbs"])
    return {k: sorted(v) for k, v in out.items()}

default = rendered_objects("sales-operator")
one_ns = rendered_objects("sales-operator", None, {"operator": {"watchNamespace": "shops"}})
emit({
    "cluster": normal(rules_of(default, "ClusterRole")),
    "cluster_roles_one_ns": len(of_kind(one_ns, "ClusterRole")) + len(of_kind(one_ns, "ClusterRoleBinding")),
    "roles_default": {o["metadata"]["name"]: normal(o["rules"]) for o in of_kind(default, "Role")},
    "roles_one_ns": {o["metadata"]["namespace"]: normal(o["rules"]) for o in of_kind(one_ns, "Role")},
    "bindings": [[b["kind"], b["roleRef"]["name"], b["subjects"][0]["name"], b["subjects"][0]["namespace"]]
                 for b in of_kind(default, "ClusterRoleBinding") + of_kind(default, "RoleBinding")],
    "service_account": of_kind(default, "ServiceAccount")[0]["metadata"]["name"],
    "pod_account": of_kind(default, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"],
})
"##,
        &[],
    );
    let crud = json!(["create", "delete", "get", "list", "patch", "watch"]);
    // docs/operator/README.md, "Install", step 3.
    let expected = json!({
        "sales-system.io|salessystems|": ["get", "list", "patch", "update", "watch"],
        "sales-system.io|salessystems/status|": ["get", "list", "patch", "update", "watch"],
        // Children's owner references block the owner's deletion: with the
        // OwnerReferencesPermissionEnforcement admission plugin (OpenShift) that needs
        // update on the owner's finalizers.
        "sales-system.io|salessystems/finalizers|": ["update"],
        "|configmaps|": crud,
        "|secrets|": crud,
        "|services|": crud,
        "|persistentvolumeclaims|": crud,
        "apps|deployments|": crud,
        "apps|statefulsets|": crud,
        "batch|cronjobs|": crud,
        "policy|poddisruptionbudgets|": crud,
        "networking.k8s.io|networkpolicies|": crud,
        "networking.k8s.io|ingresses|": crud,
        "monitoring.coreos.com|servicemonitors|": crud,
        "kafka.strimzi.io|kafkatopics|": crud,
        "kafka.strimzi.io|kafkausers|": crud,
        "kafka.strimzi.io|kafkas|": ["create", "get", "list", "patch", "watch"],
        "kafka.strimzi.io|kafkanodepools|": ["create", "get", "list", "patch", "watch"],
        "postgresql.cnpg.io|clusters|": crud,
        "postgresql.cnpg.io|scheduledbackups|": crud,
        "postgresql.cnpg.io|databases|": ["create", "get", "list", "patch", "watch"],
        "rabbitmq.com|rabbitmqclusters|": crud,
        "rabbitmq.com|vhosts|": ["create", "get", "list", "patch", "watch"],
        "rabbitmq.com|users|": ["create", "get", "list", "patch", "watch"],
        "rabbitmq.com|permissions|": ["create", "get", "list", "patch", "watch"],
        "cert-manager.io|certificates|": crud,
        "events.k8s.io|events|": ["create", "patch"],
        "|pods|": ["list", "patch"],
    });
    assert_eq!(result["cluster"], expected, "the ClusterRole");
    let leases = json!({
        "coordination.k8s.io|leases|": ["create"],
        "coordination.k8s.io|leases|sales-operator": ["get", "update"],
    });
    assert_eq!(
        result["roles_default"],
        json!({"sales-operator-leader-election": leases}),
        "only the leader-election Role, in the release namespace"
    );
    // Watching one namespace: a Role there instead of the ClusterRole.
    assert_eq!(result["cluster_roles_one_ns"], 0);
    assert_eq!(result["roles_one_ns"]["shops"], expected);
    assert_eq!(result["roles_one_ns"]["sales-operator"], leases);
    assert_eq!(result["service_account"], result["pod_account"]);
    for binding in result["bindings"].as_array().unwrap() {
        assert_eq!(binding[2], result["service_account"], "{binding}");
        assert_eq!(binding[3], "sales-operator", "{binding}");
    }
}

#[test]
fn the_operator_deployment_probes_elects_a_leader_and_runs_restricted() {
    let result = python(
        r##"
out = {}
for vf in values_files("sales-operator"):
    objs = rendered_objects("sales-operator", vf)
    dep = of_kind(objs, "Deployment")[0]
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    config = [cm for cm in of_kind(objs, "ConfigMap")
              if cm["metadata"]["name"] == c["envFrom"][0]["configMapRef"]["name"]][0]
    svc = of_kind(objs, "Service")[0]
    sms = of_kind(objs, "ServiceMonitor")
    pdbs = of_kind(objs, "PodDisruptionBudget")
    out[label(vf)] = {
        "replicas": dep["spec"]["replicas"],
        "args": c["args"],
        "env": {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c.get("env", [])},
        "config": config["data"],
        "ports": {p["name"]: p["containerPort"] for p in c["ports"]},
        "liveness": [c["livenessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["port"]],
        "readiness": [c["readinessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["port"]],
        "resources": c.get("resources", {}),
        "pod_security": pod["spec"].get("securityContext", {}),
        "security": c.get("securityContext", {}),
        "checksum": pod["metadata"].get("annotations", {}).get("checksum/config"),
        "service_port": [svc["spec"]["ports"][0]["port"], svc["spec"]["ports"][0]["targetPort"]],
        "service_selects_pods": all(pod["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items()),
        "monitor_port": [sms[0]["spec"]["endpoints"][0]["port"], sms[0]["spec"]["endpoints"][0]["path"]] if sms else None,
        "monitor_honors_labels": sms[0]["spec"]["endpoints"][0].get("honorLabels") if sms else None,
        "monitor_selects_service": all(svc["metadata"]["labels"].get(k) == v for k, v in sms[0]["spec"]["selector"]["matchLabels"].items()) if sms else None,
        "pdb": bool(pdbs),
        "image": c["image"],
        "name_label": pod["metadata"]["labels"].get("app.kubernetes.io/name"),
    }
# The checksum follows the settings: a new log level rolls the pods.
a = of_kind(rendered_objects("sales-operator"), "Deployment")[0]
b = of_kind(rendered_objects("sales-operator", None, {"operator": {"logLevel": "debug"}}), "Deployment")[0]
c = of_kind(rendered_objects("sales-operator", None, {"replicaCount": 2}), "Deployment")[0]
key = lambda d: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
out["checksum_changes_with_config"] = key(a) != key(b)
out["checksum_stays_without_config_change"] = key(a) == key(c)
emit(out)
"##,
        &[],
    );
    let version = workspace_version();
    for (values, d) in result.as_object().unwrap() {
        if !d.is_object() {
            continue;
        }
        assert_eq!(d["args"], json!(["run"]), "{values}");
        // Leader election identity and Lease namespace from the downward API.
        assert_eq!(d["env"]["POD_NAME"], "metadata.name", "{values}");
        assert_eq!(d["env"]["POD_NAMESPACE"], "metadata.namespace", "{values}");
        let port = d["ports"]["metrics"].as_u64().expect("a `metrics` port");
        assert_eq!(
            d["config"]["METRICS_ADDR"],
            format!("0.0.0.0:{port}"),
            "{values}: METRICS_ADDR is the container's metrics port"
        );
        assert!(d["config"]["LEASE_NAME"].is_string(), "{values}");
        assert_eq!(d["liveness"], json!(["/health", "metrics"]), "{values}");
        assert_eq!(d["readiness"], json!(["/ready", "metrics"]), "{values}");
        assert!(
            d["resources"]["requests"].is_object() && d["resources"]["limits"].is_object(),
            "{values}: requests and limits"
        );
        assert_eq!(d["pod_security"]["runAsNonRoot"], true, "{values}");
        assert_eq!(
            d["pod_security"]["seccompProfile"]["type"], "RuntimeDefault",
            "{values}"
        );
        assert_eq!(d["security"]["allowPrivilegeEscalation"], false, "{values}");
        assert_eq!(d["security"]["readOnlyRootFilesystem"], true, "{values}");
        assert_eq!(
            d["security"]["capabilities"]["drop"],
            json!(["ALL"]),
            "{values}"
        );
        assert!(d["checksum"].is_string(), "{values}: checksum/config");
        assert_eq!(d["service_port"][1], "metrics", "{values}");
        assert_eq!(d["service_selects_pods"], true, "{values}");
        // Every SalesSystem's NetworkPolicies admit the operator to the broker's
        // management API by this label (operator/src/children/network.rs).
        assert_eq!(d["name_label"], "sales-operator", "{values}");
    }
    let default = &result["default values"];
    assert_eq!(default["replicas"], 1);
    assert_eq!(
        default["image"],
        format!("ghcr.io/sales-system/sales-operator:{version}"),
        "the default image is the chart's appVersion, the workspace's version"
    );
    assert_eq!(
        default["ports"]["metrics"], 9090,
        "the operator's default port"
    );
    assert!(default["monitor_port"].is_null() && default["pdb"] == false);
    let all_on = &result["charts/sales-operator/ci/all-on-values.yaml"];
    assert_eq!(all_on["replicas"], 2, "two replicas, one leading");
    assert_eq!(all_on["pdb"], true);
    assert_eq!(all_on["monitor_port"], json!(["metrics", "/metrics"]));
    // The operator's series keep their SalesSystem `namespace` and `service` labels.
    assert_eq!(all_on["monitor_honors_labels"], json!(true));
    assert_eq!(all_on["monitor_selects_service"], true);
    assert!(
        all_on["image"].as_str().unwrap().contains("@sha256:"),
        "a digest pins the image: {}",
        all_on["image"]
    );
    assert_eq!(result["checksum_changes_with_config"], true);
    assert_eq!(result["checksum_stays_without_config_change"], true);
}

/// Found attacking issue 11: behind an ingress with no trusted proxies every client is
/// the ingress's address, and one client's wrong passwords throttle everyone. The
/// chart's notes say so when it is installed that way.
#[test]
fn the_notes_warn_about_an_ingress_without_trusted_proxies() {
    let result = python(
        r##"
def notes(values):
    rendered = render("sales-system", values)
    return rendered[[t for t in rendered if t.endswith("NOTES.txt")][0]]
ingress = {"enabled": True, "host": "shop.example.com"}
emit({
    "untrusted": "WARNING" in notes({"gateway": {"ingress": ingress}}),
    "trusted": "WARNING" in notes({"gateway": {"ingress": ingress, "trustedProxies": ["10.0.0.0/8"]}}),
    "no_ingress": "WARNING" in notes({}),
})
"##,
        &[],
    );
    assert_eq!(
        result,
        serde_json::json!({"untrusted": true, "trusted": false, "no_ingress": false})
    );
}

#[test]
fn both_charts_have_a_helm_test_hook_and_notes() {
    let result = python(
        r##"
out = {}
for chart in CHARTS:
    rendered = render(chart)
    hooks = [o for _, o in objects(rendered)
             if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    notes = [t for t in rendered if t.endswith("NOTES.txt")]
    off = objects(render(chart, {"tests": {"enabled": False}}))
    out[chart] = {
        "hooks": [[h["kind"], " ".join(h["spec"]["containers"][0]["command"])] + [e.get("value", "") for e in h["spec"]["containers"][0].get("env", [])] for h in hooks],
        "notes": bool(notes and rendered[notes[0]].strip()),
        "hooks_when_off": sum(1 for _, o in off if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"),
    }
emit(out)
"##,
        &[],
    );
    let operator = &result["sales-operator"];
    let system = &result["sales-system"];
    for (chart, r) in [("sales-operator", operator), ("sales-system", system)] {
        assert_eq!(r["hooks"].as_array().unwrap().len(), 1, "{chart}: {r}");
        assert_eq!(r["hooks"][0][0], "Pod", "{chart}");
        assert_eq!(r["notes"], true, "{chart}: NOTES.txt");
        assert_eq!(r["hooks_when_off"], 0, "{chart}: tests.enabled=false");
    }
    let operator_hook = operator["hooks"][0].to_string();
    assert!(
        operator_hook.contains("/ready")
            && operator_hook.contains("sales-operator.sales-operator.svc:9090"),
        "the operator's test calls its /ready: {operator_hook}"
    );
    let system_hook = system["hooks"][0].to_string();
    assert!(
        system_hook.contains("http://shop-gateway.sales.svc:8080")
            && system_hook.contains("/ready"),
        "the system's test calls the gateway: {system_hook}"
    );
}

// ------------------------------------------------------------------ values and docs

#[test]
fn every_value_is_documented_checked_by_the_schema_and_listed_in_the_readme() {
    let result = python(
        r##"
KEY = re.compile(r'^(\s*)([A-Za-z0-9_.\-/]+):(?:\s+(.*))?$')

def keys_and_docs(path):
    """[(dotted key, `# --` description or None)] in file order."""
    stack, comment, out = [], [], []
    for line in open(path).read().split("\n"):
        s = line.strip()
        if not s:
            comment = []
            continue
        if s.startswith("#"):
            comment.append(s)
            continue
        m = KEY.match(line)
        if not m:
            comment = []
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        doc = next((" ".join([c[4:].strip()] + [x.lstrip("#").strip() for x in comment[i + 1:]]).strip()
                    for i, c in enumerate(comment) if c.startswith("# --")), None)
        out.append((dotted, doc))
        stack.append((indent, key))
        comment = []
    return out

def lookup(values, dotted):
    for k in dotted.split("."):
        values = values[k]
    return values

import helm_python as helm
report = {}
for chart in CHARTS:
    path = os.path.join(chart_dir(chart), "values.yaml")
    values = yaml.safe_load(open(path))
    docs = keys_and_docs(path)
    documented = {k for k, d in docs if d}
    under_doc = lambda k: any(".".join(k.split(".")[:i]) in documented for i in range(1, k.count(".") + 1))
    undocumented = [k for k, d in docs
                    if not d and not (isinstance(lookup(values, k), dict) and lookup(values, k))
                    and not under_doc(k)]
    empty_docs = [k for k, d in docs if d is not None and not d]
    table = [k for k in documented if not under_doc(k)]
    readme = open(os.path.join(chart_dir(chart), "README.md")).read()
    # The table after the `values-table` marker.
    table_text = readme.split("<!-- values-table", 1)[1].split("\n\n", 1)[0] if "<!-- values-table" in readme else ""
    listed = set(re.findall(r"^\| `([^`]+)` \|", table_text, re.M))
    schema = json.load(open(os.path.join(chart_dir(chart), "values.schema.json")))
    # Every top-level value is in the schema, and the schema refuses what is not.
    rejected = {}
    with helm.Chart.load(chart_dir(chart)) as ch:
        for name, bad in (("unknown top-level key", {"replicaCountt": 1}),
                          ("wrong type", {"image": {"pullPolicy": "Sometimes"}})):
            try:
                ch.validate_schema(bad)
                rejected[name] = False
            except helm.HelmValuesError:
                rejected[name] = True
        for vf in values_files(chart):
            ch.validate_schema(load_values(vf))
    report[chart] = {
        "undocumented": undocumented,
        "empty_docs": empty_docs,
        "not_in_readme": sorted(set(table) - listed),
        "readme_extra": sorted(listed - set(table)),
        "not_in_schema": sorted(set(values) - set(schema.get("properties", {}))),
        "schema_closed": schema.get("additionalProperties") is False,
        "rejected": rejected,
        "keys": len(docs),
    }
emit(report)
"##,
        &[],
    );
    for (chart, r) in result.as_object().unwrap() {
        assert!(r["keys"].as_u64().unwrap() > 20, "{chart}: {r}");
        for key in [
            "undocumented",
            "empty_docs",
            "not_in_readme",
            "readme_extra",
            "not_in_schema",
        ] {
            assert!(
                r[key].as_array().unwrap().is_empty(),
                "charts/{chart}: {key}: {:#}",
                r[key]
            );
        }
        assert_eq!(r["schema_closed"], true, "{chart}: unknown values refused");
        for (case, refused) in r["rejected"].as_object().unwrap() {
            assert_eq!(
                refused, true,
                "{chart}: values.schema.json accepts an {case}"
            );
        }
    }
}

#[test]
fn the_charts_versions_are_the_workspaces() {
    let result = python(
        r##"
out = {}
for chart in CHARTS:
    out[chart] = load_yaml(os.path.join(chart_dir(chart), "Chart.yaml"))["appVersion"]
crd = os.path.join(chart_dir("sales-operator"), "crds", "salessystem.yaml")
out["crd_default_tag"] = crd_schema(crd, "v1alpha1")["properties"]["spec"]["properties"]["image"]["properties"]["tag"]["default"]
out["rendered_tag"] = of_kind(rendered_objects("sales-system"), "SalesSystem")[0]["spec"]["image"]["tag"]
emit(out)
"##,
        &[],
    );
    let version = workspace_version();
    for key in [
        "sales-operator",
        "sales-system",
        "crd_default_tag",
        "rendered_tag",
    ] {
        assert_eq!(
            result[key], version,
            "{key}: image tags default to the workspace's version"
        );
    }
}

// ------------------------------------------------------------------ skaffold

/// The workspace's binaries (`cargo metadata`, offline, no dependencies).
fn workspace_binaries() -> BTreeSet<String> {
    let out = run_tool(
        sales_testkit::cargo_command()
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(workspace())
            .stderr(std::process::Stdio::null()),
    );
    let metadata: Value = serde_json::from_str(out.trim()).expect("cargo metadata JSON");
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn skaffold_yaml_passes_the_v4beta14_schema_with_every_profile() {
    let result = python(
        r##"
import jsonschema
schema_path = os.path.join(SCHEMAS, "skaffold-v4beta14.json")
if not os.path.isfile(schema_path):
    raise SystemExit(f"{schema_path} is missing (testdata/schemas/)")
schema = json.load(open(schema_path))
config = load_yaml(os.path.join(WS, "skaffold.yaml"))
validator = jsonschema.Draft7Validator(schema)

def errors(c):
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}" for e in validator.iter_errors(c)]

def pointer(doc, path):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    for p in parts[:-1]:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc, parts[-1]

def apply(c, patch):
    """RFC 6902 add/replace/remove, as skaffold applies a profile's patches."""
    parent, last = pointer(c, patch["path"])
    op = patch.get("op", "replace")
    if isinstance(parent, list):
        i = len(parent) if last == "-" else int(last)
        if op == "add":
            parent.insert(i, patch["value"])
        elif op == "replace":
            parent[i] = patch["value"]
        elif op == "remove":
            del parent[i]
    else:
        if op == "replace" and last not in parent:
            raise SystemExit(f"replace of a missing {patch['path']}")
        if op in ("add", "replace"):
            parent[last] = patch["value"]
        elif op == "remove":
            del parent[last]

report = {"base": errors(config), "profiles": {}}
for profile in config.get("profiles") or []:
    c = copy.deepcopy(config)
    for section in ("build", "deploy", "manifests", "test", "portForward"):
        if section in profile:
            c[section] = profile[section]
    for patch in profile.get("patches") or []:
        apply(c, patch)
    c.pop("profiles", None)
    report["profiles"][profile["name"]] = errors(c)
report["apiVersion"] = config.get("apiVersion")
emit(report)
"##,
        &[],
    );
    assert_eq!(result["apiVersion"], "skaffold/v4beta14");
    assert!(
        result["base"].as_array().unwrap().is_empty(),
        "skaffold.yaml: {:#}",
        result["base"]
    );
    assert!(
        result["profiles"]
            .as_object()
            .unwrap()
            .contains_key("local"),
        "a profile for local clusters: {result}"
    );
    for (name, errors) in result["profiles"].as_object().unwrap() {
        assert!(
            errors.as_array().unwrap().is_empty(),
            "skaffold.yaml with profile {name}: {errors:#}"
        );
    }
}

#[test]
fn skaffold_builds_each_binary_once_and_the_charts_run_exactly_those_images() {
    let binaries = workspace_binaries();
    assert!(binaries.contains("sales-operator"), "{binaries:?}");
    let result = python(
        r##"
import helm_python as helm
config = load_yaml(os.path.join(WS, "skaffold.yaml"))
artifacts = config["build"]["artifacts"]
releases = config["deploy"]["helm"]["releases"]

def sanitize(name):
    return re.sub(r"[./:-]", "_", name)

def parse_reference(ref):
    """repository, tag, digest of `repo[:tag][@digest]`."""
    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1:]
    return ref, tag, digest

def normalize(ref):
    """Docker's reading of a reference (docker.io/library/ for one-part names)."""
    repo, tag, digest = parse_reference(ref)
    first = repo.split("/")[0]
    if "/" not in repo:
        repo = "docker.io/library/" + repo
    elif not ("." in first or ":" in first or first == "localhost"):
        repo = "docker.io/" + repo
    return repo + (":" + tag if tag else "") + ("@" + digest if digest else "")

def pushed_name(image, default_repo):
    """skaffold's default-repo rewriting (docs: environment/image-registries)."""
    if not default_repo:
        return image
    if "gcr.io" in default_repo.split("/")[0] or "-docker.pkg.dev" in default_repo.split("/")[0]:
        return image if image.startswith(default_repo + "/") else f"{default_repo}/{image}"
    return f"{default_repo}/{re.sub(r'[./:]', '_', image)}"[:256]

def env_for(builds):
    """The variables skaffold gives setValueTemplates (pkg/skaffold/helm/args.go)."""
    env = {}
    for image, built in builds.items():
        repo, tag, digest = parse_reference(built)
        for k, v in {"IMAGE_REPO": repo, "IMAGE_TAG": tag, "IMAGE_DIGEST": digest,
                     "IMAGE_FULLY_QUALIFIED": built}.items():
            env[f"{k}_{sanitize(image)}"] = v
    return env

def expand(templates, env):
    """Go text/template with sprig, as skaffold expands setValueTemplates, through
    Helm's engine (the same): a throwaway chart, one template per value, the
    variables as its values."""
    keys = sorted(templates)
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "templates"))
        with open(os.path.join(d, "Chart.yaml"), "w") as f:
            f.write("apiVersion: v2\nname: skaffold-env\nversion: 0.0.0\n")
        for i, k in enumerate(keys):
            with open(os.path.join(d, "templates", f"v{i}.yaml"), "w") as f:
                f.write("{{ with .Values }}" + templates[k] + "{{ end }}")
        with helm.Chart.load(d) as ch:
            out = ch.render(env, name="x", namespace="x")
    return {k: out[f"skaffold-env/templates/v{i}.yaml"] for i, k in enumerate(keys)}

problems = []
bins = {a["docker"]["buildArgs"]["BIN"]: a for a in artifacts}
if len(bins) != len(artifacts):
    problems.append("two artifacts build the same BIN")
for a in artifacts:
    if a["image"] != a["docker"]["buildArgs"]["BIN"]:
        problems.append(f"artifact {a['image']}: name it after its binary, {a['docker']['buildArgs']['BIN']} (see skaffold.yaml's header)")
    if a["docker"].get("dockerfile", "Dockerfile") != "Dockerfile" or a.get("context", ".") != ".":
        problems.append(f"artifact {a['image']}: not the workspace's Dockerfile")
policy = config["build"].get("tagPolicy", {})
if "gitCommit" not in policy:
    problems.append(f"tagPolicy is {policy}, not gitCommit")

# Build results as skaffold reports them for pushed images: tag@digest, one commit tag.
scenarios = ["registry.example.com/team", "localhost:5001", "europe-docker.pkg.dev/proj/sales", ""]
checked = []
for default_repo in scenarios:
    builds = {}
    for i, a in enumerate(artifacts):
        builds[a["image"]] = f"{pushed_name(a['image'], default_repo)}:3f2c1a9@sha256:{i:064x}"
    env = env_for(builds)
    referenced = set()
    for r in releases:
        chart = os.path.basename(r["chartPath"])
        values = {}
        for k, v in (r.get("setValues") or {}).items():
            values = deep_merge(values, helm.parse_set_string(f"{k}={v}"))
        expanded = expand(r.get("setValueTemplates") or {}, env)
        for k, v in expanded.items():
            # skaffold drops a trailing "@" (an empty digest), then passes --set.
            values = deep_merge(values, helm.parse_set_string(f"{k}={str(v).removesuffix('@')}"))
        objs = objects(render(chart, values))
        for d in of_kind(objs, "Deployment"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                referenced.add(normalize(c["image"]))
        for s in of_kind(objs, "SalesSystem"):
            img = s["spec"]["image"]
            for svc in ("gateway", "customer", "product", "inventory", "order", "payment", "shipping", "notification"):
                # services.<svc>.image, else the operator's ImageSpec::of:
                # {repository}/{service}-service:{tag}
                whole = ((s["spec"].get("services") or {}).get(svc) or {}).get("image")
                referenced.add(normalize(whole) if whole else
                               normalize(f"{img['repository'].rstrip('/')}/{svc}-service:{img['tag']}"))
    built = {normalize(parse_reference(b)[0] + ":" + parse_reference(b)[1]) for b in builds.values()}
    built_pinned = {normalize(b) for b in builds.values()}
    referenced_unpinned = {parse_reference(r)[0] + ":" + parse_reference(r)[1] for r in referenced}
    checked.append({
        "default_repo": default_repo,
        "not_run": sorted(built - referenced_unpinned),
        "not_built": sorted(referenced_unpinned - built),
        "pinned": sorted(r for r in referenced if "@" in r and r not in built_pinned),
    })
emit({"bins": sorted(bins), "problems": problems, "scenarios": checked,
      "releases": [os.path.basename(r["chartPath"]) for r in releases]})
"##,
        &[],
    );
    let problems = result["problems"].as_array().unwrap();
    assert!(problems.is_empty(), "skaffold.yaml: {problems:#?}");
    let bins: BTreeSet<String> = strings(&result["bins"]).into_iter().collect();
    for bin in &bins {
        assert!(
            binaries.contains(bin),
            "skaffold builds BIN={bin}, which is no binary of the workspace ({binaries:?})"
        );
    }
    let expected: BTreeSet<String> = binaries
        .iter()
        .filter(|b| b.as_str() != "xtask")
        .cloned()
        .collect();
    assert_eq!(
        bins, expected,
        "one artifact per binary that runs on Kubernetes (all but xtask)"
    );
    assert_eq!(bins.len(), 9);
    assert_eq!(
        strings(&result["releases"]),
        ["sales-operator", "sales-system"],
        "the operator (and its CRD) first, then the system"
    );
    for s in result["scenarios"].as_array().unwrap() {
        for key in ["not_run", "not_built", "pinned"] {
            assert!(
                s[key].as_array().unwrap().is_empty(),
                "with default repo {:?}: images {key}: {:#}",
                s["default_repo"],
                s[key]
            );
        }
    }
}

// ------------------------------------------------------------------ Dockerfile

#[test]
fn the_dockerfile_passes_hadolint() {
    run_tool(
        Command::new(venv_tool("hadolint"))
            .args(["--failure-threshold", "warning"])
            .arg(workspace().join("Dockerfile")),
    );
}
