//! Portcullis's browser-facing pages: the authorization flow (login, consent), logout,
//! and the pieces they share (sessions on the core store, CSRF, security headers).

pub mod account;
pub mod admin;
pub mod assets;
pub mod authorize;
pub mod client_ip;
pub mod consent;
pub mod csrf;
pub mod device;
pub mod error;
pub mod headers;
pub mod login;
pub mod logout;
pub mod page;
pub mod pending;
pub mod session_store;
pub mod user_agent;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use portcullis_core::Portcullis;

pub use admin::admin_router;
pub use client_ip::ClientIp;
pub use csrf::{CsrfForm, CsrfToken};
pub use error::PageError;
pub use session_store::CoreSessionStore;

/// How the public pages are served.
#[derive(Debug, Clone, Copy)]
pub struct WebConfig {
    /// The issuer is https: cookies get `Secure` and a prefix (`__Host-` for the public
    /// pages, `__Secure-` for the admin pages, whose cookie is `Path=/admin`), and HSTS
    /// is sent.
    pub secure_cookies: bool,
}

/// What every handler of this crate gets through `State`.
#[derive(Debug, Clone)]
pub struct AppState {
    pub core: Arc<Portcullis>,
    pub cfg: WebConfig,
    /// Pending requests answered lately (`pending::Answered`).
    pub answered: Arc<pending::Answered>,
}

/// Name of the public surface's session cookie (DESIGN §5: `__Host-` with https).
const PUBLIC_COOKIE: &str = "portcullis";

/// The routes of the public pages, without layers or state.
fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/login", get(login::login_get).post(login::login_post))
        .route("/consent", get(consent::consent_get).post(consent::consent_post))
        .route("/device", get(device::device_get).post(device::device_post))
        .route("/device/decision", post(device::device_decision_post))
        .route("/logout", get(logout::logout_get).post(logout::logout_post))
        .route("/logout/confirm", post(logout::logout_confirm_post))
        .route("/static/{file}", get(assets::asset_get))
        .route("/account", get(account::account_get))
        .route("/account/password", post(account::account_password_post))
        .route("/account/sessions/revoke", post(account::account_session_revoke_post))
        .route(
            "/account/applications/revoke",
            post(account::account_application_revoke_post),
        )
        // A page for people, not the empty answer that browsers replace with their own.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> error::PageError {
    error::PageError::NotFound
}

/// A page's address with a method it does not take (`GET /account/password` after a
/// failed change, say): a page, with the `Allow` header axum adds.
pub(crate) async fn method_not_allowed() -> error::PageError {
    error::PageError::MethodNotAllowed
}

/// A request without a live session (no cookie, or one for a session that ended) whose
/// page starts one (a CSRF token, a pending request) makes a row kept for up to an hour:
/// counted against the address (DESIGN §5, `rate_limit_sessions`), so pages anyone can
/// load cannot fill the table. Past the limit the session is dropped unsaved and the
/// answer is a 429 page. Requests that keep nothing (a cross-site POST sent on as a GET,
/// a 404, static files) are not counted. The session is loaded here; the handler reuses
/// it.
async fn new_session_limit(
    State(core): State<Arc<Portcullis>>,
    session: tower_sessions::Session,
    client_ip::ClientIp(ip): client_ip::ClientIp,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if request.uri().path().starts_with("/static/") {
        return next.run(request).await;
    }
    // Loads the record: a session id the store does not know is dropped here.
    if let Err(e) = session.get::<serde_json::Value>(session_store::AUTH_KEY).await {
        return error::PageError::from(e).into_response();
    }
    let new = session.id().is_none();
    let response = next.run(request).await;
    // The session layer creates the row after this returns, for a new session with data.
    if new
        && session.is_modified()
        && !session.is_empty().await
        && let Err(e) = core
            .throttle
            .check(portcullis_core::throttle::Bucket::SessionIp, ip.as_deref())
    {
        if let Err(e) = session.flush().await {
            return error::PageError::from(e).into_response();
        }
        return error::PageError::from(e).into_response();
    }
    response
}

/// The fully built public router: routes, session layer and security headers, with its
/// state applied. The binary merges it with the protocol router and serves it with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn public_router(core: Arc<Portcullis>, cfg: WebConfig) -> Router {
    let sessions = session_store::session_layer(Arc::clone(&core), PUBLIC_COOKIE, cfg.secure_cookies);
    let trusted = core.settings.defense.trusted_proxies.clone();
    let router = routes()
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&core),
            new_session_limit,
        ))
        .with_state(AppState {
            core,
            cfg,
            answered: Arc::default(),
        })
        .layer(sessions)
        .layer(axum::middleware::from_fn(session_store::secure_removals))
        .layer(axum::Extension(trusted));
    headers::security_headers(router, cfg.secure_cookies)
}
