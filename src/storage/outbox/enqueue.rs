//! New deliveries, due now, written inside the transaction that stores their document.

use diesel::prelude::*;
use uuid::Uuid;

use super::{DeliveryState, DocumentKind};
use crate::storage::schema::deliveries;
use crate::storage::{now, AnyConnection};

/// Adds a delivery, due now: `pending`, or [`DeliveryState::AwaitingSignature`] when it must wait
/// for the practice's signature. Call inside the transaction that stores the document.
pub fn enqueue(
    conn: &mut AnyConnection,
    certificate_id: &str,
    practice_id: &str,
    insurer_ik: &str,
    kind: DocumentKind,
    awaits_signature: bool,
) -> QueryResult<()> {
    let initial = DeliveryState::initial(awaits_signature);
    let delivery = NewDelivery {
        certificate_id,
        practice_id,
        insurer_ik,
        kind,
        state: initial,
    };
    insert_delivery(conn, &delivery, None).map(drop)
}

/// Adds a Storno delivery carrying its own (unsigned) document: pending, or waiting for the
/// signature in a practice that signs. Call inside a transaction.
pub fn enqueue_storno(
    conn: &mut AnyConnection,
    certificate_id: &str,
    practice_id: &str,
    insurer_ik: &str,
    storno_id: &str,
    xml: &str,
) -> QueryResult<()> {
    let delivery = NewDelivery {
        certificate_id,
        practice_id,
        insurer_ik,
        kind: DocumentKind::Storno,
        state: crate::storage::signatures::initial_state(conn, practice_id)?,
    };
    insert_delivery(conn, &delivery, Some((storno_id, xml))).map(drop)
}

/// A Storno received from practice software, about to be stored with its delivery.
pub(in crate::storage) struct NewStorno<'a> {
    pub certificate_id: &'a str,
    pub practice_id: &'a str,
    pub insurer_ik: &'a str,
    /// Its own UUID (`Bundle.identifier`).
    pub storno_id: &'a str,
    /// Its XML as received.
    pub xml: &'a str,
    /// The `.p7s` it came in, as received.
    pub signed: Option<&'a [u8]>,
}

/// Adds the delivery of a Storno imported from practice software, carrying its document and
/// signed file as received. `state`: `pending` or [`DeliveryState::AwaitingSignature`] when it goes
/// to the insurer (behind its eAU: claims take a Storno only once its eAU is delivered), or
/// [`DeliveryState::Withdrawn`] when it is only the record of a cancellation whose eAU never reached
/// the insurer (never claimed, exported or acknowledged). Call inside a transaction.
pub(in crate::storage) fn insert_imported_storno(
    conn: &mut AnyConnection,
    storno: &NewStorno<'_>,
    state: DeliveryState,
) -> QueryResult<()> {
    let delivery = NewDelivery {
        certificate_id: storno.certificate_id,
        practice_id: storno.practice_id,
        insurer_ik: storno.insurer_ik,
        kind: DocumentKind::Storno,
        state,
    };
    let id = insert_delivery(conn, &delivery, Some((storno.storno_id, storno.xml)))?;
    if let Some(p7s) = storno.signed {
        diesel::update(deliveries::table.find(&id))
            .set(deliveries::signed_document.eq(p7s))
            .execute(conn)?;
    }
    Ok(())
}

/// A delivery about to be added.
pub(in crate::storage) struct NewDelivery<'a> {
    pub certificate_id: &'a str,
    pub practice_id: &'a str,
    pub insurer_ik: &'a str,
    pub kind: DocumentKind,
    /// `pending` or [`DeliveryState::AwaitingSignature`].
    pub state: DeliveryState,
}

/// A new delivery, due now; `document` (its UUID and XML) when it is not the certificate's own.
/// Returns its id.
pub(in crate::storage) fn insert_delivery(
    conn: &mut AnyConnection,
    new: &NewDelivery<'_>,
    document: Option<(&str, &str)>,
) -> QueryResult<String> {
    let at = now();
    // Time-ordered (UUIDv7): deliveries claimed and finished together sit side by side in the
    // primary key and in the attempt rows' index, so a batch's index entries go to a few pages
    // instead of one random page each (fewer pages read, dirtied and written in full to the WAL
    // after a checkpoint).
    let id = Uuid::now_v7().to_string();
    diesel::insert_into(deliveries::table)
        .values((
            deliveries::id.eq(&id),
            deliveries::channel.eq(new.kind.channel()),
            deliveries::certificate_id.eq(new.certificate_id),
            deliveries::practice_id.eq(new.practice_id),
            deliveries::insurer_ik.eq(new.insurer_ik),
            deliveries::document_kind.eq(new.kind),
            deliveries::state.eq(new.state),
            deliveries::attempts.eq(0),
            deliveries::next_attempt_at.eq(at),
            deliveries::created_at.eq(at),
            deliveries::document_id.eq(document.map(|d| d.0)),
            deliveries::document.eq(document.map(|d| d.1)),
        ))
        .execute(conn)?;
    Ok(id)
}
