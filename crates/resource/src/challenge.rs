//! The answer to a refused request: its status, its `WWW-Authenticate` challenges (RFC 6750
//! §3 for `Bearer`, RFC 9449 §7.1 for `DPoP`) and an RFC 6749 §5.2 style JSON body for
//! clients that read bodies.

use axum::Json;
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_protocol::{ErrorCode, ErrorResponse};
use serde::Serialize;

use crate::dpop::PROOF_ALGORITHMS;
use crate::error::{AuthError, InvalidToken};

/// RFC 9449 §7.1 error code for a proof that is missing or fails a check.
const INVALID_DPOP_PROOF: &str = portcullis_protocol::ErrorCode::InvalidDpopProof.as_str();

/// The authorization scheme a request used, and so the one its challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// RFC 6750.
    Bearer,
    /// RFC 9449.
    Dpop,
}

impl Scheme {
    /// The scheme to answer an error with when the request's is not known (an error a
    /// handler returns): a problem only DPoP has is answered in its terms, and so is a
    /// missing scope of claims that came with the DPoP scheme.
    pub(crate) fn answering(error: &AuthError) -> Self {
        match error {
            AuthError::InvalidDpopProof(_)
            | AuthError::InvalidToken(InvalidToken::NotDpopBound | InvalidToken::DpopKeyMismatch)
            | AuthError::InsufficientScope { dpop: true, .. } => Self::Dpop,
            _ => Self::Bearer,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
        }
    }
}

/// RFC 6749 §5.2 body; the same members as `ErrorResponse`, with a code that may be one
/// `ErrorCode` lacks. The description goes through the same `error_description` filter,
/// so a Bearer answer's body is what it was before DPoP support, byte for byte.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

/// The response for `error`: its status, the challenge of `scheme` with `realm`, and when
/// `offer_dpop` (the validator accepts DPoP) a second, `DPoP` challenge on a `401` to a
/// request that did not use DPoP, so the client learns the scheme and its `algs`
/// (RFC 9449 §7.1; `WWW-Authenticate` may carry several challenges, RFC 9110 §11.6.1).
/// `resource_metadata`: the URL of the API's protected resource metadata (RFC 9728 §5.1),
/// named in every challenge.
pub(crate) fn error_response(
    error: &AuthError,
    realm: Option<&str>,
    resource_metadata: Option<&str>,
    scheme: Scheme,
    offer_dpop: bool,
) -> Response {
    let status = error.status();
    let (code, description, scope) = match error {
        AuthError::MissingToken => (None, None, None),
        AuthError::InvalidRequest(d) => (Some(ErrorCode::InvalidRequest.as_str()), Some(*d), None),
        AuthError::InvalidToken(reason) => (Some(ErrorCode::InvalidToken.as_str()), Some(reason.description()), None),
        AuthError::InvalidDpopProof(reason) => (Some(INVALID_DPOP_PROOF), Some(reason.description()), None),
        AuthError::InsufficientScope { required, .. } => (
            Some(ErrorCode::InsufficientScope.as_str()),
            Some("the token lacks a scope this request needs"),
            Some(required.as_str()),
        ),
        AuthError::Upstream { .. }
        | AuthError::Config(_)
        | AuthError::DpopReplayCacheFull { .. }
        | AuthError::DpopKeyQuotaExceeded { .. } => {
            return unavailable(error, status);
        }
    };
    let mut response = match (code, description) {
        (Some(error), Some(error_description)) => (
            status,
            Json(ErrorBody {
                error,
                error_description: portcullis_protocol::error_description(error_description),
            }),
        )
            .into_response(),
        _ => status.into_response(),
    };
    let mut challenges = vec![challenge(scheme, realm, code, description, scope, resource_metadata)];
    if offer_dpop && scheme == Scheme::Bearer && status == StatusCode::UNAUTHORIZED {
        challenges.push(challenge(Scheme::Dpop, realm, None, None, None, resource_metadata));
    }
    for challenge in challenges {
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().append(WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// `503` (or `429` for one DPoP key over its quota) with no challenge: the request may be
/// fine, we cannot take it now. The cause is for operators, not callers.
fn unavailable(error: &AuthError, status: StatusCode) -> Response {
    let (code, description) = match error {
        // Logged where they happened, once.
        AuthError::DpopReplayCacheFull { .. } => (
            ErrorCode::TemporarilyUnavailable,
            "the resource server is busy; try again later",
        ),
        // RFC 6585 §4; `slow_down` as the authorization server says it to a client over its
        // rate limit.
        AuthError::DpopKeyQuotaExceeded { .. } => (
            ErrorCode::SlowDown,
            "too many DPoP proofs of this key in a short time; try again later",
        ),
        _ => {
            // Every request meets it during an outage: one line a period.
            static LOGGED: crate::log_throttle::Throttled = crate::log_throttle::Throttled::new();
            match LOGGED.admit(std::time::SystemTime::now()) {
                Some(left_out) => tracing::error!(error = %error, cause = ?std::error::Error::source(error),
                    left_out, "token validation unavailable"),
                None => tracing::debug!(error = %error, "token validation unavailable"),
            }
            (
                ErrorCode::TemporarilyUnavailable,
                "the authorization server cannot be reached; try again later",
            )
        }
    };
    let body = ErrorResponse::new(code, description);
    let mut response = (status, Json(body)).into_response();
    // RFC 9110 §10.2.3: pass the wait on, in whole seconds rounded up, so the caller does
    // not retry while we would refuse anyway.
    if let Some(wait) = error.retry_after() {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if secs > 0 {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
    }
    response
}

/// Builds `Bearer realm="…", error="…", error_description="…", scope="…"` (RFC 6750 §3),
/// then `resource_metadata="…"` (RFC 9728 §5.1), or the same with `DPoP` and `algs="…"`
/// last (RFC 9449 §7.1), leaving out what is absent.
fn challenge(
    scheme: Scheme,
    realm: Option<&str>,
    code: Option<&str>,
    description: Option<&str>,
    scope: Option<&str>,
    resource_metadata: Option<&str>,
) -> String {
    let mut params = Vec::new();
    if let Some(realm) = realm {
        params.push(format!("realm=\"{}\"", quoted_safe(realm)));
    }
    if let Some(code) = code {
        params.push(format!("error=\"{code}\""));
        if let Some(description) = description {
            params.push(format!("error_description=\"{}\"", quoted_safe(description)));
        }
    }
    if let Some(scope) = scope {
        params.push(format!("scope=\"{}\"", quoted_safe(scope)));
    }
    if let Some(url) = resource_metadata {
        params.push(format!("resource_metadata=\"{}\"", quoted_safe(url)));
    }
    if scheme == Scheme::Dpop {
        params.push(format!("algs=\"{PROOF_ALGORITHMS}\""));
    }
    if params.is_empty() {
        scheme.name().to_owned()
    } else {
        format!("{} {}", scheme.name(), params.join(", "))
    }
}

/// RFC 6750 §3: attribute values are quoted strings of `%x20-21 / %x23-5B / %x5D-7E`; drop
/// anything else rather than escape it.
fn quoted_safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::InvalidDpopProof;

    #[test]
    fn challenges() {
        assert_eq!(
            challenge(Scheme::Bearer, Some("api"), None, None, None, None),
            r#"Bearer realm="api""#
        );
        assert_eq!(challenge(Scheme::Bearer, None, None, None, None, None), "Bearer");
        assert_eq!(
            challenge(
                Scheme::Bearer,
                Some("a\"p\\i"),
                Some("insufficient_scope"),
                Some("needs scope"),
                Some("x y"),
                None
            ),
            r#"Bearer realm="api", error="insufficient_scope", error_description="needs scope", scope="x y""#
        );
        assert_eq!(
            challenge(Scheme::Dpop, None, None, None, None, None),
            format!(r#"DPoP algs="{PROOF_ALGORITHMS}""#)
        );
        assert_eq!(
            challenge(
                Scheme::Dpop,
                Some("api"),
                Some("invalid_dpop_proof"),
                Some("bad"),
                None,
                None
            ),
            format!(
                r#"DPoP realm="api", error="invalid_dpop_proof", error_description="bad", algs="{PROOF_ALGORITHMS}""#
            )
        );
        // RFC 9728 §5.1.
        let prm = Some("https://api.example/.well-known/oauth-protected-resource/mcp");
        assert_eq!(
            challenge(
                Scheme::Bearer,
                Some("api"),
                Some("invalid_token"),
                Some("expired"),
                None,
                prm
            ),
            r#"Bearer realm="api", error="invalid_token", error_description="expired", resource_metadata="https://api.example/.well-known/oauth-protected-resource/mcp""#
        );
        assert_eq!(
            challenge(Scheme::Dpop, None, None, None, None, prm),
            format!(
                r#"DPoP resource_metadata="https://api.example/.well-known/oauth-protected-resource/mcp", algs="{PROOF_ALGORITHMS}""#
            )
        );
    }

    fn challenges_of(response: &Response) -> Vec<&str> {
        response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    /// RFC 9449 §7.1: with DPoP on, a `401` to a non-DPoP request offers both schemes; a
    /// `400`/`403`, or a validator without DPoP, only the one used.
    #[test]
    fn dpop_offered_alongside_bearer() {
        let algs = format!(r#"DPoP realm="api", algs="{PROOF_ALGORITHMS}""#);
        let missing = error_response(&AuthError::MissingToken, Some("api"), None, Scheme::Bearer, true);
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenges_of(&missing), [r#"Bearer realm="api""#, algs.as_str()]);
        let off = error_response(&AuthError::MissingToken, Some("api"), None, Scheme::Bearer, false);
        assert_eq!(challenges_of(&off), [r#"Bearer realm="api""#]);
        let bound = error_response(
            &InvalidToken::DpopBoundAsBearer.into(),
            Some("api"),
            None,
            Scheme::Bearer,
            true,
        );
        let found = challenges_of(&bound);
        assert!(
            found[0].starts_with(r#"Bearer realm="api", error="invalid_token""#),
            "{found:?}"
        );
        assert_eq!(found[1], algs);
        let bad_request = error_response(&AuthError::InvalidRequest("x"), Some("api"), None, Scheme::Bearer, true);
        assert_eq!(challenges_of(&bad_request).len(), 1);
        let proof = error_response(
            &InvalidDpopProof::Replayed.into(),
            Some("api"),
            None,
            Scheme::Dpop,
            true,
        );
        assert_eq!(proof.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenges_of(&proof),
            [format!(
                r#"DPoP realm="api", error="invalid_dpop_proof", error_description="the DPoP proof has already been used", algs="{PROOF_ALGORITHMS}""#
            )]
        );
    }

    #[test]
    fn full_replay_cache_is_503_with_retry_after() {
        let error = AuthError::DpopReplayCacheFull {
            retry_after: Duration::from_millis(2500),
        };
        let response = error_response(&error, Some("api"), None, Scheme::Dpop, true);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        assert!(challenges_of(&response).is_empty());
    }

    /// One key over its share of the replay cache: 429 with the wait, `slow_down` as the
    /// authorization server says it, no challenge (the credentials are not at fault).
    #[tokio::test]
    async fn key_over_its_quota_is_429_with_retry_after() {
        let error = AuthError::DpopKeyQuotaExceeded {
            retry_after: Duration::from_secs(421),
        };
        let response = error_response(&error, Some("api"), None, Scheme::Dpop, true);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "421");
        assert!(challenges_of(&response).is_empty());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "slow_down");
    }

    #[test]
    fn handler_errors_pick_their_scheme() {
        let scope = |dpop| AuthError::InsufficientScope {
            required: "x".into(),
            dpop,
        };
        assert_eq!(Scheme::answering(&scope(true)), Scheme::Dpop);
        assert_eq!(Scheme::answering(&scope(false)), Scheme::Bearer);
        assert_eq!(Scheme::answering(&InvalidDpopProof::Expired.into()), Scheme::Dpop);
        assert_eq!(Scheme::answering(&InvalidToken::DpopKeyMismatch.into()), Scheme::Dpop);
        assert_eq!(Scheme::answering(&InvalidToken::Expired.into()), Scheme::Bearer);
        assert_eq!(Scheme::answering(&AuthError::MissingToken), Scheme::Bearer);
    }
}
