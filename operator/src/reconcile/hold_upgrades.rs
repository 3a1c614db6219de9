//! Stage 3b of the reconcile: a new version of the services waits for the broker and
//! the databases. While the last status said either was not ready, a Deployment that
//! already runs keeps the images it runs: its pods would start the new version
//! against a data tier that cannot take its migrations (or its connections), fail
//! their readiness, and the rollout would stall half done. Everything else in the
//! spec still applies (replicas, settings, the data tier itself), new Deployments are
//! created as asked, and once the status says the broker and databases are ready the
//! next reconcile (within 30 s) rolls the services to the new images. Each service
//! migrates its own database as it starts, so the data tier being up is all the
//! services' upgrade waits for.
//!
//! Only a change of image is held; the readiness read is the status's own (no extra
//! request on the usual path), so a data tier that fails between two reconciles is
//! noticed at the next one.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};

use super::{Context, Error, on};
use crate::children::Child;
use crate::children::names::Names;
use crate::crd::SalesSystem;
use crate::status::{self, BROKER_READY, DATABASES_READY};

/// The services whose new images wait, and why.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Held {
    /// Deployments kept at the images they run.
    pub deployments: Vec<String>,
    /// The conditions that are not `True` (`BrokerReady`, `DatabasesReady`).
    pub waiting_for: Vec<&'static str>,
}

impl Held {
    /// The Event's message.
    pub fn message(&self) -> String {
        format!(
            "new images wait for {}: {} keep the images they run",
            self.waiting_for.join(" and "),
            self.deployments.join(", ")
        )
    }
}

/// Keep live Deployments at their images in `children` while the last status says
/// the broker or the databases are not ready; what was held, if anything.
pub(super) async fn hold(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
    children: &mut [Child],
) -> Result<Option<Held>, Error> {
    let waiting_for = data_tier_not_ready(system);
    if waiting_for.is_empty() {
        return Ok(None);
    }
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let live = api
        .list(&ListParams::default().labels(&names.list_selector()))
        .await
        .map_err(on("listing Deployments"))?
        .items;
    let running: BTreeMap<String, BTreeMap<String, String>> = live
        .iter()
        .filter_map(|d| Some((d.metadata.name.clone()?, images_of(d))))
        .collect();
    let deployments = keep_running_images(children, &running);
    Ok((!deployments.is_empty()).then_some(Held {
        deployments,
        waiting_for,
    }))
}

/// The data-tier conditions the last status showed as not `True`.
fn data_tier_not_ready(system: &SalesSystem) -> Vec<&'static str> {
    let Some(status) = system.status.as_ref() else {
        return Vec::new();
    };
    [BROKER_READY, DATABASES_READY]
        .into_iter()
        .filter(|kind| status::condition_status(status, kind).is_some_and(|s| s != "True"))
        .collect()
}

/// Container name -> image of a live Deployment's pod template.
fn images_of(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|pod| {
            pod.containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
                .filter_map(|c| Some((c.name.clone(), c.image.clone()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// In every desired Deployment that runs (`running`: name -> container -> image) with
/// other images, put back the running ones; the names of those changed.
fn keep_running_images(
    children: &mut [Child],
    running: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let mut held = Vec::new();
    for child in children.iter_mut().filter(|c| c.kind() == "Deployment") {
        let Some(live) = running.get(&child.name()) else {
            continue;
        };
        let Some(pod) = child
            .object
            .data
            .pointer_mut("/spec/template/spec")
            .and_then(|p| p.as_object_mut())
        else {
            continue;
        };
        let mut changed = false;
        for list in ["containers", "initContainers"] {
            for container in pod
                .get_mut(list)
                .and_then(|c| c.as_array_mut())
                .into_iter()
                .flatten()
            {
                let name = container.get("name").and_then(|n| n.as_str());
                let Some(image) = name.and_then(|n| live.get(n)) else {
                    continue;
                };
                if container.get("image").and_then(|i| i.as_str()) != Some(image) {
                    container["image"] = image.clone().into();
                    changed = true;
                }
            }
        }
        if changed {
            held.push(child.name());
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::{ApiResource, DynamicObject};
    use serde_json::json;

    fn deployment(name: &str, image: &str) -> Child {
        let resource = ApiResource::erase::<Deployment>(&());
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "wait", "image": image}],
                "containers": [{"name": "service", "image": image}]}}}
        }))
        .unwrap();
        Child { resource, object }
    }

    fn images(child: &Child) -> Vec<String> {
        let pod = &child.object.data["spec"]["template"]["spec"];
        ["initContainers", "containers"]
            .iter()
            .map(|l| pod[l][0]["image"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_running_deployment_keeps_its_images_and_a_new_one_gets_the_new_ones() {
        let mut children = vec![
            deployment("shop-order", "order:2"),
            deployment("shop-payment", "payment:2"),
            deployment("shop-shipping", "shipping:2"),
        ];
        let running = BTreeMap::from([
            (
                "shop-order".to_owned(),
                BTreeMap::from([
                    ("service".to_owned(), "order:1".to_owned()),
                    ("wait".to_owned(), "order:1".to_owned()),
                ]),
            ),
            (
                "shop-payment".to_owned(),
                BTreeMap::from([
                    ("service".to_owned(), "payment:2".to_owned()),
                    ("wait".to_owned(), "payment:2".to_owned()),
                ]),
            ),
        ]);
        let held = keep_running_images(&mut children, &running);
        assert_eq!(held, vec!["shop-order"]);
        assert_eq!(images(&children[0]), ["order:1", "order:1"]);
        assert_eq!(images(&children[1]), ["payment:2", "payment:2"]);
        assert_eq!(
            images(&children[2]),
            ["shipping:2", "shipping:2"],
            "not running yet"
        );
    }
}
