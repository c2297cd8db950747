//! The KBV eAU bundle reader: any bytes must give a bundle or a list of issues, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = au_relay::fhir::read(data);
});
