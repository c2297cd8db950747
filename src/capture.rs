//! Capture: a draft from the form or the API becomes a stored certificate, or a list of
//! German field errors. The certificate and its audit row commit together.

use uuid::Uuid;

use crate::domain::{berlin_today, CaptureContext, Certificate, CertificateDraft, FieldError};
use crate::storage::{self, Actor, Captured, Database, NewCertificate, Origin, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("invalid certificate")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Validates the draft against the practice's master data and stores it.
pub async fn submit(
    db: &Database,
    actor: Actor,
    draft: CertificateDraft,
    submission_key: Option<String>,
) -> Result<Captured, CaptureError> {
    db.run(move |conn| {
        let (practice, doctors) = storage::master_data(conn, &actor.practice_id)?;
        let ctx = CaptureContext {
            practice,
            doctors,
            today: berlin_today(chrono::Utc::now()),
            document_id: Uuid::new_v4(),
        };
        let certificate = match Certificate::from_draft(&draft, &ctx) {
            Ok(c) => c,
            Err(errors) => return Ok(Err(errors)),
        };
        let new = NewCertificate {
            certificate: &certificate,
            origin: Origin::Capture,
            submission_key: submission_key.as_deref(),
            fhir_xml: None,
            print_only: certificate.is_print_only(),
        };
        storage::capture(conn, &actor, new).map(Ok)
    })
    .await?
    .map_err(CaptureError::Invalid)
}
