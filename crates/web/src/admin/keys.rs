//! Signing keys: their state (next, active, retired) and rotation.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_protocol::SigningAlg;
use serde::Deserialize;

use super::AdminState;
use super::auth::{Chrome, Operator, Writer};
use super::error::{AdminError, AdminResult};
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
}

#[derive(Template)]
#[template(path = "admin/keys.html")]
pub struct KeysPage {
    pub chrome: Chrome,
    pub keys: Vec<KeyRow>,
    /// The algorithms that have keys: access tokens' and ID tokens' (RS256).
    pub algs: Vec<&'static str>,
    pub default_alg: &'static str,
}

impl KeysPage {
    pub fn is_default(&self, alg: &str) -> bool {
        alg == self.default_alg
    }
}

/// `GET /admin/keys`.
pub async fn keys_get(State(state): State<AdminState>, op: Operator) -> AdminResult {
    let keys = state.core.list_signing_keys().await?;
    let page = KeysPage {
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
            })
            .collect(),
        algs: state.core.settings.key_algs().iter().map(|a| a.as_str()).collect(),
        default_alg: state.core.settings.signing_alg.as_str(),
    };
    Ok(render(StatusCode::OK, &page)?)
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    pub alg: String,
}

/// `POST /admin/keys/rotate`: the algorithm's next key starts signing; a new next key is
/// published.
pub async fn keys_rotate_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    CsrfForm(form): CsrfForm<RotateForm>,
) -> AdminResult {
    let alg = SigningAlg::parse(&form.alg)
        .map_err(|_| AdminError::Page(PageError::BadRequest("Choose RS256, ES256 or EdDSA.".into())))?;
    let kid = state.core.rotate_signing_keys(Some(alg), &op.actor()).await?;
    set_notice(
        &op.session,
        format!("Rotated the {alg} keys: the next key now signs; the new next key is {kid}."),
    )
    .await?;
    Ok(see_other("/admin/keys")?)
}
