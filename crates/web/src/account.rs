//! The account page (issue 6): a signed-in person sees their browser sessions (when,
//! from where, which browser) and the applications they granted access, and can end
//! each one. Every form is CSRF-protected and throttled per address.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::crypto::b64url;
use portcullis_core::throttle::Bucket;
use portcullis_protocol::Secret;
use serde::Deserialize;
use time::OffsetDateTime;
use time::macros::format_description;
use tower_sessions::Session;

use crate::csrf::{CsrfForm, CsrfToken};
use crate::error::PageError;
use crate::page::{render, see_other};
use crate::session_store::{current_auth, current_user, id_hash};
use crate::{AppState, ClientIp};

pub struct SessionRow {
    pub id: String,
    pub ip: String,
    /// What the browser calls itself (`User-Agent`), and that said as people would.
    pub user_agent: String,
    pub browser: String,
    pub created: String,
    pub current: bool,
}

pub struct ApplicationRow {
    pub client_id: String,
    pub name: String,
    /// What the application may do, in the consent page's words.
    pub permissions: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    pub csrf: &'a str,
    pub username: &'a str,
    pub sessions: Vec<SessionRow>,
    pub applications: Vec<ApplicationRow>,
    /// Why the password change just sent was refused.
    pub password_error: Option<&'a str>,
    /// Whether that was the current password (not the new one).
    pub current_password_wrong: bool,
}

#[derive(Template)]
#[template(path = "password_changed.html")]
pub struct PasswordChangedPage;

#[derive(Debug, Deserialize)]
pub struct SessionForm {
    pub session: String,
}

#[derive(Debug, Deserialize)]
pub struct ApplicationForm {
    pub client_id: String,
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub current_password: Secret,
    #[serde(default)]
    pub new_password: Secret,
    #[serde(default)]
    pub new_password_again: Secret,
}

fn when(t: OffsetDateTime) -> String {
    t.format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_default()
}

/// The handle of this browser's session, as `list_user_sessions` names sessions.
fn current_handle(session: &Session) -> Option<String> {
    session.id().map(|id| b64url(&id_hash(&id)))
}

/// Session key: the person asked for the account page while signed out, so a sign-in
/// without an authorization request goes back there.
pub const BACK_TO_ACCOUNT: &str = "back_to_account";

/// `GET /account`: the signed-in person's sessions and applications; sign in first
/// otherwise, and come back here after.
pub async fn account_get(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
) -> Result<Response, PageError> {
    let Some((_, user)) = current_user(&state, &session).await? else {
        session.remove_value(crate::device::BACK_TO_DEVICE).await?;
        session.insert(BACK_TO_ACCOUNT, true).await?;
        return see_other("/login");
    };
    account_page(&state, &session, &user, &csrf, StatusCode::OK, None).await
}

/// Why a password change was refused, by the field at fault.
enum PasswordRefusal {
    Current(String),
    New(String),
}

/// The account page, with `password_error` next to the password form when a change was
/// refused.
async fn account_page(
    state: &AppState,
    session: &Session,
    user: &portcullis_core::model::User,
    csrf: &str,
    status: StatusCode,
    password_error: Option<&PasswordRefusal>,
) -> Result<Response, PageError> {
    let current = current_handle(session);
    let sessions = state
        .core
        .list_user_sessions(user.id)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: current.as_deref() == Some(s.id.as_str()),
            id: s.id,
            ip: s.ip.unwrap_or_else(|| "unknown".into()),
            browser: s
                .user_agent
                .as_deref()
                .map_or_else(|| "Unknown browser".into(), crate::user_agent::summary),
            user_agent: s.user_agent.unwrap_or_else(|| "unknown browser".into()),
            created: when(s.created_at),
        })
        .collect();
    let applications = state
        .core
        .list_user_applications(user.id)
        .await?
        .into_iter()
        .map(|a| ApplicationRow {
            client_id: a.client_id.as_str().to_owned(),
            name: a.client_name,
            permissions: a
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(portcullis_core::authorize::scope_description)
                .collect::<Vec<_>>()
                .join("; "),
            since: when(a.since),
        })
        .collect();
    render(
        status,
        &AccountPage {
            csrf,
            username: &user.username,
            sessions,
            applications,
            password_error: password_error.map(|r| match r {
                PasswordRefusal::Current(m) | PasswordRefusal::New(m) => m.as_str(),
            }),
            current_password_wrong: matches!(password_error, Some(PasswordRefusal::Current(_))),
        },
    )
}

/// `POST /account/password`: the person changes their password. It ends every session
/// of the account, this one included, and every grant, so the page that follows says so
/// and offers to sign in again. A refusal shows the account page again with the reason;
/// the passwords typed are never sent back.
pub async fn account_password_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, PageError> {
    state.core.throttle.check(Bucket::AccountIp, ip.as_deref())?;
    let Some((auth, user)) = current_user(&state, &session).await? else {
        return see_other("/login");
    };
    let refused = if form.new_password.expose() != form.new_password_again.expose() {
        PasswordRefusal::New("The two new passwords are not the same.".to_owned())
    } else {
        let (current, new) = (&form.current_password, &form.new_password);
        match state.core.change_own_password(auth.user_id, current, new, ip).await {
            Ok(()) => {
                // The store has ended every session of the account; this clears the cookie.
                session.flush().await?;
                return render(StatusCode::OK, &PasswordChangedPage);
            }
            Err(portcullis_core::Error::BadCredentials) => {
                PasswordRefusal::Current("The current password is not right.".to_owned())
            }
            Err(portcullis_core::Error::Invalid {
                field: "new_password",
                message,
            }) => PasswordRefusal::New(format!("The new password {message}.")),
            Err(e) => return Err(e.into()),
        }
    };
    let csrf = crate::csrf::token(&session).await?;
    account_page(&state, &session, &user, &csrf, StatusCode::BAD_REQUEST, Some(&refused)).await
}

/// `POST /account/sessions/revoke`: signs one of the person's browsers out; ending this
/// browser's own session signs it out here too.
pub async fn account_session_revoke_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<SessionForm>,
) -> Result<Response, PageError> {
    state.core.throttle.check(Bucket::AccountIp, ip.as_deref())?;
    let Some(auth) = current_auth(&state, &session).await? else {
        return see_other("/login");
    };
    let own = current_handle(&session).as_deref() == Some(form.session.as_str());
    already_gone(state.core.revoke_own_session(auth.user_id, &form.session, ip).await)?;
    if own {
        session.flush().await?;
        return see_other("/login");
    }
    see_other("/account")
}

/// `POST /account/applications/revoke`: withdraws an application's access.
pub async fn account_application_revoke_post(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<ApplicationForm>,
) -> Result<Response, PageError> {
    state.core.throttle.check(Bucket::AccountIp, ip.as_deref())?;
    let Some(auth) = current_auth(&state, &session).await? else {
        return see_other("/login");
    };
    already_gone(
        state
            .core
            .revoke_own_application(auth.user_id, &form.client_id, ip)
            .await,
    )?;
    see_other("/account")
}

/// A session or application that is not (or no longer) the person's: already ended, by
/// a second click or in another tab, so the page the person returns to shows it gone.
/// The same answer whether it ever existed, as for one that was just ended.
fn already_gone(done: portcullis_core::Result<()>) -> Result<(), PageError> {
    match done {
        Ok(()) | Err(portcullis_core::Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
