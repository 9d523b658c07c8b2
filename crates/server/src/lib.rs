//! Portcullis protocol endpoints for machines: token, revocation, introspection,
//! userinfo, JWKS, discovery and health. Browser-facing endpoints (authorize, login,
//! consent, logout) live in `portcullis-web`.

mod client_auth;
mod client_ip;
mod cors;
mod device;
mod discovery;
mod dpop;
mod error;
mod health;
mod par;
mod registration;
mod token;
mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use portcullis_core::Portcullis;

pub use error::ApiError;

/// State shared by the protocol handlers.
#[derive(Clone)]
pub struct ServerState {
    pub core: Arc<Portcullis>,
    discovery: Arc<discovery::MetadataCache>,
}

impl ServerState {
    pub fn new(core: Arc<Portcullis>) -> Self {
        Self {
            core,
            discovery: Arc::new(discovery::MetadataCache::default()),
        }
    }
}

/// The protocol router with its state applied. CORS covers only the endpoints a
/// browser calls; the configured trusted proxies ride along in the request extensions
/// for `ClientIp`.
pub fn router(core: Arc<Portcullis>) -> Router {
    let trusted = core.settings.defense.trusted_proxies.clone();
    // With open registration anyone could register any origin, so the registered ones
    // protect nothing: any origin, without credentials. With tokens, clients are an
    // operator's choice: their registered origins, as without registration.
    let cors = match core.settings.registration {
        portcullis_core::registration::RegistrationMode::Off
        | portcullis_core::registration::RegistrationMode::Token => {
            cors::layer(Arc::new(cors::CorsOrigins::new(Arc::clone(&core))))
        }
        portcullis_core::registration::RegistrationMode::Open => cors::open_layer(),
    };
    let state = ServerState::new(core);
    let browser_facing = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration_get),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::oauth_metadata_get),
        )
        .route("/jwks", get(discovery::jwks_get))
        .route("/revoke", post(token::revoke_post))
        .merge(dpop_endpoints(&state))
        // Before the CORS layer, which then answers preflights (`OPTIONS`) as before.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors);
    Router::new()
        .route("/introspect", post(token::introspect_post))
        .route("/device_authorization", post(device::device_authorization_post))
        .route("/.well-known/webfinger", get(discovery::webfinger_get))
        .route("/healthz", get(health::healthz_get))
        .route("/readyz", get(health::readyz_get))
        // These routes only: the merged ones have theirs inside their CORS layers.
        .method_not_allowed_fallback(method_not_allowed)
        .merge(browser_facing)
        .merge(registration_endpoints(&state))
        .layer(axum::Extension(trusted))
        .with_state(state)
}

/// A method an endpoint does not take: `405` with its `Allow` (set by the router) and a
/// JSON error body, as every other error of these endpoints has (RFC 6749 §5.2 names no
/// code for it; `invalid_request` is the nearest).
async fn method_not_allowed(method: axum::http::Method) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = error::ApiError::new(
        portcullis_protocol::ErrorCode::InvalidRequest,
        format!("this endpoint does not take {method} requests"),
    )
    .into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// `/register/{client_id}` with a method it does not take, `HEAD` included: refused, the
/// registration access token untouched, and `Allow` names only the methods taken (axum's
/// own would list `HEAD`, which `GET` implies there).
async fn registration_method_not_allowed(method: axum::http::Method) -> axum::response::Response {
    let mut response = method_not_allowed(method).await;
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("GET, PUT, DELETE"),
    );
    response
}

/// The endpoints that take DPoP proofs; with `require_dpop_nonce` they hand out nonces
/// (RFC 9449 §8). Without it the layer is left out: `/token` is the hot path.
fn dpop_endpoints(state: &ServerState) -> Router<ServerState> {
    let router = Router::new()
        .route("/token", post(token::token_post))
        .route("/par", post(par::par_post))
        .route("/userinfo", get(userinfo::userinfo_get).post(userinfo::userinfo_post));
    if state.core.settings.require_dpop_nonce {
        router.route_layer(axum::middleware::from_fn_with_state(state.clone(), dpop::nonce_header))
    } else {
        router
    }
}

/// RFC 7591 and RFC 7592, when clients may register themselves (openly or with an
/// initial access token); otherwise nothing (a 404, and no `registration_endpoint` in
/// discovery).
fn registration_endpoints(state: &ServerState) -> Router<ServerState> {
    use portcullis_core::registration::RegistrationMode;
    match state.core.settings.registration {
        RegistrationMode::Off => Router::new(),
        RegistrationMode::Open | RegistrationMode::Token => Router::new()
            .route("/register", post(registration::register_post))
            .route(
                "/register/{client_id}",
                get(registration::registration_get)
                    // RFC 7592 §2.1: each read answers a new registration access token in
                    // its body, and the one used stops working; a HEAD (a link checker, a
                    // probe) would spend it and drop the new one with the body. Not taken.
                    .head(registration_method_not_allowed)
                    .put(registration::registration_put)
                    .delete(registration::registration_delete)
                    .fallback(registration_method_not_allowed),
            )
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::extract::DefaultBodyLimit::max(registration::MAX_BODY))
            .layer(cors::registration_layer()),
    }
}

/// Health endpoints alone, for the admin listener.
pub fn health_router(core: Arc<Portcullis>) -> Router {
    Router::new()
        .route("/.well-known/webfinger", get(discovery::webfinger_get))
        .route("/healthz", get(health::healthz_get))
        .route("/readyz", get(health::readyz_get))
        .with_state(ServerState::new(core))
}
