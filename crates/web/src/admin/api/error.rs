//! `ApiError`: the admin API's errors as JSON `{ "error": …, "message": … }` (with
//! `field` for a validation error) and the right status. A 500 says nothing inside; the
//! cause goes to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::cause_chain;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read (bad JSON, bad query, a key in the URL); safe to show.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A field failed validation.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No API key, or one that is unknown, expired or revoked.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The key's role may not do this (an auditor key writing).
    #[error("forbidden")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0} already exists")]
    Conflict(String),
    /// The body is larger than the API reads.
    #[error("body over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    #[error("busy")]
    Busy,
    #[error("internal: {0}")]
    Internal(String),
}

impl From<portcullis_core::Error> for ApiError {
    fn from(e: portcullis_core::Error) -> Self {
        use portcullis_core::Error as E;
        match e {
            E::Invalid { field, message } => Self::Invalid {
                field: field.to_owned(),
                message,
            },
            E::NotFound(what) => Self::NotFound(what.to_owned()),
            E::Conflict(what) => Self::Conflict(what),
            E::BadCredentials => Self::Unauthorized("the API key is unknown, expired or revoked"),
            E::Busy => Self::Busy,
            E::RateLimited { retry_after } => Self::RateLimited { retry_after },
            E::OAuth { description, .. } => Self::BadRequest(description),
            other => Self::Internal(cause_chain(&other)),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Invalid { .. } => "invalid_field",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::TooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Busy => "busy",
            Self::Internal(_) => "server_error",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::BadRequest(m) => m.clone(),
            Self::Invalid { field, message } => format!("{field} {message}"),
            Self::Unauthorized(m) => (*m).to_owned(),
            Self::Forbidden => "this API key's role (auditor) may read but not change anything".into(),
            Self::NotFound(what) => format!("{what} not found"),
            Self::MethodNotAllowed => "this method is not allowed on this path".into(),
            Self::Conflict(what) => format!("{what} already exists"),
            Self::TooLarge { limit } => format!("the request body is larger than {limit} bytes"),
            Self::RateLimited { retry_after } => format!("too many requests; retry after {retry_after} s"),
            Self::Busy => "the server is busy; try again shortly".into(),
            Self::Internal(_) => "something went wrong on our side".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, "admin API request failed");
        }
        let mut body = json!({ "error": self.code(), "message": self.message() });
        if let Self::Invalid { field, .. } = &self {
            body["field"] = json!(field);
        }
        let mut res = (self.status(), Json(body)).into_response();
        match &self {
            // RFC 6750 §3: the scheme to use.
            Self::Unauthorized(_) => {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
                );
            }
            Self::RateLimited { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
