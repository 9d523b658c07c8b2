//! Signing keys: their state (next, active, retired) and rotation.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::model::KeyState;
use portcullis_protocol::SigningAlg;
use serde::Deserialize;

use super::AdminState;
use super::auth::{Chrome, Operator, Writer};
use super::clients::ButtonForm;
use super::error::{AdminError, AdminResult, PagePath};
use super::view::{set_notice, when, when_opt};
use crate::csrf::CsrfForm;
use crate::error::PageError;
use crate::page::{render, see_other};

pub struct KeyRow {
    pub kid: String,
    pub alg: &'static str,
    pub state: &'static str,
    pub created_at: String,
    pub activated_at: String,
    pub retired_at: String,
    pub publish_until: String,
    /// A retired key still published: it can be withdrawn.
    pub withdrawable: bool,
}

#[derive(Template)]
#[template(path = "admin/keys.html")]
pub struct KeysPage {
    pub chrome: Chrome,
    pub keys: Vec<KeyRow>,
    /// The algorithms that have keys: access tokens' and ID tokens' (RS256).
    pub algs: Vec<&'static str>,
    pub default_alg: &'static str,
    /// A rotation just refused, and why.
    pub refused: Option<Refused>,
}

pub struct Refused {
    pub alg: &'static str,
    pub message: String,
}

impl KeysPage {
    /// The algorithm preselected: the one just refused, else the access tokens'.
    pub fn is_default(&self, alg: &str) -> bool {
        alg == self.refused.as_ref().map_or(self.default_alg, |r| r.alg)
    }
}

/// `GET /admin/keys`.
pub async fn keys_get(State(state): State<AdminState>, op: Operator) -> AdminResult {
    let page = keys_page(&state, &op, None).await?;
    Ok(render(StatusCode::OK, &page)?)
}

async fn keys_page(state: &AdminState, op: &Operator, refused: Option<Refused>) -> Result<KeysPage, AdminError> {
    let keys = state.core.list_signing_keys().await?;
    let now = state.core.now();
    Ok(KeysPage {
        chrome: op.chrome("keys").await?,
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                kid: k.kid,
                alg: k.alg.as_str(),
                state: k.state.as_str(),
                created_at: when(k.created_at),
                activated_at: when_opt(k.activated_at),
                retired_at: when_opt(k.retired_at),
                publish_until: when_opt(k.publish_until),
                withdrawable: k.state == KeyState::Retired && k.publish_until.is_some_and(|t| t > now),
            })
            .collect(),
        algs: state.core.settings.key_algs().iter().map(|a| a.as_str()).collect(),
        default_alg: state.core.settings.signing_alg.as_str(),
        refused,
    })
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    pub alg: String,
    /// The "rotate anyway" checkbox.
    pub force: Option<String>,
}

/// `POST /admin/keys/rotate`: the algorithm's next key starts signing; a new next key is
/// published. A next key published too recently is refused (the page again, with why and
/// a "rotate anyway" box) unless forced.
pub async fn keys_rotate_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    CsrfForm(form): CsrfForm<RotateForm>,
) -> AdminResult {
    let alg = SigningAlg::parse(&form.alg)
        .map_err(|_| AdminError::Page(PageError::BadRequest("Choose RS256, ES256 or EdDSA.".into())))?;
    let force = form.force.as_deref().is_some_and(super::forms::is_checked);
    let message = match state.core.rotate_signing_keys(Some(alg), force, &op.actor()).await {
        Ok(kid) => {
            set_notice(
                &op.session,
                format!("Rotated the {alg} keys: the next key now signs; the new next key is {kid}."),
            )
            .await?;
            return Ok(see_other("/admin/keys")?);
        }
        Err(portcullis_core::Error::Invalid {
            field: "force",
            message,
        }) => format!("Forcing the rotation {message}."),
        Err(portcullis_core::Error::Conflict(_)) => {
            format!("Another rotation of the {alg} keys was done meanwhile; look at the keys again.")
        }
        Err(e) => return Err(e.into()),
    };
    let refused = Refused {
        alg: alg.as_str(),
        message,
    };
    let page = keys_page(&state, &op, Some(refused)).await?;
    Ok(render(StatusCode::CONFLICT, &page)?)
}

/// `POST /admin/keys/{kid}/withdraw`: a retired key leaves the JWKS at once (a key that
/// leaked); the tokens it signed stop validating.
pub async fn key_withdraw_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(kid): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    state.core.withdraw_signing_key(&kid, &op.actor()).await?;
    set_notice(
        &op.session,
        format!("Withdrew {kid}: no longer published; the tokens it signed are refused."),
    )
    .await?;
    Ok(see_other("/admin/keys")?)
}
