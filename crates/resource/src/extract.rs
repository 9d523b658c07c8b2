//! axum integration: the [`Validator`] kept in router state, the [`VerifiedClaims`] and
//! [`Scoped`] extractors, reading `Authorization: Bearer` (RFC 6750 §2.1) or
//! `Authorization: DPoP` with its `DPoP` proof header (RFC 9449 §7.1), and the RFC 6750
//! §3 / RFC 9449 §7.1 error responses.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OriginalUri};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, Method, Uri};
use axum::response::{IntoResponse, Response};

use crate::challenge::{Scheme, error_response};
use crate::claims::VerifiedClaims;
use crate::error::{AuthError, InvalidDpopProof};
use crate::introspection::IntrospectionValidator;
use crate::jwks::JwksValidator;
use crate::jwt::MAX_TOKEN_LEN;

/// RFC 9449 §4.1: the request header that carries the proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

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
    /// Validates a bearer token with whichever validator this is. A token bound to a key is
    /// refused (RFC 9449 §7.2); see [`Validator::validate_dpop`].
    pub async fn validate(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        match self {
            Self::Jwks(v) => v.validate(token).await,
            Self::Introspection(v) => v.validate(token).await,
        }
    }

    /// Validates a DPoP-bound token with its proof, for the request with this method and
    /// URI (see [`JwksValidator::validate_dpop`]).
    pub async fn validate_dpop(
        &self,
        token: &str,
        proof: &str,
        method: &Method,
        uri: &Uri,
    ) -> Result<VerifiedClaims, AuthError> {
        match self {
            Self::Jwks(v) => v.validate_dpop(token, proof, method, uri).await,
            Self::Introspection(v) => v.validate_dpop(token, proof, method, uri).await,
        }
    }

    /// The public base URL DPoP proofs are checked against; `None` when DPoP is off.
    pub fn dpop_base_url(&self) -> Option<&str> {
        match self {
            Self::Jwks(v) => v.dpop_base_url(),
            Self::Introspection(v) => v.dpop_base_url(),
        }
    }

    /// The realm named in `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        match self {
            Self::Jwks(v) => v.realm(),
            Self::Introspection(v) => v.realm(),
        }
    }

    /// The URL of the API's protected resource metadata (RFC 9728), named in challenges.
    pub fn resource_metadata(&self) -> Option<&str> {
        match self {
            Self::Jwks(v) => v.resource_metadata(),
            Self::Introspection(v) => v.resource_metadata(),
        }
    }

    /// Like [`VerifiedClaims::require_scopes`], for scopes a handler decides on at run time
    /// (from a path parameter, say): the rejection's challenge names this validator's realm
    /// and `resource_metadata` (RFC 9728 §5.1), as [`Scoped`]'s does; a plain
    /// [`AuthError`] returned from a handler names neither.
    ///
    /// ```no_run
    /// # use axum::extract::{Path, State};
    /// # use portcullis_resource::{AuthRejection, Validator, VerifiedClaims};
    /// async fn board_get(
    ///     State(validator): State<Validator>,
    ///     claims: VerifiedClaims,
    ///     Path(board): Path<String>,
    /// ) -> Result<String, AuthRejection> {
    ///     validator.require_scopes(&claims, &[&format!("boards:{board}:read")])?;
    ///     Ok(format!("board {board}"))
    /// }
    /// ```
    pub fn require_scopes(&self, claims: &VerifiedClaims, scopes: &[&str]) -> Result<(), AuthRejection> {
        claims.require_scopes(scopes).map_err(|error| {
            // The error knows whether the claims came through the DPoP scheme.
            let scheme = Scheme::answering(&error);
            self.reject(error, scheme)
        })
    }

    /// Reads the request's credentials, validates them, and returns the claims or the
    /// rejection to answer with — what the [`VerifiedClaims`] extractor does, for a
    /// middleware of your own:
    ///
    /// - `Authorization: Bearer` (see [`bearer_token`]): the token must not be bound to a
    ///   key (RFC 9449 §7.2). A `DPoP` header alongside is ignored — RFC 9449 lets a
    ///   resource server do so, it proves nothing about a bearer token, and a client that
    ///   sends a proof with every request keeps working with unbound tokens.
    /// - `Authorization: DPoP` (RFC 9449 §7.1), when DPoP is enabled: exactly one `DPoP`
    ///   header with a proof that passes every check of
    ///   [`JwksValidator::validate_dpop`], for this request's method and path — the
    ///   path of [`OriginalUri`] when there is one, so a nested router checks the URL the
    ///   client called. Without a DPoP base URL the scheme is one this validator does not
    ///   know, as any other: [`AuthError::MissingToken`].
    ///
    /// The result is recorded in `parts`' extensions, where the extractors look, so an
    /// extractor in the handler behind this middleware (with this same validator) takes it
    /// instead of checking the request again — which for DPoP would find the proof already
    /// used. Pass the parts on to the handler, e.g. with `Request::from_parts`. A result
    /// recorded there by an extractor or an earlier call is taken likewise.
    ///
    /// ```
    /// use axum::extract::{Request, State};
    /// use axum::middleware::Next;
    /// use axum::response::{IntoResponse, Response};
    /// use portcullis_resource::Validator;
    ///
    /// async fn require_token(State(validator): State<Validator>, request: Request, next: Next) -> Response {
    ///     let (mut parts, body) = request.into_parts();
    ///     if let Err(rejection) = validator.authenticate(&mut parts).await {
    ///         return rejection.into_response();
    ///     }
    ///     next.run(Request::from_parts(parts, body)).await
    /// }
    /// ```
    pub async fn authenticate(&self, parts: &mut Parts) -> Result<VerifiedClaims, AuthRejection> {
        let credentials = self.credentials(parts)?;
        if let Some(done) = parts.extensions.get::<Authenticated>()
            && done.validator.is_same(self)
            && *done.token == *credentials.token()
            && done.proof.as_deref() == credentials.proof()
        {
            return Ok(done.claims.clone());
        }
        let claims = self.check(&credentials, parts).await?;
        let token = Box::from(credentials.token());
        let proof = credentials.proof().map(Box::from);
        parts.extensions.insert(Authenticated {
            validator: self.clone(),
            token,
            proof,
            claims: claims.clone(),
        });
        Ok(claims)
    }

    /// The request's credentials, with the checks of their syntax.
    fn credentials<'a>(&self, parts: &'a Parts) -> Result<Credentials<'a>, AuthRejection> {
        let (scheme, token) = authorization(parts).map_err(|e| self.reject(e, Scheme::Bearer))?;
        match scheme {
            Scheme::Bearer => {
                let token = checked_token(token, "malformed bearer token").map_err(|e| self.reject(e, scheme))?;
                Ok(Credentials::Bearer(token))
            }
            Scheme::Dpop => {
                // With DPoP off the scheme is one we do not know, answered as before DPoP
                // support: no credentials (RFC 6750 §3.1), a bare `Bearer` challenge.
                if self.dpop_base_url().is_none() {
                    return Err(self.reject(AuthError::MissingToken, Scheme::Bearer));
                }
                let token = checked_token(token, "malformed DPoP token").map_err(|e| self.reject(e, scheme))?;
                let proof = dpop_proof(parts).map_err(|e| self.reject(e, scheme))?;
                Ok(Credentials::Dpop { token, proof })
            }
        }
    }

    /// Validates the credentials read from `parts`.
    async fn check(&self, credentials: &Credentials<'_>, parts: &Parts) -> Result<VerifiedClaims, AuthRejection> {
        match *credentials {
            Credentials::Bearer(token) => self.validate(token).await.map_err(|e| self.reject(e, Scheme::Bearer)),
            Credentials::Dpop { token, proof } => {
                let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
                self.validate_dpop(token, proof, &parts.method, uri)
                    .await
                    .map_err(|e| self.reject(e, Scheme::Dpop))
            }
        }
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

    fn reject(&self, error: AuthError, scheme: Scheme) -> AuthRejection {
        AuthRejection {
            error,
            realm: Some(Arc::from(self.realm())),
            resource_metadata: self.resource_metadata().map(Arc::from),
            scheme,
            offer_dpop: self.dpop_base_url().is_some(),
        }
    }
}

/// What a request authenticates with. No `Debug`: it holds the token.
#[derive(Clone, Copy)]
enum Credentials<'a> {
    /// RFC 6750 §2.1.
    Bearer(&'a str),
    /// RFC 9449 §7.1: the token, and the proof from the `DPoP` header.
    Dpop { token: &'a str, proof: &'a str },
}

impl Credentials<'_> {
    fn token(&self) -> &str {
        match self {
            Self::Bearer(token) | Self::Dpop { token, .. } => token,
        }
    }

    fn proof(&self) -> Option<&str> {
        match self {
            Self::Bearer(_) => None,
            Self::Dpop { proof, .. } => Some(proof),
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
    match authorization(parts)? {
        (Scheme::Bearer, token) => checked_token(token, "malformed bearer token"),
        (Scheme::Dpop, _) => Err(AuthError::MissingToken),
    }
}

/// The scheme and credentials of the request's `Authorization` header, for the two schemes
/// we know, after the checks they share: no token in the query string, one header, a
/// visible-ASCII value. Another scheme, or no header, is [`AuthError::MissingToken`].
fn authorization(parts: &Parts) -> Result<(Scheme, &str), AuthError> {
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
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(AuthError::MissingToken);
    };
    Ok((scheme, token.trim_matches(' ')))
}

/// The token of either scheme: RFC 6750 §2.1 `b64token` for `Bearer`, RFC 9110 §11.2
/// `token68` (the same characters) for `DPoP` (RFC 9449 §7.1), within [`MAX_TOKEN_LEN`].
/// `malformed` says which, as the `invalid_request` description.
fn checked_token<'a>(token: &'a str, malformed: &'static str) -> Result<&'a str, AuthError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !is_b64token(token) {
        return Err(AuthError::InvalidRequest(malformed));
    }
    Ok(token)
}

/// The proof of a `DPoP` request: exactly one `DPoP` header (RFC 9449 §4.3 step 1) of
/// visible ASCII.
fn dpop_proof(parts: &Parts) -> Result<&str, AuthError> {
    let mut values = parts.headers.get_all(DPOP).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match parts.headers.contains_key(DPOP) {
            true => Err(InvalidDpopProof::Multiple.into()),
            false => Err(InvalidDpopProof::Missing.into()),
        };
    };
    let proof = value.to_str().map_err(|_| InvalidDpopProof::Malformed)?.trim();
    if proof.is_empty() {
        return Err(InvalidDpopProof::Missing.into());
    }
    Ok(proof)
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

/// What the extractor (or [`Validator::authenticate`]) leaves in the request extensions so
/// that a later extractor on the same request need not validate the token again. It names the validator that checked the
/// token, the token itself and its DPoP proof: a router or layer with another validator
/// (another audience or issuer) must check the token against its own rules, and a
/// middleware that swapped the `Authorization` or `DPoP` header must not inherit the claims
/// of what it replaced. For DPoP this is also what lets a second extractor on the request
/// take the result: checking the proof again would find it already used. Private, so
/// nothing outside this crate can plant claims for the extractor to trust.
#[derive(Clone)]
struct Authenticated {
    /// Holds the validator's `Arc`, so its address cannot be reused by another validator
    /// while this entry exists.
    validator: Validator,
    token: Box<str>,
    /// The proof, for a `DPoP` request.
    proof: Option<Box<str>>,
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
        Validator::from_ref(state).authenticate(parts).await
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
        Validator::from_ref(state).require_scopes(&claims, R::SCOPES)?;
        Ok(Self {
            claims,
            _requirement: PhantomData,
        })
    }
}

/// An [`AuthError`] on its way to becoming a response, with the realm to name in the
/// challenge and the scheme it answers. Returned by the extractors; handlers may return it
/// (or a plain [`AuthError`], which gives a challenge without a realm, in the `DPoP` scheme
/// for an error only DPoP has or a missing scope of DPoP claims, and the `Bearer` one
/// otherwise).
#[derive(Debug)]
pub struct AuthRejection {
    error: AuthError,
    realm: Option<Arc<str>>,
    /// RFC 9728 §5.1: where the API's protected resource metadata is.
    resource_metadata: Option<Arc<str>>,
    /// The scheme the request used: its challenge answers (RFC 6750 §3, RFC 9449 §7.1).
    scheme: Scheme,
    /// Whether the validator accepts DPoP: a `401` to a request that did not use it then
    /// offers it too.
    offer_dpop: bool,
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
        Self {
            scheme: Scheme::answering(&error),
            error,
            realm: None,
            resource_metadata: None,
            offer_dpop: false,
        }
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
        error_response(
            &self.error,
            self.realm.as_deref(),
            self.resource_metadata.as_deref(),
            self.scheme,
            self.offer_dpop,
        )
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        error_response(&self, None, None, Scheme::answering(&self), false)
    }
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
        // The DPoP scheme is not a bearer token (RFC 9449 §7.1).
        assert!(matches!(
            bearer_token(&parts("/", &["DPoP abc"])),
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
}
