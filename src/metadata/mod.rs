//! What the catalog knows about an asset, carried into the files other photo tools read:
//! EXIF capture dates written into downloaded JPEG/HEIC files (`--set-exif-datetime`), XMP
//! sidecars beside them (`--xmp-sidecar`), and the extended attributes the mount exposes.
//!
//! Everything here is a pure function of a path and a [`model::Asset`](crate::model::Asset);
//! `sync` and the mount decide when to call it. Failures are typed ([`MetadataError`]) and
//! meant to become warnings: a photo whose metadata could not be written is still a photo.
//!
//! Invariants:
//! * a file is only ever replaced by an atomic rename of a complete, fsynced temp file written
//!   beside it, keeping its permissions and mtime (`atomic`);
//! * a rewritten image is checked before it replaces the original: every byte outside the
//!   EXIF block (JPEG segments, HEIF items) must be unchanged, and the EXIF tags it had must
//!   still be there (`exif`);
//! * a sidecar another tool wrote keeps every element and attribute it had (`xmp_merge`).
//!
//! Entry points: [`set_exif_datetime`], [`write_xmp_sidecar`], [`render_xmp`],
//! [`sidecar_path`], [`xattrs_for`].

mod atomic;
pub(crate) mod bmff;
mod exif;
mod jpeg;
mod tiff;
mod xattr;
mod xmp;
mod xmp_merge;

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

pub use exif::{ExifOutcome, FileKind, set_exif_datetime};
pub use xattr::xattrs_for;
pub use xmp::{ICLOUD_NS, ICLOUD_PREFIX, render_xmp};
pub use xmp_merge::{SidecarOutcome, SidecarWrite, sidecar_path, write_xmp_sidecar};

use crate::model::Asset;

/// Why metadata could not be written. The file it was about is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The image's structure could not be understood well enough to edit it safely.
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// The EXIF library failed (or panicked) on this file.
    #[error("{path}: EXIF library: {reason}")]
    Library { path: PathBuf, reason: String },
    /// The rewritten file failed the safety check; the original was left as it was.
    #[error("{path}: refusing to replace the file: {reason}")]
    Unsafe { path: PathBuf, reason: String },
}

impl MetadataError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        MetadataError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The asset's capture time on the clock of where it was taken (`timeZoneOffset`), or in UTC
/// when the offset is unknown or out of range. `None` when the catalog has no capture date
/// (`assetDate` absent is stored as the epoch) or it cannot be represented.
pub(crate) fn capture_time(asset: &Asset) -> Option<DateTime<FixedOffset>> {
    if asset.asset_date_ms == 0 {
        return None;
    }
    let utc = Utc.timestamp_millis_opt(asset.asset_date_ms).single()?;
    let offset = asset
        .tz_offset_s
        .and_then(FixedOffset::east_opt)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero is a valid offset"));
    Some(utc.with_timezone(&offset))
}

/// `+07:00` / `-03:30` / `+00:00`: the offset form EXIF `OffsetTime*` and XMP dates use.
pub(crate) fn offset_text(offset: FixedOffset) -> String {
    let secs = offset.local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let mins = secs.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", mins / 60, mins % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(ms: i64, tz: Option<i32>) -> Asset {
        let mut a = crate::metadata::xmp::tests::bare_asset();
        a.asset_date_ms = ms;
        a.tz_offset_s = tz;
        a
    }

    #[test]
    fn capture_time_uses_the_asset_offset() {
        // 2018-07-31T07:22:24.816Z, taken at UTC+7.
        let t = capture_time(&asset(1_533_021_744_816, Some(25_200))).unwrap();
        assert_eq!(t.to_rfc3339(), "2018-07-31T14:22:24.816+07:00");
        assert_eq!(offset_text(*t.offset()), "+07:00");
    }

    #[test]
    fn capture_time_falls_back_to_utc() {
        let t = capture_time(&asset(1_533_021_744_816, None)).unwrap();
        assert_eq!(offset_text(*t.offset()), "+00:00");
        // An impossible offset (a day or more) is treated as unknown, not trusted.
        let t = capture_time(&asset(1_533_021_744_816, Some(90_000))).unwrap();
        assert_eq!(t.offset().local_minus_utc(), 0);
    }

    #[test]
    fn no_capture_date_means_none() {
        assert!(capture_time(&asset(0, Some(3600))).is_none());
        assert!(capture_time(&asset(i64::MAX, None)).is_none());
    }

    #[test]
    fn negative_and_half_hour_offsets() {
        let off = FixedOffset::east_opt(-(3 * 3600 + 1800)).unwrap();
        assert_eq!(offset_text(off), "-03:30");
        let off = FixedOffset::east_opt(5 * 3600 + 2700).unwrap();
        assert_eq!(offset_text(off), "+05:45");
    }
}
