//! Signing captured documents through the practice's Konnektor (use case shared by the staff
//! page "Zu signieren" and the tests): one `SignDocument` call per batch (Stapelsignatur, one
//! PIN entry at the card terminal), each returned `.p7s` checked before it is stored, and a
//! failure of any kind leaves every document of the batch waiting with the reason shown.

use crate::konnektor::{self, CardKind, KonnektorError, Signed, ToSign};
use crate::signature::{self, Method};
use crate::storage::{self, Actor, AwaitingSignature, Database, KonnektorRow, StorageError};

/// Why a batch was not signed. Every variant has a German text for staff.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("Für diese Praxis ist kein Konnektor eingerichtet (Praxisdaten → Konnektor)")]
    NoKonnektor,
    #[error("Keine Dokumente ausgewählt, die auf ihre Signatur warten")]
    NothingToSign,
    #[error("Höchstens {} Dokumente je Stapelsignatur", konnektor::MAX_BATCH)]
    TooMany,
    #[error("Signatur mit der SMC-B ist für diese Praxis nicht freigegeben (nur in den Fällen der Anlage 2b BMV-Ä)")]
    SmcBNotAllowed,
    #[error("Konnektor-Einstellung: {0}")]
    Settings(String),
    #[error("{}", .0.german())]
    Konnektor(KonnektorError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SignReport {
    /// Signed and now queued for the insurer.
    pub signed: usize,
    /// Left waiting, each with the Konnektor's reason (`(delivery id, reason)`).
    pub failed: Vec<(String, String)>,
}

/// The secret a `secret_ref` names: `env:NAME` or `file:/path`.
pub(crate) fn resolve_secret(reference: &str) -> Result<Vec<u8>, SigningError> {
    if let Some(name) = reference.strip_prefix("env:") {
        std::env::var(name).map(String::into_bytes).map_err(|_| {
            SigningError::Settings(format!("Umgebungsvariable {name} ist nicht gesetzt"))
        })
    } else if let Some(path) = reference.strip_prefix("file:") {
        std::fs::read(path)
            .map_err(|_| SigningError::Settings(format!("Datei {path} ist nicht lesbar")))
    } else {
        Err(SigningError::Settings(
            "Geheimnis: erwartet env:NAME oder file:/pfad".into(),
        ))
    }
}

/// The client settings of a stored Konnektor row (secrets read now, never stored).
pub fn settings_of(row: &KonnektorRow) -> Result<konnektor::Settings, SigningError> {
    let secret = || {
        row.secret_ref
            .as_deref()
            .ok_or_else(|| {
                SigningError::Settings("Geheimnis fehlt (env:NAME oder file:/pfad)".into())
            })
            .and_then(resolve_secret)
    };
    let auth = match row.auth.as_str() {
        "none" => konnektor::Auth::None,
        "basic" => konnektor::Auth::Basic {
            user: row.basic_user.clone().unwrap_or_default(),
            password: String::from_utf8(secret()?)
                .map_err(|_| SigningError::Settings("Passwort ist kein UTF-8".into()))?
                .trim_end()
                .to_owned(),
        },
        "cert" => konnektor::Auth::ClientCert { pem: secret()? },
        other => {
            return Err(SigningError::Settings(format!(
                "unbekannte Anmeldung {other}"
            )))
        }
    };
    let card = CardKind::parse(&row.card)
        .ok_or_else(|| SigningError::Settings(format!("unbekannte Karte {}", row.card)))?;
    Ok(konnektor::Settings {
        base_url: row.base_url.clone(),
        context: konnektor::Context {
            mandant_id: row.mandant_id.clone(),
            client_system_id: row.client_system_id.clone(),
            workplace_id: row.workplace_id.clone(),
            user_id: row.user_id.clone(),
        },
        auth,
        card,
        iccsn: row.iccsn.clone(),
        accept_invalid_certs: row.accept_invalid_certs,
        timeout: SIGN_TIMEOUT,
    })
}

/// How long a `SignDocument` call may take: the doctor enters the PIN at the card terminal.
pub const SIGN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The practice's Konnektor client, or why there is none.
pub async fn client_of(
    db: &Database,
    practice_id: &str,
) -> Result<(konnektor::Client, KonnektorRow), SigningError> {
    let practice = practice_id.to_owned();
    let row = db
        .run(move |c| storage::konnektor_of(c, &practice))
        .await?
        .ok_or(SigningError::NoKonnektor)?;
    let settings = settings_of(&row)?;
    let client = konnektor::Client::new(settings).map_err(SigningError::Konnektor)?;
    Ok((client, row))
}

/// The text the card terminal shows for a document (no health data).
fn short_text(doc: &AwaitingSignature) -> String {
    let what = match doc.kind {
        storage::DocumentKind::Storno => "Storno eAU",
        storage::DocumentKind::Eau | storage::DocumentKind::Mail => "eAU",
    };
    format!("{what} ab {}", doc.determined_on.format("%d.%m.%Y"))
}

/// Signs these waiting deliveries of the actor's practice in one Stapelsignatur. A Konnektor
/// fault for the whole call leaves all of them waiting with its German text (and is returned);
/// a document the Konnektor refused, or whose returned file does not verify or does not sign
/// exactly the stored bytes, stays waiting with its reason in the report.
pub async fn sign(
    db: &Database,
    actor: &Actor,
    delivery_ids: Vec<String>,
) -> Result<SignReport, SigningError> {
    if delivery_ids.len() > konnektor::MAX_BATCH {
        return Err(SigningError::TooMany);
    }
    let (client, row) = client_of(db, &actor.practice_id).await?;
    let method = match CardKind::parse(&row.card) {
        Some(CardKind::SmcB) if !row.smcb_allowed => return Err(SigningError::SmcBNotAllowed),
        Some(CardKind::SmcB) => Method::SmcB,
        _ => Method::Hba,
    };
    let practice = actor.practice_id.clone();
    let docs = db
        .run(move |c| storage::awaiting_by_id(c, &practice, &delivery_ids))
        .await?;
    if docs.is_empty() {
        return Err(SigningError::NothingToSign);
    }
    let requests: Vec<ToSign> = docs
        .iter()
        .map(|d| ToSign {
            request_id: d.delivery_id.clone(),
            short_text: short_text(d),
            content: d.xml.clone().into_bytes(),
        })
        .collect();
    let ids: Vec<String> = docs.iter().map(|d| d.delivery_id.clone()).collect();
    let answers = match client.sign(&requests).await {
        Ok(a) => a,
        Err(e) => {
            let message = e.german();
            let who = actor.clone();
            db.run(move |c| storage::record_signature_failure(c, &who, &ids, &message))
                .await?;
            return Err(SigningError::Konnektor(e));
        }
    };
    let (made, failed) = checked(&docs, answers, method);
    let who = actor.clone();
    let signed = db
        .run(move |c| storage::record_signed(c, &who, &made))
        .await?;
    for (id, reason) in &failed {
        let (who, ids, reason) = (actor.clone(), vec![id.clone()], reason.clone());
        db.run(move |c| storage::record_signature_failure(c, &who, &ids, &reason))
            .await?;
    }
    Ok(SignReport { signed, failed })
}

/// Splits the Konnektor's answers into verified signatures and failures. A file is taken only
/// when it verifies and its content is byte for byte the document that was sent to be signed.
fn checked(
    docs: &[AwaitingSignature],
    answers: Vec<Signed>,
    method: Method,
) -> (Vec<storage::MadeSignature>, Vec<(String, String)>) {
    let mut made = Vec::new();
    let mut failed = Vec::new();
    let mut answered = std::collections::HashSet::new();
    for answer in answers {
        match answer {
            Signed::Ok { request_id, p7s } => {
                answered.insert(request_id.clone());
                let Some(doc) = docs.iter().find(|d| d.delivery_id == request_id) else {
                    continue;
                };
                match signature::verify(&p7s) {
                    Ok(v) if v.content == doc.xml.as_bytes() => made.push(storage::MadeSignature {
                        delivery_id: request_id,
                        signature: storage::NewSignature {
                            p7s,
                            signer: v.signer,
                            method,
                        },
                    }),
                    Ok(_) => failed.push((
                        request_id,
                        "Konnektor hat einen anderen Inhalt signiert als gesendet".into(),
                    )),
                    Err(e) => failed.push((request_id, format!("Signatur des Konnektors: {e}"))),
                }
            }
            Signed::Failed {
                request_id,
                message,
            } => {
                answered.insert(request_id.clone());
                failed.push((request_id, message));
            }
        }
    }
    for doc in docs {
        if !answered.contains(&doc.delivery_id) {
            failed.push((
                doc.delivery_id.clone(),
                "Konnektor hat für dieses Dokument keine Signatur geliefert".into(),
            ));
        }
    }
    (made, failed)
}

/// Starts a Komfortsignatur at the practice's Konnektor (SignatureService 7.5, eHBA with a
/// user): the doctor enters the PIN once, then batches sign without PIN entry until the
/// Konnektor's limit (up to 250 signatures, at most 24 hours). Audited.
pub async fn activate_comfort(
    db: &Database,
    actor: &Actor,
) -> Result<konnektor::SignatureMode, SigningError> {
    let (client, row) = client_of(db, &actor.practice_id).await?;
    if CardKind::parse(&row.card) != Some(CardKind::Hba) {
        return Err(SigningError::Settings(
            "Komfortsignatur gibt es nur mit dem eHBA".into(),
        ));
    }
    let mode = client
        .activate_comfort()
        .await
        .map_err(SigningError::Konnektor)?;
    let who = actor.clone();
    db.run(move |c| {
        storage::audit(
            c,
            &who,
            "signature.comfort",
            None,
            "Komfortsignatur aktiviert",
        )
        .map_err(StorageError::from)
    })
    .await?;
    Ok(mode)
}
