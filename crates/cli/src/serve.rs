//! The accept loop: what `axum::serve` does, plus the timeouts it leaves out.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never runs: a
//! client that sends half a request head and then nothing held its connection and task
//! forever (slowloris), and idle keep-alive connections were never closed. Here every
//! connection is served by hyper's HTTP/1.1 builder with a timer, so a request head (or
//! the wait for the next one on a kept-alive connection) has `header_read_timeout`;
//! `request_timeout` then bounds reading the body and handling the request. Writing the
//! answer is bounded too: a client that stops reading (its requests pipelined, its
//! receive window shut) would otherwise hold its connection, and the answers queued in
//! the kernel for it, for ever; once a write has waited `header_read_timeout` without
//! progress the connection is closed. How many connections are open at once is bounded
//! too (`crate::conn_limit`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;

use crate::conn_limit::{Gate, Permit};

/// The settings `header_read_timeout` and `request_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time a client has to send a whole request head, or to start the next request on
    /// a kept-alive connection; and to take the next part of an answer once the
    /// connection's send buffer is full.
    pub header_read: Duration,
    /// Time to read a request's body and answer it. The default is longer than anything a
    /// handler waits for on purpose (a password hash's turn, 10 s; a lockout's turn,
    /// 15 s), so it only ends requests whose body trickles in or never comes.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(20),
            request: Duration::from_secs(60),
        }
    }
}

/// Where `serve` takes its connections from: each with its peer and its share of the
/// connection limit, held for as long as the connection is open.
pub trait Accept: Send + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = (Self::Io, SocketAddr, Permit)> + Send;
}

/// Plain TCP connections, admitted by `gate`.
pub struct Plain {
    pub listener: TcpListener,
    pub gate: Gate,
}

impl Accept for Plain {
    type Io = TcpStream;

    fn accept(&mut self) -> impl Future<Output = (TcpStream, SocketAddr, Permit)> + Send {
        crate::conn_limit::accept(&self.listener, &self.gate)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests
/// finish (each connection closes after its current response) and returns once every
/// connection has closed, or after `header_read + request` and a margin, ending those
/// still open (a client that never reads its response). Handlers see the peer as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(mut listener: impl Accept, router: Router, timeouts: Timeouts, shutdown: impl Future<Output = ()>) {
    // Past `request`, the client gets 408 and the request's future is dropped (the pages'
    // handlers, which run to completion on their own task, have their body by then).
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        timeouts.request,
    ));
    // Dropped to tell connections to finish.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, peer, permit) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
            // Reaps finished connections, so the set holds open ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(axum::body::Body::new)
            });
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.header_read);
            let mut io = tokio_io_timeout::TimeoutStream::new(io);
            io.set_write_timeout(Some(timeouts.header_read));
            let io = TokioIo::new(Box::pin(io));
            let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(service)));
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, %peer, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    drop(stop_tx);
    let limit = timeouts.header_read + timeouts.request + Duration::from_secs(5);
    let drained = tokio::time::timeout(limit, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open at shutdown; closing them"
        );
        connections.shutdown().await;
    }
}
