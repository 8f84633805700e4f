//! `set_exif_datetime` on real files, read back by an independent parser (kamadak-exif), and
//! the promise that the original is never left half-written or silently damaged.

use crate::support;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use icloudpd_rs::metadata::{ExifOutcome, FileKind, MetadataError, set_exif_datetime};
use sha2::{Digest, Sha256};
use support::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn set_mtime(p: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn written_hash(outcome: ExifOutcome) -> [u8; 32] {
    match outcome {
        ExifOutcome::Written { sha256 } => sha256,
        other => panic!("expected Written, got {other:?}"),
    }
}

#[test]
fn jpeg_without_exif_gets_the_local_capture_date() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "IMG_1.JPG", &jpeg_without_exif());
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_533_021_744);
    set_mtime(&p, mtime);

    let hash = written_hash(set_exif_datetime(&p, &full_asset()).unwrap());

    let bytes = fs::read(&p).unwrap();
    assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 14:22:24")
    );
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeDigitized).as_deref(),
        Some("2018:07:31 14:22:24")
    );
    assert_eq!(
        exif_ascii(&p, exif::Tag::OffsetTimeOriginal).as_deref(),
        Some("+07:00")
    );
    assert_eq!(
        exif_ascii(&p, exif::Tag::OffsetTimeDigitized).as_deref(),
        Some("+07:00")
    );
    assert_eq!(
        exif_ascii(&p, exif::Tag::SubSecTimeOriginal).as_deref(),
        Some("816")
    );
    // The mtime the mirror gave the file is kept.
    assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), mtime);
    // Nothing else is left in the directory.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    // The EXIF block sits after JFIF; the rest of the file is the original, byte for byte.
    let original = jpeg_without_exif();
    assert_eq!(&bytes[..20], &original[..20]);
    assert_eq!(
        &bytes[bytes.len() - (original.len() - 20)..],
        &original[20..]
    );
}

#[test]
fn unknown_offset_writes_utc() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.jpg", &jpeg_without_exif());
    let mut asset = full_asset();
    asset.tz_offset_s = None;
    asset.asset_date_ms = 1_533_021_744_000;
    written_hash(set_exif_datetime(&p, &asset).unwrap());
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 07:22:24")
    );
    assert_eq!(
        exif_ascii(&p, exif::Tag::OffsetTimeOriginal).as_deref(),
        Some("+00:00")
    );
    // Whole seconds: no sub-second tag.
    assert_eq!(exif_ascii(&p, exif::Tag::SubSecTimeOriginal), None);
}

#[test]
fn a_jpeg_that_has_a_date_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let original = jpeg_with_exif(&camera_tiff(Some("2001:02:03 04:05:06")));
    let p = write(dir.path(), "a.jpg", &original);
    assert_eq!(
        set_exif_datetime(&p, &full_asset()).unwrap(),
        ExifOutcome::AlreadyHadDate
    );
    assert_eq!(fs::read(&p).unwrap(), original);
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2001:02:03 04:05:06")
    );
}

#[test]
fn existing_exif_without_a_date_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.jpg", &jpeg_with_exif(&camera_tiff(None)));
    let before = read_exif(&p);
    assert!(before.len() >= 7, "{before:?}");

    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());

    let after = read_exif(&p);
    for (key, value) in &before {
        // Pointers to sub-IFDs move; their targets are compared field by field.
        if key.1 == 0x8769 || key.1 == 0x8825 {
            continue;
        }
        assert_eq!(after.get(key), Some(value), "field {key:?} changed");
    }
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 14:22:24")
    );
    assert_eq!(exif_ascii(&p, exif::Tag::Make).as_deref(), Some("Apple"));
}

#[test]
fn a_blank_placeholder_date_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let tiff = camera_tiff(Some("0000:00:00 00:00:00"));
    let p = write(dir.path(), "a.jpg", &jpeg_with_exif(&tiff));
    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 14:22:24")
    );
}

#[test]
fn existing_create_date_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let tiff = tiff(
        &[short(0x0112, 1)],
        &[ascii(0x9004, "2010:10:10 10:10:10")],
        &[],
    );
    let p = write(dir.path(), "a.jpg", &jpeg_with_exif(&tiff));
    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeDigitized).as_deref(),
        Some("2010:10:10 10:10:10")
    );
    assert_eq!(exif_ascii(&p, exif::Tag::OffsetTimeDigitized), None);
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 14:22:24")
    );
}

#[test]
fn second_run_finds_the_date_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.jpg", &jpeg_without_exif());
    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());
    let once = fs::read(&p).unwrap();
    assert_eq!(
        set_exif_datetime(&p, &full_asset()).unwrap(),
        ExifOutcome::AlreadyHadDate
    );
    assert_eq!(fs::read(&p).unwrap(), once);
}

#[test]
fn other_kinds_are_reported_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    let mov = b"\0\0\0\x14ftypqt  \0\0\0\0qt  \0\0\0\x08free".to_vec();
    for (name, bytes, kind) in [
        ("a.png", png, FileKind::Png),
        ("a.mov", mov, FileKind::Video),
        // The name says JPEG; the content decides.
        ("lies.jpg", b"GIF89a.....".to_vec(), FileKind::Unknown),
        ("empty.jpg", Vec::new(), FileKind::Unknown),
    ] {
        let p = write(dir.path(), name, &bytes);
        assert_eq!(
            set_exif_datetime(&p, &full_asset()).unwrap(),
            ExifOutcome::Unsupported(kind)
        );
        assert_eq!(fs::read(&p).unwrap(), bytes);
    }
}

#[test]
fn no_capture_date_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let original = jpeg_without_exif();
    let p = write(dir.path(), "a.jpg", &original);
    let mut asset = full_asset();
    asset.asset_date_ms = 0;
    assert_eq!(
        set_exif_datetime(&p, &asset).unwrap(),
        ExifOutcome::NoCaptureDate
    );
    assert_eq!(fs::read(&p).unwrap(), original);
}

#[test]
fn corrupt_files_are_errors_and_stay_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let good = jpeg_with_exif(&camera_tiff(None));
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Truncated in the middle of the EXIF segment.
    cases.push(("truncated.jpg", good[..40].to_vec()));
    // An EXIF block whose TIFF header is garbage: never clobbered with a fresh one.
    cases.push(("badtiff.jpg", jpeg_with_exif(b"XX*\0\x08\0\0\0garbage")));
    // An IFD pointing far outside the block.
    cases.push(("badifd.jpg", jpeg_with_exif(b"II*\0\xff\xff\xff\x7f")));
    // A segment length running past the end.
    let mut runaway = jpeg_without_exif();
    runaway[5] = 0xFF;
    cases.push(("runaway.jpg", runaway));
    for (name, bytes) in cases {
        let p = write(dir.path(), name, &bytes);
        let r = set_exif_datetime(&p, &full_asset());
        assert!(r.is_err(), "{name}: {r:?}");
        assert_eq!(fs::read(&p).unwrap(), bytes, "{name} was modified");
    }
    // Only the inputs remain: no temp files.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = set_exif_datetime(&dir.path().join("nope.jpg"), &full_asset());
    assert!(matches!(r, Err(MetadataError::Io { .. })), "{r:?}");
}

/// The replacement is written beside the file: in a directory we cannot write to, the call
/// fails and the original bytes are intact. (Root ignores directory permissions; the crash
/// test below covers that case.)
#[cfg(unix)]
#[test]
fn read_only_directory_leaves_the_original_intact() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("ro");
    fs::create_dir(&sub).unwrap();
    let original = jpeg_without_exif();
    let p = write(&sub, "a.jpg", &original);
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::File::create(sub.join("probe")).is_ok() {
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!("skipped: running as root, a read-only directory is still writable");
        return;
    }
    let r = set_exif_datetime(&p, &full_asset());
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(r, Err(MetadataError::Io { .. })), "{r:?}");
    assert_eq!(fs::read(&p).unwrap(), original);
    assert_eq!(fs::read_dir(&sub).unwrap().count(), 1);
}

const CHILD_ENV: &str = "ICLOUDPD_METADATA_CRASH_CHILD";

/// The child half of [`killed_while_writing_leaves_the_original`]: does nothing unless that
/// test started it.
#[test]
fn child_set_exif_datetime_under_a_file_size_limit() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        let _ = set_exif_datetime(Path::new(&path), &full_asset());
        // Reaching here means the write was not cut short: report it.
        std::process::exit(42);
    }
}

/// A process killed in the middle of writing the new version (here by SIGXFSZ from a file
/// size limit smaller than the file, which works as root too) leaves the original intact:
/// at worst a hidden temp file remains beside it.
#[cfg(unix)]
#[test]
fn killed_while_writing_leaves_the_original() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    // A comment segment makes the file larger than the limit (1 block).
    let mut original = jpeg_without_exif();
    let comment = vec![b'x'; 8000];
    let mut com = vec![0xFF, 0xFE];
    com.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    com.extend_from_slice(&comment);
    original.splice(20..20, com);
    let p = write(dir.path(), "big.jpg", &original);

    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "exif::child_set_exif_datetime_under_a_file_size_limit",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &p)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(25),
        "the child was expected to die of SIGXFSZ: {status:?}"
    );
    assert_eq!(fs::read(&p).unwrap(), original);
    for entry in fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(name == "big.jpg" || name.starts_with(".big.jpg."), "{name}");
    }
    // And the next run completes normally.
    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());
}

#[test]
fn heic_without_exif_gets_an_exif_item() {
    let dir = tempfile::tempdir().unwrap();
    let original = heic(None);
    let p = write(dir.path(), "IMG_1.HEIC", &original);
    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 14:22:24")
    );
    assert_eq!(
        exif_ascii(&p, exif::Tag::OffsetTimeOriginal).as_deref(),
        Some("+07:00")
    );
    let bytes = fs::read(&p).unwrap();
    let pattern = heic_pattern();
    assert!(
        bytes.windows(pattern.len()).any(|w| w == pattern),
        "image data lost"
    );
    assert!(bytes.len() > original.len());
}

/// The EXIF library links a new EXIF item to item 1; here the image is item 7, and the link
/// must end up on it (libheif numbers its primary image 2).
#[test]
fn heic_whose_primary_is_not_item_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "IMG_7.HEIC", &heic_with_image_id(None, 7));
    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 14:22:24")
    );
    let bytes = fs::read(&p).unwrap();
    // `cdsc`, from the new EXIF item (8), count 1, to item 7; 16- or 32-bit ids.
    let cdsc = bytes
        .windows(4)
        .position(|w| w == b"cdsc")
        .expect("an item reference");
    let short = [0, 8, 0, 1, 0, 7];
    let long = [0, 0, 0, 8, 0, 1, 0, 0, 0, 7];
    assert!(
        bytes[cdsc + 4..].starts_with(&short) || bytes[cdsc + 4..].starts_with(&long),
        "{:?}",
        &bytes[cdsc + 4..cdsc + 14]
    );
}

#[test]
fn heic_with_exif_but_no_date_keeps_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "IMG_2.HEIC", &heic(Some(&camera_tiff(None))));
    let before = read_exif(&p);
    written_hash(set_exif_datetime(&p, &full_asset()).unwrap());
    let after = read_exif(&p);
    for (key, value) in &before {
        if key.1 == 0x8769 || key.1 == 0x8825 {
            continue;
        }
        assert_eq!(after.get(key), Some(value), "field {key:?} changed");
    }
    assert_eq!(
        exif_ascii(&p, exif::Tag::DateTimeOriginal).as_deref(),
        Some("2018:07:31 14:22:24")
    );
}

#[test]
fn heic_with_a_date_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let original = heic(Some(&camera_tiff(Some("2001:02:03 04:05:06"))));
    let p = write(dir.path(), "IMG_3.HEIC", &original);
    assert_eq!(
        set_exif_datetime(&p, &full_asset()).unwrap(),
        ExifOutcome::AlreadyHadDate
    );
    assert_eq!(fs::read(&p).unwrap(), original);
}
