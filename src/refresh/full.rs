//! A full listing of one library: every asset of All Photos, Hidden and Recently Deleted, then
//! the album tree and each album's members. Assets not seen are marked gone only once the whole
//! listing completed.

use std::time::Instant;

use super::{
    Connection, LibraryReport, PageSink, Progress, RefreshError, RefreshMode, RefreshOptions,
};
use crate::catalog::{Catalog, LibraryId, RunId, RunKind, RunStatus};
use crate::cloudkit::{Index, IndexCount, IndexWalk, Urls, WalkOptions};
use crate::model::Library;

/// The indexes that together hold every asset of a library exactly once.
const ASSET_INDEXES: [Index; 3] = [Index::AllPhotos, Index::Hidden, Index::RecentlyDeleted];

/// List `library` in full into `catalog`.
pub(super) async fn run(
    conn: &mut Connection<'_>,
    catalog: &mut Catalog,
    library: &Library,
    id: LibraryId,
    reason: &str,
    options: &RefreshOptions,
    sink: &mut dyn PageSink,
) -> Result<LibraryReport, RefreshError> {
    let started = Instant::now();
    tracing::info!(zone = %library.zone, reason, "listing the library in full");
    let lib = library.clone();
    let state = conn
        .call(|c| {
            let lib = lib.clone();
            async move { c.indexing_state(&lib).await }
        })
        .await?;
    if !state.is_finished() {
        tracing::warn!(zone = %library.zone, state = ?state.state, "iCloud has not finished indexing this library; the listing may be incomplete");
    }
    let lib = library.clone();
    let counts = conn
        .call(|c| {
            let lib = lib.clone();
            async move { c.counts(&lib, &ASSET_INDEXES).await }
        })
        .await?;
    let expected: Option<u64> = counts.iter().map(|c| c.count).sum();
    let run = catalog.begin_run(id, RunKind::Full, expected)?;
    let mut progress = Progress::new(options.progress, &library.zone, expected);
    let mut dest = Destination {
        catalog,
        library,
        run,
        sink,
        progress: &mut progress,
    };
    match list(conn, &mut dest, id, &counts).await {
        Ok((token, albums)) => {
            progress.finish();
            let record = catalog.finish_full_enumeration(run, token.as_deref())?;
            Ok(LibraryReport {
                library: library.clone(),
                library_id: id,
                mode: RefreshMode::Full {
                    reason: reason.to_string(),
                },
                seen: record.counts.seen,
                added: record.counts.added,
                changed: record.counts.changed,
                removed: record.counts.removed,
                skipped: record.counts.skipped,
                albums,
                memberships: 0,
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            progress.finish();
            // Keep what was stored; the run is marked failed and nothing is marked gone.
            let _ = catalog.finish_run(run, RunStatus::Failed, Some(&e.to_string()));
            Err(e)
        }
    }
}

/// Where a full run's pages go: the catalog (in the run), then the sink, with progress.
struct Destination<'d> {
    catalog: &'d mut Catalog,
    library: &'d Library,
    run: RunId,
    sink: &'d mut dyn PageSink,
    progress: &'d mut Progress,
}

/// Walk the asset indexes and the albums. Returns the zone token to keep and the album count.
async fn list(
    conn: &mut Connection<'_>,
    dest: &mut Destination<'_>,
    id: LibraryId,
    counts: &[IndexCount],
) -> Result<(Option<String>, u64), RefreshError> {
    let library = dest.library;
    let urls = walk_urls(&*dest.sink);
    // Each walk gets its count from the batch (no count request of its own). A small Hidden
    // or Recently Deleted index is walked while All Photos is stored, so their round trips
    // overlap; a large one waits its turn, since its parsed pages would wait in memory.
    let mut walks: Vec<_> = ASSET_INDEXES
        .iter()
        .enumerate()
        .map(|(i, index)| {
            let small = counts
                .iter()
                .find(|c| c.index == *index)
                .and_then(|c| c.count)
                .is_some_and(|n| n <= WALK_AHEAD_MAX_ASSETS);
            (i == 0 || small).then(|| start_walk(conn, library, index, counts, urls))
        })
        .collect();
    let mut token: Option<String> = None;
    for (index, started) in ASSET_INDEXES.iter().zip(walks.iter_mut()) {
        let summary_token = walk_index(conn, dest, index, started.take(), counts).await?;
        // The first walk's token predates every page (it comes from the count batch taken
        // before the run): changes made while listing replay later.
        if token.is_none() {
            token = summary_token;
        }
    }
    let albums = list_albums(conn, dest.catalog, library, id).await?;
    Ok((token, albums))
}

/// Hidden and Recently Deleted are walked alongside All Photos up to this size (a few pages).
const WALK_AHEAD_MAX_ASSETS: u64 = 500;

/// Whether the asset walks keep download URLs: only when the sink uses them.
fn walk_urls(sink: &dyn PageSink) -> Urls {
    if sink.wants_urls() {
        Urls::Keep
    } else {
        Urls::Drop
    }
}

/// A walk of `index` started now, with the session generation it started under.
fn start_walk(
    conn: &Connection<'_>,
    library: &Library,
    index: &Index,
    counts: &[IndexCount],
    urls: Urls,
) -> (u64, IndexWalk) {
    start_walk_with(conn, library, index, counts, urls, false)
}

/// [`start_walk`], asking only for membership when `membership_only` (album walks: only
/// which assets an album holds is stored).
fn start_walk_with(
    conn: &Connection<'_>,
    library: &Library,
    index: &Index,
    counts: &[IndexCount],
    urls: Urls,
    membership_only: bool,
) -> (u64, IndexWalk) {
    let generation = conn.session().generation();
    let options = WalkOptions {
        count: counts.iter().find(|c| c.index == *index).cloned(),
        membership_only,
        urls,
        ..WalkOptions::default()
    };
    let walk = conn.client().walk(library, index.clone(), options);
    (generation, walk)
}

/// Assets stored per catalog transaction: fewer commits, same durability per batch.
const BATCH_ASSETS: usize = 1000;
/// A batch is stored at the latest this long after its first page arrived.
const BATCH_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(200);

/// Pages waiting to be stored together. The first page of a walk is stored at once so that a
/// sync can start downloading within moments of the listing's start.
#[derive(Default)]
struct PageBatch {
    pages: Vec<crate::cloudkit::Page>,
    assets: usize,
    first_at: Option<Instant>,
    stored_any: bool,
}

impl PageBatch {
    fn push(&mut self, page: crate::cloudkit::Page) {
        self.assets += page.assets.len();
        self.first_at.get_or_insert_with(Instant::now);
        self.pages.push(page);
    }

    fn is_due(&self) -> bool {
        !self.stored_any
            || self.assets >= BATCH_ASSETS
            || self.first_at.is_some_and(|t| t.elapsed() >= BATCH_MAX_AGE)
    }

    /// Store the pending pages in one transaction, then hand them to the sink.
    fn store(&mut self, dest: &mut Destination<'_>) -> Result<(), RefreshError> {
        if self.pages.is_empty() {
            return Ok(());
        }
        let assets = self
            .pages
            .iter()
            .flat_map(|p| p.assets.iter().map(|a| &a.asset));
        let skipped: Vec<_> = self
            .pages
            .iter()
            .flat_map(|p| p.skipped.iter().cloned())
            .collect();
        let counts = if dest.sink.reads_catalog_while_listing() {
            dest.catalog.upsert_page(dest.run, assets, &skipped)?
        } else {
            dest.catalog
                .upsert_page_batched(dest.run, assets, &skipped)?
        };
        dest.progress.add(counts.seen);
        for page in self.pages.drain(..) {
            dest.sink.assets(dest.library, &page.assets);
        }
        self.assets = 0;
        self.first_at = None;
        self.stored_any = true;
        Ok(())
    }
}

/// One index, page by page into the catalog, from the walk started for it (if any); restarted
/// after a re-authentication.
async fn walk_index(
    conn: &mut Connection<'_>,
    dest: &mut Destination<'_>,
    index: &Index,
    mut started: Option<(u64, IndexWalk)>,
    counts: &[IndexCount],
) -> Result<Option<String>, RefreshError> {
    let mut counts = counts;
    loop {
        let (seen, mut walk) = match started.take() {
            Some(s) => s,
            None => start_walk(conn, dest.library, index, counts, walk_urls(&*dest.sink)),
        };
        // A restart counts afresh: the batch's count may predate a long wait.
        counts = &[];
        let mut batch = PageBatch::default();
        while let Some(page) = walk.next_page().await {
            batch.push(page);
            if batch.is_due() {
                batch.store(dest)?;
            }
        }
        batch.store(dest)?;
        match walk.finish().await {
            Ok(summary) => {
                conn.session_works();
                if !summary.skipped.is_empty() {
                    dest.catalog.upsert_page(dest.run, &[], &summary.skipped)?;
                }
                return Ok(summary.sync_token);
            }
            Err(e) if e.needs_reauthentication() => conn.renew(seen, e).await?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Album walks in flight at once: with the counts batched, a small album is one page request,
/// so walking the albums one after another costs a round trip per album (a cold mount of a
/// library with 20 albums waited seconds for them). Each walk fetches its own pages in
/// parallel too (and holds at most a channel of pages), so this stays modest.
const ALBUM_WALKS_AHEAD: usize = 8;

/// The album tree and each album's members. Shared libraries may have no album index.
pub(super) async fn list_albums(
    conn: &mut Connection<'_>,
    catalog: &mut Catalog,
    library: &Library,
    id: LibraryId,
) -> Result<u64, RefreshError> {
    let lib = library.clone();
    let listing = match conn
        .call(|c| {
            let lib = lib.clone();
            async move { c.list_albums(&lib).await }
        })
        .await
    {
        Ok(listing) => listing,
        Err(e) if library.zone != "PrimarySync" => {
            tracing::info!(zone = %library.zone, error = %e, "no albums for this library");
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    catalog.replace_albums(id, &listing.albums)?;
    let albums: Vec<_> = listing
        .albums
        .iter()
        .filter(|a| !a.is_folder && !a.deleted)
        .collect();
    // Every album counted in one batch request: each walk then starts with its pages (a small
    // album is one request instead of two round trips). Without counts, walks count themselves.
    let indexes: Vec<Index> = albums.iter().map(|a| Index::Album(a.id.clone())).collect();
    let counts = if indexes.is_empty() {
        Vec::new()
    } else {
        let lib = library.clone();
        let idx = indexes.clone();
        match conn
            .call(|c| {
                let (lib, idx) = (lib.clone(), idx.clone());
                async move { c.counts(&lib, &idx).await }
            })
            .await
        {
            Ok(counts) => counts,
            Err(e) => {
                tracing::debug!(zone = %library.zone, error = %e, "album counts failed; each walk counts");
                Vec::new()
            }
        }
    };
    let start = |conn: &Connection<'_>, album_id: &str| {
        start_walk_with(
            conn,
            library,
            &Index::Album(album_id.to_string()),
            &counts,
            Urls::Drop,
            true,
        )
    };
    // Walks started ahead, in album order; members are stored in that order.
    let mut ahead = std::collections::VecDeque::new();
    let mut next = 0;
    for album in &albums {
        while next < albums.len() && ahead.len() < ALBUM_WALKS_AHEAD {
            ahead.push_back(start(conn, &albums[next].id));
            next += 1;
        }
        let (mut seen, mut walk) = match ahead.pop_front() {
            Some(started) => started,
            None => start(conn, &album.id),
        };
        let members = loop {
            let mut ids: Vec<String> = Vec::new();
            while let Some(page) = walk.next_page().await {
                ids.extend(page.assets.iter().map(|a| a.asset.id.clone()));
            }
            match walk.finish().await {
                Ok(_) => {
                    conn.session_works();
                    break ids;
                }
                // A walk started before a renewal fails the same way; `renew` then sees the
                // newer generation and only the walk is repeated.
                Err(e) if e.needs_reauthentication() => {
                    conn.renew(seen, e).await?;
                    (seen, walk) = start(conn, &album.id);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        catalog.set_album_members(id, &album.id, &refs)?;
    }
    Ok(albums.len() as u64)
}
