//! Protect an API with Portcullis access tokens: validate RFC 9068 JWT access tokens offline
//! against the issuer's JWKS ([`JwksValidator`]) or online through RFC 7662 introspection
//! ([`IntrospectionValidator`]), and get the caller's [`VerifiedClaims`] in axum handlers.
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use portcullis_resource::{AuthError, JwksValidator, Scoped, ScopeRequirement, VerifiedClaims};
//!
//! /// `GET /notes` needs this scope.
//! struct NotesRead;
//! impl ScopeRequirement for NotesRead {
//!     const SCOPES: &'static [&'static str] = &["notes:read"];
//! }
//!
//! async fn notes_get(caller: Scoped<NotesRead>) -> Json<Vec<String>> {
//!     Json(vec![format!("a note for {}", caller.subject)])
//! }
//!
//! async fn notes_post(claims: VerifiedClaims) -> Result<&'static str, AuthError> {
//!     claims.require_scope("notes:write")?; // 403 insufficient_scope otherwise
//!     Ok("saved")
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = JwksValidator::builder("http://localhost:9090")
//!     // The `aud` Portcullis puts in every access token: its `access_token_audience`, by
//!     // default the issuer. It does not tell APIs apart; the scopes required above do.
//!     .audience("http://localhost:9090")
//!     .build()
//!     .await?;
//! let app = Router::new()
//!     .route("/notes", get(notes_get).post(notes_post))
//!     .with_state(validator);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The issuer and the JWKS or introspection endpoint must be `https` URLs, except on a
//! loopback host (`127.0.0.0/8`, `::1`, `localhost`, as here) or when the builder opts in
//! with `insecure_allow_http()`. An endpoint named by the discovery document may use that
//! loopback exception only when the issuer itself is plain http on loopback.
//!
//! Requests without a token get `401` with `WWW-Authenticate: Bearer realm="…"`; an invalid
//! token `401` with `error="invalid_token"`; a missing scope `403` with
//! `error="insufficient_scope", scope="…"` (RFC 6750 §3). Tokens are read from the
//! `Authorization: Bearer` header only, never from the query string.
//!
//! HTTPS: this crate uses `reqwest` 0.12 without a TLS backend of its own. Enable one in your
//! application (e.g. `reqwest = { version = "0.12", features = ["rustls-tls"] }`; features
//! unify) or pass a configured client with `http_client`.

pub mod claims;
pub mod clock;
pub mod error;
pub mod extract;
mod http;
pub mod introspection;
pub mod jwks;
mod jwt;

pub use claims::VerifiedClaims;
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{AuthError, InvalidToken};
pub use extract::{AuthRejection, ScopeRequirement, Scoped, Validator, bearer_token};
pub use introspection::{IntrospectionValidator, IntrospectionValidatorBuilder};
pub use jsonwebtoken::Algorithm;
pub use jwks::{JwksValidator, JwksValidatorBuilder};
