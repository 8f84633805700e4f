//! The download path against a small local CDN whose misbehaviour each test picks.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::BoxFuture;
use icloudpd_rs::fetch::{self, Download, FetchConfig, FetchError, FixedUrl, UrlProvider};
use sha2::{Digest, Sha256};

const SIZE: usize = 300_000;

fn content() -> Vec<u8> {
    let mut v: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
    v[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    v
}

#[derive(Clone, Default)]
struct Cdn {
    hits: Arc<AtomicU32>,
}

fn range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes=")?.split('-').next()?.parse().ok()
}

fn full(data: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        data,
    )
        .into_response()
}

fn partial(data: &[u8], start: u64) -> Response {
    let body = data[start as usize..].to_vec();
    let cr = format!("bytes {}-{}/{}", start, data.len() - 1, data.len());
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_RANGE, cr),
            (header::CONTENT_TYPE, "application/octet-stream".into()),
        ],
        body,
    )
        .into_response()
}

/// A body that sends `bytes` then fails (the connection is cut mid-body).
fn cut_after(data: Vec<u8>, total: usize) -> Response {
    let head = bytes::Bytes::from(data);
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(
        futures_util::stream::once(async {
            // Let the first part reach the client before the cut.
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err(std::io::Error::other("cut"))
        }),
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, total)
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn serve(
    State(cdn): State<Cdn>,
    UrlPath(mode): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let n = cdn.hits.fetch_add(1, Ordering::SeqCst);
    let data = content();
    match mode.as_str() {
        "ok" => match range_start(&headers) {
            Some(s) if s > 0 => partial(&data, s),
            _ => full(data),
        },
        "ignore-range" => full(data),
        "html" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            "<!DOCTYPE html><html><body>Rate limited</body></html>",
        )
            .into_response(),
        "cut-once" if n == 0 => cut_after(data[..SIZE / 3].to_vec(), SIZE),
        "cut-once" => match range_start(&headers) {
            Some(s) if s > 0 => partial(&data, s),
            _ => full(data),
        },
        "expired" => StatusCode::GONE.into_response(),
        "bad-range" => match range_start(&headers) {
            Some(s) if s > 0 => {
                let cr = format!("bytes 0-{}/{}", SIZE - 1, SIZE);
                (
                    StatusCode::PARTIAL_CONTENT,
                    [(header::CONTENT_RANGE, cr)],
                    data,
                )
                    .into_response()
            }
            _ => full(data),
        },
        "wrong-size" => full(data[..SIZE - 10].to_vec()),
        "stall" => {
            let head = bytes::Bytes::from(data[..1000].to_vec());
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) })
                .chain(futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Err(std::io::Error::other("late"))
                }));
            Response::builder()
                .header(header::CONTENT_LENGTH, SIZE)
                .body(Body::from_stream(stream))
                .unwrap()
        }
        "503" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "0")],
            "busy",
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

use futures_util::StreamExt;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn start_cdn() -> (String, Cdn) {
    let cdn = Cdn::default();
    let app = Router::new()
        .route("/{mode}", get(serve))
        .with_state(cdn.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), cdn)
}

fn cfg() -> FetchConfig {
    FetchConfig {
        max_attempts: 4,
        backoff: fetch::backoff::Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
        },
        stall_timeout: Duration::from_millis(500),
        ..FetchConfig::default()
    }
}

fn job(dest: &Path) -> Download<'_> {
    Download {
        dest,
        size: SIZE as u64,
        uti: "public.jpeg",
        checksum: "AY6c+BsE0jjaXx9tmVGJM1D2VcEO",
        mtime: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_500_000_000)),
        replace: false,
        committing: None,
    }
}

/// A download of `dest` from the test CDN's `route`, with the tests' client and settings.
async fn download_from(
    base: &str,
    route: &str,
    dest: &Path,
) -> Result<fetch::DownloadOutcome, FetchError> {
    fetch::download(
        &http(),
        &cfg(),
        &job(dest),
        &FixedUrl(format!("{base}/{route}")),
    )
    .await
}

/// The first `n` bytes of the content left in the temp file a resumed download picks up.
fn leave_partial(dest: &Path, n: usize) {
    let temp =
        fetch::download::temp_path(dest, job(dest).checksum, SIZE as u64, &cfg().temp_suffix);
    std::fs::write(temp, &content()[..n]).unwrap();
}

fn no_temp_left(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.'))
}

#[tokio::test]
async fn downloads_whole_file_with_hash_and_mtime() {
    let (base, _) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("IMG_0001.JPG");
    let out = download_from(&base, "ok", &dest).await.unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(bytes, content());
    assert_eq!(out.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
    let mtime = std::fs::metadata(&dest).unwrap().modified().unwrap();
    assert_eq!(
        mtime,
        std::time::UNIX_EPOCH + Duration::from_secs(1_500_000_000)
    );
    assert!(no_temp_left(dir.path()));
}

#[tokio::test]
async fn resumes_after_a_cut_with_a_range_request() {
    let (base, cdn) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    let out = download_from(&base, "cut-once", &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content());
    assert_eq!(
        out.resumed_from,
        (SIZE / 3) as u64,
        "second attempt resumed from the part"
    );
    assert_eq!(cdn.hits.load(Ordering::SeqCst), 2);
    assert_eq!(out.sha256, <[u8; 32]>::from(Sha256::digest(content())));
}

#[tokio::test]
async fn restarts_when_the_server_ignores_range() {
    let (base, _) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    leave_partial(&dest, 5000);
    download_from(&base, "ignore-range", &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content());
}

#[tokio::test]
async fn a_wrong_content_range_never_corrupts_the_file() {
    let (base, _) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    leave_partial(&dest, 5000);
    // First attempt: bad Content-Range → part dropped; second: fresh 200.
    download_from(&base, "bad-range", &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content());
}

#[tokio::test]
async fn an_html_page_is_never_saved() {
    let (base, _) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    let err = download_from(&base, "html", &dest).await.unwrap_err();
    assert!(
        matches!(err, FetchError::GaveUp { ref last, .. } if matches!(**last, FetchError::NotMedia { .. })),
        "{err}"
    );
    assert!(!dest.exists());
    assert!(no_temp_left(dir.path()));
}

#[tokio::test]
async fn a_size_mismatch_is_refused() {
    let (base, _) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    let err = download_from(&base, "wrong-size", &dest).await.unwrap_err();
    assert!(matches!(err, FetchError::SizeMismatch { .. }), "{err}");
    assert!(!dest.exists());
}

#[tokio::test]
async fn a_stalled_body_times_out_and_keeps_a_resumable_part() {
    let (base, _) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    let mut c = cfg();
    c.max_attempts = 1;
    let err = fetch::download(&http(), &c, &job(&dest), &FixedUrl(format!("{base}/stall")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::GaveUp { ref last, .. } if matches!(**last, FetchError::Stalled(_))),
        "{err}"
    );
    assert!(!dest.exists());
    let temp = fetch::download::temp_path(&dest, job(&dest).checksum, SIZE as u64, &c.temp_suffix);
    assert_eq!(std::fs::read(&temp).unwrap(), content()[..1000]);
}

/// Gives an expired URL first, then a good one when asked to refresh.
struct Refreshing {
    base: String,
    refreshes: AtomicU32,
}

impl UrlProvider for Refreshing {
    fn url(&self, refresh: bool) -> BoxFuture<'_, Result<String, FetchError>> {
        Box::pin(async move {
            if refresh {
                self.refreshes.fetch_add(1, Ordering::SeqCst);
                Ok(format!("{}/ok", self.base))
            } else {
                Ok(format!("{}/expired", self.base))
            }
        })
    }
}

#[tokio::test]
async fn an_expired_url_is_refreshed() {
    let (base, _) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    let urls = Refreshing {
        base,
        refreshes: AtomicU32::new(0),
    };
    fetch::download(&http(), &cfg(), &job(&dest), &urls)
        .await
        .unwrap();
    assert_eq!(urls.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read(&dest).unwrap(), content());
}

#[tokio::test]
async fn persistent_503_gives_up_after_the_attempt_budget() {
    let (base, cdn) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    let err = download_from(&base, "503", &dest).await.unwrap_err();
    assert!(
        matches!(err, FetchError::GaveUp { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(cdn.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn range_fetch_returns_exact_bytes() {
    let (base, _) = start_cdn().await;
    let c = cfg();
    let http = http();
    // The test server answers open-ended ranges only; the 200 path skips to the offset.
    let got = fetch::fetch_range(
        &http,
        &c,
        &format!("{base}/ignore-range"),
        1000,
        5000,
        SIZE as u64,
        "public.jpeg",
    )
    .await
    .unwrap();
    assert_eq!(&got[..], &content()[1000..6000]);
    let head = fetch::fetch_range(
        &http,
        &c,
        &format!("{base}/ok"),
        0,
        64,
        SIZE as u64,
        "public.jpeg",
    )
    .await
    .unwrap();
    assert_eq!(&head[..], &content()[..64]);
    let tail = fetch::fetch_range(
        &http,
        &c,
        &format!("{base}/ignore-range"),
        SIZE as u64 - 10,
        100,
        SIZE as u64,
        "public.jpeg",
    )
    .await
    .unwrap();
    assert_eq!(&tail[..], &content()[SIZE - 10..]);
}

/// A file put at the destination while the bytes come in (here: before the call, which
/// checks nothing up front) is not replaced unless the download is meant to replace it; the
/// complete part is kept and finishes the file without the network once the way is clear.
#[tokio::test]
async fn a_file_at_the_destination_is_never_replaced_and_the_part_finishes_later() {
    let (base, cdn) = start_cdn().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.JPG");
    std::fs::write(&dest, b"the user's own file").unwrap();
    let err = download_from(&base, "ok", &dest).await.unwrap_err();
    assert!(
        matches!(err, FetchError::DestinationTaken { ref path } if *path == dest),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("appeared while the run was going on; it was left as it is"),
        "{err}"
    );
    assert!(!err.is_local_io() && !err.is_transient());
    assert_eq!(std::fs::read(&dest).unwrap(), b"the user's own file");
    assert_eq!(cdn.hits.load(Ordering::SeqCst), 1, "not retried");
    let temp =
        fetch::download::temp_path(&dest, job(&dest).checksum, SIZE as u64, &cfg().temp_suffix);
    assert_eq!(
        std::fs::read(&temp).unwrap(),
        content(),
        "the complete part is kept"
    );

    std::fs::rename(&dest, dir.path().join("moved-away")).unwrap();
    let out = download_from(&base, "ok", &dest).await.unwrap();
    assert_eq!((out.resumed_from, out.bytes_fetched), (SIZE as u64, 0));
    assert_eq!(cdn.hits.load(Ordering::SeqCst), 1, "finished from the part");
    assert_eq!(std::fs::read(&dest).unwrap(), content());
    assert!(no_temp_left(dir.path()));

    // An older copy the download is meant to replace is replaced.
    std::fs::write(&dest, b"an older copy").unwrap();
    let mut replacing = job(&dest);
    replacing.replace = true;
    fetch::download(&http(), &cfg(), &replacing, &FixedUrl(format!("{base}/ok")))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content());
}
