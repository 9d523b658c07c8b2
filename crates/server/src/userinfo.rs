//! `/userinfo` (OIDC Core §5.3) with the access token in the `Authorization` header
//! only (RFC 6750 §2.1); tokens in the query string or body are refused.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use portcullis_protocol::ErrorCode;

use crate::ServerState;
use crate::error::ApiError;

fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    // RFC 6750 §3.1: no credentials at all, or credentials of another scheme (which are
    // not bearer credentials), get a bare challenge without an error code.
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::bearer_required());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "the Authorization header is not readable").bearer())?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::bearer_required());
    }
    match token.trim() {
        // RFC 6750 §3.1: a malformed Bearer credential is invalid_request.
        "" => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the Authorization header must be Bearer <token>",
        )
        .bearer()),
        token => Ok(token),
    }
}

fn refuse_token_in(params: &str) -> Result<(), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(params).unwrap_or_default();
    if pairs.iter().any(|(k, _)| k == "access_token") {
        // DESIGN §5: never from the query string or body.
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "send the access token in the Authorization header only",
        )
        .bearer());
    }
    Ok(())
}

async fn userinfo(state: &ServerState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let token = bearer_token(headers)?;
    let info = state
        .core
        .userinfo(token)
        .await
        .map_err(|e| ApiError::from(e).bearer())?;
    let mut resp = Json(info).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(resp)
}

pub async fn userinfo_get(
    State(state): State<ServerState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    refuse_token_in(query.as_deref().unwrap_or(""))?;
    userinfo(&state, &headers).await
}

pub async fn userinfo_post(
    State(state): State<ServerState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_token_in(query.as_deref().unwrap_or(""))?;
    refuse_token_in(std::str::from_utf8(&body).unwrap_or(""))?;
    userinfo(&state, &headers).await
}
