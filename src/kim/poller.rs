//! Reads the practices' KIM mailboxes (TA P5-04 AK1: every 10 minutes by default, configurable
//! per practice, and on demand from the dashboard). Each new mail is recorded, with what it does
//! to its delivery, in one transaction before anything is deleted; only recorded mails that
//! matched one of AU-Relay's documents are deleted (the mailbox may be shared with the practice
//! software). Deletions take effect at `QUIT`: a poller killed in between deletes nothing, and
//! the next reading skips what is recorded (same UIDL), so nothing is lost or counted twice.

use std::time::Duration;

use super::inbound::classify;
use super::pop3::Pop3;
use super::{account_of, KimError};
use crate::queue::policy::after_inbound;
use crate::storage::{self, Database, KimAccountRow, KimRetry, Recorded};

/// What one reading of a mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Mails in the mailbox.
    pub listed: usize,
    /// Mails recorded by this reading.
    pub recorded: usize,
    /// Of those, matched to a document.
    pub matched: usize,
    /// Mails deleted from the mailbox.
    pub deleted: usize,
}

/// How a reading ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `QUIT`: the deletions take effect.
    Quit,
    /// The connection is dropped after `DELE` without `QUIT`, as when the poller is killed
    /// between reading and deleting: the server deletes nothing.
    Killed,
}

/// Settings of the poller.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub timeout: Duration,
    /// How often the poller looks for due mailboxes.
    pub tick: Duration,
    pub retry: KimRetry,
    /// Where insurers' KIM addresses are looked up (once a minute).
    pub directory: super::vzd::DirectorySettings,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            tick: Duration::from_secs(5),
            retry: KimRetry::default(),
            directory: super::vzd::DirectorySettings::default(),
        }
    }
}

/// Reads one practice's mailbox.
pub async fn poll_account(
    db: &Database,
    row: &KimAccountRow,
    settings: &PollSettings,
    ending: Ending,
) -> Result<PollReport, KimError> {
    let account = account_of(row)?;
    let practice = account.practice_id.clone();
    let mut pop = Pop3::connect(&account, settings.timeout).await?;
    let listing = pop.uidl().await?;
    let uidls: Vec<String> = listing.iter().map(|(_, u)| u.clone()).collect();
    let mut report = PollReport {
        listed: listing.len(),
        ..PollReport::default()
    };
    let known = {
        let (p, u) = (practice.clone(), uidls.clone());
        db.run(move |c| storage::known_uidls(c, &p, &u)).await?
    };
    for (n, uidl) in listing.iter().filter(|(_, u)| !known.contains(u)) {
        let raw = pop.retr(*n).await?;
        let inbound = classify(&raw);
        let raw = stored_form(raw, &inbound);
        let (p, u, retry) = (practice.clone(), uidl.clone(), settings.retry);
        let recorded = db
            .run(move |c| storage::record_inbound(c, &p, &u, &raw, &inbound, retry, after_inbound))
            .await?;
        if let Recorded::New { delivery_id } = recorded {
            report.recorded += 1;
            report.matched += usize::from(delivery_id.is_some());
        }
    }
    let deletable = {
        let (p, u) = (practice.clone(), uidls.clone());
        db.run(move |c| storage::deletable_uidls(c, &p, &u)).await?
    };
    let mut deleted = Vec::new();
    for (n, uidl) in listing.iter().filter(|(_, u)| deletable.contains(u)) {
        pop.dele(*n).await?;
        deleted.push(uidl.clone());
    }
    if ending == Ending::Killed {
        drop(pop);
        return Ok(report);
    }
    pop.quit().await?;
    report.deleted = deleted.len();
    db.run(move |c| storage::mark_inbox_deleted(c, &practice, &deleted))
        .await?;
    Ok(report)
}

/// What is kept of a mail: receipts and error messages whole (they are the evidence); any
/// other mail only its header (it may be a letter with patient data for the practice
/// software, which shares the mailbox and keeps the mail itself).
fn stored_form(raw: Vec<u8>, inbound: &super::inbound::Inbound) -> Vec<u8> {
    if inbound.kind != super::inbound::Kind::Other {
        return raw;
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(raw.len());
    raw[..end].to_vec()
}

/// Reads every due mailbox once; returns the reports (errors are recorded on the account and
/// shown on the dashboard).
pub async fn poll_due(
    db: &Database,
    settings: &PollSettings,
) -> Result<Vec<(String, Result<PollReport, String>)>, KimError> {
    let due = db.run(storage::accounts_due_for_poll).await?;
    let mut out = Vec::new();
    for row in due {
        let claim = row.clone();
        if !db.run(move |c| storage::claim_poll(c, &claim)).await? {
            continue;
        }
        let result = poll_account(db, &row, settings, Ending::Quit)
            .await
            .map_err(|e| e.to_string());
        let (p, error) = (row.practice_id.clone(), result.as_ref().err().cloned());
        if let Some(e) = &error {
            tracing::warn!(error = %e, "KIM mailbox could not be read");
        }
        db.run(move |c| storage::record_poll(c, &p, error.as_deref()))
            .await?;
        out.push((row.practice_id, result));
    }
    Ok(out)
}

/// Runs until `stop` turns true.
pub async fn run(
    db: Database,
    settings: PollSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut looked_up: Option<std::time::Instant> = None;
    loop {
        if looked_up.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            looked_up = Some(std::time::Instant::now());
            if let Err(e) = super::vzd::resolve_due(&db, &settings.directory).await {
                tracing::warn!(error = %e, "KIM address lookup failed");
            }
        }
        if let Err(e) = poll_due(&db, &settings).await {
            tracing::warn!(error = %e, "KIM poll round failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.tick) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}
