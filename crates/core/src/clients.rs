//! Client registration and management (CLI and admin), and client authentication at
//! the token, revocation and introspection endpoints (RFC 6749 §2.3).

use portcullis_protocol::{ClientId, ErrorCode, Secret};
use time::Duration;

use crate::admin::Actor;
use crate::audit::Event;
use crate::client_cache::CLIENT_CACHE_TTL;
use crate::crypto::{b64url, digest_eq, random_bytes, random_token, sha256};
use crate::error::{Error, Result};
use crate::model::{Client, ClientKind, Revocation, RevocationTarget};
use crate::service::Portcullis;

/// Who edits a client (`update_client_as`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Editor {
    Operator,
    /// The client itself (RFC 7592 §2.2); its registration access token is replaced by
    /// the one with this digest in the same write.
    Registration {
        next_token_hash: crate::model::Digest,
    },
}

mod input;

pub use input::{ClientInput, MAX_REQUEST_URIS, MAX_URIS, is_displayable, parse_resource};
use input::{Subjects, own_or_redirect_sector, validate};
pub(crate) use input::{check_new_client, parse_https_uri, signing_alg};

/// A new client secret: 32 random bytes, base64url (DESIGN §4).
fn new_secret() -> Result<Secret> {
    Ok(Secret::new(random_token()?))
}

impl Portcullis {
    /// Registers a client; returns it and, for a confidential client without keys
    /// (`jwks`), its secret — the only time the secret exists in clear.
    pub async fn create_client(
        &self,
        input: &ClientInput,
        actor: impl Into<Actor>,
    ) -> Result<(Client, Option<Secret>)> {
        self.insert_client(input, &actor.into(), None, "admin.client.created", None)
            .await
    }

    /// `create_client`, for a client that registered itself too (RFC 7591): it keeps
    /// the SHA-256 of its registration access token, and `event` is audited (with
    /// `detail`, if any).
    pub(crate) async fn insert_client(
        &self,
        input: &ClientInput,
        actor: &Actor,
        registration_token_hash: Option<crate::model::Digest>,
        event: &'static str,
        detail: Option<serde_json::Value>,
    ) -> Result<(Client, Option<Secret>)> {
        let v = validate(input, &self.settings.id_token_algs(), None)?;
        let now = self.now();
        let id = ClientId::parse(&b64url(&random_bytes::<16>()?)).map_err(|e| Error::Unexpected(e.0))?;
        let pairwise_sector = match &v.subjects {
            Subjects::Public => None,
            Subjects::Pairwise(Some(s)) => Some(s.clone()),
            Subjects::Pairwise(None) => Some(own_or_redirect_sector(&v, registration_token_hash.is_some(), &id)?),
        };
        let secret = match v.kind {
            ClientKind::Confidential if input.secret_with_keys || (v.jwks.is_none() && v.jwks_uri.is_none()) => {
                Some(new_secret()?)
            }
            _ => None,
        };
        let session_required = input.backchannel_logout_session_required && v.backchannel_logout_uri.is_some();
        let client = Client {
            id,
            name: v.name,
            kind: v.kind,
            secret_hash: secret.as_ref().map(|s| sha256(s.expose().as_bytes())),
            redirect_uris: v.redirect_uris,
            post_logout_redirect_uris: v.post_logout_redirect_uris,
            grant_types: v.grant_types,
            scopes: v.scopes,
            first_party: input.first_party,
            require_pkce: v.require_pkce,
            access_token_ttl: input.access_token_ttl,
            refresh_token_ttl: input.refresh_token_ttl,
            cors_origins: v.cors_origins,
            logo_uri: v.logo_uri,
            policy_uri: v.policy_uri,
            tos_uri: v.tos_uri,
            id_token_signed_response_alg: v.id_token_signed_response_alg,
            userinfo_signed_response_alg: v.userinfo_signed_response_alg,
            introspection_signed_response_alg: v.introspection_signed_response_alg,
            jwks: v.jwks,
            jwks_uri: v.jwks_uri,
            dpop_bound_access_tokens: input.dpop_bound_access_tokens,
            resources: v.resources,
            require_pushed_authorization_requests: input.require_pushed_authorization_requests,
            require_signed_request_object: input.require_signed_request_object,
            backchannel_logout_uri: v.backchannel_logout_uri,
            frontchannel_logout_uri: v.frontchannel_logout_uri,
            self_registered: registration_token_hash.is_some(),
            registration_token_hash,
            pairwise_sector,
            sector_identifier_uri: v.sector_identifier_uri,
            request_uris: v.request_uris,
            token_endpoint_auth_signing_alg: v.token_endpoint_auth_signing_alg,
            request_object_signing_alg: v.request_object_signing_alg,
            backchannel_logout_session_required: session_required,
            default_max_age: input.default_max_age,
            disabled: false,
            created_at: now,
            updated_at: now,
            revision: 0,
        };
        self.store.insert_client(&client).await?;
        let mut e = Event::new(event).by(actor).client(client.id.as_str());
        if let Some(detail) = detail {
            e = e.detail(detail);
        }
        self.audit(e);
        Ok((client, secret))
    }

    /// Replaces a client's settings; the kind cannot change (it decides whether a
    /// secret exists).
    pub async fn update_client(&self, id: &ClientId, input: &ClientInput, actor: impl Into<Actor>) -> Result<Client> {
        self.update_client_as(id, input, &actor.into(), "admin.client.updated", Editor::Operator)
            .await
            .map(|(client, _)| client)
    }

    /// `update_client`, auditing `event`, by `editor`; with the secret issued in the same
    /// write to a client of the registration that moves from keys to a secret.
    pub(crate) async fn update_client_as(
        &self,
        id: &ClientId,
        input: &ClientInput,
        actor: &Actor,
        event: &'static str,
        editor: Editor,
    ) -> Result<(Client, Option<Secret>)> {
        let _turn = self.client_writes.lock().await;
        if input.if_revision.is_some_and(|r| r < 0) {
            return Err(Error::invalid(
                "revision",
                "must be the client's revision as read: 0 or more",
            ));
        }
        let mut client = self.get_client(id).await?;
        if input.if_revision.is_some_and(|r| r != client.revision) {
            return Err(stale_edit());
        }
        let mut input = input.clone();
        if input.kind.is_some_and(|k| k != client.kind) {
            return Err(Error::invalid("kind", "cannot change; register a new client instead"));
        }
        input.kind = Some(client.kind);
        let v = validate(&input, &self.settings.id_token_algs(), Some(&client))?;
        let before = client.clone();
        client.pairwise_sector = match (&v.subjects, editor) {
            (Subjects::Public, _) => None,
            (Subjects::Pairwise(Some(s)), _) => Some(s.clone()),
            // The identifiers it has handed out stay valid: the sector does not follow
            // the redirect URIs an operator edits.
            (Subjects::Pairwise(None), Editor::Operator) if client.pairwise_sector.is_some() => {
                client.pairwise_sector.clone()
            }
            // The client's own word: the sector is its redirect URIs' host, always, so it
            // cannot keep a sector whose URIs it no longer has (OIDC Core §8.1 asks for a
            // sector_identifier_uri the client controls; this server reads none).
            (Subjects::Pairwise(None), _) => Some(own_or_redirect_sector(&v, client.self_registered, &client.id)?),
        };
        client.name = v.name;
        client.redirect_uris = v.redirect_uris;
        client.post_logout_redirect_uris = v.post_logout_redirect_uris;
        client.grant_types = v.grant_types;
        client.scopes = v.scopes;
        client.first_party = input.first_party;
        client.require_pkce = v.require_pkce;
        client.access_token_ttl = input.access_token_ttl;
        client.refresh_token_ttl = input.refresh_token_ttl;
        client.cors_origins = v.cors_origins;
        client.logo_uri = v.logo_uri;
        client.policy_uri = v.policy_uri;
        client.tos_uri = v.tos_uri;
        client.id_token_signed_response_alg = v.id_token_signed_response_alg;
        client.userinfo_signed_response_alg = v.userinfo_signed_response_alg;
        client.introspection_signed_response_alg = v.introspection_signed_response_alg;
        // A client that authenticates with a secret and registered keys for its request
        // objects keeps the secret: through an operator's edit, and through a
        // registration's that keeps the secret method.
        let keeps_secret = match editor {
            Editor::Operator => before.secret_hash.is_some() && before.has_keys(),
            Editor::Registration { .. } => input.secret_with_keys,
        };
        if (v.jwks.is_some() || v.jwks_uri.is_some()) && !keeps_secret {
            // private_key_jwt only: the secret stops working.
            client.secret_hash = None;
        }
        client.jwks = v.jwks;
        client.jwks_uri = v.jwks_uri;
        client.dpop_bound_access_tokens = input.dpop_bound_access_tokens;
        client.resources = v.resources;
        client.require_pushed_authorization_requests = input.require_pushed_authorization_requests;
        client.require_signed_request_object = input.require_signed_request_object;
        client.backchannel_logout_uri = v.backchannel_logout_uri;
        client.frontchannel_logout_uri = v.frontchannel_logout_uri;
        client.sector_identifier_uri = match editor {
            // It still names the sector it was read for, or nothing.
            Editor::Operator if client.pairwise_sector == before.pairwise_sector => {
                before.sector_identifier_uri.clone()
            }
            Editor::Operator => None,
            Editor::Registration { .. } => v.sector_identifier_uri,
        };
        // The client's own word, kept through operators' edits (their forms do not have it).
        if matches!(editor, Editor::Registration { .. }) {
            client.token_endpoint_auth_signing_alg = v.token_endpoint_auth_signing_alg;
            client.request_object_signing_alg = v.request_object_signing_alg;
            client.backchannel_logout_session_required = input.backchannel_logout_session_required;
            client.request_uris = v.request_uris;
            client.default_max_age = input.default_max_age;
        }
        client.backchannel_logout_session_required &= client.backchannel_logout_uri.is_some();
        let mut secret = None;
        match editor {
            // An operator's edit takes a self-registered client's registration over: its
            // token ends, so neither what the operator granted nor what they restricted
            // can be undone by whoever holds it. The client stays marked as self-registered.
            Editor::Operator => client.registration_token_hash = None,
            Editor::Registration { next_token_hash } => {
                client.registration_token_hash = Some(next_token_hash);
                if client.kind == ClientKind::Confidential
                    && (!client.has_keys() || input.secret_with_keys)
                    && client.secret_hash.is_none()
                {
                    let issued = new_secret()?;
                    client.secret_hash = Some(sha256(issued.expose().as_bytes()));
                    secret = Some(issued);
                }
            }
        }
        client.updated_at = self.now();
        // OIDC Core §8: a client sees a person under one `sub`. With another sector (or
        // public instead of pairwise, or back) its grants would go on under another, and
        // a client that registered itself could move to a sector whose people it may not
        // see: they end first, so only new sign-ins see the new identifiers.
        if before.pairwise_sector != client.pairwise_sector {
            let now = self.now();
            for grant in self.store.active_grant_ids_for_client(&client.id).await? {
                self.revoke_grant_now(grant, now).await?;
            }
        }
        self.store.update_client(&client, &[]).await.map_err(|e| match e {
            crate::StoreError::Stale => stale_edit(),
            e => not_found("client")(e),
        })?;
        client.revision += 1;
        self.client_cache.invalidate(&client.id);
        // What changed, by setting name, so the trail tells an edit from another (the
        // values are in the client itself; URIs may be long).
        let changed: Vec<&str> = [
            ("name", before.name != client.name),
            ("redirect_uris", before.redirect_uris != client.redirect_uris),
            (
                "post_logout_redirect_uris",
                before.post_logout_redirect_uris != client.post_logout_redirect_uris,
            ),
            ("grant_types", before.grant_types != client.grant_types),
            ("scopes", before.scopes != client.scopes),
            ("first_party", before.first_party != client.first_party),
            ("require_pkce", before.require_pkce != client.require_pkce),
            ("access_token_ttl", before.access_token_ttl != client.access_token_ttl),
            (
                "refresh_token_ttl",
                before.refresh_token_ttl != client.refresh_token_ttl,
            ),
            ("cors_origins", before.cors_origins != client.cors_origins),
            ("logo_uri", before.logo_uri != client.logo_uri),
            ("policy_uri", before.policy_uri != client.policy_uri),
            ("tos_uri", before.tos_uri != client.tos_uri),
            ("request_uris", before.request_uris != client.request_uris),
            (
                "id_token_signed_response_alg",
                before.id_token_signed_response_alg != client.id_token_signed_response_alg,
            ),
            (
                "userinfo_signed_response_alg",
                before.userinfo_signed_response_alg != client.userinfo_signed_response_alg,
            ),
            (
                "introspection_signed_response_alg",
                before.introspection_signed_response_alg != client.introspection_signed_response_alg,
            ),
            ("jwks", before.jwks != client.jwks),
            ("jwks_uri", before.jwks_uri != client.jwks_uri),
            (
                "dpop_bound_access_tokens",
                before.dpop_bound_access_tokens != client.dpop_bound_access_tokens,
            ),
            ("resources", before.resources != client.resources),
            (
                "require_pushed_authorization_requests",
                before.require_pushed_authorization_requests != client.require_pushed_authorization_requests,
            ),
            (
                "require_signed_request_object",
                before.require_signed_request_object != client.require_signed_request_object,
            ),
            (
                "backchannel_logout_uri",
                before.backchannel_logout_uri != client.backchannel_logout_uri,
            ),
            (
                "frontchannel_logout_uri",
                before.frontchannel_logout_uri != client.frontchannel_logout_uri,
            ),
            ("pairwise_sector", before.pairwise_sector != client.pairwise_sector),
            // Ended by registering keys.
            ("secret", before.secret_hash != client.secret_hash),
            // Taken over by an operator (see above).
            (
                "registration_access_token",
                before.registration_token_hash.is_some() && client.registration_token_hash.is_none(),
            ),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        self.audit(
            Event::new(event)
                .by(actor)
                .client(id.as_str())
                .detail(serde_json::json!({ "changed": changed })),
        );
        Ok((client, secret))
    }

    /// RFC 8707: whether `client` may ask for tokens to API `r` now: one of its
    /// `resources` and, for a client that registered itself and still manages its own
    /// registration, one of `registration_resources` still (an API removed there is taken
    /// from such clients too; one an operator granted a client they took over stays).
    pub(crate) fn resource_allowed(&self, client: &Client, r: &str) -> bool {
        client.resources.iter().any(|known| known == r)
            && (!client.manages_own_registration()
                || self.settings.registration_resources.iter().any(|known| known == r))
    }

    pub async fn get_client(&self, id: &ClientId) -> Result<Client> {
        self.store.get_client(id).await?.ok_or(Error::NotFound("client"))
    }

    pub async fn list_clients(&self, search: Option<&str>) -> Result<Vec<Client>> {
        crate::admin::check_search(search)?;
        Ok(self.store.list_clients(search.filter(|s| !s.is_empty())).await?)
    }

    /// One page of `list_clients`: `limit` clients (0: `LIST_PAGE_DEFAULT`, at most
    /// `LIST_PAGE_MAX`) after `offset`.
    pub async fn list_clients_page(
        &self,
        search: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<crate::admin::ListPage<Client>> {
        let limit = crate::admin::list_limit(limit)?;
        crate::admin::check_search(search)?;
        let rows = self
            .store
            .clients_page(search.filter(|s| !s.is_empty()), limit + 1, offset)
            .await?;
        Ok(crate::admin::list_page(rows, limit, offset))
    }

    /// Issues a new secret; the old one stops working at once.
    pub async fn rotate_client_secret(&self, id: &ClientId, actor: impl Into<Actor>) -> Result<Secret> {
        let actor: Actor = actor.into();
        let _turn = self.client_writes.lock().await;
        let secret = retry_stale(|| async {
            let mut client = self.get_client(id).await?;
            if client.kind != ClientKind::Confidential {
                return Err(Error::invalid("kind", "a public client has no secret"));
            }
            if client.has_keys() && client.secret_hash.is_none() {
                return Err(Error::invalid(
                    if client.jwks.is_some() { "jwks" } else { "jwks_uri" },
                    "this client authenticates with its registered keys (private_key_jwt); remove them to give it a secret",
                ));
            }
            let secret = new_secret()?;
            client.secret_hash = Some(sha256(secret.expose().as_bytes()));
            client.updated_at = self.now();
            self.store
                .update_client(&client, &[])
                .await
                .map_err(not_found("client"))?;
            Ok(secret)
        })
        .await?;
        self.client_cache.invalidate(id);
        self.audit(Event::new("admin.client.secret_rotated").by(&actor).client(id.as_str()));
        Ok(secret)
    }

    pub async fn set_client_disabled(&self, id: &ClientId, disabled: bool, actor: impl Into<Actor>) -> Result<Client> {
        let actor: Actor = actor.into();
        let _turn = self.client_writes.lock().await;
        let (client, revocations) = retry_stale(|| self.write_client_disabled(id, disabled)).await?;
        self.revocations.insert_local(&revocations);
        self.client_cache.invalidate(&client.id);
        let what = if disabled {
            "admin.client.disabled"
        } else {
            "admin.client.enabled"
        };
        self.audit(Event::new(what).by(&actor).client(id.as_str()));
        Ok(client)
    }

    /// One attempt of `set_client_disabled`: the client as written and the revocations
    /// recorded with it.
    async fn write_client_disabled(&self, id: &ClientId, disabled: bool) -> Result<(Client, Vec<Revocation>)> {
        let mut client = self.get_client(id).await?;
        // Other nodes may authenticate the client from their cached copy for this long
        // after the disable, whole seconds (`iat` has no finer grain), with a second more
        // for the time a token takes to sign and for the nodes' clocks to differ.
        let cached_for = i64::try_from(CLIENT_CACHE_TTL.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        if client.disabled && !disabled {
            // The revocation recorded when the client was disabled covers every token
            // issued up to the end of the second `cached_for` after it: it fails closed.
            // Re-enabling before that has passed waits for it, so the tokens the client
            // gets from now on are not covered. (`updated_at` is the time of the
            // disable, or of a later edit: never too early.)
            let covered_until = client.updated_at.unix_timestamp().saturating_add(cached_for);
            let wait = time::OffsetDateTime::from_unix_timestamp(covered_until.saturating_add(1))
                .map_or(Duration::ZERO, |next| next - self.now());
            if wait.is_positive() {
                tokio::time::sleep(wait.unsigned_abs()).await;
            }
        }
        let now = self.now();
        client.disabled = disabled;
        client.updated_at = now;
        // A disabled client's outstanding access tokens stop working at once
        // (introspection, userinfo), as a deleted client's do, and so do those other
        // nodes issue from their cached copy until it expires; the tokens it gets once
        // re-enabled are not covered.
        let revocations: Vec<Revocation> = disabled
            .then(|| Revocation {
                target: RevocationTarget::ClientUntil {
                    client_id: id.as_str().to_owned(),
                    issued_until: now.unix_timestamp().saturating_add(cached_for),
                },
                // As long as the last token it covers lives.
                expires_at: now + Duration::seconds(cached_for + 1) + self.settings.max_access_token_ttl(),
            })
            .into_iter()
            .collect();
        // Its grants end too (their refresh tokens and unused codes go): re-enabling the
        // client must not bring back a refresh token stolen before it was disabled.
        let revocations = if disabled {
            let mut all = revocations;
            all.extend(self.grant_revocations(id).await?);
            self.store
                .disable_client(&client, now, &all)
                .await
                .map_err(not_found("client"))?;
            all
        } else {
            self.store
                .update_client(&client, &revocations)
                .await
                .map_err(not_found("client"))?;
            revocations
        };
        client.revision += 1;
        Ok((client, revocations))
    }

    /// Revocations of the client's active grants, covering the access tokens they issued.
    async fn grant_revocations(&self, id: &ClientId) -> Result<Vec<Revocation>> {
        let expires_at = self.now() + self.settings.max_access_token_ttl();
        Ok(self
            .store
            .active_grant_ids_for_client(id)
            .await?
            .into_iter()
            .map(|g| Revocation {
                target: RevocationTarget::Grant(g),
                expires_at,
            })
            .collect())
    }

    /// Deletes a client with its grants, refresh tokens, codes and consents; its
    /// outstanding access tokens are revoked.
    pub async fn delete_client(&self, id: &ClientId, actor: impl Into<Actor>) -> Result<()> {
        self.delete_client_as(id, &actor.into(), "admin.client.deleted").await
    }

    /// `delete_client`, auditing `event`.
    pub(crate) async fn delete_client_as(&self, id: &ClientId, actor: &Actor, event: &'static str) -> Result<()> {
        let expires_at = self.now() + self.settings.max_access_token_ttl();
        let mut revocations = self.grant_revocations(id).await?;
        revocations.push(Revocation {
            target: RevocationTarget::Client(id.as_str().to_owned()),
            expires_at,
        });
        self.store
            .delete_client(id, &revocations)
            .await
            .map_err(not_found("client"))?;
        self.client_cache.invalidate(id);
        self.revocations.insert_local(&revocations);
        self.audit(Event::new(event).by(actor).client(id.as_str()));
        Ok(())
    }

    /// RFC 6749 §2.3: authenticates the client at a token-family endpoint. `secret` is
    /// `None` for `none` authentication (public clients). Every failure is the same
    /// `invalid_client`, so the answer does not tell which part was wrong.
    pub async fn authenticate_client(&self, id: &str, secret: Option<&Secret>, ip: Option<&str>) -> Result<Client> {
        let invalid = || Error::oauth(ErrorCode::InvalidClient, "client authentication failed");
        let id = ClientId::parse(id).map_err(|_| invalid())?;
        let matches = |client: &Option<std::sync::Arc<Client>>| match (client, secret) {
            (Some(c), Some(s)) => c
                .secret_hash
                .as_ref()
                .is_some_and(|h| digest_eq(h, &sha256(s.expose().as_bytes()))),
            (Some(c), None) => c.kind == ClientKind::Public,
            (None, _) => false,
        };
        let mut client = self.client_cache.get(self.store.as_ref(), &id).await?;
        let mut ok = matches(&client);
        if !ok && secret.is_some() && client.is_some() {
            // The copy may be older than a new secret made at another node (a client that
            // deploys its new secret at once, behind a load balancer): the store decides.
            // Only a copy found stale is dropped, so wrong secrets cost a read each but
            // leave the cache to the client's real requests.
            let stored = self.store.get_client(&id).await?.map(std::sync::Arc::new);
            if matches(&stored) {
                self.client_cache.invalidate(&id);
                client = stored;
                ok = true;
            }
        }
        match client {
            Some(c) if ok && !c.disabled => Ok(Client::clone(&c)),
            _ => {
                self.audit(
                    Event::new("client.auth_failed")
                        .client(id.as_str())
                        .ip(ip.map(str::to_owned)),
                );
                Err(invalid())
            }
        }
    }

    /// The public client a refresh token was issued to, for a refresh request that names
    /// no client: RFC 6749 §6 lists no `client_id` there and only confidential clients
    /// must authenticate (§3.2.1), so the token alone names a public client (which has
    /// nothing more to prove). `None` for an unknown token or one of a client that must
    /// authenticate, which then gets the usual `invalid_client`, whatever the token.
    pub async fn public_client_of_refresh_token(&self, token: &Secret, ip: Option<&str>) -> Result<Option<Client>> {
        // Refresh tokens are 43 characters; nothing else needs a lookup.
        if token.expose().len() != 43 {
            return Ok(None);
        }
        let Some((stored, _)) = self.store.get_refresh_token(&sha256(token.expose().as_bytes())).await? else {
            return Ok(None);
        };
        match self.client_cache.get(self.store.as_ref(), &stored.client_id).await? {
            Some(c) if c.kind == ClientKind::Public => {
                self.authenticate_client(c.id.as_str(), None, ip).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Access token lifetime for a client.
    pub fn access_ttl(&self, client: &Client) -> Duration {
        client
            .access_token_ttl
            .map(Duration::seconds)
            .unwrap_or(self.settings.access_token_ttl)
    }

    pub fn refresh_ttl(&self, client: &Client) -> Duration {
        client
            .refresh_token_ttl
            .map(Duration::seconds)
            .unwrap_or(self.settings.refresh_token_ttl)
    }
}

/// Why an edit made on a client that changed since the editor read it is refused.
pub const CHANGED_MEANWHILE: &str =
    "the client was changed by someone else meanwhile; reload it and make your change again";

/// The answer to an edit made on a client that changed since the editor read it.
fn stale_edit() -> Error {
    Error::invalid("revision", CHANGED_MEANWHILE)
}

/// Runs `attempt` (read the client, change it, write it back naming the revision it read)
/// again when another write came first: another node's, since this node's take turns
/// (`client_writes`). For changes that apply to the client as it is now (a new secret, a
/// disable), not to what an editor saw; a write that keeps losing gets `Busy`.
async fn retry_stale<T, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    for _ in 0..5 {
        match attempt().await {
            Err(Error::Store(crate::StoreError::Stale)) => continue,
            done => return done,
        }
    }
    Err(Error::Busy)
}

pub(crate) fn not_found(what: &'static str) -> impl Fn(crate::StoreError) -> Error {
    move |e| match e {
        crate::StoreError::NotFound => Error::NotFound(what),
        other => other.into(),
    }
}
