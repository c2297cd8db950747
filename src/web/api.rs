//! JSON API for practice software (`Authorization: Bearer <practice token>`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::form::from_json;
use super::{read_body, ApiClient, ApiError, AppState, WebError};
use crate::capture::{self, Imported};
use crate::domain::{parse_date, Certificate, CertificateDraft, DeliveryState, FieldError};
use crate::fhir;
use crate::storage::{self, Captured, ListItem, Search};

pub fn routes(r: &mut super::Router<'_>) {
    r.post("/api/v1/certificates", create)
        .get("/api/v1/certificates", list)
        .post("/api/v1/certificates/search", search)
        .get("/api/v1/certificates/{id}", show)
        .get("/api/v1/certificates/{id}/fhir", show_fhir)
        .post("/api/v1/certificates/{id}/cancel", cancel)
        .post("/api/v1/fhir/eau", import_fhir);
}

/// A certificate as the API returns it.
#[derive(Serialize)]
struct CertificateBody {
    id: Uuid,
    created_at: String,
    certificate: Certificate,
    /// The patient mails, oldest first (empty without consent).
    mails: Vec<MailStatus>,
}

/// A patient mail as the API reports it.
#[derive(Serialize)]
struct MailStatus {
    recipient: String,
    employer_copy: bool,
    /// `pending`, `in_flight`, `delivered` (sent), `dead`, `withdrawn`.
    state: &'static str,
    attempts: i32,
    last_error: Option<String>,
    sent_at: Option<String>,
    /// The PDF password to hand over, under the `random` policy only.
    password: Option<String>,
}

impl From<storage::MailRow> for MailStatus {
    fn from(m: storage::MailRow) -> Self {
        Self {
            recipient: m.recipient,
            employer_copy: m.employer_copy,
            state: m.progress.state.code(),
            attempts: m.progress.attempts,
            last_error: m.progress.last_error,
            sent_at: m.progress.delivered_at.map(|t| t.and_utc().to_rfc3339()),
            password: m.password,
        }
    }
}

/// Refuses a body whose `Content-Type` is none of `accepted` (the first is named in the error).
/// The accepted type the request's `Content-Type` is, or 415.
fn require_content_type(
    req: &HttpRequest,
    accepted: &[&'static str],
) -> Result<&'static str, WebError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(a) = accepted.iter().find(|a| ct.starts_with(**a)) {
        Ok(a)
    } else {
        Err(WebError::MediaType(
            accepted.first().copied().unwrap_or("application/json"),
        ))
    }
}

fn require_json(req: &HttpRequest) -> Result<(), WebError> {
    require_content_type(req, &["application/json"]).map(drop)
}

/// `POST /api/v1/certificates`: 201 with `Location`, or 200 with the certificate stored
/// before under the same `Idempotency-Key`.
async fn create(
    req: HttpRequest,
    client: ApiClient,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let draft: CertificateDraft = from_json(&body)?;
    let key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.chars().take(200).collect());
    let actor = client.actor("api");
    let submitted = capture::submit(&state.db, actor, draft, key, &state.settings.mail)
        .await
        .map_err(WebError::from)?;
    let id = submitted.captured.id();
    let location = format!("/api/v1/certificates/{id}");
    let (mut response, body) = match submitted.captured {
        Captured::Conflict(_) => {
            return Err(
                WebError::Conflict("Dokument-ID bereits mit anderem Inhalt vergeben").into(),
            )
        }
        // Stored now: answered from what was stored, without reading it back.
        Captured::Created(_) => (HttpResponse::Created(), created_body(id, submitted)),
        Captured::AlreadyStored(_) => (HttpResponse::Ok(), load(&state, &client, id).await?),
    };
    Ok(response
        .insert_header((header::LOCATION, location))
        .json(body))
}

/// The answer for a certificate stored by this request (its mail is queued, not sent yet).
fn created_body(id: Uuid, s: capture::Submitted) -> CertificateBody {
    CertificateBody {
        id,
        created_at: s.created_at.and_utc().to_rfc3339(),
        certificate: s.certificate,
        mails: s
            .mail
            .into_iter()
            .map(|m| MailStatus {
                recipient: m.recipient.into(),
                employer_copy: m.employer_copy,
                state: DeliveryState::Pending.code(),
                attempts: 0,
                last_error: None,
                sent_at: None,
                password: m.password.map(|p| p.expose().to_owned()),
            })
            .collect(),
    }
}

async fn load(state: &AppState, client: &ApiClient, id: Uuid) -> Result<CertificateBody, ApiError> {
    let practice = client.practice_id.clone();
    let (stored, mails) = state
        .db
        .run(move |c| {
            Ok((
                storage::get(c, &practice, id)?,
                storage::mails_of(c, &practice, id)?,
            ))
        })
        .await?;
    let stored = stored.ok_or(WebError::NotFound)?;
    Ok(CertificateBody {
        id,
        created_at: stored.created_at.and_utc().to_rfc3339(),
        certificate: stored.certificate,
        mails: mails.into_iter().map(MailStatus::from).collect(),
    })
}

/// `GET /api/v1/certificates/{id}`: only the practice's own certificates exist for it.
async fn show(
    client: ApiClient,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    Ok(HttpResponse::Ok().json(load(&state, &client, id).await?))
}

/// Query of the list: no health data in URLs, so the KVNR is only searchable by `POST …/search`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ListQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SearchBody {
    page: Option<i64>,
    per_page: Option<i64>,
    name: Option<String>,
    kvnr: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
struct ListItemBody {
    id: String,
    kind: String,
    name: String,
    insurer_ik: String,
    determined_on: NaiveDate,
    until: NaiveDate,
    created_at: String,
}

impl From<ListItem> for ListItemBody {
    fn from(i: ListItem) -> Self {
        Self {
            id: i.id,
            kind: i.kind,
            name: i.display_name,
            insurer_ik: i.insurer_ik,
            determined_on: i.determined_on,
            until: i.until,
            created_at: i.created_at.and_utc().to_rfc3339(),
        }
    }
}

fn optional_date(
    v: Option<&str>,
    field: &str,
    label: &'static str,
) -> Result<Option<NaiveDate>, FieldError> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| parse_date(s, label).map_err(|e| FieldError::new(field, e.to_string())))
        .transpose()
}

async fn list(
    client: ApiClient,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = serde_urlencoded::from_str(req.query_string()).map_err(|_| {
        FieldError::new(
            "query",
            "Abfrage ungültig: erlaubt sind page, per_page, name, from, to",
        )
    })?;
    let body = SearchBody {
        page: q.page,
        per_page: q.per_page,
        name: q.name,
        kvnr: None,
        from: q.from,
        to: q.to,
    };
    page(client, &state, body).await
}

async fn search(
    req: HttpRequest,
    client: ApiClient,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    page(client, &state, from_json(&body)?).await
}

async fn page(
    client: ApiClient,
    state: &AppState,
    q: SearchBody,
) -> Result<HttpResponse, ApiError> {
    let search = Search {
        name: q.name,
        kvnr: q.kvnr,
        from: optional_date(q.from.as_deref(), "from", "von")?,
        to: optional_date(q.to.as_deref(), "to", "bis")?,
    };
    let page = q.page.unwrap_or(1).max(1);
    let per_page = q.per_page.unwrap_or(50).clamp(1, 200);
    // Saturating: `page=9223372036854775807` must not overflow into a 500.
    let offset = (page - 1).saturating_mul(per_page);
    let practice = client.practice_id;
    let result = state
        .db
        .run(move |c| storage::list(c, &practice, &search, offset, per_page))
        .await?;
    let items: Vec<ListItemBody> = result.items.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "page": page,
        "per_page": per_page,
        "total": result.total,
    })))
}

const FHIR_XML: &str = "application/fhir+xml";

fn outcome_response(status: actix_web::http::StatusCode, issues: &[fhir::Issue]) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(FHIR_XML)
        .body(fhir::operation_outcome(issues))
}

/// `POST /api/v1/fhir/eau`: a KBV eAU bundle practice software could not send. Stored under
/// its own UUID with its original bytes: `201`; the same bytes again: `200`; other bytes under a
/// known UUID: `409` (KBV KP5-06); invalid: `422` with an OperationOutcome naming every issue.
///
/// A Storno bundle (`KBV_PR_EAU_Storno_Bundle`) cancels the practice's eAU it names, as
/// `POST …/cancel` does ([`capture::cancel`]): `201` with what it did (`storno_queued`, or
/// `withdrawn` when the eAU never reached the insurer: the Storno is then kept as the record and
/// not sent), `Location` the certificate; the same Storno again: `200`, the same answer; an
/// unknown eAU (or another practice's): `422` naming `List.entry.item.identifier.value`; an eAU
/// cancelled already or the Storno's UUID under other content: `409`.
async fn import_fhir(
    req: HttpRequest,
    client: ApiClient,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let signed = require_content_type(
        &req,
        &[FHIR_XML, "application/xml", crate::signature::CONTENT_TYPE],
    )? == crate::signature::CONTENT_TYPE;
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let actor = client.actor("fhir-import");
    let imported = if signed {
        capture::import_signed(&state.db, actor, body.to_vec()).await
    } else {
        capture::import(&state.db, actor, body.to_vec()).await
    };
    match imported.map_err(WebError::from)? {
        Imported::Stored {
            captured,
            warnings,
            print_only,
        } => stored_response(&state, &client, captured, &warnings, print_only).await,
        Imported::Invalid(issues) => Ok(outcome_response(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            &issues,
        )),
        Imported::Conflict(issues) => Ok(outcome_response(
            actix_web::http::StatusCode::CONFLICT,
            &issues,
        )),
        Imported::Storno(storno) => storno_response(storno),
    }
}

/// The answer to an imported eAU: `201` stored now, `200` stored before, `409` when its
/// document id is stored with other content.
async fn stored_response(
    state: &AppState,
    client: &ApiClient,
    captured: Captured,
    warnings: &impl Serialize,
    print_only: bool,
) -> Result<HttpResponse, ApiError> {
    let id = captured.id();
    let mut response = match captured {
        Captured::Conflict(_) => {
            let issue = fhir::Issue::error(
                fhir::IssueCode::BusinessRule,
                "Bundle.identifier",
                "Dokument-ID ist bereits mit anderem Inhalt gespeichert (KP5-06)",
            );
            let conflict = actix_web::http::StatusCode::CONFLICT;
            return Ok(outcome_response(conflict, &[issue]));
        }
        Captured::Created(_) => HttpResponse::Created(),
        _ => HttpResponse::Ok(),
    };
    let body = load(state, client, id).await?;
    Ok(response
        .insert_header((header::LOCATION, format!("/api/v1/certificates/{id}")))
        .json(serde_json::json!({
            "id": body.id,
            "created_at": body.created_at,
            "print_only": print_only,
            "warnings": warnings,
            "certificate": body.certificate,
        })))
}

/// The answer to an imported Storno: `201` stored now, `200` stored before (the same body).
fn storno_response(storno: capture::StornoStored) -> Result<HttpResponse, ApiError> {
    let outcome = super::cancel_outcome(storno.outcome)?;
    let mut response = if storno.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response
        .insert_header((
            header::LOCATION,
            format!("/api/v1/certificates/{}", storno.cancels),
        ))
        .json(serde_json::json!({
            "id": storno.id,
            "kind": "storno",
            "cancels": storno.cancels,
            "outcome": outcome,
            "warnings": storno.warnings,
        })))
}

/// `GET /api/v1/certificates/{id}/fhir`: the exact KBV document stored for the certificate.
async fn show_fhir(
    client: ApiClient,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let practice = client.practice_id;
    let xml = state
        .db
        .run(move |c| storage::fhir_xml(c, &practice, id))
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(FHIR_XML)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"EEAU0_{id}.xml\""),
        ))
        .body(xml))
}

/// `POST /api/v1/certificates/{id}/cancel`: Storno (or withdrawal of an unsent eAU).
async fn cancel(
    client: ApiClient,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let actor = client.actor("api");
    let outcome = capture::cancel(&state.db, actor, id)
        .await
        .map_err(WebError::from)?;
    let outcome = super::cancel_outcome(outcome)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id, "outcome": outcome })))
}
