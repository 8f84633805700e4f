//! The `status` summary: one struct that serialises as the `status --json` document.

use std::path::PathBuf;

use serde::Serialize;

use super::error::{CatalogError, Result, SqlContext};
use super::libraries::LibraryRecord;
use super::lock::lock_path;
use super::queries::{AssetFilter, SmartFolder};
use super::runs::RunRecord;
use super::sync_runs::SyncRunRecord;
use super::{Catalog, RootId, serialize_ms, to_u64};

/// What the catalog holds and how far downloads into one root (or all roots) have got.
///
/// Counts of assets and versions cover assets still in iCloud (hidden and recently deleted
/// ones included). `downloaded` counts files recorded on disk, including files of assets that
/// have since left iCloud; `pending` and `failed` count only versions of assets still in iCloud
/// (the others can no longer be fetched).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub catalog: PathBuf,
    /// The download root the download counts are for; `null` = summed over every root.
    pub root: Option<PathBuf>,
    pub assets: u64,
    pub versions: u64,
    /// Total size of those versions.
    pub bytes: u64,
    pub downloaded: u64,
    pub downloaded_bytes: u64,
    pub pending: u64,
    pub failed: u64,
    /// Albums and folders, deleted ones excluded.
    pub albums: u64,
    /// The most recent completed refresh of any library.
    #[serde(serialize_with = "serialize_ms")]
    pub last_refresh: Option<i64>,
    /// "pid 1234 (icloudpd-rs)" while a writer holds the catalog.
    pub writer: Option<String>,
    pub libraries: Vec<LibraryStatus>,
    pub last_run: Option<RunRecord>,
    /// Refresh runs (listings) a process left unfinished.
    pub interrupted_runs: Vec<RunRecord>,
    /// The last sync (or mount mirror) run into each download folder (into `root` only, when
    /// given), by folder: whether it completed, and how far it got. `pending` cannot say what
    /// an interrupted sync left to do (download state exists only for files attempted).
    pub last_syncs: Vec<SyncRunRecord>,
    /// Records iCloud sent that could not become files, with why (see
    /// [`Catalog::unusable_records`]).
    pub unusable_records: Vec<crate::model::Skipped>,
}

/// Per-library part of [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct LibraryStatus {
    #[serde(flatten)]
    pub record: LibraryRecord,
    /// Assets in All Photos.
    pub assets: u64,
    pub hidden: u64,
    pub recently_deleted: u64,
    pub albums: u64,
    pub has_zone_token: bool,
}

impl Catalog {
    /// The summary for one download root, or for all roots with `None`.
    pub fn status(&self, root: Option<RootId>) -> Result<Status> {
        let root_path = match root {
            Some(id) => Some(
                self.roots()?
                    .into_iter()
                    .find(|r| r.id == id)
                    .ok_or(CatalogError::UnknownRoot(id))?
                    .path,
            ),
            None => None,
        };

        let (assets, versions, bytes): (i64, i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT (SELECT count(*) FROM assets WHERE gone_ms IS NULL),
                        count(v.version_key), coalesce(sum(v.size), 0)
                 FROM versions v JOIN assets a USING (asset_key) WHERE a.gone_ms IS NULL",
            )
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
            .ctx("counting assets")?;

        let (downloaded, downloaded_bytes, pending, failed): (i64, i64, i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(d.state = 'downloaded'), 0),
                        coalesce(sum(CASE WHEN d.state = 'downloaded' THEN d.size END), 0),
                        coalesce(sum(d.state = 'pending' AND a.gone_ms IS NULL), 0),
                        coalesce(sum(d.state = 'failed' AND a.gone_ms IS NULL), 0)
                 FROM downloads d JOIN versions v USING (version_key)
                 JOIN assets a USING (asset_key)
                 WHERE ?1 IS NULL OR d.root_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([root], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            })
            .ctx("counting downloads")?;

        let albums: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM albums WHERE deleted = 0")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .ctx("counting albums")?;

        let mut libraries = Vec::new();
        for record in self.libraries()? {
            let id = record.id;
            let live_albums: i64 = self
                .conn
                .prepare_cached("SELECT count(*) FROM albums WHERE library_id = ?1 AND deleted = 0")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)))
                .ctx("counting albums")?;
            libraries.push(LibraryStatus {
                assets: self.count_assets(id, AssetFilter::AllPhotos)?,
                hidden: self.count_assets(id, AssetFilter::Smart(SmartFolder::Hidden))?,
                recently_deleted: self
                    .count_assets(id, AssetFilter::Smart(SmartFolder::RecentlyDeleted))?,
                albums: to_u64(live_albums),
                has_zone_token: record.zone_token.is_some(),
                record,
            });
        }
        let last_refresh = libraries
            .iter()
            .filter_map(|l| l.record.last_refresh_ms)
            .max();

        let writer = if self.is_writer() {
            Some(format!("pid {} (this process)", std::process::id()))
        } else {
            crate::lock_file::holder(&lock_path(&self.path))
        };

        Ok(Status {
            catalog: self.path.clone(),
            root: root_path,
            assets: to_u64(assets),
            versions: to_u64(versions),
            bytes: to_u64(bytes),
            downloaded: to_u64(downloaded),
            downloaded_bytes: to_u64(downloaded_bytes),
            pending: to_u64(pending),
            failed: to_u64(failed),
            albums: to_u64(albums),
            last_refresh,
            writer,
            libraries,
            last_run: self.recent_runs(None, 1)?.into_iter().next(),
            interrupted_runs: self.interrupted_runs()?,
            last_syncs: self.last_sync_runs(root)?,
            unusable_records: self.unusable_records()?,
        })
    }
}
