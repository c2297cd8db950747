//! Patient mails: a delivery row on the mail channel plus what the mail needs (address, consent,
//! password policy, Message-ID). Written in the capture transaction; sent by the queue workers.

use crate::domain::{DeliveryState, EmailAddress, MailResend, PasswordPolicy, PatientMail};
use crate::secret::Secret;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::outbox::{insert_delivery, Channel, DocumentKind, NewDelivery, Progress};
use super::schema::{certificates, deliveries, patient_mails};
use super::{begin_write, now, Actor, AnyConnection, Result};

/// A patient mail to be written with its certificate.
#[derive(Debug, Clone, Copy)]
pub struct NewMail<'a> {
    pub mail: &'a PatientMail,
    /// Domain part of the Message-ID (the sender's domain).
    pub message_domain: &'a str,
}

/// Queues a patient mail for a certificate. Call inside the capture transaction; the consent
/// is recorded as given by `actor` now.
pub(super) fn enqueue_mail(
    conn: &mut AnyConnection,
    actor: &Actor,
    certificate_id: &str,
    mail: &NewMail<'_>,
    consent: (&str, NaiveDateTime),
) -> QueryResult<String> {
    let delivery = NewDelivery {
        certificate_id,
        practice_id: &actor.practice_id,
        insurer_ik: "",
        kind: DocumentKind::Mail,
        state: DeliveryState::Pending,
    };
    let id = insert_delivery(conn, &delivery, None)?;
    diesel::insert_into(patient_mails::table)
        .values((
            (
                patient_mails::delivery_id.eq(&id),
                patient_mails::certificate_id.eq(certificate_id),
                patient_mails::recipient.eq(mail.mail.recipient.as_str()),
                patient_mails::employer_copy.eq(mail.mail.employer_copy),
                patient_mails::password_policy.eq(mail.mail.policy.code()),
                patient_mails::password.eq(mail.mail.password.as_ref().map(Secret::expose)),
            ),
            (
                patient_mails::message_id.eq(format!("<{id}@{}>", mail.message_domain)),
                patient_mails::consent_by.eq(consent.0),
                patient_mails::consent_at.eq(consent.1),
                patient_mails::requested_by.eq(&actor.name),
                patient_mails::created_at.eq(now()),
            ),
        ))
        .execute(conn)?;
    Ok(id)
}

/// A patient mail as shown on the detail page (and as "Erneut senden" reads the newest).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = patient_mails)]
pub struct MailRow {
    pub delivery_id: String,
    pub recipient: String,
    pub employer_copy: bool,
    pub password_policy: String,
    pub password: Option<String>,
    pub consent_by: String,
    pub consent_at: NaiveDateTime,
    pub requested_by: String,
    #[diesel(embed)]
    pub progress: Progress,
}

/// The mails of one of a practice's certificates, oldest first.
pub fn mails_of(
    conn: &mut AnyConnection,
    practice_id: &str,
    certificate_id: Uuid,
) -> Result<Vec<MailRow>> {
    Ok(deliveries::table
        .inner_join(patient_mails::table)
        .filter(deliveries::practice_id.eq(practice_id))
        .filter(deliveries::certificate_id.eq(certificate_id.to_string()))
        .filter(deliveries::channel.eq(Channel::Mail))
        .order((deliveries::created_at, deliveries::id))
        .select(MailRow::as_select())
        .load(conn)?)
}

/// What "Erneut senden" did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resent {
    /// A waiting or failed mail is due now (same Message-ID).
    DueNow,
    /// The last mail was sent: a new mail (new Message-ID) to the same address is queued.
    Queued,
    /// The mail is being sent right now.
    InFlight,
    /// No mail was requested for this certificate, or it was cancelled.
    NoMail,
    NotFound,
}

/// Staff resend the patient mail by hand. The consent and the address of the last mail stay.
/// Call inside a transaction (`service::resend_mail`, which adds the audit row): it takes the
/// write lock first, because it reads the last mail before it writes.
pub fn resend_mail(c: &mut AnyConnection, actor: &Actor, certificate_id: Uuid) -> Result<Resent> {
    let key = certificate_id.to_string();
    begin_write(c)?;
    let certificate: Option<Option<NaiveDateTime>> = certificates::table
        .filter(certificates::id.eq(&key))
        .filter(certificates::practice_id.eq(&actor.practice_id))
        .select(certificates::cancelled_at)
        .first(c)
        .optional()?;
    match certificate {
        None => return Ok(Resent::NotFound),
        // A cancelled certificate's mail is not sent again.
        Some(Some(_)) => return Ok(Resent::NoMail),
        Some(None) => {}
    }
    let last: Option<MailRow> = deliveries::table
        .inner_join(patient_mails::table)
        .filter(deliveries::certificate_id.eq(&key))
        .filter(deliveries::channel.eq(Channel::Mail))
        .order((deliveries::created_at.desc(), deliveries::id.desc()))
        .select(MailRow::as_select())
        .first(c)
        .optional()?;
    let Some(last) = last else {
        return Ok(Resent::NoMail);
    };
    let id = last.delivery_id;
    Ok(match last.progress.state.mail_resend() {
        MailResend::Refused => return Ok(Resent::InFlight),
        MailResend::NewMail => {
            let message_id: String = patient_mails::table
                .find(&id)
                .select(patient_mails::message_id)
                .first(c)?;
            let domain = message_id
                .trim_end_matches('>')
                .rsplit_once('@')
                .map_or("au-relay.invalid", |(_, d)| d)
                .to_owned();
            let again = stored_mail(
                &last.recipient,
                last.employer_copy,
                &last.password_policy,
                last.password.map(Secret::from),
            )
            .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?;
            let mail = NewMail {
                mail: &again,
                message_domain: &domain,
            };
            enqueue_mail(c, actor, &key, &mail, (&last.consent_by, last.consent_at))?;
            Resent::Queued
        }
        MailResend::DueNow => {
            // Not if a worker has claimed it meanwhile (its lease set): that send is recorded.
            diesel::update(
                deliveries::table
                    .find(&id)
                    .filter(deliveries::lease_until.is_null()),
            )
            .set((
                deliveries::state.eq(DeliveryState::Pending),
                deliveries::next_attempt_at.eq(now()),
            ))
            .execute(c)?;
            Resent::DueNow
        }
    })
}

/// A stored patient mail in its domain shape; a value that no longer parses is named.
pub fn stored_mail(
    recipient: &str,
    employer_copy: bool,
    policy: &str,
    password: Option<Secret>,
) -> std::result::Result<PatientMail, crate::domain::DomainError> {
    Ok(PatientMail {
        recipient: EmailAddress::parse(recipient)?,
        employer_copy,
        policy: PasswordPolicy::parse(policy)?,
        password,
    })
}

/// Withdraws the unsent mails of a certificate (it was cancelled), not one being sent (under
/// a worker's lease). Call inside a transaction.
pub(super) fn withdraw_mails(conn: &mut AnyConnection, certificate_id: &str) -> QueryResult<usize> {
    diesel::update(
        deliveries::table
            .filter(deliveries::certificate_id.eq(certificate_id))
            .filter(deliveries::channel.eq(Channel::Mail))
            .filter(deliveries::state.eq_any([DeliveryState::Pending, DeliveryState::Dead]))
            .filter(deliveries::lease_until.is_null()),
    )
    .set(deliveries::state.eq(DeliveryState::Withdrawn))
    .execute(conn)
}
