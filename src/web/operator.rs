//! The operator's pages (German): practices (list, add with its first doctor and practice
//! admin) and API tokens of practices and insurers (create, shown once; list with last use;
//! revoke). No patient data is reachable from here.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::admin::{by_field, hash, new_account, text_field, when, AddressForm};
use super::pages::{html, see_other};
use super::{read_form, AppState, Operator, WebError};
use crate::auth;
use crate::domain::{Bsnr, Doctor, FieldError, InsurerIk, Land, Lanr, Practice};
use crate::service::{self, TokenOwner};
use crate::storage::{self, PracticeInfo, StorageError, TokenInfo, UserInfo};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/operator", overview)
        .get("/operator/audit", super::admin::audit_all)
        .post("/operator/practices", add_practice)
        .post("/operator/tokens", create_token)
        .get("/operator/tokens/created", token_created)
        .post("/operator/tokens/revoke", revoke_token)
        .post("/operator/insurer-users", add_insurer_user);
}

struct TokenView {
    /// `practice` or `insurer`.
    kind: &'static str,
    /// BSNR or IK.
    owner: String,
    id: String,
    label: String,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

fn token_view(kind: &'static str, (owner, t): (String, TokenInfo)) -> TokenView {
    TokenView {
        kind,
        owner,
        id: t.id,
        label: t.label,
        created: when(Some(t.created_at)),
        last_used: when(t.last_used_at),
        revoked: t.revoked_at.map(|r| when(Some(r))),
    }
}

#[derive(Template)]
#[template(path = "operator.html")]
struct OperatorPage<'a> {
    nav_user: Option<&'a str>,
    nav_role: &'a str,
    banner: super::Banner,
    csrf: &'a str,
    practices: Vec<PracticeInfo>,
    tokens: Vec<TokenView>,
    /// `(IK, user name, created)` of the insurer accounts.
    insurer_users: Vec<(String, String, String)>,
    lands: Vec<String>,
    /// A token just created: shown this once.
    new_token: Option<(String, String)>,
    by_field: std::collections::BTreeMap<String, String>,
    form: PracticeForm,
}

impl OperatorPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }
}

async fn render(
    operator: &Operator,
    state: &AppState,
    form: PracticeForm,
    errors: Vec<FieldError>,
    new_token: Option<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let overview = state.db.run(service::operator_overview).await?;
    let status = super::admin::status_of(&errors);
    let page = OperatorPage {
        nav_user: Some(&operator.user.username),
        nav_role: operator.role.as_str(),
        banner: super::Banner::load(state, operator.user.practice_id.as_deref()).await?,
        csrf: &operator.user.csrf_token,
        tokens: token_views(overview.api_tokens, overview.insurer_tokens),
        insurer_users: insurer_user_views(overview.insurer_users),
        practices: overview.practices,
        lands: Land::ALL.iter().map(|l| l.code().to_owned()).collect(),
        new_token,
        by_field: by_field(&errors),
        form,
    };
    html(status, &page)
}

fn token_views(api: Vec<(String, TokenInfo)>, insurer: Vec<(String, TokenInfo)>) -> Vec<TokenView> {
    api.into_iter()
        .map(|t| token_view("practice", t))
        .chain(insurer.into_iter().map(|t| token_view("insurer", t)))
        .collect()
}

/// `(IK, user name, created)` of the active insurer accounts.
fn insurer_user_views(users: Vec<(String, UserInfo)>) -> Vec<(String, String, String)> {
    users
        .into_iter()
        .filter(|(_, u)| u.deactivated_at.is_none())
        .map(|(ik, u)| (ik, u.username, when(Some(u.created_at))))
        .collect()
}

async fn overview(
    operator: Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    render(&operator, &state, PracticeForm::default(), Vec::new(), None).await
}

// --- practices --------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PracticeForm {
    bsnr: Option<String>,
    land: Option<String>,
    #[serde(flatten)]
    address: AddressForm,
    lanr: Option<String>,
    doctor_name: Option<String>,
    admin_username: Option<String>,
    admin_password: Option<String>,
}

/// The value, or its error noted for `field`.
fn noted<T, E: std::fmt::Display>(
    r: Result<T, E>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    r.map_err(|e| errors.push(FieldError::new(field, e.to_string())))
        .ok()
}

/// The practice, its first doctor, its Land and first admin `(name, password)`, or the errors.
type NewPractice = (Practice, Doctor, Land, (String, String));

fn parse_practice(f: &PracticeForm) -> Result<NewPractice, Vec<FieldError>> {
    let mut errors = Vec::new();
    let text = |v: &Option<String>| v.as_deref().unwrap_or_default().trim().to_owned();
    let bsnr = noted(Bsnr::parse(&text(&f.bsnr)), "bsnr", &mut errors);
    let lanr = noted(Lanr::parse(&text(&f.lanr)), "lanr", &mut errors);
    let land = noted(
        Land::parse(&text(&f.land)).ok_or("Land: bitte auswählen"),
        "land",
        &mut errors,
    );
    let doctor_name = text_field(
        f.doctor_name.as_deref(),
        "doctor_name",
        "Arzt/Ärztin",
        80,
        &mut errors,
    );
    let account = new_account(
        f.admin_username.as_deref(),
        f.admin_password.as_deref(),
        None,
    )
    .map_err(|errs| {
        errors.extend(
            errs.into_iter()
                .map(|e| FieldError::new(format!("admin_{}", e.field), e.message)),
        )
    })
    .ok();
    let (Some(bsnr), Some(lanr), Some(land), Some(account)) = (bsnr, lanr, land, account) else {
        return Err(errors);
    };
    let mut practice = Practice {
        bsnr,
        id_kind: Default::default(),
        name: String::new(),
        street: String::new(),
        postal_code: String::new(),
        city: String::new(),
        phone: String::new(),
        more: Default::default(),
    };
    f.address.apply(&mut practice, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let doctor = Doctor {
        lanr,
        name: doctor_name,
        specialty: String::new(),
        qualification: Default::default(),
        id_kind: Default::default(),
        name_parts: None,
        telematik_id: None,
    };
    Ok((practice, doctor, land, account))
}

async fn add_practice(
    operator: Operator,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: PracticeForm = read_form(&operator, &state, payload).await?;
    let (practice, doctor, land, (username, password)) = match parse_practice(&form) {
        Ok(p) => p,
        Err(errors) => return render(&operator, &state, form, errors, None).await,
    };
    let hash = hash(password).await?;
    let actor = operator.actor();
    let added = state
        .db
        .run(move |c| {
            let admin = Some((username.as_str(), hash.as_str()));
            service::add_practice(c, &actor, &practice, &doctor, land, admin).map(drop)
        })
        .await;
    let taken = match added {
        Ok(()) => return Ok(see_other("/operator")),
        Err(StorageError::Duplicate("bsnr")) => {
            FieldError::new("bsnr", "BSNR: Praxis existiert bereits")
        }
        Err(StorageError::Duplicate(_)) => {
            FieldError::new("admin_username", "Benutzername: bereits vergeben")
        }
        Err(e) => return Err(e.into()),
    };
    render(&operator, &state, form, vec![taken], None).await
}

// --- tokens -----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenForm {
    kind: Option<String>,
    owner: Option<String>,
    label: Option<String>,
    id: Option<String>,
}

/// Resolves `kind` and `owner` (BSNR or IK) of a token form.
async fn owner(state: &AppState, form: &TokenForm) -> Result<TokenOwner, WebError> {
    let owner = form.owner.as_deref().unwrap_or_default().trim().to_owned();
    match form.kind.as_deref() {
        Some("practice") => {
            let bsnr = Bsnr::parse(&owner).map_err(|e| FieldError::new("owner", e.to_string()))?;
            let shown = bsnr.to_string();
            let id = state
                .db
                .run(move |c| service::practice_id_by_bsnr(c, &bsnr))
                .await?
                .ok_or_else(|| FieldError::new("owner", "BSNR: keine solche Praxis"))?;
            Ok(TokenOwner::Practice { id, bsnr: shown })
        }
        Some("insurer") => {
            let ik =
                InsurerIk::parse(&owner).map_err(|e| FieldError::new("owner", e.to_string()))?;
            Ok(TokenOwner::Insurer { ik: ik.to_string() })
        }
        _ => Err(FieldError::new("kind", "Art: Praxis-Software oder Krankenkasse").into()),
    }
}

async fn create_token(
    operator: Operator,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: TokenForm = read_form(&operator, &state, payload).await?;
    let mut errors = Vec::new();
    let label = text_field(
        form.label.as_deref(),
        "label",
        "Bezeichnung",
        60,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(WebError::Invalid(errors));
    }
    let owner = owner(&state, &form).await?;
    let token = auth::new_token();
    let (hash, actor) = (auth::token_hash(&token), operator.actor());
    let flash = format!("{}.{token}", owner.shown());
    state
        .db
        .run(move |c| service::create_token(c, &actor, &owner, &hash, &label))
        .await?;
    // Post/redirect/get: a reload of the page that shows the token creates no second one.
    // The token travels to the page in a cookie of this browser only, read once.
    let flash = Cookie::build(NEW_TOKEN_COOKIE, flash)
        .path(CREATED_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.secure_cookies)
        .max_age(time::Duration::minutes(5))
        .finish();
    let mut response = see_other(CREATED_PATH);
    response
        .add_cookie(&flash)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(response)
}

/// Carries a new token from its post to the page that shows it once.
const NEW_TOKEN_COOKIE: &str = "au_relay_new_token";
const CREATED_PATH: &str = "/operator/tokens/created";

/// The page after a token was created: shows it once, then forgets it.
async fn token_created(
    req: HttpRequest,
    operator: Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let new_token = req.cookie(NEW_TOKEN_COOKIE).and_then(|c| {
        let (owner, token) = c.value().split_once('.')?;
        let well_formed = (1..=32).contains(&owner.len())
            && owner.bytes().all(|b| b.is_ascii_alphanumeric())
            && token.len() == 64
            && token.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed.then(|| (owner.to_owned(), token.to_owned()))
    });
    if new_token.is_none() {
        return Ok(see_other("/operator"));
    }
    let mut response = render(
        &operator,
        &state,
        PracticeForm::default(),
        Vec::new(),
        new_token,
    )
    .await?;
    let mut gone = Cookie::build(NEW_TOKEN_COOKIE, "")
        .path(CREATED_PATH)
        .finish();
    gone.make_removal();
    response
        .add_cookie(&gone)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

async fn revoke_token(
    operator: Operator,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: TokenForm = read_form(&operator, &state, payload).await?;
    let id = form.id.clone().unwrap_or_default();
    if !storage::is_token_id(&id) {
        return Err(WebError::NotFound);
    }
    let owner = owner(&state, &form).await?;
    let actor = operator.actor();
    let revoked = state
        .db
        .run(move |c| service::revoke_token(c, &actor, &owner, &id))
        .await?;
    revoked
        .then(|| see_other("/operator"))
        .ok_or(WebError::NotFound)
}

// --- insurer accounts -------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InsurerUserForm {
    ik: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl InsurerUserForm {
    /// The insurer and the account `(IK, username, password)`, or the errors.
    fn parse(&self) -> Result<(InsurerIk, String, String), Vec<FieldError>> {
        let mut errors = Vec::new();
        let ik = noted(
            InsurerIk::parse(self.ik.as_deref().unwrap_or_default().trim()),
            "insurer_ik",
            &mut errors,
        );
        let account = new_account(self.username.as_deref(), self.password.as_deref(), None)
            .map_err(|errs| {
                errors.extend(
                    errs.into_iter()
                        .map(|e| FieldError::new(format!("insurer_{}", e.field), e.message)),
                )
            })
            .ok();
        match (ik, account) {
            (Some(ik), Some((username, password))) => Ok((ik, username, password)),
            _ => Err(errors),
        }
    }
}

/// Adds a clerk's account for an insurer (IK): scanned KK copies, nothing of any practice.
async fn add_insurer_user(
    operator: Operator,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let form: InsurerUserForm = read_form(&operator, &state, payload).await?;
    let (ik, username, password) = match form.parse() {
        Ok(account) => account,
        Err(errors) => {
            return render(&operator, &state, PracticeForm::default(), errors, None).await
        }
    };
    let hash = hash(password).await?;
    let actor = operator.actor();
    let added = state
        .db
        .run(move |c| service::add_insurer_user(c, &actor, ik.as_str(), &username, &hash))
        .await;
    let errors = match added {
        Ok(()) => return Ok(see_other("/operator")),
        Err(StorageError::Duplicate(_)) => vec![FieldError::new(
            "insurer_username",
            "Benutzername: bereits vergeben",
        )],
        Err(e) => return Err(e.into()),
    };
    render(&operator, &state, PracticeForm::default(), errors, None).await
}
