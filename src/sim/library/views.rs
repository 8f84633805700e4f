//! Read-side snapshots: what a response needs, copied out of a zone's lock so rendering happens
//! without holding it.

use super::changelog::RecordRef;
use super::index::IndexId;
use super::model::{Album, AlbumKind, Asset, HIDDEN, PURGED, Relation};
use super::{LibraryState, Zone, ZoneHandle};

/// An asset with the modification times of its two records.
#[derive(Debug, Clone, Copy)]
pub struct AssetView {
    pub asset: Asset,
    pub master_modified_ms: i64,
    pub asset_modified_ms: i64,
}

/// One page of an index.
#[derive(Debug, Clone)]
pub struct Page {
    pub assets: Vec<AssetView>,
    /// Length of the index.
    pub total: usize,
    /// Rank after this page, when more follows.
    pub next_rank: Option<usize>,
    /// The zone's change-log position (its current sync token).
    pub sync_pos: u32,
}

/// An album with what its record shows.
#[derive(Debug, Clone)]
pub struct AlbumView {
    pub idx: u32,
    pub album: Album,
    /// Record name of the parent folder (None at top level).
    pub parent_record: Option<String>,
    pub modified_ms: i64,
}

/// Counters of the zone's CPLLibraryInfo record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LibraryCounts {
    pub photos: i64,
    pub videos: i64,
    pub hidden_photos: i64,
    pub hidden_videos: i64,
    pub albums: i64,
    /// Live photos.
    pub iris: i64,
}

/// One record of a change-feed page, in its current state.
#[derive(Debug, Clone)]
pub enum ChangeItem {
    Master(AssetView),
    Asset(AssetView),
    Album(AlbumView),
    Relation {
        album_record: String,
        asset: Asset,
        relation: Relation,
        modified_ms: i64,
    },
    LibraryInfo {
        seq: u32,
        counts: LibraryCounts,
        modified_ms: i64,
    },
    /// A hard-deleted record (`deleted: true`, `recordType: null`).
    Deleted {
        record_name: String,
        seq: u32,
    },
}

/// A page of the change feed.
#[derive(Debug, Clone)]
pub struct ChangesPage {
    pub items: Vec<ChangeItem>,
    /// Log position after this page.
    pub next_pos: u32,
    pub more_coming: bool,
}

/// At most this many log entries are examined per change page per record returned, so long
/// runs of superseded entries come back as empty `moreComing` pages (as seen live).
const SCAN_FACTOR: usize = 4;

impl LibraryState {
    /// An asset's view in `zone` (modification times resolved).
    pub fn asset_view(&self, zone: &Zone, idx: u32) -> Option<AssetView> {
        let asset = *zone.assets.get(idx as usize)?;
        let created = self.facts.created_ms(&asset);
        Some(AssetView {
            asset,
            master_modified_ms: zone.log.time_of(asset.master_seq).unwrap_or(created),
            asset_modified_ms: zone.log.time_of(asset.asset_seq).unwrap_or(created),
        })
    }

    /// Assets at ranks `start..start+limit` of an index (`descending` walks it oldest first).
    /// None when the index does not exist (unknown album).
    pub fn page(
        &self,
        zone: &ZoneHandle,
        index: IndexId,
        start: usize,
        limit: usize,
        descending: bool,
    ) -> Option<Page> {
        let z = zone.read();
        let v = z.indexes.get(index)?;
        let total = v.len();
        let end = start.saturating_add(limit).min(total);
        let start = start.min(total);
        let assets = (start..end)
            .filter_map(|rank| {
                let i = if descending {
                    v[total - 1 - rank]
                } else {
                    v[rank]
                };
                self.asset_view(&z, i)
            })
            .collect();
        Some(Page {
            assets,
            total,
            next_rank: (end < total).then_some(end),
            sync_pos: z.log.len(),
        })
    }

    /// One asset, unless purged.
    pub fn lookup(&self, zone: &ZoneHandle, idx: u32) -> Option<AssetView> {
        let z = zone.read();
        self.asset_view(&z, idx).filter(|v| !v.asset.has(PURGED))
    }

    fn album_view(&self, zone: &ZoneHandle, z: &Zone, idx: u32) -> Option<AlbumView> {
        let album = z.albums.get(idx as usize)?.clone();
        Some(AlbumView {
            idx,
            parent_record: album.parent.map(|p| self.album_record_name(&zone.info, p)),
            modified_ms: z.log.time_of(album.seq).unwrap_or(album.created_ms),
            album,
        })
    }

    /// One album.
    pub fn album(&self, zone: &ZoneHandle, idx: u32) -> Option<AlbumView> {
        let z = zone.read();
        self.album_view(zone, &z, idx)
    }

    /// Albums as `CPLAlbumByPositionLive` lists them: the root sentinel and the top-level
    /// albums and folders (deleted ones included, flagged), or a folder's children; by position.
    pub fn albums(&self, zone: &ZoneHandle, parent: Option<u32>) -> Vec<AlbumView> {
        let z = zone.read();
        let mut out: Vec<AlbumView> = (0..z.albums.len() as u32)
            .filter(|&i| {
                let a = &z.albums[i as usize];
                match parent {
                    None => a.parent.is_none(),
                    Some(p) => a.parent == Some(p) && a.kind != AlbumKind::Root,
                }
            })
            .filter_map(|i| self.album_view(zone, &z, i))
            .collect();
        out.sort_by_key(|v| (v.album.kind != AlbumKind::Root, v.album.position, v.idx));
        out
    }

    /// The change-feed page starting at log position `pos`, at most `limit` records.
    pub fn changes(&self, zone: &ZoneHandle, pos: u32, limit: usize) -> ChangesPage {
        let z = zone.read();
        let len = z.log.len();
        let mut items = Vec::new();
        let mut counts = None;
        let mut seq = pos;
        let max_scan = limit.max(1) * SCAN_FACTOR;
        let mut scanned = 0;
        while seq < len && items.len() < limit && scanned < max_scan {
            seq += 1;
            scanned += 1;
            let Some(entry) = z.log.entry(seq) else { break };
            if let Some(item) = self.change_item(zone, &z, entry, seq, &mut counts) {
                items.push(item);
            }
        }
        ChangesPage {
            items,
            next_pos: seq,
            more_coming: seq < len,
        }
    }

    /// The item an entry shows, or None when the record changed again later.
    fn change_item(
        &self,
        zone: &ZoneHandle,
        z: &Zone,
        entry: RecordRef,
        seq: u32,
        counts: &mut Option<LibraryCounts>,
    ) -> Option<ChangeItem> {
        match entry {
            RecordRef::Master(i) | RecordRef::Asset(i) => {
                let view = self.asset_view(z, i)?;
                let is_master = matches!(entry, RecordRef::Master(_));
                let current = if is_master {
                    view.asset.master_seq
                } else {
                    view.asset.asset_seq
                };
                if current != seq {
                    return None;
                }
                Some(if view.asset.has(PURGED) {
                    let record_name = if is_master {
                        self.ids.master_name(view.asset.key)
                    } else {
                        self.asset_record_name(view.asset.key)
                    };
                    ChangeItem::Deleted { record_name, seq }
                } else if is_master {
                    ChangeItem::Master(view)
                } else {
                    ChangeItem::Asset(view)
                })
            }
            RecordRef::Album(i) => {
                let view = self.album_view(zone, z, i)?;
                (view.album.seq == seq).then_some(ChangeItem::Album(view))
            }
            RecordRef::Relation { album, asset } => {
                let relation = *z.relations.get(&(album, asset))?;
                if relation.seq != seq {
                    return None;
                }
                let asset = *z.assets.get(asset as usize)?;
                let album_record = self.album_record_name(&zone.info, album);
                if !relation.live {
                    let record_name =
                        format!("{}-IN-{album_record}", self.asset_record_name(asset.key));
                    return Some(ChangeItem::Deleted { record_name, seq });
                }
                let fallback = asset.added_date;
                Some(ChangeItem::Relation {
                    album_record,
                    asset,
                    relation,
                    modified_ms: z.log.time_of(seq).unwrap_or(fallback),
                })
            }
            RecordRef::LibraryInfo => {
                if z.library_info_seq != seq {
                    return None;
                }
                let counts = *counts.get_or_insert_with(|| library_counts(z));
                Some(ChangeItem::LibraryInfo {
                    seq,
                    counts,
                    modified_ms: z.log.time_of(seq).unwrap_or(super::model::REFERENCE_NOW_MS),
                })
            }
        }
    }
}

/// The CPLLibraryInfo counters of a zone (a scan; only change feeds need it).
pub fn library_counts(z: &Zone) -> LibraryCounts {
    let mut c = LibraryCounts::default();
    for a in &z.assets {
        if a.has(PURGED) || a.has(super::model::DELETED) {
            continue;
        }
        let hidden = a.flags & HIDDEN != 0;
        match (a.kind.is_movie(), hidden) {
            (true, false) => c.videos += 1,
            (true, true) => c.hidden_videos += 1,
            (false, false) => c.photos += 1,
            (false, true) => c.hidden_photos += 1,
        }
        if !hidden && a.kind.is_live() {
            c.iris += 1;
        }
    }
    c.albums = z
        .albums
        .iter()
        .filter(|a| a.kind == AlbumKind::Album && !a.deleted)
        .count() as i64;
    c
}
