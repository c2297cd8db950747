//! Queue workers: claim due deliveries, push them, classify the answer, record it.
//! Several workers (and several instances on one PostgreSQL) may run at once.

use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use uuid::Uuid;

use super::policy::{backoff, classify, Verdict, MAX_ATTEMPTS};
use crate::insurers::{push, PushClient};
use crate::queue::Answer;
use crate::storage::{self, state, Claimed, Database, Finish, StorageError};

/// Tuning of the workers.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Pushes in flight at once (per process).
    pub concurrency: usize,
    /// Deliveries claimed per round.
    pub batch: i64,
    /// Pause when nothing is due.
    pub idle_poll: Duration,
    /// How long a claim holds before another worker may take the delivery over.
    pub lease: Duration,
    /// The unit of the retry schedule: one minute in production (1, 2, 4 … minutes);
    /// tests shrink it.
    pub backoff_unit: Duration,
    /// Consecutive insurer failures that open its breaker.
    pub open_after: i32,
    /// Pause between health probes of an open destination.
    pub probe_every: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            batch: 64,
            idle_poll: Duration::from_millis(500),
            lease: Duration::from_secs(300),
            backoff_unit: Duration::from_secs(60),
            open_after: 5,
            probe_every: Duration::from_secs(30),
        }
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What to record for a verdict.
fn finish_of(c: &Claimed, verdict: &Verdict, detail: String, settings: &WorkerSettings) -> Finish {
    let base = Finish {
        delivery_id: c.id.clone(),
        insurer_ik: c.insurer_ik.clone(),
        state: state::DELIVERED,
        next_attempt_at: None,
        outcome: "delivered",
        http_status: None,
        detail,
        duration_ms: 0,
        insurer_failed: false,
    };
    let attempts = u32::try_from(c.attempts).unwrap_or(u32::MAX);
    match verdict {
        Verdict::Delivered => base,
        Verdict::Retry { not_before, .. } if attempts < MAX_ATTEMPTS || c.outage => {
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            let delay = backoff(attempts, jitter, *not_before);
            // The schedule is in minutes; scale it to the configured unit.
            let scaled = delay.mul_f64(settings.backoff_unit.as_secs_f64() / 60.0);
            Finish {
                state: state::PENDING,
                next_attempt_at: Some(storage::now() + chrono(scaled)),
                outcome: "retry",
                insurer_failed: true,
                ..base
            }
        }
        Verdict::Retry { .. } => Finish {
            state: state::DEAD,
            outcome: "dead",
            insurer_failed: true,
            ..base
        },
        Verdict::Regenerate { .. } => Finish {
            state: state::NEEDS_NEW_ID,
            outcome: "needs_new_id",
            ..base
        },
        Verdict::Dead { .. } => Finish {
            state: state::DEAD,
            outcome: "dead",
            ..base
        },
    }
}

fn reason(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Delivered => "angenommen".into(),
        Verdict::Retry { reason, .. } | Verdict::Dead { reason } => reason.clone(),
        Verdict::Regenerate { code } => format!("KBV {code}: neues Dokument mit neuer ID nötig"),
    }
}

/// Pushes one claimed delivery and records the outcome.
async fn deliver(
    db: &Database,
    client: &PushClient,
    settings: &WorkerSettings,
    c: Claimed,
) -> Result<(), StorageError> {
    let (answer, took) = match (&c.push_url, &c.fhir_xml, Uuid::parse_str(&c.document_id)) {
        (Some(url), Some(xml), Ok(id)) => {
            push(
                client,
                url,
                c.auth_header.as_deref(),
                id,
                xml.clone().into_bytes(),
            )
            .await
        }
        _ => (
            Answer::Http {
                status: 0,
                retry_after: None,
                body: String::new(),
            },
            Duration::ZERO,
        ),
    };
    let verdict = if c.fhir_xml.is_none() {
        Verdict::Dead {
            reason: "kein XML-Dokument gespeichert".into(),
        }
    } else {
        classify(&answer, c.outage)
    };
    let detail = reason(&verdict);
    let mut finish = finish_of(&c, &verdict, detail, settings);
    finish.duration_ms = i32::try_from(took.as_millis()).unwrap_or(i32::MAX);
    if let Answer::Http { status, .. } = &answer {
        finish.http_status = Some(i32::from(*status));
    }
    let (open_after, probe) = (settings.open_after, chrono(settings.probe_every));
    db.run(move |conn| storage::finish_attempt(conn, &finish, open_after, probe))
        .await
}

/// Probes open destinations whose probe is due.
async fn probe_open(
    db: &Database,
    client: &PushClient,
    settings: &WorkerSettings,
) -> Result<(), StorageError> {
    for (ik, health) in db.run(storage::due_probes).await? {
        let healthy = match &health {
            Some(url) => client.probe(url).await,
            None => true,
        };
        let retry = chrono(settings.probe_every);
        db.run(move |c| storage::record_probe(c, &ik, healthy, retry))
            .await?;
    }
    Ok(())
}

/// One round: probes, then claims and pushes what is due. Returns how many were pushed.
pub async fn run_once(
    db: &Database,
    client: &PushClient,
    settings: &WorkerSettings,
) -> Result<usize, StorageError> {
    probe_open(db, client, settings).await?;
    let (lease, batch) = (chrono(settings.lease), settings.batch);
    let claimed = db.run(move |c| storage::claim_due(c, lease, batch)).await?;
    let n = claimed.len();
    let results: Vec<_> = futures_util::stream::iter(claimed)
        .map(|c| deliver(db, client, settings, c))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(n)
}

/// Runs until `stop` turns true. Errors are logged and retried; nothing is lost because
/// every state change is in the database.
pub async fn run(
    db: Database,
    client: PushClient,
    settings: WorkerSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let pause = match run_once(&db, &client, &settings).await {
            Ok(0) => settings.idle_poll,
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!(error = %e, "queue round failed");
                settings.idle_poll
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
