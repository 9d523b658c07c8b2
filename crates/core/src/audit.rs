//! Audit events, written off the request's hot path: a bounded queue feeds a writer task
//! that stores events in batches, logs each one (target `audit`) and enqueues the
//! webhook deliveries they match; when the queue is full, events are counted, logged
//! (target `audit`, `dropped = true`) and not stored, rather than blocking requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::AuditEvent;
use crate::repo::Store;

const BATCH: usize = 256;

/// How long the writer waits for more events after the first of a batch. A steady
/// trickle of events (a few hundred refreshes a second) otherwise became a transaction of
/// one or two rows each, five statements apiece on PostgreSQL, which cost more database
/// CPU than the refreshes themselves (issue 7). Rows reach the table this much later.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
    /// Events queued and not yet written (or given up on) by the writer.
    pending: Arc<AtomicU64>,
}

/// Builder for one event.
#[derive(Debug, Clone)]
pub struct Event {
    event_type: &'static str,
    actor: Option<String>,
    user_id: Option<Uuid>,
    client_id: Option<String>,
    ip: Option<String>,
    detail: serde_json::Value,
}

/// Every event type the server records (the audit page offers them as filter
/// suggestions; webhooks subscribe to them or to `prefix.*`).
pub const EVENT_TYPES: [&str; 57] = [
    "login.success",
    "login.failure",
    "login.locked_out",
    "logout",
    "logout.backchannel_failed",
    "session.grants_ended",
    "consent.granted",
    "consent.denied",
    "consent.revoked",
    "device.approved",
    "device.denied",
    "token.issued",
    "token.exchanged",
    "token.refreshed",
    "token.revoked",
    "code.replay_detected",
    "refresh.reuse_detected",
    "session.revoked",
    "client.auth_failed",
    "user.password_changed",
    "key.rotated",
    "key.published",
    "key.retired",
    "key.withdrawn",
    "kek.rewrapped",
    "admin.login.success",
    "admin.login.failure",
    "admin.login.locked_out",
    "admin.logout",
    "admin.client.created",
    "admin.client.updated",
    "admin.client.secret_rotated",
    "admin.client.deleted",
    "admin.client.disabled",
    "admin.client.enabled",
    "client.registered",
    "client.registration_updated",
    "client.registration_deleted",
    "client.registration_expired",
    "admin.user.created",
    "admin.user.updated",
    "admin.user.deleted",
    "admin.user.disabled",
    "admin.user.enabled",
    "admin.session.revoked",
    "admin.grant.revoked",
    "admin.api_key.created",
    "admin.api_key.revoked",
    "admin.initial_access_token.created",
    "admin.initial_access_token.revoked",
    "admin.api_key.rejected",
    "admin.admin.created",
    "admin.admin.password_changed",
    "admin.admin.role_changed",
    "admin.admin.deleted",
    "admin.webhook.created",
    "admin.webhook.deleted",
];

impl Event {
    pub fn new(event_type: &'static str) -> Self {
        // Keeps the list above complete: any test that records an unlisted type fails.
        debug_assert!(
            EVENT_TYPES.contains(&event_type),
            "audit event type {event_type} is missing from EVENT_TYPES"
        );
        Self {
            event_type,
            actor: None,
            user_id: None,
            client_id: None,
            ip: None,
            detail: serde_json::json!({}),
        }
    }
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
    pub fn user(mut self, user_id: Uuid) -> Self {
        self.user_id = Some(user_id);
        self
    }
    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }
    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.ip = ip;
        self
    }
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// The event with every NUL (U+0000) in its text replaced by U+FFFD: PostgreSQL's
    /// text and jsonb cannot hold it (a username typed with one would have had the whole
    /// batch of events refused), SQLite's can, and both stores keep the same record.
    fn storable(self) -> Self {
        fn text(s: String) -> String {
            if crate::params::holds_nul(&s) {
                s.replace('\0', "\u{FFFD}")
            } else {
                s
            }
        }
        fn value(v: serde_json::Value) -> serde_json::Value {
            match v {
                serde_json::Value::String(s) => serde_json::Value::String(text(s)),
                serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(value).collect()),
                serde_json::Value::Object(members) => {
                    serde_json::Value::Object(members.into_iter().map(|(k, v)| (text(k), value(v))).collect())
                }
                other => other,
            }
        }
        Self {
            event_type: self.event_type,
            actor: self.actor.map(text),
            user_id: self.user_id,
            client_id: self.client_id.map(text),
            ip: self.ip.map(text),
            detail: value(self.detail),
        }
    }
}

impl AuditSink {
    /// Starts the writer task on the current runtime, with a queue of `capacity` events.
    pub fn spawn(store: Arc<dyn Store>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(store, rx, Arc::clone(&pending)));
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            pending,
        }
    }

    pub fn record(&self, now: OffsetDateTime, event: Event) {
        let event = event.storable();
        let ev = AuditEvent {
            // Time-ordered (UUIDv7): new ids land at the end of the id index instead of on
            // a random page of it, which kept the audit writer's inserts cheap as the table
            // grows (issue 7).
            id: crate::crypto::time_ordered_uuid(now).unwrap_or_else(|_| Uuid::now_v7()),
            at: now,
            event_type: event.event_type.to_owned(),
            actor: event.actor,
            user_id: event.user_id,
            client_id: event.client_id,
            ip: event.ip,
            detail: event.detail,
        };
        // Counted before the send, so the writer can never count it down first.
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(ev) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The log still gets the event, so nothing is lost from the operator's view;
            // only the database row is.
            let ev = e.into_inner();
            tracing::warn!(
                target: "audit",
                dropped = true,
                dropped_total = n,
                event = %ev.event_type,
                actor = ev.actor.as_deref(),
                user_id = ev.user_id.map(|u| u.to_string()),
                client_id = ev.client_id.as_deref(),
                ip = ev.ip.as_deref(),
                detail = %ev.detail,
                "audit queue full; event not stored"
            );
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event queued so far has been written (or given up on) by the
    /// writer, for at most two seconds (for tests and shutdown). Events still unwritten
    /// then are reported in the log, so a shutdown while the database is unreachable does
    /// not lose them without a trace; returns how many.
    pub async fn flush(&self) -> u64 {
        for _ in 0..400 {
            if self.pending.load(Ordering::Acquire) == 0 {
                return 0;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let unwritten = self.pending.load(Ordering::Acquire);
        if unwritten > 0 {
            tracing::error!(
                target: "audit",
                count = unwritten,
                "audit events not stored after waiting 2 s (is the database reachable?); those still queued are lost"
            );
        }
        unwritten
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<AuditEvent>, pending: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(n) if n > 0 => {}
                // Closed, or the lingering time is over.
                _ => break,
            }
        }
        for ev in &batch {
            tracing::info!(
                target: "audit",
                event = %ev.event_type,
                actor = ev.actor.as_deref(),
                user_id = ev.user_id.map(|u| u.to_string()),
                client_id = ev.client_id.as_deref(),
                ip = ev.ip.as_deref(),
                detail = %ev.detail,
                "audit event"
            );
        }
        match retrying("storing audit events", || store.insert_audit_events(&batch)).await {
            Ok(()) => crate::webhooks::enqueue(store.as_ref(), &batch).await,
            // Refused for good: one event the store will not take must not cost the
            // others theirs, so each is tried alone.
            Err(e) if batch.len() > 1 && !matches!(e, crate::repo::StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, count = batch.len(), "a batch of audit events was refused; storing them one by one");
                for ev in &batch {
                    let one = std::slice::from_ref(ev);
                    match store.insert_audit_events(one).await {
                        Ok(()) => crate::webhooks::enqueue(store.as_ref(), one).await,
                        Err(e) => tracing::error!(error = %e, event = %ev.event_type, id = %ev.id,
                            "could not store an audit event"),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, count = batch.len(), "could not store audit events"),
        }
        pending.fetch_sub(batch.len() as u64, Ordering::Release);
        batch.clear();
    }
}

/// How long a write of the audit trail keeps being tried before its rows are given up.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// `op` until it succeeds, waiting 50 ms after the first failure and twice as long after
/// each further one (at most 2 s), for up to [`RETRY_FOR`], as long as the store says it
/// is unavailable (`StoreError::Unavailable`): a connection killed under the writer, a
/// database restart or a failover lose no events, while an error trying again cannot
/// mend fails at once. A conflict on a later attempt means an earlier write was stored
/// although its answer was lost (every row has a fresh id), and counts as done
/// (`T::default()`). Events arriving meanwhile wait in the queue (and are dropped and
/// counted if it fills up, as always).
pub(crate) async fn retrying<T, F, Fut>(what: &str, mut op: F) -> crate::repo::StoreResult<T>
where
    T: Default,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::repo::StoreResult<T>>,
{
    let give_up = tokio::time::Instant::now() + RETRY_FOR;
    let mut wait = std::time::Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(crate::repo::StoreError::Conflict(_)) if attempt > 1 => return Ok(T::default()),
            Err(e @ crate::repo::StoreError::Unavailable(_)) if tokio::time::Instant::now() + wait < give_up => {
                tracing::warn!(error = %e, attempt, "{what} failed; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(2));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
