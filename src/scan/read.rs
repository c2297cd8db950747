//! Finding and decoding the PDF417 of a KK copy on a scanned page (rxing's PDF417 reader, which
//! tries all four orientations and tolerates a few degrees of skew).

use crate::num::ToF32;
use rxing::common::HybridBinarizer;
use rxing::multi::MultipleBarcodeReader;
use rxing::pdf417::PDF417Reader;
use rxing::{BinaryBitmap, DecodeHints, Exceptions, Luma8Source, Reader};

use super::record::{BarcodeRecord, RecordError};
use super::source::{self, Page, PageError};

/// Why a page gave no record. The German text is shown to the insurer's staff; `code` is the
/// stable name in the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("kein Barcode gefunden")]
    NoBarcode,
    #[error("Barcode beschädigt oder nicht vollständig lesbar")]
    Damaged,
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("{0}")]
    Page(#[from] PageError),
}

impl Unreadable {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoBarcode => "no_barcode",
            Self::Damaged => "damaged_barcode",
            Self::Record(_) => "not_an_au_barcode",
            Self::Page(PageError::Unsupported(_)) => "unsupported_image",
            Self::Page(_) => "unreadable_page",
        }
    }
}

/// A page whose shorter side has fewer pixels is looked at again at twice the size: an A5 copy
/// scanned below about 270 dpi, an A4 page below about 190 dpi (the modules of the PDF417 are
/// 0.254 mm, under 2 pixels at 150 dpi).
const SMALL_PAGE: u32 = 1600;
/// Below this (an A5 copy under about 170 dpi) the page is looked at again at three times the
/// size.
const TINY_PAGE: u32 = 1000;

/// The bytes (ISO 8859-15, as printed) of every barcode on the page: two KK copies scanned
/// side by side on one sheet are two. The page as it is first; if no barcode can be read, the
/// page straightened by its measured skew (a sheet fed askew) and enlarged when it is small,
/// then a quarter and a half degree either way, for one barcode. The retries cost time only on
/// pages that fail the first look; a page where no barcode was seen at all gets one retry.
pub fn barcodes(page: Page) -> Result<Vec<Vec<u8>>, Unreadable> {
    let why = match decode(&page, true) {
        Ok(found) => return Ok(found),
        Err(why) => why,
    };
    let short = page.width.min(page.height);
    let wanted: f32 = if short < TINY_PAGE {
        3.0
    } else if short < SMALL_PAGE {
        2.0
    } else {
        1.0
    };
    // Never beyond the largest page accepted: a narrow strip of a page is not enlarged into
    // gigabytes.
    let pixels = page.width.to_f32() * page.height.to_f32();
    let scale = wanted
        .min((source::MAX_PIXELS.to_f32() / pixels).sqrt())
        .max(1.0);
    let skew = page.skew();
    let tries: &[f32] = match why {
        Unreadable::Damaged => &[0.0, -0.5, 0.5, -0.25, 0.25],
        _ if skew != 0.0 || scale > 1.0 => &[0.0],
        _ => &[],
    };
    let mut seen = why;
    for offset in tries {
        match decode(&page.resampled(skew + offset, scale), false) {
            Ok(found) => return Ok(found),
            Err(Unreadable::Damaged) => seen = Unreadable::Damaged,
            Err(_) => {}
        }
    }
    Err(seen)
}

/// One look: every barcode (`multiple`) or the first one.
fn decode(page: &Page, multiple: bool) -> Result<Vec<Vec<u8>>, Unreadable> {
    let source = Luma8Source::new_with_slice(&page.luma, page.width, page.height)
        .map_err(|_| Unreadable::NoBarcode)?;
    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
    let hints = DecodeHints {
        TryHarder: Some(true),
        ..DecodeHints::default()
    };
    let mut reader = PDF417Reader::new();
    let results = if multiple {
        reader.decode_multiple_with_hints(&mut bitmap, &hints)
    } else {
        reader
            .decode_with_hints(&mut bitmap, &hints)
            .map(|r| vec![r])
    }
    .map_err(|e| match e {
        Exceptions::NotFoundException(_) => Unreadable::NoBarcode,
        _ => Unreadable::Damaged,
    })?;
    let mut found: Vec<Vec<u8>> = Vec::with_capacity(results.len());
    for result in results {
        // Without an ECI the reader hands out ISO 8859-1 code points, one per byte.
        let bytes = result
            .getText()
            .chars()
            .map(|ch| u8::try_from(u32::from(ch)).map_err(|_| Unreadable::Damaged))
            .collect::<Result<Vec<u8>, _>>()?;
        if !found.contains(&bytes) {
            found.push(bytes);
        }
    }
    if found.is_empty() {
        return Err(Unreadable::NoBarcode);
    }
    Ok(found)
}

/// The record of every KK copy on this page (at least one result: a page without a readable
/// barcode is one `Unreadable`).
pub fn read_page(page: Page) -> Vec<Result<BarcodeRecord, Unreadable>> {
    match barcodes(page) {
        Ok(found) => found
            .iter()
            .map(|bytes| Ok(BarcodeRecord::parse(bytes)?))
            .collect(),
        Err(why) => vec![Err(why)],
    }
}
