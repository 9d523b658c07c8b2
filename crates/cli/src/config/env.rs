//! Configuration from the environment: `PORTCULLIS_<KEY>` variables over the file,
//! with unknown names refused (typos) except the ones orchestrators write themselves.

use std::ffi::OsString;

use super::{ConfigError, ENV_KEYS, Origins, RawConfig, cfg_err, comma_list};

/// The process environment as UTF-8 pairs. Variables that are not valid UTF-8 are none
/// of Portcullis's business unless they look like its own, where a mangled value must
/// not be dropped silently (a `PORTCULLIS_KEK` lost that way would start with no key or
/// a generated one): those are an error naming the variable.
pub fn utf8_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in vars {
        let name = match name.into_string() {
            Ok(n) => n,
            Err(raw) => {
                let lossy = raw.to_string_lossy().into_owned();
                if lossy.starts_with("PORTCULLIS_") {
                    return Err(not_utf8(lossy, "the variable's name is not valid UTF-8"));
                }
                continue;
            }
        };
        match value.into_string() {
            Ok(v) => out.push((name, v)),
            // `DATABASE_URL` is read too, as the fallback for `database_url`.
            Err(_) if name.starts_with("PORTCULLIS_") || name == "DATABASE_URL" => {
                return Err(not_utf8(name, "the value is not valid UTF-8"));
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

fn not_utf8(setting: String, message: &str) -> ConfigError {
    ConfigError {
        setting,
        source_note: String::new(),
        message: message.to_owned(),
    }
}

/// Whether `key` (the name after `PORTCULLIS_`) is one of the variables Kubernetes adds
/// for a Service named `portcullis` (`…_SERVICE_HOST`, `…_SERVICE_PORT`,
/// `…_SERVICE_PORT_<NAME>`) or that it and Docker links add in the Docker-link style
/// (`…_PORT`, `…_PORT_<n>_<PROTO>` and its `_ADDR`, `_PORT`, `_PROTO`). No setting is
/// named like these (a unit test holds `ENV_KEYS` to that); any other unknown name is
/// still refused.
pub fn is_service_link(key: &str) -> bool {
    if key == "SERVICE_HOST" || key == "SERVICE_PORT" || key == "PORT" {
        return true;
    }
    if let Some(name) = key.strip_prefix("SERVICE_PORT_") {
        // A named port of the Service: upper case, `-` written as `_`.
        return !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    }
    let Some(rest) = key.strip_prefix("PORT_") else {
        return false;
    };
    let Some((number, rest)) = rest.split_once('_') else {
        return false;
    };
    if number.is_empty() || number.len() > 5 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let proto = match rest.split_once('_') {
        Some((proto, "ADDR" | "PORT" | "PROTO")) => proto,
        Some(_) => return false,
        None => rest,
    };
    matches!(proto, "TCP" | "UDP" | "SCTP")
}

impl RawConfig {
    /// Applies `PORTCULLIS_<KEY>` variables (and `DATABASE_URL` as a fallback for
    /// `database_url`). An unknown `PORTCULLIS_…` variable is an error, so a typo does
    /// not silently leave a default in place.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError> {
        let mut database_url_fallback = None;
        for (name, value) in vars {
            if name == "DATABASE_URL" {
                database_url_fallback = Some(value);
                continue;
            }
            let Some(key) = name.strip_prefix("PORTCULLIS_") else {
                continue;
            };
            // Variables read by the test suite and tools, not by the server.
            if key.starts_with("TEST_") || key.starts_with("BENCH_") {
                continue;
            }
            // Kubernetes and Docker write these for a service or link named `portcullis`,
            // into every pod or container; refusing them would crash-loop the server.
            if is_service_link(key) {
                continue;
            }
            let key = key.to_ascii_lowercase();
            if !ENV_KEYS.contains(&key.as_str()) {
                return Err(ConfigError {
                    setting: name.clone(),
                    source_note: String::new(),
                    message: format!("unknown setting; known: {}", ENV_KEYS.join(", ")),
                });
            }
            origins.insert(key.clone(), name.clone());
            let int = |v: &str| -> Result<i64, ConfigError> {
                // Counts are counts; the rest are durations.
                let counted = [
                    "max_concurrent_password_hashes",
                    "lockout_threshold",
                    "lockout_account_threshold",
                    "audit_queue_size",
                    "webhook_max_attempts",
                    "max_connections_per_address",
                ];
                let what = if key.ends_with("_days") {
                    "a whole number of days"
                } else if counted.contains(&key.as_str()) {
                    "a whole number"
                } else {
                    "a whole number of seconds"
                };
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| cfg_err(&key, origins, format!("{v:?} is not {what}")))
            };
            // An empty value is no value: for a path it would mean the working directory,
            // for a name nothing at all. Lists may be empty.
            if value.trim().is_empty() && !super::MAY_BE_EMPTY.contains(&key.as_str()) {
                return Err(cfg_err(
                    &key,
                    origins,
                    "is set but empty: give it a value, or unset it for the default",
                ));
            }
            match key.as_str() {
                "issuer" => self.issuer = Some(value),
                "access_token_audience" => self.access_token_audience = Some(value),
                "public_addr" => self.public_addr = Some(value),
                "admin_addr" => self.admin_addr = Some(value),
                "database_url" => self.database_url = Some(value),
                "data_dir" => self.data_dir = Some(value),
                "kek" => self.kek = Some(value),
                "kek_file" => self.kek_file = Some(value),
                "log_format" => self.log_format = Some(value),
                "log_level" => self.log_level = Some(value),
                "signing_alg" => self.signing_alg = Some(value),
                "access_token_ttl" => self.access_token_ttl = Some(int(&value)?),
                "refresh_token_ttl" => self.refresh_token_ttl = Some(int(&value)?),
                "id_token_ttl" => self.id_token_ttl = Some(int(&value)?),
                "code_ttl" => self.code_ttl = Some(int(&value)?),
                "device_code_ttl" => self.device_code_ttl = Some(int(&value)?),
                "device_poll_interval" => self.device_poll_interval = Some(int(&value)?),
                "session_ttl" => self.session_ttl = Some(int(&value)?),
                "session_max_age" => self.session_max_age = Some(int(&value)?),
                "admin_idle_timeout" => self.admin_idle_timeout = Some(int(&value)?),
                "max_concurrent_password_hashes" => self.max_concurrent_password_hashes = Some(int(&value)?),
                "audit_retention_days" => self.audit_retention_days = Some(int(&value)?),
                // A list in the environment: comma-separated.
                "trusted_proxies" => self.trusted_proxies = Some(comma_list(&value)),
                "admin_hosts" => self.admin_hosts = Some(comma_list(&value)),
                "previous_keks" => self.previous_keks = Some(comma_list(&value)),
                "previous_kek_files" => self.previous_kek_files = Some(comma_list(&value)),
                "client_ip_header" => self.client_ip_header = Some(value),
                "rate_limit_login" => self.rate_limit_login = Some(value),
                "rate_limit_admin_login" => self.rate_limit_admin_login = Some(value),
                "rate_limit_token_ip" => self.rate_limit_token_ip = Some(value),
                "rate_limit_token_client" => self.rate_limit_token_client = Some(value),
                "rate_limit_revoke" => self.rate_limit_revoke = Some(value),
                "rate_limit_introspect" => self.rate_limit_introspect = Some(value),
                "rate_limit_account" => self.rate_limit_account = Some(value),
                "rate_limit_device" => self.rate_limit_device = Some(value),
                "rate_limit_register" => self.rate_limit_register = Some(value),
                "rate_limit_sessions" => self.rate_limit_sessions = Some(value),
                "registration" => self.registration = Some(value),
                "registration_scopes" => self.registration_scopes = Some(value),
                "registration_resources" => self.registration_resources = Some(comma_list(&value)),
                "outbound_allowed_networks" => self.outbound_allowed_networks = Some(comma_list(&value)),
                "registration_unused_client_days" => self.registration_unused_client_days = Some(int(&value)?),
                "lockout_threshold" => self.lockout_threshold = Some(int(&value)?),
                "lockout_base_delay" => self.lockout_base_delay = Some(int(&value)?),
                "lockout_max_delay" => self.lockout_max_delay = Some(int(&value)?),
                "lockout_account_threshold" => self.lockout_account_threshold = Some(int(&value)?),
                "lockout_account_max_delay" => self.lockout_account_max_delay = Some(int(&value)?),
                "audit_queue_size" => self.audit_queue_size = Some(int(&value)?),
                "tls_cert_file" => self.tls_cert_file = Some(value),
                "tls_key_file" => self.tls_key_file = Some(value),
                "webhook_max_attempts" => self.webhook_max_attempts = Some(int(&value)?),
                "webhook_retry_base" => self.webhook_retry_base = Some(int(&value)?),
                "header_read_timeout" => self.header_read_timeout = Some(int(&value)?),
                "request_timeout" => self.request_timeout = Some(int(&value)?),
                "max_connections_per_address" => self.max_connections_per_address = Some(int(&value)?),
                "insecure_allow_http_webhooks" => {
                    self.insecure_allow_http_webhooks = Some(boolean(&key, origins, &value)?);
                }
                "require_pushed_authorization_requests" => {
                    self.require_pushed_authorization_requests = Some(boolean(&key, origins, &value)?);
                }
                "require_signed_request_object" => {
                    self.require_signed_request_object = Some(boolean(&key, origins, &value)?);
                }
                "registration_require_pkce" => {
                    self.registration_require_pkce = Some(boolean(&key, origins, &value)?);
                }
                "registration_confirm_redirects" => {
                    self.registration_confirm_redirects = Some(boolean(&key, origins, &value)?);
                }
                "allow_unsigned_request_objects" => {
                    self.allow_unsigned_request_objects = Some(boolean(&key, origins, &value)?);
                }
                "strict_client_assertion_audience" => {
                    self.strict_client_assertion_audience = Some(boolean(&key, origins, &value)?);
                }
                "require_dpop_nonce" => self.require_dpop_nonce = Some(boolean(&key, origins, &value)?),
                _ => {}
            }
        }
        if self.database_url.is_none()
            && let Some(url) = database_url_fallback
        {
            origins.insert("database_url".into(), "DATABASE_URL".into());
            self.database_url = Some(url);
        }
        Ok(())
    }
}

/// A boolean setting from the environment: `true`/`1` or `false`/`0`.
fn boolean(key: &str, origins: &Origins, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(cfg_err(
            key,
            origins,
            format!("{other:?}: expected true or false (or 1 or 0)"),
        )),
    }
}
