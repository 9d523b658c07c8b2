//! The login page: username and password, for a pending authorization request or on its
//! own.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use portcullis_core::authorize::{AuthSession, Next};
use portcullis_core::crypto::random_token;
use portcullis_protocol::Secret;
use serde::Deserialize;
use tower_sessions::Session;

use crate::authorize::{proceed, unless_next};
use crate::csrf::{self, CheckedForm, CsrfToken};
use crate::error::{PageError, too_many_message, with_retry_after};
use crate::page::{render, see_other};
use crate::pending;
use crate::session_store::{AUTH_KEY, CLIENT_KEY, SessionClient, current_auth, stored_auth};
use crate::{AppState, ClientIp};

/// Shown for any failed login: it must not tell whether the username exists.
pub const BAD_CREDENTIALS: &str = "The username or password is not correct.";

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf: &'a str,
    pub req: Option<&'a str>,
    pub client_name: Option<&'a str>,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// The client registered itself (RFC 7591); `redirect_host` is where it sends back to.
    pub self_registered: bool,
    pub redirect_host: String,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
pub struct SignedInPage<'a> {
    pub username: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    pub req: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    pub req: Option<String>,
}

/// `GET /login[?req=…]`.
pub async fn login_get(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = q.map_err(|_| PageError::Expired)?;
    let req = match q.req.as_deref() {
        Some(id) => Some(pending::get(&state.core, &session, id).await?),
        None => None,
    };
    // Signed in meanwhile (in another tab) and this request needs no fresh login: on to
    // its next step rather than asking for the password again.
    if let (Some(id), Some(req)) = (q.req.as_deref(), req.as_ref())
        && let Some(auth) = current_auth(&state, &session).await?
        && let Some(elsewhere) = unless_next(&state, &session, id, req, &auth, |n| matches!(n, Next::Login)).await?
    {
        return Ok(elsewhere);
    }
    let page = LoginPage {
        csrf: &csrf,
        req: q.req.as_deref(),
        client_name: req.as_ref().map(|r| r.client_name.as_str()),
        self_registered: req.as_ref().is_some_and(|r| r.self_registered),
        redirect_host: req
            .as_ref()
            .map(|r| crate::consent::redirect_host(&r.redirect_uri))
            .unwrap_or_default(),
        username: req.as_ref().and_then(|r| r.login_hint.as_deref()).unwrap_or_default(),
        error: None,
    };
    render(StatusCode::OK, &page)
}

/// Said when a login form comes back with a token the session no longer has (the page
/// was left open while the person signed in or out in another tab, or the session ended).
const STALE_FORM: &str = "This page had expired, so nothing was sent. Please sign in again.";

/// A login form whose token did not match: nothing in it is acted on (the password is
/// not even checked). Signed in meanwhile as the account the form names, the request
/// goes on to its next step, as `login_get` would; otherwise (nobody signed in, or
/// someone else: a shared computer's next person must not go on as the last) the form
/// again, with a fresh token and the username as typed. A request that has gone with
/// its session was already answered with `PageError::Expired` (back to the application
/// to start again).
async fn stale_form(
    state: &AppState,
    session: &Session,
    form: &LoginForm,
    pending: Option<&(&str, portcullis_core::authorize::AuthorizationRequest)>,
) -> Result<Response, PageError> {
    if let Some((id, req)) = pending
        && let Some(auth) = current_auth(state, session).await?
        && state
            .core
            .get_user(auth.user_id)
            .await
            .is_ok_and(|u| u.username.eq_ignore_ascii_case(form.username.trim()))
        && let Some(elsewhere) = unless_next(state, session, id, req, &auth, |n| matches!(n, Next::Login)).await?
    {
        return Ok(elsewhere);
    }
    form_again(session, form, pending, StatusCode::OK, STALE_FORM).await
}

/// The sign-in form sent back with `error`: a fresh token, the username as typed, and
/// the pending request it is for, if any.
async fn form_again(
    session: &Session,
    form: &LoginForm,
    pending: Option<&(&str, portcullis_core::authorize::AuthorizationRequest)>,
    status: StatusCode,
    error: &str,
) -> Result<Response, PageError> {
    let csrf = csrf::token(session).await?;
    let req = pending.map(|(_, r)| r);
    let page = LoginPage {
        csrf: &csrf,
        req: pending.map(|(id, _)| *id),
        client_name: req.map(|r| r.client_name.as_str()),
        self_registered: req.is_some_and(|r| r.self_registered),
        redirect_host: req
            .map(|r| crate::consent::redirect_host(&r.redirect_uri))
            .unwrap_or_default(),
        username: &form.username,
        error: Some(error),
    };
    render(status, &page)
}

/// At most this much of the User-Agent is kept with the session.
const MAX_USER_AGENT: usize = 256;

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(header::USER_AGENT)?.to_str().ok()?;
    Some(ua.chars().take(MAX_USER_AGENT).collect())
}

/// `POST /login`.
pub async fn login_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CheckedForm(form, token_matched): CheckedForm<LoginForm>,
) -> Result<Response, PageError> {
    if crate::page::without_session(&session) {
        // With the request it was for, whose page then says it is no longer open (its
        // session is gone), rather than a bare form that would end on the account page.
        return see_other(&match form.req.as_deref() {
            Some(req) => format!(
                "/login?req={}",
                url::form_urlencoded::byte_serialize(req.as_bytes()).collect::<String>()
            ),
            None => "/login".to_owned(),
        });
    }
    // An expired request fails before the password is checked.
    let pending = match form.req.as_deref() {
        Some(id) => Some((id, pending::get(&state.core, &session, id).await?)),
        None => None,
    };
    if !token_matched {
        return stale_form(&state, &session, &form, pending.as_ref()).await;
    }
    let user = match state.core.login(&form.username, &form.password, ip.clone()).await {
        Ok(user) => user,
        Err(portcullis_core::Error::BadCredentials) => {
            return form_again(&session, &form, pending.as_ref(), StatusCode::OK, BAD_CREDENTIALS).await;
        }
        // Throttled or locked out: the same page, with the wait (issue 6).
        Err(portcullis_core::Error::RateLimited { retry_after }) => {
            let status = StatusCode::TOO_MANY_REQUESTS;
            let page = form_again(
                &session,
                &form,
                pending.as_ref(),
                status,
                &too_many_message(retry_after),
            )
            .await?;
            return Ok(with_retry_after(page, Some(retry_after)));
        }
        Err(e) => return Err(e.into()),
    };
    // The same person signing in again (prompt=login, max_age) keeps the session's
    // `sid`, so the clients signed in from it are still told when it ends (OIDC
    // Back-Channel Logout); another person's sign-in ends the previous one's session,
    // and its clients are told now.
    let sid = match stored_auth(&session).await? {
        Some(previous) if previous.user_id == user.id => previous.sid,
        Some(previous) => {
            // A sign-out of the previous person, recorded as one.
            state.core.logged_out(previous.user_id, &previous.sid, ip.clone()).await;
            random_token()?
        }
        None => random_token()?,
    };
    // A new session id on every change of privilege, against session fixation; the
    // CSRF token goes with the old id.
    session.cycle_id().await?;
    csrf::rotate(&session).await?;
    let auth = AuthSession {
        user_id: user.id,
        auth_time: state.core.now().unix_timestamp(),
        sid,
        stamp: portcullis_core::admin::password_stamp(&user.password_hash),
    };
    session.insert(AUTH_KEY, &auth).await?;
    // Set when the account page sent the person here; read once, below or never.
    let back_to_account = session
        .remove::<bool>(crate::account::BACK_TO_ACCOUNT)
        .await?
        .unwrap_or(false);
    let back_to_device = session.remove::<String>(crate::device::BACK_TO_DEVICE).await?;
    session
        .insert(
            CLIENT_KEY,
            SessionClient {
                ip,
                user_agent: user_agent(&headers),
            },
        )
        .await?;
    match pending {
        Some((id, mut req)) => {
            // Satisfies prompt=login (OIDC Core §3.1.2.1).
            req.interaction.login_done = true;
            proceed(&state, &session, id, &req).await
        }
        None => match back_to_device {
            // Sent here from the device verification page: back to it, code and all.
            Some(code) => see_other(&crate::device::after_sign_in(&code)),
            // Sent here from the account page: back to it.
            None if back_to_account => see_other("/account"),
            None => render(
                StatusCode::OK,
                &SignedInPage {
                    username: &user.username,
                },
            ),
        },
    }
}
