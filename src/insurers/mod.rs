//! Talking to insurers: the HTTP push connector and a fake insurer for tests and demos.

pub mod fake;
mod push;

pub use push::{push, Document, PushClient};
