//! Password hashing (argon2id), password rules, roles, and opaque tokens, of which only the
//! SHA-256 is stored.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// An argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether the password matches the stored PHC string. An unparsable hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash that never matches, verified for unknown users so that their login takes as long as
/// a known user's.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$h1Dn8b0Mj2sQvM2Xm0f1Lw4kPZ8C1tXk1b5Qy0bOa6E"
}

/// What a logged-in user may do. Practice staff and practice admins belong to exactly one
/// practice; an operator belongs to none and never sees health data (README "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Capture, print, mail, cancel, read the practice's dispatch lists.
    Staff,
    /// Staff, plus the practice's users, master data, audit trail and TI Störung.
    Admin,
    /// Insurer destinations, practices, tokens; no patient data.
    Operator,
    /// A clerk of one insurer (IK): uploads scanned KK copies and reads their matches; sees
    /// no practice's data.
    Insurer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Staff, Role::Admin, Role::Operator, Role::Insurer];

    /// The stored name (`staff`, `admin`, `operator`, `insurer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Insurer => "insurer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// German label for the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Staff => "Praxispersonal",
            Self::Admin => "Praxisverwaltung",
            Self::Operator => "Betrieb",
            Self::Insurer => "Krankenkasse",
        }
    }

    /// Whether the role belongs to a practice.
    pub fn in_practice(self) -> bool {
        matches!(self, Self::Staff | Self::Admin)
    }
}

/// Shortest and longest accepted new password (in characters).
pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 128;

/// Checks a new password; the German message names the rule it breaks.
pub fn check_new_password(username: &str, password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Err("Passwort: mindestens 12 Zeichen");
    }
    if n > PASSWORD_MAX {
        return Err("Passwort: höchstens 128 Zeichen");
    }
    let (user, pass) = (username.trim().to_lowercase(), password.to_lowercase());
    if !user.is_empty() && pass.contains(&user) {
        return Err("Passwort: darf den Benutzernamen nicht enthalten");
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return Err("Passwort: nicht nur ein einziges Zeichen wiederholen");
    }
    Ok(())
}

/// Checks a new username: 3 to 64 characters, letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(username: &str) -> Result<(), &'static str> {
    let n = username.chars().count();
    if !(3..=64).contains(&n) {
        return Err("Benutzername: 3 bis 64 Zeichen");
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("Benutzername: nur Buchstaben (ohne Umlaute), Ziffern und . _ - @");
    }
    Ok(())
}

/// 32 random bytes, hex encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored for a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let h = hash_password("Geheimnis äöü").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("Geheimnis äöü", &h));
        assert!(!verify_password("geheimnis äöü", &h));
        assert!(!verify_password("x", dummy_hash()));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn passwords_need_twelve_characters_and_must_not_contain_the_username() {
        assert!(check_new_password("mfa1", "kurz").is_err());
        assert!(check_new_password("mfa1", "xxMFA1yyyyyyyyyy").is_err());
        assert!(check_new_password("mfa1", "aaaaaaaaaaaaaa").is_err());
        assert!(check_new_password("mfa1", &"ä".repeat(129)).is_err());
        assert!(check_new_password("mfa1", "Kaffee-Tasse-42").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username("a b c").is_err());
        assert!(check_username("mfa.1@praxis").is_ok());
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn tokens_are_random_and_stored_only_as_hashes() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
