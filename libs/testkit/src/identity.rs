//! Credentials for testing one service on its own: a test gateway and a test
//! identity provider, each with a real Ed25519 key, their JWKS documents served over
//! HTTP on loopback, and tokens signed for any caller. The service under test
//! fetches and checks them exactly as it does in production; the system tests run
//! the real gateway and customer service instead.
//!
//! The server also answers introspection (`POST /oauth/introspect`) for the admin
//! port's checks: any customer access token it signed is active until
//! [`TestIdentity::revoke`]d.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use sales_platform::config::IdentityArgs;
use sales_platform::identity::claims::{OnBehalfOf, TokenClaims};
use sales_platform::identity::keys::{SigningKeys, generate_pem};
use sales_platform::identity::service_audience;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

/// The client secret every service under test is given.
pub const TEST_CLIENT_SECRET: &str = "test-client-secret-0123456789";

/// Who a token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// No credential at all.
    Nobody,
    /// A caller without an account, through the gateway; `seed_compat`: the seeds'
    /// routes are open.
    Anonymous {
        seed_compat: bool,
    },
    Customer(i64),
    Admin(i64),
    /// Another service, with these scopes.
    Service(&'static str, &'static [&'static str]),
}

/// Signs tokens as the gateway and as the identity provider, given their keys.
#[derive(Clone)]
pub struct Minter {
    gateway: Arc<SigningKeys>,
    provider: Arc<SigningKeys>,
}

impl Minter {
    /// From the two issuers' private keys (PEM).
    pub fn new(gateway_pem: &str, provider_pem: &str) -> Minter {
        let load = |pem: &str| {
            Arc::new(
                SigningKeys::from_pem(pem)
                    .unwrap_or_else(|e| panic!("cannot load a test key: {e}")),
            )
        };
        Minter {
            gateway: load(gateway_pem),
            provider: load(provider_pem),
        }
    }

    /// A token for a request by `who` to `service` (`None` for [`Who::Nobody`]).
    pub fn token(&self, service: &str, who: Who) -> Option<String> {
        let ttl = Duration::from_secs(600);
        let gateway = |on_behalf_of, seed_compat| {
            TokenClaims::gateway(
                service_audience(service),
                on_behalf_of,
                seed_compat,
                None,
                ttl,
            )
        };
        let (keys, claims) = match who {
            Who::Nobody => return None,
            Who::Anonymous { seed_compat } => {
                (&self.gateway, gateway(OnBehalfOf::Anonymous, seed_compat))
            }
            Who::Customer(id) => (&self.gateway, gateway(OnBehalfOf::Customer(id), false)),
            Who::Admin(id) => (&self.gateway, gateway(OnBehalfOf::Admin(id), false)),
            Who::Service(name, scopes) => (
                &self.provider,
                TokenClaims::service(name, scopes, vec![service_audience(service)], ttl),
            ),
        };
        Some(sign(keys, &claims))
    }

    /// Sign any claims as the gateway.
    pub fn sign_as_gateway(&self, claims: &TokenClaims) -> String {
        sign(&self.gateway, claims)
    }

    /// Sign any claims as the identity provider.
    pub fn sign_as_provider(&self, claims: &TokenClaims) -> String {
        sign(&self.provider, claims)
    }

    /// A customer's (or admin's) access token, as the identity provider issues it.
    pub fn access_token(&self, customer_id: i64, admin: bool) -> String {
        let claims = TokenClaims::customer_access(
            customer_id,
            admin,
            1,
            "Test",
            "test@example.com",
            Duration::from_secs(600),
        );
        self.sign_as_provider(&claims)
    }
}

fn sign(keys: &SigningKeys, claims: &TokenClaims) -> String {
    keys.sign(claims)
        .unwrap_or_else(|e| panic!("cannot sign a test token: {e}"))
}

#[derive(Clone)]
struct Shared {
    minter: Minter,
    revoked: Arc<Mutex<HashSet<String>>>,
}

/// The test issuers, serving their keys.
pub struct TestIdentity {
    shared: Shared,
    pub base_url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIdentity {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Deserialize)]
struct IntrospectionForm {
    token: String,
}

impl TestIdentity {
    pub async fn start() -> TestIdentity {
        let pem = || generate_pem().unwrap_or_else(|e| panic!("cannot make a test key: {e}"));
        let shared = Shared {
            minter: Minter::new(&pem(), &pem()),
            revoked: Arc::default(),
        };
        let app = Router::new()
            .route(
                "/.well-known/jwks.json",
                get(|State(s): State<Shared>| async move { Json(s.minter.provider.jwks()) }),
            )
            .route(
                "/gateway/jwks.json",
                get(|State(s): State<Shared>| async move { Json(s.minter.gateway.jwks()) }),
            )
            .route("/oauth/introspect", post(introspect))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the test identity server: {e}"));
        let base_url = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => panic!("the test identity server has no address: {e}"),
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestIdentity {
            shared,
            base_url,
            server,
        }
    }

    /// The identity settings of a service under test.
    pub fn args(&self) -> IdentityArgs {
        IdentityArgs {
            identity_url: self.base_url.clone(),
            gateway_jwks_url: self.gateway_jwks_url(),
            service_client_secret: SecretString::from(TEST_CLIENT_SECRET),
        }
    }

    pub fn gateway_jwks_url(&self) -> String {
        format!("{}/gateway/jwks.json", self.base_url)
    }

    pub fn minter(&self) -> &Minter {
        &self.shared.minter
    }

    /// A token for a request by `who` to `service` (`None` for [`Who::Nobody`]).
    pub fn token(&self, service: &str, who: Who) -> Option<String> {
        self.shared.minter.token(service, who)
    }

    /// From now on introspection says `token` is not active.
    pub fn revoke(&self, token: &str) {
        self.shared
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned());
    }
}

/// Active: signed by the test provider as an access token, and not revoked. The
/// client is not checked: only services under test reach this server.
async fn introspect(State(s): State<Shared>, Form(form): Form<IntrospectionForm>) -> Json<Value> {
    let revoked = s
        .revoked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&form.token);
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<TokenClaims>(&form.token).ok();
    let signed_here = jsonwebtoken::decode_header(&form.token)
        .ok()
        .and_then(|h| h.kid)
        .is_some_and(|kid| kid == s.minter.provider.active_kid());
    match claims {
        Some(c) if signed_here && !revoked => {
            Json(json!({"active": true, "sub": c.sub, "role": c.role, "ver": c.ver}))
        }
        _ => Json(json!({"active": false})),
    }
}
