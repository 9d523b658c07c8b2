//! The device verification page (RFC 8628 §3.3): a signed-in person types the code their
//! device shows, sees which application asks for what, and allows or denies it. Sign-in
//! comes first, so only people with an account can try codes at all, and each code typed
//! counts against the address's `rate_limit_device` (§5.1). A code filled in from the
//! link a device showed (`verification_uri_complete`) is only filled in: the person still
//! confirms it, then allows (§5.4).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::device::{DeviceOutcome, PendingDevice};
use portcullis_core::model::User;
use portcullis_core::throttle::Bucket;
use serde::Deserialize;
use tower_sessions::Session;

use crate::consent::{Decision, allow_logo, displayable, scope_lines};
use crate::csrf::{CheckedForm, CsrfForm, CsrfToken};
use crate::error::{PageError, too_many_message, with_retry_after};
use crate::page::{render, see_other};
use crate::session_store::current_user;
use crate::{AppState, ClientIp, csrf};

/// Session key: the person opened the verification page signed out, so the sign-in goes
/// back to it; the value is the code they came with (empty if none).
pub const BACK_TO_DEVICE: &str = "back_to_device";

/// What a person may have typed: longer input is not a code, and is not shown back.
const MAX_TYPED: usize = 32;

const CHANGED: &str = "What the application asks for has changed since this page was shown. Check it again.";

const NOT_WAITING: &str =
    "That code is not valid, or it has expired or been used. Check the code your device shows now.";

#[derive(Template)]
#[template(path = "device.html")]
pub struct DevicePage<'a> {
    pub csrf: &'a str,
    pub username: &'a str,
    pub user_code: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
pub struct DeviceConfirmPage<'a> {
    pub csrf: &'a str,
    pub username: &'a str,
    pub client_name: &'a str,
    /// As the device shows it: `WDJB-MJHT`.
    pub user_code: &'a str,
    /// The scope shown, as a string: what an Allow grants.
    pub scope: String,
    pub scopes: Vec<String>,
    pub logo_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    /// Why the page is shown again.
    pub notice: Option<&'a str>,
    /// When the device asked ("3 minutes ago") and from where (§5.4).
    pub requested: String,
    pub requested_from: Option<&'a str>,
    /// The client registered itself (RFC 7591): the page says so.
    pub self_registered: bool,
}

#[derive(Template)]
#[template(path = "device_done.html")]
pub struct DeviceDonePage<'a> {
    pub allowed: bool,
    pub client_name: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct DeviceQuery {
    pub user_code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DeviceForm {
    #[serde(default)]
    pub user_code: String,
}

#[derive(Debug, Deserialize)]
pub struct DeviceDecisionForm {
    pub user_code: String,
    /// The scope the confirmation page showed.
    #[serde(default)]
    pub scope: String,
    pub decision: Decision,
}

fn typed(code: &str) -> &str {
    if code.chars().count() > MAX_TYPED {
        ""
    } else {
        code.trim()
    }
}

/// Signed out: sign in first, then back here with `code` filled in.
async fn sign_in_first(session: &Session, code: &str) -> Result<Response, PageError> {
    session.remove_value(crate::account::BACK_TO_ACCOUNT).await?;
    session.insert(BACK_TO_DEVICE, typed(code)).await?;
    see_other("/login")
}

/// Where the sign-in goes after the person came from the verification page.
pub fn after_sign_in(code: &str) -> String {
    match typed(code) {
        "" => "/device".to_owned(),
        code => format!(
            "/device?user_code={}",
            url::form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()
        ),
    }
}

/// The code form, with `error` when the last code was refused.
fn code_page(csrf: &str, username: &str, user_code: &str, error: Option<&str>) -> Result<Response, PageError> {
    let page = DevicePage {
        csrf,
        username,
        user_code: typed(user_code),
        error,
    };
    render(StatusCode::OK, &page)
}

/// Counts one code typed by `user` from `ip`, against the address's allowance and the
/// account's (DESIGN §5: per IP and per account): the code form again, with the wait,
/// when over either.
fn throttled(
    state: &AppState,
    ip: Option<&str>,
    csrf: &str,
    user: &User,
    code: &str,
) -> Result<Option<Response>, PageError> {
    let throttle = &state.core.throttle;
    let account = format!("account {}", user.id);
    let Err(portcullis_core::Error::RateLimited { retry_after }) = throttle
        .check(Bucket::DeviceIp, ip)
        .and_then(|()| throttle.check(Bucket::DeviceIp, Some(&account)))
    else {
        return Ok(None);
    };
    let page = DevicePage {
        csrf,
        username: &user.username,
        user_code: typed(code),
        error: Some(&too_many_message(retry_after)),
    };
    let response = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
    Ok(Some(with_retry_after(response, Some(retry_after))))
}

/// `GET /device[?user_code=…]`: the code form, filled in with the code from the device's
/// link, if any.
pub async fn device_get(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    q: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let code = q.map(|Query(q)| q.user_code.unwrap_or_default()).unwrap_or_default();
    let Some((_, user)) = current_user(&state, &session).await? else {
        return sign_in_first(&session, &code).await;
    };
    code_page(&csrf, &user.username, &code, None)
}

/// `POST /device`: the code typed; the confirmation page for its request, or the form
/// again saying the code is not waiting.
pub async fn device_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<DeviceForm>,
) -> Result<Response, PageError> {
    let Some((_, user)) = current_user(&state, &session).await? else {
        return sign_in_first(&session, &form.user_code).await;
    };
    let csrf = csrf::token(&session).await?;
    if let Some(wait) = throttled(&state, ip.as_deref(), &csrf, &user, &form.user_code)? {
        return Ok(wait);
    }
    let Some(pending) = state.core.pending_device(&form.user_code).await? else {
        return code_page(&csrf, &user.username, &form.user_code, Some(NOT_WAITING));
    };
    confirm_page(&state, &csrf, &user.username, &pending, None)
}

/// How long ago `at` was, in words.
fn ago(now: time::OffsetDateTime, at: time::OffsetDateTime) -> String {
    match (now - at).whole_minutes() {
        ..1 => "less than a minute ago".to_owned(),
        1 => "a minute ago".to_owned(),
        n => format!("{n} minutes ago"),
    }
}

/// The confirmation page of `pending`, with `notice` when it is shown again.
fn confirm_page(
    state: &AppState,
    csrf: &str,
    username: &str,
    pending: &PendingDevice,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let logo = crate::consent::client_logo(&pending.client);
    let shown = portcullis_core::device::display_user_code(&pending.user_code);
    let scope = pending.scope.as_string();
    let page = DeviceConfirmPage {
        csrf,
        username,
        client_name: &pending.client.name,
        user_code: &shown,
        scopes: scope_lines(&scope),
        scope,
        logo_uri: logo.as_ref().map(|u| u.as_str().to_owned()),
        policy_uri: displayable(pending.client.policy_uri.as_deref()).map(|u| u.as_str().to_owned()),
        tos_uri: displayable(pending.client.tos_uri.as_deref()).map(|u| u.as_str().to_owned()),
        notice,
        requested: ago(state.core.now(), pending.requested_at),
        requested_from: pending.requested_from.as_deref(),
        self_registered: pending.client.self_registered,
    };
    let mut response = render(StatusCode::OK, &page)?;
    allow_logo(&mut response, logo.as_ref());
    Ok(response)
}

/// `POST /device/decision` with `decision=allow|deny`: recorded on the request, which
/// the device learns at its next poll.
pub async fn device_decision_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CheckedForm(form, token_matched): CheckedForm<DeviceDecisionForm>,
) -> Result<Response, PageError> {
    if crate::page::without_session(&session) {
        return see_other(&after_sign_in(&form.user_code));
    }
    let Some((auth, user)) = current_user(&state, &session).await? else {
        return sign_in_first(&session, &form.user_code).await;
    };
    // A page left open while the session moved on (a sign-in as someone else in another
    // tab): nothing in it is acted on; the code is shown filled in, for whoever is signed
    // in now to look at and decide again.
    if !token_matched {
        return see_other(&format!(
            "/device?user_code={}",
            url::form_urlencoded::byte_serialize(form.user_code.as_bytes()).collect::<String>()
        ));
    }
    let csrf = csrf::token(&session).await?;
    // Posted straight, this form could be used to try codes too: it counts as one.
    if let Some(wait) = throttled(&state, ip.as_deref(), &csrf, &user, &form.user_code)? {
        return Ok(wait);
    }
    let allow = matches!(form.decision, Decision::Allow);
    let client = match state
        .core
        .decide_device(&form.user_code, &form.scope, &auth, allow, ip)
        .await?
    {
        DeviceOutcome::Decided(client) => client,
        DeviceOutcome::Changed(pending) => {
            return confirm_page(&state, &csrf, &user.username, &pending, Some(CHANGED));
        }
        // Decided in another tab, or expired, a moment ago.
        DeviceOutcome::Gone => return code_page(&csrf, &user.username, "", Some(NOT_WAITING)),
    };
    render(
        StatusCode::OK,
        &DeviceDonePage {
            allowed: allow,
            client_name: &client.name,
        },
    )
}
