//! Admin API: signing keys (list, rotate), initial access tokens (list, create,
//! revoke), the audit log (filter and page), and the dashboard's counts.

use axum::Json;
use axum::extract::State;
use portcullis_core::model::AuditFilter;
use portcullis_protocol::SigningAlg;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::auth::{AdminCaller, Caller};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery, OptionalBody};
use super::json;
use crate::admin::AdminState;

/// `GET /keys`.
pub async fn keys_list(State(state): State<AdminState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let keys = state.core.list_signing_keys().await?;
    Ok(Json(json!({ "keys": keys.iter().map(json::key).collect::<Vec<_>>() })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// Whose keys to rotate: an algorithm in use (`signing_alg` for access tokens, RS256
    /// for ID tokens); `signing_alg` when left out. Others get 400.
    pub alg: Option<String>,
    /// Rotate even if the next key was published too recently (when the active key must stop signing at once);
    /// without it such a rotation gets 400 on `force`.
    #[serde(default)]
    pub force: bool,
}

/// `POST /keys/rotate`: the algorithm's next key starts signing; returns the new next
/// key's id and every key.
pub async fn keys_rotate(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    OptionalBody(body): OptionalBody<RotateBody>,
) -> ApiResult<Json<Value>> {
    let alg = body
        .alg
        .as_deref()
        .map(SigningAlg::parse)
        .transpose()
        .map_err(|_| ApiError::Invalid {
            field: "alg".into(),
            message: "must be RS256, ES256 or EdDSA".into(),
        })?;
    let kid = state.core.rotate_signing_keys(alg, body.force, &caller.actor()).await?;
    let keys = state.core.list_signing_keys().await?;
    Ok(Json(json!({
        "next_kid": kid,
        "keys": keys.iter().map(json::key).collect::<Vec<_>>(),
    })))
}

/// `POST /keys/{kid}/withdraw`: a retired key leaves the JWKS at once; returns every key.
pub async fn key_withdraw(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(kid): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    state.core.withdraw_signing_key(&kid, &caller.actor()).await?;
    let keys = state.core.list_signing_keys().await?;
    Ok(Json(json!({ "keys": keys.iter().map(json::key).collect::<Vec<_>>() })))
}

/// `GET /initial-access-tokens`: every one, newest first (never their values).
pub async fn initial_tokens_list(State(state): State<AdminState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let now = state.core.now();
    let tokens = state.core.list_initial_access_tokens().await?;
    Ok(Json(json!({
        "initial_access_tokens": tokens.iter().map(|t| json::initial_token(t, now)).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialTokenBody {
    #[serde(default)]
    pub name: String,
    /// Days until it expires (1 to 365); the default (7) when left out.
    pub days: Option<u32>,
    /// How many registrations it allows (1 or more); no limit when left out.
    pub uses: Option<u32>,
}

/// `POST /initial-access-tokens`: 201 with the token and its value, shown only here.
pub async fn initial_tokens_create(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    super::extract::ApiJson(body): super::extract::ApiJson<InitialTokenBody>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let input = portcullis_core::initial_tokens::NewInitialAccessToken {
        name: body.name,
        days: body.days,
        uses: body.uses,
    };
    let (token, value) = state.core.create_initial_access_token(&input, &caller.actor()).await?;
    let mut v = json::initial_token(&token, state.core.now());
    v["token"] = Value::String(value.expose().to_owned());
    Ok((axum::http::StatusCode::CREATED, Json(v)))
}

/// `POST /initial-access-tokens/{id}/revoke`: registrations with it stop at once.
pub async fn initial_token_revoke(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("initial access token".into()))?;
    let token = state.core.revoke_initial_access_token(id, &caller.actor()).await?;
    Ok(Json(json::initial_token(&token, state.core.now())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub event_type: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// RFC 3339, inclusive.
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    pub until: Option<String>,
    /// Page size, 1 to 200; absent for the default.
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: u32,
}

fn instant(field: &str, raw: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    raw.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| ApiError::Invalid {
            field: field.into(),
            message: "must be an RFC 3339 date-time like 2030-01-31T14:00:00Z".into(),
        })
    })
    .transpose()
}

/// `GET /audit-events`: newest first, with `next_offset` when there is another page.
pub async fn audit_list(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let user_id = q
        .user_id
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| ApiError::Invalid {
            field: "user_id".into(),
            message: "must be a user id (UUID)".into(),
        })?;
    let filter = AuditFilter {
        event_type: q.event_type.filter(|s| !s.is_empty()),
        user_id,
        client_id: q.client_id.filter(|s| !s.is_empty()),
        since: instant("since", q.since.as_deref())?,
        until: instant("until", q.until.as_deref())?,
        limit: super::page_size(q.limit, portcullis_core::admin::AUDIT_PAGE_MAX)?,
        offset: q.offset,
    };
    let page = state.core.list_audit(&filter).await?;
    Ok(Json(json!({
        "events": page.events.iter().map(json::event).collect::<Vec<_>>(),
        "next_offset": page.next_offset,
    })))
}

/// `GET /dashboard`.
pub async fn dashboard(State(state): State<AdminState>, _caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json::dashboard(&state.core.dashboard().await?)))
}
