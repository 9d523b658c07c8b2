//! The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0): validate the
//! request, ask the person to confirm, end the session, and go back to the client only
//! through a validated `post_logout_redirect_uri`.

use askama::Template;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::logout::{Logout, LogoutParams};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::csrf::{self, CsrfForm, form_pairs};
use crate::error::PageError;
use crate::page::{as_get, render, see_other};
use crate::session_store::{current_auth, stored_auth};
use crate::{AppState, ClientIp};

/// Session key of the validated logouts waiting for confirmation.
const SESSION_KEY: &str = "logouts";
/// At most this many logouts wait per session; the oldest go first.
const MAX_PENDING: usize = 5;

/// A validated logout waiting for the person's confirmation. The redirect lives in the
/// session, never in the form, so the confirmation cannot be pointed elsewhere; the form
/// names its logout by a random id, so a logout request another page starts in the same
/// session meanwhile (another client's) does not take over a confirmation page already
/// open, and the person goes where the page they confirmed said. The redirect is checked
/// again at confirmation: the page may have stayed open while an operator disabled the
/// client or removed the URI (a domain given up, say).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct PendingLogout {
    id: String,
    client_name: Option<String>,
    /// The client the redirect is registered for (named, or the hint's audience).
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub csrf: &'a str,
    /// The id of this page's pending logout.
    pub logout: &'a str,
    pub client_name: Option<&'a str>,
    /// A validated redirect back to the client follows the sign-out.
    pub returns: bool,
    /// The request's id_token_hint names another account than the one signed in.
    pub other_account: bool,
    /// The request's id_token_hint could not be verified: no way back to the application.
    pub unverified: bool,
    /// The client registered itself: the way back is a link (see `SignedOutPage`).
    pub self_registered: bool,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage<'a> {
    pub client_name: Option<&'a str>,
    /// The redirect of a client that registered itself, offered as a link with its host
    /// (RFC 9700 §4.11.2), never followed by itself.
    pub offered: Option<(String, &'a str)>,
    /// Front-Channel Logout: the clients' pages to load in hidden iframes.
    pub frames: &'a [String],
    /// The redirect to follow once the frames have loaded (`static/frontchannel.js`), or
    /// with a click: with frames to load, the sign-out cannot be a 303.
    pub then: Option<(String, &'a str)>,
}

/// The longest `id_token_hint`, `client_id` or `post_logout_redirect_uri` of a sign-out
/// request: they are put in a URL when it is posted.
const MAX_LOGOUT_PARAM: usize = 8192;

/// RP-Initiated Logout §2: the parameters this server reads; others are ignored.
/// One without a value counts as omitted (RFC 6749 §3.1); one repeated with values is an
/// error, and so are a NUL character and a `state` longer than `/authorize` takes (it is
/// sent back in the redirect's URL).
fn logout_params(pairs: Vec<(String, String)>) -> Result<LogoutParams, PageError> {
    let mut p = LogoutParams::default();
    if let Some(k) = portcullis_core::params::fill(&mut p, pairs, LogoutParams::slot).first() {
        return Err(PageError::BadRequest(format!(
            "The sign-out request repeats the parameter {k}."
        )));
    }
    if [&p.id_token_hint, &p.client_id, &p.post_logout_redirect_uri, &p.state]
        .iter()
        .any(|v| v.as_deref().is_some_and(portcullis_core::params::holds_nul))
    {
        return Err(PageError::BadRequest(
            "The sign-out request holds a NUL character (U+0000).".into(),
        ));
    }
    // An ID token hint is a few kilobytes at most; the others are far shorter.
    if [&p.id_token_hint, &p.client_id, &p.post_logout_redirect_uri]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_LOGOUT_PARAM))
    {
        return Err(PageError::BadRequest(format!(
            "The sign-out request has a parameter longer than {MAX_LOGOUT_PARAM} bytes."
        )));
    }
    if p.state
        .as_ref()
        .is_some_and(|s| s.len() > portcullis_core::authorize::MAX_PARAM_LEN)
    {
        return Err(PageError::BadRequest(format!(
            "The sign-out request's state is longer than {} bytes.",
            portcullis_core::authorize::MAX_PARAM_LEN
        )));
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

/// `POST /logout`: the same request sent as a form (RP-Initiated Logout §2). A form
/// posted from the client's site arrives without the `SameSite=Lax` session cookie, so
/// answering it here would not see (or end) the session. Instead it is sent on as a
/// `303` to `GET /logout` with the parameters in the query, where the browser sends the
/// cookie. Only the parameters read here are moved, all of which RP-Initiated Logout
/// allows in a GET's query, so nothing else the client posted lands in a URL.
pub async fn logout_post(
    form: Result<RawForm, axum::extract::rejection::RawFormRejection>,
) -> Result<Response, PageError> {
    let RawForm(body) = form.map_err(|_| PageError::BadRequest("The sign-out request could not be read.".into()))?;
    let pairs = form_pairs(&body)?;
    // Refused here what the GET would refuse, before it is put in a URL.
    logout_params(pairs.clone())?;
    see_other(&as_get("/logout", pairs, LogoutParams::is_known)?)
}

async fn start(state: &AppState, session: &Session, pairs: Vec<(String, String)>) -> Result<Response, PageError> {
    let params = logout_params(pairs)?;
    let mut unverified = false;
    let logout = match state.core.validate_logout(&params).await {
        Ok(logout) => logout,
        // A hint this server cannot verify: signed by a key withdrawn or retired since (a
        // sign-out long after the sign-in), or not its own. RP-Initiated Logout §4: then
        // no redirect; the person may still sign out, as at a bare `/logout`, and is told.
        Err(portcullis_core::Error::Invalid {
            field: "id_token_hint", ..
        }) => {
            unverified = true;
            Logout {
                client_id: None,
                client_name: None,
                redirect: None,
                hinted_subject: None,
                client_sector: None,
                self_registered: false,
            }
        }
        // Names the parameter; nothing is redirected to an unvalidated URI.
        Err(portcullis_core::Error::Invalid { field, message }) => {
            return Err(PageError::BadRequest(format!(
                "The sign-out request is not valid: {field} {message}."
            )));
        }
        Err(other) => return Err(other.into()),
    };
    let Some(auth) = current_auth(state, session).await? else {
        // Nobody is signed in here: nothing to confirm.
        return finish(
            logout.client_name.as_deref(),
            logout.redirect.as_deref(),
            logout.self_registered,
        );
    };
    // Signed in: the session ends only when the person confirms, never silently. When
    // the id_token_hint names someone else (RP-Initiated Logout §2: a suspect request),
    // the confirmation page says so, and the person decides.
    let other_account = state.core.hint_names_another(&logout, auth.user_id);
    let pending = PendingLogout {
        id: portcullis_core::crypto::random_token()?,
        client_name: logout.client_name,
        client_id: logout.client_id.map(|c| c.as_str().to_owned()),
        post_logout_redirect_uri: logout.redirect.and(params.post_logout_redirect_uri),
        state: params.state,
    };
    let mut all: Vec<PendingLogout> = session.get(SESSION_KEY).await?.unwrap_or_default();
    all.push(pending.clone());
    let excess = all.len().saturating_sub(MAX_PENDING);
    all.drain(..excess);
    session.insert(SESSION_KEY, &all).await?;
    let csrf = csrf::token(session).await?;
    render(
        StatusCode::OK,
        &LogoutPage {
            csrf: &csrf,
            logout: &pending.id,
            client_name: pending.client_name.as_deref(),
            returns: pending.post_logout_redirect_uri.is_some(),
            other_account,
            unverified,
            self_registered: logout.self_registered,
        },
    )
}

/// The confirmation form: `csrf` and the id of the logout it confirms.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    logout: String,
}

/// `POST /logout/confirm`: the person confirmed; end the session.
pub async fn logout_confirm_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    form: Result<CsrfForm<ConfirmForm>, PageError>,
) -> Result<Response, PageError> {
    let id = match form {
        Ok(CsrfForm(ConfirmForm { logout })) => logout,
        // The session ended while the confirmation page was open (it expired, or was
        // ended elsewhere), taking its CSRF token along: the person is signed out, which
        // is what they asked for, so say that rather than "this form has expired".
        Err(PageError::Csrf) if current_auth(&state, &session).await?.is_none() => {
            return render(
                StatusCode::OK,
                &SignedOutPage {
                    client_name: None,
                    offered: None,
                    frames: &[],
                    then: None,
                },
            );
        }
        Err(e) => return Err(e),
    };
    // A logout no longer waiting (pushed out by newer ones) still signs out, without a
    // redirect: the person asked to sign out, not to go anywhere in particular.
    let all: Vec<PendingLogout> = session.get(SESSION_KEY).await?.unwrap_or_default();
    let pending = all.into_iter().find(|p| p.id == id).unwrap_or_default();
    // Checked again as at the request; no longer valid, the person is signed out without
    // being sent anywhere.
    let (redirect, self_registered) = match pending.post_logout_redirect_uri {
        None => (None, false),
        Some(uri) => {
            let params = LogoutParams {
                id_token_hint: None,
                client_id: pending.client_id,
                post_logout_redirect_uri: Some(uri),
                state: pending.state,
            };
            match state.core.validate_logout(&params).await {
                Ok(logout) => (logout.redirect, logout.self_registered),
                Err(portcullis_core::Error::Invalid { .. }) => (None, false),
                // The person asked to sign out: that happens, without a redirect this
                // could not check.
                Err(e) => {
                    tracing::warn!(error = %e, "could not check the sign-out redirect again; signing out without it");
                    (None, false)
                }
            }
        }
    };
    // Whoever this session names signs out: no need to read the account first.
    let frames = match stored_auth(&session).await? {
        Some(auth) => state.core.logged_out(auth.user_id, &auth.sid, ip).await,
        None => Vec::new(),
    };
    // Deletes the row and clears the cookie.
    session.flush().await?;
    if frames.is_empty() {
        return finish(pending.client_name.as_deref(), redirect.as_deref(), self_registered);
    }
    fn link(uri: &str) -> (String, &str) {
        (crate::consent::redirect_host(uri), uri)
    }
    let redirect = redirect.as_deref();
    let mut response = render(
        StatusCode::OK,
        &SignedOutPage {
            client_name: pending.client_name.as_deref(),
            offered: redirect.filter(|_| self_registered).map(link),
            frames: &frames,
            then: redirect.filter(|_| !self_registered).map(link),
        },
    )?;
    allow_frames(&mut response, &frames);
    Ok(response)
}

/// Lets the signed-out page frame the clients' front-channel logout pages: their
/// origins only, each page sandboxed in the template (no top navigation, no popups).
fn allow_frames(response: &mut Response, frames: &[String]) {
    let mut origins: Vec<String> = frames
        .iter()
        .filter_map(|f| url::Url::parse(f).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.sort();
    origins.dedup();
    let csp = format!("{}; frame-src {}", crate::headers::CSP, origins.join(" "));
    if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, v);
    }
}

/// The end of a sign-out: the client's redirect, or the signed-out page (offering the
/// redirect of a client that registered itself as a link).
fn finish(client_name: Option<&str>, redirect: Option<&str>, self_registered: bool) -> Result<Response, PageError> {
    match redirect {
        Some(uri) if !self_registered => see_other(uri),
        _ => render(
            StatusCode::OK,
            &SignedOutPage {
                client_name,
                offered: redirect.map(|uri| (crate::consent::redirect_host(uri), uri)),
                frames: &[],
                then: None,
            },
        ),
    }
}
