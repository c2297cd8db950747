//! Logging in, its throttling, sessions, and checking the current password before a change.
//! Failed logins are counted per account and per client address; a wrong current password
//! counts like a failed login of the account. Password checks run on the blocking pool
//! (argon2id takes a while by design) and never hold a database connection.

use std::time::Duration;

use crate::auth;
use crate::storage::{self, AnyConnection, Database, Result, StorageError, UserRow};

/// Failed logins within this window count towards throttling.
pub const THROTTLE_WINDOW_MINUTES: i64 = 15;
/// Failures per account, and per client address, before logins are refused for a while.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
const MAX_FAILURES_PER_ADDRESS: i64 = 30;

/// What failed logins are counted against.
#[derive(Debug, Clone)]
pub struct Subjects {
    pub account: String,
    pub address: String,
}

impl Subjects {
    /// The subjects of a login as `username` from the client `address`.
    pub fn new(username: &str, address: impl std::fmt::Display) -> Self {
        Self {
            account: account_of(username),
            address: format!("ip:{address}"),
        }
    }
}

/// The throttling subject of an account.
fn account_of(username: &str) -> String {
    format!("user:{}", username.to_lowercase())
}

/// The outcome of a login attempt.
#[derive(Debug)]
pub enum Login {
    /// Too many failures of the account or the address: not even checked.
    Throttled,
    /// Wrong name or password (the same time for both); counted.
    Refused,
    Accepted(UserRow),
}

/// Checks a login: the user whose password this is, unless the account or the address is
/// throttled. A refusal is counted against both.
pub async fn log_in(
    db: &Database,
    subjects: &Subjects,
    username: &str,
    password: String,
) -> Result<Login> {
    let (lookup, account, address) = (
        username.to_owned(),
        subjects.account.clone(),
        subjects.address.clone(),
    );
    let (user, throttled) = db
        .run(move |c| {
            let since = throttle_start();
            let throttled = storage::login_failures_since(c, &account, since)?
                >= MAX_FAILURES_PER_ACCOUNT
                || storage::login_failures_since(c, &address, since)? >= MAX_FAILURES_PER_ADDRESS;
            // A name with control characters (NUL breaks PostgreSQL text) exists nowhere.
            let user = if lookup.chars().any(char::is_control) {
                None
            } else {
                storage::find_user(c, &lookup)?
            };
            Ok((user, throttled))
        })
        .await?;
    if throttled {
        return Ok(Login::Throttled);
    }
    let hash = user.as_ref().map_or_else(
        || auth::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let verified = verify(password, hash).await?;
    match user.filter(|_| verified) {
        Some(user) => Ok(Login::Accepted(user)),
        None => {
            let subjects = subjects.clone();
            db.run(move |c| {
                storage::record_login_failure(c, &[&subjects.account, &subjects.address])
            })
            .await?;
            Ok(Login::Refused)
        }
    }
}

/// The start of the window in which failures count.
fn throttle_start() -> chrono::NaiveDateTime {
    storage::now() - chrono::Duration::minutes(THROTTLE_WINDOW_MINUTES)
}

/// Whether `password` matches the PHC string `hash`, on the blocking pool.
async fn verify(password: String, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| StorageError::Task(e.to_string()))
}

/// A new session of the user for `ttl`; the presented session (its token hash) ends and the
/// account's failed logins are forgotten. Returns the session token for the cookie.
pub async fn start_session(
    db: &Database,
    user_id: &str,
    account: String,
    old: Option<String>,
    ttl: Duration,
) -> Result<String> {
    let token = auth::new_token();
    let (hash, csrf) = (auth::token_hash(&token), auth::new_token());
    let expires =
        storage::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12));
    let user_id = user_id.to_owned();
    db.run(move |c| {
        if let Some(old) = old {
            storage::delete_session(c, &old)?;
        }
        storage::clear_login_failures(c, &account)?;
        storage::create_session(c, &hash, &user_id, &csrf, expires)
    })
    .await?;
    Ok(token)
}

/// Ends the session with this token hash.
pub fn end_session(c: &mut AnyConnection, token_hash: &str) -> Result<()> {
    storage::delete_session(c, token_hash)
}

/// Whether the current password given before a change is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentPassword {
    /// The user is gone (deactivated meanwhile).
    NoUser,
    /// Too many wrong passwords (or failed logins) of the account: not checked.
    Throttled,
    /// Wrong, and counted like a failed login: a stolen session cannot guess on.
    Wrong,
    Right,
}

/// Checks the current password of the user `user_id`, named `username`.
pub async fn check_current_password(
    db: &Database,
    user_id: &str,
    username: &str,
    current: String,
) -> Result<CurrentPassword> {
    let account = account_of(username);
    let (user_id, subject) = (user_id.to_owned(), account.clone());
    let (stored, failures) = db
        .run(move |c| {
            Ok((
                storage::password_hash(c, &user_id)?,
                storage::login_failures_since(c, &subject, throttle_start())?,
            ))
        })
        .await?;
    let Some(stored) = stored else {
        return Ok(CurrentPassword::NoUser);
    };
    if failures >= MAX_FAILURES_PER_ACCOUNT {
        return Ok(CurrentPassword::Throttled);
    }
    if verify(current, stored).await? {
        return Ok(CurrentPassword::Right);
    }
    db.run(move |c| storage::record_login_failure(c, &[&account]))
        .await?;
    Ok(CurrentPassword::Wrong)
}
