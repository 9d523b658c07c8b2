//! The admin API's JSON shapes of core's records. Instants are RFC 3339 in UTC, whole
//! seconds; field names are the ones core's validation errors name, so a 400's `field`
//! is a body field.

use portcullis_core::admin::{Dashboard, GrantInfo, SessionInfo};
use portcullis_core::model::{AuditEvent, Client, SigningKeyRecord, User};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// RFC 3339 in UTC, in whole seconds: the SQLite store keeps no more, so a write's
/// response would otherwise differ from the same record read back.
fn rfc3339(t: OffsetDateTime) -> String {
    crate::admin::view::rfc3339(t.replace_nanosecond(0).unwrap_or(t))
}

fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    items.into_iter().collect()
}

pub fn client(c: &Client) -> Value {
    json!({
        "client_id": c.id.as_str(),
        "name": c.name,
        "kind": c.kind.as_str(),
        "redirect_uris": strs(c.redirect_uris.iter().map(|u| u.as_str())),
        "post_logout_redirect_uris": strs(c.post_logout_redirect_uris.iter().map(|u| u.as_str())),
        "grant_types": strs(c.grant_types.iter().map(|g| g.as_str())),
        "scopes": c.scopes.as_string(),
        "first_party": c.first_party,
        "require_pkce": c.require_pkce,
        "access_token_ttl": c.access_token_ttl,
        "refresh_token_ttl": c.refresh_token_ttl,
        "cors_origins": c.cors_origins,
        "logo_uri": c.logo_uri,
        "policy_uri": c.policy_uri,
        "tos_uri": c.tos_uri,
        "id_token_signed_response_alg": c.id_token_signed_response_alg.map_or("RS256", |a| a.as_str()),
        "jwks": c.jwks_json(),
        "jwks_uri": c.jwks_uri,
        "token_endpoint_auth_method": c.token_endpoint_auth_method(),
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
        "resources": c.resources,
        "require_pushed_authorization_requests": c.require_pushed_authorization_requests,
        "require_signed_request_object": c.require_signed_request_object,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "frontchannel_logout_uri": c.frontchannel_logout_uri,
        "sector_identifier_uri": c.sector_identifier_uri,
        "token_endpoint_auth_signing_alg": c.token_endpoint_auth_signing_alg,
        "request_object_signing_alg": c.request_object_signing_alg,
        "backchannel_logout_session_required": c.backchannel_logout_session_required,
        "default_max_age": c.default_max_age,
        "userinfo_signed_response_alg": c.userinfo_signed_response_alg.map(|a| a.as_str()),
        "introspection_signed_response_alg": c.introspection_signed_response_alg.map_or("RS256", |a| a.as_str()),
        "subject_type": if c.pairwise_sector.is_some() { "pairwise" } else { "public" },
        "sector_identifier": c.pairwise_sector,
        "disabled": c.disabled,
        "self_registered": c.self_registered,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "revision": c.revision,
    })
}

/// An initial access token (never its value, which exists only in the creation answer).
pub fn initial_token(t: &portcullis_core::model::InitialAccessToken, now: OffsetDateTime) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "state": portcullis_core::initial_tokens::status(t, now),
        "uses_left": t.uses_left,
        "created_by": t.created_by,
        "created_at": rfc3339(t.created_at),
        "expires_at": rfc3339(t.expires_at),
        "revoked_at": t.revoked_at.map(rfc3339),
    })
}

pub fn user(u: &User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.name,
        "given_name": u.given_name,
        "family_name": u.family_name,
        "disabled": u.disabled,
        "created_at": rfc3339(u.created_at),
        "updated_at": rfc3339(u.updated_at),
    })
}

pub fn session(s: &SessionInfo) -> Value {
    json!({
        "id": s.id,
        "ip": s.ip,
        "user_agent": s.user_agent,
        "created_at": rfc3339(s.created_at),
        "expires_at": rfc3339(s.expires_at),
    })
}

pub fn grant(g: &GrantInfo) -> Value {
    json!({
        "id": g.grant.id,
        "client_id": g.grant.client_id.as_str(),
        "sub": g.subject,
        "client_name": g.client_name,
        "scope": g.grant.scope.as_string(),
        "auth_time": rfc3339(g.grant.auth_time),
        "created_at": rfc3339(g.grant.created_at),
        "expires_at": rfc3339(g.grant.expires_at),
    })
}

pub fn key(k: &SigningKeyRecord) -> Value {
    json!({
        "kid": k.kid,
        "alg": k.alg.as_str(),
        "state": k.state.as_str(),
        "created_at": rfc3339(k.created_at),
        "activated_at": k.activated_at.map(rfc3339),
        "retired_at": k.retired_at.map(rfc3339),
        "publish_until": k.publish_until.map(rfc3339),
    })
}

pub fn event(e: &AuditEvent) -> Value {
    json!({
        "id": e.id,
        "at": rfc3339(e.at),
        "event_type": e.event_type,
        "actor": e.actor,
        "user_id": e.user_id,
        "client_id": e.client_id,
        "ip": e.ip,
        "detail": e.detail,
    })
}

pub fn dashboard(d: &Dashboard) -> Value {
    json!({
        "clients": d.clients,
        "users": d.users,
        "active_grants": d.active_grants,
        "failed_logins_24h": d.failed_logins,
        "failed_admin_logins_24h": d.failed_admin_logins,
    })
}
