//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that tells a client
//! which authorization server issues tokens for this API, and the `resource_metadata`
//! parameter of the challenges that point to it (§5.1). An MCP client, for one, starts
//! from a `401` of the API: it reads the document named there, finds the authorization
//! server, registers itself and asks for a token with `resource` set to the API.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use portcullis_resource::{JwksValidator, ProtectedResourceMetadata, VerifiedClaims};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", "https://id.example.com")
//!     .scopes(["mcp:tools"]);
//! let validator = JwksValidator::builder("https://id.example.com")
//!     // Portcullis issues tokens for the API asked for with `resource` (RFC 8707).
//!     .audience("https://mcp.example.com/mcp")
//!     .resource_metadata(metadata.url()?)
//!     .build()
//!     .await?;
//! let app = Router::new()
//!     .route("/mcp", get(|claims: VerifiedClaims| async move { claims.subject }))
//!     .with_state(validator)
//!     .merge(metadata.router::<()>()?);
//! # Ok(()) }
//! ```

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::Url;
use serde::Serialize;

use crate::error::AuthError;

/// The well-known path prefix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata of one protected resource (RFC 9728 §2). Members left empty are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the API's URL, as clients send it in `resource`.
    pub resource: String,
    /// The issuers of the authorization servers whose tokens the API takes.
    pub authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens are sent: in the `Authorization` header only (never the body or query).
    pub bearer_methods_supported: Vec<String>,
    /// RFC 9449: the proof algorithms taken, when the validator takes DPoP.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

impl ProtectedResourceMetadata {
    /// The metadata of the API at `resource` (an https URL without query or fragment),
    /// whose tokens come from the authorization server `issuer`.
    pub fn new(resource: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: vec![issuer.into()],
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".to_owned()],
            dpop_signing_alg_values_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
        }
    }

    /// The scopes the API's requests need, listed for clients to ask for.
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Lists the DPoP proof algorithms the validators of this crate take (for an API whose
    /// validator has a DPoP base URL).
    #[must_use]
    pub fn dpop(mut self) -> Self {
        self.dpop_signing_alg_values_supported = crate::dpop::PROOF_ALGORITHMS.split(' ').map(str::to_owned).collect();
        self
    }

    /// A name for people.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Where developers read about the API.
    #[must_use]
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    fn parsed(&self) -> Result<Url, AuthError> {
        // §2: https (http on loopback, as for the issuer), no fragment; a query is
        // discouraged and would not survive the well-known path of §3.1.
        crate::http::require_https(&self.resource, "the resource", false)?;
        let url = Url::parse(&self.resource)
            .map_err(|_| AuthError::Config(format!("resource {:?} is not a URL", self.resource)))?;
        // A path segment axum would read as a parameter (`:x`, `*x`, `{x}`) cannot be
        // routed as it is.
        let routable = !url
            .path()
            .split('/')
            .any(|seg| seg.starts_with([':', '*']) || seg.contains(['{', '}']));
        if url.fragment().is_some() || url.query().is_some() || url.host_str().is_none() || !routable {
            return Err(AuthError::Config(format!(
                "resource {:?} must be a URL without query or fragment, and without path segments like :x or *x",
                self.resource
            )));
        }
        Ok(url)
    }

    /// The path the document is served at (§3.1): the well-known prefix, then the
    /// resource's path unless that is `/`.
    pub fn path(&self) -> Result<String, AuthError> {
        let url = self.parsed()?;
        Ok(match url.path() {
            "" | "/" => WELL_KNOWN.to_owned(),
            path => format!("{WELL_KNOWN}{path}"),
        })
    }

    /// The document's URL, for the validator's `resource_metadata` (§5.1).
    pub fn url(&self) -> Result<String, AuthError> {
        let url = self.parsed()?;
        Ok(format!("{}{}", url.origin().ascii_serialization(), self.path()?))
    }

    /// A router serving the document at [`path`](Self::path) with `GET`, for any state;
    /// an error if the resource is not an https URL (http on loopback).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Result<Router<S>, AuthError> {
        let path = self.path()?;
        let body = serde_json::to_string(self).map_err(|e| AuthError::Config(e.to_string()))?;
        Ok(Router::new().route(
            &path,
            get(move || {
                let body = body.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
                            // Public, and read by browser-based clients (MCP inspectors).
                            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
                        ],
                        body,
                    )
                        .into_response()
                }
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[test]
    fn the_well_known_url_inserts_the_path() {
        let m = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", "https://id.example.com");
        assert_eq!(
            m.url().unwrap(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let root = ProtectedResourceMetadata::new("https://api.example.com", "https://id.example.com");
        assert_eq!(root.path().unwrap(), WELL_KNOWN);
        assert_eq!(
            root.url().unwrap(),
            "https://api.example.com/.well-known/oauth-protected-resource"
        );
        for bad in [
            "http://api.example.com/x",
            "https://api.example.com/x?y=1",
            "https://api.example.com/x#f",
            "https://api.example.com/:x",
            "https://api.example.com/a/*rest",
            "api",
        ] {
            assert!(
                ProtectedResourceMetadata::new(bad, "https://id.example.com")
                    .url()
                    .is_err(),
                "{bad}"
            );
        }
        assert!(
            ProtectedResourceMetadata::new("http://127.0.0.1:8081/mcp", "http://127.0.0.1:9090")
                .url()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_document_is_served_with_its_members() {
        let m = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", "https://id.example.com")
            .scopes(["mcp:tools"])
            .dpop()
            .name("Tools");
        let r = m
            .router::<()>()
            .unwrap()
            .oneshot(
                Request::get("/.well-known/oauth-protected-resource/mcp")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(
            doc["authorization_servers"],
            serde_json::json!(["https://id.example.com"])
        );
        assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp:tools"]));
        assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));
        assert!(doc["dpop_signing_alg_values_supported"].as_array().unwrap().len() > 1);
        assert_eq!(doc["resource_name"], "Tools");
        assert!(doc.get("resource_documentation").is_none());
    }
}
