//! The simulator's HTTP(S) front: listener, optional TLS, the router of every part, request
//! statistics, added latency and the API-level faults.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::faults::{FaultKind, Faults};
use super::{SharedState, SimAccount, SimConfig, SimState, SimUrls};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

/// Marker placed in a response's extensions: the connection is dropped instead of answering.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Request counters for `/_sim/stats`.
#[derive(Default)]
pub struct Stats {
    total: AtomicU64,
    cdn_bytes: AtomicU64,
    by_path: Mutex<HashMap<String, u64>>,
}

impl Stats {
    /// Count one request. CDN paths are all counted under `/B` (each URL is unique).
    pub fn record(&self, path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let key = stats_key(path);
        let mut map = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(key.to_string()).or_insert(0) += 1;
    }

    /// Count bytes of CDN bodies actually sent.
    pub fn add_cdn_bytes(&self, n: u64) {
        self.cdn_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Requests counted for one path key.
    pub fn count(&self, path: &str) -> u64 {
        let map = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        map.get(stats_key(path)).copied().unwrap_or(0)
    }

    /// Total requests, excluding the `/_sim/` admin API.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// CloudKit (`/database/...`) requests.
    pub fn cloudkit_requests(&self) -> u64 {
        let map = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(k, _)| k.starts_with("/database/"))
            .map(|(_, v)| v)
            .sum()
    }

    /// CDN requests.
    pub fn cdn_requests(&self) -> u64 {
        self.count("/B")
    }

    /// Bytes of CDN bodies sent.
    pub fn cdn_bytes(&self) -> u64 {
        self.cdn_bytes.load(Ordering::Relaxed)
    }

    /// The `/_sim/stats` document.
    pub fn snapshot(&self) -> serde_json::Value {
        let map = self
            .by_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let cloudkit: u64 = map
            .iter()
            .filter(|(k, _)| k.starts_with("/database/"))
            .map(|(_, v)| v)
            .sum();
        serde_json::json!({
            "total": self.total(),
            "by_path": map,
            "cdn_bytes": self.cdn_bytes(),
            "cdn_requests": map.get("/B").copied().unwrap_or(0),
            "cloudkit_requests": cloudkit,
        })
    }
}

fn stats_key(path: &str) -> &str {
    if path.starts_with("/B/") { "/B" } else { path }
}

/// True for paths of Apple's API (idmsa, setup, CloudKit), as opposed to the CDN and `/_sim/`.
fn is_api_path(path: &str) -> bool {
    !path.starts_with("/B/") && !path.starts_with("/_sim")
}

/// A running simulator, serving on a task of the current tokio runtime.
pub struct Sim {
    state: SharedState,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sim {
    /// Generate the library, bind the listener and start serving.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(SimError::Config(
                    "--tls-cert and --tls-key go together".into(),
                ));
            }
        };
        if !(config.size_scale > 0.0 && config.size_scale.is_finite()) {
            return Err(SimError::Config(
                "--size-scale must be a positive number".into(),
            ));
        }
        let faults = Faults::new(config.seed, &config.faults).map_err(SimError::Config)?;
        let std_listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let listener = TcpListener::from_std(std_listener).map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;

        let account = SimAccount::from_config(&config);
        let secret = super::seeded_hash(config.seed, b"url-signing-secret");
        let urls = SimUrls::new(addr, tls.is_some(), config.apple_hosts);
        let started = std::time::Instant::now();
        let library = super::library::LibraryState::generate(&config);
        tracing::info!(
            assets = config.assets,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "library generated"
        );
        let auth = super::auth::AuthState::new(&config, &account);
        let state = Arc::new(SimState {
            config,
            urls,
            account,
            secret,
            auth,
            library,
            faults,
            stats: Stats::default(),
        });

        let app = router(state.clone());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, tls, app, shutdown.clone()));
        tracing::info!(endpoint = %state.urls.endpoint, "simulator listening");
        Ok(Sim {
            state,
            addr,
            shutdown,
            task,
        })
    }

    /// Where the simulator listens, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.state.urls.endpoint
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulated account.
    pub fn account(&self) -> &SimAccount {
        &self.state.account
    }

    /// Shared state, for tests that mutate the library or arm faults directly.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// The JSON line printed when the simulator is ready.
    pub fn ready_line(&self) -> String {
        let a = &self.state.account;
        let mut line = serde_json::json!({
            "endpoint": self.endpoint(),
            "username": a.username,
            "password": a.password,
        });
        if self.state.config.two_factor {
            line["two_factor_code"] = a.two_factor_code.clone().into();
        }
        line.to_string()
    }

    /// Stop accepting, drop open connections and wait for the server task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// A simulator running on its own thread and runtime, for synchronous tests and tools.
pub struct BackgroundSim {
    endpoint: String,
    state: SharedState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundSim {
    /// Start a simulator on a dedicated thread; returns once it is listening.
    pub fn start(config: SimConfig) -> Result<BackgroundSim, SimError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(SimError::Config(format!("tokio runtime: {e}"))));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Sim::start(config).await {
                        Ok(sim) => {
                            let _ = ready_tx
                                .send(Ok((sim.endpoint().to_string(), sim.state().clone())));
                            let _ = stop_rx.await;
                            sim.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| SimError::Config(format!("cannot start simulator thread: {e}")))?;
        let (endpoint, state) = ready_rx
            .recv()
            .map_err(|_| SimError::Config("simulator thread died during start".into()))??;
        Ok(BackgroundSim {
            endpoint,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Where the simulator listens.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The simulated account.
    pub fn account(&self) -> &SimAccount {
        &self.state.account
    }

    /// Shared state, for tests that mutate the library or arm faults directly.
    pub fn state(&self) -> &SharedState {
        &self.state
    }
}

impl Drop for BackgroundSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every route of the simulator behind the front middleware.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .merge(super::auth::router())
        .merge(super::cloudkit::router())
        .merge(super::cdn::router())
        .merge(super::admin::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    tracing::warn!(method = %req.method(), path = %req.uri().path(), "rejected: no such endpoint");
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        "<html><body><h1>404 Not Found</h1></body></html>",
    )
        .into_response()
}

/// Statistics, latency and API faults, in front of every handler.
async fn front(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_sim") {
        return next.run(req).await;
    }
    state.stats.record(&path);
    if state.config.latency > 0 {
        tokio::time::sleep(Duration::from_millis(state.config.latency)).await;
    }
    if !is_api_path(&path) {
        return next.run(req).await;
    }
    let faults = &state.faults;
    if faults.fire(FaultKind::ApiReset) {
        let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        resp.extensions_mut().insert(DropConnection);
        return resp;
    }
    if faults.fire(FaultKind::Api503) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/html;charset=UTF-8"),
                (header::RETRY_AFTER, "1"),
            ],
            "Service Temporary Unavailable",
        )
            .into_response();
    }
    if faults.fire(FaultKind::Api429) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::CONTENT_TYPE, "application/json;charset=UTF-8"),
                (header::RETRY_AFTER, "1"),
            ],
            r#"{"serverErrorCode":"THROTTLED","reason":"Too many requests"}"#,
        )
            .into_response();
    }
    if path.starts_with("/database/") && faults.fire(FaultKind::SessionExpire) {
        state.auth.expire_web_sessions();
    }
    let malformed = faults.fire(FaultKind::ApiMalformed);
    let short_page = path.ends_with("/records/query") && faults.fire(FaultKind::ApiShortPage);
    let resp = next.run(req).await;
    if malformed {
        return truncate_body(resp).await;
    }
    if short_page {
        return halve_records(resp).await;
    }
    resp
}

/// Keep the first half of an answer's `records` (still well-formed JSON).
async fn halve_records(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let Ok(mut answer) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(records) = answer
        .get_mut("records")
        .and_then(serde_json::Value::as_array_mut)
    {
        // A one-record answer (an indexing state, a lookup) is left whole.
        if records.len() >= 2 {
            let keep = records.len() / 2;
            records.truncate(keep);
        }
    }
    let text = answer.to_string();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    Response::from_parts(parts, Body::from(text))
}

/// Keep the status and headers, cut the body in half (a truncated JSON document).
async fn truncate_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(cut.len()));
    Response::from_parts(parts, Body::from(cut))
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, SimError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| SimError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| SimError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(SimError::Tls(format!(
            "{}: no certificate in file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| SimError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| SimError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The error a connection's service returns to make hyper drop the connection.
#[derive(Debug)]
struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (fault)")
    }
}

impl std::error::Error for DroppedOnPurpose {}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve_connection(TokioIo::new(stream), app).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
                None => serve_connection(TokioIo::new(tcp), app).await,
            }
        });
    }
    connections.shutdown().await;
}

async fn serve_connection<I>(io: I, app: Router)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut app = app.clone();
        async move {
            let resp = app
                .call(req.map(Body::new))
                .await
                .unwrap_or_else(|never| match never {});
            if resp.extensions().get::<DropConnection>().is_some() {
                Err(DroppedOnPurpose)
            } else {
                Ok(resp)
            }
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
