//! The German staff UI: login, "Neue AU", list with search, detail. Post/redirect/get.

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::form::{form_pairs, form_value, from_form, from_value};
use super::{read_body, AppState, Session, Staff, WebError};
use crate::auth::Role;
use crate::capture::{self, CaptureError};
use crate::domain::{
    parse_date, Cause, CertificateDraft, CertificateKind, DeliveryState, DiagnosisDraft, Doctor,
    DocumentKind, FieldError, MailResend, PasswordPolicy, Practice,
};
use crate::service;
use crate::storage::{self, ListItem, Search};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/", home)
        .get("/static/{file}", static_file)
        .get("/certificates", list)
        .post("/certificates", create)
        .post("/certificates/search", search)
        .get("/certificates/new", new_form)
        .get("/certificates/{id}/folge", follow_up_form)
        .get("/certificates/{id}", detail)
        .post("/certificates/{id}/cancel", cancel)
        .post("/certificates/{id}/mail", resend_mail);
}

pub(super) fn html(status: StatusCode, page: &impl Template) -> Result<HttpResponse, WebError> {
    let body = page
        .render()
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The start page of the role: operators have no certificate list.
async fn home(session: Option<Session>) -> HttpResponse {
    match session.map(|s| s.role) {
        Some(Role::Operator) => see_other("/operator"),
        Some(Role::Insurer) => see_other("/kasse/scans"),
        _ => see_other("/certificates"),
    }
}

/// The stylesheet and the scripts of the pages, compiled in (same origin: the CSP allows them).
async fn static_file(path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (body, content_type) = match path.as_str() {
        "app.css" => (
            include_str!("../../static/app.css"),
            "text/css; charset=utf-8",
        ),
        "import.js" => (include_str!("../../static/import.js"), JAVASCRIPT),
        "signing.js" => (include_str!("../../static/signing.js"), JAVASCRIPT),
        "lookup.js" => (include_str!("../../static/lookup.js"), JAVASCRIPT),
        "scans.js" => (include_str!("../../static/scans.js"), JAVASCRIPT),
        _ => return Err(WebError::NotFound),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body))
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    status: u16,
    message: &'a str,
}

/// The body of an error page (used by [`WebError`]'s HTML rendering).
pub fn error_page(status: StatusCode, message: &str) -> String {
    let page = ErrorPage {
        nav_user: None,
        nav_role: "",
        banner: super::Banner::default(),
        csrf: "",
        status: status.as_u16(),
        message,
    };
    page.render()
        .unwrap_or_else(|_| format!("{} {message}", status.as_u16()))
}

pub(super) fn csrf_of(body: &[u8]) -> Result<Option<String>, WebError> {
    Ok(form_pairs(body)?
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v))
}

// --- list and search --------------------------------------------------------------------------

use crate::service::PER_PAGE;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Filter {
    name: String,
    kvnr: String,
    from: String,
    to: String,
    page: Option<String>,
    csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    filter: Filter,
    errors: Vec<FieldError>,
    items: Vec<ListItem>,
    /// `(certificate, state)` of each listed certificate's eAU delivery.
    send_states: Vec<(String, DeliveryState)>,
    total: i64,
    page: i64,
    pages: i64,
}

impl ListPage<'_> {
    fn local(&self, utc: &chrono::NaiveDateTime) -> String {
        local(utc)
    }

    /// The send state of a listed certificate; one without a delivery is on paper only.
    fn send_state(&self, id: &str) -> (&'static str, &str) {
        self.send_states
            .iter()
            .find(|(c, _)| c == id)
            .map_or(("nur Papier", "print_only"), |(_, state)| {
                (state.label(), state.code())
            })
    }

    /// "Erstbescheinigung", "Folgebescheinigung", … instead of the stored code.
    fn kind_label(&self, code: &str) -> &'static str {
        CertificateKind::parse(code).map_or("unbekannte Art", CertificateKind::label)
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<i64>,
}

async fn list(
    staff: Staff,
    state: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, WebError> {
    render_list(&staff, &state, Filter::default(), q.page.unwrap_or(1)).await
}

async fn search(
    staff: Staff,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let filter: Filter = from_form(&body)?;
    staff.check_csrf(filter.csrf.as_deref())?;
    let page = filter
        .page
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    render_list(&staff, &state, filter, page).await
}

async fn render_list(
    staff: &Staff,
    state: &AppState,
    filter: Filter,
    page: i64,
) -> Result<HttpResponse, WebError> {
    let (search, errors) = filter.search();
    let page = page.max(1);
    let practice = staff.practice_id.clone();
    let (result, send_states) = state
        .db
        .run(move |c| service::list(c, &practice, &search, page))
        .await?;
    let view = ListPage {
        nav_user: Some(&staff.user.username),
        nav_role: staff.role.as_str(),
        banner: super::Banner::load(state, staff.user.practice_id.as_deref()).await?,
        csrf: &staff.user.csrf_token,
        filter,
        errors,
        items: result.items,
        send_states,
        total: result.total,
        page,
        pages: (result.total + PER_PAGE - 1) / PER_PAGE,
    };
    html(StatusCode::OK, &view)
}

impl Filter {
    /// The search the filter asks for, and what was wrong with its dates.
    fn search(&self) -> (Search, Vec<FieldError>) {
        let mut errors = Vec::new();
        let mut date = |value: &str, field: &str, label| match parse_date(value, label) {
            _ if value.trim().is_empty() => None,
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(FieldError::new(field, e.to_string()));
                None
            }
        };
        let search = Search {
            name: Some(self.name.clone()),
            kvnr: Some(self.kvnr.clone()),
            from: date(&self.from, "from", "Festgestellt von"),
            to: date(&self.to, "to", "Festgestellt bis"),
        };
        (search, errors)
    }
}

// --- capture ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    form_token: String,
    draft: CertificateDraft,
    diagnosis_rows: Vec<DiagnosisDraft>,
    errors: Vec<FieldError>,
    by_field: BTreeMap<String, String>,
    practice: Practice,
    doctors: Vec<Doctor>,
    causes: Vec<(String, String)>,
    insured_types: Vec<(String, String)>,
    certainties: Vec<(String, String)>,
    sides: Vec<(String, String)>,
    mail_password_hint: &'static str,
    /// The SDKT lists the IK as expired.
    ik_warning: Option<String>,
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The capture form's fields in the order the form shows them, with the labels it shows
/// (the error summary lists its errors in this order, under these names).
const FORM_ORDER: &[(&str, &str)] = &[
    ("kind", "Art"),
    ("issued_on", "Ausstellungsdatum"),
    ("patient.last_name", "Name"),
    ("patient.first_name", "Vorname"),
    ("patient.title", "Titel"),
    ("patient.name_addition", "Namenszusatz"),
    ("patient.name_prefix", "Vorsatzwort"),
    ("patient.birth_date", "Geburtsdatum"),
    ("patient.kvnr", "Versicherten-Nr."),
    ("patient.street", "Straße"),
    ("patient.house_number", "Hausnummer"),
    ("patient.post_box", "Postfach"),
    ("patient.postal_code", "PLZ"),
    ("patient.city", "Ort"),
    ("insurer.name", "Krankenkasse bzw. Kostenträger"),
    ("insurer.ik", "Kostenträgerkennung (IK)"),
    ("insurer.insured_type", "Versichertenart"),
    ("insurer.special_group", "Besondere Personengruppe"),
    ("insurer.dmp", "DMP-Kennzeichen"),
    ("insurer.wop", "WOP"),
    ("insurer.valid_until", "Versichert bis"),
    ("doctor_lanr", "Arzt (LANR)"),
    (
        "period.since",
        "arbeitsunfähig seit (nur Erstbescheinigung)",
    ),
    (
        "period.until",
        "voraussichtlich arbeitsunfähig bis einschließlich",
    ),
    ("period.determined_on", "festgestellt am"),
    ("backdating_confirmed", "Rückdatierung"),
    ("cause", "Ursache"),
    ("sick_pay_case", "Krankengeldfall"),
    ("diagnoses", "Diagnosen"),
    ("diagnosis_text", "Hinweise zur Diagnose"),
    ("measures.other", "sonstige Maßnahmen"),
    ("mail.address", "E-Mail-Adresse"),
    ("mail.consent", "Einwilligung in den E-Mail-Versand"),
];

/// One line of the error summary: a link to the field, its name as on the form, the problem.
pub(super) struct SummaryItem {
    pub target: String,
    pub label: String,
    pub message: String,
}

/// The errors of the capture form in form order, each named as the form names its field and
/// linked to it; the message loses its own field prefix ("Versicherten-Nr.: …").
pub(super) fn form_summary(errors: &[FieldError]) -> Vec<SummaryItem> {
    let position = |field: &str| -> (usize, usize, usize) {
        if let Some(rest) = field.strip_prefix("diagnoses[") {
            let (index, sub) = rest.split_once("].").unwrap_or((rest, ""));
            let at = FORM_ORDER.iter().position(|(k, _)| *k == "diagnoses");
            let sub = ["code", "certainty", "side"]
                .iter()
                .position(|s| *s == sub)
                .unwrap_or(3);
            return (at.unwrap_or(usize::MAX), index.parse().unwrap_or(0), sub);
        }
        let at = FORM_ORDER.iter().position(|(k, _)| *k == field);
        (at.unwrap_or(usize::MAX), 0, 0)
    };
    let mut sorted: Vec<&FieldError> = errors.iter().collect();
    sorted.sort_by_key(|e| position(&e.field));
    sorted
        .into_iter()
        .map(|e| {
            let (at, row, sub) = position(&e.field);
            let label = match FORM_ORDER.get(at) {
                Some(("diagnoses", _)) if e.field != "diagnoses" => {
                    let what = ["ICD-10-Code", "Diagnosesicherheit", "Seitenlokalisation"];
                    format!("{} {}", what.get(sub).unwrap_or(&"Diagnose"), row + 1)
                }
                Some((_, label)) => (*label).to_owned(),
                None => e.field.clone(),
            };
            let message = e
                .message
                .split_once(": ")
                .map_or(e.message.as_str(), |(_, rest)| rest)
                .to_owned();
            SummaryItem {
                target: e.field.clone(),
                label,
                message,
            }
        })
        .collect()
}

impl NewPage<'_> {
    /// Erst- or Folgebescheinigung, whether or not it is also the Endbescheinigung (a box of
    /// its own, never one key away from ERST).
    fn kind_is(&self, base: &str) -> bool {
        self.draft.kind.trim_end_matches("_END") == base
    }

    fn is_end(&self) -> bool {
        self.draft.kind.ends_with("_END")
    }

    fn summary(&self) -> Vec<SummaryItem> {
        form_summary(&self.errors)
    }

    fn err(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }

    fn err_at(&self, index: &usize, field: &str) -> Option<&str> {
        self.err(&format!("diagnoses[{index}].{field}"))
    }
}

async fn render_form(
    staff: &Staff,
    state: &AppState,
    draft: CertificateDraft,
    form_token: String,
    errors: Vec<FieldError>,
) -> Result<HttpResponse, WebError> {
    let practice_id = staff.practice_id.clone();
    let (practice, doctors) = state
        .db
        .run(move |c| service::master_data(c, &practice_id))
        .await?;
    let mut diagnosis_rows = draft.diagnoses.clone();
    diagnosis_rows.resize(diagnosis_rows.len().max(6), DiagnosisDraft::default());
    let today = crate::domain::berlin_today(chrono::Utc::now());
    let page = NewPage {
        ik_warning: state
            .settings
            .insurers
            .status(draft.insurer.ik.trim(), today)
            .warning(),
        nav_user: Some(&staff.user.username),
        nav_role: staff.role.as_str(),
        banner: super::Banner::load(state, staff.user.practice_id.as_deref()).await?,
        csrf: &staff.user.csrf_token,
        form_token,
        by_field: super::admin::by_field(&errors),
        errors,
        draft,
        diagnosis_rows,
        practice,
        doctors,
        causes: causes(),
        insured_types: pairs(&INSURED_TYPES),
        certainties: pairs(&CERTAINTIES),
        sides: pairs(&SIDES),
        mail_password_hint: password_hint(state.settings.mail.policy),
    };
    html(super::admin::status_of(&page.errors), &page)
}

/// `(code, label)` of every cause, for the form's select.
fn causes() -> Vec<(String, String)> {
    Cause::ALL
        .iter()
        .map(|c| (c.code().to_owned(), c.label().to_owned()))
        .collect()
}

/// The insured types of the form's select.
const INSURED_TYPES: [(&str, &str); 3] = [
    ("1", "Mitglied"),
    ("3", "Familienversicherte"),
    ("5", "Rentner"),
];

/// The sides of the diagnoses' selects.
const SIDES: [(&str, &str); 3] = [("R", "rechts"), ("L", "links"), ("B", "beidseits")];

/// The diagnosis certainties of the form's selects.
const CERTAINTIES: [(&str, &str); 4] = [
    ("G", "gesichert"),
    ("V", "Verdacht"),
    ("Z", "Zustand nach"),
    ("A", "ausgeschlossen"),
];

/// What the form tells about the password of the patient's PDF.
fn password_hint(policy: PasswordPolicy) -> &'static str {
    match policy {
        PasswordPolicy::BirthDate => {
            "Passwort des PDFs: das Geburtsdatum als TTMMJJJJ – bitte der Person so mitteilen."
        }
        PasswordPolicy::Random => {
            "Passwort des PDFs: wird zufällig erzeugt und nach dem Speichern hier angezeigt – bitte der Person aushändigen."
        }
    }
}

async fn new_form(staff: Staff, state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let today = crate::domain::berlin_today(chrono::Utc::now())
        .format("%d.%m.%Y")
        .to_string();
    let draft = CertificateDraft {
        kind: "ERST".into(),
        issued_on: Some(today.clone()),
        period: crate::domain::PeriodDraft {
            since: Some(today.clone()),
            until: String::new(),
            determined_on: today,
        },
        insurer: crate::domain::InsurerDraft {
            insured_type: "1".into(),
            special_group: Some("00".into()),
            dmp: Some("00".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    render_blank(&staff, &state, draft).await
}

/// The capture form, filled with `draft`, under a new one-time form token.
async fn render_blank(
    staff: &Staff,
    state: &AppState,
    draft: CertificateDraft,
) -> Result<HttpResponse, WebError> {
    render_form(staff, state, draft, Uuid::new_v4().to_string(), Vec::new()).await
}

/// "Folgebescheinigung erstellen": the capture form filled from a certificate of the practice.
async fn follow_up_form(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let practice = staff.practice_id.clone();
    let previous = state
        .db
        .run(move |c| service::certificate(c, &practice, id))
        .await?
        .ok_or(WebError::NotFound)?;
    let today = crate::domain::berlin_today(chrono::Utc::now());
    let draft = CertificateDraft::follow_up(&previous.certificate, today);
    render_blank(&staff, &state, draft).await
}

/// Splits the form into the draft and the hidden fields (CSRF, one-time form token).
fn parse_capture_form(
    body: &[u8],
) -> Result<(CertificateDraft, Option<String>, Option<String>), FieldError> {
    let mut value = form_value(body)?;
    let mut take = |key: &str| {
        value
            .as_object_mut()
            .and_then(|o| o.remove(key))
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let (csrf, token) = (take("csrf"), take("form_token"));
    // "Endbescheinigung" is its own box beside the Erst/Folge choice.
    if take("end").is_some() {
        if let Some(kind) = value.get_mut("kind") {
            if let Some(base @ ("ERST" | "FOLGE")) = kind.as_str() {
                *kind = serde_json::Value::String(format!("{base}_END"));
            }
        }
    }
    // A diagnosis row without a code is an unused row (its selects always send a value).
    if let Some(rows) = value.get_mut("diagnoses").and_then(|v| v.as_array_mut()) {
        rows.retain(|row| row.get("code").is_some());
    }
    let token = token.filter(|t| Uuid::parse_str(t).is_ok());
    Ok((from_value(value)?, csrf, token))
}

async fn create(
    staff: Staff,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let (draft, csrf, token) = parse_capture_form(&body)?;
    staff.check_csrf(csrf.as_deref())?;
    let actor = staff.actor();
    let form_token = token.clone().unwrap_or_else(|| Uuid::new_v4().to_string());
    match capture::submit(&state.db, actor, draft.clone(), token, &state.settings.mail).await {
        Ok(submitted) => Ok(see_other(&format!(
            "/certificates/{}",
            submitted.captured.id()
        ))),
        Err(CaptureError::Invalid(errors)) => {
            render_form(&staff, &state, draft, form_token, errors).await
        }
        Err(other) => Err(other.into()),
    }
}

// --- detail -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "detail.html")]
struct DetailPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    c: crate::domain::Certificate,
    created_at: chrono::NaiveDateTime,
    created_by: String,
    cancelled_at: Option<chrono::NaiveDateTime>,
    /// The insurer matched its scan of the paper KK copy.
    paper_received_at: Option<chrono::NaiveDateTime>,
    deliveries: Vec<storage::DeliveryRow>,
    /// Attempts of all deliveries, newest last: `(delivery kind, attempt)`.
    attempts: Vec<(DocumentKind, storage::AttemptRow)>,
    mails: Vec<storage::MailRow>,
    signatures: Vec<SignatureView>,
    /// The eAU (or its Storno) waits for the doctor's signature.
    awaiting_signature: bool,
    /// KIM mails sent for this certificate and what came back.
    kim_sent: Vec<KimSentView>,
    kim_inbox: Vec<KimInboxView>,
    /// Sent over KIM more than 24 hours ago, no receipt yet (TA P5-04 AK5).
    receipt_overdue: bool,
    /// Every print of this certificate: "KK+V A5 · 07.12.2026 10:03 · mfa1".
    prints: Vec<String>,
    /// The insurer (or the TI) is disturbed and the eAU not delivered: hand the patient the
    /// KK copy now.
    hand_over: bool,
    /// The SDKT lists the certificate's IK as expired.
    ik_warning: Option<String>,
}

struct KimSentView {
    message_id: String,
    recipient: String,
    sent: String,
    receipt: String,
}

struct KimInboxView {
    id: String,
    received: String,
    summary: String,
}

/// A stored signature, for the detail page.
struct SignatureView {
    what: &'static str,
    method: &'static str,
    signer: String,
    serial: String,
    issuer: String,
    signing_time: String,
    recorded: String,
}

impl SignatureView {
    fn of(s: storage::SignatureRow, certificate_id: &str) -> Self {
        Self {
            what: if s.document_id == certificate_id {
                "eAU"
            } else {
                "Storno"
            },
            method: crate::signature::Method::parse(&s.method)
                .map_or("unbekannt", crate::signature::Method::label),
            signer: s.signer_subject,
            serial: s.signer_serial,
            issuer: s.signer_issuer,
            signing_time: super::admin::when(s.signing_time),
            recorded: format!("{}, {}", super::admin::when(Some(s.signed_at)), s.signed_by),
        }
    }
}

/// German label of an attempt's outcome (the attempt history on the detail page).
pub(super) fn outcome_label(outcome: &str) -> &'static str {
    match outcome {
        "delivered" => "angenommen",
        "sent" => "an das KIM-Clientmodul übergeben",
        "retry" => "fehlgeschlagen, wird wiederholt",
        "dead" => "fehlgeschlagen, bitte prüfen",
        "needs_new_id" => "abgewiesen: neu erstellen",
        "acknowledged" => "von der Kasse abgerufen",
        "receipt" => "Zustellbestätigung erhalten",
        "kim_error" => "KIM-Fehlermeldung",
        "kim_delayed" => "Zustellung verzögert",
        _ => "sonstiges Ereignis",
    }
}

/// What staff read about a patient mail's problem, instead of the mail server's own words
/// (those stay in the attempt history in the database for support): `failed` is whether the
/// mail was given up.
pub(super) fn mail_problem(failed: bool, detail: &str) -> &'static str {
    if detail.starts_with("E-Mail-Einstellungen") {
        "E-Mail-Einstellungen fehlerhaft – bitte die Praxis-IT informieren"
    } else if detail.starts_with("E-Mail erstellen") {
        "E-Mail konnte nicht erstellt werden – bitte die Praxis-IT informieren"
    } else if failed {
        "Mailserver hat die E-Mail abgelehnt – bitte die E-Mail-Adresse prüfen und erneut senden"
    } else {
        "Mailserver nicht erreichbar – wird automatisch erneut versucht"
    }
}

/// A delivery's or the KIM mailbox's error as staff read it: a KIM client module's answer (its
/// own words are often English; they stay in the attempt history in the database) becomes a
/// German sentence with its reply code; anything else is already our German or the insurer's
/// KBV message.
pub(super) fn staff_error(text: &str) -> String {
    let code = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|t| t.len() == 3 && t.starts_with(['4', '5']))
        .map_or(String::new(), |c| format!(" ({c})"));
    if text.starts_with("KIM-Clientmodul nicht erreichbar") {
        "KIM-Clientmodul nicht erreichbar – wird automatisch erneut versucht".into()
    } else if text.starts_with("KIM-Anmeldung abgelehnt")
        || (text.starts_with("KIM-Clientmodul lehnt ab") && code == " (535)")
    {
        format!("KIM-Anmeldung abgelehnt{code} – bitte die KIM-Zugangsdaten der Praxis prüfen")
    } else if text.starts_with("KIM-Clientmodul lehnt ab") {
        format!("KIM-Clientmodul lehnt die Nachricht ab{code} – bitte die Praxis-IT informieren")
    } else if text.starts_with("KIM-Clientmodul") {
        format!(
            "KIM-Clientmodul vorübergehend nicht bereit{code} – wird automatisch erneut versucht"
        )
    } else {
        text.to_owned()
    }
}

/// An instant as staff read it: German local time, `03.12.2026 14:05`.
pub(super) fn local(utc: &chrono::NaiveDateTime) -> String {
    crate::domain::berlin_time(*utc)
        .format("%d.%m.%Y %H:%M")
        .to_string()
}

impl DetailPage<'_> {
    fn local(&self, utc: &chrono::NaiveDateTime) -> String {
        local(utc)
    }

    fn local_seconds(&self, utc: &chrono::NaiveDateTime) -> String {
        crate::domain::berlin_time(*utc)
            .format("%d.%m.%Y %H:%M:%S")
            .to_string()
    }

    fn outcome_label(&self, outcome: &str) -> &'static str {
        outcome_label(outcome)
    }

    /// "eAU", "Storno", "E-Mail" in the history of a certificate's documents.
    fn kind_label(&self, kind: &DocumentKind) -> &'static str {
        match kind {
            DocumentKind::Eau | DocumentKind::Storno => kind.label(),
            DocumentKind::Mail => "E-Mail",
        }
    }

    /// An attempt's answer as staff read it: a mail's in German words, an insurer's as
    /// recorded (already German, or the insurer's own OperationOutcome text).
    fn attempt_detail(&self, kind: &DocumentKind, a: &storage::AttemptRow) -> String {
        match (kind, a.outcome.as_str()) {
            (DocumentKind::Mail, "delivered") => "versandt".into(),
            (DocumentKind::Mail, outcome) => mail_problem(outcome == "dead", &a.detail).into(),
            (DocumentKind::Eau | DocumentKind::Storno, _) => staff_error(&a.detail),
        }
    }

    /// The eAU is at the insurer: "Drucken" gives the patient's copy (no Ersatzverfahren).
    fn delivered(&self) -> bool {
        self.deliveries.iter().any(|d| {
            d.document_kind == DocumentKind::Eau && d.progress.state == DeliveryState::Delivered
        })
    }

    fn delivery_error(&self, d: &storage::DeliveryRow) -> String {
        d.progress
            .last_error
            .as_deref()
            .map_or_else(|| "–".into(), staff_error)
    }

    fn mail_error(&self, m: &storage::MailRow) -> &'static str {
        match &m.progress.last_error {
            None => "–",
            Some(e) => mail_problem(m.progress.state == DeliveryState::Dead, e),
        }
    }

    /// "E-Mail erneut senden" is offered unless the mail is being sent right now.
    fn resendable(&self, m: &storage::MailRow) -> bool {
        m.progress.state.mail_resend() != MailResend::Refused
    }
}

async fn detail(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let (practice, actor) = (staff.practice_id.clone(), staff.actor());
    let found = state
        .db
        .run(move |c| service::detail(c, &actor, &practice, id))
        .await?
        .ok_or(WebError::NotFound)?;
    let banner = super::Banner::load(&state, staff.user.practice_id.as_deref()).await?;
    let today = crate::domain::berlin_today(chrono::Utc::now());
    let ik_warning = state
        .settings
        .insurers
        .status(found.stored.certificate.coverage.ik.as_str(), today)
        .warning();
    html(
        StatusCode::OK,
        &DetailPage::of(&staff, banner, ik_warning, id, found),
    )
}

impl<'a> DetailPage<'a> {
    /// The page of a certificate's read model.
    fn of(
        staff: &'a Staff,
        banner: super::Banner,
        ik_warning: Option<String>,
        id: Uuid,
        found: service::Detail,
    ) -> Self {
        let stored = found.stored;
        let key = id.to_string();
        let deliveries = found.deliveries;
        let delivered = deliveries
            .iter()
            .any(|d| d.progress.state == DeliveryState::Delivered);
        Self {
            ik_warning,
            prints: found
                .prints
                .iter()
                .map(super::dispatch::print_line)
                .collect(),
            hand_over: !stored.certificate.is_print_only()
                && stored.cancelled_at.is_none()
                && banner.covers(stored.certificate.coverage.ik.as_str())
                && !delivered,
            awaiting_signature: deliveries
                .iter()
                .any(|d| d.progress.state == DeliveryState::AwaitingSignature),
            signatures: found
                .signatures
                .into_iter()
                .map(|s| SignatureView::of(s, &key))
                .collect(),
            deliveries,
            attempts: found.attempts,
            mails: found.mails,
            kim_sent: found.kim_sent.into_iter().map(KimSentView::of).collect(),
            kim_inbox: found.kim_inbox.into_iter().map(KimInboxView::of).collect(),
            receipt_overdue: found.receipt_overdue,
            nav_user: Some(&staff.user.username),
            nav_role: staff.role.as_str(),
            banner,
            csrf: &staff.user.csrf_token,
            c: stored.certificate,
            created_at: stored.created_at,
            created_by: stored.created_by,
            cancelled_at: stored.cancelled_at,
            paper_received_at: stored.paper_received_at,
        }
    }
}

impl KimSentView {
    fn of(m: storage::KimMessageRow) -> Self {
        Self {
            message_id: m.message_id,
            recipient: m.recipient,
            sent: m.sent_at.map_or_else(
                || "nicht angenommen".into(),
                |t| super::admin::when(Some(t)),
            ),
            receipt: m
                .receipt_at
                .map_or_else(|| "ausstehend".into(), |t| super::admin::when(Some(t))),
        }
    }
}

impl KimInboxView {
    fn of(m: storage::InboxRow) -> Self {
        Self {
            id: m.id,
            received: super::admin::when(Some(m.received_at)),
            summary: m.summary,
        }
    }
}

#[derive(Deserialize)]
struct CancelForm {
    csrf: Option<String>,
    confirm: Option<String>,
}

/// Storno from the detail page; needs the confirmation box ticked.
async fn cancel(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let form: CancelForm = from_form(&body)?;
    staff.check_csrf(form.csrf.as_deref())?;
    if form.confirm.is_none() {
        return Err(WebError::Invalid(vec![FieldError::new(
            "confirm",
            "Storno: bitte die Stornierung bestätigen",
        )]));
    }
    let actor = staff.actor();
    super::cancel_outcome(capture::cancel(&state.db, actor, id).await?)?;
    Ok(see_other(&format!("/certificates/{id}")))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// "E-Mail erneut senden": a failed or waiting mail is due now; a sent one is sent again as a
/// new mail (new Message-ID) to the same address, under the recorded consent.
async fn resend_mail(
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let form: CsrfForm = from_form(&body)?;
    staff.check_csrf(form.csrf.as_deref())?;
    let actor = staff.actor();
    match state
        .db
        .run(move |c| service::resend_mail(c, &actor, id))
        .await?
    {
        storage::Resent::NotFound => Err(WebError::NotFound),
        storage::Resent::NoMail => Err(WebError::Invalid(vec![FieldError::new(
            "mail",
            "E-Mail: für diese Bescheinigung ist kein Versand möglich (keine Einwilligung oder storniert)",
        )])),
        storage::Resent::DueNow | storage::Resent::Queued | storage::Resent::InFlight => {
            Ok(see_other(&format!("/certificates/{id}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_module_and_mail_server_words_become_german_sentences() {
        assert_eq!(
            staff_error("KIM-Clientmodul nicht erreichbar: Connection refused (os error 111)"),
            "KIM-Clientmodul nicht erreichbar – wird automatisch erneut versucht"
        );
        assert_eq!(
            staff_error("KIM-Clientmodul lehnt ab: 535 5.7.8 Error: authentication failed"),
            "KIM-Anmeldung abgelehnt (535) – bitte die KIM-Zugangsdaten der Praxis prüfen"
        );
        assert_eq!(
            staff_error("KIM-Clientmodul lehnt ab: 550 5.1.1 User unknown"),
            "KIM-Clientmodul lehnt die Nachricht ab (550) – bitte die Praxis-IT informieren"
        );
        assert_eq!(
            staff_error("KIM-Clientmodul: 451 4.3.0 Temporary lookup failure"),
            "KIM-Clientmodul vorübergehend nicht bereit (451) – wird automatisch erneut versucht"
        );
        for own in ["HTTP 503", "Zeitüberschreitung", "KBV 301: Signatur fehlt"] {
            assert_eq!(staff_error(own), own);
        }
        assert_eq!(
            mail_problem(false, "SMTP-Server nicht erreichbar: Connection refused"),
            "Mailserver nicht erreichbar – wird automatisch erneut versucht"
        );
        assert!(mail_problem(true, "550 mailbox unavailable").contains("abgelehnt"));
        assert!(mail_problem(false, "E-Mail-Einstellungen: kein Absender").contains("Praxis-IT"));
    }
}
