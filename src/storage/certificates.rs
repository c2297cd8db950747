//! Captured certificates and the audit trail.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{audit_log, certificates};
use super::{is_unique_violation, now, AnyConnection, Result, StorageError};
use crate::domain::Certificate;

/// Who captured a certificate and how it arrived (`web`, `api`, …), for the audit row.
#[derive(Debug, Clone)]
pub struct Actor {
    pub practice_id: String,
    pub name: String,
    pub channel: &'static str,
}

/// The result of [`capture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// Stored now.
    Created(Uuid),
    /// This submission was stored before (double-submitted form, repeated API call, the same
    /// bundle imported again).
    AlreadyStored(Uuid),
    /// A different document already holds this document UUID (KBV KP5-06).
    Conflict(Uuid),
}

impl Captured {
    pub fn id(&self) -> Uuid {
        match self {
            Self::Created(id) | Self::AlreadyStored(id) | Self::Conflict(id) => *id,
        }
    }
}

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Typed in (form or JSON); its XML document is written by AU-Relay.
    Capture,
    /// A KBV bundle received from practice software; its bytes are kept as received.
    Import,
}

impl Origin {
    fn code(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Import => "import",
        }
    }
}

/// A certificate about to be stored.
#[derive(Debug, Clone, Copy)]
pub struct NewCertificate<'a> {
    pub certificate: &'a Certificate,
    pub origin: Origin,
    /// Form token or `Idempotency-Key`: a repetition returns the first certificate.
    pub submission_key: Option<&'a str>,
    /// Never sent electronically (PKV, SKT without KVNR, Personengruppe 07, …).
    pub print_only: bool,
    /// The patient's copy by e-mail, consented to by the patient and recorded by the actor.
    pub mail: Option<super::NewMail<'a>>,
    /// When it is stored (see [`now`]).
    pub created_at: NaiveDateTime,
    /// Its stored forms, computed before the write (see [`Encoded`]).
    pub encoded: &'a Encoded,
    /// The practice signs its documents ([`super::practice_signs`], read before the write): an
    /// unsigned one waits for its signature.
    pub practice_signs: bool,
}

/// The stored forms of a certificate: its JSON document, its KBV eAU XML document (UTF-8) and
/// that document's hash, computed before the write transaction (captures are written by the
/// group-commit writer, which every capture waits for).
#[derive(Debug, Clone)]
pub struct Encoded {
    document: String,
    fhir_xml: String,
    fhir_sha256: String,
    /// The signed file the XML came in (a signed import), stored and sent as received.
    signed: Option<super::NewSignature>,
}

impl Encoded {
    pub fn of(certificate: &Certificate, fhir_xml: String) -> Result<Self> {
        Ok(Self {
            document: serde_json::to_string(certificate)?,
            fhir_sha256: sha256_hex(&fhir_xml),
            fhir_xml,
            signed: None,
        })
    }

    /// With the signed file whose content `fhir_xml` is.
    pub fn signed(mut self, signature: super::NewSignature) -> Self {
        self.signed = Some(signature);
        self
    }
}

/// Lower-cased "name vorname" for searching (SQLite's `lower` only knows ASCII).
fn search_name(c: &Certificate) -> String {
    format!("{} {}", c.patient.last_name, c.patient.first_name).to_lowercase()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Stores a certificate, its insurer delivery (unless print-only) and its audit row in one
/// transaction. A repeated `submission_key`
/// returns the certificate stored the first time instead of a second one; a repeated document
/// UUID is the same document when its XML is byte-identical, else a conflict.
///
/// The transaction writes before it reads, so SQLite takes its write lock at the first
/// statement and waits on `busy_timeout` instead of failing on a lock upgrade.
pub fn capture(
    conn: &mut AnyConnection,
    actor: &Actor,
    new: NewCertificate<'_>,
) -> Result<Captured> {
    let cert = new.certificate;
    let (document, hash) = (&new.encoded.document, &new.encoded.fhir_sha256);
    let id = cert.document_id.to_string();
    let stored = conn.transaction(|conn| {
        let at = new.created_at;
        diesel::insert_into(certificates::table)
            .values((
                (
                    certificates::id.eq(&id),
                    certificates::practice_id.eq(&actor.practice_id),
                    certificates::submission_key.eq(new.submission_key),
                    certificates::kind.eq(cert.kind.code()),
                    certificates::kvnr.eq(cert.patient.insured_number()),
                    certificates::search_name.eq(search_name(cert)),
                    certificates::display_name.eq(cert.patient.display_name()),
                    certificates::insurer_ik.eq(cert.coverage.ik.as_str()),
                    certificates::determined_on.eq(cert.period.determined_on),
                    certificates::incapable_until.eq(cert.period.until),
                ),
                (
                    certificates::document.eq(document),
                    certificates::created_by.eq(&actor.name),
                    certificates::created_at.eq(at),
                    certificates::origin.eq(new.origin.code()),
                    certificates::fhir_xml.eq(&new.encoded.fhir_xml),
                    certificates::fhir_sha256.eq(hash),
                    certificates::print_only.eq(new.print_only),
                    certificates::signed_p7s.eq(new.encoded.signed.as_ref().map(|s| &s.p7s)),
                ),
            ))
            .execute(conn)?;
        if let Some(signature) = &new.encoded.signed {
            super::insert_signature(conn, actor, &id, &id, signature)?;
        }
        let detail = if cert.backdating_confirmed {
            "Rückdatierung > 3 Tage bestätigt"
        } else {
            ""
        };
        if !new.print_only {
            super::outbox::enqueue(
                conn,
                &id,
                &actor.practice_id,
                cert.coverage.ik.as_str(),
                super::outbox::DocumentKind::Eau,
                new.practice_signs && new.encoded.signed.is_none(),
            )?;
        }
        if let Some(mail) = &new.mail {
            super::mail::enqueue_mail(conn, actor, &id, mail, (&actor.name, at))?;
            audit(
                conn,
                actor,
                "mail.requested",
                Some(&id),
                "Einwilligung erfasst",
            )?;
        }
        let action = match new.origin {
            Origin::Capture => "certificate.captured",
            Origin::Import => "certificate.imported",
        };
        audit(conn, actor, action, Some(&id), detail)
    });
    match stored {
        Ok(()) => Ok(Captured::Created(cert.document_id)),
        Err(e) if is_unique_violation(&e) => {
            if let Some(key) = new.submission_key {
                if let Some(first) = by_submission_key(conn, &actor.practice_id, key)? {
                    return Ok(Captured::AlreadyStored(first));
                }
            }
            let existing: Option<(String, Option<String>)> = certificates::table
                .find(&id)
                .select((certificates::practice_id, certificates::fhir_sha256))
                .first(conn)
                .optional()?;
            match existing {
                Some((practice, stored_hash))
                    if practice == actor.practice_id && stored_hash.as_ref() == Some(hash) =>
                {
                    Ok(Captured::AlreadyStored(cert.document_id))
                }
                Some(_) => Ok(Captured::Conflict(cert.document_id)),
                None => Err(StorageError::Query(e)),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The stored KBV XML document of a practice's certificate.
pub fn fhir_xml(conn: &mut AnyConnection, practice_id: &str, id: Uuid) -> Result<Option<String>> {
    let xml: Option<Option<String>> = certificates::table
        .filter(certificates::id.eq(id.to_string()))
        .filter(certificates::practice_id.eq(practice_id))
        .select(certificates::fhir_xml)
        .first(conn)
        .optional()?;
    Ok(xml.flatten())
}

/// Records that a certificate was looked at (who, when, how).
pub fn record_view(conn: &mut AnyConnection, actor: &Actor, id: Uuid) -> Result<()> {
    audit(conn, actor, "certificate.viewed", Some(&id.to_string()), "")?;
    Ok(())
}

/// Records that copies were printed (who, when, which copies) in the audit trail.
pub fn record_print(conn: &mut AnyConnection, actor: &Actor, id: Uuid, what: &str) -> Result<()> {
    audit(
        conn,
        actor,
        "certificate.printed",
        Some(&id.to_string()),
        what,
    )?;
    Ok(())
}

fn by_submission_key(
    conn: &mut AnyConnection,
    practice_id: &str,
    key: &str,
) -> Result<Option<Uuid>> {
    let id: Option<String> = certificates::table
        .filter(certificates::practice_id.eq(practice_id))
        .filter(certificates::submission_key.eq(key))
        .select(certificates::id)
        .first(conn)
        .optional()?;
    id.map(|s| Uuid::parse_str(&s).map_err(|e| StorageError::Invalid(e.to_string())))
        .transpose()
}

/// Appends to the audit trail. Never holds health data in `detail`.
pub fn audit(
    conn: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    certificate_id: Option<&str>,
    detail: &str,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(now()),
            audit_log::practice_id.eq(&actor.practice_id),
            audit_log::actor.eq(format!("{}:{}", actor.channel, actor.name)),
            audit_log::action.eq(action),
            audit_log::certificate_id.eq(certificate_id),
            audit_log::detail.eq(detail),
        ))
        .execute(conn)
        .map(drop)
}

/// A certificate as stored, with its bookkeeping.
#[derive(Debug, Clone)]
pub struct StoredCertificate {
    pub certificate: Certificate,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub cancelled_at: Option<NaiveDateTime>,
}

/// One certificate of a practice; another practice's id finds nothing.
pub fn get(
    conn: &mut AnyConnection,
    practice_id: &str,
    id: Uuid,
) -> Result<Option<StoredCertificate>> {
    let row: Option<(String, NaiveDateTime, String, Option<NaiveDateTime>)> = certificates::table
        .filter(certificates::id.eq(id.to_string()))
        .filter(certificates::practice_id.eq(practice_id))
        .select((
            certificates::document,
            certificates::created_at,
            certificates::created_by,
            certificates::cancelled_at,
        ))
        .first(conn)
        .optional()?;
    row.map(|(doc, created_at, created_by, cancelled_at)| {
        Ok(StoredCertificate {
            certificate: serde_json::from_str(&doc)?,
            created_at,
            created_by,
            cancelled_at,
        })
    })
    .transpose()
}

/// Search filters of the list. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Part of "Name Vorname", case-insensitive.
    pub name: Option<String>,
    pub kvnr: Option<String>,
    /// "festgestellt am" from/to, inclusive.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// A line of the certificate list.
#[derive(Debug, Clone, Queryable)]
pub struct ListItem {
    pub id: String,
    pub kind: String,
    pub display_name: String,
    pub kvnr: String,
    pub insurer_ik: String,
    pub determined_on: NaiveDate,
    pub until: NaiveDate,
    pub created_at: NaiveDateTime,
}

/// One page of results, newest first.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<ListItem>,
    pub total: i64,
}

/// `s` with the `LIKE` wildcards escaped (escape character `\\`).
pub(super) fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn escape_like(s: &str) -> String {
    format!("%{}%", like_literal(s))
}

pub fn list(
    conn: &mut AnyConnection,
    practice_id: &str,
    search: &Search,
    offset: i64,
    limit: i64,
) -> Result<ListPage> {
    // NUL is no text for PostgreSQL, and no name or KVNR holds it.
    let nul = |v: &Option<String>| v.as_deref().is_some_and(|s| s.contains('\0'));
    if nul(&search.name) || nul(&search.kvnr) {
        return Ok(ListPage {
            items: Vec::new(),
            total: 0,
        });
    }
    let filtered = || {
        let mut q = certificates::table
            .filter(certificates::practice_id.eq(practice_id.to_owned()))
            .into_boxed();
        if let Some(name) = search
            .name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            q = q.filter(
                certificates::search_name
                    .like(escape_like(&name.to_lowercase()))
                    .escape('\\'),
            );
        }
        if let Some(kvnr) = search
            .kvnr
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            q = q.filter(certificates::kvnr.eq(kvnr.to_uppercase()));
        }
        if let Some(from) = search.from {
            q = q.filter(certificates::determined_on.ge(from));
        }
        if let Some(to) = search.to {
            q = q.filter(certificates::determined_on.le(to));
        }
        q
    };
    let total = filtered().count().get_result(conn)?;
    let items = filtered()
        .order((certificates::created_at.desc(), certificates::id.desc()))
        .offset(offset.max(0))
        .limit(limit.clamp(1, 200))
        .select((
            certificates::id,
            certificates::kind,
            certificates::display_name,
            certificates::kvnr,
            certificates::insurer_ik,
            certificates::determined_on,
            certificates::incapable_until,
            certificates::created_at,
        ))
        .load(conn)?;
    Ok(ListPage { items, total })
}

/// Rows in `certificates`, `deliveries` and `audit_log`, for tests and the dashboard.
pub fn row_counts(conn: &mut AnyConnection) -> Result<(i64, i64, i64)> {
    let c = certificates::table.count().get_result(conn)?;
    let d = super::schema::deliveries::table.count().get_result(conn)?;
    let a = audit_log::table.count().get_result(conn)?;
    Ok((c, d, a))
}

/// What a cancellation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The eAU had not reached the insurer: withdrawn from the queue.
    Withdrawn,
    /// The eAU was delivered (or is being sent): a Storno is queued behind it.
    StornoQueued,
    /// Print-only certificate: only marked as cancelled.
    Marked,
    AlreadyCancelled,
    /// More than 120 working days after delivery.
    TooLate,
    NotFound,
}

/// The Storno document prepared for a cancellation.
#[derive(Debug, Clone)]
pub struct StornoDocument {
    pub id: Uuid,
    pub xml: String,
}

enum Abort {
    Outcome(Cancelled),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

/// Cancels a practice's certificate in one transaction: an unsent eAU is withdrawn; a
/// delivered one (or one in flight) gets `storno` queued behind it, if `storno_allowed` says
/// its delivery time is within the deadline. The first statement writes (SQLite lock order).
pub fn cancel(
    conn: &mut AnyConnection,
    actor: &Actor,
    id: Uuid,
    storno: &StornoDocument,
    storno_allowed: &dyn Fn(NaiveDateTime) -> bool,
) -> Result<Cancelled> {
    use super::schema::deliveries;
    let key = id.to_string();
    let result = conn.transaction::<Cancelled, Abort, _>(|c| {
        let marked = diesel::update(
            certificates::table
                .filter(certificates::id.eq(&key))
                .filter(certificates::practice_id.eq(&actor.practice_id))
                .filter(certificates::cancelled_at.is_null()),
        )
        .set(certificates::cancelled_at.eq(now()))
        .execute(c)?;
        if marked == 0 {
            let exists: i64 = certificates::table
                .filter(certificates::id.eq(&key))
                .filter(certificates::practice_id.eq(&actor.practice_id))
                .count()
                .get_result(c)?;
            return Err(Abort::Outcome(if exists == 0 {
                Cancelled::NotFound
            } else {
                Cancelled::AlreadyCancelled
            }));
        }
        let eau: Option<(String, String, String, Option<NaiveDateTime>)> = deliveries::table
            .filter(deliveries::certificate_id.eq(&key))
            .filter(deliveries::document_kind.eq(super::DocumentKind::Eau.code()))
            .select((
                deliveries::id,
                deliveries::insurer_ik,
                deliveries::state,
                deliveries::delivered_at,
            ))
            .first(c)
            .optional()?;
        let outcome = match eau {
            None => Cancelled::Marked,
            Some((delivery, _, st, _))
                if st != super::state::DELIVERED && st != super::state::IN_FLIGHT =>
            {
                diesel::update(deliveries::table.find(&delivery))
                    .set(deliveries::state.eq(super::state::WITHDRAWN))
                    .execute(c)?;
                Cancelled::Withdrawn
            }
            Some((_, ik, _, delivered_at)) => {
                if delivered_at.is_some_and(|at| !storno_allowed(at)) {
                    return Err(Abort::Outcome(Cancelled::TooLate));
                }
                let storno_id = storno.id.to_string();
                super::enqueue_storno(c, &key, &actor.practice_id, &ik, &storno_id, &storno.xml)?;
                Cancelled::StornoQueued
            }
        };
        super::mail::withdraw_mails(c, &key)?;
        let detail = match outcome {
            Cancelled::Withdrawn => "eAU zurückgezogen",
            Cancelled::StornoQueued => "Storno eingereiht",
            _ => "",
        };
        audit(c, actor, "certificate.cancelled", Some(&key), detail)?;
        Ok(outcome)
    });
    match result {
        Ok(outcome) | Err(Abort::Outcome(outcome)) => Ok(outcome),
        Err(Abort::Db(e)) => Err(e.into()),
    }
}
