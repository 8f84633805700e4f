//! Sync runs: one row per sync or mirror run into a download root, with how it ended.
//!
//! Download state has rows only for files a run attempted, and the plan is computed as the
//! run goes, so the catalog cannot count what a stopped run left to do. What it can say is
//! how the last run into each folder ended: `status` shows an interrupted one ("run sync
//! again to finish") instead of a reassuring "pending: 0".
//!
//! A row is written `running` when the run has its folder ([`Catalog::begin_sync_run`]) and
//! gets its outcome when the run ends ([`Catalog::end_sync_run`]). A process killed before
//! that (`kill -9`, a power cut) leaves the row `running`: the next writer to open the catalog
//! marks it `interrupted` (with no end time, which is unknown), and until then a reader that
//! finds no writer holding the catalog reports it as interrupted too.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::error::{Result, SqlContext};
use super::{Catalog, RootId, now_ms, serialize_ms, serialize_ms_always, to_i64, to_u64};

/// Sync runs kept per download folder.
const KEPT_RUNS: i64 = 100;

/// How a sync run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Still going (its process holds the catalog).
    Running,
    /// Every planned file is in place.
    Complete,
    /// Some files failed; the others are in place.
    Partial,
    /// Stopped by a signal, or its process died, before the end.
    Interrupted,
    /// The run could not go on (disk, authentication, catalog).
    Failed,
}

impl SyncOutcome {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Running => "running",
            SyncOutcome::Complete => "complete",
            SyncOutcome::Partial => "partial",
            SyncOutcome::Interrupted => "interrupted",
            SyncOutcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(SyncOutcome::Running),
            "complete" => Some(SyncOutcome::Complete),
            "partial" => Some(SyncOutcome::Partial),
            "interrupted" => Some(SyncOutcome::Interrupted),
            "failed" => Some(SyncOutcome::Failed),
            _ => None,
        }
    }
}

/// How a run ended, as its caller reports it to [`Catalog::end_sync_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRunEnd {
    pub outcome: SyncOutcome,
    pub downloaded: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Why a failed run stopped.
    pub error: Option<String>,
}

/// One sync run, as `status --json` lists it under `last_syncs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRunRecord {
    /// The download folder.
    pub root: PathBuf,
    /// `download` (`sync`, a mount's mirror), `import_existing` or `retry_failed`.
    pub mode: String,
    #[serde(serialize_with = "serialize_ms_always")]
    pub started: i64,
    /// When it ended; `null` while running, or when its process died.
    #[serde(serialize_with = "serialize_ms")]
    pub ended: Option<i64>,
    pub outcome: SyncOutcome,
    /// Files downloaded. For a run that has not ended (running, or killed), the files
    /// recorded as downloaded into its folder since it started.
    pub downloaded: u64,
    pub skipped: u64,
    pub failed: u64,
    pub error: Option<String>,
}

impl Catalog {
    /// Records that a run into `root` starts (`mode` says what kind, see
    /// [`SyncRunRecord::mode`]). A row of that root still `running` belonged to a run that
    /// never ended: the caller holds the folder's lock, so that run is gone, and is marked
    /// interrupted.
    pub fn begin_sync_run(&mut self, root: RootId, mode: &str) -> Result<()> {
        let tx = self.write_tx("recording the start of a sync")?;
        tx.prepare_cached(
            "UPDATE sync_runs SET outcome = 'interrupted'
             WHERE root_id = ?1 AND outcome = 'running'",
        )
        .and_then(|mut s| s.execute([root]))
        .ctx("recording the start of a sync")?;
        tx.prepare_cached(
            "INSERT INTO sync_runs (root_id, mode, started_ms, outcome)
             VALUES (?1, ?2, ?3, 'running')",
        )
        .and_then(|mut s| s.execute(params![root, mode, now_ms()]))
        .ctx("recording the start of a sync")?;
        // A watch records a run every few minutes: only the latest ones are kept.
        tx.prepare_cached(
            "DELETE FROM sync_runs WHERE root_id = ?1 AND sync_run_id <= (
                 SELECT sync_run_id FROM sync_runs WHERE root_id = ?1
                 ORDER BY sync_run_id DESC LIMIT 1 OFFSET ?2)",
        )
        .and_then(|mut s| s.execute(params![root, KEPT_RUNS]))
        .ctx("recording the start of a sync")?;
        tx.commit().ctx("recording the start of a sync")
    }

    /// Records how the run into `root` begun by [`Catalog::begin_sync_run`] ended. False when
    /// there is no such run (it never began, e.g. its folder was refused).
    pub fn end_sync_run(&mut self, root: RootId, end: &SyncRunEnd) -> Result<bool> {
        let (downloaded, skipped, failed) = (
            to_i64("files downloaded", end.downloaded)?,
            to_i64("files skipped", end.skipped)?,
            to_i64("files failed", end.failed)?,
        );
        let tx = self.write_tx("recording the end of a sync")?;
        let updated = tx
            .prepare_cached(
                "UPDATE sync_runs SET ended_ms = ?2, outcome = ?3, downloaded = ?4, skipped = ?5,
                     failed = ?6, error = ?7
                 WHERE sync_run_id = (SELECT max(sync_run_id) FROM sync_runs
                                      WHERE root_id = ?1 AND outcome = 'running')",
            )
            .and_then(|mut s| {
                s.execute(params![
                    root,
                    now_ms(),
                    end.outcome.as_str(),
                    downloaded,
                    skipped,
                    failed,
                    end.error
                ])
            })
            .ctx("recording the end of a sync")?;
        tx.commit().ctx("recording the end of a sync")?;
        Ok(updated > 0)
    }

    /// The last run into each download root (into `root` only, when given), by folder path.
    /// A run still `running` is reported so only while a writer holds the catalog: without
    /// one, its process is gone and the run was interrupted.
    pub fn last_sync_runs(&self, root: Option<RootId>) -> Result<Vec<SyncRunRecord>> {
        let writer_alive = self.is_writer()
            || crate::lock_file::holder(&super::lock::lock_path(&self.path)).is_some();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.path, s.root_id, s.mode, s.started_ms, s.ended_ms, s.outcome,
                        s.downloaded, s.skipped, s.failed, s.error
                 FROM sync_runs s JOIN download_roots r USING (root_id)
                 WHERE s.sync_run_id IN (SELECT max(sync_run_id) FROM sync_runs GROUP BY root_id)
                   AND (?1 IS NULL OR s.root_id = ?1)
                 ORDER BY r.path",
            )
            .ctx("reading the last syncs")?;
        let rows = stmt
            .query_map([root], |r| {
                let path: Vec<u8> = r.get(0)?;
                let outcome: String = r.get(5)?;
                let outcome = SyncOutcome::parse(&outcome)
                    .ok_or_else(|| super::bad_value(5, "sync outcome", &outcome))?;
                Ok((
                    r.get::<_, RootId>(1)?,
                    SyncRunRecord {
                        root: PathBuf::from(OsStr::from_bytes(&path)),
                        mode: r.get(2)?,
                        started: r.get(3)?,
                        ended: r.get(4)?,
                        outcome,
                        downloaded: to_u64(r.get(6)?),
                        skipped: to_u64(r.get(7)?),
                        failed: to_u64(r.get(8)?),
                        error: r.get(9)?,
                    },
                ))
            })
            .ctx("reading the last syncs")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("reading the last syncs")?;
        drop(stmt);
        let mut out = Vec::with_capacity(rows.len());
        for (root_id, mut record) in rows {
            if record.outcome == SyncOutcome::Running && !writer_alive {
                record.outcome = SyncOutcome::Interrupted;
            }
            if record.ended.is_none() {
                record.downloaded = downloaded_since(&self.conn, root_id, record.started)?;
            }
            out.push(record);
        }
        Ok(out)
    }
}

/// Files recorded as downloaded into `root` at or after `since_ms`: how far a run that has
/// not (or never) reported its counts got.
fn downloaded_since(conn: &Connection, root: RootId, since_ms: i64) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM downloads
             WHERE root_id = ?1 AND state = 'downloaded' AND downloaded_ms >= ?2",
        )
        .and_then(|mut s| s.query_row(params![root, since_ms], |r| r.get(0)))
        .ctx("counting a sync's downloads")?;
    Ok(to_u64(n))
}

/// Marks every sync run left `running` as interrupted: the caller holds the writer lock, so
/// whoever started them is gone. Their end time stays unknown.
pub(super) fn mark_interrupted_sync_runs(conn: &Connection) -> Result<usize> {
    conn.execute(
        "UPDATE sync_runs SET outcome = 'interrupted' WHERE outcome = 'running'",
        [],
    )
    .ctx("marking interrupted syncs")
}
