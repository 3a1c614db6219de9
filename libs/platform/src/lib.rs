//! What every sales service runs on. A service's `lib.rs` builds its router and
//! handlers and hands them to a [`service::ServiceBuilder`]; this crate does the rest:
//!
//! - [`config`]: flag/env groups (HTTP, database, broker, telemetry), secrets typed;
//! - [`telemetry`]: JSON logs with trace ids, OpenTelemetry traces over OTLP, W3C context;
//! - [`metrics`]: the Prometheus registry and the shared metric families;
//! - [`http`]: common layers, `/health`, `/ready`, `/metrics`, Swagger UI;
//! - [`error`]: the JSON error answer and extractors that reject bad input clearly;
//! - [`db`]: the PostgreSQL pool and migrations;
//! - [`tls`]: TLS to PostgreSQL, RabbitMQ, Redis and Kafka, checked at start;
//! - [`messaging`]: events over RabbitMQ or Kafka, behind one seam: acknowledged
//!   publishing, consumers with retries and dead letters;
//! - [`outbox`] and [`messaging::handling`]: events out at least once, handled
//!   exactly once ([`inbox`]: what was handled, pruned after a week);
//! - [`identity`]: tokens, keys, the verified caller and each service's access table;
//! - [`client`]: calls to other services, with the service's own token;
//! - [`service`]: start-up and graceful shutdown.

pub mod cache;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod identity;
pub mod inbox;
pub mod listing;
pub mod messaging;
pub mod metrics;
pub mod outbox;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use error::{ApiError, Json, Path, Query};
