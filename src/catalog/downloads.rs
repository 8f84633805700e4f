//! Download roots and the download state of each (version, root): pending, downloaded (where,
//! how big, its SHA-256, when) or failed (attempts, last error, when).
//!
//! A root is an absolute directory: `sync -d A` and a mirror into `B` keep separate state, so
//! one catalog can feed several trees. A version with no row in a root has never been planned
//! there; the sync engine registers what it plans with [`Catalog::mark_pending`].
//!
//! A pending or failed row keeps the path of the file written before (`rel_path`), and its
//! size and SHA-256 when known (a [`super::PreviousCopy`]): after an edit in iCloud (the
//! content changed; `downloaded_ms` is cleared) or a `reset-state` (the content did not;
//! `downloaded_ms` stays). A failure of a version recorded as downloaded forgets the old
//! digest: that file is missing or damaged (`verify --repair`). A failed row also keeps the
//! path its last attempt was to write (`planned_path`, from the run's layout), for
//! `status --failed`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::error::{CatalogError, Result, SqlContext};
use super::queries::{ITER_PAGE, Paged};
use super::{AssetKey, Catalog, RootId, VersionKey, now_ms, to_i64, to_u64};
use crate::model::VersionKind;

/// A directory that versions are downloaded into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadRoot {
    pub id: RootId,
    pub path: PathBuf,
}

/// The state of one version in one root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DownloadState {
    /// Wanted and not (or no longer) downloaded. `previous_path` is where an older copy was
    /// written, e.g. before the photo was edited, so it can be replaced.
    Pending { previous_path: Option<String> },
    /// On disk at `rel_path` (relative to the root), `size` bytes with this SHA-256.
    Downloaded {
        rel_path: String,
        size: u64,
        #[serde(serialize_with = "hex_digest")]
        sha256: [u8; 32],
        at_ms: i64,
    },
    /// The last attempt failed; `attempts` counts failures since the last success or reset.
    Failed {
        attempts: u32,
        last_error: String,
        at_ms: i64,
        previous_path: Option<String>,
    },
}

/// The three states, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadStateKind {
    Pending,
    Downloaded,
    Failed,
}

impl DownloadStateKind {
    fn as_str(self) -> &'static str {
        match self {
            DownloadStateKind::Pending => "pending",
            DownloadStateKind::Downloaded => "downloaded",
            DownloadStateKind::Failed => "failed",
        }
    }
}

/// A version's download state in a root, with what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadRecord {
    pub version: VersionKey,
    pub asset: AssetKey,
    pub kind: VersionKind,
    /// The asset has left iCloud (the file may still be on disk).
    pub asset_gone: bool,
    pub state: DownloadState,
    /// For a failed version: where its last attempt was to write the file (the run's planned
    /// path), when the failure said (see [`super::DownloadUpdate::FailedAt`]).
    pub planned_path: Option<String>,
}

fn hex_digest<S: serde::Serializer>(d: &[u8; 32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(d))
}

/// Records `version` as complete at `rel_path` in `root`, clearing any failure.
/// `source_sha256` is `None` when the file holds the downloaded bytes.
pub(super) fn upsert_downloaded(
    tx: &Connection,
    (root, version): (RootId, VersionKey),
    rel_path: &str,
    size: u64,
    sha256: &[u8; 32],
    source_sha256: Option<&[u8; 32]>,
    now: i64,
) -> Result<()> {
    let size = to_i64("file size", size)?;
    tx.prepare_cached(
        "INSERT INTO downloads (root_id, version_key, state, rel_path, size, sha256, source_sha256,
                                downloaded_ms, attempts)
         VALUES (?1, ?2, 'downloaded', ?3, ?4, ?5, ?6, ?7, 0)
         ON CONFLICT (root_id, version_key) DO UPDATE SET
            state = 'downloaded', rel_path = excluded.rel_path, size = excluded.size,
            sha256 = excluded.sha256, source_sha256 = excluded.source_sha256,
            downloaded_ms = excluded.downloaded_ms, attempts = 0,
            last_error = NULL, failed_ms = NULL, planned_path = NULL",
    )
    .and_then(|mut s| {
        s.execute(params![
            root,
            version,
            rel_path,
            size,
            &sha256[..],
            source_sha256.map(|d| &d[..]),
            now
        ])
    })
    .ctx("recording a download")?;
    Ok(())
}

/// Records a failed attempt of `version` in `root` that was to write `planned_path` (when
/// known); returns the attempt count.
pub(super) fn record_failure(
    tx: &Connection,
    (root, version): (RootId, VersionKey),
    error: &str,
    planned_path: Option<&str>,
    now: i64,
) -> Result<i64> {
    tx.prepare_cached(UPSERT_FAILED)
        .and_then(|mut s| {
            s.query_row(params![root, version, error, now, planned_path], |r| {
                r.get(0)
            })
        })
        .ctx("recording downloads")
}

/// Records a failed attempt (the count goes up by one) and returns the attempt count.
/// Parameters: root, version, error, now (ms), the path the attempt was to write (or NULL).
pub(super) const UPSERT_FAILED: &str =
    "INSERT INTO downloads (root_id, version_key, state, attempts, last_error, failed_ms,
                            planned_path)
     VALUES (?1, ?2, 'failed', 1, ?3, ?4, ?5)
     ON CONFLICT (root_id, version_key) DO UPDATE SET
        state = 'failed', attempts = attempts + 1, last_error = excluded.last_error,
        failed_ms = excluded.failed_ms, planned_path = excluded.planned_path,
        -- A failed re-download of a file recorded as downloaded forgets its digest (it may be
        -- damaged); a pending or failed row keeps the digest of its older copy (an edit,
        -- reset-state) so that copy can still be recognised as ours.
        size = CASE WHEN state = 'downloaded' THEN NULL ELSE size END,
        sha256 = CASE WHEN state = 'downloaded' THEN NULL ELSE sha256 END,
        source_sha256 = CASE WHEN state = 'downloaded' THEN NULL ELSE source_sha256 END,
        downloaded_ms = CASE WHEN state = 'downloaded' THEN NULL ELSE downloaded_ms END
     RETURNING attempts";

/// Columns read by [`state_from_row`], starting at the given offset.
pub(super) const STATE_COLUMNS: &str =
    "d.state, d.rel_path, d.size, d.sha256, d.downloaded_ms, d.attempts, d.last_error, d.failed_ms";

pub(super) fn state_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<DownloadState> {
    let state: String = r.get(at)?;
    let rel_path: Option<String> = r.get(at + 1)?;
    Ok(match state.as_str() {
        "pending" => DownloadState::Pending {
            previous_path: rel_path,
        },
        "downloaded" => {
            let digest: Vec<u8> = r.get(at + 3)?;
            let sha256: [u8; 32] = digest
                .try_into()
                .map_err(|_| super::bad_value(at + 3, "sha256", "not 32 bytes"))?;
            DownloadState::Downloaded {
                rel_path: rel_path.unwrap_or_default(),
                size: to_u64(r.get::<_, Option<i64>>(at + 2)?.unwrap_or(0)),
                sha256,
                at_ms: r.get::<_, Option<i64>>(at + 4)?.unwrap_or(0),
            }
        }
        "failed" => DownloadState::Failed {
            attempts: u32::try_from(r.get::<_, i64>(at + 5)?).unwrap_or(u32::MAX),
            last_error: r.get::<_, Option<String>>(at + 6)?.unwrap_or_default(),
            at_ms: r.get::<_, Option<i64>>(at + 7)?.unwrap_or(0),
            previous_path: rel_path,
        },
        other => return Err(super::bad_value(at, "download state", other)),
    })
}

impl Catalog {
    /// Registers an absolute directory as a download root (idempotent) and returns its id.
    pub fn register_root(&mut self, path: &Path) -> Result<RootId> {
        let path = normalize_root(path)?;
        let tx = self.write_tx("registering a download root")?;
        let id = tx
            .query_row(
                "INSERT INTO download_roots (path, created_ms) VALUES (?1, ?2)
                 ON CONFLICT (path) DO UPDATE SET path = excluded.path
                 RETURNING root_id",
                params![path.as_os_str().as_bytes(), now_ms()],
                |r| r.get(0),
            )
            .ctx("registering a download root")?;
        tx.commit().ctx("registering a download root")?;
        Ok(id)
    }

    /// The id of a registered root, if `path` is one.
    pub fn root_id(&self, path: &Path) -> Result<Option<RootId>> {
        let path = normalize_root(path)?;
        self.conn
            .prepare_cached("SELECT root_id FROM download_roots WHERE path = ?1")
            .and_then(|mut s| {
                s.query_row([path.as_os_str().as_bytes()], |r| r.get(0))
                    .optional()
            })
            .ctx("finding a download root")
    }

    /// Every registered root.
    pub fn roots(&self) -> Result<Vec<DownloadRoot>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT root_id, path FROM download_roots ORDER BY root_id")
            .ctx("listing download roots")?;
        let rows = stmt
            .query_map([], |r| {
                let bytes: Vec<u8> = r.get(1)?;
                Ok(DownloadRoot {
                    id: r.get(0)?,
                    path: PathBuf::from(OsStr::from_bytes(&bytes)),
                })
            })
            .ctx("listing download roots")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing download roots")?;
        Ok(rows)
    }

    /// Registers versions the sync engine plans to have in `root`: each one without state there
    /// becomes pending (downloaded and failed ones are left as they are). Returns how many
    /// became pending.
    pub fn mark_pending(&mut self, root: RootId, versions: &[VersionKey]) -> Result<u64> {
        let tx = self.write_tx("planning downloads")?;
        require_root(&tx, root)?;
        let mut added = 0;
        for &version in versions {
            require_version(&tx, version)?;
            added += tx
                .prepare_cached(
                    "INSERT INTO downloads (root_id, version_key, state) VALUES (?1, ?2, 'pending')
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![root, version]))
                .ctx("planning downloads")? as u64;
        }
        tx.commit().ctx("planning downloads")?;
        Ok(added)
    }

    /// Records that `version` is now on disk at `rel_path` under `root`.
    pub fn mark_downloaded(
        &mut self,
        version: VersionKey,
        root: RootId,
        rel_path: &str,
        size: u64,
        sha256: &[u8; 32],
    ) -> Result<()> {
        check_rel_path(rel_path)?;
        let tx = self.write_tx("recording a download")?;
        require_root(&tx, root)?;
        require_version(&tx, version)?;
        upsert_downloaded(&tx, (root, version), rel_path, size, sha256, None, now_ms())?;
        tx.commit().ctx("recording a download")
    }

    /// Records a failed attempt to download `version` into `root`; returns the attempt count.
    pub fn mark_failed(&mut self, version: VersionKey, root: RootId, error: &str) -> Result<u32> {
        let tx = self.write_tx("recording a failed download")?;
        require_root(&tx, root)?;
        require_version(&tx, version)?;
        let attempts = record_failure(&tx, (root, version), error, None, now_ms())?;
        tx.commit().ctx("recording a failed download")?;
        Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
    }

    /// Forgets the state of `version` in `root` (its local file was removed on purpose).
    pub fn forget_download(&mut self, version: VersionKey, root: RootId) -> Result<bool> {
        let tx = self.write_tx("forgetting a download")?;
        let n = tx
            .execute(
                "DELETE FROM downloads WHERE root_id = ?1 AND version_key = ?2",
                params![root, version],
            )
            .ctx("forgetting a download")?;
        tx.commit().ctx("forgetting a download")?;
        Ok(n > 0)
    }

    /// Puts every known version of one root (or of all roots) back to pending, so the next sync
    /// checks each file again. What was recorded of a downloaded file (path, size, SHA-256, as
    /// a [`PreviousCopy`](super::PreviousCopy) that still holds the current content) is kept:
    /// the sync keeps a file whose bytes still match without downloading it, and never takes
    /// one that changed for a download. Returns how many states changed.
    pub fn reset_downloads(&mut self, root: Option<RootId>) -> Result<u64> {
        let tx = self.write_tx("resetting downloads")?;
        if let Some(root) = root {
            require_root(&tx, root)?;
        }
        let n = tx
            .execute(
                "UPDATE downloads SET state = 'pending', attempts = 0, last_error = NULL,
                    failed_ms = NULL
                 WHERE (?1 IS NULL OR root_id = ?1) AND state <> 'pending'",
                [root],
            )
            .ctx("resetting downloads")?;
        tx.commit().ctx("resetting downloads")?;
        Ok(n as u64)
    }

    /// The state of `version` in `root`; `None` when it was never planned there.
    pub fn download_state(
        &self,
        version: VersionKey,
        root: RootId,
    ) -> Result<Option<DownloadState>> {
        let sql = format!(
            "SELECT {STATE_COLUMNS} FROM downloads d WHERE d.root_id = ?1 AND d.version_key = ?2"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(params![root, version], |r| state_from_row(r, 0))
                    .optional()
            })
            .ctx("reading a download state")
    }

    /// Every version of `root` in the given state, in version-key order, streamed page by page
    /// (e.g. downloaded ones for `verify`, failed ones for a retry report).
    pub fn downloads(&self, root: RootId, state: DownloadStateKind) -> Paged<'_, DownloadRecord> {
        let mut after = VersionKey(i64::MIN);
        Paged::new(
            self,
            Box::new(move |catalog: &Catalog| {
                let page = download_page(catalog, root, state, after)?;
                if let Some(last) = page.last() {
                    after = last.version;
                }
                Ok(page)
            }),
        )
    }
}

fn download_page(
    catalog: &Catalog,
    root: RootId,
    state: DownloadStateKind,
    after: VersionKey,
) -> Result<Vec<DownloadRecord>> {
    let sql = format!(
        "SELECT d.version_key, v.asset_key, v.kind, a.gone_ms IS NOT NULL, {STATE_COLUMNS},
                d.planned_path
         FROM downloads d JOIN versions v USING (version_key) JOIN assets a USING (asset_key)
         WHERE d.root_id = ?1 AND d.state = ?2 AND d.version_key > ?3
         ORDER BY d.version_key LIMIT ?4"
    );
    let mut stmt = catalog.conn.prepare_cached(&sql).ctx("listing downloads")?;
    let rows = stmt
        .query_map(
            params![root, state.as_str(), after, ITER_PAGE as i64],
            |r| {
                let kind: String = r.get(2)?;
                Ok(DownloadRecord {
                    version: r.get(0)?,
                    asset: r.get(1)?,
                    kind: VersionKind::parse(&kind)
                        .ok_or_else(|| super::bad_value(2, "version kind", &kind))?,
                    asset_gone: r.get(3)?,
                    state: state_from_row(r, 4)?,
                    planned_path: r.get(12)?,
                })
            },
        )
        .ctx("listing downloads")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx("listing downloads")?;
    Ok(rows)
}

/// Sends a version whose content changed back to pending in every root (inside an upsert).
/// The older copy's path, size and SHA-256 stay (a [`PreviousCopy`] of older content), so the
/// sync can tell whether the file on disk is still the one it wrote before replacing it.
pub(super) fn reset_version(tx: &Connection, version: VersionKey) -> Result<()> {
    tx.prepare_cached(
        "UPDATE downloads SET state = 'pending', source_sha256 = NULL, downloaded_ms = NULL,
            attempts = 0, last_error = NULL, failed_ms = NULL
         WHERE version_key = ?1",
    )
    .and_then(|mut s| s.execute([version]))
    .ctx("resetting an edited version")?;
    Ok(())
}

pub(super) fn require_root(tx: &Connection, root: RootId) -> Result<()> {
    let found: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM download_roots WHERE root_id = ?1")
        .and_then(|mut s| s.query_row([root], |r| r.get(0)).optional())
        .ctx("checking a download root")?;
    found.map(|_| ()).ok_or(CatalogError::UnknownRoot(root))
}

fn require_version(tx: &Connection, version: VersionKey) -> Result<()> {
    let found: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM versions WHERE version_key = ?1")
        .and_then(|mut s| s.query_row([version], |r| r.get(0)).optional())
        .ctx("checking a version")?;
    found
        .map(|_| ())
        .ok_or(CatalogError::UnknownVersion(version))
}

/// An absolute root without `.` components or trailing slash; `..` is refused because resolving
/// it lexically can name another directory when symlinks are involved.
fn normalize_root(path: &Path) -> Result<PathBuf> {
    let bad = |reason: &'static str| CatalogError::BadRoot {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("contains `..`")),
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

/// A path relative to its root that stays inside it.
pub(super) fn check_rel_path(rel: &str) -> Result<()> {
    let path = Path::new(rel);
    let inside = !rel.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(())
    } else {
        Err(CatalogError::BadLocalPath {
            path: rel.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{check_rel_path, normalize_root};

    #[test]
    fn roots_are_normalised_lexically() {
        assert_eq!(
            normalize_root(Path::new("/srv/./photos/")).unwrap(),
            PathBuf::from("/srv/photos")
        );
        assert!(normalize_root(Path::new("photos")).is_err());
        assert!(normalize_root(Path::new("/srv/../etc")).is_err());
    }

    #[test]
    fn local_paths_stay_inside_their_root() {
        for ok in [
            "a.JPG",
            "2019/01/02/IMG_0001.HEIC",
            "./a/b",
            "Albums/Jörg/x.MOV",
        ] {
            assert!(check_rel_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/abs", "..", "a/../b", "a/.."] {
            assert!(check_rel_path(bad).is_err(), "{bad}");
        }
    }
}
