//! `sales-operator run`: the admin endpoint, leader election, then the controller
//! that watches SalesSystems and every kind of child they own.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource};
use sales_platform::config::TelemetryArgs;
use tokio_util::sync::CancellationToken;

use crate::autoscaling::scaler::Scaler;
use crate::children::names::{LABEL_MANAGED_BY, MANAGER};
use crate::children::service_monitor_resource;
use crate::crd::SalesSystem;
use crate::leader::{LeaderElector, LeaseTiming};
use crate::metrics::{self, Metrics};
use crate::reconcile::{self, Context};

/// Settings of `sales-operator run`.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Address of `/metrics`, `/health` and `/ready`.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Watch SalesSystems of this namespace only; unset: every namespace.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "sales-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease; unset: the pod name, else the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How often autoscaled consumers' queues are read and their replicas decided.
    #[arg(long, env = "SCALE_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub scale_interval: std::time::Duration,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Everything `run` needs besides the client.
#[derive(Clone, Debug)]
pub struct Settings {
    pub watch_namespace: Option<String>,
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_timing: LeaseTiming,
    /// When a system that is not ready yet is reconciled again without a watch event.
    pub requeue_not_ready: std::time::Duration,
    /// How often the scaler reads the queues of autoscaled consumers.
    pub scale_interval: std::time::Duration,
}

/// The binary's `run`: a runtime, telemetry, TLS provider, a client from the
/// environment (in-cluster or kubeconfig), SIGTERM handling.
pub fn main(args: RunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let _telemetry = sales_platform::telemetry::init("sales-operator", &args.telemetry)?;
        install_crypto_provider();
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping");
            signal.cancel();
        });
        let metrics = Arc::new(Metrics::new());
        let bound = metrics::serve(args.metrics_addr, metrics.clone(), shutdown.clone()).await?;
        tracing::info!(addr = %bound, "admin endpoint listening");
        let client = Client::try_default().await?;
        let identity = args
            .identity
            .clone()
            .or_else(|| {
                hostname::get()
                    .ok()
                    .map(|h| h.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| MANAGER.to_owned());
        let settings = Settings {
            watch_namespace: args.watch_namespace.clone(),
            lease_namespace: args.lease_namespace.clone(),
            lease_name: args.lease_name.clone(),
            identity,
            lease_timing: LeaseTiming::default(),
            requeue_not_ready: reconcile::REQUEUE_NOT_READY,
            scale_interval: args.scale_interval,
        };
        run(client, settings, metrics, shutdown).await
    })
}

/// rustls needs its crypto provider chosen before the first TLS connection.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Wait to lead, then run the controller until `shutdown` (Ok) or until the lease
/// is lost (Err: the process should exit so it never acts as a second leader).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    client.apiserver_version().await?;
    metrics.set_ready(true);
    let mut elector = LeaderElector::new(
        client.clone(),
        &settings.lease_namespace,
        &settings.lease_name,
        &settings.identity,
        settings.lease_timing.clone(),
    );
    tracing::info!(identity = %settings.identity, lease = %settings.lease_name, "waiting to lead");
    if !elector.acquire(&shutdown).await {
        return Ok(());
    }
    tracing::info!(identity = %settings.identity, "leading");
    metrics.leader.set(1);
    let lost = CancellationToken::new();
    let keeper = tokio::spawn(elector.keep(lost.clone(), shutdown.clone()));

    let stop = {
        let (lost, shutdown) = (lost.clone(), shutdown.clone());
        async move {
            tokio::select! {
                _ = lost.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
        }
    };
    controller(client, &settings, metrics.clone(), stop).await;
    metrics.leader.set(0);
    shutdown.cancel();
    let _ = keeper.await;
    if lost.is_cancelled() {
        anyhow::bail!("lost the leader lease");
    }
    Ok(())
}

fn api_for<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The controller loop: watch SalesSystems and their children, reconcile, requeue;
/// beside it, the scaler of autoscaled consumers, reading the controller's cache of
/// SalesSystems. Both stop on `stop`.
pub async fn controller(
    client: Client,
    settings: &Settings,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let stopping = CancellationToken::new();
    let stop = {
        let stopping = stopping.clone();
        async move {
            stop.await;
            stopping.cancel();
        }
    };
    let ns = &settings.watch_namespace;
    let children = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: Some(settings.identity.clone()),
        },
    );
    let scaler = Arc::new(Scaler::new(
        client.clone(),
        recorder.clone(),
        metrics.clone(),
    ));
    let mut ctx = Context::new(client.clone(), recorder, metrics);
    ctx.requeue_not_ready = settings.requeue_not_ready;
    ctx.operator_namespace = Some(settings.lease_namespace.clone());
    let ctx = Arc::new(ctx);
    let mut controller = Controller::new(
        api_for::<SalesSystem>(&client, ns),
        watcher::Config::default(),
    )
    .owns(api_for::<Deployment>(&client, ns), children.clone())
    .owns(api_for::<StatefulSet>(&client, ns), children.clone())
    .owns(api_for::<Service>(&client, ns), children.clone())
    .owns(api_for::<ConfigMap>(&client, ns), children.clone())
    .owns(api_for::<Secret>(&client, ns), children.clone())
    .owns(
        api_for::<PodDisruptionBudget>(&client, ns),
        children.clone(),
    )
    .owns(api_for::<NetworkPolicy>(&client, ns), children.clone())
    .owns(api_for::<Ingress>(&client, ns), children.clone());
    // ServiceMonitors only where the Prometheus Operator's CRD is installed.
    let monitors = service_monitor_resource();
    if service_monitors_served(&client).await {
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &monitors),
            None => Api::all_with(client.clone(), &monitors),
        };
        controller = controller.owns_with(api, monitors, children.clone());
    }
    let scaling = tokio::spawn(scaler.run(
        controller.store(),
        settings.scale_interval,
        stopping.clone(),
    ));
    controller
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(object = %object.name, "reconciled"),
                Err(err) => tracing::debug!(error = %err, "reconcile did not complete"),
            }
        })
        .await;
    stopping.cancel();
    let _ = scaling.await;
}

async fn service_monitors_served(client: &Client) -> bool {
    let resource = service_monitor_resource();
    match client.list_api_group_resources(&resource.api_version).await {
        Ok(list) => list.resources.iter().any(|r| r.name == resource.plural),
        Err(_) => false,
    }
}
