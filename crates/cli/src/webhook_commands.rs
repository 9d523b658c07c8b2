//! `portcullis webhook create|list|delete|deliveries` (issue 6): event webhooks are
//! managed from the command line; the secret is printed once, at creation.

use clap::Subcommand;
use portcullis_core::Portcullis;
use portcullis_core::model::WebhookDelivery;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an HTTPS receiver; prints its id and, once, its signing secret.
    Create {
        #[arg(long)]
        url: String,
        /// An event type (login.failure), a prefix (token.*) or *; repeat for several.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List webhooks.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a webhook and its delivery log.
    Delete { id: Uuid },
    /// The delivery log, newest first: one line per attempt.
    Deliveries {
        /// Only this webhook's attempts (its id, as `webhook list` prints it).
        #[arg(long, value_name = "WEBHOOK_ID")]
        webhook: Option<Uuid>,
        /// The most recent attempts to show, 1 to 1000.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

fn delivery_json(d: &WebhookDelivery) -> serde_json::Value {
    json!({
        "id": d.id,
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "attempt": d.attempt,
        "status": d.status.as_str(),
        "response_code": d.response_code,
        "error": d.error,
        "created_at": d.created_at.unix_timestamp(),
        "next_attempt_at": d.next_attempt_at.unix_timestamp(),
        "completed_at": d.completed_at.map(|t| t.unix_timestamp()),
    })
}

pub async fn run(core: &Portcullis, command: WebhookCommand, actor: &str) -> anyhow::Result<()> {
    let user_facing = |e: portcullis_core::Error| match e {
        portcullis_core::Error::Invalid { field, message } => anyhow::anyhow!("{field}: {message}"),
        portcullis_core::Error::NotFound(what) => anyhow::anyhow!("{what} not found"),
        other => anyhow::Error::new(other),
    };
    match command {
        WebhookCommand::Create { url, events, json } => {
            let (w, secret) = core.create_webhook(&url, &events, actor).await.map_err(user_facing)?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "id": w.id, "url": w.url, "event_types": w.event_types, "secret": secret.expose(),
                    }))?
                );
            } else {
                out!(
                    "webhook {}\n  url:    {}\n  events: {}",
                    w.id,
                    w.url,
                    w.event_types.join(" ")
                );
                out!(
                    "  secret: {}\nThe secret is shown only once; receivers verify signatures with it.",
                    secret.expose()
                );
            }
        }
        WebhookCommand::List { json } => {
            let list = core.list_webhooks().await.map_err(user_facing)?;
            if json {
                let out: Vec<_> = list
                    .iter()
                    .map(|w| json!({"id": w.id, "url": w.url, "event_types": w.event_types, "enabled": w.enabled, "created_at": w.created_at.unix_timestamp()}))
                    .collect();
                out!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                if list.is_empty() {
                    out!("no webhooks");
                }
                for w in list {
                    out!("{}  {}  {}", w.id, w.url, w.event_types.join(" "));
                }
            }
        }
        WebhookCommand::Delete { id } => {
            core.delete_webhook(id, actor).await.map_err(user_facing)?;
            out!("deleted webhook {id}");
        }
        WebhookCommand::Deliveries { webhook, limit, json } => {
            let list = core
                .list_webhook_deliveries(webhook, limit)
                .await
                .map_err(user_facing)?;
            if json {
                let out: Vec<_> = list.iter().map(delivery_json).collect();
                out!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                if list.is_empty() {
                    out!("no deliveries yet");
                }
                for d in list {
                    out!(
                        "{}  {}  {}  attempt {}  {:<9}  {}  {}",
                        crate::output::when(d.created_at),
                        d.webhook_id,
                        d.event_type,
                        d.attempt,
                        d.status.as_str(),
                        d.response_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                        d.error.as_deref().unwrap_or(""),
                    );
                }
            }
        }
    }
    Ok(())
}
