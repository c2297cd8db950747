//! KIM (Kommunikation im Medizinwesen), the route German insurers read eAUs on (TA eAU
//! chapter 5): one signed file per mail through the practice's KIM client module (SMTP),
//! delivery status notifications and insurer error messages back from its mailbox (POP3).
//!
//! - [`Account`]: a practice's KIM account and the client module's `#`-separated login names.
//! - [`compose`]: the mail of one document, headers and MIME parts as TA P5-02 has them.
//! - [`smtp::Sender`]: submission with a DSN request on every recipient, pooled connections.
//! - [`pop3`], [`inbound`], [`poller`]: reading the mailbox, recognising receipts and error
//!   messages, recording them before anything is deleted.
//! - [`vzd`]: the insurer's KIM address from the TI directory (or a static mapping file).
//! - [`standin`], [`robot`]: a client module stand-in made of Postfix and Dovecot, and an
//!   insurer robot, for tests, benchmarks and the demo.

pub mod inbound;
pub mod poller;
pub mod pop3;
pub mod robot;
pub mod smtp;
pub mod standin;
pub mod vzd;

use base64::Engine;
use uuid::Uuid;

/// Errors of the KIM route. Texts are German: they are shown to staff.
#[derive(Debug, thiserror::Error)]
pub enum KimError {
    #[error("KIM-Einstellungen: {0}")]
    Settings(String),
    #[error("KIM-Clientmodul nicht erreichbar: {0}")]
    Connect(String),
    #[error("KIM-Clientmodul: unerwartete Antwort: {0}")]
    Protocol(String),
    #[error("KIM-Anmeldung abgelehnt: {0}")]
    Auth(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// How AU-Relay talks TLS to the client module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// SMTPS / POP3S: TLS from the first byte (the client module's usual set-up).
    Implicit,
    /// Plain connection upgraded with STARTTLS / STLS.
    StartTls,
    /// No TLS: only when the client module runs on the same machine.
    None,
}

impl Tls {
    pub fn code(self) -> &'static str {
        match self {
            Self::Implicit => "implicit",
            Self::StartTls => "starttls",
            Self::None => "none",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "implicit" => Some(Self::Implicit),
            "starttls" => Some(Self::StartTls),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// The password of a KIM account; never printed.
pub type Password = crate::secret::Secret;

/// A practice's KIM account at its client module (KIM-AND-SIGNATURE.md §2).
#[derive(Debug, Clone)]
pub struct Account {
    pub practice_id: String,
    /// The practice's KIM address: login, `MAIL FROM`, `From` and `Reply-To`.
    pub address: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub pop3_host: String,
    pub pop3_port: u16,
    pub tls: Tls,
    /// The client module's certificate (PEM), trusted instead of public roots: its server
    /// certificate comes from the KIM provider or is self-signed.
    pub ca_pem: Option<String>,
    /// The Fachdienst's `host:port` in the SMTP and POP3 login names.
    pub fachdienst_smtp: Option<String>,
    pub fachdienst_pop3: Option<String>,
    pub mandant_id: String,
    pub client_system_id: String,
    pub workplace_id: String,
    /// Only for a mailbox of an eHBA (POP3 position 5).
    pub user_id: Option<String>,
    /// Only where the client module knows several Konnektors.
    pub konnektor_id: Option<String>,
    pub password: Password,
    /// Reference environment: names with `T` instead of `E`.
    pub test_data: bool,
}

/// Joins login name fields with `#`; an unused optional field followed by a used one is
/// written as `*`, trailing unused ones are left out (gemSpec_CM_KOMLE 3.3.2.2 / 3.4.2.2).
fn login_name(fields: &[Option<&str>]) -> String {
    let used = fields
        .iter()
        .rposition(|f| f.is_some_and(|v| !v.is_empty()))
        .map_or(0, |i| i + 1);
    fields[..used]
        .iter()
        .map(|f| f.filter(|v| !v.is_empty()).unwrap_or("*"))
        .collect::<Vec<_>>()
        .join("#")
}

impl Account {
    /// `address#fachdienst:port#MandantId#ClientSystemId#WorkplaceId[#KonnektorId]`.
    pub fn smtp_login(&self) -> String {
        login_name(&[
            Some(&self.address),
            self.fachdienst_smtp.as_deref(),
            Some(&self.mandant_id),
            Some(&self.client_system_id),
            Some(&self.workplace_id),
            self.konnektor_id.as_deref(),
        ])
    }

    /// `address#fachdienst:port#MandantId#ClientSystemId#WorkplaceId[#UserId][#KonnektorId]`.
    pub fn pop3_login(&self) -> String {
        login_name(&[
            Some(&self.address),
            self.fachdienst_pop3.as_deref(),
            Some(&self.mandant_id),
            Some(&self.client_system_id),
            Some(&self.workplace_id),
            self.user_id.as_deref(),
            self.konnektor_id.as_deref(),
        ])
    }

    /// `E` for production data, `T` for test insurers.
    pub fn prefix(&self) -> char {
        if self.test_data {
            'T'
        } else {
            'E'
        }
    }
}

/// `X-KIM-Dienstkennung` of the documents AU-Relay sends and receives (TA P5-02).
pub mod dienstkennung {
    pub const LIEFERUNG: &str = "eAU;Lieferung;V1.2";
    pub const STORNO: &str = "eAU;Storno-Arzt;V1.2";
    pub const FEHLER_KASSE: &str = "eAU;Fehler-Kasse;V1.2";
}

/// One document to send over KIM.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub message_id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub storno: bool,
    /// `T` instead of `E` in subject and file name.
    pub test_data: bool,
    pub document_id: Uuid,
    /// The signed file, byte for byte as stored.
    pub p7s: &'a [u8],
    pub date: chrono::DateTime<chrono::Utc>,
    /// `X-KIM-Support`.
    pub support: &'a str,
}

impl Outgoing<'_> {
    /// `EEAU0_<uuid>` or `EEAU0_Storno_<uuid>` (`T…` for test data).
    pub fn subject(&self) -> String {
        let prefix = if self.test_data { 'T' } else { 'E' };
        let kind = if self.storno { "Storno_" } else { "" };
        format!("{prefix}EAU0_{kind}{}", self.document_id)
    }

    pub fn file_name(&self) -> String {
        format!("{}.p7s", self.subject())
    }
}

/// Whether `address` is a KIM address: one `@`, a domain under `kim.telematik` (production) or
/// `kim.telematik-test` (reference and test environments), ASCII only.
pub fn is_kim_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    !local.is_empty()
        && address.len() <= 254
        && address.is_ascii()
        && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ',')
        && !domain.contains('@')
        && (domain.ends_with(".kim.telematik") || domain.ends_with(".kim.telematik-test"))
}

/// A new Message-ID: random, no host name and nothing personal (ILF KIM 1.0.1).
pub fn new_message_id() -> String {
    format!("<{}@kim.local>", Uuid::new_v4())
}

/// The mail of one document (TA P5-02): `X-KIM-Dienstkennung`, the subject, `Reply-To` the
/// practice's KIM address, and exactly one attachment, the signed file, as
/// `application/octet-stream`, base64, with its `Content-Description`.
pub fn compose(o: &Outgoing<'_>) -> Vec<u8> {
    let boundary = format!("au-relay-{}", Uuid::new_v4().simple());
    let subject = o.subject();
    let file = o.file_name();
    let (dienst, description) = if o.storno {
        (dienstkennung::STORNO, "eAUStorno")
    } else {
        (dienstkennung::LIEFERUNG, "eAU")
    };
    let mut m = String::with_capacity(o.p7s.len() * 4 / 3 + 1500);
    let mut h = |name: &str, value: &str| {
        m.push_str(name);
        m.push_str(": ");
        m.push_str(value);
        m.push_str("\r\n");
    };
    h("Date", &o.date.to_rfc2822());
    h("From", o.from);
    h("To", o.to);
    h("Reply-To", o.from);
    h("Subject", &subject);
    h("Message-ID", o.message_id);
    h("MIME-Version", "1.0");
    h("X-KIM-Dienstkennung", dienst);
    h(
        "X-KIM-Sendersystem",
        concat!("AU-Relay;", env!("CARGO_PKG_VERSION")),
    );
    h("X-KIM-Support", o.support);
    h(
        "Content-Type",
        &format!("multipart/mixed; boundary=\"{boundary}\""),
    );
    m.push_str("\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
    );
    m.push_str(&format!("{subject}: Datei {file} im Anhang.\r\n"));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(&format!(
        "Content-Type: application/octet-stream; name=\"{file}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{file}\"\r\n\
         Content-Description: {description}\r\n\r\n"
    ));
    let encoded = base64::engine::general_purpose::STANDARD.encode(o.p7s);
    for line in encoded.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(line).unwrap_or_default());
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// A Message-ID compared as the KIM route carries it: without angle brackets and blanks, the
/// part after `@` in lower case.
pub fn normalise_message_id(id: &str) -> String {
    let bare = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    match bare.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => bare.to_owned(),
    }
}

/// The account of a stored row, its password read now (never stored).
pub fn account_of(row: &crate::storage::KimAccountRow) -> Result<Account, KimError> {
    let secret = crate::signing::resolve_secret(&row.secret_ref)
        .map_err(|e| KimError::Settings(e.to_string()))?;
    let password = String::from_utf8(secret)
        .map_err(|_| KimError::Settings("Passwort ist kein UTF-8".into()))?;
    account_with(row, password.trim_end_matches(['\r', '\n']).to_owned())
}

/// The SMTP and POP3 login names of a stored row (the password is not read).
pub fn logins_of(row: &crate::storage::KimAccountRow) -> Result<(String, String), KimError> {
    let a = account_with(row, String::new())?;
    Ok((a.smtp_login(), a.pop3_login()))
}

fn account_with(
    row: &crate::storage::KimAccountRow,
    password: String,
) -> Result<Account, KimError> {
    let port = |p: i32, what: &str| {
        u16::try_from(p).map_err(|_| KimError::Settings(format!("{what}-Port {p} ungültig")))
    };
    Ok(Account {
        practice_id: row.practice_id.clone(),
        address: row.address.clone(),
        smtp_host: row.smtp_host.clone(),
        smtp_port: port(row.smtp_port, "SMTP")?,
        pop3_host: row.pop3_host.clone(),
        pop3_port: port(row.pop3_port, "POP3")?,
        tls: Tls::parse(&row.tls)
            .ok_or_else(|| KimError::Settings(format!("TLS-Art {} unbekannt", row.tls)))?,
        ca_pem: row.ca_pem.clone(),
        fachdienst_smtp: row.fachdienst_smtp.clone(),
        fachdienst_pop3: row.fachdienst_pop3.clone(),
        mandant_id: row.mandant_id.clone(),
        client_system_id: row.client_system_id.clone(),
        workplace_id: row.workplace_id.clone(),
        user_id: row.user_id.clone(),
        konnektor_id: row.konnektor_id.clone(),
        password: Password::new(password),
        test_data: row.test_data,
    })
}

/// Checks an account: SMTP login at the client module, then POP3 login; returns how many mails
/// wait in the mailbox.
pub async fn check(account: &Account, timeout: std::time::Duration) -> Result<usize, KimError> {
    smtp::Sender::new(timeout, DEFAULT_SUPPORT)
        .check(account)
        .await?;
    let mut pop = pop3::Pop3::connect(account, timeout).await?;
    let n = pop.uidl().await?.len();
    pop.quit().await?;
    Ok(n)
}

/// The KIM route of the queue workers: the sender and the practices' accounts, each read
/// from the database at most once a minute.
#[derive(Clone, Debug)]
pub struct Transport {
    pub sender: smtp::Sender,
    accounts: std::sync::Arc<tokio::sync::Mutex<AccountCache>>,
}

/// Accounts by practice, with when they were read (or why they cannot be used).
type AccountCache =
    std::collections::HashMap<String, (std::time::Instant, Result<Account, String>)>;

impl Transport {
    pub fn new(timeout: std::time::Duration, support: &str) -> Self {
        Self {
            sender: smtp::Sender::new(timeout, support),
            accounts: std::sync::Arc::default(),
        }
    }

    /// The practice's KIM account (or why it cannot be used).
    pub async fn account(
        &self,
        db: &crate::storage::Database,
        practice_id: &str,
    ) -> Result<Account, String> {
        let mut cache = self.accounts.lock().await;
        if let Some((at, account)) = cache.get(practice_id) {
            if at.elapsed() < std::time::Duration::from_secs(60) {
                return account.clone();
            }
        }
        let id = practice_id.to_owned();
        let row = db.run(move |c| crate::storage::kim_account(c, &id)).await;
        let account = match row {
            Ok(Some(row)) => account_of(&row).map_err(|e| e.to_string()),
            Ok(None) => Err("kein KIM-Konto für die Praxis eingerichtet".to_owned()),
            Err(e) => return Err(e.to_string()),
        };
        cache.insert(
            practice_id.to_owned(),
            (std::time::Instant::now(), account.clone()),
        );
        account
    }
}

impl Default for Transport {
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(30), DEFAULT_SUPPORT)
    }
}

/// `X-KIM-Support` unless configured (`AU_RELAY_KIM_SUPPORT`).
pub const DEFAULT_SUPPORT: &str = "support@au-relay.invalid";

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            practice_id: "p".into(),
            address: "praxis@arzt.kim.telematik-test".into(),
            smtp_host: "127.0.0.1".into(),
            smtp_port: 465,
            pop3_host: "127.0.0.1".into(),
            pop3_port: 995,
            tls: Tls::Implicit,
            ca_pem: None,
            fachdienst_smtp: Some("kim.example:465".into()),
            fachdienst_pop3: Some("kim.example:995".into()),
            mandant_id: "1".into(),
            client_system_id: "KOM_LE".into(),
            workplace_id: "7".into(),
            user_id: None,
            konnektor_id: None,
            password: Password::new("geheim"),
            test_data: false,
        }
    }

    #[test]
    fn login_names_follow_the_client_module_grammar() {
        let mut a = account();
        assert_eq!(
            a.smtp_login(),
            "praxis@arzt.kim.telematik-test#kim.example:465#1#KOM_LE#7"
        );
        assert_eq!(
            a.pop3_login(),
            "praxis@arzt.kim.telematik-test#kim.example:995#1#KOM_LE#7"
        );
        // An unused optional field before a used one is `*` (the CM-SPEC example).
        a.konnektor_id = Some("Konn_1".into());
        assert_eq!(
            a.pop3_login(),
            "praxis@arzt.kim.telematik-test#kim.example:995#1#KOM_LE#7#*#Konn_1"
        );
        assert_eq!(
            a.smtp_login(),
            "praxis@arzt.kim.telematik-test#kim.example:465#1#KOM_LE#7#Konn_1"
        );
        // Since KIM 1.5.4 the Fachdienst may be left out.
        a.fachdienst_smtp = None;
        assert_eq!(
            a.smtp_login(),
            "praxis@arzt.kim.telematik-test#*#1#KOM_LE#7#Konn_1"
        );
        assert!(!format!("{a:?}").contains("geheim"));
    }

    #[test]
    fn a_mail_carries_one_signed_file_as_the_ta_names_it() {
        let id = Uuid::parse_str("96d6a790-afc2-4556-ab73-301e51a7bf30").unwrap();
        let p7s = vec![0x30u8; 200];
        let o = Outgoing {
            message_id: "<m1@kim.local>",
            from: "praxis@arzt.kim.telematik-test",
            to: "kasse@kk.kim.telematik-test",
            storno: false,
            test_data: false,
            document_id: id,
            p7s: &p7s,
            date: chrono::Utc::now(),
            support: "support@example.org",
        };
        let raw = String::from_utf8(compose(&o)).unwrap();
        assert!(raw.contains("Subject: EEAU0_96d6a790-afc2-4556-ab73-301e51a7bf30\r\n"));
        assert!(raw.contains("X-KIM-Dienstkennung: eAU;Lieferung;V1.2\r\n"));
        assert!(raw.contains("Reply-To: praxis@arzt.kim.telematik-test\r\n"));
        assert!(raw.contains(
            "Content-Disposition: attachment; filename=\"EEAU0_96d6a790-afc2-4556-ab73-301e51a7bf30.p7s\""
        ));
        assert!(raw.contains("Content-Description: eAU\r\n"));
        assert_eq!(raw.matches("Content-Disposition: attachment").count(), 1);
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        assert_eq!(parsed.attachment(0).unwrap().contents(), &p7s[..]);
        let storno = Outgoing {
            storno: true,
            test_data: true,
            ..o
        };
        let raw = String::from_utf8(compose(&storno)).unwrap();
        assert!(raw.contains("Subject: TEAU0_Storno_96d6a790"));
        assert!(raw.contains("X-KIM-Dienstkennung: eAU;Storno-Arzt;V1.2\r\n"));
        assert!(raw.contains("Content-Description: eAUStorno\r\n"));
    }

    #[test]
    fn message_ids_compare_without_brackets_and_domain_case() {
        assert_eq!(
            normalise_message_id(" <Abc@KIM.Local> "),
            normalise_message_id("Abc@kim.local")
        );
        assert_ne!(
            normalise_message_id("<abc@kim.local>"),
            normalise_message_id("<ABC@kim.local>")
        );
    }
}
