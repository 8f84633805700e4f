//! Errors of the catalog, typed so callers can tell "another process owns this catalog" from
//! "this file is not ours" from "SQLite failed" without matching strings.

use std::path::PathBuf;

use super::{AlbumKey, LibraryId, RootId, RunId, VersionKey};

/// Everything that can go wrong while opening or using a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file-system operation around the database (lock file, backup, directory) failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// SQLite reported an error while doing `context`.
    #[error("catalog: {context}: {}", explain_sqlite(source))]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// The file exists but is not an SQLite database, or is one that belongs to another program.
    #[error("{} is not an icloudpd-rs catalog ({reason}); it was left untouched", path.display())]
    NotACatalog { path: PathBuf, reason: String },

    /// The file looks like SQLite but is damaged or truncated.
    #[error(
        "catalog {} is damaged ({detail}); it was left untouched: restore a backup or move it \
         away to start a new catalog", path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    /// A newer icloudpd-rs wrote this catalog; this version cannot read it safely.
    #[error(
        "catalog {} has schema version {found}, newer than this program supports ({supported}); \
         upgrade icloudpd-rs (the file was left untouched)", path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A read-only open found an older schema; only a writer may migrate it.
    #[error(
        "catalog {} has schema version {found} and needs migrating to {supported}; \
         run a command that writes the catalog (e.g. `icloudpd-rs sync`) first", path.display()
    )]
    NeedsMigration {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// Migrating the schema failed; the transaction was rolled back and the file is unchanged.
    #[error(
        "migrating catalog {} from schema {from} to {to} failed: {reason}; the catalog was left \
         as it was (a copy made before the attempt is at {})", path.display(), backup.display()
    )]
    MigrationFailed {
        path: PathBuf,
        from: i64,
        to: i64,
        backup: PathBuf,
        reason: String,
    },

    /// A read-only open of a catalog that does not exist yet.
    #[error("catalog {} does not exist (run `icloudpd-rs sync` to create it)", path.display())]
    Missing { path: PathBuf },

    /// Another process holds the writer lock.
    #[error("catalog {} is in use by another icloudpd-rs process{}; {}",
        path.display(), holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(),
        locked_advice(holder.as_deref()))]
    Locked {
        path: PathBuf,
        /// "pid 1234: icloudpd-rs mount" when the lock file names a live process.
        holder: Option<String>,
    },

    /// A write was attempted through a read-only catalog handle.
    #[error("catalog opened read-only; {operation} needs a writer")]
    ReadOnly { operation: &'static str },

    #[error("catalog: unknown library #{0}")]
    UnknownLibrary(LibraryId),

    #[error("catalog: unknown run #{0}")]
    UnknownRun(RunId),

    #[error("catalog: unknown download root #{0}")]
    UnknownRoot(RootId),

    #[error("catalog: unknown version #{0}")]
    UnknownVersion(VersionKey),

    #[error("catalog: unknown album #{0}")]
    UnknownAlbum(AlbumKey),

    #[error("catalog: unknown album {album_id:?} in library #{library}")]
    UnknownAlbumId {
        library: LibraryId,
        album_id: String,
    },

    /// The run is not `running` any more (finished, or found interrupted at open).
    #[error("catalog: run #{run} is {status}, not running")]
    RunNotRunning { run: RunId, status: String },

    /// An operation for one kind of run was asked of the other kind.
    #[error("catalog: run #{run} is a {actual} run; {operation} needs a {expected} run")]
    WrongRunKind {
        run: RunId,
        operation: &'static str,
        expected: &'static str,
        actual: &'static str,
    },

    /// A run of the same library is still running in this process.
    #[error("catalog: library #{library} already has run #{run} in progress")]
    RunInProgress { library: LibraryId, run: RunId },

    /// A record of one zone was handed to a run or library of another zone.
    #[error(
        "catalog: record {record:?} belongs to zone {found:?}, but the library's zone is {expected:?}"
    )]
    ZoneMismatch {
        record: String,
        expected: String,
        found: String,
    },

    /// A download root must be an absolute directory path without `..`.
    #[error("download root {}: {reason}", path.display())]
    BadRoot { path: PathBuf, reason: &'static str },

    /// A downloaded file's path must be relative to its root and stay inside it.
    #[error("local path {path:?} must be relative to the download root and stay inside it")]
    BadLocalPath { path: String },

    /// A number does not fit SQLite's signed 64-bit integers.
    #[error("catalog: {what} {value} is too large to store")]
    OutOfRange { what: &'static str, value: u64 },

    /// A stored value cannot be decoded (the database was edited by hand or is damaged).
    #[error("catalog holds an invalid {what}: {value:?}")]
    BadStoredValue { what: &'static str, value: String },
}

impl CatalogError {
    /// SQLite's words when a query met a damaged page (damage past the checks made when
    /// opening, which readers keep short): the detail of the [`CatalogError::Corrupt`] that
    /// whoever knows the file's path reports.
    pub fn damage(&self) -> Option<String> {
        match self {
            CatalogError::Sqlite { source, .. } if is_damage(source) => Some(source.to_string()),
            _ => None,
        }
    }
}

/// Whether SQLite says the file is not a database or is damaged.
pub(super) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// SQLite's own text, with what to do when the disk is full (SQLite says only "database or
/// disk is full").
fn explain_sqlite(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => "the disk holding the catalog is full; free some \
            space there and run again (everything stored so far is kept)"
            .to_string(),
        _ => e.to_string(),
    }
}

/// Result alias of the catalog.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Attaches a short description of what was being done to a SQLite error.
pub(crate) trait SqlContext<T> {
    fn ctx(self, context: &'static str) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T> {
        self.map_err(|source| CatalogError::Sqlite { context, source })
    }
}

/// What to do about a catalog locked by `holder`.
fn locked_advice(holder: Option<&str>) -> &'static str {
    if holder.is_some_and(|h| h.ends_with(" mount") || h.ends_with(" demo")) {
        "a mount keeps its catalog until it is unmounted: unmount it first, or have the mount \
         download the library itself (mount --mirror DIR)"
    } else {
        "wait for it to finish or stop it"
    }
}
