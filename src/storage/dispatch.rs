//! Read views of the practice's working day: the dispatch list with its filters, the print
//! history of a certificate, the send state beside each listed certificate, and the
//! practice's earlier patients for the capture form's lookup.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::outbox::{Channel, DeliveryState, DocumentKind, Progress};
use super::schema::{audit_log, certificates, deliveries};
use super::{AnyConnection, Result, StorageError};
use crate::domain::Certificate;

/// Which deliveries the dispatch list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DispatchFilter {
    /// Every eAU and Storno sent or to be sent.
    All,
    /// Not (yet) at the insurer: waiting, being sent, handed to KIM, failed.
    #[default]
    Unsent,
    /// At least one attempt failed, or given up / rejected.
    Failed,
    /// At the insurer.
    Delivered,
}

impl DispatchFilter {
    pub const ALL: [Self; 4] = [Self::All, Self::Unsent, Self::Failed, Self::Delivered];

    pub fn code(self) -> &'static str {
        match self {
            Self::All => "alle",
            Self::Unsent => "nicht-gesendet",
            Self::Failed => "fehlerhaft",
            Self::Delivered => "zugestellt",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// The German label of the filter (as the PVS name it).
    pub fn label(self) -> &'static str {
        match self {
            Self::All => "alle",
            Self::Unsent => "nicht gesendet",
            Self::Failed => "fehlerhaft",
            Self::Delivered => "zugestellt",
        }
    }
}

/// One row of the dispatch list.
#[derive(Debug, Clone, Queryable)]
pub struct DispatchRow {
    pub certificate_id: String,
    pub display_name: String,
    pub insurer_ik: String,
    pub document_kind: DocumentKind,
    pub progress: Progress,
    /// The certificate was cancelled (Storno or withdrawn).
    pub cancelled_at: Option<NaiveDateTime>,
}

/// The practice's insurer deliveries by `filter`, captured within `[from, to)` (UTC), at most
/// `limit`: the open ones oldest first (the deadline comes first), the others newest first.
pub fn dispatch_list(
    conn: &mut AnyConnection,
    practice_id: &str,
    filter: DispatchFilter,
    (from, to): (Option<NaiveDateTime>, Option<NaiveDateTime>),
    limit: i64,
) -> Result<Vec<DispatchRow>> {
    let mut q = deliveries::table
        .inner_join(certificates::table)
        .filter(deliveries::practice_id.eq(practice_id.to_owned()))
        .filter(deliveries::channel.eq(Channel::Insurer))
        .into_boxed();
    let closed = [DeliveryState::Delivered, DeliveryState::Withdrawn];
    q = match filter {
        DispatchFilter::All => q,
        DispatchFilter::Unsent => q.filter(deliveries::state.ne_all(closed)),
        DispatchFilter::Failed => q.filter(
            deliveries::state
                .eq_any([DeliveryState::Dead, DeliveryState::NeedsNewId])
                .or(deliveries::state
                    .ne_all(closed)
                    .and(deliveries::last_error.is_not_null())),
        ),
        DispatchFilter::Delivered => q.filter(deliveries::state.eq(DeliveryState::Delivered)),
    };
    if let Some(from) = from {
        q = q.filter(deliveries::created_at.ge(from));
    }
    if let Some(to) = to {
        q = q.filter(deliveries::created_at.lt(to));
    }
    q = match filter {
        DispatchFilter::Unsent | DispatchFilter::Failed => {
            q.order((deliveries::created_at, deliveries::id))
        }
        DispatchFilter::All | DispatchFilter::Delivered => {
            q.order((deliveries::created_at.desc(), deliveries::id.desc()))
        }
    };
    Ok(q.limit(limit)
        .select((
            deliveries::certificate_id,
            certificates::display_name,
            deliveries::insurer_ik,
            deliveries::document_kind,
            Progress::as_select(),
            certificates::cancelled_at,
        ))
        .load(conn)?)
}

/// One print of a certificate: when, by whom (`channel:name`), what (`KK+V A5`).
#[derive(Debug, Clone, Queryable)]
pub struct PrintRow {
    pub certificate_id: Option<String>,
    pub at: NaiveDateTime,
    pub actor: String,
    pub what: String,
}

/// The prints of the practice's certificates `ids` (from the audit trail), oldest first.
pub fn prints_of(
    conn: &mut AnyConnection,
    practice_id: &str,
    ids: &[String],
) -> Result<Vec<PrintRow>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(500) {
        rows.extend(
            audit_log::table
                .filter(audit_log::practice_id.eq(practice_id))
                .filter(audit_log::action.eq("certificate.printed"))
                .filter(audit_log::certificate_id.eq_any(chunk))
                .order((audit_log::at, audit_log::id))
                .select((
                    audit_log::certificate_id,
                    audit_log::at,
                    audit_log::actor,
                    audit_log::detail,
                ))
                .load::<PrintRow>(conn)?,
        );
    }
    Ok(rows)
}

/// The state of each listed certificate's eAU delivery to its insurer: `(certificate, state)`.
/// A certificate without one (printed only) is missing.
pub fn send_states(
    conn: &mut AnyConnection,
    practice_id: &str,
    ids: &[String],
) -> Result<Vec<(String, DeliveryState)>> {
    Ok(deliveries::table
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::channel.eq(Channel::Insurer))
        .filter(deliveries::document_kind.eq(DocumentKind::Eau))
        .filter(deliveries::certificate_id.eq_any(ids))
        .select((
            deliveries::certificate_id,
            (deliveries::state, deliveries::lease_until),
        ))
        .load::<(String, super::codes::Seen)>(conn)?
        .into_iter()
        .map(|(id, seen)| (id, seen.into()))
        .collect())
}

/// Certificates of the practice that the capture form's patient lookup may offer: every word
/// of `name_words` in the patient's name, the KVNR starting with `kvnr`; newest first, at most
/// `limit` (the caller keeps one per person and filters by birth date).
pub fn patient_candidates(
    conn: &mut AnyConnection,
    practice_id: &str,
    name_words: &[String],
    kvnr: Option<&str>,
    limit: i64,
) -> Result<Vec<(Uuid, Certificate)>> {
    let mut q = certificates::table
        .filter(certificates::practice_id.eq(practice_id.to_owned()))
        .filter(certificates::cancelled_at.is_null())
        .into_boxed();
    for word in name_words {
        q = q.filter(
            certificates::search_name
                .like(format!(
                    "%{}%",
                    super::certificates::like_literal(&word.to_lowercase())
                ))
                .escape('\\'),
        );
    }
    if let Some(kvnr) = kvnr {
        q = q.filter(
            certificates::kvnr
                .like(format!(
                    "{}%",
                    super::certificates::like_literal(&kvnr.to_uppercase())
                ))
                .escape('\\'),
        );
    }
    let rows: Vec<(String, String)> = q
        .order((certificates::created_at.desc(), certificates::id.desc()))
        .limit(limit)
        .select((certificates::id, certificates::document))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, document)| {
            let id = Uuid::parse_str(&id).map_err(|e| StorageError::Invalid(e.to_string()))?;
            Ok((id, serde_json::from_str(&document)?))
        })
        .collect()
}
