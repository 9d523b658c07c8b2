//! Security headers on every response of a page router (DESIGN §5), and `no-store` on
//! everything that does not set its own cache policy.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// Content Security Policy of every page: our own script and style only, nothing inline,
/// no framing. The consent page adds the origin of the client's logo to `img-src`.
///
/// There is deliberately no `form-action 'self'`: Chrome applies `form-action` to the
/// redirects that follow a form submission, so it would block the 303 from
/// `POST /login` or `POST /consent` to the client's redirect URI, and the form_post
/// response mode posts to the client's origin by design.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// HSTS for an https issuer: one year.
pub const HSTS: &str = "max-age=31536000";

fn always<S>(router: Router<S>, name: HeaderName, value: &'static str) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(SetResponseHeaderLayer::overriding(
        name,
        HeaderValue::from_static(value),
    ))
}

/// Adds the security headers to every response of `router`; `Strict-Transport-Security`
/// only when served over https (`secure`). Responses without a `Cache-Control` get
/// `no-store`: pages carry CSRF tokens and personal data.
pub fn security_headers<S>(router: Router<S>, secure: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // A page that loads something more (the consent page, a client's logo) sets its own,
    // built from this one.
    let mut router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    ));
    router = always(router, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    router = always(router, header::REFERRER_POLICY, "no-referrer");
    router = always(router, header::X_FRAME_OPTIONS, "DENY");
    router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    if secure {
        router = always(router, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    router
}
