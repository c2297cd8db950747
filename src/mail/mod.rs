//! Patient mail: the German message with the password-protected PDF copies, and its SMTP
//! transport. When to send is the queue's business; this module only composes and sends.
//!
//! Privacy: the subject names neither diagnosis, KVNR nor insurer; the PDFs are encrypted
//! (AES-256) with a password the practice hands over separately.

use std::time::Duration;

use askama::Template;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::{Certificate, PasswordPolicy, PatientMail};
use crate::pdf::{self, Copy, PaperSize};

/// How the connection to the SMTP server is secured. An explicit choice: guessing would
/// either leak mail in clear text or fail in a way nobody understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// Plain SMTP (a relay on the same host or network only).
    None,
    /// Plain connection upgraded with STARTTLS, required (usually port 587).
    Starttls,
    /// TLS from the first byte, "SMTPS" (usually port 465).
    Tls,
}

impl TlsMode {
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }

    fn setting(self) -> &'static str {
        match self {
            Self::None => "AU_RELAY_SMTP_TLS=none",
            Self::Starttls => "AU_RELAY_SMTP_TLS=starttls",
            Self::Tls => "AU_RELAY_SMTP_TLS=tls",
        }
    }
}

/// Everything the mailer needs, checked at start-up.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, String)>,
    /// Sender, e.g. `Praxis Dr. Muster <praxis@example.de>`.
    pub from: Mailbox,
    /// Overall limit of one send (connect, TLS, dialogue, data); lettre's own timeout covers
    /// only single socket operations.
    pub timeout: Duration,
    pub password_policy: PasswordPolicy,
}

/// Why a mail was not sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MailError {
    /// Worth trying again later (server down, 4xx answer, timeout, TLS set-up).
    #[error("{0}")]
    Transient(String),
    /// The server refused this mail for good (5xx: unknown mailbox, …); staff must act.
    #[error("{0}")]
    Permanent(String),
    /// The message could not be built (a defect or a broken stored certificate).
    #[error("E-Mail erstellen: {0}")]
    Compose(String),
    #[error("E-Mail-Einstellungen: {0}")]
    Settings(String),
}

/// A patient mail about to be composed: the mail as requested, with its Message-ID and the
/// certificate whose copies it carries.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `<…@…>`, fixed at capture: a resend after a lost answer carries the same id.
    pub message_id: String,
    pub mail: PatientMail,
    pub certificate: Certificate,
    pub print_only: bool,
}

#[derive(Template)]
#[template(path = "mail/patient.txt")]
struct TextBody<'a> {
    body: &'a Body,
}

#[derive(Template)]
#[template(path = "mail/patient.html")]
struct HtmlBody<'a> {
    body: &'a Body,
}

/// What both templates show.
struct Body {
    name: String,
    issued_on: String,
    employer_copy: bool,
    birth_date_password: bool,
    electronic: bool,
    practice: String,
    address: String,
    phone: String,
}

// The templates read the fields directly.
impl std::ops::Deref for TextBody<'_> {
    type Target = Body;
    fn deref(&self) -> &Body {
        self.body
    }
}

impl std::ops::Deref for HtmlBody<'_> {
    type Target = Body;
    fn deref(&self) -> &Body {
        self.body
    }
}

/// The subject: nothing about the health, the insurance number or the insurer.
pub fn subject(cert: &Certificate) -> String {
    format!(
        "Ihre Arbeitsunfähigkeitsbescheinigung vom {}",
        cert.issued_on.format("%d.%m.%Y")
    )
}

/// ASCII file names: some mail programs still mangle encoded ones.
pub const PATIENT_FILE: &str = "AU-Bescheinigung-Versicherte.pdf";
pub const EMPLOYER_FILE: &str = "AU-Bescheinigung-Arbeitgeber.pdf";

/// Builds the message: German text and HTML, the V copy (and the AG copy if asked for), each
/// encrypted with the mail's password. CPU work (PDF, AES key derivation): call it on a
/// blocking thread.
pub fn compose(outgoing: &Outgoing, from: &Mailbox) -> Result<Message, MailError> {
    let cert = &outgoing.certificate;
    let mail = &outgoing.mail;
    let password = mail
        .pdf_password(cert.patient.birth_date)
        .ok_or_else(|| MailError::Compose("kein Passwort gespeichert".into()))?;
    let practice = &cert.practice;
    let body = Body {
        name: cert.patient.full_name(),
        issued_on: cert.issued_on.format("%d.%m.%Y").to_string(),
        employer_copy: mail.employer_copy,
        birth_date_password: mail.policy == PasswordPolicy::BirthDate,
        electronic: !outgoing.print_only,
        practice: practice.name.clone(),
        address: format!(
            "{}, {} {}",
            practice.street, practice.postal_code, practice.city
        ),
        phone: practice.phone.clone(),
    };
    let rendered =
        |t: Result<String, askama::Error>| t.map_err(|e| MailError::Compose(e.to_string()));
    let text = rendered(TextBody { body: &body }.render())?;
    let html = rendered(HtmlBody { body: &body }.render())?;
    let mut copies = vec![(Copy::V, PATIENT_FILE)];
    if mail.employer_copy {
        copies.push((Copy::Ag, EMPLOYER_FILE));
    }
    let pdf_type =
        ContentType::parse("application/pdf").map_err(|e| MailError::Compose(e.to_string()))?;
    let mut parts = MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html));
    for (copy, file) in copies {
        let plain = pdf::render(cert, copy, PaperSize::A4)
            .map_err(|e| MailError::Compose(e.to_string()))?;
        let locked =
            pdf::protect(&plain, &password).map_err(|e| MailError::Compose(e.to_string()))?;
        let part: SinglePart = Attachment::new(file.to_owned()).body(locked, pdf_type.clone());
        parts = parts.singlepart(part);
    }
    let to: Mailbox =
        mail.recipient
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MailError::Permanent(format!("Empfänger: {e}"))
            })?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject(cert))
        .message_id(Some(outgoing.message_id.clone()))
        .multipart(parts)
        .map_err(|e| MailError::Compose(e.to_string()))
}

/// The SMTP side: a pooled transport and the overall timeout around every send.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    tls: TlsMode,
    pub policy: PasswordPolicy,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.email.to_string())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Self, MailError> {
        let host = settings.host.as_str();
        let relay = |r: Result<_, lettre::transport::smtp::Error>| {
            r.map_err(|e| MailError::Settings(format!("AU_RELAY_SMTP_HOST {host:?}: {e}")))
        };
        let builder = match settings.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            TlsMode::Starttls => relay(AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host))?,
            TlsMode::Tls => relay(AsyncSmtpTransport::<Tokio1Executor>::relay(host))?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(settings.timeout));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from.clone(),
            timeout: settings.timeout,
            tls: settings.tls,
            policy: settings.password_policy,
        })
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends a composed message within the overall timeout.
    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.classify(&e)),
        }
    }

    /// Connects and greets the server, to report a wrong setting at start-up.
    pub async fn check(&self) -> Result<(), MailError> {
        match tokio::time::timeout(self.timeout, self.transport.test_connection()).await {
            Err(_) => Err(self.timed_out()),
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(MailError::Transient(
                "SMTP-Server antwortet nicht auf NOOP".into(),
            )),
            Ok(Err(e)) => Err(self.classify(&e)),
        }
    }

    fn timed_out(&self) -> MailError {
        let hint = match self.tls {
            // A TLS server waits for our handshake while we wait for its greeting.
            TlsMode::None | TlsMode::Starttls => {
                " – erwartet der Server TLS ab dem ersten Byte (AU_RELAY_SMTP_TLS=tls)?"
            }
            TlsMode::Tls => "",
        };
        MailError::Transient(format!(
            "Zeitüberschreitung beim SMTP-Versand nach {} s{hint}",
            self.timeout.as_secs()
        ))
    }

    /// German detail of an SMTP error, naming the TLS setting when it is the likely cause.
    fn classify(&self, e: &lettre::transport::smtp::Error) -> MailError {
        let setting = self.tls.setting();
        if e.is_permanent() {
            return MailError::Permanent(format!("SMTP-Server lehnt ab: {e}"));
        }
        if e.is_tls() {
            return MailError::Transient(format!("TLS-Fehler – passt {setting} zum Server? ({e})"));
        }
        let text = e.to_string();
        if text.contains("STARTTLS") {
            return MailError::Transient(format!(
                "Server bietet kein STARTTLS an – {setting} passt nicht zum Server ({e})"
            ));
        }
        if e.is_transient() {
            return MailError::Transient(format!("SMTP-Server vorübergehend nicht bereit: {e}"));
        }
        if e.is_timeout() {
            return self.timed_out();
        }
        if self.tls == TlsMode::Tls && !text.contains("refused") {
            // A plain server answers our TLS handshake with its text greeting.
            return MailError::Transient(format!(
                "TLS-Verbindung fehlgeschlagen – spricht der Server TLS ab dem ersten Byte ({setting})? ({e})"
            ));
        }
        MailError::Transient(format!("SMTP-Server nicht erreichbar: {e}"))
    }
}
