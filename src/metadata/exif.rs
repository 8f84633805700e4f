//! `--set-exif-datetime`: give a downloaded JPEG or HEIC that has no capture date in its EXIF
//! the date the catalog knows, on the clock of where it was taken.
//!
//! Written when `DateTimeOriginal` is absent (or a blank placeholder): `DateTimeOriginal`,
//! `OffsetTimeOriginal` and, when the milliseconds are not zero, `SubSecTimeOriginal`; plus
//! `CreateDate` (`DateTimeDigitized`) with its offset and sub-seconds when that is absent too.
//! A file that already has a date is left alone, byte for byte (like icloudpd).
//!
//! The EXIF library decodes and re-encodes the TIFF structure. For JPEG we splice the result
//! into the file ourselves ([`super::jpeg`]); for HEIC the library rewrites the container. In
//! both cases the new file must pass a check before it replaces the original: every EXIF tag
//! it had is still there with the same value, our date reads back, and nothing outside the
//! EXIF block changed ([`super::jpeg::same_except_exif`], [`super::bmff::same_except_exif`]).
//! Known limit: a maker note whose internal offsets are absolute (some camera vendors; not
//! Apple's) can be invalidated by the re-encoding, as with most EXIF editors.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use little_exif::exif_tag::ExifTag;
use little_exif::filetype::FileExtension;
use little_exif::ifd::ExifTagGroup;
use little_exif::metadata::Metadata;
use sha2::{Digest, Sha256};

use super::atomic::{self, Keep};
use super::tiff::{self, Directory};
use super::{MetadataError, bmff, capture_time, jpeg, offset_text};
use crate::model::Asset;

/// What a file turned out to be, from its first bytes (never from its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Jpeg,
    Heic,
    Png,
    Avif,
    /// QuickTime / MPEG-4 video.
    Video,
    Unknown,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Jpeg => "JPEG",
            FileKind::Heic => "HEIC",
            FileKind::Png => "PNG",
            FileKind::Avif => "AVIF",
            FileKind::Video => "video",
            FileKind::Unknown => "unknown file type",
        })
    }
}

/// Tell JPEG, HEIC and the other kinds apart from the start of a file.
pub(crate) fn sniff(head: &[u8]) -> FileKind {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return FileKind::Jpeg;
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return FileKind::Png;
    }
    if head.get(4..8) == Some(b"ftyp") {
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = size.clamp(8, head.len());
        // The major brand, then (after the minor version) the compatible brands.
        let brands: Vec<&[u8]> = head[8..end]
            .chunks_exact(4)
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, b)| b)
            .collect();
        let has = |names: &[&[u8; 4]]| brands.iter().any(|b| names.iter().any(|n| *b == &n[..]));
        if has(&[b"heic", b"heix", b"heim", b"heis"]) {
            return FileKind::Heic;
        }
        if has(&[b"avif", b"avis"]) {
            return FileKind::Avif;
        }
        return FileKind::Video;
    }
    if head
        .get(4..8)
        .is_some_and(|t| t == b"moov" || t == b"mdat" || t == b"wide")
    {
        return FileKind::Video;
    }
    FileKind::Unknown
}

/// The result of [`set_exif_datetime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExifOutcome {
    /// The date was written; the file now has this SHA-256 (the downloaded bytes had another).
    Written { sha256: [u8; 32] },
    /// The file already has `DateTimeOriginal`; it was not touched.
    AlreadyHadDate,
    /// The catalog has no capture date for the asset; the file was not touched.
    NoCaptureDate,
    /// Not a JPEG or HEIC file; it was not touched.
    Unsupported(FileKind),
}

/// Write the asset's capture date into the EXIF of the JPEG or HEIC file at `path` if it has
/// none. On error the file is unchanged.
pub fn set_exif_datetime(path: &Path, asset: &Asset) -> Result<ExifOutcome, MetadataError> {
    let mut file = std::fs::File::open(path).map_err(|e| MetadataError::io("open", path, e))?;
    let mut head = [0u8; 64];
    let n = read_up_to(&mut file, &mut head).map_err(|e| MetadataError::io("read", path, e))?;
    let kind = sniff(&head[..n]);
    if !matches!(kind, FileKind::Jpeg | FileKind::Heic) {
        return Ok(ExifOutcome::Unsupported(kind));
    }
    let Some(when) = capture_time(asset) else {
        return Ok(ExifOutcome::NoCaptureDate);
    };
    let mut old = head[..n].to_vec();
    file.read_to_end(&mut old)
        .map_err(|e| MetadataError::io("read", path, e))?;
    drop(file);

    let malformed = |reason: String| MetadataError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let library = |reason: String| MetadataError::Library {
        path: path.to_path_buf(),
        reason,
    };
    let old_tiff = exif_tiff(kind, &old).map_err(malformed)?;
    let existing = match &old_tiff {
        Some(tiff) => Some(decode_tiff(tiff).map_err(library)?),
        None => None,
    };
    if existing.as_ref().is_some_and(has_capture_date) {
        return Ok(ExifOutcome::AlreadyHadDate);
    }
    if let (Some(tiff), Some(decoded)) = (&old_tiff, &existing) {
        understood_fully(tiff, decoded).map_err(library)?;
    }
    let mut metadata = existing.clone().unwrap_or_default();
    let written = add_capture_date(&mut metadata, &when);

    let new = match kind {
        FileKind::Jpeg => {
            let tiff = guarded(|| metadata.encode()).map_err(library)?;
            let layout = jpeg::parse(&old).map_err(malformed)?;
            jpeg::with_exif(&old, &layout, &tiff).map_err(malformed)?
        }
        _ => {
            let mut buf = old.clone();
            guarded(|| metadata.write_to_vec(&mut buf, FileExtension::HEIF)).map_err(library)?;
            bmff::link_exif_to_primary(&mut buf).map_err(malformed)?;
            buf
        }
    };
    check_rewrite(
        kind,
        &old,
        &new,
        old_tiff.as_deref(),
        existing.as_ref(),
        &written,
    )
    .map_err(|reason| MetadataError::Unsafe {
        path: path.to_path_buf(),
        reason,
    })?;
    atomic::replace(path, &new, Keep::PermissionsAndTimes)?;
    Ok(ExifOutcome::Written {
        sha256: Sha256::digest(&new).into(),
    })
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Run an EXIF library call, turning its errors and panics (it may panic on malformed input)
/// into a message.
fn guarded<T>(f: impl FnOnce() -> std::io::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the EXIF library panicked on this file".into()),
    }
}

/// Decode a bare TIFF structure (the content of an EXIF block).
fn decode_tiff(tiff: &[u8]) -> Result<Metadata, String> {
    let buf = tiff.to_vec();
    guarded(|| Metadata::new_from_vec(&buf, FileExtension::TIFF))
}

/// The EXIF sub-IFD value of `DateTimeOriginal`, as text.
fn date_time_original(metadata: &Metadata) -> Option<String> {
    metadata
        .get_tag_by_hex(0x9003, Some(ExifTagGroup::EXIF))
        .next()
        .map(|tag| match tag {
            ExifTag::DateTimeOriginal(s) | ExifTag::UnknownSTRING(s, _, _) => s.clone(),
            // Present but oddly typed: someone put a date there; count it as a date.
            _ => "present".into(),
        })
}

/// A real date, not absent and not a blank placeholder like `0000:00:00 00:00:00`.
fn has_capture_date(metadata: &Metadata) -> bool {
    date_time_original(metadata).is_some_and(|s| s.bytes().any(|b| (b'1'..=b'9').contains(&b)))
}

/// Set our date tags; returns the tag numbers written.
fn add_capture_date(
    metadata: &mut Metadata,
    when: &chrono::DateTime<chrono::FixedOffset>,
) -> BTreeSet<u16> {
    let stamp = when.format("%Y:%m:%d %H:%M:%S").to_string();
    let offset = offset_text(*when.offset());
    let millis = when.timestamp_subsec_millis();
    let mut tags = vec![
        ExifTag::DateTimeOriginal(stamp.clone()),
        ExifTag::OffsetTimeOriginal(offset.clone()),
    ];
    if millis != 0 {
        tags.push(ExifTag::SubSecTimeOriginal(format!("{millis:03}")));
    }
    let has_create_date = metadata
        .get_tag_by_hex(0x9004, Some(ExifTagGroup::EXIF))
        .next()
        .is_some();
    if !has_create_date {
        tags.push(ExifTag::CreateDate(stamp));
        tags.push(ExifTag::OffsetTimeDigitized(offset));
        if millis != 0 {
            tags.push(ExifTag::SubSecTimeDigitized(format!("{millis:03}")));
        }
    }
    let mut written = BTreeSet::new();
    for tag in tags {
        written.insert(tag.as_u16());
        metadata.set_tag(tag);
    }
    written
}

/// Tags whose values are offsets into the EXIF block: they legitimately change on re-encoding.
fn is_offset_tag(hex: u16, group: ExifTagGroup) -> bool {
    match group {
        // ExifOffset, GPSInfo, StripOffsets, ThumbnailOffset (JPEGInterchangeFormat).
        ExifTagGroup::GENERIC => matches!(hex, 0x8769 | 0x8825 | 0x0111 | 0x0201),
        // InteropOffset.
        ExifTagGroup::EXIF => hex == 0xA005,
        _ => false,
    }
}

/// `(IFD number, group, tag, value)` of every tag, values of offset tags left out.
fn tag_set(metadata: &Metadata) -> Vec<(u32, String, u16, Option<ExifTag>)> {
    let mut out = Vec::new();
    for ifd in metadata.get_ifds() {
        let group = ifd.get_ifd_type();
        for tag in ifd.get_tags() {
            let value = (!is_offset_tag(tag.as_u16(), group)).then(|| tag.clone());
            out.push((
                ifd.get_generic_ifd_nr(),
                format!("{group:?}"),
                tag.as_u16(),
                value,
            ));
        }
    }
    out
}

/// The TIFF structure of a file's EXIF block, if it has one.
fn exif_tiff(kind: FileKind, bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if kind == FileKind::Jpeg {
        let layout = jpeg::parse(bytes)?;
        return Ok(layout.exif_tiff(bytes).map(<[u8]>::to_vec));
    }
    let heif = bmff::parse(bytes)?;
    let Some(item) = heif.exif_item() else {
        return Ok(None);
    };
    let data = heif.item_bytes(bytes, item)?;
    // A 4-byte offset to the TIFF header, then that many bytes (usually `Exif\0\0`).
    let skip = data
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("EXIF item too short")?;
    data.get(4 + skip..)
        .map(|t| Some(t.to_vec()))
        .ok_or_else(|| "EXIF item header points past its end".to_string())
}

/// The library's group of a directory.
fn directory_of(group: ExifTagGroup, ifd: u32) -> Directory {
    match group {
        ExifTagGroup::GENERIC => Directory::Generic(ifd),
        ExifTagGroup::EXIF => Directory::Exif(ifd),
        ExifTagGroup::GPS => Directory::Gps(ifd),
        ExifTagGroup::INTEROP => Directory::Interop(ifd),
    }
}

/// Every tag an independent walk finds in `tiff` was decoded by the library, so re-encoding
/// what it decoded cannot drop any.
fn understood_fully(tiff: &[u8], decoded: &Metadata) -> Result<(), String> {
    let decoded: BTreeSet<(Directory, u16)> = decoded
        .get_ifds()
        .iter()
        .flat_map(|ifd| {
            let dir = directory_of(ifd.get_ifd_type(), ifd.get_generic_ifd_nr());
            ifd.get_tags().iter().map(move |t| (dir, t.as_u16()))
        })
        .collect();
    for (dir, tag) in tiff::tags(tiff)? {
        // The library keeps sub-IFDs as directories, not as pointer tags.
        if !tiff::is_pointer(tag) && !decoded.contains(&(dir, tag)) {
            return Err(format!(
                "EXIF tag {tag:#06x} in {dir:?} is not understood; not rewriting"
            ));
        }
    }
    Ok(())
}

/// The safety check a rewritten file must pass before it replaces the original.
fn check_rewrite(
    kind: FileKind,
    old: &[u8],
    new: &[u8],
    old_tiff: Option<&[u8]>,
    before: Option<&Metadata>,
    written: &BTreeSet<u16>,
) -> Result<(), String> {
    match kind {
        FileKind::Jpeg => jpeg::same_except_exif(old, new)?,
        _ => bmff::same_except_exif(old, new)?,
    }
    let new_tiff = exif_tiff(kind, new)?.ok_or("no EXIF block after writing")?;
    // Independently of the library: every tag is still there...
    if let Some(old_tiff) = old_tiff {
        let now = tiff::tags(&new_tiff)?;
        if let Some((dir, tag)) = tiff::tags(old_tiff)?.into_iter().find(|t| !now.contains(t)) {
            return Err(format!("EXIF tag {tag:#06x} in {dir:?} would be lost"));
        }
    }
    // ...and, as the library reads them back, with the same values, our date included.
    let after = decode_tiff(&new_tiff)?;
    if !has_capture_date(&after) {
        return Err("the written date does not read back".into());
    }
    if let Some(before) = before {
        let kept = tag_set(&after);
        for tag in tag_set(before) {
            let ours = tag.1 == "EXIF" && written.contains(&tag.2);
            if !ours && !kept.contains(&tag) {
                return Err(format!(
                    "EXIF tag {:#06x} ({} IFD{}) would be altered",
                    tag.2, tag.1, tag.0
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), FileKind::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), FileKind::Png);
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), FileKind::Heic);
        assert_eq!(sniff(b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic"), FileKind::Heic);
        assert_eq!(sniff(b"\0\0\0\x14ftypavif\0\0\0\0mif1"), FileKind::Avif);
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  \0\0\0\0qt  "), FileKind::Video);
        assert_eq!(sniff(b"\0\0\0\x08wide"), FileKind::Video);
        assert_eq!(sniff(b"GIF89a"), FileKind::Unknown);
        assert_eq!(sniff(b""), FileKind::Unknown);
        // A minor version that happens to spell a brand is not a brand.
        assert_eq!(sniff(b"\0\0\0\x14ftypisomheic isom"), FileKind::Video);
    }

    #[test]
    fn blank_dates_do_not_count() {
        let mut m = Metadata::new();
        assert!(!has_capture_date(&m));
        m.set_tag(ExifTag::DateTimeOriginal("0000:00:00 00:00:00".into()));
        assert!(!has_capture_date(&m));
        m.set_tag(ExifTag::DateTimeOriginal("2001:02:03 04:05:06".into()));
        assert!(has_capture_date(&m));
    }
}
