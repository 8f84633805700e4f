//! Staying within the byte budget: least recently used blocks make room for new ones (never a
//! pinned one), their disk space is given back, and a disk that fills up before the budget is
//! reached lowers the budget to what it holds.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::index::Op;
use super::memory::{BlockId, BlockTable};
use super::{BLOCK_SIZE, BlockCache, ContentKey, lock};

impl BlockCache {
    /// The disk filled up before the cache reached its budget: the budget becomes what the
    /// cache holds now, and older unpinned blocks are evicted to make room for `len` bytes of
    /// `id` (their space is freed on disk). True when something was freed, so a second write
    /// may fit.
    pub(super) fn shrink_after_disk_full(&self, len: u64, id: &BlockId) -> bool {
        let mut table = lock(&self.table);
        let held = table.total_bytes();
        let before = self.max_bytes.fetch_min(held, Ordering::Relaxed);
        if !self.write_failure_reported.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dir = %self.dir.display(),
                cache_size = self.configured_bytes,
                now_at_most = held.min(before),
                "the cache's disk is full: the cache now keeps only what fits there (reads \
                 are not affected); free space there or pass a smaller --cache-size"
            );
        }
        held > 0 && len <= held && self.make_room(&mut table, len, id)
    }

    /// Says once per mount that blocks are not being cached, and why; later failures go to
    /// the debug log (a full disk would otherwise log a line per block).
    pub(super) fn report_write_failure(&self, e: &std::io::Error) {
        if self.write_failure_reported.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %e, "writing a cache block failed");
        } else {
            tracing::warn!(
                dir = %self.dir.display(),
                error = %e,
                "writing to the cache failed: reads go on from the network, uncached \
                 (further failures are logged at debug level)"
            );
        }
    }

    /// Evict least recently used blocks until the cache fits its budget: a cache filled under
    /// a larger `--cache-size` is trimmed when it is opened, not at the first read.
    pub(super) fn trim_to_budget(&self) {
        let mut table = lock(&self.table);
        let before = table.total_bytes();
        if before <= self.max_bytes() {
            return;
        }
        let nothing: BlockId = (ContentKey(Arc::from("")), u64::MAX);
        self.make_room(&mut table, 0, &nothing);
        tracing::info!(
            before,
            after = table.total_bytes(),
            budget = self.max_bytes(),
            "the cache was larger than its size limit; trimmed"
        );
    }

    /// Evict least recently used unpinned blocks until `len` more bytes fit. `id` is the block
    /// being inserted (its own older copy is replaced, not evicted).
    pub(super) fn make_room(&self, table: &mut BlockTable, len: u64, id: &BlockId) -> bool {
        let max_bytes = self.max_bytes();
        let own = table.get(id).map_or(0, |m| m.len as u64);
        if table.total_bytes() - own + len <= max_bytes {
            return true;
        }
        let pins = lock(&self.pins);
        let content_pins = lock(&self.content_pins);
        let mut victims = Vec::new();
        let mut freed = 0u64;
        for candidate in table.oldest() {
            if table.total_bytes() - own - freed + len <= max_bytes {
                break;
            }
            if candidate == id
                || pins.contains_key(candidate)
                || content_pins.contains_key(&candidate.0)
            {
                continue;
            }
            freed += table.get(candidate).map_or(0, |m| m.len as u64);
            victims.push(candidate.clone());
        }
        drop(content_pins);
        drop(pins);
        if table.total_bytes() - own - freed + len > max_bytes {
            return false;
        }
        for victim in victims {
            self.forget_complete(&victim.0);
            if let Some((meta, last)) = table.remove(&victim) {
                self.journal.send(Op::Remove {
                    key: victim.0.as_str().to_string(),
                    idx: victim.1,
                });
                // Never unlink the file the new block was just written into.
                self.release_space(&victim, meta.len as u64, last && victim.0 != id.0);
                lock(&self.hot).remove(&victim);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    /// Free the disk space of a block that is no longer indexed.
    pub(super) fn release_space(&self, id: &BlockId, len: u64, last_of_content: bool) {
        let key = id.0.as_str();
        let res = if last_of_content {
            self.files.remove(key)
        } else if self.can_punch {
            self.files.punch(key, id.1 * BLOCK_SIZE, len)
        } else {
            Ok(())
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, key, idx = id.1, "freeing a cache block failed");
        }
    }
}

/// No space left (or over quota) on the cache's file system.
pub(super) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}
