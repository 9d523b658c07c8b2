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
    /// The request had no credentials at all: a bare challenge (RFC 6750 §3.1).
    bare: bool,
    /// The scope the endpoint needs, named in an `insufficient_scope` challenge.
    scope: Option<&'static str>,
    /// The client did not use HTTP authentication (a `private_key_jwt` assertion): an
    /// `invalid_client` is a 400 without a `Basic` challenge (RFC 6749 §5.2 asks for the
    /// 401 and its challenge only after the `Authorization` header was used).
    no_challenge: bool,
    /// The request used the DPoP scheme (RFC 9449 §7.1): a `DPoP` challenge.
    dpop: bool,
}

/// RFC 9449 §7.1: a `DPoP` challenge names the proof algorithms accepted. Made once.
fn dpop_scheme() -> &'static str {
    static SCHEME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCHEME.get_or_init(|| format!("DPoP algs=\"{}\"", portcullis_core::jws::algorithm_names().join(" ")))
}

impl ApiError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            bearer: false,
            retry_after: None,
            bare: false,
            scope: None,
            no_challenge: false,
            dpop: false,
        }
    }

    /// See `dpop`.
    pub fn dpop(mut self) -> Self {
        self.dpop = true;
        self
    }

    /// See `no_challenge`.
    pub fn without_challenge(mut self) -> Self {
        self.no_challenge = true;
        self
    }

    /// RFC 6750 §3.1: a request to a bearer-token endpoint without any authentication
    /// information gets a 401 challenge with no error code or other error information.
    pub fn bearer_required() -> Self {
        Self {
            bare: true,
            ..Self::new(ErrorCode::InvalidToken, "").bearer()
        }
    }

    pub fn bearer(mut self) -> Self {
        self.bearer = true;
        self
    }

    /// A bearer-token endpoint that needs `scope`: an `insufficient_scope` challenge says
    /// so (RFC 6750 §3).
    pub fn needing_scope(mut self, scope: &'static str) -> Self {
        self.scope = Some(scope);
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

/// The body of a protocol request. One that is too large (or cut off) is an RFC 6749
/// §5.2 `invalid_request` like any other bad input, not axum's plain-text rejection.
pub fn read_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| {
        let description = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is too large"
        } else {
            "the request body could not be read"
        };
        ApiError::new(ErrorCode::InvalidRequest, description)
    })
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.bare {
            let mut resp = (
                StatusCode::UNAUTHORIZED,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            )
                .into_response();
            // Either scheme will do (RFC 9449 §7.1).
            let h = resp.headers_mut();
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
            if let Ok(v) = HeaderValue::from_str(dpop_scheme()) {
                h.append(header::WWW_AUTHENTICATE, v);
            }
            return resp;
        }
        // RFC 6749 §5.2: only the characters the RFC allows, in the body (the body's
        // constructor filters them) and the header.
        let body = ErrorResponse::new(self.code, self.description);
        let description = body.error_description.as_deref().unwrap_or_default();
        let status = match self.code {
            ErrorCode::InvalidClient if self.no_challenge => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce if self.dpop => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            // A rate limit; a device polling too soon (RFC 8628 §3.5) gets a plain 400.
            ErrorCode::SlowDown if self.retry_after.is_some() => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        };
        // RFC 6750 §3.1 and RFC 9449 §7.1 name only client errors: a server error carries
        // no challenge.
        let challenge = if (self.bearer || self.dpop) && status.is_client_error() {
            // RFC 6750 §3 and RFC 9449 §7.1: the challenge carries the error code.
            let scope = match self.scope {
                Some(s) if self.code == ErrorCode::InsufficientScope => format!(", scope=\"{s}\""),
                _ => String::new(),
            };
            let scheme = if self.dpop {
                dpop_scheme()
            } else {
                "Bearer realm=\"portcullis\""
            };
            Some(format!(
                "{scheme}, error=\"{}\", error_description=\"{}\"{scope}",
                self.code.as_str(),
                description
            ))
        } else if self.code == ErrorCode::InvalidClient && !self.no_challenge {
            // RFC 6749 §5.2: 401 with the scheme the client can authenticate with.
            Some("Basic realm=\"portcullis\"".to_owned())
        } else {
            None
        };
        let mut resp = (status, Json(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, c);
            // RFC 9449 §7.1: a bearer-token endpoint that takes DPoP-bound tokens too
            // says so, which tells a client that sent a bound token as a bearer token
            // what to do instead.
            if self.bearer
                && !self.dpop
                && let Ok(v) = HeaderValue::from_str(dpop_scheme())
            {
                headers.append(header::WWW_AUTHENTICATE, v);
            }
        }
        // RFC 9110 §10.2.3: a 503 says when to come back (a busy password pool, a node
        // that cannot sign): soon, or elsewhere.
        let retry_after = self
            .retry_after
            .or((status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_rendered_with_allowed_characters_only() {
        let resp = ApiError::new(ErrorCode::InvalidToken, "bad \"token\" \\ §3.1 é")
            .bearer()
            .into_response();
        let challenge = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap_or_default();
        assert_eq!(
            challenge,
            "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"bad 'token' / section 3.1 ?\""
        );
    }

    #[test]
    fn no_credentials_get_a_bare_challenge() {
        let resp = ApiError::bearer_required().into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenges: Vec<_> = resp.headers().get_all(header::WWW_AUTHENTICATE).iter().collect();
        assert_eq!(challenges[0], "Bearer realm=\"portcullis\"");
        assert_eq!(
            challenges[1],
            "DPoP algs=\"RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA Ed25519\""
        );
        assert_eq!(challenges.len(), 2);
    }

    #[test]
    fn server_errors_carry_no_challenge() {
        for e in [
            ApiError::new(ErrorCode::ServerError, "internal error").bearer(),
            ApiError::new(ErrorCode::TemporarilyUnavailable, "busy").dpop(),
        ] {
            let resp = e.into_response();
            assert!(resp.status().is_server_error());
            assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
        }
        let resp = ApiError::new(ErrorCode::InvalidToken, "expired")
            .bearer()
            .into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_some());
    }

    #[test]
    fn unavailable_says_when_to_come_back() {
        let resp = ApiError::new(ErrorCode::TemporarilyUnavailable, "busy").into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let resp = ApiError::new(ErrorCode::ServerError, "internal error").into_response();
        assert!(resp.headers().get(header::RETRY_AFTER).is_none());
    }
}
