//! Insurers' scanned KK copies (issue #17): the PDF417 of every page is read, parsed into the
//! TA Table 22 record and matched against the documents held for the insurer's IK, so that an
//! AU that reaches the insurer on paper and electronically is processed once.

pub mod matching;
pub mod process;
pub mod read;
pub mod record;
pub mod source;

pub use matching::{MatchedDocument, Outcome};
pub use process::{Input, ScanError};
pub use read::{read_page, Unreadable};
pub use record::{BarcodeRecord, RecordError};
pub use source::{Format, Page, PageError};

use std::path::Path;
use std::time::Duration;

/// The name of every temporary directory that holds an upload's files or a page being read:
/// scans are health data, so what a stopped server leaves behind is found and removed.
pub const TEMP_PREFIX: &str = "au-relay-scan-";

/// A new temporary directory for an upload or a decoding thread.
pub fn temp_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(TEMP_PREFIX).tempdir()
}

/// Removes the scan directories under `parent` in which nothing (neither the directory nor a
/// file in it) changed for longer than `older_than`: what a crashed or killed server left.
/// Returns how many were removed.
pub fn remove_stale_temp_dirs(parent: &Path, older_than: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .filter(|e| untouched_for(&e.path()).is_some_and(|age| age > older_than))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

/// How long since the directory or any file in it last changed.
fn untouched_for(dir: &Path) -> Option<Duration> {
    let age = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()?
            .elapsed()
            .ok()
    };
    let files = std::fs::read_dir(dir).ok()?.filter_map(Result::ok);
    files.map(|f| age(&f.path())).chain([age(dir)]).min()?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_scan_directories_are_removed_and_fresh_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let old = parent.path().join(format!("{TEMP_PREFIX}old"));
        let fresh = parent.path().join(format!("{TEMP_PREFIX}fresh"));
        let other = parent.path().join("someone-else");
        for d in [&old, &fresh, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("scan-00000"), b"%PDF-").unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        for d in [&old, &other] {
            for p in [d.join("scan-00000"), d.to_path_buf()] {
                std::fs::File::open(p)
                    .unwrap()
                    .set_modified(two_hours_ago)
                    .unwrap();
            }
        }
        // A file still being written keeps its directory.
        std::fs::File::open(&fresh)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        assert_eq!(
            remove_stale_temp_dirs(parent.path(), Duration::from_secs(3600)),
            1
        );
        assert!(!old.exists());
        assert!(fresh.exists() && other.exists());
    }
}
