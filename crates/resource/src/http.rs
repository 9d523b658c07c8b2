//! Talking to the authorization server: the default HTTP client, discovery, and the small
//! HTTP helpers (`Cache-Control`, form encoding) the validators share.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use reqwest::header::{AGE, CACHE_CONTROL, HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use crate::clock::from_unix_seconds;
use crate::error::AuthError;

/// The client used unless one is injected: bounded timeouts, so a stalled authorization
/// server cannot hold requests forever, and no redirects, so a credential or a JWKS is
/// never fetched from somewhere the configuration did not name.
///
/// It speaks TLS only if the application enables a TLS feature of `reqwest` 0.12 (features
/// unify across the build) — see the crate README.
pub(crate) fn default_client() -> Result<reqwest::Client, AuthError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AuthError::Config(format!("cannot build the HTTP client: {e}")))
}

/// Refuses a URL that tokens, client credentials or key requests would travel to in clear:
/// `https` is required (RFC 6749 §1.6, RFC 7662 §4, RFC 8414 §2), except for a loopback
/// host (`127.0.0.0/8`, `::1`, `localhost`), where nothing crosses a network, and except
/// when the builder opted in with `insecure_allow_http` (development only). `what` names
/// the setting in the error, e.g. "the issuer".
pub(crate) fn require_https(url: &str, what: &str, insecure_http: bool) -> Result<(), AuthError> {
    let parsed = absolute_url(url, what)?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if insecure_http || is_loopback(&parsed) => Ok(()),
        "http" => Err(AuthError::Config(format!(
            "{what} {url:?} is plain http on a host that is not loopback: use https, or opt in \
             with insecure_allow_http() for development"
        ))),
        other => Err(not_https(url, what, other)),
    }
}

/// [`require_https`] for an endpoint named by the discovery document of `issuer` (the
/// configured one, which the document was checked to speak for). The loopback exception is
/// narrower here: plain http to a loopback host is accepted only when the issuer itself is
/// plain http on loopback, i.e. a local development server. An https issuer's document
/// naming `http://127.0.0.1:…` would otherwise make the API send its client secret and the
/// tokens in clear to whatever listens on that port of the API's own host (RFC 8414 §2 and
/// RFC 7662 §4 want TLS for these endpoints); `insecure_allow_http` still opts out.
pub(crate) fn require_https_discovered(
    url: &str,
    what: &str,
    issuer: &str,
    insecure_http: bool,
) -> Result<(), AuthError> {
    let parsed = absolute_url(url, what)?;
    let local_issuer = reqwest::Url::parse(issuer).is_ok_and(|i| i.scheme() == "http" && is_loopback(&i));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if insecure_http || (local_issuer && is_loopback(&parsed)) => Ok(()),
        "http" => Err(AuthError::Config(format!(
            "{what} {url:?}, named by the discovery document of {issuer:?}, is plain http: \
             the discovery document of an issuer that is not plain http on loopback must name \
             https endpoints (or opt in with insecure_allow_http() for development)"
        ))),
        other => Err(not_https(url, what, other)),
    }
}

fn absolute_url(url: &str, what: &str) -> Result<reqwest::Url, AuthError> {
    reqwest::Url::parse(url).map_err(|_| AuthError::Config(format!("{what} {url:?} is not an absolute URL")))
}

fn not_https(url: &str, what: &str, scheme: &str) -> AuthError {
    AuthError::Config(format!("{what} {url:?} uses the scheme {scheme:?}; https is required"))
}

/// Whether the URL's host is the local machine: `localhost` (RFC 6761 §6.3), an address in
/// `127.0.0.0/8` (RFC 1122 §3.2.1.3) or `::1` (RFC 4291 §2.5.3). The URL parser has already
/// lower-cased names and turned shorthand IPv4 forms such as `127.1` into dotted quads.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host == "localhost" {
        return true;
    }
    let ip = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ip.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Largest JWKS response read (1 MiB). A real key set is a few KiB even with several
/// RSA keys; reading an unbounded body would let a misconfigured or hostile endpoint fill
/// the API's memory.
pub(crate) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Largest introspection response read (64 KiB). An RFC 7662 §2.2 answer is one small JSON
/// object, and it is read on the request path, possibly by many requests at once.
pub(crate) const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

/// Largest discovery document read (256 KiB); Portcullis's is about 2 KiB.
pub(crate) const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// Reads the body of `response`, at most `limit` bytes of it: a `Content-Length` over the
/// limit is refused before anything is read, and a body without one is read chunk by chunk
/// and refused as soon as it passes the limit, so it is never buffered whole. `what` names
/// the document in the error (e.g. "the JWKS at https://…").
pub(crate) async fn read_body(mut response: reqwest::Response, limit: usize, what: &str) -> Result<Vec<u8>, AuthError> {
    let too_large = || AuthError::upstream_msg(format!("{what} is larger than the {limit} bytes accepted"));
    let declared = response.content_length();
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    let expected = declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut body = Vec::with_capacity(expected.min(limit));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AuthError::upstream(format!("reading {what}"), e))?
    {
        if chunk.len() > limit - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The part of the discovery document a resource server needs (OpenID Connect Discovery
/// 1.0 §3 / RFC 8414 §2). Read leniently rather than as the full
/// `portcullis_protocol::discovery::ServerMetadata`, so a field the server adds or omits
/// elsewhere cannot break token validation.
///
/// The endpoints are private: they are read through [`Discovered::jwks_uri`] and
/// [`Discovered::introspection_endpoint`], which hold them to
/// [`require_https_discovered`], so no builder can take one unchecked.
#[derive(Debug, Deserialize)]
pub(crate) struct Discovered {
    pub issuer: String,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

impl Discovered {
    /// The `jwks_uri`, required and held to [`require_https_discovered`] for the configured
    /// `issuer`.
    pub(crate) fn jwks_uri(&self, issuer: &str, insecure_http: bool) -> Result<String, AuthError> {
        let uri = self
            .jwks_uri
            .clone()
            .ok_or_else(|| AuthError::Config("the discovery document has no jwks_uri".into()))?;
        require_https_discovered(&uri, "the jwks_uri", issuer, insecure_http)?;
        Ok(uri)
    }

    /// The `introspection_endpoint`, required and held to [`require_https_discovered`] for
    /// the configured `issuer`.
    pub(crate) fn introspection_endpoint(&self, issuer: &str, insecure_http: bool) -> Result<String, AuthError> {
        let endpoint = self
            .introspection_endpoint
            .clone()
            .ok_or_else(|| AuthError::Config("the discovery document has no introspection_endpoint".into()))?;
        require_https_discovered(&endpoint, "the introspection endpoint", issuer, insecure_http)?;
        Ok(endpoint)
    }
}

/// Where the discovery document of `issuer` lives (OpenID Connect Discovery 1.0 §4.1).
pub(crate) fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// Fetches the discovery document and checks that it speaks for `issuer` (OpenID Connect
/// Discovery 1.0 §4.3: the `issuer` value must be identical to the one used to find it; a
/// trailing slash is tolerated on the configured value).
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovered, AuthError> {
    let url = discovery_url(issuer);
    let response = http
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| AuthError::upstream(format!("fetching {url}"), e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(AuthError::upstream_msg(format!("{url} answered {status}")));
    }
    let what = format!("the discovery document at {url}");
    let body = read_body(response, MAX_DISCOVERY_BYTES, &what).await?;
    let doc: Discovered =
        serde_json::from_slice(&body).map_err(|e| AuthError::upstream(format!("parsing {what}"), e))?;
    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(AuthError::Config(format!(
            "the discovery document at {url} is for issuer {:?}, not {issuer:?}",
            doc.issuer
        )));
    }
    Ok(doc)
}

/// How long a response may be cached according to RFC 9111 §5.2.2.1 `max-age` less §5.1
/// `Age`; `Some(ZERO)` for `no-store` / `no-cache`; `None` when the headers say nothing.
pub(crate) fn cache_lifetime(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") {
                max_age = arg.and_then(|a| a.parse::<u64>().ok());
            }
        }
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|m| Duration::from_secs(m.saturating_sub(age)))
}

/// How long a `Retry-After` header asks to wait (RFC 9110 §10.2.3): `delay-seconds`, or an
/// HTTP-date (in the IMF-fixdate form senders must use, RFC 9110 §5.6.7) measured from
/// `now`, a date in the past being no wait. `None` when the header is absent or malformed;
/// the caller picks a default and bounds the result.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = imf_fixdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7 IMF-fixdate).
fn imf_fixdate(value: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_day_name, date) = value.split_once(", ")?;
    let mut parts = date.split(' ');
    let (Some(day), Some(month), Some(year), Some(time), Some("GMT"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let day: i64 = two_digits(day).filter(|d| (1..=31).contains(d))?;
    let month = i64::try_from(MONTHS.iter().position(|m| *m == month)?).ok()? + 1;
    let year: i64 = (year.len() == 4).then(|| year.parse().ok()).flatten()?;
    let mut hms = time.split(':');
    let (Some(h), Some(m), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next()) else {
        return None;
    };
    let h = two_digits(h).filter(|h| *h < 24)?;
    let m = two_digits(m).filter(|m| *m < 60)?;
    let sec = two_digits(sec).filter(|s| *s <= 60)?;
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec;
    Some(from_unix_seconds(secs))
}

fn two_digits(s: &str) -> Option<i64> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `application/x-www-form-urlencoded` encoding of one value (WHATWG URL §5.2), which
/// RFC 6749 §2.3.1 requires for the client id and secret before they go into HTTP Basic.
pub(crate) fn form_urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&reqwest::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn cache_control() {
        assert_eq!(cache_lifetime(&HeaderMap::new()), None);
        assert_eq!(
            cache_lifetime(&headers(&[(&CACHE_CONTROL, "public, max-age=600")])),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            cache_lifetime(&headers(&[(&CACHE_CONTROL, "Max-Age=\"60\""), (&AGE, "20")])),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            cache_lifetime(&headers(&[
                (&CACHE_CONTROL, "max-age=60"),
                (&CACHE_CONTROL, "no-cache")
            ])),
            Some(Duration::ZERO)
        );
        assert_eq!(cache_lifetime(&headers(&[(&CACHE_CONTROL, "max-age=soon")])), None);
        assert_eq!(
            cache_lifetime(&headers(&[(&CACHE_CONTROL, "no-store")])),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_header() {
        let now = from_unix_seconds(784_111_700);
        let wait = |v: &'static str| retry_after(&headers(&[(&RETRY_AFTER, v)]), now);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(wait("120"), Some(Duration::from_secs(120)));
        assert_eq!(wait(" 0 "), Some(Duration::ZERO));
        assert_eq!(wait("99999999999999999999999"), Some(Duration::from_secs(u64::MAX)));
        // 77 s after `now`, then one in the past.
        assert_eq!(wait("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::from_secs(77)));
        assert_eq!(wait("Sat, 05 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        for bad in [
            "",
            "soon",
            "-5",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(wait(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_urlencode("abc-._*XYZ09"), "abc-._*XYZ09");
        assert_eq!(form_urlencode("a b:c/d%é"), "a+b%3Ac%2Fd%25%C3%A9");
    }

    #[test]
    fn https_required_except_on_loopback() {
        for ok in [
            "https://id.example",
            "https://10.0.0.1/jwks",
            "http://127.0.0.1:9090",
            "http://127.1.2.3/introspect",
            "http://127.1/",
            "http://[::1]:8080/jwks",
            "http://localhost:9090",
            "http://LOCALHOST/x",
        ] {
            assert!(require_https(ok, "the issuer", false).is_ok(), "{ok}");
        }
        for bad in [
            "http://id.example",
            "http://10.0.0.1/jwks",
            "http://128.0.0.1",
            "http://[::2]/",
            "http://[::ffff:10.0.0.1]/",
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example/",
            "http://0.0.0.0/",
        ] {
            let err = require_https(bad, "the issuer", false).unwrap_err();
            assert!(
                matches!(err, AuthError::Config(ref m) if m.contains("insecure_allow_http")),
                "{bad}: {err}"
            );
            assert!(require_https(bad, "the issuer", true).is_ok(), "{bad}");
        }
        for never in ["ftp://id.example", "file:///etc/passwd", "/introspect", "id.example"] {
            assert!(
                matches!(require_https(never, "the issuer", true), Err(AuthError::Config(_))),
                "{never}"
            );
        }
    }

    /// An endpoint the discovery document names may be plain http to loopback only when the
    /// issuer itself is (local development): an https issuer's document cannot send the
    /// client secret in clear to a port on the API's own host.
    #[test]
    fn discovered_endpoints_follow_the_issuer() {
        let doc = |jwks: &str, introspect: &str| -> Discovered {
            serde_json::from_value(serde_json::json!({
                "issuer": "x", "jwks_uri": jwks, "introspection_endpoint": introspect,
            }))
            .unwrap()
        };
        let is_downgrade = |r: Result<String, AuthError>| matches!(r, Err(AuthError::Config(ref m)) if m.contains("discovery document"));
        for issuer in ["https://id.example", "https://127.0.0.1:8443", "http://id.example"] {
            for url in [
                "http://127.0.0.1:9/x",
                "http://localhost/x",
                "http://[::1]/x",
                "http://id.example/x",
            ] {
                let d = doc(url, url);
                assert!(is_downgrade(d.jwks_uri(issuer, false)), "{issuer} {url}");
                assert!(is_downgrade(d.introspection_endpoint(issuer, false)), "{issuer} {url}");
                // Opted in, plain http is accepted anywhere, as for configured endpoints.
                assert_eq!(d.jwks_uri(issuer, true).unwrap(), url);
                assert_eq!(d.introspection_endpoint(issuer, true).unwrap(), url);
            }
            let https = doc("https://keys.example/jwks", "https://id.example/introspect");
            assert_eq!(https.jwks_uri(issuer, false).unwrap(), "https://keys.example/jwks");
            assert!(https.introspection_endpoint(issuer, false).is_ok());
        }
        // A local development issuer may name local endpoints, but not remote plain http ones.
        for issuer in ["http://127.0.0.1:9090", "http://localhost:9090", "http://[::1]:9090"] {
            for url in ["http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]/x"] {
                assert_eq!(doc(url, url).jwks_uri(issuer, false).unwrap(), url);
                assert_eq!(doc(url, url).introspection_endpoint(issuer, false).unwrap(), url);
            }
            assert!(is_downgrade(doc("http://id.example/x", "").jwks_uri(issuer, false)));
        }
        for bad in ["ftp://id.example/x", "/jwks"] {
            let r = doc(bad, bad).jwks_uri("http://127.0.0.1:9090", true);
            assert!(matches!(r, Err(AuthError::Config(_))), "{bad}");
        }
        let missing: Discovered = serde_json::from_str(r#"{"issuer":"x"}"#).unwrap();
        assert!(
            matches!(missing.jwks_uri("https://id.example", false), Err(AuthError::Config(ref m)) if m.contains("no jwks_uri"))
        );
        assert!(matches!(
            missing.introspection_endpoint("https://id.example", false),
            Err(AuthError::Config(ref m)) if m.contains("no introspection_endpoint")
        ));
    }

    #[test]
    fn discovery_location() {
        assert_eq!(
            discovery_url("https://id.example/"),
            "https://id.example/.well-known/openid-configuration"
        );
    }
}
