//! Paper copies, checked with the real tools: pdftotext, pdffonts, qpdf, pdftoppm, and rxing
//! reading the PDF417 back from the rasterised page.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use au_relay::domain::{demo_practice, Certificate};
use au_relay::pdf::{
    self, barcode_payload, render, render_blank, render_prefilled, render_set, samples, Copy,
    PaperSize,
};
use rxing::BarcodeFormat;

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} not runnable: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn text_of(path: &Path) -> String {
    tool("pdftotext", &[path.to_str().unwrap(), "-"])
}

/// pdftotext output with whitespace runs collapsed, for phrases that may wrap.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn d(date: chrono::NaiveDate) -> String {
    date.format("%d.%m.%Y").to_string()
}

/// Every value of the Personalienfeld, the dates and the stamp.
fn common_values(c: &Certificate) -> Vec<String> {
    let mut v = vec![
        c.coverage.name.clone(),
        c.patient.last_name.clone(),
        c.patient.first_name.clone(),
        d(c.patient.birth_date),
        format!("{} {}", c.patient.street, c.patient.house_number),
        format!("{} {}", c.patient.postal_code, c.patient.city),
        c.coverage.ik.as_str().to_owned(),
        c.patient.insured_number().to_owned(),
        c.doctor.lanr.as_str().to_owned(),
        d(c.issued_on),
        d(c.period.until),
        d(c.period.determined_on),
        c.practice.name.clone(),
        c.practice.street.clone(),
        c.doctor.name.clone(),
        c.doctor.specialty.clone(),
        c.document_id.to_string(),
    ];
    if let Some(since) = c.period.since {
        v.push(d(since));
    }
    if let Some(wop) = &c.coverage.wop {
        v.push(wop.clone());
    }
    v
}

fn diagnosis_values(c: &Certificate) -> Vec<String> {
    let mut v: Vec<String> = c.diagnoses.iter().map(ToString::to_string).collect();
    v.extend(c.diagnosis_text.clone());
    v.extend(c.measures.other.clone());
    v
}

fn checked(text: &str, label: &str) -> bool {
    flat(text).contains(&format!("☒ {label}"))
}

#[test]
fn every_copy_of_every_sample_shows_every_field_value() {
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in samples::all().unwrap() {
        for copy in Copy::ALL {
            let path = write(
                dir.path(),
                &format!("{name}-{}.pdf", copy.code()),
                &render(&c, copy, PaperSize::A5).unwrap(),
            );
            let text = flat(&text_of(&path));
            let mut expected = common_values(&c);
            if copy != Copy::Ag {
                expected.extend(diagnosis_values(&c));
                // Blacked out on the employer's copy.
                expected.push(format!(
                    "{} {} {} {}",
                    c.coverage.insured_type.code(),
                    c.coverage.special_group,
                    c.coverage.dmp,
                    c.legal_basis
                ));
                expected.push(c.practice.bsnr.as_str().to_owned());
            }
            for value in expected {
                assert!(
                    text.contains(&flat(&value)),
                    "{name}/{copy:?}: {value:?} missing in\n{text}"
                );
            }
            assert!(text.contains(copy.label()), "{name}/{copy:?}: label");
        }
    }
}

#[test]
fn umlauts_and_sharp_s_extract_exactly() {
    let c = samples::erst().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "v.pdf",
        &render(&c, Copy::V, PaperSize::A5).unwrap(),
    );
    let text = text_of(&path);
    for word in [
        "Müller-Lüdenscheidt",
        "Jürgen",
        "Straße",
        "Große Straße 5a",
        "Arbeitsunfähigkeits",
        "Ausfertigung für Versicherte",
        "Maßnahmen",
    ] {
        assert!(text.contains(word), "{word} missing in\n{text}");
    }
}

#[test]
fn the_employer_copy_never_shows_a_diagnosis_a_hint_a_cause_or_a_measure() {
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in samples::all().unwrap() {
        let path = write(
            dir.path(),
            &format!("{name}-ag.pdf"),
            &render(&c, Copy::Ag, PaperSize::A5).unwrap(),
        );
        let text = flat(&text_of(&path));
        for d in &c.diagnoses {
            assert!(!text.contains(d.code.as_str()), "{name}: ICD code on AG");
        }
        for secret in diagnosis_values(&c) {
            assert!(!text.contains(&flat(&secret)), "{name}: {secret:?} on AG");
        }
        for label in [
            "ICD-10",
            "Diagnose(n)",
            "Hinweise zur Diagnose",
            "Versorgungsleiden",
            "Rehabilitation",
            "Wiedereingliederung",
            "Krankengeld",
        ] {
            assert!(!text.contains(label), "{name}: {label:?} on AG");
        }
        assert!(text.contains("Ausfertigung zur Vorlage beim Arbeitgeber"));
        assert!(text.contains("mit Angaben über die Diagnose"), "AG notice");
        // What the KBV AG stylesheet shows: "sonstiger Unfall"; what it blacks out: Status,
        // Betriebsstätten-Nr. and the BSNR in the stamp.
        assert_eq!(
            checked(&text, "sonstiger Unfall, Unfallfolgen"),
            c.cause == Some(au_relay::domain::Cause::Accident),
            "{name}"
        );
        assert!(
            !text.contains(c.practice.bsnr.as_str()),
            "{name}: BSNR on AG"
        );
        assert!(
            text.contains(c.doctor.lanr.as_str()),
            "{name}: the Arzt-Nr. stays"
        );
        let status = format!(
            "{} {} {}",
            c.coverage.insured_type.code(),
            c.coverage.special_group,
            c.coverage.dmp
        );
        assert!(!text.contains(&status), "{name}: Status on AG");
    }
}

/// Personengruppe 04 and DMP 01 are health data the employer must not read: the AG copy shows
/// neither; the insurer's and the patient's copies show the whole Status (four parts).
#[test]
fn the_employer_copy_of_a_personengruppe_04_dmp_01_patient_shows_neither() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = samples::erst().unwrap();
    c.coverage.special_group = "04".into();
    c.coverage.dmp = "01".into();
    let ag = write(
        dir.path(),
        "ag.pdf",
        &render(&c, Copy::Ag, PaperSize::A5).unwrap(),
    );
    let text = flat(&text_of(&ag));
    assert!(!text.contains(" 04 "), "{text}");
    assert!(!text.contains(" 01 00"), "{text}");
    for copy in [Copy::Kk, Copy::V] {
        let path = write(
            dir.path(),
            "x.pdf",
            &render(&c, copy, PaperSize::A5).unwrap(),
        );
        let text = flat(&text_of(&path));
        let status = format!("{} 04 01 {}", c.coverage.insured_type.code(), c.legal_basis);
        assert!(text.contains(&status), "{copy:?}: {text}");
    }
}

#[test]
fn the_employer_copy_carries_no_barcode_and_no_hidden_diagnosis_bytes() {
    let c = samples::full().unwrap();
    let ag = render(&c, Copy::Ag, PaperSize::A5).unwrap();
    let kk = render(&c, Copy::Kk, PaperSize::A5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ag_path = write(dir.path(), "ag.pdf", &ag);
    // Nothing in the metadata either.
    let info = tool("pdfinfo", &[ag_path.to_str().unwrap()]);
    assert!(
        !info.contains("S82.28") && !info.contains("Sturz"),
        "{info}"
    );
    // The KK copy draws hundreds of barcode rectangles, the AG copy none.
    assert!(kk.len() > ag.len());
    assert!(decode_page(&ag_path, 1).is_none(), "no PDF417 on AG");
}

#[test]
fn checkboxes_follow_kind_cause_measures_and_sick_pay() {
    let dir = tempfile::tempdir().unwrap();
    let text = |c: &Certificate, copy| {
        let path = write(
            dir.path(),
            "x.pdf",
            &render(c, copy, PaperSize::A5).unwrap(),
        );
        text_of(&path)
    };
    let erst = text(&samples::erst().unwrap(), Copy::V);
    assert!(checked(&erst, "Erstbescheinigung"));
    assert!(!checked(&erst, "Folgebescheinigung"));
    assert!(!checked(&erst, "Endbescheinigung"));
    assert!(!checked(&erst, "Arbeitsunfall"));

    let folge = text(&samples::folge().unwrap(), Copy::V);
    assert!(checked(&folge, "Folgebescheinigung"));
    assert!(checked(&folge, "Versorgungsleiden (z. B. SER)"));

    let erst_end = text(&samples::erst_end().unwrap(), Copy::V);
    assert!(checked(&erst_end, "Erstbescheinigung"));
    assert!(checked(&erst_end, "Endbescheinigung"));
    assert!(checked(
        &erst_end,
        "ab 7. AU-Woche oder sonstiger Krankengeldfall"
    ));
    assert!(checked(&erst_end, "sonstiger Unfall, Unfallfolgen"));

    let full = samples::full().unwrap();
    for copy in [Copy::Kk, Copy::V] {
        let t = text(&full, copy);
        for label in [
            "Folgebescheinigung",
            "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit",
            "dem Durchgangsarzt zugewiesen",
            "Leistungen zur medizinischen Rehabilitation",
            "stufenweise Wiedereingliederung",
            "Sonstige:",
            "ab 7. AU-Woche oder sonstiger Krankengeldfall",
            "Endbescheinigung",
        ] {
            assert!(checked(&t, label), "{copy:?}: {label} not ticked");
        }
    }
    let ag = text(&full, Copy::Ag);
    assert!(checked(
        &ag,
        "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit"
    ));
    assert!(checked(&ag, "dem Durchgangsarzt zugewiesen"));
}

#[test]
fn the_patient_copy_explains_the_deadline_for_confirming_continuation() {
    let c = samples::erst_end().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "v.pdf",
        &render(&c, Copy::V, PaperSize::A5).unwrap(),
    );
    let text = flat(&text_of(&path));
    assert!(text.contains("Hinweis für Versicherte zum Kranken- und Verletztengeld"));
    assert!(text.contains(
        "spätestens an dem Werktag, der auf den letzten Tag der aktuellen \
         Arbeitsunfähigkeitsbescheinigung folgt"
    ));
    assert!(text.contains("Weitere Informationen erhalten Sie bei Ihrer Krankenkasse."));
}

#[test]
fn the_font_is_embedded_as_a_subset() {
    let c = samples::full().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "kk.pdf",
        &render(&c, Copy::Kk, PaperSize::A5).unwrap(),
    );
    let fonts = tool("pdffonts", &[path.to_str().unwrap()]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "{fonts}");
    for row in rows {
        let name = row.split_whitespace().next().unwrap();
        assert!(name.contains('+'), "subset tag missing: {row}");
        assert!(name.contains("DejaVu"), "{row}");
        let cols: Vec<&str> = row.split_whitespace().collect();
        // name type encoding emb sub uni object ID
        let n = cols.len();
        assert_eq!(cols[n - 5], "yes", "embedded: {row}");
        assert_eq!(cols[n - 4], "yes", "subset: {row}");
        assert_eq!(cols[n - 3], "yes", "ToUnicode: {row}");
    }
}

#[test]
fn qpdf_finds_no_structural_error_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let (practice, doctor) = demo_practice().unwrap();
    let c = samples::long_names().unwrap();
    let outputs = [
        ("kk-a5", render(&c, Copy::Kk, PaperSize::A5).unwrap()),
        ("kk-a4", render(&c, Copy::Kk, PaperSize::A4).unwrap()),
        (
            "set",
            render_set(&c, &[Copy::Kk, Copy::V, Copy::Ag], PaperSize::A5).unwrap(),
        ),
        ("blank", render_blank(PaperSize::A5).unwrap()),
        (
            "prefilled",
            render_prefilled(&c.patient, &c.coverage, &practice, &doctor, PaperSize::A4).unwrap(),
        ),
    ];
    for (name, bytes) in outputs {
        let path = write(dir.path(), &format!("{name}.pdf"), &bytes);
        let out = tool("qpdf", &["--check", path.to_str().unwrap()]);
        assert!(
            out.contains("No syntax or stream encoding errors"),
            "{name}: {out}"
        );
    }
}

#[test]
fn print_all_gives_one_pdf_with_one_page_per_copy_in_order() {
    let c = samples::erst().unwrap();
    let bytes = render_set(&c, &Copy::PRINT_ALL, PaperSize::A5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "set.pdf", &bytes);
    let info = flat(&tool("pdfinfo", &[path.to_str().unwrap()]));
    assert!(info.contains("Pages: 2"), "{info}");
    assert!(info.contains("Page size: 419.528 x 595.276 pts"), "{info}");
    let page = |n: &str| {
        tool(
            "pdftotext",
            &["-f", n, "-l", n, path.to_str().unwrap(), "-"],
        )
    };
    assert!(page("1").contains("Ausfertigung zur Vorlage bei der Krankenkasse"));
    assert!(page("2").contains("Ausfertigung für Versicherte"));
    assert!(decode_page(&path, 1).is_some());
    assert!(
        decode_page(&path, 2).is_none(),
        "barcode only on the KK copy"
    );
    assert!(render_set(&c, &[], PaperSize::A5).is_err());
}

#[test]
fn a4_is_the_same_form_on_the_larger_sheet() {
    let c = samples::erst().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a4.pdf",
        &render(&c, Copy::Kk, PaperSize::A4).unwrap(),
    );
    let info = flat(&tool("pdfinfo", &[path.to_str().unwrap()]));
    assert!(info.contains("Page size: 595.276 x 841.89 pts"), "{info}");
    assert!(text_of(&path).contains("Müller-Lüdenscheidt"));
    assert_eq!(decode_page(&path, 1), Some(barcode_payload(&c).unwrap()));
}

#[test]
fn the_blank_and_the_prefilled_form_have_no_data_they_should_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let blank = write(
        dir.path(),
        "blank.pdf",
        &render_blank(PaperSize::A5).unwrap(),
    );
    let text = text_of(&blank);
    assert!(!text.contains('☒'), "nothing ticked on the blank form");
    assert!(text.contains("Vordruck zum Ausfüllen von Hand"));
    assert!(decode_page(&blank, 1).is_none());

    let c = samples::erst().unwrap();
    let bytes = render_prefilled(
        &c.patient,
        &c.coverage,
        &c.practice,
        &c.doctor,
        PaperSize::A5,
    )
    .unwrap();
    let pre = write(dir.path(), "pre.pdf", &bytes);
    let text = flat(&text_of(&pre));
    for v in [
        "Müller-Lüdenscheidt, Jürgen",
        "A123456780",
        "109500969",
        "031234567",
        "838382202",
        "Praxis Dr. Muster",
    ] {
        assert!(text.contains(v), "{v} missing");
    }
    assert!(!text.contains('☒'));
    assert!(!text.contains("J06.9"));
    assert!(!text.contains(&d(c.period.until)));
}

fn gematik(file: &str) -> Certificate {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gematik-eau/KBV_PR_EAU_Bundle")
        .join(file);
    au_relay::fhir::read(&std::fs::read(path).unwrap())
        .unwrap()
        .certificate
}

/// Each word of a page with its box in points: (text, x_min, y_min, y_max).
fn words(pdf: &Path) -> Vec<(String, f32, f32, f32)> {
    let html = tool("pdftotext", &["-bbox", pdf.to_str().unwrap(), "-"]);
    let attr = |l: &str, name: &str| -> f32 {
        l.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap()
    };
    html.lines()
        .filter(|l| l.trim_start().starts_with("<word "))
        .map(|l| {
            let text = l.split('>').nth(1).unwrap().trim_end_matches("</word");
            (
                text.to_owned(),
                attr(l, "xMin"),
                attr(l, "yMin"),
                attr(l, "yMax"),
            )
        })
        .collect()
}

#[test]
fn the_patients_name_lines_and_postfach_print_as_the_kbv_stylesheets_print_them() {
    // Gematik SKT example: family "Graf Freiherr von Schaumberg" with its parts, a Postfach.
    let c = gematik("1.2.1/valid/Beispiel_13-eAU_ERST_SKT_KVK.xml");
    let dir = tempfile::tempdir().unwrap();
    for copy in Copy::ALL {
        let pdf = write(
            dir.path(),
            "c.pdf",
            &render(&c, copy, PaperSize::A5).unwrap(),
        );
        let text = flat(&text_of(&pdf));
        // KBV: own name, then title, first name, Namenszusatz, Vorsatzwort; "Postfach: …".
        for line in [
            "Schaumberg, Karl-Friederich von Graf Freiherr",
            "Postfach: 124589 D 12489 Berlin",
        ] {
            assert!(text.contains(line), "{copy:?}: {line} in {text}");
        }
    }
}

#[test]
fn the_arzt_nr_is_the_number_the_kbv_stylesheets_choose_and_the_stamp_stays_above_the_signature_line(
) {
    // An ASV author without LANR, attested by a doctor with LANR and Telematik-ID: two
    // identifiers, so the author's number (the ASV-Fachgruppennummer) as the KBV prints it.
    let mut asv = gematik("1.2/valid/EEAU0_3f6e664d-2bfc-4eb7-9dc1-29ab73259e92.xml");
    assert_eq!(asv.doctor_number(), "555555472");
    // The attester's LANR alone: the one LANR there is.
    asv.responsible.as_mut().unwrap().telematik_id = None;
    assert_eq!(asv.doctor_number(), "838382202");
    let payload = barcode_payload(&asv).unwrap();
    assert_eq!(
        payload.split(|b| *b == b'\t').nth(10),
        Some(&b"838382202"[..])
    );
    // Neither doctor transmitted with a number: the field and barcode field 11 stay empty.
    let none = gematik(
        "1.2.1/valid/Beispiel_9_-eau-angabeIdentifikatorVerantwortlichePersonPflicht_positiv_2.xml",
    );
    assert_eq!(none.doctor_number(), "");
    let payload = barcode_payload(&none).unwrap();
    assert_eq!(payload.split(|b| *b == b'\t').nth(10), Some(&b""[..]));
    let dir = tempfile::tempdir().unwrap();
    let pdf = write(
        dir.path(),
        "none.pdf",
        &render(&none, Copy::Kk, PaperSize::A5).unwrap(),
    );
    assert!(
        !text_of(&pdf).contains("999999900"),
        "no pseudo-LANR on paper"
    );

    // A Weiterbildung with fax, e-mail and a responsible doctor fills the stamp: every line of
    // it stays above the signature line (stamp from x = 88 mm, line at 95 mm = 269.3 pt).
    let full = gematik("1.2.1/valid/Beispiel_11-eAU_FOLGE_Weiterbildung.xml");
    assert!(full.responsible.is_some() && full.practice.more.email.is_some());
    for copy in Copy::ALL {
        let pdf = write(
            dir.path(),
            "full.pdf",
            &render(&full, copy, PaperSize::A5).unwrap(),
        );
        let words = words(&pdf);
        let caption = words
            .iter()
            .find(|w| w.0 == "Unterschrift" && w.1 > 249.4 && w.2 > 260.0)
            .expect("signature caption");
        // The stamp's contents: below its heading (57.5 mm), above its bottom (99 mm = 280.6
        // pt), but not the caption under the line.
        let on_caption_line = |y_min: f32| (y_min - caption.2).abs() < 1.0;
        for (text, x, y_min, y_max) in &words {
            let caption_word = matches!(text.as_str(), "Unterschrift" | "des" | "Arztes");
            if *x > 249.4
                && *y_min > 165.0
                && *y_min < 280.6
                && !(caption_word && on_caption_line(*y_min))
            {
                assert!(*y_max <= 269.3, "{copy:?}: {text} reaches {y_max} pt");
            }
        }
        let text = flat(&text_of(&pdf));
        assert!(
            text.contains("LANR 999999900"),
            "{copy:?}: responsible LANR: {text}"
        );
    }
}

#[test]
fn names_at_maximum_length_stay_inside_the_personalienfeld() {
    let c = samples::long_names().unwrap();
    assert_eq!(c.patient.last_name.chars().count(), 45);
    assert_eq!(c.patient.first_name.chars().count(), 45);
    assert_eq!(c.coverage.name.chars().count(), 45);
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "kk.pdf",
        &render(&c, Copy::Kk, PaperSize::A5).unwrap(),
    );
    // -bbox: every word with its box; the Personalienfeld ends at 84 mm = 238.1 pt.
    let html = tool("pdftotext", &["-bbox", path.to_str().unwrap(), "-"]);
    assert_eq!(c.patient.title.as_deref().map(str::len), Some(20));
    let given = c.patient.given_line();
    assert_eq!(given.chars().count(), 108, "every part at its maximum");
    for word in c
        .patient
        .last_name
        .split_whitespace()
        .chain(given.split_whitespace())
    {
        let line = html
            .lines()
            .find(|l| {
                l.ends_with(&format!(">{word}</word>")) || l.ends_with(&format!(">{word},</word>"))
            })
            .unwrap_or_else(|| panic!("{word} not found"));
        let x_max: f32 = line
            .split("xMax=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(x_max <= 238.2, "{word} ends at {x_max} pt");
    }
}

#[test]
fn the_barcode_on_the_kk_copy_decodes_to_the_exact_payload_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in samples::all().unwrap() {
        let path = write(
            dir.path(),
            &format!("{name}.pdf"),
            &render(&c, Copy::Kk, PaperSize::A5).unwrap(),
        );
        let expected = barcode_payload(&c).unwrap();
        assert_eq!(decode_page(&path, 1), Some(expected), "{name}");
    }
}

/// Characters (issue #16), decided once in `domain::text`: a certificate with „–“ and names in
/// other scripts prints all three copies; the printed text keeps what the font has and
/// transliterates the rest; the barcode carries ISO 8859-15 (`–` → `-`, `„“` → `"`).
#[test]
fn typographic_marks_and_other_scripts_print_on_every_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = samples::full().unwrap();
    c.patient.last_name = "Иванова-Łódź".into();
    c.patient.first_name = "Νίκος".into();
    c.diagnosis_text = Some("„Sturz“ – Knie, Ł".into());
    c.measures.other = Some("Physio … 2×/Woche".into());
    let all = write(
        dir.path(),
        "all.pdf",
        &render_set(&c, &Copy::ALL, PaperSize::A5).unwrap(),
    );
    tool("qpdf", &["--check", all.to_str().unwrap()]);
    let text = flat(&text_of(&all));
    assert_eq!(text.matches("Ivanova-Łódź").count(), 3, "{text}");
    assert_eq!(text.matches("Nikos").count(), 3);
    assert!(
        text.contains("„Sturz“ – Knie, Ł"),
        "the font prints „–“ as typed"
    );
    let kk = write(
        dir.path(),
        "kk.pdf",
        &render(&c, Copy::Kk, PaperSize::A5).unwrap(),
    );
    let payload = decode_page(&kk, 1).expect("a barcode");
    let fields: Vec<&[u8]> = payload.split(|&b| b == b'\t').collect();
    assert_eq!(fields[27], b"\"Sturz\" - Knie, L");
    assert_eq!(fields[23], b"Physio ... 2\xD7/Woche");
}

#[test]
fn copy_and_paper_names_parse() {
    assert_eq!(Copy::parse("kk").unwrap(), Copy::Kk);
    assert_eq!(Copy::parse("AG").unwrap(), Copy::Ag);
    assert_eq!(Copy::parse("v").unwrap(), Copy::V);
    assert!(matches!(
        Copy::parse("x"),
        Err(pdf::PdfError::UnknownCopy(_))
    ));
    assert_eq!(PaperSize::default(), PaperSize::A5);
    assert_eq!(PaperSize::parse("a4").unwrap(), PaperSize::A4);
}

/// Rasterises one page with pdftoppm (greyscale, 300 dpi) and reads a PDF417 with rxing.
fn decode_page(pdf: &Path, page: u32) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("page");
    let n = page.to_string();
    tool(
        "pdftoppm",
        &[
            "-gray",
            "-r",
            "300",
            "-f",
            &n,
            "-l",
            &n,
            "-singlefile",
            pdf.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    let pgm = std::fs::read(dir.path().join("page.pgm")).unwrap();
    let (width, height, pixels) = parse_pgm(&pgm);
    let result =
        rxing::helpers::detect_in_luma(pixels, width, height, Some(BarcodeFormat::PDF_417)).ok()?;
    Some(
        result
            .getText()
            .chars()
            .map(|ch| u8::try_from(u32::from(ch)).expect("one byte per character"))
            .collect(),
    )
}

/// Binary PGM (P5, maxval 255) as written by pdftoppm.
fn parse_pgm(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    assert_eq!(fields[0], "P5");
    let width: u32 = fields[1].parse().unwrap();
    let height: u32 = fields[2].parse().unwrap();
    let pixels = bytes[i + 1..].to_vec();
    assert_eq!(pixels.len(), (width * height) as usize);
    (width, height, pixels)
}

/// Writes the sample PDFs for `scripts/pdf-check-barcode.sh` and the pictures in `docs/`:
/// `PDF_SAMPLES_DIR=/tmp/x cargo test --test it -- --ignored pdf::write_sample_pdfs`
#[test]
#[ignore = "writes files; run by scripts/pdf-check-barcode.sh"]
fn write_sample_pdfs() {
    let dir = PathBuf::from(std::env::var("PDF_SAMPLES_DIR").expect("PDF_SAMPLES_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, c) in samples::all().unwrap() {
        for copy in Copy::ALL {
            let bytes = render(&c, copy, PaperSize::A5).unwrap();
            write(&dir, &format!("{name}-{}.pdf", copy.code()), &bytes);
        }
        let payload = barcode_payload(&c).unwrap();
        write(&dir, &format!("{name}-kk.payload"), &payload);
        // The module matrix, top row first, for scripts/pdf-bench-reportlab.py.
        let symbol = pdf::Symbol::encode(&payload).unwrap();
        let modules: String = symbol
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|&m| if m { '1' } else { '0' })
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        write(&dir, &format!("{name}-kk.modules"), modules.as_bytes());
        let a4 = render(&c, Copy::Kk, PaperSize::A4).unwrap();
        write(&dir, &format!("{name}-kk-a4.pdf"), &a4);
        std::fs::copy(
            dir.join(format!("{name}-kk.payload")),
            dir.join(format!("{name}-kk-a4.payload")),
        )
        .unwrap();
    }
    write(&dir, "blank.pdf", &render_blank(PaperSize::A5).unwrap());
}

/// Writes, for `scripts/kbv-stylesheet-check.sh`, the bundle AU-Relay stores and its three paper
/// copies and barcode payload for varied certificates: `<name>.xml`, `<name>-kk.pdf`,
/// `<name>-ag.pdf`, `<name>-v.pdf`, `<name>.payload` into `$ORACLE_DIR`. The samples, drafts
/// changed in one aspect each, and KBV/gematik examples imported as a practice would receive
/// them (Weiterbildung, Zahnarzt, ASV, SKT, PKV); of these also `<name>_original.xml`, the
/// bundle as received, next to the same copies.
#[test]
#[ignore = "writes files; run by scripts/kbv-stylesheet-check.sh"]
fn write_oracle_samples() {
    use chrono::TimeZone;
    let dir = PathBuf::from(std::env::var("ORACLE_DIR").expect("ORACLE_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 9, 30, 0)
        .unwrap();

    let patient = |first: &str, last: &str| {
        serde_json::json!({
            "kvnr": "A123456780", "first_name": first, "last_name": last,
            "birth_date": "1980-04-01", "street": "Große Straße", "house_number": "5a",
            "postal_code": "30159", "city": "Hannover"
        })
    };
    let insurer = serde_json::json!({"ik": "109500969", "name": "AOK Niedersachsen",
                                     "wop": "17", "insured_type": "1"});
    let drafts: Vec<(&str, serde_json::Value)> = vec![
        (
            "cause1_pg04_dmp01_other",
            serde_json::json!({
                "kind": "ERST", "patient": patient("Jürgen", "Müller-Lüdenscheidt"),
                "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "wop": "71",
                            "insured_type": "1", "special_group": "04", "dmp": "01"},
                "period": {"since": "2026-11-25", "until": "2026-11-29", "determined_on": "2026-11-25"},
                "cause": "1",
                "measures": {"other": "Gehstützen, Kühlung"},
                "diagnoses": [{"code": "S93.40", "certainty": "G", "side": "R"}]
            }),
        ),
        (
            "typographic",
            serde_json::json!({
                "kind": "ERST", "patient": patient("Zoë", "Weiß-Öztürk"), "insurer": insurer,
                "period": {"since": "2026-11-24", "until": "2026-11-27", "determined_on": "2026-11-25"},
                "measures": {"other": "Reha–Sport „ambulant“"},
                "diagnoses": [{"code": "M25.56", "certainty": "G", "side": "L"}],
                "diagnosis_text": "„Sturz“ – Knie, 2× täglich kühlen"
            }),
        ),
        (
            "certainty_v_z_a_d_arzt",
            serde_json::json!({
                "kind": "FOLGE", "patient": patient("Jürgen", "Müller-Lüdenscheidt"), "insurer": insurer,
                "period": {"until": "2026-12-02", "determined_on": "2026-11-25"},
                "cause": "2", "measures": {"d_arzt": true},
                "diagnoses": [{"code": "A09.9", "certainty": "V", "side": "B"},
                              {"code": "R10.4", "certainty": "Z"},
                              {"code": "K52.9", "certainty": "A", "side": "L"}]
            }),
        ),
        (
            "folge_end_family_reha",
            serde_json::json!({
                "kind": "FOLGE_END", "patient": patient("Anna", "Schäfer"),
                "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "insured_type": "3",
                            "valid_until": "2027-03-31"},
                "period": {"until": "2026-12-11", "determined_on": "2026-11-25"},
                "measures": {"rehabilitation": true, "reintegration": true},
                "sick_pay_case": true,
                "diagnoses": [{"code": "F32.1", "certainty": "G"}]
            }),
        ),
        (
            "erst_end_ser_six_max_texts",
            serde_json::json!({
                "kind": "ERST_END", "patient": patient("Jürgen", "Müller-Lüdenscheidt"), "insurer": insurer,
                "period": {"since": "2026-11-23", "until": "2026-12-05", "determined_on": "2026-11-24"},
                "cause": "3", "sick_pay_case": true,
                "measures": {"d_arzt": true, "rehabilitation": true,
                             "other": "Ärztliche Übungsbehandlung, Gangschule und Lymphdrainage täglich ab 1."},
                "diagnoses": [
                    {"code": "S82.28", "certainty": "G", "side": "R"},
                    {"code": "M54.5", "certainty": "V", "side": "L"},
                    {"code": "J06.9", "certainty": "G"},
                    {"code": "E10.20", "certainty": "Z", "side": "B"},
                    {"code": "U07.1", "certainty": "A"},
                    {"code": "T14.0", "certainty": "G", "side": "L"}
                ],
                "diagnosis_text": "Zustand nach Sturz; Überwachung der Wundheilung, Kühlen, Hochlagern ok"
            }),
        ),
        (
            "group06_dmp12_type5",
            serde_json::json!({
                "kind": "ERST", "patient": patient("Jürgen", "Müller-Lüdenscheidt"),
                "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "wop": "98",
                            "insured_type": "5", "special_group": "06", "dmp": "12"},
                "issued_on": "2026-11-24",
                "period": {"since": "2026-11-22", "until": "2026-11-26", "determined_on": "2026-11-24"},
                "diagnoses": [{"code": "J20.9"}]
            }),
        ),
        (
            "foreign_name_no_cause",
            serde_json::json!({
                "kind": "FOLGE", "patient": {
                    "kvnr": "A123456780", "first_name": "Łukasz Thị", "last_name": "Nguyễn-Pawłowski",
                    "birth_date": "1990-12-31", "street": "Görlitzer Straße", "house_number": "12",
                    "postal_code": "02826", "city": "Görlitz"},
                "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "wop": "38", "insured_type": "1"},
                "period": {"until": "2026-11-30", "determined_on": "2026-11-25"},
                "diagnoses": [{"code": "B34.9", "certainty": "G"}],
                "diagnosis_text": "Grippaler Infekt"
            }),
        ),
        (
            "title_name_parts_post_box",
            serde_json::json!({
                "kind": "ERST", "patient": {
                    "kvnr": "A123456780", "first_name": "Karl-Friederich", "last_name": "Schaumberg",
                    "title": "Dr. med.", "name_addition": "Graf Freiherr", "name_prefix": "von",
                    "birth_date": "1964-04-04", "post_box": "124589",
                    "postal_code": "12489", "city": "Berlin"},
                "insurer": insurer,
                "period": {"since": "2026-11-25", "until": "2026-11-27", "determined_on": "2026-11-25"},
                "diagnoses": [{"code": "J06.9", "certainty": "G"}]
            }),
        ),
    ];

    let mut certs: Vec<(String, Certificate)> = samples::all()
        .unwrap()
        .into_iter()
        .map(|(name, c)| (name.to_owned(), c))
        .collect();
    for (i, (name, json)) in drafts.into_iter().enumerate() {
        let (practice, doctor) = demo_practice().unwrap();
        let ctx = au_relay::domain::CaptureContext {
            practice,
            doctors: vec![doctor],
            today: samples::today(),
            document_id: uuid::Uuid::from_u128(0x0ac1_e000 + i as u128),
        };
        let draft: au_relay::domain::CertificateDraft = serde_json::from_value(json).unwrap();
        let c = Certificate::from_draft(&draft, &ctx).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        certs.push((name.to_owned(), c));
    }
    let mut originals: Vec<(String, Certificate, Vec<u8>)> = Vec::new();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gematik-eau/KBV_PR_EAU_Bundle");
    // Every valid gematik example of the eAU 1.2 profiles that AU-Relay imports (1.2.1 all of
    // them; of 1.2 the two that 1.2.1 made invalid are refused, see tests/it/fhir.rs).
    let mut files: Vec<PathBuf> = ["1.2.1/valid", "1.2/valid"]
        .iter()
        .flat_map(|d| std::fs::read_dir(fixtures.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    for file in files {
        let xml = std::fs::read(&file).unwrap();
        let version = file
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .file_name()
            .unwrap();
        let stem = file.file_stem().unwrap().to_string_lossy();
        let name: String = format!("kbv_{}_{stem}", version.to_string_lossy())
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        // Valid under 1.2.0 only; the same files are in 1.2.1/invalid (tests/it/fhir.rs).
        let invalid_under_1_2_1 = version == "1.2"
            && [
                "Beispiel_1-eAU_ERST_GKV-BSNR",
                "Beispiel_1-eAU_ERST_GKV-IKZ",
            ]
            .contains(&&*stem);
        let imported = match au_relay::fhir::read(&xml) {
            Ok(imported) => imported,
            Err(_) if invalid_under_1_2_1 => continue,
            Err(e) => panic!("{name}: not imported: {e:?}"),
        };
        certs.push((name.clone(), imported.certificate.clone()));
        // The same copies next to the bundle as received, before AU-Relay wrote it again.
        originals.push((format!("{name}_original"), imported.certificate, xml));
    }

    let put = |name: &str, c: &Certificate, bundle: &[u8]| {
        write(&dir, &format!("{name}.xml"), bundle);
        for copy in Copy::ALL {
            let pdf = render(c, copy, PaperSize::A5).unwrap();
            write(&dir, &format!("{name}-{}.pdf", copy.code()), &pdf);
        }
        write(
            &dir,
            &format!("{name}.payload"),
            &barcode_payload(c).unwrap(),
        );
    };
    for (name, c) in &certs {
        let bundle = au_relay::fhir::write_at(c, at).unwrap_or_else(|e| panic!("{name}: {e}"));
        put(name, c, &bundle);
    }
    for (name, c, xml) in &originals {
        put(name, c, xml);
    }
}
