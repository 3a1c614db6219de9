//! Idle consumers go first on a scale-down: before the scaler lowers a consumer
//! Deployment's replicas, it sets `controller.kubernetes.io/pod-deletion-cost` on the
//! Deployment's running pods to the messages each holds unacknowledged (its work in
//! hand, from RabbitMQ's channels by the pod's IP, see
//! [`super::broker::Management::work_by_peer`]). The ReplicaSet controller removes the
//! pods of lowest cost first among pods alike in what it ranks before the cost (a pod
//! not scheduled, not running or not ready goes before one that is, whatever its
//! cost), so the pods with nothing in hand go, and a pod in the middle of its prefetch
//! stays and need not hand its messages back.
//!
//! A pod with a channel whose count RabbitMQ has not reported yet (a channel just
//! opened) ranks as the busiest: its work is unknown, and only its own. When no
//! channel has its count, channel statistics are off: no per-pod numbers (below).
//!
//! Without per-pod numbers (Kafka, whose lag is per partition and not per pod; RabbitMQ
//! statistics not reported; the channels unreadable) the scaler removes the costs it
//! set before, so that an old number never decides, and the ReplicaSet's own order
//! applies: not ready first, then ready for the shortest time, then the newest.
//!
//! The annotation on consumer pods belongs to the scaler: it is rewritten on every
//! scale-down. Pods are changed with a JSON merge patch of that one annotation, and only
//! when its value changes.

use std::net::IpAddr;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::broker::PeerWork;

/// The annotation the ReplicaSet controller reads (Kubernetes 1.22 and later).
pub const ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// What to set on one pod: `Some(cost)`, or `None` to remove the annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub pod: String,
    pub cost: Option<i32>,
}

/// The changes that make `pods` carry the costs of `work` (`None`: no per-pod work
/// known, so no cost). Pods being deleted and pods without an IP (not started) are
/// left alone; the ReplicaSet removes a pod that is not running before any other.
pub fn changes(pods: &[Pod], work: Option<&PeerWork>) -> Vec<Change> {
    pods.iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let ips = ips_of(pod);
            if ips.is_empty() {
                return None;
            }
            // A pod whose work is unknown (a channel without its count) ranks as the
            // busiest: kept over any pod known to hold less.
            let cost = work.map(|work| {
                ips.iter()
                    .map(|ip| work.of_ip(*ip))
                    .try_fold(0u64, |sum, held| held.map(|n| sum.saturating_add(n)))
                    .map_or(i32::MAX, |held| i32::try_from(held).unwrap_or(i32::MAX))
            });
            let now = pod.annotations().get(ANNOTATION).map(String::as_str);
            let wanted = cost.map(|c| c.to_string());
            (now != wanted.as_deref()).then(|| Change {
                pod: pod.name_any(),
                cost,
            })
        })
        .collect()
}

fn ips_of(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// Sets the costs of `work` on the pods of `deployment` (see the module's text);
/// returns how many pods were changed.
pub async fn mark(
    client: &Client,
    deployment: &Deployment,
    work: Option<&PeerWork>,
) -> Result<usize, kube::Error> {
    let namespace = deployment.namespace().unwrap_or_default();
    // The pods the Deployment's ReplicaSets select; never every pod of the namespace.
    let selector: Vec<String> = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    if selector.is_empty() {
        return Ok(0);
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pods = api
        .list(&ListParams::default().labels(&selector.join(",")))
        .await?
        .items;
    let changes = changes(&pods, work);
    let patches = changes.iter().map(|change| {
        let mut annotations = serde_json::Map::new();
        annotations.insert(ANNOTATION.into(), json!(change.cost.map(|c| c.to_string())));
        let patch = json!({"metadata": {"annotations": annotations}});
        let api = api.clone();
        async move {
            api.patch(&change.pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    });
    for result in futures::future::join_all(patches).await {
        match result {
            Ok(_) => {}
            // Deleted since the list: nothing to rank.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(changes.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    fn pod(name: &str, ip: Option<&str>, cost: Option<&str>) -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        if let Some(ip) = ip {
            pod.status.as_mut().unwrap().pod_ip = Some(ip.into());
        }
        if let Some(cost) = cost {
            pod.annotations_mut().insert(ANNOTATION.into(), cost.into());
        }
        pod
    }

    fn work(of: &[(&str, u64)]) -> PeerWork {
        PeerWork(
            of.iter()
                .map(|(ip, n)| (ip.parse().unwrap(), Some(*n)))
                .collect::<HashMap<_, _>>(),
        )
    }

    #[test]
    fn the_cost_is_the_work_in_hand_and_unchanged_costs_are_not_rewritten() {
        let pods = [
            pod("busy", Some("10.0.0.1"), None),
            pod("idle", Some("10.0.0.2"), Some("12")),
            pod("same", Some("10.0.0.3"), Some("3")),
            pod("pending", None, None),
        ];
        let w = work(&[("10.0.0.1", 7), ("10.0.0.3", 3)]);
        assert_eq!(
            changes(&pods, Some(&w)),
            [
                Change {
                    pod: "busy".into(),
                    cost: Some(7)
                },
                Change {
                    pod: "idle".into(),
                    cost: Some(0)
                },
            ]
        );
    }

    #[test]
    fn without_per_pod_work_the_old_costs_go() {
        let pods = [
            pod("a", Some("10.0.0.1"), Some("7")),
            pod("b", Some("10.0.0.2"), None),
        ];
        assert_eq!(
            changes(&pods, None),
            [Change {
                pod: "a".into(),
                cost: None
            }]
        );
    }

    #[test]
    fn a_pod_whose_work_is_unknown_ranks_as_the_busiest_and_the_others_keep_theirs() {
        let pods = [
            pod("opening", Some("10.0.0.1"), None),
            pod("idle", Some("10.0.0.2"), None),
            pod("busy", Some("10.0.0.3"), None),
        ];
        let mut w = work(&[("10.0.0.2", 0), ("10.0.0.3", 4)]);
        w.0.insert("10.0.0.1".parse().unwrap(), None);
        let costs: Vec<_> = changes(&pods, Some(&w))
            .into_iter()
            .map(|c| (c.pod, c.cost))
            .collect();
        assert_eq!(
            costs,
            [
                ("opening".to_owned(), Some(i32::MAX)),
                ("idle".to_owned(), Some(0)),
                ("busy".to_owned(), Some(4)),
            ]
        );
    }

    #[test]
    fn a_huge_backlog_in_hand_is_the_highest_cost() {
        let pods = [pod("a", Some("10.0.0.1"), None)];
        let w = work(&[("10.0.0.1", u64::MAX)]);
        assert_eq!(changes(&pods, Some(&w))[0].cost, Some(i32::MAX));
    }
}
