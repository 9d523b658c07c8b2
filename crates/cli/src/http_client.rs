//! A minimal HTTP/1.1 client on hyper and rustls (aws-lc-rs), one connection per
//! request: what webhook deliveries need, and nothing that changes how other crates'
//! HTTP clients are built. Never follows redirects.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use portcullis_core::outbound::{OutboundPolicy, REFUSED, Reach};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A response: status, headers, body.
pub type Answer = (StatusCode, HeaderMap, Bytes);

/// Sends one request to `url` (http or https, verified against `tls`'s roots), at an
/// address `policy` permits for `reach`: the host is looked up once, refused if any of
/// its addresses is not permitted, and the connection made to an address checked (no
/// second lookup can lead elsewhere). With `read_body`, the answer's body is read, up to
/// that many bytes (a longer one is an error); without, the answer comes with an empty
/// body, not waited for.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    tls: &Arc<rustls::ClientConfig>,
    policy: &OutboundPolicy,
    reach: Reach,
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
    let tcp = connect(policy, reach, url, &host, port)
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

/// A connection to `host`'s first address that answers, all of them checked first.
async fn connect(
    policy: &OutboundPolicy,
    reach: Reach,
    url: &url::Url,
    host: &str,
    port: u16,
) -> Result<TcpStream, String> {
    if let Some(why) = policy.refuses_host(reach, url) {
        return Err(format!("{REFUSED}: {why}"));
    }
    let addresses = lookup(&PUBLIC_LOOKUPS, reach, host, port).await?;
    check_addresses(policy, reach, host, &addresses)?;
    let mut last = format!("{host} has no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Lookups of the hosts self-registered clients named. A lookup runs on the blocking pool
/// and is not cancelled with its request (the resolver gives up in its own time), so a
/// client naming a host whose DNS server never answers would otherwise hold a blocking
/// thread per call. Here at most `slots` run at once, at most [`PER_HOST`] for one host
/// (others wait their turn, within their caller's time limit, holding no thread), and a
/// host whose lookup failed is not looked up again for [`FAILED_LOOKUP_MEMORY`] (calls
/// meanwhile fail at once, and are retried like any failure to connect). Operators' own
/// URLs, and address literals, are not counted. To keep the slots busy, an attacker needs
/// many clients on hosts that never answer, each holding at most two slots until its
/// lookups fail.
struct Lookups {
    slots: tokio::sync::Semaphore,
    /// The turns of each host being looked up (or waited for).
    hosts: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Until when a host whose lookup failed is not looked up, by host.
    failed: std::sync::Mutex<BTreeMap<String, Instant>>,
}

impl Lookups {
    const fn new(slots: usize) -> Self {
        Self {
            slots: tokio::sync::Semaphore::const_new(slots),
            hosts: std::sync::Mutex::new(BTreeMap::new()),
            failed: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Why `host` is not looked up now: its last lookup failed a moment ago.
    fn failed_recently(&self, host: &str) -> Option<String> {
        let now = Instant::now();
        let mut failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match failed.get(host) {
            Some(until) if *until > now => Some("its last lookup failed less than a minute ago".into()),
            Some(_) => {
                failed.remove(host);
                None
            }
            None => None,
        }
    }

    /// Waits for a turn to look `host` up and a slot; the slot is held until the returned
    /// guard drops (when the resolver has returned).
    async fn begin(&'static self, host: &str) -> Result<Running, String> {
        if let Some(why) = self.failed_recently(host) {
            return Err(why);
        }
        let turns = {
            let mut hosts = self.hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if hosts.len() >= MAX_REMEMBERED_HOSTS {
                hosts.retain(|_, turns| Arc::strong_count(turns) > 1);
            }
            Arc::clone(
                hosts
                    .entry(host.to_owned())
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_HOST))),
            )
        };
        let turn = turns.acquire_owned().await.map_err(|e| e.to_string())?;
        // Another lookup of it may have failed meanwhile.
        if let Some(why) = self.failed_recently(host) {
            return Err(why);
        }
        let slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        Ok(Running {
            lookups: self,
            host: host.to_owned(),
            _turn: turn,
            _slot: slot,
        })
    }

    /// Remembers that `host` could not be looked up.
    fn failed(&self, host: &str) {
        let now = Instant::now();
        let mut failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failed.len() >= MAX_REMEMBERED_HOSTS {
            failed.retain(|_, until| *until > now);
        }
        if failed.len() < MAX_REMEMBERED_HOSTS {
            failed.insert(host.to_owned(), now + FAILED_LOOKUP_MEMORY);
        }
    }
}

/// A lookup under way: its host's turn and its slot.
struct Running {
    lookups: &'static Lookups,
    host: String,
    _turn: tokio::sync::OwnedSemaphorePermit,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

const MAX_PUBLIC_LOOKUPS: usize = 32;
const PER_HOST: usize = 2;
const FAILED_LOOKUP_MEMORY: Duration = Duration::from_secs(60);
const MAX_REMEMBERED_HOSTS: usize = 4096;
static PUBLIC_LOOKUPS: Lookups = Lookups::new(MAX_PUBLIC_LOOKUPS);

/// `host`'s addresses. For [`Reach::Public`], within the bounds of `lookups`; an address
/// literal is its own address, looked up by nobody.
async fn lookup(lookups: &'static Lookups, reach: Reach, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let failed = |e: &dyn std::fmt::Display| format!("cannot look up {host}: {e}");
    if reach == Reach::Any {
        return Ok(tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| failed(&e))?
            .collect());
    }
    let key = host.to_ascii_lowercase();
    let running = lookups.begin(&key).await.map_err(|e| failed(&e))?;
    let found = tokio::task::spawn_blocking(move || {
        let found: std::io::Result<Vec<SocketAddr>> =
            std::net::ToSocketAddrs::to_socket_addrs(&(running.host.as_str(), port)).map(Iterator::collect);
        if found.is_err() {
            running.lookups.failed(&running.host);
        }
        found
    })
    .await
    .map_err(|e| failed(&e))?;
    found.map_err(|e| failed(&e))
}

/// Whether `policy` permits each of the addresses `host` resolved to for `reach`: one it
/// does not is enough to refuse the host (a name that leads inside the network as well
/// as outside is not trusted to lead outside).
fn check_addresses(policy: &OutboundPolicy, reach: Reach, host: &str, addresses: &[SocketAddr]) -> Result<(), String> {
    match addresses.iter().find(|a| !policy.permits(reach, a.ip())) {
        Some(refused) => Err(format!(
            "{REFUSED}: {host} leads to {}, which is not a public address",
            refused.ip()
        )),
        None => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_name_leading_to_one_address_that_is_not_public_is_refused() {
        let policy = OutboundPolicy::default();
        let public = addresses(&["93.184.215.14:443", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443"]);
        assert_eq!(check_addresses(&policy, Reach::Public, "rp.example", &public), Ok(()));
        let mixed = addresses(&["93.184.215.14:443", "10.0.0.7:443"]);
        let e = check_addresses(&policy, Reach::Public, "rp.example", &mixed).unwrap_err();
        assert!(e.contains("rp.example leads to 10.0.0.7"), "{e}");
        let metadata = addresses(&["[::ffff:169.254.169.254]:80"]);
        assert!(check_addresses(&policy, Reach::Public, "rebound.example", &metadata).is_err());
        assert_eq!(check_addresses(&policy, Reach::Any, "rp.example", &mixed), Ok(()));
        let allowed = OutboundPolicy {
            allowed_networks: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert_eq!(check_addresses(&allowed, Reach::Public, "rp.example", &mixed), Ok(()));
    }

    /// Lookups for self-registered clients' hosts take a slot each while they run, at
    /// most two per host; others wait their turn; a host that failed is not looked up
    /// again for a while; operators' lookups and address literals are not counted.
    #[tokio::test]
    async fn lookups_of_clients_hosts_are_bounded() {
        static LOOKUPS: Lookups = Lookups::new(3);
        let waits = |host: &'static str| async move {
            tokio::time::timeout(Duration::from_millis(50), LOOKUPS.begin(host))
                .await
                .is_err()
        };
        let found = lookup(&LOOKUPS, Reach::Public, "localhost", 80).await.unwrap();
        assert!(
            found.iter().all(|a| a.ip().is_loopback() && a.port() == 80),
            "{found:?}"
        );
        assert_eq!(LOOKUPS.slots.available_permits(), 3, "given back");
        let (a, b) = (
            LOOKUPS.begin("slow.example").await.unwrap(),
            LOOKUPS.begin("slow.example").await.unwrap(),
        );
        assert!(waits("slow.example").await, "a third lookup of one host waits its turn");
        let c = LOOKUPS.begin("other.example").await.unwrap();
        assert!(waits("third.example").await, "no slot is free");
        assert!(lookup(&LOOKUPS, Reach::Any, "localhost", 80).await.is_ok());
        assert_eq!(
            lookup(&LOOKUPS, Reach::Public, "127.0.0.1", 80).await.unwrap(),
            ["127.0.0.1:80".parse().unwrap()]
        );
        drop((a, b, c));
        assert!(lookup(&LOOKUPS, Reach::Public, "localhost", 80).await.is_ok());
        // A name that does not resolve is not looked up again at once.
        let e = lookup(&LOOKUPS, Reach::Public, "portcullis-test.invalid", 80)
            .await
            .unwrap_err();
        assert!(!e.contains("less than a minute ago"), "{e}");
        let e = lookup(&LOOKUPS, Reach::Public, "portcullis-test.invalid", 80)
            .await
            .unwrap_err();
        assert!(e.contains("less than a minute ago"), "{e}");
        assert_eq!(LOOKUPS.slots.available_permits(), 3);
    }

    /// A listener on loopback that answers `200` to each connection: its URL and how
    /// many connections it took.
    async fn answering() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/x", listener.local_addr().unwrap().port());
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&taken);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]")
                    .await;
            }
        });
        (url, taken)
    }

    #[tokio::test]
    async fn requests_reach_loopback_only_when_the_policy_permits_it() {
        let tls = system_roots().unwrap();
        let (url, taken) = answering().await;
        let url = url::Url::parse(&url).unwrap();
        let get = |policy: OutboundPolicy, reach: Reach, url: url::Url| {
            let tls = Arc::clone(&tls);
            async move { send(&tls, &policy, reach, Method::GET, &url, &[], Bytes::new(), Some(64)).await }
        };
        let e = get(OutboundPolicy::default(), Reach::Public, url.clone())
            .await
            .unwrap_err();
        assert!(e.contains("not a public address"), "{e}");
        let mut by_name = url.clone();
        by_name.set_host(Some("localhost")).unwrap();
        let e = get(OutboundPolicy::default(), Reach::Public, by_name)
            .await
            .unwrap_err();
        assert!(e.contains("localhost is this machine"), "{e}");
        assert_eq!(
            taken.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "no connection was made"
        );

        let (status, _, body) = get(OutboundPolicy::default(), Reach::Any, url.clone()).await.unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"[]"[..]));
        let loopback = OutboundPolicy {
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
        };
        let (status, _, _) = get(loopback, Reach::Public, url).await.unwrap();
        assert_eq!(status.as_u16(), 200);
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
