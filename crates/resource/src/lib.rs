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
//! `Authorization` header only (`Bearer`, or `DPoP` as below), never from the query string.
//!
//! # DPoP
//!
//! Portcullis binds an access token to a client's key when the client asks for it with a
//! DPoP proof (RFC 9449): the JWT then carries `cnf.jkt`, introspection answers with it
//! and `token_type` `DPoP`. Such a token is never accepted as a bearer token (RFC 9449
//! §7.2). To accept it, give the builder the API's public base URL — a proof names the URL
//! it was made for, and the `Host` header cannot be trusted to rebuild it:
//!
//! ```no_run
//! # async fn run() -> Result<(), portcullis_resource::AuthError> {
//! let validator = portcullis_resource::JwksValidator::builder("https://id.example.com")
//!     .audience("https://id.example.com")
//!     .dpop_base_url("https://api.example.com")
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The extractors then also take `Authorization: DPoP <token>` with one `DPoP: <proof>`
//! header, and check the proof (RFC 9449 §4.3): `typ` `dpop+jwt`, an asymmetric `alg`
//! ([`dpop::PROOF_ALGORITHMS`]), a public `jwk` that verifies the signature (RSA keys of
//! 2048–4096 bits with exponent 65537, as the authorization server takes), `htm` and
//! `htu` naming this request (query and fragment ignored; `htu` normalised, the request
//! path taken exactly as the router saw it, and refused unless in normal form), an `iat`
//! within [`JwksValidatorBuilder::dpop_proof_window`] (default 5 minutes old to 60 s ahead),
//! `ath` the hash of the token, and the key's RFC 7638 thumbprint equal to the token's
//! `cnf.jkt`. Accepted proofs are remembered in memory (per validator, bounded by
//! [`JwksValidatorBuilder::dpop_replay_cache_max_entries`] in all and
//! [`JwksValidatorBuilder::dpop_replay_cache_max_entries_per_key`] per key) until they
//! expire and a [margin](dpop::REPLAY_MARGIN) more, so a proof replayed to this process is
//! refused; with several processes behind a load balancer a proof could still be replayed
//! once to each, which a short proof window limits. No server nonce (`DPoP-Nonce`, RFC
//! 9449 §9) is issued. The thumbprint is in [`VerifiedClaims::dpop_jkt`]. A bad proof is
//! answered `401` with `WWW-Authenticate: DPoP error="invalid_dpop_proof", …, algs="…"`, a
//! bad token sent with the DPoP scheme with `DPoP error="invalid_token"`, a missing scope
//! of a DPoP request with `DPoP error="insufficient_scope"`, and a request without
//! credentials gets both a `Bearer` and a `DPoP` challenge. Without a DPoP base URL
//! everything is as before DPoP support: `Authorization: DPoP` is an unknown scheme (no
//! credentials), and a token with a `cnf` is refused.
//!
//! HTTPS: this crate uses `reqwest` 0.12 without a TLS backend of its own. Enable one in your
//! application (e.g. `reqwest = { version = "0.12", features = ["rustls-tls"] }`; features
//! unify) or pass a configured client with `http_client`.

mod challenge;
pub mod claims;
pub mod clock;
pub mod dpop;
pub mod error;
pub mod extract;
mod http;
pub mod introspection;
pub mod jwks;
mod jwt;
mod log_throttle;
pub mod metadata;

pub use claims::{Actor, VerifiedClaims};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{AuthError, InvalidDpopProof, InvalidToken};
pub use extract::{AuthRejection, DPOP, ScopeRequirement, Scoped, Validator, bearer_token};
pub use introspection::{IntrospectionValidator, IntrospectionValidatorBuilder};
pub use jsonwebtoken::Algorithm;
pub use jwks::{JwksValidator, JwksValidatorBuilder};
pub use metadata::ProtectedResourceMetadata;
