//! Practices and user accounts, each added with its audit row.

use crate::auth::Role;
use crate::domain::{Bsnr, Doctor, Land, Practice};
use crate::storage::{self, Actor, AnyConnection, Result};

/// Adds a practice with its first doctor, its Land and, optionally, its practice admin
/// `(name, password hash)`. Returns the practice id.
pub fn add_practice(
    c: &mut AnyConnection,
    actor: &Actor,
    practice: &Practice,
    doctor: &Doctor,
    land: Land,
    admin: Option<(&str, &str)>,
) -> Result<String> {
    storage::atomically(c, |c| {
        let id = storage::add_practice(c, practice, doctor, admin, None)?;
        storage::set_practice_land(c, &id, land)?;
        let what = match admin {
            Some((name, _)) => format!("BSNR {}, Verwaltung {name}", practice.bsnr),
            None => format!("BSNR {}", practice.bsnr),
        };
        storage::audit(c, actor, "practice.added", None, &what)?;
        Ok(id)
    })
}

/// Adds a user (practice roles to `practice_id`, operators to none).
pub fn add_user(
    c: &mut AnyConnection,
    actor: &Actor,
    practice_id: Option<&str>,
    name: &str,
    password_hash: &str,
    role: Role,
) -> Result<()> {
    storage::atomically(c, |c| {
        storage::create_user(c, practice_id, name, password_hash, role)?;
        // The practice's own Protokoll shows who was added to it.
        let actor = Actor {
            practice_id: practice_id.map_or_else(|| actor.practice_id.clone(), str::to_owned),
            ..actor.clone()
        };
        let what = format!("{name} ({})", role.as_str());
        storage::audit(c, &actor, "user.added", None, &what)?;
        Ok(())
    })
}

/// Adds an insurer clerk's account, bound to the IK (checked by the caller).
pub fn add_insurer_user(
    c: &mut AnyConnection,
    actor: &Actor,
    ik: &str,
    name: &str,
    password_hash: &str,
) -> Result<()> {
    storage::atomically(c, |c| {
        storage::create_insurer_user(c, ik, name, password_hash)?;
        let what = format!("{name} (insurer, IK {ik})");
        Ok(storage::audit(c, actor, "user.added", None, &what)?)
    })
}

/// The users of a practice.
pub fn users(c: &mut AnyConnection, practice_id: &str) -> Result<Vec<storage::UserInfo>> {
    storage::list_users(c, practice_id)
}

/// Deactivates a user of the practice; `false` when it has no such user.
pub fn deactivate_user(
    c: &mut AnyConnection,
    actor: &Actor,
    practice_id: &str,
    user_id: &str,
) -> Result<bool> {
    storage::atomically(c, |c| {
        let name = storage::deactivate_user(c, practice_id, user_id)?;
        if let Some(name) = &name {
            storage::audit(c, actor, "user.deactivated", None, name)?;
        }
        Ok(name.is_some())
    })
}

/// The practice's master data (address, phone; the BSNR stays).
pub fn practice(c: &mut AnyConnection, practice_id: &str) -> Result<Practice> {
    Ok(storage::master_data(c, practice_id)?.0)
}

/// Saves the practice's master data.
pub fn save_practice(
    c: &mut AnyConnection,
    actor: &Actor,
    practice_id: &str,
    practice: &Practice,
) -> Result<()> {
    storage::atomically(c, |c| {
        storage::update_practice(c, practice_id, practice)?;
        storage::audit(c, actor, "practice.master_data", None, "")?;
        Ok(())
    })
}

/// Sets the user's new password (hash) with its audit row; every session of the user but
/// `keep_session` (a token hash) ends.
pub fn set_password(
    c: &mut AnyConnection,
    actor: &Actor,
    user_id: &str,
    password_hash: &str,
    keep_session: &str,
) -> Result<()> {
    storage::atomically(c, |c| {
        storage::set_password(c, user_id, password_hash, keep_session)?;
        storage::audit(c, actor, "user.password_changed", None, "")?;
        Ok(())
    })
}

/// What the operator's overview lists.
#[derive(Debug)]
pub struct OperatorOverview {
    pub practices: Vec<storage::PracticeInfo>,
    /// `(BSNR, token)` of every practice's API tokens.
    pub api_tokens: Vec<(String, storage::TokenInfo)>,
    /// `(IK, token)` of every insurer's tokens.
    pub insurer_tokens: Vec<(String, storage::TokenInfo)>,
    /// `(IK, user)` of the insurer accounts.
    pub insurer_users: Vec<(String, storage::UserInfo)>,
}

/// The operator's overview: practices, tokens, insurer accounts.
pub fn operator_overview(c: &mut AnyConnection) -> Result<OperatorOverview> {
    Ok(OperatorOverview {
        practices: storage::list_practices(c)?,
        api_tokens: storage::list_all_api_tokens(c)?,
        insurer_tokens: storage::list_all_insurer_tokens(c)?,
        insurer_users: storage::list_insurer_users(c)?,
    })
}

/// The id of the practice with this BSNR.
pub fn practice_id_by_bsnr(c: &mut AnyConnection, bsnr: &Bsnr) -> Result<Option<String>> {
    storage::practice_id_by_bsnr(c, bsnr)
}
