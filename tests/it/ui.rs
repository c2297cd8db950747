//! The German staff UI, black-box over HTTP (forms, redirects, cookies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, form_fields as form, hidden, TestApp};

fn set(form: &mut [(String, String)], key: &str, value: &str) {
    form.iter_mut().find(|(k, _)| k == key).expect(key).1 = value.to_owned();
}

async fn post_form(app: &TestApp, path: &str, form: &[(String, String)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_staff_page_requires_a_login() {
    let app = TestApp::spawn().await;
    for path in [
        "/certificates",
        "/certificates/new",
        "/certificates/00000000-0000-0000-0000-000000000000",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/login");
    }
    let r = post_form(&app, "/certificates", &form("x", "y")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn a_wrong_password_is_refused_in_german() {
    let app = TestApp::spawn().await;
    let r = common::post_login(&app, &app.client, "demo", "falsch").await;
    assert_eq!(r.status(), 401);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Benutzername oder Passwort ist falsch"));
}

#[tokio::test]
async fn staff_capture_a_certificate_with_umlauts_and_find_it_in_the_list() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let page = app.get_text("/certificates/new").await;
    assert!(page.contains("Praxis Dr. Muster"), "practice pre-filled");
    assert!(page.contains("838382202"), "doctor pre-filled");
    let token = hidden(&page, "form_token");

    let r = post_form(&app, "/certificates", &form(&csrf, &token)).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/certificates/"));
    let detail = app.get_text(&location).await;
    assert!(detail.contains("Müller-Lüdenscheidt, Jürgen"));
    assert!(detail.contains("Straße 5"));
    assert!(detail.contains("J06.9 G"));
    assert!(
        detail.contains("wartet auf Versand"),
        "queued for the insurer"
    );

    let list = app.get_text("/certificates").await;
    assert!(list.contains("Müller-Lüdenscheidt, Jürgen"));
    let found = post_form(
        &app,
        "/certificates/search",
        &[
            ("csrf".into(), csrf.clone()),
            ("name".into(), "LÜDEN".into()),
        ],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        found.contains("Müller-Lüdenscheidt, Jürgen"),
        "case-insensitive umlaut search"
    );
    let none = post_form(
        &app,
        "/certificates/search",
        &[
            ("csrf".into(), csrf.clone()),
            ("kvnr".into(), "B123456781".into()),
        ],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(none.contains("Keine Bescheinigungen gefunden"));
}

#[tokio::test]
async fn title_name_parts_and_a_postfach_are_captured_and_shown_on_the_staff_pages() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let page = app.get_text("/certificates/new").await;
    for field in [
        "patient.title",
        "patient.name_addition",
        "patient.name_prefix",
        "patient.post_box",
    ] {
        assert!(
            page.contains(&format!("name=\"{field}\"")),
            "{field} on the form"
        );
    }
    let token = hidden(&page, "form_token");
    let mut f = form(&csrf, &token);
    f.extend(
        [
            ("patient.title", "Dr."),
            ("patient.name_addition", "Freiherr"),
            ("patient.name_prefix", "von"),
            ("patient.post_box", "124589"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    // A Postfach with a street: both named, in German, nothing stored.
    let r = post_form(&app, "/certificates", &f).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Straße: bei einer Postfach-Anschrift leer lassen"),
        "{page}"
    );
    assert!(page.contains("Hausnummer: bei einer Postfach-Anschrift leer lassen"));
    assert!(page.contains("value=\"124589\""), "typed Postfach kept");
    assert!(
        page.contains("<details class=\"more\" open>"),
        "the parts stay open"
    );
    assert_eq!(app.rows(), (0, 0, 0));

    set(&mut f, "patient.street", "");
    set(&mut f, "patient.house_number", "");
    let r = post_form(&app, "/certificates", &f).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let detail = app.get_text(&location).await;
    assert!(
        detail.contains("Müller-Lüdenscheidt, Dr. Jürgen Freiherr von"),
        "{detail}"
    );
    assert!(
        detail.contains("Postfach: 124589, 30159 Hannover"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_double_submitted_form_creates_one_certificate() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let token = hidden(&app.get_text("/certificates/new").await, "form_token");
    let f = form(&csrf, &token);
    let (a, b) = tokio::join!(
        post_form(&app, "/certificates", &f),
        post_form(&app, "/certificates", &f)
    );
    assert_eq!(
        (a.status(), b.status()),
        (303.try_into().unwrap(), 303.try_into().unwrap())
    );
    assert_eq!(a.headers()["location"], b.headers()["location"]);
    assert_eq!(app.rows(), (1, 1, 1));
}

#[tokio::test]
async fn errors_are_shown_per_field_in_german_and_keep_what_was_typed() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let mut f = form(&csrf, "4f3c2a51-0000-4000-8000-000000000001");
    set(&mut f, "patient.kvnr", "A123456789");
    set(&mut f, "patient.first_name", "<script>alert(1)</script>");
    set(&mut f, "patient.birth_date", "30.02.2026");
    set(&mut f, "diagnoses[1].code", "XYZ");
    let r = post_form(&app, "/certificates", &f).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("Versicherten-Nr.: Prüfziffer stimmt nicht"));
    assert!(page.contains("Geburtsdatum: ungültiges Format"));
    assert!(page.contains("ICD-10-Code: ungültiges Format"));
    assert!(page.contains("value=\"A123456789\""), "typed KVNR kept");
    assert!(page.contains("value=\"30.02.2026\""), "typed date kept");
    assert!(
        page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
        "name escaped"
    );
    assert!(!page.contains("<script>alert(1)</script>"));
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn html_in_a_name_is_stored_and_shown_escaped() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let mut f = form(&csrf, "4f3c2a51-0000-4000-8000-000000000002");
    set(&mut f, "patient.last_name", "<b>Fett</b>");
    let r = post_form(&app, "/certificates", &f).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    let errs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("class=\"error\"") || l.contains("<li>"))
        .collect();
    assert_eq!(status, 303, "{errs:?}");
    let list = app.get_text("/certificates").await;
    assert!(!list.contains("<b>Fett</b>"));
    assert!(list.contains("&#60;b&#62;Fett") || list.contains("&lt;b&gt;Fett"));
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    app.login().await;
    let r = post_form(
        &app,
        "/certificates",
        &form("forged", "4f3c2a51-0000-4000-8000-000000000003"),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn broken_utf8_in_a_form_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let body = format!("csrf={csrf}&patient.first_name=J%FCrgen");
    let r = app
        .client
        .post(app.url("/certificates"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("patient.first_name: kein gültiger Text"));
    assert_eq!(app.rows(), (0, 0, 0));
}

#[tokio::test]
async fn logging_out_ends_the_session() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let r = post_form(&app, "/logout", &[("csrf".into(), csrf)]).await;
    assert_eq!(r.status(), 303);
    let r = app
        .client
        .get(app.url("/certificates"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_dispatch_dashboard_lists_what_is_unsent_and_an_operator_records_a_stoerung() {
    let app = TestApp::spawn().await;
    app.login().await;
    let mut conn = app.db.conn().unwrap();
    au_relay::storage::upsert_destination(
        &mut conn,
        &au_relay::storage::DestinationConfig {
            ik: "109500969".into(),
            name: "AOK Niedersachsen".into(),
            push_url: Some("http://127.0.0.1:9/eau".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(app.post_api(&common::valid_body()).await.status(), 201);
    let page = app.get_text("/queue").await;
    assert!(page.contains("AOK Niedersachsen"));
    assert!(
        page.contains("Müller-Lüdenscheidt, Jürgen"),
        "unsent certificate listed"
    );
    assert!(page.contains("wartet auf Versand"));
    assert!(
        !page.contains("Störung melden"),
        "no dispatch configuration for staff"
    );

    let csrf = app.login_as("operator", "operator").await;
    let page = app.get_text("/queue").await;
    assert!(
        !page.contains("Müller-Lüdenscheidt"),
        "operators see no patient data"
    );
    let r = post_form(
        &app,
        "/queue/109500969/outage",
        &[("csrf".into(), csrf.clone()), ("on".into(), "true".into())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let dest = au_relay::storage::destination(&mut conn, "109500969")
        .unwrap()
        .unwrap();
    assert!(dest.outage);
    assert!(app.get_text("/queue").await.contains("Störung gemeldet"));
    let r = post_form(
        &app,
        "/queue/109500969/outage",
        &[("on".into(), "false".into())],
    )
    .await;
    assert_eq!(r.status(), 403, "no CSRF token, no change");
    let r = post_form(&app, "/queue/999999999/retry", &[("csrf".into(), csrf)]).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_eau_unsent_past_the_next_working_day_is_listed_for_posting_and_an_old_stoerung_asks_again(
) {
    use diesel::connection::SimpleConnection;
    let app = TestApp::spawn().await;
    app.login().await;
    let practice = common::demo_practice_id(&app.db);
    common::store_certificates(&app.db, &practice, "109500969", 1);
    let fresh = app.get_text("/queue").await;
    assert!(fresh.contains("Keine Ausfertigung muss heute per Post versandt werden"));

    let mut conn = app.db.conn().unwrap();
    conn.batch_execute("UPDATE deliveries SET created_at = '2026-11-02 09:00:00'")
        .unwrap();
    au_relay::storage::upsert_destination(
        &mut conn,
        &au_relay::storage::DestinationConfig {
            ik: "109500969".into(),
            name: "AOK Niedersachsen".into(),
            ..Default::default()
        },
    )
    .unwrap();
    au_relay::storage::set_outage(&mut conn, "109500969", true).unwrap();
    conn.batch_execute("UPDATE destinations SET outage_confirmed_at = '2026-11-01 09:00:00'")
        .unwrap();
    let page = app.get_text("/queue").await;
    assert!(
        page.contains("überfällig seit 03.11.2026"),
        "captured Monday 2 Nov, due Tuesday 3 Nov"
    );
    assert!(page.contains("KK-Ausfertigung drucken"));
    app.login_as("operator", "operator").await;
    let page = app.get_text("/queue").await;
    assert!(page.contains("Störung besteht weiter"));
}

#[tokio::test]
async fn repeated_wrong_passwords_throttle_the_account_with_a_german_message() {
    let app = TestApp::spawn().await;
    let attempt = |password: &'static str| common::post_login(&app, &app.client, "demo", password);
    for _ in 0..5 {
        assert_eq!(attempt("falsch").await.status(), 401);
    }
    let r = attempt("demo").await;
    assert_eq!(r.status(), 429, "even the right password waits");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Zu viele fehlgeschlagene Anmeldungen"));
}

#[tokio::test]
async fn a_login_issues_a_new_session_and_ends_the_presented_one() {
    let app = TestApp::spawn().await;
    app.login().await;
    let cookie = |r: &reqwest::Response| {
        r.cookies()
            .find(|c| c.name() == au_relay::web::SESSION_COOKIE)
            .map(|c| c.value().to_owned())
    };
    let first = common::post_login(&app, &app.client, "demo", "demo").await;
    let first_token = cookie(&first).unwrap();
    let second = common::post_login(&app, &app.client, "demo", "demo").await;
    let second_token = cookie(&second).unwrap();
    assert_ne!(first_token, second_token);
    let stale = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/certificates"))
        .header(
            "Cookie",
            format!("{}={first_token}", au_relay::web::SESSION_COOKIE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 303, "the replaced session no longer works");
}

#[tokio::test]
async fn an_idle_session_ends() {
    use diesel::connection::SimpleConnection;
    let app = TestApp::spawn().await;
    app.login().await;
    assert_eq!(
        app.client
            .get(app.url("/certificates"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.db
        .conn()
        .unwrap()
        .batch_execute("UPDATE sessions SET last_seen_at = '2026-01-01 00:00:00'")
        .unwrap();
    let r = app
        .client
        .get(app.url("/certificates"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn metrics_show_latency_backlog_and_destinations_without_personal_data() {
    let app = TestApp::spawn().await;
    au_relay::storage::upsert_destination(
        &mut app.db.conn().unwrap(),
        &au_relay::storage::DestinationConfig {
            ik: "109500969".into(),
            name: "AOK Niedersachsen".into(),
            push_url: Some("http://127.0.0.1:9/eau".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(app.post_api(&common::valid_body()).await.status(), 201);
    let m = app.get_text("/metrics").await;
    assert!(m.contains("au_relay_http_request_duration_seconds_count"));
    assert!(m.contains("au_relay_backlog{ik=\"109500969\"} 1"), "{m}");
    assert!(m.contains("au_relay_deliveries{state=\"pending\"} 1"));
    assert!(m.contains("au_relay_destination_up{ik=\"109500969\",breaker=\"closed\""));
    assert!(!m.contains("A123456780") && !m.contains("Müller"));
}

#[tokio::test]
async fn staff_cancel_a_certificate_after_confirming() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let r = app.post_api(&common::valid_body()).await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/certificates/{id}/cancel");
    let r = post_form(&app, &path, &[("csrf".into(), csrf.clone())]).await;
    assert_eq!(r.status(), 422, "without the confirmation box");
    let r = post_form(
        &app,
        &path,
        &[("csrf".into(), csrf), ("confirm".into(), "on".into())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let page = app.get_text(&format!("/certificates/{id}")).await;
    assert!(page.contains("Storniert am"));
    assert!(page.contains("zurückgezogen"));
}

#[tokio::test]
async fn a_practice_admin_declares_and_clears_a_practice_wide_stoerung() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let r = post_form(
        &app,
        "/queue/practice-outage",
        &[("csrf".into(), csrf.clone()), ("on".into(), "true".into())],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(app
        .get_text("/queue")
        .await
        .contains("Praxisweite Störung (TI) gemeldet seit"));
    post_form(
        &app,
        "/queue/practice-outage",
        &[("csrf".into(), csrf), ("on".into(), "false".into())],
    )
    .await;
    assert!(app
        .get_text("/queue")
        .await
        .contains("Keine praxisweite Störung gemeldet"));
}

#[tokio::test]
async fn an_operator_adds_an_insurer_destination_with_german_field_errors() {
    let app = TestApp::spawn().await;
    let csrf = app.login_as("operator", "operator").await;
    let bad = post_form(
        &app,
        "/queue/destinations",
        &[
            ("csrf".into(), csrf.clone()),
            ("ik".into(), "109500968".into()),
            ("name".into(), "".into()),
            ("push_url".into(), "ftp://x".into()),
        ],
    )
    .await;
    assert_eq!(bad.status(), 422);
    let text = bad.text().await.unwrap();
    assert!(
        text.contains("Prüfziffer")
            && text.contains("Name der Krankenkasse")
            && text.contains("Empfangsadresse")
    );
    let ok = post_form(
        &app,
        "/queue/destinations",
        &[
            ("csrf".into(), csrf),
            ("ik".into(), "109500969".into()),
            ("name".into(), "AOK Niedersachsen".into()),
            ("push_url".into(), "https://kasse.example/eau".into()),
            ("rate_per_minute".into(), "120".into()),
        ],
    )
    .await;
    assert_eq!(ok.status(), 303);
    let d = au_relay::storage::destination(&mut app.db.conn().unwrap(), "109500969")
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.push_url.as_deref(), d.rate_per_minute),
        (Some("https://kasse.example/eau"), Some(120))
    );
}

#[tokio::test]
async fn each_request_renews_the_idle_timeout_of_a_session() {
    use au_relay::storage::schema::sessions;
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    let app = TestApp::spawn().await;
    app.login().await;
    let ten_minutes_ago = (chrono::Utc::now() - chrono::Duration::minutes(10)).naive_utc();
    app.db
        .conn()
        .unwrap()
        .batch_execute(&format!(
            "UPDATE sessions SET last_seen_at = '{}'",
            ten_minutes_ago.format("%Y-%m-%d %H:%M:%S")
        ))
        .unwrap();
    assert_eq!(
        app.client
            .get(app.url("/certificates"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let seen: Option<chrono::NaiveDateTime> = sessions::table
        .select(sessions::last_seen_at)
        .first(&mut *app.db.conn().unwrap())
        .unwrap();
    let renewed = seen.unwrap();
    assert!(
        renewed > ten_minutes_ago + chrono::Duration::minutes(9),
        "last_seen_at renewed: {renewed}"
    );
}

/// Input as people type it (issue #18): an ICD code in lower case without its dot, a KVNR in
/// lower case, dates as T.M.JJ and TT.MM.JJ; stored as the KBV writes them.
#[tokio::test]
async fn codes_and_dates_are_taken_as_staff_type_them() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let token = hidden(&app.get_text("/certificates/new").await, "form_token");
    let t = common::today();
    let short = |d: chrono::NaiveDate| d.format("%-d.%-m.%y").to_string();
    let mut fields = form(&csrf, &token);
    for (name, value) in [
        ("diagnoses[0].code", "j069".to_owned()),
        ("patient.kvnr", "a123456780".to_owned()),
        ("patient.birth_date", "1.4.80".to_owned()),
        ("period.since", short(t)),
        (
            "period.until",
            (t + chrono::Duration::days(4))
                .format("%d.%m.%y")
                .to_string(),
        ),
        ("period.determined_on", short(t)),
        ("issued_on", short(t)),
    ] {
        fields.iter_mut().find(|(k, _)| k == name).unwrap().1 = value;
    }
    let r = post_form(&app, "/certificates", &fields).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let list = app
        .client
        .get(app.url("/api/v1/certificates"))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let c = app
        .client
        .get(app.url(&format!("/api/v1/certificates/{id}")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let cert = &c["certificate"];
    assert_eq!(cert["diagnoses"][0]["code"], "J06.9");
    assert_eq!(cert["patient"]["kvnr"], "A123456780");
    assert_eq!(cert["patient"]["birth_date"], "1980-04-01");
    assert_eq!(cert["period"]["since"], t.to_string());
    assert_eq!(
        cert["period"]["until"],
        (t + chrono::Duration::days(4)).to_string()
    );
}

/// "Folgebescheinigung erstellen" (issue #18): from the detail page, the form comes filled
/// with the patient, insurer and diagnoses, as FOLGE without "AU seit"; saved unchanged it is
/// the Folgebescheinigung of the same patient.
#[tokio::test]
async fn a_folgebescheinigung_is_made_from_the_erstbescheinigung_without_retyping() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let token = hidden(&app.get_text("/certificates/new").await, "form_token");
    let r = post_form(&app, "/certificates", &form(&csrf, &token)).await;
    let erst = r.headers()["location"].to_str().unwrap().to_owned();
    let detail = app.get_text(&erst).await;
    assert!(
        detail.contains(&format!("{erst}/folge")),
        "offered on the detail page"
    );
    assert!(
        app.get_text("/certificates")
            .await
            .contains(&format!("{erst}/folge")),
        "and in the list"
    );
    let page = app.get_text(&format!("{erst}/folge")).await;
    for filled in ["Müller-Lüdenscheidt", "A123456780", "109500969", "J06.9"] {
        assert!(page.contains(filled), "{filled} filled in");
    }
    // Submit the form as it came: every input and selection as the page has it.
    let fields = filled_fields(&page);
    assert_eq!(
        fields
            .iter()
            .find(|(k, _)| k == "kind")
            .map(|(_, v)| v.as_str()),
        Some("FOLGE")
    );
    assert!(
        fields
            .iter()
            .all(|(k, v)| k != "period.since" || v.is_empty()),
        "no AU seit"
    );
    let r = post_form(&app, "/certificates", &fields).await;
    assert_eq!(r.status(), 303, "saved without retyping");
    let folge = app
        .get_text(r.headers()["location"].to_str().unwrap())
        .await;
    assert!(folge.contains("Folgebescheinigung"));
    assert!(folge.contains("Müller-Lüdenscheidt, Jürgen"));
    assert!(folge.contains("J06.9 G"));
}

/// The values a browser would send for a form page: inputs with their value, the selected
/// option of each select, checked boxes.
fn filled_fields(page: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let marker = format!("{name}=\"");
        let start = tag.find(&marker)? + marker.len();
        Some(
            tag[start..]
                .split('"')
                .next()?
                .replace("&amp;", "&")
                .replace("&#x2F;", "/"),
        )
    };
    let mut out = Vec::new();
    let form = page
        .split("<form")
        .find(|f| f.contains("name=\"form_token\""))
        .unwrap();
    for part in form.split('<').skip(1) {
        let tag = part.split('>').next().unwrap_or_default();
        if tag.starts_with("input") {
            let Some(name) = attr(tag, "name") else {
                continue;
            };
            let kind = attr(tag, "type").unwrap_or_default();
            if (kind == "checkbox" || kind == "radio") && !tag.contains("checked") {
                continue;
            }
            out.push((name, attr(tag, "value").unwrap_or_default()));
        } else if tag.starts_with("select") {
            let name = attr(tag, "name").unwrap();
            let rest = &form[form.find(tag).unwrap()..];
            let options = rest.split("</select>").next().unwrap();
            let chosen = options
                .split("<option")
                .skip(1)
                .find(|o| o.contains("selected"))
                .or_else(|| options.split("<option").nth(1))
                .and_then(|o| attr(o, "value"))
                .unwrap_or_default();
            out.push((name, chosen));
        }
    }
    out
}

/// Times on staff pages are German local time (issue #18), not UTC.
#[tokio::test]
async fn the_detail_page_shows_german_local_time() {
    let app = TestApp::spawn().await;
    app.login().await;
    let r = app.post_api(&common::valid_body()).await;
    let body: serde_json::Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    let created: chrono::DateTime<chrono::Utc> =
        body["created_at"].as_str().unwrap().parse().unwrap();
    let local = au_relay::domain::berlin_time(created.naive_utc())
        .format("%d.%m.%Y %H:%M")
        .to_string();
    let detail = app.get_text(&format!("/certificates/{id}")).await;
    assert!(
        detail.contains(&format!("Gespeichert am {local} ")),
        "{local}"
    );
    assert!(!detail.contains(" UTC"), "no UTC on a staff page");
    let list = app.get_text("/certificates").await;
    assert!(list.contains(&local) && !list.contains(" UTC"));
}

fn day(d: chrono::NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

/// The dispatch list like the PVS (issue #18): status filter, capture date range, the post
/// deadline on the practice's Land calendar, the prints made and a KK button per unsent row.
#[tokio::test]
async fn the_dispatch_list_filters_and_shows_deadline_prints_and_the_kk_button() {
    use diesel::connection::SimpleConnection;
    let app = TestApp::spawn().await;
    app.login().await;
    let practice = common::demo_practice_id(&app.db);
    let ids = common::store_certificates(&app.db, &practice, "109500969", 3);
    let mut conn = app.db.conn().unwrap();
    conn.batch_execute(&format!(
        "UPDATE deliveries SET state = 'delivered', delivered_at = created_at WHERE certificate_id = '{}';
         UPDATE deliveries SET state = 'dead', attempts = 25, last_error = 'HTTP 500' WHERE certificate_id = '{}';",
        ids[0], ids[1]
    ))
    .unwrap();
    // A KK copy printed for the third.
    let r = app
        .client
        .get(app.url(&format!("/certificates/{}/pdf?copy=kk", ids[2])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let name = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        name.contains("_KK-Ausfertigung_") && name.ends_with(&format!("{}.pdf\"", &ids[2][..8])),
        "{name}"
    );

    let rows = |page: &str| -> Vec<String> {
        let table = page
            .split("<table class=\"list dispatch\">")
            .nth(1)
            .unwrap_or_default();
        ids.iter()
            .filter(|id| table.contains(&format!("/certificates/{id}\"")))
            .cloned()
            .collect()
    };
    let unsent = app.get_text("/queue").await;
    assert_eq!(
        rows(&unsent),
        [ids[1].clone(), ids[2].clone()],
        "default: nicht gesendet"
    );
    let post_by = au_relay::domain::add_working_days(
        au_relay::storage::practice_land(&mut conn, &practice).unwrap(),
        common::today(),
        1,
    );
    assert!(
        unsent.contains(&format!("per Post spätestens {}", day(post_by))),
        "deadline column"
    );
    assert!(unsent.contains(&format!("/certificates/{}/pdf?copy=kk", ids[2])));
    assert!(unsent.contains("KK A5 · "), "the print is listed: {unsent}");
    assert!(
        unsent.contains(" · demo</td>") || unsent.contains(" · demo<"),
        "by whom"
    );

    let failed = app.get_text("/queue?status=fehlerhaft").await;
    assert_eq!(rows(&failed), [ids[1].clone()]);
    assert!(failed.contains(
        "fehlgeschlagen: bitte prüfen<br><small class=\"attempts\">25 Versuche · HTTP 500</small>"
    ));
    let delivered = app.get_text("/queue?status=zugestellt").await;
    assert_eq!(rows(&delivered), [ids[0].clone()]);
    assert!(delivered.contains("zugestellt "));
    let all = app.get_text("/queue?status=alle").await;
    assert_eq!(rows(&all).len(), 3);
    let tomorrow = day(common::today() + chrono::Duration::days(1));
    let later = app
        .get_text(&format!("/queue?status=alle&von={tomorrow}"))
        .await;
    assert!(rows(&later).is_empty());
    assert!(later.contains("Keine Übermittlungen mit diesem Stand im gewählten Zeitraum."));
    let today = app
        .get_text(&format!(
            "/queue?status=alle&von={0}&bis={0}",
            day(common::today())
        ))
        .await;
    assert_eq!(rows(&today).len(), 3);
    let bad = app.get_text("/queue?status=kaputt&von=31.02.2026").await;
    assert!(bad.contains("Stand: alle, nicht gesendet, fehlerhaft oder zugestellt"));
    assert!(
        bad.contains("Erfasst von"),
        "the date error names the field"
    );

    // The detail page lists every print, the certificate list its send state.
    let detail = app.get_text(&format!("/certificates/{}", ids[2])).await;
    assert!(detail.contains("<h2>Ausdrucke</h2>") && detail.contains("KK A5 · "));
    let list = app.get_text("/certificates").await;
    assert!(list.contains("bei der Krankenkasse angekommen"));
    assert!(list.contains("fehlgeschlagen: bitte prüfen"));
    assert!(list.contains("wartet auf Versand"));
}

/// The error summary (issue #18): every error of the form at once, in form order, each named
/// as the form names the field and linked to it.
#[tokio::test]
async fn the_error_summary_is_in_form_order_with_links_and_the_forms_field_names() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let mut f = form(&csrf, "4f3c2a51-0000-4000-8000-000000000002");
    set(&mut f, "diagnoses[1].code", "XYZ");
    set(&mut f, "insurer.ik", "109500968");
    set(&mut f, "patient.kvnr", "A123456789");
    set(&mut f, "issued_on", "1.13.2026");
    let r = post_form(&app, "/certificates", &f).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    let summary = page.split("class=\"alert summary\"").nth(1).unwrap();
    let summary = summary.split("</div>").next().unwrap();
    assert!(
        summary.contains("Bitte korrigieren Sie 4 Angaben:"),
        "{summary}"
    );
    let order: Vec<usize> = [
        "href=\"#issued_on\">Ausstellungsdatum</a>",
        "href=\"#patient.kvnr\">Versicherten-Nr.</a>: Prüfziffer stimmt nicht",
        "href=\"#insurer.ik\">Kostenträgerkennung (IK)</a>",
        "href=\"#diagnoses[1].code\">ICD-10-Code 2</a>",
    ]
    .iter()
    .map(|item| summary.find(item).expect(item))
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "form order: {order:?}"
    );
    // Every link has its target on the page.
    for target in [
        "issued_on",
        "patient.kvnr",
        "insurer.ik",
        "diagnoses[1].code",
    ] {
        assert!(page.contains(&format!("id=\"{target}\"")), "{target}");
    }
}

/// "Endbescheinigung" is a box of its own beside the Erst/Folge choice, never one key away.
#[tokio::test]
async fn the_endbescheinigung_is_a_separate_explicit_choice() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let page = app.get_text("/certificates/new").await;
    assert!(page.contains(r#"<input type="radio" name="kind" value="ERST" checked>"#));
    assert!(page.contains(r#"<input type="checkbox" id="end" name="end">"#));
    assert!(
        !page.contains("ERST_END"),
        "no Endbescheinigung option beside ERST"
    );
    let token = hidden(&page, "form_token");
    let mut f = form(&csrf, &token);
    f.push(("end".into(), "on".into()));
    let r = post_form(&app, "/certificates", &f).await;
    assert_eq!(r.status(), 303);
    let detail = app
        .get_text(r.headers()["location"].to_str().unwrap())
        .await;
    assert!(detail.contains("Erstbescheinigung (Endbescheinigung)"));
}

async fn lookup(app: &TestApp, csrf: &str, path: &str, q: &str) -> serde_json::Value {
    let r = post_form(
        app,
        path,
        &[("csrf".into(), csrf.to_owned()), ("q".into(), q.to_owned())],
    )
    .await;
    assert_eq!(r.status(), 200, "{path} {q}");
    r.json().await.unwrap()
}

/// The patient lookup (issue #18): name, birth date or KVNR of an earlier certificate of the
/// practice offers the whole patient and insurer block; by POST, never another practice's.
#[tokio::test]
async fn the_patient_lookup_offers_the_practices_earlier_patients_by_name_birth_date_or_kvnr() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    assert_eq!(app.post_api(&common::valid_body()).await.status(), 201);
    assert_eq!(app.post_api(&common::valid_body()).await.status(), 201);
    for q in [
        "müll",
        "Müller-Lüdenscheidt Jürgen",
        "1.4.1980",
        "a1234567",
        "Jürgen, 01.04.1980",
    ] {
        let found = lookup(&app, &csrf, "/certificates/lookup/patients", q).await;
        let hits = found["patients"].as_array().unwrap();
        assert_eq!(hits.len(), 1, "{q}: one person, although two certificates");
        assert_eq!(hits[0]["patient"]["kvnr"], "A123456780");
        assert_eq!(hits[0]["patient"]["birth_date"], "01.04.1980");
        assert_eq!(hits[0]["patient"]["postal_code"], "30159");
        assert_eq!(hits[0]["insurer"]["ik"], "109500969");
        assert_eq!(hits[0]["insurer"]["insured_type"], "1");
        assert!(hits[0]["label"]
            .as_str()
            .unwrap()
            .starts_with("Müller-Lüdenscheidt, Jürgen, geb. 01.04.1980"));
    }
    for q in ["Schmidt", "02.04.1980", "B1", "M", ""] {
        let found = lookup(&app, &csrf, "/certificates/lookup/patients", q).await;
        assert_eq!(found["patients"].as_array().unwrap().len(), 0, "{q}");
    }
    // Without the session's CSRF token: refused.
    let r = post_form(
        &app,
        "/certificates/lookup/patients",
        &[("q".into(), "müll".into())],
    )
    .await;
    assert_eq!(r.status(), 403);
    // Another practice finds nothing of practice A.
    let b = common::add_practice_b(&app.db);
    common::add_user(
        &app.db,
        Some(&b),
        "mfa-b",
        "Lange-Passphrase-1",
        au_relay::auth::Role::Staff,
    );
    let csrf_b = app.login_as("mfa-b", "Lange-Passphrase-1").await;
    let found = lookup(&app, &csrf_b, "/certificates/lookup/patients", "müll").await;
    assert_eq!(found["patients"].as_array().unwrap().len(), 0);
    // The form loads the script that asks.
    assert!(app
        .get_text("/certificates/new")
        .await
        .contains("/static/lookup.js"));
    let js = app
        .client
        .get(app.url("/static/lookup.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
}

/// The insurer lookup (issue #18) from the KBV Kostenträgerstammdatei, made into CSV by
/// `scripts/update-sdkt.py`: "AOK Nieder" offers the IK; an IK the file lists as expired is a
/// German warning on the form and the certificate, never a refusal.
#[tokio::test]
async fn the_insurer_lookup_offers_the_ik_from_the_sdkt_and_warns_on_an_expired_one() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sdkt.csv");
    let out = std::process::Command::new("python3")
        .arg("scripts/update-sdkt.py")
        .arg("tests/fixtures/sdkt/kts-sample.xml")
        .arg("-o")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config = common::config();
    config.sdkt_file = Some(csv);
    let app = TestApp::spawn_with(config).await;
    let csrf = app.login().await;
    let found = lookup(&app, &csrf, "/certificates/lookup/insurers", "AOK Nieder").await;
    let hits = found["insurers"].as_array().unwrap();
    assert_eq!(hits[0]["ik"], "109500969", "{found}");
    assert!(hits[0]["warning"].is_null());
    assert!(
        hits.iter().all(|h| h["ik"] != "104212058"),
        "wrong check digit not offered"
    );
    let found = lookup(&app, &csrf, "/certificates/lookup/insurers", "101317004").await;
    let warning = found["insurers"][0]["warning"].as_str().unwrap();
    assert!(warning.contains("nur bis 30.09.2017 gültig"), "{warning}");

    // A certificate with that IK is stored (a warning, not an error) and says so.
    let mut body = common::valid_body();
    body["insurer"]["ik"] = "101317004".into();
    let r = app.post_api(&body).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = app.get_text(&format!("/certificates/{id}")).await;
    assert!(detail.contains("laut Kostenträgerstammdatei nur bis 30.09.2017 gültig"));
    // The insurers configured for dispatch are offered too.
    au_relay::storage::upsert_destination(
        &mut app.db.conn().unwrap(),
        &au_relay::storage::DestinationConfig {
            ik: "108018007".into(),
            name: "Testkasse Nord".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let found = lookup(&app, &csrf, "/certificates/lookup/insurers", "testkasse n").await;
    assert_eq!(found["insurers"][0]["ik"], "108018007");
    assert_eq!(found["insurers"][0]["source"], "Versand");
    let found = lookup(&app, &csrf, "/certificates/lookup/insurers", "1080").await;
    assert_eq!(found["insurers"][0]["name"], "Testkasse Nord");
}

/// A Storno in the dispatch list carries no post deadline and no KK button: the post duty
/// belongs to a valid eAU, not to its cancellation (issue #18, review).
#[tokio::test]
async fn a_storno_in_the_dispatch_list_asks_for_no_kk_copy() {
    use diesel::connection::SimpleConnection;
    let app = TestApp::spawn().await;
    app.login().await;
    let id = app.capture_id(&common::valid_body()).await;
    app.db
        .conn()
        .unwrap()
        .batch_execute("UPDATE deliveries SET state = 'delivered', delivered_at = created_at")
        .unwrap();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/certificates/{id}/cancel")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let page = app.get_text("/queue").await;
    let table = page
        .split("<table class=\"list dispatch\">")
        .nth(1)
        .unwrap();
    assert!(table.contains("Storno · IK"), "{table}");
    assert!(!table.contains(&format!("/certificates/{id}/pdf?copy=kk")));
    assert!(table.contains("storniert") && !table.contains("per Post spätestens"));
}
