//! Kubernetes Events on a SalesSystem (`kubectl describe salessystem`): what the
//! operator did, and what failed.
//!
//! [`Recorder`] has the API of kube's, but a repeat is one Event only when its message
//! is the same too. kube's `Recorder` keys a series on the reason alone and, on a
//! repeat, patches the first Event's count and time, keeping its first message: after
//! generation 2 was applied the Event still said "applied generation 1", and
//! `ApplyFailed` kept showing an error that was no longer the one happening. (The API
//! server refuses a new `note` on an existing `events.k8s.io/v1` Event anyway: it is
//! immutable.) Here a new message is a new Event; the same message again within six
//! minutes counts up the series of the Event that says it, as client-go's recorder
//! does.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::Mutex;

pub use kube::runtime::events::{Event, EventType, Reporter};

use crate::crd::SalesSystem;

/// How long a repeat counts as the same series (kube's and client-go's figure).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// What makes two Events one series: everything they say, the message included.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    warning: bool,
    action: String,
    reason: String,
    note: Option<String>,
    /// The regarded object: apiVersion, kind, namespace, name, uid.
    regarding: [Option<String>; 5],
}

/// The last Event of each series: its name, count and when it was last seen.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

/// Publishes Events for the objects it is given, one Event per distinct message.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    seen: Arc<Mutex<HashMap<Key, Seen>>>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            seen: Arc::default(),
        }
    }

    /// Publish `event` about `regarding`: a new Event unless the same one (message
    /// included) was published within the series window, whose count goes up instead.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            warning: event.type_ == EventType::Warning,
            action: event.action.clone(),
            reason: event.reason.clone(),
            note: event.note.clone(),
            regarding: [
                regarding.api_version.clone(),
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ],
        };
        // The lock is held only to read and to record, never across a request: one
        // slow answer of the API server holds up no other Event. Two identical Events
        // at the same moment may then make two objects: harmless.
        let previous = {
            let mut seen = self.seen.lock().await;
            seen.retain(|_, s| s.last + SERIES_WINDOW > now);
            seen.get(&key).cloned()
        };
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(previous) = previous {
            let count = previous.count + 1;
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            let patched = events
                .patch(
                    &previous.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "series": series })),
                )
                .await;
            match patched {
                Ok(_) => {
                    self.seen.lock().await.insert(
                        key,
                        Seen {
                            count,
                            last: now,
                            ..previous
                        },
                    );
                    return Ok(());
                }
                // Gone (expired, or deleted): a new Event below.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond()
        );
        let created = K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        events.create(&PostParams::default(), &created).await?;
        self.seen.lock().await.insert(
            key,
            Seen {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

/// The most an Event's note may hold (the API server refuses more than 1 kB).
const NOTE_LIMIT: usize = 1024;

/// `note` cut to what an Event may hold, at a character boundary, marked with `…`.
fn fit(note: String) -> String {
    if note.len() <= NOTE_LIMIT {
        return note;
    }
    let mut end = NOTE_LIMIT - '…'.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

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
        note: Some(fit(note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &system.object_ref(&())).await {
        tracing::warn!(error = %crate::api_error::describe(&err), reason, "cannot publish an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_note_is_cut_to_what_an_event_holds() {
        assert_eq!(fit("short".into()), "short");
        let long = "é".repeat(800);
        let cut = fit(long);
        assert!(
            cut.len() <= NOTE_LIMIT && cut.ends_with('…'),
            "{}",
            cut.len()
        );
    }
}
