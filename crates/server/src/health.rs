//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database
//! answers too).

use axum::extract::State;
use axum::http::StatusCode;

use crate::ServerState;

pub async fn healthz_get() -> &'static str {
    "ok"
}

pub async fn readyz_get(State(state): State<ServerState>) -> (StatusCode, &'static str) {
    match state.core.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}
