//! `ClientRepo` on SQLite.

use async_trait::async_trait;
use portcullis_core::StoreError;
use portcullis_core::model::{Client, ClientKind, Revocation};
use portcullis_core::repo::{ClientRepo, StoreResult};
use portcullis_protocol::{ClientId, SigningAlg};
use sqlx::FromRow;
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments};
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec;
use crate::error::{Found, ResultExt};
use crate::revocations;

macro_rules! client_columns {
    () => {
        "id, name, kind, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes, \
         first_party, require_pkce, access_token_ttl, refresh_token_ttl, cors_origins, logo_uri, \
         policy_uri, disabled, created_at, updated_at, revision, id_token_signed_response_alg, jwks, \
         dpop_bound_access_tokens, resources, require_pushed_authorization_requests, jwks_uri, \
         require_signed_request_object, backchannel_logout_uri, registration_token_hash, self_registered, \
         pairwise_sector, frontchannel_logout_uri, userinfo_signed_response_alg, sector_identifier_uri, \
         introspection_signed_response_alg, token_endpoint_auth_signing_alg, request_object_signing_alg, \
         backchannel_logout_session_required, tos_uri, request_uris, default_max_age"
    };
}

#[derive(FromRow)]
struct ClientRow {
    id: String,
    name: String,
    kind: String,
    secret_hash: Option<Vec<u8>>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    scopes: String,
    first_party: bool,
    require_pkce: bool,
    access_token_ttl: Option<i64>,
    refresh_token_ttl: Option<i64>,
    cors_origins: String,
    logo_uri: Option<String>,
    policy_uri: Option<String>,
    tos_uri: Option<String>,
    request_uris: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    revision: i64,
    id_token_signed_response_alg: Option<String>,
    jwks: Option<String>,
    dpop_bound_access_tokens: bool,
    resources: String,
    require_pushed_authorization_requests: bool,
    jwks_uri: Option<String>,
    require_signed_request_object: bool,
    backchannel_logout_uri: Option<String>,
    registration_token_hash: Option<Vec<u8>>,
    self_registered: bool,
    pairwise_sector: Option<String>,
    frontchannel_logout_uri: Option<String>,
    userinfo_signed_response_alg: Option<String>,
    sector_identifier_uri: Option<String>,
    introspection_signed_response_alg: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    request_object_signing_alg: Option<String>,
    backchannel_logout_session_required: bool,
    default_max_age: Option<i64>,
}

impl ClientRow {
    fn into_client(self) -> StoreResult<Client> {
        Ok(Client {
            id: codec::client_id("clients.id", &self.id)?,
            name: self.name,
            kind: codec::named("clients.kind", &self.kind, ClientKind::parse)?,
            secret_hash: self
                .secret_hash
                .map(|h| codec::digest("clients.secret_hash", &h))
                .transpose()?,
            redirect_uris: codec::redirect_uris("clients.redirect_uris", &self.redirect_uris)?,
            post_logout_redirect_uris: codec::redirect_uris(
                "clients.post_logout_redirect_uris",
                &self.post_logout_redirect_uris,
            )?,
            grant_types: codec::grant_types("clients.grant_types", &self.grant_types)?,
            scopes: codec::scope("clients.scopes", &self.scopes)?,
            first_party: self.first_party,
            require_pkce: self.require_pkce,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            cors_origins: codec::strings("clients.cors_origins", &self.cors_origins)?,
            logo_uri: self.logo_uri,
            policy_uri: self.policy_uri,
            tos_uri: self.tos_uri,
            request_uris: codec::strings("clients.request_uris", &self.request_uris)?,
            disabled: self.disabled,
            created_at: codec::time("clients.created_at", self.created_at)?,
            updated_at: codec::time("clients.updated_at", self.updated_at)?,
            revision: self.revision,
            id_token_signed_response_alg: alg(
                "clients.id_token_signed_response_alg",
                self.id_token_signed_response_alg,
            )?,
            jwks: self.jwks,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            resources: codec::strings("clients.resources", &self.resources)?,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            jwks_uri: self.jwks_uri,
            require_signed_request_object: self.require_signed_request_object,
            backchannel_logout_uri: self.backchannel_logout_uri,
            registration_token_hash: self
                .registration_token_hash
                .map(|h| codec::digest("clients.registration_token_hash", &h))
                .transpose()?,
            self_registered: self.self_registered,
            pairwise_sector: self.pairwise_sector,
            frontchannel_logout_uri: self.frontchannel_logout_uri,
            userinfo_signed_response_alg: alg(
                "clients.userinfo_signed_response_alg",
                self.userinfo_signed_response_alg,
            )?,
            sector_identifier_uri: self.sector_identifier_uri,
            introspection_signed_response_alg: alg(
                "clients.introspection_signed_response_alg",
                self.introspection_signed_response_alg,
            )?,
            token_endpoint_auth_signing_alg: self.token_endpoint_auth_signing_alg,
            request_object_signing_alg: self.request_object_signing_alg,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            default_max_age: self.default_max_age,
        })
    }
}

/// A stored algorithm name, if any.
fn alg(column: &str, stored: Option<String>) -> StoreResult<Option<SigningAlg>> {
    stored
        .map(|a| codec::named(column, &a, |s| SigningAlg::parse(s).ok()))
        .transpose()
}

/// Binds `$1`–`$39`: every column but `created_at`, in the order of the statements below.
fn bind_client(sql: &'static str, c: &Client) -> StoreResult<Query<'static, Sqlite, SqliteArguments<'static>>> {
    Ok(sqlx::query(sql)
        .bind(c.id.as_str().to_owned())
        .bind(c.name.clone())
        .bind(c.kind.as_str())
        .bind(c.secret_hash.map(|h| h.to_vec()))
        .bind(codec::to_json_list(c.redirect_uris.iter().map(|u| u.as_str()))?)
        .bind(codec::to_json_list(
            c.post_logout_redirect_uris.iter().map(|u| u.as_str()),
        )?)
        .bind(codec::to_json_list(c.grant_types.iter().map(|g| g.as_str()))?)
        .bind(c.scopes.as_string())
        .bind(c.first_party)
        .bind(c.require_pkce)
        .bind(c.access_token_ttl)
        .bind(c.refresh_token_ttl)
        .bind(codec::to_json_list(c.cors_origins.iter().map(String::as_str))?)
        .bind(c.logo_uri.clone())
        .bind(c.policy_uri.clone())
        .bind(c.disabled)
        .bind(codec::ts(c.updated_at))
        .bind(c.revision)
        .bind(c.id_token_signed_response_alg.map(SigningAlg::as_str))
        .bind(c.jwks.clone())
        .bind(c.dpop_bound_access_tokens)
        .bind(codec::to_json_list(c.resources.iter().map(String::as_str))?)
        .bind(c.require_pushed_authorization_requests)
        .bind(c.jwks_uri.clone())
        .bind(c.require_signed_request_object)
        .bind(c.backchannel_logout_uri.clone())
        .bind(c.registration_token_hash.map(|h| h.to_vec()))
        .bind(c.self_registered)
        .bind(c.pairwise_sector.clone())
        .bind(c.frontchannel_logout_uri.clone())
        .bind(c.userinfo_signed_response_alg.map(SigningAlg::as_str))
        .bind(c.sector_identifier_uri.clone())
        .bind(c.introspection_signed_response_alg.map(SigningAlg::as_str))
        .bind(c.token_endpoint_auth_signing_alg.clone())
        .bind(c.request_object_signing_alg.clone())
        .bind(c.backchannel_logout_session_required)
        .bind(c.tos_uri.clone())
        .bind(codec::to_json_list(c.request_uris.iter().map(String::as_str))?)
        .bind(c.default_max_age))
}

const INSERT: &str = "INSERT INTO clients (id, name, kind, secret_hash, redirect_uris, post_logout_redirect_uris, \
     grant_types, scopes, first_party, require_pkce, access_token_ttl, refresh_token_ttl, cors_origins, \
     logo_uri, policy_uri, disabled, updated_at, revision, id_token_signed_response_alg, jwks, \
     dpop_bound_access_tokens, resources, require_pushed_authorization_requests, jwks_uri, \
     require_signed_request_object, backchannel_logout_uri, registration_token_hash, self_registered, \
     pairwise_sector, frontchannel_logout_uri, userinfo_signed_response_alg, sector_identifier_uri, \
     introspection_signed_response_alg, token_endpoint_auth_signing_alg, request_object_signing_alg, \
     backchannel_logout_session_required, tos_uri, request_uris, default_max_age, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, \
     $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40)";

const UPDATE: &str = "UPDATE clients SET name = $2, kind = $3, secret_hash = $4, redirect_uris = $5, \
     post_logout_redirect_uris = $6, grant_types = $7, scopes = $8, first_party = $9, require_pkce = $10, \
     access_token_ttl = $11, refresh_token_ttl = $12, cors_origins = $13, logo_uri = $14, policy_uri = $15, \
     disabled = $16, updated_at = $17, revision = $18 + 1, id_token_signed_response_alg = $19, \
     jwks = $20, dpop_bound_access_tokens = $21, resources = $22, \
     require_pushed_authorization_requests = $23, jwks_uri = $24, require_signed_request_object = $25, \
     backchannel_logout_uri = $26, registration_token_hash = $27, self_registered = $28, \
     pairwise_sector = $29, frontchannel_logout_uri = $30, userinfo_signed_response_alg = $31, \
     sector_identifier_uri = $32, introspection_signed_response_alg = $33, \
     token_endpoint_auth_signing_alg = $34, request_object_signing_alg = $35, \
     backchannel_logout_session_required = $36, tos_uri = $37, request_uris = $38, default_max_age = $39 \
     WHERE id = $1 AND revision = $18";

/// Replaces the client's row (every field but `id` and `created_at`) if its revision is
/// still `client.revision`, and counts the revision up; `Stale` if it is not, `NotFound` if
/// the client is absent.
async fn update_row(conn: &mut sqlx::SqliteConnection, client: &Client) -> StoreResult<()> {
    let done = bind_client(UPDATE, client)?.execute(&mut *conn).await.db()?;
    if done.rows_affected() == 0 {
        let exists = sqlx::query_scalar::<_, i32>("SELECT 1 FROM clients WHERE id = $1")
            .bind(client.id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .db()?;
        return Err(if exists.is_some() {
            StoreError::Stale
        } else {
            StoreError::NotFound
        });
    }
    Ok(())
}

#[async_trait]
impl ClientRepo for SqliteStore {
    async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        bind_client(INSERT, client)?
            .bind(codec::ts(client.created_at))
            .execute(&self.writer)
            .await
            .conflict("client id")?;
        Ok(())
    }

    async fn get_client(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        sqlx::query_as::<_, ClientRow>(concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .db()?
            .map(ClientRow::into_client)
            .transpose()
    }

    async fn clients_page(&self, search: Option<&str>, limit: u32, offset: u32) -> StoreResult<Vec<Client>> {
        sqlx::query_as::<_, ClientRow>(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE $1 IS NULL \
              OR instr(lower(id), lower($1)) > 0 OR instr(lower(name), lower($1)) > 0 \
             ORDER BY lower(name), id LIMIT $2 OFFSET $3"
        ))
        .bind(search)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await
        .db()?
        .into_iter()
        .map(ClientRow::into_client)
        .collect()
    }

    async fn update_client(&self, client: &Client, revocations: &[Revocation]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        update_row(&mut tx, client).await?;
        revocations::record(&mut tx, revocations).await?;
        tx.commit().await.db()
    }

    async fn disable_client(
        &self,
        client: &Client,
        now: time::OffsetDateTime,
        revocations: &[Revocation],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        update_row(&mut tx, client).await?;
        crate::grants::revoke_client(&mut tx, client.id.as_str(), now, revocations).await?;
        tx.commit().await.db()
    }

    async fn delete_client(&self, id: &ClientId, revocations: &[Revocation]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        // Codes, grants, refresh tokens and consents go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .found()?;
        revocations::record(&mut tx, revocations).await?;
        tx.commit().await.db()
    }

    async fn active_grant_ids_for_client(&self, id: &ClientId) -> StoreResult<Vec<Uuid>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE client_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .db()?;
        ids.iter().map(|s| codec::uuid("grants.id", s)).collect()
    }

    async fn unused_registered_clients(
        &self,
        created_before: time::OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<ClientId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM clients WHERE self_registered AND NOT disabled AND registration_token_hash IS NOT NULL \
             AND created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM grants WHERE grants.client_id = clients.id) \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(codec::ts(created_before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .db()?;
        ids.iter().map(|s| codec::client_id("clients.id", s)).collect()
    }

    async fn record_client_jti(
        &self,
        client_id: &ClientId,
        jti: &str,
        expires_at: time::OffsetDateTime,
        now: time::OffsetDateTime,
    ) -> StoreResult<bool> {
        // A row kept past its time (not yet cleaned up) is taken over.
        let done = sqlx::query(
            "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE client_assertions.expires_at < $4",
        )
        .bind(client_id.as_str())
        .bind(jti)
        .bind(codec::ts(expires_at))
        .bind(codec::ts(now))
        .execute(&self.writer)
        .await
        .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_expired_client_assertions(&self, now: time::OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.delete_batch(
            "DELETE FROM client_assertions WHERE rowid IN \
             (SELECT rowid FROM client_assertions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}
