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
