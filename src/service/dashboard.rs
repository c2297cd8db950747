//! The read models of the dispatch dashboard and of `/metrics`: which rows each reads, in one
//! connection. No decisions about what is shown how; that is the web's view models.

use chrono::NaiveDateTime;

use crate::domain::{DeliveryState, Land};
use crate::storage::{self, AnyConnection, DispatchFilter, Result};

/// What the dashboard shows: the operator every insurer's backlog, a practice member the
/// practice's own.
#[derive(Debug)]
pub struct Dashboard {
    pub destinations: Vec<storage::DestinationRow>,
    /// `(IK, waiting deliveries, oldest waiting since)`.
    pub backlog: Vec<(String, i64, Option<NaiveDateTime>)>,
    pub unsent: Vec<storage::UnsentRow>,
    /// The practice's dispatch list under its filter.
    pub listed: Vec<storage::DispatchRow>,
    /// The prints of the listed certificates.
    pub prints: Vec<storage::PrintRow>,
    /// The practice's Land (none for the operator).
    pub land: Option<Land>,
    pub practice_outage: Option<NaiveDateTime>,
    /// The practice's documents waiting for the doctor's signature.
    pub awaiting_signature: i64,
    pub kim: Option<storage::KimAccountRow>,
    /// KIM mails that matched no document (operator: all; practice: its own).
    pub kim_unmatched: i64,
    /// Sent over KIM, no receipt within 24 hours (operator: all practices).
    pub overdue: Vec<storage::OverdueReceipt>,
}

/// How many rows the dashboard's practice lists show at most.
const LIST_LIMIT: i64 = 500;

/// The dashboard of a practice (`Some`) or of the operator (`None`); `filter` and `range`
/// select the practice's dispatch list.
pub fn dashboard(
    c: &mut AnyConnection,
    practice: Option<&str>,
    filter: DispatchFilter,
    range: (Option<NaiveDateTime>, Option<NaiveDateTime>),
) -> Result<Dashboard> {
    let destinations = storage::all_destinations(c)?;
    let Some(p) = practice else {
        return Ok(Dashboard {
            destinations,
            backlog: storage::backlog_all(c)?,
            unsent: Vec::new(),
            listed: Vec::new(),
            prints: Vec::new(),
            land: None,
            practice_outage: None,
            awaiting_signature: 0,
            kim: None,
            kim_unmatched: storage::unmatched_count(c, None)?,
            overdue: storage::overdue_receipts(c, None, storage::now())?,
        });
    };
    let listed = storage::dispatch_list(c, p, filter, range, LIST_LIMIT)?;
    let ids: Vec<String> = listed.iter().map(|r| r.certificate_id.clone()).collect();
    Ok(Dashboard {
        destinations,
        backlog: storage::backlog(c, p)?,
        unsent: storage::unsent(c, p, LIST_LIMIT)?,
        prints: storage::prints_of(c, p, &ids)?,
        listed,
        land: Some(storage::practice_land(c, p)?),
        practice_outage: storage::practice_outage(c, p)?,
        awaiting_signature: storage::awaiting_signature_count(c, p)?,
        kim: storage::kim_account(c, p)?,
        kim_unmatched: storage::unmatched_count(c, Some(p))?,
        overdue: storage::overdue_receipts(c, Some(p), storage::now())?,
    })
}

/// What `/metrics` reports besides the HTTP counters. No personal data.
#[derive(Debug)]
pub struct Metrics {
    /// Insurer deliveries by state.
    pub states: Vec<(DeliveryState, i64)>,
    /// Patient mails by state.
    pub mails: Vec<(DeliveryState, i64)>,
    /// `(IK, waiting deliveries, oldest waiting since)`.
    pub backlog: Vec<(String, i64, Option<NaiveDateTime>)>,
    pub destinations: Vec<storage::DestinationRow>,
    /// Insurer documents with a stored signature.
    pub signed: i64,
    /// Sent over KIM more than 24 hours ago without a receipt.
    pub receipts_overdue: usize,
    /// `(kind, matched, count)` of the mails read from KIM mailboxes.
    pub inbox: Vec<(String, bool, i64)>,
    /// When these were read.
    pub now: NaiveDateTime,
}

/// The figures of `/metrics`.
pub fn metrics(c: &mut AnyConnection) -> Result<Metrics> {
    Ok(Metrics {
        states: storage::states(c, storage::Channel::Insurer)?,
        mails: storage::states(c, storage::Channel::Mail)?,
        backlog: storage::backlog_all(c)?,
        destinations: storage::all_destinations(c)?,
        signed: storage::signed_count(c)?,
        receipts_overdue: storage::overdue_receipts(c, None, storage::now())?.len(),
        inbox: storage::inbox_counts(c)?,
        now: storage::now(),
    })
}
