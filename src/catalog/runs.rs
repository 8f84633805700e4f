//! Refresh runs: their lifecycle (running -> completed / failed / interrupted), counts, the
//! records they skipped, and the end of a full enumeration, which alone may mark assets gone.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::error::{CatalogError, Result, SqlContext};
use super::libraries::{set_zone_token, touch_refresh};
use super::{Catalog, LibraryId, RunId, now_ms, serialize_ms, serialize_ms_always, to_i64, to_u64};
use crate::model::Skipped;

/// Whether a run walks whole indexes or follows the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Every asset of the library is listed; unseen ones are gone when it completes.
    Full,
    /// Only changes since the stored zone token are applied.
    Incremental,
}

impl RunKind {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(RunKind::Full),
            "incremental" => Some(RunKind::Incremental),
            _ => None,
        }
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    /// The process died, or the handle was dropped, before the run finished.
    Interrupted,
    Failed,
}

impl RunStatus {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "completed" => Some(RunStatus::Completed),
            "interrupted" => Some(RunStatus::Interrupted),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// What a run did, accumulated by the catalog as pages are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    /// Assets handed to the catalog (a page's assets, a change batch's assets).
    pub seen: u64,
    pub added: u64,
    pub changed: u64,
    /// Assets marked gone.
    pub removed: u64,
    /// Records the parser could not turn into assets (see [`Catalog::skipped_records`]).
    pub skipped: u64,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub library: LibraryId,
    pub kind: RunKind,
    pub status: RunStatus,
    #[serde(rename = "started", serialize_with = "serialize_ms_always")]
    pub started_ms: i64,
    #[serde(rename = "finished", serialize_with = "serialize_ms")]
    pub finished_ms: Option<i64>,
    /// The asset count the server announced when the run began, if known.
    pub expected: Option<u64>,
    #[serde(flatten)]
    pub counts: RunCounts,
    pub error: Option<String>,
}

const RUN_COLUMNS: &str = "run_id, library_id, kind, status, started_ms, finished_ms, expected, \
                           seen, added, changed, removed, skipped, error";

pub(super) fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let kind: String = row.get(2)?;
    let status: String = row.get(3)?;
    Ok(RunRecord {
        id: row.get(0)?,
        library: row.get(1)?,
        kind: RunKind::parse(&kind).ok_or_else(|| super::bad_value(2, "run kind", &kind))?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| super::bad_value(3, "run status", &status))?,
        started_ms: row.get(4)?,
        finished_ms: row.get(5)?,
        expected: row.get::<_, Option<i64>>(6)?.map(to_u64),
        counts: RunCounts {
            seen: to_u64(row.get(7)?),
            added: to_u64(row.get(8)?),
            changed: to_u64(row.get(9)?),
            removed: to_u64(row.get(10)?),
            skipped: to_u64(row.get(11)?),
        },
        error: row.get(12)?,
    })
}

/// A running run and the library it writes into, checked at the start of every write of a run.
pub(super) struct ActiveRun {
    pub run: RunId,
    pub library: LibraryId,
    pub zone: String,
    pub kind: RunKind,
}

impl Catalog {
    /// Starts a refresh run of a library. `expected` is the server's asset count, if known.
    pub fn begin_run(
        &mut self,
        library: LibraryId,
        kind: RunKind,
        expected: Option<u64>,
    ) -> Result<RunId> {
        let expected = expected.map(|e| to_i64("expected count", e)).transpose()?;
        if self.bulk.is_some() {
            // A previous load on this handle never ended its run.
            super::bulk::ensure_indexes(&self.conn)?;
            self.end_bulk_load()?;
        }
        let tx = self.write_tx("starting a run")?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT library_id FROM libraries WHERE library_id = ?1",
                [library],
                |r| r.get(0),
            )
            .optional()
            .ctx("starting a run")?;
        if exists.is_none() {
            return Err(CatalogError::UnknownLibrary(library));
        }
        let running: Option<RunId> = tx
            .query_row(
                "SELECT run_id FROM runs WHERE library_id = ?1 AND status = 'running'",
                [library],
                |r| r.get(0),
            )
            .optional()
            .ctx("starting a run")?;
        if let Some(run) = running {
            return Err(CatalogError::RunInProgress { library, run });
        }
        let run = tx
            .query_row(
                "INSERT INTO runs (library_id, kind, status, started_ms, expected)
                 VALUES (?1, ?2, 'running', ?3, ?4) RETURNING run_id",
                params![library, kind.as_str(), now_ms(), expected],
                |r| r.get(0),
            )
            .ctx("starting a run")?;
        let bulk = kind == RunKind::Full && super::bulk::library_is_empty(&tx, library)?;
        if bulk {
            super::bulk::drop_indexes(&tx)?;
        }
        tx.commit().ctx("starting a run")?;
        if bulk {
            self.start_bulk_load(run)?;
        }
        Ok(run)
    }

    /// Ends a run as completed (incremental runs only; a full run completes through
    /// [`Catalog::finish_full_enumeration`]), failed or interrupted, with an optional error text.
    pub fn finish_run(
        &mut self,
        run: RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<RunRecord> {
        let bulk = self.bulk_inserts(run).is_some();
        let tx = self.write_tx("finishing a run")?;
        let active = active_run(&tx, run)?;
        match status {
            RunStatus::Running => {
                return Err(CatalogError::RunNotRunning {
                    run,
                    status: "asked to finish as running".into(),
                });
            }
            RunStatus::Completed if active.kind == RunKind::Full => {
                return Err(CatalogError::WrongRunKind {
                    run,
                    operation: "finish_run(Completed)",
                    expected: "incremental",
                    actual: "full",
                });
            }
            _ => {}
        }
        let now = now_ms();
        if bulk {
            super::bulk::create_indexes(&tx, Some(run))?;
        }
        close_run(&tx, run, status, error, now)?;
        if status == RunStatus::Completed {
            touch_refresh(&tx, active.library, false, now)?;
        }
        let record = read_run(&tx, run)?;
        tx.commit().ctx("finishing a run")?;
        if bulk {
            self.end_bulk_load()?;
        }
        Ok(record)
    }

    /// Completes a full run: marks gone every asset of the library the run did not see, stores
    /// the zone token the enumeration returned (if any), and records the refresh, all in one
    /// transaction. The run must have seen every asset (All Photos, Hidden and Recently Deleted).
    pub fn finish_full_enumeration(
        &mut self,
        run: RunId,
        zone_token: Option<&str>,
    ) -> Result<RunRecord> {
        let bulk = self.bulk_inserts(run).is_some();
        let tx = self.write_tx("completing a full run")?;
        let active = active_run(&tx, run)?;
        if active.kind != RunKind::Full {
            return Err(CatalogError::WrongRunKind {
                run,
                operation: "finish_full_enumeration",
                expected: "full",
                actual: active.kind.as_str(),
            });
        }
        let now = now_ms();
        // An asset whose record came but could not be used (its partner missing from the
        // listing, a rendition unusable) is still in iCloud: not gone.
        tx.prepare_cached(
            "UPDATE assets SET last_seen_run = ?2
             WHERE library_id = ?1 AND gone_ms IS NULL
               AND record_id IN (SELECT record_name FROM skipped_records WHERE run_id = ?2)",
        )
        .and_then(|mut s| s.execute(params![active.library, run]))
        .ctx("keeping the assets of skipped records")?;
        let removed = tx
            .prepare_cached(
                "UPDATE assets SET gone_ms = ?3
                 WHERE library_id = ?1 AND gone_ms IS NULL
                   AND (last_seen_run IS NULL OR last_seen_run <> ?2)",
            )
            .and_then(|mut s| s.execute(params![active.library, run, now]))
            .ctx("marking unseen assets gone")?;
        add_counts(
            &tx,
            run,
            RunCounts {
                removed: removed as u64,
                ..RunCounts::default()
            },
        )?;
        if let Some(token) = zone_token {
            set_zone_token(&tx, active.library, Some(token))?;
        }
        if bulk {
            super::bulk::create_indexes(&tx, Some(run))?;
        }
        close_run(&tx, run, RunStatus::Completed, None, now)?;
        touch_refresh(&tx, active.library, true, now)?;
        let record = read_run(&tx, run)?;
        tx.commit().ctx("completing a full run")?;
        if bulk {
            self.end_bulk_load()?;
        }
        if removed > 0 {
            tracing::info!(run = %run, removed, "assets no longer in iCloud marked gone");
        }
        Ok(record)
    }

    /// One run.
    pub fn run(&self, run: RunId) -> Result<RunRecord> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([run], run_row).optional())
            .ctx("reading a run")?
            .ok_or(CatalogError::UnknownRun(run))
    }

    /// The most recent runs, newest first, of one library or of all.
    pub fn recent_runs(&self, library: Option<LibraryId>, limit: usize) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR library_id = ?1
             ORDER BY run_id DESC LIMIT ?2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&sql).ctx("listing runs")?;
        let rows = stmt
            .query_map(params![library, limit], run_row)
            .ctx("listing runs")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing runs")?;
        Ok(rows)
    }

    /// Interrupted runs not yet followed by a completed run of the same library: work that a
    /// killed process left unfinished. A reader also reports a `running` run whose writer is
    /// no longer alive.
    pub fn interrupted_runs(&self) -> Result<Vec<RunRecord>> {
        let writer_alive = self.is_writer()
            || crate::lock_file::holder(&super::lock::lock_path(&self.path)).is_some();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r
             WHERE (status = 'interrupted' OR (status = 'running' AND NOT ?1))
               AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.library_id = r.library_id
                               AND c.status = 'completed' AND c.run_id > r.run_id)
             ORDER BY run_id"
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .ctx("listing interrupted runs")?;
        let rows = stmt
            .query_map([writer_alive], run_row)
            .ctx("listing interrupted runs")?
            .map(|r| {
                r.map(|mut run| {
                    if run.status == RunStatus::Running {
                        run.status = RunStatus::Interrupted;
                    }
                    run
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing interrupted runs")?;
        Ok(rows)
    }

    /// The records iCloud sent that could not be used, as the catalog stands: those of each
    /// library's last completed full listing and of the runs since (the same record reported
    /// twice is listed once).
    pub fn unusable_records(&self) -> Result<Vec<Skipped>> {
        self.skipped_rows(
            "SELECT record_name, reason FROM skipped_records s JOIN runs r USING (run_id)
             WHERE r.run_id >= coalesce((SELECT max(f.run_id) FROM runs f
                                         WHERE f.library_id = r.library_id
                                           AND f.kind = 'full' AND f.status = 'completed'), 0)
             GROUP BY record_name, reason ORDER BY min(s.rowid)",
            [],
            "listing unusable records",
        )
    }

    /// The records a run skipped, in the order they were reported.
    pub fn skipped_records(&self, run: RunId) -> Result<Vec<Skipped>> {
        self.skipped_rows(
            "SELECT record_name, reason FROM skipped_records WHERE run_id = ?1 ORDER BY rowid",
            [run],
            "listing skipped records",
        )
    }

    /// `(record_name, reason)` rows of `sql` as skipped records.
    fn skipped_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        context: &'static str,
    ) -> Result<Vec<Skipped>> {
        let mut stmt = self.conn.prepare_cached(sql).ctx(context)?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(Skipped {
                    record_name: r.get(0)?,
                    reason: r.get(1)?,
                })
            })
            .ctx(context)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(context)?;
        Ok(rows)
    }
}

/// The run, checked to be running, with its library's zone.
pub(super) fn active_run(tx: &Connection, run: RunId) -> Result<ActiveRun> {
    let row: Option<(LibraryId, String, String, String)> = tx
        .prepare_cached(
            "SELECT r.library_id, r.kind, r.status, l.zone
             FROM runs r JOIN libraries l USING (library_id) WHERE r.run_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .ctx("reading a run")?;
    let (library, kind, status, zone) = row.ok_or(CatalogError::UnknownRun(run))?;
    if status != RunStatus::Running.as_str() {
        return Err(CatalogError::RunNotRunning { run, status });
    }
    let kind = RunKind::parse(&kind).ok_or(CatalogError::BadStoredValue {
        what: "run kind",
        value: kind,
    })?;
    Ok(ActiveRun {
        run,
        library,
        zone,
        kind,
    })
}

/// Adds to a run's counters.
pub(super) fn add_counts(tx: &Connection, run: RunId, c: RunCounts) -> Result<()> {
    tx.prepare_cached(
        "UPDATE runs SET seen = seen + ?2, added = added + ?3, changed = changed + ?4,
                         removed = removed + ?5, skipped = skipped + ?6
         WHERE run_id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            run,
            to_i64("count", c.seen).unwrap_or(i64::MAX),
            to_i64("count", c.added).unwrap_or(i64::MAX),
            to_i64("count", c.changed).unwrap_or(i64::MAX),
            to_i64("count", c.removed).unwrap_or(i64::MAX),
            to_i64("count", c.skipped).unwrap_or(i64::MAX),
        ])
    })
    .ctx("updating run counts")?;
    Ok(())
}

/// Stores the records a page could not use.
pub(super) fn record_skipped(tx: &Connection, run: RunId, skipped: &[Skipped]) -> Result<()> {
    if skipped.is_empty() {
        return Ok(());
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO skipped_records (run_id, record_name, reason) VALUES (?1, ?2, ?3)",
        )
        .ctx("recording skipped records")?;
    for s in skipped {
        tracing::debug!(run = %run, record = %s.record_name, reason = %s.reason, "record skipped");
        stmt.execute(params![run, s.record_name, s.reason])
            .ctx("recording skipped records")?;
    }
    Ok(())
}

fn close_run(
    tx: &Connection,
    run: RunId,
    status: RunStatus,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE runs SET status = ?2, finished_ms = ?3, error = ?4 WHERE run_id = ?1",
    )
    .and_then(|mut s| s.execute(params![run, status.as_str(), now, error]))
    .ctx("finishing a run")?;
    Ok(())
}

fn read_run(tx: &Connection, run: RunId) -> Result<RunRecord> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1");
    tx.prepare_cached(&sql)
        .and_then(|mut s| s.query_row([run], run_row))
        .ctx("reading a run")
}
