//! The domain model shared by the client-side modules: what an iCloud Photos asset, its
//! downloadable versions and an album are, independent of how CloudKit encodes them
//! (`cloudkit` parses into these types), how they are stored (`catalog`) or laid out on disk
//! (`layout`).
//!
//! The simulator (`sim`) deliberately does not use these types: it implements the server side
//! from the protocol notes, so that a shared misunderstanding cannot hide a protocol bug.

use serde::{Deserialize, Serialize};

/// Whether an asset is a still image or a movie, decided from the master's `itemType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Image,
    Movie,
    /// `itemType` absent or without a value: the image table is used (as icloudpd does).
    Unknown,
}

impl ItemKind {
    /// Stable text form, used in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Image => "image",
            ItemKind::Movie => "movie",
            ItemKind::Unknown => "unknown",
        }
    }

    /// Inverse of [`ItemKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "image" => ItemKind::Image,
            "movie" => ItemKind::Movie,
            "unknown" => ItemKind::Unknown,
            _ => return None,
        })
    }
}

/// One downloadable rendition of an asset, named as in the protocol notes (section 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    Original,
    Alternative,
    Medium,
    Thumb,
    Adjusted,
    LiveOriginal,
    LiveMedium,
    LiveThumb,
    LiveAdjusted,
}

impl VersionKind {
    /// Every kind, in a fixed order.
    pub const ALL: [VersionKind; 9] = [
        VersionKind::Original,
        VersionKind::Alternative,
        VersionKind::Medium,
        VersionKind::Thumb,
        VersionKind::Adjusted,
        VersionKind::LiveOriginal,
        VersionKind::LiveMedium,
        VersionKind::LiveThumb,
        VersionKind::LiveAdjusted,
    ];

    /// Stable text form (also the simulator manifest's `version` values).
    pub fn as_str(self) -> &'static str {
        match self {
            VersionKind::Original => "original",
            VersionKind::Alternative => "alternative",
            VersionKind::Medium => "medium",
            VersionKind::Thumb => "thumb",
            VersionKind::Adjusted => "adjusted",
            VersionKind::LiveOriginal => "live_original",
            VersionKind::LiveMedium => "live_medium",
            VersionKind::LiveThumb => "live_thumb",
            VersionKind::LiveAdjusted => "live_adjusted",
        }
    }

    /// Inverse of [`VersionKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        VersionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True for the motion part of a live photo.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            VersionKind::LiveOriginal
                | VersionKind::LiveMedium
                | VersionKind::LiveThumb
                | VersionKind::LiveAdjusted
        )
    }
}

/// A downloadable version of an asset as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub kind: VersionKind,
    /// Exact byte length served by the CDN.
    pub size: u64,
    /// The rendition's UTI (`public.jpeg`, `com.apple.quicktime-movie`, ...).
    pub file_type: String,
    /// Apple's `fileChecksum` (base64). Not a hash of the bytes; identifies the content.
    pub checksum: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// A version as listed by CloudKit: the catalog data plus the signed, short-lived download URL.
/// The URL is used at once or thrown away; it is never the source of truth.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedVersion {
    pub version: Version,
    pub download_url: String,
}

/// GPS position of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub altitude: Option<f64>,
    /// Speed over ground when the fix was taken, in metres per second, as the device
    /// recorded it (Core Location reports a negative speed when it had none).
    #[serde(default)]
    pub speed: Option<f64>,
    /// When the fix was taken (UTC, milliseconds since the Unix epoch): a photo taken from a
    /// stale fix has a time before its capture date.
    #[serde(default)]
    pub gps_time_ms: Option<i64>,
}

/// One photo or video: a CPLMaster joined with its CPLAsset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// CPLMaster recordName: the identity of the asset (names, state, dedup).
    pub id: String,
    /// CPLAsset recordName (the record `records/modify` updates).
    pub asset_record: String,
    /// CPLAsset recordChangeTag (sent back by `records/modify`).
    pub asset_change_tag: Option<String>,
    /// Zone (library) the asset lives in, e.g. `PrimarySync`.
    pub zone: String,
    /// Decoded `filenameEnc`; `None` when absent or undecodable (see `filename_problem`).
    pub filename: Option<String>,
    /// Why `filename` is `None` or was repaired, if it was.
    pub filename_problem: Option<String>,
    /// The master's `itemType` UTI, if any.
    pub item_type: Option<String>,
    pub kind: ItemKind,
    /// Capture date, milliseconds since the Unix epoch (UTC).
    pub asset_date_ms: i64,
    /// Date added to the library, milliseconds since the Unix epoch (UTC).
    pub added_date_ms: i64,
    /// Seconds east of UTC at capture, when known.
    pub tz_offset_s: Option<i32>,
    pub favorite: bool,
    pub hidden: bool,
    /// In Recently Deleted.
    pub deleted: bool,
    /// When Recently Deleted will purge it, milliseconds since the epoch.
    pub date_expunged_ms: Option<i64>,
    pub burst_id: Option<String>,
    pub subtype: i64,
    pub subtype_v2: i64,
    pub orientation: Option<i32>,
    /// Duration as CloudKit reports it (unit unclear; kept verbatim).
    pub duration: Option<i64>,
    pub adjustment_type: Option<String>,
    /// Title (`captionEnc`).
    pub caption: Option<String>,
    /// Description (`extendedDescEnc`).
    pub description: Option<String>,
    pub keywords: Vec<String>,
    pub location: Option<Location>,
    pub versions: Vec<Version>,
}

impl Asset {
    /// The version of the given kind, if the asset has one.
    pub fn version(&self, kind: VersionKind) -> Option<&Version> {
        self.versions.iter().find(|v| v.kind == kind)
    }

    /// A live photo: an image with a motion version.
    pub fn is_live(&self) -> bool {
        self.kind != ItemKind::Movie && self.versions.iter().any(|v| v.kind.is_live())
    }
}

/// A user album or a folder of albums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Album {
    /// CPLAlbum recordName.
    pub id: String,
    pub zone: String,
    /// Decoded `albumNameEnc`.
    pub name: String,
    /// Folder this album sits in (`parentId`), `None` at the top level.
    pub parent_id: Option<String>,
    /// `albumType` 3: a folder holding albums rather than photos.
    pub is_folder: bool,
    pub deleted: bool,
    pub position: i64,
}

/// A library: a CloudKit zone in the private or shared database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Library {
    /// `private` or `shared`.
    pub database: String,
    /// e.g. `PrimarySync`, `SharedSync-<UUID>`.
    pub zone: String,
    pub owner: Option<String>,
}

impl Library {
    /// The personal library.
    pub fn primary() -> Self {
        Library {
            database: "private".into(),
            zone: "PrimarySync".into(),
            owner: None,
        }
    }
}

/// A record of a listing that could not become an asset or album, and why. Never dropped
/// silently: the parser reports it, the catalog stores it with the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The CloudKit recordName (or a description of the record when it has none).
    pub record_name: String,
    pub reason: String,
}
