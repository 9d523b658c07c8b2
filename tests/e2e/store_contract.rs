//! The store contract: every repository method of `portcullis_core::Store`, the same
//! cases run against SQLite (`store_contract::sqlite::*`) and PostgreSQL
//! (`store_contract::postgres::*`), each on a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_core::model::*;
use portcullis_core::repo::*;
use portcullis_core::{Store, StoreError};
use portcullis_protocol::{ClientId, GrantType, RedirectUri, ScopeSet, SigningAlg};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

mod accounts;
mod clients;
mod codes;
mod devices;
mod tokens;

use accounts::*;
use clients::*;
use codes::*;
use devices::*;
use tokens::*;

/// Generates `sqlite::<case>` and `postgres::<case>` for each `async fn <case>(store)`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (url, _dir) = portcullis_tests::db::fresh_sqlite_url().await;
                    let store = portcullis_store_sqlite::SqliteStore::connect(&url).await.expect("connect to SQLite");
                    store.migrate().await.expect("migrate SQLite");
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let url = portcullis_tests::db::fresh_postgres_url().await;
                    let store = portcullis_store_postgres::PgStore::connect(&url).await.expect("connect to PostgreSQL");
                    store.migrate().await.expect("migrate PostgreSQL");
                    super::$case(store).await;
                }
            )*
        }
    };
}

contract!(
    ping,
    client_roundtrip_and_conflict,
    client_update,
    client_update_revoking,
    client_disable_ends_its_grants,
    client_list_search,
    client_delete_cascades,
    unused_registered_clients_are_listed,
    client_assertions_are_recorded_once,
    user_roundtrip_conflict_and_search,
    user_updates_of_missing_user_are_not_found,
    user_profile_update,
    password_change_revokes_grants_sessions_and_codes,
    disabling_revokes_and_enabling_does_not,
    deleting_a_user_revokes_and_removes_what_is_theirs,
    admins,
    key_insert_list_and_rotate,
    key_rotation_without_next_is_not_found,
    server_secrets_are_made_once,
    code_get_conflict_and_expiry,
    code_redeem_then_replay,
    code_redeem_expired_or_unknown_is_invalid,
    code_concurrent_redemption,
    delete_expired_codes,
    pushed_requests_are_taken_once,
    device_insert_conflict_and_pending_lookup,
    device_decisions_are_recorded_once,
    device_polls_slow_down_and_report_decisions,
    device_redemption_is_once,
    device_concurrent_redemption,
    device_authorizations_go_with_client_and_user,
    delete_expired_device_authorizations,
    device_approvals_end_with_the_account_or_client,
    device_approvals_withdrawn_by_their_person,
    grants_list_count_and_revoke,
    grants_list_signed_in,
    codes_of_an_ended_session,
    codes_of_a_withdrawn_client,
    refresh_rotate_then_reuse,
    refresh_invalid_cases,
    refresh_concurrent_rotation,
    refresh_live_rotation,
    refresh_live_concurrent_rotation,
    refresh_live_rotation_many_at_once,
    refresh_live_rotation_mixed_at_once,
    grants_are_bound_to_a_dpop_key_once,
    live_rotation_leaves_grants_for_an_api,
    revocation_log,
    consents,
    sessions,
    pending_requests,
    audit_events,
);

// The admin surface's repositories (issue 4), with their own `contract!` list.
mod admin;

// Lockout counts and webhooks (issue 6), with their own `contract!` list.
mod defense;

// Retention of expired refresh tokens, grants and old audit events, with their own
// `contract!` list.
mod retention;

// ---------------------------------------------------------------------------------------
// Fixtures. Instants are whole seconds: SQLite keeps seconds, PostgreSQL microseconds.

const T0: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn random_digest() -> Digest {
    let mut d = [0u8; 32];
    d[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    d[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    d
}

fn client(id: &str, name: &str) -> Client {
    Client {
        id: ClientId::parse(id).unwrap(),
        name: name.to_owned(),
        kind: ClientKind::Confidential,
        secret_hash: Some(random_digest()),
        redirect_uris: vec![
            RedirectUri::parse("https://app.example/cb").unwrap(),
            RedirectUri::parse("com.example.app:/oauth?x=1").unwrap(),
        ],
        post_logout_redirect_uris: vec![RedirectUri::parse("https://app.example/bye").unwrap()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: ScopeSet::parse("openid profile email").unwrap(),
        first_party: false,
        require_pkce: true,
        access_token_ttl: Some(300),
        refresh_token_ttl: None,
        cors_origins: vec!["https://app.example".to_owned()],
        logo_uri: Some("https://app.example/logo.png".to_owned()),
        policy_uri: None,
        tos_uri: None,
        id_token_signed_response_alg: None,
        jwks: None,
        // Stored and read back as any setting (a client has keys inline or at a URL, which
        // the use cases check, not the store).
        jwks_uri: Some("https://keys.example/jwks".into()),
        // Not the default, so both stores are seen to keep it.
        dpop_bound_access_tokens: true,
        resources: vec![
            "https://api.example/notes".to_owned(),
            "https://api.example/files".to_owned(),
        ],
        require_pushed_authorization_requests: true,
        // Not the default either; `client_roundtrip_and_conflict` and `client_update` also
        // store it false and switch it both ways.
        require_signed_request_object: true,
        // Set here; `client_roundtrip_and_conflict` and `client_update` also store none and
        // switch it both ways.
        backchannel_logout_uri: Some("https://app.example/backchannel-logout".into()),
        registration_token_hash: Some([7; 32]),
        // Not the default; stored and read back.
        self_registered: true,
        // Set here; `client_update` also stores none and switches it both ways.
        pairwise_sector: Some("app.example".into()),
        // Set here; `client_update` also stores none and sets it back.
        frontchannel_logout_uri: Some("https://app.example/frontchannel-logout".into()),
        sector_identifier_uri: Some("https://app.example/sectors.json".into()),
        introspection_signed_response_alg: Some(SigningAlg::ES256),
        token_endpoint_auth_signing_alg: Some("PS256".into()),
        request_object_signing_alg: Some("EdDSA".into()),
        backchannel_logout_session_required: true,
        // Set here; `client_update` also stores none.
        default_max_age: Some(3600),
        // Set here; `client_update` also stores none.
        request_uris: vec![
            "https://app.example/request.jwt".into(),
            "https://app.example/r2.jwt#47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
        ],
        // Set here; `client_update` also stores another.
        userinfo_signed_response_alg: Some(SigningAlg::RS256),
        disabled: false,
        created_at: T0,
        updated_at: T0,
        revision: 0,
    }
}

fn user(username: &str) -> User {
    User {
        id: Uuid::new_v4(),
        username: username.to_owned(),
        email: Some(format!("{username}@example.com")),
        email_verified: true,
        name: Some(format!("{username} Example")),
        given_name: Some(username.to_owned()),
        family_name: Some("Example".to_owned()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        disabled: false,
        created_at: T0,
        updated_at: T0,
    }
}

fn code(c: &Client, u: &User, at: OffsetDateTime) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: random_digest(),
        client_id: c.id.clone(),
        user_id: u.id,
        redirect_uri: c.redirect_uris[0].clone(),
        redirect_uri_explicit: true,
        scope: ScopeSet::parse("openid profile").unwrap(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        auth_time: at - secs(5),
        sid: "sid-1".to_owned(),
        expires_at: at + secs(60),
        created_at: at,
        // Every code and grant of the contract carries one, so both stores are seen to
        // keep it (RFC 9449 §10 and §5).
        dpop_jkt: Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned()),
        resource: None,
    }
}

fn grant_for(code: &AuthorizationCode, at: OffsetDateTime) -> Grant {
    Grant {
        id: Uuid::new_v4(),
        client_id: code.client_id.clone(),
        user_id: code.user_id,
        scope: code.scope.clone(),
        auth_time: code.auth_time,
        sid: code.sid.clone(),
        nonce: code.nonce.clone(),
        created_at: at,
        expires_at: at + Duration::days(30),
        revoked_at: None,
        dpop_jkt: code.dpop_jkt.clone(),
        resource: code.resource.clone(),
    }
}

fn refresh_for(g: &Grant, at: OffsetDateTime) -> RefreshToken {
    RefreshToken {
        token_hash: random_digest(),
        grant_id: g.id,
        client_id: g.client_id.clone(),
        scope: g.scope.clone(),
        created_at: at,
        expires_at: at + Duration::days(14),
        used_at: None,
    }
}

fn grant_revocation(id: Uuid, expires_at: OffsetDateTime) -> Revocation {
    Revocation {
        target: RevocationTarget::Grant(id),
        expires_at,
    }
}

/// A session, signed in (with a `sid` of its own) if it has a user.
fn session(user_id: Option<Uuid>, at: OffsetDateTime, ttl: i64) -> BrowserSession {
    BrowserSession {
        id_hash: random_digest(),
        data: r#"{"csrf":"abc"}"#.to_owned(),
        user_id,
        sid: user_id.map(|_| format!("sid-{}", Uuid::new_v4().simple())),
        user_agent: Some("test-agent/1.0".to_owned()),
        ip: Some("192.0.2.1".to_owned()),
        created_at: at,
        expires_at: at + secs(ttl),
    }
}

fn key(kid: &str, state: KeyState, created_at: OffsetDateTime) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: SigningAlg::RS256,
        state,
        private_key_encrypted: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
        public_jwk: format!(r#"{{"kty":"RSA","kid":"{kid}","n":"AQAB","e":"AQAB"}}"#),
        created_at,
        activated_at: (state == KeyState::Active).then_some(created_at),
        retired_at: None,
        publish_until: None,
    }
}

/// Inserts a client and a user.
async fn setup<S: Store>(s: &S, client_id: &str, username: &str) -> (Client, User) {
    let c = client(client_id, &format!("{client_id} app"));
    let u = user(username);
    s.insert_client(&c).await.unwrap();
    s.insert_user(&u).await.unwrap();
    (c, u)
}

/// A grant with a refresh token, made the only way grants are made: redeeming a code.
async fn issue<S: Store>(s: &S, c: &Client, u: &User, at: OffsetDateTime) -> (Grant, RefreshToken) {
    redeem(s, &code(c, u, at), at).await
}

/// Stores `code` and redeems it at `at` for a grant and its first refresh token.
async fn redeem<S: Store>(s: &S, code: &AuthorizationCode, at: OffsetDateTime) -> (Grant, RefreshToken) {
    s.insert_code(code).await.unwrap();
    let g = grant_for(code, at);
    let r = refresh_for(&g, at);
    let outcome = s
        .redeem_code(&code.code_hash, &g, Some(&r), at, at + secs(600))
        .await
        .unwrap();
    assert_eq!(outcome, CodeRedemption::Redeemed);
    (g, r)
}

async fn log<S: Store>(s: &S) -> Vec<RevocationEntry> {
    s.revocations_since(0, T0).await.unwrap()
}

async fn logged<S: Store>(s: &S, target: &RevocationTarget) -> Option<RevocationEntry> {
    log(s).await.into_iter().find(|e| &e.revocation.target == target)
}

// ---------------------------------------------------------------------------------------
// Backend-specific behaviour.

/// Another node's revocation wakes `wait_for_announcement` through LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wait_for_announcement_wakes_on_another_nodes_revocation() {
    use portcullis_store_postgres::PgStore;
    use std::time::Duration as StdDuration;
    use tokio::time::timeout;

    let url = portcullis_tests::db::fresh_postgres_url().await;
    let node_a = PgStore::connect(&url).await.unwrap();
    node_a.migrate().await.unwrap();
    let node_b = PgStore::connect(&url).await.unwrap();
    let (c, u) = setup(&node_b, "app", "alice").await;
    let (g, _) = issue(&node_b, &c, &u, T0).await;

    // The first call only starts listening and returns at once, so that the caller
    // re-reads anything recorded before LISTEN took effect.
    assert_eq!(
        timeout(StdDuration::from_secs(10), node_a.wait_for_announcement())
            .await
            .expect("first wait returns")
            .unwrap(),
        Announced::Keys,
        "anything may have been missed before listening"
    );

    // A wait started now, and what it woke for (within 10 s of `after`).
    let listen = || {
        let node_a = node_a.clone();
        tokio::spawn(async move { node_a.wait_for_announcement().await })
    };
    let woke = |waiter: tokio::task::JoinHandle<StoreResult<Announced>>, after: &'static str| async move {
        timeout(StdDuration::from_secs(10), waiter)
            .await
            .unwrap_or_else(|_| panic!("wait_for_announcement did not wake within 10 s of {after}"))
            .unwrap()
            .unwrap()
    };

    let waiter = listen();
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "woke without a revocation");
    assert!(
        node_b
            .revoke_grant(g.id, T0, &grant_revocation(g.id, T0 + secs(600)))
            .await
            .unwrap()
    );
    assert_eq!(woke(waiter, "another node's revocation").await, Announced::Revocations);

    // Again, for a revocation recorded by a use case other than revoke_grant.
    let waiter = listen();
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    node_b
        .insert_revocation(&Revocation {
            target: RevocationTarget::AccessToken("jti".into()),
            expires_at: T0,
        })
        .await
        .unwrap();
    assert_eq!(woke(waiter, "a revoked access token").await, Announced::Revocations);

    // A change of the signing keys (here a retirement) is announced as such: the other
    // nodes reload their keys at once.
    let waiter = listen();
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    node_b.retire_keys(SigningAlg::RS256, T0, T0).await.unwrap();
    assert_eq!(woke(waiter, "a key change").await, Announced::Keys);
}

/// SQLite has one writer process: nothing to wait for.
#[tokio::test]
async fn sqlite_wait_for_announcement_never_resolves() {
    let (url, _dir) = portcullis_tests::db::fresh_sqlite_url().await;
    let store = portcullis_store_sqlite::SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
        .insert_revocation(&grant_revocation(Uuid::new_v4(), T0))
        .await
        .unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(200), store.wait_for_announcement()).await;
    assert!(waited.is_err());
}

/// An in-memory SQLite database works (one connection that lives as long as the pool).
#[tokio::test]
async fn sqlite_in_memory() {
    let store = portcullis_store_sqlite::SqliteStore::connect("sqlite::memory:")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (c, u) = setup(&store, "app", "alice").await;
    issue(&store, &c, &u, T0).await;
    assert_eq!(store.count_active_grants(T0).await.unwrap(), 1);
}

/// A stored value that no longer parses is `Corrupt`, not a panic or `Unexpected`.
#[tokio::test]
async fn postgres_corrupt_values_are_reported() {
    use sqlx::Connection;
    let url = portcullis_tests::db::fresh_postgres_url().await;
    let store = portcullis_store_postgres::PgStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let c = client("app", "App");
    store.insert_client(&c).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE clients SET scopes = 'bad\"scope'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(store.get_client(&c.id).await, Err(StoreError::Corrupt(_))));
    sqlx::query("UPDATE clients SET scopes = 'openid', grant_types = '[\"implicit\"]'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(store.get_client(&c.id).await, Err(StoreError::Corrupt(_))));
    sqlx::query("UPDATE clients SET grant_types = 'not json'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(store.list_clients(None).await, Err(StoreError::Corrupt(_))));
}

/// PostgreSQL batches concurrent refresh rotations (issue 7): a token row another
/// transaction holds must not hold up the rotations of other tokens, and is rotated once
/// the holder lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation_is_not_held_up_by_a_locked_token() {
    use sqlx::Connection;
    let url = portcullis_tests::db::fresh_postgres_url().await;
    let store = portcullis_store_postgres::PgStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let (c, u) = setup(&store, "app", "alice").await;
    let mut tokens = Vec::new();
    for _ in 0..9 {
        tokens.push(issue(&store, &c, &u, T0).await.1.token_hash);
    }
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE")
        .bind(tokens[0].as_slice())
        .execute(&mut *tx)
        .await
        .unwrap();
    let at = T0 + secs(5);
    let rotate = |old: Digest| {
        let store = store.clone();
        let client_id = c.id.clone();
        tokio::spawn(async move {
            store
                .rotate_live_refresh_token(&old, &client_id, &random_digest(), at, at + secs(600))
                .await
                .unwrap()
                .is_some()
        })
    };
    let locked = rotate(tokens[0]);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let others: Vec<_> = tokens[1..].iter().map(|t| rotate(*t)).collect();
    for other in others {
        let rotated = tokio::time::timeout(std::time::Duration::from_secs(5), other)
            .await
            .expect("a rotation waited on another token's lock")
            .unwrap();
        assert!(rotated);
    }
    assert!(!locked.is_finished());
    tx.rollback().await.unwrap();
    assert!(locked.await.unwrap());
}

/// Refresh rotation's statement keeps one plan per connection (issue 7): left to choose,
/// PostgreSQL planned it afresh at every execution, 7–10% of the CPU under refresh load.
#[tokio::test]
async fn postgres_rotation_is_planned_once_per_connection() {
    let url = portcullis_tests::db::fresh_postgres_url().await;
    let pool = portcullis_store_postgres::PgStore::pool_options()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let store = portcullis_store_postgres::PgStore::from_pool(pool.clone());
    store.migrate().await.unwrap();
    let (c, u) = setup(&store, "app", "alice").await;
    let at = T0 + secs(5);
    for _ in 0..8 {
        let old = issue(&store, &c, &u, T0).await.1.token_hash;
        let rotated = store
            .rotate_live_refresh_token(&old, &c.id, &random_digest(), at, at + secs(600))
            .await
            .unwrap();
        assert!(rotated.is_some());
    }
    let plans: (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE '%unnest($1::bytea[]%SKIP LOCKED%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(plans, (8, 0), "(generic, custom) plans of the rotation statement");
}

/// Closes every connection to the database but `admin`'s, as a restart would: whether
/// each was closed.
async fn terminate_other_backends(admin: &mut sqlx::PgConnection) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(admin)
    .await
    .unwrap()
}

/// The pool checks only connections that sat idle (issue 7: not one round trip per
/// statement), so one PostgreSQL closed while it sat idle (a restart, a failover, an
/// idle timeout) must still be replaced before use, not handed out to fail.
#[tokio::test]
async fn postgres_replaces_connections_closed_while_idle() {
    use sqlx::Connection;
    let url = portcullis_tests::db::fresh_postgres_url().await;
    let store = portcullis_store_postgres::PgStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let (c, _) = setup(&store, "app", "alice").await;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let closed = terminate_other_backends(&mut admin).await;
    assert!(!closed.is_empty() && closed.iter().all(|&c| c));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_eq!(store.get_client(&c.id).await.unwrap().unwrap().id, c.id);
    }
}

/// Connections busy a moment ago are not pinged before use, so after PostgreSQL closed
/// them all (a restart, a failover) each used to fail its next statement in turn: one
/// error per pooled connection. The first failure now has every connection opened
/// before it replaced at its next use, so one statement fails, not one per connection.
#[tokio::test]
async fn postgres_replaces_the_pool_after_a_lost_connection() {
    use sqlx::Connection;
    let url = portcullis_tests::db::fresh_postgres_url().await;
    let pool = portcullis_store_postgres::PgStore::pool_options()
        .connect(&url)
        .await
        .unwrap();
    let store = portcullis_store_postgres::PgStore::from_pool(pool.clone());
    store.migrate().await.unwrap();
    let (c, _) = setup(&store, "app", "alice").await;
    // Five connections in the pool, each used a moment ago.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let closed = terminate_other_backends(&mut admin).await;
    assert!(closed.len() >= 5 && closed.iter().all(|&c| c), "{closed:?}");
    // Closing is asynchronous: wait until PostgreSQL has let them all go.
    for _ in 0..100 {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut failed = 0;
    for _ in 0..6 {
        match store.get_client(&c.id).await {
            Ok(found) => assert_eq!(found.unwrap().id, c.id),
            Err(e) => {
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                failed += 1;
            }
        }
    }
    assert!(
        failed <= 1,
        "{failed} of 6 statements failed after the connections were closed"
    );
    assert!(store.get_client(&c.id).await.is_ok());
}

/// DESIGN §1: both migration folders hold the same file names.
#[test]
fn migration_folders_match() {
    let names = |backend: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let postgres = names("postgres");
    assert!(!postgres.is_empty());
    assert_eq!(postgres, names("sqlite"));
}

/// Every node migrates at start, so running the migrations again must change nothing.
#[tokio::test]
async fn migrating_twice_is_harmless() {
    use portcullis_core::store_codec::Migrated;
    // What each migration says it did (the log at start, `portcullis migrate`).
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
        .unwrap()
        .count();
    let last = i64::try_from(files).unwrap();
    let first = Migrated {
        before: None,
        after: Some(last),
        applied: u64::try_from(files).unwrap(),
    };
    let again = Migrated {
        before: Some(last),
        after: Some(last),
        applied: 0,
    };
    assert_eq!(
        first.describe(),
        format!("applied {files} migrations to a new database (now at migration {last})")
    );
    assert_eq!(again.describe(), format!("the schema is up to date (migration {last})"));
    let (url, _dir) = portcullis_tests::db::fresh_sqlite_url().await;
    let sqlite = portcullis_store_sqlite::SqliteStore::connect(&url).await.unwrap();
    assert_eq!(sqlite.migrate().await.unwrap(), first);
    assert_eq!(sqlite.migrate().await.unwrap(), again);
    sqlite.ping().await.unwrap();
    let url = portcullis_tests::db::fresh_postgres_url().await;
    let pg = portcullis_store_postgres::PgStore::connect(&url).await.unwrap();
    assert_eq!(pg.migrate().await.unwrap(), first);
    assert_eq!(pg.migrate().await.unwrap(), again);
    pg.ping().await.unwrap();
}

/// Found by an operator review: with nothing listening, the pool's "timed out" is
/// followed by the cause, so an operator sees that the connection was refused.
#[tokio::test]
async fn an_unreachable_postgres_is_named_as_such() {
    let e = match portcullis_store_postgres::PgStore::connect("postgres://postgres@127.0.0.1:1/portcullis").await {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e.to_string(),
    };
    assert!(e.to_lowercase().contains("refused"), "{e}");
}

/// A database a newer version migrated (found by an operator review: one `client list`
/// of a newer binary is enough): an older binary says so, not sqlx's "previously applied
/// but is missing".
#[tokio::test]
async fn a_schema_from_a_newer_version_is_named_as_such() {
    use sqlx::Connection;
    let newer = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (9999, 'from the future', TRUE, $1, 0)";
    let (url, _dir) = portcullis_tests::db::fresh_sqlite_url().await;
    let sqlite = portcullis_store_sqlite::SqliteStore::connect(&url).await.unwrap();
    sqlite.migrate().await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(newer).bind(vec![0_u8]).execute(&mut conn).await.unwrap();
    let e = sqlite.migrate().await.unwrap_err().to_string();
    assert!(
        e.contains("migration 9999") && e.contains("a newer version migrated it"),
        "{e}"
    );
    let url = portcullis_tests::db::fresh_postgres_url().await;
    let pg = portcullis_store_postgres::PgStore::connect(&url).await.unwrap();
    pg.migrate().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(newer).bind(vec![0_u8]).execute(&mut conn).await.unwrap();
    let e = pg.migrate().await.unwrap_err().to_string();
    assert!(
        e.contains("migration 9999") && e.contains("a newer version migrated it"),
        "{e}"
    );
}
