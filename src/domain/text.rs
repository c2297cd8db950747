//! Which characters a line of text on a certificate may hold (names, street, city, insurer,
//! notes): decided once here, for capture, the JSON API and the FHIR import alike.
//!
//! Refused, never silently dropped: control characters (NUL breaks PostgreSQL text; tabs and
//! line breaks have no place on a one-line field of the Muster 1 form) and the invisible
//! formatting characters (zero-width space and joiners, bidirectional overrides, the byte
//! order mark, soft hyphen, tag characters) that would make two equal-looking names differ or
//! turn a name around on screen. Also noncharacters and private-use code points, which no
//! copy can print.

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

#[cfg(test)]
mod tests {
    use super::*;

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
