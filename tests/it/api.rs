//! The JSON API for practice software, black-box against a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, valid_body, TestApp};
use serde_json::{json, Value};

async fn errors_of(r: reqwest::Response) -> Vec<(String, String)> {
    let body: Value = r.json().await.expect("json errors");
    body["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_valid_certificate_is_stored_with_its_document_uuid_and_location() {
    let app = TestApp::spawn().await;
    let r = app.post_api(&valid_body()).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(body["certificate"]["document_id"], id);
    assert_eq!(location, format!("/api/v1/certificates/{id}"));
    assert_eq!(
        body["certificate"]["patient"]["last_name"],
        "Müller-Lüdenscheidt"
    );
    assert_eq!(body["certificate"]["practice"]["bsnr"], "031234567");
    assert_eq!(body["certificate"]["doctor"]["lanr"], "838382202");
    assert_eq!(app.rows(), (1, 1, 1));

    let fetched = app.get_api_json(&location).await;
    assert_eq!(fetched, body);
}

#[tokio::test]
async fn the_answer_to_a_capture_with_a_mail_is_what_a_read_returns() {
    let app = TestApp::spawn().await;
    let mut body = valid_body();
    body["mail"] =
        json!({"address": "juergen@example.org", "consent": true, "employer_copy": true});
    let r = app.post_api(&body).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let answered: Value = r.json().await.unwrap();
    assert_eq!(answered["mails"][0]["state"], "pending");
    assert_eq!(answered["mails"][0]["employer_copy"], true);
    let fetched = app.get_api_json(&location).await;
    assert_eq!(fetched, answered);
}

#[tokio::test]
async fn an_invalid_certificate_names_every_failing_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mut body = valid_body();
    body["patient"]["kvnr"] = json!("A123456789");
    body["patient"]["birth_date"] = json!("2026-02-30");
    body["insurer"]["ik"] = json!("109500968");
    body["diagnoses"] = Value::Array(vec![json!({"code": "J06.9"}); 7]);
    body["period"]["since"] = Value::Null;
    let r = app.post_api(&body).await;
    assert_eq!(r.status(), 422);
    let errors = errors_of(r).await;
    let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "diagnoses",
            "insurer.ik",
            "patient.birth_date",
            "patient.kvnr",
            "period.since"
        ]
    );
    let kvnr = &errors.iter().find(|(f, _)| f == "patient.kvnr").unwrap().1;
    assert_eq!(kvnr, "Versicherten-Nr.: Prüfziffer stimmt nicht");
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn bad_bodies_get_a_german_4xx_naming_the_field_and_no_row() {
    let app = TestApp::spawn().await;
    let mut wrong_type = valid_body();
    wrong_type["patient"]["first_name"] = json!(42);
    let mut script = valid_body();
    script["patient"]["last_name"] = json!("'; DROP TABLE certificates; --");
    script["patient"]["first_name"] = json!("x".repeat(46));
    let cases: Vec<(reqwest::Body, &str, u16, &str)> = vec![
        ("".into(), "application/json", 422, "body"),
        ("{".into(), "application/json", 422, "body"),
        (
            b"{\"kind\": \"\xff\"}".to_vec().into(),
            "application/json",
            422,
            "kind",
        ),
        ("42".into(), "application/json", 422, "body"),
        (
            wrong_type.to_string().into(),
            "application/json",
            422,
            "patient.first_name",
        ),
        (
            script.to_string().into(),
            "application/json",
            422,
            "patient.first_name",
        ),
        (
            json!({"unknown": 1}).to_string().into(),
            "application/json",
            422,
            "unknown",
        ),
        (valid_body().to_string().into(), "text/plain", 415, ""),
        ("x".repeat(70 * 1024).into(), "application/json", 413, ""),
    ];
    for (body, content_type, status, field) in cases {
        let r = app.post_raw(body, content_type).await;
        assert_eq!(r.status(), status, "{field}");
        let errors = errors_of(r).await;
        assert!(!errors.is_empty());
        if !field.is_empty() {
            assert_eq!(errors[0].0, field);
        }
        assert!(
            errors
                .iter()
                .all(|(_, m)| !m.is_empty() && !m.contains("expected")),
            "{errors:?}"
        );
    }
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn sql_looking_names_are_stored_as_plain_text() {
    let app = TestApp::spawn().await;
    let mut body = valid_body();
    body["patient"]["last_name"] = json!("O'Brien\"; DROP TABLE x; --");
    let r = app.post_api(&body).await;
    assert_eq!(r.status(), 201);
    let stored: Value = r.json().await.unwrap();
    assert_eq!(
        stored["certificate"]["patient"]["last_name"],
        "O'Brien\"; DROP TABLE x; --"
    );
    assert_eq!(app.rows(), (1, 1, 1));
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_certificate() {
    let app = TestApp::spawn().await;
    let send = || {
        app.client
            .post(app.url("/api/v1/certificates"))
            .bearer_auth("demo-token")
            .header("Idempotency-Key", "praxis-4711")
            .json(&valid_body())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.rows(), (1, 1, 1));
}

#[tokio::test]
async fn without_a_valid_token_nothing_is_visible() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/api/v1/certificates"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(app.url("/api/v1/certificates"))
        .bearer_auth("wrong")
        .json(&valid_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn the_list_is_paginated_newest_first_and_searchable() {
    let app = TestApp::spawn().await;
    for name in ["Adler", "Berger", "Cäsar"] {
        let mut body = valid_body();
        body["patient"]["last_name"] = json!(name);
        assert_eq!(app.post_api(&body).await.status(), 201);
    }
    let page = |q: &'static str| {
        app.client
            .get(app.url(&format!("/api/v1/certificates?{q}")))
            .bearer_auth("demo-token")
            .send()
    };
    let p1: Value = page("per_page=2").await.unwrap().json().await.unwrap();
    assert_eq!(p1["total"], 3);
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["items"][0]["name"], "Cäsar, Jürgen");
    let p2: Value = page("per_page=2&page=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert_eq!(p2["items"][0]["name"], "Adler, Jürgen");
    let found: Value = page("name=c%C3%A4s").await.unwrap().json().await.unwrap();
    assert_eq!(found["total"], 1);
    let bad = page("kvnr=A123456780").await.unwrap();
    assert_eq!(bad.status(), 422, "KVNR never in a URL");

    let by_kvnr: Value = app
        .client
        .post(app.url("/api/v1/certificates/search"))
        .bearer_auth("demo-token")
        .json(&json!({"kvnr": "A123456780", "per_page": 10}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_kvnr["total"], 3);
}

#[tokio::test]
async fn another_practice_sees_none_of_the_certificates() {
    let app = TestApp::spawn().await;
    let r = app.post_api(&valid_body()).await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (practice, mut doctor) = au_relay::domain::demo_practice().unwrap();
    let mut other = practice.clone();
    other.bsnr = au_relay::domain::Bsnr::parse("021234567").unwrap();
    doctor.lanr = au_relay::domain::Lanr::parse("123456699").unwrap();
    let token = au_relay::auth::token_hash("other-token");
    au_relay::storage::add_practice(
        &mut app.db.conn().unwrap(),
        &other,
        &doctor,
        None,
        Some(&token),
    )
    .unwrap();

    let r = app
        .client
        .get(app.url(&format!("/api/v1/certificates/{id}")))
        .bearer_auth("other-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let list: Value = app
        .client
        .get(app.url("/api/v1/certificates"))
        .bearer_auth("other-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn a_print_only_certificate_is_stored_without_an_insurer_delivery() {
    let app = TestApp::spawn().await;
    let mut body = valid_body();
    body["insurer"]["special_group"] = json!("07");
    assert_eq!(app.post_api(&body).await.status(), 201);
    assert_eq!(app.rows(), (1, 0, 1));
}

#[tokio::test]
async fn a_revoked_token_no_longer_works_and_use_is_recorded() {
    let app = TestApp::spawn().await;
    let practice = common::demo_practice_id(&app.db);
    assert_eq!(app.post_api(&valid_body()).await.status(), 201);
    let mut conn = app.db.conn().unwrap();
    let tokens = au_relay::storage::list_api_tokens(&mut conn, &practice).unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].last_used_at.is_some());
    assert!(
        !au_relay::storage::revoke_api_token(&mut conn, &practice, "abc").unwrap(),
        "short ids never match"
    );
    assert!(au_relay::storage::revoke_api_token(&mut conn, &practice, &tokens[0].id).unwrap());
    assert_eq!(app.post_api(&valid_body()).await.status(), 401);
}
