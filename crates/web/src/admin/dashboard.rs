//! The dashboard: the counts an operator looks at first, and the latest failed logins.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::admin::Dashboard;

use super::AdminState;
use super::auth::{Chrome, Operator};
use super::error::AdminResult;
use super::view::when;
use crate::page::render;

pub struct FailureRow {
    pub at: String,
    pub username: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    pub counts: Dashboard,
    pub failures: Vec<FailureRow>,
}

/// `GET /admin`.
pub async fn dashboard_get(State(state): State<AdminState>, op: Operator) -> AdminResult {
    let counts = state.core.dashboard().await?;
    let failures = counts
        .recent_failures
        .iter()
        .map(|e| FailureRow {
            at: when(e.at),
            username: e.detail["username"].as_str().unwrap_or("").to_owned(),
            ip: e.ip.clone().unwrap_or_default(),
        })
        .collect();
    let page = DashboardPage {
        chrome: op.chrome("dashboard").await?,
        counts,
        failures,
    };
    Ok(render(StatusCode::OK, &page)?)
}
