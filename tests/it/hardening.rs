//! Answers a client can rely on at the edges (issue #20): the bearer scheme in any case,
//! `Strict-Transport-Security` behind TLS, a database that cannot be reached answers 503 with
//! `Retry-After`, the login throttle behind nginx counts each client, a panicking handler is a
//! 500 and not a dead worker, and the standalone fake insurer needs no database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{self, TestApp};
use au_relay::storage::Database;

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
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{}", running.port);
    let api = client
        .get(format!("{base}/api/v1/certificates"))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 503);
    assert_eq!(api.headers()["retry-after"], "30");
    // The login page needs no database; the login itself does.
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    let csrf = common::hidden(&form.text().await.unwrap(), "csrf");
    let page = client
        .post(format!("{base}/login"))
        .form(&[("username", "demo"), ("password", "demo"), ("csrf", &csrf)])
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

/// nginx from `deploy/nginx.conf`, its upstream pointed at `upstream_port`, listening on a
/// free loopback port; stopped on drop.
struct Nginx {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let deployed = std::fs::read_to_string("deploy/nginx.conf").unwrap();
        let mut conf = deployed.clone();
        for (from, to) in [
            (
                "    server au-relay-1:8080;\n    server au-relay-2:8080;\n".to_owned(),
                format!("    server 127.0.0.1:{upstream_port};\n"),
            ),
            ("listen 8080;".into(), format!("listen 127.0.0.1:{port};")),
            (
                "events {}".into(),
                // One process in the foreground: stopping the child stops nginx.
                format!(
                    "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
                     error_log {d}/error.log;\nevents {{}}"
                ),
            ),
            (
                "http {".into(),
                format!(
                    "http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                     proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                     uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;"
                ),
            ),
        ] {
            assert!(
                conf.contains(&from),
                "deploy/nginx.conf no longer has {from:?}"
            );
            conf = conf.replacen(&from, &to, 1);
        }
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = std::process::Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx-light; scripts/setup installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser on its own loopback address (127.0.0.x), as a separate client machine.
fn browser_at(last_octet: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, last_octet]))
        .build()
        .unwrap()
}

/// A login through nginx with the form's own token; the answer's status.
async fn login_via(
    proxy: &Nginx,
    client: &reqwest::Client,
    name: &str,
    password: &str,
    forged: Option<&str>,
) -> u16 {
    let page = client.get(proxy.url("/login")).send().await.unwrap();
    let csrf = common::hidden(&page.text().await.unwrap(), "csrf");
    let mut req = client.post(proxy.url("/login")).form(&[
        ("username", name),
        ("password", password),
        ("csrf", &csrf),
    ]);
    if let Some(f) = forged {
        req = req.header("X-Forwarded-For", f);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Thirty failed logins from one client behind nginx: without AU_RELAY_TRUSTED_PROXIES every
/// client behind the proxy is one address and the whole site waits 15 minutes; with it only
/// that client does, and an X-Forwarded-For it writes itself changes nothing.
#[tokio::test]
async fn the_login_throttle_behind_nginx_counts_each_client() {
    for trusted in [false, true] {
        let mut config = common::config();
        if trusted {
            config.trusted_proxies = vec!["127.0.0.1".into()];
        }
        let app = TestApp::spawn_with(config).await;
        let upstream: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
        let proxy = Nginx::start(upstream);
        let (attacker, colleague) = (browser_at(2), browser_at(3));
        for i in 0..30 {
            let status = login_via(&proxy, &attacker, &format!("niemand{i}"), "x", None).await;
            assert_eq!(status, 401, "failed login {i}");
        }
        let colleague_status = login_via(&proxy, &colleague, "demo", "demo", None).await;
        if trusted {
            assert_eq!(colleague_status, 303, "another client logs in");
            let again = login_via(&proxy, &attacker, "demo", "demo", None).await;
            assert_eq!(again, 429, "the failing client waits");
            let forged = login_via(&proxy, &attacker, "demo", "demo", Some("127.0.0.9")).await;
            assert_eq!(forged, 429, "a forged X-Forwarded-For is not believed");
        } else {
            assert_eq!(
                colleague_status, 429,
                "without a trusted proxy all clients are one"
            );
        }
    }
}

/// A handler that panics answers 500 with an error number; the next request is served.
#[actix_web::test]
async fn a_panicking_handler_is_a_500_and_the_server_goes_on() {
    use actix_web::{middleware::from_fn, test, web, App};
    let app = test::init_service(
        App::new()
            .wrap(from_fn(au_relay::web::catch_panics))
            .route(
                "/boom",
                web::get().to(|| async {
                    if std::hint::black_box(true) {
                        panic!("Diagnose J06.9 must not reach a log");
                    }
                    "unreachable"
                }),
            )
            .route("/ok", web::get().to(|| async { "ok" })),
    )
    .await;
    // The middleware answers with an error of the service, which actix renders as its page.
    let err = test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request())
        .await
        .err()
        .unwrap();
    let r = err.error_response();
    assert_eq!(r.status(), 500);
    let body = actix_web::body::to_bytes(r.into_body()).await.unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("Fehlernummer"), "{body}");
    assert!(!body.contains("J06.9"));
    let r = test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
    assert_eq!(r.status(), 200);
}

/// `au-relay fake-insurer` runs without a database (no file appears) and comes back after
/// `refused:<ms>`: the restart is not scheduled on the worker that the stop ends.
#[tokio::test]
async fn the_standalone_fake_insurer_needs_no_database_and_recovers_from_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_au-relay"))
        .args(["fake-insurer", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env_remove("AU_RELAY_DATABASE_URL")
        .env("AU_RELAY_LOG", "warn")
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/health");
    let up = |deadline_ms: u64| {
        let (client, health) = (client.clone(), health.clone());
        async move {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(deadline_ms) {
                if client
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(up(10_000).await, "fake insurer did not start");
    let r = client
        .put(format!("http://127.0.0.1:{port}/control/mode"))
        .body("refused:1000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        client.get(&health).send().await.is_err(),
        "refusing connections"
    );
    assert!(up(10_000).await, "listening again after refused:1000");
    let _ = child.kill();
    let _ = child.wait();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(files.is_empty(), "no database file: {files:?}");
}
