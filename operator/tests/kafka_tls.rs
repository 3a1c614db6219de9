//! Kafka under `spec.tls` (issue 15), as rendered:
//!
//! - the managed Kafka serves its client listener over SASL_SSL with a certificate
//!   for every name a client reaches it by (the bootstrap Service and each node's
//!   advertised name), from a PEM key store an init container writes from the server
//!   Secret (a PKCS#8 key, what Kafka reads; cert-manager is asked for that
//!   encoding); the listeners between the nodes stay plaintext; the services speak
//!   `sasl_ssl` and verify it with the system's CA;
//! - a Kafka created on Strimzi gets a `tls: true` listener (9093, or 9095 with
//!   SCRAM), an existing one is reached on those ports, and the services verify it
//!   with Strimzi's cluster CA (`<cluster>-cluster-ca-cert`);
//! - external brokers on `SSL` / `SASL_SSL` are verified with `tls.externalCA` when
//!   given, else the public roots;
//! - every rendered object passes `kubernetes-validate --strict`, the Kafka
//!   Strimzi's CRD, the Certificate cert-manager's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::SystemTime;

use sales_operator::children::{KnownSecrets, desired, desired_with, tls};
use sales_operator::crd::SalesSystem;
use serde_json::{Value, json};

const NS: &str = "sales";

fn parse(spec: Value) -> SalesSystem {
    let text = json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": NS, "uid": "u1"},
        "spec": spec,
    })
    .to_string();
    sales_operator::render::parse(&text).unwrap_or_else(|e| panic!("{e:#}"))
}

fn children(system: &SalesSystem) -> Vec<Value> {
    desired(system)
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect()
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(String::from))
}

/// The order service's plain settings (its ConfigMap) and its pod's volumes.
fn order_service(objects: &[Value]) -> (Value, String) {
    let config = common::find(objects, "ConfigMap", "shop-order")["data"].clone();
    let volumes =
        common::find(objects, "Deployment", "shop-order")["spec"]["template"]["spec"]["volumes"]
            .to_string();
    (config, volumes)
}

fn validate(objects: &[Value], stem: &str) {
    let dir = common::scratch_dir(stem);
    let builtin: Vec<Value> = objects
        .iter()
        .filter(|o| {
            o["apiVersion"]
                .as_str()
                .is_some_and(|v| !v.contains('.') || v.contains("k8s.io"))
        })
        .cloned()
        .collect();
    let file = dir.join("builtin.yaml");
    std::fs::write(&file, sales_operator::yaml::documents(&builtin)).unwrap();
    let report = common::validate_strict(&file);
    assert_eq!(
        report.matches(" passed ").count(),
        builtin.len(),
        "{stem}: {report}"
    );
}

fn custom_resources(objects: &[Value], kind: &str, crd: &str, stem: &str) {
    let of_kind: Vec<Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .cloned()
        .collect();
    assert!(!of_kind.is_empty(), "no {kind}");
    let file = common::scratch_dir(stem).join(format!("{kind}.yaml"));
    std::fs::write(&file, sales_operator::yaml::documents(&of_kind)).unwrap();
    let results = common::validate_custom_resources(None, &common::workspace().join(crd), &[file]);
    assert_eq!(results.len(), of_kind.len());
    for (file, errors) in results {
        assert!(errors.is_empty(), "{kind}: {file}: {errors:?}");
    }
}

fn managed(tls: Value) -> SalesSystem {
    parse(json!({
        "tls": tls,
        "messaging": {"kind": "kafka", "kafka": {"managed": {"replicas": 3}}},
    }))
}

#[test]
fn the_managed_kafka_serves_its_clients_over_sasl_ssl_with_a_pem_key_store() {
    let system = managed(json!({"mode": "operatorCA"}));
    let objects = children(&system);
    let sts = common::find(&objects, "StatefulSet", "shop-kafka");
    let pod = &sts["spec"]["template"]["spec"];
    let kafka = &pod["containers"][0];
    assert_eq!(
        env(kafka, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").as_deref(),
        Some("CLIENT:SASL_SSL,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT")
    );
    assert_eq!(
        env(kafka, "KAFKA_SSL_KEYSTORE_TYPE").as_deref(),
        Some("PEM")
    );
    // No trust store: nobody presents a certificate to the brokers.
    assert_eq!(env(kafka, "KAFKA_SSL_TRUSTSTORE_LOCATION"), None);
    let keystore = env(kafka, "KAFKA_SSL_KEYSTORE_LOCATION").unwrap();
    let keystore_dir = keystore.rsplit_once('/').unwrap().0;
    let mounted = |container: &Value, volume: &str| -> Value {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .cloned()
            .unwrap_or_else(|| panic!("{volume} not mounted in {}", container["name"]))
    };
    // Kafka reads the key store where the init container wrote it.
    let store_mount = mounted(kafka, "kafka-keystore");
    assert_eq!(store_mount["mountPath"], keystore_dir);
    assert_eq!(store_mount["readOnly"], true);
    // The image takes an advertised `...SSL://` listener for its own JKS set-up.
    let advertised = env(kafka, "KAFKA_ADVERTISED_LISTENERS").unwrap();
    assert!(!advertised.contains("SSL://"), "{advertised}");
    // Every variable once: the plaintext map is replaced, not doubled.
    let names: Vec<&str> = kafka["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");

    // The init container writes key and chain where Kafka reads them, in memory.
    let init = &pod["initContainers"][0];
    assert_eq!(init["name"], "kafka-keystore");
    let script = init["command"][2].as_str().unwrap();
    assert!(
        script
            .contains("/etc/sales-system/server-tls/tls.key /etc/sales-system/server-tls/tls.crt")
            && script.ends_with(&format!("> {keystore}")),
        "{script}"
    );
    assert_eq!(mounted(init, "kafka-keystore")["mountPath"], keystore_dir);
    assert_eq!(
        mounted(init, "server-tls")["mountPath"],
        "/etc/sales-system/server-tls"
    );
    assert_eq!(init["image"], kafka["image"]);
    assert_eq!(init["securityContext"], kafka["securityContext"]);
    assert_eq!(init["securityContext"]["readOnlyRootFilesystem"], true);
    let volumes = pod["volumes"].as_array().unwrap();
    let store = volumes
        .iter()
        .find(|v| v["name"] == "kafka-keystore")
        .unwrap();
    assert_eq!(store["emptyDir"]["medium"], "Memory");
    let secret = volumes.iter().find(|v| v["name"] == "server-tls").unwrap();
    assert_eq!(secret["secret"]["secretName"], "shop-kafka-tls");

    // The services log in over TLS and verify with the system's CA.
    let (config, volumes) = order_service(&objects);
    assert_eq!(config["KAFKA_SECURITY_PROTOCOL"], "sasl_ssl");
    assert_eq!(config["KAFKA_SASL_MECHANISM"], "PLAIN");
    assert_eq!(
        config["KAFKA_SSL_CA_LOCATION"],
        "/etc/sales-system/tls/ca.crt"
    );
    assert_eq!(
        config["KAFKA_BOOTSTRAP_SERVERS"],
        "shop-kafka.sales.svc:9092"
    );
    assert!(volumes.contains("shop-tls-ca"), "{volumes}");
    validate(&objects, "kafka-tls-managed");
}

#[test]
fn the_managed_kafkas_certificate_names_every_node_and_has_a_pkcs8_key() {
    let system = managed(json!({"mode": "operatorCA"}));
    let server = tls::servers(
        &sales_operator::children::names::Names::new("shop", NS),
        &system.spec,
    )
    .into_iter()
    .find(|s| s.secret == "shop-kafka-tls")
    .expect("a server certificate for Kafka");
    for name in [
        "shop-kafka.sales.svc",
        "shop-kafka-0.shop-kafka-nodes.sales.svc",
        "shop-kafka-2.shop-kafka-nodes.sales.svc.cluster.local",
    ] {
        assert!(
            server.dns_names.iter().any(|n| n == name),
            "{name}: {:?}",
            server.dns_names
        );
    }
    let now = SystemTime::now();
    let ca = tls::new_ca("shop", now).unwrap();
    let issued = tls::issue(&ca, &server.dns_names, now).unwrap();
    assert!(
        issued[tls::KEY_KEY].starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8, which Kafka's PEM key store reads: {}",
        issued[tls::KEY_KEY]
    );

    // With cert-manager: the Certificate asks for PKCS#8 for Kafka (only), with the
    // same names, and cert-manager's schema takes it.
    let system = managed(
        json!({"mode": "certManager", "issuerRef": {"name": "internal-ca", "kind": "ClusterIssuer"}}),
    );
    let objects = children(&system);
    let certificate = common::find(&objects, "Certificate", "shop-kafka-tls");
    assert_eq!(certificate["spec"]["privateKey"]["encoding"], "PKCS8");
    let names = certificate["spec"]["dnsNames"].to_string();
    assert!(
        names.contains("shop-kafka-1.shop-kafka-nodes.sales.svc"),
        "{names}"
    );
    let others = objects
        .iter()
        .filter(|o| o["kind"] == "Certificate" && o["metadata"]["name"] != "shop-kafka-tls");
    for other in others {
        assert!(
            other["spec"]["privateKey"].get("encoding").is_none(),
            "{other}"
        );
    }
    custom_resources(
        &objects,
        "Certificate",
        "testdata/schemas/cert-manager.io_certificates.yaml",
        "kafka-tls-certificates",
    );
    // cert-manager's Secret carries the CA the services verify with.
    let (config, volumes) = order_service(&objects);
    assert_eq!(
        config["KAFKA_SSL_CA_LOCATION"],
        "/etc/sales-system/tls/ca.crt"
    );
    // (the first server Secret it uses: one issuer signs them all)
    assert!(volumes.contains("shop-order-db-tls"), "{volumes}");
    validate(&objects, "kafka-tls-cert-manager");
}

fn strimzi(authentication: &str, create: bool) -> SalesSystem {
    let mut strimzi = json!({"clusterName": "events", "authentication": authentication});
    if create {
        strimzi["create"] = json!({});
    }
    let prefix = if authentication == "none" {
        ""
    } else {
        "shop."
    };
    parse(json!({
        "tls": {"mode": "operatorCA"},
        "messaging": {"kind": "kafka", "kafka": {"strimzi": strimzi, "topicPrefix": prefix}},
    }))
}

#[test]
fn strimzi_listeners_are_tls_and_verified_with_strimzis_cluster_ca() {
    for (authentication, port, protocol, listener) in [
        ("none", 9093, "ssl", "tls"),
        ("scram-sha-512", 9095, "sasl_ssl", "scramtls"),
    ] {
        let objects = children(&strimzi(authentication, true));
        let kafka = common::find(&objects, "Kafka", "events");
        let listeners = &kafka["spec"]["kafka"]["listeners"];
        assert_eq!(listeners.as_array().unwrap().len(), 1, "{listeners}");
        assert_eq!(listeners[0]["name"], listener);
        assert_eq!(listeners[0]["port"], port);
        assert_eq!(listeners[0]["tls"], true);
        custom_resources(
            &objects,
            "Kafka",
            "testdata/schemas/kafka.strimzi.io_kafkas.yaml",
            &format!("kafka-tls-strimzi-{listener}"),
        );
        let (config, volumes) = order_service(&objects);
        assert_eq!(config["KAFKA_SECURITY_PROTOCOL"], protocol);
        assert_eq!(
            config["KAFKA_BOOTSTRAP_SERVERS"],
            format!("events-kafka-bootstrap.sales.svc:{port}")
        );
        assert_eq!(
            config["KAFKA_SSL_CA_LOCATION"],
            "/etc/sales-system/tls/kafka-ca.crt"
        );
        assert!(
            volumes.contains("events-cluster-ca-cert") && volumes.contains("kafka-ca.crt"),
            "{volumes}"
        );
        validate(&objects, &format!("kafka-tls-strimzi-{listener}-builtin"));
    }
    // An existing Kafka: the same ports, the same CA.
    for (authentication, port) in [("none", 9093), ("scram-sha-512", 9095)] {
        let objects = children(&strimzi(authentication, false));
        assert!(objects.iter().all(|o| o["kind"] != "Kafka"));
        let (config, volumes) = order_service(&objects);
        assert_eq!(
            config["KAFKA_BOOTSTRAP_SERVERS"],
            format!("events-kafka-bootstrap.sales.svc:{port}")
        );
        assert!(volumes.contains("events-cluster-ca-cert"), "{volumes}");
    }
}

/// A CA Strimzi renews rolls the services that trust it (librdkafka reads its CA
/// file once): their pods carry its digest, as read by the reconcile.
#[test]
fn a_renewed_strimzi_cluster_ca_rolls_the_services() {
    let system = strimzi("none", false);
    let digest = |ca: &str| {
        let read = BTreeMap::from([(
            "events-cluster-ca-cert".to_owned(),
            BTreeMap::from([("ca.crt".to_owned(), ca.to_owned())]),
        )]);
        let known = KnownSecrets {
            tls: Some(&read),
            ..KnownSecrets::default()
        };
        let objects: Vec<Value> = desired_with(&system, None, known)
            .unwrap()
            .iter()
            .map(|c| serde_json::to_value(&c.object).unwrap())
            .collect();
        common::find(&objects, "Deployment", "shop-order")["spec"]["template"]["metadata"]
            ["annotations"]["sales-system.io/tls-hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (before, after) = (digest("first CA"), digest("renewed CA"));
    assert!(!before.is_empty());
    assert_ne!(before, after);
    assert_eq!(
        tls::strimzi_ca_read(&system.spec).as_deref(),
        Some("events-cluster-ca-cert"),
        "the reconcile reads it"
    );
    assert_eq!(
        tls::strimzi_ca_read(&managed(json!({"mode": "operatorCA"})).spec),
        None
    );
}

#[test]
fn external_brokers_on_tls_are_verified_with_the_external_ca_or_the_public_roots() {
    let external = |protocol: &str, tls: Value| {
        let mut external =
            json!({"bootstrapServers": "kafka.example.com:9093", "securityProtocol": protocol});
        if protocol.starts_with("SASL_") {
            external["credentialsSecret"] = json!({"secretName": "kafka-login"});
        }
        parse(json!({
            "tls": tls,
            "messaging": {"kind": "kafka", "kafka": {"external": external}},
        }))
    };
    let with_ca = json!({"mode": "operatorCA", "externalCA": {"secretName": "their-ca"}});
    let (config, volumes) = order_service(&children(&external("SASL_SSL", with_ca.clone())));
    assert_eq!(config["KAFKA_SECURITY_PROTOCOL"], "sasl_ssl");
    assert_eq!(config["KAFKA_SASL_MECHANISM"], "PLAIN");
    assert_eq!(
        config["KAFKA_SSL_CA_LOCATION"],
        "/etc/sales-system/tls/external-ca.crt"
    );
    assert!(volumes.contains("their-ca"), "{volumes}");
    // Plaintext to an external Kafka: its CA is not mounted for it.
    let (config, volumes) = order_service(&children(&external("PLAINTEXT", with_ca)));
    assert!(config.get("KAFKA_SSL_CA_LOCATION").is_none(), "{config}");
    assert!(!volumes.contains("their-ca"), "{volumes}");
    // SSL without externalCA (or without spec.tls): the public roots.
    for tls in [json!({"mode": "operatorCA"}), json!({"mode": "off"})] {
        let (config, volumes) = order_service(&children(&external("SSL", tls)));
        assert_eq!(config["KAFKA_SECURITY_PROTOCOL"], "ssl");
        assert!(config.get("KAFKA_SSL_CA_LOCATION").is_none(), "{config}");
        assert!(!volumes.contains("external-ca.crt"), "{volumes}");
    }
}
