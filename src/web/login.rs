//! Login and logout of staff, practice admins and operators.
//!
//! The login form carries a CSRF token too (a forged login would sign a victim into the
//! attacker's account): before there is a session, the token is a random value in a cookie of
//! its own, repeated in the form (double submit). A post whose token does not match the cookie
//! is refused with 403 before any database work.
//!
//! Failed logins are throttled per account and per client address; behind a reverse proxy the
//! client address comes from [`super::proxy::TrustedProxies`].

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::form::from_form;
use super::pages::{csrf_of, html};
use super::session::constant_time_eq;
use super::{read_body, AppState, Session, WebError, SESSION_COOKIE};
use crate::auth::{self, Role};
use crate::storage::{self, UserRow};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/login", login_form)
        .post("/login", login)
        .post("/logout", logout);
}

/// The cookie holding the login form's CSRF token (only on `/login`).
pub const LOGIN_COOKIE: &str = "au_relay_login";

/// Failed logins within this window count towards throttling.
pub(super) const THROTTLE_WINDOW_MINUTES: i64 = 15;
/// Failures per account, and per client address, before logins are refused for a while.
pub(super) const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
const MAX_FAILURES_PER_ADDRESS: i64 = 30;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

/// The login page with its form token, keeping the cookie's token where there is one.
fn login_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Result<HttpResponse, WebError> {
    let token = form_token(req).unwrap_or_else(auth::new_token);
    let page = LoginPage {
        nav_user: None,
        nav_role: "",
        banner: super::Banner::default(),
        csrf: &token,
        username,
        error,
    };
    let mut response = html(status, &page)?;
    let cookie = Cookie::build(LOGIN_COOKIE, token)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.secure_cookies)
        .max_age(time::Duration::hours(12))
        .finish();
    response
        .add_cookie(&cookie)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(response)
}

/// The login form token of the request's cookie, if it has the shape of one.
fn form_token(req: &HttpRequest) -> Option<String> {
    let value = req.cookie(LOGIN_COOKIE)?.value().to_owned();
    (value.len() >= 32 && value.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(value)
}

async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    login_page(&req, &state, StatusCode::OK, "", None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let form: LoginForm = from_form(&body)?;
    let username = form.username.trim().to_owned();
    let token_matches =
        form_token(&req).is_some_and(|t| constant_time_eq(t.as_bytes(), form.csrf.as_bytes()));
    if !token_matches {
        tracing::info!("login refused: form token missing or wrong");
        let error = "Das Anmeldeformular ist abgelaufen. Bitte erneut anmelden.";
        return login_page(&req, &state, StatusCode::FORBIDDEN, &username, Some(error));
    }
    let subjects = Subjects {
        account: format!("user:{}", username.to_lowercase()),
        address: format!("ip:{}", state.settings.trusted_proxies.client_of(&req)),
    };
    let Some(user) = check_password(&state, &subjects, &username, form.password).await? else {
        tracing::info!("login failed");
        state
            .db
            .run(move |c| storage::record_login_failure(c, &[&subjects.account, &subjects.address]))
            .await?;
        let error = "Benutzername oder Passwort ist falsch.";
        return login_page(
            &req,
            &state,
            StatusCode::UNAUTHORIZED,
            &username,
            Some(error),
        );
    };
    start_session(&req, &state, user, subjects.account).await
}

/// What failed logins are counted against.
struct Subjects {
    account: String,
    address: String,
}

/// The user whose password this is, `None` for a wrong name or password (same time for
/// both); 429 while the account or the address is throttled.
async fn check_password(
    state: &AppState,
    subjects: &Subjects,
    username: &str,
    password: String,
) -> Result<Option<UserRow>, WebError> {
    let (lookup, account, address) = (
        username.to_owned(),
        subjects.account.clone(),
        subjects.address.clone(),
    );
    let (user, throttled) = state
        .db
        .run(move |c| {
            let since = storage::now() - chrono::Duration::minutes(THROTTLE_WINDOW_MINUTES);
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
        tracing::warn!("login throttled");
        return Err(WebError::Throttled);
    }
    let hash = user.as_ref().map_or_else(
        || auth::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let verified = web::block(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(user.filter(|_| verified))
}

/// A new session id on every login (no session fixation): a presented one ends here.
async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    user: UserRow,
    account: String,
) -> Result<HttpResponse, WebError> {
    let old = req
        .cookie(SESSION_COOKIE)
        .map(|c| auth::token_hash(c.value()));
    let token = auth::new_token();
    let (hash, csrf) = (auth::token_hash(&token), auth::new_token());
    let ttl = state.settings.session_ttl;
    let expires =
        storage::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12));
    let user_id = user.id.clone();
    state
        .db
        .run(move |c| {
            if let Some(old) = old {
                storage::delete_session(c, &old)?;
            }
            storage::clear_login_failures(c, &account)?;
            storage::create_session(c, &hash, &user_id, &csrf, expires)
        })
        .await?;
    tracing::info!(user = %user.username, "login");
    let cookie = Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.secure_cookies)
        .max_age(time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(43_200),
        ))
        .finish();
    let mut used = Cookie::build(LOGIN_COOKIE, "").path("/login").finish();
    used.make_removal();
    let start = match Role::parse(&user.role) {
        Some(Role::Operator) => "/operator",
        Some(Role::Insurer) => "/kasse/scans",
        _ => "/certificates",
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, start))
        .cookie(cookie)
        .cookie(used)
        .finish())
}

async fn logout(
    staff: Session,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    staff.check_csrf(csrf_of(&body)?.as_deref())?;
    let hash = staff.token_hash.clone();
    state
        .db
        .run(move |c| storage::delete_session(c, &hash))
        .await?;
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(gone)
        .finish())
}
