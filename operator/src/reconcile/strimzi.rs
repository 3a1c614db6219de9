//! The reconcile's dealings with a Strimzi `Kafka` beyond applying objects: reading
//! the Kafka the services use for `BrokerReady`, and, under `deletionPolicy: Retain`,
//! taking the SalesSystem's owner reference off a Kafka and node pool it created
//! (one left from an earlier `Delete`), so that garbage collection leaves them, and
//! their volumes, in place.

use super::release::release_owned;
use super::{Context, Error, get_optional};
use crate::children::names::Names;
use crate::children::strimzi_cluster;
use crate::crd::SalesSystemSpec;
use crate::strimzi_status::{self, KafkaSeen};

/// The Kafka the services use, when it is Strimzi's (else `None`).
pub(super) async fn observe(
    ctx: &Context,
    spec: &SalesSystemSpec,
    names: &Names,
) -> Result<Option<KafkaSeen>, Error> {
    let Some(strimzi) = strimzi_status::strimzi(spec) else {
        return Ok(None);
    };
    let resource = strimzi_cluster::kafka_resource();
    Ok(Some(
        match get_optional(ctx, names, &resource, &strimzi.cluster_name).await? {
            None => KafkaSeen::default(),
            Some(object) => KafkaSeen {
                served: true,
                object,
            },
        },
    ))
}

/// `deletionPolicy: Retain`: release every Kafka and KafkaNodePool of this system
/// still owned (none when Strimzi is not installed); the `Kind name`s released.
pub(super) async fn release_all(ctx: &Context, names: &Names) -> Result<Vec<String>, Error> {
    let mut released = Vec::new();
    for resource in [
        strimzi_cluster::kafka_resource(),
        strimzi_cluster::kafka_node_pool_resource(),
    ] {
        let names = release_owned(ctx, names, &resource).await?;
        released.extend(names.into_iter().map(|n| format!("{} {n}", resource.kind)));
    }
    Ok(released)
}
