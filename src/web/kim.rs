//! KIM pages (German): the practice admin's KIM account at the client module, "Postfach jetzt
//! abrufen" on the dashboard, and the KIM inbox of mails that matched no document (the
//! operator sees every practice's, a practice admin its own).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::admin::{by_field, when};
use super::pages::{html, see_other};
use super::{read_form, AppState, PracticeAdmin, Session, Staff, WebError};
use crate::auth::Role;
use crate::domain::FieldError;
use crate::kim::{self, Tls};
use crate::storage::{self, KimAccountRow};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/admin/kim", kim_page)
        .post("/admin/kim", save_kim)
        .post("/admin/kim/test", test_kim)
        .post("/admin/kim/remove", remove_kim)
        .post("/queue/kim-poll", request_poll)
        .get("/kim/eingang", inbox)
        .get("/kim/eingang/{id}", inbox_mail);
}

/// The form as typed (every field text, so a rejected form comes back as it was).
#[derive(Deserialize, Default)]
struct KimForm {
    address: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<String>,
    pop3_host: Option<String>,
    pop3_port: Option<String>,
    tls: Option<String>,
    ca_pem: Option<String>,
    fachdienst_smtp: Option<String>,
    fachdienst_pop3: Option<String>,
    mandant_id: Option<String>,
    client_system_id: Option<String>,
    workplace_id: Option<String>,
    user_id: Option<String>,
    konnektor_id: Option<String>,
    secret_ref: Option<String>,
    poll_minutes: Option<String>,
    test_data: Option<String>,
}

fn text(v: &Option<String>) -> String {
    v.as_deref().unwrap_or_default().trim().to_owned()
}

fn optional(v: &Option<String>) -> Option<String> {
    Some(text(v)).filter(|s| !s.is_empty())
}

/// A login name field: no `#` (the separator), no blanks or control characters.
fn login_part(v: &str) -> bool {
    !v.contains('#') && !v.chars().any(|c| c.is_whitespace() || c.is_control()) && v.len() <= 128
}

impl KimForm {
    fn of(row: &KimAccountRow) -> Self {
        Self {
            address: Some(row.address.clone()),
            smtp_host: Some(row.smtp_host.clone()),
            smtp_port: Some(row.smtp_port.to_string()),
            pop3_host: Some(row.pop3_host.clone()),
            pop3_port: Some(row.pop3_port.to_string()),
            tls: Some(row.tls.clone()),
            ca_pem: row.ca_pem.clone(),
            fachdienst_smtp: row.fachdienst_smtp.clone(),
            fachdienst_pop3: row.fachdienst_pop3.clone(),
            mandant_id: Some(row.mandant_id.clone()),
            client_system_id: Some(row.client_system_id.clone()),
            workplace_id: Some(row.workplace_id.clone()),
            user_id: row.user_id.clone(),
            konnektor_id: row.konnektor_id.clone(),
            secret_ref: Some(row.secret_ref.clone()),
            poll_minutes: Some(row.poll_minutes.to_string()),
            test_data: row.test_data.then(|| "on".into()),
        }
    }

    /// The row to store, or every German field error at once.
    fn row(&self, practice_id: &str) -> Result<KimAccountRow, Vec<FieldError>> {
        let mut errors = Vec::new();
        let address = text(&self.address);
        if !kim::is_kim_address(&address) {
            errors.push(FieldError::new(
                "address",
                "KIM-Adresse der Praxis: eine Adresse unter kim.telematik (oder kim.telematik-test)",
            ));
        }
        let mut port = |field: &str, label: &str, v: &Option<String>| match text(v).parse::<u16>() {
            Ok(p) if p > 0 => i32::from(p),
            _ => {
                errors.push(FieldError::new(
                    field,
                    format!("{label}: eine Portnummer (1–65535)"),
                ));
                0
            }
        };
        let smtp_port = port("smtp_port", "SMTP-Port", &self.smtp_port);
        let pop3_port = port("pop3_port", "POP3-Port", &self.pop3_port);
        for (field, label, v) in [
            ("smtp_host", "SMTP-Host des Clientmoduls", &self.smtp_host),
            ("pop3_host", "POP3-Host des Clientmoduls", &self.pop3_host),
        ] {
            let host = text(v);
            if host.is_empty() || host.len() > 253 || !login_part(&host) || host.contains('/') {
                errors.push(FieldError::new(
                    field,
                    format!("{label}: Pflichtfeld (Name oder IP-Adresse)"),
                ));
            }
        }
        let tls = text(&self.tls);
        if Tls::parse(&tls).is_none() {
            errors.push(FieldError::new(
                "tls",
                "Verschlüsselung: TLS, STARTTLS oder keine",
            ));
        }
        let ca_pem = optional(&self.ca_pem);
        if ca_pem
            .as_deref()
            .is_some_and(|p| !p.contains("-----BEGIN CERTIFICATE-----") || p.len() > 64 * 1024)
        {
            errors.push(FieldError::new(
                "ca_pem",
                "Zertifikat des Clientmoduls: PEM (-----BEGIN CERTIFICATE-----)",
            ));
        }
        for (field, label, v) in [
            (
                "fachdienst_smtp",
                "Fachdienst SMTP (host:port)",
                &self.fachdienst_smtp,
            ),
            (
                "fachdienst_pop3",
                "Fachdienst POP3 (host:port)",
                &self.fachdienst_pop3,
            ),
        ] {
            if let Some(value) = optional(v) {
                let ok = value
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok || !login_part(&value) {
                    errors.push(FieldError::new(
                        field,
                        format!("{label}: z. B. kim.anbieter.de:465"),
                    ));
                }
            }
        }
        for (field, label, v, required) in [
            ("mandant_id", "Mandant", &self.mandant_id, true),
            (
                "client_system_id",
                "Clientsystem",
                &self.client_system_id,
                true,
            ),
            ("workplace_id", "Arbeitsplatz", &self.workplace_id, true),
            ("user_id", "Benutzer (UserId)", &self.user_id, false),
            (
                "konnektor_id",
                "Konnektor-Kennung",
                &self.konnektor_id,
                false,
            ),
        ] {
            let value = text(v);
            if (required && value.is_empty()) || !login_part(&value) {
                errors.push(FieldError::new(
                    field,
                    format!("{label}: wie im Infomodell des Konnektors, ohne # und Leerzeichen"),
                ));
            }
        }
        let secret_ref = text(&self.secret_ref);
        if !(secret_ref.starts_with("env:") || secret_ref.starts_with("file:"))
            || secret_ref.len() < 5
        {
            errors.push(FieldError::new(
                "secret_ref",
                "Passwort aus: env:NAME oder file:/pfad (das Passwort selbst wird nicht gespeichert)",
            ));
        }
        let poll_minutes = match text(&self.poll_minutes).parse::<i32>() {
            Ok(m) if (1..=1440).contains(&m) => m,
            _ => {
                errors.push(FieldError::new(
                    "poll_minutes",
                    "Abrufintervall: 1 bis 1440 Minuten (üblich: 10)",
                ));
                10
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(KimAccountRow {
            practice_id: practice_id.to_owned(),
            address,
            smtp_host: text(&self.smtp_host),
            smtp_port,
            pop3_host: text(&self.pop3_host),
            pop3_port,
            tls,
            ca_pem,
            fachdienst_smtp: optional(&self.fachdienst_smtp),
            fachdienst_pop3: optional(&self.fachdienst_pop3),
            mandant_id: text(&self.mandant_id),
            client_system_id: text(&self.client_system_id),
            workplace_id: text(&self.workplace_id),
            user_id: optional(&self.user_id),
            konnektor_id: optional(&self.konnektor_id),
            secret_ref,
            poll_minutes,
            test_data: self.test_data.is_some(),
            last_poll_at: None,
            last_poll_error: None,
            poll_requested_at: None,
            updated_at: storage::now(),
        })
    }
}

#[derive(Template)]
#[template(path = "kim.html")]
struct KimPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    configured: bool,
    form: KimForm,
    errors: Vec<FieldError>,
    by_field: std::collections::BTreeMap<String, String>,
    notice: String,
    test_result: String,
    test_ok: bool,
    /// The login names the client module will see.
    smtp_login: String,
    pop3_login: String,
    last_poll: String,
    last_poll_error: String,
}

impl KimPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }

    fn value(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

#[derive(Default)]
struct Shown {
    form: Option<KimForm>,
    errors: Vec<FieldError>,
    notice: String,
    test: Option<(bool, String)>,
}

impl KimForm {
    /// The form of a practice without a KIM account yet.
    fn blank() -> Self {
        Self {
            tls: Some("implicit".into()),
            poll_minutes: Some("10".into()),
            ..Self::default()
        }
    }
}

async fn render(
    admin: &PracticeAdmin,
    state: &AppState,
    shown: Shown,
) -> Result<HttpResponse, WebError> {
    let practice = admin.practice_id.clone();
    let row = state
        .db
        .run(move |c| storage::kim_account(c, &practice))
        .await?;
    let (smtp_login, pop3_login) = row
        .as_ref()
        .and_then(|r| kim::logins_of(r).ok())
        .unwrap_or_default();
    let form = shown.form.or_else(|| row.as_ref().map(KimForm::of));
    let form = form.unwrap_or_else(KimForm::blank);
    let status = super::admin::status_of(&shown.errors);
    let (test_ok, test_result) = shown.test.unwrap_or_default();
    let page = KimPage {
        nav_user: Some(&admin.user.username),
        nav_role: admin.role.as_str(),
        banner: super::Banner::load(state, admin.user.practice_id.as_deref()).await?,
        csrf: &admin.user.csrf_token,
        configured: row.is_some(),
        form,
        by_field: by_field(&shown.errors),
        errors: shown.errors,
        notice: shown.notice,
        test_result,
        test_ok,
        smtp_login,
        pop3_login,
        last_poll: row
            .as_ref()
            .map_or_else(String::new, |r| when(r.last_poll_at)),
        last_poll_error: row.and_then(|r| r.last_poll_error).unwrap_or_default(),
    };
    html(status, &page)
}

async fn kim_page(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let notice = match req.query_string() {
        "gespeichert" => {
            "Gespeichert. Signierte Dokumente gehen an Krankenkassen mit KIM-Adresse jetzt per KIM."
        }
        "entfernt" => "KIM-Konto entfernt.",
        _ => "",
    };
    let shown = Shown {
        notice: notice.into(),
        ..Shown::default()
    };
    render(&admin, &state, shown).await
}

async fn save_kim(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: KimForm = read_form(&admin, &state, payload).await?;
    let row = match form.row(&admin.practice_id) {
        Ok(row) => row,
        Err(errors) => {
            let shown = Shown {
                form: Some(form),
                errors,
                ..Shown::default()
            };
            return render(&admin, &state, shown).await;
        }
    };
    let actor = admin.actor();
    state
        .db
        .run(move |c| crate::service::save_kim_account(c, &actor, &row))
        .await?;
    Ok(see_other("/admin/kim?gespeichert"))
}

/// "Verbindung testen": logs in to the client module over SMTP and POP3 (nothing is sent or
/// read) and answers in German.
async fn test_kim(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let _: KimForm = read_form(&admin, &state, payload).await?;
    let practice = admin.practice_id.clone();
    let row = state
        .db
        .run(move |c| storage::kim_account(c, &practice))
        .await?;
    let result = match row.as_ref().map(kim::account_of) {
        None => (false, "Noch kein KIM-Konto gespeichert.".to_owned()),
        Some(Err(e)) => (false, e.to_string()),
        Some(Ok(account)) => match kim::check(&account, std::time::Duration::from_secs(15)).await {
            Ok(n) => (
                true,
                format!(
                    "Verbunden: Anmeldung per SMTP und POP3 angenommen, {n} Nachricht{} im Postfach.",
                    if n == 1 { "" } else { "en" }
                ),
            ),
            Err(e) => (false, e.to_string()),
        },
    };
    let shown = Shown {
        test: Some(result),
        ..Shown::default()
    };
    render(&admin, &state, shown).await
}

async fn remove_kim(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let _: KimForm = read_form(&admin, &state, payload).await?;
    let actor = admin.actor();
    state
        .db
        .run(move |c| crate::service::remove_kim_account(c, &actor))
        .await?;
    Ok(see_other("/admin/kim?entfernt"))
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[allow(dead_code)]
    csrf: Option<String>,
}

/// "Postfach jetzt abrufen": the poller reads the practice's mailbox within seconds.
async fn request_poll(
    staff: Staff,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let _: CsrfOnly = read_form(&staff, &state, payload).await?;
    let practice = staff.practice_id.clone();
    let found = state
        .db
        .run(move |c| storage::request_poll(c, &practice))
        .await?;
    if found {
        Ok(see_other("/queue?abruf"))
    } else {
        Err(WebError::NotFound)
    }
}

struct InboxView {
    id: String,
    received: String,
    kind: &'static str,
    summary: String,
    practice_id: String,
}

#[derive(Template)]
#[template(path = "kim_inbox.html")]
struct InboxPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    operator: bool,
    rows: Vec<InboxView>,
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "dsn" => "Zustellbericht",
        "insurer_error" => "Fehlermeldung der Kasse",
        "kim_error" => "Fehlermeldung des KIM-Dienstes",
        _ => "sonstige Nachricht",
    }
}

/// Who may see which practice's inbox: the operator all, a practice admin its own.
fn scope(session: &Session) -> Result<Option<String>, WebError> {
    match (session.role, &session.user.practice_id) {
        (Role::Operator, _) => Ok(None),
        (Role::Admin, Some(p)) => Ok(Some(p.clone())),
        _ => Err(WebError::Forbidden(
            "nur für die Praxisverwaltung oder den Betrieb",
        )),
    }
}

/// `GET /kim/eingang`: KIM mails that matched no document, kept for a person to look at.
async fn inbox(session: Session, state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let practice = scope(&session)?;
    let rows = state
        .db
        .run(move |c| storage::unmatched_inbox(c, practice.as_deref(), 500))
        .await?;
    let page = InboxPage {
        nav_user: Some(&session.user.username),
        nav_role: session.role.as_str(),
        banner: super::Banner::load(&state, session.user.practice_id.as_deref()).await?,
        csrf: &session.user.csrf_token,
        operator: session.role == Role::Operator,
        rows: rows
            .into_iter()
            .map(|r| InboxView {
                id: r.id,
                received: when(Some(r.received_at)),
                kind: kind_label(&r.kind),
                summary: r.summary,
                practice_id: r.practice_id,
            })
            .collect(),
    };
    html(StatusCode::OK, &page)
}

/// `GET /kim/eingang/{id}`: the mail as received (`message/rfc822`, a download), for the
/// practice's own members only: a mail may carry patient data, which the operator never sees.
async fn inbox_mail(
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = uuid::Uuid::parse_str(&path)
        .map_err(|_| WebError::NotFound)?
        .to_string();
    let practice = match (session.role, &session.user.practice_id) {
        (Role::Operator, _) | (_, None) => {
            return Err(WebError::Forbidden("nur für Mitglieder der Praxis"))
        }
        (_, Some(p)) => p.clone(),
    };
    let raw = state
        .db
        .run(move |c| storage::inbox_raw(c, Some(&practice), &id))
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type("message/rfc822")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"kim-nachricht.eml\"",
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(raw))
}
