//! An insurer robot for the tests and the demo: reads the insurer's KIM mailbox over POP3 like
//! an insurer's intake does, keeps what arrived, and can answer a document with a KBV error
//! message (`eAU;Fehler-Kasse;V1.2`) to the mail's `Reply-To`.

use base64::Engine;
use mail_parser::{MessageParser, MimeHeaders};
use uuid::Uuid;

use super::inbound::{self, Reference};
use super::pop3::Pop3;
use super::smtp::Sender;
use super::{dienstkennung, new_message_id, Account, KimError, Password, Tls};
use crate::insurers::Answer;

/// One mail as the insurer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub reply_to: String,
    pub subject: String,
    pub message_id: String,
    pub dienstkennung: String,
    /// Parts with `Content-Disposition: attachment`.
    pub attachments: usize,
    pub attachment_name: Option<String>,
    pub content_type: Option<String>,
    pub content_description: Option<String>,
    pub bytes: Vec<u8>,
    pub document_id: Option<Uuid>,
}

/// The insurer side of the stand-in.
#[derive(Debug, Clone)]
pub struct Robot {
    account: Account,
    sender: Sender,
    timeout: std::time::Duration,
}

fn parse(raw: &[u8]) -> Option<Received> {
    let m = MessageParser::default().parse(raw)?;
    let header = |name: &str| {
        m.header_raw(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let attachments: Vec<_> = m
        .parts
        .iter()
        .filter(|p| {
            p.content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
        })
        .collect();
    let first = attachments.first();
    let subject = m.subject().unwrap_or_default().to_owned();
    let document_id = subject
        .rsplit('_')
        .next()
        .and_then(|u| Uuid::parse_str(u).ok());
    Some(Received {
        from: header("From"),
        reply_to: header("Reply-To"),
        message_id: m.message_id().unwrap_or_default().to_owned(),
        dienstkennung: header("X-KIM-Dienstkennung"),
        attachments: attachments.len(),
        attachment_name: first.and_then(|p| p.attachment_name()).map(str::to_owned),
        content_type: first
            .and_then(|p| p.content_type())
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())),
        content_description: first
            .and_then(|p| {
                p.headers()
                    .iter()
                    .find(|h| h.name().eq_ignore_ascii_case("Content-Description"))
                    .and_then(|h| h.value().as_text())
            })
            .map(|v| v.trim().to_owned()),
        bytes: first.map(|p| p.contents().to_vec()).unwrap_or_default(),
        subject,
        document_id,
    })
}

impl Robot {
    /// The robot of the insurer mailbox `address` at the stand-in on `smtp_port`/`pop3_port`.
    pub fn new(
        address: &str,
        password: &str,
        smtp_port: u16,
        pop3_port: u16,
        ca_pem: &str,
    ) -> Self {
        let account = Account {
            practice_id: format!("insurer:{address}"),
            address: address.to_owned(),
            smtp_host: "127.0.0.1".into(),
            smtp_port,
            pop3_host: "127.0.0.1".into(),
            pop3_port,
            tls: Tls::Implicit,
            ca_pem: Some(ca_pem.to_owned()),
            fachdienst_smtp: None,
            fachdienst_pop3: None,
            mandant_id: String::new(),
            client_system_id: String::new(),
            workplace_id: String::new(),
            user_id: None,
            konnektor_id: None,
            password: Password::new(password.to_owned()),
            test_data: false,
        };
        let timeout = std::time::Duration::from_secs(30);
        Self {
            account,
            sender: Sender::new(timeout, super::DEFAULT_SUPPORT),
            timeout,
        }
    }

    /// The insurer's login is its plain address (no client module on this side).
    fn login(&self) -> Account {
        let mut a = self.account.clone();
        a.mandant_id.clear();
        a
    }

    /// Reads and deletes every eAU mail in the mailbox (receipts of its own answers are
    /// dropped).
    pub async fn fetch(&self) -> Result<Vec<Received>, KimError> {
        let mut pop = Pop3::connect(&self.login(), self.timeout).await?;
        let mut out = Vec::new();
        for (n, _) in pop.uidl().await? {
            let raw = pop.retr(n).await?;
            if let Some(r) = parse(&raw).filter(|r| r.dienstkennung.starts_with("eAU;")) {
                out.push(r);
            }
            pop.dele(n).await?;
        }
        pop.quit().await?;
        Ok(out)
    }

    /// Answers `to` with a KBV error message `code`, naming the document by its
    /// Bundle-Identifier or (`by_message_id`) the mail by its Message-ID; `body` is the mail
    /// text (e.g. "Achtung möglicher Virenbefall").
    pub async fn answer(
        &self,
        to: &Received,
        code: u16,
        by_message_id: bool,
        body: &str,
    ) -> Result<(), KimError> {
        let id = Uuid::new_v4();
        let reference = match (by_message_id, to.document_id) {
            (false, Some(doc)) => Reference::Bundle(doc),
            _ => Reference::MessageId(&to.message_id),
        };
        let xml = inbound::error_message(id, code, "Fehler (Testkasse)", &reference);
        let name = format!("EEAU0_Fehler_{id}");
        let boundary = format!("kk-{}", id.simple());
        let encoded = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
        let mut lines = String::new();
        for chunk in encoded.as_bytes().chunks(76) {
            lines.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            lines.push_str("\r\n");
        }
        let mail = format!(
            "Date: {date}\r\nFrom: {from}\r\nTo: {rcpt}\r\nSubject: {name}\r\nMessage-ID: {mid}\r\n\
MIME-Version: 1.0\r\nX-KIM-Dienstkennung: {dienst}\r\n\
Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n\
--{boundary}\r\nContent-Type: application/xml; name=\"{name}.xml\"\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"{name}.xml\"\r\nContent-Description: eAUFehler-Kasse\r\n\r\n{lines}--{boundary}--\r\n",
            date = chrono::Utc::now().to_rfc2822(),
            from = self.account.address,
            rcpt = to.reply_to,
            mid = new_message_id(),
            dienst = dienstkennung::FEHLER_KASSE,
        );
        self.send(&to.reply_to, mail.as_bytes()).await
    }

    /// Sends any mail from the insurer's mailbox to `to`.
    pub async fn send(&self, to: &str, mail: &[u8]) -> Result<(), KimError> {
        match self.sender.send(&self.login(), to, mail).await {
            Answer::Smtp {
                code: 200..=299, ..
            } => Ok(()),
            other => Err(KimError::Protocol(format!("{other:?}"))),
        }
    }
}
