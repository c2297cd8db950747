//! Practices, doctors, staff users, sessions and API tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{api_tokens, doctors, practices, sessions, users};
use super::{now, AnyConnection, Result, StorageError};
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
}

/// Inserts a practice and returns its id.
pub fn create_practice(conn: &mut AnyConnection, p: &Practice) -> Result<String> {
    let id = Uuid::new_v4().to_string();
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
        .execute(conn)?;
    Ok(id)
}

/// Adds a practice with its first doctor and, optionally, a staff user `(name, password hash)`
/// and an API token hash, all in one transaction. Returns the practice id.
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
            create_user(c, &id, name, hash, "staff")?;
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
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((practice, doctors))
}

/// A staff account as needed to log in.
#[derive(Debug, Clone, Queryable)]
pub struct UserRow {
    pub id: String,
    pub practice_id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
}

pub fn create_user(
    conn: &mut AnyConnection,
    practice_id: &str,
    username: &str,
    password_hash: &str,
    role: &str,
) -> Result<String> {
    let id = Uuid::new_v4().to_string();
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&id),
            users::practice_id.eq(practice_id),
            users::username.eq(username),
            users::password_hash.eq(password_hash),
            users::role.eq(role),
            users::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(id)
}

pub fn find_user(conn: &mut AnyConnection, username: &str) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::username.eq(username))
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

/// Who a valid session belongs to.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user_id: String,
    pub username: String,
    pub practice_id: String,
    pub role: String,
    pub csrf_token: String,
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
        ))
        .execute(conn)?;
    Ok(())
}

pub fn session_user(conn: &mut AnyConnection, token_hash: &str) -> Result<Option<SessionUser>> {
    let row: Option<(String, String, String, String, String)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(now()))
        .select((
            users::id,
            users::username,
            users::practice_id,
            users::role,
            sessions::csrf_token,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(user_id, username, practice_id, role, csrf_token)| SessionUser {
            user_id,
            username,
            practice_id,
            role,
            csrf_token,
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

/// The practice an API token belongs to.
pub fn api_token_practice(conn: &mut AnyConnection, token_hash: &str) -> Result<Option<String>> {
    Ok(api_tokens::table
        .find(token_hash)
        .select(api_tokens::practice_id)
        .first(conn)
        .optional()?)
}
