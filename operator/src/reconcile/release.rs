//! Letting go of objects that hold data, a CloudNativePG Cluster, a Strimzi Kafka and
//! its node pool, instead of deleting them: the SalesSystem's owner reference comes
//! off, so neither garbage collection nor the operator deletes them (and their
//! volumes) with the SalesSystem; a SalesSystem of the same name applies them again.
//! Under `deletionPolicy: Retain` they are not owned to begin with; what is released
//! here is a reference an earlier `Delete` left, and what pruning lets go of.

use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{Context, Error, on};
use crate::children::names::Names;

/// Merge `patch` into object `name`; an object already gone is no error (what the
/// patch would let go of is gone with it).
pub(super) async fn merge_patch_if_present<K>(
    api: &Api<K>,
    name: &str,
    patch: serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Take the owner references off object `name` (gone already: nothing to do).
pub(super) async fn release(api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
    merge_patch_if_present(api, name, json!({"metadata": {"ownerReferences": null}})).await
}

/// Release every object of `resource` of this system that still has an owner
/// reference (none when the cluster does not serve the kind); their names.
pub(super) async fn release_owned(
    ctx: &Context,
    names: &Names,
    resource: &ApiResource,
) -> Result<Vec<String>, Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &names.namespace, resource);
    let params = ListParams::default().labels(&names.list_selector());
    let list = match api.list(&params).await {
        Ok(list) => list,
        Err(err) if crate::api_error::kind_not_served(&err) => return Ok(Vec::new()),
        Err(err) => return Err(on(format!("listing {}s", resource.kind))(err)),
    };
    let mut released = Vec::new();
    for object in list
        .items
        .iter()
        .filter(|o| !o.owner_references().is_empty())
    {
        let name = object.name_any();
        release(&api, &name)
            .await
            .map_err(on(format!("{} {name}", resource.kind)))?;
        released.push(name);
    }
    Ok(released)
}
