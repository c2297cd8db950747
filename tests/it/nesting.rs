//! Deeply nested input is refused with a 4xx before any recursive decoder sees it, and the
//! server goes on answering (a stack overflow would abort the whole process).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, TestApp};

/// With the production body limit (256 KiB), so the deepest inputs get through to the decoders.
async fn app() -> TestApp {
    let mut config = common::config();
    config.max_body_bytes = 256 * 1024;
    TestApp::spawn_with(config).await
}

/// The deepest fits the body limit only as `a.a.…` (2 bytes a level); deeper inputs are a 413.
const DEPTHS: [usize; 4] = [100, 1_000, 10_000, 100_000];

async fn still_up(app: &TestApp) {
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server still answers");
}

/// `a.a.a…=x` and `a[0][0]…=x`: form field names nested `depth` levels.
fn nested_names(depth: usize) -> [String; 2] {
    [
        format!("{}=x", vec!["a"; depth].join(".")),
        format!("a{}=x", "[0]".repeat(depth)),
    ]
}

#[tokio::test]
async fn nested_form_names_on_the_open_login_form_are_refused() {
    let app = app().await;
    // With the form's own token: the nesting is refused, not the missing token.
    let token = common::login_token(&app, &app.client).await;
    for depth in DEPTHS {
        for body in nested_names(depth) {
            let r = app
                .client
                .post(app.url("/login"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("username=demo&password=x&csrf={token}&{body}"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!((400..500).contains(&status), "depth {depth}: {status}");
            still_up(&app).await;
        }
    }
}

#[tokio::test]
async fn nested_form_names_of_a_logged_in_user_are_refused() {
    let app = app().await;
    let csrf = app.login().await;
    for depth in DEPTHS {
        for body in nested_names(depth) {
            let r = app
                .client
                .post(app.url("/certificates"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("csrf={csrf}&{body}"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!((400..500).contains(&status), "depth {depth}: {status}");
            still_up(&app).await;
        }
    }
    assert_eq!(app.rows().0, 0, "nothing written");
}

#[tokio::test]
async fn nested_json_and_fhir_xml_are_refused() {
    let app = app().await;
    for depth in DEPTHS {
        let json = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let r = app.post_raw(json, "application/json").await;
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "JSON depth {depth}: {status}");
        still_up(&app).await;

        let xml = format!(
            "<Bundle xmlns=\"http://hl7.org/fhir\">{}{}</Bundle>",
            "<entry>".repeat(depth),
            "</entry>".repeat(depth)
        );
        let r = app
            .client
            .post(app.url("/api/v1/fhir/eau"))
            .bearer_auth("demo-token")
            .header("Content-Type", "application/fhir+xml")
            .body(xml)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "XML depth {depth}: {status}");
        if depth <= 10_000 {
            assert_eq!(status, 422, "XML depth {depth}: refused, not too large");
        }
        still_up(&app).await;
    }
    assert_eq!(app.rows().0, 0, "nothing written");
}

/// Attributes by the thousand on one element, and entities that expand into each other
/// ("billion laughs"), at the same sizes: refused before anything is built from them.
#[tokio::test]
async fn fhir_xml_with_many_attributes_or_expanding_entities_is_refused() {
    let app = app().await;
    let import = |xml: String| {
        app.client
            .post(app.url("/api/v1/fhir/eau"))
            .bearer_auth("demo-token")
            .header("Content-Type", "application/fhir+xml")
            .body(xml)
            .send()
    };
    for n in DEPTHS {
        let attributes: String = (0..n).map(|i| format!(" a{i}=\"x\"")).collect();
        let xml =
            format!("<Bundle xmlns=\"http://hl7.org/fhir\"><id value=\"1\"{attributes}/></Bundle>");
        let status = import(xml).await.unwrap().status().as_u16();
        assert!((400..500).contains(&status), "{n} attributes: {status}");
        still_up(&app).await;

        // Each level expands to ten of the one below: n levels of it.
        let levels = n.min(1_000);
        let mut dtd = String::from("<!ENTITY e0 \"lol\">");
        for i in 1..levels {
            dtd.push_str(&format!(
                "<!ENTITY e{i} \"{}\">",
                format!("&e{};", i - 1).repeat(10)
            ));
        }
        let xml = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE Bundle [{dtd}]>\
             <Bundle xmlns=\"http://hl7.org/fhir\"><id value=\"&e{};\"/></Bundle>",
            levels - 1
        );
        let status = import(xml).await.unwrap().status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{levels} entity levels: {status}"
        );
        still_up(&app).await;
    }
    assert_eq!(app.rows().0, 0, "nothing written");
}
