//! `AdminError`: what an admin page handler fails with. On top of `PageError` it knows
//! "sign in first" (a redirect to the sign-in page) and "your role may not do this" (403).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

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
