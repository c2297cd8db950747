//! Incoming `KBV_PR_EAU_Bundle` → validated [`Certificate`], incoming
//! `KBV_PR_EAU_Storno_Bundle` → [`ImportedStorno`], or the list of issues.

use std::collections::HashMap;

use chrono::NaiveDate;
use uuid::Uuid;

use super::write::sys;
use super::xml::{self, Node};
use super::{ImportedEau, ImportedStorno, Incoming, Issue, IssueCode, ACCEPTED_VERSIONS, SD};
use crate::domain::{
    is_dmp_code, Bsnr, Cause, Certainty, Certificate, CertificateKind, Coverage, Diagnosis, Doctor,
    DoctorIdKind, DomainError, Icd10Code, IncapacityPeriod, InsuredType, InsurerIk, Kvnr, Lanr,
    Measures, Patient, PayerType, PersonName, Practice, PracticeIdKind, Qualification, Side,
    MAX_BACKDATING_DAYS, MAX_DAYS_AHEAD, SPECIAL_GROUPS,
};

/// Collected findings while reading.
struct Cx {
    issues: Vec<Issue>,
}

impl Cx {
    fn err(&mut self, code: IssueCode, loc: impl Into<String>, msg: impl Into<String>) {
        self.issues.push(Issue::error(code, loc, msg));
    }

    fn warn(&mut self, code: IssueCode, loc: impl Into<String>, msg: impl Into<String>) {
        self.issues.push(Issue::warning(code, loc, msg));
    }

    fn domain<T>(&mut self, loc: &str, r: Result<T, DomainError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let code = match e {
                    DomainError::Required(_) => IssueCode::Required,
                    _ => IssueCode::Value,
                };
                self.err(code, loc, e.to_string());
                None
            }
        }
    }

    /// The `value` at `path` below `node`, or a "fehlt" error.
    fn req<'a>(
        &mut self,
        node: &'a Node,
        base: &str,
        path: &[&str],
        label: &str,
    ) -> Option<&'a str> {
        let v = node.val(path).filter(|v| !v.trim().is_empty());
        if v.is_none() {
            self.err(
                IssueCode::Required,
                format!("{base}.{}", path.join(".")),
                format!("{label}: Angabe fehlt"),
            );
        }
        v
    }

    /// Length rule of TA Table 23 (characters, not bytes).
    fn len(&mut self, v: Option<&str>, loc: &str, label: &str, max: usize) -> Option<String> {
        let v = v?;
        if !crate::domain::is_clean(v) {
            self.err(
                IssueCode::Value,
                loc,
                format!(
                    "{label}: enthält ein unzulässiges Zeichen (Steuerzeichen oder unsichtbares Formatzeichen)"
                ),
            );
            return None;
        }
        if v.chars().count() > max {
            self.err(
                IssueCode::Value,
                loc,
                format!("{label}: höchstens {max} Zeichen"),
            );
            return None;
        }
        Some(v.to_owned())
    }

    fn text(
        &mut self,
        node: &Node,
        base: &str,
        path: &[&str],
        label: &str,
        max: usize,
    ) -> Option<String> {
        let v = self.req(node, base, path, label);
        self.len(v, &format!("{base}.{}", path.join(".")), label, max)
    }

    fn date(&mut self, v: Option<&str>, loc: &str, label: &str) -> Option<NaiveDate> {
        let v = v?;
        // Years before 1890 or after 2999 are typos (or year 0000), not dates of an eAU.
        let d = (v.len() == 10)
            .then(|| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
            .flatten()
            .filter(|d| (1890..=2999).contains(&chrono::Datelike::year(d)));
        if d.is_none() {
            self.err(
                IssueCode::Value,
                loc,
                format!("{label}: kein gültiges Datum (JJJJ-MM-TT)"),
            );
        }
        d
    }
}

/// One resource of the bundle with its FHIRPath-like location.
#[derive(Clone, Copy)]
struct Res<'a> {
    node: &'a Node,
    index: usize,
}

impl Res<'_> {
    fn loc(&self) -> String {
        format!("Bundle.entry[{}].resource", self.index)
    }

    fn profile(&self) -> Option<&str> {
        self.node
            .val(&["meta", "profile"])
            .and_then(|p| p.strip_prefix(SD))
            .map(|p| p.split('|').next().unwrap_or(p))
    }
}

/// Id part of a reference: `Patient/abc`, `urn:uuid:abc` or a full URL.
fn ref_id(reference: &str) -> &str {
    reference.rsplit(['/', ':']).next().unwrap_or(reference)
}

struct Bundle<'a> {
    by_id: HashMap<&'a str, Res<'a>>,
    all: Vec<Res<'a>>,
}

impl<'a> Bundle<'a> {
    fn resolve(&self, reference: Option<&str>) -> Option<Res<'a>> {
        reference.and_then(|r| self.by_id.get(ref_id(r)).copied())
    }

    fn by_profile(&self, name: &str) -> Vec<Res<'a>> {
        self.all
            .iter()
            .filter(|r| r.profile() == Some(name))
            .copied()
            .collect()
    }
}

/// Encoding and XML of an incoming document: its root element, or `None` when there is nothing
/// to read (the issues say why). A byte-order mark is an error, but the rest is still read.
fn parse_root(bytes: &[u8], cx: &mut Cx) -> Option<Node> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        cx.err(
            IssueCode::Structure,
            "Bundle",
            "Zeichensatz: UTF-8 ohne BOM erwartet, die Datei beginnt mit einem Byte-Order-Mark",
        );
    }
    if std::str::from_utf8(bytes).is_err() {
        cx.err(
            IssueCode::Structure,
            "Bundle",
            "Zeichensatz: die Datei ist kein gültiges UTF-8",
        );
        return None;
    }
    match xml::parse(bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            cx.err(IssueCode::Structure, "Bundle", e.to_string());
            None
        }
    }
}

/// Reads and validates an eAU bundle (DOMAIN.md §3, TA Table 23, AU rules). A Storno bundle is
/// refused here: see [`read_document`].
pub fn read(bytes: &[u8]) -> Result<ImportedEau, Vec<Issue>> {
    let mut cx = Cx { issues: Vec::new() };
    let Some(root) = parse_root(bytes, &mut cx) else {
        return Err(cx.issues);
    };
    eau(&root, cx)
}

/// Reads what practice software sends: an eAU bundle (as [`read`]) or a Storno bundle (as
/// [`read_storno`]), told apart by the profile in `Bundle.meta.profile`.
pub fn read_document(bytes: &[u8]) -> Result<Incoming, Vec<Issue>> {
    let mut cx = Cx { issues: Vec::new() };
    let Some(root) = parse_root(bytes, &mut cx) else {
        return Err(cx.issues);
    };
    if is_storno(&root) {
        storno(&root, cx).map(Incoming::Storno)
    } else {
        eau(&root, cx).map(|e| Incoming::Eau(Box::new(e)))
    }
}

/// Reads and validates a Storno bundle (`KBV_PR_EAU_Storno_Bundle`, TA P310-10 to P310-12).
pub fn read_storno(bytes: &[u8]) -> Result<ImportedStorno, Vec<Issue>> {
    let mut cx = Cx { issues: Vec::new() };
    let Some(root) = parse_root(bytes, &mut cx) else {
        return Err(cx.issues);
    };
    storno(&root, cx)
}

/// An eAU bundle from its root element.
fn eau(root: &Node, mut cx: Cx) -> Result<ImportedEau, Vec<Issue>> {
    let Some(version) = check_profile(root, &mut cx) else {
        return Err(cx.issues);
    };
    bundle_timestamp(root, &mut cx);
    let certificate = certificate(root, &mut cx);
    let (errors, warnings): (Vec<Issue>, Vec<Issue>) =
        cx.issues.into_iter().partition(Issue::is_error);
    match certificate {
        Some(certificate) if errors.is_empty() => Ok(ImportedEau {
            print_only: certificate.is_print_only(),
            certificate,
            profile_version: version,
            warnings,
        }),
        _ => {
            let mut all = errors;
            if all.is_empty() {
                all.push(Issue::error(
                    IssueCode::Structure,
                    "Bundle",
                    "Bundle: unvollständig, keine Bescheinigung lesbar",
                ));
            }
            all.extend(warnings);
            Err(all)
        }
    }
}

fn check_profile(root: &Node, cx: &mut Cx) -> Option<String> {
    if root.name != "Bundle" {
        cx.err(
            IssueCode::Structure,
            root.name.clone(),
            format!("Wurzelelement: Bundle erwartet, {} gefunden", root.name),
        );
        return None;
    }
    let profile = cx.req(
        root,
        "Bundle",
        &["meta", "profile"],
        "Profil (meta.profile)",
    )?;
    let (base, version) = profile.split_once('|').unwrap_or((profile, ""));
    let loc = "Bundle.meta.profile";
    if base == format!("{SD}KBV_PR_EAU_Storno_Bundle") {
        cx.err(
            IssueCode::NotSupported,
            loc,
            "Profil: dies ist ein Storno-Bundle (KBV_PR_EAU_Storno_Bundle), keine eAU",
        );
        return None;
    }
    if base != format!("{SD}KBV_PR_EAU_Bundle") {
        cx.err(
            IssueCode::NotSupported,
            loc,
            format!("Profil: KBV_PR_EAU_Bundle erwartet, {base} gefunden"),
        );
        return None;
    }
    if ACCEPTED_VERSIONS.contains(&version) {
        return Some(version.to_owned());
    }
    let message = if version.starts_with("1.1") || version.starts_with("1.0") {
        format!(
            "Profilversion {version}: wird nicht mehr angenommen – die Krankenkassen verarbeiten \
             seit 01.04.2026 nur noch eAU nach KBV-Profil 1.2.1 (TA P5-08); bitte mit aktueller \
             Praxissoftware neu erzeugen"
        )
    } else {
        format!("Profilversion „{version}“: unbekannt, erwartet 1.2 (Regeln 1.2.1)")
    };
    cx.issues.push(Issue {
        severity: super::Severity::Fatal,
        code: IssueCode::NotSupported,
        location: loc.into(),
        message,
    });
    None
}

fn certificate(root: &Node, cx: &mut Cx) -> Option<Certificate> {
    let document_id = document_id(root, cx);
    if root.val(&["type"]) != Some("document") {
        cx.err(
            IssueCode::CodeInvalid,
            "Bundle.type",
            "Bundle-Typ: „document“ erwartet",
        );
    }
    let bundle = entries(root, cx);
    let Some(comp) = bundle
        .all
        .iter()
        .copied()
        .find(|r| r.node.name == "Composition")
    else {
        cx.err(IssueCode::Required, "Bundle.entry", "Composition: fehlt");
        return None;
    };
    if bundle.all.first().map(|r| r.node.name.as_str()) != Some("Composition") {
        cx.err(
            IssueCode::Structure,
            comp.loc(),
            "Composition: muss der erste Eintrag des Bundles sein",
        );
    }
    let c = composition(comp, cx);
    let sections = Sections::new(comp, &bundle);

    let patient_res = expect(
        cx, &bundle, comp, c.subject, "Patient", "subject", "Patient",
    );
    let author_res = expect(
        cx,
        &bundle,
        comp,
        c.author,
        "Practitioner",
        "author",
        "Arzt",
    );
    let org_res = expect(
        cx,
        &bundle,
        comp,
        c.custodian,
        "Organization",
        "custodian",
        "Betriebsstätte",
    );
    let responsible = c.attester.and_then(|a| {
        expect(
            cx,
            &bundle,
            comp,
            Some(a),
            "Practitioner",
            "attester[0].party",
            "Verantwortliche Person",
        )
    });

    let coverage_res = sections
        .first("Coverage")
        .or_else(|| bundle.by_profile("KBV_PR_FOR_Coverage").first().copied());
    let au_res = sections.first("AU_Condition").or_else(|| {
        bundle
            .by_profile("KBV_PR_EAU_Condition_AU")
            .first()
            .copied()
    });
    let icd_res = {
        let s = sections.all("ICD");
        if s.is_empty() {
            bundle.by_profile("KBV_PR_EAU_Condition_ICD")
        } else {
            s
        }
    };
    let text_res = sections.first("ICD_Text").or_else(|| {
        bundle
            .by_profile("KBV_PR_EAU_Condition_Text")
            .first()
            .copied()
    });
    let steps_res = {
        let s = sections.all("AU_weiter");
        if s.is_empty() {
            bundle.by_profile("KBV_PR_EAU_ServiceRequest_steps")
        } else {
            s
        }
    };
    let role_res = sections.first("FOR_PractitionerRole").or_else(|| {
        bundle
            .by_profile("KBV_PR_FOR_PractitionerRole")
            .first()
            .copied()
    });

    let coverage = match coverage_res {
        Some(r) => coverage(r, cx),
        None => {
            cx.err(
                IssueCode::Required,
                comp.loc() + ".section",
                "Krankenversicherungsverhältnis (Coverage): fehlt",
            );
            None
        }
    };
    let pkv = coverage
        .as_ref()
        .is_some_and(|c| c.payer_type == PayerType::Pkv);
    profile_rules(&bundle, c.author, au_res, pkv, cx);
    let patient = patient_res.and_then(|r| patient(r, c.issued_on, cx));
    let sel = coverage
        .as_ref()
        .is_some_and(|c| c.payer_type == PayerType::Sel);
    let doctor = author_res.and_then(|r| practitioner(r, responsible.is_some(), sel, cx));
    let responsible = match responsible {
        Some(r) => Some(practitioner(r, false, sel, cx)?),
        None => None,
    };
    let practice = org_res.and_then(|r| organization(r, cx));
    let au = match au_res {
        Some(r) => condition_au(r, c.kind, pkv, cx),
        None => {
            cx.err(
                IssueCode::Required,
                comp.loc() + ".section",
                "AU-Angaben (Condition_AU): fehlen",
            );
            None
        }
    };
    let (diagnoses, icd_version) = diagnoses(&icd_res, comp, cx);
    let diagnosis_text = text_res.and_then(|r| {
        let v = cx.req(r.node, &r.loc(), &["code", "text"], "Hinweise zur Diagnose");
        cx.len(v, &(r.loc() + ".code.text"), "Hinweise zur Diagnose", 70)
    });
    let measures = measures(&steps_res, pkv, cx);
    let asv_team = role_res.and_then(|r| {
        let id = r.node.at(&["organization", "identifier"]);
        let loc = r.loc() + ".organization.identifier.value";
        match id {
            Some(i) if i.val(&["system"]) == Some(sys::ASV_TEAM) => {
                let v = i.value_of("value");
                let ok = v.is_some_and(|v| v.len() == 9 && v.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    cx.err(IssueCode::Value, loc, "ASV-Teamnummer: genau neun Ziffern");
                }
                v.filter(|_| ok).map(str::to_owned)
            }
            _ => {
                cx.warn(
                    IssueCode::NotSupported,
                    loc,
                    "PractitionerRole: nur die ASV-Teamnummer wird übernommen",
                );
                None
            }
        }
    });
    if let Some(lb) = &c.legal_basis {
        let asv = lb == "01" || lb == "11";
        if asv && asv_team.is_none() {
            cx.err(
                IssueCode::Required,
                comp.loc() + ".section",
                "ASV-Teamnummer: bei Kennzeichen Rechtsgrundlage 01/11 anzugeben \
                 (-eau-angabeAsvTeamnummerPflicht)",
            );
        }
        if let Some(role) = role_res.filter(|_| !asv) {
            let loc = match sections.index("FOR_PractitionerRole") {
                Some(i) => format!("{}.section[{i}]", comp.loc()),
                None => role.loc(),
            };
            cx.err(
                IssueCode::BusinessRule,
                loc,
                format!(
                    "ASV-Teamnummer (PractitionerRole): nur bei Kennzeichen Rechtsgrundlage 01 \
                     oder 11 zulässig, hier „{lb}“ (-eau-angabeAsvTeamnummerVerbot)"
                ),
            );
        }
    }
    if let (Some(d), Some(r)) = (&doctor, &responsible) {
        if d.qualification == Qualification::Doctor
            && d.id_kind == DoctorIdKind::Lanr
            && d.lanr == r.lanr
        {
            cx.warn(
                IssueCode::BusinessRule,
                comp.loc() + ".attester[0]",
                "Verantwortliche Person: identisch mit dem ausstellenden Arzt",
            );
        }
    }
    let (period, backdated) = au?;
    let causes = c_cause(au_res, cx)?;
    Some(Certificate {
        document_id: document_id?,
        kind: c.kind?,
        patient: patient?,
        coverage: coverage?,
        practice: practice?,
        doctor: doctor?,
        issued_on: c.issued_on?,
        period,
        cause: causes.first().copied(),
        more_causes: causes.get(1..).unwrap_or_default().to_vec(),
        measures: measures?,
        sick_pay_case: au_res.is_some_and(|r| {
            r.node
                .extension(sys::SEVEN_WEEKS)
                .and_then(|e| e.val(&["valueBoolean"]))
                == Some("true")
        }),
        icd_version: icd_version?,
        diagnoses: diagnoses?,
        diagnosis_text,
        backdating_confirmed: backdated,
        legal_basis: c.legal_basis?,
        pruefnummer: c.pruefnummer?,
        asv_team,
        responsible,
    })
}

/// The resources of a bundle's entries, by id and in order; every `fullUrl` checked.
fn entries<'a>(root: &'a Node, cx: &mut Cx) -> Bundle<'a> {
    let mut bundle = Bundle {
        by_id: HashMap::new(),
        all: Vec::new(),
    };
    let mut full_urls: HashMap<&str, usize> = HashMap::new();
    for (index, entry) in root.all("entry") {
        full_url(entry, index, &mut full_urls, cx);
        let Some(node) = entry.child("resource").and_then(|r| r.children.first()) else {
            cx.err(
                IssueCode::Required,
                format!("Bundle.entry[{index}].resource"),
                "Eintrag ohne Ressource",
            );
            continue;
        };
        let res = Res { node, index };
        if let Some(id) = node.val(&["id"]) {
            bundle.by_id.insert(id, res);
        }
        if let Some(full) = entry.val(&["fullUrl"]) {
            bundle.by_id.entry(ref_id(full)).or_insert(res);
        }
        bundle.all.push(res);
    }
    bundle
}

/// `Bundle.entry.fullUrl`: 1..1 in every entry slice of `KBV_PR_EAU_Bundle`, unique (FHIR R4
/// invariant bdl-7; `meta.versionId` is 0..0 in every KBV profile, so no two versions).
fn full_url<'a>(entry: &'a Node, index: usize, seen: &mut HashMap<&'a str, usize>, cx: &mut Cx) {
    let loc = format!("Bundle.entry[{index}].fullUrl");
    match entry.val(&["fullUrl"]).filter(|u| !u.trim().is_empty()) {
        None => cx.err(
            IssueCode::Required,
            loc,
            "Eintrag: fullUrl fehlt (Bundle.entry.fullUrl 1..1)",
        ),
        Some(u) => {
            if let Some(first) = seen.get(u) {
                cx.err(
                    IssueCode::Structure,
                    loc,
                    format!(
                        "Eintrag: fullUrl „{u}“ kommt mehrfach vor (wie Bundle.entry[{first}]); \
                         jede fullUrl darf im Bundle nur einmal vorkommen (bdl-7)"
                    ),
                );
            } else {
                seen.insert(u, index);
            }
        }
    }
}

/// The profile each resource type must carry (`Bundle.entry` is sliced by profile, closed).
const ENTRY_PROFILES: &[(&str, &[&str])] = &[
    ("Composition", &["KBV_PR_EAU_Composition"]),
    ("Patient", &["KBV_PR_FOR_Patient"]),
    ("Coverage", &["KBV_PR_FOR_Coverage"]),
    ("Organization", &["KBV_PR_FOR_Organization"]),
    ("Practitioner", &["KBV_PR_FOR_Practitioner"]),
    ("PractitionerRole", &["KBV_PR_FOR_PractitionerRole"]),
    (
        "Condition",
        &[
            "KBV_PR_EAU_Condition_AU",
            "KBV_PR_EAU_Condition_ICD",
            "KBV_PR_EAU_Condition_Text",
        ],
    ),
    ("ServiceRequest", &["KBV_PR_EAU_ServiceRequest_steps"]),
];

/// The profiles of the entries of a Storno (`KBV_PR_EAU_Storno_Bundle`: four slices, closed).
const STORNO_ENTRY_PROFILES: &[(&str, &[&str])] = &[
    ("Composition", &["KBV_PR_EAU_Storno_Composition"]),
    ("List", &["KBV_PR_EAU_Storno"]),
    ("Organization", &["KBV_PR_FOR_Organization"]),
    ("Practitioner", &["KBV_PR_FOR_Practitioner"]),
];

/// A bundle profile's closed `Bundle.entry` slicing, with the words of its issues.
struct Slicing {
    /// The bundle profile.
    bundle: &'static str,
    /// The document, for "in einer eAU nicht zulässig".
    document: &'static str,
    /// The bundle with its version, for "in einem eAU-Bundle 1.2 nicht zulässig".
    versioned: &'static str,
    /// The profiles each resource type may carry.
    entries: &'static [(&'static str, &'static [&'static str])],
}

const EAU_SLICING: Slicing = Slicing {
    bundle: "KBV_PR_EAU_Bundle",
    document: "einer eAU",
    versioned: "einem eAU-Bundle 1.2",
    entries: ENTRY_PROFILES,
};

const STORNO_SLICING: Slicing = Slicing {
    bundle: "KBV_PR_EAU_Storno_Bundle",
    document: "einem Storno",
    versioned: "einem Storno-Bundle 1.2",
    entries: STORNO_ENTRY_PROFILES,
};

/// Extensions allowed where a profile slices `extension` closed (by url).
const COMPOSITION_EXT: &[&str] = &[sys::LEGAL_BASIS_EX];
const COVERAGE_EXT: &[&str] = &[
    sys::PERSONENGRUPPE_EX,
    sys::DMP_EX,
    sys::VERSICHERTENART_EX,
    sys::WOP_EX,
];
const AU_EXT: &[&str] = &[
    sys::ASSERTED_DATE,
    sys::SEVEN_WEEKS,
    sys::DUE_TO,
    "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_partially_employable",
    "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_unemployability",
];
const STEPS_EXT: &[&str] = &[
    "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_reintegration_date",
    "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_admission_date",
    "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_discharge_date",
];
const ICD_CODING_EXT: &[&str] = &[sys::SICHERHEIT_EX, sys::SEITE_EX];

/// KBV profile rules (package 1.2.1) that no certificate field carries: profile and version
/// of every entry, closed extension slicings, fixed values and references of the
/// ServiceRequests, the asserter of every Condition.
fn profile_rules(
    b: &Bundle<'_>,
    author: Option<&str>,
    au: Option<Res<'_>>,
    pkv: bool,
    cx: &mut Cx,
) {
    for r in &b.all {
        let r = *r;
        let n = r.node;
        let loc = r.loc();
        entry_profile(r, &EAU_SLICING, true, cx);
        match (n.name.as_str(), r.profile()) {
            ("Composition", _) => closed_extensions(
                n,
                &loc,
                COMPOSITION_EXT,
                "geschlossenes Slicing Composition.extension in KBV_PR_EAU_Composition",
                cx,
            ),
            ("Coverage", _) => closed_extensions(
                n,
                &loc,
                COVERAGE_EXT,
                "geschlossenes Slicing Coverage.extension in KBV_PR_FOR_Coverage",
                cx,
            ),
            ("Condition", Some("KBV_PR_EAU_Condition_AU")) => closed_extensions(
                n,
                &loc,
                AU_EXT,
                "geschlossenes Slicing Condition.extension in KBV_PR_EAU_Condition_AU",
                cx,
            ),
            ("Condition", Some("KBV_PR_EAU_Condition_ICD")) => {
                closed_extensions(
                    n,
                    &loc,
                    &[],
                    "Condition.extension 0..0 in KBV_PR_EAU_Condition_ICD",
                    cx,
                );
                if let Some(code) = n.child("code") {
                    for (i, coding) in code.all("coding") {
                        closed_extensions(
                            coding,
                            &format!("{loc}.code.coding[{i}]"),
                            ICD_CODING_EXT,
                            "geschlossenes Slicing Condition.code.coding.extension in \
                             KBV_PR_EAU_Condition_ICD",
                            cx,
                        );
                    }
                }
            }
            ("ServiceRequest", _) => {
                closed_extensions(
                    n,
                    &loc,
                    STEPS_EXT,
                    "geschlossenes Slicing ServiceRequest.extension in \
                     KBV_PR_EAU_ServiceRequest_steps",
                    cx,
                );
                service_request(r, b, au, pkv, cx);
            }
            _ => {}
        }
        if n.name == "Condition" {
            asserter(r, author, cx);
        }
    }
}

/// `meta.profile` of an entry: the profile of its slice in the bundle profile with `|1.2`
/// (fixedCanonical of every profile; `-eau-versionComposition`). Patch levels are accepted as
/// for the Bundle itself ([`ACCEPTED_VERSIONS`]); with `versions` false (the bundle's own
/// version is refused already) only the profile names are checked.
fn entry_profile(r: Res<'_>, slicing: &Slicing, versions: bool, cx: &mut Cx) {
    let n = r.node;
    let loc = r.loc() + ".meta.profile";
    let Some((_, names)) = slicing.entries.iter().find(|(t, _)| *t == n.name) else {
        cx.err(
            IssueCode::Structure,
            r.loc(),
            format!(
                "Ressource {}: in {} nicht zulässig (geschlossenes Slicing Bundle.entry in {})",
                n.name, slicing.document, slicing.bundle
            ),
        );
        return;
    };
    let mut found = false;
    let profiles = n.child("meta").into_iter().flat_map(|m| m.all("profile"));
    for (i, p) in profiles {
        let Some(rest) = p.value().and_then(|v| v.strip_prefix(SD)) else {
            continue;
        };
        let (name, version) = rest.split_once('|').unwrap_or((rest, ""));
        if versions && !ACCEPTED_VERSIONS.contains(&version) {
            let version = if version.is_empty() {
                "ohne Version".to_owned()
            } else {
                format!("|{version}")
            };
            let key = if n.name == "Composition" {
                ", -eau-versionComposition"
            } else {
                ""
            };
            cx.err(
                IssueCode::NotSupported,
                format!("{loc}[{i}]"),
                format!(
                    "Profilversion: {name} {version} in {} nicht zulässig, jede Ressource muss \
                     ihr Profil mit |1.2 angeben (Festwert meta.profile{key})",
                    slicing.versioned
                ),
            );
            found = true;
        } else if names.contains(&name) {
            found = true;
        }
    }
    if !found {
        cx.err(
            IssueCode::Value,
            loc,
            format!(
                "Profil: {} muss {}|1.2 angeben (geschlossenes Slicing Bundle.entry in {})",
                n.name,
                names.join(" oder "),
                slicing.bundle
            ),
        );
    }
}

/// Extensions outside a closed slicing (or any, when `allowed` is empty: cardinality 0..0).
fn closed_extensions(node: &Node, loc: &str, allowed: &[&str], rule: &str, cx: &mut Cx) {
    for (i, e) in node.all("extension") {
        let url = e.attr("url").unwrap_or_default();
        if !allowed.contains(&url) {
            cx.err(
                IssueCode::Structure,
                format!("{loc}.extension[{i}]"),
                format!("Unbekannte Extension „{url}“: nicht zulässig ({rule})"),
            );
        }
    }
}

/// `Condition.asserter` (1..1) is the issuing doctor, the Composition's author
/// (`-eau-referenzAufAusstellendePerson-1`, compared as reference strings like the constraint).
fn asserter(r: Res<'_>, author: Option<&str>, cx: &mut Cx) {
    let label = match r.profile() {
        Some("KBV_PR_EAU_Condition_AU") => "AU-Angaben",
        Some("KBV_PR_EAU_Condition_ICD") => "Diagnose",
        Some("KBV_PR_EAU_Condition_Text") => "Hinweise zur Diagnose",
        _ => "Condition",
    };
    let loc = r.loc() + ".asserter.reference";
    match r.node.val(&["asserter", "reference"]) {
        None => cx.err(
            IssueCode::Required,
            loc,
            format!("{label}: feststellende Person (asserter) fehlt (Condition.asserter 1..1)"),
        ),
        Some(a) => {
            if let Some(author) = author.filter(|au| *au != a) {
                cx.err(
                    IssueCode::BusinessRule,
                    loc,
                    format!(
                        "{label}: asserter „{a}“ verweist nicht auf den ausstellenden Arzt der \
                         Composition („{author}“) (-eau-referenzAufAusstellendePerson-1)"
                    ),
                );
            }
        }
    }
}

/// Fixed values and the reason of a `KBV_PR_EAU_ServiceRequest_steps`; its PKV-only extensions.
fn service_request(r: Res<'_>, b: &Bundle<'_>, au: Option<Res<'_>>, pkv: bool, cx: &mut Cx) {
    let n = r.node;
    let loc = r.loc();
    for (element, fixed) in [("intent", "proposal"), ("status", "active")] {
        let v = n.val(&[element]);
        if v != Some(fixed) {
            cx.err(
                IssueCode::CodeInvalid,
                format!("{loc}.{element}"),
                format!(
                    "Weitere Maßnahme: {element} muss „{fixed}“ sein (Festwert \
                     ServiceRequest.{element} in KBV_PR_EAU_ServiceRequest_steps), „{}“ gefunden",
                    v.unwrap_or_default()
                ),
            );
        }
    }
    let reasons: Vec<&Node> = n.all("reasonReference").map(|(_, x)| x).collect();
    match reasons.as_slice() {
        [] => cx.err(
            IssueCode::Required,
            loc.clone() + ".reasonReference",
            "Weitere Maßnahme: Bezug auf die AU-Angaben fehlt (ServiceRequest.reasonReference \
             1..1)",
        ),
        [one] => {
            let reference = one.val(&["reference"]);
            let ok = match (b.resolve(reference), au) {
                (Some(t), Some(a)) => t.index == a.index,
                (Some(t), None) => {
                    t.node.name == "Condition" && t.profile() == Some("KBV_PR_EAU_Condition_AU")
                }
                (None, _) => false,
            };
            if !ok {
                cx.err(
                    IssueCode::Structure,
                    loc.clone() + ".reasonReference.reference",
                    format!(
                        "Weitere Maßnahme: reasonReference „{}“ zeigt nicht auf die AU-Angaben \
                         (KBV_PR_EAU_Condition_AU) im Bundle (ServiceRequest.reasonReference 1..1)",
                        reference.unwrap_or_default()
                    ),
                );
            }
        }
        more => cx.err(
            IssueCode::Structure,
            loc.clone() + ".reasonReference",
            format!(
                "Weitere Maßnahme: genau ein Bezug auf die AU-Angaben erlaubt \
                 (ServiceRequest.reasonReference 1..1), {} gefunden",
                more.len()
            ),
        ),
    }
    for (i, e) in n.all("extension") {
        let url = e.attr("url").unwrap_or_default();
        if let Some((_, label, key)) = STEPS_PKV_ONLY.iter().find(|(u, _, _)| *u == url) {
            pkv_only(pkv, format!("{loc}.extension[{i}]"), label, key, cx);
        }
    }
}

/// `Bundle.timestamp` (1..1): a FHIR instant, with time zone, in a plausible year.
fn bundle_timestamp(root: &Node, cx: &mut Cx) {
    let Some(v) = cx.req(root, "Bundle", &["timestamp"], "Zeitstempel") else {
        return;
    };
    let plausible = chrono::DateTime::parse_from_rfc3339(v)
        .is_ok_and(|t| (2000..=2999).contains(&chrono::Datelike::year(&t)));
    if !plausible {
        cx.err(
            IssueCode::Value,
            "Bundle.timestamp",
            "Zeitstempel: kein gültiger Zeitpunkt (JJJJ-MM-TTThh:mm:ss mit Zeitzone)",
        );
    }
}

fn document_id(root: &Node, cx: &mut Cx) -> Option<Uuid> {
    let v = cx.req(root, "Bundle", &["identifier", "value"], "Dokumenten-ID")?;
    if root.val(&["identifier", "system"]) != Some(sys::URN) {
        cx.err(
            IssueCode::Value,
            "Bundle.identifier.system",
            "Dokumenten-ID: System urn:ietf:rfc:3986 erwartet",
        );
    }
    let id = v
        .strip_prefix("urn:uuid:")
        .filter(|u| u.len() == 36)
        .and_then(|u| Uuid::parse_str(u).ok());
    if id.is_none() {
        cx.err(
            IssueCode::Value,
            "Bundle.identifier.value",
            "Dokumenten-ID: urn:uuid: mit einer UUID (36 Zeichen) erwartet",
        );
    }
    id
}

struct Comp<'a> {
    kind: Option<CertificateKind>,
    issued_on: Option<NaiveDate>,
    legal_basis: Option<String>,
    pruefnummer: Option<String>,
    subject: Option<&'a str>,
    author: Option<&'a str>,
    custodian: Option<&'a str>,
    attester: Option<&'a str>,
}

fn composition<'a>(r: Res<'a>, cx: &mut Cx) -> Comp<'a> {
    let n = r.node;
    let loc = r.loc();
    let ty = n.child("type");
    let kind = match ty.and_then(|t| t.coding(sys::AU_TYPE)) {
        Some(c) => {
            let v = c.value_of("code").unwrap_or_default();
            cx.domain(
                &(loc.clone() + ".type.coding[0].code"),
                CertificateKind::parse(v),
            )
        }
        None => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".type.coding",
                "Art der Bescheinigung (KBV_CS_EAU_AU_Type): fehlt",
            );
            None
        }
    };
    match ty
        .and_then(|t| t.coding(sys::FORMULAR_ART))
        .and_then(|c| c.value_of("code"))
    {
        Some("e010") => {}
        other => cx.err(
            IssueCode::CodeInvalid,
            loc.clone() + ".type.coding[1].code",
            format!(
                "Formularart: e010 erwartet, {} gefunden",
                other.unwrap_or("nichts")
            ),
        ),
    }
    if n.val(&["status"]) != Some("final") {
        cx.err(
            IssueCode::CodeInvalid,
            loc.clone() + ".status",
            "Status der Composition: „final“ erwartet",
        );
    }
    let date = cx.req(n, &loc, &["date"], "Ausstellungsdatum");
    let issued_on = cx.date(date, &(loc.clone() + ".date"), "Ausstellungsdatum");
    let legal_basis = match n.extension(sys::LEGAL_BASIS_EX) {
        Some(e) => {
            let v = e.val(&["valueCoding", "code"]).unwrap_or_default();
            if v.len() == 2 && v.bytes().all(|b| b.is_ascii_digit()) {
                Some(v.to_owned())
            } else {
                cx.err(
                    IssueCode::CodeInvalid,
                    loc.clone() + ".extension[0].valueCoding.code",
                    "Kennzeichen Rechtsgrundlage: zwei Ziffern erwartet",
                );
                None
            }
        }
        None => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".extension",
                "Kennzeichen Rechtsgrundlage: Angabe fehlt",
            );
            None
        }
    };
    let mut author = None;
    let mut pruefnummer = None;
    for (i, a) in n.all("author") {
        match a.val(&["type"]) {
            Some("Practitioner") => author = a.val(&["reference"]),
            Some("Device") => {
                let p = a
                    .at(&["identifier"])
                    .filter(|id| id.val(&["system"]) == Some(sys::PRUEFNUMMER))
                    .and_then(|id| id.value_of("value"));
                let l = format!("{loc}.author[{i}].identifier.value");
                match p {
                    Some(p) if (6..=17).contains(&p.chars().count()) => {
                        pruefnummer = Some(p.to_owned())
                    }
                    Some(_) => cx.err(IssueCode::Value, l, "Prüfnummer: 6 bis 17 Zeichen"),
                    None => cx.err(IssueCode::Required, l, "Prüfnummer: Angabe fehlt"),
                }
            }
            _ => {}
        }
    }
    if author.is_none() {
        cx.err(
            IssueCode::Required,
            loc.clone() + ".author",
            "Ausstellende Person (author Practitioner): fehlt",
        );
    }
    if pruefnummer.is_none()
        && !cx
            .issues
            .iter()
            .any(|i| i.message.starts_with("Prüfnummer"))
    {
        cx.err(
            IssueCode::Required,
            loc.clone() + ".author",
            "Prüfnummer (author Device): fehlt",
        );
    }
    Comp {
        kind,
        issued_on,
        legal_basis,
        pruefnummer,
        subject: n.val(&["subject", "reference"]),
        author,
        custodian: n.val(&["custodian", "reference"]),
        attester: n.val(&["attester", "party", "reference"]),
    }
}

struct Sections<'a> {
    list: Vec<(&'a str, Option<Res<'a>>)>,
}

impl<'a> Sections<'a> {
    fn new(comp: Res<'a>, b: &Bundle<'a>) -> Self {
        let list = comp
            .node
            .all("section")
            .map(|(_, s)| {
                let code = s
                    .child("code")
                    .and_then(|c| c.coding(sys::SECTION))
                    .and_then(|c| c.value_of("code"))
                    .unwrap_or_default();
                (code, b.resolve(s.val(&["entry", "reference"])))
            })
            .collect();
        Self { list }
    }

    fn all(&self, code: &str) -> Vec<Res<'a>> {
        self.list
            .iter()
            .filter(|(c, _)| *c == code)
            .filter_map(|(_, r)| *r)
            .collect()
    }

    fn first(&self, code: &str) -> Option<Res<'a>> {
        self.all(code).into_iter().next()
    }

    /// Index of the first section with this code (`Composition.section[i]`).
    fn index(&self, code: &str) -> Option<usize> {
        self.list.iter().position(|(c, _)| *c == code)
    }
}

/// Resolves a Composition reference and checks the resource type.
fn expect<'a>(
    cx: &mut Cx,
    b: &Bundle<'a>,
    comp: Res<'a>,
    reference: Option<&str>,
    resource: &str,
    element: &str,
    label: &str,
) -> Option<Res<'a>> {
    let r = reference?;
    match b.resolve(Some(r)) {
        Some(res) if res.node.name == resource => Some(res),
        _ => {
            cx.err(
                IssueCode::Structure,
                format!("{}.{element}.reference", comp.loc()),
                format!("{label}: Referenz {r} zeigt auf keine {resource}-Ressource im Bundle"),
            );
            None
        }
    }
}

fn patient(r: Res<'_>, issued_on: Option<NaiveDate>, cx: &mut Cx) -> Option<Patient> {
    let n = r.node;
    let loc = r.loc();
    let mut kvnr = None;
    let mut kvk_number = None;
    let mut found = false;
    for (i, id) in n.all("identifier") {
        let system = id.val(&["system"]).unwrap_or_default();
        let l = format!("{loc}.identifier[{i}].value");
        if system == sys::KVID_GKV || system == sys::KVID_PKV {
            found = true;
            let v = id.value_of("value").unwrap_or_default();
            kvnr = cx.domain(&l, Kvnr::parse_structure(v));
            if let Some(k) = &kvnr {
                if !k.check_digit_ok() {
                    cx.warn(IssueCode::Value, l, "Versicherten-ID (KVNR): Prüfziffer stimmt nicht (übernommen, bitte prüfen)");
                }
            }
        } else if system == sys::KVK {
            found = true;
            let v = id.value_of("value").unwrap_or_default();
            if (6..=12).contains(&v.chars().count())
                && v.chars().all(|ch| ch.is_ascii_alphanumeric())
            {
                kvk_number = Some(v.to_owned());
            } else {
                cx.err(
                    IssueCode::Value,
                    l,
                    "KVK-Versichertennummer: 6 bis 12 Buchstaben oder Ziffern",
                );
            }
        }
    }
    if kvnr.is_some() && kvk_number.is_some() {
        cx.err(
            IssueCode::BusinessRule,
            loc.clone() + ".identifier",
            "Versicherten-ID und KVK-Versichertennummer: nur eine von beiden angeben",
        );
    }
    if !found {
        cx.err(
            IssueCode::Required,
            loc.clone() + ".identifier",
            "Versicherten-ID (KVNR): Angabe fehlt",
        );
    }
    let name = n.child("name");
    let parts = name.map(|nm| name_parts(nm, &format!("{loc}.name[0]"), cx));
    let (last_name, first_name) = match name {
        Some(nm) => {
            let nl = format!("{loc}.name[0]");
            let family = own_name(nm, &nl, cx);
            let given: Vec<&str> = nm.all("given").filter_map(|(_, g)| g.value()).collect();
            let given = if given.is_empty() {
                cx.err(
                    IssueCode::Required,
                    nl.clone() + ".given",
                    "Vorname des Versicherten: Angabe fehlt",
                );
                None
            } else {
                cx.len(
                    Some(&given.join(" ")),
                    &(nl + ".given"),
                    "Vorname des Versicherten",
                    45,
                )
            };
            (family, given)
        }
        None => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".name",
                "Name des Versicherten: Angabe fehlt",
            );
            (None, None)
        }
    };
    let birth = cx.req(n, &loc, &["birthDate"], "Geburtsdatum");
    let birth_date = cx.date(birth, &(loc.clone() + ".birthDate"), "Geburtsdatum");
    if let (Some(b), Some(i)) = (birth_date, issued_on) {
        if b > i {
            cx.err(
                IssueCode::BusinessRule,
                loc.clone() + ".birthDate",
                "Geburtsdatum: darf nicht in der Zukunft (nach dem Ausstellungsdatum) liegen",
            );
        }
    }
    let post_box = post_box(n, &loc, cx);
    let (street, house_number, postal_code, city) = match &post_box {
        Some(_) => {
            let al = format!("{loc}.address[0]");
            let a = n.child("address")?;
            let postal = cx.text(a, &al, &["postalCode"], "PLZ des Versicherten", 10);
            let city = cx.text(a, &al, &["city"], "Ort des Versicherten", 40);
            (String::new(), String::new(), postal?, city?)
        }
        None => address(n, &loc, "des Versicherten", cx)?,
    };
    let post_box = post_box.flatten();
    let (title, name_addition, name_prefix) = parts.flatten().unwrap_or_default();
    if kvnr.is_none() && kvk_number.is_none() {
        return None;
    }
    Some(Patient {
        kvnr,
        kvk_number,
        first_name: first_name?,
        last_name: last_name?,
        title,
        name_addition,
        name_prefix,
        birth_date: birth_date.filter(|b| issued_on.is_none_or(|i| *b <= i))?,
        street,
        house_number,
        post_box,
        postal_code,
        city,
        country: n.val(&["address", "country"]).map(str::to_owned),
    })
}

/// The own name of a `HumanName`: its `humanname-own-name` extension where the family name
/// carries Namenszusatz or Vorsatzwort, else the family name itself.
fn own_name(nm: &Node, nl: &str, cx: &mut Cx) -> Option<String> {
    let family = cx.req(nm, nl, &["family"], "Name des Versicherten")?;
    let node = nm.child("family");
    let ext = |url: &str| {
        node.and_then(|f| f.extension(url))
            .and_then(|e| e.val(&["valueString"]))
    };
    // The whole family name is checked as well: the own name (45) with Namenszusatz and
    // Vorsatzwort (20 each) before it, where it has them.
    let parts = [sys::NAMENSZUSATZ, sys::OWN_PREFIX]
        .into_iter()
        .filter(|url| ext(url).is_some())
        .count();
    let loc = format!("{nl}.family");
    let family = cx.len(
        Some(family.trim()),
        &loc,
        "Name des Versicherten",
        45 + 21 * parts,
    )?;
    match ext(sys::OWN_NAME) {
        Some(own) => cx.len(Some(own.trim()), &loc, "Name des Versicherten", 45),
        None => Some(family),
    }
}

/// Title (`prefix` qualified `AC`), Namenszusatz and Vorsatzwort of the patient's name; `None`
/// when one of them is invalid (the error is recorded).
type NameParts = (Option<String>, Option<String>, Option<String>);

fn name_parts(nm: &Node, nl: &str, cx: &mut Cx) -> Option<NameParts> {
    // The parts count only beside an own name: without it the family name stands whole (as
    // the last name) and must not be printed twice.
    let family = nm
        .child("family")
        .filter(|f| f.extension(sys::OWN_NAME).is_some());
    let mut part = |value: Option<&str>, loc: String, label: &str| -> Option<Option<String>> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Some(None),
            Some(v) => cx.len(Some(v), &loc, label, 20).map(Some),
        }
    };
    let ext = |url: &str| {
        family
            .and_then(|f| f.extension(url))
            .and_then(|e| e.val(&["valueString"]))
    };
    // Only a prefix qualified as academic title (AC) is the Titel.
    let prefixes: Vec<&str> = nm
        .all("prefix")
        .filter(|(_, p)| {
            p.extension(sys::EN_QUALIFIER)
                .and_then(|e| e.val(&["valueCode"]))
                == Some("AC")
        })
        .filter_map(|(_, p)| p.value())
        .collect();
    let title = part(
        (!prefixes.is_empty())
            .then(|| prefixes.join(" "))
            .as_deref(),
        format!("{nl}.prefix"),
        "Titel des Versicherten",
    );
    let addition = part(
        ext(sys::NAMENSZUSATZ),
        format!("{nl}.family"),
        "Namenszusatz des Versicherten",
    );
    let prefix = part(
        ext(sys::OWN_PREFIX),
        format!("{nl}.family"),
        "Vorsatzwort des Versicherten",
    );
    Some((title?, addition?, prefix?))
}

/// The Postfach of a postal address (`type` `postal`, `line` with the `ADXP-postBox`
/// extension): `None` for a street address, `Some(None)` for a postal address whose Postfach
/// is invalid (the error is recorded).
fn post_box(n: &Node, loc: &str, cx: &mut Cx) -> Option<Option<String>> {
    let a = n.child("address")?;
    if a.val(&["type"]) != Some("postal") {
        return None;
    }
    let al = format!("{loc}.address[0].line");
    let line = a.child("line");
    let value = line
        .and_then(|l| l.extension(sys::POST_BOX))
        .and_then(|e| e.val(&["valueString"]))
        .or_else(|| {
            line.filter(|l| l.extension(sys::STREET_NAME).is_none())
                .and_then(Node::value)
        });
    Some(match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => cx.len(Some(v), &al, "Postfach des Versicherten", 8),
        None => {
            cx.err(
                IssueCode::Required,
                al,
                "Postfach des Versicherten: Angabe fehlt",
            );
            None
        }
    })
}

/// Street, house number, PLZ, city of the first address.
fn address(
    n: &Node,
    loc: &str,
    whose: &str,
    cx: &mut Cx,
) -> Option<(String, String, String, String)> {
    let Some(a) = n.child("address") else {
        cx.err(
            IssueCode::Required,
            format!("{loc}.address"),
            format!("Anschrift {whose}: Angabe fehlt"),
        );
        return None;
    };
    let al = format!("{loc}.address[0]");
    let line = a.child("line");
    let street_ext = line
        .and_then(|l| l.extension(sys::STREET_NAME))
        .and_then(|e| e.val(&["valueString"]));
    let house_ext = line
        .and_then(|l| l.extension(sys::HOUSE_NUMBER))
        .and_then(|e| e.val(&["valueString"]));
    let line_value = line.and_then(Node::value);
    let street = match street_ext.or(line_value) {
        Some(s) => cx.len(
            Some(s.trim()),
            &(al.clone() + ".line"),
            &format!("Straße {whose}"),
            46,
        ),
        None => {
            cx.err(
                IssueCode::Required,
                al.clone() + ".line",
                format!("Straße {whose}: Angabe fehlt"),
            );
            None
        }
    };
    let house = if street_ext.is_some() {
        cx.len(
            Some(house_ext.unwrap_or_default().trim()),
            &(al.clone() + ".line"),
            &format!("Hausnummer {whose}"),
            9,
        )
    } else {
        Some(String::new())
    };
    let postal = cx.text(a, &al, &["postalCode"], &format!("PLZ {whose}"), 10);
    let city = cx.text(a, &al, &["city"], &format!("Ort {whose}"), 40);
    Some((street?, house?, postal?, city?))
}

fn person_name(n: &Node, loc: &str, cx: &mut Cx) -> Option<PersonName> {
    let Some(nm) = n.child("name") else {
        cx.err(
            IssueCode::Required,
            format!("{loc}.name"),
            "Name des Arztes: Angabe fehlt",
        );
        return None;
    };
    let nl = format!("{loc}.name[0]");
    let family = cx.text(nm, &nl, &["family"], "Name des Arztes", 45)?;
    // With its parts, the family name as the KBV stamp prints it: Namenszusatz, Vorsatzwort,
    // own name.
    let part = |url: &str| {
        nm.child("family")
            .and_then(|f| f.extension(url))
            .and_then(|e| e.val(&["valueString"]))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let family = match part(sys::OWN_NAME) {
        Some(own) => [part(sys::NAMENSZUSATZ), part(sys::OWN_PREFIX), Some(own)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
        None => family,
    };
    let given: Vec<&str> = nm.all("given").filter_map(|(_, g)| g.value()).collect();
    let given = cx.len(
        Some(&given.join(" ")),
        &(nl.clone() + ".given"),
        "Vorname des Arztes",
        45,
    )?;
    let prefix: Vec<&str> = nm.all("prefix").filter_map(|(_, g)| g.value()).collect();
    let prefix = if prefix.is_empty() {
        None
    } else {
        Some(cx.len(
            Some(&prefix.join(" ")),
            &(nl + ".prefix"),
            "Titel des Arztes",
            20,
        )?)
    };
    Some(PersonName {
        prefix,
        given,
        family,
    })
}

fn practitioner(r: Res<'_>, has_responsible: bool, sel: bool, cx: &mut Cx) -> Option<Doctor> {
    let n = r.node;
    let loc = r.loc();
    let mut qualification = None;
    let mut specialty = String::new();
    let mut asv = None;
    for (i, q) in n.all("qualification") {
        let Some(code) = q.child("code") else {
            continue;
        };
        let ql = format!("{loc}.qualification[{i}].code.coding[0].code");
        if let Some(c) = code.coding(sys::QUALIFICATION) {
            qualification = cx.domain(
                &ql,
                Qualification::parse(c.value_of("code").unwrap_or_default()),
            );
        } else if code.coding(sys::BERUFSBEZEICHNUNG).is_some() {
            if let Some(t) = code.val(&["text"]) {
                specialty = t.to_owned();
            }
        } else if let Some(c) = code.coding(sys::ASV_FACHGRUPPE) {
            asv = Some((ql, c.value_of("code").unwrap_or_default()));
        }
    }
    if qualification.is_none()
        && !cx
            .issues
            .iter()
            .any(|i| i.location.starts_with(&loc) && i.location.contains("qualification"))
    {
        cx.err(
            IssueCode::Required,
            loc.clone() + ".qualification",
            "Berufsgruppe (KBV_CS_FOR_Qualification_Type): Angabe fehlt",
        );
    }
    let mut number = None;
    let mut telematik_id = None;
    for (i, id) in n.all("identifier") {
        let system = id.val(&["system"]).unwrap_or_default();
        let l = format!("{loc}.identifier[{i}].value");
        let v = id.value_of("value").unwrap_or_default();
        if system == sys::TELEMATIK_ID {
            telematik_id = cx.len(Some(v.trim()), &l, "Telematik-ID des Arztes", 128);
        } else if system == sys::ANR {
            number = cx.domain(&l, Lanr::parse(v)).map(|x| (x, false));
        } else if system == sys::ZANR {
            number = cx
                .domain(
                    &l,
                    Lanr::parse(v).map_err(|_| {
                        DomainError::Format(
                            "Zahnarzt-Nr. (ZANR)",
                            "neun Ziffern mit gültiger Prüfziffer",
                        )
                    }),
                )
                .map(|x| (x, true));
        }
    }
    let (lanr, id_kind) = match (number, asv) {
        (Some((lanr, zanr)), _) => {
            if zanr != (qualification == Some(Qualification::Dentist)) {
                cx.err(
                    IssueCode::BusinessRule,
                    loc.clone() + ".identifier",
                    "Arzt-Nr.: ZANR genau für Zahnärzte (Berufsgruppe 01)",
                );
            }
            (lanr, DoctorIdKind::Lanr)
        }
        (None, Some((l, code))) => (
            cx.domain(&l, Lanr::parse(code))?,
            DoctorIdKind::AsvFachgruppe,
        ),
        (None, None) => {
            // TA Table 23: the number is mandatory except for Selbstzahler and for an Arzt in
            // Weiterbildung (03) with a responsible person.
            if sel || (has_responsible && qualification == Some(Qualification::Trainee)) {
                (
                    cx.domain(&(loc.clone() + ".identifier"), Lanr::parse("999999900"))?,
                    DoctorIdKind::None,
                )
            } else {
                if !cx
                    .issues
                    .iter()
                    .any(|i| i.location.starts_with(&(loc.clone() + ".identifier")))
                {
                    cx.err(
                        IssueCode::Required,
                        loc.clone() + ".identifier",
                        "Arzt-Nr. (LANR/ZANR): Angabe fehlt",
                    );
                }
                return None;
            }
        }
    };
    let parts = person_name(n, &loc, cx)?;
    let name = parts.display();
    let name_parts = (PersonName::split(&name) != parts).then_some(parts);
    Some(Doctor {
        lanr,
        name,
        specialty,
        qualification: qualification?,
        id_kind,
        name_parts,
        telematik_id,
    })
}

fn organization(r: Res<'_>, cx: &mut Cx) -> Option<Practice> {
    let n = r.node;
    let loc = r.loc();
    let mut number = None;
    for (i, id) in n.all("identifier") {
        let system = id.val(&["system"]).unwrap_or_default();
        let l = format!("{loc}.identifier[{i}].value");
        let v = id.value_of("value").unwrap_or_default();
        let (kind, label) = match system {
            sys::BSNR => (Some(PracticeIdKind::Bsnr), "Betriebsstätten-Nr. (BSNR)"),
            sys::KZVA => (Some(PracticeIdKind::Kzva), "KZV-Abrechnungsnummer"),
            sys::STANDORT => (Some(PracticeIdKind::Standortnummer), "Standortnummer"),
            sys::IKNR => (None, "Institutionskennzeichen der Einrichtung"),
            _ => continue,
        };
        if !(v.len() == 9 && v.bytes().all(|b| b.is_ascii_digit())) {
            cx.err(
                IssueCode::Value,
                l,
                format!("{label}: genau neun Ziffern (1.2.1: -for-laengeBSNR), „{v}“ gefunden"),
            );
            continue;
        }
        match kind {
            Some(k) => number = cx.domain(&l, Bsnr::parse_structure(v)).map(|b| (b, k)),
            None => cx.err(
                IssueCode::NotSupported,
                l,
                "Einrichtung mit IK statt BSNR: wird noch nicht übernommen",
            ),
        }
    }
    if number.is_none()
        && !cx
            .issues
            .iter()
            .any(|i| i.location.starts_with(&(loc.clone() + ".identifier")))
    {
        cx.err(
            IssueCode::Required,
            loc.clone() + ".identifier",
            "Betriebsstätten-Nr. (BSNR): Angabe fehlt",
        );
    }
    let name = cx.text(n, &loc, &["name"], "Name der Einrichtung", 60);
    let phone = n
        .all("telecom")
        .find(|(_, t)| t.val(&["system"]) == Some("phone"))
        .and_then(|(_, t)| t.value_of("value"));
    let phone = match phone {
        Some(p) => cx.len(
            Some(p),
            &(loc.clone() + ".telecom"),
            "Telefonnummer der Einrichtung",
            30,
        ),
        None => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".telecom",
                "Telefonnummer der Einrichtung: Angabe fehlt",
            );
            None
        }
    };
    let Some(a) = n.child("address") else {
        cx.err(
            IssueCode::Required,
            loc + ".address",
            "Anschrift der Einrichtung: Angabe fehlt",
        );
        return None;
    };
    let al = format!("{loc}.address[0]");
    let street = cx.text(a, &al, &["line"], "Straße der Einrichtung", 56);
    let postal = cx.text(a, &al, &["postalCode"], "PLZ der Einrichtung", 10);
    let city = cx.text(a, &al, &["city"], "Ort der Einrichtung", 40);
    let telecom = |system: &str| {
        n.all("telecom")
            .find(|(_, t)| t.val(&["system"]) == Some(system))
            .and_then(|(_, t)| t.value_of("value"))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let more = crate::domain::Contact {
        address_line2: a
            .all("line")
            .nth(1)
            .and_then(|(_, l)| l.value())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
        fax: telecom("fax"),
        email: telecom("email"),
    };
    let (bsnr, id_kind) = number?;
    Some(Practice {
        bsnr,
        id_kind,
        name: name?,
        street: street?,
        postal_code: postal?,
        city: city?,
        phone: phone?,
        more,
    })
}

fn coverage(r: Res<'_>, cx: &mut Cx) -> Option<Coverage> {
    let n = r.node;
    let loc = r.loc();
    let ty = n.child("type");
    let payer = ty
        .and_then(|t| {
            t.coding(sys::VERSICHERUNGSART)
                .or_else(|| t.coding(sys::PAYOR_TYPE_KBV))
        })
        .and_then(|c| c.value_of("code"));
    let payer_type = match payer {
        Some(p) => cx.domain(&(loc.clone() + ".type.coding[0].code"), PayerType::parse(p)),
        None => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".type",
                "Kostenträgertyp: Angabe fehlt",
            );
            None
        }
    };
    let ext = |url: &str| -> Option<(String, String)> {
        let i = n
            .children
            .iter()
            .filter(|c| c.name == "extension")
            .position(|e| e.attr("url") == Some(url))?;
        let v = n
            .extension(url)
            .and_then(|e| e.val(&["valueCoding", "code"]))
            .unwrap_or_default();
        Some((
            v.to_owned(),
            format!("{loc}.extension[{i}].valueCoding.code"),
        ))
    };
    let group = ext(sys::PERSONENGRUPPE_EX);
    let dmp = ext(sys::DMP_EX);
    let wop = ext(sys::WOP_EX);
    let art = ext(sys::VERSICHERTENART_EX);
    let special_group = match group {
        Some((v, _)) if SPECIAL_GROUPS.contains(&v.as_str()) => Some(v),
        Some((_, l)) => {
            cx.err(
                IssueCode::CodeInvalid,
                l,
                "Besondere Personengruppe: 00, 04, 06, 07, 08 oder 09",
            );
            None
        }
        None => Some("00".to_owned()),
    };
    let dmp = match dmp {
        Some((v, _)) if is_dmp_code(&v) => Some(v),
        Some((_, l)) => {
            cx.err(
                IssueCode::CodeInvalid,
                l,
                "DMP-Kennzeichen: 00 bis 12 oder 30 bis 58",
            );
            None
        }
        None => Some("00".to_owned()),
    };
    let wop = match wop {
        Some((v, _)) if v.len() == 2 && v.bytes().all(|b| b.is_ascii_digit()) => Some(Some(v)),
        Some((_, l)) => {
            cx.err(IssueCode::CodeInvalid, l, "WOP-Kennzeichen: zwei Ziffern");
            None
        }
        None => Some(None),
    };
    let insured_type = match art {
        Some((v, l)) => cx.domain(&l, InsuredType::parse(&v)),
        None => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".extension",
                "Versichertenart: Angabe fehlt",
            );
            None
        }
    };
    let payor = n.child("payor");
    let ik = match payor.and_then(|p| p.child("identifier")) {
        Some(id) if id.val(&["system"]) == Some(sys::IKNR) => {
            let l = format!("{loc}.payor[0].identifier.value");
            let v = id.value_of("value").unwrap_or_default();
            let ik = cx.domain(&l, InsurerIk::parse_structure(v));
            if ik.is_some() && InsurerIk::parse(v).is_err() {
                cx.warn(
                    IssueCode::Value,
                    l,
                    "Kostenträgerkennung (IK): Prüfziffer stimmt nicht (übernommen, bitte prüfen)",
                );
            }
            ik
        }
        _ => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".payor[0].identifier",
                "Kostenträgerkennung (IK): Angabe fehlt",
            );
            None
        }
    };
    let name = match payor {
        Some(p) => cx.text(
            p,
            &(loc.clone() + ".payor[0]"),
            &["display"],
            "Name des Kostenträgers",
            45,
        ),
        None => None,
    };
    let end = n.val(&["period", "end"]);
    let valid_until = match end {
        Some(e) => Some(cx.date(
            Some(e),
            &(loc.clone() + ".period.end"),
            "Versicherungsschutz-Ende",
        )?),
        None => None,
    };
    Some(Coverage {
        ik: ik?,
        name: name?,
        wop: wop?,
        insured_type: insured_type?,
        special_group: special_group?,
        dmp: dmp?,
        valid_until,
        payer_type: payer_type?,
    })
}

/// PKV-only extensions of `KBV_PR_EAU_Condition_AU` with the Bundle constraint that confines
/// them to PKV (url, label, constraint key).
const AU_PKV_ONLY: &[(&str, &str, &str)] = &[
    (
        "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_partially_employable",
        "Teilweise arbeitsfähig ab (PKV)",
        "-eau-angabeTeilweiseArbeitsfaehigPKV",
    ),
    (
        "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_unemployability",
        "Berufsunfähigkeit (PKV)",
        "-eau-angabeBerufsunfaehigPKV",
    ),
];

/// PKV-only extensions of `KBV_PR_EAU_ServiceRequest_steps` (url, label, constraint key).
const STEPS_PKV_ONLY: &[(&str, &str, &str)] = &[
    (
        "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_reintegration_date",
        "Wiedereingliederung ab (PKV)",
        "-eau-angabeWiedereingliederungabPKV",
    ),
    (
        "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_admission_date",
        "Aufnahmedatum (PKV)",
        "-eau-angabeAufnahmedatumNurPKV",
    ),
    (
        "https://fhir.kbv.de/StructureDefinition/KBV_EX_EAU_discharge_date",
        "Entlassungsdatum (PKV)",
        "-eau-angabeEntlassdatumNurPKV",
    ),
];

/// A PKV-only element: a warning (not taken over) for PKV, an error otherwise.
fn pkv_only(pkv: bool, loc: String, label: &str, key: &str, cx: &mut Cx) {
    if pkv {
        cx.warn(
            IssueCode::NotSupported,
            loc,
            format!("{label}: PKV-Angabe wird nicht übernommen"),
        );
    } else {
        cx.err(
            IssueCode::BusinessRule,
            loc,
            format!("{label}: nur bei PKV-Versicherten zulässig ({key})"),
        );
    }
}

/// AU dates and rules; returns the period and whether it is back-dated beyond three days.
fn condition_au(
    r: Res<'_>,
    kind: Option<CertificateKind>,
    pkv: bool,
    cx: &mut Cx,
) -> Option<(IncapacityPeriod, bool)> {
    let n = r.node;
    let loc = r.loc();
    for (i, e) in n.all("extension") {
        let url = e.attr("url").unwrap_or_default();
        if let Some((_, label, key)) = AU_PKV_ONLY.iter().find(|(u, _, _)| *u == url) {
            pkv_only(pkv, format!("{loc}.extension[{i}]"), label, key, cx);
        }
    }
    let codings: Vec<&Node> = n
        .child("code")
        .map(|c| c.all("coding").map(|(_, x)| x).collect())
        .unwrap_or_default();
    match codings.as_slice() {
        [c] if c.val(&["system"]) == Some(sys::DOKUMENTTYPE)
            && c.value_of("code") == Some("eAU") => {}
        other => {
            let found = other.first().map_or("nichts".to_owned(), |c| {
                format!(
                    "{}#{}",
                    c.val(&["system"]).unwrap_or_default(),
                    c.value_of("code").unwrap_or_default()
                )
            });
            cx.err(
                IssueCode::CodeInvalid,
                loc.clone() + ".code.coding",
                format!(
                    "AU-Kennzeichen (Condition.code): genau KBV_CS_SFHIR_KBV_FHIR_DOKUMENTTYPE#eAU \
                     erwartet (Festwert in KBV_PR_EAU_Condition_AU), {found} gefunden ({} Codierungen)",
                    other.len()
                ),
            );
        }
    }
    let determined = match n.extension(sys::ASSERTED_DATE) {
        Some(e) => cx.date(
            e.val(&["valueDateTime"]),
            &(loc.clone() + ".extension.valueDateTime"),
            "Festgestellt am",
        ),
        None => {
            cx.err(
                IssueCode::Required,
                loc.clone() + ".extension",
                "Festgestellt am (condition-assertedDate): Angabe fehlt",
            );
            None
        }
    };
    let since_loc = loc.clone() + ".onsetPeriod.start";
    let until_loc = loc.clone() + ".onsetPeriod.end";
    let since_raw = n.val(&["onsetPeriod", "start"]);
    let since = match since_raw {
        Some(s) => Some(cx.date(Some(s), &since_loc, "AU seit")?),
        None => None,
    };
    let until_raw = cx.req(
        n,
        &loc,
        &["onsetPeriod", "end"],
        "Voraussichtlich arbeitsunfähig bis",
    );
    let until = cx.date(until_raw, &until_loc, "Voraussichtlich arbeitsunfähig bis");
    let kind = kind?;
    let before = cx.issues.iter().filter(|i| i.is_error()).count();
    match (kind.is_initial(), since) {
        (true, None) => cx.err(
            IssueCode::Required,
            since_loc.clone(),
            "AU seit: bei einer Erstbescheinigung anzugeben",
        ),
        (false, Some(_)) => cx.err(
            IssueCode::BusinessRule,
            since_loc.clone(),
            "AU seit: bei einer Folgebescheinigung nicht anzugeben",
        ),
        _ => {}
    }
    let (until, determined) = (until?, determined?);
    if let Some(s) = since {
        if until < s {
            cx.err(
                IssueCode::BusinessRule,
                until_loc.clone(),
                "Voraussichtlich arbeitsunfähig bis: darf nicht vor „AU seit“ liegen",
            );
        }
        // AU-RL, not the profile: a warning on import (see below).
        if s > determined {
            cx.warn(
                IssueCode::BusinessRule,
                since_loc.clone(),
                "AU seit: liegt nach „festgestellt am“ (übernommen, bitte prüfen)",
            );
        }
    }
    // AU-Richtlinie date rules that no FHIR profile encodes and for which the insurer must not
    // reject the eAU (TA KP5-05, DOMAIN.md §1.3): a bundle the practice software already made is
    // taken with a warning, never stuck here. Capture in AU-Relay refuses them. (A period whose
    // end lies before its start stays an error: FHIR invariant per-1.)
    if (until - determined).num_days() > MAX_DAYS_AHEAD {
        cx.warn(
            IssueCode::BusinessRule,
            until_loc.clone(),
            "Voraussichtlich arbeitsunfähig bis: mehr als 31 Tage nach „festgestellt am“ (AU-RL § 5; übernommen, bitte prüfen)",
        );
    }
    if until < determined {
        cx.warn(
            IssueCode::BusinessRule,
            until_loc,
            "Voraussichtlich arbeitsunfähig bis: liegt vor „festgestellt am“ (übernommen, bitte prüfen)",
        );
    }
    let backdated = since.is_some_and(|s| (determined - s).num_days() > MAX_BACKDATING_DAYS);
    if backdated {
        cx.warn(IssueCode::BusinessRule, since_loc, "AU seit: liegt mehr als 3 Tage vor „festgestellt am“ (Rückdatierung, AU-RL § 5 Abs. 3)");
    }
    let after = cx.issues.iter().filter(|i| i.is_error()).count();
    (after == before).then_some((
        IncapacityPeriod {
            since,
            until,
            determined_on: determined,
        },
        backdated,
    ))
}

/// The causes of `KBV_VS_EAU_Ursache_Type` (required binding of `Condition.extension:Ursache`).
const URSACHE_VS: &[&str] = &["1", "2", "3"];

/// The causes (`condition-dueTo`, 0..3, each at most once, codes from
/// `KBV_VS_EAU_Ursache_Type`), in the bundle's order; `None` when invalid.
fn c_cause(au: Option<Res<'_>>, cx: &mut Cx) -> Option<Vec<Cause>> {
    let Some(r) = au else { return Some(Vec::new()) };
    let loc = r.loc();
    let mut codes: Vec<&str> = Vec::new();
    let mut ok = true;
    for (i, e) in r.node.all("extension") {
        if e.attr("url") != Some(sys::DUE_TO) {
            continue;
        }
        let l = format!("{loc}.extension[{i}].valueCodeableConcept.coding[0].code");
        let coding = e
            .at(&["valueCodeableConcept", "coding"])
            .map(|c| (c.val(&["system"]), c.value_of("code")));
        match coding {
            Some((Some(sys::URSACHE), Some(code))) if URSACHE_VS.contains(&code) => {
                if codes.contains(&code) {
                    cx.err(
                        IssueCode::BusinessRule,
                        l,
                        format!(
                            "Ursache „{code}“: jede Ursache darf nur einmal vorkommen \
                             (-eau-anzahlUrsache)"
                        ),
                    );
                    ok = false;
                }
                codes.push(code);
            }
            other => {
                let (system, code) = other.unwrap_or_default();
                cx.err(
                    IssueCode::CodeInvalid,
                    l,
                    format!(
                        "Ursache (condition-dueTo): „{}“ aus {} ist nicht im ValueSet \
                         KBV_VS_EAU_Ursache_Type (1 Unfall, 2 Arbeitsunfall, 3 SER/Versorgungsleiden; \
                         required binding)",
                        code.unwrap_or_default(),
                        system.unwrap_or("keinem Codesystem")
                    ),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    // Three codes, each at most once: the 0..3 cardinality follows from -eau-anzahlUrsache.
    codes
        .into_iter()
        .map(|code| cx.domain(&(loc.clone() + ".extension"), Cause::parse(code)))
        .collect()
}

fn diagnoses(
    list: &[Res<'_>],
    comp: Res<'_>,
    cx: &mut Cx,
) -> (Option<Vec<Diagnosis>>, Option<u16>) {
    if !crate::domain::diagnosis_count_allowed(list.len()) {
        cx.err(
            IssueCode::BusinessRule,
            comp.loc() + ".section",
            format!(
                "{} ({} gefunden)",
                crate::domain::DIAGNOSES_COUNT,
                list.len()
            ),
        );
        return (None, None);
    }
    let mut out = Vec::new();
    let mut version: Option<u16> = None;
    let mut ok = true;
    for r in list {
        let loc = r.loc();
        let coding = r.node.child("code").and_then(|c| c.coding(sys::ICD10));
        let Some(coding) = coding else {
            cx.err(
                IssueCode::Required,
                loc + ".code.coding",
                "ICD-10-Code: Angabe fehlt",
            );
            ok = false;
            continue;
        };
        let cl = format!("{loc}.code.coding[0]");
        let code = coding.value_of("code").unwrap_or_default();
        let code = if (3..=6).contains(&code.len()) {
            cx.domain(&(cl.clone() + ".code"), Icd10Code::parse(code))
        } else {
            cx.err(
                IssueCode::Value,
                cl.clone() + ".code",
                "ICD-10-Code: 3 bis 6 Zeichen",
            );
            None
        };
        let v = coding.value_of("version").unwrap_or_default();
        let year = (v.len() == 4).then(|| v.parse::<u16>().ok()).flatten();
        match (year, version) {
            (None, _) => cx.err(
                IssueCode::Value,
                cl.clone() + ".version",
                "ICD-10-GM-Version: vierstellige Jahreszahl",
            ),
            (Some(y), Some(prev)) if y != prev => cx.err(
                IssueCode::BusinessRule,
                cl.clone() + ".version",
                "ICD-10-GM-Version: alle Diagnosen aus demselben Katalogjahr",
            ),
            (Some(y), _) => version = Some(y),
        }
        let certainty = match coding
            .extension(sys::SICHERHEIT_EX)
            .and_then(|e| e.val(&["valueCoding", "code"]))
        {
            Some(c) => cx.domain(
                &(cl.clone() + ".extension[0].valueCoding.code"),
                Certainty::parse(c),
            ),
            None => {
                cx.err(
                    IssueCode::Required,
                    cl.clone() + ".extension",
                    "Diagnosesicherheit: Angabe fehlt",
                );
                None
            }
        };
        let side = match coding
            .extension(sys::SEITE_EX)
            .and_then(|e| e.val(&["valueCoding", "code"]))
        {
            Some(s) => cx
                .domain(
                    &(cl.clone() + ".extension[1].valueCoding.code"),
                    Side::parse(s),
                )
                .map(Some),
            None => Some(None),
        };
        match (code, certainty, side) {
            (Some(code), Some(certainty), Some(side)) => out.push(Diagnosis {
                code,
                certainty,
                side,
            }),
            _ => ok = false,
        }
    }
    (ok.then_some(out), version)
}

fn measures(list: &[Res<'_>], pkv: bool, cx: &mut Cx) -> Option<Measures> {
    let mut m = Measures::default();
    let mut seen: Vec<String> = Vec::new();
    let mut ok = true;
    for r in list {
        let loc = r.loc();
        let code = r.node.child("code");
        let value = code
            .and_then(|c| c.coding(sys::SCHRITTE))
            .and_then(|c| c.value_of("code"));
        let cl = format!("{loc}.code.coding[0].code");
        let Some(v) = value else {
            cx.err(IssueCode::Required, cl, "Weitere Maßnahme: Code fehlt");
            ok = false;
            continue;
        };
        if seen.iter().any(|s| s == v) {
            cx.err(
                IssueCode::BusinessRule,
                cl.clone(),
                format!("Weitere Maßnahme „{v}“: höchstens einmal"),
            );
            ok = false;
        }
        seen.push(v.to_owned());
        if v != "sonstige" && code.and_then(|c| c.child("text")).is_some() {
            cx.err(
                IssueCode::BusinessRule,
                loc.clone() + ".code.text",
                format!(
                    "Weitere Maßnahme „{v}“: Freitext nur bei „sonstige“ zulässig \
                     (-eau-keinTextBeiAnderen)"
                ),
            );
            ok = false;
        }
        match v {
            "d_arzt" => m.d_arzt = true,
            "reha" => m.rehabilitation = true,
            "wiedereingliederung" => m.reintegration = true,
            "sonstige" => {
                let t = code.and_then(|c| c.val(&["text"]));
                match t {
                    Some(t) if !t.trim().is_empty() => {
                        m.other = cx.len(
                            Some(t),
                            &(loc.clone() + ".code.text"),
                            "Sonstige Maßnahmen",
                            70,
                        );
                        ok &= m.other.is_some();
                    }
                    _ => {
                        cx.err(
                            IssueCode::Required,
                            loc + ".code.text",
                            "Sonstige Maßnahmen: Text anzugeben",
                        );
                        ok = false;
                    }
                }
            }
            "stationaere_heilbehandlung" => {
                ok &= pkv;
                pkv_only(
                    pkv,
                    cl,
                    "Stationäre Heilbehandlung (PKV)",
                    "-eau-angabeStationaereHeilbehandlungPKV",
                    cx,
                );
            }
            other => {
                cx.err(
                    IssueCode::CodeInvalid,
                    cl,
                    format!("Weitere Maßnahme: unbekannter Code „{other}“"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(m)
}

// --- Storno (KBV_PR_EAU_Storno_Bundle) -----------------------------------------------------------

const STORNO_BUNDLE: &str = "KBV_PR_EAU_Storno_Bundle";
const STORNO_COMPOSITION: &str = "KBV_PR_EAU_Storno_Composition";
const STORNO_LIST: &str = "KBV_PR_EAU_Storno";

/// Whether a bundle declares itself a Storno (`KBV_PR_EAU_Storno_Bundle` in `meta.profile`).
fn is_storno(root: &Node) -> bool {
    let base = root
        .val(&["meta", "profile"])
        .map(|p| p.split_once('|').map_or(p, |(b, _)| b));
    root.name == "Bundle" && base.and_then(|b| b.strip_prefix(SD)) == Some(STORNO_BUNDLE)
}

/// A value as shown in an issue: quoted, cut after 40 characters.
fn shown(v: &str) -> String {
    if v.chars().count() <= 40 {
        format!("„{v}“")
    } else {
        format!("„{}…“", v.chars().take(40).collect::<String>())
    }
}

/// Where a node stands in a profile: the profile and the node's element path (`List.entry`).
#[derive(Clone, Copy)]
struct In<'a> {
    profile: &'a str,
    element: &'a str,
}

/// Elements a profile forbids (cardinality 0..0), each a path below `node`.
fn absent(node: &Node, loc: &str, paths: &[&str], at: In<'_>, cx: &mut Cx) {
    for p in paths {
        let parts: Vec<&str> = p.split('.').collect();
        if node.at(&parts).is_some() {
            cx.err(
                IssueCode::Structure,
                format!("{loc}.{p}"),
                format!(
                    "Element {}.{p}: in {} nicht zulässig (Kardinalität 0..0)",
                    at.element, at.profile
                ),
            );
        }
    }
}

/// A fixed value of a profile (`fixedCode`, `fixedString`, `fixedUri`, `fixedBoolean`); the
/// element is required as well.
fn fixed(node: &Node, loc: &str, path: &[&str], value: &str, label: &str, at: In<'_>, cx: &mut Cx) {
    let found = node.val(path);
    if found == Some(value) {
        return;
    }
    let element = path.join(".");
    let (code, found) = match found {
        None => (IssueCode::Required, "nichts".to_owned()),
        Some(v) => (IssueCode::CodeInvalid, shown(v)),
    };
    cx.err(
        code,
        format!("{loc}.{element}"),
        format!(
            "{label}: „{value}“ erwartet, {found} gefunden (Festwert {}.{element} in {})",
            at.element, at.profile
        ),
    );
}

/// The children of one name, exactly one of them (`min..1`): the one, or `None` with an issue.
fn exactly_one<'a>(
    node: &'a Node,
    loc: &str,
    name: &str,
    label: &str,
    at: In<'_>,
    cx: &mut Cx,
) -> Option<&'a Node> {
    let all: Vec<&Node> = node.children.iter().filter(|c| c.name == name).collect();
    match all.as_slice() {
        [one] => Some(one),
        [] => {
            cx.err(
                IssueCode::Required,
                format!("{loc}.{name}"),
                format!(
                    "{label}: Angabe fehlt ({}.{name} 1..1 in {})",
                    at.element, at.profile
                ),
            );
            None
        }
        more => {
            cx.err(
                IssueCode::Structure,
                format!("{loc}.{name}[1]"),
                format!(
                    "{label}: genau eine Angabe erlaubt ({}.{name} 1..1 in {}), {} gefunden",
                    at.element,
                    at.profile,
                    more.len()
                ),
            );
            None
        }
    }
}

/// An `Identifier` holding a document UUID: `system` fixed `urn:ietf:rfc:3986`, `value`
/// `urn:uuid:<UUID>` (TA P310-10), `use`/`type`/`period`/`assigner` 0..0.
fn uuid_identifier(id: &Node, loc: &str, label: &str, at: In<'_>, cx: &mut Cx) -> Option<Uuid> {
    absent(id, loc, &["use", "type", "period", "assigner"], at, cx);
    fixed(id, loc, &["system"], sys::URN, label, at, cx);
    let v = cx.req(id, loc, &["value"], label)?;
    let uuid = v
        .strip_prefix("urn:uuid:")
        .filter(|u| u.len() == 36)
        .and_then(|u| Uuid::parse_str(u).ok());
    if uuid.is_none() {
        cx.err(
            IssueCode::Value,
            format!("{loc}.value"),
            format!(
                "{label}: urn:uuid: mit einer UUID (36 Zeichen) erwartet, {} gefunden",
                shown(v)
            ),
        );
    }
    uuid
}

/// A `Reference` of the Storno (`reference` 1..1) to a resource of the bundle.
fn reference_to<'a>(
    b: &Bundle<'a>,
    node: &Node,
    loc: &str,
    resource: &str,
    label: &str,
    cx: &mut Cx,
) -> Option<Res<'a>> {
    let r = cx.req(node, loc, &["reference"], label)?;
    match b.resolve(Some(r)) {
        Some(res) if res.node.name == resource => Some(res),
        _ => {
            cx.err(
                IssueCode::Structure,
                format!("{loc}.reference"),
                format!(
                    "{label}: Referenz {} zeigt auf keine {resource}-Ressource im Bundle",
                    shown(r)
                ),
            );
            None
        }
    }
}

/// The profile version of a Storno bundle, or `None` when it is refused (a fatal issue).
fn storno_version(root: &Node, cx: &mut Cx) -> Option<String> {
    let profile = cx.req(
        root,
        "Bundle",
        &["meta", "profile"],
        "Profil (meta.profile)",
    )?;
    let version = profile.split_once('|').map_or("", |(_, v)| v);
    if ACCEPTED_VERSIONS.contains(&version) {
        return Some(version.to_owned());
    }
    let message = if version.starts_with("1.1") || version.starts_with("1.0") {
        format!(
            "Profilversion {version}: Storno wird nicht mehr angenommen – wie für die eAU gilt \
             seit 01.04.2026 nur KBV-Profil 1.2.1; bitte mit aktueller Praxissoftware neu \
             erzeugen"
        )
    } else {
        format!(
            "Profilversion {}: unbekannt, erwartet 1.2 (Regeln 1.2.1)",
            shown(version)
        )
    };
    cx.issues.push(Issue {
        severity: super::Severity::Fatal,
        code: IssueCode::NotSupported,
        location: "Bundle.meta.profile".into(),
        message,
    });
    None
}

/// A Storno bundle from its root element. A refused profile version is reported, and the
/// rest is checked all the same, so the answer names every reason at once.
fn storno(root: &Node, mut cx: Cx) -> Result<ImportedStorno, Vec<Issue>> {
    let version = storno_version(root, &mut cx);
    let parts = storno_parts(root, version.is_some(), &mut cx);
    let (errors, warnings): (Vec<Issue>, Vec<Issue>) =
        cx.issues.into_iter().partition(Issue::is_error);
    match (parts, version) {
        (Some(p), Some(profile_version)) if errors.is_empty() => Ok(ImportedStorno {
            storno_id: p.storno_id,
            cancels: p.cancels,
            cancels_location: p.cancels_location,
            issued_on: p.issued_on,
            profile_version,
            warnings,
        }),
        _ => {
            let mut all = errors;
            if all.is_empty() {
                all.push(Issue::error(
                    IssueCode::Structure,
                    "Bundle",
                    "Storno-Bundle: unvollständig, kein Storno lesbar",
                ));
            }
            all.extend(warnings);
            Err(all)
        }
    }
}

/// What a valid Storno says.
struct StornoParts {
    storno_id: Uuid,
    cancels: Uuid,
    cancels_location: String,
    issued_on: NaiveDate,
}

/// `KBV_PR_EAU_Storno_Bundle` (1.2.1): the bundle's elements, its four entries (closed slicing
/// by profile, each slice 1..1), the Composition and the List, the Practitioner and the
/// Organization (checked like an eAU's).
fn storno_parts(root: &Node, versions: bool, cx: &mut Cx) -> Option<StornoParts> {
    let p = STORNO_BUNDLE;
    let at = |element| In {
        profile: STORNO_BUNDLE,
        element,
    };
    cx.req(
        root,
        "Bundle",
        &["id"],
        "Technische ID des Bundles (Bundle.id)",
    );
    absent(
        root,
        "Bundle",
        &[
            "meta.versionId",
            "meta.source",
            "meta.security",
            "meta.tag",
            "implicitRules",
            "language",
            "total",
            "signature",
        ],
        at("Bundle"),
        cx,
    );
    closed_extensions(
        root,
        "Bundle",
        &[],
        "im Profil KBV_PR_EAU_Storno_Bundle nicht definiert",
        cx,
    );
    let storno_id = exactly_one(
        root,
        "Bundle",
        "identifier",
        "Dokumenten-ID des Stornos",
        at("Bundle"),
        cx,
    )
    .and_then(|id| {
        uuid_identifier(
            id,
            "Bundle.identifier",
            "Dokumenten-ID des Stornos (Bundle.identifier)",
            at("Bundle.identifier"),
            cx,
        )
    });
    fixed(
        root,
        "Bundle",
        &["type"],
        "document",
        "Bundle-Typ",
        at("Bundle"),
        cx,
    );
    bundle_timestamp(root, cx);
    let bundle = entries(root, cx);
    for (i, e) in root.all("entry") {
        absent(
            e,
            &format!("Bundle.entry[{i}]"),
            &["link", "search", "request", "response"],
            at("Bundle.entry"),
            cx,
        );
    }
    let count = root.all("entry").count();
    if count != 4 {
        cx.err(
            IssueCode::Structure,
            "Bundle.entry",
            format!(
                "Storno: genau vier Einträge erwartet (Composition, List, Organization, \
                 Practitioner; Bundle.entry 4..4 in {p}), {count} gefunden"
            ),
        );
    }
    for r in &bundle.all {
        entry_profile(*r, &STORNO_SLICING, versions, cx);
    }
    for (resource, profiles) in STORNO_ENTRY_PROFILES {
        let of: Vec<Res<'_>> = bundle
            .all
            .iter()
            .filter(|r| r.node.name == *resource)
            .copied()
            .collect();
        match of.as_slice() {
            [] => cx.err(
                IssueCode::Required,
                "Bundle.entry",
                format!(
                    "Storno: {resource} ({}) fehlt (geschlossenes Slicing Bundle.entry in {p}, \
                     jeder Eintrag 1..1)",
                    profiles.join(", ")
                ),
            ),
            [_] => {}
            [_, second, ..] => cx.err(
                IssueCode::Structure,
                second.loc(),
                format!(
                    "Storno: {resource} darf nur einmal vorkommen (geschlossenes Slicing \
                     Bundle.entry in {p}, jeder Eintrag 1..1)"
                ),
            ),
        }
    }
    let comp = bundle
        .all
        .iter()
        .copied()
        .find(|r| r.node.name == "Composition")?;
    if comp.index != 0 {
        cx.err(
            IssueCode::Structure,
            comp.loc(),
            "Composition: muss der erste Eintrag des Bundles sein (bdl-11)",
        );
    }
    let c = storno_composition(comp, &bundle, cx);
    let list = c
        .list
        .or_else(|| bundle.all.iter().copied().find(|r| r.node.name == "List"));
    let cancels = list.and_then(|l| storno_list(l, cx));
    // The Practitioner and the Organization of the slices, whether or not the Composition
    // points at them (a wrong reference is an issue of its own).
    let first = |name: &str| bundle.all.iter().copied().find(|r| r.node.name == name);
    if let Some(r) = c.author.or_else(|| first("Practitioner")) {
        practitioner(r, false, false, cx);
    }
    if let Some(r) = c.custodian.or_else(|| first("Organization")) {
        organization(r, cx);
    }
    let (cancels, cancels_location) = cancels?;
    let storno_id = storno_id?;
    if cancels == storno_id {
        cx.err(
            IssueCode::BusinessRule,
            cancels_location.clone(),
            "Dokumenten-ID der stornierten eAU: gleich der Dokumenten-ID des Stornos \
             (Bundle.identifier); der Storno braucht eine eigene UUID (TA P310-10)",
        );
    }
    Some(StornoParts {
        storno_id,
        cancels,
        cancels_location,
        issued_on: c.issued_on?,
    })
}

/// What the Storno Composition says and points at.
struct StornoComposition<'a> {
    issued_on: Option<NaiveDate>,
    author: Option<Res<'a>>,
    custodian: Option<Res<'a>>,
    list: Option<Res<'a>>,
}

/// `KBV_PR_EAU_Storno_Composition` (1.2.1, TA P310-12).
fn storno_composition<'a>(r: Res<'a>, b: &Bundle<'a>, cx: &mut Cx) -> StornoComposition<'a> {
    let (n, loc) = (r.node, r.loc());
    let at = |element| In {
        profile: STORNO_COMPOSITION,
        element,
    };
    cx.req(
        n,
        &loc,
        &["id"],
        "Technische ID der Composition (Composition.id)",
    );
    absent(
        n,
        &loc,
        &[
            "meta.versionId",
            "meta.lastUpdated",
            "meta.source",
            "meta.security",
            "meta.tag",
            "implicitRules",
            "language",
            "text",
            "contained",
            "identifier",
            "category",
            "subject",
            "encounter",
            "confidentiality",
            "attester",
            "relatesTo",
            "event",
        ],
        at("Composition"),
        cx,
    );
    closed_extensions(
        n,
        &loc,
        &[],
        "im Profil KBV_PR_EAU_Storno_Composition nicht definiert",
        cx,
    );
    fixed(
        n,
        &loc,
        &["status"],
        "final",
        "Status der Composition",
        at("Composition"),
        cx,
    );
    let tl = loc.clone() + ".type";
    match n.child("type") {
        None => cx.err(
            IssueCode::Required,
            tl.clone(),
            "Formularart (Composition.type): Angabe fehlt",
        ),
        Some(ty) => storno_type(ty, &tl, cx),
    }
    let date = cx.req(n, &loc, &["date"], "Datum der Stornierung");

    let issued_on = cx.date(date, &(loc.clone() + ".date"), "Datum der Stornierung");
    let author = exactly_one(
        n,
        &loc,
        "author",
        "Ausstellende Person",
        at("Composition"),
        cx,
    )
    .and_then(|a| {
        let al = loc.clone() + ".author[0]";
        absent(
            a,
            &al,
            &["identifier", "display"],
            at("Composition.author"),
            cx,
        );
        fixed(
            a,
            &al,
            &["type"],
            "Practitioner",
            "Ausstellende Person (author.type)",
            at("Composition.author"),
            cx,
        );
        reference_to(
            b,
            a,
            &al,
            "Practitioner",
            "Ausstellende Person (author)",
            cx,
        )
    });
    fixed(
        n,
        &loc,
        &["title"],
        "Storno eAU",
        "Titel der Composition",
        at("Composition"),
        cx,
    );
    let custodian = exactly_one(
        n,
        &loc,
        "custodian",
        "Einrichtung (custodian)",
        at("Composition"),
        cx,
    )
    .and_then(|c| {
        let cl = loc.clone() + ".custodian";
        absent(
            c,
            &cl,
            &["type", "identifier", "display"],
            at("Composition.custodian"),
            cx,
        );
        reference_to(b, c, &cl, "Organization", "Einrichtung (custodian)", cx)
    });
    let list = exactly_one(
        n,
        &loc,
        "section",
        "Abschnitt des Stornos",
        at("Composition"),
        cx,
    )
    .and_then(|s| {
        let sl = loc.clone() + ".section[0]";
        absent(
            s,
            &sl,
            &[
                "title",
                "code",
                "author",
                "focus",
                "text",
                "mode",
                "orderedBy",
                "emptyReason",
                "section",
            ],
            at("Composition.section"),
            cx,
        );
        let e = exactly_one(
            s,
            &sl,
            "entry",
            "Verweis auf die Storno-Liste",
            at("Composition.section"),
            cx,
        )?;
        let el = sl + ".entry[0]";
        absent(
            e,
            &el,
            &["type", "identifier", "display"],
            at("Composition.section.entry"),
            cx,
        );
        reference_to(
            b,
            e,
            &el,
            "List",
            "Verweis auf die Storno-Liste (section.entry)",
            cx,
        )
    });
    StornoComposition {
        issued_on,
        author,
        custodian,
        list,
    }
}

/// `Composition.type` of a Storno: one coding, `KBV_CS_SFHIR_KBV_FORMULAR_ART#e013`.
fn storno_type(ty: &Node, tl: &str, cx: &mut Cx) {
    let at = |element| In {
        profile: STORNO_COMPOSITION,
        element,
    };
    if let Some(coding) = exactly_one(ty, tl, "coding", "Formularart", at("Composition.type"), cx) {
        let cl = format!("{tl}.coding[0]");
        fixed(
            coding,
            &cl,
            &["system"],
            sys::FORMULAR_ART,
            "Formularart (Codesystem)",
            at("Composition.type.coding"),
            cx,
        );
        fixed(
            coding,
            &cl,
            &["code"],
            "e013",
            "Formularart",
            at("Composition.type.coding"),
            cx,
        );
        absent(
            coding,
            &cl,
            &["version", "display", "userSelected"],
            at("Composition.type.coding"),
            cx,
        );
    }
    absent(ty, tl, &["text"], at("Composition.type"), cx);
}

/// `KBV_PR_EAU_Storno` (1.2.1, TA P310-11): the one entry, deleted, naming the eAU by its
/// `Bundle.identifier`. Returns that UUID and where it stands.
fn storno_list(r: Res<'_>, cx: &mut Cx) -> Option<(Uuid, String)> {
    let (n, loc) = (r.node, r.loc());
    let at = |element| In {
        profile: STORNO_LIST,
        element,
    };
    cx.req(n, &loc, &["id"], "Technische ID der Storno-Liste (List.id)");
    absent(
        n,
        &loc,
        &[
            "meta.versionId",
            "meta.lastUpdated",
            "meta.source",
            "meta.security",
            "meta.tag",
            "implicitRules",
            "language",
            "text",
            "contained",
            "identifier",
            "title",
            "code",
            "subject",
            "encounter",
            "date",
            "source",
            "orderedBy",
            "note",
            "emptyReason",
        ],
        at("List"),
        cx,
    );
    closed_extensions(
        n,
        &loc,
        &[],
        "im Profil KBV_PR_EAU_Storno nicht definiert",
        cx,
    );
    fixed(
        n,
        &loc,
        &["status"],
        "current",
        "Status der Storno-Liste",
        at("List"),
        cx,
    );
    fixed(
        n,
        &loc,
        &["mode"],
        "changes",
        "Modus der Storno-Liste",
        at("List"),
        cx,
    );
    let e = exactly_one(n, &loc, "entry", "Storno-Eintrag", at("List"), cx)?;
    let el = loc + ".entry[0]";
    absent(e, &el, &["flag", "date"], at("List.entry"), cx);
    fixed(
        e,
        &el,
        &["deleted"],
        "true",
        "Storno-Kennzeichen (List.entry.deleted)",
        at("List.entry"),
        cx,
    );
    let label = "Dokumenten-ID der stornierten eAU (List.entry.item.identifier.value)";
    let item = exactly_one(e, &el, "item", label, at("List.entry"), cx)?;
    let il = el + ".item";
    absent(
        item,
        &il,
        &["reference", "type", "display"],
        at("List.entry.item"),
        cx,
    );
    let id = exactly_one(item, &il, "identifier", label, at("List.entry.item"), cx)?;
    let idl = il + ".identifier";
    let uuid = uuid_identifier(id, &idl, label, at("List.entry.item.identifier"), cx)?;
    Some((uuid, idl + ".value"))
}
