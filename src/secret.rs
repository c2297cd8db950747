//! Secrets (passwords, API tokens, `Authorization` headers) as a type whose `Debug` and
//! `Display` print `***`: a `{:?}` of a configuration, a destination or a claimed delivery
//! cannot leak them into a log. The value is read only where it is used, with
//! [`Secret::expose`].

use std::fmt;

/// A secret string. Read from a text column as it is (a stored mail password).
#[derive(Clone, Default, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct Secret(String);

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for Secret
where
    DB: diesel::backend::Backend,
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        String::from_sql(bytes).map(Self)
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// For command-line flags and environment variables (`clap`).
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            user: String,
            password: Secret,
            header: Option<Secret>,
        }
        let c = Config {
            user: "praxis".into(),
            password: Secret::new("geheim-123"),
            header: Some("Bearer abc.def".into()),
        };
        let shown = format!("{c:?} {} {:#?}", c.password, c.header);
        assert!(
            !shown.contains("geheim") && !shown.contains("abc.def"),
            "{shown}"
        );
        assert!(shown.contains("praxis"));
        assert_eq!(c.password.expose(), "geheim-123");
    }
}
