//! The admin surface (issue 4), served on the admin listener: server-rendered pages for
//! operators (clients, users, signing keys, audit log, API keys, dashboard) and the admin
//! JSON API under `/admin/api/v1`.
//!
//! Pages use their own session cookie (`portcullis_operator`): cookies do not tell ports
//! apart, so the public surface's cookie would otherwise be sent here too. Every form POST
//! carries the CSRF token; every handler checks the role on the server (`Operator` to
//! read, `Writer` to change).

pub mod api;
mod api_keys;
mod audit;
mod auth;
mod clients;
mod dashboard;
mod error;
mod forms;
mod initial_tokens;
mod keys;
mod users;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_core::Portcullis;

pub(crate) use auth::ADMIN_KEY;
pub use error::AdminError;

use crate::error::PageError;
use crate::{WebConfig, headers, session_store};

/// What every admin handler gets through `State`.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub core: Arc<Portcullis>,
    pub cfg: WebConfig,
}

/// Base name of the admin surface's session cookie (`portcullis_operator_session`, or
/// `__Secure-portcullis_operator` with https).
pub const ADMIN_COOKIE: &str = "portcullis_operator";
/// Names of the admin cookie before it was limited to `ADMIN_PATH` (`Path=/`, with a
/// `Max-Age`): browsers still holding one are told to drop it, so it stops travelling to
/// every port of the host. Its session is no longer accepted (`auth::Operator`).
const OLD_ADMIN_COOKIES: [(&str, bool); 2] = [("portcullis_admin_session", false), ("__Host-portcullis_admin", true)];
/// Where the admin pages live, and the only path their session cookie is sent to.
pub const ADMIN_PATH: &str = "/admin";

const ADMIN_CSS: &str = include_str!("../../../../static/admin.css");

/// `GET /static/{file}` on the admin listener: the shared stylesheet and the admin one.
async fn admin_asset_get(Path(file): Path<String>) -> Result<Response, PageError> {
    if file == "admin.css" {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            ADMIN_CSS,
        )
            .into_response());
    }
    crate::assets::asset_get(Path(file)).await
}

async fn not_found() -> PageError {
    PageError::NotFound
}

/// The admin pages, without layers or state.
fn pages() -> Router<AdminState> {
    Router::new()
        .route("/", get(auth::root_get))
        .route("/admin", get(dashboard::dashboard_get))
        .route("/admin/login", get(auth::login_get).post(auth::login_post))
        .route("/admin/logout", post(auth::logout_post))
        .route("/admin/clients", get(clients::clients_get).post(clients::clients_post))
        .route("/admin/clients/new", get(clients::client_new_get))
        .route(
            "/admin/clients/{id}",
            get(clients::client_get).post(clients::client_post),
        )
        .route("/admin/clients/{id}/edit", get(clients::client_edit_get))
        .route("/admin/clients/{id}/disable", post(clients::client_disable_post))
        .route("/admin/clients/{id}/enable", post(clients::client_enable_post))
        .route("/admin/clients/{id}/rotate-secret", post(clients::client_rotate_post))
        .route(
            "/admin/clients/{id}/delete",
            get(clients::client_delete_get).post(clients::client_delete_post),
        )
        .route("/admin/users", get(users::users_get).post(users::users_post))
        .route("/admin/users/new", get(users::user_new_get))
        .route("/admin/users/{id}", get(users::user_get))
        .route("/admin/users/{id}/disable", post(users::user_disable_post))
        .route("/admin/users/{id}/enable", post(users::user_enable_post))
        .route("/admin/users/{id}/password", post(users::user_password_post))
        .route("/admin/users/{id}/profile", post(users::user_profile_post))
        .route(
            "/admin/users/{id}/delete",
            get(users::user_delete_get).post(users::user_delete_post),
        )
        .route(
            "/admin/users/{id}/sessions/{session}/revoke",
            post(users::session_revoke_post),
        )
        .route(
            "/admin/users/{id}/grants/{grant}/revoke",
            post(users::grant_revoke_post),
        )
        .route("/admin/keys", get(keys::keys_get))
        .route("/admin/keys/rotate", post(keys::keys_rotate_post))
        .route("/admin/keys/{kid}/withdraw", post(keys::key_withdraw_post))
        .route("/admin/audit", get(audit::audit_get))
        .route(
            "/admin/api-keys",
            get(api_keys::api_keys_get).post(api_keys::api_keys_post),
        )
        .route("/admin/api-keys/{id}/revoke", post(api_keys::api_key_revoke_post))
        .route(
            "/admin/initial-tokens",
            get(initial_tokens::initial_tokens_get).post(initial_tokens::initial_tokens_post),
        )
        .route(
            "/admin/initial-tokens/{id}/revoke",
            post(initial_tokens::initial_token_revoke_post),
        )
        .route("/static/{file}", get(admin_asset_get))
        .fallback(not_found)
        .method_not_allowed_fallback(crate::method_not_allowed)
}

/// The fully built admin surface: pages (with their own session cookie) and the JSON
/// API, with security headers. The binary merges it with the health endpoints and serves
/// it on `admin_addr` with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn admin_router(core: Arc<Portcullis>, cfg: WebConfig) -> Router {
    let sessions = session_store::admin_session_layer(Arc::clone(&core), ADMIN_COOKIE, cfg.secure_cookies);
    // Client addresses for audit events and the sign-in limit, as on the public surface.
    let trusted = core.settings.defense.trusted_proxies.clone();
    let state = AdminState { core, cfg };
    let hosts = Arc::new(state.core.settings.defense.admin_hosts.clone());
    let pages = pages()
        .with_state(state.clone())
        .layer(sessions)
        .layer(axum::middleware::from_fn(session_store::secure_removals));
    let router = Router::new()
        .nest(api::PREFIX, api::router(state))
        // The API's root with a trailing slash is not inside the nest: its JSON 404 all
        // the same, not the pages' HTML one.
        .route(&format!("{}/", api::PREFIX), axum::routing::any(api::not_found))
        .merge(pages)
        .layer(axum::Extension(trusted))
        .layer(axum::middleware::from_fn(move |request, next| {
            known_host(Arc::clone(&hosts), request, next)
        }))
        .layer(axum::middleware::from_fn(drop_old_cookies));
    headers::security_headers(router, cfg.secure_cookies)
}

/// Tells a browser that sent an admin cookie of the old kind (`OLD_ADMIN_COOKIES`) to
/// forget it.
async fn drop_old_cookies(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let sent: Vec<(&str, bool)> = OLD_ADMIN_COOKIES
        .into_iter()
        .filter(|(name, _)| {
            request
                .headers()
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .any(|c| c.trim_start().split_once('=').is_some_and(|(n, _)| n == *name))
        })
        .collect();
    let mut response = next.run(request).await;
    for (name, secure) in sent {
        let secure = if secure { "; Secure" } else { "" };
        let expired = format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}");
        if let Ok(value) = axum::http::HeaderValue::from_str(&expired) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Refuses a request whose `Host` the admin listener does not answer to
/// (`admin_host_allowed`): against DNS rebinding, where a web page points its own name
/// at the listener's (often loopback) address and drives the admin surface from an
/// operator's browser, guessing passwords and API keys and using up the sign-in limit.
/// A request with no `Host` (HTTP/1.0) cannot come from a browser and goes on.
async fn known_host(
    hosts: Arc<Vec<String>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or_default())
        .or_else(|| request.uri().authority().map(axum::http::uri::Authority::as_str));
    match host {
        Some(h) if !portcullis_core::defense::admin_host_allowed(h, &hosts) => {
            let message = "this host name is not one the admin surface answers to (admin_hosts)";
            if request.uri().path().starts_with(api::PREFIX) {
                api::error::ApiError::BadRequest(message.into()).into_response()
            } else {
                PageError::BadRequest(message.into()).into_response()
            }
        }
        _ => next.run(request).await,
    }
}
