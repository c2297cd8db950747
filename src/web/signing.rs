//! Signing pages (German): "Zu signieren" for the practice (Stapelsignatur through the
//! Konnektor) and the practice admin's Konnektor settings.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::admin::by_field;
use super::form::form_pairs;
use super::pages::{csrf_of, html, see_other};
use super::{read_body, read_form, AppState, PracticeAdmin, Staff, WebError};
use crate::domain::FieldError;
use crate::konnektor::{self, CardKind};
use crate::signing::{self, SigningError};
use crate::storage::{self, AwaitingSignature, KonnektorRow};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/signatur", to_sign)
        .post("/signatur", sign)
        .post("/signatur/komfort", comfort)
        .get("/admin/konnektor", konnektor_page)
        .post("/admin/konnektor", save_konnektor)
        .post("/admin/konnektor/test", test_konnektor)
        .post("/admin/konnektor/remove", remove_konnektor)
        .get("/certificates/{id}/p7s", download)
        .get("/certificates/import", import_page)
        .post("/certificates/import", import_file);
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
}

/// `GET /certificates/import`: upload a file that practice software made (`.p7s` or `.xml`).
async fn import_page(staff: Staff, state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let page = ImportPage {
        nav_user: Some(&staff.user.username),
        nav_role: staff.role.as_str(),
        banner: super::Banner::load(&state, staff.user.practice_id.as_deref()).await?,
        csrf: &staff.user.csrf_token,
    };
    html(StatusCode::OK, &page)
}

/// `POST /certificates/import` (from the upload page's script): the file as the body, its type
/// as `Content-Type`, the session's CSRF token in `X-CSRF-Token`. Answers JSON: where the
/// certificate is, or the German issues. A Storno file cancels the practice's eAU it names
/// (see `POST /api/v1/fhir/eau`); the answer is then that certificate's page and the outcome.
async fn import_file(
    staff: Staff,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let csrf = req
        .headers()
        .get("X-CSRF-Token")
        .and_then(|v| v.to_str().ok());
    staff.check_csrf(csrf)?;
    let signed = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(crate::signature::CONTENT_TYPE));
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let actor = storage::Actor {
        channel: "web-import",
        ..staff.actor()
    };
    let imported = if signed {
        crate::capture::import_signed(&state.db, actor, body.to_vec()).await
    } else {
        crate::capture::import(&state.db, actor, body.to_vec()).await
    };
    import_answer(imported.map_err(WebError::from)?)
}

/// The JSON answer to an imported file: where the certificate is, or the German issues.
fn import_answer(imported: crate::capture::Imported) -> Result<HttpResponse, WebError> {
    use crate::capture::Imported;
    let issues = |status: StatusCode, issues: &[crate::fhir::Issue]| {
        HttpResponse::build(status).json(serde_json::json!({ "issues": issues }))
    };
    Ok(match imported {
        Imported::Invalid(found) => issues(StatusCode::UNPROCESSABLE_ENTITY, &found),
        Imported::Conflict(found) => issues(StatusCode::CONFLICT, &found),
        Imported::Storno(storno) => HttpResponse::Ok().json(serde_json::json!({
            "location": format!("/certificates/{}", storno.cancels),
            "outcome": super::cancel_outcome(storno.outcome)?,
        })),
        Imported::Stored { captured, .. } => match captured {
            storage::Captured::Conflict(_) => issues(
                StatusCode::CONFLICT,
                &[crate::fhir::Issue::error(
                    crate::fhir::IssueCode::BusinessRule,
                    "Bundle.identifier",
                    "Dokument-ID ist bereits mit anderem Inhalt gespeichert (KP5-06)",
                )],
            ),
            storage::Captured::Created(id) | storage::Captured::AlreadyStored(id) => {
                HttpResponse::Ok()
                    .json(serde_json::json!({ "location": format!("/certificates/{id}") }))
            }
        },
    })
}

/// `GET /certificates/{id}/p7s`: the signed file as stored (and sent), for the practice.
async fn download(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = uuid::Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let practice = staff.practice_id.clone();
    let p7s = state
        .db
        .run(move |c| storage::signed_file(c, &practice, id))
        .await?
        .ok_or(WebError::NotFound)?;
    let name = crate::signature::file_name(false, &id.to_string(), true);
    Ok(HttpResponse::Ok()
        .content_type(crate::signature::CONTENT_TYPE)
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(p7s))
}

/// Documents shown (and signable) on one page: one Stapelsignatur.
fn page_size() -> i64 {
    i64::try_from(konnektor::MAX_BATCH).unwrap_or(i64::MAX)
}

struct WaitingView {
    delivery_id: String,
    certificate_id: String,
    kind: &'static str,
    name: String,
    period: String,
    created: String,
    error: String,
}

impl WaitingView {
    fn of(d: AwaitingSignature) -> Self {
        Self {
            kind: match d.kind {
                storage::DocumentKind::Storno => "Storno",
                storage::DocumentKind::Eau | storage::DocumentKind::Mail => "eAU",
            },
            period: format!(
                "{} – {}",
                d.determined_on.format("%d.%m.%Y"),
                d.incapable_until.format("%d.%m.%Y")
            ),
            created: super::admin::when(Some(d.created_at)),
            error: d.last_error.unwrap_or_default(),
            name: d.display_name,
            certificate_id: d.certificate_id,
            delivery_id: d.delivery_id,
        }
    }
}

#[derive(Template)]
#[template(path = "signing.html")]
struct SigningPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    konnektor: Option<String>,
    waiting: Vec<WaitingView>,
    total: i64,
    notice: String,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Outcome {
    signiert: Option<usize>,
    fehler: Option<usize>,
    komfort: Option<u32>,
}

async fn render(
    staff: &Staff,
    state: &AppState,
    status: StatusCode,
    notice: String,
    error: String,
) -> Result<HttpResponse, WebError> {
    let practice = staff.practice_id.clone();
    let (waiting, total, row) = state
        .db
        .run(move |c| {
            let waiting = storage::awaiting_signature(c, &practice, page_size())?;
            let total = storage::awaiting_signature_count(c, &practice)?;
            Ok((waiting, total, storage::konnektor_of(c, &practice)?))
        })
        .await?;
    let konnektor = row.map(|r| {
        let card = CardKind::parse(&r.card).map_or("Karte", CardKind::label);
        format!("{} mit {card}", r.base_url)
    });
    let page = SigningPage {
        nav_user: Some(&staff.user.username),
        nav_role: staff.role.as_str(),
        banner: super::Banner::load(state, staff.user.practice_id.as_deref()).await?,
        csrf: &staff.user.csrf_token,
        konnektor,
        waiting: waiting.into_iter().map(WaitingView::of).collect(),
        total,
        notice,
        error,
    };
    html(status, &page)
}

/// `GET /signatur`: the practice's documents waiting for the doctor's signature.
async fn to_sign(
    staff: Staff,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let outcome: Outcome = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let notice = match (outcome.signiert, outcome.fehler) {
        _ if outcome.komfort.is_some() => {
            "Komfortsignatur aktiv: die nächsten Stapel werden ohne PIN-Eingabe signiert (bis zu 250 Signaturen, höchstens 24 Stunden)".into()
        }
        (Some(n), Some(f)) if f > 0 => {
            format!(
                "{n} signiert und zum Versand freigegeben, {f} nicht signiert (Grund in der Liste)"
            )
        }
        (Some(n), _) => format!("{n} signiert und zum Versand freigegeben"),
        _ => String::new(),
    };
    render(&staff, &state, StatusCode::OK, notice, String::new()).await
}

/// `POST /signatur`: signs the ticked documents in one Stapelsignatur (the doctor enters the
/// PIN at the card terminal once), then shows what happened.
async fn sign(
    staff: Staff,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    staff.check_csrf(csrf_of(&body)?.as_deref())?;
    let ids: Vec<String> = form_pairs(&body)?
        .into_iter()
        .filter(|(k, _)| k == "doc")
        .map(|(_, v)| v)
        .collect();
    match signing::sign(&state.db, &staff.actor(), ids).await {
        Ok(report) => Ok(see_other(&format!(
            "/signatur?signiert={}&fehler={}",
            report.signed,
            report.failed.len()
        ))),
        Err(e) => refused(&staff, &state, e, "").await,
    }
}

/// The signing page with why a signing step did not happen: 502 for the Konnektor's fault,
/// 422 for what the practice can change.
async fn refused(
    staff: &Staff,
    state: &AppState,
    e: SigningError,
    prefix: &str,
) -> Result<HttpResponse, WebError> {
    let status = match e {
        SigningError::Storage(e) => return Err(e.into()),
        SigningError::Konnektor(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    render(staff, state, status, String::new(), format!("{prefix}{e}")).await
}

/// `POST /signatur/komfort`: one PIN entry for the next signatures (Komfortsignatur).
async fn comfort(
    staff: Staff,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    staff.check_csrf(csrf_of(&body)?.as_deref())?;
    match signing::activate_comfort(&state.db, &staff.actor()).await {
        Ok(_) => Ok(see_other("/signatur?komfort=1")),
        Err(e) => refused(&staff, &state, e, "Komfortsignatur nicht aktiviert: ").await,
    }
}

// --- Konnektor settings (practice admin) --------------------------------------------------------

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct KonnektorForm {
    base_url: Option<String>,
    mandant_id: Option<String>,
    client_system_id: Option<String>,
    workplace_id: Option<String>,
    user_id: Option<String>,
    card: Option<String>,
    iccsn: Option<String>,
    auth: Option<String>,
    basic_user: Option<String>,
    secret_ref: Option<String>,
    accept_invalid_certs: Option<String>,
    smcb_allowed: Option<String>,
}

impl KonnektorForm {
    fn of(row: &KonnektorRow) -> Self {
        Self {
            base_url: Some(row.base_url.clone()),
            mandant_id: Some(row.mandant_id.clone()),
            client_system_id: Some(row.client_system_id.clone()),
            workplace_id: Some(row.workplace_id.clone()),
            user_id: row.user_id.clone(),
            card: Some(row.card.clone()),
            iccsn: row.iccsn.clone(),
            auth: Some(row.auth.clone()),
            basic_user: row.basic_user.clone(),
            secret_ref: row.secret_ref.clone(),
            accept_invalid_certs: row.accept_invalid_certs.then(|| "on".into()),
            smcb_allowed: row.smcb_allowed.then(|| "on".into()),
        }
    }

    fn text(v: &Option<String>) -> String {
        v.as_deref().unwrap_or_default().trim().to_owned()
    }

    fn optional(v: &Option<String>) -> Option<String> {
        Some(Self::text(v)).filter(|s| !s.is_empty())
    }

    /// The row to store, or every German field error at once.
    fn row(&self, practice_id: &str) -> Result<KonnektorRow, Vec<FieldError>> {
        let mut errors = Vec::new();
        let base_url = Self::text(&self.base_url).trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
            || base_url.len() < 10
        {
            errors.push(FieldError::new(
                "base_url",
                "Adresse des Konnektors: https://… (ohne /connector.sds)",
            ));
        }
        for (field, label, value) in [
            ("mandant_id", "Mandant", &self.mandant_id),
            ("client_system_id", "Clientsystem", &self.client_system_id),
            ("workplace_id", "Arbeitsplatz", &self.workplace_id),
        ] {
            let v = Self::text(value);
            if v.is_empty() || v.len() > 64 || v.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    field,
                    format!("{label}: Pflichtfeld (wie im Infomodell des Konnektors)"),
                ));
            }
        }
        let card = Self::text(&self.card);
        if CardKind::parse(&card).is_none() {
            errors.push(FieldError::new("card", "Karte: eHBA oder SMC-B"));
        }
        let auth = Self::text(&self.auth);
        let secret_ref = Self::optional(&self.secret_ref);
        match auth.as_str() {
            "none" => {}
            "basic" | "cert" => match &secret_ref {
                Some(s) if s.starts_with("env:") || s.starts_with("file:") => {}
                _ => errors.push(FieldError::new(
                    "secret_ref",
                    "Geheimnis: env:NAME oder file:/pfad (das Passwort bzw. Zertifikat selbst wird nicht gespeichert)",
                )),
            },
            _ => errors.push(FieldError::new("auth", "Anmeldung: keine, Benutzer/Passwort oder Client-Zertifikat")),
        }
        if auth == "basic" && Self::optional(&self.basic_user).is_none() {
            errors.push(FieldError::new(
                "basic_user",
                "Benutzername: Pflichtfeld bei Benutzer/Passwort",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(KonnektorRow {
            practice_id: practice_id.to_owned(),
            base_url,
            mandant_id: Self::text(&self.mandant_id),
            client_system_id: Self::text(&self.client_system_id),
            workplace_id: Self::text(&self.workplace_id),
            user_id: Self::optional(&self.user_id),
            card,
            iccsn: Self::optional(&self.iccsn),
            basic_user: Self::optional(&self.basic_user).filter(|_| auth == "basic"),
            secret_ref: secret_ref.filter(|_| auth != "none"),
            auth,
            accept_invalid_certs: self.accept_invalid_certs.is_some(),
            smcb_allowed: self.smcb_allowed.is_some(),
            updated_at: storage::now(),
        })
    }
}

#[derive(Template)]
#[template(path = "konnektor.html")]
struct KonnektorPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    configured: bool,
    form: KonnektorForm,
    errors: Vec<FieldError>,
    by_field: std::collections::BTreeMap<String, String>,
    notice: String,
    test_result: String,
    test_ok: bool,
}

impl KonnektorPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }

    fn value(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
}

struct Shown {
    form: Option<KonnektorForm>,
    errors: Vec<FieldError>,
    notice: String,
    test: Option<(bool, String)>,
}

async fn render_konnektor(
    admin: &PracticeAdmin,
    state: &AppState,
    shown: Shown,
) -> Result<HttpResponse, WebError> {
    let practice = admin.practice_id.clone();
    let row = state
        .db
        .run(move |c| storage::konnektor_of(c, &practice))
        .await?;
    let form = shown
        .form
        .or_else(|| row.as_ref().map(KonnektorForm::of))
        .unwrap_or_else(|| KonnektorForm {
            card: Some("HBA".into()),
            auth: Some("none".into()),
            ..KonnektorForm::default()
        });
    let status = if shown.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (test_ok, test_result) = shown.test.unwrap_or_default();
    let page = KonnektorPage {
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
    };
    html(status, &page)
}

async fn konnektor_page(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let notice = match req.query_string() {
        "gespeichert" => {
            "Gespeichert. Neue Bescheinigungen warten auf die Signatur, bevor sie versendet werden."
        }
        "entfernt" => "Konnektor entfernt. Wartende Dokumente werden unsigniert versendet.",
        _ => "",
    };
    let shown = Shown {
        form: None,
        errors: Vec::new(),
        notice: notice.into(),
        test: None,
    };
    render_konnektor(&admin, &state, shown).await
}

async fn save_konnektor(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: KonnektorForm = read_form(&admin, &state, payload).await?;
    let row = match form.row(&admin.practice_id) {
        Ok(row) => row,
        Err(errors) => {
            let shown = Shown {
                form: Some(form),
                errors,
                notice: String::new(),
                test: None,
            };
            return render_konnektor(&admin, &state, shown).await;
        }
    };
    let actor = admin.actor();
    state
        .db
        .run(move |c| crate::service::save_konnektor(c, &actor, &row))
        .await?;
    Ok(see_other("/admin/konnektor?gespeichert"))
}

/// "Verbindung testen": connector.sds, the card and the signature mode, answered in German.
async fn test_konnektor(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let _: KonnektorForm = read_form(&admin, &state, payload).await?;
    let result = match signing::client_of(&state.db, &admin.practice_id).await {
        Ok((client, _)) => match client.status().await {
            Ok(s) => (
                true,
                format!(
                    "Verbunden: {} (SignatureService {}), {} {}{}",
                    s.product,
                    s.signature_service_version,
                    s.card_kind.label(),
                    s.card_holder.as_deref().unwrap_or("gesteckt"),
                    if s.comfort_available {
                        ", Komfortsignatur verfügbar"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => (false, e.german()),
        },
        Err(SigningError::Storage(e)) => return Err(e.into()),
        Err(e) => (false, e.to_string()),
    };
    let shown = Shown {
        form: None,
        errors: Vec::new(),
        notice: String::new(),
        test: Some(result),
    };
    render_konnektor(&admin, &state, shown).await
}

async fn remove_konnektor(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let _: KonnektorForm = read_form(&admin, &state, payload).await?;
    let actor = admin.actor();
    state
        .db
        .run(move |c| crate::service::remove_konnektor(c, &actor))
        .await?;
    Ok(see_other("/admin/konnektor?entfernt"))
}
