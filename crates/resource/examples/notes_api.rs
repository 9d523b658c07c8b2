//! A small notes API protected by Portcullis access tokens.
//!
//! `GET /notes` needs `notes:read`, `POST /notes` needs `notes:write`. Configured by:
//! - `PORTCULLIS_ISSUER` (default `http://localhost:9090`)
//! - `NOTES_AUDIENCE` (default: the issuer): the `aud` tokens must carry. Portcullis puts
//!   its `access_token_audience` setting there, by default its issuer, in every access
//!   token it issues; so the audience does not keep tokens for other APIs out, the scopes
//!   `notes:read` / `notes:write` do.
//! - `NOTES_LISTEN` (default `127.0.0.1:8081`)
//! - `NOTES_CLIENT_ID` and `NOTES_CLIENT_SECRET`: if both are set, tokens are checked by
//!   introspection (revocation seen at once) instead of offline with the JWKS.
//! - `NOTES_DPOP_BASE_URL` (e.g. `http://127.0.0.1:8081`): the URL clients call this API
//!   at; when set, DPoP-bound tokens are accepted with `Authorization: DPoP` and a `DPoP`
//!   proof (RFC 9449), and refused otherwise.
//!
//! Run with `cargo run -p portcullis-resource --example notes_api`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_resource::{IntrospectionValidator, JwksValidator, ScopeRequirement, Scoped, Validator};
use serde::{Deserialize, Serialize};

/// `GET /notes` needs this.
struct NotesRead;
impl ScopeRequirement for NotesRead {
    const SCOPES: &'static [&'static str] = &["notes:read"];
}

/// `POST /notes` needs this.
struct NotesWrite;
impl ScopeRequirement for NotesWrite {
    const SCOPES: &'static [&'static str] = &["notes:write"];
}

#[derive(Clone, Serialize)]
struct Note {
    id: usize,
    author: String,
    text: String,
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

#[derive(Clone)]
struct AppState {
    validator: Validator,
    notes: Arc<Mutex<Vec<Note>>>,
}

impl FromRef<AppState> for Validator {
    fn from_ref(state: &AppState) -> Self {
        state.validator.clone()
    }
}

/// Every note of the caller (the token's `sub`).
async fn notes_get(State(state): State<AppState>, caller: Scoped<NotesRead>) -> Json<Vec<Note>> {
    let notes = state.notes.lock().unwrap_or_else(|p| p.into_inner());
    Json(notes.iter().filter(|n| n.author == caller.subject).cloned().collect())
}

async fn notes_post(
    State(state): State<AppState>,
    caller: Scoped<NotesWrite>,
    Json(new): Json<NewNote>,
) -> (StatusCode, Json<Note>) {
    let mut notes = state.notes.lock().unwrap_or_else(|p| p.into_inner());
    let note = Note {
        id: notes.len() + 1,
        author: caller.subject.clone(),
        text: new.text,
    };
    notes.push(note.clone());
    (StatusCode::CREATED, Json(note))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let issuer = env_or("PORTCULLIS_ISSUER", "http://localhost:9090");
    // Portcullis puts its issuer in `aud` unless `access_token_audience` is set.
    let audience = env_or("NOTES_AUDIENCE", &issuer);
    let listen = env_or("NOTES_LISTEN", "127.0.0.1:8081");

    let dpop_base_url = std::env::var("NOTES_DPOP_BASE_URL").ok();

    let validator: Validator = match (std::env::var("NOTES_CLIENT_ID"), std::env::var("NOTES_CLIENT_SECRET")) {
        (Ok(id), Ok(secret)) => {
            let mut builder = IntrospectionValidator::builder(&issuer, id, secret)
                .audience(&audience)
                .cache_max_ttl(Duration::from_secs(5));
            if let Some(url) = &dpop_base_url {
                builder = builder.dpop_base_url(url);
            }
            let validator = builder.build().await?;
            // Wrong credentials stop the API here rather than answer 503 to every request.
            validator.check_credentials().await?;
            validator.into()
        }
        _ => {
            let mut builder = JwksValidator::builder(&issuer).audience(&audience);
            if let Some(url) = &dpop_base_url {
                builder = builder.dpop_base_url(url);
            }
            builder.build().await?.into()
        }
    };
    tracing::info!(%issuer, %audience, dpop = ?validator.dpop_base_url(), mode = match validator {
        Validator::Jwks(_) => "jwks",
        Validator::Introspection(_) => "introspection",
    }, "notes API validating tokens");

    let state = AppState {
        validator,
        notes: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new()
        .route("/notes", get(notes_get).post(notes_post))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
