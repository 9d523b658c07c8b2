//! Who calls the admin API: an API key sent as `Authorization: Bearer …` — never in the
//! query string (DESIGN §5: a URL ends up in logs and histories), so a request carrying
//! one there is refused outright. `Caller` reads, `AdminCaller` (role admin) changes.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use portcullis_core::admin::Actor;
use portcullis_core::api_keys::API_KEY_PREFIX;
use portcullis_core::model::{AdminRole, ApiKey};
use portcullis_protocol::Secret;

use super::error::ApiError;
use crate::ClientIp;
use crate::admin::AdminState;

/// Query parameter names that would carry a credential.
const CREDENTIAL_PARAMS: [&str; 6] = ["access_token", "api_key", "apikey", "key", "token", "authorization"];

/// A request whose query string carries a credential is refused whatever else it has.
fn refuse_key_in_query(parts: &Parts) -> Result<(), ApiError> {
    let Some(query) = parts.uri.query() else {
        return Ok(());
    };
    let leaked = url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| {
        CREDENTIAL_PARAMS.iter().any(|p| k.eq_ignore_ascii_case(p)) || v.trim().starts_with(API_KEY_PREFIX)
    });
    if leaked {
        return Err(ApiError::BadRequest(
            "API keys are accepted only in the Authorization header, never in the URL".into(),
        ));
    }
    Ok(())
}

fn bearer(parts: &Parts) -> Result<Secret, ApiError> {
    let missing = ApiError::Unauthorized("an API key is required: Authorization: Bearer <key>");
    // RFC 9110 §5.3: not a list; which of two keys counts would be anyone's guess.
    if parts.headers.get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        return Err(ApiError::Unauthorized("send one Authorization header"));
    }
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(missing)?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not readable"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("the Authorization header must be: Bearer <key>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("the Authorization header must be: Bearer <key>"));
    }
    Ok(Secret::new(token.trim()))
}

/// An authenticated API key of any role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
    pub ip: Option<String>,
}

impl Caller {
    /// The audit actor: `apikey:<id>` and the address.
    pub fn actor(&self) -> Actor {
        self.key.actor(self.ip.clone())
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        refuse_key_in_query(parts)?;
        let presented = bearer(parts)?;
        let ip = match ClientIp::from_request_parts(parts, state).await {
            Ok(ClientIp(ip)) => ip,
            Err(never) => match never {},
        };
        let key = state.core.authenticate_api_key(&presented, ip.clone()).await?;
        Ok(Self { key, ip })
    }
}

/// An authenticated API key with the admin role; an auditor key gets 403.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AdminState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.key.role == AdminRole::Admin {
            Ok(Self(caller))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}
