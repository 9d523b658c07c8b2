//! Failed-login lockout (DESIGN §5: per address and per account), in two tiers:
//!
//! - **Per (account, address).** After a few failures, each further attempt for the same
//!   account *from the same address* must wait, doubling with every failure up to a cap.
//!   An attacker elsewhere cannot lock the real user out this way, and the cap bounds the
//!   harm to a user behind the attacker's NAT.
//! - **Per account, from all addresses.** Guessing spread over many addresses (a botnet, a
//!   pool of proxies) gets a few free failures from each address; a higher threshold
//!   counted over all of them makes every further attempt on that account wait too, with
//!   a shorter cap. This bounds distributed guessing to about one attempt per cap per
//!   account; the price, paid only while such an attack goes on, is that the real user
//!   may have to wait up to that cap as well.
//!
//! Unknown usernames are counted exactly like real ones, so the lockout reveals nothing
//! about which accounts exist; a locked attempt is refused before any password hash runs.
//!
//! Counts live in the store (digest-keyed), so every node applies the same backoff. On a
//! node, attempts on one account run one at a time from the check to the recorded outcome
//! ([`InFlight`]): otherwise a burst of simultaneous guesses would all pass the check
//! before the first failure was recorded, and get the throttle's burst instead of the
//! threshold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// Failures of one account, from all addresses together, allowed before any wait.
    pub account_threshold: u32,
    /// The longest wait of the account-wide tier.
    pub account_max_delay: Duration,
    /// A count whose last failure is this old starts again from zero.
    pub reset_after: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            account_threshold: 20,
            account_max_delay: Duration::minutes(5),
            reset_after: Duration::hours(24),
        }
    }
}

impl LockoutPolicy {
    /// Until when the (account, address) pair is locked after `f`, if it is.
    pub fn locked_until(&self, f: &LoginFailures) -> Option<OffsetDateTime> {
        self.backoff(f, self.threshold, self.max_delay)
    }

    /// Until when the account is locked for every address after `f`, if it is.
    pub fn account_locked_until(&self, f: &LoginFailures) -> Option<OffsetDateTime> {
        self.backoff(f, self.account_threshold, self.account_max_delay)
    }

    fn backoff(&self, f: &LoginFailures, threshold: u32, max_delay: Duration) -> Option<OffsetDateTime> {
        let threshold = threshold.max(1);
        if f.failures < threshold {
            return None;
        }
        let doublings = (f.failures - threshold).min(30);
        let delay = self
            .base_delay
            .checked_mul(1_i32 << doublings)
            .unwrap_or(max_delay)
            .min(max_delay);
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

/// The lockout state of one sign-in attempt, between the check and the outcome. While it
/// lives, other attempts on the same account wait at [`Portcullis::lockout_check`].
#[derive(Debug)]
pub struct Attempt {
    key: Digest,
    account_key: Digest,
    had_failures: bool,
    /// The account's failures below its threshold, which a success forgets.
    account_failures_below_threshold: bool,
    _turn: Turn,
}

/// The pair tier is per (account, address); an IPv6 address counts by its /64, like the
/// rate limits (`throttle::address_key`).
fn lock_key(realm: Realm, username: &str, ip: Option<&str>) -> Digest {
    let username = username.trim().to_lowercase();
    let address = address_key(ip.unwrap_or("unknown"));
    sha256(format!("{}\n{}\n{}", realm.tag(), username, address).as_bytes())
}

/// The account tier's key. Its first line is never a pair key's first line (the realm's
/// tag alone), so no username and address make a pair key equal to it.
fn account_lock_key(realm: Realm, username: &str) -> Digest {
    let username = username.trim().to_lowercase();
    sha256(format!("{} account\n{}", realm.tag(), username).as_bytes())
}

/// The sign-in attempts in progress on this node, one at a time per account.
#[derive(Debug, Default)]
pub struct InFlight {
    accounts: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

/// One attempt's turn on its account; the next attempt's starts when it is dropped.
#[derive(Debug)]
struct Turn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    key: Digest,
    owner: Arc<InFlight>,
}

impl InFlight {
    async fn turn(self: &Arc<Self>, key: Digest) -> Turn {
        let lock = {
            let mut accounts = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(accounts.entry(key).or_default())
        };
        Turn {
            guard: Some(lock.lock_owned().await),
            key,
            owner: Arc::clone(self),
        }
    }

    /// Accounts with an attempt running or waiting (for tests).
    pub fn len(&self) -> usize {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut accounts = self
            .owner
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the map holds it: nobody runs or waits on this account any more. A waiter
        // clones the lock under the map's mutex before it waits, so it is counted here.
        if accounts.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            accounts.remove(&self.key);
        }
    }
}

impl Portcullis {
    /// Refuses the attempt (`Error::RateLimited`, and a `…locked_out` audit event) while
    /// the (account, address) pair or the account as a whole is locked. Waits first for
    /// any other attempt on the same account on this node to finish.
    pub async fn lockout_check(&self, realm: Realm, username: &str, ip: Option<&str>) -> Result<Attempt> {
        let key = lock_key(realm, username, ip);
        let account_key = account_lock_key(realm, username);
        let turn = self.login_attempts.turn(account_key).await;
        let pair = self.store.get_login_failures(&key).await?;
        let account = self.store.get_login_failures(&account_key).await?;
        let policy = &self.settings.defense.lockout;
        let now = self.now();
        let current = |f: &Option<LoginFailures>| f.filter(|f| now - f.last_failure_at < policy.reset_after);
        let locks = [
            (
                "address",
                current(&pair).and_then(|f| Some((f, policy.locked_until(&f)?))),
            ),
            (
                "account",
                current(&account).and_then(|f| Some((f, policy.account_locked_until(&f)?))),
            ),
        ];
        if let Some((scope, (f, until))) = locks
            .into_iter()
            .filter_map(|(scope, lock)| Some((scope, lock?)))
            .filter(|(_, (_, until))| *until > now)
            .max_by_key(|(_, (_, until))| *until)
        {
            let retry_after = u64::try_from((until - now).whole_seconds()).unwrap_or(0).max(1);
            self.audit(
                Event::new(realm.locked_event())
                    .ip(ip.map(str::to_owned))
                    .detail(serde_json::json!({
                        "username": username.trim(),
                        "scope": scope,
                        "failures": f.failures,
                        "retry_after": retry_after,
                    })),
            );
            return Err(Error::RateLimited { retry_after });
        }
        Ok(Attempt {
            key,
            account_key,
            had_failures: pair.is_some(),
            account_failures_below_threshold: account.is_some_and(|f| f.failures < policy.account_threshold),
            _turn: turn,
        })
    }

    /// Counts a failed attempt, for the pair and for the account.
    pub async fn lockout_failed(&self, attempt: &Attempt) -> Result<()> {
        let now = whole_second_up(self.now());
        let reset_before = now - self.settings.defense.lockout.reset_after;
        self.store.record_login_failure(&attempt.key, now, reset_before).await?;
        self.store
            .record_login_failure(&attempt.account_key, now, reset_before)
            .await?;
        Ok(())
    }

    /// Forgets the failures of a pair that just signed in, and the account's while they
    /// are below its threshold (a user's own typing mistakes). Once the account has
    /// reached its threshold, a success from one address says nothing about the guesses
    /// from the others: that count stays until its last failure is a day old.
    pub async fn lockout_succeeded(&self, attempt: &Attempt) -> Result<()> {
        if attempt.had_failures {
            self.store.clear_login_failures(&attempt.key).await?;
        }
        if attempt.account_failures_below_threshold {
            self.store.clear_login_failures(&attempt.account_key).await?;
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
    fn the_account_tier_starts_later_and_caps_lower() {
        let p = LockoutPolicy::default();
        let at = datetime!(2030-01-01 0:00 UTC);
        let until = |failures| {
            p.account_locked_until(&LoginFailures {
                failures,
                last_failure_at: at,
            })
        };
        assert_eq!(until(19), None);
        assert_eq!(until(20), Some(at + Duration::seconds(1)));
        assert_eq!(until(24), Some(at + Duration::seconds(16)));
        assert_eq!(until(29), Some(at + Duration::minutes(5)));
        assert_eq!(until(u32::MAX), Some(at + Duration::minutes(5)));
    }

    #[tokio::test]
    async fn attempts_on_one_account_take_turns() {
        let inflight = Arc::new(InFlight::default());
        let alice = account_lock_key(Realm::User, "alice");
        let first = inflight.turn(alice).await;
        // Another account does not wait.
        let bob = inflight.turn(account_lock_key(Realm::User, "bob")).await;
        drop(bob);
        let waiting = tokio::spawn({
            let inflight = Arc::clone(&inflight);
            async move { inflight.turn(alice).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a second attempt on alice ran beside the first");
        assert_eq!(inflight.len(), 1);
        drop(first);
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the second attempt got its turn")
            .unwrap();
        assert_eq!(inflight.len(), 1);
        drop(second);
        assert!(inflight.is_empty(), "finished accounts are forgotten");
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
        // The account tier: every address, one key; not any pair's key.
        assert_eq!(
            account_lock_key(Realm::User, "Alice "),
            account_lock_key(Realm::User, "alice")
        );
        assert_ne!(
            account_lock_key(Realm::User, "alice"),
            account_lock_key(Realm::Admin, "alice")
        );
        assert_ne!(
            account_lock_key(Realm::User, "alice"),
            lock_key(Realm::User, "alice", Some("all addresses"))
        );
        assert_ne!(account_lock_key(Realm::User, "x"), lock_key(Realm::User, "", Some("x")));
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
