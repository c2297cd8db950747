//! The answers of a batch of attempts: attempt rows, the deliveries' new states and the
//! insurers' breakers, in one transaction.

use crate::domain::breaker::{AttemptsRule, BreakerState, Health, Reached, BLIND_PROBE_FACTOR};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DeliveryState;
use crate::storage::schema::{deliveries, delivery_attempts, destinations};
use crate::storage::{now, AnyConnection, Result};

/// The result of one attempt, as the queue decided it.
#[derive(Debug, Clone)]
pub struct Finish {
    pub delivery_id: String,
    /// The insurer's IK whose destination state (breaker, last success) the attempt updates;
    /// `None` for a mail.
    pub destination: Option<String>,
    /// New state of the delivery.
    pub state: DeliveryState,
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
        if self.state == DeliveryState::Delivered || self.state == DeliveryState::Sent {
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
/// Only a delivery still in flight (pending under a lease) moves on: one acknowledged by a
/// pull meanwhile stays delivered, whatever this push's answer was. Every recorded attempt
/// ends the lease.
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
            .filter(|f| f.state == DeliveryState::Delivered)
            .map(|f| f.delivery_id.as_str())
            .collect();
        for ids in delivered.chunks(1000) {
            diesel::update(
                deliveries::table
                    .filter(deliveries::id.eq_any(ids))
                    .filter(deliveries::state.eq(DeliveryState::Pending))
                    .filter(deliveries::lease_until.is_not_null()),
            )
            .set((
                deliveries::state.eq(DeliveryState::Delivered),
                deliveries::lease_until.eq(None::<NaiveDateTime>),
                deliveries::next_attempt_at.eq(at),
                deliveries::last_error.eq(None::<String>),
                deliveries::delivered_at.eq(at),
            ))
            .execute(c)?;
        }
        for f in finishes
            .iter()
            .filter(|f| f.state != DeliveryState::Delivered)
        {
            diesel::update(
                deliveries::table
                    .find(&f.delivery_id)
                    .filter(deliveries::state.eq(DeliveryState::Pending))
                    .filter(deliveries::lease_until.is_not_null()),
            )
            .set((
                deliveries::state.eq(f.state),
                deliveries::lease_until.eq(None::<NaiveDateTime>),
                deliveries::next_attempt_at.eq(f.next_attempt_at.unwrap_or(at)),
                deliveries::last_error.eq((f.state != DeliveryState::Sent).then_some(&f.detail)),
                deliveries::delivered_at.eq(None::<NaiveDateTime>),
            ))
            .execute(c)?;
        }
        let sent: Vec<&str> = finishes
            .iter()
            .filter(|f| f.state == DeliveryState::Sent)
            .filter_map(|f| f.kim_message_id.as_deref())
            .collect();
        crate::storage::kim::mark_kim_sent(c, &sent, at)?;
        update_breakers(c, finishes, at, breaker)
    })?;
    Ok(())
}

/// One attempt, as written to `delivery_attempts`.
pub(in crate::storage) struct NewAttempt<'a> {
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
pub(in crate::storage) fn insert_attempts(
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
        let Some((failures, breaker_was, last_success, health_url)) = target
            .select((
                destinations::consecutive_failures,
                destinations::breaker,
                destinations::last_success_at,
                destinations::health_url,
            ))
            .first::<(i32, BreakerState, Option<NaiveDateTime>, Option<String>)>(c)
            .optional()?
        else {
            continue;
        };
        let was = Health {
            consecutive_failures: failures,
            breaker: breaker_was,
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
                    destinations::breaker.eq(after.health.breaker),
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
            crate::storage::destinations::make_backlog_due(c, ik, at)?;
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

/// "Alle erneut senden": makes every waiting or dead delivery of the insurer due now (not one
/// in flight, under a worker's lease). The attempt history stays.
pub fn retry_all(conn: &mut AnyConnection, ik: &str) -> Result<usize> {
    Ok(diesel::update(
        deliveries::table
            .filter(deliveries::insurer_ik.eq(ik))
            .filter(deliveries::state.eq_any([DeliveryState::Pending, DeliveryState::Dead]))
            .filter(deliveries::lease_until.is_null()),
    )
    .set((
        deliveries::state.eq(DeliveryState::Pending),
        deliveries::next_attempt_at.eq(now()),
    ))
    .execute(conn)?)
}
