//! `/register` (RFC 7591 §3) and `/register/{client_id}` (RFC 7592 §2), mounted only
//! when clients may register themselves (`registration = "open"`, or `"token"` with an
//! initial access token).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::registration::{Registered, registration_response};
use portcullis_protocol::{ErrorCode, ErrorResponse};

use crate::ServerState;
use crate::client_ip::ClientIp;
use crate::error::{ApiError, read_body};
use crate::token::no_store;

/// The largest registration read: a JWK Set of a few keys and fifty redirect URIs fit.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON body (RFC 7591 §3.1: `application/json`).
fn metadata(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<serde_json::Value, ApiError> {
    let body = read_body(body)?;
    if crate::client_auth::sent_twice(headers, &header::CONTENT_TYPE) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "send one Content-Type header"));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "send the client metadata as application/json",
        ));
    }
    // Members named twice are refused (`Members`): which one counts would be a guess.
    let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let parsed = if object {
        serde_json::from_slice::<portcullis_protocol::json::Members>(&body).map(|m| serde_json::Value::Object(m.0))
    } else {
        serde_json::from_slice(&body)
    };
    parsed.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidClientMetadata,
            format!("the body is not JSON, or names a member twice: {e}"),
        )
    })
}

fn answer(state: &ServerState, status: StatusCode, registered: &Registered) -> Response {
    no_store((status, Json(registration_response(&state.core.settings, registered))).into_response())
}

/// RFC 7592 §2 and RFC 6750 §3: a missing or wrong registration access token is a 401
/// with a `Bearer` challenge (the DPoP scheme is not offered: these are not access
/// tokens).
fn unauthorized(error: Option<(ErrorCode, String)>) -> Response {
    challenged(StatusCode::UNAUTHORIZED, error)
}

/// `status` with a `Bearer` challenge naming `error`, if any, and the JSON error body.
fn challenged(status: StatusCode, error: Option<(ErrorCode, String)>) -> Response {
    let (challenge, body) = match error {
        None => ("Bearer realm=\"portcullis\"".to_owned(), None),
        Some((code, description)) => {
            let body = ErrorResponse::new(code, description);
            let challenge = format!(
                "Bearer realm=\"portcullis\", error=\"{}\", error_description=\"{}\"",
                code.as_str(),
                body.error_description.as_deref().unwrap_or_default()
            );
            (challenge, Some(body))
        }
    };
    let mut resp = match body {
        Some(body) => (status, Json(body)).into_response(),
        None => status.into_response(),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(resp)
}

/// The registration access token of `Authorization: Bearer …`. RFC 6750 §3.1: no
/// header, or another scheme, is a request without credentials (a bare challenge); a
/// `Bearer` header without a token is a malformed request (`400 invalid_request`).
fn registration_token(headers: &HeaderMap) -> Result<String, NoToken> {
    if crate::client_auth::sent_twice(headers, &header::AUTHORIZATION) {
        return Err(NoToken::Malformed);
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(NoToken::Missing);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(NoToken::Malformed);
    }
    Ok(token.to_owned())
}

/// Why `registration_token` found none.
pub enum NoToken {
    Missing,
    Malformed,
}

impl IntoResponse for NoToken {
    fn into_response(self) -> Response {
        match self {
            Self::Missing => unauthorized(None),
            // RFC 6750 §3: a 400 with its challenge, naming the error.
            Self::Malformed => challenged(
                StatusCode::BAD_REQUEST,
                Some((
                    ErrorCode::InvalidRequest,
                    "the Authorization header must be Bearer and the token".to_owned(),
                )),
            ),
        }
    }
}

/// A core error at the management endpoint: a bad token is a 401 challenge; a client an
/// operator disabled is a 403 (RFC 7592 §2).
fn managed(e: portcullis_core::Error) -> Response {
    match e {
        portcullis_core::Error::OAuth {
            code: ErrorCode::InvalidToken,
            description,
        } => unauthorized(Some((ErrorCode::InvalidToken, description))),
        portcullis_core::Error::OAuth {
            code: ErrorCode::AccessDenied,
            description,
        } => no_store(
            (
                StatusCode::FORBIDDEN,
                Json(ErrorResponse::new(ErrorCode::AccessDenied, description)),
            )
                .into_response(),
        ),
        other => ApiError::from(other).into_response(),
    }
}

/// `POST /register`: RFC 7591 §3.1; `201` with the client's metadata, its secret (when
/// it has one) and its registration access token (§3.2.1). A missing, wrong or spent
/// initial access token is a `401` Bearer challenge, as a registration access token's.
pub async fn register_post(
    State(state): State<ServerState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refused> {
    // RFC 7591 §3: with `registration = "token"`, the initial access token as a bearer
    // token (RFC 6750 §2.1), looked at before the body.
    let initial_token = match state.core.settings.registration {
        portcullis_core::registration::RegistrationMode::Token => Some(registration_token(&headers)?),
        _ => None,
    };
    let metadata = metadata(&headers, body)?;
    let registered = state
        .core
        .register_client(&metadata, ip.as_deref(), initial_token.as_deref())
        .await?;
    Ok(answer(&state, StatusCode::CREATED, &registered))
}

/// Why a management request is refused: no usable token, a core refusal (a bad token is
/// a `401` challenge, see `managed`), or a bad body.
pub enum Refused {
    Token(NoToken),
    Core(portcullis_core::Error),
    Request(ApiError),
}

impl From<NoToken> for Refused {
    fn from(e: NoToken) -> Self {
        Self::Token(e)
    }
}

impl From<portcullis_core::Error> for Refused {
    fn from(e: portcullis_core::Error) -> Self {
        Self::Core(e)
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Self::Request(e)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Token(e) => e.into_response(),
            Self::Core(e) => managed(e),
            Self::Request(e) => e.into_response(),
        }
    }
}

/// `GET /register/{client_id}`: RFC 7592 §2.1.
pub async fn registration_get(
    State(state): State<ServerState>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let token = registration_token(&headers)?;
    let registered = state.core.read_registration(&id, &token, ip.as_deref()).await?;
    Ok(answer(&state, StatusCode::OK, &registered))
}

/// `PUT /register/{client_id}`: RFC 7592 §2.2, the whole registration replaced.
pub async fn registration_put(
    State(state): State<ServerState>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refused> {
    let token = registration_token(&headers)?;
    // The token first: whoever does not hold it learns nothing from the body's checks.
    state.core.registered_client(&id, &token).await?;
    let metadata = metadata(&headers, body)?;
    let registered = state
        .core
        .update_registration(&id, &token, &metadata, ip.as_deref())
        .await?;
    Ok(answer(&state, StatusCode::OK, &registered))
}

/// `DELETE /register/{client_id}`: RFC 7592 §2.3, `204` once the client is gone.
pub async fn registration_delete(
    State(state): State<ServerState>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let token = registration_token(&headers)?;
    state.core.delete_registration(&id, &token, ip.as_deref()).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
