//! The client's IP address, for audit events and rate limits: the socket's peer, or —
//! when that peer is a configured trusted proxy — what the proxy reports in its
//! forwarding header (DESIGN §5). The decision is core's `TrustedProxies::client_ip`,
//! shared with the web crate; the router puts the configured proxies in the request's
//! extensions.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use portcullis_core::net::TrustedProxies;

pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(Self(None));
        };
        let ip = match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => trusted.client_ip(
                peer.ip(),
                parts
                    .headers
                    .get_all(trusted.header.name())
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ),
            None => peer.ip(),
        };
        Ok(Self(Some(ip.to_string())))
    }
}
