//! Files of a photo that other files of the same photo replaced: the original once its edit
//! is what the plan asks for (`--size adjusted`), the older copy of an edited version whose
//! planned path changed, and the file of a version the photo lost (an edit reverted in
//! iCloud: the adjusted file gives way to what the layout now plans, the original again).
//! They are removed at the end of a run, each only when:
//!
//! - every file that replaces it is recorded as downloaded (the photo is never left with
//!   fewer files than before, e.g. when the new download failed);
//! - no other file of the plan owns its path (this run's claims, the recorded files);
//! - its bytes are still the ones we wrote (SHA-256 as recorded): a file changed on disk
//!   since is the user's: it is kept (with a warning, moved aside to a free name if a file of
//!   the plan is to take its path) and forgotten, so later runs leave it alone.
//!
//! Files we did not write (never recorded with a digest) are never candidates. The `.xmp`
//! sidecar goes with its file, as with `--auto-delete`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::catalog::{AssetKey, Catalog, DownloadState, DownloadUpdate, RootId, VersionKey};

use super::MirrorError;
use super::disk::hash_file;
use super::engine::RunContext;
use super::plan::PlanItem;

/// A file to remove once the files replacing it are on disk.
#[derive(Debug, Clone)]
pub(super) struct StaleFile {
    /// The version whose file it is.
    pub version: VersionKey,
    /// Where it is, relative to the root.
    pub rel_path: String,
    /// Its SHA-256 as recorded when it was written.
    pub sha256: [u8; 32],
    /// The version is still recorded as downloaded at `rel_path` (forget it with the file).
    pub recorded: bool,
    /// The catalog's record of an orphaned file (its version is gone): forgotten with the
    /// file. Such a file's `version` is a stand-in that no real version has.
    pub orphan: Option<i64>,
    /// The versions that replace it; all must be downloaded first.
    pub replaced_by: Vec<VersionKey>,
    /// With album folders: the folders (`dir/` prefixes) where its photo is planned now. A
    /// file of the same name there that is a hard link of it (same inode) goes with it.
    pub link_dirs: Vec<String>,
}

/// Remove the stale files whose replacements are on disk (see the module docs). Run after
/// the downloads' results are flushed to the catalog and before renames into place.
/// `targets`: the paths (lowercase) that files of the plan are to be renamed to.
pub(super) fn remove(
    ctx: &RunContext,
    catalog: &Catalog,
    mut stale: Vec<StaleFile>,
    targets: &HashSet<String>,
) -> Result<(), MirrorError> {
    let Some(root) = ctx.root_id else {
        return Ok(());
    };
    // An asset in several album folders is noted once per folder: merge them.
    stale.sort_by(|a, b| (a.version, &a.rel_path).cmp(&(b.version, &b.rel_path)));
    let mut merged: Vec<StaleFile> = Vec::with_capacity(stale.len());
    for file in stale {
        match merged.last_mut() {
            Some(last) if last.version == file.version && last.rel_path == file.rel_path => {
                last.link_dirs.extend(file.link_dirs);
            }
            _ => merged.push(file),
        }
    }
    let stale = merged;
    let needed: Vec<VersionKey> = stale
        .iter()
        .flat_map(|s| s.replaced_by.iter().copied())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let states = catalog.download_states(root, &needed)?;
    let done = |v: &VersionKey| matches!(states.get(v), Some(DownloadState::Downloaded { .. }));
    let mut owners: Option<HashMap<String, VersionKey>> = None;
    let mut left_dirs: HashSet<PathBuf> = HashSet::new();
    for file in stale {
        if !file.replaced_by.iter().all(done) {
            tracing::debug!(path = %file.rel_path, "kept: what replaces it is not downloaded yet");
            continue;
        }
        if ctx
            .claims
            .owner(&file.rel_path)
            .is_some_and(|o| o != file.version)
        {
            continue;
        }
        if owners.is_none() {
            owners = Some(recorded_owners(catalog, root)?);
        }
        let owner = owners
            .as_ref()
            .and_then(|o| o.get(&file.rel_path.to_lowercase()));
        if owner.is_some_and(|o| *o != file.version) {
            continue;
        }
        let path = ctx.root.join(&file.rel_path);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(_) => {
                // Already gone: only the record is left to drop.
                forget(ctx, &file);
                continue;
            }
        };
        let (_, sha256) = hash_file(&path).map_err(|source| MirrorError::LocalIo {
            context: "reading",
            path: path.clone(),
            source,
        })?;
        if sha256 != file.sha256 {
            // Not ours any more: kept, and forgotten so that later runs leave it alone. When a
            // file of the plan is to move to its path, it steps aside under a free name.
            let mut kept_at = file.rel_path.clone();
            if targets.contains(&file.rel_path.to_lowercase()) {
                kept_at = super::reconcile::free_name(&ctx.root, &file.rel_path);
                super::reconcile::rename_noreplace(&path, &ctx.root.join(&kept_at)).map_err(
                    |source| MirrorError::LocalIo {
                        context: "moving aside",
                        path: path.clone(),
                        source,
                    },
                )?;
            }
            forget(ctx, &file);
            tracing::warn!(
                path = %kept_at,
                "kept a file that the photo's current version replaced: it changed on disk since it was \
                 downloaded, so it is left to you"
            );
            ctx.counters.warn();
            continue;
        }
        let links = hard_links(ctx, &file, &meta);
        for target in std::iter::once(&path).chain(&links) {
            std::fs::remove_file(target).map_err(|source| MirrorError::LocalIo {
                context: "removing",
                path: target.clone(),
                source,
            })?;
            let sidecar = crate::metadata::sidecar_path(target);
            if sidecar.exists() {
                let _ = std::fs::remove_file(&sidecar);
            }
            if let Some(dir) = target.parent() {
                left_dirs.insert(dir.to_path_buf());
            }
        }
        forget(ctx, &file);
        ctx.counters.replaced.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %file.rel_path, "removed: replaced by the photo's current version (an edit made or reverted in iCloud)");
    }
    super::reconcile::remove_empty_dirs(&ctx.root, left_dirs);
    Ok(())
}

/// The hard links of `file` (same device and inode) under its name in its `link_dirs`.
fn hard_links(ctx: &RunContext, file: &StaleFile, meta: &std::fs::Metadata) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let name = file.rel_path.rsplit('/').next().unwrap_or(&file.rel_path);
    let mut out = Vec::new();
    for dir in &file.link_dirs {
        let candidate = format!("{dir}{name}");
        if candidate == file.rel_path || ctx.claims.owner(&candidate).is_some() {
            continue;
        }
        let path = ctx.root.join(&candidate);
        if std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_file() && m.dev() == meta.dev() && m.ino() == meta.ino())
            && !out.contains(&path)
        {
            out.push(path);
        }
    }
    out
}

/// Recorded files of the root by lowercase path.
fn recorded_owners(
    catalog: &Catalog,
    root: crate::catalog::RootId,
) -> Result<HashMap<String, VersionKey>, MirrorError> {
    Ok(catalog
        .downloaded_paths(root)?
        .into_iter()
        .map(|(v, p)| (p.to_lowercase(), v))
        .collect())
}

/// Drop the catalog's record of a stale file (removed, gone, or left to the user).
fn forget(ctx: &RunContext, file: &StaleFile) {
    let Some(state) = &ctx.state else {
        return;
    };
    if file.recorded {
        state.send(DownloadUpdate::Forget {
            version: file.version,
        });
    }
    if let Some(id) = file.orphan {
        state.forget_orphan(id);
    }
}

/// The stale files of one directory's plan that versions its photos lost left behind (an edit
/// reverted in iCloud), each to be replaced by its photo's files planned there; and their
/// paths (lowercase), which planned files must not take before they are gone.
/// `link_dir`: with album folders, this directory (`dir/`), where hard links of them may be.
pub(super) fn orphans(
    catalog: &Catalog,
    root: RootId,
    items: &[PlanItem],
    link_dir: Option<&str>,
) -> Result<(Vec<StaleFile>, HashSet<String>), MirrorError> {
    let mut planned: HashMap<AssetKey, Vec<VersionKey>> = HashMap::new();
    for item in items {
        planned
            .entry(item.asset.key)
            .or_default()
            .push(item.version);
    }
    let keys: Vec<AssetKey> = planned.keys().copied().collect();
    let found = catalog.orphaned_files(root, &keys)?;
    let mut stale = Vec::new();
    let mut paths = HashSet::new();
    for (asset, files) in found {
        let Some(replaced_by) = planned.get(&asset) else {
            continue;
        };
        for file in files {
            paths.insert(file.rel_path.to_lowercase());
            stale.push(StaleFile {
                // Row keys are positive: a negative stand-in never matches a real version.
                version: VersionKey(-file.id),
                rel_path: file.rel_path,
                sha256: file.sha256,
                recorded: false,
                orphan: Some(file.id),
                replaced_by: replaced_by.clone(),
                link_dirs: link_dir.map(str::to_string).into_iter().collect(),
            });
        }
    }
    Ok((stale, paths))
}
