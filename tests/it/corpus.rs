//! A generated corpus of bad input (issue #20): for every field of the capture form, the JSON
//! API and the FHIR import, at least 100 bad values — every control character, the invisible
//! formatting characters, overlong values, wrong types, implausible dates — each in an
//! otherwise valid certificate. Each must be answered 422 naming the field, and write nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{form_fields, valid_body, TestApp};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

/// Characters no line of a certificate may hold besides the C0/C1 controls.
const INVISIBLE: &[char] = &[
    '\u{00AD}',
    '\u{061C}',
    '\u{115F}',
    '\u{180E}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{200E}',
    '\u{200F}',
    '\u{2028}',
    '\u{2029}',
    '\u{202A}',
    '\u{202B}',
    '\u{202C}',
    '\u{202D}',
    '\u{202E}',
    '\u{2060}',
    '\u{2061}',
    '\u{2062}',
    '\u{2063}',
    '\u{2064}',
    '\u{2066}',
    '\u{2067}',
    '\u{2068}',
    '\u{2069}',
    '\u{206A}',
    '\u{206F}',
    '\u{3164}',
    '\u{FE00}',
    '\u{FE0F}',
    '\u{FEFF}',
    '\u{FFA0}',
    '\u{FFF9}',
    '\u{FFFB}',
    '\u{FFFE}',
    '\u{FFFF}',
    '\u{E000}',
    '\u{F8FF}',
    '\u{1FFFE}',
    '\u{E0001}',
    '\u{E0041}',
    '\u{E007F}',
    '\u{F0000}',
    '\u{10FFFD}',
];

/// Bad variants of a field's valid value: each control or invisible character inside it, and
/// values far too long. Whitespace only inside, never at an edge: trimming an edge is the
/// decided normalisation.
fn bad_values(valid: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = valid.chars().collect();
    let mid = chars.len() / 2;
    let inside = |c: char| -> Option<String> {
        if (mid == 0 || mid == chars.len()) && c.is_whitespace() {
            return None;
        }
        let mut s: String = chars[..mid].iter().collect();
        s.push(c);
        s.extend(&chars[mid..]);
        Some(s)
    };
    let controls = (0u32..0x20).chain(0x7F..0xA0).filter_map(char::from_u32);
    let mut out: Vec<String> = controls
        .chain(INVISIBLE.iter().copied())
        .filter_map(inside)
        .collect();
    out.push("x".repeat(max + 1));
    out.push(format!("{valid}{}", "9".repeat(max.max(1))));
    out.push("Ü".repeat(4_000));
    out
}

/// Dates that are no date of this certificate, as typed and as the API sends them.
fn bad_dates() -> Vec<String> {
    let mut out: Vec<String> = [
        "0000-01-01",
        "1889-12-31",
        "3000-01-01",
        "2026-02-30",
        "2026-13-01",
        "2026-00-10",
        "32.01.2026",
        "01.13.2026",
        "1.1.",
        "heute",
        "2026/01/01",
        "20260101",
        "2026-1-1x",
        "-2026-01-01",
        "2026-01-01T00:00:00Z",
        "+002026-01-01",
        "1e3",
        "NaN",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    out.extend(bad_values("2026-01-01", 10));
    out
}

/// A field of the capture: its form name (also the JSON path), a valid value and its kind.
struct Field {
    name: &'static str,
    valid: &'static str,
    max: usize,
    date: bool,
    required: bool,
}

const fn text(name: &'static str, valid: &'static str, max: usize) -> Field {
    Field {
        name,
        valid,
        max,
        date: false,
        required: true,
    }
}

const fn optional(name: &'static str, valid: &'static str, max: usize) -> Field {
    Field {
        name,
        valid,
        max,
        date: false,
        required: false,
    }
}

const fn date(name: &'static str, required: bool) -> Field {
    Field {
        name,
        valid: "",
        max: 10,
        date: true,
        required,
    }
}

const FIELDS: &[Field] = &[
    text("kind", "ERST", 4),
    text("patient.kvnr", "A123456780", 10),
    text("patient.first_name", "Jürgen", 45),
    text("patient.last_name", "Müller-Lüdenscheidt", 45),
    date("patient.birth_date", true),
    text("patient.street", "Straße", 46),
    text("patient.house_number", "5a", 9),
    text("patient.postal_code", "30159", 10),
    text("patient.city", "Hannover", 40),
    text("insurer.ik", "109500969", 9),
    text("insurer.name", "AOK Niedersachsen", 45),
    text("insurer.insured_type", "1", 1),
    optional("insurer.wop", "17", 2),
    optional("insurer.special_group", "00", 2),
    optional("insurer.dmp", "00", 2),
    date("insurer.valid_until", false),
    optional("doctor_lanr", "838382202", 9),
    date("issued_on", false),
    date("period.since", true),
    date("period.until", true),
    date("period.determined_on", true),
    optional("cause", "arbeitsunfall", 20),
    optional("measures.other", "Physiotherapie", 70),
    text("diagnoses[0].code", "J06.9", 7),
    optional("diagnoses[0].certainty", "G", 1),
    optional("diagnoses[0].side", "L", 1),
    optional("diagnosis_text", "Belastung", 70),
];

/// The bad values of a field, at least 100.
fn corpus(f: &Field) -> Vec<String> {
    let mut values = if f.date {
        bad_dates()
    } else {
        bad_values(f.valid, f.max)
    };
    if f.required {
        values.push(String::new());
    }
    assert!(values.len() >= 100, "{}: only {}", f.name, values.len());
    values
}

/// Sets `a.b[0].c` in a JSON body.
fn set(body: &mut Value, path: &str, value: Value) {
    let mut at = body;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*part, None),
        };
        let last = i + 1 == parts.len();
        let slot = &mut at[name];
        let slot = match index {
            Some(k) => &mut slot[k],
            None => slot,
        };
        if last {
            *slot = value;
            return;
        }
        if slot.is_null() {
            *slot = json!({});
        }
        at = slot;
    }
}

fn names_field(errors: &Value, field: &str) -> bool {
    let top = field.split(['.', '[']).next().unwrap_or(field);
    errors["errors"].as_array().is_some_and(|list| {
        list.iter().any(|e| {
            let f = e["field"].as_str().unwrap_or_default();
            f == field || f.starts_with(field) || f == top || field.starts_with(f) && !f.is_empty()
        })
    })
}

const PARALLEL: usize = 8;

/// Sends every case (8 at a time); `check` answers what was wrong with one, if anything. Fails
/// the test listing every wrong answer.
async fn all_refused<C, F, Fut>(cases: Vec<C>, check: F)
where
    F: Fn(C) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let total = cases.len();
    let wrong: Vec<String> = stream::iter(cases)
        .map(check)
        .buffer_unordered(PARALLEL)
        .filter_map(|w| async move { w })
        .collect()
        .await;
    assert!(
        wrong.is_empty(),
        "{} of {total}:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn every_bad_value_of_the_json_api_is_a_422_naming_its_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post_api(&valid_body()).await.status(),
        201,
        "the base is valid"
    );
    let before = app.rows();
    let mut cases: Vec<(String, Value)> = Vec::new();
    for f in FIELDS {
        for bad in corpus(f) {
            let mut body = valid_body();
            set(&mut body, f.name, Value::String(bad));
            cases.push((f.name.to_owned(), body));
        }
        // Wrong JSON types, and null where a value is required.
        let mut wrong = vec![
            json!(true),
            json!(12),
            json!(["x"]),
            json!({"x": 1}),
            json!(1.5),
        ];
        if f.required {
            wrong.push(Value::Null);
        }
        for v in wrong {
            let mut body = valid_body();
            set(&mut body, f.name, v);
            cases.push((f.name.to_owned(), body));
        }
    }
    // Whole parts of the wrong shape.
    for (part, v) in [
        ("mail", json!([])),
        ("mail", json!({})),
        ("mail", json!("x")),
        ("patient", json!([])),
        ("patient", json!(["A123456780"])),
        ("period", json!([])),
        ("insurer", json!(true)),
        ("measures", json!([true])),
        ("diagnoses", json!({})),
        ("diagnoses", json!([["J06.9"]])),
        ("sick_pay_case", json!("vielleicht")),
        ("sick_pay_case", json!(2)),
        ("backdating_confirmed", json!([])),
    ] {
        let mut body = valid_body();
        set(&mut body, part, v);
        cases.push((part.to_owned(), body));
    }
    all_refused(cases, |(field, body)| {
        let app = &app;
        async move {
            let r = app.post_api(&body).await;
            let status = r.status().as_u16();
            let errors: Value = r.json().await.unwrap_or(Value::Null);
            (status != 422 || !names_field(&errors, &field))
                .then(|| format!("{field} = {}: {status} {errors}", body_value(&body, &field)))
        }
    })
    .await;
    assert_eq!(app.rows(), before, "nothing written");
}

fn body_value(body: &Value, field: &str) -> String {
    let pointer = format!("/{}", field.replace(['.', '['], "/").replace(']', ""));
    let v = body.pointer(&pointer).cloned().unwrap_or(Value::Null);
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(50).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

#[tokio::test]
async fn every_bad_value_of_the_capture_form_is_a_422_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let before = app.rows();
    let mut cases: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for f in FIELDS {
        for bad in corpus(f) {
            let mut form = form_fields(&csrf, &uuid::Uuid::new_v4().to_string());
            match form.iter_mut().find(|(k, _)| k == f.name) {
                Some(pair) => pair.1 = bad,
                None => form.push((f.name.to_owned(), bad)),
            }
            cases.push((f.name.to_owned(), form));
        }
    }
    all_refused(cases, |(field, form)| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/certificates"))
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status != 422).then(|| {
                let v = form
                    .iter()
                    .find(|(k, _)| *k == field)
                    .map(|(_, v)| v.clone());
                format!("{field} = {:?}: {status}", v.unwrap_or_default())
            })
        }
    })
    .await;
    assert_eq!(app.rows(), before, "nothing written");
}

/// The GKV example of the KBV, valid as it is.
fn bundle() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gematik-eau/KBV_PR_EAU_Bundle/1.2.1/valid/Beispiel_1-eAU_ERST_GKV.xml"
    );
    std::fs::read_to_string(path).unwrap()
}

/// A value as it stands in an XML attribute: escaped, control characters as references.
fn attribute(v: &str) -> String {
    v.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '"' => "&quot;".to_owned(),
            c if c.is_control() => format!("&#{};", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

/// Values of the KBV example, found by their element and value.
const BUNDLE_FIELDS: &[(&str, &str, usize)] = &[
    ("family", "Königsstein", 45),
    ("given", "Ludger", 45),
    ("city", "Berlin", 40),
    ("postalCode", "10623", 10),
    ("value", "X234567890", 10),
    ("value", "104212059", 9),
    ("value", "838382202", 9),
    ("value", "031234567", 9),
    ("code", "E10.20", 7),
    ("birthDate", "1935-06-22", 10),
    ("start", "2020-02-03", 10),
    ("timestamp", "2022-09-29T12:30:02Z", 20),
];

async fn import(app: &TestApp, body: String) -> (u16, String) {
    let r = app
        .client
        .post(app.url("/api/v1/fhir/eau"))
        .bearer_auth("demo-token")
        .header("Content-Type", "application/fhir+xml")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn every_bad_value_and_shape_of_the_fhir_import_is_a_422_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let valid = bundle();
    let mut cases: Vec<(String, String)> = Vec::new();
    for (element, value, max) in BUNDLE_FIELDS {
        let needle = format!("<{element} value=\"{value}\"");
        assert!(valid.contains(&needle), "the example has {needle}");
        let mut values = bad_values(value, *max);
        if element.contains("Date") || *element == "start" || *element == "timestamp" {
            values
                .extend(["0000-01-01", "1889-12-31", "3000-01-01", "2022-02-30"].map(String::from));
        }
        values.push(String::new());
        assert!(values.len() >= 100, "{element}: only {}", values.len());
        for bad in values {
            let to = format!("<{element} value=\"{}\"", attribute(&bad));
            let shown: String = bad.chars().take(20).collect();
            cases.push((
                format!("{element}={value} as {shown:?}"),
                valid.replacen(&needle, &to, 1),
            ));
        }
    }
    // Documents of the wrong shape.
    let body = valid.split_once("<Bundle").unwrap().1;
    for (what, doc) in [
        (
            "no namespace",
            valid.replacen(" xmlns=\"http://hl7.org/fhir\"", "", 1),
        ),
        (
            "other namespace",
            valid.replacen("http://hl7.org/fhir\"", "http://example.org/fhir\"", 1),
        ),
        (
            "DOCTYPE",
            format!("<!DOCTYPE Bundle [<!ENTITY x \"y\">]><Bundle{body}"),
        ),
        (
            "entity",
            valid.replacen("value=\"Ludger\"", "value=\"&x;\"", 1),
        ),
        (
            "CDATA",
            valid.replacen(
                "<given value=\"Ludger\" />",
                "<given><![CDATA[Ludger]]></given>",
                1,
            ),
        ),
        (
            "text",
            valid.replacen(
                "<given value=\"Ludger\" />",
                "<given value=\"Ludger\">Ludger</given>",
                1,
            ),
        ),
        ("trailing element", format!("{valid}<Bundle/>")),
        ("trailing text", format!("{valid}garbage")),
        (
            "processing instruction",
            valid.replacen("<Bundle", "<?evil x?><Bundle", 1),
        ),
        (
            "attributes",
            valid.replacen(
                "<given value=\"Ludger\"",
                &format!(
                    "<given value=\"Ludger\"{}",
                    (0..40).map(|i| format!(" a{i}=\"1\"")).collect::<String>()
                ),
                1,
            ),
        ),
        ("unclosed", valid.replacen("</Bundle>", "", 1)),
        ("mismatched", valid.replacen("</Bundle>", "</Bündel>", 1)),
        (
            "duplicate attribute",
            valid.replacen(
                "<given value=\"Ludger\"",
                "<given value=\"Ludger\" value=\"X\"",
                1,
            ),
        ),
        (
            "undeclared prefix",
            valid.replacen("<given value", "<x:given value", 1),
        ),
        ("NUL byte", valid.replacen("Ludger", "Lud\0ger", 1)),
    ] {
        assert_ne!(doc, valid, "{what}: changed");
        cases.push((what.to_owned(), doc));
    }
    all_refused(cases, |(what, doc)| {
        let app = &app;
        async move {
            let (status, answer) = import(app, doc).await;
            let outcome = answer.contains("OperationOutcome");
            (status != 422 || !outcome).then(|| format!("{what}: {status}"))
        }
    })
    .await;
    assert_eq!(app.rows(), (0, 0, 0), "nothing stored, nothing queued");
    let (status, _) = import(&app, valid).await;
    assert_eq!(status, 201, "the unchanged example is imported");
}
