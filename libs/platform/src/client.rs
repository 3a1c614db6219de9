//! Calling another service over HTTP: the calling service's own token on every call
//! (`Authorization: Bearer`, [`ServiceTokens`]), a timeout, the W3C trace context
//! passed on, and errors that say which service failed and how.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::{Method, StatusCode};
use sales_contracts::api::ErrorResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::identity::service_credentials::ServiceTokens;
use opentelemetry_http::HeaderInjector;
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, SERVER_ADDRESS, SERVER_PORT, SERVICE_PEER_NAME,
    URL_FULL,
};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service did not answer (down, refused, timed out).
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        service: &'static str,
        reason: String,
    },
    /// The service answered with an error status.
    #[error("{service} answered {status}: {}", body.as_ref().map(|b| b.error.message.as_str()).unwrap_or("(no error body)"))]
    Status {
        service: &'static str,
        status: StatusCode,
        body: Option<ErrorResponse>,
    },
    /// The service answered 2xx with a body we could not read.
    #[error("{service} sent an unreadable answer: {reason}")]
    BadAnswer {
        service: &'static str,
        reason: String,
    },
}

impl CallError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn error_body(&self) -> Option<&ErrorResponse> {
        match self {
            CallError::Status { body, .. } => body.as_ref(),
            _ => None,
        }
    }
}

/// A client for one peer service.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    service: &'static str,
    base_url: String,
    http: reqwest::Client,
    credentials: Option<Arc<ServiceTokens>>,
}

impl ServiceClient {
    pub fn new(service: &'static str, base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = crate::tls::http_client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(ServiceClient {
            service,
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
            credentials: None,
        })
    }

    /// Send this service's token with every call.
    pub fn with_credentials(mut self, credentials: Arc<ServiceTokens>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        // OpenTelemetry's HTTP client span: named by the method alone.
        let url = format!("{}{}", self.base_url, path);
        let (host, port) = host_and_port(&url);
        let span = tracing::info_span!(
            "http.client",
            otel.kind = "client",
            otel.name = method.as_str(),
            otel.status_code = tracing::field::Empty,
            { SERVICE_PEER_NAME } = self.service,
            { HTTP_REQUEST_METHOD } = %method,
            { URL_FULL } = %url,
            { SERVER_ADDRESS } = host.as_deref(),
            { SERVER_PORT } = port,
            { HTTP_RESPONSE_STATUS_CODE } = tracing::field::Empty,
        );
        async {
            let first = self.send(method.clone(), path, body).await;
            // A refused service token (the peer saw keys rotate, say): once more
            // with a fresh one.
            match (first, &self.credentials) {
                (Err(CallError::Status { status, .. }), Some(credentials))
                    if status == StatusCode::UNAUTHORIZED =>
                {
                    credentials.forget().await;
                    self.send(method, path, body).await
                }
                (result, _) => result,
            }
        }
        .instrument(span)
        .await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let mut headers = HeaderMap::new();
        TraceContextPropagator::new().inject_context(
            &tracing::Span::current().context(),
            &mut HeaderInjector(&mut headers),
        );
        let url = format!("{}{}", self.base_url, path);
        let mut request = self.http.request(method, url).headers(headers);
        if let Some(credentials) = &self.credentials {
            let token = credentials
                .token()
                .await
                .map_err(|e| CallError::Unavailable {
                    service: self.service,
                    reason: format!("no service token to call it with: {e}"),
                })?;
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CallError::Unavailable {
            service: self.service,
            reason: if e.is_timeout() {
                "no answer in time".to_owned()
            } else {
                e.to_string()
            },
        })?;
        let status = response.status();
        let span = tracing::Span::current();
        span.record(HTTP_RESPONSE_STATUS_CODE, status.as_u16());
        if !status.is_success() {
            span.record("otel.status_code", "ERROR");
        }
        let bytes = response.bytes().await.map_err(|e| CallError::Unavailable {
            service: self.service,
            reason: e.to_string(),
        })?;
        if !status.is_success() {
            return Err(CallError::Status {
                service: self.service,
                status,
                body: serde_json::from_slice(&bytes).ok(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::BadAnswer {
            service: self.service,
            reason: e.to_string(),
        })
    }
}

/// `server.address` and `server.port` of a URL (the port: given, or the scheme's).
pub fn host_and_port(url: &str) -> (Option<String>, Option<u16>) {
    match url.parse::<http::Uri>() {
        Ok(uri) => {
            let port = uri.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            });
            (uri.host().map(str::to_owned), port)
        }
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::host_and_port;

    #[test]
    fn server_address_and_port_come_from_the_url() {
        assert_eq!(
            host_and_port("http://inventory:8005/api/v1/x?y=1"),
            (Some("inventory".into()), Some(8005))
        );
        assert_eq!(
            host_and_port("https://example.com/a"),
            (Some("example.com".into()), Some(443))
        );
        assert_eq!(host_and_port("not a url"), (None, None));
    }
}
