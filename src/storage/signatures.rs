//! Signed documents: the `.p7s` files and who signed them, the documents waiting for a
//! signature, and each practice's Konnektor settings.
//!
//! A practice with a Konnektor signs: every unsigned document it queues (a captured eAU, an
//! unsigned import, a Storno) waits in the delivery state `awaiting_signature`, which no claim
//! takes. Signing stores the file beside its document (an eAU's on its certificate, a Storno's
//! on its delivery) and makes the delivery due, in one transaction; a failed signing leaves the
//! documents waiting with the reason.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{certificates, deliveries, konnektor_settings, signatures};
use super::{audit, now, Actor, AnyConnection, DeliveryState, DocumentKind, Result};
use crate::signature::{Method, Signer};

/// A signature about to be stored with its document.
#[derive(Debug, Clone)]
pub struct NewSignature {
    pub p7s: Vec<u8>,
    pub signer: Signer,
    pub method: Method,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Inserts the signature row of a document. Call inside the transaction that stores the file.
pub(super) fn insert_signature(
    conn: &mut AnyConnection,
    actor: &Actor,
    document_id: &str,
    certificate_id: &str,
    signature: &NewSignature,
) -> QueryResult<()> {
    let signer = &signature.signer;
    diesel::insert_into(signatures::table)
        .values((
            signatures::document_id.eq(document_id),
            signatures::certificate_id.eq(certificate_id),
            signatures::practice_id.eq(&actor.practice_id),
            signatures::method.eq(signature.method.code()),
            signatures::signer_subject.eq(&signer.subject),
            signatures::signer_serial.eq(&signer.serial),
            signatures::signer_issuer.eq(&signer.issuer),
            signatures::signing_time.eq(signer.signing_time),
            signatures::p7s_sha256.eq(sha256_hex(&signature.p7s)),
            signatures::signed_by.eq(&actor.name),
            signatures::signed_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}

/// Whether the practice signs its documents (it has a Konnektor): then unsigned documents
/// wait for their signature before they are sent.
pub fn practice_signs(conn: &mut AnyConnection, practice_id: &str) -> QueryResult<bool> {
    let n: i64 = konnektor_settings::table
        .filter(konnektor_settings::practice_id.eq(practice_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The state a new unsigned delivery of this practice starts in (a Storno; a capture reads
/// [`practice_signs`] before its write).
pub(super) fn initial_state(
    conn: &mut AnyConnection,
    practice_id: &str,
) -> QueryResult<DeliveryState> {
    Ok(DeliveryState::initial(practice_signs(conn, practice_id)?))
}

/// A document waiting for its signature.
#[derive(Debug, Clone)]
pub struct AwaitingSignature {
    pub delivery_id: String,
    pub certificate_id: String,
    /// The UUID of the document to sign (the eAU's, or its Storno's).
    pub document_id: String,
    pub kind: DocumentKind,
    pub display_name: String,
    pub determined_on: chrono::NaiveDate,
    pub incapable_until: chrono::NaiveDate,
    pub created_at: NaiveDateTime,
    /// Why the last signing failed, if it did.
    pub last_error: Option<String>,
    /// The exact bytes to sign.
    pub xml: String,
}

type AwaitingRow = (
    String,
    String,
    DocumentKind,
    Option<String>,
    Option<String>,
    String,
    chrono::NaiveDate,
    chrono::NaiveDate,
    NaiveDateTime,
    Option<String>,
    Option<String>,
);

fn awaiting_of(rows: Vec<AwaitingRow>) -> Vec<AwaitingSignature> {
    rows.into_iter()
        .filter_map(
            |(
                id,
                certificate_id,
                kind,
                document_id,
                document,
                name,
                from,
                until,
                at,
                error,
                xml,
            )| {
                Some(AwaitingSignature {
                    delivery_id: id,
                    document_id: document_id.unwrap_or_else(|| certificate_id.clone()),
                    certificate_id,
                    kind,
                    display_name: name,
                    determined_on: from,
                    incapable_until: until,
                    created_at: at,
                    last_error: error,
                    xml: document.or(xml)?,
                })
            },
        )
        .collect()
}

/// The practice's documents waiting for a signature, oldest first: at most `limit`, or those of
/// `only` (delivery ids) that still wait.
fn load_awaiting(
    conn: &mut AnyConnection,
    practice_id: &str,
    only: Option<&[String]>,
    limit: i64,
) -> Result<Vec<AwaitingSignature>> {
    let mut q = deliveries::table
        .inner_join(certificates::table)
        .filter(deliveries::practice_id.eq(practice_id.to_owned()))
        .filter(deliveries::state.eq(DeliveryState::AwaitingSignature))
        .into_boxed();
    if let Some(ids) = only {
        q = q.filter(deliveries::id.eq_any(ids.to_vec()));
    }
    let rows: Vec<AwaitingRow> = q
        .order((deliveries::created_at, deliveries::id))
        .limit(limit)
        .select((
            deliveries::id,
            deliveries::certificate_id,
            deliveries::document_kind,
            deliveries::document_id,
            deliveries::document,
            certificates::display_name,
            certificates::determined_on,
            certificates::incapable_until,
            deliveries::created_at,
            deliveries::last_error,
            certificates::fhir_xml,
        ))
        .load(conn)?;
    Ok(awaiting_of(rows))
}

/// The practice's documents waiting for a signature, oldest first, at most `limit`.
pub fn awaiting_signature(
    conn: &mut AnyConnection,
    practice_id: &str,
    limit: i64,
) -> Result<Vec<AwaitingSignature>> {
    load_awaiting(conn, practice_id, None, limit)
}

/// How many of the practice's documents wait for a signature.
pub fn awaiting_signature_count(conn: &mut AnyConnection, practice_id: &str) -> Result<i64> {
    Ok(deliveries::table
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::state.eq(DeliveryState::AwaitingSignature))
        .count()
        .get_result(conn)?)
}

/// These deliveries of the practice, if they still wait for a signature (others are skipped).
pub fn awaiting_by_id(
    conn: &mut AnyConnection,
    practice_id: &str,
    delivery_ids: &[String],
) -> Result<Vec<AwaitingSignature>> {
    let limit = i64::try_from(delivery_ids.len()).unwrap_or(i64::MAX);
    load_awaiting(conn, practice_id, Some(delivery_ids), limit)
}

/// A signature made for a waiting delivery.
#[derive(Debug, Clone)]
pub struct MadeSignature {
    pub delivery_id: String,
    pub signature: NewSignature,
}

/// Stores the signatures and makes their deliveries due, in one transaction with an audit row
/// per document. A delivery that no longer waits (withdrawn meanwhile) is skipped. Returns how
/// many were stored.
pub fn record_signed(
    conn: &mut AnyConnection,
    actor: &Actor,
    made: &[MadeSignature],
) -> Result<usize> {
    Ok(conn.transaction::<_, diesel::result::Error, _>(|c| {
        let at = now();
        let mut stored = 0;
        for m in made {
            let row: Option<(String, DocumentKind, Option<String>)> = deliveries::table
                .filter(deliveries::id.eq(&m.delivery_id))
                .filter(deliveries::practice_id.eq(&actor.practice_id))
                .filter(deliveries::state.eq(DeliveryState::AwaitingSignature))
                .select((
                    deliveries::certificate_id,
                    deliveries::document_kind,
                    deliveries::document_id,
                ))
                .first(c)
                .optional()?;
            let Some((certificate_id, kind, document_id)) = row else {
                continue;
            };
            let storno = document_id.is_some();
            let document_id = document_id.unwrap_or_else(|| certificate_id.clone());
            if storno {
                diesel::update(deliveries::table.find(&m.delivery_id))
                    .set(deliveries::signed_document.eq(&m.signature.p7s))
                    .execute(c)?;
            } else {
                diesel::update(certificates::table.find(&certificate_id))
                    .set(certificates::signed_p7s.eq(&m.signature.p7s))
                    .execute(c)?;
            }
            diesel::update(deliveries::table.find(&m.delivery_id))
                .set((
                    deliveries::state.eq(DeliveryState::Pending),
                    deliveries::next_attempt_at.eq(at),
                    deliveries::last_error.eq(None::<String>),
                ))
                .execute(c)?;
            insert_signature(c, actor, &document_id, &certificate_id, &m.signature)?;
            let detail = format!("{} signiert ({})", kind.label(), m.signature.method.label());
            audit(
                c,
                actor,
                "certificate.signed",
                Some(&certificate_id),
                &detail,
            )?;
            stored += 1;
        }
        Ok(stored)
    })?)
}

/// Records why signing these waiting deliveries failed; they keep waiting.
pub fn record_signature_failure(
    conn: &mut AnyConnection,
    actor: &Actor,
    delivery_ids: &[String],
    message: &str,
) -> Result<()> {
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        diesel::update(
            deliveries::table
                .filter(deliveries::id.eq_any(delivery_ids))
                .filter(deliveries::practice_id.eq(&actor.practice_id))
                .filter(deliveries::state.eq(DeliveryState::AwaitingSignature)),
        )
        .set(deliveries::last_error.eq(message))
        .execute(c)?;
        let detail = format!("{} Dokument(e): {message}", delivery_ids.len());
        audit(c, actor, "signature.failed", None, &detail)
    })?;
    Ok(())
}

/// A stored signature, as shown on the detail page.
#[derive(Debug, Clone, Queryable)]
pub struct SignatureRow {
    pub document_id: String,
    pub method: String,
    pub signer_subject: String,
    pub signer_serial: String,
    pub signer_issuer: String,
    pub signing_time: Option<NaiveDateTime>,
    pub signed_by: String,
    pub signed_at: NaiveDateTime,
}

/// The signatures of one of the practice's certificates (its eAU and any Storno), oldest first.
pub fn signatures_of(
    conn: &mut AnyConnection,
    practice_id: &str,
    certificate_id: Uuid,
) -> Result<Vec<SignatureRow>> {
    Ok(signatures::table
        .filter(signatures::practice_id.eq(practice_id))
        .filter(signatures::certificate_id.eq(certificate_id.to_string()))
        .order(signatures::signed_at)
        .select((
            signatures::document_id,
            signatures::method,
            signatures::signer_subject,
            signatures::signer_serial,
            signatures::signer_issuer,
            signatures::signing_time,
            signatures::signed_by,
            signatures::signed_at,
        ))
        .load(conn)?)
}

/// The stored `.p7s` of one of the practice's certificates (its eAU), if it is signed.
pub fn signed_file(
    conn: &mut AnyConnection,
    practice_id: &str,
    certificate_id: Uuid,
) -> Result<Option<Vec<u8>>> {
    Ok(certificates::table
        .filter(certificates::id.eq(certificate_id.to_string()))
        .filter(certificates::practice_id.eq(practice_id))
        .select(certificates::signed_p7s)
        .first::<Option<Vec<u8>>>(conn)
        .optional()?
        .flatten())
}

/// Signed documents (eAU and Storno) over all practices, for `/metrics`.
pub fn signed_count(conn: &mut AnyConnection) -> Result<i64> {
    Ok(signatures::table.count().get_result(conn)?)
}

/// A practice's Konnektor, as configured by its admin. No secret is stored: `secret_ref`
/// says where it is read from (`env:NAME` or `file:/path`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = konnektor_settings)]
pub struct KonnektorRow {
    pub practice_id: String,
    pub base_url: String,
    pub mandant_id: String,
    pub client_system_id: String,
    pub workplace_id: String,
    pub user_id: Option<String>,
    pub card: String,
    pub iccsn: Option<String>,
    pub auth: String,
    pub basic_user: Option<String>,
    pub secret_ref: Option<String>,
    pub accept_invalid_certs: bool,
    pub smcb_allowed: bool,
    pub updated_at: NaiveDateTime,
}

impl KonnektorRow {
    /// A Konnektor on the practice network without authentication, signing with the eHBA
    /// (the test Konnektor of the demo and the tests).
    pub fn unauthenticated(
        practice_id: &str,
        base_url: String,
        context: crate::konnektor::Context,
    ) -> Self {
        Self {
            practice_id: practice_id.to_owned(),
            base_url,
            mandant_id: context.mandant_id,
            client_system_id: context.client_system_id,
            workplace_id: context.workplace_id,
            user_id: context.user_id,
            card: crate::konnektor::CardKind::Hba.code().into(),
            iccsn: None,
            auth: "none".into(),
            basic_user: None,
            secret_ref: None,
            accept_invalid_certs: false,
            smcb_allowed: false,
            updated_at: now(),
        }
    }
}

/// The practice's Konnektor settings, if it has any.
pub fn konnektor_of(conn: &mut AnyConnection, practice_id: &str) -> Result<Option<KonnektorRow>> {
    Ok(konnektor_settings::table
        .find(practice_id)
        .first(conn)
        .optional()?)
}

/// Saves (inserts or replaces) the practice's Konnektor settings.
pub fn put_konnektor(conn: &mut AnyConnection, row: &KonnektorRow) -> Result<()> {
    let updated = diesel::update(konnektor_settings::table.find(&row.practice_id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(konnektor_settings::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Removes the practice's Konnektor: documents waiting for a signature are sent unsigned from
/// now on (they become due). Returns how many were released. Call inside a transaction.
pub fn delete_konnektor(conn: &mut AnyConnection, practice_id: &str) -> Result<usize> {
    diesel::delete(konnektor_settings::table.find(practice_id)).execute(conn)?;
    Ok(diesel::update(
        deliveries::table
            .filter(deliveries::practice_id.eq(practice_id))
            .filter(deliveries::state.eq(DeliveryState::AwaitingSignature)),
    )
    .set((
        deliveries::state.eq(DeliveryState::Pending),
        deliveries::next_attempt_at.eq(now()),
    ))
    .execute(conn)?)
}

/// Whether the practice's certificate (its eAU) was signed with the SMC-B (Anlage 2b): its
/// patient copy is then signed by hand.
pub fn signed_with_smcb(
    conn: &mut AnyConnection,
    practice_id: &str,
    certificate_id: Uuid,
) -> Result<bool> {
    let id = certificate_id.to_string();
    let n: i64 = signatures::table
        .filter(signatures::practice_id.eq(practice_id))
        .filter(signatures::document_id.eq(&id))
        .filter(signatures::method.eq(Method::SmcB.code()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
