//! The whole system as real processes: each service binary started on free ports
//! with its own fresh database, all sharing a private namespace on the broker.
//! Tests drive it through HTTP, as users do. [`effects`] is a consumer for the
//! platform's own messaging tests.

pub mod effects;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use sales_testkit::identity::Minter;
pub use sales_testkit::identity::Who;
pub use sales_testkit::launch::Process;
pub use sales_testkit::launch::Service;
use sales_testkit::launch::{IdentityMaterial, Wiring};
use sales_testkit::{TestBroker, TestDatabase, TestTransport};
use serde_json::Value;

/// Where cargo put this test's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/system_tests-... -> target/debug
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}

/// Run a command of the tools (promtool, hadolint, the operator...); fail the test with
/// its output unless it succeeds. Returns its stdout and stderr.
pub fn run_tool(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// Build the service binaries once per test process, unless the caller (`cargo
/// xtask test`) has just done so: a stale binary would test old code.
fn ensure_binaries() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("SALES_BINARIES_BUILT").is_some() {
            return;
        }
        let mut cmd = sales_testkit::cargo_command();
        cmd.args(["build", "--quiet"]);
        for s in Service::ALL {
            cmd.args(["--package", &s.binary(), "--bin", &s.binary()]);
        }
        if bin_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo build: {e}"));
        assert!(status.success(), "building the service binaries failed");
    });
}

pub use sales_testkit::free_port;

/// The admin account every test system has; it is the first account made, so its id
/// is [`ADMIN_ID`].
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password";
pub const ADMIN_ID: i64 = 1;
/// The password [`System::register`] gives every customer.
pub const CUSTOMER_PASSWORD: &str = "a-good-password";

/// Settings a test may change before the system starts.
#[derive(Clone, Debug)]
pub struct SystemOptions {
    pub unpaid_order_timeout: String,
    pub reservation_hold: String,
    /// The gateway's `SEED_COMPAT_OPEN`: the seeds' routes open without a token.
    pub seed_compat_open: bool,
    /// The gateway's requests per client per window.
    pub rate_limit: u32,
    /// Extra environment per service.
    pub env: HashMap<Service, Vec<(String, String)>>,
    /// Write each service's output to a file of its own (read with
    /// [`System::logs`]) instead of the test's output.
    pub logs_to_files: bool,
    /// Carry the events over Kafka instead of RabbitMQ.
    pub kafka: bool,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            unpaid_order_timeout: "30m".into(),
            reservation_hold: "15m".into(),
            seed_compat_open: true,
            rate_limit: 100_000,
            env: HashMap::new(),
            logs_to_files: false,
            kafka: false,
        }
    }
}

/// The running system.
pub struct System {
    pub processes: HashMap<Service, Process>,
    pub wiring: Wiring,
    /// Signs tokens as the gateway and the customer service do (the test holds their
    /// keys), for calling one service directly.
    pub minter: Minter,
    /// Where each service writes its output, with [`SystemOptions::logs_to_files`].
    pub log_dir: Option<PathBuf>,
    databases: Vec<TestDatabase>,
    transport: Option<TestTransport>,
    client: reqwest::Client,
}

impl System {
    pub async fn start() -> System {
        Self::start_with(SystemOptions::default()).await
    }

    pub async fn start_with(options: SystemOptions) -> System {
        ensure_binaries();
        let transport = if options.kafka {
            TestTransport::kafka()
        } else {
            TestTransport::rabbitmq()
        };
        let prefix = transport.topology().prefix().to_owned();
        let mut databases = Vec::new();
        let mut database_urls = HashMap::new();
        for service in Service::ALL {
            if service.database().is_some() {
                let db = TestDatabase::create(service.name()).await;
                database_urls.insert(service, db.url.clone());
                databases.push(db);
            }
        }
        let mut wiring = Wiring {
            ports: HashMap::new(),
            database_urls,
            amqp_url: sales_testkit::amqp_url(),
            amqp_prefix: prefix.clone(),
            log_format: "json".into(),
            log_filter: std::env::var("SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
            env: vec![
                (
                    "UNPAID_ORDER_TIMEOUT".into(),
                    options.unpaid_order_timeout.clone(),
                ),
                ("UNPAID_ORDER_SWEEP_EVERY".into(), "200ms".into()),
                ("RESERVATION_HOLD".into(), options.reservation_hold.clone()),
                ("RESERVATION_SWEEP_EVERY".into(), "200ms".into()),
                ("SHUTDOWN_GRACE".into(), "10s".into()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), String::new()),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), String::new()),
                (
                    "SEED_COMPAT_OPEN".into(),
                    options.seed_compat_open.to_string(),
                ),
                ("RATE_LIMIT_REQUESTS".into(), options.rate_limit.to_string()),
                ("UPSTREAM_RETRIES".into(), "1".into()),
                ("RETRY_BACKOFF".into(), "100ms".into()),
            ],
            service_env: options.env.clone(),
            redis_url: sales_testkit::redis_url(),
            redis_prefix: prefix.clone(),
            identity: IdentityMaterial::generate()
                .unwrap_or_else(|e| panic!("cannot make the system's keys: {e}")),
            admin: Some((ADMIN_EMAIL.into(), ADMIN_PASSWORD.into())),
        };
        if let TestTransport::Kafka(kafka) = &transport {
            wiring.env.extend([
                ("MESSAGING_KIND".into(), "kafka".into()),
                ("KAFKA_BOOTSTRAP_SERVERS".into(), kafka.bootstrap.clone()),
                ("KAFKA_TOPIC_PREFIX".into(), prefix.clone()),
                // tansu cannot fetch from inside a batch (docs/messaging.md).
                ("KAFKA_BATCH_MESSAGES".into(), "1".into()),
            ]);
        }
        let minter = Minter::new(
            &wiring.identity.gateway_signing_keys,
            &wiring.identity.customer_signing_keys,
        );
        let log_dir = options.logs_to_files.then(|| {
            let dir = std::env::temp_dir().join(format!("sales-logs-{}", wiring.amqp_prefix));
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
            dir
        });
        let mut system = System {
            processes: HashMap::new(),
            wiring: wiring.clone(),
            minter,
            log_dir: log_dir.clone(),
            databases,
            transport: Some(transport),
            client: sales_testkit::http_client(),
        };
        // A service that exits while starting most likely lost its port to another
        // test: start every service again on new ports, a few times.
        for attempt in 1..=3 {
            wiring.ports = Service::ALL
                .iter()
                .map(|s| (*s, (free_port(), free_port())))
                .collect();
            system.wiring = wiring.clone();
            for service in Service::ALL {
                let (stdout, stderr) = output_of(log_dir.as_deref(), service);
                let process = Process::spawn(service, &bin_dir(), &wiring, stdout, stderr)
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", service.binary()));
                system.processes.insert(service, process);
            }
            match system.wait_all_ready().await {
                Ok(()) => return system,
                Err(exited) if attempt < 3 => {
                    eprintln!("{exited}; starting the system again on other ports");
                    for p in system.processes.values_mut() {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                    }
                    system.processes.clear();
                }
                Err(exited) => panic!("{exited}"),
            }
        }
        system
    }

    /// Wait until every service is ready; `Err` names one that exited meanwhile.
    async fn wait_all_ready(&mut self) -> Result<(), String> {
        for service in Service::ALL {
            let url = format!("{}/ready", self.url(service));
            let ready = sales_testkit::wait_ready(&url, Duration::from_secs(60));
            tokio::pin!(ready);
            loop {
                tokio::select! {
                    r = &mut ready => {
                        if let Err(e) = r {
                            panic!("{} did not become ready: {e}", service.binary());
                        }
                        break;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if let Some(p) = self.processes.get_mut(&service)
                            && let Ok(Some(status)) = p.child.try_wait()
                        {
                            return Err(format!(
                                "{} exited while starting ({status}); its log is above",
                                service.binary()
                            ));
                        }
                    }
                }
            }
        }
        // A service that lost its port exits at once, but another test's service on
        // that port may have answered its `/ready`: all must still be running.
        for service in Service::ALL {
            if let Some(p) = self.processes.get_mut(&service)
                && let Ok(Some(status)) = p.child.try_wait()
            {
                return Err(format!(
                    "{} exited while starting ({status}); its log is above",
                    service.binary()
                ));
            }
        }
        Ok(())
    }

    pub fn url(&self, service: Service) -> String {
        self.wiring.base_url(service)
    }

    pub fn admin_url(&self, service: Service) -> String {
        self.wiring.admin_url(service)
    }

    /// A token `service` accepts, for a request by `who` (signed as the gateway or
    /// the customer service would).
    pub fn token_for(&self, service: Service, who: Who) -> String {
        self.minter.token(service.name(), who).unwrap_or_default()
    }

    /// `GET` straight to `service`, as the admin (the test acting as the gateway).
    pub async fn get(&self, service: Service, path: &str) -> (StatusCode, Value) {
        self.get_as(service, path, Who::Admin(ADMIN_ID)).await
    }

    /// `POST` straight to `service`, as the admin.
    pub async fn post(&self, service: Service, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(service, path, body, Who::Admin(ADMIN_ID))
            .await
    }

    /// `GET` straight to `service`, as `who`.
    pub async fn get_as(&self, service: Service, path: &str, who: Who) -> (StatusCode, Value) {
        self.send_as(reqwest::Method::GET, service, path, None, who)
            .await
    }

    /// `POST` straight to `service`, as `who`.
    pub async fn post_as(
        &self,
        service: Service,
        path: &str,
        body: Value,
        who: Who,
    ) -> (StatusCode, Value) {
        self.send_as(reqwest::Method::POST, service, path, Some(body), who)
            .await
    }

    /// Any request straight to `service`, as `who`.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        service: Service,
        path: &str,
        body: Option<Value>,
        who: Who,
    ) -> (StatusCode, Value) {
        self.request_as(method, service, path, body, who, &[]).await
    }

    /// Any request straight to `service`, as `who`, with more headers.
    pub async fn request_as(
        &self,
        method: reqwest::Method,
        service: Service,
        path: &str,
        body: Option<Value>,
        who: Who,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let auth = self
            .minter
            .token(service.name(), who)
            .map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        all.extend_from_slice(headers);
        self.request(method, service, path, body, &all).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        service: Service,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url(service)));
        if let Some(body) = body {
            req = req.json(&body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The gateway's base URL: where users reach the system.
    pub fn gateway(&self) -> String {
        self.url(Service::Gateway)
    }

    /// A request through the gateway, with a bearer token when given.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        self.request(method, Service::Gateway, path, body, &headers)
            .await
    }

    /// Register a customer through the gateway and log them in: `(customer id, token)`.
    pub async fn register(&self, email: &str, name: &str) -> (i64, String) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/customers/register",
                Some(serde_json::json!({"email": email, "password": CUSTOMER_PASSWORD, "name": name})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "register {email}: {body}");
        self.log_in(email, CUSTOMER_PASSWORD).await
    }

    /// Log in through the gateway: `(customer id, token)`.
    pub async fn log_in(&self, email: &str, password: &str) -> (i64, String) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/customers/login",
                Some(serde_json::json!({"email": email, "password": password})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "log in {email}: {body}");
        (
            body["customer_id"].as_i64().unwrap_or_default(),
            body["token"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Log the admin in through the gateway (the account may take a moment to appear).
    pub async fn admin_token(&self) -> String {
        sales_testkit::eventually("the admin to log in", Duration::from_secs(15), || async {
            let (status, body) = self
                .call(
                    reqwest::Method::POST,
                    "/api/v1/customers/login",
                    Some(serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
                    None,
                )
                .await;
            (status == StatusCode::OK)
                .then(|| body["token"].as_str().unwrap_or_default().to_owned())
        })
        .await
    }

    /// Add a product through the gateway as the admin (`token`), with opening stock,
    /// and wait until the inventory has it.
    pub async fn add_product_as(
        &self,
        token: &str,
        sku: &str,
        price_cents: i64,
        stock: i32,
    ) -> i64 {
        let (status, product) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/products",
                Some(serde_json::json!({
                    "sku": sku, "name": sku,
                    "price": {"amount": price_cents, "currency": "USD"}, "initial_stock": stock
                })),
                Some(token),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "add product {sku}: {product}");
        self.wait_stock_opened(sku).await;
        product["id"].as_i64().unwrap_or_default()
    }

    /// Add a product with opening stock and wait until the inventory has it.
    pub async fn add_product(&self, sku: &str, price_cents: i64, stock: i32) -> i64 {
        let (status, product) = self
            .post(
                Service::Product,
                "/api/v1/products",
                serde_json::json!({
                    "sku": sku, "name": format!("Product {sku}"), "description": "test",
                    "price": {"amount": price_cents, "currency": "USD"}, "initial_stock": stock
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "add product: {product}");
        let id = product["id"].as_i64().unwrap_or_default();
        self.wait_stock_opened(sku).await;
        id
    }

    /// Wait until the inventory has opened the stock item of a new product (from its
    /// `product-created` event).
    async fn wait_stock_opened(&self, sku: &str) {
        sales_testkit::eventually(
            &format!("inventory to open stock for {sku}"),
            Duration::from_secs(15),
            || async {
                let (s, _) = self
                    .get(
                        Service::Inventory,
                        &format!("/api/v1/inventory/items/{sku}"),
                    )
                    .await;
                (s == StatusCode::OK).then_some(())
            },
        )
        .await;
    }

    /// `(on_hand, reserved, available)` of a SKU.
    pub async fn stock(&self, sku: &str) -> (i64, i64, i64) {
        let (_, s) = self
            .get(
                Service::Inventory,
                &format!("/api/v1/inventory/items/{sku}"),
            )
            .await;
        (
            s["on_hand"].as_i64().unwrap_or(-1),
            s["reserved"].as_i64().unwrap_or(-1),
            s["available"].as_i64().unwrap_or(-1),
        )
    }

    /// Publish `body` as is as a message of type `routing_key`, on this system's broker.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        if let Some(transport) = &self.transport {
            transport.publish_raw(routing_key, "raw", body).await;
        }
    }

    /// A handle on this system's broker namespace, to publish from another task
    /// (dropping it deletes nothing).
    pub fn publisher(&self) -> TestTransport {
        let prefix = self.wiring.amqp_prefix.clone();
        match &self.transport {
            Some(TestTransport::Kafka(kafka)) => TestTransport::Kafka(kafka.clone()),
            Some(TestTransport::RabbitMq(broker)) => TestTransport::RabbitMq(TestBroker {
                prefix,
                queue_type: broker.queue_type,
            }),
            None => TestTransport::RabbitMq(TestBroker {
                prefix,
                queue_type: Default::default(),
            }),
        }
    }

    /// Everything the services wrote so far, per service (with
    /// [`SystemOptions::logs_to_files`]).
    pub fn logs(&self) -> Vec<(Service, String)> {
        let Some(dir) = &self.log_dir else {
            return Vec::new();
        };
        Service::ALL
            .into_iter()
            .map(|service| {
                let path = dir.join(format!("{}.log", service.name()));
                (service, std::fs::read_to_string(path).unwrap_or_default())
            })
            .collect()
    }

    /// Start another process of `service` (a second replica) beside the system's, on
    /// ports of its own and with `env` added to its settings; wait until it is ready.
    /// Returns it and its base URL; the caller stops it.
    pub async fn another_process(
        &self,
        service: Service,
        env: &[(&str, &str)],
    ) -> (Process, String) {
        let mut wiring = self.wiring.clone();
        wiring.ports.insert(service, (free_port(), free_port()));
        wiring
            .service_env
            .entry(service)
            .or_default()
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let process = Process::spawn(
            service,
            &bin_dir(),
            &wiring,
            Stdio::inherit(),
            Stdio::inherit(),
        )
        .unwrap_or_else(|e| panic!("cannot start another {}: {e}", service.binary()));
        let url = wiring.base_url(service);
        sales_testkit::wait_ready(&format!("{url}/ready"), Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("another {} did not become ready: {e}", service.binary()));
        (process, url)
    }

    /// SIGKILL `service` (a crash: nothing is finished, nothing flushed), start it
    /// again on the same ports and wait until it is ready.
    pub async fn kill_and_restart(&mut self, service: Service) {
        if let Some(mut p) = self.processes.remove(&service) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let (stdout, stderr) = output_of(self.log_dir.as_deref(), service);
        let process = Process::spawn(service, &bin_dir(), &self.wiring, stdout, stderr)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", service.binary()));
        self.processes.insert(service, process);
        sales_testkit::wait_ready(
            &format!("{}/ready", self.url(service)),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("{} did not become ready again: {e}", service.binary()));
    }

    /// Stop every process (SIGTERM) and remove the databases and broker namespace.
    pub async fn stop(mut self) {
        for p in self.processes.values_mut() {
            p.terminate(Duration::from_secs(15));
        }
        if let Some(t) = self.transport.take() {
            t.delete().await;
        }
        for db in self.databases.drain(..) {
            db.drop_database().await;
        }
        if let Some(dir) = self.log_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where `service`'s output goes: its own file in `log_dir`, or the test's output.
fn output_of(log_dir: Option<&std::path::Path>, service: Service) -> (Stdio, Stdio) {
    let Some(dir) = log_dir else {
        return (Stdio::inherit(), Stdio::inherit());
    };
    let path = dir.join(format!("{}.log", service.name()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let copy = file
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    (Stdio::from(file), Stdio::from(copy))
}

impl Drop for System {
    fn drop(&mut self) {
        // A failed test still must not leave processes behind.
        for p in self.processes.values_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}
