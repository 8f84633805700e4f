//! The cache's working state in memory: which blocks are on disk (loaded from the index at open,
//! so a lookup never waits for SQLite), their LRU order, and the hot tier of recently verified
//! block bytes.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use lru::LruCache;

use super::ContentKey;

pub(crate) type BlockId = (ContentKey, u64);

/// What is known about a block on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub len: u32,
    pub sum: u32,
    pub last_use: u64,
    /// Which copy of the block this is: distinct for every store. A refetched block has the
    /// same length and checksum as the damaged copy it replaces; only this tells them apart.
    pub copy: u64,
}

/// All blocks on disk, by id and by last use.
#[derive(Default)]
pub(crate) struct BlockTable {
    blocks: HashMap<BlockId, Meta>,
    /// last_use -> block: the LRU order (every `last_use` is distinct).
    lru: BTreeMap<u64, BlockId>,
    /// Blocks per content (a content's file is deleted with its last block).
    per_content: HashMap<ContentKey, u32>,
    total_bytes: u64,
    clock: u64,
}

impl BlockTable {
    /// Bytes of all blocks.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Number of blocks of content `key`.
    pub fn blocks_of_content(&self, key: &ContentKey) -> u64 {
        self.per_content.get(key).map_or(0, |&n| n as u64)
    }

    /// Number of blocks.
    pub fn len(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// A new, distinct `last_use` value.
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The block's metadata.
    pub fn get(&self, id: &BlockId) -> Option<Meta> {
        self.blocks.get(id).copied()
    }

    /// Mark a block used; returns its metadata with the new `last_use`.
    pub fn touch(&mut self, id: &BlockId) -> Option<Meta> {
        let now = self.tick();
        let meta = self.blocks.get_mut(id)?;
        self.lru.remove(&meta.last_use);
        meta.last_use = now;
        self.lru.insert(now, id.clone());
        Some(*meta)
    }

    /// Record a block (replacing any previous entry for it).
    pub fn insert(&mut self, id: BlockId, meta: Meta) {
        self.clock = self.clock.max(meta.last_use);
        if let Some(old) = self.blocks.insert(id.clone(), meta) {
            self.lru.remove(&old.last_use);
            self.total_bytes -= old.len as u64;
        } else {
            *self.per_content.entry(id.0.clone()).or_insert(0) += 1;
        }
        self.total_bytes += meta.len as u64;
        self.lru.insert(meta.last_use, id);
    }

    /// Forget a block; returns its metadata and whether it was its content's last block.
    pub fn remove(&mut self, id: &BlockId) -> Option<(Meta, bool)> {
        let meta = self.blocks.remove(id)?;
        self.lru.remove(&meta.last_use);
        self.total_bytes -= meta.len as u64;
        let last = match self.per_content.get_mut(&id.0) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.per_content.remove(&id.0);
                true
            }
        };
        Some((meta, last))
    }

    /// Blocks from the least recently used on.
    pub fn oldest(&self) -> impl Iterator<Item = &BlockId> {
        self.lru.values()
    }
}

/// Recently verified block bytes, bounded by bytes.
pub(crate) struct HotTier {
    blocks: LruCache<BlockId, Bytes>,
    bytes: u64,
    max_bytes: u64,
}

impl HotTier {
    pub fn new(max_bytes: u64) -> Self {
        HotTier {
            blocks: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
        }
    }

    pub fn get(&mut self, id: &BlockId) -> Option<Bytes> {
        self.blocks.get(id).cloned()
    }

    pub fn len_of(&self, id: &BlockId) -> Option<u32> {
        self.blocks.peek(id).map(|b| b.len() as u32)
    }

    pub fn put(&mut self, id: BlockId, data: Bytes) {
        if data.len() as u64 > self.max_bytes {
            return;
        }
        // Content under a key never changes, so a copy at least as long is as good. Keeping it
        // matters: stores of a block's head and of the whole block (or a read of an older
        // copy) may reach here in either order, and a shorter copy left here would hide the
        // rest of the block from readers, who would fetch it a second time.
        if self
            .blocks
            .peek(&id)
            .is_some_and(|old| old.len() >= data.len())
        {
            self.blocks.promote(&id);
            return;
        }
        self.bytes += data.len() as u64;
        if let Some(old) = self.blocks.put(id, data) {
            self.bytes -= old.len() as u64;
        }
        while self.bytes > self.max_bytes {
            match self.blocks.pop_lru() {
                Some((_, old)) => self.bytes -= old.len() as u64,
                None => break,
            }
        }
    }

    pub fn remove(&mut self, id: &BlockId) {
        if let Some(old) = self.blocks.pop(id) {
            self.bytes -= old.len() as u64;
        }
    }

    pub fn clear(&mut self) {
        self.blocks.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(k: &str, i: u64) -> BlockId {
        (ContentKey::new(k, 1), i)
    }

    #[test]
    fn table_tracks_bytes_order_and_last_block_of_a_content() {
        let mut t = BlockTable::default();
        for (k, i, len) in [("a", 0, 100), ("a", 1, 50), ("b", 0, 10)] {
            let now = t.tick();
            t.insert(
                id(k, i),
                Meta {
                    len,
                    sum: 0,
                    last_use: now,
                    copy: now,
                },
            );
        }
        assert_eq!((t.total_bytes(), t.len()), (160, 3));
        t.touch(&id("a", 0)).unwrap();
        let order: Vec<BlockId> = t.oldest().cloned().collect();
        assert_eq!(order, vec![id("a", 1), id("b", 0), id("a", 0)]);
        // Replacing does not double count.
        let now = t.tick();
        t.insert(
            id("b", 0),
            Meta {
                len: 20,
                sum: 1,
                last_use: now,
                copy: now,
            },
        );
        assert_eq!(t.total_bytes(), 170);
        assert_eq!(
            t.remove(&id("a", 1)).map(|(m, last)| (m.len, last)),
            Some((50, false))
        );
        assert_eq!(
            t.remove(&id("a", 0)).map(|(m, last)| (m.len, last)),
            Some((100, true))
        );
        assert_eq!(t.remove(&id("a", 0)), None);
        assert_eq!((t.total_bytes(), t.len()), (20, 1));
    }

    #[test]
    fn the_hot_tier_never_trades_a_block_for_a_shorter_copy() {
        let mut hot = HotTier::new(10 << 20);
        let whole = Bytes::from(vec![7u8; 1000]);
        let head = whole.slice(..256);
        hot.put(id("a", 0), whole.clone());
        // The store of the head arrives last: the whole block stays.
        hot.put(id("a", 0), head.clone());
        assert_eq!(hot.get(&id("a", 0)), Some(whole.clone()));
        // In the other order the longer copy replaces the head.
        hot.put(id("b", 0), head);
        hot.put(id("b", 0), whole.clone());
        assert_eq!(hot.get(&id("b", 0)), Some(whole));
    }
}
