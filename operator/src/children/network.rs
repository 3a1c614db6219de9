//! NetworkPolicies: who may open a connection to whom.
//!
//! - each database: only its own service, on 5432;
//! - the broker: only the services that use it, on 5672;
//! - Redis: only the services that read it, on 6379;
//! - each service's API port: only the gateway and the peers that call it;
//! - the gateway's API port: anyone (it is the one public entry);
//! - every service's admin port (`/metrics`, dead letters): pods of this namespace, or
//!   of `networkPolicies.metricsNamespace` (where Prometheus runs);
//! - the consumer pods of an autoscaled service: their admin port only, as above (they
//!   reach their database, the broker and Redis like the service's own pods);
//! - the broker's management API (15672), while a consumer is autoscaled: the
//!   operator's pods (`app.kubernetes.io/name: sales-operator`) of the operator's
//!   namespace (of any namespace when it is not known, as in `render`), which read
//!   the queues' depth there.
//!
//! Only ingress is restricted; every pod of the system is selected by one policy, so
//! anything not listed is refused. The kubelet's probes are not affected.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::managed_dependencies;
use super::infrastructure::{AMQP_PORT, POSTGRES_PORT, RABBITMQ_MANAGEMENT_PORT, REDIS_PORT};
use super::names::{Component, LABEL_NAME, MANAGER, Names};
use super::services::{Role, meta};
use crate::catalogue::{ADMIN_PORT, AppService, HTTP_PORT};
use crate::crd::SalesSystemSpec;

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn pods_of(names: &Names, component: Component) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(names.selector(component)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn policy(
    names: &Names,
    component: Component,
    rules: Vec<NetworkPolicyIngressRule>,
    owner: &Option<OwnerReference>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(names, names.of(component), names.labels(component), owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names.selector(component)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            ..Default::default()
        }),
    }
}

/// Who may scrape the admin ports.
fn metrics_scrapers(spec: &SalesSystemSpec) -> Vec<NetworkPolicyPeer> {
    let mut peers = vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    }];
    if let Some(ns) = &spec.network_policies.metrics_namespace {
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    ns.clone(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    peers
}

/// Every NetworkPolicy of the system (none when switched off).
pub fn policies(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
    operator_namespace: Option<&str>,
) -> Vec<NetworkPolicy> {
    if !spec.network_policies.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    for service in AppService::ALL {
        let api_from = if service == AppService::Gateway {
            None // from anywhere
        } else {
            Some(
                service
                    .callers()
                    .map(|caller| pods_of(names, Component::Service(caller)))
                    .collect(),
            )
        };
        out.push(policy(
            names,
            Component::Service(service),
            vec![
                NetworkPolicyIngressRule {
                    from: api_from,
                    ports: Some(vec![tcp(HTTP_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(metrics_scrapers(spec)),
                    ports: Some(vec![tcp(ADMIN_PORT)]),
                },
            ],
            owner,
        ));
    }
    for service in spec.autoscaling.scaled_services() {
        out.push(policy(
            names,
            Component::Consumer(service),
            vec![NetworkPolicyIngressRule {
                from: Some(metrics_scrapers(spec)),
                ports: Some(vec![tcp(ADMIN_PORT)]),
            }],
            owner,
        ));
    }
    // Each managed dependency, reachable only from the pods of the services that use it.
    let mut users: Vec<(Component, Vec<Component>)> = Vec::new();
    for service in AppService::ALL {
        for dep in managed_dependencies(spec, service) {
            let pods = Role::of(spec, service).iter().map(|r| r.component(service));
            match users.iter_mut().find(|(c, _)| *c == dep) {
                Some((_, list)) => list.extend(pods),
                None => users.push((dep, pods.collect())),
            }
        }
    }
    for (component, clients) in users {
        let port = match component {
            Component::Database(_) => POSTGRES_PORT,
            Component::Broker => AMQP_PORT,
            Component::Cache => REDIS_PORT,
            Component::Service(_) | Component::Consumer(_) => continue,
        };
        let mut rules = vec![NetworkPolicyIngressRule {
            from: Some(clients.into_iter().map(|c| pods_of(names, c)).collect()),
            ports: Some(vec![tcp(port)]),
        }];
        if component == Component::Broker && spec.autoscaling.scaled_services().next().is_some() {
            rules.push(NetworkPolicyIngressRule {
                from: Some(vec![the_operator(operator_namespace)]),
                ports: Some(vec![tcp(RABBITMQ_MANAGEMENT_PORT)]),
            });
        }
        out.push(policy(names, component, rules, owner));
    }
    out
}

/// The operator's pods: of its namespace when known, else of any namespace.
fn the_operator(namespace: Option<&str>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: namespace.map(|ns| {
                BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), ns.to_owned())])
            }),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                LABEL_NAME.to_owned(),
                MANAGER.to_owned(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}
