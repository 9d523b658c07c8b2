//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database
//! answers too, and the node can open its signing keys).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use crate::ServerState;

/// How long readiness waits for the database. A probe (a load balancer's, Kubernetes')
/// needs its answer within its own timeout, often 1-5 s; the pool's acquire timeout (10 s)
/// is sized for requests that should rather wait than fail, and would keep the probe
/// hanging while PostgreSQL is down (sqlx retries a refused connection until then).
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz_get() -> &'static str {
    "ok"
}

pub async fn readyz_get(State(state): State<ServerState>) -> (StatusCode, &'static str) {
    // A node that cannot open the signing keys (one left on an old key-encryption key
    // after `kek rewrap`) signs nothing; the maintenance loop logs why.
    if state.core.keys.ring().unopened.is_some() {
        return (StatusCode::SERVICE_UNAVAILABLE, "signing keys cannot be opened");
    }
    match tokio::time::timeout(READINESS_TIMEOUT, state.core.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = READINESS_TIMEOUT.as_millis(),
                "readiness check: the database did not answer in time"
            );
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}
