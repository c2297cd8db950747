//! Insurer destinations: configuration, the circuit breaker, the manual Störung, pause.

use chrono::NaiveDateTime;
use diesel::prelude::*;

pub use crate::domain::breaker::Probe;
use crate::domain::breaker::{BreakerState, ProbeRule};
use crate::secret::Secret;

use super::schema::{deliveries, destinations};
use super::{now, AnyConnection, DeliveryState, Result};

/// How to reach an insurer.
#[derive(Debug, Clone, Default)]
pub struct DestinationConfig {
    pub ik: String,
    pub name: String,
    /// `None`: pull only (the insurer imports its queue itself).
    pub push_url: Option<String>,
    pub health_url: Option<String>,
    /// Sent as the `Authorization` header.
    pub auth_header: Option<Secret>,
    /// At most this many pushes per minute (`None`: no limit).
    pub rate_per_minute: Option<i32>,
    /// The insurer's KIM address: practices with a KIM account send to it over KIM.
    pub kim_address: Option<String>,
    /// Where the KIM address came from: `operator`, `vzd` or `file`.
    pub kim_source: Option<String>,
}

/// Creates or reconfigures a destination, keeping its state.
pub fn upsert_destination(conn: &mut AnyConnection, d: &DestinationConfig) -> Result<()> {
    let at = now();
    let updated = diesel::update(destinations::table.find(&d.ik))
        .set((
            destinations::name.eq(&d.name),
            destinations::push_url.eq(&d.push_url),
            destinations::health_url.eq(&d.health_url),
            destinations::auth_header.eq(d.auth_header.as_ref().map(Secret::expose)),
            destinations::rate_per_minute.eq(d.rate_per_minute),
            destinations::kim_address.eq(&d.kim_address),
            destinations::kim_source.eq(&d.kim_source),
            destinations::updated_at.eq(at),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(destinations::table)
            .values((
                destinations::ik.eq(&d.ik),
                destinations::name.eq(&d.name),
                destinations::push_url.eq(&d.push_url),
                destinations::health_url.eq(&d.health_url),
                destinations::auth_header.eq(d.auth_header.as_ref().map(Secret::expose)),
                destinations::rate_per_minute.eq(d.rate_per_minute),
                destinations::kim_address.eq(&d.kim_address),
                destinations::kim_source.eq(&d.kim_source),
                destinations::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Declares or clears a Störung for an insurer.
pub fn set_outage(conn: &mut AnyConnection, ik: &str, outage: bool) -> Result<()> {
    let since = outage.then(now);
    diesel::update(destinations::table.find(ik))
        .set((
            destinations::outage.eq(outage),
            destinations::outage_since.eq(since),
            destinations::outage_confirmed_at.eq(since),
            destinations::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Confirms that a declared Störung still holds (asked every 7 days).
pub fn confirm_outage(conn: &mut AnyConnection, ik: &str) -> Result<()> {
    diesel::update(
        destinations::table
            .find(ik)
            .filter(destinations::outage.eq(true)),
    )
    .set(destinations::outage_confirmed_at.eq(now()))
    .execute(conn)?;
    Ok(())
}

/// Pauses or resumes pushing to an insurer.
pub fn set_paused(conn: &mut AnyConnection, ik: &str, paused: bool) -> Result<()> {
    diesel::update(destinations::table.find(ik))
        .set((
            destinations::paused.eq(paused),
            destinations::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// A destination as the workers and the dashboard see it.
#[derive(Debug, Clone, Queryable)]
pub struct DestinationRow {
    pub ik: String,
    pub name: String,
    pub push_url: Option<String>,
    pub health_url: Option<String>,
    pub auth_header: Option<Secret>,
    pub breaker: BreakerState,
    pub consecutive_failures: i32,
    pub probe_at: Option<NaiveDateTime>,
    pub outage: bool,
    pub outage_since: Option<NaiveDateTime>,
    pub paused: bool,
    pub last_success_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub updated_at: NaiveDateTime,
    pub outage_confirmed_at: Option<NaiveDateTime>,
    pub rate_per_minute: Option<i32>,
    pub kim_address: Option<String>,
    pub kim_source: Option<String>,
}

pub fn destination(conn: &mut AnyConnection, ik: &str) -> Result<Option<DestinationRow>> {
    Ok(destinations::table.find(ik).first(conn).optional()?)
}

pub fn all_destinations(conn: &mut AnyConnection) -> Result<Vec<DestinationRow>> {
    Ok(destinations::table.order(destinations::ik).load(conn)?)
}

/// Destinations whose probe is due: an open breaker, or a closed one whose last attempts
/// failed ("gestört" on the dashboard): the insurer's health is asked every few seconds, so the
/// backlog starts the moment it answers instead of at the next scheduled retry. Without a
/// health URL the probe is a real retry, so only an open breaker is probed, and
/// [`BLIND_PROBE_FACTOR`] times less often.
pub use crate::domain::breaker::BLIND_PROBE_FACTOR;

pub fn due_probes(conn: &mut AnyConnection) -> Result<Vec<(String, Option<String>)>> {
    Ok(destinations::table
        .filter(
            destinations::breaker
                .eq(BreakerState::Open)
                .or(destinations::consecutive_failures
                    .gt(0)
                    .and(destinations::health_url.is_not_null())),
        )
        .filter(
            destinations::probe_at
                .le(now())
                .or(destinations::probe_at.is_null()),
        )
        .filter(destinations::paused.eq(false))
        .select((destinations::ik, destinations::health_url))
        .load(conn)?)
}

/// Records a probe, the destination row first (the lock order of `finish_attempts`): reads
/// the breaker and whether anything waits, asks `decide` (the breaker's rules,
/// `queue::breaker::after_probe`) and writes what it returns.
pub fn record_probe(
    conn: &mut AnyConnection,
    ik: &str,
    probe: Probe,
    retry_in: chrono::Duration,
    decide: ProbeRule,
) -> Result<()> {
    conn.transaction(|c| {
        let target = destinations::table.find(ik);
        // Locks the row on PostgreSQL before the deliveries are touched.
        diesel::update(target)
            .set(destinations::updated_at.eq(now()))
            .execute(c)?;
        let Some(was) = target
            .select(destinations::breaker)
            .first::<BreakerState>(c)
            .optional()?
        else {
            return Ok(());
        };
        // Whether anything waits matters only while the breaker is not open (`after_probe`);
        // during an outage the backlog may be large, so it is not counted every probe then.
        let nothing_waiting = was != BreakerState::Open && {
            let waiting: i64 = deliveries::table
                .filter(deliveries::insurer_ik.eq(ik))
                .filter(deliveries::state.eq_any([DeliveryState::Pending, DeliveryState::InFlight]))
                .count()
                .get_result(c)?;
            waiting == 0
        };
        let after = decide(was, probe, nothing_waiting);
        diesel::update(target)
            .set((
                destinations::breaker.eq(after.breaker),
                destinations::probe_at.eq(now() + retry_in * after.next_probe_in_intervals),
            ))
            .execute(c)?;
        if after.reset_failures {
            diesel::update(target)
                .set(destinations::consecutive_failures.eq(0))
                .execute(c)?;
        }
        if after.backlog_due {
            make_backlog_due(c, ik, now())?;
        }
        Ok(())
    })
}

/// Every delivery of the insurer waiting for a later retry is due at `at`.
pub(super) fn make_backlog_due(
    c: &mut AnyConnection,
    ik: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        deliveries::table
            .filter(deliveries::insurer_ik.eq(ik))
            .filter(deliveries::state.eq(DeliveryState::Pending))
            .filter(deliveries::next_attempt_at.gt(at)),
    )
    .set(deliveries::next_attempt_at.eq(at))
    .execute(c)
}

/// What keeps a practice's certificates from reaching the insurers right now: a declared
/// practice-wide (TI) Störung, and the insurers that fail (declared Störung, open breaker, or
/// the last attempt failed), by name.
#[derive(Debug, Clone, Default)]
pub struct Disruptions {
    pub practice_outage: Option<NaiveDateTime>,
    pub insurers: Vec<(String, String)>,
}

pub fn disruptions(conn: &mut AnyConnection, practice_id: &str) -> Result<Disruptions> {
    let insurers = destinations::table
        .filter(destinations::paused.eq(false))
        .filter(
            destinations::outage
                .eq(true)
                .or(destinations::breaker.eq(BreakerState::Open))
                .or(destinations::consecutive_failures.gt(0)),
        )
        .order(destinations::name)
        .select((destinations::ik, destinations::name))
        .load(conn)?;
    Ok(Disruptions {
        practice_outage: super::practice_outage(conn, practice_id)?,
        insurers,
    })
}
