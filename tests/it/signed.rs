//! Signed eAU documents: `.p7s` imports checked and stored byte for byte, replayed and pulled as
//! received; captured certificates signed through the (test) Konnektor in Stapelsignatur.
//! The signed files are made by the system's `openssl` and checked with `openssl cms -verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{self, TestApp};
use au_relay::insurers::fake::FakeInsurer;
use au_relay::insurers::PushClient;
use au_relay::konnektor::fake::{FakeKonnektor, Fault};
use au_relay::queue::{run_once, Connectors, WorkerSettings};
use au_relay::storage;
use base64::Engine;
use serde_json::Value;

const GKV: &str = "1.2.1/valid/Beispiel_1-eAU_ERST_GKV.xml";
const P7S: &str = "application/pkcs7-mime";

fn fixture(path: &str) -> Vec<u8> {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gematik-eau/KBV_PR_EAU_Bundle");
    std::fs::read(base.join(path)).unwrap()
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A signer: a self-signed test certificate and its key, in a temp dir.
struct Signer {
    dir: tempfile::TempDir,
}

impl Signer {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/C=DE/O=Testpraxis/CN=Dr. Test Signer",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ],
            dir.path(),
        );
        Self { dir }
    }

    /// `openssl cms -sign -nodetach -binary -outform DER` over `content` (plus `extra` flags).
    fn sign(&self, content: &[u8], extra: &[&str]) -> Vec<u8> {
        let dir = self.dir.path();
        std::fs::write(dir.join("in.xml"), content).unwrap();
        let mut args = vec![
            "cms", "-sign", "-binary", "-outform", "DER", "-in", "in.xml", "-signer", "cert.pem",
            "-inkey", "key.pem", "-out", "out.p7s",
        ];
        if !extra.contains(&"-detach") {
            args.push("-nodetach");
        } else {
            args.retain(|a| *a != "-nodetach");
        }
        args.extend(extra.iter().filter(|a| **a != "-detach"));
        openssl(&args, dir);
        std::fs::read(dir.join("out.p7s")).unwrap()
    }
}

/// `openssl cms -verify -noverify`: the content of an intact enveloping signature.
fn openssl_verify(p7s: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.p7s"), p7s).unwrap();
    openssl(
        &[
            "cms",
            "-verify",
            "-noverify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "s.p7s",
            "-out",
            "content",
        ],
        dir.path(),
    );
    std::fs::read(dir.path().join("content")).unwrap()
}

async fn import(app: &TestApp, bytes: Vec<u8>, content_type: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/fhir/eau"))
        .bearer_auth("demo-token")
        .header("Content-Type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn ik_of(bundle: &[u8]) -> String {
    let xml = String::from_utf8_lossy(bundle);
    let at = xml.find("http://fhir.de/sid/arge-ik/iknr").unwrap();
    let rest = &xml[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..v + 9].to_owned()
}

/// Queue rounds until one pushes nothing.
async fn drain(app: &TestApp) {
    let client = Connectors::from(PushClient::new(Duration::from_secs(5)).unwrap());
    for _ in 0..100 {
        let pushed = run_once(&app.db, &client, &WorkerSettings::default())
            .await
            .unwrap();
        if pushed == 0 {
            break;
        }
    }
}

#[tokio::test]
async fn a_signed_file_is_imported_and_its_exact_bytes_are_pulled_and_pushed() {
    let app = TestApp::spawn().await;
    let bundle = fixture(GKV);
    let p7s = Signer::new().sign(&bundle, &[]);
    let r = import(&app, p7s.clone(), P7S).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.rows().0, 1);

    // The signer is recorded and shown, without a claim of TI trust.
    app.login().await;
    let page = app.get_text(&format!("/certificates/{id}")).await;
    assert!(page.contains("CN=Dr. Test Signer"), "signer subject");
    assert!(page.contains("signiert von der Praxissoftware"));
    assert!(page.contains("nicht geprüft"), "no TSL claim");
    let file = app
        .client
        .get(app.url(&format!("/certificates/{id}/p7s")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.headers()["content-type"], P7S);
    assert_eq!(file.bytes().await.unwrap().to_vec(), p7s);

    // Pull: the exact file, marked signed, named as the TA names it.
    let ik = ik_of(&bundle);
    let token = "insurer-token-signed";
    storage::create_insurer_token(
        &mut app.db.conn().unwrap(),
        &au_relay::auth::token_hash(token),
        &ik,
        "test",
    )
    .unwrap();
    let pulled = pull(&app, token).await;
    let item = &pulled["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["signed"], true);
    assert_eq!(item["file_name"], format!("EEAU0_{id}.p7s"));
    assert_eq!(item["content_type"], P7S);
    let document = base64::engine::general_purpose::STANDARD
        .decode(item["document"].as_str().unwrap())
        .unwrap();
    assert_eq!(document, p7s);

    // Push: the same bytes reach the insurer, as application/pkcs7-mime.
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    common::point_at(&mut app.db.conn().unwrap(), &ik, &insurer);
    drain(&app).await;
    let received = insurer.received(&id).expect("pushed");
    assert_eq!(received.content_type, P7S);
    assert_eq!(received.sha256, sha256_hex(&p7s));
    assert_eq!(openssl_verify(&document), bundle);
}

#[tokio::test]
async fn the_same_signed_file_twice_is_stored_once() {
    let app = TestApp::spawn().await;
    let p7s = Signer::new().sign(&fixture(GKV), &[]);
    assert_eq!(import(&app, p7s.clone(), P7S).await.status(), 201);
    assert_eq!(import(&app, p7s, P7S).await.status(), 200);
    assert_eq!(app.rows().0, 1);
}

/// The OperationOutcome text of a refused import.
async fn refused(app: &TestApp, bytes: Vec<u8>) -> String {
    let r = import(app, bytes, P7S).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/fhir+xml");
    r.text().await.unwrap()
}

#[tokio::test]
async fn broken_signed_files_are_refused_in_german_and_write_nothing() {
    let app = TestApp::spawn().await;
    let signer = Signer::new();
    let bundle = fixture(GKV);
    let p7s = signer.sign(&bundle, &[]);

    // One byte of the content changed (a digit of the KVNR inside the signed bundle).
    let mut tampered = p7s.clone();
    let needle = b"<birthDate value=\"";
    let at = tampered
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the bundle is inside the file")
        + needle.len();
    tampered[at + 3] = if tampered[at + 3] == b'1' { b'2' } else { b'1' };
    let text = refused(&app, tampered).await;
    assert!(text.contains("verändert"), "{text}");
    assert!(text.contains("security"));

    // The signature value changed (its last byte).
    let mut bad_signature = p7s.clone();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 0x01;
    let text = refused(&app, bad_signature).await;
    assert!(text.contains("Signatur ist ungültig"), "{text}");

    // Cut off: the signature part missing.
    let text = refused(&app, p7s[..p7s.len() - 300].to_vec()).await;
    assert!(text.contains("keine CMS-Signatur"), "{text}");

    // Garbage.
    let text = refused(&app, b"\x00\x01garbage".to_vec()).await;
    assert!(text.contains("keine CMS-Signatur"), "{text}");

    // Unsigned XML sent as signed.
    let text = refused(&app, bundle.clone()).await;
    assert!(text.contains("unsigniertes XML"), "{text}");

    // A detached signature: the document is not inside.
    let text = refused(&app, signer.sign(&bundle, &["-detach"])).await;
    assert!(text.contains("abgesetzte Signatur"), "{text}");

    // Intact, but the content is no KBV eAU.
    let text = refused(
        &app,
        signer.sign(b"<Patient xmlns=\"http://hl7.org/fhir\"/>", &[]),
    )
    .await;
    assert!(!text.contains("security"), "the signature is fine: {text}");

    assert_eq!(app.rows(), (0, 0, 0), "nothing written");
}

#[tokio::test]
async fn base64_of_a_signed_file_is_read_like_der() {
    let app = TestApp::spawn().await;
    let p7s = Signer::new().sign(&fixture(GKV), &[]);
    let text = base64::engine::general_purpose::STANDARD.encode(&p7s);
    assert_eq!(import(&app, text.into_bytes(), P7S).await.status(), 201);
}

/// Connecting a practice to the TI is audited by the use case, in the practice's log: the
/// Konnektor and the KIM account, saved and removed, one row each, with what changed.
#[tokio::test]
async fn konnektor_and_kim_account_changes_are_audited_once_each() {
    let app = TestApp::spawn().await;
    let practice_id = common::demo_practice_id(&app.db);
    let actor = storage::Actor {
        practice_id: practice_id.clone(),
        name: "demo".into(),
        channel: "web",
    };
    let mut conn = app.db.conn().unwrap();
    let row = storage::KonnektorRow::unauthenticated(
        &practice_id,
        "https://konnektor.praxis.invalid".into(),
        au_relay::konnektor::Context {
            mandant_id: "m".into(),
            client_system_id: "au-relay".into(),
            workplace_id: "empfang".into(),
            user_id: None,
        },
    );
    au_relay::service::save_konnektor(&mut conn, &actor, &row).unwrap();
    au_relay::service::remove_konnektor(&mut conn, &actor).unwrap();
    let kim = storage::KimAccountRow::local(&practice_id, "praxis@kim.invalid", "ref".into());
    au_relay::service::save_kim_account(&mut conn, &actor, &kim).unwrap();
    au_relay::service::remove_kim_account(&mut conn, &actor).unwrap();
    assert!(storage::kim_account(&mut conn, &practice_id)
        .unwrap()
        .is_none());
    let filter = storage::AuditFilter::default();
    let (rows, _) = storage::audit_entries(&mut conn, Some(&practice_id), &filter, 0, 50).unwrap();
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.action.starts_with("konnektor.") || r.action.starts_with("kim."))
        .map(|r| (r.action.as_str(), r.detail.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("kim.account_removed", ""),
            ("kim.account_saved", "praxis@kim.invalid"),
            (
                "konnektor.removed",
                "Konnektor entfernt, 0 Dokument(e) unsigniert freigegeben"
            ),
            (
                "konnektor.saved",
                "Konnektor https://konnektor.praxis.invalid (HBA)"
            ),
        ]
    );
}

// --- signing through the Konnektor ---------------------------------------------------------------

async fn with_konnektor() -> (TestApp, FakeKonnektor) {
    let app = TestApp::spawn().await;
    let (konnektor, server) = FakeKonnektor::start(0).unwrap();
    tokio::spawn(server);
    let practice_id = common::demo_practice_id(&app.db);
    let row = storage::KonnektorRow::unauthenticated(
        &practice_id,
        konnektor.base_url(),
        konnektor.context(),
    );
    let actor = storage::Actor {
        practice_id,
        name: "test".into(),
        channel: "test",
    };
    au_relay::service::save_konnektor(&mut app.db.conn().unwrap(), &actor, &row).unwrap();
    (app, konnektor)
}

fn waiting(app: &TestApp) -> Vec<storage::AwaitingSignature> {
    let practice = common::demo_practice_id(&app.db);
    storage::awaiting_signature(&mut app.db.conn().unwrap(), &practice, 1000).unwrap()
}

async fn capture(app: &TestApp) -> String {
    let r = app.post_api(&common::valid_body()).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts the "Zu signieren" form with these delivery ids.
async fn sign_form(app: &TestApp, csrf: &str, ids: &[String]) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
    form.extend(ids.iter().map(|id| ("doc", id.as_str())));
    app.client
        .post(app.url("/signatur"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_captured_certificate_waits_for_its_signature_and_is_not_sent_before() {
    let (app, _konnektor) = with_konnektor().await;
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    common::point_at(&mut app.db.conn().unwrap(), "109500969", &insurer);
    let id = capture(&app).await;
    drain(&app).await;
    assert_eq!(insurer.received(&id), None, "unsigned: not sent");
    assert_eq!(waiting(&app).len(), 1);
    app.login().await;
    let page = app.get_text(&format!("/certificates/{id}")).await;
    assert!(page.contains("wartet auf Signatur"));
    let list = app.get_text("/signatur").await;
    assert!(
        list.contains("1 Dokument wartet auf die Signatur"),
        "{list}"
    );
}

#[tokio::test]
async fn a_stapelsignatur_of_250_signs_all_in_one_call_and_each_file_verifies() {
    let (app, konnektor) = with_konnektor().await;
    let practice = common::demo_practice_id(&app.db);
    let ids = common::store_certificates(&app.db, &practice, "109500969", 250);
    let docs = waiting(&app);
    assert_eq!(docs.len(), 250);
    let csrf = app.login().await;
    let delivery_ids: Vec<String> = docs.iter().map(|d| d.delivery_id.clone()).collect();
    let r = sign_form(&app, &csrf, &delivery_ids).await;
    assert_eq!(r.status(), 303);
    assert_eq!(konnektor.sign_calls(), 1, "one SignDocument call");
    assert_eq!(konnektor.documents_signed(), 250);
    assert!(waiting(&app).is_empty());
    let page = app.get_text("/signatur?signiert=250&fehler=0").await;
    assert!(page.contains("250 signiert"));

    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    common::point_at(&mut app.db.conn().unwrap(), "109500969", &insurer);
    drain(&app).await;
    for (id, doc) in ids.iter().zip(&docs) {
        let p7s = storage::signed_file(&mut app.db.conn().unwrap(), &practice, id.parse().unwrap())
            .unwrap()
            .expect("stored");
        assert_eq!(
            openssl_verify(&p7s),
            doc.xml.as_bytes(),
            "signs the stored bytes"
        );
        let received = insurer.received(id).expect("sent after signing");
        assert_eq!(received.sha256, sha256_hex(&p7s));
    }
}

#[tokio::test]
async fn every_konnektor_fault_leaves_the_certificates_waiting_with_the_fault_shown() {
    let (app, konnektor) = with_konnektor().await;
    capture(&app).await;
    capture(&app).await;
    let csrf = app.login().await;
    let ids: Vec<String> = waiting(&app).into_iter().map(|d| d.delivery_id).collect();
    for (fault, german) in [
        (Fault::CardNotInserted, "Karte"),
        (Fault::PinBlocked, "PIN"),
        (Fault::PinNotEntered, "PIN"),
        (Fault::BadContext, "Mandant"),
    ] {
        konnektor.set_fault(fault);
        let r = sign_form(&app, &csrf, &ids).await;
        assert_eq!(r.status(), 502, "{fault:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains(german), "{fault:?}: {page}");
        assert!(page.contains("nichts ist verloren"));
        let left = waiting(&app);
        assert_eq!(left.len(), 2, "{fault:?}: still waiting");
        assert!(left.iter().all(|d| d.last_error.is_some()), "reason kept");
    }
    // The Konnektor gone: unreachable, still waiting.
    let practice = common::demo_practice_id(&app.db);
    let mut row = storage::konnektor_of(&mut app.db.conn().unwrap(), &practice)
        .unwrap()
        .unwrap();
    row.base_url = "http://127.0.0.1:9".into();
    let actor = storage::Actor {
        practice_id: practice,
        name: "test".into(),
        channel: "test",
    };
    au_relay::service::save_konnektor(&mut app.db.conn().unwrap(), &actor, &row).unwrap();
    let r = sign_form(&app, &csrf, &ids).await;
    assert_eq!(r.status(), 502);
    assert_eq!(waiting(&app).len(), 2);
    assert_eq!(konnektor.sign_calls(), 0);

    // Back to normal: the same documents sign.
    row.base_url = konnektor.base_url();
    au_relay::service::save_konnektor(&mut app.db.conn().unwrap(), &actor, &row).unwrap();
    konnektor.set_fault(Fault::None);
    assert_eq!(sign_form(&app, &csrf, &ids).await.status(), 303);
    assert!(waiting(&app).is_empty());
}

#[tokio::test]
async fn smcb_signing_needs_the_admins_permission() {
    let (app, konnektor) = with_konnektor().await;
    let practice = common::demo_practice_id(&app.db);
    let mut row = storage::konnektor_of(&mut app.db.conn().unwrap(), &practice)
        .unwrap()
        .unwrap();
    row.card = "SMC-B".into();
    let actor = storage::Actor {
        practice_id: practice,
        name: "test".into(),
        channel: "test",
    };
    au_relay::service::save_konnektor(&mut app.db.conn().unwrap(), &actor, &row).unwrap();
    let id = capture(&app).await;
    let csrf = app.login().await;
    let ids: Vec<String> = waiting(&app).into_iter().map(|d| d.delivery_id).collect();
    let r = sign_form(&app, &csrf, &ids).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Anlage 2b"));
    assert_eq!(konnektor.sign_calls(), 0);
    assert!(!patient_copy_text(&app, &id).await.contains("eigenhändig"));
    row.smcb_allowed = true;
    au_relay::service::save_konnektor(&mut app.db.conn().unwrap(), &actor, &row).unwrap();
    assert_eq!(sign_form(&app, &csrf, &ids).await.status(), 303);
    assert!(waiting(&app).is_empty());
    let page = app.get_text(&format!("/certificates/{id}")).await;
    assert!(page.contains("mit SMC-B (Anlage 2b)"));
    let text = patient_copy_text(&app, &id).await;
    assert!(text.contains("eigenhändig unterschreiben"), "{text}");
}

/// The text of the printed patient copy (pdftotext).
async fn patient_copy_text(app: &TestApp, id: &str) -> String {
    let pdf = app
        .client
        .get(app.url(&format!("/certificates/{id}/pdf?copy=v")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v.pdf"), &pdf).unwrap();
    let out = Command::new("pdftotext")
        .args(["v.pdf", "-"])
        .current_dir(dir.path())
        .output()
        .expect("pdftotext (poppler-utils)");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn metrics_count_documents_by_signature_state() {
    let (app, _konnektor) = with_konnektor().await;
    capture(&app).await;
    let text = app.get_text("/metrics").await;
    assert!(
        text.contains("au_relay_documents_by_signature{state=\"awaiting\"} 1"),
        "{text}"
    );
    assert!(text.contains("au_relay_documents_by_signature{state=\"signed\"} 0"));
}

async fn upload(app: &TestApp, csrf: Option<&str>, bytes: Vec<u8>) -> reqwest::Response {
    let mut r = app
        .client
        .post(app.url("/certificates/import"))
        .header("Content-Type", P7S);
    if let Some(csrf) = csrf {
        r = r.header("X-CSRF-Token", csrf);
    }
    r.body(bytes).send().await.unwrap()
}

#[tokio::test]
async fn staff_upload_a_signed_file_on_the_import_page() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let page = app.get_text("/certificates/import").await;
    assert!(page.contains("TSL"), "says what is not checked");
    let p7s = Signer::new().sign(&fixture(GKV), &[]);
    assert_eq!(upload(&app, None, p7s.clone()).await.status(), 403, "CSRF");
    assert_eq!(app.rows().0, 0);
    let r = upload(&app, Some(&csrf), b"garbage".to_vec()).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["issues"][0]["message"]
        .as_str()
        .unwrap()
        .contains("keine CMS-Signatur"));
    let r = upload(&app, Some(&csrf), p7s.clone()).await;
    assert_eq!(r.status(), 200);
    let location = r.json::<Value>().await.unwrap()["location"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = location.trim_start_matches("/certificates/");
    let stored = storage::signed_file(
        &mut app.db.conn().unwrap(),
        &common::demo_practice_id(&app.db),
        id.parse().unwrap(),
    )
    .unwrap();
    assert_eq!(stored, Some(p7s), "byte for byte");
}

#[tokio::test]
async fn the_doctor_activates_the_komfortsignatur_from_the_signing_page() {
    let (app, _konnektor) = with_konnektor().await;
    let csrf = app.login().await;
    let r = app
        .client
        .post(app.url("/signatur/komfort"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = app.get_text("/signatur?komfort=1").await;
    assert!(page.contains("Komfortsignatur aktiv"), "{page}");
    let audit = app.get_text("/admin/audit").await;
    assert!(audit.contains("signature.comfort"), "audited");
}

// --- signed Storno bundles from practice software ------------------------------------------------

/// A gematik eAU (IK 104212059) and its gematik Storno 1.2.
const EAU: &str = "1.2/valid/EEAU0_2ed6995a-ddcb-4af9-af62-80dac413408b.xml";
const EAU_ID: &str = "2ed6995a-ddcb-4af9-af62-80dac413408b";
const EAU_IK: &str = "104212059";
const STORNO_ID: &str = "0e9c402b-a1fc-4e21-a248-6dd7fb99d99c";

fn storno_bundle() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/fixtures/gematik-eau/KBV_PR_EAU_Storno_Bundle/1.2/valid/EEAU0_Storno_{STORNO_ID}.xml"
    ));
    std::fs::read(path).unwrap()
}

/// Imports [`EAU`] signed and lets the insurer pull and acknowledge it: delivered.
async fn delivered_signed_eau(app: &TestApp, signer: &Signer) -> &'static str {
    let r = import(app, signer.sign(&fixture(EAU), &[]), P7S).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let token = "insurer-token-storno";
    storage::create_insurer_token(
        &mut app.db.conn().unwrap(),
        &au_relay::auth::token_hash(token),
        EAU_IK,
        "test",
    )
    .unwrap();
    let ack = app
        .client
        .post(app.url("/api/insurer/v1/acknowledgements"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "ids": [EAU_ID] }))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.json::<Value>().await.unwrap()["acknowledged"], 1);
    token
}

#[tokio::test]
async fn a_signed_storno_is_stored_pulled_and_pushed_as_received_behind_its_eau() {
    let app = TestApp::spawn().await;
    let signer = Signer::new();
    let token = delivered_signed_eau(&app, &signer).await;
    let p7s = signer.sign(&storno_bundle(), &[]);
    let r = import(&app, p7s.clone(), P7S).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], STORNO_ID);
    assert_eq!(body["outcome"], "storno_queued");

    // The signer of the Storno is recorded beside the eAU's.
    let practice = common::demo_practice_id(&app.db);
    let signatures = storage::signatures_of(
        &mut app.db.conn().unwrap(),
        &practice,
        EAU_ID.parse().unwrap(),
    )
    .unwrap();
    assert_eq!(signatures.len(), 2);
    assert!(signatures
        .iter()
        .any(|s| s.document_id == STORNO_ID && s.signer_subject.contains("Dr. Test Signer")));

    // Pull: the exact file, named as the TA names a signed Storno.
    let pulled = pull(&app, token).await;
    let items = pulled["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the eAU is delivered, the Storno follows");
    assert_eq!(items[0]["id"], STORNO_ID);
    assert_eq!(items[0]["kind"], "storno");
    assert_eq!(items[0]["signed"], true);
    assert_eq!(
        items[0]["file_name"],
        format!("EEAU0_Storno_{STORNO_ID}.p7s")
    );
    assert_eq!(items[0]["content_type"], P7S);
    let document = base64::engine::general_purpose::STANDARD
        .decode(items[0]["document"].as_str().unwrap())
        .unwrap();
    assert_eq!(document, p7s);
    assert_eq!(openssl_verify(&document), storno_bundle());

    // The same file again, over the API and on the staff import page: the same, stored once.
    let rows = app.rows();
    assert_eq!(import(&app, p7s.clone(), P7S).await.status(), 200);
    let csrf = app.login().await;
    let r = upload(&app, Some(&csrf), p7s.clone()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["location"], format!("/certificates/{EAU_ID}"));
    assert_eq!(body["outcome"], "storno_queued");
    assert_eq!(app.rows().0, rows.0);
    assert_eq!(app.rows().1, rows.1);

    // Push: the same bytes reach the insurer, as application/pkcs7-mime.
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    common::point_at(&mut app.db.conn().unwrap(), EAU_IK, &insurer);
    drain(&app).await;
    let received = insurer.received(STORNO_ID).expect("pushed");
    assert_eq!(received.content_type, P7S);
    assert_eq!(received.sha256, sha256_hex(&p7s));
    assert!(
        insurer.received(EAU_ID).is_none(),
        "the eAU was pulled, not pushed again"
    );
}

#[tokio::test]
async fn an_unsigned_storno_of_a_practice_that_signs_waits_for_its_signature() {
    let (app, _konnektor) = with_konnektor().await;
    let signer = Signer::new();
    delivered_signed_eau(&app, &signer).await;
    let storno = storno_bundle();
    let r = import(&app, storno.clone(), "application/fhir+xml").await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "storno_queued");
    let waiting = waiting(&app);
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].kind, storage::DocumentKind::Storno);
    assert_eq!(waiting[0].document_id, STORNO_ID);
    assert_eq!(
        waiting[0].xml.as_bytes(),
        storno,
        "the bytes to sign are the Storno's"
    );
}

/// The insurer's pull page (`GET /api/insurer/v1/documents`) with its token.
async fn pull(app: &TestApp, token: &str) -> Value {
    app.client
        .get(app.url("/api/insurer/v1/documents"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
