//! The practice's connections to the TI: its KIM account and its Konnektor, each saved or
//! removed in one transaction with its audit row.

use crate::storage::{self, Actor, AnyConnection, KimAccountRow, KonnektorRow, Result};

/// Saves the practice's KIM account (its poll state is kept).
pub fn save_kim_account(c: &mut AnyConnection, actor: &Actor, row: &KimAccountRow) -> Result<()> {
    storage::atomically(c, |c| {
        storage::put_kim_account(c, row)?;
        storage::audit(c, actor, "kim.account_saved", None, &row.address)?;
        Ok(())
    })
}

/// Removes the practice's KIM account; its documents go by HTTP push or wait for an import.
pub fn remove_kim_account(c: &mut AnyConnection, actor: &Actor) -> Result<()> {
    storage::atomically(c, |c| {
        storage::delete_kim_account(c, &actor.practice_id)?;
        storage::audit(c, actor, "kim.account_removed", None, "")?;
        Ok(())
    })
}

/// Saves the practice's Konnektor settings.
pub fn save_konnektor(c: &mut AnyConnection, actor: &Actor, row: &KonnektorRow) -> Result<()> {
    storage::atomically(c, |c| {
        storage::put_konnektor(c, row)?;
        let detail = format!("Konnektor {} ({})", row.base_url, row.card);
        storage::audit(c, actor, "konnektor.saved", None, &detail)?;
        Ok(())
    })
}

/// Removes the practice's Konnektor: what waited for a signature is sent unsigned from now on.
pub fn remove_konnektor(c: &mut AnyConnection, actor: &Actor) -> Result<()> {
    storage::atomically(c, |c| {
        let released = storage::delete_konnektor(c, &actor.practice_id)?;
        let detail = format!("Konnektor entfernt, {released} Dokument(e) unsigniert freigegeben");
        storage::audit(c, actor, "konnektor.removed", None, &detail)?;
        Ok(())
    })
}
