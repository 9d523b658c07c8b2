//! The commands: `serve`, `migrate`, `keys`, `client`, `user`, `admin`, `webhook`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use portcullis_core::Error;
use portcullis_core::clients::ClientInput;
use portcullis_core::model::{AdminRole, Client, ClientKind};
use portcullis_core::users::UserInput;
use portcullis_protocol::{ClientId, Secret, SigningAlg};
use serde_json::json;

use crate::app;
use crate::config::{KekNeed, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An OAuth 2.0 / OpenID Connect authorization server"
)]
pub struct Cli {
    /// Configuration file (default: portcullis.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (public and admin listeners).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The key-encryption key (KEK) that encrypts signing keys, webhook secrets and the
    /// pairwise subject key.
    #[command(subcommand)]
    Kek(KekCommand),
    /// Client applications.
    #[command(subcommand)]
    Client(ClientCommand),
    /// User accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Operator accounts for the admin surface.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Event webhooks: signed deliveries of audit events to HTTPS receivers.
    #[command(subcommand)]
    Webhook(crate::webhook_commands::WebhookCommand),
    /// Initial access tokens: with registration = "token", what a client needs to
    /// register itself at /register (RFC 7591 §3).
    #[command(subcommand)]
    InitialToken(crate::initial_token_commands::InitialTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Encrypt every signing key, webhook secret and server secret (the pairwise subject
    /// key) again with the current kek, after
    /// replacing it: set the new key as kek and the old one in previous_keks on every
    /// node, run this once, then remove previous_keks.
    Rewrap,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate one algorithm's keys: its next key starts signing, the current one retires
    /// (still published while its tokens live), a new next key is published. Refused
    /// while the next key is younger than five minutes and a resync (clients may still
    /// cache a JWKS without it), unless --force.
    Rotate {
        /// Whose keys: RS256, ES256 or EdDSA; an algorithm in use (access tokens use
        /// `signing_alg`, ID tokens RS256). Default: `signing_alg`.
        #[arg(long)]
        alg: Option<String>,
        /// Rotate even if the next key was published too recently (when the active key
        /// must stop signing at once): resource servers may refuse the new key's tokens for
        /// a few minutes. The retired key stays published: this revokes nothing.
        #[arg(long)]
        force: bool,
    },
    /// Withdraw a retired key from the JWKS at once (for a key that leaked): the tokens it
    /// signed stop validating here at once and at resource servers when their cached JWKS
    /// expires. Rotate a leaked active key out first with `keys rotate --force`.
    Withdraw {
        /// The key's id (`keys list`); base64url, so it may start with `-`.
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
    },
    /// Publish an algorithm's keys before `signing_alg` changes to it: creates its active
    /// and next keys, listed in the JWKS at once; they sign only on nodes whose
    /// `signing_alg` names it. Restart the nodes with it five minutes and a resync later
    /// (305 s by default), when resource servers' cached key sets hold them.
    Publish {
        #[arg(long)]
        alg: String,
    },
    /// Retire the keys of an algorithm no longer in use (after `signing_alg` changed and
    /// every node runs the new settings); they stay published while their tokens live.
    Retire {
        #[arg(long)]
        alg: String,
    },
    /// List signing keys and their state.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    #[arg(long)]
    pub name: String,
    /// confidential or public.
    #[arg(long, default_value = "confidential")]
    pub kind: String,
    /// A redirect URI; repeat for several.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// A post-logout redirect URI; repeat for several.
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token, client_credentials,
    /// urn:ietf:params:oauth:grant-type:device_code (RFC 8628) or
    /// urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693); repeat for several.
    #[arg(long = "grant-type", default_values_t = vec!["authorization_code".to_owned(), "refresh_token".to_owned()])]
    pub grant_types: Vec<String>,
    /// Space-separated scopes the client may request.
    #[arg(long, default_value = "openid profile email")]
    pub scope: String,
    /// Skip the consent page for this client.
    #[arg(long)]
    pub first_party: bool,
    /// Let this confidential client leave PKCE out of its authorization requests (it is
    /// required by default, RFC 9700 §2.1.1; public clients always need it).
    #[arg(long)]
    pub no_require_pkce: bool,
    /// An origin allowed to call the token endpoint from a browser; repeat for several.
    #[arg(long = "cors-origin")]
    pub cors_origins: Vec<String>,
    /// How this client's ID tokens are signed (OIDC `id_token_signed_response_alg`):
    /// RS256, the default, or the server's `signing_alg`.
    #[arg(long = "id-token-alg")]
    pub id_token_alg: Option<String>,
    /// A file holding the client's public keys, a JWK Set: a confidential client then
    /// authenticates with `private_key_jwt` (RFC 7523) and gets no secret.
    #[arg(long = "jwks-file")]
    pub jwks_file: Option<std::path::PathBuf>,
    /// Instead of --jwks-file: the https URL where the client publishes its public keys
    /// (OIDC `jwks_uri`; http only on a loopback host), read when needed and again when
    /// an assertion does not verify with the keys known. The client then authenticates with
    /// `private_key_jwt` and gets no secret.
    #[arg(long = "jwks-uri", conflicts_with = "jwks_file")]
    pub jwks_uri: Option<String>,
    /// Refuse this client's token requests that carry no DPoP proof (RFC 9449 §5.2
    /// `dpop_bound_access_tokens`): every access token it gets is bound to its key.
    #[arg(long)]
    pub require_dpop: bool,
    /// An API (an https URI; http only on a loopback host) the client may ask for access
    /// tokens to with `resource` (RFC 8707); repeat for several.
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    /// Take this client's authorization requests only through `/par` (RFC 9126 §6
    /// `require_pushed_authorization_requests`).
    #[arg(long)]
    pub require_par: bool,
    /// Take this client's authorization requests only as request objects it signs
    /// (RFC 9101 §10.5 `require_signed_request_object`); needs its keys (--jwks-file or
    /// --jwks-uri).
    #[arg(long)]
    pub require_signed_request_object: bool,
    /// The https URL (http only on a loopback host) where the client is sent a logout
    /// token when someone it signed in signs out (OpenID Connect Back-Channel Logout
    /// `backchannel_logout_uri`).
    #[arg(long = "backchannel-logout-uri")]
    pub backchannel_logout_uri: Option<String>,
    /// The client's page that a sign-out here loads in a hidden iframe, with `iss` and
    /// `sid` (OpenID Connect Front-Channel Logout `frontchannel_logout_uri`); on the
    /// origin of one of its redirect URIs.
    #[arg(long = "frontchannel-logout-uri")]
    pub frontchannel_logout_uri: Option<String>,
    /// Answer the client's UserInfo requests with a JWT signed with this algorithm
    /// (`userinfo_signed_response_alg`: RS256 or the server's signing_alg) instead of
    /// plain JSON.
    #[arg(long = "userinfo-alg")]
    pub userinfo_alg: Option<String>,
    /// Sign the JWTs that answer the client at /introspect when it asks for them (RFC
    /// 9701, `introspection_signed_response_alg`) with this algorithm: RS256 (the
    /// default) or the server's signing_alg.
    #[arg(long = "introspection-alg")]
    pub introspection_alg: Option<String>,
    /// Give the client pairwise subject identifiers (OpenID Connect Core §8.1): it sees
    /// each person under an identifier of its sector's own.
    #[arg(long)]
    pub pairwise: bool,
    /// With --pairwise: the sector, a host name shared by the clients that are to see
    /// people alike; by default the host of the redirect URIs.
    #[arg(long = "sector-identifier", requires = "pairwise")]
    pub sector_identifier: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and, once, its secret.
    Create(Box<ClientCreate>),
    /// List clients.
    List {
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        /// Client ids are base64url and may start with `-`.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret (the old one stops working); printed once.
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a client and revoke everything issued to it.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (or a prompt).
    Create {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        email_verified: bool,
        /// The display name (OIDC `name`).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        family_name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (read from standard input or a prompt); ends their sessions and grants.
    SetPassword { username: String },
    /// Disable a user; ends their sessions and grants.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
    /// Delete a user: their grants end, their access tokens are refused until they
    /// expire, and their sessions and consents are removed. Cannot be undone.
    Delete { username: String },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an operator account; the password is read from standard input (or a prompt).
    Create {
        username: String,
        /// admin (everything) or auditor (read-only).
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// List operator accounts and their roles.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set an operator's password (read from standard input or a prompt); their admin
    /// sessions end.
    SetPassword { username: String },
    /// Change an operator's role; the last account with the admin role keeps it.
    SetRole {
        username: String,
        /// admin or auditor.
        #[arg(long)]
        role: String,
    },
    /// Delete an operator account; its sessions end. The last admin stays.
    Delete { username: String },
}

const ACTOR: &str = "cli";

/// Reads a password from standard input: one line, or a hidden prompt on a terminal.
fn read_password(prompt: &str) -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password(format!("{prompt}: "))?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("password: the two entries differ");
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("password: cannot read standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        bail!("password: none given on standard input");
    }
    Ok(Secret::new(password))
}

fn client_json(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.id.as_str(),
        "name": c.name,
        "kind": c.kind.as_str(),
        "redirect_uris": c.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "post_logout_redirect_uris": c.post_logout_redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": c.scopes.as_string(),
        "first_party": c.first_party,
        "require_pkce": c.require_pkce,
        "cors_origins": c.cors_origins,
        "id_token_signed_response_alg": c.id_token_signed_response_alg.map_or("RS256", |a| a.as_str()),
        "token_endpoint_auth_method": c.token_endpoint_auth_method(),
        "jwks": c.jwks_json(),
        "jwks_uri": c.jwks_uri,
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
        "resources": c.resources,
        "require_pushed_authorization_requests": c.require_pushed_authorization_requests,
        "require_signed_request_object": c.require_signed_request_object,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "frontchannel_logout_uri": c.frontchannel_logout_uri,
        "userinfo_signed_response_alg": c.userinfo_signed_response_alg.map(|a| a.as_str()),
        "introspection_signed_response_alg": c.introspection_signed_response_alg.map_or("RS256", |a| a.as_str()),
        "subject_type": if c.pairwise_sector.is_some() { "pairwise" } else { "public" },
        "sector_identifier": c.pairwise_sector,
        "disabled": c.disabled,
        "self_registered": c.self_registered,
        "default_max_age": c.default_max_age,
        "created_at": c.created_at.unix_timestamp(),
    })
}

fn print_client(c: &Client) {
    out!("client_id:     {}", c.id);
    out!("name:          {}", c.name);
    out!("kind:          {}", c.kind.as_str());
    out!("auth method:   {}", c.token_endpoint_auth_method());
    if c.self_registered {
        out!("registered by: the client itself, at /register (RFC 7591)");
    }
    if let Some(uri) = &c.jwks_uri {
        out!("jwks_uri:      {uri}");
    }
    out!(
        "redirect_uris: {}",
        c.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" ")
    );
    if !c.post_logout_redirect_uris.is_empty() {
        out!(
            "post_logout_redirect_uris: {}",
            c.post_logout_redirect_uris
                .iter()
                .map(|u| u.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if !c.cors_origins.is_empty() {
        out!("cors_origins:  {}", c.cors_origins.join(" "));
    }
    if !c.resources.is_empty() {
        out!("resources:     {}", c.resources.join(" "));
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        out!("backchannel_logout_uri: {uri}");
    }
    if let Some(uri) = &c.frontchannel_logout_uri {
        out!("frontchannel_logout_uri: {uri}");
    }
    if let Some(alg) = c.userinfo_signed_response_alg {
        out!("userinfo_signed_response_alg: {alg}");
    }
    if let Some(alg) = c.introspection_signed_response_alg {
        out!("introspection_signed_response_alg: {alg}");
    }
    if let Some(sector) = &c.pairwise_sector {
        out!("subject_type:  pairwise (sector {sector})");
    }
    out!(
        "grant_types:   {}",
        c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(" ")
    );
    out!("scope:         {}", c.scopes);
    out!("first_party:   {}", c.first_party);
    if let Some(age) = c.default_max_age {
        out!("default_max_age: {age} s (a sign-in older than this is repeated)");
    }
    if c.dpop_bound_access_tokens {
        out!("requires DPoP: true");
    }
    out!("disabled:      {}", c.disabled);
}

fn client_id(raw: &str) -> anyhow::Result<ClientId> {
    ClientId::parse(raw).map_err(|e| anyhow::anyhow!("client_id: {e}"))
}

/// Maps a use-case error to one clear line.
fn user_facing(e: Error) -> anyhow::Error {
    match e {
        Error::Invalid {
            field: "force",
            message,
        } => anyhow::anyhow!("--force {message}"),
        Error::Invalid { field, message } => anyhow::anyhow!("{field}: {message}"),
        Error::NotFound(what) => anyhow::anyhow!("{what} not found"),
        Error::Conflict(what) => anyhow::anyhow!("{what} already exists"),
        other => anyhow::Error::new(other),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Migrating touches the schema only: it needs no key-encryption key.
    let kek_need = match cli.command {
        Command::Migrate => KekNeed::NotNeeded,
        _ => KekNeed::Required,
    };
    let mut settings = Settings::load_needing(cli.config.as_deref(), kek_need)?;
    if !matches!(cli.command, Command::Serve) {
        // Management commands print their result; logs only for problems.
        settings.log_level = "warn".into();
    }
    crate::logging::init(&settings);
    match cli.command {
        Command::Serve => app::serve(settings).await,
        Command::Migrate => {
            let (_, migrated) = app::open_and_migrate(&settings).await?;
            out!("{}", migrated.describe());
            Ok(())
        }
        command => {
            let core = if reads_only(&command) {
                app::start_core_read_only(&settings).await?
            } else {
                app::start_core(&settings).await?
            };
            let result = run_admin_command(&core, command).await;
            // An action that ended someone's sessions queued logout tokens for the
            // clients they signed in to (OIDC Back-Channel Logout): no server of this
            // process sends them, so they go now.
            if result.is_ok() {
                tell_signed_out_clients(&core).await?;
            }
            core.audit.flush().await;
            result
        }
    }
}

/// Delivers the logout tokens the command queued, saying so if there were any.
async fn tell_signed_out_clients(core: &std::sync::Arc<portcullis_core::Portcullis>) -> anyhow::Result<()> {
    if !core.has_queued_logouts() {
        return Ok(());
    }
    let sender = std::sync::Arc::new(crate::webhook_sender::HttpsSender::new(core.settings.outbound.clone())?);
    out!("telling the applications they were signed in to (back-channel logout)…");
    let (told, failed) = core.deliver_queued_logouts(sender).await;
    out!("logout tokens delivered: {told}, not delivered: {failed}");
    if failed > 0 {
        out!("(the reasons are in the audit log: logout.backchannel_failed)");
    }
    Ok(())
}

/// Whether `command` only reads: it starts without generating the signing keys a fresh
/// database lacks, so listing never writes. Anything not named here may write.
fn reads_only(command: &Command) -> bool {
    use crate::webhook_commands::WebhookCommand;
    matches!(
        command,
        Command::Keys(KeysCommand::List { .. })
            | Command::Client(ClientCommand::List { .. } | ClientCommand::Show { .. })
            | Command::User(UserCommand::List { .. })
            | Command::Admin(AdminCommand::List { .. })
            | Command::Webhook(WebhookCommand::List { .. } | WebhookCommand::Deliveries { .. })
            | Command::InitialToken(crate::initial_token_commands::InitialTokenCommand::List { .. })
    )
}

async fn run_admin_command(core: &portcullis_core::Portcullis, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Keys(KeysCommand::Rotate { alg, force }) => {
            let alg = alg
                .map(|a| SigningAlg::parse(&a).map_err(|e| anyhow::anyhow!("--alg: {e}")))
                .transpose()?;
            let kid = core.rotate_signing_keys(alg, force, ACTOR).await.map_err(user_facing)?;
            let alg = alg.unwrap_or(core.settings.signing_alg);
            out!("rotated the {alg} keys: the next key now signs; new next key {kid} is published");
        }
        Command::Kek(KekCommand::Rewrap) => {
            let done = core.rewrap_sealed(ACTOR).await.map_err(user_facing)?;
            out!(
                "encrypted again with the current kek: {} signing keys, {} webhook secrets, {} server secrets; \
                 everything now opens with it alone, so previous_keks can be removed from every node; a node \
                 still configured with the old kek alone opens nothing now (its /readyz answers 503)",
                done.keys,
                done.webhooks,
                done.server_secrets
            );
        }
        Command::Keys(KeysCommand::Withdraw { kid }) => {
            core.withdraw_signing_key(&kid, ACTOR).await.map_err(user_facing)?;
            out!("withdrew {kid}: no longer published; the tokens it signed are refused");
        }
        Command::Keys(KeysCommand::Publish { alg }) => {
            let alg = SigningAlg::parse(&alg).map_err(|e| anyhow::anyhow!("--alg: {e}"))?;
            let publish_window = core.settings.key_publication_window().whole_seconds();
            if core.publish_signing_keys(alg, ACTOR).await.map_err(user_facing)? {
                out!(
                    "published the {alg} keys: they sign once nodes run with signing_alg = \"{alg}\"; restart them with it in \
                     {publish_window} s or later, when resource servers' cached key sets hold them"
                );
            } else {
                out!("the {alg} keys are published already");
            }
        }
        Command::Keys(KeysCommand::Retire { alg }) => {
            let alg = SigningAlg::parse(&alg).map_err(|e| anyhow::anyhow!("--alg: {e}"))?;
            core.retire_signing_keys(alg, ACTOR).await.map_err(user_facing)?;
            out!("retired the {alg} keys: published until the tokens they signed have expired");
        }
        Command::Keys(KeysCommand::List { json }) => {
            let keys = core.store.list_keys().await?;
            if json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(), "created_at": k.created_at.unix_timestamp(), "publish_until": k.publish_until.map(|t| t.unix_timestamp())}))
                    .collect();
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let now = core.now();
                if keys.is_empty() {
                    out!("no signing keys yet (the server makes them at its first start)");
                }
                for k in keys {
                    // A retired key is published until `publish_until`; one withdrawn (or
                    // whose time has passed) is no longer in the JWKS.
                    let published = match k.publish_until {
                        Some(until) if until <= now => " not published".to_owned(),
                        Some(until) => format!(" published until {}", crate::output::when(until)),
                        None => String::new(),
                    };
                    out!("{:<8} {:<6} {}{published}", k.state.as_str(), k.alg.as_str(), k.kid);
                }
            }
        }
        Command::Client(ClientCommand::Create(c)) => {
            let c = *c;
            let kind =
                ClientKind::parse(&c.kind).ok_or_else(|| anyhow::anyhow!("--kind: must be confidential or public"))?;
            if c.no_require_pkce && kind == ClientKind::Public {
                anyhow::bail!("--no-require-pkce: a public client always needs PKCE");
            }
            let jwks = c
                .jwks_file
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("--jwks-file: cannot read {}", path.display()))
                })
                .transpose()?;
            let input = ClientInput {
                name: c.name,
                kind: Some(kind),
                jwks,
                jwks_uri: c.jwks_uri,
                redirect_uris: c.redirect_uris,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
                grant_types: c.grant_types,
                scopes: c.scope,
                first_party: c.first_party,
                require_pkce: c.no_require_pkce.then_some(false),
                cors_origins: c.cors_origins,
                id_token_signed_response_alg: c.id_token_alg,
                dpop_bound_access_tokens: c.require_dpop,
                resources: c.resources,
                require_pushed_authorization_requests: c.require_par,
                require_signed_request_object: c.require_signed_request_object,
                backchannel_logout_uri: c.backchannel_logout_uri,
                frontchannel_logout_uri: c.frontchannel_logout_uri,
                userinfo_signed_response_alg: c.userinfo_alg,
                introspection_signed_response_alg: c.introspection_alg,
                subject_type: c.pairwise.then(|| "pairwise".to_owned()),
                sector_identifier: c.sector_identifier,
                ..Default::default()
            };
            let (client, secret) = core.create_client(&input, ACTOR).await.map_err(user_facing)?;
            if c.json {
                let mut v = client_json(&client);
                v["client_secret"] = secret
                    .as_ref()
                    .map(|s| json!(s.expose()))
                    .unwrap_or(serde_json::Value::Null);
                out!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_client(&client);
                if let Some(s) = secret {
                    out!("client_secret: {}", s.expose());
                    out!("\nThe secret is shown only this once; store it now.");
                }
            }
        }
        Command::Client(ClientCommand::List { search, json }) => {
            let clients = core.list_clients(search.as_deref()).await.map_err(user_facing)?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&clients.iter().map(client_json).collect::<Vec<_>>())?
                );
            } else {
                for c in clients {
                    out!(
                        "{:<24} {:<13} {}{}",
                        c.id,
                        c.kind.as_str(),
                        c.name,
                        if c.disabled { " (disabled)" } else { "" }
                    );
                }
            }
        }
        Command::Client(ClientCommand::Show { client_id: id, json }) => {
            let client = core.get_client(&client_id(&id)?).await.map_err(user_facing)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&client_json(&client))?);
            } else {
                print_client(&client);
            }
        }
        Command::Client(ClientCommand::RotateSecret { client_id: id, json }) => {
            let id = client_id(&id)?;
            let secret = core.rotate_client_secret(&id, ACTOR).await.map_err(user_facing)?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"client_id": id.as_str(), "client_secret": secret.expose()}))?
                );
            } else {
                out!(
                    "client_secret: {}\n\nThe secret is shown only this once; store it now.",
                    secret.expose()
                );
            }
        }
        Command::Client(ClientCommand::Delete { client_id: id }) => {
            core.delete_client(&client_id(&id)?, ACTOR).await.map_err(user_facing)?;
            out!("deleted client {id}");
        }
        Command::User(UserCommand::Create {
            username,
            email,
            email_verified,
            name,
            given_name,
            family_name,
            json,
        }) => {
            let password = read_password("Password")?;
            let input = UserInput {
                username,
                email,
                email_verified,
                name,
                given_name,
                family_name,
            };
            let user = core.create_user(&input, &password, ACTOR).await.map_err(user_facing)?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"id": user.id, "username": user.username, "email": user.email,
                            "name": user.name, "given_name": user.given_name, "family_name": user.family_name})
                    )?
                );
            } else {
                out!("created user {} ({})", user.username, user.id);
            }
        }
        Command::User(UserCommand::List { search, json }) => {
            let users = core.list_users(search.as_deref()).await.map_err(user_facing)?;
            if json {
                let list: Vec<_> = users
                    .iter()
                    .map(|u| {
                        json!({"id": u.id, "username": u.username, "email": u.email, "name": u.name,
                               "given_name": u.given_name, "family_name": u.family_name, "disabled": u.disabled})
                    })
                    .collect();
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for u in users {
                    out!(
                        "{:<36} {:<24} {}{}",
                        u.id,
                        u.username,
                        u.email.unwrap_or_default(),
                        if u.disabled { " (disabled)" } else { "" }
                    );
                }
            }
        }
        Command::User(UserCommand::SetPassword { username }) => {
            let user = core.find_user(&username).await.map_err(user_facing)?;
            let password = read_password("New password")?;
            core.set_user_password(user.id, &password, ACTOR)
                .await
                .map_err(user_facing)?;
            out!("password changed for {username}; their sessions and grants were ended");
        }
        Command::User(UserCommand::Disable { username }) => {
            let user = core.find_user(&username).await.map_err(user_facing)?;
            core.set_user_disabled(user.id, true, ACTOR)
                .await
                .map_err(user_facing)?;
            out!("disabled {username}; their sessions and grants were ended");
        }
        Command::User(UserCommand::Enable { username }) => {
            let user = core.find_user(&username).await.map_err(user_facing)?;
            core.set_user_disabled(user.id, false, ACTOR)
                .await
                .map_err(user_facing)?;
            out!("enabled {username}");
        }
        Command::User(UserCommand::Delete { username }) => {
            let user = core.find_user(&username).await.map_err(user_facing)?;
            core.delete_user(user.id, ACTOR).await.map_err(user_facing)?;
            out!("deleted {username}; their sessions and grants were ended");
        }
        Command::Admin(AdminCommand::Create { username, role }) => {
            let role = AdminRole::parse(&role).ok_or_else(|| anyhow::anyhow!("--role: must be admin or auditor"))?;
            let password = read_password("Password")?;
            let admin = core
                .create_admin(&username, &password, role, ACTOR)
                .await
                .map_err(user_facing)?;
            out!("created {} account {}", role.as_str(), admin.username);
        }
        Command::Admin(AdminCommand::List { json }) => {
            let admins = core.list_admins().await?;
            if json {
                let list: Vec<_> = admins
                    .iter()
                    .map(|a| json!({"username": a.username, "role": a.role.as_str(), "created_at": a.created_at.unix_timestamp()}))
                    .collect();
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for a in &admins {
                    out!("{}\t{}", a.username, a.role.as_str());
                }
            }
        }
        Command::Admin(AdminCommand::SetPassword { username }) => {
            // Before asking for a password, as `user set-password` does.
            core.admin_account(&username).await.map_err(user_facing)?;
            let password = read_password("New password")?;
            core.set_admin_password(&username, &password, ACTOR)
                .await
                .map_err(user_facing)?;
            out!("password of {username} changed; their admin sessions have ended");
        }
        Command::Admin(AdminCommand::SetRole { username, role }) => {
            let role = AdminRole::parse(&role).ok_or_else(|| anyhow::anyhow!("--role: must be admin or auditor"))?;
            core.set_admin_role(&username, role, ACTOR).await.map_err(user_facing)?;
            out!("{username} is now {}", role.as_str());
        }
        Command::Admin(AdminCommand::Delete { username }) => {
            core.delete_admin(&username, ACTOR).await.map_err(user_facing)?;
            out!("deleted operator account {username}");
        }
        Command::Webhook(c) => crate::webhook_commands::run(core, c, ACTOR).await?,
        Command::InitialToken(c) => crate::initial_token_commands::run(core, c, ACTOR).await?,
        Command::Serve | Command::Migrate => {}
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// One clear line: the error and each of its causes, leaving out a cause whose text the
/// line already ends with (errors that print their source as part of their own message,
/// as sqlx's and the stores' do, would otherwise say it two or three times).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.ends_with(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod error_line_tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("store error: {0}")]
    struct Wraps(#[source] std::io::Error);

    #[test]
    fn causes_already_said_are_not_repeated() {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied (os error 13)");
        let e = anyhow::Error::new(Wraps(io())).context("database_url: cannot open SQLite");
        assert_eq!(
            error_line(&e),
            "database_url: cannot open SQLite: store error: Permission denied (os error 13)"
        );
        let e = anyhow::Error::new(io()).context("kek_file: cannot read /etc/kek");
        assert_eq!(
            error_line(&e),
            "kek_file: cannot read /etc/kek: Permission denied (os error 13)"
        );
    }
}
