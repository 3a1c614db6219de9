//! One reconcile of a SalesSystem, as a pipeline whose data flows one way; each stage
//! is a module and takes what the one before returned ([`pipeline`] reads top to
//! bottom):
//!
//! 1. [`references`]: resolve what the spec references — read the user's Secrets,
//!    then ensure the generated credentials ([`credentials`]: create if absent, never
//!    replace, adopt one kept from an earlier system of this name) —
//!    into [`references::References`];
//! 2. validate: nothing is applied while a referenced Secret (or key) is missing;
//! 3. [`desired`]: build every child (pure, [`crate::children::desired_with`], given the
//!    identity Secret's values for the pods' digest), and give StatefulSets that
//!    already run their live claim templates ([`crate::storage::prepare`]) — a
//!    [`desired::Desired`]; while the last status says the broker or the databases
//!    are not ready, Deployments that run keep their images ([`hold_upgrades`]);
//! 4. [`apply`]: server-side apply each child with one field manager, forcing ownership
//!    of the fields it sets; optional kinds the cluster does not serve are skipped —
//!    an [`apply::Applied`]; then, when the spec changed and everything applied,
//!    [`prune`] deletes children this spec no longer wants;
//! 5. [`report`]: read the Deployments and StatefulSets, derive the status from them
//!    ([`crate::status::derive`]), write it, and publish the Events that follow from
//!    what changed.
//!
//! A paused system, or one with missing references, goes straight to [`report`].
//! The whole runs inside `kube::runtime::finalizer`: deletion runs [`cleanup`], which
//! applies the deletion policy to what owner references do not cover (volumes).

mod apply;
mod cleanup;
mod cloudnative_pg;
mod credentials;
mod desired;
mod hold_upgrades;
mod prune;
mod rabbitmq_cluster;
mod references;
mod release;
mod report;
mod strimzi;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Client, ResourceExt};

use crate::api_error::describe;
use crate::children::{self, secrets};
use crate::crd::{FINALIZER, SalesSystem};
use crate::events::Recorder;
use crate::metrics::Metrics;
use crate::optional_kinds::{self, OptionalKinds};
use references::Resolved;

/// Requeue a ready system after this, to notice drift that no watch reports.
pub const REQUEUE_READY: Duration = Duration::from_secs(300);
/// Requeue a system that is still coming up (or degraded) after this.
pub const REQUEUE_NOT_READY: Duration = Duration::from_secs(30);

/// Why a reconcile failed. Each reads as a sentence (status conditions, Events and
/// logs show it): what failed, on which object, and the API server's reason in words
/// ([`crate::api_error::describe`]), never the client library's debug output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", describe(.0))]
    Kube(#[from] kube::Error),
    /// A request about one object (`what`: "Secret shop-order-db").
    #[error("{what}: {}", describe(source))]
    Request {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot generate credentials: {0}")]
    Credentials(String),
    #[error("cannot build the children: {0}")]
    Build(#[from] serde_json::Error),
    #[error("{0}")]
    Apply(String),
    #[error("the SalesSystem has no namespace")]
    NoNamespace,
    #[error("{}", finalizer_message(.0))]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// The finalizer helper's errors in words (its own `Display` shows kube's debug).
fn finalizer_message(err: &kube::runtime::finalizer::Error<Error>) -> String {
    use kube::runtime::finalizer::Error as F;
    match err {
        F::ApplyFailed(inner) => inner.to_string(),
        F::CleanupFailed(inner) => format!("the cleanup on deletion failed: {inner}"),
        F::AddFinalizer(e) => format!("cannot add the finalizer {FINALIZER}: {}", describe(e)),
        F::RemoveFinalizer(e) => {
            format!("cannot remove the finalizer {FINALIZER}: {}", describe(e))
        }
        F::UnnamedObject => "the SalesSystem has no name".into(),
        F::InvalidFinalizer => format!("the finalizer name {FINALIZER} is invalid"),
    }
}

/// The object `name` of an optional kind ([`crate::optional_kinds`]): `None` when
/// the kind is not served (a kind gone since discovery answered is forgotten),
/// `Some(None)` when the object does not exist.
async fn get_optional(
    ctx: &Context,
    names: &children::names::Names,
    resource: &kube::api::ApiResource,
    name: &str,
) -> Result<Option<Option<kube::api::DynamicObject>>, Error> {
    if ctx.kinds.served(resource).await == optional_kinds::Served::No {
        return Ok(None);
    }
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &names.namespace, resource);
    match api.get_opt(name).await {
        Ok(object) => Ok(Some(object)),
        Err(err) if crate::api_error::kind_not_served(&err) => {
            ctx.kinds.forget(resource).await;
            Ok(None)
        }
        Err(err) => Err(on(format!("{} {name}", resource.kind))(err)),
    }
}

/// Context for a failed request: which object it was about.
fn on(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Request {
        what,
        source: Box::new(source),
    }
}

impl Error {
    /// The `error` label of `sales_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) | Error::Request { .. } => "kube",
            // A generated Secret is a child that could not be built.
            Error::Build(_) | Error::Credentials(_) => "build",
            Error::Apply(_) => "apply",
            Error::NoNamespace => "no_namespace",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.metric_label(),
                _ => "finalizer",
            },
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Makes the random values of generated Secrets.
    pub random: fn(usize) -> String,
    /// Makes the signing keys of a generated identity Secret (Ed25519, PKCS#8 PEM).
    pub signing_key: fn() -> anyhow::Result<String>,
    /// When a ready system is looked at again without a watch event.
    pub requeue_ready: Duration,
    /// When a system still coming up, degraded, or whose reconcile failed is.
    pub requeue_not_ready: Duration,
    /// Where the operator runs (`POD_NAMESPACE`), for the NetworkPolicy that lets it
    /// read the broker's management API; `None`: any namespace.
    pub operator_namespace: Option<String>,
    /// Which optional kinds (ServiceMonitor...) the cluster serves, found out while
    /// running; shared with the controller, which watches them once served.
    pub kinds: Arc<OptionalKinds>,
}

impl Context {
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Context {
            client: client.clone(),
            recorder,
            metrics,
            random: secrets::random_alphanumeric,
            signing_key: sales_platform::identity::keys::generate_pem,
            requeue_ready: REQUEUE_READY,
            requeue_not_ready: REQUEUE_NOT_READY,
            operator_namespace: None,
            kinds: Arc::new(OptionalKinds::new(client, optional_kinds::REFRESH)),
        }
    }

    async fn publish(&self, system: &SalesSystem, warning: bool, reason: &str, note: String) {
        crate::events::publish(&self.recorder, system, "Reconcile", warning, reason, note).await;
    }
}

/// Reconcile one SalesSystem (the controller's entry point).
#[tracing::instrument(skip_all, fields(name = %system.name_any(), namespace = system.namespace().unwrap_or_default(), trace_id = tracing::field::Empty))]
pub async fn reconcile(system: Arc<SalesSystem>, ctx: Arc<Context>) -> Result<Action, Error> {
    sales_platform::telemetry::record_trace_id(&tracing::Span::current());
    let _timer = ctx.metrics.reconcile_started();
    let namespace = system.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<SalesSystem> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, system, |event| async {
        match event {
            Finalizer::Apply(system) => run(&system, &ctx).await,
            Finalizer::Cleanup(system) => cleanup::cleanup(&system, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// What the controller does after a failed reconcile: count it and retry.
pub fn error_policy(system: Arc<SalesSystem>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %system.name_any(), error = %error, "reconcile failed");
    ctx.metrics
        .errors
        .with_label_values(&[error.metric_label()])
        .inc();
    Action::requeue(ctx.requeue_not_ready)
}

/// [`pipeline`]; a stage that fails before the status is written (reading a Secret,
/// making credentials...) is reported too: `Degraded` with its sentence, and a
/// Warning Event.
async fn run(system: &SalesSystem, ctx: &Context) -> Result<Action, Error> {
    match pipeline(system, ctx).await {
        Err(err) if !matches!(err, Error::Apply(_)) => {
            report::failure(ctx, system, &err).await;
            Err(err)
        }
        other => other,
    }
}

/// The reconcile of a live system, stage by stage.
async fn pipeline(system: &SalesSystem, ctx: &Context) -> Result<Action, Error> {
    let names = children::names_of(system);
    if system.is_paused() {
        return report::paused(ctx, system, &names).await;
    }
    // 1. Resolve references: the user's Secrets, then the generated credentials.
    let references = match references::resolve(ctx, system, &names).await? {
        Resolved::All(references) => references,
        // 2. Validate: nothing is applied while a referenced Secret is missing.
        Resolved::Missing(missing) => {
            return report::missing_secrets(ctx, system, &names, missing).await;
        }
    };
    // 3. Build the desired objects.
    let mut desired = desired::build(ctx, system, &names, &references).await?;
    // 3b. New service images wait while the broker or the databases are not ready.
    if let Some(held) = hold_upgrades::hold(ctx, system, &names, &mut desired.children).await? {
        ctx.publish(system, false, "UpgradeWaiting", held.message())
            .await;
    }
    // 4. Apply them; once all applied, delete what this spec no longer wants.
    let applied = apply::apply(ctx, &names, &desired).await;
    if applied.failures.is_empty() && spec_changed(system) {
        prune::prune(ctx, system, &names, &desired.children).await?;
        ctx.publish(
            system,
            false,
            "Applied",
            format!(
                "applied generation {} ({} objects)",
                system.metadata.generation.unwrap_or(0),
                desired.children.len()
            ),
        )
        .await;
    }
    // 5. Derive the status from what runs, and write it.
    let change = report::write(ctx, system, &names, &desired.storage, &applied).await?;
    // 6. The Events that follow from the change, and when to look again.
    report::announce(ctx, system, change, applied).await
}

/// The spec is not the one the status last reported as applied.
fn spec_changed(system: &SalesSystem) -> bool {
    system.status.as_ref().and_then(|s| s.observed_generation) != system.metadata.generation
}
