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

pub use crate::domain::{Channel, DocumentKind};

/// States of a delivery.
pub mod state {
    use crate::domain::DeliveryState;
    pub const PENDING: &str = DeliveryState::Pending.code();
    /// Waits for the practice's signature (a practice with a Konnektor); never claimed.
    pub const AWAITING_SIGNATURE: &str = DeliveryState::AwaitingSignature.code();
    pub const IN_FLIGHT: &str = DeliveryState::InFlight.code();
    /// Handed to the KIM client module; delivered once its receipt (DSN) has been read.
    /// Never claimed.
    pub const SENT: &str = DeliveryState::Sent.code();
    pub const DELIVERED: &str = DeliveryState::Delivered.code();
    pub const NEEDS_NEW_ID: &str = DeliveryState::NeedsNewId.code();
    pub const DEAD: &str = DeliveryState::Dead.code();
    pub const WITHDRAWN: &str = DeliveryState::Withdrawn.code();
}
