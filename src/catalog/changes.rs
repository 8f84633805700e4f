//! Incremental refresh: one `changes/zone` page becomes one [`ChangeBatch`], applied in one
//! transaction together with the page's sync token, so the token never runs ahead of the
//! changes it covers.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::albums::{add_member, remove_album, remove_member, upsert_album};
use super::assets::{Upserted, upsert_asset};
use super::error::{CatalogError, Result, SqlContext};
use super::libraries::set_zone_token;
use super::runs::{ActiveRun, RunCounts, RunKind, active_run, add_counts, record_skipped};
use super::{Catalog, LibraryId, RunId, now_ms};
use crate::model::{Album, Asset, Skipped};

/// Separator of `CPLContainerRelation` record names: `<asset record>-IN-<album record>`.
const RELATION_SEPARATOR: &str = "-IN-";

/// A flag change of an asset known only by record name (e.g. a CPLAsset update whose
/// CPLMaster was not in the page). `None` leaves a flag as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagChange {
    /// CPLMaster or CPLAsset record name.
    pub record: String,
    pub favorite: Option<bool>,
    pub hidden: Option<bool>,
    pub deleted: Option<bool>,
}

/// Everything one page of the change feed says, already parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeBatch {
    /// New or modified assets (complete CPLMaster + CPLAsset pairs).
    pub assets: Vec<Asset>,
    /// Flag changes of assets not fully listed.
    pub flags: Vec<FlagChange>,
    /// Record names reported `deleted: true` (hard deletes). Each is resolved by the catalog:
    /// `<asset>-IN-<album>` removes a membership, an asset's CPLMaster or CPLAsset name marks
    /// the asset gone, an album's name removes the album; anything else is ignored (memories,
    /// people and other record types the catalog does not keep).
    pub deleted_records: Vec<String>,
    /// New or modified albums and folders.
    pub albums: Vec<Album>,
    /// Memberships added: (album record name, asset CPLMaster or CPLAsset record name).
    pub members_added: Vec<(String, String)>,
    /// Memberships removed, same form.
    pub members_removed: Vec<(String, String)>,
    /// Records the parser could not use.
    pub skipped: Vec<Skipped>,
    /// The page's `syncToken`, stored with the batch.
    pub zone_token: Option<String>,
}

/// What a batch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounts {
    pub added: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Assets marked gone.
    pub removed: u64,
    /// Flag changes that matched a stored asset.
    pub flagged: u64,
    pub albums_changed: u64,
    pub albums_removed: u64,
    pub members_added: u64,
    pub members_removed: u64,
    /// Deleted records and flag changes that named nothing stored.
    pub unmatched: u64,
    pub skipped: u64,
}

impl Catalog {
    /// Applies one change-feed page to an incremental run's library in one transaction, storing
    /// the page's token with it.
    pub fn apply_changes(&mut self, run: RunId, batch: &ChangeBatch) -> Result<ChangeCounts> {
        let tx = self.write_tx("applying changes")?;
        let active = active_run(&tx, run)?;
        if active.kind != RunKind::Incremental {
            return Err(CatalogError::WrongRunKind {
                run,
                operation: "apply_changes",
                expected: "incremental",
                actual: active.kind.as_str(),
            });
        }
        let mut c = ChangeCounts {
            skipped: batch.skipped.len() as u64,
            ..ChangeCounts::default()
        };
        let library = active.library;

        for album in &batch.albums {
            if upsert_album(&tx, library, &active.zone, album)?.is_some() {
                c.albums_changed += 1;
            }
        }
        for asset in &batch.assets {
            match upsert_asset(&tx, &active, asset)? {
                Upserted::Added => c.added += 1,
                Upserted::Changed => c.changed += 1,
                Upserted::Unchanged => c.unchanged += 1,
            }
        }
        for flags in &batch.flags {
            if set_flags(&tx, &active, flags)? {
                c.flagged += 1;
            } else {
                c.unmatched += 1;
            }
        }
        for (album, asset) in &batch.members_added {
            if add_member(&tx, library, album, asset)? {
                c.members_added += 1;
            }
        }
        for (album, asset) in &batch.members_removed {
            c.members_removed += remove_membership(&tx, library, album, asset)?;
        }
        let now = now_ms();
        for name in &batch.deleted_records {
            resolve_deleted(&tx, library, name, now, &mut c)?;
        }
        record_skipped(&tx, run, &batch.skipped)?;
        add_counts(
            &tx,
            run,
            RunCounts {
                seen: batch.assets.len() as u64,
                added: c.added,
                changed: c.changed + c.flagged,
                removed: c.removed,
                skipped: c.skipped,
            },
        )?;
        if let Some(token) = &batch.zone_token {
            set_zone_token(&tx, library, Some(token))?;
        }
        tx.commit().ctx("applying changes")?;
        Ok(c)
    }
}

/// Sets the given flags of the asset named by `change.record`; false when no asset matches.
fn set_flags(tx: &Transaction<'_>, run: &ActiveRun, change: &FlagChange) -> Result<bool> {
    // content_hash 0: the stored fields no longer equal any Asset value we hashed.
    let n = tx
        .prepare_cached(
            "UPDATE assets SET favorite = coalesce(?3, favorite), hidden = coalesce(?4, hidden),
                               deleted = coalesce(?5, deleted), content_hash = 0,
                               last_seen_run = ?6
             WHERE library_id = ?1 AND (record_id = ?2 OR asset_record = ?2)",
        )
        .and_then(|mut s| {
            s.execute(params![
                run.library,
                change.record,
                change.favorite,
                change.hidden,
                change.deleted,
                run.run,
            ])
        })
        .ctx("changing asset flags")?;
    Ok(n > 0)
}

/// The names an asset may be known by in membership rows: the given one, plus its CPLMaster
/// and CPLAsset record names when the asset is stored.
fn asset_names(tx: &Transaction<'_>, library: LibraryId, name: &str) -> Result<Vec<String>> {
    let stored: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT record_id, asset_record FROM assets
             WHERE library_id = ?1 AND (record_id = ?2 OR asset_record = ?2) LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![library, name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .ctx("resolving an asset name")?;
    let mut names = vec![name.to_owned()];
    if let Some((master, asset)) = stored {
        for n in [master, asset] {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(names)
}

fn remove_membership(
    tx: &Transaction<'_>,
    library: LibraryId,
    album: &str,
    asset: &str,
) -> Result<u64> {
    let mut removed = 0;
    for name in asset_names(tx, library, asset)? {
        removed += u64::from(remove_member(tx, library, album, &name)?);
    }
    Ok(removed)
}

/// Applies one hard-deleted record name (see [`ChangeBatch::deleted_records`]).
fn resolve_deleted(
    tx: &Transaction<'_>,
    library: LibraryId,
    name: &str,
    now: i64,
    c: &mut ChangeCounts,
) -> Result<()> {
    if let Some((asset, album)) = name.split_once(RELATION_SEPARATOR) {
        let removed = remove_membership(tx, library, album, asset)?;
        c.members_removed += removed;
        if removed == 0 {
            c.unmatched += 1;
        }
        return Ok(());
    }
    let gone = tx
        .prepare_cached(
            "UPDATE assets SET gone_ms = ?3
             WHERE library_id = ?1 AND (record_id = ?2 OR asset_record = ?2)
               AND gone_ms IS NULL",
        )
        .and_then(|mut s| s.execute(params![library, name, now]))
        .ctx("marking an asset gone")?;
    if gone > 0 {
        c.removed += gone as u64;
        return Ok(());
    }
    if remove_album(tx, library, name)? {
        c.albums_removed += 1;
        return Ok(());
    }
    tracing::trace!(record = name, "deleted record names nothing stored");
    c.unmatched += 1;
    Ok(())
}
