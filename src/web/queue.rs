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
use crate::domain::{berlin_today, post_deadline, FieldError, InsurerIk, PostDeadline};
use crate::insurers::fake::Mode;
use crate::service::{self, DestinationAction};
use crate::storage::{self, breaker};

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
    } else if d.breaker == breaker::OPEN {
        ("gestört – nicht erreichbar", true)
    } else if d.consecutive_failures > 0 {
        ("gestört", true)
    } else if d.breaker == breaker::HALF_OPEN {
        ("wird geprüft", false)
    } else if d.kim_address.is_some() {
        ("per KIM", false)
    } else if d.push_url.is_none() {
        ("Abruf durch die Kasse", false)
    } else {
        ("erreichbar", false)
    }
}

/// What the dashboard shows: the operator every insurer's backlog, a practice member the
/// practice's own.
struct Dashboard {
    destinations: Vec<storage::DestinationRow>,
    backlog: Vec<(String, i64, Option<NaiveDateTime>)>,
    unsent: Vec<storage::UnsentRow>,
    listed: Vec<storage::DispatchRow>,
    prints: Vec<storage::PrintRow>,
    land: Option<crate::domain::Land>,
    practice_outage: Option<NaiveDateTime>,
    /// The practice's documents waiting for the doctor's signature.
    awaiting_signature: i64,
    kim: Option<storage::KimAccountRow>,
    kim_unmatched: i64,
    overdue: Vec<storage::OverdueReceipt>,
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
    let Dashboard {
        destinations,
        backlog,
        unsent,
        listed,
        prints,
        land,
        practice_outage,
        awaiting_signature,
        kim,
        kim_unmatched,
        overdue,
    } = state
        .db
        .run(move |c| {
            let destinations = storage::all_destinations(c)?;
            Ok(match practice {
                None => Dashboard {
                    destinations,
                    backlog: storage::backlog_all(c)?,
                    unsent: Vec::new(),
                    listed: Vec::new(),
                    prints: Vec::new(),
                    land: None,
                    practice_outage: None,
                    awaiting_signature: 0,
                    kim: None,
                    kim_unmatched: storage::unmatched_count(c, None)?,
                    overdue: storage::overdue_receipts(c, None, storage::now())?,
                },
                Some(p) => {
                    let listed = storage::dispatch_list(c, &p, wanted, range, 500)?;
                    let ids: Vec<String> =
                        listed.iter().map(|r| r.certificate_id.clone()).collect();
                    Dashboard {
                        destinations,
                        backlog: storage::backlog(c, &p)?,
                        unsent: storage::unsent(c, &p, 500)?,
                        prints: storage::prints_of(c, &p, &ids)?,
                        listed,
                        land: Some(storage::practice_land(c, &p)?),
                        practice_outage: storage::practice_outage(c, &p)?,
                        awaiting_signature: storage::awaiting_signature_count(c, &p)?,
                        kim: storage::kim_account(c, &p)?,
                        kim_unmatched: storage::unmatched_count(c, Some(&p))?,
                        overdue: storage::overdue_receipts(c, Some(&p), storage::now())?,
                    }
                }
            })
        })
        .await?;
    let now = chrono::Utc::now();
    let today = berlin_today(now);
    let post_today = unsent
        .iter()
        .filter_map(|u| {
            let captured_on = berlin_today(u.created_at.and_utc());
            let no_receipt = overdue
                .iter()
                .find(|o| o.certificate_id == u.certificate_id)
                .map(|o| when(o.sent_at));
            let overdue_since = match post_deadline(land?, captured_on, today) {
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
        .collect();
    let week_ago = now.naive_utc() - chrono::Duration::days(7);
    let rows = destinations
        .iter()
        .map(|d| {
            let (count, oldest) = backlog
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
        .collect();
    let listed = land.map_or_else(Vec::new, |land| {
        super::dispatch::rows(listed, &prints, land, now)
    });
    let page = QueuePage {
        nav_user: Some(&session.user.username),
        nav_role: session.role.as_str(),
        banner: super::Banner::load(&state, session.user.practice_id.as_deref()).await?,
        csrf: &session.user.csrf_token,
        operator: session.role == Role::Operator,
        admin: session.role == Role::Admin,
        demo_port: state.demo_insurer.as_ref().map(|f| f.port),
        rows,
        listed,
        post_today,
        practice_outage: practice_outage.map(|t| when(Some(t))),
        awaiting_signature,
        kim: kim.map(|k| KimView {
            address: k.address,
            last_poll: when(k.last_poll_at),
            last_error: k.last_poll_error.as_deref().map(super::pages::staff_error),
        }),
        kim_unmatched,
        receipts_overdue: overdue.len(),
        notice: if filter.kim_poll {
            "Das KIM-Postfach wird in wenigen Sekunden abgerufen."
        } else {
            ""
        },
        filter,
    };
    html(StatusCode::OK, &page)
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
        .run(move |c| {
            storage::set_practice_outage(c, &actor.practice_id, on)?;
            storage::audit(c, &actor, "practice.outage", None, &on.to_string())?;
            Ok(())
        })
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
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
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

/// Adds or changes where an insurer receives pushed documents (no push URL: pull only).
async fn save_destination(
    operator: Operator,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let form: DestinationForm = from_form(&body)?;
    operator.check_csrf(form.csrf.as_deref())?;
    let mut errors = Vec::new();
    let ik = InsurerIk::parse(form.ik.as_deref().unwrap_or_default())
        .map_err(|e| errors.push(FieldError::new("ik", e.to_string())))
        .ok();
    let name = form.name.map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 45 || name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "Name der Krankenkasse: 1 bis 45 Zeichen",
        ));
    }
    let push_url = url_field(form.push_url, "push_url", "Empfangsadresse")
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let health_url = url_field(form.health_url, "health_url", "Prüfadresse")
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let rate = match form
        .rate_per_minute
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        None => None,
        Some(r) => match r.parse::<i32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errors.push(FieldError::new(
                    "rate_per_minute",
                    "Höchstrate: eine positive ganze Zahl pro Minute",
                ));
                None
            }
        },
    };
    let kim_address = match form
        .kim_address
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(a) if crate::kim::is_kim_address(&a) => Some(a),
        Some(_) => {
            errors.push(FieldError::new(
                "kim_address",
                "KIM-Adresse: eine Adresse unter kim.telematik (oder kim.telematik-test)",
            ));
            None
        }
    };
    let Some(ik) = ik.filter(|_| errors.is_empty()) else {
        return Err(WebError::Invalid(errors));
    };
    let config = storage::DestinationConfig {
        ik: ik.to_string(),
        name,
        push_url,
        health_url,
        auth_header: None,
        rate_per_minute: rate,
        kim_source: kim_address.as_ref().map(|_| "operator".to_owned()),
        kim_address,
    };
    let actor = operator.actor();
    state
        .db
        .run(move |c| service::save_destination(c, &actor, &config))
        .await?;
    Ok(see_other("/queue"))
}
