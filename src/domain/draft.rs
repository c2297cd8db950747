//! What staff or practice software hand in, before it is a [`Certificate`].
//!
//! One declaration drives the browser form and the JSON API: the field rules are `validator`
//! attributes whose custom checks delegate to the domain types, and the field paths of the errors
//! (`patient.kvnr`, `diagnoses[2].code`) are the names of the form inputs and the JSON pointers.
//!
//! KVNR decision: a KVNR typed in here must pass its check digit (an error otherwise), because
//! a typo would send the certificate to the wrong insured person. An imported KBV bundle is only
//! checked for the KVNR's structure, because the official KBV examples (`X234567890`) fail the
//! check digit and the FHIR profiles do not enforce it.

use std::borrow::Cow;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;
use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

use super::{
    diagnosis_count_allowed, is_dmp_code, Bsnr, Cause, Certainty, Certificate, CertificateKind,
    Coverage, Diagnosis, Doctor, DomainError, EmailAddress, FieldError, Icd10Code,
    IncapacityPeriod, InsuredType, InsurerIk, Kvnr, Lanr, Measures, Patient, PatientMail,
    PayerType, Practice, Side, DEFAULT_LEGAL_BASIS, DIAGNOSES_COUNT, MAX_BACKDATING_DAYS,
    MAX_DAYS_AHEAD, MAX_DAYS_BACK, SOFTWARE_PRUEFNUMMER, SPECIAL_GROUPS,
};

/// The AU as entered. Every field is a string (or a flag) so that whatever was typed can be
/// shown again next to its error.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct CertificateDraft {
    #[validate(custom(function = "check_kind"))]
    pub kind: String,
    #[serde(deserialize_with = "object")]
    #[validate(nested)]
    pub patient: PatientDraft,
    #[serde(deserialize_with = "object")]
    #[validate(nested)]
    pub insurer: InsurerDraft,
    /// LANR of the certifying doctor; may be left out when the practice has exactly one doctor.
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_lanr"))]
    pub doctor_lanr: Option<String>,
    /// Ausstellungsdatum; today when left out.
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_date_issued"))]
    pub issued_on: Option<String>,
    #[serde(deserialize_with = "object")]
    #[validate(nested)]
    pub period: PeriodDraft,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_cause"))]
    pub cause: Option<String>,
    #[serde(deserialize_with = "object")]
    #[validate(nested)]
    pub measures: MeasuresDraft,
    #[serde(deserialize_with = "lenient_bool")]
    pub sick_pay_case: bool,
    /// One to six (the count is checked once, with the AU rules: [`diagnosis_count_allowed`]).
    #[validate(nested)]
    #[serde(deserialize_with = "objects")]
    pub diagnoses: Vec<DiagnosisDraft>,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(length(max = 70, message = "Hinweise zur Diagnose: höchstens 70 Zeichen"))]
    pub diagnosis_text: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    pub backdating_confirmed: bool,
    /// The patient's copy by e-mail, with consent.
    #[serde(deserialize_with = "mail_object")]
    #[validate(nested)]
    pub mail: MailDraft,
}

/// "Kopie per E-Mail": address, recorded consent, and whether the employer's copy goes along.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct MailDraft {
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_email"))]
    pub address: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    pub consent: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub employer_copy: bool,
}

impl MailDraft {
    /// The mail to send, if any: without consent no mail, and consent needs an address.
    pub fn request(&self) -> Result<Option<PatientMail>, Vec<FieldError>> {
        let address = self.address.as_deref().map(EmailAddress::parse);
        match (address, self.consent) {
            (None, false) if self.employer_copy => Err(vec![FieldError::new(
                "mail.address",
                "E-Mail-Adresse: für den Versand der Arbeitgeber-Ausfertigung angeben",
            )]),
            (None, false) => Ok(None),
            (None, true) => Err(vec![FieldError::new(
                "mail.address",
                "E-Mail-Adresse: Angabe fehlt (Einwilligung erteilt)",
            )]),
            (Some(Err(e)), _) => Err(vec![FieldError::new("mail.address", e.to_string())]),
            (Some(Ok(_)), false) => Err(vec![FieldError::new(
                "mail.consent",
                "Einwilligung: ohne Einwilligung der Patientin/des Patienten kein E-Mail-Versand",
            )]),
            (Some(Ok(address)), true) => {
                Ok(Some(PatientMail::requested(address, self.employer_copy)))
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct PatientDraft {
    #[validate(custom(function = "check_kvnr"))]
    pub kvnr: String,
    #[validate(length(min = 1, max = 45, message = "Vorname: 1 bis 45 Zeichen"))]
    pub first_name: String,
    #[validate(length(min = 1, max = 45, message = "Name: 1 bis 45 Zeichen"))]
    pub last_name: String,
    /// Akademischer Grad, Namenszusatz, Vorsatzwort (eGK): optional, 1..20 characters each.
    #[serde(deserialize_with = "empty_as_none")]
    pub title: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    pub name_addition: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    pub name_prefix: Option<String>,
    #[validate(custom(function = "check_date_birth"))]
    pub birth_date: String,
    /// Street and house number, or a Postfach instead of both (checked in `patient`).
    pub street: String,
    pub house_number: String,
    #[serde(deserialize_with = "empty_as_none")]
    pub post_box: Option<String>,
    #[validate(length(min = 1, max = 10, message = "PLZ: 1 bis 10 Zeichen"))]
    pub postal_code: String,
    #[validate(length(min = 1, max = 40, message = "Ort: 1 bis 40 Zeichen"))]
    pub city: String,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct InsurerDraft {
    #[validate(custom(function = "check_ik"))]
    pub ik: String,
    #[validate(length(min = 1, max = 45, message = "Krankenkasse: 1 bis 45 Zeichen"))]
    pub name: String,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_wop"))]
    pub wop: Option<String>,
    #[validate(custom(function = "check_insured_type"))]
    pub insured_type: String,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_special_group"))]
    pub special_group: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_dmp"))]
    pub dmp: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_date_valid_until"))]
    pub valid_until: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct PeriodDraft {
    /// "AU seit": exactly for Erstbescheinigungen.
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_date_since"))]
    pub since: Option<String>,
    /// "voraussichtlich arbeitsunfähig bis einschließlich".
    #[validate(custom(function = "check_date_until"))]
    pub until: String,
    /// "festgestellt am".
    #[validate(custom(function = "check_date_determined"))]
    pub determined_on: String,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct MeasuresDraft {
    #[serde(deserialize_with = "lenient_bool")]
    pub d_arzt: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub rehabilitation: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub reintegration: bool,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(length(
        min = 1,
        max = 70,
        message = "Sonstige Maßnahmen: höchstens 70 Zeichen"
    ))]
    pub other: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosisDraft {
    #[validate(custom(function = "check_icd"))]
    pub code: String,
    /// G (gesichert) when left out.
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_certainty"))]
    pub certainty: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    #[validate(custom(function = "check_side"))]
    pub side: Option<String>,
}

impl CertificateDraft {
    /// The Folgebescheinigung of `previous`, as the form offers it (issue #18): patient,
    /// insurer, doctor, cause and diagnoses taken over; "AU seit" left empty (a
    /// Folgebescheinigung has none); issued and determined today; the next period proposed as
    /// long as the previous one, from the day after it ended (or today, if that is later),
    /// within the 31 days allowed. Never an Endbescheinigung: that is the staff's choice.
    pub fn follow_up(previous: &Certificate, today: NaiveDate) -> Self {
        let day = |d: NaiveDate| d.format("%d.%m.%Y").to_string();
        let p = &previous.period;
        let length = (p.until - p.determined_on)
            .num_days()
            .clamp(0, MAX_DAYS_AHEAD);
        let from = (p.until + chrono::Duration::days(1)).max(today);
        let until = (from + chrono::Duration::days(length))
            .min(today + chrono::Duration::days(MAX_DAYS_AHEAD));
        let (patient, insurer) = patient_block(previous);
        Self {
            kind: CertificateKind::Folge.code().to_owned(),
            patient,
            insurer,
            doctor_lanr: Some(previous.doctor.lanr.to_string()),
            issued_on: Some(day(today)),
            period: PeriodDraft {
                since: None,
                until: day(until),
                determined_on: day(today),
            },
            cause: previous.cause.map(|c| c.code().to_owned()),
            measures: MeasuresDraft::default(),
            sick_pay_case: previous.sick_pay_case,
            diagnoses: previous
                .diagnoses
                .iter()
                .map(|d| DiagnosisDraft {
                    code: d.code.as_str().to_owned(),
                    certainty: Some(d.certainty.code().to_owned()),
                    side: d.side.map(|s| s.code().to_owned()),
                })
                .collect(),
            diagnosis_text: previous.diagnosis_text.clone(),
            backdating_confirmed: false,
            mail: MailDraft::default(),
        }
    }
}

/// The patient and insurer blocks of a stored certificate, as the form shows them (the
/// Folgebescheinigung and the patient lookup fill the form with them).
pub fn patient_block(previous: &Certificate) -> (PatientDraft, InsurerDraft) {
    let day = |d: NaiveDate| d.format("%d.%m.%Y").to_string();
    let (patient, coverage) = (&previous.patient, &previous.coverage);
    (
        PatientDraft {
            kvnr: patient
                .kvnr
                .as_ref()
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
            first_name: patient.first_name.clone(),
            last_name: patient.last_name.clone(),
            title: patient.title.clone(),
            name_addition: patient.name_addition.clone(),
            name_prefix: patient.name_prefix.clone(),
            birth_date: day(patient.birth_date),
            street: patient.street.clone(),
            house_number: patient.house_number.clone(),
            post_box: patient.post_box.clone(),
            postal_code: patient.postal_code.clone(),
            city: patient.city.clone(),
        },
        InsurerDraft {
            ik: coverage.ik.to_string(),
            name: coverage.name.clone(),
            wop: coverage.wop.clone(),
            insured_type: coverage.insured_type.code().to_owned(),
            special_group: Some(coverage.special_group.clone()),
            dmp: Some(coverage.dmp.clone()),
            valid_until: coverage.valid_until.map(day),
        },
    )
}

/// What a draft is completed with: master data, the clock and the new document id.
#[derive(Debug, Clone)]
pub struct CaptureContext {
    pub practice: Practice,
    pub doctors: Vec<Doctor>,
    pub today: NaiveDate,
    pub document_id: Uuid,
}

// ---------------------------------------------------------------------------------------------
// Custom validators: each delegates to the domain type, so the rule exists once.

fn domain_error(e: DomainError) -> ValidationError {
    ValidationError::new("domain").with_message(Cow::Owned(e.to_string()))
}

fn check_kind(v: &str) -> Result<(), ValidationError> {
    CertificateKind::parse(v).map(drop).map_err(domain_error)
}
fn check_email(v: &str) -> Result<(), ValidationError> {
    EmailAddress::parse(v).map(drop).map_err(domain_error)
}
fn check_kvnr(v: &str) -> Result<(), ValidationError> {
    Kvnr::parse(v).map(drop).map_err(domain_error)
}
fn check_ik(v: &str) -> Result<(), ValidationError> {
    InsurerIk::parse(v).map(drop).map_err(domain_error)
}
fn check_lanr(v: &str) -> Result<(), ValidationError> {
    Lanr::parse(v).map(drop).map_err(domain_error)
}
fn check_cause(v: &str) -> Result<(), ValidationError> {
    Cause::parse(v).map(drop).map_err(domain_error)
}
fn check_icd(v: &str) -> Result<(), ValidationError> {
    Icd10Code::parse_typed(v).map(drop).map_err(domain_error)
}
fn check_certainty(v: &str) -> Result<(), ValidationError> {
    Certainty::parse(v).map(drop).map_err(domain_error)
}
fn check_side(v: &str) -> Result<(), ValidationError> {
    Side::parse(v).map(drop).map_err(domain_error)
}
fn check_insured_type(v: &str) -> Result<(), ValidationError> {
    InsuredType::parse(v).map(drop).map_err(domain_error)
}
fn check_wop(v: &str) -> Result<(), ValidationError> {
    two_digits(v, "WOP")
}
fn check_special_group(v: &str) -> Result<(), ValidationError> {
    if SPECIAL_GROUPS.contains(&v.trim()) {
        Ok(())
    } else {
        Err(domain_error(DomainError::Format(
            "Besondere Personengruppe",
            "00, 04, 06, 07, 08 oder 09",
        )))
    }
}
fn check_dmp(v: &str) -> Result<(), ValidationError> {
    if is_dmp_code(v.trim()) {
        Ok(())
    } else {
        Err(domain_error(DomainError::Format(
            "DMP-Kennzeichen",
            "00 bis 12 oder 30 bis 58",
        )))
    }
}

fn two_digits(v: &str, field: &'static str) -> Result<(), ValidationError> {
    let v = v.trim();
    if v.len() == 2 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(domain_error(DomainError::Format(field, "zwei Ziffern")))
    }
}

macro_rules! date_checks {
    ($($name:ident => $label:literal),* $(,)?) => {$(
        fn $name(v: &str) -> Result<(), ValidationError> {
            parse_date(v, $label).map(drop).map_err(domain_error)
        }
    )*};
}

date_checks!(
    check_date_issued => "Ausstellungsdatum",
    check_date_birth => "Geburtsdatum",
    check_date_valid_until => "Versichert bis",
    check_date_since => "AU seit",
    check_date_until => "Voraussichtlich arbeitsunfähig bis",
    check_date_determined => "Festgestellt am",
);

/// A calendar date as `JJJJ-MM-TT` (API, HTML date input) or as staff type it: `TT.MM.JJJJ`,
/// `T.M.JJJJ` or with a two-digit year (`3.12.26`, `01.04.80`). A two-digit year is this
/// century's up to next year and the last century's beyond (a birth date `80` is 1980, a
/// certificate date `26` is 2026). Impossible dates such as 2026-02-30 are rejected, and years
/// outside 1900–2999.
pub fn parse_date(input: &str, field: &'static str) -> Result<NaiveDate, DomainError> {
    parse_date_in(input, field, chrono::Utc::now().year())
}

/// [`parse_date`] with the current year given (the pivot of two-digit years).
pub fn parse_date_in(
    input: &str,
    field: &'static str,
    this_year: i32,
) -> Result<NaiveDate, DomainError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DomainError::Required(field));
    }
    let bad = DomainError::Format(field, "gültiges Datum als TT.MM.JJJJ");
    let number = |part: &str, lengths: &[usize]| -> Option<u32> {
        (lengths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let parts: Vec<&str> = s.split(['-', '.']).collect();
    let ymd = match (parts.as_slice(), s.contains('-'), s.contains('.')) {
        ([y, m, d], true, false) => number(y, &[4]).zip(number(m, &[2])).zip(number(d, &[2])),
        ([d, m, y], false, true) => {
            let year = number(y, &[4]).or_else(|| {
                number(y, &[2]).map(|yy| {
                    let century = (this_year / 100) * 100;
                    let candidate = century + i32::try_from(yy).unwrap_or(0);
                    let year = if candidate > this_year + 1 {
                        candidate - 100
                    } else {
                        candidate
                    };
                    u32::try_from(year).unwrap_or(0)
                })
            });
            year.zip(number(m, &[1, 2])).zip(number(d, &[1, 2]))
        }
        _ => None,
    };
    let ((year, month), day) = ymd.ok_or(bad.clone())?;
    let year = i32::try_from(year).map_err(|_| bad.clone())?;
    NaiveDate::from_ymd_opt(year, month, day)
        .filter(|d| (1900..=2999).contains(&d.year()))
        .ok_or(bad)
}

// ---------------------------------------------------------------------------------------------
// Lenient deserialisers: the browser sends "on" for a ticked box and "" for an empty input.

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Text(t) => match t.as_str() {
            "on" | "true" | "1" | "ja" => Ok(true),
            "" | "off" | "false" | "0" | "nein" => Ok(false),
            _ => Err(serde::de::Error::custom("erwartet wahr oder falsch")),
        },
    }
}

/// A nested part of the draft only as an object (`{…}`): serde would also read a struct
/// from a list of its field values, so `"patient": []` would silently be an empty patient.
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectOnly {
        non_empty: false,
        of: std::marker::PhantomData,
    })
}

/// The mail part: an object that says something. `{}` says nothing: leave `mail` out for
/// "no mail".
fn mail_object<'de, D: Deserializer<'de>>(d: D) -> Result<MailDraft, D::Error> {
    d.deserialize_map(ObjectOnly {
        non_empty: true,
        of: std::marker::PhantomData,
    })
}

/// The diagnoses: a list of objects.
fn objects<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DiagnosisDraft>, D::Error> {
    #[derive(Deserialize)]
    struct Item(#[serde(deserialize_with = "object")] DiagnosisDraft);
    Ok(Vec::<Item>::deserialize(d)?
        .into_iter()
        .map(|i| i.0)
        .collect())
}

struct ObjectOnly<T> {
    non_empty: bool,
    of: std::marker::PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ein Objekt")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let mut counted = Counted { map, keys: 0 };
        let value = T::deserialize(serde::de::value::MapAccessDeserializer::new(&mut counted))?;
        if self.non_empty && counted.keys == 0 {
            return Err(serde::de::Error::custom(
                "leeres Objekt erwartet: weglassen oder Angaben machen",
            ));
        }
        Ok(value)
    }
}

/// A map that counts its keys.
struct Counted<A> {
    map: A,
    keys: usize,
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for Counted<A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.map.next_key_seed(seed)?;
        self.keys += usize::from(key.is_some());
        Ok(key)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

// ---------------------------------------------------------------------------------------------

/// Flattens `validator`'s nested errors into field paths with German messages.
pub fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    collect(errors, "", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn collect(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => out.extend(list.iter().map(|e| {
                let message = e
                    .message
                    .as_ref()
                    .map_or_else(|| format!("{path}: ungültig"), ToString::to_string);
                FieldError::new(path.clone(), message)
            })),
            ValidationErrorsKind::Struct(inner) => collect(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect(inner, &format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

/// Collects errors while converting, so that every failing field is reported at once.
struct Errors(Vec<FieldError>);

impl Errors {
    fn take<T>(&mut self, field: &str, r: Result<T, DomainError>) -> Option<T> {
        r.map_err(|e| self.0.push(FieldError::new(field, e.to_string())))
            .ok()
    }

    fn rule(&mut self, broken: bool, field: &str, message: &str) {
        if broken {
            self.0.push(FieldError::new(field, message));
        }
    }
}

impl Certificate {
    /// Validates a draft against the field rules and the AU rules (DOMAIN.md §2.2, §3.4) and
    /// builds the certificate, or names every failing field.
    pub fn from_draft(
        draft: &CertificateDraft,
        ctx: &CaptureContext,
    ) -> Result<Self, Vec<FieldError>> {
        let Err(invalid) = draft.validate() else {
            return draft_rules(draft, ctx);
        };
        // The field rules speak first; the AU rules add what they find on the other fields.
        let mut errors = field_errors(&invalid);
        let more = draft_rules(draft, ctx).err().unwrap_or_default();
        for extra in more {
            if !errors.iter().any(|e| e.field == extra.field) {
                errors.push(extra);
            }
        }
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(errors)
    }
}

fn draft_rules(d: &CertificateDraft, ctx: &CaptureContext) -> Result<Certificate, Vec<FieldError>> {
    let mut e = Errors(Vec::new());
    let today = ctx.today;
    let kind = e.take("kind", CertificateKind::parse(&d.kind));
    let patient = patient(&d.patient, today, &mut e);
    let coverage = coverage(&d.insurer, &mut e);
    let doctor = doctor(d.doctor_lanr.as_deref(), &ctx.doctors, &mut e);
    let issued_on = match &d.issued_on {
        Some(s) => e.take("issued_on", parse_date(s, "Ausstellungsdatum")),
        None => Some(today),
    };
    if let Some(issued) = issued_on {
        e.rule(
            issued > today,
            "issued_on",
            "Ausstellungsdatum: darf nicht in der Zukunft liegen",
        );
        e.rule(
            (today - issued).num_days() > MAX_DAYS_BACK,
            "issued_on",
            "Ausstellungsdatum: liegt mehr als ein Jahr zurück",
        );
    }
    let period = kind.and_then(|k| period(&d.period, k, d.backdating_confirmed, today, &mut e));
    let cause = d.cause.as_deref().map(Cause::parse).transpose();
    let cause = e.take("cause", cause);
    let other = d.measures.other.clone();
    let measures = Measures {
        d_arzt: d.measures.d_arzt,
        rehabilitation: d.measures.rehabilitation,
        reintegration: d.measures.reintegration,
        other,
    };
    e.rule(
        !diagnosis_count_allowed(d.diagnoses.len()),
        "diagnoses",
        DIAGNOSES_COUNT,
    );
    let diagnoses: Vec<Option<Diagnosis>> = d
        .diagnoses
        .iter()
        .enumerate()
        .map(|(i, dd)| diagnosis(dd, i, &mut e))
        .collect();
    if let Some(text) = &d.diagnosis_text {
        e.rule(
            text.chars().count() > 70,
            "diagnosis_text",
            "Hinweise zur Diagnose: höchstens 70 Zeichen",
        );
        let chars = super::check_characters("Hinweise zur Diagnose", text);
        e.take("diagnosis_text", chars);
    }
    if let Some(other) = &d.measures.other {
        let chars = super::check_characters("Sonstige Maßnahmen", other);
        e.take("measures.other", chars);
    }

    if let Err(mail) = d.mail.request() {
        e.0.extend(mail);
    }

    match (kind, patient, coverage, doctor, issued_on, period, cause) {
        (
            Some(kind),
            Some(patient),
            Some(coverage),
            Some(doctor),
            Some(issued_on),
            Some(period),
            Some(cause),
        ) if e.0.is_empty() => Ok(Certificate {
            document_id: ctx.document_id,
            kind,
            patient,
            coverage,
            practice: ctx.practice.clone(),
            doctor,
            issued_on,
            icd_version: u16::try_from(issued_on.year()).unwrap_or(2026),
            period,
            cause,
            more_causes: Vec::new(),
            measures,
            sick_pay_case: d.sick_pay_case,
            diagnoses: diagnoses.into_iter().flatten().collect(),
            diagnosis_text: d.diagnosis_text.clone(),
            backdating_confirmed: d.backdating_confirmed
                && period
                    .since
                    .is_some_and(|s| backdated_days(s, period.determined_on) > MAX_BACKDATING_DAYS),
            legal_basis: DEFAULT_LEGAL_BASIS.to_owned(),
            pruefnummer: SOFTWARE_PRUEFNUMMER.to_owned(),
            asv_team: None,
            responsible: None,
        }),
        _ => Err(e.0),
    }
}

fn patient(p: &PatientDraft, today: NaiveDate, e: &mut Errors) -> Option<Patient> {
    let kvnr = e.take("patient.kvnr", Kvnr::parse(&p.kvnr));
    let birth_date = e.take(
        "patient.birth_date",
        parse_date(&p.birth_date, "Geburtsdatum"),
    );
    if let Some(b) = birth_date {
        e.rule(
            b > today,
            "patient.birth_date",
            "Geburtsdatum: darf nicht in der Zukunft liegen",
        );
    }
    let first_name = text(&p.first_name, "patient.first_name", "Vorname", 45, e);
    let last_name = text(&p.last_name, "patient.last_name", "Name", 45, e);
    let title = optional(&p.title, "patient.title", "Titel", 20, e);
    let name_addition = optional(
        &p.name_addition,
        "patient.name_addition",
        "Namenszusatz",
        20,
        e,
    );
    let name_prefix = optional(&p.name_prefix, "patient.name_prefix", "Vorsatzwort", 20, e);
    let post_box = optional(&p.post_box, "patient.post_box", "Postfach", 8, e);
    let (street, house_number) = match &p.post_box {
        None => (
            text(&p.street, "patient.street", "Straße", 46, e),
            text(&p.house_number, "patient.house_number", "Hausnummer", 9, e),
        ),
        Some(_) => {
            for (value, field, label) in [
                (&p.street, "patient.street", "Straße"),
                (&p.house_number, "patient.house_number", "Hausnummer"),
            ] {
                e.rule(
                    !value.trim().is_empty(),
                    field,
                    &format!("{label}: bei einer Postfach-Anschrift leer lassen (Straße und Hausnummer oder Postfach)"),
                );
            }
            (Some(String::new()), Some(String::new()))
        }
    };
    let postal_code = text(&p.postal_code, "patient.postal_code", "PLZ", 10, e);
    let city = text(&p.city, "patient.city", "Ort", 40, e);
    Some(Patient {
        kvnr: Some(kvnr?),
        kvk_number: None,
        first_name: first_name?,
        last_name: last_name?,
        title: title?,
        name_addition: name_addition?,
        name_prefix: name_prefix?,
        birth_date: birth_date.filter(|b| *b <= today)?,
        street: street?,
        house_number: house_number?,
        post_box: post_box?,
        postal_code: postal_code?,
        city: city?,
        country: Some("D".to_owned()),
    })
}

/// An optional line: `Some(None)` when left empty, `None` when given but invalid.
fn optional(
    value: &Option<String>,
    field: &str,
    label: &'static str,
    max: usize,
    e: &mut Errors,
) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(v) => text(v, field, label, max, e).map(Some),
    }
}

fn text(
    value: &str,
    field: &str,
    label: &'static str,
    max: usize,
    e: &mut Errors,
) -> Option<String> {
    e.take(field, super::line(label, value, max))
}

fn coverage(i: &InsurerDraft, e: &mut Errors) -> Option<Coverage> {
    let ik = e.take("insurer.ik", InsurerIk::parse(&i.ik));
    let name = text(&i.name, "insurer.name", "Krankenkasse", 45, e);
    let insured_type = e.take("insurer.insured_type", InsuredType::parse(&i.insured_type));
    let valid_until = i
        .valid_until
        .as_deref()
        .map(|s| parse_date(s, "Versichert bis"))
        .transpose();
    let valid_until = e.take("insurer.valid_until", valid_until);
    let special_group = i.special_group.as_deref().unwrap_or("00").trim().to_owned();
    let dmp = i.dmp.as_deref().unwrap_or("00").trim().to_owned();
    let wop = i.wop.as_deref().map(|w| w.trim().to_owned());
    Some(Coverage {
        ik: ik?,
        name: name?,
        wop,
        insured_type: insured_type?,
        special_group,
        dmp,
        valid_until: valid_until?,
        payer_type: PayerType::Gkv,
    })
}

fn doctor(lanr: Option<&str>, doctors: &[Doctor], e: &mut Errors) -> Option<Doctor> {
    let found = match lanr {
        Some(l) => {
            let lanr = e.take("doctor_lanr", Lanr::parse(l))?;
            doctors.iter().find(|d| d.lanr == lanr)
        }
        None if doctors.len() == 1 => doctors.first(),
        None => None,
    };
    if found.is_none() {
        e.0.push(FieldError::new(
            "doctor_lanr",
            "Arzt (LANR): bitte einen Arzt dieser Praxis wählen",
        ));
    }
    found.cloned()
}

fn backdated_days(since: NaiveDate, determined_on: NaiveDate) -> i64 {
    (determined_on - since).num_days()
}

fn period(
    p: &PeriodDraft,
    kind: CertificateKind,
    backdating_confirmed: bool,
    today: NaiveDate,
    e: &mut Errors,
) -> Option<IncapacityPeriod> {
    let until = e.take(
        "period.until",
        parse_date(&p.until, "Voraussichtlich arbeitsunfähig bis"),
    );
    let determined = e.take(
        "period.determined_on",
        parse_date(&p.determined_on, "Festgestellt am"),
    );
    let since = match (&p.since, kind.is_initial()) {
        (Some(s), true) => Some(e.take("period.since", parse_date(s, "AU seit"))?),
        (None, true) => {
            e.rule(
                true,
                "period.since",
                "AU seit: bei einer Erstbescheinigung anzugeben",
            );
            return None;
        }
        (Some(_), false) => {
            e.rule(
                true,
                "period.since",
                "AU seit: bei einer Folgebescheinigung nicht anzugeben",
            );
            return None;
        }
        (None, false) => None,
    };
    let (until, determined) = (until?, determined?);
    let before = e.0.len();
    e.rule(
        determined > today,
        "period.determined_on",
        "Festgestellt am: darf nicht in der Zukunft liegen",
    );
    e.rule(
        (today - determined).num_days() > MAX_DAYS_BACK,
        "period.determined_on",
        "Festgestellt am: liegt mehr als ein Jahr zurück",
    );
    e.rule(
        (until - determined).num_days() > MAX_DAYS_AHEAD,
        "period.until",
        "Voraussichtlich arbeitsunfähig bis: höchstens 31 Tage nach „festgestellt am“",
    );
    e.rule(
        until < determined,
        "period.until",
        "Voraussichtlich arbeitsunfähig bis: darf nicht vor „festgestellt am“ liegen",
    );
    if let Some(since) = since {
        e.rule(
            since > until,
            "period.since",
            "AU seit: darf nicht nach „voraussichtlich bis“ liegen",
        );
        e.rule(
            since > determined,
            "period.since",
            "AU seit: darf nicht nach „festgestellt am“ liegen",
        );
        e.rule(
            backdated_days(since, determined) > MAX_DAYS_BACK,
            "period.since",
            "AU seit: liegt mehr als ein Jahr vor „festgestellt am“",
        );
        e.rule(
            backdated_days(since, determined) > MAX_BACKDATING_DAYS
                && backdated_days(since, determined) <= MAX_DAYS_BACK
                && !backdating_confirmed,
            "backdating_confirmed",
            "Rückdatierung: AU seit liegt mehr als 3 Tage vor „festgestellt am“ – bitte als Ausnahme bestätigen",
        );
    }
    (e.0.len() == before).then_some(IncapacityPeriod {
        since,
        until,
        determined_on: determined,
    })
}

fn diagnosis(d: &DiagnosisDraft, i: usize, e: &mut Errors) -> Option<Diagnosis> {
    let code = e.take(
        &format!("diagnoses[{i}].code"),
        Icd10Code::parse_typed(&d.code),
    );
    let certainty = d
        .certainty
        .as_deref()
        .map_or(Ok(Certainty::G), Certainty::parse);
    let certainty = e.take(&format!("diagnoses[{i}].certainty"), certainty);
    let side = d.side.as_deref().map(Side::parse).transpose();
    let side = e.take(&format!("diagnoses[{i}].side"), side);
    Some(Diagnosis {
        code: code?,
        certainty: certainty?,
        side: side?,
    })
}

/// The practice master data of the demo (`serve --demo`) and of tests.
pub fn demo_practice() -> Result<(Practice, Doctor), DomainError> {
    Ok((
        Practice {
            bsnr: Bsnr::parse("031234567")?,
            name: "Praxis Dr. Muster".into(),
            street: "Hauptstraße 1".into(),
            postal_code: "30159".into(),
            city: "Hannover".into(),
            phone: "0511 123456".into(),
            more: Default::default(),
            id_kind: Default::default(),
        },
        Doctor {
            lanr: Lanr::parse("838382202")?,
            name: "Dr. med. Maria Muster".into(),
            specialty: "Fachärztin für Allgemeinmedizin".into(),
            qualification: Default::default(),
            id_kind: Default::default(),
            name_parts: None,
            telematik_id: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_up_takes_over_the_patient_and_proposes_the_next_period() {
        let erst = Certificate::from_draft(&draft(), &ctx()).unwrap();
        let later = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let folge = CertificateDraft::follow_up(&erst, later);
        assert_eq!(folge.kind, "FOLGE");
        assert_eq!(
            folge.period.since, None,
            "no AU seit on a Folgebescheinigung"
        );
        assert_eq!(
            folge.patient.kvnr,
            erst.patient.kvnr.as_ref().unwrap().as_str()
        );
        assert_eq!(folge.diagnoses.len(), erst.diagnoses.len());
        // It passes the same rules, unchanged, on the day it is made.
        let next = CaptureContext {
            today: later,
            ..ctx()
        };
        let made = Certificate::from_draft(&folge, &next).unwrap();
        assert_eq!(made.kind, CertificateKind::Folge);
        assert_eq!(made.patient, erst.patient);
        assert_eq!(made.coverage, erst.coverage);
        assert_eq!(made.diagnoses, erst.diagnoses);
        let length = |c: &Certificate| (c.period.until - c.period.determined_on).num_days();
        assert_eq!(made.period.determined_on, later);
        assert!(made.period.until > erst.period.until, "the next period");
        assert!(length(&made) >= length(&erst));
    }

    #[test]
    fn dates_are_read_as_staff_type_them() {
        let d = |s: &str| parse_date_in(s, "Datum", 2026).map(|d| d.to_string());
        let ok = |s: &str| d(s).unwrap();
        assert_eq!(ok("2026-12-03"), "2026-12-03");
        assert_eq!(ok("03.12.2026"), "2026-12-03");
        assert_eq!(ok("3.12.2026"), "2026-12-03");
        assert_eq!(ok("3.1.2026"), "2026-01-03");
        assert_eq!(ok("03.12.26"), "2026-12-03");
        assert_eq!(ok("3.12.26"), "2026-12-03");
        assert_eq!(
            ok(" 1.4.80 "),
            "1980-04-01",
            "a birth date of the last century"
        );
        assert_eq!(ok("1.1.27"), "2027-01-01", "up to next year: this century");
        assert_eq!(ok("1.1.28"), "1928-01-01", "beyond: the last one");
        assert_eq!(ok("01.01.00"), "2000-01-01");
        for bad in [
            "2026-2-3",
            "26-12-03",
            "3.12.",
            "3.12.026",
            "03.12.2026.",
            "31.11.2026",
            "29.02.2026",
            "3/12/2026",
            "3. 12. 2026",
            "0.1.2026",
            "1.0.2026",
            "123.1.2026",
            "1.1.1899",
            "+2026-01-01",
            "2026-12-03T00:00",
        ] {
            assert!(d(bad).is_err(), "{bad}");
        }
        assert_eq!(d("29.02.24").unwrap(), "2024-02-29");
        assert_eq!(d(""), Err(DomainError::Required("Datum")));
    }

    #[test]
    fn icd_codes_and_kvnrs_are_read_as_staff_type_them() {
        let icd = |s: &str| Icd10Code::parse_typed(s).map(|c| c.as_str().to_owned());
        assert_eq!(icd("j069").unwrap(), "J06.9");
        assert_eq!(icd("J06.9").unwrap(), "J06.9");
        assert_eq!(icd("j06.9").unwrap(), "J06.9");
        assert_eq!(icd("m5456").unwrap(), "M54.56");
        assert_eq!(icd(" u071 ").unwrap(), "U07.1");
        assert_eq!(icd("J06").unwrap(), "J06");
        for bad in ["j0699x", "06.9J", "J069!", "J0.69", "J06.", "JJ069"] {
            assert!(icd(bad).is_err(), "{bad}");
        }
        assert_eq!(Kvnr::parse("a123456780").unwrap().as_str(), "A123456780");
        assert!(
            Kvnr::parse("a123456781").is_err(),
            "the check digit still counts"
        );
        assert!(
            Kvnr::parse_structure("x234567890").is_err(),
            "an imported bundle is read as the KBV profile writes it"
        );
    }

    fn ctx() -> CaptureContext {
        let (practice, doctor) = demo_practice().unwrap();
        CaptureContext {
            practice,
            doctors: vec![doctor],
            today: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            document_id: Uuid::nil(),
        }
    }

    fn draft() -> CertificateDraft {
        serde_json::from_value(serde_json::json!({
            "kind": "ERST",
            "patient": {
                "kvnr": "A123456780", "first_name": "Jürgen", "last_name": "Müller-Lüdenscheidt",
                "birth_date": "1980-04-01", "street": "Straße", "house_number": "5",
                "postal_code": "30159", "city": "Hannover"
            },
            "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "insured_type": "1"},
            "period": {"since": "2026-11-24", "until": "2026-11-28", "determined_on": "25.11.2026"},
            "diagnoses": [{"code": "J06.9", "certainty": "G"}, {"code": "m54.5", "side": "L"}]
        }))
        .unwrap()
    }

    fn fields(d: &CertificateDraft) -> Vec<String> {
        Certificate::from_draft(d, &ctx())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn title_name_parts_and_postfach_are_captured_as_the_egk_has_them() {
        let mut d = draft();
        d.patient.title = Some(" Dr. ".into());
        d.patient.name_addition = Some("Freiherr".into());
        d.patient.name_prefix = Some("von".into());
        d.patient.street = String::new();
        d.patient.house_number = String::new();
        d.patient.post_box = Some("124589".into());
        let p = Certificate::from_draft(&d, &ctx()).unwrap().patient;
        assert_eq!(p.title.as_deref(), Some("Dr."));
        assert_eq!(
            p.display_name(),
            "Müller-Lüdenscheidt, Dr. Jürgen Freiherr von"
        );
        assert_eq!(p.family_name(), "Freiherr von Müller-Lüdenscheidt");
        assert_eq!(p.address_line(), "Postfach: 124589");

        // Street and house number or a Postfach, never both; each part at most 20 characters.
        d.patient.street = "Große Straße".into();
        d.patient.house_number = "5".into();
        d.patient.title = Some("D".repeat(21));
        d.patient.post_box = Some("123456789".into());
        let mut failed = fields(&d);
        failed.sort();
        assert_eq!(
            failed,
            [
                "patient.house_number",
                "patient.post_box",
                "patient.street",
                "patient.title"
            ]
        );
        // Without a Postfach, street and house number stay required.
        let mut d = draft();
        d.patient.street = String::new();
        assert_eq!(fields(&d), ["patient.street"]);
    }

    #[test]
    fn mail_needs_consent_and_a_valid_address_and_consent_needs_an_address() {
        let with = |address: Option<&str>, consent: bool, employer_copy: bool| {
            let mut d = draft();
            d.mail = MailDraft {
                address: address.map(str::to_owned),
                consent,
                employer_copy,
            };
            d
        };
        assert!(Certificate::from_draft(&with(None, false, false), &ctx()).is_ok());
        assert_eq!(
            fields(&with(Some("a@b.de"), false, false)),
            ["mail.consent"]
        );
        assert_eq!(fields(&with(None, true, false)), ["mail.address"]);
        assert_eq!(fields(&with(None, false, true)), ["mail.address"]);
        assert_eq!(
            fields(&with(Some("kein-at.de"), true, false)),
            ["mail.address"]
        );
        let ok = with(Some("p@example.de"), true, true)
            .mail
            .request()
            .unwrap()
            .unwrap();
        assert_eq!(ok.recipient.as_str(), "p@example.de");
        assert!(ok.employer_copy);
        // The JSON API names the same fields.
        let json: CertificateDraft = serde_json::from_value(serde_json::json!({
            "mail": {"address": "p@example.de", "consent": true}
        }))
        .unwrap();
        assert!(json.mail.request().unwrap().is_some());
    }

    #[test]
    fn a_complete_draft_becomes_a_certificate() {
        let c = Certificate::from_draft(&draft(), &ctx()).unwrap();
        assert_eq!(c.kind, CertificateKind::Erst);
        assert_eq!(c.diagnoses_line(), "J06.9 G, M54.5 G L");
        assert_eq!(
            c.period.determined_on,
            NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
        );
        assert_eq!(c.issued_on, ctx().today);
        assert_eq!(c.doctor.lanr.as_str(), "838382202");
        assert!(!c.backdating_confirmed);
    }

    #[test]
    fn an_empty_draft_names_every_required_field_in_german() {
        let errors = Certificate::from_draft(&CertificateDraft::default(), &ctx()).unwrap_err();
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "kind",
            "patient.kvnr",
            "patient.first_name",
            "patient.birth_date",
            "insurer.ik",
            "insurer.name",
            "insurer.insured_type",
            "period.until",
            "period.determined_on",
            "diagnoses",
        ] {
            assert!(names.contains(&f), "{f} missing in {names:?}");
        }
        let kvnr = errors.iter().find(|e| e.field == "patient.kvnr").unwrap();
        assert!(
            kvnr.message.starts_with("Versicherten-Nr."),
            "{}",
            kvnr.message
        );
    }

    #[test]
    fn au_seit_is_required_for_erst_and_forbidden_for_folge() {
        let mut d = draft();
        d.period.since = None;
        assert_eq!(fields(&d), ["period.since"]);
        let mut d = draft();
        d.kind = "FOLGE".into();
        assert_eq!(fields(&d), ["period.since"]);
        d.period.since = None;
        assert!(Certificate::from_draft(&d, &ctx()).is_ok());
    }

    #[test]
    fn festgestellt_am_must_not_lie_in_the_future() {
        let mut d = draft();
        d.period.determined_on = "2026-11-26".into();
        assert!(fields(&d).contains(&"period.determined_on".to_string()));
    }

    #[test]
    fn bis_must_lie_between_festgestellt_and_31_days_later() {
        let mut d = draft();
        d.period.until = "2026-12-26".into(); // 31 days
        assert!(Certificate::from_draft(&d, &ctx()).is_ok());
        d.period.until = "2026-12-27".into(); // 32 days
        assert_eq!(fields(&d), ["period.until"]);
        d.period.until = "2026-11-23".into();
        assert!(fields(&d).contains(&"period.until".to_string()));
    }

    #[test]
    fn backdating_beyond_three_days_needs_confirmation_and_is_recorded() {
        let mut d = draft();
        d.period.since = Some("2026-11-22".into()); // exactly 3 days
        assert!(
            !Certificate::from_draft(&d, &ctx())
                .unwrap()
                .backdating_confirmed
        );
        d.period.since = Some("2026-11-21".into()); // 4 days
        assert_eq!(fields(&d), ["backdating_confirmed"]);
        d.backdating_confirmed = true;
        assert!(
            Certificate::from_draft(&d, &ctx())
                .unwrap()
                .backdating_confirmed
        );
    }

    #[test]
    fn one_to_six_diagnoses_and_seven_are_refused() {
        let mut d = draft();
        d.diagnoses = vec![
            DiagnosisDraft {
                code: "J06.9".into(),
                ..Default::default()
            };
            7
        ];
        assert_eq!(fields(&d), ["diagnoses"]);
        d.diagnoses.truncate(6);
        assert!(Certificate::from_draft(&d, &ctx()).is_ok());
        d.diagnoses.clear();
        assert_eq!(fields(&d), ["diagnoses"]);
    }

    #[test]
    fn impossible_dates_and_bad_codes_name_their_fields() {
        let mut d = draft();
        d.patient.birth_date = "2026-02-30".into();
        d.diagnoses[1].code = "J06.9!".into();
        d.diagnoses[1].side = Some("X".into());
        d.patient.kvnr = "A123456789".into();
        d.insurer.ik = "109500968".into();
        d.diagnosis_text = Some("x".repeat(71));
        d.measures.other = Some("y".repeat(71));
        assert_eq!(
            fields(&d),
            [
                "diagnoses[1].code",
                "diagnoses[1].side",
                "diagnosis_text",
                "insurer.ik",
                "measures.other",
                "patient.birth_date",
                "patient.kvnr",
            ]
        );
    }

    #[test]
    fn names_longer_than_45_characters_are_refused_counting_characters_not_bytes() {
        let mut d = draft();
        d.patient.last_name = "Ü".repeat(45);
        assert!(Certificate::from_draft(&d, &ctx()).is_ok());
        d.patient.last_name = "Ü".repeat(46);
        assert_eq!(fields(&d), ["patient.last_name"]);
    }

    #[test]
    fn a_birth_date_in_the_future_is_refused() {
        let mut d = draft();
        d.patient.birth_date = "26.11.2026".into();
        assert_eq!(fields(&d), ["patient.birth_date"]);
    }

    #[test]
    fn an_unknown_doctor_is_refused() {
        let mut d = draft();
        d.doctor_lanr = Some("999999900".into());
        assert_eq!(fields(&d), ["doctor_lanr"]);
    }

    #[test]
    fn form_flags_and_empty_strings_deserialise_leniently() {
        let d: CertificateDraft = serde_json::from_value(serde_json::json!({
            "sick_pay_case": "on", "cause": "", "measures": {"d_arzt": true, "other": ""}
        }))
        .unwrap();
        assert!(d.sick_pay_case && d.measures.d_arzt);
        assert_eq!((d.cause, d.measures.other), (None, None));
    }
}
