//! What a run did: live counters (the progress bar reads them), and the final report with
//! the one-line summary (`50 downloaded, 350 skipped, 0 failed (400 total)`) and the
//! `--report-json` document; and how a run's end is recorded in the catalog, for `status`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::{MirrorError, RunMode};
use crate::catalog::{Catalog, SyncOutcome, SyncRunEnd};

/// Failures kept with their details in the report (the count is always exact).
pub const MAX_LISTED_FAILURES: usize = 1000;

/// Why a planned file needed no download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Recorded as downloaded and present.
    AlreadyDownloaded,
    /// A complete file was found at its path and adopted (after a `reset-state`: the file
    /// recorded before, its SHA-256 checked).
    Adopted,
    /// Not fetched because the run is a dry run.
    DryRun,
    /// A second path of a file already planned (an asset in several album folders): linked.
    Linked,
}

impl SkipReason {
    fn index(self) -> usize {
        self as usize
    }
}

/// Live counts of a run, updated by the planner and the workers.
#[derive(Debug, Default)]
pub struct Counters {
    /// Files of the plan seen so far (grows while planning).
    pub planned: AtomicU64,
    /// Files to be downloaded (queued so far).
    pub queued: AtomicU64,
    pub downloaded: AtomicU64,
    pub failed: AtomicU64,
    /// Bytes of files downloaded in this run.
    pub bytes: AtomicU64,
    /// Bytes of the files queued for download.
    pub queued_bytes: AtomicU64,
    /// Files renamed to their planned path.
    pub moved: AtomicU64,
    /// Files removed because another file of their photo replaced them (an edit).
    pub replaced: AtomicU64,
    skipped: [AtomicU64; 4],
    failures: Mutex<Vec<Failure>>,
    warnings: AtomicU64,
}

/// One failed file.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Path relative to the download folder.
    pub path: String,
    /// The asset (CPLMaster record name).
    pub asset_id: String,
    pub error: String,
}

impl Counters {
    /// Count a skipped file.
    pub fn skip(&self, reason: SkipReason) {
        self.skipped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Files skipped for any reason.
    pub fn skipped(&self) -> u64 {
        self.skipped.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Count a failure and keep its details (up to [`MAX_LISTED_FAILURES`]).
    pub fn fail(&self, failure: Failure) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut list = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < MAX_LISTED_FAILURES {
            list.push(failure);
        }
    }

    /// Forget a failure that a later attempt turned into a success (the second pass).
    pub fn unfail(&self, path: &str) {
        self.failed.fetch_sub(1, Ordering::Relaxed);
        let mut list = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list.iter().position(|f| f.path == path) {
            list.remove(i);
        }
    }

    /// Count a warning (metadata not written, a file left in the way, ...).
    pub fn warn(&self) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// The report as of now.
    pub fn report(&self, elapsed: Duration, outcome: RunOutcome) -> RunReport {
        let mut skip_reasons = BTreeMap::new();
        for reason in [
            SkipReason::AlreadyDownloaded,
            SkipReason::Adopted,
            SkipReason::DryRun,
            SkipReason::Linked,
        ] {
            let n = Self::get(&self.skipped[reason.index()]);
            if n > 0 {
                skip_reasons.insert(reason, n);
            }
        }
        let downloaded = Self::get(&self.downloaded);
        let failed = Self::get(&self.failed);
        let skipped = self.skipped();
        RunReport {
            outcome,
            downloaded,
            skipped,
            failed,
            total: Self::get(&self.planned).max(downloaded + skipped + failed),
            bytes_downloaded: Self::get(&self.bytes),
            moved: Self::get(&self.moved),
            replaced: Self::get(&self.replaced),
            warnings: Self::get(&self.warnings),
            skip_reasons,
            failures: self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            elapsed_secs: elapsed.as_secs_f64(),
            deleted_local: 0,
            deleted_in_icloud: 0,
            refresh: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum RunOutcome {
    /// Every planned file is in place.
    Complete,
    /// Some files failed; the others are in place.
    Partial,
    /// Stopped by a signal before the end; everything recorded is consistent.
    Interrupted,
    /// The run could not continue (disk, authentication, catalog): `error` says why.
    Failed { error: String },
}

/// The outcome of one run (`--report-json` writes it as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub outcome: RunOutcome,
    pub downloaded: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Files of the plan.
    pub total: u64,
    pub bytes_downloaded: u64,
    /// Files renamed to their planned path (collisions settled, layout changed).
    pub moved: u64,
    /// Files removed because another file of their photo replaced them (the original of a
    /// photo edited in iCloud under `--size adjusted`, an edited file's older copy).
    pub replaced: u64,
    pub warnings: u64,
    pub skip_reasons: BTreeMap<SkipReason, u64>,
    /// Failed files (at most [`MAX_LISTED_FAILURES`]).
    pub failures: Vec<Failure>,
    pub elapsed_secs: f64,
    /// Local files deleted (`--auto-delete`).
    pub deleted_local: u64,
    /// Photos moved to Recently Deleted in iCloud.
    pub deleted_in_icloud: u64,
    /// What the catalog refresh did, when the run refreshed.
    pub refresh: Option<serde_json::Value>,
}

impl RunReport {
    /// Files of the plan the run never came to: the summary's counts leave them out, so a
    /// run that stopped early must say so or "0 failed" reads as "all done".
    pub fn not_tried(&self) -> u64 {
        self.total
            .saturating_sub(self.downloaded + self.skipped + self.failed)
    }

    /// `50 downloaded, 350 skipped, 0 failed (400 total)`.
    pub fn summary_line(&self) -> String {
        format!(
            "{} downloaded, {} skipped, {} failed ({} total)",
            self.downloaded, self.skipped, self.failed, self.total
        )
    }
}

/// What a run of `mode` is called in the catalog's sync runs (`status --json` `last_syncs`);
/// `None` for a dry run, which changes nothing and is not recorded.
pub(super) fn recorded_mode(mode: RunMode) -> Option<&'static str> {
    match mode {
        RunMode::Download => Some("download"),
        RunMode::ImportExisting => Some("import_existing"),
        RunMode::RetryFailed => Some("retry_failed"),
        RunMode::DryRun => None,
    }
}

/// How a run's result reads in the catalog.
pub(super) fn sync_run_end(result: &Result<RunReport, MirrorError>) -> SyncRunEnd {
    match result {
        Ok(report) => SyncRunEnd {
            outcome: match &report.outcome {
                RunOutcome::Complete => SyncOutcome::Complete,
                RunOutcome::Partial => SyncOutcome::Partial,
                RunOutcome::Interrupted => SyncOutcome::Interrupted,
                RunOutcome::Failed { .. } => SyncOutcome::Failed,
            },
            downloaded: report.downloaded,
            skipped: report.skipped,
            failed: report.failed,
            error: match &report.outcome {
                RunOutcome::Failed { error } => Some(error.clone()),
                _ => None,
            },
        },
        // The counts of a run that could not go on are not in its error: `record_end` takes
        // the number it downloaded from the catalog; what it skipped is not known.
        Err(e) => SyncRunEnd {
            outcome: SyncOutcome::Failed,
            downloaded: 0,
            skipped: 0,
            failed: 0,
            error: Some(e.to_string()),
        },
    }
}

/// Records the end of a run begun in the catalog (the engine begins one once it holds its
/// download folder). Best effort: the run's own result stands whatever happens here, and a
/// row left without an end reads as an interrupted run.
pub(super) fn record_end(
    catalog: &mut Catalog,
    root: &std::path::Path,
    mode: RunMode,
    result: &Result<RunReport, MirrorError>,
) {
    if recorded_mode(mode).is_none() {
        return;
    }
    let recorded = catalog.root_id(root).and_then(|id| match id {
        Some(id) => {
            let mut end = sync_run_end(result);
            if result.is_err() {
                // A run that failed after downloading files (a full disk) did download them:
                // count them as for a run that never ended, from the files recorded since it
                // began (the run's catalog writer was closed, so they are all recorded).
                end.downloaded = downloaded_by_unended_run(catalog, id);
            }
            catalog.end_sync_run(id, &end)
        }
        None => Ok(false),
    });
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not record how the sync ended; `status` will call it interrupted");
    }
}

/// Files recorded as downloaded into `root` since its run that has not ended began (0 when
/// there is no such run or the catalog cannot say).
fn downloaded_by_unended_run(catalog: &Catalog, root: crate::catalog::RootId) -> u64 {
    match catalog.last_sync_runs(Some(root)) {
        Ok(runs) => runs
            .into_iter()
            .find(|run| run.ended.is_none())
            .map_or(0, |run| run.downloaded),
        Err(e) => {
            tracing::debug!(error = %e, "cannot count the failed run's downloads");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_has_the_documented_shape() {
        let c = Counters::default();
        c.planned.store(400, Ordering::Relaxed);
        c.downloaded.store(50, Ordering::Relaxed);
        for _ in 0..349 {
            c.skip(SkipReason::AlreadyDownloaded);
        }
        c.skip(SkipReason::Adopted);
        let r = c.report(Duration::from_secs(1), RunOutcome::Complete);
        assert_eq!(
            r.summary_line(),
            "50 downloaded, 350 skipped, 0 failed (400 total)"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "complete");
        assert_eq!(json["skip_reasons"]["already_downloaded"], 349);
        assert_eq!(json["skip_reasons"]["adopted"], 1);
    }

    #[test]
    fn failures_are_listed_and_a_later_success_removes_them() {
        let c = Counters::default();
        for i in 0..3 {
            c.fail(Failure {
                path: format!("f{i}"),
                asset_id: "A".into(),
                error: "HTTP 503".into(),
            });
        }
        c.unfail("f1");
        let r = c.report(Duration::ZERO, RunOutcome::Partial);
        assert_eq!(r.failed, 2);
        assert_eq!(
            r.failures
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>(),
            ["f0", "f2"]
        );
        assert_eq!(r.total, 2);
    }

    #[test]
    fn a_run_end_reads_as_its_outcome_with_its_counts() {
        let c = Counters::default();
        c.downloaded.store(7, Ordering::Relaxed);
        c.skip(SkipReason::AlreadyDownloaded);
        let end = sync_run_end(&Ok(c.report(Duration::ZERO, RunOutcome::Interrupted)));
        assert_eq!(
            end,
            SyncRunEnd {
                outcome: SyncOutcome::Interrupted,
                downloaded: 7,
                skipped: 1,
                failed: 0,
                error: None
            }
        );
        let end = sync_run_end(&Err(MirrorError::State("disk gone".into())));
        assert_eq!(end.outcome, SyncOutcome::Failed);
        assert!(end.error.unwrap().contains("disk gone"));
        assert_eq!(recorded_mode(RunMode::DryRun), None);
        assert_eq!(recorded_mode(RunMode::Download), Some("download"));
    }
}
