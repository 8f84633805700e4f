//! The on-disk block cache: bytes of CDN files kept between reads and across mounts, bounded
//! by a byte budget.
//!
//! - Keyed by ([`ContentKey`], block index): the content key is derived from the version's
//!   checksum and size, so a new version of a photo never sees the old one's bytes.
//! - Blocks of [`BLOCK_SIZE`] bytes (the last block of a file is shorter; a block may also hold
//!   only a prefix, the head of a file fetched for a quick peek) in per-content sparse files
//!   (see `store`). The index of blocks lives in memory while the cache is open (lookups never
//!   wait for SQLite) and is kept on disk in SQLite (see `index`) by a background writer, so a
//!   restart is warm; opening loads it (about a second per million blocks, i.e. per TiB).
//! - Every block read from disk is verified against the CRC-32C recorded when it was written;
//!   a corrupt or missing block is dropped and reported as a miss (the caller refetches it),
//!   never served.
//! - LRU eviction by bytes happens synchronously before an insert, and never touches a block
//!   that a read has pinned.
//! - A small in-memory tier keeps recently verified blocks, so the kernel's 128 KiB reads of a
//!   1 MiB block cost one disk read and one checksum.
//! - One process per cache directory (an exclusive `flock`); a damaged or foreign index is
//!   rebuilt empty with a warning instead of failing.
//! - Locks, when one is held while another is taken, in this order only: `table`, then
//!   `pins`, `content_pins`, `complete`, `written`, `hot` (an eviction holds the table while
//!   it forgets complete contents; taking `complete` first deadlocked the mount).

mod budget;
mod buffers;
mod complete;
mod index;
mod memory;
mod open;
mod store;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use budget::is_disk_full;
use buffers::BufferPool;
use index::{Journal, Op, Row};
use memory::{BlockId, BlockTable, HotTier, Meta};
use store::BlockFiles;

pub use buffers::BlockBuf;
pub use complete::CompleteFile;

/// Size of a cache block; also the unit of CDN range requests.
pub const BLOCK_SIZE: u64 = 1 << 20;

/// Identity of a file's content: the same version of the same photo always has the same key,
/// any other content a different one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentKey(Arc<str>);

impl ContentKey {
    /// Key of the version with Apple's `fileChecksum` and exact size.
    pub fn new(checksum: &str, size: u64) -> Self {
        let mut h = Sha256::new();
        h.update(checksum.as_bytes());
        h.update([0u8]);
        h.update(size.to_le_bytes());
        ContentKey(hex::encode(&h.finalize()[..16]).into())
    }

    /// The key as a hex string (also the name of its block file).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the cache lives and how big it may grow.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The cache directory (created `0700` if missing).
    pub dir: PathBuf,
    /// Upper bound of the bytes of all cached blocks.
    pub max_bytes: u64,
    /// Bytes of recently verified blocks kept in memory.
    pub memory_bytes: u64,
}

impl CacheConfig {
    /// A cache in `dir` bounded by `max_bytes`, with the default memory tier (64 MiB).
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        CacheConfig {
            dir: dir.into(),
            max_bytes,
            memory_bytes: 64 * BLOCK_SIZE,
        }
    }
}

/// Counters for tests, benchmarks and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Blocks served from memory or disk.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Blocks found corrupt or missing on disk and dropped.
    pub corrupt: u64,
    /// Blocks evicted to make room.
    pub evictions: u64,
    /// Blocks written.
    pub inserts: u64,
    /// Bytes of all indexed blocks now.
    pub bytes: u64,
    /// Indexed blocks now.
    pub blocks: u64,
}

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cache directory {} is in use by another icloudpd-rs process{}; stop it (two mounts of \
         one account cannot share a cache) or pass another --cache-dir",
        dir.display(), holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Locked {
        dir: PathBuf,
        /// "pid 1234: icloudpd-rs mount", when known.
        holder: Option<String>,
    },
    #[error("cache index {path}: {source}")]
    Index {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// Block bytes written by [`BlockCache::write_fetched`], waiting to be indexed (`None`: not
/// written, the block being empty or too large).
pub struct BlockWrite(Option<std::io::Result<(std::fs::Metadata, std::fs::Metadata)>>);

/// A content held from eviction while blocks of it are being stored (see
/// [`BlockCache::pin_content`]).
pub struct ContentPin {
    cache: Arc<BlockCache>,
    key: ContentKey,
}

impl Drop for ContentPin {
    fn drop(&mut self) {
        self.cache.unpin_content(&self.key);
    }
}

/// What `put` did.
enum Put {
    Stored,
    AlreadyThere,
    Refused,
}

/// The block cache of one cache directory. Cheap to share behind an `Arc`.
pub struct BlockCache {
    dir: PathBuf,
    /// `--cache-size`, as configured.
    configured_bytes: u64,
    /// The byte budget: `configured_bytes` until the disk runs out of space first, then what
    /// it held at that point (see [`BlockCache::shrink_after_disk_full`]).
    max_bytes: AtomicU64,
    /// A full disk or another write failure has been reported (once per mount, not per block).
    write_failure_reported: AtomicBool,
    files: BlockFiles,
    table: Mutex<BlockTable>,
    journal: Journal,
    pins: Mutex<HashMap<BlockId, u32>>,
    /// Contents held open as complete files (see `complete`): never evicted.
    content_pins: Mutex<HashMap<ContentKey, u32>>,
    /// Contents verified complete (with their block file's stamp then) and whole since.
    complete: Mutex<HashMap<ContentKey, complete::FileStamp>>,
    /// Blocks this process wrote, per content, with the block file's stamp after the last
    /// write (see `complete`): verifying the content need not read them back.
    written: Mutex<HashMap<ContentKey, complete::Written>>,
    hot: Mutex<HotTier>,
    buffers: Arc<BufferPool>,
    can_punch: bool,
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    evictions: AtomicU64,
    inserts: AtomicU64,
    /// Held for the life of the cache: the `flock` that keeps other processes out.
    _lock: File,
}

/// Keeps a block from being evicted while it is read. Dropping it unpins.
pub struct PinGuard<'a> {
    cache: &'a BlockCache,
    id: BlockId,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        let mut pins = lock(&self.cache.pins);
        if let Some(n) = pins.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.id);
            }
        }
    }
}

impl BlockCache {
    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The byte budget (lower than `--cache-size` once the disk turned out to hold less).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// An empty buffer for `len` bytes of a block (whole-block buffers are reused).
    pub fn buffer(&self, len: usize) -> BlockBuf {
        self.buffers.take(len)
    }

    /// Keep block `idx` of `key` from eviction until the guard is dropped.
    pub fn pin(&self, key: &ContentKey, idx: u64) -> PinGuard<'_> {
        let id = (key.clone(), idx);
        *lock(&self.pins).entry(id.clone()).or_insert(0) += 1;
        PinGuard { cache: self, id }
    }

    /// The verified bytes of block `idx` of `key` (the whole block or a prefix of it), or
    /// `None` (never wrong bytes).
    pub fn get(&self, key: &ContentKey, idx: u64) -> Option<Bytes> {
        let id = (key.clone(), idx);
        if let Some(data) = lock(&self.hot).get(&id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(data);
        }
        let _pin = self.pin(key, idx);
        let Some(meta) = lock(&self.table).touch(&id) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.journal.send(Op::Touch {
            key: key.as_str().to_string(),
            idx,
            last_use: meta.last_use,
        });
        let mut buf = self.buffer(meta.len as usize);
        let read = self.files.read(
            key.as_str(),
            idx * BLOCK_SIZE,
            meta.len as usize,
            buf.vec_mut(),
        );
        let verified = match read {
            Ok(true) if crc32c::crc32c(buf.as_ref()) == meta.sum => Some(buf),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, key = key.as_str(), idx, "reading a cached block failed");
                None
            }
        };
        match verified {
            Some(data) => {
                let data = data.freeze();
                lock(&self.hot).put(id.clone(), data.clone());
                // A longer copy stored since the row was read (its store found no shorter copy
                // here to replace): this one must not hide it, or its rest is fetched again.
                if lock(&self.table).get(&id).is_some_and(|m| m.len > meta.len) {
                    let mut memory = lock(&self.hot);
                    if memory.len_of(&id) == Some(meta.len) {
                        memory.remove(&id);
                    }
                }
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(data)
            }
            None => {
                tracing::warn!(
                    key = key.as_str(),
                    idx,
                    "cached block is corrupt or missing; dropping it"
                );
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.drop_block(&id, meta);
                None
            }
        }
    }

    /// Whether block `idx` of `key` is indexed (not verified; for planning fetches only).
    pub fn contains(&self, key: &ContentKey, idx: u64) -> bool {
        self.cached_len(key, idx).is_some()
    }

    /// How many bytes of block `idx` of `key` are cached (a block may hold only a prefix:
    /// the head of a file fetched for a quick peek). Not verified; for planning fetches only.
    pub fn cached_len(&self, key: &ContentKey, idx: u64) -> Option<u32> {
        let id = (key.clone(), idx);
        if let Some(len) = lock(&self.hot).len_of(&id) {
            return Some(len);
        }
        lock(&self.table).get(&id).map(|m| m.len)
    }

    /// Let go of the memory-tier copy of block `idx` of `key` (a sequential reader is past it:
    /// the kernel's page cache holds those bytes now). The block stays on disk.
    pub fn release_hot(&self, key: &ContentKey, idx: u64) {
        lock(&self.hot).remove(&(key.clone(), idx));
    }

    /// Whether block `idx` of `key` is in the memory tier (reading it costs no disk read).
    pub fn is_hot(&self, key: &ContentKey, idx: u64) -> bool {
        lock(&self.hot).len_of(&(key.clone(), idx)).is_some()
    }

    /// Store block `idx` of `key` (the whole block, or a prefix of it: a longer prefix or the
    /// whole block replaces it later), evicting least recently used unpinned blocks first.
    /// Returns `false` when it was not stored (no room without evicting pinned blocks, or a
    /// disk error, which is logged): the cache is an optimisation, its failures never fail a
    /// read.
    pub fn put(&self, key: &ContentKey, idx: u64, data: &[u8]) -> bool {
        self.put_bytes(key, idx, Bytes::copy_from_slice(data))
    }

    /// [`BlockCache::put`] without copying `data` (it is shared with the memory tier).
    pub fn put_bytes(&self, key: &ContentKey, idx: u64, data: Bytes) -> bool {
        let len = data.len() as u64;
        if len == 0 || len > BLOCK_SIZE || len > self.max_bytes() {
            return false;
        }
        let sum = crc32c::crc32c(&data);
        // Bytes first, row second: a crash in between leaves bytes no row claims.
        let written = self.files.write(key.as_str(), idx * BLOCK_SIZE, &data);
        self.finish_store(key, idx, data, true, sum, written)
    }

    /// Hand the bytes of block `idx` of `key`, just fetched, to the memory tier ahead of
    /// their store by [`BlockCache::write_fetched`] and [`BlockCache::index_fetched`]. A transfer does this before its readers get
    /// the block: a sequential reader releases it (`release_hot`) as soon as it has passed it,
    /// whereas a store that came after the reader (the cache writer running behind) used to
    /// put the block back into the tier, where it held its buffer until evicted: 64 MiB of
    /// passed blocks, each a fresh buffer to fault in.
    pub fn hold_hot(&self, key: &ContentKey, idx: u64, data: Bytes) {
        if !data.is_empty() && data.len() as u64 <= BLOCK_SIZE {
            lock(&self.hot).put((key.clone(), idx), data);
        }
    }

    /// The first half of storing a fetched block already handed to [`BlockCache::hold_hot`],
    /// for a thread that must take no lock a reader takes (the idle-priority cache writer: preempted while holding one, it stalled
    /// every reader): the bytes of block `idx` of `key`, written to its block file, not yet
    /// indexed. [`BlockCache::index_fetched`] finishes; meanwhile the content should be held
    /// by [`BlockCache::pin_content`] so that no eviction frees what was just written.
    pub fn write_fetched(&self, key: &ContentKey, idx: u64, data: &[u8]) -> BlockWrite {
        let len = data.len() as u64;
        if len == 0 || len > BLOCK_SIZE || len > self.max_bytes() {
            return BlockWrite(None);
        }
        BlockWrite(Some(self.files.write(key.as_str(), idx * BLOCK_SIZE, data)))
    }

    /// The second half: index the block [`BlockCache::write_fetched`] wrote, the memory tier
    /// left as the readers left it. `sum` is the CRC-32C of `data`, computed as its bytes were
    /// assembled (while they were in the CPU's cache: a second pass over the block from memory
    /// cost a twelfth of the daemon's CPU on a cold read).
    pub fn index_fetched(
        &self,
        key: &ContentKey,
        idx: u64,
        data: Bytes,
        sum: u32,
        write: BlockWrite,
    ) -> bool {
        match write.0 {
            Some(written) => self.finish_store(key, idx, data, false, sum, written),
            None => false,
        }
    }

    /// Hold `key` from eviction (as an open complete file is) until the pin is dropped.
    pub fn pin_content(self: &Arc<Self>, key: &ContentKey) -> ContentPin {
        *lock(&self.content_pins).entry(key.clone()).or_insert(0) += 1;
        ContentPin {
            cache: self.clone(),
            key: key.clone(),
        }
    }

    /// Index a block whose bytes `written` wrote (retrying once after making room when the
    /// disk was full).
    fn finish_store(
        &self,
        key: &ContentKey,
        idx: u64,
        data: Bytes,
        hot: bool,
        sum: u32,
        mut written: std::io::Result<(std::fs::Metadata, std::fs::Metadata)>,
    ) -> bool {
        let len = data.len() as u64;
        let id = (key.clone(), idx);
        let offset = idx * BLOCK_SIZE;
        if let Err(e) = &written
            && is_disk_full(e)
            && self.shrink_after_disk_full(len, &id)
        {
            written = self.files.write(key.as_str(), offset, &data);
        }
        let stamps = match written {
            Ok(stamps) => stamps,
            Err(e) => {
                self.report_write_failure(&e);
                if !hot {
                    lock(&self.hot).remove(&id);
                }
                // A partial write may hold space: give it back, unless an older (shorter)
                // copy of the block lives there.
                if lock(&self.table).get(&id).is_none() {
                    let _ = self.files.punch(key.as_str(), offset, len);
                }
                return false;
            }
        };
        let mut table = lock(&self.table);
        let previous = table.get(&id);
        let outcome = match previous {
            // Content under a key never changes: a longer (or equal) prefix is already there.
            Some(old) if old.len as u64 >= len => Put::AlreadyThere,
            _ if self.make_room(&mut table, len, &id) => {
                let now = table.tick();
                let meta = Meta {
                    len: len as u32,
                    sum,
                    last_use: now,
                    copy: now,
                };
                table.insert(id.clone(), meta);
                self.journal.send(Op::Insert(Row {
                    key: key.as_str().to_string(),
                    idx,
                    len: meta.len,
                    sum,
                    last_use: meta.last_use,
                }));
                Put::Stored
            }
            _ => Put::Refused,
        };
        drop(table);
        match outcome {
            Put::Stored => {
                self.inserts.fetch_add(1, Ordering::Relaxed);
                self.vouch(&id, stamps);
                // A shorter copy in the memory tier (a head loaded back from disk while this
                // block was in flight) would hide the whole block from the next lookup and
                // get its rest fetched again.
                let mut memory = lock(&self.hot);
                if hot || memory.len_of(&id).is_some_and(|l| u64::from(l) < len) {
                    memory.put(id, data);
                }
                true
            }
            Put::AlreadyThere => true,
            Put::Refused => {
                if !hot {
                    lock(&self.hot).remove(&id);
                }
                // Give the space back, unless an older (shorter) copy of the block lives there.
                if previous.is_none()
                    && let Err(e) = self.files.punch(key.as_str(), offset, len)
                {
                    tracing::debug!(error = %e, "could not free an unstored block");
                }
                false
            }
        }
    }

    /// Forget a block found bad, only if it is still the copy that was read: by then another
    /// reader may have dropped it and stored a fresh copy (same length, same checksum), which
    /// must stay.
    fn drop_block(&self, id: &BlockId, seen: Meta) {
        let mut table = lock(&self.table);
        let current = table.get(id);
        if current.is_some_and(|m| m.copy == seen.copy)
            && let Some((meta, last)) = table.remove(id)
        {
            self.forget_complete(&id.0);
            self.journal.send(Op::Remove {
                key: id.0.as_str().to_string(),
                idx: id.1,
            });
            // Never free space under a complete file someone has open.
            if !self.content_pinned(&id.0) {
                self.release_space(id, meta.len as u64, last);
            }
            drop(table);
            lock(&self.hot).remove(id);
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let table = lock(&self.table);
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            inserts: self.inserts.load(Ordering::Relaxed),
            bytes: table.total_bytes(),
            blocks: table.len(),
        }
    }

    /// Wait until the on-disk index has every change made so far.
    pub fn flush(&self) {
        self.journal.flush();
    }

    /// Forget the in-memory tier (tests use it to force reads from disk).
    pub fn drop_memory_tier(&self) {
        lock(&self.hot).clear();
    }

    /// Path of the sparse file holding the blocks of `key` (tests corrupt it on purpose).
    pub fn block_file(&self, key: &ContentKey) -> PathBuf {
        self.files.path(key.as_str())
    }
}

/// Lock a mutex, recovering from poisoning (a panicked holder cannot leave these structures
/// inconsistent in a way that matters more than stopping the mount).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
