//! The audit log page: newest first, filterable by event type, user, client and time,
//! paginated. The filter is a GET form, so a filtered page can be bookmarked.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::admin::AUDIT_PAGE_DEFAULT;
use portcullis_core::model::{AuditEvent, AuditFilter};
use portcullis_protocol::ClientId;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use super::AdminState;
use super::auth::{Chrome, Operator};
use super::error::{AdminResult, PageQuery};
use super::forms::FormErrors;
use super::view::when;
use crate::page::render;

/// Event types offered as suggestions in the filter (any type can be typed).
pub use portcullis_core::audit::EVENT_TYPES;

/// The filter as typed; also what the pager links carry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub event_type: String,
    /// A username or a user id.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub client: String,
    /// `YYYY-MM-DDTHH:MM[:SS]` in UTC (what `datetime-local` sends) or RFC 3339.
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub offset: u32,
}

/// Reads an instant typed in the filter.
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let t = text.trim();
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(v);
    }
    let with_secs = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let without = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    PrimitiveDateTime::parse(t, with_secs)
        .or_else(|_| PrimitiveDateTime::parse(t, without))
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

pub struct EventRow {
    pub at: String,
    pub event_type: String,
    pub actor: String,
    pub user_id: String,
    /// The username, or the id when the user no longer exists.
    pub user_label: String,
    pub client_id: String,
    /// The client's name, or its id when it no longer exists.
    pub client_label: String,
    pub ip: String,
    pub detail: String,
}

/// Names for the ids on one page, each looked up once.
#[derive(Default)]
struct Labels {
    users: HashMap<Uuid, String>,
    clients: HashMap<String, String>,
}

impl Labels {
    async fn user(&mut self, state: &AdminState, id: Uuid) -> String {
        if let Some(l) = self.users.get(&id) {
            return l.clone();
        }
        let label = state
            .core
            .get_user(id)
            .await
            .map_or_else(|_| id.to_string(), |u| u.username);
        self.users.insert(id, label.clone());
        label
    }

    async fn client(&mut self, state: &AdminState, id: &str) -> String {
        if let Some(l) = self.clients.get(id) {
            return l.clone();
        }
        let label = match ClientId::parse(id) {
            Ok(cid) => state
                .core
                .get_client(&cid)
                .await
                .map_or_else(|_| id.to_owned(), |c| c.name),
            Err(_) => id.to_owned(),
        };
        self.clients.insert(id.to_owned(), label.clone());
        label
    }
}

impl EventRow {
    async fn new(e: &AuditEvent, state: &AdminState, labels: &mut Labels) -> Self {
        let detail = match &e.detail {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            other => other.to_string(),
        };
        let user_label = match e.user_id {
            Some(id) => labels.user(state, id).await,
            None => String::new(),
        };
        let client_label = match &e.client_id {
            Some(id) => labels.client(state, id).await,
            None => String::new(),
        };
        Self {
            at: when(e.at),
            event_type: e.event_type.clone(),
            actor: e.actor.clone().unwrap_or_default(),
            user_id: e.user_id.map(|u| u.to_string()).unwrap_or_default(),
            user_label,
            client_id: e.client_id.clone().unwrap_or_default(),
            client_label,
            ip: e.ip.clone().unwrap_or_default(),
            detail,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
pub struct AuditPageView {
    pub chrome: Chrome,
    pub query: AuditQuery,
    pub errors: FormErrors,
    pub events: Vec<EventRow>,
    pub event_types: &'static [&'static str],
    pub prev: Option<String>,
    pub next: Option<String>,
    pub first_shown: u32,
    pub last_shown: u32,
}

fn page_link(q: &AuditQuery, offset: u32) -> String {
    let q = AuditQuery { offset, ..q.clone() };
    format!("/admin/audit?{}", serde_urlencoded::to_string(&q).unwrap_or_default())
}

/// Builds the store filter; a field that cannot be read is a form error.
async fn filter(state: &AdminState, q: &AuditQuery) -> Result<AuditFilter, FormErrors> {
    let mut f = AuditFilter {
        event_type: Some(q.event_type.trim().to_owned()).filter(|s| !s.is_empty()),
        client_id: Some(q.client.trim().to_owned()).filter(|s| !s.is_empty()),
        limit: AUDIT_PAGE_DEFAULT,
        offset: q.offset,
        ..AuditFilter::default()
    };
    let user = q.user.trim();
    if !user.is_empty() {
        f.user_id = Some(match Uuid::parse_str(user) {
            Ok(id) => id,
            Err(_) => match state.core.find_user(user).await {
                Ok(u) => u.id,
                Err(_) => return Err(FormErrors::one("user", "no user has this username or id")),
            },
        });
    }
    for (field, text, slot) in [("since", &q.since, &mut f.since), ("until", &q.until, &mut f.until)] {
        if !text.trim().is_empty() {
            *slot = Some(
                parse_instant(text)
                    .ok_or_else(|| FormErrors::one(field, "must be a date and time like 2030-01-31T14:00 (UTC)"))?,
            );
        }
    }
    Ok(f)
}

/// `GET /admin/audit`.
pub async fn audit_get(
    State(state): State<AdminState>,
    op: Operator,
    PageQuery(query): PageQuery<AuditQuery>,
) -> AdminResult {
    let (events, errors, next) = match filter(&state, &query).await {
        Ok(f) => match state.core.list_audit(&f).await {
            Ok(page) => (page.events, FormErrors::none(), page.next_offset),
            Err(portcullis_core::Error::Invalid { field, message }) => {
                (Vec::new(), FormErrors::one(field, message), None)
            }
            Err(e) => return Err(e.into()),
        },
        Err(errors) => (Vec::new(), errors, None),
    };
    let mut labels = Labels::default();
    let mut rows = Vec::with_capacity(events.len());
    for e in &events {
        rows.push(EventRow::new(e, &state, &mut labels).await);
    }
    let prev = (query.offset > 0).then(|| page_link(&query, query.offset.saturating_sub(AUDIT_PAGE_DEFAULT)));
    let next = next.map(|n| page_link(&query, n));
    // The filter as its fields show it back (a NUL as U+FFFD).
    let query = AuditQuery {
        event_type: super::view::search_shown(&query.event_type),
        user: super::view::search_shown(&query.user),
        client: super::view::search_shown(&query.client),
        since: super::view::search_shown(&query.since),
        until: super::view::search_shown(&query.until),
        ..query
    };
    let page = AuditPageView {
        chrome: op.chrome("audit").await?,
        next,
        prev,
        first_shown: query.offset.saturating_add(1),
        last_shown: query
            .offset
            .saturating_add(u32::try_from(events.len()).unwrap_or(u32::MAX)),
        query,
        errors,
        event_types: &EVENT_TYPES,
        events: rows,
    };
    Ok(render(StatusCode::OK, &page)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn instants_typed_in_the_filter() {
        assert_eq!(parse_instant("2030-01-02T03:04"), Some(datetime!(2030-01-02 03:04 UTC)));
        assert_eq!(
            parse_instant("2030-01-02T03:04:05"),
            Some(datetime!(2030-01-02 03:04:05 UTC))
        );
        assert_eq!(
            parse_instant("2030-01-02T03:04:05+01:00"),
            Some(datetime!(2030-01-02 02:04:05 UTC))
        );
        assert_eq!(parse_instant("yesterday"), None);
    }
}
