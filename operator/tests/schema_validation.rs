//! The example SalesSystems pass the CRD's schema and CEL rules, invalid ones are
//! rejected with the rule's message, and every object `render` prints for the
//! examples passes `kubernetes-validate --strict` (the ServiceMonitor: the Prometheus
//! Operator's own CRD schema). Needs the Python tools (`cargo xtask test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SERVICE_MONITOR_CRD: &str = "testdata/schemas/monitoring.coreos.com_servicemonitors.yaml";
const KAFKA_TOPIC_CRD: &str = "testdata/schemas/kafka.strimzi.io_kafkatopics.yaml";
const KAFKA_USER_CRD: &str = "testdata/schemas/kafka.strimzi.io_kafkausers.yaml";

/// Run validate_custom_resources.py: one result per object of the CRD's kind.
fn validate_custom_resources(crd: &Path, files: &[PathBuf]) -> Vec<(String, Vec<String>)> {
    validate_updates(None, crd, files)
}

/// [`validate_custom_resources`], as updates of the objects in `old` when given.
fn validate_updates(
    old: Option<&Path>,
    crd: &Path,
    files: &[PathBuf],
) -> Vec<(String, Vec<String>)> {
    common::validate_custom_resources(old, crd, files)
}

fn crd_path() -> PathBuf {
    common::workspace().join("operator/crd/salessystem.yaml")
}

#[test]
fn examples_pass_the_crd_schema_and_cel_rules() {
    let examples = common::examples();
    let results = validate_custom_resources(&crd_path(), &examples);
    assert_eq!(results.len(), examples.len(), "one SalesSystem per example");
    for (file, errors) in results {
        assert!(errors.is_empty(), "{file} is rejected: {errors:?}");
    }
}

#[test]
fn invalid_salessystems_are_rejected_with_the_rules_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/invalid")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let results = validate_custom_resources(&crd_path(), &files);
    assert_eq!(results.len(), files.len());
    for (file, errors) in results {
        let text = std::fs::read_to_string(&file).expect("fixture");
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{file} has no `# expect:` line"));
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{file}: expected an error containing {expected:?}, got {errors:?}"
        );
    }
}

/// The managed Kafka's quorum is fixed when it is made: an update that resizes it is
/// refused (a transition rule), one that changes anything else is not, and a new
/// SalesSystem of any valid size is accepted.
#[test]
fn resizing_the_managed_kafka_is_refused_on_update() {
    let old = common::workspace().join("examples/salessystem-kafka.yaml");
    let base: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    let dir = common::scratch_dir("kafka-updates");
    let variant = |file: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        edit(&mut v);
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        path
    };
    let resized = variant("resized.yaml", &|v| {
        v["spec"]["messaging"]["kafka"]["managed"]["replicas"] = 5.into();
    });
    let repartitioned = variant("repartitioned.yaml", &|v| {
        v["spec"]["messaging"]["kafka"]["partitions"] = 12.into();
    });
    let results = validate_updates(Some(&old), &crd_path(), &[resized.clone(), repartitioned]);
    assert_eq!(results.len(), 2);
    assert!(
        results[0]
            .1
            .iter()
            .any(|e| e.contains("managed.replicas cannot change")),
        "{results:?}"
    );
    assert!(results[1].1.is_empty(), "{results:?}");
    // Created at that size (no old object): fine.
    let created = validate_custom_resources(&crd_path(), &[resized]);
    assert!(created[0].1.is_empty(), "{created:?}");
}

/// The CRD's rule on `gateway.trustedProxies` refuses whatever the gateway cannot
/// parse (so a bad entry is refused at `kubectl apply`, not by a crash-looping
/// gateway), and accepts the usual forms.
#[test]
fn trusted_proxies_the_crd_accepts_are_what_the_gateway_parses() {
    use gateway_service::client_address::TrustedProxies;
    let accepted = [
        "10.0.0.0/8",
        "10.0.0.1",
        "0.0.0.0/0",
        "192.168.1.1/32",
        "172.16.0.0/12",
        "255.255.255.255",
        "::",
        "::1",
        "::/0",
        "2001:db8::/32",
        "2001:db8:0:0:0:0:0:1/128",
        "fe80::1:2",
        "fd00:1:2:3::/64",
        "1:2:3:4:5:6:7::",
        "::ffff:192.0.2.1",
        "64:ff9b::192.0.2.1",
        "2001:DB8::A",
    ];
    let refused = [
        "proxy.example.com",
        "10.0.0.0/33",
        "10.0.0",
        "10.0.0.256",
        "010.0.0.1",
        "10.0.0.0/",
        "10.0.0.0/8/8",
        " 10.0.0.1",
        "10.0.0.1,10.0.0.2",
        "2001:db8::/129",
        "2001:db8:::1",
        "1:2:3:4:5:6:7:8:9",
        "fe80::1%eth0",
        "*",
        "",
    ];
    let dir = common::scratch_dir("trusted-proxies");
    let mut files = Vec::new();
    for (i, entry) in accepted.iter().chain(&refused).enumerate() {
        let file = dir.join(format!("{i:02}.yaml"));
        let system = serde_json::json!({
            "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
            "metadata": {"name": format!("p{i}"), "namespace": "sales"},
            "spec": {"gateway": {"trustedProxies": [entry]}},
        });
        std::fs::write(&file, serde_json::to_string(&system).unwrap()).unwrap();
        files.push(file);
    }
    let results = validate_custom_resources(&crd_path(), &files);
    assert_eq!(results.len(), files.len());
    for ((_, errors), entry) in results.iter().zip(accepted.iter().chain(&refused)) {
        let crd_accepts = errors.is_empty();
        let gateway_parses = TrustedProxies::parse(entry).is_ok_and(|p| !p.is_empty());
        assert_eq!(
            crd_accepts,
            accepted.contains(entry),
            "{entry:?}: the CRD says {errors:?}"
        );
        if crd_accepts {
            assert!(
                gateway_parses,
                "{entry:?} is accepted but the gateway refuses it"
            );
        }
    }
}

/// One example rendered into files: built-in objects (and how many), ServiceMonitors,
/// and Strimzi KafkaTopics (and how many).
struct Rendered {
    builtin: PathBuf,
    builtin_count: usize,
    monitors: PathBuf,
    topics: PathBuf,
    topic_count: usize,
    /// Strimzi KafkaUsers.
    users: Vec<Value>,
    /// RabbitMQ's kinds (`rabbitmq.com/v1beta1`): a RabbitmqCluster, Vhost, User and
    /// Permission.
    rabbitmq: Vec<Value>,
}

/// Render one example into built-in objects, ServiceMonitors and KafkaTopics, as files.
fn render_split(example: &Path, dir: &Path) -> Rendered {
    let yaml = common::operator(&["render", "-f", &example.display().to_string()]);
    let mut builtin = Vec::new();
    let mut monitors = Vec::new();
    let mut topics = Vec::new();
    let mut users = Vec::new();
    let mut rabbitmq = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("rendered YAML parses");
        assert!(
            value["metadata"]["ownerReferences"].is_null(),
            "render has no uid to own children with"
        );
        if value["kind"] == "ServiceMonitor" {
            monitors.push(value);
        } else if value["kind"] == "KafkaTopic" {
            topics.push(value);
        } else if value["kind"] == "KafkaUser" {
            users.push(value);
        } else if value["apiVersion"] == "rabbitmq.com/v1beta1" {
            rabbitmq.push(value);
        } else if value["apiVersion"] == "postgresql.cnpg.io/v1" {
            // CloudNativePG's kinds: validated by its own CRDs in tests/cloudnative_pg.rs.
            continue;
        } else if value["kind"] == "Kafka" || value["kind"] == "KafkaNodePool" {
            // A Kafka created on Strimzi: validated by Strimzi's own CRDs in
            // tests/strimzi_create.rs.
            continue;
        } else {
            builtin.push(value);
        }
    }
    let stem = example
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let builtin_file = dir.join(format!("{stem}.builtin.yaml"));
    let monitor_file = dir.join(format!("{stem}.servicemonitors.yaml"));
    let topic_file = dir.join(format!("{stem}.kafkatopics.yaml"));
    std::fs::write(&builtin_file, sales_operator::yaml::documents(&builtin)).expect("write");
    std::fs::write(&monitor_file, sales_operator::yaml::documents(&monitors)).expect("write");
    std::fs::write(&topic_file, sales_operator::yaml::documents(&topics)).expect("write");
    Rendered {
        builtin: builtin_file,
        builtin_count: builtin.len(),
        monitors: monitor_file,
        topics: topic_file,
        topic_count: topics.len(),
        users,
        rabbitmq,
    }
}

#[test]
fn rendered_objects_pass_kubernetes_validate_strict() {
    let dir = common::scratch_dir("rendered");
    let validate = common::tools_venv().join("bin/kubernetes-validate");
    let mut monitor_files = Vec::new();
    let mut topic_files = Vec::new();
    let mut topics = 0;
    let mut users = Vec::new();
    let mut rabbitmq = Vec::new();
    let mut total = 0;
    for example in common::examples() {
        let rendered = render_split(&example, &dir);
        rabbitmq.extend(rendered.rabbitmq);
        let (builtin, count) = (rendered.builtin, rendered.builtin_count);
        monitor_files.push(rendered.monitors);
        topic_files.push(rendered.topics);
        topics += rendered.topic_count;
        users.extend(rendered.users);
        let output = Command::new(&validate)
            .args(["--strict", "-k", common::K8S_VERSION])
            .arg(&builtin)
            .output()
            .expect("run kubernetes-validate");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{} does not validate:\n{}",
            example.display(),
            report
                .lines()
                .filter(|l| !l.contains(" passed "))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(
            report.matches(" passed ").count(),
            count,
            "every object of {} was checked",
            example.display()
        );
        total += count;
    }
    assert!(total > 200, "{total} objects checked");

    let results = validate_custom_resources(
        &common::workspace().join(SERVICE_MONITOR_CRD),
        &monitor_files,
    );
    assert!(!results.is_empty(), "the full example has a ServiceMonitor");
    for (file, errors) in results {
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }

    // The Strimzi examples' topics, against Strimzi's own CRD (kafka.strimzi.io/v1).
    let topic_count = sales_contracts::topology::Topology::default()
        .kafka_topics()
        .len();
    assert_eq!(
        topics,
        3 * topic_count,
        "one KafkaTopic per topic, in the three Strimzi examples"
    );
    let results =
        validate_custom_resources(&common::workspace().join(KAFKA_TOPIC_CRD), &topic_files);
    assert_eq!(results.len(), 3 * topic_count);
    for (file, errors) in results {
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }

    // The SCRAM examples' KafkaUsers, against Strimzi's KafkaUser CRD.
    assert_eq!(users.len(), 2, "one KafkaUser in each SCRAM example");
    let user_file = dir.join("kafkausers.yaml");
    std::fs::write(&user_file, sales_operator::yaml::documents(&users)).expect("write");
    let results =
        validate_custom_resources(&common::workspace().join(KAFKA_USER_CRD), &[user_file]);
    assert_eq!(results.len(), 2);
    for (file, errors) in results {
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }

    // The RabbitmqCluster example's objects, against RabbitMQ's operators' CRDs.
    let mut kinds: Vec<String> = Vec::new();
    for (kind, plural) in [
        ("RabbitmqCluster", "rabbitmqclusters"),
        ("Vhost", "vhosts"),
        ("User", "users"),
        ("Permission", "permissions"),
    ] {
        let of_kind: Vec<Value> = rabbitmq
            .iter()
            .filter(|o| o["kind"] == kind)
            .cloned()
            .collect();
        let file = dir.join(format!("{plural}.yaml"));
        std::fs::write(&file, sales_operator::yaml::documents(&of_kind)).expect("write");
        let crd = common::workspace().join(format!("testdata/schemas/rabbitmq.com_{plural}.yaml"));
        let results = validate_custom_resources(&crd, &[file]);
        assert_eq!(results.len(), of_kind.len(), "every {kind} was checked");
        for (file, errors) in results {
            assert!(errors.is_empty(), "{file}: {errors:?}");
        }
        kinds.extend(of_kind.iter().map(|_| kind.to_owned()));
    }
    assert_eq!(
        kinds.len(),
        rabbitmq.len(),
        "no other rabbitmq.com kind: {rabbitmq:?}"
    );
    assert_eq!(kinds, ["RabbitmqCluster", "Vhost", "User", "Permission"]);
}

#[test]
fn render_prints_every_child_and_the_generated_secrets() {
    let full = common::workspace().join("examples/salessystem.yaml");
    let yaml = common::operator(&["render", "-f", &full.display().to_string()]);
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("YAML");
        *kinds
            .entry(value["kind"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    let expected: std::collections::BTreeMap<String, usize> = [
        ("ConfigMap", 8),
        ("Deployment", 9), // 8 services + Redis
        ("Ingress", 1),
        ("NetworkPolicy", 8 + 7 + 2),
        // the services', the databases', the broker's and Redis's
        ("PodDisruptionBudget", 8 + 7 + 2),
        ("Secret", 7 + 4), // 7 databases, broker, Redis, identity, auth
        ("Service", 8 + 7 + 2),
        ("ServiceMonitor", 1),
        ("StatefulSet", 7 + 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds, expected);
}
