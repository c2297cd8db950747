//! The FHIR side of the API: import of KBV bundles, the stored document of every certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crate::common::{self, valid_body, TestApp};
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

// --- Storno bundles from practice software -------------------------------------------------------

/// A gematik eAU whose `Bundle.identifier` (urn:uuid:2ed6995a-…, IK 104212059) every valid
/// gematik Storno bundle of 1.2 and 1.2.1 cancels.
const EAU: &str = "1.2/valid/EEAU0_2ed6995a-ddcb-4af9-af62-80dac413408b.xml";
const EAU_ID: &str = "2ed6995a-ddcb-4af9-af62-80dac413408b";
const EAU_IK: &str = "104212059";
/// Storno 1.2 (its own UUID 0e9c402b-…) and 1.2.1 (03687cfc-…) of [`EAU`].
const STORNO: &str = "1.2/valid/EEAU0_Storno_0e9c402b-a1fc-4e21-a248-6dd7fb99d99c.xml";
const STORNO_ID: &str = "0e9c402b-a1fc-4e21-a248-6dd7fb99d99c";
const STORNO_121: &str = "1.2.1/valid/Beispiel_Storno.xml";
const STORNO_121_ID: &str = "03687cfc-88ee-48e0-89d4-6d3673ab04cf";

fn storno_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gematik-eau/KBV_PR_EAU_Storno_Bundle")
}

fn storno_fixture(path: &str) -> Vec<u8> {
    std::fs::read(storno_dir().join(path)).unwrap()
}

/// The XML files of a fixture folder, sorted.
fn xml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "xml"));
    files.sort();
    files
}

async fn import_as(app: &TestApp, token: &str, bytes: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/fhir/eau"))
        .bearer_auth(token)
        .header("Content-Type", "application/fhir+xml")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// Imports [`EAU`] for the demo practice.
async fn import_eau(app: &TestApp) {
    let r = import(app, fixture(EAU)).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

fn insurer_token(app: &TestApp) -> &'static str {
    let token = "insurer-104212059";
    au_relay::storage::create_insurer_token(
        &mut app.db.conn().unwrap(),
        &au_relay::auth::token_hash(token),
        EAU_IK,
        "test",
    )
    .unwrap();
    token
}

/// The insurer's pull: its open documents, in order.
async fn pull(app: &TestApp, token: &str) -> Vec<Value> {
    let page: Value = app
        .client
        .get(app.url("/api/insurer/v1/documents"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn acknowledge(app: &TestApp, token: &str, ids: &[&str]) {
    let r = app
        .client
        .post(app.url("/api/insurer/v1/acknowledgements"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "ids": ids }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The demo practice's certificate as stored, and its insurer deliveries `(kind, state)`.
fn stored(
    app: &TestApp,
    id: &str,
) -> (
    Option<au_relay::storage::StoredCertificate>,
    Vec<(String, String)>,
) {
    let practice = common::demo_practice_id(&app.db);
    let mut conn = app.db.conn().unwrap();
    let id = id.parse().unwrap();
    let cert = au_relay::storage::get(&mut conn, &practice, id).unwrap();
    let deliveries = au_relay::storage::deliveries_of(&mut conn, &practice, id)
        .unwrap()
        .into_iter()
        .map(|d| {
            let kind = d.document_kind.code().to_owned();
            (kind, d.progress.state.code().to_owned())
        })
        .collect();
    (cert, deliveries)
}

/// The document a Storno delivery carries, as stored.
fn storno_document(app: &TestApp, storno_id: &str) -> Option<String> {
    use au_relay::storage::schema::deliveries;
    use diesel::prelude::*;
    deliveries::table
        .filter(deliveries::document_id.eq(storno_id))
        .select(deliveries::document)
        .first::<Option<String>>(&mut app.db.conn().unwrap())
        .unwrap()
}

#[tokio::test]
async fn a_storno_of_a_delivered_eau_is_queued_behind_it_and_the_same_storno_twice_is_one_row() {
    let app = TestApp::spawn().await;
    import_eau(&app).await;
    let token = insurer_token(&app);
    let items = pull(&app, token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], EAU_ID);
    acknowledge(&app, token, &[EAU_ID]).await;

    let bytes = storno_fixture(STORNO);
    let r = import(&app, bytes.clone()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"],
        format!("/api/v1/certificates/{EAU_ID}").as_str()
    );
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["id"], STORNO_ID);
    assert_eq!(first["kind"], "storno");
    assert_eq!(first["cancels"], EAU_ID);
    assert_eq!(first["outcome"], "storno_queued");
    let (cert, deliveries) = stored(&app, EAU_ID);
    assert!(
        cert.unwrap().cancelled_at.is_some(),
        "the certificate is cancelled"
    );
    assert_eq!(
        deliveries,
        [
            ("eau".to_owned(), "delivered".to_owned()),
            ("storno".to_owned(), "pending".to_owned())
        ]
    );
    assert_eq!(
        storno_document(&app, STORNO_ID).unwrap().into_bytes(),
        bytes,
        "stored byte for byte"
    );

    // The insurer pulls the Storno, after the eAU it already has, as received.
    let items = pull(&app, token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], STORNO_ID);
    assert_eq!(items[0]["kind"], "storno");
    assert_eq!(items[0]["signed"], false);
    assert_eq!(
        items[0]["file_name"],
        format!("EEAU0_Storno_{STORNO_ID}.xml")
    );
    assert_eq!(items[0]["document"].as_str().unwrap().as_bytes(), bytes);

    // Staff see it on the certificate's page.
    app.login().await;
    let page = app.get_text(&format!("/certificates/{EAU_ID}")).await;
    assert!(
        page.contains("Storniert am"),
        "cancelled on the detail page"
    );

    // The same Storno again: the same answer, nothing new.
    let rows = app.rows();
    assert_eq!(rows.1, 2, "one eAU and one Storno delivery");
    let r = import(&app, bytes.clone()).await;
    assert_eq!(r.status(), 200, "the same Storno twice");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    assert_eq!(app.rows(), rows, "one row");
    // Other bytes under the Storno's UUID: a conflict, as for an eAU.
    let xml = String::from_utf8(bytes).unwrap();
    let other = xml.replacen("<given value=\"Hans\" />", "<given value=\"Hanna\" />", 1);
    assert_ne!(other, xml);
    let r = import(&app, other.into_bytes()).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("KP5-06"));
    assert_eq!(app.rows(), rows);
}

#[tokio::test]
async fn a_storno_never_overtakes_its_eau_and_is_pushed_after_it() {
    use au_relay::insurers::fake::FakeInsurer;
    use au_relay::insurers::PushClient;
    use au_relay::queue::{run_once, Connectors, WorkerSettings};
    use diesel::connection::SimpleConnection;
    let app = TestApp::spawn().await;
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    common::point_at(&mut app.db.conn().unwrap(), EAU_IK, &insurer);
    import_eau(&app).await;
    // A worker has claimed the eAU (in flight: it may reach the insurer) when the Storno comes.
    let lease = chrono::Duration::seconds(60);
    let claim = || {
        au_relay::storage::claim_due(
            &mut app.db.conn().unwrap(),
            lease,
            10,
            &mut au_relay::storage::ClaimCursor::default(),
        )
        .unwrap()
    };
    assert_eq!(claim().len(), 1);
    let bytes = storno_fixture(STORNO_121);
    let r = import(&app, bytes.clone()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "storno_queued");
    assert!(
        claim().is_empty(),
        "the Storno waits while its eAU is not delivered"
    );

    // The pull lists the eAU before its Storno.
    let token = insurer_token(&app);
    let ids: Vec<Value> = pull(&app, token)
        .await
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(ids, [EAU_ID, STORNO_121_ID]);

    // The worker that claimed the eAU died; the next rounds push the eAU, then the Storno.
    app.db
        .conn()
        .unwrap()
        .batch_execute("UPDATE deliveries SET lease_until = '2000-01-01 00:00:00'")
        .unwrap();
    let client = Connectors::from(PushClient::new(std::time::Duration::from_secs(5)).unwrap());
    for _ in 0..4 {
        run_once(&app.db, &client, &WorkerSettings::default())
            .await
            .unwrap();
    }
    let counts = insurer.counts();
    assert_eq!(counts.get(EAU_ID), Some(&1));
    assert_eq!(counts.get(STORNO_121_ID), Some(&1), "{counts:?}");
    let received = insurer.received(STORNO_121_ID).unwrap();
    assert_eq!(received.content_type, "application/fhir+xml");
    use sha2::Digest;
    assert_eq!(received.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(
        stored(&app, EAU_ID).1,
        [
            ("eau".to_owned(), "delivered".to_owned()),
            ("storno".to_owned(), "delivered".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_storno_of_an_unsent_eau_withdraws_it_and_is_kept_unsent_as_the_record() {
    let app = TestApp::spawn().await;
    import_eau(&app).await;
    let bytes = storno_fixture(STORNO_121);
    let r = import(&app, bytes.clone()).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["outcome"], "withdrawn");
    assert_eq!(first["id"], STORNO_121_ID);
    let (cert, deliveries) = stored(&app, EAU_ID);
    assert!(cert.unwrap().cancelled_at.is_some());
    assert_eq!(
        deliveries,
        [
            ("eau".to_owned(), "withdrawn".to_owned()),
            ("storno".to_owned(), "withdrawn".to_owned())
        ],
        "neither goes to the insurer"
    );
    assert_eq!(
        storno_document(&app, STORNO_121_ID).unwrap().into_bytes(),
        bytes
    );
    let token = insurer_token(&app);
    assert!(pull(&app, token).await.is_empty(), "nothing to pull");

    let rows = app.rows();
    let r = import(&app, bytes).await;
    assert_eq!(r.status(), 200, "the same Storno twice");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    // Another Storno of the cancelled eAU: refused, nothing written.
    let r = import(&app, storno_fixture(STORNO)).await;
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(text.contains("bereits storniert"), "{text}");
    assert_eq!(app.rows(), rows);
}

#[tokio::test]
async fn a_storno_of_an_unknown_or_another_practices_eau_is_refused_alike_and_writes_nothing() {
    let app = TestApp::spawn().await;
    common::add_practice_b(&app.db);
    let unknown = import(&app, storno_fixture(STORNO)).await;
    assert_eq!(unknown.status(), 422);
    assert_eq!(unknown.headers()["content-type"], "application/fhir+xml");
    let unknown = unknown.text().await.unwrap();
    assert!(
        unknown.contains("List.entry.item.identifier.value")
            && unknown.contains(&format!("urn:uuid:{EAU_ID}"))
            && unknown.contains("keine eAU dieser Praxis"),
        "{unknown}"
    );
    assert!(unknown
        .contains("<expression value=\"Bundle.entry[3].resource.entry[0].item.identifier.value\""));
    assert_eq!(app.rows(), (0, 0, 0));

    // Practice B has the eAU; practice A's Storno does not find it, and learns nothing of it.
    let r = import_as(&app, "other-token", fixture(EAU)).await;
    assert_eq!(r.status(), 201);
    let rows = app.rows();
    let other = import(&app, storno_fixture(STORNO)).await;
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.text().await.unwrap(),
        unknown,
        "the same answer as for no eAU"
    );
    assert_eq!(app.rows(), rows, "nothing written");
    let practice_b = au_relay::storage::practice_id_by_bsnr(
        &mut app.db.conn().unwrap(),
        &au_relay::domain::Bsnr::parse("021234567").unwrap(),
    )
    .unwrap()
    .unwrap();
    let b = au_relay::storage::get(
        &mut app.db.conn().unwrap(),
        &practice_b,
        EAU_ID.parse().unwrap(),
    )
    .unwrap()
    .unwrap();
    assert!(b.cancelled_at.is_none(), "B's eAU stays as it is");
}

/// `xml` with `from` replaced once by `to` (which must change it).
fn changed(xml: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(xml.contains(from), "{from}");
    xml.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn every_gematik_storno_is_taken_after_its_eau_and_every_invalid_one_is_refused_naming_why() {
    for version in ["1.2", "1.2.1"] {
        let files = xml_files(&storno_dir().join(version).join("valid"));
        assert!(!files.is_empty());
        for f in files {
            let app = TestApp::spawn().await;
            import_eau(&app).await;
            let r = import(&app, std::fs::read(&f).unwrap()).await;
            let status = r.status();
            assert_eq!(status, 201, "{}: {}", f.display(), r.text().await.unwrap());
        }
    }

    let app = TestApp::spawn().await;
    import_eau(&app).await;
    let rows = app.rows();
    let refused = |bytes: Vec<u8>, expect: &'static [&'static str], what: String| {
        let app = &app;
        async move {
            let r = import(app, bytes).await;
            assert_eq!(r.status(), 422, "{what}");
            assert_eq!(r.headers()["content-type"], "application/fhir+xml");
            let outcome = r.text().await.unwrap();
            assert!(outcome.contains("<OperationOutcome"), "{what}");
            for e in expect {
                assert!(outcome.contains(e), "{what}: {e} not in {outcome}");
            }
        }
    };
    // The gematik Storno bundles of 1.1.0: the valid one for its version, the invalid one for
    // its version and its unknown Formularart.
    refused(
        storno_fixture("1.1.0/valid/KBV_PR_EAU_Storno_Bundle-test1.xml"),
        &["1.1.0", "1.2.1", "Bundle.meta.profile"],
        "1.1.0 valid".into(),
    )
    .await;
    refused(
        storno_fixture("1.1.0/invalid/KBV_PR_EAU_Storno_Bundle-test1.xml"),
        &[
            "1.1.0",
            "NONEXISTINGCODE",
            "e013",
            "Bundle.entry[0].resource.type.coding[0].code",
        ],
        "1.1.0 invalid".into(),
    )
    .await;

    // One rule of the three Storno profiles broken at a time.
    let xml = String::from_utf8(storno_fixture(STORNO)).unwrap();
    let organization = {
        let start = xml.find("\t<entry>\n\t\t<fullUrl value=\"http://pvs.praxis-topp-gluecklich.local/fhir/Organization").unwrap();
        let end = start + xml[start..].find("\t</entry>").unwrap() + "\t</entry>\n".len();
        xml[start..end].to_owned()
    };
    let cases: Vec<(Vec<u8>, &[&str])> = vec![
        (
            changed(
                &xml,
                "<deleted value=\"true\" />",
                "<deleted value=\"false\" />",
            ),
            &["resource.entry[0].deleted", "Festwert List.entry.deleted"],
        ),
        (
            changed(
                &xml,
                "<mode value=\"changes\" />",
                "<mode value=\"snapshot\" />",
            ),
            &["resource.mode", "changes"],
        ),
        (
            changed(
                &xml,
                "<status value=\"current\" />",
                "<status value=\"retired\" />",
            ),
            &["resource.status", "current"],
        ),
        (
            changed(&xml, "<code value=\"e013\" />", "<code value=\"e010\" />"),
            &["type.coding[0].code", "e013"],
        ),
        (
            changed(
                &xml,
                "<title value=\"Storno eAU\" />",
                "<title value=\"Storno\" />",
            ),
            &["resource.title", "Storno eAU"],
        ),
        (
            changed(
                &xml,
                "<status value=\"final\" />",
                "<status value=\"preliminary\" />",
            ),
            &["Bundle.entry[0].resource.status", "final"],
        ),
        (
            changed(
                &xml,
                "<type value=\"Practitioner\" />",
                "<type value=\"Device\" />",
            ),
            &["author[0].type", "Practitioner"],
        ),
        (
            changed(&xml, "<date value=\"2025-10-15\"/>", ""),
            &["Bundle.entry[0].resource.date", "Datum der Stornierung"],
        ),
        (
            changed(
                &xml,
                "<type value=\"document\" />",
                "<type value=\"collection\" />",
            ),
            &["Bundle.type", "document"],
        ),
        (
            changed(
                &xml,
                "<system value=\"urn:ietf:rfc:3986\" />",
                "<system value=\"urn:oid:1.2.3\" />",
            ),
            &["Bundle.identifier.system"],
        ),
        (
            changed(
                &xml,
                &format!("<value value=\"urn:uuid:{EAU_ID}\" />"),
                &format!("<value value=\"{EAU_ID}\" />"),
            ),
            &["resource.entry[0].item.identifier.value", "urn:uuid:"],
        ),
        (
            changed(
                &xml,
                "<item>",
                "<item>\n<reference value=\"Bundle/2ed6995a\" />",
            ),
            &["item.reference", "0..0"],
        ),
        (
            changed(
                &xml,
                &format!("<value value=\"urn:uuid:{EAU_ID}\" />"),
                &format!("<value value=\"urn:uuid:{STORNO_ID}\" />"),
            ),
            &["eigene UUID"],
        ),
        (
            changed(&xml, "KBV_PR_EAU_Storno|1.2\"", "KBV_PR_EAU_Storno|1.1.0\""),
            &["Bundle.entry[3].resource.meta.profile[0]", "|1.2"],
        ),
        (
            changed(
                &xml,
                "\t</entry>\t\t\n</Bundle>",
                &format!("\t</entry>\n{organization}</Bundle>"),
            ),
            &["vier Einträge", "bdl-7", "Organization darf nur einmal"],
        ),
        (
            changed(
                &xml,
                "<List xmlns=\"http://hl7.org/fhir\">",
                "<List xmlns=\"http://hl7.org/fhir\">\n<title value=\"x\" />",
            ),
            &["resource.title", "KBV_PR_EAU_Storno nicht zulässig"],
        ),
    ];
    for (i, (bytes, expect)) in cases.into_iter().enumerate() {
        refused(bytes, expect, format!("case {i}")).await;
    }
    assert_eq!(app.rows(), rows, "nothing written");
    assert!(stored(&app, EAU_ID).0.unwrap().cancelled_at.is_none());
}
