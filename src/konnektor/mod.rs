//! The practice's Konnektor (gematik TI): a SOAP client for what AU-Relay uses of it, and a
//! test Konnektor ([`fake`]) that speaks the same operations for tests and the demo.
//!
//! - Discovery: `GET {base_url}/connector.sds` (ServiceDirectory 3.1) names the endpoints of
//!   the SignatureService (7.5 preferred, else 7.4) and the EventService (7.2).
//! - `EventService.GetCards` finds the card handle of the configured eHBA or SMC-B (handles
//!   change when a card is re-inserted, so it is resolved for every batch).
//! - `SignatureService.GetJobNumber` + `SignDocument`: one call for a whole batch
//!   (Stapelsignatur: up to 250 documents, one PIN entry at the card terminal), CAdES
//!   (`urn:ietf:rfc:5652`) with `IncludeEContent` (enveloping) and `IncludeRevocationInfo`.
//! - 7.5 only: `GetSignatureMode` and `ActivateComfortSignature` (Komfortsignatur).
//!
//! Faults are read from the gematik error traces (TelematikError 2.0) by their codes (see
//! [`codes`] for each code and where it was verified: 4008 card not inserted, 4063 PIN blocked,
//! 4043/4049 PIN entry timed out or cancelled, 4004–4006/4010/4011/4014/4021 call context),
//! and by their text where a Konnektor sends other codes.

pub mod fake;
mod soap;

use std::sync::Arc;
use std::time::Duration;

use soap::Element;

/// Most documents in one `SignDocument` call (Stapelsignatur; KVNO: 250 per PIN entry).
pub const MAX_BATCH: usize = 250;

/// Konnektor call context (ConnectorContext.xsd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub mandant_id: String,
    pub client_system_id: String,
    pub workplace_id: String,
    /// Needed for an eHBA (QES) and for the Komfortsignatur.
    pub user_id: Option<String>,
}

/// The card that signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// The doctor's eHBA: qualified electronic signature (the rule, TA P4-01).
    Hba,
    /// The practice's SMC-B: only in the cases of BMV-Ä Anlage 2b.
    SmcB,
}

impl CardKind {
    /// `CardType` as the Konnektor names it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Hba => "HBA",
            Self::SmcB => "SMC-B",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HBA" => Some(Self::Hba),
            "SMC-B" => Some(Self::SmcB),
            _ => None,
        }
    }

    /// German, for staff.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hba => "eHBA (QES)",
            Self::SmcB => "SMC-B (Praxisausweis)",
        }
    }
}

/// How AU-Relay authenticates at the Konnektor.
#[derive(Clone)]
pub enum Auth {
    None,
    Basic {
        user: String,
        password: String,
    },
    /// TLS client certificate and key, PEM.
    ClientCert {
        pem: Vec<u8>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: *** }}"),
            Self::ClientCert { .. } => f.write_str("ClientCert { pem: *** }"),
        }
    }
}

/// Where the Konnektor is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// E.g. `https://konnektor.praxis.local`; the service directory is `{base_url}/connector.sds`.
    pub base_url: String,
    pub context: Context,
    pub auth: Auth,
    pub card: CardKind,
    /// This card, if several of the kind are inserted.
    pub iccsn: Option<String>,
    /// Konnektor server certificates are self-issued.
    pub accept_invalid_certs: bool,
    /// Overall per call; `SignDocument` waits for the PIN entry.
    pub timeout: Duration,
}

/// One document to sign.
#[derive(Debug, Clone)]
pub struct ToSign {
    pub request_id: String,
    /// Shown at the card terminal (no health data).
    pub short_text: String,
    /// The exact bytes to sign.
    pub content: Vec<u8>,
}

/// The per-document result of a batch.
#[derive(Debug, Clone)]
pub enum Signed {
    Ok { request_id: String, p7s: Vec<u8> },
    Failed { request_id: String, message: String },
}

/// How the card signs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureMode {
    /// Every batch needs the PIN.
    Pin,
    /// Komfortsignatur active, with the signatures left if the Konnektor says.
    Comfort { remaining: Option<u32> },
}

/// What "Verbindung testen" found.
#[derive(Debug, Clone)]
pub struct Status {
    pub product: String,
    /// `7.5.x` or `7.4.x`.
    pub signature_service_version: String,
    pub card_holder: Option<String>,
    pub card_kind: CardKind,
    /// SignatureService 7.5 and `GetSignatureMode` says `ComfortSignatureStatus` ENABLED.
    pub comfort_available: bool,
}

/// Why a Konnektor call failed. [`KonnektorError::german`] is the staff's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KonnektorError {
    #[error("Konnektor nicht erreichbar: {0}")]
    Unreachable(String),
    #[error("Zeitüberschreitung beim Konnektor")]
    Timeout,
    #[error("Karte nicht gesteckt")]
    CardNotInserted,
    #[error("PIN gesperrt")]
    PinBlocked,
    #[error("PIN nicht eingegeben")]
    PinNotEntered,
    #[error("Aufrufkontext unbekannt: {0}")]
    Context(String),
    #[error("Konnektor-Fehler {code:?}: {message}")]
    Fault { code: Option<u32>, message: String },
    #[error("Antwort des Konnektors unlesbar: {0}")]
    Protocol(String),
    #[error("Konnektor-Einstellung: {0}")]
    Config(String),
}

impl KonnektorError {
    /// A clear German message for staff, saying what to do.
    pub fn german(&self) -> String {
        match self {
            Self::Unreachable(_) => {
                "Konnektor nicht erreichbar: bitte Netzwerk und Konnektor prüfen".into()
            }
            Self::Timeout => "Zeitüberschreitung beim Konnektor: keine Antwort (PIN nicht rechtzeitig eingegeben?)".into(),
            Self::CardNotInserted => {
                "Karte nicht gesteckt: bitte den eHBA bzw. die SMC-B ins Kartenterminal stecken".into()
            }
            Self::PinBlocked => {
                "PIN gesperrt: bitte die PIN mit der PUK entsperren (Kartenterminal)".into()
            }
            Self::PinNotEntered => {
                "PIN-Eingabe abgebrochen oder Zeit abgelaufen: bitte erneut signieren und die PIN am Kartenterminal eingeben".into()
            }
            Self::Context(text) => format!(
                "Konnektor kennt Mandant, Clientsystem oder Arbeitsplatz nicht ({text}): bitte die Konnektor-Einstellungen prüfen"
            ),
            Self::Fault { code, message } => match code {
                Some(code) => format!("Konnektor meldet Fehler {code}: {message}"),
                None => format!("Konnektor meldet einen Fehler: {message}"),
            },
            Self::Protocol(_) => "Antwort des Konnektors unlesbar".into(),
            Self::Config(text) => format!("Konnektor-Einstellung: {text}"),
        }
    }

    /// A fault by its gematik codes (any trace), else by its text.
    fn of_fault(f: soap::Fault) -> Self {
        use codes::*;
        let has = |wanted: &[u32]| f.codes.iter().any(|c| wanted.contains(c));
        if has(&[CARD_NOT_INSERTED]) {
            return Self::CardNotInserted;
        }
        if has(&[PIN_BLOCKED]) {
            return Self::PinBlocked;
        }
        if has(&[PIN_TIMEOUT, CANCELLED_BY_USER]) {
            return Self::PinNotEntered;
        }
        if has(CONTEXT) {
            return Self::Context(f.text);
        }
        // Fallback by text, for Konnektors that answer with other or no codes.
        let lower = f.text.to_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if lower.contains("pin") && any(&["gesperrt", "blockiert", "blocked"]) {
            Self::PinBlocked
        } else if (lower.contains("pin") && any(&["timeout", "zeit", "abgebrochen", "cancel"]))
            || any(&["abbruch durch den benutzer"])
        {
            Self::PinNotEntered
        } else if any(&["nicht als gesteckt", "nicht gesteckt", "not inserted"]) {
            Self::CardNotInserted
        } else {
            Self::Fault {
                code: f.codes.first().copied(),
                message: f.text,
            }
        }
    }
}

/// gematik Konnektor error codes (`GERROR:Trace/Code`) that AU-Relay tells apart.
///
/// Sources (gemSpec_Kon tables as quoted in public client code; the spec itself was not at hand):
/// - 4004/4005/4006/4010/4011/4014/4021: gematik `app-Authenticator`, `CONNECTOR_ERROR_CODES`
///   ("Ungültige Mandanten-ID", "Ungültige Clientsystem-ID", "Ungültige Arbeitsplatz-ID",
///   "Clientsystem/Arbeitsplatz ist dem Mandanten nicht zugeordnet", "… Arbeitsplatz nicht dem
///   Clientsystem zugeordnet", "nicht alle Pflichtparameter … gefüllt"); 4004 also in its
///   recorded `soap-error-response.xml`.
/// - 4008 "Karte nicht als gesteckt identifiziert": a Konnektor answer recorded in the
///   `cocard` test suite ("code: 4008; detail: Karte mit Handle … nicht vorhanden").
/// - 4043 "Timeout bei der PIN-Eingabe", 4049 "Abbruch durch den Benutzer", 4063 "PIN bereits
///   gesperrt (BLOCKED)": gemSpec_Kon V5.16.0 TAB_KON_089 (TUC_KON_012 "PIN verifizieren")
///   and TAB_KON_128 (TUC_KON_150 "Dokument QES signieren"), quoted in `ere-health/ere-ps-app`
///   `src/test/resources/websocket-messages/README.md`; 4043 also as a recorded Konnektor answer
///   (`cocard`, Severity Warning) and as ERE's SignDocument example `…-Exception-4043.json`.
pub mod codes {
    /// Ungültige Mandanten-ID.
    pub const UNKNOWN_MANDANT: u32 = 4004;
    /// Ungültige Clientsystem-ID.
    pub const UNKNOWN_CLIENT_SYSTEM: u32 = 4005;
    /// Ungültige Arbeitsplatz-ID.
    pub const UNKNOWN_WORKPLACE: u32 = 4006;
    /// Karte nicht als gesteckt identifiziert.
    pub const CARD_NOT_INSERTED: u32 = 4008;
    /// Timeout bei der PIN-Eingabe.
    pub const PIN_TIMEOUT: u32 = 4043;
    /// Abbruch durch den Benutzer.
    pub const CANCELLED_BY_USER: u32 = 4049;
    /// PIN bereits gesperrt (BLOCKED).
    pub const PIN_BLOCKED: u32 = 4063;
    /// The call context (Mandant, Clientsystem, Arbeitsplatz) is unknown or not assigned.
    pub const CONTEXT: &[u32] = &[
        UNKNOWN_MANDANT,
        UNKNOWN_CLIENT_SYSTEM,
        UNKNOWN_WORKPLACE,
        4010,
        4011,
        4014,
        4021,
    ];
}

/// The endpoints `connector.sds` names.
#[derive(Debug, Clone)]
struct Endpoints {
    product: String,
    signature: String,
    /// Namespace of the SignatureService version chosen.
    signature_ns: &'static str,
    signature_version: String,
    event: String,
}

/// A Konnektor client. Cheap to clone; discovery is done once per client.
#[derive(Clone)]
pub struct Client {
    settings: Arc<Settings>,
    http: reqwest::Client,
    endpoints: Arc<tokio::sync::OnceCell<Endpoints>>,
}

impl Client {
    pub fn new(settings: Settings) -> Result<Self, KonnektorError> {
        if !(settings.base_url.starts_with("http://") || settings.base_url.starts_with("https://"))
        {
            return Err(KonnektorError::Config(
                "Adresse muss mit https:// oder http:// beginnen".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .danger_accept_invalid_certs(settings.accept_invalid_certs);
        if let Auth::ClientCert { pem } = &settings.auth {
            let identity = reqwest::Identity::from_pem(pem).map_err(|_| {
                KonnektorError::Config("Client-Zertifikat (PEM mit Schlüssel) unlesbar".into())
            })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| KonnektorError::Config(e.to_string()))?;
        Ok(Self {
            settings: Arc::new(settings),
            http,
            endpoints: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.settings.auth {
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
            Auth::None | Auth::ClientCert { .. } => request,
        }
    }

    async fn endpoints(&self) -> Result<&Endpoints, KonnektorError> {
        self.endpoints.get_or_try_init(|| self.discover()).await
    }

    /// `GET connector.sds`.
    async fn discover(&self) -> Result<Endpoints, KonnektorError> {
        let url = format!(
            "{}/connector.sds",
            self.settings.base_url.trim_end_matches('/')
        );
        let response = self
            .authorized(self.http.get(&url))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(KonnektorError::Config(format!(
                "Anmeldung am Konnektor abgelehnt (HTTP {}): bitte Benutzer/Passwort bzw. Client-Zertifikat prüfen",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(KonnektorError::Protocol(format!(
                "connector.sds: HTTP {}",
                response.status().as_u16()
            )));
        }
        let body = response.bytes().await.map_err(transport)?;
        let root = soap::parse(&body).map_err(KonnektorError::Protocol)?;
        endpoints_of(&root, self.settings.base_url.starts_with("https://"))
    }

    /// One SOAP call; a fault is an error.
    async fn call(&self, url: &str, action: &str, body: &str) -> Result<Element, KonnektorError> {
        let request = self
            .http
            .post(url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{action}\""))
            .body(soap::envelope(body));
        let response = self.authorized(request).send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(KonnektorError::Config(format!(
                "Anmeldung am Konnektor abgelehnt (HTTP {}): bitte Benutzer/Passwort bzw. Client-Zertifikat prüfen",
                status.as_u16()
            )));
        }
        let root = soap::parse(&bytes)
            .map_err(|e| KonnektorError::Protocol(format!("HTTP {}: {e}", status.as_u16())))?;
        if let Some(fault) = soap::fault(&root) {
            return Err(KonnektorError::of_fault(fault));
        }
        if !status.is_success() {
            return Err(KonnektorError::Protocol(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        soap::body_of(&root)
            .cloned()
            .ok_or_else(|| KonnektorError::Protocol("SOAP-Body leer".into()))
    }

    /// The configured card: `(handle, holder name)`.
    async fn card(&self) -> Result<(String, Option<String>), KonnektorError> {
        let endpoints = self.endpoints().await?;
        let s = &self.settings;
        let answer = self
            .call(
                &endpoints.event,
                &format!("{}#GetCards", soap::EVT),
                &soap::get_cards(&s.context, s.card),
            )
            .await?;
        let cards = answer
            .find("Cards")
            .map(|c| c.children("Card").collect::<Vec<_>>());
        let card = cards.unwrap_or_default().into_iter().find(|c| {
            c.text_of("CardType") == Some(s.card.code())
                && s.iccsn
                    .as_deref()
                    .is_none_or(|i| c.text_of("Iccsn") == Some(i))
        });
        let card = card.ok_or(KonnektorError::CardNotInserted)?;
        let handle = card
            .text_of("CardHandle")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| KonnektorError::Protocol("CardHandle fehlt".into()))?;
        let holder = card.text_of("CardHolderName").map(str::to_owned);
        Ok((handle.to_owned(), holder))
    }

    /// connector.sds, the card and (7.5) the signature mode, for the admin's "Verbindung testen".
    pub async fn status(&self) -> Result<Status, KonnektorError> {
        let endpoints = self.endpoints().await?.clone();
        let (handle, card_holder) = self.card().await?;
        let comfort_available = endpoints.signature_ns == soap::SIG_75
            && match self.signature_mode_answer(&endpoints, &handle).await {
                Ok(answer) => answer.text_of("ComfortSignatureStatus") == Some("ENABLED"),
                Err(e) => {
                    tracing::debug!(error = %e, "GetSignatureMode failed; Komfortsignatur counted as unavailable");
                    false
                }
            };
        Ok(Status {
            product: endpoints.product,
            comfort_available,
            signature_service_version: endpoints.signature_version,
            card_holder,
            card_kind: self.settings.card,
        })
    }

    /// Signs the documents in one `SignDocument` call (see the module docs). Returns one
    /// [`Signed`] per document, in input order.
    pub async fn sign(&self, documents: &[ToSign]) -> Result<Vec<Signed>, KonnektorError> {
        if documents.len() > MAX_BATCH {
            return Err(KonnektorError::Config(format!(
                "höchstens {MAX_BATCH} Dokumente je Stapelsignatur"
            )));
        }
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = std::collections::HashSet::new();
        if let Some(d) = documents
            .iter()
            .find(|d| !ids.insert(d.request_id.as_str()))
        {
            return Err(KonnektorError::Config(format!(
                "RequestID {} doppelt im Stapel",
                d.request_id
            )));
        }
        let endpoints = self.endpoints().await?;
        let (handle, _) = self.card().await?;
        let ctx = &self.settings.context;
        let ns = endpoints.signature_ns;
        let job = self
            .call(
                &endpoints.signature,
                &format!("{ns}#GetJobNumber"),
                &soap::get_job_number(ns, ctx),
            )
            .await?;
        let job_number = job
            .text_of("JobNumber")
            .ok_or_else(|| KonnektorError::Protocol("JobNumber fehlt".into()))?
            .to_owned();
        let answer = self
            .call(
                &endpoints.signature,
                &format!("{ns}#SignDocument"),
                &soap::sign_document(ns, &handle, ctx, &job_number, documents),
            )
            .await?;
        Ok(sign_responses(&answer, documents))
    }

    /// 7.5: the card's signature mode.
    pub async fn signature_mode(&self) -> Result<SignatureMode, KonnektorError> {
        let answer = self.card_operation("GetSignatureMode").await?;
        let session = answer.find("SessionInfo");
        Ok(mode_of(
            session.and_then(|s| s.text_of("SignatureMode")),
            session.and_then(|s| s.text_of("CountRemaining")),
        ))
    }

    /// 7.5: starts a Komfortsignatur (one PIN entry for up to 250 signatures).
    pub async fn activate_comfort(&self) -> Result<SignatureMode, KonnektorError> {
        if self.settings.context.user_id.is_none() {
            return Err(KonnektorError::Config(
                "Komfortsignatur braucht einen Benutzer (UserId)".into(),
            ));
        }
        let answer = self.card_operation("ActivateComfortSignature").await?;
        Ok(mode_of(answer.text_of("SignatureMode"), None))
    }

    async fn signature_mode_answer(
        &self,
        endpoints: &Endpoints,
        handle: &str,
    ) -> Result<Element, KonnektorError> {
        self.call(
            &endpoints.signature,
            &format!("{}#GetSignatureMode", soap::SIG_75),
            &soap::card_operation("GetSignatureMode", handle, &self.settings.context),
        )
        .await
    }

    async fn card_operation(&self, operation: &str) -> Result<Element, KonnektorError> {
        let endpoints = self.endpoints().await?;
        if endpoints.signature_ns != soap::SIG_75 {
            return Err(KonnektorError::Config(
                "Komfortsignatur erst ab SignatureService 7.5".into(),
            ));
        }
        let (handle, _) = self.card().await?;
        self.call(
            &endpoints.signature,
            &format!("{}#{operation}", soap::SIG_75),
            &soap::card_operation(operation, &handle, &self.settings.context),
        )
        .await
    }
}

fn mode_of(mode: Option<&str>, remaining: Option<&str>) -> SignatureMode {
    match mode {
        Some("COMFORT") => SignatureMode::Comfort {
            remaining: remaining.and_then(|r| r.parse().ok()),
        },
        _ => SignatureMode::Pin,
    }
}

fn transport(e: reqwest::Error) -> KonnektorError {
    if e.is_timeout() {
        KonnektorError::Timeout
    } else {
        KonnektorError::Unreachable(if e.is_connect() {
            "Verbindung abgelehnt".into()
        } else {
            "Verbindung abgebrochen".into()
        })
    }
}

/// The SignatureService (7.5, else 7.4) and EventService endpoints of a `ConnectorServices`.
fn endpoints_of(root: &Element, tls: bool) -> Result<Endpoints, KonnektorError> {
    let product = root
        .find("ProductName")
        .or_else(|| root.find("ProductTypeInformation"))
        .map(|p| p.text.trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "Konnektor".into());
    let services: Vec<&Element> = root
        .find("ServiceInformation")
        .map(|s| s.children("Service").collect())
        .unwrap_or_default();
    let version_of = |name: &str, ns: &str| {
        services
            .iter()
            .filter(|s| s.attr("Name") == Some(name))
            .flat_map(|s| s.find("Versions").into_iter())
            .flat_map(|v| v.children("Version"))
            .find(|v| v.attr("TargetNamespace") == Some(ns))
            .and_then(|v| {
                let preferred = if tls { "EndpointTLS" } else { "Endpoint" };
                let other = if tls { "Endpoint" } else { "EndpointTLS" };
                let location = v
                    .child(preferred)
                    .or_else(|| v.child(other))
                    .and_then(|e| e.attr("Location"))?;
                Some((
                    location.to_owned(),
                    v.attr("Version").unwrap_or("").to_owned(),
                ))
            })
    };
    let (signature_ns, (signature, signature_version)) =
        version_of("SignatureService", soap::SIG_75)
            .map(|v| (soap::SIG_75, v))
            .or_else(|| version_of("SignatureService", soap::SIG_74).map(|v| (soap::SIG_74, v)))
            .ok_or_else(|| {
                KonnektorError::Protocol(
                    "connector.sds nennt keinen SignatureService 7.4/7.5".into(),
                )
            })?;
    let (event, _) = version_of("EventService", soap::EVT).ok_or_else(|| {
        KonnektorError::Protocol("connector.sds nennt keinen EventService 7.2".into())
    })?;
    Ok(Endpoints {
        product,
        signature,
        signature_ns,
        signature_version,
        event,
    })
}

/// One [`Signed`] per document from a `SignDocumentResponse`.
fn sign_responses(answer: &Element, documents: &[ToSign]) -> Vec<Signed> {
    use base64::Engine;
    documents
        .iter()
        .map(|d| {
            let response = answer
                .children("SignResponse")
                .find(|r| r.attr("RequestID") == Some(d.request_id.as_str()));
            let Some(response) = response else {
                return Signed::Failed {
                    request_id: d.request_id.clone(),
                    message: "Konnektor hat für dieses Dokument nicht geantwortet".into(),
                };
            };
            let status = response.child("Status");
            let ok = status.and_then(|s| s.text_of("Result")) == Some("OK");
            let signature = response
                .find("Base64Signature")
                .map(|s| s.text.split_whitespace().collect::<String>())
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
            match (ok, signature) {
                (true, Some(p7s)) => Signed::Ok {
                    request_id: d.request_id.clone(),
                    p7s,
                },
                _ => Signed::Failed {
                    request_id: d.request_id.clone(),
                    message: status
                        .and_then(|s| s.find("ErrorText"))
                        .map(|e| e.text.trim().to_owned())
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| "Konnektor hat nicht signiert".into()),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
