//! Getting the bytes of one version from the CDN, safely.
//!
//! - [`download`](mod@download): a whole file into place: Range resume of a partial temp file
//!   (validated `Content-Range`, restart on 200), size checks against `Content-Length` and the
//!   catalog, magic-byte checks (an HTML or JSON page is never saved as a photo), temp file +
//!   fsync + atomic rename (over a file that appeared meanwhile only when asked to replace),
//!   SHA-256 of what was written, retries with backoff and a fresh URL when the old one
//!   expired.
//! - [`range`]: a byte range for the mount's block cache, with the same validation.
//! - [`sniff`]: what the first bytes of a body say about it.
//! - [`backoff`]: retry delays with jitter and `Retry-After`.
//!
//! Nothing here decides paths or talks to the catalog: callers pass a destination and a way to
//! get a (fresh) URL.

pub mod backoff;
pub mod download;
pub mod range;
pub mod sniff;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use download::{Download, DownloadOutcome, download};
pub use range::{fetch_range, fetch_range_stream};

/// Tuning of CDN transfers.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Attempts per file before it is recorded as failed (each URL refresh counts as one).
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: backoff::Backoff,
    /// Suffix of partial files beside their destination.
    pub temp_suffix: String,
    /// A response that sends no byte for this long is abandoned (and resumed).
    pub stall_timeout: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            max_attempts: 6,
            backoff: backoff::Backoff::default(),
            temp_suffix: ".icloudpd-rs.part".into(),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Gives the download URL of the version being fetched. `refresh == true` means the previous
/// URL was refused as expired: the provider must ask CloudKit for a new one.
pub trait UrlProvider: Send + Sync {
    /// A URL for the version; a fresh one when `refresh` is set.
    fn url(&self, refresh: bool) -> BoxFuture<'_, Result<String, FetchError>>;
}

/// A fixed URL (tests, and callers that refresh by other means).
pub struct FixedUrl(pub String);

impl UrlProvider for FixedUrl {
    fn url(&self, _refresh: bool) -> BoxFuture<'_, Result<String, FetchError>> {
        let url = self.0.clone();
        Box::pin(async move { Ok(url) })
    }
}

/// Why a transfer failed. [`FetchError::is_transient`] decides retries.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("CDN answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("download URL expired or refused (HTTP {status})")]
    UrlExpired { status: u16 },
    #[error("session expired (HTTP {status} from the CDN)")]
    SessionExpired { status: u16 },
    #[error("network error: {0}")]
    Network(String),
    #[error("no data for {0:?}: the CDN stalled")]
    Stalled(Duration),
    #[error("body ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("CDN announced {announced} bytes but the catalog says {expected}")]
    SizeMismatch { announced: u64, expected: u64 },
    #[error("CDN sent {what} instead of the file")]
    NotMedia { what: String },
    #[error("bad Content-Range {header:?} for a request from byte {offset}")]
    BadContentRange { header: String, offset: u64 },
    #[error("no download URL: {0}")]
    NoUrl(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Something was put at the destination while the file downloaded (and the download
    /// was not meant to replace it). Not transient: the same file is still in the way.
    #[error("{} appeared while the run was going on; it was left as it is", path.display())]
    DestinationTaken { path: PathBuf },
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<FetchError>,
    },
    #[error("cancelled")]
    Cancelled,
}

impl FetchError {
    /// Worth another attempt with the same URL after a pause.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status == 429 || *status >= 500 || *status == 408,
            FetchError::Network(_)
            | FetchError::Stalled(_)
            | FetchError::Truncated { .. }
            | FetchError::NotMedia { .. }
            | FetchError::BadContentRange { .. } => true,
            _ => false,
        }
    }

    /// The URL must be replaced before trying again.
    pub fn needs_new_url(&self) -> bool {
        matches!(self, FetchError::UrlExpired { .. })
    }

    /// The local disk is the problem (full, read-only, a folder in the way): retrying the
    /// transfer cannot help. What it dooms, one file or the run, the caller decides.
    pub fn is_local_io(&self) -> bool {
        matches!(self, FetchError::Io { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FetchError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Classify a reqwest error (timeouts and connection failures are transient).
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        // The URL may carry a signature: never put it in messages.
        FetchError::Network(e.without_url().to_string())
    }
}

/// Check that a 206 answer is exactly bytes `start..end` (end exclusive) of a file of `total`
/// bytes, from its `Content-Range`.
pub(crate) fn check_content_range(
    headers: &reqwest::header::HeaderMap,
    start: u64,
    end: u64,
    total: u64,
) -> Result<(), FetchError> {
    let header = headers
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match parse_content_range(&header) {
        Some((s, e, t)) if s == start && e.checked_add(1) == Some(end) && t == total => Ok(()),
        Some((_, _, announced)) if announced != total => Err(FetchError::SizeMismatch {
            announced,
            expected: total,
        }),
        _ => Err(FetchError::BadContentRange {
            header,
            offset: start,
        }),
    }
}

/// Refuse an answer whose `Content-Type` says it is an error page or an API document (HTML,
/// JSON, XML) instead of media.
pub(crate) fn reject_error_document(
    headers: &reqwest::header::HeaderMap,
) -> Result<(), FetchError> {
    let Some(ct) = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let ct = ct.to_ascii_lowercase();
    if ct.starts_with("text/html")
        || ct.starts_with("application/json")
        || ct.starts_with("text/xml")
    {
        return Err(FetchError::NotMedia {
            what: format!("a {ct} document"),
        });
    }
    Ok(())
}

/// `(first, last, total)` of a `Content-Range: bytes first-last/total` value.
fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// Map a non-success CDN status to an error.
pub(crate) fn status_error(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> FetchError {
    let code = status.as_u16();
    match code {
        401 => FetchError::SessionExpired { status: code },
        403 | 404 | 410 => FetchError::UrlExpired { status: code },
        _ => FetchError::Status {
            status: code,
            retry_after: backoff::retry_after(headers),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue};

    #[test]
    fn error_documents_are_not_media() {
        let typed = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            h
        };
        for ct in ["text/html; charset=utf-8", "Application/JSON", "text/xml"] {
            assert!(
                matches!(
                    reject_error_document(&typed(ct)),
                    Err(FetchError::NotMedia { .. })
                ),
                "{ct}"
            );
        }
        for ct in ["image/jpeg", "application/octet-stream", "video/quicktime"] {
            assert!(reject_error_document(&typed(ct)).is_ok(), "{ct}");
        }
        assert!(reject_error_document(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(parse_content_range("bytes 10-99/100"), Some((10, 99, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn content_range_must_be_exactly_the_range_asked() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_RANGE, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(check_content_range(&with("bytes 10-99/100"), 10, 100, 100).is_ok());
        assert!(matches!(
            check_content_range(&with("bytes 10-98/100"), 10, 100, 100),
            Err(FetchError::BadContentRange { offset: 10, .. })
        ));
        assert!(matches!(
            check_content_range(&with("bytes 10-99/200"), 10, 100, 100),
            Err(FetchError::SizeMismatch {
                announced: 200,
                expected: 100
            })
        ));
        let overflow = format!("bytes 10-{}/100", u64::MAX);
        assert!(matches!(
            check_content_range(&with(&overflow), 10, 100, 100),
            Err(FetchError::BadContentRange { .. })
        ));
        assert!(matches!(
            check_content_range(&HeaderMap::new(), 0, 1, 1),
            Err(FetchError::BadContentRange { .. })
        ));
    }
}
