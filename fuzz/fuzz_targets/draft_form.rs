//! Form body of `POST /certificates` (urlencoded, `patient.kvnr`, `diagnoses[0].code`): the
//! staff UI's decoder, and serde_urlencoded for comparison, into a `CertificateDraft`, then the
//! draft rules with a fixed capture context.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check(au_relay::web::form::from_form(data).ok());
    common::check(serde_urlencoded::from_bytes(data).ok());
});
