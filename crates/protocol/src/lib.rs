//! Wire types of OAuth 2.0 and OpenID Connect as Portcullis speaks them: newtypes that
//! parse at the edge, the RFC error codes, token requests and responses, discovery,
//! JWKS and claims. No I/O lives here.

pub mod claims;
pub mod discovery;
pub mod error;
pub mod json;
pub mod jwk;
pub mod token;
pub mod types;

pub use error::{ErrorCode, ErrorResponse, error_description};
pub use types::*;
