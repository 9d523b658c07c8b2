//! The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0): validate the
//! request, ask the person to confirm, end the session, and go back to the client only
//! through a validated `post_logout_redirect_uri`.

use askama::Template;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::logout::LogoutParams;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::csrf::{self, CsrfForm, form_pairs};
use crate::error::PageError;
use crate::page::{render, see_other};
use crate::session_store::current_auth;
use crate::{AppState, ClientIp};

/// Session key of the validated logout waiting for confirmation.
const SESSION_KEY: &str = "logout";

/// A validated logout waiting for the person's confirmation. The redirect lives in the
/// session, never in the form, so the confirmation cannot be pointed elsewhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PendingLogout {
    client_name: Option<String>,
    redirect: Option<String>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub csrf: &'a str,
    pub client_name: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage<'a> {
    pub client_name: Option<&'a str>,
}

/// RP-Initiated Logout §2: the parameters this server reads; others are ignored.
/// An empty value counts as absent; a repeated parameter is an error.
fn logout_params(pairs: Vec<(String, String)>) -> Result<LogoutParams, PageError> {
    let mut p = LogoutParams::default();
    for (k, v) in pairs {
        let slot = match k.as_str() {
            "id_token_hint" => &mut p.id_token_hint,
            "client_id" => &mut p.client_id,
            "post_logout_redirect_uri" => &mut p.post_logout_redirect_uri,
            "state" => &mut p.state,
            _ => continue,
        };
        if slot.is_some() {
            return Err(PageError::BadRequest(format!(
                "The sign-out request repeats the parameter {k}."
            )));
        }
        *slot = Some(v).filter(|v| !v.is_empty());
    }
    Ok(p)
}

/// `GET /logout`: parameters in the query string.
pub async fn logout_get(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let pairs = form_pairs(query.as_deref().unwrap_or_default().as_bytes())?;
    start(&state, &session, pairs).await
}

/// `POST /logout`: the same request sent as a form (RP-Initiated Logout §2). This is the
/// client's request, not the person's confirmation, so it carries no CSRF token.
pub async fn logout_post(
    State(state): State<AppState>,
    session: Session,
    form: Result<RawForm, axum::extract::rejection::RawFormRejection>,
) -> Result<Response, PageError> {
    let RawForm(body) = form.map_err(|_| PageError::BadRequest("The sign-out request could not be read.".into()))?;
    start(&state, &session, form_pairs(&body)?).await
}

async fn start(state: &AppState, session: &Session, pairs: Vec<(String, String)>) -> Result<Response, PageError> {
    let params = logout_params(pairs)?;
    let logout = state.core.validate_logout(&params).await.map_err(|e| match e {
        // Names the parameter; nothing is redirected to an unvalidated URI.
        portcullis_core::Error::Invalid { field, message } => {
            PageError::BadRequest(format!("The sign-out request is not valid: {field} {message}."))
        }
        other => other.into(),
    })?;
    let pending = PendingLogout {
        client_name: logout.client_name,
        redirect: logout.redirect,
    };
    if current_auth(session).await?.is_none() {
        // Nobody is signed in here: nothing to confirm.
        return finish(pending);
    }
    session.insert(SESSION_KEY, &pending).await?;
    let csrf = csrf::token(session).await?;
    render(
        StatusCode::OK,
        &LogoutPage {
            csrf: &csrf,
            client_name: pending.client_name.as_deref(),
        },
    )
}

/// The confirmation form has no fields of its own besides `csrf`.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {}

/// `POST /logout/confirm`: the person confirmed; end the session.
pub async fn logout_confirm_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CsrfForm(ConfirmForm {}): CsrfForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let pending: PendingLogout = session.get(SESSION_KEY).await?.unwrap_or_default();
    if let Some(auth) = current_auth(&session).await? {
        state.core.logged_out(auth.user_id, ip);
    }
    // Deletes the row and clears the cookie.
    session.flush().await?;
    finish(pending)
}

fn finish(pending: PendingLogout) -> Result<Response, PageError> {
    match pending.redirect.as_deref() {
        Some(uri) => see_other(uri),
        None => render(
            StatusCode::OK,
            &SignedOutPage {
                client_name: pending.client_name.as_deref(),
            },
        ),
    }
}
