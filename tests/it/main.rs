//! The integration tests, as one test binary (issue #19): one module per area, linked once.
//! Every test gets its own database and its own server (see `common`); the tests run on
//! parallel threads of this one process, so anything process-wide they share (a fixed port,
//! a file, a daemon of the machine) must be serialised in `common`.
//!
//! Run one area with a filter on the module path: `cargo test --test it -- queue::`.

mod common;

mod api;
mod config;
mod corpus;
mod crash;
mod fhir;
mod fhir_api;
mod hardening;
mod insurer_api;
mod kim;
mod mail;
mod matrix;
mod nesting;
mod pdf;
mod print;
mod privacy;
mod queue;
mod roles;
mod scans;
mod signed;
mod storage;
mod teardown;
mod ui;
mod vzd;
