//! Repository traits: what the use cases need from storage. Each method that changes
//! more than one row is one transaction in the store.

use async_trait::async_trait;
use portcullis_protocol::{ClientId, SigningAlg};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::*;

/// Errors a store reports; constraint violations are already domain errors here.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated; the text names what already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// The record to change does not exist.
    #[error("not found")]
    NotFound,
    /// The record changed since it was read (its revision moved on); nothing was written.
    #[error("changed meanwhile")]
    Stale,
    /// A stored value could not be read back into a domain type.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Anything else (connection lost, I/O); the cause goes to the log.
    #[error("store error: {0}")]
    Unexpected(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database could not be reached, or dropped the connection or the statement (a
    /// restart, a failover, a busy or deadlocked write): the same work may succeed if
    /// tried again.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait ClientRepo: Send + Sync {
    /// Fails with `Conflict` when the id is taken.
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn get_client(&self, id: &ClientId) -> StoreResult<Option<Client>>;
    /// Clients whose id or name contains `search` (case-insensitive), by name then id:
    /// at most `limit`, after skipping `offset`.
    async fn clients_page(&self, search: Option<&str>, limit: u32, offset: u32) -> StoreResult<Vec<Client>>;
    /// Every client `clients_page` would list.
    async fn list_clients(&self, search: Option<&str>) -> StoreResult<Vec<Client>> {
        self.clients_page(search, u32::MAX, 0).await
    }
    /// Replaces every field but `id` and `created_at` and, in the same transaction,
    /// records `revocations` (disabling a client revokes its outstanding tokens). Only
    /// if the stored revision is still `client.revision`, which then counts up by one:
    /// `Stale` otherwise (nothing written), `NotFound` if absent.
    async fn update_client(&self, client: &Client, revocations: &[Revocation]) -> StoreResult<()>;
    /// `update_client` for a client being disabled: in the same transaction its grants are
    /// revoked (`revoked_at = now`; refresh tokens and unused codes deleted) and covered by
    /// grant revocations next to `revocations`, so re-enabling the client does not bring a
    /// stolen refresh token back. Consents stay. `Stale` and `NotFound` as there.
    async fn disable_client(&self, client: &Client, now: OffsetDateTime, revocations: &[Revocation])
    -> StoreResult<()>;
    /// Deletes the client and, in the same transaction, its codes, grants, refresh tokens
    /// and consents, and records `revocations` (its grants and itself). `NotFound` if absent.
    async fn delete_client(&self, id: &ClientId, revocations: &[Revocation]) -> StoreResult<()>;
    /// Ids of the client's grants that are not revoked.
    async fn active_grant_ids_for_client(&self, id: &ClientId) -> StoreResult<Vec<Uuid>>;
    /// Up to `limit` clients that registered themselves (`self_registered`), are still
    /// managed with their registration access token (not taken over by an operator), are
    /// not disabled, registered before `created_before` and hold no grant, oldest first.
    async fn unused_registered_clients(&self, created_before: OffsetDateTime, limit: u32)
    -> StoreResult<Vec<ClientId>>;
    /// Records a one-time `jti` the client sent, until `expires_at`: a client assertion's
    /// (RFC 7523 §3 item 7) or, under the client id `dpop proofs`, a DPoP proof's (RFC
    /// 9449 §11.1). True
    /// if it was not recorded, or only until before `now`; false, and nothing written,
    /// for a `jti` of this client still recorded (a replay).
    async fn record_client_jti(
        &self,
        client_id: &ClientId,
        jti: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Deletes up to `limit` recorded client assertions that expired before `now`.
    async fn delete_expired_client_assertions(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Fails with `Conflict` when the username is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn get_user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// Users whose username, email or name contains `search` (case-insensitive), by
    /// username then id: at most `limit`, after skipping `offset`.
    async fn users_page(&self, search: Option<&str>, limit: u32, offset: u32) -> StoreResult<Vec<User>>;
    /// Every user `users_page` would list.
    async fn list_users(&self, search: Option<&str>) -> StoreResult<Vec<User>> {
        self.users_page(search, u32::MAX, 0).await
    }
    /// Sets the password hash and, in the same transaction, revokes the user's grants
    /// (deleting their refresh tokens, recording `revocations`) and deletes their sessions.
    /// With `replacing`, only if that is still the stored hash (`Conflict` otherwise:
    /// another change came first).
    async fn set_user_password(
        &self,
        id: Uuid,
        password_hash: &str,
        replacing: Option<&str>,
        now: OffsetDateTime,
        revocations: &[Revocation],
    ) -> StoreResult<()>;
    /// Sets the disabled flag; when disabling, revokes grants and sessions as above.
    async fn set_user_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: OffsetDateTime,
        revocations: &[Revocation],
    ) -> StoreResult<()>;
    /// Ids of the user's grants that are not revoked.
    async fn active_grant_ids_for_user(&self, id: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Deletes the user, revoking in the same transaction what `set_user_disabled` does
    /// (and recording `revocations`, so their access tokens are refused until they
    /// expire); their codes, grants, refresh tokens, consents and sessions go with them.
    /// `NotFound` when there is no such user.
    async fn delete_user(&self, id: Uuid, now: OffsetDateTime, revocations: &[Revocation]) -> StoreResult<()>;
    /// Replaces the user's profile claims (`email`, `email_verified`, `name`,
    /// `given_name`, `family_name`) and sets
    /// `updated_at`, if they are still those of `previous` (false, and nothing written,
    /// when another write changed them since); `NotFound` when there is no such user.
    async fn update_user_profile(&self, user: &User, previous: &User) -> StoreResult<bool>;
}

#[async_trait]
pub trait AdminRepo: Send + Sync {
    /// Fails with `Conflict` when the username is taken.
    async fn insert_admin(&self, admin: &Admin) -> StoreResult<()>;
    async fn get_admin_by_username(&self, username: &str) -> StoreResult<Option<Admin>>;
    async fn count_admins(&self) -> StoreResult<u64>;
    /// Every operator account, by username.
    async fn list_admins(&self) -> StoreResult<Vec<Admin>>;
    /// Replaces the password hash of the account `id` (and nothing else, so a concurrent
    /// role change is not undone); `NotFound` if absent.
    async fn set_admin_password_hash(&self, id: Uuid, password_hash: &str) -> StoreResult<()>;
    /// Sets the role of the account `id`, unless that would leave no account with the
    /// admin role: then nothing changes and the answer is `false`. The check and the write
    /// are one step, so two concurrent demotions of the last two admins cannot both pass.
    /// `NotFound` if absent.
    async fn set_admin_role(&self, id: Uuid, role: AdminRole) -> StoreResult<bool>;
    /// Deletes the account `id`, unless it is the last one with the admin role (`false`,
    /// checked as in `set_admin_role`). `NotFound` if absent.
    async fn delete_admin(&self, id: Uuid) -> StoreResult<bool>;
}

#[async_trait]
pub trait KeyRepo: Send + Sync {
    async fn insert_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// All keys, newest first.
    async fn list_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// One rotation of `new_next.alg`'s keys, atomically: that algorithm's active key
    /// becomes retired (`retired_at = now`, `publish_until`), its next key `next_kid`
    /// becomes active (`activated_at = now`), and `new_next` is inserted. Other algorithms'
    /// keys are untouched. `NotFound` if `next_kid` is not that algorithm's next key (any
    /// more: a rotation done meanwhile replaced it), and then nothing changes.
    async fn rotate_keys(
        &self,
        next_kid: &str,
        new_next: &SigningKeyRecord,
        now: OffsetDateTime,
        publish_until: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Makes the next key of `new_next.alg` active (`activated_at = now`) where that
    /// algorithm has no active key, and inserts `new_next`, atomically. `NotFound` without
    /// a next key; `Conflict` if another node did it first.
    async fn promote_next_key(&self, new_next: &SigningKeyRecord, now: OffsetDateTime) -> StoreResult<()>;
    /// Retires the active and next keys of `alg` (an algorithm no longer in use): they
    /// stay published until `publish_until`.
    async fn retire_keys(&self, alg: SigningAlg, now: OffsetDateTime, publish_until: OffsetDateTime)
    -> StoreResult<()>;
    /// Deletes retired keys whose `publish_until` has passed; returns how many.
    async fn delete_expired_keys(&self, now: OffsetDateTime) -> StoreResult<u64>;
    /// Ends the publication of retired key `kid` at `now` (it leaves the JWKS); `NotFound`
    /// unless it is a retired key.
    async fn withdraw_key(&self, kid: &str, now: OffsetDateTime) -> StoreResult<()>;
    /// Replaces key `kid`'s encrypted private key (the same key sealed with another KEK);
    /// `NotFound` if the key is gone.
    async fn reseal_key(&self, kid: &str, private_key_encrypted: &[u8]) -> StoreResult<()>;
    /// The server's own secret `name` (sealed with the KEK), if it has been made.
    async fn server_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores secret `name` unless it exists; a node that loses the race to make it
    /// reads the winner's with `server_secret`.
    async fn insert_server_secret(&self, name: &str, secret_encrypted: &[u8], now: OffsetDateTime) -> StoreResult<()>;
    /// Every server secret, by name.
    async fn list_server_secrets(&self) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Replaces secret `name` (the same secret sealed with another KEK); `NotFound` if
    /// it is gone.
    async fn reseal_server_secret(&self, name: &str, secret_encrypted: &[u8]) -> StoreResult<()>;
}

/// Outcome of redeeming an authorization code.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedemption {
    /// The code was fresh: it is now consumed and the grant (and refresh token) stored.
    Redeemed,
    /// The code was already redeemed; the grant it produced has been revoked.
    Replayed { grant_id: Uuid },
    /// No such code, or it expired.
    Invalid,
}

#[async_trait]
pub trait CodeRepo: Send + Sync {
    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    /// A code that is not consumed and not expired.
    async fn get_code(&self, code_hash: &Digest, now: OffsetDateTime) -> StoreResult<Option<AuthorizationCode>>;
    /// In one transaction: consume the code if it is fresh and record `grant` and
    /// `refresh`; if it was already consumed, revoke the grant it produced (recording
    /// `replay_revocation_expiry` as the revocation's lifetime) — RFC 6749 §4.1.2.
    async fn redeem_code(
        &self,
        code_hash: &Digest,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        now: OffsetDateTime,
        replay_revocation_expiry: OffsetDateTime,
    ) -> StoreResult<CodeRedemption>;
    /// Deletes at most `limit` codes that expired before `before`; returns how many.
    async fn delete_expired_codes(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
    /// Deletes the codes not yet redeemed that `user_id` was given in the browser
    /// session `sid` (it ended: none may start a grant of it now); returns how many.
    async fn delete_session_codes(&self, user_id: Uuid, sid: &str) -> StoreResult<u64>;
    /// Deletes the codes not yet redeemed that `user_id` was given for `client_id` (the
    /// person or an operator took the client's access away: none may start a grant of it
    /// now); returns how many.
    async fn delete_client_codes(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<u64>;
    /// Keeps a pushed authorization request (RFC 9126), serialized, under the digest of
    /// its `request_uri`.
    async fn insert_pushed_request(
        &self,
        request_hash: &Digest,
        client_id: &ClientId,
        request: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Deletes the pushed request and returns it, if it was there, was pushed by
    /// `client_id` and had not expired by `now`: of two concurrent takes, one gets it;
    /// another client's attempt leaves it in place.
    async fn take_pushed_request(
        &self,
        request_hash: &Digest,
        client_id: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>>;
    /// Deletes at most `limit` pushed requests that expired before `now`.
    async fn delete_expired_pushed_requests(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// What one poll of a device code finds (RFC 8628 §3.4, §3.5).
#[derive(Debug, Clone, PartialEq)]
pub enum DevicePoll {
    /// No such device code for this client.
    Invalid,
    /// Redeemed already, into the grant `grant_id` (kept a day after it expired, as used
    /// codes are).
    Redeemed {
        grant_id: Uuid,
    },
    /// It expired before anyone decided, or before it was redeemed.
    Expired,
    /// Not decided yet.
    Pending,
    /// Not decided yet, and this poll came sooner than `interval` seconds after the last:
    /// the interval is now 5 s longer.
    SlowDown,
    Denied,
    /// Approved and not yet redeemed.
    Approved(Box<DeviceAuthorization>),
}

#[async_trait]
pub trait DeviceRepo: Send + Sync {
    /// `Conflict` when its device code or user code is taken (the caller draws another
    /// user code).
    async fn insert_device_authorization(&self, device: &DeviceAuthorization) -> StoreResult<()>;
    /// The undecided device authorization with this user code, if it has not expired by
    /// `now`.
    async fn get_pending_device_authorization(
        &self,
        user_code_hash: &Digest,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeviceAuthorization>>;
    /// Records `decision` (approved or denied) on the undecided device authorization with
    /// this user code if it has not expired by `now`: false, and nothing written,
    /// otherwise (decided meanwhile, in another tab say, or expired).
    async fn decide_device_authorization(
        &self,
        user_code_hash: &Digest,
        decision: &DeviceDecision,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// One poll by `client_id` at `now`, in one step: an undecided one records the poll
    /// (`last_polled_at = now`) and, if it came less than `interval` seconds after the
    /// last one, lengthens the interval by 5 s (`SlowDown`). Times are compared in whole
    /// seconds (SQLite keeps no more), so a device that waits `interval` seconds is never
    /// told to slow down. Another client's device code is `Invalid` and left as it was.
    async fn poll_device_authorization(
        &self,
        device_code_hash: &Digest,
        client_id: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<DevicePoll>;
    /// In one transaction: marks the approved device authorization redeemed (into
    /// `grant`), if it is approved, not redeemed and not expired by `now`, and stores
    /// `grant` and `refresh`.
    /// False, and nothing written, otherwise (of two concurrent redemptions, one wins).
    async fn redeem_device_authorization(
        &self,
        device_code_hash: &Digest,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Deletes `user_id`'s approvals for `client_id` not yet redeemed (the person withdrew
    /// the application's access); returns how many.
    async fn delete_device_approvals(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<u64>;
    /// Deletes at most `limit` device authorizations that expired before `before`,
    /// redeemed or not.
    async fn delete_expired_device_authorizations(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// Outcome of rotating a refresh token.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshRotation {
    /// The old token is now used and the new one stored.
    Rotated,
    /// The old token had been used before: the whole grant is now revoked (RFC 9700 §4.14.2).
    Reused { grant_id: Uuid },
    /// Unknown, expired, or its grant is revoked.
    Invalid,
}

#[async_trait]
pub trait GrantRepo: Send + Sync {
    async fn get_grant(&self, id: Uuid) -> StoreResult<Option<Grant>>;
    /// The user's grants that are not revoked and not expired.
    async fn list_grants_for_user(&self, user_id: Uuid, now: OffsetDateTime) -> StoreResult<Vec<Grant>>;
    /// The clients the user signed in to, each with the browser session (`sid`) it was
    /// signed in from: the distinct `(client_id, sid)` pairs of the user's OpenID grants
    /// (`openid` in their scope: the client got an ID token naming the session) still
    /// stored, whatever their state (revoked or expired ones too: the client's own
    /// session may outlive its tokens), only those of session `sid` if given. At most
    /// `limit` pairs, the most recently granted first.
    async fn list_signed_in(
        &self,
        user_id: Uuid,
        sid: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(ClientId, String)>>;
    /// Marks the grant revoked, deletes its refresh tokens and records `revocation`, in
    /// one transaction. Returns false if the grant did not exist or was already revoked.
    async fn revoke_grant(&self, id: Uuid, now: OffsetDateTime, revocation: &Revocation) -> StoreResult<bool>;
    /// Count of grants that are neither revoked nor expired.
    async fn count_active_grants(&self, now: OffsetDateTime) -> StoreResult<u64>;
    /// Deletes at most `limit` grants whose `expires_at` is before `before`, revoked or
    /// not, with their refresh tokens; returns how many grants.
    async fn delete_expired_grants(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

#[async_trait]
pub trait RefreshRepo: Send + Sync {
    /// A refresh token by digest, with its grant, whatever their state.
    async fn get_refresh_token(&self, token_hash: &Digest) -> StoreResult<Option<(RefreshToken, Grant)>>;
    /// The same, with the grant's user, in one read: what refresh rotation needs (a
    /// round trip fewer per refresh on PostgreSQL, issue 7).
    async fn get_refresh_token_with_user(
        &self,
        token_hash: &Digest,
    ) -> StoreResult<Option<(RefreshToken, Grant, User)>>;
    /// Refresh rotation's common case, in one statement on PostgreSQL (issue 7): if
    /// `old_hash` is unused, unexpired, issued to `client_id`, and its grant is neither
    /// revoked nor expired, marks it used and inserts its successor `new_hash` with the
    /// grant's scope, expiring at `expires_at` or at the grant's expiry if that is sooner.
    /// Returns the successor with its grant and the grant's user. `None` when any of
    /// this does not hold, or the grant was asked for an API (RFC 8707: whether the client
    /// may still have tokens for it is checked before anything is spent), and then nothing
    /// is written: the caller takes the general path (`get_refresh_token_with_user`, then
    /// `rotate_refresh_token`), which tells why.
    async fn rotate_live_refresh_token(
        &self,
        old_hash: &Digest,
        client_id: &ClientId,
        new_hash: &Digest,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Option<(RefreshToken, Grant, User)>>;
    /// In one transaction: mark `old_hash` used if it is unused, unexpired and its grant is
    /// live, and insert `new`; if it was already used, revoke the grant (recording
    /// `reuse_revocation`) — RFC 9700 §4.14.2.
    async fn rotate_refresh_token(
        &self,
        old_hash: &Digest,
        new: &RefreshToken,
        now: OffsetDateTime,
        reuse_revocation_expiry: OffsetDateTime,
    ) -> StoreResult<RefreshRotation>;
    /// Deletes at most `limit` refresh tokens, used or not, whose `expires_at` is before
    /// `before`; returns how many. A used token kept past its expiry still reveals a
    /// replay (RFC 9700 §4.14.2) until this deletes it.
    async fn delete_expired_refresh_tokens(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
    /// Binds a grant that is not bound yet to the DPoP key `jkt` (RFC 9449 §5: a public
    /// client's refresh tokens, once it refreshes with a proof). False, and nothing
    /// written, if the grant is absent or already bound.
    async fn bind_grant_to_dpop_key(&self, grant_id: Uuid, jkt: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait RevocationRepo: Send + Sync {
    /// Records a revocation of a single access token (RFC 7009).
    async fn insert_revocation(&self, revocation: &Revocation) -> StoreResult<()>;
    /// Revocations with `seq > after` that have not expired at `now`, in `seq` order.
    async fn revocations_since(&self, after: i64, now: OffsetDateTime) -> StoreResult<Vec<RevocationEntry>>;
    /// Deletes at most `limit` revocations that expired before `now`; returns how many.
    async fn delete_expired_revocations(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
    /// Resolves when another node may have recorded a revocation or changed the signing
    /// keys (PostgreSQL LISTEN/NOTIFY), saying which. Stores with a single writer process
    /// never resolve.
    async fn wait_for_announcement(&self) -> StoreResult<Announced>;
}

/// What `RevocationRepo::wait_for_announcement` woke for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// Revocations were recorded.
    Revocations,
    /// The signing keys changed (a rotation, a withdrawal), perhaps with revocations;
    /// also the answer after (re)connecting, when announcements may have been missed.
    Keys,
}

#[async_trait]
pub trait ConsentRepo: Send + Sync {
    async fn get_consent(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<Option<Consent>>;
    /// Every consent a user has given, in no particular order.
    async fn list_consents_for_user(&self, user_id: Uuid) -> StoreResult<Vec<Consent>>;
    /// Inserts or replaces the consent for (user, client).
    async fn upsert_consent(&self, consent: &Consent) -> StoreResult<()>;
    /// Returns false if there was none.
    async fn delete_consent(&self, user_id: Uuid, client_id: &ClientId) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// Updates the session stored under `id_hash`; false, and nothing written, when there
    /// is none. Never inserts: a request that loaded a session before it was signed out
    /// or revoked (a password reset, "sign out this browser") and saves it afterwards
    /// must not bring it back. New sessions go through `create_session`.
    async fn save_session(&self, session: &BrowserSession) -> StoreResult<bool>;
    /// Inserts only if `id_hash` is unused; false on collision.
    async fn create_session(&self, session: &BrowserSession) -> StoreResult<bool>;
    /// A session that has not expired at `now`.
    async fn load_session(&self, id_hash: &Digest, now: OffsetDateTime) -> StoreResult<Option<BrowserSession>>;
    async fn delete_session(&self, id_hash: &Digest) -> StoreResult<()>;
    async fn list_sessions_for_user(&self, user_id: Uuid, now: OffsetDateTime) -> StoreResult<Vec<BrowserSession>>;
    /// Deletes at most `limit` sessions expired at `now`; returns how many.
    async fn delete_expired_sessions(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
    /// Stores a pending authorization request, then deletes its owner's older ones
    /// beyond the `keep` newest (the new one always stays: `keep` counts as at least 1).
    async fn insert_pending_request(&self, pending: &PendingRequest, keep: u32) -> StoreResult<()>;
    /// The pending request `id` of `owner`, unless expired at `now`.
    async fn get_pending_request(
        &self,
        id: &str,
        owner: &Digest,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PendingRequest>>;
    /// Replaces the request of pending request `id` of `owner`; false if there is none.
    async fn update_pending_request(&self, id: &str, owner: &Digest, request: &str) -> StoreResult<bool>;
    /// Deletes pending request `id` of `owner`; false if there was none.
    async fn delete_pending_request(&self, id: &str, owner: &Digest) -> StoreResult<bool>;
    /// Deletes at most `limit` pending requests expired at `now`; returns how many.
    async fn delete_expired_pending_requests(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    async fn insert_audit_events(&self, events: &[AuditEvent]) -> StoreResult<()>;
    /// Newest first.
    async fn list_audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>>;
    /// Deletes at most `limit` audit events with `at` before `before`; returns how many.
    async fn delete_audit_events_before(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// Admin API keys (issue 4), stored by the digest of their value.
#[async_trait]
pub trait ApiKeyRepo: Send + Sync {
    /// Fails with `Conflict` when the id or digest is taken.
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// The key with this digest, whatever its state.
    async fn get_api_key_by_hash(&self, key_hash: &Digest) -> StoreResult<Option<ApiKey>>;
    /// Every key, revoked and expired ones included, newest first.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Sets `revoked_at`; false if the key does not exist or was already revoked.
    async fn revoke_api_key(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<bool>;
    /// Initial access tokens (RFC 7591 §3). `Conflict` if the id or digest is taken.
    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()>;
    /// Every initial access token, spent, expired and revoked ones included, newest first.
    async fn list_initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>>;
    async fn get_initial_access_token_by_hash(&self, token_hash: &Digest) -> StoreResult<Option<InitialAccessToken>>;
    /// Sets `revoked_at`; false if the token does not exist or was already revoked.
    async fn revoke_initial_access_token(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<bool>;
    /// Spends one registration of the token with this digest, atomically: counts its
    /// `uses_left` down if it has a limit, when it is neither revoked, expired at `now`
    /// nor used up. Its id when it was spent; `None` otherwise (so of two registrations
    /// racing for its last use, one gets `None`).
    async fn spend_initial_access_token(&self, token_hash: &Digest, now: OffsetDateTime) -> StoreResult<Option<Uuid>>;
}

/// Reads and single-row changes only the admin surface needs (issue 4).
#[async_trait]
pub trait AdminViewRepo: Send + Sync {
    async fn count_clients(&self) -> StoreResult<u64>;
    async fn count_users(&self) -> StoreResult<u64>;
    /// Audit events of `event_type` at or after `since`.
    async fn count_audit_events(&self, event_type: &str, since: OffsetDateTime) -> StoreResult<u64>;
    /// Deletes one browser session if it belongs to `user_id`; false otherwise.
    async fn delete_user_session(&self, user_id: Uuid, id_hash: &Digest) -> StoreResult<bool>;
}

#[async_trait]
pub trait HealthRepo: Send + Sync {
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;
}

/// Everything a Portcullis node needs from storage.
pub trait Store:
    ClientRepo
    + UserRepo
    + AdminRepo
    + KeyRepo
    + CodeRepo
    + DeviceRepo
    + GrantRepo
    + RefreshRepo
    + RevocationRepo
    + ConsentRepo
    + SessionRepo
    + AuditRepo
    + HealthRepo
    + ApiKeyRepo
    + AdminViewRepo
    + LoginFailureRepo
    + WebhookRepo
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: ClientRepo
        + UserRepo
        + AdminRepo
        + KeyRepo
        + CodeRepo
        + DeviceRepo
        + GrantRepo
        + RefreshRepo
        + RevocationRepo
        + ConsentRepo
        + SessionRepo
        + AuditRepo
        + HealthRepo
        + ApiKeyRepo
        + AdminViewRepo
        + LoginFailureRepo
        + WebhookRepo
        + Send
        + Sync
        + 'static
{
}

/// Failed-login counts for the lockout (issue 6), kept in the store so that every node
/// applies the same backoff.
#[async_trait]
pub trait LoginFailureRepo: Send + Sync {
    async fn get_login_failures(&self, key: &Digest) -> StoreResult<Option<LoginFailures>>;
    /// Adds one failure atomically and returns the new count; a count whose last
    /// failure is older than `reset_before` starts again at 1.
    async fn record_login_failure(
        &self,
        key: &Digest,
        now: OffsetDateTime,
        reset_before: OffsetDateTime,
    ) -> StoreResult<LoginFailures>;
    async fn clear_login_failures(&self, key: &Digest) -> StoreResult<()>;
    /// Takes `n` failures off a count; a count that reaches zero is deleted (a successful
    /// sign-in takes its own address's failures off the account-wide count).
    async fn forget_login_failures(&self, key: &Digest, n: u32) -> StoreResult<()>;
    /// Deletes at most `limit` counts whose last failure is older than `before`; returns
    /// how many.
    async fn delete_stale_login_failures(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// Event webhooks and their delivery log (issue 6).
#[async_trait]
pub trait WebhookRepo: Send + Sync {
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    async fn get_webhook(&self, id: Uuid) -> StoreResult<Option<Webhook>>;
    /// Every webhook, oldest first.
    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>>;
    /// Deletes the webhook and its deliveries; `NotFound` if absent.
    async fn delete_webhook(&self, id: Uuid) -> StoreResult<()>;
    /// Replaces webhook `id`'s encrypted secret (the same secret sealed with another KEK);
    /// `NotFound` if the webhook is gone.
    async fn reseal_webhook_secret(&self, id: Uuid, secret_encrypted: &[u8]) -> StoreResult<()>;
    async fn insert_webhook_deliveries(&self, deliveries: &[WebhookDelivery]) -> StoreResult<()>;
    /// Claims up to `limit` attempts that are due at `now` (pending, or sending with an
    /// expired lease): marks them `Sending` with `next_attempt_at = lease_until` and
    /// returns them, oldest first. Two nodes never claim the same attempt.
    async fn claim_webhook_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// In one transaction: records the outcome of a claimed attempt (`status`,
    /// `response_code`, `error`, `completed_at`) and inserts `retry` if given.
    async fn finish_webhook_delivery(
        &self,
        finished: &WebhookDelivery,
        retry: Option<&WebhookDelivery>,
    ) -> StoreResult<()>;
    /// Attempts, newest first, of one webhook or of all.
    async fn list_webhook_deliveries(&self, webhook_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;
    /// Deletes at most `limit` finished attempts created before `before`; returns how many.
    async fn delete_old_webhook_deliveries(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}
