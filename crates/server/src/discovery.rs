//! Discovery (OIDC Discovery 1.0 §3, RFC 8414 §2) and the JWKS document (RFC 7517).
//! Both are served from pre-serialized bytes, built again when the keys change.

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::CoreSettings;
use portcullis_core::keys::KeyRing;
use portcullis_core::service::JWKS_CACHE_CONTROL;
use portcullis_protocol::discovery::ServerMetadata;

use crate::ServerState;

/// Builds the metadata document: everything listed here is implemented. `ring` is the
/// node's keys: an algorithm `signing_alg` no longer names still signs the ID tokens of
/// clients registered for it until its keys are retired, so it is listed until then.
pub fn metadata(settings: &CoreSettings, ring: &KeyRing) -> ServerMetadata {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let client_auth = s(&["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]);
    let assertion_algs = portcullis_core::jws::algorithm_names();
    ServerMetadata {
        issuer: settings.issuer.clone(),
        authorization_endpoint: settings.endpoint("/authorize"),
        token_endpoint: settings.endpoint("/token"),
        jwks_uri: settings.endpoint("/jwks"),
        userinfo_endpoint: Some(settings.endpoint("/userinfo")),
        revocation_endpoint: Some(settings.endpoint("/revoke")),
        introspection_endpoint: Some(settings.endpoint("/introspect")),
        end_session_endpoint: Some(settings.endpoint("/logout")),
        registration_endpoint: (settings.registration != portcullis_core::registration::RegistrationMode::Off)
            .then(|| settings.endpoint("/register")),
        // Every logout token carries `sid` as well as `sub`.
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        // Every front-channel logout URL is loaded with `iss` and `sid`.
        frontchannel_logout_supported: true,
        frontchannel_logout_session_supported: true,
        pushed_authorization_request_endpoint: Some(settings.endpoint("/par")),
        require_pushed_authorization_requests: settings.require_pushed_authorization_requests,
        require_signed_request_object: settings.require_signed_request_object,
        device_authorization_endpoint: Some(settings.endpoint("/device_authorization")),
        // OIDC Core §11: offline_access asks for refresh tokens that outlive the session.
        scopes_supported: s(&["openid", "profile", "email", "offline_access"]),
        response_types_supported: s(&["code"]),
        response_modes_supported: s(&["query", "form_post"]),
        grant_types_supported: s(&[
            "authorization_code",
            "refresh_token",
            "client_credentials",
            portcullis_protocol::DEVICE_CODE_GRANT,
            portcullis_protocol::TOKEN_EXCHANGE_GRANT,
        ]),
        subject_types_supported: s(&["public", "pairwise"]),
        // OIDC Discovery §3: RS256 must be listed, and is the default; a client may
        // register `signing_alg` instead (`id_token_signed_response_alg`), the only other
        // algorithm the server makes keys for, or still be registered for an earlier one.
        id_token_signing_alg_values_supported: {
            let mut algs = settings.id_token_algs();
            for k in &ring.signers {
                if !algs.contains(&k.alg) {
                    algs.push(k.alg);
                }
            }
            algs.into_iter().map(|a| a.as_str().to_owned()).collect()
        },
        // What a client may register (`userinfo_signed_response_alg`); unsigned JSON is
        // the default.
        userinfo_signing_alg_values_supported: settings
            .id_token_algs()
            .into_iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        // RFC 9701: RS256 (the default) and `signing_alg`, as for ID tokens.
        introspection_signing_alg_values_supported: settings
            .id_token_algs()
            .into_iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        token_endpoint_auth_methods_supported: client_auth.clone(),
        revocation_endpoint_auth_methods_supported: client_auth,
        introspection_endpoint_auth_methods_supported: s(&[
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ]),
        token_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
        revocation_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
        introspection_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
        // RFC 9101: signed with the keys of `private_key_jwt`, so the same algorithms;
        // and `none` where unsigned objects are taken (OIDC Core §6.1).
        request_object_signing_alg_values_supported: {
            let mut algs = assertion_algs.clone();
            if settings.allow_unsigned_request_objects {
                algs.push("none".to_owned());
            }
            algs
        },
        dpop_signing_alg_values_supported: assertion_algs,
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
            "given_name",
            "family_name",
            "preferred_username",
            "updated_at",
            "email",
            "email_verified",
        ]),
        // select_account is served by the login page (OIDC Core §3.1.2.1).
        prompt_values_supported: s(&["none", "login", "consent", "select_account"]),
        authorization_response_iss_parameter_supported: true,
        // OIDC Core §5.5, as far as `authorize` describes.
        claims_parameter_supported: true,
        request_parameter_supported: true,
        // OIDC Core §6.2, from the client's registered `request_uris` only.
        request_uri_parameter_supported: true,
        require_request_uri_registration: true,
    }
}

/// The serialized document, built again only when the node's keys change (a rotation or
/// retirement can change the ID token algorithms); the rest depends on the settings only.
#[derive(Default)]
pub struct MetadataCache(RwLock<Option<(Arc<KeyRing>, Arc<str>)>>);

impl MetadataCache {
    fn get(&self, settings: &CoreSettings, ring: Arc<KeyRing>) -> Arc<str> {
        if let Some((built_for, body)) = &*self.0.read().unwrap_or_else(PoisonError::into_inner)
            && Arc::ptr_eq(built_for, &ring)
        {
            return Arc::clone(body);
        }
        let body: Arc<str> = serde_json::to_string(&metadata(settings, &ring))
            .unwrap_or_default()
            .into();
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some((ring, Arc::clone(&body)));
        body
    }
}

fn json_response(body: Arc<str>, max_age: &'static str) -> Response {
    let mut resp = body.to_string().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(max_age));
    resp
}

fn metadata_response(state: &ServerState) -> Response {
    json_response(
        state.discovery.get(&state.core.settings, state.core.keys.ring()),
        JWKS_CACHE_CONTROL,
    )
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
    // Short max-age: a rotated-in key is published at least this long before it signs
    // (`CoreSettings::key_publication_window`), and resource servers refetch on an
    // unknown kid.
    let mut resp = json_response(Arc::clone(&ring.jwks_json), JWKS_CACHE_CONTROL);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    resp
}

/// OIDC Discovery §2's link relation: the issuer of the resource asked about.
const ISSUER_REL: &str = "http://openid.net/specs/connect/1.0/issuer";

/// The longest `resource` answered for (an account or URL; RFC 7033 sets no bound).
const MAX_RESOURCE: usize = 1024;

/// `GET /.well-known/webfinger` (RFC 7033; OIDC Discovery §2): which issuer an account
/// (`acct:alice@example.com`) or URL signs in with. This server is one issuer, so it is
/// the answer for any resource (whether the account exists is not told). `rel` (repeated
/// or not) picks the links wanted (§4.3). Any origin may ask (§5).
pub async fn webfinger_get(State(state): State<ServerState>, RawQuery(query): RawQuery) -> Response {
    let bad = |why: &'static str| {
        let mut resp = (StatusCode::BAD_REQUEST, why).into_response();
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        resp
    };
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or_default()) else {
        return bad("the query string is not readable");
    };
    let mut resources = pairs.iter().filter(|(k, v)| k == "resource" && !v.is_empty());
    // RFC 7033 §4.2: a request without a resource, or with a malformed one, is bad.
    let (Some((_, resource)), None) = (resources.next(), resources.next()) else {
        return bad("name one resource: ?resource=acct:name@host or a URL");
    };
    // A URI (`acct:`, `https:`, `mailto:`…), as RFC 7033 §4.5 has it.
    if resource.len() > MAX_RESOURCE
        || resource
            .chars()
            .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
        || url::Url::parse(resource).is_err()
    {
        return bad("the resource is not an account or URL");
    }
    let rels: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "rel")
        .map(|(_, v)| v.as_str())
        .collect();
    let links = if rels.is_empty() || rels.contains(&ISSUER_REL) {
        serde_json::json!([{ "rel": ISSUER_REL, "href": state.core.settings.issuer }])
    } else {
        serde_json::json!([])
    };
    let body = serde_json::json!({ "subject": resource, "links": links });
    let mut resp = body.to_string().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jrd+json"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE_CONTROL));
    resp
}
