//! Storing assets: pages of a full enumeration, and the single-asset upsert that change batches
//! share. An upsert adds, updates or merely marks an asset seen; a version whose content changed
//! (checksum or size: an edit) goes back to pending in every download root.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, ToSql, params, params_from_iter};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::bulk::Inserts;
use super::error::{CatalogError, Result, SqlContext};
use super::runs::{ActiveRun, RunCounts, active_run, add_counts, record_skipped};
use super::{AssetKey, Catalog, RunId, VersionKey, to_i64};
use crate::model::{Asset, Location, Skipped, Version};

/// What one page (or batch) did to the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageCounts {
    /// Assets in the page.
    pub seen: u64,
    /// New assets, and assets back in iCloud after being gone.
    pub added: u64,
    /// Known assets with any field or version different from what was stored.
    pub changed: u64,
    /// Known assets stored exactly as given (only marked seen).
    pub unchanged: u64,
    /// Skipped records stored with the page.
    pub skipped: u64,
}

/// The effect of storing one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upserted {
    Added,
    Changed,
    Unchanged,
}

impl Catalog {
    /// Stores one page of a run in one transaction: inserts or updates its assets and their
    /// versions, marks them seen by the run, stores the skipped records, and adds to the run's
    /// counts. A version whose checksum or size changed (an edit) goes back to pending in every
    /// download root; a version the asset no longer has is removed with its download state.
    pub fn upsert_page<'a>(
        &mut self,
        run: RunId,
        assets: impl IntoIterator<Item = &'a Asset>,
        skipped: &[Skipped],
    ) -> Result<PageCounts> {
        let bulk = self.bulk_inserts(run);
        let tx = self.write_tx("storing a page")?;
        let counts = store_page(&tx, bulk, run, assets, skipped)?;
        tx.commit().ctx("storing a page")?;
        Ok(counts)
    }
}

/// [`Catalog::upsert_page`]'s work inside the caller's transaction.
pub(super) fn store_page<'a>(
    tx: &Connection,
    bulk: Option<Inserts>,
    run: RunId,
    assets: impl IntoIterator<Item = &'a Asset>,
    skipped: &[Skipped],
) -> Result<PageCounts> {
    let active = active_run(tx, run)?;
    let mut counts = PageCounts {
        skipped: skipped.len() as u64,
        ..PageCounts::default()
    };
    let mut inserter = bulk
        .map(|inserts| super::bulk::BulkInserter::new(tx, inserts))
        .transpose()?;
    let mut assets: Vec<&Asset> = assets.into_iter().collect();
    if bulk.is_some() {
        // In record-id order, the inserts walk the `(library_id, record_id)` index from
        // one end to the other instead of jumping between its pages (fewer pages read back
        // and rewritten per transaction). Keys then follow that order within a page, with
        // the index or without it (`Inserts::Unchecked`): the same listing gets the same keys.
        assets.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    }
    for asset in assets {
        counts.seen += 1;
        let stored = match inserter.as_mut() {
            Some(inserter) => inserter.store(&active, asset)?,
            None => upsert_asset(tx, &active, asset)?,
        };
        match stored {
            Upserted::Added => counts.added += 1,
            Upserted::Changed => counts.changed += 1,
            Upserted::Unchanged => counts.unchanged += 1,
        }
    }
    inserter
        .map(super::bulk::BulkInserter::finish)
        .transpose()?;
    record_skipped(tx, run, skipped)?;
    add_counts(
        tx,
        run,
        RunCounts {
            seen: counts.seen,
            added: counts.added,
            changed: counts.changed,
            removed: 0,
            skipped: counts.skipped,
        },
    )?;
    Ok(counts)
}

/// A fingerprint of everything an [`Asset`] carries, so an unchanged asset costs one read and
/// one "seen" update. Never 0 (0 marks rows whose fingerprint is unknown, e.g. after a flag
/// change or a migration).
///
/// SHA-256 over a compact encoding of every field (each one tagged, strings length-prefixed),
/// written straight from the struct: serialising the asset as JSON first cost most of the
/// hash's time in a first listing. The struct is destructured in full, so a new field of
/// [`Asset`] does not compile until it is hashed. Catalogs written before this encoding hold
/// other values: their assets are rewritten once (same content) by the next full listing.
pub(super) fn content_hash(asset: &Asset) -> i64 {
    let Asset {
        id,
        asset_record,
        asset_change_tag,
        zone,
        filename,
        filename_problem,
        item_type,
        kind,
        asset_date_ms,
        added_date_ms,
        tz_offset_s,
        favorite,
        hidden,
        deleted,
        date_expunged_ms,
        burst_id,
        subtype,
        subtype_v2,
        orientation,
        duration,
        adjustment_type,
        caption,
        description,
        keywords,
        location,
        versions,
    } = asset;
    let mut h = Fingerprint(Vec::with_capacity(1024));
    h.text(id);
    h.text(asset_record);
    h.opt_text(asset_change_tag.as_deref());
    h.text(zone);
    h.opt_text(filename.as_deref());
    h.opt_text(filename_problem.as_deref());
    h.opt_text(item_type.as_deref());
    h.text(kind.as_str());
    h.int(*asset_date_ms);
    h.int(*added_date_ms);
    h.opt_int(tz_offset_s.map(i64::from));
    h.int(i64::from(*favorite) | i64::from(*hidden) << 1 | i64::from(*deleted) << 2);
    h.opt_int(*date_expunged_ms);
    h.opt_text(burst_id.as_deref());
    h.int(*subtype);
    h.int(*subtype_v2);
    h.opt_int(orientation.map(i64::from));
    h.opt_int(*duration);
    h.opt_text(adjustment_type.as_deref());
    h.opt_text(caption.as_deref());
    h.opt_text(description.as_deref());
    h.int(keywords.len() as i64);
    for k in keywords {
        h.text(k);
    }
    match location {
        None => h.tag(0),
        Some(Location {
            latitude,
            longitude,
            altitude,
            speed,
            gps_time_ms,
        }) => {
            // Tag 2 since schema v6 added speed and time: every located asset stored before
            // hashes differently, so the next listing rewrites it with them.
            h.tag(2);
            h.int(latitude.to_bits() as i64);
            h.int(longitude.to_bits() as i64);
            h.opt_int(altitude.map(|a| a.to_bits() as i64));
            h.opt_int(speed.map(|s| s.to_bits() as i64));
            h.opt_int(*gps_time_ms);
        }
    }
    h.int(versions.len() as i64);
    for Version {
        kind,
        size,
        file_type,
        checksum,
        width,
        height,
    } in versions
    {
        h.text(kind.as_str());
        h.int(*size as i64);
        h.text(file_type);
        h.text(checksum);
        h.opt_int(width.map(i64::from));
        h.opt_int(height.map(i64::from));
    }
    let digest = Sha256::digest(&h.0);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    match i64::from_le_bytes(first) {
        0 => 1,
        h => h,
    }
}

/// The encoding [`content_hash`] digests: a tag byte before every value (0 absent, 1 present),
/// strings with their length first, so no two different assets encode alike. Built in one
/// buffer and digested at once (many small digest updates cost more than the hashing).
struct Fingerprint(Vec<u8>);

impl Fingerprint {
    fn tag(&mut self, t: u8) {
        self.0.push(t);
    }

    fn int(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn text(&mut self, s: &str) {
        self.int(s.len() as i64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            None => self.tag(0),
            Some(s) => {
                self.tag(1);
                self.text(s);
            }
        }
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            None => self.tag(0),
            Some(v) => {
                self.tag(1);
                self.int(v);
            }
        }
    }
}

/// Inserts or updates one asset of the run's library and marks it seen by the run.
pub(super) fn upsert_asset(tx: &Connection, run: &ActiveRun, asset: &Asset) -> Result<Upserted> {
    if asset.zone != run.zone {
        return Err(CatalogError::ZoneMismatch {
            record: asset.id.clone(),
            expected: run.zone.clone(),
            found: asset.zone.clone(),
        });
    }
    let hash = content_hash(asset);
    let existing: Option<(AssetKey, i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT asset_key, content_hash, gone_ms FROM assets
             WHERE library_id = ?1 AND record_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![run.library, asset.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .ctx("looking up an asset")?;

    match existing {
        Some((key, stored_hash, None)) if stored_hash == hash => {
            tx.prepare_cached("UPDATE assets SET last_seen_run = ?2 WHERE asset_key = ?1")
                .and_then(|mut s| s.execute(params![key, run.run]))
                .ctx("marking an asset seen")?;
            Ok(Upserted::Unchanged)
        }
        Some((key, _, gone)) => {
            update_asset(tx, key, asset, hash, run.run)?;
            sync_versions(tx, key, asset)?;
            Ok(if gone.is_some() {
                Upserted::Added
            } else {
                Upserted::Changed
            })
        }
        None => {
            let key = insert_asset(tx, run, asset, hash)?;
            for version in unique_versions(asset) {
                insert_version(tx, key, version)?;
            }
            Ok(Upserted::Added)
        }
    }
}

/// The asset's versions, first of each kind (a well-formed asset has one per kind).
pub(super) fn unique_versions(asset: &Asset) -> impl Iterator<Item = &Version> {
    let mut seen = Vec::with_capacity(asset.versions.len());
    asset.versions.iter().filter(move |v| {
        if seen.contains(&v.kind) {
            tracing::warn!(asset = %asset.id, kind = v.kind.as_str(), "duplicate version kind ignored");
            false
        } else {
            seen.push(v.kind);
            true
        }
    })
}

/// Column values of an asset, in the order of the INSERT/UPDATE statements below.
pub(super) struct AssetColumns<'a> {
    keywords: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    altitude: Option<f64>,
    gps_speed: Option<f64>,
    gps_time_ms: Option<i64>,
    kind: &'static str,
    live: bool,
    asset: &'a Asset,
}

impl<'a> AssetColumns<'a> {
    pub(super) fn new(asset: &'a Asset) -> Self {
        let keywords = (!asset.keywords.is_empty())
            .then(|| serde_json::to_string(&asset.keywords).unwrap_or_default());
        AssetColumns {
            keywords,
            latitude: asset.location.map(|l| l.latitude),
            longitude: asset.location.map(|l| l.longitude),
            altitude: asset.location.and_then(|l| l.altitude),
            gps_speed: asset.location.and_then(|l| l.speed),
            gps_time_ms: asset.location.and_then(|l| l.gps_time_ms),
            kind: asset.kind.as_str(),
            live: asset.is_live(),
            asset,
        }
    }

    /// The values both statements write, `asset_record` to `live`, in their column order.
    pub(super) fn values(&self) -> [&dyn ToSql; 28] {
        let a = self.asset;
        [
            &a.asset_record,
            &a.asset_change_tag,
            &a.filename,
            &a.filename_problem,
            &a.item_type,
            &self.kind,
            &a.asset_date_ms,
            &a.added_date_ms,
            &a.tz_offset_s,
            &a.favorite,
            &a.hidden,
            &a.deleted,
            &a.date_expunged_ms,
            &a.burst_id,
            &a.subtype,
            &a.subtype_v2,
            &a.orientation,
            &a.duration,
            &a.adjustment_type,
            &a.caption,
            &a.description,
            &self.keywords,
            &self.latitude,
            &self.longitude,
            &self.altitude,
            &self.gps_speed,
            &self.gps_time_ms,
            &self.live,
        ]
    }
}

fn insert_asset(tx: &Connection, run: &ActiveRun, asset: &Asset, hash: i64) -> Result<AssetKey> {
    let c = AssetColumns::new(asset);
    tx.prepare_cached(INSERT_ASSET)
        .and_then(|mut s| {
            let values = [&run.library as &dyn ToSql, &asset.id]
                .into_iter()
                .chain(c.values())
                .chain([&hash as &dyn ToSql, &run.run]);
            s.query_row(params_from_iter(values), |r| r.get(0))
        })
        .ctx("inserting an asset")
}

/// The INSERT of an asset row, `$tail` after its VALUES.
macro_rules! insert_asset_sql {
    ($tail:literal) => {
        concat!(
            "INSERT INTO assets (
                library_id, record_id, asset_record, asset_change_tag, filename,
                filename_problem, item_type, kind, asset_date_ms, added_date_ms, tz_offset_s,
                favorite, hidden, deleted, date_expunged_ms, burst_id, subtype, subtype_v2,
                orientation, duration, adjustment_type, caption, description, keywords,
                latitude, longitude, altitude, gps_speed, gps_time_ms, live, content_hash,
                first_seen_run, last_seen_run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32,
                     ?32) ",
            $tail
        )
    };
}

const INSERT_ASSET: &str = insert_asset_sql!("RETURNING asset_key");
/// Without `RETURNING` (which makes SQLite buffer the returned rows): the key is the
/// connection's last inserted rowid when the statement inserted a row.
pub(super) const INSERT_ASSET_IF_NEW: &str =
    insert_asset_sql!("ON CONFLICT (library_id, record_id) DO NOTHING");
/// The same without the conflict clause, for a load that dropped the record-id index.
pub(super) const INSERT_NEW_ASSET: &str = insert_asset_sql!("");

fn update_asset(
    tx: &Connection,
    key: AssetKey,
    asset: &Asset,
    hash: i64,
    run: RunId,
) -> Result<()> {
    let c = AssetColumns::new(asset);
    tx.prepare_cached(
        "UPDATE assets SET
            asset_record = ?2, asset_change_tag = ?3, filename = ?4, filename_problem = ?5,
            item_type = ?6, kind = ?7, asset_date_ms = ?8, added_date_ms = ?9, tz_offset_s = ?10,
            favorite = ?11, hidden = ?12, deleted = ?13, date_expunged_ms = ?14, burst_id = ?15,
            subtype = ?16, subtype_v2 = ?17, orientation = ?18, duration = ?19,
            adjustment_type = ?20, caption = ?21, description = ?22, keywords = ?23,
            latitude = ?24, longitude = ?25, altitude = ?26, gps_speed = ?27, gps_time_ms = ?28,
            live = ?29, content_hash = ?30, last_seen_run = ?31, gone_ms = NULL
         WHERE asset_key = ?1",
    )
    .and_then(|mut s| {
        let values = [&key as &dyn ToSql]
            .into_iter()
            .chain(c.values())
            .chain([&hash as &dyn ToSql, &run]);
        s.execute(params_from_iter(values))
    })
    .ctx("updating an asset")?;
    Ok(())
}

fn insert_version(tx: &Connection, asset: AssetKey, v: &Version) -> Result<VersionKey> {
    let size = to_i64("version size", v.size)?;
    tx.prepare_cached(
        "INSERT INTO versions (asset_key, kind, size, file_type, checksum, width, height)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING version_key",
    )
    .and_then(|mut s| {
        s.query_row(
            params![
                asset,
                v.kind.as_str(),
                size,
                v.file_type,
                v.checksum,
                v.width,
                v.height
            ],
            |r| r.get(0),
        )
    })
    .ctx("inserting a version")
}

/// Stored facts of a version that decide whether it changed.
struct StoredFacts {
    key: VersionKey,
    size: i64,
    checksum: String,
    file_type: String,
    width: Option<u32>,
    height: Option<u32>,
}

/// Brings an existing asset's versions in line with `asset.versions`, keeping the key of every
/// kind that stays.
fn sync_versions(tx: &Connection, key: AssetKey, asset: &Asset) -> Result<()> {
    let mut stored: HashMap<String, StoredFacts> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT kind, version_key, size, checksum, file_type, width, height
                 FROM versions WHERE asset_key = ?1",
            )
            .ctx("reading versions")?;
        let rows = stmt
            .query_map([key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    StoredFacts {
                        key: r.get(1)?,
                        size: r.get(2)?,
                        checksum: r.get(3)?,
                        file_type: r.get(4)?,
                        width: r.get(5)?,
                        height: r.get(6)?,
                    },
                ))
            })
            .ctx("reading versions")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx("reading versions")?
    };

    for v in unique_versions(asset) {
        let size = to_i64("version size", v.size)?;
        match stored.remove(v.kind.as_str()) {
            None => {
                insert_version(tx, key, v)?;
            }
            Some(old) => {
                let content_changed = old.size != size || old.checksum != v.checksum;
                let facts_changed =
                    old.file_type != v.file_type || old.width != v.width || old.height != v.height;
                if content_changed || facts_changed {
                    tx.prepare_cached(
                        "UPDATE versions SET size = ?2, file_type = ?3, checksum = ?4,
                                             width = ?5, height = ?6
                         WHERE version_key = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            old.key,
                            size,
                            v.file_type,
                            v.checksum,
                            v.width,
                            v.height
                        ])
                    })
                    .ctx("updating a version")?;
                }
                if content_changed {
                    super::downloads::reset_version(tx, old.key)?;
                }
            }
        }
    }
    // Kinds the asset no longer has (e.g. an edit reverted): gone with their download state.
    for old in stored.into_values() {
        super::orphans::keep_files_of(tx, old.key)?;
        tx.prepare_cached("DELETE FROM versions WHERE version_key = ?1")
            .and_then(|mut s| s.execute([old.key]))
            .ctx("removing a version")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::content_hash;
    use crate::model::{Asset, ItemKind, Location, Version, VersionKind};

    fn sample() -> Asset {
        Asset {
            id: "M".into(),
            asset_record: "A".into(),
            asset_change_tag: None,
            zone: "PrimarySync".into(),
            filename: Some("IMG_0001.JPG".into()),
            filename_problem: None,
            item_type: Some("public.jpeg".into()),
            kind: ItemKind::Image,
            asset_date_ms: 1,
            added_date_ms: 2,
            tz_offset_s: None,
            favorite: false,
            hidden: false,
            deleted: false,
            date_expunged_ms: None,
            burst_id: None,
            subtype: 0,
            subtype_v2: 0,
            orientation: None,
            duration: None,
            adjustment_type: None,
            caption: None,
            description: None,
            keywords: vec![],
            location: None,
            versions: vec![Version {
                kind: VersionKind::Original,
                size: 10,
                file_type: "public.jpeg".into(),
                checksum: "c".into(),
                width: None,
                height: None,
            }],
        }
    }

    #[test]
    fn the_content_hash_is_deterministic_and_sees_every_change() {
        let a = sample();
        assert_eq!(content_hash(&a), content_hash(&a.clone()));
        assert_ne!(content_hash(&a), 0);
        let edits: Vec<fn(&mut Asset)> = vec![
            |a| a.favorite = true,
            |a| a.asset_change_tag = Some("x".into()),
            |a| a.keywords.push("k".into()),
            |a| a.versions[0].size = 11,
            |a| a.versions[0].checksum = "d".into(),
            |a| a.versions[0].width = Some(1),
            |a| a.versions.clear(),
            |a| a.tz_offset_s = Some(0),
            |a| a.filename = None,
            |a| a.caption = Some("IMG_0001.JPG".into()),
            |a| a.description = Some("IMG_0001.JPG".into()),
            |a| a.hidden = true,
            |a| a.kind = ItemKind::Movie,
            |a| {
                a.location = Some(Location {
                    latitude: 1.0,
                    longitude: 2.0,
                    altitude: None,
                    speed: None,
                    gps_time_ms: None,
                })
            },
            |a| a.versions[0].kind = VersionKind::Medium,
        ];
        for edit in edits {
            let mut b = sample();
            edit(&mut b);
            assert_ne!(content_hash(&a), content_hash(&b), "{b:?}");
        }
    }

    #[test]
    fn the_content_hash_sees_gps_speed_and_time() {
        let located = |speed, gps_time_ms| {
            let mut a = sample();
            a.location = Some(Location {
                latitude: 1.0,
                longitude: 2.0,
                altitude: Some(3.0),
                speed,
                gps_time_ms,
            });
            content_hash(&a)
        };
        let hashes = [
            located(None, None),
            located(Some(0.0), None),
            located(Some(1.5), None),
            located(None, Some(0)),
            located(None, Some(1_000)),
            located(Some(1.5), Some(1_000)),
        ];
        for (i, h) in hashes.iter().enumerate() {
            assert!(!hashes[..i].contains(h), "hash {i} repeats an earlier one");
        }
    }
}
