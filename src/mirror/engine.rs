//! One run, start to end: the download folder, the refresh with streaming downloads, the
//! planner, the URL resolver and the workers wired by bounded channels, the second pass,
//! the reconcile step and the report. The shared state of the run's tasks is
//! [`RunContext`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::auth::AccountSession;
use crate::catalog::{Catalog, DownloadUpdate, LibraryId, RootId};
use crate::fetch::FetchConfig;
use crate::model::Library;
use crate::refresh::{self, NoSink, PageSink, RefreshOptions};

use super::disk::RootIdentity;
use super::queue::{PathClaims, PriorityGate, TransferState, Transfers};
use super::report::{Counters, Failure, RunOutcome, RunReport};
use super::state::{StateHandle, StateWriter};
use super::urls::{self, Api, LOOKUP_BATCH};
use super::worker::{self, FileSpec, Job};
use super::{
    MetadataOptions, MirrorConfig, MirrorError, RunMode, Stopper, decide, disk, reconcile, stream,
    supersede,
};

/// What [`run`] is given.
pub(super) struct RunInputs<'a> {
    pub config: Arc<MirrorConfig>,
    pub session: &'a AccountSession,
    pub catalog: &'a mut Catalog,
    pub refresh: Option<&'a RefreshOptions>,
    pub transfers: Transfers,
    pub counters: Arc<Counters>,
    pub gate: PriorityGate,
    pub stopper: Stopper,
    /// The download folder as the engine's first run found it: later runs (a watch, the
    /// mount's mirror) write into that folder only, never into another one at its path.
    pub first_root: &'a OnceLock<RootIdentity>,
}

/// State shared by the tasks of one run.
pub(super) struct RunContext {
    pub config: Arc<MirrorConfig>,
    pub root: PathBuf,
    /// `root` as found at the start: files go nowhere else.
    pub root_identity: RootIdentity,
    pub root_id: Option<RootId>,
    pub catalog_path: PathBuf,
    pub fetch: FetchConfig,
    pub metadata: MetadataOptions,
    pub api: Api,
    pub transfers: Transfers,
    pub claims: PathClaims,
    pub gate: PriorityGate,
    pub counters: Arc<Counters>,
    pub state: Option<StateHandle>,
    /// Start no new work.
    pub stop: CancellationToken,
    /// Drop the work in flight.
    pub abort: CancellationToken,
    fatal: Mutex<Option<MirrorError>>,
    /// Failures to try again in the second pass; `None` once it has started (a failure then
    /// is final).
    retries: Mutex<Option<Vec<Arc<FileSpec>>>>,
    /// What the deletions did.
    pub deleted: super::delete::Deleted,
    /// When the run started (after sign-in), for the first-download log line.
    started: Instant,
    first_started: std::sync::atomic::AtomicBool,
}

impl RunContext {
    /// A worker starts a transfer: the first one of the run is logged with its delay.
    pub fn transfer_starting(&self) {
        if !self.first_started.swap(true, Ordering::Relaxed) {
            tracing::info!(
                after_ms = self.started.elapsed().as_millis() as u64,
                "first download started"
            );
        }
    }

    /// A dry run's deletion, reported to the caller's sink (or logged).
    pub fn report_deletion(&self, line: &str) {
        match &self.config.on_deletion {
            Some(sink) => sink(line),
            None => tracing::info!("{line}"),
        }
    }

    /// Record a finished file.
    pub fn done(&self, job: Job, file: worker::OnDisk) {
        if let Some(state) = &self.state {
            state.send(worker::downloaded_update(&job.spec, file));
            if let Some(of) = file.sidecar_of {
                state.send(DownloadUpdate::Sidecar {
                    version: job.version,
                    of,
                });
            }
        }
        self.counters.downloaded.fetch_add(1, Ordering::Relaxed);
        let state = worker::done_state(&job.spec);
        job.handle.finish(state);
    }

    /// Record a failed file; `retryable` ones get a second attempt with a fresh URL.
    pub fn fail(&self, job: Job, error: String, retryable: bool) {
        let mut retries = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        match retries.as_mut().filter(|_| retryable) {
            Some(later) => {
                // Not a warning yet: most such files come in the second pass.
                tracing::info!(path = %job.planned, %error, "download failed; trying it again at the end of the run");
                later.push(job.spec.clone());
            }
            None => tracing::warn!(path = %job.planned, %error, "download failed"),
        }
        drop(retries);
        if let Some(state) = &self.state {
            state.send(DownloadUpdate::FailedAt {
                version: job.version,
                rel_path: job.planned.clone(),
                error: error.clone(),
            });
        }
        self.counters.fail(Failure {
            path: job.planned.clone(),
            asset_id: job.asset.asset.id.clone(),
            error: error.clone(),
        });
        self.claims.release(&job.rel_path, job.version);
        job.handle.finish(TransferState::Failed { error });
    }

    /// The run cannot go on: remember why (the first reason wins) and stop everything. The
    /// run returns the reason and its caller reports it (`sync` prints it, the mount's mirror
    /// logs it), so it is only a debug line here.
    pub fn fatal(&self, error: MirrorError) {
        tracing::debug!(%error, "stopping the run");
        let mut slot = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(error);
        self.stop.cancel();
        self.abort.cancel();
    }

    fn take_fatal(&self) -> Option<MirrorError> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Run once (see the module docs of `mirror`).
pub(super) async fn run(inputs: RunInputs<'_>) -> Result<RunReport, MirrorError> {
    let started = Instant::now();
    let RunInputs {
        config,
        session,
        catalog,
        refresh,
        transfers,
        counters,
        gate,
        stopper,
        first_root,
    } = inputs;
    let writes = config.mode != RunMode::DryRun;
    if let Some(first) = first_root.get() {
        // Before `prepare_root`, which would make the folder again where it has gone.
        first.check(&config.root)?;
    }
    disk::prepare_root(&config.root, writes)?;
    let root_identity = RootIdentity::of(&config.root);
    if root_identity.is_known() {
        first_root.get_or_init(|| root_identity);
    }
    // Held until the run ends: two runs writing one folder would share partial files.
    let _root_lock = if writes {
        lock_root(&config.root)?
    } else {
        None
    };
    let root_id = if writes {
        Some(catalog.register_root(&config.root)?)
    } else {
        catalog.root_id(&config.root)?
    };
    if let (Some(root), Some(mode)) = (root_id, super::report::recorded_mode(config.mode)) {
        catalog.begin_sync_run(root, mode)?; // `status` shows how it ends (`Mirror::run`)
    }
    let state_writer = match root_id {
        Some(root) if writes => Some(
            StateWriter::spawn(catalog.companion_writer()?, root).map_err(|source| {
                MirrorError::LocalIo {
                    context: "starting the catalog writer for",
                    path: catalog.path().to_path_buf(),
                    source,
                }
            })?,
        ),
        _ => None,
    };
    // Stops of this run follow the mirror's stopper; a fatal error stops only this run.
    let stop = stopper.stop.child_token();
    let abort = stopper.abort.child_token();
    let ctx = Arc::new(RunContext {
        root: config.root.clone(),
        root_identity,
        root_id,
        catalog_path: catalog.path().to_path_buf(),
        fetch: config.fetch.clone(),
        metadata: config.metadata,
        api: Api::new(session)?,
        transfers,
        claims: PathClaims::default(),
        gate,
        counters: counters.clone(),
        state: state_writer.as_ref().map(StateWriter::handle),
        stop,
        abort,
        fatal: Mutex::new(None),
        retries: Mutex::new(Some(Vec::new())),
        config: config.clone(),
        started,
        first_started: std::sync::atomic::AtomicBool::new(false),
        deleted: Default::default(),
    });

    let threads = config.threads.max(1);
    let (work_tx, work_rx) = mpsc::channel::<Job>(threads * 2);
    let mut workers = spawn_workers(&ctx, work_rx, threads);

    // The refresh, with downloads starting from its pages when the selection allows it.
    let mut refresh_doc = None;
    if let Some(options) = refresh {
        let streaming = config.mode == RunMode::Download && config.selection.is_per_asset();
        let mut sink: Box<dyn PageSink> = if streaming {
            Box::new(stream::StreamSink::new(
                ctx.clone(),
                Catalog::open_read_only(catalog.path())?,
                work_tx.clone(),
            ))
        } else {
            Box::new(NoSink)
        };
        let outcome = tokio::select! {
            r = refresh::refresh(session, catalog, options, sink.as_mut()) => Some(r),
            _ = ctx.stop.cancelled() => None,
        };
        drop(sink);
        // The listing's parsed pages are freed: hand them back before planning.
        crate::memory::release_free_memory();
        match outcome {
            Some(Ok(report)) => refresh_doc = serde_json::to_value(&report).ok(),
            Some(Err(e)) => {
                ctx.fatal(MirrorError::Refresh(e));
            }
            None => {}
        }
    }

    // The plan, queued through the URL resolver to the workers.
    let mut leftovers = decide::Leftovers::default();
    if !ctx.stop.is_cancelled() {
        let libraries: HashMap<LibraryId, Library> = catalog
            .libraries()?
            .into_iter()
            .map(|l| (l.id, l.library))
            .collect();
        let (plan_tx, plan_rx) = mpsc::channel::<Job>(LOOKUP_BATCH * 2);
        let resolver = tokio::spawn(urls::resolve(ctx.clone(), plan_rx, work_tx.clone()));
        let reader = Catalog::open_read_only(catalog.path())?;
        let planner_ctx = ctx.clone();
        let planned = tokio::task::spawn_blocking(move || {
            decide::plan(&planner_ctx, &reader, &libraries, plan_tx)
        })
        .await;
        match planned {
            Ok(Ok(l)) => leftovers = l,
            Ok(Err(e)) => ctx.fatal(e),
            Err(e) => ctx.fatal(MirrorError::State(format!("the planner failed: {e}"))),
        }
        let _ = resolver.await;
        crate::memory::release_free_memory();
    }
    drop(work_tx);
    while workers.join_next().await.is_some() {}

    // The second pass: failures worth retrying, with fresh URLs.
    let retries: Vec<Arc<FileSpec>> = ctx
        .retries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    if !retries.is_empty() && !ctx.stop.is_cancelled() {
        tracing::info!(
            files = retries.len(),
            "second pass over failed files with fresh URLs"
        );
        second_pass(&ctx, retries, threads).await;
    }

    if let Some(state) = &ctx.state {
        state.flush().await;
    }
    let decide::Leftovers {
        moves,
        links,
        stale,
        replaced,
    } = leftovers;
    if writes && !ctx.stop.is_cancelled() && !stale.is_empty() {
        let ctx2 = ctx.clone();
        let targets: std::collections::HashSet<String> =
            moves.iter().map(|m| m.target.to_lowercase()).collect();
        let result = tokio::task::spawn_blocking(move || {
            let reader = Catalog::open_read_only(&ctx2.catalog_path)?;
            supersede::remove(&ctx2, &reader, stale, &targets)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ctx.fatal(e),
            Err(e) => ctx.fatal(MirrorError::State(format!(
                "removing replaced files failed: {e}"
            ))),
        }
        if let Some(state) = &ctx.state {
            state.flush().await;
        }
    }
    if writes && !ctx.stop.is_cancelled() && !(moves.is_empty() && links.is_empty()) {
        // Each rename's target is noted before any is made: a run killed between a rename and
        // its record leaves the next run a note of where the file went.
        if let Some(state) = &ctx.state
            && !moves.is_empty()
        {
            for m in &moves {
                state.send(DownloadUpdate::Renaming {
                    version: m.version,
                    rel_path: m.target.clone(),
                });
            }
            state.flush().await;
        }
        let ctx2 = ctx.clone();
        let settling = ctx.clone();
        let settled = tokio::task::spawn_blocking(move || {
            if moves.is_empty() {
                return Ok(());
            }
            let reader = Catalog::open_read_only(&settling.catalog_path)?;
            reconcile::settle(&settling, &reader, moves)
        })
        .await;
        // Links are made to where the catalog records each file after the renames.
        if let Some(state) = &ctx.state {
            state.flush().await;
        }
        let linked = match settled {
            Ok(Ok(())) if !links.is_empty() => {
                tokio::task::spawn_blocking(move || {
                    let reader = Catalog::open_read_only(&ctx2.catalog_path)?;
                    reconcile::link_duplicates(&ctx2, &reader, links, &replaced)
                })
                .await
            }
            other => other,
        };
        match linked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ctx.fatal(e),
            Err(e) => ctx.fatal(MirrorError::State(format!("reconcile failed: {e}"))),
        }
    }
    let complete = !ctx.stop.is_cancelled() && counters.failed.load(Ordering::Relaxed) == 0;
    // Deletions trust the catalog only right after a successful refresh, in a run that was
    // not stopped; each photo is judged on its own files.
    if config.deletion.any() && !ctx.stop.is_cancelled() && refresh_doc.is_some() {
        let dry_run = !writes;
        if let Err(e) = deletions(&ctx, catalog, dry_run).await {
            ctx.fatal(e);
        }
    }
    // Partial files are left by interrupted transfers, whose files a later run downloads:
    // a run that downloaded nothing has none to clean up.
    let downloaded_some = counters.queued.load(Ordering::Relaxed) > 0;
    if writes && complete && downloaded_some && config.mode == RunMode::Download {
        let root = ctx.root.clone();
        let suffix = ctx.fetch.temp_suffix.clone();
        let _ =
            tokio::task::spawn_blocking(move || reconcile::remove_stale_temp_files(&root, &suffix))
                .await;
    }
    let state_error = state_writer.and_then(|w| w.close().err());

    let elapsed = started.elapsed();
    if let Some(e) = ctx.take_fatal() {
        return Err(e);
    }
    if let Some(e) = state_error {
        return Err(MirrorError::State(e));
    }
    let outcome = if ctx.stop.is_cancelled() {
        RunOutcome::Interrupted
    } else if counters.failed.load(Ordering::Relaxed) > 0 {
        RunOutcome::Partial
    } else {
        RunOutcome::Complete
    };
    let mut report = counters.report(elapsed, outcome);
    report.refresh = refresh_doc;
    report.deleted_local = ctx.deleted.local.load(Ordering::Relaxed);
    report.deleted_in_icloud = ctx.deleted.in_icloud.load(Ordering::Relaxed);
    Ok(report)
}

/// `--auto-delete`, then the moves to Recently Deleted in iCloud.
async fn deletions(
    ctx: &Arc<RunContext>,
    catalog: &Catalog,
    dry_run: bool,
) -> Result<(), MirrorError> {
    if let Some(state) = &ctx.state {
        state.flush().await;
    }
    let deletion = &ctx.config.deletion;
    let libraries: HashMap<LibraryId, Library> = catalog
        .libraries()?
        .into_iter()
        .map(|l| (l.id, l.library))
        .collect();
    let ctx2 = ctx.clone();
    let (auto, in_icloud) = (deletion.auto_delete, deletion.in_icloud());
    let candidates = tokio::task::spawn_blocking(move || {
        let reader = Catalog::open_read_only(&ctx2.catalog_path)?;
        if auto {
            super::delete::local(&ctx2, &reader, dry_run)?;
        }
        if in_icloud {
            super::delete::icloud_candidates(&ctx2, &reader, &libraries, dry_run)
        } else {
            Ok(Vec::new())
        }
    })
    .await
    .map_err(|e| MirrorError::State(format!("the deletion task failed: {e}")))??;
    super::delete::in_icloud(ctx, candidates, dry_run).await
}

fn spawn_workers(ctx: &Arc<RunContext>, rx: mpsc::Receiver<Job>, n: usize) -> JoinSet<()> {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(worker::work(ctx.clone(), rx.clone()));
    }
    set
}

async fn second_pass(ctx: &Arc<RunContext>, retries: Vec<Arc<FileSpec>>, threads: usize) {
    let (work_tx, work_rx) = mpsc::channel::<Job>(threads * 2);
    let mut workers = spawn_workers(ctx, work_rx, threads);
    let (plan_tx, plan_rx) = mpsc::channel::<Job>(LOOKUP_BATCH * 2);
    let resolver = tokio::spawn(urls::resolve(ctx.clone(), plan_rx, work_tx));
    for spec in retries {
        let Some(handle) = ctx.transfers.reclaim_failed(spec.version) else {
            continue;
        };
        if ctx.claims.claim(&spec.rel_path, spec.version).is_err() {
            handle.finish(TransferState::Failed {
                error: "its path was taken meanwhile".into(),
            });
            continue;
        }
        // The attempt is counted again by its outcome.
        ctx.counters.unfail(&spec.planned);
        let job = Job {
            handle,
            spec,
            url: None,
        };
        if plan_tx.send(job).await.is_err() {
            break;
        }
    }
    drop(plan_tx);
    let _ = resolver.await;
    while workers.join_next().await.is_some() {}
}

/// Takes the download folder's lock for this run (with several data folders, or a container
/// and its host, two runs can otherwise write the same folder and resume each other's partial
/// files). A filesystem that cannot lock a directory is written without the lock.
fn lock_root(root: &Path) -> Result<Option<std::fs::File>, MirrorError> {
    match crate::lock_file::try_lock_dir(root) {
        Ok(Some(lock)) => Ok(Some(lock)),
        Ok(None) => Err(MirrorError::RootInUse {
            path: root.to_path_buf(),
            holder: crate::lock_file::holder(root),
        }),
        Err(e) => {
            tracing::debug!(root = %root.display(), error = %e, "the download folder cannot be locked here");
            Ok(None)
        }
    }
}
