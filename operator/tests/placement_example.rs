//! `examples/salessystem-placement.yaml` (docs/operator/high-availability.md): the
//! CRD keeps and accepts its placement fields and refuses a malformed one, what it
//! renders passes `kubernetes-validate --strict`, and its data tier lands on the
//! tainted pool. Needs the Python tools (`SALES_TOOLS_VENV`, `cargo xtask test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn example() -> std::path::PathBuf {
    common::workspace().join("examples/salessystem-placement.yaml")
}

fn pod<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    let workload = objects
        .iter()
        .find(|o| {
            (o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
                && o["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no workload {name}"));
    &workload["spec"]["template"]["spec"]
}

fn data_toleration() -> Value {
    json!({"key": "dedicated", "operator": "Equal", "value": "data", "effect": "NoSchedule"})
}

/// The CRD's schema and rules on `files` (validate_custom_resources.py): the errors
/// of each SalesSystem.
fn crd_errors(files: &[&Path]) -> Vec<Value> {
    let output = Command::new(common::python())
        .arg(common::tool_script("validate_custom_resources.py"))
        .arg(common::workspace().join("operator/crd/salessystem.yaml"))
        .args(files)
        .output()
        .expect("run validate_custom_resources.py");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["errors"].clone())
        .collect()
}

/// The fields of `value` the schema does not know, which the API server would drop.
fn pruned(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}.{key}");
                if let Some(property) = schema["properties"].get(key) {
                    pruned(property, child, &here, out);
                } else if schema["additionalProperties"].is_object() {
                    pruned(&schema["additionalProperties"], child, &here, out);
                } else {
                    out.push(here);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pruned(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_crd_keeps_and_accepts_the_example_and_refuses_a_malformed_placement() {
    let example = example();
    let crd: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(common::workspace().join("operator/crd/salessystem.yaml"))
            .unwrap(),
    )
    .unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let system: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    let mut unknown = Vec::new();
    pruned(
        &schema["properties"]["spec"],
        &system["spec"],
        "spec",
        &mut unknown,
    );
    assert_eq!(unknown, Vec::<String>::new(), "fields the CRD would prune");
    let mut wrong = system.clone();
    wrong["spec"]["placement"]["tolerations"] = json!({"key": "dedicated"});
    let wrong_file = common::scratch_dir("placement-crd").join("wrong.yaml");
    std::fs::write(&wrong_file, serde_json::to_string(&wrong).unwrap()).unwrap();
    let errors = crd_errors(&[&example, &wrong_file]);
    assert_eq!(errors[0], json!([]), "{errors:?}");
    assert!(
        errors[1]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("spec.placement.tolerations")),
        "{errors:?}"
    );
}

#[test]
fn what_the_example_renders_validates_and_the_data_tier_is_on_its_pool() {
    let example = example();
    let yaml = common::operator(&["render", "-f", &example.display().to_string()]);
    let rendered: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    let file = common::scratch_dir("placement").join("rendered.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let report = common::validate_strict(&file);
    assert_eq!(
        report.matches(" passed ").count(),
        rendered.len(),
        "{report}"
    );

    let on_data_pool = |name: &str| {
        let pod = pod(&rendered, name);
        pod["nodeSelector"] == json!({"node-pool": "data"})
            && pod["tolerations"] == json!([data_toleration()])
    };
    for name in ["shop-ha-order-db", "shop-ha-product-db", "shop-ha-rabbitmq"] {
        assert!(on_data_pool(name), "{name}: {}", pod(&rendered, name));
    }
    for name in ["shop-ha-redis", "shop-ha-gateway", "shop-ha-order"] {
        assert!(!on_data_pool(name), "{name}");
        assert_eq!(
            pod(&rendered, name)["nodeSelector"],
            json!({"node-pool": "general"})
        );
    }
    let zone = &pod(&rendered, "shop-ha-order-db")["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(zone["key"], "topology.kubernetes.io/zone");
    assert_eq!(zone["values"], json!(["europe-west1-b"]));
    let gateway = &pod(&rendered, "shop-ha-gateway")["topologySpreadConstraints"];
    assert_eq!(gateway[0]["whenUnsatisfiable"], "DoNotSchedule");
    let own = json!({"matchLabels": {
        "app.kubernetes.io/instance": "shop-ha",
        "sales-system.io/component": "gateway",
    }});
    assert_eq!(gateway[0]["labelSelector"], own);
    assert_eq!(gateway[1]["labelSelector"], own);
}
