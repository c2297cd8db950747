//! Answers a client can rely on at the edges (issue #20): the bearer scheme in any case,
//! `Strict-Transport-Security` behind TLS, and a database that cannot be reached answers 503
//! with `Retry-After`, not 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use au_relay::storage::Database;
use common::TestApp;

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = app
            .client
            .get(app.url("/api/v1/certificates"))
            .header("Authorization", format!("{scheme} demo-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    for wrong in [
        "Basic demo-token",
        "Bearer",
        "Bearerdemo-token",
        "Bearer wrong-token",
    ] {
        let r = app
            .client
            .get(app.url("/api/v1/certificates"))
            .header("Authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{wrong}");
    }
}

#[tokio::test]
async fn strict_transport_security_is_sent_only_behind_tls() {
    let plain = TestApp::spawn().await;
    let r = plain.client.get(plain.url("/login")).send().await.unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());
    let mut config = common::config();
    config.secure_cookies = true;
    let tls = TestApp::spawn_with(config).await;
    let r = tls.client.get(tls.url("/login")).send().await.unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_answers_503_with_retry_after() {
    // Nothing listens on port 1: every connection attempt fails until the pool gives up.
    let db = Database::connect("postgres://postgres@127.0.0.1:1/none", 2).unwrap();
    let running = au_relay::app::start(db, &common::config(), None).unwrap();
    tokio::spawn(running.server);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", running.port);
    let api = client
        .get(format!("{base}/api/v1/certificates"))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 503);
    assert_eq!(api.headers()["retry-after"], "30");
    let page = client
        .post(format!("{base}/login"))
        .form(&[("username", "demo"), ("password", "demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert_eq!(page.headers()["retry-after"], "30");
    assert!(client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
}

#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let app = TestApp::spawn().await;
    for (path, status) in [
        ("/healthz", 200),
        ("/login", 200),
        ("/queue", 303),
        ("/api-docs/openapi.json", 200),
    ] {
        let get = app.client.get(app.url(path)).send().await.unwrap();
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(get.status(), status, "GET {path}");
        assert_eq!(head.status(), status, "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has no body"
        );
    }
    let r = app
        .client
        .head(app.url("/api/v1/certificates"))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set_and_are_refused_beyond_loopback_without_one() {
    let mut config = common::config();
    config.metrics_token = Some("scrape-secret".into());
    let app = TestApp::spawn_with(config).await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let scraper = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(scraper.status(), 200);
    assert!(scraper
        .text()
        .await
        .unwrap()
        .contains("au_relay_deliveries"));

    // Listening on every address and no token: refused, with the setting named.
    let mut config = common::config();
    config.bind = "0.0.0.0:0".into();
    let open = TestApp::spawn_with(config).await;
    let r = open.client.get(open.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("AU_RELAY_METRICS_TOKEN"));
}

#[test]
fn sigterm_stops_the_server_gracefully_and_the_demo_mail_servers_with_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    assert!(
        au_relay::kim::standin::StandIn::available(),
        "needs root, postfix and dovecot-pop3d (installed by .ci/run)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_au-relay"))
        .args(["serve", "--demo", "--bind", "127.0.0.1:0"])
        .env("AU_RELAY_DATABASE_URL", dir.path().join("demo.db"))
        .env("AU_RELAY_LOG", "info")
        .env("AU_RELAY_LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log goes to standard error.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut smtp = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.find("smtp=") {
            smtp = line[at + 5..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
        if line.contains("AU-Relay at http://") {
            break;
        }
    }
    let smtp = smtp.expect("the demo logs its KIM route");
    assert!(std::net::TcpStream::connect(("127.0.0.1", smtp)).is_ok());
    // Keep reading the log, so the server never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.count());
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    drain.join().unwrap();
    assert!(
        status.success(),
        "stopped by SIGTERM without a clean exit: {status:?}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", smtp)).is_err(),
        "the demo's Postfix still listens after the server stopped"
    );
}
