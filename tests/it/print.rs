//! Printing from the detail page and the API, checked with poppler and qpdf.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use crate::common::{valid_body, TestApp};

fn tool(name: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pdf");
    std::fs::write(&path, pdf).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    let p = path.to_str().unwrap();
    all.push(p);
    if name == "pdftotext" {
        all.push("-");
    }
    let out = Command::new(name).args(&all).output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn get_pdf(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn staff_print_all_copies_and_every_print_is_recorded() {
    let app = TestApp::spawn().await;
    app.login().await;
    let id = app.capture_id(&valid_body()).await;
    let r = get_pdf(&app, &format!("/certificates/{id}/pdf")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap();
    let text = tool("pdftotext", &[], &pdf);
    assert!(text.contains("Ausfertigung zur Vorlage bei der Krankenkasse"));
    assert!(text.contains("Ausfertigung für Versicherte"));
    assert!(text.contains("Müller-Lüdenscheidt"));
    tool("qpdf", &["--check"], &pdf);
    let info = tool("pdfinfo", &[], &pdf);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Pages:") && l.trim_end().ends_with(" 2")),
        "{info}"
    );

    let ag = get_pdf(&app, &format!("/certificates/{id}/pdf?copy=ag&size=a4"))
        .await
        .bytes()
        .await
        .unwrap();
    let ag_text = tool("pdftotext", &[], &ag);
    assert!(ag_text.contains("Arbeitgeber"));
    assert!(
        !ag_text.contains("J06.9"),
        "no diagnosis on the employer's copy"
    );
    let info = tool("pdfinfo", &[], &ag);
    assert!(info.contains("(A4)"), "A4: {info}");

    let (_, _, audit) = app.rows();
    assert!(audit >= 3, "capture + two prints recorded, got {audit}");
}

#[tokio::test]
async fn prefilled_and_blank_forms_print_without_medical_data() {
    let app = TestApp::spawn().await;
    app.login().await;
    let id = app.capture_id(&valid_body()).await;
    let pre = get_pdf(&app, &format!("/certificates/{id}/pdf?copy=prefilled"))
        .await
        .bytes()
        .await
        .unwrap();
    let text = tool("pdftotext", &[], &pre);
    assert!(text.contains("Müller-Lüdenscheidt") && text.contains("031234567"));
    assert!(!text.contains("J06.9"));
    let blank = get_pdf(&app, "/forms/blank.pdf")
        .await
        .bytes()
        .await
        .unwrap();
    assert!(!tool("pdftotext", &[], &blank).contains("Müller"));
    tool("qpdf", &["--check"], &blank);
}

#[tokio::test]
async fn printing_needs_a_login_or_token_of_the_practice_and_a_known_copy() {
    let app = TestApp::spawn().await;
    let id = app.capture_id(&valid_body()).await;
    let r = get_pdf(&app, &format!("/certificates/{id}/pdf")).await;
    assert_eq!(r.status(), 303, "anonymous → login");
    let api = app
        .client
        .get(app.url(&format!("/api/v1/certificates/{id}/pdf?copy=kk")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    assert!(api.bytes().await.unwrap().starts_with(b"%PDF"));
    let bad = app
        .client
        .get(app.url(&format!("/api/v1/certificates/{id}/pdf?copy=xx")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let unknown = app
        .client
        .get(app.url("/api/v1/certificates/00000000-0000-4000-8000-000000000000/pdf"))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// A capture with „–“ (issue #16) prints all three copies through the staff route.
#[tokio::test]
async fn a_capture_with_typographic_quotes_and_dashes_prints_all_three_copies() {
    let app = TestApp::spawn().await;
    app.login().await;
    let mut body = valid_body();
    body["diagnosis_text"] = "„Sturz“ – Knie".into();
    body["measures"] = serde_json::json!({"other": "Physio – 2×/Woche"});
    let id = app.capture_id(&body).await;
    let r = get_pdf(&app, &format!("/certificates/{id}/pdf?copy=all-ag")).await;
    assert_eq!(r.status(), 200);
    let pdf = r.bytes().await.unwrap();
    tool("qpdf", &["--check"], &pdf);
    let info = tool("pdfinfo", &[], &pdf);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Pages:") && l.trim_end().ends_with(" 3")),
        "{info}"
    );
    let text = tool("pdftotext", &[], &pdf);
    assert!(text.contains("„Sturz“ – Knie"), "{text}");
}

/// Issue #16: the Ersatzverfahren notice and the barcode only while the eAU is not at the
/// insurer; once it is, "Drucken" gives the patient's copy (and the employer's on request), and
/// a KK copy asked for explicitly carries neither notice nor barcode.
#[tokio::test]
async fn a_delivered_certificate_prints_the_patients_copy_without_the_ersatzverfahren() {
    use diesel::connection::SimpleConnection;
    let app = TestApp::spawn().await;
    app.login().await;
    let id = app.capture_id(&valid_body()).await;
    let pages = |pdf: &[u8]| {
        let info = tool("pdfinfo", &[], pdf);
        info.lines()
            .find(|l| l.starts_with("Pages:"))
            .map(|l| l.split_whitespace().last().unwrap().to_owned())
            .unwrap()
    };
    let unsent = get_pdf(&app, &format!("/certificates/{id}/pdf"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(pages(&unsent), "2", "KK + V");
    let text = tool("pdftotext", &[], &unsent);
    assert!(text.contains("Ersatzverfahren: Die elektronische Übermittlung"));
    assert!(text.contains("Ausdruck im Ersatzverfahren mit Barcode (PDF417)"));

    app.db
        .conn()
        .unwrap()
        .batch_execute("UPDATE deliveries SET state = 'delivered', delivered_at = created_at")
        .unwrap();
    let r = get_pdf(&app, &format!("/certificates/{id}/pdf")).await;
    let name = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(name.contains("_Versicherten-Ausfertigung_"), "{name}");
    let delivered = r.bytes().await.unwrap();
    assert_eq!(pages(&delivered), "1", "V only");
    let text = tool("pdftotext", &[], &delivered);
    assert!(text.contains("Ausfertigung für Versicherte"));
    assert!(!text.contains("Ersatzverfahren"), "{text}");
    let with_employer = get_pdf(&app, &format!("/certificates/{id}/pdf?copy=all-ag"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(pages(&with_employer), "2", "AG + V");
    let kk = get_pdf(&app, &format!("/certificates/{id}/pdf?copy=kk"))
        .await
        .bytes()
        .await
        .unwrap();
    let text = tool("pdftotext", &[], &kk);
    assert!(text.contains("elektronisch übermittelt"), "{text}");
    assert!(
        !text.contains("Ersatzverfahren") && !text.contains("PDF417"),
        "{text}"
    );
    let detail = app.get_text(&format!("/certificates/{id}")).await;
    assert!(detail.contains("Drucken (Versicherte)"));
}

/// Paper = the document (issue #16): an imported bundle prints its own practice, BSNR, LANR
/// and doctor, not the importing practice's master data.
#[tokio::test]
async fn an_imported_bundle_prints_its_own_practice_bsnr_and_lanr() {
    let app = TestApp::spawn().await;
    app.login().await;
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "tests/fixtures/gematik-eau/KBV_PR_EAU_Bundle/1.2.1/valid/Beispiel_1-eAU_ERST_GKV.xml",
    );
    let xml = std::fs::read_to_string(path)
        .unwrap()
        .replace(
            "<value value=\"031234567\" />",
            "<value value=\"345678901\" />",
        )
        .replace(
            "<value value=\"838382202\" />",
            "<value value=\"123456699\" />",
        );
    let r = app
        .client
        .post(app.url("/api/v1/fhir/eau"))
        .bearer_auth("demo-token")
        .header("Content-Type", "application/fhir+xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kk = get_pdf(&app, &format!("/certificates/{id}/pdf?copy=kk")).await;
    assert_eq!(kk.status(), 200);
    let text = tool("pdftotext", &[], &kk.bytes().await.unwrap());
    for own in ["345678901", "123456699", "MVZ"] {
        assert!(text.contains(own), "{own} missing:\n{text}");
    }
    for demo in ["031234567", "838382202", "Praxis Dr. Muster"] {
        assert!(
            !text.contains(demo),
            "{demo} of the importing practice printed"
        );
    }
}
