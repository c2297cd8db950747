//! Test helper: rasterise a [`Symbol`] and read it back with rxing's PDF417 reader.

use rxing::BarcodeFormat;

use super::barcode::Symbol;

/// Decodes the symbol (3 px per module, 6 px per row, 10 modules quiet zone) and returns the
/// content as bytes (the reader yields ISO 8859-1 code points, one per byte).
pub(crate) fn decode_symbol(symbol: &Symbol) -> Vec<u8> {
    let px = 3;
    let row_px = 2 * px;
    let margin = 10 * px;
    let width = symbol.width_modules() * px + 2 * margin;
    let height = symbol.rows.len() * row_px + 2 * margin;
    let mut luma = vec![255u8; width * height];
    for (r, row) in symbol.rows.iter().enumerate() {
        for (m, &dark) in row.iter().enumerate() {
            if dark {
                for y in 0..row_px {
                    let start = (margin + r * row_px + y) * width + margin + m * px;
                    luma[start..start + px].fill(0);
                }
            }
        }
    }
    let result = rxing::helpers::detect_in_luma(
        luma,
        crate::num::u32_of(width),
        crate::num::u32_of(height),
        Some(BarcodeFormat::PDF_417),
    )
    .expect("the PDF417 decodes");
    result
        .getText()
        .chars()
        .map(|ch| u8::try_from(u32::from(ch)).expect("one byte per character"))
        .collect()
}
