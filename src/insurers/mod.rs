//! Talking to insurers: the HTTP push connector and a fake insurer for tests and demos.

use std::time::Duration;

pub mod fake;
mod push;

pub use push::{push, Document, PushClient};

/// What came back from one attempt to hand a document over: the connectors' (HTTP push, KIM)
/// result, which the queue classifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer; `body` is only read for a KBV OperationOutcome.
    Http {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// No answer: refused, reset, timed out.
    Transport(String),
    /// The KIM client module's SMTP answer to the mail (`250` accepted).
    Smtp { code: u16, text: String },
    /// The route is not usable as configured (a password file missing, a bad address): shown
    /// to staff and retried.
    Config(String),
}
