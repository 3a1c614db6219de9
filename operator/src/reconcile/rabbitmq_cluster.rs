//! The RabbitmqCluster the services use (RabbitMQ's cluster operator), read for the
//! status: whether its kind is served, and the object with its conditions.

use kube::api::{Api, DynamicObject};

use super::{Context, Error, on};
use crate::children::names::Names;
use crate::children::rabbitmq_cluster;
use crate::crd::SalesSystemSpec;
use crate::optional_kinds::Served;
use crate::providers::RabbitmqClusterSeen;

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
    let not_served = RabbitmqClusterSeen::default();
    if ctx.kinds.served(&resource).await == Served::No {
        return Ok(Some(not_served));
    }
    let name = rabbitmq_cluster::cluster_name(names, provider);
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &names.namespace, &resource);
    match api.get_opt(&name).await {
        Ok(object) => Ok(Some(RabbitmqClusterSeen {
            served: true,
            object,
        })),
        Err(err) if crate::api_error::kind_not_served(&err) => {
            ctx.kinds.forget(&resource).await;
            Ok(Some(not_served))
        }
        Err(err) => Err(on(format!("RabbitmqCluster {name}"))(err)),
    }
}
