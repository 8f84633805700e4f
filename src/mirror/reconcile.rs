//! Making the tree equal to the plan without downloading again.
//!
//! - [`settle`]: files recorded at another path than the plan's (a name taken early in a first
//!   listing and owned by an earlier-added asset found later, a parked download, a changed
//!   layout, a file adopted under icloudpd's name) are renamed into place. A rename never
//!   replaces a file (`RENAME_NOREPLACE`); moves whose targets are held by other moves wait
//!   for them, and a cycle (a swap) is broken through a hidden temporary name. A file of a
//!   version that is no longer planned (its photo left iCloud) sitting at a planned path is
//!   moved aside to a free name; an unknown file is never touched. Each rename is recorded in
//!   the catalog right after it is made (the `.xmp` sidecar moves with its file).
//! - [`remove_stale_temp_files`]: after a complete run, partial files of transfers nobody will
//!   resume are removed.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::catalog::{Catalog, DownloadState, DownloadUpdate, VersionKey};

use super::MirrorError;
use super::disk::{self, Doomed};
use super::engine::RunContext;

pub(super) use crate::rename::rename_noreplace;

/// A version that should end up at `target` (relative to the root).
#[derive(Debug, Clone)]
pub struct PendingMove {
    pub version: VersionKey,
    pub target: String,
}

impl PendingMove {
    /// A version that belongs at `target`.
    pub fn new(version: VersionKey, target: String) -> Self {
        PendingMove { version, target }
    }
}

/// One rename to make.
#[derive(Debug, Clone)]
struct Move {
    version: VersionKey,
    from: String,
    to: String,
    size: u64,
    sha256: [u8; 32],
    source_sha256: Option<[u8; 32]>,
}

/// Where a run that was renaming `version`'s file (size and digest as recorded) left it,
/// if it is there (a [`DownloadUpdate::Renaming`] note, and the very bytes): then recorded at
/// that path.
pub(super) fn renamed_to(
    ctx: &RunContext,
    catalog: &Catalog,
    version: VersionKey,
    (size, sha256): (u64, &[u8; 32]),
) -> Result<Option<String>, MirrorError> {
    let Some(root) = ctx.root_id else {
        return Ok(None);
    };
    let Some(target) = catalog.rename_targets(root, &[version])?.remove(&version) else {
        return Ok(None);
    };
    let path = ctx.root.join(&target);
    let there = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size)
        && super::disk::hash_file(&path).is_ok_and(|(_, sha)| sha == *sha256);
    if !there {
        return Ok(None);
    }
    let source = catalog.download_source_digest(version, root)?;
    record(ctx, version, &target, (size, *sha256, source));
    Ok(Some(target))
}

/// Rename recorded files to their planned paths (see the module docs).
pub(super) fn settle(
    ctx: &RunContext,
    catalog: &Catalog,
    pending: Vec<PendingMove>,
) -> Result<(), MirrorError> {
    let Some(root_id) = ctx.root_id else {
        return Ok(());
    };
    let versions: Vec<VersionKey> = pending.iter().map(|m| m.version).collect();
    let states = catalog.download_states(root_id, &versions)?;
    let mut moves: Vec<Move> = pending
        .into_iter()
        .filter_map(|m| match states.get(&m.version) {
            Some(DownloadState::Downloaded {
                rel_path,
                size,
                sha256,
                ..
            }) if *rel_path != m.target => Some(Move {
                version: m.version,
                from: rel_path.clone(),
                to: m.target,
                size: *size,
                sha256: *sha256,
                source_sha256: catalog
                    .download_source_digest(m.version, root_id)
                    .ok()
                    .flatten(),
            }),
            _ => None,
        })
        .collect();
    if moves.is_empty() {
        return Ok(());
    }
    tracing::info!(files = moves.len(), "renaming files to their planned paths");
    let mut recorded: Option<RecordedFiles> = None;
    let mut left_dirs: HashSet<PathBuf> = HashSet::new();
    while !moves.is_empty() {
        let sources: HashSet<String> = moves.iter().map(|m| m.from.to_lowercase()).collect();
        let mut progress = false;
        let mut waiting = Vec::new();
        for m in moves {
            let from = ctx.root.join(&m.from);
            let to = ctx.root.join(&m.to);
            if std::fs::symlink_metadata(&from).is_err() {
                tracing::warn!(path = %m.from, "a file to rename is gone; the next run fetches it again");
                continue;
            }
            if std::fs::symlink_metadata(&to).is_ok() {
                if sources.contains(&m.to.to_lowercase()) && !m.to.eq_ignore_ascii_case(&m.from) {
                    waiting.push(m);
                    continue;
                }
                if m.to.eq_ignore_ascii_case(&m.from) {
                    // Only the case differs: rename through a temporary name below.
                    waiting.push(m);
                    continue;
                }
                let owners = recorded.get_or_insert_with(|| recorded_files(catalog, root_id));
                match owners.get(&m.to.to_lowercase()).copied() {
                    Some((owner, size, sha256)) if owner != m.version => {
                        // A file of a version no longer planned: keep it, under a free name.
                        let aside = free_name(&ctx.root, &m.to);
                        rename_noreplace(&to, &ctx.root.join(&aside))
                            .map_err(|e| io_error("moving aside", &to, e))?;
                        let source = catalog
                            .download_source_digest(owner, root_id)
                            .ok()
                            .flatten();
                        record(ctx, owner, &aside, (size, sha256, source));
                        tracing::warn!(from = %m.to, to = %aside, "moved aside a file of a photo that is no longer selected or in iCloud");
                        owners.remove(&m.to.to_lowercase());
                        progress = true;
                        waiting.push(m);
                    }
                    _ => {
                        tracing::warn!(path = %m.to, "an unknown file is at the planned path; leaving both files where they are");
                        ctx.counters.warn();
                    }
                }
                continue;
            }
            if let Err(e) = move_file(ctx, &m, &from, &to) {
                // The file stays where it is, recorded there; the next run tries again.
                spare_the_run(ctx, e, "could not rename a file to its planned path")?;
                continue;
            }
            if let Some(dir) = from.parent() {
                left_dirs.insert(dir.to_path_buf());
            }
            progress = true;
        }
        moves = waiting;
        if !progress && !moves.is_empty() {
            // Every remaining move waits for another: a cycle. Free one target.
            let m = &mut moves[0];
            let temp = temp_name(&m.from, m.version);
            let from = ctx.root.join(&m.from);
            rename_noreplace(&from, &ctx.root.join(&temp))
                .map_err(|e| io_error("renaming", &from, e))?;
            move_sidecar(&from, &ctx.root.join(&temp));
            record(ctx, m.version, &temp, (m.size, m.sha256, m.source_sha256));
            m.from = temp;
        }
    }
    remove_empty_dirs(&ctx.root, left_dirs);
    Ok(())
}

fn move_file(ctx: &RunContext, m: &Move, from: &Path, to: &Path) -> Result<(), LocalIo> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| ("creating the folder", parent.into(), e))?;
    }
    rename_noreplace(from, to).map_err(|e| ("renaming", from.into(), e))?;
    move_sidecar(from, to);
    record(ctx, m.version, &m.to, (m.size, m.sha256, m.source_sha256));
    ctx.claims.release(&m.from, m.version);
    ctx.counters.moved.fetch_add(1, Ordering::Relaxed);
    tracing::info!(from = %m.from, to = %m.to, "renamed to its planned path");
    Ok(())
}

/// Record a file at its new path: (size, digest on disk, digest as downloaded if rewritten).
fn record(
    ctx: &RunContext,
    version: VersionKey,
    rel_path: &str,
    (size, sha256, source_sha256): (u64, [u8; 32], Option<[u8; 32]>),
) {
    if let Some(state) = &ctx.state {
        state.send(DownloadUpdate::Downloaded {
            version,
            rel_path: rel_path.to_string(),
            size,
            sha256,
            source_sha256,
        });
    }
}

/// The `.xmp` sidecar follows its file (when there is one and nothing is in its way).
fn move_sidecar(from: &Path, to: &Path) {
    let (from, to) = (
        crate::metadata::sidecar_path(from),
        crate::metadata::sidecar_path(to),
    );
    if from.exists()
        && let Err(e) = rename_noreplace(&from, &to)
    {
        tracing::warn!(path = %from.display(), error = %e, "could not move the XMP sidecar");
    }
}

/// Recorded files of a root by lowercase path: version, size, SHA-256.
type RecordedFiles = HashMap<String, (VersionKey, u64, [u8; 32])>;

fn recorded_files(catalog: &Catalog, root: crate::catalog::RootId) -> RecordedFiles {
    let mut out = HashMap::new();
    for record in catalog.downloads(root, crate::catalog::DownloadStateKind::Downloaded) {
        let Ok(record) = record else { break };
        if let DownloadState::Downloaded {
            rel_path,
            size,
            sha256,
            ..
        } = record.state
        {
            out.insert(rel_path.to_lowercase(), (record.version, size, sha256));
        }
    }
    out
}

/// `<stem>-moved-<n>.<ext>`: the first such name that is free.
pub(super) fn free_name(root: &Path, rel_path: &str) -> String {
    let (dir, name) = match rel_path.rfind('/') {
        Some(i) => (&rel_path[..=i], &rel_path[i + 1..]),
        None => ("", rel_path),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let stem = truncate_bytes(stem, 200);
    let mut n = 1u64;
    loop {
        let candidate = format!("{dir}{stem}-moved-{n}{ext}");
        if std::fs::symlink_metadata(root.join(&candidate)).is_err() {
            return candidate;
        }
        n += 1;
    }
}

/// Give a file planned at several paths (an asset in several album folders) its other paths:
/// a hard link to the downloaded file, or a copy (temp + rename) across file systems. Paths
/// already present are left alone, except an older copy of a version replaced in this run
/// (`replaced`: its SHA-256 as written) that still has exactly those bytes: it is replaced by
/// the new file. The file linked is the one the catalog records for the version (after the
/// run's renames: at its first planned path); a version not downloaded leaves its links for
/// the next run.
pub(super) fn link_duplicates(
    ctx: &RunContext,
    catalog: &Catalog,
    links: Vec<(VersionKey, String)>,
    replaced: &HashMap<VersionKey, [u8; 32]>,
) -> Result<(), MirrorError> {
    use std::os::unix::fs::MetadataExt;
    let Some(root) = ctx.root_id else {
        return Ok(());
    };
    let mut versions: Vec<VersionKey> = links.iter().map(|(v, _)| *v).collect();
    versions.sort_unstable();
    versions.dedup();
    let states = catalog.download_states(root, &versions)?;
    for (version, other) in links {
        let Some(DownloadState::Downloaded {
            rel_path: first, ..
        }) = states.get(&version)
        else {
            continue;
        };
        let (from, to) = (ctx.root.join(first), ctx.root.join(&other));
        // A symbolic link in the file's place is not linked to (nor followed).
        let Ok(source) = std::fs::symlink_metadata(&from) else {
            continue;
        };
        if !source.is_file() {
            continue;
        }
        let replace = match std::fs::symlink_metadata(&to) {
            Err(_) => false,
            Ok(m) if m.dev() == source.dev() && m.ino() == source.ino() => continue,
            Ok(m) => {
                let old = replaced.get(&version);
                let ours = m.is_file()
                    && old.is_some_and(|old| {
                        super::disk::hash_file(&to).is_ok_and(|(_, sha)| sha == *old)
                    });
                if !ours {
                    continue;
                }
                true
            }
        };
        if let Err(e) = link_file(ctx, version, &from, &to, replace) {
            spare_the_run(ctx, e, "could not place a file planned in several folders")?;
            continue;
        }
        tracing::debug!(from = %first, to = %other, replace, "linked a file planned in several folders");
    }
    Ok(())
}

/// Place `to` as a hard link to `from` (a copy across file systems), through a temporary name.
fn link_file(
    ctx: &RunContext,
    version: VersionKey,
    from: &Path,
    to: &Path,
    replace: bool,
) -> Result<(), LocalIo> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| ("creating the folder", parent.into(), e))?;
    }
    // Short and unique per version in its folder (the name may be 255 bytes already).
    let temp = to.with_file_name(format!(
        ".icloudpd-rs-link-{}{}",
        version.0, ctx.fetch.temp_suffix
    ));
    let _ = std::fs::remove_file(&temp);
    if std::fs::hard_link(from, &temp).is_err() {
        std::fs::copy(from, &temp)
            .and_then(|_| std::fs::File::open(&temp)?.sync_all())
            .map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                ("copying", from.into(), e)
            })?;
    }
    let placed = if replace {
        std::fs::rename(&temp, to)
    } else {
        rename_noreplace(&temp, to)
    };
    placed.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        ("linking", to.into(), e)
    })
}

/// A local I/O error of one file's rename or link: what was done, where, and why.
type LocalIo = (&'static str, PathBuf, std::io::Error);

/// A rename or link that failed dooms only its file (a warning; the file stays where the
/// catalog records it and the next run tries again) unless it dooms the run, as a download's
/// local error does (see [`disk::judge`]).
fn spare_the_run(ctx: &RunContext, (op, path, e): LocalIo, what: &str) -> Result<(), MirrorError> {
    match disk::judge((&ctx.root, ctx.root_identity), op, &path, e) {
        Doomed::File(error) => {
            tracing::warn!(%error, "{what}");
            ctx.counters.warn();
            Ok(())
        }
        Doomed::Run(e) => Err(e),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// A hidden name in the file's directory for breaking a rename cycle.
fn temp_name(rel_path: &str, version: VersionKey) -> String {
    let dir = match rel_path.rfind('/') {
        Some(i) => &rel_path[..=i],
        None => "",
    };
    format!("{dir}.icloudpd-rs-move-{}", version.0)
}

/// Remove directories left empty by renames, up to (not including) the root.
pub(super) fn remove_empty_dirs(root: &Path, dirs: HashSet<PathBuf>) {
    for dir in dirs {
        let mut d = dir.as_path();
        while d != root && d.starts_with(root) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
    }
}

fn io_error(context: &'static str, path: &Path, source: std::io::Error) -> MirrorError {
    MirrorError::LocalIo {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// After a complete run, remove partial downloads (`.<name>.<tag><suffix>`) anywhere under
/// `root`: no planned transfer is left to resume them. Returns how many were removed.
pub fn remove_stale_temp_files(root: &Path, suffix: &str) -> usize {
    let mut removed = 0;
    super::disk::for_each_file(root, |entry| {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.starts_with(b".") && name.ends_with(suffix.as_bytes()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a stale partial file")
                }
            }
        }
    });
    if removed > 0 {
        tracing::info!(removed, "removed stale partial downloads");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_names_keep_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/IMG-moved-1.JPG"), "").unwrap();
        assert_eq!(free_name(dir.path(), "d/IMG.JPG"), "d/IMG-moved-2.JPG");
        assert_eq!(free_name(dir.path(), "X"), "X-moved-1");
    }

    #[test]
    fn stale_temp_files_are_removed_and_photos_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("2024/01")).unwrap();
        std::fs::write(dir.path().join("2024/01/.IMG.JPG.ab12cd34.part"), "x").unwrap();
        std::fs::write(dir.path().join("2024/01/IMG.JPG"), "x").unwrap();
        std::fs::write(dir.path().join("2024/01/notes.part"), "x").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path(), ".part"), 1);
        assert!(dir.path().join("2024/01/IMG.JPG").exists());
        assert!(dir.path().join("2024/01/notes.part").exists());
    }
}
