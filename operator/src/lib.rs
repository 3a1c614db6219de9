//! The sales-system operator: reconciles a `SalesSystem` resource into everything the
//! system runs on Kubernetes.
//!
//! - [`crd`]: the `SalesSystem` resource, its validation and defaults;
//! - [`autoscaling`]: consumers scaled on queue depth (the decision:
//!   [`autoscaling::decide`]), and `sales-operator simulate`;
//! - [`catalogue`]: the services, their databases, peers and ports;
//! - [`children`]: every child object, built by pure functions from the spec;
//! - [`reconcile`]: one reconcile, a pipeline (resolve references, build the desired
//!   children, apply, prune, derive and write the status) and the deletion policy;
//! - [`status`]: conditions derived from what runs ([`providers`] and
//!   [`strimzi_status`]: what other operators run); [`events`]: Kubernetes Events;
//! - [`api_error`]: the API server's errors as sentences; [`optional_kinds`]: kinds
//!   used only where their CRDs are installed, found out while running;
//! - [`storage`]: volume expansion and refused storage changes of the StatefulSets;
//! - [`controller`]: the watch loop, behind [`leader`] election, with [`metrics`];
//! - [`render`]: `sales-operator render`, the children without a cluster;
//! - [`reference`]: the CRD's field reference page;
//! - [`yaml`]: YAML that YAML 1.1 readers (kubectl, Helm) read the same way.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api_error;
pub mod autoscaling;
pub mod catalogue;
pub mod children;
pub mod controller;
pub mod crd;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod optional_kinds;
pub mod providers;
pub mod quantity;
pub mod reconcile;
pub mod reference;
pub mod render;
pub mod status;
pub mod storage;
pub mod strimzi_status;
pub mod yaml;
