//! OpenID Connect RP-Initiated Logout 1.0: validating the logout request and where to
//! send the person afterwards; the pages of Front-Channel Logout 1.0 to load on the way.

use portcullis_protocol::ClientId;

use crate::audit::Event;
use crate::error::{Error, Result};
use crate::jwt::verify_id_token_hint;
use crate::service::Portcullis;

/// The most front-channel logout pages one sign-out loads.
pub const MAX_FRONTCHANNEL: u32 = 50;

/// Parameters of a logout request as received.
#[derive(Debug, Clone, Default)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

impl LogoutParams {
    /// The field a parameter name fills, or `None` for a parameter this server ignores.
    pub fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "id_token_hint" => &mut self.id_token_hint,
            "client_id" => &mut self.client_id,
            "post_logout_redirect_uri" => &mut self.post_logout_redirect_uri,
            "state" => &mut self.state,
            _ => return None,
        })
    }

    /// Whether this server reads the parameter `name`; only these are forwarded when a
    /// POST is turned into a GET.
    pub fn is_known(name: &str) -> bool {
        Self::default().slot(name).is_some()
    }
}

/// A validated logout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    /// The client named by `client_id` or the `id_token_hint`'s audience.
    pub client_id: Option<ClientId>,
    /// The client's name, to show on the confirmation page.
    pub client_name: Option<String>,
    /// Where to send the person after logging out, with `state` appended; only ever a
    /// URI registered for the client.
    pub redirect: Option<String>,
    /// The `sub` of the `id_token_hint`, to check against the session's user
    /// (`hint_names_another`).
    pub hinted_subject: Option<String>,
    /// The pairwise sector of the client (OIDC Core §8.1), whose terms the hint is in.
    pub client_sector: Option<String>,
    /// The client registered itself (RFC 7591): its redirect is offered as a link, never
    /// followed by itself (RFC 9700 §4.11.2: anyone could register the URI), unless
    /// `registration_confirm_redirects` is off.
    pub self_registered: bool,
}

impl Portcullis {
    /// RP-Initiated Logout §2–3: `post_logout_redirect_uri` must be registered for the
    /// client named by `client_id` or the `id_token_hint`'s audience.
    pub async fn validate_logout(&self, p: &LogoutParams) -> Result<Logout> {
        let hint = match p.id_token_hint.as_deref() {
            Some(t) => Some(
                verify_id_token_hint(&self.keys.ring(), t, &self.settings.issuer)
                    .map_err(|_| Error::invalid("id_token_hint", "is not an ID token this server issued"))?,
            ),
            None => None,
        };
        let client_id = match (&hint, p.client_id.as_deref()) {
            (Some(h), Some(c)) if h.aud != c => {
                return Err(Error::invalid("client_id", "does not match the id_token_hint"));
            }
            (Some(h), _) => Some(h.aud.clone()),
            (None, c) => c.map(str::to_owned),
        };
        let client = match client_id {
            Some(id) => {
                let id = ClientId::parse(&id).map_err(|_| Error::invalid("client_id", "is not valid"))?;
                // A disabled client is treated as unknown, as at /authorize: nothing is
                // checked against, or redirected to, its URIs.
                Some(
                    self.store
                        .get_client(&id)
                        .await?
                        .filter(|c| !c.disabled)
                        .ok_or_else(|| Error::invalid("client_id", "is not registered"))?,
                )
            }
            None => None,
        };
        let redirect = match p.post_logout_redirect_uri.as_deref() {
            None => None,
            Some(raw) => {
                let client = client.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "post_logout_redirect_uri",
                        "needs client_id or id_token_hint to be checked",
                    )
                })?;
                let uri = client
                    .post_logout_redirect_uris
                    .iter()
                    .find(|u| u.as_str() == raw)
                    .ok_or_else(|| {
                        Error::invalid("post_logout_redirect_uri", "is not registered for this application")
                    })?;
                let mut url = uri.url().clone();
                if let Some(s) = &p.state {
                    url.query_pairs_mut().append_pair("state", s);
                }
                Some(url.to_string())
            }
        };
        Ok(Logout {
            self_registered: client
                .as_ref()
                .is_some_and(|c| self.confirms_redirects_of(c.self_registered)),
            client_sector: client.as_ref().and_then(|c| c.pairwise_sector.clone()),
            client_id: client.as_ref().map(|c| c.id.clone()),
            client_name: client.map(|c| c.name),
            redirect,
            hinted_subject: hint.map(|h| h.sub),
        })
    }

    /// Whether the logout's `id_token_hint` names someone other than `user` (RP-Initiated
    /// Logout §2: a suspect request). A hint is in its client's terms (OIDC Core §8).
    pub fn hint_names_another(&self, logout: &Logout, user: uuid::Uuid) -> bool {
        logout.hinted_subject.as_deref().is_some_and(|sub| {
            self.subject_in(logout.client_sector.as_deref(), user)
                .map_or(true, |seen| seen != sub)
        })
    }

    /// Records a logout of the browser session `sid` and ends what ends with it
    /// (`session_ended`); the web layer ends the browser session. Returns the pages the
    /// browser is to load for the clients signed in from it (`frontchannel_logout_urls`).
    pub async fn logged_out(&self, user_id: uuid::Uuid, sid: &str, ip: Option<String>) -> Vec<String> {
        let pages = self.frontchannel_logout_urls(user_id, sid).await;
        self.audit(Event::new("logout").user(user_id).ip(ip));
        self.session_ended(user_id, sid).await;
        pages
    }

    /// OpenID Connect Front-Channel Logout 1.0 §2–3: the `frontchannel_logout_uri` of each
    /// client signed in from browser session `sid` (as Back-Channel Logout finds them),
    /// with `iss` and `sid` added, for the sign-out page to load in hidden iframes. A
    /// disabled client gets none; at most `MAX_FRONTCHANNEL`. Never fails: a list that
    /// cannot be read is logged and empty, and the sign-out goes on.
    pub async fn frontchannel_logout_urls(&self, user_id: uuid::Uuid, sid: &str) -> Vec<String> {
        let mut pages = Vec::new();
        for (client, _) in self
            .signed_in_clients(user_id, Some(sid), MAX_FRONTCHANNEL, "front-channel")
            .await
        {
            // A client that manages its own registration has no front-channel page
            // (`/register` refuses one): only an operator gives it one, taking it over.
            if client.manages_own_registration() {
                continue;
            }
            let Some(mut url) = client
                .frontchannel_logout_uri
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
            else {
                continue;
            };
            let Ok(client_sid) = self.session_id(&client, sid) else {
                continue;
            };
            url.query_pairs_mut()
                .append_pair("iss", &self.settings.issuer)
                .append_pair("sid", &client_sid);
            pages.push(url.to_string());
        }
        pages
    }

    /// The browser session `sid` of `user_id` has ended (signed out, ended on the
    /// account page or by an operator, replaced by another person's sign-in): its OpenID
    /// grants without `offline_access` end with it (OIDC Back-Channel Logout §2.7; OIDC
    /// Core §11: only offline access outlives the session), as do its codes not yet
    /// redeemed, and the clients signed in from it are told (Back-Channel Logout). Never
    /// fails: a problem is logged. (A session that expires is not told here: nothing
    /// ends with it but the browser's sign-in.)
    pub async fn session_ended(&self, user_id: uuid::Uuid, sid: &str) {
        // Read first: the ended grants are the session's too, and their clients are told.
        let notices = self.logout_notices(user_id, Some(sid)).await;
        if let Err(e) = self.end_session_grants(user_id, sid).await {
            tracing::warn!(error = %e, "could not end the grants of a session that ended");
        }
        self.send_logout_notices(notices);
    }

    /// Ends what the browser session `sid` of `user_id` gave that lasts only as long as
    /// it: its codes not yet redeemed, and its live OpenID grants (`openid` in the
    /// scope: a plain OAuth grant is no sign-in) whose scope lacks `offline_access`.
    /// Goes on past a grant it fails to revoke; the first error is returned at the end.
    async fn end_session_grants(&self, user_id: uuid::Uuid, sid: &str) -> Result<()> {
        // First, so no code of the session starts a grant after the list below.
        self.store.delete_session_codes(user_id, sid).await?;
        let now = self.now();
        let grants = self.store.list_grants_for_user(user_id, now).await?;
        let mut ended = Vec::new();
        let mut failed = None;
        for grant in grants
            .iter()
            .filter(|g| g.sid == sid && g.scope.contains("openid") && !g.scope.contains("offline_access"))
        {
            match self.revoke_grant_now(grant.id, now).await {
                Ok(true) => {
                    ended.push(serde_json::json!({ "grant_id": grant.id, "client_id": grant.client_id.as_str() }));
                }
                Ok(false) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if !ended.is_empty() {
            self.audit(
                Event::new("session.grants_ended")
                    .user(user_id)
                    .detail(serde_json::json!({ "grants": ended })),
            );
        }
        failed.map_or(Ok(()), Err)
    }
}
