//! The download folder on disk: what a run needs of it, and what a local I/O error of one
//! file's transfer dooms.
//!
//! A local error stops the run only when it dooms every file: a full disk (or a used-up
//! quota), or a download folder that is gone or can no longer be written in (a filesystem
//! remounted read-only, a disk pulled out). Anything else dooms only the files that need the
//! same place: a folder that refuses new entries, a file where a folder must go, a read-only
//! mount inside the tree, a name or size the filesystem refuses. Those files are recorded as
//! failed with the error, the run goes on with the others, and `retry-failed` takes them once
//! the way is clear. Which of the two it is is asked of the download folder itself (the check
//! a run starts with), not guessed from the error number: EACCES, EPERM or EROFS mean the
//! whole tree when they come from the download folder, one subtree when they come from below.

use std::io::{self, Read};

use sha2::Digest;
use std::path::{Path, PathBuf};

use super::MirrorError;

/// What a local I/O error of one file's transfer dooms.
#[derive(Debug)]
pub(super) enum Doomed {
    /// The files that need this place: fail this one with the message.
    File(String),
    /// Every file: stop the run.
    Run(MirrorError),
}

/// ENOSPC or EDQUOT: no file can be written anywhere on this disk.
fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// The download folder as a run found it at its start (device and inode; `None` when it did
/// not exist, in a dry run). A folder at the same path later is another one: the empty
/// mountpoint of a disk unmounted meanwhile, or a folder put where the first was moved away.
/// Files must not go there, nor the root be created again by a file's `create_dir_all`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RootIdentity(Option<(u64, u64)>);

impl RootIdentity {
    pub fn of(root: &Path) -> RootIdentity {
        use std::os::unix::fs::MetadataExt;
        RootIdentity(std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino())))
    }

    /// The folder existed (a dry run may find none).
    pub fn is_known(self) -> bool {
        self.0.is_some()
    }

    /// The download folder is still the one the run started with.
    pub fn check(self, root: &Path) -> Result<(), MirrorError> {
        let Some(first) = self.0 else {
            return Ok(());
        };
        match RootIdentity::of(root).0 {
            Some(now) if now == first => Ok(()),
            Some(_) => Err(bad_root(
                root,
                "it is another folder than when the first run started (a disk unmounted, a \
                 folder moved away?): nothing more is written there"
                    .into(),
            )),
            None => Err(bad_root(
                root,
                "it is gone since the first run started".into(),
            )),
        }
    }
}

/// Judge the error `source` of `op` on `path` (under `root`) in one file's transfer. Does a
/// little blocking I/O (the checks of the download folder).
pub(super) fn judge(
    (root, identity): (&Path, RootIdentity),
    op: &str,
    path: &Path,
    source: io::Error,
) -> Doomed {
    if is_disk_full(&source) {
        return Doomed::Run(MirrorError::DiskFull {
            path: path.to_path_buf(),
        });
    }
    if let Err(e) = identity.check(root).and_then(|()| check_root(root, true)) {
        return Doomed::Run(e);
    }
    let mut error = format!("{op} {}: {source}", path.display());
    if matches!(source.raw_os_error(), Some(libc::ENOTDIR | libc::EEXIST))
        && let Some(file) = non_folder_on_the_way(root, path)
    {
        error.push_str(&format!("; {} is not a folder", file.display()));
    }
    Doomed::File(error)
}

/// The nearest existing ancestor of `path` (itself included, the root excluded) when it is
/// not a folder: what stands where a folder must go.
fn non_folder_on_the_way(root: &Path, path: &Path) -> Option<PathBuf> {
    // A symbolic link counts as what it points to; one pointing nowhere is no folder either.
    let found = path
        .ancestors()
        .take_while(|a| *a != root && a.starts_with(root))
        .find(|a| std::fs::symlink_metadata(a).is_ok())?;
    (!std::fs::metadata(found).is_ok_and(|m| m.is_dir())).then(|| found.to_path_buf())
}

/// The download folder must be a directory we can write (created when missing).
pub(super) fn prepare_root(root: &Path, writes: bool) -> Result<(), MirrorError> {
    if !root.is_absolute() {
        return Err(bad_root(root, "not an absolute path".into()));
    }
    if let Err(e) = std::fs::metadata(root)
        && e.kind() == io::ErrorKind::NotFound
    {
        if !writes {
            return Ok(());
        }
        std::fs::create_dir_all(root)
            .map_err(|e| bad_root(root, format!("cannot create it: {e}")))?;
    }
    check_root(root, writes)
}

/// The download folder is a directory, one we can write in when `writes`.
fn check_root(root: &Path, writes: bool) -> Result<(), MirrorError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad_root(root, "exists and is not a directory".into())),
        Err(e) => return Err(bad_root(root, e.to_string())),
    }
    if writes {
        let probe = root.join(format!(".icloudpd-rs-probe-{}", std::process::id()));
        match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) if is_disk_full(&e) => {
                return Err(MirrorError::DiskFull {
                    path: root.to_path_buf(),
                });
            }
            Err(e) => return Err(bad_root(root, format!("cannot write in it: {e}"))),
        }
    }
    Ok(())
}

fn bad_root(root: &Path, reason: String) -> MirrorError {
    MirrorError::BadRoot {
        path: root.to_path_buf(),
        reason,
    }
}

/// Call `f` with every regular file under `root` (symbolic links are not followed; folders
/// that cannot be read are passed over).
pub(super) fn for_each_file(root: &Path, mut f: impl FnMut(&std::fs::DirEntry)) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(entry.path()),
                Ok(kind) if kind.is_file() => f(&entry),
                _ => {}
            }
        }
    }
}

/// What the bytes of a recorded copy say.
pub(super) enum CopyCheck {
    /// Nothing there (or not a file).
    Missing,
    /// Exactly the bytes recorded.
    Unchanged,
    /// Something else: changed since it was written.
    Changed,
}

/// Compare a recorded copy under `root` with what is on disk now (size first, then SHA-256).
pub(super) fn check_copy(
    root: &Path,
    copy: &crate::catalog::PreviousCopy,
) -> Result<CopyCheck, MirrorError> {
    let path = root.join(&copy.rel_path);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && m.len() == copy.size => {}
        Ok(m) if m.is_file() => return Ok(CopyCheck::Changed),
        _ => return Ok(CopyCheck::Missing),
    }
    let (_, sha256) = hash_file(&path).map_err(|source| MirrorError::LocalIo {
        context: "reading",
        path: path.clone(),
        source,
    })?;
    Ok(if sha256 == copy.sha256 {
        CopyCheck::Unchanged
    } else {
        CopyCheck::Changed
    })
}

/// Size and SHA-256 of a file.
pub(super) fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    /// The message of a folder error that dooms one file only.
    fn file_error(root: &Path, folder: &Path, errno: i32) -> String {
        match judge(
            (root, RootIdentity::of(root)),
            "creating the folder",
            folder,
            os(errno),
        ) {
            Doomed::File(error) => error,
            Doomed::Run(e) => panic!("stopped the run: {e}"),
        }
    }

    #[test]
    fn a_refused_folder_below_a_usable_root_dooms_only_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let folder = root.join("2021/05/21");
        for errno in [libc::EACCES, libc::EPERM, libc::EROFS, libc::ENAMETOOLONG] {
            let error = file_error(root, &folder, errno);
            assert!(error.starts_with(&format!("creating the folder {}: ", folder.display())));
            assert!(error.contains(&os(errno).to_string()), "{error}");
        }
    }

    #[test]
    fn a_file_where_a_folder_must_go_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("2021"), "mine").unwrap();
        let folder = root.join("2021/05/21");
        let error = file_error(root, &folder, libc::ENOTDIR);
        let named = format!("; {} is not a folder", root.join("2021").display());
        assert!(error.ends_with(&named), "{error}");
        // The folder itself taken by a file.
        std::fs::create_dir_all(root.join("2022/05")).unwrap();
        std::fs::write(root.join("2022/05/21"), "mine").unwrap();
        let taken = root.join("2022/05/21");
        let error = file_error(root, &taken, libc::EEXIST);
        assert!(error.ends_with(&format!("; {} is not a folder", taken.display())));
        // A link to nowhere where a year folder goes.
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("2023")).unwrap();
        let folder = root.join("2023/05/21");
        let error = file_error(root, &folder, libc::EEXIST);
        let named = format!("; {} is not a folder", root.join("2023").display());
        assert!(error.ends_with(&named), "{error}");
    }

    #[test]
    fn a_full_disk_or_an_unusable_root_stops_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        std::fs::create_dir(&root).unwrap();
        let id = RootIdentity::of(&root);
        let file = root.join("2021/05/21/IMG_0001.JPG");
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let doomed = judge((&root, id), "write", &file, os(errno));
            assert!(
                matches!(&doomed, Doomed::Run(MirrorError::DiskFull { path }) if *path == file),
                "{doomed:?}"
            );
        }
        // Moved away, and another (empty) folder in its place: a disk unmounted.
        std::fs::rename(&root, dir.path().join("moved")).unwrap();
        std::fs::create_dir(&root).unwrap();
        let doomed = judge((&root, id), "creating the folder", &file, os(libc::ENOENT));
        assert!(
            matches!(&doomed, Doomed::Run(MirrorError::BadRoot { reason, .. })
                if reason.contains("another folder")),
            "{doomed:?}"
        );
        std::fs::remove_dir(&root).unwrap();
        let doomed = judge((&root, id), "creating the folder", &file, os(libc::ENOENT));
        assert!(
            matches!(&doomed, Doomed::Run(MirrorError::BadRoot { path, .. }) if *path == root),
            "{doomed:?}"
        );
        std::fs::write(&root, "not a folder").unwrap();
        let id = RootIdentity::of(&root);
        let doomed = judge((&root, id), "creating the folder", &file, os(libc::ENOTDIR));
        assert!(
            matches!(&doomed, Doomed::Run(MirrorError::BadRoot { reason, .. })
                if reason.contains("not a directory")),
            "{doomed:?}"
        );
    }
}
