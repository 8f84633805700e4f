//! The manifest: one line per downloadable version of every asset, with the exact bytes'
//! SHA-256, for tests to compare what a client stored with what the simulator served.
//!
//! Versions follow the table of protocol notes 6.1, looked up on the CPLAsset first, then the
//! CPLMaster: photos have `original`, `alternative` (RAW+JPEG), `medium`, `thumb` (the edit's
//! thumbnail when edited), `adjusted` (edited), `live_original`, `live_medium`, `live_thumb`
//! (live photos); videos have `original`, `medium` and `thumb` (the MPEG-4 transcodes) and
//! `adjusted` when edited (kei's `resVidFull`). Purged assets are not listed.

use serde::Serialize;

use super::model::{
    Asset, DELETED, EDITED, FAVORITE, HIDDEN, NameEncoding, PURGED, Rendition, filename,
};
use super::{LibraryState, ZoneHandle};
use crate::sim::content;

/// Which manifest to produce.
#[derive(Debug, Clone, Default)]
pub struct ManifestOptions {
    /// Only this zone (default: every zone).
    pub zone: Option<String>,
    /// Compute `sha256` (hashes every byte the CDN would serve; skip for speed).
    pub sha256: bool,
}

/// One line of the manifest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ManifestEntry {
    /// CPLMaster recordName.
    pub asset_id: String,
    /// `original`, `medium`, `thumb`, `adjusted`, `alternative`, `live_original`, ...
    pub version: &'static str,
    /// Decoded `filenameEnc` (None when the master has none).
    pub filename: Option<String>,
    /// The master's `itemType`.
    pub item_type: &'static str,
    /// The version's UTI.
    pub file_type: &'static str,
    /// ms since the epoch.
    pub asset_date: i64,
    pub added_date: i64,
    pub size: u64,
    /// Hex SHA-256 of the exact CDN bytes (None when not requested).
    pub sha256: Option<String>,
    pub is_deleted: bool,
    pub is_hidden: bool,
    pub is_favorite: bool,
    /// Names of the (non-deleted) albums holding the asset.
    pub albums: Vec<String>,
    pub zone: String,
    /// CPLAsset recordName.
    pub asset_record: String,
    /// The version's `fileChecksum`.
    pub file_checksum: String,
}

/// The versions of an asset and the rendition each comes from.
pub fn versions(asset: &Asset) -> Vec<(&'static str, Rendition)> {
    let edited = asset.has(EDITED);
    let mut v = vec![("original", Rendition::Original)];
    if asset.kind.is_movie() {
        v.push(("medium", Rendition::VidMed));
        v.push(("thumb", Rendition::VidSmall));
        if edited {
            v.push(("adjusted", Rendition::VidFull));
        }
        return v;
    }
    if asset.kind.is_raw() {
        v.push(("alternative", Rendition::OriginalAlt));
    }
    v.push(("medium", Rendition::JpegMed));
    v.push((
        "thumb",
        if edited {
            Rendition::AssetJpegThumb
        } else {
            Rendition::JpegThumb
        },
    ));
    if edited {
        v.push(("adjusted", Rendition::JpegFull));
    }
    if asset.kind.is_live() {
        v.push(("live_original", Rendition::OriginalVidCompl));
        v.push(("live_medium", Rendition::VidMed));
        v.push(("live_thumb", Rendition::VidSmall));
    }
    v
}

/// Assets per manifest chunk (one lock acquisition and one parallel hashing round each).
pub const CHUNK_ASSETS: usize = 2048;

impl LibraryState {
    /// The zones a manifest covers (Err: unknown zone name).
    pub fn manifest_zones(&self, opts: &ManifestOptions) -> Result<Vec<&ZoneHandle>, String> {
        match &opts.zone {
            None => Ok(self.zones().iter().collect()),
            Some(name) => self
                .zone(name)
                .map(|z| vec![z])
                .ok_or_else(|| format!("no zone named {name:?}")),
        }
    }

    /// The whole manifest in memory (tests; the admin API streams chunks instead).
    pub fn manifest(&self, opts: &ManifestOptions) -> Result<Vec<ManifestEntry>, String> {
        let mut out = Vec::new();
        for zone in self.manifest_zones(opts)? {
            let mut start = 0;
            loop {
                let (entries, next) = self.manifest_chunk(zone, start, CHUNK_ASSETS, opts.sha256);
                out.extend(entries);
                match next {
                    Some(n) => start = n,
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Manifest lines of assets `start..start+max` of a zone; returns the next start, if any.
    pub fn manifest_chunk(
        &self,
        zone: &ZoneHandle,
        start: usize,
        max: usize,
        sha256: bool,
    ) -> (Vec<ManifestEntry>, Option<usize>) {
        let (assets, albums, next) = {
            let z = zone.read();
            let end = start.saturating_add(max).min(z.assets.len());
            let assets: Vec<Asset> = z.assets.get(start..end).unwrap_or_default().to_vec();
            let albums: Vec<Vec<String>> = assets
                .iter()
                .map(|a| {
                    z.asset_albums
                        .get(&a.idx())
                        .map(|list| {
                            list.iter()
                                .filter_map(|&i| z.albums.get(i as usize))
                                .filter(|al| !al.deleted)
                                .map(|al| al.name.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect();
            (assets, albums, (end < z.assets.len()).then_some(end))
        };
        let mut entries = Vec::new();
        let mut resources = Vec::new();
        for (asset, albums) in assets.iter().zip(albums) {
            if asset.has(PURGED) {
                continue;
            }
            let asset_id = self.ids.master_name(asset.key);
            let (name, enc) = filename(asset);
            let name = if enc == NameEncoding::Absent {
                None
            } else {
                name
            };
            let item_type = asset.kind.original_format().uti();
            for (version, r) in versions(asset) {
                let facts = self.facts.rendition(asset, &asset_id, r);
                resources.push(facts.resource(asset.key));
                entries.push(ManifestEntry {
                    asset_id: asset_id.clone(),
                    version,
                    filename: name.clone(),
                    item_type,
                    file_type: facts.format.uti(),
                    asset_date: asset.asset_date,
                    added_date: asset.added_date,
                    size: facts.size,
                    sha256: None,
                    is_deleted: asset.has(DELETED),
                    is_hidden: asset.has(HIDDEN),
                    is_favorite: asset.has(FAVORITE),
                    albums: albums.clone(),
                    zone: zone.info.name.clone(),
                    asset_record: self.asset_record_name(asset.key),
                    file_checksum: facts.file_checksum,
                });
            }
        }
        if sha256 {
            let hashes = hash_all(self.seed, &resources);
            for (e, h) in entries.iter_mut().zip(hashes) {
                e.sha256 = Some(h);
            }
        }
        (entries, next)
    }
}

/// Hex SHA-256 of every resource, on all cores.
fn hash_all(seed: u64, resources: &[content::Resource]) -> Vec<String> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads <= 1 || resources.len() < 8 {
        return resources
            .iter()
            .map(|r| hex::encode(content::sha256(seed, r)))
            .collect();
    }
    let per = resources.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = resources
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|r| hex::encode(content::sha256(seed, r)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(resources.chunks(per))
            .flat_map(|(h, chunk)| {
                h.join()
                    .unwrap_or_else(|_| vec![String::new(); chunk.len()])
            })
            .collect()
    })
}
