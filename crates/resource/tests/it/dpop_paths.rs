//! DPoP `htu` (RFC 9449 §4.3 step 9) against the path the router routes on: a proof names
//! one URL, and is accepted only by the handler the router gives that URL's path to.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use portcullis_resource::{InvalidDpopProof, Validator, VerifiedClaims};
use tower::ServiceExt as _;

use crate::dpop::{DpopSetup, app, dpop_get, dpop_validator, notes_get, proof_error, send};

/// A router where other handlers than `/notes` answer paths that normalise to `/notes`:
/// axum routes on the raw path. `others` counts the calls to them.
fn routes(d: &DpopSetup, others: Arc<AtomicUsize>) -> Router {
    let (files, by_name) = (others.clone(), others);
    Router::new()
        .route("/notes", get(notes_get))
        .route(
            "/files/{*path}",
            get(move |_caller: VerifiedClaims, Path(_): Path<String>| async move {
                files.fetch_add(1, Ordering::SeqCst);
                "files"
            }),
        )
        .route(
            "/{name}",
            get(move |_caller: VerifiedClaims, Path(_): Path<String>| async move {
                by_name.fetch_add(1, Ordering::SeqCst);
                "by name"
            }),
        )
        .with_state(Validator::from(d.validator.clone()))
}

/// A proof for `GET https://api.example.com/notes` is refused on a path the router gives
/// to another handler, however that path normalises — and whatever `htu` says: a request
/// path not in normal form matches no proof. (Each of these was answered 200 by the other
/// handler.) Nothing is used up: the proof then works where it belongs.
#[tokio::test]
async fn a_proof_is_accepted_only_on_the_path_it_names() {
    let d = DpopSetup::new().await;
    let others = Arc::new(AtomicUsize::new(0));
    let app = routes(&d, others.clone());
    let token = d.bound_token();
    let auth = format!("DPoP {token}");
    let proof = d.client.proof("GET", "https://api.example.com/notes", &token);
    for raw in [
        "/files/../notes",
        "/files/%2e%2e/notes",
        "/files/%2E%2E/notes",
        "/files/x/%2E./../notes",
        "/files/./../notes",
        "/%6Eotes",
        "/note%73",
        "/x\\..\\notes",
        "/files\\..\\notes",
    ] {
        let a = send(&app, "GET", raw, &[("authorization", &auth), ("dpop", &proof)]).await;
        assert_eq!(a.dpop_error(), proof_error(InvalidDpopProof::WrongUrl), "{raw}");
        // Not even a proof naming that very path.
        let own = d.client.proof("GET", &format!("https://api.example.com{raw}"), &token);
        let a = send(&app, "GET", raw, &[("authorization", &auth), ("dpop", &own)]).await;
        assert_eq!(a.dpop_error(), proof_error(InvalidDpopProof::WrongUrl), "{raw}");
    }
    assert_eq!(others.load(Ordering::SeqCst), 0, "another handler answered");
    let a = dpop_get(&app, &token, &proof).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

/// The proof's `htu` may still be written any equivalent way (RFC 9449 §4.3 step 9, RFC
/// 3986 §6.2.2): it is normalised, the router's path taken as it is.
#[tokio::test]
async fn htu_is_normalised() {
    let d = DpopSetup::new().await;
    let others = Arc::new(AtomicUsize::new(0));
    let app = routes(&d, others.clone());
    let token = d.bound_token();
    let auth = format!("DPoP {token}");
    for (raw, htu) in [
        ("/notes", "https://api.example.com/files/../notes"),
        ("/notes", "https://api.example.com/%6eotes"),
        ("/notes", "https://api.example.com/./notes"),
        ("/a%2Fb", "https://api.example.com/a%2fb"),
        ("/caf%C3%A9", "https://api.example.com/caf%c3%a9"),
        ("/caf%C3%A9", "https://api.example.com/café"),
        ("/~user", "https://api.example.com/%7Euser"),
    ] {
        let proof = d.client.proof("GET", htu, &token);
        let a = send(&app, "GET", raw, &[("authorization", &auth), ("dpop", &proof)]).await;
        assert_eq!(a.status, StatusCode::OK, "{raw} {htu}: {}", a.body);
    }
    assert_eq!(others.load(Ordering::SeqCst), 4);
    // Lower-case escapes are normalised away, so a request path with them is not in normal
    // form.
    let proof = d.client.proof("GET", "https://api.example.com/caf%C3%A9", &token);
    let a = send(&app, "GET", "/caf%c3%a9", &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_eq!(a.dpop_error(), proof_error(InvalidDpopProof::WrongUrl));
}

/// With a base path (a proxy that strips `/api`), the request path cannot climb out of the
/// base path either: a proof for `https://example.com/other/notes`, a URL outside this API,
/// is not taken at `/../other/notes` (a path this router serves with its catch-all).
#[tokio::test]
async fn a_base_path_cannot_be_climbed_out_of() {
    let d = DpopSetup::new().await;
    let v = dpop_validator(&d.s, |b| b.dpop_base_url("https://example.com/api")).await;
    let app = Router::new()
        .route("/notes", get(notes_get))
        .route(
            "/{*rest}",
            get(|_caller: VerifiedClaims, Path(rest): Path<String>| async move { rest }),
        )
        .with_state(Validator::from(v));
    let token = d.bound_token();
    let auth = format!("DPoP {token}");
    let good = d.client.proof("GET", "https://example.com/api/notes", &token);
    let a = send(&app, "GET", "/notes", &[("authorization", &auth), ("dpop", &good)]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let outside = d.client.proof("GET", "https://example.com/other/notes", &token);
    let a = send(
        &app,
        "GET",
        "/../other/notes",
        &[("authorization", &auth), ("dpop", &outside)],
    )
    .await;
    assert_eq!(a.dpop_error(), proof_error(InvalidDpopProof::WrongUrl));
}

/// A layer that rewrites the URI wrapped around the whole router (tower-http's
/// `NormalizePath`, say) runs before axum records `OriginalUri`: the proof is checked
/// against the rewritten path, as the README says.
#[tokio::test]
async fn a_rewrite_outside_the_router_is_what_the_proof_is_checked_against() {
    use tower::Layer as _;
    let d = DpopSetup::new().await;
    let trim = tower::layer::layer_fn(|svc: Router| {
        tower::util::MapRequest::new(svc, |mut req: Request<Body>| {
            let path = req.uri().path().trim_end_matches('/').to_owned();
            let path = if path.is_empty() { "/".to_owned() } else { path };
            *req.uri_mut() = path.parse().unwrap();
            req
        })
    });
    let svc = trim.layer(app(d.validator.clone()));
    let token = d.bound_token();
    let auth = format!("DPoP {token}");
    for (htu, want) in [
        ("https://api.example.com/notes/", StatusCode::UNAUTHORIZED),
        ("https://api.example.com/notes", StatusCode::OK),
    ] {
        let proof = d.client.proof("GET", htu, &token);
        let req = Request::builder()
            .uri("/notes/")
            .header("authorization", &auth)
            .header("dpop", &proof)
            .body(Body::empty())
            .unwrap();
        let r = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(r.status(), want, "{htu}");
    }
}
