//! CSRF protection by synchronizer token (DESIGN §5): one random token per session,
//! rendered as the hidden `csrf` field of every form and checked in constant time on
//! every POST. Reusable by any page router that has a session layer:
//!
//! - render: take a [`CsrfToken`] extractor and put `token.0` in the template's
//!   `<input type="hidden" name="csrf">`;
//! - receive: take a [`CsrfForm<T>`] extractor instead of `Form<T>`; it answers 403
//!   (`PageError::Csrf`) before the handler runs when the token is missing or wrong.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use portcullis_core::crypto::{digest_eq, random_token, sha256};
use serde::de::DeserializeOwned;
use tower_sessions::Session;

use crate::error::PageError;

/// Name of the hidden form field.
pub const FIELD: &str = "csrf";
/// Session key of the token.
const SESSION_KEY: &str = "csrf";
/// Form bodies of the pages are small; anything bigger is not one of our forms.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// The admin client forms: a client at every limit the API allows (50 URIs of 2,000
/// characters in each list, percent-encoded), as the API's body limit.
pub const MAX_CLIENT_FORM_BYTES: usize = 1024 * 1024;

fn session_of(parts: &Parts) -> Result<Session, PageError> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| PageError::Unexpected("no session layer on this router".into()))
}

/// This session's token, created on first use.
pub async fn token(session: &Session) -> Result<String, PageError> {
    if let Some(t) = session.get::<String>(SESSION_KEY).await? {
        return Ok(t);
    }
    let t = random_token()?;
    session.insert(SESSION_KEY, &t).await?;
    Ok(t)
}

/// Drops the token so the next page gets a new one (after a change of privilege, like
/// signing in, together with the new session id).
pub async fn rotate(session: &Session) -> Result<(), PageError> {
    session.remove_value(SESSION_KEY).await?;
    Ok(())
}

/// Checks a submitted token against the session's, in constant time.
pub async fn verify(session: &Session, submitted: Option<&str>) -> Result<(), PageError> {
    let expected = session.get::<String>(SESSION_KEY).await?;
    match (expected, submitted) {
        // Digests have a fixed length, so the comparison time says nothing about either.
        (Some(e), Some(s)) if digest_eq(&sha256(e.as_bytes()), &sha256(s.as_bytes())) => Ok(()),
        _ => Err(PageError::Csrf),
    }
}

/// Extractor: the session's CSRF token, for rendering a form.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = session_of(parts)?;
        Ok(Self(token(&session).await?))
    }
}

/// Extractor: an `application/x-www-form-urlencoded` body of at most `MAX` bytes whose
/// `csrf` field matches the session's token, deserialized into `T` (which may ignore the
/// `csrf` field).
#[derive(Debug, Clone)]
pub struct CsrfForm<T, const MAX: usize = MAX_FORM_BYTES>(pub T);

/// Parses a form body (or query) into pairs, keeping repeats (so callers can detect
/// them). Values that are not UTF-8 once percent-decoded (RFC 6749 Appendix B) are
/// refused: decoding them lossily would hand the client back a different `state`.
/// Checking the whole input is enough, as the separators are ASCII.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, PageError> {
    let unreadable = || PageError::BadRequest("The request's parameters could not be read.".into());
    percent_encoding::percent_decode(body)
        .decode_utf8()
        .map_err(|_| unreadable())?;
    serde_urlencoded::from_bytes(body).map_err(|_| unreadable())
}

impl<S: Send + Sync, T: DeserializeOwned, const MAX: usize> FromRequest<S> for CsrfForm<T, MAX> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match CheckedForm::<T, MAX>::from_request(req, state).await? {
            CheckedForm(form, true) => Ok(Self(form)),
            CheckedForm(_, false) => Err(PageError::Csrf),
        }
    }
}

/// Extractor for a form whose handler answers a stale token itself rather than with the
/// 403 page (the login and consent pages show their form again, so a page left open
/// while the session moved on is no dead end): the form as [`CsrfForm`] reads it, and
/// whether its `csrf` field matched. A handler must act on nothing in a form whose token
/// did not match.
#[derive(Debug, Clone)]
pub struct CheckedForm<T, const MAX: usize = MAX_FORM_BYTES>(pub T, pub bool);

impl<S: Send + Sync, T: DeserializeOwned, const MAX: usize> FromRequest<S> for CheckedForm<T, MAX> {
    type Rejection = PageError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let session = session_of(&parts)?;
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
            });
        if !is_form {
            return Err(PageError::BadRequest("The form was not sent as a form.".into()));
        }
        let bytes = axum::body::to_bytes(body, MAX)
            .await
            .map_err(|_| PageError::BadRequest("The form could not be read.".into()))?;
        let pairs = form_pairs(&bytes)?;
        let submitted = pairs.iter().find(|(k, _)| k == FIELD).map(|(_, v)| v.as_str());
        let matched = match verify(&session, submitted).await {
            Ok(()) => true,
            Err(PageError::Csrf) => false,
            Err(e) => return Err(e),
        };
        match serde_urlencoded::from_bytes(&bytes) {
            Ok(form) => Ok(Self(form, matched)),
            // A stale token says more than a field missing beside it.
            Err(_) if !matched => Err(PageError::Csrf),
            Err(_) => Err(PageError::BadRequest("The form is incomplete.".into())),
        }
    }
}
