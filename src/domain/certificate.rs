//! The Arbeitsunfähigkeitsbescheinigung (Muster 1 / eAU) as a validated value.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Bsnr, DomainError, InsurerIk, Kvnr, Lanr};

/// `KBV_CS_EAU_AU_Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateKind {
    Erst,
    Folge,
    ErstEnd,
    FolgeEnd,
}

impl CertificateKind {
    pub const ALL: [Self; 4] = [Self::Erst, Self::Folge, Self::ErstEnd, Self::FolgeEnd];

    pub fn code(self) -> &'static str {
        match self {
            Self::Erst => "ERST",
            Self::Folge => "FOLGE",
            Self::ErstEnd => "ERST_END",
            Self::FolgeEnd => "FOLGE_END",
        }
    }

    pub fn parse(code: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|k| k.code() == code.trim())
            .ok_or(DomainError::Format(
                "Art der Bescheinigung",
                "ERST, FOLGE, ERST_END oder FOLGE_END",
            ))
    }

    /// Erstbescheinigung (ERST or ERST_END): "AU seit" must be given.
    pub fn is_initial(self) -> bool {
        matches!(self, Self::Erst | Self::ErstEnd)
    }

    /// Endbescheinigung in the Krankengeld case.
    pub fn is_final(self) -> bool {
        matches!(self, Self::ErstEnd | Self::FolgeEnd)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Erst => "Erstbescheinigung",
            Self::Folge => "Folgebescheinigung",
            Self::ErstEnd => "Erstbescheinigung (Endbescheinigung)",
            Self::FolgeEnd => "Folgebescheinigung (Endbescheinigung)",
        }
    }
}

/// Cause (FHIR `condition-dueTo`). The eAU binds it to `KBV_VS_EAU_Ursache_Type` (1, 2, 3):
/// the code system's `4` Berufskrankheit is no eAU value; on the Muster 1 a Berufskrankheit is
/// the box "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit", code 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// `1` sonstiger Unfall, Unfallfolgen
    Accident,
    /// `2` Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit
    WorkAccident,
    /// `3` Versorgungsleiden (schädigendes Ereignis nach SER)
    Ser,
    /// Certificates stored before the eAU value set was enforced with `4`: written, printed
    /// and shown as code 2 (never accepted any more).
    OccupationalDisease,
}

impl Cause {
    /// What capture and import accept.
    pub const ALL: [Self; 3] = [Self::Accident, Self::WorkAccident, Self::Ser];

    pub fn code(self) -> &'static str {
        match self {
            Self::Accident => "1",
            Self::WorkAccident | Self::OccupationalDisease => "2",
            Self::Ser => "3",
        }
    }

    pub fn parse(code: &str) -> Result<Self, DomainError> {
        match code.trim() {
            "4" => Err(DomainError::Format(
                "Ursache",
                "1, 2 oder 3; eine Berufskrankheit ist 2 – Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit",
            )),
            code => Self::ALL
                .into_iter()
                .find(|c| c.code() == code)
                .ok_or(DomainError::Format("Ursache", "1, 2 oder 3")),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Accident => "sonstiger Unfall, Unfallfolgen",
            Self::WorkAccident | Self::OccupationalDisease => {
                "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit"
            }
            Self::Ser => "Versorgungsleiden (z. B. SER)",
        }
    }

    /// The Muster-1 box "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit".
    pub fn is_work_related(self) -> bool {
        matches!(self, Self::WorkAccident | Self::OccupationalDisease)
    }
}

/// Diagnosesicherheit (`KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Certainty {
    G,
    V,
    Z,
    A,
}

/// Seitenlokalisation (`KBV_CS_SFHIR_ICD_SEITENLOKALISATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    R,
    L,
    B,
}

impl Certainty {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "G" => Ok(Self::G),
            "V" => Ok(Self::V),
            "Z" => Ok(Self::Z),
            "A" => Ok(Self::A),
            _ => Err(DomainError::Format("Diagnosesicherheit", "G, V, Z oder A")),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::G => "G",
            Self::V => "V",
            Self::Z => "Z",
            Self::A => "A",
        }
    }
}

impl Side {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "R" => Ok(Self::R),
            "L" => Ok(Self::L),
            "B" => Ok(Self::B),
            _ => Err(DomainError::Format("Seitenlokalisation", "R, L oder B")),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::R => "R",
            Self::L => "L",
            Self::B => "B",
        }
    }
}

/// A terminal ICD-10-GM code as transmitted in the eAU: 3 to 6 characters, without the special
/// characters `!`, `†`, `+`, `*` (TA P310-05). Lower case input is normalised.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Icd10Code(String);

impl Icd10Code {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        const FIELD: &str = "ICD-10-Code";
        let s = input.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let head_ok = b.len() >= 3
            && b[0].is_ascii_uppercase()
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit();
        let tail_ok = match &b[3.min(b.len())..] {
            [] => true,
            [b'.', rest @ ..] => {
                (1..=2).contains(&rest.len()) && rest.iter().all(u8::is_ascii_digit)
            }
            _ => false,
        };
        if !(head_ok && tail_ok) {
            return Err(DomainError::Format(
                FIELD,
                "z. B. J06.9, ohne Sonderzeichen wie ! * +",
            ));
        }
        Ok(Self(s))
    }

    /// As staff type it: any case, and without the dot (`j069` → `J06.9`, `m5456` → `M54.56`).
    pub fn parse_typed(input: &str) -> Result<Self, DomainError> {
        let s = input.trim();
        let dotless = !s.contains('.') && (4..=5).contains(&s.len()) && s.is_ascii();
        if dotless {
            let (head, tail) = s.split_at(3);
            Self::parse(&format!("{head}.{tail}"))
        } else {
            Self::parse(s)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Icd10Code {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Icd10Code> for String {
    fn from(c: Icd10Code) -> Self {
        c.0
    }
}

impl fmt::Debug for Icd10Code {
    // Diagnoses are health data: never in Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Icd10Code(***)")
    }
}

impl fmt::Display for Icd10Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One AU-justifying diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub code: Icd10Code,
    pub certainty: Certainty,
    pub side: Option<Side>,
}

impl fmt::Display for Diagnosis {
    /// `CODE[ SICHERHEIT][ SEITE]` as printed and in the barcode (BFB §2.5).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.certainty.code())?;
        if let Some(side) = self.side {
            write!(f, " {}", side.code())?;
        }
        Ok(())
    }
}

/// Versichertenart (`KBV_CS_SFHIR_KBV_VERSICHERTENSTATUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InsuredType {
    /// 1 Mitglied
    Member,
    /// 3 Familienversicherter
    Family,
    /// 5 Rentner
    Pensioner,
}

impl InsuredType {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "1" => Ok(Self::Member),
            "3" => Ok(Self::Family),
            "5" => Ok(Self::Pensioner),
            _ => Err(DomainError::Format("Versichertenart", "1, 3 oder 5")),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Member => "1",
            Self::Family => "3",
            Self::Pensioner => "5",
        }
    }
}

/// Kostenträgertyp (`Coverage.type`, `versicherungsart-de-basis`; DOMAIN.md §2, TA Table 23).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PayerType {
    /// Gesetzliche Krankenversicherung.
    #[default]
    Gkv,
    /// Berufsgenossenschaft.
    Bg,
    /// Sonstiger Kostenträger.
    Skt,
    /// Unfallkasse.
    Uk,
    /// Private Krankenversicherung (no eAU yet, TA "Hinweis … PKV").
    Pkv,
    /// Selbstzahler.
    Sel,
}

impl PayerType {
    pub const ALL: [Self; 6] = [
        Self::Gkv,
        Self::Bg,
        Self::Skt,
        Self::Uk,
        Self::Pkv,
        Self::Sel,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Gkv => "GKV",
            Self::Bg => "BG",
            Self::Skt => "SKT",
            Self::Uk => "UK",
            Self::Pkv => "PKV",
            Self::Sel => "SEL",
        }
    }

    pub fn parse(code: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|t| t.code() == code.trim())
            .ok_or(DomainError::Format(
                "Kostenträgertyp",
                "GKV, BG, SKT, UK, PKV oder SEL",
            ))
    }
}

/// Besondere Personengruppe codes (`KBV_CS_SFHIR_KBV_PERSONENGRUPPE`).
pub const SPECIAL_GROUPS: &[&str] = &["00", "04", "06", "07", "08", "09"];

/// DMP-Kennzeichen: `00`–`12` and `30`–`58` (`KBV_CS_SFHIR_KBV_DMP`).
pub fn is_dmp_code(s: &str) -> bool {
    s.len() == 2
        && s.parse::<u8>()
            .is_ok_and(|n| n <= 12 || (30..=58).contains(&n))
}

/// The insurer and the patient's coverage (Personalienfeld).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub ik: InsurerIk,
    /// Name of the Krankenkasse, 1..45 characters.
    pub name: String,
    /// Wohnortprinzip code, two digits.
    pub wop: Option<String>,
    pub insured_type: InsuredType,
    pub special_group: String,
    pub dmp: String,
    /// Versicherungsschutz Ende.
    pub valid_until: Option<NaiveDate>,
    /// Kostenträgertyp; certificates stored before this field existed are GKV.
    #[serde(default)]
    pub payer_type: PayerType,
}

impl Coverage {
    /// Cases that never go to an insurer electronically (DOMAIN.md §2.1 item 6): besondere
    /// Personengruppe `07` (insured abroad), PKV and Selbstzahler (no eAU for them yet).
    pub fn is_print_only(&self) -> bool {
        self.special_group == "07" || matches!(self.payer_type, PayerType::Pkv | PayerType::Sel)
    }
}

/// The insured person. `Debug` is redacted: names and dates are health data.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// Versicherten-ID. `None` only for an imported SKT case identified by its KVK number
    /// ([`Patient::kvk_number`]); captured certificates always have one.
    pub kvnr: Option<Kvnr>,
    /// KVK-Versichertennummer (6..12 characters) of a "sonstiger Kostenträger" patient
    /// without Versicherten-ID; mutually exclusive with `kvnr` (TA Table 23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvk_number: Option<String>,
    pub first_name: String,
    /// Nachname: the own name alone ("Schaumberg"), without Namenszusatz and Vorsatzwort.
    pub last_name: String,
    /// Akademischer Grad ("Dr."), Namenszusatz ("Graf", "Freiherr") and Vorsatzwort ("von"),
    /// kept apart as the eGK and the KBV Patient profile keep them (TA Table 23: 1..20 each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_addition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    pub birth_date: NaiveDate,
    /// Street and house number; both empty for a Postfach address ([`Patient::post_box`]).
    pub street: String,
    pub house_number: String,
    /// Postfach of a postal address (KBV Patient `address` of type `postal`), in place of the
    /// street.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_box: Option<String>,
    pub postal_code: String,
    pub city: String,
    /// Country code of the address as the bundle has it (`D`); `None` where an imported bundle
    /// gives none. Certificates stored before this field: `D`, as they were written.
    #[serde(default = "germany")]
    pub country: Option<String>,
}

/// The given name parts, in order, one space apart.
fn words<const N: usize>(parts: [Option<&str>; N]) -> String {
    parts.into_iter().flatten().collect::<Vec<_>>().join(" ")
}

fn germany() -> Option<String> {
    Some("D".to_owned())
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Patient(***)")
    }
}

impl Patient {
    /// The number printed as "Versicherten-Nr.": the KVNR, else the KVK number.
    pub fn insured_number(&self) -> &str {
        match (&self.kvnr, &self.kvk_number) {
            (Some(k), _) => k.as_str(),
            (None, Some(k)) => k,
            (None, None) => "",
        }
    }

    /// "Müller-Lüdenscheidt, Jürgen" as on Muster 1; with the other name parts
    /// "Schaumberg, Dr. Karl Graf von", the order of the KBV copies.
    pub fn display_name(&self) -> String {
        format!("{}, {}", self.last_name, self.given_line())
    }

    /// The second name line of the KBV copies: title, first name, Namenszusatz, Vorsatzwort.
    pub fn given_line(&self) -> String {
        words([
            self.title.as_deref(),
            Some(&self.first_name),
            self.name_addition.as_deref(),
            self.name_prefix.as_deref(),
        ])
    }

    /// The name as spoken and addressed: "Dr. Karl Graf von Schaumberg".
    pub fn full_name(&self) -> String {
        words([
            self.title.as_deref(),
            Some(&self.first_name),
            Some(&self.family_name()),
        ])
    }

    /// The whole family name as FHIR `HumanName.family` carries it: "Graf von Schaumberg".
    pub fn family_name(&self) -> String {
        words([
            self.name_addition.as_deref(),
            self.name_prefix.as_deref(),
            Some(&self.last_name),
        ])
    }

    /// The first address line: "Große Straße 5a", or "Postfach: 124589".
    pub fn address_line(&self) -> String {
        match &self.post_box {
            Some(post_box) => format!("Postfach: {post_box}"),
            None if self.house_number.is_empty() => self.street.clone(),
            None => format!("{} {}", self.street, self.house_number),
        }
    }
}

/// Which number identifies the issuing organisation (`Organization.identifier`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeIdKind {
    /// Betriebsstättennummer (KBV_NS_Base_BSNR).
    #[default]
    Bsnr,
    /// KZV-Abrechnungsnummer of a dental practice.
    Kzva,
    /// Standortnummer of a hospital site (§ 75 Abs. 1a SGB V).
    Standortnummer,
}

/// The practice (Betriebsstätte) from master data, snapshotted into every certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Practice {
    /// The nine-digit number of the organisation; its kind is [`Practice::id_kind`].
    pub bsnr: Bsnr,
    #[serde(default)]
    pub id_kind: PracticeIdKind,
    pub name: String,
    pub street: String,
    pub postal_code: String,
    pub city: String,
    pub phone: String,
    /// What an imported bundle has beyond AU-Relay's master data, printed in the stamp as the
    /// KBV stylesheets do: a second address line, fax, e-mail.
    #[serde(default, skip_serializing_if = "Contact::is_empty")]
    pub more: Contact,
}

/// The further contact lines of a practice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fax: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Berufsgruppe of the issuing person (`KBV_CS_FOR_Qualification_Type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualification {
    /// `00` Arzt
    #[default]
    Doctor,
    /// `01` Zahnarzt (identified by a ZANR)
    Dentist,
    /// `03` Arzt in Weiterbildung
    Trainee,
    /// `04` Arzt als Vertreter
    Substitute,
}

impl Qualification {
    pub const ALL: [Self; 4] = [Self::Doctor, Self::Dentist, Self::Trainee, Self::Substitute];

    pub fn code(self) -> &'static str {
        match self {
            Self::Doctor => "00",
            Self::Dentist => "01",
            Self::Trainee => "03",
            Self::Substitute => "04",
        }
    }

    pub fn parse(code: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|q| q.code() == code.trim())
            .ok_or(DomainError::Format("Berufsgruppe", "00, 01, 03 oder 04"))
    }
}

/// How the doctor's number is transmitted (`Practitioner.identifier` / qualification).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoctorIdKind {
    /// LANR (KBV_NS_Base_ANR), or ZANR for dentists.
    #[default]
    Lanr,
    /// ASV-Fachgruppennummer `555555nff` (a KBV pseudo-LANR), sent as a qualification.
    AsvFachgruppe,
    /// No number transmitted (e.g. Arzt in Weiterbildung with a responsible person);
    /// [`Doctor::lanr`] then holds the KBV pseudo-number `999999900` "ohne LANR".
    None,
}

/// Name parts as in FHIR `HumanName` (prefix such as "Dr. med.", given, family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    pub prefix: Option<String>,
    pub given: String,
    pub family: String,
}

impl PersonName {
    /// "Dr. med. Maria Muster".
    pub fn display(&self) -> String {
        let mut out = String::new();
        for part in [
            self.prefix.as_deref(),
            Some(self.given.as_str()),
            Some(self.family.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(part);
        }
        out
    }

    /// Splits a display name: leading words ending in `.` are the prefix, the last word is the
    /// family name, the rest the given name(s).
    pub fn split(name: &str) -> Self {
        let words: Vec<&str> = name.split_whitespace().collect();
        let n_prefix = words
            .iter()
            .take(words.len().saturating_sub(1))
            .take_while(|w| w.ends_with('.'))
            .count();
        let (prefix, rest) = words.split_at(n_prefix);
        let (family, given) = match rest.split_last() {
            Some((f, g)) => ((*f).to_owned(), g.join(" ")),
            None => (String::new(), String::new()),
        };
        Self {
            prefix: (!prefix.is_empty()).then(|| prefix.join(" ")),
            given,
            family,
        }
    }
}

/// The certifying doctor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doctor {
    pub lanr: Lanr,
    pub name: String,
    pub specialty: String,
    #[serde(default)]
    pub qualification: Qualification,
    #[serde(default)]
    pub id_kind: DoctorIdKind,
    /// Name parts when they differ from [`PersonName::split`] of `name` (imported bundles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_parts: Option<PersonName>,
    /// Telematik-ID as an imported bundle transmits it (`Practitioner.identifier` PRN); kept
    /// so that the bundle is written again as received and the copies choose the Arzt-Nr. as
    /// the KBV stylesheets do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telematik_id: Option<String>,
}

impl Doctor {
    /// The number the copies print for this doctor (LANR, ZANR or ASV-Fachgruppennummer);
    /// none for a doctor transmitted without one.
    pub fn printed_number(&self) -> Option<&str> {
        match self.id_kind {
            DoctorIdKind::None => None,
            DoctorIdKind::Lanr | DoctorIdKind::AsvFachgruppe => Some(self.lanr.as_str()),
        }
    }

    /// The name parts as transmitted.
    pub fn person_name(&self) -> PersonName {
        self.name_parts
            .clone()
            .unwrap_or_else(|| PersonName::split(&self.name))
    }
}

/// AU dates. `since` exists exactly for Erstbescheinigungen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncapacityPeriod {
    pub since: Option<NaiveDate>,
    pub until: NaiveDate,
    pub determined_on: NaiveDate,
}

/// A certificate names at most this many diagnoses, and at least one (the Composition's
/// section "Diagnosen", 1..6 entries; the paper copy's field has six places). The rule for
/// capture, import, writing and scanning.
pub const MAX_DIAGNOSES: usize = 6;
/// What staff and practice software read when the count is wrong.
pub const DIAGNOSES_COUNT: &str = "Diagnosen: ein bis sechs ICD-10-Codes angeben";

/// Whether `n` diagnoses are allowed on a certificate (see [`MAX_DIAGNOSES`]).
pub const fn diagnosis_count_allowed(n: usize) -> bool {
    n >= 1 && n <= MAX_DIAGNOSES
}

/// Maximum days between "festgestellt am" and "voraussichtlich bis" (TA P310-04).
pub const MAX_DAYS_AHEAD: i64 = 31;
/// Back-dating beyond this many days before "festgestellt am" needs confirmation (AU-RL § 5 Abs. 3).
pub const MAX_BACKDATING_DAYS: i64 = 3;
/// Even confirmed, "AU seit" lies at most this many days before "festgestellt am"; and a
/// certificate captured now was issued and determined at most this many days ago. Beyond it
/// a date is a typo (1926 for 2026), not an exception.
pub const MAX_DAYS_BACK: i64 = 366;

/// Measures the doctor considers necessary (`KBV_CS_EAU_WeitereSchritte_Type`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measures {
    /// `d_arzt`: dem Durchgangsarzt zugewiesen.
    pub d_arzt: bool,
    /// `reha`: Leistungen zur medizinischen Rehabilitation.
    pub rehabilitation: bool,
    /// `wiedereingliederung`: stufenweise Wiedereingliederung.
    pub reintegration: bool,
    /// `sonstige` with its text (1..70 characters).
    pub other: Option<String>,
}

/// A captured, valid Arbeitsunfähigkeitsbescheinigung.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Future `Bundle.identifier` (urn:uuid:…), fixed at capture.
    pub document_id: Uuid,
    pub kind: CertificateKind,
    pub patient: Patient,
    pub coverage: Coverage,
    pub practice: Practice,
    pub doctor: Doctor,
    /// Ausstellungsdatum.
    pub issued_on: NaiveDate,
    pub period: IncapacityPeriod,
    pub cause: Option<Cause>,
    /// Further causes of an imported bundle (the eAU allows up to three, each once); capture
    /// takes one. Printed and written with [`Certificate::causes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_causes: Vec<Cause>,
    pub measures: Measures,
    /// "ab 7. AU-Woche oder sonstiger Krankengeldfall".
    pub sick_pay_case: bool,
    /// ICD-10-GM catalogue year.
    pub icd_version: u16,
    pub diagnoses: Vec<Diagnosis>,
    /// Hinweise zur Diagnose (free text, ≤ 70).
    pub diagnosis_text: Option<String>,
    /// Staff confirmed a back-dating of more than three days.
    pub backdating_confirmed: bool,
    /// Kennzeichen Rechtsgrundlage (`KBV_CS_SFHIR_KBV_STATUSKENNZEICHEN`), `00` unless ASV etc.
    #[serde(default = "default_legal_basis")]
    pub legal_basis: String,
    /// KBV Prüfnummer of the software that wrote the bundle (author Device).
    #[serde(default = "default_pruefnummer")]
    pub pruefnummer: String,
    /// ASV-Teamnummer (PractitionerRole), sent with legal basis `01`/`11`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asv_team: Option<String>,
    /// Responsible person (`Composition.attester`) for Weiterbildung / Vertreter cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible: Option<Doctor>,
}

/// Legal basis "00" (no special legal basis).
pub const DEFAULT_LEGAL_BASIS: &str = "00";
/// Prüfnummer written into bundles produced by AU-Relay. Placeholder: the KBV test number used in
/// the KBV examples, until AU-Relay has its own certification number.
pub const SOFTWARE_PRUEFNUMMER: &str = "Y/400/2107/36/999";

fn default_legal_basis() -> String {
    DEFAULT_LEGAL_BASIS.to_owned()
}

fn default_pruefnummer() -> String {
    SOFTWARE_PRUEFNUMMER.to_owned()
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("document_id", &self.document_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// The "Arzt-Nr." of the copies and barcode field 11, chosen as the KBV stylesheets choose
    /// it: with both doctors identified, the author's number; else the one LANR/ZANR there is
    /// (an Arzt in Weiterbildung transmitted without one); else an ASV-Fachgruppennummer; else
    /// nothing.
    pub fn doctor_number(&self) -> &str {
        let doctors = || std::iter::once(&self.doctor).chain(self.responsible.as_ref());
        // The stylesheets count the practitioners' identifiers (LANR/ZANR and Telematik-ID):
        // more than one, and the author's number is printed, whatever it is.
        let identifiers: usize = doctors()
            .map(|d| {
                usize::from(d.id_kind == DoctorIdKind::Lanr) + usize::from(d.telematik_id.is_some())
            })
            .sum();
        if identifiers > 1 {
            return self.doctor.printed_number().unwrap_or_default();
        }
        doctors()
            .find(|d| d.id_kind == DoctorIdKind::Lanr)
            .or_else(|| doctors().find(|d| d.id_kind == DoctorIdKind::AsvFachgruppe))
            .map_or("", |d| d.lanr.as_str())
    }

    /// Every cause, the first one first.
    pub fn causes(&self) -> impl Iterator<Item = Cause> + '_ {
        self.cause
            .into_iter()
            .chain(self.more_causes.iter().copied())
    }

    /// Whether the certificate names this cause (a box on the paper, a flag in the barcode).
    pub fn has_cause(&self, wanted: Cause) -> bool {
        self.causes().any(|c| c.code() == wanted.code())
    }

    pub fn diagnoses_line(&self) -> String {
        self.diagnoses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether this certificate never goes to an insurer electronically: see
    /// [`Coverage::is_print_only`], plus patients without Versicherten-ID (SKT with KVK number).
    pub fn is_print_only(&self) -> bool {
        self.coverage.is_print_only() || self.patient.kvnr.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_berufskrankheit_is_the_eau_code_2_and_4_is_refused() {
        assert!(Cause::parse("4")
            .unwrap_err()
            .to_string()
            .contains("Berufskrankheit ist 2"));
        assert_eq!(Cause::parse("2").unwrap(), Cause::WorkAccident);
        assert_eq!(Cause::OccupationalDisease.code(), "2");
        assert_eq!(
            Cause::ALL.map(Cause::code),
            ["1", "2", "3"],
            "KBV_VS_EAU_Ursache_Type"
        );
    }
}
