//! Where each pod runs: the `placement` of its tier over `spec.placement`, field by
//! field ([`crate::crd::Placement::over`]), and a default spread for components that
//! run more than one pod, as CloudNativePG, RabbitMQ's cluster operator and Strimzi
//! give their pods.
//!
//! The default, when neither `affinity` nor `topologySpreadConstraints` is given for
//! a component of several pods (a service with 2+ replicas, autoscaled consumers that
//! may run 2+, a Kafka of 3+ nodes), is soft: it never leaves a pod pending.
//!
//! - over nodes: a topology spread constraint on `kubernetes.io/hostname`, `maxSkew:
//!   1`, `whenUnsatisfiable: ScheduleAnyway`, counting the component's own pods;
//! - over zones: a preferred pod anti-affinity (weight 100) on
//!   `topology.kubernetes.io/zone` against the component's own pods. Not a second
//!   spread constraint: the scheduler scores every node that lacks one of a pod's
//!   spread keys 0 for all of them, so on a cluster without zone labels (kind, k3s,
//!   bare metal) a zone constraint would silently cancel the spread over nodes. An
//!   anti-affinity term simply does not apply to a node without the label.
//!
//! A spread constraint given without `labelSelector` counts the component's own pods
//! (without a selector it would count none and spread nothing).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, PodSpec, TopologySpreadConstraint,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::names::{Component, Names};
use crate::crd::{DatabaseChoice, Placement, SalesSystemSpec};

/// The node label every node carries: one domain per node.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// The zone label cloud providers set on their nodes.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// The placement of `component`'s pods as given: its tier's over the top level (a
/// service's own database: over `postgres.managed`'s, over the top level).
pub fn given(spec: &SalesSystemSpec, component: Component) -> Placement {
    let mut tiers: Vec<Option<Box<Placement>>> = Vec::new();
    match component {
        Component::Service(s) | Component::Consumer(s) => {
            tiers.push(spec.services.get(s).placement.clone());
        }
        // A database's backup pods run where the database may (its volume's zone).
        Component::Database(s) | Component::Backup(s) => {
            let shared = spec.postgres.managed.as_ref();
            tiers.push(shared.and_then(|m| m.placement.clone()));
            if let Some(DatabaseChoice::Managed(own)) = spec.postgres.choice(s) {
                tiers.push(own.placement);
            }
        }
        Component::Broker => tiers.push(spec.managed_rabbitmq().and_then(|m| m.placement)),
        Component::Kafka => tiers.push(spec.managed_kafka().and_then(|m| m.placement)),
        Component::Cache => tiers.push(spec.redis.managed().and_then(|m| m.placement)),
    }
    tiers
        .into_iter()
        .flatten()
        .fold(spec.placement.clone().unwrap_or_default(), |base, tier| {
            tier.over(&base)
        })
}

/// The most pods `component` runs outside a rollout: the replicas of a service, the
/// `maxReplicas` of autoscaled consumers, the nodes of Kafka; 1 for the others.
pub fn most_pods(spec: &SalesSystemSpec, component: Component) -> i32 {
    match component {
        Component::Service(s) => spec.services.get(s).replicas,
        Component::Consumer(s) => spec.autoscaling.get(s).map_or(1, |a| a.max_replicas),
        Component::Kafka => spec.managed_kafka().map_or(1, |k| k.replicas),
        Component::Database(_) | Component::Backup(_) | Component::Broker | Component::Cache => 1,
    }
}

fn own_pods(names: &Names, component: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(names.selector(component)),
        ..Default::default()
    }
}

/// The default spread of a component of several pods (see the module's comment).
fn default_spread(names: &Names, component: Component) -> (Affinity, TopologySpreadConstraint) {
    let zones = Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: ZONE_KEY.into(),
                        label_selector: Some(own_pods(names, component)),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let nodes = TopologySpreadConstraint {
        max_skew: 1,
        topology_key: HOSTNAME_KEY.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(own_pods(names, component)),
        ..Default::default()
    };
    (zones, nodes)
}

/// A PodSpec with only the placement fields of `component`'s pods set, to complete
/// a pod spec with (`..placement::pod_spec(...)`).
pub fn pod_spec(spec: &SalesSystemSpec, names: &Names, component: Component) -> PodSpec {
    let given = given(spec, component);
    let (affinity, spread) = match (given.affinity, given.topology_spread_constraints) {
        (None, None) if most_pods(spec, component) > 1 => {
            let (zones, nodes) = default_spread(names, component);
            (Some(zones), Some(vec![nodes]))
        }
        (affinity, spread) => (
            affinity.filter(|a| *a != Affinity::default()),
            spread.map(|constraints| {
                constraints
                    .into_iter()
                    .map(|mut c| {
                        c.label_selector = c
                            .label_selector
                            .or_else(|| Some(own_pods(names, component)));
                        c
                    })
                    .collect()
            }),
        ),
    };
    PodSpec {
        node_selector: given.node_selector.filter(|m| !m.is_empty()),
        tolerations: given.tolerations.filter(|t| !t.is_empty()),
        affinity,
        topology_spread_constraints: spread.filter(|c: &Vec<_>| !c.is_empty()),
        ..Default::default()
    }
}

/// A workload whose pods are placed.
pub trait Workload {
    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec>;
}

impl Workload for StatefulSet {
    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec> {
        self.spec.as_mut()?.template.spec.as_mut()
    }
}

impl Workload for Deployment {
    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec> {
        self.spec.as_mut()?.template.spec.as_mut()
    }
}

/// Set the placement fields of `workload`'s pods to `component`'s ([`pod_spec`]).
pub fn place(
    workload: &mut impl Workload,
    spec: &SalesSystemSpec,
    names: &Names,
    component: Component,
) {
    let placed = pod_spec(spec, names, component);
    if let Some(pod) = workload.pod_spec_mut() {
        pod.node_selector = placed.node_selector;
        pod.tolerations = placed.tolerations;
        pod.affinity = placed.affinity;
        pod.topology_spread_constraints = placed.topology_spread_constraints;
    }
}
