//! Time as an input: validators ask a [`Clock`], so tests pin it instead of sleeping.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where validators read the current time from: token expiry, cache lifetimes and the JWKS
/// refetch rate limit all use it.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock; the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until moved by hand, for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<SystemTime>);

impl FixedClock {
    /// A clock showing `at`.
    pub fn new(at: SystemTime) -> Self {
        Self(Mutex::new(at))
    }

    /// A clock showing the current system time, frozen there.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    /// Sets the clock.
    pub fn set(&self, at: SystemTime) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Seconds since the Unix epoch, as JWT `NumericDate`s count them (RFC 7519 §2); times
/// before 1970 count as 0.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The instant a JWT `NumericDate` names; negative values are the epoch and values past
/// the year 9999 are clamped there, so arithmetic on the result cannot overflow.
pub(crate) fn from_unix_seconds(secs: i64) -> SystemTime {
    const YEAR_9999: u64 = 253_402_300_799;
    let secs = u64::try_from(secs).unwrap_or(0).min(YEAR_9999);
    UNIX_EPOCH.checked_add(Duration::from_secs(secs)).unwrap_or(UNIX_EPOCH)
}
