//! Read-side queries for the views: assets of a library, of an album or of a smart folder,
//! streamed in a stable order; counts; sizes; lookups by key.
//!
//! Order: every listing is ordered by (`added_date_ms`, record id), the order in which the
//! layout resolves name collisions, so a consumer that streams assets sees them in the order
//! that decides who keeps a contested name, and an asset added later always sorts last.
//!
//! Membership rules (the protocol notes leave them open; these follow what the simulator and
//! rclone predict): every view excludes assets gone from iCloud; All Photos, albums and the
//! smart folders other than Hidden and Recently Deleted exclude hidden and deleted assets;
//! Hidden holds hidden assets not deleted; Recently Deleted holds deleted ones.

use rusqlite::types::ToSql;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::error::{CatalogError, Result, SqlContext};
use super::{AlbumKey, AssetKey, Catalog, LibraryId, RunId, VersionKey, bad_value, to_u64};
use crate::model::{Asset, ItemKind, Location, Version, VersionKind};

/// Rows fetched per page by the streaming iterators: memory stays flat whatever the library.
pub(super) const ITER_PAGE: usize = 256;
/// Keys per `IN (...)` list of the batch lookups (well under SQLite's parameter limit).
pub(super) const KEY_BATCH: usize = 500;

/// Lengths of `IN (...)` lists: a batch is padded up to the next one with a key that matches
/// nothing, so a few cached statements serve batches of every size.
const IN_LIST_LENGTHS: [usize; 4] = [8, 64, 256, KEY_BATCH];

/// The placeholders of an `IN (...)` list for `keys` (at most [`KEY_BATCH`]), and the keys
/// padded to that length.
pub(super) fn in_list(keys: impl ExactSizeIterator<Item = i64>) -> (String, Vec<i64>) {
    let n = keys.len();
    let len = IN_LIST_LENGTHS.into_iter().find(|&l| l >= n).unwrap_or(n);
    let mut padded: Vec<i64> = keys.collect();
    padded.resize(len, i64::MIN);
    (vec!["?"; len].join(","), padded)
}

/// The smart folders of the mount, computed from stored flags and kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmartFolder {
    /// `favorite`.
    Favorites,
    /// Plain movies (`kind` movie, `subtype` 0; slo-mo and time-lapse have their own).
    Videos,
    /// Images with a motion version.
    LivePhotos,
    /// `subtype_v2` 3.
    Screenshots,
    /// A non-empty `burst_id`.
    Bursts,
    /// `subtype` 1.
    Panoramas,
    /// `subtype` 100.
    SloMo,
    /// `subtype` 101.
    TimeLapse,
    /// Hidden and not deleted.
    Hidden,
    /// In Recently Deleted.
    RecentlyDeleted,
}

impl SmartFolder {
    /// The name `list albums` prints: the mount's folder name (`--album` takes it, and
    /// icloudpd's names, e.g. "Live").
    pub fn album_name(self) -> &'static str {
        match self {
            SmartFolder::Favorites => "Favorites",
            SmartFolder::Videos => "Videos",
            SmartFolder::LivePhotos => "Live Photos",
            SmartFolder::Screenshots => "Screenshots",
            SmartFolder::Bursts => "Bursts",
            SmartFolder::Panoramas => "Panoramas",
            SmartFolder::SloMo => "Slo-mo",
            SmartFolder::TimeLapse => "Time-lapse",
            SmartFolder::Hidden => "Hidden",
            SmartFolder::RecentlyDeleted => "Recently Deleted",
        }
    }

    /// Every smart folder, in display order.
    pub const ALL: [SmartFolder; 10] = [
        SmartFolder::Favorites,
        SmartFolder::Videos,
        SmartFolder::LivePhotos,
        SmartFolder::Screenshots,
        SmartFolder::Bursts,
        SmartFolder::Panoramas,
        SmartFolder::SloMo,
        SmartFolder::TimeLapse,
        SmartFolder::Hidden,
        SmartFolder::RecentlyDeleted,
    ];

    /// SQL condition on the `assets` row aliased `a`.
    fn predicate(self) -> &'static str {
        match self {
            SmartFolder::Favorites => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.favorite = 1"
            }
            SmartFolder::Videos => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.kind = 'movie' AND a.subtype = 0"
            }
            SmartFolder::LivePhotos => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.live = 1"
            }
            SmartFolder::Screenshots => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.subtype_v2 = 3"
            }
            SmartFolder::Bursts => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.burst_id <> ''"
            }
            SmartFolder::Panoramas => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.subtype = 1"
            }
            SmartFolder::SloMo => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.subtype = 100"
            }
            SmartFolder::TimeLapse => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND a.subtype = 101"
            }
            SmartFolder::Hidden => "a.gone_ms IS NULL AND a.hidden = 1 AND a.deleted = 0",
            SmartFolder::RecentlyDeleted => "a.gone_ms IS NULL AND a.deleted = 1",
        }
    }
}

/// Which assets of a library a query covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetFilter {
    /// Every asset still in iCloud, hidden and deleted ones included.
    InICloud,
    /// All Photos: in iCloud, not hidden, not deleted (what `sync` downloads).
    AllPhotos,
    /// A smart folder.
    Smart(SmartFolder),
    /// Members of a user album that are in All Photos.
    Album(AlbumKey),
}

impl AssetFilter {
    fn predicate(self) -> &'static str {
        const VISIBLE: &str = "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0";
        match self {
            AssetFilter::InICloud => "a.gone_ms IS NULL",
            AssetFilter::AllPhotos => VISIBLE,
            AssetFilter::Smart(folder) => folder.predicate(),
            AssetFilter::Album(_) => {
                "a.gone_ms IS NULL AND a.hidden = 0 AND a.deleted = 0 AND EXISTS (
                    SELECT 1 FROM album_members m JOIN albums al
                      ON al.library_id = m.library_id AND al.record_id = m.album_id
                    WHERE al.album_key = ?9 AND m.library_id = a.library_id
                      AND m.asset_id IN (a.record_id, a.asset_record))"
            }
        }
    }

    fn album(self) -> Option<AlbumKey> {
        match self {
            AssetFilter::Album(key) => Some(key),
            _ => None,
        }
    }
}

/// An asset as stored, with its catalog keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAsset {
    pub key: AssetKey,
    pub library: LibraryId,
    /// Every field as last stored; `versions` ordered by kind.
    pub asset: Asset,
    /// The key of each of `asset.versions`, same order.
    pub version_keys: Vec<VersionKey>,
    pub first_seen_run: Option<RunId>,
    pub last_seen_run: Option<RunId>,
    /// When the asset was found to have left iCloud.
    pub gone_ms: Option<i64>,
}

impl StoredAsset {
    /// The key of the asset's version of this kind.
    pub fn version_key(&self, kind: VersionKind) -> Option<VersionKey> {
        self.asset
            .versions
            .iter()
            .zip(&self.version_keys)
            .find(|(v, _)| v.kind == kind)
            .map(|(_, k)| *k)
    }
}

/// A version with its keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredVersion {
    pub key: VersionKey,
    pub asset: AssetKey,
    pub version: Version,
}

/// Fetches the next page of a [`Paged`] iterator (it tracks its own cursor).
pub(super) type PageFetcher<'c, T> = Box<dyn FnMut(&Catalog) -> Result<Vec<T>> + 'c>;

/// A streaming iterator over query results, fetched `ITER_PAGE` rows at a time with keyset
/// pagination (each page is a fresh query, so nothing is held open between pages).
pub struct Paged<'c, T> {
    catalog: &'c Catalog,
    next_page: PageFetcher<'c, T>,
    buffer: std::vec::IntoIter<T>,
    finished: bool,
}

/// Assets streamed by [`Catalog::assets`].
pub type AssetIter<'c> = Paged<'c, StoredAsset>;

impl<'c, T> Paged<'c, T> {
    pub(super) fn new(catalog: &'c Catalog, next_page: PageFetcher<'c, T>) -> Self {
        Paged {
            catalog,
            next_page,
            buffer: Vec::new().into_iter(),
            finished: false,
        }
    }
}

impl<T> Iterator for Paged<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if let Some(item) = self.buffer.next() {
            return Some(Ok(item));
        }
        if self.finished {
            return None;
        }
        match (self.next_page)(self.catalog) {
            Ok(page) => {
                self.finished = page.len() < ITER_PAGE;
                self.buffer = page.into_iter();
                self.buffer.next().map(Ok)
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}

const ASSET_SELECT: &str = "SELECT a.asset_key, a.library_id, l.zone, a.record_id, a.asset_record,
    a.asset_change_tag, a.filename, a.filename_problem, a.item_type, a.kind, a.asset_date_ms,
    a.added_date_ms, a.tz_offset_s, a.favorite, a.hidden, a.deleted, a.date_expunged_ms,
    a.burst_id, a.subtype, a.subtype_v2, a.orientation, a.duration, a.adjustment_type,
    a.caption, a.description, a.keywords, a.latitude, a.longitude, a.altitude,
    a.first_seen_run, a.last_seen_run, a.gone_ms, a.gps_speed, a.gps_time_ms
    FROM assets a JOIN libraries l ON l.library_id = a.library_id";

/// Decodes an [`ASSET_SELECT`] row; versions are filled in afterwards.
fn asset_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAsset> {
    let kind: String = r.get(9)?;
    let keywords: Option<String> = r.get(25)?;
    let keywords = match keywords {
        Some(text) => serde_json::from_str(&text).map_err(|_| bad_value(25, "keywords", &text))?,
        None => Vec::new(),
    };
    let latitude: Option<f64> = r.get(26)?;
    let longitude: Option<f64> = r.get(27)?;
    let gps_time_ms: Option<i64> = r.get(33)?;
    let location = latitude
        .zip(longitude)
        .map(|(latitude, longitude)| Location {
            latitude,
            longitude,
            altitude: r.get(28).ok().flatten(),
            speed: r.get(32).ok().flatten(),
            gps_time_ms,
        });
    Ok(StoredAsset {
        key: r.get(0)?,
        library: r.get(1)?,
        asset: Asset {
            zone: r.get(2)?,
            id: r.get(3)?,
            asset_record: r.get(4)?,
            asset_change_tag: r.get(5)?,
            filename: r.get(6)?,
            filename_problem: r.get(7)?,
            item_type: r.get(8)?,
            kind: ItemKind::parse(&kind).ok_or_else(|| bad_value(9, "item kind", &kind))?,
            asset_date_ms: r.get(10)?,
            added_date_ms: r.get(11)?,
            tz_offset_s: r.get(12)?,
            favorite: r.get(13)?,
            hidden: r.get(14)?,
            deleted: r.get(15)?,
            date_expunged_ms: r.get(16)?,
            burst_id: r.get(17)?,
            subtype: r.get(18)?,
            subtype_v2: r.get(19)?,
            orientation: r.get(20)?,
            duration: r.get(21)?,
            adjustment_type: r.get(22)?,
            caption: r.get(23)?,
            description: r.get(24)?,
            keywords,
            location,
            versions: Vec::new(),
        },
        version_keys: Vec::new(),
        first_seen_run: r.get(29)?,
        last_seen_run: r.get(30)?,
        gone_ms: r.get(31)?,
    })
}

impl Catalog {
    /// Streams the assets of a library that match `filter`, with their versions, in
    /// (`added_date_ms`, record id) order.
    pub fn assets(&self, library: LibraryId, filter: AssetFilter) -> AssetIter<'_> {
        self.asset_stream(library, filter, true)
    }

    /// Like [`Catalog::assets`], with `versions` and `version_keys` left empty: one query per
    /// page instead of one more per asset, for passes that need only the asset's own fields.
    pub fn assets_without_versions(
        &self,
        library: LibraryId,
        filter: AssetFilter,
    ) -> AssetIter<'_> {
        self.asset_stream(library, filter, false)
    }

    fn asset_stream(
        &self,
        library: LibraryId,
        filter: AssetFilter,
        with_versions: bool,
    ) -> AssetIter<'_> {
        let mut after: Option<(i64, String)> = None;
        Paged::new(
            self,
            Box::new(move |catalog: &Catalog| {
                let page = catalog.asset_page(library, filter, after.as_ref(), with_versions)?;
                if let Some(last) = page.last() {
                    after = Some((last.asset.added_date_ms, last.asset.id.clone()));
                }
                Ok(page)
            }),
        )
    }

    fn asset_page(
        &self,
        library: LibraryId,
        filter: AssetFilter,
        after: Option<&(i64, String)>,
        with_versions: bool,
    ) -> Result<Vec<StoredAsset>> {
        let cursor = if after.is_some() {
            "AND (a.added_date_ms, a.record_id) > (?2, ?3)"
        } else {
            ""
        };
        let sql = format!(
            "{ASSET_SELECT} WHERE a.library_id = ?1 AND {} {cursor}
             ORDER BY a.added_date_ms, a.record_id LIMIT ?4",
            filter.predicate()
        );
        let limit = ITER_PAGE as i64;
        let album = filter.album();
        let mut args: Vec<(&str, &dyn ToSql)> = vec![("?1", &library), ("?4", &limit)];
        if let Some((added, id)) = after {
            args.push(("?2", added));
            args.push(("?3", id));
        }
        if let Some(album) = album.as_ref() {
            args.push(("?9", album));
        }
        let mut stmt = self.conn.prepare_cached(&sql).ctx("listing assets")?;
        let mut page = stmt
            .query_map(args.as_slice(), asset_row)
            .ctx("listing assets")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing assets")?;
        if with_versions {
            self.fill_versions(&mut page)?;
        }
        Ok(page)
    }

    /// Load the versions of `assets` (their lists emptied first), a batch of keys per query
    /// rather than a query per asset.
    fn fill_versions(&self, assets: &mut [StoredAsset]) -> Result<()> {
        let mut at: std::collections::HashMap<AssetKey, usize> =
            std::collections::HashMap::with_capacity(assets.len());
        for (i, a) in assets.iter_mut().enumerate() {
            a.version_keys.clear();
            a.asset.versions.clear();
            at.insert(a.key, i);
        }
        let keys: Vec<i64> = assets.iter().map(|a| a.key.0).collect();
        for chunk in keys.chunks(KEY_BATCH) {
            let (marks, padded) = in_list(chunk.iter().copied());
            let sql = format!(
                "SELECT version_key, kind, size, file_type, checksum, width, height, asset_key
                 FROM versions WHERE asset_key IN ({marks})"
            );
            let mut stmt = self.conn.prepare_cached(&sql).ctx("reading versions")?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(padded.iter()), |r| {
                    let (key, version) = version_row(r)?;
                    Ok((r.get::<_, AssetKey>(7)?, key, version))
                })
                .ctx("reading versions")?;
            let mut versions: Vec<(AssetKey, VersionKey, Version)> = rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("reading versions")?;
            versions.sort_by_key(|(asset, _, v)| (*asset, v.kind));
            for (asset, key, version) in versions {
                if let Some(&i) = at.get(&asset) {
                    assets[i].version_keys.push(key);
                    assets[i].asset.versions.push(version);
                }
            }
        }
        Ok(())
    }

    /// How many assets of a library match `filter`.
    pub fn count_assets(&self, library: LibraryId, filter: AssetFilter) -> Result<u64> {
        // `+` keeps SQLite off the (library, date) index: through it, every row costs a
        // lookup in the table at random (0.9 s at 300,000 assets, mostly reads of pages);
        // reading the table in order counts the same rows in 0.07 s.
        let sql = format!(
            "SELECT count(*) FROM assets a WHERE +a.library_id = ?1 AND {}",
            filter.predicate()
        );
        let album = filter.album();
        let mut args: Vec<(&str, &dyn ToSql)> = vec![("?1", &library)];
        if let Some(album) = album.as_ref() {
            args.push(("?9", album));
        }
        let n: i64 = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(args.as_slice(), |r| r.get(0)))
            .ctx("counting assets")?;
        Ok(to_u64(n))
    }

    /// Total size in bytes of every version of the assets still in iCloud, in one library or
    /// in all (for `statfs`).
    pub fn total_bytes(&self, library: Option<LibraryId>) -> Result<u64> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(v.size), 0) FROM versions v JOIN assets a USING (asset_key)
                 WHERE a.gone_ms IS NULL AND (?1 IS NULL OR a.library_id = ?1)",
            )
            .and_then(|mut s| s.query_row([library], |r| r.get(0)))
            .ctx("summing sizes")?;
        Ok(to_u64(n))
    }

    /// One asset by key, gone or not.
    pub fn asset(&self, key: AssetKey) -> Result<Option<StoredAsset>> {
        let sql = format!("{ASSET_SELECT} WHERE a.asset_key = ?1");
        self.one_asset(&sql, params![key])
    }

    /// One asset by its CPLMaster record name, gone or not.
    pub fn asset_by_id(&self, library: LibraryId, id: &str) -> Result<Option<StoredAsset>> {
        let sql = format!("{ASSET_SELECT} WHERE a.library_id = ?1 AND a.record_id = ?2");
        self.one_asset(&sql, params![library, id])
    }

    fn one_asset(&self, sql: &str, args: &[&dyn ToSql]) -> Result<Option<StoredAsset>> {
        let found = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row(args, asset_row).optional())
            .ctx("reading an asset")?;
        match found {
            Some(mut asset) => {
                self.fill_versions(std::slice::from_mut(&mut asset))?;
                Ok(Some(asset))
            }
            None => Ok(None),
        }
    }

    /// Several assets by key, gone or not, in the order of `keys` (keys not found are left
    /// out): a few queries per batch instead of two per asset.
    pub fn assets_by_keys(&self, keys: &[AssetKey]) -> Result<Vec<StoredAsset>> {
        let mut found: Vec<StoredAsset> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEY_BATCH) {
            let (marks, padded) = in_list(chunk.iter().map(|k| k.0));
            let sql = format!("{ASSET_SELECT} WHERE a.asset_key IN ({marks})");
            let mut stmt = self.conn.prepare_cached(&sql).ctx("reading assets")?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(padded.iter()), asset_row)
                .ctx("reading assets")?;
            for row in rows {
                found.push(row.ctx("reading assets")?);
            }
        }
        self.fill_versions(&mut found)?;
        let mut found: std::collections::HashMap<AssetKey, StoredAsset> =
            found.into_iter().map(|a| (a.key, a)).collect();
        Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
    }

    /// One version by key.
    pub fn version(&self, key: VersionKey) -> Result<Option<StoredVersion>> {
        self.conn
            .prepare_cached(
                "SELECT version_key, kind, size, file_type, checksum, width, height, asset_key
                 FROM versions WHERE version_key = ?1",
            )
            .and_then(|mut s| {
                s.query_row([key], |r| {
                    let (key, version) = version_row(r)?;
                    Ok(StoredVersion {
                        key,
                        asset: r.get(7)?,
                        version,
                    })
                })
                .optional()
            })
            .ctx("reading a version")
    }

    /// A number that changes whenever another connection (the writer, for a reader) commits to
    /// the catalog: a reader such as the mount polls it to know when its views are stale.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .ctx("reading the data version")
    }

    /// Fails with [`CatalogError::UnknownLibrary`] unless the library exists.
    pub(super) fn require_library(&self, library: LibraryId) -> Result<()> {
        let found: Option<i64> = self
            .conn
            .prepare_cached("SELECT 1 FROM libraries WHERE library_id = ?1")
            .and_then(|mut s| s.query_row([library], |r| r.get(0)).optional())
            .ctx("checking a library")?;
        found
            .map(|_| ())
            .ok_or(CatalogError::UnknownLibrary(library))
    }
}

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(VersionKey, Version)> {
    let kind: String = r.get(1)?;
    let size: i64 = r.get(2)?;
    Ok((
        r.get(0)?,
        Version {
            kind: VersionKind::parse(&kind).ok_or_else(|| bad_value(1, "version kind", &kind))?,
            size: to_u64(size),
            file_type: r.get(3)?,
            checksum: r.get(4)?,
            width: r.get(5)?,
            height: r.get(6)?,
        },
    ))
}
