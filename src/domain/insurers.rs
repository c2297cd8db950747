//! The insurer directory of the capture form's lookup: the KBV Kostenträgerstammdatei (SDKT)
//! as `scripts/update-sdkt.py` writes it (`assets/sdkt/README.md`), one row per IK of each
//! Kostenträger: `ik;name;short_name;valid_from;valid_to;search_name;group`.

use chrono::NaiveDate;

use super::InsurerIk;

/// One IK of a Kostenträger and when the SDKT lists it as valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsurerEntry {
    pub ik: String,
    pub name: String,
    pub short_name: String,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    /// Lower-case name, short name and search name, for matching.
    haystack: String,
}

/// What the directory says of an IK on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkStatus {
    /// Not in the directory (or no directory loaded): nothing to say.
    Unknown,
    Valid,
    /// Listed, but every row of it ended: the last day it was valid.
    Expired(NaiveDate),
}

impl IkStatus {
    /// The German warning for staff, if any.
    pub fn warning(&self) -> Option<String> {
        match self {
            Self::Expired(until) => Some(format!(
                "Kostenträgerkennung (IK): laut Kostenträgerstammdatei nur bis {} gültig – bitte die Krankenkasse auf der Versichertenkarte prüfen",
                until.format("%d.%m.%Y")
            )),
            Self::Unknown | Self::Valid => None,
        }
    }
}

/// The loaded directory; empty when no SDKT file is configured.
#[derive(Debug, Clone, Default)]
pub struct InsurerDirectory {
    entries: Vec<InsurerEntry>,
}

/// Why a directory file was refused.
#[derive(Debug, thiserror::Error)]
#[error("Kostenträgerstammdatei, Zeile {line}: {reason}")]
pub struct DirectoryError {
    pub line: usize,
    pub reason: String,
}

const HEADER: &str = "ik;name;short_name;valid_from;valid_to;search_name;group";

impl InsurerDirectory {
    /// Reads the CSV of `scripts/update-sdkt.py`. Rows whose IK fails its check digit are
    /// kept out (the form would refuse them anyway).
    pub fn parse(text: &str) -> Result<Self, DirectoryError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, header)) if header.trim_start_matches('\u{feff}') == HEADER => {}
            _ => {
                return Err(DirectoryError {
                    line: 1,
                    reason: format!("Kopfzeile {HEADER} erwartet"),
                })
            }
        }
        let mut entries = Vec::new();
        for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
            let err = |reason: &str| DirectoryError {
                line: n + 1,
                reason: reason.to_owned(),
            };
            let cols: Vec<&str> = line.split(';').collect();
            let [ik, name, short_name, from, to, search, _group] = cols[..] else {
                return Err(err("7 Spalten erwartet"));
            };
            let date = |s: &str| -> Result<Option<NaiveDate>, DirectoryError> {
                match s.trim() {
                    "" => Ok(None),
                    d => d
                        .parse()
                        .map(Some)
                        .map_err(|_| err("Datum als JJJJ-MM-TT erwartet")),
                }
            };
            let (valid_from, valid_to) = (date(from)?, date(to)?);
            if InsurerIk::parse(ik).is_err() {
                continue;
            }
            entries.push(InsurerEntry {
                haystack: format!("{name} {short_name} {search}").to_lowercase(),
                ik: ik.to_owned(),
                name: name.to_owned(),
                short_name: short_name.to_owned(),
                valid_from,
                valid_to,
            });
        }
        Ok(Self { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries whose name contains every word of `query` (any case), or whose IK starts with
    /// its digits; those valid on `today` first, then by name; at most `limit`.
    pub fn search(&self, query: &str, today: NaiveDate, limit: usize) -> Vec<&InsurerEntry> {
        let query = query.trim().to_lowercase();
        if query.is_empty() {
            return Vec::new();
        }
        let digits = query.chars().all(|c| c.is_ascii_digit());
        let words: Vec<&str> = query.split_whitespace().collect();
        let mut found: Vec<&InsurerEntry> = self
            .entries
            .iter()
            .filter(|e| {
                if digits {
                    e.ik.starts_with(&query)
                } else {
                    words.iter().all(|w| e.haystack.contains(w))
                }
            })
            .collect();
        found.sort_by(|a, b| {
            (!a.valid_on(today), &a.name, &a.ik).cmp(&(!b.valid_on(today), &b.name, &b.ik))
        });
        found.dedup_by(|a, b| a.ik == b.ik && a.name == b.name);
        found.truncate(limit);
        found
    }

    /// What the directory says of `ik` on `today`.
    pub fn status(&self, ik: &str, today: NaiveDate) -> IkStatus {
        let rows: Vec<&InsurerEntry> = self.entries.iter().filter(|e| e.ik == ik).collect();
        if rows.is_empty() {
            return IkStatus::Unknown;
        }
        if rows.iter().any(|e| e.valid_on(today)) {
            return IkStatus::Valid;
        }
        // Listed only for the future is no expiry; the last end is what staff need to read.
        match rows
            .iter()
            .filter_map(|e| e.valid_to)
            .filter(|t| *t < today)
            .max()
        {
            Some(until) if rows.iter().all(|e| e.valid_to.is_some_and(|t| t < today)) => {
                IkStatus::Expired(until)
            }
            _ => IkStatus::Valid,
        }
    }
}

impl InsurerEntry {
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| f <= day) && self.valid_to.is_none_or(|t| t >= day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "ik;name;short_name;valid_from;valid_to;search_name;group
101317004;AOK NORDWEST Bereich Schleswig-Holstein;AOK NORDWEST - SH;1994-01-01;2017-09-30;AOK NORDWEST Bereich Schleswig-Holstein;01
101575519;Techniker Krankenkasse;TK;1996-01-01;;Techniker;11
104212058;Kasse mit falscher Prüfziffer;KfP;1994-07-01;;Kasse;04
109500969;AOK Niedersachsen;AOK Nds.;1994-07-01;;AOK Niedersachsen;01
";

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn typing_part_of_the_name_offers_the_ik() {
        let dir = InsurerDirectory::parse(SAMPLE).unwrap();
        let today = day("2026-12-07");
        let hits = dir.search("AOK Nieder", today, 10);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].ik, "109500969");
        assert_eq!(dir.search("nds", today, 10)[0].ik, "109500969");
        assert_eq!(dir.search("1095", today, 10)[0].name, "AOK Niedersachsen");
        // The valid one comes before the expired one.
        let aok: Vec<&str> = dir
            .search("aok", today, 10)
            .iter()
            .map(|e| e.ik.as_str())
            .collect();
        assert_eq!(aok, ["109500969", "101317004"]);
        assert!(dir.search("  ", today, 10).is_empty());
    }

    #[test]
    fn an_ik_with_a_wrong_check_digit_is_not_offered() {
        let dir = InsurerDirectory::parse(SAMPLE).unwrap();
        assert!(dir.search("Prüfziffer", day("2026-12-07"), 10).is_empty());
        assert_eq!(dir.len(), 3);
    }

    #[test]
    fn an_expired_ik_is_a_warning() {
        let dir = InsurerDirectory::parse(SAMPLE).unwrap();
        let today = day("2026-12-07");
        let status = dir.status("101317004", today);
        assert_eq!(status, IkStatus::Expired(day("2017-09-30")));
        assert!(status
            .warning()
            .unwrap()
            .contains("nur bis 30.09.2017 gültig"));
        assert_eq!(dir.status("109500969", today), IkStatus::Valid);
        assert_eq!(dir.status("108018007", today), IkStatus::Unknown);
        assert_eq!(dir.status("101317004", day("2017-09-30")), IkStatus::Valid);
    }

    #[test]
    fn a_file_of_another_shape_is_refused_with_its_line() {
        let e = InsurerDirectory::parse("ik;name\n1;2\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = InsurerDirectory::parse(&format!("{HEADER}\n109500969;AOK;x;2020-13-01;;a;01\n"))
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("Zeile 2"));
    }
}
