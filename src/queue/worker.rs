//! Queue workers: claim due deliveries, push them, classify the answer, record it.
//! Several workers (and several instances on one PostgreSQL) may run at once.

use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use uuid::Uuid;

use super::breaker;
use super::policy::{backoff, classify, Verdict, MAX_ATTEMPTS};
use crate::insurers::Answer;
use crate::insurers::{push, Document, PushClient};
use crate::kim::{self, Outgoing};
use crate::mail::{self, MailError, Mailer};
use crate::storage::{
    self, ClaimCursor, Claimed, ClaimedMail, Database, DeliveryState, DocumentKind, Finish,
    KimSend, StorageError,
};

/// The routes a delivery can take to its insurer: HTTP push, or KIM when the insurer has a
/// KIM address and the practice a KIM account.
#[derive(Clone)]
pub struct Connectors {
    pub http: PushClient,
    pub kim: kim::Transport,
}

impl From<PushClient> for Connectors {
    fn from(http: PushClient) -> Self {
        Self {
            http,
            kim: kim::Transport::default(),
        }
    }
}

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
    /// Pause between health probes of a failing destination (with a health URL; without one
    /// the probe is a retry and comes `BLIND_PROBE_FACTOR` times less often).
    pub probe_every: Duration,
    /// How often the claims start again from each insurer's oldest delivery (in between they
    /// go on after the last one claimed): the longest a retry or an expired lease behind the
    /// claim position waits beyond its due time while a backlog drains.
    pub rewind_every: Duration,
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
            probe_every: Duration::from_secs(5),
            rewind_every: Duration::from_secs(10),
        }
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The claimed delivery an attempt was made for, insurer push or mail alike.
struct Attempted<'a> {
    id: &'a str,
    /// The insurer's IK; `None` for a mail.
    destination: Option<&'a str>,
    /// Attempts including this one.
    attempts: i32,
    /// During a Störung every error is retryable, whatever the attempt count.
    outage: bool,
}

/// What to record for a verdict.
fn finish_of(
    c: &Attempted<'_>,
    verdict: &Verdict,
    detail: String,
    settings: &WorkerSettings,
) -> Finish {
    let base = Finish {
        delivery_id: c.id.to_owned(),
        destination: c.destination.map(str::to_owned),
        state: DeliveryState::Delivered,
        next_attempt_at: None,
        outcome: "delivered",
        http_status: None,
        detail,
        duration_ms: 0,
        insurer_failed: false,
        kim_message_id: None,
    };
    let attempts = u32::try_from(c.attempts).unwrap_or(u32::MAX);
    match verdict {
        Verdict::Delivered => base,
        Verdict::Submitted => Finish {
            state: DeliveryState::Sent,
            outcome: "sent",
            ..base
        },
        Verdict::Retry { not_before, .. } if attempts < MAX_ATTEMPTS || c.outage => {
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            let delay = backoff(attempts, jitter, *not_before);
            // The schedule is in minutes; scale it to the configured unit.
            let scaled = delay.mul_f64(settings.backoff_unit.as_secs_f64() / 60.0);
            Finish {
                state: DeliveryState::Pending,
                next_attempt_at: Some(storage::now() + chrono(scaled)),
                outcome: "retry",
                insurer_failed: true,
                ..base
            }
        }
        Verdict::Retry { .. } => Finish {
            state: DeliveryState::Dead,
            outcome: "dead",
            insurer_failed: true,
            ..base
        },
        Verdict::Regenerate { .. } => Finish {
            state: DeliveryState::NeedsNewId,
            outcome: "needs_new_id",
            ..base
        },
        Verdict::Dead { .. } => Finish {
            state: DeliveryState::Dead,
            outcome: "dead",
            ..base
        },
    }
}

fn reason(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Delivered => "angenommen".into(),
        Verdict::Submitted => "an das KIM-Clientmodul übergeben".into(),
        Verdict::Retry { reason, .. } | Verdict::Dead { reason } => reason.clone(),
        Verdict::Regenerate { code } => format!("KBV {code}: neues Dokument mit neuer ID nötig"),
    }
}

/// Sends one claimed delivery (HTTP push or KIM mail) and decides what to record (the caller
/// records it, batched).
async fn attempt(
    routes: &Connectors,
    db: &Database,
    settings: &WorkerSettings,
    c: Claimed,
) -> Finish {
    if let Some(kim) = c.kim.clone() {
        return kim_attempt(routes, db, settings, c, kim).await;
    }
    let client = &routes.http;
    let body = c.body();
    let (answer, took) = match (&c.push_url, body, Uuid::parse_str(&c.document_id)) {
        (Some(url), Some((bytes, content_type)), Ok(id)) => {
            let document = Document {
                id,
                content_type,
                bytes,
                paper_received_at: c.paper_received_at,
            };
            let auth = c.auth_header.as_ref().map(crate::secret::Secret::expose);
            push(client, url, auth, document).await
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
    let verdict = if c.fhir_xml.is_none() && c.signed.is_none() {
        Verdict::Dead {
            reason: "kein XML-Dokument gespeichert".into(),
        }
    } else {
        classify(&answer, c.outage)
    };
    let mut finish = insurer_finish(&c, &verdict, took, settings);
    if let Answer::Http { status, .. } = &answer {
        finish.http_status = Some(i32::from(*status));
    }
    finish
}

/// Hands one signed document to the practice's KIM client module: one mail, one attachment,
/// the Message-ID recorded at the claim. Accepted means "sent": delivered once its receipt is
/// read from the mailbox.
async fn kim_attempt(
    routes: &Connectors,
    db: &Database,
    settings: &WorkerSettings,
    c: Claimed,
    kim: KimSend,
) -> Finish {
    let started = std::time::Instant::now();
    let verdict = match (&c.signed, Uuid::parse_str(&c.document_id)) {
        (None, _) => Verdict::Dead {
            reason:
                "KIM verlangt ein signiertes Dokument (.p7s): signieren oder signiert importieren"
                    .into(),
        },
        (Some(_), Err(_)) => Verdict::Dead {
            reason: "Dokument-ID ungültig".into(),
        },
        (Some(p7s), Ok(document_id)) => {
            let answer = match routes.kim.account(db, &c.practice_id).await {
                Err(reason) => Answer::Config(reason),
                Ok(account) => {
                    let message = kim::compose(&Outgoing {
                        message_id: &kim.message_id,
                        from: &account.address,
                        to: &kim.to,
                        storno: c.kind == DocumentKind::Storno,
                        test_data: account.test_data,
                        document_id,
                        p7s,
                        date: chrono::Utc::now(),
                        support: routes.kim.sender.support(),
                    });
                    routes.kim.sender.send(&account, &kim.to, &message).await
                }
            };
            classify(&answer, c.outage)
        }
    };
    let mut finish = insurer_finish(&c, &verdict, started.elapsed(), settings);
    finish.kim_message_id = Some(kim.message_id);
    finish
}

/// What to record for an insurer delivery's attempt (push or KIM mail) that took `took`.
fn insurer_finish(
    c: &Claimed,
    verdict: &Verdict,
    took: Duration,
    settings: &WorkerSettings,
) -> Finish {
    let attempted = Attempted {
        id: &c.id,
        destination: Some(&c.insurer_ik),
        attempts: c.attempts,
        outage: c.outage,
    };
    let mut finish = finish_of(&attempted, verdict, reason(verdict), settings);
    finish.duration_ms = millis(took);
    finish
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Composes and sends one claimed patient mail and decides what to record. The message (and
/// its Message-ID) is the same on every attempt.
async fn mail_attempt(mailer: &Mailer, settings: &WorkerSettings, m: ClaimedMail) -> Finish {
    let started = std::time::Instant::now();
    let from = mailer.from().clone();
    let id = m.delivery_id.clone();
    let attempts = m.attempts;
    let composed = tokio::task::spawn_blocking(move || {
        let certificate =
            serde_json::from_str(&m.certificate).map_err(|e| MailError::Compose(e.to_string()))?;
        let patient = m.mail().map_err(|e| MailError::Compose(e.to_string()))?;
        let outgoing = mail::Outgoing {
            message_id: m.message_id,
            mail: patient,
            certificate,
            print_only: m.print_only,
        };
        mail::compose(&outgoing, &from)
    })
    .await
    .unwrap_or_else(|e| Err(MailError::Compose(e.to_string())));
    let sent = match composed {
        Ok(message) => mailer.send(message).await,
        Err(e) => Err(e),
    };
    let verdict = match sent {
        Ok(()) => Verdict::Delivered,
        Err(e @ MailError::Transient(_)) => Verdict::Retry {
            reason: e.to_string(),
            not_before: None,
        },
        Err(e) => Verdict::Dead {
            reason: e.to_string(),
        },
    };
    let detail = match &verdict {
        Verdict::Delivered => "versandt".to_owned(),
        other => reason(other),
    };
    let attempted = Attempted {
        id: &id,
        destination: None,
        attempts,
        outage: false,
    };
    let mut finish = finish_of(&attempted, &verdict, detail, settings);
    finish.duration_ms = millis(started.elapsed());
    finish
}

/// Records a batch of finished attempts in one transaction.
async fn record(
    db: &Database,
    settings: &WorkerSettings,
    finishes: Vec<Finish>,
) -> Result<(), StorageError> {
    let rule = storage::Breaker {
        rule: breaker::after_attempts,
        open_after: settings.open_after,
        probe_in: chrono(settings.probe_every),
    };
    db.run(move |conn| storage::finish_attempts(conn, &finishes, rule))
        .await
}

/// One round of patient mails: claims what is due, sends it, records the outcomes. Returns how
/// many were tried.
pub async fn run_mail_once(
    db: &Database,
    mailer: &Mailer,
    settings: &WorkerSettings,
) -> Result<usize, StorageError> {
    let (lease, batch) = (chrono(settings.lease), settings.batch);
    let claimed = db
        .run(move |c| storage::claim_mails(c, lease, batch))
        .await?;
    let n = claimed.len();
    // Each mail is recorded as soon as it is sent: a crash then repeats at most the mails in
    // flight, not every mail of the round.
    let recorded: Vec<Result<(), StorageError>> = futures_util::stream::iter(claimed)
        .map(|m| async move {
            let finish = mail_attempt(mailer, settings, m).await;
            record_patiently(db, settings, vec![finish]).await
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    recorded.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(n)
}

/// Records sent mails, retrying for a while when the database is away (a restart): a mail whose
/// sending is not recorded goes out again when its lease ends, so giving up early would send
/// it twice.
async fn record_patiently(
    db: &Database,
    settings: &WorkerSettings,
    finishes: Vec<Finish>,
) -> Result<(), StorageError> {
    let mut tries = 0;
    loop {
        match record(db, settings, finishes.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if tries >= 60 => return Err(e),
            Err(e) => {
                tries += 1;
                tracing::warn!(error = %e, "recording sent mails failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Probes the failing destinations whose probe is due, and records what they answered.
async fn probe_open(
    db: &Database,
    client: &PushClient,
    settings: &WorkerSettings,
) -> Result<(), StorageError> {
    let due = db.run(storage::due_probes).await?;
    // Concurrently: one unreachable insurer's probe must not hold up the others' drain.
    let probed: Vec<(String, storage::Probe, chrono::Duration)> = futures_util::stream::iter(due)
        .map(|(ik, health)| async move {
            match health {
                Some(url) => {
                    let probe = if client.probe(&url).await {
                        storage::Probe::Healthy
                    } else {
                        storage::Probe::Unhealthy
                    };
                    (ik, probe, chrono(settings.probe_every))
                }
                None => (
                    ik,
                    storage::Probe::Blind,
                    chrono(settings.probe_every) * storage::BLIND_PROBE_FACTOR,
                ),
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (ik, probe, retry) in probed {
        db.run(move |c| storage::record_probe(c, &ik, probe, retry, breaker::after_probe))
            .await?;
    }
    Ok(())
}

/// One round: probes, then claims and pushes what is due, and records the answers in one
/// transaction. Returns how many were pushed. (Tests drive the queue round by round; [`run`]
/// overlaps claiming, pushing and recording.)
pub async fn run_once(
    db: &Database,
    routes: &Connectors,
    settings: &WorkerSettings,
) -> Result<usize, StorageError> {
    probe_open(db, &routes.http, settings).await?;
    let (claimed, _) = claim(db, settings, ClaimCursor::default()).await?;
    let n = claimed.len();
    let finishes: Vec<Finish> = futures_util::stream::iter(claimed)
        .map(|c| attempt(routes, db, settings, c))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    record(db, settings, finishes).await?;
    Ok(n)
}

/// Claims a batch of due deliveries from `cursor` on; returns the cursor moved on.
async fn claim(
    db: &Database,
    settings: &WorkerSettings,
    mut cursor: ClaimCursor,
) -> Result<(Vec<Claimed>, ClaimCursor), StorageError> {
    let (lease, batch) = (chrono(settings.lease), settings.batch);
    db.run(move |c| {
        let claimed = storage::claim_due(c, lease, batch, &mut cursor)?;
        Ok((claimed, cursor))
    })
    .await
}

/// Waits `pause`, or less if `stop` turns true. Returns whether to stop.
async fn idle(pause: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    if !pause.is_zero() && !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
    *stop.borrow()
}

/// Runs until `stop` turns true. Errors are logged and retried; nothing is lost because
/// every state change is in the database, and a claim whose answer was never recorded (a
/// crash) returns to the queue when its lease runs out.
///
/// Insurer pushes run as a pipeline: a claimer keeps the next batch ready while up to
/// `concurrency` pushes are in flight, and a recorder writes the answers in batches, one
/// transaction each. Patient mails, when a mailer is configured, run beside it on the same
/// outbox (a slow mail server never holds up the insurers).
pub async fn run(
    db: Database,
    routes: Connectors,
    mailer: Option<Mailer>,
    settings: WorkerSettings,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mails = mailer.map(|mailer| {
        let (db, settings, mut stop) = (db.clone(), settings.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let pause = match run_mail_once(&db, &mailer, &settings).await {
                    Ok(0) => settings.idle_poll,
                    Ok(_) => Duration::ZERO,
                    Err(e) => {
                        tracing::warn!(error = %e, "mail round failed");
                        settings.idle_poll
                    }
                };
                if idle(pause, &mut stop).await {
                    return;
                }
            }
        })
    });
    let batch = usize::try_from(settings.batch.max(1)).unwrap_or(64);
    let (claimed_tx, claimed_rx) = tokio::sync::mpsc::channel::<Claimed>(batch);
    let (done_tx, done_rx) = tokio::sync::mpsc::channel::<Finish>(batch * 4);
    let prober = probe_loop(&db, &routes.http, &settings, stop.clone());
    let claimer = claim_loop(&db, &settings, claimed_tx, stop.clone());
    let recorder = record_loop(&db, &settings, done_rx, stop.clone());
    let pushed = async {
        // Owned here, so the recorder sees the channel close once the last push is done.
        let done = done_tx;
        futures_util::stream::unfold(claimed_rx, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        })
        .map(|c| attempt(&routes, &db, &settings, c))
        .buffer_unordered(settings.concurrency.max(1))
        .for_each(|finish| {
            let done = done.clone();
            async move {
                // The recorder outlives the pushers; a closed channel means shutdown.
                let _ = done.send(finish).await;
            }
        })
        .await;
    };
    tokio::join!(prober, claimer, pushed, recorder);
    if let Some(mails) = mails {
        let _ = mails.await;
    }
}

/// Probes failing insurers beside the drain (a slow health URL never holds up the claims).
async fn probe_loop(
    db: &Database,
    client: &PushClient,
    settings: &WorkerSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = probe_open(db, client, settings).await {
            tracing::warn!(error = %e, "insurer probe failed");
        }
        if idle(settings.idle_poll, &mut stop).await {
            return;
        }
    }
}

/// Claims batches while there is room in the pipeline; idles when nothing is due.
async fn claim_loop(
    db: &Database,
    settings: &WorkerSettings,
    out: tokio::sync::mpsc::Sender<Claimed>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut cursor = ClaimCursor::default();
    let mut rewound = std::time::Instant::now();
    loop {
        if rewound.elapsed() >= settings.rewind_every {
            cursor.rewind();
            rewound = std::time::Instant::now();
        }
        let pause = match claim(db, settings, std::mem::take(&mut cursor)).await {
            Ok((claimed, moved)) => {
                cursor = moved;
                if claimed.is_empty() {
                    settings.idle_poll
                } else {
                    for c in claimed {
                        if out.send(c).await.is_err() {
                            return;
                        }
                    }
                    Duration::ZERO
                }
            }
            // The cursor is lost with the failed claim: the next one starts from the oldest.
            Err(e) => {
                tracing::warn!(error = %e, "queue claim failed");
                settings.idle_poll
            }
        };
        if idle(pause, &mut stop).await {
            return;
        }
    }
}

/// Writes answers in batches (whatever has arrived, up to four claim batches), one transaction
/// each; a failed write is retried until it succeeds or the worker stops (then the leases
/// bring those deliveries back).
async fn record_loop(
    db: &Database,
    settings: &WorkerSettings,
    mut done: tokio::sync::mpsc::Receiver<Finish>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let most = usize::try_from(settings.batch.max(1)).unwrap_or(64) * 4;
    while let Some(first) = done.recv().await {
        let mut finishes = vec![first];
        while finishes.len() < most {
            match done.try_recv() {
                Ok(f) => finishes.push(f),
                Err(_) => break,
            }
        }
        loop {
            match record(db, settings, finishes.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "recording answers failed; retrying");
                    if idle(settings.idle_poll, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }
}
