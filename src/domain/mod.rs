//! Domain types of AU-Relay. Every type validates on construction; nothing here does I/O.

pub mod breaker;
mod calendar;
mod certificate;
mod delivery;
mod draft;
mod holidays;
mod identifiers;
mod insurers;
mod mail;
mod text;

pub use calendar::{berlin_day_start, berlin_time, berlin_today, is_weekend};
pub use certificate::*;
pub use delivery::{delivery_label, Channel, DeliveryState, DocumentKind, MailResend};
pub use draft::*;
pub use holidays::{
    add_working_days, easter_sunday, is_working_day, post_deadline, public_holidays, Land,
    PostDeadline,
};
pub use identifiers::{Bsnr, InsurerIk, Kvnr, Lanr};
pub use insurers::{DirectoryError, IkStatus, InsurerDirectory, InsurerEntry};
pub use mail::{EmailAddress, PasswordPolicy, PatientMail};
pub use text::{check_characters, for_barcode, for_paper, has_control, is_clean, line};

/// Why a single value is not acceptable. The `&'static str` is the German field label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}: Angabe fehlt")]
    Required(&'static str),
    #[error("{0}: ungültiges Format ({1})")]
    Format(&'static str, &'static str),
    #[error("{0}: Prüfziffer stimmt nicht")]
    CheckDigit(&'static str),
    #[error("{0}: höchstens {1} Zeichen")]
    TooLong(&'static str, usize),
    #[error(
        "{0}: enthält ein unzulässiges Zeichen (Steuerzeichen oder unsichtbares Formatzeichen)"
    )]
    Characters(&'static str),
}

/// A rule violation located at a field path such as `patient.kvnr` or `diagnoses[2].code`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
