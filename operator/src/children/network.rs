//! NetworkPolicies: who may open a connection to whom.
//!
//! - each database: only its own service, on 5432;
//! - the broker: only the services that use it, on 5672 (5671 under `spec.tls`);
//! - Redis: only the services that use it (product, order, customer, gateway), on 6379;
//! - the gateway's API port: anyone (it is the one public entry, and every service
//!   reads the gateway's public keys there, `/.well-known/jwks.json`);
//! - the customer service's API port: every other service (its public keys, service
//!   tokens at `/oauth/token`, `/oauth/introspect`), the gateway among them;
//! - each other service's API port: only the gateway and the peers that call it;
//! - every service's admin port (`/metrics`, dead letters): only the operator's pods
//!   and the metrics scraper — the pods of `networkPolicies.metricsNamespace`, or
//!   without it, the pods of this namespace that the operator does not run (a
//!   Prometheus beside the system); never the services, databases or broker;
//! - the consumer pods of an autoscaled service: their admin port only, as above (they
//!   reach their database, the broker, Redis and their peers like the service's own
//!   pods);
//! - the broker's management API (15672; 15671 under TLS), while a consumer is autoscaled: the
//!   operator's pods (`app.kubernetes.io/name: sales-operator`) of the operator's
//!   namespace (of any namespace when it is not known, as in `render`), which read
//!   the queues' depth there;
//! - each managed database with `backup`: also its backup pods (which `sales-operator
//!   restore-job` pods share); nothing may reach the backup pods themselves (their
//!   egress to S3 is not restricted: only ingress is);
//! - the managed Kafka: its client port (9092) from the services that use it, and from
//!   the operator while a consumer is autoscaled (it reads the groups' lag there); its
//!   replication (9091) and quorum (9093) ports only from its own nodes;
//! - a managed RabbitMQ of 3 or more nodes: epmd (4369), Erlang distribution (25672)
//!   and the CLI tools' ports (35672-35682) only from its own nodes.
//!
//! Only ingress is restricted; every pod of the system is selected by one policy, so
//! anything not listed is refused. The kubelet's probes are not affected.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::{KAFKA_CLIENT_PORT, managed_dependencies};
use super::infrastructure::{AMQP_PORT, POSTGRES_PORT, REDIS_PORT, rabbitmq_management};
use super::kafka::{KAFKA_BROKER_PORT, KAFKA_CONTROLLER_PORT};
use super::names::{Component, LABEL_MANAGED_BY, LABEL_NAME, MANAGER, Names};
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

/// The pods of `service`: its one Deployment's, or both of an autoscaled one's.
fn pods_of_service(
    names: &Names,
    spec: &SalesSystemSpec,
    service: AppService,
) -> Vec<NetworkPolicyPeer> {
    Role::of(spec, service)
        .iter()
        .map(|role| pods_of(names, role.component(service)))
        .collect()
}

/// The services that may open connections to `service`'s API port; `None`: anyone.
pub fn api_clients(service: AppService) -> Option<Vec<AppService>> {
    match service {
        AppService::Gateway => None,
        // The identity provider: every service gets its keys and tokens there.
        AppService::Customer => Some(
            AppService::ALL
                .into_iter()
                .filter(|s| *s != AppService::Customer)
                .collect(),
        ),
        _ => Some(service.callers().collect()),
    }
}

/// Who may reach the admin ports: the operator and the metrics scraper.
fn admin_clients(
    names: &Names,
    spec: &SalesSystemSpec,
    operator_namespace: Option<&str>,
) -> Vec<NetworkPolicyPeer> {
    let scraper = match spec.network_policies.metrics_namespace.as_deref() {
        Some(ns) if ns != names.namespace => NetworkPolicyPeer {
            namespace_selector: Some(namespace_named(ns)),
            ..Default::default()
        },
        // Prometheus beside the system: any pod of this namespace the operator does
        // not run (the services never reach each other's admin ports).
        _ => NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: LABEL_MANAGED_BY.to_owned(),
                    operator: "NotIn".to_owned(),
                    values: Some(vec![MANAGER.to_owned()]),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    vec![the_operator(operator_namespace), scraper]
}

fn namespace_named(namespace: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            namespace.to_owned(),
        )])),
        ..Default::default()
    }
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
    let admin = || NetworkPolicyIngressRule {
        from: Some(admin_clients(names, spec, operator_namespace)),
        ports: Some(vec![tcp(ADMIN_PORT)]),
    };
    for service in AppService::ALL {
        let api_from = api_clients(service).map(|clients| {
            clients
                .into_iter()
                .flat_map(|client| pods_of_service(names, spec, client))
                .collect()
        });
        out.push(policy(
            names,
            Component::Service(service),
            vec![
                NetworkPolicyIngressRule {
                    from: api_from,
                    ports: Some(vec![tcp(HTTP_PORT)]),
                },
                admin(),
            ],
            owner,
        ));
    }
    for service in spec.autoscaling.scaled_services() {
        out.push(policy(
            names,
            Component::Consumer(service),
            vec![admin()],
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
    // A database's backup (and restore) pods reach it too; nothing reaches them.
    for (component, clients) in &mut users {
        if let Component::Database(service) = *component {
            clients.extend(super::backups::component(spec, service));
        }
    }
    for component in super::backups::components(spec) {
        out.push(policy(names, component, Vec::new(), owner));
    }
    for (component, clients) in users {
        let port = match component {
            Component::Database(_) => POSTGRES_PORT,
            // Under `spec.tls` the broker listens for AMQP over TLS only.
            Component::Broker if spec.tls.enabled() => super::tls::AMQPS_PORT,
            Component::Broker => AMQP_PORT,
            Component::Kafka => KAFKA_CLIENT_PORT,
            Component::Cache => REDIS_PORT,
            Component::Service(_) | Component::Consumer(_) | Component::Backup(_) => continue,
        };
        let mut rules = vec![NetworkPolicyIngressRule {
            from: Some(clients.into_iter().map(|c| pods_of(names, c)).collect()),
            ports: Some(vec![tcp(port)]),
        }];
        let autoscaled = spec.autoscaling.scaled_services().next().is_some();
        if component == Component::Broker && autoscaled {
            rules.push(NetworkPolicyIngressRule {
                from: Some(vec![the_operator(operator_namespace)]),
                ports: Some(vec![tcp(rabbitmq_management(spec.tls.enabled()).1)]),
            });
        }
        if component == Component::Broker
            && spec
                .managed_rabbitmq()
                .is_some_and(|m| super::rabbitmq_nodes::clustered(&m))
        {
            // A cluster's nodes: epmd, Erlang distribution and the CLI tools' ports,
            // only between themselves.
            let (cli_first, cli_last) = super::rabbitmq_nodes::CLI_PORTS;
            rules.push(NetworkPolicyIngressRule {
                from: Some(vec![pods_of(names, Component::Broker)]),
                ports: Some(vec![
                    tcp(super::rabbitmq_nodes::EPMD_PORT),
                    tcp(super::rabbitmq_nodes::DIST_PORT),
                    NetworkPolicyPort {
                        end_port: Some(cli_last),
                        ..tcp(cli_first)
                    },
                ]),
            });
        }
        if component == Component::Kafka {
            if autoscaled {
                rules.push(NetworkPolicyIngressRule {
                    from: Some(vec![the_operator(operator_namespace)]),
                    ports: Some(vec![tcp(KAFKA_CLIENT_PORT)]),
                });
            }
            rules.push(NetworkPolicyIngressRule {
                from: Some(vec![pods_of(names, Component::Kafka)]),
                ports: Some(vec![
                    tcp(KAFKA_CLIENT_PORT),
                    tcp(KAFKA_BROKER_PORT),
                    tcp(KAFKA_CONTROLLER_PORT),
                ]),
            });
        }
        out.push(policy(names, component, rules, owner));
    }
    out
}

/// The operator's pods: of its namespace when known, else of any namespace.
fn the_operator(namespace: Option<&str>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(namespace.map(namespace_named).unwrap_or_default()),
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
