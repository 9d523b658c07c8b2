//! Configuration: defaults, then the TOML file, then `PORTCULLIS_…` environment
//! variables; validated once at start-up with errors that name the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portcullis_core::CoreSettings;
use portcullis_core::defense::DefenseSettings;
use portcullis_core::net::{ForwardedHeader, TrustedProxies};
use portcullis_core::registration::RegistrationMode;
use portcullis_core::throttle::{Bucket, RateLimit};
use portcullis_protocol::SigningAlg;
use serde::Deserialize;

mod env;
#[cfg(test)]
mod tests;

pub use env::{is_service_link, utf8_vars};

/// The file's shape; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub issuer: Option<String>,
    pub access_token_audience: Option<String>,
    pub public_addr: Option<String>,
    pub admin_addr: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<String>,
    pub kek: Option<String>,
    pub kek_file: Option<String>,
    /// Key-encryption keys being replaced: they decrypt, never encrypt.
    pub previous_keks: Option<Vec<String>>,
    /// Files holding such keys, one each (mounted secrets), read as `previous_keks`.
    pub previous_kek_files: Option<Vec<String>>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub signing_alg: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub id_token_ttl: Option<i64>,
    pub code_ttl: Option<i64>,
    pub device_code_ttl: Option<i64>,
    pub device_poll_interval: Option<i64>,
    pub session_ttl: Option<i64>,
    pub session_max_age: Option<i64>,
    pub admin_idle_timeout: Option<i64>,
    pub max_concurrent_password_hashes: Option<i64>,
    /// Days audit events are kept; 0 keeps them forever.
    pub audit_retention_days: Option<i64>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub require_signed_request_object: Option<bool>,
    pub strict_client_assertion_audience: Option<bool>,
    pub require_dpop_nonce: Option<bool>,
    /// RFC 7591: `off` (the default) or `open`.
    pub registration: Option<String>,
    /// The scopes clients that register themselves may have, space-separated.
    pub registration_scopes: Option<String>,
    /// The APIs (RFC 8707) clients that register themselves may ask for tokens to.
    pub registration_resources: Option<Vec<String>>,
    pub registration_unused_client_days: Option<i64>,
    pub registration_require_pkce: Option<bool>,
    pub registration_confirm_redirects: Option<bool>,
    pub allow_unsigned_request_objects: Option<bool>,
    /// Networks that requests to addresses clients registered themselves may reach
    /// besides public ones (`jwks_uri`, `backchannel_logout_uri`, `sector_identifier_uri`).
    pub outbound_allowed_networks: Option<Vec<String>>,
    // Defense in depth (issue 6).
    pub trusted_proxies: Option<Vec<String>>,
    pub admin_hosts: Option<Vec<String>>,
    pub client_ip_header: Option<String>,
    pub rate_limit_login: Option<String>,
    pub rate_limit_admin_login: Option<String>,
    pub rate_limit_token_ip: Option<String>,
    pub rate_limit_token_client: Option<String>,
    pub rate_limit_revoke: Option<String>,
    pub rate_limit_introspect: Option<String>,
    pub rate_limit_account: Option<String>,
    pub rate_limit_device: Option<String>,
    pub rate_limit_register: Option<String>,
    pub rate_limit_sessions: Option<String>,
    pub lockout_threshold: Option<i64>,
    pub lockout_base_delay: Option<i64>,
    pub lockout_max_delay: Option<i64>,
    pub lockout_account_threshold: Option<i64>,
    pub lockout_account_max_delay: Option<i64>,
    pub audit_queue_size: Option<i64>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub webhook_max_attempts: Option<i64>,
    pub webhook_retry_base: Option<i64>,
    pub insecure_allow_http_webhooks: Option<bool>,
    pub header_read_timeout: Option<i64>,
    pub request_timeout: Option<i64>,
    pub max_connections_per_address: Option<i64>,
}

/// A setting that failed validation: `setting` is the key as written in the file.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {setting}{source_note}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub source_note: String,
    pub message: String,
}

fn cfg_err(setting: &str, origin: &Origins, message: impl Into<String>) -> ConfigError {
    let source_note = match origin.get(setting) {
        Some(o) => format!(" (from {o})"),
        None => String::new(),
    };
    ConfigError {
        setting: setting.to_owned(),
        source_note,
        message: message.into(),
    }
}

/// Where each setting came from, for error messages.
type Origins = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// The key itself (from `PORTCULLIS_KEK` or `kek`).
    Inline(String),
    /// A file holding the key; must exist.
    File(PathBuf),
    /// The embedded default: `<data_dir>/kek`, generated on first start.
    Generated(PathBuf),
    /// None set, with PostgreSQL, for a command that needs none (`migrate`).
    Absent,
}

/// Whether a command needs the key-encryption key. `migrate` changes the schema only, so
/// it runs without one, where a PostgreSQL deployment's other commands must have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekNeed {
    Required,
    NotNeeded,
}

/// Certificate chain and private key (PEM) for built-in TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub kek: KekSource,
    /// Keys `kek` replaces, until `portcullis kek rewrap` has sealed everything again
    /// with it: they decrypt what they sealed, never encrypt.
    pub previous_keks: Vec<String>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub core: CoreSettings,
    /// Built-in TLS on both listeners (issue 6); `None` behind a TLS-terminating proxy.
    pub tls: Option<TlsFiles>,
    /// How long a client may take to send a request (see `crate::serve`).
    pub timeouts: crate::serve::Timeouts,
    /// Connections one client address may hold open at once (`crate::conn_limit`).
    pub max_connections_per_address: u32,
}

/// `max_connections_per_address` unless set: far above what browsers (six per host) or a
/// busy client's pool hold, while one address can take only this many of the process's
/// descriptors.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 1024;

/// Settings an empty value is meaningful for: lists (comma-separated in the
/// environment) and `registration_scopes` (space-separated). Any other set to nothing
/// is refused rather than read as a path or a name of nothing.
pub(crate) const MAY_BE_EMPTY: [&str; 7] = [
    "trusted_proxies",
    "admin_hosts",
    "previous_keks",
    "previous_kek_files",
    "registration_resources",
    "outbound_allowed_networks",
    "registration_scopes",
];

const ENV_KEYS: &[&str] = &[
    "issuer",
    "access_token_audience",
    "public_addr",
    "admin_addr",
    "database_url",
    "data_dir",
    "kek",
    "kek_file",
    "previous_keks",
    "previous_kek_files",
    "log_format",
    "log_level",
    "signing_alg",
    "access_token_ttl",
    "refresh_token_ttl",
    "id_token_ttl",
    "code_ttl",
    "device_code_ttl",
    "device_poll_interval",
    "session_ttl",
    "session_max_age",
    "admin_idle_timeout",
    "max_concurrent_password_hashes",
    "audit_retention_days",
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "strict_client_assertion_audience",
    "require_dpop_nonce",
    "registration",
    "registration_scopes",
    "registration_resources",
    "registration_unused_client_days",
    "registration_require_pkce",
    "registration_confirm_redirects",
    "allow_unsigned_request_objects",
    "outbound_allowed_networks",
    "trusted_proxies",
    "admin_hosts",
    "client_ip_header",
    "rate_limit_login",
    "rate_limit_admin_login",
    "rate_limit_token_ip",
    "rate_limit_token_client",
    "rate_limit_revoke",
    "rate_limit_introspect",
    "rate_limit_account",
    "rate_limit_device",
    "rate_limit_register",
    "rate_limit_sessions",
    "lockout_threshold",
    "lockout_base_delay",
    "lockout_max_delay",
    "lockout_account_threshold",
    "lockout_account_max_delay",
    "audit_queue_size",
    "tls_cert_file",
    "tls_key_file",
    "webhook_max_attempts",
    "webhook_retry_base",
    "header_read_timeout",
    "request_timeout",
    "max_connections_per_address",
    "insecure_allow_http_webhooks",
];

/// A TOML error as one line naming the key (when the document parses, a type error
/// lies inside one top-level entry) and the line and column toml points at; toml's own
/// message carries neither, and its `Display` is a multi-line snippet.
fn toml_error(e: &toml::de::Error, text: &str, file: &str) -> ConfigError {
    let Some(span) = e.span() else {
        return ConfigError {
            setting: file.to_owned(),
            source_note: String::new(),
            message: e.message().to_owned(),
        };
    };
    let (line, column) = line_column(text, span.start);
    let key = toml::de::DeTable::parse(text).ok().and_then(|table| {
        table.get_ref().iter().find_map(|(k, v)| {
            let within = k.span().start <= span.start && span.start < v.span().end.max(k.span().end);
            within.then(|| k.get_ref().to_string())
        })
    });
    match key {
        Some(key) => ConfigError {
            setting: key,
            source_note: format!(" (from {file}, line {line}, column {column})"),
            message: e.message().to_owned(),
        },
        None => ConfigError {
            setting: file.to_owned(),
            source_note: format!(" (line {line}, column {column})"),
            message: e.message().to_owned(),
        },
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

impl RawConfig {
    /// Reads the file: `path` if given (must exist), else `portcullis.toml` if present.
    pub fn from_file(path: Option<&Path>, origins: &mut Origins) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("portcullis.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ConfigError {
                    setting: "--config".into(),
                    source_note: String::new(),
                    message: format!("cannot read {}: {e}", path.display()),
                });
            }
        };
        let file = path.display().to_string();
        let raw: RawConfig = toml::from_str(&text).map_err(|e| toml_error(&e, &text, &file))?;
        // As in the environment: `data_dir = ""` would be the working directory.
        if let Ok(table) = text.parse::<toml::Table>() {
            for (key, value) in &table {
                if value.as_str().is_some_and(|v| v.trim().is_empty()) && !MAY_BE_EMPTY.contains(&key.as_str()) {
                    return Err(ConfigError {
                        setting: key.clone(),
                        source_note: format!(" (from {file})"),
                        message: "is set but empty: give it a value, or leave it out for the default".into(),
                    });
                }
            }
        }
        for key in ENV_KEYS {
            if raw.is_set(key) {
                origins.insert((*key).to_owned(), file.clone());
            }
        }
        Ok(raw)
    }

    fn is_set(&self, key: &str) -> bool {
        match key {
            "issuer" => self.issuer.is_some(),
            "access_token_audience" => self.access_token_audience.is_some(),
            "public_addr" => self.public_addr.is_some(),
            "admin_addr" => self.admin_addr.is_some(),
            "database_url" => self.database_url.is_some(),
            "data_dir" => self.data_dir.is_some(),
            "kek" => self.kek.is_some(),
            "kek_file" => self.kek_file.is_some(),
            "previous_keks" => self.previous_keks.is_some(),
            "previous_kek_files" => self.previous_kek_files.is_some(),
            "log_format" => self.log_format.is_some(),
            "log_level" => self.log_level.is_some(),
            "signing_alg" => self.signing_alg.is_some(),
            "access_token_ttl" => self.access_token_ttl.is_some(),
            "refresh_token_ttl" => self.refresh_token_ttl.is_some(),
            "id_token_ttl" => self.id_token_ttl.is_some(),
            "code_ttl" => self.code_ttl.is_some(),
            "device_code_ttl" => self.device_code_ttl.is_some(),
            "device_poll_interval" => self.device_poll_interval.is_some(),
            "session_ttl" => self.session_ttl.is_some(),
            "session_max_age" => self.session_max_age.is_some(),
            "admin_idle_timeout" => self.admin_idle_timeout.is_some(),
            "max_concurrent_password_hashes" => self.max_concurrent_password_hashes.is_some(),
            "audit_retention_days" => self.audit_retention_days.is_some(),
            "require_pushed_authorization_requests" => self.require_pushed_authorization_requests.is_some(),
            "require_signed_request_object" => self.require_signed_request_object.is_some(),
            "strict_client_assertion_audience" => self.strict_client_assertion_audience.is_some(),
            "require_dpop_nonce" => self.require_dpop_nonce.is_some(),
            "registration" => self.registration.is_some(),
            "registration_scopes" => self.registration_scopes.is_some(),
            "registration_resources" => self.registration_resources.is_some(),
            "registration_unused_client_days" => self.registration_unused_client_days.is_some(),
            "registration_require_pkce" => self.registration_require_pkce.is_some(),
            "registration_confirm_redirects" => self.registration_confirm_redirects.is_some(),
            "allow_unsigned_request_objects" => self.allow_unsigned_request_objects.is_some(),
            "outbound_allowed_networks" => self.outbound_allowed_networks.is_some(),
            "trusted_proxies" => self.trusted_proxies.is_some(),
            "admin_hosts" => self.admin_hosts.is_some(),
            "client_ip_header" => self.client_ip_header.is_some(),
            "rate_limit_login" => self.rate_limit_login.is_some(),
            "rate_limit_admin_login" => self.rate_limit_admin_login.is_some(),
            "rate_limit_token_ip" => self.rate_limit_token_ip.is_some(),
            "rate_limit_token_client" => self.rate_limit_token_client.is_some(),
            "rate_limit_revoke" => self.rate_limit_revoke.is_some(),
            "rate_limit_introspect" => self.rate_limit_introspect.is_some(),
            "rate_limit_account" => self.rate_limit_account.is_some(),
            "rate_limit_device" => self.rate_limit_device.is_some(),
            "rate_limit_register" => self.rate_limit_register.is_some(),
            "rate_limit_sessions" => self.rate_limit_sessions.is_some(),
            "lockout_threshold" => self.lockout_threshold.is_some(),
            "lockout_base_delay" => self.lockout_base_delay.is_some(),
            "lockout_max_delay" => self.lockout_max_delay.is_some(),
            "lockout_account_threshold" => self.lockout_account_threshold.is_some(),
            "lockout_account_max_delay" => self.lockout_account_max_delay.is_some(),
            "audit_queue_size" => self.audit_queue_size.is_some(),
            "tls_cert_file" => self.tls_cert_file.is_some(),
            "tls_key_file" => self.tls_key_file.is_some(),
            "webhook_max_attempts" => self.webhook_max_attempts.is_some(),
            "webhook_retry_base" => self.webhook_retry_base.is_some(),
            "header_read_timeout" => self.header_read_timeout.is_some(),
            "request_timeout" => self.request_timeout.is_some(),
            "max_connections_per_address" => self.max_connections_per_address.is_some(),
            "insecure_allow_http_webhooks" => self.insecure_allow_http_webhooks.is_some(),
            _ => false,
        }
    }

    /// Validates and fills defaults.
    pub fn validate(self, origins: &Origins, kek_need: KekNeed) -> Result<Settings, ConfigError> {
        let issuer = self.issuer.unwrap_or_else(|| "http://localhost:9090".into());
        let url = url::Url::parse(&issuer)
            .map_err(|e| cfg_err("issuer", origins, format!("{issuer:?} is not a URL: {e}")))?;
        // OIDC Discovery §3 / RFC 8414 §2: https, no query, no fragment.
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(cfg_err("issuer", origins, "must be an http(s) URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(cfg_err("issuer", origins, "must not contain a query or fragment"));
        }
        if url.path() != "/" {
            return Err(cfg_err(
                "issuer",
                origins,
                "must not have a path (Portcullis serves at the root)",
            ));
        }
        // Credentials in the issuer would be published in discovery and in every token.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(cfg_err("issuer", origins, "must not contain a user name or password"));
        }
        // Clients compare the issuer exactly (OIDC Discovery §4.3), and the server decides
        // on Secure cookies and HSTS from its `https://` prefix: an upper-case scheme or
        // host would turn both off. With no path, query or fragment, that is the whole
        // URL.
        if issuer.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(cfg_err(
                "issuer",
                origins,
                format!(
                    "must be in lower case, as clients compare it exactly: {:?}",
                    issuer.to_ascii_lowercase()
                ),
            ));
        }
        // Written as it is published: the URL standard drops surrounding spaces, a default
        // port and the like when it reads the issuer, but discovery and tokens carry the
        // setting as written, and its `https://` prefix is what turns Secure cookies on.
        let canonical = url.as_str().trim_end_matches('/');
        if issuer.trim_end_matches('/') != canonical {
            return Err(cfg_err(
                "issuer",
                origins,
                format!("must be written as clients will compare it: {canonical:?}, not {issuer:?}"),
            ));
        }
        if url.scheme() == "http" && self.tls_cert_file.is_some() {
            return Err(cfg_err(
                "issuer",
                origins,
                "must be https:// when Portcullis terminates TLS itself (tls_cert_file is set)",
            ));
        }
        let addr = |key: &str, v: Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
            let v = v.unwrap_or_else(|| default.to_owned());
            v.parse()
                .map_err(|_| cfg_err(key, origins, format!("{v:?} is not an address like 127.0.0.1:9090")))
        };
        let public_addr = addr("public_addr", self.public_addr, "0.0.0.0:9090")?;
        let admin_addr = addr("admin_addr", self.admin_addr, "127.0.0.1:9091")?;
        if listeners_collide(public_addr, admin_addr) {
            return Err(cfg_err(
                "admin_addr",
                origins,
                format!(
                    "{admin_addr} takes the port of public_addr {public_addr}; the admin surface needs a listener of its own"
                ),
            ));
        }
        let data_dir = PathBuf::from(self.data_dir.unwrap_or_else(|| "./data".into()));
        let database_url = match self.database_url {
            Some(u) => {
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://") || u.starts_with("sqlite:")) {
                    return Err(cfg_err(
                        "database_url",
                        origins,
                        "must start with postgres://, postgresql:// or sqlite:",
                    ));
                }
                u
            }
            None => format!("sqlite://{}?mode=rwc", data_dir.join("portcullis.db").display()),
        };
        let is_postgres = !database_url.starts_with("sqlite:");
        let kek = match (self.kek, self.kek_file) {
            (Some(_), Some(_)) => return Err(cfg_err("kek", origins, "set kek or kek_file, not both")),
            (Some(k), None) => {
                portcullis_core::crypto::Kek::parse(&k)
                    .map_err(|e| cfg_err("kek", origins, format!("invalid key-encryption key: {e}")))?;
                KekSource::Inline(k)
            }
            (None, Some(f)) => {
                let p = PathBuf::from(&f);
                // `migrate` reads no key: a file not there yet (a first deployment that
                // migrates before the secret is mounted) does not stop it.
                if kek_need != KekNeed::NotNeeded {
                    std::fs::metadata(&p).map_err(|e| cfg_err("kek_file", origins, format!("cannot read {f}: {e}")))?;
                }
                KekSource::File(p)
            }
            (None, None) if is_postgres && kek_need == KekNeed::NotNeeded => KekSource::Absent,
            (None, None) if is_postgres => {
                return Err(cfg_err(
                    "kek",
                    origins,
                    "with PostgreSQL set PORTCULLIS_KEK or kek_file, so every node decrypts the same signing keys",
                ));
            }
            (None, None) => KekSource::Generated(data_dir.join("kek")),
        };
        let mut previous_keks = self.previous_keks.unwrap_or_default();
        for (i, k) in previous_keks.iter().enumerate() {
            portcullis_core::crypto::Kek::parse(k).map_err(|e| {
                cfg_err(
                    "previous_keks",
                    origins,
                    format!("entry {}: invalid key-encryption key: {e}", i + 1),
                )
            })?;
        }
        // Read now, as the keys they hold are needed from the start (`migrate` needs none).
        if kek_need != KekNeed::NotNeeded {
            for (i, f) in self.previous_kek_files.unwrap_or_default().iter().enumerate() {
                let bad = |m: String| cfg_err("previous_kek_files", origins, format!("entry {} ({f}): {m}", i + 1));
                let text = std::fs::read_to_string(f).map_err(|e| bad(format!("cannot read it: {e}")))?;
                let key = text.trim();
                portcullis_core::crypto::Kek::parse(key)
                    .map_err(|e| bad(format!("invalid key-encryption key: {e}")))?;
                previous_keks.push(key.to_owned());
            }
        }
        let log_format = match self.log_format.as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(cfg_err(
                    "log_format",
                    origins,
                    format!("{other:?}: expected human or json"),
                ));
            }
        };
        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(cfg_err(
                "log_level",
                origins,
                format!("{log_level:?} is not a log filter (e.g. info, debug)"),
            ));
        }
        // A filter reads a bare word as a target to log everything of, and nothing else: a
        // mistyped level (`debugg`) would silence the server. Here a bare word must be a
        // level; a target is written with its level (`portcullis_core=debug`).
        if let Some(word) = log_level.split(',').map(str::trim).find(|d| {
            !d.is_empty()
                && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !["off", "error", "warn", "info", "debug", "trace"].contains(&d.to_ascii_lowercase().as_str())
        }) {
            return Err(cfg_err(
                "log_level",
                origins,
                format!(
                    "{word:?} is not a level (off, error, warn, info, debug or trace); name a target with its level, as {word}=debug"
                ),
            ));
        }
        let mut core = CoreSettings::for_issuer(&issuer);
        if let Some(aud) = self.access_token_audience {
            if aud.trim().is_empty() || aud.len() > 512 {
                return Err(cfg_err("access_token_audience", origins, "must be 1 to 512 characters"));
            }
            core.access_token_audience = aud;
        }
        if let Some(a) = self.signing_alg {
            core.signing_alg = SigningAlg::parse(&a).map_err(|e| cfg_err("signing_alg", origins, e.0))?;
        }
        let ttl = |key: &str, v: Option<i64>, min: i64, max: i64| -> Result<Option<time::Duration>, ConfigError> {
            match v {
                None => Ok(None),
                Some(s) if (min..=max).contains(&s) => Ok(Some(time::Duration::seconds(s))),
                Some(s) => Err(cfg_err(
                    key,
                    origins,
                    format!("{s} is out of range {min}..={max} seconds"),
                )),
            }
        };
        if let Some(d) = ttl("access_token_ttl", self.access_token_ttl, 60, 86_400)? {
            core.access_token_ttl = d;
        }
        if let Some(d) = ttl("refresh_token_ttl", self.refresh_token_ttl, 300, 31_536_000)? {
            core.refresh_token_ttl = d;
        }
        if let Some(d) = ttl("id_token_ttl", self.id_token_ttl, 60, 86_400)? {
            core.id_token_ttl = d;
        }
        if let Some(d) = ttl("code_ttl", self.code_ttl, 10, 600)? {
            core.code_ttl = d;
        }
        if let Some(d) = ttl("device_code_ttl", self.device_code_ttl, 60, 1800)? {
            core.device_code_ttl = d;
        }
        if let Some(d) = ttl("device_poll_interval", self.device_poll_interval, 1, 60)? {
            core.device_poll_interval = d.whole_seconds();
        }
        if let Some(d) = ttl("session_ttl", self.session_ttl, 60, 2_592_000)? {
            core.session_ttl = d;
        }
        if let Some(d) = ttl("session_max_age", self.session_max_age, 3600, 31_536_000)? {
            core.session_max_age = d;
        }
        if let Some(d) = ttl("admin_idle_timeout", self.admin_idle_timeout, 60, 86_400)? {
            core.admin_idle_timeout = d;
        }
        let mut timeouts = crate::serve::Timeouts::default();
        if let Some(d) = ttl("header_read_timeout", self.header_read_timeout, 1, 3600)? {
            timeouts.header_read = d.unsigned_abs();
        }
        if let Some(d) = ttl("request_timeout", self.request_timeout, 1, 3600)? {
            timeouts.request = d.unsigned_abs();
        }
        let max_connections_per_address = match self.max_connections_per_address {
            None => DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    cfg_err(
                        "max_connections_per_address",
                        origins,
                        format!("{n} is out of range 1..=1000000"),
                    )
                })?,
        };
        if let Some(n) = self.max_concurrent_password_hashes {
            if !(1..=256).contains(&n) {
                return Err(cfg_err(
                    "max_concurrent_password_hashes",
                    origins,
                    "must be between 1 and 256",
                ));
            }
            core.max_concurrent_password_hashes = usize::try_from(n).unwrap_or(4);
        }
        if let Some(b) = self.require_pushed_authorization_requests {
            core.require_pushed_authorization_requests = b;
        }
        if let Some(b) = self.require_signed_request_object {
            core.require_signed_request_object = b;
        }
        if let Some(b) = self.registration_require_pkce {
            core.registration_require_pkce = b;
        }
        if let Some(b) = self.registration_confirm_redirects {
            core.registration_confirm_redirects = b;
        }
        if let Some(b) = self.allow_unsigned_request_objects {
            core.allow_unsigned_request_objects = b;
        }
        if let Some(b) = self.strict_client_assertion_audience {
            core.strict_client_assertion_audience = b;
        }
        if let Some(b) = self.require_dpop_nonce {
            core.require_dpop_nonce = b;
        }
        if let Some(mode) = &self.registration {
            core.registration = RegistrationMode::parse(mode.trim()).ok_or_else(|| {
                cfg_err(
                    "registration",
                    origins,
                    format!("{mode:?}: expected off, open or token"),
                )
            })?;
        }
        if let Some(scopes) = &self.registration_scopes {
            core.registration_scopes = portcullis_protocol::ScopeSet::parse(scopes)
                .map_err(|e| cfg_err("registration_scopes", origins, e.0))?;
        }
        if let Some(days) = self.registration_unused_client_days {
            core.registration_unused_client_days =
                u32::try_from(days).ok().filter(|d| *d <= 3650).ok_or_else(|| {
                    cfg_err(
                        "registration_unused_client_days",
                        origins,
                        "must be between 0 and 3650 days (0 keeps them)",
                    )
                })?;
        }
        if let Some(resources) = &self.registration_resources {
            core.registration_resources = resources
                .iter()
                .map(|r| portcullis_core::clients::parse_resource(r.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| cfg_err("registration_resources", origins, e.to_string()))?;
        }
        if let Some(list) = &self.outbound_allowed_networks {
            core.outbound.allowed_networks = list
                .iter()
                .map(|n| TrustedProxies::parse_network(n).map_err(|e| cfg_err("outbound_allowed_networks", origins, e)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(n) = self.audit_retention_days {
            // A century is far past any retention rule and keeps `now - days` in range.
            if !(0..=36_500).contains(&n) {
                return Err(cfg_err(
                    "audit_retention_days",
                    origins,
                    format!("{n} is out of range 0..=36500 days (0 keeps audit events forever)"),
                ));
            }
            core.audit_retention_days = u32::try_from(n).unwrap_or(90);
        }
        let raw = DefenseRaw {
            trusted_proxies: self.trusted_proxies.as_deref(),
            admin_hosts: self.admin_hosts.as_deref(),
            client_ip_header: self.client_ip_header.as_deref(),
            rate_limits: [
                (Bucket::LoginIp, self.rate_limit_login.as_deref()),
                (Bucket::AdminLoginIp, self.rate_limit_admin_login.as_deref()),
                (Bucket::TokenIp, self.rate_limit_token_ip.as_deref()),
                (Bucket::TokenClient, self.rate_limit_token_client.as_deref()),
                (Bucket::RevokeIp, self.rate_limit_revoke.as_deref()),
                (Bucket::IntrospectIp, self.rate_limit_introspect.as_deref()),
                (Bucket::AccountIp, self.rate_limit_account.as_deref()),
                (Bucket::DeviceIp, self.rate_limit_device.as_deref()),
                (Bucket::RegisterIp, self.rate_limit_register.as_deref()),
                (Bucket::SessionIp, self.rate_limit_sessions.as_deref()),
            ],
            lockout_threshold: self.lockout_threshold,
            lockout_base_delay: self.lockout_base_delay,
            lockout_max_delay: self.lockout_max_delay,
            lockout_account_threshold: self.lockout_account_threshold,
            lockout_account_max_delay: self.lockout_account_max_delay,
            audit_queue_size: self.audit_queue_size,
            tls_cert_file: self.tls_cert_file.as_deref(),
            tls_key_file: self.tls_key_file.as_deref(),
            webhook_max_attempts: self.webhook_max_attempts,
            webhook_retry_base: self.webhook_retry_base,
            insecure_allow_http_webhooks: self.insecure_allow_http_webhooks,
        };
        let tls = defense(&mut core.defense, &raw, origins)?;
        Ok(Settings {
            public_addr,
            admin_addr,
            database_url,
            data_dir,
            kek,
            previous_keks,
            log_format,
            log_level,
            core,
            tls,
            timeouts,
            max_connections_per_address,
        })
    }
}

/// Whether the two listeners would ask for the same port: the same address, or the same
/// port with either one on all addresses of that family. Checked before binding, where
/// the second listener would fail with a bare "Address already in use". Port 0 picks a
/// free port each time, so it never collides.
pub(crate) fn listeners_collide(public: SocketAddr, admin: SocketAddr) -> bool {
    public.port() == admin.port()
        && public.port() != 0
        && public.is_ipv4() == admin.is_ipv4()
        && (public.ip() == admin.ip() || public.ip().is_unspecified() || admin.ip().is_unspecified())
}

/// A list setting in the environment: comma-separated, blanks dropped.
fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The defense-in-depth settings as read, borrowed from `RawConfig`.
struct DefenseRaw<'a> {
    trusted_proxies: Option<&'a [String]>,
    admin_hosts: Option<&'a [String]>,
    client_ip_header: Option<&'a str>,
    rate_limits: [(Bucket, Option<&'a str>); 10],
    lockout_threshold: Option<i64>,
    lockout_base_delay: Option<i64>,
    lockout_max_delay: Option<i64>,
    lockout_account_threshold: Option<i64>,
    lockout_account_max_delay: Option<i64>,
    audit_queue_size: Option<i64>,
    tls_cert_file: Option<&'a str>,
    tls_key_file: Option<&'a str>,
    webhook_max_attempts: Option<i64>,
    webhook_retry_base: Option<i64>,
    insecure_allow_http_webhooks: Option<bool>,
}

/// Validates the defense-in-depth settings into `d`; returns the TLS files, if any.
fn defense(d: &mut DefenseSettings, raw: &DefenseRaw<'_>, origins: &Origins) -> Result<Option<TlsFiles>, ConfigError> {
    if let Some(list) = raw.trusted_proxies {
        d.trusted_proxies.networks = list
            .iter()
            .map(|n| TrustedProxies::parse_network(n).map_err(|e| cfg_err("trusted_proxies", origins, e)))
            .collect::<Result<_, _>>()?;
    }
    if let Some(list) = raw.admin_hosts {
        d.admin_hosts = list
            .iter()
            .map(|h| portcullis_core::defense::parse_admin_host(h).map_err(|e| cfg_err("admin_hosts", origins, e)))
            .collect::<Result<_, _>>()?;
    }
    if let Some(h) = raw.client_ip_header {
        d.trusted_proxies.header = ForwardedHeader::parse(h).ok_or_else(|| {
            cfg_err(
                "client_ip_header",
                origins,
                format!("{h:?}: expected x-forwarded-for or forwarded"),
            )
        })?;
    }
    for (bucket, value) in raw.rate_limits {
        if let Some(v) = value {
            let limit = RateLimit::parse(v).map_err(|e| cfg_err(bucket.setting(), origins, e))?;
            d.rate_limits.set(bucket, limit);
        }
    }
    let range = |key: &str, v: Option<i64>, min: i64, max: i64| -> Result<Option<i64>, ConfigError> {
        match v {
            Some(n) if !(min..=max).contains(&n) => {
                Err(cfg_err(key, origins, format!("{n} is out of range {min}..={max}")))
            }
            other => Ok(other),
        }
    };
    if let Some(n) = range("lockout_threshold", raw.lockout_threshold, 1, 100)? {
        d.lockout.threshold = u32::try_from(n).unwrap_or(5);
    }
    if let Some(n) = range("lockout_base_delay", raw.lockout_base_delay, 1, 3600)? {
        d.lockout.base_delay = time::Duration::seconds(n);
    }
    if let Some(n) = range("lockout_max_delay", raw.lockout_max_delay, 1, 86_400)? {
        d.lockout.max_delay = time::Duration::seconds(n);
    }
    if let Some(n) = range("lockout_account_threshold", raw.lockout_account_threshold, 1, 10_000)? {
        d.lockout.account_threshold = u32::try_from(n).unwrap_or(20);
    }
    if let Some(n) = range("lockout_account_max_delay", raw.lockout_account_max_delay, 1, 86_400)? {
        d.lockout.account_max_delay = time::Duration::seconds(n);
    }
    // A cap left at its default follows a longer first wait; one set lower is an error.
    let base = d.lockout.base_delay;
    for (key, set, max) in [
        (
            "lockout_max_delay",
            raw.lockout_max_delay.is_some(),
            &mut d.lockout.max_delay,
        ),
        (
            "lockout_account_max_delay",
            raw.lockout_account_max_delay.is_some(),
            &mut d.lockout.account_max_delay,
        ),
    ] {
        if *max < base {
            if set {
                return Err(cfg_err(key, origins, "must not be less than lockout_base_delay"));
            }
            *max = base;
        }
    }
    if let Some(n) = range("audit_queue_size", raw.audit_queue_size, 1, 1_000_000)? {
        d.audit_queue_size = usize::try_from(n).unwrap_or(4096);
    }
    if let Some(n) = range("webhook_max_attempts", raw.webhook_max_attempts, 1, 20)? {
        d.webhooks.max_attempts = u32::try_from(n).unwrap_or(8);
    }
    if let Some(n) = range("webhook_retry_base", raw.webhook_retry_base, 1, 3600)? {
        d.webhooks.retry_base = std::time::Duration::from_secs(n.unsigned_abs());
    }
    if let Some(b) = raw.insecure_allow_http_webhooks {
        d.webhooks.insecure_allow_http = b;
    }
    match (raw.tls_cert_file, raw.tls_key_file) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            for (setting, f) in [("tls_cert_file", cert), ("tls_key_file", key)] {
                std::fs::metadata(f).map_err(|e| cfg_err(setting, origins, format!("cannot read {f}: {e}")))?;
            }
            Ok(Some(TlsFiles {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }))
        }
        (Some(_), None) => Err(cfg_err("tls_key_file", origins, "is required with tls_cert_file")),
        (None, Some(_)) => Err(cfg_err("tls_cert_file", origins, "is required with tls_key_file")),
    }
}

impl Settings {
    /// Loads configuration the way `portcullis` does: file, then environment.
    pub fn load(config: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_needing(config, KekNeed::Required)
    }

    /// `load`, for a command that may need no key-encryption key.
    pub fn load_needing(config: Option<&Path>, kek_need: KekNeed) -> Result<Self, ConfigError> {
        // `vars_os`: `std::env::vars` panics on a variable that is not UTF-8, anyone's.
        Self::load_from_needing(config, utf8_vars(std::env::vars_os())?, kek_need)
    }

    pub fn load_from(
        config: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::load_from_needing(config, vars, KekNeed::Required)
    }

    pub fn load_from_needing(
        config: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        kek_need: KekNeed,
    ) -> Result<Self, ConfigError> {
        let mut origins = Origins::new();
        let mut raw = RawConfig::from_file(config, &mut origins)?;
        raw.apply_env(vars, &mut origins)?;
        raw.validate(&origins, kek_need)
    }

    /// Settings for tests: SQLite at `database_url`, an inline key, the given issuer.
    pub fn for_test(issuer: &str, database_url: &str, kek: &str) -> Self {
        Self {
            public_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned(),
            data_dir: std::env::temp_dir(),
            kek: KekSource::Inline(kek.to_owned()),
            previous_keks: Vec::new(),
            log_format: LogFormat::Human,
            log_level: "warn".into(),
            core: CoreSettings::for_issuer(issuer),
            tls: None,
            timeouts: crate::serve::Timeouts::default(),
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }

    pub fn is_postgres(&self) -> bool {
        !self.database_url.starts_with("sqlite:")
    }
}
