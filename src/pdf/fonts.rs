//! The compiled-in DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`),
//! parsed once per process.

use crate::num::ToF32;
use std::sync::OnceLock;

use printpdf::{FontId, ParsedFont};

use super::PdfError;

const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Latin.ttf");
const BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold-Latin.ttf");

pub(crate) struct Fonts {
    pub regular: ParsedFont,
    pub bold: ParsedFont,
}

/// The font resources of one document.
pub(crate) struct FontIds {
    pub regular: FontId,
    pub bold: FontId,
}

static FONTS: OnceLock<Result<Fonts, PdfError>> = OnceLock::new();

pub(crate) fn fonts() -> Result<&'static Fonts, PdfError> {
    FONTS
        .get_or_init(|| {
            Ok(Fonts {
                regular: parse(REGULAR, "DejaVu Sans")?,
                bold: parse(BOLD, "DejaVu Sans Bold")?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn parse(bytes: &[u8], name: &'static str) -> Result<ParsedFont, PdfError> {
    ParsedFont::from_bytes(bytes, 0, &mut Vec::new()).ok_or(PdfError::Font(name))
}

/// Advance width of `text` in mm at `size_pt`.
pub(crate) fn text_width_mm(font: &ParsedFont, text: &str, size_pt: f32) -> f32 {
    let upem = f32::from(font.pdf_font_metrics.units_per_em.max(1));
    let units: u32 = text
        .chars()
        .map(|ch| {
            let gid = font.lookup_glyph_index(u32::from(ch)).unwrap_or(0);
            u32::from(font.get_horizontal_advance(gid))
        })
        .sum();
    units.to_f32() / upem * size_pt * 25.4 / 72.0
}
