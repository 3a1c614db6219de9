//! Storage of the built-in StatefulSets (PostgreSQL, RabbitMQ, Kafka), changed the way
//! the API server allows.
//!
//! A StatefulSet's `volumeClaimTemplates` cannot change once it exists (the API server
//! answers 422 to any apply that changes them), and a volume cannot shrink. So, before
//! the children are applied, [`prepare`] looks at each StatefulSet that already runs:
//!
//! - the StatefulSet is applied with the claim templates it has (the size it was made
//!   with), so the apply of everything else in it (image, resources, probes) goes
//!   through;
//! - a larger `storage.size` grows each existing claim (`<template>-<set>-<ordinal>`)
//!   by patching its `spec.resources.requests.storage`, which the API server allows
//!   for a bound claim whose StorageClass has `allowVolumeExpansion: true`; the volume
//!   and file system then grow while the pod runs (or at its next start);
//! - a smaller size, another `storageClassName`, or a size that is not a quantity are
//!   refused: nothing of that StatefulSet's storage is touched, and the rest of the
//!   system is reconciled as usual.
//!
//! The outcome is the `StorageReady` condition ([`Storage::report`]): `True`
//! (`AsRequested`) once every claim has the size asked for; `False` with `Resizing`
//! while claims grow, or with the reason of a refusal (`ShrinkRefused`,
//! `StorageClassChangeRefused`, `ResizeRefused`, `InvalidSize`), whose message says
//! what to do. A refusal is announced by one Warning Event when it first appears (or
//! its message changes), not at every reconcile; nothing refused is retried faster
//! than the reconciles themselves run (every 30 s while the system is not ready, every
//! 5 minutes once it is). A claim patch the API server refused is tried again at
//! those reconciles, since what fixes it (the StorageClass) is outside the spec.
//!
//! CloudNativePG and Strimzi manage their claims without StatefulSets and grow them the
//! same way (a patch of the claim); RabbitMQ's cluster operator also refuses to shrink
//! ("shrinking persistent volumes is not supported") and grows the claims named after
//! the ordinals, but deletes the StatefulSet (orphaning its pods) to recreate it with
//! the new template. Keeping the live template avoids that window without a
//! StatefulSet; its only cost is that the template shows the size the StatefulSet was
//! made with, and a claim made later from it is grown at the next reconcile.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::children::Child;
use crate::crd::{SalesSystem, SalesSystemStatus};
use crate::quantity::quantity_millis;

/// The condition [`Storage::report`] writes.
pub const STORAGE_READY: &str = "StorageReady";

/// What [`prepare`] found about one StatefulSet's volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The spec asks for less than a volume has.
    ShrinkRefused {
        set: String,
        claim: String,
        asked: String,
        has: String,
    },
    /// The spec names another StorageClass than the volumes were made in.
    StorageClassChangeRefused {
        set: String,
        claim: String,
        asked: String,
        has: String,
    },
    /// The spec's size is not a Kubernetes quantity.
    InvalidSize { set: String, asked: String },
    /// The API server refused to grow a claim (its message).
    ResizeRefused {
        set: String,
        claim: String,
        asked: String,
        message: String,
    },
    /// A claim asked to grow (now or before) whose volume has not grown yet, or a
    /// claim that cannot be asked yet (not bound, not made yet).
    Resizing { claim: String, note: String },
}

impl Finding {
    /// The condition reason of this finding.
    pub fn reason(&self) -> &'static str {
        match self {
            Finding::ShrinkRefused { .. } => "ShrinkRefused",
            Finding::StorageClassChangeRefused { .. } => "StorageClassChangeRefused",
            Finding::InvalidSize { .. } => "InvalidSize",
            Finding::ResizeRefused { .. } => "ResizeRefused",
            Finding::Resizing { .. } => "Resizing",
        }
    }

    /// Whether the spec's change is refused (rather than on its way).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Finding::Resizing { .. })
    }

    /// One sentence for the condition and the Event.
    pub fn message(&self) -> String {
        match self {
            Finding::ShrinkRefused {
                set,
                claim,
                asked,
                has,
            } => format!(
                "{set}: storage.size {asked} is smaller than its volume {claim} ({has}); a volume cannot shrink, so the size is not changed: set storage.size to at least {has}"
            ),
            Finding::StorageClassChangeRefused {
                set,
                claim,
                asked,
                has,
            } => format!(
                "{set}: storageClassName {asked} differs from {has}, the class of its volume {claim}; a volume's class cannot change, so the storage is not changed: set storageClassName back to {has}"
            ),
            Finding::InvalidSize { set, asked } => format!(
                "{set}: storage.size {asked} is not a quantity (e.g. 10Gi), so the storage is not changed"
            ),
            Finding::ResizeRefused {
                set,
                claim,
                asked,
                message,
            } => format!(
                "{set}: the API server refused to grow {claim} to {asked} ({}); growing a volume needs a StorageClass with allowVolumeExpansion: true",
                message.trim_end_matches('.')
            ),
            Finding::Resizing { note, .. } => note.clone(),
        }
    }
}

/// What [`prepare`] found and did, for [`Storage::report`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    /// Whether some StatefulSet with volumes already runs (else there is nothing to
    /// report: new StatefulSets get the size asked for).
    pub examined: bool,
    pub findings: Vec<Finding>,
    /// Claims asked to grow by this reconcile: `(claim, size)`.
    pub grown: Vec<(String, String)>,
}

/// Before the children are applied: give each StatefulSet of `desired` that already
/// exists its live claim templates, and grow, or refuse to change, its claims.
pub async fn prepare(
    client: &Client,
    namespace: &str,
    desired: &mut [Child],
) -> Result<Storage, kube::Error> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut storage = Storage::default();
    for child in desired.iter_mut().filter(|c| c.kind() == "StatefulSet") {
        let Some(live) = sets.get_opt(&child.name()).await? else {
            continue;
        };
        let live_spec = live.spec.clone().unwrap_or_default();
        let live_templates = live_spec.volume_claim_templates.clone().unwrap_or_default();
        let wanted: Vec<PersistentVolumeClaim> = child
            .object
            .data
            .pointer("/spec/volumeClaimTemplates")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(kube::Error::SerdeError)?
            .unwrap_or_default();
        // The templates stay what they are: the API server refuses any change.
        if let Some(spec) = child
            .object
            .data
            .get_mut("spec")
            .and_then(|s| s.as_object_mut())
        {
            if live_templates.is_empty() {
                spec.remove("volumeClaimTemplates");
            } else {
                spec.insert(
                    "volumeClaimTemplates".into(),
                    serde_json::to_value(&live_templates).map_err(kube::Error::SerdeError)?,
                );
            }
        }
        if live_templates.is_empty() {
            continue;
        }
        storage.examined = true;
        let set = live.name_any();
        let replicas = live_spec.replicas.unwrap_or(1).max(0);
        for template in &wanted {
            let name = template.name_any();
            let Some(live_template) = live_templates.iter().find(|t| t.name_any() == name) else {
                continue;
            };
            let mut existing = Vec::new();
            for ordinal in 0..replicas {
                if let Some(claim) = claims.get_opt(&format!("{name}-{set}-{ordinal}")).await? {
                    existing.push(claim);
                }
            }
            let step = plan(&set, template, live_template, &existing);
            for (claim, size) in step.grow {
                let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}});
                match claims
                    .patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        storage.findings.push(Finding::Resizing {
                            claim: claim.clone(),
                            note: format!("{claim} asked to grow to {size}"),
                        });
                        storage.grown.push((claim, size));
                    }
                    // Gone in between: the StatefulSet makes it again, from the template.
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    // Refused for the claim's sake: the admission plugin (403, the class
                    // does not allow expansion) or validation (422). Anything else
                    // (RBAC's 403, a conflict, throttling) fails this reconcile and is
                    // retried, not reported as the StorageClass's fault.
                    Err(kube::Error::Api(e))
                        if e.code == 422 || (e.code == 403 && refused_by_storage(&e.message)) =>
                    {
                        storage.findings.push(Finding::ResizeRefused {
                            set: set.clone(),
                            claim,
                            asked: size,
                            message: e.message.clone(),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            storage.findings.extend(step.findings);
        }
    }
    Ok(storage)
}

/// Whether a 403 on a claim's resize comes from the PersistentVolumeClaimResize
/// admission plugin (the StorageClass, or a claim not dynamically provisioned)
/// rather than from RBAC.
fn refused_by_storage(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("storageclass") || message.contains("resize")
}

/// What to do about one claim template of a live StatefulSet.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Claims to grow: `(claim, size)`.
    grow: Vec<(String, String)>,
    findings: Vec<Finding>,
}

fn requested(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
}

fn capacity(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone())
}

fn class(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
}

/// The decision for one template (pure): refuse a change the API server would refuse
/// or that loses data, else grow the claims smaller than asked.
fn plan(
    set: &str,
    wanted: &PersistentVolumeClaim,
    live: &PersistentVolumeClaim,
    claims: &[PersistentVolumeClaim],
) -> Plan {
    let mut plan = Plan::default();
    let Some(asked) = requested(wanted) else {
        return plan;
    };
    let Some(asked_bytes) = quantity_millis(&asked) else {
        plan.findings.push(Finding::InvalidSize {
            set: set.into(),
            asked,
        });
        return plan;
    };
    let template_name = live.name_any();
    // A class named in the spec must be the one the volumes are in (unset: the
    // cluster's default, whichever the volumes got).
    if let Some(asked_class) = class(wanted) {
        let has = claims
            .iter()
            .find_map(|c| class(c).map(|k| (c.name_any(), k)))
            .or_else(|| class(live).map(|k| (format!("template {template_name}"), k)));
        if let Some((claim, has)) = has
            && has != asked_class
        {
            plan.findings.push(Finding::StorageClassChangeRefused {
                set: set.into(),
                claim,
                asked: asked_class,
                has,
            });
            return plan;
        }
    }
    // Never below what a volume has (or, before any claim exists, its template).
    let sizes = claims
        .iter()
        .filter_map(|c| requested(c).map(|r| (c.name_any(), r)))
        .chain(requested(live).map(|r| (format!("template {template_name}"), r)));
    for (claim, has) in sizes {
        if quantity_millis(&has).is_some_and(|h| h > asked_bytes) {
            plan.findings.push(Finding::ShrinkRefused {
                set: set.into(),
                claim,
                asked,
                has,
            });
            return plan;
        }
    }
    for claim in claims {
        let name = claim.name_any();
        let has = requested(claim).and_then(|r| quantity_millis(&r));
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if has.is_some_and(|h| h < asked_bytes) {
            if bound {
                plan.grow.push((name, asked.clone()));
            } else {
                plan.findings.push(Finding::Resizing {
                    claim: name.clone(),
                    note: format!("{name} is not bound yet; it grows to {asked} once it is"),
                });
            }
        } else if capacity(claim)
            .and_then(|c| quantity_millis(&c))
            .is_some_and(|c| c < asked_bytes)
        {
            plan.findings.push(Finding::Resizing {
                claim: name.clone(),
                note: format!(
                    "{name} is growing to {asked} (capacity {})",
                    capacity(claim).unwrap_or_default()
                ),
            });
        }
    }
    // Claims still to be made get the template's size: grown once they exist.
    if requested(live)
        .and_then(|r| quantity_millis(&r))
        .is_some_and(|t| t < asked_bytes)
        && claims.is_empty()
    {
        plan.findings.push(Finding::Resizing {
            claim: format!("{template_name}-{set}-0"),
            note: format!(
                "{template_name}-{set}-0 does not exist yet; it grows to {asked} once the StatefulSet makes it"
            ),
        });
    }
    plan
}

impl Storage {
    /// The `StorageReady` condition this outcome makes, given the previous ones (to
    /// keep `lastTransitionTime` while the status stays).
    pub fn condition(
        &self,
        previous: &[Condition],
        generation: Option<i64>,
        now: Timestamp,
    ) -> Option<Condition> {
        if !self.examined && self.findings.is_empty() {
            return None;
        }
        let refusals: Vec<&Finding> = self.findings.iter().filter(|f| f.is_refusal()).collect();
        let (ok, reason, message) = match (refusals.first(), self.findings.first()) {
            (Some(first), _) => (
                false,
                first.reason(),
                join(refusals.iter().map(|f| f.message())),
            ),
            (None, Some(first)) => (
                false,
                first.reason(),
                join(self.findings.iter().map(Finding::message)),
            ),
            (None, None) => (
                true,
                "AsRequested",
                "every volume has the size the spec asks for".to_owned(),
            ),
        };
        let status = if ok { "True" } else { "False" };
        let since = previous
            .iter()
            .find(|c| c.type_ == STORAGE_READY && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Some(Condition {
            type_: STORAGE_READY.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: since,
        })
    }

    /// Put the `StorageReady` condition into `status` (written next), and publish an
    /// Event for what changed since the status the system shows: a Warning when a
    /// refusal appears or its message changes, a Normal one for claims asked to grow.
    pub async fn report(
        &self,
        ctx: &crate::reconcile::Context,
        system: &SalesSystem,
        status: &mut SalesSystemStatus,
    ) {
        let previous = system
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let Some(condition) =
            self.condition(&previous, system.metadata.generation, Timestamp::now())
        else {
            return;
        };
        let said_before = previous.iter().any(|c| {
            c.type_ == STORAGE_READY
                && c.reason == condition.reason
                && c.message == condition.message
        });
        status.conditions.retain(|c| c.type_ != STORAGE_READY);
        status.conditions.push(condition.clone());
        if self.findings.iter().any(Finding::is_refusal) && !said_before {
            crate::events::publish(
                &ctx.recorder,
                system,
                "Reconcile",
                true,
                &condition.reason,
                condition.message.clone(),
            )
            .await;
        }
        if !self.grown.is_empty() {
            let grown = self
                .grown
                .iter()
                .map(|(claim, size)| format!("{claim} to {size}"))
                .collect::<Vec<_>>();
            crate::events::publish(
                &ctx.recorder,
                system,
                "Reconcile",
                false,
                "VolumeExpansion",
                format!("asked to grow {}", grown.join(", ")),
            )
            .await;
        }
    }
}

fn join(messages: impl Iterator<Item = String>) -> String {
    messages.collect::<Vec<_>>().join("; ")
}
