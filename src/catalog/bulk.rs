//! The bulk load: a full run into a library with no assets yet (a first refresh, or `--full`
//! into a fresh catalog) stores its pages without the work an upsert needs.
//!
//! Measured on a 100,000-asset library, most of a first refresh's writer time went to random
//! updates of the secondary asset indexes: each page touches index pages all over the file,
//! more than the page cache holds, so inserts kept reading and rewriting index pages (3 s of
//! system time in pread/pwrite). During a bulk load the two indexes nobody reads while a library
//! is first listed (`assets_in_order`, `assets_by_asset_record`) are dropped and built once at
//! the end (a sort, far cheaper than 100,000 random insertions); the `(library_id, record_id)`
//! uniqueness stays (a sync streaming the listing looks assets up by id, and it catches a
//! record listed twice; a larger page cache for it changed nothing measurable but the peak RSS).
//! New assets are plain INSERTs through statements prepared once per page, an asset's versions
//! in one multi-row INSERT, without foreign-key checks (the keys were just generated); a record
//! already stored by the same run falls back to the upsert. Durability is unchanged
//! (`synchronous=NORMAL`: in WAL mode it costs an fsync per checkpoint only, and `OFF` would
//! risk the whole file, other libraries and download state included, on an OS crash).
//!
//! A writer killed mid-load leaves the indexes missing: [`ensure_indexes`] rebuilds them when
//! the next writer opens the catalog, before anything else runs.

use rusqlite::{CachedStatement, Connection, ToSql, params, params_from_iter};

use super::assets::{
    AssetColumns, INSERT_ASSET_IF_NEW, Upserted, content_hash, unique_versions, upsert_asset,
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

/// WAL pages between automatic checkpoints during a load, and SQLite's default otherwise.
const LOAD_CHECKPOINT_PAGES: i64 = 10_000;
const DEFAULT_CHECKPOINT_PAGES: i64 = 1000;
/// The WAL file is cut back to this size (bytes) after a checkpoint emptied it.
const LOG_SIZE_LIMIT: i64 = 8 << 20;

/// A bulk load in progress on this handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BulkLoad {
    pub run: RunId,
}

/// Creates any deferred index that is missing (a bulk load that never finished). Cheap when
/// they all exist.
pub(super) fn ensure_indexes(conn: &Connection) -> Result<()> {
    let missing = missing_indexes(conn)?;
    if missing == 0 {
        return Ok(());
    }
    tracing::info!(
        missing,
        "rebuilding catalog indexes left out by an interrupted first listing"
    );
    for (_, create) in DEFERRED_INDEXES {
        conn.execute_batch(create).ctx("rebuilding an index")?;
    }
    Ok(())
}

fn missing_indexes(conn: &Connection) -> Result<usize> {
    let mut missing = 0;
    for (name, _) in DEFERRED_INDEXES {
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

/// Rebuilds the deferred indexes in the caller's transaction (the one that ends the run).
pub(super) fn create_indexes(tx: &Connection) -> Result<()> {
    for (_, create) in DEFERRED_INDEXES {
        tx.execute_batch(create)
            .ctx("building an index after the load")?;
    }
    Ok(())
}

/// Versions inserted by one statement at most.
const VERSIONS_PER_INSERT: usize = 16;

/// The INSERTs of a bulk load, prepared once per page (a statement-cache lookup hashes and
/// compares the whole SQL text, a cost per row otherwise). Versions wait and go in together,
/// several assets' at a time, with one multi-row INSERT: a statement's fixed cost (cursors
/// opened and closed) was most of a version's. [`BulkInserter::finish`] writes the last ones.
pub(super) struct BulkInserter<'t, 'a> {
    tx: &'t Connection,
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
    pub(super) fn new(tx: &'t Connection) -> Result<Self> {
        Ok(BulkInserter {
            tx,
            asset: tx
                .prepare_cached(INSERT_ASSET_IF_NEW)
                .ctx("preparing the load")?,
            versions: (0..VERSIONS_PER_INSERT).map(|_| None).collect(),
            pending: Vec::with_capacity(VERSIONS_PER_INSERT),
        })
    }

    /// Stores one asset: a plain INSERT, or the upsert when the run already stored this record
    /// (listed twice, e.g. moved between indexes while the listing ran) or it belongs to
    /// another zone (the upsert reports that). Its versions may wait for a later statement.
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
        if inserted == 0 {
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
        self.bulk = Some(BulkLoad { run });
        tracing::debug!(%run, "bulk load: deferred indexes dropped");
        Ok(())
    }

    /// True when `run` is this handle's bulk load.
    pub(super) fn is_bulk_load(&self, run: RunId) -> bool {
        self.bulk.is_some_and(|b| b.run == run)
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
    use crate::catalog::schema::V1_SCHEMA;

    #[test]
    fn deferred_indexes_match_the_schema() {
        let normalise = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let schema = normalise(V1_SCHEMA);
        for (name, create) in DEFERRED_INDEXES {
            let plain = normalise(&create.replace("IF NOT EXISTS ", ""));
            assert!(schema.contains(&plain), "{name}: {plain}");
        }
    }
}
