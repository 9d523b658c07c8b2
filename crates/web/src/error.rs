//! `PageError`: everything a page handler can fail with, shown to the person as a page
//! with the right status. A 500 says nothing inside; its cause chain goes to the log.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// The message shown when a pending authorization request is unknown or too old.
pub const EXPIRED_MESSAGE: &str = "This sign-in request is no longer open in this browser: it expired, or the browser's session ended or was replaced (cookies cleared, a sign-out, another window starting at the same moment). Go back to the application and start again.";

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The request cannot be served as sent; the text is safe to show.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The pending authorization request (`req`) is unknown or has expired.
    #[error("unknown or expired authorization request")]
    Expired,
    /// The CSRF token is missing or wrong.
    #[error("missing or wrong CSRF token")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// A page's address opened with a method it does not take (a form's address
    /// opened as a page): 405 with a page, not the browser's own.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Too many password hashes in flight (core `Error::Busy`).
    #[error("busy")]
    Busy,
    /// Over a rate limit: 429 with `Retry-After` (issue 6).
    #[error("rate limited for {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error(transparent)]
    Core(portcullis_core::Error),
    #[error("session: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error("template: {0}")]
    Render(#[from] askama::Error),
    #[error("unexpected: {0}")]
    Unexpected(String),
}

impl From<portcullis_core::Error> for PageError {
    fn from(e: portcullis_core::Error) -> Self {
        match e {
            portcullis_core::Error::Busy => Self::Busy,
            portcullis_core::Error::RateLimited { retry_after } => Self::RateLimited { retry_after },
            portcullis_core::Error::NotFound(_) => Self::NotFound,
            // Core marks these descriptions as safe to show (e.g. the client of a pending
            // request was disabled meanwhile); never redirected from here.
            portcullis_core::Error::OAuth { description, .. } => Self::BadRequest(description),
            other => Self::Core(other),
        }
    }
}

/// The generic error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Expired => StatusCode::BAD_REQUEST,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Core(_) | Self::Session(_) | Self::Render(_) | Self::Unexpected(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn title_and_message(&self) -> (&'static str, std::borrow::Cow<'_, str>) {
        let (title, message) = self.title_and_fixed_message();
        match self {
            Self::RateLimited { retry_after } => (title, too_many_message(*retry_after).into()),
            _ => (title, message.into()),
        }
    }

    fn title_and_fixed_message(&self) -> (&'static str, &str) {
        match self {
            Self::BadRequest(m) => ("This request cannot be completed", m),
            Self::Expired => ("Sign-in request not open", EXPIRED_MESSAGE),
            Self::Csrf => (
                "This form has expired",
                "The form you sent is no longer valid. Go back, reload the page and try again.",
            ),
            Self::NotFound => ("Not found", "There is nothing at this address."),
            Self::MethodNotAllowed => (
                "Nothing to show here",
                "This address takes what a form sends; it is not a page of its own. Go back to the page with the form.",
            ),
            Self::Busy => (
                "Too busy",
                "The server is busy right now. Please wait a moment and try again.",
            ),
            Self::RateLimited { .. } => ("Too many requests", ""),
            Self::Core(_) | Self::Session(_) | Self::Render(_) | Self::Unexpected(_) => (
                "Something went wrong",
                "Something went wrong on our side. Please try again later.",
            ),
        }
    }
}

/// Shown when a person is over a rate limit or locked out, with the wait (the page's
/// `Retry-After`): the same whether or not the account exists, since unknown usernames
/// are counted and locked alike, and whether the attempts counted came from this address
/// or from anywhere (an account's lockout, which this person may not have caused).
pub fn too_many_message(retry_after: u64) -> String {
    let wait = match retry_after {
        0..=1 => "a second".to_owned(),
        2..=90 => format!("{retry_after} seconds"),
        _ => format!("{} minutes", retry_after.div_ceil(60)),
    };
    format!("Too many attempts. Try again in {wait}.")
}

/// Adds `Retry-After` (seconds) to a 429 (RFC 6585 §4).
pub fn with_retry_after(mut resp: Response, retry_after: Option<u64>) -> Response {
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    resp
}

/// Writes an error and its whole `source()` chain on one line.
pub fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %cause_chain(&self), "page request failed");
        }
        let (title, message) = self.title_and_message();
        let retry_after = match self {
            Self::RateLimited { retry_after } => Some(retry_after),
            _ => None,
        };
        match (ErrorPage {
            title,
            message: &message,
        })
        .render()
        {
            Ok(html) => with_retry_after((status, Html(html)).into_response(), retry_after),
            Err(e) => {
                tracing::error!(error = %e, "could not render the error page");
                (status, title.to_owned()).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::too_many_message;

    #[test]
    fn the_wait_is_said_in_words() {
        assert_eq!(too_many_message(1), "Too many attempts. Try again in a second.");
        assert_eq!(too_many_message(12), "Too many attempts. Try again in 12 seconds.");
        assert_eq!(too_many_message(90), "Too many attempts. Try again in 90 seconds.");
        assert_eq!(too_many_message(91), "Too many attempts. Try again in 2 minutes.");
        assert_eq!(too_many_message(900), "Too many attempts. Try again in 15 minutes.");
    }
}
