//! One upload from files to stored page results: a reader thread lists the pages of every file
//! (TIFF pages are decoded there, PDF pages only counted), one decoding thread per core reads
//! each page's barcode, and the matches are decided and stored in batches of one transaction.
//! At most a few pages are in memory at any time, whatever the upload's size.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use serde_json::json;

use super::matching::{decide, needs_candidates, Outcome};
use super::read::{read_page, Unreadable};
use super::record::BarcodeRecord;
use super::source::{self, Format, Page, PageError, PdfPage, TiffPages};
use crate::storage::{self, Database, ScanPageRow, StorageError};

/// One uploaded file, already on disk.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
}

/// Errors of a scan run (pages that cannot be read are results, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("Auswertung abgebrochen: {0}")]
    Aborted(String),
}

/// Page results decided and stored together.
const BATCH: usize = 64;

/// Pages read from one upload; a file with more is cut there, with a result that says so.
pub const MAX_PAGES: i32 = 20_000;

/// One upload is read at a time, on every core: a second waits (its files are on disk already)
/// instead of splitting the cores, and many at once cannot start a thread per page each.
static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// A page to read, numbered across the upload.
struct Job {
    page_no: i32,
    file_no: i32,
    file_page: i32,
    what: What,
}

enum What {
    Pdf(Arc<Path>),
    Image(Page),
    ImageFile(Arc<Path>),
    Failed(PageError),
}

struct Read {
    page_no: i32,
    file_no: i32,
    file_page: i32,
    /// One per barcode on the page, or the one reason there is none.
    results: Vec<Result<BarcodeRecord, Unreadable>>,
}

/// Reads, matches and stores every page of `inputs` for the upload `upload_id` of insurer `ik`;
/// the upload must exist (`storage::start_scan_upload`). Returns the number of pages.
pub async fn run(
    db: &Database,
    ik: &str,
    upload_id: &str,
    inputs: Vec<Input>,
) -> Result<usize, ScanError> {
    let _turn = ONE_AT_A_TIME
        .acquire()
        .await
        .map_err(|e| ScanError::Aborted(e.to_string()))?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (results_tx, mut results) = tokio::sync::mpsc::channel::<Read>(workers * 2);
    let reader = std::thread::Builder::new()
        .name("scan-reader".into())
        .spawn(move || read_all(inputs, workers, results_tx))
        .map_err(|e| ScanError::Aborted(e.to_string()))?;
    let mut pages = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(read) = results.recv().await {
        batch.push(read);
        if batch.len() == BATCH {
            pages += store(db, ik, upload_id, std::mem::take(&mut batch)).await?;
        }
    }
    pages += store(db, ik, upload_id, batch).await?;
    reader
        .join()
        .map_err(|_| ScanError::Aborted("Lesevorgang abgestürzt".into()))?;
    let id = upload_id.to_owned();
    db.run(move |c| storage::finish_scan_upload(c, &id)).await?;
    Ok(pages)
}

/// Decides a batch (one candidate query per page with a record of the IK) and stores it.
async fn store(
    db: &Database,
    ik: &str,
    upload_id: &str,
    batch: Vec<Read>,
) -> Result<usize, ScanError> {
    let n = batch.len();
    if n == 0 {
        return Ok(0);
    }
    let (ik, upload_id) = (ik.to_owned(), upload_id.to_owned());
    db.run(move |c| {
        let mut rows = Vec::with_capacity(batch.len());
        for read in batch {
            for (result, barcode_no) in read.results.into_iter().zip(1..) {
                let outcome = match result {
                    Err(why) => Outcome::Unreadable(why),
                    Ok(record) if needs_candidates(&ik, &record) => {
                        let candidates = storage::scan_candidates(c, &ik, &record.kvnr)?;
                        decide(&ik, record, &candidates)
                    }
                    Ok(record) => decide(&ik, record, &[]),
                };
                let at = (read.page_no, barcode_no, read.file_no, read.file_page);
                rows.push(page_row(at, &outcome));
            }
        }
        storage::record_scan_pages(c, &upload_id, &ik, &rows)
    })
    .await?;
    Ok(n)
}

/// The stored form of an outcome at `(page, barcode, file, page in the file)`: the matched
/// document's id and the outcome's detail.
fn page_row(
    (page_no, barcode_no, file_no, file_page): (i32, i32, i32, i32),
    outcome: &Outcome,
) -> ScanPageRow {
    let (certificate_id, detail) = match outcome {
        Outcome::Electronic(doc) => (Some(doc.id.clone()), json!({ "document": doc })),
        Outcome::PaperOnly(record, None) => (None, json!({ "record": record })),
        Outcome::PaperOnly(record, Some(doc)) => (
            Some(doc.id.clone()),
            json!({ "record": record, "document": doc }),
        ),
        Outcome::Ambiguous(docs) => (None, json!({ "candidates": docs })),
        Outcome::Unreadable(why) => (
            None,
            json!({ "reason": why.code(), "message": why.to_string() }),
        ),
        Outcome::OtherInsurer => (None, json!({})),
    };
    ScanPageRow {
        page_no,
        barcode_no,
        file_no,
        file_page,
        outcome: outcome.code().to_owned(),
        certificate_id,
        detail: detail.to_string(),
    }
}

/// The reader thread: lists the pages and hands them to `workers` decoding threads; returns
/// when every page is read.
fn read_all(inputs: Vec<Input>, workers: usize, results: tokio::sync::mpsc::Sender<Read>) {
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(workers);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (jobs, results) = (Arc::clone(&jobs_rx), results.clone());
            scope.spawn(move || decode_jobs(&jobs, &results));
        }
        drop(results);
        let mut page_no = 0;
        for (i, input) in inputs.iter().enumerate() {
            let file_no = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let mut send = |file_page: i32, what: What| {
                if page_no == MAX_PAGES {
                    return false;
                }
                page_no += 1;
                let what = if page_no == MAX_PAGES {
                    What::Failed(PageError::Unreadable(format!(
                        "mehr als {} Seiten in einem Upload: der Rest wurde nicht gelesen",
                        MAX_PAGES - 1
                    )))
                } else {
                    what
                };
                jobs_tx
                    .send(Job {
                        page_no,
                        file_no,
                        file_page,
                        what,
                    })
                    .is_ok()
            };
            if !list_pages(&input.path, &mut send) {
                break;
            }
        }
        drop(jobs_tx);
    });
}

/// Hands every page of one file to `send` (1-based page numbers); false when the workers are
/// gone.
fn list_pages(path: &Path, send: &mut impl FnMut(i32, What) -> bool) -> bool {
    let format = match Format::of_file(path) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return send(
                0,
                What::Failed(PageError::Unsupported(
                    "nur PDF, TIFF, PNG und JPEG werden gelesen".into(),
                )),
            )
        }
        Err(e) => return send(0, What::Failed(PageError::Unreadable(e.to_string()))),
    };
    let shared: Arc<Path> = Arc::from(path);
    match format {
        Format::Pdf => match source::pdf_page_count(path) {
            Ok(n) => (1..=n).all(|p| {
                send(
                    i32::try_from(p).unwrap_or(i32::MAX),
                    What::Pdf(Arc::clone(&shared)),
                )
            }),
            Err(e) => send(0, What::Failed(e)),
        },
        Format::Png | Format::Jpeg => send(1, What::ImageFile(shared)),
        Format::Tiff => match TiffPages::open(path) {
            Ok(pages) => pages.zip(1..).all(|(page, p)| {
                send(
                    p,
                    match page {
                        Ok(page) => What::Image(page),
                        Err(e) => What::Failed(e),
                    },
                )
            }),
            Err(e) => send(0, What::Failed(e)),
        },
    }
}

/// A decoding thread: takes jobs until there are none, sends each page's result.
fn decode_jobs(jobs: &Mutex<mpsc::Receiver<Job>>, results: &tokio::sync::mpsc::Sender<Read>) {
    let scratch = super::temp_dir();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let file_page = job.file_page;
        let work = || match (job.what, &scratch) {
            (What::Image(page), _) => read_page(page),
            (What::ImageFile(path), _) => match Page::from_image_file(&path) {
                Ok(page) => read_page(page),
                Err(e) => vec![Err(e.into())],
            },
            (What::Pdf(path), Ok(dir)) => read_pdf_page(&path, file_page, dir.path()),
            (What::Pdf(_), Err(e)) => vec![Err(PageError::Unreadable(e.to_string()).into())],
            (What::Failed(e), _) => vec![Err(e.into())],
        };
        // A page that makes a decoder panic is that page's failure, not the upload's.
        let found =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
                vec![Err(
                    PageError::Unreadable("Bild nicht auswertbar".into()).into()
                )]
            });
        let read = Read {
            page_no: job.page_no,
            file_no: job.file_no,
            file_page: job.file_page,
            results: found,
        };
        if results.blocking_send(read).is_err() {
            return;
        }
    }
}

/// A PDF page: its embedded scan first; if that has no readable barcode (a page drawn with a
/// transformation, or not a scan), the page as poppler renders it.
fn read_pdf_page(path: &Path, page: i32, scratch: &Path) -> Vec<Result<BarcodeRecord, Unreadable>> {
    let page = u32::try_from(page).unwrap_or(1);
    let (image, how) = match source::pdf_page(path, page, scratch) {
        Ok(found) => found,
        Err(e) => return vec![Err(e.into())],
    };
    let results = read_page(image);
    let nothing_read = matches!(
        results.as_slice(),
        [Err(Unreadable::NoBarcode | Unreadable::Damaged)]
    );
    if nothing_read && how == PdfPage::Embedded {
        return match source::rendered_page(path, page) {
            Ok(rendered) => read_page(rendered),
            Err(e) => vec![Err(e.into())],
        };
    }
    results
}
