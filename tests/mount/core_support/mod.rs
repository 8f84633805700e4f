//! Shared by the mount tests: a small local CDN with deterministic file bytes, fault knobs and
//! request counters, plus a `FileLocator` over it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use icloudpd_rs::cache::{BlockCache, CacheConfig, ContentKey};
use icloudpd_rs::fetch::{FetchConfig, FetchError, UrlProvider, backoff::Backoff};
use icloudpd_rs::mount::{
    BlockFetcher, CachedSource, Entry, FetcherConfig, FileId, FileLocator, FileSpec, ReadError,
};

/// The first bytes of every test file: a JPEG SOI so the head check passes.
const MAGIC: [u8; 4] = [0xFF, 0xD8, 0xFF, 0xE0];

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Bytes `[offset, offset + len)` of test file `id`.
pub fn content_range(id: u64, offset: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    let end = offset + len;
    let mut pos = offset;
    while pos < end {
        let word = splitmix(id.wrapping_mul(0x1000_0000_01B3) ^ (pos / 8));
        let bytes = word.to_le_bytes();
        let start = (pos % 8) as usize;
        let take = ((end - pos) as usize).min(8 - start);
        out.extend_from_slice(&bytes[start..start + take]);
        pos += take as u64;
    }
    for (i, b) in MAGIC.iter().enumerate() {
        let p = i as u64;
        if p >= offset && p < end {
            out[(p - offset) as usize] = *b;
        }
    }
    out
}

/// All bytes of test file `id`.
pub fn content(id: u64, size: u64) -> Vec<u8> {
    content_range(id, 0, size)
}

/// Misbehaviour of the CDN, each a counter of requests to spoil (or a switch).
#[derive(Default)]
pub struct Faults {
    /// Requests that send part of the body, then cut the connection.
    pub reset: AtomicU32,
    /// Requests that send part of the body, then stall (far longer than any test bound).
    pub stall: AtomicU32,
    /// Requests answered 503 with `Retry-After: 0`.
    pub unavailable: AtomicU32,
    /// URLs signed below this generation are refused with 403 (expired).
    pub min_signature: AtomicU64,
    /// Delay before answering each request, in milliseconds.
    pub latency_ms: AtomicU64,
}

pub struct CdnState {
    sizes: RwLock<HashMap<u64, u64>>,
    pub faults: Faults,
    /// Requests received.
    pub requests: AtomicU64,
    /// Body bytes answered (full, before any fault cut).
    pub bytes: AtomicU64,
    /// Requests per file id.
    per_file: Mutex<HashMap<u64, u64>>,
}

/// A local CDN on its own thread and runtime (usable from sync and async tests).
pub struct TestCdn {
    pub base: String,
    pub state: Arc<CdnState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn parse_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let (s, e) = v.strip_prefix("bytes=")?.split_once('-')?;
    Some((s.parse().ok()?, e.parse().ok()))
}

async fn serve(
    State(state): State<Arc<CdnState>>,
    UrlPath(id): UrlPath<u64>,
    Query(q): Query<HashMap<String, u64>>,
    headers: HeaderMap,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    *state.per_file.lock().unwrap().entry(id).or_insert(0) += 1;
    let latency = state.faults.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let sig = q.get("sig").copied().unwrap_or(0);
    if sig < state.faults.min_signature.load(Ordering::SeqCst) {
        return StatusCode::FORBIDDEN.into_response();
    }
    if take(&state.faults.unavailable) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "0")],
            "busy",
        )
            .into_response();
    }
    let Some(size) = state.sizes.read().unwrap().get(&id).copied() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (start, end, status) = match parse_range(&headers) {
        Some((s, e)) if s < size => (
            s,
            e.unwrap_or(size - 1).min(size - 1),
            StatusCode::PARTIAL_CONTENT,
        ),
        Some(_) => return StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
        None => (0, size.saturating_sub(1), StatusCode::OK),
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    state.bytes.fetch_add(len, Ordering::SeqCst);
    let body = content_range(id, start, len);
    let builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_LENGTH, len);
    let builder = if status == StatusCode::PARTIAL_CONTENT {
        builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"))
    } else {
        builder
    };
    let half = (body.len() / 2).max(1).min(body.len());
    if take(&state.faults.reset) {
        let head = bytes::Bytes::from(body[..half].to_vec());
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) })
            .chain(futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::other("connection reset"))
            }));
        return builder.body(Body::from_stream(stream)).unwrap();
    }
    if take(&state.faults.stall) {
        let head = bytes::Bytes::from(body[..half].to_vec());
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) })
            .chain(futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Err(std::io::Error::other("late"))
            }));
        return builder.body(Body::from_stream(stream)).unwrap();
    }
    builder.body(Body::from(body)).unwrap()
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl TestCdn {
    /// Serve files `id -> size`.
    pub fn start(files: impl IntoIterator<Item = (u64, u64)>) -> TestCdn {
        let state = Arc::new(CdnState {
            sizes: RwLock::new(files.into_iter().collect()),
            faults: Faults::default(),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            per_file: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/f/{id}", get(serve))
            .with_state(state.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
            rt.shutdown_background();
        });
        let addr = addr_rx.recv().unwrap();
        TestCdn {
            base: format!("http://{addr}"),
            state,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }

    pub fn requests_for(&self, id: u64) -> u64 {
        self.state
            .per_file
            .lock()
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for TestCdn {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where URLs point and which signature they carry; tests flip these to simulate a dead network
/// (a closed port) and expired URLs.
pub struct UrlState {
    pub base: RwLock<String>,
    pub signature: AtomicU64,
    /// URL refreshes asked for.
    pub refreshes: AtomicU64,
    /// When set, `url()` fails (CloudKit unreachable).
    pub offline: AtomicBool,
}

impl UrlState {
    pub fn new(base: &str) -> Arc<UrlState> {
        Arc::new(UrlState {
            base: RwLock::new(base.to_string()),
            signature: AtomicU64::new(1),
            refreshes: AtomicU64::new(0),
            offline: AtomicBool::new(false),
        })
    }

    /// Point every URL at a port nobody listens on.
    pub fn go_offline(&self) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        *self.base.write().unwrap() = format!("http://{addr}");
    }
}

struct TestUrls {
    id: u64,
    state: Arc<UrlState>,
}

impl UrlProvider for TestUrls {
    fn url(&self, refresh: bool) -> BoxFuture<'_, Result<String, FetchError>> {
        if refresh {
            self.state.refreshes.fetch_add(1, Ordering::SeqCst);
            self.state.signature.fetch_add(1, Ordering::SeqCst);
        }
        let base = self.state.base.read().unwrap().clone();
        let sig = self.state.signature.load(Ordering::SeqCst);
        let id = self.id;
        Box::pin(async move { Ok(format!("{base}/f/{id}?sig={sig}")) })
    }
}

/// Locates test files: `FileId(id)` has size `sizes[id]`, optionally a mirrored copy.
pub struct TestLocator {
    pub sizes: HashMap<u64, u64>,
    pub local: Mutex<HashMap<u64, PathBuf>>,
    pub urls: Arc<UrlState>,
}

impl FileLocator for TestLocator {
    fn locate(&self, file: FileId) -> Result<FileSpec, ReadError> {
        let size = *self
            .sizes
            .get(&file.0)
            .ok_or_else(|| ReadError::Unavailable(file, "unknown test file".into()))?;
        Ok(FileSpec {
            content: ContentKey::new(&format!("checksum-{}", file.0), size),
            size,
            uti: "public.jpeg".into(),
            local: self.local.lock().unwrap().get(&file.0).cloned(),
            urls: Arc::new(TestUrls {
                id: file.0,
                state: self.urls.clone(),
            }),
        })
    }
}

/// Fetch settings for tests: quick retries, a short total bound.
pub fn fetcher_config(total: Duration) -> FetcherConfig {
    FetcherConfig {
        fetch: FetchConfig {
            max_attempts: 6,
            backoff: Backoff {
                base: Duration::from_millis(5),
                cap: Duration::from_millis(50),
                max_retry_after: Duration::from_millis(50),
            },
            stall_timeout: Duration::from_millis(500),
            ..FetchConfig::default()
        },
        total_timeout: total,
        ..FetcherConfig::default()
    }
}

/// Log to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn http() -> reqwest::Client {
    init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A cached source over `cdn` with a cache in `cache_dir`.
pub fn cached_source(
    sizes: &HashMap<u64, u64>,
    urls: Arc<UrlState>,
    cache_dir: &std::path::Path,
    cache_bytes: u64,
    cfg: FetcherConfig,
) -> (Arc<CachedSource<TestLocator>>, Arc<BlockFetcher>) {
    // A previous user of the directory may still be finishing (spawned cache inserts hold it).
    let mut tries = 0;
    let cache = loop {
        match BlockCache::open(&CacheConfig::new(cache_dir, cache_bytes)) {
            Ok(c) => break Arc::new(c),
            Err(icloudpd_rs::cache::CacheError::Locked { .. }) if tries < 500 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("cache: {e}"),
        }
    };
    let fetcher = BlockFetcher::new(http(), cache, cfg);
    let locator = TestLocator {
        sizes: sizes.clone(),
        local: Mutex::new(HashMap::new()),
        urls,
    };
    (
        Arc::new(CachedSource::new(locator, fetcher.clone())),
        fetcher,
    )
}

pub fn mtime(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// An entry for test file `id` at `path`.
pub fn entry(path: &str, id: u64, size: u64) -> Entry {
    Entry {
        path: path.into(),
        size,
        mtime: mtime(1_600_000_000 + id),
        file: FileId(id),
        inode_key: id,
        xattrs: Arc::new(
            [(
                "user.icloud.asset_id".to_string(),
                format!("ASSET-{id}").into_bytes(),
            )]
            .into(),
        ),
    }
}
