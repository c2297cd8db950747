//! Insurers upload scanned KK copies (issue #17): KK copies printed by AU-Relay are rasterised
//! by poppler at 150, 200 and 300 dpi, rotated by a few degrees, given noise, JPEG artefacts and
//! a stamp over the margin, assembled into multi-page PDFs and TIFFs (grey LZW and CCITT G4 made
//! by libtiff's own tools), and uploaded; every page must come back as what it is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use crate::common::{self, demo_practice_id, today, valid_body, TestApp};
use au_relay::auth::token_hash;
use au_relay::domain::{CaptureContext, Certificate, CertificateDraft, Kvnr};
use au_relay::pdf::{self, Copy, PaperSize};
use au_relay::scan::BarcodeRecord;
use au_relay::storage;
use image::GrayImage;
use serde_json::{json, Value};

const IK: &str = "109500969";
const OTHER_IK: &str = "104212059";

// --- certificates -------------------------------------------------------------------------------

/// A valid KVNR for patient `i` (letter and digits from `i`, the check digit computed).
fn kvnr(i: usize) -> String {
    let letter = char::from(b'A' + u8::try_from(i % 26).unwrap());
    let digits = format!("{:08}", 31_000_000 + i * 7_919);
    let stem = Kvnr::parse_structure(&format!("{letter}{digits}0")).unwrap();
    format!("{letter}{digits}{}", stem.expected_check_digit())
}

const NAMES: [(&str, &str); 6] = [
    ("Jürgen", "Müller-Lüdenscheidt"),
    ("Anna", "Schmidt"),
    ("Zoë", "Weiß"),
    ("Łukasz", "Żurek"),
    ("Hans-Peter", "Groß"),
    ("Özlem", "Çelik"),
];

const CODES: [(&str, &str, &str); 6] = [
    ("J06.9", "G", ""),
    ("M54.5", "G", ""),
    ("S82.28", "G", "R"),
    ("E10.20", "V", ""),
    ("F32.1", "G", ""),
    ("S42.3", "G", "L"),
];

/// Certificate `i` of a varied set: every kind, one to six diagnoses, umlauts, causes and
/// measures, free texts with „quotes“ and dashes.
fn variant(i: usize, ik: &str) -> Value {
    let t = today();
    let mut body = valid_body();
    let (first, last) = NAMES[i % NAMES.len()];
    body["patient"]["kvnr"] = json!(kvnr(i));
    body["patient"]["first_name"] = json!(first);
    body["patient"]["last_name"] = json!(last);
    body["insurer"]["ik"] = json!(ik);
    let kind = ["ERST", "FOLGE", "ERST_END", "FOLGE_END"][i % 4];
    body["kind"] = json!(kind);
    let since = t - chrono::Duration::days(i64::try_from(i % 3).unwrap());
    let until = t + chrono::Duration::days(i64::try_from(2 + i % 9).unwrap());
    body["period"] = json!({
        "until": until.to_string(),
        "determined_on": t.to_string(),
    });
    if kind.starts_with("ERST") {
        body["period"]["since"] = json!(since.to_string());
    }
    let n = 1 + i % 6;
    body["diagnoses"] = json!(CODES
        .iter()
        .take(n)
        .map(|(code, certainty, side)| json!({"code": code, "certainty": certainty, "side": side}))
        .collect::<Vec<_>>());
    if i % 5 == 1 {
        body["cause"] = json!("2");
        body["measures"] = json!({"d_arzt": true});
    }
    if i % 7 == 3 {
        body["measures"] = json!({"other": "Physiotherapie – „sanft“", "reintegration": true});
    }
    if i % 4 == 2 {
        body["diagnosis_text"] = json!("Rückenschmerz nach Sturz – ärztlich geprüft");
    }
    body["sick_pay_case"] = json!(i % 6 == 5);
    body
}

/// A certificate that is never captured: the paper exists, AU-Relay holds no document.
fn uncaptured(i: usize) -> Certificate {
    let draft: CertificateDraft = serde_json::from_value(variant(i, IK)).unwrap();
    let (practice, doctor) = au_relay::domain::demo_practice().unwrap();
    let ctx = CaptureContext {
        practice,
        doctors: vec![doctor],
        today: today(),
        document_id: uuid::Uuid::new_v4(),
    };
    Certificate::from_draft(&draft, &ctx).unwrap()
}

fn stored(app: &TestApp, id: &str) -> Certificate {
    let practice = demo_practice_id(&app.db);
    storage::get(
        &mut app.db.conn().unwrap(),
        &practice,
        uuid::Uuid::parse_str(id).unwrap(),
    )
    .unwrap()
    .unwrap()
    .certificate
}

// --- paper and scanner --------------------------------------------------------------------------

/// The KK copy as printed (A5, undelivered: with the barcode).
fn kk_copy(cert: &Certificate) -> Vec<u8> {
    pdf::render(cert, Copy::Kk, PaperSize::A5).unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rasterises page 1 of a PDF in grey at `dpi` (poppler).
fn rasterise(dir: &Path, pdf: &[u8], dpi: u32) -> GrayImage {
    let (input, output) = (dir.join("in.pdf"), dir.join("page"));
    std::fs::write(&input, pdf).unwrap();
    run(Command::new("pdftoppm")
        .args(["-gray", "-png", "-singlefile", "-r", &dpi.to_string()])
        .arg(&input)
        .arg(&output));
    image::open(dir.join("page.png")).unwrap().into_luma8()
}

/// A small deterministic generator for noise and scribbles.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        u32::try_from(self.0 >> 33).unwrap()
    }
}

/// Rotates about the centre by `degrees` (bilinear, white outside), as a sheet fed askew.
fn rotate(img: &GrayImage, degrees: f32) -> GrayImage {
    let (w, h) = img.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (s, c) = degrees.to_radians().sin_cos();
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            255.0
        } else {
            f32::from(img.get_pixel(x as u32, y as u32)[0])
        }
    };
    GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let (sx, sy) = (c * dx + s * dy + cx, -s * dx + c * dy + cy);
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let v = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
            + at(x0 + 1, y0) * fx * (1.0 - fy)
            + at(x0, y0 + 1) * (1.0 - fx) * fy
            + at(x0 + 1, y0 + 1) * fx * fy;
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    })
}

/// Sensor noise: every pixel off by up to ±8 (the JPEG encoder then adds its own).
fn noise(img: &mut GrayImage, rng: &mut Lcg) {
    for p in img.pixels_mut() {
        let d = i32::try_from(rng.next() % 17).unwrap() - 8;
        p[0] = u8::try_from((i32::from(p[0]) + d).clamp(0, 255)).unwrap();
    }
}

/// A receipt stamp with a handwritten scrawl over the bottom and left margins.
fn stamp(img: &mut GrayImage, rng: &mut Lcg) {
    let (w, h) = img.dimensions();
    let thick = (w / 400).max(2);
    let mut dot = |x: u32, y: u32| {
        for dx in 0..thick {
            for dy in 0..thick {
                if x + dx < w && y + dy < h {
                    img.put_pixel(x + dx, y + dy, image::Luma([40]));
                }
            }
        }
    };
    // The frame of "EINGANG 07. DEZ." in the bottom margin.
    let (x0, x1, y0, y1) = (w / 20, w * 2 / 5, h * 94 / 100, h * 99 / 100);
    for x in x0..x1 {
        dot(x, y0);
        dot(x, y1);
    }
    for y in y0..y1 {
        dot(x0, y);
        dot(x1, y);
    }
    // A scrawl inside it and down the left margin.
    let (mut x, mut y) = (x0 + 10, (y0 + y1) / 2);
    for _ in 0..2000 {
        dot(x, y);
        x = (x + 1 + rng.next() % 3).min(x1 - 1);
        y = (y + rng.next() % 5).saturating_sub(2).clamp(y0 + 2, y1 - 2);
    }
    for y in h / 3..h * 2 / 3 {
        dot(w / 200 + (rng.next() % 4), y);
    }
}

/// Through a JPEG encoder at `quality` and back: the artefacts of a scanner's JPEG.
fn jpeg(img: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

/// One scanned page: the KK copy at `dpi`, askew by `degrees`, noisy, stamped; as JPEG bytes.
fn scan(dir: &Path, cert: &Certificate, dpi: u32, degrees: f32, seed: u64) -> (Vec<u8>, u32, u32) {
    let mut rng = Lcg(seed);
    let mut img = rotate(&rasterise(dir, &kk_copy(cert), dpi), degrees);
    noise(&mut img, &mut rng);
    stamp(&mut img, &mut rng);
    let (w, h) = img.dimensions();
    (jpeg(&img, 75), w, h)
}

/// A PDF of scanned pages as a scanner writes it: each page one JPEG image (DCTDecode).
fn pdf_of_scans(pages: &[(Vec<u8>, u32, u32, u32)]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    let n = pages.len();
    let mut object = |out: &mut Vec<u8>, body: &[u8]| {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };
    object(&mut out, b"<< /Type /Catalog /Pages 2 0 R >>");
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 3 + 3 * i)).collect();
    object(
        &mut out,
        format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")).as_bytes(),
    );
    for (i, (jpeg, w, h, dpi)) in pages.iter().enumerate() {
        let (content, image) = (4 + 3 * i, 5 + 3 * i);
        let (pw, ph) = (
            *w as f32 * 72.0 / *dpi as f32,
            *h as f32 * 72.0 / *dpi as f32,
        );
        object(
            &mut out,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2} {ph:.2}] /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {content} 0 R >>"
            )
            .as_bytes(),
        );
        let ops = format!("q {pw:.2} 0 0 {ph:.2} 0 0 cm /Im0 Do Q");
        object(
            &mut out,
            format!("<< /Length {} >>\nstream\n{ops}\nendstream", ops.len()).as_bytes(),
        );
        let mut body = format!(
            "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
            jpeg.len()
        )
        .into_bytes();
        body.extend_from_slice(jpeg);
        body.extend_from_slice(b"\nendstream");
        object(&mut out, &body);
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A multi-page grey TIFF (LZW), as the tiff crate writes it.
fn grey_tiff(pages: &[GrayImage]) -> Vec<u8> {
    use tiff::encoder::{colortype::Gray8, Compression, TiffEncoder};
    let mut out = std::io::Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut out)
        .unwrap()
        .with_compression(Compression::Lzw);
    for p in pages {
        enc.write_image::<Gray8>(p.width(), p.height(), p.as_raw())
            .unwrap();
    }
    out.into_inner()
}

/// A multi-page bilevel TIFF in CCITT G4, made by libtiff's `ppm2tiff` and `tiffcp`.
fn g4_tiff(dir: &Path, pages: &[GrayImage]) -> Vec<u8> {
    let mut singles = Vec::new();
    for (i, p) in pages.iter().enumerate() {
        let (w, h) = p.dimensions();
        let stride = w.div_ceil(8) as usize;
        let mut pbm = format!("P4\n{w} {h}\n").into_bytes();
        for row in p.rows() {
            let mut bits = vec![0u8; stride];
            for (x, px) in row.enumerate() {
                if px[0] < 128 {
                    bits[x / 8] |= 0x80 >> (x % 8);
                }
            }
            pbm.extend_from_slice(&bits);
        }
        let (pbm_path, tif) = (dir.join(format!("p{i}.pbm")), dir.join(format!("p{i}.tif")));
        std::fs::write(&pbm_path, pbm).unwrap();
        run(Command::new("ppm2tiff")
            .args(["-c", "g4", "-R", "200"])
            .arg(&pbm_path)
            .arg(&tif));
        singles.push(tif);
    }
    let out = dir.join("all.tif");
    run(Command::new("tiffcp")
        .args(["-c", "g4"])
        .args(&singles)
        .arg(&out));
    std::fs::read(out).unwrap()
}

// --- the API ------------------------------------------------------------------------------------

fn tokens(app: &TestApp) {
    let mut conn = app.db.conn().unwrap();
    storage::create_insurer_token(&mut conn, &token_hash("kasse-x"), IK, "X").unwrap();
    storage::create_insurer_token(&mut conn, &token_hash("kasse-y"), OTHER_IK, "Y").unwrap();
}

async fn upload(
    app: &TestApp,
    token: &str,
    files: Vec<(&str, &str, Vec<u8>)>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (name, mime, bytes) in files {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(name.to_owned())
                .mime_str(mime)
                .unwrap(),
        );
    }
    app.client
        .post(app.url("/api/insurer/v1/scans"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn results(body: &Value) -> &Vec<Value> {
    body["results"].as_array().expect("results")
}

/// The record of a certificate's barcode, as the API writes it.
fn record_json(cert: &Certificate) -> Value {
    let bytes = pdf::barcode_payload(cert).unwrap();
    serde_json::to_value(BarcodeRecord::parse(&bytes).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_scanned_kk_copies_come_back_as_what_they_are() {
    let app = TestApp::spawn().await;
    tokens(&app);
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(app.capture_id(&variant(i, IK)).await);
    }
    let certs: Vec<Certificate> = ids.iter().map(|id| stored(&app, id)).collect();
    let dpis = [150, 200, 300];
    let angle = |i: usize| [-2.5f32, -1.0, 0.0, 1.5, 3.0][i % 5];

    // 1: a scanner's PDF of 20 JPEG pages; 2: a grey TIFF of 15; 3: a G4 TIFF of 15.
    let pdf_pages: Vec<(Vec<u8>, u32, u32, u32)> = (0..20)
        .map(|i| {
            let dpi = dpis[i % 3];
            let (jpeg, w, h) = scan(dir.path(), &certs[i], dpi, angle(i), i as u64);
            (jpeg, w, h, dpi)
        })
        .collect();
    let grey_pages: Vec<GrayImage> = (20..35)
        .map(|i| {
            let (jpeg, _, _) = scan(dir.path(), &certs[i], dpis[i % 3], angle(i), i as u64);
            image::load_from_memory(&jpeg).unwrap().into_luma8()
        })
        .collect();
    let g4_pages: Vec<GrayImage> = (35..50)
        .map(|i| {
            let dpi = [200, 300][i % 2];
            let mut rng = Lcg(i as u64);
            let mut img = rotate(&rasterise(dir.path(), &kk_copy(&certs[i]), dpi), angle(i));
            stamp(&mut img, &mut rng);
            img
        })
        .collect();
    // 4: the KK copy of another insurer's certificate, one never captured, and a page
    // without a barcode (the patient sent the employer's copy).
    let other = stored(&app, &app.capture_id(&variant(60, OTHER_IK)).await);
    let never = uncaptured(61);
    let ag = rasterise(
        dir.path(),
        &pdf::render(&certs[0], Copy::Ag, PaperSize::A5).unwrap(),
        200,
    );
    let extra = grey_tiff(&[
        rasterise(dir.path(), &kk_copy(&other), 300),
        rasterise(dir.path(), &kk_copy(&never), 300),
        ag,
    ]);

    let r = upload(
        &app,
        "kasse-x",
        vec![
            ("stapel-1.pdf", "application/pdf", pdf_of_scans(&pdf_pages)),
            ("stapel-2.tif", "image/tiff", grey_tiff(&grey_pages)),
            (
                "stapel-3-g4.tif",
                "image/tiff",
                g4_tiff(dir.path(), &g4_pages),
            ),
            ("rest.tif", "image/tiff", extra),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let pages = results(&body);
    assert_eq!(pages.len(), 53, "every page has a result");
    let wrong: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, id)| {
            let p = &pages[*i];
            p["page"] != *i + 1
                || p["outcome"] != "electronic"
                || p["document"]["id"] != id.as_str()
                || p["document"]["delivery_state"] != "pending"
        })
        .map(|(i, _)| format!("page {}: {}", i + 1, pages[i]))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(pages[20]["file"], 2);
    assert_eq!(pages[20]["file_page"], 1);
    assert_eq!(pages[35]["file"], 3);

    // Another insurer's copy: only that it is one.
    let p = &pages[50];
    assert_eq!(p["outcome"], "other_insurer");
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["barcode", "file", "file_page", "outcome", "page"]);
    // Never captured: the whole record, field by field.
    let p = &pages[51];
    assert_eq!(p["outcome"], "paper_only");
    assert_eq!(p["record"], record_json(&never));
    assert_eq!(p["record"]["kvnr"], kvnr(61));
    // No barcode.
    assert_eq!(pages[52]["outcome"], "unreadable");
    assert_eq!(pages[52]["reason"], "no_barcode");
    assert_eq!(
        body["counts"],
        json!({"electronic": 50, "paper_only": 1, "ambiguous": 0, "unreadable": 1, "other_insurer": 1})
    );

    // The same result again, as JSON and as CSV; the other insurer finds nothing.
    let again: Value = app
        .client
        .get(app.url(&location))
        .bearer_auth("kasse-x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(results(&again), pages);
    let csv = app
        .client
        .get(app.url(&format!("{location}/csv")))
        .bearer_auth("kasse-x")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 54);
    assert!(lines[1].starts_with(&format!("1;1;1;1;electronic;{}", ids[0])));
    assert!(lines[52].contains(&kvnr(61)), "{}", lines[52]);
    let foreign = app
        .client
        .get(app.url(&location))
        .bearer_auth("kasse-y")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);

    // The matched documents carry the paper mark: in the pull, and on the practice's page.
    let pulled: Value = app
        .client
        .get(app.url("/api/insurer/v1/documents?limit=100"))
        .bearer_auth("kasse-x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = pulled["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    assert!(items
        .iter()
        .all(|i| i["paper_copy_received_at"].is_string()));
    app.login().await;
    let detail = app.get_text(&format!("/certificates/{}", ids[7])).await;
    assert!(detail.contains("Papier-Ausfertigung bei der Krankenkasse eingegangen"));
    let other_detail = app
        .get_text(&format!("/certificates/{}", other.document_id))
        .await;
    assert!(!other_detail.contains("Papier-Ausfertigung bei der Krankenkasse eingegangen"));
}

async fn upload_png(app: &TestApp, img: &GrayImage) -> Value {
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let r = app
        .client
        .post(app.url("/api/insurer/v1/scans"))
        .bearer_auth("kasse-x")
        .header("Content-Type", "image/png")
        .body(png.into_inner())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_certificate_captured_twice_is_ambiguous_and_a_corrected_one_is_told_apart() {
    let app = TestApp::spawn().await;
    tokens(&app);
    let body = variant(3, IK);
    let first = app.capture_id(&body).await;
    let second = app.capture_id(&body).await;
    let mut corrected = body.clone();
    corrected["diagnosis_text"] = json!("nach Rücksprache korrigiert");
    let third = app.capture_id(&corrected).await;
    let dir = tempfile::tempdir().unwrap();

    // The paper of the first: the second is the same in every field, the third is not.
    let scan = rasterise(dir.path(), &kk_copy(&stored(&app, &first)), 200);
    let answer = upload_png(&app, &scan).await;
    let p = &results(&answer)[0];
    assert_eq!(p["outcome"], "ambiguous");
    let listed: Vec<&str> = p["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [first.as_str(), second.as_str()]);
    // Nothing is marked while it is unclear.
    let practice = demo_practice_id(&app.db);
    let mark = storage::paper_received_at(&mut app.db.conn().unwrap(), &practice, &first).unwrap();
    assert_eq!(mark, None);

    // The paper of the corrected one is that one.
    let scan = rasterise(dir.path(), &kk_copy(&stored(&app, &third)), 200);
    let answer = upload_png(&app, &scan).await;
    let p = &results(&answer)[0];
    assert_eq!(p["outcome"], "electronic");
    assert_eq!(p["document"]["id"], third.as_str());
}

#[tokio::test]
async fn a_pdf_as_printed_is_read_by_rendering_it() {
    // Not a scan: the KK copy's own vector PDF (poppler renders it at 300 dpi).
    let app = TestApp::spawn().await;
    tokens(&app);
    let id = app.capture_id(&variant(8, IK)).await;
    let r = app
        .client
        .post(app.url("/api/insurer/v1/scans"))
        .bearer_auth("kasse-x")
        .header("Content-Type", "application/pdf")
        .body(kk_copy(&stored(&app, &id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(results(&body)[0]["outcome"], "electronic");
    assert_eq!(results(&body)[0]["document"]["id"], id.as_str());
}

#[tokio::test]
async fn uploads_are_refused_clearly_when_too_large_of_another_type_or_broken() {
    let mut config = common::config();
    config.max_scan_bytes = 100_000;
    let app = TestApp::spawn_with(config).await;
    tokens(&app);
    let big = vec![b'%'; 200_000];
    let r = app
        .client
        .post(app.url("/api/insurer/v1/scans"))
        .bearer_auth("kasse-x")
        .header("Content-Type", "application/pdf")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Anfrage zu groß"));
    let r = upload(&app, "kasse-x", vec![("a.pdf", "application/pdf", big)]).await;
    assert_eq!(r.status(), 413);

    let r = app
        .client
        .post(app.url("/api/insurer/v1/scans"))
        .bearer_auth("kasse-x")
        .header("Content-Type", "image/gif")
        .body("GIF89a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // A broken PDF and a file that is no image are results, not errors.
    let r = upload(
        &app,
        "kasse-x",
        vec![
            (
                "kaputt.pdf",
                "application/pdf",
                b"%PDF-1.4\nnonsense".to_vec(),
            ),
            ("notiz.txt", "text/plain", b"Hallo".to_vec()),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let pages = results(&body);
    assert_eq!(pages.len(), 2);
    assert!(pages.iter().all(|p| p["outcome"] == "unreadable"));
    assert_eq!(pages[0]["reason"], "unreadable_page");
    assert_eq!(pages[1]["reason"], "unsupported_image");
    // Nothing uploaded without a token.
    let r = app
        .client
        .post(app.url("/api/insurer/v1/scans"))
        .header("Content-Type", "image/png")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn an_insurer_clerk_uploads_on_the_page_and_sees_nothing_of_practices() {
    let app = TestApp::spawn().await;
    let id = app.capture_id(&variant(4, IK)).await;
    let dir = tempfile::tempdir().unwrap();
    let scan = {
        let (jpeg, w, h) = scan(dir.path(), &stored(&app, &id), 200, 1.0, 4);
        pdf_of_scans(&[(jpeg, w, h, 200)])
    };
    // The demo clerk of IK 109500969.
    let csrf = app.login_as("kasse", "kasse").await;
    let page = app.get_text("/kasse/scans").await;
    assert!(page.contains("Papier-AU abgleichen"));
    let upload_id = common::hidden(&page, "upload");
    for forbidden in [
        "/certificates",
        "/queue",
        "/operator",
        &format!("/certificates/{id}"),
    ] {
        let r = app.client.get(app.url(forbidden)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{forbidden}");
    }
    // Without the form's CSRF token nothing is taken.
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(scan.clone())
            .file_name("scan.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    let r = app
        .client
        .post(app.url("/kasse/scans"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("upload", upload_id.clone())
        .part(
            "files",
            reqwest::multipart::Part::bytes(scan)
                .file_name("scan.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let r = app
        .client
        .post(app.url("/kasse/scans"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/kasse/scans/{upload_id}")
    );
    let result = app.get_text(&format!("/kasse/scans/{upload_id}")).await;
    assert!(result.contains("elektronisch vorhanden"), "{result}");
    assert!(result.contains(&id));
    let progress: Value = app
        .client
        .get(app.url(&format!("/kasse/scans/{upload_id}/fortschritt")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress, json!({"state": "done", "pages": 1}));
    let csv = app
        .client
        .get(app.url(&format!("/kasse/scans/{upload_id}/csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.text().await.unwrap().contains(&id));
    // The practice sees that the paper arrived, with who matched it in its audit trail.
    app.login().await;
    let detail = app.get_text(&format!("/certificates/{id}")).await;
    assert!(detail.contains("Papier-Ausfertigung bei der Krankenkasse eingegangen"));
}

#[tokio::test]
async fn the_operator_creates_insurer_accounts_with_an_audit_row_as_the_cli_does() {
    let app = TestApp::spawn().await;
    let csrf = app.login_as("operator", "operator").await;
    let r = app
        .client
        .post(app.url("/operator/insurer-users"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("ik", "104212059"),
            ("username", "bkk.sachbearbeitung"),
            ("password", "Lange-Passphrase-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = app.get_text("/operator").await;
    assert!(page.contains("bkk.sachbearbeitung"));
    let r = app
        .client
        .post(app.url("/operator/insurer-users"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("ik", "12345"),
            ("username", "x"),
            ("password", "kurz"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("Kostenträgerkennung"), "{page}");

    // The command line writes the same audit row.
    let out = Command::new(env!("CARGO_BIN_EXE_au-relay"))
        .args([
            "user",
            "add",
            "--role",
            "insurer",
            "--ik",
            "104212059",
            "--username",
            "bkk.zwei",
        ])
        .env("AU_RELAY_DATABASE_URL", &app.database_url)
        .env("AU_RELAY_PASSWORD", "Lange-Passphrase-2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filter = storage::AuditFilter {
        action: Some("user.added".into()),
        ..Default::default()
    };
    let (rows, _) =
        storage::audit_entries(&mut app.db.conn().unwrap(), None, &filter, 0, 100).unwrap();
    let details: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.actor.split(':').next().unwrap().to_owned(),
                r.detail.clone(),
            )
        })
        .collect();
    assert!(details.contains(&(
        "web".into(),
        "bkk.sachbearbeitung (insurer, IK 104212059)".into()
    )));
    assert!(details.contains(&("cli".into(), "bkk.zwei (insurer, IK 104212059)".into())));
}

#[tokio::test]
async fn two_kk_copies_scanned_on_one_sheet_are_two_results_of_one_page() {
    let app = TestApp::spawn().await;
    tokens(&app);
    let (a, b) = (
        app.capture_id(&variant(10, IK)).await,
        app.capture_id(&variant(11, IK)).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let left = rasterise(dir.path(), &kk_copy(&stored(&app, &a)), 200);
    let right = rasterise(dir.path(), &kk_copy(&stored(&app, &b)), 200);
    // An A4 sheet across with both A5 copies on it.
    let (w, h) = left.dimensions();
    let mut sheet = GrayImage::from_pixel(2 * w + 60, h + 40, image::Luma([255]));
    image::imageops::replace(&mut sheet, &left, 20, 20);
    image::imageops::replace(&mut sheet, &right, i64::from(w) + 40, 20);
    let mut png = std::io::Cursor::new(Vec::new());
    sheet.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let r = app
        .client
        .post(app.url("/api/insurer/v1/scans"))
        .bearer_auth("kasse-x")
        .header("Content-Type", "image/png")
        .body(png.into_inner())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["pages"], 1);
    let found: std::collections::BTreeSet<(i64, &str, &str)> = results(&body)
        .iter()
        .map(|p| {
            assert_eq!(p["page"], 1);
            (
                p["barcode"].as_i64().unwrap(),
                p["outcome"].as_str().unwrap(),
                p["document"]["id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let ids: std::collections::BTreeSet<&str> = found.iter().map(|f| f.2).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()].into_iter().collect());
    assert!(found.iter().all(|f| f.1 == "electronic"));
    assert_eq!(
        found.iter().map(|f| f.0).collect::<Vec<_>>(),
        [1, 2],
        "{found:?}"
    );
}
