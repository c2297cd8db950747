//! The route × identity matrix: every route the application registers, called as each kind of
//! caller, with the status each must get (policy: README "Roles and access").
//!
//! The route list comes from `au_relay::web::route_list()`, the same registrations the router
//! uses: a route added without a row here fails `every_registered_route_has_a_matrix_row`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{
    self, add_practice_b, add_user, browser, demo_practice_id, store_certificates, TestApp,
};
use au_relay::auth::Role;
use au_relay::storage;
use serde_json::{json, Value};

const IK_X: &str = "109500969";
const IK_Y: &str = "104212059";

/// The callers, in the column order of [`Case::expect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    StaffA,
    StaffB,
    AdminA,
    Operator,
    InsurerX,
    InsurerY,
    TokenA,
}

const WHO: [Who; 8] = [
    Who::Anonymous,
    Who::StaffA,
    Who::StaffB,
    Who::AdminA,
    Who::Operator,
    Who::InsurerX,
    Who::InsurerY,
    Who::TokenA,
];

/// What a case sends.
#[derive(Clone)]
enum Body {
    None,
    /// Urlencoded; a session caller's CSRF token is added.
    Form(Vec<(&'static str, String)>),
    Json(Value),
    Xml(&'static str),
}

/// Data the paths point at.
struct Fx {
    db: storage::Database,
    a: String,
    b: String,
    cert_a: String,
    cert_b: String,
}

impl Fx {
    /// A new certificate of practice A (for routes that change it).
    fn fresh_a(&self) -> String {
        store_certificates(&self.db, &self.a, IK_X, 1).remove(0)
    }

    fn fresh_user(&self, practice: &str) -> String {
        let name = format!("u{}", uuid::Uuid::new_v4().simple());
        add_user(
            &self.db,
            Some(practice),
            &name,
            "Lange-Passphrase-1",
            Role::Staff,
        )
    }
}

struct Case {
    method: &'static str,
    pattern: &'static str,
    path: fn(&Fx) -> String,
    body: fn(&Fx) -> Body,
    /// Status per caller, in the order of [`WHO`].
    expect: [u16; 8],
}

fn none(_: &Fx) -> Body {
    Body::None
}

fn empty_form(_: &Fx) -> Body {
    Body::Form(Vec::new())
}

// Columns: anonymous, staff A, staff B, admin A, operator, insurer X, insurer Y, token A.
/// Public: everyone.
const OPEN: [u16; 8] = [200; 8];
/// A practice member's page about practice A's data.
const MEMBER_A: [u16; 8] = [303, 200, 404, 200, 403, 303, 303, 303];
/// The same about practice B's data.
const MEMBER_B: [u16; 8] = [303, 404, 200, 404, 403, 303, 303, 303];
/// A practice member's page without a practice object.
const MEMBERS: [u16; 8] = [303, 200, 200, 200, 403, 303, 303, 303];
/// Practice admins only.
const ADMIN: [u16; 8] = [303, 403, 403, 200, 403, 303, 303, 303];
/// Operators only.
const OPERATOR: [u16; 8] = [303, 403, 403, 403, 200, 303, 303, 303];
/// Any logged-in user.
const LOGGED_IN: [u16; 8] = [303, 200, 200, 200, 200, 303, 303, 303];
/// The practice API with practice A's token.
const API_A: [u16; 8] = [401, 401, 401, 401, 401, 401, 401, 200];
/// The insurer API.
const INSURERS: [u16; 8] = [401, 401, 401, 401, 401, 200, 200, 401];
/// The pages of insurer clerks (sessions of role `insurer`; no column is one, so every
/// logged-in column is refused).
const INSURER_PAGES: [u16; 8] = [303, 403, 403, 403, 403, 303, 303, 303];

/// With another success status in the allowed columns.
const fn with(mut e: [u16; 8], allowed: u16) -> [u16; 8] {
    let mut i = 0;
    while i < 8 {
        if e[i] == 200 {
            e[i] = allowed;
        }
        i += 1;
    }
    e
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            method: "GET",
            pattern: "/healthz",
            path: |_| "/healthz".into(),
            body: none,
            expect: OPEN,
        },
        Case {
            method: "GET",
            pattern: "/readyz",
            path: |_| "/readyz".into(),
            body: none,
            expect: OPEN,
        },
        // No personal data; restrict by network (README).
        Case {
            method: "GET",
            pattern: "/metrics",
            path: |_| "/metrics".into(),
            body: none,
            expect: OPEN,
        },
        Case {
            method: "GET",
            pattern: "/api-docs/openapi.json",
            path: |_| "/api-docs/openapi.json".into(),
            body: none,
            expect: OPEN,
        },
        Case {
            method: "GET",
            pattern: "/certificates/{id}/pdf",
            path: |f| format!("/certificates/{}/pdf?copy=kk", f.cert_a),
            body: none,
            expect: MEMBER_A,
        },
        Case {
            method: "GET",
            pattern: "/certificates/{id}/pdf",
            path: |f| format!("/certificates/{}/pdf?copy=kk", f.cert_b),
            body: none,
            expect: MEMBER_B,
        },
        Case {
            method: "GET",
            pattern: "/forms/blank.pdf",
            path: |_| "/forms/blank.pdf".into(),
            body: none,
            expect: MEMBERS,
        },
        Case {
            method: "GET",
            pattern: "/api/v1/certificates/{id}/pdf",
            path: |f| format!("/api/v1/certificates/{}/pdf?copy=kk", f.cert_a),
            body: none,
            expect: API_A,
        },
        Case {
            method: "GET",
            pattern: "/api/v1/certificates/{id}/pdf",
            path: |f| format!("/api/v1/certificates/{}/pdf?copy=kk", f.cert_b),
            body: none,
            expect: with(API_A, 404),
        },
        Case {
            method: "POST",
            pattern: "/api/v1/certificates",
            path: |_| "/api/v1/certificates".into(),
            body: |_| Body::Json(common::valid_body()),
            expect: with(API_A, 201),
        },
        Case {
            method: "GET",
            pattern: "/api/v1/certificates",
            path: |_| "/api/v1/certificates".into(),
            body: none,
            expect: API_A,
        },
        Case {
            method: "POST",
            pattern: "/api/v1/certificates/search",
            path: |_| "/api/v1/certificates/search".into(),
            body: |_| Body::Json(json!({"kvnr": "A123456780"})),
            expect: API_A,
        },
        Case {
            method: "GET",
            pattern: "/api/v1/certificates/{id}",
            path: |f| format!("/api/v1/certificates/{}", f.cert_a),
            body: none,
            expect: API_A,
        },
        Case {
            method: "GET",
            pattern: "/api/v1/certificates/{id}",
            path: |f| format!("/api/v1/certificates/{}", f.cert_b),
            body: none,
            expect: with(API_A, 404),
        },
        Case {
            method: "GET",
            pattern: "/api/v1/certificates/{id}/fhir",
            path: |f| format!("/api/v1/certificates/{}/fhir", f.cert_a),
            body: none,
            expect: API_A,
        },
        Case {
            method: "GET",
            pattern: "/api/v1/certificates/{id}/fhir",
            path: |f| format!("/api/v1/certificates/{}/fhir", f.cert_b),
            body: none,
            expect: with(API_A, 404),
        },
        Case {
            method: "POST",
            pattern: "/api/v1/certificates/{id}/cancel",
            path: |f| format!("/api/v1/certificates/{}/cancel", f.fresh_a()),
            body: none,
            expect: API_A,
        },
        Case {
            method: "POST",
            pattern: "/api/v1/certificates/{id}/cancel",
            path: |f| format!("/api/v1/certificates/{}/cancel", f.cert_b),
            body: none,
            expect: with(API_A, 404),
        },
        Case {
            method: "POST",
            pattern: "/api/v1/fhir/eau",
            path: |_| "/api/v1/fhir/eau".into(),
            body: |_| Body::Xml("<Bundle xmlns=\"http://hl7.org/fhir\"/>"),
            expect: with(API_A, 422),
        },
        Case {
            method: "GET",
            pattern: "/api/insurer/v1/documents",
            path: |_| "/api/insurer/v1/documents".into(),
            body: none,
            expect: INSURERS,
        },
        Case {
            method: "POST",
            pattern: "/api/insurer/v1/acknowledgements",
            path: |_| "/api/insurer/v1/acknowledgements".into(),
            body: |_| Body::Json(json!({"ids": []})),
            expect: INSURERS,
        },
        // Without a body's file type: 415 for the insurers.
        Case {
            method: "POST",
            pattern: "/api/insurer/v1/scans",
            path: |_| "/api/insurer/v1/scans".into(),
            body: none,
            expect: with(INSURERS, 415),
        },
        Case {
            method: "GET",
            pattern: "/api/insurer/v1/scans",
            path: |_| "/api/insurer/v1/scans".into(),
            body: none,
            expect: INSURERS,
        },
        // An upload of neither insurer (tests/it/scans.rs reads one insurer's upload as the other).
        Case {
            method: "GET",
            pattern: "/api/insurer/v1/scans/{id}",
            path: |_| format!("/api/insurer/v1/scans/{}", uuid::Uuid::new_v4()),
            body: none,
            expect: with(INSURERS, 404),
        },
        Case {
            method: "GET",
            pattern: "/api/insurer/v1/scans/{id}/csv",
            path: |_| format!("/api/insurer/v1/scans/{}/csv", uuid::Uuid::new_v4()),
            body: none,
            expect: with(INSURERS, 404),
        },
        Case {
            method: "GET",
            pattern: "/kasse/scans",
            path: |_| "/kasse/scans".into(),
            body: none,
            expect: INSURER_PAGES,
        },
        Case {
            method: "POST",
            pattern: "/kasse/scans",
            path: |_| "/kasse/scans".into(),
            body: empty_form,
            expect: INSURER_PAGES,
        },
        Case {
            method: "GET",
            pattern: "/kasse/scans/{id}",
            path: |_| format!("/kasse/scans/{}", uuid::Uuid::new_v4()),
            body: none,
            expect: INSURER_PAGES,
        },
        Case {
            method: "GET",
            pattern: "/kasse/scans/{id}/csv",
            path: |_| format!("/kasse/scans/{}/csv", uuid::Uuid::new_v4()),
            body: none,
            expect: INSURER_PAGES,
        },
        Case {
            method: "GET",
            pattern: "/kasse/scans/{id}/fortschritt",
            path: |_| format!("/kasse/scans/{}/fortschritt", uuid::Uuid::new_v4()),
            body: none,
            expect: INSURER_PAGES,
        },
        Case {
            method: "POST",
            pattern: "/operator/insurer-users",
            path: |_| "/operator/insurer-users".into(),
            body: |_| {
                Body::Form(vec![
                    ("ik", "109500969".into()),
                    ("username", format!("k{}", uuid::Uuid::new_v4().simple())),
                    ("password", "Lange-Passphrase-1".into()),
                ])
            },
            expect: with(OPERATOR, 303),
        },
        Case {
            method: "GET",
            pattern: "/queue",
            path: |_| "/queue".into(),
            body: none,
            expect: LOGGED_IN,
        },
        // No demo insurer in tests: the operator passes and finds nothing to switch.
        Case {
            method: "POST",
            pattern: "/queue/demo-insurer",
            path: |_| "/queue/demo-insurer".into(),
            body: |_| Body::Form(vec![("mode", "down".into())]),
            expect: with(OPERATOR, 404),
        },
        Case {
            method: "POST",
            pattern: "/queue/practice-outage",
            path: |_| "/queue/practice-outage".into(),
            body: |_| Body::Form(vec![("on", "false".into())]),
            expect: with(ADMIN, 303),
        },
        Case {
            method: "POST",
            pattern: "/queue/destinations",
            path: |_| "/queue/destinations".into(),
            body: |_| {
                Body::Form(vec![
                    ("ik", IK_Y.into()),
                    ("name", "Kasse Y".into()),
                    ("push_url", "http://127.0.0.1:9/push".into()),
                ])
            },
            expect: with(OPERATOR, 303),
        },
        Case {
            method: "POST",
            pattern: "/queue/{ik}/{action}",
            path: |_| format!("/queue/{IK_X}/pause"),
            body: |_| Body::Form(vec![("on", "false".into())]),
            expect: with(OPERATOR, 303),
        },
        Case {
            method: "GET",
            pattern: "/admin/users",
            path: |_| "/admin/users".into(),
            body: none,
            expect: ADMIN,
        },
        Case {
            method: "POST",
            pattern: "/admin/users",
            path: |_| "/admin/users".into(),
            body: |_| {
                Body::Form(vec![
                    ("username", "neu.mfa".into()),
                    ("password", "Lange-Passphrase-1".into()),
                    ("password_repeat", "Lange-Passphrase-1".into()),
                    ("role", "staff".into()),
                ])
            },
            expect: with(ADMIN, 303),
        },
        Case {
            method: "POST",
            pattern: "/admin/users/{id}/deactivate",
            path: |f| format!("/admin/users/{}/deactivate", f.fresh_user(&f.a)),
            body: empty_form,
            expect: with(ADMIN, 303),
        },
        Case {
            method: "POST",
            pattern: "/admin/users/{id}/deactivate",
            path: |f| format!("/admin/users/{}/deactivate", f.fresh_user(&f.b)),
            body: empty_form,
            expect: with(ADMIN, 404),
        },
        Case {
            method: "GET",
            pattern: "/signatur",
            path: |_| "/signatur".into(),
            body: none,
            expect: MEMBERS,
        },
        // No Konnektor in the test practices: nothing can be signed.
        Case {
            method: "POST",
            pattern: "/signatur",
            path: |_| "/signatur".into(),
            body: empty_form,
            expect: with(MEMBERS, 422),
        },
        Case {
            method: "POST",
            pattern: "/signatur/komfort",
            path: |_| "/signatur/komfort".into(),
            body: empty_form,
            expect: with(MEMBERS, 422),
        },
        // Not signed: no file for anyone; another practice's certificate is as unknown.
        Case {
            method: "GET",
            pattern: "/certificates/{id}/p7s",
            path: |f| format!("/certificates/{}/p7s", f.cert_a),
            body: none,
            expect: with(MEMBER_A, 404),
        },
        Case {
            method: "GET",
            pattern: "/certificates/import",
            path: |_| "/certificates/import".into(),
            body: none,
            expect: MEMBERS,
        },
        Case {
            method: "POST",
            pattern: "/certificates/import",
            path: |_| "/certificates/import".into(),
            body: |_| Body::Xml("<Bundle xmlns=\"http://hl7.org/fhir\"/>"),
            expect: with(MEMBERS, 422),
        },
        Case {
            method: "GET",
            pattern: "/admin/konnektor",
            path: |_| "/admin/konnektor".into(),
            body: none,
            expect: ADMIN,
        },
        Case {
            method: "POST",
            pattern: "/admin/konnektor/test",
            path: |_| "/admin/konnektor/test".into(),
            body: empty_form,
            expect: ADMIN,
        },
        Case {
            method: "POST",
            pattern: "/admin/konnektor/remove",
            path: |_| "/admin/konnektor/remove".into(),
            body: empty_form,
            expect: with(ADMIN, 303),
        },
        Case {
            method: "POST",
            pattern: "/admin/konnektor",
            path: |_| "/admin/konnektor".into(),
            body: |_| {
                Body::Form(vec![
                    ("base_url", "http://127.0.0.1:9".into()),
                    ("mandant_id", "m1".into()),
                    ("client_system_id", "au-relay".into()),
                    ("workplace_id", "empfang".into()),
                    ("card", "HBA".into()),
                    ("auth", "none".into()),
                ])
            },
            expect: with(ADMIN, 303),
        },
        Case {
            method: "GET",
            pattern: "/admin/kim",
            path: |_| "/admin/kim".into(),
            body: none,
            expect: ADMIN,
        },
        Case {
            method: "POST",
            pattern: "/admin/kim",
            path: |_| "/admin/kim".into(),
            body: |_| {
                Body::Form(vec![
                    ("address", "praxis@arzt.kim.telematik-test".into()),
                    ("smtp_host", "127.0.0.1".into()),
                    ("smtp_port", "9".into()),
                    ("pop3_host", "127.0.0.1".into()),
                    ("pop3_port", "9".into()),
                    ("tls", "implicit".into()),
                    ("mandant_id", "m1".into()),
                    ("client_system_id", "au-relay".into()),
                    ("workplace_id", "empfang".into()),
                    ("secret_ref", "env:AU_RELAY_TEST_KIM_PASSWORD".into()),
                    ("poll_minutes", "10".into()),
                ])
            },
            expect: with(ADMIN, 303),
        },
        Case {
            method: "POST",
            pattern: "/admin/kim/test",
            path: |_| "/admin/kim/test".into(),
            body: empty_form,
            expect: ADMIN,
        },
        // Practice A has a KIM account now, practice B none.
        Case {
            method: "POST",
            pattern: "/queue/kim-poll",
            path: |_| "/queue/kim-poll".into(),
            body: empty_form,
            expect: [303, 303, 404, 303, 403, 303, 303, 303],
        },
        Case {
            method: "GET",
            pattern: "/kim/eingang",
            path: |_| "/kim/eingang".into(),
            body: none,
            expect: [303, 403, 403, 200, 200, 303, 303, 303],
        },
        Case {
            method: "GET",
            pattern: "/kim/eingang/{id}",
            path: |_| format!("/kim/eingang/{}", uuid::Uuid::new_v4()),
            body: none,
            // A mail may carry patient data: never the operator's.
            expect: [303, 404, 404, 404, 403, 303, 303, 303],
        },
        Case {
            method: "POST",
            pattern: "/admin/kim/remove",
            path: |_| "/admin/kim/remove".into(),
            body: empty_form,
            expect: with(ADMIN, 303),
        },
        Case {
            method: "GET",
            pattern: "/admin/practice",
            path: |_| "/admin/practice".into(),
            body: none,
            expect: ADMIN,
        },
        Case {
            method: "POST",
            pattern: "/admin/practice",
            path: |_| "/admin/practice".into(),
            body: |_| {
                Body::Form(vec![
                    ("name", "Praxis Dr. Muster".into()),
                    ("street", "Hauptstraße 1".into()),
                    ("postal_code", "30159".into()),
                    ("city", "Hannover".into()),
                    ("phone", "0511 123456".into()),
                ])
            },
            expect: with(ADMIN, 303),
        },
        Case {
            method: "GET",
            pattern: "/admin/audit",
            path: |f| format!("/admin/audit?certificate={}", f.cert_a),
            body: none,
            expect: ADMIN,
        },
        Case {
            method: "GET",
            pattern: "/account/password",
            path: |_| "/account/password".into(),
            body: none,
            expect: LOGGED_IN,
        },
        // A wrong current password: every role gets as far as the check.
        Case {
            method: "POST",
            pattern: "/account/password",
            path: |_| "/account/password".into(),
            body: |_| Body::Form(vec![("current", "falsch".into())]),
            expect: with(LOGGED_IN, 422),
        },
        Case {
            method: "GET",
            pattern: "/operator",
            path: |_| "/operator".into(),
            body: none,
            expect: OPERATOR,
        },
        Case {
            method: "GET",
            pattern: "/operator/audit",
            path: |f| format!("/operator/audit?certificate={}", f.cert_a),
            body: none,
            expect: OPERATOR,
        },
        Case {
            method: "POST",
            pattern: "/operator/practices",
            path: |_| "/operator/practices".into(),
            body: |_| {
                Body::Form(vec![
                    ("bsnr", "171234567".into()),
                    ("name", "Praxis C".into()),
                    ("street", "Weg 2".into()),
                    ("postal_code", "10115".into()),
                    ("city", "Berlin".into()),
                    ("phone", "030 1234".into()),
                    ("land", "BE".into()),
                    ("lanr", "838382202".into()),
                    ("doctor_name", "Dr. C".into()),
                    ("admin_username", "verwaltung.c".into()),
                    ("admin_password", "Lange-Passphrase-1".into()),
                ])
            },
            expect: with(OPERATOR, 303),
        },
        Case {
            method: "POST",
            pattern: "/operator/tokens",
            path: |_| "/operator/tokens".into(),
            body: |_| {
                Body::Form(vec![
                    ("kind", "insurer".into()),
                    ("owner", IK_Y.into()),
                    ("label", "Abruf Y".into()),
                ])
            },
            // Post/redirect/get to the page that shows the new token once.
            expect: with(OPERATOR, 303),
        },
        Case {
            method: "GET",
            pattern: "/operator/tokens/created",
            path: |_| "/operator/tokens/created".into(),
            body: none,
            // Right after the post above: the operator's browser is shown its new token once.
            expect: OPERATOR,
        },
        Case {
            method: "POST",
            pattern: "/operator/tokens/revoke",
            path: |_| "/operator/tokens/revoke".into(),
            body: |f| {
                let token = au_relay::auth::new_token();
                let hash = au_relay::auth::token_hash(&token);
                let mut conn = f.db.conn().unwrap();
                storage::create_api_token(&mut conn, &hash, &f.a, "PVS").unwrap();
                Body::Form(vec![
                    ("kind", "practice".into()),
                    ("owner", "031234567".into()),
                    ("id", hash[..12].to_owned()),
                ])
            },
            expect: with(OPERATOR, 303),
        },
        Case {
            method: "GET",
            pattern: "/",
            path: |_| "/".into(),
            body: none,
            expect: [303; 8],
        },
        Case {
            method: "GET",
            pattern: "/static/{file}",
            path: |_| "/static/app.css".into(),
            body: none,
            expect: OPEN,
        },
        Case {
            method: "GET",
            pattern: "/static/{file}",
            path: |_| "/static/lookup.js".into(),
            body: none,
            expect: OPEN,
        },
        Case {
            method: "GET",
            pattern: "/static/{file}",
            path: |_| "/static/nothing.js".into(),
            body: none,
            expect: [404; 8],
        },
        Case {
            method: "POST",
            pattern: "/certificates/lookup/patients",
            path: |_| "/certificates/lookup/patients".into(),
            body: |_| Body::Form(vec![("q", "Mus".into())]),
            expect: MEMBERS,
        },
        Case {
            method: "POST",
            pattern: "/certificates/lookup/insurers",
            path: |_| "/certificates/lookup/insurers".into(),
            body: |_| Body::Form(vec![("q", "AOK".into())]),
            expect: MEMBERS,
        },
        Case {
            method: "GET",
            pattern: "/login",
            path: |_| "/login".into(),
            body: none,
            expect: OPEN,
        },
        Case {
            method: "POST",
            pattern: "/login",
            path: |_| "/login".into(),
            // Without the login form's token (its cookie and hidden field): refused for
            // everyone before any name is looked at (login CSRF).
            body: |_| Body::Form(vec![("username", uuid::Uuid::new_v4().to_string())]),
            expect: [403; 8],
        },
        Case {
            method: "GET",
            pattern: "/certificates",
            path: |_| "/certificates".into(),
            body: none,
            expect: MEMBERS,
        },
        // An empty capture form: members get the German field errors, nothing is stored.
        Case {
            method: "POST",
            pattern: "/certificates",
            path: |_| "/certificates".into(),
            body: empty_form,
            expect: with(MEMBERS, 422),
        },
        Case {
            method: "POST",
            pattern: "/certificates/search",
            path: |_| "/certificates/search".into(),
            body: |_| Body::Form(vec![("kvnr", "A123456780".into())]),
            expect: MEMBERS,
        },
        Case {
            method: "GET",
            pattern: "/certificates/new",
            path: |_| "/certificates/new".into(),
            body: none,
            expect: MEMBERS,
        },
        Case {
            method: "GET",
            pattern: "/certificates/{id}",
            path: |f| format!("/certificates/{}", f.cert_a),
            body: none,
            expect: MEMBER_A,
        },
        Case {
            method: "GET",
            pattern: "/certificates/{id}",
            path: |f| format!("/certificates/{}", f.cert_b),
            body: none,
            expect: MEMBER_B,
        },
        Case {
            method: "GET",
            pattern: "/certificates/{id}/folge",
            path: |f| format!("/certificates/{}/folge", f.cert_a),
            body: none,
            expect: MEMBER_A,
        },
        Case {
            method: "POST",
            pattern: "/certificates/{id}/cancel",
            path: |f| format!("/certificates/{}/cancel", f.fresh_a()),
            body: |_| Body::Form(vec![("confirm", "on".into())]),
            expect: with(MEMBER_A, 303),
        },
        Case {
            method: "POST",
            pattern: "/certificates/{id}/cancel",
            path: |f| format!("/certificates/{}/cancel", f.cert_b),
            body: |_| Body::Form(vec![("confirm", "on".into())]),
            expect: [303, 404, 303, 404, 403, 303, 303, 303],
        },
        // Certificates captured without mail consent: members get as far as "no mail".
        Case {
            method: "POST",
            pattern: "/certificates/{id}/mail",
            path: |f| format!("/certificates/{}/mail", f.cert_a),
            body: empty_form,
            expect: with(MEMBER_A, 422),
        },
        Case {
            method: "POST",
            pattern: "/certificates/{id}/mail",
            path: |f| format!("/certificates/{}/mail", f.cert_b),
            body: empty_form,
            expect: with(MEMBER_B, 422),
        },
        // Last: it ends the callers' sessions.
        Case {
            method: "POST",
            pattern: "/logout",
            path: |_| "/logout".into(),
            body: empty_form,
            expect: [303; 8],
        },
    ]
}

#[test]
fn every_registered_route_has_a_matrix_row() {
    let mut registered: Vec<_> = au_relay::web::route_list();
    let mut covered: Vec<_> = cases().iter().map(|c| (c.method, c.pattern)).collect();
    registered.sort_unstable();
    registered.dedup();
    covered.sort_unstable();
    covered.dedup();
    assert_eq!(
        registered, covered,
        "every route needs a row in tests/it/matrix.rs (and only registered routes have one)"
    );
}

/// How a caller authenticates.
enum Credentials {
    None,
    Session(reqwest::Client, String),
    Bearer(&'static str),
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_policy_says() {
    let app = TestApp::spawn().await;
    let a = demo_practice_id(&app.db);
    let b = add_practice_b(&app.db);
    add_user(
        &app.db,
        Some(&a),
        "staff.a",
        "Lange-Passphrase-A",
        Role::Staff,
    );
    add_user(
        &app.db,
        Some(&b),
        "staff.b",
        "Lange-Passphrase-B",
        Role::Staff,
    );
    {
        let mut conn = app.db.conn().unwrap();
        let token = au_relay::auth::token_hash;
        storage::create_insurer_token(&mut conn, &token("insurer-x"), IK_X, "X").unwrap();
        storage::create_insurer_token(&mut conn, &token("insurer-y"), IK_Y, "Y").unwrap();
        common::point_at(
            &mut conn,
            IK_X,
            &au_relay::insurers::fake::FakeInsurer::start(0).unwrap().0,
        );
    }
    let fx = Fx {
        cert_a: store_certificates(&app.db, &a, IK_X, 1).remove(0),
        cert_b: store_certificates(&app.db, &b, IK_Y, 1).remove(0),
        db: app.db.clone(),
        a,
        b,
    };
    let mut callers = Vec::new();
    for who in WHO {
        let credentials = match who {
            Who::Anonymous => Credentials::None,
            Who::StaffA => {
                let (c, csrf) = browser(&app, "staff.a", "Lange-Passphrase-A").await;
                Credentials::Session(c, csrf)
            }
            Who::StaffB => {
                let (c, csrf) = browser(&app, "staff.b", "Lange-Passphrase-B").await;
                Credentials::Session(c, csrf)
            }
            Who::AdminA => {
                let (c, csrf) = browser(&app, "demo", "demo").await;
                Credentials::Session(c, csrf)
            }
            Who::Operator => {
                let (c, csrf) = browser(&app, "operator", "operator").await;
                Credentials::Session(c, csrf)
            }
            Who::InsurerX => Credentials::Bearer("insurer-x"),
            Who::InsurerY => Credentials::Bearer("insurer-y"),
            Who::TokenA => Credentials::Bearer("demo-token"),
        };
        callers.push((who, credentials));
    }
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let mut wrong = Vec::new();
    for case in cases() {
        for (i, (who, credentials)) in callers.iter().enumerate() {
            let path = (case.path)(&fx);
            let (client, csrf) = match credentials {
                Credentials::Session(c, csrf) => (c, Some(csrf.clone())),
                _ => (&plain, None),
            };
            let session = csrf.is_some();
            let mut req = match case.method {
                "GET" => client.get(app.url(&path)),
                _ => client.post(app.url(&path)),
            };
            if let Credentials::Bearer(t) = credentials {
                req = req.bearer_auth(t);
            }
            req = match (case.body)(&fx) {
                Body::None => req,
                Body::Form(mut pairs) => {
                    if let Some(csrf) = csrf {
                        pairs.push(("csrf", csrf));
                    }
                    req.form(&pairs)
                }
                Body::Json(v) => req.json(&v),
                Body::Xml(x) => {
                    let req = req.header("Content-Type", "application/fhir+xml");
                    match &csrf {
                        Some(csrf) => req.header("X-CSRF-Token", csrf.as_str()).body(x),
                        None => req.body(x),
                    }
                }
            };
            if session && case.method == "POST" {
                forged_without_token(&app, client, &case, &fx, &path, who, i, &mut wrong).await;
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            if status == 303 && case.expect[i] == 303 && !case.pattern.starts_with("/login") {
                let to = r.headers()["location"].to_str().unwrap().to_owned();
                let expected_login =
                    matches!(credentials, Credentials::None | Credentials::Bearer(_))
                        && !matches!(case.pattern, "/" | "/logout");
                if expected_login && to != "/login" {
                    wrong.push(format!(
                        "{} {path} as {who:?}: 303 to {to}, not /login",
                        case.method
                    ));
                }
            }
            if status != case.expect[i] {
                wrong.push(format!(
                    "{} {path} as {who:?}: {status}, expected {}",
                    case.method, case.expect[i]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A state-changing post of a session without its CSRF token (sent first, so that a forged
/// post that got through would also show in the real post's answer): 403 wherever the real
/// post would be let in. Posts the role may not make at all keep their own answer.
#[allow(clippy::too_many_arguments)]
async fn forged_without_token(
    app: &TestApp,
    client: &reqwest::Client,
    case: &Case,
    fx: &Fx,
    path: &str,
    who: &Who,
    i: usize,
    wrong: &mut Vec<String>,
) {
    let req = client.post(app.url(path));
    let req = match (case.body)(fx) {
        Body::None => req,
        Body::Form(pairs) => req.form(&pairs),
        Body::Json(v) => req.json(&v),
        Body::Xml(x) => req.header("Content-Type", "application/fhir+xml").body(x),
    };
    let status = req.send().await.unwrap().status().as_u16();
    let let_in = matches!(case.expect[i], 200..=299 | 303 | 409 | 422);
    if let_in && status != 403 {
        wrong.push(format!(
            "POST {path} as {who:?} without its CSRF token: {status}, expected 403"
        ));
    }
}
