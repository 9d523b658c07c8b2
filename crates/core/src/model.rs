//! Domain records the use cases work with and the stores persist.

use portcullis_protocol::{ClientId, GrantType, RedirectUri, ScopeSet, SigningAlg};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Whether `c` may not appear in a name people read (a client's, a user's, an API key's):
/// control characters, and the invisible bidirectional formatting ones (Unicode UAX #9:
/// U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069), with which a name displays as
/// another (on the consent page, say; "Trojan Source", CVE-2021-42574).
pub fn hidden_in_names(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A SHA-256 digest of a high-entropy secret (client secret, token, code, session id).
pub type Digest = [u8; 32];

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    Confidential,
    Public,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confidential" => Some(Self::Confidential),
            "public" => Some(Self::Public),
            _ => None,
        }
    }
}

/// A registered client application.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    /// SHA-256 of the server-generated secret; `None` for public clients.
    pub secret_hash: Option<Digest>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    /// First-party clients skip the consent page.
    pub first_party: bool,
    /// PKCE S256 required; always true for public clients.
    pub require_pkce: bool,
    /// Per-client override of the access token lifetime, seconds.
    pub access_token_ttl: Option<i64>,
    /// Per-client override of the refresh token lifetime, seconds.
    pub refresh_token_ttl: Option<i64>,
    pub cors_origins: Vec<String>,
    pub logo_uri: Option<String>,
    pub policy_uri: Option<String>,
    /// OIDC Registration §2 `tos_uri`: the client's terms of service, linked on the
    /// consent page.
    pub tos_uri: Option<String>,
    /// OIDC Registration §2 `request_uris`: where the client may have its request objects
    /// read from (OIDC Core §6.2), a fragment naming the content's SHA-256 hash (base64url)
    /// where it registered one. Set by the client's registration only.
    pub request_uris: Vec<String>,
    /// OIDC Registration §2 `id_token_signed_response_alg`: how this client's ID tokens
    /// are signed; `None` is the default, RS256. One of the algorithms the server has keys
    /// for (RS256 and `signing_alg`).
    pub id_token_signed_response_alg: Option<SigningAlg>,
    /// OIDC Registration §2 `userinfo_signed_response_alg`: UserInfo answers this client
    /// with a JWT signed so (`application/jwt`); `None` for plain JSON (no default
    /// algorithm here: unsigned is the default).
    pub userinfo_signed_response_alg: Option<SigningAlg>,
    /// RFC 9701 §6 `introspection_signed_response_alg`: how the JWTs that answer this
    /// client at `/introspect` (when it asks for them) are signed; `None` is the default,
    /// RS256.
    pub introspection_signed_response_alg: Option<SigningAlg>,
    /// OIDC Registration §2 `token_endpoint_auth_signing_alg`: the only algorithm (a JWS
    /// name, as `jws::algorithm_names`) its client assertions may be signed with; `None`
    /// for any the server takes.
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// OIDC Registration §2 `request_object_signing_alg`: the same for its request objects.
    pub request_object_signing_alg: Option<String>,
    /// Back-Channel Logout §2.2 `backchannel_logout_session_required`: its logout tokens
    /// must name a session (`sid`), so the end of all a person's sessions is told one
    /// session at a time.
    pub backchannel_logout_session_required: bool,
    /// OIDC Registration §2 `default_max_age`: the `max_age` of the client's requests
    /// that name none (seconds). Set by the client's registration only.
    pub default_max_age: Option<i64>,
    /// The public keys (a JWK Set, compact JSON) of a confidential client that
    /// authenticates with `private_key_jwt` (RFC 7523 §2.2) instead of a secret; such a
    /// client has no `secret_hash`.
    pub jwks: Option<String>,
    /// OIDC Registration §2 `jwks_uri`: where a confidential client that authenticates
    /// with `private_key_jwt` publishes its public keys, instead of `jwks` (never both);
    /// read when needed and again when an assertion names a key not seen (a rollover).
    pub jwks_uri: Option<String>,
    /// RFC 9449 §5.2 `dpop_bound_access_tokens`: the client's token requests must carry a
    /// DPoP proof, so all its access tokens are bound.
    pub dpop_bound_access_tokens: bool,
    /// RFC 8707: the APIs (absolute URIs) the client may ask for access tokens to with
    /// `resource`; such a token's `aud` is the one asked for.
    pub resources: Vec<String>,
    /// RFC 9126 §6: the client's authorization requests are taken only through `/par`.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 §10.5: the client's authorization requests are taken only as request
    /// objects it signs (`request`, at `/authorize` or `/par`).
    pub require_signed_request_object: bool,
    /// OpenID Connect Back-Channel Logout 1.0 §2.2: where the client is told, with a
    /// logout token, that a person it signed in has signed out here.
    pub backchannel_logout_uri: Option<String>,
    /// OpenID Connect Front-Channel Logout 1.0 §2: the client's page that a sign-out here
    /// loads in a hidden iframe (with `iss` and `sid`); on the origin of one of its
    /// redirect URIs.
    pub frontchannel_logout_uri: Option<String>,
    /// OIDC Core §8.1: the URL of the JSON array of redirect URIs a pairwise client
    /// registered itself with (read and checked then); its host is `pairwise_sector`.
    pub sector_identifier_uri: Option<String>,
    /// RFC 7591 and RFC 7592: SHA-256 of the registration access token of a client that
    /// registered itself at `/register`; `None` for clients an operator registered.
    pub registration_token_hash: Option<Digest>,
    /// The client registered itself at `/register` (RFC 7591): its name and URIs are its
    /// own word, so pages mark it and its redirects wait for a click. Never cleared, not
    /// even when an operator takes its registration over (ending the token above).
    pub self_registered: bool,
    /// OIDC Core §8.1: the sector of a client that sees people under pairwise subject
    /// identifiers (`subject::PairwiseKey`), a host name, or the client's own id when its
    /// redirect URIs name no host it could share; `None` for the public identifier.
    pub pairwise_sector: Option<String>,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Counts the changes to this client: a write names the revision it read and is
    /// refused (`StoreError::Stale`) if another write came first.
    pub revision: i64,
}

impl Client {
    /// It registered itself and still manages its registration (RFC 7592): no operator
    /// has taken it over.
    pub fn manages_own_registration(&self) -> bool {
        self.self_registered && self.registration_token_hash.is_some()
    }

    /// How it authenticates at the token endpoint, as OIDC Registration §2 names it
    /// (a secret client may send it either way: `client_secret_basic` or `_post`).
    pub fn token_endpoint_auth_method(&self) -> &'static str {
        match (self.kind, self.has_keys()) {
            (ClientKind::Public, _) => "none",
            // Keys beside a secret are for its request objects (OIDC Registration §2).
            (ClientKind::Confidential, true) if self.secret_hash.is_some() => "client_secret_basic",
            (ClientKind::Confidential, true) => "private_key_jwt",
            (ClientKind::Confidential, false) => "client_secret_basic",
        }
    }

    /// Whether it authenticates with keys (`private_key_jwt`), registered inline or at a
    /// `jwks_uri`; then it has no secret.
    pub fn has_keys(&self) -> bool {
        self.jwks.is_some() || self.jwks_uri.is_some()
    }

    /// The registered keys as a JSON value, for display (`None` without keys).
    pub fn jwks_json(&self) -> Option<serde_json::Value> {
        self.jwks.as_deref().and_then(|j| serde_json::from_str(j).ok())
    }
}

/// A person who logs in at the authorization server.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// OIDC Core §5.1 `given_name` and `family_name`.
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What an operator account may do in the admin surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Everything.
    Admin,
    /// Read-only.
    Auditor,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "auditor" => Some(Self::Auditor),
            _ => None,
        }
    }
}

/// An operator account for the admin UI.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub role: AdminRole,
    pub created_at: OffsetDateTime,
}

/// Lifecycle of a signing key (DESIGN §3): published before it signs, kept after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published in JWKS, not yet signing.
    Next,
    /// Signing and published.
    Active,
    /// No longer signing; published until `publish_until`.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// A signing key as stored: the private part encrypted under the key-encryption key.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    /// AES-256-GCM: 12-byte nonce followed by ciphertext and tag, of the private key DER.
    pub private_key_encrypted: Vec<u8>,
    /// The public JWK as JSON.
    pub public_jwk: String,
    pub created_at: OffsetDateTime,
    pub activated_at: Option<OffsetDateTime>,
    pub retired_at: Option<OffsetDateTime>,
    /// Retired keys leave JWKS after this instant.
    pub publish_until: Option<OffsetDateTime>,
}

/// An issued, not yet redeemed authorization code (RFC 6749 §4.1.2). Stored by digest.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationCode {
    pub code_hash: Digest,
    pub client_id: ClientId,
    pub user_id: Uuid,
    pub redirect_uri: RedirectUri,
    /// Whether `redirect_uri` was present in the authorization request (RFC 6749 §4.1.3).
    pub redirect_uri_explicit: bool,
    pub scope: ScopeSet,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: OffsetDateTime,
    pub sid: String,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is bound to.
    pub dpop_jkt: Option<String>,
    /// RFC 8707: the API the authorization request asked for.
    pub resource: Option<String>,
}

/// A device authorization request (RFC 8628 §3.1), stored by the digests of its device
/// code and its user code: waiting for the person to decide, decided, then redeemed once
/// by its client's polling.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceAuthorization {
    pub device_code_hash: Digest,
    /// The digest of the normalised user code (`crate::device::normalise_user_code`).
    pub user_code_hash: Digest,
    pub client_id: ClientId,
    pub scope: ScopeSet,
    /// RFC 8707: the API the request asked for.
    pub resource: Option<String>,
    /// The address the device asked from, shown to the person (RFC 8628 §5.4: a request
    /// from far away may be someone else's).
    pub requested_from: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The least number of seconds between two polls (§3.2 `interval`); each poll that
    /// came sooner adds 5 (§3.5 `slow_down`).
    pub interval: i64,
    pub last_polled_at: Option<OffsetDateTime>,
    pub decision: DeviceDecision,
}

/// What the person decided on a device authorization request (RFC 8628 §3.3).
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceDecision {
    Pending,
    /// Allowed by `user_id`, signed in at `auth_time` in the browser session `sid`, for
    /// `scope`: what the verification page showed them (the request's scope, less what
    /// its client had lost by then).
    Approved {
        user_id: Uuid,
        auth_time: OffsetDateTime,
        sid: String,
        scope: ScopeSet,
    },
    Denied,
}

/// A grant: what one user allowed one client, from which every refresh and access token
/// of one authorization descends.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub id: Uuid,
    pub client_id: ClientId,
    pub user_id: Uuid,
    pub scope: ScopeSet,
    pub auth_time: OffsetDateTime,
    pub sid: String,
    pub nonce: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// RFC 9449 §5: a public client's grant obtained with a DPoP proof is bound to the
    /// proof's key (this thumbprint): its refresh tokens need proofs signed with it.
    pub dpop_jkt: Option<String>,
    /// RFC 8707: the API the grant was asked for: its access tokens' `aud`.
    pub resource: Option<String>,
}

/// A refresh token, stored by digest. One grant has one live refresh token at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub token_hash: Digest,
    pub grant_id: Uuid,
    pub client_id: ClientId,
    pub scope: ScopeSet,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// What a revocation entry covers (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum RevocationTarget {
    /// One access token by `jti`.
    AccessToken(String),
    /// Every token carrying this grant id.
    Grant(Uuid),
    /// Every token issued to this client (a deleted client).
    Client(String),
    /// Every token issued to this client up to and including the second `issued_until`
    /// (Unix time, compared with `iat`): a disabled client. Unlike [`Self::Client`] it
    /// leaves the tokens the client gets once re-enabled alone.
    ClientUntil { client_id: String, issued_until: i64 },
}

impl RevocationTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccessToken(_) => "jti",
            Self::Grant(_) => "grant",
            Self::Client(_) => "client",
            Self::ClientUntil { .. } => "client_until",
        }
    }
    pub fn value(&self) -> String {
        match self {
            Self::AccessToken(j) => j.clone(),
            Self::Grant(g) => g.to_string(),
            Self::Client(c) => c.clone(),
            // The time first: it never contains the separator, whatever the client id.
            Self::ClientUntil {
                client_id,
                issued_until,
            } => format!("{issued_until} {client_id}"),
        }
    }
    pub fn from_parts(kind: &str, value: &str) -> Option<Self> {
        match kind {
            "jti" => Some(Self::AccessToken(value.to_owned())),
            "grant" => Uuid::parse_str(value).ok().map(Self::Grant),
            "client" => Some(Self::Client(value.to_owned())),
            "client_until" => {
                let (until, client_id) = value.split_once(' ')?;
                Some(Self::ClientUntil {
                    client_id: client_id.to_owned(),
                    issued_until: until.parse().ok()?,
                })
            }
            _ => None,
        }
    }
}

/// A revocation entry, kept until every token it covers has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub target: RevocationTarget,
    pub expires_at: OffsetDateTime,
}

/// A revocation as read back from the store, with its position in the store's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEntry {
    pub seq: i64,
    pub revocation: Revocation,
}

/// Consent a user gave a client for a set of scopes.
#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    pub user_id: Uuid,
    pub client_id: ClientId,
    pub scope: ScopeSet,
    pub granted_at: OffsetDateTime,
}

/// A browser session as stored for tower-sessions: keyed by the digest of the cookie value.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserSession {
    pub id_hash: Digest,
    /// The session's data, serialized by the web crate.
    pub data: String,
    /// The logged-in user, so sessions can be listed and ended per user.
    pub user_id: Option<Uuid>,
    /// The `sid` the session's sign-in put in ID tokens (OIDC Front- and Back-Channel
    /// Logout), so its end can be told to the clients it signed in to.
    pub sid: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// An authorization request waiting for the person to sign in or consent, held for the
/// browser session whose pending key digests to `owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Random; the login and consent pages name the request by it.
    pub id: String,
    pub owner: Digest,
    /// The request, serialized by the web crate.
    pub request: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// An audit event (DESIGN §5).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: OffsetDateTime,
    /// Dotted event type, e.g. `login.failure`, `token.issued`, `admin.client.created`.
    pub event_type: String,
    pub actor: Option<String>,
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// Event-specific detail as a JSON object.
    pub detail: serde_json::Value,
}

/// Filter for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub event_type: Option<String>,
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: u32,
    pub offset: u32,
}

/// An admin API key (issue 4): a random value shown once, stored as its SHA-256 digest,
/// with a role and an optional expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    /// What the operator called it ("deploy script").
    pub name: String,
    pub key_hash: Digest,
    pub role: AdminRole,
    /// Who created it (an admin username).
    pub created_by: String,
    /// The id of that operator account; `None` for keys made before it was recorded.
    pub created_by_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// An initial access token (RFC 7591 §3): with `registration = "token"`, what a client
/// needs to register itself. An operator hands it out; it is kept as a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialAccessToken {
    pub id: Uuid,
    /// What the operator called it ("partner onboarding").
    pub name: String,
    pub token_hash: Digest,
    /// Who created it (an admin username, or `cli`).
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// How many more registrations it allows; `None` for any number until it expires.
    pub uses_left: Option<i64>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Failed sign-ins of one (account, address) pair, or of one account from all addresses
/// (issue 6, `lockout`), keyed by a digest so the
/// store never holds the usernames people mistype (often a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: u32,
    pub last_failure_at: OffsetDateTime,
}

/// An operator-registered receiver of signed event notifications (issue 6).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Event types it receives: exact (`login.failure`), a prefix (`token.*`) or `*`.
    pub event_types: Vec<String>,
    /// The HMAC secret, encrypted under the key-encryption key: the server must sign
    /// with it, so (unlike a client secret) a digest would not do.
    pub secret_encrypted: Vec<u8>,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
}

/// Where one delivery attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Due at `next_attempt_at`.
    Pending,
    /// Claimed by a node until `next_attempt_at` (its lease).
    Sending,
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver failed or could not be reached; a later attempt may follow.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "sending" => Some(Self::Sending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One attempt to deliver one event to one webhook; a retry is a new row with the next
/// `attempt` number, so the rows are the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub status: DeliveryStatus,
    pub response_code: Option<u16>,
    /// Why the attempt failed (connection refused, timeout, non-2xx), for operators.
    pub error: Option<String>,
    /// The JSON body, fixed when the event is enqueued so every attempt sends the same.
    pub payload: String,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
}
