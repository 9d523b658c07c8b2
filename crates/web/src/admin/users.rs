//! User pages: list with search, create, disable and enable, reset the password, and see
//! and revoke a user's browser sessions (per device) and grants (per client).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::users::{ProfileChange, UserInput};
use portcullis_protocol::Secret;
use serde::Deserialize;
use uuid::Uuid;

use super::AdminState;
use super::auth::{Chrome, Operator, Writer};
use super::clients::{ButtonForm, SearchQuery};
use super::error::{AdminError, AdminResult, PagePath, PageQuery};
use super::forms::{FormErrors, optional_text};
use super::view::{set_notice, when, when_opt};
use crate::csrf::CsrfForm;
use crate::error::PageError;
use crate::page::{render, see_other};

pub struct UserRow {
    pub id: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub disabled: bool,
    pub created_at: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub search: String,
    pub users: Vec<UserRow>,
    pub pager: super::view::Pager,
}

/// `GET /admin/users[?q=…][&offset=…]`, a page at a time.
pub async fn users_get(
    State(state): State<AdminState>,
    op: Operator,
    PageQuery(SearchQuery { q, offset }): PageQuery<SearchQuery>,
) -> AdminResult {
    let list = super::view::search_page(&q, offset, |q, limit, offset| {
        state.core.list_users_page(q, limit, offset)
    })
    .await?;
    let page = UsersPage {
        chrome: op.chrome("users").await?,
        pager: super::view::Pager::new("/admin/users", &q, offset, list.items.len(), list.next_offset),
        search: super::view::search_shown(&q),
        users: list
            .items
            .into_iter()
            .map(|u| UserRow {
                id: u.id.to_string(),
                username: u.username,
                name: u.name.unwrap_or_default(),
                email: u.email.unwrap_or_default(),
                disabled: u.disabled,
                created_at: when(u.created_at),
            })
            .collect(),
    };
    Ok(render(StatusCode::OK, &page)?)
}

/// The new-user form as typed (the password is never sent back).
#[derive(Debug, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub email_verified: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub password: Secret,
}

#[derive(Template)]
#[template(path = "admin/user_new.html")]
pub struct UserNewPage {
    pub chrome: Chrome,
    pub form: UserForm,
    pub errors: FormErrors,
}

/// `GET /admin/users/new`.
pub async fn user_new_get(Writer(op): Writer) -> AdminResult {
    let page = UserNewPage {
        chrome: op.chrome("users").await?,
        form: UserForm::default(),
        errors: FormErrors::none(),
    };
    Ok(render(StatusCode::OK, &page)?)
}

/// `POST /admin/users`.
pub async fn users_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    CsrfForm(form): CsrfForm<UserForm>,
) -> AdminResult {
    let input = UserInput {
        username: form.username.clone(),
        email: optional_text(&form.email),
        email_verified: form.email_verified.as_deref().is_some_and(super::forms::is_checked),
        name: optional_text(&form.name),
        given_name: optional_text(&form.given_name),
        family_name: optional_text(&form.family_name),
    };
    let errors = match state.core.create_user(&input, &form.password, &op.actor()).await {
        Ok(user) => {
            set_notice(&op.session, format!("Created {}.", user.username)).await?;
            return Ok(see_other(&format!("/admin/users/{}", user.id))?);
        }
        Err(portcullis_core::Error::Invalid { field, message }) => FormErrors::one(field, message),
        Err(portcullis_core::Error::Conflict(_)) => FormErrors::one("username", "is already taken"),
        Err(e) => return Err(e.into()),
    };
    let page = UserNewPage {
        chrome: op.chrome("users").await?,
        form,
        errors,
    };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page)?)
}

pub struct SessionRow {
    pub id: String,
    pub ip: String,
    /// The raw `User-Agent` (empty if none), and that said as people would.
    pub user_agent: String,
    pub browser: String,
    pub created_at: String,
    pub expires_at: String,
}

pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    /// The `sub` the client knows the person by.
    pub subject: String,
    pub scope: String,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub id: String,
    pub username: String,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
    pub sessions: Vec<SessionRow>,
    pub grants: Vec<GrantRow>,
    /// The profile form's values: the stored ones, or those just sent when refused.
    pub form: ProfileForm,
    pub errors: FormErrors,
}

/// The profile form (names, email, whether the address is verified), with the values it
/// was shown with, so that saving it changes only what the operator changed.
#[derive(Debug, Default, Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub email_verified: Option<String>,
    #[serde(default)]
    pub name_was: String,
    #[serde(default)]
    pub given_name_was: String,
    #[serde(default)]
    pub family_name_was: String,
    #[serde(default)]
    pub email_was: String,
    #[serde(default)]
    pub email_verified_was: String,
}

impl ProfileForm {
    fn verified(&self) -> bool {
        self.email_verified.as_deref().is_some_and(super::forms::is_checked)
    }

    /// What the operator changed. The box counts only when they changed it: a new
    /// address under a box left ticked is not verified (core's rule for another address).
    /// A ticked box vouches for the address on the form, new or as shown.
    fn change(&self) -> ProfileChange {
        let email_changed = self.email.trim() != self.email_was.trim();
        let verified_changed = self.verified() != (self.email_verified_was == "on");
        let on_form = if email_changed { &self.email } else { &self.email_was };
        let text = |now: &str, was: &str| (now.trim() != was.trim()).then(|| optional_text(now));
        ProfileChange {
            name: text(&self.name, &self.name_was),
            given_name: text(&self.given_name, &self.given_name_was),
            family_name: text(&self.family_name, &self.family_name_was),
            email: email_changed.then(|| optional_text(&self.email)),
            email_verified: verified_changed.then(|| self.verified()),
            verified_for: Some(optional_text(on_form)),
        }
    }
}

fn user_id(raw: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(raw).map_err(|_| AdminError::Page(PageError::NotFound))
}

async fn user_page(state: &AdminState, op: &Operator, id: Uuid, errors: FormErrors) -> AdminResult {
    user_page_with(state, op, id, errors, None).await
}

/// The user page; `profile` keeps a refused profile form's values.
async fn user_page_with(
    state: &AdminState,
    op: &Operator,
    id: Uuid,
    errors: FormErrors,
    profile: Option<ProfileForm>,
) -> AdminResult {
    let user = state.core.get_user(id).await?;
    let form = profile.unwrap_or_else(|| ProfileForm {
        name: user.name.clone().unwrap_or_default(),
        given_name: user.given_name.clone().unwrap_or_default(),
        family_name: user.family_name.clone().unwrap_or_default(),
        email: user.email.clone().unwrap_or_default(),
        email_verified: user.email_verified.then(|| "on".to_owned()),
        name_was: user.name.clone().unwrap_or_default(),
        given_name_was: user.given_name.clone().unwrap_or_default(),
        family_name_was: user.family_name.clone().unwrap_or_default(),
        email_was: user.email.clone().unwrap_or_default(),
        email_verified_was: if user.email_verified { "on" } else { "off" }.to_owned(),
    });
    let sessions = state.core.list_user_sessions(id).await?;
    let grants = state.core.list_user_grants(id).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = UserPage {
        chrome: op.chrome("users").await?,
        id: user.id.to_string(),
        username: user.username,
        name: user.name.unwrap_or_default(),
        given_name: user.given_name.unwrap_or_default(),
        family_name: user.family_name.unwrap_or_default(),
        email: user.email.unwrap_or_default(),
        email_verified: user.email_verified,
        disabled: user.disabled,
        created_at: when(user.created_at),
        updated_at: when(user.updated_at),
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                id: s.id,
                ip: s.ip.unwrap_or_else(|| "unknown".into()),
                browser: s
                    .user_agent
                    .as_deref()
                    .map_or_else(|| "Unknown browser".into(), crate::user_agent::summary),
                user_agent: s.user_agent.unwrap_or_default(),
                created_at: when(s.created_at),
                expires_at: when(s.expires_at),
            })
            .collect(),
        grants: grants
            .into_iter()
            .map(|g| GrantRow {
                id: g.grant.id.to_string(),
                client_id: g.grant.client_id.as_str().to_owned(),
                client_name: g.client_name.unwrap_or_else(|| g.grant.client_id.as_str().to_owned()),
                subject: g.subject,
                scope: g.grant.scope.as_string(),
                created_at: when(g.grant.created_at),
                expires_at: when_opt(Some(g.grant.expires_at)),
            })
            .collect(),
        form,
        errors,
    };
    Ok(render(status, &page)?)
}

#[derive(Template)]
#[template(path = "admin/user_delete.html")]
pub struct UserDeletePage {
    pub chrome: Chrome,
    pub id: String,
    pub username: String,
}

/// `GET /admin/users/{id}/delete`: asks before deleting.
pub async fn user_delete_get(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
) -> AdminResult {
    let user = state.core.get_user(user_id(&id)?).await?;
    let page = UserDeletePage {
        chrome: op.chrome("users").await?,
        id: user.id.to_string(),
        username: user.username,
    };
    Ok(render(StatusCode::OK, &page)?)
}

/// `POST /admin/users/{id}/delete`: deletes the user; their grants and sessions end.
pub async fn user_delete_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    let id = user_id(&id)?;
    let user = state.core.get_user(id).await?;
    state.core.delete_user(id, &op.actor()).await?;
    set_notice(
        &op.session,
        format!("Deleted {}; their sessions and grants are ended.", user.username),
    )
    .await?;
    Ok(see_other("/admin/users")?)
}

/// `POST /admin/users/{id}/profile`: edits the user's name and email. A refused form
/// comes back with what was typed.
pub async fn user_profile_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> AdminResult {
    let id = user_id(&id)?;
    match state.core.update_user_profile(id, &form.change(), &op.actor()).await {
        Ok(_) => {
            set_notice(&op.session, "Profile saved.").await?;
            Ok(see_other(&format!("/admin/users/{id}"))?)
        }
        Err(portcullis_core::Error::Invalid { field, message }) => {
            user_page_with(&state, &op, id, FormErrors::one(field, message), Some(form)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /admin/users/{id}`.
pub async fn user_get(State(state): State<AdminState>, op: Operator, PagePath(id): PagePath<String>) -> AdminResult {
    user_page(&state, &op, user_id(&id)?, FormErrors::none()).await
}

async fn set_disabled(state: &AdminState, op: &Operator, id: &str, disabled: bool) -> AdminResult {
    let id = user_id(id)?;
    state.core.set_user_disabled(id, disabled, &op.actor()).await?;
    let notice = if disabled {
        "Disabled; their sessions and grants are ended."
    } else {
        "Enabled."
    };
    set_notice(&op.session, notice).await?;
    Ok(see_other(&format!("/admin/users/{id}"))?)
}

/// `POST /admin/users/{id}/disable`.
pub async fn user_disable_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    set_disabled(&state, &op, &id, true).await
}

/// `POST /admin/users/{id}/enable`.
pub async fn user_enable_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    set_disabled(&state, &op, &id, false).await
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub password: Secret,
}

/// `POST /admin/users/{id}/password`: sets a new password; the user's sessions and
/// grants end.
pub async fn user_password_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath(id): PagePath<String>,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> AdminResult {
    let id = user_id(&id)?;
    match state.core.set_user_password(id, &form.password, &op.actor()).await {
        Ok(()) => {
            set_notice(&op.session, "Password changed; their sessions and grants are ended.").await?;
            Ok(see_other(&format!("/admin/users/{id}"))?)
        }
        Err(portcullis_core::Error::Invalid { field, message }) => {
            user_page(&state, &op, id, FormErrors::one(field, message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/users/{id}/sessions/{session}/revoke`: signs that browser out.
pub async fn session_revoke_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath((id, session)): PagePath<(String, String)>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    let id = user_id(&id)?;
    state.core.revoke_user_session(id, &session, &op.actor()).await?;
    set_notice(&op.session, "Session ended.").await?;
    Ok(see_other(&format!("/admin/users/{id}"))?)
}

/// `POST /admin/users/{id}/grants/{grant}/revoke`: the client's tokens for this user
/// stop working at once.
pub async fn grant_revoke_post(
    State(state): State<AdminState>,
    Writer(op): Writer,
    PagePath((id, grant)): PagePath<(String, String)>,
    CsrfForm(ButtonForm {}): CsrfForm<ButtonForm>,
) -> AdminResult {
    let id = user_id(&id)?;
    let grant = Uuid::parse_str(&grant).map_err(|_| AdminError::Page(PageError::NotFound))?;
    state.core.revoke_user_grant(id, grant, &op.actor()).await?;
    set_notice(&op.session, "Grant revoked; its tokens no longer work.").await?;
    Ok(see_other(&format!("/admin/users/{id}"))?)
}

#[cfg(test)]
mod tests {
    use super::ProfileForm;

    fn form(name: &str, email: &str, verified: bool, was: (&str, &str, bool)) -> ProfileForm {
        ProfileForm {
            name: name.into(),
            email: email.into(),
            email_verified: verified.then(|| "on".into()),
            name_was: was.0.into(),
            email_was: was.1.into(),
            email_verified_was: if was.2 { "on" } else { "off" }.into(),
            ..ProfileForm::default()
        }
    }

    #[test]
    fn a_saved_form_changes_what_the_operator_changed() {
        let was = ("Al", "a@x.example", true);
        // Nothing changed: nothing to write.
        let c = form("Al", " a@x.example ", true, was).change();
        assert_eq!((c.name, c.email, c.email_verified), (None, None, None));
        // The name only.
        let c = form("Alice", "a@x.example", true, was).change();
        assert_eq!(
            (c.name, c.email, c.email_verified),
            (Some(Some("Alice".into())), None, None)
        );
        // A new address under the box left ticked: the box does not count (unverified).
        let c = form("Al", "b@x.example", true, was).change();
        assert_eq!((c.email, c.email_verified), (Some(Some("b@x.example".into())), None));
        // The box ticked for the new address: it vouches for that one.
        let c = form("Al", "b@x.example", true, ("Al", "a@x.example", false)).change();
        assert_eq!(c.email_verified, Some(true));
        assert_eq!(c.verified_for, Some(Some("b@x.example".into())));
        // The box ticked for the address as shown.
        let c = form("Al", "a@x.example", true, ("Al", "a@x.example", false)).change();
        assert_eq!((c.email, c.email_verified), (None, Some(true)));
        assert_eq!(c.verified_for, Some(Some("a@x.example".into())));
        // Cleared.
        let c = form("", "", false, was).change();
        assert_eq!(
            (c.name, c.email, c.email_verified),
            (Some(None), Some(None), Some(false))
        );
    }

    #[test]
    fn given_and_family_names_change_on_their_own() {
        let shown = ProfileForm {
            given_name: "Alice".into(),
            family_name: "Liddell".into(),
            given_name_was: "Alice".into(),
            family_name_was: "Liddell".into(),
            email_verified_was: "off".into(),
            ..ProfileForm::default()
        };
        let c = shown.change();
        assert_eq!((c.name, c.given_name, c.family_name), (None, None, None));
        let c = ProfileForm {
            family_name: " Hargreaves ".into(),
            ..shown
        }
        .change();
        assert_eq!(
            (c.given_name, c.family_name, c.name, c.email),
            (None, Some(Some("Hargreaves".into())), None, None)
        );
    }
}
