//! Configuration changes that both the web pages and the `au-relay` command line make: each
//! runs in one transaction with its audit row, so a change made with `au-relay token create`
//! is recorded exactly as the same change made on the operator's page (only the actor
//! differs: `web:<user>` or `cli:<system user>`).

use crate::auth::Role;
use crate::domain::{Doctor, Land, Practice};
use crate::storage::{self, Actor, AnyConnection, DestinationConfig, Result};

/// Who owns an API token.
#[derive(Debug, Clone)]
pub enum TokenOwner {
    /// Practice software: the practice id, and the BSNR it was named by.
    Practice { id: String, bsnr: String },
    /// An insurer's pull import, by IK.
    Insurer { ik: String },
}

impl TokenOwner {
    /// BSNR or IK, as the audit row and the page name the owner.
    pub fn shown(&self) -> &str {
        match self {
            Self::Practice { bsnr, .. } => bsnr,
            Self::Insurer { ik } => ik,
        }
    }
}

/// The actor of a command-line change: the system user who ran it.
pub fn cli_actor() -> Actor {
    let name = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unbekannt".into());
    Actor {
        practice_id: String::new(),
        name,
        channel: "cli",
    }
}

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

/// Stores a new token's hash for its owner.
pub fn create_token(
    c: &mut AnyConnection,
    actor: &Actor,
    owner: &TokenOwner,
    token_hash: &str,
    label: &str,
) -> Result<()> {
    storage::atomically(c, |c| {
        match owner {
            TokenOwner::Practice { id, .. } => storage::create_api_token(c, token_hash, id, label)?,
            TokenOwner::Insurer { ik } => storage::create_insurer_token(c, token_hash, ik, label)?,
        }
        let what = format!("{}: {label}", owner.shown());
        storage::audit(c, actor, "token.created", None, &what)?;
        Ok(())
    })
}

/// Revokes the owner's active token with this id; `false` when there is none.
pub fn revoke_token(
    c: &mut AnyConnection,
    actor: &Actor,
    owner: &TokenOwner,
    id: &str,
) -> Result<bool> {
    storage::atomically(c, |c| {
        let revoked = match owner {
            TokenOwner::Practice { id: practice, .. } => {
                storage::revoke_api_token(c, practice, id)?
            }
            TokenOwner::Insurer { ik } => storage::revoke_insurer_token(c, ik, id)?,
        };
        if revoked {
            storage::audit(c, actor, "token.revoked", None, id)?;
        }
        Ok(revoked)
    })
}

/// Adds or reconfigures an insurer's destination.
pub fn save_destination(
    c: &mut AnyConnection,
    actor: &Actor,
    config: &DestinationConfig,
) -> Result<()> {
    storage::atomically(c, |c| {
        storage::upsert_destination(c, config)?;
        let what = format!("IK {}", config.ik);
        storage::audit(c, actor, "destination.saved", None, &what)?;
        Ok(())
    })
}

/// What the operator does to an insurer's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationAction {
    /// Declare (`true`) or clear a Störung.
    Outage(bool),
    /// Pause or resume pushing.
    Pause(bool),
    /// Every failed delivery back into the queue.
    RetryAll,
    /// The Störung announced by the probe is confirmed.
    ConfirmOutage,
}

impl DestinationAction {
    /// From the action of `/queue/{ik}/{action}` and its `on` flag.
    pub fn parse(action: &str, on: bool) -> Option<Self> {
        match action {
            "outage" => Some(Self::Outage(on)),
            "pause" => Some(Self::Pause(on)),
            "retry" => Some(Self::RetryAll),
            "confirm" => Some(Self::ConfirmOutage),
            _ => None,
        }
    }
}

/// Applies an action to an insurer's destination; `false` when it has none.
pub fn destination_action(
    c: &mut AnyConnection,
    actor: &Actor,
    ik: &str,
    action: DestinationAction,
) -> Result<bool> {
    storage::atomically(c, |c| {
        if storage::destination(c, ik)?.is_none() {
            return Ok(false);
        }
        let (what, on) = match action {
            DestinationAction::Outage(on) => {
                storage::set_outage(c, ik, on)?;
                ("destination.outage", on)
            }
            DestinationAction::Pause(on) => {
                storage::set_paused(c, ik, on)?;
                ("destination.paused", on)
            }
            DestinationAction::RetryAll => {
                storage::retry_all(c, ik)?;
                ("destination.retry_all", false)
            }
            DestinationAction::ConfirmOutage => {
                storage::confirm_outage(c, ik)?;
                ("destination.outage_confirmed", false)
            }
        };
        storage::audit(c, actor, what, None, &format!("IK {ik}: {on}"))?;
        Ok(true)
    })
}
