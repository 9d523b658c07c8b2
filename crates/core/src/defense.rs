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
}

impl Default for DefenseSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            rate_limits: RateLimits::default(),
            lockout: LockoutPolicy::default(),
            audit_queue_size: 4096,
            webhooks: WebhookSettings::default(),
        }
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
