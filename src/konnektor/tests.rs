//! The client against the test Konnektor over HTTP (no mocks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use openssl::cms::{CMSOptions, CmsContentInfo};

use super::fake::{FakeKonnektor, Fault};
use super::*;

fn settings(konnektor: &FakeKonnektor, card: CardKind) -> Settings {
    Settings {
        base_url: konnektor.base_url(),
        context: konnektor.context(),
        auth: Auth::None,
        card,
        iccsn: None,
        accept_invalid_certs: false,
        timeout: Duration::from_secs(20),
    }
}

fn started() -> (FakeKonnektor, Client) {
    let (konnektor, server) = FakeKonnektor::start(0).unwrap();
    tokio::spawn(server);
    let client = Client::new(settings(&konnektor, CardKind::Hba)).unwrap();
    (konnektor, client)
}

fn docs(n: usize) -> Vec<ToSign> {
    (0..n)
        .map(|i| ToSign {
            request_id: format!("r{i}"),
            short_text: format!("eAU {i}"),
            content: format!("<Bundle xmlns=\"http://hl7.org/fhir\"><id value=\"{i}\"/>ä</Bundle>")
                .into_bytes(),
        })
        .collect()
}

fn content_of(p7s: &[u8]) -> Vec<u8> {
    let mut cms = CmsContentInfo::from_der(p7s).unwrap();
    let mut out = Vec::new();
    cms.verify(
        None,
        None,
        None,
        Some(&mut out),
        CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .unwrap();
    out
}

#[actix_web::test]
async fn a_batch_of_250_is_one_sign_document_call_and_every_file_signs_its_bytes() {
    let (konnektor, client) = started();
    let batch = docs(250);
    let signed = client.sign(&batch).await.unwrap();
    assert_eq!(konnektor.sign_calls(), 1);
    assert_eq!(konnektor.documents_signed(), 250);
    assert_eq!(signed.len(), 250);
    for (s, d) in signed.iter().zip(&batch) {
        let Signed::Ok { request_id, p7s } = s else {
            panic!("not signed: {s:?}");
        };
        assert_eq!(request_id, &d.request_id, "input order");
        assert_eq!(content_of(p7s), d.content, "enveloping, byte for byte");
        let v = crate::signature::verify(p7s).unwrap();
        assert!(
            v.signer.subject.contains("TEST-ONLY eHBA"),
            "{}",
            v.signer.subject
        );
        assert!(v.signer.signing_time.is_some());
    }
    // The system's openssl accepts it too (when it is installed).
    if let Signed::Ok { p7s, .. } = &signed[0] {
        let dir = std::env::temp_dir().join(format!("konn-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.p7s"), p7s).unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-noverify",
                "-binary",
                "-inform",
                "DER",
                "-in",
            ])
            .arg(dir.join("s.p7s"))
            .output();
        std::fs::remove_dir_all(&dir).unwrap();
        match out {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(out.stdout, batch[0].content);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("openssl not installed: system check skipped");
            }
            Err(e) => panic!("openssl: {e}"),
        }
    }
}

#[actix_web::test]
async fn more_than_250_is_refused_without_a_call() {
    let (konnektor, client) = started();
    let e = client.sign(&docs(251)).await.unwrap_err();
    assert!(matches!(e, KonnektorError::Config(_)), "{e:?}");
    assert!(e.german().contains("250"), "{}", e.german());
    let mut twice = docs(2);
    twice[1].request_id = twice[0].request_id.clone();
    let e = client.sign(&twice).await.unwrap_err();
    assert!(matches!(e, KonnektorError::Config(_)), "{e:?}");
    assert!(client.sign(&[]).await.unwrap().is_empty());
    assert_eq!(konnektor.sign_calls(), 0);
    // No request at all: a closed port still gives the Config error.
    let mut closed = settings(&konnektor, CardKind::Hba);
    closed.base_url = "http://127.0.0.1:9".into();
    let e = Client::new(closed)
        .unwrap()
        .sign(&docs(251))
        .await
        .unwrap_err();
    assert!(matches!(e, KonnektorError::Config(_)), "{e:?}");
}

#[actix_web::test]
async fn each_fault_is_its_own_error_with_a_german_text() {
    let (konnektor, client) = started();
    for (fault, expected, word) in [
        (
            Fault::CardNotInserted,
            KonnektorError::CardNotInserted,
            "Karte nicht gesteckt",
        ),
        (
            Fault::PinBlocked,
            KonnektorError::PinBlocked,
            "PIN gesperrt",
        ),
        (
            Fault::PinNotEntered,
            KonnektorError::PinNotEntered,
            "PIN-Eingabe abgebrochen",
        ),
    ] {
        konnektor.set_fault(fault);
        let e = client.sign(&docs(2)).await.unwrap_err();
        assert_eq!(e, expected, "{fault:?}");
        assert!(e.german().contains(word), "{fault:?}: {}", e.german());
    }
    konnektor.set_fault(Fault::BadContext);
    let e = client.sign(&docs(1)).await.unwrap_err();
    assert!(matches!(e, KonnektorError::Context(_)), "{e:?}");
    assert!(e.german().contains("Mandant"));
    assert_eq!(konnektor.sign_calls(), 0);
}

#[actix_web::test]
async fn a_wrong_context_is_refused() {
    let (konnektor, _) = started();
    let mut s = settings(&konnektor, CardKind::Hba);
    s.context.workplace_id = "anderer-platz".into();
    let e = Client::new(s).unwrap().sign(&docs(1)).await.unwrap_err();
    assert!(matches!(e, KonnektorError::Context(_)), "{e:?}");
    assert!(e.german().contains("Arbeitsplatz-ID"), "{}", e.german());

    let mut s = settings(&konnektor, CardKind::Hba);
    s.context.client_system_id = "fremd".into();
    let e = Client::new(s).unwrap().status().await.unwrap_err();
    assert_eq!(
        e,
        KonnektorError::Context("Ungültige Clientsystem-ID".into())
    );
    assert_eq!(konnektor.sign_calls(), 0);
}

#[test]
fn faults_are_told_apart_by_their_gematik_codes_and_else_by_text() {
    let of = |codes: &[u32], text: &str| {
        KonnektorError::of_fault(soap::Fault {
            codes: codes.to_vec(),
            text: text.into(),
        })
    };
    assert_eq!(of(&[4008], "x"), KonnektorError::CardNotInserted);
    assert_eq!(
        of(&[4000, 4063], "Signatur fehlgeschlagen"),
        KonnektorError::PinBlocked
    );
    assert_eq!(
        of(&[4043], "Timeout bei der PIN-Eingabe"),
        KonnektorError::PinNotEntered
    );
    assert_eq!(
        of(&[4049], "Abbruch durch den Benutzer"),
        KonnektorError::PinNotEntered
    );
    for code in [4004, 4005, 4006, 4010, 4011, 4014, 4021] {
        assert!(
            matches!(of(&[code], "t"), KonnektorError::Context(_)),
            "{code}"
        );
    }
    // By text when the codes say nothing known.
    assert_eq!(of(&[], "PIN blockiert"), KonnektorError::PinBlocked);
    assert_eq!(
        of(&[4999], "Timeout bei der PIN-Eingabe"),
        KonnektorError::PinNotEntered
    );
    assert_eq!(
        of(&[], "Karte nicht als gesteckt identifiziert"),
        KonnektorError::CardNotInserted
    );
    let other = of(&[4060, 4001], "Ressource belegt");
    assert_eq!(
        other,
        KonnektorError::Fault {
            code: Some(4060),
            message: "Ressource belegt".into()
        }
    );
    assert_eq!(
        other.german(),
        "Konnektor meldet Fehler 4060: Ressource belegt"
    );
    for e in [
        KonnektorError::Unreachable("x".into()),
        KonnektorError::Timeout,
        KonnektorError::CardNotInserted,
        KonnektorError::PinBlocked,
        KonnektorError::PinNotEntered,
        KonnektorError::Protocol("unexpected EOF".into()),
    ] {
        let text = e.german();
        assert!(!text.contains("EOF") && !text.is_empty(), "{text}");
    }
}

#[actix_web::test]
async fn the_test_konnektor_refuses_a_sign_document_out_of_schema_order() {
    let (konnektor, _) = started();
    let ctx = soap::context(&konnektor.context());
    // TvMode before Context: not the order of SignatureService.xsd.
    let body = format!(
        "<SIG:SignDocument xmlns:SIG=\"{}\" xmlns:CONN=\"{}\" xmlns:dss=\"{}\">\
         <CONN:CardHandle>HBA-1</CONN:CardHandle><SIG:TvMode>NONE</SIG:TvMode>{ctx}\
         <SIG:JobNumber>AUR-001</SIG:JobNumber><SIG:SignRequest RequestID=\"r\"><SIG:Document>\
         <dss:Base64Data MimeType=\"text/plain; charset=utf-8\">eA==</dss:Base64Data></SIG:Document>\
         <SIG:IncludeRevocationInfo>true</SIG:IncludeRevocationInfo></SIG:SignRequest></SIG:SignDocument>",
        soap::SIG_75,
        soap::CONN,
        soap::DSS
    );
    let response = reqwest::Client::new()
        .post(format!("{}/ws/SignatureService", konnektor.base_url()))
        .header("SOAPAction", format!("\"{}#SignDocument\"", soap::SIG_75))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(soap::envelope(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let xml = response.bytes().await.unwrap();
    let f = soap::fault(&soap::parse(&xml).unwrap()).unwrap();
    assert_eq!(f.codes, [4000]);
    assert!(f.text.contains("Context"), "{}", f.text);

    // A SOAPAction that names another operation is refused too.
    let job = format!(
        "<SIG:GetJobNumber xmlns:SIG=\"{}\">{ctx}</SIG:GetJobNumber>",
        soap::SIG_75
    );
    let response = reqwest::Client::new()
        .post(format!("{}/ws/SignatureService", konnektor.base_url()))
        .header("SOAPAction", format!("\"{}#SignDocument\"", soap::SIG_75))
        .body(soap::envelope(&job))
        .send()
        .await
        .unwrap();
    let xml = response.bytes().await.unwrap();
    let f = soap::fault(&soap::parse(&xml).unwrap()).unwrap();
    assert!(f.text.contains("SOAPAction"), "{}", f.text);
    assert_eq!(konnektor.sign_calls(), 0);
}

#[actix_web::test]
async fn the_test_konnektor_is_switched_and_counted_over_http() {
    let (konnektor, client) = started();
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/control/fault", konnektor.base_url()))
        .body("pin_blocked")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    assert_eq!(
        client.sign(&docs(1)).await.unwrap_err(),
        KonnektorError::PinBlocked
    );
    let bad = http
        .put(format!("{}/control/fault", konnektor.base_url()))
        .body("egal")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    http.put(format!("{}/control/fault", konnektor.base_url()))
        .body("none\n")
        .send()
        .await
        .unwrap();
    client.sign(&docs(3)).await.unwrap();
    let totals: serde_json::Value = serde_json::from_str(
        &http
            .get(format!("{}/control/totals", konnektor.base_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(totals, serde_json::json!({"sign_calls": 1, "documents": 3}));
    for f in [
        Fault::None,
        Fault::CardNotInserted,
        Fault::PinBlocked,
        Fault::PinNotEntered,
        Fault::Timeout,
        Fault::BadContext,
    ] {
        assert_eq!(Fault::parse(f.code()), Some(f));
    }
}

#[actix_web::test]
async fn a_silent_konnektor_is_a_timeout_and_a_closed_port_unreachable() {
    let (konnektor, _) = started();
    konnektor.set_fault(Fault::Timeout);
    let mut s = settings(&konnektor, CardKind::Hba);
    s.timeout = Duration::from_millis(800);
    let e = Client::new(s).unwrap().sign(&docs(1)).await.unwrap_err();
    assert_eq!(e, KonnektorError::Timeout);
    assert!(e.german().contains("Zeitüberschreitung"));

    let mut s = settings(&konnektor, CardKind::Hba);
    s.base_url = "http://127.0.0.1:9".into();
    let e = Client::new(s).unwrap().sign(&docs(1)).await.unwrap_err();
    assert!(matches!(e, KonnektorError::Unreachable(_)), "{e:?}");
    assert!(e.german().contains("nicht erreichbar"));
}

#[actix_web::test]
async fn status_names_the_konnektor_and_card_and_the_smcb_signs_with_its_own_key() {
    let (konnektor, client) = started();
    let status = client.status().await.unwrap();
    assert_eq!(status.signature_service_version, "7.5.6");
    assert_eq!(status.card_holder.as_deref(), Some("Dr. med. Maria Muster"));
    assert!(status.comfort_available);
    assert!(
        status.product.contains("Test-Konnektor"),
        "{}",
        status.product
    );

    let smcb = Client::new(settings(&konnektor, CardKind::SmcB)).unwrap();
    let signed = smcb.sign(&docs(1)).await.unwrap();
    let Signed::Ok { p7s, .. } = &signed[0] else {
        panic!("{signed:?}");
    };
    let v = crate::signature::verify(p7s).unwrap();
    assert!(v.signer.subject.contains("TEST-ONLY SMC-B"));

    let mut wrong = settings(&konnektor, CardKind::Hba);
    wrong.iccsn = Some("0000".into());
    let e = Client::new(wrong)
        .unwrap()
        .sign(&docs(1))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        KonnektorError::CardNotInserted,
        "no card with that ICCSN"
    );
}

#[actix_web::test]
async fn the_comfort_signature_can_be_activated() {
    let (_konnektor, client) = started();
    assert_eq!(client.signature_mode().await.unwrap(), SignatureMode::Pin);
    assert_eq!(
        client.activate_comfort().await.unwrap(),
        SignatureMode::Comfort { remaining: None }
    );
    assert_eq!(
        client.signature_mode().await.unwrap(),
        SignatureMode::Comfort {
            remaining: Some(250)
        }
    );
    client.sign(&docs(3)).await.unwrap();
    assert_eq!(
        client.signature_mode().await.unwrap(),
        SignatureMode::Comfort {
            remaining: Some(247)
        }
    );
}

#[test]
fn the_auth_debug_never_shows_secrets() {
    let a = Auth::Basic {
        user: "u".into(),
        password: "geheim".into(),
    };
    assert!(!format!("{a:?}").contains("geheim"));
    let c = Auth::ClientCert {
        pem: b"-----BEGIN PRIVATE KEY-----".to_vec(),
    };
    assert!(!format!("{c:?}").contains("PRIVATE"));
}
