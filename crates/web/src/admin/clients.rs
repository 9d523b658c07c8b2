//! Client pages: list with search, register, show, edit, disable and enable, delete
//! (which revokes its grants and tokens), and rotate the secret. A new or rotated secret
//! is rendered once, in the response to the POST that made it: never in a redirect URL,
//! never in the session.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::model::{Client, ClientKind};
use portcullis_protocol::{ClientId, Secret};
use serde::Deserialize;

use super::AdminState;
use super::auth::{Chrome, Operator, Writer};
use super::error::{AdminError, AdminResult, PagePath, PageQuery};
use super::forms::{FormErrors, Pairs};
use super::view::{SENT_AGAIN, mark_sent, sent_before, set_notice, when};
use crate::csrf::{CsrfForm, MAX_CLIENT_FORM_BYTES};
use crate::error::PageError;
use crate::page::{render, see_other};

mod fields;

pub use fields::{ClientFields, GRANT_CHOICES, label};

#[derive(Template)]
#[template(path = "admin/client_form.html")]
pub struct ClientFormPage {
    pub chrome: Chrome,
    /// `None` when registering; the client's id when editing.
    pub editing: Option<String>,
    pub fields: ClientFields,
    pub errors: FormErrors,
    pub grant_choices: &'static [(&'static str, &'static str)],
    /// The ID token algorithms a client may choose, the default first.
    pub id_token_algs: Vec<&'static str>,
}

impl ClientFormPage {
    pub fn error_label(&self) -> &'static str {
        self.errors.summary().map_or("", |(f, _)| label(f))
    }
}

fn form_page(
    state: &AdminState,
    chrome: Chrome,
    editing: Option<String>,
    fields: ClientFields,
    errors: FormErrors,
) -> AdminResult {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = ClientFormPage {
        chrome,
        editing,
        fields,
        errors,
        grant_choices: &GRANT_CHOICES,
        id_token_algs: state
            .core
            .settings
            .id_token_algs()
            .into_iter()
            .map(|a| a.as_str())
            .collect(),
    };
    Ok(render(status, &page)?)
}

/// The page shows core's validation errors next to their field; anything else is an
/// error page.
fn field_error(e: portcullis_core::Error) -> Result<FormErrors, AdminError> {
    match e {
        portcullis_core::Error::Invalid { field, message } => Ok(FormErrors::one(field, message)),
        other => Err(other.into()),
    }
}

pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub grant_types: String,
    pub disabled: bool,
    /// Registered itself at `/register` (RFC 7591).
    pub self_registered: bool,
    pub created_at: String,
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
pub struct ClientsPage {
    pub chrome: Chrome,
    pub search: String,
    pub clients: Vec<ClientRow>,
    pub pager: super::view::Pager,
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    pub q: String,
    /// The page's first row, counted from 0.
    #[serde(default)]
    pub offset: u32,
}

/// `GET /admin/clients[?q=…][&offset=…]`, a page at a time.
pub async fn clients_get(
    State(state): State<AdminState>,
    op: Operator,
    PageQuery(SearchQuery { q, offset }): PageQuery<SearchQuery>,
) -> AdminResult {
    let list = super::view::search_page(&q, offset, |q, limit, offset| {
        state.core.list_clients_page(q, limit, offset)
    })
    .await?;
    let page = ClientsPage {
        chrome: op.chrome("clients").await?,
        pager: super::view::Pager::new("/admin/clients", &q, offset, list.items.len(), list.next_offset),
        search: super::view::search_shown(&q),
        clients: list
            .items
            .iter()
            .map(|c| ClientRow {
                id: c.id.as_str().to_owned(),
                name: c.name.clone(),
                kind: c.kind.as_str(),
                grant_types: c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", "),
                disabled: c.disabled,
                self_registered: c.self_registered,
                created_at: when(c.created_at),
            })
            .collect(),
    };
    Ok(render(StatusCode::OK, &page)?)
}

/// `GET /admin/clients/new`.
pub async fn client_new_get(State(state): State<AdminState>, Writer(op): Writer) -> AdminResult {
    form_page(
        &state,
        op.chrome("clients").await?,
        None,
        ClientFields::defaults(),
        FormErrors::none(),
    )
}

#[derive(Template)]
#[template(path = "admin/client_secret.html")]
pub struct ClientSecretPage {
    pub chrome: Chrome,
    pub created: bool,
    pub client_id: String,
    pub client_name: String,
    pub secret: Option<String>,
    pub private_key_jwt: bool,
    /// Where a `private_key_jwt` client publishes its keys, if it does.
    pub jwks_uri: Option<String>,
}

/// `POST /admin/clients`: registers a client and shows its secret, once.
pub async fn clients_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>, MAX_CLIENT_FORM_BYTES>,
) -> AdminResult {
    let pairs = Pairs::new(pairs);
    let once = pairs.one("once");
    if sent_before(&op.session, &once).await? {
        set_notice(&op.session, SENT_AGAIN).await?;
        return Ok(see_other("/admin/clients")?);
    }
    let fields = ClientFields::from_pairs(&pairs);
    let input = match fields.to_input(true) {
        Ok(i) => i,
        Err(errors) => return form_page(&state, op.chrome("clients").await?, None, fields, errors),
    };
    match state.core.create_client(&input, &op.actor()).await {
        Ok((client, secret)) => {
            mark_sent(&op.session, &once).await?;
            secret_page(&op, &client, secret, true).await
        }
        Err(e) => form_page(&state, op.chrome("clients").await?, None, fields, field_error(e)?),
    }
}

async fn secret_page(op: &Operator, client: &Client, secret: Option<Secret>, created: bool) -> AdminResult {
    let page = ClientSecretPage {
        chrome: op.chrome("clients").await?,
        created,
        client_id: client.id.as_str().to_owned(),
        client_name: client.name.clone(),
        secret: secret.map(|s| s.expose().to_owned()),
        private_key_jwt: client.has_keys(),
        jwks_uri: client.jwks_uri.clone(),
    };
    Ok(render(StatusCode::OK, &page)?)
}

fn client_id(raw: &str) -> Result<ClientId, AdminError> {
    ClientId::parse(raw).map_err(|_| AdminError::Page(PageError::NotFound))
}

pub struct Detail {
    pub label: &'static str,
    pub values: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin/client.html")]
pub struct ClientPage {
    pub chrome: Chrome,
    pub id: String,
    pub name: String,
    /// A confidential client that authenticates with a secret: it can be rotated.
    pub has_secret_method: bool,
    pub disabled: bool,
    pub details: Vec<Detail>,
}

/// How the client proves itself at the token endpoint.
fn authentication(c: &Client) -> String {
    let keys = match (c.jwks_json(), &c.jwks_uri) {
        (Some(jwks), _) => {
            let kids: Vec<String> = jwks["keys"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|k| k.get("kid").and_then(|k| k.as_str()).unwrap_or("no kid").to_owned())
                .collect();
            Some(format!("{} keys: {}", kids.len(), kids.join(", ")))
        }
        (None, Some(uri)) => Some(format!("keys read from {uri}")),
        (None, None) => None,
    };
    match (c.kind, keys, &c.secret_hash) {
        (ClientKind::Public, ..) => "none (public client: PKCE)".into(),
        // A client that registered itself with a secret method and keys besides.
        (_, Some(keys), Some(_)) => format!(
            "client secret (client_secret_basic or client_secret_post); its keys ({keys}) sign its request objects"
        ),
        (_, Some(keys), None) => format!("private_key_jwt ({keys})"),
        (_, None, Some(_)) => "client secret (client_secret_basic or client_secret_post)".into(),
        (_, None, None) => "none yet: rotate the secret to issue one".into(),
    }
}

fn details(c: &Client) -> Vec<Detail> {
    let one = |label, v: String| Detail { label, values: vec![v] };
    let many = |label, v: Vec<String>| Detail { label, values: v };
    let ttl = |t: Option<i64>| t.map_or_else(|| "server default".to_owned(), |t| format!("{t} s"));
    vec![
        one("Client ID", c.id.as_str().to_owned()),
        one("Type", c.kind.as_str().to_owned()),
        one(
            "Registered by",
            if c.self_registered {
                "the client itself, at /register (RFC 7591): its name and URLs are its own word"
            } else {
                "an operator"
            }
            .into(),
        ),
        one("Authentication", authentication(c)),
        many(
            "Redirect URIs",
            c.redirect_uris.iter().map(|u| u.as_str().to_owned()).collect(),
        ),
        many(
            "Post-logout redirect URIs",
            c.post_logout_redirect_uris
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
        ),
        many(
            "Back-channel logout URL",
            c.backchannel_logout_uri.iter().cloned().collect(),
        ),
        many(
            "Front-channel logout URL",
            c.frontchannel_logout_uri.iter().cloned().collect(),
        ),
        many(
            "Grant types",
            c.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
        ),
        one("Allowed scopes", c.scopes.as_string()),
        one(
            "Subject identifiers",
            match (&c.pairwise_sector, &c.sector_identifier_uri) {
                (None, _) => "public: the person's id, the same for every app".into(),
                (Some(sector), None) => format!("pairwise, sector {sector}"),
                (Some(sector), Some(list)) => format!("pairwise, sector {sector} (the list at {list})"),
            },
        ),
        one(
            "First party (no consent page)",
            if c.first_party { "yes" } else { "no" }.into(),
        ),
        one("PKCE required", if c.require_pkce { "yes" } else { "no" }.into()),
        one(
            "DPoP required (bound access tokens)",
            if c.dpop_bound_access_tokens { "yes" } else { "no" }.into(),
        ),
        one(
            "Pushed authorization requests required",
            if c.require_pushed_authorization_requests {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        one(
            "Signed request objects required",
            if c.require_signed_request_object { "yes" } else { "no" }.into(),
        ),
        one("Access token lifetime", ttl(c.access_token_ttl)),
        one("Refresh token lifetime", ttl(c.refresh_token_ttl)),
        many("Allowed CORS origins", c.cors_origins.clone()),
        many("APIs (resource indicators)", c.resources.clone()),
        many("Logo URL", c.logo_uri.iter().cloned().collect()),
        many("Policy URL", c.policy_uri.iter().cloned().collect()),
        many("Terms of service URL", c.tos_uri.iter().cloned().collect()),
        one(
            "ID token signature",
            c.id_token_signed_response_alg
                .map_or("RS256 (default)", |a| a.as_str())
                .into(),
        ),
        one(
            "UserInfo signature",
            c.userinfo_signed_response_alg
                .map_or("none: plain JSON (default)", |a| a.as_str())
                .into(),
        ),
        one(
            "Introspection answer signature",
            c.introspection_signed_response_alg
                .map_or("RS256 (default)", |a| a.as_str())
                .into(),
        ),
        // What a client that registered itself asked for (RFC 7591); kept through edits.
        many(
            "Client assertions signed only with",
            c.token_endpoint_auth_signing_alg.iter().cloned().collect(),
        ),
        many(
            "Request objects signed only with",
            c.request_object_signing_alg.iter().cloned().collect(),
        ),
        many("Request objects read from", c.request_uris.clone()),
        one(
            "Back-channel logout: a token per session",
            if c.backchannel_logout_session_required {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        many(
            "Sign-in again after (default max_age)",
            c.default_max_age.iter().map(|s| format!("{s} s")).collect(),
        ),
        one("Status", if c.disabled { "disabled" } else { "enabled" }.into()),
        one("Registered", when(c.created_at)),
        one("Last changed", when(c.updated_at)),
    ]
}

/// `GET /admin/clients/{id}`.
pub async fn client_get(State(state): State<AdminState>, op: Operator, PagePath(id): PagePath<String>) -> AdminResult {
    let client = state.core.get_client(&client_id(&id)?).await?;
    let page = ClientPage {
        chrome: op.chrome("clients").await?,
        id: client.id.as_str().to_owned(),
        name: client.name.clone(),
        has_secret_method: client.kind == ClientKind::Confidential
            && (client.secret_hash.is_some() || !client.has_keys()),
        disabled: client.disabled,
        details: details(&client),
    };
    Ok(render(StatusCode::OK, &page)?)
}

/// `GET /admin/clients/{id}/edit`.
pub async fn client_edit_get(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
) -> AdminResult {
    let client = state.core.get_client(&client_id(&id)?).await?;
    form_page(
        &state,
        op.chrome("clients").await?,
        Some(client.id.as_str().to_owned()),
        ClientFields::from_client(&client),
        FormErrors::none(),
    )
}

/// `POST /admin/clients/{id}`: saves the edit form.
pub async fn client_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>, MAX_CLIENT_FORM_BYTES>,
) -> AdminResult {
    let id = client_id(&id)?;
    let current = state.core.get_client(&id).await?;
    let mut fields = ClientFields::from_pairs(&Pairs::new(pairs));
    // The kind is fixed at registration; the edit form only shows it.
    fields.kind = current.kind.as_str().into();
    let editing = Some(id.as_str().to_owned());
    let input = match fields.to_input(false) {
        Ok(i) => i,
        Err(errors) => return form_page(&state, op.chrome("clients").await?, editing, fields, errors),
    };
    match state.core.update_client(&id, &input, &op.actor()).await {
        Ok(c) => {
            set_notice(&op.session, format!("Saved {}.", c.name)).await?;
            Ok(see_other(&format!("/admin/clients/{}", c.id))?)
        }
        Err(e) => form_page(&state, op.chrome("clients").await?, editing, fields, field_error(e)?),
    }
}

/// Forms whose only field is `csrf`.
#[derive(Debug, Deserialize)]
pub struct ButtonForm {}

async fn set_disabled(state: &AdminState, op: &Operator, id: &str, disabled: bool) -> AdminResult {
    let client = state
        .core
        .set_client_disabled(&client_id(id)?, disabled, &op.actor())
        .await?;
    let what = if disabled { "disabled" } else { "enabled" };
    set_notice(&op.session, format!("{} is {what}.", client.name)).await?;
    Ok(see_other(&format!("/admin/clients/{}", client.id))?)
}

/// `POST /admin/clients/{id}/disable`.
pub async fn client_disable_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    set_disabled(&state, &op, &id, true).await
}

/// `POST /admin/clients/{id}/enable`.
pub async fn client_enable_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    set_disabled(&state, &op, &id, false).await
}

/// The rotate-secret button's form: `csrf`, and the marker of a form that makes
/// something shown once (`view::form_marker`).
#[derive(Debug, Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    pub once: String,
}

/// `POST /admin/clients/{id}/rotate-secret`: the new secret is shown once; the old one
/// stops working at once. Sent again (a reload of the page showing the secret) it
/// rotates nothing: a second rotation would end the secret just shown.
pub async fn client_rotate_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(form): CsrfForm<RotateForm>,
) -> AdminResult {
    let id = client_id(&id)?;
    if sent_before(&op.session, &form.once).await? {
        set_notice(
            &op.session,
            "That form was sent again (a reload or Back): the secret was not rotated again; the one shown before stands.",
        )
        .await?;
        return Ok(see_other(&format!("/admin/clients/{}", id.as_str()))?);
    }
    let secret = state.core.rotate_client_secret(&id, &op.actor()).await?;
    mark_sent(&op.session, &form.once).await?;
    let client = state.core.get_client(&id).await?;
    secret_page(&op, &client, Some(secret), false).await
}

#[derive(Template)]
#[template(path = "admin/client_delete.html")]
pub struct ClientDeletePage {
    pub chrome: Chrome,
    pub id: String,
    pub name: String,
}

/// `GET /admin/clients/{id}/delete`: asks for confirmation (no script needed).
pub async fn client_delete_get(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
) -> AdminResult {
    let client = state.core.get_client(&client_id(&id)?).await?;
    let page = ClientDeletePage {
        chrome: op.chrome("clients").await?,
        id: client.id.as_str().to_owned(),
        name: client.name,
    };
    Ok(render(StatusCode::OK, &page)?)
}

/// `POST /admin/clients/{id}/delete`: deletes the client and revokes its grants and tokens.
pub async fn client_delete_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    let id = client_id(&id)?;
    let client = state.core.get_client(&id).await?;
    state.core.delete_client(&id, &op.actor()).await?;
    set_notice(
        &op.session,
        format!("Deleted {}; its grants and tokens are revoked.", client.name),
    )
    .await?;
    Ok(see_other("/admin/clients")?)
}

#[cfg(test)]
mod tests {
    use portcullis_protocol::{GrantType, RedirectUri, ScopeSet};

    use super::*;

    const URI: &str = "https://keys.example/jwks.json";

    fn chrome() -> Chrome {
        Chrome {
            username: "root".into(),
            role: "admin",
            can_write: true,
            csrf: "token".into(),
            section: "clients",
            notice: None,
            once: "marker".into(),
        }
    }

    fn client(jwks_uri: Option<&str>) -> Client {
        Client {
            id: ClientId::parse("published").unwrap(),
            name: "Published".into(),
            kind: ClientKind::Confidential,
            secret_hash: None,
            redirect_uris: vec![RedirectUri::parse("https://app.example/cb").unwrap()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: ScopeSet::parse("openid").unwrap(),
            first_party: false,
            require_pkce: true,
            access_token_ttl: None,
            refresh_token_ttl: None,
            cors_origins: vec![],
            logo_uri: None,
            policy_uri: None,
            tos_uri: None,
            id_token_signed_response_alg: None,
            jwks: None,
            jwks_uri: jwks_uri.map(str::to_owned),
            dpop_bound_access_tokens: false,
            resources: vec![],
            require_pushed_authorization_requests: false,
            require_signed_request_object: false,
            backchannel_logout_uri: None,
            registration_token_hash: None,
            self_registered: false,
            pairwise_sector: None,
            token_endpoint_auth_signing_alg: None,
            request_object_signing_alg: None,
            backchannel_logout_session_required: false,
            default_max_age: None,
            request_uris: vec![],
            sector_identifier_uri: None,
            frontchannel_logout_uri: None,
            introspection_signed_response_alg: None,
            userinfo_signed_response_alg: None,
            disabled: false,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
            revision: 0,
        }
    }

    /// The form's field reaches core as typed (trimmed), empty as none, and a client's
    /// value comes back on its edit form.
    #[test]
    fn the_form_carries_the_jwks_uri() {
        let pairs = |v: &str| {
            Pairs::new(vec![
                ("kind".into(), "confidential".into()),
                ("jwks_uri".into(), v.into()),
            ])
        };
        let input = ClientFields::from_pairs(&pairs(&format!(" {URI} ")))
            .to_input(true)
            .unwrap();
        assert_eq!(input.jwks_uri.as_deref(), Some(URI));
        let input = ClientFields::from_pairs(&pairs("  ")).to_input(true).unwrap();
        assert_eq!(input.jwks_uri, None);
        assert_eq!(ClientFields::from_client(&client(Some(URI))).jwks_uri, URI);
        assert_eq!(ClientFields::from_client(&client(None)).jwks_uri, "");
        assert_eq!(label("jwks_uri"), "Public keys URL (jwks_uri)");
    }

    /// A refused value is shown again in its field, marked, with core's message beside it
    /// and the field's label in the summary.
    #[test]
    fn a_refused_jwks_uri_is_kept_and_named() {
        let fields = ClientFields {
            jwks_uri: "http://keys.example/jwks".into(),
            ..ClientFields::defaults()
        };
        let page = ClientFormPage {
            chrome: chrome(),
            editing: None,
            fields,
            errors: FormErrors::one("jwks_uri", "must be an https URL"),
            grant_choices: &GRANT_CHOICES,
            id_token_algs: vec!["RS256"],
        };
        let html = page.render().unwrap();
        assert!(
            html.contains(r#"value="http://keys.example/jwks""#)
                && html.contains(r#"aria-describedby="jwks_uri-hint jwks_uri-error" aria-invalid="true""#)
                && html.contains(r#"<p class="field-error" id="jwks_uri-error">must be an https URL</p>"#)
                && html.contains(r##"<a href="#jwks_uri">Public keys URL (jwks_uri)</a>"##),
            "{html}"
        );
    }

    /// The back-channel logout URL reaches core as typed (trimmed), empty as none, comes
    /// back on the edit form, and is listed on the client's page (as "none" when unset).
    #[test]
    fn the_form_carries_the_frontchannel_logout_uri() {
        const PAGE: &str = "https://app.example/frontchannel-logout";
        let pairs = |v: &str| {
            Pairs::new(vec![
                ("kind".into(), "confidential".into()),
                ("frontchannel_logout_uri".into(), v.into()),
            ])
        };
        let input = ClientFields::from_pairs(&pairs(PAGE)).to_input(true).unwrap();
        assert_eq!(input.frontchannel_logout_uri.as_deref(), Some(PAGE));
        let input = ClientFields::from_pairs(&pairs(" ")).to_input(true).unwrap();
        assert_eq!(input.frontchannel_logout_uri, None);
        let set = Client {
            frontchannel_logout_uri: Some(PAGE.into()),
            ..client(None)
        };
        assert_eq!(ClientFields::from_client(&set).frontchannel_logout_uri, PAGE);
        assert_eq!(label("frontchannel_logout_uri"), "Front-channel logout URL");
        assert!(
            details(&set)
                .into_iter()
                .any(|d| d.label == "Front-channel logout URL" && d.values == [PAGE])
        );
    }

    #[test]
    fn the_form_carries_the_backchannel_logout_uri() {
        const LOGOUT: &str = "https://app.example/backchannel-logout";
        let pairs = |v: &str| {
            Pairs::new(vec![
                ("kind".into(), "confidential".into()),
                ("backchannel_logout_uri".into(), v.into()),
            ])
        };
        let input = ClientFields::from_pairs(&pairs(&format!(" {LOGOUT} ")))
            .to_input(true)
            .unwrap();
        assert_eq!(input.backchannel_logout_uri.as_deref(), Some(LOGOUT));
        let input = ClientFields::from_pairs(&pairs("  ")).to_input(true).unwrap();
        assert_eq!(input.backchannel_logout_uri, None);
        let set = Client {
            backchannel_logout_uri: Some(LOGOUT.into()),
            ..client(None)
        };
        assert_eq!(ClientFields::from_client(&set).backchannel_logout_uri, LOGOUT);
        assert_eq!(ClientFields::from_client(&client(None)).backchannel_logout_uri, "");
        assert_eq!(label("backchannel_logout_uri"), "Back-channel logout URL");
        let shown = |c: &Client| {
            details(c)
                .into_iter()
                .find(|d| d.label == "Back-channel logout URL")
                .map(|d| d.values)
        };
        assert_eq!(shown(&set), Some(vec![LOGOUT.to_owned()]));
        assert_eq!(shown(&client(None)), Some(vec![]));
    }

    /// What a client that registered itself asked for is shown on its page.
    #[test]
    fn registered_metadata_is_shown() {
        let shown = |c: &Client, label: &str| {
            details(c)
                .into_iter()
                .find(|d| d.label == label)
                .map(|d| d.values)
                .unwrap()
        };
        let plain = client(None);
        assert!(shown(&plain, "Client assertions signed only with").is_empty());
        assert_eq!(shown(&plain, "Back-channel logout: a token per session"), ["no"]);
        let asked = Client {
            pairwise_sector: Some("rp.example".into()),
            sector_identifier_uri: Some("https://rp.example/sectors.json".into()),
            token_endpoint_auth_signing_alg: Some("ES256".into()),
            request_object_signing_alg: Some("PS256".into()),
            backchannel_logout_session_required: true,
            request_uris: vec!["https://rp.example/request.jwt".into()],
            default_max_age: Some(3600),
            ..client(None)
        };
        assert!(shown(&plain, "Sign-in again after (default max_age)").is_empty());
        assert_eq!(shown(&asked, "Sign-in again after (default max_age)"), ["3600 s"]);
        assert_eq!(
            shown(&asked, "Subject identifiers"),
            ["pairwise, sector rp.example (the list at https://rp.example/sectors.json)"]
        );
        assert_eq!(shown(&asked, "Client assertions signed only with"), ["ES256"]);
        assert_eq!(shown(&asked, "Request objects signed only with"), ["PS256"]);
        assert_eq!(
            shown(&asked, "Request objects read from"),
            ["https://rp.example/request.jwt"]
        );
        assert_eq!(shown(&asked, "Back-channel logout: a token per session"), ["yes"]);
    }

    /// A client that registered itself is marked in the list and on its page.
    #[test]
    fn self_registered_clients_are_marked() {
        let row = |self_registered| ClientRow {
            id: "c1".into(),
            name: "Notes".into(),
            kind: "public",
            grant_types: "authorization_code".into(),
            disabled: false,
            self_registered,
            created_at: "today".into(),
        };
        let list = |rows| {
            ClientsPage {
                chrome: chrome(),
                search: String::new(),
                clients: rows,
                pager: super::super::view::Pager::new("/admin/clients", "", 0, 1, None),
            }
            .render()
            .unwrap()
        };
        assert!(list(vec![row(true)]).contains(r#"<span class="badge self""#));
        assert!(!list(vec![row(false)]).contains("self-registered"));
        let by = |c: &Client| {
            details(c)
                .into_iter()
                .find(|d| d.label == "Registered by")
                .map(|d| d.values)
                .unwrap()
        };
        let mut c = client(None);
        assert_eq!(by(&c), ["an operator"]);
        c.self_registered = true;
        assert!(by(&c)[0].starts_with("the client itself"));
    }

    /// The field is on the form with its hint; a refused value is shown again, marked,
    /// with core's message beside it and the field's label in the summary.
    #[test]
    fn a_refused_backchannel_logout_uri_is_kept_and_named() {
        let page = |fields: ClientFields, errors: FormErrors| ClientFormPage {
            chrome: chrome(),
            editing: None,
            fields,
            errors,
            grant_choices: &GRANT_CHOICES,
            id_token_algs: vec!["RS256"],
        };
        let html = page(ClientFields::defaults(), FormErrors::none()).render().unwrap();
        assert!(
            html.contains(r#"<label for="backchannel_logout_uri">Back-channel logout URL</label>"#)
                && html.contains(
                    "OpenID Connect Back-Channel Logout: the app is sent a logout token here when someone it \
                     signed in signs out"
                )
                && html.contains(r#"name="backchannel_logout_uri""#)
                && html.contains(r#"aria-describedby="backchannel_logout_uri-hint""#),
            "{html}"
        );
        let fields = ClientFields {
            backchannel_logout_uri: "http://app.example/logout".into(),
            ..ClientFields::defaults()
        };
        let html = page(
            fields,
            FormErrors::one("backchannel_logout_uri", "must be an https URL"),
        )
        .render()
        .unwrap();
        assert!(
            html.contains(r#"value="http://app.example/logout""#)
                && html.contains(
                    r#"aria-describedby="backchannel_logout_uri-hint backchannel_logout_uri-error" aria-invalid="true""#
                )
                && html
                    .contains(r#"<p class="field-error" id="backchannel_logout_uri-error">must be an https URL</p>"#)
                && html.contains(r##"<a href="#backchannel_logout_uri">Back-channel logout URL</a>"##),
            "{html}"
        );
    }

    /// A client with a `jwks_uri` authenticates with `private_key_jwt`: its page says so
    /// and where the keys are read from, offers no secret rotation, and its registration
    /// page shows no secret but the URL.
    #[test]
    fn a_jwks_uri_client_is_shown_as_private_key_jwt() {
        let c = client(Some(URI));
        assert_eq!(authentication(&c), format!("private_key_jwt (keys read from {URI})"));
        assert_eq!(
            authentication(&client(None)),
            "none yet: rotate the secret to issue one"
        );
        // A client that registered itself with a secret and keys for its request objects.
        let both = Client {
            secret_hash: Some([7; 32]),
            ..client(Some(URI))
        };
        assert_eq!(
            authentication(&both),
            format!(
                "client secret (client_secret_basic or client_secret_post); its keys (keys read from {URI}) sign its request objects"
            )
        );
        let page = ClientSecretPage {
            chrome: chrome(),
            created: true,
            client_id: c.id.as_str().to_owned(),
            client_name: c.name.clone(),
            secret: None,
            private_key_jwt: c.has_keys(),
            jwks_uri: c.jwks_uri.clone(),
        };
        let html = page.render().unwrap();
        assert!(
            html.contains(&format!(r#"<code id="client-jwks-uri">{URI}</code>"#)) && !html.contains("client-secret"),
            "{html}"
        );
    }
}
