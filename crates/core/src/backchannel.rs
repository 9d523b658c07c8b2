//! OpenID Connect Back-Channel Logout 1.0: when a person's session here ends (they sign
//! out, sign out a browser on their account page, change their password; an operator
//! ends their sessions, disables or deletes them), each client they signed in to from
//! it that registered a `backchannel_logout_uri` is sent a logout token there, server
//! to server, so that it can end its own session too.
//!
//! The token (§2.4) is a JWT this server signs with the key of the client's ID tokens:
//! typed `logout+jwt`, `iss`, `aud` the client, `iat`, `exp` two minutes later, a `jti`,
//! `sub`, `sid` (the session its ID tokens named: always sent, so a client that
//! registered `backchannel_logout_session_required` has it), and the logout `events`
//! member; never a `nonce`. The clients are those of the person's grants (revoked or
//! expired ones too, while they are stored: the client's session may outlive its
//! tokens), one token per client and session.
//!
//! Delivery (§2.5) is a form POST of `logout_token`, from a queue on the node where the
//! session ended, so a slow client never holds up the sign-out: at most 5 s per try, no
//! redirects followed, tried again after 2, 10 and 30 s while the token is still valid,
//! except after a `400` (§2.8: the client refused the token, which will not change). A
//! delivery that never succeeds is a `logout.backchannel_failed` audit event. The queue
//! is in memory: tokens still waiting when the node stops are not sent. A management
//! command (`portcullis user set-password`, say) runs no worker: it delivers what its
//! action queued before it exits (`deliver_queued_logouts`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_protocol::ClientId;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::audit::Event;
use crate::error::Result;
use crate::model::Client;
use crate::service::{ID_TOKEN_ALG, Portcullis};
use crate::webhooks::WebhookSender;

/// §2.4: the member of `events` that makes a JWT a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// §2.4 explicit typing, so no other JWT this server signs can pass for one.
pub const TYP: &str = "logout+jwt";
/// How long a logout token is valid: long enough for the tries, short enough that one
/// read from a log is soon worthless.
const LIFETIME: i64 = 120;
/// The (client, session) pairs told of one sign-out, at most: a person with more
/// sessions than this is told by the most recent.
const MAX_PER_SIGN_OUT: u32 = 100;
/// Tokens waiting for delivery on this node, at most; more are dropped (and logged).
const QUEUE: usize = 10_000;
/// Deliveries in flight at once.
const CONCURRENCY: usize = 32;
/// The wait for each try.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The waits before the tries after the first.
pub const RETRY_DELAYS: [Duration; 3] = [Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(30)];

#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sid: &'a str,
    events: serde_json::Value,
}

/// A logout token to deliver to one client.
#[derive(Debug, Clone)]
pub struct Notice {
    client_id: ClientId,
    user_id: Uuid,
    url: String,
    token: String,
}

/// The tokens waiting on this node, and the worker's end of the queue until it starts.
pub struct LogoutQueue {
    tx: mpsc::Sender<Notice>,
    rx: Mutex<Option<mpsc::Receiver<Notice>>>,
}

impl Default for LogoutQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Portcullis {
    /// The logout tokens for the end of `user_id`'s browser session `sid`, or of all
    /// their sessions with `None`: one per client signed in to from it that registered a
    /// `backchannel_logout_uri`. Read before the ending (deleting a person deletes their
    /// grants), queued with `send_logout_notices` after it.
    pub async fn logout_notices(&self, user_id: Uuid, sid: Option<&str>) -> Result<Vec<Notice>> {
        let pairs = self.store.list_signed_in(user_id, sid, MAX_PER_SIGN_OUT).await?;
        let mut notices = Vec::new();
        for (client_id, sid) in pairs {
            let Some(client) = self.client_cache.get(self.store.as_ref(), &client_id).await? else {
                continue;
            };
            // A disabled client's sessions were its users' to end; it is told nothing.
            let (false, Some(url)) = (client.disabled, client.backchannel_logout_uri.as_deref()) else {
                continue;
            };
            notices.push(Notice {
                client_id,
                user_id,
                url: url.to_owned(),
                token: self.logout_token(&client, user_id, &sid)?,
            });
        }
        Ok(notices)
    }

    /// Queues `notices` for delivery. A full queue drops them, with a warning.
    pub fn send_logout_notices(&self, notices: Vec<Notice>) {
        for notice in notices {
            if let Err(e) = self.logout_queue.tx.try_send(notice) {
                let notice = match e {
                    mpsc::error::TrySendError::Full(n) | mpsc::error::TrySendError::Closed(n) => n,
                };
                tracing::warn!(
                    client = notice.client_id.as_str(),
                    "back-channel logout queue full: a logout token was not sent"
                );
                self.audit(logout_failed(&notice, "the node's queue of logout tokens was full"));
            }
        }
    }

    /// `logout_notices` then `send_logout_notices`, for an ending that has happened;
    /// a failure to read is logged, never the sign-out's failure.
    pub async fn announce_sign_out(&self, user_id: Uuid, sid: Option<&str>) {
        match self.logout_notices(user_id, sid).await {
            Ok(notices) => self.send_logout_notices(notices),
            Err(e) => tracing::warn!(error = %e, "could not prepare back-channel logout tokens"),
        }
    }

    /// §2.4: the logout token for `client` about `user_id`'s session `sid`.
    fn logout_token(&self, client: &Client, user_id: Uuid, sid: &str) -> Result<String> {
        let now = self.now().unix_timestamp();
        let claims = LogoutClaims {
            iss: &self.settings.issuer,
            sub: user_id.to_string(),
            aud: client.id.as_str(),
            iat: now,
            exp: now + LIFETIME,
            jti: Uuid::new_v4().to_string(),
            sid,
            events: serde_json::json!({ EVENT: {} }),
        };
        let alg = client.id_token_signed_response_alg.unwrap_or(ID_TOKEN_ALG);
        crate::jwt::sign(&self.keys.ring(), alg, TYP, &claims)
    }

    /// Delivers the queued logout tokens until the process ends; the binary starts it
    /// with its HTTP client. Only the first call has a queue to read.
    pub fn spawn_logout_worker(self: &Arc<Self>, sender: Arc<dyn WebhookSender>) -> tokio::task::JoinHandle<()> {
        let rx = self
            .logout_queue
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let Some(mut rx) = rx else { return };
            let slots = Arc::new(Semaphore::new(CONCURRENCY));
            while let Some(notice) = rx.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let core = Arc::clone(&core);
                let sender = Arc::clone(&sender);
                tokio::spawn(async move {
                    core.deliver_logout(sender.as_ref(), &notice).await;
                    drop(slot);
                });
            }
        })
    }

    /// Whether logout tokens wait in this process's queue (none are taken out before the
    /// worker or `deliver_queued_logouts` starts).
    pub fn has_queued_logouts(&self) -> bool {
        self.logout_queue.tx.max_capacity() != self.logout_queue.tx.capacity()
    }

    /// Delivers the tokens queued so far, all at once, and waits for them (their tries
    /// included): for a process that runs no worker, a management command, before it
    /// exits. The number delivered and the number that failed (each an audit event).
    pub async fn deliver_queued_logouts(self: &Arc<Self>, sender: Arc<dyn WebhookSender>) -> (usize, usize) {
        let rx = self
            .logout_queue
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut rx) = rx else { return (0, 0) };
        let mut deliveries = tokio::task::JoinSet::new();
        while let Ok(notice) = rx.try_recv() {
            let core = Arc::clone(self);
            let sender = Arc::clone(&sender);
            deliveries.spawn(async move { core.deliver_logout(sender.as_ref(), &notice).await });
        }
        let delivered = deliveries.join_all().await;
        let ok = delivered.iter().filter(|d| **d).count();
        (ok, delivered.len() - ok)
    }

    /// §2.5: POSTs the token until the client answers 2xx, the tries run out, or it
    /// answers 400. Whether it was delivered.
    async fn deliver_logout(&self, sender: &dyn WebhookSender, notice: &Notice) -> bool {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", &notice.token)
            .finish();
        let headers = [("Content-Type", "application/x-www-form-urlencoded".to_owned())];
        let delays = &self.settings.backchannel_logout_retry_delays;
        let mut why = String::new();
        for wait in std::iter::once(&Duration::ZERO).chain(delays.iter()) {
            tokio::time::sleep(*wait).await;
            match sender.post(&notice.url, &headers, &body, TIMEOUT).await {
                Ok(status) if (200..300).contains(&status) => return true,
                Ok(400) => {
                    why = "the client refused the logout token (400)".into();
                    break;
                }
                Ok(status) => why = format!("the client answered {status}"),
                Err(e) => why = e,
            }
        }
        tracing::warn!(client = notice.client_id.as_str(), reason = %why, "a back-channel logout was not delivered");
        self.audit(logout_failed(notice, &why));
        false
    }
}

fn logout_failed(notice: &Notice, why: &str) -> Event {
    Event::new("logout.backchannel_failed")
        .client(notice.client_id.as_str())
        .user(notice.user_id)
        .detail(serde_json::json!({ "reason": why }))
}
