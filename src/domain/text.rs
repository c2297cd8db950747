//! Which characters a line of text on a certificate may hold (names, street, city, insurer,
//! notes): decided once here, for capture, the JSON API and the FHIR import alike.
//!
//! Refused, never silently dropped: control characters (NUL breaks PostgreSQL text; tabs and
//! line breaks have no place on a one-line field of the Muster 1 form) and the invisible
//! formatting characters (zero-width space and joiners, bidirectional overrides, the byte
//! order mark, soft hyphen, tag characters) that would make two equal-looking names differ or
//! turn a name around on screen. Also noncharacters and private-use code points, which no
//! copy can print.

//!
//! What a certificate may hold is wider than what its paper copies can print: names in Greek,
//! Cyrillic or Vietnamese are real names and are stored as written. Paper is decided here too,
//! once: [`for_paper`] is the text the copies print (characters the embedded font lacks are
//! transliterated, `Иванова` → `Ivanova`), [`for_barcode`] the text the PDF417 of the KK copy
//! carries in ISO 8859-15 (typographic marks to their ASCII form, `–` → `-`, `„“` → `"`;
//! letters without a Latin-9 code to their base letter, `ł` → `l`). Both are total, so every
//! stored certificate prints all three copies.

use std::borrow::Cow;

use super::DomainError;

/// Whether a character is refused on a certificate.
fn refused(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'                 // soft hyphen
            | '\u{061C}'               // Arabic letter mark
            | '\u{115F}' | '\u{1160}'  // Hangul fillers
            | '\u{180E}'               // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'  // zero-width space, joiners, LRM/RLM
            | '\u{2028}'..='\u{202E}'  // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{206F}'  // word joiner, invisible operators, bidi isolates
            | '\u{3164}'               // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'  // variation selectors
            | '\u{FEFF}'               // byte order mark / zero-width no-break space
            | '\u{FFA0}'               // halfwidth Hangul filler
            | '\u{FFF0}'..='\u{FFFF}'  // specials, noncharacters
            | '\u{E000}'..='\u{F8FF}'  // private use
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
            | '\u{F0000}'..='\u{10FFFF}' // supplementary private use
        )
        || (u32::from(c) & 0xFFFE) == 0xFFFE // noncharacters U+xFFFE/U+xFFFF of every plane
}

/// NUL and the other C0/C1 control characters, except tab, CR and LF: what no value of any
/// body may hold (multi-line text keeps its line breaks). XML 1.0 allows no other either.
pub fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// Whether a value holds no control or invisible character.
pub fn is_clean(value: &str) -> bool {
    !value.chars().any(refused)
}

/// Refuses a value with a control or invisible character, naming the field.
pub fn check_characters(label: &'static str, value: &str) -> Result<(), DomainError> {
    if !is_clean(value) {
        Err(DomainError::Characters(label))
    } else {
        Ok(())
    }
}

/// A required one-line text of at most `max` characters, trimmed.
pub fn line(label: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::Required(label));
    }
    check_characters(label, v)?;
    if v.chars().count() > max {
        return Err(DomainError::TooLong(label, max));
    }
    Ok(v.to_owned())
}

/// Whether the paper copies' embedded font has the character (`assets/fonts/README.md`).
fn printable(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{7E}'
        | '\u{A0}'..='\u{17F}'
        | '\u{218}'..='\u{21B}'
        | '\u{2C6}'..='\u{2DD}'
        | '\u{2010}'..='\u{2027}'
        | '\u{2030}'
        | '\u{2039}'
        | '\u{203A}'
        | '\u{20AC}'
        | '\u{2122}'
        | '\u{2610}'..='\u{2612}'
        | '\u{FFFD}'
    )
}

/// Whether ISO 8859-15 has the character: Latin-1 without the eight code points it replaced
/// (¤ ¦ ¨ ´ ¸ ¼ ½ ¾), and the eight it put there (€ Š š Ž ž Œ œ Ÿ).
fn latin9(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{A3}'
        | '\u{A5}'
        | '\u{A7}'
        | '\u{A9}'..='\u{B3}'
        | '\u{B5}'..='\u{B7}'
        | '\u{B9}'..='\u{BB}'
        | '\u{BF}'..='\u{FF}'
        | '€' | 'Š' | 'š' | 'Ž' | 'ž' | 'Œ' | 'œ' | 'Ÿ'
    )
}

/// The ASCII form of a typographic mark, as a typewriter would write it.
fn typographic(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{2027}' | '•' | '\u{2043}' => "-",
        '‘' | '’' | '‚' | '‛' | '′' => "'",
        '“' | '”' | '„' | '‟' | '″' => "\"",
        '‹' => "<",
        '›' => ">",
        '…' => "...",
        '‥' => "..",
        '․' => ".",
        '‖' => "||",
        '‗' => "_",
        '†' => "+",
        '‡' => "++",
        '‰' => "o/oo",
        '™' => "TM",
        '☐' => "[ ]",
        '☑' | '☒' => "[x]",
        '\u{FFFD}' => "?",
        _ => return None,
    })
}

/// `s` with every character that `keep` refuses replaced: typographic marks by their ASCII
/// form, letters and other scripts by their transliteration, anything else by `?`.
fn transliterate(s: &str, keep: fn(char) -> bool) -> Cow<'_, str> {
    if s.chars().all(keep) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if keep(c) {
            out.push(c);
        } else if let Some(ascii) = typographic(c) {
            out.push_str(ascii);
        } else {
            // A combining mark has no form of its own (an empty one): it is dropped.
            out.push_str(deunicode::deunicode_char(c).map_or("?", str::trim));
        }
    }
    Cow::Owned(out)
}

/// The text as the paper copies print it: what the embedded font has stays, the rest is
/// transliterated (`Иванова` → `Ivanova`, `李` → `Li`).
pub fn for_paper(s: &str) -> Cow<'_, str> {
    transliterate(s, printable)
}

/// The text as the PDF417 carries it in ISO 8859-15: `–` → `-`, `„“` → `"`, `ł` → `l`,
/// `Νίκος` → `Nikos`; what Latin-9 has stays (ä ö ü ß é € Š …).
pub fn for_barcode(s: &str) -> Cow<'_, str> {
    transliterate(s, latin9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_barcode_carries_typographic_marks_and_foreign_letters_in_latin9() {
        assert_eq!(for_barcode("„Knie“ – links"), "\"Knie\" - links");
        assert_eq!(
            for_barcode("d’Alembert … Łódź"),
            "d'Alembert ... Lódz",
            "ó is Latin-9"
        );
        assert_eq!(for_barcode("Ș ț ğ ő"), "S t g o");
        assert_eq!(for_barcode("Иванова"), "Ivanova");
        assert_eq!(for_barcode("Νίκος"), "Nikos");
        assert_eq!(for_barcode("李"), "Li");
        for kept in ["Müller-Lüdenscheidt, Straße", "Œuvre Š € Ÿ", "½ ¼"] {
            let out = for_barcode(kept);
            assert!(out.chars().all(latin9), "{out}");
        }
        assert_eq!(for_barcode("Müller €"), "Müller €");
        assert!(matches!(for_barcode("Müller"), Cow::Borrowed(_)));
        // ½ is Latin-1 but not Latin-9.
        assert_eq!(for_barcode("½"), "1/2");
    }

    #[test]
    fn paper_keeps_what_the_font_has_and_transliterates_the_rest() {
        assert_eq!(for_paper("„Knie“ – Łódź, Ș"), "„Knie“ – Łódź, Ș");
        assert_eq!(for_paper("Иванова, Νίκος"), "Ivanova, Nikos");
        assert_eq!(for_paper("Nguyễn"), "Nguyen");
        assert!(matches!(for_paper("Müller"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_clean_text_has_a_paper_and_a_barcode_form() {
        // Every assigned code point of the Basic Multilingual Plane that a certificate accepts.
        let all: String = ('\u{20}'..='\u{FFFD}').filter(|c| !refused(*c)).collect();
        assert!(for_barcode(&all).chars().all(latin9));
        assert!(for_paper(&all).chars().all(printable));
    }

    #[test]
    fn names_people_have_pass() {
        for name in [
            "Müller-Lüdenscheidt",
            "O'Brien",
            "Łukasz Żółć",
            "Ærøskøbing",
            "Straße 1a",
            "Νίκος",
            "Иванова",
            "Nguyễn",
            "李",
            "d’Alembert",
        ] {
            assert_eq!(line("Name", name, 45).unwrap(), name);
        }
    }

    #[test]
    fn control_and_invisible_characters_are_refused() {
        for bad in [
            "Mül\0ler",
            "Tab\there",
            "Zeile\nzwei",
            "\u{7}",
            "Mü\u{85}ller",
            "Mu\u{200B}ller",
            "Mu\u{200D}ller",
            "\u{202E}rellüM",
            "\u{2066}x",
            "\u{FEFF}Müller",
            "Mül\u{AD}ler",
            "x\u{E000}",
            "x\u{FFFE}",
            "x\u{1FFFF}",
            "x\u{E0041}",
            "x\u{2028}y",
            "x\u{FE0F}",
        ] {
            assert_eq!(
                line("Name", bad, 45),
                Err(DomainError::Characters("Name")),
                "{bad:?}"
            );
        }
        assert_eq!(line("Name", "  ", 45), Err(DomainError::Required("Name")));
        assert_eq!(
            line("Name", &"x".repeat(46), 45),
            Err(DomainError::TooLong("Name", 45))
        );
    }
}
