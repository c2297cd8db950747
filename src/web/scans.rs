//! Scanned KK copies of insurers (issue #17): `POST /api/insurer/v1/scans` for the insurer's
//! software (bearer token), the German pages under `/kasse/scans` for its clerks (insurer
//! accounts), results as JSON and CSV. Everything is bound to the caller's IK.

use std::path::Path;

use actix_multipart::Multipart;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::Write;

use super::pages::{html, local, see_other};
use super::session::{InsurerClient, InsurerUser};
use super::{ApiError, AppState, WebError};
use crate::domain::delivery_label;
use crate::scan::{self, Input};
use crate::storage::{self, ScanPageRow, ScanUpload};

pub fn routes(r: &mut super::Router<'_>) {
    r.post("/api/insurer/v1/scans", api_upload)
        .get("/api/insurer/v1/scans", api_list)
        .get("/api/insurer/v1/scans/{id}", api_result)
        .get("/api/insurer/v1/scans/{id}/csv", api_csv)
        .get("/kasse/scans", page_list)
        .post("/kasse/scans", page_upload)
        .get("/kasse/scans/{id}", page_result)
        .get("/kasse/scans/{id}/csv", page_csv)
        .get("/kasse/scans/{id}/fortschritt", page_progress);
}

/// The file types taken as a whole request body.
const SCAN_TYPES: [&str; 4] = ["application/pdf", "image/tiff", "image/png", "image/jpeg"];
const SCAN_TYPES_TEXT: &str =
    "application/pdf, image/tiff, image/png, image/jpeg oder multipart/form-data";

// --- receiving ----------------------------------------------------------------------------------

/// The files of one upload, on disk in a directory removed with it.
struct Received {
    dir: tempfile::TempDir,
    inputs: Vec<Input>,
    /// Form fields of the staff page (`csrf`, `upload`).
    fields: Vec<(String, String)>,
}

/// Streams the request's files to disk: the body itself (a PDF, TIFF, PNG or JPEG), or every
/// file part of a `multipart/form-data` body. More than `limit` bytes in all is a 413.
/// `before_files` checks the form fields that precede the first file (the staff page's CSRF
/// token), so no file of a forged request is even written.
async fn receive(
    req: &HttpRequest,
    payload: web::Payload,
    limit: u64,
    before_files: impl Fn(&[(String, String)]) -> Result<(), WebError>,
) -> Result<Received, WebError> {
    let dir = scan::temp_dir().map_err(|e| WebError::Internal(e.to_string()))?;
    let mut received = Received {
        inputs: Vec::new(),
        fields: Vec::new(),
        dir,
    };
    let mut total = 0u64;
    let mime = mime_of(req);
    if mime == "multipart/form-data" {
        let mut parts = Multipart::new(req.headers(), payload);
        while let Some(part) = parts.next().await {
            let part = part.map_err(|_| WebError::MediaType(SCAN_TYPES_TEXT))?;
            receive_part(part, &mut received, (&mut total, limit), &before_files).await?;
        }
    } else if SCAN_TYPES.contains(&mime.as_str()) {
        before_files(&[])?;
        let path = file_path(received.dir.path(), 0);
        let mut payload = payload;
        write_stream(&mut payload, &path, &mut total, limit).await?;
        received.inputs.push(Input { path });
    } else {
        return Err(WebError::MediaType(SCAN_TYPES_TEXT));
    }
    if received.inputs.is_empty() {
        return Err(WebError::Invalid(vec![crate::domain::FieldError::new(
            "file",
            "Datei: bitte mindestens eine Scan-Datei wählen (PDF, TIFF, PNG oder JPEG)",
        )]));
    }
    Ok(received)
}

/// The request's media type, lower case, without parameters.
fn mime_of(req: &HttpRequest) -> String {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// One part of a multipart upload: a file to disk, or a form field (at most 4 KiB).
async fn receive_part(
    mut part: actix_multipart::Field,
    received: &mut Received,
    (total, limit): (&mut u64, u64),
    before_files: impl Fn(&[(String, String)]) -> Result<(), WebError>,
) -> Result<(), WebError> {
    let file_name = part
        .content_disposition()
        .and_then(|d| d.get_filename().map(str::to_owned));
    match file_name.as_deref() {
        // A form's file input with nothing chosen: an empty part, no file.
        Some("") => while part.next().await.is_some() {},
        Some(_) => {
            if received.inputs.len() == MAX_FILES {
                return Err(WebError::Invalid(vec![crate::domain::FieldError::new(
                    "files",
                    format!("Dateien: höchstens {MAX_FILES} in einem Upload"),
                )]));
            }
            if received.inputs.is_empty() {
                before_files(&received.fields)?;
            }
            let path = file_path(received.dir.path(), received.inputs.len());
            write_stream(&mut part, &path, total, limit).await?;
            received.inputs.push(Input { path });
        }
        None => {
            if received.fields.len() == MAX_FIELDS {
                return Err(refused_field());
            }
            let name = part.name().unwrap_or("").to_owned();
            let value = read_field(&mut part).await?;
            *total += u64::try_from(value.len()).unwrap_or(u64::MAX);
            let value = String::from_utf8_lossy(&value).into_owned();
            received.fields.push((name, value));
        }
    }
    Ok(())
}

/// A form field's value, at most 4 KiB.
async fn read_field(part: &mut actix_multipart::Field) -> Result<Vec<u8>, WebError> {
    let mut value = Vec::new();
    while let Some(chunk) = part.next().await {
        let chunk = chunk.map_err(|_| refused_field())?;
        if value.len() + chunk.len() > 4096 {
            return Err(refused_field());
        }
        value.extend_from_slice(&chunk);
    }
    Ok(value)
}

/// Files and other form fields one upload may have.
const MAX_FILES: usize = 1000;
const MAX_FIELDS: usize = 16;

fn refused_field() -> WebError {
    WebError::Invalid(vec![crate::domain::FieldError::new(
        "form",
        "Formularfeld zu lang, unvollständig oder zu viele Felder",
    )])
}

fn file_path(dir: &Path, n: usize) -> std::path::PathBuf {
    dir.join(format!("scan-{n:05}"))
}

/// Writes a stream of chunks to `path`, counting against the upload's limit.
async fn write_stream<S, E>(
    stream: &mut S,
    path: &Path,
    total: &mut u64,
    limit: u64,
) -> Result<(), WebError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let too_large = || WebError::TooLarge(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut file = std::io::BufWriter::with_capacity(
        256 * 1024,
        std::fs::File::create(path).map_err(|e| WebError::Internal(e.to_string()))?,
    );
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| too_large())?;
        *total = total.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        if *total > limit {
            return Err(too_large());
        }
        file.write_all(&chunk)
            .map_err(|e| WebError::Internal(e.to_string()))?;
    }
    file.flush().map_err(|e| WebError::Internal(e.to_string()))
}

/// Starts the upload, reads and matches every page, and returns the finished upload.
async fn process(
    state: &AppState,
    ik: &str,
    id: &str,
    by: &str,
    received: Received,
) -> Result<ScanUpload, WebError> {
    let files = i32::try_from(received.inputs.len()).unwrap_or(i32::MAX);
    let (i, u, b) = (ik.to_owned(), id.to_owned(), by.to_owned());
    let started = state
        .db
        .run(move |c| storage::start_new_scan_upload(c, &u, &i, &b, files))
        .await?;
    if !started {
        return Err(WebError::Conflict(
            "Dieser Abgleich wurde bereits hochgeladen",
        ));
    }
    let pages = scan::process::run(&state.db, ik, id, received.inputs).await;
    drop(received.dir);
    if let Err(e) = pages {
        // Said at once instead of "wird ausgewertet" for an hour; the pages so far stay.
        let u = id.to_owned();
        let _ = state
            .db
            .run(move |c| storage::interrupt_scan_upload(c, &u))
            .await;
        return Err(match e {
            scan::ScanError::Storage(e) => WebError::Storage(e),
            scan::ScanError::Aborted(e) => WebError::Internal(e),
        });
    }
    load_upload(state, ik, id).await
}

async fn load_upload(state: &AppState, ik: &str, id: &str) -> Result<ScanUpload, WebError> {
    let (ik, id) = (ik.to_owned(), id.to_owned());
    state
        .db
        .run(move |c| storage::scan_upload(c, &ik, &id))
        .await?
        .ok_or(WebError::NotFound)
}

/// Every page of an upload, read in slices.
async fn all_pages(state: &AppState, id: &str) -> Result<Vec<ScanPageRow>, WebError> {
    let mut pages: Vec<ScanPageRow> = Vec::new();
    loop {
        let (id, after) = (id.to_owned(), pages.last().map_or(0, |p| p.page_no));
        let slice = state
            .db
            .run(move |c| storage::scan_upload_pages(c, &id, after, 1000))
            .await?;
        let done = slice.len() < 1000;
        pages.extend(slice);
        if done {
            return Ok(pages);
        }
    }
}

// --- JSON and CSV -------------------------------------------------------------------------------

fn upload_json(u: &ScanUpload) -> Value {
    json!({
        "id": u.id,
        "state": u.state,
        "uploaded_by": u.uploaded_by,
        "created": scan::matching::rfc3339(&u.created_at),
        "finished": u.finished_at.as_ref().map(scan::matching::rfc3339),
        "files": u.files,
        "pages": u.pages,
        "counts": {
            "electronic": u.electronic,
            "paper_only": u.paper_only,
            "ambiguous": u.ambiguous,
            "unreadable": u.unreadable,
            "other_insurer": u.other_insurer,
        },
    })
}

fn page_json(p: &ScanPageRow) -> Value {
    let mut v = json!({
        "page": p.page_no,
        "barcode": p.barcode_no,
        "file": p.file_no,
        "file_page": p.file_page,
        "outcome": p.outcome,
    });
    if let (Some(obj), Ok(Value::Object(detail))) =
        (v.as_object_mut(), serde_json::from_str::<Value>(&p.detail))
    {
        obj.extend(detail);
    }
    v
}

fn result_json(u: &ScanUpload, pages: &[ScanPageRow]) -> Value {
    let mut v = upload_json(u);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "results".into(),
            Value::Array(pages.iter().map(page_json).collect()),
        );
    }
    v
}

const CSV_COLUMNS: [&str; 28] = [
    "page",
    "barcode",
    "file",
    "file_page",
    "outcome",
    "document_id",
    "delivery_state",
    "delivered_at",
    "cancelled",
    "candidates",
    "reason",
    "insurer_ik",
    "kvnr",
    "bsnr",
    "lanr",
    "issued_on",
    "incapable_since",
    "incapable_until",
    "determined_on",
    "initial",
    "follow_up",
    "final_certificate",
    "work_accident",
    "other_accident",
    "sick_pay_case",
    "diagnoses",
    "diagnosis_hint",
    "other_measures",
];

/// The results as CSV (`;`-separated, UTF-8 with BOM, so spreadsheet programs open it as it
/// is): one line per page, the record's fields for `paper_only` pages.
fn result_csv(pages: &[ScanPageRow]) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&CSV_COLUMNS.join(";"));
    out.push_str("\r\n");
    for p in pages {
        let v = page_json(p);
        let text = |path: &[&str]| -> String {
            let mut at = &v;
            for key in path {
                match at.get(key) {
                    Some(next) => at = next,
                    None => return String::new(),
                }
            }
            match at {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Bool(b) => if *b { "1" } else { "0" }.into(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            }
        };
        let candidates = v
            .get("candidates")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|d| d.get("id").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let record = |k: &str| text(&["record", k]);
        let cells = [
            p.page_no.to_string(),
            p.barcode_no.to_string(),
            p.file_no.to_string(),
            p.file_page.to_string(),
            p.outcome.clone(),
            text(&["document", "id"]),
            text(&["document", "delivery_state"]),
            text(&["document", "delivered_at"]),
            text(&["document", "cancelled"]),
            candidates,
            text(&["message"]),
            record("insurer_ik"),
            record("kvnr"),
            record("bsnr"),
            record("lanr"),
            record("issued_on"),
            record("incapable_since"),
            record("incapable_until"),
            record("determined_on"),
            record("initial"),
            record("follow_up"),
            record("final_certificate"),
            record("work_accident"),
            record("other_accident"),
            record("sick_pay_case"),
            record("diagnoses"),
            record("diagnosis_hint"),
            record("other_measures"),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// One CSV cell: quoted when it holds `;`, `"` or a line break; a text that a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@` first) is prefixed with `'` (the free texts come from
/// paper).
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_response(id: &str, pages: &[ScanPageRow]) -> HttpResponse {
    let short: String = id.chars().take(8).collect();
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"Papier-AU-Abgleich_{short}.csv\""),
        ))
        .body(result_csv(pages))
}

/// An upload of the insurer `ik` with every result (404 for another IK's or an unknown id).
async fn own_upload(
    state: &AppState,
    ik: &str,
    id: &str,
) -> Result<(ScanUpload, Vec<ScanPageRow>), WebError> {
    let id = parse_id(id)?;
    let upload = load_upload(state, ik, &id).await?;
    Ok((upload, all_pages(state, &id).await?))
}

fn parse_id(id: &str) -> Result<String, WebError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| WebError::NotFound)
}

// --- API ----------------------------------------------------------------------------------------

async fn api_upload(
    client: InsurerClient,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let received = receive(&req, payload, state.settings.max_scan_bytes, |_| Ok(())).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let upload = process(&state, &client.ik, &id, "api-token", received).await?;
    let pages = all_pages(&state, &id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/insurer/v1/scans/{id}")))
        .json(result_json(&upload, &pages)))
}

async fn api_list(
    client: InsurerClient,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let uploads = state
        .db
        .run(move |c| storage::list_scan_uploads(c, &client.ik, 100))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "uploads": uploads.iter().map(upload_json).collect::<Vec<_>>()
    })))
}

async fn api_result(
    client: InsurerClient,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (upload, pages) = own_upload(&state, &client.ik, &id).await?;
    Ok(HttpResponse::Ok().json(result_json(&upload, &pages)))
}

async fn api_csv(
    client: InsurerClient,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (upload, pages) = own_upload(&state, &client.ik, &id).await?;
    Ok(csv_response(&upload.id, &pages))
}

// --- pages --------------------------------------------------------------------------------------

struct UploadView {
    id: String,
    created: String,
    by: String,
    state: &'static str,
    files: i32,
    pages: i32,
    electronic: i32,
    paper_only: i32,
    ambiguous: i32,
    unreadable: i32,
    other_insurer: i32,
}

fn upload_view(u: &ScanUpload) -> UploadView {
    UploadView {
        id: u.id.clone(),
        created: local(&u.created_at),
        by: u.uploaded_by.clone(),
        state: match u.state.as_str() {
            "running" => "wird ausgewertet",
            "done" => "fertig",
            _ => "abgebrochen",
        },
        files: u.files,
        pages: u.pages,
        electronic: u.electronic,
        paper_only: u.paper_only,
        ambiguous: u.ambiguous,
        unreadable: u.unreadable,
        other_insurer: u.other_insurer,
    }
}

#[derive(Template)]
#[template(path = "scans.html")]
struct ListPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    ik: &'a str,
    /// A fresh id for the next upload: the page's script polls its progress under it.
    next_id: String,
    max_mb: u64,
    uploads: Vec<UploadView>,
}

async fn page_list(
    user: InsurerUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let ik = user.ik.clone();
    let uploads = state
        .db
        .run(move |c| {
            storage::interrupt_running_scan_uploads(c)?;
            storage::list_scan_uploads(c, &ik, 50)
        })
        .await?;
    let page = ListPage {
        nav_user: Some(&user.user.username),
        nav_role: user.role.as_str(),
        banner: super::Banner::default(),
        csrf: &user.user.csrf_token,
        ik: &user.ik,
        next_id: uuid::Uuid::new_v4().to_string(),
        max_mb: state.settings.max_scan_bytes / (1024 * 1024),
        uploads: uploads.iter().map(upload_view).collect(),
    };
    html(StatusCode::OK, &page)
}

/// The form's files; the upload takes the id the page offered (so its script can follow the
/// progress), the CSRF token must come before the first file.
async fn page_upload(
    user: InsurerUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let check = |fields: &[(String, String)]| {
        let csrf = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        user.check_csrf(csrf)
    };
    let received = receive(&req, payload, state.settings.max_scan_bytes, check).await?;
    let id = received
        .fields
        .iter()
        .find(|(k, _)| k == "upload")
        .and_then(|(_, v)| uuid::Uuid::parse_str(v).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .to_string();
    process(&state, &user.ik, &id, &user.user.username, received).await?;
    Ok(see_other(&format!("/kasse/scans/{id}")))
}

struct PageView {
    /// "3", or "3 (2. Barcode)" for the second copy on one sheet.
    page: String,
    file: i32,
    file_page: i32,
    outcome: &'static str,
    /// `electronic`, `paper_only`, … for the row's colour.
    class: String,
    details: Vec<(String, String)>,
}

fn page_view(p: &ScanPageRow) -> PageView {
    let v = page_json(p);
    let s = |path: &[&str]| -> String {
        path.iter()
            .try_fold(&v, |at, k| at.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let de_date = |iso: String| {
        chrono::NaiveDate::parse_from_str(&iso, "%Y-%m-%d")
            .map(|d| d.format("%d.%m.%Y").to_string())
            .unwrap_or(iso)
    };
    let mut details = Vec::new();
    let outcome = match p.outcome.as_str() {
        "electronic" => {
            details.push(("Dokument".into(), s(&["document", "id"])));
            let state = s(&["document", "delivery_state"]);
            details.push(("Versand".into(), delivery_label(&state).into()));
            let at = s(&["document", "delivered_at"]);
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&at) {
                details.push(("elektronisch erhalten".into(), local(&t.naive_utc())));
            }
            if v["document"]["cancelled"].as_bool() == Some(true) {
                details.push(("Hinweis".into(), "von der Praxis storniert".into()));
            }
            "elektronisch vorhanden"
        }
        "paper_only" => {
            for (label, key) in [
                ("Versicherten-ID", "kvnr"),
                ("BSNR", "bsnr"),
                ("LANR", "lanr"),
            ] {
                details.push((label.into(), s(&["record", key])));
            }
            for (label, key) in [
                ("ausgestellt", "issued_on"),
                ("AU seit", "incapable_since"),
                ("AU bis", "incapable_until"),
            ] {
                details.push((label.into(), de_date(s(&["record", key]))));
            }
            let diagnoses: Vec<&str> = v["record"]["diagnoses"]
                .as_array()
                .map(|d| d.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            details.push(("Diagnosen".into(), diagnoses.join(", ")));
            "nur Papier"
        }
        "ambiguous" => {
            let ids: Vec<&str> = v["candidates"]
                .as_array()
                .map(|c| c.iter().filter_map(|d| d["id"].as_str()).collect())
                .unwrap_or_default();
            details.push(("mögliche Dokumente".into(), ids.join(", ")));
            "mehrdeutig"
        }
        "unreadable" => {
            details.push(("Grund".into(), s(&["message"])));
            "nicht lesbar"
        }
        _ => "andere Krankenkasse",
    };
    PageView {
        page: if p.barcode_no == 1 {
            p.page_no.to_string()
        } else {
            format!("{} ({}. Barcode)", p.page_no, p.barcode_no)
        },
        file: p.file_no,
        file_page: p.file_page,
        outcome,
        class: p.outcome.replace('_', "-"),
        details,
    }
}

#[derive(Template)]
#[template(path = "scan.html")]
struct ResultPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    upload: UploadView,
    pages: Vec<PageView>,
}

async fn page_result(
    user: InsurerUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let (upload, pages) = own_upload(&state, &user.ik, &id).await?;
    let page = ResultPage {
        nav_user: Some(&user.user.username),
        nav_role: user.role.as_str(),
        banner: super::Banner::default(),
        csrf: &user.user.csrf_token,
        upload: upload_view(&upload),
        pages: pages.iter().map(page_view).collect(),
    };
    html(StatusCode::OK, &page)
}

async fn page_csv(
    user: InsurerUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let (upload, pages) = own_upload(&state, &user.ik, &id).await?;
    Ok(csv_response(&upload.id, &pages))
}

/// `{"state":…,"pages":n}` while an upload runs (404 until it has started).
async fn page_progress(
    user: InsurerUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = parse_id(&id)?;
    let upload = load_upload(&state, &user.ik, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "state": upload.state, "pages": upload.pages })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("E10.20 G"), "E10.20 G");
        assert_eq!(csv_cell("a;b"), "\"a;b\"");
        assert_eq!(csv_cell("er sagt \"nein\""), "\"er sagt \"\"nein\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-5"), "'-5");
    }
}
