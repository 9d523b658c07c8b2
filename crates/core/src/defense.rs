//! Settings of the defense-in-depth features (issue 6, DESIGN §5): trusted proxies, rate
//! limits, lockout, the audit queue and webhook delivery. Part of `CoreSettings`.

use std::time::Duration;

use crate::lockout::LockoutPolicy;
use crate::net::TrustedProxies;
use crate::throttle::RateLimits;

#[derive(Debug, Clone, PartialEq)]
pub struct DefenseSettings {
    pub trusted_proxies: TrustedProxies,
    pub rate_limits: RateLimits,
    pub lockout: LockoutPolicy,
    /// Capacity of the audit queue; when it is full, events are counted, logged and
    /// dropped instead of blocking requests.
    pub audit_queue_size: usize,
    pub webhooks: WebhookSettings,
    /// Host names the admin listener answers to, besides IP addresses and `localhost`
    /// (lower case, without port). Anything else is refused: a web page that points its
    /// own name at the listener's address (DNS rebinding) cannot drive it from an
    /// operator's browser.
    pub admin_hosts: Vec<String>,
}

impl Default for DefenseSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            rate_limits: RateLimits::default(),
            lockout: LockoutPolicy::default(),
            audit_queue_size: 4096,
            webhooks: WebhookSettings::default(),
            admin_hosts: Vec::new(),
        }
    }
}

/// Whether the admin listener answers a request whose `Host` is `host` (with or without
/// port): an IP address, `localhost`, or one of `admin_hosts`. A name an attacker's DNS
/// can point at the listener is refused unless the operator named it.
pub fn admin_host_allowed(host: &str, admin_hosts: &[String]) -> bool {
    // `Host` is `uri-host [":" port]` (RFC 9110 §7.2); a port is digits, and not empty here.
    let port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let name = match host.strip_prefix('[') {
        // An IPv6 literal, `[..]` with an optional port.
        Some(rest) => {
            return rest.split_once(']').is_some_and(|(ip, after)| {
                ip.parse::<std::net::Ipv6Addr>().is_ok()
                    && (after.is_empty() || after.strip_prefix(':').is_some_and(port))
            });
        }
        None => match host.rsplit_once(':') {
            Some((name, p)) if port(p) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok() || name == "localhost" || admin_hosts.contains(&name)
}

/// A host name for `admin_hosts`, lower-cased; an error for anything but a DNS name.
pub fn parse_admin_host(name: &str) -> Result<String, String> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(name)
    } else {
        Err(format!(
            "{name:?} is not a host name (no scheme, port or path; internationalized names in punycode)"
        ))
    }
}

/// How webhook deliveries are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Attempts per event and webhook, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one, at most an hour.
    pub retry_base: Duration,
    /// How often the worker looks for due deliveries.
    pub poll_interval: Duration,
    /// Per-attempt timeout, connection included.
    pub timeout: Duration,
    /// Allows `http://` receivers on loopback addresses. For tests and local
    /// development only: deliveries carry audit data.
    pub insecure_allow_http: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            insecure_allow_http: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_hosts() {
        let named = vec!["admin.example.com".to_owned()];
        for ok in [
            "127.0.0.1:9091",
            "127.0.0.1",
            "10.1.2.3:80",
            "[::1]:9091",
            "[::1]",
            "localhost:9091",
            "LOCALHOST",
            "localhost.",
            "admin.example.com",
            "Admin.Example.com:443",
            "admin.example.com.:443",
        ] {
            assert!(admin_host_allowed(ok, &named), "{ok}");
        }
        for refused in [
            "rebind.attacker.example:9091",
            "admin.example.com.evil",
            "localhost.evil.example",
            "[::1",
            "[nonsense]:1",
            "127.0.0.1.nip.io",
            "",
            "[::1]evil.example",
            "[::1]:",
            "[::1]:80x",
            "localhost:evil",
            "127.0.0.1:",
            "a:b@localhost",
        ] {
            assert!(!admin_host_allowed(refused, &named), "{refused}");
        }
        assert_eq!(parse_admin_host(" Admin.Example.COM. ").unwrap(), "admin.example.com");
        for bad in [
            "https://a.example",
            "a.example:443",
            "a..example",
            "-a.example",
            "a.example/x",
            "",
        ] {
            assert!(parse_admin_host(bad).is_err(), "{bad}");
        }
    }
}
