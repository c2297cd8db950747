//! A small POP3 client (RFC 1939, STLS from RFC 2595) for the KIM mailbox: the client module
//! offers POP3 only. `USER`/`PASS`, `UIDL`, `RETR`, `DELE`, `QUIT`; deletions take effect only
//! at `QUIT`, so a connection that breaks before it deletes nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};

use super::{Account, KimError, Tls};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The longest line and the largest mail read (a KIM mail may be large; an eAU receipt is
/// a few KB).
const MAX_LINE: usize = 64 * 1024;
const MAX_MAIL: usize = 64 * 1024 * 1024;

pub struct Pop3 {
    stream: BufStream<Box<dyn Io>>,
    timeout: Duration,
}

/// Checks the certificate chain against the trusted roots but not the host name: client
/// module certificates rarely name the host they run on (KIM-AND-SIGNATURE.md §2.1).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn tls_config(account: &Account) -> Result<rustls::ClientConfig, KimError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| KimError::Settings(format!("TLS: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    let config = match &account.ca_pem {
        Some(pem) => {
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes()) {
                let cert: CertificateDer<'static> = cert
                    .map_err(|e| KimError::Settings(format!("Zertifikat des Clientmoduls: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| KimError::Settings(format!("Zertifikat des Clientmoduls: {e}")))?;
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| KimError::Settings(format!("TLS: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                .with_no_client_auth()
        }
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

async fn wrap_tls(account: &Account, tcp: Box<dyn Io>) -> Result<Box<dyn Io>, KimError> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(account)?));
    let name = ServerName::try_from(account.pop3_host.clone())
        .map_err(|e| KimError::Settings(format!("POP3-Host: {e}")))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| KimError::Connect(format!("TLS: {e}")))?;
    Ok(Box::new(tls))
}

impl Pop3 {
    /// Connects, reads the greeting and logs in with the POP3 login name.
    pub async fn connect(account: &Account, timeout: Duration) -> Result<Self, KimError> {
        let tcp = tokio::time::timeout(
            timeout,
            TcpStream::connect((account.pop3_host.as_str(), account.pop3_port)),
        )
        .await
        .map_err(|_| KimError::Connect("Zeitüberschreitung".into()))?
        .map_err(|e| KimError::Connect(e.to_string()))?;
        let mut pop = Self {
            stream: BufStream::new(match account.tls {
                Tls::Implicit => wrap_tls(account, Box::new(tcp)).await?,
                Tls::StartTls | Tls::None => Box::new(tcp),
            }),
            timeout,
        };
        pop.status().await?;
        if account.tls == Tls::StartTls {
            pop.command("STLS").await?;
            let plain = pop.stream.into_inner();
            pop = Self {
                stream: BufStream::new(wrap_tls(account, plain).await?),
                timeout,
            };
        }
        pop.command(&format!("USER {}", account.pop3_login()))
            .await
            .map_err(auth_error)?;
        pop.command(&format!("PASS {}", account.password.expose()))
            .await
            .map_err(auth_error)?;
        Ok(pop)
    }

    async fn line(&mut self) -> Result<Vec<u8>, KimError> {
        let mut line = Vec::new();
        let read = tokio::time::timeout(self.timeout, async {
            let mut limited = (&mut self.stream).take(u64::try_from(MAX_LINE).unwrap_or(u64::MAX));
            limited.read_until(b'\n', &mut line).await
        })
        .await
        .map_err(|_| KimError::Connect("Zeitüberschreitung".into()))?
        .map_err(|e| KimError::Connect(e.to_string()))?;
        if read == 0 {
            return Err(KimError::Connect("Verbindung geschlossen".into()));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        Ok(line)
    }

    /// Reads a status line: `+OK …` or an error.
    async fn status(&mut self) -> Result<String, KimError> {
        let line = String::from_utf8_lossy(&self.line().await?).into_owned();
        match line.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(KimError::Protocol(line)),
        }
    }

    async fn command(&mut self, command: &str) -> Result<String, KimError> {
        self.stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .map_err(|e| KimError::Connect(e.to_string()))?;
        self.stream
            .flush()
            .await
            .map_err(|e| KimError::Connect(e.to_string()))?;
        self.status().await
    }

    /// The body of a multi-line answer, dot-unstuffed, CRLF line ends.
    async fn multiline(&mut self) -> Result<Vec<u8>, KimError> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            if line == b"." {
                return Ok(body);
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
            if body.len() > MAX_MAIL {
                return Err(KimError::Protocol("Nachricht zu groß".into()));
            }
        }
    }

    /// `UIDL`: message number and unique id of every mail in the mailbox.
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>, KimError> {
        self.command("UIDL").await?;
        let body = self.multiline().await?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| {
                let (n, uid) = l.trim().split_once(' ')?;
                Some((n.parse().ok()?, uid.trim().to_owned()))
            })
            .collect())
    }

    /// `RETR n`: the whole mail.
    pub async fn retr(&mut self, n: u32) -> Result<Vec<u8>, KimError> {
        self.command(&format!("RETR {n}")).await?;
        self.multiline().await
    }

    /// `DELE n`: marks the mail; it is deleted at `QUIT`.
    pub async fn dele(&mut self, n: u32) -> Result<(), KimError> {
        self.command(&format!("DELE {n}")).await.map(drop)
    }

    /// `QUIT`: ends the session and commits the deletions.
    pub async fn quit(mut self) -> Result<(), KimError> {
        self.command("QUIT").await.map(drop)
    }
}

fn auth_error(e: KimError) -> KimError {
    match e {
        KimError::Protocol(line) => KimError::Auth(line),
        other => other,
    }
}
