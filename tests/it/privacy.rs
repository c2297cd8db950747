//! No health data in logs: a full run of the real binary at debug level, searched for every
//! KVNR, name and ICD code it handled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn logs_of_a_full_run_hold_no_kvnr_name_or_diagnosis() {
    let (url, _dir) = common::fresh_database();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_au-relay"))
        .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
        .env("AU_RELAY_DATABASE_URL", &url)
        .env("AU_RELAY_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server did not start");

    let mut body = common::valid_body();
    body["patient"]["kvnr"] = json!("B123456782");
    body["patient"]["last_name"] = json!("Vertraulich-Zweiter");
    body["diagnoses"] =
        json!([{"code": "F32.1", "certainty": "G"}, {"code": "C50.9", "side": "L"}]);
    let r = client
        .post(format!("{base}/api/v1/certificates"))
        .bearer_auth("demo-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bad = body.clone();
    bad["patient"]["kvnr"] = json!("B123456781");
    client
        .post(format!("{base}/api/v1/certificates"))
        .bearer_auth("demo-token")
        .json(&bad)
        .send()
        .await
        .unwrap();
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    let login_csrf = common::hidden(&form.text().await.unwrap(), "csrf");
    client
        .post(format!("{base}/login"))
        .form(&[
            ("username", "demo"),
            ("password", "demo"),
            ("csrf", &login_csrf),
        ])
        .send()
        .await
        .unwrap();
    let detail = client
        .get(format!("{base}/certificates/{id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(detail.contains("Vertraulich-Zweiter"));
    let csrf = common::hidden(
        &client
            .get(format!("{base}/certificates"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "csrf",
    );
    client
        .post(format!("{base}/certificates/search"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("kvnr", "B123456782"),
            ("name", "Vertraulich"),
        ])
        .send()
        .await
        .unwrap();
    client
        .post(format!("{base}/api/v1/certificates/search"))
        .bearer_auth("demo-token")
        .json(&json!({"kvnr": "B123456782"}))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.wait().unwrap();

    assert!(
        log.contains("/api/v1/certificates"),
        "the run was logged:\n{log}"
    );
    for secret in [
        "B123456782",
        "B123456781",
        "Vertraulich",
        "Jürgen",
        "F32.1",
        "C50.9",
        "F32",
        "1980-04-01",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
