//! Authorization requests waiting for the person to log in or consent, one store row
//! each under a random id, so several tabs can each have one in flight: kept in the
//! session's data, two requests of one browser at once each wrote the whole session back
//! and one lost its request. The session holds only a random key whose digest owns the
//! rows (it survives the session id's change at sign-in); a request id is of no use
//! without that session.

use std::collections::HashMap;
use std::sync::Mutex;

use portcullis_core::Portcullis;
use portcullis_core::authorize::{AuthorizationRequest, AuthorizationResponse};
use portcullis_core::crypto::{random_token, sha256};
use portcullis_core::model::{Digest, PendingRequest};
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::error::PageError;

/// Session key of the random key whose digest owns this browser's pending requests.
/// Every session is given one when it is created (`CoreSessionStore::create`), so two
/// requests of a session at once find the same key rather than each making one and the
/// last save keeping only its own.
pub(crate) const OWNER_KEY: &str = "pending";
/// Session key of when a pending request of the session was last kept or moved on:
/// changing it saves the session, which keeps it alive as long as its requests (an
/// anonymous session lasts an hour from its last save, as they do).
const TOUCHED_KEY: &str = "pending_at";
/// At most this many pending requests per session; the oldest go first.
pub const MAX_PENDING: usize = 10;
/// A request nobody finished within this long is dropped (seconds).
pub const MAX_AGE: i64 = 60 * 60;

/// A new owner key (`OWNER_KEY`).
pub(crate) fn new_owner_key() -> Result<String, PageError> {
    Ok(random_token()?)
}

/// The owner digest of this session's pending requests; made on first use if `create`
/// (a session from before owner keys were given at creation).
async fn owner(session: &Session, create: bool) -> Result<Option<Digest>, PageError> {
    let key = match session.get::<String>(OWNER_KEY).await? {
        Some(key) => key,
        None if create => {
            let key = new_owner_key()?;
            session.insert(OWNER_KEY, &key).await?;
            key
        }
        None => return Ok(None),
    };
    Ok(Some(sha256(key.as_bytes())))
}

fn at(unix: i64) -> Result<OffsetDateTime, PageError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|e| PageError::Unexpected(format!("a time out of range: {e}")))
}

/// Keeps `req` under a fresh random id and returns the id.
pub async fn insert(core: &Portcullis, session: &Session, req: &AuthorizationRequest) -> Result<String, PageError> {
    let owner = owner(session, true).await?.ok_or(PageError::Expired)?;
    let id = random_token()?;
    let request =
        serde_json::to_string(req).map_err(|e| PageError::Unexpected(format!("writing a pending request: {e}")))?;
    let pending = PendingRequest {
        id: id.clone(),
        owner,
        request,
        created_at: at(req.requested_at)?,
        expires_at: at(req.requested_at.saturating_add(MAX_AGE))?,
    };
    core.store
        .insert_pending_request(&pending, u32::try_from(MAX_PENDING).unwrap_or(u32::MAX))
        .await
        .map_err(portcullis_core::Error::from)?;
    session.insert(TOUCHED_KEY, core.now().unix_timestamp()).await?;
    Ok(id)
}

/// Whether `id` could be one `insert` made (`random_token`: base64url): anything else names
/// no pending request and is not looked up (a NUL in it would fail on PostgreSQL only).
fn plausible(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The pending request `id`, or `PageError::Expired`.
pub async fn get(core: &Portcullis, session: &Session, id: &str) -> Result<AuthorizationRequest, PageError> {
    if !plausible(id) {
        return Err(PageError::Expired);
    }
    let owner = owner(session, false).await?.ok_or(PageError::Expired)?;
    let found = core
        .store
        .get_pending_request(id, &owner, core.now())
        .await
        .map_err(portcullis_core::Error::from)?
        .ok_or(PageError::Expired)?;
    // A request stored by another version that this one cannot read is started again.
    serde_json::from_str(&found.request).map_err(|_| PageError::Expired)
}

/// Replaces the pending request `id` (its interaction progressed).
pub async fn update(
    core: &Portcullis,
    session: &Session,
    id: &str,
    req: &AuthorizationRequest,
) -> Result<(), PageError> {
    if !plausible(id) {
        return Err(PageError::Expired);
    }
    let owner = owner(session, false).await?.ok_or(PageError::Expired)?;
    let request =
        serde_json::to_string(req).map_err(|e| PageError::Unexpected(format!("writing a pending request: {e}")))?;
    let updated = core
        .store
        .update_pending_request(id, &owner, &request)
        .await
        .map_err(portcullis_core::Error::from)?;
    if !updated {
        return Err(PageError::Expired);
    }
    session.insert(TOUCHED_KEY, core.now().unix_timestamp()).await?;
    Ok(())
}

/// Forgets the pending request `id` (answered or refused).
pub async fn remove(core: &Portcullis, session: &Session, id: &str) -> Result<(), PageError> {
    if !plausible(id) {
        return Ok(());
    }
    if let Some(owner) = owner(session, false).await? {
        core.store
            .delete_pending_request(id, &owner)
            .await
            .map_err(portcullis_core::Error::from)?;
    }
    Ok(())
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
