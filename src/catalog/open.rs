//! Opening a catalog: the writer lock, the checks that refuse foreign, damaged or newer files
//! without touching them, migrations, connection settings and interrupted-run detection.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::error::{CatalogError, Result, SqlContext, is_damage};
use super::lock::acquire_writer_lock;
use super::schema::{self, APPLICATION_ID, CURRENT_VERSION, MIGRATIONS};
use super::{Catalog, RunId, now_ms};

/// How long a statement waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (the catalog uses a few dozen distinct ones).
const STATEMENT_CACHE: usize = 96;
/// First bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How thoroughly [`inspect`] reads the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Header, application id, schema version: enough for readers, which never write.
    Header,
    /// Also every page (`PRAGMA quick_check`), before a writer changes anything.
    Integrity,
}

/// What the checks found in the file.
enum Found {
    /// No file, an empty file, or an SQLite database without any table: a new catalog.
    Empty,
    /// One of ours, at this schema version.
    Catalog { version: i64 },
}

/// Create the catalog file (empty: a new catalog) readable by its owner only, if it does not
/// exist: SQLite would make it 0644, and its WAL and index files take its mode. Photo dates,
/// places and names are personal, as the session files beside it.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CatalogError::Io {
            context: "creating the catalog",
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` as its only writer.
    ///
    /// Fails with [`CatalogError::Locked`] while another process writes it, and leaves the file
    /// untouched when it is not a catalog ([`CatalogError::NotACatalog`]), damaged (every page
    /// is checked first: [`CatalogError::Corrupt`]) or from a newer version
    /// ([`CatalogError::NewerSchema`]).
    /// An older schema is copied to `<path>.backup-v<N>-<time>` and migrated in one transaction;
    /// once that succeeds, copies left by earlier migrations are removed (one copy stays).
    pub fn open(path: impl AsRef<Path>) -> Result<Catalog> {
        let path = path.as_ref().to_path_buf();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| CatalogError::Io {
            context: "creating the catalog directory",
            path: dir.to_path_buf(),
            source,
        })?;
        // A writer makes files beside the catalog (its lock, the WAL and its index): said
        // plainly here rather than as SQLite's "readonly database" halfway through opening.
        may_write_in(dir).map_err(|source| CatalogError::Io {
            context: "cannot write the catalog: no right to create files in",
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = acquire_writer_lock(&path)?;
        create_private(&path)?;
        let found = inspect(&path, Check::Integrity)?;

        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| classify(&path, source))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx("setting the busy timeout")?;

        match found {
            Found::Empty => {
                // WAL before the first table, so the file never exists in another mode.
                set_wal(&conn)?;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .ctx("creating the schema")?;
                schema::create_current(&tx).ctx("creating the schema")?;
                tx.commit().ctx("creating the schema")?;
                // Not for the user: the run may yet remove it (a first sign-in that fails).
                tracing::debug!(path = %path.display(), "created a new catalog");
            }
            Found::Catalog { version } if version > CURRENT_VERSION => {
                return Err(CatalogError::NewerSchema {
                    path,
                    found: version,
                    supported: CURRENT_VERSION,
                });
            }
            Found::Catalog { version } if version < CURRENT_VERSION => {
                migrate(&mut conn, &path, version)?;
                set_wal(&conn)?;
            }
            Found::Catalog { .. } => set_wal(&conn)?,
        }
        configure(&conn)?;
        super::bulk::ensure_indexes(&conn)?;

        let interrupted = mark_interrupted_runs(&conn)?;
        if !interrupted.is_empty() {
            tracing::warn!(runs = ?interrupted, "refresh runs of a previous process were interrupted");
        }
        let syncs = super::sync_runs::mark_interrupted_sync_runs(&conn)?;
        if syncs > 0 {
            tracing::info!(syncs, "sync runs of a previous process were interrupted");
        }
        Ok(Catalog {
            conn,
            path,
            writer_lock: Some(lock),
            interrupted_at_open: interrupted,
            bulk: None,
            batched: None,
        })
    }

    /// A second writer connection of this process, sharing this handle's writer lock: the
    /// sync engine records download results through it while a refresh writes pages through
    /// `self`. SQLite serialises the two connections' transactions (each waits up to the busy
    /// timeout for the other's). Refused on a read-only handle.
    pub fn companion_writer(&self) -> Result<Catalog> {
        let lock = self
            .writer_lock
            .as_ref()
            .ok_or(CatalogError::ReadOnly {
                operation: "opening a companion writer",
            })?
            .try_clone()
            .map_err(|source| CatalogError::Io {
                context: "sharing the writer lock",
                path: super::lock::lock_path(&self.path),
                source,
            })?;
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| classify(&self.path, source))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx("setting the busy timeout")?;
        configure(&conn)?;
        Ok(Catalog {
            conn,
            path: self.path.clone(),
            writer_lock: Some(lock),
            interrupted_at_open: Vec::new(),
            bulk: None,
            batched: None,
        })
    }

    /// Reads every page of the catalog (SQLite's `quick_check`, about a quarter second per
    /// 100,000 assets); damage is reported as [`CatalogError::Corrupt`]. Writers run it when
    /// they open; readers, which start fast, may run it on demand.
    pub fn check_integrity(&self) -> Result<()> {
        quick_check(&self.conn, &self.path)
    }

    /// Opens an existing catalog for reading, alongside a writer if there is one. Never writes.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Catalog> {
        let path = path.as_ref().to_path_buf();
        match inspect(&path, Check::Header)? {
            Found::Empty => return Err(CatalogError::Missing { path }),
            Found::Catalog { version } if version > CURRENT_VERSION => {
                return Err(CatalogError::NewerSchema {
                    path,
                    found: version,
                    supported: CURRENT_VERSION,
                });
            }
            Found::Catalog { version } if version < CURRENT_VERSION => {
                return Err(CatalogError::NeedsMigration {
                    path,
                    found: version,
                    supported: CURRENT_VERSION,
                });
            }
            Found::Catalog { .. } => {}
        }
        let conn = open_reader(&path)?;
        conn.pragma_update(None, "query_only", true)
            .ctx("making the connection read-only")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Catalog {
            conn,
            path,
            writer_lock: None,
            interrupted_at_open: Vec::new(),
            bulk: None,
            batched: None,
        })
    }
}

/// Decides what the file at `path` is, reading only (a read-only connection, no writes).
fn inspect(path: &Path, check: Check) -> Result<Found> {
    let mut header = [0u8; 100];
    let read = match File::open(path) {
        Ok(mut f) => read_up_to(&mut f, &mut header).map_err(|source| CatalogError::Io {
            context: "reading",
            path: path.to_path_buf(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Empty),
        Err(source) => {
            return Err(CatalogError::Io {
                context: "opening",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if read == 0 {
        return Ok(Found::Empty);
    }
    if read < header.len() || &header[..16] != SQLITE_MAGIC {
        return Err(CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason: "not an SQLite database".into(),
        });
    }

    let conn = open_reader(path)?;
    let read_header = || -> rusqlite::Result<(i32, i64, i64)> {
        let app: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        Ok((app, version, tables))
    };
    let (app, version, tables) = read_header().map_err(|source| classify(path, source))?;
    match (app, tables) {
        (APPLICATION_ID, _) => {
            if check == Check::Integrity {
                quick_check(&conn, path)?;
            }
            Ok(Found::Catalog { version })
        }
        (0, 0) if version == 0 => Ok(Found::Empty),
        (0, _) => Err(CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason: "an SQLite database of another program".into(),
        }),
        (other, _) => Err(CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason: format!("an SQLite database with application id {other:#x}"),
        }),
    }
}

/// A read-only connection to the database at `path`, whose first read has succeeded.
///
/// Reading a WAL database needs its `-shm` index, which SQLite creates beside the file when it
/// is missing (the last connection to close removes it): in a folder this process cannot
/// write (a read-only mount, a backup, another user's data folder), that first read fails
/// (SQLITE_CANTOPEN on a read-only file system, SQLITE_READONLY_DIRECTORY without the right to
/// write the folder). SQLite's documented way to read such a file is the `immutable` URI
/// parameter (<https://sqlite.org/wal.html#readonly>), which reads the database file alone,
/// without locks. That is only right when there is no `-wal` file: every connection has one
/// while it is open (a writer reaching the file by another path, a writable mount of the same
/// folder, would be changing it under the reader) and one that died leaves its changes there.
fn open_reader(path: &Path) -> Result<Connection> {
    let connect = |target: &Path, flags: OpenFlags| -> Result<Connection> {
        let conn = Connection::open_with_flags(target, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|source| classify(path, source))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx("setting the busy timeout")?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|source| classify(path, source))?;
        Ok(conn)
    };
    match connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Err(CatalogError::Sqlite { source, .. })
            if matches!(
                source.sqlite_error_code(),
                Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
            ) && !has_wal(path) =>
        {
            tracing::debug!(path = %path.display(), "no WAL index and no right to create one: reading the catalog file as immutable");
            connect(
                &immutable_uri(path),
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )
        }
        other => other,
    }
}

/// Whether this process may create files in `dir` (`access(2)`, which also sees a read-only
/// file system, for root too).
fn may_write_in(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid NUL-terminated path.
    match unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether there is a `-wal` file beside `db`.
fn has_wal(db: &Path) -> bool {
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    std::fs::symlink_metadata(wal).is_ok()
}

/// `file:PATH?immutable=1`, with every byte of the path outside the URI's plain characters
/// percent-encoded (`?`, `#` and `%` would otherwise end or escape the path).
fn immutable_uri(db: &Path) -> PathBuf {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in db.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~@+,=".contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri.push_str("?immutable=1");
    PathBuf::from(uri)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut total = 0;
    while total < buf.len() {
        match file.read(&mut buf[total..])? {
            0 => break,
            n => total += n,
        }
    }
    Ok(total)
}

/// Reads every page of the database; any problem is a [`CatalogError::Corrupt`].
pub(super) fn quick_check(conn: &Connection, path: &Path) -> Result<()> {
    let problems = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|source| classify(path, source))?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        Err(CatalogError::Corrupt {
            path: path.to_path_buf(),
            detail: problems.join("; "),
        })
    }
}

/// Maps SQLite's "this is not a database / it is damaged" codes to errors naming the file.
fn classify(path: &Path, source: rusqlite::Error) -> CatalogError {
    if is_damage(&source) {
        CatalogError::Corrupt {
            path: path.to_path_buf(),
            detail: source.to_string(),
        }
    } else {
        CatalogError::Sqlite {
            context: "opening the catalog",
            source,
        }
    }
}

fn set_wal(conn: &Connection) -> Result<()> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
        .ctx("switching to WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "SQLite refused WAL mode; continuing with this journal mode");
    }
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "synchronous", "NORMAL")
        .ctx("setting synchronous")?;
    conn.pragma_update(None, "foreign_keys", true)
        .ctx("enabling foreign keys")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Copies the file aside, then runs every migration from `from` in one transaction.
fn migrate(conn: &mut Connection, path: &Path, from: i64) -> Result<()> {
    let backup = backup_path(path, from);
    let failed = |reason: String| CatalogError::MigrationFailed {
        path: path.to_path_buf(),
        from,
        to: CURRENT_VERSION,
        backup: backup.clone(),
        reason,
    };
    // VACUUM INTO writes a consistent copy including any committed WAL content, without
    // modifying the source.
    conn.execute("VACUUM INTO ?1", [backup.to_string_lossy().as_ref()])
        .map_err(|source| match classify(path, source) {
            CatalogError::Sqlite { source, .. } => failed(format!("backing up: {source}")),
            other => other,
        })?;
    tracing::info!(
        path = %path.display(), backup = %backup.display(), from, to = CURRENT_VERSION,
        "migrating the catalog schema"
    );

    // Foreign keys are checked once at the end instead of row by row while tables are rebuilt.
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(|e| failed(e.to_string()))?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| failed(e.to_string()))?;
    let mut version = from;
    for step in MIGRATIONS.iter().filter(|m| m.from >= from) {
        if step.from != version {
            return Err(failed(format!("no migration from schema {version}")));
        }
        (step.apply)(&tx).map_err(&failed)?;
        version = step.to;
    }
    if version != CURRENT_VERSION {
        return Err(failed(format!("no migration from schema {version}")));
    }
    let violations: i64 = tx
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .map_err(|e| failed(e.to_string()))?;
    if violations != 0 {
        return Err(failed(format!(
            "{violations} foreign key violations after migrating"
        )));
    }
    schema::stamp(&tx, CURRENT_VERSION).map_err(|e| failed(e.to_string()))?;
    tx.commit().map_err(|e| failed(e.to_string()))?;
    remove_older_backups(path, &backup);
    tracing::info!(
        backup = %backup.display(),
        "catalog migrated; the copy from before stays until the next migration (delete it if \
         you will not go back to an older icloudpd-rs)"
    );
    Ok(())
}

/// Removes the copies earlier migrations left beside the catalog at `db` (a catalog is as
/// large as its library: one copy is kept, the one just made, `keep`).
fn remove_older_backups(db: &Path, keep: &Path) {
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return;
    };
    let prefix = format!("{}.backup-v", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_backup = entry.file_name().to_string_lossy().starts_with(&prefix);
        if is_backup && path.file_name() != keep.file_name() {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!(path = %path.display(), "older catalog copy removed"),
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "older catalog copy kept")
                }
            }
        }
    }
}

/// `<catalog>.backup-v<from>-<epoch ms>` beside the catalog (with a counter if that exists).
fn backup_path(db: &Path, from: i64) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".backup-v{from}-{}", now_ms()));
    let first = db.with_file_name(&name);
    let mut candidate = first.clone();
    let mut n = 1;
    while candidate.exists() {
        let mut numbered = name.clone();
        numbered.push(format!("-{n}"));
        candidate = db.with_file_name(numbered);
        n += 1;
    }
    candidate
}

/// Marks every run left `running` as interrupted: we hold the writer lock, so whoever started
/// them is gone.
fn mark_interrupted_runs(conn: &Connection) -> Result<Vec<RunId>> {
    let mut stmt = conn
        .prepare(
            "UPDATE runs SET status = 'interrupted', finished_ms = ?1
             WHERE status = 'running' RETURNING run_id",
        )
        .ctx("marking interrupted runs")?;
    let ids = stmt
        .query_map([now_ms()], |r| r.get(0))
        .ctx("marking interrupted runs")?
        .collect::<rusqlite::Result<Vec<RunId>>>()
        .ctx("marking interrupted runs")?;
    Ok(ids)
}
