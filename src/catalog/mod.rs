//! The catalog: one SQLite database that is the single source of truth about a user's iCloud
//! Photos libraries, what was seen in them and what was downloaded where.
//!
//! It does no HTTP. The refresh logic hands it parsed [`crate::model::Asset`] and [`crate::model::Album`]
//! values page by page; the sync engine, the mount and the CLI read views, counts and download
//! state back from it.
//!
//! # Files and processes
//! - One **writer** process per catalog: [`Catalog::open`] takes an exclusive `flock` on
//!   `<catalog>.lock` beside the database (it holds the writer's pid, so a second writer is
//!   refused with an error naming the first). Any number of **readers**
//!   ([`Catalog::open_read_only`]: `status`, the mount) may open the same file at any time.
//! - WAL journal, `synchronous=NORMAL` (a commit survives a process crash; an OS crash may lose
//!   the last commits but never corrupts), foreign keys on, a busy timeout, cached statements.
//! - A [`Catalog`] handle is `Send`, not `Sync`: give each thread its own read-only handle
//!   (cheap), or guard one with a mutex. Iterators borrow their handle, so a process that
//!   streams a view while writing (the sync engine) iterates through a read-only handle and
//!   writes through the writer; WAL lets both proceed.
//! - The schema is versioned ([`schema`]): opening checks it, refuses newer or foreign files
//!   without touching them, and migrates older ones in one transaction after making a copy.
//!
//! # What is stored (see `schema.rs` for the tables)
//! Libraries (database + zone, sync tokens, refresh times), refresh runs (full or incremental,
//! with counts and the records they had to skip), assets with every field of
//! [`crate::model::Asset`] plus first/last run seen and when they left iCloud, versions (never a
//! download URL), albums and membership, download roots and per (version, root) download state.
//!
//! # How a refresh uses it
//! 1. [`Catalog::begin_run`] for a library, full or incremental.
//! 2. Full: [`Catalog::upsert_page`] for every page of the All Photos, Hidden and Recently
//!    Deleted indexes (together they hold every asset once), then
//!    [`Catalog::finish_full_enumeration`] with the zone's sync token: only then are the assets
//!    the run did not see marked gone, in the same transaction that completes the run and stores
//!    the token. A run that is dropped, killed or failed marks nothing. A full run into a
//!    library without any asset yet is a *bulk load* (`bulk.rs`): two secondary indexes are
//!    dropped when it begins and rebuilt when it ends (or when the next writer opens the file).
//!    A caller that reads nothing back before the run ends (a plain `refresh`, a mount's
//!    listing) stores its pages with [`Catalog::upsert_page_batched`] instead: one commit every
//!    few seconds (`batched.rs`), and a bulk load then goes without the record-id index too.
//! 3. Incremental: [`Catalog::apply_changes`] once per `changes/zone` page, with the page's token
//!    (stored in the same transaction), then [`Catalog::finish_run`].
//!
//! A run still `running` when a writer next opens the catalog belonged to a process that died:
//! it is marked `interrupted` ([`Catalog::interrupted_at_open`]). So is a sync run (`sync_runs.rs`:
//! how the last sync into each download folder ended, for `status`).
//!
//! # Keys
//! [`AssetKey`], [`VersionKey`], [`AlbumKey`] are SQLite row keys that are never reused, stable
//! for the life of the catalog: the mount derives inode numbers from them.

mod albums;
mod assets;
mod batched;
mod bulk;
mod changes;
mod download_batch;
mod downloads;
mod error;
mod libraries;
mod lock;
mod open;
mod orphans;
mod queries;
mod runs;
pub mod schema;
mod status;
mod sync_runs;
mod trash;

use std::fmt;
use std::fs::File;
use std::path::PathBuf;

use rusqlite::Connection;
use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;

pub use albums::{AlbumEntry, AlbumTreeCounts};
pub use assets::PageCounts;
pub use changes::{ChangeBatch, ChangeCounts, FlagChange};
pub use download_batch::{DownloadUpdate, PreviousCopy};
pub use downloads::{DownloadRecord, DownloadRoot, DownloadState, DownloadStateKind};
pub use error::{CatalogError, Result};
pub use libraries::LibraryRecord;
pub use orphans::OrphanedFile;
pub use queries::{AssetFilter, AssetIter, Paged, SmartFolder, StoredAsset, StoredVersion};
pub use runs::{RunCounts, RunKind, RunRecord, RunStatus};
pub use status::{LibraryStatus, Status};
pub use sync_runs::{SyncOutcome, SyncRunEnd, SyncRunRecord};

/// An open catalog: a writer (holding the lock) or a reader.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    /// The `flock`ed lock file while this handle is the writer; `None` for readers.
    writer_lock: Option<File>,
    interrupted_at_open: Vec<RunId>,
    /// The bulk load this writer is doing (a full run into an empty library), if any.
    bulk: Option<bulk::BulkLoad>,
    /// The transaction of [`Catalog::upsert_page_batched`], while one is open.
    batched: Option<batched::OpenBatch>,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        // Pages stored so far are kept, as they would have been with a commit each.
        if let Err(e) = self.commit_batched() {
            tracing::warn!(error = %e, "could not commit the last pages stored");
        }
        // A load abandoned without ending its run (a cancelled refresh): put the indexes back
        // now rather than at the next open.
        if self.bulk.is_some()
            && let Err(e) = bulk::ensure_indexes(&self.conn)
        {
            tracing::warn!(error = %e, "could not rebuild the catalog indexes; the next open will");
        }
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("path", &self.path)
            .field("writer", &self.writer_lock.is_some())
            .finish()
    }
}

macro_rules! row_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.0))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                i64::column_result(value).map($name)
            }
        }
    };
}

row_key!(
    /// A library (database + zone) in this catalog.
    LibraryId
);
row_key!(
    /// A refresh run.
    RunId
);
row_key!(
    /// An asset's row key: stable and never reused (inode material for the mount).
    AssetKey
);
row_key!(
    /// A version's row key: stable while the asset keeps that version, never reused.
    VersionKey
);
row_key!(
    /// An album's row key: stable while the album exists, never reused.
    AlbumKey
);
row_key!(
    /// A download root (an absolute directory that files are mirrored into).
    RootId
);

/// Held by a long-running writer (the mount) that knows when its work is done: once
/// [`StoppingNotice::announce`] has run, a sync that finds the catalog locked waits for this
/// process to exit instead of failing.
pub struct StoppingNotice(File);

impl StoppingNotice {
    /// Say that this process is stopping (best effort: a failure only means no waiting).
    pub fn announce(&self) {
        if let Err(e) = crate::lock_file::announce_stopping(&self.0) {
            tracing::debug!(error = %e, "could not mark the catalog's lock as stopping");
        }
    }
}

impl Catalog {
    /// The database file this handle was opened on.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// True when this handle holds the writer lock.
    pub fn is_writer(&self) -> bool {
        self.writer_lock.is_some()
    }

    /// A handle that tells writers waiting for this catalog that its holder is stopping
    /// (see [`StoppingNotice`]); `None` on a read-only handle.
    pub fn stopping_notice(&self) -> Option<StoppingNotice> {
        let file = self.writer_lock.as_ref()?.try_clone().ok()?;
        Some(StoppingNotice(file))
    }

    /// Runs a dead process left `running`, marked `interrupted` when this writer opened.
    pub fn interrupted_at_open(&self) -> &[RunId] {
        &self.interrupted_at_open
    }

    fn require_writer(&self, operation: &'static str) -> Result<()> {
        if self.writer_lock.is_some() {
            Ok(())
        } else {
            Err(CatalogError::ReadOnly { operation })
        }
    }

    /// Starts a write transaction that takes SQLite's write lock at once (no upgrade deadlocks),
    /// after committing the pages of [`Catalog::upsert_page_batched`] (nothing runs inside them).
    fn write_tx(&mut self, operation: &'static str) -> Result<rusqlite::Transaction<'_>> {
        self.require_writer(operation)?;
        self.commit_batched()?;
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| CatalogError::Sqlite {
                context: operation,
                source,
            })
    }
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A `u64` as SQLite's `i64`, refusing (never wrapping) values that do not fit.
fn to_i64(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| CatalogError::OutOfRange { what, value })
}

/// A stored count or size back to `u64` (negative values, from a hand-edited file, read as 0).
fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A conversion error for a stored value that does not decode, as a rusqlite error so it can
/// be raised inside row mappers.
fn bad_value(column: usize, what: &'static str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        Box::new(CatalogError::BadStoredValue {
            what,
            value: value.to_owned(),
        }),
    )
}

/// Serialises optional epoch milliseconds as RFC 3339 text for the `status --json` document.
fn serialize_ms<S: serde::Serializer>(
    ms: &Option<i64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        None => s.serialize_none(),
    }
}

/// [`serialize_ms`] for a time that is always known.
fn serialize_ms_always<S: serde::Serializer>(
    ms: &i64,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    serialize_ms(&Some(*ms), s)
}
