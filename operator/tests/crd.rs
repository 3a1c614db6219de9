//! The committed CRD and reference page are what the code generates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use kube::CustomResourceExt;
use sales_operator::crd::{SalesSystem, crd_yaml};

#[test]
fn committed_crd_is_what_crdgen_prints() {
    let path = common::workspace().join("operator/crd/salessystem.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = crd_yaml().expect("the CRD serializes");
    assert!(
        committed == generated,
        "{} is out of date: run `cargo run -p sales-operator -- crdgen > operator/crd/salessystem.yaml`",
        path.display()
    );
    // The binary prints the same.
    assert_eq!(common::operator(&["crdgen"]), generated);
}

#[test]
fn committed_reference_page_is_current() {
    let path = common::workspace().join("docs/operator/crd-reference.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sales_operator::reference::markdown(),
        "{} is out of date: run `cargo run -p sales-operator -- crdgen --reference > docs/operator/crd-reference.md`",
        path.display()
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    let crd = SalesSystem::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("salessystems.sales-system.io")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["sales".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Ready", "Phase", "Services", "Gateway", "Age"]);
}

#[test]
fn every_cel_rule_is_in_the_schema() {
    let yaml = crd_yaml().expect("the CRD serializes");
    for message in [
        "rabbitmq: give either managed or external, not both",
        "postgres: give either managed or external, not both",
        "redis: give either managed or external, not both",
        "a service's database override gives exactly one of managed, external or cloudNativePG",
        "postgres: give at most one of managed, external or cloudNativePG",
        "changing a database's provider would leave its data behind",
        "cloudNativePG.scheduledBackup needs backup",
        "cloudNativePG: clusterName refers to a Cluster that exists",
        "autoscaling: minReplicas must not exceed maxReplicas",
        "autoscaling: scaleToZero needs minReplicas 0",
        "autoscaling: minReplicas 0 needs scaleToZero",
        "gateway.nodePort needs serviceType NodePort",
        "gateway.trustedProxies: each entry is an IPv4 or IPv6 address or CIDR block",
        "a SalesSystem's name is at most 30 characters",
    ] {
        assert!(yaml.contains(message), "missing rule: {message}");
    }
}
