//! axum integration: the [`Validator`] kept in router state, the [`VerifiedClaims`] and
//! [`Scoped`] extractors, and RFC 6750 §3 error responses.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use portcullis_protocol::{ErrorCode, ErrorResponse};

use crate::claims::VerifiedClaims;
use crate::error::AuthError;
use crate::introspection::IntrospectionValidator;
use crate::jwks::JwksValidator;
use crate::jwt::MAX_TOKEN_LEN;

/// Either way of validating tokens, so handlers and the extractor need not care which one
/// an API uses. Cheap to clone.
///
/// Put it in the router state — directly, or as a field of your state with
/// [`FromRef`] — and extract [`VerifiedClaims`] in handlers:
///
/// ```no_run
/// use axum::{Router, extract::FromRef, routing::get};
/// use portcullis_resource::{JwksValidator, Validator, VerifiedClaims};
///
/// #[derive(Clone)]
/// struct AppState {
///     validator: Validator,
/// }
///
/// impl FromRef<AppState> for Validator {
///     fn from_ref(state: &AppState) -> Self {
///         state.validator.clone()
///     }
/// }
///
/// async fn me(claims: VerifiedClaims) -> String {
///     claims.subject
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let validator = JwksValidator::builder("https://id.example.com")
///     .audience("https://id.example.com")
///     .build()
///     .await?;
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .with_state(AppState { validator: validator.into() });
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub enum Validator {
    /// Offline validation of JWT access tokens against the JWKS.
    Jwks(JwksValidator),
    /// Online validation through the introspection endpoint.
    Introspection(IntrospectionValidator),
}

impl Validator {
    /// Validates a bearer token with whichever validator this is.
    pub async fn validate(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        match self {
            Self::Jwks(v) => v.validate(token).await,
            Self::Introspection(v) => v.validate(token).await,
        }
    }

    /// The realm named in `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        match self {
            Self::Jwks(v) => v.realm(),
            Self::Introspection(v) => v.realm(),
        }
    }

    /// Reads the bearer token from the request (see [`bearer_token`]), validates it, and
    /// returns the claims or the rejection to answer with.
    pub async fn authenticate(&self, parts: &Parts) -> Result<VerifiedClaims, AuthRejection> {
        let token = bearer_token(parts).map_err(|e| self.reject(e))?;
        self.validate(token).await.map_err(|e| self.reject(e))
    }

    /// Whether `other` is this very validator (a clone of it), not merely one configured
    /// alike.
    fn is_same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Jwks(a), Self::Jwks(b)) => a.is_same(b),
            (Self::Introspection(a), Self::Introspection(b)) => a.is_same(b),
            _ => false,
        }
    }

    fn reject(&self, error: AuthError) -> AuthRejection {
        AuthRejection {
            error,
            realm: Some(Arc::from(self.realm())),
        }
    }
}

impl From<JwksValidator> for Validator {
    fn from(v: JwksValidator) -> Self {
        Self::Jwks(v)
    }
}

impl From<IntrospectionValidator> for Validator {
    fn from(v: IntrospectionValidator) -> Self {
        Self::Introspection(v)
    }
}

/// So a router whose state is just a [`JwksValidator`] works with the extractors.
impl FromRef<JwksValidator> for Validator {
    fn from_ref(v: &JwksValidator) -> Self {
        Self::Jwks(v.clone())
    }
}

/// So a router whose state is just an [`IntrospectionValidator`] works with the extractors.
impl FromRef<IntrospectionValidator> for Validator {
    fn from_ref(v: &IntrospectionValidator) -> Self {
        Self::Introspection(v.clone())
    }
}

/// The bearer token of a request, from the `Authorization` header only (RFC 6750 §2.1).
///
/// - No `Authorization` header, or one with another scheme: [`AuthError::MissingToken`]
///   (RFC 6750 §3.1: no `error` attribute when the request had no token).
/// - An `access_token` query parameter: [`AuthError::InvalidRequest`]. Tokens in URLs end up
///   in logs and browser history (RFC 6750 §2.3, §5.3), so that method is refused outright,
///   even alongside a header.
/// - Several `Authorization` headers, an empty token or one with characters outside the
///   `b64token` syntax: [`AuthError::InvalidRequest`].
pub fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    if has_query_token(parts.uri.query()) {
        return Err(AuthError::InvalidRequest(
            "access tokens are accepted only in the Authorization header, not in the query string",
        ));
    }
    let mut headers = parts.headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (headers.next(), headers.next()) else {
        return match parts.headers.contains_key(AUTHORIZATION) {
            true => Err(AuthError::InvalidRequest("more than one Authorization header")),
            false => Err(AuthError::MissingToken),
        };
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidRequest("malformed Authorization header"))?;
    let (scheme, token) = value.trim_start().split_once(' ').unwrap_or((value.trim(), ""));
    // RFC 7235 §2.1: the auth-scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !is_b64token(token) {
        return Err(AuthError::InvalidRequest("malformed bearer token"));
    }
    Ok(token)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// Whether the query string has an `access_token` parameter (RFC 6750 §2.3), its name
/// compared once decoded as the application behind us would decode it, so that
/// `%61ccess_token` or `access%5Ftoken` is caught too.
fn has_query_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            form_urldecode(name) == b"access_token"
        })
    })
}

/// `application/x-www-form-urlencoded` decoding of a name or value (WHATWG URL §5.1): `+`
/// is a space, `%` and two hex digits a byte, and any other `%` stays as it is.
fn form_urldecode(input: &str) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// What the extractor leaves in the request extensions so that a later extractor on the
/// same request need not validate the token again. It names the validator that checked the
/// token and the token itself: a router or layer with another validator (another audience
/// or issuer) must check the token against its own rules, and a middleware that swapped the
/// `Authorization` header must not inherit the claims of the token it replaced. Private, so
/// nothing outside this crate can plant claims for the extractor to trust.
#[derive(Clone)]
struct Authenticated {
    /// Holds the validator's `Arc`, so its address cannot be reused by another validator
    /// while this entry exists.
    validator: Validator,
    token: Box<str>,
    claims: VerifiedClaims,
}

/// Extracts the caller's verified claims; answers `401`/`400`/`503` per RFC 6750 §3 when
/// there are none. Needs a [`Validator`] reachable from the router state through
/// [`FromRef`].
///
/// The result is remembered in the request extensions, so a later extractor (e.g. a second
/// [`Scoped`]) with the *same* validator does not validate the token again; an extractor
/// whose state holds another validator (a layer or nested router with a different audience
/// or issuer) validates it anew.
impl<S> FromRequestParts<S> for VerifiedClaims
where
    Validator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let validator = Validator::from_ref(state);
        let token = bearer_token(parts).map_err(|e| validator.reject(e))?;
        if let Some(done) = parts.extensions.get::<Authenticated>()
            && done.validator.is_same(&validator)
            && *done.token == *token
        {
            return Ok(done.claims.clone());
        }
        let token = Box::<str>::from(token);
        let claims = validator.validate(&token).await.map_err(|e| validator.reject(e))?;
        parts.extensions.insert(Authenticated {
            validator,
            token,
            claims: claims.clone(),
        });
        Ok(claims)
    }
}

/// The scopes a route needs, for [`Scoped`]. Declare one zero-sized type per requirement:
///
/// ```
/// use portcullis_resource::ScopeRequirement;
///
/// pub struct NotesWrite;
/// impl ScopeRequirement for NotesWrite {
///     const SCOPES: &'static [&'static str] = &["notes:write"];
/// }
/// ```
pub trait ScopeRequirement: Send + Sync + 'static {
    /// Every one of these must be in the token's `scope`.
    const SCOPES: &'static [&'static str];
}

/// [`VerifiedClaims`] whose token carries every scope `R` names; otherwise the request is
/// answered `403` with `error="insufficient_scope"` and the scopes needed (RFC 6750 §3.1).
///
/// ```
/// use portcullis_resource::{Scoped, ScopeRequirement};
/// # pub struct NotesWrite;
/// # impl ScopeRequirement for NotesWrite { const SCOPES: &'static [&'static str] = &["notes:write"]; }
///
/// async fn notes_post(caller: Scoped<NotesWrite>) -> String {
///     format!("note saved for {}", caller.subject) // derefs to VerifiedClaims
/// }
/// ```
pub struct Scoped<R: ScopeRequirement> {
    claims: VerifiedClaims,
    _requirement: PhantomData<fn() -> R>,
}

impl<R: ScopeRequirement> Scoped<R> {
    /// The claims.
    pub fn into_inner(self) -> VerifiedClaims {
        self.claims
    }
}

impl<R: ScopeRequirement> Deref for Scoped<R> {
    type Target = VerifiedClaims;
    fn deref(&self) -> &VerifiedClaims {
        &self.claims
    }
}

impl<R: ScopeRequirement> std::fmt::Debug for Scoped<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Scoped").field(&self.claims).finish()
    }
}

impl<S, R> FromRequestParts<S> for Scoped<R>
where
    Validator: FromRef<S>,
    S: Send + Sync,
    R: ScopeRequirement,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = VerifiedClaims::from_request_parts(parts, state).await?;
        claims.require_scopes(R::SCOPES).map_err(|error| AuthRejection {
            error,
            realm: Some(Arc::from(Validator::from_ref(state).realm())),
        })?;
        Ok(Self {
            claims,
            _requirement: PhantomData,
        })
    }
}

/// An [`AuthError`] on its way to becoming a response, with the realm to name in the
/// challenge. Returned by the extractors; handlers may return it (or a plain [`AuthError`],
/// which gives a challenge without a realm).
#[derive(Debug)]
pub struct AuthRejection {
    error: AuthError,
    realm: Option<Arc<str>>,
}

impl AuthRejection {
    /// The error behind the rejection.
    pub fn error(&self) -> &AuthError {
        &self.error
    }

    /// Unwraps the error.
    pub fn into_error(self) -> AuthError {
        self.error
    }
}

impl From<AuthError> for AuthRejection {
    fn from(error: AuthError) -> Self {
        Self { error, realm: None }
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AuthRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        error_response(&self.error, self.realm.as_deref())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        error_response(&self, None)
    }
}

/// RFC 6750 §3: the status, the `WWW-Authenticate: Bearer` challenge, and an RFC 6749 §5.2
/// style JSON body for clients that read bodies.
fn error_response(error: &AuthError, realm: Option<&str>) -> Response {
    let status = error.status();
    let (code, description, scope) = match error {
        AuthError::MissingToken => (None, None, None),
        AuthError::InvalidRequest(d) => (Some(ErrorCode::InvalidRequest), Some(*d), None),
        AuthError::InvalidToken(reason) => (Some(ErrorCode::InvalidToken), Some(reason.description()), None),
        AuthError::InsufficientScope { required } => (
            Some(ErrorCode::InsufficientScope),
            Some("the token lacks a scope this request needs"),
            Some(required.as_str()),
        ),
        AuthError::Upstream { .. } | AuthError::Config(_) => {
            // The cause is for operators, not callers.
            tracing::error!(error = %error, cause = ?std::error::Error::source(error), "token validation unavailable");
            let body = ErrorResponse::new(
                ErrorCode::TemporarilyUnavailable,
                "the authorization server cannot be reached; try again later",
            );
            let mut response = (status, Json(body)).into_response();
            // RFC 9110 §10.2.3: pass the authorization server's wait on, in whole seconds
            // rounded up, so the caller does not retry while we would refuse anyway.
            if let Some(wait) = error.retry_after() {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                if secs > 0 {
                    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
                }
            }
            return response;
        }
    };
    let challenge = challenge(realm, code, description, scope);
    let mut response = match (code, description) {
        (Some(code), Some(description)) => (status, Json(ErrorResponse::new(code, description))).into_response(),
        _ => status.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// Builds `Bearer realm="…", error="…", error_description="…", scope="…"` (RFC 6750 §3),
/// leaving out what is absent.
fn challenge(realm: Option<&str>, code: Option<ErrorCode>, description: Option<&str>, scope: Option<&str>) -> String {
    let mut params = Vec::new();
    if let Some(realm) = realm {
        params.push(format!("realm=\"{}\"", quoted_safe(realm)));
    }
    if let Some(code) = code {
        params.push(format!("error=\"{}\"", code.as_str()));
        if let Some(description) = description {
            params.push(format!("error_description=\"{}\"", quoted_safe(description)));
        }
    }
    if let Some(scope) = scope {
        params.push(format!("scope=\"{}\"", quoted_safe(scope)));
    }
    if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

/// RFC 6750 §3: attribute values are quoted strings of `%x20-21 / %x23-5B / %x5D-7E`; drop
/// anything else rather than escape it.
fn quoted_safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, auth: &[&str]) -> Parts {
        let mut builder = Request::builder().uri(uri);
        for a in auth {
            builder = builder.header(AUTHORIZATION, *a);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(
            bearer_token(&parts("/", &["Bearer abc.def-_~+/=="])).unwrap(),
            "abc.def-_~+/=="
        );
        assert_eq!(bearer_token(&parts("/", &["bearer abc"])).unwrap(), "abc");
        assert_eq!(bearer_token(&parts("/", &["BEARER  abc"])).unwrap(), "abc");
        assert!(matches!(bearer_token(&parts("/", &[])), Err(AuthError::MissingToken)));
        assert!(matches!(
            bearer_token(&parts("/", &["Basic YTpi"])),
            Err(AuthError::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&parts("/", &["Bearerabc"])),
            Err(AuthError::MissingToken)
        ));
        for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer a\"b", "Bearer ==="] {
            assert!(
                matches!(bearer_token(&parts("/", &[bad])), Err(AuthError::InvalidRequest(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            bearer_token(&parts("/", &["Bearer a", "Bearer b"])),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn query_tokens_refused() {
        for uri in ["/?access_token=abc", "/?a=1&access_token=", "/?access%5Ftoken=x"] {
            assert!(
                matches!(bearer_token(&parts(uri, &[])), Err(AuthError::InvalidRequest(_))),
                "{uri}"
            );
            assert!(
                matches!(
                    bearer_token(&parts(uri, &["Bearer abc"])),
                    Err(AuthError::InvalidRequest(_))
                ),
                "{uri}"
            );
        }
        assert!(bearer_token(&parts("/?my_access_token=1", &["Bearer abc"])).is_ok());
    }

    /// The parameter name is compared once form-urldecoded, as the application would read
    /// it: any percent-encoding of any of its letters is still `access_token`.
    #[test]
    fn encoded_query_token_names_refused() {
        for uri in [
            "/?%61ccess_token=abc",
            "/?access%5ftoken=abc",
            "/?%61%63%63%65%73%73%5F%74%6F%6B%65%6E=abc",
            "/?x=1&acce%73s_token",
            "/?access_toke%6E=abc&y=2",
        ] {
            assert!(
                matches!(
                    bearer_token(&parts(uri, &["Bearer abc"])),
                    Err(AuthError::InvalidRequest(_))
                ),
                "{uri}"
            );
        }
        // Other names stay allowed, however they are encoded.
        for uri in [
            "/?access+token=abc",
            "/?access%20token=abc",
            "/?%41ccess_token=abc",
            "/?access_token%=abc",
            "/?access_tokens=abc",
            "/?q=access_token",
            "/?%=1&%zz=2&%6=3",
        ] {
            assert!(bearer_token(&parts(uri, &["Bearer abc"])).is_ok(), "{uri}");
        }
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_urldecode("a+b%20c%2fd%2F"), b"a b c/d/");
        assert_eq!(form_urldecode("%"), b"%");
        assert_eq!(form_urldecode("%4"), b"%4");
        assert_eq!(form_urldecode("%zz%41"), b"%zzA");
        assert_eq!(form_urldecode("%C3%A9"), "é".as_bytes());
    }

    #[test]
    fn challenges() {
        assert_eq!(challenge(Some("api"), None, None, None), r#"Bearer realm="api""#);
        assert_eq!(challenge(None, None, None, None), "Bearer");
        assert_eq!(
            challenge(
                Some("a\"p\\i"),
                Some(ErrorCode::InsufficientScope),
                Some("needs scope"),
                Some("x y")
            ),
            r#"Bearer realm="api", error="insufficient_scope", error_description="needs scope", scope="x y""#
        );
    }
}
