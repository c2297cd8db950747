//! The insurers' pull API: own IK only, exact documents, cursor, acknowledgement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{demo_practice_id, store_certificates, TestApp};
use au_relay::auth::token_hash;
use au_relay::storage;
use serde_json::{json, Value};

const IK_A: &str = "109500969";
const IK_B: &str = "104212059";

fn tokens(app: &TestApp) {
    let mut conn = app.db.conn().unwrap();
    storage::create_insurer_token(&mut conn, &token_hash("token-a"), IK_A, "A").unwrap();
    storage::create_insurer_token(&mut conn, &token_hash("token-b"), IK_B, "B").unwrap();
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .client
        .get(app.url(&format!("/api/insurer/v1/documents{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_insurer_imports_only_its_own_documents_page_by_page_and_acknowledges_them() {
    let app = TestApp::spawn().await;
    tokens(&app);
    let practice = demo_practice_id(&app.db);
    let a = store_certificates(&app.db, &practice, IK_A, 5);
    let b = store_certificates(&app.db, &practice, IK_B, 2);

    let first = page(&app, "token-a", "?limit=3").await;
    assert_eq!(ids(&first), a[..3]);
    let doc = first["items"][0]["document"].as_str().unwrap();
    assert!(doc.contains(&a[0]), "the exact stored document");
    let cursor = first["next"].as_str().unwrap().to_owned();
    let rest = page(&app, "token-a", &format!("?limit=100&after={cursor}")).await;
    assert_eq!(ids(&rest), a[3..]);
    assert_eq!(ids(&page(&app, "token-b", "").await), b);

    // B cannot acknowledge A's documents; A can.
    let ack = |token: &'static str, ids: Vec<String>| {
        app.client
            .post(app.url("/api/insurer/v1/acknowledgements"))
            .bearer_auth(token)
            .json(&json!({ "ids": ids }))
            .send()
    };
    let r: Value = ack("token-b", a.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["acknowledged"], 0);
    let r: Value = ack("token-a", a[..2].to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["acknowledged"], 2);
    assert_eq!(
        ids(&page(&app, "token-a", "").await),
        a[2..],
        "acknowledged ones are gone"
    );
    let r: Value = ack("token-a", a[..2].to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["acknowledged"], 0, "acknowledging twice is harmless");
}

#[tokio::test]
async fn without_an_insurer_token_nothing_is_exported() {
    let app = TestApp::spawn().await;
    tokens(&app);
    for token in [None, Some("demo-token"), Some("wrong")] {
        let mut r = app.client.get(app.url("/api/insurer/v1/documents"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        assert_eq!(r.send().await.unwrap().status(), 401, "{token:?}");
    }
    let r = app
        .client
        .get(app.url("/api/insurer/v1/documents?after=garbage"))
        .bearer_auth("token-a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}
