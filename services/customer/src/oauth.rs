//! The identity provider's own endpoints, outside the access table (each
//! authenticates its caller itself):
//!
//! - `GET /.well-known/jwks.json`: the public keys tokens are signed with (RFC 7517);
//! - `POST /oauth/token`: a service token for a service, by the client credentials
//!   grant (RFC 6749 §4.4; client authentication by HTTP Basic or by `client_id` and
//!   `client_secret` in the form, §2.3.1);
//! - `POST /oauth/introspect`: whether a customer's access token is active, i.e.
//!   signed by us, unexpired, and of the customer's current token version and role
//!   (RFC 7662), for authenticated clients only.
//!
//! Errors are OAuth's own shape (`{"error": "invalid_client", "error_description"}`),
//! as OAuth clients expect.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sales_platform::identity::claims::{ROLE_ADMIN, TokenKind};
use sales_platform::identity::keys::Jwks;
use sales_platform::identity::{INTROSPECTION_PATH, JWKS_PATH, TOKEN_PATH};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::CustomerContext;
use crate::revocation;
use crate::service_clients::ClientRights;

/// The paths of these routes (they need no access rule).
pub const PATHS: &[&str] = &[JWKS_PATH, TOKEN_PATH, INTROSPECTION_PATH];

#[derive(OpenApi)]
#[openapi(paths(jwks, token, introspect))]
pub struct OAuthDoc;

pub fn router(ctx: CustomerContext) -> axum::Router {
    axum::Router::new()
        .route(JWKS_PATH, get(jwks))
        .route(TOKEN_PATH, post(token))
        .route(INTROSPECTION_PATH, post(introspect))
        .with_state(ctx)
}

/// The public keys of this identity provider: every token it issues names one (`kid`).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "identity",
    responses((status = 200, description = "A JWKS document (RFC 7517): Ed25519 keys", body = Object)))]
async fn jwks(State(ctx): State<CustomerContext>) -> Response {
    let jwks: Jwks = ctx.issuer.jwks();
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(jwks),
    )
        .into_response()
}

/// The form of a token request.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
pub struct TokenRequest {
    /// Only `client_credentials`.
    #[schema(example = "client_credentials")]
    grant_type: Option<String>,
    /// The client (a service's name), unless given by HTTP Basic.
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds the token is valid for.
    expires_in: u64,
    /// The rights the token carries, space-separated.
    scope: String,
}

/// A service token (OAuth 2.0 client credentials grant).
#[utoipa::path(post, path = "/oauth/token", tag = "identity",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenAnswer),
              (status = 400, description = "`invalid_request` or `unsupported_grant_type`", body = Object),
              (status = 401, description = "`invalid_client`: unknown client or wrong secret", body = Object)))]
async fn token(
    State(ctx): State<CustomerContext>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be an application/x-www-form-urlencoded token request",
        );
    };
    let Some(client) = authenticate(&ctx, &headers, form.client_id, form.client_secret) else {
        return invalid_client();
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    match ctx.issuer.service_token(client) {
        Ok(issued) => {
            tracing::debug!(client = client.id, "service token issued");
            no_store(
                StatusCode::OK,
                json!(TokenAnswer {
                    access_token: issued.token,
                    token_type: "Bearer",
                    expires_in: ctx.issuer.service_ttl().as_secs(),
                    scope: client.scopes.join(" "),
                }),
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot sign a service token");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the token could not be issued",
            )
        }
    }
}

/// The form of an introspection request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectionRequest {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Whether a customer's access token is active (RFC 7662).
#[utoipa::path(post, path = "/oauth/introspect", tag = "identity",
    request_body(content = IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`{\"active\": false}`, or `active: true` with sub, role, ver, exp", body = Object),
              (status = 400, description = "`invalid_request`", body = Object),
              (status = 401, description = "`invalid_client`", body = Object),
              (status = 503, description = "The database is unavailable", body = Object)))]
async fn introspect(
    State(ctx): State<CustomerContext>,
    headers: HeaderMap,
    form: Result<Form<IntrospectionRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be an application/x-www-form-urlencoded introspection request",
        );
    };
    if authenticate(&ctx, &headers, form.client_id, form.client_secret).is_none() {
        return invalid_client();
    }
    let Some(token) = form.token.filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    let inactive = || no_store(StatusCode::OK, json!({ "active": false }));
    let Ok(claims) = ctx.issuer.verify_access(&token).await else {
        return inactive();
    };
    let (Some(TokenKind::CustomerAccess), Some(ver), Ok(customer_id)) =
        (claims.kind(), claims.ver, claims.sub.parse::<i64>())
    else {
        return inactive();
    };
    let current = match ctx.pool.acquire().await {
        Ok(mut conn) => revocation::current(&mut conn, customer_id).await,
        Err(e) => Err(e.into()),
    };
    let (version, role) = match current {
        Ok(Some(found)) => found,
        Ok(None) => return inactive(),
        Err(err) => {
            tracing::warn!(error = %err, "introspection: the database is unavailable");
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the database is unavailable; try again shortly",
            );
        }
    };
    if let Some(versions) = &ctx.token_versions
        && let Err(err) = versions.set_if_absent(customer_id, version).await
    {
        tracing::debug!(error = %err, "cannot publish a token version");
    }
    // A demoted admin's old tokens say `admin`: the role must still hold.
    let role_holds = claims.role != ROLE_ADMIN || role == ROLE_ADMIN;
    if ver != version || !role_holds {
        return inactive();
    }
    no_store(
        StatusCode::OK,
        json!({
            "active": true,
            "sub": claims.sub,
            "role": claims.role,
            "ver": ver,
            "exp": claims.exp,
            "iat": claims.iat,
            "iss": claims.iss,
            "token_type": "access_token",
        }),
    )
}

/// The client, by HTTP Basic or by `client_id` and `client_secret` in the form.
fn authenticate(
    ctx: &CustomerContext,
    headers: &HeaderMap,
    form_id: Option<String>,
    form_secret: Option<String>,
) -> Option<&'static ClientRights> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    let (id, secret) = match (basic, form_id, form_secret) {
        (Some(pair), None, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => return None,
    };
    let client = ctx.clients.authenticate(&id, &secret);
    if client.is_none() {
        tracing::warn!(client = %id, "a service client failed to authenticate");
    }
    client
}

fn invalid_client() -> Response {
    let mut response = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "unknown client or wrong secret",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="sales-system""#),
    );
    response
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> Response {
    no_store(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

/// A JSON answer with `Cache-Control: no-store` (RFC 6749 §5.1).
fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}
