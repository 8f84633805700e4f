//! The sync engine: keep a folder equal to the layout of the selected catalog assets,
//! downloading what is missing, fast, resumably, and without ever losing or corrupting a file.
//! `icloudpd-rs sync` drives it in the foreground; the mount drives the same engine as its
//! background mirror.
//!
//! # A run ([`Mirror::run`])
//! 1. The download folder is checked (a directory we can write) and registered in the catalog.
//! 2. The catalog is refreshed (optional: the mount refreshes on its own). While pages arrive,
//!    files whose place is already certain start downloading with the page's fresh URLs
//!    (`stream`), so the first download starts within a second of sign-in.
//! 3. The plan (`plan`): the selection (`select`) laid out by `layout` directory by
//!    directory — exactly `layout::plan_tree`'s names, in bounded memory. Each planned file
//!    is skipped (recorded and present), adopted (a complete file with the right size found at
//!    its path), queued for download, or noted for a rename (`decide`).
//! 4. Queued files get fresh URLs in batched lookups (`urls`) and are fetched by a pool of
//!    workers (`worker`) through `fetch::download`. Results go to a single catalog-writer
//!    thread (`state`) that commits them in small batches. Failures worth retrying get a
//!    second pass with fresh URLs. A local I/O error fails only the files that need its
//!    folder, unless it dooms them all: a full disk, an unwritable download folder (`disk`).
//! 5. `supersede` removes the files other files of their photo replaced (an edit), once
//!    those are on disk and only if their bytes are still the ones written; then
//!    `reconcile` renames files whose recorded path differs from the plan (a collision only
//!    discovered late in a first listing, a changed layout), two-phase for swaps, never
//!    re-downloading; then, after a complete run, removes stale temp files.
//! 6. `delete`: `--auto-delete` and the moves to Recently Deleted in iCloud, only after a
//!    successful refresh, each photo judged on its own checked files.
//!
//! The run's outcome is a [`RunReport`] (counts, bytes, skip reasons, failures). The
//! operation helpers around runs are `signals` (graceful SIGINT/SIGTERM), `watch` (the pause
//! between cycles) and `notify` (the notification script).
//!
//! # Memory
//! Per asset, the plan keeps a few numbers (directory, album, key, date); per file, the run
//! keeps a bit (finished or failed, `version_set`) and, until the planner is done with its
//! directory, a path hash ([`PathClaims`]). One directory's assets are loaded at a time and
//! the channels between planner, URL resolver and workers are bounded. What the listing and
//! the transfers free is handed back to the kernel as the run goes (`memory`): a first sync
//! of 100,000 assets peaks within 10% of one of 10,000. A no-op sync of 100,000 assets reads
//! the catalog and `stat`s each file once (about 1.7 s).
//!
//! # For the mount
//! [`Mirror::transfers`] is the single-flight registry of the current run: a foreground reader
//! of a file the mirror is fetching can [`Transfers::watch`] it instead of starting a second
//! transfer. [`Mirror::gate`] is the priority gate: hold a [`ForegroundGuard`] while foreground
//! reads are in flight and background workers start no new file meanwhile.
//! [`Mirror::stopper`] stops a run gracefully (in-flight files finish or stay resumable).

mod decide;
pub mod delete;
mod disk;
mod engine;
pub mod notify;
mod plan;
mod queue;
mod reconcile;
pub mod report;
pub mod select;
pub mod signals;
mod state;
mod stream;
mod supersede;
mod urls;
mod version_set;
pub mod watch;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::auth::{AccountSession, AuthError};
use crate::catalog::{Catalog, CatalogError};
use crate::cloudkit::CloudKitError;
use crate::fetch::FetchConfig;
use crate::layout::LayoutPolicy;
use crate::refresh::{RefreshError, RefreshOptions};

pub use delete::{Confirm, DeletionOptions};
pub use plan::{PlanItem, TreeIndex};
pub use queue::{ForegroundGuard, PathClaims, PriorityGate, TransferState, Transfers};
pub use report::{Counters, Failure, RunOutcome, RunReport, SkipReason};
pub use select::{Selection, SelectionError, SelectionFlags};

/// Default number of parallel downloads: enough to fill a home link from Apple's CDN.
pub const DEFAULT_THREADS: usize = 8;

/// What a run does with the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Download what is missing (`sync`).
    Download,
    /// Change nothing: no file, no download state; report what would be downloaded.
    DryRun,
    /// Adopt complete files already on disk, download nothing (`import-existing`).
    ImportExisting,
    /// Download only the files whose last attempt failed (`retry-failed`).
    RetryFailed,
}

/// Metadata written after each download.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataOptions {
    /// `--set-exif-datetime`.
    pub set_exif_datetime: bool,
    /// `--xmp-sidecar`.
    pub xmp_sidecar: bool,
}

/// Receives the relative path of each file a dry run would download.
pub type PlannedSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything a run needs to know.
#[derive(Clone)]
pub struct MirrorConfig {
    /// The download folder (absolute).
    pub root: PathBuf,
    pub policy: LayoutPolicy,
    pub selection: Selection,
    /// Parallel downloads.
    pub threads: usize,
    pub fetch: FetchConfig,
    pub metadata: MetadataOptions,
    pub mode: RunMode,
    /// Dry runs report each file they would download here.
    pub on_planned: Option<PlannedSink>,
    /// `--auto-delete`, `--keep-icloud-recent-days`, `--delete-after-download`.
    pub deletion: delete::DeletionOptions,
    /// Dry runs report each deletion they would make here.
    pub on_deletion: Option<PlannedSink>,
}

impl std::fmt::Debug for MirrorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorConfig")
            .field("root", &self.root)
            .field("policy", &self.policy)
            .field("selection", &self.selection)
            .field("threads", &self.threads)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Why a run stopped before its end. Everything recorded before is consistent.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    CloudKit(#[from] CloudKitError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error("the disk holding {} is full (or your quota there is used up); free some space and run again (finished files are kept)", path.display())]
    DiskFull { path: PathBuf },
    #[error("{context} {}: {source}", path.display())]
    LocalIo {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("download folder {}: {reason}", path.display())]
    BadRoot { path: PathBuf, reason: String },
    #[error(
        "download folder {} is being written by another icloudpd-rs process{}; two runs in one folder would spoil each other's downloads: wait for it to finish, or stop it",
        path.display(),
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    RootInUse {
        path: PathBuf,
        holder: Option<String>,
    },
    #[error("recording results in the catalog failed: {0}")]
    State(String),
}

impl MirrorError {
    /// True when the user must sign in again (a watch then stops).
    pub fn is_authentication_problem(&self) -> bool {
        match self {
            MirrorError::Auth(e) => e.is_authentication_problem(),
            MirrorError::Refresh(e) => e.is_authentication_problem(),
            _ => false,
        }
    }

    /// True when the command exits with code 3 ([`AuthError::exits_as_sign_in_failure`]).
    pub fn exits_as_sign_in_failure(&self) -> bool {
        match self {
            MirrorError::Auth(e) => e.exits_as_sign_in_failure(),
            MirrorError::Refresh(e) => e.exits_as_sign_in_failure(),
            _ => false,
        }
    }
}

/// Stops runs gracefully: [`Stopper::stop`] lets in-flight files finish,
/// [`Stopper::abort`] drops them (their temp files stay for the next run to resume).
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    stop: CancellationToken,
    abort: CancellationToken,
}

impl Stopper {
    /// Start no new file; finish the ones in flight.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Drop the transfers in flight too.
    pub fn abort(&self) {
        self.stop.cancel();
        self.abort.cancel();
    }

    /// True once [`Stopper::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves when [`Stopper::stop`] is called.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }
}

/// The engine, for one download folder and one set of options. Runs one after another
/// (`--watch-with-interval`, the mount's background loop) share its gate and stopper.
pub struct Mirror {
    config: Arc<MirrorConfig>,
    gate: PriorityGate,
    stopper: Stopper,
    transfers: Mutex<Transfers>,
    counters: LiveCounters,
    /// The download folder as the first run found it (see [`disk::RootIdentity`]).
    first_root: std::sync::OnceLock<disk::RootIdentity>,
}

/// The counters of whichever run is current (runs replace them); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveCounters(Arc<Mutex<Arc<Counters>>>);

impl LiveCounters {
    /// The counters of the current (or last) run.
    pub fn current(&self) -> Arc<Counters> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, counters: Arc<Counters>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = counters;
    }
}

impl Mirror {
    /// An engine for `config`.
    pub fn new(config: MirrorConfig) -> Mirror {
        Mirror {
            config: Arc::new(config),
            gate: PriorityGate::default(),
            stopper: Stopper::default(),
            transfers: Mutex::new(Transfers::default()),
            counters: LiveCounters::default(),
            first_root: std::sync::OnceLock::new(),
        }
    }

    /// The options.
    pub fn config(&self) -> &MirrorConfig {
        &self.config
    }

    /// The priority gate background workers wait on.
    pub fn gate(&self) -> &PriorityGate {
        &self.gate
    }

    /// Stops the current and later runs.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// The single-flight registry of the current (or last) run.
    pub fn transfers(&self) -> Transfers {
        self.transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The counters of the current (or last) run.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.current()
    }

    /// A handle that always reads the current run's counters (for a progress display).
    pub fn live_counters(&self) -> LiveCounters {
        self.counters.clone()
    }

    /// One run: refresh the catalog first when `refresh` is given, then bring the folder in
    /// line with the plan. `catalog` must be the writer. The report says how it ended
    /// (complete, partial, interrupted); `Err` means the run could not go on at all.
    pub async fn run(
        &self,
        session: &AccountSession,
        catalog: &mut Catalog,
        refresh: Option<&RefreshOptions>,
    ) -> Result<RunReport, MirrorError> {
        let transfers = Transfers::default();
        let counters = Arc::new(Counters::default());
        *self.transfers.lock().unwrap_or_else(|e| e.into_inner()) = transfers.clone();
        self.counters.replace(counters.clone());
        let result = engine::run(engine::RunInputs {
            config: self.config.clone(),
            session,
            catalog: &mut *catalog,
            refresh,
            transfers,
            counters,
            gate: self.gate.clone(),
            stopper: self.stopper.clone(),
            first_root: &self.first_root,
        })
        .await;
        report::record_end(catalog, &self.config.root, self.config.mode, &result);
        result
    }
}
