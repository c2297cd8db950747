//! The patient's e-mail copy: the address, the request as captured, and how its PDF password
//! is chosen.

use crate::secret::Secret;
use std::fmt;

use chrono::NaiveDate;

use super::DomainError;

const LABEL: &str = "E-Mail-Adresse";

/// An e-mail address as practice staff type it: `local@domain.tld`, ASCII only, at most 254
/// characters (RFC 5321), a dot-atom local part and a domain of letter/digit/hyphen labels
/// with a top-level domain of letters. Quoted local parts and address literals are refused:
/// no patient has one, and a typo is far likelier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(DomainError::Required(LABEL));
        }
        if s.len() > 254 {
            return Err(DomainError::TooLong(LABEL, 254));
        }
        if !s.is_ascii() {
            return Err(DomainError::Format(
                LABEL,
                "nur ASCII-Zeichen, Umlaut-Domains in Punycode (xn--…)",
            ));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(DomainError::Format(LABEL, "name@domain.de"));
        };
        if !valid_local(local) || !valid_domain(domain) {
            return Err(DomainError::Format(LABEL, "name@domain.de"));
        }
        // Domains are case-insensitive; the local part is kept as typed.
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
        })
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

impl TryFrom<String> for EmailAddress {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> Self {
        a.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the password of the mailed PDF is chosen. The practice hands it over separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordPolicy {
    /// The patient's birth date as `TTMMJJJJ` (default): the patient knows it, a stranger
    /// who intercepts the mail usually does not.
    #[default]
    BirthDate,
    /// A random password (10 characters, no look-alikes), shown to staff on the detail page to
    /// hand over or print for the patient.
    Random,
}

impl PasswordPolicy {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "birthdate" => Ok(Self::BirthDate),
            "random" => Ok(Self::Random),
            _ => Err(DomainError::Format(
                "Passwortregel",
                "birthdate oder random",
            )),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::BirthDate => "birthdate",
            Self::Random => "random",
        }
    }

    /// The password under this policy; `random` is drawn once, at capture, and stored.
    pub fn password(self, birth_date: NaiveDate, stored: Option<&str>) -> Option<String> {
        match self {
            Self::BirthDate => Some(birth_date.format("%d%m%Y").to_string()),
            Self::Random => stored.map(str::to_owned),
        }
    }

    /// A new random password for [`Self::Random`].
    pub fn generate() -> String {
        use rand::Rng;
        // No 0/O, 1/l/I: read aloud or typed from paper without mistakes.
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::thread_rng();
        (0..10)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect()
    }
}

/// A patient mail, in one shape from the request to the send: the patient consented to
/// mail to `recipient`; it carries the patient's copy (V) and, if asked, the employer's (AG),
/// each PDF protected by the password `policy` gives. Requested in the draft, completed at
/// capture with the practice's policy, stored with the certificate, claimed and composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientMail {
    pub recipient: EmailAddress,
    /// Attach the employer's copy (AG) besides the patient's (V).
    pub employer_copy: bool,
    pub policy: PasswordPolicy,
    /// The password drawn at capture under [`PasswordPolicy::Random`]; kept for every resend.
    pub password: Option<Secret>,
}

impl PatientMail {
    /// The mail a patient asked for, under the default policy (the birth date).
    pub fn requested(recipient: EmailAddress, employer_copy: bool) -> Self {
        Self {
            recipient,
            employer_copy,
            policy: PasswordPolicy::BirthDate,
            password: None,
        }
    }

    /// The same mail under the practice's `policy`: a random password is drawn here, once.
    pub fn under(self, policy: PasswordPolicy) -> Self {
        let password =
            (policy == PasswordPolicy::Random).then(|| PasswordPolicy::generate().into());
        Self {
            policy,
            password,
            ..self
        }
    }

    /// The PDF password for a patient born on `birth_date` (`None`: a random one was lost).
    pub fn pdf_password(&self, birth_date: NaiveDate) -> Option<String> {
        self.policy
            .password(birth_date, self.password.as_ref().map(Secret::expose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_mail_takes_the_practices_policy_and_a_random_password_once() {
        let born = NaiveDate::from_ymd_opt(1980, 2, 29).unwrap();
        let asked = PatientMail::requested(EmailAddress::parse("p@example.de").unwrap(), true);
        assert_eq!(asked.pdf_password(born).as_deref(), Some("29021980"));
        let random = asked.clone().under(PasswordPolicy::Random);
        let drawn = random.pdf_password(born).unwrap();
        assert_eq!(drawn.len(), 10);
        assert_eq!(random.pdf_password(born), Some(drawn));
        assert!(!format!("{random:?}").contains(random.password.as_ref().unwrap().expose()));
        assert_eq!(asked.under(PasswordPolicy::BirthDate).password, None);
    }

    #[test]
    fn ordinary_addresses_are_accepted_and_the_domain_is_lower_cased() {
        for ok in [
            "max.mustermann@example.de",
            "a+b@mail.example.com",
            "x_y-z@sub-domain.example.org",
            "o'brien@xn--mller-kva.de",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        let a = EmailAddress::parse(" Max@Example.DE ").unwrap();
        assert_eq!(a.as_str(), "Max@example.de");
        assert_eq!(a.domain(), "example.de");
    }

    #[test]
    fn typos_and_injection_attempts_are_refused_with_the_field_label() {
        for bad in [
            "max",
            "max@",
            "@example.de",
            "max@example",
            "max@@example.de",
            "max@example..de",
            "max..m@example.de",
            ".max@example.de",
            "max@-example.de",
            "max@example.d",
            "max@example.123",
            "max mustermann@example.de",
            "max@exämple.de",
            "max@example.de\r\nBcc: all@example.de",
            "max@example.de>, evil@example.org",
            "\"max\"@example.de",
            "max@[127.0.0.1]",
        ] {
            let e = EmailAddress::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("E-Mail-Adresse"), "{bad}: {e}");
        }
        assert_eq!(
            EmailAddress::parse("  ").unwrap_err(),
            DomainError::Required(LABEL)
        );
        let long = format!("{}@example.de", "a".repeat(250));
        assert_eq!(
            EmailAddress::parse(&long).unwrap_err(),
            DomainError::TooLong(LABEL, 254)
        );
    }

    #[test]
    fn the_birth_date_policy_gives_ttmmjjjj() {
        let born = NaiveDate::from_ymd_opt(1980, 2, 1).unwrap();
        assert_eq!(
            PasswordPolicy::BirthDate.password(born, None).as_deref(),
            Some("01021980")
        );
        assert_eq!(PasswordPolicy::Random.password(born, None), None);
        let p = PasswordPolicy::generate();
        assert_eq!(p.len(), 10);
        assert!(p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
        assert_ne!(p, PasswordPolicy::generate());
    }
}
