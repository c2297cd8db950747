//! The logged-in user's own account: changing the password (every role). The current password
//! is required; every other session of the user ends.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::admin::{by_field, hash};
use super::pages::{html, see_other};
use super::{read_form, AppState, Session, WebError};
use crate::auth;
use crate::domain::FieldError;
use crate::service::{self, CurrentPassword};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/account/password", password_form)
        .post("/account/password", change_password);
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    by_field: std::collections::BTreeMap<String, String>,
    changed: bool,
}

impl PasswordPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }
}

async fn render(
    state: &AppState,
    session: &Session,
    errors: &[FieldError],
    changed: bool,
) -> Result<HttpResponse, WebError> {
    let page = PasswordPage {
        nav_user: Some(&session.user.username),
        nav_role: session.role.as_str(),
        banner: super::Banner::load(state, session.user.practice_id.as_deref()).await?,
        csrf: &session.user.csrf_token,
        by_field: by_field(errors),
        changed,
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    html(status, &page)
}

#[derive(Deserialize)]
struct ChangedQuery {
    changed: Option<String>,
}

async fn password_form(
    session: Session,
    state: web::Data<AppState>,
    q: web::Query<ChangedQuery>,
) -> Result<HttpResponse, WebError> {
    render(&state, &session, &[], q.changed.is_some()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordForm {
    current: Option<String>,
    password: Option<String>,
    password_repeat: Option<String>,
}

async fn change_password(
    session: Session,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: PasswordForm = read_form(&session, &state, payload).await?;
    let (user_id, username) = (&session.user.user_id, &session.user.username);
    let current = form.current.clone().unwrap_or_default();
    let mut errors = Vec::new();
    match service::check_current_password(&state.db, user_id, username, current).await? {
        CurrentPassword::NoUser => return Err(WebError::LoginRequired),
        CurrentPassword::Throttled => return Err(WebError::Throttled),
        CurrentPassword::Wrong => errors.push(FieldError::new(
            "current",
            "Bisheriges Passwort: stimmt nicht",
        )),
        CurrentPassword::Right => {}
    }
    let new = form.password.unwrap_or_default();
    if let Err(e) = auth::check_new_password(username, &new) {
        errors.push(FieldError::new("password", e));
    } else if form.password_repeat.as_deref() != Some(new.as_str()) {
        errors.push(FieldError::new(
            "password_repeat",
            "Passwort-Wiederholung: stimmt nicht überein",
        ));
    }
    if !errors.is_empty() {
        return render(&state, &session, &errors, false).await;
    }
    let hash = hash(new).await?;
    let (user_id, keep, actor) = (user_id.clone(), session.token_hash.clone(), session.actor());
    state
        .db
        .run(move |c| service::set_password(c, &actor, &user_id, &hash, &keep))
        .await?;
    tracing::info!("password changed");
    Ok(see_other("/account/password?changed=1"))
}
