//! Defense in depth (issue 6): throttling and lockout, headers and cookies, CORS,
//! trusted proxies, built-in TLS, the audit trail, signed webhooks, and sessions per
//! device — each on SQLite and PostgreSQL.

use std::collections::HashSet;

use portcullis_core::model::{AuditEvent, AuditFilter};
use portcullis_tests::TestApp;
use reqwest::Client;
use url::Url;
use uuid::Uuid;

mod abuse;
mod account;
mod audit_trail;
mod pages;
mod timeouts;
mod tls;
mod webhooks;

/// A sign-in answer as a person's browser sees it.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub html: String,
}

/// Signs in at `/login` (no pending request), from `from` as seen through a trusted
/// proxy (`X-Forwarded-For`), or from the socket when `from` is `None`.
pub async fn sign_in(b: &Client, app: &TestApp, username: &str, password: &str, from: Option<&str>) -> Answer {
    let url = Url::parse(&app.url("/login")).unwrap();
    let mut get = b.get(url.clone());
    if let Some(ip) = from {
        get = get.header("x-forwarded-for", ip);
    }
    let html = get.send().await.unwrap().text().await.unwrap();
    let form = crate::forms::forms(&url, &html).into_iter().next().unwrap();
    let mut fields = form.fields.clone();
    fields.push(("username".into(), username.into()));
    fields.push(("password".into(), password.into()));
    let mut post = b.post(form.action.clone()).form(&fields);
    if let Some(ip) = from {
        post = post.header("x-forwarded-for", ip);
    }
    let resp = post.send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        retry_after: resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        html: resp.text().await.unwrap(),
    }
}

/// Every stored audit event, oldest first, after the queue has drained.
pub async fn all_events(app: &TestApp) -> Vec<AuditEvent> {
    app.core.audit.flush().await;
    let mut events = app
        .core
        .store
        .list_audit_events(&AuditFilter {
            limit: 10_000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    events.reverse();
    events
}

/// Events of `event_type`, waiting up to two seconds for at least `n`.
pub async fn events_of(app: &TestApp, event_type: &str, n: usize) -> Vec<AuditEvent> {
    for _ in 0..40 {
        let found: Vec<_> = all_events(app)
            .await
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} {event_type} events");
}

/// The types of the events stored since the last call, sorted, for exact comparison.
pub struct AuditCursor(HashSet<Uuid>);

impl AuditCursor {
    pub async fn new(app: &TestApp) -> Self {
        Self(all_events(app).await.into_iter().map(|e| e.id).collect())
    }

    pub async fn new_types(&mut self, app: &TestApp) -> Vec<String> {
        let mut out = Vec::new();
        for e in all_events(app).await {
            if self.0.insert(e.id) {
                out.push(e.event_type);
            }
        }
        out.sort();
        out
    }
}
