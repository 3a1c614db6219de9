//! `sales-operator run`: the admin endpoint, leader election, then the controller
//! that watches SalesSystems and every kind of child they own.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::{Client, Resource};
use sales_platform::config::TelemetryArgs;
use tokio_util::sync::CancellationToken;

use crate::autoscaling::scaler::Scaler;
use crate::children::names::{LABEL_MANAGED_BY, MANAGER};
use crate::crd::SalesSystem;
use crate::events::{Recorder, Reporter};
use crate::leader::{LeaderElector, LeaseTiming};
use crate::metrics::{self, Metrics};
use crate::optional_kinds::{self, OptionalKinds};
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
    /// How often the cluster is asked which optional kinds (ServiceMonitor,
    /// KafkaTopic) it serves, to watch one once its CRD is installed.
    pub optional_kinds_refresh: std::time::Duration,
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
            sales_platform::shutdown::signal().await;
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
            optional_kinds_refresh: optional_kinds::REFRESH,
        };
        run(client, settings, metrics, shutdown).await
    })
}

/// rustls needs its crypto provider chosen before the first TLS connection.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
///
/// Optional kinds (ServiceMonitor, KafkaTopic) are watched only while the cluster
/// serves them: a watch of a kind that is not served fails on every retry. Discovery
/// is asked every `optional_kinds_refresh`; when the set of served kinds changes (a
/// CRD installed or removed), the controller's watches are rebuilt: the running
/// reconciles finish, the controller starts again with the new watch set, and its
/// first listing reconciles every system, so a ServiceMonitor is applied and watched
/// without a restart of the operator.
pub async fn controller(
    client: Client,
    settings: &Settings,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let stopping = CancellationToken::new();
    {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            stop.await;
            stopping.cancel();
        });
    }
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
    let kinds = Arc::new(OptionalKinds::new(
        client.clone(),
        settings.optional_kinds_refresh,
    ));
    let mut ctx = Context::new(client.clone(), recorder, metrics);
    ctx.requeue_not_ready = settings.requeue_not_ready;
    ctx.operator_namespace = Some(settings.lease_namespace.clone());
    ctx.kinds = kinds.clone();
    let ctx = Arc::new(ctx);
    let mut served = BTreeSet::new();
    while !stopping.is_cancelled() {
        served = kinds.served_now(&served).await;
        tracing::info!(optional_kinds = ?served, "watching");
        let changed = CancellationToken::new();
        let watch_kinds = tokio::spawn(notice_change(
            kinds.clone(),
            served.clone(),
            changed.clone(),
            stopping.clone(),
        ));
        let controller = build(&client, &settings.watch_namespace, &served);
        let scaler_stop = stopping.child_token();
        let scaling = tokio::spawn(scaler.clone().run(
            controller.store(),
            settings.scale_interval,
            scaler_stop.clone(),
        ));
        let run_stop = {
            let (changed, stopping) = (changed.clone(), stopping.clone());
            async move {
                tokio::select! {
                    _ = changed.cancelled() => {}
                    _ = stopping.cancelled() => {}
                }
            }
        };
        controller
            .graceful_shutdown_on(run_stop)
            .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => tracing::debug!(object = %object.name, "reconciled"),
                    Err(err) => tracing::debug!(error = %err, "reconcile did not complete"),
                }
            })
            .await;
        scaler_stop.cancel();
        let _ = scaling.await;
        watch_kinds.abort();
        if changed.is_cancelled() && !stopping.is_cancelled() {
            tracing::info!("the optional kinds the cluster serves changed: rebuilding the watches");
        }
    }
}

/// The controller with its watches: SalesSystems, every built-in child kind, and
/// the optional kinds in `served`.
fn build(
    client: &Client,
    ns: &Option<String>,
    served: &BTreeSet<String>,
) -> Controller<SalesSystem> {
    let children = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let mut controller = Controller::new(
        api_for::<SalesSystem>(client, ns),
        watcher::Config::default(),
    )
    .owns(api_for::<Deployment>(client, ns), children.clone())
    .owns(api_for::<StatefulSet>(client, ns), children.clone())
    .owns(api_for::<CronJob>(client, ns), children.clone())
    .owns(api_for::<Service>(client, ns), children.clone())
    .owns(api_for::<ConfigMap>(client, ns), children.clone())
    .owns(api_for::<Secret>(client, ns), children.clone())
    .owns(api_for::<PodDisruptionBudget>(client, ns), children.clone())
    .owns(api_for::<NetworkPolicy>(client, ns), children.clone())
    .owns(api_for::<Ingress>(client, ns), children.clone());
    for resource in optional_kinds::all() {
        if !served.contains(&optional_kinds::key(&resource)) {
            continue;
        }
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        controller = controller.owns_with(api, resource, children.clone());
    }
    controller
}

/// Ask discovery every refresh whether the optional kinds served are still
/// `served`; cancel `changed` when not.
async fn notice_change(
    kinds: Arc<OptionalKinds>,
    served: BTreeSet<String>,
    changed: CancellationToken,
    stopping: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tokio::time::sleep(kinds.refresh()) => {}
        }
        if kinds.served_now(&served).await != served {
            changed.cancel();
            return;
        }
    }
}
