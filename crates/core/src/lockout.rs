//! Failed-login lockout (DESIGN §5): after a few failures, each further attempt for the
//! same account *from the same address* must wait, doubling with every failure up to a
//! cap. Keying on account and address means an attacker elsewhere cannot lock the real
//! user out, and the cap bounds the harm to a user behind the attacker's NAT. Unknown
//! usernames are counted exactly like real ones, so the lockout reveals nothing about
//! which accounts exist; a locked attempt is refused before any password hash runs.
//!
//! Counts live in the store (digest-keyed), so every node applies the same backoff.

use portcullis_protocol::Secret;
use time::{Duration, OffsetDateTime};

use crate::audit::Event;
use crate::crypto::sha256;
use crate::error::{Error, Result};
use crate::model::{Admin, Digest, LoginFailures};
use crate::service::Portcullis;
use crate::throttle::{Bucket, address_key};

/// How failures turn into waiting time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed before any wait.
    pub threshold: u32,
    /// Wait after the `threshold`-th failure; doubled with each further failure.
    pub base_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// A count whose last failure is this old starts again from zero.
    pub reset_after: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            reset_after: Duration::hours(24),
        }
    }
}

impl LockoutPolicy {
    /// Until when the pair is locked after `f`, if it is.
    pub fn locked_until(&self, f: &LoginFailures) -> Option<OffsetDateTime> {
        if f.failures < self.threshold.max(1) {
            return None;
        }
        let doublings = (f.failures - self.threshold.max(1)).min(40);
        let delay = self
            .base_delay
            .checked_mul(1_i32 << doublings.min(30))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        Some(f.last_failure_at + delay)
    }
}

/// Who is signing in, for the lockout key and the audit event names.
/// A store may keep whole seconds (SQLite does). Rounded up, a failure's recorded time
/// never moves earlier than the failure, so a wait is never shorter than the policy says
/// (truncated, a 1 s wait could end a few milliseconds after it began).
fn whole_second_up(t: OffsetDateTime) -> OffsetDateTime {
    match t.replace_nanosecond(0) {
        Ok(whole) if whole < t => whole + Duration::seconds(1),
        _ => t,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    User,
    Admin,
}

impl Realm {
    fn tag(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
    fn locked_event(self) -> &'static str {
        match self {
            Self::User => "login.locked_out",
            Self::Admin => "admin.login.locked_out",
        }
    }
}

/// The lockout state of one sign-in attempt, between the check and the outcome.
#[derive(Debug)]
pub struct Attempt {
    key: Digest,
    had_failures: bool,
}

/// The lockout is per (account, address); an IPv6 address counts by its /64, like the
/// rate limits (`throttle::address_key`).
fn lock_key(realm: Realm, username: &str, ip: Option<&str>) -> Digest {
    let username = username.trim().to_lowercase();
    let address = address_key(ip.unwrap_or("unknown"));
    sha256(format!("{}\n{}\n{}", realm.tag(), username, address).as_bytes())
}

impl Portcullis {
    /// Refuses the attempt (`Error::RateLimited`, and a `…locked_out` audit event) while
    /// the (account, address) pair is locked.
    pub async fn lockout_check(&self, realm: Realm, username: &str, ip: Option<&str>) -> Result<Attempt> {
        let key = lock_key(realm, username, ip);
        let failures = self.store.get_login_failures(&key).await?;
        let now = self.now();
        if let Some(f) = failures
            && now - f.last_failure_at < self.settings.defense.lockout.reset_after
            && let Some(until) = self.settings.defense.lockout.locked_until(&f)
            && until > now
        {
            let retry_after = u64::try_from((until - now).whole_seconds()).unwrap_or(0).max(1);
            self.audit(
                Event::new(realm.locked_event())
                    .ip(ip.map(str::to_owned))
                    .detail(serde_json::json!({
                        "username": username.trim(),
                        "failures": f.failures,
                        "retry_after": retry_after,
                    })),
            );
            return Err(Error::RateLimited { retry_after });
        }
        Ok(Attempt {
            key,
            had_failures: failures.is_some(),
        })
    }

    /// Counts a failed attempt.
    pub async fn lockout_failed(&self, attempt: &Attempt) -> Result<()> {
        let now = whole_second_up(self.now());
        let reset_before = now - self.settings.defense.lockout.reset_after;
        self.store.record_login_failure(&attempt.key, now, reset_before).await?;
        Ok(())
    }

    /// Forgets the failures of a pair that just signed in.
    pub async fn lockout_succeeded(&self, attempt: &Attempt) -> Result<()> {
        if attempt.had_failures {
            self.store.clear_login_failures(&attempt.key).await?;
        }
        Ok(())
    }

    /// Admin sign-in with the throttle and lockout in front of `admin_login`: per address
    /// (`rate_limit_admin_login`) and per (username, address) backoff.
    pub async fn admin_sign_in(&self, username: &str, password: &Secret, ip: Option<String>) -> Result<Admin> {
        self.throttle.check(Bucket::AdminLoginIp, ip.as_deref())?;
        let attempt = self.lockout_check(Realm::Admin, username, ip.as_deref()).await?;
        match self.admin_login(username, password, ip).await {
            Ok(admin) => {
                self.lockout_succeeded(&attempt).await?;
                Ok(admin)
            }
            Err(Error::BadCredentials) => {
                self.lockout_failed(&attempt).await?;
                Err(Error::BadCredentials)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn delays_double_from_the_threshold_up_to_the_cap() {
        let p = LockoutPolicy::default();
        let at = datetime!(2030-01-01 0:00 UTC);
        let until = |failures| {
            p.locked_until(&LoginFailures {
                failures,
                last_failure_at: at,
            })
        };
        assert_eq!(until(4), None);
        assert_eq!(until(5), Some(at + Duration::seconds(1)));
        assert_eq!(until(6), Some(at + Duration::seconds(2)));
        assert_eq!(until(10), Some(at + Duration::seconds(32)));
        assert_eq!(until(15), Some(at + Duration::minutes(15)));
        assert_eq!(until(u32::MAX), Some(at + Duration::minutes(15)));
    }

    #[test]
    fn failure_times_round_up_to_whole_seconds() {
        let whole = datetime!(2030-01-01 0:00:05 UTC);
        assert_eq!(whole_second_up(whole), whole);
        assert_eq!(
            whole_second_up(datetime!(2030-01-01 0:00:05.001 UTC)),
            datetime!(2030-01-01 0:00:06 UTC)
        );
        assert_eq!(
            whole_second_up(datetime!(2030-01-01 0:00:05.999999 UTC)),
            datetime!(2030-01-01 0:00:06 UTC)
        );
    }

    #[test]
    fn keys_fold_case_and_separate_addresses_and_realms() {
        assert_eq!(
            lock_key(Realm::User, "Alice", Some("192.0.2.1")),
            lock_key(Realm::User, " alice", Some("192.0.2.1"))
        );
        assert_ne!(
            lock_key(Realm::User, "alice", Some("192.0.2.1")),
            lock_key(Realm::User, "alice", Some("192.0.2.2"))
        );
        assert_ne!(
            lock_key(Realm::User, "alice", None),
            lock_key(Realm::Admin, "alice", None)
        );
        // One IPv6 /64 is one address; another /64 is another.
        assert_eq!(
            lock_key(Realm::User, "alice", Some("2001:db8:1:2::1")),
            lock_key(Realm::User, "alice", Some("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            lock_key(Realm::User, "alice", Some("2001:db8:1:2::1")),
            lock_key(Realm::User, "alice", Some("2001:db8:1:3::1"))
        );
    }
}
