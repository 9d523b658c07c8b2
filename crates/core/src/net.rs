//! The client's IP address behind reverse proxies (DESIGN §5): the socket's peer, unless
//! that peer is a configured trusted proxy, in which case the forwarding header that the
//! proxy writes is read from the right, skipping trusted hops. One function for the
//! server and web crates, so both surfaces agree on who is calling.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// Which forwarding header the trusted proxies write. Only one is read: a proxy that
/// appends to `X-Forwarded-For` usually passes a client-sent `Forwarded` through
/// untouched, so reading both would let a client choose its own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(Self::XForwardedFor),
            "forwarded" => Some(Self::Forwarded),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The proxies whose forwarding headers are believed, and which header they write.
/// Empty by default: the socket's peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    pub networks: Vec<IpNet>,
    pub header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `127.0.0.1`, `::1`, `fd00::/8`; a bare address is a /32 or /128.
    pub fn parse_network(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        if let Ok(net) = IpNet::from_str(s) {
            return Ok(net.trunc());
        }
        IpAddr::from_str(s)
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: `peer` unless it is a trusted proxy; then the rightmost
    /// address in the forwarding header that is not itself a trusted proxy. `headers` are
    /// the request's values of the configured header, in order. A hop that cannot be
    /// parsed (`unknown`, an obfuscated identifier) stops the walk at the proxy that
    /// reported it, since nothing left of it can be believed.
    pub fn client_ip<'a>(&self, peer: IpAddr, headers: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let mut client = canonical(peer);
        if !self.is_trusted(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        for hop in hops.iter().rev() {
            let parsed = match self.header {
                ForwardedHeader::XForwardedFor => parse_hop(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop).and_then(parse_hop),
            };
            let Some(ip) = parsed.map(canonical) else {
                return client;
            };
            client = ip;
            if !self.is_trusted(ip) {
                return ip;
            }
        }
        client
    }
}

/// The key an address is counted under where one host must not count as many: IPv4 as
/// is, IPv6 by its /64 prefix (one host is normally given a whole /64), IPv4-mapped
/// IPv6 as IPv4. The typed twin of `throttle::address_key`.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack socket reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally in double quotes.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(ip);
    }
    if let Ok(sa) = SocketAddr::from_str(hop) {
        return Some(sa.ip());
    }
    let inner = hop.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(inner).ok()
}

/// RFC 7239 §4: the `for=` parameter of one forwarded-element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(nets: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies {
            networks: nets.iter().map(|n| TrustedProxies::parse_network(n).unwrap()).collect(),
            header,
        }
    }

    #[test]
    fn limit_keys() {
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2::ffff")), ip("2001:db8:1:2::"));
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_sends() {
        let t = trusted(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(t.client_ip(ip("203.0.113.9"), ["1.2.3.4"]), ip("203.0.113.9"));
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("127.0.0.1"), ["1.2.3.4"]), ip("127.0.0.1"));
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1"], ForwardedHeader::XForwardedFor);
        // The client forged the first entry; the proxy appended the real one.
        assert_eq!(
            t.client_ip(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.7", "10.1.2.3"]),
            ip("198.51.100.7")
        );
        // Only trusted hops: the leftmost is the best we know.
        assert_eq!(t.client_ip(ip("10.0.0.1"), ["10.0.0.2"]), ip("10.0.0.2"));
        // No header: the proxy itself.
        assert_eq!(t.client_ip(ip("10.0.0.1"), []), ip("10.0.0.1"));
        // Garbage stops the walk at the proxy that reported it.
        assert_eq!(t.client_ip(ip("10.0.0.1"), ["1.1.1.1, unknown"]), ip("10.0.0.1"));
        // A mapped address from a dual-stack socket is matched as IPv4.
        assert_eq!(t.client_ip(ip("::ffff:10.0.0.1"), ["192.0.2.5:1234"]), ip("192.0.2.5"));
    }

    #[test]
    fn forwarded_header() {
        let t = trusted(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        assert_eq!(
            t.client_ip(
                ip("10.0.0.1"),
                [r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https"#]
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["for=192.0.2.60;by=10.0.0.1"]),
            ip("192.0.2.60")
        );
        assert_eq!(t.client_ip(ip("10.0.0.1"), ["for=_hidden"]), ip("10.0.0.1"));
    }

    #[test]
    fn networks_parse() {
        assert!(TrustedProxies::parse_network("10.0.0.0/8").is_ok());
        assert!(TrustedProxies::parse_network("10.1.2.3/8").is_ok());
        assert!(TrustedProxies::parse_network("::1").is_ok());
        assert!(TrustedProxies::parse_network("fd00::/8").is_ok());
        assert!(TrustedProxies::parse_network("nope").is_err());
        assert!(TrustedProxies::parse_network("10.0.0.0/33").is_err());
    }
}
