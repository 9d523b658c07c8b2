//! RFC 9449 §4.3 step 9: does a proof's `htu` name the URL of the request, ignoring query
//! and fragment, after RFC 3986 §6.2.2–6.2.3 normalisation?
//!
//! Only the proof's `htu` is normalised. The request's path is taken exactly as the router
//! saw it, because that is what chose the handler: axum routes on the raw path, so
//! `/files/../notes`, `/%6Eotes` and `/notes` reach different handlers even though they
//! normalise to one URL. A request path that normalisation would change is therefore not
//! matched at all (see [`BaseUrl::matches`]).

/// The API's public base URL, as the configuration gave it and normalised once: what the
/// request path is appended to, so that `htu` is compared with the URL the client called
/// rather than one built from the request's (client-chosen) `Host` header.
#[derive(Debug, Clone)]
pub(crate) struct BaseUrl {
    /// `scheme://host:port` (the port always written out) and the normalised path without
    /// its trailing `/`: the form [`normalize`] gives.
    prefix: String,
}

/// Why a proof's `htu` does not name the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// The request path is not in the form normalisation gives (dot segments, `%2e`, a
    /// backslash, a percent-escaped unreserved character, a lower-case escape, a character
    /// that must be escaped): the router may have chosen its handler by a path that names
    /// another URL than the one the proof would be compared with, so none is.
    PathNotNormal,
    /// `htu` names another URL, or is no http(s) URL.
    OtherUrl,
}

impl BaseUrl {
    /// Parses the configured base URL; the error completes "the DPoP base URL … ".
    pub(crate) fn parse(url: &str) -> Result<Self, &'static str> {
        let parsed = reqwest::Url::parse(url).map_err(|_| "is not an absolute URL")?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("must be an http or https URL");
        }
        if parsed.host_str().is_none() {
            return Err("has no host");
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not have user info");
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("must not have a query or a fragment: requests are matched by path");
        }
        let normalized = normalize(url).ok_or("is not an absolute URL")?;
        Ok(Self {
            prefix: normalized.trim_end_matches('/').to_owned(),
        })
    }

    /// Whether `htu` names the request whose path, as the router saw it (without query), is
    /// `path`, under this base URL. `htu` is compared normalised (RFC 9449 §4.3 step 9, RFC
    /// 3986 §6.2.2–6.2.3); one that does not parse as an http(s) URL with a host, or has
    /// user info, never matches. The request path is not normalised: it must already be in
    /// normal form, else nothing matches it ([`Mismatch::PathNotNormal`]).
    pub(crate) fn matches(&self, htu: &str, path: &str) -> Result<(), Mismatch> {
        if !path.starts_with('/') {
            return Err(Mismatch::PathNotNormal);
        }
        let expected = format!("{}{path}", self.prefix);
        if normalize(&expected).as_deref() != Some(expected.as_str()) {
            return Err(Mismatch::PathNotNormal);
        }
        match normalize(htu) {
            Some(got) if got == expected => Ok(()),
            _ => Err(Mismatch::OtherUrl),
        }
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
        assert_eq!(base("https://API.Example.com").prefix, "https://api.example.com:443");
        assert_eq!(
            base("https://api.example.com:443/").prefix,
            "https://api.example.com:443"
        );
        assert_eq!(
            base("https://api.example.com:8443/v1/").prefix,
            "https://api.example.com:8443/v1"
        );
        assert_eq!(
            base("https://api.example.com/a/./%7e/../v%31").prefix,
            "https://api.example.com:443/a/v1"
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

    /// RFC 9449 §4.3 step 9 with RFC 3986 §6.2.2–6.2.3 normalisation of `htu`.
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
            assert_eq!(api.matches(htu, "/notes"), Ok(()), "{htu}");
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
            assert_eq!(api.matches(htu, "/notes"), Err(Mismatch::OtherUrl), "{htu}");
        }
        // `htu` is normalised to meet a request path in normal form.
        assert_eq!(api.matches("https://api.example.com/a%7eb", "/a~b"), Ok(()));
        assert_eq!(api.matches("https://api.example.com/a%2fb", "/a%2Fb"), Ok(()));
        assert_eq!(api.matches("https://api.example.com/caf%c3%a9", "/caf%C3%A9"), Ok(()));
        assert_eq!(
            api.matches("https://api.example.com/a/b", "/a%2Fb"),
            Err(Mismatch::OtherUrl)
        );
        assert_eq!(api.matches("https://api.example.com/", "/"), Ok(()));

        // A base path prefixes the path the router saw.
        let v1 = base("https://api.example.com:8443/v1/");
        assert_eq!(v1.matches("https://api.example.com:8443/v1/notes", "/notes"), Ok(()));
        assert_eq!(
            v1.matches("https://api.example.com:8443/notes", "/notes"),
            Err(Mismatch::OtherUrl)
        );
        assert_eq!(
            v1.matches("https://api.example.com/v1/notes", "/notes"),
            Err(Mismatch::OtherUrl)
        );
        let local = base("http://127.0.0.1:80");
        assert_eq!(local.matches("http://127.0.0.1/x", "/x"), Ok(()));
    }

    /// The request path is taken as the router saw it: one that normalisation would change
    /// matches no `htu` at all, not even the one it normalises to, since the router may
    /// have given it to another handler than the normalised path's.
    #[test]
    fn request_path_must_be_in_normal_form() {
        let api = base("https://api.example.com");
        for path in [
            "/files/../notes",
            "/files/./../notes",
            "/./notes",
            "/notes/.",
            "/files/%2e%2e/notes",
            "/files/%2E%2E/notes",
            "/files/.%2e/notes",
            "/files/x/%2E./../notes",
            "/%6Eotes",
            "/note%73",
            "/a%7eb",
            "/a%7Eb",
            "/a%2fb",
            "/caf%c3%a9",
            "/x\\..\\notes",
            "/notes\\",
            "/no\ttes",
            "/notes\n",
            "/no tes",
            "/a\"b",
            "/a{b}",
            "/a#b",
            "/café",
            "*",
            "",
            "notes",
        ] {
            let normalised = normalize(&format!("https://api.example.com{path}")).unwrap_or_default();
            for htu in [format!("https://api.example.com{path}"), normalised] {
                assert_eq!(
                    api.matches(&htu, path),
                    Err(Mismatch::PathNotNormal),
                    "{path:?} {htu:?}"
                );
            }
        }
        // Under a base path, a request path cannot climb out of it either.
        let api = base("https://example.com/api");
        assert_eq!(
            api.matches("https://example.com/other/v1/notes", "/v1/../../other/v1/notes"),
            Err(Mismatch::PathNotNormal)
        );
        // What normalisation leaves alone passes: reserved characters escaped in upper case,
        // sub-delimiters, `%` not followed by two hex digits, repeated slashes.
        let api = base("https://api.example.com");
        for path in [
            "/a%2Fb",
            "/caf%C3%A9",
            "/a;b=c,d",
            "/a%zz",
            "/a//b",
            "/~user/.hidden",
            "/a..b/..c",
        ] {
            let htu = format!("https://api.example.com{path}");
            assert_eq!(api.matches(&htu, path), Ok(()), "{path}");
        }
    }

    #[test]
    fn percent_encoding_normalised() {
        assert_eq!(normalize_percent_encoding("/%7e%7E%41%2f%2F%zz%4"), "/~~A%2F%2F%zz%4");
        assert_eq!(normalize_percent_encoding("/caf%c3%a9"), "/caf%C3%A9");
    }
}
