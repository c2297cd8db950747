//! What staff, operators and `/metrics` read of the outbox.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::{Channel, DeliveryState, DocumentKind};
use crate::storage::schema::{certificates, deliveries, delivery_attempts};
use crate::storage::{AnyConnection, Result};

/// Where a delivery stands, as every list of deliveries shows it (staff's detail page, the
/// dispatch list, the dashboard, the patient mails).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct Progress {
    /// As readers see it: in flight while a worker's lease is set.
    #[diesel(select_expression = (deliveries::state, deliveries::lease_until))]
    #[diesel(select_expression_type = (deliveries::state, deliveries::lease_until))]
    #[diesel(deserialize_as = crate::storage::codes::Seen)]
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// A delivery as shown to staff.
#[derive(Debug, Clone, Queryable)]
pub struct DeliveryRow {
    pub id: String,
    pub insurer_ik: String,
    pub document_kind: DocumentKind,
    pub progress: Progress,
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
        .filter(deliveries::channel.eq(Channel::Insurer))
        .order(deliveries::created_at)
        .select((
            deliveries::id,
            deliveries::insurer_ik,
            deliveries::document_kind,
            Progress::as_select(),
        ))
        .load(conn)?)
}

/// Deliveries not yet at the insurer, by insurer IK: `(ik, count, oldest)`.
pub fn backlog(
    conn: &mut AnyConnection,
    practice_id: &str,
) -> Result<Vec<(String, i64, Option<NaiveDateTime>)>> {
    backlog_by_insurer(conn, Some(practice_id))
}

/// Backlog of every insurer across all practices: `(ik, waiting, oldest)`, for `/metrics`.
pub fn backlog_all(conn: &mut AnyConnection) -> Result<Vec<(String, i64, Option<NaiveDateTime>)>> {
    backlog_by_insurer(conn, None)
}

/// Pending and in-flight insurer deliveries by IK, of one practice or of all.
fn backlog_by_insurer(
    conn: &mut AnyConnection,
    practice_id: Option<&str>,
) -> Result<Vec<(String, i64, Option<NaiveDateTime>)>> {
    use diesel::dsl::{count_star, min};
    let mut query = deliveries::table
        .filter(deliveries::channel.eq(Channel::Insurer))
        // Pending, whether under a worker's lease (in flight) or not; `in_flight` as an older
        // version stored it.
        .filter(deliveries::state.eq_any([DeliveryState::Pending, DeliveryState::InFlight]))
        .group_by(deliveries::insurer_ik)
        .select((
            deliveries::insurer_ik,
            count_star(),
            min(deliveries::created_at),
        ))
        .order(deliveries::insurer_ik)
        .into_boxed();
    if let Some(practice) = practice_id {
        query = query.filter(deliveries::practice_id.eq(practice));
    }
    Ok(query.load(conn)?)
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

/// Counts of the deliveries of a channel by state, in the order of the state codes.
pub fn states(conn: &mut AnyConnection, channel: Channel) -> Result<Vec<(DeliveryState, i64)>> {
    use diesel::dsl::count_star;
    let mut counts: Vec<(DeliveryState, i64)> = deliveries::table
        .filter(deliveries::channel.eq(channel))
        .group_by(deliveries::state)
        .select((deliveries::state, count_star()))
        .load(conn)?;
    // The stored state of a delivery in flight is `pending`, under a lease.
    let in_flight: i64 = deliveries::table
        .filter(deliveries::channel.eq(channel))
        .filter(deliveries::state.eq(DeliveryState::Pending))
        .filter(deliveries::lease_until.is_not_null())
        .count()
        .get_result(conn)?;
    if in_flight > 0 {
        for (state, n) in &mut counts {
            if *state == DeliveryState::Pending {
                *n -= in_flight;
            }
        }
        // Beside rows an older version left `in_flight`, if any: one count per state.
        match counts
            .iter_mut()
            .find(|(s, _)| *s == DeliveryState::InFlight)
        {
            Some((_, n)) => *n += in_flight,
            None => counts.push((DeliveryState::InFlight, in_flight)),
        }
        counts.retain(|(_, n)| *n > 0);
    }
    counts.sort_by_key(|(state, _)| state.code());
    Ok(counts)
}

/// A delivery not (yet) at the insurer, as listed on the dashboard.
#[derive(Debug, Clone, Queryable)]
pub struct UnsentRow {
    pub certificate_id: String,
    pub display_name: String,
    pub insurer_ik: String,
    pub progress: Progress,
}

/// A practice's deliveries that have not reached the insurer, oldest first.
pub fn unsent(conn: &mut AnyConnection, practice_id: &str, limit: i64) -> Result<Vec<UnsentRow>> {
    Ok(deliveries::table
        .inner_join(certificates::table)
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::channel.eq(Channel::Insurer))
        .filter(deliveries::state.ne_all([DeliveryState::Delivered, DeliveryState::Withdrawn]))
        .order((deliveries::created_at, deliveries::id))
        .limit(limit)
        .select((
            deliveries::certificate_id,
            certificates::display_name,
            deliveries::insurer_ik,
            Progress::as_select(),
        ))
        .load(conn)?)
}
