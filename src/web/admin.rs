//! The practice admin's pages (German): users of the own practice, the practice's master
//! data, and the audit trail (filterable; never diagnosis or KVNR, which it does not hold).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;
use uuid::Uuid;

use super::pages::{html, see_other};
use super::{read_form, AppState, PracticeAdmin, WebError};
use crate::auth::{self, Role};
use crate::domain::{berlin_today, parse_date, FieldError, Practice};
use crate::service;
use crate::storage::{AuditEntry, AuditFilter, StorageError, UserInfo};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/admin/users", users)
        .post("/admin/users", add_user)
        .post("/admin/users/{id}/deactivate", deactivate)
        .get("/admin/practice", practice)
        .post("/admin/practice", save_practice)
        .get("/admin/audit", audit);
}

/// `dd.mm.yyyy hh:mm` in German local time, or a dash.
pub(super) fn when(t: Option<NaiveDateTime>) -> String {
    t.map_or_else(|| "–".into(), |t| super::pages::local(&t))
}

/// The field errors of `errors` by field name, for templates.
pub(super) fn by_field(errors: &[FieldError]) -> std::collections::BTreeMap<String, String> {
    errors
        .iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect()
}

/// 200, or 422 when the form has errors.
pub(super) fn status_of(errors: &[FieldError]) -> StatusCode {
    if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

// --- users ------------------------------------------------------------------------------------

struct UserView {
    id: String,
    is_me: bool,
    username: String,
    role: &'static str,
    created: String,
    active: bool,
    deactivated: String,
}

impl UserView {
    fn of(u: UserInfo, me: &str) -> Self {
        Self {
            is_me: u.id == me,
            role: Role::parse(&u.role).map_or("unbekannt", Role::label),
            active: u.deactivated_at.is_none(),
            deactivated: when(u.deactivated_at),
            created: when(Some(u.created_at)),
            id: u.id,
            username: u.username,
        }
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    users: Vec<UserView>,
    errors: Vec<FieldError>,
    by_field: std::collections::BTreeMap<String, String>,
    username: String,
    role: String,
}

impl UsersPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }
}

async fn render_users(
    admin: &PracticeAdmin,
    state: &AppState,
    form: NewUserForm,
    errors: Vec<FieldError>,
) -> Result<HttpResponse, WebError> {
    let practice = admin.practice_id.clone();
    let users = state.db.run(move |c| service::users(c, &practice)).await?;
    let page = UsersPage {
        nav_user: Some(&admin.user.username),
        nav_role: admin.role.as_str(),
        banner: super::Banner::load(state, admin.user.practice_id.as_deref()).await?,
        csrf: &admin.user.csrf_token,
        users: users
            .into_iter()
            .map(|u| UserView::of(u, &admin.user.user_id))
            .collect(),
        by_field: by_field(&errors),
        errors,
        username: form.username.unwrap_or_default(),
        role: form.role.unwrap_or_else(|| "staff".into()),
    };
    html(status_of(&page.errors), &page)
}

async fn users(admin: PracticeAdmin, state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    render_users(&admin, &state, NewUserForm::default(), Vec::new()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewUserForm {
    username: Option<String>,
    password: Option<String>,
    password_repeat: Option<String>,
    role: Option<String>,
}

/// A validated new account: `(username, password, role)`, or the German field errors.
pub(super) fn new_account(
    username: Option<&str>,
    password: Option<&str>,
    repeat: Option<&str>,
) -> Result<(String, String), Vec<FieldError>> {
    let mut errors = Vec::new();
    let username = username.unwrap_or_default().trim().to_owned();
    if let Err(e) = auth::check_username(&username) {
        errors.push(FieldError::new("username", e));
    }
    let password = password.unwrap_or_default().to_owned();
    if let Err(e) = auth::check_new_password(&username, &password) {
        errors.push(FieldError::new("password", e));
    } else if repeat.is_some_and(|r| r != password) {
        errors.push(FieldError::new(
            "password_repeat",
            "Passwort-Wiederholung: stimmt nicht überein",
        ));
    }
    if errors.is_empty() {
        Ok((username, password))
    } else {
        Err(errors)
    }
}

/// Hashes on the blocking pool (argon2id takes a while by design).
pub(super) async fn hash(password: String) -> Result<String, WebError> {
    web::block(move || auth::hash_password(&password))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))
}

impl NewUserForm {
    /// The validated account `(username, password, role)`, or the German field errors.
    fn account(&self) -> Result<(String, String, Role), Vec<FieldError>> {
        let role = match self.role.as_deref() {
            Some("admin") => Ok(Role::Admin),
            None | Some("staff") => Ok(Role::Staff),
            Some(_) => Err(FieldError::new(
                "role",
                "Rolle: Praxispersonal oder Praxisverwaltung",
            )),
        };
        let account = new_account(
            self.username.as_deref(),
            self.password.as_deref(),
            Some(self.password_repeat.as_deref().unwrap_or_default()),
        );
        match (account, role) {
            (Ok((username, password)), Ok(role)) => Ok((username, password, role)),
            (a, r) => {
                let mut errors = a.err().unwrap_or_default();
                errors.extend(r.err());
                Err(errors)
            }
        }
    }
}

async fn add_user(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: NewUserForm = read_form(&admin, &state, payload).await?;
    let (username, password, role) = match form.account() {
        Ok(account) => account,
        Err(errors) => return render_users(&admin, &state, form, errors).await,
    };
    let hash = hash(password).await?;
    let actor = admin.actor();
    let practice = admin.practice_id.clone();
    let created = state
        .db
        .run(move |c| service::add_user(c, &actor, Some(&practice), &username, &hash, role))
        .await;
    match created {
        Ok(()) => Ok(see_other("/admin/users")),
        Err(StorageError::Duplicate(_)) => {
            let e = FieldError::new("username", "Benutzername: bereits vergeben");
            render_users(&admin, &state, form, vec![e]).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn deactivate(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let _: NoFields = read_form(&admin, &state, payload).await?;
    let id = path.into_inner();
    if id == admin.user.user_id {
        return Err(WebError::Rule(
            "Das eigene Konto kann nicht deaktiviert werden",
        ));
    }
    let (actor, practice) = (admin.actor(), admin.practice_id.clone());
    let done = state
        .db
        .run(move |c| service::deactivate_user(c, &actor, &practice, &id))
        .await?;
    done.then(|| see_other("/admin/users"))
        .ok_or(WebError::NotFound)
}

/// A form that carries nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
struct NoFields {}

// --- master data ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct AddressForm {
    pub name: Option<String>,
    pub street: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub phone: Option<String>,
}

/// One text field: trimmed, 1 to `max` characters, printable on the paper copy (Latin-9, no
/// control characters).
pub(super) fn text_field(
    value: Option<&str>,
    field: &str,
    label: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> String {
    let v = value.unwrap_or_default().trim().to_owned();
    let n = v.chars().count();
    let printable = !v.chars().any(char::is_control) && !encoding_rs::ISO_8859_15.encode(&v).2;
    if n == 0 || n > max {
        errors.push(FieldError::new(
            field,
            format!("{label}: 1 bis {max} Zeichen"),
        ));
    } else if !printable {
        errors.push(FieldError::new(
            field,
            format!("{label}: enthält Zeichen, die auf dem Formular nicht druckbar sind"),
        ));
    }
    v
}

impl AddressForm {
    /// Applies the form to `practice` (its BSNR stays), collecting German field errors.
    pub(super) fn apply(&self, practice: &mut Practice, errors: &mut Vec<FieldError>) {
        practice.name = text_field(self.name.as_deref(), "name", "Name der Praxis", 80, errors);
        practice.street = text_field(self.street.as_deref(), "street", "Straße", 80, errors);
        practice.postal_code = self
            .postal_code
            .as_deref()
            .unwrap_or_default()
            .trim()
            .into();
        if practice.postal_code.len() != 5
            || !practice.postal_code.chars().all(|c| c.is_ascii_digit())
        {
            errors.push(FieldError::new("postal_code", "PLZ: fünf Ziffern"));
        }
        practice.city = text_field(self.city.as_deref(), "city", "Ort", 40, errors);
        practice.phone = text_field(self.phone.as_deref(), "phone", "Telefon", 30, errors);
        if !practice
            .phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +/-()".contains(c))
        {
            errors.push(FieldError::new(
                "phone",
                "Telefon: nur Ziffern, Leerzeichen und + / - ( )",
            ));
        }
    }
}

#[derive(Template)]
#[template(path = "practice.html")]
struct PracticePage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    practice: Practice,
    errors: Vec<FieldError>,
    by_field: std::collections::BTreeMap<String, String>,
    saved: bool,
}

impl PracticePage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }
}

async fn load_practice(admin: &PracticeAdmin, state: &AppState) -> Result<Practice, WebError> {
    let id = admin.practice_id.clone();
    Ok(state.db.run(move |c| service::practice(c, &id)).await?)
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

async fn practice(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    q: web::Query<SavedQuery>,
) -> Result<HttpResponse, WebError> {
    let practice = load_practice(&admin, &state).await?;
    render_practice(&state, &admin, practice, Vec::new(), q.saved.is_some()).await
}

async fn render_practice(
    state: &AppState,
    admin: &PracticeAdmin,
    practice: Practice,
    errors: Vec<FieldError>,
    saved: bool,
) -> Result<HttpResponse, WebError> {
    let page = PracticePage {
        nav_user: Some(&admin.user.username),
        nav_role: admin.role.as_str(),
        banner: super::Banner::load(state, admin.user.practice_id.as_deref()).await?,
        csrf: &admin.user.csrf_token,
        practice,
        by_field: by_field(&errors),
        errors,
        saved,
    };
    html(status_of(&page.errors), &page)
}

async fn save_practice(
    admin: PracticeAdmin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: AddressForm = read_form(&admin, &state, payload).await?;
    let mut practice = load_practice(&admin, &state).await?;
    let mut errors = Vec::new();
    form.apply(&mut practice, &mut errors);
    if !errors.is_empty() {
        return render_practice(&state, &admin, practice, errors, false).await;
    }
    let (actor, id) = (admin.actor(), admin.practice_id.clone());
    state
        .db
        .run(move |c| service::save_practice(c, &actor, &id, &practice))
        .await?;
    Ok(see_other("/admin/practice?saved=1"))
}

// --- audit ------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AuditQuery {
    action: String,
    user: String,
    from: String,
    to: String,
    certificate: String,
    page: Option<i64>,
}

struct AuditView {
    at: String,
    actor: String,
    action: String,
    certificate_id: String,
    detail: String,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            at: when(Some(e.at)),
            actor: e.actor,
            action: e.action,
            certificate_id: e.certificate_id.unwrap_or_default(),
            detail: e.detail,
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    /// `/admin/audit` or `/operator/audit`.
    base: &'static str,
    /// The operator's view: every practice (no links to certificate pages, which operators
    /// may not open).
    all_practices: bool,
    q: AuditQuery,
    actions: Vec<String>,
    errors: Vec<FieldError>,
    rows: Vec<AuditView>,
    total: i64,
    page: i64,
    pages: i64,
    /// The filter as a query string, for the page links.
    query: String,
}

use crate::service::AUDIT_PER_PAGE;

/// The first UTC instant of a German calendar day (CET or CEST).
fn berlin_midnight(d: NaiveDate) -> NaiveDateTime {
    let midnight = d.and_time(chrono::NaiveTime::MIN);
    [2, 1]
        .into_iter()
        .map(|h| midnight - chrono::Duration::hours(h))
        .find(|t| berlin_today(t.and_utc()) == d)
        .unwrap_or(midnight)
}

fn audit_filter(q: &AuditQuery) -> Result<AuditFilter, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut date = |v: &str, field: &str, label| match parse_date(v, label) {
        _ if v.trim().is_empty() => None,
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(FieldError::new(field, e.to_string()));
            None
        }
    };
    let from = date(&q.from, "from", "von");
    let to = date(&q.to, "to", "bis");
    if [&q.action, &q.user, &q.certificate]
        .iter()
        .any(|v| v.len() > 100 || v.chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "query",
            "Filter: höchstens 100 druckbare Zeichen",
        ));
    }
    let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let certificate_id = match some(&q.certificate) {
        None => None,
        Some(c) => match Uuid::parse_str(&c) {
            Ok(id) => Some(id.to_string()),
            Err(_) => {
                errors.push(FieldError::new(
                    "certificate",
                    "Bescheinigung: eine Dokument-ID (UUID) angeben",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AuditFilter {
        action: some(&q.action),
        user: some(&q.user),
        from: from.map(berlin_midnight),
        until: to.and_then(|d| d.succ_opt()).map(berlin_midnight),
        certificate_id,
    })
}

async fn audit(
    req: HttpRequest,
    admin: PracticeAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let practice = Some(admin.practice_id.clone());
    audit_page(&req, &admin, &state, practice, "/admin/audit").await
}

/// The operator's view: every practice's trail and the operators' own changes.
pub(super) async fn audit_all(
    req: HttpRequest,
    operator: super::Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    audit_page(&req, &operator, &state, None, "/operator/audit").await
}

impl AuditQuery {
    /// The query of the request, or why it is refused.
    fn of(req: &HttpRequest) -> Result<Self, FieldError> {
        serde_urlencoded::from_str(req.query_string()).map_err(|_| {
            FieldError::new(
                "query",
                "Abfrage ungültig: erlaubt sind action, user, from, to, certificate, page",
            )
        })
    }

    /// The filter as a query string, for the page links.
    fn link(&self) -> String {
        serde_urlencoded::to_string([
            ("action", &self.action),
            ("user", &self.user),
            ("from", &self.from),
            ("to", &self.to),
            ("certificate", &self.certificate),
        ])
        .unwrap_or_default()
    }
}

/// The audit page of one practice, or of all (`None`).
async fn audit_page(
    req: &HttpRequest,
    viewer: &super::Session,
    state: &AppState,
    practice: Option<String>,
    base: &'static str,
) -> Result<HttpResponse, WebError> {
    let q = AuditQuery::of(req)?;
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let filter = audit_filter(&q);
    let errors = filter.as_ref().err().cloned().unwrap_or_default();
    let all_practices = practice.is_none();
    let trail = state
        .db
        .run(move |c| service::audit_trail(c, practice.as_deref(), filter.as_ref().ok(), page))
        .await?;
    let view = AuditPage {
        nav_user: Some(&viewer.user.username),
        nav_role: viewer.role.as_str(),
        banner: super::Banner::load(state, viewer.user.practice_id.as_deref()).await?,
        csrf: &viewer.user.csrf_token,
        base,
        all_practices,
        actions: trail.actions,
        rows: trail.rows.into_iter().map(Into::into).collect(),
        total: trail.total,
        page,
        pages: (trail.total + AUDIT_PER_PAGE - 1) / AUDIT_PER_PAGE,
        query: q.link(),
        errors,
        q,
    };
    html(status_of(&view.errors), &view)
}
