//! What to do with each planned file, given its recorded state and what is on disk:
//!
//! | recorded | on disk | action |
//! |---|---|---|
//! | downloaded at the planned path | a regular file of the recorded size | skip |
//! | downloaded | anything else (other bytes, a symbolic link, a folder) | decided as found there |
//! | downloaded elsewhere | present there | skip; rename at the end (`reconcile`) |
//! | downloaded | missing | download again |
//! | not downloaded | nothing at the path | download (an older copy elsewhere goes once it is done) |
//! | reset (`reset-state`) | the file recorded before, bytes unchanged (SHA-256) | keep it (renamed if the plan moved) |
//! | reset (`reset-state`) | the file recorded before, bytes changed | fail this file; never overwrite it |
//! | not downloaded | an older copy of this version (edited in iCloud), bytes as written | download, replacing it |
//! | not downloaded | an older copy of this version, bytes changed since | fail this file; never overwrite it |
//! | not downloaded | a file of another version of this run or catalog | download beside it ("parked"), rename at the end |
//! | not downloaded | an unknown file of the right size | adopt it (hash, record) |
//! | not downloaded | an unknown file of another size | fail this file; never overwrite it |
//! | any | a symbolic link or a folder at the planned path | fail this file; never followed, replaced or removed |
//!
//! An asset whose adjusted version appeared (edited in iCloud) while only the edit is asked
//! for (`--size adjusted`) no longer plans its original: the original's file is noted as
//! superseded and removed once the edit is on disk (`supersede`).
//!
//! Runs on a blocking thread (SQLite reads, `stat`s, hashing of adopted files) and sends jobs
//! to the URL resolver over a bounded channel, so planning never runs far ahead of the
//! downloads.

use super::disk::{CopyCheck, check_copy, hash_file};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::catalog::{
    AssetKey, Catalog, DownloadState, DownloadUpdate, LibraryId, PreviousCopy, VersionKey,
};
use crate::model::{Library, VersionKind};

use super::engine::RunContext;
use super::plan::{PlanItem, TreeIndex};
use super::reconcile::PendingMove;
use super::report::{Failure, SkipReason};
use super::supersede::StaleFile;
use super::version_set::VersionSet;
use super::worker::{FileSpec, Job};
use super::{MirrorError, RunMode};

/// What the planner leaves for the end of the run.
#[derive(Debug, Default)]
pub(super) struct Leftovers {
    /// Renames to check once downloads end.
    pub moves: Vec<PendingMove>,
    /// The other paths of a version planned at several paths (an asset in several album
    /// folders): they become links to the one downloaded file (wherever the catalog records
    /// it once the run's renames are made).
    pub links: Vec<(VersionKey, String)>,
    /// Versions whose older copy (this SHA-256) is replaced in this run: links of it at the
    /// other paths of an album layout are replaced too.
    pub replaced: HashMap<VersionKey, [u8; 32]>,
    /// Files replaced by other files of their photo, removed once those are on disk.
    pub stale: Vec<StaleFile>,
}

/// Plan the run and queue its downloads.
pub(super) fn plan(
    ctx: &Arc<RunContext>,
    catalog: &Catalog,
    libraries: &HashMap<LibraryId, Library>,
    tx: mpsc::Sender<Job>,
) -> Result<Leftovers, MirrorError> {
    let config = &ctx.config;
    let sources = config.selection.sources(catalog)?;
    let index = TreeIndex::build(
        catalog,
        &config.policy,
        &config.selection,
        &sources,
        ctx.root_id,
    )?;
    tracing::debug!(
        assets = index.len(),
        directories = index.directories(),
        "planning"
    );
    let mut planner = Planner {
        ctx,
        catalog,
        libraries,
        tx,
        moves: Vec::new(),
        owners: None,
        missing: 0,
        sidecars_written: 0,
        planned_once: config.policy.folder.uses_album().then(VersionSet::default),
        links: Vec::new(),
        stale: Vec::new(),
        replaced: HashMap::new(),
        orphan_paths: HashSet::new(),
    };
    for group in 0..index.directories() {
        if ctx.stop.is_cancelled() {
            break;
        }
        let items = index.plan_directory(group, catalog, &config.policy, &config.selection)?;
        let versions: Vec<VersionKey> = items.iter().map(|i| i.version).collect();
        let states = match ctx.root_id {
            Some(root) => catalog.download_states(root, &versions)?,
            None => HashMap::new(),
        };
        let with_copies: Vec<VersionKey> = states
            .iter()
            .filter(|(_, s)| previous_path(s).is_some())
            .map(|(v, _)| *v)
            .collect();
        let copies = match ctx.root_id {
            Some(root) if !with_copies.is_empty() => catalog.previous_copies(root, &with_copies)?,
            _ => HashMap::new(),
        };
        let sidecars = match ctx.root_id {
            Some(root) if ctx.metadata.xmp_sidecar && config.mode == RunMode::Download => {
                catalog.sidecar_sources(root, &versions)?
            }
            _ => HashMap::new(),
        };
        planner.orphan_paths.clear();
        if config.mode == RunMode::Download {
            planner.find_superseded(&items)?;
            planner.find_orphans(&items)?;
        }
        let dir = items.first().map(|i| i.file.dir.as_str().to_string());
        for item in items {
            if !planner.decide(item, &states, &copies, &sidecars)? {
                break;
            }
        }
        // Nothing more is planned in this directory: its claims are no longer needed.
        if let Some(dir) = dir {
            ctx.claims.close_dir(&dir);
        }
    }
    if planner.sidecars_written > 0 {
        tracing::info!(
            files = planner.sidecars_written,
            "XMP sidecars brought up to date beside files downloaded before"
        );
    }
    if planner.missing > 0 {
        tracing::info!(
            files = planner.missing,
            "files recorded as downloaded were missing on disk; fetching them again"
        );
    }
    Ok(Leftovers {
        moves: planner.moves,
        links: planner.links,
        stale: planner.stale,
        replaced: planner.replaced,
    })
}

/// Where an older copy of a pending or failed version was written, if anywhere.
fn previous_path(state: &DownloadState) -> Option<&str> {
    match state {
        DownloadState::Pending { previous_path } | DownloadState::Failed { previous_path, .. } => {
            previous_path.as_deref()
        }
        DownloadState::Downloaded { .. } => None,
    }
}

struct Planner<'a> {
    ctx: &'a Arc<RunContext>,
    catalog: &'a Catalog,
    libraries: &'a HashMap<LibraryId, Library>,
    tx: mpsc::Sender<Job>,
    moves: Vec<PendingMove>,
    /// Recorded path (lowercase) -> version, loaded the first time a file is in the way.
    owners: Option<HashMap<String, VersionKey>>,
    /// Files recorded as downloaded but missing on disk.
    missing: u64,
    /// Sidecars written beside files downloaded in an earlier run.
    sidecars_written: u64,
    /// With `{album}` folders: the versions planned so far (a version has one download state,
    /// so it is downloaded once, at its first path, and linked at its other paths). One bit
    /// per version: the first path is the catalog's at the end.
    planned_once: Option<VersionSet>,
    links: Vec<(VersionKey, String)>,
    stale: Vec<StaleFile>,
    replaced: HashMap<VersionKey, [u8; 32]>,
    /// Paths (lowercase) of this directory's orphaned files (see `supersede::orphans`).
    orphan_paths: HashSet<String>,
}

impl Planner<'_> {
    /// Decide one file; `Ok(false)` when the run is stopping.
    fn decide(
        &mut self,
        item: PlanItem,
        states: &HashMap<VersionKey, DownloadState>,
        copies: &HashMap<VersionKey, PreviousCopy>,
        sidecars: &HashMap<VersionKey, i64>,
    ) -> Result<bool, MirrorError> {
        let ctx = self.ctx;
        let mode = ctx.config.mode;
        let state = states.get(&item.version);
        if mode == RunMode::RetryFailed && !matches!(state, Some(DownloadState::Failed { .. })) {
            return Ok(true);
        }
        let counters = &ctx.counters;
        let planned = item.file.rel_path();
        counters.planned.fetch_add(1, Ordering::Relaxed);
        if let Some(seen) = self.planned_once.as_mut()
            && !seen.insert(item.version)
        {
            self.links.push((item.version, planned));
            counters.skip(SkipReason::Linked);
            return Ok(true);
        }

        if ctx.transfers.is_known(item.version) {
            // Taken while the listing streamed, under its name before collision handling.
            if item.collided {
                self.moves.push(PendingMove::new(item.version, planned));
            }
            return Ok(true);
        }
        let mut previous: Option<&str> = None;
        match state {
            Some(DownloadState::Downloaded {
                rel_path,
                size,
                sha256,
                ..
            }) => {
                // Not followed: a symbolic link put in the file's place is the user's.
                let on_disk = std::fs::symlink_metadata(self.ctx.root.join(rel_path)).ok();
                if on_disk
                    .as_ref()
                    .is_some_and(|m| m.is_file() && m.len() == *size)
                {
                    counters.skip(SkipReason::AlreadyDownloaded);
                    if mode == RunMode::Download && ctx.metadata.xmp_sidecar {
                        self.refresh_sidecar(&item, rel_path, sidecars.get(&item.version));
                    }
                    if *rel_path != planned {
                        self.moves.push(PendingMove::new(item.version, planned));
                    }
                    return Ok(true);
                }
                if let Some(meta) = on_disk {
                    // Not the file recorded: another version took the path while this one's
                    // file was gone (an edit, later reverted), or the user put something else
                    // there (a link, a folder). Decided below like anything found at the
                    // planned path, never skipped as if it were this version.
                    tracing::warn!(path = %rel_path, symbolic_link = meta.is_symlink(), found = meta.len(), recorded = size, "the file recorded as downloaded was replaced; deciding it again");
                    // Forgotten first: a failure recorded below must not name that path as
                    // this version's older copy, which a later run would replace.
                    if let Some(state) = &self.ctx.state {
                        state.send(DownloadUpdate::Forget {
                            version: item.version,
                        });
                    }
                } else if let Some(found) =
                    super::reconcile::renamed_to(ctx, self.catalog, item.version, (*size, sha256))?
                {
                    // A run stopped between renaming this file and recording the rename.
                    tracing::info!(from = %rel_path, to = %found, "found a file where an interrupted run renamed it");
                    counters.skip(SkipReason::AlreadyDownloaded);
                    if found != planned {
                        self.moves.push(PendingMove::new(item.version, planned));
                    }
                    return Ok(true);
                } else {
                    tracing::debug!(path = %rel_path, "recorded as downloaded but missing on disk; fetching it again");
                    self.missing += 1;
                }
            }
            Some(DownloadState::Pending { previous_path })
            | Some(DownloadState::Failed { previous_path, .. }) => {
                previous = previous_path.as_deref();
            }
            None => {}
        }

        let on_disk = std::fs::symlink_metadata(self.ctx.root.join(&planned)).ok();
        match mode {
            RunMode::DryRun => {
                if let Some(sink) = &ctx.config.on_planned {
                    sink(&planned);
                }
                counters.skip(SkipReason::DryRun);
                return Ok(true);
            }
            RunMode::ImportExisting => {
                self.import(&item, &planned, on_disk.as_ref())?;
                return Ok(true);
            }
            RunMode::Download | RunMode::RetryFailed => {}
        }

        let copy = copies.get(&item.version);
        if let Some(copy) = copy.filter(|c| c.current) {
            // The state was reset: the file written before is kept if its bytes still match.
            match check_copy(&self.ctx.root, copy)? {
                CopyCheck::Unchanged => {
                    self.record_copy(&item, copy);
                    if !copy.rel_path.eq_ignore_ascii_case(&planned) {
                        self.moves.push(PendingMove::new(item.version, planned));
                    }
                    return Ok(true);
                }
                CopyCheck::Changed if copy.rel_path.eq_ignore_ascii_case(&planned) => {
                    let error = "the file changed on disk since it was downloaded (its SHA-256 \
                                 is not the one recorded); it is left as it is: move it away to \
                                 download iCloud's copy again"
                        .to_string();
                    self.fail_unqueued(&item, &planned, error);
                    return Ok(true);
                }
                // Gone, or changed at a path the plan no longer uses: download as usual.
                CopyCheck::Changed | CopyCheck::Missing => {}
            }
        }
        let Some(meta) = on_disk else {
            if let Some(copy) =
                copy.filter(|c| !c.current && !c.rel_path.eq_ignore_ascii_case(&planned))
            {
                // The photo was edited and its file moved: the older copy goes once the new
                // one is on disk (if it is still the one written).
                self.stale.push(StaleFile {
                    version: item.version,
                    rel_path: copy.rel_path.clone(),
                    sha256: copy.sha256,
                    recorded: false,
                    orphan: None,
                    replaced_by: vec![item.version],
                    link_dirs: Vec::new(),
                });
            }
            return self.queue(item, planned, false);
        };
        if meta.is_file() && previous.is_some_and(|p| p.eq_ignore_ascii_case(&planned)) {
            // An older copy of this very version (the photo was edited): replace it, unless it
            // changed since it was written (then it is not ours to overwrite). A symbolic link
            // or a folder there is never ours: it is in the way (below).
            let check = match copy {
                Some(copy) => check_copy(&self.ctx.root, copy)?,
                None => CopyCheck::Missing,
            };
            match (check, copy) {
                (CopyCheck::Changed, _) => {
                    let error = "the file changed on disk since it was downloaded, and the \
                                 photo was edited in iCloud since; it is left as it is: move it \
                                 away to download the new version"
                        .to_string();
                    self.fail_unqueued(&item, &planned, error);
                    return Ok(true);
                }
                (CopyCheck::Unchanged, Some(copy)) => {
                    // Its links in other album folders are replaced with it.
                    self.replaced.insert(item.version, copy.sha256);
                }
                _ => {}
            }
            return self.queue(item, planned, true);
        }
        let orphaned = self.orphan_paths.contains(&planned.to_lowercase());
        if orphaned
            || ctx
                .claims
                .owner(&planned)
                .or_else(|| self.recorded_owner(&planned))
                .is_some_and(|owner| owner != item.version)
        {
            // Another version's file sits at our path; it will move to its own planned path.
            let parked = parked_path(&item.file.dir.join(""), item.version);
            self.moves.push(PendingMove::new(item.version, planned));
            return self.queue(item, parked, false);
        }
        if meta.is_file() && meta.len() == item.file.size {
            self.adopt(&item, &planned)?;
            return Ok(true);
        }
        if meta.is_file() && ctx.metadata.set_exif_datetime {
            // Files are rewritten after download: this may be our own, its record lost.
            let parked = parked_path(&item.file.dir.join(""), item.version);
            return self.queue_as(item, parked, false, true);
        }
        // Sync never makes a folder at a file's path: one there is the user's.
        let error = if meta.is_dir() {
            format!("{planned} is in the way: a folder is there; move it away and run again")
        } else if meta.is_symlink() {
            format!(
                "{planned} is in the way: a symbolic link is there (never written through); \
                 move it away and run again"
            )
        } else {
            stranger_in_the_way(&planned)
        };
        self.fail_unqueued(&item, &planned, error);
        Ok(true)
    }

    /// Record a checked copy as downloaded again, where it is.
    fn record_copy(&mut self, item: &PlanItem, copy: &PreviousCopy) {
        if let Some(state) = &self.ctx.state {
            let source_sha256 = self.ctx.root_id.and_then(|root| {
                self.catalog
                    .download_source_digest(item.version, root)
                    .ok()
                    .flatten()
            });
            state.send(DownloadUpdate::Downloaded {
                version: item.version,
                rel_path: copy.rel_path.clone(),
                size: copy.size,
                sha256: copy.sha256,
                source_sha256,
            });
        }
        self.ctx.claims.claim(&copy.rel_path, item.version).ok();
        self.ctx.counters.skip(SkipReason::Adopted);
    }

    /// Note the originals that an edit superseded: assets of this directory whose adjusted
    /// version is now planned for the `adjusted` size in place of the original (which the plan
    /// no longer has), with the original recorded as downloaded here.
    fn find_superseded(&mut self, items: &[PlanItem]) -> Result<(), MirrorError> {
        let Some(root) = self.ctx.root_id else {
            return Ok(());
        };
        let mut by_asset: HashMap<AssetKey, (&PlanItem, Vec<VersionKey>, bool)> = HashMap::new();
        for item in items {
            let entry = by_asset
                .entry(item.asset.key)
                .or_insert_with(|| (item, Vec::new(), false));
            entry.1.push(item.version);
            entry.2 |= item.file.role == VersionKind::Adjusted
                && item.file.version == VersionKind::Adjusted;
        }
        let mut candidates: Vec<(VersionKey, Vec<VersionKey>, String)> = Vec::new();
        for (item, planned, edited) in by_asset.into_values() {
            if let Some(original) = item.asset.version_key(VersionKind::Original)
                && edited
                && !planned.contains(&original)
            {
                candidates.push((original, planned, item.file.dir.join("")));
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let keys: Vec<VersionKey> = candidates.iter().map(|(v, ..)| *v).collect();
        let states = self.catalog.download_states(root, &keys)?;
        for (original, replaced_by, dir) in candidates {
            if let Some(DownloadState::Downloaded {
                rel_path, sha256, ..
            }) = states.get(&original)
            {
                self.stale.push(StaleFile {
                    version: original,
                    rel_path: rel_path.clone(),
                    sha256: *sha256,
                    recorded: true,
                    orphan: None,
                    replaced_by,
                    link_dirs: self
                        .planned_once
                        .is_some()
                        .then_some(dir)
                        .into_iter()
                        .collect(),
                });
            }
        }
        Ok(())
    }

    /// Note the files of versions that photos of this directory lost (an edit reverted): they
    /// go once the photo's planned files are on disk, if their bytes are still ours.
    fn find_orphans(&mut self, items: &[PlanItem]) -> Result<(), MirrorError> {
        let Some(root) = self.ctx.root_id else {
            return Ok(());
        };
        let link_dir = self
            .planned_once
            .is_some()
            .then(|| items.first().map(|i| i.file.dir.join("")))
            .flatten();
        let (stale, paths) =
            super::supersede::orphans(self.catalog, root, items, link_dir.as_deref())?;
        self.stale.extend(stale);
        self.orphan_paths = paths;
        Ok(())
    }

    /// With `--xmp-sidecar`, the sidecar of a file downloaded before is written when it is
    /// missing (the flag was added since, or it was removed) or was written from other
    /// metadata than the asset's now (changed in iCloud), as icloudpd does for every file.
    fn refresh_sidecar(&mut self, item: &PlanItem, rel_path: &str, written_from: Option<&i64>) {
        let hash = Catalog::asset_content_hash(&item.asset.asset);
        let path = self.ctx.root.join(rel_path);
        let sidecar = crate::metadata::sidecar_path(&path);
        if written_from == Some(&hash) && std::fs::symlink_metadata(&sidecar).is_ok() {
            return;
        }
        match super::worker::write_sidecar(&path, &item.asset) {
            Ok((of, written)) => {
                self.sidecars_written += u64::from(written);
                if let Some(state) = &self.ctx.state {
                    state.send(DownloadUpdate::Sidecar {
                        version: item.version,
                        of,
                    });
                }
            }
            Err(warning) => {
                tracing::warn!(path = %path.display(), "{warning}");
                self.ctx.counters.warn();
            }
        }
    }

    /// The version recorded at `rel_path` in this root, if any.
    fn recorded_owner(&mut self, rel_path: &str) -> Option<VersionKey> {
        let root = self.ctx.root_id?;
        if self.owners.is_none() {
            let map = match self.catalog.downloaded_paths(root) {
                Ok(rows) => rows
                    .into_iter()
                    .map(|(v, p)| (p.to_lowercase(), v))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list recorded paths");
                    HashMap::new()
                }
            };
            self.owners = Some(map);
        }
        self.owners.as_ref()?.get(&rel_path.to_lowercase()).copied()
    }

    /// Queue a download of `item` to `rel_path`; `Ok(false)` when the run is stopping.
    fn queue(
        &mut self,
        item: PlanItem,
        rel_path: String,
        replace: bool,
    ) -> Result<bool, MirrorError> {
        self.queue_as(item, rel_path, replace, false)
    }

    /// [`Decider::queue`], with [`FileSpec::own_copy_at_planned`].
    fn queue_as(
        &mut self,
        item: PlanItem,
        rel_path: String,
        replace: bool,
        own_copy_at_planned: bool,
    ) -> Result<bool, MirrorError> {
        let ctx = self.ctx;
        let Some(handle) = ctx.transfers.claim(item.version) else {
            return Ok(true);
        };
        if ctx.claims.claim(&rel_path, item.version).is_err() {
            // Raced with the listing's downloads: park instead.
            let parked = parked_path(&item.file.dir.join(""), item.version);
            self.moves.push(PendingMove::new(item.version, rel_path));
            drop(handle);
            return self.queue(item, parked, false);
        }
        let Some(library) = self.libraries.get(&item.asset.library).cloned() else {
            return Ok(true);
        };
        let Some(version) = item.asset.asset.version(item.file.version) else {
            return Ok(true);
        };
        let spec = FileSpec {
            version: item.version,
            library,
            kind: item.file.version,
            size: version.size,
            file_type: version.file_type.clone(),
            checksum: version.checksum.clone(),
            mtime_ms: item.file.mtime_ms,
            rel_path,
            planned: item.file.rel_path(),
            replace,
            own_copy_at_planned,
            asset: item.asset.clone(),
        };
        ctx.counters.queued.fetch_add(1, Ordering::Relaxed);
        ctx.counters
            .queued_bytes
            .fetch_add(spec.size, Ordering::Relaxed);
        let job = Job {
            handle,
            spec: Arc::new(spec),
            url: None,
        };
        Ok(self.tx.blocking_send(job).is_ok() && !ctx.stop.is_cancelled())
    }

    /// Record a complete file found at its planned path.
    fn adopt(&mut self, item: &PlanItem, rel_path: &str) -> Result<(), MirrorError> {
        let path = self.ctx.root.join(rel_path);
        let (size, sha256) = hash_file(&path).map_err(|source| MirrorError::LocalIo {
            context: "reading",
            path: path.clone(),
            source,
        })?;
        tracing::debug!(path = %rel_path, "adopting a complete file found at its planned path");
        if let Some(state) = &self.ctx.state {
            state.send(DownloadUpdate::Downloaded {
                version: item.version,
                rel_path: rel_path.to_string(),
                size,
                sha256,
                source_sha256: None,
            });
        }
        self.ctx.claims.claim(rel_path, item.version).ok();
        self.ctx.counters.skip(SkipReason::Adopted);
        Ok(())
    }

    /// `import-existing`: adopt the file at the planned path, or under the names icloudpd
    /// would have used (its plain name, `<stem>-<size>.<ext>`), matched by size.
    fn import(
        &mut self,
        item: &PlanItem,
        planned: &str,
        on_disk: Option<&std::fs::Metadata>,
    ) -> Result<(), MirrorError> {
        let size = item.file.size;
        if on_disk.is_some_and(|m| m.is_file() && m.len() == size) {
            return self.adopt(item, planned);
        }
        for candidate in item.icloudpd_names() {
            if candidate == planned || self.ctx.claims.owner(&candidate).is_some() {
                continue;
            }
            let found = std::fs::symlink_metadata(self.ctx.root.join(&candidate));
            if found.is_ok_and(|m| m.is_file() && m.len() == size) {
                self.adopt(item, &candidate)?;
                self.moves
                    .push(PendingMove::new(item.version, planned.to_string()));
                return Ok(());
            }
        }
        Ok(())
    }

    /// A file that cannot be queued at all.
    fn fail_unqueued(&mut self, item: &PlanItem, rel_path: &str, error: String) {
        tracing::warn!(path = %rel_path, %error, "not downloading");
        if let Some(state) = &self.ctx.state {
            state.send(DownloadUpdate::FailedAt {
                version: item.version,
                rel_path: rel_path.to_string(),
                error: error.clone(),
            });
        }
        self.ctx.counters.fail(Failure {
            path: rel_path.to_string(),
            asset_id: item.asset.asset.id.clone(),
            error,
        });
    }
}

/// The failure of a file whose planned path holds a file that is not this version's.
pub(super) fn stranger_in_the_way(planned: &str) -> String {
    format!(
        "{planned} is in the way: a file that is not from this library (or another version of \
         it) is there; move it away and run again"
    )
}

/// Where a file waits when another version's file is at its planned path: a hidden name in
/// the same directory, unique per version.
fn parked_path(dir_prefix: &str, version: VersionKey) -> String {
    format!("{dir_prefix}.icloudpd-rs-parked-{}", version.0)
}
