//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).
//!
//! With `registration = "open"` anyone may register a client at `/register` (the
//! Model Context Protocol's clients, for one, register themselves so). Such a client is
//! always a third party under rules an operator's clients are not held to:
//! - the login, consent and device pages say it registered itself, and its error
//!   answers and post-logout redirects wait for the person's click (RFC 9700 §4.11.2,
//!   in `portcullis-web`);
//! - it may use the grants a person approves (`authorization_code` with PKCE,
//!   `refresh_token`, the device grant), never `client_credentials`, which nobody
//!   approves;
//! - it may register only the scopes in `registration_scopes`;
//! - it may ask for tokens to the APIs in `registration_resources` (RFC 8707, as MCP
//!   clients do), given to it when it registers; no CORS origins or lifetimes of its
//!   own;
//! - the addresses the server itself calls for it (`jwks_uri`, `backchannel_logout_uri`)
//!   must be public ones (`outbound`): it could name any address, inside the server's
//!   own network too. A `frontchannel_logout_uri` (which browsers would load) it may not
//!   name at all;
//! - registrations are limited per address (`rate_limit_register`), and one that holds
//!   no grant is deleted after `registration_unused_client_days`.
//!
//! An operator who grants it more takes it over (`clients::update_client_as`).
//!
//! It is answered with a registration access token (RFC 7592 §3), stored as its SHA-256
//! like every secret (DESIGN §2), with which it reads, replaces and deletes its own
//! registration at `/register/{client_id}`.

use portcullis_protocol::{ClientId, ErrorCode, GrantType, ScopeSet, Secret};
use serde_json::{Map, Value, json};

use crate::admin::Actor;
use crate::clients::ClientInput;
use crate::crypto::{digest_eq, random_token, sha256};
use crate::error::{Error, Result};
use crate::model::{Client, ClientKind};
use crate::outbound::Reach;
use crate::service::{CoreSettings, Portcullis};
use crate::throttle::Bucket;

/// The largest list read at a `sector_identifier_uri`.
const SECTOR_LIST_MAX_BYTES: usize = 64 * 1024;
/// How long its host has to answer: the registration waits for it.
const SECTOR_LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether clients may register themselves (setting `registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    /// No `/register` endpoint; operators register clients (the default).
    #[default]
    Off,
    /// Anyone may register a client, under the rules above.
    Open,
    /// A client registers itself under the same rules, with an initial access token an
    /// operator handed out (RFC 7591 §3, `initial_tokens`).
    Token,
}

impl RegistrationMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "open" => Some(Self::Open),
            "token" => Some(Self::Token),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Open => "open",
            Self::Token => "token",
        }
    }
}

/// The scopes a client that registers itself may register, unless `registration_scopes`
/// says otherwise: the OpenID Connect ones a person consents to.
pub const DEFAULT_SCOPES: &str = "openid profile email offline_access";

/// The name of a client that registered without a `client_name`.
const UNNAMED: &str = "Unnamed application";

/// Metadata naming encryption: this server neither encrypts nor decrypts JWTs.
const ENCRYPTION_METADATA: [&str; 10] = [
    "id_token_encrypted_response_alg",
    "id_token_encrypted_response_enc",
    "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc",
    "request_object_encryption_alg",
    "request_object_encryption_enc",
    "authorization_encrypted_response_alg",
    "authorization_encrypted_response_enc",
    "introspection_encrypted_response_alg",
    "introspection_encrypted_response_enc",
];

/// A registration as it stands after a write: the client, and what exists in clear only
/// now (a new client secret, a new registration access token).
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub secret: Option<Secret>,
    pub token: Option<Secret>,
}

fn metadata_error(message: impl Into<String>) -> Error {
    Error::oauth(ErrorCode::InvalidClientMetadata, message)
}

/// RFC 7592 §2: every failure to authenticate, an unknown client included, is the same
/// `invalid_token`, so the answer does not tell whether the client exists.
fn bad_token() -> Error {
    Error::oauth(
        ErrorCode::InvalidToken,
        "the registration access token is not valid for this client",
    )
}

/// The metadata document as sent, read field by field.
struct Metadata<'a>(&'a Map<String, Value>);

impl<'a> Metadata<'a> {
    /// A present, non-null field.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(metadata_error(format!("{name} must be a string"))),
        }
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(metadata_error(format!("{name} must be an array of strings"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(metadata_error(format!("{name} must be an array of strings"))),
        }
    }

    /// A whole number of seconds from 0 to `max` (`3600.0` is one too).
    fn seconds(&self, name: &str, max: i64) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    let f = n.as_f64()?;
                    // In range first, so the cast below is exact.
                    (f.fract() == 0.0 && (0.0..=max as f64).contains(&f)).then_some(f as i64)
                })
                .filter(|n| (0..=max).contains(n))
                .map(Some)
                .ok_or_else(|| metadata_error(format!("{name} must be a whole number of seconds from 0 to {max}"))),
            Some(_) => Err(metadata_error(format!("{name} must be a number of seconds"))),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(metadata_error(format!("{name} must be true or false"))),
        }
    }
}

/// RFC 7591 §2 read into what an operator would type for the same client, under the
/// rules of the module comment. Metadata this server does not know is ignored (§2); what
/// it knows but cannot honour is refused, so the client does not go on believing it.
fn to_input(metadata: &Value, settings: &CoreSettings) -> Result<ClientInput> {
    let Value::Object(map) = metadata else {
        return Err(metadata_error("the registration must be a JSON object"));
    };
    let m = Metadata(map);
    let method = m
        .string("token_endpoint_auth_method")?
        .unwrap_or_else(|| "client_secret_basic".to_owned());
    let jwks = match m.get("jwks") {
        None => None,
        Some(keys @ Value::Object(_)) => Some(keys.to_string()),
        Some(_) => return Err(metadata_error("jwks must be a JWK Set (a JSON object)")),
    };
    // Addresses this server will call: a public one (`outbound`), checked again at each
    // request (a name may lead anywhere), refused now if its host alone says enough.
    let jwks_uri = m.string("jwks_uri")?;
    let backchannel_logout_uri = m.string("backchannel_logout_uri")?;
    for (field, uri) in [
        ("jwks_uri", &jwks_uri),
        ("backchannel_logout_uri", &backchannel_logout_uri),
    ] {
        let why = uri
            .as_deref()
            .and_then(|u| url::Url::parse(u.trim()).ok())
            .and_then(|u| settings.outbound.refuses_host(Reach::Public, &u));
        if let Some(why) = why {
            return Err(metadata_error(format!(
                "{field}: {why}; this server calls only public addresses for clients that register themselves"
            )));
        }
    }
    // Its sign-out page would load it, cookies and all, in every browser that signed in
    // to the client: redirect URIs prove no hold on an origin, so it could be anyone's.
    if m.get("frontchannel_logout_uri").is_some() {
        return Err(metadata_error(
            "frontchannel_logout_uri is not open to clients that register themselves: the sign-out page would load an address of anyone's choosing; ask an operator",
        ));
    }
    let has_keys = jwks.is_some() || jwks_uri.is_some();
    let kind = match method.as_str() {
        "none" => ClientKind::Public,
        "client_secret_basic" | "client_secret_post" => ClientKind::Confidential,
        "private_key_jwt" if has_keys => ClientKind::Confidential,
        "private_key_jwt" => {
            return Err(metadata_error(
                "private_key_jwt needs the client's public keys: jwks or jwks_uri",
            ));
        }
        other => {
            return Err(metadata_error(format!(
                "token_endpoint_auth_method {other} is not supported; use client_secret_basic, client_secret_post, private_key_jwt or none"
            )));
        }
    };
    // Keys beside a secret method sign the client's request objects (OIDC Registration
    // §2 lists jwks apart from the token endpoint's method, and the OpenID conformance
    // suite registers so): the client authenticates with a secret all the same.
    if has_keys && kind == ClientKind::Public {
        return Err(metadata_error(
            "jwks and jwks_uri are for confidential clients: token_endpoint_auth_method private_key_jwt, or a secret method",
        ));
    }
    let secret_with_keys = has_keys && method != "private_key_jwt";
    // OIDC Registration §2: registered, they are the only algorithm taken from the
    // client (checked with the others in `clients::validate`).
    let [token_endpoint_auth_signing_alg, request_object_signing_alg] =
        ["token_endpoint_auth_signing_alg", "request_object_signing_alg"].map(|field| {
            m.string(field)
                .and_then(|alg| crate::clients::signing_alg(field, alg.as_deref()).map_err(as_registration_error))
        });
    let (token_endpoint_auth_signing_alg, request_object_signing_alg) =
        (token_endpoint_auth_signing_alg?, request_object_signing_alg?);
    if let Some(name) = ENCRYPTION_METADATA.iter().find(|n| m.get(n).is_some()) {
        return Err(metadata_error(format!(
            "{name}: this server does not encrypt or decrypt JWTs"
        )));
    }
    let subject_type = m.string("subject_type")?;
    if let Some(other) = subject_type.as_deref().filter(|t| !matches!(*t, "public" | "pairwise")) {
        return Err(metadata_error(format!(
            "subject_type {other} is not supported; use public or pairwise"
        )));
    }
    if m.boolean("tls_client_certificate_bound_access_tokens")? {
        return Err(metadata_error(
            "tls_client_certificate_bound_access_tokens: use DPoP (dpop_bound_access_tokens) instead",
        ));
    }
    // RFC 7591 §2: absent means authorization_code, and the code response type.
    let grant_types = m
        .strings("grant_types")?
        .unwrap_or_else(|| vec!["authorization_code".to_owned()]);
    for g in &grant_types {
        match GrantType::parse(g) {
            Ok(GrantType::ClientCredentials) => {
                return Err(metadata_error(
                    "client_credentials is not open to clients that register themselves: nobody approves its tokens; ask an operator",
                ));
            }
            Ok(GrantType::TokenExchange) => {
                return Err(metadata_error(
                    "token exchange is not open to clients that register themselves: it trades other clients' tokens; ask an operator",
                ));
            }
            Ok(_) => {}
            Err(_) => return Err(metadata_error(format!("grant type {g} is not supported"))),
        }
    }
    let with_code = grant_types.iter().any(|g| g == "authorization_code");
    // Absent: what the grants use (RFC 7591 §2's default, `code`, unless the client
    // registers no authorization_code grant).
    let response_types = m
        .strings("response_types")?
        .unwrap_or_else(|| if with_code { vec!["code".to_owned()] } else { Vec::new() });
    if let Some(other) = response_types.iter().find(|r| *r != "code") {
        return Err(metadata_error(format!(
            "response type {other} is not supported; only code"
        )));
    }
    // §2.1: the two must agree.
    if response_types.is_empty() == with_code {
        return Err(metadata_error(
            "response_types must be [\"code\"] with the authorization_code grant, and empty without it",
        ));
    }
    let allowed = &settings.registration_scopes;
    let scopes = match m.string("scope")? {
        None => allowed.as_string(),
        Some(asked) => {
            let asked = ScopeSet::parse(&asked).map_err(|e| metadata_error(format!("scope: {}", e.0)))?;
            if let Some(s) = asked.iter().find(|s| !allowed.contains(s.as_str())) {
                let s = s.as_str();
                return Err(metadata_error(format!(
                    "scope {s} is not open to clients that register themselves; ask an operator"
                )));
            }
            asked.as_string()
        }
    };
    let redirect_uris = m.strings("redirect_uris")?.unwrap_or_default();
    // OIDC Core §8.1: read by `read_sector_identifier_uri`, at a public address.
    let sector_identifier_uri = m.string("sector_identifier_uri")?;
    if let Some(uri) = &sector_identifier_uri {
        let url =
            crate::clients::parse_https_uri("sector_identifier_uri", uri.trim()).map_err(as_registration_error)?;
        let url = url::Url::parse(&url).map_err(|e| metadata_error(format!("sector_identifier_uri: {e}")))?;
        if let Some(why) = settings.outbound.refuses_host(Reach::Public, &url) {
            return Err(metadata_error(format!(
                "sector_identifier_uri: {why}; this server reads only public addresses for clients that register themselves"
            )));
        }
        // Its list vouches for redirect URIs: a client that gets tokens without one, or at
        // one anybody's app may receive (loopback, a private-use scheme), could take the
        // sector of any host whose list names such a URI (as `clients::redirect_sector`).
        let on_a_host = |r: &String| {
            url::Url::parse(r.trim()).is_ok_and(|u| {
                u.scheme() == "https"
                    && u.host_str()
                        .is_some_and(|h| !h.trim_end_matches('.').eq_ignore_ascii_case("localhost"))
                    && !portcullis_protocol::is_loopback_host(&u)
            })
        };
        if redirect_uris.is_empty()
            || !redirect_uris.iter().all(on_a_host)
            || grant_types.iter().any(|g| g == GrantType::DeviceCode.as_str())
        {
            return Err(metadata_error(
                "sector_identifier_uri is for clients whose tokens reach them only at https redirect URIs on a host: no loopback or private-use redirects, no device grant",
            ));
        }
    }
    // This server's own host (a trailing dot names the same host), where neither the
    // URLs it reads nor those it redirects to may be.
    let host_of = |u: &url::Url| u.host_str().map(|h| h.trim_end_matches('.').to_owned());
    let own_host = url::Url::parse(&settings.issuer).ok().and_then(|u| host_of(&u));
    // OIDC Core §6.2: read at `/authorize`, at a public address, as request objects
    // signed with the client's keys.
    let request_uris = m.strings("request_uris")?.unwrap_or_default();
    for uri in &request_uris {
        let url = url::Url::parse(uri.trim()).map_err(|e| metadata_error(format!("request_uris: {e}")))?;
        if let Some(why) = settings.outbound.refuses_host(Reach::Public, &url) {
            return Err(metadata_error(format!(
                "request_uris: {why}; this server reads only public addresses for clients that register themselves"
            )));
        }
        // RFC 9101 §10.4.1: this server would read from itself, for a stranger.
        if host_of(&url) == own_host {
            return Err(metadata_error("request_uris must not be on this server's own host"));
        }
    }
    if !request_uris.is_empty() && jwks.is_none() && jwks_uri.is_none() {
        return Err(metadata_error(
            "request_uris hold request objects signed with the client's keys: register jwks or jwks_uri with them",
        ));
    }
    let post_logout_redirect_uris = m.strings("post_logout_redirect_uris")?.unwrap_or_default();
    // Not this server's own host: a redirect there could lead on anywhere (its own
    // `/logout`, `/authorize` with another client), under its name.
    for (field, uri) in redirect_uris.iter().map(|u| ("redirect_uris", u)).chain(
        post_logout_redirect_uris
            .iter()
            .map(|u| ("post_logout_redirect_uris", u)),
    ) {
        let Ok(url) = url::Url::parse(uri.trim()) else {
            continue;
        };
        // Loopback is the native apps' (RFC 8252 §7.3), even when a development server
        // runs there too.
        let host = host_of(&url);
        if host.is_some() && host == own_host && !portcullis_protocol::is_loopback_host(&url) {
            return Err(Error::oauth(
                ErrorCode::InvalidRedirectUri,
                format!("{field}: must not be on this server's own host"),
            ));
        }
    }
    let name = m
        .string("client_name")?
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| UNNAMED.to_owned());
    Ok(ClientInput {
        name,
        kind: Some(kind),
        redirect_uris,
        post_logout_redirect_uris,
        grant_types,
        scopes,
        first_party: false,
        // A public client always needs it, whatever this says (`clients`).
        require_pkce: Some(settings.registration_require_pkce),
        access_token_ttl: None,
        refresh_token_ttl: None,
        cors_origins: Vec::new(),
        logo_uri: m.string("logo_uri")?,
        policy_uri: m.string("policy_uri")?,
        tos_uri: m.string("tos_uri")?,
        id_token_signed_response_alg: m.string("id_token_signed_response_alg")?,
        userinfo_signed_response_alg: m.string("userinfo_signed_response_alg")?,
        introspection_signed_response_alg: m.string("introspection_signed_response_alg")?,
        jwks,
        jwks_uri,
        dpop_bound_access_tokens: m.boolean("dpop_bound_access_tokens")?,
        resources: settings.registration_resources.clone(),
        require_pushed_authorization_requests: m.boolean("require_pushed_authorization_requests")?,
        require_signed_request_object: m.boolean("require_signed_request_object")?,
        backchannel_logout_uri,
        frontchannel_logout_uri: None,
        subject_type,
        sector_identifier: None,
        sector_identifier_uri,
        // §2: it is for assertions; a client with a secret sends none (ignored, as unknown).
        token_endpoint_auth_signing_alg: token_endpoint_auth_signing_alg.filter(|_| method == "private_key_jwt"),
        request_object_signing_alg,
        backchannel_logout_session_required: m.boolean("backchannel_logout_session_required")?,
        // OIDC Registration §2: a login older than this is repeated when a request names
        // no max_age. At most a year: `session_max_age` ends every login sooner.
        default_max_age: m.seconds("default_max_age", 31_536_000)?,
        secret_with_keys,
        request_uris,
        if_revision: None,
    })
}

/// A field refused by the checks every client goes through, in RFC 7591 §3.2.2's words:
/// redirect URIs have their own code; the field is named as the metadata names it.
fn as_registration_error(e: Error) -> Error {
    match e {
        Error::Invalid { field, message } => {
            let (code, field) = match field {
                "redirect_uris" | "post_logout_redirect_uris" => (ErrorCode::InvalidRedirectUri, field),
                "name" => (ErrorCode::InvalidClientMetadata, "client_name"),
                "scopes" => (ErrorCode::InvalidClientMetadata, "scope"),
                "sector_identifier" => (ErrorCode::InvalidClientMetadata, "subject_type"),
                other => (ErrorCode::InvalidClientMetadata, other),
            };
            Error::oauth(code, format!("{field}: {message}"))
        }
        other => other,
    }
}

/// The metadata of a registered client as RFC 7591 §3.2.1 and RFC 7592 §3 answer it:
/// what is registered, with the server's own additions.
pub fn registration_response(settings: &CoreSettings, r: &Registered) -> Value {
    let c = &r.client;
    fn uris(list: &[portcullis_protocol::RedirectUri]) -> Vec<&str> {
        list.iter().map(|u| u.as_str()).collect()
    }
    let mut grant_types: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
    grant_types.sort_unstable();
    let response_types: Vec<&str> = if c.grant_types.contains(&GrantType::AuthorizationCode) {
        vec!["code"]
    } else {
        Vec::new()
    };
    let mut out = json!({
        "client_id": c.id.as_str(),
        "client_id_issued_at": c.created_at.unix_timestamp(),
        "client_name": c.name,
        "redirect_uris": uris(&c.redirect_uris),
        "grant_types": grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": c.token_endpoint_auth_method(),
        "scope": c.scopes.as_string(),
        "subject_type": if c.pairwise_sector.is_some() { "pairwise" } else { "public" },
        "id_token_signed_response_alg": c
            .id_token_signed_response_alg
            .unwrap_or(crate::service::ID_TOKEN_ALG)
            .as_str(),
        "introspection_signed_response_alg": c
            .introspection_signed_response_alg
            .unwrap_or(crate::service::ID_TOKEN_ALG)
            .as_str(),
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
        "require_pushed_authorization_requests": c.require_pushed_authorization_requests,
        "require_signed_request_object": c.require_signed_request_object,
        "registration_client_uri": settings.endpoint(&format!("/register/{}", c.id.as_str())),
    });
    let Value::Object(o) = &mut out else { unreachable!() };
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.to_owned(), v);
        }
    };
    put(
        "post_logout_redirect_uris",
        (!c.post_logout_redirect_uris.is_empty()).then(|| json!(uris(&c.post_logout_redirect_uris))),
    );
    put(
        "userinfo_signed_response_alg",
        c.userinfo_signed_response_alg
            .map(|a| Value::String(a.as_str().to_owned())),
    );
    put("logo_uri", c.logo_uri.clone().map(Value::String));
    put("policy_uri", c.policy_uri.clone().map(Value::String));
    put("tos_uri", c.tos_uri.clone().map(Value::String));
    put(
        "request_uris",
        (!c.request_uris.is_empty()).then(|| json!(c.request_uris)),
    );
    put("jwks_uri", c.jwks_uri.clone().map(Value::String));
    put(
        "sector_identifier_uri",
        c.sector_identifier_uri.clone().map(Value::String),
    );
    put("jwks", c.jwks.as_deref().and_then(|j| serde_json::from_str(j).ok()));
    put(
        "backchannel_logout_uri",
        c.backchannel_logout_uri.clone().map(Value::String),
    );
    // What it asked for: with it, the end of all a person's sessions is told one session
    // at a time (every token names one); without, in one token naming the person.
    put(
        "backchannel_logout_session_required",
        c.backchannel_logout_uri
            .is_some()
            .then_some(Value::Bool(c.backchannel_logout_session_required)),
    );
    put("default_max_age", c.default_max_age.map(Value::from));
    put(
        "token_endpoint_auth_signing_alg",
        c.token_endpoint_auth_signing_alg.clone().map(Value::String),
    );
    put(
        "request_object_signing_alg",
        c.request_object_signing_alg.clone().map(Value::String),
    );
    put(
        "frontchannel_logout_uri",
        c.frontchannel_logout_uri.clone().map(Value::String),
    );
    // Every front-channel logout carries `iss` and `sid`.
    put(
        "frontchannel_logout_session_required",
        c.frontchannel_logout_uri.is_some().then_some(Value::Bool(true)),
    );
    if let Some(secret) = &r.secret {
        put("client_secret", Some(Value::String(secret.expose().to_owned())));
        // RFC 7591 §3.2.1: 0, it does not expire.
        put("client_secret_expires_at", Some(json!(0)));
    }
    if let Some(token) = &r.token {
        put(
            "registration_access_token",
            Some(Value::String(token.expose().to_owned())),
        );
    }
    out
}

impl Portcullis {
    /// RFC 7591 §3: registers a client from its metadata. `ip` is the address it came
    /// from, counted against `rate_limit_register`.
    pub async fn register_client(
        &self,
        metadata: &Value,
        ip: Option<&str>,
        initial_token: Option<&str>,
    ) -> Result<Registered> {
        if self.settings.registration == RegistrationMode::Off {
            return Err(Error::NotFound("registration endpoint"));
        }
        self.throttle.check(Bucket::RegisterIp, ip)?;
        // RFC 7591 §3: with tokens, one that works before anything else is looked at.
        let initial_token = match self.settings.registration {
            RegistrationMode::Token => {
                let value = initial_token.ok_or_else(|| {
                    Error::oauth(ErrorCode::InvalidToken, "registration needs an initial access token")
                })?;
                self.check_initial_access_token(value).await?;
                Some(value)
            }
            _ => None,
        };
        let mut input = to_input(metadata, &self.settings)?;
        self.read_sector_identifier_uri(&mut input).await?;
        // Spent only for a registration that is otherwise good (a refused one keeps its
        // use), and before the client exists (of two racing for the last use, one waits
        // for nothing).
        let spent = match initial_token {
            Some(value) => {
                crate::clients::check_new_client(&input, &self.settings.id_token_algs(), true)
                    .map_err(as_registration_error)?;
                Some(self.spend_initial_access_token(value).await?)
            }
            None => None,
        };
        let token = Secret::new(random_token()?);
        let actor = Actor::new("registration", ip.map(str::to_owned));
        let (client, secret) = self
            .insert_client(
                &input,
                &actor,
                Some(sha256(token.expose().as_bytes())),
                "client.registered",
                spent.map(|id| serde_json::json!({ "initial_access_token_id": id })),
            )
            .await
            .map_err(as_registration_error)?;
        Ok(Registered {
            client,
            secret,
            token: Some(token),
        })
    }

    /// OIDC Core §8.1 and Registration §5: the JSON array at the client's
    /// `sector_identifier_uri` (read at a public address, `outbound`) must list each of
    /// its redirect URIs; the URL's host is then the sector of a pairwise client, which
    /// may so share one with clients of other hosts the same list vouches for.
    async fn read_sector_identifier_uri(&self, input: &mut ClientInput) -> Result<()> {
        let Some(uri) = input.sector_identifier_uri.as_deref().map(str::trim) else {
            return Ok(());
        };
        let host = url::Url::parse(uri)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| h.trim_end_matches('.').trim_matches(['[', ']']).to_ascii_lowercase())
            })
            .ok_or_else(|| metadata_error("sector_identifier_uri: must be an https URL with a host"))?;
        if input.subject_type.as_deref().map(str::trim) == Some("pairwise") {
            input.sector_identifier = Some(host);
        }
        // Everything else first: a registration that would be refused anyway reads
        // nothing, so /register is no way to send requests for free.
        crate::clients::check_new_client(input, &self.settings.id_token_algs(), true).map_err(as_registration_error)?;
        // Why it could not be read stays in the log: the answer would tell the registrant
        // which names resolve where, and which hosts and ports answer, from this
        // server's place in the network.
        let unreadable = |why: String| {
            tracing::info!(url = uri, reason = %why, "a sector_identifier_uri could not be read");
            metadata_error(
                "sector_identifier_uri could not be read (no answer from a public address, not within 5 s, or over 64 KiB; the server's log says which)",
            )
        };
        let fetcher = self.remote_jwks.fetcher().map_err(unreadable)?;
        let (status, body) = fetcher
            .get(
                uri,
                crate::outbound::JSON,
                Reach::Public,
                SECTOR_LIST_MAX_BYTES,
                SECTOR_LIST_TIMEOUT,
            )
            .await
            .map_err(unreadable)?;
        if status != 200 {
            return Err(metadata_error(format!(
                "sector_identifier_uri answered {status}, not 200 with a JSON array of redirect URIs"
            )));
        }
        let listed: Vec<String> = serde_json::from_str(&body)
            .map_err(|_| metadata_error("sector_identifier_uri: its answer is not a JSON array of redirect URIs"))?;
        if let Some(missing) = input
            .redirect_uris
            .iter()
            .find(|r| !listed.iter().any(|l| l == r.trim()))
        {
            return Err(metadata_error(format!(
                "sector_identifier_uri does not list the redirect URI {missing}"
            )));
        }
        Ok(())
    }

    /// Whether a redirect this server would make by itself to a client that registered
    /// itself (`self_registered`) is to be shown as a link first
    /// (`registration_confirm_redirects`).
    pub fn confirms_redirects_of(&self, self_registered: bool) -> bool {
        self_registered && self.settings.registration_confirm_redirects
    }

    /// The client `id` names, if it registered itself (RFC 7591); `None` otherwise (an
    /// operator's client, or none). A store failure is an error, not a `None`.
    pub async fn self_registered_client(&self, id: &str) -> Result<Option<std::sync::Arc<Client>>> {
        let Ok(id) = ClientId::parse(id) else {
            return Ok(None);
        };
        let client = self.client_cache.get(self.store.as_ref(), &id).await?;
        Ok(client.filter(|c| c.self_registered))
    }

    /// RFC 7592 §2: the client a registration access token was issued to, if `id` names
    /// it. Only clients that registered themselves have such tokens. A client an operator
    /// disabled may not change or delete its registration (§2: `403`), so a disable for
    /// an investigation holds.
    pub async fn registered_client(&self, id: &str, token: &str) -> Result<Client> {
        if self.settings.registration == RegistrationMode::Off {
            return Err(Error::NotFound("registration endpoint"));
        }
        let id = ClientId::parse(id).map_err(|_| bad_token())?;
        let client = self.store.get_client(&id).await?.ok_or_else(bad_token)?;
        match client.registration_token_hash {
            Some(stored) if digest_eq(&stored, &sha256(token.as_bytes())) => {}
            _ => return Err(bad_token()),
        }
        if client.disabled {
            return Err(Error::oauth(
                ErrorCode::AccessDenied,
                "an operator disabled this client; its registration cannot be read or changed",
            ));
        }
        Ok(client)
    }

    /// RFC 7592 §2.1: the registration as it stands, with a new registration access
    /// token (§3 requires one in every answer; only its digest is kept, so a new one is
    /// issued and the one used stops working, as §2.1 allows). Counted against
    /// `rate_limit_register`: each read is a write.
    pub async fn read_registration(&self, id: &str, token: &str, ip: Option<&str>) -> Result<Registered> {
        let client = self.registered_client(id, token).await?;
        self.throttle.check(Bucket::RegisterIp, ip)?;
        let (client, token) = self.reissue_registration_token(&client.id, token).await?;
        Ok(Registered {
            client,
            secret: None,
            token: Some(token),
        })
    }

    /// A new registration access token for the client, if `presented` is still its
    /// token: of two requests made with one token, one gets the new token, the other a
    /// `401`. Another write to the client meanwhile (an operator's, on another node) is
    /// read again and the token checked again.
    async fn reissue_registration_token(&self, id: &ClientId, presented: &str) -> Result<(Client, Secret)> {
        let _turn = self.client_writes.lock().await;
        for _ in 0..5 {
            let mut client = self.registered_client(id.as_str(), presented).await?;
            let token = Secret::new(random_token()?);
            client.registration_token_hash = Some(sha256(token.expose().as_bytes()));
            client.updated_at = self.now();
            match self.store.update_client(&client, &[]).await {
                Ok(()) => {
                    client.revision += 1;
                    self.client_cache.invalidate(id);
                    return Ok((client, token));
                }
                Err(crate::StoreError::Stale) => continue,
                Err(crate::StoreError::NotFound) => return Err(bad_token()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Busy)
    }

    /// RFC 7592 §2.2: replaces the registration with `metadata`. Its APIs stay as they
    /// are (an operator may have changed them within `registration_resources`; anything
    /// more takes the client over, see `update_client_as`). A client that moves from keys
    /// to a secret is issued a new secret; the answer carries a new registration access
    /// token. Counted against `rate_limit_register`, as registrations are.
    pub async fn update_registration(
        &self,
        id: &str,
        token: &str,
        metadata: &Value,
        ip: Option<&str>,
    ) -> Result<Registered> {
        let client = self.registered_client(id, token).await?;
        self.throttle.check(Bucket::RegisterIp, ip)?;
        if let Value::Object(map) = metadata {
            match map.get("client_id") {
                Some(Value::String(sent)) if sent == client.id.as_str() => {}
                _ => {
                    return Err(Error::oauth(
                        ErrorCode::InvalidRequest,
                        "client_id must be sent, and be the client's own",
                    ));
                }
            }
            // §2.2: a secret sent must be the current one; a client never chooses its own.
            if let Some(sent) = map.get("client_secret").filter(|v| !v.is_null()) {
                let current = client.secret_hash;
                let matches = sent
                    .as_str()
                    .zip(current)
                    .is_some_and(|(s, h)| digest_eq(&h, &sha256(s.as_bytes())));
                if !matches {
                    return Err(Error::oauth(
                        ErrorCode::InvalidRequest,
                        "client_secret does not match the client's current secret",
                    ));
                }
            }
        }
        let mut input = to_input(metadata, &self.settings)?;
        if input.kind != Some(client.kind) {
            return Err(metadata_error(
                "token_endpoint_auth_method cannot change between none and the others; register a new client instead",
            ));
        }
        input.resources = client.resources.clone();
        input.if_revision = Some(client.revision);
        self.read_sector_identifier_uri(&mut input).await?;
        let actor = Actor::new(format!("registration:{}", client.id.as_str()), ip.map(str::to_owned));
        // The new token, and a secret for a client moving from keys to one, are written
        // with the change: an answer lost is a change with its token, never half of one.
        let next = Secret::new(random_token()?);
        let editor = crate::clients::Editor::Registration {
            next_token_hash: sha256(next.expose().as_bytes()),
        };
        let updated = self
            .update_client_as(&client.id, &input, &actor, "client.registration_updated", editor)
            .await;
        let (client, secret) = match updated {
            Ok(done) => done,
            Err(Error::NotFound(_)) => return Err(bad_token()),
            // Written meanwhile, since the token was checked (another use of the token,
            // an operator's edit): nothing was written here. Spent, the token is a 401;
            // still good, the client may try again.
            Err(Error::Invalid { field: "revision", .. }) => {
                return Err(match self.registered_client(id, token).await {
                    Ok(_) => Error::Busy,
                    Err(e) => e,
                });
            }
            Err(other) => return Err(as_registration_error(other)),
        };
        Ok(Registered {
            client,
            secret,
            token: Some(next),
        })
    }

    /// RFC 7592 §2.3: deletes the registration, with the client's grants and tokens.
    pub async fn delete_registration(&self, id: &str, token: &str, ip: Option<&str>) -> Result<()> {
        self.registered_client(id, token).await?;
        self.throttle.check(Bucket::RegisterIp, ip)?;
        // Checked again in turn with this node's other client writes, so a token another
        // request has just spent (a read, an update) deletes nothing.
        let _turn = self.client_writes.lock().await;
        let client = self.registered_client(id, token).await?;
        let actor = Actor::new(format!("registration:{}", client.id.as_str()), ip.map(str::to_owned));
        self.delete_client_as(&client.id, &actor, "client.registration_deleted")
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => bad_token(),
                other => other,
            })
    }
}

#[cfg(test)]
mod tests;
