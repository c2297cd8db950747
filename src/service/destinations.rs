//! Insurer destinations: configuration and the operator's actions (Störung, pause, retry).

use crate::storage::{self, Actor, AnyConnection, DestinationConfig, Result};

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

/// Declares or clears the practice-wide Störung (TI outage) of the actor's practice: every
/// error answer for the practice's documents is then retried.
pub fn practice_outage(c: &mut AnyConnection, actor: &Actor, on: bool) -> Result<()> {
    storage::atomically(c, |c| {
        storage::set_practice_outage(c, &actor.practice_id, on)?;
        storage::audit(c, actor, "practice.outage", None, &on.to_string())?;
        Ok(())
    })
}

/// Every configured insurer destination.
pub fn configured_insurers(c: &mut AnyConnection) -> Result<Vec<storage::DestinationRow>> {
    storage::all_destinations(c)
}
