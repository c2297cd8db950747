//! The PDF417 on the "Ausfertigung zur Vorlage bei der Krankenkasse" (TA chapter 7, DOMAIN.md §5.2).
//!
//! Content: 28 fields in the order of TA Table 22, each terminated by TAB except the last one,
//! dates `JJJJMMTT`, checkboxes `1` or empty, encoded as ISO 8859-15 bytes.
//!
//! Symbology (BFB handbook §5.5): 7 data columns, error-correction level 4, module width 10 mil,
//! row height 2 modules, quiet zone 2 modules. The symbol carries no ECI: the bytes are handed to
//! the encoder as Latin-1 code points, so text compaction is used for the ASCII parts and a
//! temporary byte shift for umlauts, and a reader returns exactly the ISO 8859-15 bytes.

use crate::num::ToF32;
use chrono::NaiveDate;
use rxing::pdf417::encoder::{Compaction, PDF417};

use super::PdfError;
use crate::domain::{Cause, Certificate};

/// Number of data columns (BFB handbook §5.5).
pub const DATA_COLUMNS: u32 = 7;
/// PDF417 error-correction ("security") level.
pub const ERROR_CORRECTION_LEVEL: u32 = 4;
/// Module width: 10 mil = 0.254 mm.
pub const MODULE_MM: f32 = 0.254;
/// Row height in modules.
pub const ROW_HEIGHT_MODULES: f32 = 2.0;
/// Quiet zone on every side, in modules.
pub const QUIET_ZONE_MODULES: f32 = 2.0;

const TAB: u8 = b'\t';

/// The barcode content of a certificate as ISO 8859-15 bytes (TA Table 22).
///
/// Fails when a free-text value (name of a measure, diagnosis hint) holds a character that
/// ISO 8859-15 cannot represent. Control characters in free text become spaces, so a TAB typed
/// into a text can never shift the fields.
pub fn barcode_payload(c: &Certificate) -> Result<Vec<u8>, PdfError> {
    let flag = |b: bool| if b { "1" } else { "" };
    let date = |d: Option<NaiveDate>| d.map(|d| d.format("%Y%m%d").to_string());
    let work_related = c.causes().any(Cause::is_work_related);
    let cause_is = |code: &str| c.causes().any(|cause| cause.code() == code);

    let fields: [(&'static str, String); 28] = [
        ("Formularcode", "01".into()),
        ("Formularcodeergänzung", "a".into()),
        ("Versionsnummer", "12".into()),
        (
            "Versicherungsschutz Ende",
            date(c.coverage.valid_until).unwrap_or_default(),
        ),
        ("Kostenträgerkennung", c.coverage.ik.as_str().into()),
        ("Versicherten-ID", c.patient.insured_number().into()),
        ("Versichertenart", c.coverage.insured_type.code().into()),
        ("Besondere Personengruppe", c.coverage.special_group.clone()),
        ("DMP-Kennzeichnung", c.coverage.dmp.clone()),
        // An ASV team number takes the place of the BSNR (KBV KK stylesheet, field 10).
        (
            "BSNR",
            c.asv_team
                .clone()
                .unwrap_or_else(|| c.practice.bsnr.as_str().into()),
        ),
        ("LANR", c.doctor_number().into()),
        (
            "Ausstellungsdatum",
            date(Some(c.issued_on)).unwrap_or_default(),
        ),
        ("Erstbescheinigung", flag(c.kind.is_initial()).into()),
        ("Folgebescheinigung", flag(!c.kind.is_initial()).into()),
        ("Arbeitsunfall", flag(work_related).into()),
        ("Durchgangsarzt", flag(c.measures.d_arzt).into()),
        (
            "arbeitsunfähig seit",
            date(c.period.since).unwrap_or_default(),
        ),
        (
            "voraussichtlich arbeitsunfähig bis",
            date(Some(c.period.until)).unwrap_or_default(),
        ),
        (
            "festgestellt am",
            date(Some(c.period.determined_on)).unwrap_or_default(),
        ),
        ("sonstiger Unfall", flag(cause_is("1")).into()),
        ("Versorgungsleiden (SER)", flag(cause_is("3")).into()),
        ("Rehabilitation", flag(c.measures.rehabilitation).into()),
        ("Wiedereingliederung", flag(c.measures.reintegration).into()),
        (
            "sonstige Maßnahmen",
            clean_text(c.measures.other.as_deref().unwrap_or_default()),
        ),
        ("Krankengeldfall", flag(c.sick_pay_case).into()),
        ("Endbescheinigung", flag(c.kind.is_final()).into()),
        ("Diagnosen", c.diagnoses_line()),
        (
            "Hinweise zur Diagnose",
            clean_text(c.diagnosis_text.as_deref().unwrap_or_default()),
        ),
    ];

    let mut out = Vec::with_capacity(160);
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(TAB);
        }
        out.extend_from_slice(&latin9(name, value)?);
    }
    Ok(out)
}

/// Free text without control characters (they would break the TAB-separated record), in the
/// characters ISO 8859-15 has (`domain::for_barcode`: `–` → `-`, `„“` → `"`, `ł` → `l`).
fn clean_text(s: &str) -> String {
    let line: String = s
        .trim()
        .chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect();
    crate::domain::for_barcode(&line).into_owned()
}

/// One value as ISO 8859-15 bytes, or the field and the first character that has no byte.
pub(crate) fn latin9(field: &'static str, value: &str) -> Result<Vec<u8>, PdfError> {
    let (bytes, _, had_errors) = encoding_rs::ISO_8859_15.encode(value);
    if had_errors {
        let character = value
            .chars()
            .find(|ch| {
                let mut buf = [0u8; 4];
                encoding_rs::ISO_8859_15.encode(ch.encode_utf8(&mut buf)).2
            })
            .unwrap_or('\u{FFFD}');
        return Err(PdfError::NotLatin9 { field, character });
    }
    Ok(bytes.into_owned())
}

/// A PDF417 symbol as rows of modules, top row first; `true` is a dark module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub rows: Vec<Vec<bool>>,
}

impl Symbol {
    /// Encodes payload bytes with the KBV settings (7 data columns, EC level 4, no ECI).
    pub fn encode(payload: &[u8]) -> Result<Self, PdfError> {
        // Each byte becomes the code point of the same value; the encoder's default character
        // set ISO 8859-1 maps it back to that very byte and writes no ECI.
        let text: String = payload.iter().map(|&b| char::from(b)).collect();
        let mut encoder = PDF417::new();
        encoder.setCompaction(Compaction::AUTO);
        encoder.setDimensions(DATA_COLUMNS, DATA_COLUMNS, 90, 3);
        encoder
            .generateBarcodeLogic(&text, ERROR_CORRECTION_LEVEL)
            .map_err(|e| PdfError::Barcode(e.to_string()))?;
        let matrix = encoder
            .getBarcodeMatrix()
            .as_ref()
            .ok_or_else(|| PdfError::Barcode("no symbol produced".into()))?;
        // `getMatrix` lists the rows bottom-up.
        let rows = matrix
            .getMatrix()
            .into_iter()
            .rev()
            .map(|row| row.into_iter().map(|m| m == 1).collect())
            .collect();
        Ok(Self { rows })
    }

    /// Modules per row (start and stop pattern included, quiet zone excluded).
    pub fn width_modules(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }

    /// Printed width in mm including the quiet zones.
    pub fn width_mm(&self) -> f32 {
        (self.width_modules().to_f32() + 2.0 * QUIET_ZONE_MODULES) * MODULE_MM
    }

    /// Printed height in mm including the quiet zones.
    pub fn height_mm(&self) -> f32 {
        (self.rows.len().to_f32() * ROW_HEIGHT_MODULES + 2.0 * QUIET_ZONE_MODULES) * MODULE_MM
    }

    /// Runs of dark modules per row: (row, first module, length).
    pub fn dark_runs(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.rows.iter().enumerate().flat_map(|(r, row)| {
            let mut runs = Vec::new();
            let mut start = None;
            for (x, &dark) in row.iter().chain(std::iter::once(&false)).enumerate() {
                match (dark, start) {
                    (true, None) => start = Some(x),
                    (false, Some(s)) => {
                        runs.push((r, s, x - s));
                        start = None;
                    }
                    _ => {}
                }
            }
            runs
        })
    }

    /// Dark rectangles to draw: runs that repeat in consecutive rows (start and stop pattern,
    /// equal codewords) are merged into one taller block. (first row, first module, length,
    /// rows).
    pub fn dark_blocks(&self) -> Vec<(usize, usize, usize, usize)> {
        let mut blocks: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(1024);
        // Blocks that reach down to the previous row, as indices into `blocks`, sorted by start
        // module (runs within a row come in ascending order).
        let mut open: Vec<usize> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        let mut current_row = 0;
        let mut cursor = 0;
        for (r, start, len) in self.dark_runs() {
            if r != current_row {
                open = std::mem::take(&mut next);
                current_row = r;
                cursor = 0;
            }
            while cursor < open.len() && blocks[open[cursor]].1 < start {
                cursor += 1;
            }
            let continued = open.get(cursor).copied().filter(|&i| {
                let b = blocks[i];
                b.1 == start && b.2 == len && b.0 + b.3 == r
            });
            match continued {
                Some(i) => {
                    blocks[i].3 += 1;
                    next.push(i);
                }
                None => {
                    blocks.push((r, start, len, 1));
                    next.push(blocks.len() - 1);
                }
            }
        }
        blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::samples;

    fn text(bytes: &[u8]) -> String {
        bytes.iter().map(|&b| char::from(b)).collect()
    }

    #[test]
    fn the_payload_lists_all_28_fields_in_ta_order_byte_for_byte() {
        let c = samples::erst().unwrap();
        let expected: &[u8] = b"01\ta\t12\t\t109500969\tA123456780\t1\t00\t00\t031234567\t838382202\t20261125\t1\t\t\t\t20261124\t20261128\t20261125\t\t\t\t\t\t\t\tJ06.9 G, M54.5 G L\t";
        let payload = barcode_payload(&c).unwrap();
        assert_eq!(text(&payload), text(expected));
        assert_eq!(payload.iter().filter(|&&b| b == b'\t').count(), 27);
    }

    #[test]
    fn the_payload_encodes_umlauts_as_iso_8859_15_bytes() {
        let mut c = samples::erst().unwrap();
        c.diagnosis_text = Some("Rückenschmerz, Übelkeit ß €".into());
        let payload = barcode_payload(&c).unwrap();
        let tail = payload.rsplit(|&b| b == b'\t').next().unwrap();
        assert_eq!(
            tail, b"R\xFCckenschmerz, \xDCbelkeit \xDF \xA4",
            "ü = 0xFC, Ü = 0xDC, ß = 0xDF, € = 0xA4 in ISO 8859-15"
        );
    }

    #[test]
    fn a_full_certificate_sets_every_flag_and_text_field() {
        let c = samples::full().unwrap();
        let payload = barcode_payload(&c).unwrap();
        let fields: Vec<&[u8]> = payload.split(|&b| b == b'\t').collect();
        assert_eq!(fields.len(), 28);
        assert_eq!(fields[3], b"20271231", "Versicherungsschutz Ende");
        assert_eq!(fields[12], b"", "no Erstbescheinigung for FOLGE_END");
        assert_eq!(fields[13], b"1", "Folgebescheinigung");
        assert_eq!(fields[14], b"1", "Arbeitsunfall");
        assert_eq!(fields[15], b"1", "Durchgangsarzt");
        assert_eq!(fields[16], b"", "AU seit is empty for a Folgebescheinigung");
        assert_eq!(fields[21], b"1", "Reha");
        assert_eq!(fields[22], b"1", "Wiedereingliederung");
        assert_eq!(fields[23], b"Physiotherapie, Arbeitsplatzbegehung");
        assert_eq!(fields[24], b"1", "Krankengeldfall");
        assert_eq!(fields[25], b"1", "Endbescheinigung");
        assert_eq!(
            fields[26],
            b"S82.28 G R, M54.5 V L, J06.9 G, E10.20 Z, U07.1 A, T14.0 G B"
        );
        assert_eq!(fields[27], b"Sturz auf Treppe, \xFCberwiegend Knie");
    }

    #[test]
    fn tabs_typed_into_free_text_cannot_shift_the_fields() {
        let mut c = samples::erst().unwrap();
        c.measures.other = Some("eins\tzwei".into());
        let payload = barcode_payload(&c).unwrap();
        assert_eq!(payload.split(|&b| b == b'\t').count(), 28);
    }

    #[test]
    fn a_character_outside_iso_8859_15_is_carried_transliterated() {
        let mut c = samples::erst().unwrap();
        c.diagnosis_text = Some("„Łódź“ – Knie".into());
        c.measures.other = Some("Physio … 2×/Woche".into());
        let payload = barcode_payload(&c).unwrap();
        let fields: Vec<&[u8]> = payload.split(|&b| b == b'\t').collect();
        assert_eq!(fields[27], b"\"L\xF3dz\" - Knie");
        assert_eq!(fields[23], b"Physio ... 2\xD7/Woche", "× is Latin-9");
        assert!(matches!(
            latin9("Hinweise zur Diagnose", "Ł"),
            Err(PdfError::NotLatin9 {
                field: "Hinweise zur Diagnose",
                character: 'Ł'
            })
        ));
    }

    #[test]
    fn the_symbol_has_seven_data_columns_and_decodes_to_the_payload() {
        let c = samples::full().unwrap();
        let payload = barcode_payload(&c).unwrap();
        let symbol = Symbol::encode(&payload).unwrap();
        // start 17 + left indicator 17 + 7 × 17 + right indicator 17 + stop 18
        assert_eq!(symbol.width_modules(), 17 * 10 + 18);
        assert!(
            (symbol.width_mm() - 48.77).abs() < 0.1,
            "{}",
            symbol.width_mm()
        );
        assert_eq!(crate::pdf::decode::decode_symbol(&symbol), payload);
    }

    #[test]
    fn merged_blocks_cover_exactly_the_dark_modules() {
        let payload = barcode_payload(&samples::full().unwrap()).unwrap();
        let symbol = Symbol::encode(&payload).unwrap();
        let mut painted = vec![vec![false; symbol.width_modules()]; symbol.rows.len()];
        let blocks = symbol.dark_blocks();
        for &(row, start, len, rows) in &blocks {
            for line in painted.iter_mut().skip(row).take(rows) {
                for m in line.iter_mut().skip(start).take(len) {
                    assert!(!*m, "overlap");
                    *m = true;
                }
            }
        }
        assert_eq!(painted, symbol.rows);
        assert!(blocks.len() < symbol.dark_runs().count() * 9 / 10);
    }
}
