//! The insurers' pull API: `GET /api/insurer/v1/documents` (streamed, constant memory) and
//! `POST /api/insurer/v1/acknowledgements`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::form::from_json;
use super::session::InsurerClient;
use super::{read_body, ApiError, AppState, WebError};
use crate::domain::FieldError;
use crate::storage::{self, Cursor, Database};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/api/insurer/v1/documents", documents)
        .post("/api/insurer/v1/acknowledgements", acknowledge);
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DocumentsQuery {
    after: Option<String>,
    limit: Option<u64>,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    kind: &'a str,
    created: String,
    cursor: String,
    /// Whether `document` is the signed file (CAdES `.p7s`, Base64) or the KBV XML (UTF-8).
    signed: bool,
    /// `EEAU0_<uuid>.p7s` / `EEAU0_Storno_<uuid>.p7s`, or `.xml` when unsigned (TA P5-02).
    file_name: String,
    /// `application/pkcs7-mime` or `application/fhir+xml`.
    content_type: &'static str,
    /// When the insurer's scan of the paper KK copy was matched to this document (its own
    /// system can skip it), absent if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    paper_copy_received_at: Option<String>,
    /// The exact document a push would send: the `.p7s` bytes in Base64 when signed, else the
    /// KBV XML.
    document: std::borrow::Cow<'a, str>,
}

/// Rows fetched from the database per step of the stream.
const PAGE: u64 = 200;

enum Phase {
    Start { limit: u64 },
    Items { left: u64, first: bool },
    Done,
}

/// `{"items":[…],"next":"<cursor>"}`, streamed page by page: memory stays constant whatever
/// `limit` is. `next` is the cursor to continue after the last item.
async fn documents(
    client: InsurerClient,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: DocumentsQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| FieldError::new("query", "Abfrage ungültig: erlaubt sind after und limit"))?;
    let after = match q.after.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            Cursor::decode(s)
                .ok_or_else(|| FieldError::new("after", "after: ungültiger Cursor"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000_000);
    let (db, ik) = (state.db.clone(), client.ik);
    let stream =
        futures_util::stream::unfold((Phase::Start { limit }, after), move |(phase, last)| {
            let (db, ik) = (db.clone(), ik.clone());
            async move { step(&db, &ik, phase, last).await }
        });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .streaming(stream))
}

type Chunk = Result<web::Bytes, WebError>;
type Step = Option<(Chunk, (Phase, Option<Cursor>))>;

fn tail(last: Option<Cursor>) -> Step {
    let next = serde_json::Value::String(last.as_ref().map(Cursor::encode).unwrap_or_default());
    Some((
        Ok(web::Bytes::from(format!("],\"next\":{next}}}"))),
        (Phase::Done, last),
    ))
}

fn start(limit: u64, last: Option<Cursor>) -> Step {
    let start = web::Bytes::from_static(b"{\"items\":[");
    let items = Phase::Items {
        left: limit,
        first: true,
    };
    Some((Ok(start), (items, last)))
}

async fn step(db: &Database, ik: &str, phase: Phase, last: Option<Cursor>) -> Step {
    let (left, first) = match phase {
        Phase::Done => return None,
        Phase::Start { limit } => return start(limit, last),
        Phase::Items { left: 0, .. } => return tail(last),
        Phase::Items { left, first } => (left, first),
    };
    let wanted = left.min(PAGE);
    let take = i64::try_from(wanted).unwrap_or(200);
    let (ik, after) = (ik.to_owned(), last.clone());
    let page = match db
        .run(move |c| storage::export_page(c, &ik, after.as_ref(), take))
        .await
    {
        Ok(p) if p.is_empty() => return tail(last),
        Ok(p) => p,
        Err(e) => return Some((Err(WebError::Storage(e)), (Phase::Done, last))),
    };
    let out = match items_json(&page, first) {
        Ok(out) => out,
        Err(e) => return Some((Err(e), (Phase::Done, last))),
    };
    let n = u64::try_from(page.len()).unwrap_or(u64::MAX);
    // A short page means the queue is exhausted.
    let left = if n < wanted { 0 } else { left - n };
    let last = page.last().map(|i| i.cursor.clone());
    Some((
        Ok(web::Bytes::from(out)),
        (Phase::Items { left, first: false }, last),
    ))
}

/// The items of a page as JSON array elements, a comma before each but the stream's first.
fn items_json(page: &[storage::ExportItem], first: bool) -> Result<Vec<u8>, WebError> {
    let mut out = Vec::with_capacity(page.len() * 4096);
    for (i, item) in page.iter().enumerate() {
        if !(first && i == 0) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &item_body(item))
            .map_err(|e| WebError::Internal(e.to_string()))?;
    }
    Ok(out)
}

fn item_body(item: &storage::ExportItem) -> Item<'_> {
    use base64::Engine;
    let storno = item.kind == storage::DocumentKind::Storno;
    let signed = item.signed.is_some();
    let (content_type, document) = match &item.signed {
        Some(p7s) => (
            crate::signature::CONTENT_TYPE,
            base64::engine::general_purpose::STANDARD.encode(p7s).into(),
        ),
        None => ("application/fhir+xml", item.xml.as_str().into()),
    };
    Item {
        id: &item.document_id,
        kind: item.kind.code(),
        created: item.cursor.created_at.and_utc().to_rfc3339(),
        cursor: item.cursor.encode(),
        signed,
        file_name: crate::signature::file_name(storno, &item.document_id, signed),
        content_type,
        paper_copy_received_at: item
            .paper_received_at
            .as_ref()
            .map(crate::scan::matching::rfc3339),
        document,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Acknowledgement {
    ids: Vec<Uuid>,
}

async fn acknowledge(
    client: InsurerClient,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let ack: Acknowledgement = from_json(&body)?;
    let ik = client.ik;
    let n = state
        .db
        .run(move |c| storage::acknowledge(c, &ik, &ack.ids))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "acknowledged": n })))
}
