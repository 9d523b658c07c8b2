//! The crate's one error type, [`AuthError`], and the reasons a token is refused.

use std::fmt;
use std::time::Duration;

use axum::http::StatusCode;

/// A boxed error kept as the cause of an [`AuthError::Upstream`] or [`AuthError::Config`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a request was not authorised, or why a validator could not be built.
///
/// The extractor in [`crate::extract`] turns each variant into the RFC 6750 §3 response
/// (see [`AuthError::status`]); the `Display` text of the token-related variants is safe to
/// show to a client, the others are for the log only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// RFC 6750 §3.1: the request carried no bearer token at all (or used another
    /// authentication scheme). Answered with `401` and no `error` attribute.
    #[error("no bearer token in the request")]
    MissingToken,
    /// RFC 6750 §3.1 `invalid_request`: malformed `Authorization` header, several of them, or
    /// a token sent in a way we refuse (the query string, RFC 6750 §2.3). Answered with `400`.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// RFC 6750 §3.1 `invalid_token`: the token is expired, revoked, malformed or fails a
    /// check. Answered with `401`.
    #[error("{0}")]
    InvalidToken(InvalidToken),
    /// RFC 9449 §7.1 `invalid_dpop_proof`: the request used the `DPoP` scheme and its proof
    /// is missing or fails a check of RFC 9449 §4.3. Answered with `401` and a `DPoP`
    /// challenge.
    #[error("{0}")]
    InvalidDpopProof(InvalidDpopProof),
    /// RFC 6750 §3.1 `insufficient_scope`: the token is valid but lacks a scope the route
    /// needs. `required` is the space-separated list of the scopes needed. Answered with `403`,
    /// in the `DPoP` scheme when `dpop` is set (RFC 9449 §7.1) and the `Bearer` one otherwise.
    #[error("the token lacks the scope {required:?}")]
    InsufficientScope {
        /// Space-separated scopes the route requires (RFC 6749 §3.3 syntax).
        required: String,
        /// Whether the request came with the `DPoP` scheme, so that the challenge answers in
        /// it. [`VerifiedClaims::require_scope`](crate::VerifiedClaims::require_scope) sets it
        /// when the claims carry a DPoP binding, which claims handed out for a request do
        /// only when it used that scheme.
        dpop: bool,
    },
    /// The authorization server could not be reached or answered something unusable (JWKS,
    /// discovery or introspection). Answered with `503`; the cause goes to the log only.
    /// When the server asked us to wait (`429`/`503` with `Retry-After`),
    /// [`AuthError::retry_after`] says how long, and the answer carries `Retry-After` too.
    #[error("authorization server unavailable: {context}")]
    Upstream {
        /// What we were doing, e.g. "fetching the JWKS".
        context: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The validator is misconfigured (returned by the builders only).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The DPoP replay cache holds as many proofs as it may, every one of them still
    /// acceptable, so a new proof cannot be remembered and is refused rather than let an
    /// old one be replayed (RFC 9449 §11.1). Answered with `503` and `Retry-After`: the
    /// time until the oldest entry expires (see [`AuthError::retry_after`]).
    #[error("the DPoP replay cache is full")]
    DpopReplayCacheFull {
        /// When a slot frees up.
        retry_after: Duration,
    },
    /// The proof's key already has as many proofs in the DPoP replay cache as one key may
    /// ([`JwksValidatorBuilder::dpop_replay_cache_max_entries_per_key`](crate::JwksValidatorBuilder::dpop_replay_cache_max_entries_per_key)):
    /// the proof is refused rather than let an old one of that key be replayed, and only
    /// that key is held back, so one client cannot take the room every client needs.
    /// Answered with `429` (RFC 6585 §4), `Retry-After` (the time until that key's oldest
    /// proof expires, see [`AuthError::retry_after`]) and `{"error": "slow_down"}`, as the
    /// authorization server answers a client over its rate limit.
    #[error("the DPoP key has too many proofs in the replay cache")]
    DpopKeyQuotaExceeded {
        /// When one of the key's slots frees up.
        retry_after: Duration,
    },
}

impl AuthError {
    pub(crate) fn upstream(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Upstream {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn upstream_msg(context: impl Into<String>) -> Self {
        Self::Upstream {
            context: context.into(),
            source: None,
        }
    }

    /// An [`AuthError::Upstream`] saying the authorization server may be asked again in
    /// `after`; [`AuthError::retry_after`] reads it back.
    pub(crate) fn retry_later(context: impl Into<String>, after: Duration) -> Self {
        Self::upstream(context, RetryLater { after })
    }

    /// How long until the authorization server may be asked again, when it asked us to
    /// wait (HTTP `429` or `503` with `Retry-After`, RFC 9110 §10.2.3, RFC 6585 §4) and the
    /// validator is holding back until then; `None` for every other error.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Upstream {
                source: Some(source), ..
            } => source.downcast_ref::<RetryLater>().map(|r| r.after),
            Self::DpopReplayCacheFull { retry_after } | Self::DpopKeyQuotaExceeded { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// The HTTP status a resource server answers with for this error (RFC 6750 §3.1).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::InvalidDpopProof(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::DpopKeyQuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream { .. } | Self::Config(_) | Self::DpopReplayCacheFull { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The reason a token was refused, if that is what happened.
    pub fn invalid_token_reason(&self) -> Option<InvalidToken> {
        match self {
            Self::InvalidToken(r) => Some(*r),
            _ => None,
        }
    }

    /// The reason a DPoP proof was refused, if that is what happened.
    pub fn invalid_dpop_proof_reason(&self) -> Option<InvalidDpopProof> {
        match self {
            Self::InvalidDpopProof(r) => Some(*r),
            _ => None,
        }
    }
}

impl From<InvalidToken> for AuthError {
    fn from(reason: InvalidToken) -> Self {
        Self::InvalidToken(reason)
    }
}

impl From<InvalidDpopProof> for AuthError {
    fn from(reason: InvalidDpopProof) -> Self {
        Self::InvalidDpopProof(reason)
    }
}

/// The cause of an [`AuthError::Upstream`] when the authorization server asked us to wait.
/// Kept as the error's source rather than a field, so the variant's shape stays as it was.
#[derive(Debug)]
pub(crate) struct RetryLater {
    after: Duration,
}

impl fmt::Display for RetryLater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the authorization server asked to wait {} ms",
            self.after.as_millis()
        )
    }
}

impl std::error::Error for RetryLater {}

/// Why a token was refused. The `Display` text becomes the `error_description` of the
/// `WWW-Authenticate` header, so it says what failed without echoing token contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not three base64url parts, or a part that is not the JSON it should be.
    Malformed,
    /// The header's `alg` is not in the allow-list (this covers `none` and every HMAC
    /// algorithm, which are never allowed with public keys).
    UnsupportedAlgorithm,
    /// RFC 9068 §4: the header's `typ` is not `at+jwt` / `application/at+jwt`.
    WrongType,
    /// RFC 7515 §4.1.11: the header has `crit`, naming extensions the token says must be
    /// understood; we understand none.
    CriticalHeader,
    /// No key in the JWKS has the token's `kid` (after the rate-limited refetch).
    UnknownKey,
    /// The key found for the `kid` is not for the token's `alg`.
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// RFC 9068 §4: `iss` is not our issuer.
    WrongIssuer,
    /// RFC 9068 §4: `aud` does not name this resource server.
    WrongAudience,
    /// RFC 7519 §4.1.4: `exp` has passed (beyond the leeway).
    Expired,
    /// RFC 7519 §4.1.5: `nbf` is still in the future, or (§4.1.6) the token claims to be
    /// issued (`iat`) in the future, beyond the leeway either way.
    NotYetValid,
    /// A claim RFC 9068 §2.2 requires is missing: in JWKS mode `iss`, `exp`, `aud`, `sub`,
    /// `client_id`, `iat` or `jti`; in introspection mode `sub`, `client_id` or `exp` of the
    /// answer (RFC 7662 §2.2 makes the rest optional there), or `iss` or `exp` of the token
    /// itself. (A claim of the wrong JSON type makes the token [`InvalidToken::Malformed`].)
    MissingClaim,
    /// RFC 7662 §2.2: the authorization server says the token is not active (revoked,
    /// expired or unknown).
    Inactive,
    /// RFC 7662 §2.2: introspection says this is not a bearer access token (a refresh
    /// token, or another `token_type`).
    NotAnAccessToken,
    /// RFC 9449 §7.2, RFC 8705 §3: the token is bound to a key this resource server cannot
    /// check: a certificate (`cnf` with anything but `jkt`), a DPoP key while the validator
    /// has no [DPoP base URL](crate::JwksValidatorBuilder::dpop_base_url), or introspection's
    /// `token_type` `DPoP` without a `cnf.jkt`. Accepting it as a bearer token would drop
    /// the protection the binding gives.
    BoundToKey,
    /// RFC 9449 §7.2: a DPoP-bound token (`cnf.jkt`) was presented as a bearer token; it
    /// must come with the `DPoP` scheme and a proof.
    DpopBoundAsBearer,
    /// RFC 9449 §7.1: the `DPoP` scheme was used with a token that is not DPoP-bound (no
    /// `cnf.jkt`); such a token is a bearer token and goes with the `Bearer` scheme.
    NotDpopBound,
    /// RFC 9449 §4.3 step 12: the proof is signed with another key than the one the token
    /// is bound to (its RFC 7638 thumbprint differs from `cnf.jkt`).
    DpopKeyMismatch,
    /// [`validate_dpop`](crate::JwksValidator::validate_dpop) was called on a validator
    /// without a [DPoP base URL](crate::JwksValidatorBuilder::dpop_base_url), which checks
    /// no proof. (The extractors treat the `DPoP` scheme of such a validator as any scheme
    /// they do not know: [`AuthError::MissingToken`], as before DPoP support.)
    DpopNotEnabled,
}

impl InvalidToken {
    /// The human-readable description sent as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => "the token is malformed",
            Self::UnsupportedAlgorithm => "the token's signing algorithm is not accepted",
            Self::WrongType => "the token is not a JWT access token (typ must be at+jwt)",
            Self::CriticalHeader => "the token requires header extensions (crit) that are not supported",
            Self::UnknownKey => "the token was signed with an unknown key",
            Self::KeyAlgorithmMismatch => "the token's algorithm does not match its key",
            Self::BadSignature => "the token's signature is invalid",
            Self::WrongIssuer => "the token was issued by another issuer",
            Self::WrongAudience => "the token is not meant for this resource server",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::MissingClaim => "the token lacks a required claim",
            Self::Inactive => "the token is not active",
            Self::NotAnAccessToken => "the token is not a bearer access token",
            Self::BoundToKey => "the token is bound to a key (cnf), which this resource server cannot check",
            Self::DpopBoundAsBearer => {
                "the token is DPoP-bound: send it with the DPoP authorization scheme and a DPoP proof"
            }
            Self::NotDpopBound => "the token is not DPoP-bound: send it with the Bearer authorization scheme",
            Self::DpopKeyMismatch => "the token is bound to another key than the one that signed the DPoP proof",
            Self::DpopNotEnabled => "this resource server does not accept the DPoP authorization scheme",
        }
    }
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Why a DPoP proof (RFC 9449 §4) was refused. The `Display` text becomes the
/// `error_description` of the `WWW-Authenticate: DPoP` challenge; it names the check that
/// failed without echoing the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidDpopProof {
    /// RFC 9449 §7.1: the `DPoP` scheme was used without a `DPoP` header.
    Missing,
    /// RFC 9449 §4.3 step 1: more than one `DPoP` header.
    Multiple,
    /// RFC 9449 §4.3 step 2: not one JWS compact JWT (three base64url parts of JSON), or
    /// longer than we look at, or a claim of the wrong JSON type.
    Malformed,
    /// RFC 9449 §4.3 step 4: the header's `typ` is not `dpop+jwt`.
    WrongType,
    /// RFC 9449 §4.3 step 5: `alg` is not one of the asymmetric algorithms accepted (never
    /// `none` nor an HMAC algorithm).
    UnsupportedAlgorithm,
    /// RFC 7515 §4.1.11: the header has `crit`; we understand no extension.
    CriticalHeader,
    /// RFC 9449 §4.3 step 7: the header's `jwk` is missing, holds private key members, is
    /// of a type or size not accepted (RSA outside 2048–4096 bits or with an exponent other
    /// than 65537, a curve other than P-256, P-384 or Ed25519), or does not fit `alg`.
    InvalidKey,
    /// RFC 9449 §4.3 step 6: the signature does not verify with the header's `jwk`.
    BadSignature,
    /// RFC 9449 §4.3 step 3: `jti`, `htm`, `htu`, `iat` or (with an access token) `ath` is
    /// missing.
    MissingClaim,
    /// RFC 9449 §4.2: `jti` is empty or longer than 256 characters.
    InvalidJti,
    /// RFC 9449 §4.3 step 8: `htm` is not the request's method.
    WrongMethod,
    /// RFC 9449 §4.3 step 9: `htu` is not the request's URL (query and fragment ignored),
    /// or the request's path is not in RFC 3986 normal form (dot segments, `%2e`, a
    /// backslash, a percent-escaped unreserved character, a lower-case escape): the router
    /// chose its handler by that path as it is, so it is not matched with a normalised one.
    WrongUrl,
    /// RFC 9449 §4.3 step 11: `iat` is further in the future than the validator allows.
    NotYetValid,
    /// RFC 9449 §4.3 step 11: `iat` is older than the validator allows.
    Expired,
    /// RFC 9449 §4.3 step 12: `ath` is not the hash of the access token sent with it.
    AccessTokenHashMismatch,
    /// RFC 9449 §11.1: this proof (its `jti` with its key) was already accepted by this
    /// validator.
    Replayed,
}

impl InvalidDpopProof {
    /// The human-readable description sent as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Missing => "the DPoP authorization scheme needs a DPoP proof header",
            Self::Multiple => "the request has more than one DPoP header",
            Self::Malformed => "the DPoP proof is not a well-formed JWT",
            Self::WrongType => "the DPoP proof's typ must be dpop+jwt",
            Self::UnsupportedAlgorithm => "the DPoP proof's signing algorithm is not accepted",
            Self::CriticalHeader => "the DPoP proof requires header extensions (crit) that are not supported",
            Self::InvalidKey => "the DPoP proof's jwk is not an acceptable public key for its alg",
            Self::BadSignature => "the DPoP proof's signature is invalid",
            Self::MissingClaim => "the DPoP proof lacks a required claim (jti, htm, htu, iat, ath)",
            Self::InvalidJti => "the DPoP proof's jti must be 1 to 256 characters",
            Self::WrongMethod => "the DPoP proof's htm is not the method of this request",
            Self::WrongUrl => {
                "the DPoP proof's htu is not the URL of this request, or the request path is not in \
                 normal form (no dot segments, backslashes, or needless or lower-case percent-escapes)"
            }
            Self::NotYetValid => "the DPoP proof's iat is too far in the future",
            Self::Expired => "the DPoP proof is too old (iat)",
            Self::AccessTokenHashMismatch => "the DPoP proof's ath is not the hash of the access token",
            Self::Replayed => "the DPoP proof has already been used",
        }
    }
}

impl fmt::Display for InvalidDpopProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}
