//! Certificate → `KBV_PR_EAU_Bundle|1.2` (element order as in the KBV examples).

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::xml::Writer;
use super::{FhirError, PROFILE_VERSION, SD};
use crate::domain::{
    Certainty, Certificate, Diagnosis, Doctor, DoctorIdKind, PayerType, PracticeIdKind,
    Qualification,
};

pub(crate) mod sys {
    pub const URN: &str = "urn:ietf:rfc:3986";
    pub const AU_TYPE: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_EAU_AU_Type";
    pub const FORMULAR_ART: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_KBV_FORMULAR_ART";
    pub const LEGAL_BASIS_EX: &str =
        "https://fhir.kbv.de/StructureDefinition/KBV_EX_FOR_Legal_basis";
    pub const STATUSKENNZEICHEN: &str =
        "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_KBV_STATUSKENNZEICHEN";
    pub const PRUEFNUMMER: &str = "https://fhir.kbv.de/NamingSystem/KBV_NS_FOR_Pruefnummer";
    pub const SECTION: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_FOR_Section_Type";
    pub const ID_TYPE_DE: &str = "http://fhir.de/CodeSystem/identifier-type-de-basis";
    pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
    pub const KBV_ID_TYPE: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_Base_identifier_type";
    pub const KVID_GKV: &str = "http://fhir.de/sid/gkv/kvid-10";
    pub const KVID_PKV: &str = "http://fhir.de/sid/pkv/kvid-10";
    pub const KVK: &str = "http://fhir.de/sid/gkv/kvk-versichertennummer";
    pub const ANR: &str = "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR";
    pub const ZANR: &str = "http://fhir.de/sid/kzbv/zahnarztnummer";
    pub const BSNR: &str = "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_BSNR";
    pub const KZVA: &str = "http://fhir.de/sid/kzbv/kzvabrechnungsnummer";
    pub const STANDORT: &str = "http://fhir.de/sid/dkgev/standortnummer";
    pub const IKNR: &str = "http://fhir.de/sid/arge-ik/iknr";
    pub const ASV_TEAM: &str = "http://fhir.de/NamingSystem/asv/teamnummer";
    pub const ASV_FACHGRUPPE: &str =
        "https://fhir.kbv.de/NamingSystem/KBV_NS_FOR_Fachgruppennummer_ASV";
    pub const QUALIFICATION: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_FOR_Qualification_Type";
    pub const BERUFSBEZEICHNUNG: &str =
        "https://fhir.kbv.de/CodeSystem/KBV_CS_FOR_Berufsbezeichnung";
    pub const OWN_NAME: &str = "http://hl7.org/fhir/StructureDefinition/humanname-own-name";
    pub const TELEMATIK_ID: &str = "https://gematik.de/fhir/sid/telematik-id";
    pub const OWN_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix";
    pub const NAMENSZUSATZ: &str = "http://fhir.de/StructureDefinition/humanname-namenszusatz";
    pub const POST_BOX: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-postBox";
    pub const EN_QUALIFIER: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier";
    pub const HOUSE_NUMBER: &str =
        "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber";
    pub const STREET_NAME: &str =
        "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName";
    pub const VERSICHERUNGSART: &str = "http://fhir.de/CodeSystem/versicherungsart-de-basis";
    pub const PAYOR_TYPE_KBV: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_FOR_Payor_Type_KBV";
    pub const PERSONENGRUPPE_EX: &str =
        "http://fhir.de/StructureDefinition/gkv/besondere-personengruppe";
    pub const PERSONENGRUPPE: &str =
        "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_KBV_PERSONENGRUPPE";
    pub const DMP_EX: &str = "http://fhir.de/StructureDefinition/gkv/dmp-kennzeichen";
    pub const DMP: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_KBV_DMP";
    pub const WOP_EX: &str = "http://fhir.de/StructureDefinition/gkv/wop";
    pub const WOP: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ITA_WOP";
    pub const VERSICHERTENART_EX: &str = "http://fhir.de/StructureDefinition/gkv/versichertenart";
    pub const VERSICHERTENSTATUS: &str =
        "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_KBV_VERSICHERTENSTATUS";
    pub const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
    pub const VER_STATUS: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
    pub const DOKUMENTTYPE: &str =
        "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_KBV_FHIR_DOKUMENTTYPE";
    pub const ASSERTED_DATE: &str =
        "http://hl7.org/fhir/StructureDefinition/condition-assertedDate";
    pub const DUE_TO: &str = "http://hl7.org/fhir/StructureDefinition/condition-dueTo";
    pub const URSACHE: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_FOR_Ursache_Type";
    pub const SEVEN_WEEKS: &str = "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_7_weeks";
    pub const ICD10: &str = "http://fhir.de/CodeSystem/bfarm/icd-10-gm";
    pub const SICHERHEIT_EX: &str =
        "http://fhir.de/StructureDefinition/icd-10-gm-diagnosesicherheit";
    pub const SICHERHEIT: &str =
        "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT";
    pub const SEITE_EX: &str = "http://fhir.de/StructureDefinition/seitenlokalisation";
    pub const SEITE: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ICD_SEITENLOKALISATION";
    pub const SCHRITTE: &str = "https://fhir.kbv.de/CodeSystem/KBV_CS_EAU_WeitereSchritte_Type";
}

/// `EEAU0_<uuid>.xml`: the unsigned instance's file name (TA chapter 5; `E` = production data).
pub fn file_name(cert: &Certificate) -> String {
    format!("EEAU0_{}.xml", cert.document_id)
}

/// `EEAU0_Storno_<uuid>.xml` for a Storno bundle with the given document id.
pub fn storno_file_name(storno_id: Uuid) -> String {
    format!("EEAU0_Storno_{storno_id}.xml")
}

/// Deterministic resource ids: UUID v5 of the document id and the role of the resource.
fn rid(doc: Uuid, role: &str) -> String {
    Uuid::new_v5(&doc, role.as_bytes()).to_string()
}

fn urn(id: &str) -> String {
    format!("urn:uuid:{id}")
}

fn profile(w: &mut Writer, name: &str) {
    w.open("meta")
        .leaf("profile", &format!("{SD}{name}|{PROFILE_VERSION}"))
        .close("meta");
}

fn begin_entry(w: &mut Writer, resource: &str, id: &str, profile_name: &str) {
    w.open("entry")
        .leaf("fullUrl", &urn(id))
        .open("resource")
        .open_with(resource, &[("xmlns", "http://hl7.org/fhir")])
        .leaf("id", id);
    profile(w, profile_name);
}

fn end_entry(w: &mut Writer, resource: &str) {
    w.close(resource).close("resource").close("entry");
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Ids of all resources of one bundle.
struct Ids {
    composition: String,
    patient: String,
    author: String,
    responsible: String,
    organization: String,
    condition_au: String,
    coverage: String,
    icd: Vec<String>,
    text: String,
    steps: Vec<String>,
    role: String,
}

impl Ids {
    fn new(c: &Certificate) -> Self {
        let d = c.document_id;
        Self {
            composition: rid(d, "Composition"),
            patient: rid(d, "Patient"),
            author: rid(d, "Practitioner"),
            responsible: rid(d, "Practitioner/responsible"),
            organization: rid(d, "Organization"),
            condition_au: rid(d, "Condition_AU"),
            coverage: rid(d, "Coverage"),
            icd: (0..c.diagnoses.len())
                .map(|i| rid(d, &format!("Condition_ICD/{i}")))
                .collect(),
            text: rid(d, "Condition_Text"),
            steps: (0..4)
                .map(|i| rid(d, &format!("ServiceRequest/{i}")))
                .collect(),
            role: rid(d, "PractitionerRole"),
        }
    }
}

fn steps(c: &Certificate) -> Vec<(&'static str, Option<&str>)> {
    let m = &c.measures;
    let mut out = Vec::new();
    if m.d_arzt {
        out.push(("d_arzt", None));
    }
    if m.rehabilitation {
        out.push(("reha", None));
    }
    if m.reintegration {
        out.push(("wiedereingliederung", None));
    }
    if let Some(text) = &m.other {
        out.push(("sonstige", Some(text.as_str())));
    }
    out
}

fn check(c: &Certificate) -> Result<(), FhirError> {
    let invalid = |field, message| Err(FhirError::Invalid { field, message });
    if !crate::domain::diagnosis_count_allowed(c.diagnoses.len()) {
        return invalid("diagnoses", crate::domain::DIAGNOSES_COUNT);
    }
    if c.kind.is_initial() != c.period.since.is_some() {
        return invalid(
            "period.since",
            "AU seit genau bei Erstbescheinigungen angeben",
        );
    }
    if c.patient.kvnr.is_none() && c.patient.kvk_number.is_none() {
        return invalid(
            "patient.kvnr",
            "Versicherten-ID oder KVK-Versichertennummer fehlt",
        );
    }
    if c.practice.phone.trim().is_empty() {
        return invalid("practice.phone", "Telefonnummer der Praxis fehlt");
    }
    if !(1000..=9999).contains(&c.icd_version) {
        return invalid("icd_version", "ICD-10-GM-Version ist eine Jahreszahl");
    }
    Ok(())
}

/// Writes the eAU bundle with the current time as `Bundle.timestamp`.
pub fn write(cert: &Certificate) -> Result<Vec<u8>, FhirError> {
    write_at(cert, Utc::now())
}

/// Writes the eAU bundle (UTF-8 without BOM) with the given `Bundle.timestamp`.
pub fn write_at(c: &Certificate, at: DateTime<Utc>) -> Result<Vec<u8>, FhirError> {
    check(c)?;
    let ids = Ids::new(c);
    let steps = steps(c);
    let mut w = Writer::new();
    let ts = timestamp(at);
    w.open_with("Bundle", &[("xmlns", "http://hl7.org/fhir")])
        .leaf("id", &rid(c.document_id, "Bundle"))
        .open("meta")
        .leaf("lastUpdated", &ts)
        .leaf(
            "profile",
            &format!("{SD}KBV_PR_EAU_Bundle|{PROFILE_VERSION}"),
        )
        .close("meta")
        .open("identifier")
        .leaf("system", sys::URN)
        .leaf("value", &urn(&c.document_id.to_string()))
        .close("identifier")
        .leaf("type", "document")
        .leaf("timestamp", &ts);

    composition(&mut w, c, &ids, steps.len());
    patient(&mut w, c, &ids);
    practitioner(&mut w, &c.doctor, &ids.author);
    if let Some(r) = &c.responsible {
        practitioner(&mut w, r, &ids.responsible);
    }
    organization(&mut w, c, &ids, true);
    condition_au(&mut w, c, &ids);
    coverage(&mut w, c, &ids);
    for (d, id) in c.diagnoses.iter().zip(&ids.icd) {
        condition_icd(&mut w, c, d, id, &ids);
    }
    if let Some(text) = &c.diagnosis_text {
        begin_entry(&mut w, "Condition", &ids.text, "KBV_PR_EAU_Condition_Text");
        w.open("verificationStatus")
            .coding(sys::VER_STATUS, "confirmed")
            .close("verificationStatus")
            .open("code")
            .leaf("text", text)
            .close("code")
            .reference("subject", &urn(&ids.patient))
            .reference("asserter", &urn(&ids.author));
        end_entry(&mut w, "Condition");
    }
    for ((code, text), id) in steps.iter().zip(&ids.steps) {
        begin_entry(
            &mut w,
            "ServiceRequest",
            id,
            "KBV_PR_EAU_ServiceRequest_steps",
        );
        w.leaf("status", "active")
            .leaf("intent", "proposal")
            .open("code")
            .coding(sys::SCHRITTE, code);
        if let Some(t) = text {
            w.leaf("text", t);
        }
        w.close("code")
            .reference("subject", &urn(&ids.patient))
            .reference("requester", &urn(&ids.author))
            .reference("reasonReference", &urn(&ids.condition_au));
        end_entry(&mut w, "ServiceRequest");
    }
    if let Some(team) = &c.asv_team {
        begin_entry(
            &mut w,
            "PractitionerRole",
            &ids.role,
            "KBV_PR_FOR_PractitionerRole",
        );
        w.reference("practitioner", &urn(&ids.author))
            .open("organization")
            .open("identifier")
            .leaf("system", sys::ASV_TEAM)
            .leaf("value", team)
            .close("identifier")
            .close("organization");
        end_entry(&mut w, "PractitionerRole");
    }
    w.close("Bundle");
    Ok(w.finish())
}

fn section(w: &mut Writer, code: &str, reference: &str) {
    w.open("section")
        .open("code")
        .coding(sys::SECTION, code)
        .close("code")
        .reference("entry", reference)
        .close("section");
}

fn composition(w: &mut Writer, c: &Certificate, ids: &Ids, n_steps: usize) {
    begin_entry(w, "Composition", &ids.composition, "KBV_PR_EAU_Composition");
    w.ext_coding(sys::LEGAL_BASIS_EX, sys::STATUSKENNZEICHEN, &c.legal_basis)
        .leaf("status", "final")
        .open("type")
        .coding(sys::AU_TYPE, c.kind.code())
        .coding(sys::FORMULAR_ART, "e010")
        .close("type")
        .reference("subject", &urn(&ids.patient))
        .leaf("date", &c.issued_on.to_string())
        .open("author")
        .leaf("reference", &urn(&ids.author))
        .leaf("type", "Practitioner")
        .close("author")
        .open("author")
        .leaf("type", "Device")
        .open("identifier")
        .leaf("system", sys::PRUEFNUMMER)
        .leaf("value", &c.pruefnummer)
        .close("identifier")
        .close("author")
        .leaf("title", "Arbeitsunfähigkeit");
    if c.responsible.is_some() {
        w.open("attester")
            .leaf("mode", "legal")
            .reference("party", &urn(&ids.responsible))
            .close("attester");
    }
    w.reference("custodian", &urn(&ids.organization));
    for id in &ids.icd {
        section(w, "ICD", &urn(id));
    }
    if c.diagnosis_text.is_some() {
        section(w, "ICD_Text", &urn(&ids.text));
    }
    section(w, "AU_Condition", &urn(&ids.condition_au));
    section(w, "Coverage", &urn(&ids.coverage));
    for id in ids.steps.iter().take(n_steps) {
        section(w, "AU_weiter", &urn(id));
    }
    if c.asv_team.is_some() {
        section(w, "FOR_PractitionerRole", &urn(&ids.role));
    }
    end_entry(w, "Composition");
}

fn identifier(w: &mut Writer, type_system: &str, type_code: &str, system: &str, value: &str) {
    w.open("identifier")
        .open("type")
        .coding(type_system, type_code)
        .close("type")
        .leaf("system", system)
        .leaf("value", value)
        .close("identifier");
}

/// `line` with street name and house number extensions (house number may be empty).
fn address(
    w: &mut Writer,
    street: &str,
    house: &str,
    postal_code: &str,
    city: &str,
    country: Option<&str>,
    line2: Option<&str>,
) {
    let line = if house.is_empty() {
        street.to_owned()
    } else {
        format!("{street} {house}")
    };
    w.open("address")
        .leaf("type", "both")
        .open_with("line", &[("value", &line)]);
    if !house.is_empty() {
        w.ext_string(sys::HOUSE_NUMBER, house);
    }
    w.ext_string(sys::STREET_NAME, street).close("line");
    if let Some(line2) = line2 {
        w.leaf("line", line2);
    }
    w.leaf("city", city).leaf("postalCode", postal_code);
    if let Some(country) = country {
        w.leaf("country", country);
    }
    w.close("address");
}

fn family(w: &mut Writer, family: &str) {
    w.open_with("family", &[("value", family)])
        .ext_string(sys::OWN_NAME, family)
        .close("family");
}

/// `HumanName.prefix` qualified as an academic title (`AC`).
fn academic_title(w: &mut Writer, title: &str) {
    w.open_with("prefix", &[("value", title)])
        .open_with("extension", &[("url", sys::EN_QUALIFIER)])
        .leaf("valueCode", "AC")
        .close("extension")
        .close("prefix");
}

fn patient(w: &mut Writer, c: &Certificate, ids: &Ids) {
    let p = &c.patient;
    begin_entry(w, "Patient", &ids.patient, "KBV_PR_FOR_Patient");
    let system = if c.coverage.payer_type == PayerType::Pkv {
        sys::KVID_PKV
    } else {
        sys::KVID_GKV
    };
    match (&p.kvnr, &p.kvk_number) {
        (Some(kvnr), _) => identifier(w, sys::ID_TYPE_DE, "KVZ10", system, kvnr.as_str()),
        (None, Some(kvk)) => identifier(w, sys::KBV_ID_TYPE, "kvk", sys::KVK, kvk),
        (None, None) => {}
    }
    w.open("name")
        .leaf("use", "official")
        .open_with("family", &[("value", &p.family_name())]);
    if let Some(addition) = &p.name_addition {
        w.ext_string(sys::NAMENSZUSATZ, addition);
    }
    w.ext_string(sys::OWN_NAME, &p.last_name);
    if let Some(prefix) = &p.name_prefix {
        w.ext_string(sys::OWN_PREFIX, prefix);
    }
    w.close("family").leaf("given", &p.first_name);
    if let Some(title) = &p.title {
        academic_title(w, title);
    }
    w.close("name").leaf("birthDate", &p.birth_date.to_string());
    match &p.post_box {
        Some(post_box) => {
            w.open("address")
                .leaf("type", "postal")
                .open_with("line", &[("value", post_box)])
                .ext_string(sys::POST_BOX, post_box)
                .close("line")
                .leaf("city", &p.city)
                .leaf("postalCode", &p.postal_code);
            if let Some(country) = &p.country {
                w.leaf("country", country);
            }
            w.close("address");
        }
        None => address(
            w,
            &p.street,
            &p.house_number,
            &p.postal_code,
            &p.city,
            p.country.as_deref(),
            None,
        ),
    }
    end_entry(w, "Patient");
}

fn practitioner(w: &mut Writer, d: &Doctor, id: &str) {
    begin_entry(w, "Practitioner", id, "KBV_PR_FOR_Practitioner");
    match (d.id_kind, d.qualification) {
        (DoctorIdKind::Lanr, Qualification::Dentist) => {
            identifier(w, sys::ID_TYPE_DE, "ZANR", sys::ZANR, d.lanr.as_str());
        }
        (DoctorIdKind::Lanr, _) => identifier(w, sys::V2_0203, "LANR", sys::ANR, d.lanr.as_str()),
        (DoctorIdKind::AsvFachgruppe | DoctorIdKind::None, _) => {}
    }
    if let Some(telematik_id) = &d.telematik_id {
        identifier(w, sys::V2_0203, "PRN", sys::TELEMATIK_ID, telematik_id);
    }
    let n = d.person_name();
    w.open("name").leaf("use", "official");
    family(w, &n.family);
    if !n.given.is_empty() {
        w.leaf("given", &n.given);
    }
    if let Some(prefix) = &n.prefix {
        academic_title(w, prefix);
    }
    w.close("name")
        .open("qualification")
        .open("code")
        .coding(sys::QUALIFICATION, d.qualification.code())
        .close("code")
        .close("qualification")
        .open("qualification")
        .open("code")
        .coding(sys::BERUFSBEZEICHNUNG, "Berufsbezeichnung")
        .leaf("text", &d.specialty)
        .close("code")
        .close("qualification");
    if d.id_kind == DoctorIdKind::AsvFachgruppe {
        w.open("qualification")
            .open("code")
            .coding(sys::ASV_FACHGRUPPE, d.lanr.as_str())
            .close("code")
            .close("qualification");
    }
    end_entry(w, "Practitioner");
}

/// Splits "Hauptstraße 1a" into ("Hauptstraße", "1a") when the last word starts with a digit.
pub(crate) fn split_street(line: &str) -> (&str, &str) {
    match line.trim().rsplit_once(' ') {
        Some((street, house)) if house.starts_with(|ch: char| ch.is_ascii_digit()) => {
            (street.trim_end(), house)
        }
        _ => (line.trim(), ""),
    }
}

/// `country` is left out in Storno bundles, as in the KBV Storno example.
fn organization(w: &mut Writer, c: &Certificate, ids: &Ids, country: bool) {
    let p = &c.practice;
    begin_entry(
        w,
        "Organization",
        &ids.organization,
        "KBV_PR_FOR_Organization",
    );
    match p.id_kind {
        PracticeIdKind::Bsnr => identifier(w, sys::V2_0203, "BSNR", sys::BSNR, p.bsnr.as_str()),
        PracticeIdKind::Kzva => identifier(w, sys::ID_TYPE_DE, "KZVA", sys::KZVA, p.bsnr.as_str()),
        PracticeIdKind::Standortnummer => {
            identifier(w, sys::KBV_ID_TYPE, "KSN", sys::STANDORT, p.bsnr.as_str());
        }
    }
    w.leaf("name", &p.name);
    let more = &p.more;
    for (system, value) in [
        ("phone", Some(p.phone.as_str())),
        ("fax", more.fax.as_deref()),
        ("email", more.email.as_deref()),
    ] {
        if let Some(value) = value {
            w.open("telecom")
                .leaf("system", system)
                .leaf("value", value)
                .close("telecom");
        }
    }
    let (street, house) = split_street(&p.street);
    address(
        w,
        street,
        house,
        &p.postal_code,
        &p.city,
        country.then_some("D"),
        more.address_line2.as_deref(),
    );
    end_entry(w, "Organization");
}

fn condition_au(w: &mut Writer, c: &Certificate, ids: &Ids) {
    begin_entry(w, "Condition", &ids.condition_au, "KBV_PR_EAU_Condition_AU");
    w.open_with("extension", &[("url", sys::ASSERTED_DATE)])
        .leaf("valueDateTime", &c.period.determined_on.to_string())
        .close("extension");
    if c.sick_pay_case {
        w.open_with("extension", &[("url", sys::SEVEN_WEEKS)])
            .leaf("valueBoolean", "true")
            .close("extension");
    }
    for cause in c.causes() {
        w.open_with("extension", &[("url", sys::DUE_TO)])
            .open("valueCodeableConcept")
            .coding(sys::URSACHE, cause.code())
            .close("valueCodeableConcept")
            .close("extension");
    }
    w.open("clinicalStatus")
        .coding(sys::CLINICAL, "active")
        .close("clinicalStatus")
        .open("verificationStatus")
        .coding(sys::VER_STATUS, "confirmed")
        .close("verificationStatus")
        .open("code")
        .coding(sys::DOKUMENTTYPE, "eAU")
        .close("code")
        .reference("subject", &urn(&ids.patient))
        .open("onsetPeriod");
    if let Some(since) = c.period.since {
        w.leaf("start", &since.to_string());
    }
    w.leaf("end", &c.period.until.to_string())
        .close("onsetPeriod")
        .reference("asserter", &urn(&ids.author));
    end_entry(w, "Condition");
}

fn coverage(w: &mut Writer, c: &Certificate, ids: &Ids) {
    let cov = &c.coverage;
    begin_entry(w, "Coverage", &ids.coverage, "KBV_PR_FOR_Coverage");
    w.ext_coding(
        sys::PERSONENGRUPPE_EX,
        sys::PERSONENGRUPPE,
        &cov.special_group,
    )
    .ext_coding(sys::DMP_EX, sys::DMP, &cov.dmp);
    if let Some(wop) = &cov.wop {
        w.ext_coding(sys::WOP_EX, sys::WOP, wop);
    }
    w.ext_coding(
        sys::VERSICHERTENART_EX,
        sys::VERSICHERTENSTATUS,
        cov.insured_type.code(),
    )
    .leaf("status", "active");
    let type_system = if cov.payer_type == PayerType::Skt {
        sys::PAYOR_TYPE_KBV
    } else {
        sys::VERSICHERUNGSART
    };
    w.open("type")
        .coding(type_system, cov.payer_type.code())
        .close("type")
        .reference("beneficiary", &urn(&ids.patient));
    if let Some(end) = cov.valid_until {
        w.open("period")
            .leaf("end", &end.to_string())
            .close("period");
    }
    w.open("payor")
        .open("identifier")
        .leaf("system", sys::IKNR)
        .leaf("value", cov.ik.as_str())
        .close("identifier")
        .leaf("display", &cov.name)
        .close("payor");
    end_entry(w, "Coverage");
}

fn condition_icd(w: &mut Writer, c: &Certificate, d: &Diagnosis, id: &str, ids: &Ids) {
    begin_entry(w, "Condition", id, "KBV_PR_EAU_Condition_ICD");
    // Diagnosesicherheit and the two status elements agree as in every KBV example: "Zustand
    // nach" is a resolved, confirmed condition; "ausgeschlossen" a refuted one.
    let (clinical, verification) = match d.certainty {
        Certainty::G => ("active", "confirmed"),
        Certainty::V => ("active", "provisional"),
        Certainty::Z => ("resolved", "confirmed"),
        Certainty::A => ("active", "refuted"),
    };
    w.open("clinicalStatus")
        .coding(sys::CLINICAL, clinical)
        .close("clinicalStatus")
        .open("verificationStatus")
        .coding(sys::VER_STATUS, verification)
        .close("verificationStatus")
        .open("code")
        .open("coding")
        .ext_coding(sys::SICHERHEIT_EX, sys::SICHERHEIT, d.certainty.code());
    if let Some(side) = d.side {
        w.ext_coding(sys::SEITE_EX, sys::SEITE, side.code());
    }
    w.leaf("system", sys::ICD10)
        .leaf("version", &c.icd_version.to_string())
        .leaf("code", d.code.as_str())
        .close("coding")
        .close("code")
        .reference("subject", &urn(&ids.patient))
        .reference("asserter", &urn(&ids.author));
    end_entry(w, "Condition");
}

/// Writes a `KBV_PR_EAU_Storno_Bundle` cancelling `cert` (current time as timestamp).
/// `storno_id` is the Storno's own document id; `issued_on` its date.
pub fn write_storno(
    cert: &Certificate,
    storno_id: Uuid,
    issued_on: chrono::NaiveDate,
) -> Result<Vec<u8>, FhirError> {
    write_storno_at(cert, storno_id, issued_on, Utc::now())
}

/// [`write_storno`] with a fixed timestamp.
pub fn write_storno_at(
    c: &Certificate,
    storno_id: Uuid,
    issued_on: chrono::NaiveDate,
    at: DateTime<Utc>,
) -> Result<Vec<u8>, FhirError> {
    let composition = rid(storno_id, "Composition");
    let author = rid(storno_id, "Practitioner");
    let org = rid(storno_id, "Organization");
    let list = rid(storno_id, "List");
    let ts = timestamp(at);
    let mut w = Writer::new();
    w.open_with("Bundle", &[("xmlns", "http://hl7.org/fhir")])
        .leaf("id", &rid(storno_id, "Bundle"))
        .open("meta")
        .leaf("lastUpdated", &ts)
        .leaf(
            "profile",
            &format!("{SD}KBV_PR_EAU_Storno_Bundle|{PROFILE_VERSION}"),
        )
        .close("meta")
        .open("identifier")
        .leaf("system", sys::URN)
        .leaf("value", &urn(&storno_id.to_string()))
        .close("identifier")
        .leaf("type", "document")
        .leaf("timestamp", &ts);
    begin_entry(
        &mut w,
        "Composition",
        &composition,
        "KBV_PR_EAU_Storno_Composition",
    );
    w.leaf("status", "final")
        .open("type")
        .coding(sys::FORMULAR_ART, "e013")
        .close("type")
        .leaf("date", &issued_on.to_string())
        .open("author")
        .leaf("reference", &urn(&author))
        .leaf("type", "Practitioner")
        .close("author")
        .leaf("title", "Storno eAU")
        .reference("custodian", &urn(&org))
        .open("section")
        .reference("entry", &urn(&list))
        .close("section");
    end_entry(&mut w, "Composition");
    practitioner(&mut w, &c.doctor, &author);
    let ids = Ids {
        organization: org,
        ..Ids::new(c)
    };
    organization(&mut w, c, &ids, false);
    begin_entry(&mut w, "List", &list, "KBV_PR_EAU_Storno");
    w.leaf("status", "current")
        .leaf("mode", "changes")
        .open("entry")
        .leaf("deleted", "true")
        .open("item")
        .open("identifier")
        .leaf("system", sys::URN)
        .leaf("value", &urn(&c.document_id.to_string()))
        .close("identifier")
        .close("item")
        .close("entry");
    end_entry(&mut w, "List");
    w.close("Bundle");
    Ok(w.finish())
}
