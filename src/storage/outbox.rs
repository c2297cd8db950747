//! The outbox of insurer deliveries. Rows are written in the capture transaction and never
//! deleted; claims, attempts and state changes are added by the queue workers.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::deliveries;
use super::{now, AnyConnection, Result};

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Eau,
    Storno,
}

impl DocumentKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Eau => "eau",
            Self::Storno => "storno",
        }
    }
}

/// States of a delivery.
pub mod state {
    pub const PENDING: &str = "pending";
    pub const IN_FLIGHT: &str = "in_flight";
    pub const DELIVERED: &str = "delivered";
    pub const NEEDS_NEW_ID: &str = "needs_new_id";
    pub const DEAD: &str = "dead";
    pub const WITHDRAWN: &str = "withdrawn";
}

/// Adds a pending delivery, due now. Call inside the transaction that stores the document.
pub fn enqueue(
    conn: &mut AnyConnection,
    certificate_id: &str,
    practice_id: &str,
    insurer_ik: &str,
    kind: DocumentKind,
) -> QueryResult<()> {
    let at = now();
    diesel::insert_into(deliveries::table)
        .values((
            deliveries::id.eq(Uuid::new_v4().to_string()),
            deliveries::certificate_id.eq(certificate_id),
            deliveries::practice_id.eq(practice_id),
            deliveries::insurer_ik.eq(insurer_ik),
            deliveries::document_kind.eq(kind.code()),
            deliveries::state.eq(state::PENDING),
            deliveries::attempts.eq(0),
            deliveries::next_attempt_at.eq(at),
            deliveries::created_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
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
