//! What the admin API reads from a request — path segments, the query string and the
//! JSON body — with every failure answered in the API's JSON error format, never axum's
//! plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest body the API reads (applied to its router as `DefaultBodyLimit`). A client
/// at every limit (50 URIs of 2,000 characters in each list) is well under it.
pub const MAX_BODY: usize = 1024 * 1024;

/// Path parameters; one that cannot be read (`%FF` is not UTF-8) is a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            // A route and its handler disagreeing on the parameters: our bug, not the caller's.
            Err(r) if r.status().is_server_error() => Err(ApiError::Internal(r.body_text())),
            Err(r) => Err(ApiError::BadRequest(r.body_text())),
        }
    }
}

/// The query string; one that cannot be read (a repeated or mistyped parameter) is a
/// JSON 400.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|r| ApiError::BadRequest(r.body_text()))
    }
}

/// A JSON object body, sent as `application/json`: anything else is a JSON 400 naming the
/// problem, and a body over [`MAX_BODY`] a JSON 413.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        let bytes = body(req, state).await?;
        object(&bytes).map(Self)
    }
}

/// A JSON object body that may be left out entirely (then `T::default()`); one that is
/// sent must be `application/json` like any other.
#[derive(Debug, Clone)]
pub struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(not_json());
        }
        object(&bytes).map(Self)
    }
}

/// `application/json` or `application/<something>+json`, as axum's `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    // RFC 9110 §5.3: not a list; two of them describe the body twice.
    if headers.get_all(header::CONTENT_TYPE).iter().nth(1).is_some() {
        return false;
    }
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

fn not_json() -> ApiError {
    ApiError::BadRequest("the body must be JSON, sent with Content-Type: application/json".into())
}

async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit: MAX_BODY }
        } else {
            ApiError::BadRequest("the body could not be read".into())
        }
    })
}

/// Every body of the API is a JSON object. serde's derived `Deserialize` would also take
/// an array for a struct (its fields in order), so that is refused here, before it is
/// read. Reading straight from the bytes (not through a `Value`) keeps serde's refusal
/// of a repeated key.
fn object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // RFC 8259 §2: the whitespace allowed before a value.
    let first = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    // No member named twice at any depth (a `jwks` with `keys` twice, say): which one a
    // reader takes is its own choice (RFC 8259 §4), so it is refused.
    if let Err(portcullis_protocol::json::ObjectError::Repeated(e)) = portcullis_protocol::json::object(bytes) {
        return Err(ApiError::BadRequest(format!("the body names a member twice: {e}")));
    }
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut json).map_err(field_error)?;
    // Nothing but whitespace may follow the object.
    json.end()
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON for this request: {e}")))?;
    Ok(value)
}

/// A body that does not fit the request: a value of the wrong type names its field
/// (`name`, `redirect_uris[0]`), as a value the server refuses does; a body that is not
/// JSON, or a field the request does not take, is a plain bad request.
pub(crate) fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let field = e.path().to_string();
    let inner = e.into_inner();
    if field == "." || !inner.is_data() || inner.to_string().starts_with("unknown field") {
        return ApiError::BadRequest(format!("the body is not valid JSON for this request: {inner}"));
    }
    // serde's message ends with the position in the body, which the field name replaces.
    let message = inner.to_string();
    let message = message.split(" at line ").next().unwrap_or_default().to_owned();
    ApiError::Invalid { field, message }
}

/// A JSON object whose members are read with their names checked (a repeated one is
/// refused, as the derived bodies of the other requests refuse it).
pub use portcullis_protocol::json::Members;
