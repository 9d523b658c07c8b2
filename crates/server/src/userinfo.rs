//! `/userinfo` (OIDC Core §5.3) with the access token in the `Authorization` header
//! (RFC 6750 §2.1) or, on POST, in a form-encoded body (§2.2); never from the query
//! string (DESIGN §5), and never in two places at once (§2: "MUST NOT use more than one
//! method"). A DPoP-bound token comes with the DPoP scheme and a proof (RFC 9449 §7.1).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::tokens::{RequestProof, UserInfoAnswer};
use portcullis_protocol::ErrorCode;

use crate::ServerState;
use crate::dpop;
use crate::error::{ApiError, read_body};

/// How the access token was sent in the `Authorization` header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// RFC 6750 §2.1.
    Bearer,
    /// RFC 9449 §7.1: with a proof in the `DPoP` header.
    Dpop,
}

impl Scheme {
    /// An error answered with this scheme's challenge.
    fn challenge(self, e: ApiError) -> ApiError {
        match self {
            Self::Bearer => e.bearer(),
            Self::Dpop => e.dpop(),
        }
    }
}

fn authorization(headers: &HeaderMap) -> Result<(Scheme, &str), ApiError> {
    // RFC 6750 §3.1: no credentials at all, or credentials of another scheme (which are
    // not bearer credentials), get a bare challenge without an error code.
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::bearer_required());
    };
    // RFC 6750 §2: one way of sending the token, once.
    if crate::client_auth::sent_twice(headers, &header::AUTHORIZATION) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "send one Authorization header").bearer());
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "the Authorization header is not readable").bearer())?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(ApiError::bearer_required());
    };
    match token.trim() {
        // RFC 6750 §3.1: a malformed credential is invalid_request.
        "" => Err(scheme.challenge(ApiError::new(
            ErrorCode::InvalidRequest,
            "the Authorization header must be Bearer <token> or DPoP <token>",
        ))),
        token => Ok((scheme, token)),
    }
}

/// The `access_token` values of a query or form; one without a value is omitted (RFC
/// 6749 §3.1), as any parameter's.
fn token_params(params: &str) -> Vec<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(params).unwrap_or_default();
    pairs
        .into_iter()
        .filter(|(k, v)| k == "access_token" && !v.is_empty())
        .map(|(_, v)| v)
        .collect()
}

fn refuse_token_in_query(query: Option<&str>) -> Result<(), ApiError> {
    if token_params(query.unwrap_or("")).is_empty() {
        return Ok(());
    }
    // DESIGN §5: never from the query string.
    Err(ApiError::new(
        ErrorCode::InvalidRequest,
        "the access token is not accepted in the query string; send it in the Authorization header",
    )
    .bearer())
}

async fn userinfo(
    state: &ServerState,
    headers: &HeaderMap,
    method: &str,
    (scheme, token): (Scheme, &str),
) -> Result<Response, ApiError> {
    let proof = match scheme {
        Scheme::Bearer => None,
        Scheme::Dpop => {
            let proof = dpop::proof(headers).map_err(ApiError::dpop)?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidDpopProof,
                    "the DPoP scheme needs a proof in the DPoP header",
                )
                .dpop()
            })?;
            Some(RequestProof { proof, method })
        }
    };
    let info = state
        .core
        .userinfo(token, proof)
        .await
        .map_err(|e| scheme.challenge(ApiError::from(e)).needing_scope("openid"))?;
    let mut resp = match info {
        UserInfoAnswer::Json(info) => Json(info).into_response(),
        UserInfoAnswer::Jwt(jwt) => ([(header::CONTENT_TYPE, "application/jwt")], jwt).into_response(),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// GET, and HEAD (which axum routes here): a proof names the method the request used.
pub async fn userinfo_get(
    State(state): State<ServerState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    refuse_token_in_query(query.as_deref())?;
    userinfo(&state, &headers, method.as_str(), authorization(&headers)?).await
}

pub async fn userinfo_post(
    State(state): State<ServerState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    refuse_token_in_query(query.as_deref())?;
    // RFC 9110 §5.3: not a list; which copy describes the body is anyone's guess.
    if crate::client_auth::sent_twice(&headers, &header::CONTENT_TYPE) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "send one Content-Type header").bearer());
    }
    let body = read_body(body).map_err(ApiError::bearer)?;
    // A form holding the token (RFC 6750 §2.2) that cannot be read as the client meant it
    // is malformed, not "no credentials" (§3.1): it is held to the token endpoint's
    // rules. Other forms (the token in the header) and other bodies are not looked at.
    if crate::client_auth::is_form(&headers)
        && url::form_urlencoded::parse(&body).any(|(name, value)| name == "access_token" && !value.is_empty())
        && let Some(description) = crate::client_auth::unreadable_form(&headers, &body)
    {
        return Err(ApiError::new(ErrorCode::InvalidRequest, description).bearer());
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return userinfo(&state, &headers, "POST", authorization(&headers)?).await;
    };
    let in_body = token_params(text);
    if in_body.is_empty() {
        return userinfo(&state, &headers, "POST", authorization(&headers)?).await;
    }
    let refuse = |description: &'static str| Err(ApiError::new(ErrorCode::InvalidRequest, description).bearer());
    if !crate::client_auth::is_form(&headers) {
        // RFC 6750 §2.2: only a single-part application/x-www-form-urlencoded body.
        return refuse("an access token in the body needs Content-Type: application/x-www-form-urlencoded");
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return refuse("the access token was sent both in the Authorization header and in the body");
    }
    match in_body.as_slice() {
        [token] => userinfo(&state, &headers, "POST", (Scheme::Bearer, token)).await,
        _ => refuse("the access_token parameter is repeated"),
    }
}
