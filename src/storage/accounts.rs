//! Practices, doctors, staff users, sessions and API tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{api_tokens, doctors, login_failures, practices, sessions, users};
use super::{is_unique_violation, now, AnyConnection, Result, StorageError};
use crate::auth::Role;
use crate::domain::{Bsnr, Doctor, Lanr, Practice};

fn invalid(e: impl std::fmt::Display) -> StorageError {
    StorageError::Invalid(e.to_string())
}

#[derive(Queryable)]
struct PracticeRow {
    _id: String,
    bsnr: String,
    name: String,
    street: String,
    postal_code: String,
    city: String,
    phone: String,
    _created_at: NaiveDateTime,
    _land: String,
    _outage_since: Option<NaiveDateTime>,
}

/// Inserts a practice and returns its id.
pub fn create_practice(conn: &mut AnyConnection, p: &Practice) -> Result<String> {
    let id = Uuid::new_v4().to_string();
    let duplicate = |e: diesel::result::Error| {
        if is_unique_violation(&e) {
            StorageError::Duplicate("bsnr")
        } else {
            e.into()
        }
    };
    diesel::insert_into(practices::table)
        .values((
            practices::id.eq(&id),
            practices::bsnr.eq(p.bsnr.as_str()),
            practices::name.eq(&p.name),
            practices::street.eq(&p.street),
            practices::postal_code.eq(&p.postal_code),
            practices::city.eq(&p.city),
            practices::phone.eq(&p.phone),
            practices::created_at.eq(now()),
        ))
        .execute(conn)
        .map_err(duplicate)?;
    Ok(id)
}

/// The Land of a practice (its public holidays).
pub fn practice_land(conn: &mut AnyConnection, practice_id: &str) -> Result<crate::domain::Land> {
    let code: String = practices::table
        .find(practice_id)
        .select(practices::land)
        .first(conn)?;
    crate::domain::Land::parse(&code).ok_or_else(|| invalid(format!("unknown Land {code}")))
}

/// Declares (`true`) or clears a practice-wide Störung (TI outage).
pub fn set_practice_outage(
    conn: &mut AnyConnection,
    practice_id: &str,
    outage: bool,
) -> Result<()> {
    diesel::update(practices::table.find(practice_id))
        .set(practices::outage_since.eq(outage.then(now)))
        .execute(conn)?;
    Ok(())
}

/// Since when a practice-wide Störung holds, if it does.
pub fn practice_outage(
    conn: &mut AnyConnection,
    practice_id: &str,
) -> Result<Option<NaiveDateTime>> {
    Ok(practices::table
        .find(practice_id)
        .select(practices::outage_since)
        .first(conn)?)
}

/// Sets the Land of a practice.
pub fn set_practice_land(
    conn: &mut AnyConnection,
    practice_id: &str,
    land: crate::domain::Land,
) -> Result<()> {
    diesel::update(practices::table.find(practice_id))
        .set(practices::land.eq(land.code()))
        .execute(conn)?;
    Ok(())
}

/// Adds a practice with its first doctor and, optionally, its first user `(name, password
/// hash)`, who becomes the practice admin, and an API token hash, all in one transaction.
/// Returns the practice id.
pub fn add_practice(
    conn: &mut AnyConnection,
    practice: &Practice,
    doctor: &Doctor,
    user: Option<(&str, &str)>,
    api_token_hash: Option<&str>,
) -> Result<String> {
    conn.transaction(|c| {
        let id = create_practice(c, practice)?;
        add_doctor(c, &id, doctor)?;
        if let Some((name, hash)) = user {
            create_user(c, Some(&id), name, hash, Role::Admin)?;
        }
        if let Some(token) = api_token_hash {
            create_api_token(c, token, &id, "demo")?;
        }
        Ok(id)
    })
}

pub fn practice_id_by_bsnr(conn: &mut AnyConnection, bsnr: &Bsnr) -> Result<Option<String>> {
    Ok(practices::table
        .filter(practices::bsnr.eq(bsnr.as_str()))
        .select(practices::id)
        .first(conn)
        .optional()?)
}

pub fn count_practices(conn: &mut AnyConnection) -> Result<i64> {
    Ok(practices::table.count().get_result(conn)?)
}

pub fn add_doctor(conn: &mut AnyConnection, practice_id: &str, d: &Doctor) -> Result<()> {
    diesel::insert_into(doctors::table)
        .values((
            doctors::id.eq(Uuid::new_v4().to_string()),
            doctors::practice_id.eq(practice_id),
            doctors::lanr.eq(d.lanr.as_str()),
            doctors::name.eq(&d.name),
            doctors::specialty.eq(&d.specialty),
        ))
        .execute(conn)?;
    Ok(())
}

/// The practice and its doctors, as snapshotted into each new certificate.
pub fn master_data(conn: &mut AnyConnection, practice_id: &str) -> Result<(Practice, Vec<Doctor>)> {
    let row: PracticeRow = practices::table.find(practice_id).first(conn)?;
    let practice = Practice {
        bsnr: Bsnr::parse(&row.bsnr).map_err(invalid)?,
        name: row.name,
        street: row.street,
        postal_code: row.postal_code,
        city: row.city,
        phone: row.phone,
        more: Default::default(),
        id_kind: Default::default(),
    };
    let rows: Vec<(String, String, String)> = doctors::table
        .filter(doctors::practice_id.eq(practice_id))
        .order(doctors::name)
        .select((doctors::lanr, doctors::name, doctors::specialty))
        .load(conn)?;
    let doctors = rows
        .into_iter()
        .map(|(lanr, name, specialty)| {
            Ok(Doctor {
                lanr: Lanr::parse(&lanr).map_err(invalid)?,
                name,
                specialty,
                qualification: Default::default(),
                id_kind: Default::default(),
                name_parts: None,
                telematik_id: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((practice, doctors))
}

/// An active account as needed to log in.
#[derive(Debug, Clone, Queryable)]
pub struct UserRow {
    pub id: String,
    pub practice_id: Option<String>,
    pub username: String,
    pub password_hash: String,
    pub role: String,
}

/// Adds a user. Practice roles need a practice, an operator has none (the database refuses
/// anything else). A taken username is [`StorageError::Duplicate`].
pub fn create_user(
    conn: &mut AnyConnection,
    practice_id: Option<&str>,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<String> {
    if role.in_practice() != practice_id.is_some() || role == Role::Insurer {
        return Err(invalid(
            "practice roles need a practice, operators none; insurer accounts need an IK",
        ));
    }
    let id = Uuid::new_v4().to_string();
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&id),
            users::practice_id.eq(practice_id),
            users::username.eq(username),
            users::password_hash.eq(password_hash),
            users::role.eq(role.as_str()),
            users::created_at.eq(now()),
        ))
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                StorageError::Duplicate("username")
            } else {
                e.into()
            }
        })?;
    Ok(id)
}

/// Creates an insurer account bound to `ik` (role `insurer`, no practice).
pub fn create_insurer_user(
    conn: &mut AnyConnection,
    ik: &str,
    username: &str,
    password_hash: &str,
) -> Result<String> {
    let id = Uuid::new_v4().to_string();
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&id),
            users::username.eq(username),
            users::password_hash.eq(password_hash),
            users::role.eq(Role::Insurer.as_str()),
            users::insurer_ik.eq(ik),
            users::created_at.eq(now()),
        ))
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                StorageError::Duplicate("username")
            } else {
                e.into()
            }
        })?;
    Ok(id)
}

/// The insurer accounts, for the operator: `(IK, user)`, by IK and name.
pub fn list_insurer_users(conn: &mut AnyConnection) -> Result<Vec<(String, UserInfo)>> {
    let rows: Vec<(Option<String>, UserInfo)> = users::table
        .filter(users::role.eq(Role::Insurer.as_str()))
        .order((users::insurer_ik, users::username))
        .select((
            users::insurer_ik,
            (
                users::id,
                users::username,
                users::role,
                users::created_at,
                users::deactivated_at,
            ),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(ik, u)| (ik.unwrap_or_default(), u))
        .collect())
}

/// An active (not deactivated) user by name.
pub fn find_user(conn: &mut AnyConnection, username: &str) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::username.eq(username))
        .filter(users::deactivated_at.is_null())
        .select((
            users::id,
            users::practice_id,
            users::username,
            users::password_hash,
            users::role,
        ))
        .first(conn)
        .optional()?)
}

/// A user as listed to the practice admin (never the hash).
#[derive(Debug, Clone, Queryable)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub deactivated_at: Option<NaiveDateTime>,
}

/// The users of a practice, active ones first.
pub fn list_users(conn: &mut AnyConnection, practice_id: &str) -> Result<Vec<UserInfo>> {
    Ok(users::table
        .filter(users::practice_id.eq(practice_id))
        .order((users::deactivated_at.is_not_null(), users::username))
        .select((
            users::id,
            users::username,
            users::role,
            users::created_at,
            users::deactivated_at,
        ))
        .load(conn)?)
}

/// Deactivates an active user of the practice and ends their sessions; returns the username,
/// or `None` when the practice has no such active user.
pub fn deactivate_user(
    conn: &mut AnyConnection,
    practice_id: &str,
    user_id: &str,
) -> Result<Option<String>> {
    conn.transaction(|c| {
        let name: Option<String> = users::table
            .find(user_id)
            .filter(users::practice_id.eq(practice_id))
            .filter(users::deactivated_at.is_null())
            .select(users::username)
            .first(c)
            .optional()?;
        if name.is_some() {
            diesel::update(users::table.find(user_id))
                .set(users::deactivated_at.eq(now()))
                .execute(c)?;
            diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(c)?;
        }
        Ok(name)
    })
}

/// The stored password hash of an active user.
pub fn password_hash(conn: &mut AnyConnection, user_id: &str) -> Result<Option<String>> {
    Ok(users::table
        .find(user_id)
        .filter(users::deactivated_at.is_null())
        .select(users::password_hash)
        .first(conn)
        .optional()?)
}

/// Sets a new password hash and ends every session of the user except `keep` (the session
/// that changed it).
pub fn set_password(conn: &mut AnyConnection, user_id: &str, hash: &str, keep: &str) -> Result<()> {
    conn.transaction(|c| {
        diesel::update(users::table.find(user_id))
            .set(users::password_hash.eq(hash))
            .execute(c)?;
        diesel::delete(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::token_hash.ne(keep)),
        )
        .execute(c)?;
        Ok(())
    })
}

/// Changes the address data of a practice (not its BSNR, which identifies it to the KV).
pub fn update_practice(conn: &mut AnyConnection, practice_id: &str, p: &Practice) -> Result<()> {
    diesel::update(practices::table.find(practice_id))
        .set((
            practices::name.eq(&p.name),
            practices::street.eq(&p.street),
            practices::postal_code.eq(&p.postal_code),
            practices::city.eq(&p.city),
            practices::phone.eq(&p.phone),
        ))
        .execute(conn)?;
    Ok(())
}

/// A practice as the operator lists it (no patient data).
#[derive(Debug, Clone, Queryable)]
pub struct PracticeInfo {
    pub id: String,
    pub bsnr: String,
    pub name: String,
    pub city: String,
    pub land: String,
    pub created_at: NaiveDateTime,
}

pub fn list_practices(conn: &mut AnyConnection) -> Result<Vec<PracticeInfo>> {
    Ok(practices::table
        .order(practices::bsnr)
        .select((
            practices::id,
            practices::bsnr,
            practices::name,
            practices::city,
            practices::land,
            practices::created_at,
        ))
        .load(conn)?)
}

/// Who a valid session belongs to. `practice_id` is `None` for an operator.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user_id: String,
    pub username: String,
    pub practice_id: Option<String>,
    pub role: String,
    pub csrf_token: String,
    /// The IK of an insurer account.
    pub insurer_ik: Option<String>,
}

pub fn create_session(
    conn: &mut AnyConnection,
    token_hash: &str,
    user_id: &str,
    csrf_token: &str,
    expires_at: NaiveDateTime,
) -> Result<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash),
            sessions::user_id.eq(user_id),
            sessions::csrf_token.eq(csrf_token),
            sessions::created_at.eq(now()),
            sessions::expires_at.eq(expires_at),
            sessions::last_seen_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user of a session that is neither expired (absolute) nor idle longer than `idle`;
/// marks the session as seen.
pub fn session_user(
    conn: &mut AnyConnection,
    token_hash: &str,
    idle: chrono::Duration,
) -> Result<Option<SessionUser>> {
    let at = now();
    type Row = (
        String,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
    );
    let row: Option<Row> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash))
        .filter(users::deactivated_at.is_null())
        .filter(sessions::expires_at.gt(at))
        .filter(sessions::last_seen_at.gt(at - idle))
        .select((
            users::id,
            users::username,
            users::practice_id,
            users::role,
            sessions::csrf_token,
            users::insurer_ik,
        ))
        .first(conn)
        .optional()?;
    if row.is_some() {
        // Every staff request passes here: write `last_seen_at` at most once a minute.
        diesel::update(
            sessions::table
                .find(token_hash)
                .filter(sessions::last_seen_at.lt(at - chrono::Duration::minutes(1))),
        )
        .set(sessions::last_seen_at.eq(at))
        .execute(conn)?;
    }
    Ok(row.map(
        |(user_id, username, practice_id, role, csrf_token, insurer_ik)| SessionUser {
            user_id,
            username,
            practice_id,
            role,
            csrf_token,
            insurer_ik,
        },
    ))
}

pub fn delete_session(conn: &mut AnyConnection, token_hash: &str) -> Result<()> {
    diesel::delete(sessions::table.find(token_hash)).execute(conn)?;
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now()))).execute(conn)?;
    Ok(())
}

pub fn create_api_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    practice_id: &str,
    label: &str,
) -> Result<()> {
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::token_hash.eq(token_hash),
            api_tokens::practice_id.eq(practice_id),
            api_tokens::label.eq(label),
            api_tokens::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The practice a valid (not revoked) API token belongs to; records its use.
pub fn api_token_practice(conn: &mut AnyConnection, token_hash: &str) -> Result<Option<String>> {
    let found: Option<(String, Option<NaiveDateTime>)> = api_tokens::table
        .find(token_hash)
        .filter(api_tokens::revoked_at.is_null())
        .select((api_tokens::practice_id, api_tokens::last_used_at))
        .first(conn)
        .optional()?;
    let Some((practice, last_used)) = found else {
        return Ok(None);
    };
    if use_is_stale(last_used) {
        diesel::update(api_tokens::table.find(token_hash))
            .set(api_tokens::last_used_at.eq(now()))
            .execute(conn)?;
    }
    Ok(Some(practice))
}

/// Every API request passes a token check: its "last used" is written at most once a minute,
/// decided on the row just read, so a request normally writes nothing. (An UPDATE that matches
/// nothing would still take SQLite's write lock, and on PostgreSQL every request of a practice
/// would queue on the lock of its one token row.)
pub(super) fn use_is_stale(last_used: Option<NaiveDateTime>) -> bool {
    last_used.is_none_or(|t| t < now() - chrono::Duration::minutes(1))
}

/// A token as listed to its owner: never the token, only a short id (hash prefix).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

/// Length of the hash prefix that identifies a token in listings.
pub const TOKEN_ID_LEN: usize = 12;

/// Whether `id` can be a token id: at least [`TOKEN_ID_LEN`] hex digits (so it never carries
/// a `LIKE` wildcard).
pub fn is_token_id(id: &str) -> bool {
    id.len() >= TOKEN_ID_LEN && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// Every practice API token with the BSNR of its practice, for the operator.
pub fn list_all_api_tokens(conn: &mut AnyConnection) -> Result<Vec<(String, TokenInfo)>> {
    let rows: Vec<(String, TokenRow)> = api_tokens::table
        .inner_join(practices::table)
        .order((practices::bsnr, api_tokens::created_at))
        .select((practices::bsnr, API_TOKEN_COLUMNS))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(bsnr, row)| (bsnr, token_info(row)))
        .collect())
}

/// The columns of a [`TokenRow`] in `api_tokens`.
const API_TOKEN_COLUMNS: (
    api_tokens::token_hash,
    api_tokens::label,
    api_tokens::created_at,
    api_tokens::last_used_at,
    api_tokens::revoked_at,
) = (
    api_tokens::token_hash,
    api_tokens::label,
    api_tokens::created_at,
    api_tokens::last_used_at,
    api_tokens::revoked_at,
);

pub(super) type TokenRow = (
    String,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

pub(super) fn token_info(
    (hash, label, created_at, last_used_at, revoked_at): TokenRow,
) -> TokenInfo {
    TokenInfo {
        id: hash.chars().take(TOKEN_ID_LEN).collect(),
        label,
        created_at,
        last_used_at,
        revoked_at,
    }
}

pub fn list_api_tokens(conn: &mut AnyConnection, practice_id: &str) -> Result<Vec<TokenInfo>> {
    let rows: Vec<TokenRow> = api_tokens::table
        .filter(api_tokens::practice_id.eq(practice_id))
        .order(api_tokens::created_at)
        .select(API_TOKEN_COLUMNS)
        .load(conn)?;
    Ok(rows.into_iter().map(token_info).collect())
}

/// Revokes the practice's token whose id (hash prefix) is given; returns whether one was.
pub fn revoke_api_token(conn: &mut AnyConnection, practice_id: &str, id: &str) -> Result<bool> {
    if !is_token_id(id) {
        return Ok(false);
    }
    let n = diesel::update(
        api_tokens::table
            .filter(api_tokens::practice_id.eq(practice_id))
            .filter(api_tokens::token_hash.like(format!("{id}%")))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(now()))
    .execute(conn)?;
    Ok(n == 1)
}

/// Failed logins of a subject (`user:<name>` or `ip:<address>`) since `since`.
pub fn login_failures_since(
    conn: &mut AnyConnection,
    subject: &str,
    since: NaiveDateTime,
) -> Result<i64> {
    Ok(login_failures::table
        .filter(login_failures::subject.eq(subject))
        .filter(login_failures::at.gt(since))
        .count()
        .get_result(conn)?)
}

pub fn record_login_failure(conn: &mut AnyConnection, subjects: &[&str]) -> Result<()> {
    let at = now();
    for subject in subjects {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::subject.eq(*subject),
                login_failures::at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Forgets an account's failures after a successful login.
pub fn clear_login_failures(conn: &mut AnyConnection, subject: &str) -> Result<()> {
    diesel::delete(login_failures::table.filter(login_failures::subject.eq(subject)))
        .execute(conn)?;
    Ok(())
}
