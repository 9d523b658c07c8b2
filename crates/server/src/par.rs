//! `/par`, the pushed authorization request endpoint (RFC 9126 §2).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::authorize::AuthorizeParams;
use portcullis_core::model::ClientKind;
use portcullis_core::throttle::Bucket;

use crate::ServerState;
use crate::client_auth::{FormBody, authenticate};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, read_body};

/// `POST /par`: the client authenticates as at `/token` (a public client names itself
/// with `client_id`), sends the authorization request's parameters as a form, and gets
/// `201` with the `request_uri` to send the browser to `/authorize` with (§2.2).
pub async fn par_post(
    State(state): State<ServerState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    state.core.throttle.check(Bucket::TokenIp, ip.as_deref())?;
    let form = FormBody::parse(&headers, query.as_deref(), &body)?;
    let client = authenticate(&state.core, &headers, &form, "/par", ip.as_deref()).await?;
    // As at /token: an authenticated client's own allowance (a public client's id proves
    // nothing, so it counts per address only).
    if client.kind == ClientKind::Confidential {
        state
            .core
            .throttle
            .check(Bucket::TokenClient, Some(client.id.as_str()))?;
    }
    // The authentication parameters are not part of the authorization request.
    let params = AuthorizeParams::from_pairs(form.raw.iter().filter(|(k, _)| !is_authentication(k)).cloned());
    let pushed = state.core.push_authorization_request(&client, &params).await?;
    let mut response = (StatusCode::CREATED, Json(pushed)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn is_authentication(name: &str) -> bool {
    matches!(name, "client_secret" | "client_assertion" | "client_assertion_type")
}
