//! How many connections the listeners hold at once, per client address and in all.
//!
//! Every open connection costs a file descriptor, and the process has a fixed number of
//! them. Unbounded, one host opening connections faster than `header_read_timeout`
//! closes them used every descriptor: the server could then accept nobody else (each
//! accept failed with "too many open files"), and could not open a database connection,
//! read a file or call a webhook either. Here one address (IPv6: one /64, as for the
//! rate limits) holds at most `max_connections_per_address`, a new connection past it is
//! closed at once; and all together hold at most the descriptor limit less a reserve for
//! everything else the process opens, of which the public listener may fill all but a
//! few, kept for the admin listener so operators can still reach it during a flood.
//! Trusted proxies (`trusted_proxies`) have no per-address cap: every client behind them
//! shares their address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::net::{TrustedProxies, limit_key};
use tokio::net::{TcpListener, TcpStream};

/// Descriptors kept back from connections: the database pool (ten, or the SQLite file
/// and its journal), listeners, the log, webhook and JWKS fetches, files read. A quarter
/// of the limit where that is less (a limit this low is warned about).
const RESERVED_DESCRIPTORS: u64 = 256;

/// Connections only the admin listener may open once the public one has filled its
/// share (an eighth of the total where that is less).
const ADMIN_HEADROOM: usize = 64;

/// What a refusal was for; each kind is logged at most once a minute.
#[derive(Debug, Clone, Copy)]
enum Warning {
    PerAddress = 0,
    Total = 1,
    Accept = 2,
}

/// The limits and the connections open now.
#[derive(Debug)]
pub struct ConnectionLimit {
    per_address: u32,
    total: usize,
    exempt: TrustedProxies,
    by_address: Mutex<HashMap<IpAddr, u32>>,
    open: AtomicUsize,
    /// When each kind of `Warning` was last logged (seconds since the Unix epoch), so a
    /// flood logs a line a minute rather than one per connection, and one kind does not
    /// hide another.
    last_warned: [AtomicU64; 3],
}

/// Which listener a connection came in on (`ConnectionLimit::gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Public,
    Admin,
}

/// One listener's way in: the shared limit, and how many connections may be open in all
/// when this listener admits one.
#[derive(Debug, Clone)]
pub struct Gate {
    limit: Arc<ConnectionLimit>,
    ceiling: usize,
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
            last_warned: Default::default(),
        })
    }

    /// The way in for `surface`'s listener: the public one stops short of the total by
    /// the admin headroom.
    pub fn gate(self: &Arc<Self>, surface: Surface) -> Gate {
        let ceiling = match surface {
            Surface::Admin => self.total,
            Surface::Public => self.total - ADMIN_HEADROOM.min(self.total / 8),
        };
        Gate {
            limit: Arc::clone(self),
            ceiling,
        }
    }

    fn warn(&self, kind: Warning, message: std::fmt::Arguments<'_>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let slot = &self.last_warned[kind as usize];
        let last = slot.load(Ordering::Relaxed);
        if now >= last + 60
            && slot
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

impl Gate {
    /// A connection from `peer` may stay open while the permit lives; `None`: close it.
    pub fn admit(&self, peer: IpAddr) -> Option<Permit> {
        let limit = &self.limit;
        if limit.open.fetch_add(1, Ordering::AcqRel) >= self.ceiling {
            limit.open.fetch_sub(1, Ordering::AcqRel);
            limit.warn(
                Warning::Total,
                format_args!(
                    "{} connections are open, the most the open-file limit allows this listener; closing new ones",
                    self.ceiling
                ),
            );
            return None;
        }
        let mut permit = Permit {
            limit: Arc::clone(limit),
            key: None,
        };
        if limit.exempt.is_trusted(peer) {
            return Some(permit);
        }
        let key = limit_key(peer);
        let Ok(mut counts) = limit.by_address.lock() else {
            return Some(permit);
        };
        let count = counts.entry(key).or_insert(0);
        if *count >= limit.per_address {
            drop(counts);
            limit.warn(
                Warning::PerAddress,
                format_args!(
                    "{key} holds {} connections (max_connections_per_address); closing its new ones",
                    limit.per_address
                ),
            );
            // Dropping `permit` gives its share of `open` back.
            return None;
        }
        *count += 1;
        permit.key = Some(key);
        Some(permit)
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
    let room = limit - RESERVED_DESCRIPTORS.min(limit / 4);
    if limit < 4 * RESERVED_DESCRIPTORS {
        tracing::warn!(
            open_files = limit,
            connections = room,
            "the open-file limit is low: few connections can be open at once; raise it (ulimit -n, LimitNOFILE)"
        );
    } else {
        tracing::debug!(open_files = limit, connections = room, "open file limit");
    }
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

/// The next connection on `listener` that `gate` admits. Connections it refuses are
/// closed at once; accept errors are waited out (out of descriptors: a moment, so the
/// loop does not spin) or skipped (a connection reset before it was accepted).
pub async fn accept(listener: &TcpListener, gate: &Gate) -> (TcpStream, SocketAddr, Permit) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Some(permit) = gate.admit(peer.ip()) {
                    return (stream, peer, permit);
                }
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                gate.limit
                    .warn(Warning::Accept, format_args!("accepting a connection failed: {e}"));
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
        let gate = limit.gate(Surface::Admin);
        let a1 = gate.admit(ip("192.0.2.1")).unwrap();
        let _a2 = gate.admit(ip("192.0.2.1")).unwrap();
        assert!(gate.admit(ip("192.0.2.1")).is_none());
        // The same IPv4 address written as IPv6, and another address of the /64.
        assert!(gate.admit(ip("::ffff:192.0.2.1")).is_none());
        let _b1 = gate.admit(ip("2001:db8::1")).unwrap();
        let _b2 = gate.admit(ip("2001:db8::2")).unwrap();
        assert!(gate.admit(ip("2001:db8::3")).is_none());
        assert_eq!(limit.open(), 4);
        // A trusted proxy has no cap of its own, but counts toward the total.
        let _p1 = gate.admit(ip("10.0.0.1")).unwrap();
        assert!(gate.admit(ip("10.0.0.1")).is_none());
        assert!(gate.admit(ip("198.51.100.1")).is_none());
        // Closing one makes room for its address again.
        drop(a1);
        assert_eq!(limit.open(), 4);
        let _a3 = gate.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(limit.open(), 5);
    }

    #[test]
    fn the_public_listener_leaves_room_for_the_admin_one() {
        let limit = ConnectionLimit::new(1, 1000, TrustedProxies::default());
        let (public, admin) = (limit.gate(Surface::Public), limit.gate(Surface::Admin));
        let held: Vec<Permit> = (0..936)
            .map(|i| public.admit(ip(&format!("10.0.{}.{}", i / 256, i % 256))).unwrap())
            .collect();
        assert!(public.admit(ip("192.0.2.1")).is_none());
        let operators: Vec<Permit> = (0..64)
            .map(|i| admin.admit(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        assert!(admin.admit(ip("192.0.2.200")).is_none());
        assert_eq!(limit.open(), 1000);
        drop((held, operators));
        assert_eq!(limit.open(), 0);
    }

    #[test]
    fn counts_are_dropped_with_their_connections() {
        let limit = ConnectionLimit::new(1, 100, TrustedProxies::default());
        let gate = limit.gate(Surface::Public);
        let permits: Vec<Permit> = (0..50)
            .map(|i| gate.admit(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        assert_eq!(limit.by_address.lock().unwrap().len(), 50);
        drop(permits);
        assert_eq!(limit.open(), 0);
        assert!(limit.by_address.lock().unwrap().is_empty());
    }
}
