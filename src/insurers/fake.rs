//! A fake insurer implementing the push contract, switchable at run time. Used by tests, the
//! demo (`serve --demo`) and `au-relay fake-insurer`.
//!
//! - `POST /eau` takes a document (`Idempotency-Key` = bundle UUID): 201 the first time, 409
//!   for a UUID it already has; every accepted push is counted per UUID.
//! - `GET /health`: 200 when up, 503 when down.
//! - `PUT /control/mode` with `up`, `down`, `flapping`, `error:<KBV code>` or `slow:<ms>`, or
//!   `refused:<ms>`: stop listening (connection refused, as for a host that is gone) for that
//!   long, then listen again; `GET /control/counts`: `{"<uuid>": n, …}`; `GET /control/totals`:
//!   `{"documents": distinct UUIDs accepted, "pushes": accepted pushes}` (cheap to poll).
//!   In process, [`FakeInsurer::refuse_connections`] and [`FakeInsurer::listen_again`].

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// How the fake insurer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// 503 to everything.
    Down,
    /// Alternates between accepting and 503.
    Flapping,
    /// Answers 422 with a KBV OperationOutcome carrying this error code.
    Error(u16),
    /// Accepts after a delay.
    Slow(Duration),
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        match s {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            "flapping" => Some(Self::Flapping),
            _ => {
                if let Some(code) = s.strip_prefix("error:") {
                    code.parse().ok().map(Self::Error)
                } else {
                    let ms = s.strip_prefix("slow:")?.parse().ok()?;
                    Some(Self::Slow(Duration::from_millis(ms)))
                }
            }
        }
    }
}

#[derive(Debug)]
struct State {
    mode: Mode,
    flap: bool,
    counts: BTreeMap<String, u32>,
    /// What the first accepted push of each UUID carried.
    received: std::collections::HashMap<String, Received>,
    /// Pushes with a key and a body, first or repeated (the sum of `counts`).
    pushes: u64,
}

/// The first push of a document as the fake insurer received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub content_type: String,
    /// SHA-256 of the body, hex.
    pub sha256: String,
}

/// Handle of a running fake insurer.
#[derive(Clone)]
pub struct FakeInsurer {
    state: Arc<Mutex<State>>,
    /// The running server; `None` while connections are refused.
    server: Arc<Mutex<Option<ServerHandle>>>,
    /// The runtime it was started on: it outlives the server, so a restart after
    /// `refused:<ms>` is scheduled there, not on a worker that the stop ends.
    home: tokio::runtime::Handle,
    host: String,
    pub port: u16,
}

impl FakeInsurer {
    /// Starts on `127.0.0.1:port` (0 = any free port) on the current actix/tokio runtime.
    pub fn start(port: u16) -> std::io::Result<(Self, actix_web::dev::Server)> {
        Self::start_on("127.0.0.1", port)
    }

    /// Starts on `host:port` (e.g. `0.0.0.0` inside a container).
    pub fn start_on(host: &str, port: u16) -> std::io::Result<(Self, actix_web::dev::Server)> {
        let listener = TcpListener::bind((host, port))?;
        let port = listener.local_addr()?.port();
        let fake = Self {
            state: Arc::new(Mutex::new(State {
                mode: Mode::Up,
                flap: false,
                counts: BTreeMap::new(),
                received: std::collections::HashMap::new(),
                pushes: 0,
            })),
            server: Arc::new(Mutex::new(None)),
            home: tokio::runtime::Handle::try_current()
                .map_err(|e| std::io::Error::other(e.to_string()))?,
            host: host.to_owned(),
            port,
        };
        let server = fake.serve(listener)?;
        Ok((fake, server))
    }

    fn serve(&self, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
        let data = web::Data::from(self.state.clone());
        let me = web::Data::new(self.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(me.clone())
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .route("/eau", web::post().to(accept))
                .route("/health", web::get().to(health))
                .route("/control/mode", web::put().to(set_mode))
                .route("/control/counts", web::get().to(counts))
                .route("/control/totals", web::get().to(totals))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        if let Ok(mut running) = self.server.lock() {
            *running = Some(server.handle());
        }
        Ok(server)
    }

    /// Stops listening: every push and probe now gets "connection refused". The counts stay.
    pub async fn refuse_connections(&self) {
        let handle = self.server.lock().ok().and_then(|mut s| s.take());
        if let Some(handle) = handle {
            handle.stop(false).await;
        }
    }

    /// Listens again on the same port after [`Self::refuse_connections`] (a no-op while
    /// listening).
    pub fn listen_again(&self) -> std::io::Result<()> {
        if self.server.lock().map(|s| s.is_some()).unwrap_or(true) {
            return Ok(());
        }
        let server = self.serve(TcpListener::bind((self.host.as_str(), self.port))?)?;
        self.home.spawn(server);
        Ok(())
    }

    pub fn push_url(&self) -> String {
        format!("http://127.0.0.1:{}/eau", self.port)
    }

    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut s) = self.state.lock() {
            s.mode = mode;
        }
    }

    /// Accepted pushes per document UUID.
    /// What the first accepted push of this document UUID carried.
    pub fn received(&self, document_id: &str) -> Option<Received> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.received.get(document_id).cloned())
    }

    pub fn counts(&self) -> BTreeMap<String, u32> {
        self.state
            .lock()
            .map(|s| s.counts.clone())
            .unwrap_or_default()
    }
}

fn outcome(code: u16) -> String {
    format!(
        r#"<OperationOutcome xmlns="http://hl7.org/fhir"><issue><severity value="fatal"/><code value="processing"/><details><coding><system value="https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_EAU_AU_ERROR_KASSE"/><code value="{code}"/></coding></details></issue></OperationOutcome>"#
    )
}

/// What the current mode answers (and whether to count the document as accepted).
fn decide(state: &Mutex<State>) -> (Mode, bool) {
    let Ok(mut s) = state.lock() else {
        return (Mode::Down, false);
    };
    let accept = match s.mode {
        Mode::Up | Mode::Slow(_) => true,
        Mode::Down | Mode::Error(_) => false,
        Mode::Flapping => {
            s.flap = !s.flap;
            s.flap
        }
    };
    (s.mode, accept)
}

async fn accept(
    req: HttpRequest,
    state: web::Data<Mutex<State>>,
    body: web::Bytes,
) -> HttpResponse {
    let (mode, accept) = decide(&state);
    if let Mode::Slow(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    if let Mode::Error(code) = mode {
        return HttpResponse::UnprocessableEntity()
            .content_type("application/fhir+xml")
            .body(outcome(code));
    }
    if !accept {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .finish();
    }
    let Some(key) = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return HttpResponse::BadRequest().body("Idempotency-Key fehlt");
    };
    if body.is_empty() {
        return HttpResponse::BadRequest().body("leeres Dokument");
    }
    let content_type = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let first = match state.lock() {
        Ok(mut s) => {
            s.pushes += 1;
            let n = s.counts.entry(key.clone()).or_insert(0);
            *n += 1;
            let first = *n == 1;
            if first {
                let received = Received {
                    content_type,
                    sha256,
                };
                s.received.insert(key, received);
            }
            first
        }
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    if first {
        HttpResponse::Created().finish()
    } else {
        HttpResponse::Conflict().finish()
    }
}

async fn health(state: web::Data<Mutex<State>>) -> HttpResponse {
    let mode = state.lock().map(|s| s.mode).unwrap_or(Mode::Down);
    if mode == Mode::Down {
        HttpResponse::ServiceUnavailable().finish()
    } else {
        HttpResponse::Ok().body("ok")
    }
}

async fn set_mode(
    state: web::Data<Mutex<State>>,
    me: web::Data<FakeInsurer>,
    body: String,
) -> HttpResponse {
    if let Some(ms) = body.trim().strip_prefix("refused:") {
        let Ok(ms) = ms.parse::<u64>() else {
            return HttpResponse::BadRequest().body("refused:<ms>");
        };
        let fake = me.get_ref().clone();
        fake.home.clone().spawn(async move {
            // Answer this request first, then go away for a while.
            tokio::time::sleep(Duration::from_millis(50)).await;
            fake.refuse_connections().await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if let Err(e) = fake.listen_again() {
                tracing::warn!(error = %e, "fake insurer could not listen again");
            }
        });
        return HttpResponse::NoContent().finish();
    }
    match (Mode::parse(&body), state.lock()) {
        (Some(mode), Ok(mut s)) => {
            s.mode = mode;
            HttpResponse::NoContent().finish()
        }
        _ => HttpResponse::BadRequest()
            .body("up | down | flapping | error:<code> | slow:<ms> | refused:<ms>"),
    }
}

async fn counts(state: web::Data<Mutex<State>>) -> HttpResponse {
    let counts = state.lock().map(|s| s.counts.clone()).unwrap_or_default();
    HttpResponse::Ok().json(counts)
}

async fn totals(state: web::Data<Mutex<State>>) -> HttpResponse {
    let (documents, pushes) = state
        .lock()
        .map(|s| (s.counts.len(), s.pushes))
        .unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({ "documents": documents, "pushes": pushes }))
}
