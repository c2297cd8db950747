//! The push contract (DESIGN.md §5): `POST {endpoint}` with the document,
//! `Content-Type: application/fhir+xml` (the KBV XML) or `application/pkcs7-mime` (the signed
//! `.p7s`, byte for byte as stored), `Idempotency-Key: <bundle uuid>`.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use uuid::Uuid;

use super::Answer;

/// A shared HTTP client with an overall timeout per request.
#[derive(Clone)]
pub struct PushClient {
    client: reqwest::Client,
}

impl PushClient {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // Every connection of the pushes in flight stays open for the next push: with a
            // cap below the push concurrency, most pushes paid a new TCP connection.
            .pool_max_idle_per_host(usize::MAX)
            .build()?;
        Ok(Self { client })
    }

    /// `GET {health_url}`: whether the destination answers 2xx.
    pub async fn probe(&self, health_url: &str) -> bool {
        // Short: probes of failing insurers run every few seconds beside the drain.
        self.client
            .get(health_url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

/// One document to push.
#[derive(Debug, Clone)]
pub struct Document {
    /// The bundle UUID (`Idempotency-Key`).
    pub id: Uuid,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    /// The insurer already has the KK copy on paper (its scan was matched): sent as
    /// `X-AU-Relay-Paper-Copy-Received: <RFC 3339>`, so its system can skip the document.
    pub paper_received_at: Option<chrono::NaiveDateTime>,
}

/// The header that tells an insurer its paper KK copy of the document was matched.
pub const PAPER_COPY_HEADER: &str = "X-AU-Relay-Paper-Copy-Received";

/// Pushes one document and returns the answer and how long it took. Bodies of answers are
/// read up to 64 KiB (enough for an OperationOutcome).
pub async fn push(
    client: &PushClient,
    endpoint: &str,
    authorization: Option<&str>,
    document: Document,
) -> (Answer, Duration) {
    let started = Instant::now();
    let mut request = client
        .client
        .post(endpoint)
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static(document.content_type),
        )
        .header("Idempotency-Key", document.id.to_string());
    if let Some(at) = document.paper_received_at {
        request = request.header(PAPER_COPY_HEADER, crate::scan::matching::rfc3339(&at));
    }
    let mut request = request.body(document.bytes);
    if let Some(auth) = authorization {
        request = request.header(AUTHORIZATION, auth);
    }
    let answer = match request.send().await {
        Err(e) => Answer::Transport(transport_reason(&e)),
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = match response.bytes().await {
                Ok(b) => String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned(),
                Err(e) => return (Answer::Transport(transport_reason(&e)), started.elapsed()),
            };
            Answer::Http {
                status,
                retry_after,
                body,
            }
        }
    };
    (answer, started.elapsed())
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "Zeitüberschreitung".into()
    } else if e.is_connect() {
        "Verbindung abgelehnt".into()
    } else {
        "Verbindung abgebrochen".into()
    }
}
