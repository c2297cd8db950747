//! What a scanned page is, given the documents held for the caller's IK: a pure decision,
//! tested without a database.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::read::Unreadable;
use super::record::BarcodeRecord;
use crate::domain::DeliveryState;
use crate::storage::ScanCandidate;

/// A document a page matched (or may be), as the insurer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedDocument {
    /// The document's UUID (`Bundle.identifier`), as pushed, sent by KIM or pulled.
    pub id: String,
    /// `pending`, `in_flight`, `delivered`, `dead` or `withdrawn`.
    pub delivery_state: String,
    /// When the insurer got it electronically, if it did.
    pub delivered_at: Option<String>,
    /// The practice cancelled it (a Storno follows or was sent).
    pub cancelled: bool,
}

/// The result of one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The document is (or will be) electronic at the insurer.
    Electronic(MatchedDocument),
    /// No electronic document: the record, so the insurer keys nothing by hand. When the
    /// document exists here but will not reach the insurer electronically (given up, withdrawn,
    /// rejected for a new file), it is named too.
    PaperOnly(Box<BarcodeRecord>, Option<MatchedDocument>),
    /// Several documents fit.
    Ambiguous(Vec<MatchedDocument>),
    /// No barcode, or not a KK copy's.
    Unreadable(Unreadable),
    /// The barcode names another insurer: nothing about any document is said.
    OtherInsurer,
}

impl Outcome {
    /// The stable name in the API, the CSV and the database.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Electronic(_) => "electronic",
            Self::PaperOnly(..) => "paper_only",
            Self::Ambiguous(_) => "ambiguous",
            Self::Unreadable(_) => "unreadable",
            Self::OtherInsurer => "other_insurer",
        }
    }
}

/// Whether the page's record needs the IK's documents of its patient to be decided.
pub fn needs_candidates(caller_ik: &str, record: &BarcodeRecord) -> bool {
    record.insurer_ik == caller_ik && !record.kvnr.is_empty()
}

/// Decides a page: another IK's barcode is `OtherInsurer` before anything is looked at; then
/// the candidates whose own barcode record is the same certificate (patient, insurer, day of
/// issue, period, BSNR or ASV team, LANR) decide between electronic, ambiguous and paper only.
/// Where several are, the one whose whole record is the page's (diagnoses, ticks, texts) is
/// the page's: a certificate captured again with a corrected diagnosis is told from the first.
pub fn decide(caller_ik: &str, record: BarcodeRecord, candidates: &[ScanCandidate]) -> Outcome {
    if record.insurer_ik != caller_ik {
        return Outcome::OtherInsurer;
    }
    let same: Vec<(&ScanCandidate, BarcodeRecord)> = candidates
        .iter()
        .filter_map(|c| {
            let theirs = crate::pdf::barcode_payload(&c.certificate)
                .ok()
                .and_then(|bytes| BarcodeRecord::parse(&bytes).ok())?;
            theirs.same_certificate(&record).then_some((c, theirs))
        })
        .collect();
    let identical: Vec<&ScanCandidate> = same
        .iter()
        .filter(|(_, theirs)| *theirs == record)
        .map(|(c, _)| *c)
        .collect();
    let chosen: Vec<&ScanCandidate> = if identical.is_empty() {
        same.iter().map(|(c, _)| *c).collect()
    } else {
        identical
    };
    match chosen.as_slice() {
        [] => Outcome::PaperOnly(Box::new(record), None),
        [one] if will_not_arrive(one.delivery_state) => {
            Outcome::PaperOnly(Box::new(record), Some(matched(one)))
        }
        [one] => Outcome::Electronic(matched(one)),
        several => Outcome::Ambiguous(several.iter().map(|c| matched(c)).collect()),
    }
}

/// A delivery in this state does not bring the document to the insurer: it was given up
/// (`dead`: the practice posts the paper), withdrawn, or rejected so that a new file with a
/// new UUID must be made.
fn will_not_arrive(state: DeliveryState) -> bool {
    matches!(
        state,
        DeliveryState::Dead | DeliveryState::Withdrawn | DeliveryState::NeedsNewId
    )
}

fn matched(c: &ScanCandidate) -> MatchedDocument {
    MatchedDocument {
        id: c.certificate_id.clone(),
        delivery_state: c.delivery_state.code().to_owned(),
        delivered_at: c.delivered_at.as_ref().map(rfc3339),
        cancelled: c.cancelled_at.is_some(),
    }
}

pub(crate) fn rfc3339(t: &NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::samples;

    fn candidate(id: &str, cert: crate::domain::Certificate) -> ScanCandidate {
        ScanCandidate {
            certificate_id: id.into(),
            certificate: cert,
            cancelled_at: None,
            delivery_state: DeliveryState::Delivered,
            delivered_at: Some(
                chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
                    .unwrap()
                    .and_hms_opt(9, 30, 0)
                    .unwrap(),
            ),
        }
    }

    fn record_of(cert: &crate::domain::Certificate) -> BarcodeRecord {
        BarcodeRecord::parse(&crate::pdf::barcode_payload(cert).unwrap()).unwrap()
    }

    #[test]
    fn the_one_document_of_the_same_certificate_is_electronic() {
        let (erst, folge) = (samples::erst().unwrap(), samples::folge().unwrap());
        let ik = erst.coverage.ik.as_str().to_owned();
        let record = record_of(&erst);
        let candidates = [candidate("a", folge), candidate("b", erst.clone())];
        let outcome = decide(&ik, record.clone(), &candidates);
        let Outcome::Electronic(doc) = outcome else {
            unreachable!("electronic expected, got {outcome:?}");
        };
        assert_eq!(doc.id, "b");
        assert_eq!(doc.delivered_at.as_deref(), Some("2026-12-01T09:30:00Z"));
        // Twice the same certificate: ambiguous, both listed.
        let twice = [candidate("b", erst.clone()), candidate("c", erst.clone())];
        assert!(
            matches!(decide(&ik, record.clone(), &twice), Outcome::Ambiguous(d) if d.len() == 2)
        );
        // None: paper only, with the whole record.
        assert_eq!(
            decide(&ik, record.clone(), &[]),
            Outcome::PaperOnly(Box::new(record.clone()), None)
        );
        // Given up by the practice: it will not come electronically, the paper is the AU.
        let mut dead = candidate("d", erst.clone());
        dead.delivery_state = DeliveryState::Dead;
        assert!(matches!(
            decide(&ik, record, &[dead]),
            Outcome::PaperOnly(_, Some(d)) if d.id == "d"
        ));
    }

    #[test]
    fn another_doctor_or_period_is_not_the_same_certificate() {
        let erst = samples::erst().unwrap();
        let ik = erst.coverage.ik.as_str().to_owned();
        let mut record = record_of(&erst);
        record.lanr = "999999901".into();
        let candidates = [candidate("b", erst.clone())];
        assert!(matches!(
            decide(&ik, record, &candidates),
            Outcome::PaperOnly(_, None)
        ));
        let mut record = record_of(&erst);
        record.incapable_until = record.incapable_until.map(|d| d.succ_opt().unwrap());
        assert!(matches!(
            decide(&ik, record, &candidates),
            Outcome::PaperOnly(_, None)
        ));
    }

    #[test]
    fn another_insurers_barcode_reveals_nothing() {
        let erst = samples::erst().unwrap();
        let record = record_of(&erst);
        let candidates = [candidate("b", erst)];
        assert_eq!(
            decide("109999999", record, &candidates),
            Outcome::OtherInsurer
        );
    }
}
