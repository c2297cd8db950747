//! The outbox of insurer deliveries. Rows are written in the capture transaction and never
//! deleted; claims, attempts and state changes are added by the queue workers.

use crate::domain::breaker::{AttemptsRule, Health, Reached, BLIND_PROBE_FACTOR};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{
    certificates, deliveries, delivery_attempts, destinations, kim_accounts, practices,
};
use super::{now, AnyConnection, Result};

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Eau,
    Storno,
    /// The patient's copy by e-mail (channel [`Channel::Mail`]).
    Mail,
}

impl DocumentKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Eau => "eau",
            Self::Storno => "storno",
            Self::Mail => "mail",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "eau" => Some(Self::Eau),
            "storno" => Some(Self::Storno),
            "mail" => Some(Self::Mail),
            _ => None,
        }
    }
}

/// Where a delivery goes. Both channels share the outbox: claims, leases, backoff and the
/// attempt history are one mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// To an insurer (push or pull), by its IK.
    Insurer,
    /// To the patient by e-mail; `insurer_ik` is empty.
    Mail,
}

impl Channel {
    pub fn code(self) -> &'static str {
        match self {
            Self::Insurer => "insurer",
            Self::Mail => "mail",
        }
    }
}

/// States of a delivery.
pub mod state {
    use crate::domain::DeliveryState;
    pub const PENDING: &str = DeliveryState::Pending.code();
    /// Waits for the practice's signature (a practice with a Konnektor); never claimed.
    pub const AWAITING_SIGNATURE: &str = DeliveryState::AwaitingSignature.code();
    pub const IN_FLIGHT: &str = DeliveryState::InFlight.code();
    /// Handed to the KIM client module; delivered once its receipt (DSN) has been read.
    /// Never claimed.
    pub const SENT: &str = DeliveryState::Sent.code();
    pub const DELIVERED: &str = DeliveryState::Delivered.code();
    pub const NEEDS_NEW_ID: &str = DeliveryState::NeedsNewId.code();
    pub const DEAD: &str = DeliveryState::Dead.code();
    pub const WITHDRAWN: &str = DeliveryState::Withdrawn.code();
}

/// Adds a delivery, due now: `pending`, or [`state::AWAITING_SIGNATURE`] when it must wait
/// for the practice's signature. Call inside the transaction that stores the document.
pub fn enqueue(
    conn: &mut AnyConnection,
    certificate_id: &str,
    practice_id: &str,
    insurer_ik: &str,
    kind: DocumentKind,
    awaits_signature: bool,
) -> QueryResult<()> {
    let initial = if awaits_signature {
        state::AWAITING_SIGNATURE
    } else {
        state::PENDING
    };
    let delivery = NewDelivery {
        certificate_id,
        practice_id,
        insurer_ik,
        kind,
        state: initial,
    };
    insert_delivery(conn, &delivery, None).map(drop)
}

/// Adds a Storno delivery carrying its own (unsigned) document: pending, or waiting for the
/// signature in a practice that signs. Call inside a transaction.
pub fn enqueue_storno(
    conn: &mut AnyConnection,
    certificate_id: &str,
    practice_id: &str,
    insurer_ik: &str,
    storno_id: &str,
    xml: &str,
) -> QueryResult<()> {
    let delivery = NewDelivery {
        certificate_id,
        practice_id,
        insurer_ik,
        kind: DocumentKind::Storno,
        state: super::signatures::initial_state(conn, practice_id)?,
    };
    insert_delivery(conn, &delivery, Some((storno_id, xml))).map(drop)
}

/// A Storno received from practice software, about to be stored with its delivery.
pub(super) struct NewStorno<'a> {
    pub certificate_id: &'a str,
    pub practice_id: &'a str,
    pub insurer_ik: &'a str,
    /// Its own UUID (`Bundle.identifier`).
    pub storno_id: &'a str,
    /// Its XML as received.
    pub xml: &'a str,
    /// The `.p7s` it came in, as received.
    pub signed: Option<&'a [u8]>,
}

/// Adds the delivery of a Storno imported from practice software, carrying its document and
/// signed file as received. `state`: `pending` or [`state::AWAITING_SIGNATURE`] when it goes
/// to the insurer (behind its eAU: claims take a Storno only once its eAU is delivered), or
/// [`state::WITHDRAWN`] when it is only the record of a cancellation whose eAU never reached
/// the insurer (never claimed, exported or acknowledged). Call inside a transaction.
pub(super) fn insert_imported_storno(
    conn: &mut AnyConnection,
    storno: &NewStorno<'_>,
    state: &'static str,
) -> QueryResult<()> {
    let delivery = NewDelivery {
        certificate_id: storno.certificate_id,
        practice_id: storno.practice_id,
        insurer_ik: storno.insurer_ik,
        kind: DocumentKind::Storno,
        state,
    };
    let id = insert_delivery(conn, &delivery, Some((storno.storno_id, storno.xml)))?;
    if let Some(p7s) = storno.signed {
        diesel::update(deliveries::table.find(&id))
            .set(deliveries::signed_document.eq(p7s))
            .execute(conn)?;
    }
    Ok(())
}

/// A delivery about to be added.
pub(super) struct NewDelivery<'a> {
    pub certificate_id: &'a str,
    pub practice_id: &'a str,
    pub insurer_ik: &'a str,
    pub kind: DocumentKind,
    /// `pending` or [`state::AWAITING_SIGNATURE`].
    pub state: &'static str,
}

/// A new delivery, due now; `document` (its UUID and XML) when it is not the certificate's own.
/// Returns its id.
pub(super) fn insert_delivery(
    conn: &mut AnyConnection,
    new: &NewDelivery<'_>,
    document: Option<(&str, &str)>,
) -> QueryResult<String> {
    let at = now();
    let id = Uuid::new_v4().to_string();
    let channel = match new.kind {
        DocumentKind::Mail => Channel::Mail,
        DocumentKind::Eau | DocumentKind::Storno => Channel::Insurer,
    };
    diesel::insert_into(deliveries::table)
        .values((
            deliveries::id.eq(&id),
            deliveries::channel.eq(channel.code()),
            deliveries::certificate_id.eq(new.certificate_id),
            deliveries::practice_id.eq(new.practice_id),
            deliveries::insurer_ik.eq(new.insurer_ik),
            deliveries::document_kind.eq(new.kind.code()),
            deliveries::state.eq(new.state),
            deliveries::attempts.eq(0),
            deliveries::next_attempt_at.eq(at),
            deliveries::created_at.eq(at),
            deliveries::document_id.eq(document.map(|d| d.0)),
            deliveries::document.eq(document.map(|d| d.1)),
        ))
        .execute(conn)?;
    Ok(id)
}

/// A delivery as shown to staff.
#[derive(Debug, Clone, Queryable)]
pub struct DeliveryRow {
    pub id: String,
    pub insurer_ik: String,
    pub document_kind: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// The deliveries of one of a practice's certificates, oldest first.
pub fn deliveries_of(
    conn: &mut AnyConnection,
    practice_id: &str,
    certificate_id: Uuid,
) -> Result<Vec<DeliveryRow>> {
    Ok(deliveries::table
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::certificate_id.eq(certificate_id.to_string()))
        .filter(deliveries::channel.eq(Channel::Insurer.code()))
        .order(deliveries::created_at)
        .select((
            deliveries::id,
            deliveries::insurer_ik,
            deliveries::document_kind,
            deliveries::state,
            deliveries::attempts,
            deliveries::next_attempt_at,
            deliveries::last_error,
            deliveries::created_at,
            deliveries::delivered_at,
        ))
        .load(conn)?)
}

/// Deliveries not yet at the insurer, by insurer IK: `(ik, count, oldest)`.
pub fn backlog(
    conn: &mut AnyConnection,
    practice_id: &str,
) -> Result<Vec<(String, i64, Option<NaiveDateTime>)>> {
    use diesel::dsl::{count_star, min};
    Ok(deliveries::table
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::channel.eq(Channel::Insurer.code()))
        .filter(deliveries::state.eq_any([state::PENDING, state::IN_FLIGHT]))
        .group_by(deliveries::insurer_ik)
        .select((
            deliveries::insurer_ik,
            count_star(),
            min(deliveries::created_at),
        ))
        .order(deliveries::insurer_ik)
        .load(conn)?)
}

/// A claimed delivery with what its push needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub certificate_id: String,
    /// The UUID of the document sent (the certificate's, or the Storno bundle's).
    pub document_id: String,
    pub insurer_ik: String,
    /// Attempts including this one.
    pub attempts: i32,
    pub push_url: Option<String>,
    pub auth_header: Option<String>,
    pub outage: bool,
    /// The exact bytes to send, when unsigned.
    pub fhir_xml: Option<String>,
    /// The signed file (`.p7s`) to send instead, when signed.
    pub signed: Option<Vec<u8>>,
    pub practice_id: String,
    pub kind: DocumentKind,
    /// Over KIM: the insurer's KIM address and the Message-ID recorded for this attempt.
    pub kim: Option<KimSend>,
    /// The insurer already has the KK copy on paper (matched from its scans).
    pub paper_received_at: Option<NaiveDateTime>,
}

/// A claimed delivery's KIM mail.
#[derive(Debug, Clone)]
pub struct KimSend {
    pub to: String,
    pub message_id: String,
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    created_at: NaiveDateTime,
}

/// A place in an insurer's queue order `(created_at, id)`.
pub type QueuePosition = (NaiveDateTime, String);

/// Where each insurer's next claim starts: just after the last delivery claimed, so a claim
/// does not walk again over the deliveries claimed before it (in flight, or delivered and
/// not yet vacuumed away: during a long drain those are most of what lies before the next
/// due one). A delivery before the position that becomes due again (a retry, an expired
/// lease, "Alle erneut senden") is found after [`ClaimCursor::rewind`], which the worker
/// calls every few seconds, and whenever a claim reaches the end of what is due.
#[derive(Debug, Default)]
pub struct ClaimCursor {
    after: std::collections::HashMap<String, QueuePosition>,
}

impl ClaimCursor {
    /// The next claims start from the oldest delivery again.
    pub fn rewind(&mut self) {
        self.after.clear();
    }

    fn position(&self, ik: &str) -> Option<&QueuePosition> {
        self.after.get(ik)
    }

    /// Records a claim of `asked` deliveries that took `claimed`.
    fn advance(&mut self, ik: &str, asked: i64, claimed: &[ClaimedId]) {
        let last = claimed.iter().map(|c| (c.created_at, c.id.as_str())).max();
        match last {
            Some((at, id)) if claimed.len() as i64 >= asked => {
                self.after.insert(ik.to_owned(), (at, id.to_owned()));
            }
            // The end of what is due: start from the oldest again.
            _ => {
                self.after.remove(ik);
            }
        }
    }
}

/// Before every delivery: the position of a cursor that starts from the oldest.
fn queue_start() -> NaiveDateTime {
    chrono::DateTime::UNIX_EPOCH.naive_utc()
}

const CLAIM_POSTGRES: &str = "UPDATE deliveries SET state = 'in_flight', lease_until = $1, attempts = attempts + 1 \
     WHERE id IN (SELECT d.id FROM deliveries d JOIN destinations t ON t.ik = d.insurer_ik \
       WHERE d.state IN ('pending', 'in_flight', 'dead') \
         AND ((d.state = 'pending' AND d.next_attempt_at <= $2) OR (d.state = 'in_flight' AND d.lease_until < $2)) \
         AND t.paused = FALSE AND t.breaker <> 'open' \
         AND (t.push_url IS NOT NULL OR (t.kim_address IS NOT NULL \
           AND EXISTS (SELECT 1 FROM kim_accounts k WHERE k.practice_id = d.practice_id))) \
         AND (d.document_kind <> 'storno' OR NOT EXISTS (SELECT 1 FROM deliveries e \
           WHERE e.certificate_id = d.certificate_id AND e.document_kind = 'eau' AND e.state <> 'delivered')) \
         AND d.insurer_ik = $4 AND (d.created_at, d.id) > ($5, $6) \
       ORDER BY d.created_at, d.id LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
     RETURNING id, created_at";

const CLAIM_SQLITE: &str = "UPDATE deliveries SET state = 'in_flight', lease_until = ?, attempts = attempts + 1 \
     WHERE id IN (SELECT d.id FROM deliveries d JOIN destinations t ON t.ik = d.insurer_ik \
       WHERE d.state IN ('pending', 'in_flight', 'dead') \
         AND ((d.state = 'pending' AND d.next_attempt_at <= ?2) OR (d.state = 'in_flight' AND d.lease_until < ?2)) \
         AND t.paused = FALSE AND t.breaker <> 'open' \
         AND (t.push_url IS NOT NULL OR (t.kim_address IS NOT NULL \
           AND EXISTS (SELECT 1 FROM kim_accounts k WHERE k.practice_id = d.practice_id))) \
         AND (d.document_kind <> 'storno' OR NOT EXISTS (SELECT 1 FROM deliveries e \
           WHERE e.certificate_id = d.certificate_id AND e.document_kind = 'eau' AND e.state <> 'delivered')) \
         AND d.insurer_ik = ?4 AND (d.created_at, d.id) > (?5, ?6) \
       ORDER BY d.created_at, d.id LIMIT ?3) \
     RETURNING id, created_at";

/// Pushes to an insurer started within the last minute (recorded attempts and claims in flight).
fn recent_pushes(conn: &mut AnyConnection, ik: &str) -> Result<i64> {
    let since = now() - chrono::Duration::minutes(1);
    let answered: i64 = delivery_attempts::table
        .inner_join(deliveries::table)
        .filter(deliveries::insurer_ik.eq(ik))
        .filter(delivery_attempts::at.gt(since))
        .filter(delivery_attempts::outcome.ne("acknowledged"))
        .count()
        .get_result(conn)?;
    let in_flight: i64 = deliveries::table
        .filter(deliveries::insurer_ik.eq(ik))
        .filter(deliveries::state.eq(state::IN_FLIGHT))
        .count()
        .get_result(conn)?;
    Ok(answered + in_flight)
}

/// Claims up to `limit` due rows after `after` (in `(created_at, id)` order) with one of the
/// claim statements (`(PostgreSQL, SQLite)`, binds: lease end, now, limit, `insurer_ik`, the
/// position), for both channels of the outbox: PostgreSQL with `FOR UPDATE SKIP LOCKED`,
/// SQLite inside an immediate transaction.
fn claim_rows(
    conn: &mut AnyConnection,
    (postgres, sqlite): (&str, &str),
    ik: &str,
    lease: chrono::Duration,
    limit: i64,
    after: Option<&QueuePosition>,
) -> Result<Vec<ClaimedId>> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    let at = now();
    let (after_at, after_id) = after.map_or((queue_start(), ""), |(t, id)| (*t, id.as_str()));
    Ok(match conn {
        AnyConnection::Postgres(c) => diesel::sql_query(postgres)
            .bind::<Timestamp, _>(at + lease)
            .bind::<Timestamp, _>(at)
            .bind::<BigInt, _>(limit)
            .bind::<Text, _>(ik)
            .bind::<Timestamp, _>(after_at)
            .bind::<Text, _>(after_id)
            .load(c)?,
        AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
            diesel::sql_query(sqlite)
                .bind::<Timestamp, _>(at + lease)
                .bind::<Timestamp, _>(at)
                .bind::<BigInt, _>(limit)
                .bind::<Text, _>(ik)
                .bind::<Timestamp, _>(after_at)
                .bind::<Text, _>(after_id)
                .load(c)
        })?,
    })
}

/// Claims up to `limit` due rows from the oldest (see [`claim_rows`]); returns their ids.
pub(super) fn claim_ids(
    conn: &mut AnyConnection,
    statements: (&str, &str),
    ik: &str,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<String>> {
    let rows = claim_rows(conn, statements, ik, lease, limit, None)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Claims up to `limit` due deliveries of available destinations (pushable, not paused, breaker
/// not open), oldest first, for `lease`. A lease that runs out (a crashed worker) makes the
/// delivery claimable again. PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several instances never
/// claim the same row; SQLite: one immediate (write-locked) transaction.
///
/// Each insurer's claim starts at its place in `cursor` and moves it on.
pub fn claim_due(
    conn: &mut AnyConnection,
    lease: chrono::Duration,
    limit: i64,
    cursor: &mut ClaimCursor,
) -> Result<Vec<Claimed>> {
    // One claim per available insurer: each gets its share of the round (one insurer's
    // backlog never starves another) and no more than its rate limit allows.
    let available: Vec<(String, Option<i32>)> = destinations::table
        .filter(
            destinations::push_url
                .is_not_null()
                .or(destinations::kim_address.is_not_null()),
        )
        .filter(destinations::paused.eq(false))
        .filter(destinations::breaker.ne(super::breaker::OPEN))
        .order(destinations::ik)
        .select((destinations::ik, destinations::rate_per_minute))
        .load(conn)?;
    let mut ids = Vec::new();
    for (ik, rate) in available {
        let quota = match rate {
            Some(rate) => (i64::from(rate) - recent_pushes(conn, &ik)?).min(limit),
            None => limit,
        };
        if quota > 0 {
            let statements = (CLAIM_POSTGRES, CLAIM_SQLITE);
            let rows = claim_rows(conn, statements, &ik, lease, quota, cursor.position(&ik))?;
            cursor.advance(&ik, quota, &rows);
            ids.extend(rows.into_iter().map(|r| r.id));
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (
        String,
        String,
        String,
        i32,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<NaiveDateTime>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        String,
        String,
        Option<NaiveDateTime>,
    );
    let rows: Vec<Row> = deliveries::table
        .inner_join(certificates::table)
        .inner_join(practices::table.on(practices::id.eq(deliveries::practice_id)))
        .filter(deliveries::id.eq_any(&ids))
        .order((deliveries::created_at, deliveries::id))
        .select((
            deliveries::id,
            deliveries::certificate_id,
            deliveries::insurer_ik,
            deliveries::attempts,
            certificates::fhir_xml,
            deliveries::document_id,
            deliveries::document,
            practices::outage_since,
            certificates::signed_p7s,
            deliveries::signed_document,
            deliveries::practice_id,
            deliveries::document_kind,
            certificates::paper_received_at,
        ))
        .load(conn)?;
    let practices_of: Vec<&String> = rows.iter().map(|r| &r.10).collect();
    let with_kim: Vec<String> = kim_accounts::table
        .filter(kim_accounts::practice_id.eq_any(practices_of))
        .select(kim_accounts::practice_id)
        .load(conn)?;
    let iks: Vec<&String> = rows.iter().map(|r| &r.2).collect();
    type Target = (String, Option<String>, Option<String>, bool, Option<String>);
    let targets: Vec<Target> = destinations::table
        .filter(destinations::ik.eq_any(iks))
        .select((
            destinations::ik,
            destinations::push_url,
            destinations::auth_header,
            destinations::outage,
            destinations::kim_address,
        ))
        .load(conn)?;
    let claimed: Vec<Claimed> = rows
        .into_iter()
        .map(
            |(
                id,
                certificate_id,
                insurer_ik,
                attempts,
                certificate_xml,
                document_id,
                document,
                practice_outage,
                certificate_signed,
                document_signed,
                practice_id,
                kind,
                paper_received_at,
            )| {
                let target = targets.iter().find(|t| t.0 == insurer_ik);
                // A Storno carries its own document and signature; an eAU its certificate's.
                let signed = if document_id.is_some() {
                    document_signed
                } else {
                    certificate_signed
                };
                Claimed {
                    id,
                    document_id: document_id.unwrap_or_else(|| certificate_id.clone()),
                    certificate_id,
                    attempts,
                    push_url: target.and_then(|t| t.1.clone()),
                    auth_header: target.and_then(|t| t.2.clone()),
                    // A Störung of the insurer, or a practice-wide one (TI outage).
                    outage: target.is_some_and(|t| t.3) || practice_outage.is_some(),
                    insurer_ik,
                    fhir_xml: document.or(certificate_xml),
                    signed,
                    // KIM when the insurer has a KIM address and the practice a KIM account.
                    kim: target
                        .and_then(|t| t.4.clone())
                        .filter(|_| with_kim.contains(&practice_id))
                        .map(|to| KimSend {
                            to,
                            message_id: crate::kim::new_message_id(),
                        }),
                    practice_id,
                    // The paper mark is the eAU's: a Storno must never look skippable.
                    paper_received_at: paper_received_at.filter(|_| kind == "eau"),
                    kind: DocumentKind::parse(&kind).unwrap_or(DocumentKind::Eau),
                }
            },
        )
        .collect();
    // The Message-ID of each KIM mail is recorded before it is sent: receipts and error
    // messages refer back to it.
    let messages: Vec<super::NewKimMessage> = claimed
        .iter()
        .filter_map(|c| {
            c.kim.as_ref().map(|k| super::NewKimMessage {
                message_id: k.message_id.clone(),
                delivery_id: c.id.clone(),
                practice_id: c.practice_id.clone(),
                recipient: k.to.clone(),
            })
        })
        .collect();
    super::record_kim_messages(conn, &messages)?;
    Ok(claimed)
}

impl Claimed {
    /// What a push sends: the signed file when there is one, else the XML; with its MIME type.
    pub fn body(&self) -> Option<(Vec<u8>, &'static str)> {
        match (&self.signed, &self.fhir_xml) {
            (Some(p7s), _) => Some((p7s.clone(), crate::signature::CONTENT_TYPE)),
            (None, Some(xml)) => Some((xml.clone().into_bytes(), "application/fhir+xml")),
            (None, None) => None,
        }
    }
}

/// The result of one attempt, as the queue decided it.
#[derive(Debug, Clone)]
pub struct Finish {
    pub delivery_id: String,
    /// The insurer's IK whose destination state (breaker, last success) the attempt updates;
    /// `None` for a mail.
    pub destination: Option<String>,
    /// New state of the delivery (see [`state`]).
    pub state: &'static str,
    /// For `pending`: when to try again.
    pub next_attempt_at: Option<NaiveDateTime>,
    /// `delivered`, `retry`, `needs_new_id`, `dead`.
    pub outcome: &'static str,
    pub http_status: Option<i32>,
    pub detail: String,
    pub duration_ms: i32,
    /// Whether the insurer itself failed (counts towards opening its breaker).
    pub insurer_failed: bool,
    /// The KIM mail this attempt sent (marked sent when the client module accepted it).
    pub kim_message_id: Option<String>,
}

/// How `finish_attempts` updates the destinations' breakers: the rule (`queue::breaker`), the
/// consecutive failures that open a breaker, and when the first probe follows.
#[derive(Clone, Copy)]
pub struct Breaker {
    pub rule: AttemptsRule,
    pub open_after: i32,
    pub probe_in: chrono::Duration,
}

impl Finish {
    /// The attempt as the breaker sees it.
    fn reached(&self) -> Reached<'_> {
        if self.state == state::DELIVERED || self.state == state::SENT {
            Reached::Yes
        } else if self.insurer_failed {
            Reached::Failed(&self.detail)
        } else {
            Reached::NotTheInsurer
        }
    }
}

/// Records a batch of attempts, moves each delivery on and updates the destinations' breakers,
/// in one transaction (one commit per batch, not per push). The breaker opens after
/// `open_after` consecutive insurer failures; the first probe follows after `probe_in`.
///
/// Only a delivery still in flight moves on: one acknowledged by a pull meanwhile stays
/// delivered, whatever this push's answer was.
pub fn finish_attempts(
    conn: &mut AnyConnection,
    finishes: &[Finish],
    breaker: Breaker,
) -> Result<()> {
    if finishes.is_empty() {
        return Ok(());
    }
    let at = now();
    conn.transaction(|c| {
        let attempts: Vec<NewAttempt<'_>> = finishes.iter().map(NewAttempt::from).collect();
        insert_attempts(c, &attempts, at)?;
        let delivered: Vec<&str> = finishes
            .iter()
            .filter(|f| f.state == state::DELIVERED)
            .map(|f| f.delivery_id.as_str())
            .collect();
        for ids in delivered.chunks(1000) {
            diesel::update(
                deliveries::table
                    .filter(deliveries::id.eq_any(ids))
                    .filter(deliveries::state.eq(state::IN_FLIGHT)),
            )
            .set((
                deliveries::state.eq(state::DELIVERED),
                deliveries::lease_until.eq(None::<NaiveDateTime>),
                deliveries::next_attempt_at.eq(at),
                deliveries::last_error.eq(None::<String>),
                deliveries::delivered_at.eq(at),
            ))
            .execute(c)?;
        }
        for f in finishes.iter().filter(|f| f.state != state::DELIVERED) {
            diesel::update(
                deliveries::table
                    .find(&f.delivery_id)
                    .filter(deliveries::state.eq(state::IN_FLIGHT)),
            )
            .set((
                deliveries::state.eq(f.state),
                deliveries::lease_until.eq(None::<NaiveDateTime>),
                deliveries::next_attempt_at.eq(f.next_attempt_at.unwrap_or(at)),
                deliveries::last_error.eq((f.state != state::SENT).then_some(&f.detail)),
                deliveries::delivered_at.eq(None::<NaiveDateTime>),
            ))
            .execute(c)?;
        }
        let sent: Vec<&str> = finishes
            .iter()
            .filter(|f| f.state == state::SENT)
            .filter_map(|f| f.kim_message_id.as_deref())
            .collect();
        super::kim::mark_kim_sent(c, &sent, at)?;
        update_breakers(c, finishes, at, breaker)
    })?;
    Ok(())
}

/// One attempt, as written to `delivery_attempts`.
pub(super) struct NewAttempt<'a> {
    pub delivery_id: &'a str,
    pub outcome: &'a str,
    pub http_status: Option<i32>,
    pub detail: &'a str,
    pub duration_ms: i32,
}

impl<'a> From<&'a Finish> for NewAttempt<'a> {
    fn from(f: &'a Finish) -> Self {
        Self {
            delivery_id: &f.delivery_id,
            outcome: f.outcome,
            http_status: f.http_status,
            detail: &f.detail,
            duration_ms: f.duration_ms,
        }
    }
}

/// The attempt rows of a batch: a multi-row insert on PostgreSQL, a statement per row on
/// SQLite (in-process, inside the same transaction, so just as cheap).
pub(super) fn insert_attempts(
    c: &mut AnyConnection,
    attempts: &[NewAttempt<'_>],
    at: NaiveDateTime,
) -> QueryResult<()> {
    let row = |a: &NewAttempt<'_>| {
        (
            delivery_attempts::delivery_id.eq(a.delivery_id.to_owned()),
            delivery_attempts::at.eq(at),
            delivery_attempts::outcome.eq(a.outcome.to_owned()),
            delivery_attempts::http_status.eq(a.http_status),
            delivery_attempts::detail.eq(a.detail.to_owned()),
            delivery_attempts::duration_ms.eq(a.duration_ms),
        )
    };
    match c {
        AnyConnection::Postgres(pg) => {
            // 6 parameters a row, well below PostgreSQL's 65 535 per statement.
            for chunk in attempts.chunks(5000) {
                let rows: Vec<_> = chunk.iter().map(row).collect();
                diesel::insert_into(delivery_attempts::table)
                    .values(rows)
                    .execute(pg)?;
            }
        }
        AnyConnection::Sqlite(lite) => {
            for a in attempts {
                diesel::insert_into(delivery_attempts::table)
                    .values(row(a))
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

/// Folds a batch's answers into each insurer's destination row, in the order they came, and
/// writes the row only when its state changes (or `last_success_at` is over a second old):
/// every push to an insurer shares that row.
fn update_breakers(
    c: &mut AnyConnection,
    finishes: &[Finish],
    at: NaiveDateTime,
    breaker: Breaker,
) -> QueryResult<()> {
    let mut iks: Vec<&str> = finishes
        .iter()
        .filter_map(|f| f.destination.as_deref())
        .collect();
    iks.sort_unstable();
    iks.dedup();
    for ik in iks {
        let target = destinations::table.find(ik);
        let Some((failures, code, last_success, health_url)) = target
            .select((
                destinations::consecutive_failures,
                destinations::breaker,
                destinations::last_success_at,
                destinations::health_url,
            ))
            .first::<(i32, String, Option<NaiveDateTime>, Option<String>)>(c)
            .optional()?
        else {
            continue;
        };
        let was = Health {
            consecutive_failures: failures,
            breaker: super::destinations::parse_breaker(&code),
        };
        let attempts: Vec<Reached<'_>> = finishes
            .iter()
            .filter(|f| f.destination.as_deref() == Some(ik))
            .map(Finish::reached)
            .collect();
        let after = (breaker.rule)(was, &attempts, breaker.open_after);
        let stale = last_success.is_none_or(|t| t < at - chrono::Duration::seconds(1));
        if after.health != was || after.last_error.is_some() || (after.succeeded && stale) {
            diesel::update(target)
                .set((
                    destinations::consecutive_failures.eq(after.health.consecutive_failures),
                    destinations::breaker.eq(after.health.breaker.code()),
                    destinations::updated_at.eq(at),
                ))
                .execute(c)?;
        }
        if after.succeeded && stale {
            diesel::update(target)
                .set(destinations::last_success_at.eq(at))
                .execute(c)?;
        }
        if after.backlog_due {
            super::destinations::make_backlog_due(c, ik, at)?;
        }
        if let Some(error) = after.last_error {
            diesel::update(target)
                .set(destinations::last_error.eq(error))
                .execute(c)?;
        }
        if after.probe_soon {
            // Without a health URL the probe is a real retry: less often.
            let intervals = if health_url.is_some() {
                1
            } else {
                BLIND_PROBE_FACTOR
            };
            diesel::update(target)
                .set(destinations::probe_at.eq(at + breaker.probe_in * intervals))
                .execute(c)?;
        }
    }
    Ok(())
}

/// One recorded attempt of a delivery.
#[derive(Debug, Clone, Queryable)]
pub struct AttemptRow {
    pub at: NaiveDateTime,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub detail: String,
}

/// Every recorded attempt of a delivery, oldest first (the error history).
pub fn attempts_of(conn: &mut AnyConnection, delivery_id: &str) -> Result<Vec<AttemptRow>> {
    Ok(delivery_attempts::table
        .filter(delivery_attempts::delivery_id.eq(delivery_id))
        .order(delivery_attempts::id)
        .select((
            delivery_attempts::at,
            delivery_attempts::outcome,
            delivery_attempts::http_status,
            delivery_attempts::detail,
        ))
        .load(conn)?)
}

/// Counts of the deliveries of a channel by state.
pub fn states(conn: &mut AnyConnection, channel: Channel) -> Result<Vec<(String, i64)>> {
    use diesel::dsl::count_star;
    Ok(deliveries::table
        .filter(deliveries::channel.eq(channel.code()))
        .group_by(deliveries::state)
        .select((deliveries::state, count_star()))
        .order(deliveries::state)
        .load(conn)?)
}

/// A delivery not (yet) at the insurer, as listed on the dashboard.
#[derive(Debug, Clone, Queryable)]
pub struct UnsentRow {
    pub certificate_id: String,
    pub display_name: String,
    pub insurer_ik: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}

/// A practice's deliveries that have not reached the insurer, oldest first.
pub fn unsent(conn: &mut AnyConnection, practice_id: &str, limit: i64) -> Result<Vec<UnsentRow>> {
    Ok(deliveries::table
        .inner_join(certificates::table)
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::channel.eq(Channel::Insurer.code()))
        .filter(deliveries::state.ne_all([state::DELIVERED, state::WITHDRAWN]))
        .order((deliveries::created_at, deliveries::id))
        .limit(limit)
        .select((
            deliveries::certificate_id,
            certificates::display_name,
            deliveries::insurer_ik,
            deliveries::state,
            deliveries::attempts,
            deliveries::next_attempt_at,
            deliveries::last_error,
            deliveries::created_at,
        ))
        .load(conn)?)
}

/// "Alle erneut senden": makes every waiting or dead delivery of the insurer due now. The
/// attempt history stays.
pub fn retry_all(conn: &mut AnyConnection, ik: &str) -> Result<usize> {
    Ok(diesel::update(
        deliveries::table
            .filter(deliveries::insurer_ik.eq(ik))
            .filter(deliveries::state.eq_any([state::PENDING, state::DEAD])),
    )
    .set((
        deliveries::state.eq(state::PENDING),
        deliveries::next_attempt_at.eq(now()),
    ))
    .execute(conn)?)
}

/// Backlog of every insurer across all practices: `(ik, waiting, oldest)`, for `/metrics`.
pub fn backlog_all(conn: &mut AnyConnection) -> Result<Vec<(String, i64, Option<NaiveDateTime>)>> {
    use diesel::dsl::{count_star, min};
    Ok(deliveries::table
        .filter(deliveries::channel.eq(Channel::Insurer.code()))
        .filter(deliveries::state.eq_any([state::PENDING, state::IN_FLIGHT]))
        .group_by(deliveries::insurer_ik)
        .select((
            deliveries::insurer_ik,
            count_star(),
            min(deliveries::created_at),
        ))
        .order(deliveries::insurer_ik)
        .load(conn)?)
}
