//! A test Konnektor for tests, the demo (`serve --demo`) and `au-relay fake-konnektor`: the
//! operations AU-Relay uses, answered as the gematik schemas describe them, signing for real
//! (CMS `SignedData`, enveloping, OpenSSL) with a test eHBA and a test SMC-B certificate and key
//! generated at start. It is no Konnektor: no card terminal, no PIN, no TSL.
//!
//! - `GET /connector.sds`: SignatureService 7.5.6 and EventService 7.2 at this address.
//! - `POST /ws/EventService`: `GetCards` (one HBA, one SMC-B; none with `card_not_inserted`).
//! - `POST /ws/SignatureService`: `GetJobNumber`, `SignDocument` (any number of `SignRequest`),
//!   `GetSignatureMode`, `ActivateComfortSignature`.
//! - `PUT /control/fault` with `none`, `card_not_inserted`, `pin_blocked`, `pin_not_entered`,
//!   `timeout` (`SignDocument` answers only after 10 minutes) or `bad_context`;
//!   `GET /control/totals`: `{"sign_calls": n, "documents": m}`.
//!
//! Only the context of [`FakeKonnektor::context`] is known; another is refused with 4004, 4005
//! or 4006 (Mandant, Clientsystem, Arbeitsplatz unknown). The faults carry the gematik codes and
//! texts of a Konnektor (see [`super::codes`]): 4008 card not inserted, 4063 PIN blocked, 4049
//! cancelled by the user. A `SignDocument` whose elements are not in the schema's order is
//! refused with 4000 (Syntaxfehler).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::soap::{self, Element};
use super::{codes, CardKind, Context};

/// Signatures per Komfortsignatur session (`SIG:CountType` is 0..250).
const MAX_COMFORT: u32 = 250;

/// What the test Konnektor answers instead of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    CardNotInserted,
    PinBlocked,
    PinNotEntered,
    /// `SignDocument` answers only after 10 minutes.
    Timeout,
    BadContext,
}

impl Fault {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "none" => Self::None,
            "card_not_inserted" => Self::CardNotInserted,
            "pin_blocked" => Self::PinBlocked,
            "pin_not_entered" => Self::PinNotEntered,
            "timeout" => Self::Timeout,
            "bad_context" => Self::BadContext,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::CardNotInserted => "card_not_inserted",
            Self::PinBlocked => "pin_blocked",
            Self::PinNotEntered => "pin_not_entered",
            Self::Timeout => "timeout",
            Self::BadContext => "bad_context",
        }
    }
}

/// A test card: its certificate and key.
struct TestCard {
    handle: &'static str,
    kind: CardKind,
    holder: &'static str,
    iccsn: &'static str,
    certificate: X509,
    key: PKey<Private>,
}

#[derive(Debug, Default)]
struct Counters {
    sign_calls: u64,
    documents: u64,
    jobs: u64,
    /// Signatures left in the Komfortsignatur session, if one is active.
    comfort: Option<u32>,
}

struct Shared {
    fault: Mutex<Fault>,
    counters: Mutex<Counters>,
    cards: Vec<TestCard>,
    base_url: String,
}

/// Handle of a running test Konnektor.
#[derive(Clone)]
pub struct FakeKonnektor {
    shared: Arc<Shared>,
    pub port: u16,
}

impl FakeKonnektor {
    /// Starts on `127.0.0.1:port` (0 = any free port) on the current actix/tokio runtime.
    pub fn start(port: u16) -> std::io::Result<(Self, actix_web::dev::Server)> {
        Self::start_on("127.0.0.1", port)
    }

    pub fn start_on(host: &str, port: u16) -> std::io::Result<(Self, actix_web::dev::Server)> {
        let listener = TcpListener::bind((host, port))?;
        let port = listener.local_addr()?.port();
        let shown_host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
        let cards = vec![
            test_card(
                "HBA-1",
                CardKind::Hba,
                "Dr. med. Maria Muster",
                "80276883110000017222",
            )?,
            test_card(
                "SMCB-1",
                CardKind::SmcB,
                "Praxis Dr. Muster",
                "80276883110000017223",
            )?,
        ];
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::None),
            counters: Mutex::new(Counters::default()),
            cards,
            base_url: format!("http://{shown_host}:{port}"),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/connector.sds", web::get().to(connector_sds))
                .route("/ws/EventService", web::post().to(event_service))
                .route("/ws/SignatureService", web::post().to(signature_service))
                .route("/control/fault", web::put().to(set_fault))
                .route("/control/totals", web::get().to(totals))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok((Self { shared, port }, server))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn set_fault(&self, f: Fault) {
        if let Ok(mut fault) = self.shared.fault.lock() {
            *fault = f;
        }
    }

    /// `SignDocument` calls answered with signatures.
    pub fn sign_calls(&self) -> u64 {
        self.shared.counters.lock().map_or(0, |c| c.sign_calls)
    }

    pub fn documents_signed(&self) -> u64 {
        self.shared.counters.lock().map_or(0, |c| c.documents)
    }

    /// The test eHBA's certificate (PEM).
    pub fn hba_certificate_pem(&self) -> Vec<u8> {
        self.shared
            .cards
            .iter()
            .find(|c| c.kind == CardKind::Hba)
            .and_then(|c| c.certificate.to_pem().ok())
            .unwrap_or_default()
    }

    /// The only context this Konnektor knows.
    pub fn context(&self) -> Context {
        known_context()
    }
}

fn known_context() -> Context {
    Context {
        mandant_id: "praxis-muster".into(),
        client_system_id: "au-relay".into(),
        workplace_id: "empfang-1".into(),
        user_id: Some("dr-muster".into()),
    }
}

fn io(e: openssl::error::ErrorStack) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A self-signed test certificate (RSA 2048, SHA-256) marked TEST-ONLY.
fn test_card(
    handle: &'static str,
    kind: CardKind,
    holder: &'static str,
    iccsn: &'static str,
) -> std::io::Result<TestCard> {
    use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).map_err(io)?).map_err(io)?;
    let mut name = x509::X509NameBuilder::new().map_err(io)?;
    name.append_entry_by_text("C", "DE").map_err(io)?;
    name.append_entry_by_text("O", "AU-Relay Test-Konnektor")
        .map_err(io)?;
    let cn = match kind {
        CardKind::Hba => format!("{holder} (TEST-ONLY eHBA)"),
        CardKind::SmcB => format!("{holder} (TEST-ONLY SMC-B)"),
    };
    name.append_entry_by_text("CN", &cn).map_err(io)?;
    let name = name.build();
    let mut builder = x509::X509Builder::new().map_err(io)?;
    builder.set_version(2).map_err(io)?;
    let serial = BigNum::from_u32(rand::random::<u32>() | 1)
        .and_then(|b| b.to_asn1_integer())
        .map_err(io)?;
    builder.set_serial_number(&serial).map_err(io)?;
    builder.set_subject_name(&name).map_err(io)?;
    builder.set_issuer_name(&name).map_err(io)?;
    builder.set_pubkey(&key).map_err(io)?;
    let (from, until) = (
        Asn1Time::days_from_now(0).map_err(io)?,
        Asn1Time::days_from_now(365).map_err(io)?,
    );
    builder.set_not_before(&from).map_err(io)?;
    builder.set_not_after(&until).map_err(io)?;
    builder.sign(&key, MessageDigest::sha256()).map_err(io)?;
    Ok(TestCard {
        handle,
        kind,
        holder,
        iccsn,
        certificate: builder.build(),
        key,
    })
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

fn soap_fault(code: u32, text: &str) -> HttpResponse {
    let error_type = if code == codes::PIN_BLOCKED {
        "Security"
    } else {
        "Technical"
    };
    HttpResponse::InternalServerError()
        .content_type("text/xml; charset=utf-8")
        .body(soap::fault_envelope(code, "Error", error_type, text))
}

async fn connector_sds(shared: web::Data<Shared>) -> HttpResponse {
    let base = &shared.base_url;
    let version = |ns: &str, v: &str, path: &str| {
        format!(
            "<si:Version TargetNamespace=\"{ns}\" Version=\"{v}\"><si:Abstract>{v}</si:Abstract>\
             <si:Endpoint Location=\"{base}{path}\"/><si:EndpointTLS Location=\"{base}{path}\"/></si:Version>"
        )
    };
    xml(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ConnectorServices xmlns=\"{}\" xmlns:si=\"{}\" xmlns:pi=\"http://ws.gematik.de/int/version/ProductInformation/v1.1\">\
         <pi:ProductInformation><pi:InformationDate>2026-01-01T00:00:00Z</pi:InformationDate>\
         <pi:ProductTypeInformation><pi:ProductType>Konnektor</pi:ProductType><pi:ProductTypeVersion>5.5.0</pi:ProductTypeVersion></pi:ProductTypeInformation>\
         <pi:ProductIdentification><pi:ProductVendorID>AUREL</pi:ProductVendorID><pi:ProductCode>TESTKON</pi:ProductCode>\
         <pi:ProductVersion><pi:Local><pi:HWVersion>1.0.0</pi:HWVersion><pi:FWVersion>5.5.0</pi:FWVersion></pi:Local></pi:ProductVersion></pi:ProductIdentification>\
         <pi:ProductMiscellaneous><pi:ProductVendorName>AU-Relay</pi:ProductVendorName><pi:ProductName>AU-Relay Test-Konnektor</pi:ProductName></pi:ProductMiscellaneous>\
         </pi:ProductInformation><TLSMandatory>false</TLSMandatory><ClientAutMandatory>false</ClientAutMandatory>\
         <si:ServiceInformation>\
         <si:Service Name=\"SignatureService\"><si:Abstract>Signaturdienst</si:Abstract><si:Versions>{}</si:Versions></si:Service>\
         <si:Service Name=\"EventService\"><si:Abstract>Ereignisdienst</si:Abstract><si:Versions>{}</si:Versions></si:Service>\
         </si:ServiceInformation></ConnectorServices>",
        soap::SDS,
        soap::SI,
        version(soap::SIG_75, "7.5.6", "/ws/SignatureService"),
        version(soap::EVT, "7.2.0", "/ws/EventService"),
    ))
}

fn fault_now(shared: &Shared) -> Fault {
    shared.fault.lock().map_or(Fault::None, |f| *f)
}

/// A fault to answer: gematik code and text.
type Refusal = (u32, String);

/// The request's body element of a service in `namespace`, after the SOAPAction and context
/// checks; `Err` is the fault to answer.
fn request(
    shared: &Shared,
    http: &HttpRequest,
    namespace: &str,
    body: &[u8],
) -> Result<Element, Refusal> {
    let root = soap::parse(body).map_err(|e| (4000, format!("Syntaxfehler: {e}")))?;
    let operation = soap::body_of(&root)
        .cloned()
        .ok_or_else(|| (4000, "SOAP-Body leer".to_owned()))?;
    if !action_matches(http, namespace, &operation.name) {
        return Err((
            4000,
            "Syntaxfehler: SOAPAction passt nicht zur Operation".into(),
        ));
    }
    let known = known_context();
    let context = operation.child("Context");
    let field = |name: &str| context.and_then(|c| c.text_of(name)).unwrap_or_default();
    if field("MandantId").is_empty()
        || field("ClientSystemId").is_empty()
        || field("WorkplaceId").is_empty()
    {
        return Err((
            4021,
            "Es sind nicht alle Pflichtparameter mandantId, clientSystemId, workplaceId gefüllt"
                .into(),
        ));
    }
    if fault_now(shared) == Fault::BadContext || field("MandantId") != known.mandant_id {
        return Err((codes::UNKNOWN_MANDANT, "Ungültige Mandanten-ID".into()));
    }
    if field("ClientSystemId") != known.client_system_id {
        return Err((
            codes::UNKNOWN_CLIENT_SYSTEM,
            "Ungültige Clientsystem-ID".into(),
        ));
    }
    if field("WorkplaceId") != known.workplace_id {
        return Err((codes::UNKNOWN_WORKPLACE, "Ungültige Arbeitsplatz-ID".into()));
    }
    Ok(operation)
}

/// The `SOAPAction` header, if sent, must name the body's operation (`{namespace}#{name}`),
/// as a Konnektor dispatches by it.
fn action_matches(http: &HttpRequest, namespace: &str, operation: &str) -> bool {
    http.headers()
        .get("SOAPAction")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
        .is_none_or(|v| v == format!("{namespace}#{operation}"))
}

async fn event_service(
    shared: web::Data<Shared>,
    http: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let operation = match request(&shared, &http, soap::EVT, &body) {
        Ok(o) => o,
        Err((code, text)) => return soap_fault(code, &text),
    };
    if operation.name != "GetCards" {
        return soap_fault(4000, "Operation nicht unterstützt");
    }
    let wanted = operation.text_of("CardType");
    let cards: String = if fault_now(&shared) == Fault::CardNotInserted {
        String::new()
    } else {
        shared
            .cards
            .iter()
            .filter(|c| wanted.is_none_or(|w| w == c.kind.code()))
            .map(|c| {
                format!(
                    "<CARD:Card><CONN:CardHandle>{}</CONN:CardHandle><CARDCMN:CardType>{}</CARDCMN:CardType>\
                     <CARDCMN:Iccsn>{}</CARDCMN:Iccsn><CARDCMN:CtId>CT-1</CARDCMN:CtId><CARDCMN:SlotId>1</CARDCMN:SlotId>\
                     <CARD:InsertTime>2026-01-01T08:00:00Z</CARD:InsertTime><CARD:CardHolderName>{}</CARD:CardHolderName></CARD:Card>",
                    c.handle,
                    c.kind.code(),
                    c.iccsn,
                    soap::escape(c.holder)
                )
            })
            .collect()
    };
    xml(soap::envelope(&format!(
        "<EVT:GetCardsResponse xmlns:EVT=\"{}\" xmlns:CONN=\"{}\" xmlns:CARD=\"{}\" xmlns:CARDCMN=\"{}\">\
         <CONN:Status><CONN:Result>OK</CONN:Result></CONN:Status><CARD:Cards>{cards}</CARD:Cards></EVT:GetCardsResponse>",
        soap::EVT,
        soap::CONN,
        soap::CARD,
        soap::CARDCMN
    )))
}

fn ok_status() -> String {
    "<CONN:Status><CONN:Result>OK</CONN:Result></CONN:Status>".into()
}

async fn signature_service(
    shared: web::Data<Shared>,
    http: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let operation = match request(&shared, &http, soap::SIG_75, &body) {
        Ok(o) => o,
        Err((code, text)) => return soap_fault(code, &text),
    };
    let open = |name: &str| {
        format!(
            "<SIG:{name} xmlns:SIG=\"{}\" xmlns:CONN=\"{}\" xmlns:dss=\"{}\">",
            soap::SIG_75,
            soap::CONN,
            soap::DSS
        )
    };
    match operation.name.as_str() {
        "GetJobNumber" => {
            let n = shared.counters.lock().map_or(0, |mut c| {
                c.jobs += 1;
                c.jobs
            });
            xml(soap::envelope(&format!(
                "{}<SIG:JobNumber>AUR-{:03}</SIG:JobNumber></SIG:GetJobNumberResponse>",
                open("GetJobNumberResponse"),
                n % 1000
            )))
        }
        "SignDocument" => sign_document(&shared, &operation, &open("SignDocumentResponse")).await,
        "GetSignatureMode" => {
            let session = shared
                .counters
                .lock()
                .ok()
                .and_then(|c| c.comfort)
                .map(|left| {
                    format!(
                        "<SIG:SessionInfo><SIG:SignatureMode>COMFORT</SIG:SignatureMode>\
                         <SIG:CountRemaining>{left}</SIG:CountRemaining>\
                         <SIG:TimeRemaining>PT24H</SIG:TimeRemaining></SIG:SessionInfo>"
                    )
                })
                .unwrap_or_default();
            xml(soap::envelope(&format!(
                "{}{}<SIG:ComfortSignatureStatus>ENABLED</SIG:ComfortSignatureStatus>\
                 <SIG:ComfortSignatureMax>250</SIG:ComfortSignatureMax>\
                 <SIG:ComfortSignatureTimer>PT24H</SIG:ComfortSignatureTimer>{session}\
                 </SIG:GetSignatureModeResponse>",
                open("GetSignatureModeResponse"),
                ok_status()
            )))
        }
        "ActivateComfortSignature" => {
            if let Ok(mut c) = shared.counters.lock() {
                c.comfort = Some(MAX_COMFORT);
            }
            xml(soap::envelope(&format!(
                "{}{}<SIG:SignatureMode>COMFORT</SIG:SignatureMode></SIG:ActivateComfortSignatureResponse>",
                open("ActivateComfortSignatureResponse"),
                ok_status()
            )))
        }
        _ => soap_fault(4000, "Operation nicht unterstützt"),
    }
}

/// Checks a `SignDocument` against the element order of SignatureService 7.5.6 (7.4 lacks
/// `Crypt`): CardHandle, Crypt?, Context, TvMode, JobNumber?, SignRequest+; each SignRequest
/// with `@RequestID`: OptionalInputs?, Document, IncludeRevocationInfo.
fn schema_order(operation: &Element) -> Result<(), String> {
    let names: Vec<&str> = operation.children.iter().map(|c| c.name.as_str()).collect();
    let mut rest = names.as_slice();
    let mut take = |name: &str, required: bool| -> Result<(), String> {
        match rest.split_first() {
            Some((first, tail)) if *first == name => {
                rest = tail;
                Ok(())
            }
            _ if required => Err(format!("{name} fehlt oder steht falsch")),
            _ => Ok(()),
        }
    };
    take("CardHandle", true)?;
    take("Crypt", false)?;
    take("Context", true)?;
    take("TvMode", true)?;
    take("JobNumber", false)?;
    if rest.is_empty() || rest.iter().any(|n| *n != "SignRequest") {
        return Err("SignRequest fehlt oder steht falsch".into());
    }
    for request in operation.children("SignRequest") {
        if request.attr("RequestID").is_none() {
            return Err("SignRequest ohne RequestID".into());
        }
        let inner: Vec<&str> = request.children.iter().map(|c| c.name.as_str()).collect();
        let inner = inner
            .strip_prefix(&["OptionalInputs"])
            .unwrap_or(&inner[..]);
        if inner != ["Document", "IncludeRevocationInfo"] {
            return Err("SignRequest: Document und IncludeRevocationInfo erwartet".into());
        }
    }
    Ok(())
}

async fn sign_document(shared: &Shared, operation: &Element, open: &str) -> HttpResponse {
    use base64::Engine;
    if let Err(text) = schema_order(operation) {
        return soap_fault(4000, &format!("Syntaxfehler: {text}"));
    }
    match fault_now(shared) {
        Fault::PinBlocked => {
            return soap_fault(codes::PIN_BLOCKED, "PIN bereits gesperrt (BLOCKED)")
        }
        Fault::PinNotEntered => {
            return soap_fault(codes::CANCELLED_BY_USER, "Abbruch durch den Benutzer")
        }
        Fault::CardNotInserted => {
            return soap_fault(
                codes::CARD_NOT_INSERTED,
                "Karte nicht als gesteckt identifiziert",
            )
        }
        Fault::Timeout => tokio::time::sleep(Duration::from_secs(600)).await,
        Fault::None | Fault::BadContext => {}
    }
    let handle = operation.text_of("CardHandle").unwrap_or_default();
    let Some(card) = shared.cards.iter().find(|c| c.handle == handle) else {
        return soap_fault(
            codes::CARD_NOT_INSERTED,
            "Karte nicht als gesteckt identifiziert",
        );
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut responses = String::new();
    let mut n = 0;
    for request in operation.children("SignRequest") {
        let id = soap::escape(request.attr("RequestID").unwrap_or_default());
        let data = request.find("Base64Data").and_then(|d| {
            b64.decode(d.text.split_whitespace().collect::<String>())
                .ok()
        });
        let signed = data.and_then(|data| {
            CmsContentInfo::sign(
                Some(&card.certificate),
                Some(&card.key),
                None,
                Some(&data),
                CMSOptions::BINARY,
            )
            .and_then(|cms| cms.to_der())
            .ok()
        });
        responses.push_str(&match signed {
            Some(der) => {
                n += 1;
                format!(
                    "<SIG:SignResponse RequestID=\"{id}\">{}<dss:SignatureObject>\
                     <dss:Base64Signature Type=\"{}\">{}</dss:Base64Signature></dss:SignatureObject></SIG:SignResponse>",
                    ok_status(),
                    soap::CMS_SIGNATURE_TYPE,
                    b64.encode(der)
                )
            }
            None => format!(
                "<SIG:SignResponse RequestID=\"{id}\"><CONN:Status><CONN:Result>ERROR</CONN:Result>{}\
                 </CONN:Status></SIG:SignResponse>",
                soap::gematik_error(4000, "Error", "Technical", "Syntaxfehler: Dokument nicht lesbar")
            ),
        });
    }
    if let Ok(mut c) = shared.counters.lock() {
        c.sign_calls += 1;
        c.documents += n;
        if let Some(left) = c.comfort.as_mut() {
            *left = left.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }
    xml(soap::envelope(&format!(
        "{open}{responses}</SIG:SignDocumentResponse>"
    )))
}

async fn set_fault(shared: web::Data<Shared>, body: String) -> HttpResponse {
    match Fault::parse(&body) {
        Some(f) => {
            if let Ok(mut fault) = shared.fault.lock() {
                *fault = f;
            }
            HttpResponse::Ok().body(f.code())
        }
        None => HttpResponse::BadRequest().body(
            "none, card_not_inserted, pin_blocked, pin_not_entered, timeout oder bad_context",
        ),
    }
}

async fn totals(shared: web::Data<Shared>) -> HttpResponse {
    let (calls, documents) = shared
        .counters
        .lock()
        .map_or((0, 0), |c| (c.sign_calls, c.documents));
    HttpResponse::Ok().json(serde_json::json!({ "sign_calls": calls, "documents": documents }))
}
