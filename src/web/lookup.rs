//! The capture form's lookups, answered as JSON to `static/lookup.js` (POST with the session's
//! CSRF token: names, birth dates and KVNRs never appear in a URL or a log line).
//!
//! - `POST /certificates/lookup/patients`, `q`: the practice's earlier patients by name, birth
//!   date (TT.MM.JJJJ) and/or KVNR; each answer carries the patient and insurer block.
//! - `POST /certificates/lookup/insurers`, `q`: insurers by name or IK from the KBV
//!   Kostenträgerstammdatei and the configured insurers; an IK the SDKT lists as expired comes
//!   with a German warning.

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{read_form, AppState, Staff, WebError};
use crate::domain::{berlin_today, parse_date, patient_block, InsurerDraft, PatientDraft};
use crate::{service, storage};

pub fn routes(r: &mut super::Router<'_>) {
    r.post("/certificates/lookup/patients", patients)
        .post("/certificates/lookup/insurers", insurers);
}

#[derive(Deserialize)]
struct LookupForm {
    #[allow(dead_code)]
    csrf: Option<String>,
    #[serde(default)]
    q: String,
}

/// At most this many suggestions.
const SHOWN: usize = 8;

#[derive(Serialize)]
struct PatientHit {
    /// "Müller, Jürgen, geb. 01.04.1980, A123456780, AOK Niedersachsen".
    label: String,
    patient: PatientDraft,
    insurer: InsurerDraft,
    /// The whole family name, to tell one person from two.
    #[serde(skip)]
    family: String,
}

/// What was typed: name words, a birth date, the start of a KVNR.
#[derive(Debug, Default, PartialEq)]
struct PatientQuery {
    words: Vec<String>,
    birth_date: Option<NaiveDate>,
    kvnr: Option<String>,
}

impl PatientQuery {
    fn parse(q: &str) -> Self {
        let mut query = Self::default();
        for token in q
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
        {
            let mut chars = token.chars();
            let kvnr_like = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && token.len() > 1
                && chars.all(|c| c.is_ascii_digit());
            if token.starts_with(|c: char| c.is_ascii_digit()) {
                query.birth_date = parse_date(token, "Geburtsdatum").ok();
            } else if kvnr_like {
                query.kvnr = Some(token.to_owned());
            } else {
                query.words.push(token.to_owned());
            }
        }
        query
    }

    /// Too little to ask the database (every patient would match).
    fn is_vague(&self) -> bool {
        self.birth_date.is_none()
            && self.kvnr.is_none()
            && self.words.iter().map(|w| w.chars().count()).sum::<usize>() < 2
    }
}

async fn patients(
    staff: Staff,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: LookupForm = read_form(&staff, &state, payload).await?;
    let query = PatientQuery::parse(&form.q);
    if query.is_vague() || form.q.chars().count() > 100 {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "patients": [] })));
    }
    let practice = staff.practice_id.clone();
    let (words, kvnr) = (query.words.clone(), query.kvnr.clone());
    // A birth date alone narrows nothing in SQL: read more of the newest certificates.
    let rows = if words.is_empty() && kvnr.is_none() {
        2000
    } else {
        200
    };
    let found = state
        .db
        .run(move |c| storage::patient_candidates(c, &practice, &words, kvnr.as_deref(), rows))
        .await?;
    let hits = patient_hits(found.into_iter().map(|(_, c)| c), &query);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "patients": hits })))
}

/// The first [`SHOWN`] different persons among the certificates that match the query.
fn patient_hits(
    found: impl Iterator<Item = crate::domain::Certificate>,
    query: &PatientQuery,
) -> Vec<PatientHit> {
    let mut hits: Vec<PatientHit> = Vec::new();
    for certificate in found {
        if query
            .birth_date
            .is_some_and(|d| d != certificate.patient.birth_date)
        {
            continue;
        }
        let hit = PatientHit::of(&certificate);
        // One person: the same name, birth date and number, whether the name parts were
        // kept apart (since name parts exist) or not.
        let same = |h: &PatientHit| {
            h.family == hit.family
                && h.patient.first_name == hit.patient.first_name
                && h.patient.birth_date == hit.patient.birth_date
                && h.patient.kvnr == hit.patient.kvnr
        };
        if hits.iter().any(same) {
            continue;
        }
        hits.push(hit);
        if hits.len() == SHOWN {
            break;
        }
    }
    hits
}

impl PatientHit {
    fn of(certificate: &crate::domain::Certificate) -> Self {
        let p = &certificate.patient;
        let (patient, insurer) = patient_block(certificate);
        let label = format!(
            "{}, geb. {}{}, {}",
            p.display_name(),
            patient.birth_date,
            if patient.kvnr.is_empty() {
                String::new()
            } else {
                format!(", {}", patient.kvnr)
            },
            insurer.name
        );
        Self {
            label,
            patient,
            insurer,
            family: p.family_name(),
        }
    }
}

#[derive(Serialize)]
struct InsurerHit {
    ik: String,
    name: String,
    /// "SDKT" or "Versand" (an insurer configured for dispatch).
    source: &'static str,
    /// An IK the SDKT lists as expired.
    warning: Option<String>,
}

async fn insurers(
    staff: Staff,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: LookupForm = read_form(&staff, &state, payload).await?;
    let q = form.q.trim().to_owned();
    if q.chars().count() < 2 || q.chars().count() > 100 {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "insurers": [] })));
    }
    let today = berlin_today(chrono::Utc::now());
    let directory = &state.settings.insurers;
    let warning = |ik: &str| directory.status(ik, today).warning();
    let mut hits: Vec<InsurerHit> = directory
        .search(&q, today, SHOWN)
        .into_iter()
        .map(|e| InsurerHit {
            warning: warning(&e.ik),
            ik: e.ik.clone(),
            name: e.name.clone(),
            source: "SDKT",
        })
        .collect();
    let configured = state.db.run(service::configured_insurers).await?;
    add_configured(&mut hits, configured, &q, warning);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "insurers": hits })))
}

/// Adds the configured insurers that match `q` (by name words, or an IK's start) and are not
/// listed yet, up to [`SHOWN`] hits.
fn add_configured(
    hits: &mut Vec<InsurerHit>,
    configured: Vec<storage::DestinationRow>,
    q: &str,
    warning: impl Fn(&str) -> Option<String>,
) {
    let lower = q.to_lowercase();
    let digits = q.chars().all(|c| c.is_ascii_digit());
    for d in configured {
        let name = d.name.to_lowercase();
        let matches = if digits {
            d.ik.starts_with(q)
        } else {
            lower.split_whitespace().all(|w| name.contains(w))
        };
        if matches && !hits.iter().any(|h| h.ik == d.ik) && hits.len() < SHOWN {
            hits.push(InsurerHit {
                warning: warning(&d.ik),
                ik: d.ik,
                name: d.name,
                source: "Versand",
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_split_into_name_birth_date_and_kvnr() {
        let q = PatientQuery::parse("Müller, Jürgen 1.4.1980");
        assert_eq!(q.words, ["Müller", "Jürgen"]);
        assert_eq!(q.birth_date, NaiveDate::from_ymd_opt(1980, 4, 1));
        assert_eq!(q.kvnr, None);
        let q = PatientQuery::parse("a12345");
        assert_eq!(q.kvnr.as_deref(), Some("a12345"));
        assert!(q.words.is_empty());
        assert!(PatientQuery::parse("M").is_vague());
        assert!(!PatientQuery::parse("Mü").is_vague());
        assert!(!PatientQuery::parse("01.04.1980").is_vague());
        // A date still being typed is no date yet, and no name either.
        assert!(PatientQuery::parse("01.04.").words.is_empty());
    }
}
