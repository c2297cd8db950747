//! Roles in practice: the practice admin's users, master data and audit view, password changes,
//! the operator's practices and tokens, and what every new form does with bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{self, add_user, browser, demo_practice_id, TestApp};
use au_relay::auth::Role;
use au_relay::storage;
use diesel::connection::SimpleConnection;

type Form = Vec<(&'static str, String)>;

async fn post(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    form: &Form,
) -> reqwest::Response {
    client.post(app.url(path)).form(form).send().await.unwrap()
}

fn with_csrf(csrf: &str, pairs: &[(&'static str, &str)]) -> Form {
    let mut form: Form = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    form.push(("csrf", csrf.to_owned()));
    form
}

fn count(app: &TestApp, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let rows: Vec<N> = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .load(&mut *app.db.conn().unwrap())
        .unwrap();
    rows[0].n
}

#[tokio::test]
async fn a_practice_admin_adds_a_user_under_the_password_rules_and_deactivates_them() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let c = &app.client;
    let add = |user: &str, password: &str, repeat: &str| {
        with_csrf(
            &csrf,
            &[
                ("username", user),
                ("password", password),
                ("password_repeat", repeat),
                ("role", "staff"),
            ],
        )
    };
    for (form, message) in [
        (add("mfa.neu", "kurz", "kurz"), "mindestens 12 Zeichen"),
        (
            add("mfa.neu", "xx-mfa.neu-xxxx", "xx-mfa.neu-xxxx"),
            "Benutzernamen nicht enthalten",
        ),
        (
            add("mfa.neu", "Lange-Passphrase-1", "Lange-Passphrase-2"),
            "stimmt nicht überein",
        ),
        (
            add("a b", "Lange-Passphrase-1", "Lange-Passphrase-1"),
            "Benutzername: nur",
        ),
        (
            add("demo", "Lange-Passphrase-1", "Lange-Passphrase-1"),
            "bereits vergeben",
        ),
    ] {
        let r = post(c, &app, "/admin/users", &form).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains(message), "{message}");
    }
    let r = post(
        c,
        &app,
        "/admin/users",
        &add("mfa.neu", "Lange-Passphrase-1", "Lange-Passphrase-1"),
    )
    .await;
    assert_eq!(r.status(), 303);
    let page = app.get_text("/admin/users").await;
    assert!(page.contains("mfa.neu") && page.contains("Praxispersonal"));

    let (mfa, _) = browser(&app, "mfa.neu", "Lange-Passphrase-1").await;
    assert_eq!(
        mfa.get(app.url("/certificates"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        mfa.get(app.url("/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        403,
        "staff do not manage users"
    );

    let id = storage::list_users(&mut app.db.conn().unwrap(), &demo_practice_id(&app.db))
        .unwrap()
        .into_iter()
        .find(|u| u.username == "mfa.neu")
        .unwrap()
        .id;
    let r = post(
        c,
        &app,
        &format!("/admin/users/{id}/deactivate"),
        &with_csrf(&csrf, &[]),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        mfa.get(app.url("/certificates"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "the deactivated user's session ended"
    );
    let (_, again) = common::try_login(&app, "mfa.neu", "Lange-Passphrase-1").await;
    assert_eq!(again, 401);
    assert!(app
        .get_text("/admin/users")
        .await
        .contains("deaktiviert seit"));

    let me = storage::find_user(&mut app.db.conn().unwrap(), "demo")
        .unwrap()
        .unwrap()
        .id;
    let r = post(
        c,
        &app,
        &format!("/admin/users/{me}/deactivate"),
        &with_csrf(&csrf, &[]),
    )
    .await;
    assert_eq!(r.status(), 422, "not the own account");
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_the_other_sessions() {
    let app = TestApp::spawn().await;
    let practice = demo_practice_id(&app.db);
    add_user(
        &app.db,
        Some(&practice),
        "mfa2",
        "Alte-Passphrase-1",
        Role::Staff,
    );
    let (first, csrf) = browser(&app, "mfa2", "Alte-Passphrase-1").await;
    let (second, _) = browser(&app, "mfa2", "Alte-Passphrase-1").await;
    let change = |current: &str, new: &str| {
        with_csrf(
            &csrf,
            &[
                ("current", current),
                ("password", new),
                ("password_repeat", new),
            ],
        )
    };
    let r = post(
        &first,
        &app,
        "/account/password",
        &change("falsch", "Neue-Passphrase-1"),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Bisheriges Passwort: stimmt nicht"));
    let r = post(
        &first,
        &app,
        "/account/password",
        &change("Alte-Passphrase-1", "mfa2mfa2mfa2mfa2"),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = post(
        &first,
        &app,
        "/account/password",
        &change("Alte-Passphrase-1", "Neue-Passphrase-1"),
    )
    .await;
    assert_eq!(r.status(), 303);

    assert_eq!(
        first
            .get(app.url("/certificates"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let other = second.get(app.url("/certificates")).send().await.unwrap();
    assert_eq!(other.status(), 303, "the other session ended");
    let old = common::try_login(&app, "mfa2", "Alte-Passphrase-1").await.1;
    let new = common::try_login(&app, "mfa2", "Neue-Passphrase-1").await.1;
    assert_eq!((old, new), (401, 303));
}

#[tokio::test]
async fn the_audit_view_filters_and_never_shows_health_data() {
    let app = TestApp::spawn().await;
    app.login().await;
    let r = app.post_api(&common::valid_body()).await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get_text(&format!("/certificates/{id}")).await;
    app.get_text(&format!("/certificates/{id}/pdf?copy=kk"))
        .await;

    let all = app.get_text("/admin/audit").await;
    assert!(all.contains("Einträge: 3"), "{all}");
    for secret in ["A123456780", "J06.9", "Müller", "Jürgen"] {
        assert!(!all.contains(secret), "{secret} in the audit view");
    }
    let viewed = app.get_text("/admin/audit?action=certificate.viewed").await;
    assert!(viewed.contains("Einträge: 1"));
    let by_demo = app.get_text("/admin/audit?user=demo").await;
    assert!(
        by_demo.contains("Einträge: 2"),
        "viewed and printed by demo"
    );
    let by_cert = app
        .get_text(&format!("/admin/audit?certificate={id}"))
        .await;
    assert!(by_cert.contains("Einträge: 3"));
    let today = common::today().format("%d.%m.%Y").to_string();
    let tomorrow = (common::today() + chrono::Duration::days(1))
        .format("%d.%m.%Y")
        .to_string();
    let dated = app
        .get_text(&format!("/admin/audit?from={today}&to={today}"))
        .await;
    assert!(dated.contains("Einträge: 3"));
    let later = app.get_text(&format!("/admin/audit?from={tomorrow}")).await;
    assert!(later.contains("Einträge: 0"));
    let wildcard = app.get_text("/admin/audit?user=%25").await;
    assert!(wildcard.contains("Einträge: 0"), "% is literal");

    for bad in [
        "certificate=x%27%20OR%201%3D1%20--",
        "from=32.13.2026",
        "page=abc",
        "unknown=1",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/admin/audit?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{bad}");
    }
}

#[tokio::test]
async fn the_database_refuses_to_change_or_delete_audit_rows() {
    let app = TestApp::spawn().await;
    assert_eq!(app.post_api(&common::valid_body()).await.status(), 201);
    let before = app.rows().2;
    assert_eq!(before, 1);
    let mut conn = app.db.conn().unwrap();
    assert!(conn
        .batch_execute("UPDATE audit_log SET actor = 'x'")
        .is_err());
    assert!(conn.batch_execute("DELETE FROM audit_log").is_err());
    if common::backend() == "postgres" {
        assert!(conn.batch_execute("TRUNCATE audit_log").is_err());
    }
    drop(conn);
    assert_eq!(app.rows().2, before);
}

#[tokio::test]
async fn an_admin_changes_the_master_data_with_german_field_errors() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let form = |name: &str, postal: &str| {
        with_csrf(
            &csrf,
            &[
                ("name", name),
                ("street", "Hauptstraße 1"),
                ("postal_code", postal),
                ("city", "Hannover"),
                ("phone", "0511 123456"),
            ],
        )
    };
    let r = post(&app.client, &app, "/admin/practice", &form("", "3015")).await;
    assert_eq!(r.status(), 422);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("Name der Praxis: 1 bis 80 Zeichen") && text.contains("PLZ: fünf Ziffern")
    );
    let r = post(
        &app.client,
        &app,
        "/admin/practice",
        &form("Praxis 😀", "30159"),
    )
    .await;
    assert_eq!(r.status(), 422, "not printable on the form");
    let r = post(
        &app.client,
        &app,
        "/admin/practice",
        &form("Praxis Dr. Neu", "30159"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(app
        .get_text("/admin/practice?saved=1")
        .await
        .contains("Praxis Dr. Neu"));
    let (p, _) =
        storage::master_data(&mut app.db.conn().unwrap(), &demo_practice_id(&app.db)).unwrap();
    assert_eq!(p.name, "Praxis Dr. Neu");
}

#[tokio::test]
async fn an_operator_adds_a_practice_and_creates_lists_and_revokes_tokens() {
    let app = TestApp::spawn().await;
    let csrf = app.login_as("operator", "operator").await;
    let c = &app.client;
    let practice = |bsnr: &str| {
        with_csrf(
            &csrf,
            &[
                ("bsnr", bsnr),
                ("name", "Praxis C"),
                ("street", "Weg 2"),
                ("postal_code", "10115"),
                ("city", "Berlin"),
                ("phone", "030 1234"),
                ("land", "BE"),
                ("lanr", "838382202"),
                ("doctor_name", "Dr. C"),
                ("admin_username", "verwaltung.c"),
                ("admin_password", "Lange-Passphrase-1"),
            ],
        )
    };
    let r = post(c, &app, "/operator/practices", &practice("031234567")).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Praxis existiert bereits"));
    assert_eq!(count(&app, "practices"), 1, "nothing half-written");
    assert_eq!(
        count(&app, "users"),
        3,
        "demo, operator and the insurer clerk kasse"
    );
    let r = post(c, &app, "/operator/practices", &practice("221234567")).await;
    assert_eq!(r.status(), 422, "no KV region 22");
    let r = post(c, &app, "/operator/practices", &practice("171234567")).await;
    assert_eq!(r.status(), 303);
    assert!(app.get_text("/operator").await.contains("171234567"));
    let (admin_c, _) = browser(&app, "verwaltung.c", "Lange-Passphrase-1").await;
    assert_eq!(
        admin_c
            .get(app.url("/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A token for practice C's software: shown once, used, listed with its use, revoked.
    let r = post(
        c,
        &app,
        "/operator/tokens",
        &with_csrf(
            &csrf,
            &[
                ("kind", "practice"),
                ("owner", "171234567"),
                ("label", "PVS C"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), 303, "post/redirect/get");
    assert_eq!(r.headers()["location"], "/operator/tokens/created");
    let page = app.get_text("/operator/tokens/created").await;
    let token = page
        .split("<code>")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 64);
    assert!(
        !app.get_text("/operator").await.contains(&token),
        "shown only once"
    );
    let reload = app
        .client
        .get(app.url("/operator/tokens/created"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reload.status(),
        303,
        "a reload shows no token and creates none"
    );
    let listed = app.get_text("/operator").await;
    assert_eq!(listed.matches("PVS C").count(), 1, "one token, not two");
    let api = |token: String| {
        app.client
            .get(app.url("/api/v1/certificates"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(api(token.clone()).await.unwrap().status(), 200);
    let listed = app.get_text("/operator").await;
    assert!(listed.contains("PVS C"));
    let id = au_relay::auth::token_hash(&token)[..12].to_owned();
    assert!(listed.contains(&id));
    let revoke = |id: &str| {
        with_csrf(
            &csrf,
            &[("kind", "practice"), ("owner", "171234567"), ("id", id)],
        )
    };
    for bad in ["%%%%%%%%%%%%", "abc", "'; DELETE FROM api_tokens; --"] {
        let r = post(c, &app, "/operator/tokens/revoke", &revoke(bad)).await;
        assert_eq!(r.status(), 404, "{bad}");
    }
    assert_eq!(api(token.clone()).await.unwrap().status(), 200);
    let r = post(c, &app, "/operator/tokens/revoke", &revoke(&id)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(api(token).await.unwrap().status(), 401);
    assert!(app.get_text("/operator").await.contains("widerrufen"));

    // An insurer token, revoked the same way.
    let r = post(
        c,
        &app,
        "/operator/tokens",
        &with_csrf(
            &csrf,
            &[
                ("kind", "insurer"),
                ("owner", "109500969"),
                ("label", "AOK"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), 303);
    let page = app.get_text("/operator/tokens/created").await;
    let token = page
        .split("<code>")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .unwrap()
        .to_owned();
    let pull = |token: String| {
        app.client
            .get(app.url("/api/insurer/v1/documents"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(pull(token.clone()).await.unwrap().status(), 200);
    let id = au_relay::auth::token_hash(&token)[..12].to_owned();
    let r = post(
        c,
        &app,
        "/operator/tokens/revoke",
        &with_csrf(
            &csrf,
            &[("kind", "insurer"), ("owner", "109500969"), ("id", &id)],
        ),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(pull(token).await.unwrap().status(), 401);
}

/// The forms of each role, with a body that would pass.
type Pairs = Vec<(&'static str, &'static str)>;

fn forms() -> Vec<(Role, &'static str, Pairs)> {
    vec![
        (
            Role::Admin,
            "/admin/users",
            vec![
                ("username", "x.neu"),
                ("password", "Lange-Passphrase-1"),
                ("password_repeat", "Lange-Passphrase-1"),
            ],
        ),
        (
            Role::Admin,
            "/admin/practice",
            vec![
                ("name", "P"),
                ("street", "S 1"),
                ("postal_code", "30159"),
                ("city", "H"),
                ("phone", "1"),
            ],
        ),
        (
            Role::Admin,
            "/account/password",
            vec![
                ("current", "demo"),
                ("password", "Lange-Passphrase-1"),
                ("password_repeat", "Lange-Passphrase-1"),
            ],
        ),
        (Role::Admin, "/queue/practice-outage", vec![("on", "true")]),
        (Role::Admin, "/certificates/search", vec![("name", "x")]),
        (Role::Admin, "/logout", vec![]),
        (
            Role::Operator,
            "/operator/practices",
            vec![("bsnr", "171234567")],
        ),
        (
            Role::Operator,
            "/operator/tokens",
            vec![("kind", "insurer"), ("owner", "109500969"), ("label", "x")],
        ),
        (
            Role::Operator,
            "/operator/tokens/revoke",
            vec![
                ("kind", "insurer"),
                ("owner", "109500969"),
                ("id", "000000000000"),
            ],
        ),
        (
            Role::Operator,
            "/queue/destinations",
            vec![("ik", "109500969"), ("name", "x")],
        ),
        (
            Role::Operator,
            "/queue/109500969/outage",
            vec![("on", "true")],
        ),
    ]
}

async fn as_role(app: &TestApp, role: Role) -> (reqwest::Client, String) {
    match role {
        Role::Operator => browser(app, "operator", "operator").await,
        _ => browser(app, "demo", "demo").await,
    }
}

#[tokio::test]
async fn every_form_refuses_a_missing_or_foreign_csrf_token_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, foreign) = browser(&app, "demo", "demo").await;
    for (role, path, pairs) in forms() {
        let (client, _) = as_role(&app, role).await;
        let before = (
            count(&app, "users"),
            count(&app, "practices"),
            count(&app, "insurer_tokens"),
            app.rows(),
        );
        for csrf in [None, Some(foreign.as_str()), Some("")] {
            let mut form: Form = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
            if let Some(t) = csrf {
                form.push(("csrf", t.to_owned()));
            }
            let r = post(&client, &app, path, &form).await;
            assert_eq!(r.status(), 403, "{path} with {csrf:?}");
            assert!(r.text().await.unwrap().contains("Formular abgelaufen"));
        }
        let after = (
            count(&app, "users"),
            count(&app, "practices"),
            count(&app, "insurer_tokens"),
            app.rows(),
        );
        assert_eq!(before, after, "{path}");
        assert_eq!(
            client
                .get(app.url("/account/password"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn bad_input_on_every_new_form_never_yields_a_500_or_a_partial_write() {
    let app = TestApp::spawn().await;
    let injections = [
        "'; DROP TABLE users; --",
        "<script>alert(1)</script>",
        "\u{0}",
        "%00",
        "ä".repeat(5000).leak(),
        "{{ csrf }}",
        "../../etc/passwd",
    ];
    // One session per role: wrong current passwords throttle the account after five.
    let admin = as_role(&app, Role::Admin).await;
    let operator = as_role(&app, Role::Operator).await;
    for (role, path, pairs) in forms() {
        if path == "/logout" {
            continue;
        }
        let (client, csrf) = if role == Role::Operator {
            &operator
        } else {
            &admin
        };
        let before = (
            count(&app, "users"),
            count(&app, "practices"),
            count(&app, "insurer_tokens"),
            count(&app, "api_tokens"),
        );
        // Oversized.
        let big = format!("csrf={csrf}&name={}", "x".repeat(70 * 1024));
        let r = client
            .post(app.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path} oversized");
        // Malformed: broken UTF-8, odd names.
        for raw in ["name=%FF%FE", "a[x]=1", "=&&=="] {
            let r = client
                .post(app.url(path))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("csrf={csrf}&{raw}"))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error() || r.status().is_redirection(),
                "{path} {raw}: {}",
                r.status()
            );
        }
        // Injection strings in every field.
        for bad in injections {
            let mut form: Form = pairs.iter().map(|(k, _)| (*k, bad.to_owned())).collect();
            form.push(("csrf", csrf.clone()));
            let r = post(client, &app, path, &form).await;
            let status = r.status();
            assert!(!status.is_server_error(), "{path} with {bad:?}: {status}");
            let body = r.text().await.unwrap();
            assert!(!body.contains("<script>alert"), "{path}: unescaped");
        }
        let after = (
            count(&app, "users"),
            count(&app, "practices"),
            count(&app, "insurer_tokens"),
            count(&app, "api_tokens"),
        );
        // The token form takes any printable label, so an injection string may become a
        // label; users, practices and practice tokens never change from bad input.
        assert_eq!(
            (before.0, before.1, before.3),
            (after.0, after.1, after.3),
            "{path}"
        );
    }
    assert_eq!(count(&app, "users"), 3, "the tables are still there");
}

#[tokio::test]
async fn a_session_past_its_absolute_lifetime_ends_even_if_used() {
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
        .batch_execute("UPDATE sessions SET expires_at = '2000-01-01 00:00:00'")
        .unwrap();
    let r = app
        .client
        .get(app.url("/certificates"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
}

#[tokio::test]
async fn thirty_failed_logins_from_one_address_throttle_every_account_there() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        let r = common::post_login(&app, &app.client, &format!("user{i}"), "x").await;
        assert_eq!(r.status(), 401);
    }
    let r = common::post_login(&app, &app.client, "demo", "demo").await;
    assert_eq!(r.status(), 429, "even the right password");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Zu viele fehlgeschlagene Anmeldungen"));
}

#[tokio::test]
async fn operators_reach_no_patient_data_and_staff_no_configuration() {
    let app = TestApp::spawn().await;
    let r = app.post_api(&common::valid_body()).await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (op, _) = browser(&app, "operator", "operator").await;
    for path in [
        format!("/certificates/{id}"),
        format!("/certificates/{id}/pdf"),
        "/certificates".into(),
        "/admin/audit".into(),
    ] {
        let r = op.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(!r.text().await.unwrap().contains("Müller"));
    }
    let queue = op
        .get(app.url("/queue"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!queue.contains("Müller") && !queue.contains("A123456780"));
    app.login().await;
    let staff_queue = app.get_text("/queue").await;
    assert!(
        staff_queue.contains("Müller-Lüdenscheidt"),
        "staff see their unsent list"
    );
    assert!(
        !staff_queue.contains("/queue/destinations"),
        "but no configuration"
    );
}

#[test]
fn the_cli_adds_users_by_role_under_the_password_rules() {
    let (url, _dir) = common::fresh_database();
    let run = |args: &[&str], password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_au-relay"))
            .args(args)
            .env("AU_RELAY_DATABASE_URL", &url)
            .env("AU_RELAY_PASSWORD", password)
            .env("AU_RELAY_LOG", "warn")
            .output()
            .unwrap()
    };
    let practice = [
        "practice",
        "add",
        "--bsnr",
        "031234567",
        "--name",
        "P",
        "--street",
        "S 1",
        "--postal-code",
        "30159",
        "--city",
        "H",
        "--phone",
        "1",
        "--lanr",
        "838382202",
        "--doctor-name",
        "Dr. P",
    ];
    assert!(run(&practice, "").status.success());
    let ok = "Lange-Passphrase-1";
    let user = |name: &'static str, role: &'static str, bsnr: bool| {
        let mut args = vec!["user", "add", "--username", name, "--role", role];
        if bsnr {
            args.extend(["--bsnr", "031234567"]);
        }
        args
    };
    assert!(
        !run(&user("kurz", "staff", true), "kurz").status.success(),
        "too short"
    );
    assert!(
        !run(&user("mfa", "staff", false), ok).status.success(),
        "staff need a practice"
    );
    assert!(
        !run(&user("op", "operator", true), ok).status.success(),
        "operators have none"
    );
    assert!(
        !run(&user("root", "root", true), ok).status.success(),
        "unknown role"
    );
    assert!(run(&user("mfa", "staff", true), ok).status.success());
    assert!(run(&user("chefin", "admin", true), ok).status.success());
    assert!(run(&user("betrieb", "operator", false), ok)
        .status
        .success());
    let db = au_relay::storage::Database::connect(&url, 1).unwrap();
    let mut conn = db.conn().unwrap();
    let op = storage::find_user(&mut conn, "betrieb").unwrap().unwrap();
    assert_eq!((op.role.as_str(), op.practice_id), ("operator", None));
    let admin = storage::find_user(&mut conn, "chefin").unwrap().unwrap();
    assert_eq!(admin.role, "admin");
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_a_login() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let wrong = with_csrf(
        &csrf,
        &[
            ("current", "falsch"),
            ("password", "Neue-Passphrase-1"),
            ("password_repeat", "Neue-Passphrase-1"),
        ],
    );
    for _ in 0..5 {
        let r = post(&app.client, &app, "/account/password", &wrong).await;
        assert_eq!(r.status(), 422);
    }
    let r = post(&app.client, &app, "/account/password", &wrong).await;
    assert_eq!(r.status(), 429);
    let (_, login) = common::try_login(&app, "demo", "demo").await;
    assert_eq!(login, 429, "the account is throttled for logins too");
}

#[tokio::test]
async fn an_operator_reads_the_audit_trail_of_every_practice_without_health_data() {
    let app = TestApp::spawn().await;
    let r = app.post_api(&common::valid_body()).await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (operator, _) = as_role(&app, Role::Operator).await;
    let get = |path: String| {
        let operator = operator.clone();
        let url = app.url(&path);
        async move { operator.get(url).send().await.unwrap() }
    };
    let page = get(format!("/operator/audit?certificate={id}")).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Protokoll aller Praxen"), "{page}");
    assert!(page.contains("Einträge: 1"), "the capture: {page}");
    assert!(page.contains("certificate.captured"));
    assert!(
        !page.contains(&format!("href=\"/certificates/{id}\"")),
        "no link to a page operators may not open"
    );
    for secret in ["A123456780", "J06.9", "Müller", "Jürgen"] {
        assert!(!page.contains(secret), "{secret} in the audit view");
    }
    let bad = get("/operator/audit?from=32.13.2026".into()).await;
    assert_eq!(bad.status(), 422);
}

/// Runs `au-relay <args>` against the app's database as the system user `kasse`; fails the
/// test when the command fails.
fn cli(app: &TestApp, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_au-relay"))
        .args(args)
        .env("AU_RELAY_DATABASE_URL", &app.database_url)
        .env("AU_RELAY_PASSWORD", "Lange-Passphrase-CLI")
        .env("AU_RELAY_LOG", "warn")
        .env("SUDO_USER", "kasse")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "au-relay {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The newest audit rows of an action as `(actor, detail)`, in a practice's log or in all.
fn audited(app: &TestApp, practice: Option<&str>, action: &str) -> Vec<(String, String)> {
    let filter = storage::AuditFilter {
        action: Some(action.into()),
        ..Default::default()
    };
    let mut conn = app.db.conn().unwrap();
    let (rows, _) = storage::audit_entries(&mut conn, practice, &filter, 0, 10).unwrap();
    rows.into_iter().map(|r| (r.actor, r.detail)).collect()
}

/// Each change the command line makes is audited as its page audits it: the same action, the
/// same detail for the same change, in the same log; only the actor says `cli:` and who.
#[tokio::test]
async fn every_cli_change_writes_the_audit_row_of_its_page() {
    let app = TestApp::spawn().await;
    let practice = demo_practice_id(&app.db);
    let (op, op_csrf) = browser(&app, "operator", "operator").await;
    let (admin, admin_csrf) = browser(&app, "demo", "demo").await;
    let post = |c: &reqwest::Client, path: &str, csrf: &str, pairs: &[(&str, &str)]| {
        let mut form: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        form.push(("csrf".into(), csrf.into()));
        c.post(app.url(path)).form(&form).send()
    };
    let same = |action: &str, log: Option<&str>, page: (&str, &str), by_cli: (&str, &str)| {
        let rows = audited(&app, log, action);
        assert_eq!(rows.len(), 2, "{action}: one row each: {rows:?}");
        assert_eq!(
            rows[0],
            ("cli:kasse".into(), by_cli.1.into()),
            "{action} by the CLI"
        );
        assert_eq!(
            rows[1],
            (page.0.into(), page.1.into()),
            "{action} by the page"
        );
    };

    // destination.saved and destination.outage
    let r = post(
        &op,
        "/queue/destinations",
        &op_csrf,
        &[("ik", "104212059"), ("name", "BKK")],
    );
    assert_eq!(r.await.unwrap().status(), 303);
    cli(
        &app,
        &["destination", "set", "--ik", "104212059", "--name", "BKK"],
    );
    same(
        "destination.saved",
        None,
        ("web:operator", "IK 104212059"),
        ("", "IK 104212059"),
    );
    let r = post(&op, "/queue/104212059/outage", &op_csrf, &[("on", "true")]);
    assert_eq!(r.await.unwrap().status(), 303);
    cli(
        &app,
        &["destination", "outage", "--ik", "104212059", "--on", "true"],
    );
    let on = "IK 104212059: true";
    same("destination.outage", None, ("web:operator", on), ("", on));

    // token.created and token.revoked
    let r = post(
        &op,
        "/operator/tokens",
        &op_csrf,
        &[
            ("kind", "insurer"),
            ("owner", "104212059"),
            ("label", "Abruf"),
        ],
    );
    assert_eq!(r.await.unwrap().status(), 303);
    let token = cli(
        &app,
        &[
            "token",
            "create",
            "--insurer",
            "104212059",
            "--label",
            "Abruf",
        ],
    );
    let created = "104212059: Abruf";
    same(
        "token.created",
        None,
        ("web:operator", created),
        ("", created),
    );
    let by_page = {
        let mut conn = app.db.conn().unwrap();
        storage::list_insurer_tokens(&mut conn, "104212059").unwrap()
    };
    let cli_id = au_relay::auth::token_hash(token.trim())[..12].to_owned();
    let page_id = by_page
        .iter()
        .map(|t| t.id.clone())
        .find(|id| *id != cli_id)
        .unwrap();
    let r = post(
        &op,
        "/operator/tokens/revoke",
        &op_csrf,
        &[
            ("kind", "insurer"),
            ("owner", "104212059"),
            ("id", &page_id),
        ],
    );
    assert_eq!(r.await.unwrap().status(), 303);
    cli(
        &app,
        &["token", "revoke", "--insurer", "104212059", "--id", &cli_id],
    );
    let rows = audited(&app, None, "token.revoked");
    assert_eq!(
        rows,
        vec![
            ("cli:kasse".into(), cli_id),
            ("web:operator".into(), page_id)
        ]
    );

    // practice.added
    let r = post(
        &op,
        "/operator/practices",
        &op_csrf,
        &[
            ("bsnr", "171234567"),
            ("name", "Praxis C"),
            ("street", "Weg 1"),
            ("postal_code", "10115"),
            ("city", "Berlin"),
            ("phone", "030 1"),
            ("land", "BE"),
            ("lanr", "838382202"),
            ("doctor_name", "Dr. C"),
            ("admin_username", "verwaltung.c"),
            ("admin_password", "Lange-Passphrase-1"),
        ],
    );
    assert_eq!(r.await.unwrap().status(), 303);
    cli(
        &app,
        &[
            "practice",
            "add",
            "--bsnr",
            "181234567",
            "--name",
            "Praxis D",
            "--street",
            "Weg 2",
            "--postal-code",
            "10115",
            "--city",
            "Berlin",
            "--phone",
            "030 2",
            "--lanr",
            "838382202",
            "--doctor-name",
            "Dr. D",
            "--land",
            "BE",
        ],
    );
    let rows = audited(&app, None, "practice.added");
    assert_eq!(rows[0], ("cli:kasse".into(), "BSNR 181234567".into()));
    assert_eq!(
        rows[1],
        (
            "web:operator".into(),
            "BSNR 171234567, Verwaltung verwaltung.c".into()
        )
    );

    // user.added, in the practice's own Protokoll either way
    let r = post(
        &admin,
        "/admin/users",
        &admin_csrf,
        &[
            ("username", "empfang.a"),
            ("role", "staff"),
            ("password", "Lange-Passphrase-A"),
            ("password_repeat", "Lange-Passphrase-A"),
        ],
    );
    assert_eq!(r.await.unwrap().status(), 303);
    cli(
        &app,
        &[
            "user",
            "add",
            "--bsnr",
            "031234567",
            "--username",
            "empfang.b",
        ],
    );
    let rows = audited(&app, Some(&practice), "user.added");
    assert_eq!(rows[0], ("cli:kasse".into(), "empfang.b (staff)".into()));
    assert_eq!(rows[1], ("web:demo".into(), "empfang.a (staff)".into()));
}
