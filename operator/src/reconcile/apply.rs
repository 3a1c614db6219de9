//! Stage 4 of the reconcile: server-side apply every desired child, with one field
//! manager ([`MANAGER`]), forcing ownership of the fields it sets. A child of an
//! optional kind ([`crate::optional_kinds`]) the cluster does not serve is skipped; one
//! that fails does not stop the others: the failures are reported together.

use std::collections::BTreeSet;

use kube::api::{Api, DynamicObject, Patch, PatchParams};

use super::Context;
use super::desired::Desired;
use crate::api_error::{self, describe};
use crate::children::names::{MANAGER, Names};
use crate::children::{self, Child};
use crate::optional_kinds::{self, Served};

/// What applying the children came to.
pub(super) struct Applied {
    /// One sentence per child that failed; empty
    /// when everything applied.
    pub failures: Vec<String>,
    /// The optional kinds skipped because the cluster does not serve them.
    pub unserved: BTreeSet<String>,
}

impl Applied {
    /// Whether CloudNativePG's kinds could be applied (served, or not needed).
    pub fn cloudnative_pg_served(&self) -> bool {
        !self
            .unserved
            .iter()
            .any(|kind| children::cloudnative_pg::is_cnpg_kind(kind))
    }

    /// Whether a RabbitmqCluster could be applied (served, or not needed).
    pub fn rabbitmq_cluster_served(&self) -> bool {
        !self
            .unserved
            .contains(&children::rabbitmq_cluster::rabbitmq_cluster_resource().kind)
    }

    /// Whether cert-manager's Certificates could be applied (served, or not needed).
    pub fn cert_manager_served(&self) -> bool {
        !self
            .unserved
            .contains(&children::cert_manager::certificate_resource().kind)
    }

    /// The Strimzi kinds of the desired children the cluster does not serve.
    pub fn strimzi_missing(&self) -> Vec<String> {
        self.unserved
            .iter()
            .filter(|kind| children::strimzi_cluster::is_strimzi_kind(kind))
            .cloned()
            .collect()
    }

    /// Whether the ServiceMonitor could be applied (its kind is served).
    pub fn service_monitors_served(&self) -> bool {
        !self
            .unserved
            .contains(&children::service_monitor_resource().kind)
    }
}

/// Apply each child of `desired`, in order.
pub(super) async fn apply(ctx: &Context, names: &Names, desired: &Desired) -> Applied {
    let mut failures = Vec::new();
    let mut unserved: BTreeSet<String> = BTreeSet::new();
    for child in &desired.children {
        let optional = optional_kinds::all()
            .iter()
            .any(|k| k.api_version == child.resource.api_version && k.kind == child.kind());
        if optional && ctx.kinds.served(&child.resource).await == Served::No {
            unserved.insert(child.kind().to_owned());
            continue;
        }
        match apply_child(ctx, names, child).await {
            Ok(()) => {}
            Err(err) if optional && api_error::kind_not_served(&err) => {
                ctx.kinds.forget(&child.resource).await;
                unserved.insert(child.kind().to_owned());
            }
            Err(err) => failures.push(format!(
                "{} {}: {}",
                child.kind(),
                child.name(),
                describe(&err)
            )),
        }
    }
    // An optional kind the cluster does not serve is not a failure: the status says
    // it, the ServiceMonitor in `MonitoringAvailable`, the providers' kinds
    // (CloudNativePG, RabbitMQ's cluster operator, cert-manager, Strimzi) in
    // `ProvidersAvailable`; the rest of the system is applied, and the services wait
    // for their database, broker, topics or certificates.
    Applied { failures, unserved }
}

async fn apply_child(ctx: &Context, names: &Names, child: &Child) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &names.namespace, &child.resource);
    api.patch(
        &child.name(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&child.object),
    )
    .await?;
    Ok(())
}
