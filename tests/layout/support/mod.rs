//! Builders shared by the layout tests: assets with just the fields layout reads.

#![allow(dead_code)]

use chrono::{FixedOffset, TimeZone, Utc};
use icloudpd_rs::layout::{DateZone, LayoutPolicy, PlannedFile};
use icloudpd_rs::model::{Asset, ItemKind, Version, VersionKind};

pub const JPEG: &str = "public.jpeg";
pub const HEIC: &str = "public.heic";
pub const MOV: &str = "com.apple.quicktime-movie";
pub const MP4: &str = "public.mpeg-4";
pub const CR2: &str = "com.canon.cr2-raw-image";

/// The master recordName used in icloudpd's tests.
pub const ICLOUDPD_ID: &str = "AY6c+BsE0jjaXx9tmVGJM1D2VcEO";

/// 2024-03-07 23:30:00 UTC, in milliseconds.
pub fn late_evening_ms() -> i64 {
    Utc.with_ymd_and_hms(2024, 3, 7, 23, 30, 0)
        .unwrap()
        .timestamp_millis()
}

/// A version of `kind` with UTI `uti` and `size` bytes.
pub fn version(kind: VersionKind, uti: &str, size: u64) -> Version {
    Version {
        kind,
        size,
        file_type: uti.to_string(),
        checksum: format!("checksum-{}-{size}", kind.as_str()),
        width: None,
        height: None,
    }
}

/// An asset with the given id, filename, kind and versions; item type from the original.
pub fn asset(id: &str, filename: Option<&str>, kind: ItemKind, versions: Vec<Version>) -> Asset {
    let item_type = versions
        .iter()
        .find(|v| v.kind == VersionKind::Original)
        .map(|v| v.file_type.clone());
    Asset {
        id: id.to_string(),
        asset_record: format!("asset-{id}"),
        asset_change_tag: None,
        zone: "PrimarySync".to_string(),
        filename: filename.map(str::to_string),
        filename_problem: None,
        item_type,
        kind,
        asset_date_ms: late_evening_ms(),
        added_date_ms: late_evening_ms(),
        tz_offset_s: None,
        favorite: false,
        hidden: false,
        deleted: false,
        date_expunged_ms: None,
        burst_id: None,
        subtype: 0,
        subtype_v2: 0,
        orientation: None,
        duration: None,
        adjustment_type: None,
        caption: None,
        description: None,
        keywords: Vec::new(),
        location: None,
        versions,
    }
}

/// A plain JPEG photo with medium and thumb renditions.
pub fn jpeg_photo(id: &str, filename: &str, size: u64) -> Asset {
    asset(
        id,
        Some(filename),
        ItemKind::Image,
        vec![
            version(VersionKind::Original, JPEG, size),
            version(VersionKind::Medium, JPEG, size / 4),
            version(VersionKind::Thumb, JPEG, size / 40),
        ],
    )
}

/// A fixed zone `seconds` east of UTC.
pub fn zone(seconds: i32) -> DateZone {
    DateZone::Fixed(FixedOffset::east_opt(seconds).unwrap())
}

/// icloudpd's defaults with dates in UTC.
pub fn utc_policy() -> LayoutPolicy {
    LayoutPolicy {
        zone: zone(0),
        ..LayoutPolicy::default()
    }
}

/// (name, role, source version) of each file, for compact assertions.
pub fn summary(files: &[PlannedFile]) -> Vec<(String, VersionKind, VersionKind)> {
    files
        .iter()
        .map(|f| (f.name.clone(), f.role, f.version))
        .collect()
}

/// The names only.
pub fn names(files: &[PlannedFile]) -> Vec<String> {
    files.iter().map(|f| f.name.clone()).collect()
}

/// Relative paths only.
pub fn paths(files: &[PlannedFile]) -> Vec<String> {
    files.iter().map(|f| f.rel_path()).collect()
}
