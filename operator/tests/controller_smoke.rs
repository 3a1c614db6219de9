//! The controller loop itself — leader election, watches, reconcile, requeue,
//! finalizer — against a served API: kmock (`tests/tools/kmock_apiserver.py`) on a
//! free port, with a kube `Client` pointed at it. Needs the Python tools
//! (`cargo xtask test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use sales_operator::controller::{Settings, run};
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::leader::LeaseTiming;
use sales_operator::metrics::Metrics;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NS: &str = "sales";

/// The served API; killed when dropped.
struct ApiServer {
    child: Child,
    port: u16,
}

impl ApiServer {
    fn start() -> ApiServer {
        let mut child = Command::new(common::python())
            .arg(common::tool_script("kmock_apiserver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the kmock API server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server announces its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        ApiServer { child, port }
    }

    fn client(&self) -> Client {
        let url = format!("http://127.0.0.1:{}", self.port)
            .parse()
            .expect("URL");
        let mut config = kube::Config::new(url);
        config.default_namespace = NS.into();
        Client::try_from(config).expect("client")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` until it holds (or fail after `secs`).
async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn example(file: &str) -> SalesSystem {
    let path = common::workspace().join("examples").join(file);
    sales_operator::render::parse(&std::fs::read_to_string(path).expect("example"))
        .expect("a SalesSystem")
}

async fn deployment_names(client: &Client) -> Vec<String> {
    Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .map(|l| l.items.iter().map(|d| d.name_any()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_loop_reconciles_against_a_served_api() {
    sales_operator::controller::install_crypto_provider();
    let server = ApiServer::start();
    let client = server.client();
    let systems = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);

    // A system whose external broker Secret does not exist yet.
    let mut system = example("salessystem.yaml");
    system.metadata.namespace = Some(NS.into());
    system.spec.rabbitmq = serde_json::from_value(json!({
        "external": {"secretName": "broker", "key": "url"}
    }))
    .expect("broker spec");
    systems
        .create(&PostParams::default(), &system)
        .await
        .expect("create the SalesSystem");

    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let settings = Settings {
        watch_namespace: Some(NS.into()),
        lease_namespace: NS.into(),
        lease_name: "sales-operator".into(),
        identity: "smoke-test".into(),
        lease_timing: LeaseTiming {
            lease_duration: Duration::from_secs(5),
            renew_every: Duration::from_secs(1),
            renew_deadline: Duration::from_secs(3),
            retry_every: Duration::from_millis(200),
        },
        requeue_not_ready: Duration::from_secs(1),
        scale_interval: Duration::from_secs(1),
        optional_kinds_refresh: Duration::from_secs(1),
    };
    let operator = tokio::spawn(run(
        client.clone(),
        settings,
        metrics.clone(),
        shutdown.clone(),
    ));

    // Leader election: the Lease names this replica.
    let leases = Api::<Lease>::namespaced(client.clone(), NS);
    eventually("the lease is held", 20, || async {
        leases
            .get_opt("sales-operator")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .as_deref()
            == Some("smoke-test")
    })
    .await;

    // Watch -> reconcile: the finalizer goes on, then the missing Secret is reported.
    eventually("the SalesSystem reports the missing Secret", 20, || async {
        systems.get("shop").await.ok().is_some_and(|s| {
            s.finalizers() == [FINALIZER]
                && s.status
                    .is_some_and(|st| st.phase.as_deref() == Some("Degraded"))
        })
    })
    .await;
    assert!(deployment_names(&client).await.is_empty());

    // Requeue: nothing about the SalesSystem changes; the Secret alone is not watched
    // for it, so only the requeue of a not-ready system picks it up.
    let broker: Secret = serde_json::from_value(json!({
        "metadata": {"name": "broker", "namespace": NS},
        "stringData": {"url": "amqp://user:pass@broker.example.com:5672/%2f"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &broker)
        .await
        .expect("create the broker Secret");
    eventually("every Deployment exists", 20, || async {
        deployment_names(&client).await.len() == 9
    })
    .await;
    eventually("the status reports generation 1", 20, || async {
        systems
            .get("shop")
            .await
            .ok()
            .and_then(|s| s.status)
            .is_some_and(|s| {
                s.observed_generation == Some(1) && s.phase.as_deref() == Some("Progressing")
            })
    })
    .await;

    // Owns: a deleted child is put back by its watch event.
    deployments
        .delete("shop-payment", &DeleteParams::default())
        .await
        .expect("delete a child");
    eventually("the deleted Deployment is back", 20, || async {
        deployments
            .get_opt("shop-payment")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;

    // A changed spec reaches the children.
    systems
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"order": {"replicas": 4}}}})),
        )
        .await
        .expect("change the spec");
    eventually("the order Deployment has 4 replicas", 20, || async {
        deployments
            .get("shop-order")
            .await
            .ok()
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
            == Some(4)
    })
    .await;
    assert!(metrics.render().contains("sales_operator_reconciles_total"));
    assert!(metrics.reconciles.get() >= 4);

    // Deletion runs the finalizer, then the object goes.
    systems
        .delete("shop", &DeleteParams::default())
        .await
        .expect("delete the SalesSystem");
    eventually("the SalesSystem is gone", 20, || async {
        systems.get_opt("shop").await.ok().flatten().is_none()
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), operator)
        .await
        .expect("the controller stops")
        .expect("task")
        .expect("a clean stop");
    let lease = leases.get("sales-operator").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "released on stop"
    );
}
