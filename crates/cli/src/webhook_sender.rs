//! The HTTPS client behind core's `WebhookSender` port: `http_client` on rustls with the
//! aws-lc-rs provider and the system's trust store, no redirects — a redirect could
//! lead a signed delivery somewhere the operator never registered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::Method;
use portcullis_core::webhooks::WebhookSender;

use crate::http_client;

pub struct HttpsSender {
    /// Read at the first delivery, not at start: parsing the system's trust store takes
    /// ~20 ms, which start-up (issue 7: start to ready) should not wait for.
    tls: tokio::sync::OnceCell<Arc<rustls::ClientConfig>>,
}

impl HttpsSender {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
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
        headers: &[(&'static str, String)],
        body: &str,
        timeout: Duration,
    ) -> Result<u16, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let mut all: Vec<(&str, String)> = headers.to_vec();
        all.push((
            "User-Agent",
            concat!("Portcullis-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        ));
        let tls = self.tls().await?;
        let send = http_client::send(
            tls,
            Method::POST,
            &url,
            &all,
            Bytes::copy_from_slice(body.as_bytes()),
            false,
        );
        match tokio::time::timeout(timeout, send).await {
            Ok(Ok((status, _, _))) => Ok(status.as_u16()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        }
    }
}
