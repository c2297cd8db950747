//! HTTP: the German staff UI, the JSON API for practice software, health endpoints.
//! Handlers are short: parse → call one function → render.

mod account;
mod admin;
mod api;
mod dispatch;
pub mod form;
mod insurer_api;
mod kim;
mod login;
mod lookup;
pub mod metrics;
mod openapi;
mod operator;
mod pages;
mod print;
pub mod proxy;
mod queue;
mod scans;
mod session;
mod signing;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, ResponseError, Route};
use futures_util::StreamExt;

use crate::domain::FieldError;
use crate::storage::{Database, StorageError};

pub use login::LOGIN_COOKIE;
pub use session::{ApiClient, Operator, PracticeAdmin, Session, Staff, SESSION_COOKIE};

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest scan upload of an insurer (bytes).
    pub max_scan_bytes: u64,
    /// Absolute lifetime of a staff session.
    pub session_ttl: Duration,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// Mark cookies `Secure` (behind TLS).
    pub secure_cookies: bool,
    /// Password policy and Message-ID domain of patient mails.
    pub mail: crate::capture::MailOptions,
    /// Who may read `/metrics`.
    pub metrics: crate::app::MetricsAccess,
    /// Reverse proxies whose `X-Forwarded-For` names the client (login throttle).
    pub trusted_proxies: proxy::TrustedProxies,
    /// The KBV Kostenträgerstammdatei for the insurer lookup (empty without a file).
    pub insurers: crate::domain::InsurerDirectory,
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub settings: Arc<Settings>,
    /// The in-process fake insurer of `serve --demo`, switchable from the dashboard.
    pub demo_insurer: Option<crate::insurers::fake::FakeInsurer>,
    pub http_metrics: Arc<metrics::HttpMetrics>,
}

/// The banner on every practice page while certificates cannot reach an insurer: a declared
/// practice-wide (TI) Störung, or insurers whose last attempt failed or whose Störung is
/// declared. It tells the counter what to do: hand the patient the KK copy.
#[derive(Debug, Default)]
pub struct Banner {
    /// A practice-wide Störung declared since (Berlin time).
    ti_since: Option<String>,
    /// `(IK, name)` of the insurers that fail, by name.
    insurers: Vec<(String, String)>,
}

impl Banner {
    /// The banner of a practice (none for the operator, who has no practice).
    pub async fn load(state: &AppState, practice_id: Option<&str>) -> Result<Self, WebError> {
        let Some(practice) = practice_id.map(str::to_owned) else {
            return Ok(Self::default());
        };
        let found = state
            .db
            .run(move |c| crate::storage::disruptions(c, &practice))
            .await?;
        Ok(Self {
            ti_since: found.practice_outage.map(|t| pages::local(&t)),
            insurers: found.insurers,
        })
    }

    /// Whether documents for the insurer `ik` cannot be transmitted now.
    pub fn covers(&self, ik: &str) -> bool {
        self.ti_since.is_some() || self.insurers.iter().any(|(i, _)| i == ik)
    }

    /// The banner's lines, none when everything is reachable.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(since) = &self.ti_since {
            lines.push(format!(
                "TI-Störung seit {since}: Übermittlung an alle Krankenkassen gestört – KK-Ausfertigung mitgeben"
            ));
        }
        if !self.insurers.is_empty() {
            lines.push(format!(
                "Übermittlung an {} gestört – KK-Ausfertigung mitgeben",
                name_list(
                    &self
                        .insurers
                        .iter()
                        .map(|(_, n)| n.clone())
                        .collect::<Vec<_>>(),
                    3
                )
            ));
        }
        lines
    }
}

/// "A", "A und B", "A, B und C", "A, B, C und 4 weitere Kassen".
fn name_list(names: &[String], shown: usize) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        _ if names.len() > shown => {
            let rest = names.len() - shown;
            format!(
                "{} und {rest} weitere Kasse{}",
                names[..shown].join(", "),
                if rest == 1 { "" } else { "n" }
            )
        }
        [init @ .., last] => format!("{} und {last}", init.join(", ")),
    }
}

/// Errors of the web layer. API handlers answer them as JSON (see [`ApiError`]), pages as HTML.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("Eingaben ungültig")]
    Invalid(Vec<FieldError>),
    #[error("Anfrage zu groß (höchstens {0} Bytes)")]
    TooLarge(usize),
    #[error("Inhaltstyp nicht unterstützt: {0} erwartet")]
    MediaType(&'static str),
    #[error("Anmeldung erforderlich")]
    LoginRequired,
    #[error("Zugriff verweigert: {0}")]
    Forbidden(&'static str),
    #[error("Nicht gefunden")]
    NotFound,
    #[error("Konflikt: {0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Rule(&'static str),
    #[error("Zu viele fehlgeschlagene Anmeldungen. Bitte versuchen Sie es in 15 Minuten erneut.")]
    Throttled,
    #[error("Interner Fehler")]
    Storage(#[from] StorageError),
    #[error("Interner Fehler")]
    Internal(String),
    #[error("Interner Fehler (Fehlernummer {0})")]
    Panicked(uuid::Uuid),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Rule(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Throttled => StatusCode::TOO_MANY_REQUESTS,
            // No connection to the database (down, restarting, pool exhausted): try again.
            Self::Storage(StorageError::Pool(_) | StorageError::Connect(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Storage(_) | Self::Internal(_) | Self::Panicked(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn log(&self) {
        // Only our own messages are logged: no request data, so no health data.
        if let Self::Storage(e) = self {
            tracing::error!(error = %e, "storage failure");
        } else if let Self::Internal(e) = self {
            tracing::error!(error = %e, "internal failure");
        }
    }

    fn errors(&self) -> Vec<FieldError> {
        match self {
            Self::Invalid(errors) => errors.clone(),
            other => vec![FieldError::new("", other.to_string())],
        }
    }
}

impl From<crate::capture::CaptureError> for WebError {
    fn from(e: crate::capture::CaptureError) -> Self {
        use crate::capture::CaptureError;
        match e {
            CaptureError::Invalid(errors) => Self::Invalid(errors),
            CaptureError::Storage(e) => Self::Storage(e),
            CaptureError::Document(e) => Self::Internal(e),
        }
    }
}

/// The answer to a cancellation, or why there is none.
pub(crate) fn cancel_outcome(c: crate::storage::Cancelled) -> Result<&'static str, WebError> {
    use crate::storage::Cancelled;
    match c {
        Cancelled::Withdrawn => Ok("withdrawn"),
        Cancelled::StornoQueued => Ok("storno_queued"),
        Cancelled::Marked => Ok("cancelled"),
        Cancelled::AlreadyCancelled => {
            Err(WebError::Conflict("Bescheinigung ist bereits storniert"))
        }
        Cancelled::TooLate => Err(WebError::Rule(
            "Storno ist nur innerhalb von 120 Werktagen nach dem Versand möglich",
        )),
        Cancelled::NotFound => Err(WebError::NotFound),
    }
}

impl From<FieldError> for WebError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}

/// HTML rendering for pages.
impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        if matches!(self, Self::LoginRequired) {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
        }
        let message = match self {
            Self::Invalid(errors) => errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let body = pages::error_page(self.status(), &message);
        let mut response = HttpResponse::build(self.status());
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "30"));
        }
        response.content_type("text/html; charset=utf-8").body(body)
    }
}

/// The same errors as JSON: `{"errors":[{"field":…,"message":…}]}`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub WebError);

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        Self(WebError::Storage(e))
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            WebError::LoginRequired => StatusCode::UNAUTHORIZED,
            ref e => e.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self.0, WebError::LoginRequired) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "30"));
        }
        response.json(serde_json::json!({ "errors": self.0.errors() }))
    }
}

/// Reads the body up to the configured limit (answering 413 beyond it).
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, WebError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| WebError::TooLarge(limit))?;
        if body.len() + chunk.len() > limit {
            return Err(WebError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads an urlencoded form and checks its CSRF token against the session before decoding it.
async fn read_form<T: serde::de::DeserializeOwned>(
    who: &Session,
    state: &AppState,
    payload: web::Payload,
) -> Result<T, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    who.check_csrf(pages::csrf_of(&body)?.as_deref())?;
    Ok(form::from_form(&body)?)
}

/// Registers routes, and lists them: the router and the route × identity matrix test
/// (`tests/it/matrix.rs`, through [`route_list`]) read the same registrations, so a route cannot
/// be added without the matrix noticing.
pub struct Router<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    listed: Vec<(&'static str, &'static str)>,
}

impl Router<'_> {
    pub fn get<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        // HEAD is answered wherever GET is (RFC 9110 §9.3.2): the same handler, the body
        // left out by actix.
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.route(path, web::head().to(handler.clone()));
        }
        self.add("GET", path, web::get().to(handler))
    }

    pub fn post<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add("POST", path, web::post().to(handler))
    }

    fn add(&mut self, method: &'static str, path: &'static str, route: Route) -> &mut Self {
        self.listed.push((method, path));
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.route(path, route);
        }
        self
    }
}

fn register(r: &mut Router<'_>) {
    r.get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics::metrics);
    openapi::routes(r);
    print::routes(r);
    api::routes(r);
    insurer_api::routes(r);
    scans::routes(r);
    queue::routes(r);
    admin::routes(r);
    signing::routes(r);
    kim::routes(r);
    account::routes(r);
    operator::routes(r);
    login::routes(r);
    lookup::routes(r);
    pages::routes(r);
}

/// Turns a panic in a handler into a 500 page with an error number that the log also names,
/// instead of losing the worker thread and every connection on it. The panic's message is not
/// logged: it could hold health data (see `main.rs`'s panic hook).
pub async fn catch_panics(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.call(req))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            // The access log names the request, the panic hook the place in the code.
            let id = uuid::Uuid::new_v4();
            tracing::error!(%id, "handler panicked");
            // An error of the service: actix answers it with its error response.
            Err(WebError::Panicked(id).into())
        }
    }
}

/// Routes of the whole application.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // A query or path that does not decode is the client's error, in German, not actix's
    // English 400 or 404.
    cfg.app_data(web::QueryConfig::default().error_handler(|_, _| {
        WebError::Invalid(vec![FieldError::new(
            "query",
            "Abfrage ungültig: unbekannter oder falscher Wert",
        )])
        .into()
    }));
    cfg.app_data(web::PathConfig::default().error_handler(|_, _| WebError::NotFound.into()));
    register(&mut Router {
        cfg: Some(cfg),
        listed: Vec::new(),
    });
}

/// Every registered route as `(method, path pattern)`, in registration order.
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    let mut r = Router {
        cfg: None,
        listed: Vec::new(),
    };
    register(&mut r);
    r.listed
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable")
        }
    }
}

/// Headers on every response: no sniffing, no framing, no referrer, a strict CSP, and no
/// caching of pages that hold health data.
/// Headers on every answer; with `tls` (the server is reached over HTTPS: `AU_RELAY_SECURE_COOKIES`)
/// also `Strict-Transport-Security`.
pub fn security_headers(tls: bool) -> actix_web::middleware::DefaultHeaders {
    let headers = if tls {
        actix_web::middleware::DefaultHeaders::new().add((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        actix_web::middleware::DefaultHeaders::new()
    };
    headers
        .add((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .add((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .add((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .add((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
            ),
        ))
        .add((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}
