//! Wiring: open the store, load keys, compose the routers, serve both listeners with
//! graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use portcullis_core::crypto::Kek;
use portcullis_core::store_codec::Migrated;
use portcullis_core::{Portcullis, Store, SystemClock};
use portcullis_store_postgres::PgStore;
use portcullis_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{KekSource, Settings};
use crate::conn_limit::Surface;

/// Opens the configured store and applies migrations; the log says what they did when
/// they did something.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_and_migrate(settings).await?.0)
}

/// `open_store`, and what the migrations did.
pub async fn open_and_migrate(settings: &Settings) -> anyhow::Result<(Arc<dyn Store>, Migrated)> {
    let (store, migrated): (Arc<dyn Store>, Migrated) = if settings.is_postgres() {
        let store = PgStore::connect(&settings.database_url)
            .await
            .context("database_url: cannot connect to PostgreSQL")?;
        let migrated = store.migrate().await.context("migrating the PostgreSQL database")?;
        (Arc::new(store), migrated)
    } else {
        if let Some(dir) = sqlite_parent_dir(&settings.database_url) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating the data directory {}", dir.display()))?;
        }
        let store = SqliteStore::connect(&settings.database_url)
            .await
            .context("database_url: cannot open SQLite")?;
        let migrated = store.migrate().await.context("migrating the SQLite database")?;
        (Arc::new(store), migrated)
    };
    if migrated.applied > 0 {
        tracing::info!(applied = migrated.applied, before = ?migrated.before, after = ?migrated.after,
            "{}", migrated.describe());
    }
    Ok((store, migrated))
}

/// The file of a SQLite `url`, or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<&Path> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    Some(Path::new(path))
}

fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    sqlite_file(url)?
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// Loads the key-encryption key, with the keys it replaces (`previous_keks`) for
/// decrypting only.
pub fn load_kek(settings: &Settings) -> anyhow::Result<Kek> {
    with_previous(settings, load_current_kek(&settings.kek)?)
}

/// `kek` with the settings' `previous_keks`.
fn with_previous(settings: &Settings, kek: Kek) -> anyhow::Result<Kek> {
    let mut previous = Vec::new();
    for text in &settings.previous_keks {
        let old = Kek::parse(text).map_err(|e| anyhow::anyhow!("previous_keks: {e}"))?;
        if old.same_current(&kek) {
            bail!("previous_keks: holds the current key-encryption key; list only the keys it replaces");
        }
        previous.push(old);
    }
    Ok(kek.with_previous(previous))
}

/// The key-encryption key itself; for the embedded default, generated on first start.
fn load_current_kek(source: &KekSource) -> anyhow::Result<Kek> {
    match source {
        KekSource::Inline(k) => Kek::parse(k).map_err(|e| anyhow::anyhow!("kek: {e}")),
        KekSource::File(p) => {
            warn_if_shared(p);
            let text = std::fs::read_to_string(p).with_context(|| format!("kek_file: cannot read {}", p.display()))?;
            Kek::parse(&text).map_err(|e| anyhow::anyhow!("kek_file {}: {e}", p.display()))
        }
        // Configuration lets only `migrate` through without a key, and it loads none.
        KekSource::Absent => bail!("kek: not set; with PostgreSQL set PORTCULLIS_KEK or kek_file"),
        KekSource::Generated(p) => {
            if p.exists() {
                warn_if_shared(p);
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                return Kek::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
            }
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let kek = Kek::generate()?;
            write_private(p, &kek.to_text())?;
            tracing::warn!(
                path = %p.display(),
                "generated a key-encryption key in the data directory; production should supply its own (PORTCULLIS_KEK or kek_file) and keep it out of the data directory's backups"
            );
            Ok(kek)
        }
    }
}

/// Warns when other users may read the key-encryption key's file: with it and a copy of
/// the database, they have the private signing keys.
#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the key-encryption key's file is accessible to other users; with it, the signing keys in the database can be read (chmod 600 it)"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("creating {}", path.display()))
}

/// The key-encryption key for `store`. The embedded default's key file is generated only
/// for a database that holds nothing sealed yet: next to a database restored without it
/// (it is kept out of the database's backups), a new key could read nothing, and the
/// server would fail with a bare "wrong key" while a stray file now stood where the real
/// one must be restored. A command that only reads (`write_new` false) writes no file and
/// uses a key of the moment, which has nothing to open.
async fn kek_for(settings: &Settings, store: &dyn Store, write_new: bool) -> anyhow::Result<Kek> {
    let KekSource::Generated(path) = &settings.kek else {
        return load_kek(settings);
    };
    if path.exists() {
        return load_kek(settings);
    }
    let sealed = !store.list_keys().await?.is_empty() || !store.list_server_secrets().await?.is_empty();
    if sealed {
        bail!(
            "the key-encryption key {} is missing, but the database holds keys sealed with it: restore that \
             file (kept apart from the database's backups), or set kek / kek_file / PORTCULLIS_KEK to it; a new \
             key could not read them",
            path.display()
        );
    }
    if write_new {
        return load_kek(settings);
    }
    with_previous(settings, Kek::generate()?)
}

/// Opens the store and builds the use-case context (generating keys on first start).
pub async fn start_core(settings: &Settings) -> anyhow::Result<Arc<Portcullis>> {
    let store = open_store(settings).await?;
    let kek = kek_for(settings, store.as_ref(), true).await?;
    let core = Portcullis::start(store, Arc::new(SystemClock), settings.core.clone(), kek)
        .await
        .context("loading the signing keys")?;
    Ok(core)
}

/// Opens the store and builds the use-case context for a command that only reads: the
/// signing keys there are loaded, none is generated.
pub async fn start_core_read_only(settings: &Settings) -> anyhow::Result<Arc<Portcullis>> {
    // Run from another directory, a listing would otherwise create an empty database (and
    // a key-encryption key) there and list nothing, as if the server had no data.
    if !settings.is_postgres()
        && let Some(file) = sqlite_file(&settings.database_url)
        && !file.exists()
    {
        bail!(
            "database_url: there is no database at {} (a listing creates none): run the command \
             where `serve` runs, with its --config (relative paths in it are read from the directory \
             the command runs in)",
            file.display()
        );
    }
    let store = open_store(settings).await?;
    let kek = kek_for(settings, store.as_ref(), false).await?;
    let core = Portcullis::start_read_only(store, Arc::new(SystemClock), settings.core.clone(), kek)
        .await
        .context("loading the signing keys")?;
    Ok(core)
}

/// The public surface: protocol endpoints and the login/consent pages.
pub fn public_router(core: &Arc<Portcullis>) -> Router {
    let secure_cookies = core.settings.issuer.starts_with("https://");
    // The pages run to completion (below); the protocol endpoints do it only where a
    // use case writes (`/token` for codes and refresh tokens, `/revoke`), because a task
    // hand-off per request cost discovery and `client_credentials` 10-15% of their
    // throughput on 2 cores.
    portcullis_server::router(Arc::clone(core)).merge(
        portcullis_web::public_router(Arc::clone(core), portcullis_web::WebConfig { secure_cookies })
            .layer(middleware::from_fn(run_to_completion)),
    )
}

/// The admin surface, on its own listener (DESIGN §1).
pub fn admin_router(core: &Arc<Portcullis>) -> Router {
    // The admin UI and admin API (issue 4), beside the health endpoints.
    let secure_cookies = core.settings.issuer.starts_with("https://");
    portcullis_server::health_router(Arc::clone(core))
        .merge(portcullis_web::admin_router(
            Arc::clone(core),
            portcullis_web::WebConfig { secure_cookies },
        ))
        .layer(middleware::from_fn(run_to_completion))
}

/// Runs each page request's handler on its own task, to its end, even when the client
/// goes away. A request dropped halfway through a store transaction (wrk closing its
/// connections at the end of a run was enough) could leave sqlx's transaction
/// bookkeeping of the SQLite writer connection wrong, after which every write failed
/// with "begin_with at non-zero transaction depth" until a restart. Finishing the use
/// case also means a code or refresh token is never left half-redeemed by a disconnect.
///
/// The body is read here first, in the request's own future: read inside the spawned
/// task, a body that never finished would keep that task, and its connection, alive after
/// `request_timeout` dropped this future (slowloris), and stop a graceful shutdown.
async fn run_to_completion(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, PAGE_BODY_LIMIT).await {
        Ok(bytes) => axum::body::Body::from(bytes),
        // The admin API answers in its own JSON.
        Err(_) if parts.uri.path().starts_with(portcullis_web::admin::api::PREFIX) => {
            return portcullis_web::admin::api::body_too_large();
        }
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large or could not be read.",
            )
                .into_response();
        }
    };
    let request = Request::from_parts(parts, body);
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a request handler did not finish");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The largest body a page or admin request may have (axum's default for extractors).
const PAGE_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A running server: its addresses, its context, and how to stop it.
pub struct Running {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub core: Arc<Portcullis>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Serves on already-bound listeners (tests bind port 0 first to learn the issuer).
pub async fn serve_on(settings: &Settings, public: TcpListener, admin: TcpListener) -> anyhow::Result<Running> {
    // Before anything is written: a bad certificate found after migrations and the
    // operator's bootstrap would print a password nobody can use, then never again.
    let tls = settings.tls.as_ref().map(crate::tls::server_config).transpose()?;
    let core = start_core(settings).await?;
    if let Some((username, password)) = core.bootstrap_admin().await? {
        // The one time this password exists in clear: the operator's console.
        out!(
            "\nNo operator account existed, so one was created for the admin surface ({}).\n  username: {username}\n  password: {}\nThis password is shown only once; store it now.\n",
            listener_url(admin.local_addr()?, tls.is_some()),
            password.expose()
        );
    }
    if core.sealed_with_previous_kek > 0 {
        tracing::warn!(
            pending = core.sealed_with_previous_kek,
            "secrets sealed with a key in previous_keks: once every node runs with the new key as kek and the old one \
             in previous_keks (step 2), run `portcullis kek rewrap` with that configuration, then remove \
             previous_keks; on a node still at step 1 (old kek), give it step 2's configuration first: a rewrap \
             run with the old key as kek seals everything with the old key again"
        );
    }
    if core.settings.issuer.starts_with("http://") {
        tracing::warn!(issuer = %core.settings.issuer, "the issuer is http: this is for development only; use https in production");
    }
    let maintenance = core.spawn_maintenance();
    let https = Arc::new(crate::webhook_sender::HttpsSender::new(core.settings.outbound.clone())?);
    core.remote_jwks.set_fetcher(Arc::clone(&https) as _);
    let logouts = core.spawn_logout_worker(Arc::clone(&https) as _);
    let webhooks = core.spawn_webhook_worker(https);
    let (tx, rx) = watch::channel(false);
    let public_addr = public.local_addr()?;
    let admin_addr = admin.local_addr()?;
    // One limit for both listeners: they draw on the process's one set of descriptors.
    let limit = crate::conn_limit::ConnectionLimit::new(
        settings.max_connections_per_address,
        crate::conn_limit::total_for_descriptors(),
        core.settings.defense.trusted_proxies.clone(),
    );
    let mut tasks = Vec::new();
    let listeners = [
        (public, public_router(&core), Surface::Public),
        (admin, admin_router(&core), Surface::Admin),
    ];
    for (listener, router, surface) in listeners {
        let mut rx = rx.clone();
        let tls = tls.clone();
        let gate = limit.gate(surface);
        let timeouts = settings.timeouts;
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            match tls {
                Some(config) => {
                    let tls = crate::tls::TlsListener::new(listener, config, gate);
                    crate::serve::serve(tls, router, timeouts, shutdown).await;
                }
                None => {
                    let plain = crate::serve::Plain { listener, gate };
                    crate::serve::serve(plain, router, timeouts, shutdown).await;
                }
            }
        }));
    }
    let maint_abort = maintenance.abort_handle();
    let webhooks_abort = webhooks.abort_handle();
    let logouts_abort = logouts.abort_handle();
    let mut rx_m = rx.clone();
    tasks.push(tokio::spawn(async move {
        let _ = rx_m.wait_for(|stop| *stop).await;
        maint_abort.abort();
        webhooks_abort.abort();
        logouts_abort.abort();
    }));
    Ok(Running {
        public_addr,
        admin_addr,
        core,
        shutdown: tx,
        tasks,
    })
}

/// The base URL of a listener: both speak https when Portcullis terminates TLS.
pub fn listener_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// `portcullis serve`: binds the configured addresses and runs until SIGTERM, SIGINT
/// (Ctrl-C) or SIGHUP.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // First: until a handler is installed, these signals kill the process outright.
    let mut signals = ShutdownSignals::install()?;
    // Before binding: the second bind would fail with a bare "Address already in use".
    if crate::config::listeners_collide(settings.public_addr, settings.admin_addr) {
        bail!("admin_addr: must differ from public_addr");
    }
    let public = TcpListener::bind(settings.public_addr)
        .await
        .with_context(|| format!("public_addr: cannot listen on {}", settings.public_addr))?;
    let admin = TcpListener::bind(settings.admin_addr)
        .await
        .with_context(|| format!("admin_addr: cannot listen on {}", settings.admin_addr))?;
    let running = serve_on(&settings, public, admin).await?;
    tracing::info!(public = %running.public_addr, admin = %running.admin_addr, issuer = %running.core.settings.issuer, "portcullis is serving");
    let signal = signals.recv().await;
    tracing::info!(
        signal,
        "shutting down: finishing in-flight requests (a second signal ends them at once)"
    );
    let core = Arc::clone(&running.core);
    // Requests may take up to `request_timeout` to finish, longer than a supervisor's
    // grace period (Kubernetes': 30 s) before it kills the process and the audit events
    // still queued: a second signal ends them and goes on to the flush.
    tokio::select! {
        () = running.stop() => {}
        signal = signals.recv() => {
            tracing::warn!(signal, "second signal: ending the requests still open");
        }
    }
    core.audit.flush().await;
    tracing::info!("stopped");
    Ok(())
}

/// The signals that end the server gracefully (in-flight requests finish, the audit
/// queue is flushed). SIGHUP is one of them: there is no configuration to reload, and
/// its default action (a terminal closing, `systemctl kill -s HUP`, a supervisor's
/// reload) killed the process at once, losing queued audit events.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    #[cfg(unix)]
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let handler =
            |kind: SignalKind, name: &str| signal(kind).with_context(|| format!("cannot install the {name} handler"));
        Ok(Self {
            terminate: handler(SignalKind::terminate(), "SIGTERM")?,
            interrupt: handler(SignalKind::interrupt(), "SIGINT")?,
            hangup: handler(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> anyhow::Result<Self> {
        Ok(Self {})
    }

    /// Waits for the next of the signals; its name.
    #[cfg(unix)]
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
