//! Newtypes that parse at the edge: once a value has one of these types it is valid.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use url::Url;

/// Why a wire value failed to parse; the message is safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ParseError {}

fn err(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

macro_rules! string_newtype_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// RFC 6749 §2.2 client identifier: 1–128 visible ASCII characters (VSCHAR).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 128 {
            return Err(err("client_id must be 1 to 128 characters"));
        }
        // RFC 6749 Appendix A.1: client_id = *VSCHAR (%x20-7E)
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(err("client_id has characters outside %x20-7E"));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype_serde!(ClientId);

/// A redirect URI: absolute, no fragment (RFC 6749 §3.1.2). Compared by exact string
/// (RFC 9700 §4.1.3), never by its normalised form — but for the port of a loopback IP
/// literal in a request (RFC 8252 §7.3, [`RedirectUri::matches_request`]).
#[derive(Debug, Clone)]
pub struct RedirectUri {
    raw: String,
    url: Url,
}

impl PartialEq for RedirectUri {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for RedirectUri {}
impl std::hash::Hash for RedirectUri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl RedirectUri {
    /// Parses a redirect URI as sent in a request: absolute and without fragment.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() > 2000 {
            return Err(err("redirect_uri is too long"));
        }
        let url = Url::parse(s).map_err(|e| err(format!("redirect_uri is not an absolute URI: {e}")))?;
        if url.fragment().is_some() {
            return Err(err("redirect_uri must not contain a fragment"));
        }
        Ok(Self { raw: s.to_owned(), url })
    }

    /// Parses a URI an operator registers: stricter than [`RedirectUri::parse`] —
    /// `https`, or `http` only on a loopback host, or a private-use scheme containing a
    /// dot (RFC 8252 §7.1, RFC 9700 §2.1).
    ///
    /// It must also name the place browsers will be sent to: requests name it by exact
    /// string, and redirects go to the parsed form. So no whitespace, control characters
    /// or backslashes (the URL standard drops or rewrites them), no `.` or `..` path
    /// segments (resolved away), and an authority that is there and parses to the
    /// host and port redirects use (`https:///cb`, `https:/cb` and `https:cb` all parse as
    /// host `cb`). Case in the scheme
    /// and host, an IDN host, a default port or percent-encoding may be written as the
    /// app sends them: they change how the URL is printed, not where it leads. No user
    /// name or password, and no `*` in the host: RFC 9700 §4.1.3 matches exactly, never
    /// by pattern.
    pub fn parse_registered(s: &str) -> Result<Self, ParseError> {
        let uri = Self::parse(s)?;
        let url = &uri.url;
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
            return Err(err(
                "redirect URI must not contain spaces, control characters or backslashes",
            ));
        }
        // RFC 3986 §2: characters a URI never holds as such (browsers would go to them
        // percent-encoded, another string than the one registered), and `%` only before
        // two hexadecimal digits.
        if s.chars()
            .any(|c| matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '^' | '`'))
        {
            return Err(err(
                "redirect URI must not contain < > \" { } | ^ or ` (percent-encode them)",
            ));
        }
        let bytes = s.as_bytes();
        if bytes.iter().enumerate().any(|(i, b)| {
            *b == b'%'
                && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        }) {
            return Err(err(
                "redirect URI has a % that is not followed by two hexadecimal digits",
            ));
        }
        if url.port() == Some(0) {
            return Err(err("redirect URI cannot name port 0"));
        }
        let after_scheme = &s[url.scheme().len() + 1..];
        // The URL standard reads `https:/cb` and `https:cb` as host `cb`: http and https
        // name their host after `//`, or not at all.
        if matches!(url.scheme(), "http" | "https") && !after_scheme.starts_with("//") {
            return Err(err("redirect URI must name its host after //"));
        }
        if let Some(rest) = after_scheme.strip_prefix("//") {
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            let same = !authority.is_empty()
                && Url::parse(&format!("{}://{authority}/", url.scheme()))
                    .is_ok_and(|w| w.host() == url.host() && w.port_or_known_default() == url.port_or_known_default());
            if !same {
                return Err(err("redirect URI must name its host after //"));
            }
        }
        let path = after_scheme.split(['?', '#']).next().unwrap_or_default();
        if path.split('/').any(|seg| {
            matches!(
                seg.to_ascii_lowercase().as_str(),
                "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
            )
        }) {
            return Err(err("redirect URI must not contain . or .. path segments"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("redirect URI must not contain a user name or password"));
        }
        if url.host_str().is_some_and(|h| h.contains('*')) {
            return Err(err("redirect URI hosts are matched exactly: no wildcards"));
        }
        match url.scheme() {
            "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(err("redirect URI needs a host"));
                }
            }
            "http" => {
                if !is_loopback_host(url) {
                    return Err(err("http redirect URIs are allowed only on a loopback host; use https"));
                }
            }
            "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
                return Err(err("this URI scheme cannot be a redirect URI"));
            }
            scheme => {
                // RFC 8252 §7.1: private-use schemes are reverse domain names.
                if !scheme.contains('.') {
                    return Err(err(
                        "redirect URIs must be https, http on a loopback host, or a private-use scheme like com.example.app",
                    ));
                }
            }
        }
        Ok(uri)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether an authorization request's `redirect_uri` names this registered URI.
    /// RFC 9700 §4.1.3: exact string comparison — except that RFC 8252 §7.3 (and
    /// RFC 9700 §2.1) let a native app listening on a loopback IP literal use any port,
    /// since the OS picks it at run time. So for a registered `http` URI whose host is
    /// a loopback IP literal (never `localhost`, RFC 8252 §8.3), everything but the
    /// port is still compared exactly: scheme, host, path and query.
    pub fn matches_request(&self, requested: &str) -> bool {
        if self.raw == requested {
            return true;
        }
        let loopback_ip = match self.url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        };
        if self.url.scheme() != "http" || !loopback_ip {
            return false;
        }
        match (without_port(&self.raw), without_port(requested)) {
            (Some(registered), Some(requested)) => registered == requested,
            _ => false,
        }
    }

    /// Whether only the client can receive what is sent here: an `https` URI (a web
    /// client's server, or an app's claimed https URL). A loopback or private-use-scheme
    /// URI (RFC 8252 §7.1, §7.3) can be received by any program on the device, so it does
    /// not tell the client from an impostor (RFC 8252 §8.6).
    pub fn proves_client_identity(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The parsed URI, for appending response parameters.
    pub fn url(&self) -> &Url {
        &self.url
    }
}
string_newtype_serde!(RedirectUri);

/// Whether `url`'s host is this machine: `localhost` or a loopback IP literal (where
/// plain `http` is tolerated for native apps and development).
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `uri` as written, without the `:port` of its authority; `None` when the authority
/// does not end in a host and an optional all-digit port.
fn without_port(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_end = if authority.starts_with('[') {
        authority.find(']')? + 1
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let (host, port) = authority.split_at(host_end);
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        // A port as written canonically: browsers would go to `:080` as `:80` (not the URI
        // the code records) and cannot go to port 0.
        Some(p) => p.parse::<u16>().is_ok_and(|n| n != 0 && n.to_string() == p),
    };
    port_ok.then(|| format!("{scheme}://{host}{tail}"))
}

/// One scope token (RFC 6749 §3.3: 1*NQCHAR, %x21 / %x23-5B / %x5D-7E).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 128 {
            return Err(err("a scope must be 1 to 128 characters"));
        }
        if !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            // No echo of the value: messages may reach a client as error_description.
            return Err(err("a scope has characters RFC 6749 section 3.3 does not allow"));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype_serde!(Scope);

/// A set of scopes, written space-separated on the wire (RFC 6749 §3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut set = BTreeSet::new();
        for part in s.split(' ') {
            if part.is_empty() {
                continue;
            }
            set.insert(Scope::parse(part)?);
        }
        if set.len() > 64 {
            return Err(err("too many scopes"));
        }
        Ok(Self(set))
    }
    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().collect())
    }
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
    /// Scopes in `self` that are not in `other`.
    pub fn difference(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.difference(&other.0).cloned().collect())
    }
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.intersection(&other.0).cloned().collect())
    }
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.union(&other.0).cloned().collect())
    }
    pub fn as_string(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s.as_str());
        }
        out
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}
impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}
impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ScopeSet::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// RFC 7636 §4.1 code verifier: 43–128 characters of `[A-Za-z0-9-._~]`.
#[derive(Clone, PartialEq, Eq)]
pub struct PkceVerifier(String);

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

impl PkceVerifier {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if !(43..=128).contains(&s.len()) || !s.bytes().all(is_unreserved) {
            return Err(err(
                "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 section 4.1)",
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}
impl<'de> Deserialize<'de> for PkceVerifier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PkceVerifier::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// RFC 7636 §4.2 S256 code challenge: BASE64URL(SHA256(verifier)), exactly 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() != 43 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(err(
                "code_challenge must be a 43-character base64url S256 digest (RFC 7636 section 4.2)",
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype_serde!(CodeChallenge);

/// A secret value (client secret, token, password): never printed, compared in constant time.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where it is hashed, verified or shown once on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for Secret {}
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Grant types Portcullis implements (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8628 §3.4: `urn:ietf:params:oauth:grant-type:device_code`.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
    /// RFC 8693 §2.1: `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::DeviceCode,
        Self::TokenExchange,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => DEVICE_CODE_GRANT,
            Self::TokenExchange => TOKEN_EXCHANGE_GRANT,
        }
    }
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| {
            err(format!(
                "unknown grant type {s:?}; expected one of authorization_code, refresh_token, client_credentials, \
                 {DEVICE_CODE_GRANT}, {TOKEN_EXCHANGE_GRANT}"
            ))
        })
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The device authorization grant's `grant_type` (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The token exchange grant's `grant_type` (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// RFC 8693 §3: the token type of an access token, the only one exchanged or issued here.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Signing algorithms Portcullis can sign with (RFC 7518 §3.1, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "RS256" => Ok(Self::RS256),
            "ES256" => Ok(Self::ES256),
            "EdDSA" => Ok(Self::EdDSA),
            other => Err(err(format!(
                "unknown signing algorithm {other:?}; expected RS256, ES256 or EdDSA"
            ))),
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_set_parses_and_prints_sorted() {
        let s = ScopeSet::parse("profile openid  email").unwrap();
        assert_eq!(s.as_string(), "email openid profile");
        assert!(ScopeSet::parse("bad\"scope").is_err());
        assert!(ScopeSet::parse("bad\\scope").is_err());
    }

    #[test]
    fn loopback_ip_redirect_uris_match_any_port() {
        let v4 = RedirectUri::parse_registered("http://127.0.0.1/cb?x=1").unwrap();
        assert!(v4.matches_request("http://127.0.0.1/cb?x=1"));
        assert!(v4.matches_request("http://127.0.0.1:53121/cb?x=1"));
        assert!(!v4.matches_request("http://127.0.0.1:53121/other?x=1"));
        assert!(!v4.matches_request("http://127.0.0.1:53121/cb?x=2"));
        assert!(!v4.matches_request("http://127.0.0.1:53121/cb"));
        assert!(!v4.matches_request("https://127.0.0.1:53121/cb?x=1"));
        assert!(!v4.matches_request("http://127.0.0.2:53121/cb?x=1"));
        assert!(!v4.matches_request("http://u@127.0.0.1:53121/cb?x=1"));
        assert!(!v4.matches_request("http://127.0.0.1:/cb?x=1"));
        assert!(!v4.matches_request("http://127.0.0.1:5x/cb?x=1"));
        let with_port = RedirectUri::parse_registered("http://127.0.0.1:8080/cb").unwrap();
        assert!(with_port.matches_request("http://127.0.0.1/cb"));
        assert!(with_port.matches_request("http://127.0.0.1:9/cb"));
        let v6 = RedirectUri::parse_registered("http://[::1]:1/cb").unwrap();
        assert!(v6.matches_request("http://[::1]:61000/cb"));
        assert!(!v6.matches_request("http://[::2]:61000/cb"));
        // RFC 8252 §8.3: not `localhost`, and anything else stays an exact match.
        let any_port = RedirectUri::parse_registered("http://127.0.0.1/cb").unwrap();
        assert!(any_port.matches_request("http://127.0.0.1:65535/cb"));
        for odd in [
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:00080/cb",
            "http://127.0.0.1:65536/cb",
            "http://127.0.0.1:+80/cb",
        ] {
            assert!(!any_port.matches_request(odd), "{odd}");
        }
        let name = RedirectUri::parse_registered("http://localhost/cb").unwrap();
        assert!(!name.matches_request("http://localhost:53121/cb"));
        let https = RedirectUri::parse_registered("https://app.example/cb").unwrap();
        assert!(!https.matches_request("https://app.example:8443/cb"));
        assert!(https.matches_request("https://app.example/cb"));
    }

    #[test]
    fn registered_redirect_uris() {
        for refused in [
            "https:///cb",
            "https:/cb",
            "https:cb",
            "HTTPS:/evil.example/cb",
            "http:/127.0.0.1/cb",
            "https://app.example/c b",
            "https://app.example/c\u{0}b",
            "https://app.example/a/../cb",
            "https://app.example/a/%2E%2E/cb",
            "https://app.example/./cb",
            "https:\\\\evil.example/cb",
            "https://app.example\\@evil.example/cb",
            "https://app.example/<x>",
            "https://app.example/cb?q=\"a\"",
            "https://app.example/a{b}",
            "https://app.example/a|b^c`d",
            "https://app.example/%zz",
            "https://app.example/%4",
            "https://app.example:0/cb",
            "http://127.0.0.1:0/cb",
        ] {
            assert!(RedirectUri::parse_registered(refused).is_err(), "{refused}");
        }
        // How the URL is printed may differ from how it is written, where it leads may not.
        for kept in [
            "com.example.MyApp:/oauth2redirect",
            "msauth.com.Contoso.MyApp://auth",
            "https://App.Example.com/cb",
            "https://bücher.example/cb",
            "https://app.example?x=1",
            "https://app.example/cb?next='a'",
            "http://127.0.0.1:80/cb",
            "http://[::1]:8080/cb",
            "com.example.app:cb",
            "https://app.example/a%20b/",
        ] {
            assert!(RedirectUri::parse_registered(kept).is_ok(), "{kept}");
        }
        // The `/` of an empty path may be left out; private-use URIs stay as written.
        assert!(RedirectUri::parse_registered("https://app.example").is_ok());
        assert!(RedirectUri::parse_registered("com.example.app:/oauth?x=1").is_ok());
        assert!(RedirectUri::parse_registered("https://app.example/cb").is_ok());
        assert!(RedirectUri::parse_registered("http://127.0.0.1:8080/cb").is_ok());
        assert!(RedirectUri::parse_registered("http://localhost/cb").is_ok());
        assert!(RedirectUri::parse_registered("http://[::1]/cb").is_ok());
        assert!(RedirectUri::parse_registered("com.example.app:/cb").is_ok());
        assert!(RedirectUri::parse_registered("http://app.example/cb").is_err());
        assert!(RedirectUri::parse_registered("https://app.example/cb#x").is_err());
        assert!(RedirectUri::parse_registered("javascript:alert(1)").is_err());
        assert!(RedirectUri::parse_registered("myapp:/cb").is_err());
        assert!(RedirectUri::parse_registered("/relative").is_err());
    }

    #[test]
    fn pkce_lengths() {
        assert!(PkceVerifier::parse(&"a".repeat(42)).is_err());
        assert!(PkceVerifier::parse(&"a".repeat(43)).is_ok());
        assert!(PkceVerifier::parse(&"a".repeat(129)).is_err());
        assert!(PkceVerifier::parse(&format!("{}+", "a".repeat(43))).is_err());
    }

    #[test]
    fn secret_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
    }
}
