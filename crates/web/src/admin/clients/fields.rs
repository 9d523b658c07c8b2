//! The client form's fields as the operator typed them, read from a client or a posted
//! form and turned into core's `ClientInput`, with the labels its errors are shown under.

use portcullis_core::clients::ClientInput;
use portcullis_core::model::{Client, ClientKind};

use crate::admin::forms::{FormErrors, Pairs, lines, optional_seconds, optional_text};

/// The grant types a client can be registered for, with what the form says about them.
pub const GRANT_CHOICES: [(&str, &str); 5] = [
    ("authorization_code", "Authorization code with PKCE (people sign in)"),
    (
        portcullis_protocol::DEVICE_CODE_GRANT,
        "Device authorization (TVs, command-line tools: people sign in on another device)",
    ),
    (
        "refresh_token",
        "Refresh token (with authorization code or device authorization)",
    ),
    (
        "client_credentials",
        "Client credentials (machine to machine; confidential only)",
    ),
    (
        portcullis_protocol::TOKEN_EXCHANGE_GRANT,
        "Token exchange (RFC 8693: a service trades the access token it was called with for one of its own, for an API it calls)",
    ),
];

/// The client form as the operator typed it, so a rejected form comes back unchanged.
#[derive(Debug, Clone, Default)]
pub struct ClientFields {
    pub name: String,
    pub kind: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: Vec<String>,
    pub scopes: String,
    pub first_party: bool,
    pub require_pkce: bool,
    pub access_token_ttl: String,
    pub refresh_token_ttl: String,
    pub cors_origins: String,
    /// RFC 8707 APIs, one a line.
    pub resources: String,
    pub logo_uri: String,
    pub policy_uri: String,
    pub tos_uri: String,
    /// Empty for the default (RS256).
    pub id_token_signed_response_alg: String,
    /// Empty for plain JSON.
    pub userinfo_signed_response_alg: String,
    /// Empty for the default (RS256).
    pub introspection_signed_response_alg: String,
    /// The JWK Set for `private_key_jwt`; empty for a secret.
    pub jwks: String,
    /// Where the client publishes its keys for `private_key_jwt` (`jwks_uri`), instead
    /// of `jwks`; empty for none.
    pub jwks_uri: String,
    /// RFC 9449 §5.2: token requests must carry a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// RFC 9126 §6: authorization requests only through `/par`.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 §10.5: authorization requests only as request objects the client signs.
    pub require_signed_request_object: bool,
    /// OIDC Back-Channel Logout: where the client is sent logout tokens; empty for none.
    pub backchannel_logout_uri: String,
    /// OIDC Front-Channel Logout: the page a sign-out loads in an iframe; empty for none.
    pub frontchannel_logout_uri: String,
    /// OIDC Core §8: `public` or `pairwise`.
    pub subject_type: String,
    /// With `pairwise`: the sector (a host name); empty to keep the client's, or to take
    /// its redirect URIs' host.
    pub sector_identifier: String,
    /// When editing: the client's `revision` when the form was opened.
    pub revision: String,
}

/// Stored JSON as the form shows it: indented, one member a line.
fn pretty_json(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| raw.to_owned())
}

fn joined<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join("\n")
}

impl ClientFields {
    /// What a new registration starts from.
    pub(super) fn defaults() -> Self {
        Self {
            kind: "confidential".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: "openid profile email".into(),
            require_pkce: true,
            subject_type: "public".into(),
            ..Self::default()
        }
    }

    pub(super) fn from_pairs(p: &Pairs) -> Self {
        Self {
            name: p.one("name"),
            kind: p.one("kind"),
            redirect_uris: p.one("redirect_uris"),
            post_logout_redirect_uris: p.one("post_logout_redirect_uris"),
            grant_types: p.all("grant_types"),
            scopes: p.one("scopes"),
            first_party: p.checked("first_party"),
            require_pkce: p.checked("require_pkce"),
            access_token_ttl: p.one("access_token_ttl"),
            refresh_token_ttl: p.one("refresh_token_ttl"),
            cors_origins: p.one("cors_origins"),
            resources: p.one("resources"),
            logo_uri: p.one("logo_uri"),
            policy_uri: p.one("policy_uri"),
            tos_uri: p.one("tos_uri"),
            id_token_signed_response_alg: p.one("id_token_signed_response_alg"),
            userinfo_signed_response_alg: p.one("userinfo_signed_response_alg"),
            introspection_signed_response_alg: p.one("introspection_signed_response_alg"),
            jwks: p.one("jwks"),
            jwks_uri: p.one("jwks_uri"),
            dpop_bound_access_tokens: p.checked("dpop_bound_access_tokens"),
            require_pushed_authorization_requests: p.checked("require_pushed_authorization_requests"),
            require_signed_request_object: p.checked("require_signed_request_object"),
            backchannel_logout_uri: p.one("backchannel_logout_uri"),
            frontchannel_logout_uri: p.one("frontchannel_logout_uri"),
            subject_type: p.one("subject_type"),
            sector_identifier: p.one("sector_identifier"),
            revision: p.one("revision"),
        }
    }

    pub(super) fn from_client(c: &Client) -> Self {
        Self {
            name: c.name.clone(),
            kind: c.kind.as_str().into(),
            redirect_uris: joined(c.redirect_uris.iter().map(|u| u.as_str())),
            post_logout_redirect_uris: joined(c.post_logout_redirect_uris.iter().map(|u| u.as_str())),
            grant_types: c.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: c.scopes.as_string(),
            first_party: c.first_party,
            require_pkce: c.require_pkce,
            access_token_ttl: c.access_token_ttl.map(|t| t.to_string()).unwrap_or_default(),
            refresh_token_ttl: c.refresh_token_ttl.map(|t| t.to_string()).unwrap_or_default(),
            cors_origins: joined(c.cors_origins.iter().map(String::as_str)),
            resources: joined(c.resources.iter().map(String::as_str)),
            logo_uri: c.logo_uri.clone().unwrap_or_default(),
            policy_uri: c.policy_uri.clone().unwrap_or_default(),
            tos_uri: c.tos_uri.clone().unwrap_or_default(),
            id_token_signed_response_alg: c
                .id_token_signed_response_alg
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            userinfo_signed_response_alg: c
                .userinfo_signed_response_alg
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            introspection_signed_response_alg: c
                .introspection_signed_response_alg
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            jwks: c.jwks.as_deref().map(pretty_json).unwrap_or_default(),
            jwks_uri: c.jwks_uri.clone().unwrap_or_default(),
            dpop_bound_access_tokens: c.dpop_bound_access_tokens,
            require_pushed_authorization_requests: c.require_pushed_authorization_requests,
            require_signed_request_object: c.require_signed_request_object,
            backchannel_logout_uri: c.backchannel_logout_uri.clone().unwrap_or_default(),
            frontchannel_logout_uri: c.frontchannel_logout_uri.clone().unwrap_or_default(),
            subject_type: if c.pairwise_sector.is_some() {
                "pairwise"
            } else {
                "public"
            }
            .into(),
            sector_identifier: c.pairwise_sector.clone().unwrap_or_default(),
            revision: c.revision.to_string(),
        }
    }

    /// The use case's input; the fields the page itself must parse (numbers, the kind)
    /// fail here with their own field name.
    pub(super) fn to_input(&self, with_kind: bool) -> Result<ClientInput, FormErrors> {
        let kind = if with_kind {
            Some(
                ClientKind::parse(&self.kind)
                    .ok_or_else(|| FormErrors::one("kind", "choose confidential or public"))?,
            )
        } else {
            None
        };
        Ok(ClientInput {
            name: self.name.clone(),
            kind,
            redirect_uris: lines(&self.redirect_uris),
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
            grant_types: self.grant_types.clone(),
            scopes: self.scopes.clone(),
            first_party: self.first_party,
            require_pkce: Some(self.require_pkce),
            access_token_ttl: optional_seconds("access_token_ttl", &self.access_token_ttl)?,
            refresh_token_ttl: optional_seconds("refresh_token_ttl", &self.refresh_token_ttl)?,
            cors_origins: lines(&self.cors_origins),
            resources: lines(&self.resources),
            logo_uri: optional_text(&self.logo_uri),
            policy_uri: optional_text(&self.policy_uri),
            tos_uri: optional_text(&self.tos_uri),
            id_token_signed_response_alg: optional_text(&self.id_token_signed_response_alg),
            userinfo_signed_response_alg: optional_text(&self.userinfo_signed_response_alg),
            introspection_signed_response_alg: optional_text(&self.introspection_signed_response_alg),
            jwks: optional_text(&self.jwks),
            jwks_uri: optional_text(&self.jwks_uri),
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            require_signed_request_object: self.require_signed_request_object,
            backchannel_logout_uri: optional_text(&self.backchannel_logout_uri),
            frontchannel_logout_uri: optional_text(&self.frontchannel_logout_uri),
            subject_type: optional_text(&self.subject_type),
            sector_identifier: optional_text(&self.sector_identifier),
            // Operators name the sector; the list is a self-registering client's.
            sector_identifier_uri: None,
            // A self-registering client's own word, kept through operators' edits.
            token_endpoint_auth_signing_alg: None,
            request_object_signing_alg: None,
            backchannel_logout_session_required: false,
            default_max_age: None,
            secret_with_keys: false,
            request_uris: vec![],
            if_revision: match self.revision.trim() {
                "" => None,
                r => Some(
                    r.parse()
                        .map_err(|_| FormErrors::one("revision", "reload the form and try again"))?,
                ),
            },
        })
    }

    pub fn has_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// A field's label, for the error summary above the form.
pub fn label(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "kind" => "Type",
        "redirect_uris" => "Redirect URIs",
        "post_logout_redirect_uris" => "Post-logout redirect URIs",
        "grant_types" => "Grant types",
        "scopes" => "Allowed scopes",
        "access_token_ttl" => "Access token lifetime",
        "refresh_token_ttl" => "Refresh token lifetime",
        "cors_origins" => "Allowed CORS origins",
        "resources" => "APIs (resource indicators)",
        "logo_uri" => "Logo URL",
        "policy_uri" => "Policy URL",
        "tos_uri" => "Terms of service URL",
        "id_token_signed_response_alg" => "ID token signature",
        "userinfo_signed_response_alg" => "UserInfo signature",
        "introspection_signed_response_alg" => "Introspection answer signature",
        "jwks" => "Public keys (JWK Set)",
        "jwks_uri" => "Public keys URL (jwks_uri)",
        "require_signed_request_object" => "Require signed request objects",
        "backchannel_logout_uri" => "Back-channel logout URL",
        "frontchannel_logout_uri" => "Front-channel logout URL",
        "subject_type" => "Subject identifiers",
        "sector_identifier" => "Sector identifier",
        _ => "Client",
    }
}
