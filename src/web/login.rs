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
use crate::service::{self, Login, Subjects};
use crate::storage::UserRow;

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/login", login_form)
        .post("/login", login)
        .post("/logout", logout);
}

/// The cookie holding the login form's CSRF token (only on `/login`).
pub const LOGIN_COOKIE: &str = "au_relay_login";

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
    let client = state.settings.trusted_proxies.client_of(&req);
    let subjects = Subjects::new(&username, client);
    match service::log_in(&state.db, &subjects, &username, form.password).await? {
        Login::Accepted(user) => start_session(&req, &state, user, subjects.account).await,
        Login::Throttled => {
            tracing::warn!("login throttled");
            Err(WebError::Throttled)
        }
        Login::Refused => {
            tracing::info!("login failed");
            let error = "Benutzername oder Passwort ist falsch.";
            login_page(
                &req,
                &state,
                StatusCode::UNAUTHORIZED,
                &username,
                Some(error),
            )
        }
    }
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
    let ttl = state.settings.session_ttl;
    let token = service::start_session(&state.db, &user.id, account, old, ttl).await?;
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
        .run(move |c| service::end_session(c, &hash))
        .await?;
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(gone)
        .finish())
}
