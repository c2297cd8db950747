//! Pages of an uploaded scan as grey images: PDF (through poppler: the scanned image of a page is
//! taken as it is embedded, a page that is not one image is rendered at 300 dpi), multi-page TIFF
//! (bilevel, grey or colour, CCITT G4, LZW, Deflate, JPEG), PNG and JPEG. Every page is read on
//! its own, so memory stays that of one page per reader, whatever the upload's size.

use crate::num::{index, isize_of, u32_of, u8_of, usize_of, ToF32};
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;

use tiff::decoder::{Decoder, DecodingResult};
use tiff::ColorType;

/// Longest time poppler may take for one page (or for counting the pages of a file).
const POPPLER_SECONDS: &str = "60";
/// Resolution of a PDF page rendered because it is not a single scanned image.
const RENDER_DPI: &str = "300";
/// The largest page accepted (pixels), a little more than A3 at 600 dpi.
pub const MAX_PIXELS: u64 = 80_000_000;

/// The file types a scan upload may have, recognised by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Tiff,
    Png,
    Jpeg,
}

impl Format {
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
            Some(Self::Tiff)
        } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else {
            None
        }
    }

    /// Reads the first bytes of a file and names its type.
    pub fn of_file(path: &Path) -> std::io::Result<Option<Self>> {
        let mut head = [0u8; 8];
        let mut file = std::fs::File::open(path)?;
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..])? {
                0 => break,
                read => n += read,
            }
        }
        Ok(Self::sniff(&head[..n]))
    }
}

/// One page as 8-bit grey, row by row, 0 = black.
#[derive(Debug, Clone)]
pub struct Page {
    pub width: u32,
    pub height: u32,
    pub luma: Vec<u8>,
}

/// Why a page could not be read as an image. The German text is shown to the insurer's staff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("Seite nicht lesbar: {0}")]
    Unreadable(String),
    #[error("Bildformat nicht unterstützt: {0}")]
    Unsupported(String),
    #[error("Seite zu groß ({0} Megapixel)")]
    TooLarge(u64),
}

impl Page {
    fn new(width: u32, height: u32, luma: Vec<u8>) -> Result<Self, PageError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels > MAX_PIXELS {
            return Err(PageError::TooLarge(pixels / 1_000_000));
        }
        if width == 0 || height == 0 || u64::try_from(luma.len()).ok() != Some(pixels) {
            return Err(PageError::Unreadable(
                "leeres oder unvollständiges Bild".into(),
            ));
        }
        Ok(Self {
            width,
            height,
            luma,
        })
    }

    /// The page turned by `degrees` about its centre and scaled by `scale` (bilinear, white
    /// outside): a second look at a barcode scanned askew or at a low resolution.
    pub fn resampled(&self, degrees: f32, scale: f32) -> Page {
        let (w, h) = (index(self.width), index(self.height));
        let (out_w, out_h) = (
            usize_of((self.width.to_f32() * scale).round()),
            usize_of((self.height.to_f32() * scale).round()),
        );
        let (cx, cy) = (w.to_f32() / 2.0, h.to_f32() / 2.0);
        let (s, c) = degrees.to_radians().sin_cos();
        let (s, c) = (s / scale, c / scale);
        let at = |x: isize, y: isize| -> f32 {
            match (usize::try_from(x), usize::try_from(y)) {
                (Ok(x), Ok(y)) if x < w && y < h => f32::from(self.luma[y * w + x]),
                _ => 255.0,
            }
        };
        let mut luma = Vec::with_capacity(out_w * out_h);
        let (ox, oy) = (out_w.to_f32() / 2.0, out_h.to_f32() / 2.0);
        for y in 0..out_h {
            let dy = y.to_f32() - oy;
            for x in 0..out_w {
                let dx = x.to_f32() - ox;
                let (sx, sy) = (c * dx + s * dy + cx, -s * dx + c * dy + cy);
                let (fx0, fy0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - fx0, sy - fy0);
                let (x0, y0) = (isize_of(fx0), isize_of(fy0));
                let v = (at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx) * (1.0 - fy)
                    + (at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx) * fy;
                luma.push(u8_of(v.round().clamp(0.0, 255.0)));
            }
        }
        Page {
            width: u32_of(out_w),
            height: u32_of(out_h),
            luma,
        }
    }

    /// The turn (degrees, for [`Page::resampled`]) that straightens the page: the angle at
    /// which the dark pixels line up best in rows (text lines, form lines and the barcode's
    /// rows), searched from -5° to 5° in quarter degrees on every fourth pixel.
    pub fn skew(&self) -> f32 {
        let (w, h) = (index(self.width), index(self.height));
        let (cx, cy) = (w.to_f32() / 2.0, h.to_f32() / 2.0);
        let dark: Vec<(f32, f32)> = (0..h)
            .step_by(4)
            .flat_map(|y| (0..w).step_by(4).map(move |x| (x, y)))
            .filter(|&(x, y)| self.luma[y * w + x] < 128)
            .map(|(x, y)| (x.to_f32() - cx, y.to_f32() - cy))
            .collect();
        let bins = (w + h) / 4 + 2;
        let mut best = (0.0f32, 0u64);
        let mut histogram = vec![0u32; bins];
        for step in -20..=20 {
            let degrees = step.to_f32() * 0.25;
            let (s, c) = degrees.to_radians().sin_cos();
            histogram.iter_mut().for_each(|b| *b = 0);
            for &(x, y) in &dark {
                let row = usize_of((s * x + c * y) / 4.0 + bins.to_f32() / 2.0);
                if let Some(b) = histogram.get_mut(row) {
                    *b += 1;
                }
            }
            let sharpness: u64 = histogram.iter().map(|&b| u64::from(b) * u64::from(b)).sum();
            if sharpness > best.1 {
                best = (degrees, sharpness);
            }
        }
        best.0
    }

    /// A PNG or JPEG image.
    pub fn from_image_file(path: &Path) -> Result<Self, PageError> {
        let reader = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| PageError::Unreadable(e.to_string()))?;
        let (width, height) = reader
            .into_dimensions()
            .map_err(|e| PageError::Unreadable(e.to_string()))?;
        if u64::from(width) * u64::from(height) > MAX_PIXELS {
            return Err(PageError::TooLarge(
                u64::from(width) * u64::from(height) / 1_000_000,
            ));
        }
        let img = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| PageError::Unreadable(e.to_string()))?
            .decode()
            .map_err(|e| PageError::Unreadable(e.to_string()))?
            .into_luma8();
        let (w, h) = img.dimensions();
        Self::new(w, h, img.into_raw())
    }
}

// --- PDF ----------------------------------------------------------------------------------------

/// The number of pages of a PDF (poppler's `pdfinfo`).
pub fn pdf_page_count(path: &Path) -> Result<u32, PageError> {
    let out = poppler("pdfinfo", &[path.as_os_str()])?;
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| PageError::Unreadable("PDF ohne Seitenzahl".into()))
}

/// How a PDF page was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdfPage {
    /// The page's one image, as scanned.
    Embedded,
    /// Rendered by poppler.
    Rendered,
}

/// Page `page` (1-based) of a PDF. A scanned page is one image: it is taken as embedded (no
/// resampling, no second JPEG pass). Anything else is rendered by poppler at 300 dpi.
pub fn pdf_page(path: &Path, page: u32, scratch: &Path) -> Result<(Page, PdfPage), PageError> {
    match embedded_image(path, page, scratch)? {
        Some(image) => {
            let page = Page::from_image_file(&image);
            let _ = std::fs::remove_file(&image);
            Ok((page?, PdfPage::Embedded))
        }
        None => Ok((rendered_page(path, page)?, PdfPage::Rendered)),
    }
}

/// Extracts the images of one page into `scratch`; the path of the only one, if there is
/// exactly one (a scan).
fn embedded_image(path: &Path, page: u32, scratch: &Path) -> Result<Option<PathBuf>, PageError> {
    let n = page.to_string();
    let prefix = scratch.join(format!("p{n}"));
    poppler(
        "pdfimages",
        &[
            "-f".as_ref(),
            n.as_ref(),
            "-l".as_ref(),
            n.as_ref(),
            "-j".as_ref(),
            "-png".as_ref(),
            path.as_os_str(),
            prefix.as_os_str(),
        ],
    )?;
    let stem = format!("p{n}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(scratch)
        .map_err(|e| PageError::Unreadable(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&stem))
        })
        .collect();
    if found.len() == 1 {
        return Ok(found.pop());
    }
    for f in found {
        let _ = std::fs::remove_file(f);
    }
    Ok(None)
}

/// The largest side of a rendered page in pixels: A3 at 300 dpi fits, a page that claims to be
/// metres wide is cut instead of filling the memory.
const RENDER_MAX_SIDE: &str = "5000";

/// Renders one page in grey at 300 dpi (`pdftoppm -gray`, a PGM on stdout), at most
/// 5000 × 5000 pixels of it.
pub fn rendered_page(path: &Path, page: u32) -> Result<Page, PageError> {
    let n = page.to_string();
    let out = poppler(
        "pdftoppm",
        &[
            "-x".as_ref(),
            "0".as_ref(),
            "-y".as_ref(),
            "0".as_ref(),
            "-W".as_ref(),
            RENDER_MAX_SIDE.as_ref(),
            "-H".as_ref(),
            RENDER_MAX_SIDE.as_ref(),
            "-gray".as_ref(),
            "-r".as_ref(),
            RENDER_DPI.as_ref(),
            "-f".as_ref(),
            n.as_ref(),
            "-l".as_ref(),
            n.as_ref(),
            path.as_os_str(),
        ],
    )?;
    parse_pgm(&out)
}

/// Runs a poppler tool under `timeout`; its stdout, or why it failed.
fn poppler(tool: &str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, PageError> {
    let out = Command::new("timeout")
        .arg(POPPLER_SECONDS)
        .arg(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| PageError::Unreadable(format!("{tool} nicht ausführbar: {e}")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(PageError::Unreadable(format!(
            "PDF nicht lesbar ({tool}, Status {})",
            out.status.code().unwrap_or(-1)
        )))
    }
}

/// A binary PGM (`P5`, maxval 255).
fn parse_pgm(bytes: &[u8]) -> Result<Page, PageError> {
    let bad = || PageError::Unreadable("Seitenbild nicht lesbar".into());
    let mut fields = Vec::with_capacity(4);
    let mut at = 0;
    while fields.len() < 4 {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while at < bytes.len() && !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if start == at {
            return Err(bad());
        }
        fields.push(std::str::from_utf8(&bytes[start..at]).map_err(|_| bad())?);
    }
    let parse = |s: &str| s.parse::<u32>().map_err(|_| bad());
    if fields[0] != "P5" || fields[3] != "255" {
        return Err(bad());
    }
    let (width, height) = (parse(fields[1])?, parse(fields[2])?);
    // One whitespace byte after maxval, then the pixels.
    let data = bytes.get(at + 1..).ok_or_else(bad)?;
    Page::new(width, height, data.to_vec())
}

// --- TIFF ---------------------------------------------------------------------------------------

/// The pages of a multi-page TIFF, decoded one after the other.
pub struct TiffPages<R: Read + Seek> {
    decoder: Option<Decoder<R>>,
    first: bool,
}

impl TiffPages<BufReader<std::fs::File>> {
    pub fn open(path: &Path) -> Result<Self, PageError> {
        let file = std::fs::File::open(path).map_err(|e| PageError::Unreadable(e.to_string()))?;
        // The decoder's default limits stay: they bound every buffer a tag could ask for.
        let decoder =
            Decoder::new(BufReader::new(file)).map_err(|e| PageError::Unreadable(e.to_string()))?;
        Ok(Self {
            decoder: Some(decoder),
            first: true,
        })
    }
}

impl<R: Read + Seek> Iterator for TiffPages<R> {
    type Item = Result<Page, PageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let decoder = self.decoder.as_mut()?;
        if !self.first {
            if !decoder.more_images() {
                self.decoder = None;
                return None;
            }
            if let Err(e) = decoder.next_image() {
                // The chain of pages is broken: nothing after this can be found.
                self.decoder = None;
                return Some(Err(PageError::Unreadable(e.to_string())));
            }
        }
        self.first = false;
        Some(tiff_page(decoder))
    }
}

fn tiff_page<R: Read + Seek>(decoder: &mut Decoder<R>) -> Result<Page, PageError> {
    let unreadable = |e: tiff::TiffError| PageError::Unreadable(e.to_string());
    let (width, height) = decoder.dimensions().map_err(unreadable)?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PageError::TooLarge(
            u64::from(width) * u64::from(height) / 1_000_000,
        ));
    }
    let color = decoder.colortype().map_err(unreadable)?;
    if !matches!(
        color,
        ColorType::Gray(8) | ColorType::Gray(1) | ColorType::RGB(8) | ColorType::RGBA(8)
    ) {
        return Err(PageError::Unsupported(format!("{color:?}")));
    }
    // The decoder turns WhiteIsZero (fax) into BlackIsZero itself: 0 is black from here on.
    let DecodingResult::U8(data) = decoder.read_image().map_err(unreadable)? else {
        return Err(PageError::Unsupported(format!("{color:?}")));
    };
    let (w, h) = (index(width), index(height));
    let luma = match color {
        ColorType::Gray(8) => data,
        ColorType::Gray(1) => unpack_bits(&data, w, h),
        ColorType::RGB(8) => data.chunks_exact(3).map(grey).collect(),
        ColorType::RGBA(8) => data.chunks_exact(4).map(grey).collect(),
        other => return Err(PageError::Unsupported(format!("{other:?}"))),
    };
    Page::new(width, height, luma)
}

/// Rows of 1-bit pixels (each row padded to a byte), 1 = white (BlackIsZero).
fn unpack_bits(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let stride = w.div_ceil(8);
    let mut out = Vec::with_capacity(w * h);
    for row in data.chunks(stride).take(h) {
        for x in 0..w {
            let bit = row.get(x / 8).map_or(0, |b| (b >> (7 - x % 8)) & 1);
            out.push(if bit == 1 { 255 } else { 0 });
        }
    }
    out
}

fn grey(px: &[u8]) -> u8 {
    // ITU-R BT.601 luma, in integers.
    let y = (299 * u32::from(px[0]) + 587 * u32::from(px[1]) + 114 * u32::from(px[2])) / 1000;
    u8::try_from(y).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_are_told_by_their_first_bytes() {
        assert_eq!(Format::sniff(b"%PDF-1.7\n"), Some(Format::Pdf));
        assert_eq!(Format::sniff(b"II*\0\x08\0\0\0"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"MM\0*\0\0\0\x08"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n"), Some(Format::Png));
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"GIF89a"), None);
        assert_eq!(Format::sniff(b""), None);
    }

    #[test]
    fn a_pgm_is_read_and_a_truncated_one_refused() {
        let mut pgm = b"P5\n3 2\n255\n".to_vec();
        pgm.extend_from_slice(&[0, 1, 2, 3, 4, 5]);
        let page = parse_pgm(&pgm).unwrap();
        assert_eq!((page.width, page.height), (3, 2));
        assert_eq!(page.luma, vec![0, 1, 2, 3, 4, 5]);
        pgm.pop();
        assert!(parse_pgm(&pgm).is_err());
        assert!(parse_pgm(b"P6\n1 1\n255\n\0\0\0").is_err());
    }

    #[test]
    fn bilevel_rows_are_unpacked_with_their_padding() {
        // Two rows of 10 pixels: 2 bytes each.
        let data = [0b1010_0000, 0b1100_0000, 0b0000_0000, 0b0100_0000];
        let luma = unpack_bits(&data, 10, 2);
        assert_eq!(&luma[..10], &[255, 0, 255, 0, 0, 0, 0, 0, 255, 255]);
        assert_eq!(&luma[10..], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 255]);
    }
}
