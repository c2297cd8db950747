//! The pull side: insurers import their queue with a token bound to their IK and acknowledge
//! what they imported.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Timestamp};
use uuid::Uuid;

use super::outbox::NewAttempt;
use super::schema::{certificates, deliveries, insurer_tokens};
use super::{now, AnyConnection, DeliveryState, DocumentKind, Result, StorageError};

pub fn create_insurer_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    ik: &str,
    label: &str,
) -> Result<()> {
    diesel::insert_into(insurer_tokens::table)
        .values((
            insurer_tokens::token_hash.eq(token_hash),
            insurer_tokens::ik.eq(ik),
            insurer_tokens::label.eq(label),
            insurer_tokens::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The IK of a valid (not revoked) insurer token; records its use.
pub fn insurer_token_ik(conn: &mut AnyConnection, token_hash: &str) -> Result<Option<String>> {
    let found: Option<(String, Option<chrono::NaiveDateTime>)> = insurer_tokens::table
        .find(token_hash)
        .filter(insurer_tokens::revoked_at.is_null())
        .select((insurer_tokens::ik, insurer_tokens::last_used_at))
        .first(conn)
        .optional()?;
    let Some((ik, last_used)) = found else {
        return Ok(None);
    };
    if super::accounts::use_is_stale(last_used) {
        diesel::update(insurer_tokens::table.find(token_hash))
            .set(insurer_tokens::last_used_at.eq(now()))
            .execute(conn)?;
    }
    Ok(Some(ik))
}

pub fn list_insurer_tokens(conn: &mut AnyConnection, ik: &str) -> Result<Vec<super::TokenInfo>> {
    let rows: Vec<super::accounts::TokenRow> = insurer_tokens::table
        .filter(insurer_tokens::ik.eq(ik))
        .order(insurer_tokens::created_at)
        .select(INSURER_TOKEN_COLUMNS)
        .load(conn)?;
    Ok(rows.into_iter().map(super::accounts::token_info).collect())
}

/// The columns of a token row in `insurer_tokens`.
const INSURER_TOKEN_COLUMNS: (
    insurer_tokens::token_hash,
    insurer_tokens::label,
    insurer_tokens::created_at,
    insurer_tokens::last_used_at,
    insurer_tokens::revoked_at,
) = (
    insurer_tokens::token_hash,
    insurer_tokens::label,
    insurer_tokens::created_at,
    insurer_tokens::last_used_at,
    insurer_tokens::revoked_at,
);

/// Every insurer token with its IK, for the operator.
pub fn list_all_insurer_tokens(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, super::TokenInfo)>> {
    let rows: Vec<(String, super::accounts::TokenRow)> = insurer_tokens::table
        .order((insurer_tokens::ik, insurer_tokens::created_at))
        .select((insurer_tokens::ik, INSURER_TOKEN_COLUMNS))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(ik, row)| (ik, super::accounts::token_info(row)))
        .collect())
}

pub fn revoke_insurer_token(conn: &mut AnyConnection, ik: &str, id: &str) -> Result<bool> {
    if !super::is_token_id(id) {
        return Ok(false);
    }
    let n = diesel::update(
        insurer_tokens::table
            .filter(insurer_tokens::ik.eq(ik))
            .filter(insurer_tokens::token_hash.like(format!("{id}%")))
            .filter(insurer_tokens::revoked_at.is_null()),
    )
    .set(insurer_tokens::revoked_at.eq(now()))
    .execute(conn)?;
    Ok(n == 1)
}

/// Position in an insurer's export: after this delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: NaiveDateTime,
    pub delivery_id: String,
}

impl Cursor {
    /// `<microseconds since epoch>_<delivery id>`: opaque to insurers.
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.and_utc().timestamp_micros(),
            self.delivery_id
        )
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('_')?;
        let created_at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
        Uuid::parse_str(id).ok()?;
        Some(Self {
            created_at,
            delivery_id: id.to_owned(),
        })
    }
}

/// One exported document.
#[derive(Debug, Clone)]
pub struct ExportItem {
    pub cursor: Cursor,
    pub document_id: String,
    pub kind: DocumentKind,
    pub xml: String,
    /// The signed file, when the document is signed: what the insurer gets instead of `xml`.
    pub signed: Option<Vec<u8>>,
    /// The insurer already has the KK copy on paper (matched from its scans): its own system
    /// can skip the document.
    pub paper_received_at: Option<NaiveDateTime>,
}

/// Up to `limit` documents of an IK not yet delivered, after `after`, in a stable order.
pub fn export_page(
    conn: &mut AnyConnection,
    ik: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<ExportItem>> {
    let mut q = deliveries::table
        .inner_join(certificates::table)
        .filter(deliveries::insurer_ik.eq(ik.to_owned()))
        // Literal, as in the partial index `deliveries_open_by_insurer` (a bound list would
        // keep the planners from using it, and every page would sort the whole backlog).
        .filter(sql::<Bool>(
            "deliveries.state IN ('pending', 'in_flight', 'dead')",
        ))
        .into_boxed();
    if let Some(c) = after {
        // A row-value comparison: one range of the index, in order.
        q = q.filter(
            sql::<Bool>("(deliveries.created_at, deliveries.id) > (")
                .bind::<Timestamp, _>(c.created_at)
                .sql(", ")
                .bind::<Text, _>(c.delivery_id.clone())
                .sql(")"),
        );
    }
    type Row = (
        String,
        NaiveDateTime,
        String,
        DocumentKind,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<NaiveDateTime>,
    );
    let rows: Vec<Row> = q
        .order((deliveries::created_at, deliveries::id))
        .limit(limit.clamp(1, 1000))
        .select((
            deliveries::id,
            deliveries::created_at,
            deliveries::certificate_id,
            deliveries::document_kind,
            certificates::fhir_xml,
            deliveries::document_id,
            deliveries::document,
            certificates::signed_p7s,
            deliveries::signed_document,
            certificates::paper_received_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(
                id,
                created_at,
                certificate_id,
                kind,
                certificate_xml,
                document_id,
                document,
                certificate_signed,
                document_signed,
                paper_received_at,
            )| {
                // A Storno carries its own document and signature; an eAU its certificate's.
                let signed = if document_id.is_some() {
                    document_signed
                } else {
                    certificate_signed
                };
                Some(ExportItem {
                    signed,
                    // The paper mark is the eAU's: a Storno must never look skippable.
                    paper_received_at: paper_received_at.filter(|_| kind == DocumentKind::Eau),
                    cursor: Cursor {
                        created_at,
                        delivery_id: id,
                    },
                    document_id: document_id.unwrap_or(certificate_id),
                    kind,
                    xml: document.or(certificate_xml)?,
                })
            },
        )
        .collect())
}

/// Marks the IK's deliveries of these documents as delivered (an acknowledged document is
/// never pushed again). Other IKs' documents and unknown ids are ignored. Returns how many
/// were acknowledged now.
pub fn acknowledge(conn: &mut AnyConnection, ik: &str, document_ids: &[Uuid]) -> Result<usize> {
    let ids: Vec<String> = document_ids.iter().map(Uuid::to_string).collect();
    conn.transaction::<_, StorageError, _>(|c| {
        // Two indexed reads instead of one OR: an eAU by its certificate (its delivery has no
        // document_id), a Storno by its own document_id.
        let open_by = |c: &mut AnyConnection, storno: bool| -> Result<Vec<String>> {
            let q = deliveries::table
                .filter(deliveries::insurer_ik.eq(ik))
                .filter(
                    deliveries::state.ne_all([DeliveryState::Delivered, DeliveryState::Withdrawn]),
                )
                .select(deliveries::id)
                .into_boxed();
            let q = if storno {
                q.filter(deliveries::document_id.eq_any(&ids))
            } else {
                q.filter(deliveries::document_id.is_null())
                    .filter(deliveries::certificate_id.eq_any(&ids))
            };
            Ok(q.load(c)?)
        };
        let mut open = open_by(c, false)?;
        open.extend(open_by(c, true)?);
        let at = now();
        // One multi-row insert for the page's attempts, as the push drain writes its batches.
        let attempts: Vec<NewAttempt<'_>> = open
            .iter()
            .map(|id| NewAttempt {
                delivery_id: id,
                outcome: "acknowledged",
                http_status: None,
                detail: "von der Krankenkasse abgerufen",
                duration_ms: 0,
            })
            .collect();
        super::outbox::insert_attempts(c, &attempts, at)?;
        diesel::update(deliveries::table.filter(deliveries::id.eq_any(&open)))
            .set((
                deliveries::state.eq(DeliveryState::Delivered),
                deliveries::delivered_at.eq(at),
                deliveries::lease_until.eq(None::<NaiveDateTime>),
                deliveries::last_error.eq(None::<String>),
            ))
            .execute(c)?;
        Ok(open.len())
    })
}
