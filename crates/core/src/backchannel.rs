//! OpenID Connect Back-Channel Logout 1.0: when a person's session here ends (they sign
//! out, sign out a browser on their account page, sign in as someone else in the same
//! browser, change their password; an operator ends their sessions, disables or deletes
//! them), each client they signed in to from it that registered a
//! `backchannel_logout_uri` is sent a logout token there, server to server, so that it
//! can end its own session too.
//!
//! The token (§2.4) is a JWT this server signs with the key of the client's ID tokens:
//! typed `logout+jwt`, `iss`, `aud` the client, `iat`, `exp` two minutes later, a `jti`,
//! `sub`, the logout `events` member, and never a `nonce`. The end of one browser
//! session names it with `sid` (the session its ID tokens named), and goes to the
//! clients signed in from it; the end of all a person's sessions names the person only
//! (no `sid`: the client ends all its sessions of theirs) and goes once to each client
//! they were signed in to. The clients are those of the person's OpenID grants, revoked
//! or expired ones too while they are stored (the client's session may outlive its
//! tokens).
//!
//! Delivery (§2.5) is a form POST of `logout_token`, from a queue on the node where the
//! session ended, so a slow client never holds up the sign-out: at most 5 s per try, no
//! redirects followed, tried again after 2, 10 and 30 s, except after a `400` (§2.8: the
//! client refused the token, which will not change). Each try signs the token anew, so
//! none is sent expired, and holds one of 32 slots only while it runs. A delivery that
//! never succeeds is a `logout.backchannel_failed` audit event. The queue is in memory:
//! tokens still waiting when the node stops are not sent. A management command
//! (`portcullis user set-password`, say) runs no worker: it delivers what its action
//! queued before it exits (`deliver_queued_logouts`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_protocol::ClientId;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::audit::Event;
use crate::error::Result;
use crate::model::Client;
use crate::outbound::Reach;
use crate::service::{ID_TOKEN_ALG, Portcullis};
use crate::webhooks::WebhookSender;
use portcullis_protocol::SigningAlg;

/// §2.4: the member of `events` that makes a JWT a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// §2.4 explicit typing, so no other JWT this server signs can pass for one.
pub const TYP: &str = "logout+jwt";
/// How long a logout token is valid: long enough for the tries, short enough that one
/// read from a log is soon worthless.
const LIFETIME: i64 = 120;
/// The clients told of the end of one session, at most.
const MAX_PER_SESSION: u32 = 1_000;
/// The (client, session) pairs read to find the clients told of the end of all a
/// person's sessions, at most (the most recent first).
const MAX_PER_PERSON: u32 = 10_000;
/// Sessions one client is told of at the end of all a person's sessions, at most, when
/// it asks for each by name (`backchannel_logout_session_required`): the most recent.
const MAX_SESSIONS_PER_CLIENT: usize = 50;
/// Tokens waiting for delivery on this node, at most; more are dropped (and logged).
const QUEUE: usize = 10_000;
/// Tries running at once.
const CONCURRENCY: usize = 32;
/// Deliveries started and not finished at once (most wait for their next try); past
/// this, tokens wait in the queue.
const IN_FLIGHT: usize = 1_000;
/// The same for clients that registered themselves, apart: one that never answers (or
/// many of them, registered by one person to sign in to) holds up only such clients,
/// never an operator's. Past this, their tokens are not sent (and audited).
const SELF_REGISTERED_CONCURRENCY: usize = 8;
const SELF_REGISTERED_IN_FLIGHT: usize = 200;
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
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    events: serde_json::Value,
}

/// A logout token to deliver to one client, signed when it is sent (each try anew, so
/// no try sends an expired one).
#[derive(Debug, Clone)]
pub struct Notice {
    client_id: ClientId,
    user_id: Uuid,
    /// The person as the client sees them (OIDC Core §8).
    sub: String,
    /// The session ended; `None` when all the person's sessions did (the token then
    /// names the person only, §2.4, and the client ends all its sessions of theirs).
    sid: Option<String>,
    alg: SigningAlg,
    url: String,
    /// Where `url` may lead: public addresses only if the client registered itself.
    reach: Reach,
    jti: String,
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
    /// their sessions with `None`: for a session, one per client signed in from it; for
    /// all, one per client they were ever signed in to (while its grants are stored),
    /// naming the person only. Only clients that registered a `backchannel_logout_uri`
    /// and are not disabled. Read before the ending (deleting a person deletes their
    /// grants), queued with `send_logout_notices` after it. A client that cannot be
    /// read is left out (and logged), never the others; if the grants cannot be read,
    /// there are none (logged too): an ending is never failed by its notices.
    pub async fn logout_notices(&self, user_id: Uuid, sid: Option<&str>) -> Vec<Notice> {
        let limit = if sid.is_some() { MAX_PER_SESSION } else { MAX_PER_PERSON };
        let mut notices: Vec<Notice> = Vec::new();
        for (client, session) in self.signed_in_clients(user_id, sid, limit, "back-channel").await {
            let client_id = client.id.clone();
            let Some(url) = client.backchannel_logout_uri.as_deref() else {
                continue;
            };
            // The person and the session as the client knows them (OIDC Core §8).
            let seen_as = self.subject(&client, user_id).and_then(|sub| {
                let sid = session.as_deref().map(|s| self.session_id(&client, s)).transpose()?;
                Ok((sub, sid))
            });
            let (sub, session) = match seen_as {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(client = client_id.as_str(), error = %e, "back-channel logout: no subject");
                    continue;
                }
            };
            notices.push(Notice {
                client_id,
                user_id,
                sub,
                sid: session,
                alg: client.id_token_signed_response_alg.unwrap_or(ID_TOKEN_ALG),
                url: url.to_owned(),
                reach: Reach::of(&client),
                jti: Uuid::new_v4().to_string(),
            });
        }
        notices
    }

    /// The clients signed in from `user_id`'s browser session `sid`, or from any of their
    /// sessions with `None` (each with its session then), at most `limit` pairs, each pair
    /// once: what the logout channels tell (`what` names the channel in the logs). A
    /// disabled client is left out (its sessions were its users' to end), as is one that
    /// cannot be read (logged); if the grants cannot be read there are none (logged too):
    /// an ending is never failed by what it tells.
    pub(crate) async fn signed_in_clients(
        &self,
        user_id: Uuid,
        sid: Option<&str>,
        limit: u32,
        what: &str,
    ) -> Vec<(Arc<Client>, Option<String>)> {
        let pairs = match self.store.list_signed_in(user_id, sid, limit).await {
            Ok(pairs) => pairs,
            Err(e) => {
                tracing::warn!(error = %e, "{what} logout: could not list the clients signed in");
                return Vec::new();
            }
        };
        let mut seen: std::collections::HashSet<(ClientId, Option<String>)> = std::collections::HashSet::new();
        let mut per_client: std::collections::HashMap<ClientId, usize> = std::collections::HashMap::new();
        let mut clients = Vec::new();
        for (client_id, session) in pairs {
            let client = match self.client_cache.get(self.store.as_ref(), &client_id).await {
                Ok(Some(c)) if !c.disabled => c,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(client = client_id.as_str(), error = %e, "{what} logout: the client could not be read");
                    continue;
                }
            };
            // All the person's sessions: one for the client, unless it needs each named
            // (Back-Channel Logout §2.2 `backchannel_logout_session_required`).
            let session = (sid.is_some() || client.backchannel_logout_session_required).then_some(session);
            if !seen.insert((client_id.clone(), session.clone())) {
                continue;
            }
            // One client's sessions, the most recent first, up to a bound: a client that
            // registered itself cannot fill the queue with one person's old sessions.
            let told = per_client.entry(client_id).or_default();
            if *told >= MAX_SESSIONS_PER_CLIENT {
                continue;
            }
            *told += 1;
            clients.push((client, session));
        }
        clients
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

    /// `logout_notices` then `send_logout_notices`, for an ending that has happened.
    pub async fn announce_sign_out(&self, user_id: Uuid, sid: Option<&str>) {
        self.send_logout_notices(self.logout_notices(user_id, sid).await);
    }

    /// §2.4: the logout token of `notice`, signed now, off the async runtime.
    async fn logout_token(&self, notice: &Notice) -> Result<String> {
        let now = self.now().unix_timestamp();
        let claims = serde_json::to_value(LogoutClaims {
            iss: &self.settings.issuer,
            sub: notice.sub.clone(),
            aud: notice.client_id.as_str(),
            iat: now,
            exp: now + LIFETIME,
            jti: &notice.jti,
            sid: notice.sid.as_deref(),
            events: serde_json::json!({ EVENT: {} }),
        })
        .map_err(|e| crate::error::Error::Unexpected(format!("logout token: {e}")))?;
        let ring = self.keys.ring();
        let alg = notice.alg;
        self.signer
            .run(move || crate::jwt::sign(&ring, alg, TYP, &claims))
            .await?
    }

    /// Delivers the queued logout tokens until the process ends; the binary starts it
    /// with its HTTP client. Only the first call has a queue to read.
    pub fn spawn_logout_worker(self: &Arc<Self>, sender: Arc<dyn WebhookSender>) -> tokio::task::JoinHandle<()> {
        let rx = self.take_logout_queue();
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let Some(mut rx) = rx else { return };
            let slots = Slots::new();
            // Deliveries started and not finished (waiting for a try, or trying): taken
            // from the queue only while fewer than this, so the queue's bound holds.
            let started = Arc::new(Semaphore::new(IN_FLIGHT));
            let started_self_registered = Arc::new(Semaphore::new(SELF_REGISTERED_IN_FLIGHT));
            while let Some(notice) = rx.recv().await {
                let permit = match notice.reach {
                    Reach::Any => match Arc::clone(&started).acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                    // Never waited for: the tokens behind it may be for operators' clients.
                    Reach::Public => match Arc::clone(&started_self_registered).try_acquire_owned() {
                        Ok(permit) => permit,
                        Err(_) => {
                            let why = "too many deliveries to clients that registered themselves are under way";
                            tracing::warn!(
                                client = notice.client_id.as_str(),
                                reason = why,
                                "a back-channel logout was not delivered"
                            );
                            core.audit(logout_failed(&notice, why));
                            continue;
                        }
                    },
                };
                let delivery = core.delivery(&sender, notice, &slots);
                tokio::spawn(async move {
                    delivery.await;
                    drop(permit);
                });
            }
        })
    }

    /// The worker's end of the queue, for the first caller only.
    fn take_logout_queue(&self) -> Option<mpsc::Receiver<Notice>> {
        self.logout_queue
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// `deliver_logout` of `notice`, as a task of its own.
    fn delivery(
        self: &Arc<Self>,
        sender: &Arc<dyn WebhookSender>,
        notice: Notice,
        slots: &Slots,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        let slots = Arc::clone(match notice.reach {
            Reach::Any => &slots.operators,
            Reach::Public => &slots.self_registered,
        });
        let (core, sender) = (Arc::clone(self), Arc::clone(sender));
        async move { core.deliver_logout(sender.as_ref(), &notice, &slots).await }
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
        let Some(mut rx) = self.take_logout_queue() else {
            return (0, 0);
        };
        let slots = Slots::new();
        let mut deliveries = tokio::task::JoinSet::new();
        while let Ok(notice) = rx.try_recv() {
            deliveries.spawn(self.delivery(&sender, notice, &slots));
        }
        let delivered = deliveries.join_all().await;
        let ok = delivered.iter().filter(|d| **d).count();
        (ok, delivered.len() - ok)
    }

    /// §2.5: POSTs the token until the client answers 2xx, the tries run out, or it
    /// answers 400. Each try holds one of `slots` while it runs, never while it waits
    /// for the next, so a client that does not answer does not hold up the others.
    /// Whether it was delivered.
    async fn deliver_logout(&self, sender: &dyn WebhookSender, notice: &Notice, slots: &Arc<Semaphore>) -> bool {
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded".to_owned()),
            (
                "User-Agent",
                concat!("Portcullis/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
        ];
        let delays = &self.settings.backchannel_logout_retry_delays;
        let mut why = String::new();
        for wait in std::iter::once(&Duration::ZERO).chain(delays.iter()) {
            tokio::time::sleep(*wait).await;
            let _slot = Arc::clone(slots).acquire_owned().await;
            let token = match self.logout_token(notice).await {
                Ok(t) => t,
                Err(e) => {
                    why = format!("the logout token could not be signed: {e}");
                    break;
                }
            };
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("logout_token", &token)
                .finish();
            match sender.post(&notice.url, notice.reach, &headers, &body, TIMEOUT).await {
                Ok(status) if (200..300).contains(&status) => return true,
                Ok(400) => {
                    why = "the client refused the logout token (400)".into();
                    break;
                }
                Ok(status) => why = format!("the client answered {status}"),
                // Its address is not one this server may call: no later try would be.
                Err(e) if crate::outbound::is_refusal(&e) => {
                    why = e;
                    break;
                }
                Err(e) => why = e,
            }
        }
        tracing::warn!(client = notice.client_id.as_str(), reason = %why, "a back-channel logout was not delivered");
        self.audit(logout_failed(notice, &why));
        false
    }
}

/// The tries that may run at once: clients that registered themselves have their own.
struct Slots {
    operators: Arc<Semaphore>,
    self_registered: Arc<Semaphore>,
}

impl Slots {
    fn new() -> Self {
        Self {
            operators: Arc::new(Semaphore::new(CONCURRENCY)),
            self_registered: Arc::new(Semaphore::new(SELF_REGISTERED_CONCURRENCY)),
        }
    }
}

fn logout_failed(notice: &Notice, why: &str) -> Event {
    Event::new("logout.backchannel_failed")
        .client(notice.client_id.as_str())
        .user(notice.user_id)
        .detail(serde_json::json!({ "reason": why }))
}
