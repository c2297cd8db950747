//! What a mail read from the practice's KIM mailbox is, and which sent document it refers to:
//! a delivery status notification (RFC 3464; parsed leniently, the `Action` field trusted), an
//! insurer error message (`eAU;Fehler-Kasse;V1.2`, a KBV OperationOutcome), an error mail of the
//! KIM service (`X-KIM-Fehlermeldung`), or something else (kept for the operator).

use mail_parser::{MessageParser, MimeHeaders, PartType};
use uuid::Uuid;

use super::{dienstkennung, normalise_message_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dsn,
    InsurerError,
    KimError,
    Other,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Dsn => "dsn",
            Self::InsurerError => "insurer_error",
            Self::KimError => "kim_error",
            Self::Other => "other",
        }
    }
}

/// The `Action` of a DSN for the recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `delivered` (also `relayed`/`expanded`: handed on by the recipient's server).
    Delivered,
    Failed,
    Delayed,
}

/// A classified inbound mail.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub kind: Kind,
    /// Its own Message-ID (normalised).
    pub message_id: Option<String>,
    /// Message-IDs of sent mails it names (normalised), best first.
    pub refers_to: Vec<String>,
    /// Document UUIDs it names (subject `EEAU0_<uuid>`, `Bundle-Identifier`).
    pub document_ids: Vec<Uuid>,
    /// `Original-Envelope-Id` of a DSN.
    pub envelope_id: Option<String>,
    pub action: Option<Action>,
    /// DSN `Status` and diagnostic, or the KIM error code.
    pub status: Option<String>,
    /// The KBV error code of an insurer error message, and its text.
    pub kbv_code: Option<u16>,
    pub kbv_display: Option<String>,
    /// "Achtung möglicher Virenbefall" with code 101/102 (TA P5-04 AK10).
    pub virus: bool,
    /// German one-line summary, no health data.
    pub summary: String,
}

impl Inbound {
    /// A failure (a failed receipt, an error of the KIM service, the insurer's error message):
    /// only what a failure does to its delivery depends on [`InboundFacts`] (the first mail's
    /// age in the Land's working days, a declared Störung). For any other mail storage does
    /// not read them and hands the rule [`InboundFacts::bare`].
    pub fn is_failure(&self) -> bool {
        matches!(
            (self.kind, self.action),
            (Kind::Dsn, Some(Action::Failed)) | (Kind::KimError, _) | (Kind::InsurerError, _)
        )
    }
}

/// What storage knows of the delivery a mail refers to, for the rule that decides what the
/// mail does to it (`queue::policy::after_inbound`).
#[derive(Debug, Clone, Copy)]
pub struct InboundFacts {
    /// A Störung is declared for the insurer or the practice.
    pub outage: bool,
    /// When the delivery's first KIM mail was made.
    pub first_mail_at: Option<chrono::NaiveDateTime>,
    /// The practice's Land (its working days).
    pub land: Option<crate::domain::Land>,
    pub at: chrono::NaiveDateTime,
    /// How long after an error of the KIM service itself the next try comes.
    pub retry_every: chrono::Duration,
}

impl InboundFacts {
    /// Facts of a mail that is no failure (see [`Inbound::is_failure`]): nothing read.
    pub fn bare(at: chrono::NaiveDateTime, retry_every: chrono::Duration) -> Self {
        Self {
            outage: false,
            first_mail_at: None,
            land: None,
            at,
            retry_every,
        }
    }
}

/// What a mail does to its delivery: storage writes exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundStep {
    /// The move, and the states it is made from (the others stay as they are); `None`: the
    /// mail is only recorded in the attempt history.
    pub moves: Option<(
        &'static [crate::domain::DeliveryState],
        crate::domain::DeliveryState,
    )>,
    /// The next attempt then, `at` plus this.
    pub next_in: chrono::Duration,
    /// The delivery's last error after the move.
    pub error: Option<String>,
    /// The mail is the receipt: the delivery and its KIM mail are marked received at `at`.
    pub receipt: bool,
    /// The attempt row: outcome and detail.
    pub outcome: &'static str,
    pub detail: String,
}

/// The rule that decides a mail's step (`None`: the mail changes nothing).
pub type InboundRule = fn(&Inbound, &InboundFacts) -> Option<InboundStep>;

/// The value of `Key:` in a header-like block, case-insensitive, first occurrence per block.
fn fields(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `EEAU0_<uuid>`, `TEAU0_Storno_<uuid>` … in a subject or file name.
fn document_id_in(text: &str) -> Option<Uuid> {
    let at = text.find("EAU0_")?;
    let rest = &text[at + 5..];
    let rest = rest.strip_prefix("Storno_").unwrap_or(rest);
    rest.get(..36).and_then(|u| Uuid::parse_str(u).ok())
}

/// The text after `marker` up to the next `value="…"`.
fn value_after<'a>(xml: &'a str, marker: &str) -> Option<&'a str> {
    let after = &xml[xml.find(marker)? + marker.len()..];
    let value = &after[after.find("value=\"")? + 7..];
    Some(&value[..value.find('"')?])
}

fn message_ids(value: &str) -> Vec<String> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| s.contains('@'))
        .map(normalise_message_id)
        .collect()
}

/// The references of a KBV error message (`KBV_PR_EAU_health_insurance_Practitioner`).
struct Outcome {
    code: Option<u16>,
    display: Option<String>,
    message_id: Option<String>,
    bundle: Option<Uuid>,
}

fn outcome(xml: &str) -> Option<Outcome> {
    if !xml.contains("OperationOutcome") {
        return None;
    }
    Some(Outcome {
        code: crate::queue::kbv_error_code(xml),
        display: value_after(xml, "KBV_CS_SFHIR_EAU_AU_ERROR_KASSE")
            .and_then(|_| value_after(xml, "<display"))
            .map(str::to_owned),
        message_id: value_after(xml, "KBV_NS_EAU_Message_ID_KIM").map(normalise_message_id),
        bundle: value_after(xml, "urn:ietf:rfc:3986")
            .and_then(|v| Uuid::parse_str(v.trim_start_matches("urn:uuid:")).ok()),
    })
}

/// Classifies one raw mail.
pub fn classify(raw: &[u8]) -> Inbound {
    let mut inbound = Inbound {
        kind: Kind::Other,
        message_id: None,
        refers_to: Vec::new(),
        document_ids: Vec::new(),
        envelope_id: None,
        action: None,
        status: None,
        kbv_code: None,
        kbv_display: None,
        virus: false,
        summary: "Nachricht ohne Bezug zu einem Dokument".into(),
    };
    let Some(message) = MessageParser::default().parse(raw) else {
        inbound.summary = "nicht lesbare Nachricht".into();
        return inbound;
    };
    inbound.message_id = message.message_id().map(normalise_message_id);
    for value in [message.in_reply_to(), message.references()] {
        if let Some(text) = value.as_text() {
            inbound.refers_to.extend(message_ids(text));
        }
        if let Some(list) = value.as_text_list() {
            inbound
                .refers_to
                .extend(list.iter().flat_map(|t| message_ids(t)));
        }
    }
    if let Some(id) = message.subject().and_then(document_id_in) {
        inbound.document_ids.push(id);
    }
    let dienst = message
        .header_raw("X-KIM-Dienstkennung")
        .map(str::trim)
        .unwrap_or_default();
    let kim_error = message.header_raw("X-KIM-Fehlermeldung").map(str::trim);
    let is_report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    let mut dsn_fields = None;
    let mut outcome_found = None;
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map_or((String::new(), String::new()), |ct| {
                (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or_default().to_ascii_lowercase(),
                )
            });
        match (ctype.as_str(), subtype.as_str(), &part.body) {
            ("message", "delivery-status" | "global-delivery-status", _) => {
                dsn_fields = Some(fields(&String::from_utf8_lossy(part.contents())));
            }
            ("text", "rfc822-headers" | "global-headers", _) => {
                returned_headers(&mut inbound, part.contents());
            }
            (_, _, PartType::Message(original)) => {
                if let Some(id) = original.message_id() {
                    inbound.refers_to.push(normalise_message_id(id));
                }
                if let Some(id) = original.subject().and_then(document_id_in) {
                    inbound.document_ids.push(id);
                }
            }
            _ => {
                let text = String::from_utf8_lossy(part.contents());
                if let Some(o) = outcome(&text) {
                    outcome_found = Some(o);
                }
                if let Some(id) = part.attachment_name().and_then(document_id_in) {
                    if !part.attachment_name().is_some_and(|n| n.contains("Fehler")) {
                        inbound.document_ids.push(id);
                    }
                }
            }
        }
    }
    if let Some(f) = dsn_fields.filter(|_| is_report || kim_error.is_none()) {
        dsn(&mut inbound, &f);
    } else if dienst.starts_with("eAU;Fehler-Kasse")
        || (outcome_found.is_some() && kim_error.is_none())
    {
        if let Some(o) = outcome_found {
            insurer_error(&mut inbound, o, &message);
        } else {
            inbound.kind = Kind::InsurerError;
            inbound.summary = format!(
                "Fehlermeldung der Kasse ({dienstkennung}) ohne lesbaren Inhalt",
                dienstkennung = dienstkennung::FEHLER_KASSE
            );
        }
    } else if let Some(code) = kim_error {
        inbound.kind = Kind::KimError;
        inbound.status = Some(code.to_owned());
        inbound.summary = format!("Fehlermeldung des KIM-Dienstes (X-KIM-Fehlermeldung {code})");
    }
    if let Some(warning) = client_module_warning(&message) {
        inbound.summary = format!("{} – {warning}", inbound.summary);
    }
    inbound.refers_to.dedup();
    inbound.document_ids.dedup();
    inbound
}

/// What the client module says about decryption and signature of a mail it delivered
/// (gemSpec_CM_KOMLE): anything but success is shown with the mail, which is still used (a
/// receipt with an integrity warning still proves the arrival, A_23165).
fn client_module_warning(message: &mail_parser::Message<'_>) -> Option<String> {
    let codes = |name: &str| -> Vec<String> {
        message
            .header_raw(name)
            .map(|v| {
                v.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let decryption = codes("X-KIM-DecryptionResult");
    if decryption.iter().any(|c| c != "00") {
        let why = match decryption.iter().find(|c| *c != "00").map(String::as_str) {
            Some("01") => "Schlüssel nicht verfügbar: ist die Karte (SMC-B/eHBA) gesteckt?",
            Some("03") => "Konnektor nicht erreichbar",
            _ => "falsches Format",
        };
        return Some(format!("nicht entschlüsselt ({why})"));
    }
    let integrity = codes("X-KIM-IntegrityCheckResult");
    if !integrity.is_empty() && !integrity.iter().any(|c| c == "01" || c == "07") {
        return Some(format!(
            "Warnung: KIM-Signatur nicht bestätigt (X-KIM-IntegrityCheckResult {})",
            integrity.join(",")
        ));
    }
    None
}

fn returned_headers(inbound: &mut Inbound, headers: &[u8]) {
    let f = fields(&String::from_utf8_lossy(headers));
    if let Some(id) = field(&f, "message-id") {
        inbound.refers_to.push(normalise_message_id(id));
    }
    if let Some(id) = field(&f, "subject").and_then(document_id_in) {
        inbound.document_ids.push(id);
    }
}

fn dsn(inbound: &mut Inbound, f: &[(String, String)]) {
    inbound.kind = Kind::Dsn;
    inbound.envelope_id = field(f, "original-envelope-id").map(str::to_owned);
    // The first recipient's action decides: AU-Relay sends each document to one recipient.
    let action = field(f, "action").map(str::to_ascii_lowercase);
    inbound.action = match action.as_deref().map(str::trim) {
        Some("delivered" | "relayed" | "expanded") => Some(Action::Delivered),
        Some("failed") => Some(Action::Failed),
        Some("delayed") => Some(Action::Delayed),
        _ => None,
    };
    let status = field(f, "status").unwrap_or("?");
    let diagnostic = field(f, "diagnostic-code").unwrap_or_default();
    inbound.status = Some(format!("{status} {diagnostic}").trim().to_owned());
    // `dns; host`: the name without its type.
    let reporter =
        field(f, "reporting-mta").map_or("unbekannt", |r| r.rsplit(';').next().unwrap_or(r).trim());
    inbound.summary = match inbound.action {
        Some(Action::Delivered) => format!("Zustellbestätigung ({reporter})"),
        Some(Action::Failed) => format!("Zustellung gescheitert: {status} ({reporter})"),
        Some(Action::Delayed) => format!("Zustellung verzögert: {status} ({reporter})"),
        None => format!("Zustellbericht ohne Ergebnis ({reporter})"),
    };
}

fn insurer_error(inbound: &mut Inbound, o: Outcome, message: &mail_parser::Message<'_>) {
    inbound.kind = Kind::InsurerError;
    if let Some(id) = o.message_id {
        inbound.refers_to.insert(0, id);
    }
    if let Some(id) = o.bundle {
        inbound.document_ids.insert(0, id);
    }
    // The subject names the error message itself, not the document.
    if let Some(own) = message.subject().and_then(document_id_in) {
        if message
            .subject()
            .is_some_and(|s| s.contains("EAU0_Fehler_"))
        {
            inbound.document_ids.retain(|d| *d != own);
        }
    }
    let body = message.body_text(0).unwrap_or_default();
    inbound.virus = matches!(o.code, Some(101 | 102))
        && body
            .trim()
            .eq_ignore_ascii_case("Achtung möglicher Virenbefall");
    inbound.kbv_code = o.code;
    inbound.kbv_display = o.display.clone();
    let code = o.code.map_or_else(|| "?".into(), |c| c.to_string());
    inbound.summary = if inbound.virus {
        format!("Fehlermeldung der Kasse: KBV {code} – Achtung, möglicher Virenbefall gemeldet")
    } else {
        format!(
            "Fehlermeldung der Kasse: KBV {code} {}",
            o.display.unwrap_or_default()
        )
        .trim()
        .to_owned()
    };
}

/// A KBV error message (`KBV_PR_EAU_health_insurance_Practitioner` 1.2) naming a document by
/// its Bundle-Identifier, or a KIM mail by its Message-ID: what an insurer answers (used by
/// the insurer robot of the tests and the demo).
pub fn error_message(id: Uuid, code: u16, display: &str, reference: &Reference<'_>) -> String {
    let identifier = match reference {
        Reference::Bundle(uuid) => format!(
            "<extension url=\"Bundle-Identifier\"><valueIdentifier><system value=\"urn:ietf:rfc:3986\"/><value value=\"urn:uuid:{uuid}\"/></valueIdentifier></extension>"
        ),
        Reference::MessageId(mid) => format!(
            "<extension url=\"Message-ID\"><valueIdentifier><system value=\"https://fhir.kbv.de/NamingSystem/KBV_NS_EAU_Message_ID_KIM\"/><value value=\"{}\"/></valueIdentifier></extension>",
            mid.trim_start_matches('<').trim_end_matches('>')
        ),
    };
    format!(
        "<OperationOutcome xmlns=\"http://hl7.org/fhir\"><id value=\"{id}\"/><meta><profile value=\"https://fhir.kbv.de/StructureDefinition/KBV_PR_EAU_health_insurance_Practitioner|1.2\"/></meta>\
<issue><extension url=\"https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_health_insurance_Practitioner_Identifier\">{identifier}</extension>\
<severity value=\"fatal\"/><code value=\"processing\"/><details><coding><system value=\"https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_EAU_AU_ERROR_KASSE\"/>\
<code value=\"{code}\"/><display value=\"{display}\"/></coding></details></issue></OperationOutcome>"
    )
}

/// What an error message names.
#[derive(Debug, Clone)]
pub enum Reference<'a> {
    Bundle(Uuid),
    MessageId(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The KIM DSN example (DSN-EX), with its quirks: no `rfc822;` prefix, status 4.0.0 for
    /// "delivered", `In-Reply-To` carrying the original Message-ID.
    const KIM_DSN: &str = "From: Mail Delivery Subsystem <mds@xyz.kim.telematik>\r\n\
Subject: Zustellbestaetigung\r\n\
In-Reply-To: <96d6a790-afc2-4556-ab73-301e51a7bf30@KIM.de>\r\n\
Message-ID: <dsn-1@xyz.kim.telematik>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nZugestellt.\r\n\
--b1\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; xyz.kim.telematik\r\n\r\n\
Original-Recipient: kasse@kk.kim.telematik\r\n\
Final-Recipient: kasse@kk.kim.telematik\r\n\
Action: Delivered\r\n\
Status: 4.0.0\r\n\
Arrival-Date: Thu, 3 Dec 2026 06:06:19 +0000\r\n\r\n\
--b1--\r\n";

    #[test]
    fn the_kim_dsn_example_is_a_receipt_for_its_message_id() {
        let i = classify(KIM_DSN.as_bytes());
        assert_eq!(i.kind, Kind::Dsn);
        assert_eq!(i.action, Some(Action::Delivered));
        assert_eq!(
            i.refers_to,
            vec!["96d6a790-afc2-4556-ab73-301e51a7bf30@kim.de".to_owned()]
        );
    }

    #[test]
    fn a_failed_dsn_found_by_its_returned_headers() {
        let raw = KIM_DSN
            .replace("In-Reply-To: <96d6a790-afc2-4556-ab73-301e51a7bf30@KIM.de>\r\n", "")
            .replace("Action: Delivered", "Action: failed")
            .replace(
                "--b1--",
                "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <x1@kim.local>\r\nSubject: EEAU0_96d6a790-afc2-4556-ab73-301e51a7bf30\r\n\r\n--b1--",
            );
        let i = classify(raw.as_bytes());
        assert_eq!(i.action, Some(Action::Failed));
        assert_eq!(i.refers_to, vec!["x1@kim.local".to_owned()]);
        assert_eq!(
            i.document_ids,
            vec![Uuid::parse_str("96d6a790-afc2-4556-ab73-301e51a7bf30").unwrap()]
        );
    }

    fn error_mail(xml: &str, body: &str) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        format!(
            "From: kasse@kk.kim.telematik\r\nSubject: EEAU0_Fehler_c42a922c-c1fa-4aed-a2ba-7e658aecb7dc\r\n\
X-KIM-Dienstkennung: eAU;Fehler-Kasse;V1.2\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
--b\r\nContent-Type: application/xml; name=\"EEAU0_Fehler_c42a922c-c1fa-4aed-a2ba-7e658aecb7dc.xml\"\r\n\
Content-Transfer-Encoding: base64\r\nContent-Description: eAUFehler-Kasse\r\n\
Content-Disposition: attachment; filename=\"EEAU0_Fehler_c42a922c-c1fa-4aed-a2ba-7e658aecb7dc.xml\"\r\n\r\n{b64}\r\n--b--\r\n"
        )
    }

    #[test]
    fn the_kbv_error_examples_name_their_message_id_or_bundle() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gematik-eau/OtherProfiles/KBV_PR_EAU_health_insurance_Practitioner/1.2/valid/"
        );
        let by_message = std::fs::read_to_string(format!(
            "{dir}EEAU0_Fehler_c42a922c-c1fa-4aed-a2ba-7e658aecb7dc.xml"
        ))
        .unwrap();
        let i = classify(error_mail(&by_message, "Details").as_bytes());
        assert_eq!(i.kind, Kind::InsurerError);
        assert_eq!(i.kbv_code, Some(301));
        assert_eq!(
            i.refers_to.first().map(String::as_str),
            Some("96d6a790-afc2-4556-ab73-301e51a7bf30@kim.de")
        );
        assert!(i.document_ids.is_empty(), "{:?}", i.document_ids);
        let by_bundle = std::fs::read_to_string(format!(
            "{dir}EEAU0_Fehler_f135ed4d-ac50-4a85-aec1-1ba5786344cc.xml"
        ))
        .unwrap();
        let i = classify(error_mail(&by_bundle, "Achtung möglicher Virenbefall").as_bytes());
        assert_eq!(i.kbv_code, Some(100));
        assert!(!i.virus, "the virus notice belongs to 101/102 only");
        assert_eq!(
            i.document_ids,
            vec![Uuid::parse_str("96d6a790-afc2-4556-ab73-301e51a7bf30").unwrap()]
        );
        let virus = error_message(
            Uuid::new_v4(),
            101,
            "ungültig",
            &Reference::Bundle(Uuid::nil()),
        );
        let i = classify(error_mail(&virus, "Achtung möglicher Virenbefall").as_bytes());
        assert!(i.virus);
        assert_eq!(i.document_ids, vec![Uuid::nil()]);
    }

    #[test]
    fn a_receipt_with_an_integrity_warning_still_counts_and_says_so() {
        let raw = KIM_DSN.replace(
            "MIME-Version: 1.0\r\n",
            "MIME-Version: 1.0\r\nX-KIM-IntegrityCheckResult: 02\r\n",
        );
        let i = classify(raw.as_bytes());
        assert_eq!(i.action, Some(Action::Delivered));
        assert!(
            i.summary.contains("IntegrityCheckResult 02"),
            "{}",
            i.summary
        );
        let raw = KIM_DSN.replace(
            "MIME-Version: 1.0\r\n",
            "MIME-Version: 1.0\r\nX-KIM-DecryptionResult: 01\r\n",
        );
        assert!(classify(raw.as_bytes()).summary.contains("Karte"));
        let fine = KIM_DSN.replace(
            "MIME-Version: 1.0\r\n",
            "MIME-Version: 1.0\r\nX-KIM-DecryptionResult: 00\r\nX-KIM-IntegrityCheckResult: 01\r\n",
        );
        assert!(!classify(fine.as_bytes()).summary.contains("–"));
    }

    #[test]
    fn a_kim_service_error_and_a_stranger_are_told_apart() {
        let raw = "From: cm@kim\r\nX-KIM-Fehlermeldung: 4004\r\nIn-Reply-To: <m9@kim.local>\r\nSubject: Fehler\r\n\r\nnicht verschluesselbar\r\n";
        let i = classify(raw.as_bytes());
        assert_eq!(i.kind, Kind::KimError);
        assert_eq!(i.refers_to, vec!["m9@kim.local".to_owned()]);
        let i = classify(b"From: a@b\r\nSubject: Hallo\r\n\r\nHallo\r\n");
        assert_eq!(i.kind, Kind::Other);
        assert!(classify(b"\x00\x01garbage").refers_to.is_empty());
    }
}
