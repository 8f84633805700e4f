//! The persistent index of cached blocks: which (content, block) pairs are on disk, how long
//! they are, their checksum, and when they were last used.
//!
//! SQLite in WAL mode with `synchronous = NORMAL`: a crash can lose the last few commits, which
//! only forgets blocks (they are fetched again); it can never make the index claim a block with
//! a checksum its bytes do not have, because a block's bytes are written before its row. The
//! LRU clock is a counter persisted in the rows, so the order survives restarts and every row
//! has a distinct `last_use` (which makes keyset scans of the LRU order exact).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// Bumped when the schema or the meaning of a column changes: an index of another version is
/// rebuilt empty.
const SCHEMA_VERSION: i64 = 1;

/// What the index knows about one cached block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockMeta {
    pub len: u32,
    pub sum: u32,
}

/// A block the LRU scan proposes for eviction.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub key: String,
    pub idx: u64,
    pub len: u64,
    pub last_use: i64,
}

pub(crate) struct Index {
    conn: Connection,
    total_bytes: u64,
    blocks: u64,
    clock: i64,
}

impl Index {
    /// Open (creating if needed) the index at `path` and check it is usable: right schema
    /// version, right block size, and a clean `quick_check`.
    pub fn open(path: &Path, block_size: u64) -> Result<Index, IndexProblem> {
        let conn = Connection::open(path).map_err(IndexProblem::Sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(IndexProblem::Sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(IndexProblem::Sqlite)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(IndexProblem::Sqlite)?;
        if check != "ok" {
            return Err(IndexProblem::Damaged(check));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(IndexProblem::Sqlite)?;
        if version == 0 {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS blocks(
                     key TEXT NOT NULL,
                     idx INTEGER NOT NULL,
                     len INTEGER NOT NULL,
                     sum INTEGER NOT NULL,
                     last_use INTEGER NOT NULL,
                     PRIMARY KEY (key, idx)
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS blocks_lru ON blocks(last_use);",
            )
            .map_err(IndexProblem::Sqlite)?;
            conn.execute(
                "INSERT OR REPLACE INTO meta(k, v) VALUES ('block_size', ?1)",
                params![block_size as i64],
            )
            .map_err(IndexProblem::Sqlite)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(IndexProblem::Sqlite)?;
        } else if version != SCHEMA_VERSION {
            return Err(IndexProblem::Damaged(format!(
                "schema version {version}, expected {SCHEMA_VERSION}"
            )));
        }
        let stored_bs: Option<i64> = conn
            .query_row("SELECT v FROM meta WHERE k = 'block_size'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(IndexProblem::Sqlite)?;
        if stored_bs != Some(block_size as i64) {
            return Err(IndexProblem::Damaged(format!(
                "block size {stored_bs:?}, expected {block_size}"
            )));
        }
        let (total, blocks, clock): (i64, i64, i64) = conn
            .query_row(
                "SELECT COALESCE(SUM(len), 0), COUNT(*), COALESCE(MAX(last_use), 0) FROM blocks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(IndexProblem::Sqlite)?;
        Ok(Index {
            conn,
            total_bytes: total.max(0) as u64,
            blocks: blocks.max(0) as u64,
            clock,
        })
    }

    /// Bytes of all indexed blocks.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Number of indexed blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    /// The block's metadata, marking it used.
    pub fn get_and_touch(&mut self, key: &str, idx: u64) -> rusqlite::Result<Option<BlockMeta>> {
        let meta = self.get(key, idx)?;
        if meta.is_some() {
            let now = self.tick();
            self.conn
                .prepare_cached("UPDATE blocks SET last_use = ?1 WHERE key = ?2 AND idx = ?3")?
                .execute(params![now, key, idx as i64])?;
        }
        Ok(meta)
    }

    /// The block's metadata, without touching it.
    pub fn get(&mut self, key: &str, idx: u64) -> rusqlite::Result<Option<BlockMeta>> {
        self.conn
            .prepare_cached("SELECT len, sum FROM blocks WHERE key = ?1 AND idx = ?2")?
            .query_row(params![key, idx as i64], |r| {
                Ok(BlockMeta {
                    len: r.get::<_, i64>(0)? as u32,
                    sum: r.get::<_, i64>(1)? as u32,
                })
            })
            .optional()
    }

    /// Record a block (replacing any previous row for it).
    pub fn insert(&mut self, key: &str, idx: u64, meta: BlockMeta) -> rusqlite::Result<()> {
        if let Some(old) = self.get(key, idx)? {
            self.total_bytes -= old.len as u64;
            self.blocks -= 1;
        }
        let now = self.tick();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO blocks(key, idx, len, sum, last_use)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                key,
                idx as i64,
                meta.len as i64,
                meta.sum as i64,
                now
            ])?;
        self.total_bytes += meta.len as u64;
        self.blocks += 1;
        Ok(())
    }

    /// Forget a block; returns its metadata if it was indexed.
    pub fn remove(&mut self, key: &str, idx: u64) -> rusqlite::Result<Option<BlockMeta>> {
        let old = self.get(key, idx)?;
        if let Some(old) = old {
            self.conn
                .prepare_cached("DELETE FROM blocks WHERE key = ?1 AND idx = ?2")?
                .execute(params![key, idx as i64])?;
            self.total_bytes -= old.len as u64;
            self.blocks -= 1;
        }
        Ok(old)
    }

    /// Up to `limit` least recently used blocks used after `after` (a `last_use` value), oldest
    /// first.
    pub fn oldest_after(&mut self, after: i64, limit: usize) -> rusqlite::Result<Vec<Candidate>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, idx, len, last_use FROM blocks WHERE last_use > ?1
             ORDER BY last_use LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(Candidate {
                key: r.get(0)?,
                idx: r.get::<_, i64>(1)? as u64,
                len: r.get::<_, i64>(2)? as u64,
                last_use: r.get(3)?,
            })
        })?;
        rows.collect()
    }

    /// Whether any block of this content is still indexed.
    pub fn has_blocks_of(&mut self, key: &str) -> rusqlite::Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM blocks WHERE key = ?1 LIMIT 1")?
            .query_row(params![key], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
    }
}

/// Why an index cannot be used as it is (it will be rebuilt empty).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexProblem {
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    #[error("{0}")]
    Damaged(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_lru_order_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let mut ix = Index::open(&path, 1024).unwrap();
            ix.insert("a", 0, BlockMeta { len: 100, sum: 1 }).unwrap();
            ix.insert("a", 1, BlockMeta { len: 50, sum: 2 }).unwrap();
            ix.insert("b", 0, BlockMeta { len: 10, sum: 3 }).unwrap();
            // Replacing a row does not double count.
            ix.insert("b", 0, BlockMeta { len: 20, sum: 4 }).unwrap();
            assert_eq!((ix.total_bytes(), ix.blocks()), (170, 3));
            // Touch a/0: it becomes the most recent.
            assert_eq!(
                ix.get_and_touch("a", 0).unwrap(),
                Some(BlockMeta { len: 100, sum: 1 })
            );
        }
        let mut ix = Index::open(&path, 1024).unwrap();
        assert_eq!((ix.total_bytes(), ix.blocks()), (170, 3));
        let order: Vec<(String, u64)> = ix
            .oldest_after(0, 10)
            .unwrap()
            .into_iter()
            .map(|c| (c.key, c.idx))
            .collect();
        assert_eq!(
            order,
            vec![("a".into(), 1), ("b".into(), 0), ("a".into(), 0)]
        );
        let first = ix.oldest_after(0, 1).unwrap();
        let rest = ix.oldest_after(first[0].last_use, 10).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(ix.remove("a", 1).unwrap().map(|m| m.len), Some(50));
        assert_eq!(ix.remove("a", 1).unwrap(), None);
        assert!(ix.has_blocks_of("a").unwrap());
        ix.remove("a", 0).unwrap();
        assert!(!ix.has_blocks_of("a").unwrap());
        assert_eq!((ix.total_bytes(), ix.blocks()), (20, 1));
    }

    #[test]
    fn another_block_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        drop(Index::open(&path, 1024).unwrap());
        assert!(matches!(
            Index::open(&path, 2048),
            Err(IndexProblem::Damaged(_))
        ));
    }
}
