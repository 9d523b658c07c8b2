//! Static assets (stylesheet, the form_post, double-submit and front-channel logout scripts, the icon) embedded in the binary so it runs
//! from any directory.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::PageError;

/// One hour: assets are not versioned in their URL, so a new release must not be hidden
/// behind a long cache.
const CACHE: &str = "public, max-age=3600";

const STYLE_CSS: &str = include_str!("../../../static/style.css");
const FORM_POST_JS: &str = include_str!("../../../static/form_post.js");
const FORMS_JS: &str = include_str!("../../../static/forms.js");
const FRONTCHANNEL_JS: &str = include_str!("../../../static/frontchannel.js");
const FAVICON_SVG: &str = include_str!("../../../static/favicon.svg");

/// `GET /static/{file}`.
pub async fn asset_get(Path(file): Path<String>) -> Result<Response, PageError> {
    let (content_type, body) = match file.as_str() {
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "form_post.js" => ("text/javascript; charset=utf-8", FORM_POST_JS),
        "forms.js" => ("text/javascript; charset=utf-8", FORMS_JS),
        "frontchannel.js" => ("text/javascript; charset=utf-8", FRONTCHANNEL_JS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return Err(PageError::NotFound),
    };
    Ok((
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, CACHE)],
        body,
    )
        .into_response())
}
