//! `portcullis initial-token create|list|revoke`: initial access tokens (RFC 7591 §3),
//! which a client needs to register itself when `registration = "token"`. The value is
//! printed once, at creation.

use clap::Subcommand;
use portcullis_core::Portcullis;
use portcullis_core::initial_tokens::{NewInitialAccessToken, status};
use portcullis_core::model::InitialAccessToken;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum InitialTokenCommand {
    /// Create a token; prints its id and, once, its value.
    Create {
        /// What it is for ("partner onboarding").
        #[arg(long)]
        name: String,
        /// Days until it expires (1 to 365; default 7).
        #[arg(long)]
        days: Option<u32>,
        /// How many registrations it allows (default: no limit until it expires).
        #[arg(long)]
        uses: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens, newest first (never their values).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: registrations with it are refused from now on.
    Revoke { id: Uuid },
}

fn token_json(t: &InitialAccessToken, now: OffsetDateTime) -> serde_json::Value {
    json!({
        "id": t.id,
        "name": t.name,
        "state": status(t, now),
        "uses_left": t.uses_left,
        "created_by": t.created_by,
        "created_at": t.created_at.unix_timestamp(),
        "expires_at": t.expires_at.unix_timestamp(),
        "revoked_at": t.revoked_at.map(|r| r.unix_timestamp()),
    })
}

pub async fn run(core: &Portcullis, command: InitialTokenCommand, actor: &str) -> anyhow::Result<()> {
    let user_facing = |e: portcullis_core::Error| match e {
        portcullis_core::Error::Invalid { field, message } => anyhow::anyhow!("{field}: {message}"),
        portcullis_core::Error::NotFound(what) => anyhow::anyhow!("{what} not found"),
        other => anyhow::anyhow!(other),
    };
    let now = core.now();
    match command {
        InitialTokenCommand::Create { name, days, uses, json } => {
            let input = NewInitialAccessToken { name, days, uses };
            let (token, value) = core
                .create_initial_access_token(&input, actor)
                .await
                .map_err(user_facing)?;
            if json {
                let mut v = token_json(&token, now);
                v["token"] = serde_json::Value::String(value.expose().to_owned());
                out!("{v}");
            } else {
                out!("initial access token {} ({})", token.id, token.name);
                out!("token: {}", value.expose());
                out!("(shown only now; a client sends it to /register as Authorization: Bearer <token>)");
                // Made ahead of switching registration to "token" is fine; unnoticed, it
                // would look like a token nothing accepts.
                use portcullis_core::registration::RegistrationMode;
                match core.settings.registration {
                    RegistrationMode::Token => {}
                    RegistrationMode::Off => out!(
                        "note: registration is off in this configuration: /register answers nothing until it is \"token\""
                    ),
                    RegistrationMode::Open => out!(
                        "note: registration is open in this configuration: /register takes anyone, and checks no initial access token until it is \"token\""
                    ),
                }
            }
        }
        InitialTokenCommand::List { json } => {
            let tokens = core.list_initial_access_tokens().await.map_err(user_facing)?;
            if json {
                let list: Vec<_> = tokens.iter().map(|t| token_json(t, now)).collect();
                out!("{}", serde_json::Value::Array(list));
            } else {
                for t in &tokens {
                    out!(
                        "{}  {:<8}  uses left: {:<8}  expires {}  {}",
                        t.id,
                        status(t, now),
                        t.uses_left.map_or_else(|| "no limit".to_owned(), |n| n.to_string()),
                        t.expires_at.date(),
                        t.name
                    );
                }
            }
        }
        InitialTokenCommand::Revoke { id } => {
            core.revoke_initial_access_token(id, actor).await.map_err(user_facing)?;
            out!("revoked initial access token {id}");
        }
    }
    Ok(())
}
