//! Who is asking: a logged-in user (session cookie) of a role, practice software or an insurer
//! (bearer token). Refusals: no session → 303 to `/login`, wrong role → 403, no or unknown
//! token → 401.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use super::{ApiError, AppState, WebError};
use crate::auth::{token_hash, Role};
use crate::storage::{self, SessionUser};

/// Name of the session cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "au_relay_session";

/// Anyone logged in (any role). Extracting it from a request without a valid session answers
/// with a redirect to the login page: no page is ever open.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: SessionUser,
    pub role: Role,
    pub token_hash: String,
}

impl Session {
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

    /// The audit actor of this user's requests (an operator's rows have no practice).
    pub fn actor(&self) -> storage::Actor {
        storage::Actor {
            practice_id: self.user.practice_id.clone().unwrap_or_default(),
            name: self.user.username.clone(),
            channel: "web",
        }
    }
}

/// A member of one practice: staff or practice admin. Operators are refused (403): they
/// never reach patient data through the staff pages.
#[derive(Debug, Clone)]
pub struct Staff {
    pub session: Session,
    pub practice_id: String,
}

impl std::ops::Deref for Staff {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

/// A practice admin of one practice (users, master data, audit view, TI Störung).
#[derive(Debug, Clone)]
pub struct PracticeAdmin(pub Staff);

impl std::ops::Deref for PracticeAdmin {
    type Target = Staff;
    fn deref(&self) -> &Staff {
        &self.0
    }
}

/// An operator: insurer destinations, practices, tokens. Bound to no practice.
#[derive(Debug, Clone)]
pub struct Operator(pub Session);

impl std::ops::Deref for Operator {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.0
    }
}

/// A clerk of one insurer: uploads scanned KK copies and reads the matches of its own IK only.
#[derive(Debug, Clone)]
pub struct InsurerUser {
    pub session: Session,
    pub ik: String,
}

impl std::ops::Deref for InsurerUser {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SHA-256 of the request's bearer token. The scheme name is case-insensitive
/// (RFC 7235 §2.1): `bearer`, `BEARER` and `Bearer` alike.
pub(super) fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token_hash(token.trim()))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, WebError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| WebError::Internal("application state missing".into()))
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, WebError>>>>;

impl FromRequest for Session {
    type Error = WebError;
    type Future = Extracted<Self>;

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
            let role = Role::parse(&user.role)
                .ok_or_else(|| WebError::Internal("unknown role stored".into()))?;
            Ok(Session {
                user,
                role,
                token_hash: hash,
            })
        })
    }
}

/// Extracts the session, then keeps it only if `admit` says so (else 403).
fn admitted<T: 'static>(
    req: &HttpRequest,
    admit: fn(Session) -> Option<T>,
    refusal: &'static str,
) -> Extracted<T> {
    let session = Session::extract(req);
    Box::pin(async move { admit(session.await?).ok_or(WebError::Forbidden(refusal)) })
}

fn practice_member(s: Session) -> Option<Staff> {
    let practice_id = s
        .user
        .practice_id
        .clone()
        .filter(|_| s.role.in_practice())?;
    Some(Staff {
        session: s,
        practice_id,
    })
}

impl FromRequest for Staff {
    type Error = WebError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        admitted(req, practice_member, "nur für Praxispersonal")
    }
}

impl FromRequest for PracticeAdmin {
    type Error = WebError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        admitted(
            req,
            |s| {
                practice_member(s)
                    .filter(|m| m.role == Role::Admin)
                    .map(PracticeAdmin)
            },
            "nur für die Praxisverwaltung",
        )
    }
}

impl FromRequest for Operator {
    type Error = WebError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        admitted(
            req,
            |s| (s.role == Role::Operator).then_some(Operator(s)),
            "nur für den Betrieb",
        )
    }
}

impl FromRequest for InsurerUser {
    type Error = WebError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        admitted(
            req,
            |s| {
                let ik = s
                    .user
                    .insurer_ik
                    .clone()
                    .filter(|_| s.role == Role::Insurer)?;
                Some(InsurerUser { session: s, ik })
            },
            "nur für Krankenkassen",
        )
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
