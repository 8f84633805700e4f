//! The compact in-memory form of assets and albums: what an asset is (its kind and renditions),
//! its flags, and its file name.
//!
//! An [`Asset`] keeps only what can change or what orders the indexes (dates, flags, change
//! sequence numbers). Sizes, dimensions, checksums, locations and captions are derived on
//! demand by [`super::facts`] from a keyed hash of (seed, asset key), and names from the asset's
//! index, which keeps a million assets in a few tens of megabytes.

use crate::sim::content::Format;

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
    /// Every rendition, by number.
    pub const ALL: [Rendition; 10] = [
        Rendition::Original,
        Rendition::OriginalAlt,
        Rendition::OriginalVidCompl,
        Rendition::JpegMed,
        Rendition::JpegThumb,
        Rendition::VidMed,
        Rendition::VidSmall,
        Rendition::JpegFull,
        Rendition::AssetJpegThumb,
        Rendition::VidFull,
    ];

    /// The rendition with this number (inverse of `as u8`).
    pub fn from_u8(n: u8) -> Option<Rendition> {
        Rendition::ALL.get(n as usize).copied()
    }

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
    // Cameras count IMG_0001 to IMG_9999 and wrap; phones restart at IMG_0001 when reset.
    // One asset in 25 restarts the count, so that a library of a few hundred assets already
    // holds many IMG_0001 of each kind (same name, other bytes).
    let counter = if idx % 25 == 12 { 1 } else { idx % 9999 + 1 };
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
pub(crate) mod tests {
    use super::*;

    /// An asset of `kind` at index `idx` of library 0, dated at the reference time.
    pub(crate) fn asset(kind: AssetKind, idx: u32) -> Asset {
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

    #[test]
    fn small_libraries_already_hold_many_img_0001() {
        use super::super::tests::{library, primary};
        let lib = library(300);
        let names: Vec<_> = primary(&lib)
            .read()
            .assets
            .iter()
            .map(|a| filename(a).0)
            .collect();
        let count = |name: &str| names.iter().filter(|n| n.as_deref() == Some(name)).count();
        let (jpg, heic) = (count("IMG_0001.JPG"), count("IMG_0001.HEIC"));
        assert!(jpg >= 3 && heic >= 3, "IMG_0001: {jpg} JPG, {heic} HEIC");
    }
}
