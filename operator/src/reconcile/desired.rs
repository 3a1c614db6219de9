//! Stage 3 of the reconcile: the objects this spec wants. The children are built by
//! pure functions ([`crate::children`]); the only reads are of the StatefulSets that
//! already run, whose claim templates cannot change ([`crate::storage::prepare`]).

use super::references::References;
use super::{Context, Error};
use crate::children::names::Names;
use crate::children::{self, Child};
use crate::crd::SalesSystem;
use crate::storage::{self, Storage};

/// What the next stage applies.
pub(super) struct Desired {
    /// Every child, in the order they are applied.
    pub children: Vec<Child>,
    /// What the storage step found and did, for the status.
    pub storage: Storage,
}

/// Build every child, given the Secrets' values for the pods' digest.
pub(super) async fn build(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
    references: &References,
) -> Result<Desired, Error> {
    let known = references.known(system, names);
    let mut desired = children::desired_with(system, ctx.operator_namespace.as_deref(), known)?;
    // Live StatefulSets keep their claim templates; claims grow, or the change is refused.
    let storage = storage::prepare(&ctx.client, &names.namespace, &mut desired).await?;
    Ok(Desired {
        children: desired,
        storage,
    })
}
