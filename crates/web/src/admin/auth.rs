//! Admin sign-in and sign-out, and the extractors every admin page uses: `Operator` (any
//! signed-in admin, read-only pages) and `Writer` (the admin role, for every change). The
//! role is read from the store on every request, so a page never trusts an old session.

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use portcullis_core::admin::{Actor, credential_stamp};
use portcullis_core::model::AdminRole;
use portcullis_protocol::Secret;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::AdminState;
use super::error::{AdminError, AdminResult};
use super::view::take_notice;
use crate::ClientIp;
use crate::csrf::{self, CsrfForm, CsrfToken};
use crate::error::PageError;
use crate::page::{render, see_other};

/// Session key of the signed-in operator (`AdminAuth`). Not the public surface's `auth`
/// key: an admin is not a user, and the session store attaches `auth` sessions to users.
pub(crate) const ADMIN_KEY: &str = "admin";

/// Shown for any failed sign-in: it must not tell whether the account exists.
pub const BAD_CREDENTIALS: &str = "The username or password is not correct.";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AdminAuth {
    username: String,
    signed_in_at: i64,
    /// `credential_stamp` of the password signed in with: a changed password ends the
    /// session. Sessions from before the stamp existed have none, and end too.
    #[serde(default)]
    stamp: String,
    /// When a request last found the session still current (to `last_seen_step`), for
    /// `admin_idle_timeout`. Sessions from before it existed (0) have ended.
    #[serde(default)]
    last_seen: i64,
}

/// How often `last_seen` is written: each write saves the session, so not on every
/// request; a tenth of the idle timeout, at most a minute.
fn last_seen_step(idle_timeout: i64) -> i64 {
    (idle_timeout / 10).clamp(1, 60)
}

/// A signed-in admin of any role, with what every admin page needs.
#[derive(Debug, Clone)]
pub struct Operator {
    pub username: String,
    pub role: AdminRole,
    /// This session's CSRF token, for the page's forms (sign-out is on every page).
    pub csrf: String,
    pub ip: Option<String>,
    pub session: Session,
}

/// What the admin layout shows around every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub username: String,
    pub role: &'static str,
    pub can_write: bool,
    pub csrf: String,
    /// The navigation entry to mark as current.
    pub section: &'static str,
    /// A one-time notice from the previous action.
    pub notice: Option<String>,
    /// The hidden field `once` of a form that creates something (`view::form_marker`).
    pub once: String,
}

impl Operator {
    /// The audit actor: the admin's username and address.
    pub fn actor(&self) -> Actor {
        Actor::new(self.username.clone(), self.ip.clone())
    }

    pub fn can_write(&self) -> bool {
        self.role == AdminRole::Admin
    }

    /// The layout data for a page of `section`; takes the pending notice.
    pub async fn chrome(&self, section: &'static str) -> AdminResult<Chrome> {
        Ok(Chrome {
            username: self.username.clone(),
            role: self.role.as_str(),
            can_write: self.can_write(),
            csrf: self.csrf.clone(),
            section,
            notice: take_notice(&self.session).await?,
            once: super::view::form_marker(),
        })
    }
}

fn session_of(parts: &Parts) -> Result<Session, PageError> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| PageError::Unexpected("no session layer on the admin router".into()))
}

impl FromRequestParts<AdminState> for Operator {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        let session = session_of(parts)?;
        let Some(mut auth) = session.get::<AdminAuth>(ADMIN_KEY).await? else {
            return Err(AdminError::SignIn);
        };
        // However active, an admin session lasts `session_ttl` from its sign-in: a stolen
        // session cookie is not an operator account for good. Left idle, it ends sooner.
        let now = state.core.now().unix_timestamp();
        let settings = &state.core.settings;
        let idle_timeout = settings.admin_idle_timeout.whole_seconds();
        let last_seen = auth.last_seen.max(auth.signed_in_at);
        // A session without `last_seen` was signed in before its cookie was limited to
        // `/admin`: that cookie went to every port of the host, so the session ends.
        let expired = auth.last_seen == 0
            || now - auth.signed_in_at > settings.session_ttl.whole_seconds()
            || now - last_seen > idle_timeout;
        let admin = match state.core.admin_account(&auth.username).await {
            Ok(a) if !expired && auth.stamp == credential_stamp(&a) => a,
            // Expired, deleted, or the password changed since this session signed in.
            Ok(_) | Err(portcullis_core::Error::NotFound(_)) => {
                session.flush().await?;
                return Err(AdminError::SignIn);
            }
            Err(e) => return Err(e.into()),
        };
        if now - last_seen >= last_seen_step(idle_timeout) {
            auth.last_seen = now;
            session.insert(ADMIN_KEY, &auth).await?;
        }
        let ip = match ClientIp::from_request_parts(parts, state).await {
            Ok(ClientIp(ip)) => ip,
            Err(never) => match never {},
        };
        Ok(Self {
            username: admin.username,
            role: admin.role,
            csrf: csrf::token(&session).await?,
            ip,
            session,
        })
    }
}

/// A signed-in admin with the admin role: every change takes this extractor, so an
/// auditor gets 403 from the server whatever the page showed.
#[derive(Debug, Clone)]
pub struct Writer(pub Operator);

impl FromRequestParts<AdminState> for Writer {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        let op = Operator::from_request_parts(parts, state).await?;
        if op.can_write() {
            Ok(Self(op))
        } else {
            Err(AdminError::Forbidden)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/login.html")]
pub struct AdminLoginPage<'a> {
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct AdminLoginForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Secret,
}

/// `GET /admin/login`.
pub async fn login_get(session: Session, CsrfToken(csrf): CsrfToken) -> AdminResult {
    if session.get::<AdminAuth>(ADMIN_KEY).await?.is_some() {
        return Ok(see_other("/admin")?);
    }
    let page = AdminLoginPage {
        csrf: &csrf,
        username: "",
        error: None,
    };
    Ok(render(StatusCode::OK, &page)?)
}

/// `POST /admin/login`.
pub async fn login_post(
    State(state): State<AdminState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<AdminLoginForm>,
) -> AdminResult {
    // Through the shared rate limit and lockout (DESIGN §5): `admin_sign_in` wraps
    // `admin_login` with them; a refused attempt is `RateLimited` (429 page).
    let admin = match state.core.admin_sign_in(&form.username, &form.password, ip).await {
        Ok(a) => a,
        Err(portcullis_core::Error::BadCredentials) => {
            let csrf = csrf::token(&session).await?;
            let page = AdminLoginPage {
                csrf: &csrf,
                username: &form.username,
                error: Some(BAD_CREDENTIALS),
            };
            return Ok(render(StatusCode::OK, &page)?);
        }
        // The form again, saying how long to wait, so the operator can try again from it.
        Err(portcullis_core::Error::RateLimited { retry_after }) => {
            let csrf = csrf::token(&session).await?;
            let message = crate::error::too_many_message(retry_after);
            let page = AdminLoginPage {
                csrf: &csrf,
                username: &form.username,
                error: Some(&message),
            };
            let resp = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
            return Ok(crate::error::with_retry_after(resp, Some(retry_after)));
        }
        Err(e) => return Err(e.into()),
    };
    // A new session id and CSRF token on every change of privilege (session fixation).
    session.cycle_id().await?;
    csrf::rotate(&session).await?;
    let now = state.core.now().unix_timestamp();
    session
        .insert(
            ADMIN_KEY,
            AdminAuth {
                stamp: credential_stamp(&admin),
                username: admin.username,
                signed_in_at: now,
                last_seen: now,
            },
        )
        .await?;
    Ok(see_other("/admin")?)
}

/// The sign-out form has no fields of its own besides `csrf`.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {}

/// `POST /admin/logout`.
pub async fn logout_post(
    State(state): State<AdminState>,
    op: Operator,
    CsrfForm(LogoutForm {}): CsrfForm<LogoutForm>,
) -> AdminResult {
    state.core.admin_logged_out(&op.actor());
    op.session.flush().await?;
    Ok(see_other("/admin/login")?)
}

/// `GET /`: the admin listener's root leads to the dashboard.
pub async fn root_get() -> Result<Response, PageError> {
    see_other("/admin")
}
