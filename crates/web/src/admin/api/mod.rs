//! The admin JSON API under `/admin/api/v1` (issue 4): the UI's operations for clients,
//! users (with their sessions and grants), signing keys and audit events, authenticated
//! by API keys (`Authorization: Bearer …`). `GET /openapi.json` describes it.
//!
//! Every route is registered through [`Routes::add`], which also records it, so a test
//! can hold the OpenAPI description and the router to the same list both ways.

mod auth;
mod clients;
pub mod error;
mod extract;
mod json;
mod system;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, on};

use self::error::ApiError;
use super::AdminState;

/// Where the API is mounted.
pub const PREFIX: &str = "/admin/api/v1";

/// The API's answer to a body too large to read, for a layer in front of it that reads
/// bodies first (the server's own limit), so the caller still gets the API's JSON.
pub fn body_too_large() -> axum::response::Response {
    ApiError::TooLarge {
        limit: extract::MAX_BODY,
    }
    .into_response()
}

/// The OpenAPI 3.1 description, written by hand next to the handlers.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Patch => MethodFilter::PATCH,
            Self::Delete => MethodFilter::DELETE,
        }
    }

    /// The name OpenAPI uses for it (a key of a Path Item Object).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// A router that remembers what it serves.
struct Routes {
    router: Router<AdminState>,
    served: Vec<(Verb, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            served: Vec::new(),
        }
    }

    fn add<H, T>(mut self, verb: Verb, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AdminState>,
        T: 'static,
    {
        self.router = self.router.route(path, on(verb.filter(), handler));
        self.served.push((verb, path));
        self
    }
}

async fn openapi_get() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// A list's `limit` as core takes it (0: the default page size). Absent is the default;
/// `0` is refused like any size out of `1..=max` (core refuses those over `max`).
pub(crate) fn page_size(limit: Option<u32>, max: u32) -> Result<u32, ApiError> {
    match limit {
        Some(0) => Err(ApiError::Invalid {
            field: "limit".into(),
            message: format!("must be between 1 and {max}"),
        }),
        other => Ok(other.unwrap_or(0)),
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Every route of the API, relative to [`PREFIX`].
fn routes() -> Routes {
    use Verb::*;
    Routes::new()
        .add(Get, "/openapi.json", openapi_get)
        .add(Get, "/dashboard", system::dashboard)
        .add(Get, "/clients", clients::clients_list)
        .add(Post, "/clients", clients::clients_create)
        .add(Get, "/clients/{client_id}", clients::client_read)
        .add(Put, "/clients/{client_id}", clients::client_replace)
        .add(Patch, "/clients/{client_id}", clients::client_patch)
        .add(Delete, "/clients/{client_id}", clients::client_delete)
        .add(Post, "/clients/{client_id}/disable", clients::client_disable)
        .add(Post, "/clients/{client_id}/enable", clients::client_enable)
        .add(
            Post,
            "/clients/{client_id}/rotate-secret",
            clients::client_rotate_secret,
        )
        .add(Get, "/users", users::users_list)
        .add(Post, "/users", users::users_create)
        .add(Get, "/users/{user_id}", users::user_read)
        .add(Patch, "/users/{user_id}", users::user_patch)
        .add(Delete, "/users/{user_id}", users::user_delete)
        .add(Post, "/users/{user_id}/disable", users::user_disable)
        .add(Post, "/users/{user_id}/enable", users::user_enable)
        .add(Post, "/users/{user_id}/password", users::user_set_password)
        .add(Get, "/users/{user_id}/sessions", users::user_sessions)
        .add(
            Delete,
            "/users/{user_id}/sessions/{session_id}",
            users::user_session_revoke,
        )
        .add(Get, "/users/{user_id}/grants", users::user_grants)
        .add(Delete, "/users/{user_id}/grants/{grant_id}", users::user_grant_revoke)
        .add(Get, "/keys", system::keys_list)
        .add(Post, "/keys/rotate", system::keys_rotate)
        .add(Post, "/keys/{kid}/withdraw", system::key_withdraw)
        .add(Get, "/initial-access-tokens", system::initial_tokens_list)
        .add(Post, "/initial-access-tokens", system::initial_tokens_create)
        .add(Post, "/initial-access-tokens/{id}/revoke", system::initial_token_revoke)
        .add(Get, "/audit-events", system::audit_list)
}

/// What the router serves, relative to [`PREFIX`]: the same list `router` is built from.
pub fn served_routes() -> Vec<(Verb, &'static str)> {
    routes().served
}

/// The API router with its state; mounted at [`PREFIX`] by `admin_router`.
pub fn router(state: AdminState) -> Router {
    routes()
        .router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The OpenAPI description and the router list the same (method, path) pairs.
    #[test]
    fn openapi_matches_the_routes_exactly() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
        assert_eq!(doc["servers"][0]["url"], PREFIX);
        let mut described = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                    described.insert((method.clone(), path.clone()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = served_routes()
            .into_iter()
            .map(|(v, p)| (v.as_str().to_owned(), p.to_owned()))
            .collect();
        let missing: Vec<_> = served.difference(&described).collect();
        let extra: Vec<_> = described.difference(&served).collect();
        assert!(missing.is_empty(), "served but not in openapi.json: {missing:?}");
        assert!(extra.is_empty(), "in openapi.json but not served: {extra:?}");
        // Every path parameter in a path is declared, and every operation has an id.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
                assert!(op["responses"].is_object(), "{method} {path} has no responses");
            }
            let declared: BTreeSet<String> = item["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| {
                            let p = if let Some(r) = p["$ref"].as_str() {
                                let name = r.trim_start_matches("#/components/parameters/");
                                &doc["components"]["parameters"][name]
                            } else {
                                p
                            };
                            (p["in"] == "path").then(|| p["name"].as_str().unwrap().to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_owned)
                .collect();
            assert_eq!(declared, in_path, "path parameters of {path}");
        }
    }
}
