//! The outbox of insurer deliveries. Rows are written in the capture transaction and never
//! deleted; claims, attempts and state changes are added by the queue workers.
//!
//! - [`enqueue`]: new deliveries, written in the transaction that stores their document;
//! - [`claim`]: due deliveries taken under a lease, both channels through one statement;
//! - [`record`]: the answers of a batch of attempts, the state changes they bring and the
//!   insurers' breakers (decided by the rule `queue::breaker` it is handed);
//! - [`views`]: what staff, operators and `/metrics` read.

mod claim;
mod enqueue;
mod record;
mod views;

pub use claim::*;
pub use enqueue::*;
pub use record::*;
pub use views::*;

pub use crate::domain::{Channel, DeliveryState, DocumentKind};
