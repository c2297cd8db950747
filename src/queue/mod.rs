//! The durable queue: what to do with an insurer's answer and when to try again.
//! (Outbox rows, claims and workers build on these rules.)

pub mod breaker;
pub mod policy;
mod supervise;
pub mod worker;

pub use policy::kbv_verdict;
pub use policy::{backoff, classify, kbv_error_code, Answer, Verdict, MAX_ATTEMPTS};
pub use supervise::supervised;
pub use worker::{run, run_mail_once, run_once, Connectors, WorkerSettings};
