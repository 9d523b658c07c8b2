//! Authorization requests waiting for the person to log in or consent, kept in the
//! browser session under random ids so several tabs can each have one in flight.

use std::collections::HashMap;
use std::sync::Mutex;

use portcullis_core::authorize::{AuthorizationRequest, AuthorizationResponse};
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

/// Pending requests this node answered lately, with their answers. Concurrent requests
/// of one session (a double click, a script) each load their own copy of it, so taking
/// the answered request out of the session does not stop another copy answering it
/// again: one authorization request, two codes. Here a later copy gets the first answer
/// again (the same code), which is also what the browser shows after a double submit.
/// Kept two minutes: copies are loaded within the same few seconds; one answering later
/// than that (a request held longer by the server) would issue a second code.
/// An answer is given again only to the login that answered it (its `sid`): the request
/// id travels in URLs (history, a proxy's log), and a browser that learned it must not
/// fetch the code with it (RFC 9700 §4.5). An answer made without a login (an error to
/// the client) is never given again.
#[derive(Debug, Default)]
pub struct Answered(Mutex<AnsweredIds>);

#[derive(Debug, Default)]
struct AnsweredIds {
    /// Pending request id → when it was answered, by which login (`sid`), and how.
    ids: HashMap<String, (i64, Option<String>, AuthorizationResponse)>,
    /// When answers older than `KEEP` were last dropped.
    last_purge: i64,
}

impl Answered {
    const KEEP: i64 = 120;

    /// Records `answer`, made by the login `sid` (if any), as the answer to the pending
    /// request `id` at `now`; or returns the answer recorded first by the same login.
    pub fn claim(
        &self,
        id: &str,
        sid: Option<&str>,
        answer: &AuthorizationResponse,
        now: i64,
    ) -> AuthorizationResponse {
        let Ok(mut inner) = self.0.lock() else {
            return answer.clone();
        };
        if now - inner.last_purge >= 10 {
            inner.ids.retain(|_, (at, _, _)| now - *at <= Self::KEEP);
            inner.last_purge = now;
        }
        let (_, by, first) = inner
            .ids
            .entry(id.to_owned())
            .or_insert_with(|| (now, sid.map(str::to_owned), answer.clone()));
        match sid {
            Some(sid) if by.as_deref() == Some(sid) => first.clone(),
            _ => answer.clone(),
        }
    }

    /// The answer the login `sid` gave the pending request `id`, if lately.
    pub fn get(&self, id: &str, sid: &str, now: i64) -> Option<AuthorizationResponse> {
        let inner = self.0.lock().ok()?;
        inner
            .ids
            .get(id)
            .filter(|(at, by, _)| now - *at <= Self::KEEP && by.as_deref() == Some(sid))
            .map(|(_, _, answer)| answer.clone())
    }
}
