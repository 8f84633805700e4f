//! The compact in-memory form of assets and albums, and everything derived from it.
//!
//! An [`Asset`] keeps only what can change or what orders the indexes (dates, flags, change
//! sequence numbers). Names, sizes, dimensions, checksums, locations and captions are derived
//! on demand from a keyed hash of (seed, asset key), which keeps a million assets in a few tens
//! of megabytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::ids::Rng;
use crate::sim::content::{Format, Resource};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// The fixed "now" of generated data (2025-01-01T00:00:00Z), so generation is reproducible.
pub const REFERENCE_NOW_MS: i64 = 1_735_689_600_000;
/// Retention of Recently Deleted.
pub const EXPUNGE_AFTER_MS: i64 = 30 * DAY_MS;

/// Bits of the asset key above the per-zone asset number.
pub const ZONE_SHIFT: u32 = 40;

/// Asset key of the asset at `idx` in zone number `zone`.
pub fn asset_key(zone: usize, idx: u32) -> u64 {
    ((zone as u64) << ZONE_SHIFT) | (u64::from(idx) + 1)
}

/// Zone number and index of an asset key (None for key 0 of a zone).
pub fn split_key(key: u64) -> Option<(usize, u32)> {
    let n = key & ((1 << ZONE_SHIFT) - 1);
    let idx = u32::try_from(n.checked_sub(1)?).ok()?;
    Some(((key >> ZONE_SHIFT) as usize, idx))
}

/// What an asset is: decides its renditions, UTIs and smart-folder membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AssetKind {
    HeicPhoto,
    JpegPhoto,
    /// PNG screenshot (`assetSubtypeV2` 3).
    Screenshot,
    MovVideo,
    Mp4Video,
    /// HEIC still + QuickTime motion (`assetSubtypeV2` 2).
    LiveHeic,
    /// JPEG still + QuickTime motion, as in the recordings.
    LiveJpeg,
    /// DNG original + JPEG `resOriginalAlt`.
    RawDng,
    /// CR2 original + JPEG `resOriginalAlt`.
    RawCr2,
    /// `assetSubtype` 1.
    Panorama,
    /// `assetSubtype` 101 (QuickTime).
    TimeLapse,
    /// `assetSubtype` 100 (QuickTime).
    SloMo,
    /// JPEG member of a burst (`burstId`).
    Burst,
    /// HEIC with depth (`adjustmentRenderType` bit 2: Portrait).
    Portrait,
    /// Live photo rendered as a long exposure (`adjustmentRenderType` bit 4).
    LongExposure,
}

impl AssetKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AssetKind; 15] = [
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
        AssetKind::Burst,
        AssetKind::Portrait,
        AssetKind::LongExposure,
    ];

    /// Format of the original file.
    pub fn original_format(self) -> Format {
        match self {
            AssetKind::HeicPhoto
            | AssetKind::LiveHeic
            | AssetKind::Panorama
            | AssetKind::Portrait
            | AssetKind::LongExposure => Format::Heic,
            AssetKind::JpegPhoto | AssetKind::LiveJpeg | AssetKind::Burst => Format::Jpeg,
            AssetKind::Screenshot => Format::Png,
            AssetKind::MovVideo | AssetKind::TimeLapse | AssetKind::SloMo => Format::Mov,
            AssetKind::Mp4Video => Format::Mp4,
            AssetKind::RawDng => Format::Dng,
            AssetKind::RawCr2 => Format::Cr2,
        }
    }

    /// True for videos (`dataClassType` 2).
    pub fn is_movie(self) -> bool {
        matches!(
            self,
            AssetKind::MovVideo | AssetKind::Mp4Video | AssetKind::TimeLapse | AssetKind::SloMo
        )
    }

    /// True for live photos.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            AssetKind::LiveHeic | AssetKind::LiveJpeg | AssetKind::LongExposure
        )
    }

    /// True for RAW+JPEG pairs.
    pub fn is_raw(self) -> bool {
        matches!(self, AssetKind::RawDng | AssetKind::RawCr2)
    }

    /// `assetSubtype`.
    pub fn asset_subtype(self) -> i64 {
        match self {
            AssetKind::Panorama => 1,
            AssetKind::SloMo => 100,
            AssetKind::TimeLapse => 101,
            _ => 0,
        }
    }

    /// `assetSubtypeV2`.
    pub fn asset_subtype_v2(self) -> i64 {
        if self.is_live() {
            2
        } else if self == AssetKind::Screenshot {
            3
        } else {
            0
        }
    }

    /// `adjustmentRenderType`.
    pub fn adjustment_render_type(self) -> i64 {
        match self {
            AssetKind::Portrait => 2,
            AssetKind::LongExposure => 4,
            _ => 0,
        }
    }

    /// File name extension of the original, as icloudpd spells it.
    pub fn extension(self) -> &'static str {
        match self.original_format() {
            Format::Heic => "HEIC",
            Format::Jpeg => "JPG",
            Format::Png => "PNG",
            Format::Mov => "MOV",
            Format::Mp4 => "MP4",
            Format::Dng => "DNG",
            Format::Cr2 => "CR2",
        }
    }
}

/// Asset flag: `isFavorite` 1.
pub const FAVORITE: u8 = 1;
/// Asset flag: `isHidden` 1.
pub const HIDDEN: u8 = 2;
/// Asset flag: in Recently Deleted (`isDeleted` 1).
pub const DELETED: u8 = 4;
/// Asset flag: hard-deleted; only its change-log entries remain.
pub const PURGED: u8 = 8;
/// Asset flag: has an adjusted (edited) version on the CPLAsset.
pub const EDITED: u8 = 16;

/// One asset (a CPLMaster + CPLAsset pair), compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Stable number (zone << 40 | index + 1), never reused.
    pub key: u64,
    /// Capture date, ms since the epoch.
    pub asset_date: i64,
    /// Date added to the library, ms (≥ `asset_date` for generated assets).
    pub added_date: i64,
    /// `dateExpunged` in ms when in Recently Deleted, else 0.
    pub date_expunged: i64,
    /// Change-log sequence of the CPLMaster's current version.
    pub master_seq: u32,
    /// Change-log sequence of the CPLAsset's current version.
    pub asset_seq: u32,
    /// Burst group number (0 = not in a burst).
    pub burst: u32,
    /// Edit generation (bumped by every edit; the adjusted renditions' content generation).
    pub edit_gen: u16,
    pub kind: AssetKind,
    /// Bits of [`FAVORITE`], [`HIDDEN`], [`DELETED`], [`PURGED`], [`EDITED`].
    pub flags: u8,
}

impl Asset {
    /// True if `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Shown in All Photos, smart folders and albums: not hidden, deleted or purged.
    pub fn is_visible(&self) -> bool {
        self.flags & (HIDDEN | DELETED | PURGED) == 0
    }

    /// Index of the asset inside its zone.
    pub fn idx(&self) -> u32 {
        split_key(self.key).map(|(_, i)| i).unwrap_or(0)
    }
}

/// A downloadable rendition, numbered for the CDN's [`crate::sim::content::Resource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Rendition {
    Original = 0,
    OriginalAlt = 1,
    OriginalVidCompl = 2,
    JpegMed = 3,
    JpegThumb = 4,
    VidMed = 5,
    VidSmall = 6,
    /// Adjusted photo, on the CPLAsset.
    JpegFull = 7,
    /// Thumbnail of the adjusted version, on the CPLAsset.
    AssetJpegThumb = 8,
    /// Adjusted video, on the CPLAsset.
    VidFull = 9,
}

impl Rendition {
    /// The field-name prefix after `res` (`resJPEGMedRes`, ...).
    pub fn prefix(self) -> &'static str {
        match self {
            Rendition::Original => "Original",
            Rendition::OriginalAlt => "OriginalAlt",
            Rendition::OriginalVidCompl => "OriginalVidCompl",
            Rendition::JpegMed => "JPEGMed",
            Rendition::JpegThumb | Rendition::AssetJpegThumb => "JPEGThumb",
            Rendition::VidMed => "VidMed",
            Rendition::VidSmall => "VidSmall",
            Rendition::JpegFull => "JPEGFull",
            Rendition::VidFull => "VidFull",
        }
    }

    /// True for renditions carried by the CPLAsset (edits).
    pub fn on_asset(self) -> bool {
        matches!(
            self,
            Rendition::JpegFull | Rendition::AssetJpegThumb | Rendition::VidFull
        )
    }
}

/// Renditions of the CPLMaster, in rendering order.
pub fn master_renditions(kind: AssetKind) -> &'static [Rendition] {
    use Rendition::*;
    if kind.is_movie() {
        &[Original, JpegMed, JpegThumb, VidMed, VidSmall]
    } else if kind.is_live() {
        &[
            Original,
            OriginalVidCompl,
            JpegMed,
            JpegThumb,
            VidMed,
            VidSmall,
        ]
    } else if kind.is_raw() {
        &[Original, OriginalAlt, JpegMed, JpegThumb]
    } else {
        &[Original, JpegMed, JpegThumb]
    }
}

/// Renditions of the CPLAsset (only edited assets have any).
pub fn asset_renditions(asset: &Asset) -> &'static [Rendition] {
    if !asset.has(EDITED) {
        &[]
    } else if asset.kind.is_movie() {
        &[Rendition::VidFull, Rendition::AssetJpegThumb]
    } else {
        &[Rendition::JpegFull, Rendition::AssetJpegThumb]
    }
}

/// Format of a rendition of an asset kind.
pub fn rendition_format(kind: AssetKind, r: Rendition) -> Format {
    match r {
        Rendition::Original => kind.original_format(),
        Rendition::OriginalVidCompl | Rendition::VidFull => Format::Mov,
        Rendition::VidMed | Rendition::VidSmall => {
            if kind.is_live() {
                Format::Mov
            } else {
                Format::Mp4
            }
        }
        Rendition::OriginalAlt
        | Rendition::JpegMed
        | Rendition::JpegThumb
        | Rendition::JpegFull => Format::Jpeg,
        Rendition::AssetJpegThumb => Format::Jpeg,
    }
}

/// Labels of independent random streams.
mod stream {
    pub const SIZE: u64 = 1;
    pub const DIMS: u64 = 2;
    pub const CHECKSUM: u64 = 3;
    pub const META: u64 = 4;
    pub const CREATED: u64 = 5;
}

/// Everything about one rendition that the JSON and the CDN need.
#[derive(Debug, Clone)]
pub struct RenditionFacts {
    pub rendition: Rendition,
    pub format: Format,
    /// Content generation (edit generation for asset-level renditions).
    pub generation: u32,
    pub size: u64,
    pub width: i64,
    pub height: i64,
    /// `fileChecksum` = `Fingerprint` (standard base64 of 21 bytes).
    pub file_checksum: String,
    pub reference_checksum: String,
    pub wrapping_key: String,
}

impl RenditionFacts {
    /// The CDN resource this rendition is served as.
    pub fn resource(&self, asset_key: u64) -> Resource {
        Resource {
            asset_key,
            rendition: self.rendition as u8,
            generation: self.generation,
            size: self.size,
            format: self.format,
        }
    }
}

/// Derives an asset's immutable facts from (seed, key).
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub seed: u64,
    pub size_scale: f64,
}

const MB: f64 = 1_000_000.0;

impl Facts {
    /// Byte size of a rendition (at least 1 KiB so file headers fit).
    pub fn size(&self, asset: &Asset, r: Rendition) -> u64 {
        let generation = if r.on_asset() {
            u64::from(asset.edit_gen)
        } else {
            0
        };
        let mut rng = Rng::new(
            self.seed,
            stream::SIZE,
            asset.key ^ ((r as u64) << 48) ^ (generation << 52),
        );
        let original = self.original_bytes(asset);
        let bytes = match r {
            Rendition::Original => original,
            Rendition::OriginalAlt => 1.0 * MB + rng.unit() * 5.0 * MB,
            Rendition::OriginalVidCompl => 1.0 * MB + rng.unit() * 3.0 * MB,
            Rendition::JpegMed => 100_000.0 + rng.unit() * 600_000.0,
            Rendition::JpegThumb | Rendition::AssetJpegThumb => 20_000.0 + rng.unit() * 60_000.0,
            Rendition::VidMed if asset.kind.is_live() => 500_000.0 + rng.unit() * 1.5 * MB,
            Rendition::VidSmall if asset.kind.is_live() => 100_000.0 + rng.unit() * 400_000.0,
            Rendition::VidMed => original * (0.1 + rng.unit() * 0.1),
            Rendition::VidSmall => original * (0.02 + rng.unit() * 0.03),
            Rendition::JpegFull => 1.0 * MB + rng.unit() * 5.0 * MB,
            Rendition::VidFull => original * (0.8 + rng.unit() * 0.2),
        };
        ((bytes * self.size_scale) as u64).max(1024)
    }

    /// Unscaled size of the original: photos 1-8 MB, videos 10 MB-2 GB (most under 200 MB).
    fn original_bytes(&self, asset: &Asset) -> f64 {
        let mut rng = Rng::new(self.seed, stream::SIZE, asset.key);
        if asset.kind.is_movie() {
            // 10 MB * 200^(u^3): median ~ 15 MB, long tail up to 2 GB.
            let u = rng.unit();
            10.0 * MB * 200f64.powf(u * u * u)
        } else {
            1.0 * MB + rng.unit() * 7.0 * MB
        }
    }

    /// Pixel dimensions of a rendition.
    pub fn dims(&self, asset: &Asset, r: Rendition) -> (i64, i64) {
        let mut rng = Rng::new(self.seed, stream::DIMS, asset.key);
        let portrait = rng.chance(0.3);
        let (w, h) = match asset.kind {
            AssetKind::Screenshot => {
                [(1170, 2532), (1284, 2778), (2532, 1170)][rng.below(3) as usize]
            }
            AssetKind::Panorama => (12_000 + rng.range(0, 4000), 3000 + rng.range(0, 600)),
            AssetKind::RawCr2 => (6000, 4000),
            k if k.is_movie() => [(1920, 1080), (3840, 2160), (1280, 720)][rng.below(3) as usize],
            _ => (4032, 3024),
        };
        let (w, h) = if portrait && asset.kind != AssetKind::Panorama {
            (h, w)
        } else {
            (w, h)
        };
        let long_side = match r {
            Rendition::Original
            | Rendition::OriginalAlt
            | Rendition::JpegFull
            | Rendition::VidFull => return (w, h),
            Rendition::JpegMed => 2048,
            Rendition::JpegThumb | Rendition::AssetJpegThumb => 480,
            Rendition::OriginalVidCompl => 1440,
            Rendition::VidMed => 1280,
            Rendition::VidSmall => 640,
        };
        scale_to(w, h, long_side)
    }

    /// Every fact of a rendition except its URL.
    pub fn rendition(&self, asset: &Asset, master_name: &str, r: Rendition) -> RenditionFacts {
        let generation = if r.on_asset() {
            u32::from(asset.edit_gen)
        } else {
            0
        };
        let mut rng = Rng::new(
            self.seed,
            stream::CHECKSUM,
            asset.key ^ ((r as u64) << 48) ^ (u64::from(generation) << 52),
        );
        let mut sig = [0u8; 21];
        sig[0] = 0x01;
        let file_checksum = if r == Rendition::Original {
            master_name.to_string()
        } else {
            rng.fill(&mut sig[1..]);
            STANDARD.encode(sig)
        };
        rng.fill(&mut sig[1..]);
        let reference_checksum = STANDARD.encode(sig);
        let mut key = [0u8; 16];
        rng.fill(&mut key);
        let (width, height) = self.dims(asset, r);
        RenditionFacts {
            rendition: r,
            format: rendition_format(asset.kind, r),
            generation,
            size: self.size(asset, r),
            width,
            height,
            file_checksum,
            reference_checksum,
            wrapping_key: STANDARD.encode(key),
        }
    }

    /// `created.timestamp` of an asset's records: shortly after it was added.
    pub fn created_ms(&self, asset: &Asset) -> i64 {
        asset.added_date + Rng::new(self.seed, stream::CREATED, asset.key).range(1_000, 60_000)
    }

    /// Descriptive metadata of an asset.
    pub fn meta(&self, asset: &Asset) -> AssetMeta {
        let mut rng = Rng::new(self.seed, stream::META, asset.key);
        let tz = TIME_ZONES[rng.below(TIME_ZONES.len() as u64) as usize];
        let orientation = if rng.chance(0.25) { 6 } else { 1 };
        let location =
            (!matches!(asset.kind, AssetKind::Screenshot) && rng.chance(0.6)).then(|| Location {
                lat: rng.unit() * 140.0 - 70.0,
                lon: rng.unit() * 360.0 - 180.0,
                alt: rng.unit() * 3000.0,
                speed: if rng.chance(0.8) {
                    0.0
                } else {
                    rng.unit() * 30.0
                },
                course: if rng.chance(0.5) {
                    -1.0
                } else {
                    rng.unit() * 360.0
                },
                horz_acc: 5.0 + rng.unit() * 60.0,
                vert_acc: 3.0 + rng.unit() * 20.0,
                timestamp_ms: asset.asset_date,
            });
        let caption = rng
            .chance(0.04)
            .then(|| CAPTIONS[rng.below(CAPTIONS.len() as u64) as usize]);
        let keywords: Vec<&'static str> = if rng.chance(0.04) {
            let n = 1 + rng.below(3) as usize;
            (0..n)
                .map(|_| KEYWORDS[rng.below(KEYWORDS.len() as u64) as usize])
                .collect()
        } else {
            Vec::new()
        };
        let duration_ms = if asset.kind.is_movie() {
            rng.range(2_000, 600_000)
        } else {
            0
        };
        let live_duration = rng.range(1_500_000_000, 3_000_000_000);
        let live_still = rng.range(0, live_duration);
        let created_ms = self.created_ms(asset);
        let hdr = i64::from(!asset.kind.is_movie() && rng.chance(0.2));
        AssetMeta {
            tz_offset_secs: tz,
            orientation,
            location,
            caption,
            keywords,
            duration_ms,
            live_duration_ns: live_duration,
            live_still_ns: live_still,
            created_ms,
            hdr,
        }
    }
}

/// `timeZoneOffset` values (seconds east of UTC), including half- and quarter-hour zones.
pub const TIME_ZONES: [i64; 14] = [
    -28_800, -25_200, -18_000, -14_400, -10_800, 0, 3600, 7200, 19_800, 20_700, 28_800, 32_400,
    34_200, 45_900,
];

const CAPTIONS: [&str; 5] = [
    "Sunset at the lake",
    "Grandma's 80th 🎂",
    "Première neige",
    "雪の日",
    "Line one\nline two \"quoted\"",
];

const KEYWORDS: [&str; 6] = ["family", "travel", "été", "猫", "work", "hiking"];

/// GPS fix of an asset (`locationEnc`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    pub alt: f64,
    pub speed: f64,
    pub course: f64,
    pub horz_acc: f64,
    pub vert_acc: f64,
    pub timestamp_ms: i64,
}

/// Derived descriptive metadata.
#[derive(Debug, Clone)]
pub struct AssetMeta {
    pub tz_offset_secs: i64,
    pub orientation: i64,
    pub location: Option<Location>,
    pub caption: Option<&'static str>,
    pub keywords: Vec<&'static str>,
    pub duration_ms: i64,
    pub live_duration_ns: i64,
    pub live_still_ns: i64,
    /// `created.timestamp` of both records.
    pub created_ms: i64,
    pub hdr: i64,
}

/// Scale (w, h) so the longer side is `long_side` (never up).
pub fn scale_to(w: i64, h: i64, long_side: i64) -> (i64, i64) {
    let long = w.max(h);
    if long <= long_side || long == 0 {
        return (w, h);
    }
    ((w * long_side / long).max(1), (h * long_side / long).max(1))
}

/// How a master's filename is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameEncoding {
    /// `filenameEnc` `ENCRYPTED_BYTES` (base64 of UTF-8), as for every recorded asset.
    Base64,
    /// `filenameEnc` `STRING` (plain text).
    Plain,
    /// No `filenameEnc` at all.
    Absent,
}

/// Special file names given to the first assets of each zone (index, stem, kind, encoding), to
/// exercise unicode, reserved characters, over-long names, `STRING` and absent encodings.
pub const SPECIAL_NAMES: [(u32, &str, AssetKind, NameEncoding); 6] = [
    (
        1,
        "Été à Zürich",
        AssetKind::JpegPhoto,
        NameEncoding::Base64,
    ),
    (2, "写真", AssetKind::HeicPhoto, NameEncoding::Base64),
    (
        3,
        "a/b:c*d?e<f>g|h\"i",
        AssetKind::JpegPhoto,
        NameEncoding::Base64,
    ),
    (4, "", AssetKind::JpegPhoto, NameEncoding::Base64),
    (5, "", AssetKind::Screenshot, NameEncoding::Plain),
    (6, "", AssetKind::HeicPhoto, NameEncoding::Absent),
];

/// Stem of the over-long name (given to index 4): well over 255 bytes with its extension.
fn long_stem() -> String {
    "A very long file name that goes on and on "
        .repeat(7)
        .trim_end()
        .to_string()
}

/// The asset's filename and how `filenameEnc` carries it (None = absent).
pub fn filename(asset: &Asset) -> (Option<String>, NameEncoding) {
    let idx = asset.idx();
    let counter = idx % 9999 + 1;
    let default = format!("IMG_{counter:04}.{}", asset.kind.extension());
    match SPECIAL_NAMES
        .iter()
        .find(|s| s.0 == idx && s.2 == asset.kind)
    {
        None => (Some(default), NameEncoding::Base64),
        Some(&(4, ..)) => (
            Some(format!("{}.{}", long_stem(), asset.kind.extension())),
            NameEncoding::Base64,
        ),
        Some(&(_, "", _, NameEncoding::Absent)) => (None, NameEncoding::Absent),
        Some(&(_, "", _, enc)) => (Some(default), enc),
        Some(&(_, stem, _, enc)) => (Some(format!("{stem}.{}", asset.kind.extension())), enc),
    }
}

/// The kind a special slot forces, if `idx` is one.
pub fn special_kind(idx: u32) -> Option<AssetKind> {
    SPECIAL_NAMES.iter().find(|s| s.0 == idx).map(|s| s.2)
}

/// What an album record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlbumKind {
    /// The `----Root-Folder----` sentinel.
    Root,
    /// A folder of albums (`albumType` 3).
    Folder,
    /// An ordinary album (`albumType` 0).
    Album,
}

/// One CPLAlbum.
#[derive(Debug, Clone)]
pub struct Album {
    pub name: String,
    pub kind: AlbumKind,
    /// Index of the parent folder (None = top level).
    pub parent: Option<u32>,
    pub position: i64,
    pub deleted: bool,
    pub created_ms: i64,
    /// Change-log sequence of the current version.
    pub seq: u32,
    /// Next relation position to hand out.
    pub next_position: i64,
}

impl Album {
    /// `albumType`.
    pub fn album_type(&self) -> i64 {
        match self.kind {
            AlbumKind::Album => 0,
            AlbumKind::Root | AlbumKind::Folder => 3,
        }
    }
}

/// One CPLContainerRelation (asset in album).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    /// Change-log sequence of the current version.
    pub seq: u32,
    pub position: i64,
    /// False once removed (rendered as a hard delete).
    pub live: bool,
    pub key_asset: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(kind: AssetKind, idx: u32) -> Asset {
        Asset {
            key: asset_key(0, idx),
            asset_date: REFERENCE_NOW_MS,
            added_date: REFERENCE_NOW_MS,
            date_expunged: 0,
            master_seq: 1,
            asset_seq: 2,
            burst: 0,
            edit_gen: 0,
            kind,
            flags: 0,
        }
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(split_key(asset_key(1, 7)), Some((1, 7)));
        assert_eq!(split_key(asset_key(0, 0)), Some((0, 0)));
        assert_eq!(split_key(0), None);
    }

    #[test]
    fn sizes_scale_and_never_drop_below_a_kib() {
        let f = Facts {
            seed: 1,
            size_scale: 1.0,
        };
        let a = asset(AssetKind::HeicPhoto, 100);
        let s = f.size(&a, Rendition::Original);
        assert!((1_000_000..=8_000_000).contains(&s), "{s}");
        let tiny = Facts {
            seed: 1,
            size_scale: 1e-9,
        };
        assert_eq!(tiny.size(&a, Rendition::Original), 1024);
        let v = asset(AssetKind::MovVideo, 101);
        let vs = f.size(&v, Rendition::Original);
        assert!((10_000_000..=2_000_000_000).contains(&vs), "{vs}");
    }

    #[test]
    fn edits_change_only_asset_level_content() {
        let f = Facts {
            seed: 1,
            size_scale: 1.0,
        };
        let mut a = asset(AssetKind::JpegPhoto, 100);
        a.flags |= EDITED;
        a.edit_gen = 1;
        let name = "x";
        let before = f.rendition(&a, name, Rendition::JpegFull);
        let orig_before = f.rendition(&a, name, Rendition::Original);
        a.edit_gen = 2;
        let after = f.rendition(&a, name, Rendition::JpegFull);
        assert_ne!(before.file_checksum, after.file_checksum);
        assert_eq!(after.generation, 2);
        assert_eq!(
            f.rendition(&a, name, Rendition::Original).size,
            orig_before.size
        );
    }

    #[test]
    fn special_and_wrapping_names() {
        let (n, enc) = filename(&asset(AssetKind::JpegPhoto, 1));
        assert_eq!(n.as_deref(), Some("Été à Zürich.JPG"));
        assert_eq!(enc, NameEncoding::Base64);
        let (n, _) = filename(&asset(AssetKind::JpegPhoto, 4));
        assert!(n.unwrap().len() > 255);
        assert_eq!(
            filename(&asset(AssetKind::HeicPhoto, 6)).1,
            NameEncoding::Absent
        );
        assert_eq!(
            filename(&asset(AssetKind::Screenshot, 5)).1,
            NameEncoding::Plain
        );
        assert_eq!(
            filename(&asset(AssetKind::JpegPhoto, 0)).0.as_deref(),
            Some("IMG_0001.JPG")
        );
        assert_eq!(
            filename(&asset(AssetKind::JpegPhoto, 9999)).0.as_deref(),
            Some("IMG_0001.JPG")
        );
        assert_eq!(
            filename(&asset(AssetKind::MovVideo, 9998)).0.as_deref(),
            Some("IMG_9999.MOV")
        );
    }
}
