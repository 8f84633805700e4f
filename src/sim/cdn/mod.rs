//! The download CDN: signed, expiring URLs; GET and HEAD with exact `Range` support; bytes from
//! [`super::content`]; CDN faults and the bandwidth limit.
//!
//! URLs have the recorded shape (`/B/<fileChecksum><referenceChecksum>/${f}?o=…&e=…&s=…`,
//! `icloud-photos-api.md` §7.1). The `o` token names the resource itself and `s` signs it, so a
//! request is served from the URL alone: no cookies (rclone sends none), no library lookup except
//! to match per-asset faults. Split by job:
//! - `url`: tokens, signatures, the query of a request;
//! - `range`: the `Range` header;
//! - `serve`: the request handler, Apple's headers, status codes and fault decisions;
//! - `body`: bodies streamed chunk by chunk, paced, counted, cut by faults.

mod body;
mod range;
mod serve;
mod url;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::any;

use super::content::Resource;
use super::{SharedState, SimState};

/// Identifiers Apple puts in a download URL besides the resource itself.
#[derive(Debug, Clone)]
pub struct UrlParts<'a> {
    /// The rendition's `fileChecksum` (standard base64).
    pub file_checksum: &'a str,
    /// The rendition's `referenceChecksum` (standard base64).
    pub reference_checksum: &'a str,
    /// The rendition's `wrappingKey` (standard base64).
    pub wrapping_key: &'a str,
    /// Zone name (`ckz`).
    pub zone: &'a str,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A signed download URL for `res`, valid for `config.url_ttl` seconds from now.
pub fn download_url(state: &SimState, res: &Resource, parts: &UrlParts<'_>) -> String {
    let path_id = format!(
        "{}{}",
        url::url_safe(parts.file_checksum),
        url::url_safe(parts.reference_checksum)
    );
    let token = url::encode_token(res);
    let expiry = unix_now().saturating_add(state.config.url_ttl);
    let signature = url::sign(&state.secret, &path_id, &token, expiry);
    let (opaque, request) = url::decorations(&token, expiry);
    // Apple's `p` is a storage partition number (10 and 54 in recordings).
    let partition = 10 + state.config.seed % 90;
    format!(
        "{cdn}/B/{path_id}/${{f}}?o={token}&v=1&x=3&a={opaque}&e={expiry}&k={key}&fl=&r={request}-1\
         &ckc=com.apple.photos.cloud&ckz={zone}&y=1&p={partition}&s={signature}",
        cdn = state.urls.cdn,
        key = url::url_safe(parts.wrapping_key),
        zone = url::percent_encode(parts.zone.as_bytes()),
    )
}

/// Routes under `/B/`.
pub fn router() -> Router<SharedState> {
    Router::new().route("/B/{*rest}", any(serve::serve))
}
