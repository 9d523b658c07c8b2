//! Requests this server sends to addresses its clients registered: their `jwks_uri`,
//! `backchannel_logout_uri` and `sector_identifier_uri`.
//!
//! A client that registered itself (RFC 7591) could name any address, inside the
//! server's own network too: a cloud metadata service, an admin port on loopback, a
//! database. Its requests reach public addresses only (`Reach::Public`): the binary
//! resolves the host once, refuses it if any address it resolves to is not a public one
//! (IANA's special-purpose registries: loopback, private, link-local, shared, multicast,
//! documentation, …), and connects to the address it checked, so a second lookup cannot
//! lead elsewhere (DNS rebinding). An operator whose self-registering clients live in a
//! private network names it in `outbound_allowed_networks`. An operator's own clients
//! reach any address (`Reach::Any`): the operator chose it.
//!
//! The HTTP requests themselves are ports (`Fetcher`, `webhooks::WebhookSender`) the
//! binary implements: no redirects (a redirect could lead anywhere), bounded time and size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::model::Client;

/// Which addresses a request on a client's behalf may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// An address an operator registered: any.
    Any,
    /// An address a client registered itself: public ones, and the networks in
    /// `outbound_allowed_networks`.
    Public,
}

impl Reach {
    /// For the addresses `client` registered. A client that registered itself stays
    /// `Public` after an operator takes it over: the operator may not have looked at the
    /// addresses it named.
    pub fn of(client: &Client) -> Self {
        if client.self_registered {
            Self::Public
        } else {
            Self::Any
        }
    }
}

/// Which addresses `Reach::Public` requests may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Networks that are not public but allowed all the same (`outbound_allowed_networks`).
    pub allowed_networks: Vec<IpNet>,
}

impl OutboundPolicy {
    /// Whether a request with `reach` may connect to `ip`.
    pub fn permits(&self, reach: Reach, ip: IpAddr) -> bool {
        match reach {
            Reach::Any => true,
            Reach::Public => is_public(ip) || self.allowed_networks.iter().any(|n| n.contains(&ip)),
        }
    }

    /// Why a URL with `reach` is refused before any lookup, if its host alone says so:
    /// an address literal the policy does not permit, or a `localhost` name (RFC 6761
    /// §6.3: it always means this machine).
    pub fn refuses_host(&self, reach: Reach, url: &url::Url) -> Option<String> {
        if reach == Reach::Any {
            return None;
        }
        let ip = match url.host()? {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Some(format!("{name} is this machine, not a public address"));
                }
                return None;
            }
        };
        (!self.permits(reach, ip)).then(|| format!("{ip} is not a public address"))
    }
}

/// Whether `ip` is a public unicast address: one no special-purpose registry (IANA's
/// IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890) marks as not globally
/// reachable, nor multicast or reserved. An IPv6 address that carries an IPv4 one
/// (mapped, NAT64, 6to4) is judged by the IPv4 address it leads to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network" (RFC 791)
        || a == 10 // private (RFC 1918)
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local, cloud metadata services
        || ip == Ipv4Addr::new(168, 63, 129, 16) // Azure's host services (WireServer), on a public address
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (RFC 6890)
        || (a == 192 && b == 0 && c == 2) // documentation (RFC 5737)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (RFC 7526)
        || (a == 192 && b == 168) // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking (RFC 2544)
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // IPv4-mapped (::ffff:0:0/96) and the deprecated IPv4-compatible (::/96, RFC 4291):
    // the connection goes to the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6] == [0; 6] {
        return false; // ::, ::1 and the IPv4-compatible addresses
    }
    // NAT64 (64:ff9b::/96, RFC 6052) reaches the IPv4 address in its last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    // 6to4 (2002::/16, RFC 3056) reaches the IPv4 address in bits 16-48.
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    // Global unicast is 2000::/3; everything else (link-local, unique local, multicast,
    // the local-use NAT64 prefix 64:ff9b:1::/48, discard-only 100::/64) is not.
    let special = match s[0] {
        // IETF protocol assignments, 2001::/23 (Teredo among them); documentation (RFC 3849)
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // documentation, 3fff::/20 (RFC 9637)
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    (s[0] & 0xe000) == 0x2000 && !special
}

/// Begins the error of a request `Reach` did not permit: no later try can fare better.
pub const REFUSED: &str = "refused by the outbound address policy";

/// Whether a port's error says the request was refused by the address policy.
pub fn is_refusal(why: &str) -> bool {
    why.contains(REFUSED)
}

/// The `Accept` of a JWK Set read.
pub const JWK_SET: &str = "application/jwk-set+json, application/json";
/// The `Accept` of a JSON document read.
pub const JSON: &str = "application/json";

/// GETs documents clients publish.
#[async_trait]
pub trait Fetcher: Send + Sync {
    /// The status and body of the answer to `GET url` (sent with `accept`), or why there
    /// is none: no connection, an address `reach` does not permit, no answer within
    /// `timeout`, a body over `limit` bytes or not UTF-8. Redirects are not followed: a
    /// `3xx` is an answer like any other.
    async fn get(
        &self,
        url: &str,
        accept: &'static str,
        reach: Reach,
        limit: usize,
        timeout: Duration,
    ) -> Result<(u16, String), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn special_purpose_ipv4_addresses_are_not_public() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "168.63.129.16",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.254",
        ] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_addresses_are_public_in_global_unicast_only_and_by_the_ipv4_they_carry() {
        for ip in [
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1", // 6to4 of 127.0.0.1
            "2002:c0a8:101::1",
            "3fff::1",
            "3fff:fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860::8888",
            "3fff:1000::1",
            "3ff0::1",
        ] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn the_policy_allows_what_the_operator_named_for_public_reach_and_anything_for_any() {
        let policy = OutboundPolicy {
            allowed_networks: vec!["10.20.0.0/16".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(policy.permits(Reach::Public, ip("10.20.3.4")));
        assert!(policy.permits(Reach::Public, ip("::1")));
        assert!(!policy.permits(Reach::Public, ip("10.21.0.1")));
        assert!(!policy.permits(Reach::Public, ip("127.0.0.1")));
        assert!(policy.permits(Reach::Public, ip("8.8.8.8")));
        assert!(policy.permits(Reach::Any, ip("127.0.0.1")));
    }

    #[test]
    fn hosts_that_say_enough_by_themselves_are_refused_before_any_lookup() {
        let policy = OutboundPolicy::default();
        let refused = |u: &str| policy.refuses_host(Reach::Public, &url::Url::parse(u).unwrap());
        for url in [
            "https://127.0.0.1/keys",
            "https://[::1]/keys",
            "https://169.254.169.254/latest/meta-data",
            "https://0x7f000001/",
            "https://localhost/",
            "https://LocalHost./x",
            "https://api.localhost/x",
            "https://[::ffff:10.0.0.1]/",
        ] {
            assert!(refused(url).is_some(), "{url}");
        }
        for url in [
            "https://rp.example/keys",
            "https://8.8.8.8/",
            "https://localhost.example/",
        ] {
            assert_eq!(refused(url), None, "{url}");
        }
        let local = url::Url::parse("https://localhost/").unwrap();
        assert_eq!(policy.refuses_host(Reach::Any, &local), None);
    }
}
