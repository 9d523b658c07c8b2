//! Authorization requests waiting for the person to log in or consent, kept in the
//! browser session under random ids so several tabs can each have one in flight.

use std::collections::HashMap;
use std::sync::Mutex;

use portcullis_core::authorize::AuthorizationRequest;
use portcullis_core::crypto::random_token;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::error::PageError;

const SESSION_KEY: &str = "authz";
/// At most this many pending requests per session; the oldest go first.
pub const MAX_PENDING: usize = 10;
/// A request nobody finished within this long is dropped (seconds).
pub const MAX_AGE: i64 = 60 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: String,
    req: AuthorizationRequest,
}

async fn load(session: &Session, now: i64) -> Result<Vec<Entry>, PageError> {
    let mut all: Vec<Entry> = session.get(SESSION_KEY).await?.unwrap_or_default();
    all.retain(|e| now - e.req.requested_at <= MAX_AGE);
    Ok(all)
}

async fn store(session: &Session, all: &[Entry]) -> Result<(), PageError> {
    if all.is_empty() {
        session.remove_value(SESSION_KEY).await?;
    } else {
        session.insert(SESSION_KEY, all).await?;
    }
    Ok(())
}

/// Keeps `req` under a fresh random id and returns the id.
pub async fn insert(session: &Session, req: &AuthorizationRequest, now: i64) -> Result<String, PageError> {
    let id = random_token()?;
    let mut all = load(session, now).await?;
    all.push(Entry {
        id: id.clone(),
        req: req.clone(),
    });
    let excess = all.len().saturating_sub(MAX_PENDING);
    all.drain(..excess);
    store(session, &all).await?;
    Ok(id)
}

/// The pending request `id`, or `PageError::Expired`.
pub async fn get(session: &Session, id: &str, now: i64) -> Result<AuthorizationRequest, PageError> {
    load(session, now)
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .map(|e| e.req)
        .ok_or(PageError::Expired)
}

/// Replaces the pending request `id` (its interaction progressed).
pub async fn update(session: &Session, id: &str, req: &AuthorizationRequest, now: i64) -> Result<(), PageError> {
    let mut all = load(session, now).await?;
    let entry = all.iter_mut().find(|e| e.id == id).ok_or(PageError::Expired)?;
    if entry.req != *req {
        entry.req = req.clone();
        store(session, &all).await?;
    }
    Ok(())
}

/// Forgets the pending request `id` (answered or refused).
pub async fn remove(session: &Session, id: &str, now: i64) -> Result<(), PageError> {
    let mut all = load(session, now).await?;
    all.retain(|e| e.id != id);
    store(session, &all).await
}

/// Pending requests this node answered lately. Concurrent requests of one session (a
/// double click, a script) each load their own copy of it, so taking the answered request
/// out of the session does not stop another copy answering it again: one authorization
/// request, two codes. This does, on this node; a copy is loaded at most one request
/// timeout before it answers, so ids are kept a little longer than that.
#[derive(Debug, Default)]
pub struct Answered {
    ids: Mutex<HashMap<String, i64>>,
    last_purge: Mutex<i64>,
}

impl Answered {
    /// How long an answered id is remembered (seconds): past `request_timeout`'s default.
    const KEEP: i64 = 120;

    /// Records the pending request `id` as answered at `now`: `false` if it already was.
    pub fn claim(&self, id: &str, now: i64) -> bool {
        let Ok(mut ids) = self.ids.lock() else {
            return false;
        };
        if let Ok(mut last) = self.last_purge.lock()
            && now - *last >= 10
        {
            ids.retain(|_, at| now - *at <= Self::KEEP);
            *last = now;
        }
        ids.insert(id.to_owned(), now).is_none()
    }
}
