//! DPoP (RFC 9449): the checks a resource server makes of the proof that comes with a
//! DPoP-bound access token — its header and key, signature, claims, its binding to the
//! request and to the token — and the memory of accepted proofs that refuses a replay.
//!
//! A validator checks DPoP only when its builder was given the API's public base URL
//! (`dpop_base_url`): the `htu` of a proof must name the URL the client called, and that
//! cannot be learnt from the request itself (the `Host` header is the client's to choose,
//! and a proxy in front may have changed scheme, host and path prefix).

mod htu;
mod key;
mod replay;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::claims::VerifiedClaims;
use crate::clock::{Clock, unix_seconds};
use crate::error::{AuthError, InvalidDpopProof, InvalidToken};
use crate::http::require_https;
use crate::jwt::{is_media_type, present};

use self::htu::{BaseUrl, Mismatch};
use self::key::{ProofKey, proof_algorithm};
use self::replay::{KeyId, ProofId, Refusal, ReplayCache};

/// How old a proof's `iat` may be unless configured otherwise. RFC 9449 §11.1 leaves the
/// window to the server; five minutes covers clock skew and a slow network without keeping
/// a stolen proof usable for long.
pub const DEFAULT_PROOF_MAX_AGE: Duration = Duration::from_secs(300);

/// How far in the future a proof's `iat` may be unless configured otherwise: the client's
/// clock may run ahead of ours.
pub const DEFAULT_PROOF_MAX_FUTURE: Duration = Duration::from_secs(60);

/// The most proofs remembered against replay unless configured otherwise. Each takes about
/// 150 bytes, so the default bounds the cache to about 15 MB.
///
/// A proof is remembered from when it is accepted until [`REPLAY_MARGIN`] (or `max_future`,
/// if longer) after its `iat` leaves the window: with the default window and a proof made
/// just now, 5 min + 60 s + 1 s = 361 s. So a process takes at most
/// `max_entries / 361 s` ≈ 277 DPoP requests per second on average with the defaults;
/// past that, new proofs get [`AuthError::DpopReplayCacheFull`] (503) until a slot frees.
pub const DEFAULT_REPLAY_CACHE_MAX_ENTRIES: usize = 100_000;

/// Unless configured otherwise, one key (one client instance) may hold at most the replay
/// cache's size divided by this: a tenth of it, 10 000 proofs with
/// [`DEFAULT_REPLAY_CACHE_MAX_ENTRIES`] — ≈ 27 requests per second sustained over the 361 s
/// a proof is remembered, far more than one client makes. Past it, that key's new proofs
/// get [`AuthError::DpopKeyQuotaExceeded`] (429), and every other key goes on being served:
/// one client with one bound token cannot fill the cache and lock every other DPoP client
/// out (RFC 9449 §11.1 asks for the memory, not at whose expense).
pub const DEFAULT_REPLAY_CACHE_KEY_SHARE_DIVISOR: usize = 10;

/// How much longer than its window a proof is remembered, at least (`max_future` if that is
/// longer). Without it, a proof forgotten the second its `iat` left the window would be
/// accepted again if the clock then stepped back (NTP, a VM resumed); the margin covers a
/// step of that size. The authorization server keeps its `jti` records 5 minutes past the
/// window for the same reason, between nodes whose clocks disagree.
pub const REPLAY_MARGIN: Duration = Duration::from_secs(60);

/// The longest proof age a builder accepts: a proof is remembered for that long, and a
/// longer window makes a stolen proof usable longer too.
pub const MAX_PROOF_AGE: Duration = Duration::from_secs(3600);

/// The most a builder lets a proof's `iat` be in the future.
pub const MAX_PROOF_FUTURE: Duration = Duration::from_secs(300);

/// The proof algorithms accepted, as offered in the `algs` of a `WWW-Authenticate: DPoP`
/// challenge (RFC 9449 §7.1): the asymmetric JWS algorithms Portcullis lists in
/// `dpop_signing_alg_values_supported`, `Ed25519` being the RFC 9864 name of EdDSA over
/// Ed25519. Never `none` nor an HMAC algorithm (RFC 9449 §4.3 step 5).
pub const PROOF_ALGORITHMS: &str = "ES256 ES384 EdDSA Ed25519 RS256 RS384 RS512 PS256 PS384 PS512";

/// Longest proof we look at. A proof with a 4096-bit RSA key (the largest accepted) is
/// under 3 KiB; this bounds the work a garbage header can cause.
pub(crate) const MAX_PROOF_LEN: usize = 8 * 1024;

/// RFC 9449 §4.2: the `jti` is at most this many characters here (a UUID or 16 random
/// bytes in base64url is what clients send).
const MAX_JTI_CHARS: usize = 256;

/// The DPoP settings of a validator builder, checked by [`DpopOptions::build`].
#[derive(Debug, Clone)]
pub(crate) struct DpopOptions {
    pub base_url: Option<String>,
    pub max_age: Duration,
    pub max_future: Duration,
    pub max_entries: usize,
    /// `None`: a [tenth](DEFAULT_REPLAY_CACHE_KEY_SHARE_DIVISOR) of `max_entries`.
    pub max_entries_per_key: Option<usize>,
}

impl Default for DpopOptions {
    fn default() -> Self {
        Self {
            base_url: None,
            max_age: DEFAULT_PROOF_MAX_AGE,
            max_future: DEFAULT_PROOF_MAX_FUTURE,
            max_entries: DEFAULT_REPLAY_CACHE_MAX_ENTRIES,
            max_entries_per_key: None,
        }
    }
}

impl DpopOptions {
    /// The verifier, or `None` when no base URL was given (DPoP then stays off). The base
    /// URL must be `https`, or plain http on loopback or with `insecure_http`, like every
    /// other URL a builder takes; and it may have no user info, query or fragment.
    pub(crate) fn build(self, clock: Arc<dyn Clock>, insecure_http: bool) -> Result<Option<DpopVerifier>, AuthError> {
        let Some(base_url) = self.base_url else {
            return Ok(None);
        };
        require_https(&base_url, "the DPoP base URL", insecure_http)?;
        let base = BaseUrl::parse(&base_url)
            .map_err(|reason| AuthError::Config(format!("the DPoP base URL {base_url:?} {reason}")))?;
        if self.max_age < Duration::from_secs(1) || self.max_age > MAX_PROOF_AGE {
            return Err(AuthError::Config(format!(
                "the DPoP proof age ({:?}) must be between 1 s and {} s",
                self.max_age,
                MAX_PROOF_AGE.as_secs()
            )));
        }
        if self.max_future > MAX_PROOF_FUTURE {
            return Err(AuthError::Config(format!(
                "the DPoP proof future window ({:?}) is over the maximum of {} s",
                self.max_future,
                MAX_PROOF_FUTURE.as_secs()
            )));
        }
        if self.max_entries == 0 {
            return Err(AuthError::Config(
                "the DPoP replay cache needs room for at least one proof: without it a proof \
                 could be replayed (RFC 9449 §11.1)"
                    .into(),
            ));
        }
        let max_per_key = match self.max_entries_per_key {
            Some(0) => {
                return Err(AuthError::Config(
                    "the DPoP replay cache needs room for at least one proof per key".into(),
                ));
            }
            // A quota over the whole cache is no quota: as if it were the whole cache.
            Some(n) => n.min(self.max_entries),
            None => (self.max_entries / DEFAULT_REPLAY_CACHE_KEY_SHARE_DIVISOR).max(1),
        };
        let seconds = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Ok(Some(DpopVerifier {
            base_url,
            base,
            max_age: seconds(self.max_age),
            max_future: seconds(self.max_future),
            margin: seconds(self.max_future.max(REPLAY_MARGIN)),
            clock,
            replay: Mutex::new(ReplayCache::new(self.max_entries, max_per_key)),
        }))
    }
}

/// Checks DPoP proofs for one validator and remembers the ones it accepted.
pub(crate) struct DpopVerifier {
    /// As configured, for the accessors.
    base_url: String,
    base: BaseUrl,
    /// Seconds a proof's `iat` may be in the past.
    max_age: i64,
    /// Seconds a proof's `iat` may be in the future.
    max_future: i64,
    /// Seconds a proof is remembered past its window: [`REPLAY_MARGIN`] or `max_future`.
    margin: i64,
    clock: Arc<dyn Clock>,
    replay: Mutex<ReplayCache>,
}

/// The JOSE header of a proof (RFC 9449 §4.2).
#[derive(Deserialize)]
struct ProofHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    /// Read as a value and parsed apart, so a bad key is reported as such.
    #[serde(default)]
    jwk: Option<serde_json::Value>,
    /// RFC 7515 §4.1.11, as for access tokens: any `crit` refuses the proof.
    #[serde(default, rename = "crit", deserialize_with = "present")]
    has_crit: bool,
}

/// The claims of a proof (RFC 9449 §4.2). Optional here so a missing one is reported as
/// such; one of the wrong JSON type makes the proof malformed.
#[derive(Deserialize)]
struct ProofClaims {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    htm: Option<String>,
    #[serde(default)]
    htu: Option<String>,
    /// A NumericDate (RFC 7519 §2), which may have a fraction.
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    ath: Option<String>,
}

/// A proof that passed every check of its own (RFC 9449 §4.3 steps 1–11 and `ath`); what is
/// left is the binding to the token and the replay check.
#[derive(Debug)]
pub(crate) struct CheckedProof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// What the replay cache remembers the proof by: SHA-256 of the key's thumbprint and the
    /// `jti` (RFC 9449 §11.1: a `jti` is unique per key).
    replay_key: ProofId,
    /// Whose proof it is, for the per-key quota: SHA-256 of the key's thumbprint.
    owner: KeyId,
    /// Until when the proof is remembered (exclusive): the last second at which it could
    /// still be accepted, plus one, plus the margin for a clock stepping back.
    until: i64,
}

/// What `validate_dpop` of either validator does: `dpop` is its verifier (`None` when
/// DPoP is off), `validate_token` its check of the token itself.
pub(crate) async fn validate_with(
    dpop: Option<&DpopVerifier>,
    token: &str,
    proof: &str,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    validate_token: impl Future<Output = Result<VerifiedClaims, AuthError>>,
) -> Result<VerifiedClaims, AuthError> {
    let dpop = dpop.ok_or(InvalidToken::DpopNotEnabled)?;
    let target = ProofTarget {
        method: method.as_str(),
        path: uri.path(),
    };
    dpop.validate(token, proof, target, validate_token).await
}

/// What a request tells about itself for RFC 9449 §4.3 steps 8 and 9.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProofTarget<'a> {
    /// The request method, as sent.
    pub method: &'a str,
    /// The request path (without query) exactly as the router saw it, appended to the base
    /// URL; it must be in normal form already (see [`BaseUrl::matches`]).
    pub path: &'a str,
}

impl DpopVerifier {
    /// The public base URL as configured.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// RFC 9449 §7.1 for one request: the proof's own checks (§4.3), then the token
    /// (`validate_token`, run only once the proof passed), then the binding (the proof's
    /// key is the one in `cnf.jkt`), then the replay check. A proof is remembered only
    /// once everything passed, so a request refused for another reason does not use it up;
    /// one already remembered is refused before the token is validated.
    pub(crate) async fn validate(
        &self,
        token: &str,
        proof: &str,
        target: ProofTarget<'_>,
        validate_token: impl Future<Output = Result<VerifiedClaims, AuthError>>,
    ) -> Result<VerifiedClaims, AuthError> {
        let now = unix_seconds(self.clock.now());
        let checked = self.check_proof(proof, target, token, now)?;
        if self.lock_replay().seen(&checked.replay_key, now) {
            return Err(InvalidDpopProof::Replayed.into());
        }
        let claims = validate_token.await?;
        match claims.dpop_jkt.as_deref() {
            None => return Err(InvalidToken::NotDpopBound.into()),
            Some(jkt) if jkt != checked.jkt => return Err(InvalidToken::DpopKeyMismatch.into()),
            Some(_) => {}
        }
        // The token may have taken an introspection call: read the clock again.
        let now = unix_seconds(self.clock.now());
        let refusal = self
            .lock_replay()
            .remember(checked.replay_key, checked.owner, checked.until, now);
        match refusal {
            Ok(()) => Ok(claims),
            Err(Refusal::Replayed) => Err(InvalidDpopProof::Replayed.into()),
            Err(Refusal::KeyQuota { retry_after }) => {
                // The thumbprint and client id are public; they tell the operator who it is.
                tracing::warn!(client_id = %claims.client_id, jkt = %checked.jkt, retry_after = ?retry_after,
                    "a DPoP key has as many proofs in the replay cache as one key may; refusing its new \
                    proofs until one expires (raise dpop_replay_cache_max_entries_per_key?)");
                Err(AuthError::DpopKeyQuotaExceeded { retry_after })
            }
            Err(Refusal::Full { retry_after }) => {
                tracing::warn!(retry_after = ?retry_after, "the DPoP replay cache is full; refusing DPoP requests \
                    until an entry expires (raise dpop_replay_cache_max_entries?)");
                Err(AuthError::DpopReplayCacheFull { retry_after })
            }
        }
    }

    fn lock_replay(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// RFC 9449 §4.3 steps 1–11 (step 1, a single `DPoP` header, is the extractor's) and the
    /// `ath` of step 12, at `now` (seconds since the epoch).
    pub(crate) fn check_proof(
        &self,
        proof: &str,
        target: ProofTarget<'_>,
        access_token: &str,
        now: i64,
    ) -> Result<CheckedProof, InvalidDpopProof> {
        // Step 2: one JWS in compact serialization, within bounds.
        if proof.len() > MAX_PROOF_LEN {
            return Err(InvalidDpopProof::Malformed);
        }
        let mut parts = proof.split('.');
        let (Some(header_part), Some(payload_part), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidDpopProof::Malformed);
        };
        let header: ProofHeader = decode_json(header_part)?;
        if header.has_crit {
            return Err(InvalidDpopProof::CriticalHeader);
        }
        // Step 4.
        if !header.typ.as_deref().is_some_and(|t| is_media_type(t, "dpop+jwt")) {
            return Err(InvalidDpopProof::WrongType);
        }
        // Step 5: by name, before any key is parsed.
        let alg = proof_algorithm(&header.alg).ok_or(InvalidDpopProof::UnsupportedAlgorithm)?;
        // Step 7 (and the key step 6 needs).
        let jwk = header.jwk.ok_or(InvalidDpopProof::InvalidKey)?;
        let key = ProofKey::from_jwk(jwk, &header.alg, alg)?;
        // Step 6.
        if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
            return Err(InvalidDpopProof::Malformed);
        }
        let signing_input = proof.get(..header_part.len() + 1 + payload_part.len()).unwrap_or("");
        key.verify(signature, signing_input.as_bytes(), alg)?;
        // Step 3: nothing of the payload is read before the signature is known good.
        let claims: ProofClaims = decode_json(payload_part)?;
        let (Some(jti), Some(htm), Some(htu), Some(iat), Some(ath)) =
            (claims.jti, claims.htm, claims.htu, claims.iat, claims.ath)
        else {
            return Err(InvalidDpopProof::MissingClaim);
        };
        if jti.is_empty() || jti.chars().count() > MAX_JTI_CHARS {
            return Err(InvalidDpopProof::InvalidJti);
        }
        // Step 8: methods are case-sensitive (RFC 9110 §9.1).
        if htm != target.method {
            return Err(InvalidDpopProof::WrongMethod);
        }
        // Step 9: `htu` normalised, the request path as the router saw it.
        if let Err(mismatch) = self.base.matches(&htu, target.path) {
            if mismatch == Mismatch::PathNotNormal {
                tracing::debug!(
                    path = target.path,
                    "refused a DPoP proof: the request path is not in normal form (dot segments, \
                    backslashes, needless or lower-case percent-escapes), so it cannot be matched \
                    with htu"
                );
            }
            return Err(InvalidDpopProof::WrongUrl);
        }
        // Step 11 (step 10, the server nonce, is not used: we hand out no `DPoP-Nonce`).
        let iat = numeric_date(&iat).ok_or(InvalidDpopProof::Malformed)?;
        if iat > now.saturating_add(self.max_future) {
            return Err(InvalidDpopProof::NotYetValid);
        }
        if iat < now.saturating_sub(self.max_age) {
            return Err(InvalidDpopProof::Expired);
        }
        // Step 12, first half: `ath` is base64url(SHA-256(the token as sent)) (RFC 9449 §4.2).
        if ath != access_token_hash(access_token) {
            return Err(InvalidDpopProof::AccessTokenHashMismatch);
        }
        Ok(CheckedProof {
            replay_key: replay_key(&key.thumbprint, &jti),
            owner: key_id(&key.thumbprint),
            until: iat
                .saturating_add(self.max_age)
                .saturating_add(1)
                .saturating_add(self.margin),
            jkt: key.thumbprint,
        })
    }
}

impl std::fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("base_url", &self.base_url)
            .field("max_age", &self.max_age)
            .field("max_future", &self.max_future)
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

/// RFC 9449 §7.2: a token bound to a key is not a bearer token. Which reason depends on
/// whether the validator could have taken it with a proof.
pub(crate) fn bearer_only(claims: VerifiedClaims, dpop_enabled: bool) -> Result<VerifiedClaims, InvalidToken> {
    match (&claims.dpop_jkt, dpop_enabled) {
        (None, _) => Ok(claims),
        (Some(_), true) => Err(InvalidToken::DpopBoundAsBearer),
        (Some(_), false) => {
            tracing::warn!(
                "refused a DPoP-bound access token: this validator accepts DPoP only once \
                it has a DPoP base URL (dpop_base_url on its builder)"
            );
            Err(InvalidToken::BoundToKey)
        }
    }
}

/// Decodes one base64url part of the proof into `T`; any failure is a malformed proof.
fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, InvalidDpopProof> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| InvalidDpopProof::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| InvalidDpopProof::Malformed)
}

/// Whole seconds of a NumericDate, fraction dropped; `None` for what no clock shows.
fn numeric_date(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?.floor();
        // `as` saturates; the range check keeps absurd values out rather than clamped in.
        (f.is_finite() && f.abs() < 1e15).then_some(f as i64)
    })
}

/// RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the access token's ASCII.
pub(crate) fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()))
}

/// Whose a proof is, for the per-key quota.
fn key_id(jkt: &str) -> KeyId {
    let mut id = [0u8; 32];
    id.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jkt.as_bytes()).as_ref());
    id
}

fn replay_key(jkt: &str, jti: &str) -> ProofId {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    // The thumbprint has a fixed length, so the pair is unambiguous without a separator;
    // one is added all the same.
    ctx.update(jkt.as_bytes());
    ctx.update(b"\0");
    ctx.update(jti.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

#[cfg(test)]
mod tests;
