//! After stage 4, when the spec changed and every child applied: delete the children
//! this spec no longer wants. Also [`release_topic`], which the deletion policy uses
//! too.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Service as K8sService};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use serde_json::json;

use super::{Context, Error, on};
use crate::children::names::Names;
use crate::children::{self, Child, cloudnative_pg, kafka_topics, kafka_users};
use crate::crd::SalesSystem;

/// The kinds the operator may have created, for pruning.
fn prunable_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<K8sService>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<Deployment>(&()),
        // Backups switched off, or their database made external. (A backup volume
        // has no owner reference: it is kept, as the database volumes are.)
        ApiResource::erase::<CronJob>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<Ingress>(&()),
        children::service_monitor_resource(),
        kafka_topics::kafka_topic_resource(),
        // Authentication switched off: Strimzi deletes the user and its Secret.
        kafka_users::kafka_user_resource(),
        // A CloudNativePG Cluster is released, never deleted (it holds a database).
        cloudnative_pg::cluster_resource(),
        cloudnative_pg::scheduled_backup_resource(),
    ]
}

/// Tell Strimzi's Topic Operator to let go of a KafkaTopic, so that deleting the
/// object leaves its topic (and the messages in it) in Kafka.
pub(super) async fn release_topic(api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {
        kafka_topics::STRIMZI_MANAGED_ANNOTATION: "false"
    }}});
    super::release::merge_patch_if_present(api, name, patch).await
}

/// Delete children of this system that its current spec no longer wants (a database
/// switched to external, the Ingress or ServiceMonitor switched off...). Generated
/// Secrets are never pruned. A kind whose API is absent (no Prometheus Operator) is
/// skipped.
pub(super) async fn prune(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
    desired: &[Child],
) -> Result<(), Error> {
    let wanted: BTreeSet<(String, String)> = desired
        .iter()
        .map(|c| (c.kind().to_owned(), c.name()))
        .collect();
    let uid = system.uid();
    let params = ListParams::default().labels(&names.list_selector());
    let mut pruned = Vec::new();
    for resource in prunable_kinds() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &names.namespace, &resource);
        let list = match api.list(&params).await {
            Ok(list) => list,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(on(format!("listing {}s", resource.kind))(e)),
        };
        for object in list.items {
            let ours = object
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
            let name = object.name_any();
            if ours && !wanted.contains(&(resource.kind.clone(), name.clone())) {
                let what = format!("{} {name}", resource.kind);
                if resource == cloudnative_pg::cluster_resource() {
                    super::release::release(&api, &name)
                        .await
                        .map_err(on(&what))?;
                    pruned.push(format!(
                        "{what} (released, not deleted: it holds a database)"
                    ));
                    continue;
                }
                if resource.kind == "KafkaTopic" {
                    release_topic(&api, &name).await.map_err(on(&what))?;
                }
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => pruned.push(what),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(on(what)(e)),
                }
            }
        }
    }
    if !pruned.is_empty() {
        ctx.publish(
            system,
            false,
            "Pruned",
            format!(
                "deleted what the spec no longer asks for: {}",
                pruned.join(", ")
            ),
        )
        .await;
    }
    Ok(())
}
