//! FHIR throughput per core: writing a certificate as a KBV eAU bundle and reading (parsing and
//! validating) a bundle back, and a signed (`.p7s`) import next to an unsigned one.
//! `cargo bench --bench fhir`; figures in BENCHMARKS.md "FHIR".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use au_relay::domain::{demo_practice, CaptureContext, Certificate, CertificateDraft};
use au_relay::fhir;
use chrono::{NaiveDate, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uuid::Uuid;

fn certificate(n_diagnoses: usize) -> Certificate {
    let (practice, doctor) = demo_practice().unwrap();
    let ctx = CaptureContext {
        practice,
        doctors: vec![doctor],
        today: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        document_id: Uuid::from_u128(42),
    };
    let codes = ["J06.9", "M54.5", "S82.28", "E10.20", "N08.3", "S42.3"];
    let draft: CertificateDraft = serde_json::from_value(serde_json::json!({
        "kind": "ERST",
        "patient": {
            "kvnr": "A123456780", "first_name": "Jürgen", "last_name": "Müller-Lüdenscheidt",
            "birth_date": "1980-04-01", "street": "Hauptstraße", "house_number": "5",
            "postal_code": "30159", "city": "Hannover"
        },
        "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "insured_type": "1", "wop": "17"},
        "period": {"since": "2026-11-24", "until": "2026-11-28", "determined_on": "2026-11-25"},
        "diagnoses": codes[..n_diagnoses].iter().map(|c| serde_json::json!({"code": c})).collect::<Vec<_>>(),
        "diagnosis_text": "Fieber seit drei Tagen",
        "measures": {"d_arzt": true, "other": "Physiotherapie"}
    }))
    .unwrap();
    Certificate::from_draft(&draft, &ctx).unwrap()
}

fn bench(c: &mut Criterion) {
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 30, 0).unwrap();
    let kbv = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "tests/fixtures/gematik-eau/KBV_PR_EAU_Bundle/1.2.1/valid/Beispiel_1-eAU_ERST_GKV.xml",
    ))
    .unwrap();
    for n in [1, 6] {
        let cert = certificate(n);
        let xml = fhir::write_at(&cert, at).unwrap();
        let mut g = c.benchmark_group(format!("fhir/{n}_icd"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("write", |b| {
            b.iter(|| fhir::write_at(black_box(&cert), at).unwrap())
        });
        g.bench_function("read", |b| b.iter(|| fhir::read(black_box(&xml)).unwrap()));
        g.finish();
        println!("fhir/{n}_icd bundle size: {} bytes", xml.len());
    }
    let mut g = c.benchmark_group("fhir/kbv_example");
    g.throughput(Throughput::Elements(1));
    g.bench_function("read", |b| b.iter(|| fhir::read(black_box(&kbv)).unwrap()));
    g.finish();

    // A signed import next to the unsigned one: the CMS check, then the same read.
    let p7s = signed(&kbv);
    println!("signed kbv_example: {} bytes", p7s.len());
    let mut g = c.benchmark_group("import/kbv_example");
    g.throughput(Throughput::Elements(1));
    g.bench_function("unsigned", |b| {
        b.iter(|| fhir::read(black_box(&kbv)).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| au_relay::signature::verify(black_box(&p7s)).unwrap())
    });
    g.bench_function("signed", |b| {
        b.iter(|| {
            let v = au_relay::signature::verify(black_box(&p7s)).unwrap();
            fhir::read(&v.content).unwrap()
        })
    });
    g.finish();
}

/// The bundle as a CAdES enveloping signature (RSA 2048, SHA-256) by a generated certificate,
/// as a Konnektor's `SignDocument` makes it.
fn signed(content: &[u8]) -> Vec<u8> {
    use openssl::cms::{CMSOptions, CmsContentInfo};
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Bench Signer").unwrap();
    let name = name.build();
    let mut cert = x509::X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = cert.build();
    CmsContentInfo::sign(
        Some(&cert),
        Some(&key),
        None,
        Some(content),
        CMSOptions::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
