//! Capture: a draft from the form or the API becomes a stored certificate, or a list of
//! German field errors. The certificate and its audit row commit together.

use uuid::Uuid;

use crate::domain::{
    add_working_days, berlin_today, CaptureContext, Certificate, CertificateDraft, FieldError,
    PasswordPolicy, PatientMail,
};
use crate::fhir;
use crate::signature;
use crate::storage::{self, Actor, Captured, Database, NewCertificate, Origin, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("invalid certificate")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("writing the KBV document failed: {0}")]
    Document(String),
}

/// The result of an import of a KBV bundle.
#[derive(Debug)]
pub enum Imported {
    /// Stored (or the identical bytes were stored before), with the reader's warnings.
    Stored {
        captured: Captured,
        warnings: Vec<fhir::Issue>,
        print_only: bool,
    },
    /// A Storno bundle, stored with its eAU (or the identical Storno was stored before).
    Storno(StornoStored),
    /// The bundle is not acceptable: every issue with its location.
    Invalid(Vec<fhir::Issue>),
    /// The bundle is acceptable, but what is stored refuses it (a Storno's UUID holding other
    /// content, its eAU cancelled already): every issue with its location.
    Conflict(Vec<fhir::Issue>),
}

/// An imported Storno and what it did.
#[derive(Debug, Clone)]
pub struct StornoStored {
    /// The Storno's own UUID (`Bundle.identifier`).
    pub id: Uuid,
    /// The UUID of the eAU it cancels: the certificate's id.
    pub cancels: Uuid,
    /// What it did to the eAU: [`storage::Cancelled::StornoQueued`],
    /// [`storage::Cancelled::Withdrawn`] or [`storage::Cancelled::Marked`].
    pub outcome: storage::Cancelled,
    /// Stored by this request (else it was stored before, byte for byte).
    pub created: bool,
    pub warnings: Vec<fhir::Issue>,
}

/// A written KBV document as the text that is stored and sent.
fn document(written: Result<Vec<u8>, fhir::FhirError>) -> Result<String, CaptureError> {
    let bytes = written.map_err(|e| CaptureError::Document(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| CaptureError::Document(e.to_string()))
}

/// How patient mails are prepared at capture.
#[derive(Debug, Clone)]
pub struct MailOptions {
    pub policy: PasswordPolicy,
    /// Domain part of the Message-IDs (the sender's domain).
    pub message_domain: String,
}

impl Default for MailOptions {
    fn default() -> Self {
        Self {
            policy: PasswordPolicy::BirthDate,
            message_domain: "au-relay.invalid".into(),
        }
    }
}

/// A submitted draft: what the storage made of it and, for a certificate stored now, what was
/// stored (so the answer needs no read-back).
#[derive(Debug)]
pub struct Submitted {
    pub captured: Captured,
    /// The certificate as validated; the stored one for [`Captured::Created`].
    pub certificate: Certificate,
    pub created_at: chrono::NaiveDateTime,
    /// The patient mail requested with it (queued, not sent yet).
    pub mail: Option<PatientMail>,
}

/// Validates the draft against the practice's master data and stores it, with its insurer
/// delivery and, if the patient consented, its patient mail, in one transaction. Validation
/// and the KBV document are done before the write, which joins a group commit.
pub async fn submit(
    db: &Database,
    actor: Actor,
    draft: CertificateDraft,
    submission_key: Option<String>,
    mail: &MailOptions,
) -> Result<Submitted, CaptureError> {
    let practice_id = actor.practice_id.clone();
    let ((practice, doctors), practice_signs) = db
        .run(move |conn| {
            let master = storage::master_data(conn, &practice_id)?;
            Ok((master, storage::practice_signs(conn, &practice_id)?))
        })
        .await?;
    let ctx = CaptureContext {
        practice,
        doctors,
        today: berlin_today(chrono::Utc::now()),
        document_id: Uuid::new_v4(),
    };
    let certificate = Certificate::from_draft(&draft, &ctx).map_err(CaptureError::Invalid)?;
    let requested =
        (draft.mail.request().map_err(CaptureError::Invalid)?).map(|m| m.under(mail.policy));
    // The document the insurer will get, written once: replay sends these exact bytes.
    let xml = document(fhir::write(&certificate))?;
    let encoded = storage::Encoded::of(&certificate, xml)?;
    let created_at = storage::now();
    let stored = requested.clone();
    let mail = mail.clone();
    let (captured, certificate) = db
        .write(move |conn| {
            let new = NewCertificate {
                certificate: &certificate,
                origin: Origin::Capture,
                submission_key: submission_key.as_deref(),
                print_only: certificate.is_print_only(),
                mail: stored.as_ref().map(|m| storage::NewMail {
                    mail: m,
                    message_domain: &mail.message_domain,
                }),
                created_at,
                encoded: &encoded,
                practice_signs,
            };
            let captured = storage::capture(conn, &actor, new)?;
            Ok((captured, certificate))
        })
        .await?;
    Ok(Submitted {
        captured,
        certificate,
        created_at,
        mail: requested,
    })
}

/// Imports a KBV eAU bundle that practice software could not send: validated, stored with its
/// own UUID and its original bytes (for replay), queued unless print-only. A Storno bundle is
/// imported as [`import_storno`] says.
pub async fn import(db: &Database, actor: Actor, bytes: Vec<u8>) -> Result<Imported, CaptureError> {
    store_import(db, actor, bytes, None).await
}

/// Imports a signed eAU file (`.p7s`, CAdES enveloping) from practice software: the signature
/// must be intact (see [`signature::verify`]) and its content a valid KBV eAU bundle, validated
/// exactly like an unsigned import. The file is stored byte for byte and is what the insurer
/// gets; the paper copies are rendered from the bundle inside it.
pub async fn import_signed(
    db: &Database,
    actor: Actor,
    p7s: Vec<u8>,
) -> Result<Imported, CaptureError> {
    let verified = match signature::verify(&p7s) {
        Ok(v) => v,
        Err(e) => {
            let issue = fhir::Issue::error(fhir::IssueCode::Security, "Signatur", e.to_string());
            return Ok(Imported::Invalid(vec![issue]));
        }
    };
    let signed = storage::NewSignature {
        p7s,
        signer: verified.signer,
        method: signature::Method::Import,
    };
    store_import(db, actor, verified.content, Some(signed)).await
}

async fn store_import(
    db: &Database,
    actor: Actor,
    bytes: Vec<u8>,
    signed: Option<storage::NewSignature>,
) -> Result<Imported, CaptureError> {
    let incoming = match fhir::read_document(&bytes) {
        Ok(i) => i,
        Err(issues) => return Ok(Imported::Invalid(issues)),
    };
    let Ok(xml) = String::from_utf8(bytes) else {
        return Ok(Imported::Invalid(vec![fhir::Issue::error(
            fhir::IssueCode::Structure,
            "Bundle",
            "Dokument ist kein gültiges UTF-8",
        )]));
    };
    let imported = match incoming {
        fhir::Incoming::Eau(eau) => *eau,
        fhir::Incoming::Storno(storno) => {
            return import_storno(db, actor, storno, xml, signed).await
        }
    };
    let print_only = imported.print_only || imported.certificate.is_print_only();
    let mut encoded = storage::Encoded::of(&imported.certificate, xml)?;
    let practice_signs = match signed {
        Some(signed) => {
            encoded = encoded.signed(signed);
            false
        }
        None => {
            let practice = actor.practice_id.clone();
            db.run(move |conn| Ok(storage::practice_signs(conn, &practice)?))
                .await?
        }
    };
    let captured = db
        .write(move |conn| {
            let new = NewCertificate {
                certificate: &imported.certificate,
                origin: Origin::Import,
                submission_key: None,
                print_only,
                mail: None,
                created_at: storage::now(),
                encoded: &encoded,
                practice_signs,
            };
            storage::capture(conn, &actor, new).map(|c| (c, imported.warnings))
        })
        .await?;
    Ok(Imported::Stored {
        captured: captured.0,
        warnings: captured.1,
        print_only,
    })
}

/// A Storno bundle from practice software (validated by [`fhir::read_document`]), linked to
/// the practice's own eAU by that eAU's `Bundle.identifier` and handled exactly as a
/// cancellation in AU-Relay ([`cancel`], [`storage::import_storno`]): a delivered eAU (or one
/// on its way) gets this Storno, byte for byte (and its `.p7s`), queued behind it within 120
/// working days; an eAU that never reached the insurer is withdrawn and the Storno is kept as
/// the record, never sent. The same Storno again answers what it did the first time.
async fn import_storno(
    db: &Database,
    actor: Actor,
    storno: fhir::ImportedStorno,
    xml: String,
    signed: Option<storage::NewSignature>,
) -> Result<Imported, CaptureError> {
    let fhir::ImportedStorno {
        storno_id,
        cancels,
        cancels_location,
        warnings,
        ..
    } = storno;
    let document = storage::StornoDocument {
        id: storno_id,
        xml,
        signed,
        imported: true,
    };
    let result = db
        .run(move |conn| {
            let allowed = storno_deadline(conn, &actor.practice_id)?;
            storage::import_storno(conn, &actor, cancels, &document, &allowed)
        })
        .await?;
    let stored = |outcome, created| {
        Imported::Storno(StornoStored {
            id: storno_id,
            cancels,
            outcome,
            created,
            warnings: warnings.clone(),
        })
    };
    let issue =
        |code, location: &str, message: String| vec![fhir::Issue::error(code, location, message)];
    Ok(match result {
        storage::StornoImport::Stored(outcome) => stored(outcome, true),
        storage::StornoImport::AlreadyStored(outcome) => stored(outcome, false),
        storage::StornoImport::NotFound => Imported::Invalid(issue(
            fhir::IssueCode::NotFound,
            &cancels_location,
            format!(
                "Dokumenten-ID der stornierten eAU (List.entry.item.identifier.value) \
                 „urn:uuid:{cancels}“: keine eAU dieser Praxis mit diesem Bundle.identifier \
                 gespeichert; bitte zuerst die eAU übernehmen"
            ),
        )),
        storage::StornoImport::TooLate => Imported::Invalid(issue(
            fhir::IssueCode::BusinessRule,
            &cancels_location,
            format!(
                "Storno der eAU „urn:uuid:{cancels}“: nur innerhalb von {STORNO_WORKING_DAYS} \
                 Werktagen nach dem Versand der eAU möglich (TA P6-04)"
            ),
        )),
        storage::StornoImport::AlreadyCancelled => Imported::Conflict(issue(
            fhir::IssueCode::BusinessRule,
            &cancels_location,
            format!(
                "eAU „urn:uuid:{cancels}“: ist bereits storniert; ein weiterer Storno wird nicht \
                 angenommen"
            ),
        )),
        storage::StornoImport::Conflict => Imported::Conflict(issue(
            fhir::IssueCode::BusinessRule,
            "Bundle.identifier",
            "Dokumenten-ID des Stornos: bereits mit anderem Inhalt gespeichert (KP5-06); jeder \
             Storno braucht eine eigene UUID (TA P310-10)"
                .to_owned(),
        )),
    })
}

/// Whether a Storno may still follow an eAU delivered at a time: within
/// [`STORNO_WORKING_DAYS`] working days of the practice's Land (TA P6-04), counted to today.
fn storno_deadline(
    conn: &mut storage::AnyConnection,
    practice_id: &str,
) -> Result<impl Fn(chrono::NaiveDateTime) -> bool, StorageError> {
    let land = storage::practice_land(conn, practice_id)?;
    let today = berlin_today(chrono::Utc::now());
    Ok(move |delivered_at: chrono::NaiveDateTime| {
        let sent_on = berlin_today(delivered_at.and_utc());
        today <= add_working_days(land, sent_on, STORNO_WORKING_DAYS)
    })
}

/// Cancels a certificate (Storno): an unsent eAU is withdrawn; a delivered one gets a Storno
/// bundle queued behind it, within 120 working days of its delivery (TA P6-04).
pub async fn cancel(
    db: &Database,
    actor: Actor,
    id: Uuid,
) -> Result<storage::Cancelled, CaptureError> {
    db.run(move |conn| {
        let Some(stored) = storage::get(conn, &actor.practice_id, id)? else {
            return Ok(Ok(storage::Cancelled::NotFound));
        };
        let today = berlin_today(chrono::Utc::now());
        let storno_id = Uuid::new_v4();
        let xml = match document(fhir::write_storno(&stored.certificate, storno_id, today)) {
            Ok(xml) => xml,
            Err(e) => return Ok(Err(e)),
        };
        let storno = storage::StornoDocument::written(storno_id, xml);
        let allowed = storno_deadline(conn, &actor.practice_id)?;
        storage::cancel(conn, &actor, id, &storno, &allowed).map(Ok)
    })
    .await?
}

/// A delivered eAU may be cancelled within this many working days (TA P6-04).
pub const STORNO_WORKING_DAYS: u32 = 120;
