//! `/par`, the pushed authorization request endpoint (RFC 9126 §2).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::authorize::AuthorizeParams;
use portcullis_core::throttle::Bucket;

use crate::ServerState;
use crate::client_auth::{authenticated_form, check_client_allowance};
use crate::client_ip::ClientIp;
use crate::dpop;
use crate::error::ApiError;
use crate::token::no_store;

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
    dpop::nonce_first(&state.core, &headers)?;
    let (form, client) = authenticated_form(
        &state.core,
        &headers,
        query.as_deref(),
        body,
        Bucket::TokenIp,
        "/par",
        ip.as_deref(),
    )
    .await?;
    // Its pushes count against the same allowance as its token requests.
    check_client_allowance(&state.core, &client)?;
    // The authentication parameters are not part of the authorization request.
    let params = AuthorizeParams::from_pairs(form.raw.iter().filter(|(k, _)| !is_authentication(k)).cloned());
    // RFC 9449 §10.1: a proof binds the code to its key, as `dpop_jkt` would.
    let proof_jkt = dpop::proof_key(&state.core, &headers, "/par").await?;
    let pushed = state
        .core
        .push_authorization_request(&client, &params, proof_jkt)
        .await?;
    Ok(no_store((StatusCode::CREATED, Json(pushed)).into_response()))
}

fn is_authentication(name: &str) -> bool {
    matches!(name, "client_secret" | "client_assertion" | "client_assertion_type")
}
