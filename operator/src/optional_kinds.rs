//! Kinds the operator uses only where their CRDs are installed (the Prometheus
//! Operator's ServiceMonitor, Strimzi's kinds, CloudNativePG's,
//! RabbitMQ's cluster and topology operators' and cert-manager's kinds), found out
//! while running.
//!
//! The cluster is asked through discovery (`GET /apis/<group>/<version>`), and the
//! answer kept for a short while ([`OptionalKinds::refresh`]): the reconcile skips an
//! optional child whose kind is not served (and says so in the status) instead of
//! failing as a whole, and the controller watches such a kind only while it is
//! served, rebuilding its watches when that changes (see `crate::controller`), so a
//! CRD installed later is used and watched without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::ApiResource;
use tokio::sync::Mutex;

use crate::children;
use crate::children::{cloudnative_pg, kafka_topics, kafka_users};

/// How long an answer of discovery is trusted.
pub const REFRESH: Duration = Duration::from_secs(30);

/// Every kind the operator may use that a cluster may not serve.
pub fn all() -> Vec<ApiResource> {
    vec![
        children::service_monitor_resource(),
        kafka_topics::kafka_topic_resource(),
        kafka_users::kafka_user_resource(),
        children::strimzi_cluster::kafka_resource(),
        children::strimzi_cluster::kafka_node_pool_resource(),
        cloudnative_pg::cluster_resource(),
        cloudnative_pg::scheduled_backup_resource(),
        cloudnative_pg::database_resource(),
        children::rabbitmq_cluster::rabbitmq_cluster_resource(),
        children::rabbitmq_topology::vhost_resource(),
        children::rabbitmq_topology::user_resource(),
        children::rabbitmq_topology::permission_resource(),
        children::cert_manager::certificate_resource(),
    ]
}

/// Whether one kind is served, as discovery last said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Yes,
    No,
    /// Discovery failed (not with a 404): try, and let the request tell.
    Unknown,
}

/// When discovery was asked about a group version, and the plurals it serves
/// (`None`: the group version is not served at all).
type Answer = (Instant, Option<BTreeSet<String>>);

/// Discovery of optional kinds, cached per group version for [`Self::refresh`].
pub struct OptionalKinds {
    client: Client,
    refresh: Duration,
    /// Per `group/version`: when asked, and the plurals it serves (`None`: the
    /// group version is not served at all).
    cache: Mutex<BTreeMap<String, Answer>>,
}

impl OptionalKinds {
    pub fn new(client: Client, refresh: Duration) -> Self {
        OptionalKinds {
            client,
            refresh,
            cache: Mutex::default(),
        }
    }

    /// How long an answer is trusted.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// Whether the cluster serves `resource`, from discovery at most
    /// [`Self::refresh`] old. The cache is not locked while discovery is asked: one
    /// slow answer holds up no other reconcile.
    pub async fn served(&self, resource: &ApiResource) -> Served {
        let fresh = self
            .cache
            .lock()
            .await
            .get(&resource.api_version)
            .filter(|(asked, _)| asked.elapsed() < self.refresh)
            .map(|(_, plurals)| plurals.clone());
        let plurals = match fresh {
            Some(plurals) => plurals,
            None => {
                let answer = match self
                    .client
                    .list_api_group_resources(&resource.api_version)
                    .await
                {
                    Ok(list) => Some(list.resources.into_iter().map(|r| r.name).collect()),
                    Err(kube::Error::Api(e)) if e.code == 404 => None,
                    Err(err) => {
                        tracing::debug!(
                            kind = %resource.kind,
                            error = %crate::api_error::describe(&err),
                            "cannot tell whether the cluster serves this kind"
                        );
                        return Served::Unknown;
                    }
                };
                self.cache.lock().await.insert(
                    resource.api_version.clone(),
                    (Instant::now(), answer.clone()),
                );
                answer
            }
        };
        match plurals {
            Some(p) if p.contains(&resource.plural) => Served::Yes,
            _ => Served::No,
        }
    }

    /// A request just said the kind is not served: forget what discovery said.
    pub async fn forget(&self, resource: &ApiResource) {
        self.cache.lock().await.remove(&resource.api_version);
    }

    /// The optional kinds served now (a fresh question to discovery for each group
    /// version). A
    /// kind discovery cannot answer for (`Unknown`: throttled, a 5xx, a timeout)
    /// keeps its place in `before`, the set last seen, so that a failed question
    /// does not rebuild the watches (twice) while the API server is struggling; with
    /// nothing seen before, it is not watched, as it may not exist.
    pub async fn served_now(&self, before: &BTreeSet<String>) -> BTreeSet<String> {
        let mut served = BTreeSet::new();
        let resources = all();
        // One fresh question per group version, not per kind (CloudNativePG's three
        // kinds share one): the answer is kept for the kinds after the first.
        {
            let mut cache = self.cache.lock().await;
            for resource in &resources {
                cache.remove(&resource.api_version);
            }
        }
        for resource in resources {
            let known = match self.served(&resource).await {
                Served::Yes => true,
                Served::No => false,
                Served::Unknown => before.contains(&key(&resource)),
            };
            if known {
                served.insert(key(&resource));
            }
        }
        served
    }
}

/// How a kind is named in logs and sets: `ServiceMonitor.monitoring.coreos.com/v1`.
pub fn key(resource: &ApiResource) -> String {
    format!("{}.{}", resource.kind, resource.api_version)
}
