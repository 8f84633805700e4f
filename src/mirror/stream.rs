//! Downloads that start while the listing is still running.
//!
//! The refresh hands every stored page to [`StreamSink`] with fresh download URLs. A file of
//! such an asset is queued at once when its place is certain enough: the selection is
//! per-asset (no album, `--recent` or `--until-found`), the version is not recorded in the
//! root, and nothing is at, or claimed for, its name before collision handling. Everything
//! else waits for the planner, which sees the whole catalog: a later page may hold an
//! earlier-added asset that owns the name, and then `reconcile` renames at the end.
//!
//! The workers' channel is bounded and the sink never waits on it: when it is full the rest
//! of the page is left to the planner (which gets fresh URLs in batches), so a fast listing
//! never piles up URLs that would expire in the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::catalog::{Catalog, DownloadState, LibraryId};
use crate::cloudkit::ListedAsset;
use crate::layout;
use crate::model::Library;
use crate::refresh::PageSink;

use super::engine::RunContext;
use super::worker::{FileSpec, Job};
use crate::memory::Trimmer;

/// The [`PageSink`] of a sync run.
pub(super) struct StreamSink {
    ctx: Arc<RunContext>,
    catalog: Catalog,
    tx: mpsc::Sender<Job>,
    library_ids: HashMap<String, Option<LibraryId>>,
    /// The listing frees each page once stored: handed back as pages come (see `memory`).
    trimmer: Trimmer,
}

impl StreamSink {
    /// A sink queueing to the workers' channel `tx`, reading the catalog through `catalog`.
    pub fn new(ctx: Arc<RunContext>, catalog: Catalog, tx: mpsc::Sender<Job>) -> Self {
        StreamSink {
            ctx,
            catalog,
            tx,
            library_ids: HashMap::new(),
            trimmer: Trimmer::default(),
        }
    }

    fn library_id(&mut self, library: &Library) -> Option<LibraryId> {
        if let Some(id) = self.library_ids.get(&library.zone) {
            return *id;
        }
        let id = self
            .catalog
            .library_id(&library.database, &library.zone)
            .ok()
            .flatten();
        self.library_ids.insert(library.zone.clone(), id);
        id
    }

    /// Queue what can be queued of one asset; `false` when the channel is full.
    fn offer(&mut self, library: &Library, library_id: LibraryId, listed: &ListedAsset) -> bool {
        let ctx = self.ctx.clone();
        let (Some(root), config) = (ctx.root_id, &ctx.config) else {
            return true;
        };
        let Ok(Some(stored)) = self.catalog.asset_by_id(library_id, &listed.asset.id) else {
            return true;
        };
        if !config.selection.accepts(&stored, false) {
            return true;
        }
        let files = layout::plan_asset(&stored.asset, &config.policy);
        let keys: Vec<_> = files
            .iter()
            .filter_map(|f| stored.version_key(f.version))
            .collect();
        let Ok(states) = self.catalog.download_states(root, &keys) else {
            return true;
        };
        let stored = Arc::new(stored);
        for file in files {
            if !config.selection.keeps_file(&file.name) {
                continue;
            }
            let Some(version) = stored.version_key(file.version) else {
                continue;
            };
            match states.get(&version) {
                None
                | Some(DownloadState::Pending {
                    previous_path: None,
                }) => {}
                Some(DownloadState::Failed {
                    previous_path: None,
                    ..
                }) => {}
                // Recorded, or an older copy to replace: the planner decides.
                Some(_) => continue,
            }
            let rel_path = file.rel_path();
            if std::fs::symlink_metadata(ctx.root.join(&rel_path)).is_ok() {
                continue;
            }
            let (Some(url), Some(v)) =
                (listed.url(file.version), stored.asset.version(file.version))
            else {
                continue;
            };
            if ctx.claims.claim(&rel_path, version).is_err() {
                continue;
            }
            let Some(handle) = ctx.transfers.claim(version) else {
                ctx.claims.release(&rel_path, version);
                continue;
            };
            let spec = FileSpec {
                version,
                asset: stored.clone(),
                library: library.clone(),
                kind: file.version,
                size: v.size,
                file_type: v.file_type.clone(),
                checksum: v.checksum.clone(),
                mtime_ms: file.mtime_ms,
                rel_path: rel_path.clone(),
                planned: rel_path.clone(),
                replace: false,
                own_copy_at_planned: false,
            };
            let size = spec.size;
            let job = Job {
                handle,
                spec: Arc::new(spec),
                url: Some(url.to_string()),
            };
            match self.tx.try_send(job) {
                Ok(()) => {
                    ctx.counters.queued.fetch_add(1, Ordering::Relaxed);
                    ctx.counters.queued_bytes.fetch_add(size, Ordering::Relaxed);
                }
                Err(_) => {
                    // Dropping the job releases its transfer; the planner takes it later.
                    ctx.claims.release(&rel_path, version);
                    return false;
                }
            }
        }
        true
    }
}

impl PageSink for StreamSink {
    fn assets(&mut self, library: &Library, assets: &[ListedAsset]) {
        self.trimmer.maybe_trim();
        if self.ctx.stop.is_cancelled() || self.ctx.root_id.is_none() {
            return;
        }
        let Some(library_id) = self.library_id(library) else {
            return;
        };
        for listed in assets {
            if self.tx.capacity() == 0 || !self.offer(library, library_id, listed) {
                return;
            }
        }
    }
}
