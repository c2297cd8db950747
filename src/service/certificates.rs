//! Reading a practice's certificates: the list with its search, and the detail page's whole
//! history (deliveries, attempts, mails, signatures, KIM, prints), recorded as viewed.

use uuid::Uuid;

use crate::domain::{DeliveryState, Doctor, DocumentKind, Practice};
use crate::storage::{self, Actor, AnyConnection, Result, Search};

/// Everything the detail page shows of one certificate.
#[derive(Debug)]
pub struct Detail {
    pub stored: storage::StoredCertificate,
    pub deliveries: Vec<storage::DeliveryRow>,
    /// Attempts of all deliveries, newest last: `(delivery kind, attempt)`.
    pub attempts: Vec<(DocumentKind, storage::AttemptRow)>,
    pub mails: Vec<storage::MailRow>,
    pub signatures: Vec<storage::SignatureRow>,
    /// KIM mails sent for this certificate.
    pub kim_sent: Vec<storage::KimMessageRow>,
    /// KIM mails that came back for it.
    pub kim_inbox: Vec<storage::InboxRow>,
    /// Sent over KIM more than 24 hours ago, no receipt yet.
    pub receipt_overdue: bool,
    pub prints: Vec<storage::PrintRow>,
}

/// The certificate `id` of the practice with its history, `None` when the practice has no
/// such certificate. Reading it is recorded (`certificate.viewed`).
pub fn detail(
    c: &mut AnyConnection,
    actor: &Actor,
    practice: &str,
    id: Uuid,
) -> Result<Option<Detail>> {
    let Some(stored) = storage::get(c, practice, id)? else {
        return Ok(None);
    };
    storage::record_view(c, actor, id)?;
    let deliveries = storage::deliveries_of(c, practice, id)?;
    let mails = storage::mails_of(c, practice, id)?;
    let key = id.to_string();
    let (kim_sent, kim_inbox) = storage::kim_history(c, practice, &key)?;
    let receipt_overdue = storage::overdue_receipts(c, Some(practice), storage::now())?
        .iter()
        .any(|o| o.certificate_id == key);
    let mut attempts = Vec::new();
    let kinds = deliveries.iter().map(|d| (&d.id, d.document_kind));
    let mail_kinds = mails.iter().map(|m| (&m.delivery_id, DocumentKind::Mail));
    for (delivery, kind) in kinds.chain(mail_kinds) {
        for a in storage::attempts_of(c, delivery)? {
            attempts.push((kind, a));
        }
    }
    Ok(Some(Detail {
        signatures: storage::signatures_of(c, practice, id)?,
        prints: storage::prints_of(c, practice, std::slice::from_ref(&key))?,
        stored,
        deliveries,
        attempts,
        mails,
        kim_sent,
        kim_inbox,
        receipt_overdue,
    }))
}

/// How many certificates a page of the list shows.
pub const PER_PAGE: i64 = 25;

/// One page (from 1) of the practice's certificates under `search`, with the state of each
/// listed certificate's eAU delivery `(certificate, state)`.
pub fn list(
    c: &mut AnyConnection,
    practice: &str,
    search: &Search,
    page: i64,
) -> Result<(storage::ListPage, Vec<(String, DeliveryState)>)> {
    let result = storage::list(c, practice, search, (page - 1) * PER_PAGE, PER_PAGE)?;
    let ids: Vec<String> = result.items.iter().map(|i| i.id.clone()).collect();
    let states = storage::send_states(c, practice, &ids)?;
    Ok((result, states))
}

/// The practice and its doctors, for the capture form.
pub fn master_data(c: &mut AnyConnection, practice: &str) -> Result<(Practice, Vec<Doctor>)> {
    storage::master_data(c, practice)
}

/// The certificate `id` of the practice, without recording a view (the follow-up form).
pub fn certificate(
    c: &mut AnyConnection,
    practice: &str,
    id: Uuid,
) -> Result<Option<storage::StoredCertificate>> {
    storage::get(c, practice, id)
}

/// "E-Mail erneut senden": a failed or waiting mail is due now; a sent one is sent again as a
/// new mail, with its audit row.
pub fn resend_mail(c: &mut AnyConnection, actor: &Actor, id: Uuid) -> Result<storage::Resent> {
    storage::atomically(c, |c| {
        let resent = storage::resend_mail(c, actor, id)?;
        if matches!(resent, storage::Resent::DueNow | storage::Resent::Queued) {
            storage::audit(c, actor, "mail.resent", Some(&id.to_string()), "")?;
        }
        Ok(resent)
    })
}

/// A certificate about to be printed, with what its printout says besides it.
#[derive(Debug)]
pub struct ToPrint {
    pub stored: storage::StoredCertificate,
    pub marks: crate::pdf::Marks,
}

/// Reads the certificate `id` of the actor's practice for printing and records the print,
/// described by `what` (told whether the eAU is at the insurer); `None` when the practice
/// has no such certificate.
pub fn print(
    c: &mut AnyConnection,
    actor: &Actor,
    id: Uuid,
    what: impl FnOnce(bool) -> String,
) -> Result<Option<ToPrint>> {
    let practice = actor.practice_id.as_str();
    let Some(stored) = storage::get(c, practice, id)? else {
        return Ok(None);
    };
    let delivered = storage::send_states(c, practice, &[id.to_string()])?
        .iter()
        .any(|(_, s)| *s == DeliveryState::Delivered);
    let marks = crate::pdf::Marks {
        hand_signed: storage::signed_with_smcb(c, practice, id)?,
        delivered,
    };
    storage::record_print(c, actor, id, &what(delivered))?;
    Ok(Some(ToPrint { stored, marks }))
}
