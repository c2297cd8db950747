//! AU-Relay: keeps German sick notes (eAU) flowing when the electronic route to the insurer fails.
// No silent truncation or wrap: integer conversions go through From/TryFrom, geometry through
// `num` (the one module that allows `as`).
#![deny(clippy::as_conversions)]

pub mod app;
pub mod auth;
pub mod capture;
pub mod domain;
pub mod fhir;
pub mod insurers;
pub mod kim;
pub mod konnektor;
pub mod mail;
pub mod num;
pub mod pdf;
pub mod queue;
pub mod scan;
pub mod secret;
pub mod service;
pub mod signature;
pub mod signing;
pub mod storage;
pub mod web;
