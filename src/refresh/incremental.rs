//! Following a zone's change feed from the stored token: each page becomes one catalog
//! transaction (changes and the page's token together).

use std::time::Instant;

use super::{Connection, LibraryReport, PageSink, RefreshError, RefreshMode};
use crate::catalog::{Catalog, ChangeBatch, FlagChange, LibraryId, RunKind, RunStatus};
use crate::cloudkit::{Change, ListedAsset, ZoneChanges};
use crate::model::Library;

/// How a feed walk ended.
pub(super) enum Outcome {
    Done(LibraryReport),
    /// The feed cannot be used (token rejected): list in full, for this reason.
    NeedsFull(String),
}

/// What a feed walk saw beyond the run's asset counts.
#[derive(Default)]
struct FeedTotals {
    /// A hidden or recently deleted asset was shown again.
    shown_again: bool,
    /// Albums created, renamed, moved or removed.
    albums: u64,
    /// Album memberships added or removed.
    memberships: u64,
}

/// Apply the changes of `library` since `token`.
pub(super) async fn run(
    conn: &mut Connection<'_>,
    catalog: &mut Catalog,
    library: &Library,
    id: LibraryId,
    token: &str,
    sink: &mut dyn PageSink,
) -> Result<Outcome, RefreshError> {
    let started = Instant::now();
    let run = catalog.begin_run(id, RunKind::Incremental, None)?;
    let mut totals = FeedTotals::default();
    match follow(conn, catalog, library, id, run, token, sink, &mut totals).await {
        Ok(None) => {
            // An album's listing leaves out its hidden and recently deleted members, and the
            // feed says nothing of albums when one is shown again: their members are listed
            // anew (membership only).
            if totals.shown_again {
                tracing::debug!(zone = %library.zone, "assets shown again; listing album members");
                if let Err(e) = super::full::list_albums(conn, catalog, library, id).await {
                    let _ = catalog.finish_run(run, RunStatus::Failed, Some(&e.to_string()));
                    return Err(e);
                }
            }
            let record = catalog.finish_run(run, RunStatus::Completed, None)?;
            Ok(Outcome::Done(LibraryReport {
                library: library.clone(),
                library_id: id,
                mode: RefreshMode::Incremental,
                seen: record.counts.seen,
                added: record.counts.added,
                changed: record.counts.changed,
                removed: record.counts.removed,
                skipped: record.counts.skipped,
                albums: totals.albums,
                memberships: totals.memberships,
                elapsed: started.elapsed(),
            }))
        }
        Ok(Some(reason)) => {
            let _ = catalog.finish_run(run, RunStatus::Failed, Some(&reason));
            Ok(Outcome::NeedsFull(reason))
        }
        Err(e) => {
            let _ = catalog.finish_run(run, RunStatus::Failed, Some(&e.to_string()));
            Err(e)
        }
    }
}

/// Walk the feed; `Ok(Some(reason))` when a full listing is needed instead.
#[allow(clippy::too_many_arguments)]
async fn follow(
    conn: &mut Connection<'_>,
    catalog: &mut Catalog,
    library: &Library,
    id: LibraryId,
    run: crate::catalog::RunId,
    token: &str,
    sink: &mut dyn PageSink,
    totals: &mut FeedTotals,
) -> Result<Option<String>, RefreshError> {
    let mut token = token.to_string();
    loop {
        let lib = library.clone();
        let t = token.clone();
        let answer = conn
            .call(|c| {
                let (lib, t) = (lib.clone(), t.clone());
                async move { c.zone_changes(&lib, Some(&t)).await }
            })
            .await?;
        let page = match answer {
            ZoneChanges::Page(page) => page,
            ZoneChanges::TokenRejected { code, reason, .. } => {
                return Ok(Some(format!(
                    "the sync token was rejected ({code}: {reason})"
                )));
            }
            ZoneChanges::ZoneNotFound { reason, .. } => {
                tracing::warn!(zone = %library.zone, %reason, "library no longer exists");
                return Err(RefreshError::NoSuchLibrary(library.zone.clone()));
            }
        };
        let mut batch = ChangeBatch {
            skipped: page.skipped.clone(),
            zone_token: page.sync_token.clone(),
            ..ChangeBatch::default()
        };
        let mut listed: Vec<ListedAsset> = Vec::new();
        // Records whose full state must be looked up: (master id, asset record).
        let mut lookups: Vec<(String, String)> = Vec::new();
        for change in page.changes {
            match change {
                Change::Asset(a) => {
                    if !a.asset.hidden
                        && !a.asset.deleted
                        && catalog
                            .asset_by_id(id, &a.asset.id)?
                            .is_some_and(|s| s.asset.hidden || s.asset.deleted)
                    {
                        totals.shown_again = true;
                    }
                    batch.assets.push(a.asset.clone());
                    listed.push(*a);
                }
                Change::AssetRecord(r) => {
                    batch.flags.push(FlagChange {
                        record: r.asset_record.clone(),
                        favorite: Some(r.favorite),
                        hidden: Some(r.hidden),
                        deleted: Some(r.deleted),
                    });
                    let stored = catalog.asset_by_id(id, &r.master_id)?;
                    if !r.hidden
                        && !r.deleted
                        && stored
                            .as_ref()
                            .is_some_and(|s| s.asset.hidden || s.asset.deleted)
                    {
                        totals.shown_again = true;
                    }
                    // An edit changes the versions; so does an edit reverted (no adjustment
                    // any more on an asset stored as edited).
                    let reverted = r.adjustment_type.is_none()
                        && stored.is_some_and(|s| s.asset.adjustment_type.is_some());
                    if r.adjustment_type.is_some() || reverted {
                        lookups.push((r.master_id.clone(), r.asset_record.clone()));
                    }
                }
                Change::MasterRecord { id: master } => {
                    if let Some(stored) = catalog.asset_by_id(id, &master)? {
                        lookups.push((master, stored.asset.asset_record));
                    }
                }
                Change::Removed { record_name } => batch.deleted_records.push(record_name),
                Change::MembershipRemoved {
                    asset_record,
                    album_id,
                } => batch.members_removed.push((album_id, asset_record)),
                Change::Membership {
                    asset_record,
                    album_id,
                    deleted,
                } => {
                    if deleted {
                        batch.members_removed.push((album_id, asset_record));
                    } else {
                        batch.members_added.push((album_id, asset_record));
                    }
                }
                Change::Album(album) => batch.albums.push(album),
            }
        }
        if !lookups.is_empty() {
            let lib = library.clone();
            let pairs = lookups.clone();
            let refreshed = conn
                .call(|c| {
                    let (lib, pairs) = (lib.clone(), pairs.clone());
                    async move {
                        let refs: Vec<(&str, &str)> = pairs
                            .iter()
                            .map(|(m, a)| (m.as_str(), a.as_str()))
                            .collect();
                        c.refresh_assets(&lib, &refs).await
                    }
                })
                .await?;
            batch
                .assets
                .extend(refreshed.assets.iter().map(|a| a.asset.clone()));
            batch.skipped.extend(refreshed.skipped);
            listed.extend(refreshed.assets);
        }
        let counts = catalog.apply_changes(run, &batch)?;
        totals.albums += counts.albums_changed + counts.albums_removed;
        totals.memberships += counts.members_added + counts.members_removed;
        if !listed.is_empty() {
            sink.assets(library, &listed);
        }
        if let Some(next) = page.sync_token {
            token = next;
        }
        if !page.more_coming {
            return Ok(None);
        }
    }
}
