//! Download state in batches, for the sync engine: many results recorded in one transaction
//! (state is flushed as work completes without a commit per file), and the states of many
//! versions read with one query.

use std::collections::HashMap;

use rusqlite::params;

use super::downloads::{
    STATE_COLUMNS, check_rel_path, record_failure, require_root, state_from_row, upsert_downloaded,
};
use super::error::{Result, SqlContext};
use super::queries::{KEY_BATCH, in_list};
use super::{Catalog, DownloadState, RootId, VersionKey, now_ms};

/// One change of a version's download state in a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadUpdate {
    /// The file is complete at `rel_path` (a download, an adopted file, or a file moved to a
    /// new path: size and digest are those of the file on disk).
    Downloaded {
        version: VersionKey,
        rel_path: String,
        size: u64,
        sha256: [u8; 32],
        /// The digest of the bytes as downloaded, when the file was rewritten afterwards
        /// (`--set-exif-datetime`); `None` when the file holds the downloaded bytes.
        source_sha256: Option<[u8; 32]>,
    },
    /// An attempt failed with this error (the attempt count goes up by one), e.g. `verify`
    /// found the recorded file damaged.
    Failed { version: VersionKey, error: String },
    /// An attempt to write the file at `rel_path` (the path the run planned for it) failed:
    /// as [`DownloadUpdate::Failed`], and `status --failed` names that path.
    FailedAt {
        version: VersionKey,
        rel_path: String,
        error: String,
    },
    /// Forget the state (the local file was removed on purpose).
    Forget { version: VersionKey },
    /// The XMP sidecar of the downloaded file was written (or found up to date) from the
    /// asset whose content hash is `of` (see [`Catalog::sidecar_sources`]).
    Sidecar { version: VersionKey, of: i64 },
    /// The downloaded file is about to be renamed to `rel_path` (noted before the rename; the
    /// `Downloaded` record after it clears the note): a run killed in between leaves the file
    /// at `rel_path` with its record naming the old path, and the next run finds it there
    /// ([`Catalog::rename_targets`]).
    Renaming {
        version: VersionKey,
        rel_path: String,
    },
}

/// Set `column` of a downloaded version's row (a row in another state is left alone).
fn set_on_downloaded(
    tx: &rusqlite::Transaction<'_>,
    column: &'static str,
    (root, version): (RootId, VersionKey),
    value: &dyn rusqlite::ToSql,
) -> Result<()> {
    tx.prepare_cached(&format!(
        "UPDATE downloads SET {column} = ?3
         WHERE root_id = ?1 AND version_key = ?2 AND state = 'downloaded'"
    ))
    .and_then(|mut s| s.execute(params![root, version, value]))
    .ctx("recording downloads")?;
    Ok(())
}

/// The file a pending or failed version had on disk before, as it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousCopy {
    /// Where it was written, relative to the root.
    pub rel_path: String,
    /// Its size and SHA-256 as written (or as adopted).
    pub size: u64,
    pub sha256: [u8; 32],
    /// It holds the version's current content (the state was reset with `reset-state`);
    /// `false` when the content changed in iCloud since (the photo was edited).
    pub current: bool,
}

impl Catalog {
    /// Applies `updates` to `root` in one transaction, in order. Versions that no longer exist
    /// (the asset lost them in a refresh meanwhile) are skipped, not errors: their rows are
    /// gone with them. Returns how many updates were applied.
    pub fn apply_download_updates(
        &mut self,
        root: RootId,
        updates: &[DownloadUpdate],
    ) -> Result<usize> {
        for u in updates {
            if let DownloadUpdate::Downloaded { rel_path, .. } = u {
                check_rel_path(rel_path)?;
            }
        }
        let tx = self.write_tx("recording downloads")?;
        require_root(&tx, root)?;
        let now = now_ms();
        let mut applied = 0;
        for u in updates {
            let version = match u {
                DownloadUpdate::Downloaded { version, .. }
                | DownloadUpdate::Failed { version, .. }
                | DownloadUpdate::FailedAt { version, .. }
                | DownloadUpdate::Forget { version }
                | DownloadUpdate::Sidecar { version, .. }
                | DownloadUpdate::Renaming { version, .. } => *version,
            };
            let exists: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM versions WHERE version_key = ?1)")
                .and_then(|mut s| s.query_row([version], |r| r.get(0)))
                .ctx("recording downloads")?;
            if !exists {
                continue;
            }
            match u {
                DownloadUpdate::Downloaded {
                    rel_path,
                    size,
                    sha256,
                    source_sha256,
                    ..
                } => {
                    upsert_downloaded(
                        &tx,
                        (root, version),
                        rel_path,
                        *size,
                        sha256,
                        source_sha256.as_ref(),
                        now,
                    )?;
                }
                DownloadUpdate::Failed { error, .. } => {
                    record_failure(&tx, (root, version), error, None, now)?;
                }
                DownloadUpdate::FailedAt {
                    error, rel_path, ..
                } => {
                    record_failure(&tx, (root, version), error, Some(rel_path), now)?;
                }
                DownloadUpdate::Forget { .. } => {
                    tx.prepare_cached(
                        "DELETE FROM downloads WHERE root_id = ?1 AND version_key = ?2",
                    )
                    .and_then(|mut s| s.execute(params![root, version]))
                    .ctx("recording downloads")?;
                }
                DownloadUpdate::Sidecar { of, .. } => {
                    set_on_downloaded(&tx, "sidecar_of", (root, version), of)?;
                }
                DownloadUpdate::Renaming { rel_path, .. } => {
                    set_on_downloaded(&tx, "planned_path", (root, version), rel_path)?;
                }
            }
            applied += 1;
        }
        tx.commit().ctx("recording downloads")?;
        Ok(applied)
    }

    /// Forgets every download state of one root (or of all roots): the next sync adopts the
    /// complete files it finds at their planned paths and downloads the rest. Returns how
    /// many states were forgotten.
    pub fn forget_downloads(&mut self, root: Option<RootId>) -> Result<u64> {
        let tx = self.write_tx("forgetting download states")?;
        if let Some(root) = root {
            require_root(&tx, root)?;
        }
        let n = tx
            .execute(
                "DELETE FROM downloads WHERE ?1 IS NULL OR root_id = ?1",
                [root],
            )
            .ctx("forgetting download states")?;
        tx.commit().ctx("forgetting download states")?;
        Ok(n as u64)
    }

    /// The states of `versions` in `root` (versions never planned there are absent).
    pub fn download_states(
        &self,
        root: RootId,
        versions: &[VersionKey],
    ) -> Result<HashMap<VersionKey, DownloadState>> {
        self.by_version(
            root,
            versions,
            STATE_COLUMNS,
            "1",
            "reading download states",
            |r| Ok(Some((r.get(0)?, state_from_row(r, 1)?))),
        )
    }

    /// For the downloaded files among `versions` in `root` whose XMP sidecar was written, the
    /// content hash ([`Catalog::asset_content_hash`]) of the asset it was written from.
    pub fn sidecar_sources(
        &self,
        root: RootId,
        versions: &[VersionKey],
    ) -> Result<HashMap<VersionKey, i64>> {
        self.by_version(
            root,
            versions,
            "d.sidecar_of",
            "d.state = 'downloaded' AND d.sidecar_of IS NOT NULL",
            "reading sidecar states",
            |r| Ok(Some((r.get(0)?, r.get(1)?))),
        )
    }

    /// A digest of every field of `asset` (what an XMP sidecar is written from): equal for
    /// equal assets, different after any change.
    pub fn asset_content_hash(asset: &crate::model::Asset) -> i64 {
        super::assets::content_hash(asset)
    }

    /// The digest of the bytes as downloaded, when the file on disk was rewritten after its
    /// download (`Ok(None)` otherwise, or when the version has no state in `root`).
    pub fn download_source_digest(
        &self,
        version: VersionKey,
        root: RootId,
    ) -> Result<Option<[u8; 32]>> {
        let found: Option<Option<Vec<u8>>> = self
            .conn
            .prepare_cached(
                "SELECT source_sha256 FROM downloads WHERE root_id = ?1 AND version_key = ?2",
            )
            .and_then(|mut s| {
                use rusqlite::OptionalExtension;
                s.query_row(params![root, version], |r| r.get(0)).optional()
            })
            .ctx("reading a source digest")?;
        Ok(found.flatten().and_then(|d| <[u8; 32]>::try_from(d).ok()))
    }

    /// What is known of the older copies of `versions` in `root` (pending or failed versions
    /// whose earlier file was recorded with its digest); versions without one are absent.
    pub fn previous_copies(
        &self,
        root: RootId,
        versions: &[VersionKey],
    ) -> Result<HashMap<VersionKey, PreviousCopy>> {
        self.by_version(
            root,
            versions,
            "d.rel_path, d.size, d.sha256, d.downloaded_ms IS NOT NULL",
            "d.state <> 'downloaded' AND d.rel_path IS NOT NULL AND d.size IS NOT NULL
               AND d.sha256 IS NOT NULL",
            "reading older copies",
            |r| {
                let digest: Vec<u8> = r.get(3)?;
                let Ok(sha256) = <[u8; 32]>::try_from(digest) else {
                    return Ok(None);
                };
                let size: i64 = r.get(2)?;
                let copy = PreviousCopy {
                    rel_path: r.get(1)?,
                    size: super::to_u64(size),
                    sha256,
                    current: r.get(4)?,
                };
                Ok(Some((r.get(0)?, copy)))
            },
        )
    }

    /// Where downloaded files of `versions` were about to be renamed when their run ended
    /// (see [`DownloadUpdate::Renaming`]); versions without such a note are absent.
    pub fn rename_targets(
        &self,
        root: RootId,
        versions: &[VersionKey],
    ) -> Result<HashMap<VersionKey, String>> {
        self.by_version(
            root,
            versions,
            "d.planned_path",
            "d.state = 'downloaded' AND d.planned_path IS NOT NULL",
            "reading renames in progress",
            |r| Ok(Some((r.get(0)?, r.get(1)?))),
        )
    }

    /// `SELECT d.version_key, COLUMNS FROM downloads d` for `versions` in `root` where
    /// `FILTER` holds, in batches; `row` turns a row into its version and value (`None`:
    /// skip it).
    fn by_version<T>(
        &self,
        root: RootId,
        versions: &[VersionKey],
        columns: &str,
        filter: &str,
        what: &'static str,
        row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<Option<(VersionKey, T)>>,
    ) -> Result<HashMap<VersionKey, T>> {
        let mut out = HashMap::new();
        for chunk in versions.chunks(KEY_BATCH) {
            let (marks, mut params) = in_list(chunk.iter().map(|k| k.0));
            params.push(root.0);
            let sql = format!(
                "SELECT d.version_key, {columns} FROM downloads d
                 WHERE d.version_key IN ({marks}) AND d.root_id = ? AND ({filter})"
            );
            let mut stmt = self.conn.prepare_cached(&sql).ctx(what)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), &row)
                .ctx(what)?;
            for found in rows {
                if let Some((key, value)) = found.ctx(what)? {
                    out.insert(key, value);
                }
            }
        }
        Ok(out)
    }

    /// Every version recorded as downloaded in `root` with its relative path (for finding who
    /// owns a file found on disk). Loaded at once: callers use it only when a conflict needs it.
    pub fn downloaded_paths(&self, root: RootId) -> Result<Vec<(VersionKey, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT version_key, rel_path FROM downloads
                 WHERE root_id = ?1 AND state = 'downloaded' AND rel_path IS NOT NULL",
            )
            .ctx("listing downloaded paths")?;
        let rows = stmt
            .query_map([root], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("listing downloaded paths")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing downloaded paths")?;
        Ok(rows)
    }
}
