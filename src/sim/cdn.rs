//! The download CDN: signed, expiring URLs; GET and HEAD with exact `Range` support; bytes from
//! [`super::content`]; CDN faults and the bandwidth limit.

use axum::Router;

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

/// A signed download URL for `res`, valid for `config.url_ttl` seconds from now.
pub fn download_url(_state: &SimState, _res: &Resource, _parts: &UrlParts<'_>) -> String {
    String::new()
}

/// Routes under `/B/`.
pub fn router() -> Router<SharedState> {
    Router::new()
}
