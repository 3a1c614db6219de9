//! The contracts between the sales services (and the operator): the event envelope,
//! every message type with its payload, the broker topology (exchange, queues,
//! routing keys), money, and the request/response types one service uses to call another.
//!
//! A change here is a change to a public contract: add fields as `Option` or with a
//! default, and bump [`events::Event::VERSION`] when a payload changes incompatibly.

pub mod api;
pub mod catalogue;
pub mod events;
pub mod money;
pub mod topology;

pub use events::{Envelope, Event, MessageType};
pub use money::{Currency, DecimalAmount, Money};
