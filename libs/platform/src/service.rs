//! Running a service: binds the public and admin ports at once (so `/health`
//! answers while dependencies are still coming up), applies migrations when the
//! database is reachable, then starts the background workers (outbox relay,
//! consumers, timers).
//!
//! Stopping, in order (all within `SHUTDOWN_GRACE` after the drain window):
//! 1. SIGTERM: `/ready` fails at once, and the service keeps serving for
//!    `SHUTDOWN_DRAIN_DELAY` while load balancers take it out (Ctrl-C skips this).
//! 2. Stop taking new work: the listeners close, consumers cancel their
//!    subscriptions, sweeps stop; in-flight requests and messages finish (messages
//!    prefetched but not handled go back to the broker when the channel closes).
//! 3. The outbox relay makes its last pass, so the events those requests and
//!    messages committed are published before the process exits.
//! 4. The broker connection and the pool close; `main` then flushes the traces.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sales_contracts::topology::{Subscription, Topology};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::openapi::OpenApi;

use crate::config::{BrokerArgs, DatabaseArgs, HttpArgs, IdentityArgs, MessagingKind, ServiceRole};
use crate::http::{Readiness, admin_router, public_router};
use crate::identity::access::{AccessState, RouteRule, check_policy, enforce};
use crate::identity::admin_access::{AdminAccess, require_admin};
use crate::identity::{ServiceIdentity, TokenVerifier};
use crate::messaging::kafka::KafkaBus;
use crate::messaging::rabbitmq::Broker;
use crate::messaging::{MessageHandler, Messaging};
use crate::metrics::Metrics;
use crate::shutdown::StopSignal;
use crate::{db, outbox};

type Worker = (String, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Assembles a service's runtime. See the module docs for the order of events.
pub struct ServiceBuilder {
    name: &'static str,
    http: HttpArgs,
    metrics: Metrics,
    /// Cancelled on SIGTERM: stop accepting, finish what is in hand.
    shutdown: CancellationToken,
    /// Cancelled once requests, messages and workers are finished: the outbox relay
    /// makes its last pass.
    flush: CancellationToken,
    /// Cancelled after the outbox is flushed: close the broker connection.
    infrastructure: CancellationToken,
    pool: Option<PgPool>,
    migrations: Option<Migrator>,
    broker: Option<Messaging>,
    prefetch: u16,
    subscriptions: Vec<Subscription>,
    startup_steps: Vec<Worker>,
    workers: Vec<Worker>,
    /// Workers that stop on [`ServiceBuilder::flush`], after the others (the relay).
    flushers: Vec<Worker>,
    /// How the API's callers are checked: a policy and a verifier, or (the gateway)
    /// nothing here because the service decides itself.
    access: Access,
    /// Routes that authenticate their callers themselves (the identity provider's
    /// keys and OAuth endpoints), with their paths.
    open_routes: Option<(Router, &'static [&'static str])>,
    admin_access: Option<AdminAccess>,
}

enum Access {
    Unset,
    Policy(&'static [RouteRule], TokenVerifier),
    Edge,
}

impl ServiceBuilder {
    pub fn new(name: &'static str, http: &HttpArgs) -> Self {
        ServiceBuilder {
            name,
            http: http.clone(),
            metrics: Metrics::new(name),
            shutdown: CancellationToken::new(),
            flush: CancellationToken::new(),
            infrastructure: CancellationToken::new(),
            pool: None,
            migrations: None,
            broker: None,
            prefetch: 16,
            subscriptions: Vec::new(),
            startup_steps: Vec::new(),
            workers: Vec::new(),
            flushers: Vec::new(),
            access: Access::Unset,
            open_routes: None,
            admin_access: None,
        }
    }

    /// Check every API request's token with `verifier` and its rights with `policy`
    /// (see [`crate::identity::access`]). The service will not start if `policy`
    /// misses an operation of its OpenAPI document.
    pub fn protect(&mut self, policy: &'static [RouteRule], verifier: TokenVerifier) {
        self.access = Access::Policy(policy, verifier);
    }

    /// [`ServiceBuilder::protect`] with the identity of a service behind the gateway;
    /// the admin port's operations endpoints then take administrators' tokens.
    /// Returns the identity, whose service token the service's calls carry.
    pub fn identity(
        &mut self,
        args: &IdentityArgs,
        policy: &'static [RouteRule],
    ) -> anyhow::Result<ServiceIdentity> {
        let identity = ServiceIdentity::new(self.name, args)?;
        self.protect(policy, identity.verifier.clone());
        self.admin_access = Some(AdminAccess::new(
            &args.identity_url,
            identity.tokens.clone(),
            self.metrics.clone(),
        )?);
        Ok(identity)
    }

    /// The gateway: it checks every request itself, before forwarding it.
    pub fn edge(&mut self) {
        self.access = Access::Edge;
    }

    /// Routes outside the access policy, which authenticate their callers themselves
    /// (the identity provider's JWKS and OAuth endpoints); `paths` are their paths.
    pub fn open_routes(&mut self, routes: Router, paths: &'static [&'static str]) {
        self.open_routes = Some((routes, paths));
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Cancelled when the service is asked to stop; workers watch it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The service's database: a lazy pool now, migrations once it answers.
    pub fn database(
        &mut self,
        args: &DatabaseArgs,
        migrations: Migrator,
    ) -> anyhow::Result<PgPool> {
        let pool = db::pool(args, self.name)?;
        self.metrics.register_database_pool(pool.clone());
        self.pool = Some(pool.clone());
        self.migrations = Some(migrations);
        Ok(pool)
    }

    /// Connect to the broker `args` names, RabbitMQ or Kafka (in the background,
    /// reconnecting as needed). Fails only on settings that cannot work.
    pub fn broker(&mut self, args: &BrokerArgs) -> anyhow::Result<Messaging> {
        if self.broker.is_none() {
            self.metrics.register_messaging();
        }
        let messaging = match args.messaging_kind {
            MessagingKind::Rabbitmq => Messaging::RabbitMq(Broker::start(
                self.name,
                args.amqp_endpoint()?,
                Topology::new(args.amqp_prefix.clone()).with_queue_type(args.amqp_queue_type),
                self.metrics.clone(),
                self.infrastructure.clone(),
            )),
            MessagingKind::Kafka => Messaging::Kafka(KafkaBus::start(
                self.name,
                &args.kafka,
                self.metrics.clone(),
                self.infrastructure.clone(),
            )?),
        };
        self.prefetch = args.amqp_prefetch;
        self.broker = Some(messaging.clone());
        Ok(messaging)
    }

    /// A background task started after migrations; it must end soon after
    /// [`ServiceBuilder::shutdown_token`] is cancelled.
    pub fn worker(&mut self, name: &str, task: impl Future<Output = ()> + Send + 'static) {
        self.workers.push((name.to_owned(), Box::pin(task)));
    }

    /// A task that must finish, after migrations, before the service reports ready
    /// (seeding an account, say). Steps run one after the other; each should retry
    /// what may pass and end when [`ServiceBuilder::shutdown_token`] is cancelled.
    pub fn startup_step(&mut self, name: &str, task: impl Future<Output = ()> + Send + 'static) {
        self.startup_steps.push((name.to_owned(), Box::pin(task)));
    }

    /// Relay this service's outbox to the broker. On shutdown it runs until the
    /// requests and messages in hand are finished, then publishes what they committed.
    pub fn outbox_relay(&mut self) -> anyhow::Result<()> {
        let (pool, broker) = self.pool_and_broker("the outbox relay")?;
        let relay = outbox::run_relay(pool, broker, self.flush.clone());
        self.flushers
            .push(("outbox-relay".to_owned(), Box::pin(relay)));
        Ok(())
    }

    /// Consume `subscription`'s queue with `handler` (not in the `api` role).
    pub fn consumer<H: MessageHandler>(
        &mut self,
        subscription: Subscription,
        handler: Arc<H>,
    ) -> anyhow::Result<()> {
        if self.http.role == ServiceRole::Api {
            return Ok(());
        }
        let (pool, broker) = self.pool_and_broker("a consumer")?;
        let shutdown = self.shutdown.clone();
        if self.subscriptions.is_empty() {
            // One pruner per process that consumes: its inbox grows with what it handles.
            self.worker(
                "inbox-pruning",
                crate::inbox::run_pruning(pool.clone(), shutdown.clone()),
            );
        }
        self.subscriptions.push(subscription);
        let name = format!(
            "consumer {}.{}",
            subscription.service, subscription.message_type
        );
        let prefetch = self.prefetch;
        self.worker(
            &name,
            broker.run_consumer(pool, prefetch, subscription, handler, shutdown),
        );
        Ok(())
    }

    fn pool_and_broker(&self, what: &str) -> anyhow::Result<(PgPool, Messaging)> {
        match (&self.pool, &self.broker) {
            (Some(p), Some(b)) => Ok((p.clone(), b.clone())),
            _ => anyhow::bail!("{what} needs the database and the broker configured first"),
        }
    }

    /// Bind both ports and run until shut down. Returns once the ports are bound.
    pub async fn serve(self, api: Router, mut openapi: OpenApi) -> anyhow::Result<RunningService> {
        let public = TcpListener::bind(self.http.http_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", self.http.http_addr))?;
        let admin = TcpListener::bind(self.http.admin_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", self.http.admin_addr))?;
        let http_addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;

        let (open, open_paths) = self.open_routes.unwrap_or_default();
        let api = match self.access {
            Access::Policy(policy, verifier) => {
                // The document says what the table asks: bearer security, 401, 403.
                crate::http::document_access(&mut openapi, policy);
                check_policy(policy, &openapi, open_paths).map_err(|problems| {
                    anyhow::anyhow!("the {} service's access table: {problems}", self.name)
                })?;
                let state = AccessState {
                    policy,
                    verifier,
                    metrics: self.metrics.clone(),
                };
                if api.has_routes() {
                    api.route_layer(axum::middleware::from_fn_with_state(state, enforce))
                } else {
                    api
                }
            }
            Access::Edge => api,
            Access::Unset => anyhow::bail!(
                "the {} service has no access policy (ServiceBuilder::protect)",
                self.name
            ),
        };
        let readiness = Readiness::new(self.pool.clone(), self.broker.clone());
        let public_app = public_router(
            api.merge(open),
            openapi,
            readiness.clone(),
            self.metrics.clone(),
            self.http.max_body_bytes,
        );
        let dead_letters = match (&self.broker, self.admin_access) {
            (Some(broker), Some(admin)) => {
                crate::messaging::dead_letters::router(broker.clone(), self.subscriptions.clone())
                    .route_layer(axum::middleware::from_fn_with_state(admin, require_admin))
            }
            (Some(_), None) => {
                tracing::warn!(
                    "no administrator access configured: the dead-letter endpoints are off"
                );
                Router::new()
            }
            (None, _) => Router::new(),
        };
        let admin_app = admin_router(self.metrics.clone(), readiness.clone(), dead_letters);

        let tracker = TaskTracker::new();
        let flushers = TaskTracker::new();
        flushers.close();
        let shutdown = self.shutdown.clone();
        for (listener, app) in [(public, public_app), (admin, admin_app)] {
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                let served = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
                if let Err(err) = served {
                    tracing::error!(error = %err, "HTTP server failed");
                }
            });
        }

        // Migrations first, then the workers that need the schema.
        let start_workers = {
            let tracker = tracker.clone();
            let shutdown = shutdown.clone();
            let pool = self.pool.clone();
            let migrations = self.migrations;
            let workers = self.workers;
            let flusher_tasks = self.flushers;
            let flushers = flushers.clone();
            let startup_steps = self.startup_steps;
            let readiness = readiness.clone();
            async move {
                if let (Some(pool), Some(migrations)) = (pool, migrations) {
                    if let Err(err) = db::migrate(&pool, migrations, &shutdown).await {
                        tracing::error!(
                            error = format!("{err:#}"),
                            "cannot migrate the database; stopping"
                        );
                        shutdown.cancel();
                        return;
                    }
                    tracing::info!("database migrated");
                }
                for (name, step) in startup_steps {
                    tracing::debug!(step = %name, "start-up step");
                    step.await;
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
                readiness.set_started();
                for (name, task) in workers {
                    tracing::debug!(worker = %name, "starting");
                    tracker.spawn(task);
                }
                for (name, task) in flusher_tasks {
                    tracing::debug!(worker = %name, "starting");
                    flushers.spawn(task);
                }
            }
        };
        tracker.spawn(start_workers);
        tracker.close();

        tracing::info!(service = self.name, %http_addr, %admin_addr, "serving");
        let grace = self.http.shutdown_grace;
        let flush = self.flush.clone();
        let infrastructure = self.infrastructure.clone();
        let pool = self.pool.clone();
        let name = self.name;
        let done = tokio::spawn(async move {
            shutdown.cancelled().await;
            tracing::info!(
                service = name,
                "shutting down: finishing requests and messages in hand"
            );
            let deadline = tokio::time::Instant::now() + grace;
            if tokio::time::timeout_at(deadline, tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    ?grace,
                    "work still running after the grace period; stopping anyway"
                );
            }
            flush.cancel();
            if tokio::time::timeout_at(deadline, flushers.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    ?grace,
                    "outbox not flushed within the grace period; its events go out at the next start"
                );
            }
            infrastructure.cancel();
            // Give the broker supervisor a moment to close the connection politely.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(pool) = pool {
                pool.close().await;
            }
            tracing::info!(service = name, "stopped");
        });

        Ok(RunningService {
            http_addr,
            admin_addr,
            shutdown: self.shutdown,
            readiness,
            drain_delay: self.http.shutdown_drain_delay,
            done,
        })
    }
}

/// A service that is serving. Dropping it does not stop it; call [`RunningService::stop`].
pub struct RunningService {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: CancellationToken,
    readiness: Readiness,
    drain_delay: Duration,
    done: JoinHandle<()>,
}

impl RunningService {
    /// `http://127.0.0.1:PORT` of the public API.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_addr.port())
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_addr.port())
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Ask the service to stop and wait until it has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
    }

    /// Stop on SIGTERM (after the drain window) or Ctrl-C, and wait until stopped.
    /// For `main`.
    pub async fn run_until_signal(self) {
        let token = self.shutdown.clone();
        let readiness = self.readiness.clone();
        let drain_delay = self.drain_delay;
        tokio::spawn(async move {
            if crate::shutdown::signal().await == StopSignal::Terminate {
                drain(&readiness, drain_delay).await;
            }
            token.cancel();
        });
        let _ = self.done.await;
    }
}

/// Fail `/ready` and keep serving for `window`, so that load balancers stop sending
/// new requests before the listeners close; a second signal ends the window early.
async fn drain(readiness: &Readiness, window: Duration) {
    readiness.set_draining();
    if window.is_zero() {
        return;
    }
    tracing::info!(?window, "draining: not ready, still serving");
    tokio::select! {
        _ = tokio::time::sleep(window) => {}
        _ = crate::shutdown::signal() => tracing::info!("second signal: ending the drain window"),
    }
}
