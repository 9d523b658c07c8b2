//! The HTTPS client behind core's `WebhookSender` and `outbound::Fetcher` ports:
//! `http_client` on rustls with the aws-lc-rs provider and the system's trust store, no
//! redirects (a redirect could lead a signed delivery somewhere the operator never
//! registered, or the server to keys at an address nobody registered), and for what
//! clients registered themselves, public addresses only (`outbound`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::Method;
use portcullis_core::outbound::{Fetcher, OutboundPolicy, Reach};
use portcullis_core::webhooks::WebhookSender;

use crate::http_client;

pub struct HttpsSender {
    policy: OutboundPolicy,
    /// Read at the first delivery, not at start: parsing the system's trust store takes
    /// ~20 ms, which start-up (issue 7: start to ready) should not wait for.
    tls: tokio::sync::OnceCell<Arc<rustls::ClientConfig>>,
}

impl HttpsSender {
    pub fn new(policy: OutboundPolicy) -> anyhow::Result<Self> {
        Ok(Self {
            policy,
            tls: tokio::sync::OnceCell::new(),
        })
    }

    async fn tls(&self) -> Result<&Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(http_client::system_roots)
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            })
            .await
    }
}

#[async_trait]
impl WebhookSender for HttpsSender {
    async fn post(
        &self,
        url: &str,
        reach: Reach,
        headers: &[(&'static str, String)],
        body: &str,
        timeout: Duration,
    ) -> Result<u16, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let mut all: Vec<(&str, String)> = headers.to_vec();
        if !all.iter().any(|(name, _)| name.eq_ignore_ascii_case("user-agent")) {
            all.push((
                "User-Agent",
                concat!("Portcullis-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
            ));
        }
        let tls = self.tls().await?;
        let send = http_client::send(
            tls,
            &self.policy,
            reach,
            Method::POST,
            &url,
            &all,
            Bytes::copy_from_slice(body.as_bytes()),
            None,
        );
        match tokio::time::timeout(timeout, send).await {
            Ok(Ok((status, _, _))) => Ok(status.as_u16()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        }
    }
}

#[async_trait]
impl Fetcher for HttpsSender {
    async fn get(
        &self,
        url: &str,
        accept: &'static str,
        reach: Reach,
        limit: usize,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let headers = [
            ("Accept", accept.to_owned()),
            (
                "User-Agent",
                concat!("Portcullis/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
        ];
        let tls = self.tls().await?;
        // Read up to the limit only: a longer body is an error, not buffered.
        let get = http_client::send(
            tls,
            &self.policy,
            reach,
            Method::GET,
            &url,
            &headers,
            Bytes::new(),
            Some(limit),
        );
        let (status, _, body) = match tokio::time::timeout(timeout, get).await {
            Ok(answer) => answer.map_err(|e| {
                if e.starts_with("reading the response") {
                    format!("the answer is over {limit} bytes, or was cut off")
                } else {
                    e
                }
            })?,
            Err(_) => return Err(format!("no answer within {} s", timeout.as_secs())),
        };
        let body = String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".to_owned())?;
        Ok((status.as_u16(), body))
    }
}
