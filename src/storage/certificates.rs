//! Captured certificates and the audit trail.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{audit_log, certificates};
use super::{
    is_unique_violation, now, AnyConnection, DeliveryState, DocumentKind, Result, StorageError,
};
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
    let p = &c.patient;
    format!("{} {}", p.family_name(), p.first_name).to_lowercase()
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
                DocumentKind::Eau,
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
    /// When the insurer matched its scan of the paper KK copy to this document.
    pub paper_received_at: Option<NaiveDateTime>,
}

/// One certificate of a practice; another practice's id finds nothing.
pub fn get(
    conn: &mut AnyConnection,
    practice_id: &str,
    id: Uuid,
) -> Result<Option<StoredCertificate>> {
    type Row = (
        String,
        NaiveDateTime,
        String,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
    );
    let row: Option<Row> = certificates::table
        .filter(certificates::id.eq(id.to_string()))
        .filter(certificates::practice_id.eq(practice_id))
        .select((
            certificates::document,
            certificates::created_at,
            certificates::created_by,
            certificates::cancelled_at,
            certificates::paper_received_at,
        ))
        .first(conn)
        .optional()?;
    row.map(
        |(doc, created_at, created_by, cancelled_at, paper_received_at)| {
            Ok(StoredCertificate {
                certificate: serde_json::from_str(&doc)?,
                created_at,
                created_by,
                cancelled_at,
                paper_received_at,
            })
        },
    )
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

/// The Storno document of a cancellation: written by AU-Relay ([`cancel`]) or received from
/// practice software ([`import_storno`]).
#[derive(Debug, Clone)]
pub struct StornoDocument {
    pub id: Uuid,
    pub xml: String,
    /// The signed file the XML came in (an imported `.p7s`), stored and sent as received.
    pub signed: Option<super::NewSignature>,
    /// Received from practice software: its exact bytes are the record of the cancellation, so
    /// they are kept even where nothing goes to the insurer (an eAU that never reached it).
    pub imported: bool,
}

impl StornoDocument {
    /// A Storno written by AU-Relay for a cancellation made in AU-Relay.
    pub fn written(id: Uuid, xml: String) -> Self {
        Self {
            id,
            xml,
            signed: None,
            imported: false,
        }
    }
}

/// What the import of a Storno from practice software did ([`import_storno`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StornoImport {
    /// Stored now, with what it did to its eAU: [`Cancelled::StornoQueued`] (queued behind the
    /// delivered eAU), [`Cancelled::Withdrawn`] (the unsent eAU withdrawn, the Storno kept as
    /// the record, never sent) or [`Cancelled::Marked`] (a print-only eAU, likewise).
    Stored(Cancelled),
    /// This Storno (its XML byte for byte) was imported before: what it did then.
    AlreadyStored(Cancelled),
    /// The eAU is cancelled already (in AU-Relay, or by another Storno).
    AlreadyCancelled,
    /// The Storno's UUID holds another document (KBV KP5-06).
    Conflict,
    /// More than 120 working days after the eAU's delivery.
    TooLate,
    /// The practice has no eAU with this identifier (another practice's is not found either).
    NotFound,
}

enum Abort {
    Outcome(Cancelled),
    Import(StornoImport),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

/// Cancels a practice's certificate in one transaction: an unsent eAU is withdrawn; a
/// delivered one (or one in flight, or handed to the KIM client module) gets `storno` queued
/// behind it, if `storno_allowed` says its delivery time is within the deadline. The first
/// statement writes (SQLite lock order).
pub fn cancel(
    conn: &mut AnyConnection,
    actor: &Actor,
    id: Uuid,
    storno: &StornoDocument,
    storno_allowed: &dyn Fn(NaiveDateTime) -> bool,
) -> Result<Cancelled> {
    let result = conn
        .transaction::<Cancelled, Abort, _>(|c| cancel_in(c, actor, id, storno, storno_allowed));
    match result {
        Ok(outcome) | Err(Abort::Outcome(outcome)) => Ok(outcome),
        Err(Abort::Import(_)) => Err(StorageError::Invalid("cancel: import outcome".into())),
        Err(Abort::Db(e)) => Err(e.into()),
    }
}

/// Imports a Storno received from practice software for the practice's eAU `eau_id` (its
/// `Bundle.identifier`), in one transaction, exactly as [`cancel`] cancels: a delivered eAU
/// (or one in flight or handed to KIM) gets the Storno queued behind it, within the deadline;
/// an eAU that never reached the insurer is withdrawn and the Storno is kept as the record
/// (a withdrawn Storno delivery, never sent: the insurer does not know the eAU). The Storno's
/// exact bytes (and `.p7s`) are stored either way.
///
/// The same Storno again (same UUID, same XML) answers what it did the first time; its UUID
/// under other content, or on another document, is a conflict. Another practice's eAU is not
/// found, like an unknown one.
pub fn import_storno(
    conn: &mut AnyConnection,
    actor: &Actor,
    eau_id: Uuid,
    storno: &StornoDocument,
    storno_allowed: &dyn Fn(NaiveDateTime) -> bool,
) -> Result<StornoImport> {
    let result = conn.transaction::<StornoImport, Abort, _>(|c| {
        // Reads come first here: take SQLite's write lock now.
        super::begin_write(c)?;
        if let Some(before) = imported_before(c, actor, eau_id, storno)? {
            return Err(Abort::Import(before));
        }
        match cancel_in(c, actor, eau_id, storno, storno_allowed) {
            Ok(outcome) => Ok(StornoImport::Stored(outcome)),
            // A concurrent import of the same Storno may have won the certificate's row.
            Err(Abort::Outcome(Cancelled::AlreadyCancelled)) => Err(Abort::Import(
                imported_before(c, actor, eau_id, storno)?
                    .unwrap_or(StornoImport::AlreadyCancelled),
            )),
            Err(Abort::Outcome(Cancelled::TooLate)) => Err(Abort::Import(StornoImport::TooLate)),
            Err(Abort::Outcome(_)) => Err(Abort::Import(StornoImport::NotFound)),
            Err(other) => Err(other),
        }
    });
    match result {
        Ok(outcome) | Err(Abort::Import(outcome)) => Ok(outcome),
        Err(Abort::Outcome(_)) => Err(StorageError::Invalid("import: cancel outcome".into())),
        Err(Abort::Db(e)) => Err(e.into()),
    }
}

/// Whether the Storno's UUID is stored already: the same Storno of the same eAU of this
/// practice with the same XML (what it did then), or anything else ([`StornoImport::Conflict`]).
fn imported_before(
    c: &mut AnyConnection,
    actor: &Actor,
    eau_id: Uuid,
    storno: &StornoDocument,
) -> QueryResult<Option<StornoImport>> {
    use super::schema::{deliveries, signatures};
    let storno_id = storno.id.to_string();
    let eau = eau_id.to_string();
    let stored: Option<(String, String, DocumentKind, Option<String>, DeliveryState)> =
        deliveries::table
            .filter(deliveries::document_id.eq(&storno_id))
            .select((
                deliveries::practice_id,
                deliveries::certificate_id,
                deliveries::document_kind,
                deliveries::document,
                deliveries::state,
            ))
            .first(c)
            .optional()?;
    if let Some((practice, certificate, kind, xml, state)) = stored {
        let same = practice == actor.practice_id
            && certificate == eau
            && kind == DocumentKind::Storno
            && xml.as_deref() == Some(storno.xml.as_str());
        if !same {
            return Ok(Some(StornoImport::Conflict));
        }
        let outcome = if state != DeliveryState::Withdrawn {
            Cancelled::StornoQueued
        } else if eau_delivery(c, &eau)?.is_some() {
            Cancelled::Withdrawn
        } else {
            Cancelled::Marked
        };
        return Ok(Some(StornoImport::AlreadyStored(outcome)));
    }
    // A certificate's or another signed document's UUID is no Storno's.
    let certificate: i64 = certificates::table
        .filter(certificates::id.eq(&storno_id))
        .count()
        .get_result(c)?;
    let signature: i64 = signatures::table
        .filter(signatures::document_id.eq(&storno_id))
        .count()
        .get_result(c)?;
    Ok((certificate + signature > 0).then_some(StornoImport::Conflict))
}

/// A certificate's eAU delivery: `(id, insurer_ik, state, delivered_at)`.
type EauDelivery = (String, String, DeliveryState, Option<NaiveDateTime>);

/// The eAU delivery of a certificate.
fn eau_delivery(c: &mut AnyConnection, certificate_id: &str) -> QueryResult<Option<EauDelivery>> {
    use super::schema::deliveries;
    let row: Option<(String, String, super::codes::Seen, Option<NaiveDateTime>)> =
        deliveries::table
            .filter(deliveries::certificate_id.eq(certificate_id))
            .filter(deliveries::document_kind.eq(DocumentKind::Eau))
            .select((
                deliveries::id,
                deliveries::insurer_ik,
                (deliveries::state, deliveries::lease_until),
                deliveries::delivered_at,
            ))
            .first(c)
            .optional()?;
    Ok(row.map(|(id, ik, seen, delivered_at)| (id, ik, seen.into(), delivered_at)))
}

/// The cancellation itself, inside the caller's transaction (see [`cancel`]): the certificate
/// is marked first (a write, for SQLite's lock order), then its eAU delivery decides. An eAU
/// delivered, in flight or handed to KIM (`sent`) may be at the insurer: only a Storno behind
/// it cancels it there. Any other state never reached the insurer: the delivery is withdrawn.
/// An imported Storno is stored in every case (see [`StornoDocument::imported`]).
fn cancel_in(
    c: &mut AnyConnection,
    actor: &Actor,
    id: Uuid,
    storno: &StornoDocument,
    storno_allowed: &dyn Fn(NaiveDateTime) -> bool,
) -> std::result::Result<Cancelled, Abort> {
    let key = id.to_string();
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
    let storno_id = storno.id.to_string();
    let signed = storno.signed.as_ref().map(|s| s.p7s.as_slice());
    // An imported Storno as received, in `state` (queued, or kept unsent as the record).
    let insert_imported = |c: &mut AnyConnection, ik: &str, state: DeliveryState| {
        let new = super::outbox::NewStorno {
            certificate_id: &key,
            practice_id: &actor.practice_id,
            insurer_ik: ik,
            storno_id: &storno_id,
            xml: &storno.xml,
            signed,
        };
        super::outbox::insert_imported_storno(c, &new, state)
    };
    let eau = eau_delivery(c, &key)?;
    // Withdrawn only if still in the state just read and under no lease: a claim by another
    // instance in between (a lease set) means the eAU may reach the insurer, so it gets its
    // Storno.
    let withdrawn = match &eau {
        Some((delivery, _, st, _)) if st.withdrawable() => {
            use super::schema::deliveries;
            diesel::update(
                deliveries::table
                    .find(delivery)
                    .filter(deliveries::state.eq(*st))
                    .filter(deliveries::lease_until.is_null()),
            )
            .set(deliveries::state.eq(DeliveryState::Withdrawn))
            .execute(c)?
                == 1
        }
        _ => false,
    };
    let outcome = match eau {
        None => Cancelled::Marked,
        Some(_) if withdrawn => Cancelled::Withdrawn,
        Some((_, ik, _, delivered_at)) => {
            if delivered_at.is_some_and(|at| !storno_allowed(at)) {
                return Err(Abort::Outcome(Cancelled::TooLate));
            }
            if storno.imported {
                // As received: a signed file goes as it is, an unsigned one waits for the
                // practice's signature where the practice signs (like an unsigned eAU import).
                let state = if signed.is_some() {
                    DeliveryState::Pending
                } else {
                    super::signatures::initial_state(c, &actor.practice_id)?
                };
                insert_imported(c, &ik, state)?;
            } else {
                super::enqueue_storno(c, &key, &actor.practice_id, &ik, &storno_id, &storno.xml)?;
            }
            Cancelled::StornoQueued
        }
    };
    if storno.imported && outcome != Cancelled::StornoQueued {
        // The record of the cancellation: the Storno as received, never sent.
        let ik: String = certificates::table
            .find(&key)
            .select(certificates::insurer_ik)
            .first(c)?;
        insert_imported(c, &ik, DeliveryState::Withdrawn)?;
    }
    if let Some(signature) = storno.signed.as_ref().filter(|_| storno.imported) {
        super::insert_signature(c, actor, &storno_id, &key, signature)?;
    }
    super::mail::withdraw_mails(c, &key)?;
    let detail = match (storno.imported, outcome) {
        (false, Cancelled::Withdrawn) => "eAU zurückgezogen",
        (false, Cancelled::StornoQueued) => "Storno eingereiht",
        (true, Cancelled::Withdrawn) => {
            "Storno der Praxissoftware übernommen, eAU zurückgezogen (Storno nicht gesendet)"
        }
        (true, Cancelled::StornoQueued) => "Storno der Praxissoftware übernommen und eingereiht",
        (true, _) => "Storno der Praxissoftware übernommen (nur Papier)",
        (false, _) => "",
    };
    audit(c, actor, "certificate.cancelled", Some(&key), detail)?;
    Ok(outcome)
}
