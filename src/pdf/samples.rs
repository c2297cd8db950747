//! Sample certificates for tests, benchmarks and the example that writes sample PDFs.
//! Built through [`Certificate::from_draft`], so they are valid by construction.

use chrono::NaiveDate;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{demo_practice, CaptureContext, Certificate, CertificateDraft};

/// Why a sample could not be built (a bug in the sample, never in production data).
pub type SampleError = String;

/// The capture day of every sample: 25.11.2026.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default()
}

fn build(draft: serde_json::Value, id: u128) -> Result<Certificate, SampleError> {
    let (practice, doctor) = demo_practice().map_err(|e| e.to_string())?;
    let ctx = CaptureContext {
        practice,
        doctors: vec![doctor],
        today: today(),
        document_id: Uuid::from_u128(id),
    };
    let draft: CertificateDraft = serde_json::from_value(draft).map_err(|e| e.to_string())?;
    Certificate::from_draft(&draft, &ctx).map_err(|errors| format!("{errors:?}"))
}

fn patient() -> serde_json::Value {
    json!({
        "kvnr": "A123456780", "first_name": "Jürgen", "last_name": "Müller-Lüdenscheidt",
        "birth_date": "1980-04-01", "street": "Große Straße", "house_number": "5a",
        "postal_code": "30159", "city": "Hannover"
    })
}

/// ERST: umlauts in the name, two diagnoses, no cause.
pub fn erst() -> Result<Certificate, SampleError> {
    build(
        json!({
            "kind": "ERST",
            "patient": patient(),
            "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "wop": "17", "insured_type": "1"},
            "period": {"since": "2026-11-24", "until": "2026-11-28", "determined_on": "2026-11-25"},
            "diagnoses": [{"code": "J06.9", "certainty": "G"}, {"code": "M54.5", "side": "L"}]
        }),
        0x0e57,
    )
}

/// FOLGE: no "AU seit", Versorgungsleiden (SER), a diagnosis hint.
pub fn folge() -> Result<Certificate, SampleError> {
    build(
        json!({
            "kind": "FOLGE",
            "patient": patient(),
            "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "insured_type": "3",
                        "special_group": "04", "dmp": "01"},
            "period": {"until": "2026-12-04", "determined_on": "2026-11-25"},
            "cause": "3",
            "diagnoses": [{"code": "F43.2", "certainty": "G"}],
            "diagnosis_text": "Anpassungsstörung nach Ereignis"
        }),
        0xf01,
    )
}

/// ERST_END in the Krankengeld case after a sonstiger Unfall.
pub fn erst_end() -> Result<Certificate, SampleError> {
    build(
        json!({
            "kind": "ERST_END",
            "patient": patient(),
            "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "insured_type": "5"},
            "period": {"since": "2026-11-23", "until": "2026-11-30", "determined_on": "2026-11-24"},
            "cause": "1",
            "sick_pay_case": true,
            "diagnoses": [{"code": "S93.40", "certainty": "G", "side": "R"}]
        }),
        0xe4d,
    )
}

/// FOLGE_END with everything ticked: work accident, D-Arzt, all measures, Krankengeld,
/// six diagnoses with certainty and side, a diagnosis hint with an umlaut.
pub fn full() -> Result<Certificate, SampleError> {
    build(
        json!({
            "kind": "FOLGE_END",
            "patient": patient(),
            "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "wop": "03",
                        "insured_type": "1", "valid_until": "2027-12-31"},
            "period": {"until": "2026-12-20", "determined_on": "2026-11-25"},
            "cause": "2",
            "measures": {"d_arzt": true, "rehabilitation": true, "reintegration": true,
                         "other": "Physiotherapie, Arbeitsplatzbegehung"},
            "sick_pay_case": true,
            "diagnoses": [
                {"code": "S82.28", "certainty": "G", "side": "R"},
                {"code": "M54.5", "certainty": "V", "side": "L"},
                {"code": "J06.9", "certainty": "G"},
                {"code": "E10.20", "certainty": "Z"},
                {"code": "U07.1", "certainty": "A"},
                {"code": "T14.0", "certainty": "G", "side": "B"}
            ],
            "diagnosis_text": "Sturz auf Treppe, überwiegend Knie"
        }),
        0xf011,
    )
}

/// Every name and address field at its maximum length.
pub fn long_names() -> Result<Certificate, SampleError> {
    build(
        json!({
            "kind": "ERST",
            "patient": {
                "kvnr": "A123456780",
                "first_name": "Maximiliane-Friederike Anneliese Wilhelmine Ü",
                "last_name": "Schmidt-Überlingen-Großkopf von Hohenzollernw",
                "title": "Prof. Dr. med. habil",
                "name_addition": "Erbprinzessin Gräfin",
                "name_prefix": "von und zu der Alten",
                "birth_date": "1961-02-28",
                "street": "Bürgermeister-Hermann-Müller-Straße am Großmar",
                "house_number": "123 a-b/c",
                "postal_code": "30159",
                "city": "Frankfurt am Main-Höchst-Unterliederbach"
            },
            "insurer": {"ik": "109500969",
                        "name": "Betriebskrankenkasse Überregional Saarpfalz-2",
                        "wop": "38", "insured_type": "1"},
            "period": {"since": "2026-11-25", "until": "2026-12-09", "determined_on": "2026-11-25"},
            "diagnoses": [{"code": "K52.9"}]
        }),
        0x1019,
    )
}

/// All samples with a short name, for loops in tests and the example.
pub fn all() -> Result<Vec<(&'static str, Certificate)>, SampleError> {
    Ok(vec![
        ("erst", erst()?),
        ("folge", folge()?),
        ("erst_end", erst_end()?),
        ("full", full()?),
        ("long_names", long_names()?),
    ])
}
