//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one reconciles. The algorithm is client-go's: a replica takes the
//! Lease when nobody holds it or when its record has not changed for a whole lease
//! duration *as observed by this replica's own clock* (so clock skew between nodes
//! does not matter), renews it every `renew_every`, and writes with the Lease's
//! `resourceVersion` so two replicas can never both win the same round (the loser
//! gets 409 Conflict). A leader that cannot renew within `renew_deadline` steps down,
//! however long the API server takes to answer: every renewal round is bounded by
//! that deadline, which is shorter than the lease.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, Error as KubeError};
use tokio_util::sync::CancellationToken;

/// How the election is timed.
#[derive(Clone, Debug)]
pub struct LeaseTiming {
    /// How long a holder's claim stands without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
    /// A leader that failed to renew for this long steps down.
    pub renew_deadline: Duration,
    /// How often a follower tries to take the lease.
    pub retry_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// One candidate for the leadership of one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    /// The holder's record as last seen, and when this replica saw it change.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15),
            ),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One round: take or renew the lease if this replica may. `Ok(true)`: it leads.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, KubeError> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(KubeError::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.clone());
        let changed = match &self.observed {
            Some((h, r, _)) => (h, r) != (&record.0, &record.1),
            None => true,
        };
        if changed {
            self.observed = Some((record.0, record.1, Instant::now()));
        }
        let ours = holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(15)))
            .unwrap_or(self.timing.lease_duration);
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, _, seen)| seen.elapsed() >= duration);
        if !(ours || holder.is_none() || expired) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours { spec.acquire_time } else { None };
        let renewed = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(self.spec(transitions, acquired)),
        };
        match self
            .api
            .replace(&self.name, &PostParams::default(), &renewed)
            .await
        {
            Ok(_) => Ok(true),
            Err(KubeError::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Wait until this replica leads (`Ok(true)`) or `shutdown` fires (`Ok(false)`).
    pub async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            let round =
                tokio::time::timeout(self.timing.renew_deadline, self.try_acquire_or_renew());
            match round.await {
                Ok(Ok(true)) => return true,
                Ok(Ok(false)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, lease = %self.name, "cannot read the leader lease")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.name, "the API server did not answer about the leader lease")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(self.timing.retry_every) => {}
            }
        }
    }

    /// Renew the lease until `shutdown`; cancel `lost` and return if it cannot be
    /// renewed within the deadline (or another replica took it).
    ///
    /// The deadline counts from when the last successful renewal was *sent* (the
    /// time it wrote into the Lease), and bounds each round as a whole: an API server
    /// that answers slowly or not at all cannot keep this replica leading past
    /// `renew_deadline`, which is shorter than the lease, so it has stepped down
    /// before another replica may take the lease.
    pub async fn keep(mut self, lost: CancellationToken, shutdown: CancellationToken) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.release().await;
                    return;
                }
                _ = tokio::time::sleep(self.timing.renew_every) => {}
            }
            let sent = tokio::time::Instant::now();
            let deadline = last_renewal + self.timing.renew_deadline;
            let round = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.release().await;
                    return;
                }
                round = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()) => round,
            };
            match round {
                Ok(Ok(true)) => last_renewal = sent,
                Ok(Ok(false)) => {
                    tracing::error!(lease = %self.name, "another replica holds the lease; stepping down");
                    lost.cancel();
                    return;
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, lease = %self.name, "cannot renew the leader lease");
                    if last_renewal.elapsed() >= self.timing.renew_deadline {
                        tracing::error!(lease = %self.name, "lease not renewed in time; stepping down");
                        lost.cancel();
                        return;
                    }
                }
                Err(_) => {
                    tracing::error!(
                        lease = %self.name,
                        "the API server did not answer the renewal within the deadline; stepping down"
                    );
                    lost.cancel();
                    return;
                }
            }
        }
    }

    /// Give the lease up so another replica takes over at once (best effort, within
    /// the renewal deadline: a shutdown does not wait on a silent API server).
    pub async fn release(&mut self) {
        let deadline = self.timing.renew_deadline;
        if tokio::time::timeout(deadline, self.release_now())
            .await
            .is_err()
        {
            tracing::warn!(lease = %self.name, "the API server did not answer; the lease runs out instead");
        }
    }

    async fn release_now(&mut self) {
        let Ok(Some(lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        let released = Lease {
            metadata: lease.metadata,
            spec: Some(spec),
        };
        if let Err(err) = self
            .api
            .replace(&self.name, &PostParams::default(), &released)
            .await
        {
            tracing::warn!(error = %err, "cannot release the leader lease");
        }
    }
}
