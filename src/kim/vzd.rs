//! The insurer's KIM address from the TI directory (VZD), read over LDAP(S) through the
//! Konnektor's LDAP proxy (base `dc=data,dc=vzd`, filter `(&(domainID=<IK>)(entryType=5))`,
//! TA P5-02 AK4; the address from `kimData`, `komLeData` or `mail`, first entry wins), or from
//! a static mapping file (`<IK> <address>` per line, `#` comments) where no directory is
//! reachable.

use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::KimError;
use crate::domain::InsurerIk;

pub const BASE_DN: &str = "dc=data,dc=vzd";

/// The KIM address of an entry: `kimData` (`<address>,<version>…`), `komLeData`
/// (`<version>,<address>`), then `mail`.
fn address_of(entry: &SearchEntry) -> Option<String> {
    let first = |attr: &str| {
        entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attr))
            .and_then(|(_, v)| v.first().cloned())
    };
    let kim = first("kimData").and_then(|v| v.split(',').next().map(str::to_owned));
    let komle = first("komLeData").and_then(|v| v.split(',').nth(1).map(str::to_owned));
    kim.or(komle)
        .or_else(|| first("mail"))
        .map(|a| a.trim().to_owned())
        .filter(|a| a.contains('@'))
}

/// Looks the insurer up in the directory at `url` (`ldap://` or `ldaps://`; the Konnektor's
/// certificate is its own, so it is not checked against public roots).
pub async fn lookup(
    url: &str,
    ik: &InsurerIk,
    timeout: Duration,
) -> Result<Option<String>, KimError> {
    let settings = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_no_tls_verify(true);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(|e| KimError::Connect(format!("Verzeichnisdienst: {e}")))?;
    ldap3::drive!(conn);
    let filter = format!(
        "(&(domainID={})(entryType=5))",
        ldap3::ldap_escape(ik.as_str())
    );
    let found = tokio::time::timeout(
        timeout,
        ldap.search(
            BASE_DN,
            Scope::Subtree,
            &filter,
            vec!["mail", "komLeData", "kimData"],
        ),
    )
    .await
    .map_err(|_| KimError::Connect("Verzeichnisdienst: Zeitüberschreitung".into()))?
    .and_then(|r| r.success())
    .map_err(|e| KimError::Protocol(format!("Verzeichnisdienst: {e}")))?;
    let _ = ldap.unbind().await;
    Ok(found
        .0
        .into_iter()
        .map(SearchEntry::construct)
        .find_map(|e| address_of(&e)))
}

/// The address of `ik` in a mapping file's text.
pub fn from_mapping(text: &str, ik: &InsurerIk) -> Option<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|l| {
            let mut parts = l.split(|c: char| c.is_whitespace() || c == ';' || c == ',');
            let key = parts.next()?;
            let address = parts.find(|p| !p.is_empty())?;
            Some((key, address))
        })
        .find(|(key, address)| *key == ik.as_str() && address.contains('@'))
        .map(|(_, address)| address.to_owned())
}

/// Where insurers' KIM addresses are looked up.
#[derive(Debug, Clone, Default)]
pub struct DirectorySettings {
    /// The TI directory through the Konnektor: `ldaps://<konnektor>:636` (or `ldap://`).
    pub url: Option<String>,
    /// A static mapping file (`<IK> <address>` per line), where no directory is reachable.
    pub mapping_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

impl DirectorySettings {
    pub fn configured(&self) -> bool {
        self.url.is_some() || self.mapping_file.is_some()
    }
}

/// Looks up the KIM address of every insurer that needs one (see
/// [`crate::storage::insurers_to_look_up`]): the directory first, then the mapping file.
/// Returns how many addresses were found. A directory that cannot be reached changes nothing
/// (tried again next round).
pub async fn resolve_due(
    db: &crate::storage::Database,
    settings: &DirectorySettings,
) -> Result<usize, KimError> {
    if !settings.configured() {
        return Ok(0);
    }
    let stale = crate::storage::now() - chrono::Duration::hours(24);
    let iks = db
        .run(move |c| crate::storage::insurers_to_look_up(c, stale))
        .await?;
    let mapping =
        match &settings.mapping_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                KimError::Settings(format!("KIM-Adressliste {}: {e}", path.display()))
            })?),
            None => None,
        };
    let mut found = 0;
    for ik in iks {
        let Ok(parsed) = InsurerIk::parse_structure(&ik) else {
            continue;
        };
        let (address, source) = match &settings.url {
            Some(url) => match lookup(url, &parsed, settings.timeout).await {
                Ok(Some(a)) => (Some(a), "vzd"),
                Ok(None) => (
                    mapping.as_deref().and_then(|m| from_mapping(m, &parsed)),
                    "file",
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "TI directory not reachable");
                    match mapping.as_deref().and_then(|m| from_mapping(m, &parsed)) {
                        Some(a) => (Some(a), "file"),
                        None => continue,
                    }
                }
            },
            None => (
                mapping.as_deref().and_then(|m| from_mapping(m, &parsed)),
                "file",
            ),
        };
        let address = address.filter(|a| super::is_kim_address(a));
        found += usize::from(address.is_some());
        db.run(move |c| crate::storage::record_kim_lookup(c, &ik, address.as_deref(), source))
            .await?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_file_names_addresses_by_ik() {
        let ik = InsurerIk::parse_structure("101575519").unwrap();
        let text = "# IK Adresse\n109500969 aok@kk.kim.telematik\n101575519;tk-dt03@akquinet.kim.telematik-test\n";
        assert_eq!(
            from_mapping(text, &ik).as_deref(),
            Some("tk-dt03@akquinet.kim.telematik-test")
        );
        assert_eq!(from_mapping("101575519 kein-at\n", &ik), None);
    }

    #[test]
    fn kim_data_wins_over_kom_le_data_and_mail() {
        let entry = |attrs: &[(&str, &str)]| SearchEntry {
            dn: "uid=x,dc=data,dc=vzd".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            bin_attrs: Default::default(),
        };
        let e = entry(&[
            ("mail", "m@kk.kim.telematik"),
            ("komLeData", "1.0,k@kk.kim.telematik"),
            ("kimData", "d@kk.kim.telematik,1.5+"),
        ]);
        assert_eq!(address_of(&e).as_deref(), Some("d@kk.kim.telematik"));
        let e = entry(&[
            ("mail", "m@kk.kim.telematik"),
            ("komLeData", "1.0,k@kk.kim.telematik"),
        ]);
        assert_eq!(address_of(&e).as_deref(), Some("k@kk.kim.telematik"));
        let e = entry(&[("mail", "m@kk.kim.telematik")]);
        assert_eq!(address_of(&e).as_deref(), Some("m@kk.kim.telematik"));
    }
}
