//! The one-writer rule: an exclusive lock on `<catalog>.lock` (see [`crate::lock_file`]), and
//! how readers (and a refused writer) find out which process holds it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{CatalogError, Result};

/// The lock file of a catalog: `<catalog file name>.lock` in the same directory.
pub(super) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

/// How long a writer waits for a holder that announced it is stopping (a mount unmounted
/// gives the files its mirror has in flight 10 s, then exits).
const STOPPING_WAIT: Duration = Duration::from_secs(30);

/// How long a writer retries any held lock before giving up on a holder that is not stopping.
const SETTLE_WAIT: Duration = Duration::from_millis(500);

/// Takes the exclusive writer lock of the catalog `db` and records our pid in it. A holder
/// that is stopping is waited for (`fusermount3 -u DIR && icloudpd-rs sync` just works).
pub(super) fn acquire_writer_lock(db: &Path) -> Result<File> {
    let lock_path = lock_path(db);
    let started = Instant::now();
    let mut told = false;
    loop {
        match crate::lock_file::try_lock(&lock_path, 0o600) {
            Ok(Some(file)) => return Ok(file),
            Ok(None) => {}
            Err(source) => {
                return Err(CatalogError::Io {
                    context: "taking the writer lock",
                    path: lock_path,
                    source,
                });
            }
        }
        let holder = crate::lock_file::holder_of_held(&lock_path);
        let waited = started.elapsed();
        let stopping = holder.is_some() && crate::lock_file::holder_is_stopping(&lock_path);
        // A holder found stopping is waited for; any other gets a moment to let go or to say
        // it is stopping (a mount unmounted a few milliseconds ago may not have said it yet).
        if waited < SETTLE_WAIT || (stopping && waited < STOPPING_WAIT) {
            if let Some(h) = holder.as_deref().filter(|_| stopping && !told) {
                tracing::info!(
                    holder = h,
                    "the catalog's holder is stopping; waiting for it"
                );
                told = true;
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return Err(CatalogError::Locked {
            path: db.to_path_buf(),
            holder: Some(holder.unwrap_or_else(|| "pid unknown".into())),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_told_who_holds_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        assert_eq!(lock_path(&db), dir.path().join("c.db.lock"));
        let held = acquire_writer_lock(&db).unwrap();
        match acquire_writer_lock(&db) {
            Err(CatalogError::Locked {
                holder: Some(holder),
                ..
            }) => assert!(
                holder.starts_with(&format!("pid {}", std::process::id())),
                "{holder}"
            ),
            other => panic!("{other:?}"),
        }
        drop(held);
        drop(acquire_writer_lock(&db).unwrap());
    }
}
