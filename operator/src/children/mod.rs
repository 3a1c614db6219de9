//! Everything a SalesSystem becomes, built by pure functions from its spec: the
//! operator applies these (`reconcile`) and `sales-operator render` prints them.
//!
//! [`desired`] returns the children in the order they are applied: configuration,
//! Services, the stateful infrastructure, the services' Deployments, then budgets,
//! policies, the Ingress and the ServiceMonitor. Generated credentials are separate
//! ([`secrets::generated`]): they are created once, never applied.

pub mod backups;
pub mod cert_manager;
pub mod cloudnative_pg;
pub mod cloudnative_pg_shared;
pub mod env;
pub mod infrastructure;
pub mod kafka;
pub mod kafka_topics;
pub mod kafka_users;
pub mod names;
pub mod network;
pub mod placement;
pub mod provider_placement;
pub mod rabbitmq_cluster;
pub mod rabbitmq_nodes;
pub mod rabbitmq_topology;
pub mod secrets;
pub mod services;
pub mod strimzi_cluster;
pub mod tls;
pub mod tls_clients;
pub mod tls_servers;

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::catalogue::{AppService, HTTP_PORT};
use crate::crd::{DatabaseChoice, SalesSystem, SalesSystemSpec};
use names::{Component, LABEL_INSTANCE, LABEL_METRICS, LABEL_SERVICE, Names};
use services::Role;

/// One object to server-side apply.
#[derive(Clone, Debug)]
pub struct Child {
    pub resource: ApiResource,
    pub object: DynamicObject,
}

impl Child {
    /// A typed object as a child (`apiVersion` and `kind` included).
    pub fn typed<K>(object: &K) -> Result<Child, serde_json::Error>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let mut value = serde_json::to_value(object)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), K::kind(&()).into());
        }
        Ok(Child {
            resource,
            object: serde_json::from_value(value)?,
        })
    }

    pub fn name(&self) -> String {
        self.object.name_any()
    }

    pub fn kind(&self) -> &str {
        &self.resource.kind
    }
}

/// The ServiceMonitor kind (Prometheus Operator), handled as a dynamic object.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// Names for `system`'s children (namespace `default` when the object has none).
pub fn names_of(system: &SalesSystem) -> Names {
    Names::new(
        &system.name_any(),
        system.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// The controller owner reference, when the object has a uid (always, once stored).
pub fn owner_of(system: &SalesSystem) -> Option<OwnerReference> {
    system.controller_owner_ref(&())
}

/// Every child of `system`, in apply order, not knowing where the operator runs.
pub fn desired(system: &SalesSystem) -> Result<Vec<Child>, serde_json::Error> {
    desired_for(system, None)
}

/// Every child of `system`, in apply order. With the operator's namespace, only the
/// operator's pods of that namespace may read the broker's management API and the
/// services' admin ports; without it (e.g. `render`), those of any namespace.
pub fn desired_for(
    system: &SalesSystem,
    operator_namespace: Option<&str>,
) -> Result<Vec<Child>, serde_json::Error> {
    desired_with(system, operator_namespace, KnownSecrets::default())
}

/// Values of the Secrets pods read, as the reconcile read or made them (none in
/// `render`): pods carry a digest of those they read, so a change rolls them.
#[derive(Clone, Copy, Debug, Default)]
pub struct KnownSecrets<'a> {
    /// The identity Secret: signing keys and client secrets.
    pub identity: Option<&'a BTreeMap<String, String>>,
    /// The Secret of the services' Kafka account (the managed cluster's, or the
    /// `external` credentials).
    pub kafka_account: Option<&'a BTreeMap<String, String>>,
    /// The generated account of the services on the `RabbitmqCluster` they use
    /// (`rabbitmq.cluster`; the topology operator's `User` imports it): the broker's
    /// URL Secret is written from it. `None` while the cluster does not serve the
    /// topology operator's kinds (the services wait: no fallback to the default user).
    pub rabbitmq_services_user: Option<&'a BTreeMap<String, String>>,
    /// The TLS Secrets of `spec.tls` by name (`tls::Values`; the CA's key left out).
    pub tls: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
}

/// [`desired_for`], and with the values of the Secrets pods read, each pod carries a
/// digest of those it reads, so that a new signing key, client secret or Kafka
/// password rolls them.
pub fn desired_with(
    system: &SalesSystem,
    operator_namespace: Option<&str>,
    known: KnownSecrets<'_>,
) -> Result<Vec<Child>, serde_json::Error> {
    let names = names_of(system);
    let owner = owner_of(system);
    build(&names, &system.spec, &owner, operator_namespace, known)
}

fn build(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
    operator_namespace: Option<&str>,
    known: KnownSecrets<'_>,
) -> Result<Vec<Child>, serde_json::Error> {
    let mut out = Vec::new();
    for service in AppService::ALL {
        out.push(Child::typed(&services::config_map(
            names, spec, service, owner,
        ))?);
    }
    if let Some(config) = tls_servers::config_map(names, spec, owner) {
        out.push(Child::typed(&config)?);
    }
    out.extend(cert_manager::certificates(names, spec, owner)?);
    // Infrastructure first, so the services find it as early as possible.
    for service in AppService::with_database() {
        if let (Some(DatabaseChoice::Managed(settings)), Some(database)) =
            (spec.postgres.choice(service), service.database())
        {
            let (mut sts, svc) =
                infrastructure::postgres(names, service, database, &settings, owner);
            if spec.tls.enabled() {
                tls_servers::postgres(&mut sts, names, service, known);
            }
            placement::place(&mut sts, spec, names, Component::Database(service));
            out.push(Child::typed(&svc)?);
            out.push(Child::typed(&sts)?);
        }
    }
    out.extend(backups::children(names, spec, owner)?);
    out.extend(cloudnative_pg::children(names, spec, owner)?);
    if let Some(settings) = spec.managed_rabbitmq() {
        let (mut sts, mut svc) = infrastructure::rabbitmq(names, &settings, owner);
        if spec.tls.enabled() {
            tls_servers::rabbitmq(&mut sts, &mut svc, names, known);
        }
        placement::place(&mut sts, spec, names, Component::Broker);
        if rabbitmq_nodes::clustered(&settings) {
            let (mut nodes, config) = rabbitmq_nodes::cluster(names, &settings, owner, &mut sts);
            if spec.tls.enabled() {
                tls_servers::tls_broker_service(&mut nodes);
            }
            out.push(Child::typed(&config)?);
            out.push(Child::typed(&nodes)?);
        }
        out.push(Child::typed(&svc)?);
        out.push(Child::typed(&sts)?);
    }
    out.extend(rabbitmq_cluster::children(names, spec, owner, known)?);
    if let Some(settings) = spec.managed_kafka() {
        let (mut sts, nodes, bootstrap) =
            kafka::kafka(names, &settings, owner, known.kafka_account);
        if spec.tls.enabled() {
            tls_servers::kafka(&mut sts, names, known);
        }
        placement::place(&mut sts, spec, names, Component::Kafka);
        out.push(Child::typed(&nodes)?);
        out.push(Child::typed(&bootstrap)?);
        out.push(Child::typed(&sts)?);
    }
    // A Kafka created on Strimzi before its topics and user.
    out.extend(strimzi_cluster::children(names, spec, owner)?);
    if let Some(settings) = spec.kafka() {
        out.extend(kafka_topics::kafka_topics(names, &settings, owner)?);
        out.extend(kafka_users::kafka_users(names, &settings, owner)?);
    }
    if let Some(settings) = spec.redis.managed() {
        let (mut deploy, svc) = infrastructure::redis(names, &settings, owner);
        if spec.tls.enabled() {
            tls_servers::redis(&mut deploy, names, known);
        }
        placement::place(&mut deploy, spec, names, Component::Cache);
        out.push(Child::typed(&svc)?);
        out.push(Child::typed(&deploy)?);
    }
    for service in AppService::ALL {
        out.push(Child::typed(&services::service(
            names, spec, service, owner,
        ))?);
        for role in Role::of(spec, service) {
            if *role == Role::Consumer {
                out.push(Child::typed(&services::consumer_metrics_service(
                    names, service, owner,
                ))?);
            }
            let mut deployment = services::deployment(names, spec, service, *role, owner, known);
            tls_clients::mount(&mut deployment, names, spec, service, known);
            out.push(Child::typed(&deployment)?);
        }
    }
    for service in AppService::ALL {
        for role in Role::of(spec, service) {
            out.push(Child::typed(&services::disruption_budget(
                names,
                role.component(service),
                owner,
            ))?);
        }
    }
    if spec.managed_kafka().is_some() {
        // One node at a time: a quorum of three survives one node away.
        out.push(Child::typed(&services::disruption_budget(
            names,
            Component::Kafka,
            owner,
        ))?);
    }
    // The data tier's single pods too: maxUnavailable 1 lets a drain evict each (the
    // tier is away until its pod runs again) and never blocks a drain for good.
    let databases = AppService::with_database()
        .filter(|s| matches!(spec.postgres.choice(*s), Some(DatabaseChoice::Managed(_))))
        .map(Component::Database);
    let broker = spec.managed_rabbitmq().map(|_| Component::Broker);
    let cache = spec.redis.managed().map(|_| Component::Cache);
    for component in databases.chain(broker).chain(cache) {
        out.push(Child::typed(&services::disruption_budget(
            names, component, owner,
        ))?);
    }
    for policy in network::policies(names, spec, owner, operator_namespace) {
        out.push(Child::typed(&policy)?);
    }
    if let Some(ingress) = ingress(names, spec, owner) {
        out.push(Child::typed(&ingress)?);
    }
    if spec.observability.service_monitor.enabled {
        out.push(service_monitor(names, spec, owner)?);
    }
    Ok(out)
}

/// The Ingress in front of the gateway, when asked for.
fn ingress(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Option<Ingress> {
    let settings = spec.gateway.ingress.as_ref()?;
    let component = Component::Service(AppService::Gateway);
    let mut metadata = services::meta(names, names.ingress(), names.labels(component), owner);
    if !settings.annotations.is_empty() {
        metadata.annotations = Some(settings.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(K8sIngressSpec {
            ingress_class_name: settings.class_name.clone(),
            tls: settings.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![settings.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(settings.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names.of(component),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    ..Default::default()
                                }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A ServiceMonitor scraping every service's admin port. The services label their
/// own series `service="order"` (and so on), which the scrape keeps (`honorLabels`)
/// instead of renaming it `exported_service`; `up`, which has only target labels,
/// gets the same `service` label from the Service's `sales-system.io/service`.
fn service_monitor(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Result<Child, serde_json::Error> {
    let resource = service_monitor_resource();
    let settings = &spec.observability.service_monitor;
    let mut labels = names.system_labels();
    labels.extend(settings.labels.clone());
    let object = serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": services::meta(names, names.service_monitor(), labels, owner),
        "spec": {
            "selector": {"matchLabels": BTreeMap::from([
                (LABEL_INSTANCE, names.instance.as_str()),
                (LABEL_METRICS, "true"),
            ])},
            "endpoints": [{
                "port": "admin",
                "path": "/metrics",
                "interval": settings.interval,
                "honorLabels": true,
                "relabelings": [{
                    "action": "replace",
                    "sourceLabels": [format!(
                        "__meta_kubernetes_service_label_{}",
                        prometheus_label_name(LABEL_SERVICE)
                    )],
                    "targetLabel": "service",
                }],
            }],
        },
    });
    Ok(Child {
        resource,
        object: serde_json::from_value(object)?,
    })
}

/// A Kubernetes label name as Prometheus' service discovery spells it: every
/// character that may not stand in a Prometheus label name becomes `_`.
fn prometheus_label_name(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Where the gateway answers, as the status shows it.
pub fn gateway_url(names: &Names, spec: &SalesSystemSpec) -> String {
    match &spec.gateway.ingress {
        Some(i) if i.tls_secret_name.is_some() => format!("https://{}", i.host),
        Some(i) => format!("http://{}", i.host),
        None => format!(
            "http://{}.{}.svc:{HTTP_PORT}",
            names.of(Component::Service(AppService::Gateway)),
            names.namespace
        ),
    }
}
