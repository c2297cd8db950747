//! API tokens of practice software and of insurers' pull imports.

use crate::storage::{self, Actor, AnyConnection, Result};

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

/// The owner's tokens, revoked ones included, oldest first.
pub fn tokens(c: &mut AnyConnection, owner: &TokenOwner) -> Result<Vec<storage::TokenInfo>> {
    match owner {
        TokenOwner::Practice { id, .. } => storage::list_api_tokens(c, id),
        TokenOwner::Insurer { ik } => storage::list_insurer_tokens(c, ik),
    }
}
