//! Deletions, both directions, after a run has brought the folder in line:
//!
//! - **Local** (`--auto-delete`): files of photos that are in Recently Deleted or have left
//!   iCloud are removed, with their `.xmp` sidecar. They are found by asset id through the
//!   catalog (the versions recorded in this folder), never by file name, and a file whose size
//!   is not the recorded one (replaced by the user since) is kept.
//! - **In iCloud** (`--keep-icloud-recent-days N`, `--delete-after-download`): a photo is
//!   moved to Recently Deleted only when every one of its planned files is recorded in this
//!   folder and checked on disk (size and SHA-256 read back) — never when any version failed
//!   or is missing.
//!
//! Nothing is deleted unless the run's refresh succeeded (the catalog is current) and the run
//! was complete; the caller's [`Confirm`] answers before anything goes (`--yes`, a prompt on a
//! terminal, or "no" in a script); a dry run only lists.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::catalog::{
    AssetKey, Catalog, DownloadState, DownloadStateKind, DownloadUpdate, StoredAsset, VersionKey,
};
use crate::model::Library;

use super::MirrorError;
use super::disk::hash_file;
use super::engine::RunContext;
use super::plan::TreeIndex;
use super::urls::ApiError;

/// Asks the user whether to go ahead; gets the question, answers yes or no.
pub type Confirm = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What to delete (the deletion flags).
#[derive(Clone, Default)]
pub struct DeletionOptions {
    /// `--auto-delete`.
    pub auto_delete: bool,
    /// `--keep-icloud-recent-days N`.
    pub keep_icloud_recent_days: Option<u32>,
    /// `--delete-after-download`.
    pub delete_after_download: bool,
    /// Answers the confirmation; `None` means `--yes`.
    pub confirm: Option<Confirm>,
}

impl std::fmt::Debug for DeletionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeletionOptions")
            .field("auto_delete", &self.auto_delete)
            .field("keep_icloud_recent_days", &self.keep_icloud_recent_days)
            .field("delete_after_download", &self.delete_after_download)
            .field("confirm", &self.confirm.is_some())
            .finish()
    }
}

impl DeletionOptions {
    /// True when any deletion is asked for.
    pub fn any(&self) -> bool {
        self.auto_delete || self.delete_after_download || self.keep_icloud_recent_days.is_some()
    }

    /// True when photos are moved to Recently Deleted in iCloud.
    pub fn in_icloud(&self) -> bool {
        self.delete_after_download || self.keep_icloud_recent_days.is_some()
    }

    fn confirmed(&self, question: &str) -> bool {
        match &self.confirm {
            None => true,
            Some(ask) => ask(question),
        }
    }
}

/// How many things were deleted.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Local files removed.
    pub local: AtomicU64,
    /// Photos moved to Recently Deleted in iCloud.
    pub in_icloud: AtomicU64,
}

/// A local file `--auto-delete` removes.
struct Doomed {
    version: VersionKey,
    rel_path: String,
    size: u64,
    /// The SHA-256 it must still have (a file of a reset state, not trusted by its size).
    digest: Option<[u8; 32]>,
}

/// Remove the local files of photos deleted in iCloud (`--auto-delete`).
pub(super) fn local(ctx: &RunContext, catalog: &Catalog, dry_run: bool) -> Result<(), MirrorError> {
    let Some(root) = ctx.root_id else {
        return Ok(());
    };
    // Files recorded as downloaded, and those of a folder whose state was reset (pending
    // again, their path and digest kept): the sync reads the latter back only while their
    // photo is planned, which a deleted photo no longer is.
    let mut records = Vec::new();
    for kind in [DownloadStateKind::Downloaded, DownloadStateKind::Pending] {
        for r in catalog.downloads(root, kind) {
            records.push(r?);
        }
    }
    let keys: Vec<AssetKey> = records.iter().map(|r| r.asset).collect();
    let deleted: HashMap<AssetKey, bool> = catalog
        .assets_by_keys(&keys)?
        .into_iter()
        .map(|a| (a.key, a.gone_ms.is_some() || a.asset.deleted))
        .collect();
    // Photos this tool moved to Recently Deleted left iCloud so that this copy stays.
    let ours = catalog.moved_to_trash()?;
    let kept = records
        .iter()
        .filter(|r| ours.contains(&r.asset))
        .filter(|r| r.asset_gone || deleted.get(&r.asset).copied().unwrap_or(false))
        .count();
    if kept > 0 {
        tracing::info!(
            files = kept,
            "kept the local files of photos that icloudpd-rs itself moved to Recently Deleted (--delete-after-download, --keep-icloud-recent-days)"
        );
    }
    let mut reset = Vec::new();
    let mut doomed: Vec<Doomed> = records
        .into_iter()
        .filter(|r| !ours.contains(&r.asset))
        .filter(|r| r.asset_gone || deleted.get(&r.asset).copied().unwrap_or(false))
        .filter_map(|r| match r.state {
            DownloadState::Downloaded { rel_path, size, .. } => Some(Doomed {
                version: r.version,
                rel_path,
                size,
                digest: None,
            }),
            _ => {
                reset.push(r.version);
                None
            }
        })
        .collect();
    for (version, copy) in catalog.previous_copies(root, &reset)? {
        if copy.current {
            doomed.push(Doomed {
                version,
                rel_path: copy.rel_path,
                size: copy.size,
                digest: Some(copy.sha256),
            });
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    let links = album_links(&ctx.root, &doomed);
    let link_count: usize = links.values().map(Vec::len).sum();
    if dry_run {
        for Doomed {
            version, rel_path, ..
        } in &doomed
        {
            ctx.report_deletion(&format!("would delete {rel_path}"));
            for link in links.get(version).into_iter().flatten() {
                ctx.report_deletion(&format!("would delete {link}"));
            }
        }
        return Ok(());
    }
    let question = format!(
        "Delete {} local file(s) of photos that were deleted in iCloud?",
        doomed.len() + link_count
    );
    if !ctx.config.deletion.confirmed(&question) {
        tracing::warn!(
            files = doomed.len(),
            "kept the local files of photos deleted in iCloud (not confirmed; use --yes)"
        );
        return Ok(());
    }
    // Folders the deletions leave empty go too, as after a rename: a date tree of years of
    // deleted photos would otherwise keep every emptied day folder.
    let mut emptied = HashSet::new();
    for Doomed {
        version,
        rel_path,
        size,
        digest,
    } in doomed
    {
        let path = ctx.root.join(&rel_path);
        match std::fs::symlink_metadata(&path) {
            // A reset state trusts no file: its bytes are read back first.
            Ok(m)
                if m.is_file()
                    && m.len() == size
                    && digest.is_none_or(|d| hash_file(&path).is_ok_and(|(_, sha)| sha == d)) => {}
            Ok(_) => {
                tracing::warn!(path = %rel_path, "not deleting a file that changed since it was downloaded");
                continue;
            }
            Err(_) => {
                forget(ctx, version);
                continue;
            }
        }
        // Its other album folders' copies first: once the recorded file is gone, nothing
        // tells them from the user's files.
        for link in links.get(&version).into_iter().flatten() {
            let at = ctx.root.join(link);
            if std::fs::remove_file(&at).is_ok() {
                let _ = std::fs::remove_file(crate::metadata::sidecar_path(&at));
                ctx.deleted.local.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %link, "deleted: the photo was deleted in iCloud (its copy in another album folder)");
                if let Some(dir) = at.parent() {
                    emptied.insert(dir.to_path_buf());
                }
            }
        }
        std::fs::remove_file(&path).map_err(|source| MirrorError::LocalIo {
            context: "deleting",
            path: path.clone(),
            source,
        })?;
        let sidecar = crate::metadata::sidecar_path(&path);
        if sidecar.exists() {
            let _ = std::fs::remove_file(&sidecar);
        }
        forget(ctx, version);
        ctx.deleted.local.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %rel_path, "deleted: the photo was deleted in iCloud");
        if let Some(dir) = path.parent() {
            emptied.insert(dir.to_path_buf());
        }
    }
    super::reconcile::remove_empty_dirs(&ctx.root, emptied);
    Ok(())
}

/// The other paths of doomed files under `root`: an asset in several album folders is written
/// once and hard-linked into the others (`reconcile::link_duplicates`), and only the first path
/// is recorded. A path counts when it is the same file (device and inode) as a recorded one
/// still of its recorded size; one walk of the folder, made only when some doomed file has
/// other links. Symbolic links are not followed.
fn album_links(root: &Path, doomed: &[Doomed]) -> HashMap<VersionKey, Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut wanted: HashMap<(u64, u64), VersionKey> = HashMap::new();
    let mut recorded: HashSet<PathBuf> = HashSet::new();
    for Doomed {
        version,
        rel_path,
        size,
        ..
    } in doomed
    {
        let path = root.join(rel_path);
        if let Ok(m) = std::fs::symlink_metadata(&path)
            && m.is_file()
            && m.len() == *size
            && m.nlink() > 1
        {
            wanted.insert((m.dev(), m.ino()), *version);
            recorded.insert(path);
        }
    }
    let mut found: HashMap<VersionKey, Vec<String>> = HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    super::disk::for_each_file(root, |entry| {
        let path = entry.path();
        if !recorded.contains(&path)
            && let Ok(m) = entry.metadata()
            && let Some(version) = wanted.get(&(m.dev(), m.ino()))
            && let Ok(rel) = path.strip_prefix(root)
        {
            found
                .entry(*version)
                .or_default()
                .push(rel.to_string_lossy().into_owned());
        }
    });
    found
}

fn forget(ctx: &RunContext, version: VersionKey) {
    if let Some(state) = &ctx.state {
        state.send(DownloadUpdate::Forget { version });
    }
}

/// The photos of the plan that may go to Recently Deleted now, with their library. A dry run
/// downloaded nothing: its candidates are the photos a real run would download and then
/// move, as well as those already on disk.
pub(super) fn icloud_candidates(
    ctx: &RunContext,
    catalog: &Catalog,
    libraries: &HashMap<crate::catalog::LibraryId, Library>,
    dry_run: bool,
) -> Result<Vec<(Arc<StoredAsset>, Library)>, MirrorError> {
    // A dry run into a folder never synced has no root recorded: nothing is on disk yet.
    let root = match ctx.root_id {
        Some(root) => Some(root),
        None if dry_run => None,
        None => return Ok(Vec::new()),
    };
    let config = &ctx.config;
    let cutoff_ms = config
        .deletion
        .keep_icloud_recent_days
        .map(|days| chrono::Utc::now().timestamp_millis() - i64::from(days) * 86_400_000);
    let sources = config.selection.sources(catalog)?;
    let index = TreeIndex::build(catalog, &config.policy, &config.selection, &sources, root)?;
    let mut out = Vec::new();
    for group in 0..index.directories() {
        let items = index.plan_directory(group, catalog, &config.policy, &config.selection)?;
        let versions: Vec<VersionKey> = items.iter().map(|i| i.version).collect();
        let states = match root {
            Some(root) => catalog.download_states(root, &versions)?,
            None => HashMap::new(),
        };
        let mut by_asset: HashMap<AssetKey, (Arc<StoredAsset>, Vec<VersionKey>)> = HashMap::new();
        for item in items {
            by_asset
                .entry(item.asset.key)
                .or_insert_with(|| (item.asset.clone(), Vec::new()))
                .1
                .push(item.version);
        }
        for (_, (asset, versions)) in by_asset {
            let a = &asset.asset;
            if a.deleted || a.hidden || asset.gone_ms.is_some() {
                continue;
            }
            let old_enough = cutoff_ms.is_none_or(|cutoff| a.asset_date_ms <= cutoff);
            // A dry run fetched nothing: it counts what a real run would fetch (and check).
            let fetched_now = !config.deletion.delete_after_download
                || versions.iter().any(|v| {
                    if dry_run {
                        would_fetch(ctx, states.get(v))
                    } else {
                        ctx.transfers.is_done(*v)
                    }
                });
            if !(old_enough && fetched_now) {
                continue;
            }
            let checks_out = |v: &VersionKey| {
                (dry_run && would_fetch(ctx, states.get(v))) || verified(ctx, states.get(v))
            };
            if versions.iter().all(checks_out) {
                if let Some(library) = libraries.get(&asset.library) {
                    out.push((asset.clone(), library.clone()));
                }
            } else {
                tracing::info!(asset = %a.id, "not deleting in iCloud: a version is missing or does not check out on disk");
            }
        }
    }
    Ok(out)
}

/// Whether a sync would download the version: not recorded as downloaded, or its file gone.
fn would_fetch(ctx: &RunContext, state: Option<&DownloadState>) -> bool {
    match state {
        Some(DownloadState::Downloaded { rel_path, .. }) => !ctx.root.join(rel_path).exists(),
        _ => true,
    }
}

/// A version recorded as downloaded whose file has the recorded size and SHA-256 on disk.
fn verified(ctx: &RunContext, state: Option<&DownloadState>) -> bool {
    let Some(DownloadState::Downloaded {
        rel_path,
        size,
        sha256,
        ..
    }) = state
    else {
        return false;
    };
    // Only our own regular file counts, never one reached through a link put in its place.
    let path = ctx.root.join(rel_path);
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    match hash_file(&path) {
        Ok((s, d)) => s == *size && d == *sha256,
        Err(_) => false,
    }
}

/// Move the candidates to Recently Deleted (after confirmation).
pub(super) async fn in_icloud(
    ctx: &RunContext,
    candidates: Vec<(Arc<StoredAsset>, Library)>,
    dry_run: bool,
) -> Result<(), MirrorError> {
    if candidates.is_empty() {
        return Ok(());
    }
    if dry_run {
        for (asset, _) in &candidates {
            ctx.report_deletion(&format!(
                "would move to Recently Deleted in iCloud: {} ({})",
                asset.asset.filename.as_deref().unwrap_or("(no name)"),
                asset.asset.id
            ));
        }
        return Ok(());
    }
    let question = format!(
        "Move {} photo(s), downloaded and checked, to Recently Deleted in iCloud?",
        candidates.len()
    );
    if !ctx.config.deletion.confirmed(&question) {
        tracing::warn!(
            photos = candidates.len(),
            "nothing moved to Recently Deleted in iCloud (not confirmed; use --yes)"
        );
        return Ok(());
    }
    for (asset, library) in candidates {
        if ctx.stop.is_cancelled() {
            break;
        }
        let a = &asset.asset;
        match ctx
            .api
            .move_to_recently_deleted(&library, &a.asset_record, a.asset_change_tag.as_deref())
            .await
        {
            Ok(()) => {
                if let Some(state) = &ctx.state {
                    state.moved_to_trash(asset.key);
                }
                ctx.deleted.in_icloud.fetch_add(1, Ordering::Relaxed);
                tracing::info!(asset = %a.id, name = ?a.filename, "moved to Recently Deleted in iCloud");
            }
            Err(ApiError::Auth(e)) => return Err(MirrorError::Auth(e)),
            Err(ApiError::CloudKit(e)) => {
                tracing::warn!(asset = %a.id, error = %e, "could not move to Recently Deleted");
                ctx.counters.warn();
            }
        }
    }
    Ok(())
}
