//! The deletion of a SalesSystem (the finalizer's cleanup): its `deletionPolicy`
//! applied to what owner references do not cover.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::runtime::controller::Action;

use super::credentials::{keep, release};
use super::prune::release_topic;
use super::{Context, Error, on};
use crate::children::secrets;
use crate::children::{self, kafka_topics};
use crate::crd::{DeletionPolicy, SalesSystem};

/// Deletion: what owner references cannot do. The children themselves go with the
/// SalesSystem (garbage collection); the PersistentVolumeClaims of the StatefulSets do
/// not. `Delete` removes them and the credentials that open them. `Retain` (the
/// default) keeps both: it takes this system's owner reference off the database and
/// broker credentials, so a SalesSystem of the same name finds them again (and owns
/// them again) and its databases open with the passwords they were made with.
///
/// Those credentials carry [`CREDENTIALS_FINALIZER`](secrets::CREDENTIALS_FINALIZER),
/// so a foreground deletion, whose garbage collection of the dependents may come
/// first, cannot take them before this runs: one the collector already asked to
/// delete is made again from its values.
pub(super) async fn cleanup(system: &SalesSystem, ctx: &Context) -> Result<Action, Error> {
    let names = children::names_of(system);
    let params = ListParams::default().labels(&names.list_selector());
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let guarded: Vec<Secret> = secrets_api
        .list(&params)
        .await
        .map_err(on("listing Secrets"))?
        .items
        .into_iter()
        .filter(|s| secrets::guards_data(s.labels()))
        .collect();
    match system.spec.deletion_policy {
        DeletionPolicy::Delete => {
            let api: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &names.namespace);
            let mut deleted = Vec::new();
            let claims = api
                .list(&params)
                .await
                .map_err(on("listing PersistentVolumeClaims"))?;
            for claim in claims.items {
                let name = claim.name_any();
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => deleted.push(name),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(on(format!("PersistentVolumeClaim {name}"))(e)),
                }
            }
            let mut credentials = Vec::new();
            for secret in &guarded {
                let name = secret.name_any();
                let what = format!("Secret {name}");
                release(&secrets_api, secret).await.map_err(on(&what))?;
                match secrets_api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => credentials.push(name),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(on(what)(e)),
                }
            }
            ctx.publish(
                system,
                false,
                "VolumesDeleted",
                format!(
                    "deletionPolicy Delete: deleted {} volume claims {} and their credentials {}",
                    deleted.len(),
                    deleted.join(", "),
                    credentials.join(", ")
                ),
            )
            .await;
        }
        DeletionPolicy::Retain => {
            let topics: Api<DynamicObject> = Api::namespaced_with(
                ctx.client.clone(),
                &names.namespace,
                &kafka_topics::kafka_topic_resource(),
            );
            match topics.list(&params).await {
                Ok(list) => {
                    for topic in list.items {
                        let name = topic.name_any();
                        release_topic(&topics, &name)
                            .await
                            .map_err(on(format!("KafkaTopic {name}")))?;
                    }
                }
                // No Strimzi in this cluster: no KafkaTopics either.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(on("listing KafkaTopics")(e)),
            }
            let released = super::release::release_owned(
                ctx,
                &names,
                &crate::children::cloudnative_pg::cluster_resource(),
            )
            .await?;
            // A Kafka the operator created stays, volumes and all.
            let strimzi = super::strimzi::release_all(ctx, &names).await?;
            let uid = system.uid();
            let mut kept = Vec::new();
            for secret in &guarded {
                keep(&secrets_api, secret, uid.as_deref()).await?;
                kept.push(secret.name_any());
            }
            ctx.publish(
                system,
                false,
                "VolumesRetained",
                format!(
                    "deletionPolicy Retain: kept the volume claims and the credentials {}{}{}",
                    kept.join(", "),
                    if released.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", and the CloudNativePG Clusters {} (no longer owned)",
                            released.join(", ")
                        )
                    },
                    if strimzi.is_empty() {
                        String::new()
                    } else {
                        format!(", and Strimzi's {} (no longer owned)", strimzi.join(", "))
                    }
                ),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}
