//! The FHIR side of the API: import of KBV bundles, the stored document of every certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{valid_body, TestApp};
use serde_json::Value;

fn fixture(path: &str) -> Vec<u8> {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gematik-eau/KBV_PR_EAU_Bundle");
    std::fs::read(base.join(path)).unwrap()
}

const GKV: &str = "1.2.1/valid/Beispiel_1-eAU_ERST_GKV.xml";

async fn import(app: &TestApp, bytes: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/fhir/eau"))
        .bearer_auth("demo-token")
        .header("Content-Type", "application/fhir+xml")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_bundle_is_stored_under_its_own_uuid_with_its_exact_bytes_and_queued() {
    let app = TestApp::spawn().await;
    let bytes = fixture(GKV);
    let r = import(&app, bytes.clone()).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let xml = String::from_utf8(bytes.clone()).unwrap();
    assert!(xml.contains(&id), "the bundle's own identifier");
    assert_eq!(body["print_only"], false);
    assert!(
        body["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["location"].as_str().unwrap().contains("identifier")),
        "the KBV example's KVNR fails its check digit: a warning, not an error"
    );
    assert_eq!(app.rows(), (1, 1, 1));

    let stored = app
        .client
        .get(app.url(&format!("/api/v1/certificates/{id}/fhir")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.headers()["content-type"], "application/fhir+xml");
    assert_eq!(
        stored.bytes().await.unwrap().to_vec(),
        bytes,
        "byte for byte"
    );

    let again = import(&app, bytes.clone()).await;
    assert_eq!(again.status(), 200, "the same bytes again");
    let mut other = xml
        .replacen("<given value=\"", "<given value=\"Z", 1)
        .into_bytes();
    if other == bytes {
        other = xml.replacen("</Bundle>", "</Bundle>\n", 1).into_bytes();
    }
    let conflict = import(&app, other).await;
    assert_eq!(conflict.status(), 409);
    assert!(conflict.text().await.unwrap().contains("OperationOutcome"));
    assert_eq!(app.rows(), (1, 1, 1));
}

#[tokio::test]
async fn invalid_bundles_get_an_operation_outcome_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    for (path, expect) in [
        ("1.2.1/invalid/Beispiel_1-eAU_ERST_GKV-BSNR.xml", "BSNR"),
        ("1.1.0/valid/KBV_PR_EAU_Bundle-test1.xml", "1.2.1"),
    ] {
        let r = import(&app, fixture(path)).await;
        assert_eq!(r.status(), 422, "{path}");
        assert_eq!(r.headers()["content-type"], "application/fhir+xml");
        let outcome = r.text().await.unwrap();
        assert!(outcome.contains("<OperationOutcome"), "{outcome}");
        assert!(outcome.contains(expect), "{path}: {outcome}");
        assert!(
            outcome.contains("<expression value="),
            "issues carry their location"
        );
    }
    let r = import(
        &app,
        b"<Bundle xmlns=\"http://hl7.org/fhir\"><broken".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = app
        .client
        .post(app.url("/api/v1/fhir/eau"))
        .bearer_auth("demo-token")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn a_private_insurance_bundle_is_stored_print_only_and_not_queued() {
    let app = TestApp::spawn().await;
    let r = import(
        &app,
        fixture("1.2.1/valid/Beispiel_11-eAU_FOLGE_Weiterbildung.xml"),
    )
    .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["print_only"], true);
    assert_eq!(app.rows(), (1, 0, 1));
}

#[tokio::test]
async fn a_captured_certificate_has_its_kbv_document_which_reads_back_to_the_same_certificate() {
    let app = TestApp::spawn().await;
    let r = app.post_api(&valid_body()).await;
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    let xml = app
        .client
        .get(app.url(&format!("/api/v1/certificates/{id}/fhir")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let read = au_relay::fhir::read(&xml).unwrap();
    let stored: au_relay::domain::Certificate =
        serde_json::from_value(body["certificate"].clone()).unwrap();
    assert_eq!(read.certificate, stored);
    let other_practice = app
        .client
        .get(app.url(&format!("/api/v1/certificates/{id}/fhir")))
        .send()
        .await
        .unwrap();
    assert_eq!(other_practice.status(), 401);
}
