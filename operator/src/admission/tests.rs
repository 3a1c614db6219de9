//! Each check of admission, with the API server's exact words.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::errors::{go_float, go_quote};
use super::{Refusal, admit, schema};

/// A SalesSystem `shop` with this spec.
fn system(spec: Value) -> Value {
    json!({
        "apiVersion": "sales-system.io/v1alpha1",
        "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": "sales"},
        "spec": spec,
    })
}

/// The problems of a refused SalesSystem, one line each.
fn problems(object: Value) -> Vec<String> {
    match admit(&object, None) {
        Err(Refusal::Invalid { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
        other => panic!("not refused as invalid: {other:?}"),
    }
}

const NOT_CHECKED: &str = "<nil>: Invalid value: \"null\": some validation rules were not \
     checked because the object was invalid; correct the existing errors to complete validation";

#[test]
fn type_mismatch() {
    assert_eq!(
        problems(system(json!({"services": {"order": {"replicas": "two"}}}))),
        [
            "spec.services.order.replicas: Invalid value: \"string\": spec.services.order.replicas \
             in body must be of type integer: \"string\"",
            NOT_CHECKED
        ]
    );
    // A whole number written as a float is an integer.
    let stored = admit(
        &system(json!({"services": {"order": {"replicas": 3.0}}})),
        None,
    )
    .unwrap();
    assert_eq!(stored["spec"]["services"]["order"]["replicas"], json!(3));
}

#[test]
fn enumeration() {
    assert_eq!(
        problems(system(json!({"deletionPolicy": "Destroy"}))),
        [
            "spec.deletionPolicy: Unsupported value: \"Destroy\": supported values: \"Retain\", \"Delete\"",
            NOT_CHECKED
        ]
    );
}

#[test]
fn minimum_and_maximum() {
    assert_eq!(
        problems(system(
            json!({"gateway": {"serviceType": "NodePort", "nodePort": 80}})
        )),
        [
            "spec.gateway.nodePort: Invalid value: 80: spec.gateway.nodePort in body should be \
          greater than or equal to 30000"
        ]
    );
    assert_eq!(
        problems(system(json!({"services": {"order": {"replicas": 500}}}))),
        [
            "spec.services.order.replicas: Invalid value: 500: spec.services.order.replicas in body \
          should be less than or equal to 100"
        ]
    );
}

#[test]
fn min_length_max_length_and_pattern() {
    assert_eq!(
        problems(system(json!({"image": {"repository": ""}}))),
        [
            "spec.image.repository: Invalid value: \"\": spec.image.repository in body should be at \
          least 1 chars long"
        ]
    );
    assert_eq!(
        problems(system(json!({"rabbitmq": {"prefix": "p".repeat(65)}}))),
        [
            "spec.rabbitmq.prefix: Too long: may not be more than 64 bytes",
            NOT_CHECKED
        ]
    );
    assert_eq!(
        problems(system(json!({"unpaidOrderTimeout": "soon"}))),
        [
            "spec.unpaidOrderTimeout: Invalid value: \"soon\": spec.unpaidOrderTimeout in body \
          should match '^([0-9]+(ms|s|m|h|d))+$'"
        ]
    );
}

#[test]
fn items_and_max_items() {
    let many: Vec<String> = (0..33).map(|i| format!("10.0.0.{i}")).collect();
    assert_eq!(
        problems(system(json!({"gateway": {"trustedProxies": many}}))),
        [
            "spec.gateway.trustedProxies: Too many: 33: must have at most 32 items",
            NOT_CHECKED
        ]
    );
    assert_eq!(
        problems(system(json!({"gateway": {"trustedProxies": ["1"]}})))[0],
        "spec.gateway.trustedProxies[0]: Invalid value: \"1\": spec.gateway.trustedProxies[0] in \
         body should be at least 2 chars long"
    );
}

#[test]
fn min_items_and_exclusive_bounds() {
    let schema = json!({"type": "object", "properties": {
        "list": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "maximum": 1e6},
    }});
    let mut out = Vec::new();
    schema::validate(&schema, &json!({"list": [], "ratio": 0.0}), "", &mut out);
    schema::validate(&schema, &json!({"ratio": 2.0e6}), "", &mut out);
    let lines: Vec<String> = out.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "list: Invalid value: 0: list in body should have at least 1 items",
            "ratio: Invalid value: 0: ratio in body should be greater than 0",
            "ratio: Invalid value: 2e+06: ratio in body should be less than or equal to 1e+06",
        ]
    );
}

#[test]
fn integer_formats() {
    let schema = json!({"type": "object", "properties": {
        "small": {"type": "integer", "format": "int32"},
        "big": {"type": "integer", "format": "int64"},
    }});
    let mut out = Vec::new();
    let value = json!({"small": 3_000_000_000_i64, "big": 3_000_000_000_i64});
    schema::validate(&schema, &value, "", &mut out);
    let lines: Vec<String> = out.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in small"
        ]
    );
}

#[test]
fn required() {
    assert_eq!(
        problems(system(json!({"rabbitmq": {"external": {"key": "amqp"}}}))),
        [
            "spec.rabbitmq.external.secretName: Required value",
            NOT_CHECKED
        ]
    );
    let no_spec = json!({"apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
                         "metadata": {"name": "shop"}, "spec": null});
    assert_eq!(problems(no_spec), ["spec: Required value", NOT_CHECKED]);
}

#[test]
fn unknown_fields_are_refused_with_their_paths() {
    let mut object = system(json!({"gateway": {"nodeport": 1}, "auth": {"admin": {"x": [1]}}}));
    object["status"] = json!({"anything": "is dropped"});
    object["metadata"]["uid"] = json!("kept: ObjectMeta knows it");
    assert_eq!(
        admit(&object, None).unwrap_err().to_string(),
        "SalesSystem in version \"v1alpha1\" cannot be handled as a SalesSystem: strict decoding \
         error: unknown field \"spec.auth.admin.x\", unknown field \"spec.gateway.nodeport\""
    );
    let mut wrong_version = system(json!({}));
    wrong_version["apiVersion"] = json!("sales-system.io/v1");
    assert_eq!(
        admit(&wrong_version, None).unwrap_err().to_string(),
        "no matches for kind \"SalesSystem\" in version \"sales-system.io/v1\""
    );
}

#[test]
fn nullable_and_nulls() {
    // Nullable: kept (and absent for the rules). Not nullable: the default, if any.
    let spec = json!({"gateway": {"nodePort": null}, "deletionPolicy": null,
                      "postgres": {"managed": {"storage": {"size": null}}}});
    let stored = admit(&system(spec), None).unwrap();
    assert_eq!(stored["spec"]["gateway"]["nodePort"], Value::Null);
    assert_eq!(stored["spec"]["deletionPolicy"], "Retain");
    assert_eq!(
        stored["spec"]["postgres"]["managed"]["storage"],
        json!({"size": "1Gi"})
    );
    // Neither: dropped, and so missing.
    assert_eq!(
        problems(system(
            json!({"rabbitmq": {"external": {"secretName": null}}})
        )),
        [
            "spec.rabbitmq.external.secretName: Required value",
            NOT_CHECKED
        ]
    );
    // A null list item is no string.
    assert_eq!(
        problems(system(json!({"image": {"pullSecrets": [null]}}))),
        [
            "spec.image.pullSecrets[0]: Invalid value: \"null\": spec.image.pullSecrets[0] in body \
             must be of type string: \"null\"",
            NOT_CHECKED
        ]
    );
    // A null with rules below it is not evaluated.
    admit(
        &system(json!({"messaging": {"kind": "kafka", "kafka": null}})),
        None,
    )
    .unwrap();
}

#[test]
fn int_or_string() {
    let resources =
        |cpu: Value| json!({"services": {"order": {"resources": {"limits": {"cpu": cpu}}}}});
    admit(&system(resources(json!(1))), None).unwrap();
    admit(&system(resources(json!("500m"))), None).unwrap();
    assert_eq!(
        problems(system(resources(json!(true))))[0],
        "spec.services.order.resources.limits.cpu: Invalid value: \"boolean\": \
         spec.services.order.resources.limits.cpu in body must be of type integer,string: \"boolean\""
    );
}

#[test]
fn preserve_unknown_fields_and_nested_defaults() {
    let schema = json!({"type": "object", "properties": {
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                 "properties": {"known": {"type": "object", "properties": {}}}},
        "outer": {"type": "object", "default": {},
                  "properties": {"inner": {"type": "integer", "default": 7}}},
    }});
    let mut value = json!({"free": {"anything": 1, "known": {"not": 2}}, "other": 3});
    let mut unknown = Vec::new();
    schema::prune_unknown(&schema, &mut value, "", false, &mut unknown);
    assert_eq!(unknown, ["free.known.not", "other"]);
    assert_eq!(value, json!({"free": {"anything": 1, "known": {}}}));
    schema::default(&schema, &mut value);
    assert_eq!(
        value["outer"],
        json!({"inner": 7}),
        "defaults inside a default"
    );
}

#[test]
fn metadata_name_and_namespace() {
    let mut object = system(json!({}));
    object["metadata"] = json!({"name": "Shop", "namespace": "a.b"});
    let lines = problems(object);
    assert_eq!(
        lines[0],
        "metadata.name: Invalid value: \"Shop\": a lowercase RFC 1123 subdomain must consist of \
         lower case alphanumeric characters, '-' or '.', and must start and end with an \
         alphanumeric character (e.g. 'example.com', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    assert_eq!(
        lines[1],
        "metadata.namespace: Invalid value: \"a.b\": must not contain dots"
    );
    // Not blocking: the rules on the name run too.
    assert_eq!(
        lines[2],
        "<nil>: Invalid value: \"object\": a SalesSystem's name must be a DNS label that starts \
         with a letter (it names Services)"
    );
}

#[test]
fn several_problems_are_listed_one_per_line() {
    let object = system(
        json!({"redis": {"managed": {}, "external": {"secretName": "r"}},
                               "gateway": {"nodePort": 30080}}),
    );
    assert_eq!(
        admit(&object, None).unwrap_err().to_string(),
        "The SalesSystem \"shop\" is invalid: \n\
         * spec.gateway: Invalid value: \"object\": gateway.nodePort needs serviceType NodePort\n\
         * spec.redis: Invalid value: \"object\": redis: give either managed or external, not both"
    );
}

#[test]
fn transition_rules_only_on_an_update() {
    let kafka = |replicas: i64| {
        system(json!({"messaging": {"kind": "kafka", "kafka": {
            "managed": {"replicas": replicas}, "replicationFactor": 3}}}))
    };
    admit(&kafka(5), None).unwrap();
    admit(&kafka(3), Some(&kafka(3))).unwrap();
    let err = admit(&kafka(5), Some(&kafka(3))).unwrap_err().to_string();
    assert!(err.contains("spec.messaging.kafka: Invalid value: \"object\": messaging.kafka.managed.replicas cannot change"), "{err}");
}

#[test]
fn every_rule_of_the_crd_compiles_with_kube_cel() {
    fn walk(compiled: &kube_cel::CompiledSchema, count: &mut usize) {
        for rule in &compiled.validations {
            assert!(rule.is_ok(), "{:?}", rule.as_ref().err());
            *count += 1;
        }
        compiled.properties.values().for_each(|c| walk(c, count));
        compiled.items.iter().for_each(|c| walk(c, count));
        compiled
            .additional_properties
            .iter()
            .for_each(|c| walk(c, count));
    }
    let schema = super::Admission::sales_system().unwrap().schema;
    let mut count = 0;
    walk(&kube_cel::compile_schema(&schema), &mut count);
    assert!(count >= 20, "{count} rules");
}

#[test]
fn patterns_read_perl_classes_as_go_does() {
    use super::schema::go_regex;
    assert_eq!(
        go_regex(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
        r"^[^@\t\n\x0C\r ]+@[^@\t\n\x0C\r ]+\.[^@\t\n\x0C\r ]+$"
    );
    assert_eq!(go_regex(r"^\d+\W$"), r"^[0-9]+[^0-9A-Za-z_]$");
    assert_eq!(go_regex(r"[[:alpha:]\]x]\."), r"[[:alpha:]\]x]\.");
    // U+00A0 is whitespace to Rust's `\s`, not to Go's: the address is accepted.
    let spec = json!({"auth": {"admin": {"email": "admin\u{a0}x@example.com"}}});
    admit(&system(spec), None).unwrap();
    assert_eq!(
        problems(system(
            json!({"auth": {"admin": {"email": "a b@example.com"}}})
        ))[0],
        "spec.auth.admin.email: Invalid value: \"a b@example.com\": spec.auth.admin.email in body \
         should match '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'"
    );
}

#[test]
fn values_print_as_go_prints_them() {
    assert_eq!(go_quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\x01é\"");
    assert_eq!(go_float(30000.0), "30000");
    assert_eq!(go_float(1.5), "1.5");
    assert_eq!(go_float(1_000_000.0), "1e+06");
    assert_eq!(go_float(0.00001), "1e-05");
}
