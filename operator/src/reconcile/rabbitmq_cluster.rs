//! The RabbitmqCluster the services use (RabbitMQ's cluster operator), read for the
//! status: whether its kind is served, and the object with its conditions; and the
//! system's Vhost, User and Permission (RabbitMQ's Messaging Topology Operator), with
//! theirs.

use super::{Context, Error, get_optional};
use crate::children::names::Names;
use crate::children::{rabbitmq_cluster, rabbitmq_topology};
use crate::crd::SalesSystemSpec;
use crate::optional_kinds::Served;
use crate::providers::{RabbitmqClusterSeen, TopologyObjectSeen};

/// `None` when the broker is not a RabbitmqCluster.
pub(super) async fn observe(
    ctx: &Context,
    spec: &SalesSystemSpec,
    names: &Names,
) -> Result<Option<RabbitmqClusterSeen>, Error> {
    let Some(provider) = spec.rabbitmq_cluster() else {
        return Ok(None);
    };
    let resource = rabbitmq_cluster::rabbitmq_cluster_resource();
    let name = rabbitmq_cluster::cluster_name(names, provider);
    let mut seen = RabbitmqClusterSeen::default();
    match get_optional(ctx, names, &resource, &name).await? {
        None => return Ok(Some(seen)),
        Some(object) => {
            seen.served = true;
            seen.object = object;
        }
    }
    let objects = [
        (
            rabbitmq_topology::vhost_resource(),
            rabbitmq_topology::vhost_object(names),
        ),
        (
            rabbitmq_topology::user_resource(),
            rabbitmq_topology::user_object(names),
        ),
        (
            rabbitmq_topology::permission_resource(),
            rabbitmq_topology::user_object(names),
        ),
    ];
    for (resource, name) in objects {
        match get_optional(ctx, names, &resource, &name).await? {
            None => seen.topology_missing.push(resource.kind.clone()),
            Some(object) => seen.topology.push(TopologyObjectSeen {
                kind: resource.kind.clone(),
                name,
                object,
            }),
        }
    }
    Ok(Some(seen))
}

/// Whether the cluster may serve every kind of the Messaging Topology Operator the
/// system needs (discovery says so, or cannot tell): the services' account is used
/// only then.
pub(super) async fn topology_served(ctx: &Context) -> bool {
    for resource in rabbitmq_topology::resources() {
        if ctx.kinds.served(&resource).await == Served::No {
            return false;
        }
    }
    true
}
