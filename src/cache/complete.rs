//! Complete files: when every block of a content is cached in full and has been verified once
//! against its checksums, its sparse block file *is* the file (block `i` sits at byte
//! `i * BLOCK_SIZE`). It can then be read directly, and handed to the kernel for passthrough,
//! like a mirrored file: a cached photo reads at local-disk speed instead of block by block
//! through the daemon.
//!
//! While a [`CompleteFile`] is alive its content is pinned: eviction skips its blocks and a
//! damaged block found by another reader is forgotten without punching a hole under it. Any
//! block of a content leaving the cache makes it incomplete again.
//!
//! Reads of a complete file are not checked block by block (the kernel may read it without
//! the daemon). What guards them instead is the file's identity and change times at the
//! verification: a block file written since (by anyone) is verified again before it is
//! trusted. That is the guarantee a mirrored file has; silent media corruption under an
//! unchanged file is the filesystem's to catch.
//!
//! The verification reads back only blocks this process did not write itself. A block it
//! wrote is in the page cache exactly as written; what could make it wrong is another writer
//! of the file, and every store compares the file's stamp before its write with the stamp
//! after the previous one: any other write in between (visible on the stamp: the kernel
//! gives a changed file a fresh fine-grained time once its times have been looked at) drops
//! what was vouched for. Blocks from earlier runs (a crash may have left an indexed block
//! torn, or the file may have been changed while no process held the cache) are read and
//! checked. For a cold read of a large video this saves reading the whole file back: a
//! tenth of the daemon's CPU.

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use super::memory::BlockTable;
use super::{BLOCK_SIZE, BlockCache, ContentKey, lock};

/// Number of blocks of a file of `size` bytes.
fn blocks_of(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE)
}

/// Length of block `idx` of a file of `size` bytes.
fn block_len(size: u64, idx: u64) -> u64 {
    size.saturating_sub(idx * BLOCK_SIZE).min(BLOCK_SIZE)
}

/// What identifies a block file's state: any write changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    pub(super) fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

/// Contents whose written blocks are remembered at most (a few hundred KiB).
const MAX_WRITTEN: usize = 4096;

/// Blocks of one content this process wrote, and the block file's stamp after the last of
/// those writes.
#[derive(Debug, Default)]
pub(super) struct Written {
    stamp: Option<FileStamp>,
    blocks: HashSet<u64>,
}

/// A complete, verified cached file, open for reading; keeps its blocks in the cache.
pub struct CompleteFile {
    cache: Arc<BlockCache>,
    key: ContentKey,
    file: File,
}

impl CompleteFile {
    /// The open file (exactly the content's bytes).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for CompleteFile {
    fn drop(&mut self) {
        self.cache.unpin_content(&self.key);
    }
}

impl BlockCache {
    /// Whether every block of `key` (a file of `size` bytes) is cached in full. Not verified.
    pub fn is_complete(&self, key: &ContentKey, size: u64) -> bool {
        if size == 0 {
            return false;
        }
        whole_in(&lock(&self.table), key, size)
    }

    /// Whether `key` was verified complete (and has lost no block since).
    pub fn is_verified_complete(&self, key: &ContentKey) -> bool {
        lock(&self.complete).contains_key(key)
    }

    fn stamp(&self, key: &ContentKey) -> Option<FileStamp> {
        std::fs::metadata(self.files.path(key.as_str()))
            .ok()
            .map(|m| FileStamp::of(&m))
    }

    /// Check every block of a complete content against its checksum (reading it from disk,
    /// around the memory tier); a damaged block is dropped. Returns whether the content is now
    /// known complete and sound. Costs a read of the file: call it off the request path.
    pub fn verify_complete(&self, key: &ContentKey, size: u64) -> bool {
        if self.is_verified_complete(key) {
            return true;
        }
        if !self.is_complete(key, size) {
            return false;
        }
        // Taken before the reads: a write during them shows as a different stamp after.
        let Some(before) = self.stamp(key) else {
            return false;
        };
        // Blocks written by this process with nobody writing the file since (see the module
        // docs): no need to read them back.
        let vouched: HashSet<u64> = match lock(&self.written).get(key) {
            Some(w) if w.stamp == Some(before) => w.blocks.clone(),
            _ => HashSet::new(),
        };
        let mut buf = Vec::new();
        for idx in 0..blocks_of(size) {
            let id = (key.clone(), idx);
            let Some(meta) = lock(&self.table).get(&id) else {
                return false;
            };
            if vouched.contains(&idx) {
                continue;
            }
            let read = self
                .files
                .read(key.as_str(), idx * BLOCK_SIZE, meta.len as usize, &mut buf);
            match read {
                Ok(true) if crc32c::crc32c(&buf) == meta.sum => {}
                _ => {
                    tracing::warn!(
                        key = key.as_str(),
                        idx,
                        "cached block is corrupt or missing; dropping it"
                    );
                    self.corrupt
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.drop_block(&id, meta);
                    return false;
                }
            }
        }
        // Blocks may have gone while they were read: only a content still whole counts. The
        // table is locked before `complete`, the order every path takes (an eviction holds
        // the table when it forgets a complete content; the reverse order deadlocked).
        let table = lock(&self.table);
        let mut complete = lock(&self.complete);
        if whole_in(&table, key, size) && self.stamp(key) == Some(before) && before.len == size {
            complete.insert(key.clone(), before);
            lock(&self.written).remove(key);
            true
        } else {
            false
        }
    }

    /// The verified complete file of `key`, open and pinned; `None` when it is not one.
    pub fn open_complete(self: &Arc<Self>, key: &ContentKey, size: u64) -> Option<CompleteFile> {
        if !self.is_verified_complete(key) {
            return None;
        }
        *lock(&self.content_pins).entry(key.clone()).or_insert(0) += 1;
        let file = match File::open(self.files.path(key.as_str())) {
            Ok(f) => f,
            Err(_) => {
                self.unpin_content(key);
                return None;
            }
        };
        let guard = CompleteFile {
            cache: self.clone(),
            key: key.clone(),
            file,
        };
        // Pinned now: check it lost no block before the pin took hold and was not written
        // since it was verified.
        let verified = lock(&self.complete).get(key).copied();
        let now = guard.file.metadata().ok().map(|m| FileStamp::of(&m));
        match (verified, now) {
            (Some(v), Some(n)) if v == n && n.len == size => Some(guard),
            (Some(_), _) => {
                tracing::debug!(
                    key = key.as_str(),
                    "cached file changed since it was verified"
                );
                self.forget_complete(key);
                None
            }
            _ => None,
        }
    }

    pub(super) fn unpin_content(&self, key: &ContentKey) {
        let mut pins = lock(&self.content_pins);
        if let Some(n) = pins.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                pins.remove(key);
            }
        }
    }

    /// A block of `key` left the cache: the content is no longer complete (and what this
    /// process wrote of it is no longer vouched for).
    pub(super) fn forget_complete(&self, key: &ContentKey) {
        lock(&self.complete).remove(key);
        lock(&self.written).remove(key);
    }

    /// Block `id` was just stored by this process: `stamps` are its block file's metadata
    /// just before and just after the write. It is vouched for along with the blocks written
    /// before it, unless the file changed between the previous store and this one (then only
    /// this block is).
    pub(super) fn vouch(&self, id: &(ContentKey, u64), stamps: (Metadata, Metadata)) {
        let (before, after) = (FileStamp::of(&stamps.0), FileStamp::of(&stamps.1));
        let mut written = lock(&self.written);
        if written.len() >= MAX_WRITTEN && !written.contains_key(&id.0) {
            // Many partly fetched contents (thumbnail heads): forgetting costs only reads.
            written.clear();
        }
        let w = written.entry(id.0.clone()).or_default();
        if w.stamp != Some(before) {
            w.blocks.clear();
        }
        w.blocks.insert(id.1);
        w.stamp = Some(after);
    }

    /// Whether an open [`CompleteFile`] pins `key`.
    pub(super) fn content_pinned(&self, key: &ContentKey) -> bool {
        lock(&self.content_pins).contains_key(key)
    }
}

/// Whether `table` holds every block of a content of `size` bytes, each whole.
fn whole_in(table: &BlockTable, key: &ContentKey, size: u64) -> bool {
    // Asked after every store of a block: the count rules most contents out at once (looking
    // at every block each time cost a streaming read O(blocks²)).
    if table.blocks_of_content(key) < blocks_of(size) {
        return false;
    }
    (0..blocks_of(size)).all(|idx| {
        table
            .get(&(key.clone(), idx))
            .is_some_and(|m| m.len as u64 == block_len(size, idx))
    })
}
