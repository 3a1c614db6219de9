//! `sales-operator render` refuses what `kubectl apply` would, with the API server's
//! words: every SalesSystem of `tests/invalid/` (the rule's message where its
//! `# expect:` is a CEL rule's, the field path of its `# field:` line otherwise), unknown
//! fields (`--validate=strict`), and transition rules on an update (`--old`); and it
//! accepts every example, and specs that leave defaulted fields out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sales_operator::render;
use serde_json::Value;

fn invalid_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/invalid")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 26, "{} fixtures", files.len());
    files
}

/// The value of a `# <key>: ` line of a fixture.
fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("# {key}: ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// Every `message` of the CRD's `x-kubernetes-validations`.
fn rule_messages() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                    out.extend(
                        rules
                            .iter()
                            .filter_map(|r| r["message"].as_str().map(String::from)),
                    );
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let crd = serde_json::to_value(sales_operator::crd::crd()).unwrap();
    let mut out = Vec::new();
    walk(&crd, &mut out);
    assert!(out.len() >= 10, "{out:?}");
    out
}

/// What the fixture's refusal must contain: the rule's message, or `<field>: `.
fn expected_text(file: &Path, text: &str, messages: &[String]) -> String {
    let expect = header(text, "expect")
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
    if messages.iter().any(|m| m.contains(expect)) {
        expect.to_owned()
    } else {
        let field = header(text, "field").unwrap_or_else(|| {
            panic!(
                "{}: {expect:?} is no CEL rule's message, so the fixture needs a `# field:` line",
                file.display()
            )
        });
        format!("{field}: ")
    }
}

fn render_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .arg("render")
        .args(args)
        .output()
        .expect("run sales-operator render")
}

#[test]
fn every_invalid_salessystem_is_refused_by_parse_with_the_api_servers_words() {
    let messages = rule_messages();
    for file in invalid_fixtures() {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = expected_text(&file, &text, &messages);
        let err = match render::parse(&text) {
            Ok(_) => panic!("{} is accepted", file.display()),
            Err(err) => format!("{err:#}"),
        };
        assert!(
            err.contains(&expected),
            "{}: expected {expected:?} in\n{err}",
            file.display()
        );
        let name = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("metadata: {name: ")
                    .or(l.trim().strip_prefix("name: "))
            })
            .map(|n| n.split([',', '}']).next().unwrap_or(n).trim())
            .unwrap();
        assert!(
            err.starts_with(&format!("The SalesSystem {name:?} is invalid: ")),
            "{}: {err}",
            file.display()
        );
    }
}

#[test]
fn the_cli_exits_non_zero_with_the_refusal_on_stderr() {
    let messages = rule_messages();
    for file in invalid_fixtures() {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = expected_text(&file, &text, &messages);
        let output = render_cli(&["-f", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{} rendered", file.display());
        assert!(
            output.stdout.is_empty(),
            "{}: nothing printed",
            file.display()
        );
        assert!(
            stderr.contains("is invalid: ") && stderr.contains(&expected),
            "{}: expected {expected:?} on stderr:\n{stderr}",
            file.display()
        );
    }
}

#[test]
fn schema_checks_read_as_the_api_server_writes_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let refusal = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        format!("{:#}", render::parse(&text).unwrap_err())
    };
    assert_eq!(
        refusal("deletion-policy-unknown.yaml"),
        "The SalesSystem \"bad\" is invalid: \n\
         * spec.deletionPolicy: Unsupported value: \"Destroy\": supported values: \"Retain\", \"Delete\"\n\
         * <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
    );
    assert_eq!(
        refusal("node-port-out-of-range.yaml"),
        "The SalesSystem \"bad\" is invalid: spec.gateway.nodePort: Invalid value: 80: \
         spec.gateway.nodePort in body should be greater than or equal to 30000"
    );
    assert_eq!(
        refusal("timeout-not-a-duration.yaml"),
        "The SalesSystem \"bad\" is invalid: spec.unpaidOrderTimeout: Invalid value: \"soon\": \
         spec.unpaidOrderTimeout in body should match '^([0-9]+(ms|s|m|h|d))+$'"
    );
    assert_eq!(
        refusal("kafka-two-nodes.yaml"),
        "The SalesSystem \"shop\" is invalid: spec.messaging.kafka: Invalid value: \"object\": \
         messaging.kafka.managed.replicas: 1, or 3 or more (a quorum of two nodes survives no loss)"
    );
    assert_eq!(
        refusal("name-starts-with-digit.yaml"),
        "The SalesSystem \"1shop\" is invalid: <nil>: Invalid value: \"object\": a SalesSystem's \
         name must be a DNS label that starts with a letter (it names Services)"
    );
}

#[test]
fn every_example_is_accepted() {
    for example in common::examples() {
        let text = std::fs::read_to_string(&example).unwrap();
        if let Err(err) = render::parse(&text) {
            panic!("{} is refused: {err:#}", example.display());
        }
    }
    let minimal = common::workspace().join("examples/salessystem-minimal.yaml");
    let output = render_cli(&["-f", minimal.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("kind: Deployment"));
}

const HEAD: &str = "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {name: shop, namespace: sales}\n";

#[test]
fn unknown_fields_are_refused_with_their_paths_as_kubectl_validate_strict_does() {
    let text = format!(
        "{HEAD}spec:\n  gateway: {{serviceType: NodePort, nodeport: 30080}}\n  services:\n    order: {{replicas: 2, replica: 3}}\n"
    );
    let err = format!("{:#}", render::parse(&text).unwrap_err());
    assert_eq!(
        err,
        "SalesSystem in version \"v1alpha1\" cannot be handled as a SalesSystem: strict decoding \
         error: unknown field \"spec.gateway.nodeport\", unknown field \"spec.services.order.replica\""
    );
    let at_the_top = format!("{HEAD}spec: {{}}\nextra: 1\n");
    let err = format!("{:#}", render::parse(&at_the_top).unwrap_err());
    assert!(err.ends_with("unknown field \"extra\""), "{err}");
    let in_metadata = "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {name: shop, labelz: {a: b}}\nspec: {}\n";
    let err = format!("{:#}", render::parse(in_metadata).unwrap_err());
    assert!(err.ends_with("unknown field \"metadata.labelz\""), "{err}");
}

#[test]
fn defaulted_fields_may_be_left_out_the_defaults_apply_before_the_rules() {
    for spec in [
        "spec: {}",
        "spec:\n  autoscaling:\n    order: {enabled: true}",
        "spec:\n  autoscaling:\n    order: {enabled: true, minReplicas: 0, scaleToZero: true}",
        "spec:\n  messaging:\n    kind: kafka\n    kafka:\n      external: {bootstrapServers: \"kafka:9092\"}",
        "spec:\n  messaging: {kind: kafka, kafka: {managed: {replicas: 3}}}",
        "spec:\n  gateway: {serviceType: NodePort, nodePort: 30080}",
        "spec:\n  rabbitmq:\n    managed:\n      storage: {size: null}",
        "spec:\n  postgres:\n    managed:\n      storage: null",
    ] {
        let text = format!("{HEAD}{spec}\n");
        if let Err(err) = render::parse(&text) {
            panic!("{spec:?} is refused: {err:#}");
        }
    }
    let system = render::parse(&format!(
        "{HEAD}spec:\n  rabbitmq:\n    managed:\n      storage: {{size: null}}\n"
    ))
    .unwrap();
    assert_eq!(
        system.spec.managed_rabbitmq().map(|b| b.storage.size.0),
        Some("1Gi".to_owned())
    );
}

#[test]
fn a_missing_spec_or_name_is_required() {
    let err = format!(
        "{:#}",
        render::parse(
            "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {name: shop}\n"
        )
        .unwrap_err()
    );
    assert!(err.contains("* spec: Required value"), "{err}");
    let err = format!(
        "{:#}",
        render::parse(
            "apiVersion: sales-system.io/v1alpha1\nkind: SalesSystem\nmetadata: {}\nspec: {}\n"
        )
        .unwrap_err()
    );
    assert!(
        err.contains("metadata.name: Required value: name or generateName is required"),
        "{err}"
    );
}

/// A transition rule (`oldSelf`) is checked on an update only: `render --old`.
#[test]
fn resizing_the_managed_kafka_is_refused_as_an_update() {
    let old_path = common::workspace().join("examples/salessystem-kafka.yaml");
    let old = std::fs::read_to_string(&old_path).unwrap();
    let mut value: Value = serde_yaml_ng::from_str(&old).unwrap();
    value["spec"]["messaging"]["kafka"]["managed"]["replicas"] = 5.into();
    let resized = serde_json::to_string(&value).unwrap();
    render::parse(&resized).expect("created at that size: fine");
    let err = format!("{:#}", render::parse_update(&resized, &old).unwrap_err());
    assert!(err.contains("managed.replicas cannot change"), "{err}");
    value["spec"]["messaging"]["kafka"]["managed"]["replicas"] = 3.into();
    value["spec"]["messaging"]["kafka"]["partitions"] = 12.into();
    let unchanged = serde_json::to_string(&value).unwrap();
    // The example runs 3 nodes: more partitions is not a resize.
    render::parse_update(&unchanged, &old).expect("only the partitions changed");

    let dir = common::scratch_dir("render-old");
    let new_path = dir.join("resized.yaml");
    std::fs::write(&new_path, &resized).unwrap();
    let output = render_cli(&[
        "-f",
        new_path.to_str().unwrap(),
        "--old",
        old_path.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("managed.replicas cannot change"),
        "{stderr}"
    );
}

/// The CRD's rule on `gateway.trustedProxies` (a long RE2 pattern) judges as the
/// Python validator does in `schema_validation.rs` (cel-python there, kube-cel here).
#[test]
fn trusted_proxies_are_judged_as_the_crds_rule_judges_them() {
    let accepted = [
        "10.0.0.0/8",
        "0.0.0.0/0",
        "255.255.255.255",
        "::",
        "::/0",
        "2001:db8::/32",
        "2001:db8:0:0:0:0:0:1/128",
        "1:2:3:4:5:6:7::",
        "::ffff:192.0.2.1",
        "64:ff9b::192.0.2.1",
        "2001:DB8::A",
    ];
    let refused = [
        "proxy.example.com",
        "10.0.0.0/33",
        "10.0.0.256",
        "010.0.0.1",
        "10.0.0.0/8/8",
        " 10.0.0.1",
        "2001:db8::/129",
        "2001:db8:::1",
        "1:2:3:4:5:6:7:8:9",
        "fe80::1%eth0",
    ];
    for entry in accepted.iter().chain(&refused) {
        let text = format!("{HEAD}spec:\n  gateway:\n    trustedProxies: [{entry:?}]\n");
        let result = render::parse(&text);
        assert_eq!(
            result.is_ok(),
            accepted.contains(entry),
            "{entry:?}: {:?}",
            result.err().map(|e| format!("{e:#}"))
        );
    }
}
