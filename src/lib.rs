//! AU-Relay: keeps German sick notes (eAU) flowing when the electronic route to the insurer fails.

pub mod app;
pub mod auth;
pub mod capture;
pub mod domain;
pub mod pdf;
pub mod storage;
pub mod web;
