//! A minimal HTTP/1.1 client on hyper and rustls (aws-lc-rs), one connection per
//! request: what webhook deliveries need, and nothing that changes how other crates'
//! HTTP clients are built. Never follows redirects.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A response: status, headers, body.
pub type Answer = (StatusCode, HeaderMap, Bytes);

/// Sends one request to `url` (http or https, verified against `tls`'s roots). With
/// `read_body`, the answer's body is read, up to that many bytes (a longer one is an
/// error); without, the answer comes with an empty body, not waited for.
pub async fn send(
    tls: &Arc<rustls::ClientConfig>,
    method: Method,
    url: &url::Url,
    headers: &[(&str, String)],
    body: Bytes,
    read_body: Option<usize>,
) -> Result<Answer, String> {
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("the URL has no host".into()),
    };
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(&url[url::Position::BeforePath..url::Position::AfterQuery])
        .header(header::HOST, &authority)
        .header(header::CONNECTION, "close");
    for (name, value) in headers {
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        request = request.header(*name, value);
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    match url.scheme() {
        "https" => {
            let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
            let stream = TlsConnector::from(Arc::clone(tls))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {authority}: {e}"))?;
            exchange(TokioIo::new(stream), request, read_body).await
        }
        "http" => exchange(TokioIo::new(tcp), request, read_body).await,
        other => Err(format!("unsupported scheme {other}")),
    }
}

async fn exchange<T>(io: T, request: Request<Full<Bytes>>, read_body: Option<usize>) -> Result<Answer, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))?;
        let (parts, body) = response.into_parts();
        let bytes = if let Some(limit) = read_body {
            Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| format!("reading the response: {e}"))?
                .to_bytes()
        } else {
            Bytes::new()
        };
        Ok((parts.status, parts.headers, bytes))
    }
    .await;
    driver.abort();
    result
}

/// The client configuration for receivers: the operating system's trust store, so an
/// operator's own CA (added to the system store) works for internal receivers.
pub fn system_roots() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's trusted certificates");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "no trusted CA certificates found (install ca-certificates): https webhook deliveries will fail"
        );
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
