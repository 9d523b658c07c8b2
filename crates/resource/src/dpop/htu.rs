//! RFC 9449 §4.3 step 9: does a proof's `htu` name the URL of the request, ignoring query
//! and fragment, after RFC 3986 §6.2.2–6.2.3 normalisation?

/// The API's public base URL, as the configuration gave it and normalised once: what the
/// request path is appended to, so that `htu` is compared with the URL the client called
/// rather than one built from the request's (client-chosen) `Host` header.
#[derive(Debug, Clone)]
pub(crate) struct BaseUrl {
    /// `scheme://host[:port]` and the path without its trailing `/`.
    prefix: String,
}

impl BaseUrl {
    /// Parses the configured base URL; the error completes "the DPoP base URL … ".
    pub(crate) fn parse(url: &str) -> Result<Self, &'static str> {
        let parsed = reqwest::Url::parse(url).map_err(|_| "is not an absolute URL")?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("must be an http or https URL");
        }
        let Some(host) = parsed.host_str() else {
            return Err("has no host");
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not have user info");
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("must not have a query or a fragment: requests are matched by path");
        }
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let path = parsed.path().trim_end_matches('/');
        Ok(Self {
            prefix: format!("{}://{host}{port}{path}", parsed.scheme()),
        })
    }

    /// Whether `htu` names the request whose path (as sent, without query) is `path`,
    /// under this base URL. Both URLs are compared normalised; one that does not parse as an
    /// http(s) URL with a host, or has user info, never matches.
    pub(crate) fn matches(&self, htu: &str, path: &str) -> bool {
        if !path.starts_with('/') {
            return false;
        }
        let Some(expected) = normalize(&format!("{}{path}", self.prefix)) else {
            return false;
        };
        normalize(htu).is_some_and(|got| got == expected)
    }
}

/// `scheme://host:port/path` with query and fragment dropped (RFC 9449 §4.3 step 9) and
/// RFC 3986 normalisation: the WHATWG parser lowercases scheme and host, removes dot
/// segments and turns an empty path into `/`; the port is always written out, so a default
/// port and no port compare equal (§6.2.3); and percent-encodings are made uppercase, with
/// those of unreserved characters decoded (§6.2.2.1–6.2.2.2).
fn normalize(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.username().is_empty() || parsed.password().is_some() {
        return None;
    }
    let host = parsed.host_str()?;
    let port = parsed.port_or_known_default()?;
    Some(format!(
        "{}://{host}:{port}{}",
        parsed.scheme(),
        normalize_percent_encoding(parsed.path())
    ))
}

/// RFC 3986 §6.2.2.1–6.2.2.2: `%7e` and `~` are the same character, `%2f` and `%2F` the same
/// octet. Reserved characters stay encoded (decoding `%2F` would change the path).
fn normalize_percent_encoding(path: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            let decoded = high << 4 | low;
            if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(decoded));
            } else {
                out.push_str(&format!("%{decoded:02X}"));
            }
            i += 3;
            continue;
        }
        // The parser leaves only ASCII in a path; anything else is copied as it is.
        out.push(char::from(b));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> BaseUrl {
        BaseUrl::parse(url).unwrap()
    }

    #[test]
    fn base_url_settings() {
        assert_eq!(base("https://API.Example.com").prefix, "https://api.example.com");
        assert_eq!(base("https://api.example.com:443/").prefix, "https://api.example.com");
        assert_eq!(
            base("https://api.example.com:8443/v1/").prefix,
            "https://api.example.com:8443/v1"
        );
        assert_eq!(base("http://[::1]:8080").prefix, "http://[::1]:8080");
        for (bad, why) in [
            ("api.example.com", "is not an absolute URL"),
            ("ftp://api.example.com", "must be an http or https URL"),
            ("https://user@api.example.com", "must not have user info"),
            (
                "https://api.example.com/?x=1",
                "must not have a query or a fragment: requests are matched by path",
            ),
            (
                "https://api.example.com/#f",
                "must not have a query or a fragment: requests are matched by path",
            ),
            (
                "https://api.example.com/?",
                "must not have a query or a fragment: requests are matched by path",
            ),
        ] {
            assert_eq!(BaseUrl::parse(bad).err(), Some(why), "{bad}");
        }
    }

    /// RFC 9449 §4.3 step 9 with RFC 3986 §6.2.2–6.2.3 normalisation.
    #[test]
    fn htu_matching() {
        let api = base("https://api.example.com");
        for htu in [
            "https://api.example.com/notes",
            "HTTPS://API.EXAMPLE.COM/notes",
            "https://api.example.com:443/notes",
            "https://api.example.com/notes?sort=asc",
            "https://api.example.com/notes#top",
            "https://api.example.com/notes?a=1#b",
            "https://api.example.com/./notes",
            "https://api.example.com/x/../notes",
            "https://api.example.com/%6Eotes",
            "https://api.example.com/%6eotes",
        ] {
            assert!(api.matches(htu, "/notes"), "{htu}");
        }
        for htu in [
            "http://api.example.com/notes",
            "https://api.example.com:8443/notes",
            "https://other.example.com/notes",
            "https://api.example.com/notes/",
            "https://api.example.com/Notes",
            "https://api.example.com/notes/1",
            "https://user@api.example.com/notes",
            "https://api.example.com",
            "/notes",
            "notes",
            "",
            "urn:x:notes",
            "ftp://api.example.com/notes",
        ] {
            assert!(!api.matches(htu, "/notes"), "{htu}");
        }
        // The request path is normalised alike.
        assert!(api.matches("https://api.example.com/a~b", "/a%7eb"));
        assert!(api.matches("https://api.example.com/a%2fb", "/a%2Fb"));
        assert!(!api.matches("https://api.example.com/a/b", "/a%2Fb"));
        assert!(api.matches("https://api.example.com/", "/"));
        assert!(!api.matches("https://api.example.com/", "*"));

        // A base path prefixes the path the router saw.
        let v1 = base("https://api.example.com:8443/v1/");
        assert!(v1.matches("https://api.example.com:8443/v1/notes", "/notes"));
        assert!(!v1.matches("https://api.example.com:8443/notes", "/notes"));
        assert!(!v1.matches("https://api.example.com/v1/notes", "/notes"));
        let local = base("http://127.0.0.1:80");
        assert!(local.matches("http://127.0.0.1/x", "/x"));
    }

    #[test]
    fn percent_encoding_normalised() {
        assert_eq!(normalize_percent_encoding("/%7e%7E%41%2f%2F%zz%4"), "/~~A%2F%2F%zz%4");
        assert_eq!(normalize_percent_encoding("/caf%c3%a9"), "/caf%C3%A9");
    }
}
