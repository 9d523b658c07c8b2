//! Rate limits (DESIGN §5): one keyed GCRA limiter (the `governor` crate) per bucket —
//! login and admin sign-in per IP, the token endpoint per IP and per confidential client,
//! revocation and introspection per IP, the account page per IP. A refused request learns
//! how long to wait (`Retry-After`).
//!
//! Limiters live in the node's memory: with N nodes behind a balancer a client gets up
//! to N times the limit. That is acceptable for throttling (the point is to bound the
//! rate, not to count exactly); the account lockout, which must hold across nodes, is
//! kept in the store instead (`lockout`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::{Error, Result};

/// What a limit applies to; each bucket has its own limit and key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// `POST /login`, per client IP.
    LoginIp,
    /// The admin surface's sign-in, per client IP.
    AdminLoginIp,
    /// `POST /token`, per client IP.
    TokenIp,
    /// `POST /token`, per confidential client, counted once the client has authenticated
    /// (counting claimed ids would let anyone exhaust a client's allowance by its id).
    TokenClient,
    /// `POST /revoke`, per client IP.
    RevokeIp,
    /// `POST /introspect`, per client IP.
    IntrospectIp,
    /// Form posts of the account page (revoking sessions and applications), per IP.
    AccountIp,
    /// User codes entered on the device verification page (RFC 8628 §5.1: against
    /// guessing), per IP.
    DeviceIp,
    /// Clients registering themselves at `/register` (RFC 7591), per IP; IPv6 per /48,
    /// a whole site's allocation, as each registration is a row kept.
    RegisterIp,
    /// Rows the public pages keep for a browser, per IP: a new browser session (any page
    /// loaded without a live session cookie), and each authorization request kept
    /// waiting for the person to sign in or consent. Either lasts up to an hour.
    SessionIp,
}

/// The key an address is limited under: an IPv4 address as is, an IPv6 address by its
/// /64 prefix. One IPv6 host is normally given a whole /64 and can send from any address
/// in it, so limiting single IPv6 addresses (and locking out (account, address) pairs,
/// `lockout`) would give it 2^64 allowances. IPv4-mapped IPv6 addresses count as IPv4.
/// Anything else (no address known: "unknown") is used as is, bounded in length.
pub fn address_key(ip: &str) -> String {
    address_key_by(ip, 64)
}

/// `address_key`, with IPv6 addresses counted by their first `v6_bits` bits.
fn address_key_by(ip: &str, v6_bits: u32) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << (128 - v6_bits)) - 1);
                format!("{}/{v6_bits}", std::net::Ipv6Addr::from(prefix))
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.chars().take(128).collect(),
    }
}

impl Bucket {
    pub const ALL: [Bucket; 10] = [
        Self::LoginIp,
        Self::AdminLoginIp,
        Self::TokenIp,
        Self::TokenClient,
        Self::RevokeIp,
        Self::IntrospectIp,
        Self::AccountIp,
        Self::DeviceIp,
        Self::RegisterIp,
        Self::SessionIp,
    ];

    /// The configuration key of this bucket's limit.
    pub fn setting(self) -> &'static str {
        match self {
            Self::LoginIp => "rate_limit_login",
            Self::AdminLoginIp => "rate_limit_admin_login",
            Self::TokenIp => "rate_limit_token_ip",
            Self::TokenClient => "rate_limit_token_client",
            Self::RevokeIp => "rate_limit_revoke",
            Self::IntrospectIp => "rate_limit_introspect",
            Self::AccountIp => "rate_limit_account",
            Self::DeviceIp => "rate_limit_device",
            Self::RegisterIp => "rate_limit_register",
            Self::SessionIp => "rate_limit_sessions",
        }
    }

    /// Whether the bucket is keyed by the client's address (all but `TokenClient`).
    fn per_address(self) -> bool {
        self != Self::TokenClient
    }

    /// The default limit: generous for machine endpoints, tight for password forms.
    pub fn default_limit(self) -> Option<RateLimit> {
        let (count, per) = match self {
            Self::LoginIp => (30, 60),
            Self::AdminLoginIp => (10, 60),
            Self::TokenIp => (600, 60),
            Self::TokenClient => (1200, 60),
            Self::RevokeIp => (300, 60),
            Self::IntrospectIp => (3000, 60),
            Self::AccountIp => (60, 60),
            Self::DeviceIp => (10, 60),
            Self::RegisterIp => (20, 3600),
            // A sign-in takes two (its session, its request): as `LoginIp`'s 30.
            Self::SessionIp => (60, 60),
        };
        NonZeroU32::new(count).map(|count| RateLimit {
            count,
            per: Duration::from_secs(per),
        })
    }
}

/// `count` requests per `per`, with bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl RateLimit {
    /// Parses `30/min`, `5/s`, `1000/h`; `off` disables the limit (`None`).
    pub fn parse(s: &str) -> std::result::Result<Option<Self>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || format!("{s:?}: expected N/s, N/min, N/h (e.g. 30/min) or off");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count = n.trim().parse::<u32>().ok().and_then(NonZeroU32::new).ok_or_else(bad)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad()),
        };
        Ok(Some(Self {
            count,
            per: Duration::from_secs(per),
        }))
    }

    fn quota(self) -> Option<Quota> {
        Quota::with_period(self.per / self.count.get()).map(|q| q.allow_burst(self.count))
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per.as_secs() {
            1 => write!(f, "{}/s", self.count),
            3600 => write!(f, "{}/h", self.count),
            _ => write!(f, "{}/min", self.count),
        }
    }
}

/// The limit of each bucket; a missing entry means no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits(pub HashMap<Bucket, Option<RateLimit>>);

impl Default for RateLimits {
    fn default() -> Self {
        Self(Bucket::ALL.iter().map(|b| (*b, b.default_limit())).collect())
    }
}

impl RateLimits {
    pub fn set(&mut self, bucket: Bucket, limit: Option<RateLimit>) {
        self.0.insert(bucket, limit);
    }
    pub fn get(&self, bucket: Bucket) -> Option<RateLimit> {
        self.0.get(&bucket).copied().flatten()
    }
}

/// The node's limiters.
pub struct Throttle {
    limiters: HashMap<Bucket, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("buckets", &self.limiters.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Throttle {
    pub fn new(limits: &RateLimits) -> Self {
        let limiters = Bucket::ALL
            .iter()
            .filter_map(|b| {
                let quota = limits.get(*b)?.quota()?;
                Some((*b, DefaultKeyedRateLimiter::keyed(quota)))
            })
            .collect();
        Self {
            limiters,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `key` in `bucket`; `Error::RateLimited` with the whole
    /// seconds to wait when it is over the limit. A missing key (no peer address) is
    /// counted under one shared key, which errs on the side of limiting.
    pub fn check(&self, bucket: Bucket, key: Option<&str>) -> Result<()> {
        let Some(limiter) = self.limiters.get(&bucket) else {
            return Ok(());
        };
        let key = key.unwrap_or("unknown");
        let key = if bucket.per_address() {
            address_key_by(key, if bucket == Bucket::RegisterIp { 48 } else { 64 })
        } else {
            // Keys are untrusted input (client ids); bound what one entry can hold.
            key.chars().take(128).collect()
        };
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::debug!(?bucket, key = %key, retry_after, "rate limited");
            Error::RateLimited {
                retry_after: retry_after.max(1),
            }
        })
    }

    /// Forgets keys whose limiter is back to full: keeps memory bounded under a spray
    /// of distinct addresses or client ids. Called by the maintenance task.
    pub fn forget_idle(&self) {
        for limiter in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        let l = RateLimit::parse("30/min").unwrap().unwrap();
        assert_eq!(l.count.get(), 30);
        assert_eq!(l.per, Duration::from_secs(60));
        assert_eq!(l.to_string(), "30/min");
        assert_eq!(RateLimit::parse("5/s").unwrap().unwrap().per, Duration::from_secs(1));
        assert_eq!(RateLimit::parse("off").unwrap(), None);
        assert!(RateLimit::parse("0/min").is_err());
        assert!(RateLimit::parse("ten/min").is_err());
        assert!(RateLimit::parse("10/day").is_err());
    }

    #[test]
    fn over_the_limit_is_refused_with_a_wait_per_key() {
        let mut limits = RateLimits::default();
        limits.set(Bucket::LoginIp, RateLimit::parse("3/min").unwrap());
        limits.set(Bucket::TokenIp, None);
        let t = Throttle::new(&limits);
        for _ in 0..3 {
            t.check(Bucket::LoginIp, Some("192.0.2.1")).unwrap();
        }
        match t.check(Bucket::LoginIp, Some("192.0.2.1")) {
            Err(Error::RateLimited { retry_after }) => assert!((1..=20).contains(&retry_after), "{retry_after}"),
            other => panic!("{other:?}"),
        }
        // Another address has its own allowance; an unlimited bucket never refuses.
        t.check(Bucket::LoginIp, Some("192.0.2.2")).unwrap();
        for _ in 0..100 {
            t.check(Bucket::TokenIp, Some("192.0.2.1")).unwrap();
        }
        t.forget_idle();
    }

    #[test]
    fn an_ipv6_host_is_limited_by_its_64() {
        let mut limits = RateLimits::default();
        limits.set(Bucket::LoginIp, RateLimit::parse("3/min").unwrap());
        let t = Throttle::new(&limits);
        // Three addresses of one /64 share its allowance...
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:a:b:c:d"] {
            t.check(Bucket::LoginIp, Some(ip)).unwrap();
        }
        assert!(matches!(
            t.check(Bucket::LoginIp, Some("2001:db8:1:2:ffff::9")),
            Err(Error::RateLimited { .. })
        ));
        // ...another /64 has its own.
        t.check(Bucket::LoginIp, Some("2001:db8:1:3::1")).unwrap();
    }

    #[test]
    fn address_keys() {
        assert_eq!(address_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("unknown"), "unknown");
        assert_eq!(address_key(&"x".repeat(500)).len(), 128);
        assert_eq!(address_key_by("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::/48");
        assert_eq!(address_key_by("192.0.2.1", 48), "192.0.2.1");
    }

    #[test]
    fn registrations_count_per_ipv6_site() {
        let mut limits = RateLimits::default();
        limits.set(Bucket::RegisterIp, RateLimit::parse("1/h").unwrap());
        let t = Throttle::new(&limits);
        t.check(Bucket::RegisterIp, Some("2001:db8:1:2::1")).unwrap();
        // Another /64 of the same /48 shares the allowance...
        assert!(t.check(Bucket::RegisterIp, Some("2001:db8:1:ffff::1")).is_err());
        // ...another /48 has its own.
        t.check(Bucket::RegisterIp, Some("2001:db8:2::1")).unwrap();
    }
}
