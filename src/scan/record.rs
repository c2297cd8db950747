//! The PDF417 content of a KK copy (TA Table 22, DOMAIN.md §5.2) as a typed record: the inverse
//! of [`crate::pdf::barcode_payload`].

use chrono::NaiveDate;
use serde::Serialize;

/// The 28 fields of the barcode, typed. Text fields are as printed (ISO 8859-15 decoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BarcodeRecord {
    /// Field 03: `12` (eAU 1.2); `11` is accepted as the previous eAU generation.
    pub version: String,
    /// Field 04: end of the insurance cover, if the card had one.
    pub coverage_until: Option<NaiveDate>,
    /// Field 05: the insurer's IK (Kostenträgerkennung).
    pub insurer_ik: String,
    /// Field 06: Versicherten-ID (KVNR), empty for patients without one.
    pub kvnr: String,
    /// Field 07: Versichertenart (1, 3, 5).
    pub insured_type: String,
    /// Field 08: besondere Personengruppe.
    pub special_group: String,
    /// Field 09: DMP-Kennzeichnung.
    pub dmp: String,
    /// Field 10: the BSNR, or the ASV-Teamnummer that takes its place.
    pub bsnr: String,
    /// Field 11: LANR of the doctor.
    pub lanr: String,
    /// Field 12: Ausstellungsdatum.
    pub issued_on: NaiveDate,
    /// Field 13.
    pub initial: bool,
    /// Field 14.
    pub follow_up: bool,
    /// Field 15.
    pub work_accident: bool,
    /// Field 16.
    pub d_arzt: bool,
    /// Field 17: arbeitsunfähig seit.
    pub incapable_since: Option<NaiveDate>,
    /// Field 18: voraussichtlich arbeitsunfähig bis.
    pub incapable_until: Option<NaiveDate>,
    /// Field 19: festgestellt am.
    pub determined_on: Option<NaiveDate>,
    /// Field 20.
    pub other_accident: bool,
    /// Field 21: Versorgungsleiden (SER).
    pub ser: bool,
    /// Field 22.
    pub rehabilitation: bool,
    /// Field 23.
    pub reintegration: bool,
    /// Field 24: sonstige Maßnahmen (free text).
    pub other_measures: String,
    /// Field 25.
    pub sick_pay_case: bool,
    /// Field 26.
    pub final_certificate: bool,
    /// Field 27: up to six ICD codes with certainty and side, as printed (`E10.20 G, S42.3 G L`).
    pub diagnoses: Vec<String>,
    /// Field 28: Hinweise zur Diagnose.
    pub diagnosis_hint: String,
}

/// Why a barcode's content is not a KK copy's record. The German text is shown to the
/// insurer's staff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("Barcode hat {0} statt 28 Felder")]
    FieldCount(usize),
    #[error("Barcode ist keine AU-Ausfertigung für die Krankenkasse (Formularcode {0})")]
    NotKkCopy(String),
    #[error("Barcode-Version {0} wird nicht unterstützt (11 oder 12 erwartet)")]
    Version(String),
    #[error("Barcode-Feld {field}: ungültiger Wert")]
    Field { field: &'static str },
}

const TAB: char = '\t';

impl BarcodeRecord {
    /// Parses the barcode bytes (ISO 8859-15). The record must have exactly 28 fields, form
    /// code `01`/`a`, version `11` or `12`, valid dates and checkboxes; anything else would be
    /// a different form or a damaged read, and is refused with the field it fails on.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        let (text, _) = encoding_rs::ISO_8859_15.decode_without_bom_handling(bytes);
        let f: Vec<&str> = text.split(TAB).collect();
        if f.len() != 28 {
            return Err(RecordError::FieldCount(f.len()));
        }
        if f[0] != "01" || f[1] != "a" {
            return Err(RecordError::NotKkCopy(format!("{}{}", f[0], f[1])));
        }
        if !matches!(f[2], "11" | "12") {
            return Err(RecordError::Version(f[2].to_owned()));
        }
        Ok(Self {
            version: f[2].to_owned(),
            coverage_until: optional_date(f[3], "Versicherungsschutz Ende")?,
            insurer_ik: digits(f[4], 9..=9, "Kostenträgerkennung")?,
            kvnr: kvnr(f[5])?,
            insured_type: digits(f[6], 0..=1, "Versichertenart")?,
            special_group: digits(f[7], 0..=2, "Besondere Personengruppe")?,
            dmp: digits(f[8], 0..=2, "DMP-Kennzeichnung")?,
            bsnr: digits(f[9], 9..=9, "BSNR")?,
            // Empty where no doctor of the bundle has a number (Arzt in Weiterbildung).
            // The KBV stylesheet writes its placeholder, a no-break space, there.
            lanr: match f[10].trim_matches([' ', '\u{a0}']) {
                "" => String::new(),
                lanr => digits(lanr, 9..=9, "LANR")?,
            },
            issued_on: optional_date(f[11], "Ausstellungsdatum")?.ok_or(RecordError::Field {
                field: "Ausstellungsdatum",
            })?,
            initial: flag(f[12], "Erstbescheinigung")?,
            follow_up: flag(f[13], "Folgebescheinigung")?,
            work_accident: flag(f[14], "Arbeitsunfall")?,
            d_arzt: flag(f[15], "Durchgangsarzt")?,
            incapable_since: optional_date(f[16], "arbeitsunfähig seit")?,
            incapable_until: optional_date(f[17], "voraussichtlich arbeitsunfähig bis")?,
            determined_on: optional_date(f[18], "festgestellt am")?,
            other_accident: flag(f[19], "sonstiger Unfall")?,
            ser: flag(f[20], "Versorgungsleiden")?,
            rehabilitation: flag(f[21], "Rehabilitation")?,
            reintegration: flag(f[22], "Wiedereingliederung")?,
            other_measures: f[23].to_owned(),
            sick_pay_case: flag(f[24], "Krankengeldfall")?,
            final_certificate: flag(f[25], "Endbescheinigung")?,
            diagnoses: diagnoses(f[26])?,
            diagnosis_hint: f[27].to_owned(),
        })
    }

    /// Whether the two records describe the same certificate: same patient, insurer, day of
    /// issue, period, practice (or ASV team) and doctor — the keys an insurer matches on.
    pub fn same_certificate(&self, other: &Self) -> bool {
        self.insurer_ik == other.insurer_ik
            && self.kvnr == other.kvnr
            && self.issued_on == other.issued_on
            && self.incapable_since == other.incapable_since
            && self.incapable_until == other.incapable_until
            && self.bsnr == other.bsnr
            && self.lanr == other.lanr
    }
}

fn optional_date(s: &str, field: &'static str) -> Result<Option<NaiveDate>, RecordError> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RecordError::Field { field });
    }
    NaiveDate::parse_from_str(s, "%Y%m%d")
        .map(Some)
        .map_err(|_| RecordError::Field { field })
}

fn digits(
    s: &str,
    len: std::ops::RangeInclusive<usize>,
    field: &'static str,
) -> Result<String, RecordError> {
    if len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(RecordError::Field { field })
    }
}

fn flag(s: &str, field: &'static str) -> Result<bool, RecordError> {
    match s {
        "" => Ok(false),
        "1" => Ok(true),
        _ => Err(RecordError::Field { field }),
    }
}

/// The Versicherten-ID: a capital letter and nine digits, or empty (no KVNR on the card). The
/// check digit is not enforced here: the record is what the paper says, and a wrong KVNR simply
/// matches nothing.
fn kvnr(s: &str) -> Result<String, RecordError> {
    let ok = s.is_empty()
        || (s.len() == 10
            && s.as_bytes()[0].is_ascii_uppercase()
            && s.bytes().skip(1).all(|b| b.is_ascii_digit()));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(RecordError::Field {
            field: "Versicherten-ID",
        })
    }
}

/// `E10.20 G, S42.3 G L` → `["E10.20 G", "S42.3 G L"]`; at most six.
fn diagnoses(s: &str) -> Result<Vec<String>, RecordError> {
    let list: Vec<String> = s
        .split(", ")
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    if list.len() > crate::domain::MAX_DIAGNOSES {
        return Err(RecordError::Field { field: "Diagnosen" });
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DOMAIN.md §5.2's constructed example for `Beispiel_1-eAU_ERST_GKV.xml`.
    const EXAMPLE: &str = "01\ta\t12\t\t104212059\tX234567890\t1\t00\t00\t345678901\t838382202\t20260203\t1\t\t\t\t20200203\t20200228\t20200203\t\t\t\t\t\t\t\tE10.20 G, N08.3 G, S42.3 G L, S82.28 G R\t";

    #[test]
    fn the_domain_example_parses_field_by_field() {
        let r = BarcodeRecord::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(r.insurer_ik, "104212059");
        assert_eq!(r.kvnr, "X234567890");
        assert_eq!(r.bsnr, "345678901");
        assert_eq!(r.lanr, "838382202");
        assert_eq!(r.issued_on, NaiveDate::from_ymd_opt(2026, 2, 3).unwrap());
        assert!(r.initial && !r.follow_up && !r.final_certificate);
        assert_eq!(
            r.incapable_until,
            Some(NaiveDate::from_ymd_opt(2020, 2, 28).unwrap())
        );
        assert_eq!(r.diagnoses.len(), 4);
        assert_eq!(r.diagnoses[2], "S42.3 G L");
        assert_eq!(r.diagnosis_hint, "");
        assert_eq!(r.coverage_until, None);
    }

    #[test]
    fn a_lanr_left_empty_or_as_the_kbv_placeholder_is_none_and_a_short_one_is_refused() {
        // Latin-9 bytes: the KBV stylesheet's placeholder is a no-break space (0xA0).
        for (lanr, expected) in [
            (&b""[..], Some("")),
            (b"\xa0", Some("")),
            (b"83838220", None),
        ] {
            let mut bytes = Vec::new();
            for (i, field) in EXAMPLE.as_bytes().split(|b| *b == b'\t').enumerate() {
                if i > 0 {
                    bytes.push(b'\t');
                }
                bytes.extend_from_slice(if i == 10 { lanr } else { field });
            }
            let parsed = BarcodeRecord::parse(&bytes).ok();
            assert_eq!(
                parsed.as_ref().map(|r| r.lanr.as_str()),
                expected,
                "{lanr:?}"
            );
        }
    }

    #[test]
    fn umlauts_are_read_as_iso_8859_15() {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        bytes.extend_from_slice(b"R\xfcckenschmerz \xa4"); // "Rückenschmerz €"
        let r = BarcodeRecord::parse(&bytes).unwrap();
        assert_eq!(r.diagnosis_hint, "Rückenschmerz €");
    }

    #[test]
    fn other_forms_and_damaged_records_are_refused_naming_the_field() {
        let other = EXAMPLE.replacen("01\ta", "01\tb", 1);
        assert!(matches!(
            BarcodeRecord::parse(other.as_bytes()),
            Err(RecordError::NotKkCopy(_))
        ));
        let short = EXAMPLE.rsplit_once('\t').unwrap().0;
        assert_eq!(
            BarcodeRecord::parse(short.as_bytes()),
            Err(RecordError::FieldCount(27))
        );
        let bad_date = EXAMPLE.replace("20200228", "20200231");
        assert_eq!(
            BarcodeRecord::parse(bad_date.as_bytes()),
            Err(RecordError::Field {
                field: "voraussichtlich arbeitsunfähig bis"
            })
        );
        let bad_flag = EXAMPLE.replacen("20260203\t1", "20260203\tx", 1);
        assert_eq!(
            BarcodeRecord::parse(bad_flag.as_bytes()),
            Err(RecordError::Field {
                field: "Erstbescheinigung"
            })
        );
        let old = EXAMPLE.replacen("\t12\t", "\t09\t", 1);
        assert!(matches!(
            BarcodeRecord::parse(old.as_bytes()),
            Err(RecordError::Version(_))
        ));
    }

    #[test]
    fn records_of_the_same_certificate_match_and_a_different_doctor_does_not() {
        let a = BarcodeRecord::parse(EXAMPLE.as_bytes()).unwrap();
        let mut b = a.clone();
        b.diagnosis_hint = "anders".into();
        assert!(a.same_certificate(&b));
        b.lanr = "123456601".into();
        assert!(!a.same_certificate(&b));
    }
}
