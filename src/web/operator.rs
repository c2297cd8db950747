//! The operator's pages (German): practices (list, add with its first doctor and practice
//! admin) and API tokens of practices and insurers (create, shown once; list with last use;
//! revoke). No patient data is reachable from here.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::admin::{by_field, hash, new_account, text_field, when, AddressForm};
use super::pages::{html, see_other};
use super::{read_form, AppState, Operator, WebError};
use crate::auth;
use crate::domain::{Bsnr, Doctor, FieldError, InsurerIk, Land, Lanr, Practice};
use crate::storage::{self, PracticeInfo, StorageError, TokenInfo};

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/operator", overview)
        .get("/operator/audit", super::admin::audit_all)
        .post("/operator/practices", add_practice)
        .post("/operator/tokens", create_token)
        .post("/operator/tokens/revoke", revoke_token);
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
    csrf: &'a str,
    practices: Vec<PracticeInfo>,
    tokens: Vec<TokenView>,
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
    let (practices, api, insurer) = state
        .db
        .run(|c| {
            Ok((
                storage::list_practices(c)?,
                storage::list_all_api_tokens(c)?,
                storage::list_all_insurer_tokens(c)?,
            ))
        })
        .await?;
    let tokens = api
        .into_iter()
        .map(|t| token_view("practice", t))
        .chain(insurer.into_iter().map(|t| token_view("insurer", t)))
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = OperatorPage {
        nav_user: Some(&operator.user.username),
        nav_role: operator.role.as_str(),
        csrf: &operator.user.csrf_token,
        practices,
        tokens,
        lands: Land::ALL.iter().map(|l| l.code().to_owned()).collect(),
        new_token,
        by_field: by_field(&errors),
        form,
    };
    html(status, &page)
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
            storage::atomically(c, |c| {
                let id =
                    storage::add_practice(c, &practice, &doctor, Some((&username, &hash)), None)?;
                storage::set_practice_land(c, &id, land)?;
                let what = format!("BSNR {}, Verwaltung {username}", practice.bsnr);
                storage::audit(c, &actor, "practice.added", None, &what)?;
                Ok(())
            })
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

/// Which token table, and the owner's key (practice id or IK).
enum Owner {
    Practice(String),
    Insurer(String),
}

/// Resolves `kind` and `owner` (BSNR or IK) of a token form.
async fn owner(state: &AppState, form: &TokenForm) -> Result<Owner, WebError> {
    let owner = form.owner.as_deref().unwrap_or_default().trim().to_owned();
    match form.kind.as_deref() {
        Some("practice") => {
            let bsnr = Bsnr::parse(&owner).map_err(|e| FieldError::new("owner", e.to_string()))?;
            let id = state
                .db
                .run(move |c| storage::practice_id_by_bsnr(c, &bsnr))
                .await?
                .ok_or_else(|| FieldError::new("owner", "BSNR: keine solche Praxis"))?;
            Ok(Owner::Practice(id))
        }
        Some("insurer") => {
            let ik =
                InsurerIk::parse(&owner).map_err(|e| FieldError::new("owner", e.to_string()))?;
            Ok(Owner::Insurer(ik.to_string()))
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
    let shown = form.owner.as_deref().unwrap_or_default().trim().to_owned();
    let what = format!("{shown}: {label}");
    state
        .db
        .run(move |c| {
            storage::atomically(c, |c| {
                match &owner {
                    Owner::Practice(id) => storage::create_api_token(c, &hash, id, &label)?,
                    Owner::Insurer(ik) => storage::create_insurer_token(c, &hash, ik, &label)?,
                }
                storage::audit(c, &actor, "token.created", None, &what)?;
                Ok(())
            })
        })
        .await?;
    render(
        &operator,
        &state,
        PracticeForm::default(),
        Vec::new(),
        Some((shown, token)),
    )
    .await
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
        .run(move |c| {
            storage::atomically(c, |c| {
                let revoked = match &owner {
                    Owner::Practice(p) => storage::revoke_api_token(c, p, &id)?,
                    Owner::Insurer(ik) => storage::revoke_insurer_token(c, ik, &id)?,
                };
                if revoked {
                    storage::audit(c, &actor, "token.revoked", None, &id)?;
                }
                Ok(revoked)
            })
        })
        .await?;
    revoked
        .then(|| see_other("/operator"))
        .ok_or(WebError::NotFound)
}
