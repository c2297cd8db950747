//! Scan uploads of insurers: the documents a scanned KK copy may be, each upload with its
//! page results, and the paper-received mark on matched documents. Every read is bound to the
//! caller's IK.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_log, certificates, deliveries, scan_pages, scan_uploads};
use super::{begin_write, now, AnyConnection, Result};
use crate::domain::{Certificate, DeliveryState, DocumentKind};

/// A document of the IK that a scanned copy may be: a certificate that goes (or went) to the
/// insurer electronically, with its eAU delivery.
#[derive(Debug, Clone)]
pub struct ScanCandidate {
    pub certificate_id: String,
    pub certificate: Certificate,
    pub cancelled_at: Option<NaiveDateTime>,
    /// The eAU delivery's state.
    pub delivery_state: DeliveryState,
    /// When the insurer got the document (pushed, by KIM, or pulled and acknowledged).
    pub delivered_at: Option<NaiveDateTime>,
}

/// The IK's electronic documents of one patient (by KVNR).
pub fn scan_candidates(
    conn: &mut AnyConnection,
    ik: &str,
    kvnr: &str,
) -> Result<Vec<ScanCandidate>> {
    type Row = (
        String,
        String,
        Option<NaiveDateTime>,
        super::codes::Seen,
        Option<NaiveDateTime>,
    );
    let rows: Vec<Row> = certificates::table
        .inner_join(deliveries::table)
        .filter(certificates::insurer_ik.eq(ik))
        .filter(certificates::kvnr.eq(kvnr))
        .filter(certificates::print_only.eq(false))
        .filter(deliveries::document_kind.eq(DocumentKind::Eau))
        .filter(deliveries::insurer_ik.eq(ik))
        .order(certificates::created_at)
        .select((
            certificates::id,
            certificates::document,
            certificates::cancelled_at,
            (deliveries::state, deliveries::lease_until),
            deliveries::delivered_at,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, doc, cancelled_at, state, delivered_at)| {
            Ok(ScanCandidate {
                certificate_id: id,
                certificate: serde_json::from_str(&doc)?,
                cancelled_at,
                delivery_state: state.into(),
                delivered_at,
            })
        })
        .collect()
}

/// An upload as listed and shown to its insurer.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = scan_uploads)]
pub struct ScanUpload {
    pub id: String,
    pub insurer_ik: String,
    pub uploaded_by: String,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub state: String,
    pub files: i32,
    pub pages: i32,
    pub electronic: i32,
    pub paper_only: i32,
    pub ambiguous: i32,
    pub unreadable: i32,
    pub other_insurer: i32,
}

/// Starts an upload (state `running`).
pub fn start_scan_upload(
    conn: &mut AnyConnection,
    id: &str,
    ik: &str,
    uploaded_by: &str,
    files: i32,
) -> Result<()> {
    diesel::insert_into(scan_uploads::table)
        .values((
            scan_uploads::id.eq(id),
            scan_uploads::insurer_ik.eq(ik),
            scan_uploads::uploaded_by.eq(uploaded_by),
            scan_uploads::created_at.eq(now()),
            scan_uploads::state.eq("running"),
            scan_uploads::files.eq(files),
        ))
        .execute(conn)?;
    Ok(())
}

/// Starts an upload like [`start_scan_upload`]; `false` when an upload with this id exists.
pub fn start_new_scan_upload(
    conn: &mut AnyConnection,
    id: &str,
    ik: &str,
    uploaded_by: &str,
    files: i32,
) -> Result<bool> {
    match start_scan_upload(conn, id, ik, uploaded_by, files) {
        Ok(()) => Ok(true),
        Err(super::StorageError::Query(e)) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One page's result as stored.
#[derive(Debug, Clone, Queryable)]
pub struct ScanPageRow {
    pub page_no: i32,
    /// 1, or more when a sheet holds several KK copies.
    pub barcode_no: i32,
    pub file_no: i32,
    pub file_page: i32,
    pub outcome: String,
    pub certificate_id: Option<String>,
    /// JSON: the record, the candidates or the reason.
    pub detail: String,
}

/// Stores a batch of page results, adds them to the upload's counts and marks the matched
/// documents as received on paper (once; the practice's audit trail says so), in one
/// transaction.
pub fn record_scan_pages(
    conn: &mut AnyConnection,
    upload_id: &str,
    ik: &str,
    pages: &[ScanPageRow],
) -> Result<()> {
    if pages.is_empty() {
        return Ok(());
    }
    conn.transaction(|c| {
        begin_write(c)?;
        // One statement a page: a batch is a few dozen pages, each of which took far longer
        // to decode than its insert takes.
        for p in pages {
            diesel::insert_into(scan_pages::table)
                .values((
                    scan_pages::upload_id.eq(upload_id),
                    scan_pages::page_no.eq(p.page_no),
                    scan_pages::barcode_no.eq(p.barcode_no),
                    scan_pages::file_no.eq(p.file_no),
                    scan_pages::file_page.eq(p.file_page),
                    scan_pages::outcome.eq(&p.outcome),
                    scan_pages::certificate_id.eq(&p.certificate_id),
                    scan_pages::detail.eq(&p.detail),
                ))
                .execute(c)?;
        }
        let count = |o: &str| {
            i32::try_from(pages.iter().filter(|p| p.outcome == o).count()).unwrap_or(i32::MAX)
        };
        // Pages, not results: a sheet with two copies is one page.
        let n =
            i32::try_from(pages.iter().filter(|p| p.barcode_no == 1).count()).unwrap_or(i32::MAX);
        diesel::update(scan_uploads::table.find(upload_id))
            .set((
                scan_uploads::pages.eq(scan_uploads::pages + n),
                scan_uploads::electronic.eq(scan_uploads::electronic + count("electronic")),
                scan_uploads::paper_only.eq(scan_uploads::paper_only + count("paper_only")),
                scan_uploads::ambiguous.eq(scan_uploads::ambiguous + count("ambiguous")),
                scan_uploads::unreadable.eq(scan_uploads::unreadable + count("unreadable")),
                scan_uploads::other_insurer
                    .eq(scan_uploads::other_insurer + count("other_insurer")),
            ))
            .execute(c)?;
        // Electronic, or paper only although the document exists here (it will not arrive):
        // either way the insurer has the paper, and a later send says so.
        let matched: Vec<&String> = pages
            .iter()
            .filter_map(|p| p.certificate_id.as_ref())
            .collect();
        mark_paper_received(c, ik, &matched)
    })
}

/// Sets `paper_received_at` on the IK's certificates not marked yet, with an audit row in
/// each practice's trail.
fn mark_paper_received(c: &mut AnyConnection, ik: &str, ids: &[&String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let open: Vec<(String, String)> = certificates::table
        .filter(certificates::id.eq_any(ids))
        .filter(certificates::insurer_ik.eq(ik))
        .filter(certificates::paper_received_at.is_null())
        .select((certificates::id, certificates::practice_id))
        .load(c)?;
    if open.is_empty() {
        return Ok(());
    }
    let at = now();
    let open_ids: Vec<&String> = open.iter().map(|(id, _)| id).collect();
    diesel::update(certificates::table.filter(certificates::id.eq_any(open_ids)))
        .set(certificates::paper_received_at.eq(at))
        .execute(c)?;
    for (id, practice) in &open {
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::at.eq(at),
                audit_log::practice_id.eq(practice),
                audit_log::actor.eq(format!("insurer:{ik}")),
                audit_log::action.eq("paper.received"),
                audit_log::certificate_id.eq(Some(id)),
                audit_log::detail.eq("KK-Ausfertigung auf Papier bei der Krankenkasse eingegangen"),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// Ends an upload (`done`).
pub fn finish_scan_upload(conn: &mut AnyConnection, upload_id: &str) -> Result<()> {
    diesel::update(scan_uploads::table.find(upload_id))
        .set((
            scan_uploads::state.eq("done"),
            scan_uploads::finished_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks an upload `interrupted` at once (its run failed); its pages so far are kept.
pub fn interrupt_scan_upload(conn: &mut AnyConnection, upload_id: &str) -> Result<()> {
    diesel::update(
        scan_uploads::table
            .find(upload_id)
            .filter(scan_uploads::state.eq("running")),
    )
    .set((
        scan_uploads::state.eq("interrupted"),
        scan_uploads::finished_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(())
}

/// An upload still `running` this long after it started was cut off by a stop (1 000 pages
/// take a few minutes): it is `interrupted`, its pages so far kept. Several instances share a
/// PostgreSQL database, so one instance's start cannot tell another's running upload from a
/// dead one by anything but its age.
pub const SCAN_UPLOAD_STALE: chrono::Duration = chrono::Duration::hours(1);

/// Marks stale `running` uploads `interrupted`. Returns how many.
pub fn interrupt_running_scan_uploads(conn: &mut AnyConnection) -> Result<usize> {
    Ok(diesel::update(
        scan_uploads::table
            .filter(scan_uploads::state.eq("running"))
            .filter(scan_uploads::created_at.lt(now() - SCAN_UPLOAD_STALE)),
    )
    .set((
        scan_uploads::state.eq("interrupted"),
        scan_uploads::finished_at.eq(now()),
    ))
    .execute(conn)?)
}

/// An upload of this IK (another IK's upload is not found).
pub fn scan_upload(conn: &mut AnyConnection, ik: &str, id: &str) -> Result<Option<ScanUpload>> {
    Ok(scan_uploads::table
        .find(id)
        .filter(scan_uploads::insurer_ik.eq(ik))
        .select(ScanUpload::as_select())
        .first(conn)
        .optional()?)
}

/// The IK's latest uploads, newest first.
pub fn list_scan_uploads(
    conn: &mut AnyConnection,
    ik: &str,
    limit: i64,
) -> Result<Vec<ScanUpload>> {
    Ok(scan_uploads::table
        .filter(scan_uploads::insurer_ik.eq(ik))
        .order(scan_uploads::created_at.desc())
        .limit(limit)
        .select(ScanUpload::as_select())
        .load(conn)?)
}

/// Page results of an upload after page `after`, in page order: whole pages, at least
/// `limit` results when there are that many.
pub fn scan_upload_pages(
    conn: &mut AnyConnection,
    upload_id: &str,
    after: i32,
    limit: i64,
) -> Result<Vec<ScanPageRow>> {
    let last_page: Option<i32> = scan_pages::table
        .filter(scan_pages::upload_id.eq(upload_id))
        .filter(scan_pages::page_no.gt(after))
        .order(scan_pages::page_no)
        .offset(limit.max(1) - 1)
        .select(scan_pages::page_no)
        .first(conn)
        .optional()?;
    let mut q = scan_pages::table
        .filter(scan_pages::upload_id.eq(upload_id))
        .filter(scan_pages::page_no.gt(after))
        .into_boxed();
    if let Some(last) = last_page {
        q = q.filter(scan_pages::page_no.le(last));
    }
    Ok(q.order((scan_pages::page_no, scan_pages::barcode_no))
        .select((
            scan_pages::page_no,
            scan_pages::barcode_no,
            scan_pages::file_no,
            scan_pages::file_page,
            scan_pages::outcome,
            scan_pages::certificate_id,
            scan_pages::detail,
        ))
        .load(conn)?)
}

/// When the paper copy of a certificate of the practice reached its insurer, if it did.
pub fn paper_received_at(
    conn: &mut AnyConnection,
    practice_id: &str,
    certificate_id: &str,
) -> Result<Option<NaiveDateTime>> {
    Ok(certificates::table
        .find(certificate_id)
        .filter(certificates::practice_id.eq(practice_id))
        .select(certificates::paper_received_at)
        .first::<Option<NaiveDateTime>>(conn)
        .optional()?
        .flatten())
}
