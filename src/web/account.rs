//! The logged-in user's own account: changing the password (every role). The current password
//! is required; every other session of the user ends.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::admin::{by_field, hash};
use super::login::{MAX_FAILURES_PER_ACCOUNT, THROTTLE_WINDOW_MINUTES};
use super::pages::{html, see_other};
use super::{read_form, AppState, Session, WebError};
use crate::auth;
use crate::domain::FieldError;
use crate::storage;

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
    // Wrong current passwords count like failed logins: a stolen session cannot guess on.
    let account = format!("user:{}", session.user.username.to_lowercase());
    let (user_id, subject) = (session.user.user_id.clone(), account.clone());
    let (stored, failures) = state
        .db
        .run(move |c| {
            let since = storage::now() - chrono::Duration::minutes(THROTTLE_WINDOW_MINUTES);
            Ok((
                storage::password_hash(c, &user_id)?,
                storage::login_failures_since(c, &subject, since)?,
            ))
        })
        .await?;
    let stored = stored.ok_or(WebError::LoginRequired)?;
    if failures >= MAX_FAILURES_PER_ACCOUNT {
        return Err(WebError::Throttled);
    }
    let current = form.current.unwrap_or_default();
    let verified = web::block(move || auth::verify_password(&current, &stored))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let mut errors = Vec::new();
    if !verified {
        state
            .db
            .run(move |c| storage::record_login_failure(c, &[&account]))
            .await?;
        errors.push(FieldError::new(
            "current",
            "Bisheriges Passwort: stimmt nicht",
        ));
    }
    let new = form.password.unwrap_or_default();
    if let Err(e) = auth::check_new_password(&session.user.username, &new) {
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
    let (user_id, keep, actor) = (
        session.user.user_id.clone(),
        session.token_hash.clone(),
        session.actor(),
    );
    state
        .db
        .run(move |c| {
            storage::atomically(c, |c| {
                storage::set_password(c, &user_id, &hash, &keep)?;
                storage::audit(c, &actor, "user.password_changed", None, "")?;
                Ok(())
            })
        })
        .await?;
    tracing::info!("password changed");
    Ok(see_other("/account/password?changed=1"))
}
