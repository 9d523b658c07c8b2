//! Formatting shared by the admin pages and the admin API: instants as text, optional
//! values, and a flash notice carried across one redirect.

use portcullis_core::admin::ListPage;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_sessions::Session;

use super::error::AdminResult;

/// RFC 3339 in UTC, as the API writes instants.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// `2030-01-01 12:00:05 UTC`, as the pages show instants.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn when_opt(t: Option<OffsetDateTime>) -> String {
    t.map(when).unwrap_or_else(|| "—".to_owned())
}

/// Session key of the markers of creating forms already sent (`sent_before`).
const SENT_KEY: &str = "admin_sent_forms";
/// How many markers are remembered; older forms could be sent again.
const SENT_KEPT: usize = 32;

/// A marker for a form that creates something shown once (a client and its secret, an
/// API key, a registration token): the page answering it is the POST's answer, so a
/// reload, or Back and send, would send the form again and make a second one nobody
/// kept. Rendered as the hidden field `once`.
pub fn form_marker() -> String {
    portcullis_core::crypto::random_token().unwrap_or_default()
}

/// Whether the form carrying `marker` was sent before in this session (and led to
/// something created). A form without one (a script) is never "sent before".
pub async fn sent_before(session: &Session, marker: &str) -> AdminResult<bool> {
    if marker.is_empty() {
        return Ok(false);
    }
    let sent: Vec<String> = session.get(SENT_KEY).await?.unwrap_or_default();
    Ok(sent.iter().any(|m| m == marker))
}

/// Remembers that the form carrying `marker` created something; with a notice for the
/// page it is sent to if it comes again.
pub async fn mark_sent(session: &Session, marker: &str) -> AdminResult<()> {
    if marker.is_empty() {
        return Ok(());
    }
    let mut sent: Vec<String> = session.get(SENT_KEY).await?.unwrap_or_default();
    sent.push(marker.to_owned());
    let excess = sent.len().saturating_sub(SENT_KEPT);
    sent.drain(..excess);
    session.insert(SENT_KEY, &sent).await?;
    Ok(())
}

/// What a form sent again is told, on the list it is sent to.
pub const SENT_AGAIN: &str =
    "That form was sent again (a reload or Back): nothing more was created. What it created is listed below.";

/// Session key of a one-time notice ("Client deleted.") shown by the next page.
const NOTICE_KEY: &str = "admin_notice";

pub async fn set_notice(session: &Session, text: impl Into<String>) -> AdminResult<()> {
    session.insert(NOTICE_KEY, text.into()).await?;
    Ok(())
}

pub async fn take_notice(session: &Session) -> AdminResult<Option<String>> {
    Ok(session.remove::<String>(NOTICE_KEY).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn instants() {
        let t = datetime!(2030-01-02 03:04:05 UTC);
        assert_eq!(when(t), "2030-01-02 03:04:05 UTC");
        assert_eq!(rfc3339(t), "2030-01-02T03:04:05Z");
        assert_eq!(when_opt(None), "—");
    }
}

/// How many clients or users a page of their list shows.
pub const LIST_PAGE: u32 = 50;

/// One page of a searchable list, asked of `list(search, limit, offset)`; none for a
/// search holding NUL (U+0000), which core refuses (PostgreSQL cannot compare it): the
/// page says so, as for any search without a match.
pub async fn search_page<'q, T, E, F, Fut>(q: &'q str, offset: u32, list: F) -> Result<ListPage<T>, E>
where
    F: FnOnce(Option<&'q str>, u32, u32) -> Fut,
    Fut: std::future::Future<Output = Result<ListPage<T>, E>>,
{
    if portcullis_core::params::holds_nul(q) {
        return Ok(ListPage {
            items: Vec::new(),
            next_offset: None,
        });
    }
    list(Some(q.trim()), LIST_PAGE, offset).await
}

/// A search as its page shows it back: a NUL as U+FFFD (browsers drop it).
pub fn search_shown(q: &str) -> String {
    q.replace('\0', "\u{FFFD}")
}

/// The links between the pages of a searchable list (`templates/admin/pager.html`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
    /// The positions of the first and last rows shown, counted from 1.
    pub first_shown: u32,
    pub last_shown: u32,
}

impl Pager {
    /// For the page of `shown` rows at `offset` of the list at `path` searched for `q`,
    /// followed by a page at `next_offset` if there is one.
    pub fn new(path: &str, q: &str, offset: u32, shown: usize, next_offset: Option<u32>) -> Self {
        let link = |offset: u32| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if !q.is_empty() {
                query.append_pair("q", q);
            }
            if offset > 0 {
                query.append_pair("offset", &offset.to_string());
            }
            let query = query.finish();
            if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{query}")
            }
        };
        Self {
            prev: (offset > 0).then(|| link(offset.saturating_sub(LIST_PAGE))),
            next: next_offset.map(link),
            first_shown: offset.saturating_add(1),
            last_shown: offset.saturating_add(u32::try_from(shown).unwrap_or(u32::MAX)),
        }
    }

    /// Whether there is more than one page (else the pager is not shown).
    pub fn paged(&self) -> bool {
        self.prev.is_some() || self.next.is_some()
    }
}

#[cfg(test)]
mod pager_tests {
    use super::*;

    #[test]
    fn links_keep_the_search_and_step_a_page() {
        let p = Pager::new("/admin/users", "a&b", 50, 50, Some(100));
        assert_eq!(p.prev.as_deref(), Some("/admin/users?q=a%26b"));
        assert_eq!(p.next.as_deref(), Some("/admin/users?q=a%26b&offset=100"));
        assert_eq!((p.first_shown, p.last_shown), (51, 100));
        let first = Pager::new("/admin/clients", "", 0, 3, None);
        assert_eq!(
            first,
            Pager {
                prev: None,
                next: None,
                first_shown: 1,
                last_shown: 3
            }
        );
        assert!(!first.paged());
        assert_eq!(
            Pager::new("/admin/clients", "", 0, 50, Some(50)).next.as_deref(),
            Some("/admin/clients?offset=50")
        );
    }
}
