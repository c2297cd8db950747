//! Submission to the KIM client module (SMTP, lettre's connection level): login with the
//! client module's login name (PLAIN or LOGIN only), `MAIL FROM` the practice's address, one
//! recipient with `NOTIFY=SUCCESS,FAILURE` (TA P5-07: a receipt for every document, not
//! switchable), the composed message. Connections stay open per account for the next mail.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailParameter, RcptParameter};
use lettre::Address;
use tokio::sync::Mutex;

use super::{Account, KimError, Tls};
use crate::insurers::Answer;

/// Idle connections kept per account.
const IDLE_PER_ACCOUNT: usize = 16;

/// Sends KIM mails; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Sender {
    timeout: Duration,
    support: Arc<str>,
    idle: Arc<Mutex<HashMap<String, Vec<AsyncSmtpConnection>>>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// TLS parameters for the client module: its own certificate trusted when given (host names in
/// client module certificates rarely match), else the public roots with host name checks.
pub(super) fn tls_parameters(account: &Account, host: &str) -> Result<TlsParameters, KimError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(pem) = &account.ca_pem {
        let cert = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| KimError::Settings(format!("Zertifikat des Clientmoduls: {e}")))?;
        builder = builder
            .add_root_certificate(cert)
            .dangerous_accept_invalid_hostnames(true);
    }
    builder
        .build_rustls()
        .map_err(|e| KimError::Settings(format!("TLS: {e}")))
}

fn answer_of(e: &lettre::transport::smtp::Error) -> Answer {
    match e.status() {
        Some(code) => Answer::Smtp {
            code: u16::from(code),
            text: e.to_string(),
        },
        None if e.is_timeout() => Answer::Transport("Zeitüberschreitung".into()),
        None => Answer::Transport(e.to_string()),
    }
}

impl Sender {
    /// `support` is the `X-KIM-Support` address named in every mail.
    pub fn new(timeout: Duration, support: &str) -> Self {
        Self {
            timeout,
            support: support.into(),
            idle: Arc::default(),
        }
    }

    pub fn support(&self) -> &str {
        &self.support
    }

    fn key(account: &Account) -> String {
        format!(
            "{}|{}:{}|{}",
            account.practice_id,
            account.smtp_host,
            account.smtp_port,
            account.smtp_login()
        )
    }

    async fn connect(&self, account: &Account) -> Result<AsyncSmtpConnection, Answer> {
        let host = account.smtp_host.as_str();
        let tls = match account.tls {
            Tls::Implicit | Tls::StartTls => {
                Some(tls_parameters(account, host).map_err(|e| Answer::Config(e.to_string()))?)
            }
            Tls::None => None,
        };
        let hello = ClientId::Domain("au-relay.local".into());
        let implicit = if account.tls == Tls::Implicit {
            tls.clone()
        } else {
            None
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (host, account.smtp_port),
            Some(self.timeout),
            &hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| answer_of(&e))?;
        if let (Tls::StartTls, Some(tls)) = (account.tls, tls) {
            conn.starttls(tls, &hello)
                .await
                .map_err(|e| answer_of(&e))?;
        }
        let credentials =
            Credentials::new(account.smtp_login(), account.password.expose().to_owned());
        conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
            .await
            .map_err(|e| answer_of(&e))?;
        Ok(conn)
    }

    /// Logs in to the client module without sending anything (the settings page's test).
    pub async fn check(&self, account: &Account) -> Result<(), KimError> {
        match tokio::time::timeout(self.timeout * 2, self.connect(account)).await {
            Ok(Ok(mut conn)) => {
                let _ = conn.quit().await;
                Ok(())
            }
            Ok(Err(Answer::Smtp { code, text })) if (500..600).contains(&code) => {
                Err(KimError::Auth(text))
            }
            Ok(Err(Answer::Smtp { text, .. })) => Err(KimError::Connect(text)),
            Ok(Err(Answer::Transport(e) | Answer::Config(e))) => Err(KimError::Connect(e)),
            Ok(Err(Answer::Http { .. })) | Err(_) => {
                Err(KimError::Connect("Zeitüberschreitung".into()))
            }
        }
    }

    /// Sends one composed message to `to`; the answer is classified like an HTTP answer
    /// (`250` accepted, `4xx` and connection faults transient, `5xx` refused). The whole
    /// exchange is bounded by the timeout.
    pub async fn send(&self, account: &Account, to: &str, message: &[u8]) -> Answer {
        match tokio::time::timeout(self.timeout * 2, self.send_inner(account, to, message)).await {
            Ok(answer) => answer,
            Err(_) => Answer::Transport("Zeitüberschreitung".into()),
        }
    }

    async fn send_inner(&self, account: &Account, to: &str, message: &[u8]) -> Answer {
        let (Ok(from), Ok(rcpt)) = (account.address.parse::<Address>(), to.parse::<Address>())
        else {
            return Answer::Config("KIM-Adresse ungültig".into());
        };
        let key = Self::key(account);
        let pooled = self.idle.lock().await.get_mut(&key).and_then(Vec::pop);
        let mut conn = match pooled {
            Some(c) => c,
            None => match self.connect(account).await {
                Ok(c) => c,
                Err(answer) => return answer,
            },
        };
        let sent = async {
            conn.command(Mail::new(Some(from), vec![ret_hdrs()]))
                .await?;
            conn.command(Rcpt::new(
                rcpt,
                vec![RcptParameter::Other {
                    keyword: "NOTIFY".into(),
                    value: Some("SUCCESS,FAILURE".into()),
                }],
            ))
            .await?;
            conn.command(Data).await?;
            conn.message(message).await
        }
        .await;
        match sent {
            Ok(response) => {
                let code = u16::from(response.code());
                let text = response.message().collect::<Vec<_>>().join(" ");
                let mut idle = self.idle.lock().await;
                let slot = idle.entry(key).or_default();
                if slot.len() < IDLE_PER_ACCOUNT && !conn.has_broken() {
                    slot.push(conn);
                }
                Answer::Smtp { code, text }
            }
            Err(e) => {
                // A refused mail leaves the session usable after RSET; a broken one is dropped.
                if !conn.has_broken()
                    && conn
                        .command(lettre::transport::smtp::commands::Rset)
                        .await
                        .is_ok()
                {
                    let mut idle = self.idle.lock().await;
                    let slot = idle.entry(key).or_default();
                    if slot.len() < IDLE_PER_ACCOUNT {
                        slot.push(conn);
                    }
                }
                answer_of(&e)
            }
        }
    }
}

/// `RET=HDRS`: a receipt returns the headers only, never the document.
fn ret_hdrs() -> MailParameter {
    MailParameter::Other {
        keyword: "RET".into(),
        value: Some("HDRS".into()),
    }
}
