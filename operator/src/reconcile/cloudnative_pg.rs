//! The reconcile's dealings with CloudNativePG beyond applying its objects: reading
//! the Clusters (and the shared Cluster's Databases) for the status. Letting go of a
//! Cluster instead of deleting it is [`super::release`]'s.

use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::{Context, Error, on};
use crate::children::names::Names;
use crate::children::{cloudnative_pg, cloudnative_pg_shared};
use crate::crd::SalesSystemSpec;
use crate::optional_kinds::Served;

/// Whether the cluster serves CloudNativePG's Cluster (and, for the shared Cluster,
/// Database), the namespace's Clusters and, for the shared Cluster, its Databases,
/// when some database of `spec` is on CloudNativePG (else `None` and none).
pub(super) async fn observe(
    ctx: &Context,
    spec: &SalesSystemSpec,
    names: &Names,
) -> Result<(Option<bool>, Vec<DynamicObject>, Vec<DynamicObject>), Error> {
    if cloudnative_pg::services(spec).is_empty() {
        return Ok((None, Vec::new(), Vec::new()));
    }
    let Some(clusters) = list(ctx, names, &cloudnative_pg::cluster_resource(), "Clusters").await?
    else {
        return Ok((Some(false), Vec::new(), Vec::new()));
    };
    if cloudnative_pg_shared::services(spec).is_empty() {
        return Ok((Some(true), clusters, Vec::new()));
    }
    let resource = cloudnative_pg::database_resource();
    match list(ctx, names, &resource, "Databases").await? {
        Some(databases) => Ok((Some(true), clusters, databases)),
        // CloudNativePG before 1.25: no Database kind.
        None => Ok((Some(false), clusters, Vec::new())),
    }
}

/// The namespace's objects of `resource`; `None` when the cluster does not serve it.
async fn list(
    ctx: &Context,
    names: &Names,
    resource: &ApiResource,
    plural: &str,
) -> Result<Option<Vec<DynamicObject>>, Error> {
    if ctx.kinds.served(resource).await == Served::No {
        return Ok(None);
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &names.namespace, resource);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(err) if crate::api_error::kind_not_served(&err) => {
            ctx.kinds.forget(resource).await;
            Ok(None)
        }
        Err(err) => Err(on(format!("listing CloudNativePG {plural}"))(err)),
    }
}
