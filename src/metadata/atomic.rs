//! Replace a file's content without ever leaving it half-written: write a temp file beside it,
//! fsync, rename over the original, fsync the directory. A crash at any point leaves either the
//! old file or the new one (and at worst a stray hidden temp file), never a mix.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::MetadataError;

/// Suffix of our temp files, so a cleanup pass can recognise them.
pub(crate) const TEMP_MARKER: &str = ".icpd-meta-tmp";

/// What to carry over from the file being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Permissions and access/modification times of the existing file (an image whose EXIF
    /// we edited keeps the mtime the mirror gave it).
    PermissionsAndTimes,
    /// Permissions only, when the file exists (a sidecar is new content: new mtime).
    Permissions,
}

/// Atomically make `path` contain exactly `bytes`.
pub(crate) fn replace(path: &Path, bytes: &[u8], keep: Keep) -> Result<(), MetadataError> {
    let old = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && keep == Keep::Permissions => None,
        Err(e) => return Err(MetadataError::io("stat", path, e)),
    };
    let temp = temp_path(path);
    let result = write_temp(&temp, bytes, old.as_ref(), keep)
        .and_then(|()| fs::rename(&temp, path).map_err(|e| MetadataError::io("rename", path, e)));
    if result.is_err() {
        // Best effort: the temp file is ours and useless now.
        let _ = fs::remove_file(&temp);
        return result;
    }
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        // Make the rename itself durable; some file systems refuse fsync on a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn write_temp(
    temp: &Path,
    bytes: &[u8],
    old: Option<&fs::Metadata>,
    keep: Keep,
) -> Result<(), MetadataError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(|e| MetadataError::io("create", temp, e))?;
    file.write_all(bytes)
        .map_err(|e| MetadataError::io("write", temp, e))?;
    if let Some(old) = old {
        file.set_permissions(old.permissions())
            .map_err(|e| MetadataError::io("set permissions of", temp, e))?;
        if keep == Keep::PermissionsAndTimes {
            let mut times = FileTimes::new();
            if let Ok(m) = old.modified() {
                times = times.set_modified(m);
            }
            if let Ok(a) = old.accessed() {
                times = times.set_accessed(a);
            }
            file.set_times(times)
                .map_err(|e| MetadataError::io("set times of", temp, e))?;
        }
    }
    file.sync_all()
        .map_err(|e| MetadataError::io("fsync", temp, e))
}

/// A hidden name beside `path`, unique within this process, within NAME_MAX.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{TEMP_MARKER}-{}-{n}", std::process::id());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let budget = 255usize.saturating_sub(1 + suffix.len());
    let mut stem = name;
    while stem.len() > budget {
        stem.pop();
    }
    path.with_file_name(format!(".{stem}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn replaces_content_and_keeps_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jpg");
        fs::write(&p, b"old").unwrap();
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        replace(&p, b"new content", Keep::PermissionsAndTimes).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), mtime);
        // No temp file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn creates_a_missing_file_when_only_permissions_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jpg.xmp");
        replace(&p, b"<x/>", Keep::Permissions).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"<x/>");
        // An image to edit must exist.
        let q = dir.path().join("missing.jpg");
        assert!(replace(&q, b"x", Keep::PermissionsAndTimes).is_err());
        assert!(!q.exists());
    }

    #[test]
    fn temp_names_stay_within_name_max() {
        let long = "a".repeat(255);
        let t = temp_path(&Path::new("/d").join(&long));
        assert!(t.file_name().unwrap().len() <= 255);
        assert!(t.file_name().unwrap().to_string_lossy().starts_with('.'));
    }
}
