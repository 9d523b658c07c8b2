//! Admin API: users — list and search, create, read, edit the profile, delete, disable
//! and enable, set the password, and a user's sessions and grants (list, revoke one).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::users::{ProfileChange, UserInput};
use portcullis_protocol::Secret;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::{AdminCaller, Caller};
use super::clients::Search;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery, Members};
use super::json;
use crate::admin::AdminState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    #[serde(default)]
    pub password: Secret,
}

fn uuid(what: &str, raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(what.to_owned()))
}

/// `GET /users[?search=…][&limit=…][&offset=…]`: by username, with `next_offset` when
/// there is another page.
pub async fn users_list(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<Search>,
) -> ApiResult<Json<Value>> {
    let page = state
        .core
        .list_users_page(
            Some(q.search.trim()),
            super::page_size(q.limit, portcullis_core::admin::LIST_PAGE_MAX)?,
            q.offset,
        )
        .await?;
    Ok(Json(json!({
        "users": page.items.iter().map(json::user).collect::<Vec<_>>(),
        "next_offset": page.next_offset,
    })))
}

/// `POST /users`: 201; 409 when the username is taken.
pub async fn users_create(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(body): ApiJson<UserBody>,
) -> ApiResult<Response> {
    let input = UserInput {
        username: body.username,
        email: body.email,
        email_verified: body.email_verified,
        name: body.name,
        given_name: body.given_name,
        family_name: body.family_name,
    };
    let user = state.core.create_user(&input, &body.password, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(json::user(&user))).into_response())
}

/// The members of a user a `PATCH` may name.
const PROFILE: [&str; 5] = ["name", "given_name", "family_name", "email", "email_verified"];

/// A string member of a patch: `null` clears it.
fn text_member(field: &str, v: Value) -> ApiResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(ApiError::Invalid {
            field: field.to_owned(),
            message: "must be a string or null".into(),
        }),
    }
}

/// `PATCH /users/{user_id}`: changes the profile members the body names (`name`,
/// `given_name`, `family_name`, `email`, `email_verified`) and keeps the others, even when another change to them
/// comes first (RFC 7396 JSON merge patch: `null` clears a member; `email_verified` then
/// becomes false, and so it does for another address unless the patch names it).
/// Sessions and grants stay.
pub async fn user_patch(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(Members(patch)): ApiJson<Members>,
) -> ApiResult<Json<Value>> {
    let id = uuid("user", &id)?;
    let mut change = ProfileChange::default();
    for (k, v) in patch {
        match k.as_str() {
            "name" => change.name = Some(text_member("name", v)?),
            "given_name" => change.given_name = Some(text_member("given_name", v)?),
            "family_name" => change.family_name = Some(text_member("family_name", v)?),
            "email" => change.email = Some(text_member("email", v)?),
            "email_verified" => {
                change.email_verified = Some(match v {
                    Value::Null => false,
                    Value::Bool(b) => b,
                    _ => {
                        return Err(ApiError::Invalid {
                            field: k,
                            message: "must be true, false or null".into(),
                        });
                    }
                })
            }
            _ => {
                return Err(ApiError::Invalid {
                    field: k,
                    message: format!("cannot be changed here; a PATCH may name {}", PROFILE.join(", ")),
                });
            }
        }
    }
    let user = state.core.update_user_profile(id, &change, &caller.actor()).await?;
    Ok(Json(json::user(&user)))
}

/// `DELETE /users/{user_id}`: 204; the user's grants and sessions end.
pub async fn user_delete(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.core.delete_user(uuid("user", &id)?, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users/{user_id}`.
pub async fn user_read(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let user = state.core.get_user(uuid("user", &id)?).await?;
    Ok(Json(json::user(&user)))
}

async fn set_disabled(state: &AdminState, caller: &Caller, id: &str, disabled: bool) -> ApiResult<Json<Value>> {
    let id = uuid("user", id)?;
    state.core.set_user_disabled(id, disabled, &caller.actor()).await?;
    Ok(Json(json::user(&state.core.get_user(id).await?)))
}

/// `POST /users/{user_id}/disable`: also ends the user's sessions and grants.
pub async fn user_disable(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(&state, &caller, &id, true).await
}

/// `POST /users/{user_id}/enable`.
pub async fn user_enable(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    set_disabled(&state, &caller, &id, false).await
}

/// `POST /users/{user_id}/password`: 204; the user's sessions and grants end.
pub async fn user_set_password(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    state
        .core
        .set_user_password(uuid("user", &id)?, &body.password, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users/{user_id}/sessions`.
pub async fn user_sessions(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let sessions = state.core.list_user_sessions(uuid("user", &id)?).await?;
    Ok(Json(
        json!({ "sessions": sessions.iter().map(json::session).collect::<Vec<_>>() }),
    ))
}

/// `DELETE /users/{user_id}/sessions/{session_id}`: 204.
pub async fn user_session_revoke(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath((id, session)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .core
        .revoke_user_session(uuid("user", &id)?, &session, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users/{user_id}/grants`.
pub async fn user_grants(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let grants = state.core.list_user_grants(uuid("user", &id)?).await?;
    Ok(Json(
        json!({ "grants": grants.iter().map(json::grant).collect::<Vec<_>>() }),
    ))
}

/// `DELETE /users/{user_id}/grants/{grant_id}`: 204; the grant's tokens stop working.
pub async fn user_grant_revoke(
    State(state): State<AdminState>,
    AdminCaller(caller): AdminCaller,
    ApiPath((id, grant)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .core
        .revoke_user_grant(uuid("user", &id)?, uuid("grant", &grant)?, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
