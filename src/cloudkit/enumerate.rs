//! Streaming enumeration of one index: several rank ranges fetched in parallel, pages handed
//! over through a bounded channel as they arrive, then tail probing past the counted end until a
//! short page, so a count that grew during the walk loses nothing.
//!
//! Memory is flat in the library size: at most `channel_pages` parsed pages wait for the
//! consumer, and only records whose partner is on another page are carried over.
//!
//! Ranges follow section 5.4 of the protocol notes: with count C and F fetchers, fetcher i covers
//! ranks `[i·chunk, (i+1)·chunk)` with `chunk` a multiple of the page size, so fetchers start on
//! page boundaries. The last fetcher is open-ended and stops at the first short page at or past
//! the counted end.
//!
//! The count is not trusted further than that. Five empty pages in a row end the index there
//! (one empty page inside an index is walked past, as kei and rclone do): no fetcher goes on
//! past them, so a count far above the content costs a few requests, not a walk of empty
//! pages. A page with far fewer records than asked before the counted end, with records at a
//! later rank, was cut short (a gateway, a partial answer): it is asked again, and a whole
//! answer replaces it. Records it lost for good stay unpaired and are reported as skipped,
//! and the catalog does not take their assets for gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::model::Library;

use super::calls::{Fetched, IndexCount, Page};
use super::client::CloudKitClient;
use super::error::CloudKitError;
use super::pairing::CarryOver;
use super::parse::{Skipped, Urls};
use super::requests::{self, Index, PAGE_ASSETS};

/// Tuning of a walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Rank ranges fetched at the same time.
    pub parallelism: usize,
    /// Parsed pages that may wait for the consumer before fetchers pause.
    pub channel_pages: usize,
    /// Stop probing past the counted end after this many ranks (a server that never ends).
    pub max_ranks: u64,
    /// The index's count (and token) from a batch counted just before, which saves the walk
    /// its own count request: one round trip per index, the whole walk for a small album.
    /// Ignored when it counts another index.
    pub count: Option<IndexCount>,
    /// Ask only for what pairs the records (`desiredKeys` `masterRef`): for a caller that
    /// needs which assets an index holds (album membership) and nothing else. Such a walk's
    /// assets carry their ids (and record names); every other field is empty.
    pub membership_only: bool,
    /// Whether pages keep the download URL of each version (`ListedAsset::downloads`); a
    /// listing nobody downloads from drops them.
    pub urls: Urls,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            parallelism: 6,
            channel_pages: 12,
            max_ranks: 50_000_000,
            count: None,
            membership_only: false,
            urls: Urls::Keep,
        }
    }
}

/// How far a walk has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkProgress {
    /// The index's count before the walk, if the server gave one.
    pub expected: Option<u64>,
    /// Assets handed over so far.
    pub assets_seen: u64,
    /// Pages fetched so far.
    pub pages: u64,
}

/// The result of a completed walk.
#[derive(Debug)]
pub struct WalkSummary {
    pub index: Index,
    pub expected: Option<u64>,
    pub assets_seen: u64,
    pub pages: u64,
    /// Records still unpaired at the end (a master without its asset, or the reverse).
    pub skipped: Vec<Skipped>,
    /// The zone token to store once every page is committed: taken before the first page (from
    /// the count), so changes made during the walk are replayed by the next incremental sync.
    pub sync_token: Option<String>,
}

/// Where the fetchers found the index's records to end (see the module docs).
#[derive(Debug, Default)]
struct Ends {
    /// The lowest rank answered with no record at all: nothing lies past it.
    empty_at: Option<u64>,
    /// The highest rank answered with records.
    last_with_records: Option<u64>,
    /// Ranks answered with fewer records than the counted end called for, with their records.
    short: Vec<(u64, usize)>,
}

impl Ends {
    fn past_the_end(&self, rank: u64) -> bool {
        self.empty_at.is_some_and(|end| rank >= end)
    }

    /// Short pages followed by records at a later rank: answers cut short, and the pages
    /// where the records end (the tail) although the count said more.
    fn short_pages(&self) -> (Vec<u64>, Vec<(u64, usize)>) {
        let last = self.last_with_records.unwrap_or(0);
        let (mut cut, mut tail): (Vec<_>, Vec<_>) =
            self.short.iter().copied().partition(|&(r, _)| r < last);
        cut.sort_unstable();
        tail.sort_unstable();
        (cut.into_iter().map(|(r, _)| r).collect(), tail)
    }
}

/// A page answered cut short is asked again after each of these pauses.
const CUT_SHORT_RETRIES: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(200),
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(2),
];

/// Empty pages in a row that end an index.
const EMPTY_PAGES_END: u64 = 5;

/// A page with fewer records than this before the counted end may have been cut short (a
/// pair split across pages only moves a record or two).
fn looks_cut(records: usize) -> bool {
    (records as u64) < requests::RESULTS_LIMIT * 3 / 4
}

#[derive(Default)]
struct Counters {
    expected: Mutex<Option<u64>>,
    assets: AtomicU64,
    pages: AtomicU64,
    /// Pages fetched but never handed over (the consumer stopped reading).
    discarded: AtomicU64,
}

/// A walk in progress. Read pages with [`IndexWalk::next_page`], then call
/// [`IndexWalk::finish`]: only an `Ok` summary means the listing is complete. Dropping the walk
/// cancels it.
pub struct IndexWalk {
    pages: mpsc::Receiver<Page>,
    counters: Arc<Counters>,
    task: Option<JoinHandle<Result<WalkSummary, CloudKitError>>>,
}

impl IndexWalk {
    /// The next page, in arrival order (not rank order); `None` when the walk has ended,
    /// successfully or not.
    pub async fn next_page(&mut self) -> Option<Page> {
        self.pages.recv().await
    }

    /// Progress counters, for a progress bar.
    pub fn progress(&self) -> WalkProgress {
        WalkProgress {
            expected: *self
                .counters
                .expected
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            assets_seen: self.counters.assets.load(Ordering::Relaxed),
            pages: self.counters.pages.load(Ordering::Relaxed),
        }
    }

    /// Wait for the walk to end and return its outcome. Pages not yet read are discarded, and
    /// then the walk is reported as incomplete (an error), never as a complete listing.
    pub async fn finish(mut self) -> Result<WalkSummary, CloudKitError> {
        self.pages.close();
        while self.pages.recv().await.is_some() {
            self.counters.discarded.fetch_add(1, Ordering::Relaxed);
        }
        let Some(task) = self.task.take() else {
            return Err(CloudKitError::Protocol {
                call: "index walk".into(),
                detail: "finished twice".into(),
            });
        };
        let summary = match task.await {
            Ok(result) => result?,
            Err(e) => {
                return Err(CloudKitError::Protocol {
                    call: "index walk".into(),
                    detail: format!("walk task failed: {e}"),
                });
            }
        };
        let discarded = self.counters.discarded.load(Ordering::Relaxed);
        if discarded > 0 {
            return Err(CloudKitError::Protocol {
                call: format!("walk of {}", summary.index.describe()),
                detail: format!(
                    "finished before every page was read ({discarded} page(s) discarded); the listing is incomplete"
                ),
            });
        }
        Ok(summary)
    }
}

impl Drop for IndexWalk {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One rank range of a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RankRange {
    pub start: u64,
    /// The counted end of this range (exclusive).
    pub end: u64,
    /// Keep going past `end` until a short page.
    pub open_ended: bool,
}

/// Split `[0, count)` into at most `parallelism` page-aligned ranges; the last is open-ended.
pub(crate) fn rank_ranges(count: Option<u64>, parallelism: usize) -> Vec<RankRange> {
    let c = count.unwrap_or(0);
    if c == 0 {
        return vec![RankRange {
            start: 0,
            end: 0,
            open_ended: true,
        }];
    }
    let pages = c.div_ceil(PAGE_ASSETS);
    let fetchers = pages.min(parallelism.max(1) as u64);
    let chunk = c.div_ceil(fetchers).div_ceil(PAGE_ASSETS) * PAGE_ASSETS;
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < c {
        let end = (start + chunk).min(c);
        ranges.push(RankRange {
            start,
            end,
            open_ended: false,
        });
        start = end;
    }
    if let Some(last) = ranges.last_mut() {
        last.open_ended = true;
    }
    ranges
}

impl CloudKitClient {
    /// Start walking one index of a library. Must be called inside a tokio runtime.
    pub fn walk(&self, library: &Library, index: Index, options: WalkOptions) -> IndexWalk {
        let (tx, rx) = mpsc::channel(options.channel_pages.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run_walk(
            self.clone(),
            library.clone(),
            index,
            options,
            tx,
            counters.clone(),
        ));
        IndexWalk {
            pages: rx,
            counters,
            task: Some(task),
        }
    }
}

async fn run_walk(
    client: CloudKitClient,
    library: Library,
    index: Index,
    options: WalkOptions,
    tx: mpsc::Sender<Page>,
    counters: Arc<Counters>,
) -> Result<WalkSummary, CloudKitError> {
    // The count only splits the work; without one the walk probes until a short page.
    let known = options.count.clone().filter(|c| c.index == index);
    let counted = match known {
        Some(c) => Ok(c),
        None => client.count(&library, &index).await,
    };
    let counted = match counted {
        Ok(c) => c,
        Err(
            e @ (CloudKitError::SessionExpired { .. }
            | CloudKitError::WebAccessDisabled { .. }
            | CloudKitError::ZoneNotFound { .. }),
        ) => return Err(e),
        Err(e) => {
            tracing::warn!(index = %index.describe(), zone = %library.zone, error = %e, "no count; walking without one");
            IndexCount {
                index: index.clone(),
                count: None,
                sync_token: None,
            }
        }
    };
    *counters.expected.lock().unwrap_or_else(|e| e.into_inner()) = counted.count;
    let first_token = Arc::new(Mutex::new(counted.sync_token.clone()));
    let carry = Arc::new(Mutex::new(CarryOver::default()));
    let keys = if options.membership_only {
        requests::membership_desired_keys()
    } else {
        requests::asset_desired_keys()
    };
    let bodies = Arc::new(requests::PageBodies::new(&library, &index, &keys));
    let ranges = rank_ranges(counted.count, options.parallelism);
    tracing::debug!(index = %index.describe(), zone = %library.zone, count = ?counted.count, ranges = ranges.len(), "walking index");

    let counted_end = counted.count.unwrap_or(0);
    let ends = Arc::new(Mutex::new(Ends::default()));
    // One fetcher per range; this one is kept for the pages answered cut short.
    let again = RangeFetch {
        client: client.clone(),
        library: library.clone(),
        index: index.clone(),
        bodies: bodies.clone(),
        urls: if options.membership_only {
            Urls::Membership
        } else {
            options.urls
        },
        carry: carry.clone(),
        tx,
        counters: counters.clone(),
        first_token: first_token.clone(),
        max_ranks: options.max_ranks,
        counted_end,
        ends: ends.clone(),
    };
    let mut fetchers = JoinSet::new();
    for range in ranges {
        fetchers.spawn(again.clone().run(range));
    }
    while let Some(joined) = fetchers.join_next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(CloudKitError::Protocol {
                call: format!("walk of {}", index.describe()),
                detail: format!("fetcher task failed: {e}"),
            })
        });
        if let Err(e) = outcome {
            fetchers.abort_all();
            return Err(e);
        }
    }
    let ((cut_short, tail), empty_at) = {
        let ends = ends.lock().unwrap_or_else(|e| e.into_inner());
        (ends.short_pages(), ends.empty_at)
    };
    for rank in cut_short {
        again.fetch_whole(rank).await?;
    }
    // Where the records end before the count, the last page may have been cut short too
    // (nothing follows it to tell): asked once more, a fuller answer is taken.
    for (rank, records) in tail {
        again.fetch_fuller(rank, records).await?;
    }
    drop(again);
    if let Some(end) = empty_at.filter(|&end| end < counted_end) {
        tracing::warn!(index = %index.describe(), zone = %library.zone, counted = counted_end, records_end_before = end, "the index's count is above what it holds (assets removed during the listing, or a wrong count); listed what it holds");
    }
    let skipped = match Arc::try_unwrap(carry) {
        Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()).finish(),
        Err(shared) => {
            std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner())).finish()
        }
    };
    let sync_token = first_token
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(WalkSummary {
        index,
        expected: counted.count,
        assets_seen: counters.assets.load(Ordering::Relaxed),
        pages: counters.pages.load(Ordering::Relaxed),
        skipped,
        sync_token,
    })
}

/// Everything one fetcher needs.
#[derive(Clone)]
struct RangeFetch {
    client: CloudKitClient,
    library: Library,
    index: Index,
    bodies: Arc<requests::PageBodies>,
    urls: Urls,
    carry: Arc<Mutex<CarryOver>>,
    tx: mpsc::Sender<Page>,
    counters: Arc<Counters>,
    first_token: Arc<Mutex<Option<String>>>,
    max_ranks: u64,
    /// The index's count (0 when unknown).
    counted_end: u64,
    ends: Arc<Mutex<Ends>>,
}

impl RangeFetch {
    async fn run(self, range: RankRange) -> Result<(), CloudKitError> {
        let mut rank = range.start;
        // The first rank of the current run of empty pages.
        let mut empty_since: Option<u64> = None;
        loop {
            if !range.open_ended && rank >= range.end {
                return Ok(());
            }
            if self.ends().past_the_end(rank) {
                return Ok(());
            }
            if rank >= self.max_ranks {
                if range.open_ended {
                    tracing::warn!(index = %self.index.describe(), rank, "index never ended; stopped probing");
                }
                return Ok(());
            }
            // Not asked to be whole, the answer always comes as a page.
            let Fetched::Page(page) = self.fetch(rank, false).await? else {
                continue;
            };
            let (records, short) = (page.records, page.is_short());
            let mut ended = false;
            {
                let mut ends = self.ends();
                if records == 0 {
                    let since = *empty_since.get_or_insert(rank);
                    if rank >= since + (EMPTY_PAGES_END - 1) * PAGE_ASSETS {
                        ends.empty_at = Some(ends.empty_at.map_or(since, |e| e.min(since)));
                        ended = true;
                    }
                } else {
                    empty_since = None;
                    ends.last_with_records =
                        Some(ends.last_with_records.map_or(rank, |l| l.max(rank)));
                    // Two records (master and asset) per asset.
                    if looks_cut(records) && rank + (records as u64).div_ceil(2) < self.counted_end
                    {
                        ends.short.push((rank, records));
                    }
                }
            }
            if !self.hand_over(page).await || ended {
                return Ok(());
            }
            if range.open_ended && short && rank + PAGE_ASSETS >= range.end {
                return Ok(());
            }
            rank += PAGE_ASSETS;
        }
    }

    /// Ask again for a page that looks cut short; a whole answer is handed over. One that
    /// never comes whole is what the server holds (its first answer was handed over already).
    async fn fetch_whole(&self, rank: u64) -> Result<(), CloudKitError> {
        for pause in CUT_SHORT_RETRIES {
            tokio::time::sleep(pause).await;
            match self.fetch(rank, true).await? {
                Fetched::Page(page) => {
                    tracing::info!(index = %self.index.describe(), rank, "a page answered cut short came whole when asked again");
                    self.hand_over(page).await;
                    return Ok(());
                }
                Fetched::Short { records } => {
                    tracing::debug!(index = %self.index.describe(), rank, records, "a page is short again");
                }
            }
        }
        tracing::warn!(index = %self.index.describe(), rank, "a page stayed short inside the index; records it lacks are reported as skipped");
        Ok(())
    }

    /// Ask again for the page where the records ended before the count; hand it over when it
    /// holds more records than the first answer.
    async fn fetch_fuller(&self, rank: u64, records: usize) -> Result<(), CloudKitError> {
        for pause in CUT_SHORT_RETRIES {
            tokio::time::sleep(pause).await;
            if let Fetched::Page(page) = self.fetch(rank, false).await?
                && page.records > records
            {
                tracing::warn!(index = %self.index.describe(), rank, first = records, again = page.records, "the last page was answered cut short; took the fuller answer");
                self.hand_over(page).await;
                return Ok(());
            }
        }
        Ok(())
    }

    async fn fetch(&self, rank: u64, require_full: bool) -> Result<Fetched, CloudKitError> {
        self.client
            .query_page(
                &self.library,
                &self.index,
                rank,
                &self.bodies,
                Some(&self.carry),
                self.urls,
                require_full,
            )
            .await
    }

    /// Count a page and pass it on; false when the consumer went away (the walk then ends
    /// incomplete).
    async fn hand_over(&self, page: Page) -> bool {
        if page.sync_token.is_some() {
            let mut t = self.first_token.lock().unwrap_or_else(|e| e.into_inner());
            if t.is_none() {
                *t = page.sync_token.clone();
            }
        }
        self.counters.pages.fetch_add(1, Ordering::Relaxed);
        self.counters
            .assets
            .fetch_add(page.assets.len() as u64, Ordering::Relaxed);
        if self.tx.send(page).await.is_err() {
            self.counters.discarded.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn ends(&self) -> std::sync::MutexGuard<'_, Ends> {
        self.ends.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_page_aligned_cover_the_count_and_end_open() {
        let r = rank_ranges(Some(100_000), 8);
        assert_eq!(r.len(), 8);
        assert_eq!(r[0].start, 0);
        assert!(r.iter().all(|x| x.start % PAGE_ASSETS == 0));
        assert!(r.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(
            r.last().map(|x| (x.end, x.open_ended)),
            Some((100_000, true))
        );
        assert!(r[..7].iter().all(|x| !x.open_ended));

        let small = rank_ranges(Some(150), 8);
        assert_eq!(small.len(), 2);
        assert_eq!((small[1].start, small[1].end), (100, 150));

        let unknown = rank_ranges(None, 8);
        assert_eq!(
            unknown,
            vec![RankRange {
                start: 0,
                end: 0,
                open_ended: true
            }]
        );
    }
}
