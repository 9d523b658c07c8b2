//! `ApiError`: core errors as RFC 6749 §5.2 JSON (and RFC 6750 §3 for bearer-token
//! endpoints), with the right status and `WWW-Authenticate`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::Error;
use portcullis_protocol::{ErrorCode, ErrorResponse};

#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    description: String,
    /// Bearer-token endpoints answer with a `Bearer` challenge (RFC 6750 §3).
    bearer: bool,
    /// Seconds to wait, sent as `Retry-After` with a 429 (RFC 6585 §4).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            bearer: false,
            retry_after: None,
        }
    }

    pub fn bearer(mut self) -> Self {
        self.bearer = true;
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::OAuth { code, description } => Self::new(code, description),
            Error::Busy => Self::new(ErrorCode::TemporarilyUnavailable, "the server is busy; try again"),
            Error::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    ErrorCode::SlowDown,
                    format!("too many requests; retry after {retry_after} seconds"),
                )
            },
            other => {
                // The cause goes to the log, never to the client.
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "internal error at a protocol endpoint");
                Self::new(ErrorCode::ServerError, "internal error")
            }
        }
    }
}

fn quote(s: &str) -> String {
    s.replace(['"', '\\'], "'")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        };
        let challenge = if self.bearer {
            // RFC 6750 §3: the challenge carries the error code.
            Some(format!(
                "Bearer realm=\"portcullis\", error=\"{}\", error_description=\"{}\"",
                self.code.as_str(),
                quote(&self.description)
            ))
        } else if self.code == ErrorCode::InvalidClient {
            // RFC 6749 §5.2: 401 with the scheme the client can authenticate with.
            Some("Basic realm=\"portcullis\"".to_owned())
        } else {
            None
        };
        let body = ErrorResponse::new(self.code, self.description);
        let mut resp = (status, Json(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
