//! The practice's dispatch list on "Versand", as the PVS show it: a status filter (alle /
//! nicht gesendet / fehlerhaft / zugestellt), a date range, the post deadline of each unsent
//! certificate, the prints made of it and a button for the KK copy.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde::Deserialize;

use super::admin::when;
use crate::domain::{berlin_day_start, berlin_today, parse_date, post_deadline, FieldError, Land};
use crate::domain::{DeliveryState, DocumentKind};
use crate::storage::{DispatchFilter, DispatchRow, PrintRow, Progress};

/// The query of `GET /queue`: `status`, `von`, `bis` (TT.MM.JJJJ). Nothing here is health data.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DispatchQuery {
    status: Option<String>,
    von: Option<String>,
    bis: Option<String>,
    /// `?abruf`: the KIM mailbox is being read (the dashboard's notice).
    abruf: Option<String>,
}

/// The parsed filter, with the form's values to show again and what was wrong with them.
#[derive(Debug, Default)]
pub(super) struct Filter {
    pub status: DispatchFilter,
    pub von: String,
    pub bis: String,
    pub range: (Option<NaiveDateTime>, Option<NaiveDateTime>),
    pub errors: Vec<FieldError>,
    pub kim_poll: bool,
}

impl Filter {
    pub fn parse(query: &str) -> Self {
        let q: DispatchQuery = serde_urlencoded::from_str(query).unwrap_or_default();
        let mut errors = Vec::new();
        let status = match q.status.as_deref().map(str::trim) {
            None | Some("") => DispatchFilter::default(),
            Some(code) => DispatchFilter::parse(code).unwrap_or_else(|| {
                errors.push(FieldError::new(
                    "status",
                    "Stand: alle, nicht gesendet, fehlerhaft oder zugestellt",
                ));
                DispatchFilter::default()
            }),
        };
        let mut day = |value: &Option<String>, field: &'static str, label: &'static str| match value
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => None,
            Some(v) => match parse_date(v, label) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(FieldError::new(field, e.to_string()));
                    None
                }
            },
        };
        let from = day(&q.von, "von", "Erfasst von");
        let to = day(&q.bis, "bis", "Erfasst bis");
        Self {
            status,
            range: (
                from.map(berlin_day_start),
                to.map(|d: NaiveDate| berlin_day_start(d + Duration::days(1))),
            ),
            von: q.von.unwrap_or_default(),
            bis: q.bis.unwrap_or_default(),
            errors,
            kim_poll: q.abruf.is_some(),
        }
    }

    /// `(code, label, selected)` of every status filter, for the select.
    pub fn choices(&self) -> Vec<(&'static str, &'static str, bool)> {
        DispatchFilter::ALL
            .into_iter()
            .map(|f| (f.code(), f.label(), f == self.status))
            .collect()
    }
}

/// One row of the list.
pub(super) struct DispatchView {
    pub certificate_id: String,
    pub display_name: String,
    pub insurer_ik: String,
    /// "eAU" or "Storno".
    pub document: &'static str,
    pub state: DeliveryState,
    pub state_label: &'static str,
    /// "1 Versuch · nächster 07.12.2026 10:15 · HTTP 503", "noch kein Versuch".
    pub attempts: String,
    pub captured: String,
    /// "per Post spätestens 03.12.2026", "zugestellt 03.12.2026 10:15", …
    pub deadline: String,
    /// The KK copy goes by post today or is overdue.
    pub deadline_due: bool,
    /// Not (yet) at the insurer: the KK copy may be needed on paper.
    pub open: bool,
    /// "KK A5 · 07.12.2026 10:03 · mfa1", the latest print; "–" for none.
    pub printed: String,
    /// How many prints were made in all.
    pub prints: usize,
}

/// The rows of the list: `prints` are the audit trail's prints of the listed certificates,
/// `land` the practice's (its public holidays move the deadline).
pub(super) fn rows(
    listed: Vec<DispatchRow>,
    prints: &[PrintRow],
    land: Land,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<DispatchView> {
    let today = berlin_today(now);
    listed
        .into_iter()
        .map(|r| {
            let p = &r.progress;
            let unsent = !matches!(p.state, DeliveryState::Delivered | DeliveryState::Withdrawn);
            // The post duty and the KK copy belong to an eAU that is still valid: not to a
            // Storno, not to a cancelled certificate.
            let open = unsent && r.document_kind == DocumentKind::Eau && r.cancelled_at.is_none();
            let captured_on = berlin_today(p.created_at.and_utc());
            let (deadline, deadline_due) = if open {
                let d = post_deadline(land, captured_on, today);
                (d.label(today), d.is_due())
            } else if let Some(at) = p.delivered_at {
                (format!("zugestellt {}", when(Some(at))), false)
            } else if r.cancelled_at.is_some() {
                ("storniert".into(), false)
            } else {
                ("–".into(), false)
            };
            let mine: Vec<&PrintRow> = prints
                .iter()
                .filter(|p| p.certificate_id.as_deref() == Some(r.certificate_id.as_str()))
                .collect();
            DispatchView {
                printed: mine.last().map_or_else(|| "–".into(), |p| print_line(p)),
                prints: mine.len(),
                document: r.document_kind.label(),
                state_label: p.state.label(),
                attempts: attempts_line(p),
                captured: when(Some(p.created_at)),
                state: p.state,
                certificate_id: r.certificate_id,
                display_name: r.display_name,
                insurer_ik: r.insurer_ik,
                deadline,
                deadline_due,
                open,
            }
        })
        .collect()
}

/// "2 Versuche · nächster 07.12.2026 10:15 · HTTP 503": attempts so far, the next one while
/// it waits, the last error while it is not delivered.
fn attempts_line(r: &Progress) -> String {
    let mut parts = vec![match r.attempts {
        0 => "noch kein Versuch".to_owned(),
        1 => "1 Versuch".to_owned(),
        n => format!("{n} Versuche"),
    }];
    if r.state == DeliveryState::Pending && r.attempts > 0 {
        parts.push(format!("nächster {}", when(Some(r.next_attempt_at))));
    }
    if let (Some(error), false) = (&r.last_error, r.state == DeliveryState::Delivered) {
        parts.push(super::pages::staff_error(error));
    }
    parts.join(" · ")
}

/// "KK+V A5 · 07.12.2026 10:03 · mfa1": what, when, by whom (the user name of `web:mfa1`).
pub(super) fn print_line(p: &PrintRow) -> String {
    let who = p.actor.split_once(':').map_or(p.actor.as_str(), |(_, n)| n);
    format!("{} · {} · {who}", p.what, when(Some(p.at)))
}
