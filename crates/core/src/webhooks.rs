//! Event webhooks (issue 6): operators register HTTPS receivers for chosen audit event
//! types; each matching event is delivered as a JSON POST signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"`, retried with exponential backoff, and every attempt is kept
//! as the delivery log.
//!
//! Deliveries are a transactional outbox in the store: the audit writer enqueues them
//! after storing its batch (so events recorded by the CLI or another node are delivered
//! too), and any node's worker claims due attempts atomically. Core has no HTTP: the
//! worker posts through the `WebhookSender` port, which the binary implements.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use portcullis_protocol::Secret;
use time::Duration;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::admin::Actor;
use crate::audit::Event;
use crate::crypto::{b64url, random_bytes};
use crate::error::{Error, Result};
use crate::model::{AuditEvent, DeliveryStatus, Webhook, WebhookDelivery};
use crate::repo::Store;
use crate::service::Portcullis;

/// Header with the unix time (seconds) the delivery was signed at.
pub const TIMESTAMP_HEADER: &str = "Portcullis-Timestamp";
/// Header with `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "Portcullis-Signature";
/// Header with the event type, for routing without parsing the body.
pub const EVENT_HEADER: &str = "Portcullis-Event";
/// Header with the attempt's id; the body's `id` (the event id) is the same across
/// retries, so receivers deduplicate on that.
pub const DELIVERY_HEADER: &str = "Portcullis-Delivery";
/// Attempts claimed per pass of the worker.
const CLAIM: u32 = 32;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::hours(1);

/// Posts one delivery; the binary implements it with an HTTPS client.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` with `headers` to `url` within `timeout`, if `reach` permits its
    /// address (`outbound`); the HTTP status, or why no status was received. Must not
    /// follow redirects.
    async fn post(
        &self,
        url: &str,
        reach: crate::outbound::Reach,
        headers: &[(&'static str, String)],
        body: &str,
        timeout: std::time::Duration,
    ) -> std::result::Result<u16, String>;
}

/// `v1=<hex>`: HMAC-SHA256 with `secret` (its UTF-8 bytes, as shown once at creation)
/// over `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// Whether `event_type` is selected by `pattern`: `*`, `prefix.*`, or an exact type.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.') && event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

fn check_event_types(types: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in types.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let body = t.strip_suffix(".*").unwrap_or(t);
        let ok = t == "*"
            || (!body.is_empty()
                && body
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
                && !body.starts_with('.')
                && !body.ends_with('.'));
        if !ok {
            return Err(Error::invalid(
                "event_types",
                format!("{t:?}: expected an event type (login.failure), a prefix (token.*) or *"),
            ));
        }
        // A typo would otherwise subscribe to nothing, silently.
        if !crate::audit::EVENT_TYPES.iter().any(|e| matches(t, e)) {
            return Err(Error::invalid(
                "event_types",
                format!("{t:?} matches no event type the server records"),
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    if out.is_empty() {
        return Err(Error::invalid("event_types", "choose at least one event type"));
    }
    Ok(out)
}

/// Delivery errors no retry can fix.
const DISABLED: &str = "the webhook was disabled";
const NOT_ALLOWED: &str = "http receivers need insecure_allow_http_webhooks, which is off";

fn payload(ev: &AuditEvent) -> String {
    serde_json::json!({
        "id": ev.id,
        "type": ev.event_type,
        "created_at": ev.at.format(&Rfc3339).unwrap_or_default(),
        "actor": ev.actor,
        "user_id": ev.user_id,
        "client_id": ev.client_id,
        "ip": ev.ip,
        "detail": ev.detail,
    })
    .to_string()
}

/// Creates the first attempt of every (event, enabled webhook) pair that matches. Runs
/// in the audit writer, off the request path; failures are logged, not returned.
pub(crate) async fn enqueue(store: &dyn Store, events: &[AuditEvent]) {
    let webhooks = match crate::audit::retrying("reading webhooks", || store.list_webhooks()).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "could not read webhooks; deliveries of this batch are lost");
            return;
        }
    };
    let mut deliveries = Vec::new();
    for w in webhooks.iter().filter(|w| w.enabled) {
        for ev in events
            .iter()
            .filter(|ev| w.event_types.iter().any(|p| matches(p, &ev.event_type)))
        {
            deliveries.push(WebhookDelivery {
                id: Uuid::new_v4(),
                webhook_id: w.id,
                event_id: ev.id,
                event_type: ev.event_type.clone(),
                attempt: 1,
                status: DeliveryStatus::Pending,
                response_code: None,
                error: None,
                payload: payload(ev),
                next_attempt_at: ev.at,
                created_at: ev.at,
                completed_at: None,
            });
        }
    }
    if deliveries.is_empty() {
        return;
    }
    if let Err(e) = crate::audit::retrying("queueing webhook deliveries", || {
        store.insert_webhook_deliveries(&deliveries)
    })
    .await
    {
        tracing::error!(error = %e, count = deliveries.len(), "could not enqueue webhook deliveries");
    }
}

impl Portcullis {
    /// Registers a receiver; returns it and its signing secret, shown this once.
    pub async fn create_webhook(
        &self,
        url: &str,
        event_types: &[String],
        actor: impl Into<Actor>,
    ) -> Result<(Webhook, Secret)> {
        let actor: Actor = actor.into();
        // As long as a client's URIs may be.
        if url.trim().chars().count() > 2000 {
            return Err(Error::invalid("url", "must be at most 2000 characters"));
        }
        let parsed = url::Url::parse(url.trim()).map_err(|e| Error::invalid("url", format!("{url}: {e}")))?;
        // The URL is listed and written to the audit trail, which auditors read; receivers
        // check a delivery's signature instead.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::invalid(
                "url",
                "must not contain a user name or password: receivers authenticate deliveries by their signature",
            ));
        }
        if !self.receiver_allowed(&parsed) {
            return Err(Error::invalid(
                "url",
                "must be an https URL (http only to loopback with insecure_allow_http_webhooks)",
            ));
        }
        if parsed.fragment().is_some() {
            return Err(Error::invalid("url", "must not have a fragment"));
        }
        let event_types = check_event_types(event_types)?;
        let id = Uuid::new_v4();
        let secret = Secret::new(format!("whsec_{}", b64url(&random_bytes::<32>()?)));
        let webhook = Webhook {
            id,
            url: parsed.to_string(),
            event_types,
            secret_encrypted: self.kek.seal(secret.expose().as_bytes(), id.as_bytes())?,
            enabled: true,
            created_at: self.now(),
        };
        self.store.insert_webhook(&webhook).await?;
        self.audit(
            Event::new("admin.webhook.created").by(&actor).detail(
                serde_json::json!({ "webhook_id": id, "url": webhook.url, "event_types": webhook.event_types }),
            ),
        );
        Ok((webhook, secret))
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        Ok(self.store.list_webhooks().await?)
    }

    pub async fn delete_webhook(&self, id: Uuid, actor: impl Into<Actor>) -> Result<()> {
        let actor: Actor = actor.into();
        self.store
            .delete_webhook(id)
            .await
            .map_err(crate::clients::not_found("webhook"))?;
        self.audit(
            Event::new("admin.webhook.deleted")
                .by(&actor)
                .detail(serde_json::json!({ "webhook_id": id })),
        );
        Ok(())
    }

    /// The delivery log, newest first.
    pub async fn list_webhook_deliveries(&self, webhook_id: Option<Uuid>, limit: u32) -> Result<Vec<WebhookDelivery>> {
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 1000"));
        }
        Ok(self.store.list_webhook_deliveries(webhook_id, limit).await?)
    }

    /// Wait before attempt `attempt + 1`: `retry_base` doubled per earlier attempt.
    fn webhook_backoff(&self, attempt: u32) -> Duration {
        let base = Duration::try_from(self.settings.defense.webhooks.retry_base).unwrap_or(Duration::seconds(10));
        base.checked_mul(1_i32 << attempt.saturating_sub(1).min(20))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }

    /// One pass of the worker: claims due attempts and sends them concurrently; returns
    /// how many were claimed.
    pub async fn deliver_due_webhooks(self: &Arc<Self>, sender: &Arc<dyn WebhookSender>) -> Result<usize> {
        let now = self.now();
        let cfg = &self.settings.defense.webhooks;
        let lease = Duration::try_from(cfg.timeout).unwrap_or(Duration::seconds(10)) * 3 + Duration::seconds(30);
        let claimed = self.store.claim_webhook_deliveries(now, now + lease, CLAIM).await?;
        let n = claimed.len();
        let mut tasks = JoinSet::new();
        for d in claimed {
            let this = Arc::clone(self);
            let sender = Arc::clone(sender);
            tasks.spawn(async move { this.deliver_one(sender.as_ref(), d).await });
        }
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Err(e)) => tracing::error!(error = %e, "could not record a webhook delivery"),
                Err(e) => tracing::error!(error = %e, "webhook delivery task failed"),
                Ok(Ok(())) => {}
            }
        }
        Ok(n)
    }

    /// https, or http to a loopback host while `insecure_allow_http_webhooks` is on.
    fn receiver_allowed(&self, url: &url::Url) -> bool {
        crate::clients::is_displayable(url)
            && (url.scheme() == "https" || self.settings.defense.webhooks.insecure_allow_http)
    }

    async fn deliver_one(&self, sender: &dyn WebhookSender, mut d: WebhookDelivery) -> Result<()> {
        let cfg = &self.settings.defense.webhooks;
        let outcome = match self.store.get_webhook(d.webhook_id).await? {
            // Registered while insecure_allow_http_webhooks was on, which it no longer is.
            Some(w) if w.enabled && !url::Url::parse(&w.url).is_ok_and(|u| self.receiver_allowed(&u)) => {
                Err(NOT_ALLOWED.to_owned())
            }
            Some(w) if w.enabled => {
                let secret = self.kek.open(&w.secret_encrypted, w.id.as_bytes())?;
                let secret = String::from_utf8(secret).map_err(|e| Error::Unexpected(e.to_string()))?;
                let ts = self.now().unix_timestamp();
                let headers = [
                    ("Content-Type", "application/json".to_owned()),
                    (TIMESTAMP_HEADER, ts.to_string()),
                    (SIGNATURE_HEADER, signature(&secret, ts, &d.payload)),
                    (EVENT_HEADER, d.event_type.clone()),
                    (DELIVERY_HEADER, d.id.to_string()),
                ];
                sender
                    .post(&w.url, crate::outbound::Reach::Any, &headers, &d.payload, cfg.timeout)
                    .await
            }
            _ => Err(DISABLED.to_owned()),
        };
        let now = self.now();
        d.completed_at = Some(now);
        let retry = match outcome {
            Ok(code) if (200..300).contains(&code) => {
                d.status = DeliveryStatus::Delivered;
                d.response_code = Some(code);
                None
            }
            other => {
                d.status = DeliveryStatus::Failed;
                match other {
                    Ok(code) => {
                        d.response_code = Some(code);
                        d.error = Some(format!("the receiver answered {code}"));
                    }
                    Err(e) => d.error = Some(e.chars().take(500).collect()),
                }
                let final_error = matches!(d.error.as_deref(), Some(DISABLED | NOT_ALLOWED));
                if d.attempt < cfg.max_attempts && !final_error {
                    Some(WebhookDelivery {
                        id: Uuid::new_v4(),
                        attempt: d.attempt + 1,
                        status: DeliveryStatus::Pending,
                        response_code: None,
                        error: None,
                        next_attempt_at: now + self.webhook_backoff(d.attempt),
                        created_at: now,
                        completed_at: None,
                        ..d.clone()
                    })
                } else {
                    tracing::warn!(webhook_id = %d.webhook_id, event_id = %d.event_id, attempts = d.attempt, error = d.error.as_deref(), "webhook delivery abandoned");
                    None
                }
            }
        };
        self.store.finish_webhook_delivery(&d, retry.as_ref()).await?;
        Ok(())
    }

    /// Runs the delivery worker until the process ends (or the handle is aborted).
    pub fn spawn_webhook_worker(self: &Arc<Self>, sender: Arc<dyn WebhookSender>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                match this.deliver_due_webhooks(&sender).await {
                    // A full claim: more may be due, go again at once.
                    Ok(n) if n as u32 >= CLAIM => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook worker pass failed"),
                }
                tokio::time::sleep(this.settings.defense.webhooks.poll_interval).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("*", "login.failure"));
        assert!(matches("login.*", "login.failure"));
        assert!(!matches("login.*", "loginx.failure"));
        assert!(matches("login.failure", "login.failure"));
        assert!(!matches("login.failure", "login.failures"));
        assert!(check_event_types(&["token.*".into(), "*".into(), "login.failure".into()]).is_ok());
        assert!(check_event_types(&["Token".into()]).is_err());
        // Well-formed, but nothing is ever recorded under these names.
        assert!(check_event_types(&["token.isued".into()]).is_err());
        assert!(check_event_types(&["tokens.*".into()]).is_err());
        assert!(check_event_types(&["admin.admin.*".into(), "admin.login.locked_out".into()]).is_ok());
        assert!(check_event_types(&["token*".into()]).is_err());
        assert!(check_event_types(&[]).is_err());
    }

    #[test]
    fn signature_is_hmac_sha256_hex_over_timestamp_dot_body() {
        // HMAC-SHA256("key", "1.{}") computed independently (openssl dgst -sha256 -hmac key).
        let sig = signature("key", 1, "{}");
        assert_eq!(
            sig,
            "v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(sig, signature("key", 2, "{}"));
        assert_ne!(sig, signature("key", 1, "{ }"));
        assert_ne!(sig, signature("other", 1, "{}"));
    }
}
