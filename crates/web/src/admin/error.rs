//! `AdminError`: what an admin page handler fails with. On top of `PageError` it knows
//! "sign in first" (a redirect to the sign-in page) and "your role may not do this" (403).

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{ErrorPage, PageError};
use crate::page::see_other;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No admin is signed in to this session.
    #[error("not signed in")]
    SignIn,
    /// The signed-in admin's role does not allow this (an auditor changing something).
    #[error("forbidden for this role")]
    Forbidden,
    #[error(transparent)]
    Page(#[from] PageError),
}

/// `Query` for admin pages: a query string that cannot be read (a repeated filter, an
/// offset that is not a number) gets the admin error page, not axum's plain text.
pub struct PageQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for PageQuery<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(_) => Err(AdminError::Page(PageError::BadRequest(
                "The address has a parameter that could not be read (repeated, or not a number).".into(),
            ))),
        }
    }
}

/// `Path` for admin pages: a path segment that cannot be read (`/admin/clients/%FF`, not
/// UTF-8) names no page: the admin "not found" page, not axum's plain text.
pub struct PagePath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PagePath<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(_) => Err(AdminError::Page(PageError::NotFound)),
        }
    }
}

impl From<portcullis_core::Error> for AdminError {
    fn from(e: portcullis_core::Error) -> Self {
        Self::Page(e.into())
    }
}

impl From<tower_sessions::session::Error> for AdminError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Page(e.into())
    }
}

impl From<askama::Error> for AdminError {
    fn from(e: askama::Error) -> Self {
        Self::Page(e.into())
    }
}

pub type AdminResult<T = Response> = Result<T, AdminError>;

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => see_other("/admin/login").into_response(),
            Self::Forbidden => {
                let page = ErrorPage {
                    title: "Not allowed",
                    message: "Your role can look but not change anything here. Ask an administrator.",
                };
                match page.render() {
                    Ok(html) => (StatusCode::FORBIDDEN, Html(html)).into_response(),
                    Err(_) => (StatusCode::FORBIDDEN, "forbidden").into_response(),
                }
            }
            Self::Page(e) => e.into_response(),
        }
    }
}
