//! The parameters of an authorization request as received, before any is checked.

/// The parameters of an authorization request as received (query string or form body).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub id_token_hint: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    pub registration: Option<String>,
    /// OIDC Core §5.5: individual claims the client asks for.
    pub claims: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is to be bound to.
    pub dpop_jkt: Option<String>,
    /// RFC 8707: the API the access tokens are for (one per request here).
    pub resource: Option<String>,
    /// Names of parameters that appeared more than once (RFC 6749 §3.1).
    pub duplicated: Vec<String>,
}

impl AuthorizeParams {
    /// The field a parameter name fills, or `None` for a parameter this server ignores.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "client_id" => &mut self.client_id,
            "redirect_uri" => &mut self.redirect_uri,
            "response_type" => &mut self.response_type,
            "scope" => &mut self.scope,
            "state" => &mut self.state,
            "nonce" => &mut self.nonce,
            "code_challenge" => &mut self.code_challenge,
            "code_challenge_method" => &mut self.code_challenge_method,
            "prompt" => &mut self.prompt,
            "max_age" => &mut self.max_age,
            "login_hint" => &mut self.login_hint,
            "id_token_hint" => &mut self.id_token_hint,
            "response_mode" => &mut self.response_mode,
            "request" => &mut self.request,
            "request_uri" => &mut self.request_uri,
            "registration" => &mut self.registration,
            "claims" => &mut self.claims,
            "dpop_jkt" => &mut self.dpop_jkt,
            "resource" => &mut self.resource,
            _ => return None,
        })
    }

    /// Whether this server reads the parameter `name` (the others are ignored, RFC 6749
    /// §3.1). The web layer forwards only these when it turns a POST into a GET, so
    /// nothing else the client sent ends up in a URL.
    pub fn is_known(name: &str) -> bool {
        Self::default().slot(name).is_some()
    }

    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut p = Self::default();
        p.duplicated = crate::params::fill(&mut p, pairs, Self::slot);
        p
    }
}
