//! Shared by the CDN tests: a simulator, a client, a resource and its signed URL, the bytes
//! the CDN must serve for it.

use icloudpd_rs::sim::cdn::{self, UrlParts};
use icloudpd_rs::sim::content::{self, Format, Resource};
use icloudpd_rs::sim::{Sim, SimConfig};
use reqwest::header::HeaderMap;

/// Checksums and zone of the signed URLs the tests ask for.
const PARTS: UrlParts<'static> = UrlParts {
    file_checksum: "AY6c+BsE0jjaXx9tmVGJM1D2VcEO",
    reference_checksum: "AfUMnLhKAW8bwnMCwMMXLMKCslue",
    wrapping_key: "Aj375aJi6sEmqgJPj64+7Q==",
    zone: "PrimarySync",
};

/// A small library with a fixed seed.
pub fn config() -> SimConfig {
    SimConfig {
        assets: 10,
        seed: 5,
        ..SimConfig::default()
    }
}

/// Start a simulator (installing the TLS provider first).
pub async fn start(config: SimConfig) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(config).await.expect("simulator starts")
}

/// A plain HTTP client that ignores proxies.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A resource of `format` and `size` bytes.
pub fn res(format: Format, size: u64) -> Resource {
    Resource {
        asset_key: 31,
        rendition: 0,
        generation: 0,
        size,
        format,
    }
}

/// The signed CDN URL of `r`.
pub fn url(sim: &Sim, r: &Resource) -> String {
    cdn::download_url(sim.state(), r, &PARTS)
}

/// The bytes the CDN must serve for `r` at `start..start + len`.
pub fn bytes_of(sim: &Sim, r: &Resource, start: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    content::fill(sim.state().config.seed, r, start, &mut buf);
    buf
}

/// A header's value as text (empty when missing).
pub fn hval<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}
