//! What to do with each planned file, given its recorded state and what is on disk:
//!
//! | recorded | on disk | action |
//! |---|---|---|
//! | downloaded at the planned path | present | skip |
//! | downloaded elsewhere | present there | skip; rename at the end (`reconcile`) |
//! | downloaded | missing | download again |
//! | not downloaded | nothing at the path | download |
//! | not downloaded | an older copy of this version | download, replacing it |
//! | not downloaded | a file of another version of this run or catalog | download beside it ("parked"), rename at the end |
//! | not downloaded | an unknown file of the right size | adopt it (hash, record) |
//! | not downloaded | an unknown file of another size | fail this file; never overwrite it |
//!
//! Runs on a blocking thread (SQLite reads, `stat`s, hashing of adopted files) and sends jobs
//! to the URL resolver over a bounded channel, so planning never runs far ahead of the
//! downloads.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::catalog::{Catalog, DownloadState, DownloadUpdate, LibraryId, VersionKey};
use crate::model::Library;

use super::engine::RunContext;
use super::plan::{PlanItem, TreeIndex};
use super::reconcile::PendingMove;
use super::report::{Failure, SkipReason};
use super::worker::{FileSpec, Job};
use super::{MirrorError, RunMode};

/// Plan the run and queue its downloads; returns the renames to check once downloads end.
pub(super) fn plan(
    ctx: &Arc<RunContext>,
    catalog: &Catalog,
    libraries: &HashMap<LibraryId, Library>,
    tx: mpsc::Sender<Job>,
) -> Result<Vec<PendingMove>, MirrorError> {
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
        for item in items {
            if !planner.decide(item, &states)? {
                break;
            }
        }
    }
    if planner.missing > 0 {
        tracing::info!(
            files = planner.missing,
            "files recorded as downloaded were missing on disk; fetching them again"
        );
    }
    Ok(planner.moves)
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
}

impl Planner<'_> {
    /// Decide one file; `Ok(false)` when the run is stopping.
    fn decide(
        &mut self,
        item: PlanItem,
        states: &HashMap<VersionKey, DownloadState>,
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

        if ctx.transfers.is_known(item.version) {
            // Taken while the listing streamed, under its name before collision handling.
            if item.collided {
                self.moves.push(PendingMove::new(item.version, planned));
            }
            return Ok(true);
        }
        let mut previous: Option<&str> = None;
        match state {
            Some(DownloadState::Downloaded { rel_path, .. }) => {
                if self.exists(rel_path) {
                    counters.skip(SkipReason::AlreadyDownloaded);
                    if *rel_path != planned {
                        self.moves.push(PendingMove::new(item.version, planned));
                    }
                    return Ok(true);
                }
                tracing::debug!(path = %rel_path, "recorded as downloaded but missing on disk; fetching it again");
                self.missing += 1;
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

        let Some(meta) = on_disk else {
            return self.queue(item, planned, false);
        };
        if previous.is_some_and(|p| p.eq_ignore_ascii_case(&planned)) {
            // An older copy of this very version (the photo was edited): replace it.
            return self.queue(item, planned, true);
        }
        if let Some(owner) = ctx
            .claims
            .owner(&planned)
            .or_else(|| self.recorded_owner(&planned))
            && owner != item.version
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
        let error = format!(
            "{} is in the way: a file that is not from this library (or another version of \
             it) is there; move it away and run again",
            planned
        );
        self.fail_unqueued(&item, &planned, error);
        Ok(true)
    }

    /// Whether a path relative to the root exists (a cheap `stat`).
    fn exists(&self, rel_path: &str) -> bool {
        std::fs::symlink_metadata(self.ctx.root.join(rel_path)).is_ok()
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
            replace,
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
        tracing::info!(path = %rel_path, "adopting a complete file found at its planned path");
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
        for candidate in icloudpd_names(item) {
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
            state.send(DownloadUpdate::Failed {
                version: item.version,
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

/// Where a file waits when another version's file is at its planned path: a hidden name in
/// the same directory, unique per version.
fn parked_path(dir_prefix: &str, version: VersionKey) -> String {
    format!("{dir_prefix}.icloudpd-rs-parked-{}", version.0)
}

/// Names under which icloudpd may have written the file: the name before collision handling,
/// and that name with `-<size>` before the extension.
fn icloudpd_names(item: &PlanItem) -> Vec<String> {
    let Some(base) = &item.base_name else {
        return Vec::new();
    };
    let dir = &item.file.dir;
    let (stem, ext) = match base.rfind('.') {
        Some(i) if i > 0 => (&base[..i], &base[i..]),
        _ => (base.as_str(), ""),
    };
    vec![
        dir.join(base),
        dir.join(&format!("{stem}-{}{ext}", item.file.size)),
    ]
}

/// Size and SHA-256 of a file.
pub(super) fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
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
