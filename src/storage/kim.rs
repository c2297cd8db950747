//! KIM bookkeeping: the practices' KIM accounts, the Message-ID of every mail sent (recorded
//! before the send), and every mail read from a mailbox with what it did to its delivery, in
//! one transaction each (so a mail read twice is recorded once, and a mailbox is cleaned only
//! of what is recorded).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use uuid::Uuid;

use super::schema::{
    certificates, deliveries, delivery_attempts, destinations, kim_accounts, kim_inbox,
    kim_messages, practices,
};
use super::{now, AnyConnection, DeliveryState, Result};
use crate::kim::inbound::{Inbound, InboundFacts, InboundRule, Kind};

/// A practice's KIM account as stored (the password only as a reference).
#[derive(Debug, Clone, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = kim_accounts, treat_none_as_null = true)]
pub struct KimAccountRow {
    pub practice_id: String,
    pub address: String,
    pub smtp_host: String,
    pub smtp_port: i32,
    pub pop3_host: String,
    pub pop3_port: i32,
    pub tls: String,
    pub ca_pem: Option<String>,
    pub fachdienst_smtp: Option<String>,
    pub fachdienst_pop3: Option<String>,
    pub mandant_id: String,
    pub client_system_id: String,
    pub workplace_id: String,
    pub user_id: Option<String>,
    pub konnektor_id: Option<String>,
    pub secret_ref: String,
    pub poll_minutes: i32,
    pub test_data: bool,
    pub last_poll_at: Option<NaiveDateTime>,
    pub last_poll_error: Option<String>,
    pub poll_requested_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl KimAccountRow {
    /// An account at a client module on this machine (127.0.0.1, SMTPS and POP3S, ports to be
    /// set), read every 10 minutes: the stand-in of the tests, the benchmark and the demo.
    pub fn local(practice_id: &str, address: &str, secret_ref: String) -> Self {
        Self {
            practice_id: practice_id.to_owned(),
            address: address.to_owned(),
            smtp_host: "127.0.0.1".into(),
            smtp_port: 0,
            pop3_host: "127.0.0.1".into(),
            pop3_port: 0,
            tls: crate::kim::Tls::Implicit.code().into(),
            ca_pem: None,
            fachdienst_smtp: None,
            fachdienst_pop3: None,
            mandant_id: "praxis-muster".into(),
            client_system_id: "au-relay".into(),
            workplace_id: "empfang-1".into(),
            user_id: None,
            konnektor_id: None,
            secret_ref,
            poll_minutes: 10,
            test_data: false,
            last_poll_at: None,
            last_poll_error: None,
            poll_requested_at: None,
            updated_at: now(),
        }
    }
}

pub fn kim_account(conn: &mut AnyConnection, practice_id: &str) -> Result<Option<KimAccountRow>> {
    Ok(kim_accounts::table
        .find(practice_id)
        .first(conn)
        .optional()?)
}

/// Saves the practice's KIM account, keeping its poll state. Call inside a transaction (the
/// service writes its audit row beside it): it takes the write lock first, because it reads the
/// poll state before it writes.
pub fn put_kim_account(c: &mut AnyConnection, row: &KimAccountRow) -> Result<()> {
    super::begin_write(c)?;
    let kept: Option<(Option<NaiveDateTime>, Option<String>)> = kim_accounts::table
        .find(&row.practice_id)
        .select((kim_accounts::last_poll_at, kim_accounts::last_poll_error))
        .first(c)
        .optional()?;
    let mut row = row.clone();
    row.updated_at = now();
    if let Some((at, error)) = kept {
        (row.last_poll_at, row.last_poll_error) = (at, error);
        diesel::update(kim_accounts::table.find(&row.practice_id))
            .set(&row)
            .execute(c)?;
    } else {
        diesel::insert_into(kim_accounts::table)
            .values(&row)
            .execute(c)?;
    }
    Ok(())
}

/// Removes the practice's KIM account; its documents go by HTTP push or wait for an import.
pub fn delete_kim_account(conn: &mut AnyConnection, practice_id: &str) -> Result<()> {
    diesel::delete(kim_accounts::table.find(practice_id)).execute(conn)?;
    Ok(())
}

/// Accounts whose mailbox is due: never read, read longer ago than their interval, or asked
/// for from the dashboard.
pub fn accounts_due_for_poll(conn: &mut AnyConnection) -> Result<Vec<KimAccountRow>> {
    let at = now();
    let all: Vec<KimAccountRow> = kim_accounts::table
        .order(kim_accounts::practice_id)
        .load(conn)?;
    Ok(all
        .into_iter()
        .filter(|a| {
            a.poll_requested_at.is_some()
                || a.last_poll_at.is_none_or(|t| {
                    t + chrono::Duration::minutes(i64::from(a.poll_minutes.max(1))) <= at
                })
        })
        .collect())
}

/// "Postfach jetzt abrufen".
pub fn request_poll(conn: &mut AnyConnection, practice_id: &str) -> Result<bool> {
    Ok(diesel::update(kim_accounts::table.find(practice_id))
        .set(kim_accounts::poll_requested_at.eq(now()))
        .execute(conn)?
        > 0)
}

/// Takes the account's next reading for this instance: `false` when another instance (several
/// on one PostgreSQL) took it since the list of due accounts was read.
pub fn claim_poll(conn: &mut AnyConnection, row: &KimAccountRow) -> Result<bool> {
    use kim_accounts::{last_poll_at as last, poll_requested_at as asked};
    let target = kim_accounts::table.find(&row.practice_id);
    let set = (last.eq(now()), asked.eq(None::<NaiveDateTime>));
    // Compare-and-set on the two columns the due list was read with.
    let taken = match (row.last_poll_at, row.poll_requested_at) {
        (Some(l), Some(a)) => diesel::update(target.filter(last.eq(l)).filter(asked.eq(a)))
            .set(set)
            .execute(conn)?,
        (Some(l), None) => diesel::update(target.filter(last.eq(l)).filter(asked.is_null()))
            .set(set)
            .execute(conn)?,
        (None, Some(a)) => diesel::update(target.filter(last.is_null()).filter(asked.eq(a)))
            .set(set)
            .execute(conn)?,
        (None, None) => diesel::update(target.filter(last.is_null()).filter(asked.is_null()))
            .set(set)
            .execute(conn)?,
    };
    Ok(taken == 1)
}

pub fn record_poll(conn: &mut AnyConnection, practice_id: &str, error: Option<&str>) -> Result<()> {
    diesel::update(kim_accounts::table.find(practice_id))
        .set((
            kim_accounts::last_poll_at.eq(now()),
            kim_accounts::last_poll_error.eq(error),
            kim_accounts::poll_requested_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// A KIM mail about to be sent.
#[derive(Debug, Clone)]
pub struct NewKimMessage {
    pub message_id: String,
    pub delivery_id: String,
    pub practice_id: String,
    pub recipient: String,
}

/// Records the Message-IDs of mails about to be sent, in one transaction.
pub fn record_kim_messages(conn: &mut AnyConnection, messages: &[NewKimMessage]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let at = now();
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        for m in messages {
            diesel::insert_into(kim_messages::table)
                .values((
                    kim_messages::message_id.eq(crate::kim::normalise_message_id(&m.message_id)),
                    kim_messages::delivery_id.eq(&m.delivery_id),
                    kim_messages::practice_id.eq(&m.practice_id),
                    kim_messages::recipient.eq(&m.recipient),
                    kim_messages::created_at.eq(at),
                ))
                .execute(c)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Marks mails as accepted by the client module (inside the attempt's transaction).
pub(super) fn mark_kim_sent(
    c: &mut AnyConnection,
    message_ids: &[&str],
    at: NaiveDateTime,
) -> QueryResult<()> {
    for ids in message_ids.chunks(1000) {
        let ids: Vec<String> = ids
            .iter()
            .map(|m| crate::kim::normalise_message_id(m))
            .collect();
        diesel::update(kim_messages::table.filter(kim_messages::message_id.eq_any(ids)))
            .set(kim_messages::sent_at.eq(at))
            .execute(c)?;
    }
    Ok(())
}

/// Which of `uidls` the practice's mailbox has already been recorded for.
pub fn known_uidls(
    conn: &mut AnyConnection,
    practice_id: &str,
    uidls: &[String],
) -> Result<std::collections::HashSet<String>> {
    let mut known = std::collections::HashSet::new();
    for chunk in uidls.chunks(500) {
        let found: Vec<(String, Option<String>)> = kim_inbox::table
            .filter(kim_inbox::practice_id.eq(practice_id))
            .filter(kim_inbox::uidl.eq_any(chunk))
            .select((kim_inbox::uidl, kim_inbox::delivery_id))
            .load(conn)?;
        known.extend(found.into_iter().map(|(u, _)| u));
    }
    Ok(known)
}

/// Recorded inbox mails of a practice that may leave the mailbox: those that matched a
/// document (receipts and error messages of AU-Relay's own mails). Others stay: the mailbox
/// may be shared with the practice software.
pub fn deletable_uidls(
    conn: &mut AnyConnection,
    practice_id: &str,
    uidls: &[String],
) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for chunk in uidls.chunks(500) {
        let found: Vec<String> = kim_inbox::table
            .filter(kim_inbox::practice_id.eq(practice_id))
            .filter(kim_inbox::uidl.eq_any(chunk))
            .filter(kim_inbox::delivery_id.is_not_null())
            .select(kim_inbox::uidl)
            .load(conn)?;
        out.extend(found);
    }
    Ok(out)
}

pub fn mark_inbox_deleted(
    conn: &mut AnyConnection,
    practice_id: &str,
    uidls: &[String],
) -> Result<()> {
    for chunk in uidls.chunks(500) {
        diesel::update(
            kim_inbox::table
                .filter(kim_inbox::practice_id.eq(practice_id))
                .filter(kim_inbox::uidl.eq_any(chunk)),
        )
        .set(kim_inbox::deleted_at.eq(now()))
        .execute(conn)?;
    }
    Ok(())
}

/// What recording an inbound mail did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Already recorded by an earlier reading.
    Known,
    /// Recorded; the delivery it matched, if any.
    New { delivery_id: Option<String> },
}

/// The delivery a mail refers to: by the Message-ID of a mail sent from this practice, else by
/// the document UUID.
fn match_delivery(
    c: &mut AnyConnection,
    practice_id: &str,
    inbound: &Inbound,
) -> QueryResult<Option<(String, Option<String>)>> {
    if !inbound.refers_to.is_empty() {
        let found: Vec<(String, String)> = kim_messages::table
            .filter(kim_messages::practice_id.eq(practice_id))
            .filter(kim_messages::message_id.eq_any(&inbound.refers_to))
            .select((kim_messages::message_id, kim_messages::delivery_id))
            .load(c)?;
        for wanted in &inbound.refers_to {
            if let Some((mid, delivery)) = found.iter().find(|(m, _)| m == wanted) {
                return Ok(Some((delivery.clone(), Some(mid.clone()))));
            }
        }
    }
    for id in &inbound.document_ids {
        let id = id.to_string();
        let found: Option<String> = deliveries::table
            .filter(deliveries::practice_id.eq(practice_id))
            .filter(deliveries::channel.eq(super::Channel::Insurer))
            .filter(
                deliveries::document_id.eq(&id).or(deliveries::document_id
                    .is_null()
                    .and(deliveries::certificate_id.eq(&id))),
            )
            .order(deliveries::created_at.desc())
            .select(deliveries::id)
            .first(c)
            .optional()?;
        if let Some(d) = found {
            return Ok(Some((d, None)));
        }
    }
    Ok(None)
}

/// How the queue retries after an error of the KIM service itself (TA P5-04 AK15): every
/// `every` while the first failure is less than three working days old.
#[derive(Debug, Clone, Copy)]
pub struct KimRetry {
    pub every: chrono::Duration,
}

impl Default for KimRetry {
    fn default() -> Self {
        Self {
            every: chrono::Duration::hours(4),
        }
    }
}

/// Records one mail read from the practice's mailbox and applies it to the delivery it
/// matched, in one transaction: a receipt marks the delivery delivered; a failed receipt or a
/// KIM service error retries it (every 4 h for 3 working days); an insurer error message is
/// classified by the KBV code table. A mail already recorded (same UIDL) changes nothing.
pub fn record_inbound(
    conn: &mut AnyConnection,
    practice_id: &str,
    uidl: &str,
    raw: &[u8],
    inbound: &Inbound,
    retry: KimRetry,
    rule: InboundRule,
) -> Result<Recorded> {
    let at = now();
    Ok(conn.transaction::<_, diesel::result::Error, _>(|c| {
        super::begin_write(c)?;
        let known: i64 = kim_inbox::table
            .filter(kim_inbox::practice_id.eq(practice_id))
            .filter(kim_inbox::uidl.eq(uidl))
            .count()
            .get_result(c)?;
        if known > 0 {
            return Ok(Recorded::Known);
        }
        let matched = match inbound.kind {
            Kind::Other => None,
            _ => match_delivery(c, practice_id, inbound)?,
        };
        let delivery_id = matched.as_ref().map(|m| m.0.clone());
        diesel::insert_into(kim_inbox::table)
            .values((
                kim_inbox::id.eq(Uuid::new_v4().to_string()),
                kim_inbox::practice_id.eq(practice_id),
                kim_inbox::uidl.eq(uidl),
                kim_inbox::received_at.eq(at),
                kim_inbox::kind.eq(inbound.kind.code()),
                kim_inbox::message_id.eq(&inbound.message_id),
                kim_inbox::refers_to.eq(inbound.refers_to.first()),
                kim_inbox::delivery_id.eq(&delivery_id),
                kim_inbox::summary.eq(&inbound.summary),
                kim_inbox::raw.eq(raw),
            ))
            .execute(c)?;
        if let Some((delivery, message_id)) = matched {
            apply(
                c,
                &delivery,
                message_id.as_deref(),
                inbound,
                retry,
                rule,
                at,
            )?;
        }
        Ok(Recorded::New { delivery_id })
    })?)
}

fn attempt_row(
    c: &mut AnyConnection,
    delivery: &str,
    outcome: &str,
    detail: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(delivery_attempts::table)
        .values((
            delivery_attempts::delivery_id.eq(delivery),
            delivery_attempts::at.eq(at),
            delivery_attempts::outcome.eq(outcome),
            delivery_attempts::http_status.eq(None::<i32>),
            delivery_attempts::detail.eq(detail),
            delivery_attempts::duration_ms.eq(0),
        ))
        .execute(c)
        .map(drop)
}

/// Moves a delivery to `to` if it is in one of the states `from`, as readers see them: a
/// pending delivery under a worker's lease is in flight, so `Pending` without `InFlight`
/// leaves a delivery being sent alone (its attempt is recorded when it ends).
fn move_delivery(
    c: &mut AnyConnection,
    delivery: &str,
    from: &[DeliveryState],
    to: DeliveryState,
    next: NaiveDateTime,
    error: Option<&str>,
    delivered_at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    let unleased = from.contains(&DeliveryState::Pending);
    let leased = from.contains(&DeliveryState::InFlight);
    // In flight is stored as `pending` under a lease (`in_flight` by an older version).
    let mut stored = from.to_vec();
    if leased {
        stored.push(DeliveryState::Pending);
    }
    diesel::update(
        deliveries::table
            .find(delivery)
            .filter(deliveries::state.eq_any(stored))
            .filter(
                deliveries::state
                    .ne(DeliveryState::Pending)
                    .or(deliveries::lease_until
                        .is_null()
                        .and(unleased.into_sql::<Bool>()))
                    .or(deliveries::lease_until
                        .is_not_null()
                        .and(leased.into_sql::<Bool>())),
            ),
    )
    .set((
        deliveries::state.eq(to),
        deliveries::lease_until.eq(None::<NaiveDateTime>),
        deliveries::next_attempt_at.eq(next),
        deliveries::last_error.eq(error),
        deliveries::delivered_at.eq(delivered_at),
    ))
    .execute(c)
}

/// Whether a Störung is declared for the delivery's insurer or practice.
fn outage_of(c: &mut AnyConnection, delivery: &str) -> QueryResult<bool> {
    let (ik, practice): (String, String) = deliveries::table
        .find(delivery)
        .select((deliveries::insurer_ik, deliveries::practice_id))
        .first(c)?;
    let insurer: Option<bool> = destinations::table
        .find(&ik)
        .select(destinations::outage)
        .first(c)
        .optional()?;
    let practice: Option<NaiveDateTime> = practices::table
        .find(&practice)
        .select(practices::outage_since)
        .first(c)?;
    Ok(insurer.unwrap_or(false) || practice.is_some())
}

/// What the rule needs to know of the delivery.
fn facts_of(
    c: &mut AnyConnection,
    delivery: &str,
    retry: KimRetry,
    at: NaiveDateTime,
) -> QueryResult<InboundFacts> {
    let first_mail_at: Option<NaiveDateTime> = kim_messages::table
        .filter(kim_messages::delivery_id.eq(delivery))
        .select(diesel::dsl::min(kim_messages::created_at))
        .first(c)?;
    let practice: String = deliveries::table
        .find(delivery)
        .select(deliveries::practice_id)
        .first(c)?;
    let land_code: String = practices::table
        .find(&practice)
        .select(practices::land)
        .first(c)?;
    Ok(InboundFacts {
        outage: outage_of(c, delivery)?,
        first_mail_at,
        land: crate::domain::Land::parse(&land_code),
        at,
        retry_every: retry.every,
    })
}

/// Writes the step `rule` decides for the mail: the receipt mark, the delivery's move, the
/// attempt row.
fn apply(
    c: &mut AnyConnection,
    delivery: &str,
    message_id: Option<&str>,
    inbound: &Inbound,
    retry: KimRetry,
    rule: InboundRule,
    at: NaiveDateTime,
) -> QueryResult<()> {
    // A receipt (most mails) needs no facts: four reads fewer per mail.
    let facts = if inbound.is_failure() {
        facts_of(c, delivery, retry, at)?
    } else {
        InboundFacts::bare(at, retry.every)
    };
    let Some(step) = rule(inbound, &facts) else {
        return Ok(());
    };
    if step.receipt {
        if let Some(mid) = message_id {
            diesel::update(kim_messages::table.find(mid))
                .set(kim_messages::receipt_at.eq(at))
                .execute(c)?;
        }
    }
    if let Some((from, to)) = step.moves {
        move_delivery(
            c,
            delivery,
            from,
            to,
            at + step.next_in,
            step.error.as_deref(),
            step.receipt.then_some(at),
        )?;
    }
    attempt_row(c, delivery, step.outcome, &step.detail, at)
}

/// A delivery sent over KIM whose receipt has not come within 24 hours of sending (TA P5-04
/// AK5): for the detail page, the dashboard, `/metrics` and the post list.
#[derive(Debug, Clone, Queryable)]
pub struct OverdueReceipt {
    pub certificate_id: String,
    pub delivery_id: String,
    pub sent_at: Option<NaiveDateTime>,
}

/// Deliveries still waiting for their receipt more than 24 hours after the mail was sent, as
/// of `at` (the clock is the caller's); one practice, or all.
pub fn overdue_receipts(
    conn: &mut AnyConnection,
    practice_id: Option<&str>,
    at: NaiveDateTime,
) -> Result<Vec<OverdueReceipt>> {
    let limit = at - chrono::Duration::hours(24);
    let mut query = deliveries::table
        .inner_join(kim_messages::table)
        .filter(deliveries::state.eq(DeliveryState::Sent))
        .filter(kim_messages::receipt_at.is_null())
        .filter(kim_messages::sent_at.le(limit))
        .select((
            deliveries::certificate_id,
            deliveries::id,
            kim_messages::sent_at,
        ))
        .order(kim_messages::sent_at)
        .into_boxed();
    if let Some(p) = practice_id {
        query = query.filter(deliveries::practice_id.eq(p.to_owned()));
    }
    let mut rows: Vec<OverdueReceipt> = query.load(conn)?;
    rows.dedup_by(|a, b| a.delivery_id == b.delivery_id);
    Ok(rows)
}

/// A KIM mail sent for a delivery.
#[derive(Debug, Clone, Queryable)]
pub struct KimMessageRow {
    pub message_id: String,
    pub delivery_id: String,
    pub recipient: String,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    pub receipt_at: Option<NaiveDateTime>,
}

/// An inbox mail as listed.
#[derive(Debug, Clone, Queryable)]
pub struct InboxRow {
    pub id: String,
    pub practice_id: String,
    pub received_at: NaiveDateTime,
    pub kind: String,
    pub delivery_id: Option<String>,
    pub summary: String,
    pub deleted_at: Option<NaiveDateTime>,
}

type InboxColumns = (
    kim_inbox::id,
    kim_inbox::practice_id,
    kim_inbox::received_at,
    kim_inbox::kind,
    kim_inbox::delivery_id,
    kim_inbox::summary,
    kim_inbox::deleted_at,
);
const INBOX_COLUMNS: InboxColumns = (
    kim_inbox::id,
    kim_inbox::practice_id,
    kim_inbox::received_at,
    kim_inbox::kind,
    kim_inbox::delivery_id,
    kim_inbox::summary,
    kim_inbox::deleted_at,
);

/// The KIM mails and inbox mails of a practice's certificate (detail page).
pub fn kim_history(
    conn: &mut AnyConnection,
    practice_id: &str,
    certificate_id: &str,
) -> Result<(Vec<KimMessageRow>, Vec<InboxRow>)> {
    let ids: Vec<String> = deliveries::table
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::certificate_id.eq(certificate_id))
        .select(deliveries::id)
        .load(conn)?;
    let sent = kim_messages::table
        .filter(kim_messages::delivery_id.eq_any(&ids))
        .order(kim_messages::created_at)
        .select((
            kim_messages::message_id,
            kim_messages::delivery_id,
            kim_messages::recipient,
            kim_messages::created_at,
            kim_messages::sent_at,
            kim_messages::receipt_at,
        ))
        .load(conn)?;
    let inbox = kim_inbox::table
        .filter(kim_inbox::delivery_id.eq_any(&ids))
        .order(kim_inbox::received_at)
        .select(INBOX_COLUMNS)
        .load(conn)?;
    Ok((sent, inbox))
}

/// Inbox mails that matched no document: the operator sees all of them, a practice its own.
pub fn unmatched_inbox(
    conn: &mut AnyConnection,
    practice_id: Option<&str>,
    limit: i64,
) -> Result<Vec<InboxRow>> {
    let mut q = kim_inbox::table
        .filter(kim_inbox::delivery_id.is_null())
        .order(kim_inbox::received_at.desc())
        .limit(limit)
        .select(INBOX_COLUMNS)
        .into_boxed();
    if let Some(p) = practice_id {
        q = q.filter(kim_inbox::practice_id.eq(p.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// How many inbox mails matched no document (operator: all; a practice: its own).
pub fn unmatched_count(conn: &mut AnyConnection, practice_id: Option<&str>) -> Result<i64> {
    let mut q = kim_inbox::table
        .filter(kim_inbox::delivery_id.is_null())
        .into_boxed();
    if let Some(p) = practice_id {
        q = q.filter(kim_inbox::practice_id.eq(p.to_owned()));
    }
    Ok(q.count().get_result(conn)?)
}

/// The raw mail of an inbox row, if it belongs to `practice_id` (`None`: the operator).
pub fn inbox_raw(
    conn: &mut AnyConnection,
    practice_id: Option<&str>,
    id: &str,
) -> Result<Option<Vec<u8>>> {
    let mut q = kim_inbox::table
        .filter(kim_inbox::id.eq(id.to_owned()))
        .select(kim_inbox::raw)
        .into_boxed();
    if let Some(p) = practice_id {
        q = q.filter(kim_inbox::practice_id.eq(p.to_owned()));
    }
    Ok(q.first(conn).optional()?)
}

/// Counts for `/metrics`: mails read by kind, and whether they matched a document.
pub fn inbox_counts(conn: &mut AnyConnection) -> Result<Vec<(String, bool, i64)>> {
    use diesel::dsl::count_star;
    let all: Vec<(String, i64)> = kim_inbox::table
        .group_by(kim_inbox::kind)
        .select((kim_inbox::kind, count_star()))
        .load(conn)?;
    let unmatched: Vec<(String, i64)> = kim_inbox::table
        .filter(kim_inbox::delivery_id.is_null())
        .group_by(kim_inbox::kind)
        .select((kim_inbox::kind, count_star()))
        .load(conn)?;
    let mut out = Vec::new();
    for (kind, n) in all {
        let open = unmatched
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, m)| *m);
        out.push((kind.clone(), true, n - open));
        out.push((kind, false, open));
    }
    Ok(out)
}

/// The certificate of a delivery (for the detail links of the inbox list).
pub fn certificate_of_delivery(
    conn: &mut AnyConnection,
    delivery_id: &str,
) -> Result<Option<String>> {
    Ok(deliveries::table
        .inner_join(certificates::table)
        .filter(deliveries::id.eq(delivery_id))
        .select(certificates::id)
        .first(conn)
        .optional()?)
}

/// Insurers whose KIM address should be looked up in the TI directory: IKs with documents of a
/// practice that has a KIM account, whose destination is missing, has no route at all, or holds
/// a looked-up address older than `stale_before` (refreshed daily, ILF KIM). Addresses the
/// operator configured, and HTTP destinations, are left alone.
pub fn insurers_to_look_up(
    conn: &mut AnyConnection,
    stale_before: NaiveDateTime,
) -> Result<Vec<String>> {
    let with_account: Vec<String> = kim_accounts::table
        .select(kim_accounts::practice_id)
        .load(conn)?;
    if with_account.is_empty() {
        return Ok(Vec::new());
    }
    let mut iks: Vec<String> = deliveries::table
        .filter(deliveries::practice_id.eq_any(&with_account))
        .filter(deliveries::channel.eq(super::Channel::Insurer))
        .filter(deliveries::state.eq_any([
            DeliveryState::Pending,
            DeliveryState::AwaitingSignature,
            DeliveryState::Dead,
        ]))
        .select(deliveries::insurer_ik)
        .distinct()
        .load(conn)?;
    /// (IK, push URL, KIM address, its source, last change)
    type Known = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        NaiveDateTime,
    );
    let known: Vec<Known> = destinations::table
        .filter(destinations::ik.eq_any(&iks))
        .select((
            destinations::ik,
            destinations::push_url,
            destinations::kim_address,
            destinations::kim_source,
            destinations::updated_at,
        ))
        .load(conn)?;
    iks.retain(|ik| match known.iter().find(|k| &k.0 == ik) {
        None => true,
        Some((_, push, address, source, updated)) => match source.as_deref() {
            Some("operator") => false,
            Some(_) => *updated < stale_before,
            None => push.is_none() && address.is_none(),
        },
    });
    iks.sort();
    Ok(iks)
}

/// Records a looked-up KIM address (`source`: `vzd` or `file`) or, with `None`, that none was
/// found; creates the destination when the insurer had none.
pub fn record_kim_lookup(
    conn: &mut AnyConnection,
    ik: &str,
    address: Option<&str>,
    source: &str,
) -> Result<()> {
    let at = now();
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        super::begin_write(c)?;
        let exists: i64 = destinations::table.find(ik).count().get_result(c)?;
        if exists == 0 {
            diesel::insert_into(destinations::table)
                .values((
                    destinations::ik.eq(ik),
                    destinations::name.eq(format!("IK {ik} (Verzeichnisdienst)")),
                    destinations::updated_at.eq(at),
                ))
                .execute(c)?;
        }
        match address {
            Some(a) => diesel::update(destinations::table.find(ik))
                .set((
                    destinations::kim_address.eq(a),
                    destinations::kim_source.eq(source),
                    destinations::updated_at.eq(at),
                ))
                .execute(c)?,
            None => diesel::update(destinations::table.find(ik))
                .set((
                    destinations::kim_source.eq(source),
                    destinations::last_error
                        .eq("keine KIM-Adresse im Verzeichnisdienst: Ausfertigung per Post"),
                    destinations::updated_at.eq(at),
                ))
                .execute(c)?,
        };
        Ok(())
    })?;
    Ok(())
}
