//! Claims: due deliveries taken under a lease, oldest first, by one statement template for
//! both channels and both backends.

use std::sync::LazyLock;

use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text, Timestamp};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DeliveryState, DocumentKind};
use crate::domain::breaker::BreakerState;
use crate::domain::PatientMail;
use crate::secret::Secret;
use crate::storage::schema::{
    certificates, deliveries, delivery_attempts, destinations, kim_accounts, patient_mails,
    practices,
};
use crate::storage::{now, AnyConnection, Result};

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
    pub auth_header: Option<Secret>,
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
            Some((at, id)) if i64::try_from(claimed.len()).unwrap_or(i64::MAX) >= asked => {
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

/// The claim statement of both channels and both backends: leases the oldest due deliveries
/// of one insurer (`''` for mails) after a queue position. Binds: `$1` the lease's end, `$2`
/// now, `$3` the limit, `$4` the insurer's IK, `$5`/`$6` the position `(created_at, id)`.
/// `{from}` and `{eligible}` are the channel's, `{in}` and `{lock}` the backend's. The state
/// condition repeats the predicate of the partial index the claim walks.
///
/// Due: pending, and under no lease or one that ran out (a crashed worker's). The claim sets
/// only the lease and the attempt count, columns no index holds: the state stays `pending`
/// (readers see it in flight while the lease is set), so PostgreSQL writes the new row
/// version into the same page without new index entries (a HOT update; the table's
/// fillfactor keeps room for it). A row still stored `in_flight` by an older version is taken
/// over once its lease ran out, and becomes `pending` under the new lease (the README says to
/// stop the old version's workers before upgrading).
const CLAIM_TEMPLATE: &str = "UPDATE deliveries SET state = 'pending', lease_until = $1, attempts = attempts + 1 \
     WHERE id {in} (SELECT d.id FROM {from} \
       WHERE d.insurer_ik = $4 AND d.state IN ('pending', 'in_flight', 'dead') \
         AND ((d.state = 'pending' AND d.next_attempt_at <= $2 AND (d.lease_until IS NULL OR d.lease_until < $2)) \
           OR (d.state = 'in_flight' AND d.lease_until < $2)) \
         AND {eligible} AND (d.created_at, d.id) > ($5, $6) \
       ORDER BY d.created_at, d.id LIMIT $3{lock}){end} \
     RETURNING id, created_at";

/// One channel's claim, written out for each backend from [`CLAIM_TEMPLATE`].
struct ClaimStatement {
    /// With `FOR UPDATE SKIP LOCKED`: several workers and instances never claim one row twice.
    /// The chosen ids are collected into an array first (`= ANY(ARRAY(…))`): the update then
    /// finds each by its primary key, where `IN (…)` let the planner hash the subquery and scan
    /// the whole outbox for every claim.
    postgres: String,
    /// Run inside an immediate (write-locked) transaction; SQLite numbers its binds `?1`.
    sqlite: String,
}

impl ClaimStatement {
    fn new(from: &str, eligible: &str) -> Self {
        let sql = CLAIM_TEMPLATE
            .replace("{from}", from)
            .replace("{eligible}", eligible);
        let postgres = sql
            .replace("{in}", "= ANY(ARRAY")
            .replace("{lock}", " FOR UPDATE OF d SKIP LOCKED")
            .replace("{end}", ")");
        let sqlite = sql
            .replace("{in}", "IN")
            .replace("{lock}", "")
            .replace("{end}", "");
        let sqlite = (1..=6).fold(sqlite, |sql, n| {
            sql.replace(&format!("${n}"), &format!("?{n}"))
        });
        Self { postgres, sqlite }
    }
}

/// Insurer deliveries: the destination is reachable (not paused, breaker not open, an HTTP
/// push or a KIM address with the practice's KIM account), and a Storno waits behind its eAU
/// (looked up by its certificate for each Storno met: as `NOT EXISTS`, PostgreSQL hashed the
/// whole outbox the first time a claim met one).
static INSURER_CLAIM: LazyLock<ClaimStatement> = LazyLock::new(|| {
    ClaimStatement::new(
        "deliveries d JOIN destinations t ON t.ik = d.insurer_ik",
        "t.paused = FALSE AND t.breaker <> 'open' \
         AND (t.push_url IS NOT NULL OR (t.kim_address IS NOT NULL \
           AND EXISTS (SELECT 1 FROM kim_accounts k WHERE k.practice_id = d.practice_id))) \
         AND (d.document_kind <> 'storno' OR (SELECT e.id FROM deliveries e \
           WHERE e.certificate_id = d.certificate_id AND e.document_kind = 'eau' AND e.state <> 'delivered' \
           LIMIT 1) IS NULL)",
    )
});

/// Patient mails.
static MAIL_CLAIM: LazyLock<ClaimStatement> =
    LazyLock::new(|| ClaimStatement::new("deliveries d", "d.channel = 'mail'"));

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
    // Pending under a lease, or `in_flight` as an older version stored it.
    let in_flight: i64 = deliveries::table
        .filter(deliveries::insurer_ik.eq(ik))
        .filter(deliveries::state.eq_any([DeliveryState::Pending, DeliveryState::InFlight]))
        .filter(deliveries::lease_until.is_not_null())
        .count()
        .get_result(conn)?;
    Ok(answered + in_flight)
}

/// Claims up to `limit` due rows of one insurer (`''` for mails) after `after` (in
/// `(created_at, id)` order) with a channel's claim statement: PostgreSQL with
/// `FOR UPDATE SKIP LOCKED`, SQLite inside an immediate transaction.
fn claim_rows(
    conn: &mut AnyConnection,
    statement: &ClaimStatement,
    ik: &str,
    lease: chrono::Duration,
    limit: i64,
    after: Option<&QueuePosition>,
) -> Result<Vec<ClaimedId>> {
    let at = now();
    let after = after.map_or((queue_start(), ""), |(t, id)| (*t, id.as_str()));
    let binds = (at + lease, at, limit, ik, after);
    Ok(match conn {
        AnyConnection::Postgres(c) => bound(&statement.postgres, binds).load(c)?,
        AnyConnection::Sqlite(c) => {
            c.immediate_transaction(|c| bound(&statement.sqlite, binds).load(c))?
        }
    })
}

/// The binds of a claim: the lease's end, now, the limit, the IK and the position.
type ClaimBinds<'a> = (
    NaiveDateTime,
    NaiveDateTime,
    i64,
    &'a str,
    (NaiveDateTime, &'a str),
);

/// A claim statement with its binds, for either backend.
fn bound<DB>(
    sql: &str,
    (until, at, limit, ik, (after_at, after_id)): ClaimBinds<'_>,
) -> BoxedSqlQuery<'static, DB, SqlQuery>
where
    DB: Backend + HasSqlType<Timestamp> + HasSqlType<BigInt> + HasSqlType<Text>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    i64: ToSql<BigInt, DB>,
    String: ToSql<Text, DB>,
{
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Timestamp, _>(until)
        .bind::<Timestamp, _>(at)
        .bind::<BigInt, _>(limit)
        .bind::<Text, _>(ik.to_owned())
        .bind::<Timestamp, _>(after_at)
        .bind::<Text, _>(after_id.to_owned())
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
        .filter(destinations::breaker.ne(BreakerState::Open))
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
            let position = cursor.position(&ik);
            let rows = claim_rows(conn, &INSURER_CLAIM, &ik, lease, quota, position)?;
            cursor.advance(&ik, quota, &rows);
            ids.extend(rows.into_iter().map(|r| r.id));
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<ClaimRow> = deliveries::table
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
    let practices_of: Vec<&String> = rows.iter().map(|r| &r.practice_id).collect();
    let with_kim: Vec<String> = kim_accounts::table
        .filter(kim_accounts::practice_id.eq_any(practices_of))
        .select(kim_accounts::practice_id)
        .load(conn)?;
    let iks: Vec<&String> = rows.iter().map(|r| &r.insurer_ik).collect();
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
        .map(|row| {
            let target = targets.iter().find(|t| t.ik == row.insurer_ik);
            let has_kim = with_kim.contains(&row.practice_id);
            row.claimed(target, has_kim)
        })
        .collect();
    // The Message-ID of each KIM mail is recorded before it is sent: receipts and error
    // messages refer back to it.
    let messages: Vec<crate::storage::NewKimMessage> = claimed
        .iter()
        .filter_map(|c| {
            c.kim.as_ref().map(|k| crate::storage::NewKimMessage {
                message_id: k.message_id.clone(),
                delivery_id: c.id.clone(),
                practice_id: c.practice_id.clone(),
                recipient: k.to.clone(),
            })
        })
        .collect();
    crate::storage::record_kim_messages(conn, &messages)?;
    Ok(claimed)
}

/// A claimed delivery's row, with its certificate's and practice's columns.
#[derive(Queryable)]
struct ClaimRow {
    id: String,
    certificate_id: String,
    insurer_ik: String,
    attempts: i32,
    certificate_xml: Option<String>,
    document_id: Option<String>,
    document: Option<String>,
    practice_outage: Option<NaiveDateTime>,
    certificate_signed: Option<Vec<u8>>,
    document_signed: Option<Vec<u8>>,
    practice_id: String,
    kind: DocumentKind,
    paper_received_at: Option<NaiveDateTime>,
}

/// How a claimed delivery's insurer is reached.
#[derive(Queryable)]
struct Target {
    ik: String,
    push_url: Option<String>,
    auth_header: Option<Secret>,
    outage: bool,
    kim_address: Option<String>,
}

impl ClaimRow {
    /// What the push needs; `has_kim`: the practice has a KIM account.
    fn claimed(self, target: Option<&Target>, has_kim: bool) -> Claimed {
        let kind = self.kind;
        // A Storno carries its own document and signature; an eAU its certificate's.
        let signed = if self.document_id.is_some() {
            self.document_signed
        } else {
            self.certificate_signed
        };
        Claimed {
            id: self.id,
            document_id: self
                .document_id
                .unwrap_or_else(|| self.certificate_id.clone()),
            certificate_id: self.certificate_id,
            attempts: self.attempts,
            push_url: target.and_then(|t| t.push_url.clone()),
            auth_header: target.and_then(|t| t.auth_header.clone()),
            // A Störung of the insurer, or a practice-wide one (TI outage).
            outage: target.is_some_and(|t| t.outage) || self.practice_outage.is_some(),
            insurer_ik: self.insurer_ik,
            fhir_xml: self.document.or(self.certificate_xml),
            signed,
            // KIM when the insurer has a KIM address and the practice a KIM account.
            kim: target
                .and_then(|t| t.kim_address.clone())
                .filter(|_| has_kim)
                .map(|to| KimSend {
                    to,
                    message_id: crate::kim::new_message_id(),
                }),
            practice_id: self.practice_id,
            // The paper mark is the eAU's: a Storno must never look skippable.
            paper_received_at: self.paper_received_at.filter(|_| kind == DocumentKind::Eau),
            kind,
        }
    }
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

/// A claimed mail's row: the patient mail as stored, its Message-ID and its certificate.
#[derive(Debug, Clone, Queryable)]
pub struct ClaimedMail {
    pub delivery_id: String,
    /// Attempts including this one.
    pub attempts: i32,
    pub message_id: String,
    recipient: String,
    employer_copy: bool,
    password_policy: String,
    password: Option<Secret>,
    /// The certificate as stored (JSON of [`crate::domain::Certificate`]).
    pub certificate: String,
    pub print_only: bool,
}

impl ClaimedMail {
    /// The mail in its domain shape; a stored value that no longer parses is named (the mail
    /// fails alone, the others of the batch go on).
    pub fn mail(&self) -> std::result::Result<PatientMail, crate::domain::DomainError> {
        crate::storage::stored_mail(
            &self.recipient,
            self.employer_copy,
            &self.password_policy,
            self.password.clone(),
        )
    }
}

/// Claims up to `limit` due mails for `lease`, oldest first (PostgreSQL: `SKIP LOCKED`, so
/// several instances never send one mail at once; SQLite: an immediate transaction). A lease
/// that runs out (a crashed worker) makes the mail claimable again, with the same Message-ID.
pub fn claim_mails(
    conn: &mut AnyConnection,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<ClaimedMail>> {
    // A mail row's `insurer_ik` is '' (the claim statements share their binds).
    let claimed = claim_rows(conn, &MAIL_CLAIM, "", lease, limit, None)?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = claimed.into_iter().map(|r| r.id).collect();
    Ok(deliveries::table
        .inner_join(patient_mails::table)
        .inner_join(certificates::table)
        .filter(deliveries::id.eq_any(&ids))
        .order((deliveries::created_at, deliveries::id))
        .select((
            deliveries::id,
            deliveries::attempts,
            patient_mails::message_id,
            patient_mails::recipient,
            patient_mails::employer_copy,
            patient_mails::password_policy,
            patient_mails::password,
            certificates::document,
            certificates::print_only,
        ))
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_channels_claim_through_one_template_with_each_backends_binds_and_lock() {
        for statement in [&*INSURER_CLAIM, &*MAIL_CLAIM] {
            assert!(!statement.postgres.contains('{') && !statement.sqlite.contains('{'));
            assert!(statement
                .postgres
                .ends_with("SKIP LOCKED)) RETURNING id, created_at"));
            assert!(statement.postgres.contains("WHERE id = ANY(ARRAY (SELECT"));
            assert!(statement.sqlite.contains("WHERE id IN (SELECT"));
            assert!(!statement.sqlite.contains("FOR UPDATE") && !statement.sqlite.contains('$'));
            for n in 1..=6 {
                assert!(statement.postgres.contains(&format!("${n}")));
                assert!(statement.sqlite.contains(&format!("?{n}")));
            }
        }
        assert!(MAIL_CLAIM.sqlite.contains("d.channel = 'mail'"));
        assert!(INSURER_CLAIM.postgres.contains("t.breaker <> 'open'"));
    }
}
