//! CORS for the endpoints browsers call (token, userinfo, revoke, JWKS, discovery), and
//! only for origins registered on a client (DESIGN §5). The registered origins are read
//! from the store and cached for a short time: a node picks up a new client's origin
//! within `TTL` without a database read per request.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use portcullis_core::Portcullis;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a node trusts its copy of the registered origins.
pub const TTL: Duration = Duration::from_secs(30);

/// The origins of every enabled client, refreshed after `TTL`.
pub struct CorsOrigins {
    core: Arc<Portcullis>,
    cache: RwLock<Option<(Instant, Arc<HashSet<String>>)>>,
    refresh: tokio::sync::Mutex<()>,
}

impl CorsOrigins {
    pub fn new(core: Arc<Portcullis>) -> Self {
        Self {
            core,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<HashSet<String>>> {
        let guard = self.cache.read().ok()?;
        let (at, set) = guard.as_ref()?;
        (at.elapsed() < TTL).then(|| Arc::clone(set))
    }

    /// Whether `origin` is registered on an enabled client. A store failure refuses
    /// (the browser then blocks the response; nothing is exposed).
    pub async fn allows(&self, origin: &str) -> bool {
        if let Some(set) = self.fresh() {
            return set.contains(origin);
        }
        // One refresh at a time; the others wait for it and read its result.
        let _turn = self.refresh.lock().await;
        if let Some(set) = self.fresh() {
            return set.contains(origin);
        }
        match self.core.list_clients(None).await {
            Ok(clients) => {
                let set: HashSet<String> = clients
                    .into_iter()
                    .filter(|c| !c.disabled)
                    .flat_map(|c| c.cors_origins)
                    .collect();
                let allowed = set.contains(origin);
                if let Ok(mut guard) = self.cache.write() {
                    *guard = Some((Instant::now(), Arc::new(set)));
                }
                allowed
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read clients' CORS origins; refusing the origin");
                false
            }
        }
    }
}

/// The CORS layer: preflights answered, `Access-Control-Allow-Origin` only for a
/// registered origin. No credentials: these endpoints take tokens and client
/// credentials in headers or bodies, never cookies. Browser code may read
/// `WWW-Authenticate` (RFC 6750 §3: why userinfo refused a token) and `Retry-After` (how
/// long a 429 asks it to wait), which CORS hides by default. Browser code may send a
/// `DPoP` proof (RFC 9449 §4.1) and read the `DPoP-Nonce` for the next one (§8).
pub fn layer(origins: Arc<CorsOrigins>) -> CorsLayer {
    rules(AllowOrigin::async_predicate(
        move |origin: HeaderValue, _parts: &Parts| {
            let origins = Arc::clone(&origins);
            async move {
                match origin.to_str() {
                    Ok(o) => origins.allows(o).await,
                    Err(_) => false,
                }
            }
        },
    ))
}

/// The layer while clients may register themselves (`registration = "open"`): any origin
/// could be registered by anyone, so a list of registered origins protects nothing, and
/// browser-based clients (an MCP inspector, a SPA) register, sign in and call from their
/// own origin. `Access-Control-Allow-Origin: *`, still without credentials: no endpoint
/// here reads a cookie.
pub fn open_layer() -> CorsLayer {
    rules(AllowOrigin::any())
}

/// `open_layer` for `/register` and `/register/{id}`, which take `PUT` and `DELETE` too.
pub fn registration_layer() -> CorsLayer {
    open_layer().allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
}

fn rules(origin: AllowOrigin) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            HeaderName::from_static(crate::dpop::NONCE_HEADER),
        ])
        .max_age(Duration::from_secs(600))
}
