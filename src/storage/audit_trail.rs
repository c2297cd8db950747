//! Reading the audit trail: of one practice (the practice admin's view) or of all (the
//! operator's view, which also holds the operators' own configuration changes). The trail itself is
//! written by [`super::audit`] and is append-only: there is no update or delete here, and the
//! database refuses them (migration `2026-12-01-000014_roles`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_log;
use super::{AnyConnection, Result};

/// What to show; every part is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action, e.g. `certificate.printed`.
    pub action: Option<String>,
    /// Username (the actor is stored as `<channel>:<username>`).
    pub user: Option<String>,
    /// From this instant (inclusive), UTC.
    pub from: Option<NaiveDateTime>,
    /// Before this instant (exclusive), UTC.
    pub until: Option<NaiveDateTime>,
    pub certificate_id: Option<String>,
}

/// One row of the trail. `detail` never holds health data (see [`super::audit`]).
#[derive(Debug, Clone, Queryable)]
pub struct AuditEntry {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub certificate_id: Option<String>,
    pub detail: String,
}

/// The audit rows of a practice (`None`: of all practices and the operators) matching `f`,
/// newest first, and how many match in all.
pub fn audit_entries(
    conn: &mut AnyConnection,
    practice_id: Option<&str>,
    f: &AuditFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<AuditEntry>, i64)> {
    let query = || {
        let mut q = audit_log::table.into_boxed();
        if let Some(p) = practice_id {
            q = q.filter(audit_log::practice_id.eq(p.to_owned()));
        }
        if let Some(a) = &f.action {
            q = q.filter(audit_log::action.eq(a.clone()));
        }
        if let Some(u) = &f.user {
            q = q.filter(
                audit_log::actor
                    .like(format!("%:{}", super::certificates::like_literal(u)))
                    .escape('\\'),
            );
        }
        if let Some(t) = f.from {
            q = q.filter(audit_log::at.ge(t));
        }
        if let Some(t) = f.until {
            q = q.filter(audit_log::at.lt(t));
        }
        if let Some(c) = &f.certificate_id {
            q = q.filter(audit_log::certificate_id.eq(c.clone()));
        }
        q
    };
    let total = query().count().get_result(conn)?;
    let rows = query()
        .order(audit_log::id.desc())
        .offset(offset)
        .limit(limit)
        .select((
            audit_log::id,
            audit_log::at,
            audit_log::actor,
            audit_log::action,
            audit_log::certificate_id,
            audit_log::detail,
        ))
        .load(conn)?;
    Ok((rows, total))
}

/// The actions that occur in a practice's trail, or in all (for the filter's choice list).
pub fn audit_actions(conn: &mut AnyConnection, practice_id: Option<&str>) -> Result<Vec<String>> {
    let mut q = audit_log::table.into_boxed();
    if let Some(p) = practice_id {
        q = q.filter(audit_log::practice_id.eq(p.to_owned()));
    }
    Ok(q.select(audit_log::action)
        .distinct()
        .order(audit_log::action)
        .load(conn)?)
}
