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
use std::sync::{Arc, Mutex, Weak};

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
    /// This pair's failures when the attempt began.
    pair_failures: u32,
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

/// The sign-in attempts in progress on this node, one at a time per account. The map
/// holds weak references: an account's lock lives as long as an attempt holds or waits
/// for it, and an entry whose attempts were all cancelled while waiting is pruned once
/// the map grows.
#[derive(Debug, Default)]
pub struct InFlight {
    accounts: Mutex<HashMap<Digest, Weak<tokio::sync::Mutex<()>>>>,
}

/// Attempts that may wait behind the one running on an account; more are refused at once.
const MAX_WAITING_PER_ACCOUNT: usize = 8;
/// The longest an attempt waits for its turn before it is refused (a password check can
/// itself wait up to 10 s for a hashing thread).
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// Entries kept before dead ones are pruned.
const PRUNE_AT: usize = 1024;

/// One attempt's turn on its account; the next attempt's starts when it is dropped.
#[derive(Debug)]
struct Turn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    key: Digest,
    owner: Arc<InFlight>,
}

impl InFlight {
    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Weak<tokio::sync::Mutex<()>>>> {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for the account's turn; `Error::RateLimited` when too many attempts already
    /// wait on it or the wait is too long.
    async fn turn(self: &Arc<Self>, key: Digest) -> Result<Turn> {
        let lock = {
            let mut accounts = self.accounts();
            if accounts.len() >= PRUNE_AT {
                accounts.retain(|_, lock| lock.strong_count() > 0);
            }
            match accounts.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    accounts.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        let busy = Error::RateLimited { retry_after: 1 };
        // This attempt, the running one and those waiting.
        if Arc::strong_count(&lock) > MAX_WAITING_PER_ACCOUNT + 1 {
            return Err(busy);
        }
        let guard = tokio::time::timeout(TURN_WAIT, lock.lock_owned())
            .await
            .map_err(|_| busy)?;
        Ok(Turn {
            guard: Some(guard),
            key,
            owner: Arc::clone(self),
        })
    }

    /// Accounts with an attempt running or waiting (for tests).
    pub fn len(&self) -> usize {
        self.accounts().values().filter(|lock| lock.strong_count() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut accounts = self.owner.accounts();
        // Nobody runs or waits on this account any more.
        if accounts.get(&self.key).is_some_and(|lock| lock.strong_count() == 0) {
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
        let turn = self.login_attempts.turn(account_key).await?;
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
                        "username": crate::users::as_typed(username),
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
            pair_failures: current(&pair).map_or(0, |f| f.failures),
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

    /// Forgets the failures of a pair that just signed in, and takes them off the
    /// account-wide count: those were the user's own typos, where the failures from other
    /// addresses say nothing the success answers. Clearing the whole account-wide count
    /// instead would tell an attacker, through when they are locked next, that the
    /// account exists and its owner signed in.
    pub async fn lockout_succeeded(&self, attempt: &Attempt) -> Result<()> {
        if attempt.pair_failures > 0 {
            self.store.clear_login_failures(&attempt.key).await?;
            self.store
                .forget_login_failures(&attempt.account_key, attempt.pair_failures)
                .await?;
        }
        Ok(())
    }

    /// Admin sign-in with the throttle and lockout in front of `admin_login`: per address
    /// (`rate_limit_admin_login`), and the two-tier backoff (per username and address,
    /// per username from all addresses) of the admin realm.
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
        let first = inflight.turn(alice).await.unwrap();
        // Another account does not wait.
        let bob = inflight.turn(account_lock_key(Realm::User, "bob")).await.unwrap();
        drop(bob);
        let waiting = tokio::spawn({
            let inflight = Arc::clone(&inflight);
            async move { inflight.turn(alice).await.unwrap() }
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
        assert!(inflight.accounts().is_empty());
    }

    #[tokio::test]
    async fn a_queue_on_one_account_is_bounded() {
        let inflight = Arc::new(InFlight::default());
        let alice = account_lock_key(Realm::User, "alice");
        let running = inflight.turn(alice).await.unwrap();
        let waiters: Vec<_> = (0..MAX_WAITING_PER_ACCOUNT)
            .map(|_| {
                let inflight = Arc::clone(&inflight);
                tokio::spawn(async move { inflight.turn(alice).await.map(drop) })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // One more than the queue holds: refused at once, before any store read.
        let refused = tokio::time::timeout(std::time::Duration::from_secs(1), inflight.turn(alice))
            .await
            .expect("refused without waiting");
        assert!(matches!(refused, Err(Error::RateLimited { retry_after: 1 })));
        // Waiters that give up (their request was cancelled) leave nothing behind.
        for w in &waiters {
            w.abort();
        }
        for w in waiters {
            let _ = w.await;
        }
        drop(running);
        assert!(inflight.is_empty());
        let other = inflight.turn(account_lock_key(Realm::User, "bob")).await.unwrap();
        drop(other);
        assert!(inflight.accounts().is_empty(), "{:?}", inflight.accounts().len());
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
