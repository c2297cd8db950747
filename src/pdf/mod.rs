//! Paper copies of the Arbeitsunfähigkeitsbescheinigung (Muster 1 / eAU stylesheets) as PDF.
//!
//! Pure: every function takes domain values and returns PDF bytes; nothing here reads files,
//! the clock or the network. The font (DejaVu Sans, see `assets/fonts/`) is compiled in and
//! embedded as a subset, so every German character prints, copies and extracts.
//!
//! Copies (DOMAIN.md §1.5): [`Copy::Kk`] carries the diagnoses and the PDF417 of TA chapter 7,
//! [`Copy::V`] the diagnoses, the Krankengeld block and the patient notice, [`Copy::Ag`] never
//! a diagnosis, a cause other than the work accident, or a measure other than the D-Arzt.
//! [`protect`] encrypts a finished copy (AES-256) for the patient's e-mail.

mod barcode;
#[cfg(test)]
mod decode;
mod fonts;
mod layout;
mod protect;
#[doc(hidden)]
pub mod samples;

pub use barcode::{
    barcode_payload, Symbol, DATA_COLUMNS, ERROR_CORRECTION_LEVEL, MODULE_MM, QUIET_ZONE_MODULES,
    ROW_HEIGHT_MODULES,
};

pub use protect::protect;

use printpdf::{Mm, PdfDocument, PdfPage, PdfSaveOptions};

use crate::domain::{Certificate, Coverage, Doctor, Patient, Practice};
use layout::{Form, Parties};

/// Why a PDF could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    /// A copy name other than `kk`, `ag` or `v`.
    #[error("unbekannte Ausfertigung {0:?} (kk, ag oder v)")]
    UnknownCopy(String),
    /// A paper size other than `a5` or `a4`.
    #[error("unbekanntes Papierformat {0:?} (a5 oder a4)")]
    UnknownPaperSize(String),
    /// `render_set` was called without any copy.
    #[error("keine Ausfertigung gewählt")]
    NoCopies,
    /// The compiled-in font could not be parsed (a build defect).
    #[error("Schrift {0} nicht lesbar")]
    Font(&'static str),
    /// A barcode value has a character that ISO 8859-15 cannot represent.
    #[error(
        "{field}: Zeichen {character:?} ist im Barcode-Zeichensatz ISO 8859-15 nicht darstellbar"
    )]
    NotLatin9 {
        field: &'static str,
        character: char,
    },
    /// Serialising the document failed (in memory; a defect, not bad input).
    #[error("PDF schreiben: {0}")]
    Write(String),
    /// The PDF417 encoder refused the content.
    #[error("PDF417: {0}")]
    Barcode(String),
    /// Encrypting the finished PDF failed (a defect, not bad input).
    #[error("PDF verschlüsseln: {0}")]
    Protect(String),
}

/// Which "Ausfertigung" to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Copy {
    /// "Ausfertigung zur Vorlage bei der Krankenkasse": diagnoses and PDF417.
    Kk,
    /// "Ausfertigung zur Vorlage beim Arbeitgeber": never a diagnosis.
    Ag,
    /// "Ausfertigung für Versicherte": diagnoses, Krankengeld block, patient notice.
    V,
}

impl Copy {
    pub const ALL: [Self; 3] = [Self::Kk, Self::Ag, Self::V];
    /// "Print all" in the Ersatzverfahren: insurer and patient copy (AG on request).
    pub const PRINT_ALL: [Self; 2] = [Self::Kk, Self::V];

    /// `kk`, `ag` or `v` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, PdfError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kk" => Ok(Self::Kk),
            "ag" => Ok(Self::Ag),
            "v" => Ok(Self::V),
            _ => Err(PdfError::UnknownCopy(s.to_owned())),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Kk => "kk",
            Self::Ag => "ag",
            Self::V => "v",
        }
    }

    /// The framed label on the form.
    pub fn label(self) -> &'static str {
        match self {
            Self::Kk => "Ausfertigung zur Vorlage bei der Krankenkasse",
            Self::Ag => "Ausfertigung zur Vorlage beim Arbeitgeber",
            Self::V => "Ausfertigung für Versicherte",
        }
    }

    /// Whether this copy shows diagnoses, cause, measures and the Krankengeld block.
    pub fn shows_diagnoses(self) -> bool {
        !matches!(self, Self::Ag)
    }
}

/// Paper size; A5 is the default (TA P6-02 AK10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PaperSize {
    #[default]
    A5,
    /// The A5 form scaled by √2 onto A4; the PDF417 keeps its 10 mil module width.
    A4,
}

impl PaperSize {
    /// `a5` or `a4` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, PdfError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "a5" => Ok(Self::A5),
            "a4" => Ok(Self::A4),
            _ => Err(PdfError::UnknownPaperSize(s.to_owned())),
        }
    }

    /// Page width and height in mm (portrait).
    pub fn size_mm(self) -> (f32, f32) {
        match self {
            Self::A5 => (148.0, 210.0),
            Self::A4 => (210.0, 297.0),
        }
    }

    /// Factor from the A5 layout to this paper.
    fn scale(self) -> f32 {
        match self {
            Self::A5 => 1.0,
            Self::A4 => std::f32::consts::SQRT_2,
        }
    }
}

/// One copy of a certificate as a one-page PDF.
pub fn render(cert: &Certificate, copy: Copy, paper: PaperSize) -> Result<Vec<u8>, PdfError> {
    render_set(cert, &[copy], paper)
}

/// Several copies of one certificate as ONE PDF, one page per copy in the given order
/// ("print all": `&[Copy::Kk, Copy::V]`, plus `Copy::Ag` on request).
pub fn render_set(
    cert: &Certificate,
    copies: &[Copy],
    paper: PaperSize,
) -> Result<Vec<u8>, PdfError> {
    render_marked(cert, copies, paper, Marks::default())
}

/// What the printout of a stored certificate says besides the certificate itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// Signed with the practice's SMC-B (BMV-Ä Anlage 2b): the patient's copy says that the
    /// doctor signs it by hand.
    pub hand_signed: bool,
    /// The eAU is at the insurer: a KK copy printed now is no Ersatzverfahren (no notice, no
    /// barcode, which would let the insurer process it twice).
    pub delivered: bool,
}

/// [`render_set`] with the [`Marks`] of the stored certificate.
pub fn render_marked(
    cert: &Certificate,
    copies: &[Copy],
    paper: PaperSize,
    marks: Marks,
) -> Result<Vec<u8>, PdfError> {
    if copies.is_empty() {
        return Err(PdfError::NoCopies);
    }
    let symbol = if copies.contains(&Copy::Kk) && !marks.delivered {
        Some(Symbol::encode(&barcode_payload(cert)?)?)
    } else {
        None
    };
    let forms = copies.iter().map(|&copy| Form {
        copy,
        parties: Some(Parties::of(cert)),
        cert: Some(cert),
        barcode: if copy == Copy::Kk {
            symbol.as_ref()
        } else {
            None
        },
        hand_signed: marks.hand_signed,
        delivered: marks.delivered,
    });
    document(&title(Some(cert)), forms, paper)
}

/// The empty form to be filled in by hand (TA P6-02 AK5): one page each for KK, V and AG.
pub fn render_blank(paper: PaperSize) -> Result<Vec<u8>, PdfError> {
    let forms = [Copy::Kk, Copy::V, Copy::Ag].map(|copy| Form {
        copy,
        parties: None,
        cert: None,
        barcode: None,
        hand_signed: false,
        delivered: false,
    });
    document(&title(None), forms, paper)
}

/// The form with only the patient, insurer, practice and doctor filled in (TA P6-02 AK6), to be
/// completed by hand: one page each for KK, V and AG, without barcode.
pub fn render_prefilled(
    patient: &Patient,
    coverage: &Coverage,
    practice: &Practice,
    doctor: &Doctor,
    paper: PaperSize,
) -> Result<Vec<u8>, PdfError> {
    let parties = Parties {
        patient,
        coverage,
        practice,
        doctor,
    };
    let forms = [Copy::Kk, Copy::V, Copy::Ag].map(|copy| Form {
        copy,
        parties: Some(parties),
        cert: None,
        barcode: None,
        hand_signed: false,
        delivered: false,
    });
    document(&title(None), forms, paper)
}

fn title(cert: Option<&Certificate>) -> String {
    match cert {
        Some(c) => format!("Arbeitsunfähigkeitsbescheinigung {}", c.document_id),
        None => "Arbeitsunfähigkeitsbescheinigung".to_owned(),
    }
}

fn document<'a>(
    title: &str,
    forms: impl IntoIterator<Item = Form<'a>>,
    paper: PaperSize,
) -> Result<Vec<u8>, PdfError> {
    let fonts = fonts::fonts()?;
    let mut doc = PdfDocument::new(title);
    let ids = fonts::FontIds {
        regular: doc.add_font(&fonts.regular),
        bold: doc.add_font(&fonts.bold),
    };
    let (w, h) = paper.size_mm();
    let pages = forms
        .into_iter()
        .map(|form| PdfPage::new(Mm(w), Mm(h), layout::draw(&form, fonts, &ids, paper)))
        .collect();
    doc.with_pages(pages);
    // printpdf's own `optimize` compresses every stream with zlib level 9, which is more than
    // half of the time of a page; level 1 (fast) costs a few KB and saves most of the time (BENCHMARKS.md).
    let options = PdfSaveOptions {
        optimize: false,
        subset_fonts: true,
        ..PdfSaveOptions::default()
    };
    let mut lo = doc.to_lopdf_document(&options, &mut Vec::new());
    for object in lo.objects.values_mut() {
        let Ok(stream) = object.as_stream_mut() else {
            continue;
        };
        if !stream.allows_compression || stream.dict.get(b"Filter").is_ok() {
            continue;
        }
        let compressed = deflate(&stream.content)?;
        if compressed.len() + 19 < stream.content.len() {
            stream.dict.set("Filter", "FlateDecode");
            stream.set_content(compressed);
        }
    }
    let mut out = Vec::with_capacity(64 * 1024);
    lo.save_to(&mut out)
        .map_err(|e| PdfError::Write(e.to_string()))?;
    Ok(out)
}

fn deflate(bytes: &[u8]) -> Result<Vec<u8>, PdfError> {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(bytes.len() / 2),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(bytes)
        .map_err(|e| PdfError::Write(e.to_string()))?;
    encoder.finish().map_err(|e| PdfError::Write(e.to_string()))
}
