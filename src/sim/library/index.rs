//! The server-side indexes: one ordered vector of asset indices per list type, smart folder and
//! album, kept up to date on every mutation, so a page is a slice and a count is a length.
//!
//! Order: rank 0 is the newest asset (by `assetDate`; `addedDate` for the legacy index;
//! `dateExpunged` for Recently Deleted), ties broken by the asset key, newest first.
//!
//! Membership: All Photos, the legacy added-date index, every smart folder and every album
//! show only *visible* assets (neither hidden nor deleted). Hidden shows hidden assets that are
//! not deleted; Recently Deleted shows every deleted asset (hidden or not). Smart folders
//! follow the rules rclone predicts (protocol notes 12.4): Videos are movies with
//! `assetSubtype` 0 (so slo-mo and time-lapse are only in their own folders), Panoramas
//! `assetSubtype` 1, Slo-mo 100, Time-lapse 101, Live `assetSubtypeV2` 2, Screenshots 3,
//! Bursts any `burstId`, Portrait (DEPTH) and Long Exposure (EXPOSURE) bits 2 and 4 of
//! `adjustmentRenderType`; Animated (no GIFs are generated) and Selfies stay empty.

use std::cmp::Reverse;

use super::model::{Asset, AssetKind, DELETED, FAVORITE, HIDDEN, PURGED};

/// A smart folder served by `CPLAssetAndMasterInSmartAlbumByAssetDate` (or its own list type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Smart {
    Favorite,
    Video,
    Live,
    Screenshot,
    Panorama,
    Timelapse,
    Slomo,
    Burst,
    Depth,
    Exposure,
    Animated,
    Selfie,
}

impl Smart {
    /// Every smart folder.
    pub const ALL: [Smart; 12] = [
        Smart::Favorite,
        Smart::Video,
        Smart::Live,
        Smart::Screenshot,
        Smart::Panorama,
        Smart::Timelapse,
        Smart::Slomo,
        Smart::Burst,
        Smart::Depth,
        Smart::Exposure,
        Smart::Animated,
        Smart::Selfie,
    ];

    /// The `smartAlbum` filter value (Bursts have their own list type instead).
    pub fn filter_value(self) -> Option<&'static str> {
        Some(match self {
            Smart::Favorite => "FAVORITE",
            Smart::Video => "VIDEO",
            Smart::Live => "LIVE",
            Smart::Screenshot => "SCREENSHOT",
            Smart::Panorama => "PANORAMA",
            Smart::Timelapse => "TIMELAPSE",
            Smart::Slomo => "SLOMO",
            Smart::Depth => "DEPTH",
            Smart::Exposure => "EXPOSURE",
            Smart::Animated => "ANIMATED",
            Smart::Selfie => "SELFIE",
            Smart::Burst => return None,
        })
    }

    /// The count id (`CPLAssetInSmartAlbumByAssetDate:<suffix>` or the bursts' own id).
    pub fn count_id(self) -> String {
        let suffix = match self {
            Smart::Favorite => "Favorite",
            Smart::Video => "Video",
            Smart::Live => "Live",
            Smart::Screenshot => "Screenshot",
            Smart::Panorama => "Panorama",
            Smart::Timelapse => "Timelapse",
            Smart::Slomo => "Slomo",
            Smart::Depth => "Depth",
            Smart::Exposure => "Exposure",
            Smart::Animated => "Animated",
            Smart::Selfie => "Selfie",
            Smart::Burst => return "CPLAssetBurstStackAssetByAssetDate".to_string(),
        };
        format!("CPLAssetInSmartAlbumByAssetDate:{suffix}")
    }

    /// Membership rule, for a visible asset.
    pub fn contains(self, a: &Asset) -> bool {
        let k = a.kind;
        match self {
            Smart::Favorite => a.flags & FAVORITE != 0,
            Smart::Video => k.is_movie() && k.asset_subtype() == 0,
            Smart::Live => k.asset_subtype_v2() == 2,
            Smart::Screenshot => k.asset_subtype_v2() == 3,
            Smart::Panorama => k.asset_subtype() == 1,
            Smart::Timelapse => k.asset_subtype() == 101,
            Smart::Slomo => k.asset_subtype() == 100,
            Smart::Burst => a.burst != 0,
            Smart::Depth => k.adjustment_render_type() & 2 != 0,
            Smart::Exposure => k.adjustment_render_type() & 4 != 0,
            Smart::Animated | Smart::Selfie => false,
        }
    }
}

/// One server-side index of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexId {
    /// `CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted`.
    All,
    /// Legacy `CPLAssetAndMasterByAddedDate` (same members, by `addedDate`).
    AddedDate,
    Smart(Smart),
    /// `CPLAssetAndMasterHiddenByAssetDate`.
    Hidden,
    /// `CPLAssetAndMasterDeletedByExpungedDate`.
    Deleted,
    /// `CPLContainerRelationLiveByAssetDate` + `parentId` (album index).
    Album(u32),
}

/// The list types that page through assets.
pub const LIST_TYPES: [&str; 7] = [
    "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted",
    "CPLAssetAndMasterByAddedDate",
    "CPLAssetAndMasterInSmartAlbumByAssetDate",
    "CPLBurstStackAssetAndMasterByAssetDate",
    "CPLAssetAndMasterDeletedByExpungedDate",
    "CPLAssetAndMasterHiddenByAssetDate",
    "CPLContainerRelationLiveByAssetDate",
];

/// Prefix of an album's count id.
pub const ALBUM_COUNT_PREFIX: &str = "CPLContainerRelationNotDeletedByAssetDate:";

impl IndexId {
    /// The index a list query names, given its `smartAlbum` filter; albums are resolved by the
    /// caller. Err = the reason for a `BAD_REQUEST`.
    pub fn from_list_type(
        record_type: &str,
        smart_album: Option<&str>,
    ) -> Result<Option<IndexId>, String> {
        Ok(Some(match record_type {
            "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted" => IndexId::All,
            "CPLAssetAndMasterByAddedDate" => IndexId::AddedDate,
            "CPLBurstStackAssetAndMasterByAssetDate" => IndexId::Smart(Smart::Burst),
            "CPLAssetAndMasterDeletedByExpungedDate" => IndexId::Deleted,
            "CPLAssetAndMasterHiddenByAssetDate" => IndexId::Hidden,
            "CPLContainerRelationLiveByAssetDate" => return Ok(None),
            "CPLAssetAndMasterInSmartAlbumByAssetDate" => {
                let value = smart_album.ok_or("smartAlbum filter required for this index")?;
                let smart = Smart::ALL
                    .into_iter()
                    .find(|s| s.filter_value() == Some(value))
                    .ok_or_else(|| format!("Unknown smart album {value:?}"))?;
                IndexId::Smart(smart)
            }
            other => return Err(format!("Unknown index {other:?}")),
        }))
    }

    /// The index a count id names (albums are returned as their record name, for the caller).
    pub fn from_count_id(id: &str) -> Option<Result<IndexId, &str>> {
        Some(Ok(match id {
            "CPLAssetByAssetDateWithoutHiddenOrDeleted" => IndexId::All,
            "CPLAssetByAddedDate" => IndexId::AddedDate,
            "CPLAssetDeletedByExpungedDate" => IndexId::Deleted,
            "CPLAssetHiddenByAssetDate" => IndexId::Hidden,
            _ => {
                if let Some(album) = id.strip_prefix(ALBUM_COUNT_PREFIX) {
                    return Some(Err(album));
                }
                let smart = Smart::ALL.into_iter().find(|s| s.count_id() == id)?;
                IndexId::Smart(smart)
            }
        }))
    }

    /// The order of this index.
    pub fn order(self) -> Order {
        match self {
            IndexId::AddedDate => Order::AddedDate,
            IndexId::Deleted => Order::Expunged,
            _ => Order::AssetDate,
        }
    }
}

/// Sort key of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    AssetDate,
    AddedDate,
    Expunged,
}

impl Order {
    /// Ascending key = newest first.
    fn key(self, a: &Asset) -> Reverse<(i64, u64)> {
        let date = match self {
            Order::AssetDate => a.asset_date,
            Order::AddedDate => a.added_date,
            Order::Expunged => a.date_expunged,
        };
        Reverse((date, a.key))
    }
}

/// Every non-album index of a zone.
#[derive(Debug, Default)]
pub struct Indexes {
    pub all: Vec<u32>,
    pub added: Vec<u32>,
    pub smart: Vec<Vec<u32>>,
    pub hidden: Vec<u32>,
    pub deleted: Vec<u32>,
    /// One vector per album (same numbering as the zone's albums).
    pub albums: Vec<Vec<u32>>,
}

/// The non-album indexes an asset belongs to in its current state.
pub fn memberships(a: &Asset) -> impl Iterator<Item = IndexId> {
    let purged = a.flags & PURGED != 0;
    let deleted = a.flags & DELETED != 0;
    let hidden = a.flags & HIDDEN != 0;
    let visible = !purged && !deleted && !hidden;
    let fixed = [
        (visible, IndexId::All),
        (visible, IndexId::AddedDate),
        (!purged && !deleted && hidden, IndexId::Hidden),
        (!purged && deleted, IndexId::Deleted),
    ];
    let a = *a;
    fixed
        .into_iter()
        .filter(|(member, _)| *member)
        .map(|(_, id)| id)
        .chain(
            Smart::ALL
                .into_iter()
                .filter(move |s| visible && s.contains(&a))
                .map(IndexId::Smart),
        )
}

impl Indexes {
    /// Build every index from scratch; `album_members[i]` lists album `i`'s live members.
    pub fn build(assets: &[Asset], album_members: &[Vec<u32>]) -> Self {
        let mut ix = Indexes {
            smart: vec![Vec::new(); Smart::ALL.len()],
            ..Indexes::default()
        };
        let mut by_date: Vec<u32> = (0..assets.len() as u32).collect();
        by_date.sort_unstable_by_key(|&i| Order::AssetDate.key(&assets[i as usize]));
        for &i in &by_date {
            for id in memberships(&assets[i as usize]) {
                if id.order() == Order::AssetDate {
                    ix.vec_mut(id).push(i);
                }
            }
        }
        ix.added = ix.all.clone();
        ix.added
            .sort_unstable_by_key(|&i| Order::AddedDate.key(&assets[i as usize]));
        ix.deleted = by_date
            .iter()
            .copied()
            .filter(|&i| memberships(&assets[i as usize]).any(|m| m == IndexId::Deleted))
            .collect();
        ix.deleted
            .sort_unstable_by_key(|&i| Order::Expunged.key(&assets[i as usize]));
        ix.albums = album_members
            .iter()
            .map(|members| {
                let mut v: Vec<u32> = members
                    .iter()
                    .copied()
                    .filter(|&i| assets[i as usize].is_visible())
                    .collect();
                v.sort_unstable_by_key(|&i| Order::AssetDate.key(&assets[i as usize]));
                v
            })
            .collect();
        ix
    }

    /// The vector of an index (None for an unknown album).
    pub fn get(&self, id: IndexId) -> Option<&[u32]> {
        Some(match id {
            IndexId::All => &self.all,
            IndexId::AddedDate => &self.added,
            IndexId::Smart(s) => &self.smart[smart_slot(s)],
            IndexId::Hidden => &self.hidden,
            IndexId::Deleted => &self.deleted,
            IndexId::Album(a) => self.albums.get(a as usize)?,
        })
    }

    fn vec_mut(&mut self, id: IndexId) -> &mut Vec<u32> {
        match id {
            IndexId::All => &mut self.all,
            IndexId::AddedDate => &mut self.added,
            IndexId::Smart(s) => &mut self.smart[smart_slot(s)],
            IndexId::Hidden => &mut self.hidden,
            IndexId::Deleted => &mut self.deleted,
            IndexId::Album(a) => {
                let a = a as usize;
                if self.albums.len() <= a {
                    self.albums.resize(a + 1, Vec::new());
                }
                &mut self.albums[a]
            }
        }
    }

    /// Insert asset `i` (in its current state) into index `id` at its ordered place.
    pub fn insert(&mut self, id: IndexId, assets: &[Asset], i: u32) {
        let order = id.order();
        let key = order.key(&assets[i as usize]);
        let v = self.vec_mut(id);
        let pos = v.partition_point(|&j| order.key(&assets[j as usize]) < key);
        if v.get(pos) != Some(&i) {
            v.insert(pos, i);
        }
    }

    /// Remove asset `i` from index `id`; its sort key must be the one it was inserted with.
    pub fn remove(&mut self, id: IndexId, assets: &[Asset], i: u32) {
        let order = id.order();
        let key = order.key(&assets[i as usize]);
        let v = self.vec_mut(id);
        let pos = v.partition_point(|&j| order.key(&assets[j as usize]) < key);
        if v.get(pos) == Some(&i) {
            v.remove(pos);
        } else if let Some(p) = v.iter().position(|&j| j == i) {
            // Defensive: a key changed without re-indexing. Keep the index consistent anyway.
            tracing::warn!(?id, asset = i, "index entry not at its ordered place");
            v.remove(p);
        }
    }

    /// Insert a new asset into every non-album index it belongs to.
    pub fn add_asset(&mut self, assets: &[Asset], i: u32) {
        for id in memberships(&assets[i as usize]) {
            self.insert(id, assets, i);
        }
    }

    /// Remove an asset from every non-album index it belongs to.
    pub fn remove_asset(&mut self, assets: &[Asset], i: u32) {
        for id in memberships(&assets[i as usize]) {
            self.remove(id, assets, i);
        }
    }
}

fn smart_slot(s: Smart) -> usize {
    Smart::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// Kinds that land in a given smart folder (for tests and documentation).
pub fn kinds_in(smart: Smart) -> Vec<AssetKind> {
    AssetKind::ALL
        .into_iter()
        .filter(|k| {
            let probe = Asset {
                key: 1,
                asset_date: 0,
                added_date: 0,
                date_expunged: 0,
                master_seq: 0,
                asset_seq: 0,
                burst: u32::from(*k == AssetKind::Burst),
                edit_gen: 0,
                kind: *k,
                flags: 0,
            };
            smart.contains(&probe)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::model::asset_key;
    use super::*;

    fn asset(idx: u32, date: i64, kind: AssetKind, flags: u8) -> Asset {
        Asset {
            key: asset_key(0, idx),
            asset_date: date,
            added_date: date + 10 - i64::from(idx),
            date_expunged: if flags & DELETED != 0 { date * 2 } else { 0 },
            master_seq: 0,
            asset_seq: 0,
            burst: 0,
            edit_gen: 0,
            kind,
            flags,
        }
    }

    #[test]
    fn builds_ordered_indexes_with_the_documented_membership() {
        let assets = vec![
            asset(0, 100, AssetKind::HeicPhoto, 0),
            asset(1, 300, AssetKind::MovVideo, FAVORITE),
            asset(2, 200, AssetKind::SloMo, 0),
            asset(3, 400, AssetKind::LiveHeic, HIDDEN),
            asset(4, 50, AssetKind::Screenshot, DELETED | HIDDEN),
        ];
        let ix = Indexes::build(&assets, &[vec![0, 1, 3]]);
        assert_eq!(ix.all, vec![1, 2, 0]);
        assert_eq!(ix.get(IndexId::Smart(Smart::Video)).unwrap(), &[1]);
        assert_eq!(ix.get(IndexId::Smart(Smart::Slomo)).unwrap(), &[2]);
        assert_eq!(ix.get(IndexId::Smart(Smart::Favorite)).unwrap(), &[1]);
        assert!(ix.get(IndexId::Smart(Smart::Live)).unwrap().is_empty());
        assert_eq!(ix.hidden, vec![3]);
        assert_eq!(ix.deleted, vec![4]);
        assert!(
            ix.get(IndexId::Smart(Smart::Screenshot))
                .unwrap()
                .is_empty()
        );
        assert_eq!(ix.albums[0], vec![1, 0]);
        assert_eq!(ix.get(IndexId::Album(1)), None);
    }

    #[test]
    fn insert_and_remove_keep_order() {
        let mut assets = vec![
            asset(0, 100, AssetKind::HeicPhoto, 0),
            asset(1, 300, AssetKind::HeicPhoto, 0),
            asset(2, 200, AssetKind::HeicPhoto, 0),
        ];
        let mut ix = Indexes::build(&assets, &[]);
        assert_eq!(ix.all, vec![1, 2, 0]);
        ix.remove_asset(&assets, 2);
        assert_eq!(ix.all, vec![1, 0]);
        assets[2].flags |= HIDDEN;
        ix.add_asset(&assets, 2);
        assert_eq!(ix.all, vec![1, 0]);
        assert_eq!(ix.hidden, vec![2]);
        assets.push(asset(3, 150, AssetKind::HeicPhoto, 0));
        ix.add_asset(&assets, 3);
        assert_eq!(ix.all, vec![1, 3, 0]);
        assert_eq!(ix.added.len(), 3);
    }

    #[test]
    fn catalogue_names_resolve() {
        assert_eq!(
            IndexId::from_list_type(
                "CPLAssetAndMasterInSmartAlbumByAssetDate",
                Some("TIMELAPSE")
            ),
            Ok(Some(IndexId::Smart(Smart::Timelapse)))
        );
        assert!(
            IndexId::from_list_type("CPLAssetAndMasterInSmartAlbumByAssetDate", Some("NOPE"))
                .is_err()
        );
        assert!(IndexId::from_list_type("Bogus", None).is_err());
        assert_eq!(
            IndexId::from_list_type("CPLContainerRelationLiveByAssetDate", None),
            Ok(None)
        );
        assert_eq!(
            IndexId::from_count_id("CPLAssetInSmartAlbumByAssetDate:Slomo"),
            Some(Ok(IndexId::Smart(Smart::Slomo)))
        );
        assert_eq!(
            IndexId::from_count_id("CPLAssetBurstStackAssetByAssetDate"),
            Some(Ok(IndexId::Smart(Smart::Burst)))
        );
        assert_eq!(
            IndexId::from_count_id("CPLContainerRelationNotDeletedByAssetDate:ABC"),
            Some(Err("ABC"))
        );
        assert_eq!(IndexId::from_count_id("nope"), None);
        assert_eq!(
            kinds_in(Smart::Video),
            vec![AssetKind::MovVideo, AssetKind::Mp4Video]
        );
    }
}
