//! SOAP 1.1 for the Konnektor: an element tree with text over quick-xml, the envelope, the
//! request bodies AU-Relay sends (gematik `api-telematik`: ConnectorContext 2.0, ConnectorCommon
//! 5.0, EventService 7.2, SignatureService 7.4/7.5, TelematikError 2.0) and fault reading.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

pub(crate) const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const CONN: &str = "http://ws.gematik.de/conn/ConnectorCommon/v5.0";
pub(crate) const CCTX: &str = "http://ws.gematik.de/conn/ConnectorContext/v2.0";
pub(crate) const DSS: &str = "urn:oasis:names:tc:dss:1.0:core:schema";
pub(crate) const EVT: &str = "http://ws.gematik.de/conn/EventService/v7.2";
pub(crate) const CARDCMN: &str = "http://ws.gematik.de/conn/CardServiceCommon/v2.0";
pub(crate) const CARD: &str = "http://ws.gematik.de/conn/CardService/v8.1";
pub(crate) const GERROR: &str = "http://ws.gematik.de/tel/error/v2.0";
pub(crate) const SDS: &str = "http://ws.gematik.de/conn/ServiceDirectory/v3.1";
pub(crate) const SI: &str = "http://ws.gematik.de/conn/ServiceInformation/v2.0";
/// SignatureService 7.5 (PTV4+, with Komfortsignatur) and 7.4.
pub(crate) const SIG_75: &str = "http://ws.gematik.de/conn/SignatureService/v7.5";
pub(crate) const SIG_74: &str = "http://ws.gematik.de/conn/SignatureService/v7.4";
/// CMS (CAdES) as `dss:SignatureType`.
pub(crate) const CMS_SIGNATURE_TYPE: &str = "urn:ietf:rfc:5652";

/// Deepest element nesting read from a Konnektor answer (SOAP answers are shallow).
const MAX_DEPTH: usize = 64;

/// One element: local name, attributes (local names), text, children.
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the named child, trimmed.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The first descendant (depth first, self included) of this name.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

fn start(e: &BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| err.to_string())?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a.unescape_value().map_err(|err| err.to_string())?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

/// Parses a document into its root element (no DTD, bounded depth).
pub(crate) fn parse(bytes: &[u8]) -> Result<Element, String> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Eof => return Err("Dokument endet vor dem Wurzelelement".into()),
            Event::DocType(_) => return Err("DOCTYPE ist nicht erlaubt".into()),
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("zu tief verschachtelt".into());
                }
                stack.push(start(&e)?);
            }
            Event::Empty(e) => {
                let element = start(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.unescape().map_err(|e| e.to_string())?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("schließendes Element ohne Anfang")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            _ => {}
        }
        buf.clear();
    }
}

/// XML-escapes text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// A SOAP 1.1 envelope around one body element.
pub(crate) fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soap:Envelope xmlns:soap=\"{SOAP_ENV}\"><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// The first element inside `Body` of an envelope.
pub(crate) fn body_of(envelope: &Element) -> Option<&Element> {
    envelope.child("Body").and_then(|b| b.children.first())
}

/// `CCTX:Context` (ConnectorContext.xsd: MandantId, ClientSystemId, WorkplaceId, UserId?).
pub(crate) fn context(c: &super::Context) -> String {
    let user = c
        .user_id
        .as_deref()
        .map(|u| format!("<CONN:UserId>{}</CONN:UserId>", escape(u)))
        .unwrap_or_default();
    format!(
        "<CCTX:Context xmlns:CCTX=\"{CCTX}\" xmlns:CONN=\"{CONN}\">\
         <CONN:MandantId>{}</CONN:MandantId><CONN:ClientSystemId>{}</CONN:ClientSystemId>\
         <CONN:WorkplaceId>{}</CONN:WorkplaceId>{user}</CCTX:Context>",
        escape(&c.mandant_id),
        escape(&c.client_system_id),
        escape(&c.workplace_id),
    )
}

/// `EVT:GetCards` for one card type.
pub(crate) fn get_cards(c: &super::Context, card: super::CardKind) -> String {
    format!(
        "<EVT:GetCards xmlns:EVT=\"{EVT}\" xmlns:CARDCMN=\"{CARDCMN}\" mandant-wide=\"false\">{}\
         <CARDCMN:CardType>{}</CARDCMN:CardType></EVT:GetCards>",
        context(c),
        card.code()
    )
}

/// `SIG:GetJobNumber`.
pub(crate) fn get_job_number(ns: &str, c: &super::Context) -> String {
    format!(
        "<SIG:GetJobNumber xmlns:SIG=\"{ns}\">{}</SIG:GetJobNumber>",
        context(c)
    )
}

/// `SIG:SignDocument` in the order of SignatureService.xsd: CardHandle, (7.5: Crypt), Context,
/// TvMode, JobNumber, SignRequest+ (OptionalInputs with SignatureType and IncludeEContent,
/// Document with Base64Data, IncludeRevocationInfo).
pub(crate) fn sign_document(
    ns: &str,
    card_handle: &str,
    c: &super::Context,
    job_number: &str,
    documents: &[super::ToSign],
) -> String {
    use base64::Engine;
    let crypt = if ns == SIG_75 {
        "<SIG:Crypt>RSA_ECC</SIG:Crypt>"
    } else {
        ""
    };
    let mut requests = String::new();
    for (i, d) in documents.iter().enumerate() {
        let data = base64::engine::general_purpose::STANDARD.encode(&d.content);
        requests.push_str(&format!(
            "<SIG:SignRequest RequestID=\"{}\">\
             <SIG:OptionalInputs><dss:SignatureType>{CMS_SIGNATURE_TYPE}</dss:SignatureType>\
             <SIG:IncludeEContent>true</SIG:IncludeEContent></SIG:OptionalInputs>\
             <SIG:Document ID=\"doc-{i}\" ShortText=\"{}\">\
             <dss:Base64Data MimeType=\"text/plain; charset=utf-8\">{data}</dss:Base64Data></SIG:Document>\
             <SIG:IncludeRevocationInfo>true</SIG:IncludeRevocationInfo></SIG:SignRequest>",
            escape(&d.request_id),
            escape(&short_text(&d.short_text)),
        ));
    }
    format!(
        "<SIG:SignDocument xmlns:SIG=\"{ns}\" xmlns:CONN=\"{CONN}\" xmlns:dss=\"{DSS}\">\
         <CONN:CardHandle>{}</CONN:CardHandle>{crypt}{}<SIG:TvMode>NONE</SIG:TvMode>\
         <SIG:JobNumber>{}</SIG:JobNumber>{requests}</SIG:SignDocument>",
        escape(card_handle),
        context(c),
        escape(job_number),
    )
}

/// `SIG:GetSignatureMode` / `SIG:ActivateComfortSignature` (7.5): CardHandle, Context.
pub(crate) fn card_operation(operation: &str, card_handle: &str, c: &super::Context) -> String {
    format!(
        "<SIG:{operation} xmlns:SIG=\"{SIG_75}\" xmlns:CONN=\"{CONN}\">\
         <CONN:CardHandle>{}</CONN:CardHandle>{}</SIG:{operation}>",
        escape(card_handle),
        context(c)
    )
}

/// A SOAP fault: the codes of all gematik error traces (outermost first) and the text of the
/// first trace (else the `faultstring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub codes: Vec<u32>,
    pub text: String,
}

/// The fault in an envelope, if it is one.
pub(crate) fn fault(envelope: &Element) -> Option<Fault> {
    let fault = body_of(envelope).filter(|b| b.name == "Fault")?;
    let error = fault.find("Error");
    let traces: Vec<&Element> = error
        .map(|e| e.children("Trace").collect())
        .unwrap_or_default();
    let codes = traces
        .iter()
        .filter_map(|t| t.text_of("Code"))
        .filter_map(|c| c.parse().ok())
        .collect();
    let text = traces
        .iter()
        .filter_map(|t| t.text_of("ErrorText"))
        .find(|t| !t.is_empty())
        .or_else(|| fault.text_of("faultstring"))
        .unwrap_or("unbekannter Fehler")
        .to_owned();
    Some(Fault { codes, text })
}

/// A gematik `GERROR:Error` (TelematikError.xsd 2.0: MessageID, Timestamp, Trace with EventID,
/// Instance, LogReference, CompType, Code, Severity, ErrorType, ErrorText), as a Konnektor
/// sends it in a SOAP fault's `detail` and in a `CONN:Status`.
pub(crate) fn gematik_error(code: u32, severity: &str, error_type: &str, text: &str) -> String {
    format!(
        "<GERROR:Error xmlns:GERROR=\"{GERROR}\"><GERROR:MessageID>{}</GERROR:MessageID>\
         <GERROR:Timestamp>{}</GERROR:Timestamp><GERROR:Trace><GERROR:EventID>{}</GERROR:EventID>\
         <GERROR:Instance>au-relay-test-konnektor</GERROR:Instance>\
         <GERROR:LogReference>-</GERROR:LogReference><GERROR:CompType>Konnektor</GERROR:CompType>\
         <GERROR:Code>{code}</GERROR:Code><GERROR:Severity>{}</GERROR:Severity>\
         <GERROR:ErrorType>{}</GERROR:ErrorType><GERROR:ErrorText>{}</GERROR:ErrorText>\
         </GERROR:Trace></GERROR:Error>",
        uuid::Uuid::new_v4(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        uuid::Uuid::new_v4(),
        escape(severity),
        escape(error_type),
        escape(text),
    )
}

/// A SOAP 1.1 fault envelope with a gematik `Error`, as a Konnektor sends it.
pub(crate) fn fault_envelope(code: u32, severity: &str, error_type: &str, text: &str) -> String {
    envelope(&format!(
        "<soap:Fault><faultcode>soap:Server</faultcode><faultstring>{}</faultstring>\
         <detail>{}</detail></soap:Fault>",
        escape(text),
        gematik_error(code, severity, error_type, text)
    ))
}

/// Most characters of `SIG:ShortText` (SignatureService 7.5.6: `maxLength` 30).
const SHORT_TEXT_MAX: usize = 30;

/// The short text as Konnektors accept it (7.5.6 `SIG:ShortText`, pattern
/// `[a-zA-Z 0-9_.\-äöüÄÖÜß]*`, at most 30 characters; hardened by C_10147/C_10614): other
/// characters become a space, the rest is cut.
pub(crate) fn short_text(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " _.-äöüÄÖÜß".contains(c) {
                c
            } else {
                ' '
            }
        })
        .take(SHORT_TEXT_MAX)
        .collect();
    cleaned.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ctx() -> super::super::Context {
        super::super::Context {
            mandant_id: "m&1".into(),
            client_system_id: "cs".into(),
            workplace_id: "wp".into(),
            user_id: Some("u".into()),
        }
    }

    #[test]
    fn sign_document_follows_the_schema_order_and_namespaces() {
        let docs = [super::super::ToSign {
            request_id: "r1".into(),
            short_text: "eAU <1>".into(),
            content: b"<Bundle/>".to_vec(),
        }];
        let xml = envelope(&sign_document(SIG_75, "HBA-1", &ctx(), "ABC-123", &docs));
        let root = parse(xml.as_bytes()).unwrap();
        let body = body_of(&root).unwrap();
        assert_eq!(body.name, "SignDocument");
        let order: Vec<&str> = body.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "CardHandle",
                "Crypt",
                "Context",
                "TvMode",
                "JobNumber",
                "SignRequest"
            ]
        );
        let context = body.child("Context").unwrap();
        assert_eq!(
            context.text_of("MandantId"),
            Some("m&1"),
            "escaped and read back"
        );
        let request = body.child("SignRequest").unwrap();
        assert_eq!(request.attr("RequestID"), Some("r1"));
        let inner: Vec<&str> = request.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            inner,
            ["OptionalInputs", "Document", "IncludeRevocationInfo"]
        );
        let options = request.child("OptionalInputs").unwrap();
        assert_eq!(options.text_of("SignatureType"), Some(CMS_SIGNATURE_TYPE));
        assert_eq!(options.text_of("IncludeEContent"), Some("true"));
        let document = request.child("Document").unwrap();
        assert_eq!(
            document.attr("ShortText"),
            Some("eAU  1"),
            "restricted to the SIG:ShortText pattern"
        );
        let data = document.child("Base64Data").unwrap();
        assert_eq!(data.attr("MimeType"), Some("text/plain; charset=utf-8"));
        assert_eq!(data.text, "PEJ1bmRsZS8+", "the exact bytes, Base64");
        assert_eq!(request.text_of("IncludeRevocationInfo"), Some("true"));
        assert_eq!(body.text_of("TvMode"), Some("NONE"));
        assert_eq!(body.text_of("JobNumber"), Some("ABC-123"));
        let ctx_order: Vec<&str> = context.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            ctx_order,
            ["MandantId", "ClientSystemId", "WorkplaceId", "UserId"]
        );
        assert!(xml.contains(&format!("xmlns:SIG=\"{SIG_75}\"")));
        assert!(xml.contains(&format!("xmlns:dss=\"{DSS}\"")));
        // 7.4 has no Crypt element.
        let v74 = envelope(&sign_document(SIG_74, "HBA-1", &ctx(), "ABC-123", &docs));
        assert!(!v74.contains("Crypt"));
    }

    #[test]
    fn a_fault_gives_the_gematik_code_and_text() {
        let xml = fault_envelope(
            4008,
            "Error",
            "Technical",
            "Karte nicht als gesteckt identifiziert",
        );
        let f = fault(&parse(xml.as_bytes()).unwrap()).unwrap();
        assert_eq!(f.codes, [4008]);
        assert_eq!(f.text, "Karte nicht als gesteckt identifiziert");
        let error = body_of(&parse(xml.as_bytes()).unwrap())
            .and_then(|b| b.find("Error"))
            .cloned()
            .unwrap();
        let order: Vec<&str> = error.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(order, ["MessageID", "Timestamp", "Trace"]);
        let trace: Vec<&str> = error.children[2]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            trace,
            [
                "EventID",
                "Instance",
                "LogReference",
                "CompType",
                "Code",
                "Severity",
                "ErrorType",
                "ErrorText"
            ]
        );
    }

    #[test]
    fn every_trace_code_is_read_and_a_bare_fault_keeps_its_faultstring() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
            <faultcode>s:Server</faultcode><faultstring>Fehler</faultstring><detail>
            <e:Error xmlns:e="http://ws.gematik.de/tel/error/v2.0"><e:MessageID>m</e:MessageID>
            <e:Timestamp>2026-01-01T00:00:00Z</e:Timestamp>
            <e:Trace><e:Code>4000</e:Code><e:ErrorText>Signatur fehlgeschlagen</e:ErrorText></e:Trace>
            <e:Trace><e:Code>4063</e:Code><e:ErrorText>PIN bereits gesperrt (BLOCKED)</e:ErrorText></e:Trace>
            </e:Error></detail></s:Fault></s:Body></s:Envelope>"#;
        let f = fault(&parse(xml.as_bytes()).unwrap()).unwrap();
        assert_eq!(f.codes, [4000, 4063]);
        assert_eq!(f.text, "Signatur fehlgeschlagen");
        let bare = envelope("<soap:Fault><faultcode>soap:Client</faultcode><faultstring>kaputt</faultstring></soap:Fault>");
        let f = fault(&parse(bare.as_bytes()).unwrap()).unwrap();
        assert!(f.codes.is_empty());
        assert_eq!(f.text, "kaputt");
    }

    #[test]
    fn the_short_text_keeps_to_the_schema_pattern() {
        assert_eq!(
            short_text("eAU Müller, 12.03.-14.03."),
            "eAU Müller  12.03.-14.03."
        );
        assert_eq!(short_text(&"x".repeat(40)).chars().count(), 30);
        assert_eq!(short_text("<script>"), " script");
    }

    #[test]
    fn doctype_and_deep_nesting_are_refused() {
        assert!(parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><x/>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
