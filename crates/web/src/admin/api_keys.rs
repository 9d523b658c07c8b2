//! API key pages: list, create (the value is shown once, in the response to the POST),
//! revoke. Keys authenticate scripts to the admin API with a role and an optional expiry.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::api_keys::NewApiKey;
use portcullis_core::model::AdminRole;
use serde::Deserialize;
use time::Duration;
use uuid::Uuid;

use super::AdminState;
use super::auth::{Chrome, Operator, Writer};
use super::clients::ButtonForm;
use super::error::{AdminError, AdminResult, PagePath};
use super::forms::FormErrors;
use super::view::{SENT_AGAIN, mark_sent, sent_before, set_notice, when, when_opt};
use crate::csrf::CsrfForm;
use crate::error::PageError;
use crate::page::{render, see_other};

/// The longest expiry the form offers, in days (ten years).
const MAX_DAYS: i64 = 3650;

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub state: &'static str,
}

/// The create form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: String,
    /// Days until it expires; empty for never.
    #[serde(default)]
    pub expires_in_days: String,
    /// `view::form_marker`.
    #[serde(default)]
    pub once: String,
}

#[derive(Template)]
#[template(path = "admin/api_keys.html")]
pub struct ApiKeysPage {
    pub chrome: Chrome,
    pub keys: Vec<KeyRow>,
    pub form: NewKeyForm,
    pub errors: FormErrors,
}

async fn list_page(state: &AdminState, op: &Operator, form: NewKeyForm, errors: FormErrors) -> AdminResult {
    let now = state.core.now();
    let keys = state.core.list_api_keys().await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = ApiKeysPage {
        chrome: op.chrome("api-keys").await?,
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                id: k.id.to_string(),
                state: k.state(now).as_str(),
                name: k.name,
                role: k.role.as_str(),
                created_by: k.created_by,
                created_at: when(k.created_at),
                expires_at: k.expires_at.map_or_else(|| "never".to_owned(), |t| when_opt(Some(t))),
            })
            .collect(),
        form,
        errors,
    };
    Ok(render(status, &page)?)
}

/// `GET /admin/api-keys`.
pub async fn api_keys_get(State(state): State<AdminState>, op: Operator) -> AdminResult {
    let form = NewKeyForm {
        role: "auditor".into(),
        ..NewKeyForm::default()
    };
    list_page(&state, &op, form, FormErrors::none()).await
}

#[derive(Template)]
#[template(path = "admin/api_key_created.html")]
pub struct ApiKeyCreatedPage {
    pub chrome: Chrome,
    pub name: String,
    pub role: &'static str,
    pub expires_at: String,
    pub value: String,
}

fn parse_form(form: &NewKeyForm, now: time::OffsetDateTime) -> Result<NewApiKey, FormErrors> {
    let role = AdminRole::parse(&form.role).ok_or_else(|| FormErrors::one("role", "choose admin or auditor"))?;
    let days = form.expires_in_days.trim();
    let expires_at = if days.is_empty() {
        None
    } else {
        let d = days
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                FormErrors::one(
                    "expires_in_days",
                    format!("must be a number of days from 1 to {MAX_DAYS}, or empty for never"),
                )
            })?;
        Some(now + Duration::days(d))
    };
    Ok(NewApiKey {
        name: form.name.clone(),
        role,
        expires_at,
    })
}

/// `POST /admin/api-keys`: creates a key and shows its value, once.
pub async fn api_keys_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    CsrfForm(form): CsrfForm<NewKeyForm>,
) -> AdminResult {
    if sent_before(&op.session, &form.once).await? {
        set_notice(&op.session, SENT_AGAIN).await?;
        return Ok(see_other("/admin/api-keys")?);
    }
    let input = match parse_form(&form, state.core.now()) {
        Ok(i) => i,
        Err(errors) => return list_page(&state, &op, form, errors).await,
    };
    match state.core.create_api_key(&input, &op.actor()).await {
        Ok((key, value)) => {
            mark_sent(&op.session, &form.once).await?;
            let page = ApiKeyCreatedPage {
                chrome: op.chrome("api-keys").await?,
                name: key.name,
                role: key.role.as_str(),
                expires_at: key.expires_at.map_or_else(|| "never".to_owned(), when),
                value: value.expose().to_owned(),
            };
            Ok(render(StatusCode::OK, &page)?)
        }
        Err(portcullis_core::Error::Invalid { field, message }) => {
            let field = if field == "expires_at" {
                "expires_in_days"
            } else {
                field
            };
            list_page(&state, &op, form, FormErrors::one(field, message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/api-keys/{id}/revoke`: the key stops working at once.
pub async fn api_key_revoke_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    let id = Uuid::parse_str(&id).map_err(|_| AdminError::Page(PageError::NotFound))?;
    state.core.revoke_api_key(id, &op.actor()).await?;
    set_notice(&op.session, "API key revoked.").await?;
    Ok(see_other("/admin/api-keys")?)
}
