//! What a client is registered or edited with (`ClientInput`), and its validation into
//! the fields stored: redirect URIs, origins, algorithms, keys, subject types and sectors.

use portcullis_protocol::{ClientId, GrantType, RedirectUri, ScopeSet, SigningAlg};

use crate::error::{Error, Result};
use crate::model::{Client, ClientKind};
use crate::service::ID_TOKEN_ALG;

/// What an operator fills in to register or edit a client, as typed.
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub name: String,
    pub kind: Option<ClientKind>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: String,
    pub first_party: bool,
    /// `None` means the default (required).
    pub require_pkce: Option<bool>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub cors_origins: Vec<String>,
    pub logo_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    /// OIDC Registration §2: `RS256` (the default when empty or absent), or the server's
    /// `signing_alg`, the only other algorithm it has keys for.
    pub id_token_signed_response_alg: Option<String>,
    /// OIDC Registration §2: blank or absent for plain JSON from UserInfo, or an algorithm
    /// the server signs ID tokens with (RS256 and `signing_alg`) for a signed JWT.
    pub userinfo_signed_response_alg: Option<String>,
    /// RFC 9701 §6: `RS256` (the default when empty or absent), or the server's
    /// `signing_alg`, for the JWTs that answer the client at `/introspect` when it asks
    /// for `application/token-introspection+jwt`.
    pub introspection_signed_response_alg: Option<String>,
    /// A confidential client's public keys, a JWK Set (JSON), for `private_key_jwt`
    /// instead of a secret; blank or absent for none. On an edit it replaces the keys:
    /// registering keys ends the secret, removing them leaves the client without a way to
    /// authenticate until its secret is rotated.
    pub jwks: Option<String>,
    /// Where the client publishes its public keys (OIDC Registration §2 `jwks_uri`),
    /// instead of `jwks`: an https URL (http only on a loopback host). Registering it ends
    /// the secret, as registering keys does.
    pub jwks_uri: Option<String>,
    /// RFC 9449 §5.2: every token request of the client must carry a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// RFC 8707: the APIs (absolute URIs) the client may ask for access tokens to.
    pub resources: Vec<String>,
    /// RFC 9126 §6: authorization requests only through `/par`.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 §10.5: authorization requests only as signed request objects; the
    /// client must have keys (`jwks` or `jwks_uri`) to sign them with.
    pub require_signed_request_object: bool,
    /// OIDC Back-Channel Logout §2.2: where the client is told of sign-outs; an https URL
    /// (http only on a loopback host), blank for none.
    pub backchannel_logout_uri: Option<String>,
    /// OIDC Front-Channel Logout §2: the client's page a sign-out loads in a hidden
    /// iframe; https (http only on a loopback host), on the origin (scheme, host, port)
    /// of one of its redirect URIs; blank for none.
    pub frontchannel_logout_uri: Option<String>,
    /// OIDC Core §8: `public` (the default when blank or absent) or `pairwise`.
    pub subject_type: Option<String>,
    /// With `pairwise`: the sector (a host name) whose clients see one person under one
    /// identifier. Blank: on an edit, the sector the client has; otherwise the one host
    /// its redirect URIs name (loopback aside), or, when they name none, the client
    /// alone. Changing it changes every `sub` the client sees. Ignored with `public`.
    pub sector_identifier: Option<String>,
    /// OIDC Core §8.1: the https URL of the JSON array of redirect URIs a client that
    /// registers itself names (RFC 7591 registration reads and checks it first, and names
    /// its host as `sector_identifier`). Operators name a `sector_identifier` instead; on
    /// their edits the client keeps the one it has while its sector stays.
    pub sector_identifier_uri: Option<String>,
    /// OIDC Registration §2 `request_uris`, as a client registering itself names them:
    /// where its request objects may be read from (OIDC Core §6.2). Operators' edits keep
    /// what the client has.
    pub request_uris: Vec<String>,
    /// OIDC Registration §2, as a client registering itself names them: the algorithm
    /// its client assertions and its request objects must be signed with (one of
    /// discovery's; `Ed25519` is EdDSA), and whether its logout tokens must name a session
    /// (Back-Channel Logout §2.2). Operators' edits keep what the client has.
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub request_object_signing_alg: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// OIDC Registration §2 `default_max_age`, as a client registering itself sets it.
    /// Operators' edits keep what the client has.
    pub default_max_age: Option<i64>,
    /// A client registering itself that names a secret method (`client_secret_basic`
    /// or `_post`) and keys besides (OIDC Registration §2: for its request objects): it
    /// gets a secret all the same, and keeps it while it keeps the method.
    pub secret_with_keys: bool,
    /// When editing: the client's `revision` as the editor read it. If the client has
    /// changed since, the edit is refused rather than silently undoing the other change.
    /// Without it the edit applies to the client as read just before the write, and is
    /// still refused if another write comes in between.
    pub if_revision: Option<i64>,
}

/// The validated fields of a client, before an id and secret are attached.
pub(super) struct ValidClient {
    pub(super) name: String,
    pub(super) kind: ClientKind,
    pub(super) redirect_uris: Vec<RedirectUri>,
    pub(super) post_logout_redirect_uris: Vec<RedirectUri>,
    pub(super) grant_types: Vec<GrantType>,
    pub(super) scopes: ScopeSet,
    pub(super) require_pkce: bool,
    pub(super) cors_origins: Vec<String>,
    pub(super) logo_uri: Option<String>,
    pub(super) policy_uri: Option<String>,
    pub(super) tos_uri: Option<String>,
    pub(super) id_token_signed_response_alg: Option<SigningAlg>,
    pub(super) userinfo_signed_response_alg: Option<SigningAlg>,
    pub(super) introspection_signed_response_alg: Option<SigningAlg>,
    pub(super) jwks: Option<String>,
    pub(super) jwks_uri: Option<String>,
    pub(super) resources: Vec<String>,
    pub(super) backchannel_logout_uri: Option<String>,
    pub(super) frontchannel_logout_uri: Option<String>,
    pub(super) sector_identifier_uri: Option<String>,
    pub(super) request_uris: Vec<String>,
    pub(super) token_endpoint_auth_signing_alg: Option<String>,
    pub(super) request_object_signing_alg: Option<String>,
    pub(super) subjects: Subjects,
}

/// How a client is to see people's identifiers, as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Subjects {
    Public,
    /// Pairwise in the sector named, or (`None`) in the one its editor does not name.
    Pairwise(Option<String>),
}

impl Subjects {
    pub(super) fn parse(input: &ClientInput) -> Result<Self> {
        let blank = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        // Checked whatever the subject type: a value an operator typed is never dropped
        // unread for being wrong.
        let sector = match blank(&input.sector_identifier).map(|s| s.to_ascii_lowercase()) {
            Some(s) if s.len() > 253 || !is_host_name(&s) => {
                return Err(Error::invalid(
                    "sector_identifier",
                    "must be a host name, such as app.example.com (no scheme, port or path)",
                ));
            }
            sector => sector,
        };
        match blank(&input.subject_type).as_deref() {
            // A good sector means nothing then (a form switched back to public still has
            // one).
            None | Some("public") => Ok(Self::Public),
            Some("pairwise") => Ok(Self::Pairwise(sector)),
            Some(_) => Err(Error::invalid("subject_type", "must be public or pairwise")),
        }
    }
}

/// The sector of pairwise client `id` whose editor names none (OIDC Core §8.1): the host
/// of its https redirect URIs. Loopback addresses are every native app's, and a
/// private-use scheme's authority (`com.example.app://host/cb`) is whatever the app
/// says, so a client whose redirects are only such has a sector of its own, its id.
/// Beside a host they count as another (§8.1: several hosts need a sector named): a code
/// sent to one of them would otherwise carry the identifiers of a site whose host anyone
/// can list.
pub(crate) fn redirect_sector(redirect_uris: &[RedirectUri], id: &ClientId) -> Result<String> {
    const LOCAL: &str = "loopback or private-use redirects";
    let mut hosts: Vec<String> = Vec::new();
    for uri in redirect_uris {
        let url = uri.url();
        let host = url
            .host_str()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| {
                url.scheme() == "https"
                    && !h.is_empty()
                    && h != "localhost"
                    && !portcullis_protocol::is_loopback_host(url)
            })
            .unwrap_or_else(|| LOCAL.to_owned());
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    match hosts.as_slice() {
        [] => Ok(id.as_str().to_owned()),
        [local] if local == LOCAL => Ok(id.as_str().to_owned()),
        [one] => Ok(one.clone()),
        _ => Err(Error::invalid(
            "sector_identifier",
            format!(
                "the redirect URIs name several hosts ({}): pairwise subject identifiers need them on one host, \
                 or a sector identifier naming the host they share",
                hosts.join(", ")
            ),
        )),
    }
}

/// Whether `input` would be taken for a new client that registered itself (or not):
/// the checks of `insert_client`, without writing anything.
pub(crate) fn check_new_client(input: &ClientInput, id_token_algs: &[SigningAlg], self_registered: bool) -> Result<()> {
    let v = validate(input, id_token_algs, None)?;
    if v.subjects == Subjects::Pairwise(None) {
        // The id does not change whether the redirect URIs name one sector.
        let id = ClientId::parse("client").map_err(|e| Error::Unexpected(e.0))?;
        own_or_redirect_sector(&v, self_registered, &id)?;
    }
    Ok(())
}

/// `redirect_sector`, except for a client that registered itself and may use the device
/// grant: its tokens reach it without any redirect, so the hosts it lists prove nothing
/// (they may be anyone's), and it is a sector by itself.
pub(super) fn own_or_redirect_sector(v: &ValidClient, self_registered: bool, id: &ClientId) -> Result<String> {
    if self_registered && v.grant_types.contains(&GrantType::DeviceCode) {
        return Ok(id.as_str().to_owned());
    }
    redirect_sector(&v.redirect_uris, id)
}

/// The most redirect URIs, post-logout redirect URIs or CORS origins one client has.
pub const MAX_URIS: usize = 50;

fn check_count(field: &'static str, raw: &[String]) -> Result<()> {
    if raw.iter().filter(|s| !s.trim().is_empty()).count() > MAX_URIS {
        return Err(Error::invalid(field, format!("at most {MAX_URIS}")));
    }
    Ok(())
}

/// `value` as an error message quotes it: at most 100 characters, so a refused
/// 2,000-character URI does not make a 2,000-character message.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// `stored`: the client's URIs before this edit, which stay as they are even where the
/// rules have since become stricter, so a client registered earlier can still be edited.
fn parse_uris(field: &'static str, raw: &[String], stored: &[RedirectUri]) -> Result<Vec<RedirectUri>> {
    check_count(field, raw)?;
    let mut out: Vec<RedirectUri> = Vec::new();
    for r in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let uri = match stored.iter().find(|u| u.as_str() == r) {
            Some(kept) => kept.clone(),
            None => {
                RedirectUri::parse_registered(r).map_err(|e| Error::invalid(field, format!("{}: {e}", quoted(r))))?
            }
        };
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

fn parse_origin(raw: &str) -> Result<String> {
    let url = url::Url::parse(raw).map_err(|e| Error::invalid("cors_origins", format!("{}: {e}", quoted(raw))))?;
    let origin = url.origin();
    if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            "cors_origins",
            format!("{}: must be an http(s) origin", quoted(raw)),
        ));
    }
    let ascii = origin.ascii_serialization();
    if ascii != raw.trim_end_matches('/') {
        return Err(Error::invalid(
            "cors_origins",
            format!(
                "{}: must be an origin only (scheme, host, port), e.g. {ascii}",
                quoted(raw)
            ),
        ));
    }
    Ok(ascii)
}

/// An API a client may ask for tokens to (RFC 8707 §2): an absolute URI without a
/// fragment, https (http only on a loopback host, for development), kept as typed:
/// requests name it exactly.
pub fn parse_resource(raw: &str) -> Result<String> {
    parse_https_uri("resources", raw)
}

/// An absolute https URI (http only on a loopback host), written as RFC 3986 has it,
/// without fragment, user or password: an API (`resources`), a `jwks_uri`, a
/// `backchannel_logout_uri`.
pub(crate) fn parse_https_uri(field: &'static str, raw: &str) -> Result<String> {
    if raw.len() > 2000 {
        return Err(Error::invalid(field, "each must be at most 2000 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| Error::invalid(field, format!("{}: {e}", quoted(raw))))?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(Error::invalid(
            field,
            format!("{}: must not have a fragment", quoted(raw)),
        ));
    }
    if !is_displayable(&url) || url.username() != "" || url.password().is_some() {
        return Err(Error::invalid(
            field,
            format!(
                "{}: must be an https URL (http only on a loopback host) on a host name without a trailing dot, and without user or password",
                quoted(raw)
            ),
        ));
    }
    // RFC 3986 as typed: the URL parser mends backslashes, missing slashes and the like
    // (`http://localhost\@evil.example/` is loopback to it, evil.example to others).
    let scheme_slashes = format!("{}://", url.scheme());
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        || !raw.to_ascii_lowercase().starts_with(&scheme_slashes)
    {
        return Err(Error::invalid(
            field,
            format!(
                "{}: must be an absolute URI as RFC 3986 writes it: ASCII, no spaces or backslashes, {scheme_slashes} and a host",
                quoted(raw)
            ),
        ));
    }
    Ok(raw.to_owned())
}

/// Most `request_uris` a client may register.
pub const MAX_REQUEST_URIS: usize = 8;

/// OIDC Registration §2 `request_uris`: each an https URL (http only on a loopback host)
/// a request object is read from, with at most a fragment naming the base64url SHA-256
/// hash of its content (43 characters; OIDC Core §6.2).
fn parse_request_uris(raw: &[String]) -> Result<Vec<String>> {
    const FIELD: &str = "request_uris";
    let raw: Vec<&str> = raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    if raw.len() > MAX_REQUEST_URIS {
        return Err(Error::invalid(FIELD, format!("at most {MAX_REQUEST_URIS}")));
    }
    let mut out: Vec<String> = Vec::new();
    for uri in raw {
        let (url, fragment) = crate::request_uri::split_fragment(uri);
        parse_https_uri(FIELD, url)?;
        if fragment
            .is_some_and(|f| f.len() != 43 || !f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(Error::invalid(
                FIELD,
                format!(
                    "{}: a fragment must be the base64url SHA-256 hash of the request object (43 characters)",
                    quoted(uri)
                ),
            ));
        }
        if !out.iter().any(|o| o == uri) {
            out.push(uri.to_owned());
        }
    }
    Ok(out)
}

/// A logo or policy URL shown on the consent page: https (http only on a loopback host,
/// for development), stored as parsed.
fn parse_optional_url(field: &'static str, raw: &Option<String>) -> Result<Option<String>> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            if s.len() > 2000 {
                return Err(Error::invalid(field, "must be at most 2000 characters"));
            }
            let url = url::Url::parse(s).map_err(|e| Error::invalid(field, format!("{s}: {e}")))?;
            if !is_displayable(&url) {
                return Err(Error::invalid(
                    field,
                    "must be an https URL (http only on a loopback host)",
                ));
            }
            Ok(Some(url.as_str().to_owned()))
        }
    }
}

/// Whether a page for people may link to or load `url`: https, or http on a loopback host,
/// on an IP address or a host name of letters, digits, hyphens, underscores (container
/// networks' service names; webhooks check receivers with this too) and dots. The consent page
/// writes the logo's origin into its Content-Security-Policy header, where a host such as
/// `a;script-src` or `*` (which URL parsing lets through) would add to the policy.
pub fn is_displayable(url: &url::Url) -> bool {
    let host = match url.host() {
        Some(url::Host::Domain(name)) => is_host_name(name),
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        None => false,
    };
    host && match url.scheme() {
        "https" => true,
        "http" => portcullis_protocol::is_loopback_host(url),
        _ => false,
    }
}

/// Host names as URL parsing leaves them (lowercase, IDNs in punycode): RFC 1123 §2.1
/// labels, underscores allowed.
fn is_host_name(name: &str) -> bool {
    name.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn check_ttl(field: &'static str, ttl: Option<i64>, max: i64) -> Result<()> {
    match ttl {
        Some(t) if !(60..=max).contains(&t) => {
            Err(Error::invalid(field, format!("must be between 60 and {max} seconds")))
        }
        _ => Ok(()),
    }
}

/// `id_token_algs`: the algorithms the server signs ID tokens with, if a client asks;
/// `previous`: the client being edited.
pub(super) fn validate(
    input: &ClientInput,
    id_token_algs: &[SigningAlg],
    previous: Option<&Client>,
) -> Result<ValidClient> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name", "must be 1 to 200 characters"));
    }
    if name.chars().any(crate::model::hidden_in_names) {
        // It is printed on the consent page, the admin UI and operators' terminals.
        return Err(Error::invalid(
            "name",
            "must not contain control or bidirectional formatting characters",
        ));
    }
    let kind = input
        .kind
        .ok_or_else(|| Error::invalid("kind", "must be confidential or public"))?;
    let redirect_uris = parse_uris(
        "redirect_uris",
        &input.redirect_uris,
        previous.map_or(&[], |c| &c.redirect_uris),
    )?;
    let post_logout_redirect_uris = parse_uris(
        "post_logout_redirect_uris",
        &input.post_logout_redirect_uris,
        previous.map_or(&[], |c| &c.post_logout_redirect_uris),
    )?;
    let mut grant_types = Vec::new();
    for g in input.grant_types.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let g = GrantType::parse(g).map_err(|e| Error::invalid("grant_types", e.0))?;
        if !grant_types.contains(&g) {
            grant_types.push(g);
        }
    }
    if grant_types.is_empty() {
        return Err(Error::invalid("grant_types", "choose at least one grant type"));
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(Error::invalid(
            "redirect_uris",
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    if grant_types.contains(&GrantType::RefreshToken)
        && !grant_types.contains(&GrantType::AuthorizationCode)
        && !grant_types.contains(&GrantType::DeviceCode)
    {
        return Err(Error::invalid(
            "grant_types",
            "refresh_token is only issued with authorization_code or the device grant",
        ));
    }
    if kind == ClientKind::Public && grant_types.contains(&GrantType::ClientCredentials) {
        // RFC 6749 §4.4: client credentials only for confidential clients.
        return Err(Error::invalid(
            "grant_types",
            "a public client cannot use client_credentials",
        ));
    }
    if kind == ClientKind::Public && grant_types.contains(&GrantType::TokenExchange) {
        // RFC 8693 §2.1: the exchanging client authenticates.
        return Err(Error::invalid(
            "grant_types",
            "a public client cannot use token exchange",
        ));
    }
    let scopes = ScopeSet::parse(&input.scopes).map_err(|e| Error::invalid("scopes", e.0))?;
    let jwks = crate::client_assertion::check_jwks(input.jwks.as_deref().unwrap_or_default())?;
    if kind == ClientKind::Public && jwks.is_some() {
        return Err(Error::invalid(
            "jwks",
            "a public client cannot keep a private key; register it as confidential to use private_key_jwt",
        ));
    }
    let jwks_uri = match input.jwks_uri.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(_) if kind == ClientKind::Public => {
            return Err(Error::invalid(
                "jwks_uri",
                "a public client cannot keep a private key; register it as confidential to use private_key_jwt",
            ));
        }
        // OIDC Registration §2: "MUST NOT both be present".
        Some(_) if jwks.is_some() => {
            return Err(Error::invalid(
                "jwks_uri",
                "register the keys either inline (jwks) or at a jwks_uri, not both",
            ));
        }
        Some(raw) => Some(parse_https_uri("jwks_uri", raw)?),
    };
    let backchannel_logout_uri = match input
        .backchannel_logout_uri
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        // Back-Channel Logout §2.2: http only for a confidential client.
        Some(raw) if kind == ClientKind::Public && raw.get(..7).is_some_and(|h| h.eq_ignore_ascii_case("http://")) => {
            return Err(Error::invalid(
                "backchannel_logout_uri",
                "must be https for a public client (http only for a confidential one, on a loopback host)",
            ));
        }
        Some(raw) => Some(parse_https_uri("backchannel_logout_uri", raw)?),
        None => None,
    };
    let frontchannel_logout_uri = match input
        .frontchannel_logout_uri
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(raw) => {
            const FIELD: &str = "frontchannel_logout_uri";
            let uri = parse_https_uri(FIELD, raw)?;
            // §2: "The domain, port, and scheme of this URL MUST be the same as that of
            // a registered Redirection URI value": the pages a sign-out frames are the
            // client's own, never a third party's.
            let url = url::Url::parse(&uri).map_err(|e| Error::invalid(FIELD, e.to_string()))?;
            // §2: the server adds them; a page that also names its own would read those.
            if url.query_pairs().any(|(k, _)| k == "iss" || k == "sid") {
                return Err(Error::invalid(
                    FIELD,
                    format!(
                        "{}: must not have iss or sid in its query: they are added at each sign-out",
                        quoted(raw)
                    ),
                ));
            }
            let origin = url.origin();
            if !redirect_uris.iter().any(|r| r.url().origin() == origin) {
                return Err(Error::invalid(
                    FIELD,
                    format!(
                        "{}: must be on the origin (scheme, host and port) of one of the redirect URIs",
                        quoted(raw)
                    ),
                ));
            }
            Some(uri)
        }
        None => None,
    };
    if input.require_signed_request_object && jwks.is_none() && jwks_uri.is_none() {
        return Err(Error::invalid(
            "require_signed_request_object",
            "the client must register its public keys (jwks or jwks_uri) to sign its requests with",
        ));
    }
    // RFC 7636 and RFC 9700 §2.1.1: PKCE is mandatory for public clients.
    let require_pkce = kind == ClientKind::Public || input.require_pkce.unwrap_or(true);
    check_ttl("access_token_ttl", input.access_token_ttl, 24 * 3600)?;
    check_ttl("refresh_token_ttl", input.refresh_token_ttl, 365 * 24 * 3600)?;
    check_count("resources", &input.resources)?;
    let mut resources = Vec::new();
    for r in input.resources.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let r = parse_resource(r)?;
        if !resources.contains(&r) {
            resources.push(r);
        }
    }
    check_count("cors_origins", &input.cors_origins)?;
    let mut cors_origins = Vec::new();
    for o in input.cors_origins.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let o = parse_origin(o)?;
        if !cors_origins.contains(&o) {
            cors_origins.push(o);
        }
    }
    Ok(ValidClient {
        name: name.to_owned(),
        kind,
        redirect_uris,
        post_logout_redirect_uris,
        grant_types,
        scopes,
        require_pkce,
        cors_origins,
        logo_uri: parse_optional_url("logo_uri", &input.logo_uri)?,
        policy_uri: parse_optional_url("policy_uri", &input.policy_uri)?,
        tos_uri: parse_optional_url("tos_uri", &input.tos_uri)?,
        id_token_signed_response_alg: id_token_alg(input.id_token_signed_response_alg.as_deref(), id_token_algs)?,
        introspection_signed_response_alg: rs256_by_default(
            "introspection_signed_response_alg",
            input.introspection_signed_response_alg.as_deref(),
            id_token_algs,
        )?,
        userinfo_signed_response_alg: userinfo_alg(input.userinfo_signed_response_alg.as_deref(), id_token_algs)?,
        jwks,
        jwks_uri,
        resources,
        backchannel_logout_uri,
        frontchannel_logout_uri,
        sector_identifier_uri: match input.sector_identifier_uri.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => Some(parse_https_uri("sector_identifier_uri", raw)?),
            _ => None,
        },
        request_uris: parse_request_uris(&input.request_uris)?,
        token_endpoint_auth_signing_alg: signing_alg(
            "token_endpoint_auth_signing_alg",
            input.token_endpoint_auth_signing_alg.as_deref(),
        )?,
        request_object_signing_alg: signing_alg(
            "request_object_signing_alg",
            input.request_object_signing_alg.as_deref(),
        )?,
        subjects: Subjects::parse(input)?,
    })
}

/// An algorithm a client's JWTs must be signed with: one of those taken from clients
/// (`jws::algorithm_names`), by its JWA name (`Ed25519` is stored as EdDSA); blank for any.
pub(crate) fn signing_alg(field: &'static str, raw: Option<&str>) -> Result<Option<String>> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match crate::jws::header_alg(raw) {
        Some(alg) => Ok(Some(crate::jws::algorithm_name(alg).to_owned())),
        None => Err(Error::invalid(
            field,
            format!(
                "{} is not taken; use one of {}",
                quoted(raw),
                crate::jws::algorithm_names().join(", ")
            ),
        )),
    }
}

/// The registered ID token algorithm: `None` for the default (RS256), which is how RS256
/// is stored too, so a client that names it follows the default.
fn id_token_alg(raw: Option<&str>, available: &[SigningAlg]) -> Result<Option<SigningAlg>> {
    rs256_by_default("id_token_signed_response_alg", raw, available)
}

/// A registered algorithm whose default is RS256 (ID tokens, RFC 9701 introspection
/// responses): `None` for the default, which is how RS256 is stored too.
fn rs256_by_default(field: &'static str, raw: Option<&str>, available: &[SigningAlg]) -> Result<Option<SigningAlg>> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let listed = || available.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
    let alg = SigningAlg::parse(raw).map_err(|_| Error::invalid(field, format!("must be one of {}", listed())))?;
    if !available.contains(&alg) {
        return Err(Error::invalid(
            field,
            format!(
                "this server signs with {} only (set signing_alg to use {})",
                listed(),
                alg.as_str()
            ),
        ));
    }
    Ok((alg != ID_TOKEN_ALG).then_some(alg))
}

/// The registered UserInfo algorithm: `None` for plain JSON (the default), else one of
/// the algorithms ID tokens are signed with, RS256 included (it is not a default here).
fn userinfo_alg(raw: Option<&str>, available: &[SigningAlg]) -> Result<Option<SigningAlg>> {
    const FIELD: &str = "userinfo_signed_response_alg";
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let listed = || available.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
    match SigningAlg::parse(raw) {
        Ok(alg) if available.contains(&alg) => Ok(Some(alg)),
        _ => Err(Error::invalid(
            FIELD,
            format!("must be one of {} (or empty for plain JSON)", listed()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ClientInput {
        ClientInput {
            name: "App".into(),
            kind: Some(ClientKind::Confidential),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: "openid profile".into(),
            ..Default::default()
        }
    }

    #[test]
    fn id_token_algorithm_is_one_the_server_has_keys_for() {
        let both = [SigningAlg::RS256, SigningAlg::ES256];
        assert_eq!(id_token_alg(None, &both).unwrap(), None);
        assert_eq!(id_token_alg(Some(" "), &both).unwrap(), None);
        assert_eq!(id_token_alg(Some("RS256"), &both).unwrap(), None, "the default");
        assert_eq!(id_token_alg(Some("ES256"), &both).unwrap(), Some(SigningAlg::ES256));
        for (raw, available) in [
            ("ES256", &both[..1]),
            ("EdDSA", &both[..]),
            ("HS256", &both[..]),
            ("none", &both[..]),
        ] {
            assert!(
                matches!(
                    id_token_alg(Some(raw), available),
                    Err(Error::Invalid {
                        field: "id_token_signed_response_alg",
                        ..
                    })
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn subject_types_and_sectors_are_read_or_refused() {
        let with = |t: Option<&str>, sector: Option<&str>| {
            Subjects::parse(&ClientInput {
                subject_type: t.map(str::to_owned),
                sector_identifier: sector.map(str::to_owned),
                ..input()
            })
        };
        assert_eq!(with(None, None).unwrap(), Subjects::Public);
        assert_eq!(with(Some(" "), None).unwrap(), Subjects::Public);
        assert_eq!(with(Some("public"), Some("a.example")).unwrap(), Subjects::Public);
        assert_eq!(with(Some("pairwise"), Some("")).unwrap(), Subjects::Pairwise(None));
        assert_eq!(
            with(Some("pairwise"), Some(" App.Example ")).unwrap(),
            Subjects::Pairwise(Some("app.example".into()))
        );
        let field = |r: Result<Subjects>| match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(with(Some("Pairwise"), None)), "subject_type");
        for bad in [
            "https://a.example",
            "a.example:443",
            "a.example/x",
            "a b",
            "a..example",
            &"a".repeat(64),
        ] {
            assert_eq!(field(with(Some("pairwise"), Some(bad))), "sector_identifier", "{bad}");
            assert_eq!(field(with(Some("public"), Some(bad))), "sector_identifier", "{bad}");
            assert_eq!(field(with(None, Some(bad))), "sector_identifier", "{bad}");
        }
    }

    #[test]
    fn the_redirect_sector_is_the_one_host_they_name() {
        let id = ClientId::parse("client-1").unwrap();
        let sector = |uris: &[&str]| {
            let uris: Vec<RedirectUri> = uris.iter().map(|u| RedirectUri::parse(u).unwrap()).collect();
            redirect_sector(&uris, &id)
        };
        assert_eq!(
            sector(&["https://App.Example/a", "https://app.example./b"]).unwrap(),
            "app.example"
        );
        // Loopback, `localhost` and private-use schemes are nobody's own: a sector alone.
        assert_eq!(
            sector(&["http://localhost:8080/cb", "http://[::1]/cb", "com.example.app:/cb"]).unwrap(),
            "client-1"
        );
        // A private-use scheme's authority is the app's word, not a host it holds.
        assert_eq!(sector(&["com.evil.app://app.example/cb"]).unwrap(), "client-1");
        assert_eq!(sector(&[]).unwrap(), "client-1");
        let several = |uris: &[&str], named: &str| {
            assert!(
                matches!(
                    sector(uris),
                    Err(Error::Invalid { field: "sector_identifier", ref message }) if message.contains(named)
                ),
                "{uris:?}"
            );
        };
        several(
            &["https://a.example/cb", "https://b.example/cb"],
            "a.example, b.example",
        );
        // Beside a host, a loopback or private-use redirect is another: whoever gets the
        // code there must not see the host's identifiers.
        several(&["https://a.example/cb", "http://127.0.0.1/cb"], "a.example, loopback");
        several(
            &["https://a.example/cb", "com.evil.app://A.EXAMPLE/cb"],
            "a.example, loopback",
        );
        several(
            &["com.example.app:/cb", "https://a.example/cb"],
            "loopback or private-use redirects, a.example",
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate(&input(), &[ID_TOKEN_ALG], None).is_ok());
        let mut i = input();
        i.redirect_uris = vec!["http://evil.example/cb".into()];
        assert!(matches!(
            validate(&i, &[ID_TOKEN_ALG], None),
            Err(Error::Invalid {
                field: "redirect_uris",
                ..
            })
        ));
        let mut i = input();
        i.kind = Some(ClientKind::Public);
        i.grant_types = vec!["client_credentials".into()];
        assert!(matches!(
            validate(&i, &[ID_TOKEN_ALG], None),
            Err(Error::Invalid {
                field: "grant_types",
                ..
            })
        ));
        let mut i = input();
        i.redirect_uris.clear();
        assert!(matches!(
            validate(&i, &[ID_TOKEN_ALG], None),
            Err(Error::Invalid {
                field: "redirect_uris",
                ..
            })
        ));
        let mut i = input();
        i.cors_origins = vec!["https://app.example/path".into()];
        assert!(matches!(
            validate(&i, &[ID_TOKEN_ALG], None),
            Err(Error::Invalid {
                field: "cors_origins",
                ..
            })
        ));
        let mut i = input();
        i.kind = Some(ClientKind::Public);
        i.require_pkce = Some(false);
        assert!(validate(&i, &[ID_TOKEN_ALG], None).unwrap().require_pkce);
        // Back-Channel Logout §2.2: http only for a confidential client.
        let mut i = input();
        i.backchannel_logout_uri = Some("http://127.0.0.1:9000/bcl".into());
        assert!(validate(&i, &[ID_TOKEN_ALG], None).is_ok());
        i.kind = Some(ClientKind::Public);
        assert!(matches!(
            validate(&i, &[ID_TOKEN_ALG], None),
            Err(Error::Invalid {
                field: "backchannel_logout_uri",
                ..
            })
        ));
        i.backchannel_logout_uri = Some("https://app.example/bcl".into());
        assert!(validate(&i, &[ID_TOKEN_ALG], None).is_ok());
        // Client JWT algorithms: one of discovery's, by its JWA name.
        let mut i = input();
        i.token_endpoint_auth_signing_alg = Some("Ed25519".into());
        i.request_object_signing_alg = Some(" PS256 ".into());
        let v = validate(&i, &[ID_TOKEN_ALG], None).unwrap();
        assert_eq!(v.token_endpoint_auth_signing_alg.as_deref(), Some("EdDSA"));
        assert_eq!(v.request_object_signing_alg.as_deref(), Some("PS256"));
        for bad in ["HS256", "none", "RSA-OAEP"] {
            i.request_object_signing_alg = Some(bad.into());
            assert!(matches!(
                validate(&i, &[ID_TOKEN_ALG], None),
                Err(Error::Invalid {
                    field: "request_object_signing_alg",
                    ..
                })
            ));
        }
    }

    /// Found by fuzzing the admin API: what was stored although it should not have been.
    #[test]
    fn names_uris_and_counts_are_bounded() {
        let field_of = |i: &ClientInput| match validate(i, &[ID_TOKEN_ALG], None) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{:?}", other.map(|v| v.name)),
        };
        let mut i = input();
        i.name = "evil\u{1b}[2J\u{7}".into();
        assert_eq!(field_of(&i), "name");
        let mut i = input();
        i.redirect_uris = vec!["https:///cb".into()];
        assert_eq!(field_of(&i), "redirect_uris");
        let mut i = input();
        i.post_logout_redirect_uris = vec!["https://u:p@app.example/bye".into()];
        assert_eq!(field_of(&i), "post_logout_redirect_uris");
        let many = |n: usize, f: fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
        let mut i = input();
        i.redirect_uris = many(MAX_URIS + 1, |n| format!("https://app.example/cb{n}"));
        assert_eq!(field_of(&i), "redirect_uris");
        i.redirect_uris = many(MAX_URIS, |n| format!("https://app.example/cb{n}"));
        assert!(validate(&i, &[ID_TOKEN_ALG], None).is_ok());
        let mut i = input();
        i.cors_origins = many(MAX_URIS + 1, |n| format!("https://app{n}.example"));
        assert_eq!(field_of(&i), "cors_origins");
        let mut i = input();
        i.logo_uri = Some(format!("https://app.example/{}", "l".repeat(2000)));
        assert_eq!(field_of(&i), "logo_uri");
        // Hosts that would write more than an origin into the consent page's CSP.
        for host in ["a;script-src", "*", "a'b", "a,b", "*.app.example", "app.example."] {
            let mut i = input();
            i.logo_uri = Some(format!("https://{host}/logo.png"));
            assert_eq!(field_of(&i), "logo_uri", "{host}");
            i.logo_uri = None;
            i.policy_uri = Some(format!("https://{host}/policy"));
            assert_eq!(field_of(&i), "policy_uri", "{host}");
            i.policy_uri = None;
            i.tos_uri = Some(format!("https://{host}/terms"));
            assert_eq!(field_of(&i), "tos_uri", "{host}");
        }
        for fine in [
            "https://cdn-1.app.example/l.png",
            "https://xn--bcher-kva.example/l.png",
            "https://192.0.2.1/l.png",
            "http://127.0.0.1:8080/l.png",
        ] {
            let mut i = input();
            i.logo_uri = Some(fine.to_owned());
            assert!(validate(&i, &[ID_TOKEN_ALG], None).is_ok(), "{fine}");
        }
        // A URI registered before a rule became stricter stays editable as it was.
        let legacy = vec!["https:///legacy".to_owned(), "https://app.example/new".to_owned()];
        assert!(parse_uris("redirect_uris", &legacy, &[]).is_err());
        let stored = [RedirectUri::parse("https:///legacy").unwrap()];
        let kept = parse_uris("redirect_uris", &legacy, &stored).unwrap();
        assert_eq!(kept[0].as_str(), "https:///legacy");
    }
}
