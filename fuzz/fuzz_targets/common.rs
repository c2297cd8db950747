// Shared by the draft targets: a fixed capture context (demo practice, fixed day, fixed UUID),
// so a crash reproduces whatever day it is replayed on.

use std::sync::OnceLock;

use au_relay::domain::{demo_practice, CaptureContext, Certificate, CertificateDraft};

static CTX: OnceLock<CaptureContext> = OnceLock::new();

/// Completes every draft that decodes (see [`complete`]).
pub fn check(draft: Option<CertificateDraft>) {
    if let Some(draft) = draft {
        complete(&draft, CTX.get_or_init(context));
    }
}

fn context() -> CaptureContext {
    let (practice, doctor) = demo_practice().expect("demo master data is valid");
    CaptureContext {
        practice,
        doctors: vec![doctor],
        today: chrono::NaiveDate::from_ymd_opt(2026, 6, 15).expect("valid date"),
        document_id: uuid::Uuid::from_u128(0x5e1f_0000_0000_4000_8000_0000_0000_0001),
    }
}

/// Completes the draft; a certificate that validates must also write as a KBV bundle that the
/// reader accepts again (the invariant worth a crash).
fn complete(draft: &CertificateDraft, ctx: &CaptureContext) {
    if let Ok(cert) = Certificate::from_draft(draft, ctx) {
        let at = chrono::DateTime::from_timestamp(1_781_510_400, 0).expect("valid timestamp");
        let xml = au_relay::fhir::write_at(&cert, at).expect("a valid certificate writes");
        if let Err(issues) = au_relay::fhir::read(&xml) {
            panic!("written bundle does not read back: {issues:?}");
        }
    }
}
