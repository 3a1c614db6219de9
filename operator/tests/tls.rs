//! `spec.tls` on the fake API server: the operator's CA and server certificates are
//! made once and kept across reconciles, renewed near their end (rolling the pods
//! that mount them), with every DNS name clients use, chained to the CA; the built-in
//! servers and the services are configured for TLS; with `certManager`, the
//! Certificates (valid by cert-manager's own CRD) and, without cert-manager,
//! `ProvidersAvailable=False` (`CertManagerNotInstalled`) while the rest is applied;
//! every rendered object passes `kubernetes-validate --strict`. Needs the Python tools
//! (`SALES_TOOLS_VENV`) for the schema checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fake_api;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fake_api::FakeApi;
use kube::Client;
use kube::api::Api;
use sales_operator::children::tls;
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};

const NS: &str = "sales";
const CERTIFICATE_CRD: &str = "testdata/schemas/cert-manager.io_certificates.yaml";
const CERTIFICATES: (&str, &str, &str, &str, bool) =
    ("cert-manager.io", "v1", "certificates", "Certificate", true);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn system(tls: Value) -> String {
    json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": NS},
        "spec": {"tls": tls, "rabbitmq": {"managed": {"replicas": 3}}},
    })
    .to_string()
}

fn operator_ca() -> String {
    system(json!({"mode": "operatorCA"}))
}

fn cert_manager() -> String {
    system(
        json!({"mode": "certManager", "issuerRef": {"name": "internal-ca", "kind": "ClusterIssuer"}}),
    )
}

fn seeded(text: &str) -> (FakeApi, Client, Arc<Context>) {
    let api = FakeApi::new();
    let mut system = sales_operator::render::parse(text).unwrap();
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    api.seed("salessystems", serde_json::to_value(&system).unwrap());
    let client = api.client();
    let ctx = common::context(&client);
    (api, client, ctx)
}

async fn reconciled(ctx: &Arc<Context>, client: &Client) -> SalesSystem {
    let api = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let system = api.get("shop").await.unwrap();
    reconcile(Arc::new(system), ctx.clone())
        .await
        .expect("the reconcile succeeds");
    api.get("shop").await.unwrap()
}

fn object(api: &FakeApi, plural: &str, name: &str) -> Value {
    api.objects(plural, NS)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{plural} {name}"))
}

/// A Secret's values, decoded.
fn values(secret: &Value) -> tls::Values {
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(secret.clone()).unwrap();
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

fn pod_annotation(workload: &Value) -> Value {
    workload["spec"]["template"]["metadata"]["annotations"]["sales-system.io/tls-hash"].clone()
}

fn env_var(deployment: &Value, name: &str) -> Value {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name}"))
}

#[tokio::test]
async fn the_operators_certificates_are_made_once_with_every_name_and_kept() {
    let (api, client, ctx) = seeded(&operator_ca());
    reconciled(&ctx, &client).await;
    let ca = object(&api, "secrets", "shop-tls-ca");
    let ca_values = values(&ca);
    assert_eq!(ca["type"], "Opaque");
    let broker = object(&api, "secrets", "shop-rabbitmq-tls");
    assert_eq!(broker["type"], "kubernetes.io/tls");
    let broker_values = values(&broker);
    assert_eq!(broker_values["ca.crt"], ca_values["ca.crt"]);
    let sans = tls::subject_alt_names(&broker_values["tls.crt"]).unwrap();
    for name in [
        "shop-rabbitmq",
        "shop-rabbitmq.sales",
        "shop-rabbitmq.sales.svc",
        "shop-rabbitmq.sales.svc.cluster.local",
        "shop-rabbitmq-1.shop-rabbitmq-nodes.sales.svc",
    ] {
        assert!(sans.iter().any(|s| s == name), "{name} in {sans:?}");
    }
    for secret in [
        "shop-order-db-tls",
        "shop-customer-db-tls",
        "shop-redis-tls",
    ] {
        assert_eq!(object(&api, "secrets", secret)["type"], "kubernetes.io/tls");
    }

    // The servers mount their certificate and serve TLS only; their pods carry its digest.
    let order_db = object(&api, "statefulsets", "shop-order-db");
    let args = order_db["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("ssl=on") && args.contains("hba_file="),
        "{args}"
    );
    let db_digest = pod_annotation(&order_db);
    assert!(db_digest.is_string(), "{order_db}");
    let redis = object(&api, "deployments", "shop-redis");
    let args = redis["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("\"--port\",\"0\"") && args.contains("--tls-port"),
        "{args}"
    );
    let hba = object(&api, "configmaps", "shop-tls");
    assert!(
        hba["data"]["pg_hba.conf"]
            .as_str()
            .unwrap()
            .contains("hostssl all all all")
    );
    // The broker: AMQP and management over TLS, nothing in plaintext.
    let ports = |ports: &Value, port: &str| -> Vec<(Value, Value)> {
        let ports = ports.as_array().unwrap();
        ports
            .iter()
            .map(|p| (p["name"].clone(), p[port].clone()))
            .collect()
    };
    let service = object(&api, "services", "shop-rabbitmq");
    let expected = vec![
        (json!("amqps"), json!(5671)),
        (json!("management"), json!(15671)),
    ];
    assert_eq!(ports(&service["spec"]["ports"], "port"), expected);
    let nodes = ports(
        &object(&api, "services", "shop-rabbitmq-nodes")["spec"]["ports"],
        "port",
    );
    for port in &expected {
        assert!(nodes.contains(port), "{nodes:?}");
    }
    assert!(
        !nodes.iter().any(|(_, port)| port == 5672 || port == 15672),
        "{nodes:?}"
    );
    let broker = object(&api, "statefulsets", "shop-rabbitmq");
    let container = &broker["spec"]["template"]["spec"]["containers"][0];
    let container_ports = ports(&container["ports"], "containerPort");
    assert_eq!(container_ports[..2], expected, "{container_ports:?}");
    assert!(
        !container_ports
            .iter()
            .any(|(_, port)| port == 5672 || port == 15672),
        "{container_ports:?}"
    );
    let conf = hba["data"]["rabbitmq-tls.conf"].as_str().unwrap();
    assert!(
        conf.contains("listeners.tcp = none")
            && conf.contains("management.ssl.port = 15671")
            && !conf.contains("management.tcp"),
        "{conf}"
    );

    // The services: URLs over TLS, the CA mounted (its key never), and its digest.
    let order = object(&api, "deployments", "shop-order");
    assert_eq!(
        env_var(&order, "DATABASE_URL")["valueFrom"]["secretKeyRef"]["key"],
        "tls-url"
    );
    let url = values(&object(&api, "secrets", "shop-order-db"))["tls-url"].clone();
    assert!(
        url.ends_with("?sslmode=verify-full&sslrootcert=/etc/sales-system/tls/ca.crt"),
        "{url}"
    );
    let config = object(&api, "configmaps", "shop-order");
    assert_eq!(
        config["data"]["AMQP_TLS_CA_FILE"],
        "/etc/sales-system/tls/ca.crt"
    );
    let volumes = order["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains("shop-tls-ca") && !volumes.contains("ca.key"),
        "{volumes}"
    );
    assert!(pod_annotation(&order).is_string());
    let policy = object(&api, "networkpolicies", "shop-rabbitmq");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 5671);

    // Kept: a second reconcile reads them back and changes nothing.
    reconciled(&ctx, &client).await;
    assert_eq!(values(&object(&api, "secrets", "shop-tls-ca")), ca_values);
    assert_eq!(
        values(&object(&api, "secrets", "shop-rabbitmq-tls")),
        broker_values
    );
    assert_eq!(
        pod_annotation(&object(&api, "statefulsets", "shop-order-db")),
        db_digest
    );
}

#[tokio::test]
async fn a_certificate_near_its_end_is_renewed_and_rolls_its_pods() {
    let (api, client, ctx) = seeded(&operator_ca());
    // A CA made 100 days ago, and Redis's certificate, issued 350 days ago: 15 days left.
    let ca = tls::new_ca("shop", SystemTime::now() - 100 * DAY).unwrap();
    let old = tls::issue(
        &ca,
        &tls::dns_names("shop-redis", NS),
        SystemTime::now() - 350 * DAY,
    )
    .unwrap();
    let secret = |name: &str, type_: &str, data: &tls::Values| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": type_,
               "metadata": {"name": name, "namespace": NS},
               "stringData": data})
    };
    api.seed("secrets", secret("shop-tls-ca", "Opaque", &ca));
    api.seed(
        "secrets",
        secret("shop-redis-tls", "kubernetes.io/tls", &old),
    );
    reconciled(&ctx, &client).await;
    assert_eq!(
        values(&object(&api, "secrets", "shop-tls-ca")),
        ca,
        "the CA is kept"
    );
    let renewed = values(&object(&api, "secrets", "shop-redis-tls"));
    assert_ne!(renewed["tls.crt"], old["tls.crt"]);
    let end = tls::not_after(&renewed["tls.crt"]).unwrap();
    assert!(end > SystemTime::now() + 360 * DAY);
    assert_eq!(renewed["ca.crt"], ca["ca.crt"]);
    // Issued by the kept CA, as the new database certificates are.
    let order_db = values(&object(&api, "secrets", "shop-order-db-tls"));
    assert_eq!(order_db["ca.crt"], ca["ca.crt"]);
    // Redis's pods carry the renewed certificate's digest: they roll.
    let keys = ["tls.crt".to_owned(), "ca.crt".to_owned()];
    let digest = |v: &tls::Values| sales_operator::children::services::values_hash(v, &keys);
    let annotation = pod_annotation(&object(&api, "deployments", "shop-redis"));
    assert_eq!(annotation.as_str(), digest(&renewed).as_deref());
    assert_ne!(annotation.as_str(), digest(&old).as_deref());
}

#[tokio::test]
async fn without_cert_manager_the_rest_is_applied_and_the_status_says_so() {
    let (api, client, ctx) = seeded(&cert_manager());
    let shop = reconciled(&ctx, &client).await;
    let (status, reason, message) = common::condition(&shop, "ProvidersAvailable");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CertManagerNotInstalled")
    );
    assert!(message.contains("install cert-manager"), "{message}");
    assert_eq!(
        api.objects("deployments", NS).len(),
        9,
        "8 services and Redis"
    );
    assert!(
        api.objects("secrets", NS)
            .iter()
            .all(|s| s["metadata"]["name"] != "shop-tls-ca"),
        "no operator CA with cert-manager"
    );
    api.install(CERTIFICATES);
    let shop = reconciled(&ctx, &client).await;
    assert_eq!(common::condition(&shop, "ProvidersAvailable").0, "True");
    let certificates = api.objects("certificates", NS);
    assert_eq!(certificates.len(), 7 + 1 + 1);
    let broker = object(&api, "certificates", "shop-rabbitmq-tls");
    assert_eq!(broker["spec"]["secretName"], "shop-rabbitmq-tls");
    assert_eq!(broker["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    // The services verify with the ca.crt cert-manager writes in a server Secret.
    let order = object(&api, "deployments", "shop-order");
    let volumes = order["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(volumes.contains("shop-order-db-tls"), "{volumes}");
}

/// `render` of `text` into a file per group: built-in objects, Certificates.
fn render(text: &str, dir: &std::path::Path, stem: &str) -> (PathBuf, usize, Vec<Value>) {
    let input = dir.join(format!("{stem}.input.yaml"));
    std::fs::write(&input, text).unwrap();
    let yaml = common::operator(&["render", "-f", &input.display().to_string()]);
    let mut builtin = Vec::new();
    let mut certificates = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).unwrap();
        if value["kind"] == "Certificate" {
            certificates.push(value);
        } else {
            builtin.push(value);
        }
    }
    let file = dir.join(format!("{stem}.builtin.yaml"));
    std::fs::write(&file, sales_operator::yaml::documents(&builtin)).unwrap();
    (file, builtin.len(), certificates)
}

#[test]
fn rendered_tls_objects_pass_kubernetes_validate_and_cert_managers_schema() {
    let dir = common::scratch_dir("tls-rendered");
    let mut all_certificates = Vec::new();
    for (stem, text) in [
        ("operator-ca", operator_ca()),
        ("cert-manager", cert_manager()),
    ] {
        let (file, count, certificates) = render(&text, &dir, stem);
        all_certificates.extend(certificates);
        let report = common::validate_strict(&file);
        assert_eq!(
            report.matches(" passed ").count(),
            count,
            "{stem}: {report}"
        );
    }
    assert_eq!(all_certificates.len(), 9, "with certManager only");
    let file = dir.join("certificates.yaml");
    std::fs::write(&file, sales_operator::yaml::documents(&all_certificates)).unwrap();
    let results = common::validate_custom_resources(
        None,
        &common::workspace().join(CERTIFICATE_CRD),
        &[file],
    );
    assert_eq!(results.len(), 9);
    for (file, errors) in results {
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
}

/// CloudNativePG's own CA and an external Redis's CA (`externalCA`): mounted beside
/// each other, the URL made of CloudNativePG's `uri` with verify-full against its CA.
#[test]
fn providers_are_verified_against_their_own_cas() {
    let text = json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": NS, "uid": "u1"},
        "spec": {
            "tls": {"mode": "operatorCA", "externalCA": {"secretName": "infra-ca"}},
            "postgres": {"cloudNativePG": {}},
            "redis": {"external": {"secretName": "cache", "key": "url"}},
        },
    })
    .to_string();
    let system = sales_operator::render::parse(&text).unwrap();
    let children = sales_operator::children::desired(&system).unwrap();
    let deployment = |name: &str| -> Value {
        let child = children
            .iter()
            .find(|c| c.kind() == "Deployment" && c.name() == name)
            .unwrap_or_else(|| panic!("{name}"));
        serde_json::to_value(&child.object).unwrap()
    };
    let order = deployment("shop-order");
    assert_eq!(
        env_var(&order, "CLOUDNATIVE_PG_URI")["valueFrom"]["secretKeyRef"]["name"],
        "shop-order-pg-app"
    );
    assert_eq!(
        env_var(&order, "DATABASE_URL")["value"],
        "$(CLOUDNATIVE_PG_URI)?sslmode=verify-full&sslrootcert=/etc/sales-system/tls/postgres-ca.crt"
    );
    let volumes = order["spec"]["template"]["spec"]["volumes"].to_string();
    for wanted in [
        "shop-order-pg-ca",
        "postgres-ca.crt",
        "infra-ca",
        "external-ca.crt",
        "shop-tls-ca",
    ] {
        assert!(volumes.contains(wanted), "{wanted} in {volumes}");
    }
    // The gateway uses only Redis (external): its CA only.
    let gateway = deployment("shop-gateway");
    let volumes = gateway["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains("external-ca.crt") && !volumes.contains("shop-tls-ca"),
        "{volumes}"
    );
    let config = children
        .iter()
        .find(|c| c.kind() == "ConfigMap" && c.name() == "shop-gateway")
        .unwrap();
    assert_eq!(
        config.object.data["data"]["REDIS_TLS_CA_FILE"],
        "/etc/sales-system/tls/external-ca.crt"
    );
    // No built-in database: no pg_hba.conf; the broker's only.
    let tls_config = children.iter().find(|c| c.name() == "shop-tls").unwrap();
    assert!(tls_config.object.data["data"]["pg_hba.conf"].is_null());
}

/// A RabbitmqCluster the operator creates serves TLS with the server Secret (which
/// holds `ca.crt` too), valid by the cluster operator's own CRD; the services use
/// `amqps` on 5671 and their CA.
#[test]
fn a_created_rabbitmq_cluster_serves_the_operators_certificate() {
    let text = json!({
        "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
        "metadata": {"name": "shop", "namespace": NS},
        "spec": {"tls": {"mode": "operatorCA"}, "rabbitmq": {"cluster": {"create": {}}}},
    })
    .to_string();
    let system = sales_operator::render::parse(&text).unwrap();
    let children = sales_operator::children::desired(&system).unwrap();
    let cluster = children
        .iter()
        .find(|c| c.kind() == "RabbitmqCluster")
        .unwrap();
    let cluster = serde_json::to_value(&cluster.object).unwrap();
    assert_eq!(
        cluster["spec"]["tls"],
        json!({"secretName": "shop-rabbitmq-tls", "caSecretName": "shop-rabbitmq-tls",
               "disableNonTLSListeners": true})
    );
    let names = sales_operator::children::names_of(&system);
    let server = tls::servers(&names, &system.spec)
        .into_iter()
        .find(|s| s.secret == "shop-rabbitmq-tls")
        .unwrap();
    assert!(
        server
            .dns_names
            .iter()
            .any(|n| n == "shop-rabbitmq-server-2.shop-rabbitmq-nodes.sales.svc")
    );
    let dir = common::scratch_dir("tls-rabbitmq-cluster");
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, sales_operator::yaml::documents(&[cluster])).unwrap();
    let crd = common::workspace().join("testdata/schemas/rabbitmq.com_rabbitmqclusters.yaml");
    let results = common::validate_custom_resources(None, &crd, &[file]);
    assert_eq!(results.len(), 1);
    assert!(results[0].1.is_empty(), "{results:?}");
    let url = sales_operator::children::rabbitmq_cluster::amqp_url(
        &names,
        system.spec.rabbitmq_cluster().unwrap(),
        &tls::Values::from([
            ("username".to_owned(), "u".to_owned()),
            ("password".to_owned(), "p".to_owned()),
        ]),
        system.spec.tls.enabled(),
    );
    assert_eq!(
        url.as_deref(),
        Some("amqps://u:p@shop-rabbitmq.sales.svc:5671/sales.shop")
    );
}

/// `deletionPolicy: Retain` (the default) keeps the operator's CA with the volumes, even
/// through a foreground deletion (whose garbage collection may come before the
/// operator's cleanup): a SalesSystem of the same name signs with the same CA, so
/// clients that trust it keep trusting the servers, and the kept server certificates
/// are not reissued.
#[tokio::test]
async fn retain_keeps_the_operators_ca_through_a_foreground_deletion() {
    let (api, client, ctx) = seeded(&operator_ca());
    reconciled(&ctx, &client).await;
    let ca = values(&object(&api, "secrets", "shop-tls-ca"));
    let order_db = values(&object(&api, "secrets", "shop-order-db-tls"));

    let systems = Api::<SalesSystem>::namespaced(client.clone(), NS);
    systems
        .delete("shop", &kube::api::DeleteParams::foreground())
        .await
        .unwrap();
    let terminating = systems.get("shop").await.unwrap();
    reconcile(Arc::new(terminating), ctx.clone()).await.unwrap();
    assert!(systems.get_opt("shop").await.unwrap().is_none());
    let kept = object(&api, "secrets", "shop-tls-ca");
    assert_eq!(values(&kept), ca, "the CA is kept as it was");
    assert!(kept["metadata"]["deletionTimestamp"].is_null(), "{kept:#}");
    assert!(
        kept["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "no longer owned: {kept:#}"
    );

    let mut again = sales_operator::render::parse(&operator_ca()).unwrap();
    again.metadata.finalizers = Some(vec![FINALIZER.into()]);
    api.seed("salessystems", serde_json::to_value(&again).unwrap());
    reconciled(&ctx, &client).await;
    assert_eq!(values(&object(&api, "secrets", "shop-tls-ca")), ca);
    assert_eq!(
        values(&object(&api, "secrets", "shop-order-db-tls")),
        order_db,
        "a kept certificate of the same CA is not reissued"
    );
}

/// The CA Secret deleted by hand while the system runs (its finalizer holds it) is made
/// again with the same CA: new keys would leave every client trusting the old one.
#[tokio::test]
async fn a_ca_deleted_while_the_system_runs_comes_back_the_same() {
    let (api, client, ctx) = seeded(&operator_ca());
    reconciled(&ctx, &client).await;
    let ca = values(&object(&api, "secrets", "shop-tls-ca"));
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NS)
        .delete("shop-tls-ca", &Default::default())
        .await
        .unwrap();
    assert!(!object(&api, "secrets", "shop-tls-ca")["metadata"]["deletionTimestamp"].is_null());
    reconciled(&ctx, &client).await;
    let again = object(&api, "secrets", "shop-tls-ca");
    assert!(
        again["metadata"]["deletionTimestamp"].is_null(),
        "{again:#}"
    );
    assert_eq!(values(&again), ca);
}
