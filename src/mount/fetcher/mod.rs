//! Getting blocks of CDN files into the block cache, one transfer per block however many
//! readers want it (single-flight).
//!
//! A read asks for a byte range plus a read-ahead bound. Blocks found in the cache are served
//! from it; the missing ones are grouped into runs of consecutive blocks, each run fetched by
//! Range requests of at most [`FetcherConfig::max_transfer_blocks`] blocks (so a big window
//! becomes several transfers in parallel, and the blocks a reader waits for come in their own
//! small transfer). Every block in flight is registered in a table: a second reader of the same
//! block, or the mirror through [`BlockFetcher::ensure`], waits for that transfer instead of
//! starting one.
//!
//! Transfers run as their own tasks: a reader that gives up (its wait is bounded by
//! [`FetcherConfig::total_timeout`]) does not cancel the transfer other readers share, and
//! the transfer is itself bounded by the same timeout, retries transient failures with backoff,
//! and asks for a fresh URL when the CDN says the old one expired. Bytes are checked by
//! [`fetch::fetch_range`] (status, `Content-Range`, exact length, head of the file) and land
//! in the cache with their checksum.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;

use super::read::ReadPlan;
use super::source::ReadError;
use crate::cache::{BLOCK_SIZE, BlockCache, ContentKey};
use crate::fetch::{self, FetchConfig, FetchError, UrlProvider};

mod transfer;
mod writer;

/// Cached blocks loaded into memory ahead of a sequential reader.
const WARM_AHEAD: u64 = 4;

/// Tuning of CDN transfers for reads.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// Per-request settings (stall timeout, backoff, attempts per transfer).
    pub fetch: FetchConfig,
    /// Longest a read waits for the network, and longest a transfer runs, retries included.
    pub total_timeout: Duration,
    /// Largest transfer, in blocks.
    pub max_transfer_blocks: u64,
    /// Transfers running at once, over all files.
    pub max_concurrent_transfers: usize,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        FetcherConfig {
            fetch: FetchConfig {
                stall_timeout: Duration::from_secs(10),
                ..FetchConfig::default()
            },
            total_timeout: Duration::from_secs(20),
            max_transfer_blocks: 4,
            max_concurrent_transfers: 32,
        }
    }
}

/// A file the fetcher can get from the CDN.
pub struct RemoteFile {
    /// Cache identity of the content.
    pub content: ContentKey,
    /// Exact size.
    pub size: u64,
    /// Expected type of the content (checked on the first bytes).
    pub uti: String,
    /// Download URLs.
    pub urls: Arc<dyn UrlProvider>,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetcherStats {
    /// Transfers started (one per range of blocks).
    pub transfers: u64,
    /// HTTP requests made (attempts, including retries).
    pub requests: u64,
    /// Bytes received (a retry resumes after the last one: none is counted twice). Counted
    /// as they arrive, before any reader is handed them.
    pub bytes: u64,
    /// Transfers that ended in an error.
    pub failures: u64,
    /// Total time of transfers (from start to bytes in hand), in microseconds.
    pub transfer_us: u64,
}

/// The bytes of one block a transfer brings (from the block's start), or why it could not.
type BlockResult = Result<Bytes, Arc<ReadError>>;

/// One block on its way: resolved as soon as its bytes have arrived, while the rest of its
/// transfer is still streaming.
#[derive(Clone)]
struct Flight {
    /// The transfer it belongs to.
    id: u64,
    result: Shared<BoxFuture<'static, BlockResult>>,
}

/// Fetches blocks of CDN files into a [`BlockCache`], single-flight.
pub struct BlockFetcher {
    http: reqwest::Client,
    cfg: FetcherConfig,
    cache: Arc<BlockCache>,
    flights: Mutex<HashMap<(ContentKey, u64), Flight>>,
    permits: Arc<Semaphore>,
    next_id: AtomicU64,
    /// Cached blocks being loaded into the memory tier ahead of a reader.
    warming: Mutex<HashSet<(ContentKey, u64)>>,
    /// Complete contents being verified (to be served as complete files).
    verifying: Arc<Mutex<HashSet<ContentKey>>>,
    /// Stores of fetched blocks, done off the readers' way (see `writer.rs`).
    writer: writer::CacheWriter,
    transfers: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    failures: AtomicU64,
    transfer_us: AtomicU64,
}

/// Consecutive blocks fetched by one transfer.
struct Run {
    first: u64,
    last: u64,
    /// Bytes of block `first` already at hand (the transfer starts after them).
    prefix: Bytes,
    /// Absolute end of the bytes to fetch.
    end: u64,
    /// The last block is fetched whole, so the next block may join the run.
    open: bool,
    /// The run holds blocks a reader waits for (they travel apart from read-ahead).
    needed: bool,
}

/// Where the bytes of one needed block will come from.
enum Source {
    Ready(Bytes),
    Flight(Flight),
}

impl BlockFetcher {
    /// A fetcher using `http` to fill `cache`.
    pub fn new(http: reqwest::Client, cache: Arc<BlockCache>, cfg: FetcherConfig) -> Arc<Self> {
        let permits = Arc::new(Semaphore::new(cfg.max_concurrent_transfers.max(1)));
        Arc::new(BlockFetcher {
            http,
            cfg,
            cache,
            flights: Mutex::new(HashMap::new()),
            permits,
            next_id: AtomicU64::new(1),
            warming: Mutex::new(HashSet::new()),
            verifying: Arc::default(),
            writer: writer::CacheWriter::start(),
            transfers: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            transfer_us: AtomicU64::new(0),
        })
    }

    /// The cache this fetcher fills.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Stores every block fetched so far into the cache before returning (blocks are stored
    /// in the background, at idle priority). For an unmount: nothing fetched is lost to it.
    pub fn flush_stores(&self) {
        self.writer.flush();
    }

    /// Current counters.
    pub fn stats(&self) -> FetcherStats {
        FetcherStats {
            transfers: self.transfers.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            transfer_us: self.transfer_us.load(Ordering::Relaxed),
        }
    }

    /// Exactly bytes `[plan.offset, plan.offset + plan.len)` of `file` (`len` is clamped to
    /// the file), starting transfers for missing bytes up to `plan.fetch_to` (read-ahead before
    /// `plan.prefetch_from` is taken as already requested). Must run on a tokio runtime.
    pub async fn read(
        self: &Arc<Self>,
        file: &Arc<RemoteFile>,
        plan: &ReadPlan,
    ) -> Result<Bytes, ReadError> {
        let offset = plan.offset;
        let fetch_to = plan.fetch_to;
        let len = plan.len.min(file.size.saturating_sub(offset));
        if len == 0 {
            return Ok(Bytes::new());
        }
        let deadline = Instant::now() + self.cfg.total_timeout;
        let first = offset / BLOCK_SIZE;
        let last = (offset + len - 1) / BLOCK_SIZE;
        let need = |block: u64| {
            if block == last {
                offset + len - block * BLOCK_SIZE
            } else {
                block_len(file.size, block)
            }
        };
        // A transfer can bring less than a reader needs (it fetched a block's head for another
        // reader): then plan again, which fetches the rest.
        loop {
            let ahead = (fetch_to.max(offset + len), plan.prefetch_from);
            let sources = self.plan(file, first, last, need(last), ahead);
            let mut blocks = Vec::with_capacity(sources.len());
            for (i, source) in sources.into_iter().enumerate() {
                let block = first + i as u64;
                let data = match source {
                    Source::Ready(b) => b,
                    Source::Flight(f) => tokio::time::timeout_at(deadline, f.result.clone())
                        .await
                        .map_err(|_| ReadError::Timeout(self.cfg.total_timeout))?
                        .map_err(ReadError::Shared)?,
                };
                if (data.len() as u64) < need(block) {
                    break;
                }
                blocks.push(data);
            }
            if blocks.len() as u64 == last - first + 1 {
                let data = assemble(&blocks, offset - first * BLOCK_SIZE, len as usize);
                drop(blocks);
                self.release_passed(file, plan, first, last);
                return Ok(data);
            }
            if Instant::now() >= deadline {
                return Err(ReadError::Timeout(self.cfg.total_timeout));
            }
        }
    }

    /// A reader reading ahead (so moving forward) has read to the end of some of blocks
    /// `first..=last`: their memory-tier copies go, so the tier keeps room for the blocks
    /// fetched ahead of it (which would otherwise be evicted before being read, and read back
    /// from disk) and their buffers are reused for the next blocks.
    fn release_passed(&self, file: &RemoteFile, plan: &ReadPlan, first: u64, last: u64) {
        let end = plan.offset + plan.len;
        if plan.fetch_to <= end {
            return;
        }
        for b in first..=last {
            let block_end = ((b + 1) * BLOCK_SIZE).min(file.size);
            if block_end <= end {
                self.cache.release_hot(&file.content, b);
            }
        }
    }

    /// Verify a content whose blocks are all cached, off the request path, so later opens
    /// read it as a complete file (see [`BlockCache::verify_complete`]).
    pub fn verify_later(&self, key: ContentKey, size: u64) {
        {
            let mut verifying = self.verifying.lock().unwrap_or_else(|e| e.into_inner());
            // A few at a time (each reads a whole file; dozens piled up on a busy machine):
            // one left out is asked again at the file's next open.
            if verifying.len() >= MAX_VERIFYING || !verifying.insert(key.clone()) {
                return;
            }
        }
        let cache = self.cache.clone();
        let verifying = self.verifying.clone();
        // Spawned from a normal-priority thread (see `writer.rs`).
        self.writer.at_normal_priority(Box::new(move || {
            let spawned = std::thread::Builder::new()
                .name("cache-verify".into())
                .spawn({
                    let (key, verifying) = (key.clone(), verifying.clone());
                    move || {
                        cache.verify_complete(&key, size);
                        no_longer_verifying(&verifying, &key);
                    }
                });
            if let Err(e) = spawned {
                tracing::debug!(error = %e, "cannot start a cache verification");
                no_longer_verifying(&verifying, &key);
            }
        }));
    }

    /// Make sure bytes `[offset, offset + len)` of `file` are in the cache, sharing transfers
    /// with readers (the hook for the mirror).
    pub async fn ensure(
        self: &Arc<Self>,
        file: &Arc<RemoteFile>,
        offset: u64,
        len: u64,
    ) -> Result<(), ReadError> {
        let len = len.min(file.size.saturating_sub(offset));
        self.read(file, &ReadPlan::exact(offset, len))
            .await
            .map(|_| ())
    }

    /// For each block `first..=last` (the last needing its first `need_last` bytes), the bytes
    /// at hand or the flight that will bring them; starts transfers for what nobody has or
    /// fetches, up to byte `fetch_to` (`ahead.0`), looking at read-ahead blocks only from
    /// byte `ahead.1` on.
    fn plan(
        self: &Arc<Self>,
        file: &Arc<RemoteFile>,
        first: u64,
        last: u64,
        need_last: u64,
        ahead: (u64, u64),
    ) -> Vec<Source> {
        let (fetch_to, prefetch_from) = ahead;
        let key = &file.content;
        let size = file.size;
        let need = |b: u64| {
            if b == last {
                need_last
            } else {
                block_len(size, b)
            }
        };
        // Cache lookups of the needed blocks happen before taking the lock (they read disk).
        let mut cached: Vec<Bytes> = (first..=last)
            .map(|b| self.cache.get(key, b).unwrap_or_default())
            .collect();
        let fetch_to = fetch_to.min(size);
        let ahead_last = ((fetch_to.max(1) - 1) / BLOCK_SIZE).max(last);
        // How much of block b this plan wants to have: whole blocks, except a head-only fetch
        // ending inside the last block (`fetch_to` covers at least what is needed).
        let want = |b: u64| {
            let full = block_len(size, b);
            if b == ahead_last {
                full.min(fetch_to.saturating_sub(b * BLOCK_SIZE))
            } else {
                full
            }
        };

        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        let mut sources: Vec<Option<Source>> = (first..=last).map(|_| None).collect();
        let mut runs: Vec<Run> = Vec::new();
        let prefetch_first = (last + 1).max(prefetch_from / BLOCK_SIZE);
        let blocks = (first..=last).chain(prefetch_first..=ahead_last);
        for block in blocks {
            let needed = block <= last;
            let mut prefix = Bytes::new();
            if needed {
                let slot = (block - first) as usize;
                prefix = std::mem::take(&mut cached[slot]);
                if prefix.len() as u64 >= need(block) {
                    sources[slot] = Some(Source::Ready(prefix));
                    continue;
                }
                if let Some(f) = flights.get(&(key.clone(), block)) {
                    match f.result.peek() {
                        // In flight: wait for it (and plan again if it brings too little).
                        None => {
                            sources[slot] = Some(Source::Flight(f.clone()));
                            continue;
                        }
                        Some(Ok(got)) => {
                            let got = got.clone();
                            if got.len() as u64 >= need(block) {
                                sources[slot] = Some(Source::Ready(got));
                                continue;
                            }
                            if got.len() > prefix.len() {
                                prefix = got;
                            }
                        }
                        // Failed: start again.
                        Some(Err(_)) => {}
                    }
                } else if let Some(b) = self.cache.get(key, block) {
                    // A transfer landed between the lookup above and taking the lock.
                    if b.len() as u64 >= need(block) {
                        sources[slot] = Some(Source::Ready(b));
                        continue;
                    }
                    if b.len() > prefix.len() {
                        prefix = b;
                    }
                }
            } else {
                if flights.contains_key(&(key.clone(), block)) {
                    continue;
                }
                match self.cache.cached_len(key, block) {
                    Some(l) if l as u64 >= want(block) => continue,
                    // A head is cached (a peek, or a reader that fetched only what it needed):
                    // fetch only the rest. Without the page cache in front (direct I/O), every
                    // reader's small reads reach us and leave such heads behind.
                    Some(l) if l > 0 => prefix = self.cache.get(key, block).unwrap_or_default(),
                    _ => {}
                }
            }
            let end = block * BLOCK_SIZE + want(block);
            let full = want(block) == block_len(size, block);
            match runs.last_mut() {
                // Extend the current run: contiguous bytes, same kind, not too long.
                Some(r)
                    if r.last + 1 == block
                        && r.open
                        && prefix.is_empty()
                        && r.needed == needed
                        && block - r.first < self.cfg.max_transfer_blocks =>
                {
                    r.last = block;
                    r.end = end;
                    r.open = full;
                }
                _ => runs.push(Run {
                    first: block,
                    last: block,
                    prefix,
                    end,
                    open: full,
                    needed,
                }),
            }
        }
        for run in runs {
            let blocks = self.start_transfer(&mut flights, file, &run);
            for (b, flight) in (run.first..=run.last).zip(blocks) {
                if b >= first && b <= last {
                    sources[(b - first) as usize] = Some(Source::Flight(flight));
                }
            }
        }
        drop(flights);
        // Blocks just ahead that are on disk but not in memory: load (and verify) them in the
        // background, so a sequential reader of a cached file finds them ready.
        let last_block = (size.max(1) - 1) / BLOCK_SIZE;
        for b in last + 1..=(last + WARM_AHEAD).min(last_block) {
            if !self.cache.is_hot(key, b)
                && self.cache.contains(key, b)
                && self
                    .warming
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((key.clone(), b))
            {
                let this = self.clone();
                let key = key.clone();
                tokio::task::spawn_blocking(move || {
                    this.cache.get(&key, b);
                    this.warming
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(key, b));
                });
            }
        }
        sources
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Source::Ready(Bytes::new())))
            .collect()
    }
}

impl Drop for BlockFetcher {
    fn drop(&mut self) {
        tracing::debug!(fetcher = ?self.stats(), cache = ?self.cache.stats(), "read statistics");
    }
}

/// Verifications of complete contents running at once (see [`BlockFetcher::verify_later`]).
const MAX_VERIFYING: usize = 4;

/// Ends the verification of `key` in [`BlockFetcher::verify_later`]'s set.
fn no_longer_verifying(verifying: &Mutex<HashSet<ContentKey>>, key: &ContentKey) {
    verifying
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(key);
}

/// Length of block `idx` of a file of `size` bytes.
fn block_len(size: u64, idx: u64) -> u64 {
    (size.saturating_sub(idx * BLOCK_SIZE)).min(BLOCK_SIZE)
}

/// `len` bytes starting `skip` bytes into the concatenation of `blocks`.
fn assemble(blocks: &[Bytes], skip: u64, len: usize) -> Bytes {
    let skip = skip as usize;
    if blocks.len() == 1 {
        return blocks[0].slice(skip..skip + len);
    }
    let mut out = BytesMut::with_capacity(len);
    let mut skip = skip;
    for b in blocks {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let take = (b.len() - skip).min(len - out.len());
        out.extend_from_slice(&b[skip..skip + take]);
        skip = 0;
        if out.len() == len {
            break;
        }
    }
    out.freeze()
}
