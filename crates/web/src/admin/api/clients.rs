//! Admin API: clients — list and search, register, read, replace or change, disable and enable,
//! delete (revoking its grants and tokens), rotate the secret.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::clients::ClientInput;
use portcullis_core::model::ClientKind;
use portcullis_protocol::ClientId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AdminCaller, Caller};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery, Members};
use super::json;
use crate::admin::AdminState;

/// The query of the client and user lists; another parameter (a mistyped filter) is
/// refused rather than ignored, which would list everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    #[serde(default)]
    pub search: String,
    /// Page size, 1 to 1000; absent for the default (100).
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: u32,
}

/// The client body of `POST` and `PUT`. Every field may be left out; core's validation
/// then names what is missing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    #[serde(default)]
    pub name: String,
    pub kind: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Space-separated.
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub first_party: bool,
    pub require_pkce: Option<bool>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    #[serde(default)]
    pub cors_origins: Vec<String>,
    pub logo_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    /// OIDC Registration §2: `RS256` (the default when absent or null) or the server's
    /// `signing_alg`.
    pub id_token_signed_response_alg: Option<String>,
    /// A confidential client's public keys for `private_key_jwt` (RFC 7523): a JWK Set
    /// object; absent or null for a secret.
    pub jwks: Option<Value>,
    /// OIDC Registration §2: where a confidential client publishes its public keys for
    /// `private_key_jwt`, instead of `jwks`; absent or null for none.
    pub jwks_uri: Option<String>,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// RFC 8707: the APIs the client may ask for access tokens to.
    #[serde(default)]
    pub resources: Vec<String>,
    /// RFC 9126 §6: authorization requests only through `/par`.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 §10.5: authorization requests only as request objects the client signs
    /// (the client must have `jwks` or `jwks_uri`).
    #[serde(default)]
    pub require_signed_request_object: bool,
    /// OIDC Back-Channel Logout 1.0 §2.2: where the client is sent logout tokens; absent
    /// or null for none.
    pub backchannel_logout_uri: Option<String>,
    /// OpenID Connect Front-Channel Logout 1.0 §2: the page a sign-out loads in a hidden
    /// iframe; absent or null for none.
    pub frontchannel_logout_uri: Option<String>,
    /// OIDC Registration §2: UserInfo answers as a JWT signed with this algorithm; absent
    /// or null for plain JSON.
    pub userinfo_signed_response_alg: Option<String>,
    /// RFC 9701 §6: the algorithm of the JWTs that answer the client at `/introspect`
    /// when it asks for them; absent or null for the default, RS256.
    pub introspection_signed_response_alg: Option<String>,
    /// OIDC Core §8: `public` (absent or null) or `pairwise`.
    pub subject_type: Option<String>,
    /// With `pairwise`: the sector, a host name; absent or null keeps the client's, or
    /// for a client not yet pairwise takes its redirect URIs' host.
    pub sector_identifier: Option<String>,
    /// `PUT` only, optional: the `revision` the caller read. If the client has changed
    /// since, the replacement is refused (400, field `revision`). Refused on `POST`.
    pub revision: Option<i64>,
    /// Deprecated (`revision` replaces it): `PUT` only, the `updated_at` the caller read
    /// (RFC 3339), compared to the second; refused (400, field `updated_at`) if the
    /// client changed since, except in the same second as the change read.
    pub updated_at: Option<String>,
}

impl ClientBody {
    fn into_input(self) -> ApiResult<ClientInput> {
        let kind = match self.kind.as_deref() {
            None => None,
            Some(k) => Some(ClientKind::parse(k).ok_or_else(|| ApiError::Invalid {
                field: "kind".into(),
                message: "must be confidential or public".into(),
            })?),
        };
        let jwks = match self.jwks {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.to_string()),
            Some(_) => {
                return Err(ApiError::Invalid {
                    field: "jwks".into(),
                    message: "must be a JWK Set: an object with a keys array, or null".into(),
                });
            }
        };
        Ok(ClientInput {
            name: self.name,
            kind,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            grant_types: self.grant_types,
            scopes: self.scopes,
            first_party: self.first_party,
            require_pkce: self.require_pkce,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            cors_origins: self.cors_origins,
            logo_uri: self.logo_uri,
            policy_uri: self.policy_uri,
            tos_uri: self.tos_uri,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            jwks,
            jwks_uri: self.jwks_uri,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            resources: self.resources,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            require_signed_request_object: self.require_signed_request_object,
            backchannel_logout_uri: self.backchannel_logout_uri,
            frontchannel_logout_uri: self.frontchannel_logout_uri,
            userinfo_signed_response_alg: self.userinfo_signed_response_alg,
            introspection_signed_response_alg: self.introspection_signed_response_alg,
            subject_type: self.subject_type,
            sector_identifier: self.sector_identifier,
            // Operators name the sector; the list is a self-registering client's.
            sector_identifier_uri: None,
            // A self-registering client's own word, kept through operators' edits.
            token_endpoint_auth_signing_alg: None,
            request_object_signing_alg: None,
            backchannel_logout_session_required: false,
            default_max_age: None,
            secret_with_keys: false,
            request_uris: vec![],
            if_revision: self.revision,
        })
    }
}

fn client_id(raw: &str) -> ApiResult<ClientId> {
    ClientId::parse(raw).map_err(|_| ApiError::NotFound("client".into()))
}

/// `GET /clients[?search=…][&limit=…][&offset=…]`: by name, with `next_offset` when
/// there is another page.
pub async fn clients_list(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<Search>,
) -> ApiResult<Json<Value>> {
    let page = state
        .core
        .list_clients_page(
            Some(q.search.trim()),
            super::page_size(q.limit, portcullis_core::admin::LIST_PAGE_MAX)?,
            q.offset,
        )
        .await?;
    Ok(Json(json!({
        "clients": page.items.iter().map(json::client).collect::<Vec<_>>(),
        "next_offset": page.next_offset,
    })))
}

/// `POST /clients`: 201 with the client and, for a confidential one, `client_secret` —
/// the only time it is returned.
pub async fn clients_create(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(body): ApiJson<ClientBody>,
) -> ApiResult<Response> {
    for (field, given) in [
        ("revision", body.revision.is_some()),
        ("updated_at", body.updated_at.is_some()),
    ] {
        if given {
            // A new client has nothing to compare with; accepting one would suggest a
            // check that does not happen.
            return Err(ApiError::Invalid {
                field: field.into(),
                message: "is for PUT only; leave it out when registering".into(),
            });
        }
    }
    let input = body.into_input()?;
    let (client, secret) = state.core.create_client(&input, &caller.actor()).await?;
    let mut v = json::client(&client);
    v["client_secret"] = json!(secret.as_ref().map(|s| s.expose()));
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /clients/{client_id}`.
pub async fn client_read(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let client = state.core.get_client(&client_id(&id)?).await?;
    Ok(Json(json::client(&client)))
}

/// `PUT /clients/{client_id}`: replaces the client's settings (the kind cannot change).
pub async fn client_replace(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ClientBody>,
) -> ApiResult<Json<Value>> {
    let id = client_id(&id)?;
    let read_at = body.updated_at.clone();
    let mut input = body.into_input()?;
    if let (Some(read_at), None) = (read_at, input.if_revision) {
        // The check of earlier versions, kept for their callers: the revision of the
        // client as it is when its `updated_at` still matches, so the write that follows
        // is refused if anything changes in between.
        let read_at =
            time::OffsetDateTime::parse(&read_at, &time::format_description::well_known::Rfc3339).map_err(|_| {
                ApiError::Invalid {
                    field: "updated_at".into(),
                    message: "must be an RFC 3339 time, as the client's updated_at".into(),
                }
            })?;
        let current = state.core.get_client(&id).await?;
        if current.updated_at.unix_timestamp() != read_at.unix_timestamp() {
            return Err(ApiError::Invalid {
                field: "updated_at".into(),
                message: portcullis_core::clients::CHANGED_MEANWHILE.into(),
            });
        }
        input.if_revision = Some(current.revision);
    }
    let client = state.core.update_client(&id, &input, &caller.actor()).await?;
    Ok(Json(json::client(&client)))
}

/// The members of a client's representation its settings are; the rest (`client_id`,
/// `disabled`, the times) is not changed by editing.
const SETTINGS: [&str; 27] = [
    "name",
    "kind",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "scopes",
    "first_party",
    "require_pkce",
    "access_token_ttl",
    "refresh_token_ttl",
    "cors_origins",
    "logo_uri",
    "policy_uri",
    "tos_uri",
    "id_token_signed_response_alg",
    "jwks",
    "jwks_uri",
    "dpop_bound_access_tokens",
    "resources",
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "backchannel_logout_uri",
    "frontchannel_logout_uri",
    "userinfo_signed_response_alg",
    "introspection_signed_response_alg",
    "subject_type",
    "sector_identifier",
];

/// `PATCH /clients/{client_id}`: changes the settings the body names and keeps the
/// others (RFC 7396 JSON merge patch: a member set to `null` takes its default). With
/// the `revision` it read, it is refused if the client changed since; without, it
/// applies to the client as it is, read again if another write comes first.
pub async fn client_patch(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(Members(patch)): ApiJson<Members>,
) -> ApiResult<Json<Value>> {
    let id = client_id(&id)?;
    if let Some(field) = patch
        .keys()
        .find(|k| !SETTINGS.contains(&k.as_str()) && *k != "revision")
    {
        let message = if field == "updated_at" {
            "is for PUT only; send revision".to_owned()
        } else {
            format!("is not a setting of a client; the settings are {}", SETTINGS.join(", "))
        };
        return Err(ApiError::Invalid {
            field: field.clone(),
            message,
        });
    }
    let pinned = match patch.get("revision") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| ApiError::Invalid {
            field: "revision".into(),
            message: "must be the client's revision as read, an integer".into(),
        })?),
    };
    // Without a revision the patch applies to the client as it is: a write that came
    // between this read and this write (another node's) is read again, not refused.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = state.core.get_client(&id).await?;
        let mut merged = json::client(&current);
        let settings = merged
            .as_object_mut()
            .ok_or_else(|| ApiError::Internal("a client's representation is not an object".into()))?;
        settings.retain(|k, _| SETTINGS.contains(&k.as_str()));
        // Read as RS256, stored as the default: kept as the default.
        if current.id_token_signed_response_alg.is_none() {
            settings.insert("id_token_signed_response_alg".into(), Value::Null);
        }
        for (k, v) in &patch {
            if k == "revision" {
                continue;
            }
            if v.is_null() {
                settings.remove(k);
            } else {
                settings.insert(k.clone(), v.clone());
            }
        }
        let mut body: ClientBody = serde_path_to_error::deserialize(merged).map_err(super::extract::field_error)?;
        body.revision = Some(pinned.unwrap_or(current.revision));
        let input = body.into_input()?;
        match state.core.update_client(&id, &input, &caller.actor()).await {
            Err(portcullis_core::Error::Invalid { field: "revision", .. }) if pinned.is_none() && attempts < 20 => {}
            result => return Ok(Json(json::client(&result?))),
        }
    }
}

/// `DELETE /clients/{client_id}`: 204.
pub async fn client_delete(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.core.delete_client(&client_id(&id)?, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_disabled(state: &AdminState, caller: &Caller, id: &str, disabled: bool) -> ApiResult<Json<Value>> {
    let client = state
        .core
        .set_client_disabled(&client_id(id)?, disabled, &caller.actor())
        .await?;
    Ok(Json(json::client(&client)))
}

/// `POST /clients/{client_id}/disable`.
pub async fn client_disable(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(&state, &caller, &id, true).await
}

/// `POST /clients/{client_id}/enable`.
pub async fn client_enable(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(&state, &caller, &id, false).await
}

/// `POST /clients/{client_id}/rotate-secret`: the new secret, returned once.
pub async fn client_rotate_secret(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let id = client_id(&id)?;
    let secret = state.core.rotate_client_secret(&id, &caller.actor()).await?;
    Ok(Json(
        json!({ "client_id": id.as_str(), "client_secret": secret.expose() }),
    ))
}
