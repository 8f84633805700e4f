//! The bulk load: a full run into a library with no assets yet (a first refresh, or `--full`
//! into a fresh catalog) stores its pages without the work an upsert needs.
//!
//! Measured on a 100,000-asset library, most of a first refresh's writer time went to random
//! updates of the asset indexes: each page touches index pages all over the file, more than the
//! page cache holds, so inserts kept reading and rewriting index pages. During a bulk load the
//! two indexes nobody reads while a library is first listed (`assets_in_order`,
//! `assets_by_asset_record`) are dropped and built once at the end (a sort, far cheaper than
//! 100,000 random insertions). The record-id index (`assets_by_record`, which makes a record
//! unique) stays while the caller looks assets up by id as pages arrive (a sync streaming the
//! listing); a caller that reads nothing back until the run ends
//! ([`Catalog::upsert_page_batched`]) drops it too ([`Inserts::Unchecked`]), and a record
//! listed twice is then merged when the index is rebuilt: the later copy wins, as it would with
//! upserts ([`create_unique_index`]). On a 300,000-asset library that took 13% off a first
//! refresh's wall time and 20% off its CPU time.
//!
//! New assets are plain INSERTs through statements prepared once per page, an asset's versions
//! in one multi-row INSERT, without foreign-key checks (the keys were just generated); with the
//! record-id index in place, a record already stored by the same run falls back to the upsert.
//! Durability is unchanged (`synchronous=NORMAL`: in WAL mode it costs an fsync per checkpoint
//! only, and `OFF` would risk the whole file, other libraries and download state included, on
//! an OS crash).
//!
//! A writer killed mid-load leaves the indexes missing: [`ensure_indexes`] rebuilds them when
//! the next writer opens the catalog, before anything else runs.

use rusqlite::{CachedStatement, Connection, ToSql, params, params_from_iter};

use super::assets::{
    AssetColumns, INSERT_ASSET_IF_NEW, INSERT_NEW_ASSET, Upserted, content_hash, unique_versions,
    upsert_asset,
};
use super::error::{Result, SqlContext};
use super::runs::ActiveRun;
use super::{AssetKey, Catalog, LibraryId, RunId, to_i64};
use crate::model::{Asset, Version};

/// The secondary indexes of `assets` that a bulk load drops and rebuilds: (name, definition).
/// They must match the schema's definitions (checked by a test).
pub(super) const DEFERRED_INDEXES: [(&str, &str); 2] = [
    (
        "assets_in_order",
        "CREATE INDEX IF NOT EXISTS assets_in_order ON assets (library_id, added_date_ms, record_id)",
    ),
    (
        "assets_by_asset_record",
        "CREATE INDEX IF NOT EXISTS assets_by_asset_record ON assets (library_id, asset_record)",
    ),
];

/// The index that makes a record unique in its library: (name, definition).
const UNIQUE_INDEX: (&str, &str) = (
    "assets_by_record",
    "CREATE UNIQUE INDEX IF NOT EXISTS assets_by_record ON assets (library_id, record_id)",
);

/// WAL pages between automatic checkpoints during a load, and SQLite's default otherwise.
const LOAD_CHECKPOINT_PAGES: i64 = 10_000;
const DEFAULT_CHECKPOINT_PAGES: i64 = 1000;
/// The WAL file is cut back to this size (bytes) after a checkpoint emptied it.
const LOG_SIZE_LIMIT: i64 = 8 << 20;

/// A bulk load in progress on this handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BulkLoad {
    pub run: RunId,
    pub inserts: Inserts,
}

/// How a bulk load inserts its assets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inserts {
    /// The record-id index is in place: a record stored twice is caught at once and upserted.
    Checked,
    /// The record-id index is dropped: plain INSERTs; a record stored twice is merged when the
    /// index is rebuilt.
    Unchecked,
}

/// Creates any index a bulk load left out and never rebuilt (its writer died). Cheap when they
/// all exist.
pub(super) fn ensure_indexes(conn: &Connection) -> Result<()> {
    let missing = missing_indexes(conn)?;
    if missing == 0 {
        return Ok(());
    }
    tracing::info!(
        missing,
        "rebuilding catalog indexes left out by an interrupted first listing"
    );
    create_indexes(conn, None)
}

fn missing_indexes(conn: &Connection) -> Result<usize> {
    let mut missing = 0;
    for (name, _) in DEFERRED_INDEXES.iter().chain([&UNIQUE_INDEX]) {
        let present: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
                [name],
                |r| r.get(0),
            )
            .ctx("checking the indexes")?;
        if !present {
            missing += 1;
        }
    }
    Ok(missing)
}

/// True when the library has no asset rows at all (not even gone ones).
pub(super) fn library_is_empty(tx: &Connection, library: LibraryId) -> Result<bool> {
    let any: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM assets WHERE library_id = ?1)",
            params![library],
            |r| r.get(0),
        )
        .ctx("checking whether the library is empty")?;
    Ok(!any)
}

/// Drops the deferred indexes (in the caller's transaction, which starts the run).
pub(super) fn drop_indexes(tx: &Connection) -> Result<()> {
    for (name, _) in DEFERRED_INDEXES {
        tx.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))
            .ctx("dropping an index for the load")?;
    }
    Ok(())
}

/// Drops the record-id index for an [`Inserts::Unchecked`] load (in the caller's transaction).
pub(super) fn drop_unique_index(tx: &Connection) -> Result<()> {
    tx.execute_batch(&format!("DROP INDEX IF EXISTS {}", UNIQUE_INDEX.0))
        .ctx("dropping an index for the load")
}

/// Rebuilds every index a load dropped, in the caller's transaction (the one that ends `run`,
/// or none at open).
pub(super) fn create_indexes(tx: &Connection, run: Option<RunId>) -> Result<()> {
    create_unique_index(tx, run)?;
    for (_, create) in DEFERRED_INDEXES {
        tx.execute_batch(create)
            .ctx("building an index after the load")?;
    }
    Ok(())
}

/// Creates the record-id index. When a record was stored twice (listed twice while an unchecked
/// load ran) its copies are merged first: the last one stored is kept, as an upsert would have
/// left it, and `run`'s counts are corrected (one asset added, not two).
fn create_unique_index(tx: &Connection, run: Option<RunId>) -> Result<()> {
    match tx.execute_batch(UNIQUE_INDEX.1) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation => {}
        other => return other.ctx("building an index after the load"),
    }
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS merged_copies (asset_key INTEGER PRIMARY KEY, differs INTEGER);
         DELETE FROM temp.merged_copies;
         INSERT INTO temp.merged_copies
             SELECT a.asset_key, a.content_hash <> kept.content_hash
             FROM (SELECT library_id, record_id, max(asset_key) AS key FROM assets
                   GROUP BY library_id, record_id HAVING count(*) > 1) twice
             JOIN assets a ON a.library_id = twice.library_id AND a.record_id = twice.record_id
                          AND a.asset_key <> twice.key
             JOIN assets kept ON kept.asset_key = twice.key;
         DELETE FROM versions WHERE asset_key IN (SELECT asset_key FROM temp.merged_copies);
         DELETE FROM assets WHERE asset_key IN (SELECT asset_key FROM temp.merged_copies);",
    )
    .ctx("merging records stored twice")?;
    let (merged, changed): (i64, i64) = tx
        .query_row(
            "SELECT count(*), coalesce(sum(differs), 0) FROM temp.merged_copies",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ctx("merging records stored twice")?;
    tracing::info!(merged, "records listed twice merged");
    if let Some(run) = run {
        tx.execute(
            "UPDATE runs SET added = added - ?2, changed = changed + ?3 WHERE run_id = ?1",
            params![run, merged, changed],
        )
        .ctx("merging records stored twice")?;
    }
    tx.execute_batch(&format!(
        "DROP TABLE temp.merged_copies; {}",
        UNIQUE_INDEX.1
    ))
    .ctx("building an index after the load")
}

/// Versions inserted by one statement at most.
const VERSIONS_PER_INSERT: usize = 16;

/// The INSERTs of a bulk load, prepared once per page (a statement-cache lookup hashes and
/// compares the whole SQL text, a cost per row otherwise). Versions wait and go in together,
/// several assets' at a time, with one multi-row INSERT: a statement's fixed cost (cursors
/// opened and closed) was most of a version's. [`BulkInserter::finish`] writes the last ones.
pub(super) struct BulkInserter<'t, 'a> {
    tx: &'t Connection,
    inserts: Inserts,
    asset: CachedStatement<'t>,
    /// `versions[n - 1]` inserts `n` versions; prepared when first needed.
    versions: Vec<Option<CachedStatement<'t>>>,
    /// Versions of inserted assets not written yet.
    pending: Vec<PendingVersion<'a>>,
}

/// A version row waiting for the next multi-row INSERT.
struct PendingVersion<'a> {
    key: AssetKey,
    kind: &'static str,
    size: i64,
    version: &'a Version,
}

/// The INSERT of `n` version rows.
fn insert_versions_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let p = i * 7;
            format!(
                "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            )
        })
        .collect();
    format!(
        "INSERT INTO versions (asset_key, kind, size, file_type, checksum, width, height) VALUES {}",
        rows.join(", ")
    )
}

impl<'t, 'a> BulkInserter<'t, 'a> {
    pub(super) fn new(tx: &'t Connection, inserts: Inserts) -> Result<Self> {
        let insert = match inserts {
            Inserts::Checked => INSERT_ASSET_IF_NEW,
            Inserts::Unchecked => INSERT_NEW_ASSET,
        };
        Ok(BulkInserter {
            tx,
            inserts,
            asset: tx.prepare_cached(insert).ctx("preparing the load")?,
            versions: (0..VERSIONS_PER_INSERT).map(|_| None).collect(),
            pending: Vec::with_capacity(VERSIONS_PER_INSERT),
        })
    }

    /// Stores one asset: a plain INSERT, or the upsert when the run already stored this record
    /// (listed twice, e.g. moved between indexes while the listing ran, and caught at once
    /// by [`Inserts::Checked`]) or it belongs to another zone (the upsert reports that). Its
    /// versions may wait for a later statement.
    pub(super) fn store(&mut self, run: &ActiveRun, asset: &'a Asset) -> Result<Upserted> {
        if asset.zone != run.zone {
            self.flush()?;
            return upsert_asset(self.tx, run, asset);
        }
        let hash = content_hash(asset);
        let columns = AssetColumns::new(asset);
        let values = [&run.library as &dyn ToSql, &asset.id]
            .into_iter()
            .chain(columns.values())
            .chain([&hash as &dyn ToSql, &run.run]);
        let inserted = self
            .asset
            .execute(params_from_iter(values))
            .ctx("inserting an asset")?;
        if inserted == 0 && self.inserts == Inserts::Checked {
            // The upsert reads the stored versions: every earlier one must be written.
            self.flush()?;
            return upsert_asset(self.tx, run, asset);
        }
        let key = AssetKey(self.tx.last_insert_rowid());
        for version in unique_versions(asset) {
            self.pending.push(PendingVersion {
                key,
                kind: version.kind.as_str(),
                size: to_i64("version size", version.size)?,
                version,
            });
            if self.pending.len() == VERSIONS_PER_INSERT {
                self.flush()?;
            }
        }
        Ok(Upserted::Added)
    }

    /// Writes the versions still waiting.
    pub(super) fn finish(mut self) -> Result<()> {
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        let n = self.pending.len();
        if n == 0 {
            return Ok(());
        }
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(n * 7);
        for p in &self.pending {
            params.extend([
                &p.key as &dyn ToSql,
                &p.kind,
                &p.size,
                &p.version.file_type,
                &p.version.checksum,
                &p.version.width,
                &p.version.height,
            ]);
        }
        let slot = &mut self.versions[n - 1];
        let stmt = match slot {
            Some(stmt) => stmt,
            None => slot.insert(
                self.tx
                    .prepare_cached(&insert_versions_sql(n))
                    .ctx("preparing the load")?,
            ),
        };
        stmt.execute(params_from_iter(params))
            .ctx("inserting versions")?;
        self.pending.clear();
        Ok(())
    }
}

impl Catalog {
    /// Switches this connection to loading settings once the run's first transaction committed.
    pub(super) fn start_bulk_load(&mut self, run: RunId) -> Result<()> {
        // Keys come from the rows just inserted: the foreign-key checks would find nothing.
        // Checkpoints less often: a checkpoint copies every page changed since the last one,
        // and the pages of a load change again and again (index pages, the tables' last
        // pages); ten times fewer checkpoints copied a page once where they copied it several
        // times. The log then grows to ~40 MB at most, and is cut back once checkpointed.
        set_pragmas(
            &self.conn,
            &[
                ("foreign_keys", 0),
                ("wal_autocheckpoint", LOAD_CHECKPOINT_PAGES),
                ("journal_size_limit", LOG_SIZE_LIMIT),
            ],
            "tuning the connection for a load",
        )?;
        self.bulk = Some(BulkLoad {
            run,
            inserts: Inserts::Checked,
        });
        tracing::debug!(%run, "bulk load: deferred indexes dropped");
        Ok(())
    }

    /// How `run` inserts assets when it is this handle's bulk load.
    pub(super) fn bulk_inserts(&self, run: RunId) -> Option<Inserts> {
        self.bulk.filter(|b| b.run == run).map(|b| b.inserts)
    }

    /// Switches `run`'s bulk load, if it is one, to [`Inserts::Unchecked`], dropping the
    /// record-id index. For callers that look nothing up until the run ends.
    pub(super) fn uncheck_bulk_load(&mut self, run: RunId) -> Result<()> {
        if let Some(load) = self.bulk.as_mut().filter(|b| b.run == run)
            && load.inserts == Inserts::Checked
        {
            drop_unique_index(&self.conn)?;
            load.inserts = Inserts::Unchecked;
        }
        Ok(())
    }

    /// Restores the connection's usual settings after the transaction that rebuilt the indexes.
    pub(super) fn end_bulk_load(&mut self) -> Result<()> {
        if self.bulk.take().is_none() {
            return Ok(());
        }
        set_pragmas(
            &self.conn,
            &[
                ("foreign_keys", 1),
                ("wal_autocheckpoint", DEFAULT_CHECKPOINT_PAGES),
            ],
            "restoring the connection after a load",
        )
    }
}

/// Sets integer pragmas of this connection, in order.
fn set_pragmas(conn: &Connection, pragmas: &[(&str, i64)], context: &'static str) -> Result<()> {
    for (name, value) in pragmas {
        conn.pragma_update(None, name, value).ctx(context)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::schema::V4_ASSETS;

    #[test]
    fn deferred_indexes_match_the_schema() {
        let normalise = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        // The current definitions: v4 rebuilt `assets` with all three.
        let schema = normalise(V4_ASSETS);
        for (name, create) in DEFERRED_INDEXES.iter().chain([&UNIQUE_INDEX]) {
            let plain = normalise(&create.replace("IF NOT EXISTS ", ""));
            assert!(schema.contains(&plain), "{name}: {plain}");
        }
    }
}
