//! Slow clients: a request head or body that never finishes, and idle kept-alive
//! connections, are closed instead of being held forever (slowloris).

use std::time::{Duration, Instant};

use portcullis_tests::{Backend, TestApp, both_backends, fresh_database, http, spawn_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A node that gives a request head 1 s and a whole request 2 s.
async fn impatient_app(backend: Backend) -> TestApp {
    let (url, guard) = fresh_database(backend).await;
    spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.timeouts.header_read = Duration::from_secs(1);
        s.timeouts.request = Duration::from_secs(2);
    })
    .await
}

/// Sends `bytes` on a new connection and reads until the server closes it (or 10 s
/// pass): what came back, and how long the server kept the connection.
async fn send_and_wait_for_close(app: &TestApp, bytes: &[u8]) -> (String, Duration) {
    let addr = app.issuer.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut conn, Duration::from_secs(10))
        .await
        .expect("the server still holds the connection after 10 s");
    (String::from_utf8_lossy(&got).into_owned(), started.elapsed())
}

/// Everything `conn` receives until the server closes it, or `None` if it is still open
/// after `limit`.
async fn read_until_closed(conn: &mut (impl tokio::io::AsyncRead + Unpin), limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

async fn slow_clients_are_cut_off(backend: Backend) {
    let app = impatient_app(backend).await;
    // Half a request head, then nothing.
    let (answer, held) = send_and_wait_for_close(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(4),
        "{held:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A whole head, and a body that never comes: 408 once the request time is up.
    let (answer, held) = send_and_wait_for_close(
        &app,
        b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\nConnection: close\r\n\r\ngrant_type=",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        held >= Duration::from_millis(1900) && held < Duration::from_secs(5),
        "{held:?}"
    );

    // The same on a page (whose handler runs on its own task) and a kept-alive
    // connection: the body is read in the timed part, so the connection goes too.
    let (answer, held) = send_and_wait_for_close(
        &app,
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nusername=",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        held >= Duration::from_millis(1900) && held < Duration::from_secs(5),
        "{held:?}"
    );

    // A kept-alive connection is answered, then closed once it has been idle for the
    // head's time.
    let (answer, held) = send_and_wait_for_close(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(4),
        "{held:?}"
    );

    // Ordinary clients are not affected.
    let r = http()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

/// A client that sends many requests at once (HTTP/1.1 pipelining) and never reads the
/// answers: once the server's writes have waited the head's time without progress, the
/// connection is closed, rather than held with megabytes of answers queued for it.
async fn clients_that_stop_reading_are_cut_off(backend: Backend) {
    const REQUESTS: usize = 4000;
    let app = impatient_app(backend).await;
    let addr: std::net::SocketAddr = app.issuer.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let conn = socket.connect(addr).await.unwrap();
    let (mut reader, mut writer) = conn.into_split();
    let request = b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\n\r\n".repeat(REQUESTS);
    // The server stops reading requests while its answers cannot go out, so the writer
    // may never finish: it is not waited for.
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = read_until_closed(&mut reader, Duration::from_secs(20))
        .await
        .expect("the server still holds the connection");
    sending.abort();
    let answered = String::from_utf8_lossy(&got).matches("HTTP/1.1 200").count();
    assert!(answered > 0, "nothing was answered");
    assert!(
        answered < REQUESTS,
        "every request was answered: the connection was kept while nobody read"
    );
    // Other clients are served meanwhile and after.
    let r = http()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

/// Whether the server closed `conn` at once (`true`) or holds it, waiting for a request.
async fn closed_at_once(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await;
    matches!(read, Ok(Ok(0) | Err(_)))
}

/// One address holds at most `max_connections_per_address` connections at once: one
/// more is closed as soon as it is accepted, those it holds go on working, and closing
/// one makes room again. Without it, one host opening connections faster than the
/// head's time closes them took every file descriptor, and nobody else was served.
async fn one_address_cannot_take_every_connection(backend: Backend) {
    const LIMIT: u32 = 4;
    let (url, guard) = fresh_database(backend).await;
    let app = spawn_with(&url, guard.map(std::sync::Arc::new), |s| {
        s.max_connections_per_address = LIMIT;
    })
    .await;
    let addr = app.issuer.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    let mut refused = None;
    // Any connection the test's own clients keep open counts too, so connect until one
    // is refused.
    for _ in 0..=LIMIT {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        if closed_at_once(&mut conn).await {
            refused = Some(conn);
            break;
        }
        held.push(conn);
    }
    assert!(
        refused.is_some(),
        "{} connections from one address were all kept",
        LIMIT + 1
    );
    assert!(!held.is_empty() && held.len() <= LIMIT as usize, "{}", held.len());
    // Those kept are served.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut first, Duration::from_secs(10)).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // Its closing made room: a new connection is served.
    let mut served = false;
    for _ in 0..50 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut conn, Duration::from_secs(10)).await.unwrap();
        if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "no room was made when a connection closed");
    drop(held);
    app.stop().await;
}

both_backends!(
    slow_clients_are_cut_off,
    clients_that_stop_reading_are_cut_off,
    one_address_cannot_take_every_connection
);
