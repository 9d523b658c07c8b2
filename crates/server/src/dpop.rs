//! DPoP (RFC 9449) at the protocol endpoints: the `DPoP` request header, and the key
//! the tokens of a request are bound to.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use portcullis_core::Portcullis;
use portcullis_core::dpop::ProofContext;
use portcullis_protocol::ErrorCode;

use crate::ServerState;
use crate::error::ApiError;

/// The request header a proof travels in (§4.1).
pub(crate) const HEADER: &str = "dpop";

/// The request's DPoP proof, if it sent one. §4.3 item 1: one `DPoP` header at most.
pub(crate) fn proof(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidDpopProof,
            "send one DPoP header, not several",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::new(ErrorCode::InvalidDpopProof, "the DPoP header is not readable"))
}

/// RFC 9449 §8: with nonces required, a proof without a fresh one is answered
/// `use_dpop_nonce` before the client authenticates, which would spend its assertion.
pub(crate) fn nonce_first(core: &Portcullis, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(proof) = proof(headers)? {
        core.dpop_nonce_precheck(proof)?;
    }
    Ok(())
}

/// The thumbprint of the key of the DPoP proof a `POST` to `path` carries, checked
/// (§4.3), or `None` without a proof.
pub(crate) async fn proof_key(core: &Portcullis, headers: &HeaderMap, path: &str) -> Result<Option<String>, ApiError> {
    let Some(proof) = proof(headers)? else {
        return Ok(None);
    };
    let ctx = ProofContext {
        method: "POST",
        path,
        access_token: None,
    };
    Ok(Some(core.verify_dpop_proof(proof, ctx).await?))
}

/// RFC 9449 §8: with `require_dpop_nonce`, every answer of an endpoint that takes proofs
/// carries the nonce for the next proof in `DPoP-Nonce`, errors included: that is how a
/// client gets its first one (with `use_dpop_nonce`) and keeps it fresh.
pub(crate) async fn nonce_header(State(state): State<ServerState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(v) = state.core.dpop_nonce().and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert(NONCE_HEADER, v);
    }
    response
}

/// The response header a nonce travels in (§8.1).
pub(crate) const NONCE_HEADER: &str = "dpop-nonce";
