//! A running customer service on a fresh database, behind a test gateway: every
//! request carries a token the test gateway signs (`sales_testkit::identity`), as the
//! real gateway does.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use customer_service::{Config, build};
use reqwest::{Method, StatusCode};
use sales_platform::identity::claims::{OnBehalfOf, TokenClaims};
use sales_platform::identity::key_set::KeySet;
use sales_platform::identity::keys::generate_pem;
use sales_platform::identity::{API_AUDIENCE, IDENTITY_ISSUER, TokenVerifier, service_audience};
use sales_platform::service::RunningService;
use sales_testkit::TestDatabase;
pub use sales_testkit::identity::Who;
use sales_testkit::identity::{TEST_CLIENT_SECRET, TestIdentity};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Every service's client secret in the test configuration.
pub fn service_clients() -> String {
    [
        "order",
        "product",
        "gateway",
        "inventory",
        "payment",
        "shipping",
        "notification",
    ]
    .iter()
    .map(|id| format!("{id}={TEST_CLIENT_SECRET}"))
    .collect::<Vec<_>>()
    .join(",")
}

pub struct Customers {
    pub service: Option<RunningService>,
    pub db: Option<TestDatabase>,
    pub base: String,
    pub admin: String,
    /// The test gateway: signs the token of every request.
    pub identity: TestIdentity,
    /// Checks the access tokens this service issues, as the gateway does.
    verifier: TokenVerifier,
    /// The Redis prefix of the token versions this service publishes.
    pub revocation_prefix: String,
    client: reqwest::Client,
}

/// The configuration of a test service (ports chosen by the system).
pub fn config(identity: &TestIdentity) -> Config {
    let mut config = Config::parse_from([
        "customer-service",
        "--http-addr=127.0.0.1:0",
        "--admin-addr=127.0.0.1:0",
        "--database-url=postgres://unused",
        "--log-format=text",
        "--token-signing-keys=unused",
        "--service-clients=unused",
        "--gateway-jwks-url=http://unused",
    ]);
    config.token_signing_keys = SecretString::from(generate_pem().unwrap());
    config.service_clients = SecretString::from(service_clients());
    config.gateway_jwks_url = identity.gateway_jwks_url();
    config.redis_url = Some(SecretString::from(sales_testkit::redis_url()));
    config.revocation_prefix = format!("t{}:token-version:", uuid::Uuid::new_v4().simple());
    config
}

/// A signed-in customer, as the gateway says so.
pub fn as_customer(id: i64) -> Who {
    Who::Customer(id)
}

pub fn as_admin(id: i64) -> Who {
    Who::Admin(id)
}

/// Someone without an account, through the gateway, with the seeds' routes open (as
/// in the local run).
pub const ANONYMOUS: Who = Who::Anonymous { seed_compat: true };

impl Customers {
    pub async fn start() -> Customers {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Customers {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("customer").await;
        let identity = TestIdentity::start().await;
        let mut config = config(&identity);
        config.database = db.args();
        adjust(&mut config);
        Self::start_on(db, identity, config).await
    }

    /// Start with `config` on an existing database (a restart).
    async fn start_on(db: TestDatabase, identity: TestIdentity, config: Config) -> Customers {
        let revocation_prefix = config.revocation_prefix.clone();
        let service = build(config).await.expect("customer service starts");
        let base = service.base_url();
        let admin = service.admin_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("customer service ready");
        let keys = KeySet::remote(&format!("{base}/.well-known/jwks.json")).unwrap();
        let verifier = TokenVerifier::new(API_AUDIENCE, vec![(IDENTITY_ISSUER.to_owned(), keys)]);
        Customers {
            service: Some(service),
            db: Some(db),
            base,
            admin,
            identity,
            verifier,
            revocation_prefix,
            client: sales_testkit::http_client(),
        }
    }

    /// Stop, then start again on the same database with another configuration.
    pub async fn restart(mut self, adjust: impl FnOnce(&mut Config)) -> Customers {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        let db = self.db.take().expect("database");
        let mut config = config(&self.identity);
        config.database = db.args();
        adjust(&mut config);
        Self::start_on(db, self.identity, config).await
    }

    /// The token the test gateway gives a request of `who` to this service.
    pub fn token(&self, who: Who) -> Option<String> {
        self.identity.token("customer", who)
    }

    /// A gateway token for an anonymous caller at `ip` (the seeds' routes open).
    pub fn anonymous_from(&self, ip: &str) -> String {
        let ip: IpAddr = ip.parse().unwrap();
        self.identity
            .minter()
            .sign_as_gateway(&TokenClaims::gateway(
                service_audience("customer"),
                OnBehalfOf::Anonymous,
                true,
                Some(ip),
                Duration::from_secs(60),
            ))
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        who: Who,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = self.token(who);
        self.request_with(method, path, token.as_deref(), body)
            .await
    }

    /// A request with this bearer token (or none).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.exchange(method, path, token, body).await;
        (status, body)
    }

    /// A request with this bearer token (or none): status, headers and body.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            r = r.bearer_auth(token);
        }
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET` as an admin.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Who::Admin(999), None).await
    }

    pub async fn get_as(&self, path: &str, who: Who) -> (StatusCode, Value) {
        self.request(Method::GET, path, who, None).await
    }

    /// `POST` by someone without an account (the seeds' routes open).
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, ANONYMOUS, Some(body))
            .await
    }

    pub async fn post_as(&self, path: &str, who: Who, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, who, Some(body)).await
    }

    pub async fn put_as(&self, path: &str, who: Who, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, who, Some(body)).await
    }

    /// Send `body` as is, with this content type (or none), as an anonymous caller
    /// (`put`/other routes: as an admin).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let who = if method == Method::POST {
            ANONYMOUS
        } else {
            Who::Admin(999)
        };
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token(who).unwrap())
            .body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The raw text of a response, to look for things that must not be there.
    pub async fn text(&self, method: Method, path: &str, who: Who, body: Option<Value>) -> String {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = self.token(who) {
            r = r.bearer_auth(token);
        }
        if let Some(body) = body {
            r = r.json(&body);
        }
        r.send().await.unwrap().text().await.unwrap()
    }

    /// Register through the canonical API (202) and log in: the new customer's id
    /// and token.
    pub async fn register(&self, email: &str, password: &str, name: &str) -> (i64, String) {
        let (status, body) = self
            .post(
                "/api/v1/customers/register",
                json!({"email": email, "password": password, "name": name}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "register {email}: {body}");
        let (status, body) = self.login(email, password).await;
        assert_eq!(status, StatusCode::OK, "log in {email}: {body}");
        (
            body["customer_id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/customers/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// The claims of an access token this service issued, checked as the gateway does.
    pub async fn verify(&self, token: &str) -> TokenClaims {
        self.verifier
            .verify(token)
            .await
            .unwrap_or_else(|e| panic!("token does not verify: {e}"))
    }

    /// Log in, retrying for a while: the admin account is set up just after the
    /// service becomes ready. The claims once `accept` likes them.
    pub async fn wait_for_login(
        &self,
        email: &str,
        password: &str,
        accept: impl Fn(&TokenClaims) -> bool,
    ) -> TokenClaims {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.login(email, password).await;
            if status == StatusCode::OK {
                let claims = self.verify(body["token"].as_str().unwrap()).await;
                if accept(&claims) {
                    return claims;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "login of {email} never gave the expected token: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// RFC 7662 introspection with the gateway's client credentials.
    pub async fn introspect(&self, token: &str) -> Value {
        let r = self
            .client
            .post(format!("{}/oauth/introspect", self.base))
            .basic_auth("gateway", Some(TEST_CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// The Prometheus text of the admin port.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        self.db.as_ref().expect("database").pool().await
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}
