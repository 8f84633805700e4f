//! The synthetic photo library: deterministic generation from the seed, per-index ordered
//! vectors (all photos, smart folders, hidden, recently deleted, albums), a per-zone change
//! log with sync tokens, and mutations.
//!
//! Each zone sits behind its own `RwLock`. Readers copy the compact structs they need out of
//! the lock ([`AssetView`], [`ChangeItem`], ...) and render JSON after releasing it, so a large
//! page never blocks a mutation for long and mutations are atomic for readers: indexes, counts
//! and the change log move together.
//!
//! What tests and other parts use: [`LibraryState::asset_id`] (the CDN's per-asset faults),
//! [`LibraryState::mutate`] / [`LibraryState::mutate_json`], [`LibraryState::manifest`],
//! [`LibraryState::count`], [`LibraryState::zone_token`] and [`LibraryState::zone_names`].

pub mod bplist;
pub mod changelog;
pub mod facts;
pub mod generate;
pub mod ids;
pub mod index;
pub mod manifest;
pub mod model;
pub mod mutate;
mod views;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use changelog::{ChangeLog, TokenCodec};
use facts::Facts;
use ids::{IdCodec, IdDomain};
use index::{IndexId, Indexes};
use model::{Album, Asset, Relation, split_key};

pub use manifest::{ManifestEntry, ManifestOptions};
pub use mutate::{Mutation, MutationError, MutationOutcome};
pub use views::{AlbumView, AssetView, ChangeItem, ChangesPage, LibraryCounts, Page};

use super::SimConfig;
use super::content::Resource;

/// Name of the personal library zone.
pub const PRIMARY_ZONE: &str = "PrimarySync";

/// A CloudKit database of the Photos container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Database {
    Private,
    Shared,
}

impl Database {
    /// Path segment (`private` / `shared`).
    pub fn as_str(self) -> &'static str {
        match self {
            Database::Private => "private",
            Database::Shared => "shared",
        }
    }

    /// Parse a path segment.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Database::Private),
            "shared" => Some(Database::Shared),
            _ => None,
        }
    }
}

/// Fixed facts about a zone.
#[derive(Debug, Clone)]
pub struct ZoneInfo {
    /// Zone number (the top bits of its asset keys).
    pub number: usize,
    pub name: String,
    /// `ownerRecordName` (`_` + 32 hex).
    pub owner: String,
    /// Where `zones/list` and `changes/database` list it.
    pub database: Database,
    /// A `SharedSync-*` zone: records carry `contributors`, no album index.
    pub shared: bool,
    /// Participants' user record names (`contributors`), shared zones only.
    pub contributors: Vec<String>,
}

/// The mutable content of a zone.
#[derive(Debug)]
pub struct Zone {
    pub number: usize,
    /// Every asset ever created, by index (purged ones keep their slot).
    pub assets: Vec<Asset>,
    /// Every album ever created, by index (0 = root sentinel in zones with albums).
    pub albums: Vec<Album>,
    /// (album, asset) → relation, live or removed.
    pub relations: HashMap<(u32, u32), Relation>,
    /// asset → albums it is a live member of.
    pub asset_albums: HashMap<u32, Vec<u32>>,
    pub indexes: Indexes,
    pub log: ChangeLog,
    /// Sequence of the current CPLLibraryInfo version.
    pub library_info_seq: u32,
    /// Global change counter at the zone's last change (for `changes/database`).
    pub last_db_change: u64,
    /// Next burst group number.
    pub next_burst: u32,
}

/// A zone and its lock.
#[derive(Debug)]
pub struct ZoneHandle {
    pub info: ZoneInfo,
    data: RwLock<Zone>,
}

impl ZoneHandle {
    /// Read access (poisoning is ignored: every mutation leaves the zone consistent).
    pub fn read(&self) -> RwLockReadGuard<'_, Zone> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access.
    pub fn write(&self) -> RwLockWriteGuard<'_, Zone> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The library of every zone, behind its own locks.
#[derive(Debug)]
pub struct LibraryState {
    pub seed: u64,
    pub facts: Facts,
    pub ids: IdCodec,
    pub tokens: TokenCodec,
    zones: Vec<ZoneHandle>,
    /// Global change counter (bumped by every mutation).
    db_counter: AtomicU64,
    /// `deviceID` shown in record envelopes.
    pub device_id: String,
}

impl LibraryState {
    /// Generate the library for a configuration.
    pub fn generate(config: &SimConfig) -> Self {
        let seed = config.seed;
        let ids = IdCodec::new(seed);
        let owner = owner_name(seed, b"owner");
        let mut zones = vec![ZoneHandle {
            info: ZoneInfo {
                number: 0,
                name: PRIMARY_ZONE.to_string(),
                owner: owner.clone(),
                database: Database::Private,
                shared: false,
                contributors: Vec::new(),
            },
            data: RwLock::new(generate::generate_zone(seed, 0, config.assets, true)),
        }];
        if config.shared_library {
            let name = format!("SharedSync-{}", ids.uuid(IdDomain::Misc, 1));
            zones.push(ZoneHandle {
                info: ZoneInfo {
                    number: 1,
                    name,
                    owner: owner_name(seed, b"shared-owner"),
                    // Listed in the private database, as kei observed live (notes 3.10, 10.4).
                    database: Database::Private,
                    shared: true,
                    contributors: vec![owner_name(seed, b"shared-owner"), owner],
                },
                data: RwLock::new(generate::generate_zone(
                    seed,
                    1,
                    config.shared_assets,
                    false,
                )),
            });
        }
        LibraryState {
            seed,
            facts: Facts {
                seed,
                size_scale: config.size_scale,
            },
            ids,
            tokens: TokenCodec::new(seed),
            zones,
            db_counter: AtomicU64::new(0),
            device_id: hex::encode_upper(super::seeded_hash(seed, b"device-id")),
        }
    }

    /// The asset id (CPLMaster recordName) of an asset key, if it exists.
    pub fn asset_id(&self, asset_key: u64) -> Option<String> {
        let (zone, idx) = split_key(asset_key)?;
        let z = self.zones.get(zone)?;
        ((idx as usize) < z.read().assets.len()).then(|| self.ids.master_name(asset_key))
    }

    /// The CPLAsset recordName of an asset key.
    pub fn asset_record_name(&self, asset_key: u64) -> String {
        self.ids.uuid(IdDomain::Asset, asset_key)
    }

    /// True while `res` is something the library serves: its asset exists and is not purged,
    /// has that rendition, and an edit's rendition is of the current edit generation. (A CDN
    /// can refuse URLs of purged assets or superseded edits with this.)
    pub fn is_current(&self, res: &Resource) -> bool {
        let Some((zone, idx)) = split_key(res.asset_key) else {
            return false;
        };
        let Some(asset) = self
            .zones
            .get(zone)
            .and_then(|z| z.read().assets.get(idx as usize).copied())
        else {
            return false;
        };
        let Some(r) = model::Rendition::from_u8(res.rendition) else {
            return false;
        };
        let listed = if r.on_asset() {
            model::asset_renditions(&asset).contains(&r)
                && res.generation == u32::from(asset.edit_gen)
        } else {
            model::master_renditions(asset.kind).contains(&r) && res.generation == 0
        };
        listed && !asset.has(model::PURGED) && res.size == self.facts.size(&asset, r)
    }

    /// Every zone.
    pub fn zones(&self) -> &[ZoneHandle] {
        &self.zones
    }

    /// Names of every zone, primary first.
    pub fn zone_names(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.info.name.clone()).collect()
    }

    /// A zone by name, wherever it is listed.
    pub fn zone(&self, name: &str) -> Option<&ZoneHandle> {
        self.zones.iter().find(|z| z.info.name == name)
    }

    /// A zone by name as seen from `database` (zones live in exactly one database).
    pub fn zone_in(&self, database: Database, name: &str) -> Option<&ZoneHandle> {
        self.zone(name).filter(|z| z.info.database == database)
    }

    /// Current sync token of a zone (the position after its last change).
    pub fn zone_token(&self, zone: &str) -> Option<String> {
        let z = self.zone(zone)?;
        let pos = z.read().log.len();
        Some(self.tokens.zone_token(&z.info.name, pos))
    }

    /// Exact number of assets an index returns right now (None: no such zone or album).
    pub fn count(&self, zone: &str, index: IndexId) -> Option<usize> {
        let z = self.zone(zone)?;
        z.read().indexes.get(index).map(<[u32]>::len)
    }

    /// The global change counter (what a database token encodes).
    pub fn db_counter(&self) -> u64 {
        self.db_counter.load(Ordering::SeqCst)
    }

    /// Advance the global change counter for a mutation of `zone`.
    fn bump_db_counter(&self, zone: &mut Zone) {
        zone.last_db_change = self.db_counter.fetch_add(1, Ordering::SeqCst) + 1;
    }

    /// The album index a record name denotes in a zone, if it exists.
    pub fn album_index(&self, zone: &ZoneHandle, record_name: &str) -> Option<u32> {
        if record_name == generate::ROOT_FOLDER {
            return zone.read().albums.first().map(|_| 0);
        }
        let (domain, number) = self.ids.parse_uuid(record_name)?;
        if domain != IdDomain::Album || (number >> 32) as usize != zone.info.number {
            return None;
        }
        let idx = number as u32;
        ((idx as usize) < zone.read().albums.len()).then_some(idx)
    }

    /// Record name of album `idx` of a zone.
    pub fn album_record_name(&self, zone: &ZoneInfo, idx: u32) -> String {
        if idx == 0 {
            generate::ROOT_FOLDER.to_string()
        } else {
            self.ids.uuid(
                IdDomain::Album,
                ((zone.number as u64) << 32) | u64::from(idx),
            )
        }
    }

    /// The asset index a CPLMaster recordName or CPLAsset UUID denotes in a zone.
    pub fn resolve_asset(&self, zone: &ZoneInfo, record_name: &str) -> Option<u32> {
        let key = match self.ids.parse_master(record_name) {
            Some(k) => k,
            None => match self.ids.parse_uuid(record_name)? {
                (IdDomain::Asset, k) => k,
                _ => return None,
            },
        };
        let (z, idx) = split_key(key)?;
        (z == zone.number).then_some(idx)
    }
}

/// `_` + 32 hex characters derived from the seed.
fn owner_name(seed: u64, label: &[u8]) -> String {
    format!("_{}", hex::encode(&super::seeded_hash(seed, label)[..16]))
}

/// A short opaque `recordChangeTag` for a change-log sequence (e.g. `49lh`).
pub fn change_tag(seq: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = u64::from(seq) + 36 * 36 * 36 * 5;
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Wall-clock now in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
