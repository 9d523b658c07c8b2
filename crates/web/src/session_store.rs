//! Browser sessions (DESIGN §3): a tower-sessions `SessionStore` on core's
//! `SessionRepo`, so sessions live in the same database as everything else, and the
//! session layer with the cookie settings of DESIGN §5.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::Portcullis;
use portcullis_core::authorize::AuthSession;
use portcullis_core::crypto::sha256;
use portcullis_core::model::{BrowserSession, Digest};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::error::{PageError, cause_chain};

/// Session key of the logged-in person (`AuthSession`).
pub const AUTH_KEY: &str = "auth";
/// Session key of where the person signed in from (`SessionClient`).
pub const CLIENT_KEY: &str = "client";

/// Where a session was signed in from, kept so sessions can be listed per user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClient {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A `SessionStore` on core's store. Rows are keyed by the SHA-256 of the cookie value:
/// the raw session id is never stored (DESIGN §2).
#[derive(Clone)]
pub struct CoreSessionStore {
    core: Arc<Portcullis>,
}

impl std::fmt::Debug for CoreSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreSessionStore").finish_non_exhaustive()
    }
}

/// The digest a session row is keyed by.
pub fn id_hash(id: &Id) -> Digest {
    sha256(id.to_string().as_bytes())
}

fn backend(e: impl std::error::Error) -> session_store::Error {
    session_store::Error::Backend(cause_chain(&e))
}

impl CoreSessionStore {
    pub fn new(core: Arc<Portcullis>) -> Self {
        Self { core }
    }

    fn to_row(&self, record: &Record) -> session_store::Result<BrowserSession> {
        let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let auth = record.data.get(AUTH_KEY).and_then(|v| AuthSession::deserialize(v).ok());
        let client = record
            .data
            .get(CLIENT_KEY)
            .and_then(|v| SessionClient::deserialize(v).ok());
        // A signed-in session counts from its sign-in; an anonymous one (a pending
        // authorization request, a CSRF token) from its last save.
        let created_at = auth
            .as_ref()
            .and_then(|a| OffsetDateTime::from_unix_timestamp(a.auth_time).ok())
            .unwrap_or_else(|| self.core.now());
        let (ip, user_agent) = client.map(|c| (c.ip, c.user_agent)).unwrap_or_default();
        let settings = &self.core.settings;
        let expires_at = if record.data.contains_key(crate::admin::ADMIN_KEY) {
            // The admin cookie lives until the browser closes, which leaves the record
            // tower-sessions' two weeks: it lasts until the session would go idle
            // (`admin::auth` saves it at least every tenth of that while in use).
            record
                .expiry_date
                .min(self.core.now() + settings.admin_idle_timeout.min(settings.session_ttl))
        } else if auth.is_some() {
            // However active, it ends `session_max_age` after the person last signed in
            // (`created_at`, NIST SP 800-63B §4.1.3); signing in again starts it afresh.
            record.expiry_date.min(created_at + settings.session_max_age)
        } else {
            // A session nobody signed in to holds a CSRF token and requests that expire
            // within the hour: it lasts no longer, so pages anyone can load without a
            // cookie cannot fill the table for a whole `session_ttl`.
            record
                .expiry_date
                .min(self.core.now() + time::Duration::seconds(crate::pending::MAX_AGE))
        };
        Ok(BrowserSession {
            id_hash: id_hash(&record.id),
            data,
            user_id: auth.as_ref().map(|a| a.user_id),
            sid: auth.map(|a| a.sid),
            user_agent,
            ip,
            created_at,
            expires_at,
        })
    }
}

#[async_trait]
impl SessionStore for CoreSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        if !record.data.contains_key(crate::pending::OWNER_KEY) {
            let key = crate::pending::new_owner_key().map_err(backend)?;
            record.data.insert(crate::pending::OWNER_KEY.to_owned(), key.into());
        }
        // 128 random bits make a collision unlikely, not impossible: draw again.
        for _ in 0..8 {
            let row = self.to_row(record)?;
            match self.core.store.create_session(&row).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                // The account was deleted while it signed in (its row refuses the
                // session's): there is nothing to keep, and the browser's next request
                // finds no session, as after any other ending of it.
                Err(e) => {
                    let deleted = match row.user_id {
                        Some(user) => {
                            matches!(self.core.get_user(user).await, Err(portcullis_core::Error::NotFound(_)))
                        }
                        None => false,
                    };
                    return if deleted { Ok(()) } else { Err(backend(e)) };
                }
            }
            record.id = Id::default();
        }
        Err(session_store::Error::Backend(
            "could not find an unused session id".into(),
        ))
    }

    /// tower-sessions saves only sessions it loaded (new ones and cycled ids go through
    /// `create`). A session deleted since it was loaded (signed out elsewhere, revoked by
    /// a password reset) stays deleted: the request's changes are dropped with it.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let row = self.to_row(record)?;
        self.core.store.save_session(&row).await.map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(row) = self
            .core
            .store
            .load_session(&id_hash(id), self.core.now())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data: HashMap<String, serde_json::Value> =
            serde_json::from_str(&row.data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date: row.expires_at,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.core.store.delete_session(&id_hash(id)).await.map_err(backend)
    }
}

/// The cookie name for `base`: with https the `__Host-` prefix, which makes browsers
/// insist on `Secure`, `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2).
pub fn cookie_name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        format!("{base}_session")
    }
}

/// The session layer for the public pages. `base` names the cookie: the admin surface
/// runs on another port of the same host, and cookies do not tell ports apart, so each
/// surface needs its own name. `SameSite=Lax` keeps the cookie on the top-level GET
/// navigation that brings the person back from a client's site to `/authorize`.
pub fn session_layer(core: Arc<Portcullis>, base: &str, secure: bool) -> SessionManagerLayer<CoreSessionStore> {
    let ttl = core.settings.session_ttl;
    SessionManagerLayer::new(CoreSessionStore::new(core))
        .with_name(cookie_name(base, secure))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(ttl))
}

/// Adds `Secure` to the cookie that ends a `__Host-` or `__Secure-` session cookie.
/// tower-sessions builds that removal from the cookie the browser sent, which carries no
/// attributes, and browsers ignore a `Set-Cookie` of such a name without `Secure` (RFC
/// 6265bis §4.1.3), deletions included: the ended session's id stayed in the browser.
/// Layered outside the session layer.
pub async fn secure_removals(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed: Vec<axum::http::HeaderValue> = headers
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(secure_removal)
                .and_then(|s| axum::http::HeaderValue::from_str(&s).ok())
                .unwrap_or_else(|| v.clone())
        })
        .collect();
    if !fixed.is_empty() {
        headers.remove(axum::http::header::SET_COOKIE);
        for v in fixed {
            headers.append(axum::http::header::SET_COOKIE, v);
        }
    }
    response
}

/// `cookie` with `; Secure` added when it removes (`Max-Age=0`) a cookie whose name
/// needs it and lacks it; `None` when it is fine as it is.
fn secure_removal(cookie: &str) -> Option<String> {
    let name = cookie.split_once('=')?.0.trim();
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    let needs = name.starts_with("__Host-") || name.starts_with("__Secure-");
    let removal = attributes.iter().any(|a| a == "max-age=0");
    (needs && removal && !attributes.iter().any(|a| a == "secure")).then(|| format!("{cookie}; Secure"))
}

/// The session layer for the admin pages, stricter than the public one:
/// - The cookie is sent to `/admin` paths only. Cookies do not tell ports apart (RFC 6265
///   §8.5), so a cookie for `/` went to every other service of the same host, a client's
///   loopback redirect URI or logo included, and an admin session is worth stealing. A
///   path is defence in depth, not a boundary (another service's `/admin/...` still gets
///   it): the README asks for a host name of the admin listener's own.
/// - With https, `__Secure-`: `__Host-` requires `Path=/`. Unlike `__Host-` it does not
///   stop a sibling subdomain planting a cookie of that name for the parent domain; a
///   planted id is replaced at sign-in (`cycle_id`), so that can sign an operator out,
///   not in as someone else.
/// - It lives until the browser closes (no `Max-Age`); the session itself ends after
///   `admin_idle_timeout` idle or `session_ttl` after its sign-in (`admin::auth`).
pub fn admin_session_layer(core: Arc<Portcullis>, base: &str, secure: bool) -> SessionManagerLayer<CoreSessionStore> {
    let name = if secure {
        format!("__Secure-{base}")
    } else {
        format!("{base}_session")
    };
    SessionManagerLayer::new(CoreSessionStore::new(core))
        .with_name(name)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path(crate::admin::ADMIN_PATH)
        .with_secure(secure)
        .with_expiry(Expiry::OnSessionEnd)
}

/// The sign-in this session holds, without reading the account: for a step after
/// `current_auth` has run in the same request (which takes out one that no longer
/// matches), or where whoever the session names is what counts (signing out).
pub async fn stored_auth(session: &Session) -> Result<Option<AuthSession>, PageError> {
    Ok(session.get::<AuthSession>(AUTH_KEY).await?)
}

/// The logged-in person of this session, if any. The account is read again: one
/// disabled, deleted or given a new password since this session signed in (a change that
/// overtook the sign-in, so the store's ending of the account's sessions missed this one)
/// is not signed in here: the sign-in leaves the session, which takes a new id, keeping
/// what an anonymous session holds (pending requests, the CSRF token), so the page being
/// served goes on as for anyone not signed in and the ended cookie value is not reused.
pub async fn current_auth(state: &crate::AppState, session: &Session) -> Result<Option<AuthSession>, PageError> {
    Ok(current_user(state, session).await?.map(|(auth, _)| auth))
}

/// `current_auth` with the account it read, for pages that show it.
pub async fn current_user(
    state: &crate::AppState,
    session: &Session,
) -> Result<Option<(AuthSession, portcullis_core::model::User)>, PageError> {
    let Some(auth) = stored_auth(session).await? else {
        return Ok(None);
    };
    let user = match state.core.get_user(auth.user_id).await {
        Ok(user)
            if !user.disabled
                && (auth.stamp.is_empty()
                    || auth.stamp == portcullis_core::admin::password_stamp(&user.password_hash)) =>
        {
            Some(user)
        }
        Ok(_) | Err(portcullis_core::Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(user) = user else {
        session.remove_value(AUTH_KEY).await?;
        session.remove_value(CLIENT_KEY).await?;
        session.cycle_id().await?;
        return Ok(None);
    };
    Ok(Some((auth, user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_of_prefixed_cookies_are_secure() {
        assert_eq!(
            secure_removal("__Host-portcullis=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT").as_deref(),
            Some("__Host-portcullis=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure")
        );
        assert!(secure_removal("__Secure-portcullis_operator=; Path=/admin; Max-Age=0").is_some());
        // Already secure, not a removal, or a name without a prefix: as it is.
        assert_eq!(secure_removal("__Host-portcullis=; Path=/; Max-Age=0; Secure"), None);
        assert_eq!(secure_removal("__Host-portcullis=abc; Path=/; Secure; HttpOnly"), None);
        assert_eq!(secure_removal("portcullis_session=; Path=/; Max-Age=0"), None);
    }

    #[tokio::test]
    async fn the_layer_rewrites_only_what_needs_it() {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|| async {
                    let mut r = axum::response::Response::new(axum::body::Body::empty());
                    for c in ["__Host-portcullis=; Path=/; Max-Age=0", "other=1; Path=/"] {
                        r.headers_mut()
                            .append(axum::http::header::SET_COOKIE, axum::http::HeaderValue::from_static(c));
                    }
                    r
                }),
            )
            .layer(axum::middleware::from_fn(secure_removals));
        let response = app
            .oneshot(axum::http::Request::new(axum::body::Body::empty()))
            .await
            .unwrap();
        let cookies: Vec<&str> = response
            .headers()
            .get_all(axum::http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            cookies,
            ["__Host-portcullis=; Path=/; Max-Age=0; Secure", "other=1; Path=/"]
        );
    }
}
