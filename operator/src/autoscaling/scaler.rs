//! The scaling loop. Every tick (15 s), for every SalesSystem with an autoscaled
//! consumer (not paused, not being deleted):
//!
//! 1. read the consumer Deployments (one LIST) and the broker's credentials;
//! 2. read every queue of each autoscaled service from the management API;
//! 3. [`decide`] with the wall clock and the window this operator remembers;
//! 4. when the replicas change, server-side apply only `spec.replicas` of
//!    `<name>-<service>-consumer` with the field manager `sales-operator-scaler`
//!    (the reconcile's apply leaves that field out, so neither overwrites the other),
//!    and publish an Event; before a scale-down, set the pods' deletion costs to the
//!    messages each holds, so idle pods go first ([`super::deletion_cost`]);
//! 5. export the numbers as metrics, and write `status.consumers` and the
//!    `ConsumersScaled` condition when something other than the live numbers changed,
//!    or the numbers are older than a minute.
//!
//! When the queues cannot be read (broker down, management API refusing, credentials
//! missing), or the broker does not report their message counts (`CountsUnreported`:
//! never read as 0), nothing is scaled: the replicas stay, `ConsumersScaled` turns
//! False with the reason, and a Warning Event says so once.
//!
//! The window of recent recommendations lives in memory: a new leader starts each
//! consumer's window at its running replicas, so it never scales down before a whole
//! window has passed (it may scale up at once).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use sales_contracts::topology::Topology;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::broker::ReadError;
use super::decide::{Decision, Policy, QueueLoad, Reading, Reason, Window, decide};
use super::deletion_cost;
use super::kafka_lag::GroupOffsets;
use super::source::{QueueSource, partition_cap, topology_of};
use crate::catalogue::AppService;
use crate::children::names::{Component, Names};
use crate::children::{self};
use crate::crd::{ConsumerStatus, QueueStatus, SalesSystem};
use crate::events::Recorder;
use crate::metrics::Metrics;
use crate::status::CONSUMERS_SCALED;

/// The field manager of the consumer Deployments' `spec.replicas`.
pub const FIELD_MANAGER: &str = "sales-operator-scaler";
/// How often the queues are read and the replicas decided.
pub const SCALE_INTERVAL: Duration = Duration::from_secs(15);
/// The live numbers in `status.consumers` (depth, rates) are rewritten at most this
/// often when nothing else changed; the metrics have them every tick.
pub const STATUS_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot build a request: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the SalesSystem has no namespace")]
    NoNamespace,
}

/// What the scaler keeps between ticks for one SalesSystem.
#[derive(Default)]
struct Memory {
    namespace: String,
    name: String,
    windows: HashMap<AppService, Window>,
    /// Kafka: each service's last offsets, for the next reading's rates.
    offsets: HashMap<AppService, (Timestamp, Vec<GroupOffsets>)>,
    /// Label values of the queue series exported, to remove them when they go.
    queues: BTreeSet<(String, String)>,
    services: BTreeSet<String>,
}

/// The scaling loop's state and clients.
pub struct Scaler {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    memory: Mutex<HashMap<String, Memory>>,
    /// See [`STATUS_REFRESH`].
    pub status_refresh: Duration,
}

/// One autoscaled service after a tick.
struct Outcome {
    service: AppService,
    status: ConsumerStatus,
    /// Why this service could not be scaled as decided (reason, message).
    failure: Option<(&'static str, String)>,
}

impl Scaler {
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Scaler {
            client,
            recorder,
            metrics,
            // The platform's builder installs the process's rustls provider (ring)
            // first; reqwest 0.13 has none of its own.
            http: sales_platform::tls::http_client_builder()
                .build()
                .unwrap_or_default(),
            memory: Mutex::new(HashMap::new()),
            status_refresh: STATUS_REFRESH,
        }
    }

    /// Every `interval`, scale every system in `store`, until `stop`.
    pub async fn run(
        self: Arc<Self>,
        store: Store<SalesSystem>,
        interval: Duration,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let systems = store.state();
            for system in &systems {
                if stop.is_cancelled() {
                    break;
                }
                if let Err(err) = self.scale(system, Timestamp::now()).await {
                    tracing::warn!(
                        name = %system.name_any(),
                        namespace = system.namespace().unwrap_or_default(),
                        error = %err,
                        "cannot scale the consumers"
                    );
                }
            }
            let keep: BTreeSet<String> = systems.iter().map(|s| key_of(s)).collect();
            self.retain(&keep);
        }
    }

    /// One tick for one system, at `now`.
    #[tracing::instrument(skip_all, fields(name = %system.name_any(), namespace = system.namespace().unwrap_or_default()))]
    pub async fn scale(&self, system: &SalesSystem, now: Timestamp) -> Result<(), Error> {
        let scaled: Vec<AppService> = system.spec.autoscaling.scaled_services().collect();
        let key = key_of(system);
        if scaled.is_empty() || system.is_paused() || system.metadata.deletion_timestamp.is_some() {
            self.forget(&key, &scaled);
            return Ok(());
        }
        let namespace = system.namespace().ok_or(Error::NoNamespace)?;
        let names = children::names_of(system);
        let deployments = Api::<Deployment>::namespaced(self.client.clone(), &namespace)
            .list(&ListParams::default().labels(&names.list_selector()))
            .await?
            .items;
        let source = QueueSource::of(&self.client, &system.spec, &names).await;
        let previous = system.status.clone().unwrap_or_default();
        let topology = topology_of(&system.spec);

        let mut outcomes = Vec::new();
        for service in scaled.iter().copied() {
            let before = previous.consumers.get(service.name()).cloned();
            let outcome = self
                .scale_service(
                    system,
                    &names,
                    service,
                    &deployments,
                    &source,
                    &topology,
                    before,
                    now,
                )
                .await;
            outcomes.push(outcome);
        }
        self.forget(&key, &scaled);
        self.write_status(system, &outcomes, now).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn scale_service(
        &self,
        system: &SalesSystem,
        names: &Names,
        service: AppService,
        deployments: &[Deployment],
        source: &Result<QueueSource, ReadError>,
        topology: &Topology,
        before: Option<ConsumerStatus>,
        now: Timestamp,
    ) -> Outcome {
        let before = before.unwrap_or_default();
        let held = |reason: &'static str, message: String, replicas: i32| Outcome {
            service,
            status: ConsumerStatus {
                replicas,
                recommended: None,
                reason: reason.into(),
                message: message.clone(),
                ..before.clone()
            },
            failure: Some((reason, message)),
        };
        let mut policy = match system.spec.autoscaling.get(service).map(Policy::from_spec) {
            Some(Ok(policy)) => policy,
            Some(Err(message)) => return held("InvalidPolicy", message, before.replicas),
            None => return held("InvalidPolicy", "not a consumer".into(), before.replicas),
        };
        let deployment_name = names.of(Component::Consumer(service));
        let Some(deployment) = deployments.iter().find(|d| d.name_any() == deployment_name) else {
            return held(
                "ConsumerDeploymentMissing",
                format!("waiting for Deployment {deployment_name}, which the reconcile creates"),
                0,
            );
        };
        let current = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0)
            .unsigned_abs();
        let ready = deployment
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);

        let key = key_of(system);
        let last_offsets = self.offsets(&key, service);
        let read = match source {
            Ok(source) => source
                .read(&self.http, service, topology, last_offsets.as_ref(), now)
                .await
                .map(|backlog| {
                    if let Some(offsets) = backlog.offsets {
                        self.remember_offsets(system, service, offsets);
                    }
                    backlog.queues
                }),
            Err(err) => Err(err.clone()),
        };
        // On Kafka a group gives each partition to one member: more would idle.
        let mut capped = None;
        if let Some(cap) = read.as_ref().ok().and_then(|q| partition_cap(q)) {
            let cap = cap.max(1);
            if cap < policy.max_replicas {
                capped = Some(cap);
            }
            policy.max_replicas = policy.max_replicas.min(cap);
            policy.min_replicas = policy.min_replicas.min(policy.max_replicas);
        }
        let window = self
            .window(&key, service)
            .unwrap_or_else(|| Window::starting(current, now));
        let reading = match &read {
            Ok(queues) => Reading::queues(queues, u32::try_from(ready).unwrap_or(0)),
            Err(_) => Reading::Unavailable,
        };
        let decision = decide(&policy, current, reading, &window, now);
        self.remember(system, service, decision.window.clone());

        let labels = [names.namespace.as_str(), &names.instance, service.name()];
        if let Err(err) = &read {
            self.metrics
                .queue_read_errors
                .with_label_values(&[labels[0], labels[1], err.reason])
                .inc();
        }
        let mut failure = read.as_ref().err().map(|e| (e.reason, e.message.clone()));
        let mut replicas = current;
        let mut last_scale_time = before.last_scale_time.clone();
        if decision.replicas != current {
            let ranked = if decision.replicas < current {
                Some(self.rank_pods(deployment, source).await)
            } else {
                None
            };
            match self
                .write_replicas(&names.namespace, &deployment_name, decision.replicas)
                .await
            {
                Ok(()) => {
                    replicas = decision.replicas;
                    last_scale_time = Some(Time(now));
                    let up = decision.replicas > current;
                    self.metrics
                        .consumer_scalings
                        .with_label_values(&[
                            labels[0],
                            labels[1],
                            labels[2],
                            if up { "up" } else { "down" },
                        ])
                        .inc();
                    let mut note = format!(
                        "{service} consumers {current} -> {}: {}",
                        decision.replicas,
                        explain(&policy, &decision, current, read.as_ref().ok())
                    );
                    if let Some(ranked) = ranked {
                        note = format!("{note}; {ranked}");
                    }
                    self.publish(system, false, decision.reason.as_str(), note)
                        .await;
                }
                Err(err) => {
                    failure = Some((
                        "ScaleFailed",
                        format!("cannot set the replicas of {deployment_name}: {err}"),
                    ));
                }
            }
        }

        self.metrics
            .consumer_replicas
            .with_label_values(&labels)
            .set(i64::from(replicas));
        self.metrics
            .consumer_ready_replicas
            .with_label_values(&labels)
            .set(i64::from(ready));
        if let Some(recommended) = decision.recommended {
            self.metrics
                .consumer_desired_replicas
                .with_label_values(&labels)
                .set(i64::from(recommended));
        }
        if let Ok(queues) = &read {
            for q in queues {
                let l = [labels[0], labels[1], labels[2], q.name.as_str()];
                self.metrics
                    .queue_depth
                    .with_label_values(&l)
                    .set(i64::try_from(q.depth()).unwrap_or(i64::MAX));
                self.metrics
                    .queue_publish_rate
                    .with_label_values(&l)
                    .set(q.publish_rate);
                self.metrics
                    .queue_ack_rate
                    .with_label_values(&l)
                    .set(q.ack_rate);
            }
            self.remember_queues(system, service, queues);
        }

        let replicas_i32 = i32::try_from(replicas).unwrap_or(i32::MAX);
        let status = match &read {
            Ok(queues) => ConsumerStatus {
                replicas: replicas_i32,
                recommended: decision
                    .recommended
                    .map(|r| i32::try_from(r).unwrap_or(i32::MAX)),
                depth: i64::try_from(decision.depth.unwrap_or(0)).unwrap_or(i64::MAX),
                reason: match &failure {
                    Some((reason, _)) => (*reason).into(),
                    None => decision.reason.as_str().into(),
                },
                message: match (&failure, capped) {
                    (Some((_, message)), _) => message.clone(),
                    (None, None) => explain(&policy, &decision, current, Some(queues)),
                    (None, Some(cap)) => format!(
                        "{}; at most {cap} pods (minReplicas and maxReplicas capped): the topics have {cap} partitions",
                        explain(&policy, &decision, current, Some(queues))
                    ),
                },
                last_read_time: Some(Time(now)),
                last_scale_time,
                queues: queues.iter().map(queue_status).collect(),
            },
            Err(err) => ConsumerStatus {
                replicas: replicas_i32,
                recommended: None,
                reason: err.reason.into(),
                message: format!("{}; keeping {replicas} replicas", err.message),
                last_scale_time,
                ..before
            },
        };
        Outcome {
            service,
            status,
            failure,
        }
    }

    /// Before a scale-down: the deletion costs of `deployment`'s pods from the work each
    /// holds, or none where the broker does not tell it. Says which, for the Event. A
    /// failure only loses the ranking (the ReplicaSet's own order applies): it is
    /// logged, and the scale-down goes on.
    async fn rank_pods(
        &self,
        deployment: &Deployment,
        source: &Result<QueueSource, ReadError>,
    ) -> String {
        let work = match source {
            Ok(source) => source.work_by_pod(&self.http).await,
            Err(err) => Err(err.clone()),
        };
        let (work, without) = match work {
            Ok(Some(work)) => (Some(work), String::new()),
            Ok(None) => (None, "the broker tells no pod's work".to_owned()),
            Err(err) => {
                tracing::info!(
                    deployment = %deployment.name_any(),
                    reason = err.reason,
                    error = %err.message,
                    "no per-pod work for the deletion costs"
                );
                (None, format!("no per-pod work: {}", err.message))
            }
        };
        match deletion_cost::mark(&self.client, deployment, work.as_ref()).await {
            Ok(_) if work.is_some() => {
                "pods holding the fewest unacknowledged messages go first (pod-deletion-cost)"
                    .to_owned()
            }
            Ok(_) => format!("the ReplicaSet picks the pods to remove: {without}"),
            Err(err) => {
                tracing::warn!(
                    deployment = %deployment.name_any(),
                    error = %err,
                    "cannot set the consumer pods' deletion costs"
                );
                format!(
                    "the ReplicaSet picks the pods to remove: cannot set their deletion costs: {err}"
                )
            }
        }
    }

    async fn write_replicas(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: u32,
    ) -> Result<(), kube::Error> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": deployment},
            "spec": {"replicas": replicas},
        });
        api.patch(
            deployment,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }

    /// `status.consumers` and `ConsumersScaled`, when they changed (or the numbers are
    /// older than [`Scaler::status_refresh`]); an Event when the condition flips.
    async fn write_status(
        &self,
        system: &SalesSystem,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> Result<(), Error> {
        let previous = system.status.clone().unwrap_or_default();
        let consumers: BTreeMap<String, ConsumerStatus> = outcomes
            .iter()
            .map(|o| (o.service.name().to_owned(), o.status.clone()))
            .collect();
        let failures: Vec<String> = outcomes
            .iter()
            .filter_map(|o| {
                o.failure
                    .as_ref()
                    .map(|(_, message)| format!("{}: {message}", o.service))
            })
            .collect();
        let (ok, reason, message) = match outcomes.iter().find_map(|o| o.failure.as_ref()) {
            Some((reason, _)) => (false, *reason, failures.join("; ")),
            None => (
                true,
                "Scaled",
                format!(
                    "consumer replicas follow queue depth: {}",
                    outcomes
                        .iter()
                        .map(|o| format!("{} {}", o.service, o.status.replicas))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        let status = if ok { "True" } else { "False" };
        let before = previous
            .conditions
            .iter()
            .find(|c| c.type_ == CONSUMERS_SCALED);
        let condition = Condition {
            type_: CONSUMERS_SCALED.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.clone(),
            observed_generation: system.metadata.generation,
            last_transition_time: before
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now)),
        };

        let changed = before.is_none_or(|c| {
            (c.status.as_str(), c.reason.as_str(), c.message.as_str())
                != (status, reason, message.as_str())
        }) || consumers.iter().any(|(service, new)| {
            previous.consumers.get(service).is_none_or(|old| {
                significant(old) != significant(new) || stale(old, new, self.status_refresh)
            })
        });
        if !changed {
            return Ok(());
        }
        let flipped = before.is_none_or(|c| c.status != status);
        let mut conditions: Vec<Condition> = previous
            .conditions
            .iter()
            .filter(|c| c.type_ != CONSUMERS_SCALED)
            .cloned()
            .collect();
        conditions.push(condition);
        let namespace = system.namespace().ok_or(Error::NoNamespace)?;
        let api: Api<SalesSystem> = Api::namespaced(self.client.clone(), &namespace);
        // A merge patch keeps what it leaves out: a number no longer known (the
        // recommendation while the counts are unreported) is removed with a null.
        let mut consumers = serde_json::to_value(&consumers)?;
        for entry in consumers
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            if let Some(fields) = entry.as_object_mut() {
                for key in ["recommended", "lastReadTime", "lastScaleTime"] {
                    fields.entry(key).or_insert(serde_json::Value::Null);
                }
            }
        }
        // The resourceVersion makes this a compare-and-swap: a status the reconcile
        // wrote since this tick read the system is never overwritten with old conditions.
        let mut patch = json!({
            "status": {"consumers": consumers, "conditions": conditions},
        });
        if let Some(version) = &system.metadata.resource_version {
            patch["metadata"] = json!({"resourceVersion": version});
        }
        match api
            .patch_status(
                &system.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::debug!("the SalesSystem changed since it was read; status next tick");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        if flipped && (!ok || before.is_some()) {
            let note = if ok {
                format!("queues readable again; {message}")
            } else {
                format!("{message} (replicas are kept while the queues cannot be read)")
            };
            let reason = if ok { "ConsumersScaled" } else { reason };
            self.publish(system, !ok, reason, note).await;
        }
        Ok(())
    }

    async fn publish(&self, system: &SalesSystem, warning: bool, reason: &str, note: String) {
        crate::events::publish(&self.recorder, system, "Scale", warning, reason, note).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Memory>> {
        // A panic while holding the lock leaves plain data behind; use it.
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn window(&self, key: &str, service: AppService) -> Option<Window> {
        self.lock()
            .get(key)
            .and_then(|m| m.windows.get(&service).cloned())
    }

    /// Change what is kept for `service` of `system` (made on first use).
    fn keep(&self, system: &SalesSystem, service: AppService, change: impl FnOnce(&mut Memory)) {
        let mut memory = self.lock();
        let entry = memory.entry(key_of(system)).or_insert_with(|| Memory {
            namespace: system.namespace().unwrap_or_default(),
            name: system.name_any(),
            ..Memory::default()
        });
        change(entry);
        entry.services.insert(service.name().to_owned());
    }

    fn remember(&self, system: &SalesSystem, service: AppService, window: Window) {
        self.keep(system, service, |m| {
            m.windows.insert(service, window);
        });
    }

    fn offsets(&self, key: &str, service: AppService) -> Option<(Timestamp, Vec<GroupOffsets>)> {
        self.lock()
            .get(key)
            .and_then(|m| m.offsets.get(&service).cloned())
    }

    fn remember_offsets(
        &self,
        system: &SalesSystem,
        service: AppService,
        offsets: (Timestamp, Vec<GroupOffsets>),
    ) {
        self.keep(system, service, |m| {
            m.offsets.insert(service, offsets);
        });
    }

    fn remember_queues(&self, system: &SalesSystem, service: AppService, queues: &[QueueLoad]) {
        if let Some(entry) = self.lock().get_mut(&key_of(system)) {
            for q in queues {
                entry
                    .queues
                    .insert((service.name().to_owned(), q.name.clone()));
            }
        }
    }

    /// Drop what is kept for services of `key` no longer autoscaled (all of them when
    /// `scaled` is empty), and their series.
    fn forget(&self, key: &str, scaled: &[AppService]) {
        let mut memory = self.lock();
        let Some(entry) = memory.get_mut(key) else {
            return;
        };
        let keep: BTreeSet<&str> = scaled.iter().map(|s| s.name()).collect();
        entry.windows.retain(|s, _| keep.contains(s.name()));
        entry.offsets.retain(|s, _| keep.contains(s.name()));
        let gone: Vec<String> = entry
            .services
            .iter()
            .filter(|s| !keep.contains(s.as_str()))
            .cloned()
            .collect();
        for service in &gone {
            self.drop_series(entry, service);
            entry.services.remove(service);
        }
        if entry.services.is_empty() {
            memory.remove(key);
        }
    }

    /// Forget systems that are gone.
    fn retain(&self, keep: &BTreeSet<String>) {
        let gone: Vec<String> = self
            .lock()
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key, &[]);
        }
    }

    fn drop_series(&self, entry: &Memory, service: &str) {
        let labels = [entry.namespace.as_str(), entry.name.as_str(), service];
        for gauge in [
            &self.metrics.consumer_replicas,
            &self.metrics.consumer_desired_replicas,
            &self.metrics.consumer_ready_replicas,
        ] {
            let _ = gauge.remove_label_values(&labels);
        }
        for (s, queue) in entry.queues.iter().filter(|(s, _)| s == service) {
            let l = [labels[0], labels[1], s.as_str(), queue.as_str()];
            let _ = self.metrics.queue_depth.remove_label_values(&l);
            let _ = self.metrics.queue_publish_rate.remove_label_values(&l);
            let _ = self.metrics.queue_ack_rate.remove_label_values(&l);
        }
    }
}

fn key_of(system: &SalesSystem) -> String {
    system.uid().unwrap_or_else(|| {
        format!(
            "{}/{}",
            system.namespace().unwrap_or_default(),
            system.name_any()
        )
    })
}

fn queue_status(q: &QueueLoad) -> QueueStatus {
    QueueStatus {
        name: q.name.clone(),
        ready: i64::try_from(q.ready).unwrap_or(i64::MAX),
        unacknowledged: i64::try_from(q.unacknowledged).unwrap_or(i64::MAX),
        publish_rate: format!("{:.2}", q.publish_rate),
        ack_rate: format!("{:.2}", q.ack_rate),
        consumer_group: q.consumer_group.clone(),
        partitions: q.partitions.map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
    }
}

/// What changes a consumer's status beyond the live numbers.
fn significant(status: &ConsumerStatus) -> ConsumerStatus {
    ConsumerStatus {
        depth: 0,
        message: String::new(),
        last_read_time: None,
        queues: Vec::new(),
        ..status.clone()
    }
}

/// The stored numbers are older than `refresh` and newer ones were read.
fn stale(old: &ConsumerStatus, new: &ConsumerStatus, refresh: Duration) -> bool {
    match (&old.last_read_time, &new.last_read_time) {
        (Some(Time(old)), Some(Time(new))) => {
            new.duration_since(*old).as_secs_f64() >= refresh.as_secs_f64()
        }
        (None, Some(_)) => true,
        _ => false,
    }
}

/// One line on why the decision is what it is.
fn explain(
    policy: &Policy,
    decision: &Decision,
    current: u32,
    queues: Option<&Vec<QueueLoad>>,
) -> String {
    let Some(queues) = queues else {
        return format!("the queues cannot be read; keeping {current} replicas");
    };
    let ready: u64 = queues.iter().map(|q| q.ready).sum();
    let unacked: u64 = queues.iter().map(|q| q.unacknowledged).sum();
    let depth = ready + unacked;
    let recommended = decision.recommended.unwrap_or(current);
    let load = format!(
        "depth {depth} (ready {ready} + unacknowledged {unacked}) over {} queues, target {} per replica: {recommended} wanted",
        queues.len(),
        policy.target_per_replica
    );
    match decision.reason {
        Reason::ScaledUp | Reason::Steady => format!("{load}; running {}", decision.replicas),
        Reason::ScaledDown => match decision.keeping_up {
            Some(floor) if floor >= decision.replicas && floor > recommended => format!(
                "{load}; running {} to keep up with {:.1} published/s at {:.1}/s per replica",
                decision.replicas,
                queues.iter().map(|q| q.publish_rate).sum::<f64>(),
                decision.window.throughput().unwrap_or(0.0)
            ),
            _ => format!("{load}; running {}", decision.replicas),
        },
        Reason::Stabilizing => format!(
            "{load}; keeping {current} until {} (more were needed within the last {})",
            decision
                .hold_until
                .map_or_else(|| "the window passes".to_owned(), |t| t.to_string()),
            humantime::format_duration(policy.stabilization)
        ),
        Reason::BacklogGrowing => {
            let growing: Vec<String> = queues
                .iter()
                .filter(|q| q.is_growing())
                .map(|q| {
                    format!(
                        "{} published {:.1}/s, acked {:.1}/s",
                        q.name, q.publish_rate, q.ack_rate
                    )
                })
                .collect();
            format!(
                "{load}; keeping {current}: the backlog grows ({})",
                growing.join("; ")
            )
        }
        Reason::KeepingUp => format!(
            "{load}; keeping {current}: {} are needed to keep up with {:.1} published/s at {:.1}/s per replica",
            decision.keeping_up.unwrap_or(current),
            queues.iter().map(|q| q.publish_rate).sum::<f64>(),
            decision.window.throughput().unwrap_or(0.0)
        ),
        Reason::Unavailable => format!("the queues cannot be read; keeping {current} replicas"),
    }
}
