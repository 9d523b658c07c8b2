//! Initial access token pages (RFC 7591 §3): list, create (the value is shown once, in
//! the response to the POST), revoke. With `registration = "token"`, a client registers
//! itself at `/register` only with one of these.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::initial_tokens::{DEFAULT_DAYS, MAX_DAYS, NewInitialAccessToken, status};
use portcullis_core::registration::RegistrationMode;
use serde::Deserialize;
use uuid::Uuid;

use super::AdminState;
use super::auth::{Chrome, Operator, Writer};
use super::clients::ButtonForm;
use super::error::{AdminError, AdminResult, PagePath};
use super::forms::FormErrors;
use super::view::{SENT_AGAIN, mark_sent, sent_before, set_notice, when};
use crate::csrf::CsrfForm;
use crate::error::PageError;
use crate::page::{render, see_other};

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub uses_left: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
}

/// The create form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    pub name: String,
    /// Days until it expires; empty for the default.
    #[serde(default)]
    pub days: String,
    /// Registrations it allows; empty for no limit.
    #[serde(default)]
    pub uses: String,
    /// `view::form_marker`.
    #[serde(default)]
    pub once: String,
}

#[derive(Template)]
#[template(path = "admin/initial_tokens.html")]
pub struct InitialTokensPage {
    pub chrome: Chrome,
    /// `registration = "token"`: the tokens are what registration takes.
    pub in_use: bool,
    pub tokens: Vec<TokenRow>,
    pub form: NewTokenForm,
    pub errors: FormErrors,
    pub default_days: u32,
}

async fn list_page(state: &AdminState, op: &Operator, form: NewTokenForm, errors: FormErrors) -> AdminResult {
    let now = state.core.now();
    let tokens = state.core.list_initial_access_tokens().await?;
    let status_code = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = InitialTokensPage {
        chrome: op.chrome("initial-tokens").await?,
        in_use: state.core.settings.registration == RegistrationMode::Token,
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id.to_string(),
                state: status(&t, now),
                uses_left: t.uses_left.map_or_else(|| "no limit".to_owned(), |n| n.to_string()),
                name: t.name,
                created_by: t.created_by,
                created_at: when(t.created_at),
                expires_at: when(t.expires_at),
            })
            .collect(),
        form,
        errors,
        default_days: DEFAULT_DAYS,
    };
    Ok(render(status_code, &page)?)
}

/// `GET /admin/initial-tokens`.
pub async fn initial_tokens_get(State(state): State<AdminState>, op: Operator) -> AdminResult {
    list_page(&state, &op, NewTokenForm::default(), FormErrors::none()).await
}

#[derive(Template)]
#[template(path = "admin/initial_token_created.html")]
pub struct InitialTokenCreatedPage {
    pub chrome: Chrome,
    pub name: String,
    pub expires_at: String,
    pub uses: String,
    pub value: String,
}

fn parse_form(form: &NewTokenForm) -> Result<NewInitialAccessToken, FormErrors> {
    let days = match form.days.trim() {
        "" => None,
        d => Some(
            d.parse::<u32>()
                .ok()
                .filter(|d| (1..=MAX_DAYS).contains(d))
                .ok_or_else(|| FormErrors::one("days", format!("must be a number of days from 1 to {MAX_DAYS}")))?,
        ),
    };
    let uses = match form.uses.trim() {
        "" => None,
        u => Some(u.parse::<u32>().ok().filter(|u| *u >= 1).ok_or_else(|| {
            FormErrors::one(
                "uses",
                "must be a number of registrations, 1 or more, or empty for no limit",
            )
        })?),
    };
    Ok(NewInitialAccessToken {
        name: form.name.clone(),
        days,
        uses,
    })
}

/// `POST /admin/initial-tokens`: creates a token and shows its value, once.
pub async fn initial_tokens_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    CsrfForm(form): CsrfForm<NewTokenForm>,
) -> AdminResult {
    if sent_before(&op.session, &form.once).await? {
        set_notice(&op.session, SENT_AGAIN).await?;
        return Ok(see_other("/admin/initial-tokens")?);
    }
    let input = match parse_form(&form) {
        Ok(i) => i,
        Err(errors) => return list_page(&state, &op, form, errors).await,
    };
    match state.core.create_initial_access_token(&input, &op.actor()).await {
        Ok((token, value)) => {
            mark_sent(&op.session, &form.once).await?;
            let page = InitialTokenCreatedPage {
                chrome: op.chrome("initial-tokens").await?,
                name: token.name,
                expires_at: when(token.expires_at),
                uses: token.uses_left.map_or_else(|| "no limit".to_owned(), |n| n.to_string()),
                value: value.expose().to_owned(),
            };
            Ok(render(StatusCode::OK, &page)?)
        }
        Err(portcullis_core::Error::Invalid { field, message }) => {
            list_page(&state, &op, form, FormErrors::one(field, message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/initial-tokens/{id}/revoke`: registrations with it stop at once.
pub async fn initial_token_revoke_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    let id = Uuid::parse_str(&id).map_err(|_| AdminError::Page(PageError::NotFound))?;
    state.core.revoke_initial_access_token(id, &op.actor()).await?;
    set_notice(&op.session, "Initial access token revoked.").await?;
    Ok(see_other("/admin/initial-tokens")?)
}
