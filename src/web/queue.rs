//! The dispatch dashboard (German). Practice members see the insurer states and their own
//! practice's unsent and due-for-post lists (a practice admin also declares the practice-wide
//! TI Störung); operators see every insurer's backlog without patient data and configure
//! dispatch: destinations, Störung, pause, "Alle erneut senden", the demo insurer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::admin::when;
use super::dispatch::{DispatchView, Filter};
use super::form::from_form;
use super::pages::{html, see_other};
use super::{read_body, AppState, Operator, PracticeAdmin, Session, WebError};
use crate::auth::Role;
use crate::domain::breaker::BreakerState;
use crate::domain::{berlin_today, post_deadline, FieldError, InsurerIk, PostDeadline};
use crate::insurers::fake::Mode;
use crate::service::{self, DestinationAction};
use crate::storage;

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/queue", dashboard)
        .post("/queue/demo-insurer", demo_insurer)
        .post("/queue/practice-outage", practice_outage)
        .post("/queue/destinations", save_destination)
        .post("/queue/{ik}/{action}", act);
}

struct DestinationView {
    ik: String,
    name: String,
    pushable: bool,
    /// The insurer's KIM address, if it is reached by KIM.
    kim: Option<String>,
    status: &'static str,
    /// Shown red: transmission to this insurer fails.
    disturbed: bool,
    outage: bool,
    paused: bool,
    backlog: i64,
    oldest: String,
    last_success: String,
    last_error: String,
    /// A declared Störung older than 7 days asks for confirmation.
    confirm_due: bool,
}

struct PostView {
    certificate_id: String,
    display_name: String,
    insurer_ik: String,
    captured_on: String,
    overdue_since: Option<String>,
    /// Sent over KIM more than 24 hours ago without a receipt (TA P5-04 AK5).
    no_receipt_since: Option<String>,
}

/// The practice's KIM mailbox on the dashboard.
struct KimView {
    address: String,
    last_poll: String,
    last_error: Option<String>,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    /// Operator: configuration forms, no practice lists.
    operator: bool,
    /// Practice admin: may declare the practice-wide Störung.
    admin: bool,
    demo_port: Option<u16>,
    rows: Vec<DestinationView>,
    /// The practice's dispatch list under its filter.
    listed: Vec<DispatchView>,
    filter: Filter,
    post_today: Vec<PostView>,
    /// A practice-wide Störung (TI outage) since.
    practice_outage: Option<String>,
    awaiting_signature: i64,
    kim: Option<KimView>,
    /// KIM mails that matched no document (operator: all; practice: its own).
    kim_unmatched: i64,
    /// Sent over KIM, no receipt within 24 hours (operator: all practices).
    receipts_overdue: usize,
    notice: &'static str,
}

/// The destination's state in German, and whether it is disturbed (shown red): a declared
/// Störung, an open breaker, or a failed last attempt ("gestört" from the first failure on).
fn status(d: &storage::DestinationRow) -> (&'static str, bool) {
    if d.paused {
        ("angehalten", false)
    } else if d.outage {
        ("Störung gemeldet", true)
    } else if d.breaker == BreakerState::Open {
        (d.breaker.label(), true)
    } else if d.consecutive_failures > 0 {
        ("gestört", true)
    } else if d.breaker == BreakerState::HalfOpen {
        (d.breaker.label(), false)
    } else if d.kim_address.is_some() {
        ("per KIM", false)
    } else if d.push_url.is_none() {
        ("Abruf durch die Kasse", false)
    } else {
        ("erreichbar", false)
    }
}

async fn dashboard(
    session: Session,
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, WebError> {
    // An insurer clerk has neither a practice nor the operator's view of all insurers.
    if session.role == Role::Insurer {
        return Err(WebError::Forbidden("nur für Praxen und den Betrieb"));
    }
    let practice = session.user.practice_id.clone();
    let filter = Filter::parse(req.query_string());
    let (wanted, range) = (filter.status, filter.range);
    let board = state
        .db
        .run(move |c| service::dashboard(c, practice.as_deref(), wanted, range))
        .await?;
    let banner = super::Banner::load(&state, session.user.practice_id.as_deref()).await?;
    let demo_port = state.demo_insurer.as_ref().map(|f| f.port);
    html(
        StatusCode::OK,
        &QueuePage::of(&session, banner, demo_port, filter, board),
    )
}

impl<'a> QueuePage<'a> {
    /// The page of the dashboard's read model for this session.
    fn of(
        session: &'a Session,
        banner: super::Banner,
        demo_port: Option<u16>,
        filter: Filter,
        board: service::Dashboard,
    ) -> Self {
        let now = chrono::Utc::now();
        let post_today = post_today(&board, now);
        let rows = destination_rows(&board, now.naive_utc());
        let listed = board.land.map_or_else(Vec::new, |land| {
            super::dispatch::rows(board.listed, &board.prints, land, now)
        });
        Self {
            nav_user: Some(&session.user.username),
            nav_role: session.role.as_str(),
            banner,
            csrf: &session.user.csrf_token,
            operator: session.role == Role::Operator,
            admin: session.role == Role::Admin,
            demo_port,
            rows,
            listed,
            post_today,
            practice_outage: board.practice_outage.map(|t| when(Some(t))),
            awaiting_signature: board.awaiting_signature,
            kim: board.kim.map(KimView::of),
            kim_unmatched: board.kim_unmatched,
            receipts_overdue: board.overdue.len(),
            notice: if filter.kim_poll {
                "Das KIM-Postfach wird in wenigen Sekunden abgerufen."
            } else {
                ""
            },
            filter,
        }
    }
}

impl KimView {
    fn of(k: storage::KimAccountRow) -> Self {
        Self {
            address: k.address,
            last_poll: when(k.last_poll_at),
            last_error: k.last_poll_error.as_deref().map(super::pages::staff_error),
        }
    }
}

/// The unsent certificates that go by post today or are overdue (or sent over KIM without a
/// receipt): none without the practice's Land.
fn post_today(board: &service::Dashboard, now: chrono::DateTime<chrono::Utc>) -> Vec<PostView> {
    let today = berlin_today(now);
    board
        .unsent
        .iter()
        .filter_map(|u| {
            let captured_on = berlin_today(u.progress.created_at.and_utc());
            let no_receipt = board
                .overdue
                .iter()
                .find(|o| o.certificate_id == u.certificate_id)
                .map(|o| when(o.sent_at));
            let overdue_since = match post_deadline(board.land?, captured_on, today) {
                PostDeadline::InTime { .. } if no_receipt.is_none() => return None,
                PostDeadline::InTime { .. } | PostDeadline::PostToday => None,
                PostDeadline::Overdue { post_by } => Some(post_by.format("%d.%m.%Y").to_string()),
            };
            Some(PostView {
                certificate_id: u.certificate_id.clone(),
                display_name: u.display_name.clone(),
                insurer_ik: u.insurer_ik.clone(),
                captured_on: captured_on.format("%d.%m.%Y").to_string(),
                overdue_since,
                no_receipt_since: no_receipt,
            })
        })
        .collect()
}

/// Every destination with its backlog and state.
fn destination_rows(board: &service::Dashboard, now: NaiveDateTime) -> Vec<DestinationView> {
    let week_ago = now - chrono::Duration::days(7);
    board
        .destinations
        .iter()
        .map(|d| {
            let (count, oldest) = board
                .backlog
                .iter()
                .find(|(ik, _, _)| *ik == d.ik)
                .map_or((0, None), |(_, n, t)| (*n, *t));
            let (status, disturbed) = status(d);
            DestinationView {
                ik: d.ik.clone(),
                name: d.name.clone(),
                pushable: d.push_url.is_some() || d.kim_address.is_some(),
                kim: d.kim_address.clone(),
                status,
                disturbed,
                outage: d.outage,
                paused: d.paused,
                backlog: count,
                oldest: when(oldest),
                last_success: when(d.last_success_at),
                last_error: d
                    .last_error
                    .as_deref()
                    .map_or_else(|| "–".into(), super::pages::staff_error),
                confirm_due: d.outage && d.outage_confirmed_at.is_none_or(|t| t < week_ago),
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    on: Option<String>,
    mode: Option<String>,
}

async fn read_action(
    who: &Session,
    state: &AppState,
    payload: web::Payload,
) -> Result<ActionForm, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let form: ActionForm = from_form(&body)?;
    who.check_csrf(form.csrf.as_deref())?;
    Ok(form)
}

async fn act(
    operator: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form = read_action(&operator, &state, payload).await?;
    let (ik, action) = path.into_inner();
    let on = form.on.as_deref() == Some("true");
    let action = DestinationAction::parse(&action, on).ok_or(WebError::NotFound)?;
    let actor = operator.actor();
    state
        .db
        .run(move |c| service::destination_action(c, &actor, &ik, action))
        .await?
        .then(|| see_other("/queue"))
        .ok_or(WebError::NotFound)
}

async fn demo_insurer(
    operator: Operator,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form = read_action(&operator, &state, payload).await?;
    let fake = state.demo_insurer.as_ref().ok_or(WebError::NotFound)?;
    let mode = form
        .mode
        .as_deref()
        .and_then(Mode::parse)
        .ok_or(WebError::NotFound)?;
    fake.set_mode(mode);
    Ok(see_other("/queue"))
}

/// Declares or clears the practice-wide Störung (TI outage): every error answer for the
/// practice's documents is then retried.
async fn practice_outage(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form = read_action(&admin, &state, payload).await?;
    let on = form.on.as_deref() == Some("true");
    let actor = admin.actor();
    state
        .db
        .run(move |c| service::practice_outage(c, &actor, on))
        .await?;
    Ok(see_other("/queue"))
}

#[derive(Deserialize)]
struct DestinationForm {
    csrf: Option<String>,
    ik: Option<String>,
    name: Option<String>,
    push_url: Option<String>,
    health_url: Option<String>,
    rate_per_minute: Option<String>,
    kim_address: Option<String>,
}

fn url_field(
    value: Option<String>,
    field: &str,
    label: &str,
) -> Result<Option<String>, FieldError> {
    match filled(value) {
        None => Ok(None),
        Some(u) if (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= 500 => {
            Ok(Some(u))
        }
        Some(_) => Err(FieldError::new(
            field,
            format!("{label}: eine http(s)-Adresse angeben"),
        )),
    }
}

/// A field's trimmed value, `None` when empty.
fn filled(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The value, or `None` with its error added to `errors`.
fn keep<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

fn name_field(value: Option<String>) -> Result<String, FieldError> {
    let name = value.map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 45 || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "Name der Krankenkasse: 1 bis 45 Zeichen",
        ));
    }
    Ok(name)
}

fn rate_field(value: Option<String>) -> Result<Option<i32>, FieldError> {
    match filled(value) {
        None => Ok(None),
        Some(r) => match r.parse::<i32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(FieldError::new(
                "rate_per_minute",
                "Höchstrate: eine positive ganze Zahl pro Minute",
            )),
        },
    }
}

fn kim_field(value: Option<String>) -> Result<Option<String>, FieldError> {
    match filled(value) {
        None => Ok(None),
        Some(a) if crate::kim::is_kim_address(&a) => Ok(Some(a)),
        Some(_) => Err(FieldError::new(
            "kim_address",
            "KIM-Adresse: eine Adresse unter kim.telematik (oder kim.telematik-test)",
        )),
    }
}

impl DestinationForm {
    /// The destination the form configures, or every field's error (in form order).
    fn config(self) -> Result<storage::DestinationConfig, WebError> {
        let mut errors = Vec::new();
        let ik = keep(
            &mut errors,
            InsurerIk::parse(self.ik.as_deref().unwrap_or_default())
                .map_err(|e| FieldError::new("ik", e.to_string())),
        );
        let name = keep(&mut errors, name_field(self.name)).unwrap_or_default();
        let push_url = url_field(self.push_url, "push_url", "Empfangsadresse");
        let push_url = keep(&mut errors, push_url).flatten();
        let health_url = url_field(self.health_url, "health_url", "Prüfadresse");
        let health_url = keep(&mut errors, health_url).flatten();
        let rate = keep(&mut errors, rate_field(self.rate_per_minute)).flatten();
        let kim_address = keep(&mut errors, kim_field(self.kim_address)).flatten();
        let Some(ik) = ik.filter(|_| errors.is_empty()) else {
            return Err(WebError::Invalid(errors));
        };
        Ok(storage::DestinationConfig {
            ik: ik.to_string(),
            name,
            push_url,
            health_url,
            auth_header: None,
            rate_per_minute: rate,
            kim_source: kim_address.as_ref().map(|_| "operator".to_owned()),
            kim_address,
        })
    }
}

/// Adds or changes where an insurer receives pushed documents (no push URL: pull only).
async fn save_destination(
    operator: Operator,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let form: DestinationForm = from_form(&body)?;
    operator.check_csrf(form.csrf.as_deref())?;
    let config = form.config()?;
    let actor = operator.actor();
    state
        .db
        .run(move |c| service::save_destination(c, &actor, &config))
        .await?;
    Ok(see_other("/queue"))
}
