//! Deterministic generation of a zone's assets, albums and initial change history from the seed.
//!
//! The mix (fractions of assets): HEIC photo 30 %, live HEIC 20 %, JPEG photo 12 %, portrait
//! HEIC 7 %, PNG screenshot 7 %, MOV video 6 %, live JPEG 4 %, burst JPEG 4 % (groups of 3-8),
//! MP4 video 2 %, DNG+JPEG 1.5 %, panorama 1.5 %, CR2+JPEG 1 %, time-lapse 1 %, slo-mo 1 %,
//! long exposure 1 %. Flags: favourite 6 %, hidden 1.5 %, recently deleted 1.5 %, edited 6 %.
//! Indices 1-6 carry the special names of [`super::model::SPECIAL_NAMES`] and indices 7-21 one
//! asset of every kind, so even a 30-asset library has every case; a few more fixed indices
//! force flags. Capture dates spread evenly from 2013 to the end of 2024 (bursts a fraction of a
//! second apart); `addedDate` is at least `assetDate`.

use std::collections::HashMap;

use super::Zone;
use super::changelog::{ChangeLog, RecordRef};
use super::ids::Rng;
use super::index::Indexes;
use super::model::{
    Album, AlbumKind, Asset, AssetKind, DAY_MS, DELETED, EDITED, EXPUNGE_AFTER_MS, FAVORITE,
    HIDDEN, REFERENCE_NOW_MS, Relation, asset_key, special_kind,
};

/// Start of generated capture dates: 2013-01-01T00:00:00Z.
const START_MS: i64 = 1_356_998_400_000;

const KIND_WEIGHTS: [(AssetKind, u32); 15] = [
    (AssetKind::HeicPhoto, 300),
    (AssetKind::LiveHeic, 200),
    (AssetKind::JpegPhoto, 120),
    (AssetKind::Portrait, 70),
    (AssetKind::Screenshot, 70),
    (AssetKind::MovVideo, 60),
    (AssetKind::LiveJpeg, 40),
    (AssetKind::Burst, 40),
    (AssetKind::Mp4Video, 20),
    (AssetKind::RawDng, 15),
    (AssetKind::Panorama, 15),
    (AssetKind::RawCr2, 10),
    (AssetKind::TimeLapse, 10),
    (AssetKind::SloMo, 10),
    (AssetKind::LongExposure, 10),
];

/// First index of the "one of every kind" run.
const COVERAGE_START: u32 = 7;

/// The kinds of the coverage run; the burst comes last so its group continues after the run.
const COVERAGE: [AssetKind; 15] = [
    AssetKind::HeicPhoto,
    AssetKind::JpegPhoto,
    AssetKind::Screenshot,
    AssetKind::MovVideo,
    AssetKind::Mp4Video,
    AssetKind::LiveHeic,
    AssetKind::LiveJpeg,
    AssetKind::RawDng,
    AssetKind::RawCr2,
    AssetKind::Panorama,
    AssetKind::TimeLapse,
    AssetKind::SloMo,
    AssetKind::Portrait,
    AssetKind::LongExposure,
    AssetKind::Burst,
];

/// Flags forced on fixed indices (the kinds there come from the coverage run).
const FORCED_FLAGS: [(u32, u8); 9] = [
    (8, EDITED),
    (10, EDITED),
    (12, FAVORITE),
    (22, FAVORITE),
    (23, HIDDEN),
    (24, DELETED),
    (25, HIDDEN | DELETED),
    (26, FAVORITE | HIDDEN),
    (27, EDITED | FAVORITE),
];

/// Random-stream labels of generation.
const KIND_STREAM: u64 = 0x4b49_4e44;
const ALBUM_STREAM: u64 = 0x414c_424d;

/// How an album's members are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Random,
    /// min(assets / 2, 5000) assets.
    Big,
    Screenshots,
    Empty,
}

/// The generated albums of the primary zone (index 0 is the root sentinel), with the index of
/// their parent folder in this table.
const ALBUMS: [(&str, AlbumKind, Option<u32>, Fill, bool); 22] = [
    ("Bilderrahmen", AlbumKind::Album, None, Fill::Random, false),
    (
        "Garage vorher/nachher",
        AlbumKind::Album,
        None,
        Fill::Random,
        false,
    ),
    ("Jörg", AlbumKind::Album, None, Fill::Random, false),
    ("Trips", AlbumKind::Folder, None, Fill::Empty, false),
    (
        "Été à Zürich 2019",
        AlbumKind::Album,
        Some(4),
        Fill::Random,
        false,
    ),
    (
        "東京 / Tokyo",
        AlbumKind::Album,
        Some(4),
        Fill::Random,
        false,
    ),
    ("Europe", AlbumKind::Folder, Some(4), Fill::Empty, false),
    ("Paris", AlbumKind::Album, Some(7), Fill::Random, false),
    ("Berlin", AlbumKind::Album, Some(7), Fill::Random, false),
    ("Everything", AlbumKind::Album, None, Fill::Big, false),
    ("Empty album", AlbumKind::Album, None, Fill::Empty, false),
    (
        "Old album (deleted)",
        AlbumKind::Album,
        None,
        Fill::Empty,
        true,
    ),
    ("Pets 🐶", AlbumKind::Album, None, Fill::Random, false),
    ("Recipes", AlbumKind::Album, None, Fill::Random, false),
    (
        "Screenshots to sort",
        AlbumKind::Album,
        None,
        Fill::Screenshots,
        false,
    ),
    ("Family", AlbumKind::Folder, None, Fill::Empty, false),
    ("Kids", AlbumKind::Album, Some(16), Fill::Random, false),
    (
        "Grandparents",
        AlbumKind::Album,
        Some(16),
        Fill::Random,
        false,
    ),
    ("Wallpapers", AlbumKind::Album, None, Fill::Random, false),
    ("Work", AlbumKind::Album, None, Fill::Random, false),
    ("Concerts 2023", AlbumKind::Album, None, Fill::Random, false),
    ("Hiking ⛰️", AlbumKind::Album, None, Fill::Random, false),
];

/// Name of the root folder sentinel.
pub const ROOT_FOLDER: &str = "----Root-Folder----";

/// Pick a kind from the weights.
pub fn pick_kind(rng: &mut Rng) -> AssetKind {
    let total: u32 = KIND_WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(u64::from(total)) as u32;
    for (k, w) in KIND_WEIGHTS {
        if x < w {
            return k;
        }
        x -= w;
    }
    AssetKind::HeicPhoto
}

/// Random flags of a new asset (no forced slot).
pub fn pick_flags(rng: &mut Rng) -> u8 {
    let mut flags = 0;
    if rng.chance(0.06) {
        flags |= FAVORITE;
    }
    if rng.chance(0.015) {
        flags |= HIDDEN;
    }
    if rng.chance(0.015) {
        flags |= DELETED;
    }
    if rng.chance(0.06) {
        flags |= EDITED;
    }
    flags
}

/// Generate zone number `number` with `count` assets (and the albums when `with_albums`).
pub fn generate_zone(seed: u64, number: usize, count: usize, with_albums: bool) -> Zone {
    let count = count.min(u32::MAX as usize / 2);
    let mut assets = Vec::with_capacity(count);
    let span = REFERENCE_NOW_MS - DAY_MS - START_MS;
    let slot = (span / count.max(1) as i64).max(1);
    let mut burst_left = 0u32;
    let mut next_burst = 1u32;
    for idx in 0..count as u32 {
        let key = asset_key(number, idx);
        let mut rng = Rng::new(seed, KIND_STREAM, key);
        let coverage = idx
            .checked_sub(COVERAGE_START)
            .and_then(|i| COVERAGE.get(i as usize).copied());
        let forced = special_kind(idx).or(coverage);
        if forced.is_some() {
            burst_left = 0;
        }
        let mut kind = forced.unwrap_or_else(|| pick_kind(&mut rng));
        let mut flags = match FORCED_FLAGS.iter().find(|(i, _)| *i == idx) {
            Some((_, f)) => *f,
            None if idx < 30 => 0,
            None => pick_flags(&mut rng),
        };
        let mut burst = 0;
        let mut asset_date = START_MS + slot * i64::from(idx) + rng.below(slot as u64) as i64;
        if burst_left > 0 {
            // Continue the burst: same kind, a fraction of a second after the previous shot.
            kind = AssetKind::Burst;
            burst = next_burst - 1;
            burst_left -= 1;
            if let Some(prev) = assets.last() {
                let prev: &Asset = prev;
                asset_date = prev.asset_date + rng.range(80, 400);
            }
            flags &= !EDITED;
        } else if kind == AssetKind::Burst {
            burst = next_burst;
            next_burst += 1;
            burst_left = rng.range(2, 7) as u32;
        }
        let added_date = asset_date + added_delay(&mut rng, asset_date);
        let date_expunged = if flags & DELETED != 0 {
            let deleted_at = (REFERENCE_NOW_MS - rng.range(0, 29 * DAY_MS)).max(added_date + 1000);
            deleted_at + EXPUNGE_AFTER_MS
        } else {
            0
        };
        assets.push(Asset {
            key,
            asset_date,
            added_date,
            date_expunged,
            master_seq: 0,
            asset_seq: 0,
            burst,
            edit_gen: u16::from(flags & EDITED != 0),
            kind,
            flags,
        });
    }

    let mut albums = Vec::new();
    let mut members: Vec<Vec<u32>> = Vec::new();
    if with_albums {
        generate_albums(seed, number, &assets, &mut albums, &mut members);
    }

    let relation_count: usize = members.iter().map(Vec::len).sum();
    let mut log = ChangeLog::with_capacity(albums.len() + 2 * assets.len() + relation_count + 1);
    for (i, album) in albums.iter_mut().enumerate() {
        album.seq = log.append(RecordRef::Album(i as u32));
    }
    for (i, a) in assets.iter_mut().enumerate() {
        a.master_seq = log.append(RecordRef::Master(i as u32));
        a.asset_seq = log.append(RecordRef::Asset(i as u32));
    }
    let mut relations = HashMap::with_capacity(relation_count);
    let mut asset_albums: HashMap<u32, Vec<u32>> = HashMap::new();
    for (album, list) in members.iter().enumerate() {
        let album = album as u32;
        for (pos, &asset) in list.iter().enumerate() {
            let seq = log.append(RecordRef::Relation { album, asset });
            relations.insert(
                (album, asset),
                Relation {
                    seq,
                    position: 1024 * (pos as i64 + 1),
                    live: true,
                    key_asset: pos == 0,
                },
            );
            asset_albums.entry(asset).or_default().push(album);
        }
        if let Some(a) = albums.get_mut(album as usize) {
            a.next_position = 1024 * (list.len() as i64 + 1);
        }
    }
    let library_info_seq = log.append(RecordRef::LibraryInfo);
    let indexes = Indexes::build(&assets, &members);
    Zone {
        number,
        assets,
        albums,
        relations,
        asset_albums,
        indexes,
        log,
        library_info_seq,
        last_db_change: 0,
        next_burst,
    }
}

/// How long after capture an asset was added: mostly seconds, sometimes days, rarely years.
pub fn added_delay(rng: &mut Rng, asset_date: i64) -> i64 {
    let roll = rng.unit();
    if roll < 0.70 {
        rng.range(1_000, 120_000)
    } else if roll < 0.95 {
        rng.range(3_600_000, 30 * DAY_MS)
    } else {
        rng.range(0, (REFERENCE_NOW_MS - asset_date).max(0))
    }
}

fn generate_albums(
    seed: u64,
    number: usize,
    assets: &[Asset],
    albums: &mut Vec<Album>,
    members: &mut Vec<Vec<u32>>,
) {
    let n = assets.len() as u32;
    let mut rng = Rng::new(seed, ALBUM_STREAM, number as u64);
    albums.push(Album {
        name: ROOT_FOLDER.to_string(),
        kind: AlbumKind::Root,
        parent: None,
        position: 0,
        deleted: false,
        created_ms: START_MS,
        seq: 0,
        next_position: 0,
    });
    members.push(Vec::new());
    for (i, &(name, kind, parent, fill, deleted)) in ALBUMS.iter().enumerate() {
        albums.push(Album {
            name: name.to_string(),
            kind,
            parent,
            position: 1024 * (i as i64 + 1) + rng.range(0, 500),
            deleted,
            created_ms: REFERENCE_NOW_MS - rng.range(DAY_MS, 3000 * DAY_MS),
            seq: 0,
            next_position: 0,
        });
        let list = match fill {
            Fill::Empty => Vec::new(),
            Fill::Big => {
                let want = (n / 2).min(5000);
                let stride = (n / want.max(1)).max(1);
                (0..want).map(|j| j * stride).filter(|&j| j < n).collect()
            }
            Fill::Screenshots => assets
                .iter()
                .enumerate()
                .filter(|(_, a)| a.kind == AssetKind::Screenshot)
                .map(|(j, _)| j as u32)
                .take(300)
                .collect(),
            Fill::Random => {
                let want = (n / 40).clamp(n.min(3), 400);
                let mut picked: Vec<u32> =
                    (0..want).map(|_| rng.below(u64::from(n)) as u32).collect();
                picked.sort_unstable();
                picked.dedup();
                picked
            }
        };
        members.push(list);
    }
}
