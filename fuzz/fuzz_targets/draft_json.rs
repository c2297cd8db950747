//! JSON body of `POST /api/v1/certificates`: the API's decoder (serde_json with field paths)
//! into a `CertificateDraft`, then the draft rules with a fixed capture context.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check(au_relay::web::form::from_json(data).ok());
});
