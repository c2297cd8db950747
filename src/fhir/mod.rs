//! KBV eAU FHIR bundles (`KBV_PR_EAU_Bundle|1.2`, rules of package 1.2.1): writing them from a
//! [`Certificate`], reading and validating incoming ones, Storno bundles (written, and read from
//! practice software: [`read_document`]) and OperationOutcomes.
//!
//! Pure: no I/O, no clock except in [`write`] / [`write_storno`] (bundle timestamp; use the
//! `_at` variants for a fixed time). See DOMAIN.md §3 for profiles, systems and codes.
//!
//! Deliberate decisions:
//! - Instances carry `|1.2` in `meta.profile` for both 1.2.0 and 1.2.1 (KBV practice), so an
//!   incoming bundle cannot tell which patch level it was written for: every bundle is checked
//!   against the 1.2.1 rules. Two gematik fixtures that are valid only under 1.2.0 (BSNR/IK with
//!   a space) are therefore rejected, exactly like their 1.2.1 twins.
//! - KVNR and IK check-digit failures of imported bundles are warnings (the official KBV examples
//!   fail them); structure failures are errors.
//! - A back-dating of more than three days is a warning on import, and the imported certificate
//!   records it as confirmed (the issuing doctor signed it).
//! - An incoming Storno (`KBV_PR_EAU_Storno_Bundle`) is checked against its three KBV 1.2.1
//!   profiles (Bundle, Composition, List: cardinalities, fixed values, the closed entry slicing)
//!   and its Practitioner and Organization like an eAU's. Its Composition date is not compared
//!   with today or the eAU: the profiles set no such rule. A Storno of profile version 1.1.0 is
//!   refused like an eAU of that version, but still checked, so the refusal names every reason.

mod outcome;
mod read;
mod write;
pub(crate) mod xml;

use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::Certificate;

pub use outcome::operation_outcome;
pub use read::{read, read_document, read_storno};
pub use write::{file_name, storno_file_name, write, write_at, write_storno, write_storno_at};

/// Canonical base of the KBV StructureDefinitions.
pub const SD: &str = "https://fhir.kbv.de/StructureDefinition/";
/// The profile version written into `meta.profile` (patch level not written, TA §3).
pub const PROFILE_VERSION: &str = "1.2";
/// Profile versions accepted on import.
pub const ACCEPTED_VERSIONS: &[&str] = &["1.2", "1.2.0", "1.2.1"];

/// Severity of an [`Issue`] (FHIR `IssueSeverity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn code(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// Kind of an [`Issue`] (FHIR `IssueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueCode {
    /// Not well-formed XML, wrong encoding, wrong root.
    Structure,
    /// A mandatory element is missing.
    Required,
    /// A value has the wrong format or length.
    Value,
    /// A code is not in its code system / value set.
    CodeInvalid,
    /// Profile or version not supported.
    NotSupported,
    /// An AU rule (dates, counts) is violated.
    BusinessRule,
    /// A signature is broken, missing or does not match its content.
    Security,
    /// A referenced document is unknown (the eAU a Storno cancels).
    NotFound,
}

impl IssueCode {
    pub fn code(self) -> &'static str {
        match self {
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::CodeInvalid => "code-invalid",
            Self::NotSupported => "not-supported",
            Self::BusinessRule => "business-rule",
            Self::Security => "security",
            Self::NotFound => "not-found",
        }
    }
}

/// One finding about an incoming bundle. `location` is FHIRPath-like
/// (`Bundle.entry[3].resource.identifier[0].value`); `message` names the field in German.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    pub location: String,
    pub message: String,
}

impl Issue {
    pub fn error(code: IssueCode, location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            location: location.into(),
            message: message.into(),
        }
    }

    pub fn warning(
        code: IssueCode,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            code,
            location: location.into(),
            message: message.into(),
        }
    }

    /// Fatal and error issues reject a bundle; warnings and information do not.
    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Fatal | Severity::Error)
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.severity.code(),
            self.code.code(),
            self.location,
            self.message
        )
    }
}

/// An accepted incoming eAU bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedEau {
    pub certificate: Certificate,
    /// Version from `meta.profile` (`1.2`; `1.2.1` if a sender writes the patch level).
    pub profile_version: String,
    /// Findings that do not prevent the import (check digits, back-dating, ignored elements).
    pub warnings: Vec<Issue>,
    /// Never goes to an insurer electronically (PKV, Selbstzahler, besondere Personengruppe 07):
    /// print the KK copy instead (DOMAIN.md §2.1 item 6).
    pub print_only: bool,
}

/// An accepted incoming Storno bundle (`KBV_PR_EAU_Storno_Bundle`, TA P310-10 to P310-12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedStorno {
    /// The Storno's own document id (`Bundle.identifier`): the UUID it is stored and sent under.
    pub storno_id: Uuid,
    /// The `Bundle.identifier` of the eAU it cancels (`List.entry.item.identifier.value`).
    pub cancels: Uuid,
    /// Where `cancels` stands in the bundle, for an issue about it.
    pub cancels_location: String,
    /// The date of the cancellation (`Composition.date`).
    pub issued_on: NaiveDate,
    /// Version from `meta.profile` (`1.2`).
    pub profile_version: String,
    /// Findings that do not prevent the import.
    pub warnings: Vec<Issue>,
}

/// An incoming KBV document, told apart by `Bundle.meta.profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Eau(Box<ImportedEau>),
    Storno(ImportedStorno),
}

/// Why a certificate cannot be written as a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
}
