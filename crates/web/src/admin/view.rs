//! Formatting shared by the admin pages and the admin API: instants as text, optional
//! values, and a flash notice carried across one redirect.

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
