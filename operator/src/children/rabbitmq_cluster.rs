//! `rabbitmq.cluster`: a RabbitMQ run by RabbitMQ's cluster operator.
//!
//! - with `create`, the operator declares a `rabbitmq.com/v1beta1 RabbitmqCluster`
//!   named `<system>-rabbitmq` (owned by the SalesSystem only with `deletionPolicy:
//!   Delete`: the cluster operator deletes a cluster's volumes with it, so `Retain`
//!   leaves the cluster, volumes and all, in place);
//! - with `name`, an existing `RabbitmqCluster` of the namespace is used as it is.
//!
//! On it the system has a vhost, a user and permissions of its own, declared through
//! RabbitMQ's Messaging Topology Operator ([`super::rabbitmq_topology`]); the cluster's
//! default user (tag `administrator`) is never handed to the services. The reconcile
//! writes the Secret `<system>-rabbitmq` from the generated account
//! (`<system>-rabbitmq-user`): `url`, the services' `AMQP_URL`
//! (`amqp://<user>:<password>@<cluster>.<namespace>.svc:5672/<namespace>.<system>`,
//! user, password and vhost percent-encoded), which the scaler reads too, with the
//! management API at `http://<cluster>.<namespace>.svc:15672` (under `spec.tls`:
//! `https://...:15671`, and a created cluster keeps no plaintext listener). The services declare
//! their own queues in that vhost (quorum unless `rabbitmq.queueType` says otherwise).
//!
//! Both kinds are optional ([`crate::optional_kinds`]): without the cluster
//! operator's CRD the RabbitmqCluster is skipped (`ProvidersAvailable=False`, reason
//! `RabbitMQClusterOperatorNotInstalled`); without the topology operator's CRDs the
//! Vhost, User and Permission are skipped (reason
//! `RabbitMQTopologyOperatorNotInstalled`) and the URL Secret is not written, so the
//! services' pods wait for it: the operator fails closed rather than give them the
//! administrator.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, GroupVersionKind};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::Child;
use super::KnownSecrets;
use super::infrastructure::{AMQP_PORT, rabbitmq_management};
use super::names::{Component, Names};
use super::services::meta;
use crate::crd::{DeletionPolicy, RabbitmqClusterProvider, SalesSystemSpec};

/// The reason of `ProvidersAvailable=False` without the cluster operator's CRD.
pub const NOT_INSTALLED_REASON: &str = "RabbitMQClusterOperatorNotInstalled";

/// Everything but RFC 3986's unreserved characters is escaped in a URL's user info.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// RabbitMQ's cluster operator's `RabbitmqCluster` kind.
pub fn rabbitmq_cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("rabbitmq.com", "v1beta1", "RabbitmqCluster"),
        "rabbitmqclusters",
    )
}

/// The name of the `RabbitmqCluster` the services use.
pub fn cluster_name(names: &Names, provider: &RabbitmqClusterProvider) -> String {
    match &provider.name {
        Some(name) => name.clone(),
        None => names.of(Component::Broker),
    }
}

/// Where its management API answers (the scaler reads the queues there): HTTPS on
/// 15671 with `tls` (a created cluster has no other listener then).
pub fn management_url(names: &Names, provider: &RabbitmqClusterProvider, tls: bool) -> String {
    let (scheme, port) = rabbitmq_management(tls);
    format!(
        "{scheme}://{}.{}.svc:{port}",
        cluster_name(names, provider),
        names.namespace
    )
}

/// The services' AMQP URL from their account's values (with `tls`: `amqps://` on
/// 5671), on the system's vhost; `None` while a value is missing.
pub fn amqp_url(
    names: &Names,
    provider: &RabbitmqClusterProvider,
    account: &BTreeMap<String, String>,
    tls: bool,
) -> Option<String> {
    let user = account.get("username").filter(|u| !u.is_empty())?;
    let password = account.get("password").filter(|p| !p.is_empty())?;
    let (scheme, port) = match tls {
        true => ("amqps", super::tls::AMQPS_PORT),
        false => ("amqp", AMQP_PORT),
    };
    Some(format!(
        "{scheme}://{}:{}@{}.{}.svc:{port}/{}",
        utf8_percent_encode(user, USERINFO),
        utf8_percent_encode(password, USERINFO),
        cluster_name(names, provider),
        names.namespace,
        utf8_percent_encode(&super::rabbitmq_topology::vhost(names), USERINFO),
    ))
}

/// The RabbitmqCluster (with `create`), the system's Vhost, User and Permission, and,
/// with the services' account known, the Secret of their AMQP URL.
pub fn children(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
    known: KnownSecrets<'_>,
) -> Result<Vec<Child>, serde_json::Error> {
    let Some(provider) = spec.rabbitmq_cluster() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Some(create) = &provider.create {
        let resource = rabbitmq_cluster_resource();
        let cluster_owner = match spec.deletion_policy {
            DeletionPolicy::Delete => owner.clone(),
            DeletionPolicy::Retain => None,
        };
        let mut persistence = serde_json::json!({"storage": create.storage.size});
        if let Some(class) = &create.storage.storage_class_name {
            persistence["storageClassName"] = class.clone().into();
        }
        let mut cluster_spec = serde_json::json!({
            "replicas": create.replicas,
            "persistence": persistence,
        });
        if let Some(image) = &create.image {
            cluster_spec["image"] = image.clone().into();
        }
        if let Some(resources) = &create.resources {
            cluster_spec["resources"] = serde_json::to_value(resources)?;
        }
        // The cluster operator labels its pods with the cluster's name.
        let pods = BTreeMap::from([(
            "app.kubernetes.io/name".to_owned(),
            cluster_name(names, provider),
        )]);
        let placement = super::placement::given(spec, Component::Broker);
        super::provider_placement::rabbitmq_cluster(&placement, &mut cluster_spec, &pods)?;
        if spec.tls.enabled() {
            // The server Secret holds `ca.crt` too. No plaintext listener: AMQP on
            // 5671, the management API (the operator's scaler) on 15671.
            let secret = super::tls::server_secret(names, Component::Broker);
            cluster_spec["tls"] = serde_json::json!({
                "secretName": secret,
                "caSecretName": secret,
                "disableNonTLSListeners": true,
            });
        }
        let object = serde_json::json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": meta(
                names,
                cluster_name(names, provider),
                names.labels(Component::Broker),
                &cluster_owner,
            ),
            "spec": cluster_spec,
        });
        out.push(Child {
            resource,
            object: serde_json::from_value(object)?,
        });
    }
    out.extend(super::rabbitmq_topology::objects(
        names, spec, provider, owner,
    )?);
    if let Some(url) = known
        .rabbitmq_services_user
        .and_then(|values| amqp_url(names, provider, values, spec.tls.enabled()))
    {
        let secret = Secret {
            metadata: meta(
                names,
                names.broker_secret(),
                names.labels(Component::Broker),
                owner,
            ),
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(
                "url".to_owned(),
                ByteString(url.into_bytes()),
            )])),
            ..Default::default()
        };
        out.push(Child::typed(&secret)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_encodes_the_accounts_values_and_names_the_systems_vhost() {
        let names = Names::new("shop", "sales");
        let provider = RabbitmqClusterProvider {
            create: None,
            name: Some("broker".into()),
        };
        let values = BTreeMap::from([
            ("username".to_owned(), "sales.shop-services".to_owned()),
            ("password".to_owned(), "p@ss/w:rd".to_owned()),
        ]);
        assert_eq!(
            amqp_url(&names, &provider, &values, false).as_deref(),
            Some("amqp://sales.shop-services:p%40ss%2Fw%3Ard@broker.sales.svc:5672/sales.shop")
        );
        assert_eq!(
            amqp_url(&names, &provider, &values, true).as_deref(),
            Some("amqps://sales.shop-services:p%40ss%2Fw%3Ard@broker.sales.svc:5671/sales.shop")
        );
        assert_eq!(amqp_url(&names, &provider, &BTreeMap::new(), false), None);
        assert_eq!(
            management_url(&names, &provider, false),
            "http://broker.sales.svc:15672"
        );
        assert_eq!(
            management_url(&names, &provider, true),
            "https://broker.sales.svc:15671"
        );
    }
}
