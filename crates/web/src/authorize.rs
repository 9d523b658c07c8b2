//! The authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2.1), GET and POST, and
//! the step every page of the flow ends with: ask core what comes next and go there —
//! the login page, the consent page, or back to the client.

use askama::Template;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::authorize::{
    AuthorizationRequest, AuthorizationResponse, AuthorizeError, AuthorizeParams, Next, ResponseMode,
};
use tower_sessions::Session;

use portcullis_core::par::REQUEST_URI_PREFIX;
use portcullis_core::throttle::Bucket;

use crate::AppState;
use crate::client_ip::ClientIp;
use crate::csrf::form_pairs;
use crate::error::PageError;
use crate::page::{as_get, render, see_other};
use crate::pending;
use crate::session_store::{current_auth, stored_auth};

/// `GET /authorize`: parameters in the query string.
pub async fn authorize_get(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let pairs = form_pairs(query.as_deref().unwrap_or_default().as_bytes())?;
    start(&state, &session, ip.as_deref(), pairs).await
}

/// `POST /authorize`: parameters as a form body (OIDC Core §3.1.2.1 allows both). A
/// form posted from the client's site arrives without the `SameSite=Lax` session
/// cookie, so answering it here would ignore (and replace) the person's session. It is
/// sent on as a `303` to `GET /authorize` with the parameters in the query, where the
/// browser sends the cookie. Only the authorization request parameters this server
/// reads are moved; all of them are allowed in a GET's query (RFC 6749 §4.1.1).
pub async fn authorize_post(
    form: Result<RawForm, axum::extract::rejection::RawFormRejection>,
) -> Result<Response, PageError> {
    let RawForm(body) =
        form.map_err(|_| PageError::BadRequest("The authorization request could not be read.".into()))?;
    see_other(&as_get("/authorize", form_pairs(&body)?, AuthorizeParams::is_known)?)
}

async fn start(
    state: &AppState,
    session: &Session,
    ip: Option<&str>,
    pairs: Vec<(String, String)>,
) -> Result<Response, PageError> {
    // Pairs, not a map: RFC 6749 §3.1 forbids repeated parameters, and core reports them.
    let params = AuthorizeParams::from_pairs(pairs);
    let validated = match params.request_uri.as_deref() {
        // RFC 9126 §4: a pushed request; the browser's other parameters are not read.
        // With a request object too, core refuses the pair.
        Some(uri) if uri.starts_with(REQUEST_URI_PREFIX) && params.request.is_none() => {
            if params.duplicated.iter().any(|d| d == "client_id" || d == "request_uri") {
                return Err(PageError::BadRequest(
                    "The request repeats client_id or request_uri.".into(),
                ));
            }
            state.core.take_pushed_request(params.client_id.as_deref(), uri).await
        }
        _ => state.core.validate_authorization(&params, ip).await,
    };
    let req = match validated {
        Ok(req) => req,
        // RFC 6749 §4.1.2.1: a bad client_id or redirect_uri is shown, never redirected.
        Err(AuthorizeError::Page(message)) => return Err(PageError::BadRequest(message)),
        Err(AuthorizeError::Redirect(resp)) => {
            // No validated request to tell whose answer it is: the client is read.
            let client = match params.client_id.as_deref() {
                Some(id) if state.core.settings.registration_confirm_redirects => {
                    state.core.self_registered_client(id).await?
                }
                _ => None,
            };
            return send_unprompted(&resp, client.as_deref().map(|c| c.name.as_str()));
        }
        Err(AuthorizeError::Internal(e)) => return Err(e.into()),
    };
    let auth = current_auth(state, session).await?;
    let next = next_step(state, &req, auth.as_ref()).await?;
    // Only a request that needs the person is kept; prompt=none and single sign-on
    // answer at once without touching the session.
    match next {
        Next::Respond(resp) => send_unprompted(&resp, self_registered(state, &req)),
        Next::Login | Next::Consent => {
            // Each is a row kept for an hour: counted against the address (DESIGN §5).
            state.core.throttle.check(Bucket::SessionIp, ip)?;
            let id = pending::insert(&state.core, session, &req).await?;
            go_to(&next, &id)
        }
    }
}

async fn next_step(
    state: &AppState,
    req: &AuthorizationRequest,
    auth: Option<&portcullis_core::authorize::AuthSession>,
) -> Result<Next, PageError> {
    // An `OAuth` error here means the client was disabled or changed while the person was
    // busy: its redirect URI may no longer be valid, so `PageError` shows it instead.
    Ok(state.core.authorize_next(req, auth).await?)
}

fn go_to(next: &Next, id: &str) -> Result<Response, PageError> {
    match next {
        Next::Login => see_other(&format!("/login?req={id}")),
        Next::Consent => see_other(&format!("/consent?req={id}")),
        Next::Respond(resp) => send_response(resp),
    }
}

/// Continues the pending request `id` after a login or consent step changed `req`:
/// stores the progress and goes to the next step, or answers the client and forgets the
/// request.
pub async fn proceed(
    state: &AppState,
    session: &Session,
    id: &str,
    req: &AuthorizationRequest,
) -> Result<Response, PageError> {
    let auth = current_auth(state, session).await?;
    let next = next_step(state, req, auth.as_ref()).await?;
    take_step(state, session, id, req, next).await
}

/// For the page of one step of the pending request `id` (`is_here`: the login page or
/// the consent page): `None` when that is the request's next step, otherwise the answer
/// that takes it where it must go (a login it still needs, past a consent it no longer
/// needs, back to the client).
pub async fn unless_next(
    state: &AppState,
    session: &Session,
    id: &str,
    req: &AuthorizationRequest,
    auth: &portcullis_core::authorize::AuthSession,
    is_here: fn(&Next) -> bool,
) -> Result<Option<Response>, PageError> {
    let next = next_step(state, req, Some(auth)).await?;
    if is_here(&next) {
        return Ok(None);
    }
    take_step(state, session, id, req, next).await.map(Some)
}

/// `proceed` once the next step is known.
async fn take_step(
    state: &AppState,
    session: &Session,
    id: &str,
    req: &AuthorizationRequest,
    next: Next,
) -> Result<Response, PageError> {
    let now = state.core.now().unix_timestamp();
    let next = match next {
        Next::Respond(answer) => {
            // Answered already by a concurrent copy of this session: its answer again,
            // so every copy carries the one code (the one made here expires unused).
            // Every way here ran `current_auth` first in this request.
            let sid = stored_auth(session).await?.map(|a| a.sid);
            let first = state.answered.claim(id, sid.as_deref(), &answer, now);
            pending::remove(&state.core, session, id).await?;
            // An error after the login page (an id_token_hint or `claims` naming someone
            // else, a scope taken away meanwhile) is no answer the person chose either.
            return send_unprompted(&first, self_registered(state, req));
        }
        next => {
            pending::update(&state.core, session, id, req).await?;
            next
        }
    };
    go_to(&next, id)
}

/// RFC 9700 §4.11.2: anyone can register a client with redirect URIs of their choosing
/// when registration is open (RFC 7591), and an erroneous request (a bad scope,
/// `prompt=none` for someone not signed in) would then make this server send the
/// browser there by itself, lending the attacker its name. An error for a client that
/// registered itself is therefore shown first, with the host it goes to and a link on:
/// the person decides. The one error sent on at once is the person's own Deny on the
/// consent page, which names the host beforehand. Codes, and every answer to an
/// operator's client, go on at once. `self_registered`: the name of the client if it
/// registered itself.
fn send_unprompted(resp: &AuthorizationResponse, self_registered: Option<&str>) -> Result<Response, PageError> {
    if resp.is_error()
        && let Some(client_name) = self_registered
    {
        let page = LeavingPage {
            client_name,
            host: crate::consent::redirect_host(resp.redirect_uri.as_str()),
            error: resp.param("error").unwrap_or_default(),
            description: resp.param("error_description"),
            location: (resp.response_mode == ResponseMode::Query).then(|| resp.query_url()),
            action: resp.redirect_uri.as_str(),
            params: &resp.params,
        };
        let mut response = render(StatusCode::OK, &page)?;
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    send_response(resp)
}

/// The name of the request's client if it registered itself, for `send_unprompted`
/// (the mark is kept with the request, and a client never loses it); `None` also when
/// `registration_confirm_redirects` is off.
fn self_registered<'a>(state: &AppState, req: &'a AuthorizationRequest) -> Option<&'a str> {
    state
        .core
        .confirms_redirects_of(req.self_registered)
        .then_some(req.client_name.as_str())
}

/// See `send_unprompted`.
#[derive(Template)]
#[template(path = "leaving.html")]
pub struct LeavingPage<'a> {
    pub client_name: &'a str,
    pub host: String,
    pub error: &'a str,
    pub description: Option<&'a str>,
    /// The redirect URI with the error in its query; `None` for `form_post`, which posts
    /// `params` to `action` when the person chooses to go on.
    pub location: Option<String>,
    pub action: &'a str,
    pub params: &'a [(&'static str, String)],
}

/// The auto-submitting page of the form_post response mode.
#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPostPage<'a> {
    pub action: &'a str,
    pub params: &'a [(&'static str, String)],
}

/// Sends an authorization response (success or error) to the client's validated
/// redirect URI: a `303` with the parameters in the query (RFC 6749 §4.1.2), or a page
/// that posts them (OAuth 2.0 Form Post Response Mode §2). `no-store` on both: they
/// carry a code.
pub fn send_response(resp: &AuthorizationResponse) -> Result<Response, PageError> {
    match resp.response_mode {
        ResponseMode::Query => {
            let location = HeaderValue::from_str(&resp.query_url())
                .map_err(|_| PageError::Unexpected("redirect URI is not a header value".into()))?;
            Ok((
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response())
        }
        ResponseMode::FormPost => {
            let page = FormPostPage {
                action: resp.redirect_uri.as_str(),
                params: &resp.params,
            };
            let mut response = render(StatusCode::OK, &page)?;
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use portcullis_protocol::RedirectUri;

    use super::*;

    fn response(mode: ResponseMode) -> AuthorizationResponse {
        AuthorizationResponse {
            redirect_uri: RedirectUri::parse("https://app.example/cb?x=1").unwrap(),
            response_mode: mode,
            params: vec![("code", "abc".into()), ("state", "<s&\"t>".into())],
        }
    }

    #[test]
    fn query_mode_redirects_with_params() {
        let r = send_response(&response(ResponseMode::Query)).unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let loc = r.headers()[header::LOCATION].to_str().unwrap();
        assert!(loc.starts_with("https://app.example/cb?x=1&code=abc&state="), "{loc}");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn form_post_mode_renders_escaped_hidden_inputs() {
        let page = FormPostPage {
            action: "https://app.example/cb?x=1&y=2",
            params: &response(ResponseMode::FormPost).params,
        };
        let html = page.render().unwrap();
        assert!(
            html.contains(r#"action="https://app.example/cb?x=1&#38;y=2""#)
                || html.contains(r#"action="https://app.example/cb?x=1&amp;y=2""#),
            "{html}"
        );
        assert!(html.contains(r#"name="code" value="abc""#), "{html}");
        assert!(!html.contains("<s&"), "state must be escaped: {html}");
        assert!(html.contains(r#"src="/static/form_post.js""#));
        assert!(!html.contains("<script>"), "no inline script");
    }
}
