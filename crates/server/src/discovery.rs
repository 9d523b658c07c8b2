//! Discovery (OIDC Discovery 1.0 §3, RFC 8414 §2) and the JWKS document (RFC 7517).
//! Both are served from pre-serialized bytes: they change only when keys rotate.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::CoreSettings;
use portcullis_protocol::SigningAlg;
use portcullis_protocol::discovery::ServerMetadata;

use crate::ServerState;

/// Builds the metadata document: everything listed here is implemented.
pub fn metadata(settings: &CoreSettings, algs: &[SigningAlg]) -> ServerMetadata {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let client_auth = s(&["client_secret_basic", "client_secret_post", "none"]);
    let mut alg_names: Vec<String> = algs.iter().map(|a| a.as_str().to_owned()).collect();
    if alg_names.is_empty() {
        alg_names.push(settings.signing_alg.as_str().to_owned());
    }
    ServerMetadata {
        issuer: settings.issuer.clone(),
        authorization_endpoint: settings.endpoint("/authorize"),
        token_endpoint: settings.endpoint("/token"),
        jwks_uri: settings.endpoint("/jwks"),
        userinfo_endpoint: Some(settings.endpoint("/userinfo")),
        revocation_endpoint: Some(settings.endpoint("/revoke")),
        introspection_endpoint: Some(settings.endpoint("/introspect")),
        end_session_endpoint: Some(settings.endpoint("/logout")),
        scopes_supported: s(&["openid", "profile", "email"]),
        response_types_supported: s(&["code"]),
        response_modes_supported: s(&["query", "form_post"]),
        grant_types_supported: s(&["authorization_code", "refresh_token", "client_credentials"]),
        subject_types_supported: s(&["public"]),
        id_token_signing_alg_values_supported: alg_names,
        token_endpoint_auth_methods_supported: client_auth.clone(),
        revocation_endpoint_auth_methods_supported: client_auth,
        introspection_endpoint_auth_methods_supported: s(&["client_secret_basic", "client_secret_post"]),
        code_challenge_methods_supported: s(&["S256"]),
        claims_supported: s(&[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "sid",
            "azp",
            "name",
            "preferred_username",
            "updated_at",
            "email",
            "email_verified",
        ]),
        // select_account is served by the login page (OIDC Core §3.1.2.1).
        prompt_values_supported: s(&["none", "login", "consent", "select_account"]),
        authorization_response_iss_parameter_supported: true,
        claims_parameter_supported: false,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
    }
}

/// The serialized document, rebuilt when the published algorithms change.
#[derive(Default)]
pub struct MetadataCache(RwLock<Option<(Vec<SigningAlg>, Arc<str>)>>);

impl MetadataCache {
    fn get(&self, settings: &CoreSettings, algs: Vec<SigningAlg>) -> Arc<str> {
        if let Ok(guard) = self.0.read()
            && let Some((cached_algs, json)) = guard.as_ref()
            && *cached_algs == algs
        {
            return Arc::clone(json);
        }
        let json: Arc<str> = serde_json::to_string(&metadata(settings, &algs))
            .unwrap_or_default()
            .into();
        if let Ok(mut guard) = self.0.write() {
            *guard = Some((algs, Arc::clone(&json)));
        }
        json
    }
}

fn json_response(body: Arc<str>, max_age: &'static str) -> Response {
    let mut resp = body.to_string().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(max_age));
    resp
}

/// OIDC Discovery §3 `id_token_signing_alg_values_supported`: the algorithm tokens are
/// signed with, i.e. the active key's — not every published key (a next key has not
/// signed yet; a retired one signs no more). Before the ring is loaded, the configured
/// algorithm.
///
/// OIDC Core §15.1 expects RS256 support. RS256 is the default; an operator who
/// configures ES256 or EdDSA gets only that algorithm listed here, since a second key
/// ring just for RS256 ID tokens is not worth its complexity (DESIGN §3).
fn signing_algs(state: &ServerState) -> Vec<SigningAlg> {
    let alg = state
        .core
        .keys
        .ring()
        .active
        .as_ref()
        .map_or(state.core.settings.signing_alg, |k| k.alg);
    vec![alg]
}

fn metadata_response(state: &ServerState) -> Response {
    let algs = signing_algs(state);
    json_response(state.discovery.get(&state.core.settings, algs), "public, max-age=300")
}

pub async fn openid_configuration_get(State(state): State<ServerState>) -> Response {
    metadata_response(&state)
}

/// RFC 8414 §3: same document; Portcullis's issuer has no path, so both well-known
/// locations are at the root.
pub async fn oauth_metadata_get(State(state): State<ServerState>) -> Response {
    metadata_response(&state)
}

pub async fn jwks_get(State(state): State<ServerState>) -> Response {
    let ring = state.core.keys.ring();
    // Short max-age: a rotated-in key is published well before it signs, and resource
    // servers refetch on an unknown kid.
    let mut resp = json_response(Arc::clone(&ring.jwks_json), "public, max-age=300");
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    resp
}
