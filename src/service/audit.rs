//! Reading the audit trail: of one practice, or of every practice for the operator.

use crate::storage::{self, AnyConnection, AuditEntry, AuditFilter, Result};

/// How many rows a page of the audit trail shows.
pub const AUDIT_PER_PAGE: i64 = 100;

/// One page of the audit trail.
#[derive(Debug)]
pub struct AuditTrail {
    /// Every action recorded (for the filter's choices).
    pub actions: Vec<String>,
    pub rows: Vec<AuditEntry>,
    /// Rows under the filter in all.
    pub total: i64,
}

/// Page `page` (from 1) of the trail of `practice` (`None`: every practice) under `filter`;
/// without a filter (it was invalid) only the actions.
pub fn audit_trail(
    c: &mut AnyConnection,
    practice: Option<&str>,
    filter: Option<&AuditFilter>,
    page: i64,
) -> Result<AuditTrail> {
    let actions = storage::audit_actions(c, practice)?;
    let Some(f) = filter else {
        return Ok(AuditTrail {
            actions,
            rows: Vec::new(),
            total: 0,
        });
    };
    let offset = (page - 1) * AUDIT_PER_PAGE;
    let (rows, total) = storage::audit_entries(c, practice, f, offset, AUDIT_PER_PAGE)?;
    Ok(AuditTrail {
        actions,
        rows,
        total,
    })
}
