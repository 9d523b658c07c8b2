//! Form bodies of the token-family endpoints and client authentication (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523 §2.2), or
//! `none` (public clients).

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portcullis_core::Portcullis;
use portcullis_core::authorize::ONE_RESOURCE;
use portcullis_core::client_assertion::ASSERTION_TYPE;
use portcullis_core::model::{Client, ClientKind};
use portcullis_core::throttle::Bucket;
use portcullis_protocol::{ErrorCode, Secret};

use crate::error::{ApiError, read_body};

/// Whether the header `name` was sent more than once. RFC 9110 §5.3: `Authorization` and
/// `Content-Type` are not lists; sent twice, which one counts is anyone's guess (a proxy
/// on the way may have read the other), so such a request is refused.
pub(crate) fn sent_twice(headers: &HeaderMap, name: &header::HeaderName) -> bool {
    headers.get_all(name).iter().nth(1).is_some()
}

/// Whether the body is labelled `application/x-www-form-urlencoded` (parameters aside).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Why a form body (`application/x-www-form-urlencoded`) cannot be read as the client
/// meant it, if it cannot.
pub(crate) fn unreadable_form(headers: &HeaderMap, body: &[u8]) -> Option<&'static str> {
    // RFC 6749 Appendix B: the form is UTF-8; another charset named would be read as
    // UTF-8 all the same, into other values than the client sent. A body that is ASCII
    // once decoded reads the same in the charsets that extend ASCII, as clients that name
    // ISO-8859-1 by default send (Apache HttpClient 4's form entity does), or Shift_JIS;
    // not in those that read ASCII bytes otherwise (UTF-7, where `+AGE-` is an `a`,
    // UTF-16 and UTF-32, EBCDIC, the ISO-2022 family and HZ).
    let charset = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .into_iter()
        .flat_map(|v| v.split(';').skip(1))
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"').to_ascii_lowercase());
    let decoded = || percent_encoding::percent_decode(body);
    let extends_ascii = |c: &str| {
        let name: String = c.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        // IANA's aliases (`csUTF7`, `csIBM037`) name the same charsets.
        let name = name.strip_prefix("cs").unwrap_or(&name);
        // IBM's EBCDIC code pages (IBM437, IBM850 and the like extend ASCII).
        const EBCDIC: [&str; 22] = [
            "37", "273", "277", "278", "280", "284", "285", "290", "297", "420", "423", "424", "500", "870", "871",
            "875", "880", "905", "918", "1025", "1026", "1047",
        ];
        let ebcdic = ["ibm", "cp"].iter().any(|p| {
            name.strip_prefix(p).is_some_and(|n| {
                let n = n.trim_start_matches('0');
                EBCDIC.contains(&n) || n.starts_with("114")
            })
        });
        name == "unicode11utf8"
            || !(ebcdic
                || [
                    "utf7", "utf16", "utf32", "ucs2", "ucs4", "unicode", "iso10646", "ebcdic", "iso2022", "hz",
                ]
                .iter()
                .any(|p| name.starts_with(p)))
    };
    if decoded().decode_utf8().is_err()
        || charset
            .is_some_and(|c| c != "utf-8" && c != "utf8" && (!extends_ascii(&c) || decoded().any(|b| !b.is_ascii())))
    {
        return Some("the form must be UTF-8 (RFC 6749 Appendix B)");
    }
    // A compressed body would be read as it came, compressed.
    if headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity")))
    {
        return Some("the body must not be compressed (Content-Encoding)");
    }
    None
}

/// A parsed `application/x-www-form-urlencoded` body: each parameter at most once
/// (RFC 6749 §3.2).
pub struct FormBody {
    pub raw: Vec<(String, String)>,
}

impl FormBody {
    pub fn parse(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        if sent_twice(headers, &header::CONTENT_TYPE) {
            return Err(ApiError::new(ErrorCode::InvalidRequest, "send one Content-Type header"));
        }
        if !is_form(headers) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        if let Some(description) = unreadable_form(headers, body) {
            return Err(ApiError::new(ErrorCode::InvalidRequest, description));
        }
        // DESIGN §5: credentials and tokens are never accepted in the query string.
        if let Some(q) = query
            && serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .unwrap_or_default()
                .iter()
                // One without a value is omitted (RFC 6749 §3.1): no credential.
                .any(|(k, v)| {
                    !v.is_empty()
                        && matches!(
                            k.as_str(),
                            "client_secret"
                                | "client_assertion"
                                | "code"
                                | "refresh_token"
                                | "token"
                                | "access_token"
                                | "code_verifier"
                                | "device_code"
                                | "subject_token"
                                | "actor_token"
                        )
                })
        {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "credentials and tokens must not be sent in the query string",
            ));
        }
        let mut raw: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "the body is not valid form encoding"))?;
        // RFC 6749 §3.2: "Parameters sent without a value MUST be treated as if they were
        // omitted", so `scope=&scope=x` repeats nothing and `code=` is a missing code.
        raw.retain(|(_, v)| !v.is_empty());
        if raw.iter().any(|(_, v)| portcullis_core::params::holds_nul(v)) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "a parameter holds a NUL character (U+0000)",
            ));
        }
        for (i, (k, _)) in raw.iter().enumerate() {
            if raw[..i].iter().any(|(k2, _)| k2 == k) {
                // RFC 8707 §2 allows several; a combination the server will not issue a
                // token for is invalid_target.
                if k == "resource" {
                    return Err(ApiError::new(ErrorCode::InvalidTarget, ONE_RESOURCE));
                }
                // RFC 8693 §2.1 allows several audiences, and §2.2.2 answers those it will
                // not issue a token for so.
                if k == "audience" {
                    return Err(ApiError::new(
                        ErrorCode::InvalidTarget,
                        "one audience per token exchange: this server issues a token for one API",
                    ));
                }
                // The name is the client's input: not echoed (RFC 6749 §5.2).
                return Err(ApiError::new(ErrorCode::InvalidRequest, "a parameter is repeated"));
            }
        }
        Ok(Self { raw })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Deserializes the body into a typed request. Parameters without a value were left
    /// out at [`Self::parse`], so `code=` is a missing code (invalid_request), not an
    /// empty one.
    pub fn parse_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let encoded = serde_urlencoded::to_string(&self.raw)
            .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "the body is not valid form encoding"))?;
        serde_urlencoded::from_str(&encoded).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, describe(&e)))
    }
}

/// A form the typed request could not take, in the words of the protocol: serde says
/// "missing field `token`", the client sent no `token` parameter.
fn describe(e: &serde::de::value::Error) -> String {
    let text = e.to_string();
    match text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        Some(name) => format!("the {name} parameter is missing"),
        None => text,
    }
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined by `:` and base64'd.
fn decode_basic(value: &str) -> Option<(String, Secret)> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> Option<String> {
        // Each is one encoded value: a raw `&` would split it (`id:secret&x=1` must not
        // authenticate as `id:secret`).
        if s.contains('&') {
            return None;
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).ok()?;
        pairs.into_iter().next().map(|(_, v)| v)
    };
    Some((unescape(id)?, Secret::new(unescape(secret)?)))
}

/// The start of `/revoke`, `/introspect` and `/par`: the body read, the address's
/// allowance in `bucket` checked, the form parsed and its client authenticated for
/// `endpoint` (its path).
pub async fn authenticated_form(
    core: &Portcullis,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    bucket: Bucket,
    endpoint: &str,
    ip: Option<&str>,
) -> Result<(FormBody, Client), ApiError> {
    let body = read_body(body)?;
    core.throttle.check(bucket, ip)?;
    let form = FormBody::parse(headers, query, &body)?;
    let client = authenticate(core, headers, &form, endpoint, ip).await?;
    Ok((form, client))
}

/// Per confidential client, once it has authenticated (`/token`, `/par`): a count of
/// claimed client ids would let anyone who knows an id (they travel in every
/// authorization URL) use up that client's allowance on every node. Failed guesses count
/// against their address (`TokenIp`); secrets are 256-bit and server-generated, and keys
/// asymmetric, so guessing is futile anyway. A public client's id proves nothing, so its
/// users count per address only.
pub fn check_client_allowance(core: &Portcullis, client: &Client) -> Result<(), ApiError> {
    if client.kind == ClientKind::Confidential {
        core.throttle.check(Bucket::TokenClient, Some(client.id.as_str()))?;
    }
    Ok(())
}

/// Authenticates the client of a token-family request sent to `endpoint` (its path).
pub async fn authenticate(
    core: &Portcullis,
    headers: &HeaderMap,
    form: &FormBody,
    endpoint: &str,
    ip: Option<&str>,
) -> Result<Client, ApiError> {
    if sent_twice(headers, &header::AUTHORIZATION) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "send one Authorization header",
        ));
    }
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::new(ErrorCode::InvalidClient, "the Authorization header is not readable"))?,
        ),
    };
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    let assertion_type = form.get("client_assertion_type");
    let assertion = form.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        // RFC 6749 §2.3: one authentication method per request.
        if basic.is_some() || body_secret.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "use one client authentication method, not two",
            ));
        }
        let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "client_assertion and client_assertion_type go together",
            ));
        };
        if assertion_type != ASSERTION_TYPE {
            // RFC 7521 §4.2: an assertion type the server does not support.
            return Err(ApiError::new(
                ErrorCode::InvalidClient,
                format!("client_assertion_type must be {ASSERTION_TYPE}"),
            )
            .without_challenge());
        }
        return core
            .authenticate_client_assertion(body_id, assertion, &core.settings.endpoint(endpoint), ip)
            .await
            .map_err(|e| ApiError::from(e).without_challenge());
    }
    // RFC 6749 §5.2 asks for a 401 with a `Basic` challenge when the client used the
    // `Authorization` header, or none at all (the challenge says how it may); credentials
    // in the body that fail are a 400 without a challenge, as an assertion's are, so that
    // clients that read a 401's challenge rather than its body (oauth4webapi) still see
    // `invalid_client`.
    let in_body = basic.is_none() && (body_secret.is_some() || body_id.is_some());
    let challenge = |e: ApiError| if in_body { e.without_challenge() } else { e };
    let (id, secret) = match basic {
        Some(value) => {
            // RFC 6749 §2.3: one authentication method per request.
            if body_secret.is_some() {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "use one client authentication method, not two",
                ));
            }
            let (id, secret) = decode_basic(value).ok_or_else(|| {
                let basic = value
                    .split_once(' ')
                    .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
                ApiError::new(
                    ErrorCode::InvalidClient,
                    if basic {
                        "malformed Basic authorization header"
                    } else {
                        "clients authenticate here with the Basic scheme, client_secret in the body, or a client assertion"
                    },
                )
            })?;
            if body_id.is_some_and(|b| b != id) {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "client_id in the body differs from the Authorization header",
                ));
            }
            // RFC 6749 §3.2: an empty value counts as omitted, as in the body (some
            // libraries send `id:` in Basic for a public client).
            (id, (!secret.expose().is_empty()).then_some(secret))
        }
        None => {
            let id = body_id.ok_or_else(|| {
                challenge(ApiError::new(
                    ErrorCode::InvalidClient,
                    "client authentication is required",
                ))
            })?;
            (id.to_owned(), body_secret.map(Secret::new))
        }
    };
    core.authenticate_client(&id, secret.as_ref(), ip)
        .await
        .map_err(|e| challenge(ApiError::from(e)))
}

/// Authenticates the client of a `/token` request: as `authenticate`, except that a
/// refresh request naming no client at all (no `Authorization`, `client_id` or
/// `client_secret`) is the public client its refresh token was issued to, if it was one:
/// RFC 6749 §6 lists no `client_id` there and only confidential clients must
/// authenticate (§3.2.1). Anything else, that token included, gets the usual
/// `invalid_client`.
pub async fn authenticate_token_request(
    core: &Portcullis,
    headers: &HeaderMap,
    form: &FormBody,
    ip: Option<&str>,
) -> Result<Client, ApiError> {
    let anonymous = !headers.contains_key(header::AUTHORIZATION)
        && form.get("client_id").is_none()
        && form.get("client_secret").is_none()
        && form.get("client_assertion").is_none();
    if let (true, Some("refresh_token"), Some(token)) = (anonymous, form.get("grant_type"), form.get("refresh_token"))
        && let Some(client) = core.public_client_of_refresh_token(&Secret::new(token), ip).await?
    {
        return Ok(client);
    }
    authenticate(core, headers, form, "/token", ip).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20client:s%3Acret"));
        let (id, secret) = decode_basic(&header).unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret.expose(), "s:cret");
        assert!(decode_basic("Bearer abc").is_none());
        for trailing in ["id:secret&junk=1", "id&x:secret", "id:a&b"] {
            let header = format!("Basic {}", STANDARD.encode(trailing));
            assert!(decode_basic(&header).is_none(), "{trailing}");
        }
        let header = format!("Basic {}", STANDARD.encode("id%26x:a%26b"));
        let (id, secret) = decode_basic(&header).unwrap();
        assert_eq!((id.as_str(), secret.expose()), ("id&x", "a&b"));
    }

    #[derive(serde::Deserialize, Debug)]
    struct Probe {
        token: String,
        hint: Option<String>,
    }

    #[test]
    fn parameters_without_a_value_are_omitted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let form = FormBody::parse(&headers, None, b"token=abc&hint=").unwrap();
        let p: Probe = form.parse_as().unwrap();
        assert_eq!((p.token.as_str(), p.hint), ("abc", None));
        let form = FormBody::parse(&headers, None, b"token=&hint=x").unwrap();
        let err = form.parse_as::<Probe>().unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        // Nor is one without a value beside one with: no repeat.
        let form = FormBody::parse(&headers, None, b"token=&token=abc&hint=x&hint=").unwrap();
        let p: Probe = form.parse_as().unwrap();
        assert_eq!((p.token.as_str(), p.hint.as_deref()), ("abc", Some("x")));
        assert!(FormBody::parse(&headers, None, b"token=a&token=b").is_err());
    }

    #[test]
    fn the_form_is_utf8_and_not_compressed() {
        let with = |content_type: &str, encoding: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            if let Some(e) = encoding {
                headers.insert(header::CONTENT_ENCODING, e.parse().unwrap());
            }
            FormBody::parse(&headers, None, b"token=abc").map(|_| ())
        };
        const FORM: &str = "application/x-www-form-urlencoded";
        assert!(with(FORM, None).is_ok());
        assert!(with(&format!("{FORM}; charset=UTF-8"), None).is_ok());
        assert!(with(&format!("{FORM};charset=\"utf-8\""), None).is_ok());
        assert!(with(FORM, Some("identity")).is_ok());
        // Another charset: taken while the body reads the same in it (ASCII).
        assert!(with(&format!("{FORM}; charset=ISO-8859-1"), None).is_ok());
        for label in [
            "IBM437",
            "cp850",
            "unicode-1-1-utf-8",
            "csShiftJIS",
            "iso-8859-15",
            "ISO_8859-1",
            "iso8859-1",
            "windows-1252",
            "US-ASCII",
            "Shift_JIS",
            "KOI8-R",
        ] {
            assert!(with(&format!("{FORM}; charset={label}"), None).is_ok(), "{label}");
        }
        // Not in one that reads ASCII bytes otherwise (UTF-7's `+AGE-` is an `a`).
        for label in [
            "csUTF7",
            "csUnicode",
            "csIBM037",
            "IBM273",
            "IBM01141",
            "cp1047",
            "UTF-7",
            "utf-16",
            "UTF-16LE",
            "utf-32",
            "IBM037",
            "ISO-2022-JP",
            "HZ-GB-2312",
        ] {
            assert!(with(&format!("{FORM}; charset={label}"), None).is_err(), "{label}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            format!("{FORM}; charset=ISO-8859-1").parse().unwrap(),
        );
        assert!(FormBody::parse(&headers, None, b"token=caf%E9").is_err());
        headers.insert(header::CONTENT_TYPE, format!("{FORM}; charset=utf-8").parse().unwrap());
        assert!(FormBody::parse(&headers, None, b"token=caf%C3%A9").is_ok());
        // Bytes that are not UTF-8 are refused whatever the label says (or without one),
        // rather than read with U+FFFD in their place.
        assert!(FormBody::parse(&headers, None, b"token=caf%E9").is_err());
        headers.insert(header::CONTENT_TYPE, FORM.parse().unwrap());
        assert!(FormBody::parse(&headers, None, b"token=caf%E9").is_err());
        assert!(with(FORM, Some("gzip")).is_err());
    }
}
