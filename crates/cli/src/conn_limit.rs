//! How many connections the listeners hold at once, per client address and in all.
//!
//! Every open connection costs a file descriptor, and the process has a fixed number of
//! them. Unbounded, one host opening connections faster than `header_read_timeout`
//! closes them used every descriptor: the server could then accept nobody else (each
//! accept failed with "too many open files"), and could not open a database connection,
//! read a file or call a webhook either. Here one address (IPv6: one /64, as for the
//! rate limits) holds at most `max_connections_per_address`, a new connection past it is
//! closed at once; and all together hold at most the descriptor limit less a reserve for
//! everything else the process opens. Trusted proxies (`trusted_proxies`) have no
//! per-address cap: every client behind them shares their address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::net::{TrustedProxies, limit_key};
use tokio::net::{TcpListener, TcpStream};

/// Descriptors kept back from connections: the database pool (ten, or the SQLite file
/// and its journal), listeners, the log, webhook and JWKS fetches, files read.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The limits and the connections open now.
#[derive(Debug)]
pub struct ConnectionLimit {
    per_address: u32,
    total: usize,
    exempt: TrustedProxies,
    by_address: Mutex<HashMap<IpAddr, u32>>,
    open: AtomicUsize,
    /// When a refusal was last logged (seconds since the Unix epoch), so a flood logs
    /// one line a minute rather than one per connection.
    last_warned: AtomicU64,
}

impl ConnectionLimit {
    /// `per_address` connections per client address; `total`: all together, normally
    /// `total_for_descriptors()`.
    pub fn new(per_address: u32, total: usize, exempt: TrustedProxies) -> Arc<Self> {
        Arc::new(Self {
            per_address,
            total,
            exempt,
            by_address: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            last_warned: AtomicU64::new(0),
        })
    }

    /// A connection from `peer` may stay open while the permit lives; `None`: close it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Permit> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.warn(format_args!(
                "{} connections are open, the most the file descriptor limit allows; closing new ones",
                self.total
            ));
            return None;
        }
        let mut permit = Permit {
            limit: Arc::clone(self),
            key: None,
        };
        if self.exempt.is_trusted(peer) {
            return Some(permit);
        }
        let key = limit_key(peer);
        let Ok(mut counts) = self.by_address.lock() else {
            return Some(permit);
        };
        let count = counts.entry(key).or_insert(0);
        if *count >= self.per_address {
            drop(counts);
            self.warn(format_args!(
                "{key} holds {} connections (max_connections_per_address); closing its new ones",
                self.per_address
            ));
            // Dropping `permit` gives its share of `open` back.
            return None;
        }
        *count += 1;
        permit.key = Some(key);
        Some(permit)
    }

    fn warn(&self, message: std::fmt::Arguments<'_>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warned.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("{message} (logged at most once a minute)");
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// Raises the process's soft limit on open files to its hard limit (many systems start
/// services at 1,024) and returns how many connections that leaves room for.
pub fn total_for_descriptors() -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open file limit");
            match rlimit::Resource::NOFILE.get() {
                Ok((soft, _)) => soft,
                Err(_) => return usize::MAX,
            }
        }
    };
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(RESERVED_DESCRIPTORS);
    tracing::debug!(open_files = limit, connections = room, "open file limit");
    usize::try_from(room).unwrap_or(usize::MAX)
}

/// One admitted connection's share; given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limit: Arc<ConnectionLimit>,
    key: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(key) = self.key
            && let Ok(mut counts) = self.limit.by_address.lock()
            && let Some(count) = counts.get_mut(&key)
        {
            *count -= 1;
            if *count == 0 {
                counts.remove(&key);
            }
        }
        self.limit.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The next connection on `listener` that `limit` admits. Connections it refuses are
/// closed at once; accept errors are waited out (out of descriptors: a moment, so the
/// loop does not spin) or skipped (a connection reset before it was accepted).
pub async fn accept(listener: &TcpListener, limit: &Arc<ConnectionLimit>) -> (TcpStream, SocketAddr, Permit) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Some(permit) = limit.admit(peer.ip()) {
                    return (stream, peer, permit);
                }
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                limit.warn(format_args!("accepting a connection failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Errors of the one connection being accepted, not of the listener (as `axum::serve`).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_and_total() {
        let proxies = TrustedProxies {
            networks: vec![TrustedProxies::parse_network("10.0.0.1").unwrap()],
            ..TrustedProxies::default()
        };
        let limit = ConnectionLimit::new(2, 5, proxies);
        let a1 = limit.admit(ip("192.0.2.1")).unwrap();
        let _a2 = limit.admit(ip("192.0.2.1")).unwrap();
        assert!(limit.admit(ip("192.0.2.1")).is_none());
        // The same IPv4 address written as IPv6, and another address of the /64.
        assert!(limit.admit(ip("::ffff:192.0.2.1")).is_none());
        let _b1 = limit.admit(ip("2001:db8::1")).unwrap();
        let _b2 = limit.admit(ip("2001:db8::2")).unwrap();
        assert!(limit.admit(ip("2001:db8::3")).is_none());
        assert_eq!(limit.open(), 4);
        // A trusted proxy has no cap of its own, but counts toward the total.
        let _p1 = limit.admit(ip("10.0.0.1")).unwrap();
        assert!(limit.admit(ip("10.0.0.1")).is_none());
        assert!(limit.admit(ip("198.51.100.1")).is_none());
        // Closing one makes room for its address again.
        drop(a1);
        assert_eq!(limit.open(), 4);
        let _a3 = limit.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(limit.open(), 5);
    }

    #[test]
    fn counts_are_dropped_with_their_connections() {
        let limit = ConnectionLimit::new(1, 100, TrustedProxies::default());
        let permits: Vec<Permit> = (0..50)
            .map(|i| limit.admit(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        assert_eq!(limit.by_address.lock().unwrap().len(), 50);
        drop(permits);
        assert_eq!(limit.open(), 0);
        assert!(limit.by_address.lock().unwrap().is_empty());
    }
}
