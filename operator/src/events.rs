//! Kubernetes Events on a SalesSystem (`kubectl describe salessystem`): what the
//! operator did, and what failed.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

use crate::crd::SalesSystem;

/// Record an Event for `system`; `action` is what the operator was doing (`Reconcile`,
/// `Scale`). Failing to record one is logged, never an error of the caller.
pub async fn publish(
    recorder: &Recorder,
    system: &SalesSystem,
    action: &str,
    warning: bool,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &system.object_ref(&())).await {
        tracing::warn!(error = %err, reason, "cannot publish an event");
    }
}
