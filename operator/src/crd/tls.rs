//! `spec.tls`: TLS between the services and their databases, broker and cache
//! (docs/operator/tls.md). Off by default; `operatorCA` has the operator make a CA
//! and a server certificate per built-in server, `certManager` has cert-manager
//! issue them from an `Issuer` or `ClusterIssuer` the user names.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SECRET_KEY_PATTERN, SECRET_NAME_PATTERN};

/// The name of a Kubernetes object (RFC 1123 subdomain).
const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// TLS between the services and PostgreSQL, RabbitMQ, Kafka and Redis: the built-in
/// servers serve TLS only (their plaintext ports closed; the managed Kafka's client
/// listener becomes SASL_SSL), a Strimzi Kafka is reached on a listener with TLS, and
/// the services verify them against the CAs mounted at `/etc/sales-system/tls/`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.mode) ? self.mode : 'off') != 'certManager' || has(self.issuerRef)").message("tls.issuerRef is required with mode certManager: the Issuer or ClusterIssuer that signs the certificates"),
    validation = Rule::new("!has(self.issuerRef) || (has(self.mode) ? self.mode : 'off') == 'certManager'").message("tls.issuerRef goes with mode certManager only"),
    validation = Rule::new("!has(self.externalCA) || (has(self.mode) ? self.mode : 'off') != 'off'").message("tls.externalCA goes with mode operatorCA or certManager (TLS is off)")
)]
pub struct TlsSpec {
    /// `off` (the default): plaintext, as before. `operatorCA`: the operator makes a
    /// CA (`<name>-tls-ca`) and a server certificate per built-in server, renewed 30
    /// days before they expire. `certManager`: cert-manager issues the server
    /// certificates from `issuerRef` (needs cert-manager's CRDs).
    #[serde(default)]
    pub mode: TlsMode,
    /// With `certManager`: who signs the certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// The CA certificate (PEM) that signed the certificates of your `external`
    /// databases, broker (Kafka on `SSL` or `SASL_SSL` too) and Redis, and of an
    /// existing `RabbitmqCluster`: mounted as
    /// `/etc/sales-system/tls/external-ca.crt`. Unset: those are verified against the
    /// services' built-in public roots.
    #[serde(
        rename = "externalCA",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_ca: Option<CaSecretRef>,
}

impl TlsSpec {
    /// Whether the services speak TLS to their databases, broker and cache.
    pub fn enabled(&self) -> bool {
        self.mode != TlsMode::Off
    }
}

/// Who makes the built-in servers' certificates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TlsMode {
    /// Plaintext.
    #[default]
    #[serde(rename = "off")]
    Off,
    /// The operator's own CA.
    #[serde(rename = "operatorCA")]
    OperatorCa,
    /// cert-manager, from `issuerRef`.
    #[serde(rename = "certManager")]
    CertManager,
}

/// A cert-manager `Issuer` (of this namespace) or `ClusterIssuer`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// The issuer's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
    /// `Issuer` (the default) or `ClusterIssuer`.
    #[serde(default)]
    pub kind: IssuerKind,
    /// The issuer's API group; unset: `cert-manager.io` (external issuers have their
    /// own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub group: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum IssuerKind {
    #[default]
    Issuer,
    ClusterIssuer,
}

impl IssuerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        }
    }
}

/// A CA certificate in a Secret of the SalesSystem's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: String,
    /// The key holding the PEM certificate(s); unset: `ca.crt`.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}
