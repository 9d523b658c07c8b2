//! The core error enum: what a use case can fail with, independent of HTTP.

use portcullis_protocol::ErrorCode;

use crate::repo::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A protocol error with its RFC wire code; the description is safe to send.
    #[error("{code}: {description}")]
    OAuth { code: ErrorCode, description: String },
    /// Input an operator gave (CLI, admin) is invalid; names the field.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The named thing already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// Username or password wrong, or the account is disabled; deliberately vague.
    #[error("invalid username or password")]
    BadCredentials,
    /// Too many concurrent password hashes; try again shortly.
    #[error("the server is busy; try again")]
    Busy,
    /// Over a rate limit, or a locked (account, address) pair: try again after
    /// `retry_after` seconds (HTTP 429 with `Retry-After`).
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error(transparent)]
    Store(StoreError),
    /// Anything else; the text goes to the log, never to a client.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

impl Error {
    pub fn oauth(code: ErrorCode, description: impl Into<String>) -> Self {
        Self::OAuth {
            code,
            description: description.into(),
        }
    }
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what),
            other => Self::Store(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
