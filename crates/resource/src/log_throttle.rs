//! Log lines for failures that every request meets during an outage (the authorization
//! server unreachable, keys too old to trust): one a period, with how many were left out,
//! so an outage, or an attacker's flood of tokens during one, does not flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How often such a line is written at most.
pub(crate) const PERIOD: Duration = Duration::from_secs(10);

pub(crate) struct Throttled {
    /// When the last line was written, in seconds since the Unix epoch (0: never).
    last: AtomicU64,
    /// Lines left out since then.
    left_out: AtomicU64,
}

impl Throttled {
    pub(crate) const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// `Some(lines left out since the last one)` when this line is to be written, at
    /// `now`; `None` when it is one to leave out.
    pub(crate) fn admit(&self, now: SystemTime) -> Option<u64> {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .max(1);
        let last = self.last.load(Ordering::Relaxed);
        // A clock that went back admits a line, as does the period's end.
        let due = last == 0 || now < last || now - last >= PERIOD.as_secs();
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::Relaxed));
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_period_with_the_count_left_out() {
        let t = Throttled::new();
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s);
        assert_eq!(t.admit(at(0)), Some(0));
        assert_eq!(t.admit(at(1)), None);
        assert_eq!(t.admit(at(9)), None);
        assert_eq!(t.admit(at(10)), Some(2));
        assert_eq!(t.admit(at(11)), None);
        // The clock went back: admitted.
        assert_eq!(t.admit(at(5)), Some(1));
    }
}
