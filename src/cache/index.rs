//! The persistent index of cached blocks: which (content, block) pairs are on disk, their
//! length, checksum and last use. Written by a background thread in batched transactions.
//!
//! While the cache is open its truth is in memory (`super::memory`); this module keeps a copy on
//! disk so a restart is warm. SQLite in WAL mode with `synchronous = NORMAL` and exclusive
//! locking (one process per cache directory anyway). Changes are queued and committed every few
//! milliseconds: a crash loses at most the last batch, which only forgets blocks (their bytes
//! are orphaned, and fetched again when needed) or resurrects rows of evicted blocks (whose
//! bytes are gone: the checksum check drops them on first read). Neither can serve a wrong byte.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

/// Bumped when the schema or the meaning of a column changes: an index of another version is
/// rebuilt empty. 3: `sum` is the block's CRC-32C (hardware-accelerated by the `crc32c` crate:
/// it is checked on every read from disk, so it must cost far less than moving the bytes);
/// 2 summed four interleaved lanes.
const SCHEMA_VERSION: i64 = 3;
/// Longest a change waits in the queue before its batch is committed.
const BATCH_DELAY: Duration = Duration::from_millis(20);
/// Largest batch committed at once.
const BATCH_MAX: usize = 4096;

/// One indexed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub key: String,
    pub idx: u64,
    pub len: u32,
    pub sum: u32,
    pub last_use: u64,
}

/// A change to the index.
#[derive(Debug)]
pub(crate) enum Op {
    /// Record (or replace) a block.
    Insert(Row),
    /// A block was used.
    Touch {
        key: String,
        idx: u64,
        last_use: u64,
    },
    /// A block was evicted or found bad.
    Remove { key: String, idx: u64 },
    /// Commit everything queued before, then answer (tests, shutdown).
    Flush(mpsc::Sender<()>),
}

/// Why an index cannot be used as it is (it will be rebuilt empty).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexProblem {
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    #[error("{0}")]
    Damaged(String),
    /// Written by an earlier version of the cache format (not damage: an upgrade).
    #[error("cache format {0}, this version uses {SCHEMA_VERSION}")]
    OtherFormat(i64),
}

/// The SQLite file.
pub(crate) struct Index {
    conn: Connection,
}

impl Index {
    /// Open (creating if needed) the index at `path` and check it is usable: right schema
    /// version, right block size, and a clean `quick_check`.
    pub fn open(path: &Path, block_size: u64) -> Result<Index, IndexProblem> {
        let conn = Connection::open(path).map_err(IndexProblem::Sqlite)?;
        for (pragma, value) in [
            ("locking_mode", "EXCLUSIVE"),
            ("journal_mode", "WAL"),
            ("synchronous", "NORMAL"),
        ] {
            conn.pragma_update(None, pragma, value)
                .map_err(IndexProblem::Sqlite)?;
        }
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
                 ) WITHOUT ROWID;",
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
            return Err(IndexProblem::OtherFormat(version));
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
        Ok(Index { conn })
    }

    /// Every indexed block, least recently used first.
    pub fn load(&mut self) -> Result<Vec<Row>, IndexProblem> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, idx, len, sum, last_use FROM blocks ORDER BY last_use")
            .map_err(IndexProblem::Sqlite)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    key: r.get(0)?,
                    idx: r.get::<_, i64>(1)? as u64,
                    len: r.get::<_, i64>(2)? as u32,
                    sum: r.get::<_, i64>(3)? as u32,
                    last_use: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(IndexProblem::Sqlite)?;
        rows.collect::<Result<Vec<Row>, _>>()
            .map_err(IndexProblem::Sqlite)
    }

    /// Apply `ops` in one transaction.
    pub fn apply(&mut self, ops: &[Op]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO blocks(key, idx, len, sum, last_use)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut touch =
                tx.prepare_cached("UPDATE blocks SET last_use = ?1 WHERE key = ?2 AND idx = ?3")?;
            let mut remove = tx.prepare_cached("DELETE FROM blocks WHERE key = ?1 AND idx = ?2")?;
            for op in ops {
                match op {
                    Op::Insert(r) => {
                        insert.execute(params![
                            r.key,
                            r.idx as i64,
                            r.len as i64,
                            r.sum as i64,
                            r.last_use as i64
                        ])?;
                    }
                    Op::Touch { key, idx, last_use } => {
                        touch.execute(params![*last_use as i64, key, *idx as i64])?;
                    }
                    Op::Remove { key, idx } => {
                        remove.execute(params![key, *idx as i64])?;
                    }
                    Op::Flush(_) => {}
                }
            }
        }
        tx.commit()
    }
}

/// The background writer of an [`Index`].
pub(crate) struct Journal {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Start writing to `index` from a background thread.
    pub fn start(mut index: Index) -> std::io::Result<Journal> {
        let (tx, rx) = mpsc::channel::<Op>();
        let thread = std::thread::Builder::new()
            .name("cache-index".into())
            .spawn(move || {
                let mut failures = 0u64;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    // Gather what arrives shortly after: one commit for a burst of changes.
                    while batch.len() < BATCH_MAX {
                        match rx.recv_timeout(BATCH_DELAY) {
                            Ok(op) => {
                                let flush = matches!(op, Op::Flush(_));
                                batch.push(op);
                                if flush {
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = index.apply(&batch) {
                        // Once: a full disk fails every batch.
                        if failures == 0 {
                            tracing::warn!(error = %e, "writing the cache index failed: the next mount may forget recently cached blocks (further failures at debug level)");
                        } else {
                            tracing::debug!(error = %e, failures, "writing the cache index failed");
                        }
                        failures += 1;
                    }
                    for op in batch {
                        if let Op::Flush(done) = op {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(Journal {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queue a change.
    pub fn send(&self, op: Op) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(op);
        }
    }

    /// Wait until everything queued so far is committed.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        self.send(Op::Flush(done_tx));
        let _ = done_rx.recv();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, idx: u64, len: u32, last_use: u64) -> Row {
        Row {
            key: key.into(),
            idx,
            len,
            sum: 7,
            last_use,
        }
    }

    #[test]
    fn batches_persist_in_lru_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let journal = Journal::start(Index::open(&path, 1024).unwrap()).unwrap();
            journal.send(Op::Insert(row("a", 0, 100, 1)));
            journal.send(Op::Insert(row("a", 1, 50, 2)));
            journal.send(Op::Insert(row("b", 0, 10, 3)));
            journal.send(Op::Insert(row("b", 0, 20, 4)));
            journal.send(Op::Touch {
                key: "a".into(),
                idx: 0,
                last_use: 5,
            });
            journal.send(Op::Remove {
                key: "a".into(),
                idx: 1,
            });
            journal.flush();
        }
        let rows = Index::open(&path, 1024).unwrap().load().unwrap();
        assert_eq!(rows, vec![row("b", 0, 20, 4), row("a", 0, 100, 5)]);
    }

    #[test]
    fn an_index_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        drop(Index::open(&path, 1024).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        drop(conn);
        assert!(matches!(
            Index::open(&path, 1024),
            Err(IndexProblem::OtherFormat(1))
        ));
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
