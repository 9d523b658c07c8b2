//! `/token` (RFC 6749 §3.2), `/revoke` (RFC 7009) and `/introspect` (RFC 7662).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::throttle::Bucket;
use portcullis_protocol::token::{TokenOperationRequest, TokenRequest};
use portcullis_protocol::{DEVICE_CODE_GRANT, ErrorCode, ScopeSet, TOKEN_EXCHANGE_GRANT};

use crate::ServerState;
use crate::client_auth::{FormBody, authenticate_token_request, authenticated_form, check_client_allowance};
use crate::client_ip::ClientIp;
use crate::dpop;
use crate::error::{ApiError, read_body};

pub(crate) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    // RFC 6749 §5.1: token responses must not be cached.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

pub async fn token_post(
    State(state): State<ServerState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    state.core.throttle.check(Bucket::TokenIp, ip.as_deref())?;
    let form = FormBody::parse(&headers, query.as_deref(), &body)?;
    // Check the grant type before anything else, to tell "missing" from "unsupported".
    match form.get("grant_type") {
        None => return Err(ApiError::new(ErrorCode::InvalidRequest, "grant_type is required")),
        Some(
            "authorization_code" | "refresh_token" | "client_credentials" | DEVICE_CODE_GRANT | TOKEN_EXCHANGE_GRANT,
        ) => {}
        Some(_) => {
            // No echo of the value (RFC 6749 §5.2 limits error_description's characters).
            return Err(ApiError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code, refresh_token, client_credentials, \
                 urn:ietf:params:oauth:grant-type:device_code or urn:ietf:params:oauth:grant-type:token-exchange",
            ));
        }
    }
    dpop::nonce_first(&state.core, &headers)?;
    // Before the client's assertion or proof is used up (the same request works elsewhere).
    state.core.check_can_sign(&[])?;
    let client = authenticate_token_request(&state.core, &headers, &form, ip.as_deref()).await?;
    check_client_allowance(&state.core, &client)?;
    let request: TokenRequest = form.parse_as().map_err(|e| malformed_scope(&form).unwrap_or(e))?;
    // RFC 9449 §5: a proof binds the access token (and a public client's grant) to its key.
    let dpop_jkt = dpop::proof_key(&state.core, &headers, "/token").await?;
    let response = match request {
        // Touches no store: nothing to leave half done, and no task hand-off to pay for
        // on the hottest path.
        TokenRequest::ClientCredentials { .. } => state.core.token(&client, request, ip, dpop_jkt).await?,
        request => {
            let core = Arc::clone(&state.core);
            to_completion(async move { core.token(&client, request, ip, dpop_jkt).await }).await?
        }
    };
    Ok(no_store(Json(response).into_response()))
}

/// RFC 6749 §5.2: a malformed scope (bad characters, too many values) is invalid_scope,
/// where deserializing the typed request calls it invalid_request. Looked at only when
/// that failed. Authorization-code requests carry no scope, so theirs is ignored.
fn malformed_scope(form: &FormBody) -> Option<ApiError> {
    if !matches!(
        form.get("grant_type"),
        Some("refresh_token" | "client_credentials" | TOKEN_EXCHANGE_GRANT)
    ) {
        return None;
    }
    let e = ScopeSet::parse(form.get("scope")?).err()?;
    Some(ApiError::new(ErrorCode::InvalidScope, e.to_string()))
}

/// Runs a use case that writes to the store on its own task, to its end, even when the
/// client hangs up. A request dropped halfway through a store transaction (wrk closing
/// its connections at the end of a load run was enough) could leave sqlx's transaction
/// bookkeeping of the SQLite writer connection wrong, after which every write failed
/// with "begin_with at non-zero transaction depth" until a restart; finishing also means
/// a code or refresh token is never left half redeemed by a disconnect. The pages get
/// the same from a layer (`portcullis-cli`).
async fn to_completion<T: Send + 'static>(
    use_case: impl Future<Output = portcullis_core::Result<T>> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(use_case).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "a token-endpoint use case did not finish");
            Err(ApiError::new(ErrorCode::ServerError, "internal error"))
        }
    }
}

pub async fn revoke_post(
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
        Bucket::RevokeIp,
        "/revoke",
        ip.as_deref(),
    )
    .await?;
    let request: TokenOperationRequest = form.parse_as()?;
    let core = Arc::clone(&state.core);
    to_completion(async move { core.revoke(&client, &request.token, request.token_type_hint, ip).await }).await?;
    // RFC 7009 §2.2: 200 whether or not the token was known (another client's token
    // was refused above, §2.1).
    Ok(no_store(().into_response()))
}

pub async fn introspect_post(
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
        Bucket::IntrospectIp,
        "/introspect",
        ip.as_deref(),
    )
    .await?;
    let request: TokenOperationRequest = form.parse_as()?;
    let response = state
        .core
        .introspect(&client, &request.token, request.token_type_hint)
        .await?;
    // RFC 9110 §12.5.5: the answer depends on `Accept`.
    let vary = [(header::VARY, "accept")];
    if !accepts(&headers, INTROSPECTION_JWT) {
        return Ok(no_store((vary, Json(response)).into_response()));
    }
    // RFC 9701 §4: the resource server asked for a signed answer.
    let core = Arc::clone(&state.core);
    let jwt = to_completion(async move { core.introspection_jwt(&client, &response).await }).await?;
    Ok(no_store(
        (vary, [(header::CONTENT_TYPE, INTROSPECTION_JWT)], jwt).into_response(),
    ))
}

/// RFC 9701 §4: the media type of a signed introspection answer.
const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

/// Whether the `Accept` headers of the request prefer `media_type` to JSON (RFC 9110
/// §12.5.1): it is named (any case, parameters aside) with a quality above 0, at least as
/// high as that of the best range JSON falls in (`application/json`, `application/*`,
/// `*/*`).
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let (mut wanted, mut json) = (0.0_f32, 0.0_f32);
    let ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for range in ranges {
        let mut parts = range.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case(media_type) {
            wanted = wanted.max(q);
        } else if ["application/json", "application/*", "*/*"]
            .iter()
            .any(|j| name.eq_ignore_ascii_case(j))
        {
            json = json.max(q);
        }
    }
    wanted > 0.0 && wanted >= json
}
