//! A gateway in front of small echo servers standing in for the services, with
//! Redis from `sales_testkit::redis_url()` under a key prefix of its own. The
//! customer echo server also stands in for the identity provider: it serves the
//! public keys of [`PROVIDER`] and answers introspection (active unless revoked).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use gateway_service::routes::Upstream;
use gateway_service::{Config, build};
use sales_platform::identity::claims::{Audience, TokenClaims};
use sales_platform::identity::key_set::KeySet;
use sales_platform::identity::keys::{SigningKeys, generate_pem};
use sales_platform::identity::{GATEWAY_ISSUER, TokenVerifier, service_audience};
use sales_platform::service::RunningService;
use sales_testkit::identity::TEST_CLIENT_SECRET;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The identity provider's key, for every test of this binary.
pub static PROVIDER: LazyLock<SigningKeys> =
    LazyLock::new(|| SigningKeys::from_pem(&generate_pem().unwrap()).unwrap());
/// A key nobody trusts.
pub static STRANGER: LazyLock<SigningKeys> =
    LazyLock::new(|| SigningKeys::from_pem(&generate_pem().unwrap()).unwrap());
/// Tokens the stand-in identity provider says are revoked.
pub static REVOKED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// What the echo servers saw.
#[derive(Default)]
pub struct Seen {
    /// `(service, method, path)` of every request.
    pub hits: Mutex<Vec<(String, String, String)>>,
    /// `/…/flaky` answers 503 while this is false.
    pub healthy: AtomicBool,
    /// The stand-in identity provider's introspection answers 503 while this is true.
    pub introspection_down: AtomicBool,
}

impl Seen {
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m, p)| m == method && p == path)
            .count()
    }
}

/// How long `/…/slow` takes to answer.
pub const SLOW: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct EchoState {
    name: &'static str,
    seen: Arc<Seen>,
}

/// Answers with what it received: service, method, path, query, headers, body size.
/// Paths ending in `/slow` wait [`SLOW`]; `/unavailable` is a 503; `/busy` a 503 with
/// `Retry-After` (load shed on purpose); `/flaky` a 503 unless [`Seen::healthy`]; `/teapot` a 418 with a header and a text body.
async fn echo(State(state): State<EchoState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    state.seen.hits.lock().unwrap().push((
        state.name.to_owned(),
        parts.method.to_string(),
        path.clone(),
    ));
    if state.name == "customer" && path == "/.well-known/jwks.json" {
        return axum::Json(PROVIDER.jwks()).into_response();
    }
    if state.name == "customer" && path == "/oauth/introspect" {
        if state.seen.introspection_down.load(Ordering::SeqCst) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
        let token = form.get("token").cloned().unwrap_or_default();
        let revoked = REVOKED.lock().unwrap().contains(&token);
        let claims = jsonwebtoken::dangerous::insecure_decode_claims::<TokenClaims>(&token).ok();
        return axum::Json(match claims {
            Some(c) if !revoked => {
                json!({"active": true, "sub": c.sub, "role": c.role, "ver": c.ver})
            }
            _ => json!({"active": false}),
        })
        .into_response();
    }
    if path == "/openapi.json" {
        return axum::Json(json!({
            "openapi": "3.1.0",
            "info": {"title": format!("{} service", state.name), "version": "1"},
            "paths": {"/api/v1/things": {"get": {"responses": {"200": {"description": "ok"}}}}}
        }))
        .into_response();
    }
    if path.ends_with("/slow") {
        tokio::time::sleep(SLOW).await;
    }
    if path.ends_with("/unavailable")
        || (path.ends_with("/flaky") && !state.seen.healthy.load(Ordering::SeqCst))
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("x-upstream", state.name)],
            axum::Json(json!({"error": {"code": "unavailable", "message": state.name}})),
        )
            .into_response();
    }
    if path.ends_with("/busy") {
        // Shedding load on purpose (the customer service's password hashing): alive.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            axum::Json(json!({"error": {"code": "busy", "message": state.name}})),
        )
            .into_response();
    }
    if path.ends_with("/teapot") {
        return (
            StatusCode::IM_A_TEAPOT,
            [
                ("x-custom", "short-and-stout"),
                ("content-type", "text/plain"),
            ],
            "I'm a teapot",
        )
            .into_response();
    }
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let headers: HashMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    axum::Json(json!({
        "service": state.name,
        "method": parts.method.as_str(),
        "path": path,
        "query": parts.uri.query(),
        "headers": headers,
        "body_len": body.len(),
    }))
    .into_response()
}

/// `a=1&b=2` as pairs (percent-decoded).
fn serde_urlencoded_pairs(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

async fn serve_echo(name: &'static str, seen: Arc<Seen>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(echo)
        .with_state(EchoState { name, seen });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

/// A URL where nothing listens.
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// One echo server per service (all sharing [`Seen`]), some of them replaced by dead URLs.
pub struct Backends {
    pub urls: HashMap<Upstream, String>,
    pub seen: Arc<Seen>,
    tasks: Vec<JoinHandle<()>>,
}

impl Backends {
    pub async fn start() -> Backends {
        Self::start_with_dead(&[]).await
    }

    pub async fn start_with_dead(dead: &[Upstream]) -> Backends {
        let seen = Arc::new(Seen::default());
        let mut urls = HashMap::new();
        let mut tasks = Vec::new();
        for upstream in Upstream::ALL {
            if dead.contains(&upstream) {
                urls.insert(upstream, dead_url().await);
            } else {
                let (url, task) = serve_echo(upstream.name(), seen.clone()).await;
                urls.insert(upstream, url);
                tasks.push(task);
            }
        }
        Backends { urls, seen, tasks }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A running gateway and a client for it.
pub struct Gateway {
    pub service: Option<RunningService>,
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

/// The configuration tests start from: every service on `backends`, real Redis under
/// a fresh prefix, a generous rate limit, quick retries, a breaker that stays out of
/// the way (tests that want it tighten it).
pub fn config(backends: &Backends) -> Config {
    let url = |u: Upstream| backends.urls[&u].clone();
    Config::parse_from([
        "gateway-service".to_owned(),
        "--http-addr=127.0.0.1:0".to_owned(),
        "--admin-addr=127.0.0.1:0".to_owned(),
        "--log-format=text".to_owned(),
        format!("--product-url={}", url(Upstream::Product)),
        format!("--order-url={}", url(Upstream::Order)),
        format!("--customer-url={}", url(Upstream::Customer)),
        format!("--payment-url={}", url(Upstream::Payment)),
        format!("--inventory-url={}", url(Upstream::Inventory)),
        format!("--shipping-url={}", url(Upstream::Shipping)),
        format!("--notification-url={}", url(Upstream::Notification)),
        format!("--gateway-signing-keys={}", generate_pem().unwrap()),
        format!("--service-client-secret={TEST_CLIENT_SECRET}"),
        format!("--revocation-prefix={}", unique_prefix()),
        format!("--redis-url={}", sales_testkit::redis_url()),
        format!("--rate-limit-prefix={}", unique_prefix()),
        "--rate-limit-requests=1000".to_owned(),
        "--rate-limit-window=15m".to_owned(),
        "--rate-limit-redis-timeout=100ms".to_owned(),
        "--trusted-proxies=".to_owned(),
        "--seed-compat-open=false".to_owned(),
        "--upstream-timeout=2s".to_owned(),
        "--upstream-retries=3".to_owned(),
        "--retry-backoff=10ms".to_owned(),
        "--breaker-window=10s".to_owned(),
        "--breaker-buckets=10".to_owned(),
        "--breaker-error-percent=50".to_owned(),
        "--breaker-min-requests=1000".to_owned(),
        "--breaker-open-for=10s".to_owned(),
    ])
}

impl Gateway {
    pub async fn start(config: Config) -> Gateway {
        sales_testkit::init_test_logging();
        let service = build(config).await.expect("gateway starts");
        let base = service.base_url();
        let admin = service.admin_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(10))
            .await
            .expect("gateway ready");
        Gateway {
            service: Some(service),
            base,
            admin,
            client: sales_testkit::http_client(),
        }
    }

    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        )
    }

    /// Send and read: status, headers, JSON body (`Null` when not JSON).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
        let response = request.send().await.expect("gateway answers");
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if matches!(method, "POST" | "PUT" | "PATCH") {
            request = request.json(&json!({"x": 1}));
        }
        self.send(request).await
    }

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

    /// The value of the sample of `name` with all of `labels`, if exported.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    pub async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a good access token (token version 1).
pub fn claims(customer_id: i64, admin: bool) -> TokenClaims {
    TokenClaims::customer_access(
        customer_id,
        admin,
        1,
        "Test",
        &format!("c{customer_id}@example.com"),
        Duration::from_secs(600),
    )
}

pub fn customer(customer_id: i64) -> String {
    PROVIDER.sign(&claims(customer_id, false)).unwrap()
}

pub fn admin(customer_id: i64) -> String {
    PROVIDER.sign(&claims(customer_id, true)).unwrap()
}

/// Signed by a key nobody trusts.
pub fn forged() -> String {
    STRANGER.sign(&claims(1, true)).unwrap()
}

/// The provider's key id, a stranger's signature.
pub fn bad_signature() -> String {
    let good = admin(1);
    let other = STRANGER.sign(&claims(1, true)).unwrap();
    let (head, payload, _) = split3(&good);
    let (_, _, signature) = split3(&other);
    format!("{head}.{payload}.{signature}")
}

fn split3(token: &str) -> (&str, &str, &str) {
    let mut parts = token.splitn(3, '.');
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

pub fn expired() -> String {
    let mut c = claims(1, false);
    c.iat = now() - 7200;
    c.nbf = now() - 7200;
    c.exp = now() - 3600;
    PROVIDER.sign(&c).unwrap()
}

pub fn wrong_issuer() -> String {
    let mut c = claims(1, false);
    c.iss = "somebody-else".into();
    PROVIDER.sign(&c).unwrap()
}

/// A token of the identity provider for a service, not for the API.
pub fn wrong_audience() -> String {
    let mut c = claims(1, true);
    c.aud = Audience::One(service_audience("order"));
    PROVIDER.sign(&c).unwrap()
}

/// The claims of the token the gateway gave an upstream request (from the echo's
/// `authorization` header), verified with the gateway's published keys.
pub async fn forwarded_claims(gw: &Gateway, echo: &Value) -> TokenClaims {
    let upstream = echo["service"].as_str().unwrap();
    let authorization = echo["headers"]["authorization"].as_str().unwrap();
    let token = authorization.strip_prefix("Bearer ").unwrap();
    let keys = KeySet::remote(&format!("{}/.well-known/jwks.json", gw.base)).unwrap();
    TokenVerifier::new(
        service_audience(upstream),
        vec![(GATEWAY_ISSUER.into(), keys)],
    )
    .verify(token)
    .await
    .unwrap_or_else(|e| panic!("the forwarded token does not verify: {e}"))
}

/// Send `head` then `body` as raw bytes to `base` (`http://host:port`); the answer as text.
pub async fn raw_http(base: &str, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}
