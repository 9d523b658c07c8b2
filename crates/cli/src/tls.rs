//! Built-in TLS (issue 6) for deployments without a TLS-terminating proxy: rustls on
//! the aws-lc-rs provider (never `ring`), certificate chain and key from PEM files.
//! Handshakes run in their own tasks so a slow or silent client cannot hold up accepting
//! the next connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;
use crate::conn_limit::{Gate, Permit};
use crate::serve::Accept;

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the PEM files into a server configuration (TLS 1.2 and 1.3, HTTP/1.1).
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("tls_cert_file: cannot read {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("tls_cert_file: {} is not a PEM certificate chain", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("tls_cert_file: {} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        // A key under a passphrase reads as no key at all (PKCS #8) or as bad base64
        // (OpenSSL's older form, with `Proc-Type: 4,ENCRYPTED`); say which it is.
        let encrypted = std::fs::read_to_string(&files.key)
            .is_ok_and(|t| t.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || t.contains("Proc-Type: 4,ENCRYPTED"));
        if encrypted {
            anyhow::anyhow!(
                "tls_key_file: {} is encrypted with a passphrase, and Portcullis reads unencrypted keys only \
                 (`openssl pkey -in {0} -out key.pem`, then keep key.pem readable by the server alone)",
                files.key.display()
            )
        } else {
            anyhow::Error::new(e).context(format!(
                "tls_key_file: cannot read a PEM private key from {}",
                files.key.display()
            ))
        }
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls_key_file: the key does not match the certificate, or is unsupported")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that yields connections whose TLS handshake has completed. A connection
/// counts against the connection limit from its TCP accept on, handshake included.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr, Permit)>,
    acceptor: tokio::task::AbortHandle,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>, gate: Gate) -> Self {
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer, permit) = crate::conn_limit::accept(&tcp, &gate).await;
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer, permit)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self {
            ready,
            acceptor: task.abort_handle(),
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Accept for TlsListener {
    type Io = TlsStream<TcpStream>;

    async fn accept(&mut self) -> (Self::Io, SocketAddr, Permit) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task is gone (only when this listener is being dropped).
            None => std::future::pending().await,
        }
    }
}
