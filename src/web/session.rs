//! Who is asking: a logged-in staff member (session cookie) or practice software (bearer token).

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use super::{ApiError, AppState, WebError};
use crate::auth::token_hash;
use crate::storage::{self, SessionUser};

/// Name of the session cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "au_relay_session";

/// A logged-in staff member. Extracting it from a request without a valid session answers
/// with a redirect to the login page: no staff page is ever open.
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: SessionUser,
    pub token_hash: String,
}

impl Staff {
    /// Refuses a form whose CSRF token does not belong to this session.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), WebError> {
        if sent.is_some_and(|s| constant_time_eq(s.as_bytes(), self.user.csrf_token.as_bytes())) {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "Formular abgelaufen, bitte Seite neu laden",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SHA-256 of the request's bearer token.
fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| token_hash(t.trim()))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, WebError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| WebError::Internal("application state missing".into()))
}

impl FromRequest for Staff {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let cookie = req.cookie(SESSION_COOKIE).map(|c| token_hash(c.value()));
        let state = state(req);
        Box::pin(async move {
            let (state, hash) = (state?, cookie.ok_or(WebError::LoginRequired)?);
            let lookup = hash.clone();
            let idle = chrono::Duration::from_std(state.settings.session_idle)
                .unwrap_or(chrono::Duration::minutes(30));
            let user = state
                .db
                .run(move |c| storage::session_user(c, &lookup, idle))
                .await?
                .ok_or(WebError::LoginRequired)?;
            Ok(Staff {
                user,
                token_hash: hash,
            })
        })
    }
}

/// Practice software authenticated by `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub practice_id: String,
}

impl ApiClient {
    /// The audit actor of this client's requests.
    pub fn actor(&self, channel: &'static str) -> storage::Actor {
        storage::Actor {
            practice_id: self.practice_id.clone(),
            name: "api-token".into(),
            channel,
        }
    }
}

impl Staff {
    /// The audit actor of this staff member's requests.
    pub fn actor(&self) -> storage::Actor {
        storage::Actor {
            practice_id: self.user.practice_id.clone(),
            name: self.user.username.clone(),
            channel: "web",
        }
    }
}

type TokenLookup = fn(&mut storage::AnyConnection, &str) -> storage::Result<Option<String>>;

/// Resolves the request's bearer token with `lookup` (practice id or IK); 401 without one.
fn by_bearer(
    req: &HttpRequest,
    lookup: TokenLookup,
) -> Pin<Box<dyn Future<Output = Result<String, ApiError>>>> {
    let token = bearer(req);
    let state = state(req);
    Box::pin(async move {
        let (state, hash) = (state?, token.ok_or(WebError::LoginRequired)?);
        Ok(state
            .db
            .run(move |c| lookup(c, &hash))
            .await?
            .ok_or(WebError::LoginRequired)?)
    })
}

impl FromRequest for ApiClient {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = by_bearer(req, storage::api_token_practice);
        Box::pin(async move {
            Ok(ApiClient {
                practice_id: found.await?,
            })
        })
    }
}

/// An insurer authenticated by its bearer token; it sees only its own IK.
#[derive(Debug, Clone)]
pub struct InsurerClient {
    pub ik: String,
}

impl FromRequest for InsurerClient {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = by_bearer(req, storage::insurer_token_ik);
        Box::pin(async move { Ok(InsurerClient { ik: found.await? }) })
    }
}
