//! `tls.mode: certManager`: a cert-manager `Certificate` (`cert-manager.io/v1`) per
//! built-in server ([`super::tls::servers`]), named like its Secret
//! (`<system>-<component>-tls`), which cert-manager writes (`tls.crt`, `tls.key`,
//! `ca.crt`) and renews: one year, renewed 30 days before its end, as the operator's
//! own; ECDSA P-256 keys, a new one at each renewal.
//!
//! The kind is optional ([`crate::optional_kinds`]): without cert-manager's CRDs the
//! Certificates are skipped and the status says so (`ProvidersAvailable=False`,
//! reason `CertManagerNotInstalled`); the servers wait for their Secrets.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::Child;
use super::names::{Component, Names};
use super::services::meta;
use crate::crd::{SalesSystemSpec, TlsMode};

/// cert-manager's API group.
pub const GROUP: &str = "cert-manager.io";

/// cert-manager's `Certificate` kind.
pub fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", "Certificate"),
        "certificates",
    )
}

/// Whether the spec has cert-manager issue the certificates.
pub fn used(spec: &SalesSystemSpec) -> bool {
    spec.tls.mode == TlsMode::CertManager
}

/// The Certificates of `spec` (none unless `tls.mode` is `certManager`).
pub fn certificates(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let Some(issuer) = spec.tls.issuer_ref.as_ref().filter(|_| used(spec)) else {
        return Ok(Vec::new());
    };
    let mut issuer_ref = json!({"name": issuer.name, "kind": issuer.kind.as_str()});
    issuer_ref["group"] = issuer.group.as_deref().unwrap_or(GROUP).into();
    let resource = certificate_resource();
    let mut out = Vec::new();
    for server in super::tls::servers(names, spec) {
        let labels = names.labels(server.component);
        let mut private_key =
            json!({"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"});
        if server.component == Component::Kafka {
            // Kafka reads PEM keys in PKCS#8 only (cert-manager's default is PKCS#1).
            private_key["encoding"] = "PKCS8".into();
        }
        let object = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": meta(names, server.secret.clone(), labels.clone(), owner),
            "spec": {
                "secretName": server.secret,
                "secretTemplate": {"labels": labels},
                "commonName": server.dns_names.first(),
                "dnsNames": server.dns_names,
                "duration": "8760h",
                "renewBefore": "720h",
                "privateKey": private_key,
                "usages": ["server auth", "digital signature", "key encipherment"],
                "issuerRef": issuer_ref,
            },
        });
        out.push(Child {
            resource: resource.clone(),
            object: serde_json::from_value(object)?,
        });
    }
    Ok(out)
}
