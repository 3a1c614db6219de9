//! `rabbitmq.cluster`: the system's own vhost, user and permissions on the
//! RabbitmqCluster, declared as objects of RabbitMQ's Messaging Topology Operator
//! (`rabbitmq.com/v1beta1` `Vhost`, `User`, `Permission`), so that the services sign
//! in with the least they need instead of the cluster's default (administrator) user.
//!
//! - `Vhost` `<system>`: the vhost `<namespace>.<system>` (qualified by the namespace:
//!   a cluster may serve the topology objects of several namespaces, and two systems
//!   of one name must not share a vhost), `defaultQueueType: quorum` when the
//!   services declare quorum queues;
//! - `User` `<system>-services`: the user `<namespace>.<system>-services`, whose
//!   username and password the operator generates once in the Secret
//!   `<system>-rabbitmq-user` (`importCredentialsSecret`; kept like every generated
//!   credential: a password changed there is what the topology operator sets next).
//!   Tag `management` only when a service is autoscaled: the scaler reads the queue
//!   depths and the channels from the management API with the services' account, and
//!   `management` sees the queues of the vhosts the user has permissions on and its
//!   own channels — all the scaler reads (no tag: no management API at all);
//! - `Permission` `<system>-services`: configure, write and read on that vhost only.
//!   With the default empty `rabbitmq.prefix` the names have no common prefix (the
//!   exchange `sales.events`, queues named after their consumer), so `.*`: the vhost
//!   holds nothing but this system's exchange and queues. With a prefix, each regex
//!   is narrowed to names that start with it, and write allows `amq.default` too (the
//!   services send retries to a queue through the default exchange, and a queue that
//!   dead-letters through it needs write there).
//!
//! `deletionPolicy` as the RabbitmqCluster's: with `Delete` the Vhost and the User
//! are owned by the SalesSystem (its deletion deletes the vhost, its queues and the
//! user); with `Retain` they are not owned, and the Vhost says `deletionPolicy:
//! retain`, so the vhost and user outlive the SalesSystem, and one of the same name
//! takes them back. The Permission carries no owner reference of the operator's: the
//! topology operator makes the User it refers to (`userReference`) its controller,
//! which it could not do past another controller reference; it goes with the User.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::Child;
use super::names::{Component, Names};
use super::secrets::{Credentials, GeneratedSecret};
use super::services::meta;
use crate::crd::{DeletionPolicy, QueueType, RabbitmqClusterProvider, SalesSystemSpec};

/// The Messaging Topology Operator's kinds the system needs.
pub fn resources() -> [ApiResource; 3] {
    [vhost_resource(), user_resource(), permission_resource()]
}

/// `rabbitmq.com/v1beta1 Vhost`.
pub fn vhost_resource() -> ApiResource {
    topology_kind("Vhost", "vhosts")
}

/// `rabbitmq.com/v1beta1 User`.
pub fn user_resource() -> ApiResource {
    topology_kind("User", "users")
}

/// `rabbitmq.com/v1beta1 Permission`.
pub fn permission_resource() -> ApiResource {
    topology_kind("Permission", "permissions")
}

fn topology_kind(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("rabbitmq.com", "v1beta1", kind),
        plural,
    )
}

/// Whether `kind` is one of the Messaging Topology Operator's kinds the system uses.
pub fn is_topology_kind(kind: &str) -> bool {
    resources().iter().any(|r| r.kind == kind)
}

/// The vhost on the broker: `<namespace>.<system>`.
pub fn vhost(names: &Names) -> String {
    format!("{}.{}", names.namespace, names.instance)
}

/// The name of the `Vhost` object: the system's.
pub fn vhost_object(names: &Names) -> String {
    names.instance.clone()
}

/// The name of the `User` and `Permission` objects: `<system>-services`.
pub fn user_object(names: &Names) -> String {
    format!("{}-services", names.instance)
}

/// The generated Secret of the services' account (`username`, `password`), the
/// User's `importCredentialsSecret`.
pub fn credentials_secret(names: &Names) -> String {
    format!("{}-user", names.of(Component::Broker))
}

/// The services' username on the broker: `<namespace>.<system>-services`.
pub fn username(names: &Names) -> String {
    format!("{}.{}", names.namespace, user_object(names))
}

/// The generated credentials of the services' account, with `rabbitmq.cluster`.
pub fn generated_secret(names: &Names, spec: &SalesSystemSpec) -> Option<GeneratedSecret> {
    spec.rabbitmq_cluster()?;
    Some(GeneratedSecret {
        name: credentials_secret(names),
        component: Some(Component::Broker),
        credentials: Credentials::RabbitmqUser {
            username: username(names),
        },
    })
}

/// The user's tags: `management` when the scaler reads the management API (a service
/// is autoscaled), else none.
pub fn tags(spec: &SalesSystemSpec) -> Vec<&'static str> {
    match spec.autoscaling.scaled_services().next() {
        Some(_) => vec!["management"],
        None => Vec::new(),
    }
}

/// The permissions' regexes (configure, write, read) for the names under `prefix`.
pub fn permissions(prefix: &str) -> (String, String, String) {
    if prefix.is_empty() {
        return (".*".into(), ".*".into(), ".*".into());
    }
    // `rabbitmq.prefix` takes letters, digits, `.`, `_` and `-`: only `.` is special.
    let escaped = prefix.replace('.', "\\.");
    (
        format!("^{escaped}"),
        format!("^({escaped}.*|amq\\.default)$"),
        format!("^{escaped}"),
    )
}

/// The Vhost, User and Permission of the system on `provider`'s cluster.
pub fn objects(
    names: &Names,
    spec: &SalesSystemSpec,
    provider: &RabbitmqClusterProvider,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let (owner, deletion_policy) = match spec.deletion_policy {
        DeletionPolicy::Delete => (owner.clone(), "delete"),
        DeletionPolicy::Retain => (None, "retain"),
    };
    let cluster = json!({"name": super::rabbitmq_cluster::cluster_name(names, provider)});
    let mut vhost_spec = json!({
        "name": vhost(names),
        "rabbitmqClusterReference": cluster,
        "deletionPolicy": deletion_policy,
    });
    if spec.rabbitmq.queue_type() == QueueType::Quorum {
        vhost_spec["defaultQueueType"] = "quorum".into();
    }
    let (configure, write, read) = permissions(&spec.rabbitmq.prefix);
    let objects = [
        (vhost_resource(), vhost_object(names), vhost_spec, &owner),
        (
            user_resource(),
            user_object(names),
            json!({
                "rabbitmqClusterReference": cluster,
                "importCredentialsSecret": {"name": credentials_secret(names)},
                "tags": tags(spec),
            }),
            &owner,
        ),
        (
            permission_resource(),
            user_object(names),
            json!({
                "rabbitmqClusterReference": cluster,
                "vhost": vhost(names),
                "userReference": {"name": user_object(names)},
                "permissions": {"configure": configure, "write": write, "read": read},
            }),
            &None,
        ),
    ];
    objects
        .into_iter()
        .map(|(resource, name, spec, owner)| {
            let object = json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": meta(names, name, names.labels(Component::Broker), owner),
                "spec": spec,
            });
            Ok(Child {
                resource,
                object: serde_json::from_value(object)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_qualified_by_the_namespace() {
        let names = Names::new("shop", "sales");
        assert_eq!(vhost(&names), "sales.shop");
        assert_eq!(username(&names), "sales.shop-services");
        assert_eq!(credentials_secret(&names), "shop-rabbitmq-user");
        assert_eq!(user_object(&names), "shop-services");
    }

    #[test]
    fn a_prefix_narrows_the_permissions_to_its_names() {
        assert_eq!(
            permissions(""),
            (".*".to_owned(), ".*".to_owned(), ".*".to_owned())
        );
        let (configure, write, read) = permissions("v2.");
        assert_eq!(configure, "^v2\\.");
        assert_eq!(write, "^(v2\\..*|amq\\.default)$");
        assert_eq!(read, "^v2\\.");
        let write = regex::Regex::new(&write).unwrap();
        for name in [
            "v2.sales.events",
            "v2.inventory.update-stock",
            "amq.default",
        ] {
            assert!(write.is_match(name), "{name}");
        }
        for name in [
            "sales.events",
            "v2xsales.events",
            "amq.topic",
            "amq.default2",
        ] {
            assert!(!write.is_match(name), "{name}");
        }
    }
}
