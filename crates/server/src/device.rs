//! `/device_authorization`, the device authorization endpoint (RFC 8628 §3.1).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use portcullis_core::throttle::Bucket;
use portcullis_protocol::token::DeviceAuthorizationRequest;

use crate::ServerState;
use crate::client_auth::{authenticated_form, check_client_allowance};
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::token::no_store;

/// `POST /device_authorization`: the client authenticates as at `/token` (a public client
/// names itself with `client_id`, §3.1) and asks for `scope` (and, RFC 8707, a
/// `resource`); it gets the device code, the user code and where to send the person
/// (§3.2). Its requests count against the same allowances as its token requests.
pub async fn device_authorization_post(
    State(state): State<ServerState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (form, client) = authenticated_form(
        &state.core,
        &headers,
        query.as_deref(),
        body,
        Bucket::TokenIp,
        "/device_authorization",
        ip.as_deref(),
    )
    .await?;
    check_client_allowance(&state.core, &client)?;
    let request: DeviceAuthorizationRequest = form.parse_as()?;
    let response = state
        .core
        .device_authorization(&client, request.scope.as_deref(), request.resource.as_deref(), ip)
        .await?;
    Ok(no_store(Json(response).into_response()))
}
