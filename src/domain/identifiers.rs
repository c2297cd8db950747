//! Identifiers of the German statutory health system, each validated on construction
//! (DOMAIN.md §4). A value of these types that exists is valid.

use std::fmt;

use super::DomainError;

fn digits_of(s: &str) -> Option<Vec<u32>> {
    s.chars().map(|c| c.to_digit(10)).collect()
}

fn cross_sum(p: u32) -> u32 {
    if p > 9 {
        p - 9
    } else {
        p
    }
}

/// Lifelong insurance number (Krankenversichertennummer, 10 chars): letter + 8 digits + check digit.
///
/// Check digit: letter as its 2-digit alphabet position, then the ten digits weighted 1,2,1,2,…
/// from the left, products reduced to their cross sum, sum mod 10.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Kvnr(String);

impl Kvnr {
    /// Parses a KVNR as typed (the letter in any case: `a123456780`) and enforces its check
    /// digit.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.trim().to_ascii_uppercase();
        let structural = Self::parse_structure(&s)?;
        if structural.check_digit_ok() {
            Ok(structural)
        } else {
            Err(DomainError::CheckDigit("Versicherten-Nr."))
        }
    }

    /// Parses a KVNR checking only its shape (letter + 9 digits), not the check digit.
    /// Used for imported KBV bundles: the official KBV examples (`X234567890`) fail the check
    /// digit and the profiles do not enforce it.
    pub fn parse_structure(input: &str) -> Result<Self, DomainError> {
        let s = input.trim();
        let mut chars = s.chars();
        let first = chars
            .next()
            .ok_or(DomainError::Required("Versicherten-Nr."))?;
        let rest: String = chars.collect();
        if s.chars().count() != 10 || !first.is_ascii_uppercase() || digits_of(&rest).is_none() {
            return Err(DomainError::Format(
                "Versicherten-Nr.",
                "ein Großbuchstabe und neun Ziffern, z. B. A123456780",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The check digit the first nine characters call for.
    pub fn expected_check_digit(&self) -> u32 {
        let letter = self.0.as_bytes()[0] - b'A' + 1;
        let mut digits = vec![u32::from(letter / 10), u32::from(letter % 10)];
        digits.extend(self.0[1..9].chars().filter_map(|c| c.to_digit(10)));
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, d)| cross_sum(d * if i % 2 == 0 { 1 } else { 2 }))
            .sum();
        sum % 10
    }

    /// Whether the last digit matches the computed check digit.
    pub fn check_digit_ok(&self) -> bool {
        self.0[9..].chars().next().and_then(|c| c.to_digit(10)) == Some(self.expected_check_digit())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Institutionskennzeichen of an insurer (9 digits); check digit over digits 3–8, weights
/// 2,1,2,1,2,1, cross sums, sum mod 10 (Gemeinsames Rundschreiben IK).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InsurerIk(String);

impl InsurerIk {
    /// Nine digits, check digit not verified. Used for imported KBV bundles: the KBV examples
    /// carry IKs such as `123456789` and `278600000` that fail the check digit (a warning there).
    pub fn parse_structure(input: &str) -> Result<Self, DomainError> {
        let s = input.trim();
        digits_of(s)
            .filter(|d| d.len() == 9)
            .ok_or(DomainError::Format(
                "Kostenträgerkennung (IK)",
                "genau neun Ziffern",
            ))?;
        Ok(Self(s.to_owned()))
    }

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        const FIELD: &str = "Kostenträgerkennung (IK)";
        let s = input.trim();
        let d = digits_of(s)
            .filter(|d| d.len() == 9)
            .ok_or(DomainError::Format(FIELD, "genau neun Ziffern"))?;
        let sum: u32 = d[2..8]
            .iter()
            .enumerate()
            .map(|(i, x)| cross_sum(x * if i % 2 == 0 { 2 } else { 1 }))
            .sum();
        if sum % 10 != d[8] {
            return Err(DomainError::CheckDigit(FIELD));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lebenslange Arztnummer `nnnnnnmff` (KVDT rule 050): check digit `m` over the first six digits
/// with weights 4,9,4,9,4,9, `m = (10 − sum mod 10) mod 10`. Pseudo numbers `999999900`,
/// `555555nff`, `444444400`… and `333333300`… are accepted as documented by the KBV.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Lanr(String);

impl Lanr {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        const FIELD: &str = "Arzt-Nr. (LANR)";
        let s = input.trim();
        let d = digits_of(s)
            .filter(|d| d.len() == 9)
            .ok_or(DomainError::Format(FIELD, "genau neun Ziffern"))?;
        if s == "888888800" {
            return Err(DomainError::Format(
                FIELD,
                "888888800 ist nicht mehr zulässig",
            ));
        }
        let pseudo = s == "999999900"
            || s.starts_with("555555")
            || s.starts_with("4444444")
            || s.starts_with("3333333");
        if !pseudo && Self::check_digit(&d) != d[6] {
            return Err(DomainError::CheckDigit(FIELD));
        }
        Ok(Self(s.to_owned()))
    }

    fn check_digit(d: &[u32]) -> u32 {
        let sum: u32 = d[..6]
            .iter()
            .enumerate()
            .map(|(i, x)| x * if i % 2 == 0 { 4 } else { 9 })
            .sum();
        (10 - sum % 10) % 10
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Betriebsstättennummer `kknnnnnmm` (KVDT rules 049/061/062): 9 digits, `kk` a KV region
/// (or the special forms `35…` for § 75 Abs. 1a hospitals and `74…` for SAPV). No check digit.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bsnr(String);

const KV_REGIONS: &[(u32, u32)] = &[
    (1, 3),
    (6, 21),
    (24, 25),
    (27, 28),
    (31, 31),
    (37, 73),
    (78, 81),
    (83, 83),
    (85, 88),
    (93, 96),
    (98, 99),
];

const BSNR_FIELD: &str = "Betriebsstätten-Nr. (BSNR)";

impl Bsnr {
    /// Nine digits only. The KBV eAU examples use `345678901`, whose `34` is no KV region, so
    /// imported bundles are read by structure; master data entered here must pass [`Bsnr::parse`].
    pub fn parse_structure(input: &str) -> Result<Self, DomainError> {
        let s = input.trim();
        digits_of(s)
            .filter(|d| d.len() == 9)
            .ok_or(DomainError::Format(BSNR_FIELD, "genau neun Ziffern"))?;
        Ok(Self(s.to_owned()))
    }

    /// Nine digits whose first two are a KV region (or the special forms 35…, 74…).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        const FIELD: &str = BSNR_FIELD;
        let s = input.trim();
        let d = digits_of(s)
            .filter(|d| d.len() == 9)
            .ok_or(DomainError::Format(FIELD, "genau neun Ziffern"))?;
        let kk = d[0] * 10 + d[1];
        let region_ok = KV_REGIONS.iter().any(|(lo, hi)| (*lo..=*hi).contains(&kk));
        if !(region_ok || kk == 35 || kk == 74) {
            return Err(DomainError::Format(
                FIELD,
                "die ersten zwei Ziffern müssen ein KV-Bereich sein",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_and_redacted_debug {
    ($($t:ident => $redact:expr),* $(,)?) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if $redact {
                    write!(f, concat!(stringify!($t), "(***)"))
                } else {
                    write!(f, concat!(stringify!($t), "({})"), self.0)
                }
            }
        }
    )*};
}

// The KVNR identifies a patient: health data, never printed by Debug (and so never in logs).
display_and_redacted_debug!(Kvnr => true, InsurerIk => false, Lanr => false, Bsnr => false);

/// Serde as plain strings. Deserialising re-validates with the given parser, so a stored or
/// received value can never bypass the rules. A stored KVNR or IK is read by its structure only:
/// an imported KBV bundle may legitimately carry one that fails the check digit.
macro_rules! serde_as_string {
    ($($t:ident => $parse:path),* $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_string!(
    Kvnr => Kvnr::parse_structure,
    InsurerIk => InsurerIk::parse_structure,
    Lanr => Lanr::parse,
    Bsnr => Bsnr::parse_structure,
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kvnr_test_vectors_from_domain_md() {
        assert!(Kvnr::parse("A123456780").is_ok());
        assert!(Kvnr::parse("X110411675").is_ok());
        assert_eq!(
            Kvnr::parse("X110411674"),
            Err(DomainError::CheckDigit("Versicherten-Nr."))
        );
        assert!(Kvnr::parse("A123456781").is_err());
        // The official KBV example KVNR fails the check digit (computed 1) …
        assert!(Kvnr::parse("X234567890").is_err());
        let kbv = Kvnr::parse_structure("X234567890").unwrap();
        assert_eq!(kbv.expected_check_digit(), 1);
        assert!(Kvnr::parse("G995030567").is_err());
    }

    #[test]
    fn kvnr_shape_errors() {
        for bad in ["", "A12345678", "A1234567800", "ÄA23456780", "1234567890"] {
            assert!(Kvnr::parse(bad).is_err(), "{bad}");
        }
        // Typed in lower case: read as the upper-case KVNR; an imported one is read strictly.
        assert!(Kvnr::parse("a123456780").is_ok());
        assert!(Kvnr::parse_structure("a123456780").is_err());
    }

    #[test]
    fn ik_test_vectors_from_domain_md() {
        assert!(InsurerIk::parse("260326822").is_ok());
        assert!(InsurerIk::parse("104212059").is_ok());
        assert!(InsurerIk::parse("100696012").is_ok());
        assert!(InsurerIk::parse("104212058").is_err());
        assert!(InsurerIk::parse("260326823").is_err());
        assert!(InsurerIk::parse("10421205").is_err());
    }

    #[test]
    fn lanr_test_vectors_from_domain_md() {
        for ok in [
            "838382202",
            "123456699",
            "999999900",
            "444444400",
            "555555100",
        ] {
            assert!(Lanr::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["838382302", "123456799", "888888800", "12345669"] {
            assert!(Lanr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bsnr_formats() {
        for ok in [
            "010123499",
            "031234567",
            "351234567",
            "741234563",
            "981234500",
        ] {
            assert!(Bsnr::parse(ok).is_ok(), "{ok}");
        }
        // The KBV eAU examples' BSNR has no KV region: readable by structure only.
        assert!(Bsnr::parse("345678901").is_err());
        assert!(Bsnr::parse_structure("345678901").is_ok());
        assert!(Bsnr::parse_structure("34567890").is_err());
        for bad in [
            "041234567",
            "001234567",
            "03123456",
            "0312345678",
            "03123456x",
        ] {
            assert!(Bsnr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kvnr_debug_never_shows_the_number() {
        let k = Kvnr::parse("A123456780").unwrap();
        assert!(!format!("{k:?}").contains("123456"));
    }

    fn kvnr_with_check(prefix: &str) -> String {
        let probe = Kvnr::parse_structure(&format!("{prefix}0")).unwrap();
        format!("{prefix}{}", probe.expected_check_digit())
    }

    fn ik_with_check(prefix: &[u32]) -> String {
        let sum: u32 = prefix[2..8]
            .iter()
            .enumerate()
            .map(|(i, x)| cross_sum(x * if i % 2 == 0 { 2 } else { 1 }))
            .sum();
        prefix
            .iter()
            .chain([sum % 10].iter())
            .map(|d| d.to_string())
            .collect()
    }

    fn replace_digit(s: &str, pos: usize, new: char) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| if i == pos { new } else { c })
            .collect()
    }

    proptest! {
        #[test]
        fn every_generated_kvnr_parses_and_every_single_digit_change_is_rejected(
            letter in proptest::char::range('A', 'Z'),
            body in "[0-9]{8}",
            pos in 1usize..10,
            delta in 1u32..10,
        ) {
            let valid = kvnr_with_check(&format!("{letter}{body}"));
            prop_assert!(Kvnr::parse(&valid).is_ok());
            let old = valid.chars().nth(pos).unwrap().to_digit(10).unwrap();
            let changed = replace_digit(&valid, pos, char::from_digit((old + delta) % 10, 10).unwrap());
            prop_assert!(Kvnr::parse(&changed).is_err(), "{} accepted", changed);
        }

        #[test]
        fn every_generated_ik_parses_and_every_single_digit_change_in_3_to_9_is_rejected(
            d in proptest::collection::vec(0u32..10, 8),
            pos in 2usize..9,
            delta in 1u32..10,
        ) {
            let valid = ik_with_check(&d);
            prop_assert!(InsurerIk::parse(&valid).is_ok());
            let old = valid.chars().nth(pos).unwrap().to_digit(10).unwrap();
            let changed = replace_digit(&valid, pos, char::from_digit((old + delta) % 10, 10).unwrap());
            prop_assert!(InsurerIk::parse(&changed).is_err(), "{} accepted", changed);
        }

        #[test]
        fn every_generated_lanr_parses_and_every_single_digit_change_in_1_to_7_is_rejected(
            d in proptest::collection::vec(0u32..10, 6),
            group in 0u32..100,
            pos in 0usize..7,
            delta in 1u32..10,
        ) {
            // Weight 4 cannot see a change by 5 (4·5 = 20 ≡ 0 mod 10): a property of the KBV
            // algorithm itself, so those changes are excluded here, not missed by the parser.
            prop_assume!(!(pos < 6 && pos % 2 == 0 && delta == 5));
            prop_assume!(d.iter().any(|x| *x != d[0]) || ![3, 4, 5, 9].contains(&d[0]));
            let valid = format!(
                "{}{}{:02}",
                d.iter().map(|x| x.to_string()).collect::<String>(),
                Lanr::check_digit(&d),
                group
            );
            prop_assert!(Lanr::parse(&valid).is_ok());
            let old = valid.chars().nth(pos).unwrap().to_digit(10).unwrap();
            let changed = replace_digit(&valid, pos, char::from_digit((old + delta) % 10, 10).unwrap());
            let pseudo = changed == "999999900" || changed.starts_with("555555")
                || changed.starts_with("4444444") || changed.starts_with("3333333");
            prop_assume!(!pseudo);
            prop_assert!(Lanr::parse(&changed).is_err(), "{} accepted", changed);
        }
    }
}
