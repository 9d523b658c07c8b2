//! Small response helpers shared by the page handlers: render a template, redirect.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::PageError;

/// Renders `page` as HTML with `status`. `Cache-Control: no-store` comes from the
/// router's header layer.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Result<Response, PageError> {
    Ok((status, Html(page.render()?)).into_response())
}

/// `303 See Other` to `location`: the browser follows with a GET whatever the method was.
pub fn see_other(location: &str) -> Result<Response, PageError> {
    let value = HeaderValue::from_str(location)
        .map_err(|_| PageError::Unexpected("redirect location is not a header value".into()))?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response())
}

/// The longest query [`as_get`] makes: room for a 16 KiB request object and the other
/// parameters. A URL much longer would not be followed (this server, like others, refuses
/// one over 64 KiB), so the browser would get a redirect it cannot use.
pub const MAX_QUERY: usize = 32 * 1024;

/// `path` with the `pairs` whose names `keep` accepts as its query string, in their
/// order and with repeats (so the GET handler still detects them): a POSTed
/// authorization or logout request re-sent as a GET. A query over [`MAX_QUERY`] is
/// refused here, rather than redirected to.
pub fn as_get(path: &str, pairs: Vec<(String, String)>, keep: fn(&str) -> bool) -> Result<String, PageError> {
    let kept: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| keep(k)).collect();
    if kept.is_empty() {
        return Ok(path.to_owned());
    }
    let query = serde_urlencoded::to_string(&kept)
        .map_err(|_| PageError::BadRequest("The request could not be read.".into()))?;
    if query.len() > MAX_QUERY {
        return Err(PageError::BadRequest(
            "The request is too long to be followed (its parameters come to over 32 KiB).".into(),
        ));
    }
    Ok(format!("{path}?{query}"))
}

/// Whether a form arrived without the browser's session cookie: posted from another site
/// (the `SameSite=Lax` cookie stays home), or after the browser lost it. Such a POST must
/// not start a session: its cookie would replace the one the browser holds, signing the
/// person out at any site's whim. It is sent to the form's page instead, which a
/// top-level GET reaches with the cookie.
pub fn without_session(session: &tower_sessions::Session) -> bool {
    session.id().is_none()
}
