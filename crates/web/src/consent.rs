//! The consent page: what the client asks for, in plain words, with Allow and Deny.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::authorize::{Next, scope_description};
use serde::Deserialize;
use tower_sessions::Session;

use crate::authorize::{proceed, send_response, unless_next};
use crate::csrf::{CheckedForm, CsrfToken};
use crate::error::PageError;
use crate::page::{render, see_other};
use crate::session_store::{current_auth, current_user};
use crate::{AppState, ClientIp, pending};

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub csrf: &'a str,
    pub req: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub scopes: Vec<String>,
    /// The client's logo, privacy policy and terms of service, when registered as https
    /// URLs.
    pub logo_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    /// The client registered itself (RFC 7591): its name and logo are its own word, so
    /// the page says so and names the host the answer goes to.
    pub self_registered: bool,
    pub redirect_host: String,
}

/// Where the browser is sent with the answer, as a person reads it: the host, or the
/// scheme of an app's private-use redirect URI.
pub(crate) fn redirect_host(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        // With an explicit port: two sites on one host are told apart.
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(port)) if !h.is_empty() => format!("{h}:{port}"),
            (Some(h), None) if !h.is_empty() => h.to_owned(),
            _ => u.scheme().to_owned(),
        },
        Err(_) => String::new(),
    }
}

/// The client's logo, if a page may show it: displayable, and for a client that
/// registered itself on the host of one of its redirect URIs (OIDC Registration §9.1),
/// so that it cannot borrow a bank's logo, nor watch who opens the page from elsewhere.
pub(crate) fn client_logo(client: &portcullis_core::model::Client) -> Option<url::Url> {
    let logo = displayable(client.logo_uri.as_deref())?;
    if !client.self_registered {
        return Some(logo);
    }
    // Not from a loopback host either: the person's own machine's services.
    if logo.scheme() != "https" || portcullis_protocol::is_loopback_host(&logo) {
        return None;
    }
    client
        .redirect_uris
        .iter()
        .any(|u| u.url().host_str().is_some() && u.url().host_str() == logo.host_str())
        .then_some(logo)
}

/// A registered URL the page may use (it was checked at registration; checked again, as
/// clients registered before that check may hold others).
pub(crate) fn displayable(raw: Option<&str>) -> Option<url::Url> {
    url::Url::parse(raw?)
        .ok()
        .filter(portcullis_core::clients::is_displayable)
}

#[derive(Debug, Deserialize)]
pub struct ConsentQuery {
    pub req: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    pub req: String,
    pub decision: Decision,
}

/// The requested scopes in plain words, signing-in (`openid`) first.
pub(crate) fn scope_lines(scope: &str) -> Vec<String> {
    let mut scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    scopes.sort_by_key(|s| *s != "openid");
    scopes.into_iter().map(scope_description).collect()
}

fn is_consent(next: &Next) -> bool {
    matches!(next, Next::Consent)
}

fn login_first(id: &str) -> Result<Response, PageError> {
    see_other(&format!(
        "/login?req={}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    ))
}

/// `GET /consent?req=…`.
pub async fn consent_get(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    q: Result<Query<ConsentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = q.map_err(|_| PageError::Expired)?;
    let req = pending::get(&state.core, &session, &q.req).await?;
    let Some((auth, user)) = current_user(&state, &session).await? else {
        return login_first(&q.req);
    };
    // Only when consent is the next step: a request that still needs a login
    // (prompt=login, max_age) goes there first; one that needs no consent goes on.
    if let Some(elsewhere) = unless_next(&state, &session, &q.req, &req, &auth, is_consent).await? {
        return Ok(elsewhere);
    }
    let (client, scope) = state.core.consent_scope(&req).await?;
    let logo = client_logo(&client);
    let page = ConsentPage {
        csrf: &csrf,
        req: &q.req,
        client_name: &client.name,
        username: &user.username,
        scopes: scope_lines(&scope.as_string()),
        logo_uri: logo.as_ref().map(|u| u.as_str().to_owned()),
        policy_uri: displayable(client.policy_uri.as_deref()).map(|u| u.as_str().to_owned()),
        tos_uri: displayable(client.tos_uri.as_deref()).map(|u| u.as_str().to_owned()),
        self_registered: client.self_registered,
        redirect_host: redirect_host(&req.redirect_uri),
    };
    let mut response = render(StatusCode::OK, &page)?;
    allow_logo(&mut response, logo.as_ref());
    Ok(response)
}

/// Lets a page show the client's logo: the one thing it loads from elsewhere, from its
/// origin only.
pub(crate) fn allow_logo(response: &mut Response, logo: Option<&url::Url>) {
    let Some(logo) = logo else { return };
    let csp = crate::headers::CSP.replace(
        "img-src 'self'",
        &format!("img-src 'self' {}", logo.origin().ascii_serialization()),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, v);
    }
}

/// `POST /consent` with `decision=allow|deny`.
pub async fn consent_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CheckedForm(form, token_matched): CheckedForm<ConsentForm>,
) -> Result<Response, PageError> {
    let now = state.core.now().unix_timestamp();
    // A page left open while the session moved on (a sign-in or sign-out in another
    // tab, perhaps as someone else): nothing in it is acted on; the consent page is
    // shown again, as the session now is, for a decision made on it.
    if !token_matched {
        pending::get(&state.core, &session, &form.req).await?;
        return see_other(&format!(
            "/consent?req={}",
            url::form_urlencoded::byte_serialize(form.req.as_bytes()).collect::<String>()
        ));
    }
    let auth = current_auth(&state, &session).await?;
    let mut req = match pending::get(&state.core, &session, &form.req).await {
        Ok(req) => req,
        // Sent again after it was answered (a double submit without script, the form
        // posted twice in a row): the same answer, not an error page in its place; to
        // the login that answered it only.
        // (A match rather than an `if let` guard, which needs Rust 1.95: rust-version is 1.88.)
        // An error answer is not sent again: its client may have registered itself, and
        // its redirects wait for a click (RFC 9700 §4.11.2, `send_unprompted`).
        Err(PageError::Expired) => match auth.as_ref().and_then(|a| state.answered.get(&form.req, &a.sid, now)) {
            Some(answer) if !answer.is_error() => return send_response(&answer),
            _ => return Err(PageError::Expired),
        },
        Err(e) => return Err(e),
    };
    let Some(auth) = auth else {
        return login_first(&form.req);
    };
    match form.decision {
        Decision::Allow => {
            // Consent is recorded only when it is the next step: not before a login the
            // request still needs (prompt=login, max_age; OIDC Core §3.1.2.1).
            if let Some(elsewhere) = unless_next(&state, &session, &form.req, &req, &auth, is_consent).await? {
                return Ok(elsewhere);
            }
            state.core.give_consent(&req, &auth, ip).await?;
            // Satisfies prompt=consent (OIDC Core §3.1.2.1).
            req.interaction.consent_done = true;
            proceed(&state, &session, &form.req, &req).await
        }
        Decision::Deny => {
            // RFC 6749 §4.1.2.1 access_denied, to the validated redirect URI.
            let resp = state.core.deny_consent(&req, &auth, ip).await?;
            pending::remove(&state.core, &session, &form.req).await?;
            send_response(&resp)
        }
    }
}
